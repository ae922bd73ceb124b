#!/usr/bin/env bash
# Builds sse-reframe-c.wasm: C bindings generated from ../../wit, clang for
# wasm32-wasi (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32), then
# the core module made a component. `wit-c` (tools/wit-c) does the two WIT
# steps; it is built with cargo from this repository.
# Usage: build.sh [OUTPUT]   (default: ./sse-reframe-c.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(realpath -m "${1:-$here/sse-reframe-c.wasm}")"
mkdir -p "$(dirname "$out")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p wit-c
wit_c="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/wit-c"

"$wit_c" bindings "$root/wit" transform "$work"
clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wall -Wextra -Werror \
  -I "$work" -o "$work/core.wasm" \
  "$here/sse_reframe.c" "$work/transform.c" "$work/transform_component_type.o"
"$wit_c" component "$work/core.wasm" "$out"
