/* ops: hb_linear (F32/BF16/F16 weights, strided weights, bias dtypes, accumulate) and hb_gemm_f32 against a
 * double-precision reference; bitwise identity across 1/2/3 threads. Tolerance: normwise 2e-5 (f32 sums). */
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

    /* the backend table and the kernel name */
    const hb_backend *be = hb_backend_cpu();
    CHECK(be && be == hb_backend_current() && !strcmp(be->name, "cpu"));
    const char *kn = hb_cpu_kernel_name();
    CHECK(kn && (!strcmp(kn, "avx2") || !strcmp(kn, "generic") || !strcmp(kn, "openblas")));
    hb_threads_shutdown();
    return tl_done();
}
