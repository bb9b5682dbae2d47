/* pipeline/fewstep: the few-step flow update (fewstep.h). */
#include "pipeline/fewstep.h"
#include "pipeline/schedule.h"
#include <stdlib.h>

int hb_fewstep_schedule(hb_fewstep *s, const int64_t *list, int n, double shift, bool warp) {
    if (n < 1 || n > HB_FEWSTEP_MAX) return hb_error("few-step sampler: %d steps (1..%d)", n, HB_FEWSTEP_MAX);
    hb_flowmatch_table *tab = malloc(sizeof *tab);
    if (!tab) return hb_error("out of memory");
    int rc = hb_flowmatch_table_init(tab, shift);
    if (!rc && warp) rc = hb_flowmatch_warp(tab, list, n, s->t);
    for (int i = 0; !rc && !warp && i < n; i++) {
        if (list[i] < 0 || list[i] > 1000) rc = hb_error("few-step sampler: timestep %lld is outside [0, 1000]", (long long)list[i]);
        s->t[i] = (float)list[i];
    }
    if (!rc)
        for (int i = 0; i < n; i++) s->sigma[i] = hb_flowmatch_sigma(tab, s->t[i]);
    s->n = rc ? 0 : n;
    free(tab);
    return rc;
}

int hb_noise_normal(hb_rng *r, float *host, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) host[i] = hb_rng_normal(r);
    return hb_dev_upload(dst, host, (size_t)n * sizeof(float));
}

int hb_fewstep_run(const hb_fewstep *s, const hb_fewstep_hooks *h, float *x, float *x0, float *flow, float *eps,
                   int64_t n) {
    hb_progress pr;
    hb_progress_begin(&pr, h->progress, h->progress_user, "denoise", s->n);
    for (int k = 0; k < s->n; k++) {
        if (h->model(h->user, k, x, s->t[k], flow)) return -1;
        hb_flow_to_x0(x0, x, flow, s->sigma[k], n);
        if (h->fix) h->fix(h->user, x0);
        if (h->on_x0 && h->on_x0(h->user, k, x0)) return -1;
        if (k + 1 < s->n) {
            if (h->noise(h->user, k + 1, eps)) return -1;
            hb_flow_renoise(x, x0, eps, s->sigma[k + 1], n);
            if (h->fix) h->fix(h->user, x);
        }
        hb_progress_step(&pr, k + 1);
    }
    hb_progress_end(&pr);
    return 0;
}
