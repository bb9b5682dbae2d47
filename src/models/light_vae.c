/* The Hummingbird-XT light VAE decoder: config.json, weights, files (see light_vae.h; the forward pass and the
 * streaming decoder are in light_vae_run.c). */
#include "models/light_vae_impl.h"
#include "models/wan_vae.h"
#include "io/json_file.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- config */

void hb_light_vae_config_default(hb_light_vae_config *c, bool tiny, bool causal) {
    memset(c, 0, sizeof *c);
    c->latent_channels = 48, c->out_channels = 3, c->patch_size = 2, c->causal = causal, c->dw_kernel = 5;
    c->resnet_norm_eps = 1e-6f, c->scale_spatial = 16, c->scale_temporal = 4, c->n_up = 4;
    /* encoder order, as in config.json; reversed below */
    static const int full[4] = {32, 64, 256, 512}, small[4] = {8, 8, 16, 16};
    static const bool st[4] = {true, true, true, false}, so[4] = {true, false, false, false};
    static const bool dw[5] = {false, false, true, true, true};
    for (int i = 0; i < 4; i++) {
        c->widths[1 + i] = (tiny ? small : full)[3 - i];
        c->upsample[i] = st[3 - i], c->spatial_only[i] = so[3 - i];
    }
    c->widths[0] = c->widths[1];
    for (int i = 0; i < 5; i++) c->layers[i] = tiny ? 1 : 2, c->dw[i] = dw[4 - i];
}

int hb_light_vae_config_check(const hb_light_vae_config *c, const char *what) {
    if (c->latent_channels < 1 || c->latent_channels > HB_LIGHT_VAE_MAX_Z || c->out_channels < 1)
        return hb_error("%s: latent_channels %d / out_channels %d out of range", what, c->latent_channels, c->out_channels);
    if (c->patch_size != 1 && c->patch_size != 2 && c->patch_size != 4)
        return hb_error("%s: patch_size %d (1, 2 or 4 supported)", what, c->patch_size);
    if (c->dw_kernel < 1 || c->dw_kernel % 2 == 0 || c->dw_kernel > 15)
        return hb_error("%s: decoder_dw_kernel_size %d must be odd, 1..15", what, c->dw_kernel);
    if (c->n_up < 1 || c->n_up > HB_LIGHT_VAE_MAX_UP)
        return hb_error("%s: %d decoder blocks (1..%d supported)", what, c->n_up, HB_LIGHT_VAE_MAX_UP);
    for (int i = 0; i <= c->n_up; i++) {
        if (c->widths[i] < 1 || c->layers[i] < 0)
            return hb_error("%s: block %d: width %d, layers %d", what, i, c->widths[i], c->layers[i]);
    }
    int last = c->widths[c->n_up], d = c->patch_size * c->patch_size;
    if (last % d) return hb_error("%s: last width %d is not divisible by patch_size^2 = %d", what, last, d);
    if (!(c->resnet_norm_eps > 0)) return hb_error("%s: resnet_norm_eps must be positive", what);
    return 0;
}

/* A config list of n entries (integers or booleans) into dst reversed (execution order). */
static int json_list(json_t *o, const char *key, int *dst, int n, const char *what) {
    json_t *x = json_object_get(o, key);
    if (!json_is_array(x)) return hb_error("%s: \"%s\" is missing or not a list", what, key);
    if ((int)json_array_size(x) != n)
        return hb_error("%s: \"%s\" has %zu entries, expected %d", what, key, json_array_size(x), n);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(x, (size_t)i);
        if (json_is_integer(e) && json_integer_value(e) >= 0 && json_integer_value(e) <= 65536)
            dst[n - 1 - i] = (int)json_integer_value(e);
        else if (json_is_integer(e)) return hb_error("%s: \"%s\"[%d] is outside [0, 65536]", what, key, i);
        else if (json_is_boolean(e)) dst[n - 1 - i] = json_is_true(e);
        else return hb_error("%s: \"%s\"[%d] is not an integer or boolean", what, key, i);
    }
    return 0;
}

/* A number (or boolean) in [lo, hi], integral when `integral`: checked before any conversion to int. */
static int json_num(json_t *o, const char *key, double *dst, bool required, double lo, double hi, bool integral,
                    const char *what) {
    json_t *x = json_object_get(o, key);
    if (!x) return required ? hb_error("%s: \"%s\" is missing", what, key) : 0;
    double v;
    if (json_is_boolean(x)) v = json_is_true(x);
    else if (json_is_number(x)) v = json_number_value(x);
    else return hb_error("%s: \"%s\" must be a number or boolean", what, key);
    if (!(v >= lo && v <= hi) || (integral && v != (double)(int64_t)v))
        return hb_error("%s: \"%s\" = %g must be %s in [%g, %g]", what, key, v, integral ? "an integer" : "a number", lo, hi);
    *dst = v;
    return 0;
}

/* Keys the constructor takes that change the network into something this decoder does not implement. */
static int unsupported(json_t *o, const char *what) {
    static const char *off[] = {"is_video_dc_ae", "timestep_conditioning", NULL};
    for (int i = 0; off[i]; i++)
        if (json_is_true(json_object_get(o, off[i]))) return hb_error("%s: \"%s\": true is not supported", what, off[i]);
    json_t *pt = json_object_get(o, "patch_size_t");
    if (pt && !(json_is_integer(pt) && json_integer_value(pt) == 1))
        return hb_error("%s: \"patch_size_t\" must be 1", what);
    return 0;
}

int hb_light_vae_config_from_json(hb_light_vae_config *c, const char *json, const char *what) {
    json_t *o = hb_json_parse(json ? json : "", json ? strlen(json) : 0, 0, what);
    if (!o) return -1;
    if (!json_is_object(o)) {
        json_decref(o);
        return hb_error("%s: not a JSON object", what);
    }
    memset(c, 0, sizeof *c);
    json_t *bo = json_object_get(o, "decoder_block_out_channels");
    int n = json_is_array(bo) ? (int)json_array_size(bo) : 0, rc = unsupported(o, what);
    if (!rc && (n < 1 || n > HB_LIGHT_VAE_MAX_UP))
        rc = hb_error("%s: \"decoder_block_out_channels\" must be a list of 1..%d widths", what, HB_LIGHT_VAE_MAX_UP);
    c->n_up = n;
    int st[HB_LIGHT_VAE_MAX_UP] = {0}, so[HB_LIGHT_VAE_MAX_UP] = {0}, dw[HB_LIGHT_VAE_MAX_UP + 1] = {0};
    if (!rc) rc = json_list(o, "decoder_block_out_channels", c->widths, n, what);
    if (!rc) rc = json_list(o, "decoder_layers_per_block", c->layers, n + 1, what);
    if (!rc) rc = json_list(o, "decoder_is_dw_conv", dw, n + 1, what);
    if (!rc) rc = json_list(o, "decoder_spatio_temporal_scaling", st, n, what);
    if (!rc && json_object_get(o, "decoder_spatio_only")) rc = json_list(o, "decoder_spatio_only", so, n, what);
    /* widths: W = reversed(block_out); execution width of up block i is W[i], of conv_in / mid W[0] */
    for (int i = n; i > 0 && !rc; i--) c->widths[i] = c->widths[i - 1];
    for (int i = 0; i <= n; i++) c->dw[i] = dw[i] != 0;
    for (int i = 0; i < n; i++) c->upsample[i] = st[i] != 0, c->spatial_only[i] = so[i] != 0;
    double v[8] = {48, 3, 0, 0, 0, 1e-6, 0, 0};
    static const char *keys[8] = {"latent_channels", "out_channels", "patch_size", "decoder_causal",
                                  "decoder_dw_kernel_size", "resnet_norm_eps", "scale_factor_spatial",
                                  "scale_factor_temporal"};
    static const bool req[8] = {true, false, true, true, true, false, false, false};
    static const double lo[8] = {1, 1, 1, 0, 1, 1e-30, 0, 0}, hi[8] = {4096, 64, 8, 1, 15, 1, 1024, 1024};
    for (int i = 0; i < 8 && !rc; i++) rc = json_num(o, keys[i], &v[i], req[i], lo[i], hi[i], i != 5, what);
    json_decref(o);
    if (rc) return rc;
    c->latent_channels = (int)v[0], c->out_channels = (int)v[1], c->patch_size = (int)v[2], c->causal = v[3] != 0;
    c->dw_kernel = (int)v[4], c->resnet_norm_eps = (float)v[5], c->scale_spatial = (int)v[6];
    c->scale_temporal = (int)v[7];
    return hb_light_vae_config_check(c, what);
}

static json_t *list_rev(const int *v, const bool *b, int n) {
    json_t *a = json_array();
    for (int i = n - 1; i >= 0; i--) json_array_append_new(a, b ? json_boolean(b[i]) : json_integer(v[i]));
    return a;
}

char *hb_light_vae_config_to_json(const hb_light_vae_config *c) {
    int n = c->n_up;
    json_t *o = json_object();
    json_object_set_new(o, "_class_name", json_string("AutoencoderKLTurboVAED"));
    json_object_set_new(o, "decoder_block_out_channels", list_rev(c->widths + 1, NULL, n));
    json_object_set_new(o, "decoder_causal", json_boolean(c->causal));
    json_object_set_new(o, "decoder_dw_kernel_size", json_integer(c->dw_kernel));
    json_object_set_new(o, "decoder_is_dw_conv", list_rev(NULL, c->dw, n + 1));
    json_object_set_new(o, "decoder_layers_per_block", list_rev(c->layers, NULL, n + 1));
    json_object_set_new(o, "decoder_spatio_only", list_rev(NULL, c->spatial_only, n));
    json_object_set_new(o, "decoder_spatio_temporal_scaling", list_rev(NULL, c->upsample, n));
    json_object_set_new(o, "in_channels", json_integer(3));
    json_object_set_new(o, "is_video_dc_ae", json_false());
    json_object_set_new(o, "latent_channels", json_integer(c->latent_channels));
    json_object_set_new(o, "out_channels", json_integer(c->out_channels));
    json_object_set_new(o, "patch_size", json_integer(c->patch_size));
    json_object_set_new(o, "patch_size_t", json_integer(1));
    json_object_set_new(o, "resnet_norm_eps", json_real(c->resnet_norm_eps));
    if (c->scale_spatial > 0) json_object_set_new(o, "scale_factor_spatial", json_integer(c->scale_spatial));
    if (c->scale_temporal > 0) json_object_set_new(o, "scale_factor_temporal", json_integer(c->scale_temporal));
    json_object_set_new(o, "scaling_factor", json_real(1.0));
    json_object_set_new(o, "timestep_conditioning", json_false());
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_INDENT(2));
    json_decref(o);
    return s;
}

/* ---------------------------------------------------------------- weights */

/* The walk over the weight list (hb_lv_walk), shared by loading, random init, writing and the trainer. */
typedef struct {
    hb_lv_weight_fn fn;
    void *u;
    hb_light_vae *m;
} lwalk;

static int lw_get(lwalk *W, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    W->m->nparams += n;
    return W->fn(W->u, name, ndim, shape, out);
}

/* name.weight [cout, cin/groups, k, k, k] + name.bias [cout] */
static int lw_conv(lwalk *W, lv_conv *c, const char *name, int64_t cin, int64_t cout, int k, bool depthwise, int pl,
                   int pr) {
    char nm[256];
    c->cin = cin, c->cout = cout, c->k = k, c->groups = depthwise ? (int)cin : 1, c->pl = pl, c->pr = pr;
    c->slot = k > 1 ? W->m->nslots++ : -1;
    int64_t shp[5] = {cout, depthwise ? 1 : cin, k, k, k};
    snprintf(nm, sizeof nm, "%s.weight", name);
    if (lw_get(W, nm, 5, shp, &c->w)) return -1;
    snprintf(nm, sizeof nm, "%s.bias", name);
    return lw_get(W, nm, 1, &cout, &c->b);
}

/* A plain conv (name.conv.*) with the decoder's time padding, or depthwise + pointwise (symmetric padding). */
static int lw_sep(lwalk *W, lv_sep *s, const char *name, int64_t cin, int64_t cout, int k, bool dw) {
    const hb_light_vae_config *c = &W->m->cfg;
    char nm[240];
    s->dw = dw;
    if (!dw) {
        snprintf(nm, sizeof nm, "%s.conv", name);
        int pl = c->causal ? k - 1 : (k - 1) / 2, pr = k - 1 - pl;
        return lw_conv(W, &s->a, nm, cin, cout, k, false, pl, pr);
    }
    snprintf(nm, sizeof nm, "%s.depthwise_conv", name);
    if (lw_conv(W, &s->a, nm, cin, cin, k, true, (k - 1) / 2, (k - 1) / 2)) return -1;
    snprintf(nm, sizeof nm, "%s.pointwise_conv", name);
    return lw_conv(W, &s->p, nm, cin, cout, 1, false, 0, 0);
}

static int lw_res(lwalk *W, lv_res *r, const char *name, int64_t cin, int64_t cout, bool dw, bool relu) {
    char nm[220];
    int k = dw ? W->m->cfg.dw_kernel : 3;
    r->cin = cin, r->cout = cout, r->relu = relu, r->has_sc = cin != cout, r->id = W->m->nres++;
    snprintf(nm, sizeof nm, "%s.conv1", name);
    if (lw_sep(W, &r->c1, nm, cin, cout, k, dw)) return -1;
    snprintf(nm, sizeof nm, "%s.conv2", name);
    if (lw_sep(W, &r->c2, nm, cout, cout, k, dw)) return -1;
    if (!r->has_sc) return 0;
    snprintf(nm, sizeof nm, "%s.norm3.weight", name);
    if (lw_get(W, nm, 1, &cin, &r->ln_w)) return -1;
    snprintf(nm, sizeof nm, "%s.norm3.bias", name);
    if (lw_get(W, nm, 1, &cin, &r->ln_b)) return -1;
    snprintf(nm, sizeof nm, "%s.conv_shortcut", name);
    return lw_sep(W, &r->sc, nm, cin, cout, 1, dw);
}

static int lw_block(lwalk *W, int bi) {
    hb_light_vae *m = W->m;
    const hb_light_vae_config *c = &m->cfg;
    lv_block *b = &m->blk[bi];
    char pre[64], nm[200];
    int64_t cin = c->widths[bi > 0 ? bi - 1 : 0], cout = c->widths[bi];
    if (bi == 0) snprintf(pre, sizeof pre, "mid_block");
    else snprintf(pre, sizeof pre, "up_blocks.%d", bi - 1);
    b->has_up = bi > 0 && c->upsample[bi - 1];
    b->has_entry = bi > 0 && cin != cout;
    if (b->has_entry) {
        snprintf(nm, sizeof nm, "%s.conv_in", pre);
        if (lw_res(W, &b->entry, nm, cin, cout, c->dw[bi], false)) return -1;
    }
    if (b->has_up) {
        b->st = c->spatial_only[bi - 1] ? 1 : 2, b->ss = 2, b->up_id = m->nups++;
        snprintf(nm, sizeof nm, "%s.upsamplers.0.conv.conv", pre);
        int pl = c->causal ? 2 : 1;
        if (lw_conv(W, &b->up, nm, cout, cout * b->st * b->ss * b->ss, 3, false, pl, 2 - pl)) return -1;
    }
    b->nres = c->layers[bi];
    for (int j = 0; j < b->nres; j++) {
        snprintf(nm, sizeof nm, "%s.resnets.%d", pre, j);
        if (lw_res(W, &b->res[j], nm, cout, cout, c->dw[bi], b->has_up)) return -1;
    }
    return 0;
}

static int lw_model(lwalk *W) {
    hb_light_vae *m = W->m;
    const hb_light_vae_config *c = &m->cfg;
    m->nslots = m->nres = m->nups = 0, m->nparams = 0;
    lv_sep tmp = {.a = m->conv_in}; /* a walk over a built model sees its tensors */
    if (lw_sep(W, &tmp, "conv_in", c->latent_channels, c->widths[0], 3, false)) return -1;
    m->conv_in = tmp.a;
    for (int i = 0; i <= c->n_up; i++)
        if (lw_block(W, i)) return -1;
    int64_t C = c->widths[c->n_up];
    m->n2d = c->patch_size == 4 ? 2 : c->patch_size == 2 ? 1 : 0;
    for (int s = 0; s < m->n2d; s++, C /= 4) {
        char nm[64];
        int64_t shp[4] = {C, C, 3, 3};
        lv_conv *cv = &m->s2d[s];
        cv->cin = C, cv->cout = C, cv->k = 3, cv->groups = 1, cv->pl = cv->pr = 0, cv->slot = -1;
        snprintf(nm, sizeof nm, "upsampler2d_%d.conv.weight", s + 1);
        if (lw_get(W, nm, 4, shp, &cv->w)) return -1;
        snprintf(nm, sizeof nm, "upsampler2d_%d.conv.bias", s + 1);
        if (lw_get(W, nm, 1, &C, &cv->b)) return -1;
        /* a per-frame Conv2d is the conv3d with a 1-frame kernel */
        int64_t v[5] = {C, C, 1, 3, 3};
        if (cv->w.data) cv->w = hb_tensor_make(cv->w.dtype, 5, v, cv->w.data);
    }
    tmp.a = m->conv_out;
    if (lw_sep(W, &tmp, "conv_out", C, c->out_channels, 3, false)) return -1;
    m->conv_out = tmp.a;
    return 0;
}

int hb_lv_walk(hb_light_vae *m, hb_lv_weight_fn fn, void *u) {
    lwalk W = {fn, u, m};
    return lw_model(&W);
}

hb_light_vae *hb_lv_new(const hb_light_vae_config *cfg) {
    if (hb_light_vae_config_check(cfg, "light_vae config")) return NULL;
    hb_light_vae *m = hb_calloc(sizeof *m, "light_vae model");
    if (!m) return NULL;
    m->cfg = *cfg;
    for (int i = 0; i <= cfg->n_up; i++)
        if (cfg->layers[i] > 0 && !(m->blk[i].res = hb_calloc(sizeof(lv_res) * (size_t)cfg->layers[i], "light_vae"))) {
            hb_light_vae_free(m);
            return NULL;
        }
    int zz = 0;
    const float *mv = hb_wan_vae_official_mean(HB_WAN_VAE_22, &zz), *sv = hb_wan_vae_official_std(HB_WAN_VAE_22, &zz);
    bool wan = zz == cfg->latent_channels;
    if (hb_light_vae_set_latent_stats(m, NULL, NULL, 0) || (wan && hb_light_vae_set_latent_stats(m, mv, sv, zz))) {
        hb_light_vae_free(m);
        return NULL;
    }
    return m;
}

int hb_light_vae_set_latent_stats(hb_light_vae *m, const float *mean, const float *std, int n) {
    int z = m->cfg.latent_channels;
    if (!mean) { /* identity */
        for (int i = 0; i < z; i++) m->mean[i] = 0.0f, m->scale[i] = 1.0f;
        return 0;
    }
    if (n != z) return hb_error("light_vae: %d latent statistics for %d latent channels", n, z);
    for (int i = 0; i < z; i++) {
        float inv = 1.0f / std[i]; /* the release divides by 1/std, rounded to float32 first */
        if (!isfinite(inv) || inv == 0.0f) return hb_error("light_vae: latent std[%d] = %g", i, (double)std[i]);
        m->mean[i] = mean[i], m->scale[i] = (float)(1.0 / (double)inv);
    }
    return 0;
}

/* ---------------------------------------------------------------- loading */

int hb_lv_checkpoint_weight(const hb_checkpoint *ck, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    char pre[300];
    snprintf(pre, sizeof pre, "decoder.%s", name); /* a training checkpoint's outer-module names */
    const char *nm = !hb_checkpoint_has(ck, name) && hb_checkpoint_has(ck, pre) ? pre : name;
    if (hb_checkpoint_get_shaped(ck, nm, ndim, shape, out)) return -1;
    if (out->dtype != HB_F32 && out->dtype != HB_BF16 && out->dtype != HB_F16)
        return hb_error("%s: light_vae weight %s has dtype %s (F32/BF16/F16 expected)", hb_checkpoint_path(ck), nm,
                        hb_dtype_name(out->dtype));
    if (!hb_tensor_is_contiguous(out))
        return hb_error("%s: light_vae weight %s is not contiguous", hb_checkpoint_path(ck), nm);
    return 0;
}

static int ck_fn(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    return hb_lv_checkpoint_weight(u, name, ndim, shape, out);
}

hb_light_vae *hb_light_vae_load_ck(const hb_checkpoint *ck, const hb_light_vae_config *cfg) {
    hb_light_vae *m = hb_lv_new(cfg);
    if (!m) return NULL;
    if (hb_lv_walk(m, ck_fn, (void *)ck)) { hb_light_vae_free(m); return NULL; }
    return m;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static bool is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }

/* folder (anything not named *.safetensors) -> folder/config.json + folder/diffusion_pytorch_model.safetensors;
 * X.safetensors -> X.json when present, else config.json beside it */
static int resolve(const char *path, char *cfg, char *wts, size_t n) {
    if (is_dir(path) || !ends_with(path, ".safetensors")) {
        snprintf(cfg, n, "%s/config.json", path);
        snprintf(wts, n, "%s/diffusion_pytorch_model.safetensors", path);
        return 0;
    }
    size_t L = strlen(path);
    struct stat st;
    if (ends_with(path, ".safetensors")) snprintf(cfg, n, "%.*s.json", (int)(L - 12), path);
    if (!ends_with(path, ".safetensors") || stat(cfg, &st) != 0) {
        const char *sl = strrchr(path, '/');
        if (sl) snprintf(cfg, n, "%.*s/config.json", (int)(sl - path), path);
        else snprintf(cfg, n, "config.json");
    }
    snprintf(wts, n, "%s", path);
    return 0;
}

hb_light_vae *hb_light_vae_load(const char *path) {
    char cp[4096], wp[4096];
    resolve(path, cp, wp, sizeof cp);
    char *txt = hb_read_text_file(cp, HB_JSON_MAX_FILE, NULL);
    hb_light_vae_config c;
    int rc = txt ? hb_light_vae_config_from_json(&c, txt, cp) : -1;
    free(txt);
    if (rc) return NULL;
    hb_checkpoint *ck = hb_checkpoint_open(wp);
    if (!ck) return NULL;
    hb_light_vae *m = hb_light_vae_load_ck(ck, &c);
    if (!m) { hb_checkpoint_close(ck); return NULL; }
    m->ck_owned = ck;
    return m;
}

/* ---------------------------------------------------------------- random weights */

typedef struct {
    float *buf;      /* NULL: sizing pass */
    int64_t off;
    hb_rng rng;
} rnd_ctx;

void hb_lv_random_fill(hb_rng *r, const char *name, int ndim, const int64_t *shape, float *d, float bias_sd) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    if (strstr(name, ".norm3.weight")) {
        for (int64_t i = 0; i < n; i++) d[i] = 1.0f + 0.1f * hb_rng_normal(r);
    } else if (ndim == 1) {
        for (int64_t i = 0; i < n; i++) d[i] = bias_sd * hb_rng_normal(r);
    } else {
        float sd = (float)(1.0 / sqrt((double)(n / shape[0])));
        if (ends_with(name, "conv_out.conv.weight")) sd *= 0.5f;
        for (int64_t i = 0; i < n; i++) d[i] = sd * hb_rng_normal(r);
    }
}

static int rnd_fn(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    rnd_ctx *r = u;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *d = r->buf ? r->buf + r->off : NULL;
    r->off += (n + 15) / 16 * 16;
    memset(out, 0, sizeof *out);
    if (!d) return 0;
    *out = hb_tensor_make(HB_F32, ndim, shape, d);
    hb_lv_random_fill(&r->rng, name, ndim, shape, d, 0.1f);
    return 0;
}

hb_light_vae *hb_light_vae_create_random(const hb_light_vae_config *cfg, uint64_t seed) {
    hb_light_vae *m = hb_lv_new(cfg);
    if (!m) return NULL;
    rnd_ctx r;
    memset(&r, 0, sizeof r);
    if (hb_lv_walk(m, rnd_fn, &r) || !(m->owned = hb_malloc(sizeof(float) * (size_t)(r.off > 0 ? r.off : 1), "light_vae weights"))) {
        hb_light_vae_free(m);
        return NULL;
    }
    m->owned_n = r.off;
    r.buf = m->owned, r.off = 0;
    hb_rng_seed(&r.rng, seed);
    if (hb_lv_walk(m, rnd_fn, &r)) { hb_light_vae_free(m); return NULL; }
    return m;
}

typedef struct {
    hb_light_vae_tensor_fn fn;
    void *user;
} each_ctx;

static int each_fn(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    each_ctx *e = u;
    hb_tensor t = hb_tensor_make(out->dtype, ndim, shape, out->data); /* the file's shape (2-D convs are held 3-D) */
    return e->fn(e->user, name, &t);
}

int hb_light_vae_for_each_tensor(hb_light_vae *m, hb_light_vae_tensor_fn fn, void *user) {
    each_ctx e = {fn, user}; /* a walk over a built model sees its tensors (and counts to the same totals) */
    return hb_lv_walk(m, each_fn, &e);
}

void hb_light_vae_free(hb_light_vae *m) {
    if (!m) return;
    for (int i = 0; i <= HB_LIGHT_VAE_MAX_UP; i++) hb_free(m->blk[i].res);
    if (m->owned) {
        hb_host_memory_released(m->owned, sizeof(float) * (size_t)m->owned_n); /* a device may cache copies */
        hb_free(m->owned);
    }
    if (m->ck_owned) hb_checkpoint_close(m->ck_owned);
    hb_free(m);
}

const hb_light_vae_config *hb_light_vae_get_config(const hb_light_vae *m) { return &m->cfg; }

int hb_light_vae_temporal_factor(const hb_light_vae *m) {
    int f = 1;
    for (int i = 0; i < m->cfg.n_up; i++) f *= m->cfg.upsample[i] && !m->cfg.spatial_only[i] ? 2 : 1;
    return f;
}

int hb_light_vae_spatial_factor(const hb_light_vae *m) {
    int f = m->cfg.patch_size;
    for (int i = 0; i < m->cfg.n_up; i++) f *= m->cfg.upsample[i] ? 2 : 1;
    return f;
}

int64_t hb_light_vae_decoded_frames(const hb_light_vae *m, int64_t t) {
    return t <= 0 ? 0 : 1 + (int64_t)hb_light_vae_temporal_factor(m) * (t - 1);
}

int64_t hb_light_vae_param_count(const hb_light_vae *m) { return m->nparams; }
