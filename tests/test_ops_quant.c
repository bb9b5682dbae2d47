/* ops: hb_linear with block-quantized (GGUF) weights of every type in activation mode "f32", against a
 * double-precision reference on the dequantized weights (tolerance: normwise 2e-5, f32 sums), on both the small-M
 * and the tiled path, with bias and accumulate; bitwise identical for 1/2/3 threads, to hb_linear on the
 * dequantized F32 weights, and under the cpu-guard backend. In mode "q8" (Q8_0, Q4_K weights; integer kernels): the same
 * bits as ggml's scalar dot products (hb_matmul_ggml_ref) for every kernel (generic, avx2, vnni where present) and
 * thread count, bias and accumulate within 1e-6, and within the activation rounding (normwise 1e-2) of the exact
 * product, and under cpu-guard. Also hb_quantize -> hb_dequantize stays within each format's step. */
#include "test_ops_common.h"
#include "ops/ops_internal.h"

static const hb_dtype k_qtypes[] = {HB_Q8_0, HB_Q4_0, HB_Q4_1, HB_Q5_0, HB_Q5_1,
                                    HB_Q2_K, HB_Q3_K, HB_Q4_K, HB_Q5_K, HB_Q6_K};

typedef struct { const float *x; hb_tensor w, b; int64_t M, N; const float *y0; bool acc; } qlin;

static void qlin_body(void *vc, float *out) {
    qlin *c = vc;
    memcpy(out, c->y0, sizeof(float) * (size_t)(c->M * c->N));
    int rc = hb_linear(out, c->x, c->M, &c->w, &c->b, c->acc);
    CHECKF(rc == 0, "hb_linear: %s", hb_last_error());
}

static void qlin_body_nobias(void *vc, float *out) {
    qlin *c = vc;
    int rc = hb_linear(out, c->x, c->M, &c->w, NULL, false);
    CHECKF(rc == 0, "hb_linear: %s", hb_last_error());
}

static void check_qlinear(hb_rng *r, hb_dtype t, int64_t M, int64_t N, int64_t K, bool acc) {
    float *wf = rnd(r, N * K, 0.05f), *x = rnd(r, M * K, 1.0f), *b = rnd(r, N, 1.0f), *y0 = rnd(r, M * N, 1.0f);
    hb_tensor w = hb_tensor_2d(t, N, K, NULL);
    void *wq = malloc(hb_tensor_nbytes(&w));
    CHECK(hb_quantize(wq, wf, t, N * K) == 0);
    w.data = wq;
    float *wd = malloc(sizeof(float) * (size_t)(N * K)), *ref = malloc(sizeof(float) * (size_t)(M * N));
    hb_dequantize(wd, wq, t, N * K);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = (acc ? y0[m * N + n] : 0.0) + b[n];
            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * wd[n * K + k];
            ref[m * N + n] = (float)s;
        }
    char what[128];
    snprintf(what, sizeof what, "linear %s M=%lld N=%lld K=%lld acc=%d", hb_dtype_name(t), (long long)M, (long long)N,
             (long long)K, acc);
    qlin c = {x, w, hb_tensor_1d(HB_F32, N, b), M, N, y0, acc};
    float *out = malloc(sizeof(float) * (size_t)(M * N)), *outf = malloc(sizeof(float) * (size_t)(M * N));
    same_for_threads(qlin_body, &c, out, sizeof(float) * (size_t)(M * N), what);
    double e = tl_rel_err(out, ref, M * N);
    CHECKF(e <= 2e-5, "%s: rel err %.3e", what, e);
    /* the packed kernels see exactly the dequantized values: same bits as F32 weights */
    qlin cf = c;
    cf.w = hb_tensor_2d(HB_F32, N, K, wd);
    qlin_body(&cf, outf);
    CHECKF(!memcmp(out, outf, sizeof(float) * (size_t)(M * N)), "%s: differs from the dequantized F32 weight", what);
    free(wf); free(x); free(b); free(y0); free(wq); free(wd); free(ref); free(out); free(outf);
}

/* Mode "q8": Q8_0 (Q4_K) weights x Q8_0 (Q8_K)-quantized activations in integers. */
static void check_q8act(hb_rng *r, hb_dtype t, int64_t M, int64_t N, int64_t K, bool acc) {
    float *wf = rnd(r, N * K, 0.05f), *x = rnd(r, M * K, 1.0f), *b = rnd(r, N, 1.0f), *y0 = rnd(r, M * N, 1.0f);
    hb_tensor w = hb_tensor_2d(t, N, K, NULL);
    void *wq = malloc(hb_tensor_nbytes(&w));
    CHECK(hb_quantize(wq, wf, t, N * K) == 0);
    w.data = wq;
    CHECK(hb__qgemm_applies(&w));
    const size_t bytes = sizeof(float) * (size_t)(M * N);
    float *ggml = malloc(bytes), *exact = malloc(bytes), *out = malloc(bytes), *other = malloc(bytes), *wd = malloc(sizeof(float) * (size_t)(N * K));
    CHECK(hb_matmul_ggml_ref(ggml, x, M, &w) == 0);
    hb_dequantize(wd, wq, t, N * K);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * wd[n * K + k];
            exact[m * N + n] = (float)s;
        }
    char what[128];
    snprintf(what, sizeof what, "q8 linear %s M=%lld N=%lld K=%lld", hb_dtype_name(t), (long long)M, (long long)N, (long long)K);
    qlin c = {x, w, {0}, M, N, y0, false};
    static const char *const kernels[] = {"generic", "avx2", "vnni"};
    for (int k = 0; k < 3; k++) {
        if (hb__qgemm_select(kernels[k]) != 0) { printf("  (q8 kernel %s not available here)\n", kernels[k]); continue; }
        c.b = (hb_tensor){0};
        same_for_threads(qlin_body_nobias, &c, out, bytes, what);
        CHECKF(!memcmp(out, ggml, bytes), "%s: %s kernel differs from ggml's dot products (rel %.3e)", what, kernels[k],
               tl_rel_err(out, ggml, M * N));
        /* 8-bit activations: per-output error ~ step / sqrt(12) over rms(x) ~ 0.7%; normwise over a few dozen
         * outputs (M = 1) it reaches 1.2% on some seeds, so 2e-2 */
        double e = tl_rel_err(out, exact, M * N);
        CHECKF(e <= 2e-2, "%s: rel err %.3e against exact activations", what, e);
        /* bias and accumulate: y0 + (ggml + b) */
        c.b = hb_tensor_1d(HB_F32, N, b);
        c.acc = acc;
        qlin_body(&c, other);
        for (int64_t i = 0; i < M * N; i++) ggml[i] += b[i % N] + (acc ? y0[i] : 0.0f);
        e = tl_rel_err(other, ggml, M * N);
        CHECKF(e <= 1e-6, "%s: %s kernel with bias%s: rel err %.3e", what, kernels[k], acc ? " and accumulate" : "", e);
        for (int64_t i = 0; i < M * N; i++) ggml[i] -= b[i % N] + (acc ? y0[i] : 0.0f);
        CHECK(hb_matmul_ggml_ref(ggml, x, M, &w) == 0);
        c.acc = false;
    }
    free(wf); free(x); free(b); free(y0); free(wq); free(ggml); free(exact); free(out); free(other); free(wd);
}

/* Round trip error of the quantizer: every value within its block's step (a loose bound per format). */
static void check_round_trip(hb_rng *r, hb_dtype t) {
    const int64_t n = 4096;
    float *x = rnd(r, n, 1.0f), *y = malloc(sizeof(float) * n);
    hb_tensor w = hb_tensor_1d(t, n, NULL);
    void *q = malloc(hb_tensor_nbytes(&w));
    CHECK(hb_quantize(q, x, t, n) == 0);
    hb_dequantize(y, q, t, n);
    double e = tl_rel_err(y, x, n);
    const double bound = t == HB_Q8_0 ? 0.01 : t == HB_Q6_K ? 0.03 : t == HB_Q5_K || t == HB_Q5_0 || t == HB_Q5_1 ? 0.06
                        : t == HB_Q2_K ? 0.4 : t == HB_Q3_K ? 0.2 : 0.12;
    CHECKF(e <= bound, "%s round trip: rel err %.3e > %.2f", hb_dtype_name(t), e, bound);
    free(x); free(y); free(q);
}

/* cpu-guard: quantized weights stay host tensors, activations device-side; same bits as the CPU backend. */
static void check_guard(hb_rng *r) {
    const int64_t M = 9, N = 40, K = 512;
    float *wf = rnd(r, N * K, 0.05f), *x = rnd(r, M * K, 1.0f);
    hb_tensor w = hb_tensor_2d(HB_Q4_K, N, K, NULL);
    void *wq = malloc(hb_tensor_nbytes(&w));
    hb_quantize(wq, wf, HB_Q4_K, N * K);
    w.data = wq;
    float *ref = malloc(sizeof(float) * M * N);
    CHECK(hb_linear(ref, x, M, &w, NULL, false) == 0);
    const hb_backend *prev = hb_backend_use(hb_backend_cpu_guard());
    float *xd = tl_dev_upload(x, M * K), *yd = hb_dev_alloc(sizeof(float) * M * N, "y");
    CHECKF(xd && yd && hb_linear(yd, xd, M, &w, NULL, false) == 0, "cpu-guard: %s", hb_last_error());
    if (xd && yd) CHECK(tl_dev_same(yd, ref, M * N));
    hb_dev_free(xd);
    hb_dev_free(yd);
    hb_backend_use(prev);
    free(wf); free(x); free(wq); free(ref);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    const char *kernel = hb__qgemm_kernel();
    CHECK(hb__quant_act_select("f32") == 0);
    for (size_t i = 0; i < sizeof k_qtypes / sizeof k_qtypes[0]; i++) {
        hb_dtype t = k_qtypes[i];
        const int64_t K = hb_dtype_block_elems(t) == 256 ? 768 : 544;
        check_qlinear(&r, t, 1, 37, K, false);
        check_qlinear(&r, t, 3, 300, K, true);
        check_qlinear(&r, t, 41, 300, K, false);
        check_round_trip(&r, t);
    }
    check_qlinear(&r, HB_Q8_0, 800, 70, 96, true);   /* several row tiles, K < KC */
    check_qlinear(&r, HB_Q6_K, 130, 520, 256, false); /* several column tiles */
    check_guard(&r);
    CHECK(hb__quant_act_select("q8") == 0);
    check_guard(&r); /* the integer kernel under cpu-guard */
    check_q8act(&r, HB_Q8_0, 1, 37, 544, true);
    check_q8act(&r, HB_Q8_0, 7, 300, 1056, false); /* K past one packed k-block, N not a multiple of 16 */
    check_q8act(&r, HB_Q8_0, 803, 270, 96, true);  /* several row and column tiles, M not a multiple of 6 */
    check_q8act(&r, HB_Q4_K, 1, 37, 768, true);
    check_q8act(&r, HB_Q4_K, 7, 300, 1280, false); /* K past one packed k-block */
    check_q8act(&r, HB_Q4_K, 803, 270, 256, true);
    CHECK(hb__qgemm_select(kernel) == 0);
    /* refused: a row that is not whole blocks */
    uint8_t blk[34 * 4] = {0};
    hb_tensor bad = hb_tensor_2d(HB_Q8_0, 2, 64, blk);
    bad.shape[1] = 48;
    float xo[96], yo[4];
    for (int i = 0; i < 96; i++) xo[i] = 1.0f;
    CHECK(hb_linear(yo, xo, 2, &bad, NULL, false) != 0 && strstr(hb_last_error(), "whole blocks"));
    return tl_done();
}
