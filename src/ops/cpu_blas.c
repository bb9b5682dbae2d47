/* ops/cpu_blas: OpenBLAS for the "openblas" GEMM path, loaded on first use with dlopen and never linked. A
 * linked OpenBLAS starts its thread pool in its constructor, before main; under a memory limit a pool worker
 * retries a failed 128 MiB buffer allocation forever and the process hangs at exit joining it. Loaded here only
 * when the path is chosen, after OPENBLAS_NUM_THREADS=1 (the engine has its own pool): no pool is started.
 * Under an address-space or data limit it is not loaded at all: every calling thread's 128 MiB buffer is
 * retried forever when its allocation fails, so the run would hang instead of failing. */
#include "ops/ops_internal.h"
#ifdef HB_HAVE_OPENBLAS
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>

static hb_blas_sgemm_fn g_sgemm;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static bool memory_limited(void) {
    struct rlimit as, data;
    return (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) ||
           (getrlimit(RLIMIT_DATA, &data) == 0 && data.rlim_cur != RLIM_INFINITY);
}

static void blas_load(void) {
    if (memory_limited()) {
        hb_log(HB_LOG_WARN, "OpenBLAS is not used under a memory limit (ulimit -v / -d): it retries a failed "
                            "allocation forever");
        return;
    }
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
    for (int i = 0; i < 2 && !g_sgemm; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) continue;
        g_sgemm = (hb_blas_sgemm_fn)dlsym(h, "cblas_sgemm");
        if (!g_sgemm) dlclose(h);
    }
    if (!g_sgemm) hb_log(HB_LOG_WARN, "OpenBLAS (libopenblas.so.0) could not be loaded: %s", dlerror());
}

hb_blas_sgemm_fn hb__blas_sgemm(void) {
    pthread_once(&g_once, blas_load);
    return g_sgemm;
}
#else
hb_blas_sgemm_fn hb__blas_sgemm(void) { return NULL; }
#endif
