/* Golden runner for kind "gguf_quant_reference" (../shared/quant): the reference file names a GGUF (metadata
 * "gguf", beside it) written and quantized by ggml. The GGUF must load with the listed types and shapes and
 * dequantize bit for bit to deq.<name>; each weight with an activation in.x.<name> is multiplied two ways:
 * dequantized weights with exact f32 activations through hb_linear (against out.y_f32.<name>, rel <= 1e-5; on a
 * GPU backend, which multiplies in bf16, the run's tolerance)
 * and ggml's quantized-activation dot products (against out.y.<name>, rel <= 1e-3), the README's tolerances: once
 * through the scalar reference hb_matmul_ggml_ref and, on the CPU, once through hb_linear's integer kernel
 * (activation mode "q8", the CPU default for Q8_0 weights; out.y_f32 runs in mode "f32"). */
#include "golden.h"
#include "ops/ops_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOL_Y_F32 1e-5
#define TOL_Y_GGML 1e-3

/* The GGUF path: the metadata names a plain file in the reference file's folder. */
static int gguf_path(golden_case *g, char *out, size_t cap) {
    const char *name = hb_checkpoint_metadata(g->ck, "gguf");
    if (!name || !*name) return hb_error("%s: metadata \"gguf\" (the GGUF file's name) is missing", g->path);
    if (strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
        return hb_error("%s: metadata \"gguf\" = \"%s\" is not a plain file name", g->path, name);
    const char *slash = strrchr(g->path, '/');
    int n = slash ? snprintf(out, cap, "%.*s/%s", (int)(slash - g->path), g->path, name) : snprintf(out, cap, "%s", name);
    if (n < 0 || (size_t)n >= cap) return hb_error("%s: GGUF path too long", g->path);
    return 0;
}

/* The GGUF tensor must have the type and PyTorch shape the reference lists. */
static bool check_entry(golden_case *g, hb_checkpoint *q, json_t *e, hb_tensor *t) {
    const char *name = json_string_value(json_object_get(e, "name")), *type = json_string_value(json_object_get(e, "type"));
    json_t *shape = json_object_get(e, "shape");
    char what[300];
    snprintf(what, sizeof what, "type+shape %s", name ? name : "?");
    if (!name || !type || !json_is_array(shape)) { golden_report(g, what, 0, "malformed \"tensors\" entry", 0); return false; }
    if (hb_checkpoint_get(q, name, t) != 0) { golden_report(g, what, 0, hb_last_error(), 0); return false; }
    const char *ours = hb_dtype_name(t->dtype);
    bool ok = !strcasecmp(ours, type) && (int)json_array_size(shape) == t->ndim;
    for (int d = 0; ok && d < t->ndim; d++) ok = json_integer_value(json_array_get(shape, (size_t)d)) == t->shape[d];
    char buf[128];
    if (!ok) {
        char sh[64];
        snprintf(buf, sizeof buf, "GGUF holds %s %s, reference %s", ours, hb_shape_str(t, sh, sizeof sh), type);
    }
    golden_report(g, what, ok ? 0 : INFINITY, ok ? NULL : buf, 0);
    return ok;
}

/* deq.<name>: bit-exact. */
static void check_deq(golden_case *g, const char *name, const hb_tensor *t) {
    char rn[300];
    snprintf(rn, sizeof rn, "deq.%s", name);
    int64_t n = hb_tensor_numel(t);
    float *ours = hb_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1), "dequantized weight");
    float *ref = golden_tensor_f32(g, rn, NULL);
    if (!ours || !ref) { golden_report(g, rn, 0, hb_last_error(), 0); hb_free(ours); hb_free(ref); return; }
    hb_dequantize(ours, t->data, t->dtype, n);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += memcmp(&ours[i], &ref[i], 4) != 0;
    char why[96];
    snprintf(why, sizeof why, "%lld of %lld values differ in their bits (rel %.3e)", (long long)differ, (long long)n,
             golden_rel_err(ours, ref, n));
    golden_report(g, rn, differ ? golden_rel_err(ours, ref, n) : 0, differ ? why : NULL, 0);
    hb_free(ours);
    hb_free(ref);
}

/* out.y_f32 through hb_linear on the stored (quantized) weight, out.y through ggml's dot products. */
static void check_matmul(golden_case *g, const char *name, const hb_tensor *w) {
    char xn[300], yn[300], fn[300];
    snprintf(xn, sizeof xn, "in.x.%s", name);
    if (!hb_checkpoint_has(g->ck, xn)) return;
    snprintf(yn, sizeof yn, "out.y.%s", name);
    snprintf(fn, sizeof fn, "out.y_f32.%s", name);
    hb_tensor xt;
    float *x = golden_tensor_f32(g, xn, &xt);
    if (!x || xt.ndim != 2 || xt.shape[1] != w->shape[1] || w->ndim != 2) {
        golden_report(g, fn, 0, x ? "in.x does not fit the weight" : hb_last_error(), 0);
        hb_free(x);
        return;
    }
    const int64_t M = xt.shape[0], N = w->shape[0];
    const bool gpu = strncmp(hb_backend_current()->name, "cpu", 3) != 0;
    float *y = hb_malloc(sizeof(float) * (size_t)(M * N + 1), "matmul output");
    float *xd = golden_to_dev(x, M * w->shape[1]);
    float *yd = hb_dev_alloc(sizeof(float) * (size_t)(M * N + 1), "matmul output");
    if (!y || !xd || !yd) golden_report(g, fn, 0, hb_last_error(), 0);
    else {
        hb__quant_act_select("f32");
        if (hb_linear(yd, xd, M, w, NULL, false) != 0 || hb_backend_sync() != 0) golden_report(g, fn, 0, hb_last_error(), 0);
        else golden_compare_tol(g, fn, yd, M * N, gpu ? g->tol : TOL_Y_F32); /* a GPU multiplies in bf16 */
        hb__quant_act_select("q8");
        if (!gpu && hb__qgemm_applies(w)) {
            char kn[340];
            snprintf(kn, sizeof kn, "%s (hb_linear, %s kernel)", yn, hb__qgemm_kernel());
            float *ref = golden_tensor_f32(g, yn, NULL); /* (on the CPU yd is host memory) */
            if (!ref || hb_linear(yd, xd, M, w, NULL, false) != 0) golden_report(g, kn, 0, hb_last_error(), 0);
            else golden_report(g, kn, golden_rel_err(yd, ref, M * N), NULL, TOL_Y_GGML);
            hb_free(ref);
        }
    }
    if (y && hb_matmul_ggml_ref(y, x, M, w) == 0) golden_compare_host_tol(g, yn, y, M * N, TOL_Y_GGML);
    else golden_report(g, yn, 0, hb_last_error(), 0);
    hb_dev_free(xd);
    hb_dev_free(yd);
    hb_free(y);
    hb_free(x);
}

int golden_run_gguf_quant(golden_case *g) {
    char path[4096];
    if (gguf_path(g, path, sizeof path)) return -1;
    json_t *tensors = golden_meta_json(g, "tensors");
    if (!json_is_array(tensors)) {
        json_decref(tensors);
        return hb_error("%s: metadata \"tensors\" is missing or not a JSON array", g->path);
    }
    hb_checkpoint *q = hb_checkpoint_open(path);
    if (!q) { json_decref(tensors); return -1; }
    const bool gpu = strncmp(hb_backend_current()->name, "cpu", 3) != 0;
    printf("  %s: %d tensors, type %s (tolerances: type+shape and deq.* exact, out.y_f32 %.0e, out.y %.0e)\n", path,
           hb_checkpoint_count(q), hb_checkpoint_metadata(g->ck, "type") ? hb_checkpoint_metadata(g->ck, "type") : "?",
           gpu ? g->tol : TOL_Y_F32, TOL_Y_GGML);
    size_t i;
    json_t *e;
    json_array_foreach(tensors, i, e) {
        hb_tensor t;
        if (!check_entry(g, q, e, &t)) continue;
        const char *name = json_string_value(json_object_get(e, "name"));
        check_deq(g, name, &t);
        check_matmul(g, name, &t);
    }
    if (hb_checkpoint_count(q) != (int)json_array_size(tensors))
        golden_report(g, "tensor count", INFINITY, "the GGUF and the reference list different tensor counts", 0);
    hb_checkpoint_close(q);
    json_decref(tensors);
    return 0;
}
