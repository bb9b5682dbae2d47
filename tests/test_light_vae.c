/* Light VAE decoder (models/light_vae): the kernels it uses, op by op, against naive loops with the exact
 * parameters the model passes (depthwise causal/symmetric conv, plain conv, channel RMS norm, nearest
 * upsampling in time and space, CRQ un-patchify); the whole network against a naive float64 re-statement
 * that reads the weights by name from the written checkpoint (causal and non-causal, 2 configs); streaming
 * causal decode in chunks of 1/2/3 latents == whole-clip decode; write_random -> load == create_random;
 * config JSON round trip; clear errors for bad configs, missing / mis-shaped weights, missing metadata;
 * every decode path (streaming decode, whole clip + raw, chunked streaming with reset, fused and literal
 * upsampling) under the cpu-guard backend (activations reachable only through ops) == the CPU bits. */
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/light_vae.h"
#include "ops/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- naive ops (float64) */

/* x [Cin, T, H, W] -> y [Cout, T, H, W] (stride 1, same size), zero padding pt0/pt1 in time, k/2 in space. */
static void nconv(double *y, const double *x, int64_t Cin, int64_t T, int64_t H, int64_t W, const float *w,
                  const float *b, int64_t Cout, int groups, int kt, int ks, int pt0) {
    int ps = ks / 2;
    int64_t cig = Cin / groups, cog = Cout / groups;
    for (int64_t co = 0; co < Cout; co++) {
        int64_t g = co / cog;
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t ww = 0; ww < W; ww++) {
                    double s = b ? b[co] : 0.0;
                    for (int64_t ci = 0; ci < cig; ci++)
                        for (int a = 0; a < kt; a++) {
                            int64_t ti = t + a - pt0;
                            if (ti < 0 || ti >= T) continue;
                            for (int p = 0; p < ks; p++) {
                                int64_t hi = h + p - ps;
                                if (hi < 0 || hi >= H) continue;
                                for (int q = 0; q < ks; q++) {
                                    int64_t wi = ww + q - ps;
                                    if (wi < 0 || wi >= W) continue;
                                    s += (double)w[(((co * cig + ci) * kt + a) * ks + p) * ks + q] *
                                         x[(((g * cig + ci) * T + ti) * H + hi) * W + wi];
                                }
                            }
                        }
                    y[((co * T + t) * H + h) * W + ww] = s;
                }
    }
}

static void nnorm_silu(double *y, const double *x, int64_t C, int64_t S, const float *g) {
    for (int64_t s = 0; s < S; s++) {
        double ss = 0;
        for (int64_t c = 0; c < C; c++) ss += x[c * S + s] * x[c * S + s];
        double d = sqrt(ss);
        if (d < 1e-12) d = 1e-12;
        for (int64_t c = 0; c < C; c++) {
            double v = x[c * S + s] / d * sqrt((double)C) * g[c];
            y[c * S + s] = v / (1.0 + exp(-v));
        }
    }
}

static void nup(double *y, const double *x, int64_t C, int64_t T, int64_t H, int64_t W, int ft, int fs) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t t = 0; t < T * ft; t++)
            for (int64_t h = 0; h < H * fs; h++)
                for (int64_t w = 0; w < W * fs; w++)
                    y[((c * T * ft + t) * H * fs + h) * W * fs + w] = x[((c * T + t / ft) * H + h / fs) * W + w / fs];
}

/* [C p^2, T, H, W] -> [C, T, H p, W p], channel c p^2 + r p + q -> row offset q, column offset r */
static void nunpatch(double *y, const double *x, int64_t C, int64_t T, int64_t H, int64_t W, int p) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H * p; h++)
                for (int64_t w = 0; w < W * p; w++) {
                    int64_t q = h % p, r = w % p, ch = c * p * p + r * p + q;
                    y[((c * T + t) * H * p + h) * W * p + w] = x[((ch * T + t) * H + h / p) * W + w / p];
                }
}

static double *dd(int64_t n) { return calloc((size_t)n, sizeof(double)); }
static void to_d(double *d, const float *f, int64_t n) { for (int64_t i = 0; i < n; i++) d[i] = f[i]; }
static void to_f(float *f, const double *d, int64_t n) { for (int64_t i = 0; i < n; i++) f[i] = (float)d[i]; }

/* ---------------------------------------------------------------- op by op */

static void test_ops(hb_rng *rng) {
    int64_t C = 6, T = 5, H = 7, W = 9, n = C * T * H * W;
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)(8 * n)),
          *yr = malloc(sizeof(float) * (size_t)(8 * n));
    double *xd = dd(n), *yd = dd(8 * n);
    tl_fill_normal(rng, x, n, 1.0f);
    to_d(xd, x, n);
    /* depthwise (kt 3, k 5) causal and symmetric, no bias; plain conv (3, 3) with bias; pointwise */
    for (int mode = 0; mode < 4; mode++) {
        bool dw = mode < 2;
        int kt = 3, ks = dw ? 5 : (mode == 3 ? 1 : 3), Cout = dw ? (int)C : 4, pt0 = mode == 1 ? 1 : (mode == 3 ? 0 : 2);
        int64_t wshape[5] = {Cout, dw ? 1 : C, mode == 3 ? 1 : kt, ks, ks};
        if (mode == 3) kt = 1;
        hb_tensor wt, bt;
        int64_t wn = wshape[0] * wshape[1] * wshape[2] * wshape[3] * wshape[4];
        float *wv = malloc(sizeof(float) * (size_t)wn), bv[8];
        tl_fill_normal(rng, wv, wn, 0.3f);
        tl_fill_normal(rng, bv, 8, 0.1f);
        wt = hb_tensor_make(HB_F32, 5, wshape, wv);
        bt = hb_tensor_1d(HB_F32, Cout, bv);
        hb_conv3d_params p = {{1, 1, 1}, {pt0, kt - 1 - pt0}, {ks / 2, ks / 2}, {ks / 2, ks / 2}, dw ? (int)C : 1};
        CHECK(hb_conv3d(y, x, C, T, H, W, &wt, dw ? NULL : &bt, &p) == 0);
        nconv(yd, xd, C, T, H, W, wv, dw ? NULL : bv, Cout, dw ? (int)C : 1, kt, ks, pt0);
        to_f(yr, yd, Cout * T * H * W);
        CHECKF(tl_rel_err(y, yr, Cout * T * H * W) < 1e-5, "conv mode %d: %g", mode, tl_rel_err(y, yr, Cout * T * H * W));
        free(wv);
    }
    /* channel RMS norm + silu */
    {
        float g[6];
        tl_fill_normal(rng, g, 6, 0.2f);
        for (int i = 0; i < 6; i++) g[i] += 1.0f;
        hb_tensor gt = hb_tensor_1d(HB_F32, C, g);
        hb_channel_rmsnorm(y, x, C, T * H * W, &gt, NULL);
        hb_silu(y, y, n);
        nnorm_silu(yd, xd, C, T * H * W, g);
        to_f(yr, yd, n);
        CHECKF(tl_rel_err(y, yr, n) < 1e-5, "norm+silu: %g", tl_rel_err(y, yr, n));
    }
    /* nearest upsample (2, 2, 2) and (1, 2, 2) */
    for (int ft = 1; ft <= 2; ft++) {
        hb_upsample_nearest(y, x, C, T, H, W, ft, 2, 2);
        nup(yd, xd, C, T, H, W, ft, 2);
        to_f(yr, yd, n * 4 * ft);
        CHECK(memcmp(y, yr, sizeof(float) * (size_t)(n * 4 * ft)) == 0);
    }
    /* un-patchify CRQ: [3*4, T', H, W] with 12 channels from the first 12*... values */
    {
        int64_t Tq = 2, Hq = 3, Wq = 5, nq = 12 * Tq * Hq * Wq;
        hb_pixel_shuffle(y, x, 3, Tq, Hq, Wq, 2, HB_PS_CRQ);
        nunpatch(yd, xd, 3, Tq, Hq, Wq, 2);
        to_f(yr, yd, nq);
        CHECK(memcmp(y, yr, sizeof(float) * (size_t)nq) == 0);
    }
    free(x), free(y), free(yr), free(xd), free(yd);
}

/* ---------------------------------------------------------------- naive network */

static const float *W_(const hb_checkpoint *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const float *W_(const hb_checkpoint *ck, const char *fmt, ...) {
    char nm[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm, sizeof nm, fmt, ap);
    va_end(ap);
    hb_tensor t;
    if (hb_checkpoint_get(ck, nm, &t) || t.dtype != HB_F32) {
        fprintf(stderr, "naive net: no F32 tensor %s\n", nm);
        exit(1);
    }
    return t.data;
}

/* one conv of the net; returns a new buffer (frees x) */
static double *nsep(const hb_checkpoint *ck, const hb_light_vae_config *c, double *x, int64_t Cin, int64_t Cout,
                    int64_t T, int64_t H, int64_t W, bool dw, const char *name) {
    int kt = dw ? c->dw_kernel_t : c->kernel_t, ks = dw ? c->dw_kernel_s : c->kernel_s;
    int pt0 = c->causal ? kt - 1 : (kt - 1) / 2;
    char nm[200];
    double *y = dd(Cout * T * H * W);
    if (!dw) {
        snprintf(nm, sizeof nm, "%s.weight", name);
        const float *w = W_(ck, "%s", nm);
        snprintf(nm, sizeof nm, "%s.bias", name);
        nconv(y, x, Cin, T, H, W, w, W_(ck, "%s", nm), Cout, 1, kt, ks, pt0);
    } else {
        double *t = dd(Cin * T * H * W);
        snprintf(nm, sizeof nm, "%s.dw.weight", name);
        nconv(t, x, Cin, T, H, W, W_(ck, "%s", nm), NULL, Cin, (int)Cin, kt, ks, pt0);
        snprintf(nm, sizeof nm, "%s.pw.weight", name);
        const float *w = W_(ck, "%s", nm);
        snprintf(nm, sizeof nm, "%s.pw.bias", name);
        nconv(y, t, Cin, T, H, W, w, W_(ck, "%s", nm), Cout, 1, 1, 1, 0);
        free(t);
    }
    free(x);
    return y;
}

/* returns video [3, 1+F(t-1), ...] as float, raw head output in *rawp */
static float *naive_net(const hb_checkpoint *ck, const hb_light_vae_config *c, const float *lat, int64_t t, int64_t h,
                        int64_t w, int64_t *nframes) {
    int64_t C = c->z_dim, T = t, H = h, W = w;
    double *x = dd(C * T * H * W);
    to_d(x, lat, C * T * H * W);
    if (c->denormalize) {
        const float *mu = W_(ck, "latent.mean"), *sd = W_(ck, "latent.std");
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t i = 0; i < T * H * W; i++) x[ch * T * H * W + i] = x[ch * T * H * W + i] * sd[ch] + mu[ch];
    }
    x = nsep(ck, c, x, C, c->widths[0], T, H, W, false, "conv_in");
    C = c->widths[0];
    for (int i = 0; i < c->n_blocks; i++) {
        char nm[96];
        if (i > 0) {
            int ft = c->up_t[i - 1], fs = c->up_s[i - 1];
            double *u = dd(C * T * ft * H * fs * W * fs);
            nup(u, x, C, T, H, W, ft, fs);
            free(x);
            T *= ft, H *= fs, W *= fs;
            snprintf(nm, sizeof nm, "blocks.%d.entry", i);
            x = nsep(ck, c, u, C, c->widths[i], T, H, W, c->depthwise[i], nm);
            C = c->widths[i];
        }
        int64_t S = T * H * W;
        for (int j = 0; j < c->res_blocks[i]; j++) {
            double *hh = dd(C * S);
            nnorm_silu(hh, x, C, S, W_(ck, "blocks.%d.res.%d.norm1.gamma", i, j));
            snprintf(nm, sizeof nm, "blocks.%d.res.%d.conv1", i, j);
            hh = nsep(ck, c, hh, C, C, T, H, W, c->depthwise[i], nm);
            double *h2 = dd(C * S);
            nnorm_silu(h2, hh, C, S, W_(ck, "blocks.%d.res.%d.norm2.gamma", i, j));
            free(hh);
            snprintf(nm, sizeof nm, "blocks.%d.res.%d.conv2", i, j);
            h2 = nsep(ck, c, h2, C, C, T, H, W, c->depthwise[i], nm);
            for (int64_t k = 0; k < C * S; k++) x[k] += h2[k];
            free(h2);
        }
    }
    int64_t S = T * H * W, p = c->patch;
    double *hh = dd(C * S);
    nnorm_silu(hh, x, C, S, W_(ck, "head.norm.gamma"));
    free(x);
    hh = nsep(ck, c, hh, C, (int64_t)c->out_channels * p * p, T, H, W, false, "head.conv");
    double *v = dd((int64_t)c->out_channels * S * p * p);
    nunpatch(v, hh, c->out_channels, T, H, W, (int)p);
    free(hh);
    int F = (int)(T / t);
    int64_t nf = T - (F - 1), HWo = H * W * p * p;
    float *out = malloc(sizeof(float) * (size_t)(c->out_channels * nf * HWo));
    for (int64_t ch = 0; ch < c->out_channels; ch++)
        for (int64_t i = 0; i < nf * HWo; i++) {
            double a = v[(ch * T + F - 1) * HWo + i];
            if (c->clamp) a = a < -1 ? -1 : a > 1 ? 1 : a;
            out[ch * nf * HWo + i] = (float)a;
        }
    free(v);
    *nframes = nf;
    return out;
}

static void small_config(hb_light_vae_config *c, bool causal, int variant) {
    hb_light_vae_config_default(c, causal);
    c->z_dim = 8;
    int wd[5] = {8, 8, 6, 4, 4};
    for (int i = 0; i < 5; i++) c->widths[i] = wd[i], c->res_blocks[i] = 1;
    if (variant == 1) { /* other kernels, 4 blocks, no de-normalisation, 2 res blocks early */
        c->n_blocks = 4;
        c->res_blocks[0] = 2;
        c->up_t[0] = 2, c->up_s[0] = 2, c->up_t[1] = 2, c->up_s[1] = 2, c->up_t[2] = 1, c->up_s[2] = 2;
        c->dw_kernel_t = 3, c->dw_kernel_s = 5, c->kernel_t = 1;
        c->denormalize = false;
        c->clamp = false;
    }
}

static void test_network(hb_rng *rng, bool causal, int variant) {
    hb_light_vae_config c;
    small_config(&c, causal, variant);
    char path[512];
    snprintf(path, sizeof path, "%s/lv_%d_%d.safetensors", tl_tmpdir(), causal, variant);
    CHECK(hb_light_vae_write_random(path, &c, 1234 + variant) == 0);
    hb_light_vae *m = hb_light_vae_load(path);
    CHECKF(m != NULL, "%s", hb_last_error());
    if (!m) return;
    hb_checkpoint *ck = hb_checkpoint_open(path);
    int64_t t = 3, h = 3, w = 4, z = c.z_dim;
    int S = hb_light_vae_spatial_factor(m), F = hb_light_vae_temporal_factor(m);
    CHECK(F == 4);
    int64_t nf = hb_light_vae_decoded_frames(m, t), nv = 3 * nf * h * S * w * S;
    float *lat = malloc(sizeof(float) * (size_t)(z * t * h * w)), *v = malloc(sizeof(float) * (size_t)nv);
    tl_fill_normal(rng, lat, z * t * h * w, 1.0f);
    CHECK(hb_light_vae_decode_whole(m, lat, t, h, w, v, NULL) == 0);
    int64_t nref;
    float *ref = naive_net(ck, &c, lat, t, h, w, &nref);
    CHECK(nref == nf);
    double e = tl_rel_err(v, ref, nv);
    printf("whole network vs naive (causal %d, variant %d): rel err %.2e\n", causal, variant, e);
    CHECKF(e < 2e-5, "rel err %g", e);
    /* the output is not trivial */
    double mx = 0;
    for (int64_t i = 0; i < nv; i++) mx = fmax(mx, fabs(v[i]));
    CHECK(mx > 0.05);
    /* hb_light_vae_decode (streams latent by latent when causal) == the whole-clip pass */
    {
        float *vd = malloc(sizeof(float) * (size_t)nv);
        CHECK(hb_light_vae_decode(m, lat, t, h, w, vd, NULL) == 0);
        CHECK(memcmp(vd, v, sizeof(float) * (size_t)nv) == 0);
        printf("  hb_light_vae_decode (%s) == whole-clip pass: %s\n", causal ? "streaming" : "whole",
               memcmp(vd, v, sizeof(float) * (size_t)nv) ? "NO" : "bitwise");
        free(vd);
    }
    if (causal) {
        /* streaming in chunks 1, 2 (and 3 at once) == whole */
        for (int mc = 1; mc <= 3; mc++) {
            hb_light_vae_stream *s = hb_light_vae_stream_new(m, h, w, mc);
            CHECK(s != NULL);
            if (!s) break;
            float *sv = malloc(sizeof(float) * (size_t)nv), *tmp = malloc(sizeof(float) * (size_t)nv);
            int64_t got = 0, HWo = h * S * w * S;
            int64_t pushes[3][3] = {{1, 1, 1}, {2, 1, 0}, {3, 0, 0}};
            int64_t l0 = 0;
            for (int k = 0; k < 3 && pushes[mc - 1][k]; k++) {
                int64_t n = pushes[mc - 1][k], no = 0;
                /* frames of a [z, t, h, w] tensor: channel stride t*h*w */
                CHECK(hb_light_vae_stream_push(s, lat + l0 * h * w, n, t * h * w, tmp, &no) == 0);
                for (int ch = 0; ch < 3; ch++) memcpy(sv + (ch * nf + got) * HWo, tmp + ch * no * HWo, sizeof(float) * (size_t)(no * HWo));
                got += no, l0 += n;
            }
            CHECK(got == nf);
            double es = tl_rel_err(sv, v, nv);
            printf("streaming (max chunk %d) vs whole: rel err %.2e (%s)\n", mc, es,
                   memcmp(sv, v, sizeof(float) * (size_t)nv) ? "not bitwise" : "bitwise");
            CHECKF(es < 1e-6, "stream %d: %g", mc, es);
            /* reset starts a new clip */
            hb_light_vae_stream_reset(s);
            int64_t no = 0;
            CHECK(hb_light_vae_stream_push(s, lat, 1, t * h * w, tmp, &no) == 0 && no == 1);
            CHECK(memcmp(tmp, v, sizeof(float) * (size_t)(h * S * w * S)) == 0 || tl_rel_err(tmp, v, h * S * w * S) < 1e-6);
            hb_light_vae_stream_free(s);
            free(sv), free(tmp);
        }
    } else {
        CHECK(hb_light_vae_stream_new(m, h, w, 1) == NULL);
        CHECK(strstr(hb_last_error(), "causal") != NULL);
    }
    /* the fused upsample+conv path vs the literal one (HB_LIGHT_VAE_UNFUSED=1) */
    {
        setenv("HB_LIGHT_VAE_UNFUSED", "1", 1);
        hb_light_vae *u = hb_light_vae_load(path);
        unsetenv("HB_LIGHT_VAE_UNFUSED");
        float *vu = malloc(sizeof(float) * (size_t)nv);
        CHECK(u && hb_light_vae_decode_whole(u, lat, t, h, w, vu, NULL) == 0);
        double eu = tl_rel_err(v, vu, nv);
        printf("  fused 2x upsample + conv vs literal: rel err %.2e\n", eu);
        CHECKF(eu < 1e-5, "%g", eu);
        CHECK(hb_light_vae_decode_flops(u, t, h, w) > hb_light_vae_decode_flops(m, t, h, w));
        free(vu);
        hb_light_vae_free(u);
    }
    /* write_random -> load == create_random */
    hb_light_vae *r = hb_light_vae_create_random(&c, 1234 + variant);
    float *v2 = malloc(sizeof(float) * (size_t)nv);
    CHECK(hb_light_vae_decode(r, lat, t, h, w, v2, NULL) == 0);
    CHECK(memcmp(v2, v, sizeof(float) * (size_t)nv) == 0);
    CHECK(hb_light_vae_param_count(r) == hb_light_vae_param_count(m) && hb_light_vae_param_count(m) > 0);
    CHECK(hb_light_vae_decode_workspace(m, t, h, w) > 0);
    CHECK(hb_light_vae_decode_flops(m, t, h, w) > 0);
    hb_light_vae_free(r);
    free(v2), free(lat), free(v), free(ref);
    hb_checkpoint_close(ck);
    hb_light_vae_free(m);
}

/* ---------------------------------------------------------------- cpu-guard */

/* The model's decode paths under cpu-guard (every activation in guarded pages: a host access outside an op
 * faults) must give the plain CPU result bit for bit (same kernels). */
static void test_guard(hb_rng *rng, bool causal, int variant, bool unfused) {
    hb_light_vae_config c;
    small_config(&c, causal, variant);
    if (unfused) setenv("HB_LIGHT_VAE_UNFUSED", "1", 1);
    hb_light_vae *m = hb_light_vae_create_random(&c, 77 + variant);
    unsetenv("HB_LIGHT_VAE_UNFUSED");
    CHECKF(m != NULL, "%s", hb_last_error());
    if (!m) return;
    int64_t t = 3, h = 3, w = 4, z = c.z_dim, S = hb_light_vae_spatial_factor(m), F = hb_light_vae_temporal_factor(m);
    int64_t nf = hb_light_vae_decoded_frames(m, t), HWo = h * S * w * S, nv = 3 * nf * HWo;
    int64_t nraw = (int64_t)c.out_channels * c.patch * c.patch * F * t * HWo / (c.patch * c.patch);
    float *lat = malloc(sizeof(float) * (size_t)(z * t * h * w));
    float *v = malloc(sizeof(float) * (size_t)nv), *vw = malloc(sizeof(float) * (size_t)nv);
    float *raw = malloc(sizeof(float) * (size_t)nraw), *sv = malloc(sizeof(float) * (size_t)nv);
    tl_fill_normal(rng, lat, z * t * h * w, 1.0f);
    /* plain CPU */
    CHECK(hb_light_vae_decode(m, lat, t, h, w, v, NULL) == 0);
    CHECK(hb_light_vae_decode_whole(m, lat, t, h, w, vw, raw) == 0);
    int64_t n0 = 0, n1 = 0;
    hb_light_vae_stream *s = causal ? hb_light_vae_stream_new(m, h, w, 2) : NULL;
    if (causal) {
        CHECK(s && hb_light_vae_stream_push(s, lat, 2, t * h * w, sv, &n0) == 0);
        CHECK(hb_light_vae_stream_push(s, lat + 2 * h * w, 1, t * h * w, sv + 3 * n0 * HWo, &n1) == 0);
        CHECK(n0 + n1 == nf);
        hb_light_vae_stream_free(s);
    }
    /* cpu-guard */
    const hb_backend *prev = hb_backend_use(hb_backend_cpu_guard());
    float *dl = tl_dev_upload(lat, z * t * h * w), *dv = hb_dev_alloc(sizeof(float) * (size_t)nv, "test");
    float *draw = hb_dev_alloc(sizeof(float) * (size_t)nraw, "test");
    CHECK(dl && dv && draw);
    bool ok = hb_light_vae_decode(m, dl, t, h, w, dv, NULL) == 0 && tl_dev_same(dv, v, nv);
    printf("cpu-guard (causal %d, variant %d%s): decode %s", causal, variant, unfused ? ", unfused" : "",
           ok ? "bitwise" : "DIFFERS");
    CHECK(ok);
    ok = hb_light_vae_decode_whole(m, dl, t, h, w, dv, draw) == 0 && tl_dev_same(dv, vw, nv) && tl_dev_same(draw, raw, nraw);
    printf(", whole + raw %s", ok ? "bitwise" : "DIFFER");
    CHECK(ok);
    if (causal) {
        int64_t g0 = 0, g1 = 0;
        s = hb_light_vae_stream_new(m, h, w, 2);
        CHECK(s != NULL);
        ok = s && hb_light_vae_stream_push(s, dl, 2, t * h * w, dv, &g0) == 0 &&
             hb_light_vae_stream_push(s, dl + 2 * h * w, 1, t * h * w, dv + 3 * g0 * HWo, &g1) == 0 && g0 == n0 &&
             g1 == n1 && tl_dev_same(dv, sv, nv);
        printf(", stream %s", ok ? "bitwise" : "DIFFERS");
        CHECK(ok);
        if (s) { /* a reset starts a new clip: its first frame again */
            hb_light_vae_stream_reset(s);
            CHECK(hb_light_vae_stream_push(s, dl, 1, t * h * w, dv, &g0) == 0 && g0 == 1);
            float *f0 = malloc(sizeof(float) * (size_t)(3 * HWo));
            for (int ch = 0; ch < 3; ch++) memcpy(f0 + ch * HWo, sv + ch * n0 * HWo, sizeof(float) * (size_t)HWo);
            CHECK(tl_dev_same(dv, f0, 3 * HWo));
            free(f0);
        }
        hb_light_vae_stream_free(s);
    }
    printf("\n");
    hb_dev_free(dl), hb_dev_free(dv), hb_dev_free(draw);
    hb_backend_use(prev);
    free(lat), free(v), free(vw), free(raw), free(sv);
    hb_light_vae_free(m);
}

/* ---------------------------------------------------------------- config and errors */

static void test_config(void) {
    hb_light_vae_config a, b;
    hb_light_vae_config_default(&a, false);
    char *js = hb_light_vae_config_to_json(&a);
    CHECK(js && hb_light_vae_config_from_json(&b, js) == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    free(js);
    CHECK(hb_light_vae_config_from_json(&b, "{}") == 0 && b.causal && b.n_blocks == 5 && b.widths[4] == 64);
    const char *bad[][2] = {
        {"{\"widths\": [8, 8], \"res_blocks\": [1]}", "res_blocks"},
        {"{\"kernel\": [2, 3]}", "odd"},
        {"{\"colour\": 1}", "colour"},
        {"{\"latent_norm\": \"scale\"}", "latent_norm"},
        {"{\"widths\": [8, 0, 4]}", "widths[1]"},
        {"{\"norm\": \"group\"}", "channel_rms"},
        {"[1, 2]", "JSON object"},
        {"{\"causal\": 1}", "causal"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(hb_light_vae_config_from_json(&b, bad[i][0]) == -1, "%s accepted", bad[i][0]);
        CHECKF(strstr(hb_last_error(), bad[i][1]) != NULL, "%s: message '%s'", bad[i][0], hb_last_error());
    }
}

typedef struct { int n; char *names[256]; hb_tensor t[256]; } tlist;

static void test_bad_files(void) {
    hb_light_vae_config c;
    small_config(&c, true, 0);
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/good.safetensors", tl_tmpdir());
    CHECK(hb_light_vae_write_random(good, &c, 7) == 0);
    hb_checkpoint *ck = hb_checkpoint_open(good);
    CHECK(ck != NULL);
    if (!ck) return;
    const char *js = hb_checkpoint_metadata(ck, HB_LIGHT_VAE_META_KEY);
    CHECK(js != NULL);
    int n = hb_checkpoint_count(ck);
    const char *names[256];
    hb_tensor ts[256];
    for (int i = 0; i < n && i < 256; i++) names[i] = hb_checkpoint_name(ck, i), ts[i] = hb_checkpoint_tensor(ck, i);
    /* 1: a tensor missing */
    int drop = -1;
    for (int i = 0; i < n; i++) if (!strcmp(names[i], "blocks.2.res.0.conv1.dw.weight")) drop = i;
    CHECK(drop >= 0);
    const char *n2[256];
    hb_tensor t2[256];
    int k = 0;
    for (int i = 0; i < n; i++) if (i != drop) n2[k] = names[i], t2[k++] = ts[i];
    const char *meta[] = {HB_LIGHT_VAE_META_KEY, js, NULL};
    snprintf(bad, sizeof bad, "%s/missing.safetensors", tl_tmpdir());
    CHECK(hb_safetensors_write(bad, k, n2, t2, meta) == 0);
    CHECK(hb_light_vae_load(bad) == NULL);
    CHECKF(strstr(hb_last_error(), "missing.safetensors") && strstr(hb_last_error(), "blocks.2.res.0.conv1.dw.weight"),
           "%s", hb_last_error());
    /* 2: mis-shaped (the config says wider than the weights) */
    char *js2 = strdup(js);
    char *p = strstr(js2, "\"widths\":[8,8,6,4,4]");
    CHECK(p != NULL);
    if (p) memcpy(p, "\"widths\":[8,8,6,4,5]", 20);
    const char *meta2[] = {HB_LIGHT_VAE_META_KEY, js2, NULL};
    snprintf(bad, sizeof bad, "%s/shape.safetensors", tl_tmpdir());
    CHECK(hb_safetensors_write(bad, n, names, ts, meta2) == 0);
    CHECK(hb_light_vae_load(bad) == NULL);
    CHECKF(strstr(hb_last_error(), "shape.safetensors") && strstr(hb_last_error(), "blocks.4"), "%s", hb_last_error());
    free(js2);
    /* 3: no metadata */
    snprintf(bad, sizeof bad, "%s/nometa.safetensors", tl_tmpdir());
    CHECK(hb_safetensors_write(bad, n, names, ts, NULL) == 0);
    CHECK(hb_light_vae_load(bad) == NULL);
    CHECKF(strstr(hb_last_error(), "nometa.safetensors") && strstr(hb_last_error(), HB_LIGHT_VAE_META_KEY), "%s",
           hb_last_error());
    /* 4: bad JSON */
    const char *meta4[] = {HB_LIGHT_VAE_META_KEY, "{\"widths\": [8,", NULL};
    snprintf(bad, sizeof bad, "%s/badjson.safetensors", tl_tmpdir());
    CHECK(hb_safetensors_write(bad, n, names, ts, meta4) == 0);
    CHECK(hb_light_vae_load(bad) == NULL);
    CHECKF(strstr(hb_last_error(), "badjson.safetensors") && strstr(hb_last_error(), "JSON"), "%s", hb_last_error());
    /* 5: missing file, folder without light_vae.safetensors */
    CHECK(hb_light_vae_load("/nonexistent/lv.safetensors") == NULL && strstr(hb_last_error(), "/nonexistent"));
    CHECK(hb_light_vae_load(tl_tmpdir()) == NULL && strstr(hb_last_error(), "light_vae.safetensors"));
    /* 6: folder form of the writer */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/model", tl_tmpdir());
    CHECK(hb_light_vae_write_random(dir, &c, 7) == 0);
    hb_light_vae *m = hb_light_vae_load(dir);
    CHECKF(m != NULL, "%s", hb_last_error());
    /* bad sizes */
    float x[8];
    if (m) CHECK(hb_light_vae_decode(m, x, 0, 1, 1, x, NULL) == -1 && strstr(hb_last_error(), "latent size"));
    hb_light_vae_free(m);
    hb_checkpoint_close(ck);
}

int main(void) {
    hb_threads_init(0);
    hb_rng rng;
    hb_rng_seed(&rng, tl_seed());
    test_ops(&rng);
    test_config();
    test_network(&rng, true, 0);
    test_network(&rng, false, 0);
    test_network(&rng, true, 1);
    test_network(&rng, false, 1);
    test_guard(&rng, true, 0, false);
    test_guard(&rng, false, 0, false);
    test_guard(&rng, true, 1, false);
    test_guard(&rng, false, 1, false);
    test_guard(&rng, true, 0, true);
    test_bad_files();
    return tl_done();
}
