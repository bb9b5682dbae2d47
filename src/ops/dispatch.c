/* The op entry points: one checked dispatcher per op of ops_list.h that forwards to this thread's backend, the
 * ops written in terms of others (conv2d, copies, elementwise shorthands) and the choice of backend by name. */
#include "ops/ops_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local const hb_backend *g_be;

static inline const hb_backend *be(void) { return g_be ? g_be : hb_backend_cpu(); }

const hb_backend *hb_backend_current(void) { return be(); }

const hb_backend *hb_backend_use(const hb_backend *b) {
    const hb_backend *prev = be();
    g_be = b ? b : hb_backend_cpu();
    hb_memspace_set(g_be->mem);
    return prev;
}

const hb_backend *hb_backend_find(const char *device) {
    if (!device || !*device || !strcmp(device, "cpu")) return hb_backend_cpu();
    if (!strcmp(device, "cpu-guard")) return hb_backend_cpu_guard();
    if (!strncmp(device, "cuda", 4) || !strncmp(device, "hip", 3) || !strncmp(device, "gpu", 3)) {
        const char *n = device + (device[0] == 'c' ? 4 : 3);
        if (*n && (*n != ':' || !n[1] || strspn(n + 1, "0123456789") != strlen(n + 1))) goto unknown;
        return hb__backend_gpu(device);
    }
unknown:
    hb_error("unknown device '%s' (known: cpu, cuda, cuda:N, cpu-guard)", device);
    return NULL;
}

#ifndef HB_HAVE_CUDA
const hb_backend *hb__backend_gpu(const char *device) {
    hb_error("device '%s': this build has no GPU backend (configure with -DHB_CUDA=ON on a machine with the CUDA "
             "toolkit, or -DHB_HIP=ON with ROCm); running on the CPU needs no flag", device);
    return NULL;
}
#endif

/* ---------- argument checks ----------
 * Shared by every backend, so the kernels may assume them. Each helper returns nonzero after hb_error with one
 * line naming the op and the problem. Device pointers are only compared, never read. */

static int negative(const char *fn, const char *what, int64_t v) {
    return v < 0 ? hb_error("%s: %s is negative (%lld)", fn, what, (long long)v) : 0;
}

static int below(const char *fn, const char *what, int64_t v, int64_t min) {
    return v < min ? hb_error("%s: %s is %lld, must be at least %lld", fn, what, (long long)v, (long long)min) : 0;
}

/* A pointer the op reads or writes when `used` (a non-empty operand). */
static int missing(const char *fn, const char *what, const void *p, bool used) {
    return used && !p ? hb_error("%s: %s is NULL", fn, what) : 0;
}

/* Operands of na and nb elements of `size` bytes: the same buffer (when same_ok) or disjoint. */
static int overlap(const char *fn, const char *a_what, const void *a, int64_t na, const char *b_what, const void *b,
                   int64_t nb, size_t size, bool same_ok) {
    if (!a || !b || na <= 0 || nb <= 0 || (same_ok && a == b)) return 0;
    const uintptr_t a0 = (uintptr_t)a, a1 = a0 + (uintptr_t)na * size, b0 = (uintptr_t)b, b1 = b0 + (uintptr_t)nb * size;
    if (a0 < b1 && b0 < a1)
        return hb_error("%s: %s and %s overlap (they must be %s)", fn, a_what, b_what,
                        same_ok ? "the same buffer or disjoint" : "disjoint");
    return 0;
}

static bool float_dtype(hb_dtype t) { return t == HB_F32 || t == HB_BF16 || t == HB_F16; }

/* A parameter vector of n elements ([n], [1, n], [n, 1, ...]) of a float dtype; NULL allowed when optional. */
static int vec(const char *fn, const char *what, const hb_tensor *t, int64_t n, bool optional) {
    if (!t) return optional ? 0 : hb_error("%s: %s is missing", fn, what);
    if (!float_dtype(t->dtype) && t->dtype != HB_F64)
        return hb_error("%s: %s has dtype %s (F32, BF16, F16 or F64 expected)", fn, what, hb_dtype_name(t->dtype));
    if (hb_tensor_numel(t) != n)
        return hb_error("%s: %s has %lld elements, expected %lld", fn, what, (long long)hb_tensor_numel(t), (long long)n);
    return 0;
}

static int modgroups(const char *fn, hb_modgroups g) {
    return negative(fn, "rows_per_group", g.rows_per_group) || negative(fn, "group_stride", g.group_stride);
}

static int linear_weight(const hb_tensor *w, const hb_tensor *b) {
    if (!w || w->ndim != 2) return hb_error("hb_linear: weight must be a 2-D tensor");
    if (!float_dtype(w->dtype) && !hb_dtype_is_quant(w->dtype))
        return hb_error("hb_linear: weight dtype %s not supported (F32, BF16, F16, GGUF block formats)",
                        hb_dtype_name(w->dtype));
    if (w->stride[1] != 1) return hb_error("hb_linear: weight rows must be contiguous (stride 1 along K)");
    const int64_t be = hb_dtype_block_elems(w->dtype);
    if (be > 1 && (w->shape[1] % be || w->stride[0] % be))
        return hb_error("hb_linear: %s weight rows of %lld elements are not whole blocks of %lld", hb_dtype_name(w->dtype),
                        (long long)w->shape[1], (long long)be);
    const int64_t N = w->shape[0];
    if (b && (b->ndim != 1 || b->shape[0] != N || !float_dtype(b->dtype)))
        return hb_error("hb_linear: bias must be a 1-D float tensor of %lld elements", (long long)N);
    return 0;
}

static int linear_args(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b) {
    static const char fn[] = "hb_linear";
    if (linear_weight(w, b) || negative(fn, "M", M)) return -1;
    const int64_t N = w->shape[0], K = w->shape[1];
    return missing(fn, "y", y, M > 0 && N > 0) || missing(fn, "x", x, M > 0 && K > 0) ||
           overlap(fn, "y", y, M * N, "x", x, M * K, sizeof(float), false);
}

static int linear_ep_args(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, hb_epilogue ep) {
    static const char fn[] = "hb_linear_ep";
    if (linear_args(y, x, M, w, b)) return -1;
    if (ep.op < HB_EPI_NONE || ep.op > HB_EPI_GATED_ADD) return hb_error("%s: unknown epilogue %d", fn, (int)ep.op);
    if (ep.op != HB_EPI_GATED_ADD) return 0;
    return modgroups(fn, ep.g) || negative(fn, "row0", ep.row0) || missing(fn, "gate", ep.gate, M > 0 && w->shape[0] > 0);
}

static int gemm_args(const float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                     int64_t N, int64_t K) {
    static const char fn[] = "hb_gemm_f32";
    if (negative(fn, "M", M) || negative(fn, "N", N) || negative(fn, "K", K)) return -1;
    const bool run = M > 0 && N > 0;
    if (missing(fn, "C", C, run) || missing(fn, "A", A, run && K > 0) || missing(fn, "B", B, run && K > 0)) return -1;
    if (run && (ldc < N || (K > 0 && (lda < K || ldb < N))))
        return hb_error("%s: a row stride is shorter than its row (ldc %lld, lda %lld, ldb %lld for M %lld, N %lld, "
                        "K %lld)", fn, (long long)ldc, (long long)lda, (long long)ldb, (long long)M, (long long)N,
                        (long long)K);
    if (run && K > 0 && (C == A || C == B)) return hb_error("%s: C is also an input", fn);
    return 0;
}

static bool ew_binary(hb_ew_op op) {
    return op == HB_EW_ADD || op == HB_EW_MUL || op == HB_EW_AXPBY || op == HB_EW_ADD_RELU || op == HB_EW_AXPBY_F64;
}

static int elementwise_args(hb_ew_op op, const float *y, const float *a, const float *b, int64_t n) {
    static const char fn[] = "hb_elementwise";
    if ((unsigned)op > (unsigned)HB_EW_AXPBY_F64) return hb_error("%s: unknown op %d", fn, (int)op);
    return negative(fn, "n", n) || missing(fn, "y", y, n > 0) || missing(fn, "a", a, n > 0) ||
           missing(fn, "b", b, n > 0 && ew_binary(op)) || overlap(fn, "y", y, n, "a", a, n, sizeof(float), true) ||
           (ew_binary(op) && overlap(fn, "y", y, n, "b", b, n, sizeof(float), true));
}

/* Token rows of `heads` heads of head_dim channels, `stride` apart (RoPE). */
static int heads_args(const char *fn, const float *x, int64_t rows, int64_t stride, int heads, int head_dim) {
    if (negative(fn, "rows", rows)) return -1;
    if (rows == 0) return 0;
    return missing(fn, "x", x, true) || below(fn, "heads", heads, 1) || below(fn, "head_dim", head_dim, 2) ||
           below(fn, "stride", stride, (int64_t)heads * head_dim);
}

static int attention_args(const hb_attention_args *a) {
    static const char fn[] = "hb_attention";
    if (!a) return hb_error("%s: no arguments", fn);
    if (negative(fn, "lq", a->lq) || negative(fn, "lk", a->lk)) return -1;
    if (a->lq == 0) return 0;
    if (below(fn, "heads", a->heads, 1) || below(fn, "head_dim", a->head_dim, 1)) return -1;
    const int64_t hd = (int64_t)a->heads * a->head_dim;
    if (missing(fn, "out", a->out, true) || below(fn, "o_stride", a->o_stride, hd)) return -1;
    if (a->lk == 0) return 0;
    if (missing(fn, "q", a->q, true) || missing(fn, "k", a->k, true) || missing(fn, "v", a->v, true) ||
        below(fn, "q_stride", a->q_stride, hd) || below(fn, "k_stride", a->k_stride, hd) ||
        below(fn, "v_stride", a->v_stride, hd))
        return -1;
    if (a->out == a->k || a->out == a->v) return hb_error("%s: out is also the keys or the values", fn);
    return 0;
}

static int conv3d_args(const float *y, const float *x, int64_t Cin, int64_t T, int64_t H, int64_t W,
                       const hb_tensor *w, const hb_tensor *b, const hb_conv3d_params *p) {
    static const char fn[] = "hb_conv3d";
    if (!p) return hb_error("%s: no parameters", fn);
    if (!w || w->ndim != 5) return hb_error("%s: weight must be 5-D [Cout, Cin/groups, kt, kh, kw]", fn);
    if (!float_dtype(w->dtype)) return hb_error("%s: weight dtype %s not supported", fn, hb_dtype_name(w->dtype));
    const int groups = p->groups > 0 ? p->groups : 1;
    const int64_t Cout = w->shape[0];
    if (Cin <= 0 || Cin % groups || Cout % groups || w->shape[1] != Cin / groups)
        return hb_error("%s: weight %lld x %lld does not fit %lld input channels in %d groups", fn, (long long)Cout,
                        (long long)w->shape[1], (long long)Cin, groups);
    if (p->stride[0] < 1 || p->stride[1] < 1 || p->stride[2] < 1) return hb_error("%s: stride must be >= 1", fn);
    if (p->precision != HB_CONV_FAST && p->precision != HB_CONV_F32)
        return hb_error("%s: unknown precision %d", fn, (int)p->precision);
    if (p->pad_t[0] < 0 || p->pad_t[1] < 0 || p->pad_h[0] < 0 || p->pad_h[1] < 0 || p->pad_w[0] < 0 || p->pad_w[1] < 0)
        return hb_error("%s: negative padding", fn);
    if (b && hb_tensor_numel(b) != Cout)
        return hb_error("%s: bias has %lld elements, expected %lld", fn, (long long)hb_tensor_numel(b), (long long)Cout);
    int64_t To, Ho, Wo;
    hb_conv3d_out_size(T, H, W, w, p, &To, &Ho, &Wo);
    if (T <= 0 || H <= 0 || W <= 0 || To <= 0 || Ho <= 0 || Wo <= 0)
        return hb_error("%s: input %lldx%lldx%lld is smaller than the kernel", fn, (long long)T, (long long)H,
                        (long long)W);
    return missing(fn, "y", y, true) || missing(fn, "x", x, true) ||
           overlap(fn, "y", y, Cout * To * Ho * Wo, "x", x, Cin * T * H * W, sizeof(float), false);
}

/* A [C, T, H, W] volume (all sizes >= 0). */
static int volume(const char *fn, int64_t C, int64_t T, int64_t H, int64_t W) {
    return negative(fn, "C", C) || negative(fn, "T", T) || negative(fn, "H", H) || negative(fn, "W", W);
}

static int resample_args(const char *fn, const float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W,
                         int64_t out_factor) {
    const int64_t n = C * T * H * W;
    return missing(fn, "y", y, n > 0) || missing(fn, "x", x, n > 0) ||
           overlap(fn, "y", y, n * out_factor, "x", x, n, sizeof(float), false);
}

static int copy_nd_args(const float *dst, const int64_t *ds, const float *src, const int64_t *ss, int ndim,
                        const int64_t *shape) {
    static const char fn[] = "hb_copy_nd";
    if (ndim < 1 || ndim > HB_MAX_DIMS) return hb_error("%s: ndim %d is outside 1..%d", fn, ndim, HB_MAX_DIMS);
    if (missing(fn, "shape", shape, true) || missing(fn, "dst_stride", ds, true) || missing(fn, "src_stride", ss, true))
        return -1;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (negative(fn, "a shape entry", shape[d])) return -1;
        n *= shape[d];
    }
    return missing(fn, "dst", dst, n > 0) || missing(fn, "src", src, n > 0);
}

static int embed_args(const float *y, const hb_tensor *table, const int32_t *ids, int64_t n) {
    static const char fn[] = "hb_embed_rows";
    if (!table || table->ndim != 2) return hb_error("%s: the table must be 2-D [vocab, dim]", fn);
    if (!float_dtype(table->dtype) && !hb_dtype_is_quant(table->dtype))
        return hb_error("%s: table dtype %s not supported", fn, hb_dtype_name(table->dtype));
    if (negative(fn, "n", n) || missing(fn, "ids", ids, n > 0) || missing(fn, "y", y, n > 0 && table->shape[1] > 0))
        return -1;
    const int64_t V = table->shape[0];
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return hb_error("%s: token id %d is outside the vocabulary of %lld", fn, (int)ids[i], (long long)V);
    return 0;
}

static int convert_args(const void *dst, hb_dtype dt, const void *src, hb_dtype st, int64_t n) {
    static const char fn[] = "hb_convert";
    if (!float_dtype(dt) || !float_dtype(st))
        return hb_error("%s: %s -> %s is not a float conversion", fn, hb_dtype_name(st), hb_dtype_name(dt));
    if (negative(fn, "n", n) || missing(fn, "dst", dst, n > 0) || missing(fn, "src", src, n > 0)) return -1;
    const uintptr_t d0 = (uintptr_t)dst, d1 = d0 + (uintptr_t)n * hb_dtype_size(dt);
    const uintptr_t s0 = (uintptr_t)src, s1 = s0 + (uintptr_t)n * hb_dtype_size(st);
    return n > 0 && d0 < s1 && s0 < d1 ? hb_error("%s: dst and src overlap (they must be disjoint)", fn) : 0;
}

/* CHECK_<op>: the argument rules of each op of ops_list.h, an expression over the op's parameters (nonzero after
 * hb_error when they are broken). `fn` is the op's public name. */
#define CHECK_linear linear_args(y, x, M, w, b)
#define CHECK_linear_ep linear_ep_args(y, x, M, w, b, ep)
#define CHECK_gemm_f32 gemm_args(C, ldc, A, lda, B, ldb, M, N, K)
#define CHECK_layernorm                                                                                              \
    (negative(fn, "rows", rows) || negative(fn, "dim", dim) || vec(fn, "w", w, dim, true) ||                         \
     vec(fn, "b", b, dim, true) || missing(fn, "y", y, rows * dim > 0) || missing(fn, "x", x, rows * dim > 0) ||     \
     overlap(fn, "y", y, rows * dim, "x", x, rows * dim, sizeof(float), true))
#define CHECK_rmsnorm                                                                                                \
    (negative(fn, "rows", rows) || negative(fn, "dim", dim) || vec(fn, "w", w, dim, true) ||                         \
     missing(fn, "y", y, rows * dim > 0) || missing(fn, "x", x, rows * dim > 0) ||                                   \
     overlap(fn, "y", y, rows * dim, "x", x, rows * dim, sizeof(float), true))
#define CHECK_channel_rmsnorm                                                                                        \
    (negative(fn, "C", C) || negative(fn, "S", S) || vec(fn, "gamma", gamma, C, true) ||                             \
     vec(fn, "beta", beta, C, true) || missing(fn, "y", y, C * S > 0) || missing(fn, "x", x, C * S > 0) ||           \
     overlap(fn, "y", y, C * S, "x", x, C * S, sizeof(float), true))
#define CHECK_layernorm_modulate                                                                                     \
    (negative(fn, "rows", rows) || negative(fn, "dim", dim) || modgroups(fn, g) ||                                  \
     missing(fn, "y", y, rows * dim > 0) || missing(fn, "x", x, rows * dim > 0) ||                                   \
     missing(fn, "shift", shift, rows * dim > 0) || missing(fn, "scale", scale, rows * dim > 0) ||                   \
     overlap(fn, "y", y, rows * dim, "x", x, rows * dim, sizeof(float), true))
#define CHECK_gated_add                                                                                              \
    (negative(fn, "rows", rows) || negative(fn, "dim", dim) || modgroups(fn, g) ||                                  \
     missing(fn, "x", x, rows * dim > 0) || missing(fn, "y", y, rows * dim > 0) ||                                   \
     missing(fn, "gate", gate, rows * dim > 0) || overlap(fn, "x", x, rows * dim, "y", y, rows * dim, sizeof(float), true))
#define CHECK_elementwise elementwise_args(op, y, a, b, n)
#define CHECK_softmax (negative(fn, "rows", rows) || negative(fn, "n", n) || missing(fn, "x", x, rows * n > 0))
#define CHECK_rope3d                                                                                                 \
    (heads_args(fn, x, L, stride, heads, head_dim) || (L > 0 && (below(fn, "H", H, 1) || below(fn, "W", W, 1))))
#define CHECK_rope_shift                                                                                             \
    (heads_args(fn, x, rows, stride, heads, head_dim) || negative(fn, "np", np) ||                                   \
     (rows > 0 && np > head_dim / 2 && hb_error("%s: np %d pairs exceed head_dim %d", fn, np, head_dim)))
#define CHECK_attention attention_args(a)
#define CHECK_conv3d conv3d_args(y, x, Cin, T, H, W, w, b, p)
#define CHECK_upsample_nearest                                                                                       \
    (volume(fn, C, T, H, W) || below(fn, "ft", ft, 1) || below(fn, "fh", fh, 1) || below(fn, "fw", fw, 1) ||         \
     resample_args(fn, y, x, C, T, H, W, (int64_t)ft * fh * fw))
#define CHECK_pixel_shuffle_any                                                                                      \
    (volume(fn, C, T, H, W) || below(fn, "p", p, 1) ||                                                               \
     ((o != HB_PS_CQR && o != HB_PS_CRQ) && hb_error("%s: unknown channel order %d", fn, (int)o)) ||                 \
     resample_args(fn, y, x, C, T, H, W, (int64_t)p * p))
#define CHECK_copy_nd copy_nd_args(dst, dst_stride, src, src_stride, ndim, shape)
#define CHECK_fill (negative(fn, "n", n) || missing(fn, "dst", dst, n > 0))
#define CHECK_add_vec                                                                                                \
    (negative(fn, "rows", rows) || negative(fn, "n", n) || vec(fn, "v", v, n, false) ||                             \
     missing(fn, "y", y, rows * n > 0) || missing(fn, "x", x, rows * n > 0) ||                                       \
     (rows > 1 && below(fn, "ldy", ldy, n)))
#define CHECK_embed_rows embed_args(y, table, ids, n)
#define CHECK_channel_affine                                                                                         \
    (negative(fn, "C", C) || negative(fn, "S", S) || vec(fn, "scale", scale, C, true) ||                             \
     vec(fn, "shift", shift, C, true) || missing(fn, "y", y, C * S > 0) || missing(fn, "x", x, C * S > 0) ||         \
     overlap(fn, "y", y, C * S, "x", x, C * S, sizeof(float), true))
#define CHECK_convert convert_args(dst, dt, src, st, n)
#define CHECK_channel_rms_backward                                                                                   \
    (negative(fn, "C", C) || negative(fn, "S", S) || missing(fn, "dx", dx, C * S > 0) ||                             \
     missing(fn, "dy", dy, C * S > 0) || missing(fn, "x", x, C * S > 0) ||                                           \
     overlap(fn, "dx", dx, C * S, "dy", dy, C * S, sizeof(float), false) ||                                         \
     overlap(fn, "dx", dx, C * S, "x", x, C * S, sizeof(float), false))
#define CHECK_channel_layernorm_backward                                                                             \
    (negative(fn, "C", C) || negative(fn, "S", S) || vec(fn, "w", w, C, false) || missing(fn, "dy", dy, C * S > 0) || \
     missing(fn, "x", x, C * S > 0) || (dx && (overlap(fn, "dx", dx, C * S, "dy", dy, C * S, sizeof(float), false) || \
                                               overlap(fn, "dx", dx, C * S, "x", x, C * S, sizeof(float), false))))
#define CHECK_act_backward                                                                                           \
    (((act != HB_EW_SILU && act != HB_EW_RELU) && hb_error("%s: act %d is not SILU or RELU", fn, (int)act)) ||      \
     negative(fn, "n", n) || missing(fn, "dx", dx, n > 0) || missing(fn, "dy", dy, n > 0) ||                         \
     missing(fn, "x", x, n > 0) || overlap(fn, "dx", dx, n, "x", x, n, sizeof(float), false))
#define CHECK_channel_sum                                                                                            \
    (negative(fn, "C", C) || negative(fn, "S", S) || missing(fn, "y", y, C > 0) || missing(fn, "x", x, C * S > 0))
#define CHECK_depthwise_weight_grad                                                                                  \
    (volume(fn, C, To, Ho, Wo) || below(fn, "kt", kt, 1) || below(fn, "kh", kh, 1) || below(fn, "kw", kw, 1) ||     \
     missing(fn, "dw", dw, C > 0) || missing(fn, "dy", dy, C * To * Ho * Wo > 0) ||                                 \
     missing(fn, "xp", xp, C * To * Ho * Wo > 0))
#define CHECK_adamw_step                                                                                             \
    (missing(fn, "o", o, true) || negative(fn, "n", n) || below(fn, "step", step, 1) || missing(fn, "w", w, n > 0) || \
     missing(fn, "g", g, n > 0) || missing(fn, "m", m, n > 0) || missing(fn, "v", v, n > 0))

#define CHECK_maxpool2d                                                                                              \
    (below(fn, "k", k, 1) || below(fn, "s", s, 1) || below(fn, "H", H, k) || below(fn, "W", W, k) ||                 \
     negative(fn, "C", C) || missing(fn, "y", y, C > 0) || missing(fn, "x", x, C > 0) ||                             \
     overlap(fn, "y", y, C * ((H - k) / s + 1) * ((W - k) / s + 1), "x", x, C * H * W, sizeof(float), false))
#define CHECK_maxpool2d_backward                                                                                     \
    (below(fn, "k", k, 1) || below(fn, "s", s, 1) || below(fn, "H", H, k) || below(fn, "W", W, k) ||                 \
     negative(fn, "C", C) || missing(fn, "dx", dx, C > 0) || missing(fn, "dy", dy, C > 0) ||                         \
     missing(fn, "x", x, C > 0) || overlap(fn, "dx", dx, C * H * W, "x", x, C * H * W, sizeof(float), false) ||     \
     overlap(fn, "dx", dx, C * H * W, "dy", dy, C * ((H - k) / s + 1) * ((W - k) / s + 1), sizeof(float), false))
#define CHECK_lpips_distance                                                                                         \
    (negative(fn, "C", C) || negative(fn, "S", S) || vec(fn, "w", w, C, false) || missing(fn, "d", d, S > 0) ||     \
     missing(fn, "xa", xa, C * S > 0) || missing(fn, "xb", xb, C * S > 0) ||                                         \
     overlap(fn, "d", d, S, "xa", xa, C * S, sizeof(float), false) ||                                                \
     overlap(fn, "d", d, S, "xb", xb, C * S, sizeof(float), false) ||                                                \
     (dxa && (overlap(fn, "dxa", dxa, C * S, "xa", xa, C * S, sizeof(float), false) ||                               \
              overlap(fn, "dxa", dxa, C * S, "xb", xb, C * S, sizeof(float), false) ||                               \
              overlap(fn, "dxa", dxa, C * S, "d", d, S, sizeof(float), false))))

/* ---------- the dispatchers ---------- */

/* A void op whose check failed ran nothing; the thread's next hb_backend_sync reports the first such failure. */
static _Thread_local char g_check_err[HB_ERRMSG_MAX];
static _Thread_local bool g_check_failed;

static void defer_check_failure(void) {
    if (g_check_failed) return;
    snprintf(g_check_err, sizeof g_check_err, "%s", hb_last_error());
    g_check_failed = true;
}

int hb_backend_sync(void) {
    const int rc = be()->sync();
    if (!g_check_failed) return rc;
    g_check_failed = false;
    return hb_error("%s", g_check_err);
}

#define OP_FAILED_int return -1;
#define OP_FAILED_void { defer_check_failure(); return; }
#define OP_RUN_int(call) return call;
#define OP_RUN_void(call) call;
/* hb_<name>: check the arguments, then run this thread's backend's kernel. */
#define HB_OP(ret, name, params, args)                                                                               \
    ret hb_##name params {                                                                                           \
        static const char fn[] = "hb_" #name;                                                                        \
        (void)fn;                                                                                                    \
        if (CHECK_##name) OP_FAILED_##ret                                                                            \
        OP_RUN_##ret(be()->name args)                                                                                \
    }
#include "ops/ops_list.h"
#undef HB_OP

/* ---------- ops composed of the backend ops ---------- */

void hb_silu(float *y, const float *x, int64_t n) { hb_elementwise(HB_EW_SILU, y, x, NULL, 0, 0, n); }
void hb_gelu_tanh(float *y, const float *x, int64_t n) { hb_elementwise(HB_EW_GELU_TANH, y, x, NULL, 0, 0, n); }
void hb_add(float *y, const float *a, const float *b, int64_t n) { hb_elementwise(HB_EW_ADD, y, a, b, 0, 0, n); }
void hb_mul(float *y, const float *a, const float *b, int64_t n) { hb_elementwise(HB_EW_MUL, y, a, b, 0, 0, n); }
void hb_scale_add(float *y, const float *a, float alpha, const float *b, float beta, int64_t n) {
    hb_elementwise(HB_EW_AXPBY, y, a, b, alpha, beta, n);
}
void hb_pixel_unshuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o) {
    hb_pixel_shuffle_any(y, x, C, T, H, W, p, o, true);
}
void hb_pixel_shuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o) {
    hb_pixel_shuffle_any(y, x, C, T, H, W, p, o, false);
}
void hb_copy(float *dst, const float *src, int64_t n) {
    const int64_t one = 1;
    if (n <= 0) return;
    if (overlap("hb_copy", "dst", dst, n, "src", src, n, sizeof(float), false)) {
        defer_check_failure();
        return;
    }
    hb_copy_nd(dst, &one, src, &one, 1, &n);
}
void hb_copy_rows(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols) {
    const int64_t shape[2] = {rows, cols}, ds[2] = {ldd, 1}, ss[2] = {lds, 1};
    if (rows > 0 && cols > 0) hb_copy_nd(dst, ds, src, ss, 2, shape);
}

int hb_conv2d(float *y, const float *x, int64_t Cin, int64_t H, int64_t W, const hb_tensor *w, const hb_tensor *b,
              int stride, int pad, int groups) {
    if (!w || w->ndim != 4) return hb_error("hb_conv2d: weight must be 4-D [Cout, Cin/groups, kh, kw]");
    hb_tensor w5 = *w;
    w5.ndim = 5;
    w5.shape[0] = w->shape[0]; w5.shape[1] = w->shape[1]; w5.shape[2] = 1; w5.shape[3] = w->shape[2]; w5.shape[4] = w->shape[3];
    w5.stride[0] = w->stride[0]; w5.stride[1] = w->stride[1]; w5.stride[2] = w->shape[2] * w->stride[2];
    w5.stride[3] = w->stride[2]; w5.stride[4] = w->stride[3];
    hb_conv3d_params p = {{1, stride, stride}, {0, 0}, {pad, pad}, {pad, pad}, groups, HB_CONV_FAST};
    return hb_conv3d(y, x, Cin, 1, H, W, &w5, b, &p);
}

