/* Flow-matching schedules and samplers: the golden file through the API, and properties on fresh random
 * parameters against independent naive double-precision formulas. */
#include "testlib.h"
#include "io/checkpoint.h"
#include "pipeline/schedule.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const float *ref_f32(hb_checkpoint *ck, const char *name, int64_t n) {
    hb_tensor t;
    if (hb_checkpoint_get(ck, name, &t) != 0 || t.dtype != HB_F32 || hb_tensor_numel(&t) != n) {
        CHECKF(0, "golden tensor %s missing or mis-shaped", name);
        return NULL;
    }
    return t.data;
}

static void test_golden(void) {
    char path[1024];
    tl_shared_file("golden/sched.safetensors", path, sizeof path);
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (!ck) return;
    /* The config (shifts, lists, unipc) is read back from the metadata: a tiny parse of the JSON arrays. */
    const char *cfg = hb_checkpoint_metadata(ck, "config");
    CHECK(cfg != NULL);
    double shifts[16];
    int ns = 0;
    const char *p = cfg ? strstr(cfg, "\"shifts\"") : NULL;
    if (p) {
        p = strchr(p, '[') + 1;
        while (ns < 16 && *p && *p != ']') {
            char *e;
            shifts[ns++] = strtod(p, &e);
            p = e;
            while (*p == ',' || *p == ' ') p++;
        }
    }
    CHECK(ns > 0);
    for (int i = 0; i < ns; i++) {
        hb_flowmatch_table t;
        CHECK(hb_flowmatch_table_init(&t, shifts[i]) == 0);
        char name[128];
        snprintf(name, sizeof name, "out.flowmatch.shift%g.sigmas", shifts[i]);
        const float *rs = ref_f32(ck, name, HB_FM_STEPS);
        snprintf(name, sizeof name, "out.flowmatch.shift%g.timesteps", shifts[i]);
        const float *rt = ref_f32(ck, name, HB_FM_STEPS);
        /* bit-exact: our float32 linspace reproduces torch's */
        if (rs) CHECKF(memcmp(rs, t.sigmas, sizeof t.sigmas) == 0, "shift %g sigmas not bit-exact", shifts[i]);
        if (rt) CHECKF(memcmp(rt, t.timesteps, sizeof t.timesteps) == 0, "shift %g timesteps not bit-exact", shifts[i]);
        /* warped lists stored for this shift */
        for (int k = 0; k < hb_checkpoint_count(ck); k++) {
            const char *nm = hb_checkpoint_name(ck, k);
            char pre[64];
            snprintf(pre, sizeof pre, "out.warped.shift%g.", shifts[i]);
            if (strncmp(nm, pre, strlen(pre)) != 0) continue;
            int64_t list[32];
            int n = 0;
            for (const char *q = nm + strlen(pre); *q && n < 32;) {
                char *e;
                list[n++] = strtoll(q, &e, 10);
                q = *e ? e + 1 : e;
            }
            float w[32];
            CHECK(hb_flowmatch_warp(&t, list, n, w) == 0);
            const float *rw = ref_f32(ck, nm, n);
            if (rw) CHECK_REL(w, rw, n, 0.0);
        }
    }
    /* UniPC: 50 steps / shift from config "unipc" */
    hb_sampler_params sp = {.num_train_timesteps = 1000, .ctor_shift = 1.0};
    const char *u = cfg ? strstr(cfg, "\"unipc\"") : NULL;
    const char *st = u ? strstr(u, "\"steps\"") : NULL, *sh = u ? strstr(u, "\"shift\"") : NULL;
    CHECK(st && sh);
    if (!st || !sh) { hb_checkpoint_close(ck); return; }
    sp.steps = atoi(strchr(st, ':') + 1);
    sp.shift = strtod(strchr(sh, ':') + 1, NULL);
    hb_tensor s0, mo, ts;
    CHECK(hb_checkpoint_get(ck, "in.unipc.sample0", &s0) == 0);
    CHECK(hb_checkpoint_get(ck, "in.unipc.model_out", &mo) == 0);
    CHECK(hb_checkpoint_get(ck, "out.unipc.timesteps", &ts) == 0);
    int64_t numel = hb_tensor_numel(&s0);
    hb_flow_sampler s;
    CHECK(hb_flow_sampler_init(&s, HB_SAMPLER_UNIPC, &sp, numel) == 0);
    CHECK(hb_tensor_numel(&ts) == sp.steps && memcmp(ts.data, s.timesteps, (size_t)sp.steps * 8) == 0);
    const float *rsig = ref_f32(ck, "out.unipc.sigmas", sp.steps + 1);
    if (rsig) CHECK_REL(s.sigmas, rsig, sp.steps + 1, 0.0);
    const float *rsamp = ref_f32(ck, "out.unipc.samples", (sp.steps + 1) * numel);
    float *x = malloc((size_t)numel * sizeof(float));
    memcpy(x, s0.data, (size_t)numel * sizeof(float));
    double worst = 0;
    for (int k = 0; k < sp.steps; k++) {
        CHECK(hb_flow_sampler_step(&s, (const float *)mo.data + k * numel, s.timesteps[k], x, x) == 0);
        if (rsamp) {
            double e = tl_rel_err(x, rsamp + (k + 1) * numel, numel);
            if (e > worst) worst = e;
        }
    }
    CHECKF(worst <= 1e-5, "unipc trajectory rel err %.3e", worst);
    /* one step too many is an error, not a crash */
    CHECK(hb_flow_sampler_step(&s, (const float *)mo.data, 0, x, x) == -1);
    const float *rdp = ref_f32(ck, "out.dpmpp.sampling_sigmas", sp.steps);
    double *dp = malloc((size_t)sp.steps * sizeof(double));
    float *dpf = malloc((size_t)sp.steps * sizeof(float));
    hb_dpmpp_sampling_sigmas(sp.steps, sp.shift, dp);
    for (int k = 0; k < sp.steps; k++) dpf[k] = (float)dp[k];
    if (rdp) CHECK_REL(dpf, rdp, sp.steps, 0.0);
    free(dp);
    free(dpf);
    free(x);
    hb_flow_sampler_free(&s);
    hb_checkpoint_close(ck);
}

/* Naive double-precision UniPC (order 2, bh2, predict_x0, corrector, lower_order_final), written from
 * the UniPC formulas directly: x0 history, lambda = log((1-s)/s). */
static void naive_unipc(int steps, const double *sig, const float *mo, const float *x0in, int64_t n, double *out) {
    double *x = malloc((size_t)n * sizeof(double)), *m = malloc((size_t)(steps + 1) * n * sizeof(double));
    double *last = malloc((size_t)n * sizeof(double));
    for (int64_t j = 0; j < n; j++) x[j] = x0in[j];
    int prev_order = 0;
#define LAM(s) (log(1.0 - (s)) - log(s))
    for (int i = 0; i < steps; i++) {
        double *mi = m + (size_t)i * n;
        for (int64_t j = 0; j < n; j++) mi[j] = x[j] - sig[i] * mo[(size_t)i * n + j];
        if (i > 0) { /* corrector from sig[i-1] to sig[i] with order prev_order */
            double h = LAM(sig[i]) - LAM(sig[i - 1]), e = expm1(-h);
            double *m0 = mi - n, rho0 = 0, rho1 = 0.5;
            if (prev_order == 2) {
                double r = (LAM(sig[i - 2]) - LAM(sig[i - 1])) / h;
                double phi = e / -h - 1, b0 = phi / e, b1 = (phi / -h - 0.5) * 2 / e;
                /* [1 1; r 1] rho = b */
                rho0 = (b0 - b1) / (1 - r);
                rho1 = b0 - rho0;
                for (int64_t j = 0; j < n; j++) {
                    double d1 = (m0[j - n] - m0[j]) / r;
                    x[j] = sig[i] / sig[i - 1] * last[j] - (1 - sig[i]) * e * m0[j] -
                           (1 - sig[i]) * e * (rho0 * d1 + rho1 * (mi[j] - m0[j]));
                }
            } else {
                for (int64_t j = 0; j < n; j++)
                    x[j] = sig[i] / sig[i - 1] * last[j] - (1 - sig[i]) * e * m0[j] - (1 - sig[i]) * e * rho1 * (mi[j] - m0[j]);
            }
            for (int64_t j = 0; j < n; j++) mi[j] = mi[j]; /* the x0 prediction itself is not corrected */
        }
        int order = steps - i < 2 ? steps - i : 2;
        if (order > i + 1) order = i + 1;
        memcpy(last, x, (size_t)n * sizeof(double));
        if (sig[i + 1] == 0) {
            memcpy(x, mi, (size_t)n * sizeof(double));
        } else {
            double h = LAM(sig[i + 1]) - LAM(sig[i]), e = expm1(-h);
            for (int64_t j = 0; j < n; j++) {
                double v = sig[i + 1] / sig[i] * last[j] - (1 - sig[i + 1]) * e * mi[j];
                if (order == 2) {
                    double r = (LAM(sig[i - 1]) - LAM(sig[i])) / h;
                    v -= (1 - sig[i + 1]) * e * 0.5 * (mi[j - n] - mi[j]) / r;
                }
                x[j] = v;
            }
        }
        prev_order = order;
        memcpy(out + (size_t)i * n, x, (size_t)n * sizeof(double));
    }
#undef LAM
    free(x);
    free(m);
    free(last);
}

static void test_properties(hb_rng *r) {
    /* FlowMatch table vs the formula in double, for a fresh shift */
    double S = 1.0 + 9.0 * hb_rng_uniform(r);
    hb_flowmatch_table t;
    CHECK(hb_flowmatch_table_init(&t, S) == 0);
    double worst = 0;
    for (int i = 0; i < HB_FM_STEPS; i++) {
        double s = 1.0 - i / 1000.0, sg = S * s / (1 + (S - 1) * s);
        worst = fmax(worst, fabs(t.sigmas[i] - sg) / sg);
        worst = fmax(worst, fabs(t.timesteps[i] - 1000 * sg) / (1000 * sg));
        if (i) CHECK(t.sigmas[i] < t.sigmas[i - 1]);
    }
    CHECKF(worst < 1e-6, "flow-match table rel err %.3e (shift %g)", worst, S);
    CHECK(fabsf(t.sigmas[0] - 1.0f) <= 2.4e-7f && fabsf(t.timesteps[0] - 1000.0f) <= 2.5e-4f); /* S*1/(1+(S-1)) in float32 */
    /* warp: random list */
    int64_t list[6];
    float w[6];
    for (int i = 0; i < 6; i++) list[i] = (int64_t)(hb_rng_u64(r) % 1001);
    CHECK(hb_flowmatch_warp(&t, list, 6, w) == 0);
    for (int i = 0; i < 6; i++) {
        double s = list[i] / 1000.0, want = 1000 * S * s / (1 + (S - 1) * s);
        CHECKF(fabs(w[i] - want) <= 1e-4 * fmax(1.0, want), "warp %lld -> %g, want %g", (long long)list[i], w[i], want);
    }
    int64_t bad = 1001;
    CHECK(hb_flowmatch_warp(&t, &bad, 1, w) == -1);
    CHECK(hb_flowmatch_table_init(&t, -1.0) == -1);
    /* sigma lookup: argmin in double */
    for (int k = 0; k < 20; k++) {
        float tt = 1000.0f * hb_rng_uniform(r);
        int best = 0;
        for (int i = 1; i < HB_FM_STEPS; i++)
            if (fabs((double)t.timesteps[i] - tt) < fabs((double)t.timesteps[best] - tt)) best = i;
        int got = hb_flowmatch_index(&t, tt);
        /* a float32 tie-break may pick the neighbour only when both are (nearly) equally close */
        CHECKF(got == best || fabs(fabs((double)t.timesteps[got] - tt) - fabs((double)t.timesteps[best] - tt)) < 1e-4,
               "lookup of %g: %d vs %d", tt, got, best);
    }
    CHECK(hb_flowmatch_sigma(&t, 0.0f) == t.sigmas[HB_FM_STEPS - 1]);
    /* x0 and renoise helpers */
    enum { N = 257 };
    float x[N], v[N], x0[N], y[N], ref[N];
    tl_fill_normal(r, x, N, 1.0f);
    tl_fill_normal(r, v, N, 1.0f);
    float sg = hb_rng_uniform(r);
    hb_flow_to_x0(x0, x, v, sg, N);
    for (int i = 0; i < N; i++) ref[i] = (float)((double)x[i] - (double)sg * v[i]);
    CHECK_REL(x0, ref, N, 0.0);
    hb_flow_renoise(y, x0, v, sg, N);
    for (int i = 0; i < N; i++) ref[i] = (float)((1.0 - sg) * x0[i] + (double)sg * v[i]);
    CHECK_REL(y, ref, N, 1e-6);

    /* UniPC schedule vs the formula, fresh steps / shift */
    hb_sampler_params p = {.num_train_timesteps = 1000, .ctor_shift = 1.0, .steps = 3 + (int)(hb_rng_u64(r) % 40),
                           .shift = 1.0 + 9.0 * hb_rng_uniform(r)};
    hb_flow_sampler s;
    const int64_t n = 96;
    CHECK(hb_flow_sampler_init(&s, HB_SAMPLER_UNIPC, &p, n) == 0);
    double *sig = malloc((size_t)(p.steps + 1) * sizeof(double));
    double smax = (double)0.999f;
    for (int i = 0; i < p.steps; i++) {
        double q = smax * (1.0 - (double)i / p.steps);
        sig[i] = p.shift * q / (1 + (p.shift - 1) * q);
        long long want = (long long)(sig[i] * 1000);
        /* integer truncation may differ only when 1000*sigma sits within rounding of an integer */
        CHECKF(s.timesteps[i] == want || fabs(sig[i] * 1000 - (double)s.timesteps[i]) < 1e-9 * 1000,
               "step %d timestep %lld, want %lld", i, (long long)s.timesteps[i], want);
        CHECK(fabs(s.sigmas[i] - sig[i]) <= 1e-7);
        if (i) CHECK(s.timesteps[i] <= s.timesteps[i - 1]);
    }
    sig[p.steps] = 0;
    CHECK(s.sigmas[p.steps] == 0.0f);
    /* trajectory on random model outputs vs the naive double UniPC */
    float *mo = malloc((size_t)p.steps * n * sizeof(float)), *xs = malloc((size_t)n * sizeof(float));
    double *traj = malloc((size_t)p.steps * n * sizeof(double));
    tl_fill_normal(r, mo, p.steps * n, 1.0f);
    tl_fill_normal(r, xs, n, 1.0f);
    naive_unipc(p.steps, sig, mo, xs, n, traj);
    float *refk = malloc((size_t)n * sizeof(float));
    worst = 0;
    for (int k = 0; k < p.steps; k++) {
        CHECK(hb_flow_sampler_step(&s, mo + k * n, s.timesteps[k], xs, xs) == 0);
        for (int64_t j = 0; j < n; j++) refk[j] = (float)traj[(size_t)k * n + j];
        worst = fmax(worst, tl_rel_err(xs, refk, n));
    }
    CHECKF(worst < 1e-4, "unipc vs naive double: rel err %.3e (%d steps, shift %g)", worst, p.steps, p.shift);
    /* exactness on a straight path: model = noise - x0 for a fixed x0 gives x0 at the end (UniPC and Euler) */
    for (int kind = 0; kind < 2; kind++) {
        hb_flow_sampler e;
        CHECK(hb_flow_sampler_init(&e, (hb_sampler_kind)kind, &p, n) == 0);
        float tgt[96], noise[96], flow[96];
        tl_fill_normal(r, tgt, n, 1.0f);
        tl_fill_normal(r, noise, n, 1.0f);
        for (int64_t j = 0; j < n; j++) xs[j] = (1 - e.sigmas[0]) * tgt[j] + e.sigmas[0] * noise[j];
        for (int k = 0; k < p.steps; k++) {
            for (int64_t j = 0; j < n; j++) flow[j] = noise[j] - tgt[j];
            CHECK(hb_flow_sampler_step(&e, flow, e.timesteps[k], xs, xs) == 0);
        }
        CHECKF(tl_rel_err(xs, tgt, n) < 1e-5, "kind %d: straight path ends at rel err %.3e", kind, tl_rel_err(xs, tgt, n));
        hb_flow_sampler_free(&e);
    }
    /* a timestep that is not in the schedule is an error */
    hb_flow_sampler_reset(&s);
    CHECK(hb_flow_sampler_step(&s, mo, 12345, xs, xs) == -1);
    hb_sampler_params badp = p;
    badp.steps = 0;
    hb_flow_sampler b2;
    CHECK(hb_flow_sampler_init(&b2, HB_SAMPLER_UNIPC, &badp, n) == -1);
    free(refk);
    free(traj);
    free(mo);
    free(xs);
    free(sig);
    hb_flow_sampler_free(&s);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    test_properties(&r);
    test_golden();
    tl_check_golden_cli("golden/sched.safetensors"); /* the CLI runner on the same file */
    return tl_done();
}
