#!/usr/bin/env bash
# Regenerates capinfos-fixtures.tsv: what Wireshark's capinfos (package tshark) reports for
# every fixture capture: packet count, earliest and latest packet time (seconds since the
# epoch, as many decimals as the file's resolution). tests/capture_fixtures.rs compares
# lvscheck's reader with these numbers. Run from the repository root after re-recording.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=tests/data/capinfos-fixtures.tsv
{
  echo -e "# file\tpackets\tearliest\tlatest  (capinfos $(capinfos --version | head -1 | grep -o "[0-9][0-9.]*" | head -1))"
  find fixtures -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.pcap.gz' -o -name '*.pcapng.gz' \) \
    | sort | while read -r f; do
      # capinfos exits 1 on a capture cut short, after printing what it read.
      capinfos -T -r -c -a -e -S -M "$f" 2>/dev/null || true
    done
} > "$out"
echo "wrote $out"
