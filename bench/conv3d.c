/* Conv3d benchmark at Wan-VAE-like shapes (causal 3x3x3 convs of the decoder stages, the (3,1,1) time conv of the
 * temporal upsampler, the 2-D 3x3 spatial resample conv, a 1x1x1 shortcut, the 96->3 output conv, a TAEHV-like
 * 64-channel conv2d), BF16 weights, GFLOP/s = 2 * Cout * Cin/groups * k * outputs, against the f32 FMA peak
 * measured in the same run. Usage: bench_conv3d [--reps R] [--scale S] (S multiplies H and W; default 1). */
#include "bench.h"
#include "ops/ops.h"

int main(int argc, char **argv) {
    int reps = 3, scale = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = atoi(argv[++i]);
        else { fprintf(stderr, "usage: %s [--reps R] [--scale S]\n", argv[0]); return 2; }
    }
    if (reps < 1) reps = 1;
    if (reps > 16) reps = 16;
    if (scale < 1) scale = 1;
    hb_threads_init(0);
    bench_peak pk = bench_peak_measure();
    double peak = pk.wall_gflops;
    printf("threads %d, kernels %s, f32 FMA peak (pure-FMA register loop) %.1f GFLOP/s wall, %.1f GFLOP per CPU-second\n",
           hb_threads_count(), hb_cpu_kernel_name(), peak, pk.cpu_gflops);
    const struct { const char *name; int cin, cout, t, h, w, kt, kh, kw, s, ptl, ph, groups; } S[] = {
        {"dec384 3x3x3", 384, 384, 4, 32, 32, 3, 3, 3, 1, 2, 1, 1},
        {"dec192 3x3x3", 192, 192, 4, 64, 64, 3, 3, 3, 1, 2, 1, 1},
        {"dec96 3x3x3", 96, 96, 4, 128, 128, 3, 3, 3, 1, 2, 1, 1},
        {"time 3x1x1", 384, 768, 4, 32, 32, 3, 1, 1, 1, 2, 0, 1},
        {"resample 2d", 384, 384, 1, 64, 64, 1, 3, 3, 1, 0, 1, 1},
        {"shortcut 1x1x1", 192, 384, 4, 64, 64, 1, 1, 1, 1, 0, 0, 1},
        {"head 96->3", 96, 3, 4, 128, 128, 3, 3, 3, 1, 2, 1, 1},
        {"taehv 64 2d", 64, 64, 1, 256, 256, 1, 3, 3, 1, 0, 1, 1},
        {"depthwise 3x3x3", 384, 384, 4, 32, 32, 3, 3, 3, 1, 2, 1, 384},
    };
    printf("%-16s %5s %5s %3s %5s %5s %-6s %9s %9s %7s %6s %7s\n", "shape", "Cin", "Cout", "T", "H", "W", "k", "ms",
           "GFLOP/s", "peak", "ratio", "cpu-rat");
    for (size_t i = 0; i < sizeof S / sizeof S[0]; i++) {
        int64_t H = (int64_t)S[i].h * scale, W = (int64_t)S[i].w * scale, cin_g = S[i].cin / S[i].groups;
        int64_t nx = (int64_t)S[i].cin * S[i].t * H * W, nw = (int64_t)S[i].cout * cin_g * S[i].kt * S[i].kh * S[i].kw;
        hb_conv3d_params p = {{1, S[i].s, S[i].s}, {S[i].ptl, 0}, {S[i].ph, S[i].ph}, {S[i].ph, S[i].ph}, S[i].groups, HB_CONV_FAST};
        int64_t shape[5] = {S[i].cout, cin_g, S[i].kt, S[i].kh, S[i].kw};
        uint16_t *wb = hb_malloc(2 * (size_t)nw, "w");
        float *x = hb_malloc(sizeof(float) * (size_t)nx, "x");
        hb_tensor w = hb_tensor_make(HB_BF16, 5, shape, wb);
        int64_t To, Ho, Wo;
        hb_conv3d_out_size(S[i].t, H, W, &w, &p, &To, &Ho, &Wo);
        float *y = hb_malloc(sizeof(float) * (size_t)(S[i].cout * To * Ho * Wo), "y");
        if (!wb || !x || !y) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        hb_rng r;
        hb_rng_seed(&r, 3);
        for (int64_t k = 0; k < nx; k++) x[k] = hb_rng_normal(&r);
        for (int64_t k = 0; k < nw; k++) wb[k] = hb_f32_to_bf16(0.05f * hb_rng_normal(&r));
        double ms[16], cs[16];
        pk = bench_peak_measure(); /* the peak right before: the machine may be shared */
        peak = pk.wall_gflops;
        for (int k = 0; k < reps; k++) {
            double t0 = hb_time_now(), c0 = bench_cpu_now();
            if (hb_conv3d(y, x, S[i].cin, S[i].t, H, W, &w, NULL, &p) != 0) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
            ms[k] = (hb_time_now() - t0) * 1e3;
            cs[k] = bench_cpu_now() - c0;
        }
        double med = bench_median(ms, reps), fl = 2.0 * nw * To * Ho * Wo;
        double gf = fl / (med * 1e-3) * 1e-9, cg = fl / bench_median(cs, reps) * 1e-9;
        char k[16];
        snprintf(k, sizeof k, "%dx%dx%d", S[i].kt, S[i].kh, S[i].kw);
        printf("%-16s %5d %5d %3d %5lld %5lld %-6s %9.1f %9.1f %7.1f %6.3f %7.3f\n", S[i].name, S[i].cin, S[i].cout,
               S[i].t, (long long)H, (long long)W, k, med, gf, peak, gf / peak, cg / pk.cpu_gflops);
        fflush(stdout);
        hb_free(wb); hb_free(x); hb_free(y);
    }
    hb_threads_shutdown();
    return 0;
}
