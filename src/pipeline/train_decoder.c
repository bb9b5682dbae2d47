/* hb train-decoder (pipeline/train_decoder.h): data preparation with the frozen Wan2.2 VAE, the training loop
 * over models/light_vae_train, checkpoints, evaluation, the CSV log and the loss plot. Runs on the calling
 * thread's backend (hb train-decoder -d): clips, latents and teacher videos are host buffers, copied to and from
 * the backend's memory space around the model calls. */
#include "pipeline/train_decoder.h"
#include "io/checkpoint.h"
#include "io/image.h"
#include "io/json_file.h"
#include "io/metrics.h"
#include "io/plot.h"
#include "io/video.h"
#include "models/light_vae_train.h"
#include "models/lpips.h"
#include "models/wan_vae.h"
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *path;
    char *cache;            /* its cache file (the teacher features are mapped from it per micro-batch) */
    float *latent, *target; /* [z, t, h, w], teacher video [3, T, H, W] in [-1, 1] (host) */
    float *latent_dev;      /* the latent in the backend's memory space */
    int64_t t, h, w, T, H, W;
} tclip;

typedef struct {
    const hb_train_opts *o;
    hb_wan_vae *teacher;
    hb_checkpoint *teacher_ck;
    hb_lvt *m;
    hb_lpips *lpips;    /* --lpips: the perceptual term's network, NULL without */
    double step_lpips;  /* the last step's mean LPIPS term */
    tclip *clips;
    int nclips, ntrain;
    int nfeat, feat_block[HB_LVT_MAX_HEADS]; /* feature blocks (0 = mid_block, 1 + i = up_block_i), head order */
    char path[4096];  /* scratch for OUT/... names */
} trun;

void hb_train_opts_default(hb_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->frames = 17, o->size = 256, o->steps = 1000, o->batch = 1, o->accum = 1, o->save_every = 100, o->holdout = 1;
    o->lr = 1e-4, o->weight_decay = 1e-4, o->beta1 = 0.9, o->beta2 = 0.95, o->eps = 1e-15, o->ema = 0.999f;
    o->feature_blocks = "0,1,2", o->feature_weight = 1.0, o->lpips_weight = 1.0;
}

static const char *out_path(trun *r, const char *name) {
    snprintf(r->path, sizeof r->path, "%s/%s", r->o->out, name);
    return r->path;
}

static int make_dir(const char *p) {
    if (mkdir(p, 0755) == 0 || errno == EEXIST) return 0;
    return hb_error("%s: cannot create folder: %s", p, strerror(errno));
}

/* n floats of host memory copied into the backend's memory space */
static float *dev_copy(const float *h, int64_t n, const char *what) {
    float *d = hb_dev_alloc(sizeof(float) * (size_t)n, what);
    if (d && hb_dev_upload(d, h, sizeof(float) * (size_t)n)) hb_dev_free(d), d = NULL;
    return d;
}

/* ---------------------------------------------------------------- data */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int add_path(char ***v, int *n, const char *p) {
    char **q = realloc(*v, sizeof(char *) * (size_t)(*n + 1));
    if (!q || !(q[*n] = strdup(p))) { free(q ? q : *v); *v = NULL; return hb_error("out of memory"); }
    *v = q, (*n)++;
    return 0;
}

/* a folder: its entries (files or frame folders) in name order; a .txt / .list file: one path per line */
static int list_data(const char *data, char ***out, int *n) {
    struct stat st;
    *out = NULL, *n = 0;
    if (stat(data, &st) != 0) return hb_error("%s: --data: %s", data, strerror(errno));
    size_t L = strlen(data);
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(data);
        if (!d) return hb_error("%s: cannot list: %s", data, strerror(errno));
        struct dirent *e;
        char p[4096];
        int rc = 0;
        while (!rc && (e = readdir(d)))
            if (e->d_name[0] != '.') snprintf(p, sizeof p, "%s/%s", data, e->d_name), rc = add_path(out, n, p);
        closedir(d);
        if (!rc && *n) qsort(*out, (size_t)*n, sizeof(char *), cmp_str);
        return rc;
    }
    if ((L > 4 && !strcmp(data + L - 4, ".txt")) || (L > 5 && !strcmp(data + L - 5, ".list"))) {
        char *txt = hb_read_text_file(data, HB_JSON_MAX_FILE, NULL);
        if (!txt) return -1;
        int rc = 0;
        for (char *line = strtok(txt, "\r\n"); line && !rc; line = strtok(NULL, "\r\n"))
            if (line[0] && line[0] != '#') rc = add_path(out, n, line);
        free(txt);
        return rc;
    }
    return add_path(out, n, data);
}

/* the clip's first frames (1 + 4k of them), cover-cropped to size x size, as [3, T, size, size] in [-1, 1] */
static float *read_clip(const char *path, int frames, int size, int64_t *T) {
    hb_video v;
    if (hb_video_read(path, frames, &v)) return NULL;
    int n = v.frames >= frames ? frames : 1 + 4 * ((v.frames - 1) / 4);
    float *x = n > 0 ? hb_malloc(sizeof(float) * (size_t)(3 * n) * (size_t)size * (size_t)size, "clip") : NULL;
    float *f = x ? hb_malloc(sizeof(float) * 3 * (size_t)size * (size_t)size, "frame") : NULL;
    int rc = f ? 0 : n > 0 ? -1 : hb_error("%s: no frames", path);
    int64_t HW = (int64_t)size * size;
    for (int i = 0; i < n && !rc; i++) {
        hb_image src = {v.width, v.height, v.rgb + (size_t)i * (size_t)v.width * (size_t)v.height * 3}, cr;
        if ((rc = hb_image_cover_crop(&src, size, size, &cr))) break;
        hb_image_to_chw(&cr, -1.0f, 1.0f, f);
        hb_image_free(&cr);
        for (int c = 0; c < 3; c++) memcpy(x + ((int64_t)c * n + i) * HW, f + c * HW, sizeof(float) * (size_t)HW);
    }
    hb_free(f);
    hb_video_free(&v);
    if (rc) { hb_free(x); return NULL; }
    *T = n;
    return x;
}

static uint64_t fnv(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* cache file name: the clip's and teacher's identity, the frame count and size */
static void cache_name(trun *r, const char *path, char *buf, size_t cap) {
    struct stat a = {0}, b = {0};
    stat(path, &a), stat(r->o->teacher, &b);
    char key[8192];
    snprintf(key, sizeof key, "%s|%lld|%lld|%s|%lld|%lld|%d|%d", path, (long long)a.st_size, (long long)a.st_mtime,
             r->o->teacher, (long long)b.st_size, (long long)b.st_mtime, r->o->frames, r->o->size);
    snprintf(buf, cap, "%s/cache/clip_%016" PRIx64 ".safetensors", r->o->out, fnv(0xcbf29ce484222325ull, key));
}

static float *cached_tensor(hb_checkpoint *ck, const char *name, int64_t s[4]) {
    hb_tensor t;
    if (hb_checkpoint_get(ck, name, &t) || t.dtype != HB_F32 || t.ndim != 4) return NULL;
    memcpy(s, t.shape, sizeof(int64_t) * 4);
    float *d = hb_malloc(sizeof(float) * (size_t)hb_tensor_numel(&t), name);
    if (d) memcpy(d, t.data, sizeof(float) * (size_t)hb_tensor_numel(&t));
    return d;
}

/* 0: latent, target and every feature block of the run are in the cache; 1: not (the clip is redone; a cache
 * that has the latent but lacks a feature block keeps c->latent, and only the teacher decode is redone) */
static int load_cached(trun *r, tclip *c, const char *file) {
    struct stat st;
    if (stat(file, &st) != 0) return 1;
    hb_checkpoint *ck = hb_checkpoint_open(file);
    if (!ck) return 1;
    int64_t a[4] = {0}, b[4] = {0};
    c->latent = cached_tensor(ck, "latent", a), c->target = cached_tensor(ck, "target", b);
    c->t = a[1], c->h = a[2], c->w = a[3], c->T = b[1], c->H = b[2], c->W = b[3];
    bool feats = true;
    for (int i = 0; i < r->nfeat && c->latent; i++) {
        char nm[32];
        int64_t s[4];
        hb_tensor t;
        snprintf(nm, sizeof nm, "feature.%d", r->feat_block[i]);
        hb_lvt_head_shape(r->m, i, c->t, c->h, c->w, s);
        feats = feats && !hb_checkpoint_get(ck, nm, &t) && t.dtype == HB_F32 && t.ndim == 4 && !memcmp(t.shape, s, sizeof s);
    }
    hb_checkpoint_close(ck);
    hb_clear_error();
    if (c->latent && c->target && feats) return 0;
    hb_free(c->target), c->target = NULL;
    return 1;
}

/* the clip's latent: from the cache, else read and encoded on the backend */
static int encode_clip(trun *r, tclip *c) {
    if (c->latent) return 0;
    float *video = read_clip(c->path, r->o->frames, r->o->size, &c->T);
    if (!video) return -1;
    int f = hb_wan_vae_spatial_factor(r->teacher), z = hb_wan_vae_get_config(r->teacher)->z_dim;
    c->H = c->W = r->o->size, c->t = 1 + (c->T - 1) / 4, c->h = c->H / f, c->w = c->W / f;
    size_t lb = sizeof(float) * (size_t)(z * c->t * c->h * c->w);
    c->latent = hb_malloc(lb, "latent");
    float *dv = dev_copy(video, 3 * c->T * c->H * c->W, "clip"), *dl = hb_dev_alloc(lb, "latent");
    int rc = c->latent && dv && dl ? 0 : -1;
    if (!rc) rc = hb_wan_vae_encode(r->teacher, dv, c->T, c->H, c->W, dl, NULL);
    if (!rc) rc = hb_dev_download(c->latent, dl, lb);
    hb_free(video), hb_dev_free(dv), hb_dev_free(dl);
    return rc;
}

/* the teacher's decode of the clip's latent on the backend, with the feature blocks tapped; host copies out */
static int teacher_decode(trun *r, tclip *c, float **feat, const size_t *feat_bytes) {
    size_t vb = sizeof(float) * (size_t)(3 * c->T * c->H * c->W);
    hb_wan_vae_opts vo = {0};
    float *dt = hb_dev_alloc(vb, "teacher video");
    int rc = dt ? 0 : -1;
    for (int i = 0; i < r->nfeat && !rc; i++)
        rc = (vo.dec_blocks[r->feat_block[i]] = hb_dev_alloc(feat_bytes[i], "teacher features")) ? 0 : -1;
    if (!rc) rc = hb_wan_vae_decode(r->teacher, c->latent_dev, c->t, c->h, c->w, dt, &vo);
    if (!rc) rc = hb_dev_download(c->target, dt, vb);
    for (int i = 0; i < r->nfeat && !rc; i++) rc = hb_dev_download(feat[i], vo.dec_blocks[r->feat_block[i]], feat_bytes[i]);
    hb_dev_free(dt);
    for (int b = 0; b < HB_WAN_VAE_MAX_BLOCKS; b++) hb_dev_free(vo.dec_blocks[b]);
    return rc;
}

/* encode + teacher decode with the feature blocks tapped (or the cache); the features go to the cache file only.
 * The latent is also kept in the backend's memory space (c->latent_dev) for the teacher decode and the training. */
static int prepare_clip(trun *r, tclip *c) {
    char file[4200];
    cache_name(r, c->path, file, sizeof file);
    if (!(c->cache = strdup(file))) return hb_error("out of memory");
    int cached = load_cached(r, c, file), z = hb_wan_vae_get_config(r->teacher)->z_dim, f = hb_wan_vae_spatial_factor(r->teacher);
    if (cached != 0 && encode_clip(r, c)) return -1;
    if (!(c->latent_dev = dev_copy(c->latent, (int64_t)z * c->t * c->h * c->w, "latent"))) return -1;
    if (cached == 0) return 0;
    c->T = 1 + 4 * (c->t - 1), c->H = c->h * f, c->W = c->w * f;
    const char *names[2 + HB_LVT_MAX_HEADS] = {"latent", "target"};
    char fnames[HB_LVT_MAX_HEADS][32];
    hb_tensor ts[2 + HB_LVT_MAX_HEADS];
    float *feat[HB_LVT_MAX_HEADS] = {0};
    size_t feat_bytes[HB_LVT_MAX_HEADS] = {0};
    c->target = hb_malloc(sizeof(float) * (size_t)(3 * c->T * c->H * c->W), "teacher video");
    int rc = c->target ? 0 : -1;
    for (int i = 0; i < r->nfeat && !rc; i++) {
        int64_t s[4], tb[4];
        hb_lvt_head_shape(r->m, i, c->t, c->h, c->w, s); /* = the teacher block's shape (pair_heads) */
        if (hb_wan_vae_block_shape(r->teacher, r->feat_block[i], c->t, c->h, c->w, tb) || memcmp(s, tb, sizeof s)) {
            rc = hb_error("%s: teacher block %d does not have the shape of head %d's output", c->path, r->feat_block[i], i);
            break;
        }
        feat_bytes[i] = sizeof(float) * (size_t)(s[0] * s[1] * s[2] * s[3]);
        feat[i] = hb_malloc(feat_bytes[i], "teacher features");
        snprintf(fnames[i], sizeof fnames[i], "feature.%d", r->feat_block[i]);
        names[2 + i] = fnames[i], ts[2 + i] = hb_tensor_4d(HB_F32, s[0], s[1], s[2], s[3], feat[i]);
        rc = feat[i] ? 0 : -1;
    }
    if (!rc) rc = teacher_decode(r, c, feat, feat_bytes);
    ts[0] = hb_tensor_4d(HB_F32, z, c->t, c->h, c->w, c->latent), ts[1] = hb_tensor_4d(HB_F32, 3, c->T, c->H, c->W, c->target);
    const char *meta[] = {"source", c->path, NULL};
    if (!rc) rc = hb_safetensors_write(file, 2 + r->nfeat, names, ts, meta);
    for (int i = 0; i < r->nfeat; i++) hb_free(feat[i]);
    return rc;
}

static int prepare_data(trun *r) {
    char **paths = NULL;
    if (list_data(r->o->data, &paths, &r->nclips)) return -1;
    if (r->nclips < 1) return hb_error("%s: no clips", r->o->data);
    if (!(r->clips = hb_calloc(sizeof(tclip) * (size_t)r->nclips, "clips"))) return -1;
    for (int i = 0; i < r->nclips; i++) r->clips[i].path = paths[i];
    free(paths);
    int hold = r->nclips > r->o->holdout ? r->o->holdout : 0;
    r->ntrain = r->nclips - hold;
    double t0 = hb_time_now();
    for (int i = 0; i < r->nclips; i++) {
        if (prepare_clip(r, &r->clips[i])) return -1;
        int64_t s[4];
        hb_lvt_video_shape(r->m, r->clips[i].t, r->clips[i].h, r->clips[i].w, s);
        if (s[1] != r->clips[i].T || s[2] != r->clips[i].H || s[3] != r->clips[i].W)
            return hb_error("%s: the light decoder makes %lldx%lldx%lld frames of this latent, the teacher %lldx%lldx%lld",
                            r->clips[i].path, (long long)s[1], (long long)s[2], (long long)s[3], (long long)r->clips[i].T,
                            (long long)r->clips[i].H, (long long)r->clips[i].W);
    }
    hb_log(HB_LOG_INFO, "data: %d clips (%d held out), %lldx%lldx%lld, ready in %.1f s", r->nclips, r->nclips - r->ntrain,
           (long long)r->clips[0].T, (long long)r->clips[0].H, (long long)r->clips[0].W, hb_time_now() - t0);
    return 0;
}

/* ---------------------------------------------------------------- model, checkpoints */

/* --feature-blocks: "none" or a comma-separated list of distinct block indices (0 = mid_block, 1 + i = up_block_i) */
static int parse_feature_blocks(trun *r) {
    const char *s = r->o->feature_blocks ? r->o->feature_blocks : "none";
    r->nfeat = 0;
    if (!strcmp(s, "none")) return 0;
    for (const char *p = s; *p;) {
        char *end = NULL;
        long b = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || (*end == ',' && !end[1]) || b < 0 || b > HB_LIGHT_VAE_MAX_UP)
            return hb_error("--feature-blocks %s: a comma-separated list of block indices (0 = mid_block, 1 + i = up_block_i) "
                            "or none", s);
        for (int i = 0; i < r->nfeat; i++)
            if (r->feat_block[i] == (int)b) return hb_error("--feature-blocks %s: block %ld twice", s, b);
        if (r->nfeat == HB_LVT_MAX_HEADS) return hb_error("--feature-blocks %s: at most %d blocks", s, HB_LVT_MAX_HEADS);
        r->feat_block[r->nfeat++] = (int)b;
        p = *end ? end + 1 : end;
    }
    return 0;
}

static const char *block_name(int b, char *buf, size_t cap) {
    if (b == 0) snprintf(buf, cap, "mid_block");
    else snprintf(buf, cap, "up_block_%d", b - 1);
    return buf;
}

/* The head of each feature block: student block b and teacher block b (Turbo-VAED's feature_corresponding pairs
 * blocks of the same name); the head widens the student's channels to the teacher's, times 4 when the teacher block
 * is at twice the student's resolution in space, times 8 when also in time (the alignment of models/light_vae_train).
 * Shapes are compared for 2 latent frames of 1 x 1, where the three cases differ. */
static int pair_heads(trun *r, const hb_light_vae_config *c, hb_lvt_head *heads) {
    const hb_lvt shape_only = {.cfg = *c}; /* hb_lvt_feature_shape reads the config only */
    for (int i = 0; i < r->nfeat; i++) {
        int b = r->feat_block[i];
        char nm[32];
        if (b > c->n_up || b >= hb_wan_vae_decoder_blocks(r->teacher))
            return hb_error("--feature-blocks %s: block %d (%s): the student has blocks 0..%d, the teacher 0..%d",
                            r->o->feature_blocks, b, block_name(b, nm, sizeof nm), c->n_up, hb_wan_vae_decoder_blocks(r->teacher) - 1);
        int64_t s[4], t[4];
        hb_lvt_feature_shape(&shape_only, b, 2, 1, 1, s);
        if (hb_wan_vae_block_shape(r->teacher, b, 2, 1, 1, t)) return -1;
        hb_lvt_align al = HB_LVT_ALIGN_NONE;
        int64_t ratio = 1;
        if (t[2] == 2 * s[2] && t[3] == 2 * s[3] && t[1] == s[1]) al = HB_LVT_ALIGN_S4, ratio = 4;
        else if (t[2] == 2 * s[2] && t[3] == 2 * s[3] && t[1] == 2 * s[1] - 1) al = HB_LVT_ALIGN_ST8, ratio = 8;
        else if (t[1] != s[1] || t[2] != s[2] || t[3] != s[3])
            return hb_error("--feature-blocks %s: block %d (%s): the student's output is %lld frames of %lldx%lld and the "
                            "teacher's %lld frames of %lldx%lld (for 2 latent frames of 1x1); a head pairs them only as is, "
                            "at 2x in space, or at 2x in space and time", r->o->feature_blocks, b, block_name(b, nm, sizeof nm),
                            (long long)s[1], (long long)s[2], (long long)s[3], (long long)t[1], (long long)t[2], (long long)t[3]);
        heads[i] = (hb_lvt_head){b, s[0], ratio * t[0], t[0], al};
    }
    return 0;
}

/* the student: --init (its config and weights) or --config (random weights from the seed) */
static int make_student(trun *r) {
    const hb_train_opts *o = r->o;
    hb_light_vae_config c;
    hb_checkpoint *ck = NULL;
    if (o->init) {
        hb_light_vae *lv = hb_light_vae_load(o->init);
        if (!lv) return -1;
        c = *hb_light_vae_get_config(lv);
        hb_light_vae_free(lv);
        struct stat st;
        char w[4200];
        if (stat(o->init, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(w, sizeof w, "%s/diffusion_pytorch_model.safetensors", o->init);
        else snprintf(w, sizeof w, "%s", o->init);
        if (!(ck = hb_checkpoint_open(w))) return -1;
    } else {
        char *txt = hb_read_text_file(o->config, HB_JSON_MAX_FILE, NULL);
        int rc = txt ? hb_light_vae_config_from_json(&c, txt, o->config) : -1;
        free(txt);
        if (rc) return -1;
    }
    int z = 0;
    const float *mv = hb_wan_vae_official_mean(HB_WAN_VAE_22, &z), *sv = hb_wan_vae_official_std(HB_WAN_VAE_22, &z);
    hb_lvt_head heads[HB_LVT_MAX_HEADS];
    int rc = pair_heads(r, &c, heads);
    if (!rc && !(r->m = hb_lvt_new(&c, heads, r->nfeat))) rc = -1;
    if (!rc && c.latent_channels == z) rc = hb_lvt_set_latent_stats(r->m, mv, sv, z);
    if (!rc) hb_lvt_init_random(r->m, o->seed); /* the heads of an --init run start from these too */
    if (!rc && ck) rc = hb_lvt_load(r->m, ck, false);
    hb_checkpoint_close(ck);
    if (!rc && c.latent_channels != hb_wan_vae_get_config(r->teacher)->z_dim)
        rc = hb_error("the light decoder takes %d latent channels, the teacher makes %d", c.latent_channels,
                      hb_wan_vae_get_config(r->teacher)->z_dim);
    return rc;
}

/* OUT/checkpoint/: the release's light-decoder folder (EMA weights when the EMA is on) */
static int save_release(trun *r) {
    hb_lvt *m = r->m;
    const float *src = m->ema ? m->ema : m->w;
    const char **names = hb_calloc(sizeof(char *) * (size_t)m->ndecoder, "names");
    hb_tensor *ts = hb_calloc(sizeof(hb_tensor) * (size_t)m->ndecoder, "tensors");
    int rc = names && ts ? make_dir(out_path(r, "checkpoint")) : -1;
    for (int i = 0; i < m->ndecoder && !rc; i++) {
        const hb_lvt_param *p = &m->params[i];
        names[i] = p->name, ts[i] = hb_tensor_make(HB_F32, p->ndim, p->shape, (void *)(src + p->off));
    }
    if (!rc) rc = hb_safetensors_write(out_path(r, "checkpoint/diffusion_pytorch_model.safetensors"), m->ndecoder, names, ts, NULL);
    hb_free(names), hb_free(ts);
    char *js = rc ? NULL : hb_light_vae_config_to_json(&m->cfg);
    if (!rc) rc = js ? hb_write_file_atomic(out_path(r, "checkpoint/config.json"), js, strlen(js)) : hb_error("out of memory");
    free(js);
    return rc;
}

/* the run's feature blocks as metadata: "0,1,2", "none" */
static void blocks_text(const trun *r, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", r->nfeat ? "" : "none");
    for (int i = 0; i < r->nfeat; i++) snprintf(buf + strlen(buf), cap - strlen(buf), i ? ",%d" : "%d", r->feat_block[i]);
}

/* OUT/train_state.safetensors: every flat buffer (the heads follow the decoder in each), the step, the blocks */
static int save_state(trun *r) {
    hb_lvt *m = r->m;
    const char *names[4] = {"weights", "adam_m", "adam_v", "ema"};
    hb_tensor ts[4] = {hb_tensor_1d(HB_F32, m->total, m->w), hb_tensor_1d(HB_F32, m->total, m->m),
                       hb_tensor_1d(HB_F32, m->total, m->v), hb_tensor_1d(HB_F32, m->total, m->ema)};
    int n = m->ema ? 4 : m->m ? 3 : 1;
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)m->step);
    char *cfg = hb_light_vae_config_to_json(&m->cfg), blocks[64];
    blocks_text(r, blocks, sizeof blocks);
    const char *meta[] = {"step", step, "config", cfg ? cfg : "", "feature_blocks", blocks, NULL};
    int rc = cfg ? hb_safetensors_write(out_path(r, "train_state.safetensors"), n, names, ts, meta) : -1;
    free(cfg);
    return rc ? rc : save_release(r);
}

static int load_buffer(hb_checkpoint *ck, const char *name, float **dst, int64_t total, bool required) {
    hb_tensor t;
    if (!hb_checkpoint_has(ck, name)) return required ? hb_error("%s: %s missing", hb_checkpoint_path(ck), name) : 0;
    if (hb_checkpoint_get(ck, name, &t) || t.dtype != HB_F32 || hb_tensor_numel(&t) != total)
        return hb_error("%s: %s is not %lld float32 values (another model?)", hb_checkpoint_path(ck), name, (long long)total);
    if (!*dst && !(*dst = hb_malloc(sizeof(float) * (size_t)total, name))) return -1;
    memcpy(*dst, t.data, sizeof(float) * (size_t)total);
    return 0;
}

static int load_state(trun *r) {
    hb_checkpoint *ck = hb_checkpoint_open(out_path(r, "train_state.safetensors"));
    if (!ck) return -1;
    hb_lvt *m = r->m;
    const char *st = hb_checkpoint_metadata(ck, "step"), *fb = hb_checkpoint_metadata(ck, "feature_blocks");
    char blocks[64];
    blocks_text(r, blocks, sizeof blocks);
    int rc = st ? 0 : hb_error("%s: metadata step missing", hb_checkpoint_path(ck));
    if (!rc && strcmp(fb ? fb : "none", blocks))
        rc = hb_error("%s: trained with --feature-blocks %s, this run has %s (resume with the same, or start over without "
                      "--resume)", hb_checkpoint_path(ck), fb ? fb : "none", blocks);
    if (!rc) rc = load_buffer(ck, "weights", &m->w, m->total, true);
    if (!rc) rc = load_buffer(ck, "adam_m", &m->m, m->total, false);
    if (!rc) rc = load_buffer(ck, "adam_v", &m->v, m->total, m->m != NULL);
    if (!rc && r->o->ema > 0) rc = load_buffer(ck, "ema", &m->ema, m->total, false);
    if (!rc) m->step = atoll(st);
    hb_checkpoint_close(ck);
    return rc;
}

/* ---------------------------------------------------------------- evaluation */

typedef struct {
    double psnr, ssim, l1, speedup;
} teval;

/* the saved weights (EMA when on) on the held-out clips (the first clip when none is held out): PSNR / SSIM of
 * student vs teacher video, mean |difference|; decode speed: the teacher's decode time over the inference
 * decoder's (loaded from OUT/checkpoint, which also proves the checkpoint loads) on the first of them */
static int evaluate(trun *r, teval *e) {
    hb_lvt *m = r->m;
    int first = r->ntrain < r->nclips ? r->ntrain : 0, n = r->ntrain < r->nclips ? r->nclips - r->ntrain : 1;
    float *keep = m->w;
    if (m->ema) m->w = m->ema;
    memset(e, 0, sizeof *e);
    int rc = 0;
    for (int i = first; i < first + n && !rc; i++) {
        const tclip *c = &r->clips[i];
        int64_t nv = 3 * c->T * c->H * c->W;
        float *v = hb_malloc(sizeof(float) * (size_t)nv, "eval video"), *dv = hb_dev_alloc(sizeof(float) * (size_t)nv, "eval video");
        uint8_t *a = hb_malloc((size_t)nv, "eval frames"), *b = hb_malloc((size_t)nv, "eval frames");
        hb_metrics mt = {0};
        rc = v && dv && a && b ? hb_lvt_forward(m, c->latent_dev, c->t, c->h, c->w, dv) : -1;
        if (!rc) rc = hb_dev_download(v, dv, sizeof(float) * (size_t)nv);
        if (!rc) {
            e->l1 += hb_l1_loss(v, c->target, nv, NULL, 1.0f) / n;
            hb_frames_from_cthw(v, (int)c->T, (int)c->H, (int)c->W, -1.0f, 1.0f, a);
            hb_frames_from_cthw(c->target, (int)c->T, (int)c->H, (int)c->W, -1.0f, 1.0f, b);
            rc = hb_metrics_compute(b, a, (int)c->T, (int)c->H, (int)c->W, &mt);
        }
        if (!rc) e->psnr += mt.psnr_mean / n, e->ssim += mt.ssim_mean / n;
        hb_metrics_free(&mt);
        hb_free(v), hb_dev_free(dv), hb_free(a), hb_free(b);
    }
    m->w = keep;
    if (m->ema) hb_host_memory_released(m->ema, sizeof(float) * (size_t)m->total); /* it changes before the next use */
    return rc;
}

static int decode_speed(trun *r, teval *e) {
    const tclip *c = &r->clips[r->ntrain < r->nclips ? r->ntrain : 0];
    hb_light_vae *lv = hb_light_vae_load(out_path(r, "checkpoint"));
    float *v = hb_dev_alloc(sizeof(float) * (size_t)(3 * c->T * c->H * c->W), "speed video");
    int rc = lv && v ? 0 : -1;
    double t0 = hb_time_now();
    if (!rc) rc = hb_wan_vae_decode(r->teacher, c->latent_dev, c->t, c->h, c->w, v, NULL);
    double t1 = hb_time_now();
    if (!rc) rc = hb_light_vae_decode(lv, c->latent_dev, c->t, c->h, c->w, v, NULL, NULL, NULL);
    if (!rc) rc = hb_backend_sync();
    double t2 = hb_time_now();
    if (!rc) e->speedup = (t1 - t0) / (t2 - t1 > 1e-9 ? t2 - t1 : 1e-9);
    hb_dev_free(v);
    hb_light_vae_free(lv);
    return rc;
}

/* ---------------------------------------------------------------- log and plot */

#define CSV_HEADER "step,loss,loss_rec,loss_feat,loss_lpips,lr,steps_per_s,elapsed_s,eval_psnr,eval_ssim,eval_l1,decode_speedup\n"

/* keep the rows up to `step` (a resumed run rewrites what came after its checkpoint) */
static int csv_trim(trun *r, int64_t step) {
    const char *p = out_path(r, "train_log.csv");
    struct stat st;
    if (stat(p, &st) != 0) return hb_write_file_atomic(p, CSV_HEADER, strlen(CSV_HEADER));
    char *txt = hb_read_text_file(p, HB_JSON_MAX_FILE, NULL), *keep = txt ? malloc(strlen(txt) + sizeof CSV_HEADER) : NULL;
    if (!keep) { free(txt); return hb_error("%s: cannot read the log", p); }
    strcpy(keep, CSV_HEADER);
    size_t k = strlen(keep);
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n"))
        if (line[0] >= '0' && line[0] <= '9' && atoll(line) <= step) k += (size_t)sprintf(keep + k, "%s\n", line);
    int rc = hb_write_file_atomic(p, keep, k);
    free(txt), free(keep);
    return rc;
}

static int csv_row(trun *r, int64_t step, double loss, double rec, double feat, double lr, double sps, double el,
                   const teval *e) {
    FILE *f = fopen(out_path(r, "train_log.csv"), "a");
    if (!f) return hb_error("%s: %s", r->path, strerror(errno));
    if (step > 0) {
        fprintf(f, "%lld,%.6g,%.6g,%.6g,", (long long)step, loss, rec, feat);
        if (r->lpips) fprintf(f, "%.6g", r->step_lpips); /* empty without --lpips */
        fprintf(f, ",%.3g,%.4g,%.1f,", lr, sps, el);
    } else fprintf(f, "0,,,,,,,%.1f,", el);
    if (e) fprintf(f, "%.3f,%.4f,%.6g,%.3f\n", e->psnr, e->ssim, e->l1, e->speedup);
    else fprintf(f, ",,,\n");
    return fclose(f) == 0 ? 0 : hb_error("%s: write failed", r->path);
}

/* loss.png from the CSV: training loss (blue) and held-out L1 (orange) against the step, log scale */
static int plot(trun *r) {
    char *txt = hb_read_text_file(out_path(r, "train_log.csv"), HB_JSON_MAX_FILE, NULL);
    if (!txt) return -1;
    int cap = 1;
    for (char *s = txt; *s; s++) cap += *s == '\n';
    double *x = malloc(sizeof(double) * (size_t)cap * 4), *y = x + cap, *ex = y + cap, *ey = ex + cap;
    int n = 0, ne = 0, c_l1 = 0; /* the eval_l1 column, found by name in the header */
    for (char *line = strtok(txt, "\n"); x && line; line = strtok(NULL, "\n")) {
        char *f[24] = {0}, *s = line;
        for (int i = 0; i < 24 && s; i++) f[i] = s, s = strchr(s, ','), s = s ? (*s = 0, s + 1) : NULL;
        for (int i = 0; !strcmp(f[0], "step") && i < 24 && f[i]; i++) c_l1 = strcmp(f[i], "eval_l1") ? c_l1 : i;
        if (line[0] < '0' || line[0] > '9') continue;
        if (f[1] && f[1][0]) x[n] = atof(f[0]), y[n++] = atof(f[1]);
        if (c_l1 && f[c_l1] && f[c_l1][0]) ex[ne] = atof(f[0]), ey[ne++] = atof(f[c_l1]);
    }
    hb_plot_series s[2] = {{x, y, n, {31, 119, 180}}, {ex, ey, ne, {255, 127, 14}}};
    const char *text[] = {"Title", "hb train-decoder: loss (blue: training, orange: held-out L1), log scale", NULL};
    int rc = x ? hb_plot_png(out_path(r, "loss.png"), 640, 400, s, 2, true, text) : hb_error("out of memory");
    free(x), free(txt);
    return rc;
}

/* ---------------------------------------------------------------- training */

/* save, evaluate and plot (after step m->step) */
static int checkpoint(trun *r, double loss, double rec, double feat, double sps, double elapsed) {
    teval e;
    int rc = save_state(r);
    if (!rc) rc = evaluate(r, &e);
    if (!rc) rc = decode_speed(r, &e);
    if (!rc) rc = csv_row(r, r->m->step, loss, rec, feat, r->o->lr, sps, elapsed, &e);
    if (!rc) rc = plot(r);
    if (!rc)
        hb_log(HB_LOG_INFO, "checkpoint at step %lld: held-out PSNR %.2f dB, SSIM %.4f, L1 %.4f; decode %.1fx faster than the teacher",
               (long long)r->m->step, e.psnr, e.ssim, e.l1, e.speedup);
    return rc;
}

/* The teacher features of clip c, mapped from its cache file (closed by the caller); NULL when the run has none.
 * Their shapes were checked when the cache was read or written. */
static hb_checkpoint *feature_targets(trun *r, const tclip *c, const float **teacher) {
    if (r->nfeat == 0) return NULL;
    hb_checkpoint *ck = hb_checkpoint_open(c->cache);
    for (int i = 0; ck && i < r->nfeat; i++) {
        char nm[32];
        hb_tensor t;
        snprintf(nm, sizeof nm, "feature.%d", r->feat_block[i]);
        if (hb_checkpoint_get(ck, nm, &t)) { hb_checkpoint_close(ck); return NULL; }
        teacher[i] = t.data;
    }
    return ck;
}

typedef struct { hb_lpips *net; const float *target; } lpips_ctx;

/* the LPIPS term (hb_lvt_video_loss_fn): mean over frames of LPIPS(student frame, teacher frame), the teacher's
 * video moved into the current memory space */
static int lpips_term(void *user, const float *video, float *grad, const int64_t s[4], float scale, double *loss) {
    const lpips_ctx *c = user;
    size_t bytes = sizeof(float) * (size_t)(s[0] * s[1] * s[2] * s[3]);
    float *t = hb_dev_alloc(bytes, "teacher video");
    int rc = t ? hb_dev_upload(t, c->target, bytes) : -1;
    if (!rc) rc = hb_lpips_video(c->net, video, t, s[1], s[2], s[3], grad, scale, loss);
    hb_dev_free(t);
    return rc;
}

/* one optimiser step over batch * accum clips; the mean losses in *loss, *rec, *feat (the unweighted MSE sum) and
 * r->step_lpips */
static int train_step(trun *r, double *loss, double *rec, double *feat, int (*stop)(void)) {
    const hb_train_opts *o = r->o;
    int nmb = o->batch * o->accum;
    hb_lvt_zero_grad(r->m);
    *loss = *rec = *feat = r->step_lpips = 0;
    for (int k = 0; k < nmb; k++) {
        hb_rng g;
        hb_rng_seed(&g, o->seed * 0x9E3779B97F4A7C15ull + (uint64_t)r->m->step * 1000003ull + (uint64_t)k);
        const tclip *c = &r->clips[hb_rng_u64(&g) % (uint64_t)r->ntrain];
        const float *teacher[HB_LVT_MAX_HEADS] = {0};
        hb_checkpoint *fck = feature_targets(r, c, teacher);
        if (r->nfeat && !fck) return hb_error_prefix("%s: teacher features", c->cache);
        hb_lvt_batch b = {c->latent_dev, c->t, c->h, c->w, c->target, teacher, 1.0f, r->nfeat ? (float)o->feature_weight : 0.0f,
                          1.0f / (float)nmb};
        lpips_ctx lc = {r->lpips, c->target};
        hb_lvt_video_loss lp = {lpips_term, &lc, (float)o->lpips_weight};
        hb_lvt_losses L;
        int rc = hb_lvt_train_pass_with(r->m, &b, r->lpips ? &lp : NULL, &L, NULL, NULL);
        hb_checkpoint_close(fck);
        if (rc) return -1;
        *loss += L.loss / nmb, *rec += L.loss_rec / nmb, r->step_lpips += L.loss_video / nmb;
        for (int i = 0; i < r->nfeat; i++) *feat += L.loss_feat[i] / nmb;
        if (stop && stop()) return 1;
    }
    hb_adamw opt = {o->lr, o->beta1, o->beta2, o->eps, o->weight_decay};
    return hb_lvt_step(r->m, &opt, o->ema);
}

static void progress(const trun *r, int64_t start, double loss, double rec, double feat, double t0) {
    double el = hb_time_now() - t0, sps = (double)(r->m->step - start) / (el > 0 ? el : 1e-9);
    double eta = sps > 0 ? (double)(r->o->steps - r->m->step) / sps : 0;
    char lp[32] = "";
    if (r->lpips) snprintf(lp, sizeof lp, "  lpips %.5f", r->step_lpips);
    printf("step %lld/%d  loss %.5f  rec %.5f  feat %.5f%s  lr %.2e  %.2f steps/s  ETA %d:%02d\n", (long long)r->m->step,
           r->o->steps, loss, rec, feat, lp, r->o->lr, sps, (int)(eta / 60), (int)fmod(eta, 60));
    fflush(stdout);
}

static int train_loop(trun *r, int (*stop)(void)) {
    const hb_train_opts *o = r->o;
    int64_t start = r->m->step;
    double t0 = hb_time_now(), loss = 0, rec = 0, feat = 0;
    int rc = 0;
    while (r->m->step < o->steps && !rc) {
        if ((rc = train_step(r, &loss, &rec, &feat, stop)) == 1) break; /* interrupted inside a step: not counted */
        double el = hb_time_now() - t0, sps = (double)(r->m->step - start) / (el > 0 ? el : 1e-9);
        if (!rc && !o->quiet) progress(r, start, loss, rec, feat, t0);
        bool save = r->m->step % o->save_every == 0 || r->m->step == o->steps;
        if (!rc && save) rc = checkpoint(r, loss, rec, feat, sps, el);
        else if (!rc) rc = csv_row(r, r->m->step, loss, rec, feat, o->lr, sps, el, NULL);
        if (!rc && stop && stop()) rc = 1;
    }
    if (rc == 1) { /* interrupted: keep what is done */
        hb_log(HB_LOG_INFO, "interrupted at step %lld: saving", (long long)r->m->step);
        if (save_state(r)) return -1;
    }
    return rc;
}

static int check_opts(const hb_train_opts *o) {
    if (!o->teacher || !o->data || !o->out || (!o->config == !o->init))
        return hb_error("--teacher, --data, --out and one of --config / --init are required");
    if (!(o->feature_weight >= 0 && o->feature_weight < 1e30)) return hb_error("--feature-weight %g: must be >= 0", o->feature_weight);
    if (!(o->lpips_weight >= 0 && o->lpips_weight < 1e30)) return hb_error("--lpips-weight %g: must be >= 0", o->lpips_weight);
    if (o->frames < 1 || (o->frames - 1) % 4) return hb_error("--frames %d: must be 1 + 4k", o->frames);
    if (o->size < 16 || o->size % 16) return hb_error("--size %d: must be a positive multiple of 16", o->size);
    if (o->steps < 1 || o->batch < 1 || o->accum < 1 || o->save_every < 1 || o->holdout < 0)
        return hb_error("--steps, --batch, --accum and --save-every must be >= 1, --holdout >= 0");
    if (!(o->lr > 0) || !(o->weight_decay >= 0) || !(o->ema >= 0 && o->ema < 1))
        return hb_error("--lr must be > 0, --wd >= 0, --ema in [0, 1)");
    return 0;
}

/* --lpips: the network, and frames it can take */
static int load_lpips(trun *r) {
    if (!(r->lpips = hb_lpips_load(r->o->lpips))) return -1;
    int64_t min = hb_lpips_min_size(r->lpips);
    if (r->o->size < min)
        return hb_error("--size %d: the LPIPS network of %s takes frames of at least %lld pixels a side", r->o->size,
                        r->o->lpips, (long long)min);
    return 0;
}

static void run_free(trun *r) {
    for (int i = 0; i < r->nclips; i++)
        free(r->clips[i].path), free(r->clips[i].cache), hb_free(r->clips[i].latent), hb_free(r->clips[i].target),
            hb_dev_free(r->clips[i].latent_dev);
    hb_free(r->clips);
    hb_lvt_free(r->m);
    hb_lpips_free(r->lpips);
    hb_wan_vae_free(r->teacher);
    hb_checkpoint_close(r->teacher_ck);
}

int hb_train_decoder(const hb_train_opts *o, int (*stop)(void)) {
    trun r = {.o = o};
    int rc = check_opts(o);
    if (!rc && o->lpips) rc = load_lpips(&r);
    if (!rc) rc = make_dir(o->out);
    if (!rc) rc = make_dir(out_path(&r, "cache"));
    if (!rc && !(r.teacher_ck = hb_checkpoint_open(o->teacher))) rc = -1;
    if (!rc && !(r.teacher = hb_wan_vae_load(r.teacher_ck, NULL))) rc = -1;
    if (!rc && hb_wan_vae_temporal_factor(r.teacher) != 4) rc = hb_error("%s: not a Wan VAE with 4x time compression", o->teacher);
    if (!rc) rc = parse_feature_blocks(&r);
    if (!rc) rc = make_student(&r);
    if (!rc) rc = prepare_data(&r);
    struct stat st;
    bool resumed = !rc && o->resume && stat(out_path(&r, "train_state.safetensors"), &st) == 0;
    if (resumed) rc = load_state(&r);
    if (!rc) rc = csv_trim(&r, resumed ? r.m->step : -1);
    if (!rc && resumed) hb_log(HB_LOG_INFO, "resumed at step %lld", (long long)r.m->step);
    if (!rc && !resumed) { /* step 0: the starting point of the evaluation curve */
        teval e;
        rc = save_state(&r);
        if (!rc) rc = evaluate(&r, &e);
        if (!rc) rc = decode_speed(&r, &e);
        if (!rc) rc = csv_row(&r, 0, 0, 0, 0, 0, 0, 0, &e);
        if (!rc) hb_log(HB_LOG_INFO, "start: held-out PSNR %.2f dB, SSIM %.4f, L1 %.4f", e.psnr, e.ssim, e.l1);
    }
    if (!rc) rc = train_loop(&r, stop);
    run_free(&r);
    return rc;
}
