#!/usr/bin/env bash
# Times the plugin author's loop in one language, as README "Write a plugin" shows it:
# new -> a custom edit -> build -> the golden test fails, --update, passes -> serve --watch ->
# the first custom response -> another edit -> the next request shows it. Scripted edits: the
# figures are machine time, without reading and typing. Usage: tools/author-loop.sh rust|python|js|c PORT
# (STREAMHOST names the binary; the C template needs WIT_C).
set -euo pipefail
lang=$1; port=$2
SH=${STREAMHOST:-streamhost}
export STREAMHOST_LOG=warn  # C needs WIT_C set (tools/wit-c)
root=${TMPDIR:-/tmp}/author-loop/$lang; rm -rf "$root"; mkdir -p "$root/plugins"; cd "$root"
t0=$(date +%s.%N); lap() { printf "%-28s %6.1f s\n" "$1" "$(echo "$(date +%s.%N) - $t0" | bc)"; }
$SH new transform mine --lang $lang > /dev/null; lap "new"
cd mine
case $lang in
  rust) sed -i 's/Event::Text(text.to_uppercase())/Event::Text(format!(">> {text}"))/' src/lib.rs;;
  python) sed -i 's/types.Event_Text(event.value.upper())/types.Event_Text(">> " + event.value)/' transformer.py;;
  js) sed -i 's/val: event.val.toUpperCase()/val: ">> " + event.val/' plugin.js;;
  c) python3 - <<'PY'
import re
t=open('plugin.c').read()
t=t.replace('for (size_t j = 0; j < text->len; j++) text->ptr[j] = (uint8_t)toupper(text->ptr[j]);','for (size_t j = 0; j < text->len; j++) text->ptr[j] = text->ptr[j] == \' \' ? \'_\' : text->ptr[j];')
open('plugin.c','w').write(t)
PY
  ;;
esac
lap "custom edit"
./build.sh > build.log 2>&1; lap "first build"
if $SH test ./mine.wasm --fixture fixtures > test.log 2>&1; then echo "UNEXPECTED PASS"; fi; lap "test fails with a diff"
$SH test ./mine.wasm --fixture fixtures --update > /dev/null 2>&1 && $SH test ./mine.wasm --fixture fixtures > /dev/null 2>&1; lap "--update, then passes"
$SH serve --listen 127.0.0.1:$port --plugins ../plugins --watch . > ../serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
until curl -sf -X POST 127.0.0.1:$port/mine -d '{"prompt":"hi there"}' -o ../first.txt 2>/dev/null && grep -q '">>\|hi_\|_the' ../first.txt; do sleep 0.2; done; lap "first custom response"
case $lang in
  rust) sed -i 's/format!(">> {text}")/format!("## {text}")/' src/lib.rs;;
  python) sed -i 's/">> " + event.value/"## " + event.value/' transformer.py;;
  js) sed -i 's/">> " + event.val/"## " + event.val/' plugin.js;;
  c) sed -i "s/'_' : text->ptr\[j\]/'~' : text->ptr[j]/" plugin.c;;
esac
t1=$(date +%s.%N)
until curl -sf -X POST 127.0.0.1:$port/mine -d '{"prompt":"hi there"}' -o ../second.txt 2>/dev/null && grep -q '"## \|"##\|hi~\|~the' ../second.txt; do sleep 0.2; done
printf "%-28s %6.1f s\n" "edit -> next request shows it" "$(echo "$(date +%s.%N) - $t1" | bc)"
