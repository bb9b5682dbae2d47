/* io/gguf_quant: write a checkpoint as a GGUF file in the community Wan layout (city96/ComfyUI-GGUF convert.py +
 * fix_5d_tensors.py + lcpp.patch, as ../shared/spec/quantization.md describes): official Wan names, the keys
 * general.architecture = "wan", general.quantization_version = 2, general.file_type; 1-D tensors, tensors of at
 * most 1024 elements, *.modulation and the 5-D patch embedding in F32; the embeddings and the head left in
 * F16/BF16; the K-quant mixes' bumps for .v.weight and .ffn.2.weight; K-quant rows that are not whole 256-blocks
 * in F16. Every quantized byte is ggml's reference quantizer's (hb_quantize). */
#include "io/io_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *name;   /* --type spelling */
    hb_dtype base;      /* most weights */
    uint32_t ftype;     /* llama.cpp llama_ftype (general.file_type) */
} qmix;

static const qmix k_mixes[] = {
    {"f32", HB_F32, 0}, {"f16", HB_F16, 1}, {"bf16", HB_BF16, 32}, {"q8_0", HB_Q8_0, 7}, {"q4_0", HB_Q4_0, 2},
    {"q4_1", HB_Q4_1, 3}, {"q5_0", HB_Q5_0, 8}, {"q5_1", HB_Q5_1, 9}, {"q2_k", HB_Q2_K, 10}, {"q3_k_s", HB_Q3_K, 11},
    {"q3_k_m", HB_Q3_K, 12}, {"q3_k_l", HB_Q3_K, 13}, {"q4_k_s", HB_Q4_K, 14}, {"q4_k_m", HB_Q4_K, 15},
    {"q5_k_s", HB_Q5_K, 16}, {"q5_k_m", HB_Q5_K, 17}, {"q6_k", HB_Q6_K, 18},
};

const char *hb_gguf_quant_types(void) {
    return "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k";
}

static bool has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* The per-tensor bump of a K-quant / legacy mix (lcpp.patch img_tensor_get_type): attention values and the
 * second FFN matrix get more bits. i_v counts the .v.weight tensors seen so far. */
static hb_dtype bump(const qmix *m, const char *name, hb_dtype t, int *i_v) {
    const uint32_t f = m->ftype;
    if (has(name, ".v.weight")) {
        if (f == 10) t = HB_Q3_K;
        else if (f == 12) t = *i_v < 2 ? HB_Q5_K : HB_Q4_K;
        else if (f == 13) t = HB_Q5_K;
        else if (f == 15 || f == 17) t = HB_Q6_K;
        else if (f == 14 && *i_v < 4) t = HB_Q5_K;
        ++*i_v;
    } else if (has(name, ".ffn.2.weight")) {
        if (f == 12) t = HB_Q4_K;
        else if (f == 13 || f == 14) t = HB_Q5_K;
        else if (f == 15 || f == 17) t = HB_Q6_K;
        else if (f == 2) t = HB_Q4_1;
        else if (f == 8) t = HB_Q5_1;
    }
    return t;
}

/* The stored type of one tensor: F32 for the small and structural ones, the source's 16-bit type for the
 * embeddings and head, else the mix's (bumped) type, with the K-quant row-size fallback to F16. */
static hb_dtype pick(const qmix *m, const char *name, const hb_tensor *t, int *i_v) {
    const char *keep16[] = {"patch_embedding.", "text_embedding.", "time_embedding.", "time_projection.", "img_emb.", "head."};
    if (t->ndim != 2 || hb_tensor_numel(t) <= 1024 || has(name, "modulation")) return HB_F32;
    if (m->base == HB_F32 || m->base == HB_F16 || m->base == HB_BF16) return m->base;
    hb_dtype src16 = t->dtype == HB_F16 ? HB_F16 : HB_BF16;
    for (size_t i = 0; i < sizeof keep16 / sizeof keep16[0]; i++)
        if (has(name, keep16[i])) return src16;
    hb_dtype q = bump(m, name, m->base, i_v);
    if (t->shape[1] % hb_dtype_block_elems(q)) return HB_F16;
    return q;
}

typedef struct {
    const hb_checkpoint *ck;
    const int *src;        /* output i -> checkpoint tensor */
    const hb_tensor *out;  /* output dtype and shape */
    const char *const *names;
    hb_progress *prog;
    int n;
} qjob;

typedef struct { const float *x; uint8_t *y; hb_dtype t; int64_t row; } rows_ctx;

static void quant_rows(void *vc, int64_t b, int64_t e) {
    const rows_ctx *c = vc;
    for (int64_t r = b; r < e; r++)
        hb_quantize(c->y + hb_dtype_bytes(c->t, r * c->row), c->x + r * c->row, c->t, c->row);
}

/* Tensor i's bytes: source -> f32 (contiguous) -> the chosen type, rows quantized in parallel. */
static int fill(void *user, int i, void *dst, size_t nbytes) {
    qjob *j = user;
    hb_tensor s = hb_checkpoint_tensor(j->ck, j->src[i]);
    const hb_tensor *o = &j->out[i];
    int64_t n = hb_tensor_numel(&s), row = o->ndim ? o->shape[o->ndim - 1] : 1;
    (void)nbytes;
    if (!hb_tensor_is_contiguous(&s)) return hb_error("tensor '%s' is not contiguous", j->names[i]);
    float *x = hb_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1), j->names[i]);
    if (!x) return -1;
    hb_convert_to_f32(x, s.data, s.dtype, (size_t)n);
    rows_ctx c = {x, dst, o->dtype, row};
    if (hb_dtype_is_quant(o->dtype)) hb_parallel_for(n / row, 16, quant_rows, &c);
    else hb_quantize(dst, x, o->dtype, n);
    hb_free(x);
    hb_progress_step(j->prog, i + 1);
    return 0;
}

/* Output order: the source's, with patch_embedding.weight right after patch_embedding.bias (fix_5d_tensors). */
static void order(const hb_checkpoint *ck, char (*nm)[HB_NAME_MAX], int *src) {
    int n = hb_checkpoint_count(ck), k = 0, pw = -1;
    bool placed = false;
    for (int i = 0; i < n; i++)
        if (!strcmp(nm[i], "patch_embedding.weight")) pw = i;
    for (int i = 0; i < n; i++) {
        if (i == pw) continue;
        src[k++] = i;
        if (pw >= 0 && !placed && !strcmp(nm[i], "patch_embedding.bias")) { src[k++] = pw; placed = true; }
    }
    if (pw >= 0 && !placed) src[k++] = pw;
}

int hb_gguf_quantize(const char *in, const char *out, const char *type, int *counts) {
    const qmix *m = NULL;
    for (size_t i = 0; type && i < sizeof k_mixes / sizeof k_mixes[0]; i++)
        if (!strcasecmp(type, k_mixes[i].name)) m = &k_mixes[i];
    if (!m) return hb_error("quantize: unknown type '%s' (known: %s)", type ? type : "", hb_gguf_quant_types());
    hb_checkpoint *ck = hb_checkpoint_open(in);
    if (!ck) return -1;
    const int n = hb_checkpoint_count(ck);
    char (*nm)[HB_NAME_MAX] = calloc((size_t)n + 1, HB_NAME_MAX);
    int *src = calloc((size_t)n + 1, sizeof(int));
    hb_tensor *ts = calloc((size_t)n + 1, sizeof(hb_tensor));
    const char **np = calloc((size_t)n + 1, sizeof(char *));
    int rc = -1, i_v = 0;
    if (!nm || !src || !ts || !np) { hb_error("%s: out of memory", in); goto done; }
    for (int i = 0; i < n; i++) hb_name_official(ck, hb_checkpoint_name(ck, i), nm[i]);
    order(ck, nm, src);
    for (int i = 0; i < n; i++) {
        hb_tensor s = hb_checkpoint_tensor(ck, src[i]);
        if (hb_dtype_is_quant(s.dtype) ? false : (s.dtype != HB_F32 && s.dtype != HB_F16 && s.dtype != HB_BF16)) {
            hb_error("%s: tensor '%s' has dtype %s: only float weights are quantized", in, nm[src[i]], hb_dtype_name(s.dtype));
            goto done;
        }
        ts[i] = hb_tensor_make(pick(m, nm[src[i]], &s, &i_v), s.ndim, s.shape, NULL);
        np[i] = nm[src[i]];
        if (counts) counts[ts[i].dtype]++;
    }
    char ft[16];
    snprintf(ft, sizeof ft, "%u", m->ftype);
    hb_gguf_kv kv[] = {{"general.architecture", HB_GGUF_STRING, "wan", 0, NULL, 0},
                       {"general.quantization_version", HB_GGUF_U32, NULL, 2, NULL, 0},
                       {"general.file_type", HB_GGUF_U32, NULL, m->ftype, NULL, 0}};
    hb_progress prog;
    hb_progress_begin(&prog, NULL, NULL, "quantize", n);
    qjob j = {ck, src, ts, np, &prog, n};
    rc = hb_gguf_write(out, n, np, ts, fill, &j, kv, 3, 32);
    hb_progress_end(&prog);
done:
    free(nm); free(src); free(ts); free(np);
    hb_checkpoint_close(ck);
    return rc;
}
