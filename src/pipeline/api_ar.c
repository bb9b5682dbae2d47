/* Public API of the autoregressive long-video pipeline (include/hummingbird.h, "Autoregressive long video"). */
#include "hummingbird.h"
#include "ops/ops.h"
#include "pipeline/ar.h"
#include "pipeline/settings.h"
#include <string.h>

void hb_ar_params_init(hb_ar_params *p) {
    memset(p, 0, sizeof *p);
    hb_ar_settings s;
    hb_ar_settings_for(NULL, 16, &s);
    p->chunk = (int)s.chunk, p->sink = (int)s.sink, p->window = (int)s.window, p->rope_relative = s.rope_relative;
    p->vae = HB_GEN_VAE_FULL;
}

/* The caller's progress callback (returns int) relayed to the pipeline's (void): a nonzero return raises
 * `stop`, checked when the next chunk's frames arrive. The relay also counts the chunks finished. */
typedef struct {
    const hb_ar_params *p;
    bool stop;
    int64_t chunks;
} api_ctx;

static void progress_cb(void *user, const char *stage, int step, int total, double el, double eta) {
    api_ctx *a = user;
    if (!strcmp(stage, "chunks")) a->chunks = step;
    if (a->p->progress && a->p->progress(a->p->progress_user, stage, step, total, el, eta)) a->stop = true;
}

static int frames_cb(void *user, int64_t first, int n, const uint8_t *rgb, int H, int W) {
    api_ctx *a = user;
    if (a->stop) return 1;
    return a->p->on_chunk ? a->p->on_chunk(a->p->user, first, n, rgb, H, W) : 0;
}

static int check_params(const hb_ar_params *p) {
    if (p->nsteps < 0 || p->nsteps > HB_AR_MAX_STEPS) return hb_error("hb_generate_ar: at most %d steps", HB_AR_MAX_STEPS);
    if (p->vae != HB_GEN_VAE_TAE && p->vae != HB_GEN_VAE_FULL && p->vae != HB_GEN_VAE_DEFAULT && p->vae != HB_GEN_VAE_NONE)
        return hb_error("hb_generate_ar: the decoder must be HB_GEN_VAE_TAE, HB_GEN_VAE_FULL or HB_GEN_VAE_NONE");
    if (p->crf < 0 || p->crf > 63) return hb_error("hb_generate_ar: crf %d is outside 0..63", p->crf);
    if (p->vae == HB_GEN_VAE_NONE && (p->output || p->on_chunk))
        return hb_error("hb_generate_ar: HB_GEN_VAE_NONE decodes nothing: give neither an output nor on_chunk");
    if (p->vae != HB_GEN_VAE_NONE && !p->output && !p->on_chunk)
        return hb_error("hb_generate_ar: give an output file or an on_chunk callback");
    return 0;
}

/* The public parameters onto the pipeline's run (0 fields keep the pipeline's defaults: the model's). */
static void fill_run(const hb_ar_params *p, const char *model_dir, hb_ar_run *r) {
    hb_ar_run_default(r);
    r->model_dir = model_dir;
    r->checkpoint = p->checkpoint;
    r->text_encoder_dir = p->text_encoder_dir;
    r->prompt = p->prompt;
    r->prompts_file = p->prompts_file;
    if (p->width) r->width = p->width;
    if (p->height) r->height = p->height;
    if (p->frames) r->video_frames = p->frames;
    if (p->chunk) r->ar.chunk = p->chunk;
    r->ar.sink = p->sink;
    r->ar.window = p->window;
    r->ar.rope = p->rope_relative ? WAN_ROPE_REL : WAN_ROPE_ABS;
    r->ar.cache_dtype = p->cache_f32 ? HB_F32 : HB_BF16;
    if (p->nsteps > 0) {
        r->ar.nsteps = p->nsteps;
        memcpy(r->ar.steps_list, p->steps_list, sizeof(int64_t) * (size_t)p->nsteps);
    }
    if (p->shift > 0) r->ar.shift = p->shift;
    r->ar.seed = p->seed;
    r->ar.refresh_last = !p->no_last_refresh;
    /* DEFAULT: the tiny streaming decoder */
    r->decoder = p->vae == HB_GEN_VAE_FULL ? HB_AR_DEC_VAE : p->vae == HB_GEN_VAE_NONE ? HB_AR_DEC_NONE : HB_AR_DEC_TAE;
    r->output = p->output;
    r->crf = p->crf;
    r->keep_partial = p->keep_partial != 0;
    if (p->fps > 0) r->fps = p->fps;
    r->quiet = true;
}

static void fill_stats(const hb_ar_run *r, const api_ctx *a, hb_ar_stats *st) {
    memset(st, 0, sizeof *st);
    st->frames = r->frames_written;
    st->chunks = a->chunks;
    st->dit_forwards = r->ar.forwards;
    st->width = r->width, st->height = r->height, st->fps = r->fps;
    st->seconds_text = r->seconds_text, st->seconds_total = r->seconds_total;
    st->peak_rss_bytes = r->peak_rss;
    memcpy(st->partial_path, r->partial_path, sizeof st->partial_path);
}

int hb_generate_ar(const char *model_dir, const hb_ar_params *p, int64_t *frames_out) {
    if (!p) return hb_error("hb_generate_ar: no parameters");
    if (p->stats) memset(p->stats, 0, sizeof *p->stats);
    if (check_params(p)) return -1;
    hb_ar_run r;
    fill_run(p, model_dir, &r);
    api_ctx a = {p, false, 0};
    if (p->on_chunk || p->progress) { r.on_frames = frames_cb; r.user = &a; }
    r.ar.progress = progress_cb, r.ar.progress_user = &a; /* counts chunks; the library draws nothing */
    const hb_backend *be = p->device && *p->device ? hb_backend_find(p->device) : hb_backend_current();
    if (!be) return -1;
    const hb_backend *prev = hb_backend_use(be);
    int rc = hb_ar_run_pipeline(&r);
    if (hb_backend_sync() && rc == 0) rc = -1;
    hb_backend_use(prev);
    if (frames_out) *frames_out = r.frames_written;
    if (p->stats) fill_stats(&r, &a, p->stats);
    if (rc && a.stop) {
        hb_clear_error();
        hb_error("cancelled by the progress callback");
        rc = HB_CANCELLED;
    }
    if (rc == 0) hb_clear_error();
    return rc;
}
