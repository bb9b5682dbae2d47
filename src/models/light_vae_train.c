/* The trainable light decoder (light_vae_train.h): structure and parameters (named and ordered as PyTorch's
 * named_parameters of the release's decoder, then the heads), loading, random init, the optimiser step. The
 * forward and backward passes are in light_vae_train_graph.c. */
#include "models/light_vae_train_impl.h"
#include <jansson.h>
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

/* The decoder's walk (hb_lv_walk), twice: first each tensor becomes a parameter, then the tree's tensor a view of
 * its weights in m->w (parameter `next`). */
typedef struct {
    hb_lvt *m;
    int next;
} lt_walk;

static int param_fn(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    memset(out, 0, sizeof *out);
    return add_param(((lt_walk *)u)->m, name, ndim, shape) < 0 ? -1 : 0;
}

static int view_fn(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    lt_walk *W = u;
    (void)name;
    *out = hb_tensor_make(HB_F32, ndim, shape, W->m->w + W->m->params[W->next++].off);
    return 0;
}

/* head i's convs: parameters aligned_feature_projection_heads.{i}.{0,1}.conv.{weight,bias} [out, in, 1, 1, 1] */
static int heads_def(hb_lvt *m) {
    for (int i = 0; i < m->nheads; i++)
        for (int j = 0; j < 2; j++) {
            int64_t cin = j ? m->heads[i].head_out_dim : m->heads[i].student_dim, shp[5] = {m->heads[i].head_out_dim, cin, 1, 1, 1};
            char nm[96];
            snprintf(nm, sizeof nm, "aligned_feature_projection_heads.%d.%d.conv.weight", i, j);
            if (add_param(m, nm, 5, shp) < 0) return -1;
            snprintf(nm, sizeof nm, "aligned_feature_projection_heads.%d.%d.conv.bias", i, j);
            if (add_param(m, nm, 1, shp) < 0) return -1;
        }
    return 0;
}

static void heads_view(hb_lvt *m) {
    for (int i = 0, k = m->ndecoder; i < m->nheads; i++)
        for (int j = 0; j < 2; j++, k += 2) {
            const hb_lvt_param *w = &m->params[k], *b = &m->params[k + 1];
            m->net->head[i][j] = (lv_conv){.w = hb_tensor_make(HB_F32, 5, w->shape, m->w + w->off),
                                           .b = hb_tensor_1d(HB_F32, b->n, m->w + b->off), .cin = w->shape[1],
                                           .cout = w->shape[0], .k = 1, .groups = 1, .slot = -1};
        }
}

/* the parameters (decoder, then heads), the weight buffer and the decoder's tree over it */
static int net_def(hb_lvt *m) {
    lt_walk W = {m, 0};
    if (!(m->net->dec = hb_lv_new(&m->cfg)) || hb_light_vae_set_latent_stats(m->net->dec, NULL, NULL, 0) ||
        hb_lv_walk(m->net->dec, param_fn, &W))
        return -1;
    m->ndecoder = m->nparams;
    if (heads_def(m) || !(m->w = hb_calloc(sizeof(float) * (size_t)m->total, "light_vae train weights")) ||
        hb_lv_walk(m->net->dec, view_fn, &W))
        return -1;
    heads_view(m);
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
    if (m->net) hb_light_vae_free(m->net->dec);
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
        !(m->g = hb_dev_alloc(sizeof(float) * (size_t)(m->total > 0 ? m->total : 1), "light_vae train gradients"))) {
        hb_lvt_free(m);
        return NULL;
    }
    hb_lvt_zero_grad(m);
    return m;
}

int hb_lvt_set_latent_stats(hb_lvt *m, const float *mean, const float *std, int n) {
    return hb_light_vae_set_latent_stats(m->net->dec, mean, std, n);
}

const hb_lvt_param *hb_lvt_find(const hb_lvt *m, const char *name) {
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

int hb_lvt_load(hb_lvt *m, const hb_checkpoint *ck, bool heads_required) {
    for (int i = 0; i < m->nparams; i++) {
        const hb_lvt_param *p = &m->params[i];
        if (i >= m->ndecoder && !heads_required && !hb_checkpoint_has(ck, p->name)) continue;
        hb_tensor t;
        if (hb_lv_checkpoint_weight(ck, p->name, p->ndim, p->shape, &t)) return -1;
        hb_convert_to_f32(m->w + p->off, t.data, t.dtype, (size_t)p->n);
    }
    return 0;
}

/* the decoder as hb_light_vae_create_random draws it (one stream, in parameter order), head biases N(0, 0.01^2) */
void hb_lvt_init_random(hb_lvt *m, uint64_t seed) {
    hb_rng r;
    hb_rng_seed(&r, seed);
    for (int i = 0; i < m->nparams; i++) {
        const hb_lvt_param *p = &m->params[i];
        hb_lv_random_fill(&r, p->name, p->ndim, p->shape, m->w + p->off, i >= m->ndecoder ? 0.01f : 0.1f);
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
