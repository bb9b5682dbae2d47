/* Hostile configs: every numeric field of the DiT config.json, the umT5 config.json, the Wan VAE config and
 * hummingbird.json is type and range checked. Each case must fail with one error line naming the file and the
 * field (no silent truncation such as "text_len": 4294967297 read as 1, no float-to-int overflow, no int
 * overflow in a derived size: run under -DHB_SANITIZE=ON to see UBSan stay quiet). A valid config of each kind
 * must still parse to the values it states. */
#include "testlib.h"
#include "models/light_vae.h"
#include "io/json_file.h"
#include "models/umt5.h"
#include "models/wan_dit.h"
#include "models/wan_vae.h"
#include "pipeline/model_folder.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* the error names `file` and `field`, on one line */
static void check_error(const char *label, const char *file, const char *field) {
    const char *e = hb_last_error();
    CHECKF(strstr(e, file) && strstr(e, field) && !strchr(e, '\n'), "%s: error '%s' should name %s and \"%s\"", label,
           e, file, field);
}

/* One hostile case: refused (rc != 0) with one line naming `file` and the field. */
static void check_refused(const char *what, size_t i, int rc, const char *file, const char *field) {
    CHECKF(rc != 0, "%s case %zu (%s) parsed", what, i, field);
    if (!rc) return;
    char label[48];
    snprintf(label, sizeof label, "%s case %zu", what, i);
    check_error(label, file, field);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

#define DIT_BASE "\"model_type\": \"t2v\", \"ffn_dim\": 64, \"freq_dim\": 16, \"num_layers\": 2, \"text_dim\": 24, "
static const struct { const char *json, *field; } dit_cases[] = {
    {"{" DIT_BASE "\"dim\": 1e20, \"num_heads\": 2}", "dim"},
    {"{" DIT_BASE "\"dim\": -1e300, \"num_heads\": 2}", "dim"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"text_len\": 4294967297}", "text_len"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 4294967298}", "num_heads"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"num_layers\": 9223372036854775807}", "num_layers"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"ffn_dim\": \"64\"}", "ffn_dim"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"freq_dim\": 16.5}", "freq_dim"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"in_dim\": 0}", "in_dim"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"out_dim\": 1e10}", "out_dim"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"text_dim\": -5}", "text_dim"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"eps\": \"tiny\"}", "eps"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"eps\": 1e300}", "eps"},
    {"{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"patch_size\": [1, 2, 4294967298]}", "patch_size[2]"},
    {"{" DIT_BASE "\"num_attention_heads\": 65536, \"attention_head_dim\": 65536}", "num_attention_heads"},
    {"{" DIT_BASE "\"num_attention_heads\": 1024, \"attention_head_dim\": 4096}", "attention_head_dim"},
    {"{" DIT_BASE "\"num_attention_heads\": 2, \"attention_head_dim\": 2147483647}", "attention_head_dim"},
    {"{" DIT_BASE "\"num_attention_heads\": 2, \"attention_head_dim\": 16, \"in_channels\": 1e19}", "in_channels"},
};

static void check_dit(void) {
    wan_dit_config c;
    /* valid: both spellings parse to what they state */
    CHECKF(hb_wan_dit_config_parse(&c, "{" DIT_BASE "\"dim\": 32, \"num_heads\": 2, \"text_len\": 7, \"in_dim\": 4}",
                                "dit.json") == 0, "%s", hb_last_error());
    CHECK(c.dim == 32 && c.num_heads == 2 && c.head_dim == 16 && c.text_len == 7 && c.in_dim == 4 && c.out_dim == 4 &&
          c.ffn_dim == 64 && c.num_layers == 2);
    CHECKF(hb_wan_dit_config_parse(&c, "{" DIT_BASE "\"num_attention_heads\": 3, \"attention_head_dim\": 8.0}",
                                "dit.json") == 0, "%s", hb_last_error());
    CHECK(c.dim == 24 && c.num_heads == 3 && c.head_dim == 8);
    for (size_t i = 0; i < sizeof dit_cases / sizeof dit_cases[0]; i++)
        check_refused("DiT", i, hb_wan_dit_config_parse(&c, dit_cases[i].json, "dit.json"), "dit.json", dit_cases[i].field);
    printf("DiT config: %zu hostile cases refused\n", sizeof dit_cases / sizeof dit_cases[0]);
}

static const struct { const char *json, *field; } vae_cases[] = {
    {"{\"dim\": 1e20}", "dim"},
    {"{\"z_dim\": 4294967312}", "z_dim"},
    {"{\"dec_dim\": -1}", "dec_dim"},
    {"{\"num_res_blocks\": 2147483648}", "num_res_blocks"},
    {"{\"dim_mult\": [1, 2, 4294967300]}", "dim_mult[2]"},
    {"{\"dim_mult\": [1, 2.5]}", "dim_mult[1]"},
    {"{\"dim\": \"96\"}", "dim"},
};

static void check_vae(void) {
    hb_wan_vae_config c;
    CHECKF(hb_wan_vae_config_from_json(&c, "wan2.1", "{\"dim\": 8, \"z_dim\": 4, \"dim_mult\": [1, 2], "
                                       "\"temperal_downsample\": [true]}") == 0, "%s", hb_last_error());
    CHECK(c.dim == 8 && c.z_dim == 4 && c.n_levels == 2 && c.dim_mult[1] == 2);
    for (size_t i = 0; i < sizeof vae_cases / sizeof vae_cases[0]; i++)
        check_refused("VAE", i, hb_wan_vae_config_from_json(&c, "wan2.2", vae_cases[i].json), "wan_vae config",
                      vae_cases[i].field);
    printf("Wan VAE config: %zu hostile cases refused\n", sizeof vae_cases / sizeof vae_cases[0]);
}

#define T5_BASE "\"d_model\": 32, \"d_ff\": 64, \"vocab_size\": 100, \"num_heads\": 2, \"num_layers\": 1, "
static const struct { const char *json, *field; } t5_cases[] = {
    {"{" T5_BASE "\"d_kv\": 1e20}", "d_kv"},
    {"{" T5_BASE "\"d_kv\": 16, \"num_heads\": 4294967298}", "num_heads"},
    {"{\"d_model\": 9223372036854775807, \"d_kv\": 16}", "d_model"},
    {"{" T5_BASE "\"d_kv\": 16, \"vocab_size\": -4}", "vocab_size"},
    {"{" T5_BASE "\"d_kv\": 16, \"relative_attention_num_buckets\": 4294967328}", "relative_attention_num_buckets"},
    {"{" T5_BASE "\"d_kv\": 16, \"layer_norm_epsilon\": \"x\"}", "layer_norm_epsilon"},
    {"{" T5_BASE "\"d_kv\": 16, \"num_layers\": 3.5}", "num_layers"},
};

static void check_umt5(const char *tmp) {
    char dir[512], cfg[600];
    snprintf(dir, sizeof dir, "%s/t5", tmp);
    mkdir(dir, 0755);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    for (size_t i = 0; i < sizeof t5_cases / sizeof t5_cases[0]; i++) {
        write_text(cfg, t5_cases[i].json);
        hb_umt5 *m = hb_umt5_open(dir);
        CHECKF(m == NULL, "umT5 case %zu (%s) opened", i, t5_cases[i].field);
        if (m) { hb_umt5_free(m); continue; }
        char label[32];
        snprintf(label, sizeof label, "umT5 case %zu", i);
        check_error(label, cfg, t5_cases[i].field);
    }
    /* a valid config is accepted: the failure is then the missing weights, not the config */
    write_text(cfg, "{" T5_BASE "\"d_kv\": 16}");
    CHECK(hb_umt5_open(dir) == NULL && !strstr(hb_last_error(), "config.json"));
    printf("umT5 config: %zu hostile cases refused\n", sizeof t5_cases / sizeof t5_cases[0]);
}

static const struct { const char *json, *field; } settings_cases[] = {
    {"{\"shift\": 1e300}", "shift"},
    {"{\"shift\": -2}", "shift"},
    {"{\"fps\": \"24\"}", "fps"},
    {"{\"fps\": 1e30}", "fps"},
    {"{\"steps_list\": [1000, 1e20]}", "steps_list"},
    {"{\"steps_list\": [4294968296]}", "steps_list"},
};

static void check_settings(const char *tmp) {
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/folder", tmp);
    mkdir(dir, 0755);
    static const char *const parts[] = {"config.json", "Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, parts[i]);
        write_text(p, "{}");
    }
    snprintf(p, sizeof p, "%s/hummingbird.json", dir);
    hb_model_folder mf;
    write_text(p, "{\"shift\": 5.0, \"fps\": 16, \"steps_list\": [1000, 750, 500]}");
    CHECKF(hb_model_folder_scan(dir, &mf) == 0, "%s", hb_last_error());
    CHECK(mf.shift == 5.0 && mf.fps == 16 && mf.nsteps == 3 && mf.steps_list[1] == 750);
    for (size_t i = 0; i < sizeof settings_cases / sizeof settings_cases[0]; i++) {
        write_text(p, settings_cases[i].json);
        int rc = hb_model_folder_scan(dir, &mf);
        CHECKF(rc != 0, "hummingbird.json case %zu (%s) accepted", i, settings_cases[i].field);
        if (rc) {
            char label[40];
            snprintf(label, sizeof label, "hummingbird.json case %zu", i);
            check_error(label, p, settings_cases[i].field);
        }
    }
    printf("hummingbird.json: %zu hostile cases refused\n", sizeof settings_cases / sizeof settings_cases[0]);
}

/* the checked readers themselves: integral reals, bounds, types, absent keys */
static void check_field_readers(void) {
    const char *text = "{\"a\": 7, \"b\": 7.0, \"c\": 7.5, \"d\": 1e19, \"e\": \"7\", \"f\": null, \"g\": -9e18}";
    json_t *o = hb_json_parse(text, strlen(text), 0, "fields");
    CHECKF(o != NULL, "%s", hb_last_error());
    if (!o) return;
    int64_t x = -1;
    int y = -1;
    CHECK(hb_json_int64(o, "a", 0, 10, &x, "fields") == 0 && x == 7);
    CHECK(hb_json_int(o, "b", 0, 10, &y, "fields") == 0 && y == 7);
    CHECK(hb_json_int(o, "a", 0, 6, &y, "fields") != 0 && y == 7);
    CHECK(hb_json_int(o, "c", 0, 10, &y, "fields") != 0);
    CHECK(hb_json_int64(o, "d", INT64_MIN, INT64_MAX, &x, "fields") != 0 && x == 7);
    CHECK(hb_json_int64(o, "g", INT64_MIN, INT64_MAX, &x, "fields") == 0 && x == -9000000000000000000LL);
    CHECK(hb_json_int(o, "e", 0, 10, &y, "fields") != 0);
    CHECK(hb_json_int(o, "f", 0, 10, &y, "fields") == 0 && y == 7);
    CHECK(hb_json_int(o, "missing", 0, 10, &y, "fields") == 0 && y == 7);
    double d = 0;
    CHECK(hb_json_real(o, "c", 0, 10, &d, "fields") == 0 && d == 7.5);
    CHECK(hb_json_real(o, "d", 0, 10, &d, "fields") != 0 && d == 7.5);
    json_decref(o);
}

/* ---------- out of memory inside the JSON parser is reported as such, never as bad JSON ---------- */
static int json_allocs_left = -1; /* -1: no limit */
static int json_allocs;
static void *limited_malloc(size_t n) {
    json_allocs++;
    if (json_allocs_left == 0) return NULL;
    if (json_allocs_left > 0) json_allocs_left--;
    return malloc(n);
}

/* Fail the parser's Nth allocation for every N until a parse succeeds: each failure says "out of memory" and
 * names hummingbird.json; none blames the file's JSON. */
static void check_json_oom(const char *tmp) {
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/folder", tmp);
    snprintf(p, sizeof p, "%s/hummingbird.json", dir);
    write_text(p, "{\"arch\": \"wan2.1-1.3b\", \"sampler\": \"euler\", \"shift\": 5.0, \"fps\": 16, "
                  "\"steps_list\": [1000, 750, 500, 250], \"note\": {\"a\": [1, 2, {\"b\": \"c\"}]}}");
    hb_json_set_allocator(limited_malloc);
    int failed = 0, n;
    for (n = 0; n < 1000; n++) {
        hb_model_folder mf;
        json_allocs_left = n;
        json_allocs = 0;
        int rc = hb_model_folder_scan(dir, &mf);
        if (rc == 0) break;
        failed++;
        const char *e = hb_last_error();
        CHECKF(strstr(e, "out of memory") && strstr(e, p) && !strstr(e, "invalid"),
               "allocation %d failed: '%s' should say out of memory and name the file", n, e);
    }
    json_allocs_left = -1;
    hb_json_set_allocator(NULL);
    CHECKF(failed > 0 && n < 1000, "%d failures, stopped at %d", failed, n);
    printf("hummingbird.json: %d parser allocations failed one at a time, each reported as out of memory\n", failed);
}

/* the release's light decoder config.json (models/light_vae.h): a valid base with one field made hostile */
#define LIGHT_LISTS "\"decoder_block_out_channels\": [8, 8, 16, 16], \"decoder_layers_per_block\": [1, 1, 1, 1, 1], " \
    "\"decoder_is_dw_conv\": [false, false, true, true, true], \"decoder_spatio_temporal_scaling\": [true, true, true, false], "
#define LIGHT_BASE LIGHT_LISTS "\"patch_size\": 2, \"decoder_causal\": true, \"decoder_dw_kernel_size\": 3, "
static const struct { const char *json, *field; } light_cases[] = {
    {"{" LIGHT_BASE "\"latent_channels\": 1e20}", "latent_channels"},
    {"{" LIGHT_BASE "\"latent_channels\": 48.5}", "latent_channels"},
    {"{" LIGHT_LISTS "\"patch_size\": 4294967298, \"decoder_causal\": true, \"decoder_dw_kernel_size\": 3, \"latent_channels\": 48}",
     "patch_size"},
    {"{" LIGHT_LISTS "\"patch_size\": 2, \"decoder_causal\": true, \"decoder_dw_kernel_size\": -7, \"latent_channels\": 48}",
     "decoder_dw_kernel_size"},
    {"{\"decoder_block_out_channels\": [8, 8, 16, 4294967312], \"decoder_layers_per_block\": [1, 1, 1, 1, 1], "
     "\"decoder_is_dw_conv\": [false, false, true, true, true], \"decoder_spatio_temporal_scaling\": [true, true, true, "
     "false], \"patch_size\": 2, \"decoder_causal\": true, \"decoder_dw_kernel_size\": 3, \"latent_channels\": 48}",
     "decoder_block_out_channels"},
};

static void check_light(void) {
    hb_light_vae_config c;
    CHECKF(hb_light_vae_config_from_json(&c, "{" LIGHT_BASE "\"latent_channels\": 48}", "light config") == 0, "%s",
           hb_last_error());
    for (size_t i = 0; i < sizeof light_cases / sizeof light_cases[0]; i++)
        check_refused("light", i, hb_light_vae_config_from_json(&c, light_cases[i].json, "light config"), "light config",
                      light_cases[i].field);
    printf("light decoder config: %zu hostile cases refused\n", sizeof light_cases / sizeof light_cases[0]);
}

int main(void) {
    const char *tmp = tl_tmpdir();
    check_field_readers();
    check_dit();
    check_vae();
    check_light();
    check_umt5(tmp);
    check_settings(tmp);
    check_json_oom(tmp);
    return tl_done();
}
