/* pipeline/model_folder: locating the parts of a model folder, and writing random-weight folders. */
#include "pipeline/model_folder.h"
#include "models/wan_dit.h"
#include "models/wan_vae.h"
#include "models/umt5.h"
#include "models/tae.h"
#include "models/light_vae.h"
#include "io/safetensors_writer.h"
#include "io/json_file.h"
#include <jansson.h>
#include <dirent.h>
#include <errno.h>
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

int hb_model_folder_scan_te(const char *dir, const char *te_dir, hb_model_folder *mf) {
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
        if (hb_model_folder_scan_te(sub, te_dir, mf)) return -1;
        snprintf(mf->dir, sizeof mf->dir, "%s", dir);
        return 0;
    }
    static const char *const dit_idx[] = {"diffusion_pytorch_model.safetensors.index.json", NULL};
    static const char *const dit_cfg[] = {"config.json", "transformer/config.json", NULL};
    char tmp[HB_MF_PATH];
    if (first_existing(mf->dit, sizeof mf->dit, dir, dit_idx, false)) {
        /* index file: wan_dit_open reads config.json beside it */
    } else if (first_existing(tmp, sizeof tmp, dir, dit_cfg, false)) {
        snprintf(mf->dit, sizeof mf->dit, "%s", dir);
    } else {
        return hb_error("%s: no diffusion transformer (config.json + diffusion_pytorch_model*.safetensors, or "
                        "transformer/)", dir);
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
        wan_dit *m = wan_dit_open(mf->dit, NULL);
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
    int bad = !text || wan_dit_config_parse(&cfg, text, cfg_path);
    free(text);
    if (bad) return NULL;
    return wan_dit_open(weights, &cfg);
}

/* ---------------------------------------------------------------- a SentencePiece model, written by hand */

typedef struct { uint8_t *p; size_t n, cap; bool oom; } pbw;
static void pb_put(pbw *b, const void *d, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 4096;
        while (c < b->n + n) c *= 2;
        uint8_t *q = realloc(b->p, c);
        if (!q) { b->oom = true; return; }
        b->p = q, b->cap = c;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void pb_varint(pbw *b, uint64_t v) {
    uint8_t t[10];
    int k = 0;
    do { t[k] = (uint8_t)(v & 0x7f); v >>= 7; if (v) t[k] |= 0x80; k++; } while (v);
    pb_put(b, t, (size_t)k);
}
static void pb_key(pbw *b, int field, int wt) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wt); }
static void pb_int(pbw *b, int field, int64_t v) { pb_key(b, field, 0); pb_varint(b, (uint64_t)v); }
static void pb_bytes(pbw *b, int field, const void *d, size_t n) { pb_key(b, field, 2); pb_varint(b, n); pb_put(b, d, n); }
static void pb_float(pbw *b, int field, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint8_t t[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    pb_key(b, field, 5);
    pb_put(b, t, 4);
}
#define SPM_MAX 1024
typedef struct { char s[SPM_MAX][24]; int n; } seen_set;
static _Thread_local seen_set *g_seen;
/* Adds a piece unless it is already in the model; returns 1 when added. */
static int add_piece(pbw *m, const char *s, float score, int type) {
    if (g_seen) {
        for (int i = 0; i < g_seen->n; i++)
            if (!strcmp(g_seen->s[i], s)) return 0;
        if (g_seen->n < SPM_MAX && strlen(s) < 24) snprintf(g_seen->s[g_seen->n++], 24, "%s", s);
    }
    pbw p = {0};
    pb_bytes(&p, 1, s, strlen(s));
    pb_float(&p, 2, score);
    pb_int(&p, 3, type);
    if (p.oom) m->oom = true;
    else pb_bytes(m, 1, p.p, p.n);
    free(p.p);
    return 1;
}

#define WS "\xe2\x96\x81" /* U+2581, SentencePiece's escaped space */

int hb_write_tiny_spiece(const char *path) {
    static const char *const words[] = {
        "the", "a", "an", "and", "of", "in", "on", "at", "with", "to", "is", "are", "cat", "dog", "man", "woman",
        "girl", "boy", "city", "street", "car", "sky", "sun", "sea", "ocean", "beach", "forest", "tree", "river",
        "mountain", "snow", "rain", "night", "day", "light", "red", "blue", "green", "white", "black", "golden",
        "walking", "running", "flying", "dancing", "playing", "sitting", "camera", "slow", "motion", "shot",
        "close", "up", "view", "video", "scene", "cinematic", "beautiful", "small", "big", "old", "young",
        "water", "fire", "bird", "fish", "horse", "robot", "space", "astronaut", "moon", "stars", "cloud",
        "clouds", "wind", "waves", "people", "crowd", "house", "room", "table", "window", "road", "bridge",
        "train", "boat", "flower", "flowers", "grass", "field", "over", "under", "through", "from", "his",
        "her", "their", "its", "by", "as", "while", "very", "high", "quality", "detailed", "realistic", NULL};
    static const char *const frags[] = {
        "th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed", "is",
        "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le", "ve", "co", "me", "de",
        "hi", "ri", "ro", "ic", "ne", "ea", "ra", "ce", "ing", "ion", "ly", "ment", "ness", "est", NULL};
    pbw m = {0};
    seen_set *seen = calloc(1, sizeof *seen);
    if (!seen) return hb_error("out of memory");
    g_seen = seen;
    add_piece(&m, "<pad>", 0.0f, 3);
    add_piece(&m, "</s>", 0.0f, 3);
    add_piece(&m, "<unk>", 0.0f, 2);
    for (int b = 0; b < 256; b++) {
        char nm[8];
        snprintf(nm, sizeof nm, "<0x%02X>", b);
        add_piece(&m, nm, 0.0f, 6);
    }
    int n = 3 + 256;
    /* Scores: longer pieces score higher (Viterbi prefers them); ties broken by order. */
    float base = -12.0f;
    char buf[64];
    n += add_piece(&m, WS, base + 1.0f, 1);
    const char *single = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()\"";
    for (const char *c = single; *c; c++) {
        snprintf(buf, sizeof buf, "%c", *c);
        n += add_piece(&m, buf, base + 0.5f - 0.001f * (float)(c - single), 1);
    }
    for (char c = 'a'; c <= 'z'; c++) {
        snprintf(buf, sizeof buf, WS "%c", c);
        n += add_piece(&m, buf, base + 2.0f - 0.001f * (float)(c - 'a'), 1);
    }
    for (int i = 0; frags[i]; i++)
        n += add_piece(&m, frags[i], base + 1.5f * (float)strlen(frags[i]) - 0.001f * (float)i, 1);
    for (int i = 0; words[i]; i++) {
        snprintf(buf, sizeof buf, WS "%s", words[i]);
        n += add_piece(&m, buf, base + 2.0f * (float)strlen(words[i]) + 2.0f - 0.001f * (float)i, 1);
    }
    g_seen = NULL;
    free(seen);
    /* TrainerSpec: unigram, byte fallback, unk 2, no BOS, EOS 1, pad 0 (the umT5 ids). */
    pbw t = {0};
    pb_int(&t, 3, 1);
    pb_int(&t, 35, 1);
    pb_int(&t, 40, 2);
    pb_int(&t, 41, -1);
    pb_int(&t, 42, 1);
    pb_int(&t, 43, 0);
    /* NormalizerSpec: identity (no charsmap), dummy prefix, runs of spaces kept (as umT5), spaces escaped. */
    pbw z = {0};
    pb_bytes(&z, 1, "identity", 8);
    pb_int(&z, 3, 1);
    pb_int(&z, 4, 0);
    pb_int(&z, 5, 1);
    if (!t.oom) pb_bytes(&m, 2, t.p, t.n);
    if (!z.oom) pb_bytes(&m, 3, z.p, z.n);
    int rc = -1;
    if (m.oom || t.oom || z.oom) hb_error("%s: out of memory", path);
    else if (hb_write_file_atomic(path, m.p, m.n) == 0) rc = n;
    free(m.p), free(t.p), free(z.p);
    return rc;
}

/* ---------------------------------------------------------------- random folders */

static int mkdir_p(const char *path) {
    char p[HB_MF_PATH];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) return hb_error("%s: cannot create folder: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return hb_error("%s: cannot create folder: %s", p, strerror(errno));
    return 0;
}

/* A writer filled `sub` with PREFIX-00001-of-00001.safetensors + its index: move the one shard to `final`
 * and remove the folder. */
static int single_file_from(const char *sub, const char *final) {
    DIR *d = opendir(sub);
    if (!d) return hb_error("%s: cannot read folder: %s", sub, strerror(errno));
    char shard[HB_MF_PATH] = "";
    int nshards = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L > 12 && !strcmp(e->d_name + L - 12, ".safetensors")) {
            nshards++;
            snprintf(shard, sizeof shard, "%s/%s", sub, e->d_name);
        }
    }
    closedir(d);
    if (nshards != 1) return hb_error("%s: expected one shard, found %d", sub, nshards);
    if (rename(shard, final) != 0) return hb_error("%s: cannot move into place: %s", final, strerror(errno));
    hb_folder_stage_abort(sub);
    return 0;
}

/* ----- the Wan VAE: enumerate its weights through the loader, then write them streaming */
typedef struct {
    hb_st_tensor *t;
    int n, cap;
    void **bufs;
} vae_list;

static int vae_collect(void *user, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    vae_list *l = user;
    if (l->n == l->cap) {
        int c = l->cap ? l->cap * 2 : 256;
        hb_st_tensor *t = realloc(l->t, (size_t)c * sizeof *t);
        void **b = t ? realloc(l->bufs, (size_t)c * sizeof *b) : NULL;
        if (t) l->t = t;
        if (!t || !b) return hb_error("VAE random weights: out of memory");
        l->bufs = b, l->cap = c;
    }
    hb_st_tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i], n *= shape[i];
    size_t L = strlen(name);
    t->init = (L > 6 && !strcmp(name + L - 6, ".gamma")) ? 2 : ndim == 1 ? 1 : 0;
    /* The loader only records pointers (nothing is read at load): zero pages that are never touched. */
    l->bufs[l->n] = calloc((size_t)n, sizeof(float));
    if (!l->bufs[l->n]) return hb_error("VAE random weights: out of memory");
    *out = hb_tensor_make(HB_F32, ndim, shape, l->bufs[l->n]);
    l->n++;
    return 0;
}

static int vae_fill(void *user, int index, const hb_st_tensor *t, int64_t offset, int64_t n, float *dst) {
    uint64_t seed = *(const uint64_t *)user;
    if (t->init == 2) hb_normal_fill(dst, n, seed, (uint64_t)index, offset, 1.0f, 0.01f);
    else if (t->init == 1) hb_normal_fill(dst, n, seed, (uint64_t)index, offset, 0.0f, 0.01f);
    else {
        int64_t fan = 1;
        for (int i = 1; i < t->ndim; i++) fan *= t->shape[i];
        float sd = 1.0f / sqrtf((float)fan);
        if (strstr(t->name, "head.")) sd *= 0.5f;
        hb_normal_fill(dst, n, seed, (uint64_t)index, offset, 0.0f, sd);
    }
    return 0;
}

static int write_vae(const char *dir, const char *fname, const hb_wan_vae_config *c, uint64_t seed) {
    vae_list l = {0};
    int rc = -1;
    hb_wan_vae *m = hb_wan_vae_load_custom(c, vae_collect, &l);
    if (!m) goto done;
    hb_wan_vae_free(m);
    for (int i = 0; i < l.n; i++) free(l.bufs[i]), l.bufs[i] = NULL;
    char sub[HB_MF_PATH], final[HB_MF_PATH];
    snprintf(sub, sizeof sub, "%s/.vae-tmp", dir);
    snprintf(final, sizeof final, "%s/%s", dir, fname);
    if (mkdir_p(sub)) goto done;
    if (hb_safetensors_write_sharded(sub, "vae", l.t, l.n, HB_F32, INT64_MAX / 4, vae_fill, &seed)) {
        hb_folder_stage_abort(sub);
        goto done;
    }
    rc = single_file_from(sub, final);
done:
    for (int i = 0; i < l.n; i++) free(l.bufs[i]);
    free(l.bufs);
    free(l.t);
    return rc;
}

static int write_tae(const char *dir, const char *fname, int patch, int C, bool tiny, uint64_t seed) {
    char sub[HB_MF_PATH], final[HB_MF_PATH];
    snprintf(sub, sizeof sub, "%s/.tae-tmp", dir);
    snprintf(final, sizeof final, "%s/%s", dir, fname);
    if (mkdir_p(sub)) return -1;
    static const int dec_tiny[4] = {16, 8, 8, 8}, dec_full[4] = {256, 128, 64, 64};
    if (hb_tae_write_random(sub, patch, C, tiny ? 8 : 64, tiny ? dec_tiny : dec_full, HB_F32, seed)) {
        hb_folder_stage_abort(sub);
        return -1;
    }
    return single_file_from(sub, final);
}

int hb_model_folder_write_random(const char *dir, const hb_mkfolder_opts *o) {
    bool xt = !strcmp(o->arch, "hummingbird-xt");
    if (!xt && strcmp(o->arch, "hummingbird-xtx"))
        return hb_error("model folder: unknown arch '%s' (hummingbird-xt or hummingbird-xtx)", o->arch);
    char p[HB_MF_PATH];
    /* tokenizer first: its vocabulary sizes the text encoder */
    snprintf(p, sizeof p, "%s/google/umt5-xxl", dir);
    if (mkdir_p(p)) return -1;
    snprintf(p, sizeof p, "%s/google/umt5-xxl/spiece.model", dir);
    int vocab = hb_write_tiny_spiece(p);
    if (vocab < 0) return -1;
    /* text encoder */
    hb_umt5_config tc = hb_umt5_xxl_config();
    tc.vocab = vocab;
    if (o->tiny) tc.dim = 64, tc.dim_attn = 64, tc.dim_ffn = 128, tc.num_heads = 2, tc.num_layers = 2;
    if (o->text_layers > 0) tc.num_layers = o->text_layers;
    snprintf(p, sizeof p, "%s/text_encoder", dir);
    if (mkdir_p(p)) return -1;
    hb_log(HB_LOG_INFO, "text encoder: umT5 dim %lld, %d layers, vocab %d", (long long)tc.dim, tc.num_layers, vocab);
    if (hb_umt5_write_random(&tc, p, o->tiny ? HB_F32 : o->dtype, o->seed + 1, (int64_t)4 << 30)) return -1;
    /* DiT */
    wan_dit_config dc;
    if (wan_dit_config_preset(&dc, xt ? "wan2.2-ti2v-5b" : "wan2.1-1.3b")) return -1;
    if (o->tiny) {
        dc.dim = 128, dc.ffn_dim = 256, dc.num_heads = 2, dc.head_dim = 64, dc.num_layers = 2;
        dc.freq_dim = 64, dc.text_len = 32;
    }
    dc.text_dim = (int)tc.dim;
    if (o->dit_layers > 0) dc.num_layers = o->dit_layers;
    if (wan_dit_config_check(&dc, "hummingbird model folder")) return -1;
    hb_log(HB_LOG_INFO, "DiT: dim %d, %d layers, in/out %d, %.3f B parameters", dc.dim, dc.num_layers, dc.in_dim,
           (double)wan_dit_param_count(&dc) * 1e-9);
    if (wan_dit_write_random(&dc, dir, o->tiny ? HB_F32 : o->dtype, o->seed + 2, (int64_t)4 << 30)) return -1;
    /* VAE */
    hb_wan_vae_config vc;
    hb_wan_vae_config_default(&vc, xt ? HB_WAN_VAE_22 : HB_WAN_VAE_21);
    if (o->tiny) {
        if (xt) vc.dim = 4, vc.dec_dim = 8;
        else vc.dim = 8, vc.dec_dim = 8;
    }
    hb_log(HB_LOG_INFO, "VAE: Wan%s, dim %d, decoder dim %d, z %d", xt ? "2.2" : "2.1", vc.dim, vc.dec_dim, vc.z_dim);
    if (write_vae(dir, xt ? "Wan2.2_VAE.safetensors" : "Wan2.1_VAE.safetensors", &vc, o->seed + 3)) return -1;
    /* tiny decoder */
    if (write_tae(dir, xt ? "taew2_2.safetensors" : "taew2_1.safetensors", xt ? 2 : 1, vc.z_dim, o->tiny, o->seed + 4))
        return -1;
    /* light decoder (Wan2.2 family) */
    if (xt) {
        /* the release's layout: vae/wan22_v1_tiling_16_12/{config.json, diffusion_pytorch_model.safetensors} */
        hb_light_vae_config lc;
        hb_light_vae_config_default(&lc, o->tiny, false);
        snprintf(p, sizeof p, "%s/vae", dir);
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return hb_error("%s: cannot create folder: %s", p, strerror(errno));
        snprintf(p, sizeof p, "%s/vae/" HB_LIGHT_VAE_RELEASE_DIR, dir);
        if (hb_light_vae_write_random(p, &lc, o->seed + 5)) return -1;
    }
    /* settings */
    /* the family only: its defaults come from pipeline/settings.c */
    const char *js = xt ? "{\n  \"arch\": \"hummingbird-xt\",\n  \"random_weights\": true\n}\n"
                        : "{\n  \"arch\": \"hummingbird-xtx\",\n  \"random_weights\": true\n}\n";
    snprintf(p, sizeof p, "%s/hummingbird.json", dir);
    return hb_write_file_atomic(p, js, strlen(js));
}
