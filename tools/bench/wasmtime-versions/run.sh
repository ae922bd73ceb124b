#!/usr/bin/env bash
# Builds this bench once per wasmtime version, each with the toolchain that
# version needs, and prints the per-call floor and instantiate + open of
# each: three rounds, the versions alternated, each figure the best of 7
# runs within a round.
#
#   tools/bench/wasmtime-versions/run.sh PASSTHROUGH.wasm NDJSON.wasm [VERSION:TOOLCHAIN ...]
#
# Default versions: 48.0.8 (the host's pin) on 1.95.0 and 50.0.1 on 1.97.0.
# Toolchains come from rustup; each build takes ~6 min on 2 cores, kept
# under ${WASMTIME_VERSIONS_DIR:-~/.cache/streamhost}/wasmtime-VERSION.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 PASSTHROUGH.wasm NDJSON.wasm [VERSION:TOOLCHAIN ...]" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
passthrough="$(realpath "$1")" ndjson="$(realpath "$2")"
shift 2
versions=("$@")
[ $# -eq 0 ] && versions=(48.0.8:1.95.0 50.0.1:1.97.0)
targets="${WASMTIME_VERSIONS_DIR:-$HOME/.cache/streamhost}"
binaries=()
for pair in "${versions[@]}"; do
    [[ "$pair" == *:* ]] || { echo "run.sh: give VERSION:TOOLCHAIN, not $pair" >&2; exit 2; }
    version="${pair%%:*}" toolchain="${pair##*:}"
    rustup toolchain install "$toolchain" --profile minimal >/dev/null
    copy="$targets/wasmtime-$version/src-copy"
    rm -rf "$copy" && mkdir -p "$copy"
    cp -r "$here/Cargo.toml" "$here/src" "$copy/"
    # The bindings read the WIT from three levels up; the copy points at the
    # repo's (a path with `|` or `&` in it would break this sed).
    sed -i "s|\"../../../wit\"|\"$here/../../../wit\"|" "$copy/src/main.rs"
    sed -i "s|=48.0.8|=$version|g" "$copy/Cargo.toml"
    grep -q "\"$here/../../../wit\"" "$copy/src/main.rs" && grep -q "=$version\"" "$copy/Cargo.toml" ||
        { echo "run.sh: could not point the copy at the WIT or at wasmtime $version" >&2; exit 1; }
    cargo "+$toolchain" build --quiet --release --manifest-path "$copy/Cargo.toml" --target-dir "$targets/wasmtime-$version/target"
    binaries+=("$version:$targets/wasmtime-$version/target/release/wasmtime-versions")
done
for round in 1 2 3; do
    for entry in "${binaries[@]}"; do
        figures="$("${entry#*:}" "$passthrough" "$ndjson")" || { echo "wasmtime ${entry%%:*}: the bench failed" >&2; exit 1; }
        echo "round $round wasmtime ${entry%%:*}: $(echo "$figures" | tr '\n' ' ')"
    done
done
