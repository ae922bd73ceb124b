#!/usr/bin/env bash
# Builds seed002-text-py.wasm with componentize-py, from the WIT in ../../wit.
# Usage: build.sh [OUTPUT]   (default: ./seed002-text-py.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/seed002-text-py.wasm}")"
mkdir -p "$(dirname "$out")"
cd "$here"
# Called through Python, not the `componentize-py` script: a fresh pyenv may
# have no shim for it yet.
python3 -c "import sys, componentize_py; sys.exit(componentize_py.script())" \
  --wit-path ../../wit --world request-filter componentize --stub-wasi filter -o "$out"
