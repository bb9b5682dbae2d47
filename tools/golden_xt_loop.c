/* Golden runner for kind xt_loop: the Hummingbird-XT release's 3-step loop (Wan2_2TI2VPipeline.__call__),
 * T2V and I2V, run through the engine's own sampler (pipeline/xt.c) in the release's mode: noise drawn by
 * the PyTorch-compatible generator from metadata gen_seed (checked against in.noise0 / in.renoise), one
 * re-noise tensor for every re-noise step, the DiT fed int64(cast(t_k, latent dtype)). Compares per step the
 * latent the DiT gets, its per-token timesteps (exact), the flow and x0, and the final latent. */
#include "golden.h"
#include "models/wan_dit.h"
#include "pipeline/xt.h"
#include "ops/ops.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    golden_case *g;
    const char *mode;          /* "t2v" / "i2v" */
    const wan_dit *m;
    wan_dit_text *text;
    int64_t F, H, W, ntok;
    int step;
    int64_t *t_tokens;
} xt_run;

static void compare_step(xt_run *r, int step, const char *what, const float *data, int64_t n) {
    char name[64];
    snprintf(name, sizeof name, "out.%s.step%d.%s", r->mode, step, what);
    golden_compare(r->g, name, data, n);
}

static void observe(void *user, int step, const float *x, const float *t, int64_t nt, int cond) {
    (void)cond;
    xt_run *r = user;
    r->step = step;
    compare_step(r, step, "x", x, r->m->cfg.in_dim * r->F * r->H * r->W);
    for (int64_t i = 0; i < r->ntok; i++) r->t_tokens[i] = (int64_t)t[nt == 1 ? 0 : i];
    char name[64];
    snprintf(name, sizeof name, "out.%s.step%d.t_tokens", r->mode, step);
    golden_compare_i64(r->g, name, r->t_tokens, nt == 1 || nt == r->ntok ? r->ntok : -1);
}

static void observe_x0(void *user, int step, const float *x0) {
    xt_run *r = user;
    compare_step(r, step, "x0", x0, r->m->cfg.in_dim * r->F * r->H * r->W);
}

static int model(void *user, const float *x, const float *t, int64_t nt, int cond, float *v) {
    (void)cond;
    xt_run *r = user;
    wan_dit_input in = {.x = x, .F = r->F, .H = r->H, .W = r->W, .t = t, .nt = nt, .text = r->text};
    if (hb_wan_dit_forward(r->m, &in, v, NULL)) return -1;
    compare_step(r, r->step, "flow", v, r->m->cfg.out_dim * r->F * r->H * r->W);
    return 0;
}

/* Runs one mode (cond0 NULL: T2V) and compares its final latent. */
static int run_mode(golden_case *g, xt_run *r, const hb_xt_args *base, const float *cond0) {
    hb_xt_args a = *base;
    a.cond0 = cond0;
    a.model_user = a.observe_user = r;
    const int64_t n = a.C * a.F * a.H * a.W;
    float *out = hb_dev_alloc((size_t)n * sizeof(float), "latent");
    if (!out) return -1;
    int rc = hb_xt_sample(&a, out);
    if (!rc) {
        char name[32];
        snprintf(name, sizeof name, "out.%s.final", r->mode);
        golden_compare(g, name, out, n);
    }
    hb_dev_free(out);
    return rc;
}

int golden_run_xt_loop(golden_case *g) {
    wan_dit_config cfg;
    if (golden_wan_dit_config(g, &cfg)) return -1;
    json_t *steps = golden_meta_json(g, "steps");
    const char *ldt = hb_checkpoint_metadata(g->ck, "latent_dtype");
    int64_t list[HB_XT_MAX_STEPS];
    int nsteps = json_is_array(steps) ? (int)json_array_size(steps) : 0;
    for (int i = 0; i < nsteps && i < HB_XT_MAX_STEPS; i++) list[i] = json_integer_value(json_array_get(steps, i));
    json_decref(steps);
    if (nsteps < 1 || nsteps > HB_XT_MAX_STEPS) return hb_error("%s: metadata 'steps' is missing or not a list", g->path);
    const double shift = golden_meta_num(g, "shift", 0);
    if (!(shift > 0)) return hb_error("%s: metadata 'shift' is missing", g->path);
    hb_tensor nz, ctx;
    if (golden_tensor(g, "in.noise0", &nz) || golden_tensor(g, "in.context", &ctx)) return -1;
    if (nz.ndim != 4 || nz.shape[0] != cfg.in_dim) return hb_error("%s: in.noise0 must be [%d, F, H, W]", g->path, cfg.in_dim);
    const int64_t C = nz.shape[0], F = nz.shape[1], H = nz.shape[2], W = nz.shape[3], n = C * F * H * W;
    const int64_t tpf = (H / cfg.patch[1]) * (W / cfg.patch[2]);

    wan_dit *m = hb_wan_dit_from_checkpoint(g->ck, &cfg);
    wan_dit_text text = {0};
    float *cf = golden_tensor_dev(g, "in.context", NULL), *cond0 = golden_tensor_dev(g, "in.i2v.image_latent", NULL);
    float *given0 = golden_tensor_dev(g, "in.noise0", NULL), *given1 = golden_tensor_dev(g, "in.renoise", NULL);
    float *drawn = hb_dev_alloc((size_t)n * sizeof(float), "noise");
    int64_t *tt = hb_malloc((size_t)(F * tpf) * sizeof(int64_t), "timesteps");
    int rc = -1;
    if (!m || !cf || !cond0 || !given0 || !given1 || !drawn || !tt) goto done;
    if (hb_wan_dit_text_prepare(m, cf, ctx.shape[0], true, &text, NULL, NULL)) goto done;
    hb_xt_args a = {.C = C, .F = F, .H = H, .W = W, .tokens_per_frame = tpf, .sampler = HB_XT_FEWSTEP,
                    .steps_list = list, .nsteps = nsteps, .shift = shift, .noise = HB_XT_NOISE_RELEASE,
                    .t_feed = ldt && !strcmp(ldt, "bfloat16") ? HB_XT_T_INT_BF16 : HB_XT_T_INT_F32,
                    .model = model, .observe = observe, .observe_x0 = observe_x0};
    const char *seed = hb_checkpoint_metadata(g->ck, "gen_seed");
    if (seed) {
        /* the generator itself: its draws must be the file's noise (then the loop runs on its own draws) */
        a.seed = strtoull(seed, NULL, 10);
        hb_xt_args d = a;
        d.nsteps = 0;
        if (hb_xt_release_noise(&d, 0, drawn)) goto done;
        golden_compare(g, "in.noise0", drawn, n);
        if (hb_xt_release_noise(&d, 1, drawn)) goto done;
        golden_compare(g, "in.renoise", drawn, n);
    } else {
        a.noise0 = given0, a.renoise = given1;
    }
    xt_run r = {.g = g, .mode = "t2v", .m = m, .text = &text, .F = F, .H = H, .W = W, .ntok = F * tpf, .t_tokens = tt};
    if (run_mode(g, &r, &a, NULL)) goto done;
    r.mode = "i2v";
    if (run_mode(g, &r, &a, cond0)) goto done;
    rc = 0;
done:
    hb_wan_dit_text_free(&text);
    hb_wan_dit_free(m);
    hb_dev_free(cf), hb_dev_free(cond0), hb_dev_free(given0), hb_dev_free(given1), hb_dev_free(drawn);
    hb_free(tt);
    return rc;
}
