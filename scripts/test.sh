#!/usr/bin/env bash
# Builds hummingbird and runs the whole test suite (golden vectors are read from HB_SHARED, default ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release ${HB_SHARED:+-DHB_SHARED="$HB_SHARED"} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)" "$@"
