/* The Hummingbird-XT release's models/ folder as `hb mkmodel --arch hummingbird-xt` writes it and `hb generate`
 * reads it (../shared/spec/hummingbird-release.md section 1): exactly the release's files, the DiT in one
 * safetensors with 15 + 27 tensors per block, .pth VAE and text encoder (torch zip archives), the light decoder
 * beside hm_2.2_5B/; -m on the root or on hm_2.2_5B gives the same video, made with the release's settings
 * (the Hummingbird-XT family: light decoder, 24 fps). */
#include "testlib.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    const char *t = tl_tmpdir();
    char args[4096], out[16384], a[1200], b[1200];
    snprintf(args, sizeof args, "mkmodel -q --arch hummingbird-xt --tiny --seed 5 '%s/models'", t);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    /* the file list, exactly */
    snprintf(args, sizeof args, "cd '%s/models' && find . -type f | sort", t);
    CHECK(tl_run(args, out, sizeof out) == 0);
    const char *want = "./hm_2.2_5B/Wan2.2_VAE.pth\n./hm_2.2_5B/config.json\n./hm_2.2_5B/diffusion_pytorch_model.safetensors\n"
                       "./hm_2.2_5B/google/umt5-xxl/spiece.model\n./hm_2.2_5B/models_t5_umt5-xxl-enc-bf16.pth\n"
                       "./vae/wan22_v1_tiling_16_12/config.json\n./vae/wan22_v1_tiling_16_12/diffusion_pytorch_model.safetensors\n";
    CHECKF(!strcmp(out, want), "files:\n%s", out);
    /* torch.save archives (zip) for the .pth files; 15 + 27 x 2 blocks DiT tensors in one file */
    snprintf(args, sizeof args, "head -c 2 '%s/models/hm_2.2_5B/Wan2.2_VAE.pth'; head -c 2 '%s/models/hm_2.2_5B/models_t5_umt5-xxl-enc-bf16.pth'", t, t);
    CHECK(tl_run(args, out, sizeof out) == 0 && !strcmp(out, "PKPK"));
    snprintf(args, sizeof args, "inspect --json '%s/models/hm_2.2_5B/diffusion_pytorch_model.safetensors'", t);
    CHECK(tl_hb(args, out, sizeof out) == 0);
    CHECKF(strstr(out, "\"tensors_count\": 69") != NULL, "%.300s", out);
    /* -m on the root and on hm_2.2_5B: the same video, by the Hummingbird-XT family's settings */
    snprintf(a, sizeof a, "%s/root.y4m", t);
    snprintf(b, sizeof b, "%s/sub.y4m", t);
    snprintf(args, sizeof args, "generate -v -m '%s/models' -p 'a red fox' -W 64 -H 64 -f 5 -o '%s'", t, a);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    CHECKF(strstr(out, "(hummingbird-xt)") && strstr(out, "at 24 fps"), "%s", out);
    snprintf(args, sizeof args, "generate -q -m '%s/models/hm_2.2_5B' -p 'a red fox' -W 64 -H 64 -f 5 -o '%s'", t, b);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "cmp '%s' '%s'", a, b);
    CHECK(tl_run(args, NULL, 0) == 0);
    /* the light decoder is the default: asking for it changes nothing, the full Wan VAE gives another video */
    snprintf(args, sizeof args, "generate -q -m '%s/models' -p 'a red fox' -W 64 -H 64 -f 5 --vae light -o '%s'", t, b);
    CHECK(tl_hb(args, out, sizeof out) == 0);
    snprintf(args, sizeof args, "cmp -s '%s' '%s'", a, b);
    CHECK(tl_run(args, NULL, 0) == 0);
    snprintf(args, sizeof args, "generate -q -m '%s/models' -p 'a red fox' -W 64 -H 64 -f 5 --vae full -o '%s'", t, b);
    CHECK(tl_hb(args, out, sizeof out) == 0);
    snprintf(args, sizeof args, "cmp -s '%s' '%s'", a, b);
    CHECK(tl_run(args, NULL, 0) != 0);
    /* I2V from the root */
    snprintf(args, sizeof args, "generate -q -m '%s/models' -p 'x' -W 64 -H 64 -f 1 -o '%s/frames/' && "
             "'%s' generate -q -m '%s/models' -p 'a red fox' -i \"$(ls '%s'/frames/*.png | head -1)\" -W 64 -H 64 -f 5 -o '%s'",
             t, t, tl_hb_bin(), t, t, b);
    CHECKF(tl_hb(args, out, sizeof out) == 0, "%s", out);
    return tl_done();
}
