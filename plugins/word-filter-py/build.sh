#!/usr/bin/env bash
# Builds word-filter-py.wasm with componentize-py, from the WIT in ../../wit.
# Usage: build.sh [OUTPUT]   (default: ./word-filter-py.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/word-filter-py.wasm}")"
mkdir -p "$(dirname "$out")"
cd "$here"
# Called through Python, not the `componentize-py` script: a fresh pyenv may
# have no shim for it yet.
python3 -c "import sys, componentize_py; sys.exit(componentize_py.script())" \
  --wit-path ../../wit --world transform componentize --stub-wasi transformer -o "$out"
