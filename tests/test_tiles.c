/* models/tiles: the spatial tiler of the decoders. The spans of random plane / tile / overlap sizes against their
 * definition (exactly `tile` cells, covering the plane, neighbours sharing at least `overlap` cells, evenly spread,
 * as few as that allows), including the sizes where shrinking the tiles to the smallest length that covers the
 * plane would place them differently; the blend against an independent double-precision reference of the
 * ramp-weighted average. */
#include "models/tiles.h"
#include "ops/ops.h"
#include "testlib.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One axis: every property of the spans. Returns whether shrunk tiles (len = ceil((total + (n-1) ov) / n)) would
 * differ, i.e. the case the exact-length rounding decides. */
static bool check_axis(const hb_span *s, int n, int64_t total, int tile, int ov) {
    if (tile <= 0 || tile >= total) {
        CHECKF(n == 1 && s[0].a == 0 && s[0].b == total, "total %lld tile %d: %d spans", (long long)total, tile, n);
        return false;
    }
    CHECKF(n >= 2 && s[0].a == 0 && s[n - 1].b == total, "total %lld tile %d ov %d: ends %lld..%lld", (long long)total,
           tile, ov, (long long)s[0].a, (long long)s[n - 1].b);
    /* the fewest tiles: n - 1 tiles sharing ov cells could not cover the plane (n = 2 is the least) */
    CHECKF(n == 2 || (int64_t)(n - 1) * tile - (int64_t)(n - 2) * ov < total, "total %lld tile %d ov %d: %d spans not minimal",
           (long long)total, tile, ov, n);
    int64_t dmin = total, dmax = 0;
    for (int i = 0; i < n; i++) {
        CHECK(s[i].b - s[i].a == tile);
        if (i > 0) {
            int64_t d = s[i].a - s[i - 1].a;
            CHECKF(s[i - 1].b - s[i].a >= ov, "total %lld tile %d: overlap %lld < %d", (long long)total, tile,
                   (long long)(s[i - 1].b - s[i].a), ov);
            dmin = d < dmin ? d : dmin, dmax = d > dmax ? d : dmax;
        }
    }
    CHECKF(dmax - dmin <= 1, "total %lld tile %d ov %d: steps %lld..%lld are not even", (long long)total, tile, ov,
           (long long)dmin, (long long)dmax);
    int64_t len = (total + (int64_t)(n - 1) * ov + n - 1) / n;
    return len != tile;
}

static void test_spans(hb_rng *r) {
    int shrunk_cases = 0;
    for (int k = 0; k < 400; k++) {
        int64_t h = 1 + (int64_t)(hb_rng_uniform(r) * 40), w = 1 + (int64_t)(hb_rng_uniform(r) * 40);
        int tile = (int)(hb_rng_uniform(r) * 24), ov = tile > 1 ? (int)(hb_rng_uniform(r) * tile) : 0;
        hb_tiles t;
        if (hb_tiles_plan(&t, h, w, tile, ov, 1)) { CHECKF(0, "%s", hb_last_error()); continue; }
        shrunk_cases += check_axis(t.y, t.ny, h, tile, ov) + check_axis(t.x, t.nx, w, tile, ov);
        hb_tiles_free(&t);
    }
    printf("spans: 400 random planes, %d axes where tiles shrunk to the covering length would differ\n", shrunk_cases);
    CHECK(shrunk_cases > 0);
    hb_tiles t;
    CHECK(hb_tiles_plan(&t, 16, 16, 4, 4, 1) != 0 && strstr(hb_last_error(), "tile_overlap"));
    CHECK(hb_tiles_plan(&t, 16, 16, 4, -1, 1) != 0);
}

/* The blend of random tiles against sum(tile * ramp_y * ramp_x) / sum(ramp_y * ramp_x) in double, the ramps
 * written here from their definition. */
static void test_blend(hb_rng *r) {
    static const int cases[][5] = {{12, 16, 8, 2, 2}, {13, 7, 5, 1, 3}, {9, 20, 6, 3, 1}, {16, 16, 8, 4, 2}};
    for (int k = 0; k < 4; k++) {
        int64_t h = cases[k][0], w = cases[k][1], S = cases[k][4], rows = 2;
        hb_tiles t;
        if (hb_tiles_plan(&t, h, w, cases[k][2], cases[k][3], S)) { CHECKF(0, "%s", hb_last_error()); continue; }
        int nt = hb_tiles_count(&t);
        int64_t H = h * S, W = w * S, TH = t.th * S, TW = t.tw * S;
        float *out = calloc((size_t)(rows * H * W), sizeof(float)), *tile = malloc(sizeof(float) * (size_t)(rows * TH * TW));
        double *num = calloc((size_t)(rows * H * W), sizeof(double)), *den = calloc((size_t)(H * W), sizeof(double));
        for (int i = 0; i < nt; i++) {
            const hb_span *sy = &t.y[i / t.nx], *sx = &t.x[i % t.nx];
            tl_fill_normal(r, tile, rows * TH * TW, 1.0f);
            for (int64_t y = 0; y < TH; y++)
                for (int64_t x = 0; x < TW; x++) {
                    int iy = i / t.nx, ix = i % t.nx;
                    int64_t lo_y = iy > 0 ? (t.y[iy - 1].b - sy->a) * S : 0, hi_y = iy + 1 < t.ny ? (sy->b - t.y[iy + 1].a) * S : 0;
                    int64_t lo_x = ix > 0 ? (t.x[ix - 1].b - sx->a) * S : 0, hi_x = ix + 1 < t.nx ? (sx->b - t.x[ix + 1].a) * S : 0;
                    double wy = fmin(y < lo_y ? (y + 1.0) / (lo_y + 1.0) : 1.0, TH - y <= hi_y ? (double)(TH - y) / (hi_y + 1.0) : 1.0);
                    double wx = fmin(x < lo_x ? (x + 1.0) / (lo_x + 1.0) : 1.0, TW - x <= hi_x ? (double)(TW - x) / (hi_x + 1.0) : 1.0);
                    int64_t p = (sy->a * S + y) * W + sx->a * S + x;
                    den[p] += wy * wx;
                    for (int64_t q = 0; q < rows; q++) num[q * H * W + p] += wy * wx * tile[(q * TH + y) * TW + x];
                }
            hb_tiles_blend(&t, i, out, H * W, rows, tile);
        }
        double e = 0;
        for (int64_t p = 0; p < rows * H * W; p++) e = fmax(e, fabs(out[p] - num[p] / den[p % (H * W)]));
        printf("blend %lldx%lld tile %d overlap %d scale %lld (%d tiles): max abs err %.2e\n", (long long)h, (long long)w,
               cases[k][2], cases[k][3], (long long)S, nt, e);
        CHECKF(nt > 1 && e < 1e-5, "blend error %.3e", e);
        free(out), free(tile), free(num), free(den);
        hb_tiles_free(&t);
    }
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    test_spans(&r);
    test_blend(&r);
    return tl_done();
}
