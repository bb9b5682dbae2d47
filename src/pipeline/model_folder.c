/* pipeline/model_folder: locating the parts of a model folder. */
#include "pipeline/model_folder.h"
#include "models/wan_dit.h"
#include "models/light_vae.h"
#include "io/json_file.h"
#include <jansson.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}
static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static bool first_existing(char *out, size_t cap, const char *dir, const char *const *names, bool dirs_ok) {
    for (int i = 0; names[i]; i++) {
        char p[HB_MF_PATH];
        int k = snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (k < 0 || (size_t)k >= sizeof p || (size_t)k >= cap) continue;
        if (is_file(p) || (dirs_ok && is_dir(p))) {
            memcpy(out, p, (size_t)k + 1);
            return true;
        }
    }
    return false;
}

/* The one *.gguf of dir (a community DiT file, config read off its tensors) into out: 1 found, 0 none, -1 several. */
static int single_gguf(const char *dir, char *out, size_t cap) {
    DIR *dd = opendir(dir);
    int n = 0;
    for (struct dirent *e; dd && (e = readdir(dd));) {
        size_t L = strlen(e->d_name);
        if (e->d_name[0] == '.' || L < 6 || strcmp(e->d_name + L - 5, ".gguf")) continue;
        char p[HB_MF_PATH];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)cap || !is_file(p)) continue;
        if (n++ == 0) snprintf(out, cap, "%s", p);
    }
    if (dd) closedir(dd);
    if (n > 1) return hb_error("%s: %d .gguf files and no config.json: keep one DiT file in the folder", dir, n);
    return n;
}

/* A folder with weight files of its own (vae/ may hold only the light decoder's subfolders). */
static bool holds_weights(const char *d) {
    DIR *dd = opendir(d);
    bool any = false;
    for (struct dirent *e; dd && !any && (e = readdir(dd));) {
        size_t n = strlen(e->d_name);
        any = (n > 12 && !strcmp(e->d_name + n - 12, ".safetensors")) || (n > 4 && !strcmp(e->d_name + n - 4, ".pth")) ||
              (n > 3 && !strcmp(e->d_name + n - 3, ".pt")) || (n > 11 && !strcmp(e->d_name + n - 11, ".index.json"));
    }
    if (dd) closedir(dd);
    return any;
}

/* A light decoder folder: config.json with the release's decoder keys beside diffusion_pytorch_model.safetensors. */
/* 1 when d is one, 0 when not, -1 + message when it has the weights but its config.json is broken (a damaged
 * light decoder must not silently turn the folder into another model family). */
static int light_folder(const char *d) {
    char p[HB_MF_PATH];
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", d);
    if (!is_file(p)) return 0;
    snprintf(p, sizeof p, "%s/config.json", d);
    if (!is_file(p)) return 0;
    json_t *o = hb_json_load_file(p, 0);
    if (!o) return hb_error_prefix("light decoder: ");
    int ok = json_object_get(o, "decoder_block_out_channels") != NULL;
    json_decref(o);
    return ok;
}

/* The light decoder: vae/<name>/ (the release's vae/wan22_v1_tiling_16_12/ first, else the first by name),
 * light_vae/, or light_vae.safetensors (config in light_vae.json). "" when absent; -1 + message when one is
 * broken. */
static int find_light(const char *dir, char *out, size_t cap) {
    char p[HB_MF_PATH], best[HB_MF_PATH] = "";
    out[0] = 0;
    snprintf(p, sizeof p, "%s/vae/" HB_LIGHT_VAE_RELEASE_DIR, dir);
    int k = light_folder(p);
    if (k) return k < 0 ? -1 : (snprintf(out, cap, "%s", p), 0);
    snprintf(p, sizeof p, "%s/vae", dir);
    DIR *dd = is_dir(p) ? opendir(p) : NULL;
    for (struct dirent *e; dd && (e = readdir(dd));) {
        char q[HB_MF_PATH];
        if (e->d_name[0] == '.' || (best[0] && strcmp(e->d_name, strrchr(best, '/') + 1) >= 0)) continue;
        if (snprintf(q, sizeof q, "%s/%s", p, e->d_name) >= (int)sizeof q) continue;
        if ((k = light_folder(q)) < 0) break;
        if (k) snprintf(best, sizeof best, "%s", q);
    }
    if (dd) closedir(dd);
    if (k < 0) return -1;
    if (best[0]) return snprintf(out, cap, "%s", best), 0;
    snprintf(p, sizeof p, "%s/light_vae", dir);
    if ((k = light_folder(p))) return k < 0 ? -1 : (snprintf(out, cap, "%s", p), 0);
    snprintf(p, sizeof p, "%s/light_vae.safetensors", dir);
    if (is_file(p)) snprintf(out, cap, "%s", p);
    return 0;
}

static int read_settings(hb_model_folder *mf, const char *path) {
    json_t *root = hb_json_load_file(path, 0);
    if (!root) return -1;
    int rc = -1;
    if (!json_is_object(root)) { hb_error("%s: expected a JSON object", path); goto done; }
    mf->has_settings = true;
    json_t *v;
    if ((v = json_object_get(root, "arch")) && json_is_string(v))
        snprintf(mf->arch, sizeof mf->arch, "%s", json_string_value(v));
    if ((v = json_object_get(root, "steps_list"))) {
        if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > HB_MF_MAX_STEPS) {
            hb_error("%s: \"steps_list\" must be an array of 1..%d timesteps", path, HB_MF_MAX_STEPS);
            goto done;
        }
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (!json_is_number(x) || json_number_value(x) < 0 || json_number_value(x) > 1000 ||
                json_number_value(x) != floor(json_number_value(x))) {
                hb_error("%s: \"steps_list\"[%zu] is not an integer timestep in [0, 1000]", path, i);
                goto done;
            }
            mf->steps_list[i] = (int64_t)json_number_value(x);
        }
        mf->nsteps = (int)json_array_size(v);
    }
    /* shift: the flow-matching shift (released models: 1 to 17); fps: the video's frame rate */
    if (hb_json_real(root, "shift", 1e-6, 1e6, &mf->shift, path) != 0) goto done;
    if (hb_json_real(root, "fps", 1e-3, 1000, &mf->fps, path) != 0) goto done;
    if ((v = json_object_get(root, "sampler"))) {
        const char *s = json_string_value(v);
        if (!s || (strcmp(s, "xt") && strcmp(s, "unipc") && strcmp(s, "euler"))) {
            hb_error("%s: \"sampler\" must be \"xt\", \"unipc\" or \"euler\"", path);
            goto done;
        }
        snprintf(mf->sampler, sizeof mf->sampler, "%s", s);
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

static const char *const k_te_files[] = {"models_t5_umt5-xxl-enc-bf16.pth", "models_t5_umt5-xxl-enc-bf16.safetensors",
                                         "text_encoder", NULL};

/* The text encoder and tokenizer of folder te_dir. */
static int scan_text_encoder(const char *te_dir, hb_model_folder *mf) {
    if (!is_dir(te_dir)) return hb_error("%s: text encoder folder does not exist", te_dir);
    if (!first_existing(mf->text_encoder, sizeof mf->text_encoder, te_dir, k_te_files, true))
        return hb_error("%s: no text encoder (models_t5_umt5-xxl-enc-bf16.pth or text_encoder/)", te_dir);
    snprintf(mf->tokenizer, sizeof mf->tokenizer, "%s", te_dir);
    return 0;
}

/* The Hummingbird-XTX release root (see model_folder.h): 1 when dir is one (parts resolved), 0 when it is
 * not, -1 + message when it is one with a part missing. */
static int scan_release_xtx(const char *dir, const char *te_dir, hb_model_folder *mf) {
    static const struct { const char *pt, *base; } k_layouts[] = {
        {"checkpoints/wan21_model.pt", "wan_models/Wan2.1-T2V-1.3B"},
        {"checkpoint/wan_22_vsink1_5B_seq_880/model.pt", "wan_models/Wan2.2-TI2V-5B"},
    };
    char pt[HB_MF_PATH], base[HB_MF_PATH], te[HB_MF_PATH], cfg[HB_MF_PATH + 16];
    for (size_t i = 0; i < sizeof k_layouts / sizeof k_layouts[0]; i++) {
        snprintf(pt, sizeof pt, "%s/%s", dir, k_layouts[i].pt);
        snprintf(base, sizeof base, "%s/%s", dir, k_layouts[i].base);
        if (!is_file(pt) || !is_dir(base)) continue;
        snprintf(cfg, sizeof cfg, "%s/config.json", base);
        if (!is_file(cfg)) return hb_error("%s: no config.json (the DiT architecture of %s)", base, k_layouts[i].pt);
        snprintf(mf->dit, sizeof mf->dit, "%s", base);
        snprintf(mf->dit_weights, sizeof mf->dit_weights, "%s", pt);
        static const char *const vae[] = {"Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors", "Wan2.2_VAE.pth",
                                          "Wan2.2_VAE.safetensors", NULL};
        if (!first_existing(mf->vae, sizeof mf->vae, base, vae, false))
            return hb_error("%s: no VAE (Wan2.1_VAE.pth or Wan2.2_VAE.pth)", base);
        snprintf(te, sizeof te, "%s/wan_models/Wan2.2-TI2V-5B", dir);
        if (scan_text_encoder(te_dir ? te_dir : te, mf)) return -1;
        snprintf(mf->arch, sizeof mf->arch, "hummingbird-xtx");
        static const char *const tae[] = {"taew2_1.safetensors", "taew2_1.pth", "taew2_2.safetensors", "taew2_2.pth", NULL};
        if (!first_existing(mf->tae, sizeof mf->tae, dir, tae, false) &&
            !first_existing(mf->tae, sizeof mf->tae, base, tae, false))
            mf->tae[0] = 0;
        return 1;
    }
    return 0;
}

int hb_model_folder_scan(const char *dir, hb_model_folder *mf) { return hb_model_folder_scan_te(dir, NULL, mf); }

static int scan_folder(const char *dir, const char *te_dir, const char *dit, hb_model_folder *mf);

int hb_model_folder_scan_te(const char *dir, const char *te_dir, hb_model_folder *mf) {
    return scan_folder(dir, te_dir, NULL, mf);
}

int hb_model_folder_scan_dit(const char *dir, const char *dit, hb_model_folder *mf) {
    if (!dit || !*dit) return scan_folder(dir, NULL, NULL, mf);
    struct stat st;
    if (stat(dit, &st) != 0) return hb_error("%s: the DiT does not exist", dit);
    if (strlen(dit) >= HB_MF_PATH) return hb_error("DiT path too long");
    if (scan_folder(dir, NULL, dit, mf)) return -1;
    snprintf(mf->dit, sizeof mf->dit, "%s", dit);
    mf->dit_weights[0] = 0;
    return 0;
}

static int scan_folder(const char *dir, const char *te_dir, const char *dit, hb_model_folder *mf) {
    memset(mf, 0, sizeof *mf);
    if (!dir || !*dir) return hb_error("model folder: empty path");
    if (strlen(dir) > HB_MF_PATH - 300) return hb_error("model folder: path too long");
    if (!is_dir(dir)) {
        if (access(dir, F_OK) != 0) return hb_error("%s: model folder does not exist", dir);
        return hb_error("%s: not a folder (expected a model folder: config.json, DiT shards, VAE, text encoder)", dir);
    }
    if (te_dir && strlen(te_dir) > HB_MF_PATH - 300) return hb_error("text encoder folder: path too long");
    snprintf(mf->dir, sizeof mf->dir, "%s", dir);
    snprintf(mf->tokenizer, sizeof mf->tokenizer, "%s", dir);
    int rel = scan_release_xtx(dir, te_dir, mf);
    if (rel) return rel < 0 ? -1 : 0;
    /* the Hummingbird-XT release's models/ folder: hm_2.2_5B/ beside vae/<light decoder>/ */
    char sub[HB_MF_PATH];
    snprintf(sub, sizeof sub, "%s/" HB_XT_RELEASE_DIT_DIR "/config.json", dir);
    if (is_file(sub)) {
        snprintf(sub, sizeof sub, "%s/" HB_XT_RELEASE_DIT_DIR, dir);
        if (scan_folder(sub, te_dir, dit, mf)) return -1;
        snprintf(mf->dir, sizeof mf->dir, "%s", dir);
        return 0;
    }
    static const char *const dit_idx[] = {"diffusion_pytorch_model.safetensors.index.json", NULL};
    static const char *const dit_cfg[] = {"config.json", "transformer/config.json", NULL};
    char tmp[HB_MF_PATH];
    if (first_existing(mf->dit, sizeof mf->dit, dir, dit_idx, false)) {
        /* index file: hb_wan_dit_open reads config.json beside it */
    } else if (first_existing(tmp, sizeof tmp, dir, dit_cfg, false)) {
        snprintf(mf->dit, sizeof mf->dit, "%s", dir);
    } else if (!dit) {
        int g = single_gguf(dir, mf->dit, sizeof mf->dit); /* hb_wan_dit_open infers its config */
        if (g < 0) return -1;
        if (g == 0)
            return hb_error("%s: no diffusion transformer (config.json + diffusion_pytorch_model*.safetensors, "
                            "transformer/, or one .gguf)", dir);
    }
    static const char *const vae[] = {"Wan2.2_VAE.safetensors", "Wan2.2_VAE.pth", "Wan2.1_VAE.safetensors",
                                      "Wan2.1_VAE.pth", "vae", NULL};
    if (!first_existing(mf->vae, sizeof mf->vae, dir, vae, true) || (is_dir(mf->vae) && !holds_weights(mf->vae)))
        return hb_error("%s: no VAE (Wan2.2_VAE.safetensors, Wan2.2_VAE.pth, Wan2.1_VAE.* or vae/)", dir);
    if (te_dir) {
        if (scan_text_encoder(te_dir, mf)) return -1;
    } else if (!first_existing(mf->text_encoder, sizeof mf->text_encoder, dir, k_te_files, true)) {
        return hb_error("%s: no text encoder (models_t5_umt5-xxl-enc-bf16.pth or text_encoder/)", dir);
    }
    static const char *const tae[] = {"taew2_2.safetensors", "taew2_2.pth", "taew2_1.safetensors", "taew2_1.pth",
                                      "tae", NULL};
    if (!first_existing(mf->tae, sizeof mf->tae, dir, tae, true)) mf->tae[0] = 0;
    if (find_light(dir, mf->light, sizeof mf->light)) return -1;
    if (!mf->light[0]) { /* hm_2.2_5B/ itself: the release keeps the light decoder in ../vae/ */
        snprintf(sub, sizeof sub, "%s/..", dir);
        if (find_light(sub, mf->light, sizeof mf->light)) return -1;
    }
    static const char *const st[] = {"hummingbird.json", NULL};
    if (first_existing(tmp, sizeof tmp, dir, st, false) && read_settings(mf, tmp)) return -1;
    return 0;
}

wan_dit *hb_model_folder_open_dit(const hb_model_folder *mf, const char *weights) {
    if (!weights) weights = mf->dit_weights;
    if (!*weights) {
        wan_dit *m = hb_wan_dit_open(mf->dit, NULL);
        if (!m) hb_error_prefix("%s: ", mf->dir);
        return m;
    }
    char cfg_path[HB_MF_PATH + 32];
    size_t L = strlen(mf->dit);
    const char *slash = strrchr(mf->dit, '/');
    if (L > 5 && !strcmp(mf->dit + L - 5, ".json") && slash) /* an index file: config.json beside it */
        snprintf(cfg_path, sizeof cfg_path, "%.*s/config.json", (int)(slash - mf->dit), mf->dit);
    else
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", mf->dit);
    char *text = hb_read_text_file(cfg_path, HB_JSON_MAX_FILE, NULL);
    wan_dit_config cfg;
    int bad = !text || hb_wan_dit_config_parse(&cfg, text, cfg_path);
    free(text);
    if (bad) return NULL;
    return hb_wan_dit_open(weights, &cfg);
}

size_t hb_model_folder_weight_bytes(const char *path) {
    struct stat st;
    if (!path || !*path || stat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return (size_t)st.st_size;
    size_t n = 0;
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *x = strrchr(e->d_name, '.');
        char p[HB_MF_PATH + 300];
        if (!x || (strcmp(x, ".safetensors") && strcmp(x, ".pth") && strcmp(x, ".pt") && strcmp(x, ".gguf"))) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) n += (size_t)st.st_size;
    }
    if (d) closedir(d);
    return n;
}
