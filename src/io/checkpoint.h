/* io/checkpoint: read model weights from safetensors files, sharded safetensors folders
 * (*.safetensors.index.json), GGUF files (ggml block-quantized weights) and PyTorch .pth/.pt zip checkpoints,
 * behind one lookup by name.
 * Safetensors are memory-mapped and tensors point into the mapping (zero copy). Every header is
 * validated; every failure names the file and the problem (hb_last_error). */
#ifndef HB_IO_CHECKPOINT_H
#define HB_IO_CHECKPOINT_H

#include "core/core.h"

typedef struct hb_checkpoint hb_checkpoint;

/* path: a .safetensors file, a *.safetensors.index.json, a .gguf file, a .pth/.pt file, or a folder holding
 * one of those (index preferred, else its one .gguf, else every *.safetensors in it). NULL on error.
 * GGUF tensors keep their stored type (hb dtypes HB_Q8_0 ... for block formats) and get PyTorch-order shapes. */
hb_checkpoint *hb_checkpoint_open(const char *path);
void hb_checkpoint_close(hb_checkpoint *ck);

const char *hb_checkpoint_path(const hb_checkpoint *ck);
int hb_checkpoint_count(const hb_checkpoint *ck);
/* i-th tensor in file order: name and tensor (data points into the mapping). */
const char *hb_checkpoint_name(const hb_checkpoint *ck, int i);
hb_tensor hb_checkpoint_tensor(const hb_checkpoint *ck, int i);
/* Which file holds tensor i (for messages and hb inspect). */
const char *hb_checkpoint_file_of(const hb_checkpoint *ck, int i);

/* Look a tensor up by its official name; also accepts the diffusers/transformers naming of the same
 * weight and the "model." / "generator." prefixes of training checkpoints. -1 + message when missing. */
int hb_checkpoint_get(const hb_checkpoint *ck, const char *name, hb_tensor *out);
bool hb_checkpoint_has(const hb_checkpoint *ck, const char *name);
/* Like get, then checks the shape (-1 = any dim) and names the file, tensor, and both shapes on mismatch. */
int hb_checkpoint_get_shaped(const hb_checkpoint *ck, const char *name, int ndim, const int64_t *shape,
                             hb_tensor *out);

/* safetensors "__metadata__" string values (NULL when absent); for folders, config.json is not read here. */
const char *hb_checkpoint_metadata(const hb_checkpoint *ck, const char *key);
/* (io task, additive) i-th metadata key in file order, NULL past the end (for hb inspect). */
const char *hb_checkpoint_metadata_key(const hb_checkpoint *ck, int i);
/* (io task, additive) true when tensor i points into a file mapping (false: an owned aligned copy,
 * made for a misaligned or compressed source, or dequantized from fp8). */
bool hb_checkpoint_zero_copy(const hb_checkpoint *ck, int i);

/* Write a safetensors file atomically (temp file + rename). metadata: NULL or pairs key,value ending NULL. */
int hb_safetensors_write(const char *path, int n, const char *const *names, const hb_tensor *tensors,
                         const char *const *metadata);

/* Write a GGUF v3 file atomically (temp file + rename): tensors in the given order with their dtypes (F32, F16,
 * BF16 and the block formats) and PyTorch shapes (written reversed, as ggml's dims), every tensor's data at a
 * multiple of `alignment` (32 unless general.alignment says otherwise), metadata keys first. Tensor bytes come
 * from tensors[i].data (contiguous) or, when fill is not NULL, from fill(user, i, dst, nbytes), one tensor at
 * a time (so a quantizer never holds the whole output). */
enum { HB_GGUF_U32 = 4, HB_GGUF_STRING = 8, HB_GGUF_ARRAY_I32 = 9 };
typedef struct { const char *key; uint32_t type; const char *str; uint32_t u32; const int32_t *arr; int narr; } hb_gguf_kv;
typedef int (*hb_gguf_fill_fn)(void *user, int i, void *dst, size_t nbytes);
int hb_gguf_write(const char *path, int n, const char *const *names, const hb_tensor *tensors, hb_gguf_fill_fn fill,
                  void *user, const hb_gguf_kv *kv, int nkv, uint32_t alignment);

/* Write checkpoint `in` (any format hb_checkpoint_open reads, GGUF included) as a GGUF in the community Wan layout
 * with the quantization mix `type` (hb_gguf_quant_types(): f16, bf16, q8_0, q4_k_m, ...). counts (NULL or
 * HB_QTYPE_END ints, zeroed by the caller) receives how many tensors got each dtype. Atomic (temp + rename). */
int hb_gguf_quantize(const char *in, const char *out, const char *type, int *counts);
const char *hb_gguf_quant_types(void);

#endif
