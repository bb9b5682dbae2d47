#!/bin/sh
# The CPU benchmark report in one command, for a quiet machine: every figure of the README's CPU benchmark table,
# each beside the f32 FMA peak measured in the same program. Run from the repository root after a Release build:
#   sh bench/cpu_report.sh [BUILD_DIR] > cpu_report.txt      (about 35 minutes on 2 cores; 12 GB free in $TMPDIR, 16 GB RAM)
# Parts: GEMM at the DiT shapes (F32, BF16, Q8_0), attention (self and cross, 24 and 12 heads), the light
# decoder's ops against the FMA peak and the memory bandwidth, threads beside a competing load, the 1.3B DiT forward
# from bf16 / Q8_0 / Q4_K_M files, the XT pipeline end to end (480x832, 17 frames, 3 steps, light decoder, random
# 5B-shaped weights), and PyTorch's forward on the 1.3B shapes (skipped where python3 has no torch).
set -e
B=${1:-build}
T=${TMPDIR:-/tmp}
for p in bench_gemm bench_attention bench_light_decoder bench_load bench_quant bench_xt; do
    [ -x "$B/$p" ] || { echo "cpu_report: $B/$p is missing (cmake --build $B first)" >&2; exit 2; }
done
run() { echo; echo "== $*"; start=$(date +%s); "$@"; echo "(${*%% *}: $(( $(date +%s) - start )) s)"; }
echo "cpu_report: $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg)"
run "$B/bench_gemm" --tokens 1024,4096 --reps 3 --paths avx2,openblas
run "$B/bench_gemm" --tokens 390,32760 --reps 1 --paths avx2 --types bf16,q8_0
run "$B/bench_attention" --tokens 1560,4680 --reps 3
run "$B/bench_attention" --tokens 1560,4680 --heads 12 --reps 3
run "$B/bench_attention" --tokens 1560,4680 --keys 512 --reps 3
run "$B/bench_light_decoder" --reps 2
run "$B/bench_load"
run "$B/bench_quant" --rounds 2 --tmp "$T"
run "$B/bench_xt" --size 832x480x17 --vae light
if command -v python3 >/dev/null && python3 -c "import torch" 2>/dev/null; then
    run python3 bench/pytorch_forward.py --arch wan2.1-1.3b --lat 2x30x52
else
    echo; echo "== PyTorch forward: skipped (python3 has no torch)"
fi
