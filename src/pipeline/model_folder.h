/* pipeline/model_folder: what a Hummingbird model folder holds, where each part lives, and writing a complete
 * random-weight folder for demos, tests and benchmarks (`hb mkmodel --arch hummingbird-xt|hummingbird-xtx`).
 *
 * Layout read (official Wan release layout, plus a few accepted alternatives; see docs/pipeline.md):
 *   DiT           config.json + diffusion_pytorch_model*.safetensors (+ index), or transformer/ (diffusers)
 *   VAE           Wan2.2_VAE.safetensors | Wan2.2_VAE.pth | Wan2.1_VAE.safetensors | Wan2.1_VAE.pth | vae/
 *   text encoder  models_t5_umt5-xxl-enc-bf16.pth | models_t5_umt5-xxl-enc-bf16.safetensors | text_encoder/
 *   tokenizer     google/umt5-xxl/spiece.model (or whatever hb_tokenizer_open_dir finds)
 *   tiny decoder  taew2_2.safetensors | taew2_2.pth | taew2_1.safetensors | taew2_1.pth | tae/   (optional)
 *   light decoder vae/wan22_v1_tiling_16_12/ | vae/<any>/ | light_vae/ (config.json with decoder_block_out_channels
 *                 + diffusion_pytorch_model.safetensors) | light_vae.safetensors + light_vae.json
 *                 (optional; models/light_vae.h, Wan2.2 family only)
 *   settings      hummingbird.json (optional): {"arch", "steps_list": [...], "shift", "sampler", "fps"}
 * The random folder writes exactly the first alternative of each line.
 *
 * The Hummingbird-XT release's models/ folder is recognised (spec section 1: run_t2v.sh / run_i2v.sh):
 *   hm_2.2_5B/                   the model folder above (one diffusion_pytorch_model.safetensors, .pth VAE and
 *                                text encoder); -m may name it or its parent
 *   vae/wan22_v1_tiling_16_12/   the light decoder, found from either
 * The Hummingbird-XTX release root is recognised too (spec: the long_video/ scripts' layout):
 *   checkpoints/wan21_model.pt                      the trained causal DiT (.pt training dict)
 *   wan_models/Wan2.1-T2V-1.3B/                     config.json (+ base safetensors) and Wan2.1_VAE.pth
 *   wan_models/Wan2.2-TI2V-5B/                      models_t5_umt5-xxl-enc-bf16.pth + google/umt5-xxl/
 * and its 5B variant checkpoint/wan_22_vsink1_5B_seq_880/model.pt over wan_models/Wan2.2-TI2V-5B/ (config,
 * Wan2.2_VAE.pth, text encoder). The DiT's architecture then comes from the base folder's config.json, its
 * weights from the .pt; the text encoder and tokenizer always from the Wan2.2-TI2V-5B folder. */
#ifndef HB_PIPELINE_MODEL_FOLDER_H
#define HB_PIPELINE_MODEL_FOLDER_H

#include "core/core.h"

#define HB_MF_PATH 4096
#define HB_XT_RELEASE_DIT_DIR "hm_2.2_5B" /* the Hummingbird-XT release's model folder inside models/ */
#define HB_MF_MAX_STEPS 64

typedef struct hb_model_folder {
    char dir[HB_MF_PATH];
    char dit[HB_MF_PATH];        /* path handed to hb_wan_dit_open (index file or folder) */
    char dit_weights[HB_MF_PATH]; /* "" or a weights file (.pt training dict) replacing dit's weights; dit's
                                   * config.json gives the architecture */
    char tokenizer[HB_MF_PATH];  /* folder hb_tokenizer_open_dir searches (dir unless the layout says otherwise) */
    char vae[HB_MF_PATH];        /* file or folder for hb_checkpoint_open */
    char text_encoder[HB_MF_PATH]; /* path handed to hb_umt5_open */
    char tae[HB_MF_PATH];        /* "" when the folder has no tiny decoder */
    char light[HB_MF_PATH];      /* light VAE decoder, "" when absent */
    /* hummingbird.json (has_* false when absent) */
    bool has_settings;
    char arch[64];
    int nsteps;                  /* 0 = not given */
    int64_t steps_list[HB_MF_MAX_STEPS];
    double shift;                /* 0 = not given */
    char sampler[16];            /* "" = not given */
    double fps;                  /* 0 = not given */
} hb_model_folder;

/* Bytes of the weight files at path (a file, or the .safetensors/.pth/.pt/.gguf files directly inside a folder;
 * 0 when absent): the memory estimates' weight terms. */
size_t hb_model_folder_weight_bytes(const char *path);

/* Resolve every part of the folder; -1 + one message naming the folder and the missing part. */
int hb_model_folder_scan(const char *dir, hb_model_folder *mf);
/* The same, with the text encoder and tokenizer taken from the folder te_dir (the release's
 * wan_models/Wan2.2-TI2V-5B) when it is not NULL. */
int hb_model_folder_scan_te(const char *dir, const char *te_dir, hb_model_folder *mf);
/* The same with the DiT given apart (dit: a .gguf or .safetensors file, or a folder; NULL = the folder's): the
 * folder then needs no DiT of its own; without a config.json beside it the config comes from its tensors. */
int hb_model_folder_scan_dit(const char *dir, const char *dit, hb_model_folder *mf);

/* The folder's DiT: its own weights, or `weights` (NULL: mf->dit_weights when set; a .pt training dict or a
 * safetensors file) with the architecture from the folder's config.json, as the release builds it
 * (from_pretrained of the base folder, then the generator's state dict loaded over it). NULL + message. */
struct wan_dit;
struct wan_dit *hb_model_folder_open_dit(const hb_model_folder *mf, const char *weights);

#endif
