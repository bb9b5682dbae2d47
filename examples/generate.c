/* examples/generate.c: text (or image) to video with the public C API only.
 *
 *   build/example_generate MODEL_DIR "a cat walking on the beach" out_prefix [image.png]
 *
 * Writes the frames as binary PPM files out_prefix_00000.ppm, ... (no other library needed) at 256 x 256 x 17;
 * prints progress. See docs/pipeline.md. */
#include "hummingbird.h"
#include <stdio.h>
#include <stdlib.h>

static int progress(void *user, const char *stage, int step, int total, double elapsed, double eta) {
    (void)user;
    if (step > 0) fprintf(stderr, "%-8s %d/%d  %.1f s (ETA %.1f s)\n", stage, step, total, elapsed, eta);
    return 0; /* nonzero would cancel the run */
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT OUT_PREFIX [IMAGE]\n", argv[0]);
        return 2;
    }
    hb_load_params lp = {0};
    hb_model *m = hb_model_load(argv[1], &lp);
    if (!m) {
        fprintf(stderr, "load: %s\n", hb_last_error_message());
        return 1;
    }
    hb_generate_params p;
    hb_generate_params_init(&p);
    p.prompt = argv[2];
    p.image_path = argc > 4 ? argv[4] : NULL;
    p.width = 256, p.height = 256, p.frames = 17;
    p.seed = 42;
    p.progress = progress;
    hb_video_frames v;
    if (hb_generate(m, &p, &v) != 0) {
        fprintf(stderr, "generate: %s\n", hb_last_error_message());
        hb_model_free(m);
        return 1;
    }
    for (int t = 0; t < v.frames; t++) {
        char path[1024];
        snprintf(path, sizeof path, "%s_%05d.ppm", argv[3], t);
        FILE *f = fopen(path, "wb");
        if (!f) { perror(path); break; }
        fprintf(f, "P6\n%d %d\n255\n", v.width, v.height);
        fwrite(v.rgb + (size_t)t * v.width * v.height * 3, 1, (size_t)v.width * v.height * 3, f);
        fclose(f);
    }
    printf("%d frames %dx%d at %g fps: denoise %.2f s, decode %.2f s, total %.2f s, peak RSS %.0f MiB\n", v.frames,
           v.width, v.height, v.fps, v.seconds_denoise, v.seconds_decode, v.seconds_total,
           (double)v.peak_rss_bytes / (1 << 20));
    hb_frames_free(&v);
    hb_model_free(m);
    return 0;
}
