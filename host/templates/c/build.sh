#!/usr/bin/env bash
# Builds {{name}}.wasm: C bindings generated from ./wit, clang for
# wasm32-wasi (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32), then
# the core module made a component. `wit-c` does the two WIT steps; install
# it from the streamhost repository (`cargo install --path tools/wit-c`) or
# name it in WIT_C.
# Usage: build.sh [OUTPUT]   (default: ./{{name}}.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/{{name}}.wasm}")"
mkdir -p "$(dirname "$out")"
wit_c="${WIT_C:-$(command -v wit-c || true)}"
if [ -z "$wit_c" ]; then
  echo "build.sh: wit-c not found: cargo install --path {{wit_c_source}} (or set WIT_C)" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$wit_c" bindings "$here/wit" {{role}} "$work"
clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wall -Wextra -Werror \
  -I "$work" -o "$work/core.wasm" \
  "$here/plugin.c" "$work/{{role_c}}.c" "$work/{{role_c}}_component_type.o"
"$wit_c" component "$work/core.wasm" "$out"
