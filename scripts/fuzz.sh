#!/usr/bin/env bash
# Runs the cargo-fuzz targets under tests/fuzz/ (csr, crl, identity), each for
# FUZZ_SECONDS (default 60) from fresh seeds, and prints the executions reached and the
# corpus grown. A crash fails the run and leaves its input in tests/fuzz/artifacts/.
#
#   scripts/fuzz.sh                  # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh crl
#
# Needs the nightly toolchain (libFuzzer's instrumentation) and cargo-fuzz, which it
# installs from crates.io if missing. Nothing it generates is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csr crl identity)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 tests/fuzz/seeds.py "$work/seeds"

fuzz=(cargo +nightly fuzz)
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  mkdir -p "$corpus"
  log="$work/$target.log"
  # The seeds directory is read, the corpus directory grows; -timeout catches an input
  # that hangs the parser, -rss_limit_mb one that balloons.
  if ! "${fuzz[@]}" run --fuzz-dir tests/fuzz "$target" "$corpus" "$work/seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz $target: FAILED (input in tests/fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  coverage="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)"
  echo "fuzz $target: ${seconds} s, ${executions} executions, corpus $(ls "$corpus" | wc -l) inputs" \
    "($(ls "$work/seeds/$target" | wc -l) seeds), ${coverage}"
done
