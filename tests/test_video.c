/* Video output and input: MP4/MKV/WebM through FFmpeg (decoded PSNR, ffprobe frame count/size/fps/metadata),
 * Y4M (bytes checked against an independent YUV computation and against FFmpeg's parse), PNG frames (exact),
 * the streaming writer (chunks; a killed run leaves a playable fragmented MP4), and failures: unwritable
 * paths, odd sizes, a file-size limit (ulimit -f) -> one clear error and no partial file. */
#include "testlib.h"
#include "media_util.h"
#include "io/image.h"
#include "io/video.h"
#include "io/metrics.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int have_ffprobe;

#ifdef HB_HAVE_FFMPEG /* ffprobe checks of the FFmpeg containers */
/* ffprobe VALUE of `key=` in the output of `entries` for stream v:0 (or format tags). */
static int probe(const char *path, const char *entries, char *out, size_t cap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -count_frames -show_entries %s -of default=nw=1 '%s'",
             entries, path);
    return tl_run(cmd, out, cap);
}
static long probe_int(const char *txt, const char *key) {
    const char *p = strstr(txt, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}
#endif

static double video_psnr(const hb_video *v, const uint8_t *ref, int T, int H, int W) {
    if (v->frames != T || v->height != H || v->width != W) return -1;
    return hb_metric_psnr(v->rgb, ref, (size_t)T * H * W * 3);
}

#ifdef HB_HAVE_FFMPEG
static void check_ffmpeg_format(const char *dir, const char *ext, const uint8_t *frames, int T, int H, int W,
                                double min_psnr, const hb_video_meta *meta) {
    char p[512], out[8192];
    snprintf(p, sizeof p, "%s/clip.%s", dir, ext);
    hb_video_opts o = {.fps = 24, .meta = meta};
    int rc = hb_video_write(p, frames, T, H, W, &o);
    CHECKF(rc == 0, "%s: %s", ext, hb_last_error());
    if (rc) return;
    CHECKF(mu_count_entries(dir, ".hbtmp") == 0, "%s: temp file left behind", ext);
    hb_video v;
    CHECKF(hb_video_read(p, 0, &v) == 0, "%s", hb_last_error());
    double ps = video_psnr(&v, frames, T, H, W);
    printf("%-5s %d frames %dx%d: decoded PSNR %.2f dB (bound %.0f), fps read back %.3f\n", ext, v.frames, W, H, ps,
           min_psnr, v.fps);
    CHECKF(ps >= min_psnr, "%s: PSNR %.2f < %.1f", ext, ps, min_psnr);
    CHECKF(fabs(v.fps - 24) < 1e-6, "%s: fps %.4f", ext, v.fps);
    hb_video_free(&v);
    if (have_ffprobe) {
        CHECK(probe(p, "stream=width,height,r_frame_rate,nb_read_frames", out, sizeof out) == 0);
        CHECKF(probe_int(out, "width=") == W && probe_int(out, "height=") == H, "%s: ffprobe size: %s", ext, out);
        CHECKF(probe_int(out, "nb_read_frames=") == T, "%s: ffprobe frame count: %s", ext, out);
        CHECKF(strstr(out, "r_frame_rate=24/1") != NULL, "%s: ffprobe fps: %s", ext, out);
        if (meta) {
            CHECK(probe(p, "format_tags", out, sizeof out) == 0);
            /* Matroska stores tag names in capitals */
            CHECKF(strcasestr(out, "title=a red fox") && strcasestr(out, "prompt=a red fox") && strcasestr(out, "seed=42") &&
                       strcasestr(out, "steps=4") && strcasestr(out, "model=hummingbird-xt") && strcasestr(out, "comment="),
                   "%s: metadata missing: %s", ext, out);
        }
    }
}
#endif

/* In a child process with a file-size limit (as `ulimit -f`), SIGXFSZ ignored (as hb does): the write
 * must fail with one clear error, and leave nothing in the folder. */
static void check_disk_full(const char *dir, const char *name, const uint8_t *frames, int T, int H, int W) {
    char sub[512], p[600];
    snprintf(sub, sizeof sub, "%s/full_%s", dir, name[0] == '/' ? "png" : name + 1);
    mkdir(sub, 0755);
    snprintf(p, sizeof p, "%s/out%s", sub, name);
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {16384, 16384};
        setrlimit(RLIMIT_FSIZE, &rl);
        hb_video_opts o = {.fps = 16};
        int rc = hb_video_write(p, frames, T, H, W, &o);
        const char *m = rc ? hb_last_error() : "";
        if (write(fds[1], m, strlen(m)) < 0) _exit(3);
        _exit(rc ? 0 : 2);
    }
    close(fds[1]);
    char msg[HB_ERRMSG_MAX] = "";
    ssize_t n = read(fds[0], msg, sizeof msg - 1);
    msg[n > 0 ? n : 0] = 0;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: writing past the file-size limit did not fail", name);
    printf("file-size limit, %-6s -> %s\n", name, msg);
    CHECKF(strstr(msg, "disk full or file-size limit") != NULL, "%s: unclear error: %s", name, msg);
    CHECKF(strstr(msg, sub) != NULL, "%s: error does not name the file: %s", name, msg);
    int left = mu_count_entries(name[0] == '/' ? p : sub, NULL);
    CHECKF(left <= 0, "%s: %d partial files left behind", name, left);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    const char *dir = tl_tmpdir();
    have_ffprobe = tl_run("ffprobe -version >/dev/null 2>&1", NULL, 0) == 0;
    if (!have_ffprobe) printf("SKIP part: ffprobe not found (install the ffmpeg package): no container checks\n");
    int T = 12, H = 48, W = 64;
    size_t fsz = (size_t)H * W * 3;
    uint8_t *frames = malloc(fsz * T);
    mu_render(&r, frames, T, H, W, 2);
    hb_video_meta meta = {.prompt = "a red fox", .model = "hummingbird-xt", .seed = 42, .has_seed = true, .steps = 4};

    /* format by name */
    CHECK(hb_video_format_for_path("a/b.MP4") == HB_VFMT_MP4);
    CHECK(hb_video_format_for_path("x.mkv") == HB_VFMT_MKV);
    CHECK(hb_video_format_for_path("x.webm") == HB_VFMT_WEBM);
    CHECK(hb_video_format_for_path("x.y4m") == HB_VFMT_Y4M);
    CHECK(hb_video_format_for_path("frames/") == HB_VFMT_PNGDIR);
    CHECK(hb_video_format_for_path(dir) == HB_VFMT_PNGDIR);
    CHECK(hb_video_format_for_path("x.avi") == HB_VFMT_AUTO && strstr(hb_last_error(), "x.avi"));

#ifdef HB_HAVE_FFMPEG
    /* bounds under the PSNR measured on these 64x48 frames (noise +-2 levels): H.264 CRF 18 35.8-36.2 dB (the
     * ffmpeg CLI with -crf 18 -pix_fmt yuv420p gives the same), VP9 CRF 31 34.4 dB */
    check_ffmpeg_format(dir, "mp4", frames, T, H, W, 30.0, &meta); /* read back with FFmpeg's default conversion */
    check_ffmpeg_format(dir, "mkv", frames, T, H, W, 30.0, &meta);
    check_ffmpeg_format(dir, "webm", frames, 6, H, W, 30.0, NULL);
#endif

    /* Y4M 4:2:0 and 4:4:4: the file is header + FRAME + planes of full-range BT.601 */
    for (int is444 = 0; is444 < 2; is444++) {
        char p[512];
        snprintf(p, sizeof p, "%s/clip%s.y4m", dir, is444 ? "444" : "420");
        hb_video_opts o = {.fps = 16, .y4m_444 = is444};
        CHECKF(hb_video_write(p, frames, T, H, W, &o) == 0, "%s", hb_last_error());
        FILE *f = fopen(p, "rb");
        char hdr[256] = "";
        CHECK(f && fgets(hdr, sizeof hdr, f));
        char want[256];
        snprintf(want, sizeof want, "YUV4MPEG2 W%d H%d F16:1 Ip A1:1 %s XCOLORRANGE=FULL\n", W, H, is444 ? "C444" : "C420jpeg");
        CHECKF(!strcmp(hdr, want), "y4m header '%s'", hdr);
        int cw = is444 ? W : W / 2, ch = is444 ? H : H / 2;
        size_t psz = (size_t)W * H + 2 * (size_t)cw * ch;
        uint8_t *pl = malloc(psz);
        int maxd = 0, bad_marker = 0;
        for (int t = 0; t < T; t++) {
            char fm[16] = "";
            if (!fgets(fm, sizeof fm, f) || strcmp(fm, "FRAME\n")) bad_marker = 1;
            if (fread(pl, 1, psz, f) != psz) { bad_marker = 1; break; }
            const uint8_t *fr = frames + fsz * t;
            for (int i = 0; i < H; i++) /* independent formula: JFIF full-range YCbCr */
                for (int j = 0; j < W; j++) {
                    const uint8_t *px = fr + ((size_t)i * W + j) * 3;
                    double y = 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2];
                    maxd = fmax(maxd, fabs(pl[i * W + j] - y));
                }
            for (int i = 0; i < ch; i++)
                for (int j = 0; j < cw; j++) {
                    double s[3] = {0, 0, 0};
                    int k = is444 ? 1 : 2;
                    for (int a = 0; a < k; a++)
                        for (int b = 0; b < k; b++)
                            for (int c = 0; c < 3; c++) s[c] += fr[((size_t)(i * k + a) * W + j * k + b) * 3 + c] / (double)(k * k);
                    double cb = 128 - 0.168736 * s[0] - 0.331264 * s[1] + 0.5 * s[2];
                    double cr = 128 + 0.5 * s[0] - 0.418688 * s[1] - 0.081312 * s[2];
                    maxd = fmax(maxd, fabs(pl[W * H + i * cw + j] - cb));
                    maxd = fmax(maxd, fabs(pl[W * H + cw * ch + i * cw + j] - cr));
                }
        }
        CHECK(!bad_marker);
        CHECKF(maxd <= 0, "y4m planes differ from the reference conversion"); /* 0.5 rounding -> integer max 0 */
        CHECK(fgetc(f) == EOF);
        fclose(f);
        /* FFmpeg parses it to the same planes */
        if (have_ffprobe) {
            char cmd[2048], outp[512];
            snprintf(outp, sizeof outp, "%s/raw%d.yuv", dir, is444);
            snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -i '%s' -f rawvideo -pix_fmt %s '%s'", p,
                     is444 ? "yuv444p" : "yuv420p", outp);
            CHECK(tl_run(cmd, NULL, 0) == 0);
            FILE *a = fopen(p, "rb"), *b = fopen(outp, "rb");
            int same = a && b;
            if (same) {
                fgets(hdr, sizeof hdr, a);
                for (int t = 0; t < T && same; t++) {
                    uint8_t *x = malloc(psz), *y = malloc(psz);
                    char fm[16];
                    same = fgets(fm, sizeof fm, a) && fread(x, 1, psz, a) == psz && fread(y, 1, psz, b) == psz &&
                           !memcmp(x, y, psz);
                    free(x); free(y);
                }
            }
            if (a) fclose(a);
            if (b) fclose(b);
            CHECKF(same, "ffmpeg decodes %s to different planes", p);
        }
        /* RGB round trip through our reader (FFmpeg + swscale) */
        hb_video v;
        CHECKF(hb_video_read(p, 0, &v) == 0, "%s", hb_last_error());
        double ps = video_psnr(&v, frames, T, H, W);
        double md = v.rgb && v.frames == T ? mu_max_absdiff(v.rgb, frames, fsz * T) : 999;
        printf("y4m %s: RGB round trip PSNR %.2f dB, max diff %.0f, fps %.2f\n", is444 ? "4:4:4" : "4:2:0", ps, md, v.fps);
        CHECKF(is444 ? md <= 3 : ps >= 30, "y4m round trip too lossy");
        hb_video_free(&v);
        free(pl);
    }

    /* PNG frames: exact; a second shorter write into the same folder removes stale frames */
    {
        char p[512];
        snprintf(p, sizeof p, "%s/frames/", dir);
        hb_video_opts o = {.fps = 16, .meta = &meta};
        CHECKF(hb_video_write(p, frames, T, H, W, &o) == 0, "%s", hb_last_error());
        CHECK(mu_count_entries(p, "frame_") == T);
        hb_video v;
        CHECKF(hb_video_read(p, 0, &v) == 0, "%s", hb_last_error());
        CHECK(v.frames == T && v.rgb && !memcmp(v.rgb, frames, fsz * T));
        hb_video_free(&v);
        CHECK(hb_video_write(p, frames + fsz, 5, H, W, &o) == 0);
        CHECK(mu_count_entries(p, "frame_") == 5);
        CHECK(hb_video_read(p, 0, &v) == 0 && v.frames == 5 && !memcmp(v.rgb, frames + fsz, fsz * 5));
        hb_video_free(&v);
        char f0[600];
        snprintf(f0, sizeof f0, "%sframe_00000.png", p);
        CHECK(hb_video_read(f0, 0, &v) == 0 && v.frames == 1 && !memcmp(v.rgb, frames + fsz, fsz));
        hb_video_free(&v);
    }

#ifdef HB_HAVE_FFMPEG
    /* streaming writer: 3 chunks into a fragmented MP4 */
    {
        char p[512], out[4096];
        snprintf(p, sizeof p, "%s/stream.mp4", dir);
        hb_video_opts o = {.fps = 8, .streaming = true, .meta = &meta};
        hb_video_writer *w = hb_video_writer_open(p, H, W, &o);
        CHECKF(w != NULL, "%s", hb_last_error());
        for (int c = 0; w && c < 3; c++) CHECK(hb_video_writer_append(w, frames + fsz * 4 * c, 4) == 0);
        CHECK(hb_video_writer_frames(w) == 12);
        CHECK(hb_video_writer_close(w) == 0);
        hb_video v;
        CHECK(hb_video_read(p, 0, &v) == 0);
        double ps = video_psnr(&v, frames, T, H, W);
        printf("streaming mp4, 3 chunks: %d frames, PSNR %.2f dB\n", v.frames, ps);
        CHECK(ps >= 30);
        hb_video_free(&v);
        if (have_ffprobe) {
            CHECK(probe(p, "stream=nb_read_frames", out, sizeof out) == 0);
            CHECKF(probe_int(out, "nb_read_frames=") == 12, "streamed mp4 frame count: %s", out);
        }
        /* a run killed mid-stream (no close) leaves a playable file with the finished fragments */
        int T2 = 48;
        uint8_t *many = malloc(fsz * T2);
        mu_render(&r, many, T2, H, W, 2);
        snprintf(p, sizeof p, "%s/killed.mp4", dir);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            hb_video_writer *k = hb_video_writer_open(p, H, W, &o);
            for (int c = 0; k && c < T2 / 8; c++) hb_video_writer_append(k, many + fsz * 8 * c, 8);
            kill(getpid(), SIGKILL);
            _exit(1);
        }
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st));
        CHECK(access(p, F_OK) != 0); /* nothing under the final name: the frames are in killed.partial.mp4 */
        snprintf(p, sizeof p, "%s/killed.partial.mp4", dir);
        int got = hb_video_read(p, 0, &v) == 0 ? v.frames : -1;
        printf("streaming mp4 killed after %d frames appended: %d frames playable\n", T2, got);
        CHECKF(got == T2, "killed streaming mp4: %d of %d frames readable (%s)", got, T2, got < 0 ? hb_last_error() : "");
        if (got > 0) {
            double ps2 = hb_metric_psnr(v.rgb, many, fsz * got);
            CHECKF(ps2 >= 30, "killed stream PSNR %.2f", ps2);
        }
        hb_video_free(&v);
        free(many);
        /* abort removes the partial streaming output, and only it: an older file under the name survives */
        snprintf(p, sizeof p, "%s/aborted.mkv", dir);
        FILE *old = fopen(p, "w");
        CHECK(old && fputs("older video", old) >= 0 && fclose(old) == 0);
        w = hb_video_writer_open(p, H, W, &o);
        CHECK(w && hb_video_writer_append(w, frames, 3) == 0);
        /* a second writer of the same path is refused while the first runs (one line naming the lock) */
        hb_video_writer *w2 = hb_video_writer_open(p, H, W, &o);
        CHECKF(w2 == NULL && strstr(hb_last_error(), "another run is writing"), "%s", hb_last_error());
        hb_video_writer_abort(w2);
        hb_video_writer_abort(w);
        char buf[32] = {0};
        old = fopen(p, "r");
        CHECK(old && fread(buf, 1, sizeof buf - 1, old) > 0 && !strcmp(buf, "older video"));
        if (old) fclose(old);
        snprintf(buf, sizeof buf, "%s", "aborted.partial.mkv");
        char pp[600];
        snprintf(pp, sizeof pp, "%s/%s", dir, buf);
        CHECK(access(pp, F_OK) != 0);
        /* stopped on purpose: the finished partial file stays playable under its partial name */
        snprintf(p, sizeof p, "%s/stopped.mp4", dir);
        w = hb_video_writer_open(p, H, W, &o);
        CHECK(w && hb_video_writer_append(w, frames, 5) == 0);
        char kept[600] = "";
        CHECK(hb_video_writer_close_partial(w, kept, sizeof kept) == 0 && strstr(kept, "stopped.partial.mp4"));
        CHECK(access(p, F_OK) != 0 && hb_video_read(kept, 0, &v) == 0 && v.frames == 5);
        hb_video_free(&v);
    }
#endif

    /* float chunks straight from a model: [3, T, H, W] in [-1, 1], two chunks, y4m 4:4:4 */
    {
        char p[512];
        snprintf(p, sizeof p, "%s/float.y4m", dir);
        int Tc = 3;
        size_t n = (size_t)3 * Tc * H * W;
        float *x = malloc(sizeof(float) * n * 2);
        tl_fill_uniform(&r, x, (int64_t)n * 2, -1.1f, 1.1f);
        uint8_t *want = malloc(fsz * Tc * 2);
        hb_frames_from_cthw(x, Tc, H, W, -1, 1, want);
        hb_frames_from_cthw(x + n, Tc, H, W, -1, 1, want + fsz * Tc);
        hb_video_opts o = {.fps = 16, .y4m_444 = true, .streaming = true};
        hb_video_writer *w = hb_video_writer_open(p, H, W, &o);
        CHECK(w && hb_video_writer_append_float(w, x, Tc, HB_FRAMES_CTHW, -1, 1) == 0 &&
              hb_video_writer_append_float(w, x + n, Tc, HB_FRAMES_CTHW, -1, 1) == 0);
        CHECK(hb_video_writer_close(w) == 0);
        hb_video v;
        CHECK(hb_video_read(p, 0, &v) == 0 && v.frames == 2 * Tc);
        double md = v.frames == 2 * Tc ? mu_max_absdiff(v.rgb, want, fsz * Tc * 2) : 999;
        CHECKF(md <= 3, "float chunks -> y4m 4:4:4 -> RGB: max diff %.0f", md);
        hb_video_free(&v);
        free(x);
        free(want);
    }

    /* errors: unwritable paths, bad sizes; nothing left behind */
    {
        char p[512];
        snprintf(p, sizeof p, "%s/afile", dir);
        fclose(fopen(p, "w"));
        const char *exts[] = {".mp4", ".y4m", "/"};
        for (int i = 0; i < 3; i++) {
            char bad[600];
            snprintf(bad, sizeof bad, "%s/sub%s", p, exts[i]); /* parent is a file */
            hb_video_opts o = {.fps = 16};
            hb_clear_error();
            CHECK(hb_video_write(bad, frames, T, H, W, &o) == -1);
            CHECKF(strstr(hb_last_error(), bad) != NULL, "unclear error: %s", hb_last_error());
            printf("unwritable %-4s -> %s\n", exts[i], hb_last_error());
            snprintf(bad, sizeof bad, "/proc/hb-unwritable/x%s", exts[i]); /* unwritable even for root */
            CHECK(hb_video_write(bad, frames, T, H, W, &o) == -1);
            CHECKF(strstr(hb_last_error(), "/proc/hb-unwritable/x") != NULL, "unclear error: %s", hb_last_error());
        }
        snprintf(p, sizeof p, "%s/odd.mp4", dir);
        hb_video_opts o = {.fps = 16};
        CHECK(hb_video_write(p, frames, 2, H - 1, W, &o) == -1 && strstr(hb_last_error(), "even"));
        CHECK(access(p, F_OK) != 0);
        CHECK(hb_video_write(p, frames, 0, H, W, &o) == -1);
        CHECK(mu_count_entries(dir, ".hbtmp") == 0);
    }

    /* a full disk (file-size limit): one clear error, no partial file */
    {
        int T3 = 16, H3 = 96, W3 = 128;
        uint8_t *noisy = malloc((size_t)T3 * H3 * W3 * 3);
        mu_render(&r, noisy, T3, H3, W3, 60);
#ifdef HB_HAVE_FFMPEG
        check_disk_full(dir, ".mp4", noisy, T3, H3, W3);
        check_disk_full(dir, ".mkv", noisy, T3, H3, W3);
#endif
        check_disk_full(dir, ".y4m", noisy, T3, H3, W3);
        check_disk_full(dir, "/", noisy, T3, H3, W3);
        free(noisy);
    }

    /* reading garbage */
    {
        char p[512];
        snprintf(p, sizeof p, "%s/garbage.mp4", dir);
        FILE *f = fopen(p, "w");
        for (int i = 0; i < 3000; i++) fputc((int)(hb_rng_u64(&r) & 255), f);
        fclose(f);
        hb_video v;
        CHECK(hb_video_read(p, 0, &v) == -1 && strstr(hb_last_error(), p));
        printf("garbage video -> %s\n", hb_last_error());
        CHECK(hb_video_read("/nonexistent-hb.mp4", 0, &v) == -1 && strstr(hb_last_error(), "/nonexistent-hb.mp4"));
    }
    free(frames);
    return tl_done();
}
