/* pipeline/api: include/hummingbird.h on top of the models: text -> umT5 -> DiT sampling (xt.c) -> VAE / TAE. */
#include "hummingbird.h"
#include "pipeline/xt.h"
#include "pipeline/model_folder.h"
#include "pipeline/settings.h"
#include "pipeline/text.h"
#include "models/tokenizer.h"
#include "ops/ops.h"
#include "models/umt5.h"
#include "models/wan_dit.h"
#include "models/wan_vae.h"
#include "models/tae.h"
#include "models/light_vae.h"
#include "pipeline/longdecode.h"
#include "pipeline/frame_sink.h"
#include "io/checkpoint.h"
#include "io/image.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hb_model {
    hb_model_folder mf;
    const hb_backend *backend;  /* where generate runs (weights upload to it on first use) */
    bool offload;
    wan_dit_config dcfg;
    hb_tokenizer *tok;
    wan_dit *dit;
    hb_checkpoint *vae_ck;
    hb_wan_vae *vae;
    hb_checkpoint *tae_ck;
    hb_tae *tae;
    hb_light_vae *light;
    char light_from[HB_MF_PATH]; /* the folder or file it came from */
    int z, vae_sf, vae_tf, size_mult;
    hb_xt_settings defaults;    /* the model family's, with hummingbird.json applied (pipeline/settings.h) */
};

static _Thread_local hb_xt_debug g_debug;
static _Thread_local bool g_debug_on;
void hb_xt_set_debug(const hb_xt_debug *d) {
    g_debug_on = d != NULL;
    if (d) g_debug = *d;
}

const char *hb_last_error_message(void) { return hb_last_error_text(); }

/* Cancellation: the caller's progress callback (returns int) is relayed to the models' progress (void); a
 * nonzero return raises `stop`, which the DiT call and the decode loops check. One run per thread at a time. */
typedef struct { hb_generate_progress_fn fn; void *user; bool stop; } progress_relay;
static _Thread_local progress_relay g_relay;
static void relay_progress(void *user, const char *stage, int step, int total, double el, double eta) {
    progress_relay *r = user;
    if (r->fn(r->user, stage, step, total, el, eta)) r->stop = true;
}
#define RELAY(p) ((p)->progress ? relay_progress : NULL), &g_relay
static int relay_check(void) { return g_relay.stop ? hb_error("cancelled") : 0; }

#ifndef HB_VERSION_STRING
#define HB_VERSION_STRING "0.0.0"
#endif
const char *hb_version(void) { return HB_VERSION_STRING; }

/* ---------------------------------------------------------------- component loading */

static int open_dit(hb_model *m) {
    if (m->dit) return 0;
    m->dit = hb_model_folder_open_dit(&m->mf, NULL);
    if (!m->dit) return -1;
    m->dcfg = m->dit->cfg;
    return 0;
}
static void close_dit(hb_model *m) { hb_wan_dit_free(m->dit); m->dit = NULL; }

static int open_vae(hb_model *m) {
    if (m->vae) return 0;
    m->vae_ck = hb_checkpoint_open(m->mf.vae);
    if (!m->vae_ck) return -1;
    m->vae = hb_wan_vae_load(m->vae_ck, NULL);
    if (!m->vae) {
        hb_checkpoint_close(m->vae_ck);
        m->vae_ck = NULL;
        return -1;
    }
    return 0;
}
static void close_vae(hb_model *m) {
    hb_wan_vae_free(m->vae);
    hb_checkpoint_close(m->vae_ck);
    m->vae = NULL, m->vae_ck = NULL;
}

static int open_tae(hb_model *m) {
    if (m->tae) return 0;
    if (!m->mf.tae[0]) return hb_error("%s: no tiny decoder in this folder (taew2_2.safetensors / taew2_1.safetensors / tae/); "
                                       "use --vae full", m->mf.dir);
    m->tae_ck = hb_checkpoint_open(m->mf.tae);
    if (!m->tae_ck) return -1;
    m->tae = hb_tae_load(m->tae_ck, NULL, HB_TAE_DECODER);
    if (!m->tae) {
        hb_checkpoint_close(m->tae_ck);
        m->tae_ck = NULL;
        return -1;
    }
    return 0;
}
static void close_tae(hb_model *m) {
    hb_tae_free(m->tae);
    hb_checkpoint_close(m->tae_ck);
    m->tae = NULL, m->tae_ck = NULL;
}

static void close_light(hb_model *m) { hb_light_vae_free(m->light); m->light = NULL; }
/* path: a light decoder folder or file given with the request, else the model folder's */
static int open_light(hb_model *m, const char *path) {
    if (!path || !*path) path = m->mf.light;
    if (m->light && !strcmp(m->light_from, path)) return 0;
    close_light(m);
    if (!path[0]) return hb_error("%s: light decoder not available in this folder (no vae/" HB_LIGHT_VAE_RELEASE_DIR "/); "
                                  "give one with --light-vae, or use --vae full or --vae tae", m->mf.dir);
    m->light = hb_light_vae_load(path);
    if (m->light) snprintf(m->light_from, sizeof m->light_from, "%s", path);
    return m->light ? 0 : -1;
}

hb_model *hb_model_load(const char *dir, const hb_load_params *params) {
    hb_clear_error();
    hb_model *m = calloc(1, sizeof *m);
    if (!m) { hb_error("out of memory"); return NULL; }
    if (params && params->threads > 0) hb_threads_init(params->threads);
    m->offload = params && params->offload;
    /* NULL / "": the calling thread's backend (the CPU unless hb -d or the caller chose one) */
    m->backend = params && params->device && *params->device ? hb_backend_find(params->device) : hb_backend_current();
    if (!m->backend) goto fail;
    if (hb_model_folder_scan_dit(dir, params ? params->dit : NULL, &m->mf)) goto fail;
    char found[HB_MF_PATH];
    m->tok = hb_tokenizer_open_dir(m->mf.tokenizer, found, sizeof found);
    if (!m->tok) goto fail;
    /* DiT, VAE and text encoder are all checked now (names, shapes) so a broken folder fails early. */
    if (open_dit(m)) goto fail;
    if (open_vae(m)) goto fail;
    const hb_wan_vae_config *vc = hb_wan_vae_get_config(m->vae);
    m->z = vc->z_dim;
    m->vae_sf = hb_wan_vae_spatial_factor(m->vae);
    m->vae_tf = hb_wan_vae_temporal_factor(m->vae);
    if (m->z != m->dcfg.in_dim || m->z != m->dcfg.out_dim) {
        hb_error("%s: the VAE has %d latent channels but the DiT takes %d and gives %d (mixed model families?)",
                 dir, m->z, m->dcfg.in_dim, m->dcfg.out_dim);
        goto fail;
    }
    m->size_mult = m->vae_sf * m->dcfg.patch[1];
    if (m->dcfg.patch[2] * m->vae_sf > m->size_mult) m->size_mult = m->dcfg.patch[2] * m->vae_sf;
    if (m->dcfg.patch[0] != 1) { hb_error("%s: DiT temporal patch %d is not supported (expected 1)", dir, m->dcfg.patch[0]); goto fail; }
    if (m->offload) close_vae(m), close_dit(m);
    {
        hb_umt5 *te = hb_umt5_open(m->mf.text_encoder);
        if (!te) goto fail;
        const hb_umt5_config *tc = hb_umt5_get_config(te);
        int64_t tdim = tc->dim, tvocab = tc->vocab;
        hb_umt5_free(te);
        if (tdim != m->dcfg.text_dim) {
            hb_error("%s: the text encoder gives %lld-wide rows but the DiT expects text_dim %d", dir, (long long)tdim,
                     m->dcfg.text_dim);
            goto fail;
        }
        if (hb_tokenizer_vocab_size(m->tok) > tvocab) {
            hb_error("%s: tokenizer %s has %d pieces but the text encoder only %lld embeddings", dir, found,
                     hb_tokenizer_vocab_size(m->tok), (long long)tvocab);
            goto fail;
        }
    }
    hb_xt_settings_for(&m->mf, m->z, &m->defaults);
    hb_log(HB_LOG_DEBUG, "model %s (%s): DiT %s (dim %d, %d layers), VAE %s, text encoder %s, tokenizer %s, tiny decoder %s",
           dir, hb_model_family_name(m->defaults.family), m->mf.dit, m->dcfg.dim, m->dcfg.num_layers, m->mf.vae, m->mf.text_encoder, found,
           m->mf.tae[0] ? m->mf.tae : "(none)");
    hb_clear_error();
    return m;
fail:
    hb_model_free(m);
    return NULL;
}

void hb_model_free(hb_model *m) {
    if (!m) return;
    /* the parts free under the backend they ran on (device copies of their weights go with them) */
    const hb_backend *prev = m->backend ? hb_backend_use(m->backend) : NULL;
    close_dit(m);
    close_vae(m);
    close_tae(m);
    close_light(m);
    hb_tokenizer_free(m->tok);
    if (m->backend) hb_backend_use(prev);
    free(m);
}

int hb_model_latent_channels(const hb_model *m) { return m ? m->z : 0; }
int hb_model_size_multiple(const hb_model *m) { return m ? m->size_mult : 0; }
double hb_model_default_fps(const hb_model *m) { return m ? m->defaults.fps : 0; }

void hb_generate_params_init(hb_generate_params *p) {
    memset(p, 0, sizeof *p);
    p->prompt = "";
    p->cfg = -1;
}

/* The caller's parameters over the model's defaults: every field of the result is set. The size of an I2V
 * run with cover fit and no size follows the image (the reference's best_output_size). */
static int resolve_params(const hb_model *m, const hb_generate_params *p, const hb_image *im, hb_generate_params *q) {
    const hb_xt_settings *d = &m->defaults;
    *q = *p;
    if (q->sampler == HB_GEN_SAMPLER_DEFAULT) q->sampler = d->sampler;
    if (q->nsteps == 0) q->nsteps = d->nsteps, memcpy(q->steps_list, d->steps_list, (size_t)d->nsteps * sizeof *d->steps_list);
    if (q->shift == 0) q->shift = d->shift;
    if (q->steps == 0) q->steps = d->base_steps;
    if (q->cfg < 0) q->cfg = d->cfg;
    if (q->vae == HB_GEN_VAE_DEFAULT) q->vae = q->light_vae_path && *q->light_vae_path ? HB_GEN_VAE_LIGHT : d->vae;
    if (q->image_fit == HB_GEN_IMAGE_DEFAULT) q->image_fit = d->image_fit;
    if (q->noise == HB_GEN_NOISE_DEFAULT) q->noise = d->noise;
    if (q->timestep == HB_GEN_T_DEFAULT) q->timestep = d->timestep;
    if (q->frames == 0) q->frames = d->frames;
    if (im && q->image_fit == HB_GEN_IMAGE_COVER && (q->width <= 0 || q->height <= 0))
        return hb_wan_best_output_size(im->width, im->height, m->size_mult, m->size_mult, (int64_t)1280 * 704, &q->width,
                                       &q->height);
    if (q->width == 0) q->width = d->width;
    if (q->height == 0) q->height = d->height;
    return 0;
}

void hb_frames_free(hb_video_frames *v) {
    if (!v) return;
    hb_free(v->rgb);
    v->rgb = NULL;
}

/* ---------------------------------------------------------------- generation */

typedef struct {
    hb_model *m;
    wan_dit_text *tc, *tu;
    int64_t F, H, W;
    hb_arena arena;
} dit_ctx;

static int dit_fn(void *user, const float *x, const float *t, int64_t nt, int cond, float *v) {
    dit_ctx *c = user;
    if (relay_check()) return -1;
    wan_dit_input in = {.x = x, .F = c->F, .H = c->H, .W = c->W, .t = t, .nt = nt, .text = cond ? c->tc : c->tu};
    wan_dit_opts o = {.arena = &c->arena};
    return hb_wan_dit_forward(c->m->dit, &in, v, &o);
}

static void stage_done(const hb_generate_params *p, const char *stage, double t0) {
    hb_progress pr;
    hb_progress_begin(&pr, RELAY(p), stage, 1);
    pr.t0 = t0;
    hb_progress_step(&pr, 1);
    hb_progress_end(&pr);
}

static int check_params(const hb_model *m, const hb_generate_params *p) {
    if (!p->prompt) return hb_error("no prompt (use \"\" for an empty one)");
    const int k = m->size_mult;
    if (p->width <= 0 || p->height <= 0 || p->width % k || p->height % k) {
        int w = p->width > 0 ? p->width : k, h = p->height > 0 ? p->height : k;
        return hb_error("size %dx%d: width and height must be positive multiples of %d (VAE stride %d x DiT patch %d); "
                        "nearest valid: %dx%d", p->width, p->height, k, m->vae_sf, m->dcfg.patch[1],
                        (w + k / 2) / k * k > 0 ? (w + k / 2) / k * k : k, (h + k / 2) / k * k > 0 ? (h + k / 2) / k * k : k);
    }
    if (p->width > 8192 || p->height > 8192) return hb_error("size %dx%d: at most 8192 per side", p->width, p->height);
    if (p->frames < 1 || (p->frames - 1) % m->vae_tf)
        return hb_error("%d frames: the frame count must be %dk+1 (1, 5, 9, ..., 121), e.g. %d", p->frames, m->vae_tf,
                        p->frames < 1 ? 1 : (p->frames - 1) / m->vae_tf * m->vae_tf + 1);
    if (p->frames > 4001) return hb_error("%d frames: at most 4001", p->frames);
    if (p->nsteps < 0 || p->nsteps > HB_GEN_MAX_STEPS) return hb_error("steps list: 1..%d entries", HB_GEN_MAX_STEPS);
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps_list[i] < 0 || p->steps_list[i] > 1000)
            return hb_error("steps list: entry %d is %lld, outside [0, 1000]", i, (long long)p->steps_list[i]);
    if (p->shift < 0 || !isfinite(p->shift)) return hb_error("shift %g: must be a positive number", p->shift);
    if (p->steps < 0 || p->steps > 1000) return hb_error("steps %d: must be 1..1000", p->steps);
    if (p->vae_tile < 0) return hb_error("vae tile %d: must be >= 0", p->vae_tile);
    if (p->vae == HB_GEN_VAE_LIGHT && !m->mf.light[0] && !(p->light_vae_path && *p->light_vae_path))
        return hb_error("%s: light decoder not available in this folder (no vae/" HB_LIGHT_VAE_RELEASE_DIR "/); "
                        "give one with --light-vae, or use --vae full or --vae tae", m->mf.dir);
    if (p->light_tiling < 0 || p->light_tiling > 2) return hb_error("light tiling %d: 0, 1 or 2", p->light_tiling);
    if (p->vae == HB_GEN_VAE_TAE && !m->mf.tae[0])
        return hb_error("%s: no tiny decoder in this folder (taew2_2.safetensors / taew2_1.safetensors / tae/); use --vae full",
                        m->mf.dir);
    if (p->vae != HB_GEN_VAE_FULL && p->vae != HB_GEN_VAE_TAE && p->vae != HB_GEN_VAE_LIGHT) return hb_error("unknown decoder kind %d", (int)p->vae);
    if (p->sampler < HB_GEN_SAMPLER_XT || p->sampler > HB_GEN_SAMPLER_EULER) return hb_error("unknown sampler %d", (int)p->sampler);
    if (p->image_fit != HB_GEN_IMAGE_STRETCH && p->image_fit != HB_GEN_IMAGE_COVER) return hb_error("unknown image fit %d", (int)p->image_fit);
    if (p->noise != HB_GEN_NOISE_TORCH && p->noise != HB_GEN_NOISE_STREAM) return hb_error("unknown noise kind %d", (int)p->noise);
    if (p->timestep < HB_GEN_T_FLOAT || p->timestep > HB_GEN_T_INT_F32) return hb_error("unknown timestep rule %d", (int)p->timestep);
    if (p->image_path && p->image_rgb) return hb_error("both image_path and image_rgb are set: give one input image");
    if (p->image_rgb && (p->image_width <= 0 || p->image_height <= 0)) return hb_error("image buffer: bad size %dx%d", p->image_width, p->image_height);
    return 0;
}

static int load_input_image(const hb_generate_params *p, hb_image *im) {
    if (p->image_path) return hb_image_load(p->image_path, im);
    if (p->image_width <= 0 || p->image_height <= 0)
        return hb_error("image buffer: bad size %dx%d", p->image_width, p->image_height);
    if (hb_image_alloc(im, p->image_width, p->image_height)) return -1;
    memcpy(im->rgb, p->image_rgb, (size_t)p->image_width * (size_t)p->image_height * 3);
    return 0;
}

static int generate(hb_model *m, const hb_generate_params *pin, hb_video_frames *out);

int hb_generate(hb_model *m, const hb_generate_params *pin, hb_video_frames *out) {
    if (!m) { hb_clear_error(); return hb_error("hb_generate: no model"); }
    const hb_backend *prev = hb_backend_use(m->backend);
    g_relay = (progress_relay){pin ? pin->progress : NULL, pin ? pin->progress_user : NULL, false};
    int rc = generate(m, pin, out);
    if (hb_backend_sync() && rc == 0) rc = -1;
    hb_backend_use(prev);
    if (rc && g_relay.stop) {
        hb_clear_error();
        hb_error("cancelled by the progress callback");
        rc = HB_CANCELLED;
    }
    if (rc == 0) hb_clear_error(); /* "" after success, as the header says */
    return rc;
}

/* One generation's state, stage to stage. */
typedef struct {
    hb_model *m;
    const hb_generate_params *p;
    hb_video_frames *out;
    int64_t C, F, H, W, tpf; /* latent channels, frames, size; DiT tokens per latent frame */
    bool guided;
    float *lat, *cond0, *img;
    hb_text_rows text[2];
    wan_dit_text tc, tu;
    dit_ctx dc;
    bool have_arena;
    hb_image im0, im;
} gen_ctx;

/* 1. prompt (and negative prompt when guided) -> text rows */
static int encode_text(gen_ctx *g) {
    const hb_generate_params *p = g->p;
    double t0 = hb_time_now();
    const char *texts[2] = {p->prompt, p->negative ? p->negative : hb_wan_default_negative};
    hb_text_opts to = {.tok = g->m->tok, .encoder = g->m->mf.text_encoder, .text_len = g->m->dcfg.text_len,
                       .text_dim = g->m->dcfg.text_dim, .clean = g->m->defaults.clean_prompt, .low_memory = g->m->offload,
                       .progress = p->progress ? relay_progress : NULL, .progress_user = &g_relay};
    if (hb_text_encode(&to, texts, g->guided ? 2 : 1, g->text)) return hb_error_prefix("text encoder"), -1;
    g->out->seconds_text = hb_time_now() - t0;
    return 0;
}

/* 2. input image -> latent frame 0 (cond0), through the VAE encoder */
static int encode_image(gen_ctx *g) {
    const hb_generate_params *p = g->p;
    hb_model *m = g->m;
    double t0 = hb_time_now();
    if (p->image_fit == HB_GEN_IMAGE_COVER ? hb_image_cover_crop(&g->im0, p->width, p->height, &g->im)
                                           : hb_image_resize(&g->im0, p->width, p->height, &g->im))
        return -1;
    /* the image crosses to the backend's memory once, as floats in [-1, 1] */
    const size_t ib = (size_t)3 * (size_t)p->width * (size_t)p->height * sizeof(float);
    g->img = hb_dev_alloc(ib, "input image");
    g->cond0 = hb_dev_alloc((size_t)(g->C * g->H * g->W) * sizeof(float), "image latent");
    float *himg = hb_malloc(ib, "input image");
    if (!g->img || !g->cond0 || !himg) { hb_free(himg); return -1; }
    hb_image_to_chw(&g->im, -1.0f, 1.0f, himg);
    int up = hb_dev_upload(g->img, himg, ib);
    hb_free(himg);
    if (up || open_vae(m)) return -1;
    if (hb_wan_vae_encode(m->vae, g->img, 1, p->height, p->width, g->cond0, NULL)) return hb_error_prefix("image encode"), -1;
    if (m->offload) close_vae(m);
    if (g_debug_on && g_debug.cond0) g_debug.cond0(g_debug.user, g->cond0, g->C, g->H, g->W);
    g->out->seconds_image = hb_time_now() - t0;
    stage_done(p, "image", t0);
    return 0;
}

/* The DiT's activation arena, sized for the run (per-token t with an image: the ungrouped layout may need more). */
static int dit_arena(gen_ctx *g) {
    const int64_t L = g->F * g->tpf;
    size_t ws = hb_wan_dit_workspace_bytes(&g->m->dit->cfg, L, g->cond0 ? L : 1, true);
    if (hb_arena_init_dev(&g->dc.arena, ws, "pipeline DiT activations")) return -1;
    g->have_arena = true;
    return 0;
}

/* 3. noise -> latent video, through the sampler and the DiT */
static int denoise(gen_ctx *g) {
    const hb_generate_params *p = g->p;
    hb_model *m = g->m;
    double t0 = hb_time_now();
    if (open_dit(m)) return -1;
    if (hb_wan_dit_text_prepare(m->dit, g->text[0].ctx, g->text[0].len, true, &g->tc, NULL, NULL)) return -1;
    if (g->guided && hb_wan_dit_text_prepare(m->dit, g->text[1].ctx, g->text[1].len, true, &g->tu, NULL, NULL)) return -1;
    if (!(g->lat = hb_dev_alloc((size_t)(g->C * g->F * g->H * g->W) * sizeof(float), "latent"))) return -1;
    g->dc = (dit_ctx){.m = m, .tc = &g->tc, .tu = g->guided ? &g->tu : &g->tc, .F = g->F, .H = g->H, .W = g->W};
    if (dit_arena(g)) return -1;
    const hb_gen_sampler smp = p->sampler;
    hb_xt_args a = {.C = g->C, .F = g->F, .H = g->H, .W = g->W, .tokens_per_frame = g->tpf, .cond0 = g->cond0,
                    .sampler = smp == HB_GEN_SAMPLER_XT ? HB_XT_FEWSTEP : smp == HB_GEN_SAMPLER_UNIPC ? HB_XT_UNIPC : HB_XT_EULER,
                    .steps_list = p->steps_list, .nsteps = p->nsteps, .shift = p->shift, .steps = p->steps,
                    .t_feed = p->timestep == HB_GEN_T_INT_BF16 ? HB_XT_T_INT_BF16
                              : p->timestep == HB_GEN_T_INT_F32 ? HB_XT_T_INT_F32 : HB_XT_T_FLOAT,
                    .noise = p->noise == HB_GEN_NOISE_TORCH ? HB_XT_NOISE_RELEASE : HB_XT_NOISE_STREAM,
                    .cfg = g->guided ? p->cfg : 1.0, .seed = p->seed, .model = dit_fn, .model_user = &g->dc,
                    .progress = p->progress ? relay_progress : NULL, .progress_user = &g_relay};
    if (g_debug_on) a.observe = g_debug.observe, a.observe_user = g_debug.user;
    if (hb_xt_sample(&a, g->lat)) return -1;
    hb_arena_free(&g->dc.arena);
    g->have_arena = false;
    hb_wan_dit_text_free(&g->tc);
    hb_wan_dit_text_free(&g->tu);
    if (m->offload) close_dit(m);
    g->out->seconds_denoise = hb_time_now() - t0;
    return 0;
}

/* TAEHV frames [3, H, W] in [0, 1] (current memory space) -> the RGB sink */
static int tae_frame(void *user, const hb_tae_frame *f) {
    if (f->index < 0) return 0;
    return hb_rgb_sink_put(user, f->index, 1, f->rgb, f->H, f->W, 0.0f, 1.0f, false);
}

/* frames [3, n, H, W] in [-1, 1] (host) from the long-video decoder -> the RGB sink */
static int ld_emit(void *user, int64_t t0, int64_t n, const float *video, int64_t H, int64_t W) {
    return hb_rgb_sink_put(user, t0, n, video, H, W, -1.0f, 1.0f, true);
}

/* 4a. the tiny decoder, frame by frame */
static int decode_tae(gen_ctx *g, hb_rgb_sink *sink, int64_t *got) {
    hb_model *m = g->m;
    if (open_tae(m)) return -1;
    if (hb_tae_latent_channels(m->tae) != g->C || hb_tae_space_scale(m->tae) != m->vae_sf)
        return hb_error("%s: the tiny decoder takes %d channels at %dx but the model makes %lld at %dx", m->mf.tae,
                        hb_tae_latent_channels(m->tae), hb_tae_space_scale(m->tae), (long long)g->C, m->vae_sf);
    hb_tae_decoder *d = hb_tae_decoder_new(m->tae, g->H, g->W, tae_frame, sink);
    if (!d) return -1;
    hb_progress pr;
    hb_progress_begin(&pr, RELAY(g->p), "decode", (int)g->F);
    int r = 0;
    for (int64_t f = 0; f < g->F && !r; f++) {
        r = hb_tae_decoder_push(d, g->lat + f * g->H * g->W, g->F * g->H * g->W);
        hb_progress_step(&pr, (int)f + 1);
        if (!r) r = relay_check();
    }
    hb_progress_end(&pr);
    *got = hb_tae_decoder_frames_out(d);
    hb_tae_decoder_free(d);
    return r;
}

/* The light decoder or the full VAE as a frame decoder, checked against the latent. */
static int open_frame_decoder(gen_ctx *g, hb_frame_decoder *fd, const char **file) {
    hb_model *m = g->m;
    if (g->p->vae == HB_GEN_VAE_LIGHT) {
        if (open_light(m, g->p->light_vae_path)) return -1;
        hb_light_vae_frame_decoder(m->light, fd), *file = m->light_from;
        if (hb_light_vae_get_config(m->light)->out_channels != 3) return hb_error("%s: the light decoder does not make RGB", *file);
    } else {
        if (open_vae(m)) return -1;
        hb_wan_vae_frame_decoder(m->vae, fd), *file = m->mf.vae;
    }
    if (fd->latent_channels != g->C || fd->spatial_factor != m->vae_sf || fd->temporal_factor != m->vae_tf)
        return hb_error("%s: the %s takes %d channels at %dx%d but the model makes %lld at %dx%d", *file, fd->name,
                        fd->latent_channels, fd->spatial_factor, fd->temporal_factor, (long long)g->C, m->vae_sf, m->vae_tf);
    return 0;
}

/* 4b. light and full Wan VAE: streamed through pipeline/longdecode (causal decoders clip by clip through their
 * state, exact and in memory independent of the length; the light decoder's release tiles on request), with
 * optional spatial tiles */
static int decode_long(gen_ctx *g, hb_rgb_sink *sink, int64_t *got) {
    const hb_generate_params *p = g->p;
    hb_frame_decoder fd;
    const char *file = NULL;
    if (open_frame_decoder(g, &fd, &file)) return -1;
    hb_longdecode_opts lo = {.mode = HB_LD_AUTO, .clip = 1, .tile = p->vae_tile};
    if (p->vae == HB_GEN_VAE_LIGHT && p->light_tiling) /* temporal tiles of the release's size: aligned, or the release's own */
        lo.mode = HB_LD_TILED, lo.light_tiling = p->light_tiling == 2 ? HB_LD_LIGHT_RELEASE : HB_LD_LIGHT_ALIGNED;
    hb_decoder *d = hb_decoder_new(&fd, g->H, g->W, &lo, ld_emit, sink);
    if (!d) return -1;
    hb_progress pr;
    hb_progress_begin(&pr, RELAY(p), "decode", (int)g->F);
    int r = 0;
    for (int64_t f = 0; f < g->F && !r; f++) {
        r = hb_decoder_push(d, g->lat + f * g->H * g->W, 1, g->F * g->H * g->W);
        hb_progress_step(&pr, (int)f + 1);
        if (!r) r = relay_check();
    }
    if (!r) r = hb_decoder_finish(d);
    hb_progress_end(&pr);
    *got = hb_decoder_frames_out(d);
    hb_decoder_free(d);
    return r ? (hb_error_prefix("decode"), -1) : 0;
}

/* 4. latent video -> uint8 frames in out->rgb */
static int decode_video(gen_ctx *g) {
    const hb_generate_params *p = g->p;
    hb_model *m = g->m;
    double t0 = hb_time_now();
    hb_video_frames *out = g->out;
    if (!(out->rgb = hb_malloc((size_t)p->frames * (size_t)p->width * (size_t)p->height * 3, "output frames"))) return -1;
    hb_rgb_sink sink;
    hb_rgb_sink_init(&sink, p->frames, p->height, p->width, out->rgb, NULL, NULL, NULL, 0);
    int64_t got = 0;
    int rc = p->vae == HB_GEN_VAE_TAE ? decode_tae(g, &sink, &got) : decode_long(g, &sink, &got);
    hb_rgb_sink_free(&sink);
    if (rc) return -1;
    const char *what = p->vae == HB_GEN_VAE_TAE ? "tiny decoder" : p->vae == HB_GEN_VAE_LIGHT ? "light decoder" : "VAE decoder";
    if (got != p->frames) return hb_error("%s gave %lld frames, expected %d", what, (long long)got, p->frames);
    if (m->offload) close_tae(m), close_light(m), close_vae(m);
    out->seconds_decode = hb_time_now() - t0;
    return 0;
}

static int generate(hb_model *m, const hb_generate_params *pin, hb_video_frames *out) {
    hb_clear_error();
    if (!m || !pin || !out) return hb_error("hb_generate: NULL argument");
    memset(out, 0, sizeof *out);
    hb_generate_params q = *pin;
    gen_ctx g = {.m = m, .p = &q, .out = out};
    /* the input image first: a bad file fails before any heavy work (and, with cover fit and no size given, sets
     * the output size: resolve_params) */
    if ((pin->image_path || pin->image_rgb) && load_input_image(pin, &g.im0)) return -1;
    if (resolve_params(m, pin, g.im0.rgb ? &g.im0 : NULL, &q) || check_params(m, &q)) { hb_image_free(&g.im0); return -1; }
    const double T0 = hb_time_now();
    g.guided = q.sampler != HB_GEN_SAMPLER_XT && q.cfg != 1.0;
    g.C = m->z, g.F = (q.frames - 1) / m->vae_tf + 1, g.H = q.height / m->vae_sf, g.W = q.width / m->vae_sf;
    g.tpf = (g.H / m->dcfg.patch[1]) * (g.W / m->dcfg.patch[2]);
    int rc = -1;
    if (!encode_text(&g) && (!g.im0.rgb || !encode_image(&g)) && !denoise(&g) && !decode_video(&g)) {
        out->frames = q.frames, out->height = q.height, out->width = q.width, out->fps = m->defaults.fps;
        rc = 0;
    }
    if (rc) {
        hb_free(out->rgb);
        out->rgb = NULL;
        if (m->offload) close_dit(m), close_vae(m), close_tae(m), close_light(m);
    }
    if (g.have_arena) hb_arena_free(&g.dc.arena);
    hb_wan_dit_text_free(&g.tc);
    hb_wan_dit_text_free(&g.tu);
    hb_text_rows_free(g.text, 2);
    hb_dev_free(g.lat), hb_dev_free(g.cond0), hb_dev_free(g.img);
    hb_image_free(&g.im0), hb_image_free(&g.im);
    out->seconds_total = hb_time_now() - T0;
    out->peak_rss_bytes = hb_peak_rss_bytes();
    return rc;
}

/* ---------------------------------------------------------------- memory estimate */

static size_t ck_bytes(const hb_checkpoint *ck) {
    size_t n = 0;
    for (int i = 0; ck && i < hb_checkpoint_count(ck); i++) {
        hb_tensor t = hb_checkpoint_tensor(ck, i);
        n += hb_tensor_nbytes(&t);
    }
    return n;
}

/* Workspace of the chosen decoder at latent h x w (the streamed decoders' few-frame window; 0 when unknown). */
static size_t decoder_bytes(hb_model *m, const hb_generate_params *q, int64_t h, int64_t w) {
    if (q->vae == HB_GEN_VAE_FULL && !open_vae(m)) {
        int64_t b = hb_wan_vae_decode_workspace(m->vae, 3, h, w, NULL);
        return b > 0 ? (size_t)b : 0;
    }
    if (q->vae == HB_GEN_VAE_LIGHT && !open_light(m, q->light_vae_path)) {
        int64_t b = hb_light_vae_decode_bytes(m->light, 4, h, w);
        return b > 0 ? (size_t)b : 0;
    }
    return (size_t)(h * w) * (size_t)(m->vae_sf * m->vae_sf) * 3 * 2 * sizeof(float); /* tiny decoder: its frames */
}

size_t hb_generate_estimate_bytes(hb_model *m, const hb_generate_params *pin) {
    hb_clear_error();
    if (!m || !pin) { hb_error("hb_generate_estimate_bytes: NULL argument"); return 0; }
    hb_generate_params q;
    if (resolve_params(m, pin, NULL, &q) || check_params(m, &q)) return 0;
    const hb_backend *prev = hb_backend_use(m->backend);
    const int64_t F = (q.frames - 1) / m->vae_tf + 1, H = q.height / m->vae_sf, W = q.width / m->vae_sf;
    const bool guided = q.sampler != HB_GEN_SAMPLER_XT && q.cfg != 1.0;
    size_t est = 0;
    if (!open_dit(m)) {
        const wan_dit_config *c = &m->dcfg;
        const size_t lat = sizeof(float) * (size_t)(m->z * F * H * W) * 2, dit = ck_bytes(m->dit->ck);
        const size_t kv = sizeof(float) * 2 * (size_t)c->num_layers * (size_t)c->text_len * (size_t)c->dim * (guided ? 2 : 1);
        const int64_t L = (F / c->patch[0]) * (H / c->patch[1]) * (W / c->patch[2]);
        const size_t denoise = dit + hb_wan_dit_workspace_bytes(c, L, 1, false) + kv + lat;
        const size_t vae_w = hb_model_folder_weight_bytes(q.vae == HB_GEN_VAE_TAE ? m->mf.tae : q.vae == HB_GEN_VAE_LIGHT ?
                                        (q.light_vae_path && *q.light_vae_path ? q.light_vae_path : m->mf.light) : m->mf.vae);
        const size_t rgb = (size_t)q.frames * (size_t)q.width * (size_t)q.height * 3;
        const size_t decode = (m->offload ? 0 : dit) + vae_w + decoder_bytes(m, &q, H, W) + rgb + lat;
        const size_t text = hb_model_folder_weight_bytes(m->mf.text_encoder);
        est = denoise > decode ? denoise : decode;
        if (text > est) est = text;
        if (m->offload) close_dit(m), close_vae(m), close_light(m);
    }
    hb_backend_use(prev);
    return est;
}
