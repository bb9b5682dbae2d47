/* Wan VAE decode benchmark with full-size random weights (generated in memory):
 *   Wan-2.1 (dim 96, z 16):  latent frames -> 480x832 video (latent 60x104)
 *   Wan-2.2 (dec_dim 256, z 48): latent frames -> 704x1280 video (latent 44x80)
 * each untiled and tiled; seconds, seconds per latent frame, GFLOP/s (convolution/attention/linear FLOPs counted
 * by the model's planning pass from the layer shapes) against the f32 FMA peak and the f32 GEMM rate measured in
 * the same run, working memory (planned) and peak RSS, and the tiled-vs-untiled error. "cpu-rat" is GFLOP per
 * CPU-second over the peak's GFLOP per CPU-second (robust when other jobs share the cores).
 *
 * The decoder is heavy: ~13.5 TFLOP per latent frame for 2.1 at 480x832 and ~66 TFLOP for 2.2 at 704x1280, so the
 * full runs (21 / 31 latent frames) take hours on 2 cores. Defaults keep the run to a few minutes:
 *   bench_vae                       2.1: 2 latent frames at 160x288; 2.2: 2 latent frames at 128x224
 *   bench_vae --frames 1 --full-res  one latent frame at the real geometry (1 output frame each)
 *   bench_vae --full                 21 / 31 latent frames at 480x832 / 704x1280 (hours)
 * Options: --variant 21|22|both, --frames N (both), --f21 N, --f22 N, --res21 HxW, --res22 HxW, --full-res,
 *   --tile T --overlap O (latent units; default: half the smaller latent side (at least 8), overlap tile/4),
 *   --no-untiled, --no-tiled, --threads N. */
#include "bench.h"
#include "models/wan_vae.h"
#include "ops/ops.h"
#include <math.h>

typedef struct {
    float *pool;
    int64_t pool_n;
    uint64_t state;
    void **owned;
    int n, cap;
} wsrc;

/* Decoder weights: scaled slices of a pool of standard normals (fast for ~530M values). Encoder weights (never
 * run here) share the pool itself. */
static int bench_weight(void *u, const char *name, int nd, const int64_t *sh, hb_tensor *out) {
    wsrc *s = u;
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= sh[i];
    if (n > s->pool_n) return hb_error("bench: weight %s larger than the pool", name);
    if (!strncmp(name, "encoder.", 8)) { *out = hb_tensor_make(HB_F32, nd, sh, s->pool); return 0; }
    float *d = hb_malloc((size_t)n * sizeof(float), name);
    if (!d) return -1;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 512;
        s->owned = realloc(s->owned, (size_t)s->cap * sizeof *s->owned);
    }
    s->owned[s->n++] = d;
    size_t len = strlen(name);
    bool gamma = !strcmp(name + len - 5, "gamma"), bias = !strcmp(name + len - 4, "bias");
    float sd = gamma || bias ? 0.1f : (float)(1.0 / sqrt((double)(n / sh[0])));
    if (strstr(name, "head.2.weight")) sd *= 0.5f;
    s->state = s->state * 6364136223846793005ULL + 1442695040888963407ULL;
    int64_t off = (int64_t)((s->state >> 17) % (uint64_t)(s->pool_n - n + 1));
    for (int64_t i = 0; i < n; i++) d[i] = (gamma ? 1.0f : 0.0f) + sd * s->pool[off + i];
    *out = hb_tensor_make(HB_F32, nd, sh, d);
    return 0;
}

/* The f32 GEMM rate of this machine (hb_gemm_f32, 1536^3, median of 3). */
static double gemm_gflops(void) {
    int64_t n = 1536;
    float *a = hb_malloc(sizeof(float) * n * n, "a"), *b = hb_malloc(sizeof(float) * n * n, "b"), *c = hb_malloc(sizeof(float) * n * n, "c");
    hb_rng r;
    hb_rng_seed(&r, 1);
    for (int64_t i = 0; i < n * n; i++) a[i] = hb_rng_uniform(&r) - 0.5f, b[i] = hb_rng_uniform(&r) - 0.5f;
    double t[3];
    hb_gemm_f32(c, n, a, n, b, n, n, n, n, false);
    for (int k = 0; k < 3; k++) {
        double t0 = hb_time_now();
        hb_gemm_f32(c, n, a, n, b, n, n, n, n, false);
        t[k] = hb_time_now() - t0;
    }
    hb_free(a), hb_free(b), hb_free(c);
    return 2.0 * n * n * n / bench_median(t, 3) * 1e-9;
}

static int parse_res(const char *s, int *h, int *w) { return sscanf(s, "%dx%d", h, w) == 2 ? 0 : -1; }

int main(int argc, char **argv) {
    int variants = 3, f21 = 2, f22 = 2, h21 = 160, w21 = 288, h22 = 128, w22 = 224, tile = -1, ov = -1;
    bool untiled = true, tiled = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--variant") && v) variants = !strcmp(v, "21") ? 1 : !strcmp(v, "22") ? 2 : 3, i++;
        else if (!strcmp(a, "--frames") && v) f21 = f22 = atoi(v), i++;
        else if (!strcmp(a, "--f21") && v) f21 = atoi(v), i++;
        else if (!strcmp(a, "--f22") && v) f22 = atoi(v), i++;
        else if (!strcmp(a, "--res21") && v && !parse_res(v, &h21, &w21)) i++;
        else if (!strcmp(a, "--res22") && v && !parse_res(v, &h22, &w22)) i++;
        else if (!strcmp(a, "--full-res")) h21 = 480, w21 = 832, h22 = 704, w22 = 1280;
        else if (!strcmp(a, "--full")) h21 = 480, w21 = 832, h22 = 704, w22 = 1280, f21 = 21, f22 = 31;
        else if (!strcmp(a, "--tile") && v) tile = atoi(v), i++;
        else if (!strcmp(a, "--overlap") && v) ov = atoi(v), i++;
        else if (!strcmp(a, "--no-untiled")) untiled = false;
        else if (!strcmp(a, "--no-tiled")) tiled = false;
        else if (!strcmp(a, "--threads") && v) hb_threads_init(atoi(v)), i++;
        else {
            fprintf(stderr, "usage: %s [--variant 21|22|both] [--frames N] [--f21 N] [--f22 N] [--res21 HxW] [--res22 HxW]\n"
                            "       [--full-res] [--full] [--tile T] [--overlap O] [--no-untiled] [--no-tiled] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    hb_threads_count();
    bench_peak pk = bench_peak_measure();
    double gemm = gemm_gflops();
    printf("threads %d, kernels %s, f32 FMA peak %.1f GFLOP/s (%.1f GFLOP per CPU-second), f32 GEMM (hb_gemm_f32 "
           "1536^3) %.1f GFLOP/s\n", hb_threads_count(), hb_cpu_kernel_name(), pk.wall_gflops, pk.cpu_gflops, gemm);
    printf("%-4s %-9s %3s %-6s %8s %8s %8s %8s %7s %7s %7s %7s %8s %8s %9s %9s\n", "vae", "video", "lat", "tile", "s", "s/lat",
           "s/frame", "TFLOP", "GFLOP/s", "vs-FMA", "vs-GEMM", "cpu-rat", "work GB", "RSS GB", "tile max", "tile rms");
    for (int v = 0; v < 2; v++) {
        if (!(variants & (1 << v))) continue;
        hb_wan_vae_config c;
        hb_wan_vae_config_default(&c, v ? HB_WAN_VAE_22 : HB_WAN_VAE_21);
        wsrc ws = {.pool_n = 30 * 1000 * 1000, .state = 7};
        ws.pool = hb_malloc(sizeof(float) * (size_t)ws.pool_n, "pool");
        if (!ws.pool) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        hb_rng r;
        hb_rng_seed(&r, 42 + v);
        for (int64_t i = 0; i < ws.pool_n; i++) ws.pool[i] = hb_rng_normal(&r);
        hb_wan_vae *m = hb_wan_vae_load_custom(&c, bench_weight, &ws);
        if (!m) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        int sf = hb_wan_vae_spatial_factor(m);
        int64_t t = v ? f22 : f21, H = v ? h22 : h21, W = v ? w22 : w21, h = H / sf, w = W / sf;
        int64_t z = c.z_dim, T = 1 + 4 * (t - 1), vn = 3 * T * H * W;
        float *lat = hb_malloc(sizeof(float) * (size_t)(z * t * h * w), "latent");
        float *ref = hb_malloc(sizeof(float) * (size_t)vn, "video"), *vid = hb_malloc(sizeof(float) * (size_t)vn, "video");
        if (!lat || !ref || !vid) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
        for (int64_t i = 0; i < z * t * h * w; i++) lat[i] = hb_rng_normal(&r);
        bool have_ref = false;
        for (int k = 0; k < 2; k++) {
            if ((k == 0 && !untiled) || (k == 1 && !tiled)) continue;
            hb_wan_vae_opts o = {.raw = true};
            if (k == 1) {
                int64_t mn = h < w ? h : w;
                o.tile = tile > 0 ? tile : (int)(mn / 2 > 8 ? mn / 2 : 8);
                o.overlap = ov >= 0 ? ov : o.tile / 4;
            }
            double fl = hb_wan_vae_decode_flops(m, t, h, w, &o);
            int64_t work = hb_wan_vae_decode_workspace(m, t, h, w, &o);
            hb_reset_peak_rss();
            double t0 = hb_time_now(), c0 = bench_cpu_now();
            if (hb_wan_vae_decode(m, lat, t, h, w, k ? vid : ref, &o)) { fprintf(stderr, "%s\n", hb_last_error()); return 1; }
            double dt = hb_time_now() - t0, dc = bench_cpu_now() - c0;
            char tl[16] = "none", em[16] = "-", er[16] = "-";
            if (k == 1) {
                snprintf(tl, sizeof tl, "%d/%d", o.tile, o.overlap);
                if (have_ref) {
                    double md = 0, mr = 0, se = 0, sr = 0;
                    for (int64_t i = 0; i < vn; i++) {
                        double d = fabs((double)vid[i] - ref[i]);
                        md = d > md ? d : md, mr = fabs(ref[i]) > mr ? fabs(ref[i]) : mr;
                        se += d * d, sr += (double)ref[i] * ref[i];
                    }
                    snprintf(em, sizeof em, "%.2e", md / mr), snprintf(er, sizeof er, "%.2e", sqrt(se / sr));
                }
            } else {
                have_ref = true;
            }
            char geo[32];
            snprintf(geo, sizeof geo, "%lldx%lld", (long long)H, (long long)W);
            printf("%-4s %-9s %3lld %-6s %8.1f %8.1f %8.2f %8.2f %7.1f %7.3f %7.3f %7.3f %8.2f %8.2f %9s %9s\n", v ? "2.2" : "2.1",
                   geo, (long long)t, tl, dt, dt / t, dt / T, fl * 1e-12, fl / dt * 1e-9, fl / dt * 1e-9 / pk.wall_gflops,
                   fl / dt * 1e-9 / gemm, fl / dc * 1e-9 / pk.cpu_gflops, work / 1e9, hb_peak_rss_bytes() / 1e9, em, er);
            fflush(stdout);
        }
        hb_free(lat), hb_free(ref), hb_free(vid);
        hb_wan_vae_free(m);
        for (int i = 0; i < ws.n; i++) hb_free(ws.owned[i]);
        free(ws.owned);
        hb_free(ws.pool);
    }
    return 0;
}
