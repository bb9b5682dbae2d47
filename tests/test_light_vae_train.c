/* models/light_vae_train on a tiny random decoder with three heads (as is, 2x2x2 shuffle, pixel shuffle):
 * - the training forward equals the inference decoder (hb_light_vae_decode) on the same weights, causal and
 *   non-causal (1e-5 normwise);
 * - for both variants (causal, depthwise kernel 5, heads as is / st8 / s4; non-causal, kernel 3, heads
 *   s4 / as is / st8) every parameter tensor's gradient matches central finite differences of the float32 loss at random
 *   elements (step 2e-4; targets kept >= 0.5 away from the output so the L1 term stays smooth; 3e-2 of the
 *   tensor's max gradient: the float32 noise and curvature of the difference quotient, measured <= 7e-3);
 * - gradient accumulation: two passes at grad_scale 0.5 give the gradient of one pass at 1 (1e-6);
 * - 40 AdamW steps on one clip lower the loss by at least half;
 * - a pass and a step on cpu-guard (activations reachable only inside ops) give the CPU's loss, gradients and
 *   weights bit for bit;
 * - the release-format golden (shared/golden/release/light_hb_train) passes through hb golden (skips without
 *   shared/). */
#include "random_models.h"
#include "testlib.h"
#include "models/light_vae_train.h"
#include "models/wan_vae.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const hb_lvt_head k_heads[3] = {
    {0, 16, 8, 8, HB_LVT_ALIGN_NONE}, {1, 16, 16, 2, HB_LVT_ALIGN_ST8}, {2, 16, 12, 3, HB_LVT_ALIGN_S4}};
/* the other variant: alignments permuted, depthwise kernel 3 */
static const hb_lvt_head k_heads_alt[3] = {
    {0, 16, 12, 3, HB_LVT_ALIGN_S4}, {1, 16, 6, 6, HB_LVT_ALIGN_NONE}, {2, 16, 24, 3, HB_LVT_ALIGN_ST8}};

static int64_t prod(const int64_t *s) { return s[0] * s[1] * s[2] * s[3]; }

typedef struct {
    hb_lvt *m;
    float *lat, *target, *teach[3];
    hb_lvt_batch b;
} fixture;

static void fixture_init(fixture *f, hb_rng *r, bool causal, int64_t t, int64_t h, int64_t w) {
    hb_light_vae_config c;
    hb_light_vae_config_default(&c, true, causal);
    if (!causal) c.dw_kernel = 3;
    f->m = hb_lvt_new(&c, causal ? k_heads : k_heads_alt, 3);
    CHECKF(f->m != NULL, "%s", hb_last_error());
    hb_lvt_init_random(f->m, hb_rng_u64(r));
    int64_t s[4];
    f->lat = malloc(sizeof(float) * (size_t)(48 * t * h * w));
    tl_fill_normal(r, f->lat, 48 * t * h * w, 1.0f);
    hb_lvt_video_shape(f->m, t, h, w, s);
    int64_t nv = prod(s);
    f->target = malloc(sizeof(float) * (size_t)nv);
    hb_lvt_forward(f->m, f->lat, t, h, w, f->target);
    for (int64_t i = 0; i < nv; i++) f->target[i] += (hb_rng_uniform(r) < 0.5f ? -1.0f : 1.0f) * (0.5f + hb_rng_uniform(r));
    for (int i = 0; i < 3; i++) {
        hb_lvt_head_shape(f->m, i, t, h, w, s);
        f->teach[i] = malloc(sizeof(float) * (size_t)prod(s));
        tl_fill_normal(r, f->teach[i], prod(s), 1.0f);
    }
    f->b = (hb_lvt_batch){f->lat, t, h, w, f->target, (const float *const *)f->teach, 1.0f, 0.7f, 1.0f};
}

static void fixture_free(fixture *f) {
    hb_lvt_free(f->m);
    free(f->lat), free(f->target);
    for (int i = 0; i < 3; i++) free(f->teach[i]);
}

/* the training forward against the inference decoder, through a release-format folder */
static void check_forward(hb_rng *r, bool causal) {
    hb_light_vae_config c;
    hb_light_vae_config_default(&c, true, causal);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/lv_%d", tl_tmpdir(), causal);
    uint64_t seed = hb_rng_u64(r);
    CHECKF(hb_light_vae_write_random(dir, &c, seed) == 0, "%s", hb_last_error());
    hb_light_vae *ref = hb_light_vae_load(dir);
    char wp[700];
    snprintf(wp, sizeof wp, "%s/diffusion_pytorch_model.safetensors", dir);
    hb_checkpoint *ck = hb_checkpoint_open(wp);
    hb_lvt *m = hb_lvt_new(&c, NULL, 0);
    CHECKF(ref && ck && m && hb_lvt_load(m, ck, false) == 0, "%s", hb_last_error());
    if (!ref || !ck || !m) return;
    int64_t t = 3, h = 2, w = 3, s[4];
    hb_lvt_video_shape(m, t, h, w, s);
    float *lat = malloc(sizeof(float) * (size_t)(48 * t * h * w)), *a = malloc(sizeof(float) * (size_t)prod(s)),
          *b = malloc(sizeof(float) * (size_t)prod(s));
    tl_fill_normal(r, lat, 48 * t * h * w, 1.0f);
    int zz = 0;
    /* the inference decoder de-normalises with the Wan2.2 statistics: the same ones here */
    const float *mv = hb_wan_vae_official_mean(HB_WAN_VAE_22, &zz), *sv = hb_wan_vae_official_std(HB_WAN_VAE_22, &zz);
    CHECK(hb_lvt_set_latent_stats(m, mv, sv, 48) == 0);
    CHECK(hb_light_vae_decode(ref, lat, t, h, w, NULL, a, NULL, NULL) == 0);
    CHECK(hb_lvt_forward(m, lat, t, h, w, b) == 0);
    CHECKF(tl_rel_err(b, a, prod(s)) <= 1e-5, "training forward vs decoder (%s): %.3e", causal ? "causal" : "non-causal",
           tl_rel_err(b, a, prod(s)));
    printf("  forward vs inference decoder (%s): %.2e\n", causal ? "causal" : "non-causal", tl_rel_err(b, a, prod(s)));
    free(lat), free(a), free(b);
    hb_lvt_free(m);
    hb_checkpoint_close(ck);
    hb_light_vae_free(ref);
}

static double loss_at(fixture *f) {
    hb_lvt_losses L;
    hb_lvt_zero_grad(f->m);
    hb_lvt_train_pass(f->m, &f->b, &L, NULL, NULL);
    return L.loss;
}

static void check_fd(hb_rng *r, bool causal) {
    fixture f;
    fixture_init(&f, r, causal, 3, 2, 2);
    hb_lvt *m = f.m;
    hb_lvt_losses L;
    CHECKF(hb_lvt_train_pass(m, &f.b, &L, NULL, NULL) == 0, "%s", hb_last_error());
    float *g = malloc(sizeof(float) * (size_t)m->total);
    CHECK(hb_lvt_grad_to_host(m, g) == 0);
    double worst = 0;
    const char *wn = "";
    for (int i = 0; i < m->nparams; i++) {
        const hb_lvt_param *p = &m->params[i];
        double gm = 0;
        for (int64_t k = 0; k < p->n; k++) gm = fabs(g[p->off + k]) > gm ? fabs(g[p->off + k]) : gm;
        for (int probe = 0; probe < 2; probe++) {
            int64_t k = p->off + (int64_t)(hb_rng_u64(r) % (uint64_t)p->n);
            float keep = m->w[k], hstep = 2e-4f;
            m->w[k] = keep + hstep;
            double lp = loss_at(&f);
            m->w[k] = keep - hstep;
            double lm = loss_at(&f);
            m->w[k] = keep;
            double fd = (lp - lm) / ((double)(keep + hstep) - (double)(keep - hstep)), e = fabs(fd - g[k]) / (gm > 0 ? gm : 1);
            if (e > worst) worst = e, wn = p->name;
        }
    }
    CHECKF(worst <= 3e-2, "finite differences: worst %.3e at %s", worst, wn);
    printf("  %s: finite differences over %d tensors: worst %.2e of the tensor's max gradient (%s)\n",
           causal ? "causal, dw 5, heads as is / st8 / s4" : "non-causal, dw 3, heads s4 / as is / st8", m->nparams, worst, wn);
    /* accumulation */
    hb_lvt_zero_grad(m);
    f.b.grad_scale = 0.5f;
    hb_lvt_train_pass(m, &f.b, &L, NULL, NULL);
    hb_lvt_train_pass(m, &f.b, &L, NULL, NULL);
    float *g2 = malloc(sizeof(float) * (size_t)m->total);
    CHECK(hb_lvt_grad_to_host(m, g2) == 0);
    CHECKF(tl_rel_err(g2, g, m->total) <= 1e-6, "two half passes vs one: %.3e", tl_rel_err(g2, g, m->total));
    free(g), free(g2);
    fixture_free(&f);
}

static void check_descent(hb_rng *r) {
    fixture f;
    fixture_init(&f, r, false, 2, 2, 2);
    hb_adamw opt = {3e-3, 0.9, 0.95, 1e-8, 1e-4};
    hb_lvt_losses L;
    double first = 0;
    for (int s = 0; s < 40; s++) {
        hb_lvt_zero_grad(f.m);
        CHECK(hb_lvt_train_pass(f.m, &f.b, &L, NULL, NULL) == 0);
        if (s == 0) first = L.loss;
        CHECK(hb_lvt_step(f.m, &opt, 0.99f) == 0);
    }
    hb_lvt_zero_grad(f.m);
    hb_lvt_train_pass(f.m, &f.b, &L, NULL, NULL);
    CHECKF(L.loss < 0.5 * first, "40 AdamW steps: loss %.4f -> %.4f", first, L.loss);
    CHECK(f.m->ema != NULL && f.m->step == 40);
    printf("  40 AdamW steps: loss %.4f -> %.4f\n", first, L.loss);
    fixture_free(&f);
}

/* a pass and a step on cpu-guard (activations and gradients reachable only inside ops): the CPU's bits */
static void check_guard(hb_rng *r) {
    fixture f;
    fixture_init(&f, r, true, 2, 2, 2);
    hb_adamw opt = {1e-3, 0.9, 0.95, 1e-8, 1e-2};
    size_t wb = sizeof(float) * (size_t)f.m->total;
    float *w0 = malloc(wb), *g_cpu = malloc(wb), *g_guard = malloc(wb);
    memcpy(w0, f.m->w, wb);
    hb_lvt_losses L, Lg;
    CHECK(hb_lvt_train_pass(f.m, &f.b, &L, NULL, NULL) == 0 && hb_lvt_grad_to_host(f.m, g_cpu) == 0);
    CHECK(hb_lvt_step(f.m, &opt, 0.0f) == 0);
    hb_backend_use(hb_backend_cpu_guard());
    hb_lvt *m = hb_lvt_new(&f.m->cfg, f.m->heads, f.m->nheads);
    float *lat = m ? tl_dev_upload(f.lat, 48 * f.b.t * f.b.h * f.b.w) : NULL;
    CHECKF(m && lat, "%s", hb_last_error());
    if (m && lat) {
        memcpy(m->w, w0, wb); /* both models de-normalise with the identity */
        hb_lvt_batch b = f.b;
        b.latent = lat;
        int rc = hb_lvt_train_pass(m, &b, &Lg, NULL, NULL);
        CHECKF(rc == 0 && hb_backend_sync() == 0 && hb_lvt_grad_to_host(m, g_guard) == 0, "cpu-guard pass: %s", hb_last_error());
        CHECK(hb_lvt_step(m, &opt, 0.0f) == 0);
        CHECKF(Lg.loss == L.loss && !memcmp(g_guard, g_cpu, wb) && !memcmp(m->w, f.m->w, wb),
               "cpu-guard: loss %.9g vs %.9g, gradients or weights differ", Lg.loss, L.loss);
        printf("  cpu-guard pass + step: loss, gradients and weights bitwise the CPU's\n");
    }
    hb_dev_free(lat);
    hb_lvt_free(m);
    hb_backend_use(NULL);
    free(w0), free(g_cpu), free(g_guard);
    fixture_free(&f);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    check_forward(&r, true);
    check_forward(&r, false);
    check_fd(&r, true);
    check_fd(&r, false);
    check_descent(&r);
    check_guard(&r);
    if (tl_shared_dir()) tl_check_golden_cli("golden/release/light_hb_train.safetensors");
    hb_threads_shutdown();
    return tl_done();
}
