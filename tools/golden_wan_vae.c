/* Golden runner for kind wan_vae (variants wan2.1, wan2.2): builds the VAE from the file's config and
 * weights, encodes in.video and decodes in.latent with the file's latent mean/std, and compares
 * out.latent, mid.enc_mu_logvar, out.video_raw, out.video and mid.dec_conv2. Video, latents and the mid
 * tensors live in the backend's memory (-d DEVICE); the latent statistics are host parameters. */
#include "golden.h"
#include "models/wan_vae.h"
#include <stdlib.h>
#include <string.h>

int golden_run_wan_vae(golden_case *g) {
    hb_wan_vae_config cfg;
    const char *cfg_s = hb_checkpoint_metadata(g->ck, "config");
    if (hb_wan_vae_config_from_json(&cfg, g->variant, cfg_s)) return hb_error_prefix("%s: ", g->path);
    hb_wan_vae *m = hb_wan_vae_load(g->ck, &cfg);
    if (!m) return strstr(hb_last_error(), g->path) ? -1 : hb_error_prefix("%s: ", g->path);
    int rc = -1;
    float *mean = NULL, *std = NULL, *video = NULL, *lat_in = NULL, *lat = NULL, *ml = NULL, *vid = NULL, *c2 = NULL;
    hb_tensor tv, tl, tm, ts;
    int64_t z = cfg.z_dim;
    int64_t sz[1] = {z};
    if (hb_checkpoint_get_shaped(g->ck, "in.latent_mean", 1, sz, &tm) ||
        hb_checkpoint_get_shaped(g->ck, "in.latent_std", 1, sz, &ts))
        goto out;
    int64_t vs[4] = {3, -1, -1, -1}, ls[4] = {z, -1, -1, -1};
    if (hb_checkpoint_get_shaped(g->ck, "in.video", 4, vs, &tv) || hb_checkpoint_get_shaped(g->ck, "in.latent", 4, ls, &tl))
        goto out;
    if (!(mean = golden_tensor_f32(g, "in.latent_mean", NULL)) || !(std = golden_tensor_f32(g, "in.latent_std", NULL)) ||
        !(video = golden_tensor_dev(g, "in.video", NULL)) || !(lat_in = golden_tensor_dev(g, "in.latent", NULL)))
        goto out;
    if (hb_wan_vae_set_latent_stats(m, mean, std)) goto out;

    /* encode */
    int sf = hb_wan_vae_spatial_factor(m), tf = hb_wan_vae_temporal_factor(m);
    int64_t T = tv.shape[1], H = tv.shape[2], W = tv.shape[3];
    int64_t t = 1 + (T - 1) / tf, h = H / sf, w = W / sf;
    lat = hb_dev_alloc((size_t)(z * t * h * w) * sizeof(float), "latent");
    ml = hb_dev_alloc((size_t)(2 * z * t * h * w) * sizeof(float), "mu_logvar");
    if (!lat || !ml) goto out;
    hb_wan_vae_opts eo = {.mu_logvar = ml};
    if (hb_wan_vae_encode(m, video, T, H, W, lat, &eo)) goto out;
    golden_compare(g, "out.latent", lat, z * t * h * w);
    golden_compare(g, "mid.enc_mu_logvar", ml, 2 * z * t * h * w);

    /* decode: raw, then clamped */
    int64_t lt = tl.shape[1], lh = tl.shape[2], lw = tl.shape[3];
    int64_t VT = 1 + tf * (lt - 1), VH = lh * sf, VW = lw * sf, vn = 3 * VT * VH * VW;
    vid = hb_dev_alloc((size_t)vn * sizeof(float), "video");
    c2 = hb_dev_alloc((size_t)(z * lt * lh * lw) * sizeof(float), "dec_conv2");
    if (!vid || !c2) goto out;
    hb_wan_vae_opts dopt = {.raw = true, .dec_conv2 = c2};
    if (hb_wan_vae_decode(m, lat_in, lt, lh, lw, vid, &dopt)) goto out;
    golden_compare(g, "out.video_raw", vid, vn);
    golden_compare(g, "mid.dec_conv2", c2, z * lt * lh * lw);
    if (hb_wan_vae_decode(m, lat_in, lt, lh, lw, vid, NULL)) goto out;
    golden_compare(g, "out.video", vid, vn);
    rc = 0;
out:
    if (rc && !strstr(hb_last_error(), g->path)) hb_error_prefix("%s: ", g->path);
    hb_free(mean), hb_free(std);
    hb_dev_free(video), hb_dev_free(lat_in), hb_dev_free(lat), hb_dev_free(ml), hb_dev_free(vid), hb_dev_free(c2);
    hb_wan_vae_free(m);
    return rc;
}
