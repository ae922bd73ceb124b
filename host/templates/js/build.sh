#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-js, from the WIT in ./wit.
# Usage: build.sh [OUTPUT]   (default: ./{{name}}.wasm)
# Needs: node and npm (componentize-js comes from npm, the first time).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/{{name}}.wasm}")"
mkdir -p "$(dirname "$out")"
cd "$here"
[ -d node_modules ] || npm install --no-save --no-audit --no-fund --loglevel=error
# No wasi:http: a plugin has no network, and the host would refuse the import.
./node_modules/.bin/componentize-js plugin.js --wit wit --world-name {{role}} \
  --disable http fetch-event --out "$out"
