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
    }
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
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", 61, 8);
    expect_fail(p, "invalid JSON");
    write_raw(p, "[1, 2]  ", 8, 0);
    expect_fail(p, "not an object");
    write_raw(p, "{\"a\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], \"data_offsets\": [0, 2]}}", 65, 8);
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
        uint8_t want[8];
        for (int i = 0; i < 8; i++) want[i] = (uint8_t)((i + 1) * 7 + 1);
        CHECK(memcmp(t.data, want, 8) == 0);
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
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    check_round_trip(&r);
    check_hostile();
    check_golden();
    return tl_done();
}
