/* pipeline/ar: autoregressive long video (see ar.h). */
#include "pipeline/ar.h"
#include "pipeline/fewstep.h"
#include "pipeline/text.h"
#include "pipeline/settings.h"
#include "pipeline/schedule.h"
#include "pipeline/model_folder.h"
#include "models/tokenizer.h"
#include "ops/ops.h"
#include "models/tae.h"
#include "models/wan_vae.h"
#include "pipeline/longdecode.h"
#include "pipeline/frame_sink.h"
#include "io/video.h"
#include "io/image.h"
#include <ctype.h>
#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hb_ar_opts_default(hb_ar_opts *o) {
    memset(o, 0, sizeof *o);
    hb_ar_settings s;
    hb_ar_settings_for(NULL, 16, &s);
    o->chunk = s.chunk, o->sink = s.sink, o->window = s.window;
    o->rope = s.rope_relative ? WAN_ROPE_REL : WAN_ROPE_ABS;
    o->cache_dtype = HB_BF16;
    o->shift = s.shift;
    memcpy(o->steps_list, s.steps_list, (size_t)s.nsteps * sizeof *s.steps_list);
    o->nsteps = s.nsteps;
    o->refresh_last = true;
}

/* Frames [f, f+nf) of a [C, F, HW] chunk <-> slots (f0+f) % ring of the history ring [slot][C][HW]: a ring
 * range wraps at most once, so at most two strided copies. to_ring: chunk -> ring, else ring -> chunk. */
static void ring_copy(float *ring, int64_t ring_frames, float *chunk, int64_t C, int64_t F, int64_t HW, int64_t f0,
                      bool to_ring) {
    for (int64_t f = 0; f < F;) {
        int64_t slot = (f0 + f) % ring_frames, nf = ring_frames - slot < F - f ? ring_frames - slot : F - f;
        const int64_t shape[3] = {C, nf, HW}, cs[3] = {F * HW, HW, 1}, rs[3] = {HW, C * HW, 1};
        float *r = ring + slot * C * HW, *c = chunk + f * HW;
        if (to_ring) hb_copy_nd(r, rs, c, cs, 3, shape);
        else hb_copy_nd(c, cs, r, rs, 3, shape);
        f += nf;
    }
}

/* Index of the prompt in force from latent frame f (conds sorted by frame). */
static int cond_at(const hb_ar_opts *o, int64_t f) {
    int k = 0;
    for (int i = 0; i < o->nconds; i++)
        if (o->conds[i].frame <= f) k = i;
    return k;
}

/* Everything one run of the loop holds. */
typedef struct {
    const wan_dit *m;
    hb_ar_opts *o;
    wan_causal *cs;
    hb_fewstep fs;                   /* the chunk's few-step schedule (pipeline/fewstep.h) */
    float sig_refresh;
    int64_t C, HW, cache_frames;
    float *x, *flow, *x0, *eps;      /* one chunk each, backend memory */
    float *hnoise, *tv;              /* host: the generator's draw, per-frame timesteps */
    float *hist, *rc_x;              /* prompt switches: history ring, re-cache input */
    hb_rng rng;
} ar_loop;

/* The schedule: warped (or raw) timesteps and their sigmas. */
static int loop_schedule(ar_loop *L) {
    hb_ar_opts *o = L->o;
    hb_ar_settings def;
    hb_ar_settings_for(NULL, 16, &def);
    const int n = o->nsteps > 0 ? o->nsteps : def.nsteps;
    const int64_t *list = o->nsteps > 0 ? o->steps_list : def.steps_list;
    if (n > HB_AR_MAX_STEPS) return hb_error("ar: at most %d steps", HB_AR_MAX_STEPS);
    const double shift = o->shift > 0 ? o->shift : def.shift;
    if (hb_fewstep_schedule(&L->fs, list, n, shift, !o->raw_steps)) return -1;
    hb_flowmatch_table *tab = malloc(sizeof *tab); /* the refresh forward's sigma */
    if (!tab || hb_flowmatch_table_init(tab, shift)) { free(tab); return tab ? -1 : hb_error("out of memory"); }
    L->sig_refresh = hb_flowmatch_sigma(tab, o->context_noise);
    free(tab);
    return 0;
}

/* Checks the options, builds the causal state and the buffers. */
static int loop_open(ar_loop *L, const wan_dit *m, hb_ar_opts *o) {
    memset(L, 0, sizeof *L);
    L->m = m;
    L->o = o;
    if (o->frames <= 0 || o->chunk <= 0) return hb_error("ar: frames (%lld) and chunk (%lld) must be positive",
                                                         (long long)o->frames, (long long)o->chunk);
    if (o->nconds <= 0 || !o->conds || o->conds[0].frame != 0)
        return hb_error("ar: the first prompt must start at frame 0");
    for (int i = 1; i < o->nconds; i++)
        if (o->conds[i].frame < o->conds[i - 1].frame) return hb_error("ar: prompt switch frames must be sorted");
    if (loop_schedule(L)) return -1;
    const bool window = o->window > 0;
    L->cache_frames = window ? o->window : o->frames;
    if (window && o->sink < 0) return hb_error("ar: the sink must be >= 0 frames");
    if (!window && o->rope == WAN_ROPE_REL)
        hb_log(HB_LOG_DEBUG, "ar: relative RoPE without a window is the same as absolute RoPE");
    if (o->rope == WAN_ROPE_ABS && o->frames > WAN_ROPE_TABLE)
        return hb_error("ar: %lld latent frames exceed the %d-position RoPE table of absolute mode; use relative "
                        "RoPE (--rope rel) for longer videos", (long long)o->frames, WAN_ROPE_TABLE);
    if (o->chunk + (window ? o->sink : 0) > L->cache_frames)
        return hb_error("ar: the window (%lld frames) must hold the sink (%lld) and a chunk (%lld)",
                        (long long)L->cache_frames, (long long)(window ? o->sink : 0), (long long)o->chunk);
    L->C = m->cfg.in_dim;
    L->HW = o->H * o->W;
    wan_causal_config cc = {0};
    cc.H = o->H; cc.W = o->W;
    cc.max_chunk_frames = o->chunk;
    /* a re-cache forward may cover the whole cache (from frame 0 the sink rows are rewritten too) */
    if (o->nconds > 1) cc.max_chunk_frames = L->cache_frames;
    cc.cache_frames = L->cache_frames;
    cc.sink_frames = window ? o->sink : 0;
    cc.window = window;
    cc.global_sink = true;
    cc.cache_dtype = o->cache_dtype;
    cc.rope = o->rope;
    if (!(L->cs = hb_wan_causal_new(m, &cc))) return -1;
    const size_t nb = sizeof(float) * (size_t)(L->C * o->chunk * L->HW), hb = sizeof(float) * (size_t)(L->cache_frames * L->C * L->HW);
    L->x = hb_dev_alloc(nb, "ar latent");
    L->flow = hb_dev_alloc(nb, "ar flow");
    L->x0 = hb_dev_alloc(nb, "ar x0");
    L->eps = hb_dev_alloc(nb, "ar noise");
    L->hnoise = hb_malloc(nb, "ar noise (host)");
    L->tv = hb_malloc(sizeof(float) * (size_t)L->cache_frames, "ar t");
    if (!L->x || !L->flow || !L->x0 || !L->eps || !L->hnoise || !L->tv) return -1;
    if (o->nconds > 1) {
        /* history ring of the last cache_frames clean latent frames, [slot][C][H][W] */
        L->hist = hb_dev_alloc(hb, "ar history");
        L->rc_x = hb_dev_alloc(hb, "ar re-cache input");
        if (!L->hist || !L->rc_x) return -1;
    }
    o->state_bytes = hb_wan_causal_bytes(L->cs) + 4 * nb + (L->hist ? 2 * hb : 0);
    hb_rng_seed(&L->rng, o->seed);
    return 0;
}

static void loop_close(ar_loop *L) {
    hb_wan_causal_free(L->cs);
    hb_dev_free(L->x); hb_dev_free(L->flow); hb_dev_free(L->x0); hb_dev_free(L->eps);
    hb_free(L->hnoise); hb_free(L->tv);
    hb_dev_free(L->hist); hb_dev_free(L->rc_x);
}

/* n noise values into dst: the caller's source, or normals from the host generator (the same noise on
 * every backend). */
static int loop_noise(ar_loop *L, int64_t chunk, int step, float *dst, int64_t n) {
    if (L->o->noise) {
        if (L->o->noise(L->o->noise_user, chunk, step, dst, n)) {
            if (!hb_last_error()[0]) hb_error("ar: the noise source failed");
            return -1;
        }
        return 0;
    }
    return hb_noise_normal(&L->rng, L->hnoise, dst, n);
}

/* Hands one finished forward to the caller's observer. */
static int loop_observe(ar_loop *L, int64_t chunk, int step, const float *x, int64_t F, int64_t f0, const float *flow,
                        const float *x0) {
    hb_ar_call c = {L->o->forwards++, chunk, f0, F, step, L->tv, x, flow, x0, L->cs};
    if (L->o->on_call && L->o->on_call(L->o->call_user, &c)) {
        if (!hb_last_error()[0]) hb_error("ar: stopped by the call observer");
        return -1;
    }
    return 0;
}

/* One forward at latent frame f0 with every frame at timestep t; flow/x0 may be NULL (cache only). */
static int loop_forward(ar_loop *L, int64_t chunk, int step, const float *x, int64_t F, float t, int64_t f0,
                        bool recompute, float *flow, float *x0, float sigma) {
    for (int64_t f = 0; f < F; f++) L->tv[f] = t;
    if (hb_wan_causal_forward(L->cs, x, F, L->tv, f0, recompute, flow, NULL, NULL)) return -1;
    if (flow && x0) hb_flow_to_x0(x0, x, flow, sigma, L->C * F * L->HW);
    return loop_observe(L, chunk, step, x, F, f0, flow, x0);
}

/* A prompt switch before the chunk at f0: LongLive's KV re-cache of the last frames with the new prompt. */
static int loop_recache(ar_loop *L, int64_t chunk, int64_t f0, int want) {
    int64_t nre = f0 < L->cache_frames ? f0 : L->cache_frames, fs = f0 - nre;
    int64_t skip = hb_wan_causal_recache_skip(L->cs, fs, f0);
    fs += skip;
    nre -= skip;
    if (nre > 0) {
        ring_copy(L->hist, L->cache_frames, L->rc_x, L->C, nre, L->HW, fs, false);
        if (loop_forward(L, chunk, HB_AR_RECACHE, L->rc_x, nre, L->o->context_noise, fs, true, NULL, NULL, 0)) return -1;
    }
    hb_log(HB_LOG_INFO, "ar: prompt %d from latent frame %lld (re-cached %lld frames)", want, (long long)f0, (long long)nre);
    return 0;
}

/* The few-step trajectory of one chunk (pipeline/fewstep.h): the causal DiT at the chunk's frames. */
typedef struct {
    ar_loop *L;
    int64_t chunk, f0, F, n;
} ar_chunk;

static int chunk_model(void *user, int step, const float *x, float t, float *flow) {
    (void)step;
    ar_chunk *c = user;
    for (int64_t f = 0; f < c->F; f++) c->L->tv[f] = t;
    return hb_wan_causal_forward(c->L->cs, x, c->F, c->L->tv, c->f0, false, flow, NULL, NULL);
}
static int chunk_noise(void *user, int step, float *eps) {
    ar_chunk *c = user;
    return loop_noise(c->L, c->chunk, step, eps, c->n);
}
static int chunk_x0(void *user, int step, const float *x0) {
    ar_chunk *c = user;
    return loop_observe(c->L, c->chunk, step, c->L->x, c->F, c->f0, c->L->flow, x0);
}

/* Chunk j: denoise from noise, hand x0 out, refresh the chunk's K/V at t = context_noise. */
static int loop_chunk(ar_loop *L, int64_t j, int64_t nchunks) {
    hb_ar_opts *o = L->o;
    const int64_t f0 = j * o->chunk, F = o->frames - f0 < o->chunk ? o->frames - f0 : o->chunk, n = L->C * F * L->HW;
    if (loop_noise(L, j, 0, L->x, n)) return -1;
    ar_chunk c = {L, j, f0, F, n};
    hb_fewstep_hooks h = {.model = chunk_model, .noise = chunk_noise, .on_x0 = chunk_x0, .user = &c};
    if (hb_fewstep_run(&L->fs, &h, L->x, L->x0, L->flow, L->eps, n)) return -1;
    if (L->hist) ring_copy(L->hist, L->cache_frames, L->x0, L->C, F, L->HW, f0, true);
    if (o->on_chunk && o->on_chunk(o->user, j, f0, F, L->x0)) {
        if (!hb_last_error()[0]) hb_error("ar: stopped by the chunk callback");
        return -1;
    }
    if (j + 1 < nchunks || o->refresh_last) {
        /* an observer sees the refresh's flow and (discarded) x0 too; otherwise only the cache is written */
        float *fl = o->on_call ? L->flow : NULL;
        if (loop_forward(L, j, HB_AR_REFRESH, L->x0, F, o->context_noise, f0, false, fl, L->eps, L->sig_refresh))
            return -1;
    }
    return 0;
}

int hb_ar_generate(const wan_dit *m, hb_ar_opts *o) {
    o->forwards = 0;
    o->state_bytes = 0;
    ar_loop L;
    int rc = -1;
    hb_progress prog;
    const int64_t nchunks = o->chunk > 0 ? (o->frames + o->chunk - 1) / o->chunk : 0;
    hb_progress_begin(&prog, o->progress, o->progress_user, "chunks", (int)nchunks);
    if (loop_open(&L, m, o)) goto done;
    int cur = -1;
    for (int64_t j = 0; j < nchunks; j++) {
        const int64_t f0 = j * o->chunk;
        int want = cond_at(o, f0);
        if (want != cur) {
            if (hb_wan_causal_set_prompt(L.cs, o->conds[want].ctx, o->conds[want].ctx_len)) goto done;
            if (cur >= 0 && f0 > 0 && loop_recache(&L, j, f0, want)) goto done;
            cur = want;
        }
        if (loop_chunk(&L, j, nchunks)) goto done;
        hb_progress_step(&prog, (int)(j + 1));
    }
    rc = 0;
done:
    hb_progress_end(&prog);
    loop_close(&L);
    return rc;
}

/* ------------------------------------------------------------------ prompts file */

static int cmp_idx(const void *a, const void *b, void *ctx) {
    const int64_t *f = ctx;
    int ia = *(const int *)a, ib = *(const int *)b;
    if (f[ia] != f[ib]) return f[ia] < f[ib] ? -1 : 1;
    return ia - ib;
}

int hb_ar_read_prompts(const char *path, int64_t **frames_out, char ***texts_out) {
    FILE *fp = fopen(path, "r");
    if (!fp) return hb_error("%s: cannot open the prompts file: %s", path, strerror(errno));
    int n = 0, cap = 0, lineno = 0;
    int64_t *fr = NULL;
    char **tx = NULL;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = -1;
    while ((len = getline(&line, &lcap, fp)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        char *p = line;
        while (*p == ' ') p++;
        if (!*p || *p == '#') continue;
        char *tab = strchr(p, '\t');
        if (!tab) { hb_error("%s:%d: expected 'frame_index<TAB>prompt'", path, lineno); goto fail; }
        *tab = 0;
        char *end;
        errno = 0;
        long long f = strtoll(p, &end, 10);
        while (*end == ' ') end++;
        if (end == p || *end || errno || f < 0) { hb_error("%s:%d: bad frame index '%s'", path, lineno, p); goto fail; }
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            int64_t *nf = realloc(fr, sizeof *fr * (size_t)cap);
            if (!nf) { hb_error("out of memory"); goto fail; }
            fr = nf;
            char **nt = realloc(tx, sizeof *tx * (size_t)cap);
            if (!nt) { hb_error("out of memory"); goto fail; }
            tx = nt;
        }
        fr[n] = f;
        tx[n] = strdup(tab + 1);
        if (!tx[n]) { hb_error("out of memory"); goto fail; }
        n++;
    }
    if (n == 0) { hb_error("%s: no prompt lines", path); goto fail; }
    /* stable sort by frame */
    int *idx = malloc(sizeof(int) * (size_t)n);
    if (!idx) { hb_error("out of memory"); goto fail; }
    for (int i = 0; i < n; i++) idx[i] = i;
    qsort_r(idx, (size_t)n, sizeof(int), cmp_idx, fr);
    int64_t *sf = malloc(sizeof *sf * (size_t)n);
    char **st = malloc(sizeof *st * (size_t)n);
    if (!sf || !st) { free(idx); free(sf); free(st); hb_error("out of memory"); goto fail; }
    for (int i = 0; i < n; i++) { sf[i] = fr[idx[i]]; st[i] = tx[idx[i]]; }
    free(idx); free(fr); free(tx);
    fr = sf; tx = st;
    if (fr[0] != 0) { hb_error("%s: the first prompt must start at frame 0 (got %lld)", path, (long long)fr[0]); goto fail; }
    *frames_out = fr;
    *texts_out = tx;
    rc = n;
    free(line);
    fclose(fp);
    return rc;
fail:
    for (int i = 0; i < n; i++) free(tx[i]);
    free(tx); free(fr); free(line);
    fclose(fp);
    return -1;
}

/* ------------------------------------------------------------------ pipeline */

void hb_ar_run_default(hb_ar_run *r) {
    memset(r, 0, sizeof *r);
    hb_ar_opts_default(&r->ar);
    r->ar.nsteps = 0, r->ar.shift = 0; /* the model's (settings.h): resolved with the folder */
    r->decoder = HB_AR_DEC_VAE;
}

typedef struct {
    hb_ar_run *r;
    hb_video_writer *vw;
    hb_rgb_sink sink;               /* every decoded frame: quantised, to the writer and to on_frames per chunk */
    hb_tae_decoder *td;             /* TAE: frames [0, 1] one at a time */
    hb_wan_vae *vae;
    hb_decoder *vd;                 /* VAE: the streaming decoder (feature caches carried across chunks) */
    int64_t h, w, C;
    double t0, t_first;
    int64_t latent_done;
} run_ctx;

/* An early stop by the caller keeps every frame written so far, playable under the partial name, when the
 * caller asked for it (keep_partial); an error removes it. */
static void keep_or_drop_partial(run_ctx *c) {
    hb_ar_run *r = c->r;
    r->partial_path[0] = 0;
    if (!c->sink.stopped || !r->keep_partial || c->sink.next == 0) { hb_video_writer_abort(c->vw); return; }
    char msg[HB_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", hb_last_error());
    if (hb_video_writer_close_partial(c->vw, r->partial_path, sizeof r->partial_path) == 0) {
        hb_log(HB_LOG_INFO, "stopped after %lld frames: the playable partial video is %s", (long long)c->sink.next,
               r->partial_path);
    }
    hb_error("%s", msg);
}

/* TAE frames [3, H, W] in [0, 1] (backend memory) -> the RGB sink, in order */
static int tae_cb(void *user, const hb_tae_frame *f) {
    run_ctx *c = user;
    if (!f->rgb) return 0;
    return hb_rgb_sink_put(&c->sink, c->sink.next, 1, f->rgb, f->H, f->W, 0.f, 1.f, false);
}

/* VAE frames [3, n, H, W] in [-1, 1] (host) from the streaming decoder -> the RGB sink */
static int vae_cb(void *user, int64_t t0, int64_t n, const float *video, int64_t H, int64_t W) {
    run_ctx *c = user;
    return hb_rgb_sink_put(&c->sink, t0, n, video, H, W, -1.f, 1.f, true);
}

static int chunk_cb(void *user, int64_t chunk, int64_t frame0, int64_t F, const float *x0) {
    run_ctx *c = user;
    hb_ar_run *r = c->r;
    const int64_t hw = c->h * c->w;
    /* the chunk's latents through the decoder (exactly the whole-video decode, memory fixed by the chunk size),
     * its frames to the caller as one batch */
    if (r->decoder == HB_AR_DEC_TAE && hb_tae_decoder_push_frames(c->td, x0, F, hw, F * hw)) return -1;
    if (r->decoder == HB_AR_DEC_VAE && hb_decoder_push(c->vd, x0, F, 0)) return -1;
    if (hb_rgb_sink_flush(&c->sink)) return hb_error_prefix("ar"), -1;
    c->latent_done = frame0 + F;
    double now = hb_time_now();
    if (chunk == 0) c->t_first = now;
    if (!r->quiet) {
        double el = now - c->t0;
        double fps_all = c->sink.next / (el > 0 ? el : 1e-9);
        double fps_steady = chunk > 0 ? (double)(4 * frame0) / (now - c->t_first > 0 ? now - c->t_first : 1e-9) : 0;
        hb_log(HB_LOG_INFO, "chunk %lld: latent frames %lld-%lld, %lld video frames out, %.1f s, %.3f frames/s "
               "(%.3f since chunk 0), RSS %.0f MiB", (long long)chunk, (long long)frame0, (long long)(frame0 + F - 1),
               (long long)c->sink.next, el, fps_all, fps_steady, hb_current_rss_bytes() / 1048576.0);
    }
    return 0;
}

/* The run's settings left 0 take the model's (settings.h: the release's, then hummingbird.json); the latent's
 * spatial factor follows from its channels (Wan2.1: 16 channels, 8x; Wan2.2: 48, 16x) and the size must fit it. */
static int resolve_run(hb_ar_run *r, const hb_model_folder *mf, const wan_dit_config *mc, int *sfac) {
    if (mc->in_dim != 16 && mc->in_dim != 48)
        return hb_error("ar: the DiT takes %d latent channels; Wan2.1 (16) and Wan2.2 (48) latents are supported",
                        mc->in_dim);
    *sfac = mc->in_dim == 48 ? 16 : 8;
    hb_ar_settings s;
    hb_ar_settings_for(mf, mc->in_dim, &s);
    if (r->width == 0) r->width = s.width;
    if (r->height == 0) r->height = s.height;
    if (r->video_frames == 0) r->video_frames = 4 * s.latent_frames - 3;
    if (r->fps <= 0) r->fps = s.fps;
    if (r->ar.nsteps == 0) memcpy(r->ar.steps_list, s.steps_list, (size_t)s.nsteps * sizeof *s.steps_list), r->ar.nsteps = s.nsteps;
    if (r->ar.shift <= 0) r->ar.shift = s.shift;
    int mult = *sfac * mc->patch[1];
    if (r->width <= 0 || r->height <= 0 || r->width % mult || r->height % mult)
        return hb_error("ar: width and height must be positive multiples of %d (got %dx%d)", mult, r->width, r->height);
    return 0;
}

/* Prompts (one, or a switch file), encoded with the folder's umT5. */
static int encode_prompts(hb_ar_run *r, const hb_model_folder *mf, const wan_dit_config *mc, int *np, int64_t **pframes,
                          char ***ptexts, hb_text_rows **rows, hb_ar_cond **conds) {
    if (r->prompts_file) {
        if ((*np = hb_ar_read_prompts(r->prompts_file, pframes, ptexts)) < 0) { *np = 0; return -1; }
    } else {
        *pframes = calloc(1, sizeof **pframes);
        *ptexts = calloc(1, sizeof **ptexts);
        if (!*pframes || !*ptexts || !((*ptexts)[0] = strdup(r->prompt ? r->prompt : ""))) return hb_error("out of memory");
        *np = 1;
    }
    if (*np < 1) return hb_error("%s: no prompts", r->prompts_file ? r->prompts_file : "ar");
    double tt = hb_time_now();
    hb_tokenizer *tok = hb_tokenizer_open_dir(mf->tokenizer, NULL, 0);
    if (!tok) return hb_error_prefix("%s: tokenizer: ", mf->tokenizer);
    int rc = -1;
    *rows = calloc((size_t)*np, sizeof **rows);
    *conds = calloc((size_t)*np, sizeof **conds);
    if (!*rows || !*conds) { hb_error("out of memory"); goto done; }
    hb_text_opts to = {.tok = tok, .encoder = mf->text_encoder, .text_len = mc->text_len, .text_dim = mc->text_dim,
                       .clean = true}; /* the XTX release cleans whitespace */
    if (hb_text_encode(&to, (const char *const *)*ptexts, *np, *rows)) goto done;
    for (int i = 0; i < *np; i++) (*conds)[i] = (hb_ar_cond){(*pframes)[i], (*rows)[i].ctx, (*rows)[i].len};
    rc = 0;
done:
    hb_tokenizer_free(tok);
    r->seconds_text = hb_time_now() - tt;
    return rc;
}

/* The decoder of the run: TAEHV or the streaming Wan VAE, checked against the latent. */
static int open_decoder(run_ctx *c, const hb_model_folder *mf, int sfac, hb_checkpoint **ck, hb_tae **tae) {
    hb_ar_run *r = c->r;
    if (r->decoder == HB_AR_DEC_TAE) {
        if (!mf->tae[0]) return hb_error("%s: no tiny decoder (taew2_1.safetensors / .pth) in the folder; use --decoder vae", mf->dir);
        if (!(*ck = hb_checkpoint_open(mf->tae)) || !(*tae = hb_tae_load(*ck, NULL, HB_TAE_DECODER))) return -1;
        if (hb_tae_latent_channels(*tae) != c->C || hb_tae_space_scale(*tae) != sfac)
            return hb_error("%s: the tiny decoder takes %d latent channels at %dx, the DiT makes %lld at %dx", mf->tae,
                            hb_tae_latent_channels(*tae), hb_tae_space_scale(*tae), (long long)c->C, sfac);
        if (!(c->td = hb_tae_decoder_new(*tae, c->h, c->w, tae_cb, c))) return -1;
    } else if (r->decoder == HB_AR_DEC_VAE) {
        if (!(*ck = hb_checkpoint_open(mf->vae)) || !(c->vae = hb_wan_vae_load(*ck, NULL))) return -1;
        if (hb_wan_vae_get_config(c->vae)->z_dim != c->C || hb_wan_vae_spatial_factor(c->vae) != sfac)
            return hb_error("%s: the VAE takes %d latent channels at %dx, the DiT makes %lld at %dx", mf->vae,
                            hb_wan_vae_get_config(c->vae)->z_dim, hb_wan_vae_spatial_factor(c->vae), (long long)c->C, sfac);
        hb_longdecode_opts lo = {.mode = HB_LD_CAUSAL, .clip = 1};
        if (!(c->vd = hb_decoder_new_wan(c->vae, c->h, c->w, &lo, vae_cb, c))) return -1;
    }
    return 0;
}

int hb_ar_run_pipeline(hb_ar_run *r) {
    double t_start = hb_time_now();
    hb_model_folder mf;
    if (!r->model_dir) return hb_error("ar: no model folder");
    if (hb_model_folder_scan_te(r->model_dir, r->text_encoder_dir, &mf)) return -1;
    if (r->video_frames < 0) return hb_error("ar: the frame count must be positive");
    const char *weights = r->checkpoint ? r->checkpoint : mf.dit_weights;
    if (hb_model_folder_family(&mf, 48) == HB_FAMILY_XT && !r->checkpoint)
        return hb_error("%s: a Hummingbird-XT folder (bidirectional Wan2.2-TI2V-5B) cannot run --mode ar; give the "
                        "causal XTX weights with --checkpoint FILE, or use a Hummingbird-XTX folder", r->model_dir);
    run_ctx c = {0};
    c.r = r;
    wan_dit *m = NULL;
    hb_checkpoint *dec_ck = NULL;
    hb_tae *tae = NULL;
    int64_t *pframes = NULL;
    char **ptexts = NULL;
    int np = 0, sfac = 8;
    hb_text_rows *rows = NULL;
    hb_ar_cond *conds = NULL;
    int rc = -1;
    if (!(m = hb_model_folder_open_dit(&mf, weights))) goto done;
    const wan_dit_config *mc = &m->cfg;
    if (resolve_run(r, &mf, mc, &sfac)) goto done;
    c.h = r->height / sfac;
    c.w = r->width / sfac;
    c.C = mc->in_dim;
    if (encode_prompts(r, &mf, mc, &np, &pframes, &ptexts, &rows, &conds)) goto done;
    if (open_decoder(&c, &mf, sfac, &dec_ck, &tae)) goto done;
    if (r->output && r->decoder != HB_AR_DEC_NONE) {
        hb_video_meta meta = {.prompt = ptexts[0], .model = "hummingbird-xtx", .seed = (int64_t)r->ar.seed,
                              .has_seed = true, .steps = r->ar.nsteps};
        hb_video_opts vo = {.fps = r->fps, .crf = r->crf, .streaming = true, .meta = &meta};
        if (!(c.vw = hb_video_writer_open(r->output, r->height, r->width, &vo))) goto done;
    }
    /* frames past the requested count (the last chunk's) are dropped; a chunk's frames are flushed together */
    const int64_t fmax = 4 * (r->ar.chunk > 0 ? r->ar.chunk : 3);
    if (hb_rgb_sink_init(&c.sink, r->video_frames, r->height, r->width, NULL, c.vw, r->on_frames, r->user, fmax)) goto done;
    /* latent frames: 1 + ceil((frames - 1) / 4) */
    hb_ar_opts *o = &r->ar;
    o->H = c.h;
    o->W = c.w;
    o->frames = 1 + (r->video_frames - 1 + 3) / 4;
    o->conds = conds;
    o->nconds = np;
    o->on_chunk = chunk_cb;
    o->user = &c;
    c.t0 = hb_time_now();
    if (hb_ar_generate(m, o)) goto done;
    if (c.vw) {
        int rcw = hb_video_writer_close(c.vw);
        c.vw = NULL;
        if (rcw) goto done;
    }
    rc = 0;
done:
    /* also after an early stop: the frames the caller received (on_frames), else the frames in the file */
    r->frames_written = r->on_frames && !r->keep_partial ? c.sink.accepted : c.sink.next;
    if (c.vw) keep_or_drop_partial(&c);
    hb_tae_decoder_free(c.td);
    hb_tae_free(tae);
    hb_decoder_free(c.vd);
    hb_wan_vae_free(c.vae);
    if (dec_ck) hb_checkpoint_close(dec_ck);
    hb_rgb_sink_free(&c.sink);
    hb_wan_dit_free(m);
    for (int i = 0; ptexts && i < np; i++) free(ptexts[i]);
    if (rows) hb_text_rows_free(rows, np);
    free(ptexts); free(pframes); free(rows); free(conds);
    r->seconds_total = hb_time_now() - t_start;
    r->peak_rss = hb_peak_rss_bytes();
    return rc;
}
