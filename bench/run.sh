#!/usr/bin/env bash
# Speed and memory of `lvscheck inspect`, `lvscheck verify` and `lvscheck flows --json` on
# synthetic LVS-TUN captures.
#
#   bench/run.sh            # all datasets, writes bench/RESULTS.md
#   BENCH_DATA=/some/dir bench/run.sh
#
# Datasets (written by examples/synth.rs, deleted after use so that at most ~1.5 GB is on disk
# at once):
#   short-10k   10 000 connections, ~10 packets per connection per capture, 4 real servers
#   short-200k  200 000 connections, same shape: 20x the packets AND 20x the connections
#   long-5k     5 000 connections with ~125 response segments each (~200 packets per connection
#               at the client): more packets, fewer connections than short-10k
#   inspect-1g  one ~1 GB client capture (360 000 connections), through `inspect` only
# Each command runs once under /usr/bin/time -v (wall time, max RSS).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${BENCH_DATA:-target/bench-data}
OUT=bench/RESULTS.md
BIN=target/release/lvscheck
SYNTH=target/release/examples/synth
mkdir -p "$DATA"

[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
[ "${1:-}" = "--report-only" ] || cargo build --release --bin lvscheck --example synth

ROWS=$DATA/rows.md
gen_frames=0
gen_bytes=0

# generate NAME SYNTH-ARGS...: writes $DATA/NAME, sets gen_frames and gen_bytes (frame data of
# the files written).
generate() {
    local name=$1; shift
    rm -rf "${DATA:?}/$name"
    local log
    log=$("$SYNTH" --out "$DATA/$name" "$@")
    echo "$log" | sed 's/^/    /'
    gen_frames=$(echo "$log" | awk '/frames/ && !/not written/ && !/^connections/ {s += $2} END {print s}')
    gen_bytes=$(du -sb --exclude=truth.json "$DATA/$name" | cut -f1)
    concurrent=$(echo "$log" | sed -n 's/.*max concurrent connections \([0-9]*\).*/\1/p')
}

# measure DATASET CONNECTIONS COMMAND ARGS...: one row of the results table.
measure() {
    local dataset=$1 conns=$2; shift 2
    local tv
    tv=$(mktemp)
    local code=0
    /usr/bin/time -v "$@" >/dev/null 2>"$tv" || code=$?
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tv" \
        | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tv")
    local user sys
    user=$(awk -F': ' '/User time/ {print $2}' "$tv")
    sys=$(awk -F': ' '/System time/ {print $2}' "$tv")
    rm -f "$tv"
    local row
    row=$(awk -v d="$dataset" -v c="$2" -v n="$conns" -v f="$gen_frames" -v b="$gen_bytes" \
        -v w="$wall" -v r="$rss" -v u="$user" -v s="$sys" -v x="$code" -v k="$concurrent" 'BEGIN {
        printf "| %s | %s | %d | %s | %d | %.0f | %.2f | %.0f | %.0f | %.1f | %.1f | %d |",
            d, c, n, k, f, b / 1e6, w, f / w, b / 1e6 / w, r / 1024, u + s, x }')
    echo "$row"
    echo "$row" >> "$ROWS"
}

files() { ls "$DATA/$1"/*.pcap; }

if [ "${1:-}" != "--report-only" ]; then
: > "$ROWS"
echo "== short-10k"
generate short-10k --connections 10000 --servers 4 --seed 1
measure short-10k 10000 "$BIN" inspect $(files short-10k)
measure short-10k 10000 "$BIN" verify --json $(files short-10k)
measure short-10k 10000 "$BIN" flows --json $(files short-10k)

echo "== long-5k"
generate long-5k --connections 5000 --servers 4 --seed 2 --response-segments 120-130 \
    --segment-size 200
measure long-5k 5000 "$BIN" inspect $(files long-5k)
measure long-5k 5000 "$BIN" verify --json $(files long-5k)
measure long-5k 5000 "$BIN" flows --json $(files long-5k)
rm -rf "${DATA:?}/long-5k"

echo "== short-200k"
generate short-200k --connections 200000 --servers 4 --seed 3
measure short-200k 200000 "$BIN" inspect $(files short-200k)
measure short-200k 200000 "$BIN" verify --json $(files short-200k)
measure short-200k 200000 "$BIN" flows --json $(files short-200k)
rm -rf "${DATA:?}/short-200k"

echo "== inspect-1g"
generate inspect-1g --connections 360000 --servers 4 --seed 4 --only client
measure inspect-1g 360000 "$BIN" inspect $(files inspect-1g)
rm -rf "${DATA:?}/inspect-1g"
rm -rf "${DATA:?}/short-10k"

fi

bash bench/report.sh "$ROWS" > "$OUT"
echo "wrote $OUT"
