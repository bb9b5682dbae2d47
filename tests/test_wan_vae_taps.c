/* Wan VAE decoder block taps (hb_wan_vae_opts.dec_blocks, the teacher features of hb train-decoder) on tiny random
 * Wan2.2 and Wan2.1 models, latent 4 x 3 x 2:
 * - the video with every tap on is bit-identical to the video without (dec_chunk 1 and 2);
 * - every tap has hb_wan_vae_block_shape's size, which ends at the video's frames and size;
 * - causality of the frame placement: the taps of a 2-latent prefix are bitwise the first frames of the full
 *   clip's taps; dec_chunk 2 gives the dec_chunk 1 taps to 1e-5;
 * - values, independently of the chunked decode: the last block through the head (channel RMS norm, SiLU, causal
 *   3x3x3 conv over the whole clip with two zero frames in front, 2.2: un-patchify) is the raw video to 1e-5; the
 *   mid block is recomputed on the whole clip from the weights (conv2, causal conv1, residual block, per-frame
 *   single-head attention written out in loops, residual block) to 1e-5;
 * - a tiled decode or the streaming decoder with taps, and a block the decoder does not have, are refused. */
#include "weight_recorder.h"
#include "models/wan_vae.h"
#include "ops/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static hb_tensor gamma1d(const wrec *w, const char *name) {
    hb_tensor g = wget(w, name);
    return hb_tensor_1d(HB_F32, g.shape[0], g.data);
}

/* causal 3x3x3 conv over the whole clip: two zero frames in front, zero padding 1 in space */
static void causal_conv(float *y, const float *x, int64_t cin, int64_t T, int64_t H, int64_t W, const wrec *wr, const char *pre) {
    char nm[200];
    snprintf(nm, sizeof nm, "%s.weight", pre);
    hb_tensor wt = wget(wr, nm);
    snprintf(nm, sizeof nm, "%s.bias", pre);
    hb_tensor b = wget(wr, nm);
    hb_conv3d_params p = {.stride = {1, 1, 1}, .pad_t = {2, 0}, .pad_h = {1, 1}, .pad_w = {1, 1}, .groups = 1};
    CHECK(hb_conv3d(y, x, cin, T, H, W, &wt, &b, &p) == 0);
}

/* Wan residual block without shortcut: x + conv(silu(rms(conv(silu(rms(x)))))) */
static void res_block(float *x, int64_t C, int64_t T, int64_t H, int64_t W, const wrec *wr, const char *pre) {
    int64_t n = C * T * H * W;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    char nm[200];
    snprintf(nm, sizeof nm, "%s.residual.0.gamma", pre);
    hb_tensor g = gamma1d(wr, nm);
    hb_channel_rmsnorm(a, x, C, T * H * W, &g, NULL);
    hb_silu(a, a, n);
    snprintf(nm, sizeof nm, "%s.residual.2", pre);
    causal_conv(b, a, C, T, H, W, wr, nm);
    snprintf(nm, sizeof nm, "%s.residual.3.gamma", pre);
    g = gamma1d(wr, nm);
    hb_channel_rmsnorm(b, b, C, T * H * W, &g, NULL);
    hb_silu(b, b, n);
    snprintf(nm, sizeof nm, "%s.residual.6", pre);
    causal_conv(a, b, C, T, H, W, wr, nm);
    for (int64_t i = 0; i < n; i++) x[i] += a[i];
    free(a), free(b);
}

/* single-head attention over the H*W positions of each frame, in loops (double accumulation), + identity */
static void attn_block(float *x, int64_t C, int64_t T, int64_t L, const wrec *wr) {
    float *xn = malloc(sizeof(float) * C * T * L);
    hb_tensor g = gamma1d(wr, "decoder.middle.1.norm.gamma");
    hb_channel_rmsnorm(xn, x, C, T * L, &g, NULL);
    const float *wq = wget(wr, "decoder.middle.1.to_qkv.weight").data, *bq = wget(wr, "decoder.middle.1.to_qkv.bias").data;
    const float *wp = wget(wr, "decoder.middle.1.proj.weight").data, *bp = wget(wr, "decoder.middle.1.proj.bias").data;
    double *qkv = malloc(sizeof(double) * 3 * C * L), *o = malloc(sizeof(double) * C * L), *s = malloc(sizeof(double) * L);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t k = 0; k < 3 * C; k++)
            for (int64_t l = 0; l < L; l++) {
                double a = bq[k];
                for (int64_t c = 0; c < C; c++) a += (double)wq[k * C + c] * xn[(c * T + t) * L + l];
                qkv[k * L + l] = a;
            }
        for (int64_t i = 0; i < L; i++) {
            double mx = -1e300, sum = 0;
            for (int64_t j = 0; j < L; j++) {
                double d = 0;
                for (int64_t c = 0; c < C; c++) d += qkv[c * L + i] * qkv[(C + c) * L + j];
                s[j] = d / sqrt((double)C), mx = s[j] > mx ? s[j] : mx;
            }
            for (int64_t j = 0; j < L; j++) s[j] = exp(s[j] - mx), sum += s[j];
            for (int64_t c = 0; c < C; c++) {
                double a = 0;
                for (int64_t j = 0; j < L; j++) a += s[j] / sum * qkv[(2 * C + c) * L + j];
                o[c * L + i] = a;
            }
        }
        for (int64_t k = 0; k < C; k++)
            for (int64_t l = 0; l < L; l++) {
                double a = bp[k];
                for (int64_t c = 0; c < C; c++) a += (double)wp[k * C + c] * o[c * L + l];
                x[(k * T + t) * L + l] += (float)a;
            }
    }
    free(xn), free(qkv), free(o), free(s);
}

/* the mid block's output on the whole clip from the weights */
static float *mid_reference(const hb_wan_vae *m, const wrec *wr, const float *lat, int64_t t, int64_t h, int64_t w, int64_t C) {
    int64_t z = hb_wan_vae_get_config(m)->z_dim, S = t * h * w;
    float *zd = malloc(sizeof(float) * z * S), *x2 = malloc(sizeof(float) * z * S), *x = malloc(sizeof(float) * C * S);
    const float *mean = hb_wan_vae_latent_mean(m), *sd = hb_wan_vae_latent_std(m);
    for (int64_t c = 0; c < z; c++)
        for (int64_t i = 0; i < S; i++) zd[c * S + i] = lat[c * S + i] * sd[c] + mean[c];
    hb_tensor w2 = wget(wr, "conv2.weight"), b2 = wget(wr, "conv2.bias");
    hb_conv3d_params p = {.stride = {1, 1, 1}, .groups = 1};
    CHECK(hb_conv3d(x2, zd, z, t, h, w, &w2, &b2, &p) == 0);
    causal_conv(x, x2, z, t, h, w, wr, "decoder.conv1");
    res_block(x, C, t, h, w, wr, "decoder.middle.0");
    attn_block(x, C, t, h * w, wr);
    res_block(x, C, t, h, w, wr, "decoder.middle.2");
    free(zd), free(x2);
    return x;
}

/* the raw video from the last block: head (RMS, SiLU, causal conv) over the whole clip, 2.2: un-patchify 2x2 */
static float *video_from_last(const float *x, const int64_t s[4], const wrec *wr, bool v22, int64_t *n) {
    int64_t C = s[0], T = s[1], H = s[2], W = s[3], co = v22 ? 12 : 3;
    float *a = malloc(sizeof(float) * C * T * H * W), *y = malloc(sizeof(float) * co * T * H * W);
    hb_tensor g = gamma1d(wr, "decoder.head.0.gamma");
    hb_channel_rmsnorm(a, x, C, T * H * W, &g, NULL);
    hb_silu(a, a, C * T * H * W);
    causal_conv(y, a, C, T, H, W, wr, "decoder.head.2");
    free(a);
    *n = co * T * H * W;
    if (!v22) return y;
    float *v = malloc(sizeof(float) * *n);
    hb_pixel_shuffle(v, y, 3, T, H, W, 2, HB_PS_CRQ);
    free(y);
    return v;
}

typedef struct {
    float *d[HB_WAN_VAE_MAX_BLOCKS];
    int64_t s[HB_WAN_VAE_MAX_BLOCKS][4];
    int nb;
} taps;

static float *decode_taps(hb_wan_vae *m, const float *lat, int64_t t, int64_t h, int64_t w, int chunk, taps *tp, int64_t *n) {
    int sf = hb_wan_vae_spatial_factor(m);
    *n = 3 * (1 + 4 * (t - 1)) * h * sf * w * sf;
    float *v = malloc(sizeof(float) * *n);
    hb_wan_vae_opts o = {.raw = true, .dec_chunk = chunk};
    if (tp) {
        tp->nb = hb_wan_vae_decoder_blocks(m);
        for (int b = 0; b < tp->nb; b++) {
            CHECK(hb_wan_vae_block_shape(m, b, t, h, w, tp->s[b]) == 0);
            int64_t k = tp->s[b][0] * tp->s[b][1] * tp->s[b][2] * tp->s[b][3];
            o.dec_blocks[b] = tp->d[b] = malloc(sizeof(float) * k);
            for (int64_t i = 0; i < k; i++) tp->d[b][i] = NAN; /* every value must be written */
        }
    }
    CHECKF(hb_wan_vae_decode(m, lat, t, h, w, v, &o) == 0, "decode: %s", hb_last_error());
    return v;
}

static void taps_free(taps *tp) {
    for (int b = 0; b < tp->nb; b++) free(tp->d[b]);
}

static int64_t tap_numel(const taps *tp, int b) { return tp->s[b][0] * tp->s[b][1] * tp->s[b][2] * tp->s[b][3]; }

/* taps of a prefix of p latent frames: bitwise the first frames of the full clip's */
static void check_prefix(hb_wan_vae *m, const float *lat, int64_t t, int64_t h, int64_t w, const taps *full, const char *v) {
    int64_t z = hb_wan_vae_get_config(m)->z_dim, p = 2, n;
    float *zp = malloc(sizeof(float) * z * p * h * w);
    for (int64_t c = 0; c < z; c++) memcpy(zp + c * p * h * w, lat + c * t * h * w, sizeof(float) * p * h * w);
    taps tp;
    free(decode_taps(m, zp, p, h, w, 1, &tp, &n));
    for (int b = 0; b < tp.nb; b++) {
        int64_t C = tp.s[b][0], Tp = tp.s[b][1], Tf = full->s[b][1], HW = tp.s[b][2] * tp.s[b][3], bad = 0;
        for (int64_t c = 0; c < C; c++)
            bad += memcmp(tp.d[b] + c * Tp * HW, full->d[b] + c * Tf * HW, sizeof(float) * Tp * HW) != 0;
        CHECKF(bad == 0, "%s block %d: the 2-latent prefix differs from the clip's first %lld frames", v, b, (long long)Tp);
    }
    taps_free(&tp);
    free(zp);
}

static void check_variant(hb_wan_vae_variant var, uint64_t seed) {
    const char *v = var == HB_WAN_VAE_22 ? "2.2" : "2.1";
    hb_wan_vae_config c;
    hb_wan_vae_config_default(&c, var);
    c.dim = var == HB_WAN_VAE_22 ? 4 : 8, c.dec_dim = 8;
    wrec *wr = calloc(1, sizeof *wr);
    hb_rng_seed(&wr->rng, seed);
    hb_wan_vae *m = hb_wan_vae_load_custom(&c, rec_fn, wr);
    CHECKF(m != NULL, "%s", hb_last_error());
    if (!m) return;
    int64_t t = 4, h = 3, w = 2, n, n2;
    hb_rng r;
    hb_rng_seed(&r, seed + 1);
    float *lat = malloc(sizeof(float) * c.z_dim * t * h * w);
    tl_fill_normal(&r, lat, c.z_dim * t * h * w, 1.0f);
    for (int chunk = 1; chunk <= 2; chunk++) {
        float *plain = decode_taps(m, lat, t, h, w, chunk, NULL, &n);
        taps tp;
        float *tapped = decode_taps(m, lat, t, h, w, chunk, &tp, &n2);
        CHECKF(n == n2 && memcmp(plain, tapped, sizeof(float) * (size_t)n) == 0, "%s dec_chunk %d: the video differs with taps", v, chunk);
        for (int b = 0; b < tp.nb; b++) {
            int64_t nan = 0;
            for (int64_t i = 0; i < tap_numel(&tp, b); i++) nan += isnan(tp.d[b][i]);
            CHECKF(nan == 0, "%s block %d: %lld values not written", v, b, (long long)nan);
        }
        const int64_t *sl = tp.s[tp.nb - 1];
        int64_t up = var == HB_WAN_VAE_22 ? 2 : 1;
        CHECKF(sl[1] == 1 + 4 * (t - 1) && sl[2] * up == h * hb_wan_vae_spatial_factor(m) && sl[3] * up == w * hb_wan_vae_spatial_factor(m),
               "%s: last block [%lld, %lld, %lld, %lld] does not lead to the video", v, (long long)sl[0], (long long)sl[1],
               (long long)sl[2], (long long)sl[3]);
        if (chunk == 1) {
            int64_t nv;
            float *vref = video_from_last(tp.d[tp.nb - 1], sl, wr, var == HB_WAN_VAE_22, &nv);
            double e = nv == n ? tl_rel_err(plain, vref, n) : 1.0;
            printf("  %s: last block -> head -> video vs the decode: rel err %.2e\n", v, e);
            CHECKF(e <= 1e-5, "%s: the last block's tap does not give the video (%.3e)", v, e);
            free(vref);
            float *mref = mid_reference(m, wr, lat, t, h, w, tp.s[0][0]);
            e = tl_rel_err(tp.d[0], mref, tap_numel(&tp, 0));
            printf("  %s: mid block vs a whole-clip recomputation: rel err %.2e\n", v, e);
            CHECKF(e <= 1e-5, "%s: mid block tap (%.3e)", v, e);
            free(mref);
            check_prefix(m, lat, t, h, w, &tp, v);
            taps t2;
            free(decode_taps(m, lat, t, h, w, 2, &t2, &n2));
            for (int b = 0; b < tp.nb; b++) {
                double eb = tl_rel_err(t2.d[b], tp.d[b], tap_numel(&tp, b));
                CHECKF(eb <= 1e-5, "%s block %d: dec_chunk 2 vs 1 rel err %.3e", v, b, eb);
            }
            taps_free(&t2);
        }
        taps_free(&tp);
        free(plain), free(tapped);
    }
    /* refused: tiled, streaming, a block past the decoder's */
    float *vid = malloc(sizeof(float) * n), *blk = malloc(sizeof(float) * 4096 * 64);
    hb_wan_vae_opts o = {.tile = 2, .overlap = 1};
    o.dec_blocks[0] = blk;
    CHECKF(hb_wan_vae_decode(m, lat, t, h, w, vid, &o) != 0 && strstr(hb_last_error(), "untiled"), "%s tiled taps: %s", v, hb_last_error());
    hb_wan_vae_opts so = {0};
    so.dec_blocks[1] = blk;
    CHECK(hb_wan_vae_decoder_new(m, h, w, &so) == NULL && strstr(hb_last_error(), "dec_blocks"));
    hb_wan_vae_opts bo = {0};
    bo.dec_blocks[hb_wan_vae_decoder_blocks(m)] = blk;
    CHECKF(hb_wan_vae_decode(m, lat, t, h, w, vid, &bo) != 0 && strstr(hb_last_error(), "dec_blocks"), "%s: %s", v, hb_last_error());
    free(vid), free(blk), free(lat);
    hb_wan_vae_free(m);
    rec_free(wr);
    free(wr);
}

int main(void) {
    check_variant(HB_WAN_VAE_22, 11);
    check_variant(HB_WAN_VAE_21, 12);
    return tl_done();
}
