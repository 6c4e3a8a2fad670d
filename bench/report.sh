#!/usr/bin/env bash
# Renders bench/RESULTS.md from the rows bench/run.sh measured (one markdown row per run):
#   | dataset | command | connections | max concurrent | frames | MB | wall s | frames/s | MB/s |
#   max RSS MB | CPU s | exit |
# and judges them against the targets. Usage: bench/report.sh ROWS-FILE > bench/RESULTS.md
set -euo pipefail

# bench/report.sh --scale SCALE-ROWS: the scale section alone (between <!-- scale --> markers,
# which bench/run.sh --scale replaces in RESULTS.md). Rows:
#   | shape | n | tool and command | frames | MB | wall s | CPU s | max RSS MB | output KB | exit |
if [ "${1:-}" = "--scale" ]; then
    ROWS=$2
    cat <<HEAD
<!-- scale -->
## Scale: interfaces, sections, services

Written by \`bench/run.sh --scale\` on $(date -u '+%Y-%m-%d %H:%M UTC'), lvscheck at commit $(git rev-parse --short HEAD), release build, on the machine above (load average $(cut -d' ' -f1-3 /proc/loadavg)).
\`bench/run.sh --scale\` runs only these rows and rewrites only this section; the tables above
are from the last full run, whose date they carry. Captures from \`examples/shapes.rs\`, each
read by lvscheck and, on the same files, by capinfos and tshark ($(tshark --version 2>/dev/null | head -1 | awk '{print $1, $2, $3}'));
a peer that did not finish within 60 s shows exit 124.

| shape | what |
| --- | --- |
| interfaces N | one pcapng, N interfaces, the same UDP packet once on each, 1 ms apart (as ../shared/corpus/repro/verify_cubic_interfaces) |
| sections N | one pcapng, N sections of one interface and that packet each |
| empty-interfaces N | one pcapng, N interfaces, 2 frames on the first (as ../shared/corpus/repro/inspect_interface_amplification) |
| udp-services N | LVS-TUN client, director and 2 real servers, N UDP services on 2 VIPs, 2 connections each (one per server, round robin as the rules say), 300 µs apart |

MB is the captures' size; output KB what the command wrote on standard output (tshark's is its
one-line-per-packet listing, capinfos' its report).

| shape | n | tool and command | frames | MB | wall s | CPU s | max RSS MB | output KB | exit |
| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
HEAD
    cat "$ROWS"
    cat <<GROWTH

Growth of lvscheck's cost from the middle size to the largest, against the growth of N
(linear: the same factor; memory above the smallest size's, which is mostly the program itself):

| shape | command | N | CPU s | max RSS MB | N x | CPU x | RSS above the smallest x |
| --- | --- | --- | --- | --- | ---: | ---: | ---: |
GROWTH
    awk -F'|' '
        function trim(x) { gsub(/^ +| +$/, "", x); return x }
        trim($4) ~ /^lvscheck/ {
            k = trim($2) "|" trim($4)
            if (!(k in count)) order[++nk] = k
            i = ++count[k]
            n[k, i] = trim($3); cpu[k, i] = trim($8); rss[k, i] = trim($9)
        }
        END {
            for (j = 1; j <= nk; j++) {
                k = order[j]; c = count[k]
                split(k, parts, "|")
                ns = ""; cs = ""; rs = ""
                for (i = 1; i <= c; i++) {
                    sep = (i > 1) ? " / " : ""
                    ns = ns sep n[k, i]; cs = cs sep cpu[k, i]; rs = rs sep rss[k, i]
                }
                nx = n[k, c] / n[k, c - 1]
                cx = (cpu[k, c - 1] + 0 > 0) ? sprintf("%.1f", cpu[k, c] / cpu[k, c - 1]) : "-"
                above_mid = rss[k, c - 1] - rss[k, 1]
                rx = (above_mid > 0) ? sprintf("%.1f", (rss[k, c] - rss[k, 1]) / above_mid) : "-"
                printf "| %s | %s | %s | %s | %s | %.1f | %s | %s |\n", parts[1], parts[2], ns, cs, rs, nx, cx, rx
            }
        }' "$ROWS"
    echo
    echo "<!-- /scale -->"
    exit 0
fi

ROWS=$1

# field DATASET COMMAND COLUMN: one value of the table (columns numbered as above, from 1).
field() {
    awk -F'|' -v d="$1" -v c="$2" -v k="$3" \
        '{ gsub(/ /, "", $2); gsub(/ /, "", $3); if ($2 == d && $3 == c) { v = $(k + 1); gsub(/ /, "", v); print v } }' "$ROWS"
}
verdict() { if awk "BEGIN { exit !($1) }"; then echo "**met**"; else echo "**not met**"; fi; }

cat <<HEAD
# Benchmark results

Written by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), lvscheck at commit $(git rev-parse --short HEAD), release build.

**Machine:** $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(rustc --version).
The CPUs were shared with other jobs (load average $(cut -d' ' -f1-3 /proc/loadavg) when this was
written), so wall times are noisy; CPU seconds (user + system) are the steadier figure.
Captures are read from the page cache (they were just written).

Datasets, from \`examples/synth.rs\` (one capture per host: client, director, rs1..rs4; LVS-TUN,
round robin, TCP to VIP:80, Poisson arrivals at 2000 connections/s, each connection lasting a few
milliseconds, so at most ~25 connections are open at once in every dataset):

| dataset | what |
| --- | --- |
| short-10k | 10 000 connections, ~10 packets each at the client (handshake, request, 1-3 response segments, FIN) |
| long-5k | 5 000 connections with 120-130 response segments of 200 bytes (~200 packets each at the client): 8x the frames of short-10k, half its connections |
| short-200k | 200 000 connections, same shape as short-10k: 20x the frames and 20x the connections |
| inspect-1g | the client capture alone of 360 000 connections, ~1 GB, through \`inspect\` |

## Numbers

Frames and MB are summed over all the files given to the command. frames/s and MB/s are per
wall-clock second; the last column but one is frames per CPU second.

| dataset | command | connections | max concurrent | frames | MB | wall s | frames/s | MB/s | max RSS MB | CPU s | frames/CPU s | exit |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
HEAD
awk -F'|' '{ cpu = $12 + 0; fpc = cpu > 0 ? $6 / cpu : 0;
    printf "|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s| %.0f |%s|\n", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, fpc, $13 }' "$ROWS"

i10=$(field short-10k inspect 10); i1g=$(field inspect-1g inspect 10)
v10=$(field short-10k verify 10); v200=$(field short-200k verify 10); vlong=$(field long-5k verify 10)
if200=$(field short-200k inspect 5); ic200=$(field short-200k inspect 11)
vf200=$(field short-200k verify 5); vc200=$(field short-200k verify 11)
f10=$(field short-10k flows 10); f200=$(field short-200k flows 10); flong=$(field long-5k flows 10)
ipc=$(awk "BEGIN { printf \"%.0f\", $if200 / $ic200 }")
vpc=$(awk "BEGIN { printf \"%.0f\", $vf200 / $vc200 }")

cat <<TARGETS

## Targets

| target | measured | verdict |
| --- | --- | --- |
| \`inspect\` streams: max RSS does not grow with the capture (1 GB capture within 16 MB of the 74 MB one) | ${i10} MB (short-10k) vs ${i1g} MB (inspect-1g) | $(verdict "$i1g <= $i10 + 16") |
| \`verify\` memory does not grow with packets: long-5k (8x the frames, half the connections) no more than short-10k | ${vlong} MB vs ${v10} MB | $(verdict "$vlong <= $v10") |
| \`verify\` memory bounded when connections in flight are (both datasets <= 25 open at once): short-200k within 2x of short-10k | ${v200} MB vs ${v10} MB ($(awk "BEGIN { printf \"%.1f\", $v200 / $v10 }")x) | $(verdict "$v200 <= 2 * $v10") |
| \`verify\` keeps at most 300 bytes per connection beyond what \`flows --json\` holds (the scheduler replay's record of each connection; 3.9 KB per connection before the streaming join) | $(awk "BEGIN { printf \"%.0f\", ($v200 - $f200) * 1048576 / 200000 }") bytes (short-200k) | $(verdict "($v200 - $f200) * 1048576 / 200000 <= 300") |
| \`flows --json\` memory does not grow with packets: long-5k no more than short-10k | ${flong} MB vs ${f10} MB | $(verdict "$flong <= $f10") |
| \`flows --json\` memory bounded when connections in flight are: short-200k within 2x of short-10k | ${f200} MB vs ${f10} MB ($(awk "BEGIN { printf \"%.1f\", $f200 / $f10 }")x) | $(verdict "$f200 <= 2 * $f10") |
| \`inspect\` throughput >= 1 000 000 frames per CPU second (short-200k) | ${ipc} | $(verdict "$ipc >= 1000000") |
| \`verify\` throughput >= 200 000 frames per CPU second (short-200k; every capture is read twice) | ${vpc} | $(verdict "$vpc >= 200000") |
TARGETS
