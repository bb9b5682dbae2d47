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

/* One wrapper per table entry: open the pages, run the CPU kernel, close them. */
#define GUARD_VOID(name, params, args) \
    static void g_##name params { enter(); hb_cpu_##name args; leave(); }
#define GUARD_INT(name, params, args) \
    static int g_##name params { enter(); int rc_ = hb_cpu_##name args; leave(); return rc_; }

GUARD_INT(linear, (float *y, const float *x, int64_t M, const hb_tensor *w, const hb_tensor *b, bool acc),
          (y, x, M, w, b, acc))
GUARD_VOID(gemm_f32, (float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                      int64_t N, int64_t K, bool acc), (C, ldc, A, lda, B, ldb, M, N, K, acc))
GUARD_VOID(layernorm, (float *y, const float *x, int64_t r, int64_t d, const hb_tensor *w, const hb_tensor *b, float e),
           (y, x, r, d, w, b, e))
GUARD_VOID(rmsnorm, (float *y, const float *x, int64_t r, int64_t d, const hb_tensor *w, float e), (y, x, r, d, w, e))
GUARD_VOID(channel_rmsnorm, (float *y, const float *x, int64_t C, int64_t S, const hb_tensor *g, const hb_tensor *b),
           (y, x, C, S, g, b))
GUARD_VOID(layernorm_modulate, (float *y, const float *x, int64_t r, int64_t d, float e, const float *sh,
                                const float *sc, hb_modgroups g), (y, x, r, d, e, sh, sc, g))
GUARD_VOID(gated_add, (float *x, const float *y, int64_t r, int64_t d, const float *gate, hb_modgroups g),
           (x, y, r, d, gate, g))
GUARD_VOID(elementwise, (hb_ew_op op, float *y, const float *a, const float *b, float al, float be, int64_t n),
           (op, y, a, b, al, be, n))
GUARD_VOID(softmax, (float *x, int64_t r, int64_t n), (x, r, n))
GUARD_VOID(rope3d, (float *x, int64_t L, int h, int d, int64_t s, int H, int W, int f0), (x, L, h, d, s, H, W, f0))
GUARD_VOID(attention, (const hb_attention_args *a), (a))
GUARD_INT(conv3d, (float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, const hb_tensor *w,
                   const hb_tensor *b, const hb_conv3d_params *p), (y, x, C, T, H, W, w, b, p))
GUARD_VOID(upsample_nearest, (float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int a, int b, int c),
           (y, x, C, T, H, W, a, b, c))
GUARD_VOID(pixel_shuffle, (float *y, const float *x, int64_t C, int64_t T, int64_t H, int64_t W, int p, hb_ps_order o,
                           bool un), (y, x, C, T, H, W, p, o, un))
GUARD_VOID(copy_nd, (float *d, const int64_t *ds, const float *s, const int64_t *ss, int n, const int64_t *sh),
           (d, ds, s, ss, n, sh))
GUARD_VOID(fill, (float *d, float v, int64_t n), (d, v, n))
GUARD_VOID(add_vec, (float *y, int64_t ly, const float *x, int64_t lx, int64_t r, int64_t n, const hb_tensor *v),
           (y, ly, x, lx, r, n, v))
GUARD_VOID(channel_affine, (float *y, const float *x, int64_t C, int64_t S, const hb_tensor *a, const hb_tensor *b),
           (y, x, C, S, a, b))
GUARD_INT(convert, (void *d, hb_dtype dt, const void *s, hb_dtype st, int64_t n), (d, dt, s, st, n))
GUARD_VOID(rope_shift, (float *x, int64_t r, int64_t s, int h, int d, int np, double de), (x, r, s, h, d, np, de))
GUARD_INT(embed_rows, (float *y, const hb_tensor *t, const int32_t *ids, int64_t n), (y, t, ids, n))

static int g_sync(void) { return hb__cpu_sync(); }

static const hb_backend g_guard = {
    .name = "cpu-guard", .mem = &g_mem, .sync = g_sync,
    .linear = g_linear, .gemm_f32 = g_gemm_f32, .layernorm = g_layernorm, .rmsnorm = g_rmsnorm,
    .channel_rmsnorm = g_channel_rmsnorm, .layernorm_modulate = g_layernorm_modulate, .gated_add = g_gated_add,
    .elementwise = g_elementwise, .softmax = g_softmax, .rope3d = g_rope3d, .attention = g_attention,
    .conv3d = g_conv3d, .upsample_nearest = g_upsample_nearest, .pixel_shuffle = g_pixel_shuffle,
    .copy_nd = g_copy_nd, .fill = g_fill, .add_vec = g_add_vec, .embed_rows = g_embed_rows,
    .channel_affine = g_channel_affine, .convert = g_convert, .rope_shift = g_rope_shift,
};

const hb_backend *hb_backend_cpu_guard(void) { return &g_guard; }
