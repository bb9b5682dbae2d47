/* io/safetensors_writer: a streaming writer of sharded safetensors folders (PREFIX-0000k-of-0000N.safetensors +
 * PREFIX.safetensors.index.json, the Hugging Face layout the official releases use): tensor data is produced
 * chunk by chunk by a fill callback, converted to the stored dtype and written, so a 10 GB checkpoint needs a
 * few MB of RAM (random-weight models of `hb mkmodel`, the tests and the benchmarks). And staged folders: built
 * under a temporary name, renamed into place when complete. */
#ifndef HB_IO_SAFETENSORS_WRITER_H
#define HB_IO_SAFETENSORS_WRITER_H

#include "core/core.h"

typedef struct hb_st_tensor {
    char name[128];
    int ndim;
    int64_t shape[HB_MAX_DIMS];
    int init;          /* meaning is up to the fill callback */
} hb_st_tensor;

/* Produce values [offset, offset + n) of tensor `index` (row-major) as f32 into dst. */
typedef int (*hb_st_fill_fn)(void *user, int index, const hb_st_tensor *t, int64_t offset, int64_t n, float *dst);

/* Write tensors[0..n) into dir (which must exist) as shards of at most shard_bytes each (a tensor larger than
 * that gets a shard of its own) plus the index. Returns 0 or -1 with a message naming the file. */
int hb_safetensors_write_sharded(const char *dir, const char *prefix, const hb_st_tensor *tensors, int n,
                                 hb_dtype dtype, int64_t shard_bytes, hb_st_fill_fn fill, void *user);

/* Create a fresh temporary folder beside `final_dir` (final_dir.tmp-PID); hb_folder_stage_finish renames it
 * into place (fails if final_dir exists and is not empty); hb_folder_stage_abort removes it with its files. */
int hb_folder_stage_begin(const char *final_dir, char *tmp, size_t cap);
int hb_folder_stage_finish(const char *tmp, const char *final_dir);
void hb_folder_stage_abort(const char *tmp);

#endif
