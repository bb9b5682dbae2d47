/* ops/backward: every backward kernel against an independent double-precision naive reference (scatter loops,
 * explicit Jacobians) at 2e-5 normwise, and against central finite differences of a double-precision forward
 * at random coordinates (1e-4 relative to the gradient's max); AdamW over 5 steps against a double-precision
 * transcription of torch's update with a large lr * weight_decay (decay visible in float32) at 2e-6 relative,
 * and with the golden's settings (lr 1e-4, wd 1e-4: decay rounds away) element-exactly against a float
 * transcription. The conv gradient also runs on cpu-guard (activations reachable only inside ops): the same bits.
 * Fresh random data on every run (seed printed). */
#include "testlib.h"
#include "ops/backward.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *rndv(hb_rng *r, int64_t n, float sd) {
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    tl_fill_normal(r, v, n, sd);
    return v;
}

/* ---------------------------------------------------------------- conv3d */

typedef struct {
    int64_t Cin, Cout, T, H, W, k[3], To, Ho, Wo;
    hb_conv3d_params p;
} cshape;

/* double forward L = sum dy * conv(x, w, b) */
static double conv_loss(const cshape *s, const double *x, const double *w, const double *b, const float *dy) {
    int g = s->p.groups;
    int64_t cig = s->Cin / g, cog = s->Cout / g;
    double L = 0;
    for (int64_t co = 0; co < s->Cout; co++)
        for (int64_t t = 0; t < s->To; t++)
            for (int64_t y = 0; y < s->Ho; y++)
                for (int64_t z = 0; z < s->Wo; z++) {
                    double acc = b[co];
                    for (int64_t ci = 0; ci < cig; ci++)
                        for (int64_t a = 0; a < s->k[0]; a++)
                            for (int64_t bb = 0; bb < s->k[1]; bb++)
                                for (int64_t c = 0; c < s->k[2]; c++) {
                                    int64_t ti = t + a - s->p.pad_t[0], yi = y + bb - s->p.pad_h[0], zi = z + c - s->p.pad_w[0];
                                    if (ti < 0 || ti >= s->T || yi < 0 || yi >= s->H || zi < 0 || zi >= s->W) continue;
                                    acc += x[(((co / cog) * cig + ci) * s->T + ti) * s->H * s->W + yi * s->W + zi] *
                                           w[(((co * cig + ci) * s->k[0] + a) * s->k[1] + bb) * s->k[2] + c];
                                }
                    L += acc * dy[((co * s->To + t) * s->Ho + y) * s->Wo + z];
                }
    return L;
}

/* naive gradients: every output scatters dy into dx, dw, db */
static void conv_naive_grad(const cshape *s, const float *x, const float *w, const float *dy, double *dx, double *dw, double *db) {
    int g = s->p.groups;
    int64_t cig = s->Cin / g, cog = s->Cout / g;
    for (int64_t co = 0; co < s->Cout; co++)
        for (int64_t t = 0; t < s->To; t++)
            for (int64_t y = 0; y < s->Ho; y++)
                for (int64_t z = 0; z < s->Wo; z++) {
                    double gy = dy[((co * s->To + t) * s->Ho + y) * s->Wo + z];
                    db[co] += gy;
                    for (int64_t ci = 0; ci < cig; ci++)
                        for (int64_t a = 0; a < s->k[0]; a++)
                            for (int64_t bb = 0; bb < s->k[1]; bb++)
                                for (int64_t c = 0; c < s->k[2]; c++) {
                                    int64_t ti = t + a - s->p.pad_t[0], yi = y + bb - s->p.pad_h[0], zi = z + c - s->p.pad_w[0];
                                    if (ti < 0 || ti >= s->T || yi < 0 || yi >= s->H || zi < 0 || zi >= s->W) continue;
                                    int64_t xi = (((co / cog) * cig + ci) * s->T + ti) * s->H * s->W + yi * s->W + zi;
                                    int64_t wi = (((co * cig + ci) * s->k[0] + a) * s->k[1] + bb) * s->k[2] + c;
                                    dx[xi] += gy * w[wi], dw[wi] += gy * x[xi];
                                }
                }
}

static double *to_d(const float *v, int64_t n) {
    double *d = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) d[i] = v[i];
    return d;
}

static double dmax(const double *v, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

static double rel_d(const float *ours, const double *ref, int64_t n) {
    double e = 0, m = dmax(ref, n);
    for (int64_t i = 0; i < n; i++) e = fabs(ours[i] - ref[i]) > e ? fabs(ours[i] - ref[i]) : e;
    return m > 0 ? e / m : e;
}

/* central differences of f at `probes` random coordinates of v (n values) against grad: worst |diff| / max|grad| */
typedef double (*loss_fn)(void *ctx);
static double fd_check(hb_rng *r, double *v, int64_t n, const float *grad, loss_fn f, void *ctx, int probes) {
    double gm = 0, worst = 0, h = 1e-4;
    for (int64_t i = 0; i < n; i++) gm = fabs(grad[i]) > gm ? fabs(grad[i]) : gm;
    for (int k = 0; k < probes; k++) {
        int64_t i = (int64_t)(hb_rng_u64(r) % (uint64_t)n);
        double keep = v[i];
        v[i] = keep + h;
        double lp = f(ctx);
        v[i] = keep - h;
        double lm = f(ctx);
        v[i] = keep;
        double e = fabs((lp - lm) / (2 * h) - grad[i]);
        worst = e > worst ? e : worst;
    }
    return gm > 0 ? worst / gm : worst;
}

typedef struct { const cshape *s; double *x, *w, *b; const float *dy; } conv_fd;
static double conv_fd_loss(void *c) { conv_fd *f = c; return conv_loss(f->s, f->x, f->w, f->b, f->dy); }

static void check_conv(hb_rng *r, int64_t Cin, int64_t Cout, int64_t T, int64_t H, int64_t W, int kt, int kh,
                       hb_conv3d_params p, const char *what) {
    cshape s = {Cin, Cout, T, H, W, {kt, kh, kh}, 0, 0, 0, p};
    s.To = T + p.pad_t[0] + p.pad_t[1] - kt + 1, s.Ho = H + p.pad_h[0] + p.pad_h[1] - kh + 1, s.Wo = W + p.pad_w[0] + p.pad_w[1] - kh + 1;
    int64_t cig = Cin / p.groups, nx = Cin * T * H * W, nw = Cout * cig * kt * kh * kh, ny = Cout * s.To * s.Ho * s.Wo;
    float *x = rndv(r, nx, 1.0f), *w = rndv(r, nw, 0.3f), *bias = rndv(r, Cout, 0.1f), *dy = rndv(r, ny, 1.0f);
    float *dx = malloc(sizeof(float) * (size_t)nx), *dw = calloc((size_t)nw, sizeof(float)), *db = calloc((size_t)Cout, sizeof(float));
    int64_t shp[5] = {Cout, cig, kt, kh, kh};
    hb_tensor wt = hb_tensor_make(HB_F32, 5, shp, w);
    CHECKF(hb_conv3d_backward(dx, dw, db, dy, x, Cin, T, H, W, &wt, &p) == 0, "%s: %s", what, hb_last_error());
    double *rx = calloc((size_t)nx, sizeof(double)), *rw = calloc((size_t)nw, sizeof(double)), *rb = calloc((size_t)Cout, sizeof(double));
    conv_naive_grad(&s, x, w, dy, rx, rw, rb);
    CHECKF(rel_d(dx, rx, nx) <= 2e-5, "%s dx: %.3e", what, rel_d(dx, rx, nx));
    CHECKF(rel_d(dw, rw, nw) <= 2e-5, "%s dw: %.3e", what, rel_d(dw, rw, nw));
    CHECKF(rel_d(db, rb, Cout) <= 2e-5, "%s db: %.3e", what, rel_d(db, rb, Cout));
    conv_fd f = {&s, to_d(x, nx), to_d(w, nw), to_d(bias, Cout), dy};
    double ex = fd_check(r, f.x, nx, dx, conv_fd_loss, &f, 12), ew = fd_check(r, f.w, nw, dw, conv_fd_loss, &f, 12);
    double eb = fd_check(r, f.b, Cout, db, conv_fd_loss, &f, 4);
    CHECKF(ex <= 1e-4 && ew <= 1e-4 && eb <= 1e-4, "%s finite differences: dx %.2e dw %.2e db %.2e", what, ex, ew, eb);
    /* accumulation: a second call adds the same amount */
    float *dw2 = malloc(sizeof(float) * (size_t)nw);
    memcpy(dw2, dw, sizeof(float) * (size_t)nw);
    hb_conv3d_backward(NULL, dw2, NULL, dy, x, Cin, T, H, W, &wt, &p);
    for (int64_t i = 0; i < nw; i++) dw2[i] -= 2 * dw[i];
    double acc = 0;
    for (int64_t i = 0; i < nw; i++) acc = fabs(dw2[i]) > acc ? fabs(dw2[i]) : acc;
    CHECKF(acc <= 1e-5 * dmax(rw, nw), "%s: dw does not accumulate (%.3e)", what, acc);
    /* the composition touches activations only through ops: on cpu-guard (pages closed outside ops) the same bits */
    const hb_backend *guard = hb_backend_cpu_guard();
    hb_backend_use(guard);
    float *z = calloc((size_t)nw, sizeof(float)), *zb = calloc((size_t)Cout, sizeof(float));
    float *gx = hb_dev_alloc(sizeof(float) * (size_t)nx, "dx"), *gxin = tl_dev_upload(x, nx), *gdy = tl_dev_upload(dy, ny);
    float *gw = tl_dev_upload(z, nw), *gb = tl_dev_upload(zb, Cout);
    int grc = hb_conv3d_backward(gx, gw, gb, gdy, gxin, Cin, T, H, W, &wt, &p);
    CHECKF(grc == 0 && hb_backend_sync() == 0, "%s on cpu-guard: %s", what, hb_last_error());
    CHECKF(tl_dev_same(gx, dx, nx) && tl_dev_same(gw, dw, nw) && tl_dev_same(gb, db, Cout), "%s: cpu-guard differs", what);
    hb_dev_free(gx), hb_dev_free(gxin), hb_dev_free(gdy), hb_dev_free(gw), hb_dev_free(gb);
    hb_backend_use(NULL);
    free(z), free(zb);
    printf("  conv %-28s dx %.2e dw %.2e db %.2e (naive), fd %.1e %.1e %.1e\n", what, rel_d(dx, rx, nx), rel_d(dw, rw, nw),
           rel_d(db, rb, Cout), ex, ew, eb);
    free(x), free(w), free(bias), free(dy), free(dx), free(dw), free(db), free(rx), free(rw), free(rb), free(dw2);
    free(f.x), free(f.w), free(f.b);
}

/* ---------------------------------------------------------------- norms, activations */

typedef struct { int kind; int64_t C, S; double *x, *w, *b; const float *dy; float eps; } norm_fd;

/* double forward: kind 0 channel RMS (no weight), 1 channel LayerNorm, 2 SiLU, 3 ReLU; L = sum dy * y */
static double norm_loss(void *c) {
    norm_fd *f = c;
    double L = 0;
    if (f->kind >= 2) {
        for (int64_t i = 0; i < f->C * f->S; i++) {
            double x = f->x[i], y = f->kind == 2 ? x / (1 + exp(-x)) : (x > 0 ? x : 0);
            L += y * f->dy[i];
        }
        return L;
    }
    for (int64_t s = 0; s < f->S; s++) {
        double mu = 0, q = 0;
        if (f->kind == 1)
            for (int64_t c = 0; c < f->C; c++) mu += f->x[c * f->S + s] / (double)f->C;
        for (int64_t c = 0; c < f->C; c++) q += (f->x[c * f->S + s] - mu) * (f->x[c * f->S + s] - mu) / (double)f->C;
        double r = 1 / sqrt(q + f->eps);
        for (int64_t c = 0; c < f->C; c++) {
            double y = (f->x[c * f->S + s] - mu) * r;
            if (f->kind == 1) y = y * f->w[c] + f->b[c];
            L += y * f->dy[c * f->S + s];
        }
    }
    return L;
}

/* explicit Jacobians per position: dx_j = sum_c dy_c dy_c/dx_j */
static void norm_naive_grad(const norm_fd *f, double *dx, double *dw, double *db) {
    int64_t C = f->C, S = f->S;
    for (int64_t s = 0; s < S; s++) {
        double mu = 0, q = 0;
        if (f->kind == 1)
            for (int64_t c = 0; c < C; c++) mu += f->x[c * S + s] / (double)C;
        for (int64_t c = 0; c < C; c++) q += (f->x[c * S + s] - mu) * (f->x[c * S + s] - mu) / (double)C;
        double r = 1 / sqrt(q + f->eps);
        for (int64_t j = 0; j < C; j++) {
            double xj = (f->x[j * S + s] - mu) * r, acc = 0;
            for (int64_t c = 0; c < C; c++) {
                double xc = (f->x[c * S + s] - mu) * r, d = c == j;
                double jac = f->kind == 1 ? f->w[c] * r * (d - 1.0 / (double)C - xc * xj / (double)C) : r * (d - xc * xj / (double)C);
                acc += f->dy[c * S + s] * jac;
            }
            dx[j * S + s] = acc;
            if (f->kind == 1) dw[j] += f->dy[j * S + s] * xj, db[j] += f->dy[j * S + s];
        }
    }
}

static void check_norm(hb_rng *r, int kind, int64_t C, int64_t S, const char *what) {
    int64_t n = C * S;
    float *x = rndv(r, n, 1.5f), *w = rndv(r, C, 0.2f), *b = rndv(r, C, 0.1f), *dy = rndv(r, n, 1.0f);
    for (int64_t c = 0; c < C; c++) w[c] += 1.0f;
    if (kind == 3)
        for (int64_t i = 0; i < n; i++) x[i] += x[i] >= 0 ? 0.05f : -0.05f; /* keep ReLU inputs away from the kink */
    float *dx = malloc(sizeof(float) * (size_t)n), *dw = calloc((size_t)C, sizeof(float)), *db = calloc((size_t)C, sizeof(float));
    float eps = kind == 1 ? 1e-6f : 1e-8f;
    if (kind == 0) hb_channel_rms_backward(dx, dy, x, C, S, eps);
    else if (kind == 1) {
        hb_tensor wt = hb_tensor_1d(HB_F32, C, w);
        hb_channel_layernorm_backward(dx, dw, db, dy, x, &wt, C, S, eps);
    }
    else hb_act_backward(kind == 2 ? HB_EW_SILU : HB_EW_RELU, dx, dy, x, n);
    norm_fd f = {kind, kind >= 2 ? 1 : C, kind >= 2 ? n : S, to_d(x, n), to_d(w, C), to_d(b, C), dy, eps};
    double *rx = calloc((size_t)n, sizeof(double)), *rw = calloc((size_t)C, sizeof(double)), *rb = calloc((size_t)C, sizeof(double));
    if (kind < 2) norm_naive_grad(&f, rx, rw, rb);
    else
        for (int64_t i = 0; i < n; i++) {
            double s = 1 / (1 + exp(-f.x[i]));
            rx[i] = dy[i] * (kind == 2 ? s + f.x[i] * s * (1 - s) : f.x[i] > 0);
        }
    double e = rel_d(dx, rx, n), fx = fd_check(r, f.x, n, dx, norm_loss, &f, 16);
    CHECKF(e <= 2e-5, "%s dx: %.3e", what, e);
    CHECKF(fx <= 1e-4, "%s dx finite differences: %.3e", what, fx);
    if (kind == 1) {
        double ew = rel_d(dw, rw, C), eb = rel_d(db, rb, C);
        double fw = fd_check(r, f.w, C, dw, norm_loss, &f, 6), fb = fd_check(r, f.b, C, db, norm_loss, &f, 6);
        CHECKF(ew <= 2e-5 && eb <= 2e-5 && fw <= 1e-4 && fb <= 1e-4, "%s dw %.3e db %.3e, fd %.2e %.2e", what, ew, eb, fw, fb);
    }
    printf("  %-33s dx %.2e (naive), fd %.1e\n", what, e, fx);
    free(x), free(w), free(b), free(dy), free(dx), free(dw), free(db), free(rx), free(rw), free(rb);
    free(f.x), free(f.w), free(f.b);
}

/* ---------------------------------------------------------------- losses */

static void check_losses(hb_rng *r) {
    int64_t n = 1000;
    float *a = rndv(r, n, 1.0f), *b = rndv(r, n, 1.0f), *g = calloc((size_t)n, sizeof(float)), *g2 = calloc((size_t)n, sizeof(float));
    double l1 = 0, l2 = 0;
    for (int64_t i = 0; i < n; i++) l1 += fabs((double)a[i] - b[i]), l2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    double L1 = hb_l1_loss(a, b, n, g, 0.7f), L2 = hb_mse_loss(a, b, n, g2, 1.3f);
    CHECKF(fabs(L1 - l1 / n) <= 1e-6 * (l1 / n) && fabs(L2 - l2 / n) <= 1e-6 * (l2 / n), "losses %g %g vs %g %g", L1, L2, l1 / n, l2 / n);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = a[i] > b[i] ? 1 : a[i] < b[i] ? -1 : 0;
        bad += fabs(g[i] - 0.7 * s / n) > 1e-6 * 0.7 / n;
        bad += fabs(g2[i] - 1.3 * 2 * ((double)a[i] - b[i]) / n) > 1e-5 * fabs(1.3 * 2 * ((double)a[i] - b[i]) / n) + 1e-12;
    }
    CHECKF(bad == 0, "%d loss gradients off", bad);
    free(a), free(b), free(g), free(g2);
}

/* ---------------------------------------------------------------- AdamW */

static void check_adamw(hb_rng *r) {
    int64_t n = 4096;
    float *w = rndv(r, n, 1.0f), *m = calloc((size_t)n, sizeof(float)), *v = calloc((size_t)n, sizeof(float));
    double *rw = to_d(w, n), *rm = calloc((size_t)n, sizeof(double)), *rv = calloc((size_t)n, sizeof(double));
    float *w0 = malloc(sizeof(float) * (size_t)n);
    memcpy(w0, w, sizeof(float) * (size_t)n);
    hb_adamw o = {1e-2, 0.9, 0.95, 1e-8, 0.3}; /* lr * wd = 3e-3: the decay shows in float32 */
    for (int step = 1; step <= 5; step++) {
        float *g = rndv(r, n, 0.5f);
        hb_adamw_step(&o, step, w, g, m, v, n);
        double bc1 = 1 - pow(o.beta1, step), bc2 = 1 - pow(o.beta2, step);
        for (int64_t i = 0; i < n; i++) { /* torch's AdamW in double */
            rw[i] *= 1 - o.lr * o.weight_decay;
            rm[i] = o.beta1 * rm[i] + (1 - o.beta1) * g[i];
            rv[i] = o.beta2 * rv[i] + (1 - o.beta2) * (double)g[i] * g[i];
            rw[i] -= o.lr / bc1 * rm[i] / (sqrt(rv[i]) / sqrt(bc2) + o.eps);
        }
        free(g);
    }
    double e = 0, moved = 0;
    for (int64_t i = 0; i < n; i++) {
        e = fabs(w[i] - rw[i]) > e ? fabs(w[i] - rw[i]) : e;
        moved = fabs(w[i] - w0[i]) > moved ? fabs(w[i] - w0[i]) : moved;
    }
    CHECKF(e <= 2e-6 * dmax(rw, n) && moved > 0.02, "AdamW (large lr*wd) vs double reference: %.3e (moved %.3e)", e, moved);
    printf("  AdamW lr 1e-2 wd 0.3, 5 steps: max |w - ref| %.2e\n", e);

    /* the golden's settings, element-exact against a float transcription of torch's kernels */
    hb_adamw t = {1e-4, 0.9, 0.95, 1e-15, 1e-4};
    memcpy(w, w0, sizeof(float) * (size_t)n), memset(m, 0, sizeof(float) * (size_t)n), memset(v, 0, sizeof(float) * (size_t)n);
    float *fw = malloc(sizeof(float) * (size_t)n), *fm = calloc((size_t)n, sizeof(float)), *fv = calloc((size_t)n, sizeof(float));
    memcpy(fw, w0, sizeof(float) * (size_t)n);
    int64_t diff = 0;
    for (int step = 1; step <= 2; step++) {
        float *g = rndv(r, n, 0.01f);
        hb_adamw_step(&t, step, w, g, m, v, n);
        double bc1 = 1 - pow(0.9, step), bc2 = 1 - pow(0.95, step);
        for (int64_t i = 0; i < n; i++) {
            volatile float a = fw[i] * (float)(1 - 1e-4 * 1e-4);
            fm[i] = fmaf(g[i], (float)(1 - 0.9), fm[i] * 0.9f);
            fv[i] = fmaf((float)(1 - 0.95) * g[i], g[i], fv[i] * 0.95f);
            volatile float den = sqrtf(fv[i]) / (float)sqrt(bc2);
            den = den + 1e-15f;
            volatile float up = (float)(-(1e-4 / bc1)) * fm[i];
            fw[i] = a + up / den;
        }
        free(g);
    }
    for (int64_t i = 0; i < n; i++) diff += memcmp(&w[i], &fw[i], sizeof(float)) != 0;
    CHECKF(diff == 0, "AdamW (golden settings): %lld of %lld weights differ from the float transcription", (long long)diff, (long long)n);
    free(w), free(m), free(v), free(rw), free(rm), free(rv), free(w0), free(fw), free(fm), free(fv);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    hb_conv3d_params plain = {{1, 1, 1}, {0, 0}, {1, 1}, {1, 1}, 1, HB_CONV_F32}, dw5 = {{1, 1, 1}, {0, 0}, {2, 2}, {2, 2}, 6, HB_CONV_F32};
    hb_conv3d_params pw = {{1, 1, 1}, {0, 0}, {0, 0}, {0, 0}, 1, HB_CONV_F32}, c2d = {{1, 1, 1}, {0, 0}, {1, 1}, {1, 1}, 1, HB_CONV_F32};
    hb_conv3d_params padded_t = {{1, 1, 1}, {2, 0}, {1, 1}, {1, 1}, 1, HB_CONV_F32};
    check_conv(&r, 5, 7, 6, 5, 4, 3, 3, plain, "3x3x3 spatial zero padding");
    check_conv(&r, 4, 3, 5, 6, 3, 3, 3, padded_t, "3x3x3 zero time padding");
    check_conv(&r, 6, 6, 7, 6, 5, 5, 5, dw5, "depthwise 5x5x5");
    check_conv(&r, 9, 4, 3, 4, 5, 1, 1, pw, "pointwise 1x1x1");
    check_conv(&r, 6, 6, 3, 7, 5, 1, 3, c2d, "per-frame 3x3 (Conv2d)");
    check_norm(&r, 0, 7, 50, "channel RMS norm");
    check_norm(&r, 1, 6, 40, "channel LayerNorm");
    check_norm(&r, 2, 1, 300, "SiLU");
    check_norm(&r, 3, 1, 300, "ReLU");
    check_losses(&r);
    check_adamw(&r);
    hb_threads_shutdown();
    return tl_done();
}
