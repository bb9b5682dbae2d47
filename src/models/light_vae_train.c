/* The trainable light decoder (light_vae_train.h): structure and parameters (named and ordered as PyTorch's
 * named_parameters of the release's decoder, then the heads), loading, random init, the optimiser step. The
 * forward and backward passes are in light_vae_train_graph.c. */
#include "models/light_vae_train_impl.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- parameters */

static int add_param(hb_lvt *m, const char *name, int ndim, const int64_t *shape) {
    if (m->nparams % 64 == 0) {
        hb_lvt_param *p = realloc(m->params, sizeof *p * (size_t)(m->nparams + 64));
        if (!p) return hb_error("light_vae train: out of memory");
        m->params = p;
    }
    hb_lvt_param *p = &m->params[m->nparams];
    memset(p, 0, sizeof *p);
    if (!(p->name = strdup(name))) return hb_error("light_vae train: out of memory");
    p->ndim = ndim, p->n = 1, p->off = m->total;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i], p->n *= shape[i];
    m->total += p->n;
    return m->nparams++;
}

hb_tensor hb_lt_param_tensor(const hb_lvt *m, int i) {
    const hb_lvt_param *p = &m->params[i];
    int64_t shp[5] = {p->shape[0], p->shape[1], 1, 1, 1};
    if (p->ndim == 4) shp[2] = 1, shp[3] = p->shape[2], shp[4] = p->shape[3]; /* a Conv2d as a 1-frame Conv3d */
    else for (int d = 2; d < p->ndim; d++) shp[d] = p->shape[d];
    return p->ndim == 1 ? hb_tensor_1d(HB_F32, p->n, m->w + p->off) : hb_tensor_make(HB_F32, 5, shp, m->w + p->off);
}

/* name.weight [cout, cin/groups, kt, kh, kh] (4-D [cout, cin, kh, kh] when kt = 0: a Conv2d) + name.bias */
static int conv_def(hb_lvt *m, lt_conv *c, const char *name, int64_t cin, int64_t cout, int kt, int kh, bool depthwise,
                    int pl, int pr) {
    char nm[256];
    c->cin = cin, c->cout = cout, c->kt = kt > 0 ? kt : 1, c->kh = kh, c->groups = depthwise ? (int)cin : 1;
    c->pl = pl, c->pr = pr;
    int64_t shp[5] = {cout, depthwise ? 1 : cin, kt > 0 ? kt : kh, kh, kh};
    snprintf(nm, sizeof nm, "%s.weight", name);
    if ((c->w = add_param(m, nm, kt > 0 ? 5 : 4, shp)) < 0) return -1;
    snprintf(nm, sizeof nm, "%s.bias", name);
    return (c->b = add_param(m, nm, 1, &cout)) < 0 ? -1 : 0;
}

/* plain conv (name.conv.*, the decoder's time padding) or depthwise + pointwise (symmetric time padding) */
static int sep_def(hb_lvt *m, lt_sep *s, const char *name, int64_t cin, int64_t cout, int k, bool dw) {
    char nm[240];
    s->dw = dw;
    if (!dw) {
        snprintf(nm, sizeof nm, "%s.conv", name);
        int pl = m->cfg.causal ? k - 1 : (k - 1) / 2;
        return conv_def(m, &s->a, nm, cin, cout, k, k, false, pl, k - 1 - pl);
    }
    snprintf(nm, sizeof nm, "%s.depthwise_conv", name);
    if (conv_def(m, &s->a, nm, cin, cin, k, k, true, (k - 1) / 2, (k - 1) / 2)) return -1;
    snprintf(nm, sizeof nm, "%s.pointwise_conv", name);
    return conv_def(m, &s->p, nm, cin, cout, 1, 1, false, 0, 0);
}

static int res_def(hb_lvt *m, lt_res *r, const char *name, int64_t cin, int64_t cout, bool dw, bool relu) {
    char nm[220];
    int k = dw ? m->cfg.dw_kernel : 3;
    r->cin = cin, r->cout = cout, r->relu = relu, r->has_sc = cin != cout;
    snprintf(nm, sizeof nm, "%s.conv1", name);
    if (sep_def(m, &r->c1, nm, cin, cout, k, dw)) return -1;
    snprintf(nm, sizeof nm, "%s.conv2", name);
    if (sep_def(m, &r->c2, nm, cout, cout, k, dw)) return -1;
    if (!r->has_sc) return 0;
    snprintf(nm, sizeof nm, "%s.norm3.weight", name);
    if ((r->ln_w = add_param(m, nm, 1, &cin)) < 0) return -1;
    snprintf(nm, sizeof nm, "%s.norm3.bias", name);
    if ((r->ln_b = add_param(m, nm, 1, &cin)) < 0) return -1;
    snprintf(nm, sizeof nm, "%s.conv_shortcut", name);
    return sep_def(m, &r->sc, nm, cin, cout, 1, dw);
}

static int block_def(hb_lvt *m, int bi) {
    const hb_light_vae_config *c = &m->cfg;
    lt_block *b = &m->net->blk[bi];
    char pre[64], nm[200];
    int64_t cin = c->widths[bi > 0 ? bi - 1 : 0], cout = c->widths[bi];
    if (bi == 0) snprintf(pre, sizeof pre, "mid_block");
    else snprintf(pre, sizeof pre, "up_blocks.%d", bi - 1);
    b->has_up = bi > 0 && c->upsample[bi - 1];
    b->has_entry = bi > 0 && cin != cout;
    if (b->has_entry) {
        snprintf(nm, sizeof nm, "%s.conv_in", pre);
        if (res_def(m, &b->entry, nm, cin, cout, c->dw[bi], false)) return -1;
    }
    if (b->has_up) {
        b->st = c->spatial_only[bi - 1] ? 1 : 2, b->ss = 2;
        snprintf(nm, sizeof nm, "%s.upsamplers.0.conv.conv", pre);
        int pl = c->causal ? 2 : 1;
        if (conv_def(m, &b->up, nm, cout, cout * b->st * b->ss * b->ss, 3, 3, false, pl, 2 - pl)) return -1;
    }
    b->nres = c->layers[bi];
    if (b->nres > 0 && !(b->res = hb_calloc(sizeof(lt_res) * (size_t)b->nres, "light_vae train"))) return -1;
    for (int j = 0; j < b->nres; j++) {
        snprintf(nm, sizeof nm, "%s.resnets.%d", pre, j);
        if (res_def(m, &b->res[j], nm, cout, cout, c->dw[bi], b->has_up)) return -1;
    }
    return 0;
}

static int net_def(hb_lvt *m) {
    const hb_light_vae_config *c = &m->cfg;
    hb_lvt_net *n = m->net;
    lt_sep tmp;
    if (sep_def(m, &tmp, "conv_in", c->latent_channels, c->widths[0], 3, false)) return -1;
    n->conv_in = tmp.a;
    for (int i = 0; i <= c->n_up; i++)
        if (block_def(m, i)) return -1;
    int64_t C = c->widths[c->n_up];
    n->n2d = c->patch_size == 4 ? 2 : c->patch_size == 2 ? 1 : 0;
    for (int s = 0; s < n->n2d; s++, C /= 4) {
        char nm[64];
        snprintf(nm, sizeof nm, "upsampler2d_%d.conv", s + 1);
        if (conv_def(m, &n->s2d[s], nm, C, C, 0, 3, false, 0, 0)) return -1;
    }
    if (sep_def(m, &tmp, "conv_out", C, c->out_channels, 3, false)) return -1;
    n->conv_out = tmp.a;
    m->ndecoder = m->nparams;
    for (int i = 0; i < m->nheads; i++) {
        const hb_lvt_head *h = &m->heads[i];
        char nm[96];
        snprintf(nm, sizeof nm, "aligned_feature_projection_heads.%d.0.conv", i);
        if (conv_def(m, &n->head[i][0], nm, h->student_dim, h->head_out_dim, 1, 1, false, 0, 0)) return -1;
        snprintf(nm, sizeof nm, "aligned_feature_projection_heads.%d.1.conv", i);
        if (conv_def(m, &n->head[i][1], nm, h->head_out_dim, h->head_out_dim, 1, 1, false, 0, 0)) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- model */

int hb_lvt_heads_parse(hb_lvt_head *heads, int *nheads, const char *config_json, const int64_t *teacher_dims,
                       int nteacher, const char *what) {
    json_error_t e;
    json_t *o = json_loads(config_json, 0, &e);
    if (!o) return hb_error("%s: not JSON (%s)", what, e.text);
    json_t *dims = json_object_get(o, "aligned_feature_projection_dim"), *idx = json_object_get(o, "aligned_blks_indices");
    int rc = 0, n = json_is_array(idx) ? (int)json_array_size(idx) : 0;
    if (!json_is_array(dims) || !json_is_array(idx) || json_array_size(dims) != (size_t)n)
        rc = hb_error("%s: aligned_feature_projection_dim / aligned_blks_indices missing or of different lengths", what);
    else if (n > HB_LVT_MAX_HEADS || n != nteacher)
        rc = hb_error("%s: %d heads (at most %d, with %d teacher widths)", what, n, HB_LVT_MAX_HEADS, nteacher);
    for (int i = 0; i < n && !rc; i++) {
        json_t *d = json_array_get(dims, (size_t)i), *b = json_array_get(idx, (size_t)i);
        hb_lvt_head *h = &heads[i];
        if (!json_is_array(d) || json_array_size(d) != 2 || !json_is_integer(b) || json_integer_value(b) < 0 ||
            json_integer_value(b) > HB_LIGHT_VAE_MAX_UP) {
            rc = hb_error("%s: aligned_feature_projection_dim[%d] must be [student, out], aligned_blks_indices[%d] a block index", what, i, i);
            break;
        }
        h->block = (int)json_integer_value(b);
        h->student_dim = json_integer_value(json_array_get(d, 0)), h->head_out_dim = json_integer_value(json_array_get(d, 1));
        h->teacher_dim = teacher_dims[i];
        if (h->head_out_dim == h->teacher_dim) h->align = HB_LVT_ALIGN_NONE;
        else if (h->head_out_dim == 4 * h->teacher_dim) h->align = HB_LVT_ALIGN_S4;
        else if (h->head_out_dim == 8 * h->teacher_dim) h->align = HB_LVT_ALIGN_ST8;
        else rc = hb_error("%s: head %d gives %lld channels for a %lld-channel teacher (1x, 4x or 8x expected)", what, i,
                           (long long)h->head_out_dim, (long long)h->teacher_dim);
        if (!rc && (h->student_dim <= 0 || h->teacher_dim <= 0)) rc = hb_error("%s: head %d has a zero width", what, i);
    }
    json_decref(o);
    *nheads = rc ? 0 : n;
    return rc;
}

void hb_lvt_free(hb_lvt *m) {
    if (!m) return;
    for (int i = 0; i < m->nparams; i++) free(m->params[i].name);
    free(m->params);
    if (m->net)
        for (int i = 0; i <= HB_LIGHT_VAE_MAX_UP; i++) hb_free(m->net->blk[i].res);
    hb_free(m->net);
    hb_free(m->w), hb_dev_free(m->g), hb_free(m->m), hb_free(m->v), hb_free(m->ema), hb_free(m->g_host);
    hb_free(m);
}

hb_lvt *hb_lvt_new(const hb_light_vae_config *cfg, const hb_lvt_head *heads, int nheads) {
    if (hb_light_vae_config_check(cfg, "light_vae config")) return NULL;
    if (nheads < 0 || nheads > HB_LVT_MAX_HEADS) { hb_error("light_vae train: %d heads", nheads); return NULL; }
    hb_lvt *m = hb_calloc(sizeof *m, "light_vae train");
    if (!m) return NULL;
    m->cfg = *cfg, m->nheads = nheads;
    for (int i = 0; i < nheads; i++) {
        m->heads[i] = heads[i];
        if (heads[i].block > cfg->n_up || heads[i].student_dim != cfg->widths[heads[i].block]) {
            hb_error("light_vae train: head %d reads block %d with %lld channels (the block has %d)", i, heads[i].block,
                     (long long)heads[i].student_dim, heads[i].block <= cfg->n_up ? cfg->widths[heads[i].block] : 0);
            hb_lvt_free(m);
            return NULL;
        }
    }
    if (!(m->net = hb_calloc(sizeof *m->net, "light_vae train")) || net_def(m) ||
        !(m->w = hb_calloc(sizeof(float) * (size_t)m->total, "light_vae train weights")) ||
        !(m->g = hb_dev_alloc(sizeof(float) * (size_t)(m->total > 0 ? m->total : 1), "light_vae train gradients")) ||
        hb_lvt_set_latent_stats(m, NULL, NULL, 0)) {
        hb_lvt_free(m);
        return NULL;
    }
    hb_lvt_zero_grad(m);
    return m;
}

int hb_lvt_set_latent_stats(hb_lvt *m, const float *mean, const float *std, int n) {
    int z = m->cfg.latent_channels;
    if (!mean) {
        for (int i = 0; i < z; i++) m->mean[i] = 0.0f, m->scale[i] = 1.0f;
        return 0;
    }
    if (n != z) return hb_error("light_vae train: %d latent statistics for %d latent channels", n, z);
    for (int i = 0; i < z; i++) {
        float inv = 1.0f / std[i]; /* the release divides by 1/std, rounded to float32 first (as light_vae.c) */
        if (!isfinite(inv) || inv == 0.0f) return hb_error("light_vae train: latent std[%d] = %g", i, (double)std[i]);
        m->mean[i] = mean[i], m->scale[i] = (float)(1.0 / (double)inv);
    }
    return 0;
}

const hb_lvt_param *hb_lvt_find(const hb_lvt *m, const char *name) {
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

int hb_lvt_load(hb_lvt *m, const hb_checkpoint *ck, bool heads_required) {
    for (int i = 0; i < m->nparams; i++) {
        const hb_lvt_param *p = &m->params[i];
        char pre[300];
        snprintf(pre, sizeof pre, "decoder.%s", p->name);
        const char *nm = !hb_checkpoint_has(ck, p->name) && i < m->ndecoder && hb_checkpoint_has(ck, pre) ? pre : p->name;
        if (i >= m->ndecoder && !heads_required && !hb_checkpoint_has(ck, nm)) continue;
        hb_tensor t;
        if (hb_checkpoint_get_shaped(ck, nm, p->ndim, p->shape, &t)) return -1;
        if (t.dtype != HB_F32 && t.dtype != HB_BF16 && t.dtype != HB_F16)
            return hb_error("%s: %s has dtype %s (F32/BF16/F16 expected)", hb_checkpoint_path(ck), nm, hb_dtype_name(t.dtype));
        if (!hb_tensor_is_contiguous(&t)) return hb_error("%s: %s is not contiguous", hb_checkpoint_path(ck), nm);
        hb_convert_to_f32(m->w + p->off, t.data, t.dtype, (size_t)p->n);
    }
    return 0;
}

void hb_lvt_init_random(hb_lvt *m, uint64_t seed) {
    hb_rng r;
    hb_rng_seed(&r, seed);
    for (int i = 0; i < m->nparams; i++) {
        const hb_lvt_param *p = &m->params[i];
        float *d = m->w + p->off;
        bool head = i >= m->ndecoder;
        if (strstr(p->name, ".norm3.weight"))
            for (int64_t k = 0; k < p->n; k++) d[k] = 1.0f + 0.1f * hb_rng_normal(&r);
        else if (p->ndim == 1)
            for (int64_t k = 0; k < p->n; k++) d[k] = (head ? 0.01f : 0.1f) * hb_rng_normal(&r);
        else {
            float sd = (float)(1.0 / sqrt((double)(p->n / p->shape[0])));
            if (strstr(p->name, "conv_out.conv.weight")) sd *= 0.5f;
            for (int64_t k = 0; k < p->n; k++) d[k] = sd * hb_rng_normal(&r);
        }
    }
}

void hb_lvt_zero_grad(hb_lvt *m) { hb_fill(m->g, 0.0f, m->total); }

int hb_lvt_grad_to_host(const hb_lvt *m, float *host) {
    return hb_dev_download(host, m->g, sizeof(float) * (size_t)m->total);
}

int hb_lvt_step(hb_lvt *m, const hb_adamw *opt, float ema_decay) {
    size_t b = sizeof(float) * (size_t)m->total;
    if (!m->m && !((m->m = hb_calloc(b, "adam moments")) && (m->v = hb_calloc(b, "adam moments")))) return -1;
    if (!m->g_host && !(m->g_host = hb_malloc(b, "gradients"))) return -1;
    if (hb_lvt_grad_to_host(m, m->g_host)) return -1;
    m->step++;
    const hb_backend *keep = hb_backend_use(NULL); /* the weights are host tensors: the step runs on the CPU */
    for (int i = 0; i < m->nparams; i++) { /* per tensor, as torch's loop over params */
        const hb_lvt_param *p = &m->params[i];
        hb_adamw_step(opt, m->step, m->w + p->off, m->g_host + p->off, m->m + p->off, m->v + p->off, p->n);
    }
    hb_backend_use(keep);
    hb_host_memory_released(m->w, b); /* device copies of the old weights are dropped (re-uploaded on use) */
    if (ema_decay <= 0.0f) return 0;
    if (!m->ema) {
        if (!(m->ema = hb_malloc(b, "ema weights"))) return -1;
        memcpy(m->ema, m->w, b);
        return 0;
    }
    for (int64_t i = 0; i < m->total; i++) m->ema[i] = ema_decay * m->ema[i] + (1.0f - ema_decay) * m->w[i];
    return 0;
}
