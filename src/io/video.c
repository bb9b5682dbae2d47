/* io/video: clip writers (FFmpeg H.264/VP9/AV1, hand-written Y4M, PNG frames) and readers. */
#include "io/video.h"
#include "io/image.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HB_HAVE_FFMPEG
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#endif

/* ---------------- names and formats ---------------- */
static bool ends_with_ci(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

hb_video_format hb_video_format_for_path(const char *path) {
    struct stat st;
    size_t n = strlen(path);
    if (n && path[n - 1] == '/') return HB_VFMT_PNGDIR;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return HB_VFMT_PNGDIR;
    if (ends_with_ci(path, ".mp4") || ends_with_ci(path, ".m4v") || ends_with_ci(path, ".mov")) return HB_VFMT_MP4;
    if (ends_with_ci(path, ".mkv")) return HB_VFMT_MKV;
    if (ends_with_ci(path, ".webm")) return HB_VFMT_WEBM;
    if (ends_with_ci(path, ".y4m")) return HB_VFMT_Y4M;
    hb_error("%s: unknown video format (use .mp4, .mkv, .webm, .y4m, or a folder name ending in / for PNG frames)",
             path);
    return HB_VFMT_AUTO;
}

const char *hb_video_format_name(hb_video_format f) {
    switch (f) {
    case HB_VFMT_MP4: return "mp4";
    case HB_VFMT_MKV: return "mkv";
    case HB_VFMT_WEBM: return "webm";
    case HB_VFMT_Y4M: return "y4m";
    case HB_VFMT_PNGDIR: return "png-frames";
    default: return "auto";
    }
}

/* ---------------- colour conversion ---------------- */
static inline uint8_t clamp_u8(double v) {
    if (!(v > 0.0)) return 0;
    if (v >= 255.0) return 255;
    return (uint8_t)(v + 0.5);
}

void hb_rgb_to_yuv(const uint8_t *rgb, int H, int W, bool full_range, bool chroma420, uint8_t *y, uint8_t *cb,
                   uint8_t *cr) {
    double ys = full_range ? 1.0 : 219.0 / 255.0, yo = full_range ? 0.0 : 16.0;
    double cs = full_range ? 1.0 : 224.0 / 255.0;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            const uint8_t *p = rgb + ((size_t)i * W + j) * 3;
            y[(size_t)i * W + j] = clamp_u8(yo + ys * (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]));
        }
    int cw = chroma420 ? (W + 1) / 2 : W, chh = chroma420 ? (H + 1) / 2 : H, f = chroma420 ? 2 : 1;
    for (int i = 0; i < chh; i++)
        for (int j = 0; j < cw; j++) {
            double s[3] = {0, 0, 0};
            int cnt = 0;
            for (int di = 0; di < f; di++)
                for (int dj = 0; dj < f; dj++) {
                    int ii = i * f + di, jj = j * f + dj;
                    if (ii >= H || jj >= W) continue;
                    const uint8_t *p = rgb + ((size_t)ii * W + jj) * 3;
                    s[0] += p[0]; s[1] += p[1]; s[2] += p[2];
                    cnt++;
                }
            double r = s[0] / cnt, g = s[1] / cnt, b = s[2] / cnt;
            cb[(size_t)i * cw + j] = clamp_u8(128.0 + cs * (-0.168736 * r - 0.331264 * g + 0.5 * b));
            cr[(size_t)i * cw + j] = clamp_u8(128.0 + cs * (0.5 * r - 0.418688 * g - 0.081312 * b));
        }
}

/* ---------------- writer ---------------- */
struct hb_video_writer {
    char *path, *tmp; /* tmp: the file being written (NULL when writing the final name directly) */
    int lock_fd;      /* streaming: holds the exclusive lock on tmp (the partial file) until it is renamed */
    hb_video_format fmt;
    int H, W, n;
    double fps;
    bool streaming, y4m_444;
    /* y4m */
    FILE *f;
    uint8_t *planes;
    /* png frames */
    bool created_dir;
    char **text; /* key, value, ..., NULL (owned copies) */
#ifdef HB_HAVE_FFMPEG
    AVFormatContext *oc;
    AVCodecContext *cc;
    AVStream *st;
    AVFrame *frame;
    AVPacket *pkt;
#endif
};

static char *xstrdup(const char *s) {
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static void writer_free(hb_video_writer *w) {
    if (!w) return;
    if (w->text) {
        for (int i = 0; w->text[i]; i++) free(w->text[i]);
        free(w->text);
    }
    if (w->lock_fd >= 0) close(w->lock_fd);
    free(w->path);
    free(w->tmp);
    free(w->planes);
    free(w);
}

/* The streaming writer's file: NAME.partial.EXT next to `path` (playable while it grows, and plainly not the
 * finished video), locked for this writer alone: a second run writing the same path fails here instead of
 * corrupting the first. An older finished file at `path` stays untouched until the rename at close. */
static int open_partial(hb_video_writer *w) {
    const char *slash = strrchr(w->path, '/'), *dot = strrchr(w->path, '.');
    if (!dot || (slash && dot < slash)) dot = w->path + strlen(w->path);
    size_t cap = strlen(w->path) + 16;
    char *t = malloc(cap);
    if (!t) return hb_error("%s: out of memory", w->path);
    snprintf(t, cap, "%.*s.partial%s", (int)(dot - w->path), w->path, dot);
    int fd = open(t, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        free(t);
        return hb_error("%s: cannot create the output file: %s", w->path, strerror(e));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) hb_error("%s: another run is writing this video (%s is locked)", w->path, t);
        else hb_error("%s: cannot lock %s: %s", w->path, t, strerror(e));
        free(t);
        return -1;
    }
    if (ftruncate(fd, 0) != 0) { /* a killed run's leftover */
        int e = errno;
        close(fd);
        free(t);
        return hb_error("%s: cannot truncate the partial file: %s", w->path, strerror(e));
    }
    w->tmp = t;
    w->lock_fd = fd;
    return 0;
}

/* Temp file next to `path`: DIR/.BASE.hbtmp.XXXXXX (created, fd returned). */
static int make_temp(const char *path, char **tmp_out) {
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    size_t cap = strlen(path) + 32;
    char *t = malloc(cap);
    if (!t) return hb_error("%s: out of memory", path);
    snprintf(t, cap, "%.*s.%s.hbtmp.XXXXXX", (int)dl, path, base);
    int fd = mkstemp(t);
    if (fd < 0) {
        int e = errno;
        free(t);
        return hb_error("%s: cannot create the output file: %s", path, strerror(e));
    }
    fchmod(fd, 0644);
    *tmp_out = t;
    return fd;
}

static void build_text(hb_video_writer *w, const hb_video_meta *m) {
    char seed[32] = "", steps[32] = "", comment[1024];
    if (!m) return;
    if (m->has_seed) snprintf(seed, sizeof seed, "%lld", (long long)m->seed);
    if (m->steps > 0) snprintf(steps, sizeof steps, "%d", m->steps);
    if (m->comment) snprintf(comment, sizeof comment, "%s", m->comment);
    else snprintf(comment, sizeof comment, "generated by hummingbird%s%s%s%s%s%s", m->model ? "; model=" : "",
                  m->model ? m->model : "", seed[0] ? "; seed=" : "", seed, steps[0] ? "; steps=" : "", steps);
    const char *kv[12];
    int k = 0;
    if (m->prompt) { kv[k++] = "title"; kv[k++] = m->prompt; kv[k++] = "prompt"; kv[k++] = m->prompt; }
    if (m->model) { kv[k++] = "model"; kv[k++] = m->model; }
    if (seed[0]) { kv[k++] = "seed"; kv[k++] = seed; }
    if (steps[0]) { kv[k++] = "steps"; kv[k++] = steps; }
    kv[k++] = "comment"; kv[k++] = comment;
    w->text = calloc((size_t)k + 1, sizeof(char *));
    if (!w->text) return;
    for (int i = 0; i < k; i++) w->text[i] = xstrdup(kv[i]);
}

static int write_err(hb_video_writer *w, int e) {
    return hb_error("%s: write failed: %s%s", w->path, strerror(e),
                    e == EFBIG || e == ENOSPC ? " (disk full or file-size limit reached)" : "");
}

#ifdef HB_HAVE_FFMPEG /* only the FFmpeg containers need these */
static int sync_path(const char *p) {
    int fd = open(p, O_RDONLY);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}
#endif

/* ---- Y4M ---- */
static int y4m_open(hb_video_writer *w) {
    int fd;
    if (w->streaming) {
        if (open_partial(w)) return -1;
        fd = dup(w->lock_fd); /* the FILE closes its own descriptor; the lock's stays open until the rename */
        if (fd < 0) return hb_error("%s: cannot open the output file: %s", w->path, strerror(errno));
    } else if ((fd = make_temp(w->path, &w->tmp)) < 0) {
        return -1;
    }
    w->f = fdopen(fd, "wb");
    if (!w->f) { close(fd); return hb_error("%s: cannot open: %s", w->path, strerror(errno)); }
    /* frame rate as a fraction: integers exactly, NTSC-style rates as N*1000/1001 */
    long num, den = 1;
    if (fabs(w->fps - nearbyint(w->fps)) < 1e-9) num = (long)nearbyint(w->fps);
    else { den = 1000000; num = (long)nearbyint(w->fps * den); }
    if (fprintf(w->f, "YUV4MPEG2 W%d H%d F%ld:%ld Ip A1:1 %s XCOLORRANGE=FULL\n", w->W, w->H, num, den,
                w->y4m_444 ? "C444" : "C420jpeg") < 0)
        return write_err(w, errno);
    size_t ysz = (size_t)w->W * w->H;
    size_t csz = w->y4m_444 ? ysz : (size_t)((w->W + 1) / 2) * ((w->H + 1) / 2);
    w->planes = malloc(ysz + 2 * csz);
    if (!w->planes) return hb_error("%s: out of memory", w->path);
    return 0;
}

static int y4m_append(hb_video_writer *w, const uint8_t *rgb) {
    size_t ysz = (size_t)w->W * w->H;
    size_t csz = w->y4m_444 ? ysz : (size_t)((w->W + 1) / 2) * ((w->H + 1) / 2);
    hb_rgb_to_yuv(rgb, w->H, w->W, true, !w->y4m_444, w->planes, w->planes + ysz, w->planes + ysz + csz);
    if (fputs("FRAME\n", w->f) < 0 || fwrite(w->planes, 1, ysz + 2 * csz, w->f) != ysz + 2 * csz)
        return write_err(w, errno);
    if (w->streaming && fflush(w->f) != 0) return write_err(w, errno);
    return 0;
}

static int y4m_close(hb_video_writer *w) {
    int bad = fflush(w->f) != 0 || ferror(w->f), e = errno;
    if (!bad && fsync(fileno(w->f)) != 0 && errno != EINVAL) { bad = 1; e = errno; }
    if (fclose(w->f) != 0 && !bad) { bad = 1; e = errno; }
    w->f = NULL;
    return bad ? write_err(w, e) : 0;
}

/* ---- PNG frames ---- */
static char *frame_name(const char *dir, int i) {
    size_t n = strlen(dir) + 32;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%sframe_%05d.png", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", i);
    return s;
}

static int mkdir_p(const char *path, bool *created) {
    char *p = xstrdup(path);
    if (!p) return hb_error("%s: out of memory", path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    int r = mkdir(p, 0755);
    if (r == 0) *created = true;
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        int e = errno;
        free(p);
        return hb_error("%s: cannot create the output folder: %s", path, r != 0 ? strerror(errno ? errno : e) : "not a folder");
    }
    free(p);
    return 0;
}

static void png_remove_frames(hb_video_writer *w, int from, int to_excl, bool until_missing) {
    for (int i = from; until_missing || i < to_excl; i++) {
        char *s = frame_name(w->path, i);
        if (!s) return;
        int r = unlink(s);
        free(s);
        if (until_missing && r != 0) break;
    }
}

/* ---- FFmpeg ---- */
#ifdef HB_HAVE_FFMPEG
static int ff_err(hb_video_writer *w, int code, const char *what) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(code, buf, sizeof buf);
    int e = code == AVERROR(EFBIG) || code == AVERROR(ENOSPC);
    return hb_error("%s: %s failed: %s%s", w->path, what, buf, e ? " (disk full or file-size limit reached)" : "");
}

static int ff_drain(hb_video_writer *w) {
    for (;;) {
        int r = avcodec_receive_packet(w->cc, w->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
        if (r < 0) return ff_err(w, r, "encoding");
        av_packet_rescale_ts(w->pkt, w->cc->time_base, w->st->time_base);
        w->pkt->stream_index = w->st->index;
        r = av_interleaved_write_frame(w->oc, w->pkt);
        if (r < 0) return ff_err(w, r, "write");
        if (w->oc->pb && w->oc->pb->error) return ff_err(w, w->oc->pb->error, "write");
    }
}

/* FFmpeg's own messages: none, or its warnings and errors when verbose (never the encoder's statistics). */
static void ff_log_level(void) { av_log_set_level(hb_log_level < HB_LOG_DEBUG ? AV_LOG_QUIET : AV_LOG_WARNING); }

static int ff_open(hb_video_writer *w, const hb_video_opts *o) {
    ff_log_level();
    if ((w->W & 1) || (w->H & 1))
        return hb_error("%s: %s needs an even width and height (yuv420p), got %dx%d", w->path,
                        hb_video_format_name(w->fmt), w->W, w->H);
    const AVCodec *codec = NULL;
    const char *muxer = w->fmt == HB_VFMT_MP4 ? "mp4" : w->fmt == HB_VFMT_MKV ? "matroska" : "webm";
    int crf = o->crf;
    if (w->fmt == HB_VFMT_WEBM) {
        const char *names[] = {"libvpx-vp9", "libaom-av1", "libsvtav1"};
        for (int i = 0; i < 3 && !codec; i++) codec = avcodec_find_encoder_by_name(names[i]);
        if (!codec) return hb_error("%s: no VP9 or AV1 encoder in this FFmpeg build; write .mp4 or .mkv", w->path);
        if (crf <= 0) crf = codec->id == AV_CODEC_ID_VP9 ? 31 : 30;
    } else {
        codec = avcodec_find_encoder_by_name("libx264");
        if (!codec) return hb_error("%s: FFmpeg has no libx264 encoder; write .y4m or PNG frames", w->path);
        if (crf <= 0) crf = 18;
    }
    if (w->streaming) {
        if (open_partial(w)) return -1;
    } else {
        int fd = make_temp(w->path, &w->tmp);
        if (fd < 0) return -1;
        close(fd);
    }
    const char *file = w->tmp ? w->tmp : w->path;
    int r = avformat_alloc_output_context2(&w->oc, NULL, muxer, file);
    if (r < 0 || !w->oc) return ff_err(w, r, "creating the container");
    w->st = avformat_new_stream(w->oc, NULL);
    w->cc = avcodec_alloc_context3(codec);
    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    if (!w->st || !w->cc || !w->frame || !w->pkt) return hb_error("%s: out of memory", w->path);
    AVRational q = av_d2q(w->fps, 1001000);
    w->cc->width = w->W;
    w->cc->height = w->H;
    w->cc->pix_fmt = AV_PIX_FMT_YUV420P;
    w->cc->time_base = av_inv_q(q);
    w->cc->framerate = q;
    w->cc->color_range = AVCOL_RANGE_MPEG;
    w->cc->colorspace = AVCOL_SPC_SMPTE170M;
    w->cc->color_primaries = AVCOL_PRI_SMPTE170M;
    w->cc->color_trc = AVCOL_TRC_SMPTE170M;
    w->cc->chroma_sample_location = AVCHROMA_LOC_CENTER;
    if (w->streaming) w->cc->gop_size = (int)fmax(1.0, nearbyint(2.0 * w->fps));
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER) w->cc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    char crfs[16];
    snprintf(crfs, sizeof crfs, "%d", crf);
    if (codec->id == AV_CODEC_ID_H264) {
        av_opt_set(w->cc->priv_data, "crf", crfs, 0);
        av_opt_set(w->cc->priv_data, "preset", o->preset ? o->preset : "medium", 0);
        /* streaming: every appended frame leaves the encoder at once (no lookahead, B-frames or frame threads),
         * so what a killed run leaves depends only on the frames appended, not on thread timing */
        if (w->streaming) av_opt_set(w->cc->priv_data, "tune", "zerolatency", 0);
    } else if (codec->id == AV_CODEC_ID_VP9) {
        w->cc->bit_rate = 0;
        av_opt_set(w->cc->priv_data, "crf", crfs, 0);
        av_opt_set(w->cc->priv_data, "deadline", "good", 0);
        av_opt_set(w->cc->priv_data, "cpu-used", "4", 0);
        av_opt_set(w->cc->priv_data, "row-mt", "1", 0);
    } else {
        av_opt_set(w->cc->priv_data, "crf", crfs, 0);
        av_opt_set(w->cc->priv_data, "cpu-used", "6", 0);
        av_opt_set(w->cc->priv_data, "preset", "8", 0);
    }
    if ((r = avcodec_open2(w->cc, codec, NULL)) < 0) return ff_err(w, r, "opening the encoder");
    if ((r = avcodec_parameters_from_context(w->st->codecpar, w->cc)) < 0) return ff_err(w, r, "encoder setup");
    w->st->time_base = w->cc->time_base;
    w->st->avg_frame_rate = q;
    for (int i = 0; w->text && w->text[i]; i += 2) av_dict_set(&w->oc->metadata, w->text[i], w->text[i + 1], 0);
    if ((r = avio_open(&w->oc->pb, file, AVIO_FLAG_WRITE)) < 0) return ff_err(w, r, "opening");
    AVDictionary *mo = NULL;
    if (w->fmt == HB_VFMT_MP4)
        av_dict_set(&mo, "movflags",
                    w->streaming ? "+frag_custom+empty_moov+default_base_moof+use_metadata_tags"
                                 : "+faststart+use_metadata_tags", 0);
    r = avformat_write_header(w->oc, &mo);
    av_dict_free(&mo);
    if (r < 0) return ff_err(w, r, "writing the header");
    if (w->oc->pb->error) return ff_err(w, w->oc->pb->error, "writing the header");
    w->frame->format = AV_PIX_FMT_YUV420P;
    w->frame->width = w->W;
    w->frame->height = w->H;
    if ((r = av_frame_get_buffer(w->frame, 0)) < 0) return ff_err(w, r, "frame allocation");
    w->planes = malloc((size_t)w->W * w->H * 3 / 2);
    if (!w->planes) return hb_error("%s: out of memory", w->path);
    return 0;
}

static int ff_append(hb_video_writer *w, const uint8_t *rgb) {
    int r = av_frame_make_writable(w->frame);
    if (r < 0) return ff_err(w, r, "frame allocation");
    size_t ysz = (size_t)w->W * w->H, csz = ysz / 4;
    hb_rgb_to_yuv(rgb, w->H, w->W, false, true, w->planes, w->planes + ysz, w->planes + ysz + csz);
    for (int p = 0; p < 3; p++) {
        int pw = p ? w->W / 2 : w->W, ph = p ? w->H / 2 : w->H;
        const uint8_t *src = w->planes + (p == 0 ? 0 : p == 1 ? ysz : ysz + csz);
        for (int y = 0; y < ph; y++)
            memcpy(w->frame->data[p] + (size_t)y * w->frame->linesize[p], src + (size_t)y * pw, (size_t)pw);
    }
    w->frame->pts = w->n;
    w->frame->color_range = AVCOL_RANGE_MPEG;
    w->frame->colorspace = AVCOL_SPC_SMPTE170M;
    if ((r = avcodec_send_frame(w->cc, w->frame)) < 0) return ff_err(w, r, "encoding");
    return ff_drain(w);
}

static int ff_finish(hb_video_writer *w) {
    int r = avcodec_send_frame(w->cc, NULL);
    if (r < 0) return ff_err(w, r, "encoding");
    if (ff_drain(w)) return -1;
    if ((r = av_write_trailer(w->oc)) < 0) return ff_err(w, r, "finishing the file");
    if (w->oc->pb->error) return ff_err(w, w->oc->pb->error, "write");
    r = avio_closep(&w->oc->pb);
    if (r < 0) return ff_err(w, r, "closing");
    return 0;
}

static void ff_free(hb_video_writer *w) {
    if (w->oc && w->oc->pb) avio_closep(&w->oc->pb);
    avformat_free_context(w->oc);
    w->oc = NULL;
    avcodec_free_context(&w->cc);
    av_frame_free(&w->frame);
    av_packet_free(&w->pkt);
}
#endif

#ifdef HB_HAVE_FFMPEG
static bool is_ff(hb_video_format f) { return f == HB_VFMT_MP4 || f == HB_VFMT_MKV || f == HB_VFMT_WEBM; }
#endif

hb_video_writer *hb_video_writer_open(const char *path, int H, int W, const hb_video_opts *opts) {
    hb_video_opts def = {0};
    const hb_video_opts *o = opts ? opts : &def;
    if (!path || !*path) { hb_error("video output: empty file name"); return NULL; }
    if (H <= 0 || W <= 0 || H > 16384 || W > 16384) { hb_error("%s: bad frame size %dx%d", path, W, H); return NULL; }
    if (o->fps < 0 || !isfinite(o->fps)) { hb_error("%s: bad frame rate %g", path, o->fps); return NULL; }
    hb_video_format fmt = o->format ? o->format : hb_video_format_for_path(path);
    if (!fmt) return NULL;
    hb_video_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = xstrdup(path))) { free(w); hb_error("%s: out of memory", path); return NULL; }
    w->lock_fd = -1;
    w->fmt = fmt;
    w->H = H;
    w->W = W;
    w->fps = o->fps > 0 ? o->fps : 16.0;
    w->streaming = o->streaming;
    w->y4m_444 = o->y4m_444;
    build_text(w, o->meta);
    int rc;
    if (fmt == HB_VFMT_Y4M) rc = y4m_open(w);
    else if (fmt == HB_VFMT_PNGDIR) {
#ifdef HB_HAVE_PNG
        rc = mkdir_p(path, &w->created_dir);
#else
        rc = hb_error("%s: this build has no PNG support", path);
#endif
    } else {
#ifdef HB_HAVE_FFMPEG
        rc = ff_open(w, o);
#else
        rc = hb_error("%s: this build has no FFmpeg support; write .y4m or PNG frames", path);
#endif
    }
    if (rc) {
        char msg[HB_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", hb_last_error());
        hb_video_writer_abort(w);
        hb_error("%s", msg);
        return NULL;
    }
    return w;
}

int hb_video_writer_frames(const hb_video_writer *w) { return w ? w->n : 0; }

int hb_video_writer_append(hb_video_writer *w, const uint8_t *frames, int n) {
    if (!w) return hb_error("video writer: not open");
    size_t fsz = (size_t)w->W * w->H * 3;
    for (int i = 0; i < n; i++) {
        const uint8_t *rgb = frames + fsz * i;
        int rc;
        if (w->fmt == HB_VFMT_Y4M) rc = y4m_append(w, rgb);
        else if (w->fmt == HB_VFMT_PNGDIR) {
            char *name = frame_name(w->path, w->n);
            rc = name ? hb_png_write(name, rgb, w->W, w->H, (const char *const *)w->text)
                      : hb_error("%s: out of memory", w->path);
            free(name);
        } else {
#ifdef HB_HAVE_FFMPEG
            rc = ff_append(w, rgb);
#else
            rc = -1;
#endif
        }
        if (rc) return -1;
        w->n++;
    }
#ifdef HB_HAVE_FFMPEG
    if (is_ff(w->fmt) && w->streaming && w->oc->pb) {
        /* MP4: close a fragment after every append, so a killed run keeps every frame appended so far */
        if (w->fmt == HB_VFMT_MP4) {
            int r = av_write_frame(w->oc, NULL);
            if (r < 0) return ff_err(w, r, "write");
        }
        avio_flush(w->oc->pb);
        if (w->oc->pb->error) return ff_err(w, w->oc->pb->error, "write");
    }
#endif
    return 0;
}

int hb_video_writer_append_float(hb_video_writer *w, const float *x, int T, hb_frames_layout layout, float lo,
                                 float hi) {
    if (!w) return hb_error("video writer: not open");
    if (T <= 0) return 0;
    if (!(hi > lo)) return hb_error("%s: bad value range [%g, %g]", w->path, lo, hi);
    uint8_t *buf = malloc((size_t)T * w->H * w->W * 3);
    if (!buf) return hb_error("%s: out of memory for %d frames", w->path, T);
    if (layout == HB_FRAMES_CTHW) hb_frames_from_cthw(x, T, w->H, w->W, lo, hi, buf);
    else hb_frames_from_tchw(x, T, w->H, w->W, lo, hi, buf);
    int rc = hb_video_writer_append(w, buf, T);
    free(buf);
    return rc;
}

void hb_video_writer_abort(hb_video_writer *w) {
    if (!w) return;
#ifdef HB_HAVE_FFMPEG
    if (is_ff(w->fmt)) ff_free(w);
#endif
    if (w->f) fclose(w->f);
    w->f = NULL;
    if (w->tmp) unlink(w->tmp);
    else if (w->fmt == HB_VFMT_PNGDIR) {
        png_remove_frames(w, 0, w->n, false);
        if (w->created_dir) rmdir(w->path);
    }
    writer_free(w);
}

/* Flush the encoder and finish the container, durable on disk (not yet renamed). */
static int writer_finish(hb_video_writer *w) {
    int rc = 0;
    if (w->n == 0) rc = hb_error("%s: no frames were written", w->path);
    else if (w->fmt == HB_VFMT_Y4M) rc = y4m_close(w);
    else if (w->fmt == HB_VFMT_PNGDIR) png_remove_frames(w, w->n, 0, true); /* stale frames of an older run */
#ifdef HB_HAVE_FFMPEG
    else {
        rc = ff_finish(w);
        if (!rc && sync_path(w->tmp ? w->tmp : w->path) != 0 && errno != EINVAL) rc = write_err(w, errno);
    }
#endif
    return rc;
}

static int writer_fail(hb_video_writer *w) {
    char msg[HB_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", hb_last_error());
    hb_video_writer_abort(w);
    return hb_error("%s", msg);
}

int hb_video_writer_close(hb_video_writer *w) {
    if (!w) return hb_error("video writer: not open");
    int rc = writer_finish(w);
    if (!rc && w->tmp && rename(w->tmp, w->path) != 0)
        rc = hb_error("%s: cannot rename the finished file into place: %s", w->path, strerror(errno));
    if (rc) return writer_fail(w);
#ifdef HB_HAVE_FFMPEG
    if (is_ff(w->fmt)) ff_free(w);
#endif
    writer_free(w);
    return 0;
}

int hb_video_writer_close_partial(hb_video_writer *w, char *name, size_t cap) {
    if (!w) return hb_error("video writer: not open");
    if (!w->streaming || !w->tmp) {
        hb_video_writer_abort(w);
        return hb_error("video writer: only a streaming video file can be kept partial");
    }
    if (writer_finish(w)) return writer_fail(w);
    snprintf(name, cap, "%s", w->tmp);
#ifdef HB_HAVE_FFMPEG
    if (is_ff(w->fmt)) ff_free(w);
#endif
    writer_free(w);
    return 0;
}

int hb_video_write(const char *path, const uint8_t *frames, int T, int H, int W, const hb_video_opts *opts) {
    if (T <= 0) return hb_error("%s: no frames to write", path);
    hb_video_opts o = opts ? *opts : (hb_video_opts){0};
    o.streaming = false;
    hb_video_writer *w = hb_video_writer_open(path, H, W, &o);
    if (!w) return -1;
    if (hb_video_writer_append(w, frames, T)) {
        char msg[HB_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", hb_last_error());
        hb_video_writer_abort(w);
        return hb_error("%s", msg);
    }
    return hb_video_writer_close(w);
}

/* ---------------- reader ---------------- */
typedef struct { hb_video *v; size_t cap; int max; const char *path; } vbuf;

static int vbuf_push(vbuf *b, const uint8_t *rgb, int H, int W) {
    hb_video *v = b->v;
    if (v->frames == 0) { v->height = H; v->width = W; }
    else if (H != v->height || W != v->width)
        return hb_error("%s: frame %d is %dx%d but the first frame is %dx%d", b->path, v->frames, W, H, v->width,
                        v->height);
    size_t fsz = (size_t)H * W * 3;
    if ((size_t)(v->frames + 1) * fsz > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : fsz * 16;
        while (nc < (size_t)(v->frames + 1) * fsz) nc *= 2;
        uint8_t *p = realloc(v->rgb, nc);
        if (!p) return hb_error("%s: out of memory after %d frames", b->path, v->frames);
        v->rgb = p;
        b->cap = nc;
    }
    if (rgb) memcpy(v->rgb + fsz * v->frames, rgb, fsz);
    v->frames++;
    return 0;
}

void hb_video_free(hb_video *v) {
    if (!v) return;
    free(v->rgb);
    memset(v, 0, sizeof *v);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int read_folder(const char *path, vbuf *b) {
    DIR *d = opendir(path);
    if (!d) return hb_error("%s: cannot open folder: %s", path, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!ends_with_ci(e->d_name, ".png") && !ends_with_ci(e->d_name, ".jpg") && !ends_with_ci(e->d_name, ".jpeg"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, sizeof(char *) * cap);
            if (!nn) { rc = hb_error("%s: out of memory", path); break; }
            names = nn;
        }
        if (!(names[n] = xstrdup(e->d_name))) { rc = hb_error("%s: out of memory", path); break; }
        n++;
    }
    closedir(d);
    if (!rc && n == 0) rc = hb_error("%s: folder has no .png or .jpg frames", path);
    if (!rc) qsort(names, (size_t)n, sizeof(char *), cmp_str);
    for (int i = 0; !rc && i < n && (b->max <= 0 || i < b->max); i++) {
        size_t len = strlen(path) + strlen(names[i]) + 2;
        char *full = malloc(len);
        if (!full) { rc = hb_error("%s: out of memory", path); break; }
        snprintf(full, len, "%s/%s", path, names[i]);
        hb_image im;
        rc = hb_image_load(full, &im);
        free(full);
        if (!rc) rc = vbuf_push(b, im.rgb, im.height, im.width);
        hb_image_free(&im);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

#ifdef HB_HAVE_FFMPEG
static int ffr_err(const char *path, int code, const char *what) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(code, buf, sizeof buf);
    return hb_error("%s: %s: %s", path, what, buf);
}

static int ffr_frame(vbuf *b, AVFrame *fr, struct SwsContext **sws) {
    if (b->max > 0 && b->v->frames >= b->max) return 0;
    int W = fr->width, H = fr->height;
    enum AVPixelFormat pf = fr->format;
    int full = fr->color_range == AVCOL_RANGE_JPEG || pf == AV_PIX_FMT_YUVJ420P || pf == AV_PIX_FMT_YUVJ422P ||
               pf == AV_PIX_FMT_YUVJ444P;
    int cs = fr->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709
             : fr->colorspace == AVCOL_SPC_BT2020_NCL || fr->colorspace == AVCOL_SPC_BT2020_CL ? SWS_CS_BT2020
                                                                                              : SWS_CS_ITU601;
    /* FFmpeg's own default conversion (the ffmpeg tool's sws_flags "bicubic"), so that metrics on decoded videos
     * agree with the common evaluation pipelines (ffmpeg -pix_fmt rgb24, then scikit-image) bit for bit */
    *sws = sws_getCachedContext(*sws, W, H, pf, W, H, AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL, NULL, NULL);
    if (!*sws) return hb_error("%s: cannot convert pixel format %s to RGB", b->path, av_get_pix_fmt_name(pf));
    const int *coef_in = sws_getCoefficients(cs), *coef_out = sws_getCoefficients(SWS_CS_DEFAULT);
    sws_setColorspaceDetails(*sws, coef_in, full, coef_out, 1, 0, 1 << 16, 1 << 16);
    if (vbuf_push(b, NULL, H, W)) return -1;
    uint8_t *dst[4] = {b->v->rgb + (size_t)(b->v->frames - 1) * W * H * 3, NULL, NULL, NULL};
    int ls[4] = {W * 3, 0, 0, 0};
    sws_scale(*sws, (const uint8_t *const *)fr->data, fr->linesize, 0, H, dst, ls);
    return 0;
}

static int read_ffmpeg(const char *path, vbuf *b) {
    ff_log_level();
    AVFormatContext *ic = NULL;
    AVCodecContext *cc = NULL;
    AVPacket *pkt = NULL;
    AVFrame *fr = NULL;
    struct SwsContext *sws = NULL;
    int rc = -1, r;
    if ((r = avformat_open_input(&ic, path, NULL, NULL)) < 0) return ffr_err(path, r, "cannot open as video");
    if ((r = avformat_find_stream_info(ic, NULL)) < 0) { ffr_err(path, r, "cannot read stream info"); goto done; }
    const AVCodec *dec = NULL;
    int si = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
    if (si < 0 || !dec) { hb_error("%s: no decodable video stream", path); goto done; }
    AVStream *st = ic->streams[si];
    AVRational fr_q = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    b->v->fps = fr_q.den ? av_q2d(fr_q) : 0;
    cc = avcodec_alloc_context3(dec);
    pkt = av_packet_alloc();
    fr = av_frame_alloc();
    if (!cc || !pkt || !fr) { hb_error("%s: out of memory", path); goto done; }
    if ((r = avcodec_parameters_to_context(cc, st->codecpar)) < 0 || (r = avcodec_open2(cc, dec, NULL)) < 0) {
        ffr_err(path, r, "cannot open the decoder");
        goto done;
    }
    bool eof = false;
    while (!eof) {
        r = av_read_frame(ic, pkt);
        if (r == AVERROR_EOF) { eof = true; r = avcodec_send_packet(cc, NULL); }
        else if (r < 0) { ffr_err(path, r, "read error"); goto done; }
        else if (pkt->stream_index != si) { av_packet_unref(pkt); continue; }
        else { r = avcodec_send_packet(cc, pkt); av_packet_unref(pkt); }
        if (r < 0 && r != AVERROR_EOF) { ffr_err(path, r, "corrupt video data"); goto done; }
        for (;;) {
            r = avcodec_receive_frame(cc, fr);
            if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
            if (r < 0) { ffr_err(path, r, "corrupt video data"); goto done; }
            int e = ffr_frame(b, fr, &sws);
            av_frame_unref(fr);
            if (e) goto done;
        }
        if (b->max > 0 && b->v->frames >= b->max) break;
    }
    if (b->v->frames == 0) { hb_error("%s: the video has no frames", path); goto done; }
    rc = 0;
done:
    sws_freeContext(sws);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&cc);
    avformat_close_input(&ic);
    return rc;
}
#endif

int hb_video_read(const char *path, int max_frames, hb_video *out) {
    memset(out, 0, sizeof *out);
    vbuf b = {out, 0, max_frames, path};
    struct stat st;
    if (stat(path, &st) != 0) return hb_error("%s: cannot open: %s", path, strerror(errno));
    int rc;
    if (S_ISDIR(st.st_mode)) rc = read_folder(path, &b);
    else {
        uint8_t magic[8] = {0};
        FILE *f = fopen(path, "rb");
        if (!f) return hb_error("%s: cannot open: %s", path, strerror(errno));
        size_t n = fread(magic, 1, 8, f);
        fclose(f);
        if ((n == 8 && !memcmp(magic, "\x89PNG\r\n\x1a\n", 8)) || (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8)) {
            hb_image im;
            rc = hb_image_load(path, &im);
            if (!rc) rc = vbuf_push(&b, im.rgb, im.height, im.width);
            hb_image_free(&im);
        } else {
#ifdef HB_HAVE_FFMPEG
            rc = read_ffmpeg(path, &b);
#else
            rc = hb_error("%s: this build has no FFmpeg support to decode video", path);
#endif
        }
    }
    if (rc) hb_video_free(out);
    return rc;
}
