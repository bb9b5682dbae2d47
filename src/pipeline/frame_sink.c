/* Decoded frames to 8-bit RGB (see frame_sink.h). */
#include "pipeline/frame_sink.h"
#include "io/image.h"
#include <string.h>

int hb_rgb_sink_init(hb_rgb_sink *s, int64_t T, int64_t H, int64_t W, uint8_t *video, hb_video_writer *writer,
                     hb_rgb_frames_fn fn, void *user, int64_t batch_frames) {
    *s = (hb_rgb_sink){.T = T, .H = H, .W = W, .video = video, .writer = writer, .fn = fn, .user = user};
    if (!video && (writer || fn)) {
        s->batch_cap = batch_frames;
        if (!(s->batch = hb_malloc((size_t)(batch_frames * H * W * 3), "RGB frames"))) return -1;
    }
    return 0;
}

/* x on the host: downloaded into the host stage when it is in the current memory space. */
static const float *host_frames(hb_rgb_sink *s, const float *x, int64_t n, bool on_host) {
    if (on_host) return x;
    size_t bytes = sizeof(float) * (size_t)(3 * n * s->H * s->W);
    if (n > s->host_cap) {
        hb_free(s->host);
        if (!(s->host = hb_malloc(bytes, "decoded frames"))) return s->host_cap = 0, NULL;
        s->host_cap = n;
    }
    return hb_dev_download(s->host, x, bytes) ? NULL : s->host; /* backend -> host */
}

/* The first n frames of planes x [3, ., H, W] (channels cstride apart) to uint8 [n, H, W, 3] (hb_float_to_u8). */
static void to_rgb(const float *x, int64_t cstride, int64_t n, int64_t HW, float lo, float hi, uint8_t *out) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t p = 0; p < HW; p++)
            for (int c = 0; c < 3; c++) out[(t * HW + p) * 3 + c] = hb_float_to_u8(x[c * cstride + t * HW + p], lo, hi);
}

int hb_rgb_sink_put(hb_rgb_sink *s, int64_t t0, int64_t n, const float *x, int64_t H, int64_t W, float lo, float hi,
                    bool on_host) {
    if (t0 < 0 || H != s->H || W != s->W || (!s->video && t0 != s->next))
        return hb_error("decoder: unexpected frames [%lld, %lld) of %lldx%lld", (long long)t0, (long long)(t0 + n),
                        (long long)W, (long long)H);
    int64_t keep = t0 + n > s->T ? s->T - t0 : n, fb = H * W * 3;
    if (keep <= 0) return 0;
    if (!s->video && s->batch_n + keep > s->batch_cap)
        return hb_error("decoder: %lld frames since the last flush, room for %lld", (long long)(s->batch_n + keep), (long long)s->batch_cap);
    const float *hx = host_frames(s, x, n, on_host);
    if (!hx) return -1;
    uint8_t *dst = s->video ? s->video + t0 * fb : s->batch + s->batch_n * fb;
    to_rgb(hx, n * H * W, keep, H * W, lo, hi, dst);
    if (s->writer && hb_video_writer_append(s->writer, dst, (int)keep)) return -1;
    if (!s->video) {
        if (s->batch_n == 0) s->batch_t0 = t0;
        s->batch_n += keep;
    }
    s->next = t0 + keep > s->next ? t0 + keep : s->next;
    return 0;
}

int hb_rgb_sink_flush(hb_rgb_sink *s) {
    int64_t n = s->batch_n;
    s->batch_n = 0;
    if (!s->fn || n == 0) return 0;
    if (s->fn(s->user, s->batch_t0, (int)n, s->batch, (int)s->H, (int)s->W)) {
        s->stopped = true;
        return hb_error("stopped by the frame callback");
    }
    s->accepted += n;
    return 0;
}

void hb_rgb_sink_free(hb_rgb_sink *s) {
    hb_free(s->host);
    hb_free(s->batch);
    *s = (hb_rgb_sink){0};
}
