/* libFuzzer target for opening a model folder: a tiny random-weight folder is written once; each input replaces
 * one of its JSON files (first byte mod 3: the DiT config.json, hummingbird.json, the DiT's safetensors index)
 * and the folder is scanned and its DiT opened (config, index, shard headers, every weight's name and shape). */
#include "fuzz_common.h"
#include "models/wan_dit.h"
#include "pipeline/model_folder.h"
#include "random_models.h"
#include <sys/stat.h>

static const char *const k_files[3] = {"config.json", "hummingbird.json", "diffusion_pytorch_model.safetensors.index.json"};
static char g_dir[300];
static uint8_t *g_orig[3];
static size_t g_orig_n[3];

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "%s/model", fz_dir());
    hb_mkfolder_opts o = {.arch = "hummingbird-xt", .tiny = true, .dtype = HB_F32, .seed = 1};
    if (mkdir(g_dir, 0755) != 0 || hb_model_folder_write_random(g_dir, &o) != 0) abort();
    for (int i = 0; i < 3; i++) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", g_dir, k_files[i]);
        FILE *f = fopen(p, "rb");
        if (!f) abort();
        g_orig[i] = malloc(1 << 20);
        g_orig_n[i] = fread(g_orig[i], 1, 1 << 20, f);
        fclose(f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (!g_dir[0]) setup();
    int which = data[0] % 3;
    for (int i = 0; i < 3; i++) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", g_dir, k_files[i]);
        if (i == which) fz_write(p, data + 1, size - 1);
        else fz_write(p, g_orig[i], g_orig_n[i]);
    }
    hb_model_folder mf;
    if (hb_model_folder_scan(g_dir, &mf) != 0) return 0;
    wan_dit *m = hb_wan_dit_open(mf.dit, NULL);
    if (m) hb_wan_dit_free(m);
    return 0;
}
