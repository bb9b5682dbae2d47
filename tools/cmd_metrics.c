/* hb metrics REF TEST: PSNR, SSIM and temporal flicker between two clips. */
#include "tools.h"
#include "io/metrics.h"
#include "io/video.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void metrics_usage(FILE *f) {
    fprintf(f,
            "usage: hb metrics REF TEST [--json] [--frames N]\n\n"
            "Compares TEST against REF frame by frame. Each is a video file FFmpeg can decode (.mp4, .mkv,\n"
            ".webm, .y4m, ...), a folder of PNG/JPEG frames (sorted by name), or one PNG/JPEG image.\n"
            "Both must have the same number of frames and the same size.\n\n"
            "  --json        print one JSON object (means and per-frame values) instead of a table\n"
            "  --frames N    compare only the first N frames of each\n"
            "  -h, --help    this text\n\n"
            "metrics (8-bit RGB, per frame, then the mean over frames):\n"
            "  psnr     10*log10(255^2/MSE) over all pixels and channels (inf when equal; null in JSON)\n"
            "  ssim     Gaussian SSIM as skimage structural_similarity(gaussian_weights=True, sigma=1.5,\n"
            "           use_sample_covariance=False, data_range=255, channel_axis=-1)\n"
            "  flicker  mean |f_t - f_(t-1)| / 255 for t >= 1, for REF and TEST; delta = TEST - REF\n"
            "           (positive: the test clip changes more between frames than the reference)\n");
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

int cmd_metrics(int argc, char **argv) {
    const char *paths[2] = {NULL, NULL};
    int npaths = 0, json = 0, max_frames = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { metrics_usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--frames")) {
            char *end;
            if (i + 1 >= argc) { hb_error("--frames needs a number"); return tool_fail("metrics"); }
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 10000000) { hb_error("--frames: '%s' is not a frame count", argv[i]); return tool_fail("metrics"); }
            max_frames = (int)n;
            continue;
        }
        int r = tool_common_flag(argc, argv, &i);
        if (r < 0) return tool_fail("metrics");
        if (r > 0) continue;
        if (a[0] == '-' && a[1]) { hb_error("unknown flag '%s' (see hb metrics --help)", a); return tool_fail("metrics"); }
        if (npaths == 2) { hb_error("too many arguments: '%s' (expected REF TEST)", a); return tool_fail("metrics"); }
        paths[npaths++] = a;
    }
    if (npaths != 2) {
        metrics_usage(stderr);
        return 2;
    }
    hb_video ref, test;
    if (hb_video_read(paths[0], max_frames, &ref)) return tool_fail("metrics");
    if (hb_video_read(paths[1], max_frames, &test)) { hb_video_free(&ref); return tool_fail("metrics"); }
    int rc = 0;
    if (ref.frames != test.frames) {
        hb_error("frame count mismatch: %s has %d frames, %s has %d", paths[0], ref.frames, paths[1], test.frames);
        rc = 1;
    } else if (ref.width != test.width || ref.height != test.height) {
        hb_error("frame size mismatch: %s is %dx%d, %s is %dx%d", paths[0], ref.width, ref.height, paths[1],
                 test.width, test.height);
        rc = 1;
    }
    hb_metrics m;
    if (!rc && hb_metrics_compute(ref.rgb, test.rgb, ref.frames, ref.height, ref.width, &m)) rc = 1;
    hb_video_free(&ref);
    hb_video_free(&test);
    if (rc) return tool_fail("metrics");
    if (json) {
        json_t *o = json_object(), *pf = json_object();
        json_t *jp = json_array(), *js = json_array(), *jr = json_array(), *jt = json_array(), *jd = json_array();
        json_object_set_new(o, "ref", json_string(paths[0]));
        json_object_set_new(o, "test", json_string(paths[1]));
        json_object_set_new(o, "frames", json_integer(m.frames));
        json_object_set_new(o, "width", json_integer(m.width));
        json_object_set_new(o, "height", json_integer(m.height));
        json_object_set_new(o, "psnr_mean", jnum(m.psnr_mean));
        json_object_set_new(o, "ssim_mean", jnum(m.ssim_mean));
        json_object_set_new(o, "flicker_ref_mean", jnum(m.flicker_ref_mean));
        json_object_set_new(o, "flicker_test_mean", jnum(m.flicker_test_mean));
        json_object_set_new(o, "flicker_delta_mean", jnum(m.flicker_delta_mean));
        for (int t = 0; t < m.frames; t++) {
            json_array_append_new(jp, jnum(m.psnr[t]));
            json_array_append_new(js, jnum(m.ssim[t]));
            json_array_append_new(jr, jnum(m.flicker_ref[t]));
            json_array_append_new(jt, jnum(m.flicker_test[t]));
            json_array_append_new(jd, jnum(m.flicker_test[t] - m.flicker_ref[t]));
        }
        json_object_set_new(pf, "psnr", jp);
        json_object_set_new(pf, "ssim", js);
        json_object_set_new(pf, "flicker_ref", jr);
        json_object_set_new(pf, "flicker_test", jt);
        json_object_set_new(pf, "flicker_delta", jd);
        json_object_set_new(o, "per_frame", pf);
        char *s = json_dumps(o, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
        if (s) { puts(s); free(s); }
        json_decref(o);
    } else {
        printf("ref:  %s\ntest: %s\n%d frames, %dx%d\n\n", paths[0], paths[1], m.frames, m.width, m.height);
        printf("%6s %10s %9s %12s %12s %12s\n", "frame", "psnr_dB", "ssim", "flicker_ref", "flicker_test", "delta");
        for (int t = 0; t < m.frames; t++) {
            if (t == 0)
                printf("%6d %10.4f %9.6f %12s %12s %12s\n", t, m.psnr[t], m.ssim[t], "-", "-", "-");
            else
                printf("%6d %10.4f %9.6f %12.6f %12.6f %+12.6f\n", t, m.psnr[t], m.ssim[t], m.flicker_ref[t],
                       m.flicker_test[t], m.flicker_test[t] - m.flicker_ref[t]);
        }
        printf("%6s %10.4f %9.6f %12.6f %12.6f %+12.6f\n", "mean", m.psnr_mean, m.ssim_mean, m.flicker_ref_mean,
               m.flicker_test_mean, m.flicker_delta_mean);
    }
    hb_metrics_free(&m);
    return 0;
}
