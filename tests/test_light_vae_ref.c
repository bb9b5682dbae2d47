/* Light VAE decoder vs the independent PyTorch reference tests/reference/light_vae_ref.py (float64
 * torch.nn.functional.conv3d on the same safetensors weights + config): whole-clip video and head output,
 * causal and non-causal, two configs (default kernels with 5 blocks; 4 blocks with 5x5 depthwise kernels, no
 * de-normalisation, no clamp), and the streaming causal decode. Tolerance 5e-5 (normwise max relative; seen: 1e-6 to 1.4e-5).
 * Skipped (exit 77) with a message when no python3 can import torch (apt install python3-torch). */
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/light_vae.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *find_python(void) {
    const char *env = getenv("HB_PYTHON");
    const char *cands[] = {env && *env ? env : "python3", "python3", "/usr/bin/python3"};
    static char ok[256];
    for (int i = 0; i < 3; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", cands[i]);
        if (tl_run(cmd, NULL, 0) == 0) {
            snprintf(ok, sizeof ok, "%s", cands[i]);
            return ok;
        }
    }
    return NULL;
}

static const char *script_path(char *buf, size_t cap) {
    const char *s = getenv("HB_SOURCE_DIR");
    if (s && *s) snprintf(buf, cap, "%s/tests/reference/light_vae_ref.py", s);
    else { /* this file's folder (CMake compiles it by absolute path) */
        snprintf(buf, cap, "%s", __FILE__);
        char *sl = strrchr(buf, '/');
        if (sl) snprintf(sl, cap - (size_t)(sl - buf), "/reference/light_vae_ref.py");
    }
    return access(buf, R_OK) == 0 ? buf : NULL;
}

typedef struct {
    bool causal;
    int variant;
    hb_light_vae *m;
    float *lat, *v, *raw;
    int64_t t, h, w, nf, nv, nraw, F, S;
    char model[600], in[600], out[600];
} rcase;

static void prepare(rcase *k, hb_rng *rng) {
    hb_light_vae_config c;
    hb_light_vae_config_default(&c, k->causal);
    c.z_dim = 12;
    int wd[5] = {12, 10, 8, 6, 4};
    for (int i = 0; i < 5; i++) c.widths[i] = wd[i], c.res_blocks[i] = i < 3 ? 2 : 1;
    if (k->variant == 1) {
        c.n_blocks = 4;
        c.up_t[0] = 2, c.up_s[0] = 2, c.up_t[1] = 2, c.up_s[1] = 2, c.up_t[2] = 1, c.up_s[2] = 2;
        c.dw_kernel_s = 5, c.kernel_t = 1;
        c.denormalize = false, c.clamp = false;
    }
    snprintf(k->model, sizeof k->model, "%s/m%d%d.safetensors", tl_tmpdir(), k->causal, k->variant);
    snprintf(k->in, sizeof k->in, "%s/in%d%d.safetensors", tl_tmpdir(), k->causal, k->variant);
    snprintf(k->out, sizeof k->out, "%s/out%d%d.safetensors", tl_tmpdir(), k->causal, k->variant);
    CHECK(hb_light_vae_write_random(k->model, &c, 40 + k->variant) == 0);
    k->m = hb_light_vae_load(k->model);
    CHECKF(k->m != NULL, "%s", hb_last_error());
    if (!k->m) return;
    k->t = 4, k->h = 3, k->w = 2;
    k->S = hb_light_vae_spatial_factor(k->m), k->F = hb_light_vae_temporal_factor(k->m);
    k->nf = hb_light_vae_decoded_frames(k->m, k->t);
    int64_t z = c.z_dim, nl = z * k->t * k->h * k->w;
    k->nv = 3 * k->nf * k->h * k->S * k->w * k->S;
    k->nraw = 12 * k->F * k->t * (k->h * k->S / 2) * (k->w * k->S / 2);
    k->lat = malloc(sizeof(float) * (size_t)nl), k->v = malloc(sizeof(float) * (size_t)k->nv);
    k->raw = malloc(sizeof(float) * (size_t)k->nraw);
    tl_fill_normal(rng, k->lat, nl, 1.0f);
    int64_t shp[4] = {z, k->t, k->h, k->w};
    hb_tensor lt = hb_tensor_make(HB_F32, 4, shp, k->lat);
    const char *names[] = {"latent"};
    CHECK(hb_safetensors_write(k->in, 1, names, &lt, NULL) == 0);
    CHECK(hb_light_vae_decode(k->m, k->lat, k->t, k->h, k->w, k->v, k->raw) == 0);
}

static void compare(rcase *k) {
    if (!k->m) return;
    hb_checkpoint *ck = hb_checkpoint_open(k->out);
    CHECKF(ck != NULL, "%s", hb_last_error());
    int64_t h = k->h, w = k->w, S = k->S, t = k->t, nf = k->nf, nv = k->nv;
    if (ck) {
        hb_tensor rv = {0}, rr = {0};
        int64_t vs[4] = {3, nf, h * S, w * S}, rs[4] = {12, k->F * t, h * S / 2, w * S / 2};
        CHECKF(hb_checkpoint_get_shaped(ck, "video", 4, vs, &rv) == 0, "%s", hb_last_error());
        CHECKF(hb_checkpoint_get_shaped(ck, "raw", 4, rs, &rr) == 0, "%s", hb_last_error());
        if (rv.data && rr.data) {
            double ev = tl_rel_err(k->v, rv.data, nv), er = tl_rel_err(k->raw, rr.data, k->nraw);
            printf("causal %d variant %d: video rel err %.2e, head output rel err %.2e (vs PyTorch float64)\n", k->causal,
                   k->variant, ev, er);
            CHECKF(ev < 5e-5 && er < 5e-5, "video %g raw %g", ev, er);
            if (k->causal) { /* streaming latent by latent */
                hb_light_vae_stream *s = hb_light_vae_stream_new(k->m, h, w, 1);
                float *sv = malloc(sizeof(float) * (size_t)nv), *tmp = malloc(sizeof(float) * (size_t)nv);
                int64_t got = 0, HWo = h * S * w * S;
                for (int64_t i = 0; i < t; i++) {
                    int64_t no = 0;
                    CHECK(hb_light_vae_stream_push(s, k->lat + i * h * w, 1, t * h * w, tmp, &no) == 0);
                    for (int ch = 0; ch < 3; ch++)
                        memcpy(sv + (ch * nf + got) * HWo, tmp + ch * no * HWo, sizeof(float) * (size_t)(no * HWo));
                    got += no;
                }
                double es = tl_rel_err(sv, rv.data, nv);
                printf("  streaming latent by latent: rel err %.2e\n", es);
                CHECK(got == nf && es < 5e-5);
                hb_light_vae_stream_free(s);
                free(sv), free(tmp);
            }
        }
        hb_checkpoint_close(ck);
    }
    free(k->lat), free(k->v), free(k->raw);
    hb_light_vae_free(k->m);
}

int main(void) {
    const char *py = find_python();
    if (!py) tl_skip("no python3 that can import torch (apt install python3-torch; it is optional): "
                     "the light VAE is not compared with the PyTorch reference");
    char script[1024];
    if (!script_path(script, sizeof script)) tl_skip("tests/reference/light_vae_ref.py not found (set HB_SOURCE_DIR)");
    hb_threads_init(0);
    hb_rng rng;
    hb_rng_seed(&rng, tl_seed());
    rcase k[4];
    memset(k, 0, sizeof k);
    char cmd[8192];
    int off = snprintf(cmd, sizeof cmd, "%s '%s'", py, script);
    for (int i = 0; i < 4; i++) {
        k[i].variant = i / 2, k[i].causal = i % 2 == 0;
        prepare(&k[i], &rng);
        off += snprintf(cmd + off, sizeof cmd - (size_t)off, " '%s' '%s' '%s'", k[i].model, k[i].in, k[i].out);
    }
    snprintf(cmd + off, sizeof cmd - (size_t)off, " 2>&1");
    char msg[4096] = {0};
    int rc = tl_run(cmd, msg, sizeof msg);
    CHECKF(rc == 0, "%s: %s", cmd, msg);
    for (int i = 0; i < 4; i++) {
        if (rc == 0) compare(&k[i]);
        else free(k[i].lat), free(k[i].v), free(k[i].raw), hb_light_vae_free(k[i].m);
    }
    return tl_done();
}
