/* A weight source for hb_*_load_custom that keeps every weight the loader asks for, by name, with random values
 * (gammas around 1, biases small, matrices scaled by their fan-in), so a test can write the model out or recompute
 * its layers independently. Shared by test_wan_vae and test_wan_vae_taps. Header-only (static). */
#ifndef HB_TESTS_WEIGHT_RECORDER_H
#define HB_TESTS_WEIGHT_RECORDER_H

#include "testlib.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WREC_MAX 1024
typedef struct {
    hb_rng rng;
    int n;
    char *names[WREC_MAX];
    hb_tensor t[WREC_MAX];
} wrec;

static inline int rec_fn(void *u, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    wrec *w = u;
    if (w->n >= WREC_MAX) return hb_error("too many weights");
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *d = malloc((size_t)n * sizeof(float));
    size_t len = strlen(name);
    bool gamma = !strcmp(name + len - 5, "gamma"), bias = !strcmp(name + len - 4, "bias");
    float sd = gamma || bias ? 0.1f : (float)(1.0 / sqrt((double)(n / shape[0])));
    for (int64_t i = 0; i < n; i++) d[i] = (gamma ? 1.0f : 0.0f) + sd * hb_rng_normal(&w->rng);
    w->names[w->n] = strdup(name);
    w->t[w->n] = hb_tensor_make(HB_F32, ndim, shape, d);
    *out = w->t[w->n++];
    return 0;
}

static inline void rec_free(wrec *w) {
    for (int i = 0; i < w->n; i++) free(w->names[i]), free(w->t[i].data);
    w->n = 0;
}

/* the weight the loader was given under this name (a failed check when it asked for none) */
static inline hb_tensor wget(const wrec *w, const char *name) {
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->names[i], name)) return w->t[i];
    CHECKF(0, "weight %s not asked for by the loader", name);
    return (hb_tensor){0};
}

#endif
