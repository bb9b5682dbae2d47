/* CPU GPU emulator (HB_GPU_EMU): runtime, fiber scheduler, wmma, cuBLASLt. See hb_gpu_emu.h. */
#include "hb_gpu_emu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
/* Fibers: a minimal x86-64 stack switch (callee-saved registers only: no signal-mask system call, unlike
 * swapcontext, which made wmma-heavy kernels 20x slower); ucontext elsewhere and under AddressSanitizer. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define EMU_UCONTEXT 0
extern "C" void emu_ctx_switch(void **save_sp, void *load_sp);
asm(".text\n"
    ".globl emu_ctx_switch\n"
    ".type emu_ctx_switch,@function\n"
    "emu_ctx_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_ctx_switch,.-emu_ctx_switch\n");
#else
#define EMU_UCONTEXT 1
#include <ucontext.h>
#endif

#include <chrono>
#include <map>
#include <mutex>
#include <vector>

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {

constexpr size_t SMEM_OPTIN = 227 * 1024, SMEM_DEFAULT = 48 * 1024;
constexpr size_t STACK_BYTES = 256 * 1024;
constexpr size_t TOTAL_MEM = (size_t)80 << 30;

/* ---------- errors ---------- */
cudaError_t g_last = cudaSuccess; /* sticky until cudaGetLastError */
char g_msg[512];

void set_err(cudaError_t e) {
    if (g_last == cudaSuccess) g_last = e;
}

/* ---------- device memory ---------- */
std::mutex g_mem_mu;
std::map<uintptr_t, size_t> g_allocs;
size_t g_alloc_bytes;

/* ---------- scheduler ---------- */
struct barrier {
    unsigned arrived = 0, gen = 0;
};
struct fiber {
#if EMU_UCONTEXT
    ucontext_t ctx;
#else
    void *sp = nullptr; /* saved stack pointer (emu_ctx_switch) */
#endif
    char *stack = nullptr;
    bool done = false;
    uint3 tid;
    unsigned linear = 0;
    size_t smem_off = 0; /* static shared bump pointer */
};
std::mutex g_launch_mu;
#if EMU_UCONTEXT
ucontext_t g_sched;
#else
void *g_sched_sp;
#endif
std::vector<fiber> g_fibers;
fiber *g_cur = nullptr;
const std::function<void()> *g_body = nullptr;
barrier g_block_bar;
std::vector<barrier> g_warp_bar;
std::vector<uint64_t> g_xbuf;      /* 32 slots per warp */
std::vector<unsigned> g_warp_done; /* finished threads per warp */
unsigned g_nthreads = 0, g_block_done = 0;
unsigned long g_progress = 0;
bool g_abort = false; /* a divergence was found: stop this block */
struct smem_arena { /* 1 KiB aligned like the GPU's shared window (std::vector gives only 16 bytes) */
    unsigned char *p = nullptr;
    size_t n = 0;
    unsigned char *data() { return p; }
    size_t size() const { return n; }
    void assign(size_t bytes, unsigned char v) {
        if (bytes > n) {
            free(p);
            n = (bytes + 1023) & ~(size_t)1023;
            p = (unsigned char *)aligned_alloc(1024, n);
        }
        memset(p, v, n);
    }
} g_smem;
size_t g_static_bytes = 0, g_dyn_off = 0, g_dyn_bytes = 0;
std::map<const void *, int> g_func_smem;
const char *g_kernel_what = "";

void fiber_main() {
    (*g_body)();
    g_cur->done = true;
    g_progress++;
#if !EMU_UCONTEXT
    emu_ctx_switch(&g_cur->sp, g_sched_sp); /* never resumed */
    abort();
#endif
    /* ucontext: returns to g_sched through uc_link */
}

void resume(fiber &f) {
#if EMU_UCONTEXT
    swapcontext(&g_sched, &f.ctx);
#else
    emu_ctx_switch(&g_sched_sp, f.sp);
#endif
}

/* (its own function: getcontext returns twice, which must not touch the launch loop's variables) */
__attribute__((noinline)) void fiber_init(fiber &f, unsigned t, dim3 block) {
    if (!f.stack) f.stack = (char *)malloc(STACK_BYTES);
#if EMU_UCONTEXT
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK_BYTES;
    f.ctx.uc_link = &g_sched;
    makecontext(&f.ctx, fiber_main, 0);
#else
    /* initial frame: 6 saved registers, then emu_ctx_switch's ret into fiber_main, which sees a call frame */
    void **sp = (void **)(((uintptr_t)(f.stack + STACK_BYTES)) & ~(uintptr_t)15);
    *--sp = nullptr;                          /* fiber_main's return address (never used) */
    *--sp = reinterpret_cast<void *>(&fiber_main);
    for (int i = 0; i < 6; i++) *--sp = nullptr;
    f.sp = sp;
#endif
    f.done = false;
    f.linear = t;
    f.tid = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
    f.smem_off = 0;
}

void yield() {
#if EMU_UCONTEXT
    swapcontext(&g_cur->ctx, &g_sched);
#else
    emu_ctx_switch(&g_cur->sp, g_sched_sp);
#endif
}

void wait_bar(barrier &b, unsigned size) {
    g_progress++;
    unsigned my = b.gen;
    if (++b.arrived >= size) {
        b.arrived = 0;
        b.gen++;
        return;
    }
    while (b.gen == my) {
        yield();
        if (g_abort) { /* abandoned: park forever */
            for (;;) yield();
        }
    }
}

unsigned warp_size_of(unsigned w) {
    unsigned n = g_nthreads - w * 32;
    return n < 32 ? n : 32;
}

} // namespace

void emu_fail(const char *fmt, ...) {
    if (g_last == cudaSuccess) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g_msg, sizeof g_msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "gpu-emu: %s\n", g_msg);
    }
    set_err(cudaErrorLaunchFailure);
}

unsigned emu_lane(void) { return g_cur->linear % 32; }

void emu_sync_block(void) {
    if (g_block_done) {
        emu_fail("__syncthreads reached while %u thread(s) of the block have exited (block %u,%u,%u)", g_block_done,
                 blockIdx.x, blockIdx.y, blockIdx.z);
        g_abort = true;
        for (;;) yield();
    }
    wait_bar(g_block_bar, g_nthreads);
}

void emu_sync_warp(void) {
    unsigned w = g_cur->linear / 32;
    if (g_warp_done[w]) {
        emu_fail("a warp-synchronous call (__syncwarp/shuffle/wmma) reached while %u lane(s) of warp %u exited",
                 g_warp_done[w], w);
        g_abort = true;
        for (;;) yield();
    }
    wait_bar(g_warp_bar[w], warp_size_of(w));
}

uint64_t *emu_warp_xbuf(void) { return &g_xbuf[(g_cur->linear / 32) * 32]; }

void *emu_smem_static(size_t bytes, size_t align) {
    size_t off = (g_cur->smem_off + align - 1) / align * align;
    g_cur->smem_off = off + bytes;
    if (off + bytes > g_static_bytes) {
        /* first thread to declare it: static shared memory grows (the dynamic region follows it) */
        g_static_bytes = off + bytes;
        if (g_static_bytes > SMEM_DEFAULT) emu_fail("%s: %zu bytes of static shared memory (> 48 KiB)", g_kernel_what,
                                                    g_static_bytes);
        if (g_static_bytes + g_dyn_bytes > SMEM_OPTIN)
            emu_fail("%s: static + dynamic shared memory %zu + %zu bytes > 227 KiB", g_kernel_what, g_static_bytes,
                     g_dyn_bytes);
    }
    return g_smem.data() + off;
}

void *emu_smem_dynamic(void) { return g_smem.data() + g_dyn_off; }

bool emu_is_device(const void *p, size_t bytes) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    auto it = g_allocs.upper_bound((uintptr_t)p);
    if (it == g_allocs.begin()) return false;
    --it;
    return (uintptr_t)p >= it->first && (uintptr_t)p + bytes <= it->first + it->second;
}

void emu_cp_async16(void *dst, const void *src, bool valid) {
    if (((uintptr_t)dst & 15) || (valid && ((uintptr_t)src & 15)))
        emu_fail("cp.async 16: misaligned address (dst %p, src %p)", dst, src);
    uintptr_t lo = (uintptr_t)g_smem.data(), d = (uintptr_t)dst;
    if (d < lo || d + 16 > lo + g_smem.size()) emu_fail("cp.async 16: destination %p is not shared memory", dst);
    if (valid) memcpy(dst, src, 16);
    else memset(dst, 0, 16);
}

void emu_launch(const void *kernel, dim3 grid, dim3 block, size_t dyn_smem, cudaStream_t,
                const std::function<void()> &fn) {
    std::lock_guard<std::mutex> lk(g_launch_mu);
    const unsigned nt = block.x * block.y * block.z;
    if (!grid.x || !grid.y || !grid.z || !nt || nt > 1024 || block.z > 64 || grid.y > 65535 || grid.z > 65535 ||
        grid.x > 0x7fffffffu) {
        emu_fail("invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)", grid.x, grid.y, grid.z, block.x,
                 block.y, block.z);
        set_err(cudaErrorInvalidConfiguration);
        return;
    }
    if (dyn_smem > SMEM_DEFAULT) {
        auto it = g_func_smem.find(kernel);
        if (it == g_func_smem.end() || (size_t)it->second < dyn_smem) {
            emu_fail("launch with %zu bytes of dynamic shared memory without cudaFuncSetAttribute opt-in (%d)",
                     dyn_smem, it == g_func_smem.end() ? 0 : it->second);
            set_err(cudaErrorInvalidValue);
            return;
        }
    }
    if (dyn_smem > SMEM_OPTIN) {
        emu_fail("dynamic shared memory %zu bytes > 227 KiB", dyn_smem);
        return;
    }
    static const bool g_reverse = [] {
        const char *e = getenv("HB_GPU_EMU_REVERSE");
        return e && *e && strcmp(e, "0") != 0;
    }();
    gridDim = grid;
    blockDim = block;
    g_nthreads = nt;
    g_body = &fn;
    if (g_fibers.size() < nt) g_fibers.resize(nt);
    const unsigned nw = (nt + 31) / 32;
    g_warp_bar.assign(nw, barrier());
    g_xbuf.assign((size_t)nw * 32, 0);
    g_warp_done.assign(nw, 0);
    /* shared arena: static part (discovered as threads declare it; 48 KiB at most) then the dynamic part */
    g_dyn_bytes = dyn_smem;
    g_static_bytes = 0;
    g_dyn_off = SMEM_DEFAULT;
    g_smem.assign(SMEM_DEFAULT + dyn_smem + 16, 0xff);
    g_abort = false;
    for (unsigned iz = 0; iz < grid.z && !g_abort; iz++)
        for (unsigned iy = 0; iy < grid.y && !g_abort; iy++)
            for (unsigned ix = 0; ix < grid.x && !g_abort; ix++) {
                const unsigned bx = g_reverse ? grid.x - 1 - ix : ix, by = g_reverse ? grid.y - 1 - iy : iy,
                               bz = g_reverse ? grid.z - 1 - iz : iz;
                blockIdx = uint3{bx, by, bz};
                memset(g_smem.data(), 0xff, g_smem.size()); /* poison: uninitialised shared reads give NaN */
                g_block_bar = barrier();
                for (auto &b : g_warp_bar) b = barrier();
                for (auto &d : g_warp_done) d = 0;
                g_block_done = 0;
                for (unsigned t = 0; t < nt; t++) fiber_init(g_fibers[t], t, block);
                unsigned left = nt;
                while (left && !g_abort) {
                    unsigned long before = g_progress;
                    for (unsigned i = 0; i < nt && !g_abort; i++) {
                        const unsigned t = g_reverse ? nt - 1 - i : i;
                        fiber &f = g_fibers[t];
                        if (f.done) continue;
                        g_cur = &f;
                        threadIdx = f.tid;
                        resume(f);
                        if (f.done) {
                            left--;
                            g_block_done++;
                            g_warp_done[t / 32]++;
                        }
                    }
                    if (left && g_progress == before && !g_abort) {
                        emu_fail("block (%u,%u,%u): threads wait at a barrier that the others never reach", bx, by,
                                 bz);
                        g_abort = true;
                    }
                }
                /* a barrier completed by threads that exit right after it can leave waiters parked: fine */
            }
    g_cur = nullptr;
    if (g_abort) {
        /* parked fibers are abandoned (their stacks are reused by the next launch) */
    }
}

/* ---------- runtime API ---------- */
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument (emulator)";
    case cudaErrorMemoryAllocation: return "out of memory (emulator)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulator)";
    case cudaErrorLaunchFailure: return g_msg[0] ? g_msg : "launch failure (emulator)";
    default: return "emulated error";
    }
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : (set_err(cudaErrorInvalidDevice), cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "NVIDIA H100 (CPU emulator)");
    p->totalGlobalMem = TOTAL_MEM;
    p->sharedMemPerBlock = SMEM_DEFAULT;
    p->sharedMemPerBlockOptin = SMEM_OPTIN;
    p->sharedMemPerMultiprocessor = 228 * 1024;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->multiProcessorCount = 132;
    p->major = 9;
    p->minor = 0;
    p->regsPerBlock = 65536;
    p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n) {
    size_t r = (n + 255) & ~(size_t)255;
    if (!r) r = 256;
    std::lock_guard<std::mutex> lk(g_mem_mu);
    /* exactly n bytes (256-aligned like cudaMalloc), so that AddressSanitizer builds see overruns */
    if (g_alloc_bytes + r > TOTAL_MEM || posix_memalign(p, 256, n ? n : 1)) {
        *p = nullptr;
        set_err(cudaErrorMemoryAllocation);
        return cudaErrorMemoryAllocation;
    }
    memset(*p, 0xff, n); /* poison: device memory is not zeroed */
    g_allocs[(uintptr_t)*p] = n; /* exact size: copies past the requested bytes are reported */
    g_alloc_bytes += r;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    std::lock_guard<std::mutex> lk(g_mem_mu);
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end()) {
        fprintf(stderr, "gpu-emu: cudaFree of %p, not a device allocation\n", p);
        set_err(cudaErrorInvalidValue);
        return cudaErrorInvalidValue;
    }
    g_alloc_bytes -= (it->second + 255) & ~(size_t)255;
    g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}
static cudaError_t bad_copy(const char *what, const void *p, size_t n) {
    fprintf(stderr, "gpu-emu: %s: %p (+%zu bytes) is not inside one device allocation\n", what, p, n);
    set_err(cudaErrorInvalidValue);
    return cudaErrorInvalidValue;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k) { return cudaMemcpyAsync(d, s, n, k, nullptr); }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t) {
    if (!n) return cudaSuccess;
    bool dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
    bool sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    if (dd && !emu_is_device(d, n)) return bad_copy("cudaMemcpy destination", d, n);
    if (sd && !emu_is_device(s, n)) return bad_copy("cudaMemcpy source", s, n);
    if (!dd && k != cudaMemcpyDefault && emu_is_device(d, 1)) return bad_copy("cudaMemcpy host destination is device memory;", d, n);
    if (!sd && k != cudaMemcpyDefault && emu_is_device(s, 1)) return bad_copy("cudaMemcpy host source is device memory;", s, n);
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) {
    if (!n) return cudaSuccess;
    if (!emu_is_device(d, n)) return bad_copy("cudaMemset", d, n);
    memset(d, v, n);
    return cudaSuccess;
}
struct emu_stream { int unused; };
struct emu_event { std::chrono::steady_clock::time_point t; };
cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = new emu_stream(); return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new emu_event(); return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) { e->t = std::chrono::steady_clock::now(); return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *fr, size_t *tot) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    *tot = TOTAL_MEM;
    *fr = TOTAL_MEM - g_alloc_bytes;
    return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p) {
    memset(a, 0, sizeof *a);
    bool dev = emu_is_device(p, 1);
    a->type = dev ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
    a->device = dev ? 0 : -2;
    a->devicePointer = dev ? const_cast<void *>(p) : nullptr;
    return cudaSuccess;
}
cudaError_t emu_func_set_attribute(const void *f, cudaFuncAttribute a, int v) {
    if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || (size_t)v > SMEM_OPTIN) {
        set_err(cudaErrorInvalidValue);
        return cudaErrorInvalidValue;
    }
    std::lock_guard<std::mutex> lk(g_launch_mu);
    g_func_smem[f] = v;
    return cudaSuccess;
}

/* ---------- wmma ---------- */
namespace nvcuda {
namespace wmma {
void emu_wmma_check(const void *p, unsigned ldm, size_t esize, const char *what) {
    if ((uintptr_t)p % 32) emu_fail("wmma %s: pointer %p is not 32-byte (256-bit) aligned", what, p);
    if ((ldm * esize) % 16) emu_fail("wmma %s: ldm %u is not a multiple of 16 bytes", what, ldm);
}
void emu_wmma_mma(float *d, const __nv_bfloat16 *a, const __nv_bfloat16 *b, const float *c) {
    /* every lane publishes its fragments, then computes its own 8 results from the whole warp's */
    struct frags { const __nv_bfloat16 *a, *b; };
    static std::vector<frags> table;
    const unsigned w = g_cur->linear / 32, lane = emu_lane();
    emu_sync_warp();
    if (table.size() < (size_t)(w + 1) * 32) table.resize((size_t)(w + 1) * 32);
    table[w * 32 + lane] = frags{a, b};
    emu_sync_warp();
    float out[8];
    for (int i = 0; i < 8; i++) {
        unsigned e = lane * 8 + (unsigned)i, r = e / 16, n = e % 16;
        float s = c[i];
        for (unsigned k = 0; k < 16; k++) {
            unsigned ea = r * 16 + k, eb = k * 16 + n;
            float av = (float)table[w * 32 + ea / 8].a[ea % 8], bv = (float)table[w * 32 + eb / 8].b[eb % 8];
            s += av * bv; /* the product of two bf16 is exact in f32 */
        }
        out[i] = s;
    }
    emu_sync_warp(); /* every lane has read the others' fragments */
    for (int i = 0; i < 8; i++) d[i] = out[i];
}
} // namespace wmma
} // namespace nvcuda

/* ---------- cuBLASLt ---------- */
struct emu_lt_handle { int unused; };
struct emu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
    uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = nullptr;
    const void *scale_ptr[2] = {nullptr, nullptr}; /* A, B (fp8) */
    int8_t fast_accum = 0;
};
struct emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct emu_lt_pref {
    uint64_t ws = 0;
    uint32_t al[4] = {256, 256, 256, 256}; /* A, B, C, D: cuBLASLt's default minimum alignment is 256 bytes */
};

static cublasStatus_t lt_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static cublasStatus_t lt_bad(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gpu-emu cuBLASLt: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { *h = new emu_lt_handle(); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t ct, cudaDataType_t scale) {
    if (ct != CUBLAS_COMPUTE_32F && ct != CUBLAS_COMPUTE_32F_FAST_TF32) return lt_bad("compute type %d", (int)ct);
    *d = new emu_lt_desc();
    (*d)->compute = ct;
    (*d)->scale = scale;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a,
                                              const void *buf, size_t size) {
    switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB: {
        if (size != sizeof(int32_t)) return lt_bad("TRANSA/B attribute of %zu bytes (int32_t expected)", size);
        int32_t v;
        memcpy(&v, buf, 4);
        if (v != CUBLAS_OP_N && v != CUBLAS_OP_T) return lt_bad("transpose %d", v);
        (a == CUBLASLT_MATMUL_DESC_TRANSA ? d->transa : d->transb) = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        if (size != sizeof(uint32_t)) return lt_bad("EPILOGUE attribute of %zu bytes (uint32_t expected)", size);
        memcpy(&d->epilogue, buf, 4);
        if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS)
            return lt_bad("epilogue %u not emulated", d->epilogue);
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        if (size != sizeof(void *)) return lt_bad("BIAS_POINTER attribute of %zu bytes", size);
        memcpy(&d->bias, buf, sizeof(void *));
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_A_SCALE_POINTER:
    case CUBLASLT_MATMUL_DESC_B_SCALE_POINTER:
        if (size != sizeof(void *)) return lt_bad("A/B_SCALE_POINTER attribute of %zu bytes", size);
        memcpy(&d->scale_ptr[a == CUBLASLT_MATMUL_DESC_B_SCALE_POINTER], buf, sizeof(void *));
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_FAST_ACCUM:
        if (size != sizeof(int8_t)) return lt_bad("FAST_ACCUM attribute of %zu bytes (int8_t expected)", size);
        memcpy(&d->fast_accum, buf, 1);
        return CUBLAS_STATUS_SUCCESS;
    }
    return lt_bad("matmul attribute %d not emulated", (int)a);
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (t != CUDA_R_32F && t != CUDA_R_16BF && t != CUDA_R_8F_E4M3) return lt_bad("data type %d", (int)t);
    *l = new emu_lt_layout{t, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new emu_lt_pref();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { delete p; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t a, const void *buf,
                                                    size_t size) {
    if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (size != sizeof(uint64_t)) return lt_bad("MAX_WORKSPACE_BYTES of %zu bytes (uint64_t expected)", size);
        memcpy(&p->ws, buf, 8);
        return CUBLAS_STATUS_SUCCESS;
    }
    if (a >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && a <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
        if (size != sizeof(uint32_t)) return lt_bad("MIN_ALIGNMENT of %zu bytes (uint32_t expected)", size);
        memcpy(&p->al[a - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, 4);
        return CUBLAS_STATUS_SUCCESS;
    }
    return lt_bad("preference attribute %d not emulated", (int)a);
}

/* op(X) dimensions of a stored (column-major) layout */
static void op_dims(const emu_lt_layout *l, int32_t trans, uint64_t *r, uint64_t *c) {
    *r = trans == CUBLAS_OP_T ? l->cols : l->rows;
    *c = trans == CUBLAS_OP_T ? l->rows : l->cols;
}
static cublasStatus_t lt_check(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                               cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl) {
    uint64_t am, ak, bk, bn;
    op_dims(a, d->transa, &am, &ak);
    op_dims(b, d->transb, &bk, &bn);
    if (ak != bk) return lt_bad("op(A) is %llux%llu, op(B) %llux%llu: inner dimensions differ", (unsigned long long)am,
                                (unsigned long long)ak, (unsigned long long)bk, (unsigned long long)bn);
    if (dl->rows != am || dl->cols != bn || c->rows != am || c->cols != bn)
        return lt_bad("D is %llux%llu (C %llux%llu), op(A) op(B) is %llux%llu", (unsigned long long)dl->rows,
                      (unsigned long long)dl->cols, (unsigned long long)c->rows, (unsigned long long)c->cols,
                      (unsigned long long)am, (unsigned long long)bn);
    for (auto *l : {a, b, c, dl})
        if (l->ld < (int64_t)l->rows || l->ld < 1)
            return lt_bad("leading dimension %lld < rows %llu (column-major)", (long long)l->ld,
                          (unsigned long long)l->rows);
    if (a->type != b->type) return lt_bad("A and B types differ");
    if (c->type != CUDA_R_32F || dl->type != CUDA_R_32F) return lt_bad("C/D must be f32 here");
    if (d->scale != CUDA_R_32F) return lt_bad("scale type must be f32 for COMPUTE_32F");
    if (d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a->type != CUDA_R_32F) return lt_bad("TF32 compute with bf16 A/B");
    if (a->type == CUDA_R_8F_E4M3) { /* cuBLASLt's fp8 requirements (cublasLtMatmul documentation) */
        if (d->transa != CUBLAS_OP_T || d->transb != CUBLAS_OP_N) return lt_bad("fp8 needs the TN layout");
        if (d->compute != CUBLAS_COMPUTE_32F) return lt_bad("fp8 needs COMPUTE_32F");
        if (a->ld % 16 || b->ld % 16 || c->ld % 4 || dl->ld % 4)
            return lt_bad("fp8: leading dimensions %lld/%lld/%lld are not multiples of 16 bytes", (long long)a->ld,
                          (long long)b->ld, (long long)dl->ld);
        if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT) return lt_bad("fp8 bias epilogue not emulated");
    } else if (d->scale_ptr[0] || d->scale_ptr[1] || d->fast_accum) {
        return lt_bad("A/B scale pointers or FAST_ACCUM set for a non-fp8 matmul");
    }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t *res, int *count) {
    if (!h || !d || !a || !b || !c || !dl || !p || requested < 1 || !res || !count) return lt_bad("heuristic arguments");
    *count = 0;
    cublasStatus_t s = lt_check(d, a, b, c, dl);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    memset(&res[0], 0, sizeof res[0]);
    res[0].algo.data[0] = 0x454d55; /* "EMU" */
    for (int i = 0; i < 4; i++) res[0].algo.data[1 + i] = p->al[i];
    res[0].algo.data[5] = p->ws;
    res[0].state = CUBLAS_STATUS_SUCCESS;
    res[0].wavesCount = 1.0f;
    *count = 1;
    return CUBLAS_STATUS_SUCCESS;
}
/* e4m3 ("fn": bias 7, no infinities, S.1111.111 NaN) to its exact value */
static float e4m3_value(uint8_t b) {
    const int e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) return NAN;
    const float v = e == 0 ? ldexpf((float)m, -9) : ldexpf((float)(8 + m), e - 10);
    return (b & 0x80) ? -v : v;
}
static float tf32(float x) { /* round to 10 mantissa bits, nearest even */
    unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    u += 0xfffu + ((u >> 13) & 1u);
    return __uint_as_float(u & ~0x1fffu);
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes, cudaStream_t) {
    if (!h || !d || !alpha || !beta) return lt_bad("matmul arguments");
    cublasStatus_t s = lt_check(d, la, lb, lc, ld);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (!algo || algo->data[0] != 0x454d55) return lt_bad("algorithm not from the heuristic");
    uint64_t m, k, k2, n;
    op_dims(la, d->transa, &m, &k);
    op_dims(lb, d->transb, &k2, &n);
    const size_t ea = la->type == CUDA_R_32F ? 4 : la->type == CUDA_R_8F_E4M3 ? 1 : 2;
    const bool fp8 = la->type == CUDA_R_8F_E4M3;
    /* every operand must be device memory spanning its layout, aligned as the preferences promised */
    auto span = [](const emu_lt_layout *l, size_t es) { return ((size_t)(l->cols - 1) * (size_t)l->ld + l->rows) * es; };
    const void *ptr[4] = {A, B, C, D};
    const emu_lt_layout *lay[4] = {la, lb, lc, ld};
    const size_t es[4] = {ea, ea, 4, 4};
    const float al = *(const float *)alpha, be = *(const float *)beta;
    for (int i = 0; i < 4; i++) {
        if (i == 2 && be == 0.0f) continue; /* C is not read when beta == 0 */
        if (!emu_is_device(ptr[i], span(lay[i], es[i])))
            return lt_bad("matrix %c (%p, %llux%llu ld %lld) is not inside one device allocation", "ABCD"[i], ptr[i],
                          (unsigned long long)lay[i]->rows, (unsigned long long)lay[i]->cols, (long long)lay[i]->ld);
        uint64_t need = algo->data[1 + i];
        if ((uintptr_t)ptr[i] % need)
            return lt_bad("matrix %c at %p is not aligned to the %llu bytes promised to the heuristic", "ABCD"[i],
                          ptr[i], (unsigned long long)need);
    }
    if (ws_bytes > 0 && !emu_is_device(ws, ws_bytes)) return lt_bad("workspace is not device memory");
    float sab = 1.0f; /* fp8: the A and B scales (device floats, 1 when NULL) */
    for (int i = 0; fp8 && i < 2; i++) {
        if ((uintptr_t)ptr[i] % 16) return lt_bad("fp8 matrix %c at %p is not 16-byte aligned", "AB"[i], ptr[i]);
        if (!d->scale_ptr[i]) continue;
        if (!emu_is_device(d->scale_ptr[i], sizeof(float)) || (uintptr_t)d->scale_ptr[i] % sizeof(float))
            return lt_bad("%c scale pointer %p is not an aligned device float", "AB"[i], d->scale_ptr[i]);
        sab *= *(const float *)d->scale_ptr[i];
    }
    const bool bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS;
    if (bias && (!d->bias || !emu_is_device(d->bias, m * 4)))
        return lt_bad("BIAS epilogue: the bias pointer %p does not hold m = %llu floats of device memory", d->bias,
                      (unsigned long long)m);
    const bool t32 = d->compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    auto get = [&](const void *p, const emu_lt_layout *l, int32_t tr, uint64_t i, uint64_t j) {
        /* element (i, j) of op(X), X column-major with leading dimension ld */
        uint64_t r = tr == CUBLAS_OP_T ? j : i, c = tr == CUBLAS_OP_T ? i : j;
        size_t idx = (size_t)r + (size_t)c * (size_t)l->ld;
        float v = l->type == CUDA_R_32F       ? ((const float *)p)[idx]
                  : l->type == CUDA_R_8F_E4M3 ? e4m3_value(((const uint8_t *)p)[idx])
                                              : (float)((const __nv_bfloat16 *)p)[idx];
        return t32 ? tf32(v) : v;
    };
    /* op(A) as m rows of k and op(B)^T as n rows of k (f32, TF32-rounded when asked), then plain dot products */
    std::vector<float> Ar(m * k), Bt(n * k);
    for (uint64_t i = 0; i < m; i++)
        for (uint64_t q = 0; q < k; q++) Ar[i * k + q] = get(A, la, d->transa, i, q);
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t q = 0; q < k; q++) Bt[j * k + q] = get(B, lb, d->transb, q, j);
    for (uint64_t j = 0; j < n; j++) {
        const float *bj = &Bt[j * k];
        for (uint64_t i = 0; i < m; i++) {
            const float *ai = &Ar[i * k];
            float acc = 0.0f;
            for (uint64_t q = 0; q < k; q++) acc += ai[q] * bj[q];
            float v = fp8 ? al * (sab * acc) : al * acc;
            if (be != 0.0f) v += be * ((const float *)C)[i + j * (size_t)lc->ld];
            if (bias) v += ((const float *)d->bias)[i];
            ((float *)D)[i + j * (size_t)ld->ld] = v; /* C == D in place: element (i, j) read before written */
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}
