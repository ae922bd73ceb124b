#!/usr/bin/env bash
# Seed 000's own reader (tests/clients/seed000-reader.mjs: each network read
# split on newlines, every piece parsed) against streamhost's `/ndjson` and
# against the Node handler a user would write instead
# (tests/clients/node-ndjson-handler.mjs, one line per write), in one run,
# with the same long answer at no pace: how many streams had a read that cut
# a line (the reader throws there).
#
#   tools/bench/seed000-reader.sh STREAMHOST_BIN EXAMPLES_DIR [STREAMS=20] [WORDS=3000]
#
# Why a read cuts a line: Node's fetch reads the socket 64 KiB at a time, so
# once 64 KiB or more of the body is waiting unread, a read ends mid-line.
# Only the pace of the output decides that; no server can rule it out for a
# reader that falls behind. streamhost's echo model yields between tokens
# (as a model does), so its output keeps a model's pace, not a burst.
set -euo pipefail
bin=$1 examples=$2 streams=${3:-20} words=${4:-3000}
clients="$(cd "$(dirname "$0")/../../tests/clients" && pwd)"
body=$(python3 -c "import json,sys; print(json.dumps({'prompt': ' '.join(f'w{n}' for n in range(int(sys.argv[1])))}))" "$words")
cache=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$cache"' EXIT

"$bin" serve --listen 127.0.0.1:0 --plugins "$examples" --cache-dir "$cache" --echo-delay-ms 0 > "$cache/serve.out" 2> /dev/null &
node "$clients/node-ndjson-handler.mjs" 0 tick echo > "$cache/node-tick.out" &
node "$clients/node-ndjson-handler.mjs" 0 0 echo > "$cache/node-burst.out" &
address() { for _ in $(seq 100); do grep -o 'http://[0-9.:]*' "$1" && return; sleep 0.1; done; echo "no address in $1" >&2; exit 1; }
declare -A urls=(
  [streamhost]="$(address "$cache/serve.out")/ndjson"
  [node-tick]="$(address "$cache/node-tick.out")/"
  [node-burst]="$(address "$cache/node-burst.out")/"
)
for server in streamhost node-tick node-burst; do
  failed=0
  for _ in $(seq "$streams"); do
    reads=$(node "$clients/seed000-reader.mjs" "${urls[$server]}" "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["failedReads"])')
    [ "$reads" -gt 0 ] && failed=$((failed + 1))
  done
  echo "$server: $failed of $streams streams had a read that cut a line"
done
