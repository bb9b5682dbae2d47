/* ops: the dispatchers' argument checks (dispatch.c, CHECK_<name>). For every op of ops_list.h, calls that break
 * one rule must fail with one error naming the op, run nothing (the output, fresh random data, is unchanged
 * bitwise) and, for ops returning nothing, make the next hb_backend_sync fail with that message; a valid call
 * right after must succeed. */
#include "test_ops_common.h"
#include <string.h>

enum { N = 64 };
static float g_y[4 * N], g_x[4 * N], g_a[4 * N], g_keep[4 * N];
static float g_w[N];
static hb_tensor g_vec; /* a float vector of N elements */

/* Checks that the call just made failed for `op` (rc is its return value, 0 for void ops) and left g_y as it
 * was. */
static void expect_rejected(const char *what, const char *op, int rc, bool returns_int) {
    int sync = hb_backend_sync();
    const char *msg = hb_last_error();
    if (returns_int) CHECKF(rc == -1 && sync == 0, "%s: rc %d, sync %d", what, rc, sync);
    else CHECKF(sync == -1, "%s: the next sync did not report the failed check", what);
    CHECKF(strstr(msg, op) != NULL, "%s: message '%s' does not name %s", what, msg, op);
    CHECKF(!memcmp(g_y, g_keep, sizeof g_y), "%s: the output was written", what);
    memcpy(g_y, g_keep, sizeof g_y);
    hb_clear_error();
}

static void expect_ok(const char *what, int rc) {
    int sync = hb_backend_sync();
    CHECKF(rc == 0 && sync == 0, "%s: a valid call failed: %s", what, hb_last_error());
    memcpy(g_y, g_keep, sizeof g_y);
}

static void matrix_ops(void) {
    hb_tensor w = hb_tensor_2d(HB_F32, 8, 8, g_w), w3 = w;
    w3.ndim = 1;
    expect_rejected("linear: 1-D weight", "hb_linear", hb_linear(g_y, g_x, 2, &w3, NULL, false), true);
    expect_rejected("linear: negative M", "hb_linear", hb_linear(g_y, g_x, -1, &w, NULL, false), true);
    expect_rejected("linear: y overlaps x", "hb_linear", hb_linear(g_x + 1, g_x, 2, &w, NULL, false), true);
    expect_rejected("linear: NULL x", "hb_linear", hb_linear(g_y, NULL, 2, &w, NULL, false), true);
    expect_ok("linear", hb_linear(g_y, g_x, 2, &w, NULL, false));
    hb_gemm_f32(g_y, 4, g_x, 8, g_a, 8, 2, 8, 8, false); /* ldc 4 < N 8 */
    expect_rejected("gemm_f32: short ldc", "hb_gemm_f32", 0, false);
    hb_gemm_f32(g_y, 8, g_x, 8, g_a, 8, 2, 8, -3, false);
    expect_rejected("gemm_f32: negative K", "hb_gemm_f32", 0, false);
    hb_gemm_f32(g_y, 8, g_x, 8, g_a, 8, 2, 8, 8, false);
    expect_ok("gemm_f32", 0);
}

static void norm_ops(void) {
    hb_tensor short_vec = hb_tensor_1d(HB_F32, N / 2, g_w), ivec = hb_tensor_1d(HB_I32, N, g_w);
    hb_layernorm(g_y, g_x, 2, N, &short_vec, NULL, 1e-6f);
    expect_rejected("layernorm: short w", "hb_layernorm", 0, false);
    hb_layernorm(g_y, g_y + 1, 2, N, NULL, NULL, 1e-6f);
    expect_rejected("layernorm: y overlaps x", "hb_layernorm", 0, false);
    hb_layernorm(g_y, g_x, 2, N, &g_vec, &g_vec, 1e-6f);
    expect_ok("layernorm", 0);
    hb_rmsnorm(g_y, g_x, 2, N, &ivec, 1e-6f);
    expect_rejected("rmsnorm: integer w", "hb_rmsnorm", 0, false);
    hb_rmsnorm(g_y, g_x, 2, N, &g_vec, 1e-6f);
    expect_ok("rmsnorm", 0);
    hb_channel_rmsnorm(g_y, g_x, N / 2, 4, &g_vec, NULL);
    expect_rejected("channel_rmsnorm: gamma of C*2", "hb_channel_rmsnorm", 0, false);
    hb_channel_rmsnorm(g_y, g_x, N, 4, &g_vec, NULL);
    expect_ok("channel_rmsnorm", 0);
    hb_layernorm_modulate(g_y, g_x, 2, N, 1e-6f, NULL, g_a, (hb_modgroups){0, 0});
    expect_rejected("layernorm_modulate: NULL shift", "hb_layernorm_modulate", 0, false);
    hb_layernorm_modulate(g_y, g_x, 2, N, 1e-6f, g_a, g_a, (hb_modgroups){-1, 0});
    expect_rejected("layernorm_modulate: negative group", "hb_layernorm_modulate", 0, false);
    hb_layernorm_modulate(g_y, g_x, 2, N, 1e-6f, g_a, g_a, (hb_modgroups){0, 0});
    expect_ok("layernorm_modulate", 0);
    hb_gated_add(g_y, g_x, 2, N, NULL, (hb_modgroups){0, 0});
    expect_rejected("gated_add: NULL gate", "hb_gated_add", 0, false);
    hb_gated_add(g_y, g_x, 2, N, g_a, (hb_modgroups){0, 0});
    expect_ok("gated_add", 0);
}

static void pointwise_ops(void) {
    hb_elementwise(HB_EW_ADD, g_y, g_x, NULL, 0, 0, N);
    expect_rejected("elementwise: ADD without b", "hb_elementwise", 0, false);
    hb_elementwise((hb_ew_op)99, g_y, g_x, g_a, 0, 0, N);
    expect_rejected("elementwise: unknown op", "hb_elementwise", 0, false);
    hb_add(g_y, g_y + 3, g_a, N);
    expect_rejected("add: y overlaps a", "hb_elementwise", 0, false);
    hb_add(g_y, g_y, g_a, N); /* in place is allowed */
    expect_ok("add in place", 0);
    hb_softmax(g_y, 2, -N);
    expect_rejected("softmax: negative n", "hb_softmax", 0, false);
    hb_softmax(g_y, 2, N);
    expect_ok("softmax", 0);
    hb_rope3d(g_y, 2, 2, 16, 16, 1, 2, 0); /* stride 16 < 2 heads * 16 */
    expect_rejected("rope3d: short stride", "hb_rope3d", 0, false);
    hb_rope3d(g_y, 2, 2, 16, 32, 1, 2, 0);
    expect_ok("rope3d", 0);
    hb_rope_shift(g_y, 2, 32, 2, 16, 9, 1.0);
    expect_rejected("rope_shift: np > head_dim / 2", "hb_rope_shift", 0, false);
    hb_rope_shift(g_y, 2, 32, 2, 16, 3, 1.0);
    expect_ok("rope_shift", 0);
}

static void attention_ops(void) {
    hb_attention_args a = {.out = g_y, .q = g_x, .k = g_a, .v = g_a, .lq = 4, .lk = 4, .heads = 2, .head_dim = 8,
                           .o_stride = 16, .q_stride = 16, .k_stride = 16, .v_stride = 16, .scale = 0.3f};
    hb_attention_args bad = a;
    bad.k_stride = 8;
    hb_attention(&bad);
    expect_rejected("attention: short k_stride", "hb_attention", 0, false);
    bad = a;
    bad.v = g_y;
    hb_attention(&bad);
    expect_rejected("attention: out is v", "hb_attention", 0, false);
    hb_attention(NULL);
    expect_rejected("attention: no arguments", "hb_attention", 0, false);
    hb_attention(&a);
    expect_ok("attention", 0);
}

static void conv_ops(void) {
    hb_tensor w = {.dtype = HB_F32, .ndim = 5, .shape = {2, 4, 1, 3, 3}, .stride = {36, 9, 9, 3, 1}, .data = g_a};
    hb_conv3d_params p = {{1, 1, 1}, {0, 0}, {1, 1}, {1, 1}, 1, HB_CONV_FAST};
    expect_rejected("conv3d: 3 input channels for a 4-channel weight", "hb_conv3d",
                    hb_conv3d(g_y, g_x, 3, 1, 4, 4, &w, NULL, &p), true);
    expect_rejected("conv3d: y overlaps x", "hb_conv3d", hb_conv3d(g_x + 8, g_x, 4, 1, 4, 4, &w, NULL, &p), true);
    expect_rejected("conv3d: no parameters", "hb_conv3d", hb_conv3d(g_y, g_x, 4, 1, 4, 4, &w, NULL, NULL), true);
    hb_conv3d_params bad_prec = p;
    bad_prec.precision = (hb_conv_precision)2;
    expect_rejected("conv3d: unknown precision", "hb_conv3d", hb_conv3d(g_y, g_x, 4, 1, 4, 4, &w, NULL, &bad_prec), true);
    expect_ok("conv3d", hb_conv3d(g_y, g_x, 4, 1, 4, 4, &w, NULL, &p));
    hb_upsample_nearest(g_y, g_x, 2, 1, 4, 4, 1, 0, 2);
    expect_rejected("upsample_nearest: factor 0", "hb_upsample_nearest", 0, false);
    hb_upsample_nearest(g_y, g_x, 2, 1, 4, 4, 1, 2, 2);
    expect_ok("upsample_nearest", 0);
    hb_pixel_shuffle(g_y, g_x, 2, 1, 4, 4, 2, (hb_ps_order)7);
    expect_rejected("pixel_shuffle: unknown order", "hb_pixel_shuffle_any", 0, false);
    hb_pixel_unshuffle(g_y, g_y, 2, 1, 4, 4, 2, HB_PS_CQR);
    expect_rejected("pixel_unshuffle: in place", "hb_pixel_shuffle_any", 0, false);
    hb_pixel_unshuffle(g_y, g_x, 2, 1, 4, 4, 2, HB_PS_CRQ);
    expect_ok("pixel_unshuffle", 0);
}

static void data_ops(void) {
    const int64_t shape[2] = {4, 8}, st[2] = {8, 1};
    hb_copy_nd(g_y, st, g_x, st, 7, shape);
    expect_rejected("copy_nd: ndim 7", "hb_copy_nd", 0, false);
    hb_copy_nd(g_y, st, NULL, st, 2, shape);
    expect_rejected("copy_nd: NULL src", "hb_copy_nd", 0, false);
    hb_copy_nd(g_y, st, g_x, st, 2, shape);
    expect_ok("copy_nd", 0);
    hb_copy(g_y + 1, g_y, N);
    expect_rejected("copy: overlapping", "hb_copy", 0, false);
    hb_fill(NULL, 1.0f, N);
    expect_rejected("fill: NULL dst", "hb_fill", 0, false);
    hb_fill(g_y, 1.0f, N);
    expect_ok("fill", 0);
    hb_add_vec(g_y, N, g_x, N, 2, N, NULL);
    expect_rejected("add_vec: no vector", "hb_add_vec", 0, false);
    hb_add_vec(g_y, N / 2, g_x, N, 2, N, &g_vec);
    expect_rejected("add_vec: ldy < n", "hb_add_vec", 0, false);
    hb_add_vec(g_y, N, g_x, N, 2, N, &g_vec);
    expect_ok("add_vec", 0);
    hb_tensor table = hb_tensor_2d(HB_F32, 8, 8, g_w);
    const int32_t ids[3] = {1, 8, 2}, good[3] = {1, 7, 2};
    expect_rejected("embed_rows: id past the vocabulary", "hb_embed_rows", hb_embed_rows(g_y, &table, ids, 3), true);
    expect_ok("embed_rows", hb_embed_rows(g_y, &table, good, 3));
    hb_tensor bvec = hb_tensor_1d(HB_BF16, N, g_w);
    hb_channel_affine(g_y, g_x, N / 2, 4, &g_vec, NULL);
    expect_rejected("channel_affine: scale of 2C", "hb_channel_affine", 0, false);
    hb_channel_affine(g_y, g_x, N / 2, 2, &bvec, NULL); /* BF16 vector of N elements, C = N/2: still the wrong length */
    expect_rejected("channel_affine: bf16 scale of 2C", "hb_channel_affine", 0, false);
    hb_channel_affine(g_y, g_x, N, 2, &g_vec, &g_vec);
    expect_ok("channel_affine", 0);
    expect_rejected("convert: I32", "hb_convert", hb_convert(g_y, HB_I32, g_x, HB_F32, N), true);
    expect_rejected("convert: overlapping", "hb_convert", hb_convert(g_y, HB_BF16, g_y + 1, HB_F32, N), true);
    expect_ok("convert", hb_convert(g_y, HB_BF16, g_x, HB_F32, N));
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    tl_fill_normal(&r, g_y, 4 * N, 1.0f);
    tl_fill_normal(&r, g_x, 4 * N, 1.0f);
    tl_fill_normal(&r, g_a, 4 * N, 1.0f);
    tl_fill_normal(&r, g_w, N, 0.5f);
    memcpy(g_keep, g_y, sizeof g_y);
    g_vec = hb_tensor_1d(HB_F32, N, g_w);
    matrix_ops();
    norm_ops();
    pointwise_ops();
    attention_ops();
    conv_ops();
    data_ops();
    return tl_done();
}
