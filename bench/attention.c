/* Attention benchmark: hb_attention (self-attention, Lq = Lk = tokens, or cross-attention with --keys; head_dim 128) at DiT lengths,
 * GFLOP/s counted as 4 * Lq * Lk * d * heads (QK^T and PV), against the f32 FMA peak measured in the same run.
 * Usage: bench_attention [--tokens N[,N...]] [--heads H] [--keys K] [--reps R] [--full]
 *   --keys K: cross-attention of the tokens to K keys (the DiT's 512 text tokens) instead of self-attention
 *   default: 1560 and 4680 tokens, 24 heads (Wan 2.2 5B; the 1.3B model has 12), 3 repetitions for <= 4096
 *   tokens and 1 above (median); --full adds 32760 tokens (several minutes). */
#include "bench.h"
#include "ops/ops.h"
#include <math.h>

int main(int argc, char **argv) {
    int64_t tokens[8] = {1560, 4680};
    int ntok = 2, heads = 24, reps = 3, d = 128;
    int64_t keys = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            ntok = 0;
            for (char *s = argv[++i]; *s && ntok < 8;) {
                tokens[ntok++] = strtoll(s, &s, 10);
                if (*s == ',') s++;
            }
        } else if (!strcmp(argv[i], "--heads") && i + 1 < argc) heads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--keys") && i + 1 < argc) keys = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--full")) { tokens[ntok < 8 ? ntok++ : 7] = 32760; }
        else { fprintf(stderr, "usage: %s [--tokens N,N] [--heads H] [--keys K] [--reps R] [--full]\n", argv[0]); return 2; }
    }
    hb_threads_init(0);
    bench_peak pk = bench_peak_measure();
    double peak = pk.wall_gflops;
    printf("threads %d, kernels %s, f32 FMA peak (pure-FMA register loop) %.1f GFLOP/s wall, %.1f GFLOP per CPU-second\n",
           hb_threads_count(), hb_cpu_kernel_name(), peak, pk.cpu_gflops);
    printf("%-7s %5s %5s %4s %5s %10s %9s %7s %6s %7s\n", "tokens", "keys", "heads", "d", "reps", "ms", "GFLOP/s", "peak", "ratio",
           "cpu-rat");
    for (int t = 0; t < ntok; t++) {
        int64_t L = tokens[t], hd = (int64_t)heads * d, Lk = keys > 0 ? keys : L, Lm = L > Lk ? L : Lk;
        float *q = hb_malloc(sizeof(float) * (size_t)(Lm * hd), "q"), *k = hb_malloc(sizeof(float) * (size_t)(Lm * hd), "k");
        float *v = hb_malloc(sizeof(float) * (size_t)(Lm * hd), "v"), *o = hb_malloc(sizeof(float) * (size_t)(L * hd), "o");
        if (!q || !k || !v || !o) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        hb_rng r;
        hb_rng_seed(&r, 7);
        for (int64_t i = 0; i < Lm * hd; i++) { q[i] = hb_rng_normal(&r); k[i] = hb_rng_normal(&r); v[i] = hb_rng_normal(&r); }
        hb_attention_args a = {o, q, k, v, L, Lk, heads, d, hd, hd, hd, hd, 1.0f / sqrtf((float)d), NULL, NULL};
        int nr = L <= 4096 ? reps : 1;
        if (nr > 16) nr = 16;
        if (nr < 1) nr = 1;
        double ms[16], cs[16];
        pk = bench_peak_measure(); /* the peak right before: the machine may be shared */
        peak = pk.wall_gflops;
        for (int i = 0; i < nr; i++) {
            double t0 = hb_time_now(), c0 = bench_cpu_now();
            hb_attention(&a);
            ms[i] = (hb_time_now() - t0) * 1e3;
            cs[i] = bench_cpu_now() - c0;
        }
        double fl = 4.0 * L * Lk * d * heads, med = bench_median(ms, nr), gf = fl / (med * 1e-3) * 1e-9;
        double cg = fl / bench_median(cs, nr) * 1e-9;
        printf("%-7lld %5lld %5d %4d %5d %10.1f %9.1f %7.1f %6.3f %7.3f\n", (long long)L, (long long)Lk, heads, d, nr, med, gf, peak,
               gf / peak, cg / pk.cpu_gflops);
        fflush(stdout);
        hb_free(q); hb_free(k); hb_free(v); hb_free(o);
    }
    hb_threads_shutdown();
    return 0;
}
