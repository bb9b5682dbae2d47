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
 * `stop`, checked when the next chunk's frames arrive. */
typedef struct {
    const hb_ar_params *p;
    bool stop;
} api_ctx;

static void progress_cb(void *user, const char *stage, int step, int total, double el, double eta) {
    api_ctx *a = user;
    if (a->p->progress(a->p->progress_user, stage, step, total, el, eta)) a->stop = true;
}

static int frames_cb(void *user, int64_t first, int n, const uint8_t *rgb, int H, int W) {
    api_ctx *a = user;
    if (a->stop) return 1;
    return a->p->on_chunk ? a->p->on_chunk(a->p->user, first, n, rgb, H, W) : 0;
}

int hb_generate_ar(const char *model_dir, const hb_ar_params *p, int64_t *frames_out) {
    if (!p) return hb_error("hb_generate_ar: no parameters");
    if (p->nsteps < 0 || p->nsteps > HB_AR_MAX_STEPS) return hb_error("hb_generate_ar: at most %d steps", HB_AR_MAX_STEPS);
    if (p->vae != HB_GEN_VAE_TAE && p->vae != HB_GEN_VAE_FULL && p->vae != HB_GEN_VAE_DEFAULT)
        return hb_error("hb_generate_ar: the decoder must be HB_GEN_VAE_TAE or HB_GEN_VAE_FULL");
    hb_ar_run r;
    hb_ar_run_default(&r);
    r.model_dir = model_dir;
    r.checkpoint = p->checkpoint;
    r.text_encoder_dir = p->text_encoder_dir;
    r.prompt = p->prompt;
    r.prompts_file = p->prompts_file;
    if (p->width) r.width = p->width;
    if (p->height) r.height = p->height;
    if (p->frames) r.video_frames = p->frames;
    if (p->chunk) r.ar.chunk = p->chunk;
    r.ar.sink = p->sink;
    r.ar.window = p->window;
    r.ar.rope = p->rope_relative ? WAN_ROPE_REL : WAN_ROPE_ABS;
    r.ar.cache_dtype = p->cache_f32 ? HB_F32 : HB_BF16;
    if (p->nsteps > 0) {
        r.ar.nsteps = p->nsteps;
        memcpy(r.ar.steps_list, p->steps_list, sizeof(int64_t) * (size_t)p->nsteps);
    }
    if (p->shift > 0) r.ar.shift = p->shift;
    r.ar.seed = p->seed;
    r.decoder = p->vae == HB_GEN_VAE_FULL ? HB_AR_DEC_VAE : HB_AR_DEC_TAE; /* DEFAULT: the tiny streaming decoder */
    r.output = p->output;
    if (p->fps > 0) r.fps = p->fps;
    r.quiet = true;
    api_ctx a = {p, false};
    if (p->on_chunk || p->progress) { r.on_frames = frames_cb; r.user = &a; }
    if (p->progress) { r.ar.progress = progress_cb; r.ar.progress_user = &a; }
    if (!p->output && !p->on_chunk) return hb_error("hb_generate_ar: give an output file or an on_chunk callback");
    const hb_backend *be = p->device && *p->device ? hb_backend_find(p->device) : hb_backend_current();
    if (!be) return -1;
    const hb_backend *prev = hb_backend_use(be);
    int rc = hb_ar_run_pipeline(&r);
    if (hb_backend_sync() && rc == 0) rc = -1;
    hb_backend_use(prev);
    if (frames_out) *frames_out = r.frames_written;
    if (rc && a.stop) {
        hb_clear_error();
        hb_error("cancelled by the progress callback");
        rc = HB_CANCELLED;
    }
    if (rc == 0) hb_clear_error();
    return rc;
}
