/* Long-video decoding for every decoder (see longdecode.h). Latents, tiles, clip frames and the carried
 * overlap frames live in the current memory space and are moved, cropped and blended only through ops; the
 * blend weights are computed on the host and uploaded once; frames reach the callback in host memory. */
#include "pipeline/longdecode.h"
#include "models/tiles.h"
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

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
    hb_tiles tiles;   /* spatial tiles */
    float *stage;     /* non-host memory spaces: host staging of up to `nstage` frames for the callback */
    int64_t nstage;
    float *pend, *tlat, *tout, *cout, *carry;
    int64_t npend, nclips, frames_out;
    bool finished, finishing; /* finishing: decode_clip takes the streams' held-back frames */
    size_t bytes;
    int64_t got;      /* CAUSAL: frames the streams gave (every tile gives the same) */
    release_tiles lt;
};

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
    const hb_tiles *t = &d->tiles;
    int64_t nf = *nfp, hw = d->h * d->w, th = t->th, tw = t->tw;
    bool one = hb_tiles_count(t) == 1;
    if (!one) hb_fill(out, 0.0f, 3 * nf * d->H * d->W);
    for (int i = 0; i < hb_tiles_count(t); i++) {
        const hb_span *sy = &t->y[i / t->nx], *sx = &t->x[i % t->nx];
        /* tlat [z, n, th, tw] <- pend [z, L, h, w] cropped */
        const int64_t shp[4] = {d->z, n, th, tw}, ds[4] = {n * th * tw, th * tw, tw, 1}, ss[4] = {d->L * hw, hw, d->w, 1};
        if (n > 0) hb_copy_nd(d->tlat, ds, d->pend + sy->a * d->w + sx->a, ss, 4, shp);
        if (decode_tile(d, i, d->tlat, n, one ? out : d->tout, nf)) {
            hb_error_prefix("longdecode (tile %d,%d)", i / t->nx, i % t->nx);
            return -1;
        }
        if (d->mode == HB_LD_CAUSAL) nf = *nfp = d->got;
        if (!one) hb_tiles_blend(t, i, out, d->H * d->W, 3 * nf, d->tout);
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
                return hb_error_prefix("longdecode"), -1;
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
    hb_tiles_ramp(up, m, m, 0);
    hb_tiles_ramp(dn, m, 0, m);
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
    hb_tiles_free(&d->tiles);
    hb_free(d->stage);
    hb_dev_free(d->pend), hb_dev_free(d->tlat), hb_dev_free(d->tout), hb_dev_free(d->cout), hb_dev_free(d->carry);
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

/* Pending latents, tile latents, clip frames (and tile frames), the host stage and the carried frames. */
static int setup_buffers(hb_decoder *d) {
    size_t fl = sizeof(float);
    int64_t th = d->tiles.th, tw = d->tiles.tw, TH = th * d->S, TW = tw * d->S, HW = d->H * d->W, nfmax = d->F * d->L;
    if (d->mode == HB_LD_CAUSAL && d->fd.max_held > nfmax) nfmax = d->fd.max_held; /* what a finish gives */
    if (!(d->pend = hb_dev_alloc(fl * (size_t)(d->z * d->L * d->h * d->w), "longdecode latents")) ||
        !(d->tlat = hb_dev_alloc(fl * (size_t)(d->z * d->L * th * tw), "longdecode tile latents")) ||
        !(d->cout = hb_dev_alloc(fl * (size_t)(3 * nfmax * HW), "longdecode clip frames")))
        return -1;
    d->bytes += fl * (size_t)(d->z * d->L * (d->h * d->w + th * tw) + 3 * nfmax * HW);
    if (!hb_memspace_current()->is_host) { /* frames reach the callback through a small host stage */
        d->nstage = d->F < nfmax ? d->F : nfmax;
        if (!(d->stage = hb_malloc(fl * (size_t)(3 * d->nstage * HW), "longdecode host frames"))) return -1;
        d->bytes += fl * (size_t)(3 * d->nstage * HW);
    }
    if (hb_tiles_count(&d->tiles) > 1) {
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
    d->nst = d->mode == HB_LD_CAUSAL ? hb_tiles_count(&d->tiles) : 1;
    if (!(d->st = hb_calloc(sizeof(void *) * (size_t)d->nst, "longdecode streams"))) return d->nst = 0, -1;
    for (int i = 0; i < d->nst; i++) {
        if (!(d->st[i] = d->fd.ops->create(d->fd.model, d->tiles.th, d->tiles.tw, d->lt.on))) return -1;
        d->bytes += d->fd.ops->bytes(d->st[i]);
    }
    if (d->mode == HB_LD_TILED && d->fd.ops->decode_bytes) { /* a clip decode's working memory */
        int64_t b = d->fd.ops->decode_bytes(d->fd.model, d->L, d->tiles.th, d->tiles.tw);
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
    int tov = o->tile_overlap > 0 ? o->tile_overlap : o->tile / 4;
    if (setup_mode(d, o)) goto fail;
    if (hb_tiles_plan(&d->tiles, h, w, o->tile, tov, d->S)) { hb_error_prefix("longdecode"); goto fail; }
    d->bytes += d->tiles.bytes;
    if (setup_buffers(d) || setup_states(d)) goto fail;
    return d;
fail:
    hb_decoder_free(d);
    return NULL;
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
    if (hb_tae_frame_decoder(m, &fd)) return hb_error_prefix("longdecode"), NULL;
    return hb_decoder_new(&fd, h, w, o, fn, user);
}
