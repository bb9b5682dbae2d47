/* Light VAE decoder (models/light_vae, the release's Turbo-VAED decoder): the whole network against a naive
 * float64 re-statement that reads the weights by name from the written folder (two configs covering every
 * branch: causal / non-causal, depthwise kernels 5 and 3, patch 2 and 4, width-changing entry resnets in
 * depthwise and plain blocks, (2,2,2) and (1,2,2) upsamplers); streaming in random push sizes == whole clip,
 * also after a reset; write_random -> load (folder, file + X.json, "decoder."-prefixed names with an extra
 * tensor) == create_random; config.json round trip and errors; clear errors for missing / mis-shaped tensors;
 * every path under the cpu-guard backend == the CPU bits; the model folder finder's places; hb mkmodel
 * --arch hummingbird-light-vae. */
#include "random_models.h"
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/light_vae.h"
#include "ops/ops.h"
#include "pipeline/model_folder.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- naive network (float64) */

typedef struct { double *d; int64_t C, T, H, W; } nb;

static nb nb_new(int64_t C, int64_t T, int64_t H, int64_t W) {
    nb b = {calloc((size_t)(C * T * H * W), sizeof(double)), C, T, H, W};
    return b;
}

static const float *W_(const hb_checkpoint *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const float *W_(const hb_checkpoint *ck, const char *fmt, ...) {
    char nm[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm, sizeof nm, fmt, ap);
    va_end(ap);
    hb_tensor t;
    if (hb_checkpoint_get(ck, nm, &t) || t.dtype != HB_F32) {
        fprintf(stderr, "naive: no tensor %s\n", nm);
        exit(1);
    }
    return t.data;
}

/* Conv with replicate time padding (pl before, pr after; output T frames when pl + pr = k - 1), zero space. */
static nb nconv(const nb *x, const float *w, const float *b, int64_t Cout, int groups, int k, int pl) {
    int64_t T = x->T, To = T + (k - 1) - k + 1, cig = x->C / groups, cog = Cout / groups;
    nb y = nb_new(Cout, To, x->H, x->W);
    for (int64_t co = 0; co < Cout; co++)
        for (int64_t t = 0; t < To; t++)
            for (int64_t h = 0; h < x->H; h++)
                for (int64_t ww = 0; ww < x->W; ww++) {
                    double s = b[co];
                    for (int64_t ci = 0; ci < cig; ci++)
                        for (int a = 0; a < k; a++) {
                            int64_t ti = t + a - pl;
                            ti = ti < 0 ? 0 : ti >= T ? T - 1 : ti;
                            for (int p = 0; p < k; p++)
                                for (int q = 0; q < k; q++) {
                                    int64_t hi = h + p - k / 2, wi = ww + q - k / 2;
                                    if (hi < 0 || hi >= x->H || wi < 0 || wi >= x->W) continue;
                                    s += (double)w[(((co * cig + ci) * k + a) * k + p) * k + q] *
                                         x->d[((((co / cog) * cig + ci) * T + ti) * x->H + hi) * x->W + wi];
                                }
                        }
                    y.d[((co * To + t) * x->H + h) * x->W + ww] = s;
                }
    return y;
}

/* act(x / sqrt(mean_c x^2 + 1e-8)), act 0 SiLU, 1 ReLU */
static nb nrms(const nb *x, int act) {
    nb y = nb_new(x->C, x->T, x->H, x->W);
    int64_t S = x->T * x->H * x->W;
    for (int64_t s = 0; s < S; s++) {
        double q = 0;
        for (int64_t c = 0; c < x->C; c++) q += x->d[c * S + s] * x->d[c * S + s];
        double r = 1.0 / sqrt(q / (double)x->C + 1e-8);
        for (int64_t c = 0; c < x->C; c++) {
            double v = x->d[c * S + s] * r;
            y.d[c * S + s] = act ? (v > 0 ? v : 0) : v / (1.0 + exp(-v));
        }
    }
    return y;
}

typedef struct { const hb_checkpoint *ck; const hb_light_vae_config *c; } nctx;

/* plain conv (name.conv) or depthwise + pointwise */
static nb nsep(const nctx *n, const nb *x, const char *name, int64_t Cout, bool dw, int k) {
    if (!dw) {
        int pl = n->c->causal ? k - 1 : (k - 1) / 2;
        return nconv(x, W_(n->ck, "%s.conv.weight", name), W_(n->ck, "%s.conv.bias", name), Cout, 1, k, pl);
    }
    nb t = nconv(x, W_(n->ck, "%s.depthwise_conv.weight", name), W_(n->ck, "%s.depthwise_conv.bias", name), x->C,
                 (int)x->C, k, (k - 1) / 2);
    nb y = nconv(&t, W_(n->ck, "%s.pointwise_conv.weight", name), W_(n->ck, "%s.pointwise_conv.bias", name), Cout, 1,
                 1, 0);
    free(t.d);
    return y;
}

static nb nres(const nctx *n, const nb *x, const char *name, int64_t Cout, bool dw, bool relu) {
    char nm[256];
    int k = dw ? n->c->dw_kernel : 3;
    nb a = nrms(x, relu);
    snprintf(nm, sizeof nm, "%s.conv1", name);
    nb b = nsep(n, &a, nm, Cout, dw, k);
    free(a.d);
    a = nrms(&b, 0);
    free(b.d);
    snprintf(nm, sizeof nm, "%s.conv2", name);
    nb y = nsep(n, &a, nm, Cout, dw, k);
    free(a.d);
    if (x->C == Cout) {
        for (int64_t i = 0; i < Cout * x->T * x->H * x->W; i++) y.d[i] += x->d[i];
        return y;
    }
    const float *g = W_(n->ck, "%s.norm3.weight", name), *bt = W_(n->ck, "%s.norm3.bias", name);
    nb ln = nb_new(x->C, x->T, x->H, x->W);
    int64_t S = x->T * x->H * x->W;
    for (int64_t s = 0; s < S; s++) {
        double mu = 0, var = 0;
        for (int64_t c = 0; c < x->C; c++) mu += x->d[c * S + s] / (double)x->C;
        for (int64_t c = 0; c < x->C; c++) var += (x->d[c * S + s] - mu) * (x->d[c * S + s] - mu) / (double)x->C;
        for (int64_t c = 0; c < x->C; c++)
            ln.d[c * S + s] = (x->d[c * S + s] - mu) / sqrt(var + n->c->resnet_norm_eps) * g[c] + bt[c];
    }
    snprintf(nm, sizeof nm, "%s.conv_shortcut", name);
    nb sc = nsep(n, &ln, nm, Cout, dw, 1);
    for (int64_t i = 0; i < Cout * S; i++) y.d[i] += sc.d[i];
    free(ln.d), free(sc.d);
    return y;
}

/* conv to C st s s, then channel ((c s + i) s + j) st + k -> (c, t st + k, y s + i, x s + j), drop st - 1 frames */
static nb nupsample(const nctx *n, const nb *x, const char *name, int st) {
    int pl = n->c->causal ? 2 : 1;
    int64_t C = x->C;
    nb u = nconv(x, W_(n->ck, "%s.weight", name), W_(n->ck, "%s.bias", name), C * st * 4, 1, 3, pl);
    nb y = nb_new(C, x->T * st - (st - 1), x->H * 2, x->W * 2);
    for (int64_t c = 0; c < C; c++)
        for (int64_t t = 0; t < x->T; t++)
            for (int k = 0; k < st; k++)
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++) {
                        int64_t f = t * st + k - (st - 1), ch = ((c * 2 + i) * 2 + j) * st + k;
                        if (f < 0) continue;
                        for (int64_t h = 0; h < x->H; h++)
                            for (int64_t w = 0; w < x->W; w++)
                                y.d[((c * y.T + f) * y.H + h * 2 + i) * y.W + w * 2 + j] =
                                    u.d[((ch * x->T + t) * x->H + h) * x->W + w];
                    }
    free(u.d);
    return y;
}

/* rms + SiLU, per-frame 3x3 Conv2d, pixel_shuffle(2) */
static nb nstage2d(const nctx *n, const nb *x, int i) {
    nb a = nrms(x, 0);
    const float *w = W_(n->ck, "upsampler2d_%d.conv.weight", i), *b = W_(n->ck, "upsampler2d_%d.conv.bias", i);
    int64_t C = x->C;
    nb y = nb_new(C / 4, x->T, x->H * 2, x->W * 2);
    for (int64_t co = 0; co < C; co++)
        for (int64_t t = 0; t < x->T; t++)
            for (int64_t h = 0; h < x->H; h++)
                for (int64_t ww = 0; ww < x->W; ww++) {
                    double s = b[co];
                    for (int64_t ci = 0; ci < C; ci++)
                        for (int p = 0; p < 3; p++)
                            for (int q = 0; q < 3; q++) {
                                int64_t hi = h + p - 1, wi = ww + q - 1;
                                if (hi < 0 || hi >= x->H || wi < 0 || wi >= x->W) continue;
                                s += (double)w[((co * C + ci) * 3 + p) * 3 + q] * a.d[((ci * x->T + t) * x->H + hi) * x->W + wi];
                            }
                    int64_t c = co / 4, i2 = (co % 4) / 2, j2 = co % 2;
                    y.d[((c * y.T + t) * y.H + h * 2 + i2) * y.W + ww * 2 + j2] = s;
                }
    free(a.d);
    return y;
}

/* latent (normalised) -> conv_out output, float64 */
static nb naive_net(const hb_checkpoint *ck, const hb_light_vae_config *c, const float *lat, int64_t t, int64_t h,
                    int64_t w, const float *mean, const float *sd) {
    nctx n = {ck, c};
    nb x = nb_new(c->latent_channels, t, h, w);
    for (int64_t ch = 0; ch < x.C; ch++)
        for (int64_t i = 0; i < t * h * w; i++) x.d[ch * t * h * w + i] = lat[ch * t * h * w + i] * sd[ch] + mean[ch];
    nb y = nsep(&n, &x, "conv_in", c->widths[0], false, 3);
    free(x.d), x = y;
    char nm[128];
    for (int j = 0; j < c->layers[0]; j++) {
        snprintf(nm, sizeof nm, "mid_block.resnets.%d", j);
        y = nres(&n, &x, nm, x.C, c->dw[0], false);
        free(x.d), x = y;
    }
    for (int i = 0; i < c->n_up; i++) {
        int64_t Co = c->widths[1 + i];
        if (x.C != Co) {
            snprintf(nm, sizeof nm, "up_blocks.%d.conv_in", i);
            y = nres(&n, &x, nm, Co, c->dw[1 + i], false);
            free(x.d), x = y;
        }
        if (c->upsample[i]) {
            snprintf(nm, sizeof nm, "up_blocks.%d.upsamplers.0.conv.conv", i);
            y = nupsample(&n, &x, nm, c->spatial_only[i] ? 1 : 2);
            free(x.d), x = y;
        }
        for (int j = 0; j < c->layers[1 + i]; j++) {
            snprintf(nm, sizeof nm, "up_blocks.%d.resnets.%d", i, j);
            y = nres(&n, &x, nm, Co, c->dw[1 + i], c->upsample[i]);
            free(x.d), x = y;
        }
    }
    for (int s = 1; s <= (c->patch_size == 4 ? 2 : c->patch_size == 2 ? 1 : 0); s++) {
        y = nstage2d(&n, &x, s);
        free(x.d), x = y;
    }
    y = nrms(&x, 0);
    free(x.d);
    x = nsep(&n, &y, "conv_out", c->out_channels, false, 3);
    free(y.d);
    return x;
}

/* ---------------------------------------------------------------- configs */

/* variant 0: causal, dw kernel 5, patch 2, the release's block structure; variant 1: non-causal, dw kernel 3,
 * patch 4, upsamplers in up blocks 0, 2 (spatial only), 3, depthwise mid / up 1 / up 3, widths changing in a
 * plain block (up 2) and a depthwise one (up 3). Written as config.json text, parsed like the release's. */
static void small_config(hb_light_vae_config *c, int variant) {
    const char *js[2] = {
        "{\"decoder_block_out_channels\": [16, 8, 12, 16], \"decoder_causal\": true, \"decoder_dw_kernel_size\": 5,"
        " \"decoder_is_dw_conv\": [false, false, true, true, true], \"decoder_layers_per_block\": [1, 1, 1, 2, 1],"
        " \"decoder_spatio_only\": [true, false, false, false], \"decoder_spatio_temporal_scaling\": [true, true, true, false],"
        " \"latent_channels\": 8, \"out_channels\": 3, \"patch_size\": 2, \"resnet_norm_eps\": 1e-6}",
        "{\"decoder_block_out_channels\": [64, 8, 12, 12], \"decoder_causal\": false, \"decoder_dw_kernel_size\": 3,"
        " \"decoder_is_dw_conv\": [true, false, true, false, true], \"decoder_layers_per_block\": [1, 2, 1, 1, 1],"
        " \"decoder_spatio_only\": [false, true, false, false], \"decoder_spatio_temporal_scaling\": [true, true, false, true],"
        " \"latent_channels\": 8, \"out_channels\": 3, \"patch_size\": 4, \"resnet_norm_eps\": 1e-5, \"_class_name\": \"x\"}"};
    if (hb_light_vae_config_from_json(c, js[variant], "test config")) {
        fprintf(stderr, "%s\n", hb_last_error());
        exit(1);
    }
}

static void random_stats(hb_rng *rng, float *mean, float *sd, int z) {
    for (int i = 0; i < z; i++) mean[i] = 0.3f * hb_rng_normal(rng), sd[i] = 0.5f + hb_rng_uniform(rng);
}

/* ---------------------------------------------------------------- network */

static void test_network(hb_rng *rng, int variant) {
    hb_light_vae_config c;
    small_config(&c, variant);
    char dir[512], file[600];
    snprintf(dir, sizeof dir, "%s/net%d", tl_tmpdir(), variant);
    CHECKF(hb_light_vae_write_random(dir, &c, 11 + variant) == 0, "%s", hb_last_error());
    hb_light_vae *m = hb_light_vae_load(dir);
    CHECKF(m != NULL, "%s", hb_last_error());
    if (!m) return;
    snprintf(file, sizeof file, "%s/diffusion_pytorch_model.safetensors", dir);
    hb_checkpoint *ck = hb_checkpoint_open(file);
    CHECK(ck != NULL);
    int z = c.latent_channels;
    float mean[8], sd[8];
    random_stats(rng, mean, sd, z);
    CHECK(hb_light_vae_set_latent_stats(m, mean, sd, z) == 0);
    int64_t t = 4, h = 2, w = 3, S = hb_light_vae_spatial_factor(m), nf = hb_light_vae_decoded_frames(m, t);
    CHECK(S == (variant ? 32 : 16) && hb_light_vae_temporal_factor(m) == 4 && nf == 13);
    int64_t nv = 3 * nf * h * S * w * S;
    float *lat = malloc(sizeof(float) * (size_t)(z * t * h * w)), *raw = malloc(sizeof(float) * (size_t)nv);
    float *video = malloc(sizeof(float) * (size_t)nv), *ref = malloc(sizeof(float) * (size_t)nv);
    tl_fill_normal(rng, lat, z * t * h * w, 1.0f);
    CHECKF(hb_light_vae_decode(m, lat, t, h, w, video, raw, NULL, NULL) == 0, "%s", hb_last_error());
    nb r = naive_net(ck, &c, lat, t, h, w, mean, sd);
    CHECK(r.C == 3 && r.T == nf && r.H == h * S && r.W == w * S);
    for (int64_t i = 0; i < nv; i++) ref[i] = (float)r.d[i];
    double e = tl_rel_err(raw, ref, nv);
    int64_t clamped = 0;
    for (int64_t i = 0; i < nv; i++) clamped += video[i] != fminf(fmaxf(raw[i], -1.0f), 1.0f);
    float amax = 0;
    for (int64_t i = 0; i < nv; i++) amax = fmaxf(amax, fabsf(raw[i]));
    printf("variant %d (%s, dw kernel %d, patch %d): raw vs naive float64 %.3e, |raw| max %.2f\n", variant,
           c.causal ? "causal" : "non-causal", c.dw_kernel, c.patch_size, e, (double)amax);
    CHECKF(e < 1e-4, "raw vs naive %.3e", e);
    CHECK(clamped == 0);
    free(r.d), free(lat), free(raw), free(video), free(ref);
    hb_checkpoint_close(ck);
    hb_light_vae_free(m);
}

/* ---------------------------------------------------------------- streaming */

/* pushes of random sizes (0..3 latents) then finish == the whole-clip decode, twice (the second after the first
 * clip's finish reset the stream) */
static void test_stream(hb_rng *rng, int variant, bool guard) {
    hb_light_vae_config c;
    small_config(&c, variant);
    hb_light_vae *m = hb_light_vae_create_random(&c, 21 + variant);
    CHECKF(m != NULL, "%s", hb_last_error());
    if (!m) return;
    int64_t t = 7, h = 2, w = 2, z = c.latent_channels, S = hb_light_vae_spatial_factor(m), F = hb_light_vae_temporal_factor(m);
    int64_t nf = hb_light_vae_decoded_frames(m, t), HW = h * S * w * S, nv = 3 * nf * HW;
    float *lat = malloc(sizeof(float) * (size_t)(z * t * h * w)), *whole = malloc(sizeof(float) * (size_t)nv);
    tl_fill_normal(rng, lat, z * t * h * w, 1.0f);
    CHECK(hb_light_vae_decode(m, lat, t, h, w, whole, NULL, NULL, NULL) == 0);
    const hb_backend *prev = guard ? hb_backend_use(hb_backend_cpu_guard()) : NULL;
    float *dl = tl_dev_upload(lat, z * t * h * w), *dv = hb_dev_alloc(sizeof(float) * (size_t)nv, "test");
    float *part = hb_dev_alloc(sizeof(float) * (size_t)(3 * (nf + F) * HW), "test");
    hb_light_vae_stream *s = hb_light_vae_stream_new(m, h, w, true);
    CHECK(dl && dv && part && s);
    for (int rep = 0; rep < 2 && s; rep++) {
        int64_t done = 0, got = 0, i = 0;
        bool ok = true;
        while (ok && i <= t) {
            int64_t k = i < t ? (int64_t)(hb_rng_u64(rng) % 4) : 0;
            if (k > t - i) k = t - i;
            if (i == t) ok = hb_light_vae_stream_finish(s, part, &got) == 0, i++;
            else ok = hb_light_vae_stream_push(s, dl + i * h * w, k, t * h * w, part, &got) == 0, i += k;
            if (ok && done + got <= nf && got > 0) hb_copy_rows(dv + done * HW, nf * HW, part, got * HW, 3, got * HW);
            done += got;
        }
        CHECKF(ok && done == nf, "%s (%lld frames)", hb_last_error(), (long long)done);
        bool same = ok && done == nf && tl_dev_same(dv, whole, nv);
        printf("variant %d%s: stream in random pushes (pass %d) %s, %zu bytes of caches\n", variant,
               guard ? " (cpu-guard)" : "", rep, same ? "== whole clip, bitwise" : "DIFFERS", hb_light_vae_stream_bytes(s));
        CHECK(same);
    }
    if (guard) { /* the whole-clip decode under cpu-guard too */
        CHECK(hb_light_vae_decode(m, dl, t, h, w, dv, NULL, NULL, NULL) == 0 && tl_dev_same(dv, whole, nv));
    }
    hb_light_vae_stream_free(s);
    hb_dev_free(dl), hb_dev_free(dv), hb_dev_free(part);
    if (guard) hb_backend_use(prev);
    free(lat), free(whole);
    hb_light_vae_free(m);
}

/* ---------------------------------------------------------------- files and config */

static float *decode_of(hb_light_vae *m, const float *lat, int64_t t, int64_t h, int64_t w, int64_t nv) {
    float *v = malloc(sizeof(float) * (size_t)nv);
    if (!m || hb_light_vae_decode(m, lat, t, h, w, NULL, v, NULL, NULL)) { free(v); return NULL; }
    return v;
}

static bool same_output(hb_light_vae *a, hb_light_vae *b, hb_rng *rng) {
    if (!a || !b) return false;
    const hb_light_vae_config *c = hb_light_vae_get_config(a);
    int64_t t = 2, h = 1, w = 2, z = c->latent_channels, S = hb_light_vae_spatial_factor(a);
    int64_t nv = 3 * hb_light_vae_decoded_frames(a, t) * h * S * w * S;
    float *lat = malloc(sizeof(float) * (size_t)(z * t * h * w));
    tl_fill_normal(rng, lat, z * t * h * w, 1.0f);
    float *va = decode_of(a, lat, t, h, w, nv), *vb = decode_of(b, lat, t, h, w, nv);
    bool same = va && vb && !memcmp(va, vb, sizeof(float) * (size_t)nv);
    free(lat), free(va), free(vb);
    return same;
}

static void test_files(hb_rng *rng) {
    hb_light_vae_config c, d;
    small_config(&c, 0);
    char *js = hb_light_vae_config_to_json(&c);
    CHECK(js && hb_light_vae_config_from_json(&d, js, "round trip") == 0 && !memcmp(&c, &d, sizeof c));
    free(js);
    hb_light_vae *r = hb_light_vae_create_random(&c, 5);
    char p[512], q[600];
    /* folder */
    snprintf(p, sizeof p, "%s/lv_folder", tl_tmpdir());
    CHECK(hb_light_vae_write_random(p, &c, 5) == 0);
    hb_light_vae *m = hb_light_vae_load(p);
    CHECKF(same_output(r, m, rng), "folder: %s", hb_last_error());
    hb_light_vae_free(m);
    /* file + X.json */
    snprintf(p, sizeof p, "%s/lv.safetensors", tl_tmpdir());
    CHECK(hb_light_vae_write_random(p, &c, 5) == 0);
    m = hb_light_vae_load(p);
    CHECKF(same_output(r, m, rng), "file: %s", hb_last_error());
    hb_light_vae_free(m);
    /* a training checkpoint's names: "decoder." prefix plus a projection head, config.json beside */
    hb_checkpoint *ck = hb_checkpoint_open(p);
    CHECK(ck != NULL);
    int n = ck ? hb_checkpoint_count(ck) : 0;
    char **names = calloc((size_t)n + 1, sizeof(char *));
    hb_tensor *ts = calloc((size_t)n + 1, sizeof(hb_tensor));
    for (int i = 0; i < n; i++) {
        snprintf(q, sizeof q, "decoder.%s", hb_checkpoint_name(ck, i));
        names[i] = strdup(q), ts[i] = hb_checkpoint_tensor(ck, i);
    }
    names[n] = strdup("aligned_feature_projection_heads.0.0.conv.weight"), ts[n] = ts[0];
    snprintf(q, sizeof q, "%s/train", tl_tmpdir());
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/lv.json' '%s/config.json'", q, tl_tmpdir(), q);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    snprintf(q, sizeof q, "%s/train/gen.safetensors", tl_tmpdir());
    CHECK(hb_safetensors_write(q, n + 1, (const char *const *)names, ts, NULL) == 0);
    m = hb_light_vae_load(q);
    CHECKF(same_output(r, m, rng), "prefixed: %s", hb_last_error());
    hb_light_vae_free(m);
    /* a missing tensor, a mis-shaped one (the config says wider than the weights) */
    snprintf(q, sizeof q, "%s/bad", tl_tmpdir());
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/lv.json' '%s/config.json'", q, tl_tmpdir(), q);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    int drop = -1;
    for (int i = 0; i < n; i++) if (strstr(names[i], "up_blocks.1.conv_in.conv_shortcut.pointwise_conv.weight")) drop = i;
    CHECK(drop >= 0);
    char *dn = names[drop];
    names[drop] = names[n - 1], ts[drop] = ts[n - 1];
    snprintf(q, sizeof q, "%s/bad/diffusion_pytorch_model.safetensors", tl_tmpdir());
    CHECK(hb_safetensors_write(q, n - 1, (const char *const *)names, ts, NULL) == 0);
    names[n - 1] = names[drop], names[drop] = dn;
    snprintf(q, sizeof q, "%s/bad", tl_tmpdir());
    CHECK(hb_light_vae_load(q) == NULL);
    CHECKF(strstr(hb_last_error(), "up_blocks.1.conv_in.conv_shortcut.pointwise_conv.weight") != NULL, "%s", hb_last_error());
    hb_light_vae_config wide = c;
    wide.widths[1] = wide.widths[0] = 12;
    js = hb_light_vae_config_to_json(&wide);
    snprintf(q, sizeof q, "%s/lv.json", tl_tmpdir());
    CHECK(js && hb_write_file_atomic(q, js, strlen(js)) == 0);
    free(js);
    CHECK(hb_light_vae_load(p) == NULL);
    CHECKF(strstr(hb_last_error(), "conv_in.conv.weight") && strstr(hb_last_error(), "12"), "%s", hb_last_error());
    for (int i = 0; i <= n; i++) free(names[i]);
    free(names), free(ts);
    hb_checkpoint_close(ck);
    hb_light_vae_free(r);
    /* missing config, bad configs */
    CHECK(hb_light_vae_load("/nonexistent/lv") == NULL && strstr(hb_last_error(), "/nonexistent/lv/config.json"));
    const char *bad[][2] = {
        {"{\"decoder_layers_per_block\": [1]}", "decoder_block_out_channels"},
        {"{\"decoder_block_out_channels\": [4, 4], \"decoder_layers_per_block\": [1, 1]}", "decoder_layers_per_block"},
        {"{\"decoder_block_out_channels\": [4], \"decoder_layers_per_block\": [1, 1], \"decoder_is_dw_conv\": [false, false],"
         " \"decoder_spatio_temporal_scaling\": [true], \"latent_channels\": 4, \"patch_size\": 3, \"decoder_causal\": true,"
         " \"decoder_dw_kernel_size\": 3}", "patch_size"},
        {"{\"decoder_block_out_channels\": [4], \"decoder_layers_per_block\": [1, 1], \"decoder_is_dw_conv\": [false, false],"
         " \"decoder_spatio_temporal_scaling\": [true], \"latent_channels\": 4, \"patch_size\": 2, \"decoder_causal\": true}",
         "decoder_dw_kernel_size"},
        {"{\"is_video_dc_ae\": true}", "is_video_dc_ae"},
        {"[1]", "JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(hb_light_vae_config_from_json(&d, bad[i][0], "cfg") == -1, "%s accepted", bad[i][0]);
        CHECKF(strstr(hb_last_error(), bad[i][1]) != NULL, "%s: message '%s'", bad[i][0], hb_last_error());
    }
}

/* the model folder finder: vae/wan22_v1_tiling_16_12/ first, another vae/<name>/ with the decoder's keys,
 * light_vae/, light_vae.safetensors + light_vae.json; a vae/<name>/ of another model is not taken */
static void test_folders(void) {
    hb_light_vae_config c;
    small_config(&c, 0);
    char d[600], cmd[2400], p[700];
    snprintf(d, sizeof d, "%s/mf", tl_tmpdir());
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/vae/other' && cd '%s' && echo '{}' > config.json && touch Wan2.2_VAE.safetensors "
             "models_t5_umt5-xxl-enc-bf16.pth && echo '{\"_class_name\": \"AutoencoderKLWan\"}' > vae/other/config.json && "
             "touch vae/other/diffusion_pytorch_model.safetensors", d, d);
    CHECK(tl_run(cmd, NULL, 0) == 0);
    hb_model_folder mf;
    CHECKF(hb_model_folder_scan(d, &mf) == 0 && mf.light[0] == 0, "%s / '%s'", hb_last_error(), mf.light);
    struct { const char *write, *expect; } steps[] = {
        {"light_vae.safetensors", "light_vae.safetensors"}, {"light_vae", "light_vae"},
        {"vae/b_release_like", "vae/b_release_like"},       {"vae/" HB_LIGHT_VAE_RELEASE_DIR, "vae/" HB_LIGHT_VAE_RELEASE_DIR}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", d, steps[i].write);
        CHECKF(hb_light_vae_write_random(p, &c, 3) == 0, "%s", hb_last_error());
        snprintf(p, sizeof p, "%s/%s", d, steps[i].expect);
        CHECKF(hb_model_folder_scan(d, &mf) == 0 && !strcmp(mf.light, p), "%s: found '%s'", steps[i].expect, mf.light);
        hb_light_vae *m = hb_light_vae_load(mf.light);
        CHECKF(m != NULL, "%s", hb_last_error());
        hb_light_vae_free(m);
    }
    /* hb mkmodel --arch hummingbird-light-vae writes a loadable folder */
    snprintf(cmd, sizeof cmd, "'%s' mkmodel -q --arch hummingbird-light-vae --tiny '%s/mk' 2>&1", tl_hb_bin(), tl_tmpdir());
    CHECK(tl_run(cmd, NULL, 0) == 0);
    snprintf(p, sizeof p, "%s/mk", tl_tmpdir());
    hb_light_vae *m = hb_light_vae_load(p);
    CHECKF(m && hb_light_vae_spatial_factor(m) == 16 && hb_light_vae_temporal_factor(m) == 4 &&
           hb_light_vae_get_config(m)->latent_channels == 48, "%s", hb_last_error());
    hb_light_vae_free(m);
}

int main(void) {
    hb_threads_init(0);
    hb_rng rng;
    hb_rng_seed(&rng, tl_seed());
    test_network(&rng, 0);
    test_network(&rng, 1);
    test_stream(&rng, 0, false);
    test_stream(&rng, 1, false);
    test_stream(&rng, 0, true);
    test_stream(&rng, 1, true);
    test_files(&rng);
    test_folders();
    return tl_done();
}
