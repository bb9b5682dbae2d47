#!/usr/bin/env bash
# The GPU device check, run ON the device machine (prepared here by scripts/gpu-check.sh, which prints the call):
#   1. environment: nvidia-smi, the CUDA libraries the binaries need (found on the device, see below);
#   2. every staged test_gpu_* program (test_gpu_ops, test_gpu_golden, ... from build-gpu/dist/bin), run directly
#      with HB_BIN / HB_SHARED set. Not through ctest: the CTestTestfile.cmake of build-gpu holds this
#      machine's absolute paths (its build folder), and the device runs a copy of the repo elsewhere;
#   3. bench_gpu (the table with the measured bf16 peak);
#   4. test_gpu_ops again with HB_GPU_PRECISE=1 (f32 linear/attention, held to 2e-5) and with HB_GPU_FP8=1
#      (the opt-in e4m3 linear against the error measured on the emulator);
#   5. test_gpu_ops under compute-sanitizer memcheck (out-of-bounds / misaligned device accesses).
# Every step has a time cap, and all of them share a budget (HB_GPU_BUDGET seconds, default 480: the device
# call's timeout_s of 540 leaves time for the transfers); a step that no longer fits is reported NOT RUN; logs are tee'd into $OUT (summary.txt, env.txt, tests.log, bench.log,
# sanitizer.log) and the summary is printed last.
#
# Exit status: 0 when nothing failed; 1 when a step failed, or when a GPU is present (nvidia-smi sees one) but a
# test skipped (the cuda backend did not come up: that is a failure there, not a skip). Without a GPU (a dry run
# on a CPU machine: OUT defaults to ./gpu-out) every GPU step skips and the script exits 0 saying so.
# env: OUT, HB_GPU_DIST (default build-gpu/dist), HB_SHARED (default .gpu-shared), HB_TEST_DEVICE (default cuda),
#      HB_GPU_NO_SANITIZER=1 to leave step 5 out, HB_GPU_BUDGET.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
DIST=${HB_GPU_DIST:-$ROOT/build-gpu/dist}
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
export HB_SHARED=${HB_SHARED:-$ROOT/.gpu-shared}
export HB_BIN=$DIST/bin/hb
export HB_TEST_DEVICE=${HB_TEST_DEVICE:-cuda}
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
: > "$OUT/tests.log"
fails=0 skips=0
note() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }

[ -x "$HB_BIN" ] || { note "FAIL: $HB_BIN missing: run scripts/gpu-check.sh first and carry build-gpu/dist"; exit 1; }

# ---- 1. environment
{
    echo "== date: $(date -u)   host: $(uname -nrm)"
    echo "== nvidia-smi"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || true
    command -v nvcc >/dev/null && nvcc --version | tail -2
} > "$OUT/env.txt" 2>&1
GPU=0
nvidia-smi -L 2>/dev/null | grep -q '^GPU ' && GPU=1

# Libraries: bundled ones (build-gpu/dist/lib) only where the system lacks that soname (a system copy of the
# same soname is ABI-compatible and usually newer); CUDA's (cuBLASLt, cuDNN, ...) from the device's toolkit or
# the Python wheels of its image.
LIBDIR=$(mktemp -d)
for f in "$DIST"/lib/*; do
    [ -e "$f" ] || continue
    n=$(basename "$f")
    ldconfig -p 2>/dev/null | awk -v n="$n" '$1 == n {f = 1} END {exit !f}' || ln -sf "$f" "$LIBDIR/$n"
done
LDP=$LIBDIR
need_dirs() {  # directories holding the libraries the binaries cannot find yet
    for b in "$DIST"/bin/*; do LD_LIBRARY_PATH=$LDP ldd "$b" 2>/dev/null | awk '/not found/ {print $1}'; done | sort -u
}
for lib in $(need_dirs); do
    hit=""
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do
        [ -e "$d/$lib" ] && { hit=$d; break; }
    done
    [ -z "$hit" ] && hit=$(find /usr/local /opt /usr/lib -maxdepth 9 -name "$lib" 2>/dev/null | head -1 | xargs -r dirname)
    [ -n "$hit" ] && LDP=$LDP:$hit
done
export LD_LIBRARY_PATH=$LDP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
    echo "== LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    echo "== ldd $HB_BIN"
    ldd "$HB_BIN"
} >> "$OUT/env.txt" 2>&1
still=$(need_dirs | tr '\n' ' ')
cat "$OUT/env.txt"
note "gpu-run: GPU present: $([ $GPU = 1 ] && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || echo no)"
[ -n "${still// /}" ] && { note "FAIL: libraries not found anywhere: $still"; fails=$((fails + 1)); }

# ---- 2.-4. steps
BUDGET=${HB_GPU_BUDGET:-480}
run_step() {  # name cap log command...
    local name=$1 cap=$2 log=$3
    shift 3
    local left=$((BUDGET - SECONDS - 10))
    if [ "$left" -lt 20 ]; then note "$(printf '%-40s %s' "$name" "NOT RUN (time budget spent)")"; return; fi
    [ "$cap" -gt "$left" ] && cap=$left
    local t0=$SECONDS rc
    echo "==================== $name (cap ${cap}s)" >> "$log"
    timeout --kill-after=10 "$cap" "$@" >> "$log" 2>&1
    rc=$?
    local dt=$((SECONDS - t0)) st
    case $rc in
        0) st=PASS ;;
        77) if [ $GPU = 1 ]; then st="FAIL (skipped although a GPU is present)"; fails=$((fails + 1));
            else st=SKIP; skips=$((skips + 1)); fi ;;
        124|137) st="FAIL (timed out after ${cap}s)"; fails=$((fails + 1)) ;;
        *) st="FAIL (exit $rc)"; fails=$((fails + 1)) ;;
    esac
    note "$(printf '%-40s %-44s %4ds' "$name" "$st" "$dt")"
    tail -n 3 "$log" | sed 's/^/    | /' | tee -a "$SUMMARY"
}

for t in "$DIST"/bin/test_gpu_*; do
    [ -x "$t" ] || continue
    run_step "$(basename "$t")" 200 "$OUT/tests.log" "$t"
done
run_step "bench_gpu" 150 "$OUT/bench.log" "$DIST/bin/bench_gpu" -d "$HB_TEST_DEVICE"
if [ $GPU = 1 ]; then
    run_step "test_gpu_ops HB_GPU_PRECISE=1" 120 "$OUT/tests.log" env HB_GPU_PRECISE=1 "$DIST/bin/test_gpu_ops"
    run_step "test_gpu_ops HB_GPU_FP8=1" 120 "$OUT/tests.log" env HB_GPU_FP8=1 "$DIST/bin/test_gpu_ops"
fi
if [ $GPU = 1 ] && [ "${HB_GPU_NO_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null; then
    run_step "compute-sanitizer memcheck test_gpu_ops" 150 "$OUT/sanitizer.log" \
        compute-sanitizer --tool memcheck --leak-check no --error-exitcode 3 "$DIST/bin/test_gpu_ops"
else
    note "compute-sanitizer step left out (no GPU, not installed, or HB_GPU_NO_SANITIZER=1)"
fi

echo
echo "==================== bench table"
grep -E '^(bench_gpu|case|hb_linear|linear|attention|5B|conv3d)' "$OUT/bench.log" | head -20
echo "==================== summary"
cat "$SUMMARY"
rm -rf "$LIBDIR"
if [ $fails -gt 0 ]; then echo "gpu-run: $fails step(s) FAILED"; exit 1; fi
if [ $GPU = 0 ]; then echo "gpu-run: no GPU on this machine: $skips GPU step(s) skipped cleanly (dry run)"; exit 0; fi
echo "gpu-run: all GPU steps passed"
exit 0
