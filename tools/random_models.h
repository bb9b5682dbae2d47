/* Random-weight models (tools/random_models.c): written streaming, a few MB of memory at any size, for
 * hb mkmodel, the tests and the benchmarks. */
#ifndef HB_TOOLS_RANDOM_MODELS_H
#define HB_TOOLS_RANDOM_MODELS_H

#include "core/core.h"
#include "models/wan_dit.h"
#include "models/umt5.h"
#include "models/light_vae.h"

/* Write a random-weight model into the existing folder dir: config.json (official keys) and
 * diffusion_pytorch_model-0000k-of-0000N.safetensors shards of at most shard_bytes + the index, streaming
 * (a few MB of memory at any size). dtype F32/BF16/F16; init per wan_init_kind, nothing zero. */
int hb_wan_dit_write_random(const wan_dit_config *c, const char *dir, hb_dtype dtype, uint64_t seed, int64_t shard_bytes);

/* Write a random-weight encoder into the existing folder `dir`: a transformers-style config.json (read back
 * by hb_umt5_open) and sharded safetensors (model-0000k-of-0000N.safetensors + index) with the official
 * names; embeddings N(0,1), norms 1+N(0,0.01), Linear N(0,1/fan_in), position bias N(0,0.25). Streams:
 * a full-size model needs a few MB of RAM. For hb mkmodel, tests and benchmarks. */
int hb_umt5_write_random(const hb_umt5_config *c, const char *dir, hb_dtype dtype, uint64_t seed, int64_t shard_bytes);

/* Write a random TAEHV checkpoint (hb_tae_weight_list's tensors) into the existing empty folder `dir` as
 * <prefix>-0000k-of-0000N.safetensors + index. Conv weights N(0, (1.2/sqrt(fan_in))^2), biases N(0, 0.05^2), the
 * last decoder conv scaled by 0.1 with biases around 0.5. */
int hb_tae_write_random(const char *dir, int patch, int latent_channels, int enc_width, const int dec_widths[4],
                        hb_dtype dtype, uint64_t seed);

/* Write hb_light_vae_create_random(cfg, seed)'s weights in the release's layout (cfg NULL: the default config):
 * a path ending in .safetensors = that file + X.json beside it; else a folder (created if missing) receiving
 * config.json + diffusion_pytorch_model.safetensors. */
int hb_light_vae_write_random(const char *path, const hb_light_vae_config *cfg, uint64_t seed);

/* Write a SentencePiece unigram model (ModelProto protobuf) with byte fallback and a few hundred pieces
 * (ids: 0 <pad>, 1 </s>, 2 <unk>, 3..258 byte pieces, then letters, syllables and common English words).
 * Returns the vocabulary size, or -1. */
int hb_write_tiny_spiece(const char *path);

/* Write a complete random-weight model folder into the existing empty folder `dir`.
 * arch: "hummingbird-xt" (Wan2.2-TI2V-5B family: 48-ch DiT, Wan2.2 VAE, TAEW2.2) or "hummingbird-xtx"
 * (Wan2.1-1.3B family: 16-ch DiT, Wan2.1 VAE, TAEW2.1). tiny: small widths that run in seconds; otherwise the
 * official sizes (tens of GB with the text encoder: only for benchmarks). dit_layers > 0 overrides the number
 * of DiT layers. The full-size text encoder keeps umT5-XXL's widths but the tiny tokenizer's vocabulary.
 * dtype applies to the DiT and text encoder (the VAE and TAE are written in F32). */
typedef struct hb_mkfolder_opts {
    const char *arch;
    bool tiny;
    hb_dtype dtype;
    uint64_t seed;
    int dit_layers;
    int text_layers;           /* > 0: umT5 layers (official widths otherwise); the tokenizer is always the tiny one */
} hb_mkfolder_opts;
int hb_model_folder_write_random(const char *dir, const hb_mkfolder_opts *o);

#endif
