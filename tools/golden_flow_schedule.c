/* Golden runner for kind "flow_schedule": FlowMatch tables (every out.flowmatch.shiftS.* in the file),
 * warped few-step lists (every name in metadata "warped"), the UniPC schedule and trajectory, and the
 * dpm++ sampling sigmas. Every shift, list and step count comes from the file. */
#include "golden.h"
#include "pipeline/schedule.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The number in [s, e) (e.g. "5" or "5.5"); false when it is not exactly one number. */
static bool parse_num(const char *s, const char *e, double *v) {
    char buf[64], *end;
    if (!e || e <= s || e - s >= (long)sizeof buf) return false;
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = 0;
    *v = strtod(buf, &end);
    return *end == 0;
}

/* "out.flowmatch.shift<S>.sigmas" -> S; false when the name has another form. */
static bool parse_fm_name(const char *name, double *shift, const char **field) {
    const char *p = "out.flowmatch.shift";
    if (strncmp(name, p, strlen(p)) != 0) return false;
    const char *dot = strrchr(name, '.');
    return parse_num(name + strlen(p), dot, shift) && (*field = dot + 1, true);
}

static int run_flowmatch(golden_case *g) {
    json_t *shifts = json_object_get(g->config, "shifts");
    int found = 0;
    for (int i = 0; i < hb_checkpoint_count(g->ck); i++) {
        const char *name = hb_checkpoint_name(g->ck, i), *field;
        double S;
        if (!parse_fm_name(name, &S, &field) || strcmp(field, "sigmas") != 0) continue;
        hb_flowmatch_table t;
        if (hb_flowmatch_table_init(&t, S) != 0) return -1;
        golden_compare_host(g, name, t.sigmas, t.n);
        char tn[160];
        snprintf(tn, sizeof tn, "%.*stimesteps", (int)(field - name), name);
        golden_compare_host(g, tn, t.timesteps, t.n);
        found++;
    }
    size_t k;
    json_t *v;
    json_array_foreach(shifts, k, v) {
        /* every shift of the config must have had its table */
        double S = json_number_value(v);
        bool have = false;
        for (int i = 0; i < hb_checkpoint_count(g->ck) && !have; i++) {
            double s2;
            const char *f;
            if (parse_fm_name(hb_checkpoint_name(g->ck, i), &s2, &f) && s2 == S) have = true;
        }
        if (!have) return hb_error("%s: config shift %g has no out.flowmatch table", g->path, S);
    }
    if (!found) return hb_error("%s: no out.flowmatch.shift*.sigmas tensors", g->path);
    return 0;
}

/* Names in metadata "warped": out.warped.shift<S>.<a>_<b>_... */
static int run_warped(golden_case *g) {
    json_t *w = golden_meta_json(g, "warped");
    if (!json_is_object(w)) { json_decref(w); return hb_error("%s: metadata \"warped\" missing", g->path); }
    const char *name;
    json_t *val;
    int rc = 0;
    json_object_foreach(w, name, val) {
        const char *p = "out.warped.shift";
        char *end;
        const char *dot = strrchr(name, '.');
        double S;
        if (strncmp(name, p, strlen(p)) != 0 || !parse_num(name + strlen(p), dot, &S)) {
            rc = hb_error("%s: warped entry '%s' is not out.warped.shift<S>.<list>", g->path, name);
            break;
        }
        int64_t list[64];
        int n = 0;
        const char *q = dot + 1;
        while (*q && n < 64) {
            list[n++] = strtoll(q, &end, 10);
            if (end == q) break;
            q = *end == '_' ? end + 1 : end;
        }
        hb_flowmatch_table t;
        float out[64];
        if (hb_flowmatch_table_init(&t, S) != 0 || hb_flowmatch_warp(&t, list, n, out) != 0) { rc = -1; break; }
        golden_compare_host(g, name, out, n);
    }
    json_decref(w);
    return rc;
}

static int run_unipc(golden_case *g) {
    json_t *u = json_object_get(g->config, "unipc"), *c = json_object_get(g->config, "unipc_ctor");
    if (!json_is_object(u)) return hb_error("%s: config \"unipc\" missing", g->path);
    hb_sampler_params p = {
        .num_train_timesteps = (int)json_integer_value(json_object_get(c, "num_train_timesteps")),
        .ctor_shift = json_is_number(json_object_get(c, "shift")) ? json_number_value(json_object_get(c, "shift")) : 1.0,
        .steps = (int)json_integer_value(json_object_get(u, "steps")),
        .shift = json_number_value(json_object_get(u, "shift")),
    };
    if (!p.num_train_timesteps) p.num_train_timesteps = 1000;
    if (json_is_true(json_object_get(c, "use_dynamic_shifting")))
        return hb_error("%s: use_dynamic_shifting is not supported", g->path);
    hb_tensor s0, mo;
    if (golden_tensor(g, "in.unipc.sample0", &s0) != 0 || golden_tensor(g, "in.unipc.model_out", &mo) != 0) return -1;
    int64_t numel = hb_tensor_numel(&s0);
    if (s0.dtype != HB_F32 || mo.dtype != HB_F32 || hb_tensor_numel(&mo) != numel * p.steps)
        return hb_error("%s: in.unipc.model_out must hold %d float32 samples of %lld", g->path, p.steps, (long long)numel);
    hb_flow_sampler s;
    if (hb_flow_sampler_init(&s, HB_SAMPLER_UNIPC, &p, numel) != 0) return -1;
    golden_compare_i64(g, "out.unipc.timesteps", s.timesteps, p.steps);
    golden_compare_host(g, "out.unipc.sigmas", s.sigmas, p.steps + 1);
    /* samples and model outputs in the backend's memory, as the pipeline keeps them */
    float *traj = hb_dev_alloc((size_t)(p.steps + 1) * (size_t)numel * sizeof(float), "unipc trajectory");
    float *mod = golden_tensor_dev(g, "in.unipc.model_out", NULL);
    double *dp = hb_malloc((size_t)p.steps * sizeof(double), "dpm++ sigmas");
    float *dpf = hb_malloc((size_t)p.steps * sizeof(float), "dpm++ sigmas");
    int rc = 0;
    if (!traj || !mod || !dp || !dpf || hb_dev_upload(traj, s0.data, (size_t)numel * sizeof(float))) { rc = -1; goto done; }
    for (int k = 0; k < p.steps && rc == 0; k++)
        rc = hb_flow_sampler_step(&s, mod + (size_t)k * numel, s.timesteps[k], traj + (size_t)k * numel,
                                  traj + (size_t)(k + 1) * numel);
    if (rc == 0) golden_compare(g, "out.unipc.samples", traj, (p.steps + 1) * numel);
    if (rc == 0 && hb_checkpoint_has(g->ck, "out.dpmpp.sampling_sigmas")) {
        hb_dpmpp_sampling_sigmas(p.steps, p.shift, dp);
        for (int k = 0; k < p.steps; k++) dpf[k] = (float)dp[k];
        golden_compare_host(g, "out.dpmpp.sampling_sigmas", dpf, p.steps);
    }
done:
    hb_dev_free(traj);
    hb_dev_free(mod);
    hb_free(dp);
    hb_free(dpf);
    hb_flow_sampler_free(&s);
    return rc;
}

int golden_run_flow_schedule(golden_case *g) {
    if (run_flowmatch(g) != 0) return -1;
    if (run_warped(g) != 0) return -1;
    if (run_unipc(g) != 0) return -1;
    return 0;
}
