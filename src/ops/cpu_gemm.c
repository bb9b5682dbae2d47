/* GEMM: hb_linear (f32 activations x F32/BF16/F16 weights), hb_gemm_f32, and the serial GEMM used inside other
 * kernels. Work is split over fixed output tiles chosen from the shapes only (never over K), so every element is
 * computed by one task in one fixed order: bitwise-identical output for any thread count. */
#include "ops/ops_internal.h"
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#ifdef HB_HAVE_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
#endif

/* ---------- weight conversion ---------- */

void hb__weight_rows_f32(const hb_tensor *w, int64_t n0, int64_t rows, int64_t k0, int64_t kn, float *dst, int64_t ld) {
    size_t es = hb_dtype_size(w->dtype);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *src = (const uint8_t *)w->data + ((n0 + r) * w->stride[0] + k0 * w->stride[1]) * (int64_t)es;
        if (w->stride[1] == 1) {
            hb_convert_to_f32(dst + r * ld, src, w->dtype, (size_t)kn);
        } else {
            for (int64_t k = 0; k < kn; k++)
                hb_convert_to_f32(dst + r * ld + k, src + k * w->stride[1] * (int64_t)es, w->dtype, 1);
        }
    }
}

float *hb__vec_f32(const hb_tensor *t, int64_t n) {
    if (!t) return NULL;
    float *v = hb_malloc((size_t)(n > 0 ? n : 1) * sizeof(float), "parameter vector");
    if (!v) return NULL;
    /* [n] or [n, 1, 1, ...] or [1, n]: the stride of the one dimension longer than 1 */
    int64_t st = 1;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 1) st = t->stride[d];
    size_t es = hb_dtype_size(t->dtype);
    if (st == 1) hb_convert_to_f32(v, t->data, t->dtype, (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) hb_convert_to_f32(v + i, (const uint8_t *)t->data + i * st * (int64_t)es, t->dtype, 1);
    return v;
}

/* ---------- serial GEMM ---------- */

#ifdef HB_HAVE_OPENBLAS
static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { openblas_set_num_threads(1); }
#endif

static void gemm_naive(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, bool bt,
                       int64_t M, int64_t N, int64_t K, bool acc) {
    for (int64_t m = 0; m < M; m++) {
        float *c = C + m * ldc;
        if (!acc) memset(c, 0, (size_t)N * sizeof(float));
        const float *a = A + m * lda;
        if (bt) {
            for (int64_t n = 0; n < N; n++) {
                const float *b = B + n * ldb;
                float s[8] = {0};
                int64_t k = 0;
                for (; k + 8 <= K; k += 8)
                    for (int j = 0; j < 8; j++) s[j] += a[k + j] * b[k + j];
                for (; k < K; k++) s[0] += a[k] * b[k];
                c[n] += ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
            }
        } else {
            for (int64_t k = 0; k < K; k++) {
                float av = a[k];
                const float *b = B + k * ldb;
                for (int64_t n = 0; n < N; n++) c[n] += av * b[n];
            }
        }
    }
}

void hb__gemm_serial(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, bool b_trans,
                     int64_t M, int64_t N, int64_t K, bool accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t m = 0; m < M; m++) memset(C + m * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
#ifdef HB_HAVE_OPENBLAS
    pthread_once(&g_blas_once, blas_init);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
                (int)lda, B, (int)ldb, accumulate ? 1.0f : 0.0f, C, (int)ldc);
#else
    gemm_naive(C, ldc, A, lda, B, ldb, b_trans, M, N, K, accumulate);
#endif
}

const char *hb__gemm_path(void) {
#ifdef HB_HAVE_OPENBLAS
    return "openblas";
#else
    return "generic";
#endif
}

/* ---------- hb_gemm_f32 ---------- */

typedef struct {
    float *C; const float *A, *B;
    int64_t ldc, lda, ldb, M, N, K, mb, nb, ntn;
    bool acc;
} gemm_job;

static void gemm_tile(void *ctx, int64_t b, int64_t e) {
    const gemm_job *j = ctx;
    for (int64_t t = b; t < e; t++) {
        int64_t tm = t / j->ntn, tn = t % j->ntn;
        int64_t m0 = tm * j->mb, n0 = tn * j->nb;
        int64_t mm = j->M - m0 < j->mb ? j->M - m0 : j->mb, nn = j->N - n0 < j->nb ? j->N - n0 : j->nb;
        hb__gemm_serial(j->C + m0 * j->ldc + n0, j->ldc, j->A + m0 * j->lda, j->lda, j->B + n0, j->ldb, false, mm, nn,
                        j->K, j->acc);
    }
}

void hb_gemm_f32(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool accumulate) {
    if (M <= 0 || N <= 0) return;
    gemm_job j = {C, A, B, ldc, lda, ldb, M, N, K, 256, 256, 0, accumulate};
    j.ntn = (N + j.nb - 1) / j.nb;
    int64_t ntm = (M + j.mb - 1) / j.mb;
    hb_parallel_for(ntm * j.ntn, 1, gemm_tile, &j);
}

/* ---------- hb_linear ---------- */

typedef struct {
    float *y; const float *x; const hb_tensor *w; const float *bias;
    int64_t M, N, K, nb, mb, ntm;
    bool acc;
    int err;
} linear_job;

/* Small M: one W row at a time, converted once, dotted with every x row. */
static void linear_rows(void *ctx, int64_t b, int64_t e) {
    linear_job *j = ctx;
    float *wr = NULL;
    bool direct = j->w->dtype == HB_F32 && j->w->stride[1] == 1;
    if (!direct) {
        wr = malloc((size_t)j->K * sizeof(float));
        if (!wr) { j->err = 1; return; }
    }
    for (int64_t n = b; n < e; n++) {
        const float *w = direct ? (const float *)j->w->data + n * j->w->stride[0] : wr;
        if (!direct) hb__weight_rows_f32(j->w, n, 1, 0, j->K, wr, j->K);
        for (int64_t m = 0; m < j->M; m++) {
            float d;
            gemm_naive(&d, 1, j->x + m * j->K, j->K, w, j->K, true, 1, 1, j->K, false);
            if (j->bias) d += j->bias[n];
            float *yo = j->y + m * j->N + n;
            *yo = j->acc ? *yo + d : d;
        }
    }
    free(wr);
}

static void linear_tiles(void *ctx, int64_t b, int64_t e) {
    linear_job *j = ctx;
    bool direct = j->w->dtype == HB_F32 && j->w->stride[1] == 1;
    float *panel = NULL;
    if (!direct) {
        panel = malloc((size_t)(j->nb * j->K) * sizeof(float));
        if (!panel) { j->err = 1; return; }
    }
    int64_t cur_n = -1;
    for (int64_t t = b; t < e; t++) {
        int64_t tn = t / j->ntm, tm = t % j->ntm;
        int64_t n0 = tn * j->nb, m0 = tm * j->mb;
        int64_t nn = j->N - n0 < j->nb ? j->N - n0 : j->nb, mm = j->M - m0 < j->mb ? j->M - m0 : j->mb;
        const float *wp;
        int64_t ldw;
        if (direct) { wp = (const float *)j->w->data + n0 * j->w->stride[0]; ldw = j->w->stride[0]; }
        else {
            if (cur_n != tn) { hb__weight_rows_f32(j->w, n0, nn, 0, j->K, panel, j->K); cur_n = tn; }
            wp = panel; ldw = j->K;
        }
        float *yt = j->y + m0 * j->N + n0;
        hb__gemm_serial(yt, j->N, j->x + m0 * j->K, j->K, wp, ldw, true, mm, nn, j->K, j->acc);
        if (j->bias)
            for (int64_t m = 0; m < mm; m++)
                for (int64_t n = 0; n < nn; n++) yt[m * j->N + n] += j->bias[n0 + n];
    }
    free(panel);
}

int hb_linear(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, bool accumulate) {
    if (!w || w->ndim != 2) return hb_error("hb_linear: weight must be a 2-D tensor");
    if (w->dtype != HB_F32 && w->dtype != HB_BF16 && w->dtype != HB_F16)
        return hb_error("hb_linear: weight dtype %s not supported (F32, BF16, F16)", hb_dtype_name(w->dtype));
    int64_t N = w->shape[0], K = w->shape[1];
    if (b && (b->ndim != 1 || b->shape[0] != N || (b->dtype != HB_F32 && b->dtype != HB_BF16 && b->dtype != HB_F16)))
        return hb_error("hb_linear: bias must be a 1-D float tensor of %lld elements", (long long)N);
    if (M <= 0 || N <= 0) return 0;
    float *bias = NULL;
    if (b && !(bias = hb__vec_f32(b, N))) return -1;
    linear_job j = {y, x, w, bias, M, N, K, 0, 0, 0, accumulate, 0};
    if (M <= 4) {
        hb_parallel_for(N, 16, linear_rows, &j);
    } else {
        j.nb = 128;
        j.mb = 512;
        j.ntm = (M + j.mb - 1) / j.mb;
        int64_t ntn = (N + j.nb - 1) / j.nb;
        hb_parallel_for(ntn * j.ntm, 1, linear_tiles, &j);
    }
    hb_free(bias);
    if (j.err) return hb_error("hb_linear: out of memory for a weight panel");
    return 0;
}
