/* Long-video decoding for every decoder (see longdecode.h). Latents, tiles, clip frames and the carried
 * overlap frames live in the current memory space and are moved, cropped and blended only through ops; the
 * blend weights are computed on the host and uploaded once; frames reach the callback in host memory. */
#include "pipeline/longdecode.h"
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

typedef struct { int64_t a, b; } span; /* latent cells [a, b) */

/* The light decoder's release tiles (TILED mode with a decoder that has them): tile latents L + 1 every S, blend b
 * frames, emit ts per tile; the previous tile's frames (carry) start at video frame prev0; latents seen. */
typedef struct {
    bool on, release;
    int64_t Lat, S, b, ts, seen, emitted, nprev, prev0;
} release_tiles;

struct hb_decoder {
    hb_frame_decoder fd; /* the model behind the interface */
    void **st;           /* CAUSAL: one decoder state per spatial tile; TILED: one state shared by the tiles */
    int nst;
    int64_t z, F, S, h, w, H, W;
    hb_ld_mode mode;
    int64_t L, O, m; /* clip, overlap (latents), overlap frames (tiled) */
    hb_decoder_emit_fn fn;
    void *user;
    int nty, ntx;
    span *ty, *tx;
    float **ry, **rx; /* pixel ramps per tile row / column (host) */
    float **wmap;     /* several tiles: per tile [TH*TW] ramp_y * ramp_x / (sum over tiles), device */
    float *region;    /* several tiles: [TH*TW] scratch, device */
    float *stage;     /* non-host memory spaces: host staging of up to `nstage` frames for the callback */
    int64_t nstage;
    int64_t th, tw;   /* largest tile (latent) */
    float *pend, *tlat, *tout, *cout, *carry;
    int64_t npend, nclips, frames_out;
    bool finished, finishing; /* finishing: decode_clip takes the streams' held-back frames */
    size_t bytes;
    int64_t got;      /* CAUSAL: frames the streams gave (every tile gives the same) */
    release_tiles lt;
};

void hb_ld_ramp(float *w, int64_t len, int64_t lo, int64_t hi) {
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

static int make_spans(int64_t total, int tile, int overlap, span **out) {
    int n = 1;
    if (tile > 0 && tile < total) {
        if (overlap >= tile) return hb_error("longdecode: tile_overlap %d must be smaller than tile %d", overlap, tile);
        n = (int)((total - overlap + (tile - overlap) - 1) / (tile - overlap));
        if (n < 2) n = 2;
    }
    span *s = hb_calloc(sizeof(span) * (size_t)n, "longdecode tiles");
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

/* ramps for each span, in pixels (S per latent cell) */
static float **span_ramps(const span *s, int n, int64_t S) {
    float **r = hb_calloc(sizeof(float *) * (size_t)n, "longdecode ramps");
    if (!r) return NULL;
    for (int i = 0; i < n; i++) {
        int64_t len = (s[i].b - s[i].a) * S;
        int64_t lo = i > 0 ? (s[i - 1].b - s[i].a) * S : 0, hi = i + 1 < n ? (s[i].b - s[i + 1].a) * S : 0;
        if (!(r[i] = hb_malloc(sizeof(float) * (size_t)len, "longdecode ramps"))) return r;
        hb_ld_ramp(r[i], len, lo, hi);
    }
    return r;
}

static void free_ramps(float **r, int n) {
    if (!r) return;
    for (int i = 0; i < n; i++) hb_free(r[i]);
    hb_free(r);
}

/* Decode one tile: lat [z, n, th, tw] contiguous -> out [3, nf, th S, tw S]. CAUSAL: the tile's stream gives
 * d->got frames (when finishing, its held-back ones); TILED: a whole clip of nf frames. */
static int decode_tile(hb_decoder *d, int ti, const float *lat, int64_t n, float *out, int64_t nf) {
    const hb_frame_decoder_ops *ops = d->fd.ops;
    if (d->mode != HB_LD_CAUSAL) return ops->decode(d->st[0], lat, n, out);
    int64_t got = 0;
    int rc = d->finishing ? ops->finish(d->st[ti], out, &got) : ops->push(d->st[ti], lat, n, out, &got);
    if (!rc && got > nf) rc = hb_error("longdecode: %s gave %lld frames, room for %lld", d->fd.name, (long long)got, (long long)nf);
    if (!rc && ti > 0 && got != d->got)
        rc = hb_error("longdecode: %s tiles gave %lld and %lld frames", d->fd.name, (long long)d->got, (long long)got);
    d->got = got;
    return rc;
}

/* Decode n pending latents (every tile) into out [3, *nfp, H, W]; CAUSAL: *nfp = the frames the streams gave. */
static int decode_clip(hb_decoder *d, int64_t n, float *out, int64_t *nfp) {
    int64_t nf = *nfp;
    int64_t hw = d->h * d->w, HW = d->H * d->W;
    bool one = d->nty * d->ntx == 1;
    if (!one) hb_fill(out, 0.0f, 3 * nf * HW);
    for (int iy = 0; iy < d->nty; iy++)
        for (int ix = 0; ix < d->ntx; ix++) {
            span sy = d->ty[iy], sx = d->tx[ix];
            int64_t th = sy.b - sy.a, tw = sx.b - sx.a;
            { /* tlat [z, n, th, tw] <- pend [z, L, h, w] cropped */
                const int64_t shp[4] = {d->z, n, th, tw}, ds[4] = {n * th * tw, th * tw, tw, 1},
                              ss[4] = {d->L * hw, hw, d->w, 1};
                if (n > 0) hb_copy_nd(d->tlat, ds, d->pend + sy.a * d->w + sx.a, ss, 4, shp);
            }
            float *dst = one ? out : d->tout;
            if (decode_tile(d, iy * d->ntx + ix, d->tlat, n, dst, nf)) {
                hb_error_prefix("longdecode (tile %d,%d): ", iy, ix);
                return -1;
            }
            if (d->mode == HB_LD_CAUSAL) nf = *nfp = d->got;
            if (one) continue;
            /* out[c, f, Y0:, X0:] += tile * wmap (a normalised weight map, uploaded once) */
            int64_t TH = th * d->S, TW = tw * d->S, Y0 = sy.a * d->S, X0 = sx.a * d->S, n1 = TH * TW;
            const float *wm = d->wmap[iy * d->ntx + ix];
            for (int64_t cf = 0; cf < 3 * nf; cf++) {
                float *src = d->tout + cf * n1, *o = out + cf * HW + Y0 * d->W + X0;
                hb_mul(src, src, wm, n1);
                hb_copy_rows(d->region, TW, o, d->W, TH, TW);
                hb_add(d->region, d->region, src, n1);
                hb_copy_rows(o, d->W, d->region, TW, TH, TW);
            }
        }
    return 0;
}

/* Frames [f0, f0 + n) of v [3, nf_total, H, W] (current memory space) to the callback, in host memory. v is
 * cout or carry; cout may be overwritten (its overlap frames were saved in carry before). */
static int emit(hb_decoder *d, const float *v, int64_t nf_total, int64_t f0, int64_t n) {
    if (n <= 0) return 0;
    int64_t HW = d->H * d->W;
    int rc = 0;
    if (d->lt.on) /* raw light decoder frames: clamp what leaves (the blends still read the raw frames after f0 + n) */
        for (int64_t c = 0; c < 3; c++) {
            float *p = (float *)v + (c * nf_total + f0) * HW;
            hb_elementwise(HB_EW_CLAMP, p, p, NULL, -1.0f, 1.0f, n * HW);
        }
    if (!d->stage) { /* host memory space: v is host memory */
        const float *src = v + f0 * HW;
        if (f0 == 0 && n == nf_total) rc = d->fn(d->user, d->frames_out, n, src, d->H, d->W);
        else {
            /* frames [f0, f0 + n) of a [3, nf_total, ...] buffer: pack them in cout, channel by channel in order
             * (a channel's destination ends before the next channel's source starts) */
            for (int64_t c = 1; c < 3; c++)
                memmove(d->cout + c * n * HW, v + (c * nf_total + f0) * HW, sizeof(float) * (size_t)(n * HW));
            if (f0 || v != d->cout) memmove(d->cout, v + f0 * HW, sizeof(float) * (size_t)(n * HW));
            rc = d->fn(d->user, d->frames_out, n, d->cout, d->H, d->W);
        }
        if (rc) return hb_error("longdecode: the frame callback stopped the decode (%d)", rc);
        d->frames_out += n;
        return 0;
    }
    /* device memory: download up to nstage frames at a time into the host stage */
    for (int64_t k0 = 0; k0 < n; k0 += d->nstage) {
        int64_t k = n - k0 < d->nstage ? n - k0 : d->nstage;
        for (int64_t c = 0; c < 3; c++)
            if (hb_dev_download(d->stage + c * k * HW, v + (c * nf_total + f0 + k0) * HW, sizeof(float) * (size_t)(k * HW)))
                return hb_error_prefix("longdecode: "), -1;
        if ((rc = d->fn(d->user, d->frames_out, k, d->stage, d->H, d->W)))
            return hb_error("longdecode: the frame callback stopped the decode (%d)", rc);
        d->frames_out += k;
    }
    return 0;
}

static int64_t vframes(const hb_decoder *d, int64_t n) { return n <= 0 ? 0 : 1 + d->F * (n - 1); }

/* Tiled mode: blend the first m frames of cout [3, nf, ...] with the carried frames. */
static void blend_carry(hb_decoder *d, int64_t nf) {
    int64_t m = d->m, HW = d->H * d->W;
    float up[m > 0 ? m : 1], dn[m > 0 ? m : 1];
    hb_ld_ramp(up, m, m, 0);
    hb_ld_ramp(dn, m, 0, m);
    for (int64_t c = 0; c < 3; c++)
        for (int64_t j = 0; j < m; j++) { /* o = carry * dn[j] + o * up[j] (frame weights: host scalars) */
            float *o = d->cout + (c * nf + j) * HW;
            hb_scale_add(o, d->carry + (c * m + j) * HW, dn[j], o, up[j], HW);
        }
}

static void keep_carry(hb_decoder *d, int64_t nf) {
    int64_t m = d->m, HW = d->H * d->W;
    hb_copy_rows(d->carry, m * HW, d->cout + (nf - m) * HW, nf * HW, 3, m * HW);
}

/* CAUSAL: push the pending latents through the streams, emit the frames they gave; at the end, the frames they
 * held back. */
static int stream(hb_decoder *d, bool final) {
    int64_t n = d->npend, nf = d->F * n;
    if (n > 0) {
        if (decode_clip(d, n, d->cout, &nf)) return -1;
        d->npend = 0, d->nclips++;
        if (emit(d, d->cout, nf, 0, nf)) return -1;
    }
    if (!final) return 0;
    nf = d->fd.max_held;
    d->finishing = true;
    int rc = decode_clip(d, 0, d->cout, &nf);
    d->finishing = false;
    return rc ? -1 : emit(d, d->cout, nf, 0, nf);
}

/* Light decoder tiles: the frames of cout [3, nf, ...] from `off` on (len of them, first at video frame c0) blended
 * with the previous tile (carry [3, nprev, ...], first at prev0). Release: the previous tile's LAST ext frames,
 * whatever their position; aligned: the frames at the same video positions. */
static void lt_blend(hb_decoder *d, int64_t off, int64_t len, int64_t nf, int64_t c0) {
    int64_t HW = d->H * d->W, ext, p0, den;
    if (d->lt.release) {
        ext = d->lt.nprev < len ? d->lt.nprev : len;
        if (ext > d->lt.b) ext = d->lt.b;
        p0 = d->lt.nprev - ext, den = ext;
    } else {
        den = d->lt.prev0 + d->lt.nprev - c0; /* shared frames */
        ext = den < len ? den : len;
        p0 = c0 - d->lt.prev0;
    }
    for (int64_t x = 0; x < ext; x++) {
        float wb = (float)((double)x / (double)den), wa = (float)(1.0 - (double)x / (double)den);
        for (int64_t c = 0; c < 3; c++) {
            float *o = d->cout + (c * nf + off + x) * HW;
            hb_scale_add(o, d->carry + (c * d->lt.nprev + p0 + x) * HW, wa, o, wb, HW);
        }
    }
}

/* Decode the n pending latents as one tile, blend it, keep it as the previous tile and emit its frames up to the
 * next tile's first one (all of them when it is the last tile; at the end no more than 1 + F(T-1) in all). */
static int lt_tile(hb_decoder *d, int64_t n, bool last) {
    int64_t nf = vframes(d, n), HW = d->H * d->W, i = d->nclips * d->lt.S, off = 0, len = nf, c0 = 0;
    if (decode_clip(d, n, d->cout, &nf)) return -1;
    if (d->nclips > 0) { /* drop the first (aligned) or the last (release) frame, then blend */
        len = nf - 1, off = d->lt.release ? 0 : 1, c0 = d->F * i + off;
        lt_blend(d, off, len, nf, c0);
    }
    hb_copy_rows(d->carry, len * HW, d->cout + off * HW, nf * HW, 3, len * HW);
    d->lt.nprev = len, d->lt.prev0 = c0;
    int64_t e = d->nclips == 0 ? d->lt.ts + 1 : d->lt.ts;
    if (last && (d->nclips == 0 || !d->lt.release)) e = len;
    if (e > len) e = len;
    int64_t room = vframes(d, d->lt.seen) - d->frames_out;
    if (e > room) e = room;
    d->nclips++, d->lt.emitted = e;
    return emit(d, d->carry, len, 0, e);
}

/* the next tile starts S latents later: keep the last npend - S latents (moved in chunks of S: no overlap) */
static void lt_shift(hb_decoder *d) {
    int64_t S = d->lt.S, keep = d->npend - S, hw = d->h * d->w;
    for (int64_t k = 0; k < keep; k += S) {
        int64_t c = keep - k < S ? keep - k : S;
        hb_copy_rows(d->pend + k * hw, d->L * hw, d->pend + (k + S) * hw, d->L * hw, d->z, c * hw);
    }
    d->npend = keep > 0 ? keep : 0;
}

static int lt_process(hb_decoder *d, bool final) {
    if (!final) {
        if (lt_tile(d, d->npend, false)) return -1;
        lt_shift(d);
        return 0;
    }
    int64_t T = d->lt.seen, i = (d->nclips - 1) * d->lt.S;
    if (T == 0) return 0;
    if (d->nclips == 0) return lt_tile(d, d->npend, true); /* T <= L: the whole clip, untiled */
    if (!d->lt.release) { /* one more tile when the last one did not reach the end */
        if (i + d->lt.Lat >= T) return emit(d, d->carry, d->lt.nprev, d->lt.emitted, d->lt.nprev - d->lt.emitted);
        return lt_tile(d, d->npend, true);
    }
    /* the release: stop after the tile with i + S + 1 == T, else go on while i < T */
    while (i + d->lt.S + 1 != T && (i += d->lt.S) < T) {
        if (lt_tile(d, d->npend, i + d->lt.S + 1 == T || i + d->lt.S >= T)) return -1;
        lt_shift(d);
    }
    return 0;
}

static int process(hb_decoder *d, bool final) {
    int64_t n = d->npend, hw = d->h * d->w;
    if (d->lt.on) return lt_process(d, final);
    if (d->mode == HB_LD_CAUSAL) return stream(d, final);
    /* tiled */
    if (d->nclips == 0) {
        if (n == 0) return 0;
        int64_t nf = vframes(d, n);
        if (decode_clip(d, n, d->cout, &nf)) return -1;
        if (final) { d->npend = 0; return emit(d, d->cout, nf, 0, nf); }
        keep_carry(d, nf);
        if (emit(d, d->cout, nf, 0, nf - d->m)) return -1;
    } else if (n > d->O) {
        int64_t nf = vframes(d, n);
        if (decode_clip(d, n, d->cout, &nf)) return -1;
        blend_carry(d, nf);
        if (final) { d->npend = 0; return emit(d, d->cout, nf, 0, nf); }
        keep_carry(d, nf);
        if (emit(d, d->cout, nf, 0, nf - d->m)) return -1;
    } else {
        /* final, nothing new: the carried frames are the last ones */
        d->npend = 0;
        return emit(d, d->carry, d->m, 0, d->m);
    }
    d->nclips++;
    /* keep the last O latents (drop = L - O >= O = keep: the copies do not overlap) */
    int64_t keep = d->O, drop = n - keep;
    if (drop < keep) return hb_error("longdecode: internal error (overlap %lld of a %lld-latent clip)", (long long)keep, (long long)n);
    hb_copy_rows(d->pend, d->L * hw, d->pend + drop * hw, d->L * hw, d->z, keep * hw);
    d->npend = keep;
    return 0;
}

int hb_decoder_push(hb_decoder *d, const float *latent, int64_t n, int64_t cstride) {
    int64_t hw = d->h * d->w;
    if (cstride == 0) cstride = n * hw;
    if (d->finished) d->finished = false, d->frames_out = 0;
    d->lt.seen += n;
    for (int64_t t = 0; t < n;) {
        int64_t k = d->L - d->npend < n - t ? d->L - d->npend : n - t; /* frames that fit in the clip */
        hb_copy_rows(d->pend + d->npend * hw, d->L * hw, latent + t * hw, cstride, d->z, k * hw);
        d->npend += k, t += k;
        if (d->npend == d->L && process(d, false)) return -1;
    }
    return 0;
}

int hb_decoder_finish(hb_decoder *d) {
    int rc = 0;
    if (d->lt.on || d->mode == HB_LD_CAUSAL || d->nclips == 0 || d->npend > 0) rc = process(d, true);
    /* a new video may follow */
    for (int i = 0; i < d->nst; i++) d->fd.ops->reset(d->st[i]);
    d->npend = 0, d->nclips = 0, d->finished = true, d->lt.seen = 0, d->lt.nprev = 0;
    return rc;
}

int hb_decoder_run(hb_decoder *d, const float *latent, int64_t t) {
    for (int64_t t0 = 0; t0 < t; t0 += d->L) {
        int64_t n = t - t0 < d->L ? t - t0 : d->L;
        if (hb_decoder_push(d, latent + t0 * d->h * d->w, n, t * d->h * d->w)) return -1;
    }
    return hb_decoder_finish(d);
}

hb_ld_mode hb_decoder_mode(const hb_decoder *d) { return d->mode; }
int64_t hb_decoder_frames_out(const hb_decoder *d) { return d->frames_out; }
int64_t hb_decoder_video_frames(const hb_decoder *d, int64_t t) { return vframes(d, t); }
void hb_decoder_video_size(const hb_decoder *d, int64_t *H, int64_t *W) { *H = d->H, *W = d->W; }
size_t hb_decoder_bytes(const hb_decoder *d) { return d->bytes; }

void hb_decoder_free(hb_decoder *d) {
    if (!d) return;
    for (int i = 0; i < d->nst; i++) d->fd.ops->free(d->st[i]);
    hb_free(d->st);
    if (d->wmap)
        for (int i = 0; i < d->nty * d->ntx; i++) hb_dev_free(d->wmap[i]);
    hb_free(d->wmap);
    free_ramps(d->ry, d->nty);
    free_ramps(d->rx, d->ntx);
    hb_free(d->ty), hb_free(d->tx), hb_free(d->stage);
    hb_dev_free(d->pend), hb_dev_free(d->tlat), hb_dev_free(d->tout), hb_dev_free(d->cout), hb_dev_free(d->carry);
    hb_dev_free(d->region);
    hb_free(d);
}

/* The decoder's release tiles (hb_ld_light_tiling): t_block_size / F + 1 latents every t_stride / F. */
static int release_tiles_setup(hb_decoder *d, const hb_longdecode_opts *o) {
    int64_t tb = o->t_block_size > 0 ? o->t_block_size : d->fd.tile_frames;
    int64_t ts = o->t_stride > 0 ? o->t_stride : d->fd.tile_stride;
    if (tb % d->F || ts % d->F || ts < d->F || ts >= tb)
        return hb_error("longdecode: %s tiles t_block_size %lld / t_stride %lld: need multiples of %lld with "
                        "t_stride < t_block_size", d->fd.name, (long long)tb, (long long)ts, (long long)d->F);
    if (o->light_tiling != HB_LD_LIGHT_ALIGNED && o->light_tiling != HB_LD_LIGHT_RELEASE)
        return hb_error("longdecode: unknown light tiling %d", (int)o->light_tiling);
    d->lt.on = true, d->lt.release = o->light_tiling == HB_LD_LIGHT_RELEASE;
    d->lt.Lat = tb / d->F + 1, d->lt.S = ts / d->F, d->lt.b = tb - ts, d->lt.ts = ts;
    d->L = d->lt.Lat, d->O = 0;
    return 0;
}

/* Mode, clip and overlap from the options. */
static int setup_mode(hb_decoder *d, const hb_longdecode_opts *o) {
    d->mode = o->mode == HB_LD_AUTO ? HB_LD_CAUSAL : o->mode;
    if (d->mode != HB_LD_CAUSAL && d->mode != HB_LD_TILED) return hb_error("longdecode: unknown mode %d", (int)o->mode);
    d->L = o->clip > 0 ? o->clip : (d->mode == HB_LD_CAUSAL ? 4 : 8);
    d->O = d->mode == HB_LD_TILED ? (o->overlap > 0 ? o->overlap : 2) : 0;
    if (d->mode == HB_LD_TILED && d->fd.tile_frames > 0 && release_tiles_setup(d, o)) return -1;
    if (d->mode == HB_LD_TILED && d->L < 2 * d->O)
        return hb_error("longdecode: clip %lld must be at least twice the overlap %lld", (long long)d->L, (long long)d->O);
    d->m = d->mode == HB_LD_TILED && !d->lt.on ? 1 + d->F * (d->O - 1) : 0;
    return 0;
}

/* Spatial tiles: spans, ramps and, for several tiles, the normalised weight maps ramp_y * ramp_x / (sum over the
 * tiles covering the pixel), per tile, uploaded once. */
static int setup_tiles(hb_decoder *d, const hb_longdecode_opts *o) {
    int tov = o->tile_overlap > 0 ? o->tile_overlap : o->tile / 4;
    if ((d->nty = make_spans(d->h, o->tile, tov, &d->ty)) < 0 || (d->ntx = make_spans(d->w, o->tile, tov, &d->tx)) < 0)
        return -1;
    d->th = d->ty[0].b - d->ty[0].a, d->tw = d->tx[0].b - d->tx[0].a;
    if (!(d->ry = span_ramps(d->ty, d->nty, d->S)) || !(d->rx = span_ramps(d->tx, d->ntx, d->S))) return -1;
    int nt = d->nty * d->ntx;
    if (nt == 1) return 0;
    size_t fl = sizeof(float);
    int64_t TH = d->th * d->S, TW = d->tw * d->S, HW = d->H * d->W;
    float *wsum = hb_calloc(fl * (size_t)HW, "longdecode weights"), *map = hb_malloc(fl * (size_t)(TH * TW), "longdecode weights");
    int ok = wsum && map && (d->wmap = hb_calloc(sizeof(float *) * (size_t)nt, "longdecode weights")) &&
             (d->region = hb_dev_alloc(fl * (size_t)(TH * TW), "longdecode tile region"));
    for (int iy = 0; ok && iy < d->nty; iy++)
        for (int ix = 0; ix < d->ntx; ix++)
            for (int64_t y = 0; y < (d->ty[iy].b - d->ty[iy].a) * d->S; y++)
                for (int64_t x = 0; x < (d->tx[ix].b - d->tx[ix].a) * d->S; x++)
                    wsum[(d->ty[iy].a * d->S + y) * d->W + d->tx[ix].a * d->S + x] += d->ry[iy][y] * d->rx[ix][x];
    for (int64_t i = 0; ok && i < HW; i++) wsum[i] = 1.0f / wsum[i];
    for (int iy = 0; ok && iy < d->nty; iy++)
        for (int ix = 0; ok && ix < d->ntx; ix++) {
            int64_t th = (d->ty[iy].b - d->ty[iy].a) * d->S, tw = (d->tx[ix].b - d->tx[ix].a) * d->S;
            int64_t Y0 = d->ty[iy].a * d->S, X0 = d->tx[ix].a * d->S;
            for (int64_t y = 0; y < th; y++)
                for (int64_t x = 0; x < tw; x++) map[y * tw + x] = d->ry[iy][y] * d->rx[ix][x] * wsum[(Y0 + y) * d->W + X0 + x];
            float **wm = &d->wmap[iy * d->ntx + ix];
            ok = (*wm = hb_dev_alloc(fl * (size_t)(th * tw), "longdecode weights")) && !hb_dev_upload(*wm, map, fl * (size_t)(th * tw));
        }
    hb_free(wsum), hb_free(map);
    d->bytes += fl * (size_t)((nt + 1) * TH * TW);
    return ok ? 0 : -1;
}

/* Pending latents, tile latents, clip frames (and tile frames), the host stage and the carried frames. */
static int setup_buffers(hb_decoder *d) {
    size_t fl = sizeof(float);
    int64_t TH = d->th * d->S, TW = d->tw * d->S, HW = d->H * d->W, nfmax = d->F * d->L;
    if (d->mode == HB_LD_CAUSAL && d->fd.max_held > nfmax) nfmax = d->fd.max_held; /* what a finish gives */
    if (!(d->pend = hb_dev_alloc(fl * (size_t)(d->z * d->L * d->h * d->w), "longdecode latents")) ||
        !(d->tlat = hb_dev_alloc(fl * (size_t)(d->z * d->L * d->th * d->tw), "longdecode tile latents")) ||
        !(d->cout = hb_dev_alloc(fl * (size_t)(3 * nfmax * HW), "longdecode clip frames")))
        return -1;
    d->bytes += fl * (size_t)(d->z * d->L * (d->h * d->w + d->th * d->tw) + 3 * nfmax * HW);
    if (!hb_memspace_current()->is_host) { /* frames reach the callback through a small host stage */
        d->nstage = d->F < nfmax ? d->F : nfmax;
        if (!(d->stage = hb_malloc(fl * (size_t)(3 * d->nstage * HW), "longdecode host frames"))) return -1;
        d->bytes += fl * (size_t)(3 * d->nstage * HW);
    }
    if (d->nty * d->ntx > 1) {
        if (!(d->tout = hb_dev_alloc(fl * (size_t)(3 * nfmax * TH * TW), "longdecode tile frames"))) return -1;
        d->bytes += fl * (size_t)(3 * nfmax * TH * TW);
    }
    int64_t ncarry = d->lt.on ? vframes(d, d->lt.Lat) : d->m; /* release tiles: the whole previous tile */
    if (ncarry > 0) {
        if (!(d->carry = hb_dev_alloc(fl * (size_t)(3 * ncarry * HW), "longdecode overlap frames"))) return -1;
        d->bytes += fl * (size_t)(3 * ncarry * HW);
    }
    return 0;
}

/* Decoder states: CAUSAL keeps a stream per spatial tile; TILED decodes every clip of every tile afresh with one
 * state (the tiles have one size). Release tiles blend raw frames (clamped when they are emitted). */
static int setup_states(hb_decoder *d) {
    d->nst = d->mode == HB_LD_CAUSAL ? d->nty * d->ntx : 1;
    if (!(d->st = hb_calloc(sizeof(void *) * (size_t)d->nst, "longdecode streams"))) return d->nst = 0, -1;
    for (int i = 0; i < d->nst; i++) {
        const span *sy = &d->ty[i / d->ntx], *sx = &d->tx[i % d->ntx];
        if (!(d->st[i] = d->fd.ops->create(d->fd.model, sy->b - sy->a, sx->b - sx->a, d->lt.on))) return -1;
        d->bytes += d->fd.ops->bytes(d->st[i]);
    }
    if (d->mode == HB_LD_TILED && d->fd.ops->decode_bytes) { /* a clip decode's working memory */
        int64_t b = d->fd.ops->decode_bytes(d->fd.model, d->L, d->th, d->tw);
        if (b < 0) return -1;
        d->bytes += (size_t)b;
    }
    return 0;
}

hb_decoder *hb_decoder_new(const hb_frame_decoder *fd, int64_t h, int64_t w, const hb_longdecode_opts *o,
                           hb_decoder_emit_fn fn, void *user) {
    hb_longdecode_opts dflt = {0};
    if (!o) o = &dflt;
    if (h < 1 || w < 1) return hb_error("longdecode: latent size %lldx%lld", (long long)h, (long long)w), NULL;
    if (!fn) return hb_error("longdecode: no frame callback"), NULL;
    hb_decoder *d = hb_calloc(sizeof *d, "longdecode");
    if (!d) return NULL;
    d->fd = *fd, d->z = fd->latent_channels, d->F = fd->temporal_factor, d->S = fd->spatial_factor;
    d->fn = fn, d->user = user, d->h = h, d->w = w, d->H = h * d->S, d->W = w * d->S;
    if (setup_mode(d, o) || setup_tiles(d, o) || setup_buffers(d) || setup_states(d)) {
        hb_decoder_free(d);
        return NULL;
    }
    return d;
}

hb_decoder *hb_decoder_new_wan(hb_wan_vae *m, int64_t h, int64_t w, const hb_longdecode_opts *o,
                               hb_decoder_emit_fn fn, void *user) {
    hb_frame_decoder fd;
    hb_wan_vae_frame_decoder(m, &fd);
    return hb_decoder_new(&fd, h, w, o, fn, user);
}

hb_decoder *hb_decoder_new_light(const hb_light_vae *m, int64_t h, int64_t w, const hb_longdecode_opts *o,
                                 hb_decoder_emit_fn fn, void *user) {
    hb_frame_decoder fd;
    hb_light_vae_frame_decoder(m, &fd);
    return hb_decoder_new(&fd, h, w, o, fn, user);
}

hb_decoder *hb_decoder_new_tae(const hb_tae *m, int64_t h, int64_t w, const hb_longdecode_opts *o,
                               hb_decoder_emit_fn fn, void *user) {
    hb_frame_decoder fd;
    if (hb_tae_frame_decoder(m, &fd)) return hb_error_prefix("longdecode: "), NULL;
    return hb_decoder_new(&fd, h, w, o, fn, user);
}
