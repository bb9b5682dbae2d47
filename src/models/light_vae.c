/* The Hummingbird-XT light VAE decoder (see light_vae.h and docs/light_vae.md). */
#include "models/light_vae.h"
#include "models/wan_vae.h"
#include "ops/ops.h"
#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- config */

void hb_light_vae_config_default(hb_light_vae_config *c, bool causal) {
    memset(c, 0, sizeof *c);
    c->z_dim = 48, c->out_channels = 3, c->patch = 2, c->n_blocks = 5;
    static const int wd[5] = {256, 256, 192, 128, 64}, rb[5] = {2, 2, 2, 1, 1};
    static const int ut[4] = {1, 2, 2, 1}, us[4] = {1, 2, 2, 2};
    for (int i = 0; i < 5; i++) c->widths[i] = wd[i], c->res_blocks[i] = rb[i], c->depthwise[i] = i < 3;
    for (int i = 0; i < 4; i++) c->up_t[i] = ut[i], c->up_s[i] = us[i];
    c->kernel_t = 3, c->kernel_s = 3, c->dw_kernel_t = 3, c->dw_kernel_s = 3;
    c->causal = causal, c->denormalize = true, c->clamp = true;
}

int hb_light_vae_config_check(const hb_light_vae_config *c) {
    if (c->z_dim < 1 || c->out_channels < 1 || c->patch < 1)
        return hb_error("light_vae config: z_dim, out_channels and patch must be >= 1");
    if (c->n_blocks < 1 || c->n_blocks > HB_LIGHT_VAE_MAX_BLOCKS)
        return hb_error("light_vae config: %d blocks (1..%d allowed)", c->n_blocks, HB_LIGHT_VAE_MAX_BLOCKS);
    for (int i = 0; i < c->n_blocks; i++) {
        if (c->widths[i] < 1) return hb_error("light_vae config: widths[%d] = %d must be >= 1", i, c->widths[i]);
        if (c->res_blocks[i] < 0) return hb_error("light_vae config: res_blocks[%d] = %d is negative", i, c->res_blocks[i]);
    }
    for (int i = 0; i + 1 < c->n_blocks; i++)
        if (c->up_t[i] < 1 || c->up_s[i] < 1 || c->up_t[i] > 8 || c->up_s[i] > 8)
            return hb_error("light_vae config: up_t[%d] = %d / up_s[%d] = %d out of 1..8", i, c->up_t[i], i, c->up_s[i]);
    int ks[4] = {c->kernel_t, c->kernel_s, c->dw_kernel_t, c->dw_kernel_s};
    for (int i = 0; i < 4; i++)
        if (ks[i] < 1 || ks[i] % 2 == 0 || ks[i] > 15)
            return hb_error("light_vae config: kernel sizes must be odd, 1..15 (got %d)", ks[i]);
    return 0;
}

static int json_int_array(json_t *o, const char *key, int *dst, int n_expect, int *n_out) {
    json_t *x = json_object_get(o, key);
    if (!x) return 0;
    if (!json_is_array(x)) return hb_error("light_vae config: \"%s\" must be an array", key);
    size_t n = json_array_size(x);
    if (n > HB_LIGHT_VAE_MAX_BLOCKS || (n_expect >= 0 && (int)n != n_expect))
        return hb_error("light_vae config: \"%s\" has %zu entries, expected %d", key, n, n_expect);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(x, i);
        if (json_is_integer(e)) dst[i] = (int)json_integer_value(e);
        else if (json_is_boolean(e)) dst[i] = json_is_true(e);
        else return hb_error("light_vae config: \"%s\"[%zu] is not an integer", key, i);
    }
    if (n_out) *n_out = (int)n;
    return 0;
}

static int json_int(json_t *o, const char *key, int *dst) {
    json_t *x = json_object_get(o, key);
    if (!x) return 0;
    if (!json_is_integer(x)) return hb_error("light_vae config: \"%s\" must be an integer", key);
    *dst = (int)json_integer_value(x);
    return 0;
}

static int json_bool(json_t *o, const char *key, bool *dst) {
    json_t *x = json_object_get(o, key);
    if (!x) return 0;
    if (!json_is_boolean(x)) return hb_error("light_vae config: \"%s\" must be true or false", key);
    *dst = json_is_true(x);
    return 0;
}

int hb_light_vae_config_from_json(hb_light_vae_config *c, const char *json) {
    static const char *known[] = {"format", "version", "z_dim", "out_channels", "patch", "widths", "res_blocks",
                                  "depthwise", "up_t", "up_s", "kernel", "dw_kernel", "causal", "latent_norm",
                                  "clamp", "norm", NULL};
    bool causal = true;
    json_error_t jerr;
    json_t *o = json_loads(json ? json : "", 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return hb_error("light_vae config: not a JSON object (%s, line %d)", jerr.text, jerr.line);
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int i = 0;
        while (known[i] && strcmp(known[i], k)) i++;
        if (!known[i]) {
            hb_error("light_vae config: unknown key \"%s\"", k);
            json_decref(o);
            return -1;
        }
    }
    int rc = json_bool(o, "causal", &causal);
    hb_light_vae_config_default(c, causal);
    json_t *x = json_object_get(o, "format");
    if (!rc && x && (!json_is_string(x) || strcmp(json_string_value(x), "hummingbird-light-vae")))
        rc = hb_error("light_vae config: \"format\" must be \"hummingbird-light-vae\"");
    x = json_object_get(o, "norm");
    if (!rc && x && (!json_is_string(x) || strcmp(json_string_value(x), "channel_rms")))
        rc = hb_error("light_vae config: \"norm\" must be \"channel_rms\" (the only one implemented)");
    int version = 1;
    if (!rc) rc = json_int(o, "version", &version);
    if (!rc && version != 1) rc = hb_error("light_vae config: version %d not supported (1)", version);
    if (!rc) rc = json_int(o, "z_dim", &c->z_dim);
    if (!rc) rc = json_int(o, "out_channels", &c->out_channels);
    if (!rc) rc = json_int(o, "patch", &c->patch);
    int nb = c->n_blocks;
    if (!rc && json_object_get(o, "widths")) rc = json_int_array(o, "widths", c->widths, -1, &nb);
    if (!rc && nb < 1) rc = hb_error("light_vae config: \"widths\" is empty");
    c->n_blocks = nb;
    int tmp[HB_LIGHT_VAE_MAX_BLOCKS];
    if (!rc) rc = json_int_array(o, "res_blocks", c->res_blocks, nb, NULL);
    if (!rc && json_object_get(o, "depthwise")) {
        rc = json_int_array(o, "depthwise", tmp, nb, NULL);
        for (int i = 0; i < nb && !rc; i++) c->depthwise[i] = tmp[i] != 0;
    }
    if (!rc) rc = json_int_array(o, "up_t", c->up_t, nb - 1, NULL);
    if (!rc) rc = json_int_array(o, "up_s", c->up_s, nb - 1, NULL);
    if (!rc && json_object_get(o, "kernel")) {
        rc = json_int_array(o, "kernel", tmp, 2, NULL);
        if (!rc) c->kernel_t = tmp[0], c->kernel_s = tmp[1];
    }
    if (!rc && json_object_get(o, "dw_kernel")) {
        rc = json_int_array(o, "dw_kernel", tmp, 2, NULL);
        if (!rc) c->dw_kernel_t = tmp[0], c->dw_kernel_s = tmp[1];
    }
    x = json_object_get(o, "latent_norm");
    if (!rc && x) {
        const char *s = json_is_string(x) ? json_string_value(x) : "";
        if (!strcmp(s, "denormalize")) c->denormalize = true;
        else if (!strcmp(s, "none")) c->denormalize = false;
        else rc = hb_error("light_vae config: \"latent_norm\" must be \"denormalize\" or \"none\"");
    }
    if (!rc) rc = json_bool(o, "clamp", &c->clamp);
    json_decref(o);
    if (!rc) rc = hb_light_vae_config_check(c);
    return rc;
}

char *hb_light_vae_config_to_json(const hb_light_vae_config *c) {
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("hummingbird-light-vae"));
    json_object_set_new(o, "version", json_integer(1));
    json_object_set_new(o, "z_dim", json_integer(c->z_dim));
    json_object_set_new(o, "out_channels", json_integer(c->out_channels));
    json_object_set_new(o, "patch", json_integer(c->patch));
    json_t *wd = json_array(), *rb = json_array(), *dw = json_array(), *ut = json_array(), *us = json_array();
    for (int i = 0; i < c->n_blocks; i++) {
        json_array_append_new(wd, json_integer(c->widths[i]));
        json_array_append_new(rb, json_integer(c->res_blocks[i]));
        json_array_append_new(dw, json_boolean(c->depthwise[i]));
        if (i + 1 < c->n_blocks) {
            json_array_append_new(ut, json_integer(c->up_t[i]));
            json_array_append_new(us, json_integer(c->up_s[i]));
        }
    }
    json_object_set_new(o, "widths", wd);
    json_object_set_new(o, "res_blocks", rb);
    json_object_set_new(o, "depthwise", dw);
    json_object_set_new(o, "up_t", ut);
    json_object_set_new(o, "up_s", us);
    json_t *k = json_array(), *dk = json_array();
    json_array_append_new(k, json_integer(c->kernel_t));
    json_array_append_new(k, json_integer(c->kernel_s));
    json_array_append_new(dk, json_integer(c->dw_kernel_t));
    json_array_append_new(dk, json_integer(c->dw_kernel_s));
    json_object_set_new(o, "kernel", k);
    json_object_set_new(o, "dw_kernel", dk);
    json_object_set_new(o, "causal", json_boolean(c->causal));
    json_object_set_new(o, "latent_norm", json_string(c->denormalize ? "denormalize" : "none"));
    json_object_set_new(o, "norm", json_string("channel_rms"));
    json_object_set_new(o, "clamp", json_boolean(c->clamp));
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ---------------------------------------------------------------- weights */

/* One convolution: plain (groups 1) or depthwise (groups = cin). slot: feature-cache slot (-1 if kt = 1). */
typedef struct {
    hb_tensor w, b;
    bool has_b;
    int64_t cin, cout;
    int kt, ks, groups, slot;
    /* 3x3 conv fused with a preceding 2x nearest spatial upsampling: the four phase weights [cout, cin, kt, 2, 2]
     * (host memory, built once at load; wp owns them) */
    float *wp;
    hb_tensor wph[4];
} lconv;
/* A conv of the network: plain, or depthwise + pointwise. */
typedef struct {
    bool dw;
    lconv a, p;
} lsep;
typedef struct {
    hb_tensor g1, g2;
    lsep c1, c2;
} lres;
typedef struct {
    lsep entry; /* blocks > 0 */
    int nres;
    lres *res;
} lblock;

struct hb_light_vae {
    hb_light_vae_config cfg;
    lsep conv_in, head;
    hb_tensor head_g;
    lblock blocks[HB_LIGHT_VAE_MAX_BLOCKS];
    float *mean, *std; /* [z] (denormalize) */
    int nslots;
    int64_t nparams;
    bool unfused; /* HB_LIGHT_VAE_UNFUSED=1: upsample then conv literally (for comparisons) */
    float *owned;            /* random weights */
    int64_t owned_n;         /* floats in owned */
    hb_checkpoint *ck_owned; /* hb_light_vae_load */
};

/* The walk over the weight list, shared by enumeration, loading and random init. */
typedef int (*lw_fn)(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out);

typedef struct {
    lw_fn fn;
    void *u;
    int nslots;
    int64_t nparams;
} lwalk;

static int lw_get(lwalk *W, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    W->nparams += n;
    hb_tensor dummy;
    return W->fn(W->u, name, ndim, shape, out ? out : &dummy);
}

static int lw_conv(lwalk *W, lconv *c, const char *name, int64_t cin, int64_t cout, int kt, int ks, bool dw, bool bias) {
    char nm[256];
    c->cin = cin, c->cout = cout, c->kt = kt, c->ks = ks, c->groups = dw ? (int)cin : 1, c->has_b = bias;
    c->slot = kt > 1 ? W->nslots++ : -1;
    int64_t shp[5] = {cout, dw ? 1 : cin, kt, ks, ks};
    snprintf(nm, sizeof nm, "%s.weight", name);
    if (lw_get(W, nm, 5, shp, &c->w)) return -1;
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias", name);
        if (lw_get(W, nm, 1, &cout, &c->b)) return -1;
    }
    return 0;
}

static int lw_sep(lwalk *W, lsep *s, const char *name, int64_t cin, int64_t cout, bool dw, const hb_light_vae_config *c) {
    char nm[200];
    s->dw = dw;
    if (!dw) return lw_conv(W, &s->a, name, cin, cout, c->kernel_t, c->kernel_s, false, true);
    snprintf(nm, sizeof nm, "%s.dw", name);
    if (lw_conv(W, &s->a, nm, cin, cin, c->dw_kernel_t, c->dw_kernel_s, true, false)) return -1;
    snprintf(nm, sizeof nm, "%s.pw", name);
    return lw_conv(W, &s->p, nm, cin, cout, 1, 1, false, true);
}

static int lw_model(lwalk *W, hb_light_vae *m) {
    const hb_light_vae_config *c = &m->cfg;
    char nm[160];
    int64_t z = c->z_dim;
    if (c->denormalize) {
        hb_tensor tm, ts;
        if (lw_get(W, "latent.mean", 1, &z, &tm) || lw_get(W, "latent.std", 1, &z, &ts)) return -1;
        if (m->mean && tm.data && ts.data) { /* keep f32 copies */
            hb_convert_to_f32(m->mean, tm.data, tm.dtype, (size_t)z);
            hb_convert_to_f32(m->std, ts.data, ts.dtype, (size_t)z);
        }
    }
    if (lw_conv(W, &m->conv_in.a, "conv_in", z, c->widths[0], c->kernel_t, c->kernel_s, false, true)) return -1;
    m->conv_in.dw = false;
    for (int i = 0; i < c->n_blocks; i++) {
        lblock *b = &m->blocks[i];
        int64_t C = c->widths[i];
        if (i > 0) {
            snprintf(nm, sizeof nm, "blocks.%d.entry", i);
            if (lw_sep(W, &b->entry, nm, c->widths[i - 1], C, c->depthwise[i], c)) return -1;
        }
        b->nres = c->res_blocks[i];
        for (int j = 0; j < b->nres; j++) {
            lres *r = b->res ? &b->res[j] : NULL;
            lres dummy;
            if (!r) r = &dummy;
            snprintf(nm, sizeof nm, "blocks.%d.res.%d.norm1.gamma", i, j);
            if (lw_get(W, nm, 1, &C, &r->g1)) return -1;
            snprintf(nm, sizeof nm, "blocks.%d.res.%d.conv1", i, j);
            if (lw_sep(W, &r->c1, nm, C, C, c->depthwise[i], c)) return -1;
            snprintf(nm, sizeof nm, "blocks.%d.res.%d.norm2.gamma", i, j);
            if (lw_get(W, nm, 1, &C, &r->g2)) return -1;
            snprintf(nm, sizeof nm, "blocks.%d.res.%d.conv2", i, j);
            if (lw_sep(W, &r->c2, nm, C, C, c->depthwise[i], c)) return -1;
        }
    }
    int64_t Cl = c->widths[c->n_blocks - 1];
    if (lw_get(W, "head.norm.gamma", 1, &Cl, &m->head_g)) return -1;
    m->head.dw = false;
    return lw_conv(W, &m->head.a, "head.conv", Cl, (int64_t)c->out_channels * c->patch * c->patch, c->kernel_t,
                   c->kernel_s, false, true);
}

typedef struct { hb_light_vae_weight_cb cb; void *u; } enum_ctx;
static int enum_fn(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    enum_ctx *e = u;
    memset(out, 0, sizeof *out);
    return e->cb(e->u, name, ndim, shape);
}

int hb_light_vae_weights(const hb_light_vae_config *c, hb_light_vae_weight_cb fn, void *user) {
    if (hb_light_vae_config_check(c)) return -1;
    hb_light_vae m;
    memset(&m, 0, sizeof m);
    m.cfg = *c;
    enum_ctx e = {fn, user};
    lwalk W = {enum_fn, &e, 0, 0};
    return lw_model(&W, &m);
}

static hb_light_vae *model_new(const hb_light_vae_config *c) {
    if (hb_light_vae_config_check(c)) return NULL;
    hb_light_vae *m = hb_calloc(sizeof *m, "light_vae model");
    if (!m) return NULL;
    m->cfg = *c;
    const char *uf = getenv("HB_LIGHT_VAE_UNFUSED");
    m->unfused = uf && *uf && strcmp(uf, "0");
    for (int i = 0; i < c->n_blocks; i++)
        if (c->res_blocks[i] > 0 && !(m->blocks[i].res = hb_calloc(sizeof(lres) * (size_t)c->res_blocks[i], "light_vae blocks"))) {
            hb_light_vae_free(m);
            return NULL;
        }
    if (c->denormalize) {
        m->mean = hb_malloc(sizeof(float) * (size_t)c->z_dim, "light_vae latent stats");
        m->std = hb_malloc(sizeof(float) * (size_t)c->z_dim, "light_vae latent stats");
        if (!m->mean || !m->std) { hb_light_vae_free(m); return NULL; }
    }
    return m;
}

static int build(hb_light_vae *m, lw_fn fn, void *u) {
    lwalk W = {fn, u, 0, 0};
    if (lw_model(&W, m)) return -1;
    m->nslots = W.nslots, m->nparams = W.nparams;
    return 0;
}

/* The entry convs that run fused with their 2x spatial upsampling (see net_run) get their four phase weights:
 * output row 2i+py of conv3x3(upsample2x(x)) reads input rows {i-1, i, i} (py = 0) or {i, i, i+1} (py = 1),
 * so taps hitting the same input row (column) are summed into a 2x2 kernel. Host memory, passed to the conv
 * op as an f32 weight (a device backend uploads it once). */
static bool entry_fused(const hb_light_vae *m, int i) {
    const hb_light_vae_config *c = &m->cfg;
    const lsep *en = &m->blocks[i].entry;
    return i > 0 && c->up_t[i - 1] == 1 && c->up_s[i - 1] == 2 && !en->dw && en->a.ks == 3 && !m->unfused;
}

static int prepare_fused(hb_light_vae *m) {
    for (int i = 1; i < m->cfg.n_blocks; i++) {
        if (!entry_fused(m, i)) continue;
        lconv *c = &m->blocks[i].entry.a;
        int64_t nk = c->cout * c->cin * c->kt;
        float *wf = hb_malloc(sizeof(float) * (size_t)(nk * 9), "light_vae conv weight");
        if (!wf || !(c->wp = hb_malloc(sizeof(float) * (size_t)(16 * nk), "light_vae phase weights"))) {
            hb_free(wf);
            return -1;
        }
        hb_convert_to_f32(wf, c->w.data, c->w.dtype, (size_t)(nk * 9));
        int64_t shp[5] = {c->cout, c->cin, c->kt, 2, 2};
        for (int py = 0; py < 2; py++)
            for (int px = 0; px < 2; px++) {
                float *we = c->wp + (py * 2 + px) * nk * 4;
                memset(we, 0, sizeof(float) * (size_t)(nk * 4));
                for (int64_t k = 0; k < nk; k++)
                    for (int a = 0; a < 3; a++)
                        for (int bq = 0; bq < 3; bq++) {
                            int u = py == 0 ? a >= 1 : a >= 2, v = px == 0 ? bq >= 1 : bq >= 2;
                            we[k * 4 + u * 2 + v] += wf[k * 9 + a * 3 + bq];
                        }
                c->wph[py * 2 + px] = hb_tensor_make(HB_F32, 5, shp, we);
            }
        hb_free(wf);
    }
    return 0;
}

typedef struct { const hb_checkpoint *ck; } ck_ctx;
static int ck_fn(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    const hb_checkpoint *ck = ((ck_ctx *)u)->ck;
    if (hb_checkpoint_get_shaped(ck, name, ndim, shape, out)) return -1;
    if (out->dtype != HB_F32 && out->dtype != HB_BF16 && out->dtype != HB_F16)
        return hb_error("%s: light_vae weight %s has dtype %s (F32/BF16/F16 expected)", hb_checkpoint_path(ck), name,
                        hb_dtype_name(out->dtype));
    if (!hb_tensor_is_contiguous(out))
        return hb_error("%s: light_vae weight %s is not contiguous", hb_checkpoint_path(ck), name);
    return 0;
}

hb_light_vae *hb_light_vae_load_ck(const hb_checkpoint *ck, const hb_light_vae_config *cfg) {
    hb_light_vae_config c;
    if (!cfg) {
        const char *js = hb_checkpoint_metadata(ck, HB_LIGHT_VAE_META_KEY);
        if (!js) {
            hb_error("%s: no \"%s\" in the safetensors metadata (not a light VAE checkpoint?)", hb_checkpoint_path(ck),
                     HB_LIGHT_VAE_META_KEY);
            return NULL;
        }
        if (hb_light_vae_config_from_json(&c, js)) {
            hb_error_prefix("%s: ", hb_checkpoint_path(ck));
            return NULL;
        }
        cfg = &c;
    }
    hb_light_vae *m = model_new(cfg);
    if (!m) return NULL;
    ck_ctx cc = {ck};
    if (build(m, ck_fn, &cc) || prepare_fused(m)) { hb_light_vae_free(m); return NULL; }
    if (m->std)
        for (int i = 0; i < cfg->z_dim; i++)
            if (!(m->std[i] > 0.0f) && !(m->std[i] < 0.0f)) {
                hb_error("%s: light_vae latent.std[%d] is %g", hb_checkpoint_path(ck), i, (double)m->std[i]);
                hb_light_vae_free(m);
                return NULL;
            }
    return m;
}

static bool is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }

hb_light_vae *hb_light_vae_load(const char *path) {
    char buf[4096];
    if (is_dir(path)) {
        snprintf(buf, sizeof buf, "%s/light_vae.safetensors", path);
        path = buf;
    }
    hb_checkpoint *ck = hb_checkpoint_open(path);
    if (!ck) return NULL;
    hb_light_vae *m = hb_light_vae_load_ck(ck, NULL);
    if (!m) { hb_checkpoint_close(ck); return NULL; }
    m->ck_owned = ck;
    return m;
}

/* Random weights: sizes first (pass 1), then values (pass 2) from one buffer. */
typedef struct {
    float *buf;
    int64_t off;
    hb_rng rng;
    int z;
    /* for the writer */
    int n;
    char **names;
    hb_tensor *ts;
} rnd_ctx;

static int rnd_fn(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    rnd_ctx *r = u;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *d = r->buf ? r->buf + r->off : NULL;
    r->off += (n + 15) / 16 * 16;
    if (!d) { memset(out, 0, sizeof *out); out->ndim = ndim; return 0; }
    *out = hb_tensor_make(HB_F32, ndim, shape, d);
    size_t len = strlen(name);
    bool is = len >= 6 && !strcmp(name + len - 6, ".gamma");
    if (!strcmp(name, "latent.mean") || !strcmp(name, "latent.std")) {
        int zz = 0;
        const float *v = !strcmp(name, "latent.mean") ? hb_wan_vae_official_mean(HB_WAN_VAE_22, &zz)
                                                       : hb_wan_vae_official_std(HB_WAN_VAE_22, &zz);
        bool mean = !strcmp(name, "latent.mean");
        for (int64_t i = 0; i < n; i++) d[i] = (zz == n && v) ? v[i] : (mean ? 0.0f : 1.0f);
    } else if (is) {
        for (int64_t i = 0; i < n; i++) d[i] = 1.0f + 0.01f * hb_rng_normal(&r->rng);
    } else if (ndim == 1) {
        for (int64_t i = 0; i < n; i++) d[i] = 0.01f * hb_rng_normal(&r->rng);
    } else {
        double fan = (double)(n / shape[0]);
        float sd = (float)(1.0 / __builtin_sqrt(fan));
        if (!strncmp(name, "head.", 5)) sd *= 0.5f;
        for (int64_t i = 0; i < n; i++) d[i] = sd * hb_rng_normal(&r->rng);
    }
    if (r->names) {
        r->names[r->n] = strdup(name);
        r->ts[r->n++] = *out;
    }
    return 0;
}

static hb_light_vae *create_random(const hb_light_vae_config *cfg, uint64_t seed, rnd_ctx *r) {
    hb_light_vae *m = model_new(cfg);
    if (!m) return NULL;
    r->buf = NULL, r->off = 0;
    if (build(m, rnd_fn, r)) { hb_light_vae_free(m); return NULL; }
    if (!(m->owned = hb_malloc(sizeof(float) * (size_t)r->off, "light_vae random weights"))) {
        hb_light_vae_free(m);
        return NULL;
    }
    m->owned_n = r->off;
    r->buf = m->owned, r->off = 0;
    hb_rng_seed(&r->rng, seed);
    if (build(m, rnd_fn, r) || prepare_fused(m)) { hb_light_vae_free(m); return NULL; }
    if (m->mean) {
        int zz = 0;
        const float *mv = hb_wan_vae_official_mean(HB_WAN_VAE_22, &zz), *sv = hb_wan_vae_official_std(HB_WAN_VAE_22, &zz);
        for (int i = 0; i < cfg->z_dim; i++) {
            m->mean[i] = zz == cfg->z_dim ? mv[i] : 0.0f;
            m->std[i] = zz == cfg->z_dim ? sv[i] : 1.0f;
        }
    }
    return m;
}

hb_light_vae *hb_light_vae_create_random(const hb_light_vae_config *cfg, uint64_t seed) {
    rnd_ctx r;
    memset(&r, 0, sizeof r);
    return create_random(cfg, seed, &r);
}

static int count_cb(void *u, const char *name, int ndim, const int64_t *shape) {
    (void)name, (void)ndim, (void)shape;
    (*(int *)u)++;
    return 0;
}

int hb_light_vae_write_random(const char *dir_or_file, const hb_light_vae_config *cfg, uint64_t seed) {
    hb_light_vae_config dc;
    if (!cfg) { hb_light_vae_config_default(&dc, true); cfg = &dc; }
    int n = 0;
    if (hb_light_vae_weights(cfg, count_cb, &n)) return -1;
    char path[4096];
    size_t L = strlen(dir_or_file);
    if (L > 12 && !strcmp(dir_or_file + L - 12, ".safetensors")) snprintf(path, sizeof path, "%s", dir_or_file);
    else {
        if (!is_dir(dir_or_file) && mkdir(dir_or_file, 0755) != 0)
            return hb_error("%s: cannot create folder: %s", dir_or_file, strerror(errno));
        snprintf(path, sizeof path, "%s/light_vae.safetensors", dir_or_file);
    }
    rnd_ctx r;
    memset(&r, 0, sizeof r);
    r.names = calloc((size_t)n, sizeof(char *));
    r.ts = calloc((size_t)n, sizeof(hb_tensor));
    int rc = -1;
    hb_light_vae *m = NULL;
    if (!r.names || !r.ts) { hb_error("light_vae: out of memory"); goto out; }
    /* first build only sizes (names not recorded), then values */
    char **names = r.names;
    hb_tensor *ts = r.ts;
    r.names = NULL, r.ts = NULL;
    m = hb_light_vae_create_random(cfg, seed);
    if (!m) goto out_names;
    /* re-run the walk to collect names and tensors over the model's own buffer */
    {
        rnd_ctx q;
        memset(&q, 0, sizeof q);
        q.buf = m->owned, q.names = names, q.ts = ts;
        hb_rng_seed(&q.rng, seed);
        hb_light_vae tmp = *m;
        if (build(&tmp, rnd_fn, &q)) goto out_names;
        char *js = hb_light_vae_config_to_json(cfg);
        const char *meta[] = {HB_LIGHT_VAE_META_KEY, js, "format", "pt", NULL};
        rc = hb_safetensors_write(path, q.n, (const char *const *)names, ts, meta);
        free(js);
        for (int i = 0; i < q.n; i++) free(names[i]);
    }
out_names:
    r.names = names, r.ts = ts;
out:
    hb_light_vae_free(m);
    free(r.names);
    free(r.ts);
    return rc;
}

static void release_host(void *p, size_t bytes) {
    if (!p) return;
    hb_host_memory_released(p, bytes); /* a device backend may hold a copy of it */
    hb_free(p);
}

void hb_light_vae_free(hb_light_vae *m) {
    if (!m) return;
    for (int i = 0; i < HB_LIGHT_VAE_MAX_BLOCKS; i++) {
        lconv *e = &m->blocks[i].entry.a;
        if (e->wp) release_host(e->wp, sizeof(float) * (size_t)(16 * e->cout * e->cin * e->kt));
        hb_free(m->blocks[i].res);
    }
    release_host(m->mean, sizeof(float) * (size_t)m->cfg.z_dim);
    release_host(m->std, sizeof(float) * (size_t)m->cfg.z_dim);
    release_host(m->owned, sizeof(float) * (size_t)m->owned_n);
    if (m->ck_owned) hb_checkpoint_close(m->ck_owned);
    hb_free(m);
}

const hb_light_vae_config *hb_light_vae_get_config(const hb_light_vae *m) { return &m->cfg; }
int hb_light_vae_temporal_factor(const hb_light_vae *m) {
    int f = 1;
    for (int i = 0; i + 1 < m->cfg.n_blocks; i++) f *= m->cfg.up_t[i];
    return f;
}
int hb_light_vae_spatial_factor(const hb_light_vae *m) {
    int f = m->cfg.patch;
    for (int i = 0; i + 1 < m->cfg.n_blocks; i++) f *= m->cfg.up_s[i];
    return f;
}
int64_t hb_light_vae_decoded_frames(const hb_light_vae *m, int64_t t) {
    return t <= 0 ? 0 : 1 + (int64_t)hb_light_vae_temporal_factor(m) * (t - 1);
}
int64_t hb_light_vae_param_count(const hb_light_vae *m) { return m->nparams; }

/* ---------------------------------------------------------------- forward */

typedef struct {
    const hb_light_vae *m;
    bool dry, stream;
    hb_arena a;
    float **cache;     /* [nslots] each [C, kt-1, H, W] (stream mode) */
    int64_t *cache_n;  /* elements per slot */
    double flops;
} lrun;

static float *ralloc(lrun *r, int64_t n) { return hb_arena_alloc(&r->a, (size_t)n * sizeof(float)); }

/* The conv proper on a time-prepared input (Tx frames, time padding in prm). up2: x is the low-resolution
 * input of a 2x nearest spatial upsampling followed by this conv (ks = 3, groups 1): each of the 4 output
 * phases is a 2x2 conv of x with summed weights (2.25x fewer multiply-adds, no upsampled copy), then the
 * phases are interleaved into y [Cout, To, 2H, 2W]. */
static int conv_core(lrun *r, const lconv *c, const float *x, int64_t Tx, int64_t H, int64_t W, hb_conv3d_params *prm,
                     float *y, bool up2) {
    const hb_tensor *b = c->has_b ? &c->b : NULL;
    int64_t To = Tx + prm->pad_t[0] + prm->pad_t[1] - c->kt + 1;
    if (!up2) {
        r->flops += 2.0 * (double)c->cout * (double)(c->cin / c->groups) * c->kt * c->ks * c->ks * (double)(To * H * W);
        return r->dry ? 0 : hb_conv3d(y, x, c->cin, Tx, H, W, &c->w, b, prm);
    }
    r->flops += 2.0 * (double)c->cout * (double)c->cin * c->kt * 16 * (double)(To * H * W);
    int64_t HW = H * W;
    size_t mark = hb_arena_mark(&r->a);
    float *tmp = ralloc(r, c->cout * To * HW);
    if (!tmp) return -1;
    if (r->dry) { hb_arena_reset(&r->a, mark); return 0; }
    if (!c->wp) { hb_arena_reset(&r->a, mark); return hb_error("light_vae: fused upsampling conv without phase weights"); }
    /* phase (py, px) of y [cout*To, 2H, 2W]: rows 2i+py, columns 2j+px */
    const int64_t shp[3] = {c->cout * To, H, W}, ss[3] = {HW, W, 1}, ds[3] = {4 * HW, 4 * W, 2};
    int rc = 0;
    for (int py = 0; py < 2 && !rc; py++)
        for (int px = 0; px < 2 && !rc; px++) {
            hb_conv3d_params pp = *prm;
            pp.pad_h[0] = py == 0, pp.pad_h[1] = py == 1, pp.pad_w[0] = px == 0, pp.pad_w[1] = px == 1;
            rc = hb_conv3d(tmp, x, c->cin, Tx, H, W, &c->wph[py * 2 + px], b, &pp);
            if (!rc) hb_copy_nd(y + py * 2 * W + px, ds, tmp, ss, 3, shp);
        }
    hb_arena_reset(&r->a, mark);
    return rc;
}

static int conv_apply_up(lrun *r, const lconv *c, const float *x, int64_t T, int64_t H, int64_t W, float *y, bool up2) {
    int p = c->ks / 2;
    hb_conv3d_params prm = {{1, 1, 1}, {0, 0}, {p, p}, {p, p}, c->groups};
    int kp = c->kt - 1;
    if (kp == 0) return conv_core(r, c, x, T, H, W, &prm, y, up2);
    if (!r->stream) {
        if (r->m->cfg.causal) prm.pad_t[0] = kp;
        else prm.pad_t[0] = kp / 2, prm.pad_t[1] = kp - kp / 2;
        return conv_core(r, c, x, T, H, W, &prm, y, up2);
    }
    /* causal with cache: [cache (kp frames) | x (T frames)], no time padding */
    int64_t HW = H * W, Tt = T + kp;
    size_t mark = hb_arena_mark(&r->a);
    float *cat = ralloc(r, c->cin * Tt * HW);
    if (!cat) return -1;
    if (r->dry) {
        if (c->cin * kp * HW > r->cache_n[c->slot]) r->cache_n[c->slot] = c->cin * kp * HW;
        int rc = conv_core(r, c, cat, Tt, H, W, &prm, y, up2);
        hb_arena_reset(&r->a, mark);
        return rc;
    }
    float *cc = r->cache[c->slot];
    hb_copy_rows(cat, Tt * HW, cc, kp * HW, c->cin, kp * HW);
    hb_copy_rows(cat + kp * HW, Tt * HW, x, T * HW, c->cin, T * HW);
    int rc = conv_core(r, c, cat, Tt, H, W, &prm, y, up2);
    hb_copy_rows(cc, kp * HW, cat + T * HW, Tt * HW, c->cin, kp * HW);
    hb_arena_reset(&r->a, mark);
    return rc;
}

static int conv_apply(lrun *r, const lconv *c, const float *x, int64_t T, int64_t H, int64_t W, float *y) {
    return conv_apply_up(r, c, x, T, H, W, y, false);
}

static int sep_apply(lrun *r, const lsep *s, const float *x, int64_t T, int64_t H, int64_t W, float *y) {
    if (!s->dw) return conv_apply(r, &s->a, x, T, H, W, y);
    size_t mark = hb_arena_mark(&r->a);
    float *t = ralloc(r, s->a.cout * T * H * W);
    if (!t) return -1;
    int rc = conv_apply(r, &s->a, x, T, H, W, t);
    if (!rc) rc = conv_apply(r, &s->p, t, T, H, W, y);
    hb_arena_reset(&r->a, mark);
    return rc;
}

static void norm_silu(lrun *r, float *y, const float *x, int64_t C, int64_t S, const hb_tensor *g) {
    if (r->dry) return;
    hb_channel_rmsnorm(y, x, C, S, g, NULL);
    hb_silu(y, y, C * S);
}

static int res_apply(lrun *r, const lres *b, float *x, int64_t C, int64_t T, int64_t H, int64_t W) {
    int64_t S = T * H * W, n = C * S;
    size_t mark = hb_arena_mark(&r->a);
    float *h = ralloc(r, n), *t = ralloc(r, n);
    if (!h || !t) return -1;
    norm_silu(r, h, x, C, S, &b->g1);
    int rc = sep_apply(r, &b->c1, h, T, H, W, t);
    norm_silu(r, h, t, C, S, &b->g2);
    if (!rc) rc = sep_apply(r, &b->c2, h, T, H, W, t);
    if (!rc && !r->dry) hb_add(x, x, t, n);
    hb_arena_reset(&r->a, mark);
    return rc;
}

/* Move n floats down the arena (dst <= src, possibly overlapping) with non-overlapping copies: chunk k of
 * src goes to where chunk k-1 of src was, which the previous copy has already read. */
static void move_down(lrun *r, float *dst, const float *src, int64_t n) {
    if (r->dry || dst == src || n <= 0) return;
    int64_t d = (int64_t)(src - dst);
    for (int64_t i = 0; i < n; i += d) hb_copy(dst + i, src + i, n - i < d ? n - i : d);
}

/* The network on n latent frames [z, n, h, w] (channel stride cstride): out = head output
 * [out*p^2, F n, H', W'] allocated from the arena (after *mark0). */
static int net_run(lrun *r, const float *lat, int64_t n, int64_t h, int64_t w, int64_t cstride, float **out,
                   int64_t *To, int64_t *Ho, int64_t *Wo) {
    const hb_light_vae *m = r->m;
    const hb_light_vae_config *c = &m->cfg;
    int64_t z = c->z_dim, T = n, H = h, W = w;
    size_t base = hb_arena_mark(&r->a);
    float *in = ralloc(r, z * T * H * W);
    if (!in) return -1;
    if (!r->dry) {
        int64_t S = T * H * W;
        if (c->denormalize) { /* z * std + mean, per channel */
            hb_tensor sd = hb_tensor_1d(HB_F32, z, m->std), mu = hb_tensor_1d(HB_F32, z, m->mean);
            if (cstride == S) hb_channel_affine(in, lat, z, S, &sd, &mu);
            else {
                hb_copy_rows(in, S, lat, cstride, z, S);
                hb_channel_affine(in, in, z, S, &sd, &mu);
            }
        } else hb_copy_rows(in, S, lat, cstride, z, S);
    }
    float *x = ralloc(r, (int64_t)c->widths[0] * T * H * W);
    if (!x) return -1;
    if (conv_apply(r, &m->conv_in.a, in, T, H, W, x)) return -1;
    /* move x down to base (drop the input copy) */
    int64_t C = c->widths[0];
    hb_arena_reset(&r->a, base);
    float *x2 = ralloc(r, C * T * H * W);
    move_down(r, x2, x, C * T * H * W);
    x = x2;
    for (int i = 0; i < c->n_blocks; i++) {
        if (i > 0) {
            int ft = c->up_t[i - 1], fs = c->up_s[i - 1];
            int64_t T2 = T * ft, H2 = H * fs, W2 = W * fs, C2 = c->widths[i];
            float *u = x;
            const lsep *en = &m->blocks[i].entry;
            /* spatial-only 2x upsampling into a plain 3x3 conv: fused (no upsampled copy) */
            bool fuse = entry_fused(m, i);
            if (fuse) {
                float *y = ralloc(r, C2 * T2 * H2 * W2);
                if (!y || conv_apply_up(r, &en->a, x, T, H, W, y, true)) return -1;
                hb_arena_reset(&r->a, base);
                x = ralloc(r, C2 * T2 * H2 * W2);
                move_down(r, x, y, C2 * T2 * H2 * W2);
                C = C2, T = T2, H = H2, W = W2;
                for (int j = 0; j < m->blocks[i].nres; j++)
                    if (res_apply(r, &m->blocks[i].res[j], x, C, T, H, W)) return -1;
                continue;
            }
            if (ft > 1 || fs > 1) {
                if (!(u = ralloc(r, C * T2 * H2 * W2))) return -1;
                if (!r->dry) hb_upsample_nearest(u, x, C, T, H, W, ft, fs, fs);
            }
            float *y = ralloc(r, C2 * T2 * H2 * W2);
            if (!y) return -1;
            if (sep_apply(r, &m->blocks[i].entry, u, T2, H2, W2, y)) return -1;
            hb_arena_reset(&r->a, base);
            x = ralloc(r, C2 * T2 * H2 * W2);
            move_down(r, x, y, C2 * T2 * H2 * W2);
            C = C2, T = T2, H = H2, W = W2;
        }
        for (int j = 0; j < m->blocks[i].nres; j++)
            if (res_apply(r, &m->blocks[i].res[j], x, C, T, H, W)) return -1;
    }
    int64_t S = T * H * W, Co = (int64_t)c->out_channels * c->patch * c->patch;
    float *hbuf = ralloc(r, C * S), *o = ralloc(r, Co * S);
    if (!hbuf || !o) return -1;
    norm_silu(r, hbuf, x, C, S, &m->head_g);
    if (conv_apply(r, &m->head.a, hbuf, T, H, W, o)) return -1;
    hb_arena_reset(&r->a, base);
    float *o2 = ralloc(r, Co * S);
    move_down(r, o2, o, Co * S);
    *out = o2, *To = T, *Ho = H, *Wo = W;
    return 0;
}

/* head output [Co, Tn, Hn, Wn] -> video frames [skip, Tn) into dst [3, ndst, Hn p, Wn p] at frame d0 */
static void finish_frames(const hb_light_vae *m, lrun *r, const float *o, int64_t Tn, int64_t Hn, int64_t Wn, int64_t skip,
                          float *dst, int64_t ndst, int64_t d0) {
    const hb_light_vae_config *c = &m->cfg;
    int p = c->patch;
    int64_t Co = (int64_t)c->out_channels * p * p, HWo = Hn * Wn * p * p, cnt = Tn - skip;
    size_t mark = hb_arena_mark(&r->a);
    float *sh = p > 1 ? ralloc(r, (int64_t)c->out_channels * Tn * HWo) : (float *)o;
    (void)Co;
    if (!r->dry && dst && sh && cnt > 0) {
        if (p > 1) hb_pixel_shuffle(sh, o, c->out_channels, Tn, Hn, Wn, p, HB_PS_CRQ);
        for (int64_t ch = 0; ch < c->out_channels; ch++) {
            float *dd = dst + (ch * ndst + d0) * HWo;
            const float *ss = sh + (ch * Tn + skip) * HWo;
            if (c->clamp) hb_elementwise(HB_EW_CLAMP, dd, ss, NULL, -1.0f, 1.0f, cnt * HWo);
            else hb_copy(dd, ss, cnt * HWo);
        }
    }
    hb_arena_reset(&r->a, mark);
}

static int check_size(const hb_light_vae *m, int64_t t, int64_t h, int64_t w) {
    (void)m;
    if (t < 1 || h < 1 || w < 1)
        return hb_error("light_vae: latent size %lldx%lldx%lld must be positive", (long long)t, (long long)h, (long long)w);
    return 0;
}

static int whole(const hb_light_vae *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video, float *raw,
                 bool dry, int64_t *bytes, double *flops) {
    if (check_size(m, t, h, w)) return -1;
    lrun r;
    memset(&r, 0, sizeof r);
    r.m = m, r.dry = true;
    hb_arena_init_measure(&r.a, "light_vae");
    float *o;
    int64_t To, Ho, Wo;
    int rc = net_run(&r, latent, t, h, w, t * h * w, &o, &To, &Ho, &Wo);
    if (!rc) finish_frames(m, &r, o, To, Ho, Wo, 0, NULL, 0, 0);
    size_t need = r.a.peak;
    if (bytes) *bytes = (int64_t)need;
    if (flops) *flops = r.flops;
    hb_arena_free(&r.a);
    if (rc || dry) return rc;
    memset(&r, 0, sizeof r);
    r.m = m;
    if (hb_arena_init_dev(&r.a, need, "light_vae decode")) return -1;
    rc = net_run(&r, latent, t, h, w, t * h * w, &o, &To, &Ho, &Wo);
    if (!rc) {
        int F = hb_light_vae_temporal_factor(m);
        if (raw) hb_copy(raw, o, (int64_t)m->cfg.out_channels * m->cfg.patch * m->cfg.patch * To * Ho * Wo);
        finish_frames(m, &r, o, To, Ho, Wo, F - 1, video, To - (F - 1), 0);
    }
    hb_arena_free(&r.a);
    return rc;
}

int hb_light_vae_decode_whole(const hb_light_vae *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video,
                              float *raw) {
    return whole(m, latent, t, h, w, video, raw, false, NULL, NULL);
}

static int stream_push_into(hb_light_vae_stream *s, const float *latent, int64_t n, int64_t cstride, float *video,
                            int64_t ndst, int64_t d0, int64_t *nout);

/* causal models: latent by latent through the feature caches (bit-identical, memory independent of t); each
 * latent's frames go straight into their place in video */
int hb_light_vae_decode(const hb_light_vae *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video,
                        float *raw) {
    if (!m->cfg.causal || raw) return whole(m, latent, t, h, w, video, raw, false, NULL, NULL);
    if (check_size(m, t, h, w)) return -1;
    hb_light_vae_stream *s = hb_light_vae_stream_new(m, h, w, 1);
    if (!s) return -1;
    int64_t nf = hb_light_vae_decoded_frames(m, t), done = 0;
    int rc = 0;
    for (int64_t i = 0; i < t && !rc; i++) {
        int64_t no = 0;
        rc = stream_push_into(s, latent + i * h * w, 1, t * h * w, video, nf, done, &no);
        done += no;
    }
    hb_light_vae_stream_free(s);
    return rc;
}

int64_t hb_light_vae_decode_workspace(const hb_light_vae *m, int64_t t, int64_t h, int64_t w) {
    if (m->cfg.causal) {
        if (check_size(m, t, h, w)) return -1;
        hb_light_vae_stream *s = hb_light_vae_stream_new(m, h, w, 1);
        if (!s) return -1;
        int64_t b = (int64_t)hb_light_vae_stream_bytes(s);
        hb_light_vae_stream_free(s);
        return b;
    }
    int64_t b = -1;
    if (whole(m, NULL, t, h, w, NULL, NULL, true, &b, NULL)) return -1;
    return b;
}

double hb_light_vae_decode_flops(const hb_light_vae *m, int64_t t, int64_t h, int64_t w) {
    double f = -1;
    if (whole(m, NULL, t, h, w, NULL, NULL, true, NULL, &f)) return -1;
    return f;
}

/* ---------------------------------------------------------------- streaming */

struct hb_light_vae_stream {
    const hb_light_vae *m;
    lrun r;
    int64_t h, w, max_chunk, frames_out, latents_in;
    size_t bytes;
};

hb_light_vae_stream *hb_light_vae_stream_new(const hb_light_vae *m, int64_t h, int64_t w, int max_chunk) {
    if (!m->cfg.causal) {
        hb_error("light_vae: streaming needs a causal model (this config has \"causal\": false; decode overlapping "
                 "clips with pipeline/longdecode instead)");
        return NULL;
    }
    if (check_size(m, 1, h, w)) return NULL;
    if (max_chunk < 1) max_chunk = 1;
    hb_light_vae_stream *s = hb_calloc(sizeof *s, "light_vae stream");
    if (!s) return NULL;
    s->m = m, s->h = h, s->w = w, s->max_chunk = max_chunk;
    int ns = m->nslots > 0 ? m->nslots : 1;
    s->r.m = m, s->r.stream = true, s->r.dry = true;
    s->r.cache = hb_calloc(sizeof(float *) * (size_t)ns, "light_vae stream");
    s->r.cache_n = hb_calloc(sizeof(int64_t) * (size_t)ns, "light_vae stream");
    if (!s->r.cache || !s->r.cache_n) { hb_light_vae_stream_free(s); return NULL; }
    hb_arena_init_measure(&s->r.a, "light_vae stream");
    float *o;
    int64_t To, Ho, Wo;
    if (net_run(&s->r, NULL, max_chunk, h, w, 0, &o, &To, &Ho, &Wo)) { hb_light_vae_stream_free(s); return NULL; }
    finish_frames(m, &s->r, o, To, Ho, Wo, 0, NULL, 0, 0);
    size_t need = s->r.a.peak;
    hb_arena_free(&s->r.a);
    s->r.dry = false;
    if (hb_arena_init_dev(&s->r.a, need, "light_vae stream")) { hb_light_vae_stream_free(s); return NULL; }
    s->bytes = need;
    for (int i = 0; i < m->nslots; i++) {
        if (!(s->r.cache[i] = hb_dev_calloc_f32(s->r.cache_n[i] > 0 ? s->r.cache_n[i] : 1, "light_vae feature cache"))) {
            hb_light_vae_stream_free(s);
            return NULL;
        }
        s->bytes += sizeof(float) * (size_t)s->r.cache_n[i];
    }
    return s;
}

void hb_light_vae_stream_reset(hb_light_vae_stream *s) {
    for (int i = 0; i < s->m->nslots; i++)
        if (s->r.cache_n[i] > 0) hb_dev_zero(s->r.cache[i], sizeof(float) * (size_t)s->r.cache_n[i]);
    s->frames_out = 0, s->latents_in = 0;
}

/* Frames of n latents into video [3, ndst, H, W] from frame d0 on. */
static int stream_push_into(hb_light_vae_stream *s, const float *latent, int64_t n, int64_t cstride, float *video,
                            int64_t ndst, int64_t d0, int64_t *nout) {
    const hb_light_vae *m = s->m;
    int F = hb_light_vae_temporal_factor(m);
    int64_t done = 0;
    for (int64_t i0 = 0; i0 < n; i0 += s->max_chunk) {
        int64_t k = n - i0 < s->max_chunk ? n - i0 : s->max_chunk;
        float *o;
        int64_t To, Ho, Wo;
        size_t mark = hb_arena_mark(&s->r.a);
        if (net_run(&s->r, latent + i0 * s->h * s->w, k, s->h, s->w, cstride, &o, &To, &Ho, &Wo)) {
            hb_arena_reset(&s->r.a, mark);
            return -1;
        }
        int64_t skip = s->latents_in == 0 ? F - 1 : 0;
        finish_frames(m, &s->r, o, To, Ho, Wo, skip, video, ndst, d0 + done);
        hb_arena_reset(&s->r.a, mark);
        done += To - skip;
        s->latents_in += k;
    }
    s->frames_out += done;
    if (nout) *nout = done;
    return 0;
}

int hb_light_vae_stream_push(hb_light_vae_stream *s, const float *latent, int64_t n, int64_t cstride, float *video,
                             int64_t *nout) {
    int F = hb_light_vae_temporal_factor(s->m);
    if (cstride == 0) cstride = n * s->h * s->w;
    int64_t total = n * F - (s->latents_in == 0 && n > 0 ? F - 1 : 0);
    return stream_push_into(s, latent, n, cstride, video, total, 0, nout);
}

size_t hb_light_vae_stream_bytes(const hb_light_vae_stream *s) { return s->bytes; }
int64_t hb_light_vae_stream_frames_out(const hb_light_vae_stream *s) { return s->frames_out; }

void hb_light_vae_stream_free(hb_light_vae_stream *s) {
    if (!s) return;
    if (s->r.cache)
        for (int i = 0; i < s->m->nslots; i++) hb_dev_free(s->r.cache[i]);
    hb_free(s->r.cache);
    hb_free(s->r.cache_n);
    hb_arena_free(&s->r.a);
    hb_free(s);
}
