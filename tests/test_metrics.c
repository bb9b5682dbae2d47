/* hb metrics: PSNR, SSIM (skimage Gaussian variant) and flicker. Checked against an independent naive
 * C implementation (direct 11x11 window) and against scikit-image through tests/reference/metrics_ref.py
 * (to 1e-4; skipped with a message when python3/skimage are missing). */
#include "testlib.h"
#include "media_util.h"
#include "io/metrics.h"
#include "io/video.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Naive SSIM: for every interior pixel, the full 2-D Gaussian window (outer product of the normalised
 * 1-D kernel), population statistics, mean over the interior and the channels. */
static double naive_ssim(const uint8_t *a, const uint8_t *b, int H, int W) {
    double k[11], s = 0;
    for (int i = 0; i < 11; i++) { k[i] = exp(-(i - 5) * (i - 5) / (2 * 1.5 * 1.5)); s += k[i]; }
    for (int i = 0; i < 11; i++) k[i] /= s;
    double C1 = 6.5025, C2 = 58.5225, tot = 0;
    for (int c = 0; c < 3; c++) {
        double cs = 0;
        for (int y = 5; y < H - 5; y++)
            for (int x = 5; x < W - 5; x++) {
                double mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
                for (int i = 0; i < 11; i++)
                    for (int j = 0; j < 11; j++) {
                        double w = k[i] * k[j];
                        double u = a[((size_t)(y + i - 5) * W + x + j - 5) * 3 + c];
                        double v = b[((size_t)(y + i - 5) * W + x + j - 5) * 3 + c];
                        mx += w * u; my += w * v; mxx += w * u * u; myy += w * v * v; mxy += w * u * v;
                    }
                double vx = mxx - mx * mx, vy = myy - my * my, vxy = mxy - mx * my;
                cs += (2 * mx * my + C1) * (2 * vxy + C2) / ((mx * mx + my * my + C1) * (vx + vy + C2));
            }
        tot += cs / ((double)(H - 10) * (W - 10));
    }
    return tot / 3;
}

static double jget(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : json_is_null(v) ? INFINITY : NAN;
}
static double jat(json_t *o, const char *arr, int i) {
    json_t *v = json_array_get(json_object_get(json_object_get(o, "per_frame"), arr), i);
    return json_is_number(v) ? json_number_value(v) : json_is_null(v) ? INFINITY : NAN;
}
static int close_enough(double a, double b, double tol) {
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= tol;
}

static json_t *run_json(const char *cmd, int *rc) {
    static char out[1 << 17];
    *rc = tl_run(cmd, out, sizeof out);
    json_error_t e;
    return json_loads(out, 0, &e);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    const char *dir = tl_tmpdir();
    const char *hb = tl_hb_bin();
    int T = 6, H = 40, W = 56;
    size_t fsz = (size_t)H * W * 3;
    uint8_t *ref = malloc(fsz * T), *test = malloc(fsz * T);
    mu_render(&r, ref, T, H, W, 25);
    /* test: per-frame different damage: noise, a shifted block, a brightness change; frame 2 identical */
    for (int t = 0; t < T; t++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) {
                    size_t i = (size_t)t * fsz + ((size_t)y * W + x) * 3 + c;
                    int v = ref[i];
                    if (t != 2) {
                        v += (int)((hb_rng_uniform(&r) * 2 - 1) * (4 + 6 * t));
                        if (y > 10 && y < 25 && x > 8 && x < 30) v = ref[(size_t)t * fsz + ((size_t)y * W + x + 3) * 3 + c];
                        if (t % 2) v = v * 9 / 10 + 12;
                    }
                    test[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }

    /* library against the naive reference */
    hb_metrics m;
    CHECK(hb_metrics_compute(ref, test, T, H, W, &m) == 0);
    for (int t = 0; t < T; t++) {
        double ns = naive_ssim(ref + fsz * t, test + fsz * t, H, W);
        CHECKF(fabs(m.ssim[t] - ns) < 1e-10, "frame %d: ssim %.12f, naive %.12f", t, m.ssim[t], ns);
        double se = 0, fr = 0, ft = 0;
        for (size_t i = 0; i < fsz; i++) {
            double d = (double)ref[fsz * t + i] - test[fsz * t + i];
            se += d * d;
            if (t) { fr += fabs((double)ref[fsz * t + i] - ref[fsz * (t - 1) + i]); ft += fabs((double)test[fsz * t + i] - test[fsz * (t - 1) + i]); }
        }
        double ps = se ? 10 * log10(255.0 * 255.0 / (se / fsz)) : INFINITY;
        CHECKF(close_enough(m.psnr[t], ps, 1e-9), "frame %d psnr %f vs %f", t, m.psnr[t], ps);
        if (t) CHECK(fabs(m.flicker_ref[t] - fr / fsz / 255) < 1e-12 && fabs(m.flicker_test[t] - ft / fsz / 255) < 1e-12);
        else CHECK(isnan(m.flicker_ref[0]));
    }
    CHECK(isinf(m.psnr[2]) && fabs(m.ssim[2] - 1) < 1e-12);
    CHECK(hb_metric_ssim(ref, ref, 10, 10) == -1); /* smaller than the window */
    hb_metrics_free(&m);

    /* the CLI on PNG folders */
    char pr[512], pt[512], cmd[2048];
    snprintf(pr, sizeof pr, "%s/ref/", dir);
    snprintf(pt, sizeof pt, "%s/test/", dir);
    hb_video_opts o = {.fps = 16};
    CHECK(hb_video_write(pr, ref, T, H, W, &o) == 0);
    CHECK(hb_video_write(pt, test, T, H, W, &o) == 0);
    snprintf(cmd, sizeof cmd, "'%s' metrics --json '%s' '%s'", hb, pr, pt);
    int rc;
    json_t *ours = run_json(cmd, &rc);
    CHECKF(rc == 0 && ours, "%s failed", cmd);
    if (!ours) return tl_done();
    CHECK(json_integer_value(json_object_get(ours, "frames")) == T);
    CHECK(hb_metrics_compute(ref, test, T, H, W, &m) == 0);
    for (int t = 0; t < T; t++) {
        CHECK(close_enough(jat(ours, "psnr", t), m.psnr[t], 1e-12));
        CHECK(close_enough(jat(ours, "ssim", t), m.ssim[t], 1e-12));
    }
    hb_metrics_free(&m);

    /* against scikit-image */
    char script[512];
    const char *py = mu_python("numpy, skimage, PIL");
    if (!py) {
        printf("SKIP part: no python3 with numpy + scikit-image + PIL (apt install python3-skimage): "
               "not compared with skimage\n");
    } else if (!mu_ref_script("metrics_ref.py", script, sizeof script)) {
        printf("SKIP part: HB_SOURCE_DIR not set (run through ctest): not compared with skimage\n");
    } else {
        snprintf(cmd, sizeof cmd, "%s '%s' '%s' '%s'", py, script, pr, pt);
        json_t *refj = run_json(cmd, &rc);
        CHECKF(rc == 0 && refj, "%s failed", cmd);
        if (refj) {
            const char *keys[] = {"psnr_mean", "ssim_mean", "flicker_ref_mean", "flicker_test_mean", "flicker_delta_mean"};
            double maxerr = 0;
            for (int k = 0; k < 5; k++) {
                double a = jget(ours, keys[k]), b = jget(refj, keys[k]);
                CHECKF(close_enough(a, b, 1e-4), "%s: ours %.8f skimage %.8f", keys[k], a, b);
                if (isfinite(a - b)) maxerr = fmax(maxerr, fabs(a - b));
            }
            const char *arrs[] = {"psnr", "ssim", "flicker_ref", "flicker_test"};
            for (int k = 0; k < 4; k++)
                for (int t = 0; t < T; t++) {
                    double a = jat(ours, arrs[k], t), b = jat(refj, arrs[k], t);
                    if (t == 0 && k >= 2) { CHECK(isinf(a) && isinf(b)); continue; } /* null: undefined */
                    CHECKF(close_enough(a, b, 1e-4), "%s[%d]: ours %.8f skimage %.8f", arrs[k], t, a, b);
                    if (isfinite(a - b)) maxerr = fmax(maxerr, fabs(a - b));
                }
            printf("hb metrics vs scikit-image: max |difference| %.3g over %d frames (ssim_mean %.6f, psnr_mean %s)\n",
                   maxerr, T, jget(refj, "ssim_mean"), "inf: one identical frame");
            json_decref(refj);
        }
    }
    json_decref(ours);

    /* y4m input, identical clips: PSNR inf (null), SSIM 1, delta flicker 0 */
    char py4m[512];
    snprintf(py4m, sizeof py4m, "%s/ref.y4m", dir);
    CHECK(hb_video_write(py4m, ref, T, H, W, &o) == 0);
    snprintf(cmd, sizeof cmd, "'%s' metrics --json '%s' '%s'", hb, py4m, py4m);
    json_t *same = run_json(cmd, &rc);
    CHECK(rc == 0 && same && json_is_null(json_object_get(same, "psnr_mean")) && fabs(jget(same, "ssim_mean") - 1) < 1e-12 &&
          jget(same, "flicker_delta_mean") == 0 && jget(same, "flicker_ref_mean") > 0);
    json_decref(same);
    /* text table */
    char out[8192];
    snprintf(cmd, sizeof cmd, "'%s' metrics '%s' '%s'", hb, pr, pt);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && strstr(out, "mean") && strstr(out, "psnr_dB"));

    /* mismatches and usage errors: one clear message */
    char pshort[512], psmall[512];
    snprintf(pshort, sizeof pshort, "%s/short/", dir);
    snprintf(psmall, sizeof psmall, "%s/small/", dir);
    CHECK(hb_video_write(pshort, ref, T - 1, H, W, &o) == 0);
    uint8_t *small = malloc((size_t)T * 20 * 30 * 3);
    mu_render(&r, small, T, 20, 30, 5);
    CHECK(hb_video_write(psmall, small, T, 20, 30, &o) == 0);
    free(small);
    snprintf(cmd, sizeof cmd, "'%s' metrics '%s' '%s' 2>&1", hb, pr, pshort);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "frame count mismatch") && strstr(out, "6 frames"));
    printf("%s", out);
    snprintf(cmd, sizeof cmd, "'%s' metrics '%s' '%s' 2>&1", hb, pr, psmall);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "frame size mismatch"));
    printf("%s", out);
    snprintf(cmd, sizeof cmd, "'%s' metrics --frames 5 '%s' '%s' 2>&1", hb, pr, pshort);
    CHECK(tl_run(cmd, out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd, "'%s' metrics '%s' '%s/nope.mp4' 2>&1", hb, pr, dir);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "nope.mp4"));
    printf("%s", out);
    snprintf(cmd, sizeof cmd, "'%s' metrics --help", hb);
    CHECK(tl_run(cmd, out, sizeof out) == 0 && strstr(out, "--json") && strstr(out, "flicker"));
    snprintf(cmd, sizeof cmd, "'%s' metrics --bogus a b 2>&1", hb);
    CHECK(tl_run(cmd, out, sizeof out) == 1 && strstr(out, "--bogus"));
    snprintf(cmd, sizeof cmd, "'%s' metrics onlyone 2>&1", hb);
    CHECK(tl_run(cmd, out, sizeof out) == 2);
    free(ref);
    free(test);
    /* decoded videos: hb's reader gives the ffmpeg tool's own rgb24 conversion bit for bit (what the common
     * evaluation pipelines decode with), for an H.264 4:2:0 file with sharp colour edges */
    if (tl_run("command -v ffmpeg >/dev/null", NULL, 0) == 0) {
        char mp4[600], raw[600], cmd[2000];
        snprintf(mp4, sizeof mp4, "%s/edges.mp4", dir);
        snprintf(raw, sizeof raw, "%s/edges.rgb", dir);
        snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -f lavfi -i testsrc2=size=96x64:rate=24 -frames:v 6 -pix_fmt yuv420p "
                 "-c:v libx264 '%s' && ffmpeg -v error -y -i '%s' -f rawvideo -pix_fmt rgb24 '%s'", mp4, mp4, raw);
        CHECK(tl_run(cmd, NULL, 0) == 0);
        hb_video v = {0};
        FILE *f = fopen(raw, "rb");
        uint8_t *want = malloc((size_t)6 * 96 * 64 * 3);
        size_t got = f ? fread(want, 1, (size_t)6 * 96 * 64 * 3, f) : 0;
        if (f) fclose(f);
        CHECK(got == (size_t)6 * 96 * 64 * 3 && hb_video_read(mp4, 0, &v) == 0 && v.frames == 6 && v.width == 96);
        if (v.rgb && got == (size_t)6 * 96 * 64 * 3) {
            size_t bad = 0;
            for (size_t i = 0; i < got; i++) bad += v.rgb[i] != want[i];
            CHECKF(bad == 0, "%zu of %zu bytes differ from ffmpeg's rgb24", bad, got);
        }
        hb_video_free(&v);
        free(want);
    }
    return tl_done();
}
