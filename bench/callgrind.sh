#!/usr/bin/env bash
# Instructions executed by `lvscheck verify --json --rules` on one synthetic set, counted by
# callgrind: unlike seconds, the count does not depend on what else the machine is doing, so
# two builds can be compared on a shared machine. Prints the total and the top functions.
#
#   bench/callgrind.sh [LVSCHECK_BINARY] [CONNECTIONS]     (default: target/release/lvscheck, 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/lvscheck}
n=${2:-3000}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
cargo build --quiet --release --example synth
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
target/release/examples/synth --out "$data" --connections "$n" --servers 4 --seed 1 >/dev/null
valgrind --tool=callgrind --callgrind-out-file="$data/cg.out" \
    "$bin" verify --json --rules "$data/rules.txt" "$data"/*.pcap >/dev/null 2>"$data/cg.err"
grep -o 'refs: *[0-9,]*' "$data/cg.err" | tr -s ' ' | sed 's/refs:/instructions:/'
callgrind_annotate "$data/cg.out" 2>/dev/null | sed -n '/file:function/,$p' | sed -n 3,12p
