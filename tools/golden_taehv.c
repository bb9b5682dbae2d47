/* Golden runner for kind "taehv" (madebyollin/taehv TAEHV): decode in.latent -> out.video and
 * mid.decoder_raw, encode in.video -> out.latent, both whole-clip; the streaming order is run too and
 * must give the same bits. Every size comes from the file. Inputs and outputs live in the backend's memory
 * (-d DEVICE runs the whole model there). */
#include "golden.h"
#include "models/tae.h"
#include <stdio.h>
#include <string.h>

static void cfg_flags(golden_case *g, const char *key, bool *out) {
    json_t *a = json_object_get(g->config, key);
    if (!json_is_array(a) || json_array_size(a) != 3) return; /* keep the default */
    for (int i = 0; i < 3; i++) out[i] = json_is_true(json_array_get(a, (size_t)i));
}

/* A 4-d input tensor of the file as float32 in the backend's memory (hb_dev_free it). */
static float *input4(golden_case *g, const char *name, int64_t shape[4]) {
    hb_tensor t;
    if (golden_tensor(g, name, &t)) return NULL;
    if (t.ndim != 4) { hb_error("%s: %s has %d dims, expected 4 ([T, C, H, W])", g->path, name, t.ndim); return NULL; }
    memcpy(shape, t.shape, 4 * sizeof(int64_t));
    return golden_tensor_dev(g, name, NULL);
}

static float *dev_buf(int64_t n, const char *what) { return hb_dev_alloc(sizeof(float) * (size_t)(n > 0 ? n : 1), what); }

/* a, b in the backend's memory */
static void same_bits(golden_case *g, const char *what, const float *a, const float *b, int64_t n) {
    size_t bytes = (size_t)n * sizeof(float);
    float *ha = hb_malloc(bytes ? bytes : 1, what), *hb = hb_malloc(bytes ? bytes : 1, what);
    bool same = ha && hb && !hb_dev_download(ha, a, bytes) && !hb_dev_download(hb, b, bytes) && memcmp(ha, hb, bytes) == 0;
    hb_free(ha), hb_free(hb);
    g->checked++;
    if (!same) g->failed++;
    printf("  %-36s %s\n", what, same ? "identical  ok" : "differ  FAIL");
}

int golden_run_taehv(golden_case *g) {
    hb_tae_config cfg;
    hb_tae_config_default(&cfg);
    cfg.patch_size = (int)golden_cfg_int(g, "patch_size", 0);
    cfg.latent_channels = (int)golden_cfg_int(g, "latent_channels", 0);
    cfg_flags(g, "encoder_time_downscale", cfg.encoder_time_downscale);
    cfg_flags(g, "decoder_time_upscale", cfg.decoder_time_upscale);
    cfg_flags(g, "decoder_space_upscale", cfg.decoder_space_upscale);
    if (g->bf16) printf("  (taehv runs in float32; --bf16 is ignored)\n");
    unsigned parts = 0;
    if (hb_checkpoint_has(g->ck, "in.latent")) parts |= HB_TAE_DECODER;
    if (hb_checkpoint_has(g->ck, "in.video")) parts |= HB_TAE_ENCODER;
    if (!parts) return hb_error("%s: neither in.latent nor in.video is present", g->path);
    hb_tae *m = hb_tae_load(g->ck, &cfg, parts);
    if (!m) return -1;
    int rc = 0;
    float *lat = NULL, *video = NULL, *raw = NULL, *video2 = NULL, *raw2 = NULL, *vin = NULL, *zout = NULL, *zout2 = NULL;
    if (parts & HB_TAE_DECODER) {
        int64_t s[4];
        lat = input4(g, "in.latent", s);
        if (!lat) { rc = -1; goto done; }
        if (s[1] != hb_tae_latent_channels(m)) {
            rc = hb_error("%s: in.latent has %lld channels, the model %d", g->path, (long long)s[1], hb_tae_latent_channels(m));
            goto done;
        }
        int64_t T = s[0], h = s[2], w = s[3], P = hb_tae_patch_size(m), sc = hb_tae_space_scale(m);
        int64_t To = hb_tae_decoded_frames(m, T), Tr = T * hb_tae_t_upscale(m);
        int64_t nv = To * 3 * h * sc * w * sc, nr = Tr * 3 * P * P * (h * sc / P) * (w * sc / P);
        video = dev_buf(nv, "video");
        video2 = dev_buf(nv, "video");
        raw = dev_buf(nr, "raw");
        raw2 = dev_buf(nr, "raw");
        if (!video || !video2 || !raw || !raw2) { rc = -1; goto done; }
        if (hb_tae_decode_video(m, lat, T, h, w, video, raw, false)) { rc = -1; goto done; }
        golden_compare(g, "out.video", video, nv);
        golden_compare(g, "mid.decoder_raw", raw, nr);
        if (hb_tae_decode_video(m, lat, T, h, w, video2, raw2, true)) { rc = -1; goto done; }
        same_bits(g, "out.video streaming vs whole clip", video2, video, nv);
        same_bits(g, "mid.decoder_raw streaming vs whole", raw2, raw, nr);
    }
    if (parts & HB_TAE_ENCODER) {
        int64_t s[4];
        vin = input4(g, "in.video", s);
        if (!vin) { rc = -1; goto done; }
        if (s[1] != 3) { rc = hb_error("%s: in.video has %lld channels, expected 3", g->path, (long long)s[1]); goto done; }
        int64_t T = s[0], H = s[2], W = s[3], d = (int64_t)hb_tae_patch_size(m) * 8;
        int64_t nz = hb_tae_encoded_frames(m, T) * hb_tae_latent_channels(m) * (H / d) * (W / d);
        zout = dev_buf(nz, "latent");
        zout2 = dev_buf(nz, "latent");
        if (!zout || !zout2) { rc = -1; goto done; }
        if (hb_tae_encode_video(m, vin, T, H, W, zout, false)) { rc = -1; goto done; }
        golden_compare(g, "out.latent", zout, nz);
        if (hb_tae_encode_video(m, vin, T, H, W, zout2, true)) { rc = -1; goto done; }
        same_bits(g, "out.latent streaming vs whole clip", zout2, zout, nz);
    }
done:
    hb_dev_free(lat), hb_dev_free(video), hb_dev_free(raw), hb_dev_free(video2), hb_dev_free(raw2);
    hb_dev_free(vin), hb_dev_free(zout), hb_dev_free(zout2);
    hb_tae_free(m);
    return rc;
}
