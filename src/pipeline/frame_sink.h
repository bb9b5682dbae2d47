/* pipeline/frame_sink: where decoded frames become 8-bit RGB, for every generation path (XT in api.c, XTX in
 * ar.c, and through them the C API and hb serve). A decoder hands float frames [3, n, H, W] (channel planes
 * n H W apart; one TAEHV frame [3, H, W] is the case n = 1) in any value range [lo, hi]; the sink brings them to
 * the host when they are in device memory, quantises them (hb_float_to_u8) and delivers them to any of:
 *   - a whole-video buffer [T, H, W, 3], each frame at its index;
 *   - a video writer, frames appended in order;
 *   - a callback, handed the frames gathered since the last flush (one call per chunk).
 * Frames at or past T are dropped (a chunked decode may produce more than the video asks for). Host memory: the
 * frames of the largest put (device input) plus, without a video buffer, the frames of one flush. */
#ifndef HB_PIPELINE_FRAME_SINK_H
#define HB_PIPELINE_FRAME_SINK_H

#include "core/core.h"
#include "io/video.h"

/* Frames [t0, t0 + n) as uint8 [n, H, W, 3], valid during the call; nonzero stops (the flush then fails). */
typedef int (*hb_rgb_frames_fn)(void *user, int64_t t0, int n, const uint8_t *rgb, int H, int W);

typedef struct {
    int64_t T, H, W;          /* the video: frames, size */
    uint8_t *video;           /* optional: the whole video, [T, H, W, 3] */
    hb_video_writer *writer;  /* optional */
    hb_rgb_frames_fn fn;      /* optional */
    void *user;
    /* state */
    float *host;              /* host copy of device frames */
    int64_t host_cap;
    uint8_t *batch;           /* without a video buffer: the frames since the last flush */
    int64_t batch_cap, batch_n, batch_t0;
    int64_t next;             /* frames put so far (the next frame in order) */
    int64_t accepted;         /* frames the callback accepted */
    bool stopped;             /* the callback asked to stop */
} hb_rgb_sink;

/* T, H, W and the destinations (NULL when unused). batch_frames: the most frames between flushes (writer or
 * callback without a video buffer). */
int hb_rgb_sink_init(hb_rgb_sink *s, int64_t T, int64_t H, int64_t W, uint8_t *video, hb_video_writer *writer,
                     hb_rgb_frames_fn fn, void *user, int64_t batch_frames);
/* Frames [t0, t0 + n) x [3, n, H, W] with values in [lo, hi]; on_host: x is host memory, else the current memory
 * space. Without a video buffer frames must come in order (t0 = the frames put so far). */
int hb_rgb_sink_put(hb_rgb_sink *s, int64_t t0, int64_t n, const float *x, int64_t H, int64_t W, float lo, float hi,
                    bool on_host);
/* Hand the frames gathered since the last flush to the callback (nothing without one). */
int hb_rgb_sink_flush(hb_rgb_sink *s);
void hb_rgb_sink_free(hb_rgb_sink *s);

#endif
