#include "core/core.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

double hb_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t read_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0) { kb = strtoull(line + klen, NULL, 10); break; }
    fclose(f);
    return kb * 1024;
}

size_t hb_peak_rss_bytes(void) { return read_status_kb("VmHWM:"); }
size_t hb_current_rss_bytes(void) { return read_status_kb("VmRSS:"); }

/* A byte count with an optional K/M/G/T suffix (powers of 1024); 0 when unreadable. */
static size_t parse_bytes(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v > 0)) return 0;
    const char *units = "KMGT", *u = *end ? strchr(units, *end & ~0x20) : NULL;
    if (*end && (!u || (end[1] && end[1] != '\n'))) return 0;
    for (const char *k = units; u && k <= u; k++) v *= 1024;
    return v >= 1.8e19 ? SIZE_MAX : (size_t)v;
}

static size_t read_limit_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[64] = "";
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    return ok ? parse_bytes(line) : 0; /* "max" (cgroup v2, no limit) reads as 0 */
}

size_t hb_machine_memory_bytes(const char **source) {
    const char *src = "physical memory";
    const char *env = getenv("HB_MEMORY_LIMIT");
    size_t b = env ? parse_bytes(env) : 0;
    if (b) { if (source) *source = "HB_MEMORY_LIMIT"; return b; }
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    b = pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz : SIZE_MAX;
    size_t cg = read_limit_file("/sys/fs/cgroup/memory.max");
    if (!cg) cg = read_limit_file("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    if (cg && cg < b) b = cg, src = "the cgroup memory limit";
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (size_t)rl.rlim_cur < b)
        b = (size_t)rl.rlim_cur, src = "ulimit -v";
    if (source) *source = src;
    return b;
}

void hb_reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) { fputs("5", f); fclose(f); }
}

bool hb_progress_draw;

void hb_progress_begin(hb_progress *p, hb_progress_fn fn, void *user, const char *stage, int total) {
    p->fn = fn;
    p->user = user;
    p->stage = stage;
    p->total = total;
    p->t0 = hb_time_now();
    p->tty = hb_progress_draw && isatty(2) && hb_log_level >= HB_LOG_INFO;
    if (p->fn) p->fn(p->user, stage, 0, total, 0.0, -1.0);
}

void hb_progress_step(hb_progress *p, int step) {
    double el = hb_time_now() - p->t0;
    double eta = step > 0 ? el / step * (p->total - step) : -1.0;
    if (p->fn) p->fn(p->user, p->stage, step, p->total, el, eta);
    else if (p->tty)
        fprintf(stderr, "\r%s: %d/%d  %.1fs elapsed  ETA %.1fs  (%.2f s/it)   ", p->stage, step, p->total, el,
                eta < 0 ? 0.0 : eta, step > 0 ? el / step : 0.0);
}

void hb_progress_end(hb_progress *p) {
    double el = hb_time_now() - p->t0;
    if (!p->fn && p->tty) fprintf(stderr, "\r%s: %d/%d done in %.2fs%30s\n", p->stage, p->total, p->total, el, "");
    else if (!p->fn) hb_log(HB_LOG_DEBUG, "%s: done in %.2fs", p->stage, el);
}

void *hb_malloc(size_t n, const char *what) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        hb_error("out of memory allocating %zu bytes for %s", n, what ? what : "a buffer");
        return NULL;
    }
    return p;
}

void *hb_calloc(size_t n, const char *what) {
    void *p = hb_malloc(n, what);
    if (p) memset(p, 0, n);
    return p;
}

void hb_free(void *p) { free(p); }

void hb_rng_seed(hb_rng *r, uint64_t seed) { r->s = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull; }

uint64_t hb_rng_u64(hb_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float hb_rng_uniform(hb_rng *r) { return (float)(hb_rng_u64(r) >> 40) * 0x1p-24f; }

float hb_rng_normal(hb_rng *r) {
    /* Box-Muller on 53-bit uniforms, one value per call so a stream is a pure function of the seed. */
    double u1 = ((hb_rng_u64(r) >> 11) + 1.0) * 0x1p-53, u2 = (hb_rng_u64(r) >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

int hb_write_file_atomic(const char *path, const void *data, size_t n) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp) return hb_error("%s: out of memory", path);
    snprintf(tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { int e = errno; free(tmp); return hb_error("%s: cannot create: %s", path, strerror(e)); }
    const uint8_t *p = data;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd); unlink(tmp); free(tmp);
            return hb_error("%s: write failed: %s", path, strerror(e));
        }
        p += w; left -= (size_t)w;
    }
    if (fsync(fd) != 0 && errno != EINVAL) {
        int e = errno; close(fd); unlink(tmp); free(tmp);
        return hb_error("%s: sync failed: %s", path, strerror(e));
    }
    if (close(fd) != 0) { int e = errno; unlink(tmp); free(tmp); return hb_error("%s: close failed: %s", path, strerror(e)); }
    if (rename(tmp, path) != 0) { int e = errno; unlink(tmp); free(tmp); return hb_error("%s: rename failed: %s", path, strerror(e)); }
    free(tmp);
    return 0;
}
