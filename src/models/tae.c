/* TAEHV tiny autoencoder (see tae.h). The encoder and the decoder are each a flat list of layers indexed
 * exactly like the reference nn.Sequential (so the state_dict names map one to one). One function applies
 * a layer to one frame; the whole-clip path calls it layer by layer over all frames, the streaming path
 * frame by frame depth first, so both give the same bits. */
#include "models/tae.h"
#include "ops/ops.h"
#include "io/safetensors_writer.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef enum { TL_CLAMP, TL_CONV, TL_RELU, TL_MEM, TL_UP, TL_TGROW, TL_TPOOL } tae_ltype;

typedef struct {
    tae_ltype type;
    int64_t cin, cout;  /* channels of one input / output frame */
    int stride;         /* CONV: spatial stride; TGROW/TPOOL: time stride; UP: spatial factor */
    int k;              /* CONV kernel size (3) */
    hb_tensor w, b;     /* CONV, TGROW, TPOOL; MEM: conv.0 */
    bool has_b;
    hb_tensor w2, b2, w4, b4, skip; /* MEM: conv.2, conv.4, skip (1x1, no bias) */
    bool has_skip;
    /* Upsample fusion: a 2x nearest UP marked `fused` is skipped, and the next 3x3 CONV (only TGrows, 1x1 convs
     * that commute with the upsampling, in between) computes conv(upsample(x)) from the low-resolution x as
     * four 2x2 convs, one per output phase (a, b) = (row, column) parity: wp[2a+b] [cout, cin, 1, 2, 2]. */
    bool fused;
    hb_tensor wp[4];
    float *wp_data;
} tae_layer;

#define TAE_MAX_LAYERS 32

typedef struct {
    tae_layer L[TAE_MAX_LAYERS];
    int n;
    int64_t in_c, out_c;
    int tscale;         /* product of TGrow strides (decoder) or TPool strides (encoder) */
    int sdown, sup;     /* spatial down / up factor of the layers (encoder stride product, decoder up product) */
} tae_seq;

struct hb_tae {
    hb_tae_config cfg;
    tae_seq enc, dec;
    bool has_enc, has_dec;
    int patch, latent_c;
};

void hb_tae_config_default(hb_tae_config *c) {
    memset(c, 0, sizeof *c);
    c->encoder_time_downscale[0] = c->encoder_time_downscale[1] = true;
    c->decoder_time_upscale[1] = c->decoder_time_upscale[2] = true;
    for (int i = 0; i < 3; i++) c->decoder_space_upscale[i] = true;
}

/* Activations (every float* below except the phase weights) live in the current memory space and are only
 * touched through ops (ops/ops.h), so the model runs unchanged on any backend. */

#define EW1(op, y, a, n) hb_elementwise(op, y, a, NULL, 0.0f, 0.0f, n)

/* ---------- one layer on one frame ---------- */

typedef struct { float *cat, *a, *b; } tae_scratch;

static int conv_frame(float *y, const float *x, int64_t cin, int64_t H, int64_t W, const hb_tensor *w,
                      const hb_tensor *b, int stride, int k) {
    return hb_conv2d(y, x, cin, H, W, w, b, stride, k / 2, 1);
}

/* MemBlock: y = relu(conv4(relu(conv2(relu(conv0(cat[x, past]))))) + skip(x)); past NULL = zeros. */
static int memblock_frame(const tae_layer *l, float *y, const float *x, const float *past, int64_t H, int64_t W,
                          const tae_scratch *s) {
    int64_t hw = H * W, ci = l->cin, co = l->cout;
    hb_copy(s->cat, x, ci * hw);
    if (past) hb_copy(s->cat + ci * hw, past, ci * hw);
    else hb_fill(s->cat + ci * hw, 0.0f, ci * hw);
    if (conv_frame(s->a, s->cat, 2 * ci, H, W, &l->w, &l->b, 1, 3)) return -1;
    EW1(HB_EW_RELU, s->a, s->a, co * hw);
    if (conv_frame(s->b, s->a, co, H, W, &l->w2, &l->b2, 1, 3)) return -1;
    EW1(HB_EW_RELU, s->b, s->b, co * hw);
    if (conv_frame(y, s->b, co, H, W, &l->w4, &l->b4, 1, 3)) return -1;
    const float *sk = x;
    if (l->has_skip) {
        if (conv_frame(s->a, x, ci, H, W, &l->skip, NULL, 1, 1)) return -1;
        sk = s->a;
    }
    hb_elementwise(HB_EW_ADD_RELU, y, y, sk, 0.0f, 0.0f, co * hw);
    return 0;
}

/* y [cout, 2h, 2w] = conv3x3(upsample2x(x)) for x [cin, h, w], phase by phase; tmp holds cout*h*w. */
static int upconv_frame(const tae_layer *l, float *y, const float *x, int64_t h, int64_t w, float *tmp) {
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            hb_conv3d_params p = {{1, 1, 1}, {0, 0}, {a ? 0 : 1, a ? 1 : 0}, {b ? 0 : 1, b ? 1 : 0}, 1, HB_CONV_FAST};
            if (hb_conv3d(tmp, x, l->cin, 1, h, w, &l->wp[2 * a + b], l->has_b ? &l->b : NULL, &p)) return -1;
            /* phase (a, b): y[o, 2i+a, 2j+b] = tmp[o, i, j] */
            const int64_t shp[3] = {l->cout, h, w}, ss[3] = {h * w, w, 1}, ds[3] = {4 * h * w, 4 * w, 2};
            hb_copy_nd(y + a * 2 * w + b, ds, tmp, ss, 3, shp);
        }
    return 0;
}

/* Phase weights of a 3x3 conv applied after 2x nearest upsampling. Output row 2i+a reads upsampled rows
 * 2i+a-1 .. 2i+a+1, i.e. input rows {i-1, i, i} (a = 0) or {i, i, i+1} (a = 1): taps that hit the same input
 * row are summed. */
static int make_phase_weights(tae_layer *l) {
    int64_t co = l->cout, ci = l->cin, n = co * ci * 9;
    float *w = hb_malloc((size_t)n * sizeof(float), "TAEHV conv weight");
    l->wp_data = hb_malloc((size_t)(16 * co * ci) * sizeof(float), "TAEHV phase weights");
    if (!w || !l->wp_data) { hb_free(w); return -1; }
    hb_convert_to_f32(w, l->w.data, l->w.dtype, (size_t)n); /* the weight is contiguous (checked shape) */
    static const int map[2][3] = {{0, 1, 1}, {0, 0, 1}}; /* [parity][3x3 tap] -> 2x2 tap */
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            float *d = l->wp_data + (2 * a + b) * 4 * co * ci;
            memset(d, 0, (size_t)(4 * co * ci) * sizeof(float));
            for (int64_t oc = 0; oc < co * ci; oc++)
                for (int u = 0; u < 3; u++)
                    for (int v = 0; v < 3; v++) d[oc * 4 + map[a][u] * 2 + map[b][v]] += w[oc * 9 + u * 3 + v];
            int64_t shape[5] = {co, ci, 1, 2, 2};
            l->wp[2 * a + b] = hb_tensor_make(HB_F32, 5, shape, d);
        }
    hb_free(w);
    return 0;
}

/* Mark every 2x UP followed (through TGrows only) by a 3x3 stride-1 conv, and build the phase weights. */
static int fuse_upsampling(tae_seq *q) {
    for (int i = 0; i < q->n; i++) {
        if (q->L[i].type != TL_UP || q->L[i].stride != 2) continue;
        int j = i + 1;
        while (j < q->n && q->L[j].type == TL_TGROW) j++;
        if (j >= q->n || q->L[j].type != TL_CONV || q->L[j].k != 3 || q->L[j].stride != 1) continue;
        if (!hb_tensor_is_contiguous(&q->L[j].w)) continue;
        if (make_phase_weights(&q->L[j])) return -1;
        q->L[i].fused = q->L[j].fused = true;
    }
    return 0;
}

static void seq_free(tae_seq *q) {
    for (int i = 0; i < q->n; i++) {
        tae_layer *l = &q->L[i];
        if (!l->wp_data) continue;
        hb_host_memory_released(l->wp_data, (size_t)(16 * l->cout * l->cin) * sizeof(float)); /* device copies */
        hb_free(l->wp_data), l->wp_data = NULL;
    }
}

/* Per-frame shapes at every layer boundary for an input frame of c x H x W. */
typedef struct { int64_t C[TAE_MAX_LAYERS + 1], H[TAE_MAX_LAYERS + 1], W[TAE_MAX_LAYERS + 1]; } tae_shapes;

static void seq_shapes(const tae_seq *q, int64_t H, int64_t W, tae_shapes *s) {
    s->C[0] = q->in_c, s->H[0] = H, s->W[0] = W;
    for (int i = 0; i < q->n; i++) {
        const tae_layer *l = &q->L[i];
        int64_t c = s->C[i], h = s->H[i], w = s->W[i];
        switch (l->type) {
        case TL_CONV:
            c = l->cout;
            if (l->fused) { h *= 2, w *= 2; break; }
            h = (h + 2 * (l->k / 2) - l->k) / l->stride + 1;
            w = (w + 2 * (l->k / 2) - l->k) / l->stride + 1;
            break;
        case TL_MEM: case TL_TGROW: case TL_TPOOL: c = l->cout; break;
        case TL_UP: if (!l->fused) h *= l->stride, w *= l->stride; break;
        default: break;
        }
        s->C[i + 1] = c, s->H[i + 1] = h, s->W[i + 1] = w;
    }
}

/* Scratch sizes (floats) for the MemBlocks of a sequence at these shapes. */
static void scratch_sizes(const tae_seq *q, const tae_shapes *s, int64_t *ncat, int64_t *nab) {
    *ncat = *nab = 0;
    for (int i = 0; i < q->n; i++) {
        if (q->L[i].type != TL_MEM) continue;
        int64_t hw = s->H[i] * s->W[i];
        if (2 * q->L[i].cin * hw > *ncat) *ncat = 2 * q->L[i].cin * hw;
        int64_t ab = (q->L[i].cout > q->L[i].cin ? q->L[i].cout : q->L[i].cin) * hw;
        if (ab > *nab) *nab = ab;
    }
    for (int i = 0; i < q->n; i++) /* a fused upsampling conv: one phase of the output */
        if (q->L[i].type == TL_CONV && q->L[i].fused && q->L[i].cout * s->H[i] * s->W[i] > *nab)
            *nab = q->L[i].cout * s->H[i] * s->W[i];
}

static int scratch_alloc(tae_scratch *sc, const tae_seq *q, const tae_shapes *s, size_t *bytes) {
    int64_t ncat, nab;
    scratch_sizes(q, s, &ncat, &nab);
    sc->cat = hb_dev_alloc((size_t)(ncat ? ncat : 1) * sizeof(float), "TAEHV scratch");
    sc->a = hb_dev_alloc((size_t)(nab ? nab : 1) * sizeof(float), "TAEHV scratch");
    sc->b = hb_dev_alloc((size_t)(nab ? nab : 1) * sizeof(float), "TAEHV scratch");
    if (bytes) *bytes += (size_t)(ncat + 2 * nab) * sizeof(float);
    return sc->cat && sc->a && sc->b ? 0 : -1;
}

static void scratch_free(tae_scratch *sc) {
    hb_dev_free(sc->cat), hb_dev_free(sc->a), hb_dev_free(sc->b);
    memset(sc, 0, sizeof *sc);
}

/* ---------- loading ---------- */

typedef struct { tae_ltype type; bool bias; int stage; int stride; } tae_spec; /* stride: CONV spatial stride */

static const tae_spec k_dec_spec[] = {
    {TL_CLAMP, 0, 0, 0}, {TL_CONV, 1, 0, 1}, {TL_RELU, 0, 0, 0},
    {TL_MEM, 0, 0, 0},   {TL_MEM, 0, 0, 0},  {TL_MEM, 0, 0, 0},  {TL_UP, 0, 0, 0}, {TL_TGROW, 0, 0, 0}, {TL_CONV, 0, 0, 1},
    {TL_MEM, 0, 1, 0},   {TL_MEM, 0, 1, 0},  {TL_MEM, 0, 1, 0},  {TL_UP, 0, 1, 0}, {TL_TGROW, 0, 1, 0}, {TL_CONV, 0, 1, 1},
    {TL_MEM, 0, 2, 0},   {TL_MEM, 0, 2, 0},  {TL_MEM, 0, 2, 0},  {TL_UP, 0, 2, 0}, {TL_TGROW, 0, 2, 0}, {TL_CONV, 0, 2, 1},
    {TL_RELU, 0, 0, 0},  {TL_CONV, 1, 0, 1},
};
static const tae_spec k_enc_spec[] = {
    {TL_CONV, 1, 0, 1},  {TL_RELU, 0, 0, 0},
    {TL_TPOOL, 0, 0, 0}, {TL_CONV, 0, 0, 2}, {TL_MEM, 0, 0, 0}, {TL_MEM, 0, 0, 0}, {TL_MEM, 0, 0, 0},
    {TL_TPOOL, 0, 1, 0}, {TL_CONV, 0, 1, 2}, {TL_MEM, 0, 1, 0}, {TL_MEM, 0, 1, 0}, {TL_MEM, 0, 1, 0},
    {TL_TPOOL, 0, 2, 0}, {TL_CONV, 0, 2, 2}, {TL_MEM, 0, 2, 0}, {TL_MEM, 0, 2, 0}, {TL_MEM, 0, 2, 0},
    {TL_CONV, 1, 0, 1},
};

static int get4(const hb_checkpoint *ck, const char *name, int64_t a, int64_t b, int64_t c, int64_t d, hb_tensor *t) {
    int64_t shape[4] = {a, b, c, d};
    return hb_checkpoint_get_shaped(ck, name, 4, shape, t);
}

static int get1(const hb_checkpoint *ck, const char *name, int64_t n, hb_tensor *t) {
    return hb_checkpoint_get_shaped(ck, name, 1, &n, t);
}

/* Build a sequence from its spec. c_in: input channels (-1 = from the first weight). */
static int build_seq(const hb_checkpoint *ck, const char *part, const tae_spec *spec, int n, int64_t c_in,
                     const bool *tflags, const bool *sflags, tae_seq *q) {
    char nm[128];
    int64_t c = c_in;
    memset(q, 0, sizeof *q);
    q->n = n, q->tscale = 1, q->sdown = 1, q->sup = 1;
    for (int i = 0; i < n; i++) {
        tae_layer *l = &q->L[i];
        l->type = spec[i].type;
        l->cin = c;
        switch (l->type) {
        case TL_CLAMP: case TL_RELU: l->cout = c; break;
        case TL_UP:
            l->stride = sflags[spec[i].stage] ? 2 : 1;
            q->sup *= l->stride;
            l->cout = c;
            break;
        case TL_CONV:
            l->k = 3, l->stride = spec[i].stride, l->has_b = spec[i].bias;
            q->sdown *= l->stride;
            snprintf(nm, sizeof nm, "%s.%d.weight", part, i);
            if (get4(ck, nm, -1, c, 3, 3, &l->w)) return -1;
            if (c < 0) { /* input width from the first weight: fill it in for the layers before */
                c = l->cin = l->w.shape[1];
                for (int j = 0; j < i; j++) q->L[j].cin = q->L[j].cout = c;
            }
            l->cout = l->w.shape[0];
            if (l->has_b) {
                snprintf(nm, sizeof nm, "%s.%d.bias", part, i);
                if (get1(ck, nm, l->cout, &l->b)) return -1;
            }
            break;
        case TL_MEM: {
            snprintf(nm, sizeof nm, "%s.%d.conv.0.weight", part, i);
            if (get4(ck, nm, -1, 2 * c, 3, 3, &l->w)) return -1;
            int64_t co = l->cout = l->w.shape[0];
            l->has_b = true;
            snprintf(nm, sizeof nm, "%s.%d.conv.0.bias", part, i);
            if (get1(ck, nm, co, &l->b)) return -1;
            snprintf(nm, sizeof nm, "%s.%d.conv.2.weight", part, i);
            if (get4(ck, nm, co, co, 3, 3, &l->w2)) return -1;
            snprintf(nm, sizeof nm, "%s.%d.conv.2.bias", part, i);
            if (get1(ck, nm, co, &l->b2)) return -1;
            snprintf(nm, sizeof nm, "%s.%d.conv.4.weight", part, i);
            if (get4(ck, nm, co, co, 3, 3, &l->w4)) return -1;
            snprintf(nm, sizeof nm, "%s.%d.conv.4.bias", part, i);
            if (get1(ck, nm, co, &l->b4)) return -1;
            if (co != c) {
                l->has_skip = true;
                snprintf(nm, sizeof nm, "%s.%d.skip.weight", part, i);
                if (get4(ck, nm, co, c, 1, 1, &l->skip)) return -1;
            }
            break;
        }
        case TL_TGROW: {
            l->stride = tflags[spec[i].stage] ? 2 : 1;
            q->tscale *= l->stride;
            l->cout = c;
            snprintf(nm, sizeof nm, "%s.%d.conv.weight", part, i);
            if (get4(ck, nm, -1, c, 1, 1, &l->w)) return -1;
            int64_t rows = l->w.shape[0], need = (int64_t)l->stride * c;
            if (rows < need || rows % c)
                return hb_error("%s: tensor %s has %lld output rows; TGrow with stride %d over %lld channels needs %lld",
                                hb_checkpoint_path(ck), nm, (long long)rows, l->stride, (long long)c, (long long)need);
            if (rows > need) { /* the reference keeps the last-timestep rows (patch_tgrow_layers) */
                hb_tensor v;
                if (hb_tensor_narrow(&l->w, 0, rows - need, need, &v)) return -1;
                l->w = v;
            }
            break;
        }
        case TL_TPOOL:
            l->stride = tflags[spec[i].stage] ? 2 : 1;
            q->tscale *= l->stride;
            l->cout = c;
            snprintf(nm, sizeof nm, "%s.%d.conv.weight", part, i);
            if (get4(ck, nm, c, c * l->stride, 1, 1, &l->w)) return -1;
            break;
        }
        c = l->cout;
    }
    q->in_c = q->L[0].cin;
    q->out_c = c;
    return 0;
}

static int isqrt_exact(int64_t v) {
    for (int p = 1; (int64_t)p * p <= v; p++)
        if ((int64_t)p * p == v) return p;
    return 0;
}

hb_tae *hb_tae_load(const hb_checkpoint *ck, const hb_tae_config *cfg, unsigned parts) {
    if (!ck) { hb_error("TAEHV: no checkpoint"); return NULL; }
    if (!(parts & (HB_TAE_ENCODER | HB_TAE_DECODER))) { hb_error("TAEHV: no part requested"); return NULL; }
    hb_tae *m = hb_calloc(sizeof *m, "TAEHV model");
    if (!m) return NULL;
    if (cfg) m->cfg = *cfg;
    else hb_tae_config_default(&m->cfg);
    const char *path = hb_checkpoint_path(ck);
    int P = m->cfg.patch_size;
    int64_t C = m->cfg.latent_channels;
    if (P < 0 || C < 0) { hb_error("%s: TAEHV config: negative patch_size or latent_channels", path); goto fail; }
    if (parts & HB_TAE_DECODER) {
        if (build_seq(ck, "decoder", k_dec_spec, (int)(sizeof k_dec_spec / sizeof k_dec_spec[0]), C ? C : -1,
                      m->cfg.decoder_time_upscale, m->cfg.decoder_space_upscale, &m->dec))
            goto fail_ctx;
        if (!m->cfg.unfused_upsample && fuse_upsampling(&m->dec)) goto fail;
        C = m->dec.in_c;
        int p = isqrt_exact(m->dec.out_c / 3);
        if (m->dec.out_c % 3 || !p)
            { hb_error("%s: decoder.22.weight has %lld output channels, not 3*p*p", path, (long long)m->dec.out_c); goto fail; }
        if (P && p != P)
            { hb_error("%s: decoder.22.weight gives patch size %d, the config says %d", path, p, P); goto fail; }
        P = p;
        m->has_dec = true;
    }
    if (parts & HB_TAE_ENCODER) {
        static const bool no_up[3] = {false, false, false};
        if (build_seq(ck, "encoder", k_enc_spec, (int)(sizeof k_enc_spec / sizeof k_enc_spec[0]), P ? 3 * P * P : -1,
                      m->cfg.encoder_time_downscale, no_up, &m->enc))
            goto fail_ctx;
        int p = isqrt_exact(m->enc.in_c / 3);
        if (m->enc.in_c % 3 || !p)
            { hb_error("%s: encoder.0.weight has %lld input channels, not 3*p*p", path, (long long)m->enc.in_c); goto fail; }
        P = p;
        if (C && m->enc.out_c != C) {
            hb_error("%s: encoder.17.weight gives %lld latent channels, the decoder/config %lld", path,
                     (long long)m->enc.out_c, (long long)C);
            goto fail;
        }
        C = m->enc.out_c;
        m->has_enc = true;
    }
    m->patch = P, m->latent_c = (int)C;
    m->cfg.patch_size = P, m->cfg.latent_channels = (int)C;
    return m;
fail_ctx:
    hb_error_prefix("TAEHV");
fail:
    hb_tae_free(m);
    return NULL;
}

void hb_tae_free(hb_tae *m) {
    if (!m) return;
    seq_free(&m->dec);
    seq_free(&m->enc);
    hb_free(m);
}
int hb_tae_patch_size(const hb_tae *m) { return m->patch; }
int hb_tae_latent_channels(const hb_tae *m) { return m->latent_c; }
int hb_tae_t_upscale(const hb_tae *m) { return m->has_dec ? m->dec.tscale : 1; }
int hb_tae_t_downscale(const hb_tae *m) { return m->has_enc ? m->enc.tscale : 1; }
int hb_tae_frames_to_trim(const hb_tae *m) { return hb_tae_t_upscale(m) - 1; }
int hb_tae_space_scale(const hb_tae *m) { return (m->has_dec ? m->dec.sup : m->enc.sdown) * m->patch; }
bool hb_tae_has_encoder(const hb_tae *m) { return m->has_enc; }
bool hb_tae_has_decoder(const hb_tae *m) { return m->has_dec; }
int64_t hb_tae_decoded_frames(const hb_tae *m, int64_t T) { return T > 0 ? T * hb_tae_t_upscale(m) - hb_tae_frames_to_trim(m) : 0; }
int64_t hb_tae_encoded_frames(const hb_tae *m, int64_t T) { int d = hb_tae_t_downscale(m); return (T + d - 1) / d; }

/* MACs of a sequence fed `mult` frames of H x W. */
static double seq_macs(const tae_seq *q, int64_t H, int64_t W, double mult) {
    tae_shapes s;
    seq_shapes(q, H, W, &s);
    double macs = 0;
    for (int i = 0; i < q->n; i++) {
        const tae_layer *l = &q->L[i];
        double hw = (double)s.H[i] * s.W[i], ci = (double)l->cin, co = (double)l->cout;
        switch (l->type) {
        case TL_CONV: macs += mult * co * ci * (l->fused ? 16 * hw : l->k * l->k * (double)s.H[i + 1] * s.W[i + 1]); break;
        case TL_MEM: macs += mult * hw * 9.0 * (2 * ci * co + 2 * co * co) + (l->has_skip ? mult * hw * ci * co : 0); break;
        case TL_TGROW: macs += mult * hw * ci * ci * l->stride; mult *= l->stride; break;
        case TL_TPOOL: mult /= l->stride; macs += mult * hw * ci * l->stride * co; break;
        default: break;
        }
    }
    return macs;
}

double hb_tae_decoder_macs(const hb_tae *m, int64_t h, int64_t w) { return m->has_dec ? seq_macs(&m->dec, h, w, 1) : 0; }
double hb_tae_encoder_macs(const hb_tae *m, int64_t H, int64_t W) {
    return m->has_enc ? seq_macs(&m->enc, H / m->patch, W / m->patch, m->enc.tscale) : 0;
}

/* ---------- streaming runner: one frame at a time, depth first ---------- */

typedef struct tae_run tae_run;
typedef int (*tae_sink)(tae_run *r, const float *out);

struct tae_run {
    const tae_seq *q;
    tae_shapes s;
    float *buf[TAE_MAX_LAYERS]; /* each layer's output for one frame (TGrow: stride frames) */
    float *mem[TAE_MAX_LAYERS]; /* MemBlock: its previous input; TPool: the frames gathered so far */
    int memn[TAE_MAX_LAYERS];
    tae_scratch sc;
    tae_sink sink;
    size_t bytes;
};

static void run_free(tae_run *r) {
    for (int i = 0; i < TAE_MAX_LAYERS; i++) hb_dev_free(r->buf[i]), hb_dev_free(r->mem[i]);
    scratch_free(&r->sc);
    memset(r, 0, sizeof *r);
}

static int run_init(tae_run *r, const tae_seq *q, int64_t H, int64_t W, tae_sink sink) {
    memset(r, 0, sizeof *r);
    r->q = q, r->sink = sink;
    seq_shapes(q, H, W, &r->s);
    for (int i = 0; i < q->n; i++) {
        const tae_layer *l = &q->L[i];
        int64_t in = r->s.C[i] * r->s.H[i] * r->s.W[i], out = r->s.C[i + 1] * r->s.H[i + 1] * r->s.W[i + 1];
        int64_t nb = 0, nm = 0;
        switch (l->type) {
        case TL_CLAMP: case TL_RELU: nb = i == 0 ? out : 0; break; /* in place, except on the caller's input */
        case TL_CONV: nb = out; break;
        case TL_UP: nb = l->fused ? 0 : out; break;
        case TL_MEM: nb = out, nm = in; break;
        case TL_TGROW: nb = out * l->stride; break;
        case TL_TPOOL: nb = out, nm = l->stride > 1 ? in * l->stride : 0; break;
        }
        if (nb) { r->buf[i] = hb_dev_alloc((size_t)nb * sizeof(float), "TAEHV layer buffer"); if (!r->buf[i]) goto fail; }
        if (nm) { r->mem[i] = hb_dev_alloc((size_t)nm * sizeof(float), "TAEHV layer memory"); if (!r->mem[i]) goto fail; }
        r->bytes += (size_t)(nb + nm) * sizeof(float);
    }
    if (scratch_alloc(&r->sc, q, &r->s, &r->bytes)) goto fail;
    return 0;
fail:
    run_free(r);
    return -1;
}

static void run_reset(tae_run *r) { memset(r->memn, 0, sizeof r->memn); }

/* Push one frame into layer i (x is the frame at layer i's input). */
static int run_from(tae_run *r, int i, const float *x) {
    const tae_seq *q = r->q;
    for (; i < q->n; i++) {
        const tae_layer *l = &q->L[i];
        int64_t H = r->s.H[i], W = r->s.W[i], n_in = r->s.C[i] * H * W;
        float *y = r->buf[i] ? r->buf[i] : (float *)x; /* elementwise layers work in place on our buffers */
        switch (l->type) {
        case TL_CLAMP: EW1(HB_EW_TANH3, y, x, n_in); break;
        case TL_RELU: EW1(HB_EW_RELU, y, x, n_in); break;
        case TL_CONV:
            if (l->fused ? upconv_frame(l, y, x, H, W, r->sc.a)
                         : conv_frame(y, x, l->cin, H, W, &l->w, l->has_b ? &l->b : NULL, l->stride, l->k))
                return -1;
            break;
        case TL_UP: if (!l->fused) hb_upsample_nearest(y, x, l->cin, 1, H, W, 1, l->stride, l->stride); break;
        case TL_MEM:
            if (memblock_frame(l, y, x, r->memn[i] ? r->mem[i] : NULL, H, W, &r->sc)) return -1;
            hb_copy(r->mem[i], x, n_in);
            r->memn[i] = 1;
            break;
        case TL_TGROW:
            if (conv_frame(y, x, l->cin, H, W, &l->w, NULL, 1, 1)) return -1;
            for (int j = 0; j < l->stride; j++)
                if (run_from(r, i + 1, y + j * n_in)) return -1;
            return 0;
        case TL_TPOOL:
            if (l->stride > 1) {
                hb_copy(r->mem[i] + r->memn[i] * n_in, x, n_in);
                if (++r->memn[i] < l->stride) return 0;
                r->memn[i] = 0;
                x = r->mem[i];
            }
            if (conv_frame(y, x, l->cin * l->stride, H, W, &l->w, NULL, 1, 1)) return -1;
            break;
        }
        x = y;
    }
    return r->sink(r, x);
}

/* ---------- whole clip: layer by layer over all frames ---------- */

/* x: T frames at the sequence input (consumed: freed here). On success *out holds *Tout frames. */
static int run_clip(const tae_seq *q, float *x, int64_t T, int64_t H, int64_t W, float **out, int64_t *Tout) {
    tae_shapes s;
    tae_scratch sc = {0};
    seq_shapes(q, H, W, &s);
    if (scratch_alloc(&sc, q, &s, NULL)) { scratch_free(&sc); hb_dev_free(x); return -1; }
    for (int i = 0; i < q->n; i++) {
        const tae_layer *l = &q->L[i];
        int64_t h = s.H[i], w = s.W[i], fi = s.C[i] * h * w, fo = s.C[i + 1] * s.H[i + 1] * s.W[i + 1];
        int64_t To = l->type == TL_TGROW ? T * l->stride : l->type == TL_TPOOL ? T / l->stride : T;
        if (l->type == TL_UP && l->fused) continue;
        if (l->type == TL_CLAMP || l->type == TL_RELU) {
            for (int64_t t = 0; t < T; t++) EW1(l->type == TL_CLAMP ? HB_EW_TANH3 : HB_EW_RELU, x + t * fi, x + t * fi, fi);
            continue;
        }
        float *y = hb_dev_alloc((size_t)(To * fo > 0 ? To * fo : 1) * sizeof(float), "TAEHV clip activations");
        if (!y) goto fail;
        int rc = 0;
        for (int64_t t = 0; t < T && !rc; t++) {
            const float *xt = x + t * fi;
            switch (l->type) {
            case TL_CONV:
                rc = l->fused ? upconv_frame(l, y + t * fo, xt, h, w, sc.a)
                              : conv_frame(y + t * fo, xt, l->cin, h, w, &l->w, l->has_b ? &l->b : NULL, l->stride, l->k);
                break;
            case TL_UP: hb_upsample_nearest(y + t * fo, xt, l->cin, 1, h, w, 1, l->stride, l->stride); break;
            case TL_MEM: rc = memblock_frame(l, y + t * fo, xt, t ? xt - fi : NULL, h, w, &sc); break;
            case TL_TGROW: rc = conv_frame(y + t * l->stride * fo, xt, l->cin, h, w, &l->w, NULL, 1, 1); break;
            case TL_TPOOL:
                if (t % l->stride == 0) rc = conv_frame(y + t / l->stride * fo, xt, l->cin * l->stride, h, w, &l->w, NULL, 1, 1);
                break;
            default: break;
            }
        }
        hb_dev_free(x);
        x = y, T = To;
        if (rc) goto fail;
    }
    scratch_free(&sc);
    *out = x, *Tout = T;
    return 0;
fail:
    hb_dev_free(x);
    scratch_free(&sc);
    return -1;
}

/* ---------- decoder ---------- */

struct hb_tae_decoder {
    tae_run run; /* first: the sink gets the run and casts back */
    const hb_tae *m;
    int64_t h, w, H, W, raw_count, out_count;
    float *in, *rgb;
    hb_tae_frame_fn fn;
    void *user;
};

/* Pixel shuffle + clamp of one raw frame and the callback. */
static int dec_emit(hb_tae_decoder *d, const float *raw) {
    const hb_tae *m = d->m;
    int P = m->patch;
    const tae_shapes *s = &d->run.s;
    int n = m->dec.n;
    int64_t nrgb = 3 * d->H * d->W;
    bool keep = d->raw_count >= hb_tae_frames_to_trim(m);
    if (keep) {
        if (P > 1) {
            hb_pixel_shuffle(d->rgb, raw, 3, 1, s->H[n], s->W[n], P, HB_PS_CQR);
            EW1(HB_EW_CLAMP01, d->rgb, d->rgb, nrgb);
        } else EW1(HB_EW_CLAMP01, d->rgb, raw, nrgb);
    }
    hb_tae_frame f = {keep ? d->out_count : -1, d->raw_count, keep ? d->rgb : NULL, raw, d->H, d->W};
    d->raw_count++;
    if (keep) d->out_count++;
    hb_clear_error(); /* a callback that fails says why (a full disk, say); keep its message */
    int rc = d->fn ? d->fn(d->user, &f) : 0;
    if (!rc) return 0;
    return hb_last_error()[0] ? -1 : hb_error("TAEHV decoder: the frame callback stopped the stream (%d)", rc);
}

static int dec_sink(tae_run *r, const float *out) { return dec_emit((hb_tae_decoder *)r, out); }

/* with_run = false: only the output stage (shapes, rgb buffer), for the whole-clip path. */
static hb_tae_decoder *dec_create(const hb_tae *m, int64_t h, int64_t w, hb_tae_frame_fn fn, void *user, bool with_run) {
    if (!m->has_dec) { hb_error("TAEHV: the model was loaded without its decoder"); return NULL; }
    if (h <= 0 || w <= 0) { hb_error("TAEHV decoder: bad latent size %lldx%lld", (long long)h, (long long)w); return NULL; }
    hb_tae_decoder *d = hb_calloc(sizeof *d, "TAEHV decoder");
    if (!d) return NULL;
    d->m = m, d->h = h, d->w = w, d->fn = fn, d->user = user;
    if (!with_run) d->run.q = &m->dec, seq_shapes(&m->dec, h, w, &d->run.s);
    else if (run_init(&d->run, &m->dec, h, w, dec_sink)) { hb_free(d); return NULL; }
    int n = m->dec.n;
    d->H = d->run.s.H[n] * m->patch, d->W = d->run.s.W[n] * m->patch;
    d->in = hb_dev_alloc((size_t)(m->dec.in_c * h * w) * sizeof(float), "TAEHV decoder input");
    d->rgb = hb_dev_alloc((size_t)(3 * d->H * d->W) * sizeof(float), "TAEHV decoder output");
    d->run.bytes += (size_t)(m->dec.in_c * h * w + 3 * d->H * d->W) * sizeof(float);
    if (!d->in || !d->rgb) { hb_tae_decoder_free(d); return NULL; }
    return d;
}

hb_tae_decoder *hb_tae_decoder_new(const hb_tae *m, int64_t h, int64_t w, hb_tae_frame_fn fn, void *user) {
    return dec_create(m, h, w, fn, user, true);
}

int hb_tae_decoder_push(hb_tae_decoder *d, const float *latent, int64_t cstride) {
    int64_t hw = d->h * d->w, C = d->m->dec.in_c;
    if (!cstride) cstride = hw;
    hb_copy_rows(d->in, hw, latent, cstride, C, hw);
    return run_from(&d->run, 0, d->in);
}

int hb_tae_decoder_push_frames(hb_tae_decoder *d, const float *latent, int64_t n, int64_t frame_stride,
                               int64_t cstride) {
    for (int64_t t = 0; t < n; t++)
        if (hb_tae_decoder_push(d, latent + t * frame_stride, cstride)) return -1;
    return 0;
}

void hb_tae_decoder_reset(hb_tae_decoder *d) { run_reset(&d->run); d->raw_count = d->out_count = 0; }
int64_t hb_tae_decoder_frames_out(const hb_tae_decoder *d) { return d->out_count; }
size_t hb_tae_decoder_bytes(const hb_tae_decoder *d) { return d->run.bytes; }

void hb_tae_decoder_free(hb_tae_decoder *d) {
    if (!d) return;
    run_free(&d->run);
    hb_dev_free(d->in), hb_dev_free(d->rgb), hb_free(d);
}

typedef struct { float *video, *raw; int64_t nrgb, nraw; } clip_dst;

static int clip_frame(void *user, const hb_tae_frame *f) {
    clip_dst *c = user;
    if (c->raw) hb_copy(c->raw + f->raw_index * c->nraw, f->raw, c->nraw);
    if (f->rgb) hb_copy(c->video + f->index * c->nrgb, f->rgb, c->nrgb);
    return 0;
}

int hb_tae_decode_video(const hb_tae *m, const float *latent, int64_t T, int64_t h, int64_t w, float *video,
                        float *raw, bool streaming) {
    if (T <= 0) return 0;
    hb_tae_decoder *d = dec_create(m, h, w, clip_frame, NULL, streaming);
    if (!d) return -1;
    int n = m->dec.n;
    clip_dst dst = {video, raw, 3 * d->H * d->W, d->run.s.C[n] * d->run.s.H[n] * d->run.s.W[n]};
    d->user = &dst;
    int64_t fl = m->dec.in_c * h * w;
    int rc = 0;
    if (streaming) rc = hb_tae_decoder_push_frames(d, latent, T, fl, 0);
    else {
        float *x = hb_dev_alloc((size_t)(T * fl) * sizeof(float), "TAEHV clip input"), *y = NULL;
        int64_t To = 0;
        if (!x) rc = -1;
        else {
            hb_copy(x, latent, T * fl);
            rc = run_clip(&m->dec, x, T, h, w, &y, &To);
        }
        for (int64_t t = 0; !rc && t < To; t++) rc = dec_emit(d, y + t * dst.nraw);
        hb_dev_free(y);
    }
    hb_tae_decoder_free(d);
    return rc;
}

/* ---------- encoder ---------- */

struct hb_tae_encoder {
    tae_run run; /* first, as in the decoder */
    const hb_tae *m;
    int64_t H, W, n_in, n_out;
    float *in, *last;
    hb_tae_latent_fn fn;
    void *user;
};

static int enc_sink(tae_run *r, const float *out) {
    hb_tae_encoder *e = (hb_tae_encoder *)r;
    int n = e->m->enc.n;
    int rc = e->fn ? e->fn(e->user, e->n_out, out, r->s.C[n], r->s.H[n], r->s.W[n]) : 0;
    e->n_out++;
    return rc ? hb_error("TAEHV encoder: the latent callback stopped the stream (%d)", rc) : 0;
}

static int enc_check(const hb_tae *m, int64_t H, int64_t W) {
    if (!m->has_enc) return hb_error("TAEHV: the model was loaded without its encoder");
    int64_t div = (int64_t)m->patch * m->enc.sdown;
    if (H <= 0 || W <= 0 || H % div || W % div)
        return hb_error("TAEHV encoder: frame size %lldx%lld is not a positive multiple of %lld", (long long)H,
                        (long long)W, (long long)div);
    return 0;
}

hb_tae_encoder *hb_tae_encoder_new(const hb_tae *m, int64_t H, int64_t W, hb_tae_latent_fn fn, void *user) {
    if (enc_check(m, H, W)) return NULL;
    hb_tae_encoder *e = hb_calloc(sizeof *e, "TAEHV encoder");
    if (!e) return NULL;
    e->m = m, e->H = H, e->W = W, e->fn = fn, e->user = user;
    if (run_init(&e->run, &m->enc, H / m->patch, W / m->patch, enc_sink)) { hb_free(e); return NULL; }
    e->in = hb_dev_alloc((size_t)(3 * H * W) * sizeof(float), "TAEHV encoder input");
    e->last = hb_dev_alloc((size_t)(3 * H * W) * sizeof(float), "TAEHV encoder input");
    e->run.bytes += (size_t)(6 * H * W) * sizeof(float);
    if (!e->in || !e->last) { hb_tae_encoder_free(e); return NULL; }
    return e;
}

/* Feed the contiguous frame in e->last (pixel-unshuffled into e->in when P > 1). */
static int enc_feed_last(hb_tae_encoder *e) {
    int P = e->m->patch;
    const float *x = e->last;
    if (P > 1) {
        hb_pixel_unshuffle(e->in, e->last, 3, 1, e->H / P, e->W / P, P, HB_PS_CQR);
        x = e->in;
    }
    e->n_in++;
    return run_from(&e->run, 0, x);
}

int hb_tae_encoder_push(hb_tae_encoder *e, const float *frame, int64_t cstride) {
    int64_t hw = e->H * e->W;
    if (!cstride) cstride = hw;
    hb_copy_rows(e->last, hw, frame, cstride, 3, hw);
    return enc_feed_last(e);
}

int hb_tae_encoder_flush(hb_tae_encoder *e) {
    int d = e->m->enc.tscale;
    while (e->n_in > 0 && e->n_in % d)
        if (enc_feed_last(e)) return -1;
    return 0;
}

void hb_tae_encoder_reset(hb_tae_encoder *e) { run_reset(&e->run); e->n_in = e->n_out = 0; }
size_t hb_tae_encoder_bytes(const hb_tae_encoder *e) { return e->run.bytes; }

void hb_tae_encoder_free(hb_tae_encoder *e) {
    if (!e) return;
    run_free(&e->run);
    hb_dev_free(e->in), hb_dev_free(e->last), hb_free(e);
}

typedef struct { float *latent; int64_t n; } enc_dst;

static int enc_clip_latent(void *user, int64_t index, const float *latent, int64_t C, int64_t h, int64_t w) {
    enc_dst *d = user;
    hb_copy(d->latent + index * d->n, latent, C * h * w);
    return 0;
}

int hb_tae_encode_video(const hb_tae *m, const float *video, int64_t T, int64_t H, int64_t W, float *latent,
                        bool streaming) {
    if (T <= 0) return 0;
    if (enc_check(m, H, W)) return -1;
    tae_shapes s;
    seq_shapes(&m->enc, H / m->patch, W / m->patch, &s);
    int n = m->enc.n;
    enc_dst dst = {latent, s.C[n] * s.H[n] * s.W[n]};
    int64_t fs = 3 * H * W;
    int rc = 0;
    if (streaming) {
        hb_tae_encoder *e = hb_tae_encoder_new(m, H, W, enc_clip_latent, &dst);
        if (!e) return -1;
        for (int64_t t = 0; t < T && !rc; t++) rc = hb_tae_encoder_push(e, video + t * fs, 0);
        if (!rc) rc = hb_tae_encoder_flush(e);
        hb_tae_encoder_free(e);
    } else {
        int d = m->enc.tscale, P = m->patch;
        int64_t Tp = (T + d - 1) / d * d, To = 0;
        float *x = hb_dev_alloc((size_t)(Tp * fs) * sizeof(float), "TAEHV clip input"), *y = NULL;
        if (!x) rc = -1;
        else {
            for (int64_t t = 0; t < Tp; t++) {
                const float *src = video + (t < T ? t : T - 1) * fs;
                if (P > 1) hb_pixel_unshuffle(x + t * fs, src, 3, 1, H / P, W / P, P, HB_PS_CQR);
                else hb_copy(x + t * fs, src, fs);
            }
            rc = run_clip(&m->enc, x, Tp, H / P, W / P, &y, &To);
        }
        if (!rc) hb_copy(latent, y, To * dst.n);
        hb_dev_free(y);
    }
    return rc;
}

/* ---------- the weight list (names, shapes, init roles) ---------- */


static int rw_add(hb_st_tensor *ts, int *n, int init, int ndim, int64_t a, int64_t b, int64_t k, const char *fmt,
                  const char *part, int i) {
    hb_st_tensor *t = &ts[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, fmt, part, i);
    t->ndim = ndim, t->init = init;
    t->shape[0] = a;
    if (ndim == 4) t->shape[1] = b, t->shape[2] = t->shape[3] = k;
    return 0;
}

/* Names and shapes of one part; out_w(stage-or-index) picks each CONV's output width. */
static void rw_list(hb_st_tensor *ts, int *n, const char *part, const tae_spec *spec, int ns, int64_t c_in,
                    const int64_t *conv_out, const bool *tflags) {
    int64_t c = c_in;
    int nconv = 0;
    for (int i = 0; i < ns; i++) {
        switch (spec[i].type) {
        case TL_CONV: {
            int64_t co = conv_out[nconv++];
            bool last = i == ns - 1 && !strcmp(part, "decoder");
            rw_add(ts, n, last ? HB_TAE_INIT_WEIGHT_OUT : HB_TAE_INIT_WEIGHT, 4, co, c, 3, "%s.%d.weight", part, i);
            if (spec[i].bias) rw_add(ts, n, last ? HB_TAE_INIT_BIAS_OUT : HB_TAE_INIT_BIAS, 1, co, 0, 0, "%s.%d.bias", part, i);
            c = co;
            break;
        }
        case TL_MEM:
            rw_add(ts, n, HB_TAE_INIT_WEIGHT, 4, c, 2 * c, 3, "%s.%d.conv.0.weight", part, i);
            rw_add(ts, n, HB_TAE_INIT_BIAS, 1, c, 0, 0, "%s.%d.conv.0.bias", part, i);
            rw_add(ts, n, HB_TAE_INIT_WEIGHT, 4, c, c, 3, "%s.%d.conv.2.weight", part, i);
            rw_add(ts, n, HB_TAE_INIT_BIAS, 1, c, 0, 0, "%s.%d.conv.2.bias", part, i);
            rw_add(ts, n, HB_TAE_INIT_WEIGHT, 4, c, c, 3, "%s.%d.conv.4.weight", part, i);
            rw_add(ts, n, HB_TAE_INIT_BIAS, 1, c, 0, 0, "%s.%d.conv.4.bias", part, i);
            break;
        case TL_TGROW: rw_add(ts, n, HB_TAE_INIT_WEIGHT, 4, c * (tflags[spec[i].stage] ? 2 : 1), c, 1, "%s.%d.conv.weight", part, i); break;
        case TL_TPOOL: rw_add(ts, n, HB_TAE_INIT_WEIGHT, 4, c, c * (tflags[spec[i].stage] ? 2 : 1), 1, "%s.%d.conv.weight", part, i); break;
        default: break;
        }
    }
}

int hb_tae_weight_list(int patch, int latent_channels, int enc_width, const int dec_widths[4], hb_st_tensor *ts,
                       int cap) {
    if (patch < 1 || latent_channels < 1 || enc_width < 1 || dec_widths[0] < 1 || dec_widths[1] < 1 ||
        dec_widths[2] < 1 || dec_widths[3] < 1)
        return hb_error("TAEHV weights: sizes must be positive");
    if (cap < HB_TAE_MAX_TENSORS) return hb_error("TAEHV weights: room for %d tensors needed", HB_TAE_MAX_TENSORS);
    hb_tae_config cfg;
    hb_tae_config_default(&cfg);
    int n = 0;
    int64_t enc_out[5] = {enc_width, enc_width, enc_width, enc_width, latent_channels};
    int64_t dec_out[5] = {dec_widths[0], dec_widths[1], dec_widths[2], dec_widths[3], 3 * patch * patch};
    rw_list(ts, &n, "encoder", k_enc_spec, (int)(sizeof k_enc_spec / sizeof k_enc_spec[0]), 3 * patch * patch,
            enc_out, cfg.encoder_time_downscale);
    rw_list(ts, &n, "decoder", k_dec_spec, (int)(sizeof k_dec_spec / sizeof k_dec_spec[0]), latent_channels,
            dec_out, cfg.decoder_time_upscale);
    return n;
}

/* ------------------------------------------------------------------------------------------------------
 * The frame-decoder interface (models/frame_decoder.h): a streaming decoder whose frames land, mapped to
 * [-1, 1], in the caller's [3, n, H, W] buffer (n: the frames the push gives). */
typedef struct {
    hb_tae_decoder *d;
    float *video;
    int64_t cap, n, hw;
} tae_fd;

static float k_two = 2.0f, k_minus_one = -1.0f; /* 1-element "weights" of the affine op (host, never freed) */
static int fd_sink(void *user, const hb_tae_frame *f) {
    tae_fd *s = user;
    if (!f->rgb) return 0;
    if (s->n >= s->cap) return hb_error("TAEHV: more frames than expected");
    hb_tensor two = hb_tensor_1d(HB_F32, 1, &k_two), m1 = hb_tensor_1d(HB_F32, 1, &k_minus_one);
    for (int c = 0; c < 3; c++) hb_channel_affine(s->video + (c * s->cap + s->n) * s->hw, f->rgb + c * s->hw, 1, s->hw, &two, &m1);
    s->n++;
    return 0;
}

static void *fd_create(void *model, int64_t h, int64_t w, bool raw) {
    (void)raw;
    tae_fd *s = hb_calloc(sizeof *s, "TAEHV decoder");
    if (s && !(s->d = hb_tae_decoder_new(model, h, w, fd_sink, s))) hb_free(s), s = NULL;
    if (s) s->hw = s->d->H * s->d->W;
    return s;
}

static int fd_push(void *st, const float *latent, int64_t n, float *video, int64_t *nout) {
    tae_fd *s = st;
    int64_t F = hb_tae_t_upscale(s->d->m), trim = s->d->raw_count == 0 ? hb_tae_frames_to_trim(s->d->m) : 0;
    s->video = video, s->cap = F * n - trim, s->n = 0;
    int rc = hb_tae_decoder_push_frames(s->d, latent, n, s->d->h * s->d->w, n * s->d->h * s->d->w);
    *nout = s->n;
    if (!rc && s->n != s->cap) rc = hb_error("TAEHV gave %lld frames, expected %lld", (long long)s->n, (long long)s->cap);
    return rc;
}

static int fd_finish(void *st, float *video, int64_t *nout) {
    (void)video;
    *nout = 0;
    hb_tae_decoder_reset(((tae_fd *)st)->d);
    return 0;
}

static int fd_decode(void *st, const float *latent, int64_t n, float *video) {
    tae_fd *s = st;
    int64_t got;
    hb_tae_decoder_reset(s->d);
    int rc = fd_push(st, latent, n, video, &got);
    hb_tae_decoder_reset(s->d);
    return rc;
}

static void fd_reset(void *st) { hb_tae_decoder_reset(((tae_fd *)st)->d); }
static size_t fd_bytes(const void *st) { return hb_tae_decoder_bytes(((const tae_fd *)st)->d); }
static void fd_free(void *st) {
    if (st) hb_tae_decoder_free(((tae_fd *)st)->d), hb_free(st);
}

static const hb_frame_decoder_ops tae_fd_ops = {fd_create, fd_push, fd_finish, fd_decode, fd_reset, fd_bytes, fd_free, NULL};

int hb_tae_frame_decoder(const hb_tae *m, hb_frame_decoder *out) {
    if (!m->has_dec) return hb_error("TAEHV: the model has no decoder");
    *out = (hb_frame_decoder){.ops = &tae_fd_ops, .model = (void *)m, .name = "TAEHV", .latent_channels = m->latent_c,
                              .temporal_factor = hb_tae_t_upscale(m), .spatial_factor = hb_tae_space_scale(m),
                              .causal = true};
    return 0;
}
