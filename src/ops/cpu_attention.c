/* Attention with an online softmax, flash-attention style: for each (head, block of queries) the keys are
 * visited in blocks of BK; S = Q K^T and O += P V are micro-GEMMs, the running max / sum rescale O. Memory is
 * O(NSUB*BQ_MAX*(BK+d)) per task; no Lq x Lk matrix. Each (head, super-block of queries) is one task with a fixed
 * key order, and a query row's result depends only on its own data, so results are identical for any thread
 * count. */
#include "ops/ops_internal.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/simd_avx2.h"

#ifndef BQ_MAX
#define BQ_MAX 198 /* the most queries per block; blocks are a multiple of 6 rows */
#endif
#ifndef BK
#define BK 128
#endif

/* Row helpers: max of a row; in-place exp(s - m) returning the sum (8 lanes summed in a fixed order). */
static float row_max_generic(const float *s, int64_t n, float m) {
    for (int64_t c = 0; c < n; c++) m = s[c] > m ? s[c] : m;
    return m;
}
static float row_exp_generic(float *s, int64_t n, float m) {
    float sum = 0;
    for (int64_t c = 0; c < n; c++) { s[c] = expf(s[c] - m); sum += s[c]; }
    return sum;
}

#ifdef HB_X86
__attribute__((target("avx2,fma"))) static float row_max_avx2(const float *s, int64_t n, float m) {
    __m256 v = _mm256_set1_ps(m);
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) v = _mm256_max_ps(v, _mm256_loadu_ps(s + c));
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int i = 0; i < 8; i++) m = t[i] > m ? t[i] : m;
    for (; c < n; c++) m = s[c] > m ? s[c] : m;
    return m;
}

__attribute__((target("avx2,fma"))) static float row_exp_avx2(float *s, int64_t n, float m) {
    __m256 mv = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + c), mv));
        _mm256_storeu_ps(s + c, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (c < n) { /* tail through a padded vector: same code path for every element */
        float t[8] = {0};
        int64_t r = n - c;
        for (int64_t i = 0; i < r; i++) t[i] = s[c + i];
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(t), mv));
        __m256 keep = _mm256_cmp_ps(_mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0), _mm256_set1_ps((float)r), _CMP_LT_OQ);
        e = _mm256_and_ps(e, keep);
        _mm256_storeu_ps(t, e);
        for (int64_t i = 0; i < r; i++) s[c + i] = t[i];
        acc = _mm256_add_ps(acc, e);
    }
    float t[8];
    _mm256_storeu_ps(t, acc);
    return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}
#endif

/* Rows of K, V, Q and the output are a whole hidden width apart: each one starts a new page, which the hardware
 * prefetcher does not cross. Fetching the row PF_AHEAD rows on overlaps those misses (and their page walks). */
#define PF_AHEAD 8
static inline void prefetch_row(const float *row, int d) {
#ifdef HB_X86
    for (int c = 0; c < d; c += 16) _mm_prefetch((const char *)(row + c), _MM_HINT_T0);
#else
    (void)row; (void)d;
#endif
}

/* K^T and V blocks packed as the GEMM's pre-packed B operand (ops_internal.h: strips of HB_GEMM_NR columns,
 * element (k, s + j) at dst[s*K + k*NR + j], columns past N zero). Written here rather than through
 * hb__gemm_pack_b: the layout is fixed, and these loops are ~1% of a block's work. */
static void pack_kt(float *dst, const float *kb, int64_t ks, int64_t nk, int d) {
    const int NRp = HB_GEMM_NR;
    for (int64_t s = 0; s < nk; s += NRp) {
        float *ds = dst + s * d;
        int64_t w = nk - s < NRp ? nk - s : NRp;
        for (int64_t j = 0; j < w; j++) {
            const float *kr = kb + (s + j) * ks;
            if (s + j + PF_AHEAD < nk) prefetch_row(kr + PF_AHEAD * ks, d);
            for (int c = 0; c < d; c++) ds[c * NRp + j] = kr[c];
        }
        for (int64_t j = w; j < NRp; j++)
            for (int c = 0; c < d; c++) ds[c * NRp + j] = 0.0f;
    }
}
static void pack_v(float *dst, const float *vb, int64_t vs, int64_t nk, int d) {
    const int NRp = HB_GEMM_NR;
    for (int64_t k = 0; k < nk; k++) { /* row by row: each row of V is read once */
        const float *vr = vb + k * vs;
        if (k + PF_AHEAD < nk) prefetch_row(vr + PF_AHEAD * vs, d);
        for (int s = 0; s < d; s += NRp) {
            float *ds = dst + (int64_t)s * nk + k * NRp;
            int w = d - s < NRp ? d - s : NRp;
            for (int j = 0; j < NRp; j++) ds[j] = j < w ? vr[s + j] : 0.0f;
        }
    }
}

/* One task = (head, one super-block of queries split into up to NSUB blocks of at most BQ_MAX). For each key block,
 * K^T and V are packed once (head_dim <= 256) and used by every query block of the task; each query block keeps
 * its own running max / sum / output. Block sizes come from Lq alone (every super-block gets an equal share, so no
 * task is a small remainder that packs all of K and V for a few queries), and a query row's result does not
 * depend on the block it is in. */
#ifndef NSUB
#define NSUB 8
#endif
typedef struct {
    const hb_attention_args *a;
    int64_t nsb, qper, bq; /* super-blocks per head, queries per super-block, queries per block */
    bool avx2;
    int err;
} attn_job;

/* Scores -> probabilities for rows [0, nq) of one query block against keys [k0, k0+nk): adds bias and mask,
 * updates the running max / sum, rescales the output rows. */
static void softmax_rows(const attn_job *j, int h, int64_t q0, int64_t nq, int64_t k0, int64_t nk, float *s, float *o,
                         float *mx, float *l) {
    const hb_attention_args *a = j->a;
    int d = a->head_dim;
    float (*rmax)(const float *, int64_t, float) = row_max_generic;
    float (*rexp)(float *, int64_t, float) = row_exp_generic;
#ifdef HB_X86
    if (j->avx2) { rmax = row_max_avx2; rexp = row_exp_avx2; }
#endif
    for (int64_t i = 0; i < nq; i++) {
        float *si = s + i * nk;
        if (a->bias) {
            const float *bi = a->bias + ((int64_t)h * a->lq + q0 + i) * a->lk + k0;
            for (int64_t c = 0; c < nk; c++) si[c] += bi[c];
        }
        if (a->key_mask)
            for (int64_t c = 0; c < nk; c++)
                if (!a->key_mask[k0 + c]) si[c] += -FLT_MAX;
        float m = rmax(si, nk, mx[i]);
        if (m == -INFINITY) { /* every score so far is -inf: contributes nothing */
            memset(si, 0, sizeof(float) * (size_t)nk);
            continue;
        }
        float corr = expf(mx[i] - m), sum = rexp(si, nk, m);
        l[i] = l[i] * corr + sum;
        mx[i] = m;
        if (corr != 1.0f)
            for (int c = 0; c < d; c++) o[i * d + c] *= corr;
    }
}

static void attn_blocks(void *ctx, int64_t b, int64_t e) {
    attn_job *j = ctx;
    const hb_attention_args *a = j->a;
    int d = a->head_dim;
    int64_t bq = j->bq;
    bool pre = d <= 256; /* K^T and V blocks fit one packed GEMM block */
    size_t qpn = (hb__gemm_pack_a_size(bq, d) + 15) / 16 * 16;
    size_t kpn = pre ? (hb__gemm_pack_b_size(BK, d) + 15) / 16 * 16 : 0, vpn = pre ? (hb__gemm_pack_b_size(d, BK) + 15) / 16 * 16 : 0;
    size_t total = NSUB * qpn + (size_t)bq * d + (size_t)NSUB * bq * d + (size_t)bq * BK + 2 * NSUB * bq + kpn + vpn;
    float *buf = hb_malloc(sizeof(float) * total, "attention block");
    if (!buf) { j->err = 1; return; }
    float *qp = buf, *qs = qp + NSUB * qpn, *o = qs + (size_t)bq * d, *s = o + (size_t)NSUB * bq * d;
    float *kp = s + (size_t)bq * BK, *vp = kp + kpn, *mx = vp + vpn, *l = mx + NSUB * bq;
    for (int64_t t = b; t < e; t++) {
        int h = (int)(t / j->nsb);
        int64_t qb0 = (t % j->nsb) * j->qper, qend = qb0 + j->qper < a->lq ? qb0 + j->qper : a->lq;
        int nsub = 0;
        int64_t nqs[NSUB];
        for (int sb = 0; sb < NSUB && qb0 + sb * bq < qend; sb++, nsub++) {
            int64_t q0 = qb0 + sb * bq, nq = qend - q0 < bq ? qend - q0 : bq;
            nqs[sb] = nq;
            for (int64_t i = 0; i < nq; i++) {
                const float *q = a->q + (q0 + i) * a->q_stride + (int64_t)h * d;
                if (i + PF_AHEAD < nq) prefetch_row(q + PF_AHEAD * a->q_stride, d);
                for (int c = 0; c < d; c++) qs[i * d + c] = q[c] * a->scale;
                mx[sb * bq + i] = -INFINITY;
                l[sb * bq + i] = 0;
            }
            memset(o + (size_t)sb * bq * d, 0, sizeof(float) * (size_t)nq * d);
            hb__gemm_pack_a(qp + sb * qpn, qs, d, nq, d); /* the A operand of every S = Q K^T below */
        }
        for (int64_t k0 = 0; k0 < a->lk; k0 += BK) {
            int64_t nk = a->lk - k0 < BK ? a->lk - k0 : BK;
            const float *kb = a->k + k0 * a->k_stride + (int64_t)h * d, *vb = a->v + k0 * a->v_stride + (int64_t)h * d;
            if (pre) {
                pack_kt(kp, kb, a->k_stride, nk, d);
                pack_v(vp, vb, a->v_stride, nk, d);
            }
            for (int sb = 0; sb < nsub; sb++) {
                int64_t q0 = qb0 + sb * bq, nq = nqs[sb];
                float *os = o + (size_t)sb * bq * d;
                if (pre) hb__gemm_serial_pb(s, nk, NULL, 0, qp + sb * qpn, kp, nq, nk, d, false);
                else hb__gemm_serial_pa(s, nk, qp + sb * qpn, kb, a->k_stride, true, nq, nk, d, false);
                softmax_rows(j, h, q0, nq, k0, nk, s, os, mx + sb * bq, l + sb * bq);
                if (pre) hb__gemm_serial_pb(os, d, s, nk, NULL, vp, nq, d, nk, true);
                else hb__gemm_serial(os, d, s, nk, vb, a->v_stride, false, nq, d, nk, true);
            }
        }
        for (int sb = 0; sb < nsub; sb++)
            for (int64_t i = 0; i < nqs[sb]; i++) {
                float *out = a->out + (qb0 + sb * bq + i) * a->o_stride + (int64_t)h * d;
                if (i + PF_AHEAD < nqs[sb]) prefetch_row(out + PF_AHEAD * a->o_stride, d);
                float li = l[sb * bq + i], inv = li > 0 ? 1.0f / li : 0.0f;
                for (int c = 0; c < d; c++) out[c] = o[((size_t)sb * bq + i) * d + c] * inv;
            }
    }
    hb_free(buf);
}

void hb_cpu_attention(const hb_attention_args *a) {
    if (!a || a->lq <= 0 || a->heads <= 0 || a->head_dim <= 0) return;
    if (a->lk <= 0) {
        for (int64_t i = 0; i < a->lq; i++) memset(a->out + i * a->o_stride, 0, sizeof(float) * (size_t)a->heads * a->head_dim);
        return;
    }
    /* equal super-blocks of at most NSUB * BQ_MAX queries; blocks a multiple of the GEMM's 6-row strips */
    attn_job j = {a, (a->lq + NSUB * BQ_MAX - 1) / (NSUB * BQ_MAX), 0, 0, false, 0};
    j.qper = (a->lq + j.nsb - 1) / j.nsb;
    j.bq = ((j.qper + NSUB - 1) / NSUB + 5) / 6 * 6;
    j.nsb = (a->lq + j.qper - 1) / j.qper;
#ifdef HB_X86
    j.avx2 = hb__simd_avx2();
#endif
    hb_parallel_for(j.nsb * a->heads, 1, attn_blocks, &j);
    if (j.err) hb__cpu_fail("hb_attention: out of memory");
}
