/* Golden runner for kind "hummingbird_light_vae_train" (one step of light-decoder distillation): build the
 * decoder and its projection heads from metadata config_json and the teacher feature shapes, run the training
 * pass on in.latent / in.target_video / in.teacher_feat.i with the loss weights of metadata "loss", compare the
 * losses, video_raw, mid.* and every parameter gradient (normwise, exact zeros must stay 0), take two AdamW
 * steps with metadata "optimizer" and compare the weights element-wise: |ours - ref| <= 0.05 lr, or 2 lr /
 * 4 lr at the flat indices of metadata sign_sensitive.step1 / step2 (../shared/golden/README.md). With -d the pass
 * runs on that backend (its convs with f32 operands, HB_CONV_F32), the steps on the CPU from its gradients. */
#include "golden.h"
#include "models/light_vae_train.h"
#include "ops/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void observe(void *user, const char *name, const float *x, int64_t n) {
    golden_case *g = user;
    char nm[64];
    snprintf(nm, sizeof nm, strcmp(name, "video_raw") ? "mid.%s" : "out.%s", name);
    if (hb_checkpoint_has(g->ck, nm)) golden_compare(g, nm, x, n);
}

static void compare_loss(golden_case *g, const char *name, double v) {
    float f = (float)v;
    golden_compare_host(g, name, &f, 1);
}

/* every gradient normwise; an exact zero of the reference must be an exact zero here */
static void compare_grads(golden_case *g, const hb_lvt *m) {
    float *gh = hb_malloc(sizeof(float) * (size_t)m->total, "gradients");
    if (!gh || hb_lvt_grad_to_host(m, gh)) { golden_report(g, "out.grad.*", 0, "cannot read the gradients", g->tol); hb_free(gh); return; }
    for (int i = 0; i < m->nparams; i++) {
        const hb_lvt_param *p = &m->params[i];
        char nm[300];
        snprintf(nm, sizeof nm, "out.grad.%s", p->name);
        hb_tensor ref;
        if (hb_checkpoint_get(g->ck, nm, &ref) || ref.dtype != HB_F32 || hb_tensor_numel(&ref) != p->n) {
            golden_report(g, nm, 0, "missing or of another size in the golden file", g->tol);
            continue;
        }
        const float *r = ref.data, *o = gh + p->off;
        int64_t nonzero = 0;
        for (int64_t k = 0; k < p->n; k++) nonzero += r[k] == 0.0f && o[k] != 0.0f;
        if (nonzero) {
            char why[96];
            snprintf(why, sizeof why, "%lld exact-zero gradients are not zero", (long long)nonzero);
            golden_report(g, nm, 0, why, g->tol);
        } else golden_report(g, nm, golden_rel_err(o, r, p->n), NULL, g->tol);
    }
    hb_free(gh);
}

/* weights after a step, element-wise in units of lr; one line for all tensors */
static void compare_step(golden_case *g, const hb_lvt *m, int step, double lr, json_t *sens) {
    double worst = 0, worst_sens = 0, lim_sens = step == 1 ? 2.0 : 4.0;
    const char *wname = "";
    int64_t checked = 0;
    for (int i = 0; i < m->nparams; i++) {
        const hb_lvt_param *p = &m->params[i];
        char nm[300];
        snprintf(nm, sizeof nm, "out.step%d.%s", step, p->name);
        hb_tensor ref;
        if (hb_checkpoint_get(g->ck, nm, &ref) || ref.dtype != HB_F32 || hb_tensor_numel(&ref) != p->n) {
            golden_report(g, nm, 0, "missing or of another size in the golden file", 0.05);
            continue;
        }
        const float *r = ref.data, *o = m->w + p->off;
        json_t *idx = json_object_get(sens, p->name);
        bool *is_sens = hb_calloc((size_t)p->n + 1, "sign-sensitive flags");
        if (!is_sens) return;
        for (size_t k = 0; json_is_array(idx) && k < json_array_size(idx); k++) {
            json_int_t e = json_integer_value(json_array_get(idx, k));
            if (e >= 0 && e < p->n) is_sens[e] = true;
        }
        for (int64_t k = 0; k < p->n; k++, checked++) {
            double d = fabs((double)o[k] - (double)r[k]) / lr;
            if (!(d <= (is_sens[k] ? worst_sens : worst))) {
                if (is_sens[k]) worst_sens = d;
                else worst = d, wname = p->name;
            }
        }
        hb_free(is_sens);
    }
    /* counted here rather than through golden_report: the unit is lr, not the case's normwise tolerance */
    bool ok = worst <= 0.05 && worst_sens <= lim_sens;
    g->checked++, g->failed += !ok;
    printf("  out.step%d.* (%lld weights)           max |d|/lr %.3e (limit 0.05), sign-sensitive %.3e (limit %g) at %s  %s\n",
           step, (long long)checked, worst, worst_sens, lim_sens, wname, ok ? "ok" : "FAIL");
}

static double meta_sub(golden_case *g, const char *key, const char *sub, double def) {
    json_t *o = golden_meta_json(g, key), *v = json_object_get(o, sub);
    double r = json_is_number(v) ? json_number_value(v) : def;
    json_decref(o);
    return r;
}

static hb_lvt *build(golden_case *g, float **teacher, int *nteacher) {
    const char *js = hb_checkpoint_metadata(g->ck, "config_json");
    if (!js) { hb_error("%s: metadata config_json missing", g->path); return NULL; }
    char what[300];
    snprintf(what, sizeof what, "%s: metadata config_json", g->path);
    hb_light_vae_config c;
    int64_t tdims[HB_LVT_MAX_HEADS];
    int n = 0;
    for (; n < HB_LVT_MAX_HEADS; n++) {
        char nm[48];
        snprintf(nm, sizeof nm, "in.teacher_feat.%d", n);
        if (!hb_checkpoint_has(g->ck, nm)) break;
        hb_tensor t;
        if (!(teacher[n] = golden_tensor_f32(g, nm, &t))) return NULL;
        tdims[n] = t.shape[0];
    }
    *nteacher = n;
    hb_lvt_head heads[HB_LVT_MAX_HEADS];
    int nh = 0;
    if (hb_light_vae_config_from_json(&c, js, what) || hb_lvt_heads_parse(heads, &nh, js, tdims, n, what)) return NULL;
    hb_lvt *m = hb_lvt_new(&c, heads, nh);
    if (!m || hb_lvt_load(m, g->ck, true)) { hb_lvt_free(m); return NULL; }
    hb_tensor tm, ts;
    float *mean = golden_tensor_f32(g, "in.latent_mean", &tm), *sd = mean ? golden_tensor_f32(g, "in.latent_std", &ts) : NULL;
    int rc = !sd ? -1 : hb_lvt_set_latent_stats(m, mean, sd, (int)hb_tensor_numel(&tm));
    hb_free(mean), hb_free(sd);
    if (rc) { hb_lvt_free(m); return NULL; }
    return m;
}

/* shapes of the target and teacher features must be what the network produces */
static int check_shapes(golden_case *g, const hb_lvt *m, const hb_tensor *lt, const hb_tensor *tt) {
    int64_t s[4];
    hb_lvt_video_shape(m, lt->shape[1], lt->shape[2], lt->shape[3], s);
    if (tt->ndim != 4 || memcmp(s, tt->shape, sizeof s)) return hb_error("%s: in.target_video is not [3, %lld, %lld, %lld]", g->path, (long long)s[1], (long long)s[2], (long long)s[3]);
    for (int i = 0; i < m->nheads; i++) {
        char nm[48];
        hb_tensor t;
        snprintf(nm, sizeof nm, "in.teacher_feat.%d", i);
        hb_lvt_head_shape(m, i, lt->shape[1], lt->shape[2], lt->shape[3], s);
        if (golden_tensor(g, nm, &t) || t.ndim != 4 || memcmp(s, t.shape, sizeof s))
            return hb_error("%s: %s is not [%lld, %lld, %lld, %lld]", g->path, nm, (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3]);
    }
    return 0;
}

int golden_run_hummingbird_light_vae_train(golden_case *g) {
    if (g->bf16) printf("  (training runs in float32; --bf16 is ignored)\n");
    if (g->tol_default) g->tol = 1e-4; /* float32 on every backend: a GPU's default 5e-2 is for bf16 operands */
    float *teacher[HB_LVT_MAX_HEADS] = {0};
    int nt = 0;
    hb_lvt *m = build(g, teacher, &nt);
    hb_tensor lt, tt;
    float *lat = m ? golden_tensor_dev(g, "in.latent", &lt) : NULL, *target = lat ? golden_tensor_f32(g, "in.target_video", &tt) : NULL;
    int rc = target ? 0 : -1;
    if (!rc && (lt.ndim != 4 || lt.shape[0] != m->cfg.latent_channels))
        rc = hb_error("%s: in.latent must be [%d, T, h, w]", g->path, m->cfg.latent_channels);
    if (!rc) rc = check_shapes(g, m, &lt, &tt);
    hb_adamw opt = {meta_sub(g, "optimizer", "lr", NAN), 0.9, 0.999, meta_sub(g, "optimizer", "eps", NAN),
                    meta_sub(g, "optimizer", "weight_decay", NAN)};
    json_t *o = golden_meta_json(g, "optimizer"), *betas = json_object_get(o, "betas");
    bool have_betas = json_array_size(betas) == 2;
    if (have_betas)
        opt.beta1 = json_number_value(json_array_get(betas, 0)), opt.beta2 = json_number_value(json_array_get(betas, 1));
    json_decref(o);
    if (!rc && (isnan(opt.lr) || isnan(opt.eps) || isnan(opt.weight_decay) || !have_betas))
        rc = hb_error("%s: metadata optimizer needs lr, betas, eps and weight_decay", g->path);
    hb_lvt_batch b = {lat, lt.shape[1], lt.shape[2], lt.shape[3], target, (const float *const *)teacher,
                      (float)meta_sub(g, "loss", "w_rec", 1.0), (float)meta_sub(g, "loss", "w_feat", 1.0), 1.0f};
    hb_lvt_losses L;
    json_t *sens = golden_meta_json(g, "sign_sensitive");
    if (!rc) rc = hb_lvt_train_pass(m, &b, &L, observe, g);
    if (!rc) {
        compare_loss(g, "out.loss", L.loss);
        compare_loss(g, "out.loss_rec", L.loss_rec);
        for (int i = 0; i < m->nheads; i++) {
            char nm[32];
            snprintf(nm, sizeof nm, "out.loss_feat.%d", i);
            compare_loss(g, nm, L.loss_feat[i]);
        }
        compare_grads(g, m);
        rc = hb_lvt_step(m, &opt, 0.0f);
    }
    if (!rc) {
        compare_step(g, m, 1, opt.lr, json_object_get(sens, "step1"));
        hb_lvt_zero_grad(m);
        rc = hb_lvt_train_pass(m, &b, &L, NULL, NULL);
    }
    if (!rc) {
        compare_loss(g, "out.loss_step2", L.loss);
        rc = hb_lvt_step(m, &opt, 0.0f);
    }
    if (!rc) compare_step(g, m, 2, opt.lr, json_object_get(sens, "step2"));
    json_decref(sens);
    for (int i = 0; i < nt; i++) hb_free(teacher[i]);
    hb_dev_free(lat), hb_free(target);
    hb_lvt_free(m);
    return rc;
}
