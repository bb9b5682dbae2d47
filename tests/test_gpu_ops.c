/* Every op of the hb_backend table on every available device backend against the CPU backend.
 *
 * Structure: reference = the CPU backend on host memory; then for each device in {cpu-guard, cuda} that this
 * build and machine have, the same inputs are uploaded with hb_dev_upload under that backend, the op runs,
 * hb_backend_sync, and EVERY buffer of the case (outputs, the untouched gaps around strided outputs, and the
 * inputs, which must come back unchanged) is downloaded and compared:
 *   cpu-guard: bitwise equal (same CPU kernels on guarded pages; this checks the test's own upload/download
 *              plumbing and the ops' memory discipline on a machine without a GPU);
 *   cuda:      normwise error max|gpu-cpu| / max|cpu| per buffer <= 1e-5 for the f32 ops (norms, modulation,
 *              elementwise, softmax, rope, gemm_f32, conv3d with HB_CONV_F32), <= 1e-2 for the ops whose GPU
 *              kernels use bf16 tensor-core operands (linear, attention, conv3d; see g_tol_* below for
 *              HB_GPU_PRECISE / HB_GPU_TF32); bitwise for
 *              the data-movement ops (copies, fill), hb_convert and HB_EW_CLAMP (NaN and infinities among the
 *              inputs: comparisons only).
 * Fresh random inputs every run (tl_seed). Host weights are released with hb_host_memory_released before they
 * are freed (the GPU weight cache is keyed by host address), and one case checks that a weight rewritten in
 * place after that call is re-uploaded. The device is "cuda" or HB_TEST_DEVICE (e.g. "cuda:1").
 * Exit 77 (skip) with the reason when no GPU backend is available, after the cpu-guard checks ran (a
 * cpu-guard failure still fails the test). */
#include "test_ops_common.h"
#include <float.h>

#define MAXB 6
#define TOL_F32 1e-5
#define TOL_MM 1e-2
/* The GPU backend's accuracy switches (src/backends/cuda/gpu_gemm.cu): HB_GPU_PRECISE=1 makes hb_linear and
 * attention f32 (then they are held to 2e-5, the CPU attention test's own bound against float64);
 * HB_GPU_TF32=1 lets gemm_f32 use TF32 (then 1e-2; else it is f32 and held to 1e-5). conv3d is bf16 with
 * HB_CONV_FAST and f32 with HB_CONV_F32 (held to 1e-5: bf16 operands would be ~1e-3 off, so the bound also proves
 * the f32 path ran). */
static double g_tol_linear = TOL_MM, g_tol_attn = TOL_MM, g_tol_gemm = TOL_F32;
/* HB_GPU_FP8=1 (hb_linear in e4m3 where K and N are multiples of 16; other shapes stay bf16): e4m3 keeps 3 mantissa
 * bits, so each quantised operand is within u = 2^-4 (its unit roundoff) of its value relative to it, and a product
 * of two within 2u + u^2. The per-product errors are independent and mostly cancel in a length-K sum, so the
 * normwise error (max |diff| / max |ref|) sits near u/2; the bound is u = 2^-4 = 6.25e-2 (the tiny M*N < 64 cases
 * run bf16). The DiT-shaped fp8 cases must also show an error above TOL_FP8_MIN (8e-3, several times bf16's), which
 * proves the e4m3 path ran instead of the bf16 fallback. */
#define TOL_FP8 0.0625
#define TOL_FP8_MIN 8e-3
static bool g_fp8;
static bool env_on(const char *n) { const char *e = getenv(n); return e && *e && strcmp(e, "0"); }

typedef struct { void *h; size_t bytes; bool f32; } tbuf;   /* host initial contents; bytes 0 = unused (NULL) */
typedef int (*body_fn)(void *ctx, void **p);                 /* runs the op on p[] (current memory space) */

typedef struct { const char *name; const hb_backend *be; bool exact; } tdev;
static tdev g_devs[2];
static int g_ndev;
static int g_cases;

static double buf_err(const float *ours, const float *ref, int64_t n) { return n ? tl_rel_err(ours, ref, n) : 0; }

/* Run body on the CPU (reference) and on every device; compare every buffer (tol < 0: bitwise on every device). */
/* Returns the GPU's normwise error (the worst buffer; 0 when only the cpu-guard ran or the GPU was bitwise). */
static double compare(const char *what, double tol, int nb, const tbuf *b, body_fn body, void *ctx) {
    g_cases++;
    double gpu_worst = 0;
    void *ref[MAXB] = {0};
    hb_backend_use(NULL);
    for (int i = 0; i < nb; i++)
        if (b[i].bytes) { ref[i] = malloc(b[i].bytes); memcpy(ref[i], b[i].h, b[i].bytes); }
    int rc = body(ctx, ref);
    CHECKF(rc == 0, "%s: cpu reference failed: %s", what, hb_last_error());
    for (int di = 0; di < g_ndev; di++) {
        const tdev *dv = &g_devs[di];
        void *d[MAXB] = {0};
        bool ok = true;
        hb_backend_use(dv->be);
        for (int i = 0; i < nb && ok; i++)
            if (b[i].bytes) {
                d[i] = hb_dev_alloc(b[i].bytes, what);
                ok = d[i] && hb_dev_upload(d[i], b[i].h, b[i].bytes) == 0;
            }
        CHECKF(ok, "%s on %s: allocation/upload failed: %s", what, dv->name, hb_last_error());
        if (ok) {
            int drc = body(ctx, d);
            int src = hb_backend_sync();
            CHECKF(drc == 0 && src == 0, "%s on %s: op rc %d, sync rc %d: %s", what, dv->name, drc, src, hb_last_error());
            double worst = 0;
            for (int i = 0; i < nb; i++) {
                if (!b[i].bytes) continue;
                void *got = malloc(b[i].bytes);
                if (hb_dev_download(got, d[i], b[i].bytes) != 0) {
                    CHECKF(0, "%s on %s: download of buffer %d failed: %s", what, dv->name, i, hb_last_error());
                } else if (dv->exact || !b[i].f32 || tol < 0) {
                    CHECKF(memcmp(got, ref[i], b[i].bytes) == 0, "%s on %s: buffer %d differs from the CPU result", what,
                           dv->name, i);
                } else {
                    double e = buf_err(got, ref[i], (int64_t)(b[i].bytes / sizeof(float)));
                    CHECKF(e <= tol, "%s on %s: buffer %d: normwise error %.3e > %.0e", what, dv->name, i, e, tol);
                    if (!(e <= worst)) worst = e;
                }
                free(got);
            }
            if (!dv->exact) gpu_worst = worst;
            if (!dv->exact && tol >= 0) printf("  %-8s %-64s err %.2e (tol %.0e)\n", dv->name, what, worst, tol);
            else if (!dv->exact) printf("  %-8s %-64s (bitwise)\n", dv->name, what);
        }
        for (int i = 0; i < nb; i++) hb_dev_free(d[i]);
        hb_backend_use(NULL);
    }
    for (int i = 0; i < nb; i++) free(ref[i]);
    return gpu_worst;
}

static tbuf fbuf(float *h, int64_t n) { return (tbuf){h, sizeof(float) * (size_t)n, true}; }
static const tbuf k_none = {NULL, 0, true};

/* A weight tensor of shape (ndim, shape) in dtype t, N(0, std); values rounded to t. Release with wrelease. */
static hb_tensor wmake(hb_rng *r, hb_dtype t, int ndim, const int64_t *shape, float std) {
    hb_tensor x = hb_tensor_make(t, ndim, shape, NULL);
    int64_t n = hb_tensor_numel(&x);
    float *v = rnd(r, n, std);
    x.data = to_dtype(v, n, t);
    free(v);
    return x;
}
static void wrelease(hb_tensor *w) {
    if (!w->data) return;
    hb_host_memory_released(w->data, hb_tensor_nbytes(w));
    free(w->data);
    w->data = NULL;
}

/* ---------------- linear / gemm ---------------- */
typedef struct { int64_t M; hb_tensor w, b; bool has_b, acc; } lin_ctx;
static int lin_body(void *vc, void **p) {
    lin_ctx *c = vc;
    return hb_linear(p[0], p[1], c->M, &c->w, c->has_b ? &c->b : NULL, c->acc);
}

static void case_linear(hb_rng *r, hb_dtype t, int64_t M, int64_t K, int64_t N, bool has_b, bool acc) {
    lin_ctx c = {M, wmake(r, t, 2, (int64_t[]){N, K}, 1.0f / sqrtf((float)K)), wmake(r, t, 1, (int64_t[]){N}, 0.5f), has_b, acc};
    float *y = rnd(r, M * N, 1.0f), *x = rnd(r, M * K, 1.0f);
    tbuf b[2] = {fbuf(y, M * N), fbuf(x, M * K)};
    char what[128];
    snprintf(what, sizeof what, "linear %s M=%lld K=%lld N=%lld bias=%d acc=%d", hb_dtype_name(t), (long long)M,
             (long long)K, (long long)N, has_b, acc);
    /* bf16 operands: each product is off by up to 2^-8 of |x w|; with a handful of outputs (M*N < 64) the normwise
     * error has no large max|ref| to average against, so the tiny cases get 3e-2 */
    double tol = g_tol_linear == TOL_MM && M * N < 64 ? 3e-2 : g_tol_linear;
    compare(what, tol, 2, b, lin_body, &c);
    wrelease(&c.w); wrelease(&c.b);
    free(y); free(x);
}

/* GGUF block-quantized weights (the GPU dequantizes them on upload, then bf16 like any weight). */
static void case_linear_quant(hb_rng *r, hb_dtype t, int64_t M, int64_t K, int64_t N) {
    lin_ctx c = {M, hb_tensor_2d(t, N, K, NULL), wmake(r, HB_F32, 1, (int64_t[]){N}, 0.5f), true, false};
    float *wv = rnd(r, N * K, 1.0f / sqrtf((float)K));
    c.w.data = malloc(hb_tensor_nbytes(&c.w));
    CHECK(hb_quantize(c.w.data, wv, t, N * K) == 0);
    float *y = rnd(r, M * N, 1.0f), *x = rnd(r, M * K, 1.0f);
    tbuf b[2] = {fbuf(y, M * N), fbuf(x, M * K)};
    char what[128];
    snprintf(what, sizeof what, "linear %s M=%lld K=%lld N=%lld bias=1", hb_dtype_name(t), (long long)M, (long long)K,
             (long long)N);
    compare(what, g_tol_linear, 2, b, lin_body, &c);
    wrelease(&c.w); wrelease(&c.b);
    free(wv); free(y); free(x);
}

/* The 5B DiT's linear shapes (M tokens 256..1024; K/N 3072 (hidden) and 14336 (MLP)) with N(0, 1/K) bf16 weights:
 * run under HB_GPU_FP8 (the fp8 error measurement) or HB_TEST_DIT_LINEAR=1 (the same shapes in bf16). */
static void case_linear_dit(hb_rng *r, int64_t M, int64_t K, int64_t N) {
    lin_ctx c = {M, wmake(r, HB_BF16, 2, (int64_t[]){N, K}, 1.0f / sqrtf((float)K)), wmake(r, HB_F32, 1, (int64_t[]){N}, 0.1f), true, false};
    float *y = rnd(r, M * N, 1.0f), *x = rnd(r, M * K, 1.0f);
    tbuf b[2] = {fbuf(y, M * N), fbuf(x, M * K)};
    char what[128];
    snprintf(what, sizeof what, "DiT linear%s M=%lld K=%lld N=%lld", g_fp8 ? " fp8" : "", (long long)M, (long long)K,
             (long long)N);
    double e = compare(what, g_tol_linear, 2, b, lin_body, &c);
    if (g_fp8 && g_ndev == 2)
        CHECKF(e >= TOL_FP8_MIN, "%s: error %.2e < %.0e: the e4m3 path did not run (bf16 fallback?)", what, e, TOL_FP8_MIN);
    wrelease(&c.w); wrelease(&c.b);
    free(y); free(x);
}

/* Two slices of one weight buffer (rows [0,N) and [N,2N)): a cache keyed only by the buffer would mix them up;
 * then the weight is rewritten in place after hb_host_memory_released and must be uploaded again. */
static void case_linear_cache(hb_rng *r) {
    const int64_t M = 19, K = 40, N = 24;
    hb_tensor full = wmake(r, HB_BF16, 2, (int64_t[]){2 * N, K}, 0.2f);
    lin_ctx c = {M, full, {0}, false, false};
    float *y = rnd(r, M * N, 1.0f), *x = rnd(r, M * K, 1.0f);
    tbuf b[2] = {fbuf(y, M * N), fbuf(x, M * K)};
    CHECK(hb_tensor_narrow(&full, 0, 0, N, &c.w) == 0);
    compare("linear weight slice rows [0,N)", g_tol_linear, 2, b, lin_body, &c);
    CHECK(hb_tensor_narrow(&full, 0, N, N, &c.w) == 0);
    compare("linear weight slice rows [N,2N)", g_tol_linear, 2, b, lin_body, &c);
    hb_host_memory_released(full.data, hb_tensor_nbytes(&full));
    float *nv = rnd(r, 2 * N * K, 0.3f);
    hb_convert_from_f32(full.data, HB_BF16, nv, (size_t)(2 * N * K));
    compare("linear weight rewritten after hb_host_memory_released", g_tol_linear, 2, b, lin_body, &c);
    wrelease(&full);
    free(nv); free(y); free(x);
}

typedef struct { int64_t M, N, K, lda, ldb, ldc; bool acc; } gemm_ctx;
static int gemm_body(void *vc, void **p) {
    gemm_ctx *c = vc;
    hb_gemm_f32(p[0], c->ldc, p[1], c->lda, p[2], c->ldb, c->M, c->N, c->K, c->acc);
    return 0;
}
static void case_gemm(hb_rng *r, int64_t M, int64_t N, int64_t K, int pad, bool acc) {
    gemm_ctx c = {M, N, K, K + pad, N + 2 * pad, N + pad, acc};
    float *C = rnd(r, M * c.ldc, 1.0f), *A = rnd(r, M * c.lda, 1.0f), *B = rnd(r, K * c.ldb, 1.0f);
    tbuf b[3] = {fbuf(C, M * c.ldc), fbuf(A, M * c.lda), fbuf(B, K * c.ldb)};
    char what[128];
    snprintf(what, sizeof what, "gemm_f32 M=%lld N=%lld K=%lld pad=%d acc=%d", (long long)M, (long long)N, (long long)K,
             pad, acc);
    compare(what, g_tol_gemm, 3, b, gemm_body, &c);
    free(C); free(A); free(B);
}

/* ---------------- norms, modulation ---------------- */
enum { N_LN, N_RMS, N_CRMS, N_LNMOD, N_GADD };
typedef struct { int op; int64_t rows, dim; hb_tensor w, b; bool hw, hb; float eps; hb_modgroups g; } norm_ctx;
static int norm_body(void *vc, void **p) {
    norm_ctx *c = vc;
    switch (c->op) {
    case N_LN: hb_layernorm(p[0], p[1], c->rows, c->dim, c->hw ? &c->w : NULL, c->hb ? &c->b : NULL, c->eps); break;
    case N_RMS: hb_rmsnorm(p[0], p[1], c->rows, c->dim, c->hw ? &c->w : NULL, c->eps); break;
    case N_CRMS: hb_channel_rmsnorm(p[0], p[1], c->rows, c->dim, &c->w, c->hb ? &c->b : NULL); break;
    case N_LNMOD: hb_layernorm_modulate(p[0], p[1], c->rows, c->dim, c->eps, p[2], p[3], c->g); break;
    case N_GADD: hb_gated_add(p[0], p[1], c->rows, c->dim, p[2], c->g); break;
    }
    return 0;
}

static void case_norms(hb_rng *r, int64_t rows, int64_t dim, hb_dtype wt) {
    int64_t n = rows * dim;
    float *y = rnd(r, n, 1.0f), *x = rnd(r, n, 2.0f);
    for (int64_t i = 0; i < n; i++) x[i] += 0.7f;  /* nonzero mean */
    norm_ctx c = {0};
    c.rows = rows; c.dim = dim; c.eps = 1e-6f;
    c.w = wmake(r, wt, 1, (int64_t[]){dim}, 1.0f);
    c.b = wmake(r, wt, 1, (int64_t[]){dim}, 1.0f);
    tbuf b[2] = {fbuf(y, n), fbuf(x, n)};
    char what[128];
    const int aff[3][2] = {{0, 0}, {1, 0}, {1, 1}};
    for (int a = 0; a < 3; a++) {
        c.hw = aff[a][0]; c.hb = aff[a][1];
        c.op = N_LN;
        snprintf(what, sizeof what, "layernorm rows=%lld dim=%lld w=%d b=%d %s", (long long)rows, (long long)dim, c.hw,
                 c.hb, hb_dtype_name(wt));
        compare(what, TOL_F32, 2, b, norm_body, &c);
        if (a == 2) continue;
        c.op = N_RMS;
        snprintf(what, sizeof what, "rmsnorm rows=%lld dim=%lld w=%d %s", (long long)rows, (long long)dim, c.hw,
                 hb_dtype_name(wt));
        compare(what, TOL_F32, 2, b, norm_body, &c);
    }
    /* channel RMS norm on [C = rows, S = dim] */
    for (int hb = 0; hb < 2; hb++) {
        c.op = N_CRMS; c.hb = hb;
        hb_tensor w = c.w, bb = c.b;
        c.w = wmake(r, wt, 1, (int64_t[]){rows}, 1.0f);
        c.b = wmake(r, wt, 1, (int64_t[]){rows}, 1.0f);
        snprintf(what, sizeof what, "channel_rmsnorm C=%lld S=%lld beta=%d %s", (long long)rows, (long long)dim, hb,
                 hb_dtype_name(wt));
        compare(what, TOL_F32, 2, b, norm_body, &c);
        wrelease(&c.w); wrelease(&c.b);
        c.w = w; c.b = bb;
    }
    /* modulation: one group for all rows (Wan 2.1), one per row (Wan 2.2), one per 3 rows with a stride larger
     * than dim (causal: one per frame, rows of a wider table) */
    const int64_t groups[3][2] = {{rows, 0}, {1, dim}, {3, dim + 5}};
    const char *gname[3] = {"one group", "per row", "per 3 rows"};
    for (int gi = 0; gi < 3; gi++) {
        hb_modgroups g = {groups[gi][0], groups[gi][1]};
        int64_t ng = (rows + g.rows_per_group - 1) / g.rows_per_group, tn = (ng - 1) * g.group_stride + dim;
        float *sh = rnd(r, tn, 1.0f), *sc = rnd(r, tn, 0.5f);
        c.g = g;
        tbuf bm[4] = {fbuf(y, n), fbuf(x, n), fbuf(sh, tn), fbuf(sc, tn)};
        c.op = N_LNMOD;
        snprintf(what, sizeof what, "layernorm_modulate rows=%lld dim=%lld %s", (long long)rows, (long long)dim, gname[gi]);
        compare(what, TOL_F32, 4, bm, norm_body, &c);
        c.op = N_GADD;
        snprintf(what, sizeof what, "gated_add rows=%lld dim=%lld %s", (long long)rows, (long long)dim, gname[gi]);
        compare(what, TOL_F32, 3, (tbuf[]){fbuf(y, n), fbuf(x, n), fbuf(sc, tn)}, norm_body, &c);
        free(sh); free(sc);
    }
    wrelease(&c.w); wrelease(&c.b);
    free(y); free(x);
}

/* ---------------- elementwise, softmax, rope ---------------- */
typedef struct { hb_ew_op op; float al, be; int64_t n; bool inplace; } ew_ctx;
static int ew_body(void *vc, void **p) {
    ew_ctx *c = vc;
    hb_elementwise(c->op, c->inplace ? p[1] : p[0], p[1], p[2], c->al, c->be, c->n);
    return 0;
}
static void case_elementwise(hb_rng *r, int64_t n) {
    static const char *names[] = {"SILU", "GELU_TANH", "ADD", "MUL", "AXPBY", "RELU", "TANH3", "ADD_RELU", "CLAMP01",
                                  "CLAMP", "AXPBY_F64"};
    const hb_ew_op ops[] = {HB_EW_SILU, HB_EW_GELU_TANH, HB_EW_ADD, HB_EW_MUL, HB_EW_AXPBY, HB_EW_RELU, HB_EW_TANH3,
                            HB_EW_ADD_RELU, HB_EW_CLAMP01, HB_EW_CLAMP, HB_EW_AXPBY_F64};
    float *y = rnd(r, n, 1.0f), *a = rnd(r, n, 3.0f), *bb = rnd(r, n, 2.0f);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        for (int ip = 0; ip < 2; ip++) {
            bool clamp = ops[i] == HB_EW_CLAMP;
            ew_ctx c = {ops[i], clamp ? -1.0f : 0.75f, clamp ? 1.0f : -1.25f, n, ip};
            float *ai = a;
            if (clamp) {   /* NaN passes through, infinities clamp: compared bitwise (comparisons only) */
                ai = malloc(sizeof(float) * (size_t)n);
                memcpy(ai, a, sizeof(float) * (size_t)n);
                for (int64_t j = 0; j < n; j += 7) ai[j] = j % 3 == 0 ? NAN : (j % 3 == 1 ? INFINITY : -INFINITY);
            }
            char what[96];
            snprintf(what, sizeof what, "elementwise %s n=%lld%s", names[i], (long long)n, ip ? " in place" : "");
            tbuf b[3] = {fbuf(y, n), fbuf(ai, n), fbuf(bb, n)};
            compare(what, clamp ? -1 : TOL_F32, 3, b, ew_body, &c);
            if (ai != a) free(ai);
        }
    free(y); free(a); free(bb);
}

/* hb_convert between F32/BF16/F16 (exact: compared bitwise), with rounding ties, f16 overflow and underflow,
 * signed zero and NaN among the values */
typedef struct { hb_dtype dt, st; int64_t n; } cv_ctx;
static int cv_body(void *vc, void **p) { cv_ctx *c = vc; return hb_convert(p[0], c->dt, p[1], c->st, c->n); }
static void case_convert(hb_rng *r, int64_t n) {
    float *v = rnd(r, n, 100.0f);
    const float special[] = {65504.0f, 65519.0f, 65520.0f, 1e5f, -1e-8f, 6e-8f, 3e-5f, -0.0f, 0.0f, NAN, 1.00390625f,
                             1.01171875f, 3.0e38f, -3.4e38f, 1e-40f};
    for (size_t i = 0; i < sizeof special / sizeof special[0] && (int64_t)i < n; i++) v[(int64_t)i * (n / 16 + 1) % n] = special[i];
    for (int di = 0; di < 3; di++)
        for (int si = 0; si < 3; si++) {
            cv_ctx c = {k_wdtypes[di], k_wdtypes[si], n};
            size_t dsz = hb_dtype_size(c.dt) * (size_t)n, ssz = hb_dtype_size(c.st) * (size_t)n;
            void *src = malloc(ssz), *dst = malloc(dsz);
            hb_convert_from_f32(src, c.st, v, (size_t)n);   /* a source in its dtype (NaN stays NaN) */
            memset(dst, 0x5A, dsz);
            char what[96];
            snprintf(what, sizeof what, "convert %s -> %s n=%lld", hb_dtype_name(c.st), hb_dtype_name(c.dt), (long long)n);
            compare(what, -1, 2, (tbuf[]){{dst, dsz, false}, {src, ssz, false}}, cv_body, &c);
            free(src); free(dst);
        }
    free(v);
}

typedef struct { int64_t rows, n; } sm_ctx;
static int sm_body(void *vc, void **p) { sm_ctx *c = vc; hb_softmax(p[0], c->rows, c->n); return 0; }
static void case_softmax(hb_rng *r, int64_t rows, int64_t n, float std) {
    sm_ctx c = {rows, n};
    float *x = rnd(r, rows * n, std);
    char what[96];
    snprintf(what, sizeof what, "softmax rows=%lld n=%lld std=%g", (long long)rows, (long long)n, std);
    compare(what, TOL_F32, 1, (tbuf[]){fbuf(x, rows * n)}, sm_body, &c);
    free(x);
}

typedef struct { int64_t L, stride; int heads, d, H, W, f0; } rope_ctx;
static int rope_body(void *vc, void **p) {
    rope_ctx *c = vc;
    hb_rope3d(p[0], c->L, c->heads, c->d, c->stride, c->H, c->W, c->f0);
    return 0;
}
static void case_rope(hb_rng *r, int F, int H, int W, int heads, int d, int f0, int extra) {
    rope_ctx c = {(int64_t)F * H * W, (int64_t)heads * d + extra, heads, d, H, W, f0};
    float *x = rnd(r, c.L * c.stride, 1.0f);
    char what[128];
    snprintf(what, sizeof what, "rope3d F=%d H=%d W=%d heads=%d d=%d f0=%d stride+%d", F, H, W, heads, d, f0, extra);
    compare(what, TOL_F32, 1, (tbuf[]){fbuf(x, c.L * c.stride)}, rope_body, &c);
    free(x);
}

typedef struct { int64_t rows, stride; int heads, d, np; double delta; } rs2_ctx;
static int rshift_body(void *vc, void **p) {
    rs2_ctx *c = vc;
    hb_rope_shift(p[0], c->rows, c->stride, c->heads, c->d, c->np, c->delta);
    return 0;
}
static void case_rope_shift(hb_rng *r, int64_t rows, int heads, int d, int np, double delta, int extra) {
    rs2_ctx c = {rows, (int64_t)heads * d + extra, heads, d, np, delta};
    float *x = rnd(r, rows * c.stride, 1.0f);
    char what[112];
    snprintf(what, sizeof what, "rope_shift rows=%lld heads=%d d=%d np=%d delta=%g stride+%d", (long long)rows, heads, d,
             np, delta, extra);
    compare(what, TOL_F32, 1, (tbuf[]){fbuf(x, rows * c.stride)}, rshift_body, &c);
    free(x);
}

/* ---------------- attention ---------------- */
/* p[0] out (o_stride), p[1] q (q_stride), p[2] k and v (k at 0, v at kv_off), p[3] bias or NULL, p[4] mask or NULL.
 * fused: q, k, v interleaved in p[1] (a fused qkv projection) and the output written over q. */
typedef struct { hb_attention_args a; int64_t kv_off; bool fused; } at_ctx;
static int at_body(void *vc, void **p) {
    at_ctx *c = vc;
    hb_attention_args a = c->a;
    float *q = p[1];
    if (c->fused) {
        a.q = q; a.k = q + a.heads * a.head_dim; a.v = q + 2 * a.heads * a.head_dim; a.out = q;
    } else {
        a.out = p[0]; a.q = q; a.k = p[2]; a.v = (const float *)p[2] + c->kv_off;
    }
    a.bias = p[3];
    a.key_mask = p[4];
    hb_attention(&a);
    return 0;
}
/* mask: 0 none, 1 random (key 0 kept), 2 every key masked (uniform weights, as T5's -FLT_MAX gives) */
static void case_attention(hb_rng *r, int64_t lq, int64_t lk, int heads, int d, bool bias, int mask, bool fused) {
    int64_t hd = (int64_t)heads * d;
    at_ctx c = {{0}, 0, fused};
    c.a.lq = lq; c.a.lk = lk; c.a.heads = heads; c.a.head_dim = d; c.a.scale = 1.0f / sqrtf((float)d);
    float *out = NULL, *q, *kv = NULL, *bs = NULL;
    uint8_t *mk = NULL;
    int64_t nout = 0, nq, nkv = 0;
    if (fused) {
        if (lq != lk) lk = c.a.lk = lq;
        int64_t st = 3 * hd + 1;
        c.a.q_stride = c.a.k_stride = c.a.v_stride = c.a.o_stride = st;
        nq = lq * st;
        q = rnd(r, nq, 1.0f);
    } else {
        c.a.q_stride = hd + 3; c.a.o_stride = hd + 5; c.a.k_stride = c.a.v_stride = 2 * hd + 1;
        c.kv_off = hd;
        nq = lq * c.a.q_stride; nout = lq * c.a.o_stride; nkv = lk * c.a.k_stride;
        q = rnd(r, nq, 1.0f); out = rnd(r, nout, 1.0f); kv = rnd(r, nkv, 1.0f);
    }
    int64_t nb = bias ? (int64_t)heads * lq * lk : 0;
    if (bias) bs = rnd(r, nb, 2.0f);
    if (mask) {
        mk = malloc((size_t)lk);
        for (int64_t j = 0; j < lk; j++) mk[j] = mask == 2 ? 0 : (hb_rng_u64(r) % 3 != 0);
        if (mask == 1) mk[0] = 1;
    }
    tbuf b[5] = {fbuf(out, nout), fbuf(q, nq), fbuf(kv, nkv), fbuf(bs, nb), {mk, mask ? (size_t)lk : 0, false}};
    char what[128];
    snprintf(what, sizeof what, "attention lq=%lld lk=%lld heads=%d d=%d bias=%d mask=%d%s", (long long)lq,
             (long long)lk, heads, d, bias, mask, fused ? " fused qkv, in place" : "");
    compare(what, g_tol_attn, 5, b, at_body, &c);
    free(out); free(q); free(kv); free(bs); free(mk);
}

/* ---------------- conv3d, upsample, pixel shuffle ---------------- */
typedef struct { int64_t Cin, T, H, W; hb_tensor w, b; bool has_b; hb_conv3d_params p; bool is2d; } conv_ctx;
static int conv_body(void *vc, void **p) {
    conv_ctx *c = vc;
    if (c->is2d)
        return hb_conv2d(p[0], p[1], c->Cin, c->H, c->W, &c->w, c->has_b ? &c->b : NULL, c->p.stride[1],
                         c->p.pad_h[0], c->p.groups);
    return hb_conv3d(p[0], p[1], c->Cin, c->T, c->H, c->W, &c->w, c->has_b ? &c->b : NULL, &c->p);
}
static void case_conv(hb_rng *r, const char *label, hb_dtype t, int64_t Cin, int64_t Cout, int64_t T, int64_t H,
                      int64_t W, int kt, int kh, int kw, hb_conv3d_params p, bool has_b) {
    conv_ctx c = {Cin, T, H, W, {0}, {0}, has_b, p, false};
    int64_t cig = Cin / p.groups;
    c.w = wmake(r, t, 5, (int64_t[]){Cout, cig, kt, kh, kw}, 1.0f / sqrtf((float)(cig * kt * kh * kw)));
    c.b = wmake(r, t, 1, (int64_t[]){Cout}, 0.5f);
    int64_t To, Ho, Wo;
    hb_conv3d_out_size(T, H, W, &c.w, &p, &To, &Ho, &Wo);
    int64_t ny = Cout * To * Ho * Wo, nx = Cin * T * H * W;
    float *y = rnd(r, ny, 1.0f), *x = rnd(r, nx, 1.0f);
    char what[160];
    bool f32 = p.precision == HB_CONV_F32;
    snprintf(what, sizeof what, "conv3d%s %s %s %lldx%lldx%lldx%lld -> %lld k=%dx%dx%d bias=%d", f32 ? " f32" : "", label,
             hb_dtype_name(t), (long long)Cin, (long long)T, (long long)H, (long long)W, (long long)Cout, kt, kh, kw, has_b);
    compare(what, f32 ? TOL_F32 : TOL_MM, 2, (tbuf[]){fbuf(y, ny), fbuf(x, nx)}, conv_body, &c);
    wrelease(&c.w); wrelease(&c.b);
    free(y); free(x);
}
static void case_conv2d(hb_rng *r) {
    const int64_t Cin = 6, Cout = 10, H = 13, W = 9;
    conv_ctx c = {Cin, 1, H, W, {0}, {0}, true, {{1, 2, 2}, {0, 0}, {1, 1}, {1, 1}, 2, HB_CONV_FAST}, true};
    c.w = wmake(r, HB_BF16, 4, (int64_t[]){Cout, Cin / 2, 3, 3}, 0.3f);
    c.b = wmake(r, HB_BF16, 1, (int64_t[]){Cout}, 0.5f);
    int64_t Ho = (H + 2 - 3) / 2 + 1, Wo = (W + 2 - 3) / 2 + 1, ny = Cout * Ho * Wo, nx = Cin * H * W;
    float *y = rnd(r, ny, 1.0f), *x = rnd(r, nx, 1.0f);
    compare("conv2d bf16 6x13x9 -> 10 k=3x3 stride 2 pad 1 groups 2", TOL_MM, 2, (tbuf[]){fbuf(y, ny), fbuf(x, nx)},
            conv_body, &c);
    wrelease(&c.w); wrelease(&c.b);
    free(y); free(x);
}

typedef struct { int64_t C, T, H, W; int a, b, c; hb_ps_order o; bool un; int kind; } rs_ctx;
static int rs_body(void *vc, void **p) {
    rs_ctx *c = vc;
    if (c->kind == 0) hb_upsample_nearest(p[0], p[1], c->C, c->T, c->H, c->W, c->a, c->b, c->c);
    else if (c->un) hb_pixel_unshuffle(p[0], p[1], c->C, c->T, c->H, c->W, c->a, c->o);
    else hb_pixel_shuffle(p[0], p[1], c->C, c->T, c->H, c->W, c->a, c->o);
    return 0;
}
static void case_upsample(hb_rng *r, int64_t C, int64_t T, int64_t H, int64_t W, int ft, int fh, int fw) {
    rs_ctx c = {C, T, H, W, ft, fh, fw, HB_PS_CQR, false, 0};
    int64_t nx = C * T * H * W, ny = nx * ft * fh * fw;
    float *y = rnd(r, ny, 1.0f), *x = rnd(r, nx, 1.0f);
    char what[96];
    snprintf(what, sizeof what, "upsample_nearest %lldx%lldx%lldx%lld by %dx%dx%d", (long long)C, (long long)T,
             (long long)H, (long long)W, ft, fh, fw);
    compare(what, TOL_F32, 2, (tbuf[]){fbuf(y, ny), fbuf(x, nx)}, rs_body, &c);
    free(y); free(x);
}
static void case_pixel_shuffle(hb_rng *r, int64_t C, int64_t T, int64_t H, int64_t W, int p) {
    int64_t n = C * T * H * W * p * p;
    float *y = rnd(r, n, 1.0f), *x = rnd(r, n, 1.0f);
    for (int o = 0; o < 2; o++)
        for (int un = 0; un < 2; un++) {
            rs_ctx c = {C, T, H, W, p, 0, 0, (hb_ps_order)o, un, 1};
            char what[112];
            snprintf(what, sizeof what, "pixel_%s %s C=%lld T=%lld H=%lld W=%lld p=%d", un ? "unshuffle" : "shuffle",
                     o ? "CRQ" : "CQR", (long long)C, (long long)T, (long long)H, (long long)W, p);
            compare(what, TOL_F32, 2, (tbuf[]){fbuf(y, n), fbuf(x, n)}, rs_body, &c);
        }
    free(y); free(x);
}

/* ---------------- data movement ---------------- */
typedef struct { int nd; int64_t shape[6], ds[6], ss[6], doff, soff; int kind; float value; int64_t rows, ld1, ld2; } cp_ctx;
static int cp_body(void *vc, void **p) {
    cp_ctx *c = vc;
    float *d = (float *)p[0] + c->doff;
    const float *s = p[1] ? (const float *)p[1] + c->soff : NULL;
    switch (c->kind) {
    case 0: hb_copy_nd(d, c->ds, s, c->ss, c->nd, c->shape); break;
    case 1: hb_copy(d, s, c->shape[0]); break;
    case 2: hb_copy_rows(d, c->ld1, s, c->ld2, c->rows, c->shape[0]); break;
    case 3: hb_fill(d, c->value, c->shape[0]); break;
    }
    return 0;
}
static int64_t extent(int nd, const int64_t *shape, const int64_t *st, int64_t off) {
    int64_t e = off;
    for (int i = 0; i < nd; i++) e += (shape[i] - 1) * st[i];
    return e + 1;
}
/* copy_nd against a naive host loop too (the CPU reference itself is checked here) */
static void case_copy_nd(hb_rng *r, const char *label, int nd, const int64_t *shape, const int64_t *ds,
                         const int64_t *ss, int64_t doff, int64_t soff) {
    cp_ctx c = {0};
    c.nd = nd; c.doff = doff; c.soff = soff;
    memcpy(c.shape, shape, sizeof(int64_t) * (size_t)nd);
    memcpy(c.ds, ds, sizeof(int64_t) * (size_t)nd);
    memcpy(c.ss, ss, sizeof(int64_t) * (size_t)nd);
    int64_t nD = extent(nd, shape, ds, doff), nS = extent(nd, shape, ss, soff);
    float *d = rnd(r, nD, 1.0f), *s = rnd(r, nS, 1.0f), *want = malloc(sizeof(float) * (size_t)nD);
    memcpy(want, d, sizeof(float) * (size_t)nD);
    int64_t idx[6] = {0}, total = 1;
    for (int i = 0; i < nd; i++) total *= shape[i];
    for (int64_t e = 0; e < total; e++) {
        int64_t rem = e, od = doff, os = soff;
        for (int i = nd - 1; i >= 0; i--) { idx[i] = rem % shape[i]; rem /= shape[i]; od += idx[i] * ds[i]; os += idx[i] * ss[i]; }
        want[od] = s[os];
    }
    float *got = malloc(sizeof(float) * (size_t)nD);
    memcpy(got, d, sizeof(float) * (size_t)nD);
    hb_copy_nd(got + doff, ds, s + soff, ss, nd, shape);
    CHECKF(memcmp(got, want, sizeof(float) * (size_t)nD) == 0, "copy_nd %s: cpu result differs from a naive loop", label);
    char what[96];
    snprintf(what, sizeof what, "copy_nd %s", label);
    compare(what, 0, 2, (tbuf[]){fbuf(d, nD), fbuf(s, nS)}, cp_body, &c);
    free(d); free(s); free(want); free(got);
}
static void case_copies(hb_rng *r) {
    case_copy_nd(r, "2-D transpose 37x53", 2, (int64_t[]){37, 53}, (int64_t[]){1, 37}, (int64_t[]){53, 1}, 0, 0);
    /* patchify: [C=5, F=3, H=6, W=8] -> rows [F, H/2, W/2, C, 2, 2] */
    case_copy_nd(r, "6-D patchify permute", 6, (int64_t[]){3, 3, 4, 5, 2, 2},
                 (int64_t[]){3 * 4 * 5 * 4, 4 * 5 * 4, 5 * 4, 4, 2, 1}, (int64_t[]){48, 16, 2, 3 * 48, 8, 1}, 0, 0);
    case_copy_nd(r, "concat into columns 10..19 of [4, 25]", 2, (int64_t[]){4, 10}, (int64_t[]){25, 1},
                 (int64_t[]){10, 1}, 10, 0);
    case_copy_nd(r, "crop [5,4,6] at (1,2,3) of [7,9,11]", 3, (int64_t[]){5, 4, 6}, (int64_t[]){24, 6, 1},
                 (int64_t[]){99, 11, 1}, 0, 99 + 22 + 3);
    case_copy_nd(r, "broadcast a row (src stride 0)", 2, (int64_t[]){6, 9}, (int64_t[]){9, 1}, (int64_t[]){0, 1}, 0, 0);
    case_copy_nd(r, "5-D permute with odd sizes", 5, (int64_t[]){3, 1, 5, 2, 7}, (int64_t[]){1, 3, 3 * 2 * 7, 3 * 7, 3},
                 (int64_t[]){70, 70, 14, 7, 1}, 0, 0);
    /* hb_copy, hb_copy_rows, hb_fill (into the middle of a buffer: the neighbours must stay) */
    const int64_t n = 100003;
    float *d = rnd(r, n + 20, 1.0f), *s = rnd(r, n + 20, 1.0f);
    cp_ctx c = {0};
    c.kind = 1; c.shape[0] = n; c.doff = 7; c.soff = 3;
    compare("copy n=100003 at offsets 7/3", 0, 2, (tbuf[]){fbuf(d, n + 20), fbuf(s, n + 20)}, cp_body, &c);
    c.kind = 2; c.rows = 13; c.shape[0] = 17; c.ld1 = 20; c.ld2 = 31; c.doff = 1; c.soff = 2;
    compare("copy_rows 13x17 ldd 20 lds 31", 0, 2, (tbuf[]){fbuf(d, 13 * 20 + 1), fbuf(s, 13 * 31 + 2)}, cp_body, &c);
    c.kind = 3; c.value = -3.25f; c.doff = 5;
    for (int64_t m = 1; m <= n; m = m * 37 + 1) {
        c.shape[0] = m;
        char what[64];
        snprintf(what, sizeof what, "fill n=%lld at offset 5", (long long)m);
        compare(what, 0, 2, (tbuf[]){fbuf(d, m + 11), k_none}, cp_body, &c);
    }
    free(d); free(s);
}

typedef struct { int64_t ldy, ldx, rows, n; hb_tensor v, sc, sh; bool alias, has_sc, has_sh; int kind; int32_t *ids; } av_ctx;
static int av_body(void *vc, void **p) {
    av_ctx *c = vc;
    float *y = c->alias ? p[1] : p[0];
    if (c->kind == 0) hb_add_vec(y, c->ldy, p[1], c->ldx, c->rows, c->n, &c->v);
    else if (c->kind == 1) hb_channel_affine(y, p[1], c->rows, c->n, c->has_sc ? &c->sc : NULL, c->has_sh ? &c->sh : NULL);
    else return hb_embed_rows(p[0], &c->v, c->ids, c->rows);
    return 0;
}
static void case_vectors(hb_rng *r, hb_dtype t) {
    char what[112];
    /* add_vec: y [rows, ldy] from x [rows, ldx] + v[n]; and in place (y = x, ldy = ldx) */
    for (int alias = 0; alias < 2; alias++) {
        av_ctx c = {0};
        c.rows = 29; c.n = 70; c.ldx = 75; c.ldy = alias ? 75 : 72; c.alias = alias; c.kind = 0;
        c.v = wmake(r, t, 1, (int64_t[]){c.n}, 1.0f);
        int64_t ny = c.rows * c.ldy, nx = c.rows * c.ldx;
        float *y = rnd(r, ny, 1.0f), *x = rnd(r, nx, 1.0f);
        snprintf(what, sizeof what, "add_vec rows=29 n=70 %s%s", hb_dtype_name(t), alias ? " in place" : "");
        compare(what, TOL_F32, 2, (tbuf[]){fbuf(y, ny), fbuf(x, nx)}, av_body, &c);
        wrelease(&c.v);
        free(y); free(x);
    }
    /* channel_affine on [C, S] with scale/shift present or NULL, in place or not */
    for (int m = 0; m < 4; m++) {
        av_ctx c = {0};
        c.rows = 48; c.n = 1031; c.kind = 1; c.has_sc = m & 1; c.has_sh = m & 2; c.alias = m == 3;
        c.sc = wmake(r, t, 1, (int64_t[]){c.rows}, 1.0f);
        c.sh = wmake(r, t, 1, (int64_t[]){c.rows}, 1.0f);
        int64_t nn = c.rows * c.n;
        float *y = rnd(r, nn, 1.0f), *x = rnd(r, nn, 1.0f);
        snprintf(what, sizeof what, "channel_affine C=48 S=1031 scale=%d shift=%d %s%s", c.has_sc, c.has_sh,
                 hb_dtype_name(t), c.alias ? " in place" : "");
        compare(what, TOL_F32, 2, (tbuf[]){fbuf(y, nn), fbuf(x, nn)}, av_body, &c);
        wrelease(&c.sc); wrelease(&c.sh);
        free(y); free(x);
    }
    /* embed_rows: ids on the host, with repeats */
    {
        av_ctx c = {0};
        const int64_t V = 301, D = 96, n = 57;
        c.kind = 2; c.rows = n;
        c.v = wmake(r, t, 2, (int64_t[]){V, D}, 1.0f);
        c.ids = malloc(sizeof(int32_t) * (size_t)n);
        for (int64_t i = 0; i < n; i++) c.ids[i] = (int32_t)(hb_rng_u64(r) % (uint64_t)V);
        c.ids[n - 1] = c.ids[0];
        c.ids[1] = (int32_t)(V - 1);
        float *y = rnd(r, n * D, 1.0f);
        snprintf(what, sizeof what, "embed_rows V=301 D=96 n=57 %s", hb_dtype_name(t));
        compare(what, TOL_F32, 2, (tbuf[]){fbuf(y, n * D), k_none}, av_body, &c);
        wrelease(&c.v);
        free(c.ids); free(y);
    }
}

/* ---------------- training ops ---------------- */
typedef struct { int kind; int64_t C, S, To, Ho, Wo; int k[3]; hb_ew_op act; hb_tensor w; hb_adamw o; int64_t step; } tr_ctx;
static int tr_body(void *vc, void **p) {
    tr_ctx *c = vc;
    float **f = (float **)p;
    switch (c->kind) {
    case 0: hb_channel_rms_backward(f[0], f[1], f[2], c->C, c->S, 1e-8f); break;
    case 1: hb_channel_layernorm_backward(f[0], f[3], f[4], f[1], f[2], &c->w, c->C, c->S, 1e-6f); break;
    case 2: hb_act_backward(c->act, f[0], f[1], f[2], c->C * c->S); break;
    case 3: hb_channel_sum(f[0], f[1], c->C, c->S); break;
    case 4: hb_depthwise_weight_grad(f[0], f[1], f[2], c->C, c->To, c->Ho, c->Wo, c->k[0], c->k[1], c->k[2]); break;
    default: hb_adamw_step(&c->o, c->step, f[0], f[1], f[2], f[3], c->C * c->S); break;
    }
    return 0;
}

/* every training op against the CPU; accumulating outputs start non-zero; AdamW bitwise (rounding as torch) */
static void case_training(hb_rng *r, int64_t C, int64_t S) {
    int64_t n = C * S;
    float *dx = rnd(r, n, 1.0f), *dy = rnd(r, n, 1.0f), *x = rnd(r, n, 1.5f), *dw = rnd(r, C, 0.1f), *db = rnd(r, C, 0.1f);
    float *m = rnd(r, n, 0.01f), *v = rnd(r, n, 0.01f);
    for (int64_t i = 0; i < n; i++) v[i] = v[i] * v[i];
    int64_t shp[1] = {C};
    tr_ctx c = {.C = C, .S = S, .w = wmake(r, HB_F32, 1, shp, 0.3f), .o = {1e-3, 0.9, 0.95, 1e-8, 0.1}, .step = 3};
    char what[96];
    const char *names[] = {"channel_rms_backward", "channel_layernorm_backward", "act_backward SILU", "channel_sum"};
    for (int k = 0; k < 4; k++) {
        c.kind = k, c.act = HB_EW_SILU;
        snprintf(what, sizeof what, "%s C=%lld S=%lld", names[k], (long long)C, (long long)S);
        tbuf b[5] = {k == 3 ? fbuf(dw, C) : fbuf(dx, n), fbuf(dy, n), fbuf(x, n), k == 1 ? fbuf(dw, C) : k_none,
                     k == 1 ? fbuf(db, C) : k_none};
        compare(what, TOL_F32, 5, b, tr_body, &c);
    }
    c.kind = 2, c.act = HB_EW_RELU;
    snprintf(what, sizeof what, "act_backward RELU n=%lld", (long long)n);
    tbuf br[3] = {fbuf(dx, n), fbuf(dy, n), fbuf(x, n)};
    compare(what, -1, 3, br, tr_body, &c);
    c.kind = 5;
    snprintf(what, sizeof what, "adamw_step n=%lld step 3", (long long)n);
    tbuf ba[4] = {fbuf(x, n), fbuf(dy, n), fbuf(m, n), fbuf(v, n)};
    compare(what, -1, 4, ba, tr_body, &c);
    /* depthwise weight gradient: dy [C, 3, 5, 4], kernel 3x3x3 */
    c.kind = 4, c.To = 3, c.Ho = 5, c.Wo = 4, c.k[0] = c.k[1] = c.k[2] = 3;
    int64_t ny = C * 3 * 5 * 4, np = C * 5 * 7 * 6, nw = C * 27;
    float *g = rnd(r, ny, 1.0f), *xp = rnd(r, np, 1.0f), *w = rnd(r, nw, 0.1f);
    snprintf(what, sizeof what, "depthwise_weight_grad C=%lld 3x5x4 k3", (long long)C);
    tbuf bd[3] = {fbuf(w, nw), fbuf(g, ny), fbuf(xp, np)};
    compare(what, TOL_F32, 3, bd, tr_body, &c);
    wrelease(&c.w);
    free(dx), free(dy), free(x), free(dw), free(db), free(m), free(v), free(g), free(xp), free(w);
}

/* ---------------- perceptual-loss ops ---------------- */
typedef struct { int kind; int64_t C, H, W, S; int k, s; hb_tensor w; } pl_ctx;
static int pl_body(void *vc, void **p) {
    pl_ctx *c = vc;
    float **f = (float **)p;
    if (c->kind == 0) hb_maxpool2d(f[0], f[1], c->C, c->H, c->W, c->k, c->s);
    else if (c->kind == 1) hb_maxpool2d_backward(f[0], f[1], f[2], c->C, c->H, c->W, c->k, c->s);
    else hb_lpips_distance(f[0], f[1], f[2], f[3], &c->w, c->C, c->S, 0.37f);
    return 0;
}

/* max pool (AlexNet's overlapping 3/2 and VGG's 2/2, odd sides) bitwise; the LPIPS distance and gradient */
static void case_perceptual(hb_rng *r, int64_t C, int64_t H, int64_t W) {
    char what[96];
    for (int v = 0; v < 2; v++) {
        pl_ctx c = {.C = C, .H = H, .W = W, .k = v ? 2 : 3, .s = 2};
        int64_t n = C * H * W, no = C * ((H - c.k) / 2 + 1) * ((W - c.k) / 2 + 1);
        float *x = rnd(r, n, 1.0f), *y = rnd(r, no, 1.0f), *dx = rnd(r, n, 1.0f);
        for (int64_t i = 0; i < n; i += 7) x[i] = 0.0f; /* ties, as after a ReLU */
        c.kind = 0;
        snprintf(what, sizeof what, "maxpool2d C=%lld %lldx%lld k%d s2", (long long)C, (long long)H, (long long)W, c.k);
        compare(what, -1, 2, (tbuf[]){fbuf(y, no), fbuf(x, n)}, pl_body, &c);
        c.kind = 1;
        snprintf(what, sizeof what, "maxpool2d_backward C=%lld %lldx%lld k%d s2", (long long)C, (long long)H, (long long)W, c.k);
        compare(what, TOL_F32, 3, (tbuf[]){fbuf(dx, n), fbuf(y, no), fbuf(x, n)}, pl_body, &c);
        free(x), free(y), free(dx);
    }
    pl_ctx c = {.kind = 2, .C = C, .S = H * W, .w = wmake(r, HB_F32, 1, (int64_t[]){C}, 1.0f)};
    int64_t n = C * H * W;
    float *d = rnd(r, H * W, 1.0f), *g = rnd(r, n, 1.0f), *xa = rnd(r, n, 1.0f), *xb = rnd(r, n, 1.0f);
    snprintf(what, sizeof what, "lpips_distance C=%lld S=%lld", (long long)C, (long long)(H * W));
    compare(what, TOL_F32, 4, (tbuf[]){fbuf(d, H * W), fbuf(g, n), fbuf(xa, n), fbuf(xb, n)}, pl_body, &c);
    wrelease(&c.w);
    free(d), free(g), free(xa), free(xb);
}

static void add_device(const char *name, bool exact) {
    const hb_backend *b = hb_backend_find(name);
    if (!b) {
        printf("device %s: not available: %s\n", name, hb_last_error());
        return;
    }
    printf("device %s: backend '%s', memory space '%s'\n", name, b->name, b->mem ? b->mem->name : "?");
    g_devs[g_ndev++] = (tdev){name, b, exact};
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    const char *gpu = getenv("HB_TEST_DEVICE");
    if (!gpu || !*gpu) gpu = "cuda";
    if (env_on("HB_GPU_PRECISE")) g_tol_linear = g_tol_attn = 2e-5;
    else if (env_on("HB_GPU_TF32")) g_tol_gemm = TOL_MM;
    g_fp8 = env_on("HB_GPU_FP8") && !env_on("HB_GPU_PRECISE");
    if (g_fp8) g_tol_linear = TOL_FP8;
    printf("tolerances (normwise): linear %.0e, attention %.0e, gemm_f32 %.0e, conv3d %.0e, other f32 ops %.0e%s\n",
           g_tol_linear, g_tol_attn, g_tol_gemm, TOL_MM, TOL_F32,
           env_on("HB_GPU_PRECISE") ? " (HB_GPU_PRECISE)" : g_fp8 ? " (HB_GPU_FP8)" : "");
    add_device("cpu-guard", true);
    add_device(gpu, false);
    bool have_gpu = g_ndev == 2;
    char gpu_why[512];
    if (!have_gpu) {
        hb_backend_find(gpu);
        snprintf(gpu_why, sizeof gpu_why, "GPU backend '%s' not available (%s); only the cpu-guard comparisons ran", gpu,
                 hb_last_error());
    }

    for (int ti = 0; ti < 3; ti++) {
        hb_dtype t = k_wdtypes[ti];
        for (int bi = 0; bi < 2; bi++)
            for (int acc = 0; acc < 2; acc++) {
                case_linear(&r, t, 1, 7, 5, bi, acc);
                case_linear(&r, t, 300, 200, 130, bi, acc);
            }
        case_linear(&r, t, 37, 64, 96, true, false);
        case_linear(&r, t, 65, 33, 17, false, false);       /* odd K: unaligned bf16 rows */
    }
    case_linear(&r, HB_BF16, 40, 128, 48, true, true);      /* K, N multiples of 16: fp8 (under HB_GPU_FP8), accumulating */
    case_linear(&r, HB_BF16, 1037, 3072, 3072, true, false);   /* a DiT-sized layer (the GEMM library's big tiles) */
    case_linear_cache(&r);
    case_linear_quant(&r, HB_Q8_0, 37, 256, 96);
    case_linear_quant(&r, HB_Q4_K, 300, 512, 130);
    case_linear_quant(&r, HB_Q6_K, 2, 256, 40);
    if (g_fp8 || env_on("HB_TEST_DIT_LINEAR")) {
        case_linear_dit(&r, 256, 3072, 3072);
        case_linear_dit(&r, 256, 3072, 14336);
        case_linear_dit(&r, 256, 14336, 3072);
        case_linear_dit(&r, 1024, 3072, 3072);
    }
    for (int acc = 0; acc < 2; acc++) {
        case_gemm(&r, 5, 7, 3, 0, acc);
        case_gemm(&r, 64, 80, 96, 0, acc);
        case_gemm(&r, 130, 33, 257, 3, acc);
    }
    case_training(&r, 7, 33);
    case_training(&r, 48, 1031);
    case_perceptual(&r, 5, 13, 10);
    case_perceptual(&r, 64, 55, 55);
    case_norms(&r, 1, 1, HB_F32);
    case_norms(&r, 7, 33, HB_BF16);
    case_norms(&r, 64, 3072, HB_F32);
    case_norms(&r, 10, 1030, HB_F16);
    case_elementwise(&r, 1);
    case_elementwise(&r, 100003);
    case_softmax(&r, 1, 1, 1.0f);
    case_softmax(&r, 5, 77, 1.0f);
    case_softmax(&r, 33, 5070, 10.0f);
    case_rope(&r, 3, 4, 5, 2, 128, 7, 3);
    case_rope(&r, 2, 3, 7, 3, 64, 0, 0);
    case_rope(&r, 1, 1, 1, 1, 12, 2, 0);
    case_rope(&r, 4, 2, 2, 2, 48, 17, 5);
    case_rope_shift(&r, 60, 2, 128, 22, 3.0, 0);     /* Wan: 128 = 44 frame + 42 + 42, 22 frame pairs */
    case_rope_shift(&r, 7, 3, 64, 11, -7.5, 5);
    case_rope_shift(&r, 33, 1, 12, 6, 1000.0, 1);
    case_convert(&r, 1);
    case_convert(&r, 1001);
    /* attention: odd Lq/Lk, head_dim 16/64/128, bias, key masks, a fully masked row, fused in-place qkv */
    case_attention(&r, 1, 1, 1, 16, false, 0, false);
    case_attention(&r, 5, 3, 2, 16, true, 0, false);
    case_attention(&r, 77, 333, 3, 64, false, 0, false);
    case_attention(&r, 131, 77, 2, 128, true, 1, false);
    case_attention(&r, 257, 512, 2, 128, false, 0, false);   /* cross-attention shape (512 text tokens) */
    case_attention(&r, 33, 300, 2, 64, true, 1, false);
    case_attention(&r, 9, 40, 2, 16, true, 2, false);
    case_attention(&r, 301, 301, 2, 128, false, 0, true);
    case_attention(&r, 45, 45, 4, 64, true, 1, true);
    case_attention(&r, 1100, 1100, 2, 128, false, 0, false);  /* many query and key tiles */
    /* conv3d */
    hb_conv3d_params causal = {{1, 1, 1}, {2, 0}, {1, 1}, {1, 1}, 1, HB_CONV_FAST};
    hb_conv3d_params strided = {{1, 2, 2}, {0, 0}, {0, 1}, {0, 1}, 1, HB_CONV_FAST};
    hb_conv3d_params tstride = {{2, 1, 1}, {0, 0}, {0, 0}, {0, 0}, 1, HB_CONV_FAST};
    hb_conv3d_params plain = {{1, 1, 1}, {0, 0}, {0, 0}, {0, 0}, 1, HB_CONV_FAST};
    hb_conv3d_params dw = {{1, 1, 1}, {2, 0}, {1, 1}, {1, 1}, 12, HB_CONV_FAST};
    hb_conv3d_params grp = {{1, 1, 1}, {1, 1}, {1, 1}, {1, 1}, 2, HB_CONV_FAST};
    for (int ti = 0; ti < 3; ti++) {
        hb_dtype t = k_wdtypes[ti];
        case_conv(&r, "dense causal pad {2,0}", t, 8, 16, 3, 9, 10, 3, 3, 3, causal, true);
        case_conv(&r, "depthwise causal", t, 12, 12, 4, 7, 6, 3, 3, 3, dw, ti == 0);
    }
    case_conv(&r, "strided (1,2,2) pad {0,1}", HB_BF16, 6, 10, 2, 11, 13, 1, 3, 3, strided, true);
    case_conv(&r, "time stride 2 (3,1,1)", HB_BF16, 16, 8, 7, 5, 4, 3, 1, 1, tstride, true);
    case_conv(&r, "pointwise 1x1x1", HB_F32, 32, 24, 2, 6, 7, 1, 1, 1, plain, false);
    case_conv(&r, "grouped (2 groups)", HB_BF16, 8, 6, 3, 5, 5, 3, 3, 3, grp, true);
    case_conv(&r, "wide VAE-like 3x3x3", HB_BF16, 64, 64, 3, 12, 16, 3, 3, 3, causal, true);
    /* f32 operands (training): channel blocks past 32 and a partial one, several M and N tiles, padding wider than
     * the kernel's half (the data-gradient conv), strides, 1x1x1, and the depthwise / grouped paths */
    hb_conv3d_params causal32 = causal, strided32 = strided, plain32 = plain, dw32 = dw, grp32 = grp;
    hb_conv3d_params grad32 = {{1, 1, 1}, {2, 2}, {2, 2}, {2, 2}, 1, HB_CONV_F32};
    causal32.precision = strided32.precision = plain32.precision = dw32.precision = grp32.precision = HB_CONV_F32;
    for (int ti = 0; ti < 3; ti++) case_conv(&r, "dense causal pad {2,0}", k_wdtypes[ti], 8, 16, 3, 9, 10, 3, 3, 3, causal32, true);
    case_conv(&r, "dense 2 M tiles, 2 channel blocks", HB_F32, 40, 70, 2, 9, 11, 3, 3, 3, causal32, true);
    case_conv(&r, "data-gradient padding k-1", HB_F32, 20, 12, 3, 5, 6, 3, 3, 3, grad32, false);
    case_conv(&r, "strided (1,2,2) pad {0,1}", HB_F32, 6, 10, 2, 11, 13, 1, 3, 3, strided32, true);
    case_conv(&r, "pointwise 1x1x1", HB_F32, 32, 24, 2, 6, 7, 1, 1, 1, plain32, true);
    case_conv(&r, "depthwise causal", HB_F32, 12, 12, 4, 7, 6, 3, 3, 3, dw32, true);
    case_conv(&r, "grouped (2 groups)", HB_F32, 8, 6, 3, 5, 5, 3, 3, 3, grp32, true);
    case_conv(&r, "wide VAE-like 3x3x3", HB_F32, 64, 64, 3, 12, 16, 3, 3, 3, causal32, true);
    case_conv2d(&r);
    case_upsample(&r, 3, 2, 5, 7, 1, 2, 2);
    case_upsample(&r, 4, 1, 3, 3, 2, 1, 1);
    case_upsample(&r, 2, 3, 4, 5, 2, 2, 2);
    case_pixel_shuffle(&r, 3, 2, 4, 5, 2);
    case_pixel_shuffle(&r, 2, 1, 3, 2, 4);
    case_copies(&r);
    case_vectors(&r, HB_F32);
    case_vectors(&r, HB_BF16);
    printf("%d cases on %d device(s)\n", g_cases, g_ndev);
    if (!have_gpu) tl_skip(gpu_why);
    return tl_done();
}
