/* io: `hb inspect` through the CLI on a good sharded folder (text and --json) and on bad input. */
#include "testlib.h"
#include "io/checkpoint.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char out[1 << 16];

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    const char *hb = tl_hb_bin();
    if (!hb) tl_skip("HB_BIN not set (run through ctest)");
    char dir[512], p1[600], p2[600], cmd[2048];
    snprintf(dir, sizeof dir, "%s/model", tl_tmpdir());
    mkdir(dir, 0755);
    float a[6], b[4];
    uint16_t c[10];
    tl_fill_normal(&r, a, 6, 1.0f);
    tl_fill_normal(&r, b, 4, 1.0f);
    for (int i = 0; i < 10; i++) c[i] = hb_f32_to_bf16(hb_rng_normal(&r));
    hb_tensor t1[] = {hb_tensor_2d(HB_F32, 2, 3, a), hb_tensor_1d(HB_F32, 4, b)};
    const char *n1[] = {"blocks.0.self_attn.q.weight", "blocks.0.self_attn.q.bias"};
    hb_tensor t2 = hb_tensor_2d(HB_BF16, 5, 2, c);
    const char *n2[] = {"head.head.weight"};
    const char *meta[] = {"format", "pt", NULL};
    snprintf(p1, sizeof p1, "%s/diffusion_pytorch_model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/diffusion_pytorch_model-00002-of-00002.safetensors", dir);
    CHECK(hb_safetensors_write(p1, 2, n1, t1, meta) == 0);
    CHECK(hb_safetensors_write(p2, 1, n2, &t2, NULL) == 0);
    snprintf(cmd, sizeof cmd, "%s/diffusion_pytorch_model.safetensors.index.json", dir);
    FILE *f = fopen(cmd, "w");
    fprintf(f, "{\"metadata\": {\"total_size\": 60}, \"weight_map\": {"
               "\"blocks.0.self_attn.q.weight\": \"diffusion_pytorch_model-00001-of-00002.safetensors\","
               "\"blocks.0.self_attn.q.bias\": \"diffusion_pytorch_model-00001-of-00002.safetensors\","
               "\"head.head.weight\": \"diffusion_pytorch_model-00002-of-00002.safetensors\"}}");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/config.json", dir);
    f = fopen(cmd, "w");
    fprintf(f, "{\"dim\": 3072, \"num_layers\": 30, \"model_type\": \"ti2v\"}");
    fclose(f);

    /* text */
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' 2>&1", hb, dir);
    int rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "exit %d: %s", rc, out);
    CHECK(strstr(out, "blocks.0.self_attn.q.weight") && strstr(out, "head.head.weight"));
    CHECK(strstr(out, "[2, 3]") && strstr(out, "BF16") && strstr(out, "[5, 2]"));
    CHECK(strstr(out, "diffusion_pytorch_model-00002-of-00002.safetensors")); /* shard column */
    CHECK(strstr(out, "\"num_layers\": 30"));                                   /* config.json */
    CHECK(strstr(out, "format: pt") && strstr(out, "total_size: 60"));         /* metadata */
    CHECKF(strstr(out, "total: 3 tensors, 20 parameters") && strstr(out, "60 bytes"), "%s", out);

    /* json */
    snprintf(cmd, sizeof cmd, "'%s' inspect --json '%s'", hb, dir);
    rc = tl_run(cmd, out, sizeof out);
    CHECK(rc == 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    CHECKF(j != NULL, "invalid JSON from --json: %s", je.text);
    if (j) {
        CHECK(json_integer_value(json_object_get(j, "parameters")) == 20);
        CHECK(json_integer_value(json_object_get(j, "bytes")) == 60);
        CHECK(json_integer_value(json_object_get(j, "files")) == 2);
        json_t *ts = json_object_get(j, "tensors");
        CHECK(json_array_size(ts) == 3);
        CHECK(json_integer_value(json_object_get(json_object_get(j, "config"), "dim")) == 3072);
        json_t *t0 = json_array_get(ts, 2);
        CHECK(!strcmp(json_string_value(json_object_get(t0, "file")), p2));
        CHECK(!strcmp(json_string_value(json_object_get(t0, "dtype")), "BF16"));
        json_decref(j);
    }
    /* filter */
    snprintf(cmd, sizeof cmd, "'%s' inspect --filter head '%s'", hb, dir);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && strstr(out, "head.head.weight") && !strstr(out, "self_attn"));

    /* help */
    snprintf(cmd, sizeof cmd, "'%s' inspect --help", hb);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && strstr(out, "usage: hb inspect") && strstr(out, "--json"));

    /* bad file: exit 1, one message naming the file and the problem */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.safetensors", tl_tmpdir());
    f = fopen(bad, "wb");
    fwrite("\xff\x00\x00\x00\x00\x00\x00\x00{\"a\"", 1, 12, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' 2>&1", hb, bad);
    rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 1, "exit %d", rc);
    CHECKF(strstr(out, "hb inspect: ") && strstr(out, bad) && strstr(out, "truncated"), "%s", out);
    CHECKF(strchr(out, '\n') == out + strlen(out) - 1, "more than one line: %s", out);
    /* bad config.json */
    snprintf(cmd, sizeof cmd, "%s/config.json", dir);
    f = fopen(cmd, "w");
    fprintf(f, "{\"dim\": ");
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' 2>&1", hb, dir);
    rc = tl_run(cmd, out, sizeof out);
    CHECKF(rc == 1 && strstr(out, "config.json") && strstr(out, "invalid JSON"), "exit %d: %s", rc, out);
    /* missing argument, unknown flag */
    snprintf(cmd, sizeof cmd, "'%s' inspect 2>&1", hb);
    CHECK(tl_run(cmd, out, sizeof out) == 2);
    snprintf(cmd, sizeof cmd, "'%s' inspect --bogus x 2>&1", hb);
    CHECK(tl_run(cmd, out, sizeof out) == 2 && strstr(out, "--bogus"));
    return tl_done();
}
