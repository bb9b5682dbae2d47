/* The CPU backend table and the run-time choice of code paths. */
#include "ops/ops_internal.h"
#include <stdio.h>

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

static char g_fail_msg[256];
static int g_failed; /* 0: none; 1: being written; 2: g_fail_msg holds the first failure */

void hb__cpu_fail(const char *what) {
    int none = 0;
    if (!__atomic_compare_exchange_n(&g_failed, &none, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
    snprintf(g_fail_msg, sizeof g_fail_msg, "%s", what);
    __atomic_store_n(&g_failed, 2, __ATOMIC_RELEASE);
}

int hb__cpu_sync(void) {
    if (__atomic_load_n(&g_failed, __ATOMIC_ACQUIRE) != 2) return 0;
    hb_error("%s", g_fail_msg);
    __atomic_store_n(&g_failed, 0, __ATOMIC_RELEASE);
    return -1;
}

static int cpu_sync(void) { return hb__cpu_sync(); }

static const hb_backend g_cpu = {
    .name = "cpu", .mem = NULL, .sync = cpu_sync,
#define HB_OP(ret, name, params, args) .name = hb_cpu_##name,
#include "ops/ops_list.h"
#undef HB_OP
};

const hb_backend *hb_backend_cpu(void) { return &g_cpu; }
