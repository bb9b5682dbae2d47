/* Flow-matching schedules and samplers. Every formula follows its reference operation by operation in
 * the reference's precision (float32 where torch tensors are float32, float64 where numpy computes in
 * double). Built as ISO C11 (no -ffast-math, floating-point contraction off by default in ISO mode), so
 * a*b + c stays two roundings as in the references. */
#include "pipeline/schedule.h"
#include "ops/ops.h"
#include <math.h>
#include <string.h>

/* ---------- FlowMatch table ---------- */

int hb_flowmatch_table_init(hb_flowmatch_table *t, double shift) {
    if (!(shift > 0) || !isfinite(shift)) return hb_error("flow-match schedule: shift %g is not a positive number", shift);
    memset(t, 0, sizeof *t);
    t->shift = (float)shift;
    t->n = HB_FM_STEPS;
    /* torch.linspace(1, 0, 1001) in float32, as torch's CPU kernel computes it (this reproduces the golden
     * tables bit for bit): step = (end - start) / (steps - 1); indices below steps/2 count up from start,
     * the others down from end; the vectorised loop (8 floats, two vectors per iteration) forms each
     * vector's base from its first index and adds k*step per lane (fused multiply-adds in the first
     * half, as the compiled kernel does); the tail that fills no vector pair is computed per element. */
    const int64_t steps = HB_FM_STEPS + 1, half = steps / 2, V = 8;
    const float start = 1.0f, end = 0.0f;
    const float step = (end - start) / (float)(steps - 1);
    float lin[HB_FM_STEPS + 1];
    int64_t i0 = 0;
    for (; i0 <= steps - 2 * V; i0 += 2 * V)
        for (int64_t v = i0; v < i0 + 2 * V; v += V) {
            if (v < half) {
                float base = fmaf(step, (float)v, start);
                for (int k = 0; k < V; k++) lin[v + k] = fmaf((float)k, step, base);
            } else {
                float base = end - step * (float)(steps - v - 1);
                for (int k = 0; k < V; k++) lin[v + k] = base + (float)k * step;
            }
        }
    for (; i0 < steps; i0++) lin[i0] = i0 < half ? start + step * (float)i0 : end - step * (float)(steps - i0 - 1);
    const float S = (float)shift, Sm1 = (float)(shift - 1.0);
    for (int i = 0; i < HB_FM_STEPS; i++) {
        float s = lin[i];
        float num = S * s;
        float den = 1.0f + Sm1 * s;
        float sig = num / den;
        t->sigmas[i] = sig;
        t->timesteps[i] = sig * 1000.0f;
    }
    return 0;
}

int hb_flowmatch_index(const hb_flowmatch_table *t, float timestep) {
    int best = 0;
    float bd = fabsf(t->timesteps[0] - timestep);
    for (int i = 1; i < t->n; i++) {
        float d = fabsf(t->timesteps[i] - timestep);
        if (d < bd) { bd = d; best = i; }
    }
    return best;
}

float hb_flowmatch_sigma(const hb_flowmatch_table *t, float timestep) { return t->sigmas[hb_flowmatch_index(t, timestep)]; }

int hb_flowmatch_warp(const hb_flowmatch_table *t, const int64_t *list, int n, float *out) {
    for (int i = 0; i < n; i++) {
        if (list[i] < 0 || list[i] > t->n)
            return hb_error("denoising step list: entry %d is %lld, outside [0, %d]", i, (long long)list[i], t->n);
        int64_t j = t->n - list[i];
        out[i] = j < t->n ? t->timesteps[j] : 0.0f;
    }
    return 0;
}

void hb_flow_to_x0(float *x0, const float *x, const float *flow, float sigma, int64_t n) {
    hb_elementwise(HB_EW_AXPBY_F64, x0, x, flow, 1.0f, -sigma, n); /* in float64, as the reference */
}

void hb_flow_renoise(float *y, const float *x0, const float *noise, float sigma, int64_t n) {
    hb_scale_add(y, x0, 1.0f - sigma, noise, sigma, n);
}

/* ---------- dpm++ ---------- */

/* numpy.linspace(start, stop, num)[i] (endpoint=True): i * ((stop - start) / (num - 1)) + start, with
 * the last point set to stop. */
static double np_linspace(double start, double stop, int64_t num, int64_t i) {
    if (num > 1 && i == num - 1) return stop;
    double step = (stop - start) / (double)(num - 1);
    double y = (double)i * step;
    return y + start;
}

static double shift_sigma(double shift, double s) {
    double num = shift * s;
    double den = 1.0 + (shift - 1.0) * s;
    return num / den;
}

void hb_dpmpp_sampling_sigmas(int steps, double shift, double *out) {
    for (int i = 0; i < steps; i++) out[i] = shift_sigma(shift, np_linspace(1.0, 0.0, steps + 1, i));
}

/* ---------- UniPC schedule ---------- */

int hb_unipc_schedule(const hb_sampler_params *p, int64_t *timesteps, float *sigmas) {
    if (p->steps < 1 || p->steps > 100000) return hb_error("sampler: %d steps (need 1..100000)", p->steps);
    if (p->num_train_timesteps < 2) return hb_error("sampler: num_train_timesteps %d (need >= 2)", p->num_train_timesteps);
    if (!(p->shift > 0) || !isfinite(p->shift) || !(p->ctor_shift > 0) || !isfinite(p->ctor_shift))
        return hb_error("sampler: shift %g / constructor shift %g must be positive", p->shift, p->ctor_shift);
    const int N = p->num_train_timesteps;
    /* __init__: alphas = linspace(1, 1/N, N)[::-1]; sigmas = 1 - alphas (float64) -> float32, then the
     * constructor shift in float32. sigma_max = sigmas[0] (alpha 1/N), sigma_min = sigmas[-1] (alpha 1). */
    float s0 = (float)(1.0 - 1.0 / (double)N);
    float S = (float)p->ctor_shift, Sm1 = (float)(p->ctor_shift - 1.0);
    float smax_f = (S * s0) / (1.0f + Sm1 * s0);
    float smin_f = (S * 0.0f) / (1.0f + Sm1 * 0.0f);
    double smax = smax_f, smin = smin_f;
    /* set_timesteps: linspace(sigma_max, sigma_min, steps + 1)[:-1], shifted in float64. */
    for (int i = 0; i < p->steps; i++) {
        double sg = shift_sigma(p->shift, np_linspace(smax, smin, p->steps + 1, i));
        double ts = sg * (double)N;
        timesteps[i] = (int64_t)ts; /* torch .to(int64): truncation toward zero */
        sigmas[i] = (float)sg;
    }
    sigmas[p->steps] = 0.0f; /* final_sigmas_type "zero" */
    return 0;
}

/* ---------- sampler state machine ---------- */

void hb_flow_sampler_free(hb_flow_sampler *s) {
    if (!s) return;
    hb_free(s->timesteps);
    hb_free(s->sigmas);
    hb_dev_free(s->m_prev);
    hb_dev_free(s->m_last);
    hb_dev_free(s->m_new);
    hb_dev_free(s->last_sample);
    hb_dev_free(s->cur);
    hb_dev_free(s->tmp);
    memset(s, 0, sizeof *s);
}

void hb_flow_sampler_reset(hb_flow_sampler *s) {
    s->step_index = -1;
    s->lower_order_nums = 0;
    s->this_order = 0;
    s->have_last = false;
}

int hb_flow_sampler_init(hb_flow_sampler *s, hb_sampler_kind kind, const hb_sampler_params *p, int64_t numel) {
    memset(s, 0, sizeof *s);
    if (kind != HB_SAMPLER_UNIPC && kind != HB_SAMPLER_EULER) return hb_error("sampler: unknown kind %d", (int)kind);
    if (numel < 1) return hb_error("sampler: sample size %lld", (long long)numel);
    s->kind = kind;
    s->steps = p->steps;
    s->numel = numel;
    if (p->steps < 1 || p->steps > 100000) return hb_error("sampler: %d steps (need 1..100000)", p->steps);
    s->timesteps = hb_malloc((size_t)p->steps * sizeof(int64_t), "sampler timesteps");
    s->sigmas = hb_malloc((size_t)(p->steps + 1) * sizeof(float), "sampler sigmas");
    if (!s->timesteps || !s->sigmas) goto fail;
    if (hb_unipc_schedule(p, s->timesteps, s->sigmas) != 0) goto fail;
    if (kind == HB_SAMPLER_UNIPC) {
        size_t b = (size_t)numel * sizeof(float);
        /* the samples' history lives with the activations (device memory under a GPU backend) */
        s->m_prev = hb_dev_alloc(b, "sampler history");
        s->m_last = hb_dev_alloc(b, "sampler history");
        s->m_new = hb_dev_alloc(b, "sampler history");
        s->last_sample = hb_dev_alloc(b, "sampler history");
        s->cur = hb_dev_alloc(b, "sampler history");
        s->tmp = hb_dev_alloc(b, "sampler scratch");
        if (!s->m_prev || !s->m_last || !s->m_new || !s->last_sample || !s->cur || !s->tmp) goto fail;
    }
    hb_flow_sampler_reset(s);
    return 0;
fail:
    hb_flow_sampler_free(s);
    return -1;
}

/* lambda = log(alpha) - log(sigma), alpha = 1 - sigma (float32 0-d tensors in the reference). */
static float lambda_of(float sigma) {
    float alpha = 1.0f - sigma;
    return logf(alpha) - logf(sigma);
}

/* The UniP predictor (multistep_uni_p_bh_update, predict_x0, bh2). x = sample at sigmas[i]; m0 = newest
 * x0 prediction; m1 = the one before (order 2). */
static void unipc_predict(const hb_flow_sampler *s, int order, const float *x, float *out) {
    const int i = s->step_index;
    const float sigma_t = s->sigmas[i + 1], sigma_s0 = s->sigmas[i];
    const float alpha_t = 1.0f - sigma_t;
    const float lambda_t = lambda_of(sigma_t), lambda_s0 = lambda_of(sigma_s0);
    const float h = lambda_t - lambda_s0;
    const float hh = -h;
    const float h_phi_1 = expm1f(hh);
    const float B_h = expm1f(hh);
    const float cx = sigma_t / sigma_s0;
    const float cm = alpha_t * h_phi_1;
    const float cb = alpha_t * B_h;
    const float *m0 = s->m_last, *m1 = s->m_prev;
    const int64_t n = s->numel;
    /* out = cx*x - cm*m0 [- cb * 0.5 * (m1 - m0) / rk], as elementwise ops on the samples' memory */
    hb_scale_add(out, x, cx, m0, -cm, n);
    if (order >= 2) {
        const float lambda_s1 = lambda_of(s->sigmas[i - 1]);
        const float rk = (lambda_s1 - lambda_s0) / h;
        hb_scale_add(s->tmp, m1, 1.0f, m0, -1.0f, n);
        hb_scale_add(out, out, 1.0f, s->tmp, -cb * 0.5f / rk, n);
    }
}

/* Solve the 2x2 system R rho = b by Gaussian elimination with partial pivoting (as LAPACK gesv). */
static void solve2(const float R[2][2], const float b[2], float rho[2]) {
    float a00 = R[0][0], a01 = R[0][1], a10 = R[1][0], a11 = R[1][1], b0 = b[0], b1 = b[1];
    if (fabsf(a10) > fabsf(a00)) {
        float t;
        t = a00; a00 = a10; a10 = t;
        t = a01; a01 = a11; a11 = t;
        t = b0; b0 = b1; b1 = t;
    }
    float l = a10 / a00;
    float u11 = a11 - l * a01;
    float y1 = b1 - l * b0;
    float x1 = y1 / u11;
    float x0 = (b0 - a01 * x1) / a00;
    rho[0] = x0;
    rho[1] = x1;
}

/* The UniC corrector (multistep_uni_c_bh_update, predict_x0, bh2). model_t = the x0 prediction at the
 * current step i; x = last_sample (the sample at i-1); m0 = x0 prediction at i-1; m1 = at i-2. */
static void unipc_correct(const hb_flow_sampler *s, int order, const float *model_t, const float *x, float *out) {
    const int i = s->step_index;
    const float sigma_t = s->sigmas[i], sigma_s0 = s->sigmas[i - 1];
    const float alpha_t = 1.0f - sigma_t;
    const float lambda_t = lambda_of(sigma_t), lambda_s0 = lambda_of(sigma_s0);
    const float h = lambda_t - lambda_s0;
    const float hh = -h;
    const float h_phi_1 = expm1f(hh);
    float h_phi_k = h_phi_1 / hh - 1.0f;
    const float B_h = expm1f(hh);
    const float cx = sigma_t / sigma_s0;
    const float cm = alpha_t * h_phi_1;
    const float cb = alpha_t * B_h;
    const float *m0 = s->m_last, *m1 = s->m_prev;
    const int64_t n = s->numel;
    if (order >= 2) {
        const float lambda_s1 = lambda_of(s->sigmas[i - 2]);
        const float rk = (lambda_s1 - lambda_s0) / h;
        /* R = [rks^0; rks^1] with rks = [rk, 1]; b_k = h_phi_k * k! / B_h. */
        float b[2], R[2][2] = {{1.0f, 1.0f}, {rk, 1.0f}};
        float fact = 1.0f;
        for (int k = 1; k <= 2; k++) {
            b[k - 1] = h_phi_k * fact / B_h;
            fact *= (float)(k + 1);
            h_phi_k = h_phi_k / hh - 1.0f / fact;
        }
        float rho[2];
        solve2(R, b, rho);
        /* out = xt - cb * (rho0 * (m1 - m0) / rk + rho1 * (model_t - m0)) */
        hb_scale_add(out, x, cx, m0, -cm, n);
        hb_scale_add(s->tmp, m1, 1.0f, m0, -1.0f, n);
        hb_scale_add(out, out, 1.0f, s->tmp, -cb * rho[0] / rk, n);
        hb_scale_add(s->tmp, model_t, 1.0f, m0, -1.0f, n);
        hb_scale_add(out, out, 1.0f, s->tmp, -cb * rho[1], n);
    } else {
        hb_scale_add(out, x, cx, m0, -cm, n);
        hb_scale_add(s->tmp, model_t, 1.0f, m0, -1.0f, n);
        hb_scale_add(out, out, 1.0f, s->tmp, -cb * 0.5f, n);
    }
}

int hb_flow_sampler_step(hb_flow_sampler *s, const float *model_out, int64_t timestep, const float *sample,
                         float *out) {
    if (s->step_index < 0) {
        /* index_for_timestep: the matches of timestep in the schedule; the second one when several. */
        int first = -1, second = -1;
        for (int i = 0; i < s->steps; i++)
            if (s->timesteps[i] == timestep) {
                if (first < 0) first = i;
                else if (second < 0) second = i;
            }
        if (first < 0) return hb_error("sampler: timestep %lld is not in the %d-step schedule", (long long)timestep, s->steps);
        s->step_index = second >= 0 ? second : first;
    }
    const int i = s->step_index;
    if (i >= s->steps) return hb_error("sampler: all %d steps were already taken", s->steps);
    const int64_t n = s->numel;

    if (s->kind == HB_SAMPLER_EULER) {
        const float ds = s->sigmas[i + 1] - s->sigmas[i];
        hb_scale_add(out, sample, 1.0f, model_out, ds, n);
        s->step_index++;
        return 0;
    }

    const bool use_corrector = i > 0 && s->have_last;
    /* convert_model_output: x0 = sample - sigma * flow (float32). */
    const float sg = s->sigmas[i];
    hb_scale_add(s->m_new, sample, 1.0f, model_out, -sg, n);
    if (use_corrector) unipc_correct(s, s->this_order, s->m_new, s->last_sample, s->cur);
    else if (s->cur != sample) hb_copy(s->cur, sample, n);
    /* shift the history: [-2] <- [-1] <- new */
    float *t = s->m_prev;
    s->m_prev = s->m_last;
    s->m_last = s->m_new;
    s->m_new = t;
    int order = 2; /* solver_order */
    if (s->steps - i < order) order = s->steps - i; /* lower_order_final */
    if (order > s->lower_order_nums + 1) order = s->lower_order_nums + 1; /* warm-up */
    s->this_order = order;
    /* last_sample <- the (corrected) sample; predict from it. */
    t = s->last_sample;
    s->last_sample = s->cur;
    s->cur = t;
    s->have_last = true;
    unipc_predict(s, order, s->last_sample, out);
    if (s->lower_order_nums < 2) s->lower_order_nums++;
    s->step_index++;
    return 0;
}
