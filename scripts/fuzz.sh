#!/usr/bin/env bash
# Fuzzes vit-lens' input-facing entry points with cargo-fuzz (libFuzzer + AddressSanitizer):
# checkpoint files, images and preprocessor configs, model references, page<->worker
# messages, and a checkpoint run end to end on the CPU. See fuzz/README.md.
#
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS (default 60) each, one at a time
#   scripts/fuzz.sh engine protocol only these targets
#   scripts/fuzz.sh --replay        runs every input under fuzz/regressions/<target>/ once and
#                                   says which still fail (exit 1 if any does)
#
# Environment:
#   FUZZ_SECONDS   time per target (libFuzzer -max_total_time), default 60
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang, default 20
#   FUZZ_RSS_MB    memory ceiling (-rss_limit_mb and -malloc_limit_mb), default 2048
#
# A target with a dictionary (fuzz/dicts/<target>.dict: the JSON keys its parsers look for)
# gets it as -dict. Seeds (fuzz/seeds/<target>/, committed) are copied into a scratch corpus
# (fuzz/corpus/<target>/, not committed) that keeps growing between runs. A crash, an abort,
# an out-of-memory or a hang stops that target and leaves the input in
# fuzz/artifacts/<target>/; the script goes on with the other targets and exits 1 at the end.
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address) to rustc; on a stable toolchain
# RUSTC_BOOTSTRAP=1 lets it do so.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TIMEOUT="${FUZZ_TIMEOUT:-20}"
RSS_MB="${FUZZ_RSS_MB:-2048}"
CARGO_FUZZ_VERSION=0.13.2
# Build flags: `cargo fuzz run` must get the same ones as `cargo fuzz build`, or it rebuilds.
BUILD_FLAGS=(--codegen-units 16)
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked \
    || cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

replay=0
if [ "${1:-}" = "--replay" ]; then
  replay=1
  shift
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "==> building the fuzz targets"
cargo fuzz build "${BUILD_FLAGS[@]}"

LIMITS=(-timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB")

if [ "$replay" = 1 ]; then
  still_failing=0
  replay_log=$(mktemp)
  for target in "${targets[@]}"; do
    for input in fuzz/regressions/"$target"/*; do
      [ -f "$input" ] || continue
      if cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "$input" -- "${LIMITS[@]}" >"$replay_log" 2>&1; then
        echo "ok      $input"
      else
        echo "FAILS   $input"
        grep -E '^(==[0-9]+== ?ERROR|thread .* panicked)' "$replay_log" | head -n 2 | sed 's/^/        /'
        still_failing=1
      fi
    done
  done
  exit "$still_failing"
fi

failed=()
summary=()
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  if [ -d "fuzz/seeds/$target" ]; then
    cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  fi
  dict=()
  if [ -f "fuzz/dicts/$target.dict" ]; then
    dict=(-dict="fuzz/dicts/$target.dict")
  fi
  log="fuzz/artifacts/$target/last-run.log"
  echo "==> fuzzing $target for ${SECONDS_PER_TARGET}s"
  start=$(date +%s)
  status=0
  cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "$corpus" -- \
    -max_total_time="$SECONDS_PER_TARGET" "${LIMITS[@]}" "${dict[@]}" -print_final_stats=1 >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  line="$target: ${execs:-?} executions in ${elapsed}s"
  if [ "$status" -ne 0 ]; then
    line="$line — FAILED (exit $status), see $log and fuzz/artifacts/$target/"
    failed+=("$target")
    grep -E '^(==[0-9]+== ?ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -n 8 || true
  fi
  echo "$line"
  summary+=("$line")
done

echo "==> summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "targets with findings: ${failed[*]}"
  exit 1
fi
