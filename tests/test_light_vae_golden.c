/* The release's light decoder golden files (shared/golden/release/light_hb, light_hb_noncausal) through the C API
 * and the CLI: the file's latent constants are the built-in Wan2.2 ones (so a model loaded from a release folder
 * de-normalises like the release), the decoder built from the file's config_json reproduces out.video_raw within
 * 1e-4 (normwise max relative error) when loaded from a release-layout folder written from the file (config.json
 * + diffusion_pytorch_model.safetensors holding the file's weight tensors), and hb golden passes on the CPU and
 * on the cpu-guard backend (every output, intermediate, the streamed decode and the release's temporal tiling).
 * Skips without shared/. */
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/light_vae.h"
#include "models/wan_vae.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *f32(hb_checkpoint *ck, const char *name, hb_tensor *t) {
    if (hb_checkpoint_get(ck, name, t)) { CHECKF(0, "%s", hb_last_error()); return NULL; }
    int64_t n = hb_tensor_numel(t);
    float *p = malloc((size_t)n * sizeof(float));
    hb_convert_to_f32(p, t->data, t->dtype, (size_t)n);
    return p;
}

/* the file's weights (every tensor that is not in./out./mid.) and config_json as a release folder */
static int write_folder(hb_checkpoint *ck, const char *dir) {
    char p[800], cmd[800];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (tl_run(cmd, NULL, 0)) return -1;
    int n = hb_checkpoint_count(ck), k = 0;
    const char **names = calloc((size_t)n, sizeof(char *));
    hb_tensor *ts = calloc((size_t)n, sizeof(hb_tensor));
    for (int i = 0; i < n; i++) {
        const char *nm = hb_checkpoint_name(ck, i);
        if (strncmp(nm, "in.", 3) && strncmp(nm, "out.", 4) && strncmp(nm, "mid.", 4))
            names[k] = nm, ts[k++] = hb_checkpoint_tensor(ck, i);
    }
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", dir);
    int rc = hb_safetensors_write(p, k, names, ts, NULL);
    free(names), free(ts);
    const char *js = hb_checkpoint_metadata(ck, "config_json");
    snprintf(p, sizeof p, "%s/config.json", dir);
    return rc || !js ? -1 : hb_write_file_atomic(p, js, strlen(js));
}

static void check_file(const char *rel) {
    char path[1024], dir[700];
    tl_shared_file(rel, path, sizeof path);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (!ck) return;
    snprintf(dir, sizeof dir, "%s/%s", tl_tmpdir(), strrchr(rel, '/') + 1);
    CHECKF(write_folder(ck, dir) == 0, "%s", hb_last_error());
    hb_light_vae *m = hb_light_vae_load(dir);
    CHECKF(m != NULL, "%s", hb_last_error());
    hb_tensor tm, ts, tl, tr;
    float *mean = f32(ck, "in.latent_mean", &tm), *sd = f32(ck, "in.latent_std", &ts), *lat = f32(ck, "in.latent", &tl);
    int zo = 0;
    const float *om = hb_wan_vae_official_mean(HB_WAN_VAE_22, &zo), *os = hb_wan_vae_official_std(HB_WAN_VAE_22, NULL);
    CHECK(zo == tm.shape[0]);
    for (int i = 0; i < zo && i < tm.shape[0]; i++)
        CHECKF(fabsf(om[i] - mean[i]) <= 1e-6f * fabsf(om[i]) && fabsf(os[i] - sd[i]) <= 1e-6f * os[i],
               "%s: latent constant %d: file %.9g/%.9g, built-in %.9g/%.9g", rel, i, (double)mean[i], (double)sd[i],
               (double)om[i], (double)os[i]);
    if (m) { /* the built-in statistics, as a model loaded from a release folder uses them */
        int64_t t = tl.shape[1], h = tl.shape[2], w = tl.shape[3], S = hb_light_vae_spatial_factor(m);
        int64_t n = 3 * hb_light_vae_decoded_frames(m, t) * h * S * w * S;
        float *raw = malloc(sizeof(float) * (size_t)n), *ref = f32(ck, "out.video_raw", &tr);
        CHECK(hb_tensor_numel(&tr) == n);
        CHECKF(hb_light_vae_decode(m, lat, t, h, w, NULL, raw, NULL, NULL) == 0, "%s", hb_last_error());
        double e = tl_rel_err(raw, ref, n);
        printf("%s: release folder written from the file, built-in latent constants: out.video_raw %.3e\n", rel, e);
        CHECK(e < 1e-4);
        free(raw), free(ref);
    }
    free(mean), free(sd), free(lat);
    hb_light_vae_free(m);
    hb_checkpoint_close(ck);
    /* hb golden, on the CPU and under cpu-guard */
    char cmd[2400], out[8192];
    for (int g = 0; g < 2; g++) {
        snprintf(cmd, sizeof cmd, "'%s' golden %s '%s' 2>&1", tl_hb_bin(), g ? "-d cpu-guard" : "", path);
        int rc = tl_run(cmd, out, sizeof out);
        CHECKF(rc == 0 && strstr(out, "=> PASS") && strstr(out, "out.video_tiled") && strstr(out, "mid.up_blocks.3"),
               "hb golden%s %s: exit %d\n%s", g ? " -d cpu-guard" : "", rel, rc, out);
    }
}

int main(void) {
    hb_threads_init(0);
    check_file("golden/release/light_hb.safetensors");
    check_file("golden/release/light_hb_noncausal.safetensors");
    return tl_done();
}
