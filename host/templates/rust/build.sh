#!/usr/bin/env bash
# Builds {{name}}.wasm: a WebAssembly component for wasm32-wasip2.
# Usage: build.sh [OUTPUT]   (default: ./{{name}}.wasm)
# Needs: rustup target add wasm32-wasip2
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/{{name}}.wasm}")"
cd "$here"
cargo build --quiet --release --target wasm32-wasip2
mkdir -p "$(dirname "$out")"
cp "${CARGO_TARGET_DIR:-$here/target}/wasm32-wasip2/release/{{crate}}.wasm" "$out"
