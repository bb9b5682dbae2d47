/* umT5 encoder: golden file through the API; fresh random tiny models (F32 and BF16 weights, written to a
 * temp safetensors file and opened by path) against a naive double-precision forward written here;
 * the bucket function against a naive double formula; padded rows zero; release; bad weights; the
 * cpu-guard backend (activations only reachable through ops) bitwise equal to the CPU. */
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/umt5.h"
#include "ops/ops.h"
#include "random_models.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------- cpu-guard: the same encoder on the guarded backend ----------
 * Every output and trace buffer in the backend's memory (read back with hb_dev_download); any host access
 * the model made to an activation would fault. The CPU kernels run in both: the results must be bitwise equal
 * to the plain CPU ones (host buffers). Covers hb_umt5_forward with a mask and the full trace, and
 * hb_umt5_encode with padded rows (zeroed on the backend). */
typedef struct { float *out, *ctx, *emb, *pb, *blocks; } t5_results;

static int run_all(hb_umt5 *e, const int64_t *ids, const uint8_t *mask, int64_t n, int64_t nv, t5_results *r) {
    const hb_umt5_config *c = hb_umt5_get_config(e);
    const int64_t nD = n * c->dim, nb = c->num_heads * n * n, L = c->num_layers;
    const size_t total = (size_t)(nD * (3 + L) + nb);
    const bool host = hb_memspace_current()->is_host;
    float *buf = host ? hb_malloc(total * sizeof(float), "t") : hb_dev_alloc(total * sizeof(float), "t");
    float *blocks[64];
    if (!buf || L > 64) return -1;
    float *out = buf, *ctx = out + nD, *emb = ctx + nD, *pb = emb + nD, *bl = pb + nb;
    for (int64_t l = 0; l < L; l++) blocks[l] = bl + l * nD;
    hb_umt5_trace tr = {.token_embedding = emb, .pos_bias0 = pb, .blocks = blocks};
    float *h = malloc(total * sizeof(float));
    for (size_t i = 0; i < total; i++) h[i] = 1.0f; /* every value must be overwritten (padded rows by zeros) */
    int rc = hb_dev_upload(buf, h, total * sizeof(float));
    if (rc == 0) rc = hb_umt5_forward(e, ids, mask, n, out, &tr);
    if (rc == 0) rc = hb_umt5_encode(e, ids, nv, n, ctx);
    if (rc == 0) rc = host ? (memcpy(h, buf, total * sizeof(float)), 0) : hb_dev_download(h, buf, total * sizeof(float));
    if (host) hb_free(buf);
    else hb_dev_free(buf);
    *r = (t5_results){h, h + nD, h + 2 * nD, h + 3 * nD, h + 3 * nD + nb};
    return rc;
}

static void test_guard_vs_cpu(hb_umt5 *e, const int64_t *ids, const uint8_t *mask, int64_t n, int64_t nv) {
    const hb_umt5_config *c = hb_umt5_get_config(e);
    const int64_t nD = n * c->dim, nb = c->num_heads * n * n, total = nD * (3 + c->num_layers) + nb;
    t5_results a = {0}, b = {0};
    CHECKF(run_all(e, ids, mask, n, nv, &a) == 0, "cpu: %s", hb_last_error());
    const hb_backend *prev = hb_backend_use(hb_backend_cpu_guard());
    CHECK(!hb_memspace_current()->is_host);
    CHECKF(run_all(e, ids, mask, n, nv, &b) == 0, "cpu-guard: %s", hb_last_error());
    hb_backend_use(prev);
    if (a.out && b.out) {
        CHECKF(memcmp(a.out, b.out, (size_t)total * sizeof(float)) == 0, "cpu-guard differs from cpu (rel %.3g)",
               tl_rel_err(b.out, a.out, total));
        int nonzero = 0;
        for (int64_t i = nv * c->dim; i < nD; i++) nonzero += (a.ctx[i] != 0.0f) + (b.ctx[i] != 0.0f);
        CHECKF(nonzero == 0, "%d padded context values are not zero", nonzero);
        double s = 0;
        for (int64_t i = 0; i < nD; i++) s += fabs(b.out[i]) + fabs(b.blocks[i]);
        CHECK(s > 0 && isfinite(s));
    }
    free(a.out);
    free(b.out);
}

/* ---------- golden ---------- */
static void test_golden(void) {
    char path[1024];
    tl_shared_file("golden/t5.safetensors", path, sizeof path);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (!ck) return;
    /* config: from the weight shapes (the metadata says the same: dim 64, 4 heads, 2 layers, 32 buckets) */
    hb_tensor tok, pos, fc1, ids_t, mask_t, ref;
    CHECK(hb_checkpoint_get(ck, "token_embedding.weight", &tok) == 0);
    CHECK(hb_checkpoint_get(ck, "blocks.0.pos_embedding.embedding.weight", &pos) == 0);
    CHECK(hb_checkpoint_get(ck, "blocks.0.ffn.fc1.weight", &fc1) == 0);
    int layers = 0;
    while (1) {
        char n[64];
        snprintf(n, sizeof n, "blocks.%d.norm1.weight", layers);
        if (!hb_checkpoint_has(ck, n)) break;
        layers++;
    }
    hb_umt5_config c = {.vocab = tok.shape[0], .dim = tok.shape[1], .dim_attn = tok.shape[1], .dim_ffn = fc1.shape[0],
                        .num_heads = (int)pos.shape[1], .num_layers = layers, .num_buckets = (int)pos.shape[0],
                        .max_dist = 128, .eps = 1e-6f};
    hb_umt5 *m = hb_umt5_create(ck, &c, true);
    CHECKF(m != NULL, "%s", hb_last_error());
    if (!m) { hb_checkpoint_close(ck); return; }
    CHECK(hb_checkpoint_get(ck, "in.ids", &ids_t) == 0 && hb_checkpoint_get(ck, "in.mask", &mask_t) == 0);
    int64_t n = hb_tensor_numel(&ids_t), nv = 0;
    uint8_t mask[4096];
    for (int64_t i = 0; i < n; i++) nv += (mask[i] = ((const int64_t *)mask_t.data)[i] != 0);
    float *out = malloc((size_t)(n * c.dim) * sizeof(float)), *ctx = malloc((size_t)(n * c.dim) * sizeof(float));
    float *emb = malloc((size_t)(n * c.dim) * sizeof(float)), *pb = malloc((size_t)(c.num_heads * n * n) * sizeof(float));
    hb_umt5_trace tr = {.token_embedding = emb, .pos_bias0 = pb};
    CHECK(hb_umt5_forward(m, ids_t.data, mask, n, out, &tr) == 0);
    CHECK(hb_umt5_encode(m, ids_t.data, nv, n, ctx) == 0);
    CHECK(hb_checkpoint_get(ck, "out.hidden", &ref) == 0);
    CHECK_REL(out, (const float *)ref.data, n * c.dim, 1e-4);
    CHECK(hb_checkpoint_get(ck, "out.context", &ref) == 0);
    CHECK_REL(ctx, (const float *)ref.data, n * c.dim, 1e-4);
    CHECK(hb_checkpoint_get(ck, "mid.token_embedding", &ref) == 0);
    CHECK_REL(emb, (const float *)ref.data, n * c.dim, 0.0);
    CHECK(hb_checkpoint_get(ck, "mid.blocks.0.pos_bias", &ref) == 0);
    CHECK_REL(pb, (const float *)ref.data, c.num_heads * n * n, 0.0);
    test_guard_vs_cpu(m, ids_t.data, mask, n, nv);
    /* release: the checkpoint is closed, encoding again fails with a message */
    hb_umt5_release_weights(m);
    CHECK(hb_umt5_encode(m, ids_t.data, nv, n, ctx) == -1);
    CHECK(strstr(hb_last_error(), "released") != NULL);
    hb_umt5_free(m);
    free(out);
    free(ctx);
    free(emb);
    free(pb);
}

/* ---------- buckets ---------- */
static double bucket_value_double(int64_t rel, int nbk, int max_dist, int *exact_out) {
    int nb = nbk / 2, me = nb / 2;
    int64_t a = llabs(rel);
    *exact_out = rel > 0 ? nb : 0;
    if (a < me) return -1;
    return log((double)a / me) / log((double)max_dist / me) * (nb - me);
}

static void test_buckets(hb_rng *r) {
    static const int nbs[] = {8, 16, 32, 64}, mds[] = {32, 64, 128, 256};
    int checked = 0;
    for (int t = 0; t < 20000; t++) {
        int nbk = nbs[hb_rng_u64(r) % 4], md = mds[hb_rng_u64(r) % 4];
        if (md <= nbk / 4) continue;
        int64_t rel = (int64_t)(hb_rng_u64(r) % 6001) - 3000;
        int base;
        double v = bucket_value_double(rel, nbk, md, &base);
        int nb = nbk / 2, me = nb / 2;
        int want;
        if (v < 0) want = base + (int)llabs(rel);
        else {
            int64_t large = me + (int64_t)v;
            want = base + (int)(large > nb - 1 ? nb - 1 : large);
            /* float32 vs float64 may truncate differently only right at an integer */
            if (fabs(v - nearbyint(v)) < 1e-5 && large < nb - 1) continue;
        }
        int got = hb_umt5_bucket(rel, nbk, md);
        CHECKF(got == want, "bucket(%lld, %d buckets, max_dist %d) = %d, naive %d", (long long)rel, nbk, md, got, want);
        checked++;
    }
    CHECK(checked > 15000);
    /* umT5 (32 buckets, 128): every |rel| up to 600 in float32 agrees with the double formula, including the
     * exact powers 16, 32, 64 (buckets 10, 12, 14) */
    for (int64_t rel = -600; rel <= 600; rel++) {
        int base;
        double v = bucket_value_double(rel, 32, 128, &base);
        int want = v < 0 ? base + (int)llabs(rel) : base + (int)fmin(15, 8 + (int64_t)(v + 1e-9));
        CHECKF(hb_umt5_bucket(rel, 32, 128) == want, "umt5 bucket of %lld", (long long)rel);
    }
    CHECK(hb_umt5_bucket(16, 32, 128) == 16 + 10 && hb_umt5_bucket(-64, 32, 128) == 14 && hb_umt5_bucket(-1, 32, 128) == 1);
}

/* ---------- random tiny model vs naive double forward ---------- */
typedef struct {
    hb_umt5_config c;
    int nt;
    char names[64][64];
    hb_tensor t[64];
    float *data[64];
} rand_model;

static void add_t(rand_model *m, hb_rng *r, const char *name, int64_t d0, int64_t d1, float mean, float std) {
    int i = m->nt++;
    snprintf(m->names[i], 64, "%s", name);
    int64_t n = d0 * (d1 ? d1 : 1);
    m->data[i] = malloc((size_t)n * sizeof(float));
    for (int64_t j = 0; j < n; j++) m->data[i][j] = mean + std * hb_rng_normal(r);
    m->t[i] = d1 ? hb_tensor_2d(HB_F32, d0, d1, m->data[i]) : hb_tensor_1d(HB_F32, d0, m->data[i]);
}

static const float *find(rand_model *m, const char *name) {
    for (int i = 0; i < m->nt; i++)
        if (!strcmp(m->names[i], name)) return m->data[i];
    return NULL;
}

static void make_model(rand_model *m, hb_rng *r) {
    memset(m, 0, sizeof *m);
    hb_umt5_config c = {.vocab = 50, .dim = 32, .dim_attn = 32, .dim_ffn = 48, .num_heads = 4, .num_layers = 2,
                        .num_buckets = 32, .max_dist = 128, .eps = 1e-6f};
    m->c = c;
    add_t(m, r, "token_embedding.weight", c.vocab, c.dim, 0, 1);
    add_t(m, r, "norm.weight", c.dim, 0, 1, 0.1f);
    for (int l = 0; l < c.num_layers; l++) {
        char n[64];
        float sd = 1.0f / sqrtf((float)c.dim), sf = 1.0f / sqrtf((float)c.dim_ffn);
#define T(suf, a, b, mean, sd_) snprintf(n, sizeof n, "blocks.%d.%s", l, suf); add_t(m, r, n, a, b, mean, sd_);
        T("norm1.weight", c.dim, 0, 1, 0.1f)
        T("attn.q.weight", c.dim_attn, c.dim, 0, sd)
        T("attn.k.weight", c.dim_attn, c.dim, 0, sd)
        T("attn.v.weight", c.dim_attn, c.dim, 0, sd)
        T("attn.o.weight", c.dim, c.dim_attn, 0, sd)
        T("norm2.weight", c.dim, 0, 1, 0.1f)
        T("ffn.gate.0.weight", c.dim_ffn, c.dim, 0, sd)
        T("ffn.fc1.weight", c.dim_ffn, c.dim, 0, sd)
        T("ffn.fc2.weight", c.dim, c.dim_ffn, 0, sf)
        T("pos_embedding.embedding.weight", c.num_buckets, c.num_heads, 0, 1)
#undef T
    }
}

static void round_bf16(rand_model *m) {
    for (int i = 0; i < m->nt; i++) {
        int64_t n = hb_tensor_numel(&m->t[i]);
        for (int64_t j = 0; j < n; j++) m->data[i][j] = hb_bf16_to_f32(hb_f32_to_bf16(m->data[i][j]));
    }
}

static int write_model(rand_model *m, const char *path, hb_dtype dt, const char *skip, int64_t bad_dim_of) {
    const char *names[64] = {0};
    hb_tensor ts[64] = {{0}};
    void *bufs[64] = {0};
    int k = 0;
    for (int i = 0; i < m->nt; i++) {
        if (skip && !strcmp(skip, m->names[i])) continue;
        names[k] = m->names[i];
        ts[k] = m->t[i];
        if (bad_dim_of >= 0 && i == bad_dim_of) ts[k].shape[0] -= 1;
        if (dt != HB_F32) {
            int64_t n = hb_tensor_numel(&m->t[i]);
            bufs[k] = malloc((size_t)n * 2);
            hb_convert_from_f32(bufs[k], dt, m->data[i], (size_t)n);
            ts[k] = hb_tensor_make(dt, ts[k].ndim, ts[k].shape, bufs[k]);
        }
        k++;
    }
    int rc = hb_safetensors_write(path, k, names, ts, NULL);
    for (int i = 0; i < k; i++) free(bufs[i]);
    return rc;
}

static void rms_d(double *y, const double *x, int64_t D, const float *w) {
    double s = 0;
    for (int64_t i = 0; i < D; i++) s += x[i] * x[i];
    double rs = 1.0 / sqrt(s / D + 1e-6);
    for (int64_t i = 0; i < D; i++) y[i] = x[i] * rs * w[i];
}

static int naive_bucket(int64_t rel) { /* 32 buckets, max_dist 128, in double */
    int base = rel > 0 ? 16 : 0;
    int64_t a = llabs(rel);
    if (a < 8) return base + (int)a;
    int64_t v = 8 + (int64_t)(log(a / 8.0) / log(16.0) * 8 + 1e-9);
    return base + (int)(v > 15 ? 15 : v);
}

/* Naive double forward over the n_valid real tokens only. */
static void naive_forward(rand_model *m, const int64_t *ids, int64_t n, double *out) {
    const hb_umt5_config *c = &m->c;
    const int64_t D = c->dim, A = c->dim_attn, F = c->dim_ffn, H = c->num_heads, hd = A / H;
    double *x = calloc((size_t)(n * D), sizeof(double)), *h = calloc((size_t)(n * D), sizeof(double));
    double *q = calloc((size_t)(n * A), sizeof(double)), *k = calloc((size_t)(n * A), sizeof(double));
    double *v = calloc((size_t)(n * A), sizeof(double)), *att = calloc((size_t)(n * A), sizeof(double));
    double *s = calloc((size_t)n, sizeof(double)), *f1 = calloc((size_t)F, sizeof(double));
    const float *tok = find(m, "token_embedding.weight");
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++) x[i * D + d] = tok[ids[i] * D + d];
    for (int l = 0; l < c->num_layers; l++) {
        char nm[64];
#define G(suf) (snprintf(nm, sizeof nm, "blocks.%d.%s", l, suf), find(m, nm))
        const float *n1 = G("norm1.weight"), *wq = G("attn.q.weight"), *wk = G("attn.k.weight"), *wv = G("attn.v.weight");
        const float *wo = G("attn.o.weight"), *n2 = G("norm2.weight"), *wg = G("ffn.gate.0.weight");
        const float *w1 = G("ffn.fc1.weight"), *w2 = G("ffn.fc2.weight"), *pe = G("pos_embedding.embedding.weight");
#undef G
        for (int64_t i = 0; i < n; i++) rms_d(h + i * D, x + i * D, D, n1);
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < A; o++) {
                double a = 0, b = 0, e = 0;
                for (int64_t d = 0; d < D; d++) {
                    a += h[i * D + d] * wq[o * D + d];
                    b += h[i * D + d] * wk[o * D + d];
                    e += h[i * D + d] * wv[o * D + d];
                }
                q[i * A + o] = a; k[i * A + o] = b; v[i * A + o] = e;
            }
        for (int64_t hh = 0; hh < H; hh++)
            for (int64_t i = 0; i < n; i++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < n; j++) {
                    double dot = 0;
                    for (int64_t d = 0; d < hd; d++) dot += q[i * A + hh * hd + d] * k[j * A + hh * hd + d];
                    s[j] = dot + pe[naive_bucket(j - i) * H + hh]; /* no 1/sqrt(d) */
                    if (s[j] > mx) mx = s[j];
                }
                for (int64_t j = 0; j < n; j++) sum += (s[j] = exp(s[j] - mx));
                for (int64_t d = 0; d < hd; d++) {
                    double a = 0;
                    for (int64_t j = 0; j < n; j++) a += s[j] / sum * v[j * A + hh * hd + d];
                    att[i * A + hh * hd + d] = a;
                }
            }
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < D; o++) {
                double a = 0;
                for (int64_t d = 0; d < A; d++) a += att[i * A + d] * wo[o * A + d];
                x[i * D + o] += a;
            }
        for (int64_t i = 0; i < n; i++) {
            rms_d(h + i * D, x + i * D, D, n2);
            for (int64_t f = 0; f < F; f++) {
                double a = 0, g = 0;
                for (int64_t d = 0; d < D; d++) {
                    a += h[i * D + d] * w1[f * D + d];
                    g += h[i * D + d] * wg[f * D + d];
                }
                g = 0.5 * g * (1 + tanh(sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
                f1[f] = a * g;
            }
            for (int64_t o = 0; o < D; o++) {
                double a = 0;
                for (int64_t f = 0; f < F; f++) a += f1[f] * w2[o * F + f];
                x[i * D + o] += a;
            }
        }
    }
    for (int64_t i = 0; i < n; i++) rms_d(out + i * D, x + i * D, D, find(m, "norm.weight"));
    free(x); free(h); free(q); free(k); free(v); free(att); free(s); free(f1);
}

static void test_random_model(hb_rng *r, hb_dtype dt) {
    rand_model m;
    make_model(&m, r);
    if (dt == HB_BF16) round_bf16(&m);
    char path[512];
    snprintf(path, sizeof path, "%s/t5_%s.safetensors", tl_tmpdir(), hb_dtype_name(dt));
    CHECKF(write_model(&m, path, dt, NULL, -1) == 0, "%s", hb_last_error());
    /* by path: no config.json, so the sizes come from the weight shapes */
    hb_umt5 *e = hb_umt5_open(path);
    CHECKF(e != NULL, "%s", hb_last_error());
    if (e) {
        const hb_umt5_config *ic = hb_umt5_get_config(e);
        CHECK(ic->vocab == m.c.vocab && ic->dim == m.c.dim && ic->dim_attn == m.c.dim_attn && ic->dim_ffn == m.c.dim_ffn &&
              ic->num_heads == m.c.num_heads && ic->num_layers == m.c.num_layers && ic->num_buckets == m.c.num_buckets &&
              ic->max_dist == 128);
        hb_umt5_free(e);
    }
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    e = hb_umt5_create(ck, &m.c, true);
    CHECKF(e != NULL, "%s", hb_last_error());
    if (!e) { hb_checkpoint_close(ck); return; }
    const int64_t rows = 80, nv = 20 + (int64_t)(hb_rng_u64(r) % 50), D = m.c.dim; /* n_valid 20..69: log buckets */
    int64_t ids[80];
    uint8_t mask[80];
    for (int64_t i = 0; i < rows; i++) {
        ids[i] = i < nv - 1 ? 2 + (int64_t)(hb_rng_u64(r) % (uint64_t)(m.c.vocab - 2)) : (i == nv - 1 ? 1 : 0);
        mask[i] = i < nv;
    }
    float *ctx = malloc((size_t)(rows * D) * sizeof(float)), *full = malloc((size_t)(rows * D) * sizeof(float));
    float *ref = malloc((size_t)(nv * D) * sizeof(float));
    double *refd = malloc((size_t)(nv * D) * sizeof(double));
    for (int64_t i = 0; i < rows * D; i++) ctx[i] = 1.0f; /* must be overwritten */
    CHECKF(hb_umt5_encode(e, ids, nv, rows, ctx) == 0, "%s", hb_last_error());
    naive_forward(&m, ids, nv, refd);
    for (int64_t i = 0; i < nv * D; i++) ref[i] = (float)refd[i];
    CHECK_REL(ctx, ref, nv * D, 2e-5);
    int nonzero = 0;
    for (int64_t i = nv * D; i < rows * D; i++) nonzero += ctx[i] != 0.0f;
    CHECKF(nonzero == 0, "%d padded values are not zero", nonzero);
    /* bitwise identical for 1 and 3 threads */
    {
        float *c1 = malloc((size_t)(rows * D) * sizeof(float)), *c3 = malloc((size_t)(rows * D) * sizeof(float));
        hb_threads_init(1);
        CHECK(hb_umt5_encode(e, ids, nv, rows, c1) == 0);
        hb_threads_init(3);
        CHECK(hb_umt5_encode(e, ids, nv, rows, c3) == 0);
        hb_threads_init(0);
        CHECK(memcmp(c1, c3, (size_t)(rows * D) * sizeof(float)) == 0);
        free(c1);
        free(c3);
    }
    /* the masked full-length forward gives the same real rows */
    CHECK(hb_umt5_forward(e, ids, mask, rows, full, NULL) == 0);
    CHECK_REL(full, ctx, nv * D, 1e-6);
    /* the same on the cpu-guard backend, bitwise */
    test_guard_vs_cpu(e, ids, mask, rows, nv);
    /* bad inputs */
    ids[3] = m.c.vocab;
    CHECK(hb_umt5_encode(e, ids, nv, rows, ctx) == -1);
    CHECK(strstr(hb_last_error(), "vocabulary") != NULL);
    CHECK(hb_umt5_encode(e, ids, rows + 1, rows, ctx) == -1);
    hb_umt5_free(e);

    /* missing and mis-shaped weights: one clear message naming the tensor */
    snprintf(path, sizeof path, "%s/t5_missing.safetensors", tl_tmpdir());
    CHECK(write_model(&m, path, dt, "blocks.1.ffn.fc1.weight", -1) == 0);
    ck = hb_checkpoint_open(path);
    CHECK(ck && hb_umt5_create(ck, &m.c, true) == NULL);
    CHECKF(strstr(hb_last_error(), "blocks.1.ffn.fc1.weight") != NULL, "message: %s", hb_last_error());
    hb_checkpoint_close(ck);
    snprintf(path, sizeof path, "%s/t5_shape.safetensors", tl_tmpdir());
    CHECK(write_model(&m, path, dt, NULL, 5) == 0); /* tensor 5: blocks.0.attn.v.weight, one row short */
    ck = hb_checkpoint_open(path);
    CHECK(ck && hb_umt5_create(ck, &m.c, true) == NULL);
    CHECKF(strstr(hb_last_error(), "blocks.0.attn.v.weight") != NULL, "message: %s", hb_last_error());
    hb_checkpoint_close(ck);
    /* a folder with a transformers config.json describing this tiny model opens by path */
    char dir[512], cfgp[600];
    snprintf(dir, sizeof dir, "%s/text_encoder", tl_tmpdir());
    mkdir(dir, 0755);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    FILE *f = fopen(cfgp, "w");
    fprintf(f, "{\"d_model\": 32, \"d_kv\": 8, \"d_ff\": 48, \"num_heads\": 4, \"num_layers\": 2, \"vocab_size\": 50,"
               " \"relative_attention_num_buckets\": 32, \"relative_attention_max_distance\": 128,"
               " \"layer_norm_epsilon\": 1e-6, \"feed_forward_proj\": \"gated-gelu\"}\n");
    fclose(f);
    snprintf(cfgp, sizeof cfgp, "%s/model.safetensors", dir);
    CHECK(write_model(&m, cfgp, dt, NULL, -1) == 0);
    e = hb_umt5_open(dir);
    CHECKF(e != NULL, "open folder: %s", hb_last_error());
    if (e) {
        ids[3] = 5;
        naive_forward(&m, ids, nv, refd);
        for (int64_t i = 0; i < nv * D; i++) ref[i] = (float)refd[i];
        CHECK(hb_umt5_encode(e, ids, nv, rows, ctx) == 0);
        CHECK_REL(ctx, ref, nv * D, 2e-5);
        hb_umt5_free(e);
    }
    free(ctx); free(full); free(ref); free(refd);
    for (int i = 0; i < m.nt; i++) free(m.data[i]);
}

/* hb_umt5_write_random: a folder that hb_umt5_open reads back (config.json), same result without the
 * config (sizes inferred from the shapes). */
static void test_write_random(hb_rng *r) {
    hb_umt5_config c = {.vocab = 64, .dim = 256, .dim_attn = 192, .dim_ffn = 520, .num_heads = 4, .num_layers = 3,
                        .num_buckets = 16, .max_dist = 128, .eps = 1e-6f};
    char dir[512], cfg[600];
    snprintf(dir, sizeof dir, "%s/rand_t5", tl_tmpdir());
    mkdir(dir, 0755);
    CHECKF(hb_umt5_write_random(&c, dir, HB_BF16, hb_rng_u64(r), 20000) == 0, "%s", hb_last_error());
    int64_t ids[30];
    for (int i = 0; i < 30; i++) ids[i] = i == 29 ? 1 : 2 + (int64_t)(hb_rng_u64(r) % 62);
    static float a[40 * 256], b[40 * 256], lm[40 * 256];
    hb_umt5 *e = hb_umt5_open(dir);
    CHECKF(e != NULL, "%s", hb_last_error());
    if (!e) return;
    CHECK(hb_umt5_get_config(e)->num_buckets == 16 && hb_umt5_get_config(e)->dim_attn == 192);
    CHECK(hb_umt5_encode(e, ids, 30, 40, a) == 0);
    hb_umt5_free(e);
    double s = 0;
    for (int i = 0; i < 30 * 256; i++) s += fabs(a[i]);
    CHECK(s > 300 && isfinite(s));
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    CHECK(unlink(cfg) == 0);
    e = hb_umt5_open(dir);
    CHECKF(e != NULL, "%s", hb_last_error());
    if (!e) return;
    CHECK(hb_umt5_encode(e, ids, 30, 40, b) == 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* low-memory mode (layer pages dropped after use, re-read on the next encode): same result, twice */
    hb_umt5_set_low_memory(e, true);
    for (int rep = 0; rep < 2; rep++) {
        memset(lm, 0, sizeof lm);
        CHECK(hb_umt5_encode(e, ids, 30, 40, lm) == 0);
        CHECK(memcmp(a, lm, sizeof a) == 0);
    }
    /* low-memory mode on the cpu-guard backend: output in its memory, same bits */
    {
        const hb_backend *prev = hb_backend_use(hb_backend_cpu_guard());
        float *d = hb_dev_alloc(sizeof lm, "t");
        CHECK(d && hb_umt5_encode(e, ids, 30, 40, d) == 0);
        memset(lm, 0, sizeof lm);
        CHECK(d && hb_dev_download(lm, d, sizeof lm) == 0);
        hb_dev_free(d);
        hb_backend_use(prev);
        CHECK(memcmp(a, lm, sizeof a) == 0);
    }
    hb_umt5_free(e);
    c.num_layers = 0;
    CHECK(hb_umt5_write_random(&c, dir, HB_BF16, 1, 0) == -1);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    test_buckets(&r);
    test_random_model(&r, HB_F32);
    test_random_model(&r, HB_BF16);
    test_write_random(&r);
    test_golden();
    tl_check_golden_cli("golden/t5.safetensors"); /* the CLI runner on the same file */
    return tl_done();
}
