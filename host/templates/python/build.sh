#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py, from the WIT in ./wit.
# Usage: build.sh [OUTPUT]   (default: ./{{name}}.wasm)
# Needs: python3 -m pip install -r requirements.txt (componentize-py)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/{{name}}.wasm}")"
mkdir -p "$(dirname "$out")"
cd "$here"
# The module is named after the interface the world exports ({{module}}):
# that is where componentize-py looks for its class.
python3 -c "import sys, componentize_py; sys.exit(componentize_py.script())" \
  --wit-path wit --world {{role}} componentize --stub-wasi {{module}} -o "$out"
