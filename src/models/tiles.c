/* The decoders' spatial tiler (see tiles.h). */
#include "models/tiles.h"
#include "ops/ops.h"

void hb_tiles_ramp(float *w, int64_t len, int64_t lo, int64_t hi) {
    for (int64_t i = 0; i < len; i++) {
        float v = 1.0f;
        if (lo > 0 && i < lo) v = (float)(i + 1) / (float)(lo + 1);
        if (hi > 0 && i >= len - hi) {
            float u = (float)(len - i) / (float)(hi + 1);
            if (u < v) v = u;
        }
        w[i] = v;
    }
}

/* The spans of one axis (tiles.h); the count, or -1. */
static int make_spans(int64_t total, int tile, int overlap, hb_span **out) {
    int n = 1;
    if (tile > 0 && tile < total) {
        if (overlap < 0 || overlap >= tile) return hb_error("tile_overlap %d must be in [0, tile %d)", overlap, tile);
        n = (int)((total - overlap + (tile - overlap) - 1) / (tile - overlap));
        if (n < 2) n = 2;
    }
    hb_span *s = hb_calloc(sizeof(hb_span) * (size_t)n, "tiles");
    if (!s) return -1;
    if (n == 1) s[0].a = 0, s[0].b = total;
    else
        for (int i = 0; i < n; i++) {
            s[i].a = ((total - tile) * i + (n - 1) / 2) / (n - 1);
            s[i].b = s[i].a + tile;
        }
    *out = s;
    return n;
}

/* The pixel ramp of span i of s (n spans, scale pixels per cell) into r. */
static void span_ramp(float *r, const hb_span *s, int n, int i, int64_t scale) {
    int64_t lo = i > 0 ? (s[i - 1].b - s[i].a) * scale : 0, hi = i + 1 < n ? (s[i].b - s[i + 1].a) * scale : 0;
    hb_tiles_ramp(r, (s[i].b - s[i].a) * scale, lo, hi);
}

/* Weight maps ramp_y * ramp_x / (sum over the tiles covering the pixel), per tile, uploaded once. */
static int make_weights(hb_tiles *t) {
    int nt = hb_tiles_count(t);
    int64_t TH = t->th * t->scale, TW = t->tw * t->scale, HW = t->H * t->W;
    size_t fl = sizeof(float);
    float *wsum = hb_calloc(fl * (size_t)HW, "tile weights"), *map = hb_malloc(fl * (size_t)(TH * TW), "tile weights");
    float *ry = hb_malloc(fl * (size_t)(t->ny * TH), "tile ramps"), *rx = hb_malloc(fl * (size_t)(t->nx * TW), "tile ramps");
    int ok = wsum && map && ry && rx && (t->wmap = hb_calloc(sizeof(float *) * (size_t)nt, "tile weights")) &&
             (t->region = hb_dev_alloc(fl * (size_t)(TH * TW), "tile region"));
    for (int i = 0; ok && i < t->ny; i++) span_ramp(ry + i * TH, t->y, t->ny, i, t->scale);
    for (int i = 0; ok && i < t->nx; i++) span_ramp(rx + i * TW, t->x, t->nx, i, t->scale);
    for (int i = 0; ok && i < nt; i++) {
        int64_t Y0 = t->y[i / t->nx].a * t->scale, X0 = t->x[i % t->nx].a * t->scale;
        for (int64_t y = 0; y < TH; y++)
            for (int64_t x = 0; x < TW; x++) wsum[(Y0 + y) * t->W + X0 + x] += ry[i / t->nx * TH + y] * rx[i % t->nx * TW + x];
    }
    for (int64_t i = 0; ok && i < HW; i++) wsum[i] = 1.0f / wsum[i];
    for (int i = 0; ok && i < nt; i++) {
        int64_t Y0 = t->y[i / t->nx].a * t->scale, X0 = t->x[i % t->nx].a * t->scale;
        for (int64_t y = 0; y < TH; y++)
            for (int64_t x = 0; x < TW; x++)
                map[y * TW + x] = ry[i / t->nx * TH + y] * rx[i % t->nx * TW + x] * wsum[(Y0 + y) * t->W + X0 + x];
        ok = (t->wmap[i] = hb_dev_alloc(fl * (size_t)(TH * TW), "tile weights")) && !hb_dev_upload(t->wmap[i], map, fl * (size_t)(TH * TW));
    }
    hb_free(wsum), hb_free(map), hb_free(ry), hb_free(rx);
    t->bytes = fl * (size_t)((nt + 1) * TH * TW);
    return ok ? 0 : -1;
}

int hb_tiles_plan(hb_tiles *t, int64_t h, int64_t w, int tile, int overlap, int64_t scale) {
    *t = (hb_tiles){.scale = scale, .H = h * scale, .W = w * scale};
    if ((t->ny = make_spans(h, tile, overlap, &t->y)) < 0 || (t->nx = make_spans(w, tile, overlap, &t->x)) < 0) {
        t->ny = t->nx = 0;
        hb_tiles_free(t);
        return -1;
    }
    t->th = t->y[0].b - t->y[0].a, t->tw = t->x[0].b - t->x[0].a;
    if (hb_tiles_count(t) > 1 && make_weights(t)) {
        hb_tiles_free(t);
        return -1;
    }
    return 0;
}

void hb_tiles_blend(const hb_tiles *t, int i, float *out, int64_t out_stride, int64_t rows, float *tile) {
    int64_t TH = t->th * t->scale, TW = t->tw * t->scale, n1 = TH * TW;
    int64_t Y0 = t->y[i / t->nx].a * t->scale, X0 = t->x[i % t->nx].a * t->scale;
    for (int64_t r = 0; r < rows; r++) { /* region = out[Y0:, X0:] + tile * wmap, written back */
        float *src = tile + r * n1, *o = out + r * out_stride + Y0 * t->W + X0;
        hb_mul(src, src, t->wmap[i], n1);
        hb_copy_rows(t->region, TW, o, t->W, TH, TW);
        hb_add(t->region, t->region, src, n1);
        hb_copy_rows(o, t->W, t->region, TW, TH, TW);
    }
}

void hb_tiles_free(hb_tiles *t) {
    if (t->wmap)
        for (int i = 0; i < hb_tiles_count(t); i++) hb_dev_free(t->wmap[i]);
    hb_free(t->wmap), hb_dev_free(t->region), hb_free(t->y), hb_free(t->x);
    *t = (hb_tiles){0};
}
