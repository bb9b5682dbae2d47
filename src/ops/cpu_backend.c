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

static const hb_backend g_cpu = {"cpu", hb_linear, hb_attention, hb_conv3d};

const hb_backend *hb_backend_cpu(void) { return &g_cpu; }
