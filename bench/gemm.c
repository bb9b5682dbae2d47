/* GEMM benchmark: hb_linear at the DiT shapes (tokens x N x K for Wan 2.2 5B, dim 3072 / ffn 14336, and Wan 2.1
 * 1.3B, dim 1536 / ffn 8960), F32, BF16, Q8_0 and Q4_K weights (Q8_0 / Q4_K: the integer kernels on Q8_0 / Q8_K
 * activations, the kernel named in the path column; their figure is int8 GOP/s, beside the f32 peak), every available GEMM path,
 * against the machine's f32 FMA peak
 * measured in the same run (bench.h: pure-FMA register loop on every thread). "ratio" is wall GFLOP/s over the wall
 * peak; "cpu-rat" is GFLOP per CPU-second over the peak's (robust when other jobs share the cores).
 * Usage: bench_gemm [--tokens N[,N...]] [--reps R] [--paths avx2,openblas,generic] [--types f32,bf16,q8_0,q4_k] [--full]
 *   default: 1024 tokens, 3 repetitions (median), paths avx2 and openblas; --full adds 4096 tokens. */
#include "bench.h"
#include "ops/ops_internal.h"

static void fill(float *x, int64_t n, uint64_t seed) {
    hb_rng r;
    hb_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = hb_rng_uniform(&r) - 0.5f;
}

int main(int argc, char **argv) {
    int64_t tokens[8] = {1024};
    int ntok = 1, reps = 3;
    const char *paths = "avx2,openblas", *types = "f32,bf16,q8_0,q4_k";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            ntok = 0;
            for (char *s = argv[++i]; *s && ntok < 8;) {
                tokens[ntok++] = strtoll(s, &s, 10);
                if (*s == ',') s++;
            }
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--paths") && i + 1 < argc) paths = argv[++i];
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--full")) { tokens[0] = 1024; tokens[1] = 4096; ntok = 2; }
        else { fprintf(stderr, "usage: %s [--tokens N,N] [--reps R] [--paths avx2,openblas,generic] [--types f32,bf16,q8_0,q4_k] [--full]\n", argv[0]); return 2; }
    }
    if (reps < 1) reps = 1;
    hb_threads_init(0);
    bench_peak pk = bench_peak_measure();
    double peak = pk.wall_gflops;
    printf("threads %d, default GEMM path %s, f32 FMA peak (pure-FMA register loop) %.1f GFLOP/s wall, %.1f GFLOP per "
           "CPU-second\n", hb_threads_count(), hb_cpu_kernel_name(), peak, pk.cpu_gflops);
    const struct { const char *name; int64_t N, K; } shapes[] = {
        {"5B qkv/o", 3072, 3072}, {"5B ffn1", 14336, 3072}, {"5B ffn2", 3072, 14336},
        {"1.3B qkv/o", 1536, 1536}, {"1.3B ffn1", 8960, 1536}, {"1.3B ffn2", 1536, 8960}};
    int nshape = (int)(sizeof shapes / sizeof shapes[0]);
    int64_t maxM = 0, maxW = 0, maxY = 0;
    for (int t = 0; t < ntok; t++) maxM = tokens[t] > maxM ? tokens[t] : maxM;
    for (int s = 0; s < nshape; s++) {
        maxW = shapes[s].N * shapes[s].K > maxW ? shapes[s].N * shapes[s].K : maxW;
        int64_t xy = shapes[s].N > shapes[s].K ? shapes[s].N : shapes[s].K;
        maxY = xy > maxY ? xy : maxY;
    }
    float *x = hb_malloc(sizeof(float) * (size_t)(maxM * maxY), "x"), *y = hb_malloc(sizeof(float) * (size_t)(maxM * maxY), "y");
    float *wf = hb_malloc(sizeof(float) * (size_t)maxW, "w");
    uint16_t *wb = hb_malloc(2 * (size_t)maxW, "wb");
    void *wq = hb_malloc(hb_dtype_bytes(HB_Q8_0, maxW), "wq"), *wk = hb_malloc(hb_dtype_bytes(HB_Q4_K, maxW), "wk");
    if (!x || !y || !wf || !wb || !wq || !wk) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
    fill(x, maxM * maxY, 1);
    fill(wf, maxW, 2);
    hb_convert_from_f32(wb, HB_BF16, wf, (size_t)maxW);
    hb_quantize(wq, wf, HB_Q8_0, maxW); /* every shape's K is whole blocks (of 256): rows stay whole blocks */
    hb_quantize(wk, wf, HB_Q4_K, maxW);
    printf("%-7s %-11s %6s %6s %6s %-5s %-9s %9s %9s %7s %6s %7s\n", "tokens", "shape", "M", "N", "K", "W", "path", "ms",
           "GFLOP/s", "peak", "ratio", "cpu-rat");
    char pl[64];
    snprintf(pl, sizeof pl, "%s", paths);
    for (char *save = NULL, *p = strtok_r(pl, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (hb__gemm_select(p) != 0) { printf("(path %s not available)\n", p); continue; }
        for (int t = 0; t < ntok; t++)
            for (int s = 0; s < nshape; s++)
                for (int d = 0; d < 4; d++) {
                    int64_t M = tokens[t], N = shapes[s].N, K = shapes[s].K;
                    static const hb_dtype wt[4] = {HB_F32, HB_BF16, HB_Q8_0, HB_Q4_K};
                    void *const wd[4] = {wf, wb, wq, wk};
                    hb_tensor w = hb_tensor_2d(wt[d], N, K, wd[d]);
                    if (d >= 2 && strcmp(p, "avx2")) continue; /* the integer kernels do not depend on the f32 path */
                    static const char *const tn[4] = {"f32", "bf16", "q8_0", "q4_k"};
                    if (!strstr(types, tn[d])) continue;
                    double ms[16], cs[16];
                    int nr = reps < 16 ? reps : 16;
                    hb_linear(y, x, M, &w, NULL, false); /* warm-up */
                    pk = bench_peak_measure();           /* the peak right before: the machine may be shared */
                    peak = pk.wall_gflops;
                    for (int r = 0; r < nr; r++) {
                        double t0 = hb_time_now(), c0 = bench_cpu_now();
                        hb_linear(y, x, M, &w, NULL, false);
                        ms[r] = (hb_time_now() - t0) * 1e3;
                        cs[r] = bench_cpu_now() - c0;
                    }
                    double med = bench_median(ms, nr), gf = 2.0 * M * N * K / (med * 1e-3) * 1e-9;
                    double cg = 2.0 * M * N * K / bench_median(cs, nr) * 1e-9;
                    printf("%-7lld %-11s %6lld %6lld %6lld %-5s %-9s %9.2f %9.1f %7.1f %6.3f %7.3f\n", (long long)M,
                           shapes[s].name, (long long)M, (long long)N, (long long)K, hb_dtype_name(wt[d]), d >= 2 ? hb__qgemm_kernel() : p, med, gf,
                           peak, gf / peak, cg / pk.cpu_gflops);
                    fflush(stdout);
                }
    }
    hb_free(x); hb_free(y); hb_free(wf); hb_free(wb); hb_free(wq); hb_free(wk);
    hb_threads_shutdown();
    return 0;
}
