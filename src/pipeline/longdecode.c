/* Long-video decoding for every decoder (see longdecode.h). Latents, tiles, clip frames and the carried
 * overlap frames live in the current memory space and are moved, cropped and blended only through ops; the
 * blend weights are computed on the host and uploaded once; frames reach the callback in host memory. */
#include "pipeline/longdecode.h"
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

enum { K_WAN = 0, K_LIGHT = 1, K_TAE = 2 };

typedef struct { int64_t a, b; } span; /* latent cells [a, b) */

struct hb_decoder {
    int kind;
    hb_wan_vae *wan;
    const hb_light_vae *lv;
    const hb_tae *tae;
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
    void **st;        /* per tile: hb_light_vae_stream / hb_tae_decoder / hb_wan_vae_decoder (causal) */
    /* TAE frame sink */
    float *sink;
    int64_t sink_cap, sink_n, sink_hw;
    float *pend, *tlat, *tout, *cout, *carry;
    int64_t npend, nclips, frames_out;
    bool finished;
    size_t bytes;
    /* light decoder: streams finishing (decode_tile), frames a stream gave; temporal tiles (lt): tile latents
     * L + 1 every S, blend b frames, emit ts per tile; the previous tile's frames (carry) start at video frame
     * prev0; latents seen; the release stopped */
    bool finishing, lt, lt_release;
    int64_t got, lt_Lat, lt_S, lt_b, lt_ts, lt_seen, lt_emitted, nprev, prev0;
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

/* TAEHV frames [3, H, W] in [0, 1] (current memory space) -> 2x - 1 into the clip buffer. */
static float k_two = 2.0f, k_minus_one = -1.0f; /* 1-element "weights" of the affine op (host, never freed) */
static int tae_sink(void *user, const hb_tae_frame *f) {
    hb_decoder *d = user;
    if (!f->rgb) return 0;
    if (d->sink_n >= d->sink_cap) return hb_error("longdecode: TAEHV gave more frames than expected");
    hb_tensor two = hb_tensor_1d(HB_F32, 1, &k_two), m1 = hb_tensor_1d(HB_F32, 1, &k_minus_one);
    for (int c = 0; c < 3; c++)
        hb_channel_affine(d->sink + (c * d->sink_cap + d->sink_n) * d->sink_hw, f->rgb + c * d->sink_hw, 1, d->sink_hw,
                          &two, &m1);
    d->sink_n++;
    return 0;
}

/* Decode one tile: lat [z, n, th, tw] contiguous -> out [3, nf, th S, tw S]; nf expected frames. */
static int decode_tile(hb_decoder *d, int ti, const float *lat, int64_t n, int64_t th, int64_t tw, float *out,
                       int64_t nf) {
    bool stream = d->mode == HB_LD_CAUSAL;
    if (d->kind == K_WAN) {
        if (!stream) return hb_wan_vae_decode(d->wan, lat, n, th, tw, out, NULL);
        int64_t got = 0;
        if (hb_wan_vae_decoder_push(d->st[ti], lat, n, out, &got)) return -1;
        return got == nf ? 0 : hb_error("longdecode: Wan VAE gave %lld frames, expected %lld", (long long)got, (long long)nf);
    }
    if (d->kind == K_LIGHT) { /* raw frames (tiles blend them unclamped); streams: as many as are final */
        if (!stream) return hb_light_vae_stream_decode(d->st[ti], lat, n, NULL, out);
        int64_t got = 0;
        int rc = d->finishing ? hb_light_vae_stream_finish(d->st[ti], out, &got)
                              : hb_light_vae_stream_push(d->st[ti], lat, n, 0, out, &got);
        if (!rc && ti > 0 && got != d->got) rc = hb_error("longdecode: light VAE tiles gave %lld and %lld frames", (long long)d->got, (long long)got);
        d->got = got;
        return rc;
    }
    if (!stream) hb_tae_decoder_reset(d->st[ti]);
    d->sink = out, d->sink_cap = nf, d->sink_n = 0, d->sink_hw = th * tw * d->S * d->S;
    if (hb_tae_decoder_push_frames(d->st[ti], lat, n, th * tw, n * th * tw)) return -1;
    return d->sink_n == nf ? 0 : hb_error("longdecode: TAEHV gave %lld frames, expected %lld", (long long)d->sink_n, (long long)nf);
}

/* Decode n pending latents (every tile) into out [3, *nfp, H, W]; a light stream sets *nfp to the frames it gave. */
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
            if (decode_tile(d, iy * d->ntx + ix, d->tlat, n, th, tw, dst, nf)) {
                hb_error_prefix("longdecode (tile %d,%d)", iy, ix);
                return -1;
            }
            if (d->kind == K_LIGHT && d->mode == HB_LD_CAUSAL) nf = *nfp = d->got;
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
    if (d->lt) /* raw light decoder frames: clamp what leaves (the blends still read the raw frames after f0 + n) */
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

/* The light decoder's stream: push the pending latents, emit what they finished; at the end, the rest. */
static int light_stream(hb_decoder *d, bool final) {
    int64_t n = d->npend, nf = d->F * n;
    if (n > 0) {
        if (decode_clip(d, n, d->cout, &nf)) return -1;
        d->npend = 0, d->nclips++;
        if (emit(d, d->cout, nf, 0, nf)) return -1;
    }
    if (!final) return 0;
    nf = hb_light_vae_stream_max_pending(d->lv);
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
    if (d->lt_release) {
        ext = d->nprev < len ? d->nprev : len;
        if (ext > d->lt_b) ext = d->lt_b;
        p0 = d->nprev - ext, den = ext;
    } else {
        den = d->prev0 + d->nprev - c0; /* shared frames */
        ext = den < len ? den : len;
        p0 = c0 - d->prev0;
    }
    for (int64_t x = 0; x < ext; x++) {
        float wb = (float)((double)x / (double)den), wa = (float)(1.0 - (double)x / (double)den);
        for (int64_t c = 0; c < 3; c++) {
            float *o = d->cout + (c * nf + off + x) * HW;
            hb_scale_add(o, d->carry + (c * d->nprev + p0 + x) * HW, wa, o, wb, HW);
        }
    }
}

/* Decode the n pending latents as one tile, blend it, keep it as the previous tile and emit its frames up to the
 * next tile's first one (all of them when it is the last tile; at the end no more than 1 + F(T-1) in all). */
static int lt_tile(hb_decoder *d, int64_t n, bool last) {
    int64_t nf = vframes(d, n), HW = d->H * d->W, i = d->nclips * d->lt_S, off = 0, len = nf, c0 = 0;
    if (decode_clip(d, n, d->cout, &nf)) return -1;
    if (d->nclips > 0) { /* drop the first (aligned) or the last (release) frame, then blend */
        len = nf - 1, off = d->lt_release ? 0 : 1, c0 = d->F * i + off;
        lt_blend(d, off, len, nf, c0);
    }
    hb_copy_rows(d->carry, len * HW, d->cout + off * HW, nf * HW, 3, len * HW);
    d->nprev = len, d->prev0 = c0;
    int64_t e = d->nclips == 0 ? d->lt_ts + 1 : d->lt_ts;
    if (last && (d->nclips == 0 || !d->lt_release)) e = len;
    if (e > len) e = len;
    int64_t room = vframes(d, d->lt_seen) - d->frames_out;
    if (e > room) e = room;
    d->nclips++, d->lt_emitted = e;
    return emit(d, d->carry, len, 0, e);
}

/* the next tile starts S latents later: keep the last npend - S latents (moved in chunks of S: no overlap) */
static void lt_shift(hb_decoder *d) {
    int64_t S = d->lt_S, keep = d->npend - S, hw = d->h * d->w;
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
    int64_t T = d->lt_seen, i = (d->nclips - 1) * d->lt_S;
    if (T == 0) return 0;
    if (d->nclips == 0) return lt_tile(d, d->npend, true); /* T <= L: the whole clip, untiled */
    if (!d->lt_release) { /* one more tile when the last one did not reach the end */
        if (i + d->lt_Lat >= T) return emit(d, d->carry, d->nprev, d->lt_emitted, d->nprev - d->lt_emitted);
        return lt_tile(d, d->npend, true);
    }
    /* the release: stop after the tile with i + S + 1 == T, else go on while i < T */
    while (i + d->lt_S + 1 != T && (i += d->lt_S) < T) {
        if (lt_tile(d, d->npend, i + d->lt_S + 1 == T || i + d->lt_S >= T)) return -1;
        lt_shift(d);
    }
    return 0;
}

static int process(hb_decoder *d, bool final) {
    int64_t n = d->npend, hw = d->h * d->w;
    if (d->lt) return lt_process(d, final);
    if (d->kind == K_LIGHT && d->mode == HB_LD_CAUSAL) return light_stream(d, final);
    if (d->mode == HB_LD_CAUSAL) {
        if (n == 0) return 0;
        int64_t nf = d->F * n - (d->nclips == 0 ? d->F - 1 : 0);
        if (decode_clip(d, n, d->cout, &nf)) return -1;
        d->nclips++, d->npend = 0;
        return emit(d, d->cout, nf, 0, nf);
    }
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
    d->lt_seen += n;
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
    if (d->lt || d->mode == HB_LD_CAUSAL || d->nclips == 0 || d->npend > 0) rc = process(d, true);
    /* a new video may follow */
    for (int i = 0; i < d->nty * d->ntx && d->st; i++) {
        if (!d->st[i]) continue;
        if (d->kind == K_LIGHT) hb_light_vae_stream_reset(d->st[i]);
        else if (d->kind == K_TAE) hb_tae_decoder_reset(d->st[i]);
        else hb_wan_vae_decoder_reset(d->st[i]);
    }
    d->npend = 0, d->nclips = 0, d->finished = true, d->lt_seen = 0, d->nprev = 0;
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
    if (d->st)
        for (int i = 0; i < d->nty * d->ntx; i++) {
            if (d->kind == K_LIGHT) hb_light_vae_stream_free(d->st[i]);
            else if (d->kind == K_TAE) hb_tae_decoder_free(d->st[i]);
            else hb_wan_vae_decoder_free(d->st[i]);
        }
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

/* The light decoder's temporal tiles (hb_ld_light_tiling): t_block_size / F + 1 latents every t_stride / F. */
static int light_tiles(hb_decoder *d, const hb_longdecode_opts *o) {
    int64_t tb = o->t_block_size > 0 ? o->t_block_size : 16, ts = o->t_stride > 0 ? o->t_stride : 12;
    if (tb % d->F || ts % d->F || ts < d->F || ts >= tb)
        return hb_error("longdecode: light decoder tiles t_block_size %lld / t_stride %lld: need multiples of %lld with "
                        "t_stride < t_block_size", (long long)tb, (long long)ts, (long long)d->F);
    if (o->light_tiling != HB_LD_LIGHT_ALIGNED && o->light_tiling != HB_LD_LIGHT_RELEASE)
        return hb_error("longdecode: unknown light tiling %d", (int)o->light_tiling);
    d->lt = true, d->lt_release = o->light_tiling == HB_LD_LIGHT_RELEASE;
    d->lt_Lat = tb / d->F + 1, d->lt_S = ts / d->F, d->lt_b = tb - ts, d->lt_ts = ts;
    d->L = d->lt_Lat, d->O = 0;
    return 0;
}

static hb_decoder *setup(hb_decoder *d, int64_t h, int64_t w, const hb_longdecode_opts *o, bool can_stream,
                         hb_decoder_emit_fn fn, void *user) {
    hb_longdecode_opts dflt = {0};
    if (!o) o = &dflt;
    d->fn = fn, d->user = user, d->h = h, d->w = w, d->H = h * d->S, d->W = w * d->S;
    if (h < 1 || w < 1) { hb_error("longdecode: latent size %lldx%lld", (long long)h, (long long)w); goto fail; }
    if (!fn) { hb_error("longdecode: no frame callback"); goto fail; }
    d->mode = o->mode == HB_LD_AUTO ? (can_stream ? HB_LD_CAUSAL : HB_LD_TILED) : o->mode;
    if (d->mode == HB_LD_CAUSAL && !can_stream) {
        hb_error("longdecode: this decoder cannot decode in causal-cache mode (it is not causal); use the tiled mode");
        goto fail;
    }
    if (d->mode != HB_LD_CAUSAL && d->mode != HB_LD_TILED) { hb_error("longdecode: unknown mode %d", (int)o->mode); goto fail; }
    d->L = o->clip > 0 ? o->clip : (d->mode == HB_LD_CAUSAL ? 4 : 8);
    d->O = d->mode == HB_LD_TILED ? (o->overlap > 0 ? o->overlap : 2) : 0;
    if (d->kind == K_LIGHT && d->mode == HB_LD_TILED && light_tiles(d, o)) goto fail;
    if (d->mode == HB_LD_TILED && d->L < 2 * d->O) {
        hb_error("longdecode: clip %lld must be at least twice the overlap %lld", (long long)d->L, (long long)d->O);
        goto fail;
    }
    d->m = d->mode == HB_LD_TILED && !d->lt ? 1 + d->F * (d->O - 1) : 0;
    int tov = o->tile_overlap > 0 ? o->tile_overlap : o->tile / 4;
    if ((d->nty = make_spans(h, o->tile, tov, &d->ty)) < 0) goto fail;
    if ((d->ntx = make_spans(w, o->tile, tov, &d->tx)) < 0) goto fail;
    d->th = d->ty[0].b - d->ty[0].a, d->tw = d->tx[0].b - d->tx[0].a;
    int nt = d->nty * d->ntx;
    int64_t TH = d->th * d->S, TW = d->tw * d->S, HW = d->H * d->W, nfmax = d->F * d->L;
    if (d->kind == K_LIGHT && d->mode == HB_LD_CAUSAL && hb_light_vae_stream_max_pending(d->lv) > nfmax)
        nfmax = hb_light_vae_stream_max_pending(d->lv); /* what a finish gives */
    if (!(d->ry = span_ramps(d->ty, d->nty, d->S)) || !(d->rx = span_ramps(d->tx, d->ntx, d->S))) goto fail;
    size_t fl = sizeof(float);
    if (!(d->pend = hb_dev_alloc(fl * (size_t)(d->z * d->L * h * w), "longdecode latents")) ||
        !(d->tlat = hb_dev_alloc(fl * (size_t)(d->z * d->L * d->th * d->tw), "longdecode tile latents")) ||
        !(d->cout = hb_dev_alloc(fl * (size_t)(3 * nfmax * HW), "longdecode clip frames")))
        goto fail;
    d->bytes = fl * (size_t)(d->z * d->L * (h * w + d->th * d->tw) + 3 * nfmax * HW);
    if (!hb_memspace_current()->is_host) { /* frames reach the callback through a small host stage */
        d->nstage = d->F < nfmax ? d->F : nfmax;
        if (!(d->stage = hb_malloc(fl * (size_t)(3 * d->nstage * HW), "longdecode host frames"))) goto fail;
        d->bytes += fl * (size_t)(3 * d->nstage * HW);
    }
    if (nt > 1) {
        /* weight maps: ramp_y * ramp_x / (sum over the tiles covering the pixel), per tile, uploaded once */
        float *wsum = hb_calloc(fl * (size_t)HW, "longdecode weights"), *map = hb_malloc(fl * (size_t)(TH * TW), "longdecode weights");
        int ok = wsum && map && (d->wmap = hb_calloc(sizeof(float *) * (size_t)nt, "longdecode weights")) &&
                 (d->tout = hb_dev_alloc(fl * (size_t)(3 * nfmax * TH * TW), "longdecode tile frames")) &&
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
                    for (int64_t x = 0; x < tw; x++)
                        map[y * tw + x] = d->ry[iy][y] * d->rx[ix][x] * wsum[(Y0 + y) * d->W + X0 + x];
                float **wm = &d->wmap[iy * d->ntx + ix];
                ok = (*wm = hb_dev_alloc(fl * (size_t)(th * tw), "longdecode weights")) &&
                     !hb_dev_upload(*wm, map, fl * (size_t)(th * tw));
            }
        hb_free(wsum), hb_free(map);
        if (!ok) goto fail;
        d->bytes += fl * (size_t)(3 * nfmax * TH * TW + (nt + 1) * TH * TW);
    }
    int64_t ncarry = d->lt ? vframes(d, d->lt_Lat) : d->m; /* light tiles: the whole previous tile */
    if (ncarry > 0) {
        if (!(d->carry = hb_dev_alloc(fl * (size_t)(3 * ncarry * HW), "longdecode overlap frames"))) goto fail;
        d->bytes += fl * (size_t)(3 * ncarry * HW);
    }
    /* decoder state / workspace (tiles share a size up to the last one; take the largest, count each stream) */
    if (d->kind == K_WAN && d->mode == HB_LD_TILED) {
        int64_t b = hb_wan_vae_decode_workspace(d->wan, d->L, d->th, d->tw, NULL);
        if (b < 0) goto fail;
        d->bytes += (size_t)b;
    } else {
        if (d->kind == K_LIGHT && d->mode == HB_LD_TILED) /* the tiles' buffers, kept by their streams */
            d->bytes += (size_t)hb_light_vae_decode_bytes(d->lv, d->L, d->th, d->tw) * (size_t)nt;
        if (!(d->st = hb_calloc(sizeof(void *) * (size_t)nt, "longdecode streams"))) goto fail;
        for (int iy = 0; iy < d->nty; iy++)
            for (int ix = 0; ix < d->ntx; ix++) {
                int i = iy * d->ntx + ix;
                int64_t th = d->ty[iy].b - d->ty[iy].a, tw = d->tx[ix].b - d->tx[ix].a;
                if (d->kind == K_LIGHT) {
                    if (!(d->st[i] = hb_light_vae_stream_new(d->lv, th, tw, d->mode == HB_LD_CAUSAL))) goto fail;
                    d->bytes += hb_light_vae_stream_bytes(d->st[i]);
                } else if (d->kind == K_WAN) {
                    if (!(d->st[i] = hb_wan_vae_decoder_new(d->wan, th, tw, NULL))) goto fail;
                    d->bytes += hb_wan_vae_decoder_bytes(d->st[i]);
                } else {
                    if (!(d->st[i] = hb_tae_decoder_new(d->tae, th, tw, tae_sink, d))) goto fail;
                    d->bytes += hb_tae_decoder_bytes(d->st[i]);
                }
            }
    }
    return d;
fail:
    hb_decoder_free(d);
    return NULL;
}

hb_decoder *hb_decoder_new_wan(hb_wan_vae *m, int64_t h, int64_t w, const hb_longdecode_opts *o,
                               hb_decoder_emit_fn fn, void *user) {
    hb_decoder *d = hb_calloc(sizeof *d, "longdecode");
    if (!d) return NULL;
    d->kind = K_WAN, d->wan = m, d->z = hb_wan_vae_get_config(m)->z_dim;
    d->F = hb_wan_vae_temporal_factor(m), d->S = hb_wan_vae_spatial_factor(m);
    return setup(d, h, w, o, true, fn, user);
}

hb_decoder *hb_decoder_new_light(const hb_light_vae *m, int64_t h, int64_t w, const hb_longdecode_opts *o,
                                 hb_decoder_emit_fn fn, void *user) {
    hb_decoder *d = hb_calloc(sizeof *d, "longdecode");
    if (!d) return NULL;
    d->F = hb_light_vae_temporal_factor(m), d->S = hb_light_vae_spatial_factor(m);
    d->kind = K_LIGHT, d->lv = m, d->z = hb_light_vae_get_config(m)->latent_channels;
    return setup(d, h, w, o, true, fn, user);
}

hb_decoder *hb_decoder_new_tae(const hb_tae *m, int64_t h, int64_t w, const hb_longdecode_opts *o,
                               hb_decoder_emit_fn fn, void *user) {
    if (!hb_tae_has_decoder(m)) { hb_error("longdecode: the TAEHV model has no decoder"); return NULL; }
    hb_decoder *d = hb_calloc(sizeof *d, "longdecode");
    if (!d) return NULL;
    d->kind = K_TAE, d->tae = m, d->z = hb_tae_latent_channels(m);
    d->F = hb_tae_t_upscale(m), d->S = hb_tae_space_scale(m);
    return setup(d, h, w, o, true, fn, user);
}
