/* io/json_file: JSON files read whole, parse errors told apart from allocation failures, checked fields. */
#include "io/json_file.h"
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *hb_read_text_file(const char *path, size_t max_bytes, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { hb_error("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        hb_error("%s: not a regular file", path);
        return NULL;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        hb_error("%s: %lld bytes, more than the %zu this file may have", path, (long long)st.st_size, max_bytes);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) { fclose(f); hb_error("%s: out of memory reading %zu bytes", path, n); return NULL; }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) { free(buf); hb_error("%s: read error (%zu of %zu bytes)", path, got, n); return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* jansson allocates through json_alloc. jansson cannot fail an allocation safely while it parses (it reports a
 * syntax error, asserts or frees twice: jansson 2.14's lexer), so during hb_json_parse a failed allocation
 * jumps straight back out of the parser: what it had built is leaked, and the failure is reported as one. */
static _Thread_local jmp_buf *g_json_escape;
static void *(*volatile g_json_malloc)(size_t) = malloc;
static pthread_once_t g_json_once = PTHREAD_ONCE_INIT;

static void *json_alloc(size_t n) {
    void *p = g_json_malloc(n);
    if (!p && g_json_escape) longjmp(*g_json_escape, 1);
    return p;
}
static void json_install(void) { json_set_alloc_funcs(json_alloc, free); }

void hb_json_set_allocator(void *(*alloc)(size_t)) {
    pthread_once(&g_json_once, json_install);
    g_json_malloc = alloc ? alloc : malloc;
}

json_t *hb_json_parse(const char *text, size_t len, size_t flags, const char *what) {
    pthread_once(&g_json_once, json_install);
    json_error_t je;
    jmp_buf escape;
    if (setjmp(escape)) {
        g_json_escape = NULL;
        hb_error("%s: out of memory parsing JSON", what);
        return NULL;
    }
    g_json_escape = &escape;
    json_t *root = json_loadb(text, len, flags, &je);
    g_json_escape = NULL;
    if (root) return root;
    if (json_error_code(&je) == json_error_out_of_memory)
        hb_error("%s: out of memory parsing JSON", what);
    else
        hb_error("%s: invalid JSON at line %d column %d: %s", what, je.line, je.column, je.text);
    return NULL;
}

json_t *hb_json_load_file(const char *path, size_t flags) {
    size_t n;
    char *text = hb_read_text_file(path, HB_JSON_MAX_FILE, &n);
    if (!text) return NULL;
    json_t *root = hb_json_parse(text, n, flags, path);
    free(text);
    return root;
}

int hb_json_int64(json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *dst, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        /* range first: converting a double outside int64 is undefined */
        double d = json_real_value(v);
        if (!(d >= (double)lo && d <= (double)hi && d >= -0x1p63 && d < 0x1p63) || d != floor(d))
            return hb_error("%s: \"%s\" is %.17g, want an integer in [%lld, %lld]", what, key, d, (long long)lo,
                            (long long)hi);
        x = (int64_t)d;
    } else {
        return hb_error("%s: \"%s\" is not a number (want an integer in [%lld, %lld])", what, key, (long long)lo,
                        (long long)hi);
    }
    if (x < lo || x > hi)
        return hb_error("%s: \"%s\" is %lld, want an integer in [%lld, %lld]", what, key, (long long)x, (long long)lo,
                        (long long)hi);
    *dst = x;
    return 0;
}

int hb_json_int(json_t *obj, const char *key, int lo, int hi, int *dst, const char *what) {
    int64_t x = *dst;
    if (hb_json_int64(obj, key, lo, hi, &x, what) != 0) return -1;
    *dst = (int)x;
    return 0;
}

int hb_json_real(json_t *obj, const char *key, double lo, double hi, double *dst, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return hb_error("%s: \"%s\" is not a number (want [%g, %g])", what, key, lo, hi);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return hb_error("%s: \"%s\" is %g, want a number in [%g, %g]", what, key, d, lo, hi);
    *dst = d;
    return 0;
}

int hb_json_float(json_t *obj, const char *key, double lo, double hi, float *dst, const char *what) {
    double d = *dst;
    if (hb_json_real(obj, key, lo, hi, &d, what) != 0) return -1;
    *dst = (float)d;
    return 0;
}
