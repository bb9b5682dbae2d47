/* GPU benchmark: the device's bf16 GEMM peak measured through hb_linear (M = N = K = 8192, bf16 weights,
 * f32 activations: what every model layer calls), then each figure beside it as TFLOP/s and % of that peak:
 *   - hb_linear at the Wan2.2-TI2V-5B DiT shapes for a 480x832, 49-frame video: M = 5070 tokens
 *     (VAE 4x temporal / 16x spatial: latent 13 x 30 x 52; patch 1x2x2: 13 x 15 x 26 = 5070), K, N in {3072, 14336};
 *   - hb_attention at L = 5070, 24 heads, head_dim 128 (self-attention) and Lk = 512 (cross-attention);
 *   - one whole 5B DiT block (hb_wan_dit_block with random bf16 weights held as host hb_tensors, no checkpoint;
 *     prompt K/V cached as the pipeline does) and the full forward extrapolated as 30 blocks;
 *   - hb_conv3d 3x3x3 causal at Wan2.2-VAE-decoder-like shapes (1024 ch at 30x52, 512 at 120x208, 256 at 240x416).
 * Each time is the median of --reps timed batches; a batch repeats the op until it lasts >= 20 ms, starts and
 * ends with hb_backend_sync (so queued GPU work is inside the interval). FLOPs are 2 x multiply-adds.
 * Inputs are uniform random (never zeros: zeros run faster on tensor cores).
 *
 * Usage: bench_gpu [-d DEVICE] [--reps N]   (DEVICE: cuda (default), cuda:N, or cpu/cpu-guard for a dry run
 *        of the program itself at tiny sizes with --tiny)
 * Exit status: 0 after the table; 77 when the device backend is not available (this build has no GPU backend or
 * the machine no GPU: the message says which) -- the same "skipped" code the tests use, so scripts can tell a
 * machine without a GPU from a failure (1). */
#include "bench.h"
#include "ops/ops.h"
#include "models/wan_dit.h"
#include <math.h>

static int g_reps = 5;
static bool g_tiny;
static double g_peak;   /* TFLOP/s */

typedef int (*bench_fn)(void *ctx);

static void die_if(int rc, const char *what) {
    if (rc) {
        fprintf(stderr, "bench_gpu: %s failed: %s\n", what, hb_last_error());
        exit(1);
    }
}

/* Median seconds of one call. */
static double time_op(bench_fn f, void *ctx, const char *what) {
    die_if(f(ctx), what);                       /* warm-up: weight upload, plans, workspaces */
    die_if(hb_backend_sync(), what);
    double t0 = hb_time_now();
    die_if(f(ctx), what);
    die_if(hb_backend_sync(), what);
    double one = hb_time_now() - t0;
    int inner = one >= 0.02 ? 1 : (int)ceil(0.02 / (one > 1e-6 ? one : 1e-6));
    if (inner > 2000) inner = 2000;
    double v[64];
    int reps = g_reps < 64 ? g_reps : 64;
    for (int r = 0; r < reps; r++) {
        die_if(hb_backend_sync(), what);
        t0 = hb_time_now();
        for (int i = 0; i < inner; i++) die_if(f(ctx), what);
        die_if(hb_backend_sync(), what);
        v[r] = (hb_time_now() - t0) / inner;
    }
    return bench_median(v, reps);
}

static void row(const char *name, const char *shape, double sec, double flops) {
    double tf = flops / sec * 1e-12;
    if (g_peak > 0)
        printf("%-26s %-34s %10.3f ms %9.2f TFLOP/s %6.1f %%\n", name, shape, sec * 1e3, tf, 100 * tf / g_peak);
    else
        printf("%-26s %-34s %10.3f ms %9.2f TFLOP/s   (the peak itself)\n", name, shape, sec * 1e3, tf);
    fflush(stdout);
}

/* ---- random data: a fast generator (uniform in [-1, 1)), device buffers filled from one host buffer */
static uint64_t g_state = 0x9E3779B97F4A7C15ull;
static inline float urand(void) {
    g_state ^= g_state << 13; g_state ^= g_state >> 7; g_state ^= g_state << 17;
    return (float)((g_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static float *dev_rand(int64_t n, float scale) {
    float *h = malloc(sizeof(float) * (size_t)n), *d = hb_dev_alloc(sizeof(float) * (size_t)n, "bench input");
    if (!h || !d) { fprintf(stderr, "bench_gpu: out of memory (%lld floats): %s\n", (long long)n, hb_last_error()); exit(1); }
    for (int64_t i = 0; i < n; i++) h[i] = scale * urand();
    die_if(hb_dev_upload(d, h, sizeof(float) * (size_t)n), "upload");
    free(h);
    return d;
}
static float *dev_buf(int64_t n) {
    float *d = hb_dev_calloc_f32(n, "bench output");
    if (!d) { fprintf(stderr, "bench_gpu: %s\n", hb_last_error()); exit(1); }
    return d;
}
/* A host bf16 weight (uniform * scale; norms: 1 + 0.1 * uniform). */
static hb_tensor wbf16(int ndim, const int64_t *shape, float scale, float offset) {
    hb_tensor t = hb_tensor_make(HB_BF16, ndim, shape, NULL);
    int64_t n = hb_tensor_numel(&t);
    uint16_t *p = malloc(sizeof(uint16_t) * (size_t)n);
    if (!p) { fprintf(stderr, "bench_gpu: out of host memory\n"); exit(1); }
    for (int64_t i = 0; i < n; i++) {
        float v = offset + scale * urand();
        uint32_t u;
        memcpy(&u, &v, 4);
        p[i] = (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    }
    t.data = p;
    return t;
}
static void wfree(hb_tensor *t) {
    if (!t->data) return;
    hb_host_memory_released(t->data, hb_tensor_nbytes(t));
    free(t->data);
    t->data = NULL;
}

/* ---- linear */
typedef struct { float *y, *x; int64_t M; hb_tensor w; } lin_ctx;
static int lin_run(void *c_) { lin_ctx *c = c_; return hb_linear(c->y, c->x, c->M, &c->w, NULL, false); }
static double bench_linear(const char *name, int64_t M, int64_t K, int64_t N) {
    lin_ctx c = {dev_buf(M * N), dev_rand(M * K, 1.0f), M, wbf16(2, (int64_t[]){N, K}, 1.0f / sqrtf((float)K), 0)};
    double s = time_op(lin_run, &c, name);
    char shape[64];
    snprintf(shape, sizeof shape, "M=%lld K=%lld N=%lld", (long long)M, (long long)K, (long long)N);
    double flops = 2.0 * (double)M * (double)K * (double)N;
    if (g_peak == 0 && !strcmp(name, "peak")) {
        row("hb_linear bf16 (peak)", shape, s, flops);
        g_peak = flops / s * 1e-12;
    } else row(name, shape, s, flops);
    wfree(&c.w);
    hb_dev_free(c.y); hb_dev_free(c.x);
    return s;
}

/* ---- attention */
typedef struct { hb_attention_args a; } at_ctx;
static int at_run(void *c_) { hb_attention(&((at_ctx *)c_)->a); return 0; }
static void bench_attention(const char *name, int64_t lq, int64_t lk, int heads, int d) {
    int64_t hd = (int64_t)heads * d;
    at_ctx c = {{0}};
    c.a.out = dev_buf(lq * hd); c.a.q = dev_rand(lq * hd, 1.0f); c.a.k = dev_rand(lk * hd, 1.0f);
    c.a.v = dev_rand(lk * hd, 1.0f);
    c.a.lq = lq; c.a.lk = lk; c.a.heads = heads; c.a.head_dim = d;
    c.a.o_stride = c.a.q_stride = c.a.k_stride = c.a.v_stride = hd;
    c.a.scale = 1.0f / sqrtf((float)d);
    double s = time_op(at_run, &c, name);
    char shape[64];
    snprintf(shape, sizeof shape, "Lq=%lld Lk=%lld h=%d d=%d", (long long)lq, (long long)lk, heads, d);
    row(name, shape, s, 4.0 * (double)lq * (double)lk * (double)hd);
    hb_dev_free(c.a.out); hb_dev_free((void *)c.a.q); hb_dev_free((void *)c.a.k); hb_dev_free((void *)c.a.v);
}

/* ---- conv3d */
typedef struct { float *y, *x; int64_t C, T, H, W; hb_tensor w; hb_conv3d_params p; } cv_ctx;
static int cv_run(void *c_) { cv_ctx *c = c_; return hb_conv3d(c->y, c->x, c->C, c->T, c->H, c->W, &c->w, NULL, &c->p); }
static void bench_conv(const char *name, int64_t Cin, int64_t Cout, int64_t T, int64_t H, int64_t W) {
    cv_ctx c = {NULL, NULL, Cin, T, H, W, wbf16(5, (int64_t[]){Cout, Cin, 3, 3, 3}, 0.05f, 0),
                {{1, 1, 1}, {2, 0}, {1, 1}, {1, 1}, 1, HB_CONV_FAST}};
    int64_t To, Ho, Wo;
    hb_conv3d_out_size(T, H, W, &c.w, &c.p, &To, &Ho, &Wo);
    c.y = dev_buf(Cout * To * Ho * Wo);
    c.x = dev_rand(Cin * T * H * W, 1.0f);
    double s = time_op(cv_run, &c, name);
    char shape[64];
    snprintf(shape, sizeof shape, "%lld->%lld %lldx%lldx%lld k3", (long long)Cin, (long long)Cout, (long long)T,
             (long long)H, (long long)W);
    row(name, shape, s, 2.0 * (double)Cout * (double)Cin * 27.0 * (double)(To * Ho * Wo));
    wfree(&c.w);
    hb_dev_free(c.y); hb_dev_free(c.x);
}

/* ---- one DiT block of the 5B model */
typedef struct { wan_dit *m; float *x; wan_dit_block_args a; wan_dit_ws ws; } blk_ctx;
static int blk_run(void *c_) { blk_ctx *c = c_; return hb_wan_dit_block(c->m, 0, c->x, &c->a, &c->ws); }
static void bench_block(const wan_dit_config *cfg5, int64_t F, int64_t Hp, int64_t Wp) {
    wan_dit m;
    memset(&m, 0, sizeof m);
    m.cfg = *cfg5;
    m.cfg.num_layers = 1;
    const int64_t D = m.cfg.dim, Fd = m.cfg.ffn_dim, L = F * Hp * Wp, T = m.cfg.text_len;
    wan_dit_block_w *B = calloc(1, sizeof *B);
    m.blocks = B;
    const float sD = 1.0f / sqrtf((float)D), sF = 1.0f / sqrtf((float)Fd);
    hb_tensor *sq[] = {&B->sa_q_w, &B->sa_k_w, &B->sa_v_w, &B->sa_o_w, &B->ca_q_w, &B->ca_k_w, &B->ca_v_w, &B->ca_o_w};
    hb_tensor *bias[] = {&B->sa_q_b, &B->sa_k_b, &B->sa_v_b, &B->sa_o_b, &B->ca_q_b, &B->ca_k_b, &B->ca_v_b,
                         &B->ca_o_b, &B->ffn2_b, &B->norm3_b};
    hb_tensor *norms[] = {&B->sa_norm_q, &B->sa_norm_k, &B->ca_norm_q, &B->ca_norm_k, &B->norm3_w};
    for (size_t i = 0; i < sizeof sq / sizeof sq[0]; i++) *sq[i] = wbf16(2, (int64_t[]){D, D}, sD, 0);
    for (size_t i = 0; i < sizeof bias / sizeof bias[0]; i++) *bias[i] = wbf16(1, (int64_t[]){D}, 0.1f, 0);
    for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) *norms[i] = wbf16(1, (int64_t[]){D}, 0.1f, 1.0f);
    B->ffn0_w = wbf16(2, (int64_t[]){Fd, D}, sD, 0);
    B->ffn0_b = wbf16(1, (int64_t[]){Fd}, 0.1f, 0);
    B->ffn2_w = wbf16(2, (int64_t[]){D, Fd}, sF, 0);
    B->modulation = malloc(sizeof(float) * (size_t)(6 * D));
    for (int64_t i = 0; i < 6 * D; i++) B->modulation[i] = sD * urand();
    B->modulation_t = hb_tensor_1d(HB_F32, 6 * D, B->modulation);

    /* per-frame modulation (TI2V: per-token timesteps grouped by frame), prompt K/V cached (512 tokens) */
    hb_arena meas, ar;
    hb_arena_init_measure(&meas, "dit block (measure)");
    wan_dit_ws ws;
    die_if(hb_wan_dit_ws_alloc(&m, L, F, &meas, &ws), "workspace (measure)");
    die_if(hb_arena_init_dev(&ar, meas.peak + 4096 * 16, "dit block workspace"), "device arena");
    blk_ctx c = {&m, dev_rand(L * D, 1.0f), {0}, {0}};
    die_if(hb_wan_dit_ws_alloc(&m, L, F, &ar, &c.ws), "workspace");
    float *e0 = dev_rand(F * 6 * D, 0.1f), *ck = dev_rand(T * D, 1.0f), *cv = dev_rand(T * D, 1.0f);
    c.a.L = L; c.a.H = Hp; c.a.W = Wp; c.a.f0 = 0; c.a.e0 = e0;
    c.a.g = (hb_modgroups){Hp * Wp, 6 * D};
    c.a.ctx_k = ck; c.a.ctx_v = cv; c.a.ctx_len = T;
    /* the block runs in place on x: it stays finite (random weights scaled by 1/sqrt(fan_in)) but drifts; reset
     * it before every timed batch is unnecessary for timing */
    double s = time_op(blk_run, &c, "dit block");
    double mac = 4.0 * L * D * D              /* self q, k, v, o */
               + 2.0 * L * L * D              /* self attention: QK^T, PV */
               + 2.0 * L * D * D              /* cross q, o (prompt K/V cached) */
               + 2.0 * L * T * D              /* cross attention */
               + 2.0 * L * D * Fd;            /* FFN */
    char shape[64];
    snprintf(shape, sizeof shape, "L=%lld (%lldx%lldx%lld) dim %lld", (long long)L, (long long)F, (long long)Hp,
             (long long)Wp, (long long)D);
    row("5B DiT block", shape, s, 2 * mac);
    printf("%-26s %-34s %10.1f ms  (%d blocks x one block; embeddings and head excluded)\n", "5B DiT forward (extrap.)",
           shape, s * cfg5->num_layers * 1e3, cfg5->num_layers);
    hb_arena_free(&ar);
    hb_dev_free(c.x); hb_dev_free(e0); hb_dev_free(ck); hb_dev_free(cv);
    for (size_t i = 0; i < sizeof sq / sizeof sq[0]; i++) wfree(sq[i]);
    for (size_t i = 0; i < sizeof bias / sizeof bias[0]; i++) wfree(bias[i]);
    for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) wfree(norms[i]);
    wfree(&B->ffn0_w); wfree(&B->ffn0_b); wfree(&B->ffn2_w);
    hb_host_memory_released(B->modulation, sizeof(float) * (size_t)(6 * D));
    free(B->modulation);
    free(B);
}

int main(int argc, char **argv) {
    const char *dev = "cuda";
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-d") || !strcmp(argv[i], "--device")) && i + 1 < argc) dev = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tiny")) g_tiny = true;
        else { fprintf(stderr, "usage: %s [-d DEVICE] [--reps N] [--tiny]\n", argv[0]); return 2; }
    }
    if (g_reps < 1) g_reps = 1;
    const hb_backend *be = hb_backend_find(dev);
    if (!be) {
        printf("bench_gpu: device '%s' is not available: %s\n(exit 77: nothing measured)\n", dev, hb_last_error());
        return 77;
    }
    hb_backend_use(be);
    wan_dit_config cfg;
    die_if(hb_wan_dit_config_preset(&cfg, "wan2.2-ti2v-5b"), "5B config");
    /* 480x832, 49 frames: latent 13 x 30 x 52, tokens 13 x 15 x 26 */
    int64_t F = 13, Hp = 15, Wp = 26, L = F * Hp * Wp;
    int64_t big = 8192, D = cfg.dim, Fd = cfg.ffn_dim, cD = 1024, cM = 512, cS = 256;
    int64_t h1 = 30, w1 = 52, h2 = 120, w2 = 208, h3 = 240, w3 = 416, T3 = 4;
    if (g_tiny) {   /* a dry run of the program on a CPU backend: same code paths, small sizes */
        F = 2; Hp = 3; Wp = 4; L = F * Hp * Wp;
        big = 256; D = 96; Fd = 192; cD = 32; cM = 16; cS = 8;
        h1 = 6; w1 = 8; h2 = 12; w2 = 16; h3 = 16; w3 = 20; T3 = 2;
        cfg.dim = (int)D; cfg.ffn_dim = (int)Fd; cfg.num_heads = 2; cfg.head_dim = 48; cfg.text_len = 16;
    }
    printf("bench_gpu: device %s (backend '%s', memory '%s'), medians of %d batches\n", dev, be->name,
           be->mem ? be->mem->name : "host", g_reps);
    printf("%-26s %-34s %13s %17s %8s\n", "case", "shape", "time", "rate", "of peak");
    bench_linear("peak", big, big, big);
    bench_linear("linear qkvo", L, D, D);
    bench_linear("linear ffn up", L, D, Fd);
    bench_linear("linear ffn down", L, Fd, D);
    bench_attention("attention self", L, L, cfg.num_heads, cfg.head_dim);
    bench_attention("attention cross", L, cfg.text_len, cfg.num_heads, cfg.head_dim);
    bench_block(&cfg, F, Hp, Wp);
    bench_conv("conv3d VAE dec 1024", cD, cD, 1, h1, w1);
    bench_conv("conv3d VAE dec 512", cM, cM, T3, h2, w2);
    bench_conv("conv3d VAE dec 256", cS, cS, T3, h3, w3);
    die_if(hb_backend_sync(), "final sync");
    hb_backend_use(NULL);
    return 0;
}
