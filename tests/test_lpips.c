/* models/lpips: the LPIPS distance and its input gradient, for the AlexNet and VGG16 backbones.
 * - fresh random reduced-width networks (written as an lpips state_dict safetensors, the loader reads the widths
 *   from the shapes) and frames: distance and gradient against an independent naive double-precision reference
 *   (direct loops: conv, ReLU, max pool, normalisation, lin, mean; the backward by scatter loops and explicit
 *   normalisation Jacobians) at 2e-5 relative (distance) and 1e-4 normwise (gradient), and against central finite
 *   differences of that double forward at 24 random pixels (step 1e-6; 1e-4 of the gradient's max);
 * - the same frames on cpu-guard (activations reachable only inside ops): the same bits; hb_lpips_video = the
 *   mean of per-frame calls, its gradient added;
 * - tests/data/lpips/lpips_{alex,vgg}_ref.safetensors (scripts/lpips_reference.py: torch 1.13, float64,
 *   reduced widths): distances 1e-5 relative, gradients 1e-4 normwise;
 * - bad files (missing tensor, wrong shape, truncated, not LPIPS): NULL and one message naming file and tensor;
 *   frames smaller than the backbone takes: an error;
 * - hb train-decoder --lpips end to end (tiny setup of test_train_decoder, skipped without ffmpeg): the LPIPS term
 *   of the log falls. */
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/lpips.h"
#include "ops/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the reference network (double, direct loops) */

typedef struct { const char *name; int k, s, p, pool_k, pool_s, tap; } rspec;
static const rspec r_alex[] = {{"net.slice1.0", 11, 4, 2, 0, 0, 0}, {"net.slice2.3", 5, 1, 2, 3, 2, 1},
                               {"net.slice3.6", 3, 1, 1, 3, 2, 2},  {"net.slice4.8", 3, 1, 1, 0, 0, 3},
                               {"net.slice5.10", 3, 1, 1, 0, 0, 4}};
static const rspec r_vgg[] = {{"net.slice1.0", 3, 1, 1, 0, 0, -1},  {"net.slice1.2", 3, 1, 1, 0, 0, 0},
                              {"net.slice2.5", 3, 1, 1, 2, 2, -1},  {"net.slice2.7", 3, 1, 1, 0, 0, 1},
                              {"net.slice3.10", 3, 1, 1, 2, 2, -1}, {"net.slice3.12", 3, 1, 1, 0, 0, -1},
                              {"net.slice3.14", 3, 1, 1, 0, 0, 2},  {"net.slice4.17", 3, 1, 1, 2, 2, -1},
                              {"net.slice4.19", 3, 1, 1, 0, 0, -1}, {"net.slice4.21", 3, 1, 1, 0, 0, 3},
                              {"net.slice5.24", 3, 1, 1, 2, 2, -1}, {"net.slice5.26", 3, 1, 1, 0, 0, -1},
                              {"net.slice5.28", 3, 1, 1, 0, 0, 4}};

typedef struct {
    int vgg, n;
    const rspec *sp;
    int64_t cin[13], cout[13];
    float *w[13], *b[13], *lin[5], shift[3], scale[3];
} rnet;

typedef struct { double *x; int64_t c, h, w; } plane; /* [c, h, w] */

static plane pl_new(int64_t c, int64_t h, int64_t w) { return (plane){calloc((size_t)(c * h * w), sizeof(double)), c, h, w}; }
#define AT(P, ci, y, z) (P).x[((ci) * (P).h + (y)) * (P).w + (z)]

static plane conv_f(const rnet *N, int i, plane in) {
    const rspec *s = &N->sp[i];
    plane o = pl_new(N->cout[i], (in.h + 2 * s->p - s->k) / s->s + 1, (in.w + 2 * s->p - s->k) / s->s + 1);
    for (int64_t co = 0; co < o.c; co++)
        for (int64_t y = 0; y < o.h; y++)
            for (int64_t z = 0; z < o.w; z++) {
                double acc = N->b[i][co];
                for (int64_t ci = 0; ci < in.c; ci++)
                    for (int a = 0; a < s->k; a++)
                        for (int b = 0; b < s->k; b++) {
                            int64_t yy = y * s->s + a - s->p, zz = z * s->s + b - s->p;
                            if (yy >= 0 && yy < in.h && zz >= 0 && zz < in.w)
                                acc += AT(in, ci, yy, zz) * N->w[i][((co * in.c + ci) * s->k + a) * s->k + b];
                        }
                AT(o, co, y, z) = acc > 0 ? acc : 0; /* with its ReLU */
            }
    return o;
}

/* dy (at the ReLU output o) -> d input */
static plane conv_b(const rnet *N, int i, plane in, plane o, plane dy) {
    const rspec *s = &N->sp[i];
    plane d = pl_new(in.c, in.h, in.w);
    for (int64_t co = 0; co < o.c; co++)
        for (int64_t y = 0; y < o.h; y++)
            for (int64_t z = 0; z < o.w; z++) {
                double g = AT(o, co, y, z) > 0 ? AT(dy, co, y, z) : 0;
                for (int64_t ci = 0; ci < in.c && g != 0; ci++)
                    for (int a = 0; a < s->k; a++)
                        for (int b = 0; b < s->k; b++) {
                            int64_t yy = y * s->s + a - s->p, zz = z * s->s + b - s->p;
                            if (yy >= 0 && yy < in.h && zz >= 0 && zz < in.w)
                                AT(d, ci, yy, zz) += g * N->w[i][((co * in.c + ci) * s->k + a) * s->k + b];
                        }
            }
    return d;
}

/* max pool; with dy given, the scatter of dy to each window's first maximum instead */
static plane pool(plane in, int k, int s, const plane *dy) {
    plane o = pl_new(in.c, (in.h - k) / s + 1, (in.w - k) / s + 1), d = dy ? pl_new(in.c, in.h, in.w) : o;
    for (int64_t c = 0; c < in.c; c++)
        for (int64_t y = 0; y < o.h; y++)
            for (int64_t z = 0; z < o.w; z++) {
                int64_t by = y * s, bz = z * s;
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++)
                        if (AT(in, c, y * s + a, z * s + b) > AT(in, c, by, bz)) by = y * s + a, bz = z * s + b;
                if (dy) AT(d, c, by, bz) += AT(*dy, c, y, z);
                else AT(o, c, y, z) = AT(in, c, by, bz);
            }
    if (dy) free(o.x);
    return d;
}

/* sum over taps of mean_s sum_c lin (n(a) - n(b))^2; ga (NULL: none) per conv = d/d(ReLU output of a) */
static double taps_dist(const rnet *N, plane *fa, plane *fb, plane *ga) {
    double total = 0;
    for (int i = 0; i < N->n; i++) {
        int t = N->sp[i].tap;
        if (t < 0) continue;
        plane A = fa[i], B = fb[i];
        int64_t S = A.h * A.w, C = A.c;
        double sum = 0;
        for (int64_t s = 0; s < S; s++) {
            double na = 0, nb = 0, u[64], v[64];
            for (int64_t c = 0; c < C; c++) na += A.x[c * S + s] * A.x[c * S + s], nb += B.x[c * S + s] * B.x[c * S + s];
            na = sqrt(na), nb = sqrt(nb);
            for (int64_t c = 0; c < C; c++) {
                u[c] = A.x[c * S + s] / (na + 1e-10) - B.x[c * S + s] / (nb + 1e-10);
                sum += N->lin[t][c] * u[c] * u[c];
                v[c] = 2 * N->lin[t][c] * u[c] / (double)S;
            }
            for (int64_t j = 0; ga && j < C && na > 0; j++) /* explicit Jacobian of x / (|x| + eps), transposed */
                for (int64_t c = 0; c < C; c++) {
                    double J = (c == j ? 1.0 / (na + 1e-10) : 0.0) - A.x[c * S + s] * A.x[j * S + s] / (na * (na + 1e-10) * (na + 1e-10));
                    ga[i].x[j * S + s] += J * v[c];
                }
        }
        total += sum / (double)S;
    }
    return total;
}

/* the backbone of frame x [3, H, W]: conv inputs in[i] and ReLU outputs out[i] */
static void run_net(const rnet *N, const double *x, int64_t H, int64_t W, plane *in, plane *out) {
    plane p = pl_new(3, H, W);
    for (int c = 0; c < 3; c++)
        for (int64_t k = 0; k < H * W; k++) p.x[c * H * W + k] = (x[c * H * W + k] - N->shift[c]) / N->scale[c];
    for (int i = 0; i < N->n; i++) {
        if (N->sp[i].pool_k) in[i] = pool(out[i - 1], N->sp[i].pool_k, N->sp[i].pool_s, NULL);
        else in[i] = i == 0 ? p : (plane){NULL, out[i - 1].c, out[i - 1].h, out[i - 1].w}; /* NULL: out[i - 1] */
        out[i] = conv_f(N, i, in[i].x ? in[i] : out[i - 1]);
    }
}

static double ref_dist(const rnet *N, const double *a, const double *b, int64_t H, int64_t W, double *grad) {
    plane ia[13], oa[13], ib[13], ob[13], ga[13];
    run_net(N, a, H, W, ia, oa);
    run_net(N, b, H, W, ib, ob);
    for (int i = 0; i < N->n; i++) ga[i] = pl_new(oa[i].c, oa[i].h, oa[i].w);
    double d = taps_dist(N, oa, ob, grad ? ga : NULL);
    for (int i = N->n - 1; grad && i >= 0; i--) { /* ga[i]: gradient at conv i's ReLU output */
        plane src = ia[i].x ? ia[i] : oa[i - 1], gi = conv_b(N, i, src, oa[i], ga[i]);
        if (i == 0) {
            for (int c = 0; c < 3; c++)
                for (int64_t k = 0; k < H * W; k++) grad[c * H * W + k] = gi.x[c * H * W + k] / N->scale[c];
        } else if (N->sp[i].pool_k) {
            plane gp = pool(oa[i - 1], N->sp[i].pool_k, N->sp[i].pool_s, &gi);
            for (int64_t k = 0; k < gp.c * gp.h * gp.w; k++) ga[i - 1].x[k] += gp.x[k];
            free(gp.x);
        } else
            for (int64_t k = 0; k < gi.c * gi.h * gi.w; k++) ga[i - 1].x[k] += gi.x[k];
        free(gi.x);
    }
    for (int i = 0; i < N->n; i++) {
        free(ia[i].x), free(ib[i].x), free(oa[i].x), free(ob[i].x), free(ga[i].x);
    }
    return d;
}

/* ---------------------------------------------------------------- random networks as lpips state_dict files */

static float *rnd(hb_rng *r, int64_t n, float sd) {
    float *v = malloc(sizeof(float) * (size_t)n);
    tl_fill_normal(r, v, n, sd);
    return v;
}

/* He-scaled conv weights, small positive-leaning biases (few all-zero feature positions), lin weights in [0, 1)
 * as the released ones (non-negative); widths drawn in [lo, hi] */
static void rnet_random(rnet *N, int vgg, hb_rng *r, int lo, int hi) {
    memset(N, 0, sizeof *N);
    N->vgg = vgg, N->n = vgg ? 13 : 5, N->sp = vgg ? r_vgg : r_alex;
    const float shift[3] = {-.030f, -.088f, -.188f}, scale[3] = {.458f, .448f, .450f};
    memcpy(N->shift, shift, sizeof shift), memcpy(N->scale, scale, sizeof scale);
    int64_t cin = 3;
    for (int i = 0; i < N->n; i++) {
        int k = N->sp[i].k;
        N->cin[i] = cin, N->cout[i] = lo + (int64_t)(hb_rng_u64(r) % (uint64_t)(hi - lo + 1));
        N->w[i] = rnd(r, N->cout[i] * cin * k * k, sqrtf(2.0f / (float)(cin * k * k)));
        N->b[i] = rnd(r, N->cout[i], 0.1f);
        for (int64_t c = 0; c < N->cout[i]; c++) N->b[i][c] += 0.05f;
        if (N->sp[i].tap >= 0) {
            N->lin[N->sp[i].tap] = malloc(sizeof(float) * (size_t)N->cout[i]);
            tl_fill_uniform(r, N->lin[N->sp[i].tap], N->cout[i], 0.0f, 1.0f);
        }
        cin = N->cout[i];
    }
}

static void rnet_free(rnet *N) {
    for (int i = 0; i < N->n; i++) free(N->w[i]), free(N->b[i]);
    for (int t = 0; t < 5; t++) free(N->lin[t]);
}

/* the state_dict as safetensors; `drop` (a name or NULL) left out, `widen` (a name or NULL) one input channel (or element) more */
static int rnet_write(const rnet *N, const char *path, const char *drop, const char *widen) {
    const char *names[40];
    char nm[40][48];
    hb_tensor ts[40];
    int n = 0;
    int64_t s13[4] = {1, 3, 1, 1};
    float *big = calloc(1 << 16, sizeof(float)); /* the data of a widened tensor (values unused) */
    strcpy(nm[n], "scaling_layer.shift"), ts[n++] = hb_tensor_make(HB_F32, 4, s13, (void *)N->shift);
    strcpy(nm[n], "scaling_layer.scale"), ts[n++] = hb_tensor_make(HB_F32, 4, s13, (void *)N->scale);
    for (int i = 0; i < N->n; i++) {
        int64_t k = N->sp[i].k, ws[4] = {N->cout[i], N->cin[i], k, k}, bs[1] = {N->cout[i]}, ls[4] = {1, N->cout[i], 1, 1};
        snprintf(nm[n], 48, "%s.weight", N->sp[i].name), ts[n++] = hb_tensor_make(HB_F32, 4, ws, N->w[i]);
        snprintf(nm[n], 48, "%s.bias", N->sp[i].name), ts[n++] = hb_tensor_make(HB_F32, 1, bs, N->b[i]);
        if (N->sp[i].tap >= 0) snprintf(nm[n], 48, "lin%d.model.1.weight", N->sp[i].tap), ts[n++] = hb_tensor_make(HB_F32, 4, ls, N->lin[N->sp[i].tap]);
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (drop && !strcmp(nm[i], drop)) continue;
        ts[m] = ts[i], names[m] = nm[i];
        if (widen && !strcmp(nm[i], widen)) { /* one more input channel (or element) */
            int64_t shp[4];
            memcpy(shp, ts[i].shape, sizeof shp);
            shp[ts[i].ndim > 1 ? 1 : 0]++;
            ts[m] = hb_tensor_make(HB_F32, ts[i].ndim, shp, big);
        }
        m++;
    }
    int rc = hb_safetensors_write(path, m, names, ts, NULL);
    free(big);
    return rc;
}

/* ---------------------------------------------------------------- checks */

static void frames(hb_rng *r, float *a, float *b, int64_t n) {
    tl_fill_uniform(r, a, n, -1.0f, 1.0f);
    tl_fill_normal(r, b, n, 0.3f);
    for (int64_t i = 0; i < n; i++) b[i] = fminf(1.0f, fmaxf(-1.0f, a[i] + b[i]));
}

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* hb_lpips_frame against the naive reference and finite differences; the same bits on cpu-guard; the video form */
static void check_random(hb_rng *r, int vgg, int64_t H, int64_t W) {
    rnet N;
    rnet_random(&N, vgg, r, 3, vgg ? 8 : 12);
    char path[512];
    snprintf(path, sizeof path, "%s/lpips_%s.safetensors", tl_tmpdir(), vgg ? "vgg" : "alex");
    CHECK(rnet_write(&N, path, NULL, NULL) == 0);
    hb_lpips *l = hb_lpips_load(path);
    CHECKF(l != NULL, "%s", hb_last_error());
    if (!l) { rnet_free(&N); return; }
    CHECK(hb_lpips_backbone(l) == (vgg ? HB_LPIPS_VGG : HB_LPIPS_ALEX) && hb_lpips_tap_channels(l, 4) == N.cout[N.n - 1]);
    int64_t n = 3 * H * W;
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n), *g = malloc(sizeof(float) * (size_t)n);
    float *gref = malloc(sizeof(float) * (size_t)n);
    double *ad = malloc(sizeof(double) * (size_t)n), *bd = malloc(sizeof(double) * (size_t)n), *gd = malloc(sizeof(double) * (size_t)n);
    frames(r, a, b, n);
    for (int64_t i = 0; i < n; i++) ad[i] = a[i], bd[i] = b[i];
    double d = 0, dref = ref_dist(&N, ad, bd, H, W, gd);
    CHECK(hb_lpips_frame(l, a, b, H, W, g, 1.0f, &d, NULL) == 0);
    for (int64_t i = 0; i < n; i++) gref[i] = (float)gd[i];
    double eg = tl_rel_err(g, gref, n);
    CHECKF(fabs(d - dref) <= 2e-5 * dref, "%s: distance %.9g, reference %.9g", path, d, dref);
    CHECKF(eg <= 1e-4, "%s: gradient rel err %.3e", path, eg);
    /* central differences of the double forward at random pixels */
    double gmax = max_abs(gref, n), worst = 0, h = 1e-6;
    for (int k = 0; k < 24; k++) {
        int64_t i = (int64_t)(hb_rng_u64(r) % (uint64_t)n);
        double x0 = ad[i];
        ad[i] = x0 + h;
        double lp = ref_dist(&N, ad, bd, H, W, NULL);
        ad[i] = x0 - h;
        double lm = ref_dist(&N, ad, bd, H, W, NULL);
        ad[i] = x0;
        worst = fmax(worst, fabs((lp - lm) / (2 * h) - g[i]) / gmax);
    }
    CHECKF(worst <= 1e-4, "%s: finite differences off by %.3e of the max gradient", path, worst);
    printf("  %s %lldx%lld: distance %.6f (reference %.6f), gradient rel err %.2e, finite differences %.2e\n",
           vgg ? "vgg" : "alex", (long long)H, (long long)W, d, dref, eg, worst);

    /* cpu-guard: activations reachable only inside ops, the same bits */
    const hb_backend *prev = hb_backend_use(hb_backend_cpu_guard());
    float *da = tl_dev_upload(a, n), *db = tl_dev_upload(b, n), *dg = hb_dev_alloc(sizeof(float) * (size_t)n, "test");
    double d2 = 0;
    CHECK(da && db && dg && hb_lpips_frame(l, da, db, H, W, dg, 1.0f, &d2, NULL) == 0);
    CHECK(d2 == d && tl_dev_same(dg, g, n));
    hb_dev_free(da), hb_dev_free(db), hb_dev_free(dg);
    hb_backend_use(prev);

    /* video of 3 frames: the mean of the frames, gradient added to what is there */
    int64_t T = 3, HW = H * W;
    float *va = malloc(sizeof(float) * (size_t)(n * T)), *vb = malloc(sizeof(float) * (size_t)(n * T));
    float *vg = rnd(r, n * T, 1.0f), *vg0 = malloc(sizeof(float) * (size_t)(n * T)), *want = malloc(sizeof(float) * (size_t)(n * T));
    frames(r, va, vb, n * T);
    memcpy(vg0, vg, sizeof(float) * (size_t)(n * T));
    double mean = 0, want_mean = 0;
    CHECK(hb_lpips_video(l, va, vb, T, H, W, vg, 0.7f, &mean) == 0);
    for (int64_t t = 0; t < T; t++) {
        for (int c = 0; c < 3; c++)
            memcpy(a + c * HW, va + (c * T + t) * HW, sizeof(float) * (size_t)HW), memcpy(b + c * HW, vb + (c * T + t) * HW, sizeof(float) * (size_t)HW);
        double dt = 0;
        CHECK(hb_lpips_frame(l, a, b, H, W, g, 0.7f / (float)T, &dt, NULL) == 0);
        want_mean += dt / (double)T;
        for (int c = 0; c < 3; c++)
            for (int64_t k = 0; k < HW; k++) want[(c * T + t) * HW + k] = vg0[(c * T + t) * HW + k] + g[c * HW + k];
    }
    CHECKF(fabs(mean - want_mean) <= 1e-12 * want_mean && tl_rel_err(vg, want, n * T) == 0, "video: mean %.9g vs %.9g", mean, want_mean);
    free(va), free(vb), free(vg), free(vg0), free(want);
    free(a), free(b), free(g), free(gref), free(ad), free(bd), free(gd);
    hb_lpips_free(l);
    rnet_free(&N);
}

/* tests/data/lpips/lpips_<net>_ref.safetensors: the network and ref.{a,b,dist,grad} from PyTorch (float64) */
static void check_fixture(const char *net) {
    const char *src = getenv("HB_SOURCE_DIR");
    if (!src) { printf("HB_SOURCE_DIR not set (run through ctest): PyTorch fixture skipped\n"); return; }
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/lpips/lpips_%s_ref.safetensors", src, net);
    hb_lpips *l = hb_lpips_load(path);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    hb_tensor ta, tb, td, tg;
    bool ok = l && ck && !hb_checkpoint_get(ck, "ref.a", &ta) && !hb_checkpoint_get(ck, "ref.b", &tb) &&
              !hb_checkpoint_get(ck, "ref.dist", &td) && !hb_checkpoint_get(ck, "ref.grad", &tg) && ta.ndim == 4;
    CHECKF(ok, "%s: %s", path, hb_last_error());
    for (int64_t k = 0; ok && k < ta.shape[0]; k++) {
        int64_t H = ta.shape[2], W = ta.shape[3], n = 3 * H * W;
        float *g = malloc(sizeof(float) * (size_t)n), ref = ((const float *)td.data)[k];
        double d = 0;
        CHECK(hb_lpips_frame(l, (const float *)ta.data + k * n, (const float *)tb.data + k * n, H, W, g, 1.0f, &d, NULL) == 0);
        double eg = tl_rel_err(g, (const float *)tg.data + k * n, n);
        CHECKF(fabs(d - ref) <= 1e-5 * ref, "%s pair %lld: distance %.9g, PyTorch %.9g", net, (long long)k, d, ref);
        CHECKF(eg <= 1e-4, "%s pair %lld: gradient rel err %.3e", net, (long long)k, eg);
        printf("  PyTorch fixture %s pair %lld (%lldx%lld): distance %.7f vs %.7f (rel %.1e), gradient rel err %.2e\n", net,
               (long long)k, (long long)H, (long long)W, d, ref, fabs(d - ref) / ref, eg);
        free(g);
    }
    hb_checkpoint_close(ck);
    hb_lpips_free(l);
}

/* bad files: NULL and one message naming the file and the tensor */
static void check_bad_files(hb_rng *r) {
    rnet N;
    rnet_random(&N, 1, r, 3, 5);
    char path[512], msg[1024];
    const char *dir = tl_tmpdir();
    struct { const char *drop, *widen, *want; } bad[] = {
        {"lin2.model.1.weight", NULL, "lin2.model.1.weight"}, {"net.slice3.12.bias", NULL, "net.slice3.12.bias"},
        {NULL, "net.slice4.19.weight", "net.slice4.19.weight"}, {NULL, "lin4.model.1.weight", "lin4.model.1.weight"},
        {"scaling_layer.scale", NULL, "scaling_layer.scale"}, {"net.slice2.5.weight", NULL, "not an LPIPS"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.safetensors", dir, i);
        CHECK(rnet_write(&N, path, bad[i].drop, bad[i].widen) == 0);
        hb_lpips *l = hb_lpips_load(path);
        snprintf(msg, sizeof msg, "%s", hb_last_error());
        CHECKF(!l && strstr(msg, path) && strstr(msg, bad[i].want), "case %zu: %s", i, msg);
        hb_lpips_free(l);
    }
    /* truncated: the good file cut in half */
    snprintf(path, sizeof path, "%s/good.safetensors", dir);
    CHECK(rnet_write(&N, path, NULL, NULL) == 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "head -c $(( $(stat -c %%s '%s') / 2 )) '%s' > '%s/cut.safetensors'", path, path, dir);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    snprintf(path, sizeof path, "%s/cut.safetensors", dir);
    hb_lpips *l = hb_lpips_load(path);
    CHECKF(!l && strstr(hb_last_error(), "cut.safetensors"), "truncated: %s", hb_last_error());
    hb_lpips_free(l);
    /* frames smaller than VGG16 takes (16 a side) */
    snprintf(path, sizeof path, "%s/good.safetensors", dir);
    l = hb_lpips_load(path);
    float x[3 * 15 * 40] = {0};
    double d = 0;
    CHECK(l && hb_lpips_min_size(l) == 16);
    CHECKF(l && hb_lpips_frame(l, x, x, 15, 40, NULL, 1.0f, &d, NULL) != 0 && strstr(hb_last_error(), "15x40"), "%s", hb_last_error());
    hb_lpips_free(l);
    rnet_free(&N);
}

/* hb train-decoder --lpips on the tiny setup of test_train_decoder (random teacher and student, four testsrc2
 * clips of 9 frames at 64x64) with a random reduced-width AlexNet LPIPS file: the loss_lpips column falls */
static void check_train(hb_rng *r) {
    if (tl_run("command -v ffmpeg >/dev/null", NULL, 0) != 0) { printf("ffmpeg not installed: training run skipped\n"); return; }
    const char *dir = tl_tmpdir();
    char cmd[4096], p[1024];
    snprintf(cmd, sizeof cmd, "'%s' mkmodel --arch hummingbird-xt --tiny '%s/mk' >/dev/null 2>&1 && mkdir -p '%s/clips'", tl_hb_bin(), dir, dir);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -f lavfi -i testsrc2=size=96x80:rate=8:duration=2 "
                 "-vf hue=h=%d,crop=80:80:%d:0 -pix_fmt yuv420p '%s/clips/c%d.mp4'", i * 60, i * 4, dir, i);
        CHECK(tl_run(cmd, NULL, 0) == 0);
    }
    rnet N;
    rnet_random(&N, 0, r, 4, 12);
    snprintf(p, sizeof p, "%s/lpips_train.safetensors", dir);
    CHECK(rnet_write(&N, p, NULL, NULL) == 0);
    rnet_free(&N);
    snprintf(cmd, sizeof cmd, "'%s' train-decoder --teacher '%s/mk/hm_2.2_5B/Wan2.2_VAE.pth' --config "
             "'%s/mk/vae/wan22_v1_tiling_16_12/config.json' --data '%s/clips' --frames 9 --size 64 --lr 3e-3 --ema 0.9 "
             "--steps 24 --save-every 12 --feature-blocks none --lpips '%s' --lpips-weight 2 --out '%s/run' -q 2>&1", tl_hb_bin(), dir, dir, dir, p, dir);
    char out[4096];
    int rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "train-decoder --lpips: %s", out);
    snprintf(p, sizeof p, "%s/run/train_log.csv", dir);
    FILE *f = fopen(p, "r");
    double lp[64], loss[64], rec[64];
    int n = 0;
    char line[512];
    int col = -1; /* the loss_lpips column, found by name */
    if (f && fgets(line, sizeof line, f)) {
        char *q = line;
        for (int i = 0; q && col < 0; i++, q = strchr(q, ','), q = q ? q + 1 : NULL)
            if (!strncmp(q, "loss_lpips", 10) && (q[10] == ',' || q[10] == '\n')) col = i;
    }
    bool header = col > 2 && col < 16;
    while (header && n < 64 && fgets(line, sizeof line, f)) {
        char *fld[16] = {0}, *q = line;
        for (int i = 0; i < 16 && q; i++) fld[i] = q, q = strchr(q, ','), q = q ? (*q = 0, q + 1) : NULL;
        if (atoi(fld[0]) > 0 && fld[col] && fld[col][0]) loss[n] = atof(fld[1]), rec[n] = atof(fld[2]), lp[n++] = atof(fld[col]);
    }
    if (f) fclose(f);
    CHECKF(header && n == 24, "%s: header %d, %d rows with loss_lpips", p, header, n);
    if (n < 24) return;
    double last = 0;
    for (int i = n - 6; i < n; i++) last += lp[i] / 6;
    CHECKF(last < 0.8 * lp[0], "LPIPS term %.4f -> %.4f (mean of the last 6 steps)", lp[0], last);
    CHECKF(fabs(loss[0] - (rec[0] + 2 * lp[0])) <= 1e-4 * loss[0], "loss %.6g != rec %.6g + 2 lpips %.6g", loss[0], rec[0], lp[0]);
    printf("  train-decoder --lpips (AlexNet, random reduced widths), 24 steps: LPIPS term %.4f -> %.4f (last 6)\n", lp[0], last);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    check_random(&r, 0, 37, 42); /* AlexNet: the stride-4 conv drops 2 and 3 rows, pools overlap */
    check_random(&r, 1, 20, 23); /* VGG16: odd sides, pools floor */
    check_fixture("alex");
    check_fixture("vgg");
    check_bad_files(&r);
    check_train(&r);
    return tl_done();
}
