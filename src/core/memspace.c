/* Memory spaces: the host one, the per-thread current one, and the registry of spaces that cache host
 * memory (see core.h). */
#include "core/core.h"
#include <string.h>

static void *host_alloc(size_t n, const char *what) { return hb_malloc(n, what); }
static void host_free(void *p) { hb_free(p); }
static int host_copy(void *dst, const void *src, size_t n) { if (n) memmove(dst, src, n); return 0; }
static int host_zero(void *p, size_t n) { if (n) memset(p, 0, n); return 0; }

static const hb_memspace g_host = {"host", true, host_alloc, host_free, host_copy, host_copy, host_zero, NULL, NULL};
static _Thread_local const hb_memspace *g_cur;

const hb_memspace *hb_memspace_host(void) { return &g_host; }
const hb_memspace *hb_memspace_current(void) { return g_cur ? g_cur : &g_host; }
void hb_memspace_set(const hb_memspace *m) { g_cur = m; }

void *hb_dev_alloc(size_t n, const char *what) { return hb_memspace_current()->alloc(n ? n : 1, what); }
void hb_dev_free(void *p) { if (p) hb_memspace_current()->free(p); }
int hb_dev_upload(void *dst, const void *src, size_t n) { return n ? hb_memspace_current()->upload(dst, src, n) : 0; }
int hb_dev_download(void *dst, const void *src, size_t n) { return n ? hb_memspace_current()->download(dst, src, n) : 0; }
int hb_dev_zero(void *p, size_t n) { return n ? hb_memspace_current()->zero(p, n) : 0; }

void *hb_dev_calloc_f32(int64_t n, const char *what) {
    size_t bytes = sizeof(float) * (size_t)(n > 0 ? n : 1);
    void *p = hb_dev_alloc(bytes, what);
    if (p && hb_dev_zero(p, bytes)) { hb_dev_free(p); return NULL; }
    return p;
}

#define MAX_CACHES 8
static const hb_memspace *g_caches[MAX_CACHES];
static int g_ncaches;

void hb_memspace_register_cache(const hb_memspace *m) {
    for (int i = 0; i < g_ncaches; i++) if (g_caches[i] == m) return;
    if (g_ncaches < MAX_CACHES) g_caches[g_ncaches++] = m;
}

void hb_host_memory_released(const void *p, size_t n) {
    for (int i = 0; i < g_ncaches; i++)
        if (g_caches[i]->forget_host) g_caches[i]->forget_host(p, n);
}
