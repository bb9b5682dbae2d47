/* "cpu-guard": the CPU kernels behind a memory space whose pages are inaccessible except while an op (or an
 * upload/download) runs. A model that reads or writes an activation on the host, instead of through the ops,
 * faults at that line: the CPU-side proof that it will run unchanged on a device backend. Tests only; slow
 * (two mprotect sweeps per op). */
#include "ops/ops_internal.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct { void *p; size_t n; } region;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static region *g_reg;
static int g_nreg, g_capreg, g_depth;
static size_t g_bytes, g_peak;

static void protect_all(int prot) {
    for (int i = 0; i < g_nreg; i++) mprotect(g_reg[i].p, g_reg[i].n, prot);
}

static void enter(void) {
    pthread_mutex_lock(&g_mu);
    if (g_depth++ == 0) protect_all(PROT_READ | PROT_WRITE);
    pthread_mutex_unlock(&g_mu);
}

static void leave(void) {
    pthread_mutex_lock(&g_mu);
    if (--g_depth == 0) protect_all(PROT_NONE);
    pthread_mutex_unlock(&g_mu);
}

static void *g_alloc(size_t bytes, const char *what) {
    size_t n = (bytes + 4095) & ~(size_t)4095;
    void *p = mmap(NULL, n ? n : 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { hb_error("%s: cannot reserve %zu bytes (cpu-guard)", what, bytes); return NULL; }
    pthread_mutex_lock(&g_mu);
    if (g_nreg == g_capreg) {
        int cap = g_capreg ? 2 * g_capreg : 64;
        region *r = realloc(g_reg, sizeof *r * (size_t)cap);
        if (!r) { pthread_mutex_unlock(&g_mu); munmap(p, n); hb_error("%s: out of memory (cpu-guard)", what); return NULL; }
        g_reg = r; g_capreg = cap;
    }
    g_reg[g_nreg++] = (region){p, n ? n : 4096};
    g_bytes += n ? n : 4096;
    if (g_bytes > g_peak) g_peak = g_bytes;
    if (g_depth > 0) mprotect(p, n ? n : 4096, PROT_READ | PROT_WRITE);
    pthread_mutex_unlock(&g_mu);
    return p;
}

static void g_free(void *p) {
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < g_nreg; i++)
        if (g_reg[i].p == p) {
            munmap(p, g_reg[i].n);
            g_bytes -= g_reg[i].n;
            g_reg[i] = g_reg[--g_nreg];
            break;
        }
    pthread_mutex_unlock(&g_mu);
}

static int g_upload(void *dst, const void *src, size_t n) { enter(); memcpy(dst, src, n); leave(); return 0; }
static int g_zero(void *p, size_t n) { enter(); memset(p, 0, n); leave(); return 0; }

static size_t g_peak_bytes(void) {
    pthread_mutex_lock(&g_mu);
    size_t p = g_peak;
    pthread_mutex_unlock(&g_mu);
    return p;
}

static const hb_memspace g_mem = {"cpu-guard", false, g_alloc, g_free, g_upload, g_upload, g_zero, NULL, g_peak_bytes};

/* One wrapper per op: open the pages, run the CPU kernel, close them. */
#define GUARD_void(name, params, args) \
    static void g_##name params { enter(); hb_cpu_##name args; leave(); }
#define GUARD_int(name, params, args) \
    static int g_##name params { enter(); int rc_ = hb_cpu_##name args; leave(); return rc_; }
#define HB_OP(ret, name, params, args) GUARD_##ret(name, params, args)
#include "ops/ops_list.h"
#undef HB_OP

static int g_sync(void) { return hb__cpu_sync(); }

static const hb_backend g_guard = {
    .name = "cpu-guard", .mem = &g_mem, .sync = g_sync,
#define HB_OP(ret, name, params, args) .name = g_##name,
#include "ops/ops_list.h"
#undef HB_OP
};

const hb_backend *hb_backend_cpu_guard(void) { return &g_guard; }
