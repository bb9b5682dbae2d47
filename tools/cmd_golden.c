#include "golden.h"
#include "tools.h"
#include "ops/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *kind; int (*run)(golden_case *); bool config; } k_runners[] = {
    {"wan_dit", golden_run_wan_dit, true},           {"wan_causal_dit", golden_run_wan_causal_dit, true},
    {"wan_vae", golden_run_wan_vae, true},           {"umt5_encoder", golden_run_umt5_encoder, true},
    {"taehv", golden_run_taehv, true},               {"flow_schedule", golden_run_flow_schedule, true},
    {"xt_loop", golden_run_xt_loop, true},           {"xtx_loop", golden_run_xtx_loop, true},
    {"hummingbird_light_vae", golden_run_hummingbird_light_vae, true},
    {"hummingbird_light_vae_train", golden_run_hummingbird_light_vae_train, true},
    {"gguf_quant_reference", golden_run_gguf_quant, false}, /* per-check tolerances from ../shared/quant */
};

json_t *golden_meta_json(golden_case *g, const char *key) {
    const char *s = hb_checkpoint_metadata(g->ck, key);
    if (!s) return NULL;
    return json_loads(s, JSON_DECODE_ANY, NULL);
}

double golden_meta_num(golden_case *g, const char *key, double def) {
    json_t *v = golden_meta_json(g, key);
    double r = json_is_number(v) ? json_number_value(v) : def;
    json_decref(v);
    return r;
}

int64_t golden_cfg_int(golden_case *g, const char *key, int64_t def) {
    json_t *v = json_object_get(g->config, key);
    if (json_is_integer(v)) return json_integer_value(v);
    if (json_is_real(v)) { /* outside int64 the conversion is undefined: the default then */
        double d = json_real_value(v);
        return d >= -0x1p63 && d < 0x1p63 ? (int64_t)d : def;
    }
    if (json_is_true(v)) return 1;
    if (json_is_false(v)) return 0;
    return def;
}

double golden_cfg_num(golden_case *g, const char *key, double def) {
    json_t *v = json_object_get(g->config, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

int golden_tensor(golden_case *g, const char *name, hb_tensor *out) { return hb_checkpoint_get(g->ck, name, out); }

float *golden_tensor_f32(golden_case *g, const char *name, hb_tensor *t) {
    hb_tensor tmp;
    if (!t) t = &tmp;
    if (golden_tensor(g, name, t)) return NULL;
    int64_t n = hb_tensor_numel(t);
    float *d = hb_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1), name);
    if (d) hb_convert_to_f32(d, t->data, t->dtype, (size_t)n);
    return d;
}

double golden_rel_err(const float *ours, const float *ref, int64_t n) {
    double maxd = 0, maxr = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - (double)ref[i]);
        if (!(d <= maxd)) maxd = d; /* NaN propagates as a failure */
        double r = fabs((double)ref[i]);
        if (r > maxr) maxr = r;
    }
    return maxr > 0 ? maxd / maxr : maxd;
}

void golden_report(golden_case *g, const char *name, double err, const char *why, double tol) {
    bool ok = !why && err <= tol;
    g->checked++;
    if (!ok) g->failed++;
    if (why || !(err <= g->worst)) g->worst = why ? INFINITY : err;
    if (why) printf("  %-36s %s  FAIL\n", name, why);
    else printf("  %-36s %.3e  %s\n", name, err, ok ? "ok" : "FAIL");
}

float *golden_tensor_dev(golden_case *g, const char *name, hb_tensor *t) {
    hb_tensor tmp;
    if (!t) t = &tmp;
    float *h = golden_tensor_f32(g, name, t);
    if (!h) return NULL;
    float *d = golden_to_dev(h, hb_tensor_numel(t));
    hb_free(h);
    return d;
}

float *golden_to_dev(const float *host, int64_t n) {
    size_t bytes = sizeof(float) * (size_t)(n > 0 ? n : 1);
    float *d = hb_dev_alloc(bytes, "golden input");
    if (d && n > 0 && hb_dev_upload(d, host, bytes)) { hb_dev_free(d); return NULL; }
    return d;
}

void golden_compare(golden_case *g, const char *name, const float *ours_dev, int64_t n) {
    golden_compare_tol(g, name, ours_dev, n, g->tol);
}

void golden_compare_tol(golden_case *g, const char *name, const float *ours_dev, int64_t n, double tol) {
    /* Results live in the backend's memory: bring them to the host first when that is a device. */
    float *host = NULL;
    const float *ours = ours_dev;
    if (!hb_memspace_current()->is_host) {
        host = hb_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1), name);
        if (!host || hb_dev_download(host, ours_dev, sizeof(float) * (size_t)n)) {
            hb_free(host);
            golden_report(g, name, 0, "cannot read the result back from the device", g->tol);
            return;
        }
        ours = host;
    }
    golden_compare_host_tol(g, name, ours, n, tol);
    hb_free(host);
}

void golden_compare_host(golden_case *g, const char *name, const float *ours, int64_t n) {
    golden_compare_host_tol(g, name, ours, n, g->tol);
}

void golden_compare_host_tol(golden_case *g, const char *name, const float *ours, int64_t n, double tol) {
    hb_tensor ref;
    if (hb_checkpoint_get(g->ck, name, &ref) != 0) { golden_report(g, name, 0, "missing in the golden file", g->tol); return; }
    if (hb_tensor_numel(&ref) != n) {
        char buf[64];
        snprintf(buf, sizeof buf, "size %lld, expected %lld", (long long)n, (long long)hb_tensor_numel(&ref));
        golden_report(g, name, 0, buf, g->tol);
        return;
    }
    float *r = hb_malloc((size_t)n * sizeof(float), name);
    if (!r) { golden_report(g, name, 0, "out of memory", g->tol); return; }
    hb_convert_to_f32(r, ref.data, ref.dtype, (size_t)n);
    golden_report(g, name, golden_rel_err(ours, r, n), NULL, tol);
    hb_free(r);
}

void golden_compare_i64(golden_case *g, const char *name, const int64_t *ours, int64_t n) {
    hb_tensor ref;
    if (hb_checkpoint_get(g->ck, name, &ref) != 0) { golden_report(g, name, 0, "missing in the golden file", g->tol); return; }
    if (ref.dtype != HB_I64 || hb_tensor_numel(&ref) != n) { golden_report(g, name, 0, "dtype or size differs", g->tol); return; }
    const int64_t *r = ref.data;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += r[i] != ours[i];
    golden_report(g, name, bad ? INFINITY : 0.0, bad ? "integers differ" : NULL, g->tol);
}

static void usage(FILE *f) {
    fprintf(f, "usage: hb golden [options] FILE...\n\n"
               "Runs each golden file (weights + inputs + reference outputs, kind in its metadata) through the\n"
               "matching component and prints the max relative error (max|ours-ref|/max|ref|) of every output\n"
               "and intermediate. Exits 1 when any error exceeds the tolerance or a case cannot run.\n\n"
               "options:\n"
               "  --tol X      tolerance (default 1e-4 for float32, 5e-2 with --bf16)\n"
               "  --bf16       run in bf16 where the component supports it\n"
               "  -d DEVICE    run on cpu (default), cuda[:N], or cpu-guard (CPU kernels, faults on any host\n"
               "               access to activations); a GPU defaults to --tol 5e-2 (bf16 weights), except\n"
               "               the training golden (float32 everywhere: 1e-4)\n"
               "  -t N, -v, -q as every command\n");
}

int cmd_golden(int argc, char **argv) {
    double tol = -1;
    bool bf16 = false;
    int nfiles = 0, bad = 0;
    char **files = calloc((size_t)argc, sizeof *files);
    if (!files) return 1;
    for (int i = 1; i < argc; i++) {
        int c = tool_common_flag(argc, argv, &i);
        if (c < 0) { free(files); return tool_fail("golden"); }
        if (c) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); free(files); return 0; }
        if (!strcmp(argv[i], "--bf16")) { bf16 = true; continue; }
        if (!strcmp(argv[i], "--tol")) {
            char *end = NULL;
            if (i + 1 < argc) tol = strtod(argv[++i], &end);
            if (!end || *end || !(tol > 0)) { fprintf(stderr, "hb golden: --tol needs a positive number\n"); free(files); return 2; }
            continue;
        }
        if (argv[i][0] == '-') { fprintf(stderr, "hb golden: unknown option %s\n", argv[i]); usage(stderr); free(files); return 2; }
        files[nfiles++] = argv[i];
    }
    if (!nfiles) { usage(stderr); free(files); return 2; }
    bool gpu = strncmp(hb_backend_current()->name, "cpu", 3) != 0, tol_default = tol < 0;
    if (tol < 0) tol = bf16 || gpu ? 5e-2 : 1e-4;
    int checks = 0, failures = 0, unrun = 0;
    double worst = 0;
    const char *worst_file = NULL;
    for (int f = 0; f < nfiles; f++) {
        golden_case g = {.path = files[f], .tol = tol, .tol_default = tol_default, .bf16 = bf16};
        g.ck = hb_checkpoint_open(files[f]);
        if (!g.ck) { fprintf(stderr, "hb golden: %s\n", hb_last_error()); bad++, unrun++; continue; }
        g.kind = hb_checkpoint_metadata(g.ck, "kind");
        g.variant = hb_checkpoint_metadata(g.ck, "variant");
        g.config = golden_meta_json(&g, "config");
        int (*run)(golden_case *) = NULL;
        bool need_config = true;
        for (size_t k = 0; g.kind && k < sizeof k_runners / sizeof k_runners[0]; k++)
            if (!strcmp(g.kind, k_runners[k].kind)) { run = k_runners[k].run; need_config = k_runners[k].config; }
        if (!need_config && !g.config) g.config = json_object();
        printf("%s: kind %s%s%s\n", files[f], g.kind ? g.kind : "?", g.variant ? ", variant " : "",
               g.variant ? g.variant : "");
        int rc;
        if (!g.kind) rc = hb_error("%s: no \"kind\" in the metadata: not a golden file", files[f]);
        else if (!run) rc = hb_error("%s: unknown golden kind '%s'", files[f], g.kind);
        else if (!json_is_object(g.config)) rc = hb_error("%s: metadata \"config\" is missing or not a JSON object", files[f]);
        else rc = run(&g);
        if (rc != 0) { fprintf(stderr, "hb golden: %s\n", hb_last_error()); bad++, unrun++; }
        else {
            checks += g.checked, failures += g.failed;
            if (!worst_file || g.worst > worst || g.worst != g.worst) worst = g.worst, worst_file = files[f];
            printf("  => %s: %d checked, %d failed, worst %.3e (tolerance %.1e)\n", g.failed ? "FAIL" : "PASS",
                   g.checked, g.failed, g.worst, g.tol);
            if (g.failed || g.checked == 0) bad++;
        }
        json_decref(g.config);
        hb_checkpoint_close(g.ck);
    }
    /* one line for the whole run (the last thing printed: easy to read in CI logs) */
    printf("hb golden: %d files, %d checks, %d failed, %d could not run; worst %.3e%s%s => %s\n", nfiles, checks,
           failures, unrun, worst, worst_file ? " in " : "", worst_file ? worst_file : "", bad ? "FAIL" : "PASS");
    free(files);
    return bad ? 1 : 0;
}
