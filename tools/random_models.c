/* Random-weight models for hb mkmodel, the tests and the benchmarks: the DiT, the text encoder, the Wan VAE and
 * whole model folders (random_models.h), written streaming through io/safetensors_writer. */
#include "random_models.h"
#include "pipeline/model_folder.h"
#include "models/wan_vae.h"
#include "models/tae.h"
#include "models/light_vae.h"
#include "io/safetensors_writer.h"
#include "io/checkpoint.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the DiT */

typedef struct { hb_st_tensor *t; int n, cap; } tlist;

static int list_fn(void *user, const char *name, int ndim, const int64_t *shape, wan_init_kind init) {
    tlist *l = user;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        hb_st_tensor *t = realloc(l->t, sizeof *t * (size_t)cap);
        if (!t) return hb_error("out of memory");
        l->t = t; l->cap = cap;
    }
    hb_st_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->init = (int)init;
    return 0;
}

typedef struct { const wan_dit_config *c; uint64_t seed; } fill_user;

static int wan_fill(void *user, int index, const hb_st_tensor *t, int64_t offset, int64_t n, float *dst) {
    const fill_user *u = user;
    float mean = 0, std = 0.1f;
    switch ((wan_init_kind)t->init) {
    case WAN_INIT_LINEAR: {
        int64_t fan_in = 1;
        for (int i = 1; i < t->ndim; i++) fan_in *= t->shape[i];
        std = (float)(1.0 / sqrt((double)fan_in));
        break;
    }
    case WAN_INIT_BIAS: break;
    case WAN_INIT_NORM: mean = 1.0f; break;
    case WAN_INIT_MOD: std = (float)(1.0 / sqrt((double)u->c->dim)); break;
    }
    hb_normal_fill(dst, n, u->seed, (uint64_t)index + 1, offset, mean, std);
    return 0;
}

int hb_wan_dit_write_random(const wan_dit_config *c, const char *dir, hb_dtype dtype, uint64_t seed, int64_t shard_bytes) {
    if (hb_wan_dit_config_check(c, "random model config")) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *js = hb_wan_dit_config_to_json(c);
    if (!js) return hb_error("%s: cannot build the config", path);
    int rc = hb_write_file_atomic(path, js, strlen(js));
    free(js);
    if (rc) return -1;
    tlist l = {0};
    if (hb_wan_dit_enumerate(c, list_fn, &l) == 0) {
        fill_user u = {c, seed};
        rc = hb_safetensors_write_sharded(dir, "diffusion_pytorch_model", l.t, l.n, dtype, shard_bytes, wan_fill, &u);
    } else rc = -1;
    free(l.t);
    return rc;
}

/* ---------------------------------------------------------------- the text encoder */

typedef struct { const hb_umt5_config *c; uint64_t seed; } umt5_fill_user;
enum { INIT_EMB = 0, INIT_NORM, INIT_LINEAR, INIT_POS };

static int umt5_fill(void *user, int index, const hb_st_tensor *t, int64_t offset, int64_t n, float *dst) {
    const umt5_fill_user *u = user;
    float mean = 0, std = 1;
    if (t->init == INIT_NORM) { mean = 1; std = 0.1f; }
    else if (t->init == INIT_LINEAR) std = (float)(1.0 / sqrt((double)t->shape[1]));
    else if (t->init == INIT_POS) std = 0.5f;
    hb_normal_fill(dst, n, u->seed, (uint64_t)index + 1, offset, mean, std);
    return 0;
}

int hb_umt5_write_random(const hb_umt5_config *c, const char *dir, hb_dtype dtype, uint64_t seed, int64_t shard_bytes) {
    if (c->num_layers < 1 || c->num_heads < 1 || c->dim_attn % c->num_heads || c->num_buckets < 4 || c->dim < 1 ||
        c->vocab < 1 || c->dim_ffn < 1)
        return hb_error("%s: invalid umT5 config for random weights", dir);
    char path[1100];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path) return hb_error("%s: path too long", dir);
    char js[1024];
    int len = snprintf(js, sizeof js,
                       "{\n  \"architectures\": [\"UMT5EncoderModel\"],\n  \"model_type\": \"umt5\",\n"
                       "  \"d_model\": %lld,\n  \"d_kv\": %lld,\n  \"d_ff\": %lld,\n  \"num_heads\": %d,\n"
                       "  \"num_layers\": %d,\n  \"vocab_size\": %lld,\n  \"relative_attention_num_buckets\": %d,\n"
                       "  \"relative_attention_max_distance\": %d,\n  \"layer_norm_epsilon\": %g,\n"
                       "  \"feed_forward_proj\": \"gated-gelu\"\n}\n",
                       (long long)c->dim, (long long)(c->dim_attn / c->num_heads), (long long)c->dim_ffn, c->num_heads,
                       c->num_layers, (long long)c->vocab, c->num_buckets, c->max_dist, (double)c->eps);
    if (len < 0 || len >= (int)sizeof js || hb_write_file_atomic(path, js, (size_t)len) != 0) return -1;
    int n = 2 + 10 * c->num_layers, k = 0;
    hb_st_tensor *t = hb_calloc((size_t)n * sizeof *t, "umt5 tensor list");
    if (!t) return -1;
#define T2(nm, a, b, in) do { snprintf(t[k].name, sizeof t[k].name, "%s", nm); t[k].ndim = (b) ? 2 : 1; \
        t[k].shape[0] = a; t[k].shape[1] = b; t[k].init = in; k++; } while (0)
    T2("token_embedding.weight", c->vocab, c->dim, INIT_EMB);
    for (int l = 0; l < c->num_layers; l++) {
        char nm[128];
#define TL(suf, a, b, in) do { snprintf(nm, sizeof nm, "blocks.%d.%s", l, suf); T2(nm, a, b, in); } while (0)
        TL("norm1.weight", c->dim, 0, INIT_NORM);
        TL("attn.q.weight", c->dim_attn, c->dim, INIT_LINEAR);
        TL("attn.k.weight", c->dim_attn, c->dim, INIT_LINEAR);
        TL("attn.v.weight", c->dim_attn, c->dim, INIT_LINEAR);
        TL("attn.o.weight", c->dim, c->dim_attn, INIT_LINEAR);
        TL("norm2.weight", c->dim, 0, INIT_NORM);
        TL("ffn.gate.0.weight", c->dim_ffn, c->dim, INIT_LINEAR);
        TL("ffn.fc1.weight", c->dim_ffn, c->dim, INIT_LINEAR);
        TL("ffn.fc2.weight", c->dim, c->dim_ffn, INIT_LINEAR);
        TL("pos_embedding.embedding.weight", c->num_buckets, c->num_heads, INIT_POS);
#undef TL
    }
    T2("norm.weight", c->dim, 0, INIT_NORM);
#undef T2
    umt5_fill_user u = {c, seed};
    int rc = hb_safetensors_write_sharded(dir, "model", t, k, dtype, shard_bytes, umt5_fill, &u);
    hb_free(t);
    return rc;
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
    if (hb_wan_dit_config_preset(&dc, xt ? "wan2.2-ti2v-5b" : "wan2.1-1.3b")) return -1;
    if (o->tiny) {
        dc.dim = 128, dc.ffn_dim = 256, dc.num_heads = 2, dc.head_dim = 64, dc.num_layers = 2;
        dc.freq_dim = 64, dc.text_len = 32;
    }
    dc.text_dim = (int)tc.dim;
    if (o->dit_layers > 0) dc.num_layers = o->dit_layers;
    if (hb_wan_dit_config_check(&dc, "hummingbird model folder")) return -1;
    hb_log(HB_LOG_INFO, "DiT: dim %d, %d layers, in/out %d, %.3f B parameters", dc.dim, dc.num_layers, dc.in_dim,
           (double)hb_wan_dit_param_count(&dc) * 1e-9);
    if (hb_wan_dit_write_random(&dc, dir, o->tiny ? HB_F32 : o->dtype, o->seed + 2, (int64_t)4 << 30)) return -1;
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

/* ---------------------------------------------------------------- TAEHV and the light decoder */

static int tae_fill(void *user, int index, const hb_st_tensor *t, int64_t offset, int64_t n, float *dst) {
    uint64_t seed = *(const uint64_t *)user;
    int64_t fan_in = t->ndim == 4 ? t->shape[1] * t->shape[2] * t->shape[3] : 1;
    bool bias = t->init == HB_TAE_INIT_BIAS || t->init == HB_TAE_INIT_BIAS_OUT;
    float std = bias ? 0.05f : 1.2f / sqrtf((float)fan_in);
    if (t->init == HB_TAE_INIT_WEIGHT_OUT) std *= 0.1f;
    hb_normal_fill(dst, n, seed, (uint64_t)index, offset, t->init == HB_TAE_INIT_BIAS_OUT ? 0.5f : 0.0f, std);
    return 0;
}

int hb_tae_write_random(const char *dir, int patch, int latent_channels, int enc_width, const int dec_widths[4],
                        hb_dtype dtype, uint64_t seed) {
    hb_st_tensor ts[HB_TAE_MAX_TENSORS];
    int n = hb_tae_weight_list(patch, latent_channels, enc_width, dec_widths, ts, HB_TAE_MAX_TENSORS);
    if (n < 0) return -1;
    return hb_safetensors_write_sharded(dir, "taehv", ts, n, dtype, (int64_t)1 << 30, tae_fill, &seed);
}

typedef struct {
    int n, cap;
    char **names;
    hb_tensor *ts;
} tensor_list;

static int collect_tensor(void *user, const char *name, const hb_tensor *t) {
    tensor_list *l = user;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **nn = realloc(l->names, sizeof *nn * (size_t)cap);
        if (nn) l->names = nn;
        hb_tensor *nt = nn ? realloc(l->ts, sizeof *nt * (size_t)cap) : NULL;
        if (!nt) return hb_error("light_vae: out of memory");
        l->ts = nt, l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(name))) return hb_error("light_vae: out of memory");
    l->ts[l->n++] = *t;
    return 0;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int hb_light_vae_write_random(const char *path, const hb_light_vae_config *cfg, uint64_t seed) {
    hb_light_vae_config dc;
    if (!cfg) hb_light_vae_config_default(&dc, false, false), cfg = &dc;
    if (hb_light_vae_config_check(cfg, "light_vae config")) return -1;
    char cp[4096], wp[4096];
    struct stat st;
    if (ends_with(path, ".safetensors")) { /* a file's config goes to X.json (config.json may be another model's) */
        snprintf(wp, sizeof wp, "%s", path);
        snprintf(cp, sizeof cp, "%.*s.json", (int)(strlen(path) - 12), path);
    } else {
        if ((stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) && mkdir(path, 0755) != 0)
            return hb_error("%s: cannot create folder: %s", path, strerror(errno));
        snprintf(cp, sizeof cp, "%s/config.json", path);
        snprintf(wp, sizeof wp, "%s/diffusion_pytorch_model.safetensors", path);
    }
    hb_light_vae *m = hb_light_vae_create_random(cfg, seed);
    char *js = m ? hb_light_vae_config_to_json(cfg) : NULL;
    tensor_list l = {0};
    int rc = js ? hb_light_vae_for_each_tensor(m, collect_tensor, &l) : -1;
    const char *meta[] = {"format", "pt", NULL};
    if (!rc) rc = hb_safetensors_write(wp, l.n, (const char *const *)l.names, l.ts, meta);
    if (!rc) rc = hb_write_file_atomic(cp, js, strlen(js));
    for (int i = 0; i < l.n; i++) free(l.names[i]);
    free(l.names), free(l.ts), free(js);
    hb_light_vae_free(m);
    return rc;
}
