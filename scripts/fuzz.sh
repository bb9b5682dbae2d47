#!/usr/bin/env bash
# Fuzz the checkpoint readers with libFuzzer: builds a separate clang build (build-fuzz, -DHB_FUZZ=ON:
# the whole library instrumented with -fsanitize=fuzzer-no-link,address,undefined) and runs each target
# for SECONDS (default 60) on a copy of its seed corpus (fuzz/corpus/<target>/). New inputs go to
# build-fuzz/corpus/<target>/; crashes to build-fuzz/crashes/<target>/. Exit status 1 if any target failed.
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]      (targets: fuzz_safetensors fuzz_index_json fuzz_pth fuzz_gguf)
#   env:   CC (default clang-14, else clang), BUILD (default build-fuzz), JOBS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(fuzz_safetensors fuzz_index_json fuzz_pth fuzz_gguf)
BUILD=${BUILD:-build-fuzz}
JOBS=${JOBS:-2}
if [ -z "${CC:-}" ]; then
  if command -v clang-14 >/dev/null; then CC=clang-14; elif command -v clang >/dev/null; then CC=clang
  else echo "fuzz.sh: clang not found (set CC)" >&2; exit 1; fi
fi
CC="$CC" cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHB_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$t"
  crashes="$BUILD/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  echo "== $t: ${SECS}s"
  if "$BUILD/$t" "${dict[@]}" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus" 2>"$BUILD/$t.log"; then
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov:" "$BUILD/$t.log" | tail -3 || true
  else
    status=1
    echo "!! $t failed; log: $BUILD/$t.log, inputs: $crashes/" >&2
    grep -E "ERROR|runtime error|SUMMARY" "$BUILD/$t.log" | head -5 >&2 || true
  fi
done
exit $status
