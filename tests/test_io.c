/* io: safetensors round trip of every dtype, zero copy, metadata, sharded folders, name mapping, and
 * hostile safetensors files (each must give one error naming the file and the problem). */
#include "testlib.h"
#include "io/checkpoint.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static bool in_file_map(const void *p, const char *path) {
    /* The mapping of path shows in /proc/self/maps; check p lies inside one of its ranges. */
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    bool ok = false;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2) continue;
        const char *nm = strchr(line, '/');
        if (!nm) continue;
        size_t l = strlen(nm);
        if (l && nm[l - 1] == '\n') l--;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t bl = strlen(base);
        if (l >= bl && !strncmp(nm + l - bl, base, bl) && (uintptr_t)p >= lo && (uintptr_t)p < hi) ok = true;
    }
    if (f) fclose(f);
    return ok;
}

/* Round trip: random tensors of every dtype, with metadata; read back equal bytes, zero copy, aligned. */
static void check_round_trip(hb_rng *r) {
    char path[512];
    snprintf(path, sizeof path, "%s/all.safetensors", tl_tmpdir());
    enum { N = HB_DTYPE_COUNT + 2 };
    char names[N][32];
    const char *np[N];
    hb_tensor ts[N];
    void *bufs[N];
    for (int i = 0; i < N; i++) {
        hb_dtype dt = (hb_dtype)(i % HB_DTYPE_COUNT);
        int nd = 1 + (int)(hb_rng_u64(r) % 4);
        int64_t sh[4];
        for (int d = 0; d < nd; d++) sh[d] = 1 + (int64_t)(hb_rng_u64(r) % 5);
        if (i == N - 1) { nd = 0; } /* scalar */
        if (i == N - 2) { nd = 2; sh[0] = 0; sh[1] = 3; } /* empty */
        ts[i] = hb_tensor_make(dt, nd, sh, NULL);
        size_t nb = hb_tensor_nbytes(&ts[i]);
        bufs[i] = malloc(nb + 1);
        for (size_t k = 0; k < nb; k++) ((uint8_t *)bufs[i])[k] = (uint8_t)hb_rng_u64(r);
        if (dt == HB_BOOL) for (size_t k = 0; k < nb; k++) ((uint8_t *)bufs[i])[k] &= 1;
        ts[i].data = bufs[i];
        snprintf(names[i], sizeof names[i], "t%d.%s", i, hb_dtype_name(dt));
        np[i] = names[i];
    }
    const char *meta[] = {"kind", "test", "config", "{\"dim\": 4}", NULL};
    CHECKF(hb_safetensors_write(path, N, np, ts, meta) == 0, "%s", hb_last_error());
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (!ck) return;
    CHECK(hb_checkpoint_count(ck) == N);
    CHECK(hb_checkpoint_metadata(ck, "kind") && !strcmp(hb_checkpoint_metadata(ck, "kind"), "test"));
    CHECK(hb_checkpoint_metadata(ck, "config") && !strcmp(hb_checkpoint_metadata(ck, "config"), "{\"dim\": 4}"));
    CHECK(hb_checkpoint_metadata(ck, "nope") == NULL);
    for (int i = 0; i < N; i++) {
        CHECK(!strcmp(hb_checkpoint_name(ck, i), names[i])); /* header order = write order */
        hb_tensor t;
        CHECKF(hb_checkpoint_get(ck, names[i], &t) == 0, "%s", hb_last_error());
        CHECK(t.dtype == ts[i].dtype && hb_tensor_same_shape(&t, &ts[i]) && hb_tensor_is_contiguous(&t));
        size_t nb = hb_tensor_nbytes(&t);
        CHECKF(nb == 0 || memcmp(t.data, bufs[i], nb) == 0, "tensor %s differs", names[i]);
        CHECKF((uintptr_t)t.data % hb_dtype_size(t.dtype) == 0, "tensor %s misaligned", names[i]);
        if (nb) CHECKF(in_file_map(t.data, path), "tensor %s is not inside the mapping", names[i]);
        CHECK(!strcmp(hb_checkpoint_file_of(ck, i), path));
        CHECK(hb_checkpoint_zero_copy(ck, i));
    }
    CHECK(!hb_checkpoint_zero_copy(ck, N) && !hb_checkpoint_zero_copy(ck, -1));
    CHECK(hb_checkpoint_metadata_key(ck, 0) && !strcmp(hb_checkpoint_metadata_key(ck, 0), "kind"));
    CHECK(hb_checkpoint_metadata_key(ck, 2) == NULL);
    int64_t want[4] = {ts[0].shape[0], -1, -1, -1};
    hb_tensor t;
    CHECK(hb_checkpoint_get_shaped(ck, names[0], ts[0].ndim, want, &t) == 0);
    want[0] += 1;
    CHECK(hb_checkpoint_get_shaped(ck, names[0], ts[0].ndim, want, &t) != 0);
    CHECKF(strstr(hb_last_error(), path) && strstr(hb_last_error(), names[0]), "%s", hb_last_error());
    CHECK(hb_checkpoint_get(ck, "missing.weight", &t) != 0 && strstr(hb_last_error(), "missing.weight"));
    CHECK(!hb_checkpoint_has(ck, "missing.weight"));
    hb_checkpoint_close(ck);

    /* Strided (non-contiguous) source is gathered on write. */
    float src[12];
    tl_fill_normal(r, src, 12, 1.0f);
    hb_tensor full = hb_tensor_2d(HB_F32, 3, 4, src), col;
    hb_tensor_narrow(&full, 1, 1, 2, &col);
    const char *cn[] = {"col"};
    CHECK(hb_safetensors_write(path, 1, cn, &col, NULL) == 0);
    ck = hb_checkpoint_open(path);
    CHECK(ck && hb_checkpoint_get(ck, "col", &t) == 0);
    if (ck) {
        const float *v = t.data;
        CHECK(t.shape[0] == 3 && t.shape[1] == 2 && v[0] == src[1] && v[1] == src[2] && v[4] == src[9] && v[5] == src[10]);
        hb_checkpoint_close(ck);
    }
    for (int i = 0; i < N; i++) free(bufs[i]);
}

/* Raw file: 8-byte length + header + data bytes. */
static void write_raw(const char *path, const char *hdr, uint64_t hlen_field, size_t data_bytes) {
    size_t hl = strlen(hdr), n = 8 + hl + data_bytes;
    uint8_t *b = calloc(1, n + 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hlen_field >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < data_bytes; i++) b[8 + hl + i] = (uint8_t)(i * 7 + 1);
    write_bytes(path, b, n);
    free(b);
}

static void expect_fail(const char *path, const char *what) {
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck == NULL, "%s: opened but should fail (%s)", path, what);
    if (ck) { hb_checkpoint_close(ck); return; }
    const char *e = hb_last_error();
    CHECKF(strstr(e, path) != NULL, "error does not name the file: %s", e);
    CHECKF(strstr(e, what) != NULL, "error '%s' does not say '%s'", e, what);
}

static void check_hostile(void) {
    char p[512];
    const char *d = tl_tmpdir();
    snprintf(p, sizeof p, "%s/bad.safetensors", d);
    write_bytes(p, "\x10\x00\x00", 3);
    expect_fail(p, "truncated");
    write_bytes(p, "", 0);
    expect_fail(p, "truncated");
    write_raw(p, "{}", 1000, 0);
    expect_fail(p, "truncated");
    write_raw(p, "{}", (uint64_t)1 << 40, 0);
    expect_fail(p, "exceeds");
    write_bytes(p, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 15);
    expect_fail(p, "legacy");
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", 61, 8);
    expect_fail(p, "invalid JSON");
    write_raw(p, "[1, 2]  ", 8, 0);
    expect_fail(p, "not an object");
    write_raw(p, "{\"a\": {\"dtype\": \"F6_E3M2\", \"shape\": [2], \"data_offsets\": [0, 2]}}", 65, 8);
    expect_fail(p, "unknown dtype");
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 62, 8);
    expect_fail(p, "outside the data area");
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 61, 8);
    expect_fail(p, "end before begin");
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 61, 8);
    expect_fail(p, "needs 12");
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [-3], \"data_offsets\": [0, 8]}}", 62, 8);
    expect_fail(p, "non-negative");
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", 63, 8);
    expect_fail(p, "non-negative");
    const char *big = "{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], \"data_offsets\": [0, 0]}}";
    write_raw(p, big, strlen(big), 8);
    expect_fail(p, "overflow");
    const char *big2 = "{\"a\": {\"dtype\": \"F64\", \"shape\": [1152921504606846976, 2], \"data_offsets\": [0, 0]}}";
    write_raw(p, big2, strlen(big2), 8);
    expect_fail(p, "overflow");
    const char *ov = "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                     " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}";
    write_raw(p, ov, strlen(ov), 16);
    expect_fail(p, "overlap");
    const char *dup = "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                      " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}";
    write_raw(p, dup, strlen(dup), 8);
    expect_fail(p, "duplicate");
    const char *six = "{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}";
    write_raw(p, six, strlen(six), 8);
    expect_fail(p, "dimensions");
    const char *nometa = "{\"__metadata__\": [1], \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    write_raw(p, nometa, strlen(nometa), 8);
    expect_fail(p, "__metadata__");
    const char *noff = "{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}";
    write_raw(p, noff, strlen(noff), 8);
    expect_fail(p, "data_offsets");
    /* a missing file and an empty folder */
    snprintf(p, sizeof p, "%s/does-not-exist.safetensors", d);
    expect_fail(p, "cannot open");
    snprintf(p, sizeof p, "%s/emptydir", d);
    mkdir(p, 0755);
    expect_fail(p, "no checkpoint");

    /* A misaligned F32 tensor (odd offset) is copied into an aligned buffer, same values. */
    snprintf(p, sizeof p, "%s/misaligned.safetensors", d);
    const char *mis = "{\"u\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
                      " \"f\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [1, 9]}}";
    char mbuf[256];
    snprintf(mbuf, sizeof mbuf, "%-*s", (int)((strlen(mis) + 7) / 8 * 8), mis); /* data area 8-aligned */
    write_raw(p, mbuf, strlen(mbuf), 9);
    hb_checkpoint *ck = hb_checkpoint_open(p);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (ck) {
        hb_tensor t;
        CHECK(hb_checkpoint_get(ck, "f", &t) == 0 && (uintptr_t)t.data % 4 == 0);
        CHECK(!hb_checkpoint_zero_copy(ck, 1) && hb_checkpoint_zero_copy(ck, 0));
        uint8_t want[8];
        for (int i = 0; i < 8; i++) want[i] = (uint8_t)((i + 1) * 7 + 1);
        CHECK(memcmp(t.data, want, 8) == 0);
        hb_checkpoint_close(ck);
    }
}

static hb_tensor small(hb_rng *r, float *buf, int n) {
    tl_fill_normal(r, buf, n, 1.0f);
    return hb_tensor_1d(HB_F32, n, buf);
}

/* Sharded folder: index preferred, shard of each tensor reported, broken indexes rejected. */
static void check_sharded(hb_rng *r) {
    char dir[512], p[600], p2[600], idx[600];
    snprintf(dir, sizeof dir, "%s/sharded", tl_tmpdir());
    mkdir(dir, 0755);
    float a[5], b[3], c[4];
    hb_tensor ta = small(r, a, 5), tb = small(r, b, 3), tc = small(r, c, 4);
    const char *n1[] = {"blocks.0.self_attn.q.weight", "blocks.0.self_attn.q.bias"};
    hb_tensor t1[] = {ta, tb};
    const char *n2[] = {"head.head.weight"};
    const char *meta2[] = {"format", "pt", NULL};
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(hb_safetensors_write(p, 2, n1, t1, NULL) == 0);
    CHECK(hb_safetensors_write(p2, 1, n2, &tc, meta2) == 0);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(idx, "w");
    fprintf(f, "{\"metadata\": {\"total_size\": 48}, \"weight_map\": {"
               "\"blocks.0.self_attn.q.weight\": \"model-00001-of-00002.safetensors\","
               "\"blocks.0.self_attn.q.bias\": \"model-00001-of-00002.safetensors\","
               "\"head.head.weight\": \"model-00002-of-00002.safetensors\"}}");
    fclose(f);
    for (int k = 0; k < 2; k++) {
        hb_checkpoint *ck = hb_checkpoint_open(k ? idx : dir);
        CHECKF(ck != NULL, "%s", hb_last_error());
        if (!ck) continue;
        CHECK(hb_checkpoint_count(ck) == 3);
        CHECK(hb_checkpoint_metadata(ck, "total_size") && !strcmp(hb_checkpoint_metadata(ck, "total_size"), "48"));
        CHECK(hb_checkpoint_metadata(ck, "format") && !strcmp(hb_checkpoint_metadata(ck, "format"), "pt"));
        hb_tensor t;
        CHECK(hb_checkpoint_get(ck, "head.head.weight", &t) == 0 && !memcmp(t.data, c, 16));
        CHECK(hb_checkpoint_get(ck, "proj_out.weight", &t) == 0 && !memcmp(t.data, c, 16)); /* diffusers name */
        CHECK(hb_checkpoint_get(ck, "blocks.0.self_attn.q.bias", &t) == 0 && !memcmp(t.data, b, 12));
        for (int i = 0; i < 3; i++) {
            const char *want = !strcmp(hb_checkpoint_name(ck, i), "head.head.weight") ? p2 : p;
            CHECKF(!strcmp(hb_checkpoint_file_of(ck, i), want), "%s in %s", hb_checkpoint_name(ck, i), hb_checkpoint_file_of(ck, i));
        }
        CHECK(hb_checkpoint_get(ck, "nope", &t) != 0 && strstr(hb_last_error(), "2 files"));
        hb_checkpoint_close(ck);
    }
    /* index naming a missing shard */
    f = fopen(idx, "w");
    fprintf(f, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"gone.safetensors\"}}");
    fclose(f);
    hb_checkpoint *ck = hb_checkpoint_open(dir);
    CHECK(ck == NULL && strstr(hb_last_error(), idx) && strstr(hb_last_error(), "gone.safetensors") &&
          strstr(hb_last_error(), "cannot open"));
    /* index whose weight map names a tensor the shard lacks */
    f = fopen(idx, "w");
    fprintf(f, "{\"weight_map\": {\"blocks.0.self_attn.q.weight\": \"model-00001-of-00002.safetensors\","
               " \"lost\": \"model-00002-of-00002.safetensors\"}}");
    fclose(f);
    ck = hb_checkpoint_open(idx);
    CHECK(ck == NULL && strstr(hb_last_error(), idx) && strstr(hb_last_error(), "'lost'") && strstr(hb_last_error(), "lacks"));
    /* an index escaping its folder */
    f = fopen(idx, "w");
    fprintf(f, "{\"weight_map\": {\"a\": \"../all.safetensors\"}}");
    fclose(f);
    ck = hb_checkpoint_open(idx);
    CHECK(ck == NULL && strstr(hb_last_error(), "relative path"));
    f = fopen(idx, "w");
    fprintf(f, "{\"weight_map\": [1, 2]}");
    fclose(f);
    ck = hb_checkpoint_open(idx);
    CHECK(ck == NULL && strstr(hb_last_error(), idx) && strstr(hb_last_error(), "weight_map"));
    f = fopen(idx, "w");
    fprintf(f, "{\"weight_map\": {\"a\": ");
    fclose(f);
    ck = hb_checkpoint_open(idx);
    CHECK(ck == NULL && strstr(hb_last_error(), idx) && strstr(hb_last_error(), "invalid JSON"));
    /* no index: every *.safetensors of the folder; the same name in two shards is an error */
    remove(idx);
    ck = hb_checkpoint_open(dir);
    CHECKF(ck != NULL && hb_checkpoint_count(ck) == 3, "%s", hb_last_error());
    hb_checkpoint_close(ck);
    const char *n3[] = {"head.head.weight"};
    snprintf(p, sizeof p, "%s/extra.safetensors", dir);
    CHECK(hb_safetensors_write(p, 1, n3, &tc, NULL) == 0);
    ck = hb_checkpoint_open(dir);
    CHECK(ck == NULL && strstr(hb_last_error(), "two shards") && strstr(hb_last_error(), "head.head.weight"));
}

/* Official <-> diffusers/transformers names, both ways, plus training prefixes. */
static void check_names(hb_rng *r) {
    static const char *const pairs[][2] = {
        {"blocks.3.self_attn.q.weight", "blocks.3.attn1.to_q.weight"},
        {"blocks.3.self_attn.o.bias", "blocks.3.attn1.to_out.0.bias"},
        {"blocks.3.self_attn.norm_k.weight", "blocks.3.attn1.norm_k.weight"},
        {"blocks.12.cross_attn.v.weight", "blocks.12.attn2.to_v.weight"},
        {"blocks.3.ffn.0.weight", "blocks.3.ffn.net.0.proj.weight"},
        {"blocks.3.ffn.2.bias", "blocks.3.ffn.net.2.bias"},
        {"blocks.3.norm3.weight", "blocks.3.norm2.weight"},
        {"blocks.3.modulation", "blocks.3.scale_shift_table"},
        {"patch_embedding.weight", "patch_embedding.weight"},
        {"text_embedding.2.weight", "condition_embedder.text_embedder.linear_2.weight"},
        {"time_embedding.0.bias", "condition_embedder.time_embedder.linear_1.bias"},
        {"time_projection.1.weight", "condition_embedder.time_proj.weight"},
        {"head.head.bias", "proj_out.bias"},
        {"head.modulation", "scale_shift_table"},
        {"token_embedding.weight", "shared.weight"},
        {"blocks.1.attn.k.weight", "encoder.block.1.layer.0.SelfAttention.k.weight"},
        {"blocks.1.norm1.weight", "encoder.block.1.layer.0.layer_norm.weight"},
        {"blocks.1.norm2.weight", "encoder.block.1.layer.1.layer_norm.weight"},
        {"blocks.1.ffn.gate.0.weight", "encoder.block.1.layer.1.DenseReluDense.wi_0.weight"},
        {"blocks.1.ffn.fc1.weight", "encoder.block.1.layer.1.DenseReluDense.wi_1.weight"},
        {"blocks.1.ffn.fc2.weight", "encoder.block.1.layer.1.DenseReluDense.wo.weight"},
        {"blocks.1.pos_embedding.embedding.weight", "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"},
        {"norm.weight", "encoder.final_layer_norm.weight"},
    };
    enum { NP = sizeof pairs / sizeof pairs[0] };
    float vals[NP][2];
    hb_tensor ts[NP];
    for (int i = 0; i < NP; i++) ts[i] = small(r, vals[i], 2);
    char path[512];
    const char *names[NP];
    char pref[NP][300];
    for (int side = 0; side < 2; side++) {
        /* side 0: file has official names behind "model." ; side 1: file has the other naming */
        for (int i = 0; i < NP; i++) {
            if (side == 0) { snprintf(pref[i], sizeof pref[i], "model.%s", pairs[i][0]); names[i] = pref[i]; }
            else names[i] = pairs[i][1];
        }
        snprintf(path, sizeof path, "%s/names%d.safetensors", tl_tmpdir(), side);
        /* pairs with identical names on both sides would be duplicates only on side 1; they are unique */
        CHECKF(hb_safetensors_write(path, NP, names, ts, NULL) == 0, "%s", hb_last_error());
        hb_checkpoint *ck = hb_checkpoint_open(path);
        CHECKF(ck != NULL, "%s", hb_last_error());
        if (!ck) continue;
        for (int i = 0; i < NP; i++)
            for (int q = 0; q < 2; q++) {
                hb_tensor t;
                int rc = hb_checkpoint_get(ck, pairs[i][q], &t);
                CHECKF(rc == 0 && !memcmp(t.data, vals[i], 8), "side %d: '%s' not found as '%s' (%s)", side,
                       pairs[i][q], names[i], rc ? hb_last_error() : "wrong tensor");
            }
        hb_tensor t;
        CHECK(hb_checkpoint_get(ck, "generator.blocks.3.self_attn.q.weight", &t) == 0 && !memcmp(t.data, vals[0], 8));
        CHECK(hb_checkpoint_get(ck, "model.diffusion_model.head.modulation", &t) == 0 && !memcmp(t.data, vals[13], 8));
        hb_checkpoint_close(ck);
    }
}

/* Golden files are safetensors: they open and carry "kind" metadata (skipped without shared/). */
static void check_golden(void) {
    const char *sd = tl_shared_dir();
    if (!sd) { fprintf(stderr, "shared/ missing: golden open check skipped\n"); return; }
    char p[1024];
    snprintf(p, sizeof p, "%s/golden/t5.safetensors", sd);
    FILE *f = fopen(p, "rb");
    if (!f) return;
    fclose(f);
    hb_checkpoint *ck = hb_checkpoint_open(p);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (!ck) return;
    CHECK(hb_checkpoint_metadata(ck, "kind") && !strcmp(hb_checkpoint_metadata(ck, "kind"), "umt5_encoder"));
    hb_tensor t;
    CHECK(hb_checkpoint_get(ck, "token_embedding.weight", &t) == 0 && t.ndim == 2);
    /* transformers naming finds the official tensor */
    hb_tensor u;
    CHECK(hb_checkpoint_get(ck, "shared.weight", &u) == 0 && u.data == t.data);
    CHECK(hb_checkpoint_get(ck, "encoder.block.0.layer.0.SelfAttention.q.weight", &u) == 0);
    CHECK(hb_checkpoint_get(ck, "blocks.0.attn.q.weight", &t) == 0 && u.data == t.data);
    hb_checkpoint_close(ck);
    /* every golden file opens, carries "kind", every tensor aligned for its dtype (causal_window_sink holds
     * I64 tensors at offsets that are not 8-aligned: those are the copied ones) */
    static const char *const files[] = {"dit21", "dit22", "causal_global", "causal_window_sink", "vae21", "vae22",
                                        "sched", "taew21", "taew22"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        snprintf(p, sizeof p, "%s/golden/%s.safetensors", sd, files[k]);
        if (!(f = fopen(p, "rb"))) continue;
        fclose(f);
        ck = hb_checkpoint_open(p);
        CHECKF(ck != NULL, "%s", hb_last_error());
        if (!ck) continue;
        CHECKF(hb_checkpoint_metadata(ck, "kind") != NULL, "%s has no kind", p);
        int misaligned = 0;
        for (int i = 0; i < hb_checkpoint_count(ck); i++) {
            hb_tensor t = hb_checkpoint_tensor(ck, i);
            misaligned += (uintptr_t)t.data % hb_dtype_size(t.dtype) != 0;
        }
        CHECKF(misaligned == 0, "%s: %d tensors misaligned", p, misaligned);
        hb_checkpoint_close(ck);
    }
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    check_round_trip(&r);
    check_hostile();
    check_sharded(&r);
    check_names(&r);
    check_golden();
    return tl_done();
}
