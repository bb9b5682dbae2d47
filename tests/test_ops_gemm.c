/* ops: hb_linear (F32/BF16/F16 weights, strided weights, bias dtypes, accumulate), hb_linear_ep (its epilogues GELU,
 * add, gated add with modulation groups) and hb_gemm_f32 against a double-precision reference; bitwise identity
 * across 1/2/3 threads, and hb_linear_ep bitwise equal to hb_linear followed by hb_gelu_tanh / hb_add /
 * hb_gated_add (also for Q8_0 weights). Tolerance: normwise 2e-5 (f32 sums; GELU's exp ~1 ulp). */
#include "test_ops_common.h"
#include "ops/ops_internal.h"

typedef struct {
    float *x; hb_tensor w, b; bool has_b, acc; int64_t M; float *y0; int64_t N;
} lin_ctx;

static void lin_body(void *vc, float *out) {
    lin_ctx *c = vc;
    memcpy(out, c->y0, sizeof(float) * (size_t)(c->M * c->N));
    int rc = hb_linear(out, c->x, c->M, &c->w, c->has_b ? &c->b : NULL, c->acc);
    CHECKF(rc == 0, "hb_linear failed: %s", hb_last_error());
}

static void check_linear(hb_rng *r, int64_t M, int64_t N, int64_t K, hb_dtype wt, hb_dtype bt, bool has_b, bool acc,
                         int64_t row_pad) {
    int64_t ldw = K + row_pad;
    float *x = rnd(r, M * K, 1.0f), *wv = rnd(r, N * ldw, 0.5f), *bv = rnd(r, N, 1.0f), *y0 = rnd(r, M * N, 1.0f);
    void *ws = to_dtype(wv, N * ldw, wt), *bs = to_dtype(bv, N, bt);
    lin_ctx c = {x, hb_tensor_2d(wt, N, ldw, ws), hb_tensor_1d(bt, N, bs), has_b, acc, M, y0, N};
    hb_tensor full = c.w;
    if (row_pad) hb_tensor_narrow(&full, 1, 0, K, &c.w);
    float *ref = malloc(sizeof(float) * (size_t)(M * N)), *out = malloc(sizeof(float) * (size_t)(M * N));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * wv[n * ldw + k];
            if (has_b) s += bv[n];
            if (acc) s += y0[m * N + n];
            ref[m * N + n] = (float)s;
        }
    char what[160];
    snprintf(what, sizeof what, "linear M=%lld N=%lld K=%lld w=%s b=%s acc=%d pad=%lld", (long long)M, (long long)N,
             (long long)K, hb_dtype_name(wt), has_b ? hb_dtype_name(bt) : "none", acc, (long long)row_pad);
    same_for_threads(lin_body, &c, out, sizeof(float) * (size_t)(M * N), what);
    double e = tl_rel_err(out, ref, M * N);
    CHECKF(e <= 2e-5, "%s: rel err %.3e", what, e);
    free(x); free(wv); free(bv); free(y0); free(ws); free(bs); free(ref); free(out);
}

typedef struct {
    float *x, *y0; hb_tensor w, b; hb_epilogue ep; int64_t M, N;
} ep_ctx;

static void ep_body(void *vc, float *out) {
    ep_ctx *c = vc;
    memcpy(out, c->y0, sizeof(float) * (size_t)(c->M * c->N));
    int rc = hb_linear_ep(out, c->x, c->M, &c->w, &c->b, c->ep);
    CHECKF(rc == 0, "hb_linear_ep failed: %s", hb_last_error());
}

/* The composed ops hb_linear_ep stands for (gate rows shifted by row0: row0 a multiple of rows_per_group). */
static void ep_composed(ep_ctx *c, float *out) {
    int64_t M = c->M, N = c->N;
    float *p = malloc(sizeof(float) * (size_t)(M * N));
    memcpy(out, c->y0, sizeof(float) * (size_t)(M * N));
    CHECK(hb_linear(p, c->x, M, &c->w, &c->b, false) == 0);
    hb_modgroups g = c->ep.g;
    if (c->ep.op == HB_EPI_NONE) memcpy(out, p, sizeof(float) * (size_t)(M * N));
    if (c->ep.op == HB_EPI_GELU_TANH) hb_gelu_tanh(out, p, M * N);
    if (c->ep.op == HB_EPI_ADD) hb_add(out, out, p, M * N);
    if (c->ep.op == HB_EPI_GATED_ADD)
        hb_gated_add(out, p, M, N, c->ep.gate + (g.rows_per_group ? c->ep.row0 / g.rows_per_group : 0) * g.group_stride, g);
    free(p);
}

/* hb_linear_ep on M x N x K, weights wt, modulation groups of rpg rows (0: one) starting at row0. */
static void check_linear_ep(hb_rng *r, int64_t M, int64_t N, int64_t K, hb_dtype wt, hb_epilogue_op op, int64_t rpg,
                            int64_t row0) {
    const int64_t gs = N + 3, G = (row0 + M) / (rpg > 0 ? rpg : M + row0) + 1;
    float *x = rnd(r, M * K, 1.0f), *wv = rnd(r, N * K, 0.5f), *bv = rnd(r, N, 1.0f), *y0 = rnd(r, M * N, 1.0f);
    float *gate = rnd(r, G * gs, 1.0f);
    void *ws = hb_dtype_is_quant(wt) ? malloc(hb_dtype_bytes(wt, N * K)) : to_dtype(wv, N * K, wt);
    if (hb_dtype_is_quant(wt)) CHECK(hb_quantize(ws, wv, wt, N * K) == 0);
    ep_ctx c = {x, y0, hb_tensor_2d(wt, N, K, ws), hb_tensor_1d(HB_F32, N, bv), {op, gate, {rpg, gs}, row0}, M, N};
    float *out = malloc(sizeof(float) * (size_t)(M * N)), *cmp = malloc(sizeof(float) * (size_t)(M * N));
    char what[160];
    snprintf(what, sizeof what, "linear_ep op=%d M=%lld N=%lld K=%lld w=%s groups of %lld from row %lld", (int)op,
             (long long)M, (long long)N, (long long)K, hb_dtype_name(wt), (long long)rpg, (long long)row0);
    same_for_threads(ep_body, &c, out, sizeof(float) * (size_t)(M * N), what);
    if (!hb_dtype_is_quant(wt)) { /* quantized activations: the integer kernels' error is test_ops_quant's */
        float *ref = malloc(sizeof(float) * (size_t)(M * N));
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double p = bv[n], y = y0[m * N + n];
                for (int64_t k = 0; k < K; k++) p += (double)x[m * K + k] * wv[n * K + k];
                double gt = gate[(rpg > 0 ? (row0 + m) / rpg : 0) * gs + n];
                double gelu = 0.5 * p * (1.0 + tanh(0.7978845608028654 * (p + 0.044715 * p * p * p)));
                ref[m * N + n] = (float)(op == HB_EPI_GELU_TANH ? gelu : op == HB_EPI_ADD ? y + p
                                         : op == HB_EPI_GATED_ADD ? y + p * gt : p);
            }
        double e = tl_rel_err(out, ref, M * N);
        CHECKF(e <= 2e-5, "%s: rel err %.3e", what, e);
        free(ref);
    }
    if (rpg == 0 || row0 % rpg == 0) {
        ep_composed(&c, cmp);
        CHECKF(!memcmp(out, cmp, sizeof(float) * (size_t)(M * N)), "%s: differs from the composed ops", what);
    }
    free(x); free(wv); free(bv); free(y0); free(gate); free(ws); free(out); free(cmp);
}

typedef struct { float *A, *B, *C0; int64_t M, N, K, lda, ldb, ldc; bool acc; } gemm_ctx;

static void gemm_body(void *vc, float *out) {
    gemm_ctx *c = vc;
    memcpy(out, c->C0, sizeof(float) * (size_t)(c->M * c->ldc));
    hb_gemm_f32(out, c->ldc, c->A, c->lda, c->B, c->ldb, c->M, c->N, c->K, c->acc);
}

static void check_gemm(hb_rng *r, int64_t M, int64_t N, int64_t K, bool acc) {
    gemm_ctx c = {0};
    c.M = M; c.N = N; c.K = K; c.lda = K + 3; c.ldb = N + 5; c.ldc = N + 2; c.acc = acc;
    c.A = rnd(r, M * c.lda, 1.0f); c.B = rnd(r, K * c.ldb, 1.0f); c.C0 = rnd(r, M * c.ldc, 1.0f);
    float *ref = malloc(sizeof(float) * (size_t)(M * c.ldc)), *out = malloc(sizeof(float) * (size_t)(M * c.ldc));
    memcpy(ref, c.C0, sizeof(float) * (size_t)(M * c.ldc));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = acc ? c.C0[m * c.ldc + n] : 0;
            for (int64_t k = 0; k < K; k++) s += (double)c.A[m * c.lda + k] * c.B[k * c.ldb + n];
            ref[m * c.ldc + n] = (float)s;
        }
    char what[128];
    snprintf(what, sizeof what, "gemm_f32 M=%lld N=%lld K=%lld acc=%d", (long long)M, (long long)N, (long long)K, acc);
    same_for_threads(gemm_body, &c, out, sizeof(float) * (size_t)(M * c.ldc), what);
    CHECKF(tl_rel_err(out, ref, M * c.ldc) <= 2e-5, "%s: rel err %.3e", what, tl_rel_err(out, ref, M * c.ldc));
    /* the padding between rows is untouched */
    bool pad_ok = true;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = N; n < c.ldc; n++) pad_ok &= out[m * c.ldc + n] == c.C0[m * c.ldc + n];
    CHECKF(pad_ok, "%s: wrote outside the output columns", what);
    free(c.A); free(c.B); free(c.C0); free(ref); free(out);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    const int64_t shapes[][3] = {{1, 1, 1},   {1, 37, 300},  {3, 130, 64},  {4, 5, 1},    {5, 17, 33},
                                 {17, 129, 5}, {64, 64, 64}, {130, 300, 97}, {600, 260, 70}, {33, 1, 513}};
    int ns = (int)(sizeof shapes / sizeof shapes[0]);
    /* every GEMM code path this machine has (the default one last) */
    const char *def = hb__gemm_path(), *paths[4] = {"generic", "avx2", "openblas", def};
    for (int pi = 0; pi < 4; pi++) {
        if (hb__gemm_select(paths[pi]) != 0) { fprintf(stderr, "GEMM path %s not available here\n", paths[pi]); continue; }
        fprintf(stderr, "GEMM path %s\n", hb__gemm_path());
        for (int s = 0; s < ns; s++)
            for (int d = 0; d < 3; d++) {
                int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                check_linear(&r, M, N, K, k_wdtypes[d], k_wdtypes[(d + s) % 3], (s + d) % 4 != 3, (s + d) % 3 == 1, 0);
            }
        check_linear(&r, 9, 70, 45, HB_BF16, HB_F32, true, false, 11); /* strided (narrowed) weight */
        check_linear(&r, 2, 70, 45, HB_F16, HB_BF16, true, true, 3);
        check_linear(&r, 1100, 40, 24, HB_F32, HB_F32, true, false, 0);
        check_linear(&r, 1700, 300, 300, HB_BF16, HB_BF16, false, true, 0); /* several row tiles and K blocks */
        const int64_t gshapes[][3] = {{1, 1, 1}, {7, 300, 1}, {70, 20, 129}, {300, 260, 48}, {2, 5, 700}};
        for (int s = 0; s < 5; s++) check_gemm(&r, gshapes[s][0], gshapes[s][1], gshapes[s][2], s % 2 == 1);
        /* epilogues: small M (dot products), odd tiles, K = 0, several row and column tiles, Q8_0 weights */
        const int64_t eshapes[][3] = {{2, 37, 45}, {7, 33, 70}, {130, 300, 97}, {5, 17, 0}, {700, 300, 40}};
        for (int s = 0; s < 5; s++)
            for (int op = HB_EPI_NONE; op <= HB_EPI_GATED_ADD; op++)
                check_linear_ep(&r, eshapes[s][0], eshapes[s][1], eshapes[s][2], k_wdtypes[(s + op) % 3],
                                (hb_epilogue_op)op, (s + op) % 3 == 0 ? 0 : 1 + s * 3, s % 2 ? 0 : 6 * s);
        check_linear_ep(&r, 61, 50, 64, HB_Q8_0, HB_EPI_GELU_TANH, 0, 0);
        check_linear_ep(&r, 61, 50, 64, HB_Q8_0, HB_EPI_GATED_ADD, 7, 14);
        check_linear_ep(&r, 9, 70, 64, HB_Q4_0, HB_EPI_ADD, 0, 0);
    }

    /* bad input: one clear error, no crash */
    float buf[16] = {0};
    hb_tensor w3 = hb_tensor_3d(HB_F32, 2, 2, 2, buf), wi = hb_tensor_2d(HB_I32, 2, 2, buf);
    hb_tensor w2 = hb_tensor_2d(HB_F32, 2, 2, buf), b3 = hb_tensor_1d(HB_F32, 3, buf);
    CHECK(hb_linear(buf, buf, 1, &w3, NULL, false) != 0 && strstr(hb_last_error(), "2-D"));
    CHECK(hb_linear(buf, buf, 1, &wi, NULL, false) != 0 && strstr(hb_last_error(), "I32"));
    CHECK(hb_linear(buf, buf, 1, &w2, &b3, false) != 0 && strstr(hb_last_error(), "bias"));
    hb_tensor wt = hb_tensor_2d(HB_F32, 2, 2, buf);
    wt.stride[0] = 1; wt.stride[1] = 2; /* a transposed view: rows not contiguous */
    CHECK(hb_linear(buf, buf, 1, &wt, NULL, false) != 0 && strstr(hb_last_error(), "contiguous"));

    hb_epilogue bad = {HB_EPI_GATED_ADD, NULL, {1, 2}, 0};
    CHECK(hb_linear_ep(buf, buf + 4, 2, &w2, NULL, bad) != 0 && strstr(hb_last_error(), "gate"));
    bad.op = (hb_epilogue_op)9;
    CHECK(hb_linear_ep(buf, buf + 4, 2, &w2, NULL, bad) != 0 && strstr(hb_last_error(), "epilogue"));

    /* the backend table and the kernel name */
    const hb_backend *be = hb_backend_cpu();
    CHECK(be && be == hb_backend_current() && !strcmp(be->name, "cpu"));
    const char *kn = hb_cpu_kernel_name();
    CHECK(kn && (!strcmp(kn, "avx2") || !strcmp(kn, "generic") || !strcmp(kn, "openblas")));
    hb_threads_shutdown();
    return tl_done();
}
