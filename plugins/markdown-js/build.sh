#!/usr/bin/env bash
# Builds markdown-js.wasm with componentize-js, from the WIT in ../../wit.
# Usage: build.sh [OUTPUT]   (default: ./markdown-js.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/markdown-js.wasm}")"
cd "$here"
# The versions in package-lock.json, exactly.
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
# No wasi:http: a plugin has no network, and the host would refuse the import.
./node_modules/.bin/componentize-js markdown.js --wit ../../wit --world-name transform \
  --disable http fetch-event --out "$out"
