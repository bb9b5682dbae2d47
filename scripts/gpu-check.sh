#!/usr/bin/env bash
# Prepares the GPU device check on THIS machine (no GPU needed): builds build-gpu with the CUDA backend for
# Hopper (sm_90), stages the programs the device run needs plus every non-system shared library they load into
# build-gpu/dist/{bin,lib}, copies the golden vectors and tokenizers into .gpu-shared/, checks that what
# travels to the device stays under its 64 MiB limit, and prints the exact device `run` call.
#
#   scripts/gpu-check.sh             # CUDA build (needs nvcc; CUDA_ARCH=90 by default)
#   scripts/gpu-check.sh --no-cuda   # the same packaging with a CPU-only build: dry-runs scripts/gpu-run.sh here
#   env: JOBS (default 2), CUDA_ARCH (default 90), SHARED (default ../shared)
#
# The build leaves out OpenBLAS (35 MB + libgfortran) and FFmpeg (~100 MB of codec libraries): the device run
# compares against the CPU kernels (AVX2/generic GEMM) and writes PNG frames, so neither is needed, and neither
# would fit the 64 MiB the device call carries. libcudart (0.7 MB) is carried (used there only if the device
# lacks that soname); cuBLASLt (540 MB) and the driver are not: the device image has the CUDA 13 toolkit, and
# scripts/gpu-run.sh finds them there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CUDA=1
[ "${1:-}" = "--no-cuda" ] && CUDA=0
JOBS=${JOBS:-2}
ARCH=${CUDA_ARCH:-90}
SHARED=${SHARED:-$ROOT/../shared}
B=build-gpu
DIST=$B/dist
LIMIT=$((64 * 1024 * 1024))

say() { printf '== %s\n' "$*"; }
die() { printf 'gpu-check: %s\n' "$*" >&2; exit 1; }

# 1. configure: only the dependencies the device run needs (pkg-config sees jansson, libzip, libpng, zlib only)
PC=$(mktemp -d)
trap 'rm -rf "$PC"' EXIT
for f in jansson libzip libpng libpng16 zlib; do
    p=$(pkg-config --variable=pcfiledir "$f" 2>/dev/null || true)
    [ -n "$p" ] && ln -sf "$p/$f.pc" "$PC/$f.pc"
done
rm -f "$B/CMakeCache.txt"   # a fresh configure: cached pkg-config results (OpenBLAS, FFmpeg) must not survive
CM=(-DCMAKE_BUILD_TYPE=Release)
if [ $CUDA = 1 ]; then
    command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || die "nvcc not found (CUDA toolkit at /usr/local/cuda?)"
    NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    CM+=(-DHB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_CUDA_COMPILER="$NVCC")
fi
say "configure $B (${CM[*]})"
PKG_CONFIG_LIBDIR=$PC cmake -S . -B "$B" "${CM[@]}" > "$PC/configure.log" 2>&1 || { cat "$PC/configure.log"; die "configure failed"; }
cp "$PC/configure.log" "$B/configure.log"
if [ $CUDA = 1 ] && ! grep -q '^HB_CUDA:BOOL=ON' "$B/CMakeCache.txt"; then
    die "CMakeLists.txt has no HB_CUDA option yet (the CUDA backend's CMake part has not landed)"
fi
grep -q '^OPENBLAS_FOUND:INTERNAL=1' "$B/CMakeCache.txt" && die "OpenBLAS was found despite the trimmed pkg-config path"

# 2. build only what the device run uses: hb, every tests/test_gpu_*.c, bench_gpu
TARGETS=(hb bench_gpu)
for t in tests/test_gpu_*.c; do TARGETS+=("$(basename "$t" .c)"); done
say "build ${TARGETS[*]} (-j$JOBS)"
cmake --build "$B" -j"$JOBS" --target "${TARGETS[@]}" 2>&1 | tee "$B/build.log" | grep -E 'warning:|error:' || true
for t in "${TARGETS[@]}"; do [ -x "$B/$t" ] || die "$B/$t was not built (see $B/build.log)"; done
if grep -qE 'warning:' "$B/build.log"; then say "NOTE: the build printed warnings (see $B/build.log)"; fi

# The binary must have the GPU backend: its error for -d cuda on a machine without a GPU must not be "no GPU backend".
msg=$("$B/hb" golden -d cuda /nonexistent 2>&1 || true)
if [ $CUDA = 1 ] && printf '%s' "$msg" | grep -q 'has no GPU backend'; then die "build-gpu/hb has no GPU backend: $msg"; fi
say "hb -d cuda here says: $(printf '%s' "$msg" | head -1)"

# 3. stage binaries + non-system libraries
rm -rf "$DIST"
mkdir -p "$DIST/bin" "$DIST/lib"
for t in "${TARGETS[@]}"; do cp "$B/$t" "$DIST/bin/"; strip --strip-debug "$DIST/bin/$t" 2>/dev/null || true; done
# system libraries every Linux has (glibc, the C++ runtime, gcc's runtime) and the CUDA driver / toolkit libraries
# (the device's own must be used) are left out
SYSTEM_RE='^(linux-vdso|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|ld-linux|libstdc\+\+|libgcc_s|libcuda\.so|libcublas|libcublasLt|libcudnn|libnvrtc|libnvJitLink|libnvidia|libhipblas|libamdhip|librocblas)'
missing=""
for f in "$DIST"/bin/*; do
    while read -r name arrow path _; do
        [ "$arrow" = "=>" ] || continue
        if printf '%s' "$name" | grep -qE "$SYSTEM_RE"; then continue; fi
        if [ "$path" = "not" ]; then missing+=" $name"; continue; fi
        [ -e "$DIST/lib/$name" ] || cp -L "$path" "$DIST/lib/$name"
    done < <(ldd "$f")
done
[ -z "$missing" ] || say "NOTE: not found here (must come from the device): $missing"
say "bundled: $(cd "$DIST/lib" && ls | tr '\n' ' ')"

# 4. shared data
if [ -d "$SHARED/golden" ]; then
    rm -rf .gpu-shared
    mkdir -p .gpu-shared
    cp -r "$SHARED/golden" .gpu-shared/
    [ -d "$SHARED/tokenizers" ] && cp -r "$SHARED/tokenizers" .gpu-shared/
else
    say "NOTE: $SHARED/golden not found: the device run will skip the golden files"
fi
git check-ignore -q .gpu-shared/x || die ".gpu-shared/ is not git-ignored (add /.gpu-shared/ to .gitignore)"
git check-ignore -q "$DIST/x" || die "$DIST is not git-ignored"

# 5. what travels: tracked + untracked-not-ignored files (+ shared/ inside the checkout) + the carried paths
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
[ -d shared ] && tree=$((tree + $(du -sb shared | cut -f1)))
carry=$(du -sb "$DIST" | cut -f1)
gs=0
[ -d .gpu-shared ] && gs=$(du -sb .gpu-shared | cut -f1)
total=$((tree + carry + gs))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
say "travels: tree $(mib "$tree") + $DIST $(mib "$carry") + .gpu-shared $(mib "$gs") = $(mib "$total") (limit 64 MiB)"
[ "$total" -lt "$LIMIT" ] || die "over the 64 MiB limit: trim $DIST (largest: $(cd "$DIST" && du -ab | sort -n | tail -4 | tr '\n' ' '))"

# 6. the call to make
cat <<EOF

Device call (one call runs everything; expected 2-4 minutes of device time, the script caps each step):
  run(command="bash scripts/gpu-run.sh", carry=["$DIST", ".gpu-shared"], timeout_s=540)
Logs come back in \$OUT: summary.txt, env.txt, tests.log, bench.log, sanitizer.log.
Then give_back() unless a rerun follows at once.
EOF
