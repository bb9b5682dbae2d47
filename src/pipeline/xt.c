/* pipeline/xt: few-step (Hummingbird-XT) and base (UniPC / Euler + CFG) sampling loops. */
#include "pipeline/xt.h"
#include "pipeline/schedule.h"
#include "pipeline/fewstep.h"
#include "core/torch_rng.h"
#include "ops/ops.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const hb_wan_default_negative =
    "\xe8\x89\xb2\xe8\xb0\x83\xe8\x89\xb3\xe4\xb8\xbd\xef\xbc\x8c\xe8\xbf\x87\xe6\x9b\x9d\xef\xbc\x8c\xe9\x9d\x99"
    "\xe6\x80\x81\xef\xbc\x8c\xe7\xbb\x86\xe8\x8a\x82\xe6\xa8\xa1\xe7\xb3\x8a\xe4\xb8\x8d\xe6\xb8\x85\xef\xbc\x8c"
    "\xe5\xad\x97\xe5\xb9\x95\xef\xbc\x8c\xe9\xa3\x8e\xe6\xa0\xbc\xef\xbc\x8c\xe4\xbd\x9c\xe5\x93\x81\xef\xbc\x8c"
    "\xe7\x94\xbb\xe4\xbd\x9c\xef\xbc\x8c\xe7\x94\xbb\xe9\x9d\xa2\xef\xbc\x8c\xe9\x9d\x99\xe6\xad\xa2\xef\xbc\x8c"
    "\xe6\x95\xb4\xe4\xbd\x93\xe5\x8f\x91\xe7\x81\xb0\xef\xbc\x8c\xe6\x9c\x80\xe5\xb7\xae\xe8\xb4\xa8\xe9\x87\x8f"
    "\xef\xbc\x8c\xe4\xbd\x8e\xe8\xb4\xa8\xe9\x87\x8f\xef\xbc\x8cJPEG\xe5\x8e\x8b\xe7\xbc\xa9\xe6\xae\x8b\xe7\x95\x99"
    "\xef\xbc\x8c\xe4\xb8\x91\xe9\x99\x8b\xe7\x9a\x84\xef\xbc\x8c\xe6\xae\x8b\xe7\xbc\xba\xe7\x9a\x84\xef\xbc\x8c"
    "\xe5\xa4\x9a\xe4\xbd\x99\xe7\x9a\x84\xe6\x89\x8b\xe6\x8c\x87\xef\xbc\x8c\xe7\x94\xbb\xe5\xbe\x97\xe4\xb8\x8d"
    "\xe5\xa5\xbd\xe7\x9a\x84\xe6\x89\x8b\xe9\x83\xa8\xef\xbc\x8c\xe7\x94\xbb\xe5\xbe\x97\xe4\xb8\x8d\xe5\xa5\xbd"
    "\xe7\x9a\x84\xe8\x84\xb8\xe9\x83\xa8\xef\xbc\x8c\xe7\x95\xb8\xe5\xbd\xa2\xe7\x9a\x84\xef\xbc\x8c\xe6\xaf\x81"
    "\xe5\xae\xb9\xe7\x9a\x84\xef\xbc\x8c\xe5\xbd\xa2\xe6\x80\x81\xe7\x95\xb8\xe5\xbd\xa2\xe7\x9a\x84\xe8\x82\xa2"
    "\xe4\xbd\x93\xef\xbc\x8c\xe6\x89\x8b\xe6\x8c\x87\xe8\x9e\x8d\xe5\x90\x88\xef\xbc\x8c\xe9\x9d\x99\xe6\xad\xa2"
    "\xe4\xb8\x8d\xe5\x8a\xa8\xe7\x9a\x84\xe7\x94\xbb\xe9\x9d\xa2\xef\xbc\x8c\xe6\x9d\x82\xe4\xb9\xb1\xe7\x9a\x84"
    "\xe8\x83\x8c\xe6\x99\xaf\xef\xbc\x8c\xe4\xb8\x89\xe6\x9d\xa1\xe8\x85\xbf\xef\xbc\x8c\xe8\x83\x8c\xe6\x99\xaf"
    "\xe4\xba\xba\xe5\xbe\x88\xe5\xa4\x9a\xef\xbc\x8c\xe5\x80\x92\xe7\x9d\x80\xe8\xb5\xb0";

int hb_xt_parse_steps(const char *s, int64_t *list, int max) {
    int n = 0;
    const char *p = s;
    if (!s || !*s) return hb_error("--steps-list: empty (expected e.g. 1000,750,500)");
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || v > 1000)
            return hb_error("--steps-list: '%s' is not a comma-separated list of timesteps in [0, 1000]", s);
        if (n == max) return hb_error("--steps-list: more than %d entries", max);
        list[n++] = v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return hb_error("--steps-list: '%s' is not a comma-separated list of timesteps in [0, 1000]", s);
    }
    return n;
}

/* x = (1 - mask) * z + mask * x with mask = 0 on frame 0: paste z over latent frame 0 of every channel. */
static void paste_frame0(const hb_xt_args *a, float *x) {
    if (!a->cond0) return;
    const int64_t hw = a->H * a->W;
    hb_copy_rows(x, a->F * hw, a->cond0, hw, a->C, hw);
}

/* Timesteps for the denoiser: one value, or per token with 0 on frame 0 (I2V). */
static void fill_t(const hb_xt_args *a, float t, float *tt, int64_t nt) {
    if (!a->cond0) { tt[0] = t; return; }
    for (int64_t i = 0; i < nt; i++) tt[i] = i < a->tokens_per_frame ? 0.0f : t;
}

float hb_xt_model_timestep(float t, hb_xt_timestep r) {
    if (r == HB_XT_T_INT_F32) return truncf(t);
    if (r == HB_XT_T_INT_BF16) return truncf(hb_bf16_to_f32(hb_f32_to_bf16(t)));
    return t;
}

/* The sampler's noise: the initial latent and each re-noise tensor (device memory under a GPU backend); the
 * numbers are drawn on the host, so they are the same on every backend. */
typedef struct {
    const hb_xt_args *a;
    int64_t n;
    float *host;
    hb_rng rng;          /* HB_XT_NOISE_STREAM */
    float *renoise;      /* HB_XT_NOISE_RELEASE: the one re-noise tensor, once drawn */
} xt_noise;

/* torch.randn([F, C, H, W]) of a generator seeded with `seed`, stored [C, F, H, W] */
static int torch_noise(const hb_xt_args *a, uint64_t seed, float *fchw, float *out) {
    hb_torch_rng g;
    hb_torch_rng_seed(&g, seed);
    if (hb_torch_randn(&g, fchw, a->C * a->F * a->H * a->W)) return -1;
    const int64_t hw = a->H * a->W;
    for (int64_t f = 0; f < a->F; f++)
        for (int64_t c = 0; c < a->C; c++) memcpy(out + (c * a->F + f) * hw, fchw + (f * a->C + c) * hw, (size_t)hw * sizeof(float));
    return 0;
}

int hb_xt_release_noise(const hb_xt_args *a, int which, float *out) {
    const int64_t n = a->C * a->F * a->H * a->W;
    float *fchw = hb_malloc((size_t)n * sizeof(float), "sampler noise"), *chw = hb_malloc((size_t)n * sizeof(float), "sampler noise");
    int rc = fchw && chw ? torch_noise(a, which ? a->seed + 2 : a->seed, fchw, chw) : -1;
    if (!rc) rc = hb_dev_upload(out, chw, (size_t)n * sizeof(float));
    hb_free(fchw);
    hb_free(chw);
    return rc;
}

static int noise_draw(xt_noise *z, bool initial, float *dst) {
    const hb_xt_args *a = z->a;
    const float *given = initial ? a->noise0 : a->renoise;
    if (given) { hb_copy(dst, given, z->n); return 0; }
    if (a->noise == HB_XT_NOISE_RELEASE) {
        if (!initial && z->renoise) { hb_copy(dst, z->renoise, z->n); return 0; }
        if (hb_xt_release_noise(a, !initial, dst)) return -1;
        if (!initial) { /* kept for the later re-noise steps */
            if (!(z->renoise = hb_dev_alloc((size_t)z->n * sizeof(float), "sampler re-noise"))) return -1;
            hb_copy(z->renoise, dst, z->n);
        }
        return 0;
    }
    return hb_noise_normal(&z->rng, z->host, dst, z->n);
}

static int call_model(const hb_xt_args *a, int step, const float *x, const float *tt, int64_t nt, int cond, float *v) {
    if (a->observe) a->observe(a->observe_user, step, x, tt, nt, cond);
    return a->model(a->model_user, x, tt, nt, cond, v);
}

/* The few-step trajectory (pipeline/fewstep.h) with the sampler's timestep rule, noise, I2V paste and observers. */
typedef struct {
    const hb_xt_args *a;
    xt_noise *z;
    float *tt;
    int64_t nt;
} xt_fewstep;

static int fs_model(void *user, int step, const float *x, float t, float *flow) {
    xt_fewstep *f = user;
    fill_t(f->a, hb_xt_model_timestep(t, f->a->t_feed), f->tt, f->nt);
    return call_model(f->a, step, x, f->tt, f->nt, 1, flow);
}
static int fs_noise(void *user, int step, float *eps) {
    (void)step;
    return noise_draw(((xt_fewstep *)user)->z, false, eps);
}
static void fs_fix(void *user, float *x) { paste_frame0(((xt_fewstep *)user)->a, x); }
static int fs_x0(void *user, int step, const float *x0) {
    const hb_xt_args *a = ((xt_fewstep *)user)->a;
    if (a->observe_x0) a->observe_x0(a->observe_user, step, x0);
    return 0;
}

static int fewstep(const hb_xt_args *a, xt_noise *z, float *out, float *v, float *tt, int64_t nt) {
    hb_fewstep s;
    if (hb_fewstep_schedule(&s, a->steps_list, a->nsteps, a->shift, true)) return -1;
    xt_fewstep f = {a, z, tt, nt};
    hb_fewstep_hooks h = {.model = fs_model, .noise = fs_noise, .fix = fs_fix, .on_x0 = fs_x0, .user = &f,
                          .progress = a->progress, .progress_user = a->progress_user};
    return hb_fewstep_run(&s, &h, out, out, v, v, z->n);
}

int hb_xt_sample(const hb_xt_args *a, float *out) {
    if (!a->model) return hb_error("sampler: no denoiser");
    if (a->C < 1 || a->F < 1 || a->H < 1 || a->W < 1) return hb_error("sampler: empty latent");
    if (a->cond0 && (a->tokens_per_frame < 1 || a->tokens_per_frame > a->H * a->W))
        return hb_error("sampler: I2V needs tokens_per_frame in [1, H*W]");
    const int64_t n = a->C * a->F * a->H * a->W;
    const int64_t nt = a->cond0 ? a->F * a->tokens_per_frame : 1;
    float *v = hb_dev_alloc((size_t)n * sizeof(float), "sampler velocity");
    float *vu = NULL, *tt = hb_malloc((size_t)nt * sizeof(float), "sampler timesteps");
    float *hnoise = hb_malloc((size_t)n * sizeof(float), "sampler noise");
    int rc = -1;
    hb_flow_sampler fs;
    bool have_fs = false;
    hb_progress pr;
    xt_noise z = {0};
    if (!v || !tt || !hnoise) goto done;
    z = (xt_noise){.a = a, .n = n, .host = hnoise};
    hb_rng_seed(&z.rng, a->seed);
    if (noise_draw(&z, true, out)) goto done;
    paste_frame0(a, out);

    if (a->sampler == HB_XT_FEWSTEP) {
        rc = fewstep(a, &z, out, v, tt, nt);
        goto done;
    }
    if (a->sampler != HB_XT_UNIPC && a->sampler != HB_XT_EULER) { hb_error("sampler: unknown kind %d", (int)a->sampler); goto done; }
    if (!(a->cfg >= 0) || !isfinite(a->cfg)) { hb_error("sampler: --cfg must be a finite number >= 0"); goto done; }
    hb_sampler_params sp = {.num_train_timesteps = 1000, .ctor_shift = 1.0, .steps = a->steps, .shift = a->shift};
    if (hb_flow_sampler_init(&fs, a->sampler == HB_XT_UNIPC ? HB_SAMPLER_UNIPC : HB_SAMPLER_EULER, &sp, n)) goto done;
    have_fs = true;
    const bool guided = a->cfg != 1.0;
    if (guided && !(vu = hb_dev_alloc((size_t)n * sizeof(float), "sampler velocity"))) goto done;
    hb_progress_begin(&pr, a->progress, a->progress_user, "denoise", a->steps);
    for (int k = 0; k < a->steps; k++) {
        const int64_t ts = fs.timesteps[k];
        fill_t(a, (float)ts, tt, nt);
        if (call_model(a, k, out, tt, nt, 1, v)) goto done;
        if (guided) {
            if (call_model(a, k, out, tt, nt, 0, vu)) goto done;
            const float g = (float)a->cfg;
            hb_scale_add(v, v, 1.0f, vu, -1.0f, n);   /* v = vu + g * (v - vu) */
            hb_scale_add(v, vu, 1.0f, v, g, n);
        }
        if (hb_flow_sampler_step(&fs, v, ts, out, out)) goto done;
        paste_frame0(a, out);
        hb_progress_step(&pr, k + 1);
    }
    hb_progress_end(&pr);
    rc = 0;
done:
    if (have_fs) hb_flow_sampler_free(&fs);
    hb_dev_free(v);
    hb_dev_free(vu);
    hb_free(tt);
    hb_free(hnoise);
    hb_dev_free(z.renoise);
    return rc;
}
