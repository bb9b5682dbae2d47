/* Golden runner for kind "hummingbird_light_vae" (the Hummingbird-XT release's light decoder): build the decoder
 * from the metadata config, decode in.latent whole-clip (out.video, out.video_raw and every mid.* block output),
 * streamed latent by latent (must equal the whole clip), and with the release's temporal tiling
 * (out.video_tiled, t_block_size / t_stride from the metadata, through pipeline/longdecode). Every size comes
 * from the file. With -d the whole decoder runs on that backend. */
#include "golden.h"
#include "models/light_vae.h"
#include "ops/ops.h"
#include "pipeline/longdecode.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int block_cb(void *user, const char *name, const float *x, int64_t C, int64_t T, int64_t H, int64_t W) {
    golden_case *g = user;
    char nm[96];
    snprintf(nm, sizeof nm, "mid.%s", name);
    if (hb_checkpoint_has(g->ck, nm)) golden_compare(g, nm, x, C * T * H * W);
    return 0;
}

/* out.video mapping of the release: clamp(x / 2 + 0.5, 0, 1), in place */
static void to_unit(float *x, int64_t n) {
    static float half = 0.5f;
    hb_tensor h = hb_tensor_1d(HB_F32, 1, &half);
    hb_channel_affine(x, x, 1, n, &h, &h);
    hb_elementwise(HB_EW_CLAMP01, x, x, NULL, 0.0f, 0.0f, n);
}

static hb_light_vae *build(golden_case *g) {
    const char *js = hb_checkpoint_metadata(g->ck, "config_json");
    char *own = js ? NULL : json_dumps(g->config, JSON_COMPACT);
    hb_light_vae_config c;
    char what[300];
    snprintf(what, sizeof what, "%s: metadata %s", g->path, js ? "config_json" : "config");
    int rc = hb_light_vae_config_from_json(&c, js ? js : own, what);
    free(own);
    if (rc) return NULL;
    hb_light_vae *m = hb_light_vae_load_ck(g->ck, &c);
    if (!m) return NULL;
    hb_tensor tm, ts;
    float *mean = golden_tensor_f32(g, "in.latent_mean", &tm), *sd = mean ? golden_tensor_f32(g, "in.latent_std", &ts) : NULL;
    rc = !sd ? -1 : hb_tensor_numel(&tm) != hb_tensor_numel(&ts) ? hb_error("%s: latent mean/std sizes differ", g->path)
                                                                 : hb_light_vae_set_latent_stats(m, mean, sd, (int)hb_tensor_numel(&tm));
    hb_free(mean), hb_free(sd);
    if (rc) { hb_light_vae_free(m); return NULL; }
    return m;
}

/* streamed one latent at a time + finish, into video [3, nf, H, W] (device), clamped */
static int streamed(const hb_light_vae *m, const float *lat, int64_t t, int64_t h, int64_t w, float *video, int64_t nf,
                    int64_t HW) {
    hb_light_vae_stream *s = hb_light_vae_stream_new(m, h, w, true);
    int64_t F = hb_light_vae_temporal_factor(m), done = 0, got = 0;
    float *part = s ? hb_dev_alloc(sizeof(float) * (size_t)(3 * (F + nf) * HW), "frames") : NULL;
    int rc = part ? 0 : -1;
    for (int64_t i = 0; i <= t && !rc; i++) {
        if (i < t) rc = hb_light_vae_stream_push(s, lat + i * h * w, 1, t * h * w, part, &got);
        else rc = hb_light_vae_stream_finish(s, part, &got);
        if (!rc && done + got > nf) rc = hb_error("light_vae stream: too many frames");
        if (!rc && got > 0) hb_copy_rows(video + done * HW, nf * HW, part, got * HW, 3, got * HW);
        done += got;
    }
    if (!rc && done != nf) rc = hb_error("light_vae stream: %lld frames, expected %lld", (long long)done, (long long)nf);
    hb_dev_free(part);
    hb_light_vae_stream_free(s);
    return rc;
}

typedef struct { float *video; int64_t nf, HW; } tiled_sink;
static int tiled_emit(void *user, int64_t t0, int64_t n, const float *v, int64_t H, int64_t W) {
    tiled_sink *s = user;
    if (t0 + n > s->nf) return hb_error("tiled decode: frame %lld past %lld", (long long)(t0 + n), (long long)s->nf);
    for (int c = 0; c < 3; c++) memcpy(s->video + (c * s->nf + t0) * s->HW, v + c * n * H * W, sizeof(float) * (size_t)(n * H * W));
    return 0;
}

/* out.video_tiled: the release's temporal tiling, frames mapped from [-1, 1] to [0, 1] */
static int tiled(golden_case *g, const hb_light_vae *m, const float *lat, int64_t t, int64_t h, int64_t w, int64_t nf,
                 int64_t HW) {
    const char *bs = hb_checkpoint_metadata(g->ck, "t_block_size"), *ss = hb_checkpoint_metadata(g->ck, "t_stride");
    if (!bs || !ss) return hb_error("%s: metadata t_block_size / t_stride missing", g->path);
    hb_longdecode_opts o = {.mode = HB_LD_TILED, .light_tiling = HB_LD_LIGHT_RELEASE, .t_block_size = atoi(bs),
                            .t_stride = atoi(ss)};
    tiled_sink s = {hb_malloc(sizeof(float) * (size_t)(3 * nf * HW), "tiled video"), nf, HW};
    hb_decoder *d = s.video ? hb_decoder_new_light(m, h, w, &o, tiled_emit, &s) : NULL;
    int rc = d ? hb_decoder_run(d, lat, t) : -1;
    if (!rc && hb_decoder_frames_out(d) != nf)
        rc = hb_error("tiled decode: %lld frames, expected %lld", (long long)hb_decoder_frames_out(d), (long long)nf);
    hb_decoder_free(d);
    if (!rc) {
        for (int64_t i = 0; i < 3 * nf * HW; i++) {
            float v = s.video[i] * 0.5f + 0.5f;
            s.video[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
        golden_compare_host(g, "out.video_tiled", s.video, 3 * nf * HW);
    }
    hb_free(s.video);
    return rc;
}

int golden_run_hummingbird_light_vae(golden_case *g) {
    if (g->bf16) printf("  (the light decoder runs in float32 as the release does; --bf16 is ignored)\n");
    hb_light_vae *m = build(g);
    if (!m) return -1;
    hb_tensor lt;
    float *lat = golden_tensor_dev(g, "in.latent", &lt), *raw = NULL, *video = NULL, *vs = NULL;
    int rc = lat ? 0 : -1;
    if (!rc && (lt.ndim != 4 || lt.shape[0] != hb_light_vae_get_config(m)->latent_channels))
        rc = hb_error("%s: in.latent must be [%d, T, h, w]", g->path, hb_light_vae_get_config(m)->latent_channels);
    int64_t t = lt.shape[1], h = lt.shape[2], w = lt.shape[3], S = hb_light_vae_spatial_factor(m);
    int64_t nf = hb_light_vae_decoded_frames(m, t), HW = h * S * w * S, n = 3 * nf * HW;
    if (!rc && !((raw = hb_dev_alloc(sizeof(float) * (size_t)n, "raw")) &&
                 (video = hb_dev_alloc(sizeof(float) * (size_t)n, "video")) &&
                 (vs = hb_dev_alloc(sizeof(float) * (size_t)n, "video"))))
        rc = -1;
    if (!rc) rc = hb_light_vae_decode(m, lat, t, h, w, video, raw, block_cb, g);
    if (!rc) {
        golden_compare(g, "out.video_raw", raw, n);
        hb_copy(vs, raw, n);
        to_unit(vs, n);
        golden_compare(g, "out.video", vs, n);
        rc = streamed(m, lat, t, h, w, vs, nf, HW);
    }
    if (!rc) { /* streaming vs whole clip: the same values */
        float *a = hb_malloc(sizeof(float) * (size_t)n, "video"), *b = hb_malloc(sizeof(float) * (size_t)n, "video");
        rc = a && b && !hb_dev_download(a, vs, sizeof(float) * (size_t)n) && !hb_dev_download(b, video, sizeof(float) * (size_t)n) ? 0 : -1;
        if (!rc) {
            double e = golden_rel_err(a, b, n);
            bool same = !memcmp(a, b, sizeof(float) * (size_t)n);
            g->checked++;
            if (!(e <= 1e-6)) g->failed++;
            printf("  %-36s %.3e  %s\n", "streamed vs whole clip", e, same ? "identical  ok" : e <= 1e-6 ? "ok" : "FAIL");
        }
        hb_free(a), hb_free(b);
    }
    if (!rc && hb_checkpoint_has(g->ck, "out.video_tiled")) rc = tiled(g, m, lat, t, h, w, nf, HW);
    hb_dev_free(lat), hb_dev_free(raw), hb_dev_free(video), hb_dev_free(vs);
    hb_light_vae_free(m);
    return rc;
}
