/* A malloc-failure injector for fault tests, loaded with LD_PRELOAD into hb. It counts the allocations made by
 * the main program's own code (the engine and tools are linked into the executable: the caller's return address
 * lies in its text) and makes one of them fail; allocations made inside libraries are passed through uncounted.
 *   HB_FAULT_FAIL=N     the Nth counted allocation returns NULL with errno ENOMEM (0 or unset: none)
 *   HB_FAULT_TRACE=1    print the failed allocation's call stack on stderr (to find the code that mishandled it)
 *   HB_FAULT_REPORT=F   at exit, "<count> <failed>" is written to F: the number of counted allocations and
 *                       whether the chosen one was reached (1) or not (0)
 * glibc's __libc_* entry points are the real allocator (no dlsym bootstrap problem). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

static uintptr_t g_lo, g_hi;            /* the executable's code */
static unsigned long g_fail_at;
static unsigned long g_count;
static int g_failed;

static int first_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size; (void)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (!g_lo || lo < g_lo) g_lo = lo;
        if (hi > g_hi) g_hi = hi;
    }
    return 1; /* the first object is the executable */
}

__attribute__((constructor)) static void fault_init(void) {
    const char *e = getenv("HB_FAULT_FAIL");
    g_fail_at = e ? strtoul(e, NULL, 10) : 0;
    dl_iterate_phdr(first_object, NULL);
}

__attribute__((destructor)) static void fault_report(void) {
    const char *path = getenv("HB_FAULT_REPORT");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "%lu %d\n", __atomic_load_n(&g_count, __ATOMIC_RELAXED), g_failed);
    fclose(f);
}

/* Whether this allocation (called from `ret`) is the one to fail. */
static int should_fail(void *ret) {
    uintptr_t r = (uintptr_t)ret;
    if (!g_hi || r < g_lo || r >= g_hi) return 0;
    unsigned long n = __atomic_add_fetch(&g_count, 1, __ATOMIC_RELAXED);
    if (n != g_fail_at) return 0;
    g_failed = 1;
    if (getenv("HB_FAULT_TRACE")) {
        void *frames[32];
        backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
    }
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t n) {
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_malloc(n);
}
void *calloc(size_t n, size_t size) {
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_calloc(n, size);
}
void *realloc(void *p, size_t n) {
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_realloc(p, n);
}
int posix_memalign(void **out, size_t align, size_t n) {
    if (should_fail(__builtin_return_address(0))) return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t align, size_t n) {
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_memalign(align, n);
}
char *strdup(const char *s) {
    if (should_fail(__builtin_return_address(0))) return NULL;
    size_t n = strlen(s) + 1;
    char *d = __libc_malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}
char *strndup(const char *s, size_t max) {
    if (should_fail(__builtin_return_address(0))) return NULL;
    size_t n = strnlen(s, max);
    char *d = __libc_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
