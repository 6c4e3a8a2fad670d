# The records benchmark of issue 16, sourced by bench/run.sh (`bench/run.sh --records`, or
# `BENCH_RECORDS=1 bench/run.sh` for a full run with it): twenty hosts' captures of 10 M
# connections, read as pcaps by `verify` (beside the reference walk, capinfos and tshark) and
# through the records path: per capture `lvscheck facts`, one `lvscheck topology`, per capture
# `lvscheck extract`, then `lvscheck verify --records` on the twenty records folders.
#
# Uses bench/run.sh's BIN, SYNTH, DATA, time_fields and synth_log_fields. Settings:
#   REC_CONNECTIONS   connections of the set (10000000)
#   BENCH_REC_DATA    a set already generated there is used as it is and kept; a folder that
#                     does not hold one is generated into and kept. Unset: $DATA/rec-N,
#                     generated and deleted after.
#   BENCH_REC_OUT     where facts, topology, records and both verify outputs go (kept); unset:
#                     $DATA/rec-out, of which only the records are kept
#   REC_PEERS=0       skips the walk, capinfos and tshark (lvscheck's rows only)
#
# The set: client, director and rs1..rs18, round robin, seed 16, the smallest connection the
# generator writes whole: one response segment of 1-60 bytes, so every TCP step is there
# (handshake, request, response, delayed ACK, both FINs, last ACK) in 30 frames over the 20
# captures, ~2 875 bytes of pcap a connection (28.7 GB at 10 M; the default 1-3 segments of
# 1 448 bytes would take 74 GB). truth.json adds ~157 bytes a connection.

REC_ROWS=$DATA/records-rows.md
REC_NOTES=$DATA/records-notes.md
REC_CONNECTIONS=${REC_CONNECTIONS:-10000000}
REC_SYNTH_ARGS=(--connections "$REC_CONNECTIONS" --servers 18 --seed 16 --response-segments 1-1
    --segment-size 60)
# Disk a connection of that shape takes, pcaps and truth.json, with some room.
REC_BYTES_PER_CONNECTION=3100
# The same flags for `verify` on the pcaps and on the records: the two outputs are compared.
REC_VERIFY_FLAGS=(--json)

# rec_timed STDOUT COMMAND ARGS...: runs COMMAND under /usr/bin/time -v, its standard output
# into STDOUT and its standard error into $REC_ERR; sets t_wall, t_cpu, t_rss (time_fields)
# and rec_code, and shows the end of its standard error when it fails.
REC_ERR=$DATA/records-stderr.txt
rec_timed() {
    local out=$1; shift
    local tv
    tv=$(mktemp)
    rec_code=0
    /usr/bin/time -v -o "$tv" "$@" >"$out" 2>"$REC_ERR" || rec_code=$?
    time_fields "$tv"
    if [ "$rec_code" -ne 0 ]; then
        echo "    $* exited with $rec_code; the end of its standard error:"
        tail -n 5 "$REC_ERR" | sed 's/^/      /'
    fi
    rm -f "$tv"
}

# rec_row STEP INPUT PCAP_BYTES OUTPUT_BYTES: one row of the records table from the last
# rec_timed:
#   | step | input | pcap GB | wall s | CPU s | max RSS MB | output MB | output MB per pcap GB | exit |
# The ratio is given for the steps that run next to a capture (facts, extract).
rec_row() {
    local row
    row=$(awk -v s="$1" -v i="$2" -v b="$3" -v o="$4" -v w="$t_wall" -v u="$t_cpu" \
        -v r="$t_rss" -v x="$rec_code" 'BEGIN {
        per = (s == "facts" || s == "extract") && b > 0 ? sprintf("%.2f", o / 1e6 / (b / 1e9)) : "-"
        printf "| %s | %s | %.3f | %.2f | %.2f | %.1f | %.2f | %s | %d |",
            s, i, b / 1e9, w, u, r / 1024, o / 1e6, per, x }')
    echo "$row"
    echo "$row" >> "$REC_ROWS"
}

# rec_note TEXT: a line under the table (a step that could not run, the comparison).
rec_note() {
    echo "$1"
    echo "- $1" >> "$REC_NOTES"
}

# rec_total STEP: the row of STEP over all captures, one after the other: wall, CPU and output
# summed, the largest RSS, the worst exit.
rec_total() {
    local row
    row=$(awk -F'|' -v s="$1" '
        { st = $2; gsub(/^ +| +$/, "", st) }
        st == s {
            n++; b += $4; w += $5; c += $6; o += $8
            if ($7 + 0 > r) r = $7 + 0
            if ($10 + 0 > x) x = $10 + 0
        }
        END {
            printf "| %s, all %d captures | sum | %.3f | %.2f | %.2f | %.1f | %.2f | %s | %d |",
                s, n, b, w, c, r, o, (b > 0 ? sprintf("%.2f", o / b) : "-"), x
        }' "$REC_ROWS")
    echo "$row"
    echo "$row" >> "$REC_ROWS"
}

# has_command NAME: whether this lvscheck has the subcommand NAME.
has_command() { "$BIN" "$1" --help >/dev/null 2>&1; }

# not_built STEP INPUT WHAT: the row and note of a step this lvscheck cannot run yet.
not_built() {
    local row="| $1 | $2 | - | not built yet | - | - | - | - | - |"
    echo "$row"
    echo "$row" >> "$REC_ROWS"
    rec_note "\`$3\`: not built yet (lvscheck at $(git rev-parse --short HEAD) has no such command or flag); skipped"
}

# rec_have_set DIR: whether DIR holds a set generated before.
rec_have_set() { [ -s "$1/synth.log" ] && [ -s "$1/rules.txt" ]; }

# rec_room DIR: whether the disk holding DIR has room for the set.
rec_room() {
    local need avail
    need=$((REC_CONNECTIONS * REC_BYTES_PER_CONNECTION))
    avail=$(df -B1 --output=avail "$(dirname "$1")" | tail -n 1)
    [ "$need" -le "$avail" ] && return 0
    rec_note "not run: $REC_CONNECTIONS connections need ~$((need / 1000000000)) GB of disk, \
$(dirname "$1") has $((avail / 1000000000)) GB free; REC_CONNECTIONS=N sets fewer (pcaps, \
records and times scale with the connections)"
    return 1
}

# rec_dataset DIR: uses the set in DIR, or generates it there; sets gen_frames, gen_bytes and
# concurrent.
rec_dataset() {
    local set=$1
    if rec_have_set "$set"; then
        echo "    using the set in $set"
    else
        rm -rf "${set:?}"
        local log
        log=$("$SYNTH" --out "$set" "${REC_SYNTH_ARGS[@]}")
        echo "$log" > "$set/synth.log"
        echo "${REC_SYNTH_ARGS[*]}" > "$set/synth.args"
    fi
    sed 's/^/    /' "$set/synth.log"
    synth_log_fields "$(cat "$set/synth.log")"
    gen_bytes=$(du -sb --exclude=truth.json --exclude=synth.log --exclude=rules.txt "$set" | cut -f1)
}

records_rows() {
    : > "$REC_ROWS"
    : > "$REC_NOTES"
    local set=${BENCH_REC_DATA:-$DATA/rec-$REC_CONNECTIONS}
    local out=${BENCH_REC_OUT:-$DATA/rec-out}
    echo "== records: $set"
    if ! rec_have_set "$set" && ! rec_room "$set"; then
        return 0
    fi
    rec_dataset "$set"
    local pcaps=("$set"/*.pcap)
    local f name b legs
    awk -v args="$(cat "$set/synth.args" 2>/dev/null)" -v n="${#pcaps[@]}" -v f="$gen_frames" \
        -v b="$gen_bytes" -v k="$concurrent" '/^connections/ {
        printf "The set: `examples/synth.rs %s`, %d captures (client, director, rs1...), ", args, n
        printf "%d connections over %s s of traffic (at most %d open at once), %d frames, ", $2, $9, k, f
        printf "%.1f GB of pcap (%.0f bytes a connection).\n", b / 1e9, b / $2 }' \
        "$set/synth.log" >> "$REC_NOTES"

    # The peers on the pcaps, as on gb-5: the walk, capinfos; tshark's conversation table on
    # one real server's capture only (it keeps state for every frame: 3.7 GB for rs1's 5 M
    # frames; the client capture alone has 90 M). verify on the pcaps comes last.
    rm -rf "${out:?}"
    mkdir -p "$out/facts" "$out/records"
    if [ "${REC_PEERS:-1}" != 0 ]; then
        rec_timed /dev/null bench/peer.sh walk "${pcaps[@]}"
        rec_row walk "${#pcaps[@]} captures" "$gen_bytes" 0
        rec_timed /dev/null bench/peer.sh capinfos "${pcaps[@]}"
        rec_row capinfos "${#pcaps[@]} captures" "$gen_bytes" 0
        rec_timed /dev/null bench/peer.sh tshark-conv "$set/rs1.pcap"
        rec_row tshark-conv rs1 "$(stat -c %s "$set/rs1.pcap")" 0
    fi
    # The records path: facts and extract next to each capture (here one after the other), the
    # topology and the join on one machine.
    local ready=1
    if has_command facts; then
        for f in "${pcaps[@]}"; do
            name=$(basename "$f" .pcap)
            rec_timed "$out/facts/$name.json" "$BIN" facts "$f"
            rec_row facts "$name" "$(stat -c %s "$f")" "$(stat -c %s "$out/facts/$name.json")"
            [ "$rec_code" -eq 0 ] || ready=0
        done
        rec_total facts
    else
        not_built facts "each capture" "lvscheck facts"
        ready=0
    fi
    if [ "$ready" -eq 0 ]; then
        rec_note "\`lvscheck topology\`: skipped, it needs every capture's facts"
    elif has_command topology; then
        rec_timed /dev/null "$BIN" topology "$out"/facts/*.json --rules "$set/rules.txt" \
            -o "$out/topology.json"
        rec_row topology "${#pcaps[@]} facts" 0 "$(stat -c %s "$out/topology.json" 2>/dev/null || echo 0)"
        [ "$rec_code" -eq 0 ] || ready=0
    else
        not_built topology "${#pcaps[@]} facts" "lvscheck topology"
        ready=0
    fi
    if [ "$ready" -eq 0 ]; then
        rec_note "\`lvscheck extract\`: skipped, it needs the topology"
    elif has_command extract; then
        for f in "${pcaps[@]}"; do
            name=$(basename "$f" .pcap)
            rec_timed /dev/null "$BIN" extract "$f" --topology "$out/topology.json" \
                --out "$out/records/$name"
            b=$(du -sb "$out/records/$name" 2>/dev/null | cut -f1) || b=0
            # extract says how many legs it wrote: the records grow with them, not with bytes.
            legs=$(sed -n 's/.*: \([0-9]*\) legs,.*/\1/p' "$REC_ERR" | head -n 1)
            rec_row extract "$name${legs:+ ($legs legs)}" "$(stat -c %s "$f")" "$b"
            [ "$rec_code" -eq 0 ] || ready=0
        done
        rec_total extract
    else
        not_built extract "each capture" "lvscheck extract"
        ready=0
    fi
    if [ "$ready" -eq 0 ]; then
        rec_note "\`lvscheck verify --records\`: skipped, it needs every capture's records"
    elif "$BIN" verify --help 2>/dev/null | grep -q -- '--records'; then
        rec_timed "$out/verify-records.json" "$BIN" verify "${REC_VERIFY_FLAGS[@]}" \
            --rules "$set/rules.txt" --records "$out"/records/*
        rec_row "verify --records" "${#pcaps[@]} records folders" "$gen_bytes" \
            "$(stat -c %s "$out/verify-records.json")"
    else
        not_built "verify --records" "${#pcaps[@]} records folders" "lvscheck verify --records"
    fi

    # verify on the pcaps last: the records' rows come first should the run be cut short.
    rec_timed "$out/verify-pcap.json" "$BIN" verify "${REC_VERIFY_FLAGS[@]}" \
        --rules "$set/rules.txt" "${pcaps[@]}"
    rec_row verify "${#pcaps[@]} captures" "$gen_bytes" "$(stat -c %s "$out/verify-pcap.json")"
    if [ ! -s "$out/verify-records.json" ]; then
        :
    elif cmp -s "$out/verify-pcap.json" "$out/verify-records.json"; then
        rec_note "\`verify --records\` wrote the same JSON as \`verify\` on the pcaps, byte for byte"
    else
        rec_note "\`verify --records\` and \`verify\` on the pcaps wrote different JSON: $(diff \
            "$out/verify-pcap.json" "$out/verify-records.json" | grep -c '^[<>]') lines differ"
    fi

    [ -n "${BENCH_REC_OUT:-}" ] || rm -rf "${out:?}/facts" "$out"/verify-*.json "$out/topology.json"
    [ -n "${BENCH_REC_DATA:-}" ] || rm -rf "${set:?}"
}
