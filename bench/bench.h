/* Shared helpers for the bench/ programs: medians and the machine's f32 FMA peak.
 * The peak is a pure-FMA register loop (12 independent 8-wide FMA chains per thread, no memory traffic) run on
 * every pool thread at once: the most f32 GFLOP/s the cores can issue, the yardstick for every GEMM-bound ratio. */
#ifndef HB_BENCH_H
#define HB_BENCH_H

#include "core/core.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

static inline int bench_cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), bench_cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Process CPU seconds (all threads): on a machine shared with other jobs, flops / CPU-second compared with the
 * peak's flops / CPU-second is a ratio that does not depend on how much of the wall time we were scheduled. */
static inline double bench_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define BENCH_PEAK_ITERS 50000000LL

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static inline float bench_fma_loop(long long iters, float seed) {
    /* distinct starting values: identical chains would be merged into one by the compiler */
    __m256 a0 = _mm256_set1_ps(seed), a1 = _mm256_set1_ps(seed + 1), a2 = _mm256_set1_ps(seed + 2),
           a3 = _mm256_set1_ps(seed + 3), a4 = _mm256_set1_ps(seed + 4), a5 = _mm256_set1_ps(seed + 5),
           a6 = _mm256_set1_ps(seed + 6), a7 = _mm256_set1_ps(seed + 7), a8 = _mm256_set1_ps(seed + 8),
           a9 = _mm256_set1_ps(seed + 9), a10 = _mm256_set1_ps(seed + 10), a11 = _mm256_set1_ps(seed + 11);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c); a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c); a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c); a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c); a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}
#define BENCH_FLOPS_PER_ITER (12 * 8 * 2)
#else
static inline float bench_fma_loop(long long iters, float seed) {
    float a[16];
    for (int j = 0; j < 16; j++) a[j] = seed + (float)j;
    for (long long i = 0; i < iters; i++)
        for (int j = 0; j < 16; j++) a[j] = a[j] * 0.999999f + 1e-7f;
    return a[0];
}
#define BENCH_FLOPS_PER_ITER (16 * 2)
#endif

typedef struct { long long iters; volatile float sink; } bench_peak_ctx;
static inline void bench_peak_task(void *ctx, int64_t b, int64_t e) {
    bench_peak_ctx *c = ctx;
    for (int64_t i = b; i < e; i++) c->sink += bench_fma_loop(c->iters, 1.0f + (float)i);
}

/* f32 FMA peak over all pool threads (median of 3): GFLOP/s of wall time, and GFLOP per CPU-second (per core). */
typedef struct { double wall_gflops, cpu_gflops; } bench_peak;
static inline bench_peak bench_peak_measure(void) {
    int nt = hb_threads_count();
    bench_peak_ctx c = {BENCH_PEAK_ITERS / 4, 0};
    double r[3], rc[3];
    bench_fma_loop(BENCH_PEAK_ITERS / 8, 1.0f); /* warm up the clocks */
    for (int k = 0; k < 3; k++) {
        double t0 = hb_time_now(), c0 = bench_cpu_now();
        hb_parallel_for(nt, 1, bench_peak_task, &c);
        double dt = hb_time_now() - t0, dc = bench_cpu_now() - c0;
        r[k] = (double)c.iters * BENCH_FLOPS_PER_ITER * nt / dt * 1e-9;
        rc[k] = (double)c.iters * BENCH_FLOPS_PER_ITER * nt / dc * 1e-9;
    }
    bench_peak p = {bench_median(r, 3), bench_median(rc, 3)};
    return p;
}
static inline double bench_peak_gflops(void) { return bench_peak_measure().wall_gflops; }

#endif
