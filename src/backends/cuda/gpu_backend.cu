/* The GPU backend's core: one context per device (stream, properties, the sticky error, the weight cache,
 * scratch buffers, RoPE tables), the device memory space, and the backend table. Written against gpu.h only,
 * so hipcc compiles it for AMD GPUs (-DHB_HIP).
 *
 * Every table entry is a thin wrapper that makes its device's context current for the calling thread (and
 * sets the runtime's device when it changes) before calling the kernel entry point: the table functions take
 * no context argument, so each device gets its own set of wrappers (a template over the device number).
 * Launches are asynchronous on the context's one stream; the first error is kept (sticky) and reported by the
 * backend's sync (hb_backend_sync), which also clears it. */
#include "backends/cuda/gpu_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmath>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace {

constexpr int MAX_DEVICES = 8;

struct wkey {
    const void *p;
    int dtype, fmt, ndim;
    int64_t shape[HB_MAX_DIMS], stride[HB_MAX_DIMS];
    bool operator==(const wkey &o) const {
        if (p != o.p || dtype != o.dtype || fmt != o.fmt || ndim != o.ndim) return false;
        for (int i = 0; i < ndim; i++)
            if (shape[i] != o.shape[i] || stride[i] != o.stride[i]) return false;
        return true;
    }
};
struct wkey_hash {
    size_t operator()(const wkey &k) const {
        uint64_t h = (uint64_t)(uintptr_t)k.p * 0x9e3779b97f4a7c15ull;
        h ^= (uint64_t)(k.dtype * 131 + k.fmt * 7 + k.ndim) + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
        for (int i = 0; i < k.ndim; i++) {
            h ^= (uint64_t)k.shape[i] + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
            h ^= (uint64_t)k.stride[i] + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        }
        return (size_t)h;
    }
};
struct wentry {
    void *dev;
    const uint8_t *lo, *hi; /* host bytes the copy was made from: [lo, hi) */
    size_t dev_bytes;
};

struct rope_entry {
    int d = 0;             /* head_dim (0 = unused slot) */
    int64_t f_lo = 0, f_hi = 0;
    int H = 0, W = 0;
    double *dev = nullptr;
    int64_t off[3] = {0, 0, 0};
};

struct ctx {
    int dev = -1;
    bool ready = false;
    std::mutex mu; /* init, weight cache, scratch, rope tables */
    gpuStream_t stream{};
    gpuDeviceProp props{};
    char name[16] = {0};
    hb_memspace mem{};
    hb_backend table{};
    /* sticky error */
    std::mutex err_mu;
    bool has_err = false;
    char err[HB_ERRMSG_MAX] = {0};
    /* weight cache */
    std::unordered_map<wkey, wentry, wkey_hash> weights;
    size_t weight_bytes = 0;
    size_t peak_used = 0;  /* most device memory in use (total - free) seen after an allocation */
    /* scratch */
    void *scratch[HBG_SCRATCH_SLOTS] = {nullptr};
    size_t scratch_cap[HBG_SCRATCH_SLOTS] = {0};
    /* rope tables, one per head_dim in use */
    rope_entry rope[4];
    int rope_next = 0;
};

ctx g_ctx[MAX_DEVICES];
std::mutex g_init_mu;
bool g_cache_registered = false;
thread_local ctx *t_cur = nullptr;

ctx *cur() {
    if (t_cur) return t_cur;
    for (int i = 0; i < MAX_DEVICES; i++)
        if (g_ctx[i].ready) return &g_ctx[i];
    return nullptr;
}

/* Make device D's context current for this thread. */
template <int D> inline void enter() {
    if (t_cur != &g_ctx[D]) {
        t_cur = &g_ctx[D];
        hbg_check(gpuSetDevice(D), "selecting the device");
    }
}

template <int D, auto F> struct wrap;
template <int D, typename R, typename... A, R (*F)(A...)> struct wrap<D, F> {
    static R call(A... a) {
        enter<D>();
        return F(a...);
    }
};

double mib(size_t b) { return (double)b / (1024.0 * 1024.0); }

/* After an allocation: the device's memory in use (the whole process's, context included) for --verbose. */
void note_usage(ctx *c) {
    size_t fr = 0, tot = 0;
    if (!c || gpuMemGetInfo(&fr, &tot) != gpuSuccess) { (void)gpuGetLastError(); return; }
    if (tot - fr > c->peak_used) c->peak_used = tot - fr;
}

size_t peak_cur() {
    ctx *c = cur();
    return c ? c->peak_used : 0;
}

/* ---------- memory space ---------- */

void *mem_alloc_cur(size_t bytes, const char *what) {
    ctx *c = cur();
    void *p = nullptr;
    gpuError_t e = gpuMalloc(&p, bytes ? bytes : 1);
    if (e == gpuSuccess) { note_usage(c); return p; }
    (void)gpuGetLastError(); /* an allocation failure is not sticky: clear it */
    size_t fr = 0, tot = 0;
    if (gpuMemGetInfo(&fr, &tot) != gpuSuccess) (void)gpuGetLastError();
    hb_error("%s: cannot allocate %.1f MiB on %s (%.1f MiB free of %.1f MiB; %.1f MiB held by cached weights): %s",
             what ? what : "device buffer", mib(bytes), c ? c->name : "the GPU", mib(fr), mib(tot),
             c ? mib(c->weight_bytes) : 0.0, gpuGetErrorString(e));
    return nullptr;
}

void mem_free_cur(void *p) {
    if (p) hbg_check(gpuFree(p), "freeing device memory");
}

/* A copy through the stream, waited for (host buffers can be reused at once). Reports queued errors too. */
int copy_sync(void *dst, const void *src, size_t n, bool up, const char *what) {
    ctx *c = cur();
    if (!c) return hb_error("%s: no GPU context", what);
    gpuError_t e = gpuMemcpyAsync(dst, src, n, up ? gpuMemcpyHostToDevice : gpuMemcpyDeviceToHost, c->stream);
    if (e == gpuSuccess) e = gpuStreamSynchronize(c->stream);
    if (e != gpuSuccess) {
        hbg_check(e, what);
        return hb_error("%s of %zu bytes on %s failed: %s", what, n, c->name, gpuGetErrorString(e));
    }
    return 0;
}

int mem_upload_cur(void *dst, const void *src, size_t n) { return copy_sync(dst, src, n, true, "upload"); }
int mem_download_cur(void *dst, const void *src, size_t n) { return copy_sync(dst, src, n, false, "download"); }

int mem_zero_cur(void *p, size_t n) {
    ctx *c = cur();
    if (!c) return hb_error("device zero: no GPU context");
    gpuError_t e = gpuMemsetAsync(p, 0, n, c->stream);
    if (e != gpuSuccess) {
        hbg_check(e, "zeroing device memory");
        return hb_error("zeroing %zu bytes on %s failed: %s", n, c->name, gpuGetErrorString(e));
    }
    return 0;
}

/* Drop every cached weight of every device whose host bytes overlap [p, p+n). */
void forget_host_all(const void *p, size_t n) {
    const uint8_t *lo = (const uint8_t *)p, *hi = lo + n;
    int prev = -1;
    bool switched = false;
    for (int i = 0; i < MAX_DEVICES; i++) {
        ctx &c = g_ctx[i];
        if (!c.ready) continue;
        std::lock_guard<std::mutex> lk(c.mu);
        bool synced = false;
        for (auto it = c.weights.begin(); it != c.weights.end();) {
            if (it->second.lo < hi && lo < it->second.hi) {
                if (!synced) { /* kernels still queued may read it */
                    if (!switched) {
                        if (gpuGetDevice(&prev) != gpuSuccess) prev = -1;
                        switched = true;
                    }
                    (void)gpuSetDevice(c.dev);
                    (void)gpuStreamSynchronize(c.stream);
                    synced = true;
                }
                (void)gpuFree(it->second.dev);
                c.weight_bytes -= it->second.dev_bytes;
                it = c.weights.erase(it);
            } else {
                ++it;
            }
        }
    }
    if (switched && prev >= 0) (void)gpuSetDevice(prev);
}

int sync_cur() {
    ctx *c = cur();
    if (!c) return 0;
    gpuError_t e = gpuStreamSynchronize(c->stream);
    if (e != gpuSuccess) hbg_check(e, "running the queued GPU work");
    std::lock_guard<std::mutex> lk(c->err_mu);
    if (!c->has_err) return 0;
    c->has_err = false;
    (void)gpuGetLastError();
    return hb_error("%s", c->err);
}

/* ---------- the per-device tables ---------- */

template <int D> void fill_table(ctx &c) {
    c.mem.name = c.name;
    c.mem.is_host = false;
    c.mem.alloc = wrap<D, mem_alloc_cur>::call;
    c.mem.free = wrap<D, mem_free_cur>::call;
    c.mem.upload = wrap<D, mem_upload_cur>::call;
    c.mem.download = wrap<D, mem_download_cur>::call;
    c.mem.zero = wrap<D, mem_zero_cur>::call;
    c.mem.forget_host = forget_host_all;
    c.mem.peak_bytes = wrap<D, peak_cur>::call;

    hb_backend &t = c.table;
    t.name = c.name;
    t.mem = &c.mem;
    t.sync = wrap<D, sync_cur>::call;
#define HB_OP(ret, name, params, args) t.name = wrap<D, hbg_##name>::call;
#include "ops/ops_list.h"
#undef HB_OP
}

template <int... D> void fill_table_any(int d, ctx &c, std::integer_sequence<int, D...>) {
    ((d == D ? fill_table<D>(c) : void()), ...);
}

/* ---------- host-side weight conversion ---------- */

/* Copy the elements of w (any strides) in logical order into dst (contiguous, same dtype). */
void gather_logical(const hb_tensor *w, uint8_t *dst) {
    const size_t es = hb_dtype_size(w->dtype);
    const int nd = w->ndim;
    if (nd == 0 || hb_tensor_is_contiguous(w)) {
        memcpy(dst, w->data, (size_t)hb_tensor_numel(w) * es);
        return;
    }
    const int last = nd - 1;
    const int64_t n = w->shape[last], sl = w->stride[last];
    int64_t rows = 1;
    for (int d = 0; d < last; d++) rows *= w->shape[d];
    const uint8_t *base = (const uint8_t *)w->data;
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, off = 0;
        for (int d = last - 1; d >= 0; d--) {
            off += (rem % w->shape[d]) * w->stride[d];
            rem /= w->shape[d];
        }
        uint8_t *o = dst + (size_t)(r * n) * es;
        if (sl == 1) {
            memcpy(o, base + off * (int64_t)es, (size_t)n * es);
        } else {
            for (int64_t i = 0; i < n; i++) memcpy(o + (size_t)i * es, base + (off + i * sl) * (int64_t)es, es);
        }
    }
}

/* The host bytes a tensor view spans. */
void host_extent(const hb_tensor *w, const uint8_t **lo, const uint8_t **hi) {
    const int64_t es = (int64_t)hb_dtype_size(w->dtype);
    int64_t mn = 0, mx = 0;
    for (int d = 0; d < w->ndim; d++) {
        int64_t span = (w->shape[d] - 1) * w->stride[d];
        if (span < 0) mn += span; else mx += span;
    }
    *lo = (const uint8_t *)w->data + mn * es;
    *hi = (const uint8_t *)w->data + (mx + 1) * es;
}

} // namespace

/* ---------- shared internals (gpu_internal.h) ---------- */

int hbg_device(void) {
    ctx *c = cur();
    return c ? c->dev : -1;
}

gpuStream_t hbg_stream(void) {
    ctx *c = cur();
    return c ? c->stream : gpuStream_t{};
}

const gpuDeviceProp *hbg_props(void) {
    ctx *c = cur();
    return c ? &c->props : nullptr;
}

unsigned hbg_blocks(int64_t n, int threads) {
    if (n <= 0) return 1;
    int64_t b = (n + threads - 1) / threads;
    const gpuDeviceProp *p = hbg_props();
    int64_t cap = (int64_t)(p && p->multiProcessorCount > 0 ? p->multiProcessorCount : 132) * 32;
    return (unsigned)(b < cap ? b : cap);
}

int hbg_fail(const char *fmt, ...) {
    va_list ap;
    ctx *c = cur();
    if (!c) {
        char buf[HB_ERRMSG_MAX];
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        return hb_error("%s", buf);
    }
    std::lock_guard<std::mutex> lk(c->err_mu);
    if (!c->has_err) { /* the first error is the one reported */
        c->has_err = true;
        int k = snprintf(c->err, sizeof c->err, "%s: ", c->name);
        if (k < 0 || k >= (int)sizeof c->err) k = 0;
        va_start(ap, fmt);
        vsnprintf(c->err + k, sizeof c->err - (size_t)k, fmt, ap);
        va_end(ap);
        hb_log(HB_LOG_DEBUG, "%s", c->err);
    }
    return -1;
}

int hbg_check(gpuError_t e, const char *what) {
    if (e == gpuSuccess) return 0;
    return hbg_fail("%s: %s", what, gpuGetErrorString(e));
}

int hbg_upload_sync(void *dst, const void *src, size_t bytes, const char *what) {
    ctx *c = cur();
    if (!c) return hbg_fail("%s: no GPU context", what);
    if (hbg_check(gpuMemcpyAsync(dst, src, bytes, gpuMemcpyHostToDevice, c->stream), what)) return -1;
    return hbg_check(gpuStreamSynchronize(c->stream), what);
}

void *hbg_scratch(int slot, size_t bytes) {
    ctx *c = cur();
    if (!c || slot < 0 || slot >= HBG_SCRATCH_SLOTS) {
        hbg_fail("hbg_scratch: bad slot %d or no GPU context", slot);
        return nullptr;
    }
    std::lock_guard<std::mutex> lk(c->mu);
    if (bytes <= c->scratch_cap[slot] && c->scratch[slot]) return c->scratch[slot];
    size_t want = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1); /* whole MiB */
    if (c->scratch[slot]) {
        hbg_check(gpuStreamSynchronize(c->stream), "waiting before growing a scratch buffer");
        hbg_check(gpuFree(c->scratch[slot]), "freeing a scratch buffer");
        c->scratch[slot] = nullptr;
        c->scratch_cap[slot] = 0;
    }
    void *p = nullptr;
    gpuError_t e = gpuMalloc(&p, want);
    if (e != gpuSuccess) {
        (void)gpuGetLastError();
        size_t fr = 0, tot = 0;
        if (gpuMemGetInfo(&fr, &tot) != gpuSuccess) (void)gpuGetLastError();
        hbg_fail("scratch buffer %d: cannot allocate %.1f MiB (%.1f MiB free of %.1f MiB): %s", slot, mib(want),
                 mib(fr), mib(tot), gpuGetErrorString(e));
        return nullptr;
    }
    c->scratch[slot] = p;
    c->scratch_cap[slot] = want;
    note_usage(c);
    return p;
}

const void *hbg_weight(const hb_tensor *w, hbg_wfmt fmt) {
    ctx *c = cur();
    if (!c) { hbg_fail("hbg_weight: no GPU context"); return nullptr; }
    if (!w || !w->data) { hbg_fail("hbg_weight: missing weight tensor"); return nullptr; }
    if (w->ndim < 0 || w->ndim > HB_MAX_DIMS) { hbg_fail("hbg_weight: bad rank %d", w->ndim); return nullptr; }
    const int64_t n = hb_tensor_numel(w);
    if (n <= 0) { hbg_fail("hbg_weight: empty weight"); return nullptr; }
    wkey k;
    memset(&k, 0, sizeof k);
    k.p = w->data;
    k.dtype = (int)w->dtype;
    k.fmt = (int)fmt;
    k.ndim = w->ndim;
    for (int d = 0; d < w->ndim; d++) { k.shape[d] = w->shape[d]; k.stride[d] = w->stride[d]; }
    {
        std::lock_guard<std::mutex> lk(c->mu);
        auto it = c->weights.find(k);
        if (it != c->weights.end()) return it->second.dev;
    }
    /* Already device memory (a parameter vector the model computed on the device): usable as it is when it
     * is contiguous f32 and f32 is wanted. */
    if (gpuIsDevicePointer(w->data)) {
        if (fmt == HBG_W_F32 && w->dtype == HB_F32 && hb_tensor_is_contiguous(w)) return w->data;
        char sb[96];
        hbg_fail("a %s tensor %s in device memory was passed where a weight is expected: only contiguous F32 "
                 "device tensors can be used as f32 parameters", hb_dtype_name(w->dtype),
                 hb_shape_str(w, sb, sizeof sb));
        return nullptr;
    }
    /* block-quantized (GGUF) weights are dequantized on the host here, exactly as core does, then converted */
    const bool quant = hb_dtype_is_quant(w->dtype) && hb_tensor_is_contiguous(w);
    if (w->dtype != HB_F32 && w->dtype != HB_BF16 && w->dtype != HB_F16 && w->dtype != HB_F64 && !quant) {
        hbg_fail("weight of dtype %s: the GPU backend takes F32, BF16, F16, F64 or contiguous block-quantized "
                 "weights", hb_dtype_name(w->dtype));
        return nullptr;
    }
    /* Convert on the host in logical order, exactly as core's conversions. */
    const size_t es = hb_dtype_size(w->dtype), out_es = fmt == HBG_W_BF16 ? 2 : 4;
    const size_t out_bytes = fmt == HBG_W_FP8 ? hbg_fp8_scale_offset(n) + 16 : (size_t)n * out_es;
    uint8_t *raw = nullptr;
    const uint8_t *src = (const uint8_t *)w->data;
    if (!hb_tensor_is_contiguous(w)) {
        raw = (uint8_t *)malloc((size_t)n * es);
        if (!raw) { hbg_fail("hbg_weight: out of host memory (%.1f MiB)", mib((size_t)n * es)); return nullptr; }
        gather_logical(w, raw);
        src = raw;
    }
    uint8_t *conv = nullptr;
    const uint8_t *up = src;
    if (fmt == HBG_W_FP8) { /* per-tensor e4m3: s = amax / 448, q_i = e4m3(w_i / s), then s (gpu_internal.h) */
        conv = (uint8_t *)calloc(out_bytes + (w->dtype == HB_F32 ? 0 : (size_t)n * 4), 1);
        if (conv) {
            const float *f = (const float *)src;
            if (w->dtype != HB_F32) {
                float *tmp = (float *)(conv + out_bytes);
                hb_convert_to_f32(tmp, src, w->dtype, (size_t)n);
                f = tmp;
            }
            float amax = 0.0f;
            for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(f[i]));
            const float scale = amax > 0.0f && std::isfinite(amax) ? amax / 448.0f : 1.0f;
            for (int64_t i = 0; i < n; i++) conv[i] = hbg_f32_to_e4m3(f[i] / scale);
            memcpy(conv + hbg_fp8_scale_offset(n), &scale, sizeof scale);
        }
        up = conv;
    } else if (fmt == HBG_W_F32 && w->dtype != HB_F32) {
        conv = (uint8_t *)malloc(out_bytes);
        if (conv) hb_convert_to_f32((float *)conv, src, w->dtype, (size_t)n);
        up = conv;
    } else if (fmt == HBG_W_BF16 && w->dtype != HB_BF16) {
        conv = (uint8_t *)malloc(out_bytes + (w->dtype == HB_F32 ? 0 : (size_t)n * 4));
        if (conv) {
            if (w->dtype == HB_F32) {
                hb_convert_from_f32(conv, HB_BF16, (const float *)src, (size_t)n);
            } else { /* F16/F64/block formats -> f32 (exact for F16 and blocks) -> bf16 */
                float *tmp = (float *)(conv + out_bytes);
                hb_convert_to_f32(tmp, src, w->dtype, (size_t)n);
                hb_convert_from_f32(conv, HB_BF16, tmp, (size_t)n);
            }
        }
        up = conv;
    }
    if (!up) {
        free(raw);
        hbg_fail("hbg_weight: out of host memory converting %.1f MiB", mib(out_bytes));
        return nullptr;
    }
    void *dev = nullptr;
    gpuError_t e = gpuMalloc(&dev, out_bytes);
    if (e != gpuSuccess) {
        (void)gpuGetLastError();
        size_t fr = 0, tot = 0;
        if (gpuMemGetInfo(&fr, &tot) != gpuSuccess) (void)gpuGetLastError();
        char sb[96];
        hbg_fail("weight %s (%s): cannot allocate %.1f MiB (%.1f MiB free of %.1f MiB, %.1f MiB held by cached "
                 "weights): %s", hb_shape_str(w, sb, sizeof sb), hb_dtype_name(w->dtype), mib(out_bytes), mib(fr),
                 mib(tot), mib(c->weight_bytes), gpuGetErrorString(e));
        free(raw);
        free(conv);
        return nullptr;
    }
    int rc = hbg_upload_sync(dev, up, out_bytes, "uploading a weight");
    free(raw);
    free(conv);
    if (rc) {
        (void)gpuFree(dev);
        return nullptr;
    }
    wentry ent;
    ent.dev = dev;
    host_extent(w, &ent.lo, &ent.hi);
    ent.dev_bytes = out_bytes;
    std::lock_guard<std::mutex> lk(c->mu);
    auto ins = c->weights.emplace(k, ent);
    if (!ins.second) { /* another thread uploaded it meanwhile */
        (void)gpuFree(dev);
        return ins.first->second.dev;
    }
    c->weight_bytes += out_bytes;
    note_usage(c);
    return dev;
}

const double *hbg_rope_table(int d, int64_t f_lo, int64_t f_hi, int H, int W, int64_t off[3]) {
    ctx *c = cur();
    if (!c) { hbg_fail("hbg_rope_table: no GPU context"); return nullptr; }
    std::lock_guard<std::mutex> lk(c->mu);
    rope_entry *e = nullptr;
    for (auto &r : c->rope)
        if (r.d == d) { e = &r; break; }
    if (e && e->f_lo <= f_lo && f_hi <= e->f_hi && H <= e->H && W <= e->W) {
        for (int a = 0; a < 3; a++) off[a] = e->off[a];
        return e->dev;
    }
    /* Build (or grow) the table: frames [lo, hi), rows [0, H), cols [0, W), with room to spare for the frame
     * axis (causal generation moves f0 forward chunk by chunk). */
    int64_t lo = f_lo, hi = f_hi;
    int hh = H, ww = W;
    if (e) {
        lo = e->f_lo < lo ? e->f_lo : lo;
        hi = e->f_hi > hi ? e->f_hi : hi;
        hh = e->H > hh ? e->H : hh;
        ww = e->W > ww ? e->W : ww;
        if (hi > e->f_hi) hi += hi - lo; /* grow geometrically */
    } else {
        e = &c->rope[c->rope_next];
        c->rope_next = (c->rope_next + 1) % 4;
    }
    const int cp = d / 2, np[3] = {cp - 2 * (cp / 3), cp / 3, cp / 3};
    const int64_t npos[3] = {hi - lo, hh, ww};
    int64_t base[3], total = 0;
    for (int a = 0; a < 3; a++) { base[a] = total; total += npos[a] * np[a]; }
    double *host = (double *)malloc(sizeof(double) * 2 * (size_t)(total > 0 ? total : 1));
    if (!host) { hbg_fail("hb_rope3d: out of host memory for the table"); return nullptr; }
    for (int a = 0; a < 3; a++) {
        const int64_t p0 = a == 0 ? lo : 0;
        for (int64_t p = 0; p < npos[a]; p++)
            for (int j = 0; j < np[a]; j++) {
                double inv = 1.0 / pow(10000.0, (double)(2 * j) / (double)(2 * np[a]));
                double ang = (double)(p0 + p) * inv;
                double *t = host + 2 * (base[a] + p * np[a] + j);
                t[0] = cos(ang);
                t[1] = sin(ang);
            }
    }
    void *dev = nullptr;
    size_t bytes = sizeof(double) * 2 * (size_t)(total > 0 ? total : 1);
    if (hbg_check(gpuMalloc(&dev, bytes), "allocating the RoPE table")) {
        (void)gpuGetLastError();
        free(host);
        return nullptr;
    }
    int rc = hbg_upload_sync(dev, host, bytes, "uploading the RoPE table");
    free(host);
    if (rc) { (void)gpuFree(dev); return nullptr; }
    if (e->dev) { /* queued kernels may still read the old table */
        hbg_check(gpuStreamSynchronize(c->stream), "waiting before replacing a RoPE table");
        (void)gpuFree(e->dev);
    }
    e->d = d;
    e->f_lo = lo;
    e->f_hi = hi;
    e->H = hh;
    e->W = ww;
    e->dev = (double *)dev;
    e->off[0] = base[0] - lo * np[0];
    e->off[1] = base[1];
    e->off[2] = base[2];
    for (int a = 0; a < 3; a++) off[a] = e->off[a];
    return e->dev;
}

/* ---------- "cuda", "cuda:N", "hip", "gpu" ---------- */

const hb_backend *hb__backend_gpu(const char *device) {
    const char *spec = device ? device : "cuda";
    const char *colon = strchr(spec, ':');
    long want = 0;
    if (colon) {
        char *end = nullptr;
        want = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || want < 0) {
            hb_error("device '%s': expected cuda, cuda:N, hip or gpu", spec);
            return nullptr;
        }
    }
    int count = 0;
    gpuError_t e = gpuGetDeviceCount(&count);
    if (e != gpuSuccess) {
        (void)gpuGetLastError();
        hb_error("device '%s': no " GPU_API_NAME " device found: %s", spec, gpuGetErrorString(e));
        return nullptr;
    }
    if (count <= 0) {
        hb_error("device '%s': no " GPU_API_NAME " device found: the runtime reports 0 devices", spec);
        return nullptr;
    }
    if (want >= count) {
        if (count == 1)
            hb_error("device '%s': only 1 " GPU_API_NAME " device is present (use device 0)", spec);
        else
            hb_error("device '%s': only %d " GPU_API_NAME " devices are present (devices 0 to %d)", spec, count,
                     count - 1);
        return nullptr;
    }
    if (want >= MAX_DEVICES) {
        hb_error("device '%s': this build handles devices 0 to %d", spec, MAX_DEVICES - 1);
        return nullptr;
    }
    std::lock_guard<std::mutex> lk(g_init_mu);
    ctx &c = g_ctx[want];
    if (c.ready) return &c.table;
    int prev = -1;
    if (gpuGetDevice(&prev) != gpuSuccess) { (void)gpuGetLastError(); prev = -1; }
    e = gpuSetDevice((int)want);
    if (e == gpuSuccess) e = gpuGetDeviceProperties(&c.props, (int)want);
    if (e == gpuSuccess) e = gpuStreamCreate(&c.stream);
    if (e != gpuSuccess) {
        (void)gpuGetLastError();
        if (prev >= 0) (void)gpuSetDevice(prev);
        hb_error("device '%s': cannot initialise " GPU_API_NAME " device %ld: %s", spec, want, gpuGetErrorString(e));
        return nullptr;
    }
    if (prev >= 0 && prev != (int)want) (void)gpuSetDevice(prev);
    t_cur = nullptr; /* the next op sets this thread's device */
    c.dev = (int)want;
    snprintf(c.name, sizeof c.name, "%s:%d", GPU_API_NAME[0] == 'C' ? "cuda" : "hip", (int)want);
    fill_table_any((int)want, c, std::make_integer_sequence<int, MAX_DEVICES>{});
    c.ready = true;
    if (!g_cache_registered) { /* one registration: its forget_host covers every device */
        hb_memspace_register_cache(&c.mem);
        g_cache_registered = true;
    }
    hb_log(HB_LOG_DEBUG, "%s: %s, %d SMs, %.1f GiB, compute capability %d.%d", c.name, c.props.name,
           c.props.multiProcessorCount, (double)c.props.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), c.props.major,
           c.props.minor);
    return &c.table;
}
