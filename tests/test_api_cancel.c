/* Cancellation through the public API (include/hummingbird.h): a progress callback that returns nonzero
 * stops hb_generate before its next denoising step or decoded frame and hb_generate_ar before its next chunk;
 * both return HB_CANCELLED with no output, the model stays usable, and a run whose callback always returns 0
 * is unchanged (same frames as a run without a callback). Tiny random-weight XT and XTX folders. */
#include "testlib.h"
#include <unistd.h>
#include "pipeline/model_folder.h"
#include "hummingbird.h"
#include "random_models.h"
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *stop_stage; /* cancel when this stage reports step stop_step */
    int stop_step;
    int calls_after_stop;   /* progress calls seen after the cancel was asked */
    bool stopped;
    int denoise_steps, decode_steps, chunks;
} watch;

static int on_progress(void *user, const char *stage, int step, int total, double el, double eta) {
    (void)total, (void)el, (void)eta;
    watch *w = user;
    if (w->stopped) { w->calls_after_stop++; return 1; }
    if (step > 0 && !strcmp(stage, "denoise")) w->denoise_steps = step;
    if (step > 0 && !strcmp(stage, "decode")) w->decode_steps = step;
    if (step > 0 && !strcmp(stage, "chunks")) w->chunks = step;
    if (w->stop_stage && !strcmp(stage, w->stop_stage) && step == w->stop_step) w->stopped = true;
    return w->stopped;
}

static int on_chunk(void *user, int64_t first, int n, const uint8_t *rgb, int h, int w) {
    (void)first, (void)rgb, (void)h, (void)w;
    *(int64_t *)user += n;
    return 0;
}

static void test_xt(const char *dir) {
    hb_model *m = hb_model_load(dir, NULL);
    CHECKF(m != NULL, "%s", hb_last_error_message());
    if (!m) return;
    hb_generate_params p;
    hb_generate_params_init(&p);
    p.prompt = "a red fox in the snow";
    p.width = 64, p.height = 64, p.frames = 9, p.seed = tl_seed() % 1000;
    hb_video_frames ref = {0}, v = {0};
    CHECKF(hb_generate(m, &p, &ref) == 0, "%s", hb_last_error_message());

    /* a callback that never cancels changes nothing */
    watch w0 = {0};
    p.progress = on_progress, p.progress_user = &w0;
    CHECKF(hb_generate(m, &p, &v) == 0, "%s", hb_last_error_message());
    CHECK(w0.denoise_steps == 3 && w0.decode_steps > 0);
    CHECK(v.rgb && ref.rgb && v.frames == ref.frames &&
          !memcmp(v.rgb, ref.rgb, (size_t)v.frames * (size_t)v.height * (size_t)v.width * 3));
    hb_frames_free(&v);

    /* cancelled after denoise step 1: no step 2, no output */
    const char *stages[] = {"text", "denoise", "decode"};
    const int steps[] = {1, 1, 1};
    for (int i = 0; i < 3; i++) {
        watch w = {.stop_stage = stages[i], .stop_step = steps[i]};
        p.progress_user = &w;
        hb_video_frames c = {0};
        int rc = hb_generate(m, &p, &c);
        CHECKF(rc == HB_CANCELLED, "stop at %s: rc %d (%s)", stages[i], rc, hb_last_error_message());
        CHECK(c.rgb == NULL);
        CHECK(strstr(hb_last_error_message(), "cancelled") != NULL);
        if (i == 1) CHECKF(w.denoise_steps == 1, "denoise went on to step %d", w.denoise_steps);
        if (i == 2) CHECKF(w.decode_steps == 1, "decode went on to frame %d", w.decode_steps);
        CHECKF(w.calls_after_stop <= 3, "%d progress calls after the cancel", w.calls_after_stop);
    }
    /* the model is still usable and gives the same video */
    p.progress = NULL;
    CHECKF(hb_generate(m, &p, &v) == 0, "%s", hb_last_error_message());
    CHECK(v.rgb && !memcmp(v.rgb, ref.rgb, (size_t)v.frames * (size_t)v.height * (size_t)v.width * 3));
    hb_frames_free(&v);
    hb_frames_free(&ref);
    hb_model_free(m);
}

static void test_ar(const char *dir) {
    hb_ar_params p;
    hb_ar_params_init(&p);
    p.prompt = "a boat on a lake";
    p.width = 64, p.height = 48, p.frames = 45; /* 12 latent frames: 4 chunks of 3 */
    p.seed = tl_seed() % 1000;
    int64_t got = 0, made = 0;
    p.on_chunk = on_chunk, p.user = &got;
    watch w0 = {0};
    p.progress = on_progress, p.progress_user = &w0;
    CHECKF(hb_generate_ar(dir, &p, &made) == 0, "%s", hb_last_error_message());
    CHECKF(got == 45 && made == 45 && w0.chunks == 4, "frames %lld/%lld, chunks %d", (long long)got, (long long)made, w0.chunks);

    watch w = {.stop_stage = "chunks", .stop_step = 1};
    got = 0;
    p.progress_user = &w;
    int rc = hb_generate_ar(dir, &p, &made);
    CHECKF(rc == HB_CANCELLED, "rc %d (%s)", rc, hb_last_error_message());
    CHECKF(w.chunks == 1 && got < 45, "chunks %d, frames %lld", w.chunks, (long long)got);
    /* the count reported after the stop is the frames the callback received */
    CHECKF(made == got && got > 0, "reported %lld frames, the callback got %lld", (long long)made, (long long)got);
    /* without on_chunk: a file output and the progress callback alone */
    char out[4200];
    snprintf(out, sizeof out, "%s/ar.y4m", tl_tmpdir());
    p.on_chunk = NULL, p.output = out;
    w = (watch){.stop_stage = "chunks", .stop_step = 2};
    rc = hb_generate_ar(dir, &p, &made);
    CHECKF(rc == HB_CANCELLED && w.chunks == 2, "rc %d, chunks %d (%s)", rc, w.chunks, hb_last_error_message());
    /* a library caller's cancelled file is removed, partial name included */
    char part[4200];
    snprintf(part, sizeof part, "%s/ar.partial.y4m", tl_tmpdir());
    CHECK(access(out, F_OK) != 0 && access(part, F_OK) != 0);
}

int main(void) {
    hb_threads_init(0);
    char xt[4096], xtx[4096];
    snprintf(xt, sizeof xt, "%s/xt", tl_tmpdir());
    snprintf(xtx, sizeof xtx, "%s/xtx", tl_tmpdir());
    mkdir(xt, 0755), mkdir(xtx, 0755);
    hb_mkfolder_opts o = {.arch = "hummingbird-xt", .tiny = true, .dtype = HB_F32, .seed = 3};
    int rc = hb_model_folder_write_random(xt, &o);
    CHECKF(rc == 0, "%s", hb_last_error());
    o.arch = "hummingbird-xtx";
    if (!rc) rc = hb_model_folder_write_random(xtx, &o);
    CHECKF(rc == 0, "%s", hb_last_error());
    if (rc) return tl_done();
    test_xt(xt);
    test_ar(xtx);
    return tl_done();
}
