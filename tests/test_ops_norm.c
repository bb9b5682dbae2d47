/* ops: layernorm (biased variance), rmsnorm, channel rmsnorm (Wan VAE RMS_norm), layernorm+modulate with the three
 * modulation groupings, gated residual, silu, gelu_tanh, add/mul/scale_add, softmax: against double-precision
 * formulas written here. Tolerance 2e-6 of max(max|ref|, 1) (1e-5 for the transcendental activations); bitwise identity
 * across 1/2/3 threads for every kernel. */
#include "test_ops_common.h"

typedef struct {
    int op; float *x, *x2, *sh, *sc; int64_t rows, dim; hb_tensor w, b; bool hw, hb; float eps; hb_modgroups g;
} nctx;
enum { OP_LN, OP_RMS, OP_CRMS, OP_LNMOD, OP_GADD, OP_SILU, OP_GELU, OP_ADD, OP_MUL, OP_AXPBY, OP_SOFTMAX };

static void nbody(void *vc, float *out) {
    nctx *c = vc;
    int64_t n = c->rows * c->dim;
    switch (c->op) {
    case OP_LN: hb_layernorm(out, c->x, c->rows, c->dim, c->hw ? &c->w : NULL, c->hb ? &c->b : NULL, c->eps); break;
    case OP_RMS: hb_rmsnorm(out, c->x, c->rows, c->dim, c->hw ? &c->w : NULL, c->eps); break;
    case OP_CRMS: hb_channel_rmsnorm(out, c->x, c->rows, c->dim, &c->w, c->hb ? &c->b : NULL); break;
    case OP_LNMOD: hb_layernorm_modulate(out, c->x, c->rows, c->dim, c->eps, c->sh, c->sc, c->g); break;
    case OP_GADD: memcpy(out, c->x, sizeof(float) * (size_t)n); hb_gated_add(out, c->x2, c->rows, c->dim, c->sc, c->g); break;
    case OP_SILU: memcpy(out, c->x, sizeof(float) * (size_t)n); hb_silu(out, out, n); break; /* in place */
    case OP_GELU: hb_gelu_tanh(out, c->x, n); break;
    case OP_ADD: hb_add(out, c->x, c->x2, n); break;
    case OP_MUL: hb_mul(out, c->x, c->x2, n); break;
    case OP_AXPBY: hb_scale_add(out, c->x, 0.75f, c->x2, -1.5f, n); break;
    case OP_SOFTMAX: memcpy(out, c->x, sizeof(float) * (size_t)n); hb_softmax(out, c->rows, c->dim); break;
    }
}

static void run(nctx *c, const float *ref, double tol, const char *what) {
    int64_t n = c->rows * c->dim;
    float *out = malloc(sizeof(float) * (size_t)n);
    same_for_threads(nbody, c, out, sizeof(float) * (size_t)n, what);
    /* error relative to max(max|ref|, 1): the inputs are O(1), and a one-element case can cancel to ~0 */
    double md = 0, mr = 1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - ref[i]);
        md = d > md || d != d ? d : md;
        mr = fabs(ref[i]) > mr ? fabs(ref[i]) : mr;
    }
    double e = md / mr;
    CHECKF(e <= tol, "%s rows=%lld dim=%lld: rel err %.3e", what, (long long)c->rows, (long long)c->dim, e);
    free(out);
}

static void check_rows(hb_rng *r, int64_t rows, int64_t dim, hb_dtype wt) {
    int64_t n = rows * dim;
    float *x = rnd(r, n, 2.0f), *x2 = rnd(r, n, 1.0f), *wv = rnd(r, dim, 1.0f), *bv = rnd(r, dim, 1.0f);
    for (int64_t i = 0; i < n; i++) x[i] += 0.5f;  /* nonzero mean */
    void *ws = to_dtype(wv, dim, wt), *bs = to_dtype(bv, dim, wt);
    float *ref = malloc(sizeof(float) * (size_t)n);
    nctx c = {0};
    c.x = x; c.x2 = x2; c.rows = rows; c.dim = dim; c.w = hb_tensor_1d(wt, dim, ws); c.b = hb_tensor_1d(wt, dim, bs);
    c.eps = 1e-6f;
    for (int aff = 0; aff < 2; aff++) {
        for (int64_t i = 0; i < rows; i++) {
            double mu = 0, v = 0;
            for (int64_t k = 0; k < dim; k++) mu += x[i * dim + k];
            mu /= dim;
            for (int64_t k = 0; k < dim; k++) v += (x[i * dim + k] - mu) * (x[i * dim + k] - mu);
            for (int64_t k = 0; k < dim; k++)
                ref[i * dim + k] = (float)((x[i * dim + k] - mu) / sqrt(v / dim + 1e-6) * (aff ? wv[k] : 1) + (aff ? bv[k] : 0));
        }
        c.op = OP_LN; c.hw = c.hb = aff;
        run(&c, ref, 2e-6, aff ? "layernorm affine" : "layernorm");
        for (int64_t i = 0; i < rows; i++) {
            double ss = 0;
            for (int64_t k = 0; k < dim; k++) ss += (double)x[i * dim + k] * x[i * dim + k];
            for (int64_t k = 0; k < dim; k++) ref[i * dim + k] = (float)(x[i * dim + k] / sqrt(ss / dim + 1e-6) * (aff ? wv[k] : 1));
        }
        c.op = OP_RMS;
        run(&c, ref, 2e-6, aff ? "rmsnorm affine" : "rmsnorm");
    }
    /* modulation: one group for all rows, one per row, one per 3 rows (frames) */
    int64_t groups[3][2] = {{rows, 0}, {1, dim}, {3, dim}};
    for (int gi = 0; gi < 3; gi++) {
        hb_modgroups g = {groups[gi][0], groups[gi][1]};
        int64_t ng = (rows + g.rows_per_group - 1) / g.rows_per_group;
        float *sh = rnd(r, ng * dim + 1, 1.0f), *sc = rnd(r, ng * dim + 1, 0.5f);
        c.sh = sh; c.sc = sc; c.g = g; c.op = OP_LNMOD;
        for (int64_t i = 0; i < rows; i++) {
            double mu = 0, v = 0;
            for (int64_t k = 0; k < dim; k++) mu += x[i * dim + k];
            mu /= dim;
            for (int64_t k = 0; k < dim; k++) v += (x[i * dim + k] - mu) * (x[i * dim + k] - mu);
            int64_t o = (i / g.rows_per_group) * g.group_stride;
            for (int64_t k = 0; k < dim; k++)
                ref[i * dim + k] = (float)((x[i * dim + k] - mu) / sqrt(v / dim + 1e-6) * (1.0 + sc[o + k]) + sh[o + k]);
        }
        run(&c, ref, 2e-6, "layernorm_modulate");
        c.op = OP_GADD;
        for (int64_t i = 0; i < rows; i++)
            for (int64_t k = 0; k < dim; k++)
                ref[i * dim + k] = (float)(x[i * dim + k] + (double)x2[i * dim + k] * sc[(i / g.rows_per_group) * g.group_stride + k]);
        run(&c, ref, 2e-6, "gated_add");
        free(sh); free(sc);
    }
    /* channel rmsnorm: rows = C channels, dim = S positions */
    {
        float *gv = rnd(r, rows, 1.0f), *btv = rnd(r, rows, 1.0f);
        void *gs = to_dtype(gv, rows, wt), *bts = to_dtype(btv, rows, wt);
        int64_t gshape[4] = {rows, 1, 1, 1};
        c.w = hb_tensor_make(wt, 4, gshape, gs); c.b = hb_tensor_make(wt, 4, gshape, bts);
        for (int hbeta = 0; hbeta < 2; hbeta++) {
            for (int64_t s = 0; s < dim; s++) {
                double ss = 0;
                for (int64_t ch = 0; ch < rows; ch++) ss += (double)x[ch * dim + s] * x[ch * dim + s];
                double nr = sqrt(ss);
                nr = nr > 1e-12 ? nr : 1e-12;
                for (int64_t ch = 0; ch < rows; ch++)
                    ref[ch * dim + s] = (float)(x[ch * dim + s] / nr * sqrt((double)rows) * gv[ch] + (hbeta ? btv[ch] : 0));
            }
            c.op = OP_CRMS; c.hb = hbeta;
            run(&c, ref, 2e-6, "channel_rmsnorm");
        }
        free(gv); free(btv); free(gs); free(bts);
    }
    /* elementwise */
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        ref[i] = (float)(v / (1 + exp(-v)));
    }
    c.op = OP_SILU; run(&c, ref, 1e-5, "silu");
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        ref[i] = (float)(0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
    }
    c.op = OP_GELU; run(&c, ref, 1e-5, "gelu_tanh");
    for (int64_t i = 0; i < n; i++) ref[i] = x[i] + x2[i];
    c.op = OP_ADD; run(&c, ref, 0, "add");
    for (int64_t i = 0; i < n; i++) ref[i] = x[i] * x2[i];
    c.op = OP_MUL; run(&c, ref, 0, "mul");
    /* scale_add can cancel: check each element against the size of its two terms */
    {
        float *out = malloc(sizeof(float) * (size_t)n);
        c.op = OP_AXPBY;
        same_for_threads(nbody, &c, out, sizeof(float) * (size_t)n, "scale_add");
        int bad = 0;
        for (int64_t i = 0; i < n; i++) {
            double want = 0.75 * x[i] - 1.5 * x2[i], mag = fabs(0.75 * x[i]) + fabs(1.5 * x2[i]);
            bad += fabs(out[i] - want) > 2.5e-7 * mag;
        }
        CHECKF(bad == 0, "scale_add: %d elements off", bad);
        free(out);
    }
    /* softmax with large values and a -inf entry per row */
    for (int64_t i = 0; i < n; i++) x[i] *= 20;
    for (int64_t i = 0; i < rows; i++) x[i * dim + (i % dim)] = -INFINITY;
    for (int64_t i = 0; i < rows; i++) {
        double mx = -INFINITY, s = 0;
        for (int64_t k = 0; k < dim; k++) mx = x[i * dim + k] > mx ? x[i * dim + k] : mx;
        for (int64_t k = 0; k < dim; k++) s += exp(x[i * dim + k] - mx);
        for (int64_t k = 0; k < dim; k++) ref[i * dim + k] = dim == 1 ? 0.0f : (float)(exp(x[i * dim + k] - mx) / s);
    }
    if (dim > 1) { c.op = OP_SOFTMAX; run(&c, ref, 1e-5, "softmax"); }
    free(x); free(x2); free(wv); free(bv); free(ws); free(bs); free(ref);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    check_rows(&r, 1, 1, HB_F32);
    check_rows(&r, 7, 5, HB_BF16);
    check_rows(&r, 33, 257, HB_F16);
    check_rows(&r, 300, 96, HB_F32);
    check_rows(&r, 12, 3000, HB_BF16);
    hb_threads_shutdown();
    return tl_done();
}
