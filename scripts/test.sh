#!/usr/bin/env bash
# Builds hummingbird and runs the whole test suite (golden vectors are read from HB_SHARED, default ../shared),
# then the GPU tests against the GPU backend's real kernel sources on the CPU emulator (-DHB_GPU_EMU=ON: no
# GPU or CUDA toolkit needed; HB_SKIP_GPU_EMU=1 leaves that part out).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release ${HB_SHARED:+-DHB_SHARED="$HB_SHARED"} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)" "$@"
if [ -z "${HB_SKIP_GPU_EMU:-}" ]; then
    cmake -S . -B "$BUILD-emu" -DCMAKE_BUILD_TYPE=Release -DHB_GPU_EMU=ON ${HB_SHARED:+-DHB_SHARED="$HB_SHARED"} >/dev/null
    cmake --build "$BUILD-emu" -j"$(nproc)" --target hb test_gpu_ops test_gpu_golden
    ctest --test-dir "$BUILD-emu" -L gpu --output-on-failure -j"$(nproc)"
fi
