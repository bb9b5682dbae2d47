/* core: dtype conversions against independent formulas, tensor views, arena, thread pool. */
#include "testlib.h"
#include <math.h>
#include <stdatomic.h>
#include <unistd.h>
#include <string.h>
#include <stdlib.h>

static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Independent f16 decode: sign * mantissa * 2^exp by ldexp. */
static double f16_ref(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

/* Independent round-to-nearest-even: pick the nearer of the two neighbouring codes by exact distance. */
static void check_narrowing(hb_rng *r) {
    int bad_bf = 0, bad_h = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)hb_rng_u64(r);
        if (i % 4 == 0) u = (u & 0x8000ffffu) | ((uint32_t)(100 + hb_rng_u64(r) % 60) << 23); /* f16 range */
        float f = u2f(u);
        if (isnan(f) || isinf(f)) continue;
        /* bf16 */
        uint16_t b = hb_f32_to_bf16(f);
        uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
        double vh = isinf(hb_bf16_to_f32(hi)) ? copysign(ldexp(1.0, 128), f) : hb_bf16_to_f32(hi); /* overflow step */
        double dl = fabs((double)hb_bf16_to_f32(lo) - f), dh = fabs(vh - f);
        uint16_t want = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
        if (b != want) bad_bf++;
        /* f16: find the nearest code by bisection over the ordered magnitude codes */
        double a = fabs((double)f);
        uint16_t h = hb_f32_to_f16(f), hm = h & 0x7fff;
        if (a >= 65520.0) { if (hm != 0x7c00) bad_h++; continue; }
        double v = f16_ref(hm);
        double vd = hm > 0 ? f16_ref((uint16_t)(hm - 1)) : -1, vu = f16_ref((uint16_t)(hm + 1));
        bool ok = fabs(v - a) <= fabs(vu - a) && (hm == 0 || fabs(v - a) <= fabs(vd - a));
        if (ok && (fabs(v - a) == fabs(vu - a) || (hm && fabs(v - a) == fabs(vd - a)))) ok = (hm & 1) == 0;
        if (!ok || ((h >> 15) != (u >> 31) && a != 0)) bad_h++;
    }
    CHECKF(bad_bf == 0, "%d bf16 roundings differ", bad_bf);
    CHECKF(bad_h == 0, "%d f16 roundings differ", bad_h);
}

static void check_widening(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hb_f16_to_f32((uint16_t)h);
        double r = f16_ref((uint16_t)h);
        if (isnan(r) ? !isnan(f) : (double)f != r) bad++;
        if (!isnan(r) && hb_f32_to_f16(f) != h) bad++; /* exact round trip */
        float b = hb_bf16_to_f32((uint16_t)h);
        if (!isnan(b) && hb_f32_to_bf16(b) != h) bad++;
    }
    CHECKF(bad == 0, "%d widening/round-trip errors", bad);
    CHECK(hb_f32_to_bf16(NAN) != 0x7f80 && isnan(hb_bf16_to_f32(hb_f32_to_bf16(NAN))));
    CHECK(hb_f32_to_f16(1e6f) == 0x7c00 && hb_f32_to_f16(-1e6f) == 0xfc00);
}

static void check_tensor(void) {
    float buf[2 * 3 * 4];
    for (int i = 0; i < 24; i++) buf[i] = (float)i;
    hb_tensor t = hb_tensor_3d(HB_F32, 2, 3, 4, buf), v, r;
    CHECK(hb_tensor_numel(&t) == 24 && hb_tensor_nbytes(&t) == 96 && hb_tensor_is_contiguous(&t));
    CHECK(hb_tensor_narrow(&t, 1, 1, 2, &v) == 0);
    CHECK(v.shape[1] == 2 && ((float *)v.data)[0] == 4.0f && !hb_tensor_is_contiguous(&v));
    CHECK(hb_tensor_narrow(&t, 1, 2, 2, &v) != 0);
    int64_t s[2] = {-1, 6};
    CHECK(hb_tensor_reshape(&t, 2, s, &r) == 0 && r.shape[0] == 4 && r.stride[0] == 6);
    int64_t bad[2] = {5, -1};
    CHECK(hb_tensor_reshape(&t, 2, bad, &r) != 0);
    int64_t want[3] = {2, -1, 5};
    CHECK(hb_tensor_expect(&t, "x", 3, want) != 0 && strstr(hb_last_error(), "[2, 3, 4]") != NULL);
}

static void check_arena(void) {
    hb_arena m, a;
    hb_arena_init_measure(&m, "measure");
    void *p1 = hb_arena_alloc(&m, 100);
    size_t mk = hb_arena_mark(&m);
    hb_arena_alloc(&m, 1000);
    hb_arena_reset(&m, mk);
    hb_arena_alloc(&m, 10);
    CHECK(p1 != NULL && m.peak == 64 * 2 + 1024);
    CHECK(hb_arena_init(&a, m.peak, "test") == 0);
    uint8_t *q1 = hb_arena_alloc(&a, 100), *q2 = hb_arena_alloc(&a, 1000);
    CHECK(q1 && q2 && ((uintptr_t)q1 % 64) == 0 && ((uintptr_t)q2 % 64) == 0 && q2 >= q1 + 100);
    memset(q2, 1, 1000);
    CHECK(hb_arena_alloc(&a, 1 << 20) == NULL && strstr(hb_last_error(), "test") != NULL);
    hb_arena_free(&a);
}

typedef struct { const float *x; double *out; int64_t inner; } sum_ctx;
static void sum_rows(void *c_, int64_t b, int64_t e) {
    sum_ctx *c = c_;
    for (int64_t i = b; i < e; i++) {
        double s = 0;
        for (int64_t j = 0; j < c->inner; j++) s += sin(c->x[i * c->inner + j]) * 1e-3;
        c->out[i] = s;
    }
}

static void check_threads(hb_rng *r) {
    int64_t rows = 1000, inner = 257;
    float *x = malloc(sizeof(float) * rows * inner);
    double *o1 = malloc(sizeof(double) * rows), *o4 = malloc(sizeof(double) * rows);
    tl_fill_normal(r, x, rows * inner, 1.0f);
    hb_threads_init(1);
    sum_ctx c = {x, o1, inner};
    hb_parallel_for(rows, 1, sum_rows, &c);
    hb_threads_init(4);
    CHECK(hb_threads_count() == 4);
    c.out = o4;
    for (int rep = 0; rep < 50; rep++) hb_parallel_for(rows, 3, sum_rows, &c);
    CHECK(memcmp(o1, o4, sizeof(double) * rows) == 0);
    double ref = 0;
    for (int64_t j = 0; j < inner; j++) ref += sin(x[7 * inner + j]) * 1e-3;
    CHECK(o4[7] == ref);
    free(x); free(o1); free(o4);
}

/* The pool's hand-offs: every index runs exactly once per call, through the spinning and the sleeping wake-up
 * (gaps shorter and longer than HB_SPIN_US between calls), nested calls inline. */
typedef struct { _Atomic int *hits; int64_t n; } visit_ctx;
static void visit_inner(void *c_, int64_t b, int64_t e) {
    visit_ctx *c = c_;
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[c->n + i], 1);
}
static void visit(void *c_, int64_t b, int64_t e) {
    visit_ctx *c = c_;
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[i], 1);
    if (b == 0) hb_parallel_for(4, 1, visit_inner, c); /* nested: runs inline, once */
}
static void check_pool_handoffs(void) {
    static const char *const spins[] = {"0", "300"};
    const int64_t n = 37;
    _Atomic int *hits = calloc((size_t)n + 4, sizeof(_Atomic int));
    for (int s = 0; s < 2; s++) {
        setenv("HB_SPIN_US", spins[s], 1);
        hb_threads_init(3);
        int bad = 0;
        for (int call = 0; call < 600; call++) {
            for (int64_t i = 0; i < n + 4; i++) atomic_store(&hits[i], 0);
            visit_ctx c = {hits, n};
            hb_parallel_for(n, 1, visit, &c);
            for (int64_t i = 0; i < n + 4; i++) bad += atomic_load(&hits[i]) != 1;
            if (call % 50 == 49) usleep(call % 100 == 99 ? 2000 : 50); /* past the spin window, and within it */
        }
        CHECKF(bad == 0, "HB_SPIN_US=%s: %d indices not run exactly once", spins[s], bad);
    }
    unsetenv("HB_SPIN_US");
    hb_threads_init(0);
    free((void *)hits);
}

static void check_rng_and_files(void) {
    hb_rng a, b;
    hb_rng_seed(&a, 42); hb_rng_seed(&b, 42);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) { float v = hb_rng_normal(&a); s += v; s2 += v * v; CHECK(v == hb_rng_normal(&b)); }
    CHECKF(fabs(s / 1e5) < 0.02 && fabs(s2 / 1e5 - 1) < 0.02, "mean %g var %g", s / 1e5, s2 / 1e5);
    char path[512];
    snprintf(path, sizeof path, "%s/atomic.bin", tl_tmpdir());
    CHECK(hb_write_file_atomic(path, "hello", 5) == 0);
    FILE *f = fopen(path, "rb");
    char got[8] = {0};
    CHECK(f && fread(got, 1, 8, f) == 5 && !memcmp(got, "hello", 5));
    if (f) fclose(f);
    CHECK(hb_write_file_atomic("/nonexistent-dir/x.bin", "x", 1) != 0 &&
          strstr(hb_last_error(), "/nonexistent-dir/x.bin") != NULL);
}

/* A context prefix gets one ": " whether or not the caller wrote its own. */
static void check_error_prefix(void) {
    const char *heads[] = {"longdecode (tile 0,1)", "longdecode (tile 0,1): ", "longdecode (tile 0,1):"};
    for (int i = 0; i < 3; i++) {
        hb_error("out of memory allocating %d bytes", 64);
        CHECK(hb_error_prefix("%s", heads[i]) == -1);
        CHECKF(!strcmp(hb_last_error(), "longdecode (tile 0,1): out of memory allocating 64 bytes"), "%s", hb_last_error());
    }
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    check_widening();
    check_narrowing(&r);
    check_tensor();
    check_arena();
    check_threads(&r);
    check_pool_handoffs();
    check_rng_and_files();
    check_error_prefix();
    return tl_done();
}
