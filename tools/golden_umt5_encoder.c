/* Golden runner for kind "umt5_encoder": T5Encoder(ids, mask) on the file's weights, config from the metadata.
 * out.hidden: the full-length forward (every row, padded keys masked); out.context: the production path
 * (hb_umt5_encode: only the n_valid real tokens computed, the rest zero); mid.*: token embedding, layer 0's
 * position bias and every block's output. Runs on the -d backend: results in its memory, ids and mask on the host. */
#include "golden.h"
#include "models/umt5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int golden_run_umt5_encoder(golden_case *g) {
    hb_umt5_config c = {
        .vocab = golden_cfg_int(g, "vocab", 0),
        .dim = golden_cfg_int(g, "dim", 0),
        .dim_attn = golden_cfg_int(g, "dim_attn", 0),
        .dim_ffn = golden_cfg_int(g, "dim_ffn", 0),
        .num_heads = (int)golden_cfg_int(g, "num_heads", 0),
        .num_layers = (int)golden_cfg_int(g, "num_layers", 0),
        .num_buckets = (int)golden_cfg_int(g, "num_buckets", 0),
        .max_dist = (int)golden_cfg_int(g, "max_dist", 128), /* T5RelativeEmbedding default */
        .eps = 1e-6f,
    };
    if (golden_cfg_int(g, "shared_pos", 0)) return hb_error("%s: shared_pos=true is not umT5 (per-layer bias expected)", g->path);
    hb_tensor ids_t, mask_t;
    if (golden_tensor(g, "in.ids", &ids_t) != 0 || golden_tensor(g, "in.mask", &mask_t) != 0) return -1;
    const int64_t n = hb_tensor_numel(&ids_t);
    if (ids_t.dtype != HB_I64 || mask_t.dtype != HB_I64 || hb_tensor_numel(&mask_t) != n)
        return hb_error("%s: in.ids / in.mask must be I64 of the same size", g->path);
    const char *nv = hb_checkpoint_metadata(g->ck, "n_valid");
    const int64_t *ids = ids_t.data, *mk = mask_t.data;
    int64_t n_valid = 0;
    for (int64_t i = 0; i < n; i++) n_valid += mk[i] != 0;
    if (nv && atoll(nv) != n_valid) return hb_error("%s: metadata n_valid %s disagrees with in.mask (%lld)", g->path, nv, (long long)n_valid);
    for (int64_t i = 0; i < n; i++)
        if ((mk[i] != 0) != (i < n_valid)) return hb_error("%s: in.mask is not a prefix of real tokens", g->path);

    hb_umt5 *m = hb_umt5_create(g->ck, &c, false);
    if (!m) return -1;
    /* every result in the backend's memory (golden_compare reads it back); ids and mask stay host */
    const int64_t D = c.dim, H = c.num_heads;
    size_t nf = (size_t)(n * D) * (size_t)(3 + c.num_layers) + (size_t)(H * n * n);
    float *buf = hb_dev_alloc(nf * sizeof(float), "umt5 golden");
    float **blocks = hb_calloc((size_t)c.num_layers * sizeof(float *), "umt5 golden");
    uint8_t *mask = hb_malloc((size_t)n, "umt5 golden");
    int rc = -1;
    if (!buf || !blocks || !mask) goto done;
    float *hidden = buf, *ctx = hidden + n * D, *emb = ctx + n * D, *pb = emb + n * D, *bl = pb + H * n * n;
    for (int l = 0; l < c.num_layers; l++) blocks[l] = bl + (size_t)l * (size_t)(n * D);
    for (int64_t i = 0; i < n; i++) mask[i] = mk[i] != 0;
    hb_umt5_trace tr = {.token_embedding = emb, .pos_bias0 = pb, .blocks = blocks};
    if (hb_umt5_forward(m, ids, mask, n, hidden, &tr) != 0) goto done;
    if (hb_umt5_encode(m, ids, n_valid, n, ctx) != 0) goto done;
    golden_compare(g, "out.hidden", hidden, n * D);
    golden_compare(g, "out.context", ctx, n * D);
    golden_compare(g, "mid.token_embedding", emb, n * D);
    golden_compare(g, "mid.blocks.0.pos_bias", pb, H * n * n);
    for (int l = 0; l < c.num_layers; l++) {
        char name[64];
        snprintf(name, sizeof name, "mid.blocks.%d", l);
        golden_compare(g, name, blocks[l], n * D);
    }
    rc = 0;
done:
    hb_dev_free(buf);
    hb_free(blocks);
    hb_free(mask);
    hb_umt5_free(m);
    return rc;
}
