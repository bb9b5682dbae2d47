/* Helpers shared by the tests/test_ops_*.c files: weights in any dtype, thread-count determinism checks. */
#ifndef TEST_OPS_COMMON_H
#define TEST_OPS_COMMON_H

#include "testlib.h"
#include "ops/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const hb_dtype k_wdtypes[3] = {HB_F32, HB_BF16, HB_F16};

/* Round `v` (n values) to dtype t in place (so a reference sees exactly the stored weights) and return a malloc'ed
 * buffer holding the stored form. */
static inline void *to_dtype(float *v, int64_t n, hb_dtype t) {
    void *s = malloc((size_t)n * hb_dtype_size(t) + 1);
    hb_convert_from_f32(s, t, v, (size_t)n);
    hb_convert_to_f32(v, s, t, (size_t)n);
    return s;
}

static inline float *rnd(hb_rng *r, int64_t n, float std) {
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    tl_fill_normal(r, v, n, std);
    return v;
}

/* Run `body(ctx, out)` with 1, 2 and 3 threads; check the three outputs (nbytes each) are bitwise identical.
 * `out` receives the 1-thread result. */
typedef void (*tl_body)(void *ctx, float *out);
static inline bool same_for_threads(tl_body body, void *ctx, float *out, size_t nbytes, const char *what) {
    float *o2 = malloc(nbytes + 4), *o3 = malloc(nbytes + 4);
    hb_threads_init(1);
    body(ctx, out);
    hb_threads_init(2);
    body(ctx, o2);
    hb_threads_init(3);
    body(ctx, o3);
    bool ok = memcmp(out, o2, nbytes) == 0 && memcmp(out, o3, nbytes) == 0;
    CHECKF(ok, "%s: results differ between 1, 2 and 3 threads", what);
    free(o2);
    free(o3);
    return ok;
}

#endif
