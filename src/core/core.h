/* core: errors and logging, dtypes, tensors, arenas, the thread pool, timing and memory figures.
 * Everything above this layer (ops, io, models, pipeline, tools) includes only this header from core. */
#ifndef HB_CORE_H
#define HB_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {  /* the CUDA/HIP backend is compiled as C++ */
#endif

/* ---------- errors ----------
 * Functions that can fail return int (0 = ok, -1 = error) or a pointer (NULL = error) and record one
 * message, naming the file and the problem, in a thread-local buffer that the caller prints once. */
#define HB_ERRMSG_MAX 1024
int hb_error(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* sets the message, returns -1 */
int hb_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* prepends context */
const char *hb_last_error(void);        /* "unknown error" when none is set */
const char *hb_last_error_text(void);   /* "" when none is set */
void hb_clear_error(void);

/* ---------- logging ---------- */
enum { HB_LOG_ERROR = 0, HB_LOG_WARN = 1, HB_LOG_INFO = 2, HB_LOG_DEBUG = 3 };
extern int hb_log_level; /* the library alone: HB_LOG_WARN; the hb tool: HB_LOG_INFO, -v HB_LOG_DEBUG, -q HB_LOG_ERROR */
void hb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------- dtypes ---------- */
/* Element dtypes first (HB_DTYPE_COUNT of them), then ggml's block-quantized weight formats (GGUF files):
 * a block holds hb_dtype_block_elems consecutive elements of one row in hb_dtype_block_bytes bytes, so a
 * quantized tensor's rows (last dim) are whole blocks and its strides are in elements, multiples of a block. */
typedef enum {
    HB_F32 = 0, HB_F16, HB_BF16, HB_F64, HB_I64, HB_I32, HB_I16, HB_I8, HB_U8, HB_BOOL, HB_DTYPE_COUNT,
    HB_Q4_0 = 16, HB_Q4_1, HB_Q5_0, HB_Q5_1, HB_Q8_0, HB_Q2_K, HB_Q3_K, HB_Q4_K, HB_Q5_K, HB_Q6_K, HB_QTYPE_END
} hb_dtype;
size_t hb_dtype_size(hb_dtype t);             /* bytes per element; 0 for block formats */
const char *hb_dtype_name(hb_dtype t);        /* safetensors spelling: "F32", "BF16", ...; ggml's: "Q8_0", "Q4_K" */
int hb_dtype_from_name(const char *s, hb_dtype *out); /* element dtypes only; -1 on unknown (no message set) */
bool hb_dtype_is_quant(hb_dtype t);
int hb_dtype_block_elems(hb_dtype t);         /* 1 for element dtypes, 32 or 256 for block formats */
size_t hb_dtype_block_bytes(hb_dtype t);      /* bytes of one block (element size for element dtypes) */
/* Bytes of n consecutive elements of a row (n a multiple of the block size for block formats). */
size_t hb_dtype_bytes(hb_dtype t, int64_t n);
/* Dequantize n elements (a multiple of the block size) of a block format to f32, with ggml's arithmetic
 * (dequantize_row_*: each multiply and add rounded separately, f16 subnormals exact). Also accepts the
 * float element dtypes (as hb_convert_to_f32). */
void hb_dequantize(float *dst, const void *src, hb_dtype t, int64_t n);
/* Quantize n f32 values (whole blocks) to t as ggml's reference quantizers do (quantize_row_*_ref, no importance
 * matrix: the bytes llama-quantize writes); F32/F16/BF16 convert. -1 + message when t is no weight format. */
int hb_quantize(void *dst, const float *src, hb_dtype t, int64_t n);

/* Exact widening and round-to-nearest-even narrowing (NaN stays NaN, overflow goes to inf). */
float hb_bf16_to_f32(uint16_t h);
uint16_t hb_f32_to_bf16(float f);
float hb_f16_to_f32(uint16_t h);
uint16_t hb_f32_to_f16(float f);
/* float8 e4m3fn (1 sign, 4 exponent bits biased 7, 3 mantissa bits; no infinities, S.1111.111 is NaN, max 448),
 * exactly (the F8_E4M3 dtype of safetensors, PyTorch's float8_e4m3fn). */
float hb_e4m3_to_f32(uint8_t b);
/* Bulk conversion of n elements of any float/int dtype to f32, and f32 to F32/F16/BF16. */
void hb_convert_to_f32(float *dst, const void *src, hb_dtype t, size_t n);
void hb_convert_from_f32(void *dst, hb_dtype t, const float *src, size_t n);

/* ---------- tensors ----------
 * Shapes are in PyTorch order (outermost first), up to 6 dims (the sched golden file holds a 6-D tensor);
 * strides in elements.
 * A tensor never owns its data: data lives in a mapped checkpoint, an arena, or caller memory. */
#define HB_MAX_DIMS 6
typedef struct hb_tensor {
    hb_dtype dtype;
    int ndim;
    int64_t shape[HB_MAX_DIMS];
    int64_t stride[HB_MAX_DIMS];
    void *data;
} hb_tensor;

hb_tensor hb_tensor_make(hb_dtype t, int ndim, const int64_t *shape, void *data); /* contiguous */
hb_tensor hb_tensor_1d(hb_dtype t, int64_t n0, void *data);
hb_tensor hb_tensor_2d(hb_dtype t, int64_t n0, int64_t n1, void *data);
hb_tensor hb_tensor_3d(hb_dtype t, int64_t n0, int64_t n1, int64_t n2, void *data);
hb_tensor hb_tensor_4d(hb_dtype t, int64_t n0, int64_t n1, int64_t n2, int64_t n3, void *data);
int64_t hb_tensor_numel(const hb_tensor *x);
size_t hb_tensor_nbytes(const hb_tensor *x);
bool hb_tensor_is_contiguous(const hb_tensor *x);
/* Views share data: narrow one dimension, or reshape a contiguous tensor (-1 infers one dim). */
int hb_tensor_narrow(const hb_tensor *x, int dim, int64_t start, int64_t len, hb_tensor *out);
int hb_tensor_reshape(const hb_tensor *x, int ndim, const int64_t *shape, hb_tensor *out);
bool hb_tensor_same_shape(const hb_tensor *a, const hb_tensor *b);
/* "[3, 4, 5]" into buf; returns buf. */
const char *hb_shape_str(const hb_tensor *x, char *buf, size_t cap);
/* Check dtype and shape (use -1 in `shape` for "any"); on mismatch sets a message naming `what`. */
int hb_tensor_expect(const hb_tensor *x, const char *what, int ndim, const int64_t *shape);

/* y[M, N] = x[M, K] * W^T computed as ggml's CPU backend does (ggml_mul_mat): each activation row converted to
 * the weight type's vec_dot_type (Q8_0, Q8_1, Q8_K, f16, bf16) and dotted with W's blocks in integers. A
 * reference (scalar, host memory) for checking against ggml, not a fast path. W 2-D contiguous. */
int hb_matmul_ggml_ref(float *y, const float *x, int64_t M, const hb_tensor *w);
/* One activation row as ggml's quantize_row_q8_0 makes it for a Q8_0 dot product: per 32 elements, d = amax/127
 * (returned rounded to f16, as stored) and q = round-half-even(x * 127/amax). K a multiple of 32. */
void hb_quantize_act_q8_0(int8_t *q, float *d, const float *x, int64_t K);
/* As ggml's quantize_row_q8_K (the K-quants' activations): per 256 elements, iscale = -127/(the element of
 * largest magnitude), q = min(127, round-half-even(iscale * x)), d = 1/iscale, and the sums of q per 16 in bsum. */
void hb_quantize_act_q8_k(int8_t *q, float *d, int32_t *bsum, const float *x, int64_t K);

/* ---------- arena ----------
 * One block reserved up front; allocations are bump pointers (64-byte aligned) released by reset to a
 * mark. A forward pass sizes its arena once and does no malloc in its loop. A "measuring" arena (no
 * memory) runs the same allocation sequence to learn the size to reserve. */
/* ---------- memory spaces ----------
 * Activations live where the active backend computes: host memory for the CPU backend, device memory for
 * a GPU. A backend installs its memory space here (core cannot see ops/); pointers into a device space are
 * never dereferenced on the host: they go to ops, or cross with hb_dev_upload/hb_dev_download at the
 * pipeline's edges. The host space is the default of every thread. */
typedef struct hb_memspace {
    const char *name;                                           /* "host", "cuda:0", "cpu-guard" */
    bool is_host;                                               /* pointers are plain host memory */
    void *(*alloc)(size_t bytes, const char *what);             /* NULL + message on failure */
    void (*free)(void *p);
    int (*upload)(void *dst, const void *src, size_t bytes);    /* host -> space */
    int (*download)(void *dst, const void *src, size_t bytes);  /* space -> host */
    int (*zero)(void *p, size_t bytes);
    /* The host memory [p, p+bytes) is about to be unmapped or freed: drop any device copy made of it
     * (weights are uploaded once, keyed by their host address). NULL when nothing is cached. */
    void (*forget_host)(const void *p, size_t bytes);
    /* Most bytes of this space in use at once so far (activations, caches and uploaded weights), for
     * --verbose; NULL when not tracked. */
    size_t (*peak_bytes)(void);
} hb_memspace;
const hb_memspace *hb_memspace_host(void);
const hb_memspace *hb_memspace_current(void);   /* this thread's */
void hb_memspace_set(const hb_memspace *m);     /* NULL = host; set by hb_backend_use */
void *hb_dev_alloc(size_t bytes, const char *what);
void *hb_dev_calloc_f32(int64_t n, const char *what);  /* zero-filled n floats, in the current space */
void hb_dev_free(void *p);
int hb_dev_zero(void *p, size_t bytes);
int hb_dev_upload(void *dst, const void *src, size_t bytes);
int hb_dev_download(void *dst, const void *src, size_t bytes);
/* Host memory about to go away (munmap, free of converted weights): every space that cached it forgets it. */
void hb_host_memory_released(const void *p, size_t bytes);
/* A space that caches host memory registers here so hb_host_memory_released reaches it (at most 8). */
void hb_memspace_register_cache(const hb_memspace *m);

typedef struct hb_arena {
    uint8_t *base;
    size_t cap, used, peak;
    bool measuring;
    const char *name;
    const hb_memspace *space;  /* where base lives (host for hb_arena_init) */
} hb_arena;
int hb_arena_init(hb_arena *a, size_t cap, const char *name);
/* An arena for activations, in the current thread's memory space (device memory under a GPU backend). */
int hb_arena_init_dev(hb_arena *a, size_t cap, const char *name);
void hb_arena_init_measure(hb_arena *a, const char *name);
void hb_arena_free(hb_arena *a);
void *hb_arena_alloc(hb_arena *a, size_t bytes);   /* NULL + message when full (measuring: never NULL) */
size_t hb_arena_bytes(size_t bytes);               /* what an allocation of `bytes` takes (alignment included) */
size_t hb_arena_mark(const hb_arena *a);
void hb_arena_reset(hb_arena *a, size_t mark);
/* A tensor with storage from the arena (NULL data on failure; check with hb_tensor_ok). */
int hb_tensor_alloc(hb_arena *a, hb_dtype t, int ndim, const int64_t *shape, hb_tensor *out);

/* ---------- thread pool ----------
 * One process-wide pool of pthreads. hb_parallel_for splits [0, n) into contiguous ranges, one task per
 * range; kernels write each output element from exactly one task with a fixed summation order, so
 * results are bitwise identical for any thread count. Nested calls run inline. */
typedef void (*hb_range_fn)(void *ctx, int64_t begin, int64_t end);
int hb_threads_init(int n);       /* n <= 0: HB_THREADS, else the number of online CPUs */
int hb_threads_count(void);
void hb_threads_shutdown(void);
/* Run fn over [0, n) in chunks of at least `grain` items. */
void hb_parallel_for(int64_t n, int64_t grain, hb_range_fn fn, void *ctx);

/* ---------- time, memory, progress ---------- */
double hb_time_now(void);         /* monotonic seconds */
size_t hb_peak_rss_bytes(void);   /* VmHWM of this process */
size_t hb_current_rss_bytes(void);
void hb_reset_peak_rss(void);     /* best effort (writes /proc/self/clear_refs) */
/* The memory this process may use: the smallest of the physical memory, the cgroup limit (v2 memory.max, v1
 * memory.limit_in_bytes) and RLIMIT_AS (ulimit -v); HB_MEMORY_LIMIT (bytes, or with a K/M/G/T suffix) replaces
 * them. *source (may be NULL) names the one that decided. */
size_t hb_machine_memory_bytes(const char **source);

/* Progress of a long operation: stage name, step k of n. The callback (C API) gets every update; with
 * no callback a line is drawn on stderr only when the program asked for it (hb_progress_draw, set by the hb
 * tool) and stderr is a terminal: the library alone never writes progress to the terminal. */
extern bool hb_progress_draw;
typedef void (*hb_progress_fn)(void *user, const char *stage, int step, int total, double elapsed_s,
                               double eta_s);
typedef struct hb_progress {
    hb_progress_fn fn;
    void *user;
    const char *stage;
    int total;
    double t0;
    bool tty;
} hb_progress;
void hb_progress_begin(hb_progress *p, hb_progress_fn fn, void *user, const char *stage, int total);
void hb_progress_step(hb_progress *p, int step); /* step = number of finished items, 1..total */
void hb_progress_end(hb_progress *p);

/* ---------- small utilities ---------- */
void *hb_malloc(size_t n, const char *what);  /* NULL + message on failure; 64-byte aligned */
void *hb_calloc(size_t n, const char *what);
void hb_free(void *p);
/* Deterministic PRNG for tests, mkmodel and samplers (splitmix64 + Box-Muller). */
typedef struct { uint64_t s; } hb_rng;
void hb_rng_seed(hb_rng *r, uint64_t seed);
uint64_t hb_rng_u64(hb_rng *r);
float hb_rng_uniform(hb_rng *r);      /* [0, 1) */
float hb_rng_normal(hb_rng *r);       /* N(0, 1) */
/* Deterministic random fill: `count` values N(0, std^2) + mean from (seed, stream, offset): value i depends
 * only on those, never on the thread count or the chunking, so a tensor can be produced in pieces (random-weight
 * checkpoints). (Sum of four 16-bit uniforms, rescaled to unit variance: a fast approximate normal,
 * |z| <= 3.46.) Runs on the thread pool. */
void hb_normal_fill(float *dst, int64_t count, uint64_t seed, uint64_t stream, int64_t offset, float mean, float std);
/* Write a whole buffer to `path` atomically: temp file in the same folder, fsync, rename. */
int hb_write_file_atomic(const char *path, const void *data, size_t n);

#ifdef __cplusplus
}
#endif

#endif
