/* bench_light_decoder: the light VAE decoder's ops (the release's network, hb_light_vae_config_default: widths
 * [32, 64, 256, 512], depthwise kernel 5 at the 512 and 256 levels, 3x3x3 convs at 64 and 32, patch 2) at its
 * whole-clip shapes, each op timed alone. Against two yardsticks measured in the same run, per CPU-second (the
 * machine may be shared): the f32 FMA peak (bench.h) and a STREAM-like memory bandwidth (scale b = s*a and triad
 * a = b + s*c over 64 MiB arrays on every pool thread; the larger counts). Compute-bound ops report GFLOP per
 * CPU-second and their share of the peak (flop-rat), memory-bound ops GB per CPU-second (reads + writes, each byte
 * once, as STREAM counts) and their share of the bandwidth (bw-rat); "roof" is the larger of the two, the share of
 * the roofline bound. A depthwise 5x5x5 conv does 250 FLOP per 8 bytes moved, so it is compute-bound here.
 * usage: bench_light_decoder [--size HxW[,HxW]] [--frames F] [--reps R] [--only TEXT]
 *   default 256x256,480x832, 17 frames, 3 repetitions; --only runs the ops whose name contains TEXT. */
#include "bench.h"
#include "ops/ops.h"

/* ---------- the STREAM-like yardstick ---------- */

#define BW_N (16LL << 20) /* floats per array: 64 MiB, past the last-level cache */
#define BW_CHUNK 65536
typedef struct { float *a, *b, *c; bool triad; } bw_ctx;
static void bw_task(void *ctx, int64_t b, int64_t e) {
    const bw_ctx *k = ctx;
    for (int64_t t = b; t < e; t++) {
        float *a = k->a + t * BW_CHUNK, *bb = k->b + t * BW_CHUNK;
        const float *c = k->c + t * BW_CHUNK;
        if (k->triad)
            for (int64_t i = 0; i < BW_CHUNK; i++) a[i] = bb[i] + 3.0f * c[i];
        else
            for (int64_t i = 0; i < BW_CHUNK; i++) bb[i] = 3.0f * c[i];
    }
}

/* GB per CPU-second (and per wall second) of the better of scale and triad, median of 3 each. */
typedef struct { double cpu_gbs, wall_gbs; } bench_bw;
static bench_bw bw_measure(void) {
    bw_ctx k = {hb_malloc(sizeof(float) * BW_N, "bw a"), hb_malloc(sizeof(float) * BW_N, "bw b"),
                hb_malloc(sizeof(float) * BW_N, "bw c"), false};
    bench_bw best = {0, 0};
    if (!k.a || !k.b || !k.c) { fprintf(stderr, "%s\n", hb_last_error()); exit(1); }
    for (int64_t i = 0; i < BW_N; i++) k.a[i] = k.b[i] = k.c[i] = (float)(i & 1023);
    for (int triad = 0; triad < 2; triad++) {
        double r[3], rc[3], bytes = (triad ? 12.0 : 8.0) * BW_N;
        k.triad = triad;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = hb_time_now(), c0 = bench_cpu_now();
            hb_parallel_for(BW_N / BW_CHUNK, 1, bw_task, &k);
            r[rep] = bytes / (hb_time_now() - t0) * 1e-9;
            rc[rep] = bytes / (bench_cpu_now() - c0) * 1e-9;
        }
        double w = bench_median(r, 3), c = bench_median(rc, 3);
        if (c > best.cpu_gbs) best.cpu_gbs = c, best.wall_gbs = w;
    }
    hb_free(k.a); hb_free(k.b); hb_free(k.c);
    return best;
}

/* ---------- the op cases ---------- */

typedef enum { K_CONV, K_RMS, K_SILU, K_ADD, K_SHUF3, K_SHUF2, K_LNSC } kind;
typedef struct {
    const char *name; kind k;
    int lvl;            /* level: 0 latent (t, h, w), 1 (2t-1, 2h, 2w), 2 (4t-3, 4h, 4w), 3 (4t-3, 8h, 8w) */
    int cin, cout, kt, kh, groups; /* convs (kw = kh); shuffles: cin = low-res channels, cout = s_t, kt = s */
} bcase;

static const bcase CASES[] = {
    {"conv_in 3^3 48->512", K_CONV, 0, 48, 512, 3, 3, 1},
    {"depthwise 5^3 @512", K_CONV, 0, 512, 512, 5, 5, 512},
    {"pointwise 512->512", K_CONV, 0, 512, 512, 1, 1, 1},
    {"pointwise 512->256", K_CONV, 0, 512, 256, 1, 1, 1},
    {"upsample 3^3 256->2048", K_CONV, 0, 256, 2048, 3, 3, 1},
    {"depthwise 5^3 @256", K_CONV, 1, 256, 256, 5, 5, 256},
    {"pointwise 256->256", K_CONV, 1, 256, 256, 1, 1, 1},
    {"conv 3^3 256->64", K_CONV, 1, 256, 64, 3, 3, 1},
    {"upsample 3^3 64->512", K_CONV, 1, 64, 512, 3, 3, 1},
    {"conv 3^3 64->64", K_CONV, 2, 64, 64, 3, 3, 1},
    {"upsample 3^3 32->128", K_CONV, 2, 32, 128, 3, 3, 1},
    {"conv 3^3 32->32", K_CONV, 3, 32, 32, 3, 3, 1},
    {"conv2d 3x3 32->32", K_CONV, 3, 32, 32, 1, 3, 1},
    {"conv_out 3^3 8->3", K_CONV, 4, 8, 3, 3, 3, 1},
    {"rms norm @512", K_RMS, 0, 512, 0, 0, 0, 0},
    {"rms norm @256", K_RMS, 1, 256, 0, 0, 0, 0},
    {"rms norm @64", K_RMS, 2, 64, 0, 0, 0, 0},
    {"rms norm @32", K_RMS, 3, 32, 0, 0, 0, 0},
    {"silu @32", K_SILU, 3, 32, 0, 0, 0, 0},
    {"residual add @32", K_ADD, 3, 32, 0, 0, 0, 0},
    {"shuffle3d 2x2x2 @256", K_SHUF3, 0, 256, 2, 2, 0, 0},
    {"shuffle3d 2x2x2 @64", K_SHUF3, 1, 64, 2, 2, 0, 0},
    {"shuffle3d 1x2x2 @32", K_SHUF3, 2, 32, 1, 2, 0, 0},
    {"pixel shuffle 2 @32", K_SHUF2, 3, 32, 0, 0, 0, 0},
    {"layernorm shortcut @512", K_LNSC, 0, 512, 0, 0, 0, 0},
    {"layernorm shortcut @64", K_LNSC, 2, 64, 0, 0, 0, 0},
};

typedef struct { int64_t T, H, W; } dims;
static dims level(int lvl, int64_t t, int64_t h, int64_t w) {
    static const int ft[5] = {1, 2, 4, 4, 4}, fs[5] = {1, 2, 4, 8, 16};
    dims d = {lvl == 0 ? t : (t - 1) * ft[lvl] + 1, h * fs[lvl], w * fs[lvl]};
    return d;
}

static float *rnd(hb_rng *r, int64_t n, float s) {
    float *p = hb_malloc(sizeof(float) * (size_t)n, "bench data");
    if (!p) { fprintf(stderr, "%s\n", hb_last_error()); exit(1); }
    for (int64_t i = 0; i < n; i++) p[i] = s * hb_rng_normal(r);
    return p;
}

typedef struct { float *x, *y, *z; hb_tensor w, b, lw, lb; int64_t tin; dims d; hb_conv3d_params p; } bufs;

/* Inputs of a conv carry the k-1 extra frames the decoder's window (replicate padding) gives it. */
static bufs setup(const bcase *c, dims d, hb_rng *r, double *flops, double *bytes) {
    bufs b = {0};
    b.d = d;
    int64_t S = d.T * d.H * d.W, HW = d.H * d.W;
    if (c->k == K_CONV) {
        int kh = c->kh, cin_g = c->cin / c->groups;
        b.tin = d.T + c->kt - 1;
        hb_conv3d_params p = {{1, 1, 1}, {0, 0}, {kh / 2, kh / 2}, {kh / 2, kh / 2}, c->groups, HB_CONV_FAST};
        b.p = p;
        int64_t ws[5] = {c->cout, cin_g, c->kt, kh, kh}, nw = (int64_t)c->cout * cin_g * c->kt * kh * kh, bs[1] = {c->cout};
        b.x = rnd(r, c->cin * b.tin * HW, 1.0f);
        b.y = rnd(r, c->cout * S, 0.0f);
        b.w = hb_tensor_make(HB_F32, 5, ws, rnd(r, nw, 0.05f));
        b.b = hb_tensor_make(HB_F32, 1, bs, rnd(r, c->cout, 0.1f));
        *flops = 2.0 * nw * S;
        *bytes = 4.0 * (c->cin * b.tin * HW + c->cout * S + nw);
    } else if (c->k == K_SHUF3) {
        int st = c->cout, ss = c->kt;
        b.x = rnd(r, (int64_t)c->cin * st * ss * ss * S, 1.0f);
        b.y = rnd(r, (int64_t)c->cin * (st * d.T - (st - 1)) * HW * ss * ss, 0.0f);
        *flops = 0;
        *bytes = 4.0 * ((int64_t)c->cin * st * ss * ss * S + (int64_t)c->cin * (st * d.T - (st - 1)) * HW * ss * ss);
    } else {
        int64_t n = c->cin * S, cs[1] = {c->cin};
        b.x = rnd(r, n, 1.0f);
        b.y = rnd(r, n, 0.0f);
        if (c->k == K_ADD) b.z = rnd(r, n, 1.0f);
        if (c->k == K_LNSC) {
            b.z = rnd(r, n, 0.0f);
            b.lw = hb_tensor_make(HB_F32, 1, cs, rnd(r, c->cin, 1.0f));
            b.lb = hb_tensor_make(HB_F32, 1, cs, rnd(r, c->cin, 0.1f));
        }
        *flops = 0;
        /* bytes each pass must move: norms, silu, shuffle read 1 + write 1; add reads 2; the shortcut's LayerNorm
         * runs on a transposed copy: transpose, norm, transpose back = 3 read + 3 write */
        *bytes = 4.0 * n * (c->k == K_ADD ? 3 : c->k == K_LNSC ? 6 : 2);
    }
    return b;
}

static void run(const bcase *c, bufs *b) {
    dims d = b->d;
    int64_t S = d.T * d.H * d.W;
    switch (c->k) {
    case K_CONV:
        if (hb_conv3d(b->y, b->x, c->cin, b->tin, d.H, d.W, &b->w, &b->b, &b->p)) {
            fprintf(stderr, "%s\n", hb_last_error());
            exit(1);
        }
        break;
    case K_RMS: hb_channel_rmsnorm(b->y, b->x, c->cin, S, NULL, NULL); break;
    case K_SILU: hb_silu(b->y, b->x, c->cin * S); break;
    case K_ADD: hb_add(b->y, b->x, b->z, c->cin * S); break;
    case K_SHUF2: hb_pixel_shuffle(b->y, b->x, c->cin / 4, d.T, d.H, d.W, 2, HB_PS_CQR); break;
    case K_SHUF3: { /* as light_vae_run.c's upsample: one strided copy per (st, i), first st-1 frames dropped */
        int64_t st = c->cout, ss = c->kt, C = c->cin, HW = d.H * d.W, H = d.H * ss, W = d.W * ss, drop = st - 1;
        int64_t To = d.T * st - drop;
        for (int64_t k = 0; k < st; k++)
            for (int64_t i = 0; i < ss; i++) {
                int64_t t0 = k < drop ? 1 : 0, nt = d.T - t0;
                const int64_t shp[5] = {C, nt, d.H, d.W, ss}, sst[5] = {ss * ss * st * d.T * HW, HW, d.W, 1, st * d.T * HW},
                              dst[5] = {To * H * W, st * H * W, ss * W, ss, 1};
                hb_copy_nd(b->y + (t0 * st + k - drop) * H * W + i * W, dst, b->x + (i * ss * st + k) * d.T * HW + t0 * HW,
                           sst, 5, shp);
            }
        break;
    }
    case K_LNSC: { /* as light_vae_run.c's shortcut */
        const int64_t shp[2] = {S, c->cin}, rows[2] = {c->cin, 1}, cols[2] = {1, S};
        hb_copy_nd(b->z, rows, b->x, cols, 2, shp);
        hb_layernorm(b->z, b->z, S, c->cin, &b->lw, &b->lb, 1e-6f);
        hb_copy_nd(b->y, cols, b->z, rows, 2, shp);
        break;
    }
    }
}

static void release(bufs *b) {
    hb_free(b->x); hb_free(b->y); hb_free(b->z);
    hb_free(b->w.data); hb_free(b->b.data); hb_free(b->lw.data); hb_free(b->lb.data);
}

static void run_size(int64_t H, int64_t W, int frames, int reps, const char *only) {
    int64_t t = (frames - 1) / 4 + 1, h = H / 16, w = W / 16;
    bench_peak pk = bench_peak_measure();
    bench_bw bw = bw_measure();
    printf("\n%lldx%lld, %d frames (%lld latents): FMA peak %.1f GFLOP/cpu-s (%.1f wall), bandwidth %.1f GB/cpu-s "
           "(%.1f wall)\n", (long long)H, (long long)W, frames, (long long)t, pk.cpu_gflops, pk.wall_gflops, bw.cpu_gbs,
           bw.wall_gbs);
    printf("%-24s %-17s %9s %10s %8s %9s %7s %6s\n", "op", "C x T x H x W", "ms", "GFLOP/cs", "flop-rat", "GB/cs",
           "bw-rat", "roof");
    hb_rng r;
    hb_rng_seed(&r, 5);
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const bcase *c = &CASES[i];
        if (only && !strstr(c->name, only)) continue;
        dims d = level(c->lvl, t, h, w);
        double fl, by, ms[16], cs[16];
        bufs b = setup(c, d, &r, &fl, &by);
        run(c, &b); /* warm: first touch of the output pages */
        for (int k = 0; k < reps; k++) {
            double t0 = hb_time_now(), c0 = bench_cpu_now();
            run(c, &b);
            ms[k] = (hb_time_now() - t0) * 1e3;
            cs[k] = bench_cpu_now() - c0;
        }
        double m = bench_median(ms, reps), sec = bench_median(cs, reps);
        double gf = fl / sec * 1e-9, gb = by / sec * 1e-9, fr = gf / pk.cpu_gflops, br = gb / bw.cpu_gbs;
        char shp[40];
        snprintf(shp, sizeof shp, "%dx%lldx%lldx%lld", c->k == K_CONV ? c->cout : c->cin, (long long)d.T, (long long)d.H,
                 (long long)d.W);
        printf("%-24s %-17s %9.1f %10.1f %8.3f %9.2f %7.3f %6.3f\n", c->name, shp, m, gf, fr, gb, br, fr > br ? fr : br);
        fflush(stdout);
        release(&b);
    }
}

int main(int argc, char **argv) {
    int64_t sz[4][2] = {{256, 256}, {480, 832}};
    int nsz = 2, frames = 17, reps = 3;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            nsz = 0;
            for (char *s = argv[++i]; *s && nsz < 4;) {
                sz[nsz][0] = strtoll(s, &s, 10);
                if (*s == 'x') s++;
                sz[nsz][1] = strtoll(s, &s, 10);
                if (sz[nsz][0] % 16 || sz[nsz][1] % 16 || sz[nsz][0] <= 0 || sz[nsz][1] <= 0) {
                    fprintf(stderr, "--size: H and W must be positive multiples of 16\n");
                    return 2;
                }
                nsz++;
                if (*s == ',') s++;
            }
        } else if (!strcmp(argv[i], "--frames") && i + 1 < argc) frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else { fprintf(stderr, "usage: %s [--size HxW[,HxW]] [--frames F] [--reps R] [--only TEXT]\n", argv[0]); return 2; }
    }
    if (reps < 1) reps = 1;
    if (reps > 16) reps = 16;
    if (frames < 5 || (frames - 1) % 4) { fprintf(stderr, "--frames: 1 + 4k, at least 5\n"); return 2; }
    hb_threads_init(0);
    printf("threads %d, kernels %s; per CPU-second (cs), median of %d\n", hb_threads_count(), hb_cpu_kernel_name(), reps);
    for (int i = 0; i < nsz; i++) run_size(sz[i][0], sz[i][1], frames, reps, only);
    hb_threads_shutdown();
    return 0;
}
