/* Attention with an online softmax, flash-attention style: for each (head, block of BQ queries) the keys are
 * visited in blocks of BK; S = Q K^T and O += P V are micro-GEMMs, the running max / sum rescale O. Memory is
 * O(BQ*(BK+d)) per task; no Lq x Lk matrix. Each (head, query block) is one task with a fixed key order, so
 * results are identical for any thread count. */
#include "ops/ops_internal.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/simd_avx2.h"

#ifndef BQ
#define BQ 192
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

/* One task = (head, up to NSUB blocks of BQ queries). For each key block, K^T and V are packed once (head_dim <=
 * 256) and used by every query block of the task; each query block keeps its own running max / sum / output. */
#define NSUB 4
typedef struct { const hb_attention_args *a; int64_t nsb; int err; } attn_job;

static void attn_blocks(void *ctx, int64_t b, int64_t e) {
    attn_job *j = ctx;
    const hb_attention_args *a = j->a;
    int d = a->head_dim;
    float (*rmax)(const float *, int64_t, float) = row_max_generic;
    float (*rexp)(float *, int64_t, float) = row_exp_generic;
#ifdef HB_X86
    if (hb__simd_avx2()) { rmax = row_max_avx2; rexp = row_exp_avx2; }
#endif
    bool pre = d <= 256; /* K^T and V blocks fit one packed GEMM block */
    size_t qpn = (hb__gemm_pack_a_size(BQ, d) + 15) / 16 * 16;
    size_t kpn = pre ? (hb__gemm_pack_b_size(BK, d) + 15) / 16 * 16 : 0, vpn = pre ? (hb__gemm_pack_b_size(d, BK) + 15) / 16 * 16 : 0;
    size_t total = NSUB * qpn + (size_t)BQ * d + (size_t)NSUB * BQ * d + (size_t)BQ * BK + 2 * NSUB * BQ + kpn + vpn;
    float *buf = hb_malloc(sizeof(float) * total, "attention block");
    if (!buf) { j->err = 1; return; }
    float *qp = buf, *qs = qp + NSUB * qpn, *o = qs + (size_t)BQ * d, *s = o + (size_t)NSUB * BQ * d;
    float *kp = s + (size_t)BQ * BK, *vp = kp + kpn, *mx = vp + vpn, *l = mx + NSUB * BQ;
    for (int64_t t = b; t < e; t++) {
        int h = (int)(t / j->nsb);
        int64_t qb0 = (t % j->nsb) * NSUB * BQ;
        int nsub = 0;
        int64_t nqs[NSUB];
        for (int sb = 0; sb < NSUB && qb0 + sb * BQ < a->lq; sb++, nsub++) {
            int64_t q0 = qb0 + sb * BQ, nq = a->lq - q0 < BQ ? a->lq - q0 : BQ;
            nqs[sb] = nq;
            for (int64_t i = 0; i < nq; i++) {
                const float *q = a->q + (q0 + i) * a->q_stride + (int64_t)h * d;
                for (int c = 0; c < d; c++) qs[i * d + c] = q[c] * a->scale;
                mx[sb * BQ + i] = -INFINITY;
                l[sb * BQ + i] = 0;
            }
            memset(o + (size_t)sb * BQ * d, 0, sizeof(float) * (size_t)nq * d);
            hb__gemm_pack_a(qp + sb * qpn, qs, d, nq, d); /* the A operand of every S = Q K^T below */
        }
        for (int64_t k0 = 0; k0 < a->lk; k0 += BK) {
            int64_t nk = a->lk - k0 < BK ? a->lk - k0 : BK;
            const float *kb = a->k + k0 * a->k_stride + (int64_t)h * d, *vb = a->v + k0 * a->v_stride + (int64_t)h * d;
            if (pre) {
                hb__gemm_pack_b(kp, kb, a->k_stride, true, nk, d);
                hb__gemm_pack_b(vp, vb, a->v_stride, false, d, nk);
            }
            for (int sb = 0; sb < nsub; sb++) {
                int64_t q0 = qb0 + sb * BQ, nq = nqs[sb];
                float *os = o + (size_t)sb * BQ * d, *ms = mx + sb * BQ, *ls = l + sb * BQ;
                if (pre) hb__gemm_serial_pb(s, nk, NULL, 0, qp + sb * qpn, kp, nq, nk, d, false);
                else hb__gemm_serial_pa(s, nk, qp + sb * qpn, kb, a->k_stride, true, nq, nk, d, false);
                for (int64_t i = 0; i < nq; i++) {
                    float *si = s + i * nk;
                    if (a->bias) {
                        const float *bi = a->bias + ((int64_t)h * a->lq + q0 + i) * a->lk + k0;
                        for (int64_t c = 0; c < nk; c++) si[c] += bi[c];
                    }
                    if (a->key_mask)
                        for (int64_t c = 0; c < nk; c++)
                            if (!a->key_mask[k0 + c]) si[c] += -FLT_MAX;
                    float m = rmax(si, nk, ms[i]);
                    if (m == -INFINITY) { /* every score so far is -inf: contributes nothing */
                        for (int64_t c = 0; c < nk; c++) si[c] = 0;
                        continue;
                    }
                    float corr = expf(ms[i] - m), sum = rexp(si, nk, m);
                    ls[i] = ls[i] * corr + sum;
                    ms[i] = m;
                    if (corr != 1.0f)
                        for (int c = 0; c < d; c++) os[i * d + c] *= corr;
                }
                if (pre) hb__gemm_serial_pb(os, d, s, nk, NULL, vp, nq, d, nk, true);
                else hb__gemm_serial(os, d, s, nk, vb, a->v_stride, false, nq, d, nk, true);
            }
        }
        for (int sb = 0; sb < nsub; sb++)
            for (int64_t i = 0; i < nqs[sb]; i++) {
                float *out = a->out + (qb0 + sb * BQ + i) * a->o_stride + (int64_t)h * d;
                float li = l[sb * BQ + i], inv = li > 0 ? 1.0f / li : 0.0f;
                for (int c = 0; c < d; c++) out[c] = o[((size_t)sb * BQ + i) * d + c] * inv;
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
    attn_job j = {a, (a->lq + NSUB * BQ - 1) / (NSUB * BQ), 0};
    hb_parallel_for(j.nsb * a->heads, 1, attn_blocks, &j);
    if (j.err) hb__cpu_fail("hb_attention: out of memory");
}
