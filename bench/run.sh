#!/usr/bin/env bash
# Speed and memory of `lvscheck inspect`, `lvscheck verify` and `lvscheck flows --json` on
# synthetic LVS-TUN captures.
#
#   bench/run.sh            # all datasets, writes bench/RESULTS.md
#   bench/run.sh --scale    # only the scale rows: rewrites their section of bench/RESULTS.md
#   bench/run.sh --records  # only the records rows of issue 16 (bench/records.sh): rewrites
#                           # their section; BENCH_RECORDS=1 adds them to a full run
#   BENCH_DATA=/some/dir bench/run.sh
#
# Datasets (written by examples/synth.rs, deleted after use; the largest, conns-1m, is ~7 GB):
#   gb-5        the issue's 1 GB five-capture set (client, director, 3 real servers, 140 000
#               connections): lvscheck beside the reference walk (bench/walk.rs), capinfos and
#               tshark -z conv,tcp
#   long-5k     5 000 connections with ~125 response segments each (~200 packets per connection
#               at the client): memory must not grow with packets
#   long-5k-x2  the same connections with twice the response segments
#   rate-2k/20k/200k   100 000 connections arriving at 2 000, 20 000, 200 000 a second
#   rs-3/rs-50, clients-1/clients-500 (500 client captures), conns-10k/100k/1m: scaling
#   inspect-1g  one ~1 GB client capture (360 000 connections), through `inspect` only
# Scale rows (written by examples/shapes.rs; lvscheck beside capinfos and tshark on the same
# files): growth with pcapng interfaces, pcapng sections, interfaces without frames and UDP
# services, at three sizes each, so that linearity shows.
# Each command runs once under /usr/bin/time -v (wall time, max RSS); on gb-5, in three
# interleaved rounds, keeping each command's median.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${BENCH_DATA:-target/bench-data}
OUT=bench/RESULTS.md
BIN=target/release/lvscheck
SYNTH=target/release/examples/synth
mkdir -p "$DATA"

[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
[ "${1:-}" = "--report-only" ] || cargo build --release --bin lvscheck --example synth --example shapes --example walk
SHAPES=target/release/examples/shapes
SCALE_ROWS=$DATA/scale-rows.md

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
    synth_log_fields "$log"
    gen_bytes=$(du -sb --exclude=truth.json "$DATA/$name" | cut -f1)
}

# synth_log_fields LOG: gen_frames and concurrent from what examples/synth.rs printed.
synth_log_fields() {
    gen_frames=$(echo "$1" | awk '/frames/ && !/not written/ && !/^connections/ {s += $2} END {print s}')
    concurrent=$(echo "$1" | sed -n 's/.*max concurrent connections \([0-9]*\).*/\1/p')
}

# time_fields TV: sets t_wall (s), t_cpu (user + system s) and t_rss (KB) from the report of
# /usr/bin/time -v in file TV.
time_fields() {
    t_wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1" \
        | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    t_rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$1")
    t_cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {print u + s}' "$1")
}

# measure DATASET CONNECTIONS COMMAND ARGS...: one row of the results table.
measure() {
    local dataset=$1 conns=$2; shift 2
    local tv
    tv=$(mktemp)
    local code=0
    /usr/bin/time -v "$@" >/dev/null 2>"$tv" || code=$?
    time_fields "$tv"
    rm -f "$tv"
    local row
    row=$(awk -v d="$dataset" -v c="$2" -v n="$conns" -v f="$gen_frames" -v b="$gen_bytes" \
        -v w="$t_wall" -v r="$t_rss" -v u="$t_cpu" -v x="$code" -v k="$concurrent" 'BEGIN {
        printf "| %s | %s | %d | %s | %d | %.0f | %.2f | %.0f | %.0f | %.1f | %.2f | %d |",
            d, c, n, k, f, b / 1e6, w, f / w, b / 1e6 / w, r / 1024, u, x }')
    echo "$row"
    echo "$row" >> "$ROWS"
}

files() { ls "$DATA/$1"/*.pcap; }

# Wall time a peer (capinfos, tshark) may take on one scale row; past it the row says exit 124.
PEER_TIMEOUT=60

# scale FAMILY N TOOL COMMAND ARGS...: one row of the scale table: time, memory and output size
# of one command (lvscheck, or a peer reading the same files) on a shape of size N. The output
# is counted, not kept (capinfos writes gigabytes for some shapes).
scale() {
    local family=$1 n=$2 tool=$3; shift 3
    local tv out
    tv=$(mktemp)
    out=$(mktemp)
    local code=0
    /usr/bin/time -v -o "$tv" "$@" 2>/dev/null | wc -c >"$out" || code=$?
    time_fields "$tv"
    local bytes
    bytes=$(cat "$out")
    rm -f "$tv" "$out"
    local row
    row=$(awk -v d="$family" -v n="$n" -v t="$tool" -v f="$gen_frames" -v b="$gen_bytes" \
        -v w="$t_wall" -v r="$t_rss" -v u="$t_cpu" -v o="$bytes" -v x="$code" 'BEGIN {
        printf "| %s | %d | %s | %d | %.2f | %.2f | %.2f | %.1f | %.1f | %d |",
            d, n, t, f, b / 1e6, w, u, r / 1024, o / 1024, x }')
    echo "$row"
    echo "$row" >> "$SCALE_ROWS"
}

# shape KIND N PATH: writes one shape with examples/shapes.rs, sets gen_frames and gen_bytes.
shape() {
    local log
    log=$("$SHAPES" "$1" "$2" "$3")
    echo "    $log"
    gen_frames=$(echo "$log" | sed -n 's/.*: \([0-9]*\) frames.*/\1/p')
    gen_bytes=$(du -sb --exclude=rules.txt "$3" | cut -f1)
}

# one_file_rows SHAPE N: lvscheck's commands and the peers on one pcapng of that shape.
one_file_rows() {
    local kind=$1 n=$2
    echo "== $kind $n"
    local f=$DATA/$kind-$n.pcapng
    shape "$kind" "$n" "$f"
    scale "$kind" "$n" "lvscheck inspect --json" "$BIN" inspect --json "$f"
    scale "$kind" "$n" "lvscheck verify --json" "$BIN" verify --json "$f"
    scale "$kind" "$n" "lvscheck flows --json" "$BIN" flows --json "$f"
    scale "$kind" "$n" capinfos timeout "$PEER_TIMEOUT" capinfos "$f"
    scale "$kind" "$n" "tshark -r" timeout "$PEER_TIMEOUT" tshark -r "$f"
    rm -f "$f"
}

scale_rows() {
    : > "$SCALE_ROWS"
    local n f
    # One section holds 65 536 interfaces at most (lvscheck's limit, as libpcap's).
    for n in 1000 10000 60000; do one_file_rows interfaces "$n"; done
    for n in 1000 10000 100000; do one_file_rows sections "$n"; done
    # 65 536 is as many interfaces as lvscheck reads in one capture (as the repro file
    # ../shared/corpus/repro/inspect_interface_amplification has them).
    for n in 1000 10000 65536; do
        echo "== empty interfaces $n"
        f=$DATA/empty-interfaces-$n.pcapng
        shape empty-interfaces "$n" "$f"
        scale empty-interfaces "$n" "lvscheck inspect --json" "$BIN" inspect --json "$f"
        scale empty-interfaces "$n" "lvscheck inspect" "$BIN" inspect "$f"
        scale empty-interfaces "$n" "lvscheck verify --json" "$BIN" verify --json "$f"
        scale empty-interfaces "$n" capinfos timeout "$PEER_TIMEOUT" capinfos "$f"
        scale empty-interfaces "$n" "tshark -r" timeout "$PEER_TIMEOUT" tshark -r "$f"
        rm -f "$f"
    done
    for n in 1024 16384 65536; do
        echo "== UDP services $n"
        f=$DATA/udp-services-$n
        rm -rf "$f"
        shape udp-services "$n" "$f"
        scale udp-services "$n" "lvscheck inspect --json" "$BIN" inspect --json "$f"/*.pcap
        scale udp-services "$n" "lvscheck verify --json --rules" \
            "$BIN" verify --json --rules "$f/rules.txt" "$f"/*.pcap
        scale udp-services "$n" "lvscheck flows --json" "$BIN" flows --json "$f"/*.pcap
        scale udp-services "$n" capinfos timeout "$PEER_TIMEOUT" capinfos "$f"/*.pcap
        scale udp-services "$n" "tshark -r (each file)" timeout "$PEER_TIMEOUT" \
            sh -c 'for p in "$@"; do tshark -r "$p"; done' tshark "$f"/*.pcap
        rm -rf "$f"
    done
}

# replace_section NAME REPORT-ARGS...: rewrites only the section NAME of RESULTS.md (between
# <!-- NAME --> markers, appended when missing) with what `bench/report.sh REPORT-ARGS...`
# renders; the rest stays as the last full run left it.
replace_section() {
    local name=$1; shift
    local section
    section=$(mktemp)
    bash bench/report.sh "$@" > "$section"
    awk -v file="$section" -v first="<!-- $name -->" -v last="<!-- /$name -->" '
        $0 == first { while ((getline l < file) > 0) print l; skip = 1; done = 1; next }
        $0 == last { skip = 0; next }
        !skip { print }
        END { if (!done) { print ""; while ((getline l < file) > 0) print l } }' "$OUT" > "$OUT.new"
    mv "$OUT.new" "$OUT"
    rm -f "$section"
    echo "wrote the $name section of $OUT"
}

if [ "${1:-}" = "--scale" ]; then
    scale_rows
    replace_section scale --scale "$SCALE_ROWS"
    exit 0
fi

# shellcheck source=bench/records.sh
source bench/records.sh
if [ "${1:-}" = "--records" ]; then
    records_rows
    replace_section records --records "$REC_ROWS" "$REC_NOTES"
    exit 0
fi

if [ "${1:-}" != "--report-only" ]; then
: > "$ROWS"
# The issue's 1 GB five-capture set: client, director, 3 real servers, 140 000 connections.
echo "== gb-5"
generate gb-5 --connections 140000 --servers 3 --seed 5
# The targets are read off these rows, and one run on this shared machine moves by ~20 %
# from one run to the next (walk, verify and tshark alike): every command runs in each of
# GB_ROUNDS interleaved rounds, and its row is the round with its median wall time.
GB_ROUNDS=${GB_ROUNDS:-3}
all_rows=$ROWS
ROWS=$DATA/gb-5-rounds.md
: > "$ROWS"
for round in $(seq "$GB_ROUNDS"); do
    echo "-- round $round of $GB_ROUNDS"
    measure gb-5 140000 bench/peer.sh walk $(files gb-5)
    measure gb-5 140000 "$BIN" inspect $(files gb-5)
    measure gb-5 140000 "$BIN" verify --json --rules "$DATA/gb-5/rules.txt" $(files gb-5)
    measure gb-5 140000 "$BIN" flows --json $(files gb-5)
    measure gb-5 140000 bench/peer.sh capinfos $(files gb-5)
    measure gb-5 140000 bench/peer.sh tshark-conv $(files gb-5)
done
ROWS=$all_rows
for cmd in walk inspect verify flows capinfos tshark-conv; do
    grep "^| gb-5 | $cmd |" "$DATA/gb-5-rounds.md" | sort -t'|' -k8,8n \
        | sed -n "$(( (GB_ROUNDS + 1) / 2 ))p" >> "$ROWS"
done
echo "gb-5 rows (median wall of $GB_ROUNDS rounds):"
grep "^| gb-5 |" "$ROWS"
rm -rf "${DATA:?}/gb-5"

echo "== long-5k"
generate long-5k --connections 5000 --servers 4 --seed 2 --response-segments 120-130 \
    --segment-size 200
measure long-5k 5000 "$BIN" verify --json --rules "$DATA/long-5k/rules.txt" $(files long-5k)
measure long-5k 5000 "$BIN" flows --json $(files long-5k)
rm -rf "${DATA:?}/long-5k"
# The same 5 000 connections (same seed) with twice the packets: what memory does with packets
# alone, nothing else changed.
generate long-5k-x2 --connections 5000 --servers 4 --seed 2 --response-segments 250-260 \
    --segment-size 200
measure long-5k-x2 5000 "$BIN" verify --json --rules "$DATA/long-5k-x2/rules.txt" $(files long-5k-x2)
measure long-5k-x2 5000 "$BIN" flows --json $(files long-5k-x2)
rm -rf "${DATA:?}/long-5k-x2"

# verify_and_flows DATASET CONNECTIONS SYNTH-ARGS...: generates, measures verify and flows,
# deletes.
verify_and_flows() {
    local name=$1 n=$2; shift 2
    echo "== $name"
    generate "$name" --connections "$n" "$@"
    measure "$name" "$n" "$BIN" verify --json --rules "$DATA/$name/rules.txt" $(files "$name")
    measure "$name" "$n" "$BIN" flows --json $(files "$name")
    rm -rf "${DATA:?}/$name"
}

# Connections per second: the same 100 000 connections arriving 100 times faster.
verify_and_flows rate-2k 100000 --servers 4 --seed 6 --rate 2000
verify_and_flows rate-20k 100000 --servers 4 --seed 6 --rate 20000
verify_and_flows rate-200k 100000 --servers 4 --seed 6 --rate 200000
# Scaling: real servers, client hosts (one capture each), connections.
verify_and_flows rs-3 100000 --servers 3 --seed 7
verify_and_flows rs-50 100000 --servers 50 --seed 7
verify_and_flows clients-1 100000 --servers 4 --seed 8 --clients 500
verify_and_flows clients-500 100000 --servers 4 --seed 8 --clients 500 --client-hosts 500
verify_and_flows conns-10k 10000 --servers 4 --seed 9
verify_and_flows conns-100k 100000 --servers 4 --seed 9
verify_and_flows conns-1m 1000000 --servers 4 --seed 9

echo "== inspect-1g"
generate inspect-1g --connections 360000 --servers 4 --seed 4 --only client
measure inspect-1g 360000 "$BIN" inspect $(files inspect-1g)
measure inspect-1g 360000 bench/peer.sh capinfos $(files inspect-1g)
rm -rf "${DATA:?}/inspect-1g"

scale_rows
[ "${BENCH_RECORDS:-0}" = 1 ] && records_rows
fi

# The records section is kept from the file when this run did not measure it.
old_records=$(sed -n '/^<!-- records -->$/,/^<!-- \/records -->$/p' "$OUT" 2>/dev/null || true)
bash bench/report.sh "$ROWS" > "$OUT"
[ -s "$SCALE_ROWS" ] && bash bench/report.sh --scale "$SCALE_ROWS" >> "$OUT"
if [ "${BENCH_RECORDS:-0}" = 1 ] && [ -s "$REC_ROWS" ]; then
    echo >> "$OUT"
    bash bench/report.sh --records "$REC_ROWS" "$REC_NOTES" >> "$OUT"
elif [ -n "$old_records" ]; then
    printf '\n%s\n' "$old_records" >> "$OUT"
fi
if command -v valgrind >/dev/null; then
    {
        echo
        echo "## Instructions (callgrind)"
        echo
        echo "\`bench/callgrind.sh\`: instructions of \`verify --json --rules\` on a 3 000-connection synth set"
        echo "(100 282 frames), independent of the machine's load; the functions that execute most."
        echo
        echo '```text'
        bash bench/callgrind.sh "$BIN" 3000
        echo '```'
    } >> "$OUT"
fi
echo "wrote $OUT"
