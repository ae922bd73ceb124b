#!/usr/bin/env bash
# Builds markdown-js.wasm with componentize-js, from the WIT in ../../wit.
# Usage: build.sh [OUTPUT]   (default: ./markdown-js.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:-$here/markdown-js.wasm}")"
mkdir -p "$(dirname "$out")"
cd "$here"
# The versions package-lock.json names. (`npm install` rather than `npm ci`:
# npm 11 writes lock files that `npm ci` then refuses for missing optional,
# other-platform packages.) componentize-js imports preview2-shim at run
# time but declares it only for development, so package.json names it.
[ -d node_modules ] || npm install --no-save --no-audit --no-fund --loglevel=error
# No wasi:http: a plugin has no network, and the host would refuse the import.
./node_modules/.bin/componentize-js markdown.js --wit ../../wit --world-name transform \
  --disable http fetch-event --out "$out"
