/* Deterministic random fill for random-weight checkpoints and benchmarks (hb_normal_fill, core.h). */
#include "core/core.h"
#include <math.h>

#define FILL_BLOCK 4096 /* values per RNG stream block */

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    float *dst;
    uint64_t seed, stream;
    int64_t offset, count;
    float mean, std;
} fill_ctx;

static void fill_range(void *vctx, int64_t b0, int64_t b1) {
    const fill_ctx *c = vctx;
    /* blocks are aligned to absolute element indices (offset + i), so values never depend on chunking */
    const int64_t first = c->offset / FILL_BLOCK;
    const double norm = 1.0 / sqrt(4.0 * (65536.0 * 65536.0 - 1.0) / 12.0), mid = 4.0 * 65535.0 / 2.0;
    for (int64_t b = b0; b < b1; b++) {
        int64_t blk = first + b;
        int64_t lo = blk * FILL_BLOCK, hi = lo + FILL_BLOCK;
        if (lo < c->offset) lo = c->offset;
        if (hi > c->offset + c->count) hi = c->offset + c->count;
        uint64_t s = mix64(c->seed ^ mix64(c->stream * 0x632be59bd9b4e019ull ^ mix64((uint64_t)blk)));
        s += (uint64_t)(lo - blk * FILL_BLOCK) * 0x9e3779b97f4a7c15ull; /* skip to lo within the block */
        for (int64_t i = lo; i < hi; i++) {
            uint64_t r = mix64(s);
            s += 0x9e3779b97f4a7c15ull;
            double sum = (double)(r & 0xffff) + (double)((r >> 16) & 0xffff) + (double)((r >> 32) & 0xffff) +
                         (double)(r >> 48);
            c->dst[i - c->offset] = c->mean + c->std * (float)((sum - mid) * norm);
        }
    }
}

void hb_normal_fill(float *dst, int64_t count, uint64_t seed, uint64_t stream, int64_t offset, float mean, float std) {
    if (count <= 0) return;
    fill_ctx c = {dst, seed, stream, offset, count, mean, std};
    int64_t nblocks = (offset + count - 1) / FILL_BLOCK - offset / FILL_BLOCK + 1;
    hb_parallel_for(nblocks, 16, fill_range, &c);
}

