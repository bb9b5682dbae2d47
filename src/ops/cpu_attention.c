/* Attention with an online softmax, flash-attention style: for each (head, block of BQ queries) the keys are
 * visited in blocks of BK; S = Q K^T and O += P V are micro-GEMMs, the running max / sum rescale O. Memory is
 * O(BQ*(BK+d)) per task; no Lq x Lk matrix. Each (head, query block) is one task with a fixed key order, so
 * results are identical for any thread count. */
#include "ops/ops_internal.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BQ 64
#define BK 256

typedef struct { const hb_attention_args *a; int64_t nqb; int err; } attn_job;

static void attn_blocks(void *ctx, int64_t b, int64_t e) {
    attn_job *j = ctx;
    const hb_attention_args *a = j->a;
    int d = a->head_dim;
    float *buf = hb_malloc(sizeof(float) * ((size_t)BQ * d * 2 + (size_t)BQ * BK + 2 * BQ), "attention block");
    if (!buf) { j->err = 1; return; }
    float *qs = buf, *o = qs + (size_t)BQ * d, *s = o + (size_t)BQ * d, *mx = s + (size_t)BQ * BK, *l = mx + BQ;
    for (int64_t t = b; t < e; t++) {
        int h = (int)(t / j->nqb);
        int64_t q0 = (t % j->nqb) * BQ, nq = a->lq - q0 < BQ ? a->lq - q0 : BQ;
        for (int64_t i = 0; i < nq; i++) {
            const float *q = a->q + (q0 + i) * a->q_stride + (int64_t)h * d;
            for (int c = 0; c < d; c++) qs[i * d + c] = q[c] * a->scale;
            mx[i] = -INFINITY;
            l[i] = 0;
        }
        memset(o, 0, sizeof(float) * (size_t)nq * d);
        for (int64_t k0 = 0; k0 < a->lk; k0 += BK) {
            int64_t nk = a->lk - k0 < BK ? a->lk - k0 : BK;
            hb__gemm_serial(s, nk, qs, d, a->k + k0 * a->k_stride + (int64_t)h * d, a->k_stride, true, nq, nk, d, false);
            for (int64_t i = 0; i < nq; i++) {
                float *si = s + i * nk;
                if (a->bias) {
                    const float *bi = a->bias + ((int64_t)h * a->lq + q0 + i) * a->lk + k0;
                    for (int64_t c = 0; c < nk; c++) si[c] += bi[c];
                }
                if (a->key_mask)
                    for (int64_t c = 0; c < nk; c++)
                        if (!a->key_mask[k0 + c]) si[c] += -FLT_MAX;
                float m = mx[i];
                for (int64_t c = 0; c < nk; c++) m = si[c] > m ? si[c] : m;
                if (m == -INFINITY) { /* every score so far is -inf: contributes nothing */
                    for (int64_t c = 0; c < nk; c++) si[c] = 0;
                    continue;
                }
                float corr = expf(mx[i] - m), sum = 0;
                for (int64_t c = 0; c < nk; c++) { si[c] = expf(si[c] - m); sum += si[c]; }
                l[i] = l[i] * corr + sum;
                mx[i] = m;
                if (corr != 1.0f)
                    for (int c = 0; c < d; c++) o[i * d + c] *= corr;
            }
            hb__gemm_serial(o, d, s, nk, a->v + k0 * a->v_stride + (int64_t)h * d, a->v_stride, false, nq, d, nk, true);
        }
        for (int64_t i = 0; i < nq; i++) {
            float *out = a->out + (q0 + i) * a->o_stride + (int64_t)h * d;
            float inv = l[i] > 0 ? 1.0f / l[i] : 0.0f;
            for (int c = 0; c < d; c++) out[c] = o[i * d + c] * inv;
        }
    }
    hb_free(buf);
}

void hb_attention(const hb_attention_args *a) {
    if (!a || a->lq <= 0 || a->heads <= 0 || a->head_dim <= 0) return;
    if (a->lk <= 0) {
        for (int64_t i = 0; i < a->lq; i++) memset(a->out + i * a->o_stride, 0, sizeof(float) * (size_t)a->heads * a->head_dim);
        return;
    }
    attn_job j = {a, (a->lq + BQ - 1) / BQ, 0};
    hb_parallel_for(j.nqb * a->heads, 1, attn_blocks, &j);
    if (j.err) hb_log(HB_LOG_ERROR, "hb_attention: out of memory");
}
