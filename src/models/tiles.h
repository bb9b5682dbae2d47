/* models/tiles: the spatial tiler of the decoders (the Wan VAE's whole-clip encode / decode and
 * pipeline/longdecode). A plane of h x w latent cells is cut per axis into n = ceil((size - overlap) /
 * (tile - overlap)) tiles (at least 2 when tile < size) of exactly `tile` cells, spread evenly (start_i =
 * round((size - tile) i / (n - 1)), halves rounded down), so neighbours share at least `overlap` cells; tile = 0
 * or tile >= size gives one tile. Tiles are blended with linear ramps over the cells they share, normalised by the
 * per-pixel weight sum: each tile's output is multiplied by its weight map ramp_y * ramp_x / sum and added into
 * the output plane, so every pixel's weights sum to 1.
 *
 * The output is `scale` pixels per latent cell (the decoder's spatial factor; 1 for latent-resolution outputs).
 * The weight maps are made on the host and uploaded once to the current memory space, where the blend runs
 * through ops. */
#ifndef HB_MODELS_TILES_H
#define HB_MODELS_TILES_H

#include "core/core.h"

typedef struct { int64_t a, b; } hb_span; /* latent cells [a, b) */

typedef struct {
    int ny, nx;          /* tile rows and columns */
    hb_span *y, *x;
    int64_t th, tw;      /* tile size in latent cells (every tile has it) */
    int64_t scale, H, W; /* output pixels per cell, output plane */
    float **wmap;        /* several tiles: per tile [th scale, tw scale] normalised weights (current memory space) */
    float *region;       /* several tiles: [th scale, tw scale] scratch (current memory space) */
    size_t bytes;        /* weight maps and scratch */
} hb_tiles;

/* The ramp of the blend: w[i] for i in [0, len) rises linearly over the first `lo` positions ((i+1)/(lo+1)) and
 * falls over the last `hi` ((len-i)/(hi+1)), 1 elsewhere; two neighbours sharing m positions get weights summing
 * to exactly 1 there. */
void hb_tiles_ramp(float *w, int64_t len, int64_t lo, int64_t hi);

/* Plan the tiles of an h x w plane (and, for several tiles, make the weight maps). -1 + message on bad sizes
 * (overlap not in [0, tile)). */
int hb_tiles_plan(hb_tiles *t, int64_t h, int64_t w, int tile, int overlap, int64_t scale);
static inline int hb_tiles_count(const hb_tiles *t) { return t->ny * t->nx; }
/* Tile i (row-major): out[r] += tile[r] * wmap_i on the tile's region, for `rows` planes: out [rows, H, W]
 * (planes out_stride apart), tile [rows, th scale, tw scale] contiguous (overwritten with its weighted values).
 * Several tiles only (one tile covers the plane: copy instead). */
void hb_tiles_blend(const hb_tiles *t, int i, float *out, int64_t out_stride, int64_t rows, float *tile);
void hb_tiles_free(hb_tiles *t);

#endif
