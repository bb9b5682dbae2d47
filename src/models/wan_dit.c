/* Wan diffusion transformer forward (see wan_dit.h). Semantics: Wan-Video/Wan2.2 wan/modules/model.py
 * (WanModel); golden README "wan_dit" for the exact details (float64 sinusoid, cos first, context padded
 * before text_embedding, RMSNorm over the full dim, 3-D RoPE, head uses e not e0). */
#include "models/wan_dit.h"
#include "io/json_file.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FFN_CHUNK_ROWS 512

/* ---------------------------------------------------------------- config */

int hb_wan_dit_config_preset(wan_dit_config *c, const char *arch) {
    memset(c, 0, sizeof *c);
    c->patch[0] = 1; c->patch[1] = 2; c->patch[2] = 2;
    c->eps = 1e-6f; c->qk_norm = c->cross_attn_norm = true;
    c->freq_dim = 256; c->text_len = 512; c->text_dim = 4096;
    if (!strcmp(arch, "wan2.2-ti2v-5b")) {
        c->dim = 3072; c->ffn_dim = 14336; c->num_heads = 24; c->num_layers = 30; c->in_dim = c->out_dim = 48;
        snprintf(c->model_type, sizeof c->model_type, "ti2v");
    } else if (!strcmp(arch, "wan2.1-1.3b") || !strcmp(arch, "wan2.1-t2v-1.3b")) {
        c->dim = 1536; c->ffn_dim = 8960; c->num_heads = 12; c->num_layers = 30; c->in_dim = c->out_dim = 16;
        snprintf(c->model_type, sizeof c->model_type, "t2v");
    } else {
        return hb_error("unknown Wan DiT architecture '%s' (known: wan2.2-ti2v-5b, wan2.1-1.3b)", arch);
    }
    c->head_dim = c->dim / c->num_heads;
    return 0;
}

static void json_flag(json_t *o, const char *key, bool *dst) {
    json_t *v = json_object_get(o, key);
    if (!v) return;
    if (json_is_boolean(v)) *dst = json_is_true(v);
    else if (json_is_string(v)) *dst = json_string_length(v) > 0; /* diffusers: "rms_norm_across_heads" */
    else if (json_is_null(v)) *dst = false;
    else if (json_is_integer(v)) *dst = json_integer_value(v) != 0;
}

/* Upper bounds of the config fields: far above every released Wan model (dim 5120, 40 layers, ffn 13824), low
 * enough that every derived size stays well inside 64 bits. */
#define WAN_MAX_DIM (1 << 15)
#define WAN_MAX_FFN (1 << 17)
#define WAN_MAX_HEADS 1024
#define WAN_MAX_LAYERS 1000
#define WAN_MAX_CHANNELS 1024
#define WAN_MAX_TEXT (1 << 16)

static int parse_width(json_t *o, wan_dit_config *c, const char *what) {
    int rc = 0;
    if (json_object_get(o, "num_attention_heads")) { /* diffusers */
        int hd = 0;
        if (!rc) rc = hb_json_int(o, "num_attention_heads", 1, WAN_MAX_HEADS, &c->num_heads, what);
        if (!rc) rc = hb_json_int(o, "attention_head_dim", 1, WAN_MAX_DIM, &hd, what);
        if (!rc) rc = hb_json_int(o, "in_channels", 1, WAN_MAX_CHANNELS, &c->in_dim, what);
        c->out_dim = c->in_dim;
        if (!rc) rc = hb_json_int(o, "out_channels", 1, WAN_MAX_CHANNELS, &c->out_dim, what);
        int64_t dim = (int64_t)c->num_heads * hd; /* 64-bit: both factors may be large */
        if (!rc && dim > WAN_MAX_DIM)
            return hb_error("%s: num_attention_heads %d x attention_head_dim %d = %lld, more than %d", what,
                            c->num_heads, hd, (long long)dim, WAN_MAX_DIM);
        c->dim = (int)dim;
    } else {
        if (!rc) rc = hb_json_int(o, "dim", 1, WAN_MAX_DIM, &c->dim, what);
        if (!rc) rc = hb_json_int(o, "num_heads", 1, WAN_MAX_HEADS, &c->num_heads, what);
        if (!rc) rc = hb_json_int(o, "in_dim", 1, WAN_MAX_CHANNELS, &c->in_dim, what);
        c->out_dim = c->in_dim;
        if (!rc) rc = hb_json_int(o, "out_dim", 1, WAN_MAX_CHANNELS, &c->out_dim, what);
    }
    return rc ? -1 : 0;
}

int hb_wan_dit_config_parse(wan_dit_config *c, const char *text, const char *what) {
    json_t *o = hb_json_parse(text, strlen(text), 0, what);
    if (!o) return -1;
    if (!json_is_object(o)) { json_decref(o); return hb_error("%s: config is not a JSON object", what); }
    memset(c, 0, sizeof *c);
    c->patch[0] = 1; c->patch[1] = 2; c->patch[2] = 2;
    c->eps = 1e-6f; c->qk_norm = c->cross_attn_norm = true;
    c->freq_dim = 256; c->text_len = 512; c->text_dim = 4096;
    c->in_dim = c->out_dim = 16;
    snprintf(c->model_type, sizeof c->model_type, "t2v");
    int rc = parse_width(o, c, what);
    if (!rc) rc = hb_json_int(o, "ffn_dim", 1, WAN_MAX_FFN, &c->ffn_dim, what);
    if (!rc) rc = hb_json_int(o, "freq_dim", 2, WAN_MAX_DIM, &c->freq_dim, what);
    if (!rc) rc = hb_json_int(o, "num_layers", 1, WAN_MAX_LAYERS, &c->num_layers, what);
    if (!rc) rc = hb_json_int(o, "text_len", 1, WAN_MAX_TEXT, &c->text_len, what);
    if (!rc) rc = hb_json_int(o, "text_dim", 1, WAN_MAX_TEXT, &c->text_dim, what);
    json_t *ps = json_object_get(o, "patch_size");
    if (!rc && ps && !json_is_null(ps)) {
        if (!json_is_array(ps) || json_array_size(ps) != 3) { rc = hb_error("%s: patch_size must be a list of 3", what); }
        else for (int i = 0; i < 3; i++) {
            json_t *v = json_array_get(ps, (size_t)i);
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 16) {
                rc = hb_error("%s: patch_size[%d] is not an integer in [1, 16]", what, i);
                break;
            }
            c->patch[i] = (int)json_integer_value(v);
        }
    }
    if (!rc) rc = hb_json_float(o, "eps", 1e-30, 1.0, &c->eps, what);
    json_flag(o, "qk_norm", &c->qk_norm);
    json_flag(o, "cross_attn_norm", &c->cross_attn_norm);
    json_t *mt = json_object_get(o, "model_type");
    if (json_is_string(mt)) snprintf(c->model_type, sizeof c->model_type, "%s", json_string_value(mt));
    json_decref(o);
    if (rc) return -1;
    if (c->dim <= 0 || c->num_heads <= 0)
        return hb_error("%s: missing model width (need dim and num_heads, or num_attention_heads and "
                        "attention_head_dim)", what);
    c->head_dim = c->dim / c->num_heads;
    return hb_wan_dit_config_check(c, what);
}

/* Shape of tensor `name` with `ndim` dims into t (-1 + message naming what and the tensor). */
static int infer_get(const hb_checkpoint *ck, const char *name, int ndim, hb_tensor *t, const char *what) {
    if (hb_checkpoint_get(ck, name, t)) return hb_error("%s: no config.json, and no tensor '%s' to infer the DiT config from", what, name);
    if (t->ndim != ndim) return hb_error("%s: tensor '%s' has %d dimensions, %d expected (a Wan DiT?)", what, name, t->ndim, ndim);
    return 0;
}

/* Blocks 0 .. n-1 present: the count of consecutive blocks.N.ffn.0.weight. */
static int infer_layers(const hb_checkpoint *ck) {
    char name[64];
    int n = 0;
    while (n < WAN_MAX_LAYERS && (snprintf(name, sizeof name, "blocks.%d.ffn.0.weight", n), hb_checkpoint_has(ck, name))) n++;
    return n;
}

int hb_wan_dit_config_infer(wan_dit_config *c, const hb_checkpoint *ck, const char *what) {
    hb_tensor pe, head, text, time, ffn;
    if (infer_get(ck, "patch_embedding.weight", 5, &pe, what) || infer_get(ck, "head.head.weight", 2, &head, what) ||
        infer_get(ck, "text_embedding.0.weight", 2, &text, what) || infer_get(ck, "time_embedding.0.weight", 2, &time, what) ||
        infer_get(ck, "blocks.0.ffn.0.weight", 2, &ffn, what))
        return -1;
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 5; i++)
        if (pe.shape[i] <= 0 || pe.shape[i] > WAN_MAX_DIM) return hb_error("%s: patch_embedding.weight has an odd shape", what);
    c->dim = (int)pe.shape[0], c->in_dim = (int)pe.shape[1];
    for (int i = 0; i < 3; i++) c->patch[i] = (int)pe.shape[2 + i];
    const int64_t pp = pe.shape[2] * pe.shape[3] * pe.shape[4];
    if (head.shape[1] != c->dim || head.shape[0] % pp)
        return hb_error("%s: head.head.weight [%lld, %lld] does not fit dim %d and patch %dx%dx%d", what,
                        (long long)head.shape[0], (long long)head.shape[1], c->dim, c->patch[0], c->patch[1], c->patch[2]);
    c->out_dim = (int)(head.shape[0] / pp);
    c->text_dim = (int)text.shape[1], c->freq_dim = (int)time.shape[1];
    c->ffn_dim = (int)ffn.shape[0];
    c->num_layers = infer_layers(ck);
    static const int k_heads[][2] = {{1536, 12}, {3072, 24}, {5120, 40}}; /* the official Wan configs */
    c->num_heads = c->dim % 128 == 0 ? c->dim / 128 : 0;
    for (size_t i = 0; i < sizeof k_heads / sizeof k_heads[0]; i++)
        if (c->dim == k_heads[i][0]) c->num_heads = k_heads[i][1];
    if (c->num_heads == 0)
        return hb_error("%s: no config.json, and dim %d is not a multiple of Wan's head size 128: the head count is "
                        "unknown; put the model's config.json beside it", what, c->dim);
    c->head_dim = c->dim / c->num_heads;
    c->text_len = 512, c->eps = 1e-6f;
    c->qk_norm = hb_checkpoint_has(ck, "blocks.0.self_attn.norm_q.weight");
    c->cross_attn_norm = hb_checkpoint_has(ck, "blocks.0.norm3.weight");
    snprintf(c->model_type, sizeof c->model_type, "%s", c->in_dim == 48 ? "ti2v" : c->in_dim == 36 ? "i2v" : "t2v");
    hb_log(HB_LOG_DEBUG, "%s: DiT config inferred from the tensors: dim %d, %d heads, %d layers, ffn %d, in %d, out %d, "
           "text %d", what, c->dim, c->num_heads, c->num_layers, c->ffn_dim, c->in_dim, c->out_dim, c->text_dim);
    return hb_wan_dit_config_check(c, what);
}

int hb_wan_dit_config_check(const wan_dit_config *c, const char *what) {
    if (c->dim <= 0 || c->ffn_dim <= 0 || c->freq_dim <= 0 || c->num_heads <= 0 || c->num_layers <= 0 ||
        c->in_dim <= 0 || c->out_dim <= 0 || c->text_len <= 0 || c->text_dim <= 0)
        return hb_error("%s: dim, ffn_dim, freq_dim, num_heads, num_layers, in_dim, out_dim, text_len and text_dim "
                        "must all be positive", what);
    if (c->dim > WAN_MAX_DIM || c->ffn_dim > WAN_MAX_FFN || c->freq_dim > WAN_MAX_DIM || c->num_heads > WAN_MAX_HEADS ||
        c->num_layers > WAN_MAX_LAYERS || c->in_dim > WAN_MAX_CHANNELS || c->out_dim > WAN_MAX_CHANNELS ||
        c->text_len > WAN_MAX_TEXT || c->text_dim > WAN_MAX_TEXT)
        return hb_error("%s: a size is out of range (limits: dim, freq_dim %d; ffn_dim %d; num_heads %d; num_layers %d; "
                        "in_dim, out_dim %d; text_len, text_dim %d)", what, WAN_MAX_DIM, WAN_MAX_FFN, WAN_MAX_HEADS,
                        WAN_MAX_LAYERS, WAN_MAX_CHANNELS, WAN_MAX_TEXT);
    if (c->dim % c->num_heads) return hb_error("%s: dim %d is not a multiple of num_heads %d", what, c->dim, c->num_heads);
    if (c->head_dim != c->dim / c->num_heads || c->head_dim % 2 || c->head_dim < 6)
        return hb_error("%s: head_dim %d must be even and >= 6", what, c->head_dim);
    if (c->freq_dim % 2) return hb_error("%s: freq_dim %d must be even", what, c->freq_dim);
    for (int i = 0; i < 3; i++)
        if (c->patch[i] <= 0 || c->patch[i] > 16) return hb_error("%s: patch_size[%d] = %d is out of range", what, i, c->patch[i]);
    if (!(c->eps > 0)) return hb_error("%s: eps must be positive", what);
    return 0;
}

char *hb_wan_dit_config_to_json(const wan_dit_config *c) {
    json_t *o = json_object();
    json_object_set_new(o, "_class_name", json_string("WanModel"));
    json_object_set_new(o, "_diffusers_version", json_string("0.33.0"));
    json_object_set_new(o, "model_type", json_string(c->model_type[0] ? c->model_type : "t2v"));
    json_object_set_new(o, "dim", json_integer(c->dim));
    json_object_set_new(o, "ffn_dim", json_integer(c->ffn_dim));
    json_object_set_new(o, "freq_dim", json_integer(c->freq_dim));
    json_object_set_new(o, "num_heads", json_integer(c->num_heads));
    json_object_set_new(o, "num_layers", json_integer(c->num_layers));
    json_object_set_new(o, "in_dim", json_integer(c->in_dim));
    json_object_set_new(o, "out_dim", json_integer(c->out_dim));
    json_object_set_new(o, "text_len", json_integer(c->text_len));
    json_object_set_new(o, "text_dim", json_integer(c->text_dim));
    json_t *ps = json_array();
    for (int i = 0; i < 3; i++) json_array_append_new(ps, json_integer(c->patch[i]));
    json_object_set_new(o, "patch_size", ps);
    json_object_set_new(o, "eps", json_real(c->eps));
    json_object_set_new(o, "qk_norm", json_boolean(c->qk_norm));
    json_object_set_new(o, "cross_attn_norm", json_boolean(c->cross_attn_norm));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
    json_decref(o);
    return s;
}

int hb_wan_dit_enumerate(const wan_dit_config *c, wan_dit_tensor_fn fn, void *user) {
    const int64_t D = c->dim, P = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    char name[128];
    int rc;
#define T1(nm, a, init) do { int64_t s_[1] = {a}; if ((rc = fn(user, nm, 1, s_, init))) return rc; } while (0)
#define T2(nm, a, b, init) do { int64_t s_[2] = {a, b}; if ((rc = fn(user, nm, 2, s_, init))) return rc; } while (0)
#define T3(nm, a, b, d, init) do { int64_t s_[3] = {a, b, d}; if ((rc = fn(user, nm, 3, s_, init))) return rc; } while (0)
#define LIN(prefix, o, i) do { snprintf(name, sizeof name, "%s.weight", prefix); T2(name, o, i, WAN_INIT_LINEAR); \
        snprintf(name, sizeof name, "%s.bias", prefix); T1(name, o, WAN_INIT_BIAS); } while (0)
    {
        int64_t s[5] = {D, c->in_dim, c->patch[0], c->patch[1], c->patch[2]};
        if ((rc = fn(user, "patch_embedding.weight", 5, s, WAN_INIT_LINEAR))) return rc;
        T1("patch_embedding.bias", D, WAN_INIT_BIAS);
    }
    LIN("text_embedding.0", D, c->text_dim);
    LIN("text_embedding.2", D, D);
    LIN("time_embedding.0", D, c->freq_dim);
    LIN("time_embedding.2", D, D);
    LIN("time_projection.1", 6 * D, D);
    for (int l = 0; l < c->num_layers; l++) {
        char p[96];
        snprintf(name, sizeof name, "blocks.%d.modulation", l); T3(name, 1, 6, D, WAN_INIT_MOD);
        static const char *const att[2] = {"self_attn", "cross_attn"};
        for (int a = 0; a < 2; a++) {
            static const char *const lin[4] = {"q", "k", "v", "o"};
            for (int j = 0; j < 4; j++) { snprintf(p, sizeof p, "blocks.%d.%s.%s", l, att[a], lin[j]); LIN(p, D, D); }
            if (c->qk_norm) {
                snprintf(name, sizeof name, "blocks.%d.%s.norm_q.weight", l, att[a]); T1(name, D, WAN_INIT_NORM);
                snprintf(name, sizeof name, "blocks.%d.%s.norm_k.weight", l, att[a]); T1(name, D, WAN_INIT_NORM);
            }
            if (a == 0 && c->cross_attn_norm) {
                snprintf(name, sizeof name, "blocks.%d.norm3.weight", l); T1(name, D, WAN_INIT_NORM);
                snprintf(name, sizeof name, "blocks.%d.norm3.bias", l); T1(name, D, WAN_INIT_BIAS);
            }
        }
        snprintf(p, sizeof p, "blocks.%d.ffn.0", l); LIN(p, c->ffn_dim, D);
        snprintf(p, sizeof p, "blocks.%d.ffn.2", l); LIN(p, D, c->ffn_dim);
    }
    T3("head.modulation", 1, 2, D, WAN_INIT_MOD);
    LIN("head.head", P * c->out_dim, D);
#undef T1
#undef T2
#undef T3
#undef LIN
    return 0;
}

static int count_fn(void *user, const char *name, int ndim, const int64_t *shape, wan_init_kind init) {
    (void)name; (void)init;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    *(int64_t *)user += n;
    return 0;
}

int64_t hb_wan_dit_param_count(const wan_dit_config *c) {
    int64_t n = 0;
    hb_wan_dit_enumerate(c, count_fn, &n);
    return n;
}

/* ---------------------------------------------------------------- loading */

static int get_w(hb_checkpoint *ck, hb_tensor *out, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int get_w(hb_checkpoint *ck, hb_tensor *out, int ndim, const int64_t *shape, const char *fmt, ...) {
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (hb_checkpoint_get_shaped(ck, name, ndim, shape, out) != 0) return -1;
    if (!hb_tensor_is_contiguous(out))
        return hb_error("%s: tensor '%s' is not contiguous", hb_checkpoint_path(ck), name);
    /* GGUF block formats (Q8_0 ... Q6_K) for Linear weights: hb_linear computes from the blocks */
    if (out->dtype != HB_F32 && out->dtype != HB_BF16 && out->dtype != HB_F16 && !(ndim == 2 && hb_dtype_is_quant(out->dtype)))
        return hb_error("%s: tensor '%s' has dtype %s (need F32, BF16 or F16; GGUF block formats only for 2-D "
                        "Linear weights)", hb_checkpoint_path(ck), name, hb_dtype_name(out->dtype));
    return 0;
}

/* A modulation table: official [1, n, dim]; accepted in any shape with n*dim elements (diffusers
 * scale_shift_table layouts). Converted to f32 once. */
static float *get_mod(hb_checkpoint *ck, const char *name, int64_t n, int64_t dim) {
    hb_tensor t;
    if (hb_checkpoint_get(ck, name, &t) != 0) return NULL;
    char buf[96];
    if (hb_tensor_numel(&t) != n * dim || !hb_tensor_is_contiguous(&t) ||
        (t.dtype != HB_F32 && t.dtype != HB_BF16 && t.dtype != HB_F16)) {
        hb_error("%s: tensor '%s' has shape %s %s, expected [1, %lld, %lld] float", hb_checkpoint_path(ck), name,
                 hb_shape_str(&t, buf, sizeof buf), hb_dtype_name(t.dtype), (long long)n, (long long)dim);
        return NULL;
    }
    float *f = hb_malloc((size_t)(n * dim) * sizeof(float), name);
    if (f) hb_convert_to_f32(f, t.data, t.dtype, (size_t)(n * dim));
    return f;
}

static int load_linear(hb_checkpoint *ck, hb_tensor *w, hb_tensor *b, int64_t o, int64_t i, const char *prefix) {
    int64_t ws[2] = {o, i}, bs[1] = {o};
    if (get_w(ck, w, 2, ws, "%s.weight", prefix)) return -1;
    return get_w(ck, b, 1, bs, "%s.bias", prefix);
}

wan_dit *hb_wan_dit_from_checkpoint(hb_checkpoint *ck, const wan_dit_config *cfg) {
    if (hb_wan_dit_config_check(cfg, hb_checkpoint_path(ck))) return NULL;
    wan_dit *m = hb_calloc(sizeof *m, "wan_dit");
    if (!m) return NULL;
    m->cfg = *cfg;
    m->ck = ck;
    const wan_dit_config *c = &m->cfg;
    const int64_t D = c->dim, P = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    m->blocks = hb_calloc(sizeof(wan_dit_block_w) * (size_t)c->num_layers, "wan_dit blocks");
    if (!m->blocks) goto fail;
    {
        int64_t s5[5] = {D, c->in_dim, c->patch[0], c->patch[1], c->patch[2]}, s1[1] = {D};
        hb_tensor pw;
        if (get_w(ck, &pw, 5, s5, "patch_embedding.weight")) goto fail;
        int64_t s2[2] = {D, c->in_dim * P};
        if (hb_tensor_reshape(&pw, 2, s2, &m->patch_w)) goto fail;
        if (get_w(ck, &m->patch_b, 1, s1, "patch_embedding.bias")) goto fail;
    }
    if (load_linear(ck, &m->text0_w, &m->text0_b, D, c->text_dim, "text_embedding.0")) goto fail;
    if (load_linear(ck, &m->text2_w, &m->text2_b, D, D, "text_embedding.2")) goto fail;
    if (load_linear(ck, &m->time0_w, &m->time0_b, D, c->freq_dim, "time_embedding.0")) goto fail;
    if (load_linear(ck, &m->time2_w, &m->time2_b, D, D, "time_embedding.2")) goto fail;
    if (load_linear(ck, &m->proj_w, &m->proj_b, 6 * D, D, "time_projection.1")) goto fail;
    for (int l = 0; l < c->num_layers; l++) {
        wan_dit_block_w *B = &m->blocks[l];
        char p[96], nm[128];
        int64_t s1[1] = {D};
        snprintf(nm, sizeof nm, "blocks.%d.modulation", l);
        if (!(B->modulation = get_mod(ck, nm, 6, D))) goto fail;
        B->modulation_t = hb_tensor_1d(HB_F32, 6 * D, B->modulation);
#define LL(field, o, i, sub) do { snprintf(p, sizeof p, "blocks.%d.%s", l, sub); \
        if (load_linear(ck, &B->field##_w, &B->field##_b, o, i, p)) goto fail; } while (0)
        LL(sa_q, D, D, "self_attn.q"); LL(sa_k, D, D, "self_attn.k"); LL(sa_v, D, D, "self_attn.v");
        LL(sa_o, D, D, "self_attn.o");
        LL(ca_q, D, D, "cross_attn.q"); LL(ca_k, D, D, "cross_attn.k"); LL(ca_v, D, D, "cross_attn.v");
        LL(ca_o, D, D, "cross_attn.o");
        LL(ffn0, c->ffn_dim, D, "ffn.0"); LL(ffn2, D, c->ffn_dim, "ffn.2");
#undef LL
        if (c->qk_norm) {
            if (get_w(ck, &B->sa_norm_q, 1, s1, "blocks.%d.self_attn.norm_q.weight", l)) goto fail;
            if (get_w(ck, &B->sa_norm_k, 1, s1, "blocks.%d.self_attn.norm_k.weight", l)) goto fail;
            if (get_w(ck, &B->ca_norm_q, 1, s1, "blocks.%d.cross_attn.norm_q.weight", l)) goto fail;
            if (get_w(ck, &B->ca_norm_k, 1, s1, "blocks.%d.cross_attn.norm_k.weight", l)) goto fail;
        }
        if (c->cross_attn_norm) {
            if (get_w(ck, &B->norm3_w, 1, s1, "blocks.%d.norm3.weight", l)) goto fail;
            if (get_w(ck, &B->norm3_b, 1, s1, "blocks.%d.norm3.bias", l)) goto fail;
        }
    }
    if (!(m->head_mod = get_mod(ck, "head.modulation", 2, D))) goto fail;
    m->head_shift_t = hb_tensor_1d(HB_F32, D, m->head_mod);
    m->head_scale_t = hb_tensor_1d(HB_F32, D, m->head_mod + D);
    if (load_linear(ck, &m->head_w, &m->head_b, P * c->out_dim, D, "head.head")) goto fail;
    return m;
fail:
    hb_wan_dit_free(m);
    return NULL;
}

void hb_wan_dit_free(wan_dit *m) {
    if (!m) return;
    /* The converted tables were passed to ops as weights: a device backend forgets its copies first. */
    const size_t D = (size_t)m->cfg.dim;
    if (m->blocks)
        for (int l = 0; l < m->cfg.num_layers; l++) {
            if (m->blocks[l].modulation) hb_host_memory_released(m->blocks[l].modulation, 6 * D * sizeof(float));
            hb_free(m->blocks[l].modulation);
        }
    hb_free(m->blocks);
    if (m->head_mod) hb_host_memory_released(m->head_mod, 2 * D * sizeof(float));
    hb_free(m->head_mod);
    if (m->owns_ck) hb_checkpoint_close(m->ck);
    hb_free(m);
}

static bool is_file(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }
static bool is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }

wan_dit *hb_wan_dit_open(const char *path, const wan_dit_config *override) {
    size_t n = strlen(path) + 64;
    char *ckpath = malloc(n), *cfgpath = malloc(n);
    wan_dit *m = NULL;
    hb_checkpoint *ck = NULL;
    char *text = NULL;
    if (!ckpath || !cfgpath) { hb_error("out of memory"); goto done; }
    snprintf(ckpath, n, "%s", path);
    cfgpath[0] = 0;
    if (is_dir(path)) {
        snprintf(cfgpath, n, "%s/config.json", path);
        if (!is_file(cfgpath)) cfgpath[0] = 0;
        if (!cfgpath[0] && !override) {
            hb_error("%s: no config.json in this folder (a model folder's DiT is found by hb_model_folder_scan)", path);
            goto done;
        }
    } else if (is_file(path)) {
        const char *slash = strrchr(path, '/');
        if (slash) snprintf(cfgpath, n, "%.*s/config.json", (int)(slash - path), path);
        else snprintf(cfgpath, n, "config.json");
        if (!is_file(cfgpath)) cfgpath[0] = 0;
    } else {
        hb_error("%s: no such file or folder", path);
        goto done;
    }
    ck = hb_checkpoint_open(ckpath);
    if (!ck) goto done;
    wan_dit_config cfg;
    if (override) {
        cfg = *override;
    } else if (cfgpath[0]) {
        text = hb_read_text_file(cfgpath, HB_JSON_MAX_FILE, NULL);
        if (!text) goto done;
        if (hb_wan_dit_config_parse(&cfg, text, cfgpath)) goto done;
    } else {
        const char *meta = hb_checkpoint_metadata(ck, "config");
        /* community files (GGUF, single-file safetensors) carry no config: read it off the tensors */
        if (meta ? hb_wan_dit_config_parse(&cfg, meta, path) : hb_wan_dit_config_infer(&cfg, ck, path)) goto done;
    }
    m = hb_wan_dit_from_checkpoint(ck, &cfg);
    if (m) { m->owns_ck = true; ck = NULL; }
done:
    if (ck) hb_checkpoint_close(ck);
    free(text);
    free(ckpath);
    free(cfgpath);
    return m;
}

/* ---------------------------------------------------------------- pieces */

/* Token rows <-> [C, F, H, W] latents as one strided copy over (f, h, w, ch, p, q, s): the 7 dims are split
 * over the patch frames p (pt is 1 for every Wan model, so this is one op). */
static void patch_copy(const wan_dit_config *c, int64_t C, int64_t F, int64_t H, int64_t W, float *dst,
                       const int64_t *ds, const float *src, const int64_t *ss) {
    const int64_t Fp = F / c->patch[0], Hp = H / c->patch[1], Wp = W / c->patch[2];
    const int64_t shape[6] = {Fp, Hp, Wp, C, c->patch[1], c->patch[2]};
    const int64_t dst6[6] = {ds[0], ds[1], ds[2], ds[3], ds[5], ds[6]}, src6[6] = {ss[0], ss[1], ss[2], ss[3], ss[5], ss[6]};
    for (int p = 0; p < c->patch[0]; p++) hb_copy_nd(dst + p * ds[4], dst6, src + p * ss[4], src6, 6, shape);
}

void hb_wan_dit_patchify(const wan_dit_config *c, const float *x, int64_t F, int64_t H, int64_t W, float *rows) {
    const int pt = c->patch[0], ph = c->patch[1], pw = c->patch[2];
    const int64_t Hp = H / ph, Wp = W / pw, P = (int64_t)pt * ph * pw, K = c->in_dim * P;
    /* rows[((f*Hp + h)*Wp + w)*K + ch*P + (p*ph + q)*pw + s] = x[((ch*F + f*pt + p)*H + h*ph + q)*W + w*pw + s] */
    const int64_t ds[7] = {Hp * Wp * K, Wp * K, K, P, (int64_t)ph * pw, pw, 1};
    const int64_t ss[7] = {pt * H * W, ph * W, pw, F * H * W, H * W, W, 1};
    patch_copy(c, c->in_dim, F, H, W, rows, ds, x, ss);
}

void hb_wan_dit_unpatchify(const wan_dit_config *c, const float *tok, int64_t F, int64_t H, int64_t W, float *out) {
    const int pt = c->patch[0], ph = c->patch[1], pw = c->patch[2];
    const int64_t Hp = H / ph, Wp = W / pw, C = c->out_dim, N = (int64_t)pt * ph * pw * C;
    /* out[((ch*F + f*pt + p)*H + h*ph + q)*W + w*pw + s] = tok[((f*Hp + h)*Wp + w)*N + ((p*ph + q)*pw + s)*C + ch] */
    const int64_t ds[7] = {pt * H * W, ph * W, pw, F * H * W, H * W, W, 1};
    const int64_t ss[7] = {Hp * Wp * N, Wp * N, N, 1, (int64_t)ph * pw * C, pw * C, C};
    patch_copy(c, C, F, H, W, out, ds, tok, ss);
}

int hb_wan_dit_time_embed(const wan_dit *m, const float *t, int64_t G, float *e, float *e0, float *tmp) {
    const wan_dit_config *c = &m->cfg;
    const int64_t D = c->dim, half = c->freq_dim / 2;
    float *sinus = tmp, *h = tmp + G * c->freq_dim;
    /* The sinusoid of the (host) timesteps is made on the host in float64 and uploaded: G x freq_dim floats. */
    float *hs = hb_malloc(sizeof(float) * (size_t)(G * c->freq_dim), "timestep sinusoid");
    if (!hs) return -1;
    for (int64_t g = 0; g < G; g++) {
        double pos = (double)t[g];
        for (int64_t j = 0; j < half; j++) {
            double a = pos * pow(10000.0, -((double)j / (double)half));
            hs[g * c->freq_dim + j] = (float)cos(a);
            hs[g * c->freq_dim + half + j] = (float)sin(a);
        }
    }
    int up = hb_dev_upload(sinus, hs, sizeof(float) * (size_t)(G * c->freq_dim));
    hb_free(hs);
    if (up) return -1;
    if (hb_linear(h, sinus, G, &m->time0_w, &m->time0_b, false)) return -1;
    hb_silu(h, h, G * D);
    if (hb_linear(e, h, G, &m->time2_w, &m->time2_b, false)) return -1;
    hb_silu(h, e, G * D);
    return hb_linear(e0, h, G, &m->proj_w, &m->proj_b, false);
}

int hb_wan_dit_cross_kv(const wan_dit *m, int layer, const float *emb, int64_t len, float *k, float *v, float *tmp) {
    const wan_dit_block_w *B = &m->blocks[layer];
    const int64_t D = m->cfg.dim;
    if (m->cfg.qk_norm) {
        if (hb_linear(tmp, emb, len, &B->ca_k_w, &B->ca_k_b, false)) return -1;
        hb_rmsnorm(k, tmp, len, D, &B->ca_norm_k, m->cfg.eps);
    } else if (hb_linear(k, emb, len, &B->ca_k_w, &B->ca_k_b, false)) return -1;
    return hb_linear(v, emb, len, &B->ca_v_w, &B->ca_v_b, false);
}

/* Text embedding of the context zero-padded to text_len: pad [T, text_dim], tmp [T, dim]. */
static int text_embed(const wan_dit *m, const float *ctx, int64_t ctx_len, float *emb, float *pad, float *tmp) {
    const wan_dit_config *c = &m->cfg;
    const int64_t T = c->text_len;
    hb_fill(pad + ctx_len * c->text_dim, 0.0f, (T - ctx_len) * c->text_dim);
    hb_copy(pad, ctx, ctx_len * c->text_dim);
    if (hb_linear(tmp, pad, T, &m->text0_w, &m->text0_b, false)) return -1;
    hb_gelu_tanh(tmp, tmp, T * c->dim);
    return hb_linear(emb, tmp, T, &m->text2_w, &m->text2_b, false);
}

int hb_wan_dit_text_prepare(const wan_dit *m, const float *context, int64_t ctx_len, bool cache_kv, wan_dit_text *out,
                         wan_dit_tap_fn tap, void *tap_user) {
    const wan_dit_config *c = &m->cfg;
    const int64_t T = c->text_len, D = c->dim;
    memset(out, 0, sizeof *out);
    if (ctx_len < 0 || ctx_len > T)
        return hb_error("wan_dit: the context has %lld rows, more than text_len %d", (long long)ctx_len, c->text_len);
    out->len = T;
    float *pad = hb_dev_alloc(sizeof(float) * (size_t)(T * c->text_dim), "text pad");
    float *tmp = hb_dev_alloc(sizeof(float) * (size_t)(T * D), "text tmp");
    out->emb = hb_dev_alloc(sizeof(float) * (size_t)(T * D), "text embedding");
    int rc = -1;
    if (!pad || !tmp || !out->emb) goto done;
    if (text_embed(m, context, ctx_len, out->emb, pad, tmp)) goto done;
    if (tap) tap(tap_user, "text_embedding", out->emb, T, D, NULL);
    if (cache_kv) {
        size_t n = sizeof(float) * (size_t)(c->num_layers * T * D);
        out->k = hb_dev_alloc(n, "cross-attention K cache");
        out->v = hb_dev_alloc(n, "cross-attention V cache");
        if (!out->k || !out->v) goto done;
        for (int l = 0; l < c->num_layers; l++)
            if (hb_wan_dit_cross_kv(m, l, out->emb, T, out->k + l * T * D, out->v + l * T * D, tmp)) goto done;
    }
    rc = 0;
done:
    hb_dev_free(pad);
    hb_dev_free(tmp);
    if (rc) hb_wan_dit_text_free(out);
    return rc;
}

void hb_wan_dit_text_free(wan_dit_text *t) {
    hb_dev_free(t->emb);
    hb_dev_free(t->k);
    hb_dev_free(t->v);
    memset(t, 0, sizeof *t);
}

static float *arena_f32(hb_arena *a, int64_t n) { return hb_arena_alloc(a, sizeof(float) * (size_t)(n > 0 ? n : 1)); }

/* Arena bytes of k buffers of n[i] floats, as arena_f32 takes them. */
static size_t f32_bytes(const int64_t *n, int k) {
    size_t b = 0;
    for (int i = 0; i < k; i++) b += hb_arena_bytes(sizeof(float) * (size_t)(n[i] > 0 ? n[i] : 1));
    return b;
}

/* The block workspace's buffers in floats, in the order hb_wan_dit_ws_alloc takes them (planner and allocator). */
enum { WS_BUFS = 10 };
static void ws_sizes(const wan_dit_config *c, int64_t L, int64_t groups, int64_t n[WS_BUFS]) {
    const int64_t D = c->dim, T = c->text_len, hid = L < FFN_CHUNK_ROWS ? L : FFN_CHUNK_ROWS;
    const int64_t s[WS_BUFS] = {L * D, L * D, L * D, L * D, L * D, L * D, groups * 6 * D, hid * c->ffn_dim, T * D, T * D};
    memcpy(n, s, sizeof s);
}

size_t hb_wan_dit_ws_bytes(const wan_dit_config *c, int64_t L, int64_t groups) {
    int64_t n[WS_BUFS];
    ws_sizes(c, L, groups, n);
    return f32_bytes(n, WS_BUFS);
}

int hb_wan_dit_ws_alloc(const wan_dit *m, int64_t L, int64_t groups, hb_arena *a, wan_dit_ws *ws) {
    int64_t n[WS_BUFS];
    ws_sizes(&m->cfg, L, groups, n);
    memset(ws, 0, sizeof *ws);
    float **dst[WS_BUFS] = {&ws->h, &ws->q, &ws->k, &ws->v, &ws->o, &ws->y, &ws->mod, &ws->hid, &ws->ctx_k, &ws->ctx_v};
    ws->L = L;
    ws->mod_groups = groups;
    ws->hid_rows = L < FFN_CHUNK_ROWS ? L : FFN_CHUNK_ROWS;
    for (int i = 0; i < WS_BUFS; i++)
        if (!(*dst[i] = arena_f32(a, n[i]))) return -1;
    return 0;
}

static int64_t groups_used(int64_t L, hb_modgroups g) { return L <= 0 ? 0 : (L - 1) / g.rows_per_group + 1; }

static void tapf(const wan_dit_block_args *a, int layer, const char *what, const float *d, int64_t rows, int64_t cols) {
    if (!a->tap) return;
    char nm[64];
    if (what) snprintf(nm, sizeof nm, "blocks.%d.%s", layer, what);
    else snprintf(nm, sizeof nm, "blocks.%d", layer);
    a->tap(a->tap_user, nm, d, rows, cols, NULL);
}

/* x += gate * (h W^T + b) (gate NULL: x += h W^T + b), the residual fused into the GEMM's epilogue; with a tap the
 * product goes to tmp first, for the tap to see. */
static int residual_linear(const wan_dit_block_args *a, int layer, const char *what, float *x, const float *h, int64_t L,
                           int64_t D, const hb_tensor *w, const hb_tensor *b, const float *gate, hb_modgroups mg,
                           float *tmp) {
    if (!a->tap) return hb_linear_ep(x, h, L, w, b, (hb_epilogue){gate ? HB_EPI_GATED_ADD : HB_EPI_ADD, gate, mg, 0});
    if (hb_linear(tmp, h, L, w, b, false)) return -1;
    tapf(a, layer, what, tmp, L, D);
    if (gate) hb_gated_add(x, tmp, L, D, gate, mg);
    else hb_add(x, x, tmp, L * D);
    return 0;
}

int hb_wan_dit_block(const wan_dit *m, int layer, float *x, const wan_dit_block_args *a, wan_dit_ws *ws) {
    const wan_dit_config *c = &m->cfg;
    const wan_dit_block_w *B = &m->blocks[layer];
    const int64_t D = c->dim, L = a->L;
    const float eps = c->eps;
    if (L > ws->L) return hb_error("wan_dit block: %lld tokens but the workspace holds %lld", (long long)L, (long long)ws->L);
    if (a->g.rows_per_group <= 0) return hb_error("wan_dit block: rows_per_group must be positive");
    if (!a->kv_k != !a->kv_v) return hb_error("wan_dit block: give both K and V caches or neither");
    if (a->kv_k && (a->kv_start < 0 || a->kv_write < a->kv_start || a->kv_write + L > a->kv_end))
        return hb_error("wan_dit block: cache rows [%lld, %lld) must lie inside the attended rows [%lld, %lld)",
                        (long long)a->kv_write, (long long)(a->kv_write + L), (long long)a->kv_start,
                        (long long)a->kv_end);
    if (!a->ctx_k || !a->ctx_v || a->ctx_len <= 0) return hb_error("wan_dit block: missing cross-attention K/V");
    const int64_t G = groups_used(L, a->g);
    if (G > ws->mod_groups) return hb_error("wan_dit block: %lld modulation groups, workspace holds %lld",
                                            (long long)G, (long long)ws->mod_groups);
    /* modulation + e0, one row of 6*dim per group */
    hb_add_vec(ws->mod, 6 * D, a->e0, a->g.group_stride, G, 6 * D, &B->modulation_t);
    const hb_modgroups mg = {a->g.rows_per_group, 6 * D};
    const float *mod = ws->mod;
    float scale = (float)(1.0 / sqrt((double)c->head_dim));

    /* ---- self-attention */
    hb_layernorm_modulate(ws->h, x, L, D, eps, mod + 0 * D, mod + 1 * D, mg);
    float *kd = a->kv_k ? a->kv_k + a->kv_write * D : ws->k;
    float *vd = a->kv_v ? a->kv_v + a->kv_write * D : ws->v;
    if (c->qk_norm) {
        if (hb_linear(ws->o, ws->h, L, &B->sa_q_w, &B->sa_q_b, false)) return -1;
        hb_rmsnorm(ws->q, ws->o, L, D, &B->sa_norm_q, eps);
        if (hb_linear(ws->o, ws->h, L, &B->sa_k_w, &B->sa_k_b, false)) return -1;
        hb_rmsnorm(kd, ws->o, L, D, &B->sa_norm_k, eps);
    } else {
        if (hb_linear(ws->q, ws->h, L, &B->sa_q_w, &B->sa_q_b, false)) return -1;
        if (hb_linear(kd, ws->h, L, &B->sa_k_w, &B->sa_k_b, false)) return -1;
    }
    if (hb_linear(vd, ws->h, L, &B->sa_v_w, &B->sa_v_b, false)) return -1;
    hb_rope3d(ws->q, L, c->num_heads, c->head_dim, D, (int)a->H, (int)a->W, a->f0);
    hb_rope3d(kd, L, c->num_heads, c->head_dim, D, (int)a->H, (int)a->W, a->f0);
    hb_attention_args at = {0};
    at.out = ws->o; at.q = ws->q;
    if (a->kv_k) { at.k = a->kv_k + a->kv_start * D; at.v = a->kv_v + a->kv_start * D; at.lk = a->kv_end - a->kv_start; }
    else { at.k = ws->k; at.v = ws->v; at.lk = L; }
    at.lq = L; at.heads = c->num_heads; at.head_dim = c->head_dim;
    at.o_stride = at.q_stride = at.k_stride = at.v_stride = D;
    at.scale = scale;
    hb_attention(&at);
    if (residual_linear(a, layer, "self_attn", x, ws->o, L, D, &B->sa_o_w, &B->sa_o_b, mod + 2 * D, mg, ws->y)) return -1;

    /* ---- cross-attention (no modulation) */
    if (c->cross_attn_norm) hb_layernorm(ws->h, x, L, D, &B->norm3_w, &B->norm3_b, eps);
    else hb_copy(ws->h, x, L * D);
    if (c->qk_norm) {
        if (hb_linear(ws->o, ws->h, L, &B->ca_q_w, &B->ca_q_b, false)) return -1;
        hb_rmsnorm(ws->q, ws->o, L, D, &B->ca_norm_q, eps);
    } else if (hb_linear(ws->q, ws->h, L, &B->ca_q_w, &B->ca_q_b, false)) return -1;
    hb_attention_args ca = at;
    ca.out = ws->o; ca.q = ws->q; ca.k = a->ctx_k; ca.v = a->ctx_v; ca.lk = a->ctx_len;
    hb_attention(&ca);
    if (residual_linear(a, layer, "cross_attn", x, ws->o, L, D, &B->ca_o_w, &B->ca_o_b, NULL, mg, ws->y)) return -1;

    /* ---- FFN, in row chunks (hidden [chunk, ffn_dim]) */
    hb_layernorm_modulate(ws->h, x, L, D, eps, mod + 3 * D, mod + 4 * D, mg);
    const hb_epilogue gelu = {HB_EPI_GELU_TANH, NULL, {0, 0}, 0};
    for (int64_t r0 = 0; r0 < L; r0 += ws->hid_rows) {
        int64_t n = L - r0 < ws->hid_rows ? L - r0 : ws->hid_rows;
        if (hb_linear_ep(ws->hid, ws->h + r0 * D, n, &B->ffn0_w, &B->ffn0_b, gelu)) return -1;
        /* x's rows r0.. are no longer read: the FFN input h was taken from x before the loop */
        const hb_epilogue gate = {HB_EPI_GATED_ADD, mod + 5 * D, mg, r0};
        if (a->tap ? hb_linear(ws->y + r0 * D, ws->hid, n, &B->ffn2_w, &B->ffn2_b, false)
                   : hb_linear_ep(x + r0 * D, ws->hid, n, &B->ffn2_w, &B->ffn2_b, gate))
            return -1;
    }
    if (a->tap) {
        tapf(a, layer, "ffn", ws->y, L, D);
        hb_gated_add(x, ws->y, L, D, mod + 5 * D, mg);
    }
    tapf(a, layer, NULL, x, L, D);
    return 0;
}

int hb_wan_dit_head(const wan_dit *m, const float *x, int64_t L, const float *e, hb_modgroups g, float *out_tok,
                 wan_dit_ws *ws) {
    const int64_t D = m->cfg.dim, G = groups_used(L, g);
    if (G * 2 > ws->mod_groups * 6) return hb_error("wan_dit head: too many modulation groups");
    hb_add_vec(ws->mod, 2 * D, e, g.group_stride, G, D, &m->head_shift_t);
    hb_add_vec(ws->mod + D, 2 * D, e, g.group_stride, G, D, &m->head_scale_t);
    hb_modgroups mg = {g.rows_per_group, 2 * D};
    hb_layernorm_modulate(ws->h, x, L, D, m->cfg.eps, ws->mod, ws->mod + D, mg);
    return hb_linear(out_tok, ws->h, L, &m->head_w, &m->head_b, false);
}

/* ---------------------------------------------------------------- forward */

/* The forward's own buffers in floats, in the order hb_wan_dit_bufs_alloc takes them: patch rows, x, time
 * embedding, projection and scratch, head tokens, then (without a prepared prompt) the text ones. */
enum { FWD_BUFS = 9 };
static int fwd_sizes(const wan_dit_config *c, int64_t L, int64_t G, bool text_prepared, int64_t n[FWD_BUFS]) {
    const int64_t D = c->dim, P = (int64_t)c->patch[0] * c->patch[1] * c->patch[2], T = c->text_len;
    const int64_t s[FWD_BUFS] = {L * c->in_dim * P, L * D, G * D, G * 6 * D, G * (c->freq_dim + D), L * P * c->out_dim,
                                 T * D, T * c->text_dim, T * D};
    memcpy(n, s, sizeof s);
    return text_prepared ? 6 : FWD_BUFS;
}

size_t hb_wan_dit_workspace_bytes(const wan_dit_config *c, int64_t L, int64_t nt, bool text_prepared) {
    int64_t n[FWD_BUFS];
    return f32_bytes(n, fwd_sizes(c, L, nt, text_prepared, n)) + hb_wan_dit_ws_bytes(c, L, nt);
}

int hb_wan_dit_bufs_alloc(const wan_dit *m, int64_t L, int64_t G, bool text_prepared, hb_arena *a, wan_dit_bufs *b) {
    int64_t n[FWD_BUFS];
    int k = fwd_sizes(&m->cfg, L, G, text_prepared, n);
    memset(b, 0, sizeof *b);
    float **dst[FWD_BUFS] = {&b->rows, &b->x, &b->e, &b->e0, &b->ttmp, &b->tok, &b->emb, &b->pad, &b->ttxt};
    for (int i = 0; i < k; i++)
        if (!(*dst[i] = arena_f32(a, n[i]))) return -1;
    return hb_wan_dit_ws_alloc(m, L, G, a, &b->ws);
}

static int check_input(const wan_dit *m, const wan_dit_input *in, int64_t *L) {
    const wan_dit_config *c = &m->cfg;
    if (!in->x || !in->t) return hb_error("wan_dit: missing latent or timestep");
    if (in->F <= 0 || in->H <= 0 || in->W <= 0 || in->F % c->patch[0] || in->H % c->patch[1] || in->W % c->patch[2])
        return hb_error("wan_dit: latent size %lldx%lldx%lld is not a positive multiple of the patch %dx%dx%d",
                        (long long)in->F, (long long)in->H, (long long)in->W, c->patch[0], c->patch[1], c->patch[2]);
    int64_t Fp = in->F / c->patch[0];
    *L = Fp * (in->H / c->patch[1]) * (in->W / c->patch[2]);
    if (in->nt != 1 && in->nt != Fp && in->nt != *L)
        return hb_error("wan_dit: %lld timesteps; need 1, one per latent frame (%lld) or one per token (%lld)",
                        (long long)in->nt, (long long)Fp, (long long)*L);
    if (!in->text) {
        if (!in->context) return hb_error("wan_dit: missing context");
        if (in->ctx_len < 0 || in->ctx_len > c->text_len)
            return hb_error("wan_dit: the context has %lld rows, more than text_len %d", (long long)in->ctx_len, c->text_len);
    } else if (in->text->len != c->text_len) return hb_error("wan_dit: prepared text has the wrong length");
    return 0;
}

/* Group the timesteps: returns G and fills vals[G], g.rows_per_group (group_stride set by the caller). */
static int64_t group_timesteps(const wan_dit_input *in, int64_t L, int64_t tpf, bool no_group, float *vals,
                               int64_t *rows_per_group) {
    const int64_t nt = in->nt, Fp = L / tpf;
    bool all_same = true;
    for (int64_t i = 1; i < nt; i++) if (in->t[i] != in->t[0]) { all_same = false; break; }
    if (nt == 1 || (all_same && !no_group)) { vals[0] = in->t[0]; *rows_per_group = L; return 1; }
    if (nt == L && nt != Fp) {
        bool per_frame = !no_group;
        for (int64_t i = 0; per_frame && i < L; i++) if (in->t[i] != in->t[(i / tpf) * tpf]) per_frame = false;
        if (!per_frame) { memcpy(vals, in->t, sizeof(float) * (size_t)L); *rows_per_group = 1; return L; }
        for (int64_t f = 0; f < Fp; f++) vals[f] = in->t[f * tpf];
        *rows_per_group = tpf;
        return Fp;
    }
    memcpy(vals, in->t, sizeof(float) * (size_t)Fp);
    *rows_per_group = tpf;
    return Fp;
}

int hb_wan_dit_forward(const wan_dit *m, const wan_dit_input *in, float *out, const wan_dit_opts *opts_in) {
    static const wan_dit_opts none = {0};
    const wan_dit_opts *o = opts_in ? opts_in : &none;
    const wan_dit_config *c = &m->cfg;
    const int64_t D = c->dim, T = c->text_len;
    int64_t L = 0;
    if (check_input(m, in, &L)) return -1;
    const int64_t Hp = in->H / c->patch[1], Wp = in->W / c->patch[2], Fp = in->F / c->patch[0], tpf = Hp * Wp;
    hb_arena own, *a = o->arena;
    bool owned = false;
    if (!a) {
        if (hb_arena_init_dev(&own, hb_wan_dit_workspace_bytes(c, L, in->nt, in->text != NULL), "wan_dit activations")) return -1;
        a = &own;
        owned = true;
    }
    size_t mark = hb_arena_mark(a);
    int rc = -1;
    wan_dit_bufs b;
    float *tvals = hb_malloc(sizeof(float) * (size_t)in->nt, "timesteps"); /* host: grouping reads them */
    if (!tvals || hb_wan_dit_bufs_alloc(m, L, in->nt, in->text != NULL, a, &b)) goto done;
    const wan_dit_tap_fn tap = o->tap;

    /* patch embedding */
    hb_wan_dit_patchify(c, in->x, in->F, in->H, in->W, b.rows);
    if (hb_linear(b.x, b.rows, L, &m->patch_w, &m->patch_b, false)) goto done;
    if (tap) tap(o->tap_user, "patch_embedding", b.x, L, D, NULL);

    /* time embedding, grouped */
    int64_t rpg;
    int64_t G = group_timesteps(in, L, tpf, o->no_group, tvals, &rpg);
    (void)Fp;
    if (hb_wan_dit_time_embed(m, tvals, G, b.e, b.e0, b.ttmp)) goto done;
    hb_modgroups ge = {rpg, D}, ge0 = {rpg, 6 * D};
    if (tap) {
        tap(o->tap_user, "time_embedding", b.e, L, D, &ge);
        tap(o->tap_user, "time_projection", b.e0, L, 6 * D, &ge0);
    }

    /* text */
    const float *emb = in->text ? in->text->emb : b.emb;
    if (!in->text) {
        if (text_embed(m, in->context, in->ctx_len, b.emb, b.pad, b.ttxt)) goto done;
        if (tap) tap(o->tap_user, "text_embedding", b.emb, T, D, NULL);
    }

    hb_progress prog;
    hb_progress_begin(&prog, o->progress, o->progress_user, "dit blocks", c->num_layers);
    for (int l = 0; l < c->num_layers; l++) {
        wan_dit_block_args ba = {0};
        ba.L = L; ba.H = Hp; ba.W = Wp; ba.f0 = in->f0;
        ba.e0 = b.e0; ba.g = ge0;
        if (in->text && in->text->k) {
            ba.ctx_k = in->text->k + (int64_t)l * T * D;
            ba.ctx_v = in->text->v + (int64_t)l * T * D;
        } else {
            if (hb_wan_dit_cross_kv(m, l, emb, T, b.ws.ctx_k, b.ws.ctx_v, b.ws.h)) goto done_prog;
            ba.ctx_k = b.ws.ctx_k; ba.ctx_v = b.ws.ctx_v;
        }
        ba.ctx_len = T;
        ba.tap = tap; ba.tap_user = o->tap_user;
        if (hb_wan_dit_block(m, l, b.x, &ba, &b.ws)) goto done_prog;
        hb_progress_step(&prog, l + 1);
    }
    if (hb_wan_dit_head(m, b.x, L, b.e, ge, b.tok, &b.ws)) goto done_prog;
    if (tap) tap(o->tap_user, "head", b.tok, L, (int64_t)c->patch[0] * c->patch[1] * c->patch[2] * c->out_dim, NULL);
    hb_wan_dit_unpatchify(c, b.tok, in->F, in->H, in->W, out);
    rc = 0;
done_prog:
    hb_progress_end(&prog);
done:
    hb_free(tvals);
    hb_arena_reset(a, mark);
    if (owned) hb_arena_free(&own);
    return rc;
}

double hb_wan_dit_forward_flops(const wan_dit_config *c, int64_t L, bool text_cached) {
    const double D = c->dim, FF = c->ffn_dim, T = c->text_len, P = (double)c->patch[0] * c->patch[1] * c->patch[2];
    double mac = 0;
    mac += (double)L * c->in_dim * P * D;                           /* patch embedding */
    mac += (double)L * D * P * c->out_dim;                          /* head */
    double per_layer = (double)L * (6 * D * D + 2 * D * FF)         /* q k v o, cross q o, ffn */
                       + 2.0 * L * L * D + 2.0 * L * T * D;         /* self and cross attention */
    if (!text_cached) per_layer += 2.0 * T * D * D;                 /* cross K, V */
    mac += per_layer * c->num_layers;
    if (!text_cached) mac += T * (c->text_dim * D + D * D);         /* text embedding */
    return 2.0 * mac;
}
