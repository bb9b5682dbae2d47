/* hb quantize IN OUT.gguf --type TYPE: write a checkpoint as a GGUF file in the community Wan layout (what
 * ComfyUI-GGUF and stable-diffusion.cpp load), quantized byte for byte as ggml's reference quantizers do. */
#include "tools.h"
#include "io/checkpoint.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: hb quantize IN OUT.gguf --type TYPE\n"
            "\n"
            "IN is any checkpoint hb reads (a .safetensors file, an index, a model folder, a .pth, a .gguf). OUT\n"
            "gets official Wan names and general.architecture = wan; 1-D, small (<= 1024 values) and modulation\n"
            "tensors and the 5-D patch embedding stay F32, the patch/text/time embeddings, time projection, image\n"
            "embedding and head stay 16-bit, and the K-quant mixes give .v.weight and .ffn.2.weight more bits\n"
            "(q4_k_m: Q6_K), as city96's and QuantStack's Wan files do. Written to a temp file, then renamed.\n"
            "\n"
            "types: %s\n"
            "\n"
            "options:\n"
            "  --type TYPE   the quantization mix (required)\n"
            "  -t N          threads; -v, -q as every command\n"
            "  -h, --help    this help\n",
            hb_gguf_quant_types());
}

int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type = NULL;
    for (int i = 1; i < argc; i++) {
        int c = tool_common_flag(argc, argv, &i);
        if (c < 0) return tool_fail("quantize");
        if (c) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--type")) {
            if (i + 1 >= argc) { fprintf(stderr, "hb quantize: --type needs a value\n"); return 2; }
            type = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "hb quantize: unknown option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else { fprintf(stderr, "hb quantize: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!in || !out || !type) { usage(stderr); return 2; }
    int counts[HB_QTYPE_END] = {0};
    double t0 = hb_time_now();
    if (hb_gguf_quantize(in, out, type, counts) != 0) return tool_fail("quantize");
    printf("%s: written in %.1f s;", out, hb_time_now() - t0);
    for (int t = 0; t < HB_QTYPE_END; t++)
        if (counts[t]) printf(" %d %s", counts[t], hb_dtype_name((hb_dtype)t));
    printf(" tensors\n");
    return 0;
}
