#include "core/core.h"
#include <sys/mman.h>

#define ARENA_ALIGN 64

int hb_arena_init(hb_arena *a, size_t cap, const char *name) {
    a->name = name ? name : "arena";
    a->used = a->peak = 0;
    a->measuring = false;
    a->cap = (cap + 4095) & ~(size_t)4095;
    if (a->cap == 0) a->cap = 4096;
    /* Pages are reserved now but only become resident when touched. */
    void *p = mmap(NULL, a->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { a->base = NULL; return hb_error("%s: cannot reserve %zu MiB", a->name, a->cap >> 20); }
    a->base = p;
    a->space = hb_memspace_host();
    return 0;
}

int hb_arena_init_dev(hb_arena *a, size_t cap, const char *name) {
    const hb_memspace *m = hb_memspace_current();
    if (m->is_host && m == hb_memspace_host()) return hb_arena_init(a, cap, name);
    a->name = name ? name : "arena";
    a->used = a->peak = 0;
    a->measuring = false;
    a->cap = (cap + 4095) & ~(size_t)4095;
    if (a->cap == 0) a->cap = 4096;
    a->base = m->alloc(a->cap, a->name);
    if (!a->base) return hb_error_prefix("%s: cannot reserve %zu MiB in %s: ", a->name, a->cap >> 20, m->name);
    a->space = m;
    return 0;
}

void hb_arena_init_measure(hb_arena *a, const char *name) {
    a->name = name ? name : "arena";
    a->base = NULL;
    a->cap = a->used = a->peak = 0;
    a->measuring = true;
    a->space = NULL;
}

void hb_arena_free(hb_arena *a) {
    if (a->base && a->space && a->space != hb_memspace_host()) a->space->free(a->base);
    else if (a->base) munmap(a->base, a->cap);
    a->base = NULL;
    a->cap = a->used = 0;
}

void *hb_arena_alloc(hb_arena *a, size_t bytes) {
    size_t off = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    size_t end = off + ((bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1));
    if (a->measuring) {
        a->used = end;
        if (end > a->peak) a->peak = end;
        return (void *)(uintptr_t)ARENA_ALIGN; /* never dereferenced: sizing pass only */
    }
    if (end > a->cap || end < off) {
        hb_error("%s: out of arena memory (need %zu bytes more, capacity %zu MiB)", a->name, end - a->used,
                 a->cap >> 20);
        return NULL;
    }
    a->used = end;
    if (end > a->peak) a->peak = end;
    return a->base + off;
}

size_t hb_arena_bytes(size_t bytes) { return (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

size_t hb_arena_mark(const hb_arena *a) { return a->used; }
void hb_arena_reset(hb_arena *a, size_t mark) { if (mark <= a->used) a->used = mark; }
