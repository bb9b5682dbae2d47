/* umT5 encoder forward pass. Reference: Wan-Video/Wan2.2 wan/modules/t5.py (T5Encoder, T5SelfAttention,
 * T5Attention, T5FeedForward, T5LayerNorm, T5RelativeEmbedding) as umt5_xxl(encoder_only=True) builds it
 * (shared_pos=False: one position-bias table per layer). */
#include "models/umt5.h"
#include "io/json_file.h"
#include "ops/ops.h"
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    hb_tensor norm1, q, k, v, o, norm2, gate, fc1, fc2, pos;
    bool droppable; /* every big weight points into the file mapping (not a copy): low-memory mode may drop it */
} umt5_layer;

struct hb_umt5 {
    hb_umt5_config cfg;
    hb_checkpoint *ck;
    bool owns_ck, released, low_memory;
    char path[1024];
    hb_tensor tok, norm;
    umt5_layer *layers;
};

hb_umt5_config hb_umt5_xxl_config(void) {
    hb_umt5_config c = {.vocab = 256384, .dim = 4096, .dim_attn = 4096, .dim_ffn = 10240, .num_heads = 64,
                        .num_layers = 24, .num_buckets = 32, .max_dist = 128, .eps = 1e-6f};
    return c;
}

const hb_umt5_config *hb_umt5_get_config(const hb_umt5 *m) { return &m->cfg; }

/* ---------- relative position buckets ---------- */

int hb_umt5_bucket(int64_t rel, int num_buckets, int max_dist) {
    /* bidirectional: half the buckets per direction */
    const int nb = num_buckets / 2;
    int bucket = rel > 0 ? nb : 0;
    const int64_t a = rel < 0 ? -rel : rel;
    const int max_exact = nb / 2;
    if (a < max_exact) return bucket + (int)a;
    /* max_exact + (log(a.float() / max_exact) / math.log(max_dist / max_exact) * (nb - max_exact)).long():
     * every tensor operation in float32 (the Python math.log is a double cast to float32 by the division). */
    const float x = (float)a / (float)max_exact;
    const float lg = logf(x);
    const float den = (float)log((double)max_dist / (double)max_exact);
    const float r = lg / den;
    const float v = r * (float)(nb - max_exact);
    int64_t large = max_exact + (int64_t)v;
    if (large > nb - 1) large = nb - 1;
    return bucket + (int)large;
}

/* ---------- construction ---------- */

static int get_w(hb_umt5 *m, const char *name, int ndim, int64_t d0, int64_t d1, hb_tensor *out) {
    int64_t shape[2] = {d0, d1};
    if (hb_checkpoint_get_shaped(m->ck, name, ndim, shape, out) != 0) return -1;
    /* GGUF block formats for 2-D weights (Linear layers and the token embedding: ops dequantize rows) */
    if (out->dtype != HB_F32 && out->dtype != HB_BF16 && out->dtype != HB_F16 && !(ndim == 2 && hb_dtype_is_quant(out->dtype)))
        return hb_error("%s: tensor '%s' has dtype %s (expected F32, BF16 or F16; GGUF block formats only for 2-D "
                        "weights)", hb_checkpoint_path(m->ck), name, hb_dtype_name(out->dtype));
    if (!hb_tensor_is_contiguous(out)) return hb_error("%s: tensor '%s' is not contiguous", hb_checkpoint_path(m->ck), name);
    return 0;
}

hb_umt5 *hb_umt5_create(hb_checkpoint *ck, const hb_umt5_config *cfg, bool owns_ck) {
    const hb_umt5_config *c = cfg;
    const char *path = ck ? hb_checkpoint_path(ck) : "(none)";
    if (!ck) { hb_error("umt5: no checkpoint"); return NULL; }
    if (c->vocab < 1 || c->dim < 1 || c->dim_attn < 1 || c->dim_ffn < 1 || c->num_heads < 1 || c->num_layers < 1 ||
        c->num_layers > 1024 || c->num_buckets < 4 || c->num_buckets % 2 || c->max_dist <= c->num_buckets / 4 ||
        c->dim_attn % c->num_heads || !(c->eps > 0)) {
        hb_error("%s: invalid umT5 config (vocab %lld, dim %lld, dim_attn %lld, ffn %lld, heads %d, layers %d, "
                 "buckets %d, max_dist %d)", path, (long long)c->vocab, (long long)c->dim, (long long)c->dim_attn,
                 (long long)c->dim_ffn, c->num_heads, c->num_layers, c->num_buckets, c->max_dist);
        return NULL;
    }
    hb_umt5 *m = hb_calloc(sizeof *m, "umt5 model");
    if (!m) return NULL;
    m->cfg = *c;
    m->ck = ck;
    snprintf(m->path, sizeof m->path, "%s", path);
    m->layers = hb_calloc((size_t)c->num_layers * sizeof *m->layers, "umt5 layers");
    if (!m->layers) goto fail;
    const int64_t D = c->dim, A = c->dim_attn, F = c->dim_ffn;
    if (get_w(m, "token_embedding.weight", 2, c->vocab, D, &m->tok) || get_w(m, "norm.weight", 1, D, 0, &m->norm))
        goto fail;
    for (int i = 0; i < c->num_layers; i++) {
        umt5_layer *L = &m->layers[i];
        char n[128];
#define W(field, suffix, nd, a, b)                                          \
        snprintf(n, sizeof n, "blocks.%d.%s", i, suffix);                   \
        if (get_w(m, n, nd, a, b, &L->field)) goto fail;
        W(norm1, "norm1.weight", 1, D, 0)
        W(q, "attn.q.weight", 2, A, D)
        W(k, "attn.k.weight", 2, A, D)
        W(v, "attn.v.weight", 2, A, D)
        W(o, "attn.o.weight", 2, D, A)
        W(norm2, "norm2.weight", 1, D, 0)
        W(gate, "ffn.gate.0.weight", 2, F, D)
        W(fc1, "ffn.fc1.weight", 2, F, D)
        W(fc2, "ffn.fc2.weight", 2, D, F)
        W(pos, "pos_embedding.embedding.weight", 2, c->num_buckets, c->num_heads)
#undef W
    }
    m->owns_ck = owns_ck;
    return m;
fail:
    hb_free(m->layers);
    hb_free(m);
    return NULL;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* buf = a + "/" + b (b may be NULL: buf = a); false when it does not fit. */
__attribute__((noinline)) static bool join(char *buf, size_t cap, const char *a, const char *b) {
    int n = b ? snprintf(buf, cap, "%s/%s", a, b) : snprintf(buf, cap, "%s", a);
    return n >= 0 && (size_t)n < cap;
}

/* transformers UMT5 config.json -> our config (only when it is one: it has d_model). Every size is range
 * checked (far above umt5-xxl's) so that derived sizes stay well inside 64 bits. Returns 1 when a config was
 * read, 0 when there is none, -1 on error. */
static int read_hf_config(const char *dir, hb_umt5_config *c) {
    char p[1100];
    if (!join(p, sizeof p, dir, "config.json") || !is_file(p)) return 0;
    json_t *j = hb_json_load_file(p, 0);
    if (!j) return -1;
    int rc = 0;
    if (json_is_object(j) && json_object_get(j, "d_model")) {
        int64_t dkv = 0;
        if (!rc) rc = hb_json_int64(j, "d_model", 1, 1 << 16, &c->dim, p);
        if (!rc) rc = hb_json_int64(j, "d_ff", 1, 1 << 18, &c->dim_ffn, p);
        if (!rc) rc = hb_json_int64(j, "vocab_size", 1, 1 << 22, &c->vocab, p);
        if (!rc) rc = hb_json_int(j, "num_heads", 1, 1024, &c->num_heads, p);
        if (!rc) rc = hb_json_int(j, "num_layers", 1, 1000, &c->num_layers, p);
        if (!rc) rc = hb_json_int(j, "relative_attention_num_buckets", 2, 1 << 16, &c->num_buckets, p);
        if (!rc) rc = hb_json_int(j, "relative_attention_max_distance", 1, 1 << 20, &c->max_dist, p);
        if (!rc) rc = hb_json_int64(j, "d_kv", 1, 1 << 16, &dkv, p);
        if (!rc) rc = hb_json_float(j, "layer_norm_epsilon", 1e-30, 1.0, &c->eps, p);
        if (dkv > 0) c->dim_attn = dkv * c->num_heads; /* both bounded: at most 2^26 */
        const char *act = json_string_value(json_object_get(j, "feed_forward_proj"));
        if (act && strcmp(act, "gated-gelu") != 0)
            rc = hb_error("%s: feed_forward_proj '%s' is not supported (umT5 uses gated-gelu)", p, act);
        rc = rc ? -1 : 1;
    } else if (!json_is_object(j)) {
        rc = hb_error("%s: expected a JSON object", p);
    }
    json_decref(j);
    return rc;
}

/* Without a config file: the sizes from the weight shapes (the real checkpoint gives the umt5-xxl
 * constants). Left at the constants when a tensor is missing: hb_umt5_create then names it. */
static void infer_config(hb_checkpoint *ck, hb_umt5_config *c) {
    hb_tensor tok, q, fc1, pos;
    if (!hb_checkpoint_has(ck, "token_embedding.weight") || !hb_checkpoint_has(ck, "blocks.0.attn.q.weight") ||
        !hb_checkpoint_has(ck, "blocks.0.ffn.fc1.weight") || !hb_checkpoint_has(ck, "blocks.0.pos_embedding.embedding.weight"))
        return;
    if (hb_checkpoint_get(ck, "token_embedding.weight", &tok) || hb_checkpoint_get(ck, "blocks.0.attn.q.weight", &q) ||
        hb_checkpoint_get(ck, "blocks.0.ffn.fc1.weight", &fc1) ||
        hb_checkpoint_get(ck, "blocks.0.pos_embedding.embedding.weight", &pos) || tok.ndim != 2 || q.ndim != 2 ||
        fc1.ndim != 2 || pos.ndim != 2)
        return;
    int layers = 0;
    for (;; layers++) {
        char n[64];
        snprintf(n, sizeof n, "blocks.%d.norm1.weight", layers);
        if (!hb_checkpoint_has(ck, n)) break;
    }
    c->vocab = tok.shape[0];
    c->dim = tok.shape[1];
    c->dim_attn = q.shape[0];
    c->dim_ffn = fc1.shape[0];
    c->num_buckets = (int)pos.shape[0];
    c->num_heads = (int)pos.shape[1];
    c->num_layers = layers;
    hb_clear_error();
}

hb_umt5 *hb_umt5_open(const char *path) {
    char wpath[1100], dir[1100];
    if (!join(wpath, sizeof wpath, path, NULL)) { hb_error("umt5: path too long: %.80s...", path); return NULL; }
    join(dir, sizeof dir, path, NULL);
    if (!is_dir(path)) { /* the config is looked for beside the file */
        char *s = strrchr(dir, '/');
        if (s) *s = 0;
        else join(dir, sizeof dir, ".", NULL);
    }
    /* A config.json next to the weights is used only when it is a transformers T5 config (d_model); the
     * DiT's config.json beside the official .pth is ignored that way. */
    hb_umt5_config c = hb_umt5_xxl_config();
    int have_cfg = read_hf_config(dir, &c);
    if (have_cfg < 0) return NULL;
    hb_checkpoint *ck = hb_checkpoint_open(wpath);
    if (!ck) return NULL;
    if (!have_cfg) infer_config(ck, &c);
    hb_umt5 *m = hb_umt5_create(ck, &c, true);
    if (!m) {
        hb_checkpoint_close(ck);
        return NULL;
    }
    return m;
}

/* Tell every memory space that caches weights (a GPU) to forget this tensor's host memory. */
static void forget(const hb_tensor *w) {
    if (w->data) hb_host_memory_released(w->data, hb_tensor_nbytes(w));
}

static void forget_layer(const umt5_layer *L) {
    const hb_tensor *ws[] = {&L->norm1, &L->q, &L->k, &L->v, &L->o, &L->norm2, &L->gate, &L->fc1, &L->fc2, &L->pos};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) forget(ws[i]);
}

void hb_umt5_release_weights(hb_umt5 *m) {
    if (!m || m->released) return;
    /* Device copies a backend made of these weights (keyed by host address) go with them: the mapping's
     * addresses may be reused by the next model's weights. */
    forget(&m->tok);
    forget(&m->norm);
    for (int l = 0; l < m->cfg.num_layers; l++) forget_layer(&m->layers[l]);
    if (m->owns_ck) hb_checkpoint_close(m->ck);
    m->ck = NULL;
    m->released = true;
    memset(&m->tok, 0, sizeof m->tok);
    memset(&m->norm, 0, sizeof m->norm);
    memset(m->layers, 0, (size_t)m->cfg.num_layers * sizeof *m->layers);
}

void hb_umt5_free(hb_umt5 *m) {
    if (!m) return;
    hb_umt5_release_weights(m);
    hb_free(m->layers);
    hb_free(m);
}

/* Is this data pointer a zero-copy tensor of the checkpoint (inside the file mapping)? */
static bool zero_copy(const hb_checkpoint *ck, const void *data) {
    for (int i = 0; i < hb_checkpoint_count(ck); i++)
        if (hb_checkpoint_tensor(ck, i).data == data) return hb_checkpoint_zero_copy(ck, i);
    return false;
}

void hb_umt5_set_low_memory(hb_umt5 *m, bool on) {
    m->low_memory = on && !m->released && m->owns_ck;
    if (!m->low_memory) return;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        umt5_layer *L = &m->layers[l];
        L->droppable = zero_copy(m->ck, L->q.data) && zero_copy(m->ck, L->k.data) && zero_copy(m->ck, L->v.data) &&
                       zero_copy(m->ck, L->o.data) && zero_copy(m->ck, L->gate.data) &&
                       zero_copy(m->ck, L->fc1.data) && zero_copy(m->ck, L->fc2.data);
    }
}

/* Drop this process's mapping of a weight's whole pages (file-backed, private, read-only, never written: the
 * next touch re-reads them from the page cache or the file). Only for zero-copy tensors (see droppable):
 * on a heap copy MADV_DONTNEED would zero the data. */
static void drop_pages(const hb_tensor *w) {
    static long page = 0;
    if (!page) page = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)w->data, e = a + hb_tensor_nbytes(w);
    uintptr_t b = (a + (uintptr_t)page - 1) & ~((uintptr_t)page - 1), f = e & ~((uintptr_t)page - 1);
    if (f > b) (void)madvise((void *)b, f - b, MADV_DONTNEED);
}

static void drop_layer(const umt5_layer *L) {
    const hb_tensor *ws[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->fc1, &L->fc2};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) drop_pages(ws[i]);
}

/* ---------- forward ---------- */

/* The activations of one pass, all in the current memory space (one arena). */
typedef struct {
    float *x, *h, *q, *k, *v, *att, *y, *fa, *fg, *bias, *rel;
    uint8_t *mask;
} umt5_act;

static int act_alloc(hb_arena *a, const hb_umt5_config *c, int64_t n, bool with_mask, umt5_act *t) {
    const size_t nD = (size_t)(n * c->dim) * sizeof(float), nA = (size_t)(n * c->dim_attn) * sizeof(float);
    const size_t nF = (size_t)(n * c->dim_ffn) * sizeof(float), H = (size_t)c->num_heads;
    memset(t, 0, sizeof *t);
    if (!(t->x = hb_arena_alloc(a, nD)) || !(t->h = hb_arena_alloc(a, nD)) || !(t->y = hb_arena_alloc(a, nD)) ||
        !(t->q = hb_arena_alloc(a, nA)) || !(t->k = hb_arena_alloc(a, nA)) || !(t->v = hb_arena_alloc(a, nA)) ||
        !(t->att = hb_arena_alloc(a, nA)) || !(t->fa = hb_arena_alloc(a, nF)) || !(t->fg = hb_arena_alloc(a, nF)) ||
        !(t->bias = hb_arena_alloc(a, H * (size_t)(n * n) * sizeof(float))) ||
        !(t->rel = hb_arena_alloc(a, H * (size_t)(2 * n - 1) * sizeof(float))))
        return -1;
    if (with_mask && !(t->mask = hb_arena_alloc(a, (size_t)n))) return -1;
    return 0;
}

/* Position bias [heads, n, n] of one layer, on the backend: bias[h, i, j] = pos[bucket(j - i), h]. rel_ids[r]
 * is the bucket of j - i = r - (n - 1) (host ids); the looked-up rows rel [2n-1, heads] are spread into the
 * Toeplitz layout by one strided copy (source strides: heads 1, query -heads, key +heads). */
static int pos_bias(const hb_tensor *emb, const int32_t *rel_ids, int64_t n, int heads, float *rel, float *bias) {
    if (hb_embed_rows(rel, emb, rel_ids, 2 * n - 1) != 0) return -1;
    const int64_t shape[3] = {heads, n, n}, ds[3] = {n * n, n, 1}, ss[3] = {1, -(int64_t)heads, heads};
    hb_copy_nd(bias, ds, rel + (n - 1) * heads, ss, 3, shape);
    return 0;
}

/* ids, mask: host; out and the trace buffers: the current memory space. */
static int forward(hb_umt5 *m, const int64_t *ids, const uint8_t *mask, int64_t n, float *out, const hb_umt5_trace *tr) {
    const hb_umt5_config *c = &m->cfg;
    if (m->released) return hb_error("%s: umT5 weights were released; open the encoder again to encode", m->path);
    if (n < 1 || n > 1 << 16) return hb_error("umt5: %lld tokens (need 1..65536)", (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return hb_error("umt5: token id %lld at position %lld is outside the vocabulary (%lld)", (long long)ids[i],
                            (long long)i, (long long)c->vocab);
    const int64_t D = c->dim, A = c->dim_attn, F = c->dim_ffn;
    const int H = c->num_heads;
    /* host side: token ids and the relative-position bucket of each offset j - i (the same for every layer) */
    int32_t *ids32 = hb_malloc((size_t)(3 * n - 1) * sizeof(int32_t), "umt5 ids");
    if (!ids32) return -1;
    int32_t *rel_ids = ids32 + n;
    for (int64_t i = 0; i < n; i++) ids32[i] = (int32_t)ids[i];
    for (int64_t r = 0; r < 2 * n - 1; r++) rel_ids[r] = hb_umt5_bucket(r - (n - 1), c->num_buckets, c->max_dist);
    /* one arena for the whole pass, sized by a measuring pass of the same allocations */
    hb_arena ar;
    umt5_act t;
    hb_arena_init_measure(&ar, "umt5 activations");
    act_alloc(&ar, c, n, mask != NULL, &t);
    const size_t cap = ar.peak;
    if (hb_arena_init_dev(&ar, cap, "umt5 activations") != 0) { hb_free(ids32); return -1; }
    int rc = act_alloc(&ar, c, n, mask != NULL, &t);
    if (rc == 0 && mask) rc = hb_dev_upload(t.mask, mask, (size_t)n);
    float *x = t.x, *h = t.h, *q = t.q, *k = t.k, *v = t.v, *att = t.att, *y = t.y, *fa = t.fa, *fg = t.fg;

    /* token embedding (row lookup; the stored dtype widened exactly) */
    if (rc == 0) rc = hb_embed_rows(x, &m->tok, ids32, n);
    if (rc == 0 && tr && tr->token_embedding) hb_copy(tr->token_embedding, x, n * D);

    for (int l = 0; l < c->num_layers && rc == 0; l++) {
        const umt5_layer *L = &m->layers[l];
        /* self-attention: x + o(attn(norm1(x))) */
        hb_rmsnorm(h, x, n, D, &L->norm1, c->eps);
        if (hb_linear(q, h, n, &L->q, NULL, false) || hb_linear(k, h, n, &L->k, NULL, false) ||
            hb_linear(v, h, n, &L->v, NULL, false)) { rc = -1; break; }
        if (pos_bias(&L->pos, rel_ids, n, H, t.rel, t.bias) != 0) { rc = -1; break; }
        if (l == 0 && tr && tr->pos_bias0) hb_copy(tr->pos_bias0, t.bias, (int64_t)H * n * n);
        hb_attention_args aa = {.out = att, .q = q, .k = k, .v = v, .lq = n, .lk = n, .heads = H,
                                .head_dim = (int)(A / H), .o_stride = A, .q_stride = A, .k_stride = A, .v_stride = A,
                                .scale = 1.0f, .bias = t.bias, .key_mask = t.mask};
        hb_attention(&aa);
        if (hb_linear(y, att, n, &L->o, NULL, false)) { rc = -1; break; }
        hb_add(x, x, y, n * D);
        /* FFN: x + fc2(fc1(h) * gelu_tanh(gate(h))), h = norm2(x) */
        hb_rmsnorm(h, x, n, D, &L->norm2, c->eps);
        if (hb_linear(fa, h, n, &L->fc1, NULL, false) || hb_linear(fg, h, n, &L->gate, NULL, false)) { rc = -1; break; }
        hb_gelu_tanh(fg, fg, n * F);
        hb_mul(fa, fa, fg, n * F);
        if (hb_linear(y, fa, n, &L->fc2, NULL, false)) { rc = -1; break; }
        hb_add(x, x, y, n * D);
        if (tr && tr->blocks && tr->blocks[l]) hb_copy(tr->blocks[l], x, n * D);
        if (m->low_memory) {
            /* the queued work must be done with this layer's weights before their pages (or device copies) go */
            if (hb_backend_sync() != 0) { rc = -1; break; }
            if (L->droppable) drop_layer(L);
            forget_layer(L);
        }
    }
    if (rc == 0) hb_rmsnorm(out, x, n, D, &m->norm, c->eps);
    /* the arena is freed below: every queued op must have finished with it */
    if (hb_backend_sync() != 0) rc = -1;
    if (rc != 0) hb_error_prefix("%s: umT5 forward: ", m->path);
    hb_arena_free(&ar);
    hb_free(ids32);
    return rc;
}

int hb_umt5_forward(hb_umt5 *m, const int64_t *ids, const uint8_t *mask, int64_t n, float *out, const hb_umt5_trace *trace) {
    return forward(m, ids, mask, n, out, trace);
}

int hb_umt5_encode(hb_umt5 *m, const int64_t *ids, int64_t n_valid, int64_t n_rows, float *out) {
    if (n_valid < 1 || n_valid > n_rows)
        return hb_error("umt5: %lld real tokens for %lld output rows (need 1 <= n_valid <= rows)", (long long)n_valid,
                        (long long)n_rows);
    if (forward(m, ids, NULL, n_valid, out, NULL) != 0) return -1;
    hb_fill(out + n_valid * m->cfg.dim, 0.0f, (n_rows - n_valid) * m->cfg.dim);
    return 0;
}
