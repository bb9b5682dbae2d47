/* models/wan_dit: the Wan diffusion transformer (WanModel of Wan 2.1 / 2.2), one implementation for every
 * size (Wan2.2-TI2V-5B, Wan2.1-T2V-1.3B, the tiny golden models). Weights stay memory-mapped in their stored
 * dtype (F32/BF16/F16); activations are f32 from one arena sized up front.
 *
 * The forward is written as separate pieces (time embedding, text embedding + cross-attention K/V, one
 * block, head) so that a causal / KV-cache driver can reuse them: a block takes its RoPE frame offset and
 * an optional caller-owned self-attention K/V cache (wan_dit_block_args).
 *
 * Memory: every activation argument (latents, contexts, outputs, prepared text, workspaces, caches, what taps
 * see) lives in the current backend's memory space (ops.h) and is touched only through ops; timestep values
 * are host floats. So the same code runs on the CPU and on a GPU. */
#ifndef HB_MODELS_WAN_DIT_H
#define HB_MODELS_WAN_DIT_H

#include "core/core.h"
#include "ops/ops.h"
#include "io/checkpoint.h"

/* ---------- configuration ---------- */
typedef struct wan_dit_config {
    int dim, ffn_dim, freq_dim, num_heads, head_dim, num_layers;
    int in_dim, out_dim, text_len, text_dim;
    int patch[3];            /* t, h, w */
    float eps;
    bool qk_norm, cross_attn_norm;
    char model_type[16];     /* "t2v", "ti2v", ... (informational) */
} wan_dit_config;

/* Official presets: "wan2.2-ti2v-5b", "wan2.1-1.3b" (also accepted: "wan2.1-t2v-1.3b"). -1 + message if unknown. */
int hb_wan_dit_config_preset(wan_dit_config *c, const char *arch);
/* Fill from a JSON object text: the official config.json keys (dim, ffn_dim, freq_dim, num_heads, num_layers,
 * in_dim, out_dim, text_len, text_dim, patch_size, eps, qk_norm, cross_attn_norm) or the diffusers
 * transformer/config.json keys (num_attention_heads, attention_head_dim, in_channels, out_channels, ...).
 * Absent keys keep the WanModel defaults (patch 1x2x2, text_len 512, text_dim 4096, eps 1e-6, norms on).
 * `what` names the source in messages. */
int hb_wan_dit_config_parse(wan_dit_config *c, const char *json_text, const char *what);
/* The config of a checkpoint that comes without one (community GGUF / single-file DiTs): dim, in_dim and patch
 * from patch_embedding.weight, out_dim from head.head.weight, text_dim / freq_dim / ffn_dim from
 * text_embedding.0 / time_embedding.0 / blocks.0.ffn.0, num_layers from the highest block index, the norms from
 * their tensors' presence; num_heads from the official Wan configs by dim (1536: 12, 3072: 24, 5120: 40), else
 * dim / 128 (the head size of every Wan model); text_len 512 and eps 1e-6 (every Wan config). -1 + message
 * naming `what` and the missing or odd tensor. */
int hb_wan_dit_config_infer(wan_dit_config *c, const hb_checkpoint *ck, const char *what);
/* Checks the numbers are usable (positive, dim = heads * head_dim, head_dim even, ...). */
int hb_wan_dit_config_check(const wan_dit_config *c, const char *what);
/* Writes the official config.json text (malloc'ed, caller frees). */
char *hb_wan_dit_config_to_json(const wan_dit_config *c);
/* Parameter count of a model with this config. */
int64_t hb_wan_dit_param_count(const wan_dit_config *c);

/* Every tensor of the model in official order/naming, with its shape and how mkmodel initialises it.
 * fn is called once per tensor; enumeration stops when fn returns non-zero (returned). */
typedef enum {
    WAN_INIT_LINEAR,   /* N(0, 1/fan_in), fan_in = product of all dims but the first */
    WAN_INIT_BIAS,     /* N(0, 0.1^2) */
    WAN_INIT_NORM,     /* 1 + N(0, 0.1^2) */
    WAN_INIT_MOD,      /* N(0, 1/dim) */
} wan_init_kind;
typedef int (*wan_dit_tensor_fn)(void *user, const char *name, int ndim, const int64_t *shape, wan_init_kind init);
int hb_wan_dit_enumerate(const wan_dit_config *c, wan_dit_tensor_fn fn, void *user);


/* ---------- the model ---------- */
typedef struct wan_dit_block_w {
    float *modulation;                         /* [6*dim] f32 (converted once at load) */
    hb_tensor modulation_t;                    /* the same as a tensor, for ops */
    hb_tensor sa_q_w, sa_q_b, sa_k_w, sa_k_b, sa_v_w, sa_v_b, sa_o_w, sa_o_b, sa_norm_q, sa_norm_k;
    hb_tensor norm3_w, norm3_b;                /* data NULL when cross_attn_norm is off */
    hb_tensor ca_q_w, ca_q_b, ca_k_w, ca_k_b, ca_v_w, ca_v_b, ca_o_w, ca_o_b, ca_norm_q, ca_norm_k;
    hb_tensor ffn0_w, ffn0_b, ffn2_w, ffn2_b;
} wan_dit_block_w;

typedef struct wan_dit {
    wan_dit_config cfg;
    hb_checkpoint *ck;
    bool owns_ck;
    hb_tensor patch_w;                         /* viewed as [dim, in_dim*pt*ph*pw] */
    hb_tensor patch_b;
    hb_tensor text0_w, text0_b, text2_w, text2_b;
    hb_tensor time0_w, time0_b, time2_w, time2_b;
    hb_tensor proj_w, proj_b;                  /* time_projection.1: [6*dim, dim] */
    wan_dit_block_w *blocks;
    float *head_mod;                           /* [2*dim] f32 */
    hb_tensor head_shift_t, head_scale_t;      /* its two halves, for ops */
    hb_tensor head_w, head_b;                  /* [prod(patch)*out_dim, dim] */
} wan_dit;

/* Build from an open checkpoint (tensors are borrowed; the checkpoint must outlive the model). Every
 * tensor is looked up by its official name (diffusers names are mapped by the checkpoint layer) and its
 * shape checked against cfg; errors name the checkpoint and the tensor. */
wan_dit *hb_wan_dit_from_checkpoint(hb_checkpoint *ck, const wan_dit_config *cfg);
/* Open a model from a path: a folder with config.json + weights (official layout, or a diffusers transformer/
 * folder), or a single .safetensors whose metadata "config" holds the config (golden files). Which folder of a
 * model folder holds the DiT is pipeline/model_folder's business (hb_model_folder_scan).
 * cfg_override: when not NULL it is used instead of any config file (checkpoints without one). */
wan_dit *hb_wan_dit_open(const char *path, const wan_dit_config *cfg_override);
void hb_wan_dit_free(wan_dit *m);

/* ---------- forward ---------- */
/* Observer of intermediate activations (golden tests). `rows` x `cols` values; when g is not NULL the data
 * is grouped: logical row r lives at data + (r / g->rows_per_group) * g->group_stride. Names follow the
 * golden files without the "mid." prefix: patch_embedding, time_embedding, time_projection, text_embedding,
 * blocks.N.self_attn / .cross_attn / .ffn (sub-layer outputs before gate/residual), blocks.N, head. */
typedef void (*wan_dit_tap_fn)(void *user, const char *name, const float *data, int64_t rows, int64_t cols,
                               const hb_modgroups *g);

/* Prompt state: the text embedding of the context (zero-padded to text_len first) and, optionally, every
 * layer's cross-attention K and V (computed once, reused by every forward with this prompt). */
typedef struct wan_dit_text {
    int64_t len;        /* = text_len */
    float *emb;         /* [len, dim] */
    float *k, *v;       /* [num_layers, len, dim] each, or NULL (then each forward recomputes them) */
} wan_dit_text;
/* context [ctx_len, text_dim] with ctx_len <= text_len. cache_kv: also compute the per-layer K/V. */
int hb_wan_dit_text_prepare(const wan_dit *m, const float *context, int64_t ctx_len, bool cache_kv, wan_dit_text *out,
                         wan_dit_tap_fn tap, void *tap_user);
void hb_wan_dit_text_free(wan_dit_text *t);

/* Timestep layout: a single value, one per latent frame, or one per token. Per-token/per-frame values are
 * grouped automatically (equal values per frame -> per-frame modulation, all equal -> one vector) unless
 * no_group is set; results are the same up to rounding. */
typedef struct wan_dit_input {
    const float *x;               /* [in_dim, F, H, W] latent */
    int64_t F, H, W;              /* latent size (H, W multiples of the patch) */
    const float *t;               /* nt values */
    int64_t nt;                   /* 1, F (per frame) or L = tokens (per token) */
    const float *context;         /* [ctx_len, text_dim]; ignored when text is given */
    int64_t ctx_len;
    const wan_dit_text *text;     /* optional prepared prompt */
    int f0;                       /* RoPE frame index of the first latent frame (0 for the plain model) */
} wan_dit_input;

typedef struct wan_dit_opts {
    wan_dit_tap_fn tap;
    void *tap_user;
    bool no_group;                /* keep per-token/per-frame modulation even when values repeat */
    hb_arena *arena;              /* optional workspace (sized with hb_wan_dit_workspace_bytes); NULL: own */
    hb_progress_fn progress;      /* optional per-block progress */
    void *progress_user;
} wan_dit_opts;

/* Bytes of arena a forward of L tokens with nt timesteps takes (its high-water mark), from the shapes alone;
 * text_prepared: the input brings a prepared prompt (no text buffers). */
size_t hb_wan_dit_workspace_bytes(const wan_dit_config *c, int64_t L, int64_t nt, bool text_prepared);
/* out: [out_dim, F*pt, H, W]... i.e. the same shape as x with out_dim channels. */
int hb_wan_dit_forward(const wan_dit *m, const wan_dit_input *in, float *out, const wan_dit_opts *opts);
/* Multiply-add count of one forward (for benchmarks): linear layers + attention. */
double hb_wan_dit_forward_flops(const wan_dit_config *c, int64_t L, bool text_cached);

/* ---------- pieces for other drivers (causal model) ---------- */
/* Per-block scratch for L query tokens. */
typedef struct wan_dit_ws {
    int64_t L;
    float *h, *q, *k, *v, *o, *y, *mod, *hid;
    int64_t hid_rows;            /* FFN hidden rows per chunk */
    int64_t mod_groups;
    float *ctx_k, *ctx_v;        /* [text_len, dim] when the prompt K/V are not cached */
} wan_dit_ws;
int hb_wan_dit_ws_alloc(const wan_dit *m, int64_t L, int64_t groups, hb_arena *a, wan_dit_ws *ws);
size_t hb_wan_dit_ws_bytes(const wan_dit_config *c, int64_t L, int64_t groups); /* arena bytes of the above */
/* A forward's buffers for L tokens and G timestep groups: patch rows, x [L, dim], time embedding e / e0 and
 * scratch, head tokens, the text ones (only without a prepared prompt) and the block workspace; arena bytes:
 * hb_wan_dit_workspace_bytes. */
typedef struct wan_dit_bufs {
    float *rows, *x, *e, *e0, *ttmp, *tok;
    float *emb, *pad, *ttxt;
    wan_dit_ws ws;
} wan_dit_bufs;
int hb_wan_dit_bufs_alloc(const wan_dit *m, int64_t L, int64_t G, bool text_prepared, hb_arena *a, wan_dit_bufs *b);

/* Time embedding of G timesteps: e [G, dim], e0 [G, 6*dim]. tmp needs G*(freq_dim + dim) floats. */
int hb_wan_dit_time_embed(const wan_dit *m, const float *t, int64_t G, float *e, float *e0, float *tmp);
/* Cross-attention K/V of one layer from the text embedding [len, dim]; tmp [len, dim]. */
int hb_wan_dit_cross_kv(const wan_dit *m, int layer, const float *emb, int64_t len, float *k, float *v, float *tmp);

typedef struct wan_dit_block_args {
    int64_t L;                    /* query tokens in x */
    int64_t H, W;                 /* patch grid (rows, columns per frame) for RoPE */
    int f0;                       /* RoPE frame index of the first query token's frame */
    const float *e0;              /* [G, 6*dim] time projection */
    hb_modgroups g;               /* token -> row of e0 (group_stride = 6*dim) */
    const float *ctx_k, *ctx_v;   /* cross-attention K/V [ctx_len, dim] */
    int64_t ctx_len;
    /* Self-attention K/V: NULL -> the block's own tokens only. Otherwise caller-owned caches [cap, dim]: the
     * block writes its K (after qk-norm and RoPE) and V at rows [kv_write, kv_write + L) and attends over
     * rows [kv_start, kv_end) (which must include them). */
    float *kv_k, *kv_v;
    int64_t kv_write, kv_start, kv_end;
    wan_dit_tap_fn tap;
    void *tap_user;
} wan_dit_block_args;
/* x [L, dim] updated in place. */
int hb_wan_dit_block(const wan_dit *m, int layer, float *x, const wan_dit_block_args *a, wan_dit_ws *ws);
/* Head: out_tok [L, prod(patch)*out_dim] from x with e [G, dim] grouped by g (group_stride = dim). */
int hb_wan_dit_head(const wan_dit *m, const float *x, int64_t L, const float *e, hb_modgroups g, float *out_tok,
                 wan_dit_ws *ws);
/* Patchify x [in_dim, F, H, W] into rows [L, in_dim*pt*ph*pw] and unpatchify [L, prod*out_dim] to
 * [out_dim, F, H, W]. */
void hb_wan_dit_patchify(const wan_dit_config *c, const float *x, int64_t F, int64_t H, int64_t W, float *rows);
void hb_wan_dit_unpatchify(const wan_dit_config *c, const float *tok, int64_t F, int64_t H, int64_t W, float *out);

#endif
