/* io/names: the official <-> diffusers/transformers tensor name mapping, as a table of rename rules used
 * both ways. A pattern's '#' matches a block number (digits). A pattern ending in '.' is a prefix (the
 * rest of the name, e.g. "weight", is carried over); any other pattern must match the whole name.
 * Every rule here is a pure rename: the tensor has the same shape and layout under both names. */
#include "io/io_internal.h"
#include <string.h>
#include <stdio.h>

typedef struct { const char *official, *other; } rename_rule;

static const rename_rule k_rules[] = {
    /* Wan DiT (official Wan2.x / Self-Forcing / LongLive) <-> diffusers WanTransformer3DModel */
    {"blocks.#.self_attn.q.", "blocks.#.attn1.to_q."},
    {"blocks.#.self_attn.k.", "blocks.#.attn1.to_k."},
    {"blocks.#.self_attn.v.", "blocks.#.attn1.to_v."},
    {"blocks.#.self_attn.o.", "blocks.#.attn1.to_out.0."},
    {"blocks.#.self_attn.norm_q.", "blocks.#.attn1.norm_q."},
    {"blocks.#.self_attn.norm_k.", "blocks.#.attn1.norm_k."},
    {"blocks.#.cross_attn.q.", "blocks.#.attn2.to_q."},
    {"blocks.#.cross_attn.k.", "blocks.#.attn2.to_k."},
    {"blocks.#.cross_attn.v.", "blocks.#.attn2.to_v."},
    {"blocks.#.cross_attn.o.", "blocks.#.attn2.to_out.0."},
    {"blocks.#.cross_attn.norm_q.", "blocks.#.attn2.norm_q."},
    {"blocks.#.cross_attn.norm_k.", "blocks.#.attn2.norm_k."},
    {"blocks.#.cross_attn.k_img.", "blocks.#.attn2.add_k_proj."},
    {"blocks.#.cross_attn.v_img.", "blocks.#.attn2.add_v_proj."},
    {"blocks.#.cross_attn.norm_k_img.", "blocks.#.attn2.norm_added_k."},
    {"blocks.#.ffn.0.", "blocks.#.ffn.net.0.proj."},
    {"blocks.#.ffn.2.", "blocks.#.ffn.net.2."},
    /* official order norm1, norm3 (cross-attn, affine), norm2; diffusers renames to norm1, norm2, norm3 */
    {"blocks.#.norm3.", "blocks.#.norm2."},
    {"blocks.#.norm2.", "blocks.#.norm3."},
    {"blocks.#.modulation", "blocks.#.scale_shift_table"},
    {"text_embedding.0.", "condition_embedder.text_embedder.linear_1."},
    {"text_embedding.2.", "condition_embedder.text_embedder.linear_2."},
    {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
    {"time_embedding.2.", "condition_embedder.time_embedder.linear_2."},
    {"time_projection.1.", "condition_embedder.time_proj."},
    {"head.head.", "proj_out."},
    {"head.modulation", "scale_shift_table"},
    {"img_emb.proj.0.", "condition_embedder.image_embedder.norm1."},
    {"img_emb.proj.1.", "condition_embedder.image_embedder.ff.net.0.proj."},
    {"img_emb.proj.3.", "condition_embedder.image_embedder.ff.net.2."},
    {"img_emb.proj.4.", "condition_embedder.image_embedder.norm2."},
    /* umT5-XXL encoder (official Wan t5.py T5Encoder) <-> transformers UMT5EncoderModel */
    {"token_embedding.weight", "shared.weight"},
    {"token_embedding.weight", "encoder.embed_tokens.weight"},
    {"blocks.#.attn.q.", "encoder.block.#.layer.0.SelfAttention.q."},
    {"blocks.#.attn.k.", "encoder.block.#.layer.0.SelfAttention.k."},
    {"blocks.#.attn.v.", "encoder.block.#.layer.0.SelfAttention.v."},
    {"blocks.#.attn.o.", "encoder.block.#.layer.0.SelfAttention.o."},
    {"blocks.#.pos_embedding.embedding.", "encoder.block.#.layer.0.SelfAttention.relative_attention_bias."},
    {"blocks.#.norm1.", "encoder.block.#.layer.0.layer_norm."},
    {"blocks.#.norm2.", "encoder.block.#.layer.1.layer_norm."},
    {"blocks.#.ffn.gate.0.", "encoder.block.#.layer.1.DenseReluDense.wi_0."},
    {"blocks.#.ffn.fc1.", "encoder.block.#.layer.1.DenseReluDense.wi_1."},
    {"blocks.#.ffn.fc2.", "encoder.block.#.layer.1.DenseReluDense.wo."},
    {"norm.weight", "encoder.final_layer_norm.weight"},
    /* umT5 encoder in llama.cpp's GGUF naming (convert_hf_to_gguf.py T5ENCODER: city96's umT5 GGUF files) */
    {"token_embedding.weight", "token_embd.weight"},
    {"blocks.#.attn.q.", "enc.blk.#.attn_q."},
    {"blocks.#.attn.k.", "enc.blk.#.attn_k."},
    {"blocks.#.attn.v.", "enc.blk.#.attn_v."},
    {"blocks.#.attn.o.", "enc.blk.#.attn_o."},
    {"blocks.#.pos_embedding.embedding.", "enc.blk.#.attn_rel_b."},
    {"blocks.#.norm1.", "enc.blk.#.attn_norm."},
    {"blocks.#.norm2.", "enc.blk.#.ffn_norm."},
    {"blocks.#.ffn.gate.0.", "enc.blk.#.ffn_gate."},
    {"blocks.#.ffn.fc1.", "enc.blk.#.ffn_up."},
    {"blocks.#.ffn.fc2.", "enc.blk.#.ffn_down."},
    {"norm.weight", "enc.output_norm.weight"},
};
#define NRULES ((int)(sizeof k_rules / sizeof k_rules[0]))

static const char *const k_prefixes[] = {"model.diffusion_model.", "model.", "generator.", "module.", "_orig_mod."};

const char *hb_name_strip_prefix(const char *name) {
    for (size_t i = 0; i < sizeof k_prefixes / sizeof k_prefixes[0]; i++) {
        size_t n = strlen(k_prefixes[i]);
        if (!strncmp(name, k_prefixes[i], n) && name[n]) return name + n;
    }
    return name;
}

/* Matches pattern against name; on success writes the translation through `to` into out. */
static bool translate(const char *from, const char *to, const char *name, char *out, size_t cap) {
    const char *p = from, *s = name, *num = NULL;
    size_t numlen = 0;
    for (; *p; p++) {
        if (*p == '#') {
            if (*s < '0' || *s > '9') return false;
            num = s;
            while (*s >= '0' && *s <= '9') s++;
            numlen = (size_t)(s - num);
            continue;
        }
        if (*s != *p) return false;
        s++;
    }
    bool prefix = p > from && p[-1] == '.';
    if (!prefix && *s) return false;
    if (prefix && !*s) return false;
    size_t o = 0;
    for (const char *q = to; *q; q++) {
        if (*q == '#') {
            if (o + numlen >= cap) return false;
            memcpy(out + o, num, numlen);
            o += numlen;
        } else {
            if (o + 1 >= cap) return false;
            out[o++] = *q;
        }
    }
    size_t rest = strlen(s);
    if (o + rest >= cap) return false;
    memcpy(out + o, s, rest + 1);
    return true;
}

int hb_name_alternatives(const char *name, char out[][HB_NAME_MAX], int cap) {
    if (cap <= 0 || strlen(name) >= HB_NAME_MAX) return 0;
    const char *s = hb_name_strip_prefix(name);
    int n = 0;
    snprintf(out[n++], HB_NAME_MAX, "%s", s);
    for (int r = 0; r < NRULES && n < cap; r++) {
        if (translate(k_rules[r].official, k_rules[r].other, s, out[n], HB_NAME_MAX)) n++;
        if (n < cap && translate(k_rules[r].other, k_rules[r].official, s, out[n], HB_NAME_MAX)) n++;
    }
    return n;
}

/* The official name of a tensor of checkpoint ck (training prefixes stripped, diffusers / transformers /
 * llama.cpp names translated). The two norm renames of the Wan blocks (official norm2 <-> diffusers norm3)
 * are both-way ambiguous: they apply only when ck uses diffusers naming. */
void hb_name_official(const hb_checkpoint *ck, const char *name, char out[HB_NAME_MAX]) {
    bool diffusers = false;
    for (int i = 0; i < hb_checkpoint_count(ck) && !diffusers; i++) {
        const char *n = hb_checkpoint_name(ck, i);
        diffusers = strstr(n, "attn1.") || strstr(n, "condition_embedder.") || strstr(n, "scale_shift_table");
    }
    const char *s = hb_name_strip_prefix(name);
    for (int r = 0; r < NRULES; r++) {
        bool swap = !strncmp(k_rules[r].official, "blocks.#.norm", 13) && !strncmp(k_rules[r].other, "blocks.#.norm", 13);
        if ((!swap || diffusers) && translate(k_rules[r].other, k_rules[r].official, s, out, HB_NAME_MAX)) return;
    }
    snprintf(out, HB_NAME_MAX, "%s", s);
}
