/* Wan 2.1 / 2.2 video VAE: weights, config, and the chunked causal forward passes (see wan_vae.h). */
#include "models/wan_vae.h"
#include "models/tiles.h"
#include "ops/ops.h"
#include "io/json_file.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXRES 8
#define NAMELEN 256

/* ------------------------------------------------------------------------------------------------------
 * Official latent constants (Wan2_1_VAE / Wan2_2_VAE wrappers). */
static const float k_mean21[16] = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f, -0.1517f, 1.5508f,
                                   0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};
static const float k_std21[16] = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                  3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};
static const float k_mean22[48] = {
    -0.2289f, -0.0052f, -0.1323f, -0.2339f, -0.2799f, 0.0174f,  0.1838f,  0.1557f,  -0.1382f, 0.0542f,
    0.2813f,  0.0891f,  0.1570f,  -0.0098f, 0.0375f,  -0.1825f, -0.2246f, -0.1207f, -0.0698f, 0.5109f,
    0.2665f,  -0.2108f, -0.2158f, 0.2502f,  -0.2055f, -0.0322f, 0.1109f,  0.1567f,  -0.0729f, 0.0899f,
    -0.2799f, -0.1230f, -0.0313f, -0.1649f, 0.0117f,  0.0723f,  -0.2839f, -0.2083f, -0.0520f, 0.3748f,
    0.0152f,  0.1957f,  0.1433f,  -0.2944f, 0.3573f,  -0.0548f, -0.1681f, -0.0667f};
static const float k_std22[48] = {
    0.4765f, 1.0364f, 0.4514f, 1.1677f, 0.5313f, 0.4990f, 0.4818f, 0.5013f, 0.8158f, 1.0344f, 0.5894f, 1.0901f,
    0.6885f, 0.6165f, 0.8454f, 0.4978f, 0.5759f, 0.3523f, 0.7135f, 0.6804f, 0.5833f, 1.4146f, 0.8986f, 0.5659f,
    0.7069f, 0.5338f, 0.4889f, 0.4917f, 0.4069f, 0.4999f, 0.6866f, 0.4093f, 0.5709f, 0.6065f, 0.6415f, 0.4944f,
    0.5726f, 1.2042f, 0.5458f, 1.6887f, 0.3971f, 1.0600f, 0.3943f, 0.5537f, 0.5444f, 0.4089f, 0.7468f, 0.7744f};

const float *hb_wan_vae_official_mean(hb_wan_vae_variant v, int *z) {
    if (z) *z = v == HB_WAN_VAE_22 ? 48 : 16;
    return v == HB_WAN_VAE_22 ? k_mean22 : k_mean21;
}
const float *hb_wan_vae_official_std(hb_wan_vae_variant v, int *z) {
    if (z) *z = v == HB_WAN_VAE_22 ? 48 : 16;
    return v == HB_WAN_VAE_22 ? k_std22 : k_std21;
}

/* ------------------------------------------------------------------------------------------------------
 * Model structure. Every conv weight is kept as a 5-D view [Cout, Cin, kt, kh, kw] of the checkpoint data. */
typedef struct {
    hb_tensor w, b;
    int kt, kh, kw;
    int64_t cin, cout;
    int slot; /* feature-cache slot, -1 = none */
} vconv;
typedef struct { hb_tensor g; } vnorm; /* gamma as a 1-D view [C] */
typedef struct {
    int64_t cin, cout;
    vnorm n1, n2;
    vconv c1, c2;
    bool has_sc;
    vconv sc;
} vres;
enum { RS_UP2D = 1, RS_UP3D, RS_DOWN2D, RS_DOWN3D };
typedef struct {
    int mode;
    int64_t dim, cout;
    vconv conv;  /* the 3x3 spatial conv (as [Cout, Cin, 1, 3, 3]) */
    vconv tconv; /* the temporal conv of the 3-D modes (slot = its cache) */
} vresample;
typedef struct {
    int64_t c;
    vnorm norm;
    hb_tensor qkv_w, qkv_b, proj_w, proj_b; /* 2-D views [3C, C], [C, C] */
} vattn;
enum { SC_NONE = 0, SC_AVGDOWN, SC_DUPUP, SC_IDENTITY };
typedef struct {
    int nres;
    vres res[MAXRES];
    bool has_rs;
    vresample rs;
    int sc_kind; /* 2.2 stage shortcut */
    int64_t sc_in, sc_out;
    int sc_ft, sc_fs;
} vstage;
typedef struct {
    vconv conv1;
    int nst;
    vstage st[HB_WAN_VAE_MAX_LEVELS];
    vres mid0, mid2;
    vattn attn;
    vnorm head_norm;
    vconv head;
    int nslots;
    int64_t in_ch, out_ch;
} vcoder;

struct hb_wan_vae {
    hb_wan_vae_config cfg;
    vcoder enc, dec;
    vconv conv1, conv2;
    /* latent statistics (host): one block of 4*z floats, passed to hb_channel_affine as parameter vectors:
     * mean, std (decode: z * std + mean), neg_mean and inv_std (encode: (mu - mean) * (1 / std)) */
    float *mean, *std, *neg_mean, *inv_std;
    hb_tensor t_mean, t_std, t_neg_mean, t_inv_std;
    int sf, tf;
    const hb_checkpoint *ck;
    void **owned; /* weights this model allocated itself (random models), owned_bytes[i] bytes each */
    size_t *owned_bytes;
    int nowned;
};

/* ------------------------------------------------------------------------------------------------------
 * Config. */
void hb_wan_vae_config_default(hb_wan_vae_config *c, hb_wan_vae_variant v) {
    memset(c, 0, sizeof *c);
    c->variant = v;
    c->dim = v == HB_WAN_VAE_22 ? 160 : 96;
    c->dec_dim = v == HB_WAN_VAE_22 ? 256 : 96;
    c->z_dim = v == HB_WAN_VAE_22 ? 48 : 16;
    c->n_levels = 4;
    c->dim_mult[0] = 1, c->dim_mult[1] = 2, c->dim_mult[2] = 4, c->dim_mult[3] = 4;
    c->num_res_blocks = 2;
    c->n_tdown = 3;
    c->temporal_down[0] = false, c->temporal_down[1] = true, c->temporal_down[2] = true;
}

/* Far above the released VAEs (dim 96 and 160, z_dim 16 and 48, dim_mult up to 4). */
#define WAN_VAE_MAX_DIM 4096
#define WAN_VAE_MAX_MULT 64

static int check_config(const hb_wan_vae_config *c) {
    if (c->dim < 1 || c->dec_dim < 1 || c->z_dim < 1) return hb_error("wan_vae config: dim/dec_dim/z_dim must be positive");
    if (c->dim > WAN_VAE_MAX_DIM || c->dec_dim > WAN_VAE_MAX_DIM || c->z_dim > WAN_VAE_MAX_DIM)
        return hb_error("wan_vae config: dim/dec_dim/z_dim must be at most %d", WAN_VAE_MAX_DIM);
    if (c->n_levels < 1 || c->n_levels > HB_WAN_VAE_MAX_LEVELS)
        return hb_error("wan_vae config: dim_mult needs 1..%d entries", HB_WAN_VAE_MAX_LEVELS);
    for (int i = 0; i < c->n_levels; i++)
        if (c->dim_mult[i] < 1 || c->dim_mult[i] > WAN_VAE_MAX_MULT)
            return hb_error("wan_vae config: dim_mult entries must be in [1, %d]", WAN_VAE_MAX_MULT);
    if (c->num_res_blocks < 1 || c->num_res_blocks + 1 > MAXRES)
        return hb_error("wan_vae config: num_res_blocks must be 1..%d", MAXRES - 1);
    if (c->variant == HB_WAN_VAE_21 && c->n_tdown < c->n_levels - 1)
        return hb_error("wan_vae config: temperal_downsample needs %d entries", c->n_levels - 1);
    return 0;
}

int hb_wan_vae_config_from_json(hb_wan_vae_config *c, const char *variant, const char *json) {
    hb_wan_vae_variant v;
    if (!variant || !strcmp(variant, "wan2.1")) v = HB_WAN_VAE_21;
    else if (!strcmp(variant, "wan2.2")) v = HB_WAN_VAE_22;
    else return hb_error("wan_vae: unknown variant '%s' (expected wan2.1 or wan2.2)", variant);
    hb_wan_vae_config_default(c, v);
    if (!json) return 0;
    json_t *o = hb_json_parse(json, strlen(json), 0, "wan_vae config");
    if (!o) return -1;
    if (!json_is_object(o)) { json_decref(o); return hb_error("wan_vae config: not a JSON object"); }
    int rc = 0;
    json_t *x;
    const char *what = "wan_vae config";
    if (!rc) rc = hb_json_int(o, "dim", 1, WAN_VAE_MAX_DIM, &c->dim, what);
    if (!rc) rc = hb_json_int(o, "z_dim", 1, WAN_VAE_MAX_DIM, &c->z_dim, what);
    c->dec_dim = v == HB_WAN_VAE_22 ? c->dec_dim : c->dim;
    if (!rc) rc = hb_json_int(o, "dec_dim", 1, WAN_VAE_MAX_DIM, &c->dec_dim, what);
    if (v == HB_WAN_VAE_21) c->dec_dim = c->dim;
    if (!rc) rc = hb_json_int(o, "num_res_blocks", 1, MAXRES - 1, &c->num_res_blocks, what);
    if (!rc && (x = json_object_get(o, "dim_mult")) && json_is_array(x)) {
        size_t n = json_array_size(x);
        if (n < 1 || n > HB_WAN_VAE_MAX_LEVELS) rc = hb_error("wan_vae config: dim_mult has %zu entries", n);
        c->n_levels = (int)n;
        for (size_t i = 0; i < n && !rc; i++) {
            json_t *e = json_array_get(x, i);
            if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > WAN_VAE_MAX_MULT)
                rc = hb_error("wan_vae config: dim_mult[%zu] is not an integer in [1, %d]", i, WAN_VAE_MAX_MULT);
            else c->dim_mult[i] = (int)json_integer_value(e);
        }
    }
    if (!rc && (x = json_object_get(o, "temperal_downsample")) && json_is_array(x)) {
        size_t n = json_array_size(x);
        if (n > HB_WAN_VAE_MAX_LEVELS) rc = hb_error("wan_vae config: temperal_downsample has %zu entries", n);
        c->n_tdown = (int)n;
        for (size_t i = 0; i < n && !rc; i++) c->temporal_down[i] = json_is_true(json_array_get(x, i));
    }
    if (!rc && (x = json_object_get(o, "attn_scales")) && json_is_array(x) && json_array_size(x) > 0)
        rc = hb_error("wan_vae config: attn_scales other than [] are not supported (the Wan VAEs use [])");
    json_decref(o);
    return rc ? rc : check_config(c);
}

/* ------------------------------------------------------------------------------------------------------
 * Loading. Each weight is looked up by its official name, then by the diffusers (AutoencoderKLWan) name. */
typedef struct {
    const hb_checkpoint *ck;
    const char *file;
    hb_wan_vae_weight_fn fn;
    void *user;
} loader;

static int ld_get(loader *L, hb_tensor *out, int ndim, const int64_t *shape, const char *off, const char *dif) {
    if (L->fn) {
        if (L->fn(L->user, off, ndim, shape, out)) return -1;
        bool ok = out->ndim == ndim && out->data;
        for (int i = 0; ok && i < ndim; i++) ok = out->shape[i] == shape[i];
        if (!ok) return hb_error("%s: weight %s has the wrong shape", L->file, off);
        return 0;
    }
    const char *name = off;
    if (!hb_checkpoint_has(L->ck, off) && dif && hb_checkpoint_has(L->ck, dif)) name = dif;
    if (hb_checkpoint_get_shaped(L->ck, name, ndim, shape, out) != 0) return -1;
    if (!hb_tensor_is_contiguous(out)) return hb_error("%s: tensor %s is not contiguous", L->file, name);
    if (out->dtype != HB_F32 && out->dtype != HB_BF16 && out->dtype != HB_F16)
        return hb_error("%s: tensor %s has dtype %s (expected F32, BF16 or F16)", L->file, name, hb_dtype_name(out->dtype));
    return 0;
}

/* Official and diffusers prefixes of one module. */
typedef struct { char off[NAMELEN], dif[NAMELEN]; } vname;
static vname vn(const char *off, const char *dif) {
    vname n;
    snprintf(n.off, sizeof n.off, "%s", off);
    snprintf(n.dif, sizeof n.dif, "%s", dif);
    return n;
}
static void sub(char *dst, const char *prefix, const char *suffix) {
    if (snprintf(dst, NAMELEN, "%s.%s", prefix, suffix) >= NAMELEN) dst[NAMELEN - 1] = 0;
}

/* conv: `is2d` for nn.Conv2d weights [Cout, Cin, kh, kw]. */
static int load_conv(loader *L, vconv *c, vname n, int64_t cout, int64_t cin, int kt, int kh, int kw, bool is2d) {
    char o[NAMELEN], d[NAMELEN];
    int64_t s5[5] = {cout, cin, kt, kh, kw}, s4[4] = {cout, cin, kh, kw}, sb[1] = {cout};
    sub(o, n.off, "weight"), sub(d, n.dif, "weight");
    if (ld_get(L, &c->w, is2d ? 4 : 5, is2d ? s4 : s5, o, d)) return -1;
    c->w = hb_tensor_make(c->w.dtype, 5, s5, c->w.data);
    sub(o, n.off, "bias"), sub(d, n.dif, "bias");
    if (ld_get(L, &c->b, 1, sb, o, d)) return -1;
    c->kt = kt, c->kh = kh, c->kw = kw, c->cin = cin, c->cout = cout, c->slot = -1;
    return 0;
}

static int load_norm(loader *L, vnorm *nm, vname n, const char *off_sfx, const char *dif_sfx, int64_t C, bool images) {
    char o[NAMELEN], d[NAMELEN];
    int64_t s[4] = {C, 1, 1, 1};
    sub(o, n.off, off_sfx), sub(d, n.dif, dif_sfx);
    if (ld_get(L, &nm->g, images ? 3 : 4, s, o, d)) return -1;
    nm->g = hb_tensor_1d(nm->g.dtype, C, nm->g.data);
    return 0;
}

static int load_res(loader *L, vres *r, vname n, int64_t cin, int64_t cout, int *slots) {
    char o[NAMELEN], d[NAMELEN];
    r->cin = cin, r->cout = cout;
    if (load_norm(L, &r->n1, n, "residual.0.gamma", "norm1.gamma", cin, false)) return -1;
    sub(o, n.off, "residual.2"), sub(d, n.dif, "conv1");
    if (load_conv(L, &r->c1, vn(o, d), cout, cin, 3, 3, 3, false)) return -1;
    if (load_norm(L, &r->n2, n, "residual.3.gamma", "norm2.gamma", cout, false)) return -1;
    sub(o, n.off, "residual.6"), sub(d, n.dif, "conv2");
    if (load_conv(L, &r->c2, vn(o, d), cout, cout, 3, 3, 3, false)) return -1;
    r->c1.slot = (*slots)++;
    r->c2.slot = (*slots)++;
    r->has_sc = cin != cout;
    if (r->has_sc) {
        sub(o, n.off, "shortcut"), sub(d, n.dif, "conv_shortcut");
        if (load_conv(L, &r->sc, vn(o, d), cout, cin, 1, 1, 1, false)) return -1;
    }
    return 0;
}

static int load_resample(loader *L, vresample *rs, vname n, int mode, int64_t dim, int64_t cout, int *slots) {
    char o[NAMELEN], d[NAMELEN];
    rs->mode = mode, rs->dim = dim, rs->cout = cout;
    sub(o, n.off, "resample.1"), sub(d, n.dif, "resample.1");
    if (load_conv(L, &rs->conv, vn(o, d), cout, dim, 1, 3, 3, true)) return -1;
    rs->tconv.slot = -1;
    if (mode == RS_UP3D || mode == RS_DOWN3D) {
        sub(o, n.off, "time_conv"), sub(d, n.dif, "time_conv");
        if (load_conv(L, &rs->tconv, vn(o, d), mode == RS_UP3D ? 2 * dim : dim, dim, 3, 1, 1, false)) return -1;
        rs->tconv.slot = (*slots)++;
    }
    return 0;
}

static int load_attn(loader *L, vattn *a, vname n, int64_t C) {
    char o[NAMELEN], d[NAMELEN];
    int64_t sq[4] = {3 * C, C, 1, 1}, sp[4] = {C, C, 1, 1}, b3[1] = {3 * C}, b1[1] = {C};
    a->c = C;
    if (load_norm(L, &a->norm, n, "norm.gamma", "norm.gamma", C, true)) return -1;
    sub(o, n.off, "to_qkv.weight"), sub(d, n.dif, "to_qkv.weight");
    if (ld_get(L, &a->qkv_w, 4, sq, o, d)) return -1;
    sub(o, n.off, "to_qkv.bias"), sub(d, n.dif, "to_qkv.bias");
    if (ld_get(L, &a->qkv_b, 1, b3, o, d)) return -1;
    sub(o, n.off, "proj.weight"), sub(d, n.dif, "proj.weight");
    if (ld_get(L, &a->proj_w, 4, sp, o, d)) return -1;
    sub(o, n.off, "proj.bias"), sub(d, n.dif, "proj.bias");
    if (ld_get(L, &a->proj_b, 1, b1, o, d)) return -1;
    a->qkv_w = hb_tensor_2d(a->qkv_w.dtype, 3 * C, C, a->qkv_w.data);
    a->proj_w = hb_tensor_2d(a->proj_w.dtype, C, C, a->proj_w.data);
    return 0;
}

/* middle (res, attn, res) and head (norm, conv) of either coder. */
static int load_mid_head(loader *L, vcoder *cd, const char *p, int64_t C, int64_t Ch, int64_t head_out, int *slots) {
    char o[NAMELEN], d[NAMELEN];
    snprintf(o, NAMELEN, "%s.middle.0", p), snprintf(d, NAMELEN, "%s.mid_block.resnets.0", p);
    if (load_res(L, &cd->mid0, vn(o, d), C, C, slots)) return -1;
    snprintf(o, NAMELEN, "%s.middle.1", p), snprintf(d, NAMELEN, "%s.mid_block.attentions.0", p);
    if (load_attn(L, &cd->attn, vn(o, d), C)) return -1;
    snprintf(o, NAMELEN, "%s.middle.2", p), snprintf(d, NAMELEN, "%s.mid_block.resnets.1", p);
    if (load_res(L, &cd->mid2, vn(o, d), C, C, slots)) return -1;
    snprintf(o, NAMELEN, "%s.head.0.gamma", p), snprintf(d, NAMELEN, "%s.norm_out.gamma", p);
    int64_t s[4] = {Ch, 1, 1, 1};
    if (ld_get(L, &cd->head_norm.g, 4, s, o, d)) return -1;
    cd->head_norm.g = hb_tensor_1d(cd->head_norm.g.dtype, Ch, cd->head_norm.g.data);
    snprintf(o, NAMELEN, "%s.head.2", p), snprintf(d, NAMELEN, "%s.conv_out", p);
    if (load_conv(L, &cd->head, vn(o, d), head_out, Ch, 3, 3, 3, false)) return -1;
    cd->head.slot = (*slots)++;
    return 0;
}

static int load_encoder(loader *L, hb_wan_vae *m) {
    const hb_wan_vae_config *c = &m->cfg;
    vcoder *e = &m->enc;
    bool v22 = c->variant == HB_WAN_VAE_22;
    int slots = 0, flat = 0;
    int64_t dims[HB_WAN_VAE_MAX_LEVELS + 1];
    dims[0] = c->dim;
    for (int i = 0; i < c->n_levels; i++) dims[i + 1] = (int64_t)c->dim * c->dim_mult[i];
    e->in_ch = v22 ? 12 : 3, e->out_ch = 2 * (int64_t)c->z_dim;
    if (load_conv(L, &e->conv1, vn("encoder.conv1", "encoder.conv_in"), dims[0], e->in_ch, 3, 3, 3, false)) return -1;
    e->conv1.slot = slots++;
    e->nst = c->n_levels;
    char o[NAMELEN], d[NAMELEN];
    for (int i = 0; i < c->n_levels; i++) {
        vstage *s = &e->st[i];
        int64_t in = dims[i], out = dims[i + 1];
        bool tdown = i < c->n_tdown ? c->temporal_down[i] : false;
        bool down = i != c->n_levels - 1;
        s->nres = c->num_res_blocks;
        for (int j = 0; j < s->nres; j++) {
            if (v22) snprintf(o, NAMELEN, "encoder.downsamples.%d.downsamples.%d", i, j),
                     snprintf(d, NAMELEN, "encoder.down_blocks.%d.resnets.%d", i, j);
            else snprintf(o, NAMELEN, "encoder.downsamples.%d", flat), snprintf(d, NAMELEN, "encoder.down_blocks.%d", flat);
            flat++;
            if (load_res(L, &s->res[j], vn(o, d), j == 0 ? in : out, out, &slots)) return -1;
        }
        s->has_rs = down;
        if (down) {
            if (v22) snprintf(o, NAMELEN, "encoder.downsamples.%d.downsamples.%d", i, s->nres),
                     snprintf(d, NAMELEN, "encoder.down_blocks.%d.downsampler", i);
            else snprintf(o, NAMELEN, "encoder.downsamples.%d", flat), snprintf(d, NAMELEN, "encoder.down_blocks.%d", flat);
            flat++;
            if (load_resample(L, &s->rs, vn(o, d), tdown ? RS_DOWN3D : RS_DOWN2D, out, out, &slots)) return -1;
        }
        s->sc_kind = SC_NONE;
        if (v22) {
            s->sc_ft = tdown ? 2 : 1, s->sc_fs = down ? 2 : 1;
            s->sc_in = in, s->sc_out = out;
            int64_t f = (int64_t)s->sc_ft * s->sc_fs * s->sc_fs;
            if ((in * f) % out) return hb_error("%s: wan2.2 encoder stage %d: AvgDown3D %lld -> %lld channels is not integral",
                                                L->file, i, (long long)in, (long long)out);
            s->sc_kind = (f == 1 && in == out) ? SC_IDENTITY : SC_AVGDOWN;
        }
    }
    if (load_mid_head(L, e, "encoder", dims[c->n_levels], dims[c->n_levels], e->out_ch, &slots)) return -1;
    e->nslots = slots;
    return 0;
}

static int load_decoder(loader *L, hb_wan_vae *m) {
    const hb_wan_vae_config *c = &m->cfg;
    vcoder *dc = &m->dec;
    bool v22 = c->variant == HB_WAN_VAE_22;
    int slots = 0, flat = 0, nl = c->n_levels;
    int64_t base = v22 ? c->dec_dim : c->dim;
    int64_t dims[HB_WAN_VAE_MAX_LEVELS + 1];
    dims[0] = base * c->dim_mult[nl - 1];
    for (int i = 0; i < nl; i++) dims[i + 1] = base * c->dim_mult[nl - 1 - i];
    dc->in_ch = c->z_dim, dc->out_ch = v22 ? 12 : 3;
    if (load_conv(L, &dc->conv1, vn("decoder.conv1", "decoder.conv_in"), dims[0], c->z_dim, 3, 3, 3, false)) return -1;
    dc->conv1.slot = slots++;
    if (load_mid_head(L, dc, "decoder", dims[0], dims[nl], dc->out_ch, &slots)) return -1;
    /* the head's slot must come after the stages' in no particular order: slots are just unique ids */
    dc->nst = nl;
    char o[NAMELEN], d[NAMELEN];
    for (int i = 0; i < nl; i++) {
        vstage *s = &dc->st[i];
        int64_t in = dims[i], out = dims[i + 1];
        /* temperal_upsample = temperal_downsample reversed */
        bool tup = false;
        if (i < c->n_tdown) tup = c->temporal_down[c->n_tdown - 1 - i];
        bool up = i != nl - 1;
        if (!v22 && i >= 1 && i <= 3) in /= 2; /* 2.1: the previous upsampler halved the channels */
        s->nres = c->num_res_blocks + 1;
        for (int j = 0; j < s->nres; j++) {
            if (v22) snprintf(o, NAMELEN, "decoder.upsamples.%d.upsamples.%d", i, j),
                     snprintf(d, NAMELEN, "decoder.up_blocks.%d.resnets.%d", i, j);
            else snprintf(o, NAMELEN, "decoder.upsamples.%d", flat),
                 snprintf(d, NAMELEN, "decoder.up_blocks.%d.resnets.%d", i, j);
            flat++;
            if (load_res(L, &s->res[j], vn(o, d), j == 0 ? in : out, out, &slots)) return -1;
        }
        s->has_rs = up;
        if (up) {
            if (v22) snprintf(o, NAMELEN, "decoder.upsamples.%d.upsamples.%d", i, s->nres),
                     snprintf(d, NAMELEN, "decoder.up_blocks.%d.upsampler", i);
            else snprintf(o, NAMELEN, "decoder.upsamples.%d", flat), snprintf(d, NAMELEN, "decoder.up_blocks.%d.upsamplers.0", i);
            flat++;
            if (load_resample(L, &s->rs, vn(o, d), tup ? RS_UP3D : RS_UP2D, out, v22 ? out : out / 2, &slots)) return -1;
        }
        s->sc_kind = SC_NONE;
        if (v22 && up) {
            s->sc_ft = tup ? 2 : 1, s->sc_fs = 2;
            s->sc_in = in, s->sc_out = out;
            int64_t f = (int64_t)s->sc_ft * s->sc_fs * s->sc_fs;
            if ((out * f) % in) return hb_error("%s: wan2.2 decoder stage %d: DupUp3D %lld -> %lld channels is not integral",
                                                L->file, i, (long long)in, (long long)out);
            s->sc_kind = SC_DUPUP;
        }
    }
    dc->nslots = slots;
    return 0;
}

int hb_wan_vae_config_infer(hb_wan_vae_config *c, const hb_checkpoint *ck) {
    hb_tensor t;
    const char *nm = hb_checkpoint_has(ck, "encoder.conv1.weight") ? "encoder.conv1.weight" : "encoder.conv_in.weight";
    if (hb_checkpoint_get(ck, nm, &t) != 0 || t.ndim != 5)
        return hb_error("%s: not a Wan VAE checkpoint (no 5-D encoder.conv1.weight)", hb_checkpoint_path(ck));
    hb_wan_vae_variant v = t.shape[1] == 12 ? HB_WAN_VAE_22 : HB_WAN_VAE_21;
    hb_wan_vae_config_default(c, v);
    c->dim = (int)t.shape[0];
    nm = hb_checkpoint_has(ck, "conv2.weight") ? "conv2.weight" : "post_quant_conv.weight";
    if (hb_checkpoint_get(ck, nm, &t) != 0) return hb_error("%s: not a Wan VAE checkpoint (no conv2.weight)", hb_checkpoint_path(ck));
    c->z_dim = (int)t.shape[0];
    nm = hb_checkpoint_has(ck, "decoder.conv1.weight") ? "decoder.conv1.weight" : "decoder.conv_in.weight";
    if (hb_checkpoint_get(ck, nm, &t) != 0) return hb_error("%s: not a Wan VAE checkpoint (no decoder.conv1.weight)", hb_checkpoint_path(ck));
    c->dec_dim = v == HB_WAN_VAE_22 ? (int)(t.shape[0] / c->dim_mult[c->n_levels - 1]) : c->dim;
    return check_config(c);
}

static hb_wan_vae *load_any(const hb_checkpoint *ck, const hb_wan_vae_config *cfg, hb_wan_vae_weight_fn fn, void *user) {
    hb_wan_vae *m = hb_calloc(sizeof *m, "wan_vae");
    if (!m) return NULL;
    if (cfg) m->cfg = *cfg;
    else if (hb_wan_vae_config_infer(&m->cfg, ck)) goto fail;
    if (check_config(&m->cfg)) goto fail;
    if (m->cfg.variant == HB_WAN_VAE_21) m->cfg.dec_dim = m->cfg.dim;
    m->ck = ck;
    loader L = {ck, ck ? hb_checkpoint_path(ck) : "wan_vae (custom weights)", fn, user};
    if (load_encoder(&L, m) || load_decoder(&L, m)) goto fail;
    int64_t z = m->cfg.z_dim;
    if (load_conv(&L, &m->conv1, vn("conv1", "quant_conv"), 2 * z, 2 * z, 1, 1, 1, false)) goto fail;
    if (load_conv(&L, &m->conv2, vn("conv2", "post_quant_conv"), z, z, 1, 1, 1, false)) goto fail;
    m->sf = 1;
    for (int i = 0; i < m->cfg.n_levels - 1; i++) m->sf *= 2;
    if (m->cfg.variant == HB_WAN_VAE_22) m->sf *= 2;
    m->tf = 1;
    for (int i = 0; i < m->cfg.n_levels - 1; i++)
        if (i < m->cfg.n_tdown && m->cfg.temporal_down[i]) m->tf *= 2;
    m->mean = hb_malloc((size_t)(4 * z) * sizeof(float), "wan_vae latent statistics");
    if (!m->mean) goto fail;
    m->std = m->mean + z, m->neg_mean = m->mean + 2 * z, m->inv_std = m->mean + 3 * z;
    m->t_mean = hb_tensor_1d(HB_F32, z, m->mean), m->t_std = hb_tensor_1d(HB_F32, z, m->std);
    m->t_neg_mean = hb_tensor_1d(HB_F32, z, m->neg_mean), m->t_inv_std = hb_tensor_1d(HB_F32, z, m->inv_std);
    int zo;
    const float *mu = hb_wan_vae_official_mean(m->cfg.variant, &zo), *sd = hb_wan_vae_official_std(m->cfg.variant, NULL);
    for (int64_t i = 0; i < z; i++) {
        m->mean[i] = zo == z ? mu[i] : 0.0f, m->std[i] = zo == z ? sd[i] : 1.0f;
        m->neg_mean[i] = -m->mean[i], m->inv_std[i] = 1.0f / m->std[i];
    }
    return m;
fail:
    hb_wan_vae_free(m);
    return NULL;
}

hb_wan_vae *hb_wan_vae_load(const hb_checkpoint *ck, const hb_wan_vae_config *cfg) {
    return load_any(ck, cfg, NULL, NULL);
}

hb_wan_vae *hb_wan_vae_load_custom(const hb_wan_vae_config *cfg, hb_wan_vae_weight_fn fn, void *user) {
    if (!cfg || !fn) {
        hb_error("wan_vae: load_custom needs a config and a weight function");
        return NULL;
    }
    return load_any(NULL, cfg, fn, user);
}

/* Random weights in the golden files' recipe: conv/linear weights N(0, 1/fan_in), biases N(0, 0.1^2),
 * norm gammas 1 + N(0, 0.1^2); the head convs scaled by 0.5 so decoded frames mostly stay in range. */
typedef struct {
    hb_rng rng;
    void **owned;
    size_t *bytes;
    int n, cap;
} rnd_src;

static int rnd_weight(void *user, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    rnd_src *r = user;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *d = hb_malloc((size_t)n * sizeof(float), name);
    if (!d) return -1;
    if (r->n == r->cap) {
        int nc = r->cap ? 2 * r->cap : 256;
        void **o = realloc(r->owned, (size_t)nc * sizeof *o);
        if (o) r->owned = o;
        size_t *b = o ? realloc(r->bytes, (size_t)nc * sizeof *b) : NULL;
        if (b) r->bytes = b;
        if (!o || !b) { hb_free(d); return hb_error("wan_vae: out of memory"); }
        r->cap = nc;
    }
    r->bytes[r->n] = (size_t)n * sizeof(float);
    r->owned[r->n++] = d;
    size_t len = strlen(name);
    bool gamma = len > 5 && !strcmp(name + len - 5, "gamma");
    bool bias = len > 4 && !strcmp(name + len - 4, "bias");
    if (gamma)
        for (int64_t i = 0; i < n; i++) d[i] = 1.0f + 0.1f * hb_rng_normal(&r->rng);
    else if (bias)
        for (int64_t i = 0; i < n; i++) d[i] = 0.1f * hb_rng_normal(&r->rng);
    else {
        int64_t fan_in = n / shape[0];
        float sd = (float)(1.0 / sqrt((double)fan_in));
        if (strstr(name, "head.2.weight")) sd *= 0.5f;
        for (int64_t i = 0; i < n; i++) d[i] = sd * hb_rng_normal(&r->rng);
    }
    *out = hb_tensor_make(HB_F32, ndim, shape, d);
    return 0;
}

hb_wan_vae *hb_wan_vae_create_random(const hb_wan_vae_config *cfg, uint64_t seed) {
    rnd_src r = {0};
    hb_rng_seed(&r.rng, seed);
    hb_wan_vae *m = hb_wan_vae_load_custom(cfg, rnd_weight, &r);
    if (!m) {
        for (int i = 0; i < r.n; i++) hb_free(r.owned[i]);
        free(r.owned);
        free(r.bytes);
        return NULL;
    }
    m->owned = r.owned, m->owned_bytes = r.bytes, m->nowned = r.n;
    return m;
}

/* Host memory that was passed to ops as parameters (weights of random models, the latent statistics) is about to
 * change or go away: a device backend's copy of it must be dropped. */
static void release_stats(hb_wan_vae *m) {
    if (m->mean) hb_host_memory_released(m->mean, (size_t)(4 * m->cfg.z_dim) * sizeof(float));
}

void hb_wan_vae_free(hb_wan_vae *m) {
    if (!m) return;
    for (int i = 0; i < m->nowned; i++) {
        hb_host_memory_released(m->owned[i], m->owned_bytes[i]);
        hb_free(m->owned[i]);
    }
    free(m->owned);
    free(m->owned_bytes);
    release_stats(m);
    hb_free(m->mean);
    hb_free(m);
}

const hb_wan_vae_config *hb_wan_vae_get_config(const hb_wan_vae *m) { return &m->cfg; }
int hb_wan_vae_spatial_factor(const hb_wan_vae *m) { return m->sf; }
int hb_wan_vae_temporal_factor(const hb_wan_vae *m) { return m->tf; }
const float *hb_wan_vae_latent_mean(const hb_wan_vae *m) { return m->mean; }
const float *hb_wan_vae_latent_std(const hb_wan_vae *m) { return m->std; }

int hb_wan_vae_set_latent_stats(hb_wan_vae *m, const float *mean, const float *std) {
    for (int i = 0; i < m->cfg.z_dim; i++)
        if (!(std[i] != 0.0f) || !isfinite(std[i]) || !isfinite(mean[i]))
            return hb_error("wan_vae: latent std[%d] = %g / mean %g is not usable", i, (double)std[i], (double)mean[i]);
    release_stats(m);
    memcpy(m->mean, mean, (size_t)m->cfg.z_dim * sizeof(float));
    memcpy(m->std, std, (size_t)m->cfg.z_dim * sizeof(float));
    for (int i = 0; i < m->cfg.z_dim; i++) m->neg_mean[i] = -m->mean[i], m->inv_std[i] = 1.0f / m->std[i];
    return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * Running: per-chunk activations in two ping-pong buffers (one live activation at a time) plus a scratch
 * stack (temporaries, block-level shortcuts), feature caches in their own arena (per tile). The planning pass
 * below (shape functions of the layers) sizes all three and counts FLOPs. All of them live in the current memory space (device
 * memory under a GPU backend) and are touched only through ops: copies, concatenations and permutes are
 * hb_copy_nd / hb_copy_rows, never host loops. */
enum { ST_NONE = 0, ST_REP, ST_TENSOR };
typedef struct {
    float *buf; /* [C, 2, H, W] */
    int n, state;
    int64_t C, H, W;
} vslot;

typedef struct {
    float *d;
    int64_t C, T, H, W;
} vact;

/* Decoder block outputs wanted by a decode (hb_wan_vae_opts.dec_blocks): whole-clip tensors filled chunk by chunk. */
typedef struct {
    float *d[HB_WAN_VAE_MAX_BLOCKS];   /* NULL: not wanted */
    int64_t T[HB_WAN_VAE_MAX_BLOCKS];  /* frames of the clip */
    int64_t t0[HB_WAN_VAE_MAX_BLOCKS]; /* frames written so far */
} vtaps;

typedef struct {
    const hb_wan_vae *m;
    hb_arena scr, cache;
    vtaps *taps;              /* decode: block outputs to keep (NULL: none) */
    const hb_memspace *space; /* where pp was allocated */
    float *pp[2];
    int64_t pp_cap;
    vslot *slots;
    int nslots;
    bool first_chunk;
} vrun;

typedef struct { int64_t C, T, H, W; } vshape;

/* The reference's cache state after a chunk of T frames (cache_push moves the frames). */
static void cache_advance(vslot *s, int64_t T) {
    s->n = T >= 2 || s->state == ST_REP || (s->state == ST_TENSOR && s->n > 0) ? 2 : 1;
    s->state = ST_TENSOR;
}

/* The conv of a cached causal conv over n cached + x->T frames: the remaining causal padding in zeros, and for
 * one frame behind zero padding (every first chunk) only the kernel's last temporal tap (a strided view of the
 * weight: the other taps would multiply zeros). y: its output shape. */
static int cached_conv_geom(const vconv *c, int n, const vshape *x, vconv *cc, hb_conv3d_params *p, vshape *y) {
    int ph = c->kh / 2, pw = c->kw / 2, pt = 2 * (c->kt / 2);
    *p = (hb_conv3d_params){.stride = {1, 1, 1}, .pad_t = {pt - n > 0 ? pt - n : 0, 0}, .pad_h = {ph, ph},
                            .pad_w = {pw, pw}, .groups = 1};
    *cc = *c;
    if (n == 0 && x->T == 1 && pt > 0 && c->kt == pt + 1) {
        if (hb_tensor_narrow(&c->w, 2, c->kt - 1, 1, &cc->w)) return -1;
        cc->kt = 1;
        p->pad_t[0] = 0;
    }
    y->C = c->cout;
    hb_conv3d_out_size(n + x->T, x->H, x->W, &cc->w, p, &y->T, &y->H, &y->W);
    return 0;
}

static int64_t vnumel(const vact *a) { return a->C * a->T * a->H * a->W; }

static float *scr_alloc(vrun *r, int64_t n) { return hb_arena_alloc(&r->scr, (size_t)n * sizeof(float)); }

/* The ping-pong buffer that does not hold x. */
static float *pp_other(vrun *r, const float *x, int64_t n) {
    if (n > r->pp_cap) {
        hb_error("wan_vae: activation of %lld values exceeds the planned %lld", (long long)n, (long long)r->pp_cap);
        return NULL;
    }
    return x == r->pp[0] ? r->pp[1] : r->pp[0];
}

/* Frames [src_t0, src_t0 + nt) of every channel of src [C, src_t, HW] to frames [dst_t0, ...) of dst [C, dst_t, HW]:
 * one row per channel. */
static void copy_frames(float *dst, int64_t dst_t, int64_t dst_t0, const float *src, int64_t src_t, int64_t src_t0,
                        int64_t nt, int64_t C, int64_t HW) {
    hb_copy_rows(dst + dst_t0 * HW, dst_t * HW, src + src_t0 * HW, src_t * HW, C, nt * HW);
}

static int conv_run(float *y, const float *x, const vconv *c, int64_t T, int64_t H, int64_t W,
                    const hb_conv3d_params *p) {
    return hb_conv3d(y, x, c->cin, T, H, W, &c->w, &c->b, p);
}

static vslot *slot_get(vrun *r, int idx, int64_t C, int64_t H, int64_t W) {
    vslot *s = &r->slots[idx];
    if (!s->buf) {
        s->buf = hb_arena_alloc(&r->cache, (size_t)(C * 2 * H * W) * sizeof(float));
        if (!s->buf) return NULL;
        s->C = C, s->H = H, s->W = W;
    } else if (s->C != C || s->H != H || s->W != W) {
        hb_error("wan_vae: feature cache %d shape changed between chunks", idx);
        return NULL;
    }
    return s;
}

/* The cache update of the reference: keep the last 2 input frames; a 1-frame chunk keeps the previous cache's
 * last frame in front of it (or zeros when the state is 'Rep'), or just itself when there was no cache. */
static void cache_push(vslot *s, const vact *x) {
    int64_t HW = x->H * x->W, C = x->C;
    if (x->T >= 2) copy_frames(s->buf, 2, 0, x->d, x->T, x->T - 2, 2, C, HW);
    else if (s->state == ST_REP) copy_frames(s->buf, 2, 1, x->d, x->T, x->T - 1, 1, C, HW); /* frame 0 stays zero */
    else if (s->state == ST_TENSOR && s->n > 0) {
        if (s->n == 2) copy_frames(s->buf, 2, 0, s->buf, 2, 1, 1, C, HW);
        copy_frames(s->buf, 2, 1, x->d, x->T, x->T - 1, 1, C, HW);
    } else copy_frames(s->buf, 2, 0, x->d, x->T, x->T - 1, 1, C, HW);
    cache_advance(s, x->T);
}

/* Causal conv with the feature cache: y = conv(cat(cache, x)) with the remaining causal padding in zeros,
 * then the cache takes x's last frames. y: [Cout, T', H', W']. */
static int cached_conv(vrun *r, const vconv *c, const vact *x, float *y, vact *yo) {
    vslot *s = slot_get(r, c->slot, x->C, x->H, x->W);
    if (!s) return -1;
    int n = s->state == ST_TENSOR ? s->n : 0;
    int64_t HW = x->H * x->W;
    size_t mk = hb_arena_mark(&r->scr);
    const float *in = x->d;
    if (n > 0) {
        float *cat = scr_alloc(r, x->C * (n + x->T) * HW);
        if (!cat) return -1;
        copy_frames(cat, n + x->T, 0, s->buf, 2, 0, n, x->C, HW);
        copy_frames(cat, n + x->T, n, x->d, x->T, 0, x->T, x->C, HW);
        in = cat;
    }
    vconv cc;
    hb_conv3d_params p;
    vshape ys;
    if (cached_conv_geom(c, n, &(vshape){x->C, x->T, x->H, x->W}, &cc, &p, &ys) ||
        conv_run(y, in, &cc, n + x->T, x->H, x->W, &p))
        return -1;
    cache_push(s, x);
    hb_arena_reset(&r->scr, mk);
    *yo = (vact){y, ys.C, ys.T, ys.H, ys.W};
    return 0;
}

/* pointwise (1x1x1) conv, no cache */
static int conv1x1(const vconv *c, const vact *x, float *y, vact *yo) {
    hb_conv3d_params p = {.stride = {1, 1, 1}, .groups = 1};
    if (conv_run(y, x->d, c, x->T, x->H, x->W, &p)) return -1;
    *yo = (vact){y, c->cout, x->T, x->H, x->W};
    return 0;
}

static void norm_silu(const vnorm *nm, const vact *x, float *y) {
    int64_t S = x->T * x->H * x->W;
    hb_channel_rmsnorm(y, x->d, x->C, S, &nm->g, NULL);
    hb_silu(y, y, x->C * S);
}

static int res_block(vrun *r, const vres *b, vact *x) {
    size_t mk = hb_arena_mark(&r->scr);
    int64_t S = x->T * x->H * x->W;
    const float *h = x->d;
    if (b->has_sc) {
        float *hs = scr_alloc(r, b->cout * S);
        vact tmp;
        if (!hs || conv1x1(&b->sc, x, hs, &tmp)) return -1;
        h = hs;
    }
    float *t1 = scr_alloc(r, b->cin * S);
    float *t2 = scr_alloc(r, b->cout * S);
    if (!t1 || !t2) return -1;
    norm_silu(&b->n1, x, t1);
    vact a1 = {t1, b->cin, x->T, x->H, x->W}, a2;
    if (cached_conv(r, &b->c1, &a1, t2, &a2)) return -1;
    float *t3 = b->cin >= b->cout ? t1 : scr_alloc(r, b->cout * S);
    if (!t3) return -1;
    norm_silu(&b->n2, &a2, t3);
    vact a3 = {t3, b->cout, x->T, x->H, x->W}, y;
    float *yd = pp_other(r, x->d, b->cout * S);
    if (!yd || cached_conv(r, &b->c2, &a3, yd, &y)) return -1;
    hb_add(y.d, y.d, h, b->cout * S);
    hb_arena_reset(&r->scr, mk);
    *x = y;
    return 0;
}

static int attn_block(vrun *r, const vattn *a, vact *x) {
    size_t mk = hb_arena_mark(&r->scr);
    int64_t C = a->c, L = x->H * x->W, T = x->T;
    float *xn = scr_alloc(r, C * T * L), *tok = scr_alloc(r, L * C), *qkv = scr_alloc(r, L * 3 * C);
    float *o = scr_alloc(r, L * C), *p = scr_alloc(r, L * C);
    float *y = pp_other(r, x->d, C * T * L);
    if (!xn || !tok || !qkv || !o || !p || !y) return -1;
    {
        hb_channel_rmsnorm(xn, x->d, C, T * L, &a->norm.g, NULL);
        const int64_t sh[2] = {C, L}, cl_s[2] = {T * L, 1}, lc_s[2] = {1, C};
        for (int64_t t = 0; t < T; t++) {
            hb_copy_nd(tok, lc_s, xn + t * L, cl_s, 2, sh); /* tok[l, c] = xn[c, t, l] */
            if (hb_linear(qkv, tok, L, &a->qkv_w, &a->qkv_b, false)) return -1;
            hb_attention_args at = {.out = o, .q = qkv, .k = qkv + C, .v = qkv + 2 * C, .lq = L, .lk = L, .heads = 1,
                                    .head_dim = (int)C, .o_stride = C, .q_stride = 3 * C, .k_stride = 3 * C,
                                    .v_stride = 3 * C, .scale = (float)(1.0 / sqrt((double)C))};
            hb_attention(&at);
            if (hb_linear(p, o, L, &a->proj_w, &a->proj_b, false)) return -1;
            hb_copy_nd(y + t * L, cl_s, p, lc_s, 2, sh); /* y[c, t, l] = p[l, c] */
        }
        hb_add(y, y, x->d, C * T * L); /* + identity */
    }
    hb_arena_reset(&r->scr, mk);
    x->d = y;
    return 0;
}

static int resample(vrun *r, const vresample *rs, vact *x) {
    size_t mk = hb_arena_mark(&r->scr);
    int64_t C = x->C, HW = x->H * x->W;
    if (rs->mode == RS_UP2D || rs->mode == RS_UP3D) {
        vact cur = *x;
        if (rs->mode == RS_UP3D) {
            vslot *s = slot_get(r, rs->tconv.slot, C, x->H, x->W);
            if (!s) return -1;
            if (s->state == ST_NONE) {
                s->state = ST_REP; /* first chunk: no temporal upsampling; the cache's zero frame is set up here */
                hb_fill(s->buf, 0.0f, C * 2 * HW);
            } else {
                float *tc = scr_alloc(r, 2 * C * x->T * HW);
                if (!tc) return -1;
                vact tco;
                if (s->state == ST_REP) {
                    hb_conv3d_params p = {.stride = {1, 1, 1}, .pad_t = {2, 0}, .groups = 1};
                    if (conv_run(tc, x->d, &rs->tconv, x->T, x->H, x->W, &p)) return -1;
                    cache_push(s, x);
                } else if (cached_conv(r, &rs->tconv, x, tc, &tco)) {
                    return -1;
                }
                /* [2, C, T] -> [C, T, 2]: frame 2t+j comes from channel block j */
                float *il = scr_alloc(r, C * 2 * x->T * HW);
                if (!il) return -1;
                {
                    const int64_t sh[4] = {C, x->T, 2, HW}, ds[4] = {2 * x->T * HW, 2 * HW, HW, 1},
                                  ss[4] = {x->T * HW, HW, C * x->T * HW, 1};
                    hb_copy_nd(il, ds, tc, ss, 4, sh);
                }
                cur = (vact){il, C, 2 * x->T, x->H, x->W};
            }
        }
        float *up = scr_alloc(r, C * cur.T * 4 * HW);
        if (!up) return -1;
        hb_upsample_nearest(up, cur.d, C, cur.T, cur.H, cur.W, 1, 2, 2);
        vact ua = {up, C, cur.T, 2 * cur.H, 2 * cur.W};
        float *y = pp_other(r, x->d, rs->cout * ua.T * ua.H * ua.W);
        hb_conv3d_params p = {.stride = {1, 1, 1}, .pad_h = {1, 1}, .pad_w = {1, 1}, .groups = 1};
        if (!y || conv_run(y, up, &rs->conv, ua.T, ua.H, ua.W, &p)) return -1;
        *x = (vact){y, rs->cout, ua.T, ua.H, ua.W};
    } else {
        /* ZeroPad2d((0,1,0,1)) + 3x3 stride-2 conv */
        hb_conv3d_params p = {.stride = {1, 2, 2}, .pad_h = {0, 1}, .pad_w = {0, 1}, .groups = 1};
        int64_t To, Ho, Wo;
        hb_conv3d_out_size(x->T, x->H, x->W, &rs->conv.w, &p, &To, &Ho, &Wo);
        float *y = pp_other(r, x->d, rs->cout * To * Ho * Wo);
        if (!y || conv_run(y, x->d, &rs->conv, x->T, x->H, x->W, &p)) return -1;
        vact ya = {y, rs->cout, To, Ho, Wo};
        if (rs->mode == RS_DOWN3D) {
            vslot *s = slot_get(r, rs->tconv.slot, ya.C, Ho, Wo);
            if (!s) return -1;
            if (s->state == ST_NONE) {
                /* first chunk: no temporal downsampling, remember the last frame */
                copy_frames(s->buf, 2, 0, ya.d, ya.T, ya.T - 1, 1, ya.C, Ho * Wo);
                s->n = 1, s->state = ST_TENSOR;
            } else {
                int64_t HW2 = Ho * Wo, Tn = 1 + ya.T;
                float *cat = scr_alloc(r, ya.C * Tn * HW2);
                if (!cat) return -1;
                {
                    copy_frames(cat, Tn, 0, s->buf, 2, s->n - 1, 1, ya.C, HW2);
                    copy_frames(cat, Tn, 1, ya.d, ya.T, 0, ya.T, ya.C, HW2);
                    copy_frames(s->buf, 2, 0, ya.d, ya.T, ya.T - 1, 1, ya.C, HW2);
                }
                s->n = 1;
                hb_conv3d_params pt = {.stride = {2, 1, 1}, .groups = 1};
                int64_t T2, H2, W2;
                hb_conv3d_out_size(Tn, Ho, Wo, &rs->tconv.w, &pt, &T2, &H2, &W2);
                if (T2 < 1) return hb_error("wan_vae: temporal downsampling of a %lld-frame chunk", (long long)ya.T);
                float *y2 = pp_other(r, ya.d, ya.C * T2 * H2 * W2);
                if (!y2 || conv_run(y2, cat, &rs->tconv, Tn, Ho, Wo, &pt)) return -1;
                ya = (vact){y2, ya.C, T2, H2, W2};
            }
        }
        *x = ya;
    }
    hb_arena_reset(&r->scr, mk);
    return 0;
}

/* Wan 2.2 AvgDown3D: zero frames in front up to a multiple of ft, then average groups of grp consecutive
 * channels of the (c, it, ih, iw)-flattened input. Output channel o, group member g reads flattened channel
 * k = o*grp + g, i.e. input channel k / fac at sub-position k % fac. When the output width is a multiple q of
 * the input width (every official config), q*grp = fac and the channels o = i*q + oq (i < Cin) share one
 * sub-position, read from input channels c0 + i: one strided copy per (g, oq) fetches them all. Otherwise
 * (q = Cout, one channel per copy) the same loop copies channel by channel. The sum runs over g in order
 * from the first member, like the reference's mean. */
static int avg_down(vrun *r, const vstage *s, const vact *x, vact *y) {
    int ft = s->sc_ft, fs = s->sc_fs;
    int64_t pad = (ft - x->T % ft) % ft, T2 = (x->T + pad) / ft, H2 = x->H / fs, W2 = x->W / fs;
    int64_t fac = (int64_t)ft * fs * fs, grp = s->sc_in * fac / s->sc_out, S2 = T2 * H2 * W2, HW = x->H * x->W;
    int64_t cout = s->sc_out, q = cout % s->sc_in == 0 ? cout / s->sc_in : cout, nc = cout / q;
    float *d = scr_alloc(r, cout * S2), *tmp = grp > 1 ? scr_alloc(r, cout * S2) : NULL;
    if (!d || (grp > 1 && !tmp)) return -1;
    *y = (vact){d, cout, T2, H2, W2};
    for (int64_t g = 0; g < grp; g++) {
        float *dst = g == 0 ? d : tmp;
        if (pad) hb_fill(dst, 0.0f, cout * S2); /* the padded frame of the sub-positions it < pad */
        for (int64_t oq = 0; oq < q; oq++) {
            int64_t k = oq * grp + g, c0 = k / fac, sb = k % fac;
            int64_t it = sb / (fs * fs), ih = (sb / fs) % fs, iw = sb % fs;
            int64_t t0 = it < pad ? 1 : 0; /* first output frame whose source frame t*ft + it - pad exists */
            if (t0 >= T2) continue;
            const int64_t sh[4] = {nc, T2 - t0, H2, W2}, ds[4] = {q * S2, H2 * W2, W2, 1},
                          ss[4] = {x->T * HW, ft * HW, fs * x->W, fs};
            hb_copy_nd(dst + oq * S2 + t0 * H2 * W2, ds, x->d + c0 * x->T * HW + (t0 * ft + it - pad) * HW + ih * x->W + iw,
                       ss, 4, sh);
        }
        if (g > 0) hb_add(d, d, tmp, cout * S2);
    }
    hb_scale_add(d, d, 1.0f / (float)grp, d, 0.0f, cout * S2);
    return 0;
}

/* Wan 2.2 DupUp3D (repeat_interleave over channels, then unshuffle into time/space); first chunk drops the
 * first ft-1 frames. Output channel o at sub-position sb = (it*fs + ih)*fs + iw reads input channel
 * (o*fac + sb) / rep: one strided copy per sub-position covers every output channel when rep divides fac (the
 * input width a multiple of the output width: every official config), else one copy per (sub-position,
 * channel). Every output value is written. */
static int dup_up(vrun *r, const vstage *s, const vact *x, vact *y) {
    int ft = s->sc_ft, fs = s->sc_fs;
    int64_t fac = (int64_t)ft * fs * fs, rep = s->sc_out * fac / s->sc_in;
    int64_t drop = r->first_chunk ? ft - 1 : 0;
    int64_t T2 = x->T * ft - drop, H2 = x->H * fs, W2 = x->W * fs, THW = x->T * x->H * x->W, HW = x->H * x->W;
    int64_t cout = s->sc_out;
    float *d = scr_alloc(r, cout * T2 * H2 * W2);
    if (!d) return -1;
    *y = (vact){d, cout, T2, H2, W2};
    bool whole = fac % rep == 0;
    for (int64_t sb = 0; sb < fac; sb++) {
        int64_t it = sb / (fs * fs), ih = (sb / fs) % fs, iw = sb % fs;
        int64_t t0 = it < drop ? 1 : 0; /* first input frame whose output frame t*ft + it - drop is kept */
        if (t0 >= x->T) continue;
        float *dst = d + (t0 * ft + it - drop) * H2 * W2 + ih * W2 + iw;
        const int64_t ds[4] = {T2 * H2 * W2, ft * H2 * W2, fs * W2, fs};
        for (int64_t o = 0; o < (whole ? 1 : cout); o++) {
            const int64_t sh[4] = {whole ? cout : 1, x->T - t0, x->H, x->W}, ss[4] = {(fac / rep) * THW, HW, x->W, 1};
            int64_t c = (o * fac + sb) / rep;
            hb_copy_nd(dst + o * T2 * H2 * W2, ds, x->d + c * THW + t0 * HW, ss, 4, sh);
        }
    }
    return 0;
}

static int stage_run(vrun *r, const vstage *s, vact *x) {
    size_t mk = hb_arena_mark(&r->scr);
    vact sc = {0};
    bool have_sc = false;
    if (s->sc_kind == SC_AVGDOWN) {
        if (avg_down(r, s, x, &sc)) return -1;
        have_sc = true;
    } else if (s->sc_kind == SC_DUPUP) {
        if (dup_up(r, s, x, &sc)) return -1;
        have_sc = true;
    } else if (s->sc_kind == SC_IDENTITY) {
        float *d = scr_alloc(r, vnumel(x));
        if (!d) return -1;
        hb_copy(d, x->d, vnumel(x));
        sc = (vact){d, x->C, x->T, x->H, x->W};
        have_sc = true;
    }
    for (int j = 0; j < s->nres; j++)
        if (res_block(r, &s->res[j], x)) return -1;
    if (s->has_rs && resample(r, &s->rs, x)) return -1;
    if (have_sc) {
        if (sc.C != x->C || sc.T != x->T || sc.H != x->H || sc.W != x->W)
            return hb_error("wan_vae: stage shortcut shape [%lld,%lld,%lld,%lld] differs from the main path "
                            "[%lld,%lld,%lld,%lld]", (long long)sc.C, (long long)sc.T, (long long)sc.H, (long long)sc.W,
                            (long long)x->C, (long long)x->T, (long long)x->H, (long long)x->W);
        hb_add(x->d, x->d, sc.d, vnumel(x));
    }
    hb_arena_reset(&r->scr, mk);
    return 0;
}

/* Decoder block b's chunk output appended to its whole-clip tap (a copy: the decode itself is untouched). */
static int tap_block(vrun *r, int b, const vact *x) {
    vtaps *tp = r->taps;
    if (!tp || !tp->d[b]) return 0;
    if (tp->t0[b] + x->T > tp->T[b])
        return hb_error("wan_vae: decoder block %d gives more than the %lld frames planned", b, (long long)tp->T[b]);
    copy_frames(tp->d[b], tp->T[b], tp->t0[b], x->d, x->T, 0, x->T, x->C, x->H * x->W);
    tp->t0[b] += x->T;
    return 0;
}

/* One chunk through encoder or decoder; x is in a ping-pong buffer, the result replaces it. */
static int coder_run(vrun *r, const vcoder *cd, bool enc, vact *x) {
    vact y;
    float *yd = pp_other(r, x->d, cd->conv1.cout * x->T * x->H * x->W);
    if (!yd || cached_conv(r, &cd->conv1, x, yd, &y)) return -1;
    *x = y;
    if (enc)
        for (int i = 0; i < cd->nst; i++)
            if (stage_run(r, &cd->st[i], x)) return -1;
    if (res_block(r, &cd->mid0, x) || attn_block(r, &cd->attn, x) || res_block(r, &cd->mid2, x)) return -1;
    if (!enc && tap_block(r, 0, x)) return -1;
    if (!enc)
        for (int i = 0; i < cd->nst; i++)
            if (stage_run(r, &cd->st[i], x) || tap_block(r, 1 + i, x)) return -1;
    size_t mk = hb_arena_mark(&r->scr);
    float *t = scr_alloc(r, vnumel(x));
    if (!t) return -1;
    norm_silu(&cd->head_norm, x, t);
    vact ta = {t, x->C, x->T, x->H, x->W};
    yd = pp_other(r, x->d, cd->head.cout * x->T * x->H * x->W);
    if (!yd || cached_conv(r, &cd->head, &ta, yd, &y)) return -1;
    hb_arena_reset(&r->scr, mk);
    *x = y;
    return 0;
}

/* ------------------------------------------------------------------------------------------------------
 * Tiles, chunks and the driver. */
/* Puts a chunk's result src [C, T, h, w] at frame t0 of dst [C, Td, Hd, Wd] (frames past Td are dropped), on
 * tile i of t: a copy when the tile covers the plane, else dst += src * the tile's weight map (models/tiles.h;
 * src is overwritten with its weighted values). */
static void emit(const hb_tiles *t, int i, float *dst, int64_t C, int64_t Td, int64_t t0, vact *src) {
    int64_t nt = src->T < Td - t0 ? src->T : Td - t0, HW = src->H * src->W, HWd = t->H * t->W;
    if (nt <= 0) return;
    if (hb_tiles_count(t) == 1) {
        copy_frames(dst, Td, t0, src->d, src->T, 0, nt, C, HW);
        return;
    }
    for (int64_t c = 0; c < C; c++) hb_tiles_blend(t, i, dst + (c * Td + t0) * HWd, HWd, nt, src->d + c * src->T * HW);
}

typedef struct {
    bool enc;
    const float *in;
    int64_t Tin, Hin, Win;   /* input dims (video for encode, latent for decode) */
    int64_t hl, wl;          /* latent plane */
    float *out;              /* latent (encode) or video (decode) */
    int64_t Tout, Hout, Wout;
    float *mid;              /* mu_logvar / dec_conv2 (latent resolution), optional */
    vtaps *taps;             /* decode: block outputs, optional */
    int nchunks;
    int64_t *cf;             /* chunk boundaries, nchunks+1 input frames */
    bool cont;               /* decode: continues a clip (streaming push after the first): no first chunk */
} vjob;

/* One chunk of one tile: input frames [f0, f1) of rows/cols (latent units) of span sy, sx. */
static int run_chunk(vrun *r, const vjob *j, int64_t f0, int64_t f1, const hb_span *sy, const hb_span *sx, vact *res,
                     vact *midv) {
    const hb_wan_vae *m = r->m;
    int64_t z = m->cfg.z_dim, tc = f1 - f0;
    if (j->enc) {
        int64_t s = m->sf, th = (sy->b - sy->a) * s, tw = (sx->b - sx->a) * s, y0 = sy->a * s, x0 = sx->a * s;
        bool v22 = m->cfg.variant == HB_WAN_VAE_22;
        float *crop = v22 ? scr_alloc(r, 3 * tc * th * tw) : pp_other(r, NULL, 3 * tc * th * tw);
        if (!crop) return -1;
        {
            const int64_t sh[4] = {3, tc, th, tw}, ds[4] = {tc * th * tw, th * tw, tw, 1},
                          ss[4] = {j->Tin * j->Hin * j->Win, j->Hin * j->Win, j->Win, 1};
            hb_copy_nd(crop, ds, j->in + (f0 * j->Hin + y0) * j->Win + x0, ss, 4, sh);
        }
        vact x = {crop, 3, tc, th, tw};
        if (v22) {
            float *p = pp_other(r, NULL, 12 * tc * th * tw / 4);
            if (!p) return -1;
            hb_pixel_unshuffle(p, crop, 3, tc, th / 2, tw / 2, 2, HB_PS_CRQ);
            x = (vact){p, 12, tc, th / 2, tw / 2};
        }
        if (coder_run(r, &m->enc, true, &x)) return -1;
        float *ml = scr_alloc(r, 2 * z * x.T * x.H * x.W);
        if (!ml || conv1x1(&m->conv1, &x, ml, midv)) return -1;
        /* normalised mu as a separate activation */
        float *mu = scr_alloc(r, z * x.T * x.H * x.W);
        if (!mu) return -1;
        int64_t S = x.T * x.H * x.W;
        { /* (mu - mean) * (1 / std), in two exact steps */
            hb_channel_affine(mu, ml, z, S, NULL, &m->t_neg_mean);
            hb_channel_affine(mu, mu, z, S, &m->t_inv_std, NULL);
        }
        *res = (vact){mu, z, x.T, x.H, x.W};
    } else {
        int64_t th = sy->b - sy->a, tw = sx->b - sx->a, S = tc * th * tw;
        float *crop = scr_alloc(r, z * S);
        if (!crop) return -1;
        { /* crop, then z * std + mean */
            const int64_t sh[4] = {z, tc, th, tw}, ds[4] = {tc * th * tw, th * tw, tw, 1},
                          ss[4] = {j->Tin * j->Hin * j->Win, j->Hin * j->Win, j->Win, 1};
            hb_copy_nd(crop, ds, j->in + (f0 * j->Hin + sy->a) * j->Win + sx->a, ss, 4, sh);
            hb_channel_affine(crop, crop, z, S, &m->t_std, &m->t_mean);
        }
        vact zc = {crop, z, tc, th, tw}, x;
        float *xd = pp_other(r, NULL, z * S);
        if (!xd || conv1x1(&m->conv2, &zc, xd, &x)) return -1;
        *midv = x;
        /* dec_conv2 must survive the decoder: keep a copy in scratch when it is wanted */
        if (j->mid) {
            float *keep = scr_alloc(r, z * S);
            if (!keep) return -1;
            hb_copy(keep, xd, z * S);
            midv->d = keep;
        }
        if (coder_run(r, &m->dec, false, &x)) return -1;
        if (m->cfg.variant == HB_WAN_VAE_22) {
            float *v = scr_alloc(r, 3 * x.T * x.H * 2 * x.W * 2);
            if (!v) return -1;
            hb_pixel_shuffle(v, x.d, 3, x.T, x.H, x.W, 2, HB_PS_CRQ);
            x = (vact){v, 3, x.T, x.H * 2, x.W * 2};
        }
        *res = x;
    }
    return 0;
}

static void run_reset_caches(vrun *r) {
    hb_arena_reset(&r->cache, 0);
    for (int i = 0; i < r->nslots; i++) r->slots[i] = (vslot){0};
}

static void run_free(vrun *r) {
    hb_arena_free(&r->scr);
    hb_arena_free(&r->cache);
    if (r->space)
        for (int i = 0; i < 2; i++)
            if (r->pp[i]) r->space->free(r->pp[i]);
    free(r->slots);
    memset(r, 0, sizeof *r);
}

enum { MODE_RUN = 0, MODE_PLAN, MODE_FLOPS };

/* ------------------------------------------------------------------------------------------------------
 * Planning from shapes: each layer's shape function gives its output shape, the scratch it takes from the arena
 * (in the order the forward takes it, on a measuring arena that only counts), the ping-pong activation it writes,
 * the feature cache it keeps and its multiply-adds. A planning pass over the chunks sizes the run's buffers and
 * counts the FLOPs; the forward code above only computes. */
typedef struct {
    const hb_wan_vae *m;
    hb_arena scr, cache; /* measuring arenas: sizes only */
    int64_t pp;          /* largest ping-pong activation (values) */
    vslot *slots;        /* cache states (no buffers) */
    bool *sized;         /* slot counted in the cache arena */
    int nslots;
    bool first_chunk;
    double flops;
} vplanner;

static void pl_take(vplanner *pl, int64_t n) { hb_arena_alloc(&pl->scr, (size_t)n * sizeof(float)); }
static void pl_pp(vplanner *pl, int64_t n) { pl->pp = n > pl->pp ? n : pl->pp; }
static int64_t shape_numel(const vshape *x) { return x->C * x->T * x->H * x->W; }
static void pl_conv(vplanner *pl, const vconv *c, const vshape *y) {
    pl->flops += 2.0 * (double)c->cout * (double)c->cin * c->kt * c->kh * c->kw * (double)(y->T * y->H * y->W);
}

static vslot *pl_slot(vplanner *pl, int idx, const vshape *x) {
    if (!pl->sized[idx]) hb_arena_alloc(&pl->cache, (size_t)(x->C * 2 * x->H * x->W) * sizeof(float)), pl->sized[idx] = true;
    return &pl->slots[idx];
}

/* cached_conv */
static int plan_cached_conv(vplanner *pl, const vconv *c, vshape *x) {
    vslot *s = pl_slot(pl, c->slot, x);
    int n = s->state == ST_TENSOR ? s->n : 0;
    size_t mk = hb_arena_mark(&pl->scr);
    if (n > 0) pl_take(pl, x->C * (n + x->T) * x->H * x->W);
    vconv cc;
    hb_conv3d_params p;
    vshape y;
    if (cached_conv_geom(c, n, x, &cc, &p, &y)) return -1;
    pl_conv(pl, &cc, &y);
    cache_advance(s, x->T);
    hb_arena_reset(&pl->scr, mk);
    *x = y;
    return 0;
}

/* res_block */
static int plan_res(vplanner *pl, const vres *b, vshape *x) {
    size_t mk = hb_arena_mark(&pl->scr);
    int64_t S = x->T * x->H * x->W;
    if (b->has_sc) pl_take(pl, b->cout * S), pl_conv(pl, &b->sc, &(vshape){b->cout, x->T, x->H, x->W});
    pl_take(pl, b->cin * S), pl_take(pl, b->cout * S);
    vshape a = {b->cin, x->T, x->H, x->W};
    if (plan_cached_conv(pl, &b->c1, &a)) return -1;
    if (b->cin < b->cout) pl_take(pl, b->cout * S);
    pl_pp(pl, b->cout * S);
    vshape y = {b->cout, x->T, x->H, x->W};
    if (plan_cached_conv(pl, &b->c2, &y)) return -1;
    hb_arena_reset(&pl->scr, mk);
    *x = y;
    return 0;
}

/* attn_block: per frame, qkv projection, L x L attention, output projection */
static void plan_attn(vplanner *pl, const vattn *a, const vshape *x) {
    size_t mk = hb_arena_mark(&pl->scr);
    int64_t C = a->c, L = x->H * x->W, T = x->T;
    pl_take(pl, C * T * L), pl_take(pl, L * C), pl_take(pl, L * 3 * C), pl_take(pl, L * C), pl_take(pl, L * C);
    pl_pp(pl, C * T * L);
    pl->flops += (double)T * (2.0 * L * C * 3 * C + 4.0 * L * L * C + 2.0 * L * C * C);
    hb_arena_reset(&pl->scr, mk);
}

/* resample, upsampling: [temporal conv doubling the frames], nearest 2x, 3x3 conv */
static int plan_upsample(vplanner *pl, const vresample *rs, vshape *x) {
    vshape cur = *x;
    int64_t C = x->C, HW = x->H * x->W;
    if (rs->mode == RS_UP3D) {
        vslot *s = pl_slot(pl, rs->tconv.slot, x);
        if (s->state == ST_NONE) s->state = ST_REP;
        else {
            pl_take(pl, 2 * C * x->T * HW);
            vshape t = *x;
            if (s->state == ST_REP) {
                hb_conv3d_params p = {.stride = {1, 1, 1}, .pad_t = {2, 0}, .groups = 1};
                hb_conv3d_out_size(x->T, x->H, x->W, &rs->tconv.w, &p, &t.T, &t.H, &t.W);
                pl_conv(pl, &rs->tconv, &t);
                cache_advance(s, x->T);
            } else if (plan_cached_conv(pl, &rs->tconv, &t)) {
                return -1;
            }
            pl_take(pl, C * 2 * x->T * HW);
            cur.T = 2 * x->T;
        }
    }
    pl_take(pl, C * cur.T * 4 * HW);
    *x = (vshape){rs->cout, cur.T, 2 * cur.H, 2 * cur.W};
    pl_pp(pl, shape_numel(x));
    pl_conv(pl, &rs->conv, x);
    return 0;
}

/* resample, downsampling: stride-2 3x3 conv, [temporal stride-2 conv over the cached frame and the chunk] */
static int plan_downsample(vplanner *pl, const vresample *rs, vshape *x) {
    hb_conv3d_params p = {.stride = {1, 2, 2}, .pad_h = {0, 1}, .pad_w = {0, 1}, .groups = 1};
    vshape y = {rs->cout, 0, 0, 0};
    hb_conv3d_out_size(x->T, x->H, x->W, &rs->conv.w, &p, &y.T, &y.H, &y.W);
    pl_pp(pl, shape_numel(&y));
    pl_conv(pl, &rs->conv, &y);
    if (rs->mode == RS_DOWN3D) {
        vslot *s = pl_slot(pl, rs->tconv.slot, &y);
        if (s->state == ST_NONE) s->n = 1, s->state = ST_TENSOR;
        else {
            int64_t Tn = 1 + y.T;
            pl_take(pl, y.C * Tn * y.H * y.W);
            s->n = 1;
            hb_conv3d_params pt = {.stride = {2, 1, 1}, .groups = 1};
            hb_conv3d_out_size(Tn, y.H, y.W, &rs->tconv.w, &pt, &y.T, &y.H, &y.W);
            if (y.T < 1) return hb_error("wan_vae: temporal downsampling of a %lld-frame chunk", (long long)(Tn - 1));
            pl_pp(pl, shape_numel(&y));
            pl_conv(pl, &rs->tconv, &y);
        }
    }
    *x = y;
    return 0;
}

/* stage_run: shortcut, res blocks, resample */
static int plan_stage(vplanner *pl, const vstage *st, vshape *x) {
    size_t mk = hb_arena_mark(&pl->scr);
    int ft = st->sc_ft, fs = st->sc_fs;
    int64_t fac = (int64_t)ft * fs * fs;
    if (st->sc_kind == SC_AVGDOWN) { /* avg_down */
        int64_t pad = (ft - x->T % ft) % ft, S2 = (x->T + pad) / ft * (x->H / fs) * (x->W / fs);
        pl_take(pl, st->sc_out * S2);
        if (st->sc_in * fac / st->sc_out > 1) pl_take(pl, st->sc_out * S2);
    } else if (st->sc_kind == SC_DUPUP) { /* dup_up */
        int64_t T2 = x->T * ft - (pl->first_chunk ? ft - 1 : 0);
        pl_take(pl, st->sc_out * T2 * x->H * fs * x->W * fs);
    } else if (st->sc_kind == SC_IDENTITY) {
        pl_take(pl, shape_numel(x));
    }
    for (int j = 0; j < st->nres; j++)
        if (plan_res(pl, &st->res[j], x)) return -1;
    if (st->has_rs && (st->rs.mode == RS_UP2D || st->rs.mode == RS_UP3D ? plan_upsample(pl, &st->rs, x)
                                                                         : plan_downsample(pl, &st->rs, x)))
        return -1;
    hb_arena_reset(&pl->scr, mk);
    return 0;
}

/* coder_run */
static int plan_coder(vplanner *pl, const vcoder *cd, bool enc, vshape *x) {
    pl_pp(pl, cd->conv1.cout * x->T * x->H * x->W);
    if (plan_cached_conv(pl, &cd->conv1, x)) return -1;
    for (int i = 0; enc && i < cd->nst; i++)
        if (plan_stage(pl, &cd->st[i], x)) return -1;
    if (plan_res(pl, &cd->mid0, x)) return -1;
    plan_attn(pl, &cd->attn, x);
    if (plan_res(pl, &cd->mid2, x)) return -1;
    for (int i = 0; !enc && i < cd->nst; i++)
        if (plan_stage(pl, &cd->st[i], x)) return -1;
    size_t mk = hb_arena_mark(&pl->scr);
    pl_take(pl, shape_numel(x));
    pl_pp(pl, cd->head.cout * x->T * x->H * x->W);
    if (plan_cached_conv(pl, &cd->head, x)) return -1;
    hb_arena_reset(&pl->scr, mk);
    return 0;
}

/* run_chunk: tc input frames of a th x tw tile (latent units) */
static int plan_chunk(vplanner *pl, const vjob *j, int64_t tc, int64_t th, int64_t tw) {
    const hb_wan_vae *m = pl->m;
    int64_t z = m->cfg.z_dim;
    bool v22 = m->cfg.variant == HB_WAN_VAE_22;
    vshape x;
    if (j->enc) {
        th *= m->sf, tw *= m->sf;
        if (v22) pl_take(pl, 3 * tc * th * tw);
        else pl_pp(pl, 3 * tc * th * tw);
        x = v22 ? (vshape){12, tc, th / 2, tw / 2} : (vshape){3, tc, th, tw};
        if (v22) pl_pp(pl, shape_numel(&x));
        if (plan_coder(pl, &m->enc, true, &x)) return -1;
        int64_t S = x.T * x.H * x.W;
        pl_take(pl, 2 * z * S), pl_conv(pl, &m->conv1, &(vshape){2 * z, x.T, x.H, x.W}), pl_take(pl, z * S);
        return 0;
    }
    x = (vshape){z, tc, th, tw};
    pl_take(pl, shape_numel(&x));
    pl_pp(pl, shape_numel(&x));
    pl_conv(pl, &m->conv2, &x);
    if (j->mid) pl_take(pl, shape_numel(&x));
    if (plan_coder(pl, &m->dec, false, &x)) return -1;
    if (v22) pl_take(pl, 3 * x.T * x.H * 2 * x.W * 2);
    return 0;
}

static void planner_reset_caches(vplanner *pl) {
    hb_arena_reset(&pl->cache, 0);
    for (int i = 0; i < pl->nslots; i++) pl->slots[i] = (vslot){0}, pl->sized[i] = false;
}

typedef struct {
    size_t scr, cache; /* arena bytes */
    int64_t pp;        /* values per ping-pong buffer */
    double flops;
} vsizes;

/* The planning pass over job j's chunks on tiles t (all of them when counting FLOPs; else the first three chunks
 * of one tile, which give the sizes: later chunks repeat the third). */
static int plan_sizes(const hb_wan_vae *m, const vjob *j, const hb_tiles *t, bool all, vsizes *out) {
    const vcoder *cd = j->enc ? &m->enc : &m->dec;
    vplanner pl = {.m = m, .nslots = cd->nslots};
    pl.slots = calloc((size_t)pl.nslots, sizeof *pl.slots);
    pl.sized = calloc((size_t)pl.nslots, sizeof *pl.sized);
    int rc = pl.slots && pl.sized ? 0 : hb_error("wan_vae: out of memory");
    hb_arena_init_measure(&pl.scr, "wan_vae scratch");
    hb_arena_init_measure(&pl.cache, "wan_vae cache");
    int ntiles = all ? hb_tiles_count(t) : 1, nch = all || j->nchunks < 3 ? j->nchunks : 3;
    for (int i = 0; !rc && i < ntiles; i++) {
        planner_reset_caches(&pl);
        const hb_span *a = &t->y[i / t->nx], *b = &t->x[i % t->nx];
        for (int c = 0; !rc && c < nch; c++) {
            hb_arena_reset(&pl.scr, 0);
            pl.first_chunk = c == 0;
            rc = plan_chunk(&pl, j, j->cf[c + 1] - j->cf[c], a->b - a->a, b->b - b->a);
        }
    }
    *out = (vsizes){pl.scr.peak + 4096, pl.cache.peak + 4096, pl.pp, pl.flops};
    hb_arena_free(&pl.scr), hb_arena_free(&pl.cache);
    free(pl.slots), free(pl.sized);
    return rc;
}

/* A sized and allocated run: the tiles of the output and of the mid tensor, the arenas and the activation
 * buffers. Shared by the whole-clip calls (drive) and the streaming decoder (one untiled plan kept between
 * pushes). */
typedef struct {
    vrun r;
    hb_tiles out, mid; /* the same spans at the output's and at the latent resolution */
    size_t bytes;      /* workspace: arenas + activations + blend weights */
} vplan;

static void plan_free(vplan *p) {
    run_free(&p->r);
    hb_tiles_free(&p->out);
    hb_tiles_free(&p->mid);
    memset(p, 0, sizeof *p);
}

/* Both outputs of chunk c of tile i (its output frames start at tout) into the job's tensors. */
static void emit_chunk(vplan *p, const vjob *j, int c, int i, vact *res, vact *midv, int64_t tout) {
    int64_t z = p->r.m->cfg.z_dim;
    emit(&p->out, i, j->out, j->enc ? z : 3, j->Tout, tout, res);
    if (j->mid) emit(&p->mid, i, j->mid, j->enc ? 2 * z : z, j->enc ? j->Tout : j->Tin, j->enc ? tout : j->cf[c], midv);
}

/* The tiles of job j and its sizes (plan_sizes). PLAN / FLOPS: *result = bytes / FLOPs and nothing is allocated;
 * RUN: allocates (activations in the current memory space). */
static int plan_init(vplan *p, const hb_wan_vae *m, const vjob *j, const hb_wan_vae_opts *o, int mode, double *result) {
    memset(p, 0, sizeof *p);
    vrun *r = &p->r;
    vsizes sz;
    if (hb_tiles_plan(&p->out, j->hl, j->wl, o->tile, o->overlap, j->enc ? 1 : m->sf) ||
        (j->mid && hb_tiles_plan(&p->mid, j->hl, j->wl, o->tile, o->overlap, 1))) {
        hb_error_prefix("wan_vae");
        goto fail;
    }
    if (plan_sizes(m, j, &p->out, mode == MODE_FLOPS, &sz)) goto fail;
    p->bytes = sz.scr + sz.cache + 2 * (size_t)sz.pp * sizeof(float) + p->out.bytes + p->mid.bytes;
    if (mode != MODE_RUN) {
        *result = mode == MODE_FLOPS ? sz.flops : (double)p->bytes;
        plan_free(p);
        return 0;
    }
    r->m = m;
    r->nslots = (j->enc ? &m->enc : &m->dec)->nslots;
    if (!(r->slots = calloc((size_t)r->nslots, sizeof *r->slots))) { hb_error("wan_vae: out of memory"); goto fail; }
    if (hb_arena_init_dev(&r->scr, sz.scr, "wan_vae scratch") || hb_arena_init_dev(&r->cache, sz.cache, "wan_vae cache"))
        goto fail;
    r->pp_cap = sz.pp;
    r->space = hb_memspace_current();
    r->pp[0] = hb_dev_alloc((size_t)sz.pp * sizeof(float), "wan_vae activations");
    r->pp[1] = r->pp[0] ? hb_dev_alloc((size_t)sz.pp * sizeof(float), "wan_vae activations") : NULL;
    if (!r->pp[0] || !r->pp[1]) goto fail;
    return 0;
fail:
    plan_free(p);
    return -1;
}

/* Every chunk of job j on tile i, continuing the plan's feature caches (the caller resets them for a new tile or
 * clip; j->cont: the first chunk is not the clip's first). Puts the tile's output into j->out and j->mid (zeroed
 * by the caller when tiled). */
static int run_tile(vplan *p, const vjob *j, int i, hb_progress *prog, int *steps) {
    vrun *r = &p->r;
    const hb_span *a = &p->out.y[i / p->out.nx], *b = &p->out.x[i % p->out.nx];
    int64_t tout = 0;
    for (int c = 0; c < j->nchunks; c++) {
        hb_arena_reset(&r->scr, 0);
        r->first_chunk = c == 0 && !j->cont;
        vact res, midv;
        if (run_chunk(r, j, j->cf[c], j->cf[c + 1], a, b, &res, &midv)) return -1;
        if (tout + res.T > j->Tout) break; /* reported below */
        emit_chunk(p, j, c, i, &res, &midv, tout);
        tout += res.T;
        if (prog) hb_progress_step(prog, ++*steps);
    }
    if (tout != j->Tout) return hb_error("wan_vae: produced %lld frames, expected %lld", (long long)tout, (long long)j->Tout);
    return 0;
}

/* mode PLAN: returns the workspace bytes in *result; FLOPS: the flop count; RUN: does the work. */
static int drive(const hb_wan_vae *m, vjob *j, const hb_wan_vae_opts *o, int mode, double *result) {
    hb_wan_vae_opts dflt = {0};
    if (!o) o = &dflt;
    vplan p;
    if (plan_init(&p, m, j, o, mode, result)) return -1;
    if (mode != MODE_RUN) return 0;
    int rc = -1, nt = hb_tiles_count(&p.out);
    int64_t z = m->cfg.z_dim, out_n = (j->enc ? z : 3) * j->Tout * j->Hout * j->Wout;
    if (j->taps && nt > 1) {
        hb_error("wan_vae decode: decoder block outputs (dec_blocks) need an untiled decode (tile %d < latent %lldx%lld)",
                 o->tile, (long long)j->hl, (long long)j->wl);
        plan_free(&p);
        return -1;
    }
    p.r.taps = j->taps;
    if (nt > 1) { /* untiled, every output value is written once */
        hb_fill(j->out, 0.0f, out_n);
        if (j->mid) hb_fill(j->mid, 0.0f, (j->enc ? 2 * z : z) * (j->enc ? j->Tout : j->Tin) * j->hl * j->wl);
    }
    hb_progress prog;
    hb_progress_begin(&prog, o->progress, o->progress_user, j->enc ? "vae encode" : "vae decode", nt * j->nchunks);
    int done_steps = 0;
    for (int i = 0; i < nt; i++) {
        run_reset_caches(&p.r);
        if (run_tile(&p, j, i, &prog, &done_steps)) goto done;
    }
    for (int b = 0; j->taps && b < HB_WAN_VAE_MAX_BLOCKS; b++)
        if (j->taps->d[b] && j->taps->t0[b] != j->taps->T[b]) {
            hb_error("wan_vae: decoder block %d gave %lld frames, expected %lld", b, (long long)j->taps->t0[b], (long long)j->taps->T[b]);
            goto done;
        }
    if (!j->enc && !o->raw) hb_elementwise(HB_EW_CLAMP, j->out, j->out, NULL, -1.0f, 1.0f, out_n);
    rc = 0;
done:
    hb_progress_end(&prog);
    /* queued work must finish before its buffers go (and its errors are reported here) */
    if (hb_backend_sync()) rc = -1;
    plan_free(&p);
    return rc;
}

static int setup_encode(const hb_wan_vae *m, vjob *j, int64_t T, int64_t H, int64_t W, const hb_wan_vae_opts *o) {
    memset(j, 0, sizeof *j);
    int tf = m->tf, sf = m->sf;
    if (T < 1 || (T - 1) % tf) return hb_error("wan_vae encode: %lld frames; the encoder takes 1 + %d*k frames", (long long)T, tf);
    if (H < sf || W < sf || H % sf || W % sf)
        return hb_error("wan_vae encode: %lldx%lld is not a multiple of %d", (long long)H, (long long)W, sf);
    int ce = o && o->enc_chunk > 0 ? o->enc_chunk : tf;
    if (ce % tf) return hb_error("wan_vae encode: enc_chunk %d is not a multiple of %d", ce, tf);
    j->enc = true;
    j->Tin = T, j->Hin = H, j->Win = W;
    j->hl = H / sf, j->wl = W / sf;
    j->Tout = 1 + (T - 1) / tf, j->Hout = j->hl, j->Wout = j->wl;
    j->nchunks = 1 + (int)((T - 1 + ce - 1) / ce);
    j->cf = malloc(sizeof(int64_t) * (size_t)(j->nchunks + 1));
    if (!j->cf) return hb_error("wan_vae: out of memory");
    j->cf[0] = 0;
    for (int c = 1; c <= j->nchunks; c++) j->cf[c] = c == 1 ? 1 : (j->cf[c - 1] + ce < T ? j->cf[c - 1] + ce : T);
    return 0;
}

/* cont: the latents continue a clip (a streaming push after the first): every chunk is dec_chunk frames and
 * each latent frame gives tf video frames; otherwise the first chunk is frame 0 alone (1 video frame). */
static int setup_decode(const hb_wan_vae *m, vjob *j, int64_t t, int64_t h, int64_t w, const hb_wan_vae_opts *o, bool cont) {
    memset(j, 0, sizeof *j);
    if (t < 1 || h < 1 || w < 1) return hb_error("wan_vae decode: empty latent %lldx%lldx%lld", (long long)t, (long long)h, (long long)w);
    int cdn = o && o->dec_chunk > 0 ? o->dec_chunk : 1;
    int64_t f0 = cont ? 0 : 1; /* frames in the first chunk before the dec_chunk-sized ones */
    j->enc = false;
    j->cont = cont;
    j->Tin = t, j->Hin = h, j->Win = w;
    j->hl = h, j->wl = w;
    j->Tout = cont ? m->tf * t : 1 + m->tf * (t - 1), j->Hout = h * m->sf, j->Wout = w * m->sf;
    j->nchunks = (int)f0 + (int)((t - f0 + cdn - 1) / cdn);
    j->cf = malloc(sizeof(int64_t) * (size_t)(j->nchunks + 1));
    if (!j->cf) return hb_error("wan_vae: out of memory");
    j->cf[0] = 0;
    for (int c = 1; c <= j->nchunks; c++)
        j->cf[c] = c == 1 && f0 ? 1 : (j->cf[c - 1] + cdn < t ? j->cf[c - 1] + cdn : t);
    return 0;
}

int hb_wan_vae_encode(hb_wan_vae *m, const float *video, int64_t T, int64_t H, int64_t W, float *latent,
                      const hb_wan_vae_opts *o) {
    vjob j;
    if (setup_encode(m, &j, T, H, W, o)) return -1;
    j.in = video, j.out = latent, j.mid = o ? o->mu_logvar : NULL;
    int rc = drive(m, &j, o, MODE_RUN, NULL);
    free(j.cf);
    return rc;
}

int hb_wan_vae_decoder_blocks(const hb_wan_vae *m) { return 1 + m->dec.nst; }

int hb_wan_vae_block_shape(const hb_wan_vae *m, int block, int64_t t, int64_t h, int64_t w, int64_t s[4]) {
    const vcoder *dc = &m->dec;
    if (block < 0 || block > dc->nst) return hb_error("wan_vae: decoder block %d (the decoder has blocks 0..%d)", block, dc->nst);
    int64_t C = dc->mid2.cout;
    for (int i = 0; i < block; i++) {
        const vstage *st = &dc->st[i];
        C = st->has_rs ? st->rs.cout : st->res[st->nres - 1].cout;
        if (st->has_rs) h *= 2, w *= 2;
        if (st->has_rs && st->rs.mode == RS_UP3D) t = 1 + 2 * (t - 1); /* the first latent frame is not doubled */
    }
    s[0] = C, s[1] = t, s[2] = h, s[3] = w;
    return 0;
}

/* the taps of o->dec_blocks for a clip of t x h x w latents; *any false when none is wanted */
static int taps_setup(const hb_wan_vae *m, const hb_wan_vae_opts *o, int64_t t, int64_t h, int64_t w, vtaps *tp, bool *any) {
    memset(tp, 0, sizeof *tp);
    *any = false;
    for (int b = 0; o && b < HB_WAN_VAE_MAX_BLOCKS; b++) {
        if (!o->dec_blocks[b]) continue;
        int64_t s[4];
        if (hb_wan_vae_block_shape(m, b, t, h, w, s)) return hb_error_prefix("wan_vae decode: dec_blocks[%d]", b);
        tp->d[b] = o->dec_blocks[b], tp->T[b] = s[1], *any = true;
    }
    return 0;
}

int hb_wan_vae_decode(hb_wan_vae *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video,
                      const hb_wan_vae_opts *o) {
    vjob j;
    vtaps taps;
    bool any;
    if (setup_decode(m, &j, t, h, w, o, false)) return -1;
    if (taps_setup(m, o, t, h, w, &taps, &any)) { free(j.cf); return -1; }
    j.in = latent, j.out = video, j.mid = o ? o->dec_conv2 : NULL, j.taps = any ? &taps : NULL;
    int rc = drive(m, &j, o, MODE_RUN, NULL);
    free(j.cf);
    return rc;
}

int64_t hb_wan_vae_encode_workspace(hb_wan_vae *m, int64_t T, int64_t H, int64_t W, const hb_wan_vae_opts *o) {
    vjob j;
    double v = -1;
    if (setup_encode(m, &j, T, H, W, o)) return -1;
    int rc = drive(m, &j, o, MODE_PLAN, &v);
    free(j.cf);
    return rc ? -1 : (int64_t)v;
}

int64_t hb_wan_vae_decode_workspace(hb_wan_vae *m, int64_t t, int64_t h, int64_t w, const hb_wan_vae_opts *o) {
    vjob j;
    double v = -1;
    if (setup_decode(m, &j, t, h, w, o, false)) return -1;
    int rc = drive(m, &j, o, MODE_PLAN, &v);
    free(j.cf);
    return rc ? -1 : (int64_t)v;
}

double hb_wan_vae_decode_flops(const hb_wan_vae *m, int64_t t, int64_t h, int64_t w, const hb_wan_vae_opts *o) {
    vjob j;
    double v = -1;
    if (setup_decode(m, &j, t, h, w, o, false)) return -1;
    if (drive(m, &j, o, MODE_FLOPS, &v)) v = -1;
    free(j.cf);
    return v;
}

double hb_wan_vae_encode_flops(const hb_wan_vae *m, int64_t T, int64_t H, int64_t W, const hb_wan_vae_opts *o) {
    vjob j;
    double v = -1;
    if (setup_encode(m, &j, T, H, W, o)) return -1;
    if (drive(m, &j, o, MODE_FLOPS, &v)) v = -1;
    free(j.cf);
    return v;
}

/* ------------------------------------------------------------------------------------------------------
 * Streaming decoder: one untiled plan (sized for a clip 1 + 2*dec_chunk latents long: every chunk after the
 * first three repeats the third) whose feature caches carry over from push to push. */
struct hb_wan_vae_decoder {
    hb_wan_vae *m;
    hb_wan_vae_opts o;
    int64_t h, w;
    vplan p;
    bool started;
};

hb_wan_vae_decoder *hb_wan_vae_decoder_new(hb_wan_vae *m, int64_t h, int64_t w, const hb_wan_vae_opts *opts) {
    hb_wan_vae_opts o = {0};
    if (opts) o = *opts;
    if (o.tile > 0 && (o.tile < h || o.tile < w)) {
        hb_error("wan_vae decoder: spatial tiling (tile %d < latent %lldx%lld) is not supported when streaming; "
                 "tile outside (e.g. hb_decoder's tile option) or decode the whole clip", o.tile, (long long)h, (long long)w);
        return NULL;
    }
    bool taps = false;
    for (int b = 0; b < HB_WAN_VAE_MAX_BLOCKS; b++) taps |= o.dec_blocks[b] != NULL;
    if (o.dec_conv2 || o.mu_logvar || taps) {
        hb_error("wan_vae decoder: dec_conv2 / mu_logvar / dec_blocks outputs are not supported when streaming");
        return NULL;
    }
    o.tile = 0;
    int cdn = o.dec_chunk > 0 ? o.dec_chunk : 1;
    vjob j;
    if (setup_decode(m, &j, 1 + 2 * (int64_t)cdn, h, w, &o, false)) return NULL;
    hb_wan_vae_decoder *d = calloc(1, sizeof *d);
    if (!d) { free(j.cf); hb_error("wan_vae: out of memory"); return NULL; }
    d->m = m, d->o = o, d->h = h, d->w = w;
    int rc = plan_init(&d->p, m, &j, &d->o, MODE_RUN, NULL);
    free(j.cf);
    if (rc) { free(d); return NULL; }
    return d;
}

int hb_wan_vae_decoder_push(hb_wan_vae_decoder *d, const float *latent, int64_t n, float *video, int64_t *frames_out) {
    if (frames_out) *frames_out = 0;
    if (n == 0) return 0;
    vjob j;
    if (setup_decode(d->m, &j, n, d->h, d->w, &d->o, d->started)) return -1;
    j.in = latent, j.out = video;
    if (!d->started) run_reset_caches(&d->p.r);
    int64_t out_n = 3 * j.Tout * j.Hout * j.Wout;
    int rc = run_tile(&d->p, &j, 0, NULL, NULL); /* untiled: writes every value of video */
    free(j.cf);
    if (!rc && !d->o.raw) hb_elementwise(HB_EW_CLAMP, video, video, NULL, -1.0f, 1.0f, out_n);
    if (hb_backend_sync()) rc = -1;
    if (rc) return -1;
    d->started = true;
    if (frames_out) *frames_out = j.Tout;
    return 0;
}

void hb_wan_vae_decoder_reset(hb_wan_vae_decoder *d) {
    if (d) d->started = false;
}

size_t hb_wan_vae_decoder_bytes(const hb_wan_vae_decoder *d) { return d ? d->p.bytes : 0; }

void hb_wan_vae_decoder_free(hb_wan_vae_decoder *d) {
    if (!d) return;
    plan_free(&d->p);
    free(d);
}

/* ------------------------------------------------------------------------------------------------------
 * The frame-decoder interface (models/frame_decoder.h) over the streaming decoder. */
static void *fd_create(void *model, int64_t h, int64_t w, bool raw) {
    hb_wan_vae_opts o = {.raw = raw};
    return hb_wan_vae_decoder_new(model, h, w, &o);
}

static int fd_push(void *st, const float *latent, int64_t n, float *video, int64_t *nout) {
    return hb_wan_vae_decoder_push(st, latent, n, video, nout);
}

static int fd_finish(void *st, float *video, int64_t *nout) {
    (void)video;
    *nout = 0;
    hb_wan_vae_decoder_reset(st);
    return 0;
}

static int fd_decode(void *st, const float *latent, int64_t n, float *video) {
    int64_t got = 0;
    hb_wan_vae_decoder_reset(st);
    int rc = hb_wan_vae_decoder_push(st, latent, n, video, &got);
    hb_wan_vae_decoder_reset(st);
    return rc;
}

static void fd_reset(void *st) { hb_wan_vae_decoder_reset(st); }
static size_t fd_bytes(const void *st) { return hb_wan_vae_decoder_bytes(st); }
static void fd_free(void *st) { hb_wan_vae_decoder_free(st); }

static const hb_frame_decoder_ops wan_fd_ops = {fd_create, fd_push, fd_finish, fd_decode, fd_reset, fd_bytes, fd_free, NULL};

void hb_wan_vae_frame_decoder(hb_wan_vae *m, hb_frame_decoder *out) {
    *out = (hb_frame_decoder){.ops = &wan_fd_ops, .model = m, .name = "Wan VAE", .latent_channels = m->cfg.z_dim,
                              .temporal_factor = m->tf, .spatial_factor = m->sf, .causal = true};
}
