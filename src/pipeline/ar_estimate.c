/* Estimated peak memory of an hb_generate_ar run (include/hummingbird.h), before any work: the folder's DiT is
 * opened (mapped, not read), the sizes left 0 take the model's (settings.h), and the estimate is the larger of
 * the text encoder's weights (its stage runs first) and the chunk loop: DiT weights, its workspace for one
 * chunk (planned from the shapes), the KV cache, the history ring, the prompt's cross-attention K/V, and the decoder's
 * weights and workspace (the streaming Wan VAE's few-frame window, as planned; TAEHV: its frames). */
#include "hummingbird.h"
#include "models/wan_dit.h"
#include "models/wan_vae.h"
#include "pipeline/model_folder.h"
#include "pipeline/settings.h"
#include <stdio.h>
#include <string.h>

/* The streaming Wan VAE decoder's workspace at latent h x w (0 when the VAE cannot be opened). */
static size_t vae_window_bytes(const char *vae_path, int64_t h, int64_t w) {
    hb_checkpoint *ck = hb_checkpoint_open(vae_path);
    hb_wan_vae *v = ck ? hb_wan_vae_load(ck, NULL) : NULL;
    int64_t b = v ? hb_wan_vae_decode_workspace(v, 3, h, w, NULL) : 0;
    hb_wan_vae_free(v);
    if (ck) hb_checkpoint_close(ck);
    return b > 0 ? (size_t)b : 0;
}

size_t hb_ar_estimate_bytes(const char *model_dir, const hb_ar_params *p) {
    hb_clear_error();
    if (!model_dir || !p) { hb_error("hb_ar_estimate_bytes: NULL argument"); return 0; }
    hb_model_folder mf;
    if (hb_model_folder_scan_te(model_dir, p->text_encoder_dir, &mf)) return 0;
    wan_dit *m = hb_model_folder_open_dit(&mf, p->checkpoint);
    if (!m) return 0;
    const wan_dit_config *c = &m->cfg;
    hb_ar_settings s;
    hb_ar_settings_for(&mf, c->in_dim, &s);
    const int64_t sf = c->in_dim == 48 ? 16 : 8, W = (p->width ? p->width : s.width) / sf,
                  H = (p->height ? p->height : s.height) / sf, frames = p->frames ? p->frames : 4 * s.latent_frames - 3;
    const int64_t chunk = p->chunk > 0 ? p->chunk : s.chunk, lat_frames = 1 + (frames + 2) / 4;
    const int64_t cache_frames = p->window > 0 ? p->window : lat_frames, ftok = (H / c->patch[1]) * (W / c->patch[2]);
    size_t est = 0;
    if (H > 0 && W > 0) {
        size_t weights = 0;
        for (int i = 0; i < hb_checkpoint_count(m->ck); i++) {
            hb_tensor t = hb_checkpoint_tensor(m->ck, i);
            weights += hb_tensor_nbytes(&t);
        }
        const size_t cache_el = p->cache_f32 ? 4 : 2;
        const size_t kv = 2 * (size_t)c->num_layers * (size_t)(cache_frames * ftok) * (size_t)c->dim * cache_el;
        const size_t text_kv = 2 * (size_t)c->num_layers * (size_t)c->text_len * (size_t)c->dim * sizeof(float);
        const size_t ring = sizeof(float) * (size_t)(c->in_dim * cache_frames * H * W);
        const size_t rgb = (size_t)(4 * chunk) * (size_t)(H * sf) * (size_t)(W * sf) * (3 + 3 * sizeof(float));
        size_t dec = 0;
        if (p->vae == HB_GEN_VAE_FULL) dec = hb_model_folder_weight_bytes(mf.vae) + vae_window_bytes(mf.vae, H, W) + rgb;
        else if (p->vae != HB_GEN_VAE_NONE) dec = hb_model_folder_weight_bytes(mf.tae) + rgb;
        est = weights + hb_wan_dit_workspace_bytes(c, chunk * ftok, 1, false) + kv + text_kv + ring + dec;
        const size_t text = hb_model_folder_weight_bytes(mf.text_encoder);
        if (text > est) est = text;
    } else {
        hb_error("hb_ar_estimate_bytes: size %dx%d", p->width, p->height);
    }
    hb_wan_dit_free(m);
    return est;
}
