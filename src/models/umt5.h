/* models/umt5: the umT5-XXL text encoder (Wan wan/modules/t5.py T5Encoder as umt5_xxl(encoder_only=True)
 * builds it): token embedding, per-layer bidirectional relative position bias, pre-norm T5 RMS LayerNorm,
 * self-attention without 1/sqrt(d) scaling, gated-GELU FFN, final norm. Activations float32; weights stay in
 * their stored dtype (bf16 in the official file), memory-mapped, looked up by the official names
 * (token_embedding.weight, blocks.N.{norm1,attn.q/k/v/o,norm2,ffn.gate.0,ffn.fc1,ffn.fc2,
 * pos_embedding.embedding}.weight, norm.weight). */
#ifndef HB_MODELS_UMT5_H
#define HB_MODELS_UMT5_H

#include "core/core.h"
#include "io/checkpoint.h"

typedef struct hb_umt5_config {
    int64_t vocab, dim, dim_attn, dim_ffn;
    int num_heads, num_layers, num_buckets, max_dist;
    float eps;
} hb_umt5_config;

/* The real model: vocab 256384, dim 4096, dim_attn 4096, ffn 10240, 64 heads, 24 layers, 32 buckets,
 * max_dist 128, eps 1e-6. */
hb_umt5_config hb_umt5_xxl_config(void);

typedef struct hb_umt5 hb_umt5;

/* Build on an open checkpoint with an explicit config; every weight is checked (name and shape) up front,
 * errors name the file, tensor and shapes. With owns_ck the checkpoint is closed by hb_umt5_release_weights
 * / hb_umt5_free. NULL + message on error (the checkpoint is then not closed). */
hb_umt5 *hb_umt5_create(hb_checkpoint *ck, const hb_umt5_config *cfg, bool owns_ck);
/* Open weights from a path: a .pth / .safetensors / .gguf file, or a folder holding the weights themselves
 * (which file or folder of a model folder is the text encoder is pipeline/model_folder's business:
 * hb_model_folder_scan).
 * Config: a transformers config.json next to the weights when present (d_model, d_kv, d_ff, num_heads,
 * num_layers, relative_attention_num_buckets, relative_attention_max_distance, vocab_size,
 * layer_norm_epsilon), else the sizes of the weights themselves (token_embedding, blocks.0.attn.q,
 * blocks.0.ffn.fc1, blocks.0.pos_embedding, the number of blocks; max_dist 128, eps 1e-6: the real
 * checkpoint gives exactly the umt5-xxl constants). */
hb_umt5 *hb_umt5_open(const char *path);
const hb_umt5_config *hb_umt5_get_config(const hb_umt5 *m);
/* Unmap the weights (close the owned checkpoint) so the DiT and the encoder need not be resident together;
 * every memory space that cached device copies of them (a GPU backend) is told to drop them
 * (hb_host_memory_released). Later encodes fail with a clear message. */
void hb_umt5_release_weights(hb_umt5 *m);
/* Low-memory mode: after each layer, unmap that layer's weight pages from this process (madvise
 * MADV_DONTNEED on the read-only file mapping), so the resident set stays about one layer (0.39 GB for
 * umt5-xxl) instead of the whole 9.3 GB of layer weights. The pages stay in the OS page cache; each encode
 * then re-faults them (slower when repeated). Under a device backend the layer's cached device copies are
 * dropped as well (device memory about one layer; the next encode uploads them again). Only for encoders
 * that own their mapped checkpoint. */
void hb_umt5_set_low_memory(hb_umt5 *m, bool on);
void hb_umt5_free(hb_umt5 *m);

/* The bidirectional relative-position bucket of rel = key_pos - query_pos, computed as the reference
 * (log in float32): half the buckets per direction (offset num_buckets/2 for rel > 0), |rel| < max_exact
 * (= num_buckets/4) exact, larger |rel| log-spaced up to max_dist, capped at num_buckets/2 - 1. */
int hb_umt5_bucket(int64_t rel, int num_buckets, int max_dist);

/* Memory: the encoder runs on the calling thread's backend (hb_backend_use). Token ids and the key mask are
 * host arrays; `out` and every trace buffer are in the current memory space (device memory under a GPU
 * backend: hb_dev_alloc them, hb_dev_download the result). Activations live in one arena of the current
 * space per call; the position-bias table is looked up on the backend from host-computed bucket ids. */

/* Production encode: the n_valid real tokens (ids[0..n_valid), ending with </s> = 1) are encoded (attention
 * over the real tokens only, which equals the masked full-length computation for those rows); out (current
 * memory space) gets n_rows x dim floats: rows >= n_valid are zero, as the Wan pipelines pass the context on. */
int hb_umt5_encode(hb_umt5 *m, const int64_t *ids, int64_t n_valid, int64_t n_rows, float *out);

/* Optional intermediates of hb_umt5_forward (any pointer may be NULL): token_embedding [n, dim],
 * pos_bias0 [heads, n, n] (layer 0), blocks[i] [n, dim] (output of block i, num_layers pointers). The
 * buffers are in the current memory space (the `blocks` array itself is a host array of such pointers). */
typedef struct {
    float *token_embedding;
    float *pos_bias0;
    float **blocks;
} hb_umt5_trace;
/* Full-length forward as T5Encoder(ids, mask): all n rows (padded queries included) with keys where
 * mask[j] == 0 masked (finfo(float32).min added). ids and mask [n] host; mask may be NULL (no masking).
 * out [n, dim] in the current memory space. */
int hb_umt5_forward(hb_umt5 *m, const int64_t *ids, const uint8_t *mask, int64_t n, float *out,
                    const hb_umt5_trace *trace);



#endif
