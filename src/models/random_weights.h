/* models/random_weights: write random-weight checkpoints of any size without holding them in memory.
 * A streaming writer of sharded safetensors folders (PREFIX-0000k-of-0000N.safetensors + PREFIX.safetensors
 * .index.json, the Hugging Face layout the official releases use): tensor data is produced chunk by chunk
 * by a fill callback, converted to the stored dtype and written, so a 10 GB model needs a few MB of RAM.
 * Used by `hb mkmodel` and by the benchmarks. */
#ifndef HB_MODELS_RANDOM_WEIGHTS_H
#define HB_MODELS_RANDOM_WEIGHTS_H

#include "core/core.h"

typedef struct rw_tensor {
    char name[128];
    int ndim;
    int64_t shape[HB_MAX_DIMS];
    int init;          /* meaning is up to the fill callback */
} rw_tensor;

/* Produce values [offset, offset + n) of tensor `index` (row-major) as f32 into dst. */
typedef int (*rw_fill_fn)(void *user, int index, const rw_tensor *t, int64_t offset, int64_t n, float *dst);

/* Write tensors[0..n) into dir (which must exist) as shards of at most shard_bytes each (a tensor larger than
 * that gets a shard of its own) plus the index. Returns 0 or -1 with a message naming the file. */
int rw_write_sharded(const char *dir, const char *prefix, const rw_tensor *tensors, int n, hb_dtype dtype,
                     int64_t shard_bytes, rw_fill_fn fill, void *user);

/* Deterministic random fill: `count` values N(0, std^2) + mean from (seed, stream, offset): value i depends
 * only on those, never on the thread count or the chunking. (Sum of four 16-bit uniforms, rescaled to unit
 * variance: a fast approximate normal, |z| <= 3.46.) Runs on the thread pool. */
void rw_normal_fill(float *dst, int64_t count, uint64_t seed, uint64_t stream, int64_t offset, float mean, float std);

/* Create a fresh temporary folder beside `final_dir` (final_dir.tmp-PID); rw_finish renames it into place
 * (fails if final_dir exists and is not empty); rw_abort removes it with its files. */
int rw_begin(const char *final_dir, char *tmp, size_t cap);
int rw_finish(const char *tmp, const char *final_dir);
void rw_abort(const char *tmp);

#endif
