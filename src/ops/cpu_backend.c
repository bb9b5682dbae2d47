/* The CPU backend table and the run-time choice of code paths. */
#include "ops/ops_internal.h"

bool hb__have_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached != 0;
#else
    return false;
#endif
}

const char *hb_cpu_kernel_name(void) { return hb__gemm_path(); }

static int cpu_sync(void) { return 0; }

static const hb_backend g_cpu = {
    .name = "cpu", .mem = NULL, .sync = cpu_sync,
    .linear = hb_cpu_linear, .gemm_f32 = hb_cpu_gemm_f32, .layernorm = hb_cpu_layernorm, .rmsnorm = hb_cpu_rmsnorm,
    .channel_rmsnorm = hb_cpu_channel_rmsnorm, .layernorm_modulate = hb_cpu_layernorm_modulate,
    .gated_add = hb_cpu_gated_add, .elementwise = hb_cpu_elementwise, .softmax = hb_cpu_softmax,
    .rope3d = hb_cpu_rope3d, .attention = hb_cpu_attention, .conv3d = hb_cpu_conv3d,
    .upsample_nearest = hb_cpu_upsample_nearest, .pixel_shuffle = hb_cpu_pixel_shuffle, .copy_nd = hb_cpu_copy_nd,
    .fill = hb_cpu_fill, .add_vec = hb_cpu_add_vec, .embed_rows = hb_cpu_embed_rows,
    .channel_affine = hb_cpu_channel_affine, .convert = hb_cpu_convert, .rope_shift = hb_cpu_rope_shift,
};

const hb_backend *hb_backend_cpu(void) { return &g_cpu; }
