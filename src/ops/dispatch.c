/* The op entry points: each forwards to this thread's backend (ops.h), plus the ops written in terms of
 * others (conv2d, copies) and the choice of backend by name. */
#include "ops/ops_internal.h"
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

int hb_backend_sync(void) { return be()->sync(); }

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

/* Argument checks shared by every backend: the kernels may assume them. */
static int linear_check(const hb_tensor *w, const hb_tensor *b) {
    if (!w || w->ndim != 2) return hb_error("hb_linear: weight must be a 2-D tensor");
    if (w->dtype != HB_F32 && w->dtype != HB_BF16 && w->dtype != HB_F16 && !hb_dtype_is_quant(w->dtype))
        return hb_error("hb_linear: weight dtype %s not supported (F32, BF16, F16, GGUF block formats)",
                        hb_dtype_name(w->dtype));
    if (w->stride[1] != 1) return hb_error("hb_linear: weight rows must be contiguous (stride 1 along K)");
    const int64_t be = hb_dtype_block_elems(w->dtype);
    if (be > 1 && (w->shape[1] % be || w->stride[0] % be))
        return hb_error("hb_linear: %s weight rows of %lld elements are not whole blocks of %lld", hb_dtype_name(w->dtype),
                        (long long)w->shape[1], (long long)be);
    const int64_t N = w->shape[0];
    if (b && (b->ndim != 1 || b->shape[0] != N || (b->dtype != HB_F32 && b->dtype != HB_BF16 && b->dtype != HB_F16)))
        return hb_error("hb_linear: bias must be a 1-D float tensor of %lld elements", (long long)N);
    return 0;
}

static int conv3d_check(int64_t Cin, int64_t T, int64_t H, int64_t W, const hb_tensor *w, const hb_tensor *b,
                        const hb_conv3d_params *p) {
    if (!w || w->ndim != 5) return hb_error("hb_conv3d: weight must be 5-D [Cout, Cin/groups, kt, kh, kw]");
    if (w->dtype != HB_F32 && w->dtype != HB_BF16 && w->dtype != HB_F16)
        return hb_error("hb_conv3d: weight dtype %s not supported", hb_dtype_name(w->dtype));
    const int groups = p->groups > 0 ? p->groups : 1;
    const int64_t Cout = w->shape[0];
    if (Cin <= 0 || Cin % groups || Cout % groups || w->shape[1] != Cin / groups)
        return hb_error("hb_conv3d: weight %lld x %lld does not fit %lld input channels in %d groups",
                        (long long)Cout, (long long)w->shape[1], (long long)Cin, groups);
    if (p->stride[0] < 1 || p->stride[1] < 1 || p->stride[2] < 1) return hb_error("hb_conv3d: stride must be >= 1");
    if (p->pad_t[0] < 0 || p->pad_t[1] < 0 || p->pad_h[0] < 0 || p->pad_h[1] < 0 || p->pad_w[0] < 0 || p->pad_w[1] < 0)
        return hb_error("hb_conv3d: negative padding");
    if (b && hb_tensor_numel(b) != Cout)
        return hb_error("hb_conv3d: bias has %lld elements, expected %lld", (long long)hb_tensor_numel(b),
                        (long long)Cout);
    int64_t To, Ho, Wo;
    hb_conv3d_out_size(T, H, W, w, p, &To, &Ho, &Wo);
    if (To <= 0 || Ho <= 0 || Wo <= 0)
        return hb_error("hb_conv3d: input %lldx%lldx%lld is smaller than the kernel", (long long)T, (long long)H,
                        (long long)W);
    return 0;
}

int hb_linear(float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, bool accumulate) {
    if (linear_check(w, b)) return -1;
    return be()->linear(y, x, M, w, b, accumulate);
}
void hb_gemm_f32(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool accumulate) {
    be()->gemm_f32(C, ldc, A, lda, B, ldb, M, N, K, accumulate);
}
void hb_layernorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, const hb_tensor *b,
                  float eps) {
    be()->layernorm(y, x, rows, dim, w, b, eps);
}
void hb_rmsnorm(float *y, const float *x, int64_t rows, int64_t dim, const hb_tensor *w, float eps) {
    be()->rmsnorm(y, x, rows, dim, w, eps);
}
void hb_channel_rmsnorm(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *gamma, const hb_tensor *beta) {
    be()->channel_rmsnorm(y, x, C, S, gamma, beta);
}
void hb_layernorm_modulate(float *y, const float *x, int64_t rows, int64_t dim, float eps, const float *shift,
                           const float *scale, hb_modgroups g) {
    be()->layernorm_modulate(y, x, rows, dim, eps, shift, scale, g);
}
void hb_gated_add(float *x, const float *y, int64_t rows, int64_t dim, const float *gate, hb_modgroups g) {
    be()->gated_add(x, y, rows, dim, gate, g);
}
void hb_silu(float *y, const float *x, int64_t n) { be()->elementwise(HB_EW_SILU, y, x, NULL, 0, 0, n); }
void hb_gelu_tanh(float *y, const float *x, int64_t n) { be()->elementwise(HB_EW_GELU_TANH, y, x, NULL, 0, 0, n); }
void hb_add(float *y, const float *a, const float *b, int64_t n) { be()->elementwise(HB_EW_ADD, y, a, b, 0, 0, n); }
void hb_mul(float *y, const float *a, const float *b, int64_t n) { be()->elementwise(HB_EW_MUL, y, a, b, 0, 0, n); }
void hb_scale_add(float *y, const float *a, float alpha, const float *b, float beta, int64_t n) {
    be()->elementwise(HB_EW_AXPBY, y, a, b, alpha, beta, n);
}
void hb_softmax(float *x, int64_t rows, int64_t n) { be()->softmax(x, rows, n); }
void hb_rope3d(float *x, int64_t L, int heads, int head_dim, int64_t stride, int H, int W, int f0) {
    be()->rope3d(x, L, heads, head_dim, stride, H, W, f0);
}
void hb_attention(const hb_attention_args *a) { be()->attention(a); }
int hb_conv3d(float *y, const float *x, int64_t Cin, int64_t T, int64_t H, int64_t W, const hb_tensor *w,
              const hb_tensor *b, const hb_conv3d_params *p) {
    if (conv3d_check(Cin, T, H, W, w, b, p)) return -1;
    return be()->conv3d(y, x, Cin, T, H, W, w, b, p);
}
void hb_upsample_nearest(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int ft, int fh, int fw) {
    be()->upsample_nearest(y, x, C, T, H, W, ft, fh, fw);
}
void hb_pixel_unshuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o) {
    be()->pixel_shuffle(y, x, C, T, H, W, p, o, true);
}
void hb_pixel_shuffle(float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o) {
    be()->pixel_shuffle(y, x, C, T, H, W, p, o, false);
}
void hb_copy_nd(float *dst, const int64_t *dst_stride, const float *src, const int64_t *src_stride, int ndim,
                const int64_t *shape) {
    be()->copy_nd(dst, dst_stride, src, src_stride, ndim, shape);
}
void hb_copy(float *dst, const float *src, int64_t n) {
    const int64_t one = 1;
    if (n > 0) be()->copy_nd(dst, &one, src, &one, 1, &n);
}
void hb_copy_rows(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t rows, int64_t cols) {
    const int64_t shape[2] = {rows, cols}, ds[2] = {ldd, 1}, ss[2] = {lds, 1};
    if (rows > 0 && cols > 0) be()->copy_nd(dst, ds, src, ss, 2, shape);
}
void hb_fill(float *dst, float value, int64_t n) { be()->fill(dst, value, n); }
void hb_add_vec(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t rows, int64_t n, const hb_tensor *v) {
    be()->add_vec(y, ldy, x, ldx, rows, n, v);
}
void hb_elementwise(hb_ew_op op, float *y, const float *a, const float *b, float alpha, float beta, int64_t n) {
    be()->elementwise(op, y, a, b, alpha, beta, n);
}
void hb_channel_affine(float *y, const float *x, int64_t C, int64_t S, const hb_tensor *scale, const hb_tensor *shift) {
    be()->channel_affine(y, x, C, S, scale, shift);
}
int hb_convert(void *dst, hb_dtype dt, const void *src, hb_dtype st, int64_t n) {
    return be()->convert(dst, dt, src, st, n);
}
void hb_rope_shift(float *x, int64_t rows, int64_t stride, int heads, int head_dim, int np, double delta) {
    be()->rope_shift(x, rows, stride, heads, head_dim, np, delta);
}
int hb_embed_rows(float *y, const hb_tensor *table, const int32_t *ids, int64_t n) {
    return be()->embed_rows(y, table, ids, n);
}

int hb_conv2d(float *y, const float *x, int64_t Cin, int64_t H, int64_t W, const hb_tensor *w, const hb_tensor *b,
              int stride, int pad, int groups) {
    if (!w || w->ndim != 4) return hb_error("hb_conv2d: weight must be 4-D [Cout, Cin/groups, kh, kw]");
    hb_tensor w5 = *w;
    w5.ndim = 5;
    w5.shape[0] = w->shape[0]; w5.shape[1] = w->shape[1]; w5.shape[2] = 1; w5.shape[3] = w->shape[2]; w5.shape[4] = w->shape[3];
    w5.stride[0] = w->stride[0]; w5.stride[1] = w->stride[1]; w5.stride[2] = w->shape[2] * w->stride[2];
    w5.stride[3] = w->stride[2]; w5.stride[4] = w->stride[3];
    hb_conv3d_params p = {{1, stride, stride}, {0, 0}, {pad, pad}, {pad, pad}, groups};
    return hb_conv3d(y, x, Cin, 1, H, W, &w5, b, &p);
}

