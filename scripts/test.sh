#!/usr/bin/env bash
# Builds hummingbird and runs the whole test suite (golden vectors are read from HB_SHARED, default ../shared),
# then the GPU tests against the GPU backend's real kernel sources on the CPU emulator (-DHB_GPU_EMU=ON: no
# GPU or CUDA toolkit needed; HB_SKIP_GPU_EMU=1 leaves that part out), then, when clang is installed, a clang
# build of everything with warnings as errors plus a few fast tests, and each fuzz target for HB_FUZZ_SECONDS
# (default 10) with its execution count (HB_SKIP_CLANG=1 leaves that part out).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release ${HB_SHARED:+-DHB_SHARED="$HB_SHARED"} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)" "$@"
if [ -z "${HB_SKIP_GPU_EMU:-}" ]; then
    cmake -S . -B "$BUILD-emu" -DCMAKE_BUILD_TYPE=Release -DHB_GPU_EMU=ON ${HB_SHARED:+-DHB_SHARED="$HB_SHARED"} >/dev/null
    cmake --build "$BUILD-emu" -j"$(nproc)" --target hb test_gpu_ops test_gpu_golden test_gpu_train
    ctest --test-dir "$BUILD-emu" -L gpu --output-on-failure -j"$(nproc)"
fi
if [ -z "${HB_SKIP_CLANG:-}" ]; then
    CLANG=$(command -v clang-14 || command -v clang || true)
    if [ -n "$CLANG" ]; then
        CC="$CLANG" cmake -S . -B "$BUILD-clang" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-Werror \
            ${HB_SHARED:+-DHB_SHARED="$HB_SHARED"} >/dev/null
        cmake --build "$BUILD-clang" -j"$(nproc)"
        ctest --test-dir "$BUILD-clang" --output-on-failure -j"$(nproc)" \
            -R '^test_(core|io|io_pth|config_fields|image|ops_gemm|tokenizer)$'
        JOBS="$(nproc)" scripts/fuzz.sh "${HB_FUZZ_SECONDS:-10}"
    else
        echo "clang not found: the clang build and the fuzz run are skipped (scripts/setup-debian.sh installs it)"
    fi
fi
