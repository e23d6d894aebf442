#!/usr/bin/env bash
# Fuzz run of every cargo-fuzz target in fuzz/ (see fuzz/README.md), on the
# stable toolchain: libFuzzer's coverage instrumentation needs no nightly
# flag when the sanitizer is off (`--sanitizer none`; the parsers have no
# `unsafe`). scripts/test.sh runs it as the CI smoke run (FUZZ_SECONDS per
# target, 20 by default; 0 skips it); a long run is
# `FUZZ_SECONDS=600 FUZZ_JOBS=3 scripts/fuzz.sh`. `FUZZ_BUILD_ONLY=1` only
# builds the targets (scripts/test.sh does that early, niced, beside the
# cluster tests, which mostly wait).
#
# Installs cargo-fuzz if missing (pinned, --locked). Corpora grow under
# $FUZZ_TARGET_DIR/corpus/<target> (default target/fuzz/corpus), seeded from
# fuzz/seeds/<target>; a crash fails the run and leaves its input in
# fuzz/artifacts/<target>/ (reproduce: see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-1}
if [ "$secs" = 0 ]; then
  echo "FUZZ_SECONDS=0: fuzzing skipped"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
start=$(date +%s)
cargo fuzz build --sanitizer none
echo "fuzz targets built in $(( $(date +%s) - start )) s"
if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
  exit 0
fi
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
# Largest input per target: a frame or packet stream, a JSON body, a list of
# corruptions.
max_len() {
  case $1 in
    frame_decoder) echo 16384 ;;
    *) echo 4096 ;;
  esac
}
run_one() {
  local t=$1 corpus="$CARGO_TARGET_DIR/corpus/$1"
  mkdir -p "$corpus"
  # -timeout: one input may take this long (the broker-level targets open a
  # broker per input; the machine may be loaded); -rss_limit_mb: a leak or
  # an allocation bomb fails the run.
  cargo fuzz run --sanitizer none "$t" "$corpus" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$CARGO_TARGET_DIR/$t.log" 2>&1
}
status=0
pids=()
names=()
for t in $targets; do
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  # At most $jobs targets at a time.
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
done
for i in "${!pids[@]}"; do
  t=${names[$i]}
  log="$CARGO_TARGET_DIR/$t.log"
  if wait "${pids[$i]}"; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    corpus=$(find "$CARGO_TARGET_DIR/corpus/$t" -type f | wc -l)
    echo "fuzz $t: ok, ${execs:-?} executions, corpus $corpus inputs"
  else
    status=1
    echo "fuzz $t: FAILED (log: $log)"
    grep -E -A30 "panicked|ERROR: libFuzzer|deadly signal|SUMMARY" "$log" | head -60 || tail -40 "$log"
  fi
done
echo "fuzzing took $(( $(date +%s) - start )) s in all"
exit $status
