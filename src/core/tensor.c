#include "core/core.h"
#include <stdio.h>
#include <string.h>

hb_tensor hb_tensor_make(hb_dtype t, int ndim, const int64_t *shape, void *data) {
    hb_tensor x;
    memset(&x, 0, sizeof x);
    x.dtype = t;
    x.ndim = ndim;
    x.data = data;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        x.shape[i] = shape[i];
        x.stride[i] = s;
        s *= shape[i];
    }
    return x;
}

hb_tensor hb_tensor_1d(hb_dtype t, int64_t n0, void *data) { int64_t s[1] = {n0}; return hb_tensor_make(t, 1, s, data); }
hb_tensor hb_tensor_2d(hb_dtype t, int64_t n0, int64_t n1, void *data) { int64_t s[2] = {n0, n1}; return hb_tensor_make(t, 2, s, data); }
hb_tensor hb_tensor_3d(hb_dtype t, int64_t n0, int64_t n1, int64_t n2, void *data) { int64_t s[3] = {n0, n1, n2}; return hb_tensor_make(t, 3, s, data); }
hb_tensor hb_tensor_4d(hb_dtype t, int64_t n0, int64_t n1, int64_t n2, int64_t n3, void *data) { int64_t s[4] = {n0, n1, n2, n3}; return hb_tensor_make(t, 4, s, data); }

int64_t hb_tensor_numel(const hb_tensor *x) {
    /* a zero dimension first: the other dimensions' product may not fit (readers bound only the total) */
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] == 0) return 0;
    int64_t n = 1;
    for (int i = 0; i < x->ndim; i++) n *= x->shape[i];
    return n;
}

size_t hb_tensor_nbytes(const hb_tensor *x) { return hb_dtype_bytes(x->dtype, hb_tensor_numel(x)); }

bool hb_tensor_is_contiguous(const hb_tensor *x) {
    int64_t s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        if (x->shape[i] != 1 && x->stride[i] != s) return false;
        s *= x->shape[i];
    }
    return true;
}

int hb_tensor_narrow(const hb_tensor *x, int dim, int64_t start, int64_t len, hb_tensor *out) {
    if (dim < 0 || dim >= x->ndim || start < 0 || len < 0 || start + len > x->shape[dim])
        return hb_error("narrow: dim %d range [%lld, %lld) outside size %lld", dim, (long long)start,
                        (long long)(start + len), dim >= 0 && dim < x->ndim ? (long long)x->shape[dim] : -1LL);
    *out = *x;
    out->shape[dim] = len;
    int64_t be = hb_dtype_block_elems(x->dtype);
    if ((start * x->stride[dim]) % be)
        return hb_error("narrow: dim %d start %lld splits a %s block", dim, (long long)start, hb_dtype_name(x->dtype));
    out->data = (uint8_t *)x->data + hb_dtype_bytes(x->dtype, start * x->stride[dim]);
    return 0;
}

int hb_tensor_reshape(const hb_tensor *x, int ndim, const int64_t *shape, hb_tensor *out) {
    if (!hb_tensor_is_contiguous(x)) return hb_error("reshape of a non-contiguous tensor");
    if (ndim < 0 || ndim > HB_MAX_DIMS) return hb_error("reshape: %d dims (max %d)", ndim, HB_MAX_DIMS);
    int64_t s[HB_MAX_DIMS], known = 1, n = hb_tensor_numel(x);
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1) { if (infer >= 0) return hb_error("reshape: two inferred dims"); infer = i; }
        else known *= s[i];
    }
    if (infer >= 0) { if (known == 0 || n % known) return hb_error("reshape: cannot infer dim"); s[infer] = n / known; known *= s[infer]; }
    if (known != n) return hb_error("reshape: %lld elements into %lld", (long long)n, (long long)known);
    *out = hb_tensor_make(x->dtype, ndim, s, x->data);
    return 0;
}

bool hb_tensor_same_shape(const hb_tensor *a, const hb_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++) if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *hb_shape_str(const hb_tensor *x, char *buf, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < x->ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)x->shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}

int hb_tensor_expect(const hb_tensor *x, const char *what, int ndim, const int64_t *shape) {
    bool ok = x->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) if (shape[i] >= 0 && x->shape[i] != shape[i]) ok = false;
    if (ok) return 0;
    char have[128], want[128];
    size_t o = 0;
    o += (size_t)snprintf(want + o, sizeof want - o, "[");
    for (int i = 0; i < ndim && o < sizeof want; i++) {
        if (shape[i] >= 0) o += (size_t)snprintf(want + o, sizeof want - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
        else o += (size_t)snprintf(want + o, sizeof want - o, "%s*", i ? ", " : "");
    }
    if (o < sizeof want) snprintf(want + o, sizeof want - o, "]");
    return hb_error("%s has shape %s, expected %s", what, hb_shape_str(x, have, sizeof have), want);
}

int hb_tensor_alloc(hb_arena *a, hb_dtype t, int ndim, const int64_t *shape, hb_tensor *out) {
    *out = hb_tensor_make(t, ndim, shape, NULL);
    void *p = hb_arena_alloc(a, hb_tensor_nbytes(out));
    if (!p) return -1;
    out->data = p;
    return 0;
}
