#!/usr/bin/env bash
# Runs every fuzz target for a given time each, seeded from the committed seeds and from the
# shared corpus of other projects' captures (../shared/corpus, when it is there).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default 60 s, every target)
#
# Stable toolchain: cargo-fuzz's nightly flags need RUSTC_BOOTSTRAP=1. Installs cargo-fuzz
# when it is missing. A crash leaves its input in fuzz/artifacts/<target>/ and makes this
# script exit non-zero; each target's last lines (runs, coverage, peak RSS) are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(read_capture decode rules)
fi
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz

corpus=${LVSCHECK_CORPUS:-../shared/corpus}
for t in "${targets[@]}"; do
  work=fuzz/corpus/$t
  mkdir -p "$work"
  cp -n fuzz/seeds/"$t"/* "$work"/ 2>/dev/null || true
  if [ -f "$corpus/MANIFEST.tsv" ]; then
    case $t in
      # Whole captures, up to 256 KiB each (libFuzzer's -max_len below).
      read_capture)
        find "$corpus" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.gz' -o -name '*.cap' \) \
          -size -257k -print0 | while IFS= read -r -d '' f; do
          cp -n "$f" "$work/corpus_$(echo "$f" | md5sum | cut -c1-16)" || true
        done
        ;;
      # Frames of each capture in the decode target's input format.
      decode)
        find "$corpus" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.gz' -o -name '*.cap' \) \
          -print0 | xargs -0 cargo run --quiet --release --example fuzz_seeds -- "$work"
        ;;
    esac
  fi
  echo "== $t: $(ls "$work" | wc -l) inputs, ${seconds} s"
  log=fuzz/$t.log
  # -rss_limit_mb: a reader that holds a whole large capture is a bug worth a report.
  if ! (cd fuzz && cargo fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 \
        -print_final_stats=1) >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $t failed: see $log and fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E '^Done|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb|new_units_added)|cov:' "$log" | tail -n 6
done
