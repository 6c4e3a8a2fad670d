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

# bench/report.sh --records ROWS NOTES: the records section alone (between <!-- records -->
# markers; bench/records.sh). Rows:
#   | step | input | pcap GB | wall s | CPU s | max RSS MB | output MB | output MB per pcap GB | exit |
# NOTES: lines starting "- " go under the table, the others (the set) above it.
if [ "${1:-}" = "--records" ]; then
    ROWS=$2
    NOTES=$3
    cat <<HEAD
<!-- records -->
## Records: 10 M connections from 20 hosts (issue 16)

Written by \`bench/run.sh --records\` on $(date -u '+%Y-%m-%d %H:%M UTC'), lvscheck at commit $(git rev-parse --short HEAD), release build, on the machine above (load average $(cut -d' ' -f1-3 /proc/loadavg)).
$(grep -v '^- ' "$NOTES" || true)

Each command once under \`/usr/bin/time -v\`; the captures are larger than this machine's
memory, so every pass over them reads part of them from disk. The peers first (the walk and
capinfos on every capture; tshark's conversation table on one real server's capture only: it
keeps state for every frame, 3.7 GB for rs1's 5 M, and the client capture alone has 90 M);
then the records path: \`lvscheck facts\` and \`lvscheck extract\` per capture (on one machine,
one after the other; deployed, each runs on its own host), \`lvscheck topology --rules\` on the
facts, \`lvscheck verify --records\` on the twenty records folders; last \`verify\` on the
pcaps, whose JSON is compared with the records'. Output MB is what a step wrote (standard
output, or the records folder for extract); per pcap GB is that over the capture's size: what
would cross the network instead of the capture.

| step | input | pcap GB | wall s | CPU s | max RSS MB | output MB | output MB per pcap GB | exit |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
HEAD
    cat "$ROWS"
    echo
    grep '^- ' "$NOTES" || true
    # As deployed: facts and extract on every host at once, so the slowest capture's time.
    awk -F'|' '
        function trim(x) { gsub(/^ +| +$/, "", x); return x }
        { st = trim($2) }
        st == "facts" && $5 + 0 > fw { fw = $5 + 0 }
        st == "extract" && $5 + 0 > ew { ew = $5 + 0; en = trim($3) }
        st == "extract" { o += $8; b += $4 }
        st == "topology" { tw = $5 + 0; t = 1 }
        st == "verify --records" { jw = $5 + 0; j = 1 }
        st == "verify" { vw = $5 + 0; vb = $4 }
        END {
            if (!(t && j && ew > 0)) exit
            printf "- As deployed (facts and extract next to each capture, all at once): the slowest "
            printf "capture (%s) %.1f s of facts and %.1f s of extract, topology %.1f s, the join %.1f s: ", en, fw, ew, tw, jw
            printf "%.1f s and %.0f MB over the network, against %.1f s for `verify` on the pcaps once %.1f GB ", fw + ew + tw + jw, o, vw, vb
            printf "of them are on one machine.\n"
        }' "$ROWS"
    echo
    echo "<!-- /records -->"
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
The CPUs may have been shared with other jobs (load average $(cut -d' ' -f1-3 /proc/loadavg) when
this was written), so wall times are noisy; CPU seconds (user + system) are the steadier figure.
The gb-5 rows are each command's median-wall run of three interleaved rounds; every other row is
one run. Captures are read from the page cache (they were just written).

Datasets, from \`examples/synth.rs\` (one capture per host; LVS-TUN, round robin in the order the
director receives the SYNs, TCP to VIP:80, Poisson arrivals at 2000 connections/s unless said,
each connection lasting a few milliseconds; \`--rules\` is the generator's \`ipvsadm -Sn\`):

| dataset | what |
| --- | --- |
| gb-5 | the 1 GB five-capture set of issue 12: client, director, 3 real servers, 140 000 connections; beside lvscheck the reference walk (\`bench/walk.rs\`: \`read()\` into 256 KiB, etherparse lax slicers for Ethernet/IP/TCP and the IP-in-IP inner packet, one FxHash flow table, one thread), capinfos and \`tshark -q -z conv,tcp\` (each file) |
| long-5k | 5 000 connections with 120-130 response segments of 200 bytes (~200 packets each at the client) |
| long-5k-x2 | the same 5 000 connections (same seed) with 250-260 response segments: twice the packets, nothing else changed |
| rate-2k, rate-20k, rate-200k | the same 100 000 connections arriving at 2 000, 20 000 and 200 000 a second (4 real servers) |
| rs-3, rs-50 | 100 000 connections over 3 or 50 real servers, each captured |
| clients-1, clients-500 | 100 000 connections from 500 client addresses on one load generator (one capture) or on 500 hosts (500 captures) |
| conns-10k, conns-100k, conns-1m | 10 000, 100 000 and 1 000 000 connections at the same rate (4 real servers; the last ~7 GB) |
| inspect-1g | the client capture alone of 360 000 connections, ~1 GB, through \`inspect\` |

## Numbers

Frames and MB are summed over all the files given to the command. frames/s and MB/s are per
wall-clock second; the last column but one is frames per CPU second.

| dataset | command | connections | max concurrent | frames | MB | wall s | frames/s | MB/s | max RSS MB | CPU s | frames/CPU s | exit |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
HEAD
awk -F'|' '{ cpu = $12 + 0; fpc = cpu > 0 ? $6 / cpu : 0;
    printf "|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s| %.0f |%s|\n", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, fpc, $13 }' "$ROWS"

ratio() { awk "BEGIN { printf \"%.${3:-1}f\", $1 / $2 }"; }
# The issue's targets, on gb-5.
vmbs=$(field gb-5 verify 9); vcpu=$(field gb-5 verify 11); wcpu=$(field gb-5 walk 11)
vwall=$(field gb-5 verify 7); twall=$(field gb-5 tshark-conv 7); wwall=$(field gb-5 walk 7)
fmbs=$(field gb-5 flows 9)
# Memory flat in connections and packets.
v10=$(field conns-10k verify 10); v100=$(field conns-100k verify 10); v1m=$(field conns-1m verify 10)
f10=$(field conns-10k flows 10); f1m=$(field conns-1m flows 10)
vlong=$(field long-5k verify 10); flong=$(field long-5k flows 10)
vlong2=$(field long-5k-x2 verify 10); flong2=$(field long-5k-x2 flows 10)
r2=$(field rate-2k verify 10); r200=$(field rate-200k verify 10)
fr2=$(field rate-2k flows 10); fr200=$(field rate-200k flows 10)
i1g=$(field inspect-1g inspect 10)
# Connections held at the end of rate-200k beyond rate-2k's: each is held ~4 s after it closes
# (its last ACK, a retransmitted FIN, the join's wait), so rate-2k holds ~8 000 and rate-200k,
# whose 100 000 connections arrive within 0.5 s, all of them.
held=92000

cat <<TARGETS

## Targets

| target | measured | verdict |
| --- | --- | --- |
| \`verify --json --rules\` on the 1 GB five-capture set: >= 1 GB/s wall on the 2 cores | ${vmbs} MB/s (${vwall} s) | $(verdict "$vmbs >= 1000") |
| ... i.e. <= 2x the CPU of the bare parse-and-flow-table walk | ${vcpu} CPU s vs the walk's ${wcpu} ($(ratio "$vcpu" "$wcpu")x) | $(verdict "$vcpu <= 2 * $wcpu") |
| ... and >= 40x tshark \`conv,tcp\` wall on the same files | ${vwall} s vs ${twall} s ($(ratio "$twall" "$vwall")x) | $(verdict "$twall >= 40 * $vwall") |
| \`flows --json\` on the same set (no target of its own; for comparison) | ${fmbs} MB/s; the walk ${wwall} s wall | - |
| peak RSS flat in connections: \`verify\` on conns-1m <= 2x conns-10k (same rate) | ${v1m} MB vs ${v10} MB ($(ratio "$v1m" "$v10")x; conns-100k ${v100} MB) | $(verdict "$v1m <= 2 * $v10") |
| ... and \`flows --json\` | ${f1m} MB vs ${f10} MB ($(ratio "$f1m" "$f10")x) | $(verdict "$f1m <= 2 * $f10") |
| peak RSS flat in packets: long-5k (~20x the packets per connection) no more than conns-10k | verify ${vlong} MB vs ${v10} MB; flows ${flong} MB vs ${f10} MB | $(verdict "$vlong <= $v10 && $flong <= $f10") |
| ... and twice the packets of the same 5 000 connections (long-5k-x2) within 5 % of long-5k | verify ${vlong2} MB vs ${vlong} MB; flows ${flong2} MB vs ${flong} MB | $(verdict "$vlong2 <= 1.05 * $vlong && $flong2 <= 1.05 * $flong") |
| <= 1 KB per connection in flight or recently closed: (rate-200k - rate-2k) RSS over the ${held} more connections held | verify $(ratio "($r200 - $r2) * 1048576" "$held" 0) bytes, flows $(ratio "($fr200 - $fr2) * 1048576" "$held" 0) bytes | $(verdict "($r200 - $r2) * 1048576 / $held <= 1024 && ($fr200 - $fr2) * 1048576 / $held <= 1024") |
| \`inspect\` streams: max RSS on a 1 GB capture under 16 MB | ${i1g} MB | $(verdict "$i1g <= 16") |
TARGETS

# scaling TITLE DATASET...: one row per dataset of a dimension.
scaling() {
    local title=$1; shift
    local d
    for d in "$@"; do
        echo "| $title | $d | $(field "$d" verify 11) | $(field "$d" verify 10) | $(field "$d" flows 11) | $(field "$d" flows 10) | $(field "$d" verify 7) |"
        title=""
    done
}

cat <<SCALING

## Scaling

CPU seconds and peak RSS of \`verify --json --rules\` and \`flows --json\` as one dimension grows
(rows of the table above).

| dimension | dataset | verify CPU s | verify max RSS MB | flows CPU s | flows max RSS MB | verify wall s |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
$(scaling "real servers" rs-3 rs-50)
$(scaling "client hosts (captures)" clients-1 clients-500)
$(scaling "connections" conns-10k conns-100k conns-1m)
$(scaling "connections per second" rate-2k rate-20k rate-200k)
SCALING
