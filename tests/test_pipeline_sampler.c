/* pipeline/xt samplers with stand-in denoisers against naive re-implementations written here from the
 * equations (x0 = x - sigma v; x' = (1 - sigma') x0 + sigma' eps; I2V frame-0 paste and per-token t;
 * CFG v = v_u + g (v_c - v_u)). */
#include "testlib.h"
#include "pipeline/xt.h"
#include "pipeline/schedule.h"
#include "pipeline/fewstep.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A stand-in model with a known velocity: v = a*x + b*t_tok + c_cond + w (fixed random field w). */
typedef struct {
    int64_t n, C, F, HW, tpf;
    const float *w;
    float a, b;
    int calls;
    bool per_token_ok;
} stub;

static float tok_t(const stub *s, const float *t, int64_t nt, int64_t i) {
    if (nt == 1 && s->F * s->tpf != 1) return t[0];
    /* element i of [C, F, H, W] -> frame f -> its tokens share t: take the first token of frame f */
    int64_t f = (i / s->HW) % s->F;
    return t[f * s->tpf];
}

static int stub_fn(void *user, const float *x, const float *t, int64_t nt, int cond, float *v) {
    stub *s = user;
    s->calls++;
    for (int64_t i = 0; i < s->n; i++)
        v[i] = s->a * x[i] + s->b * 1e-3f * tok_t(s, t, nt, i) + (cond ? 0.25f : -0.5f) + s->w[i];
    return 0;
}

/* naive few-step: the same noise stream (hb_rng seeded, N(0,1) in order) */
static void naive_fewstep(stub *s, const int64_t *list, int n, double shift, uint64_t seed, const float *cond0, float *x) {
    hb_rng r;
    hb_rng_seed(&r, seed);
    const int64_t N = s->n;
    for (int64_t i = 0; i < N; i++) x[i] = hb_rng_normal(&r);
    /* sigma(t) from the closed form: s_i = 1 - i/1000, sigma = S s / (1 + (S-1) s), t = 1000 sigma */
    double t[64], sg[64];
    for (int k = 0; k < n; k++) {
        double si = (double)list[k] / 1000.0;
        sg[k] = shift * si / (1 + (shift - 1) * si);
        t[k] = 1000.0 * sg[k];
    }
    float *v = malloc((size_t)N * sizeof *v), *tt = malloc((size_t)(s->F * s->tpf) * sizeof *tt);
    int64_t nt = cond0 ? s->F * s->tpf : 1;
    for (int k = 0; k < n; k++) {
        if (cond0)
            for (int64_t c = 0; c < s->C; c++) for (int64_t j = 0; j < s->HW; j++) x[c * s->F * s->HW + j] = cond0[c * s->HW + j];
        for (int64_t i = 0; i < nt; i++) tt[i] = (cond0 && i < s->tpf) ? 0.0f : (float)t[k];
        stub_fn(s, x, tt, nt, 1, v);
        for (int64_t i = 0; i < N; i++) x[i] = (float)((double)x[i] - sg[k] * v[i]);
        if (k + 1 < n) {
            for (int64_t i = 0; i < N; i++) {
                double e = hb_rng_normal(&r);
                x[i] = (float)((1 - sg[k + 1]) * x[i] + sg[k + 1] * e);
            }
        }
    }
    if (cond0)
        for (int64_t c = 0; c < s->C; c++) for (int64_t j = 0; j < s->HW; j++) x[c * s->F * s->HW + j] = cond0[c * s->HW + j];
    free(v), free(tt);
}

typedef struct {
    const stub *s;
    const float *cond0;
    int steps_seen, bad_frame0, bad_t;
    float t_other;
} watcher;
static void observe(void *user, int step, const float *x, const float *t, int64_t nt, int cond) {
    (void)cond;
    watcher *w = user;
    const stub *s = w->s;
    w->steps_seen = step + 1;
    for (int64_t c = 0; c < s->C; c++)
        if (memcmp(x + c * s->F * s->HW, w->cond0 + c * s->HW, (size_t)s->HW * sizeof(float))) w->bad_frame0++;
    if (nt != s->F * s->tpf) { w->bad_t++; return; }
    for (int64_t i = 0; i < nt; i++) {
        if (i < s->tpf && t[i] != 0.0f) w->bad_t++;
        if (i >= s->tpf && !(t[i] > 0.0f)) w->bad_t++;
    }
}

int main(void) {
    uint64_t seed = tl_seed();
    hb_rng r;
    hb_rng_seed(&r, seed);

    /* schedule: defaults 1000, 750, 500 with shift 5 -> 1000, 937.5, 833.33 */
    {
        int64_t l[3] = {1000, 750, 500};
        hb_fewstep fs;
        CHECK(hb_fewstep_schedule(&fs, l, 3, 5.0, true) == 0);
        const float *t = fs.t, *sg = fs.sigma;
        CHECKF(fabsf(t[0] - 1000.0f) < 1e-3f && fabsf(t[1] - 937.5f) < 1e-2f && fabsf(t[2] - 833.333f) < 1e-2f,
               "t = %g %g %g", t[0], t[1], t[2]);
        CHECKF(fabsf(sg[0] - 1.0f) < 1e-6f && fabsf(sg[1] - 0.9375f) < 1e-5f && fabsf(sg[2] - 0.833333f) < 1e-5f,
               "sigma = %g %g %g", sg[0], sg[1], sg[2]);
        /* not warped: the list itself, with the sigma of its nearest table entry (t = 1000 sigma) */
        CHECK(hb_fewstep_schedule(&fs, l, 3, 5.0, false) == 0);
        for (int k = 0; k < 3; k++)
            CHECKF(fs.t[k] == (float)l[k] && fabsf(fs.sigma[k] - fs.t[k] / 1000.0f) < 2e-3f, "raw t %g sigma %g", fs.t[k],
                   fs.sigma[k]);
        int64_t bad[1] = {1001};
        CHECK(hb_fewstep_schedule(&fs, bad, 1, 5.0, true) != 0 && hb_fewstep_schedule(&fs, bad, 1, 5.0, false) != 0);
        CHECK(hb_fewstep_schedule(&fs, l, 3, -1.0, true) != 0);
    }
    /* steps list parsing */
    {
        int64_t l[8];
        CHECK(hb_xt_parse_steps("1000,750,500", l, 8) == 3 && l[0] == 1000 && l[1] == 750 && l[2] == 500);
        CHECK(hb_xt_parse_steps("1000", l, 8) == 1);
        CHECK(hb_xt_parse_steps("", l, 8) < 0);
        CHECK(hb_xt_parse_steps("1000,,500", l, 8) < 0);
        CHECK(hb_xt_parse_steps("1000,x", l, 8) < 0);
        CHECK(hb_xt_parse_steps("1200", l, 8) < 0);
        CHECK(hb_xt_parse_steps("1,2,3", l, 2) < 0);
    }

    /* few-step trajectory vs the naive loop, T2V and I2V, random sizes / lists / shift */
    for (int trial = 0; trial < 6; trial++) {
        stub s = {0};
        s.C = 2 + (int64_t)(hb_rng_u64(&r) % 4), s.F = 1 + (int64_t)(hb_rng_u64(&r) % 3);
        int64_t h = 2 * (1 + (int64_t)(hb_rng_u64(&r) % 3)), w = 2 * (1 + (int64_t)(hb_rng_u64(&r) % 3));
        s.HW = h * w, s.tpf = (h / 2) * (w / 2), s.n = s.C * s.F * s.HW;
        s.a = -0.3f + 0.2f * hb_rng_uniform(&r), s.b = 0.5f;
        float *wf = malloc((size_t)s.n * sizeof *wf), *ours = malloc((size_t)s.n * sizeof *ours),
              *ref = malloc((size_t)s.n * sizeof *ref), *c0 = malloc((size_t)(s.C * s.HW) * sizeof *c0);
        tl_fill_normal(&r, wf, s.n, 1.0f);
        tl_fill_normal(&r, c0, s.C * s.HW, 0.7f);
        s.w = wf;
        int n = 1 + (int)(hb_rng_u64(&r) % 4);
        int64_t list[4];
        for (int k = 0; k < n; k++) list[k] = 1000 - 250 * k - (k ? (int64_t)(hb_rng_u64(&r) % 100) : 0);
        double shift = 1.0 + 7.0 * hb_rng_uniform(&r);
        uint64_t ns = hb_rng_u64(&r);
        const bool i2v = trial % 2;
        watcher wt = {&s, c0, 0, 0, 0, 0};
        hb_xt_args a = {.C = s.C, .F = s.F, .H = h, .W = w, .tokens_per_frame = s.tpf, .cond0 = i2v ? c0 : NULL,
                        .sampler = HB_XT_FEWSTEP, .steps_list = list, .nsteps = n, .shift = shift, .seed = ns,
                        .model = stub_fn, .model_user = &s, .observe = i2v ? observe : NULL, .observe_user = &wt};
        CHECK(hb_xt_sample(&a, ours) == 0);
        CHECKF(s.calls == n, "%d model calls for %d steps (CFG-free: one per step)", s.calls, n);
        naive_fewstep(&s, list, n, shift, ns, i2v ? c0 : NULL, ref);
        /* the table's sigma is float32 and the closed form double: agree to ~1e-6 relative */
        CHECK_REL(ours, ref, s.n, 1e-5);
        if (i2v) {
            CHECKF(wt.steps_seen == n && wt.bad_frame0 == 0 && wt.bad_t == 0,
                   "I2V: %d steps seen, %d frame-0 mismatches, %d bad per-token t", wt.steps_seen, wt.bad_frame0, wt.bad_t);
            for (int64_t c = 0; c < s.C; c++)
                CHECK(!memcmp(ours + c * s.F * s.HW, c0 + c * s.HW, (size_t)s.HW * sizeof(float)));
        }
        /* same seed -> same result; other seed -> different */
        float *again = malloc((size_t)s.n * sizeof *again);
        CHECK(hb_xt_sample(&a, again) == 0 && !memcmp(again, ours, (size_t)s.n * sizeof(float)));
        a.seed = ns + 1, a.observe = NULL;
        CHECK(hb_xt_sample(&a, again) == 0);
        if (!i2v || s.F > 1) CHECK(memcmp(again, ours, (size_t)s.n * sizeof(float)) != 0);
        free(again), free(wf), free(ours), free(ref), free(c0);
    }

    /* base sampler with CFG: hb_xt_sample == a hand loop over hb_flow_sampler with guided v */
    for (int kind = 0; kind < 2; kind++) {
        stub s = {0};
        s.C = 3, s.F = 2, s.HW = 16, s.tpf = 4, s.n = s.C * s.F * s.HW, s.a = -0.2f, s.b = 0.3f;
        float *wf = malloc((size_t)s.n * sizeof *wf), *ours = malloc((size_t)s.n * sizeof *ours),
              *ref = malloc((size_t)s.n * sizeof *ref), *vc = malloc((size_t)s.n * sizeof *vc),
              *vu = malloc((size_t)s.n * sizeof *vu);
        tl_fill_normal(&r, wf, s.n, 1.0f);
        s.w = wf;
        double g = 1.5 + 5.0 * hb_rng_uniform(&r);
        int steps = 4 + (int)(hb_rng_u64(&r) % 6);
        hb_xt_args a = {.C = s.C, .F = s.F, .H = 4, .W = 4, .tokens_per_frame = s.tpf,
                        .sampler = kind ? HB_XT_EULER : HB_XT_UNIPC, .shift = 5.0, .steps = steps, .cfg = g,
                        .seed = 7, .model = stub_fn, .model_user = &s};
        CHECK(hb_xt_sample(&a, ours) == 0);
        CHECKF(s.calls == 2 * steps, "%d calls for %d guided steps", s.calls, steps);
        hb_rng nr;
        hb_rng_seed(&nr, 7);
        for (int64_t i = 0; i < s.n; i++) ref[i] = hb_rng_normal(&nr);
        hb_flow_sampler fs;
        hb_sampler_params sp = {1000, 1.0, steps, 5.0};
        CHECK(hb_flow_sampler_init(&fs, kind ? HB_SAMPLER_EULER : HB_SAMPLER_UNIPC, &sp, s.n) == 0);
        for (int k = 0; k < steps; k++) {
            float t = (float)fs.timesteps[k];
            stub_fn(&s, ref, &t, 1, 1, vc);
            stub_fn(&s, ref, &t, 1, 0, vu);
            for (int64_t i = 0; i < s.n; i++) vc[i] = vu[i] + (float)g * (vc[i] - vu[i]);
            CHECK(hb_flow_sampler_step(&fs, vc, fs.timesteps[k], ref, ref) == 0);
        }
        hb_flow_sampler_free(&fs);
        CHECK(!memcmp(ours, ref, (size_t)s.n * sizeof(float)));
        /* cfg 1: one call per step */
        s.calls = 0, a.cfg = 1.0;
        CHECK(hb_xt_sample(&a, ours) == 0 && s.calls == steps);
        free(wf), free(ours), free(ref), free(vc), free(vu);
    }
    return tl_done();
}
