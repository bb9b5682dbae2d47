/* The release's light decoder golden files (shared/golden/release/light_hb, light_hb_noncausal) through the C API
 * and the CLI: the file's latent constants are the built-in Wan2.2 ones (so a model loaded from a release folder
 * de-normalises like the release), the decoder built from the file's config_json reproduces out.video_raw within
 * 1e-4 (normwise max relative error) when loaded from a release-layout folder written from the file (config.json
 * + diffusion_pytorch_model.safetensors holding the file's weight tensors), and hb golden passes on the CPU and
 * on the cpu-guard backend (every output, intermediate, the streamed decode and the release's temporal tiling);
 * with the file's weights on 31 random latents the aligned temporal tiling is closer to the whole-clip decode
 * than the release's (both errors printed). Skips without shared/. */
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/light_vae.h"
#include "models/wan_vae.h"
#include "pipeline/longdecode.h"
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

typedef struct { float *v; int64_t nf, HW, next; } sink;
static int collect(void *user, int64_t t0, int64_t n, const float *v, int64_t H, int64_t W) {
    sink *s = user;
    if (t0 != s->next || t0 + n > s->nf) return 1;
    for (int c = 0; c < 3; c++) memcpy(s->v + (c * s->nf + t0) * H * W, v + c * n * H * W, sizeof(float) * (size_t)(n * H * W));
    s->next += n;
    return 0;
}

static double rms_rel(const float *a, const float *b, int64_t n) {
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), r += (double)b[i] * b[i];
    return sqrt(e / (r > 0 ? r : 1));
}

/* The release's decoder (the file's structure and weights) on 31 random latents (121 frames, the release's
 * length): the aligned temporal tiles and the release's own, against the whole-clip decode (all clamped to
 * [-1, 1]); the aligned ones must be closer. */
static void tiling_error(const hb_light_vae *m, const char *rel, int bs, int st, bool smooth) {
    int64_t t = 31, h = 2, w = 2, z = hb_light_vae_get_config(m)->latent_channels, S = hb_light_vae_spatial_factor(m);
    int64_t nf = hb_light_vae_decoded_frames(m, t), HW = h * S * w * S, n = 3 * nf * HW, hw = h * w;
    float *lat = malloc(sizeof(float) * (size_t)(z * t * h * w)), *ref = malloc(sizeof(float) * (size_t)n);
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    tl_fill_normal(&r, lat, z * t * h * w, 1.0f);
    if (smooth) /* slow motion: keyframes every 6 latents, linear in between */
        for (int64_t c = 0; c < z; c++)
            for (int64_t i = 0; i < t; i++)
                for (int64_t k = 0; k < hw; k++) {
                    int64_t a = i / 6 * 6, b = a + 6 < t ? a + 6 : t - 1;
                    float u = b > a ? (float)(i - a) / (float)(b - a) : 0.0f, *p = lat + c * t * hw;
                    if (i % 6) p[i * hw + k] = (1 - u) * p[a * hw + k] + u * p[b * hw + k];
                }
    CHECK(hb_light_vae_decode(m, lat, t, h, w, ref, NULL, NULL, NULL) == 0);
    double e[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        hb_longdecode_opts o = {.mode = HB_LD_TILED, .light_tiling = k ? HB_LD_LIGHT_RELEASE : HB_LD_LIGHT_ALIGNED,
                                .t_block_size = bs, .t_stride = st};
        sink s = {calloc((size_t)n, sizeof(float)), nf, HW, 0};
        hb_decoder *d = hb_decoder_new_light(m, h, w, &o, collect, &s);
        CHECKF(d && hb_decoder_run(d, lat, t) == 0 && s.next == nf, "%s", hb_last_error());
        e[k] = rms_rel(s.v, ref, n);
        hb_decoder_free(d);
        free(s.v);
    }
    printf("%s weights, 31 %s latents -> 121 frames, tiles %d/%d: RMS rel err vs whole clip: aligned %.3e, release "
           "%.3e\n", rel, smooth ? "smooth" : "i.i.d.", bs, st, e[0], e[1]);
    CHECKF(e[0] < e[1], "aligned %.3e >= release %.3e", e[0], e[1]);
    free(lat), free(ref);
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
        for (int sm = 0; sm < 2; sm++) {
            tiling_error(m, strrchr(rel, '/') + 1, 16, 12, sm);
            tiling_error(m, strrchr(rel, '/') + 1, 12, 8, sm);
        }
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
