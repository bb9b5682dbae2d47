/* libFuzzer target for the model config files. First byte (mod 4) picks the reader, the rest is the file:
 * 0 the DiT config.json (Wan or diffusers spelling), 1 the Wan VAE config, 2 a umT5 config.json in a text
 * encoder folder (read before the weights, which are absent), 3 hummingbird.json in a model folder whose
 * other parts are empty stand-ins. Every field must be range checked: UBSan aborts on any overflow. */
#include "fuzz_common.h"
#include "models/umt5.h"
#include "models/wan_dit.h"
#include "models/wan_vae.h"
#include "pipeline/model_folder.h"
#include <sys/stat.h>

static char g_t5[300], g_folder[300];

static void setup(void) {
    char p[400];
    snprintf(g_t5, sizeof g_t5, "%s/t5", fz_dir());
    snprintf(g_folder, sizeof g_folder, "%s/folder", fz_dir());
    mkdir(g_t5, 0755);
    mkdir(g_folder, 0755);
    static const char *const parts[] = {"config.json", "Wan2.1_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", g_folder, parts[i]);
        fz_write(p, "{}", 2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (!g_t5[0]) setup();
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    char p[400];
    switch (data[0] % 4) {
    case 0: {
        wan_dit_config c;
        if (hb_wan_dit_config_parse(&c, text, "config.json") == 0 && hb_wan_dit_config_check(&c, "config.json") != 0) abort();
        break;
    }
    case 1: {
        hb_wan_vae_config c;
        hb_wan_vae_config_from_json(&c, data[0] & 4 ? "wan2.2" : "wan2.1", text);
        break;
    }
    case 2: {
        snprintf(p, sizeof p, "%s/config.json", g_t5);
        fz_write(p, data + 1, size - 1);
        hb_umt5 *m = hb_umt5_open(g_t5);
        if (m) abort(); /* there are no weights */
        break;
    }
    default: {
        snprintf(p, sizeof p, "%s/hummingbird.json", g_folder);
        fz_write(p, data + 1, size - 1);
        hb_model_folder mf;
        if (hb_model_folder_scan(g_folder, &mf) == 0 && (mf.nsteps < 0 || mf.nsteps > HB_MF_MAX_STEPS)) abort();
        break;
    }
    }
    free(text);
    return 0;
}
