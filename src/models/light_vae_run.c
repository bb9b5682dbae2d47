/* The light VAE decoder's forward pass (light_vae.h). One code path serves the whole-clip decode and the
 * streaming decoder: every temporal conv runs on [cached frames | new frames] with replicate padding at the
 * clip's true start (first frames ever seen) and end (finish), so a clip pushed in pieces gives the same
 * values as one whole-clip pass. Activations live in the current memory space and are touched only by ops. */
#include "models/light_vae_impl.h"
#include "ops/ops.h"
#include <string.h>

#define LV_POOL 256

typedef struct {
    float *d; /* [C, T, H, W] in the current memory space; NULL when T = 0 */
    int64_t C, T, H, W;
} lbuf;

/* The state carried between pushes. */
typedef struct {
    const hb_light_vae *m;
    float **cache;    /* per conv slot: its last k-1 input frames [cin, <= k-1, H, W] */
    int64_t *ncache;  /* frames in the cache */
    bool *started;    /* the conv has seen its first frame */
    float **queue;    /* per resnet: shortcut frames waiting for the branch [cout, <= lag, H, W] */
    int64_t *nqueue;
    int64_t *up_out;  /* per upsampler: conv frames shuffled so far */
    size_t bytes;     /* caches, queues and pooled buffers */
    int last_upto;    /* convs with slot <= last_upto end their clip in this call: replicate their last frame */
    /* streams: activation buffers kept for the next push (pushes of one size allocate the same sizes in the same
     * order), so memory stays flat and a device backend is not asked for fresh memory per op; blocks a push did
     * not use are released after it */
    struct { float *p; size_t bytes; bool used, touched; } pool[LV_POOL];
    int npool;
    bool pooled;
    hb_light_vae_block_fn hook;
    void *user;
} lstate;

static int buf_new(lstate *s, lbuf *b, int64_t C, int64_t T, int64_t H, int64_t W) {
    b->C = C, b->T = T, b->H = H, b->W = W, b->d = NULL;
    if (T <= 0) return 0;
    size_t need = sizeof(float) * (size_t)(C * T * H * W);
    int best = -1;
    for (int i = 0; s->pooled && i < s->npool && best < 0; i++) /* a free block of exactly this size */
        if (!s->pool[i].used && s->pool[i].bytes == need) best = i;
    if (best >= 0) {
        s->pool[best].used = s->pool[best].touched = true;
        b->d = s->pool[best].p;
        return 0;
    }
    b->d = hb_dev_alloc(need, "light_vae activations");
    if (b->d && s->pooled && s->npool < LV_POOL) {
        s->pool[s->npool].p = b->d, s->pool[s->npool].bytes = need;
        s->pool[s->npool].used = s->pool[s->npool].touched = true, s->npool++;
        s->bytes += need;
    }
    return b->d ? 0 : -1;
}

/* After a push: release the blocks it did not use (sizes of earlier, differently sized pushes). */
static void pool_trim(lstate *s) {
    int k = 0;
    for (int i = 0; i < s->npool; i++) {
        if (s->pool[i].touched || s->pool[i].used) s->pool[i].touched = false, s->pool[k++] = s->pool[i];
        else hb_dev_free(s->pool[i].p), s->bytes -= s->pool[i].bytes;
    }
    s->npool = k;
}

static void buf_free(lstate *s, lbuf *b) {
    for (int i = 0; b->d && s->pooled && i < s->npool; i++)
        if (s->pool[i].p == b->d) {
            s->pool[i].used = false;
            b->d = NULL;
            return;
        }
    hb_dev_free(b->d);
    b->d = NULL;
}

/* frames [s0, s0 + n) of src [C, Ts, HW] -> frames [d0, d0 + n) of dst [C, Td, HW] */
static void copy_frames(float *dst, int64_t Td, int64_t d0, const float *src, int64_t Ts, int64_t s0, int64_t n,
                        int64_t C, int64_t HW) {
    if (n > 0) hb_copy_rows(dst + d0 * HW, Td * HW, src + s0 * HW, Ts * HW, C, n * HW);
}

static int hook(lstate *s, const char *name, const lbuf *x) {
    if (!s->hook || x->T <= 0) return 0;
    return s->hook(s->user, name, x->d, x->C, x->T, x->H, x->W) ? hb_error("light_vae: stopped at %s", name) : 0;
}

/* The conv on the window [cache | replicated first frame (pl, once) | x | replicated last frame (pr, at the end)]:
 * every output whose k frames are in the window; the last k-1 window frames become the cache. */
static int tconv(lstate *s, const lv_conv *c, const lbuf *x, lbuf *y) {
    y->d = NULL; /* a failure before y is allocated must leave nothing for the caller to free */
    int64_t HW = x->H * x->W, k = c->k;
    y->d = NULL; /* callers free y after a failure, also one before y was allocated */
    hb_conv3d_params prm = {{1, 1, 1}, {0, 0}, {c->k / 2, c->k / 2}, {c->k / 2, c->k / 2}, c->groups, HB_CONV_FAST};
    if (c->slot < 0) {
        if (buf_new(s, y, c->cout, x->T, x->H, x->W)) return -1;
        return x->T > 0 ? hb_conv3d(y->d, x->d, c->cin, x->T, x->H, x->W, &c->w, &c->b, &prm) : 0;
    }
    int64_t nc = s->ncache[c->slot];
    bool started = s->started[c->slot], any = started || x->T > 0;
    bool last = c->slot <= s->last_upto;
    int64_t nl = !started && x->T > 0 ? c->pl : 0, nr = last && any ? c->pr : 0;
    int64_t n = nc + nl + x->T + nr, To = n >= k ? n - k + 1 : 0;
    lbuf win;
    if (buf_new(s, &win, c->cin, n, x->H, x->W) || buf_new(s, y, c->cout, To, x->H, x->W)) return buf_free(s, &win), -1;
    float *cc = s->cache[c->slot];
    copy_frames(win.d, n, 0, cc, k - 1, 0, nc, c->cin, HW);
    for (int64_t j = 0; j < nl; j++) copy_frames(win.d, n, nc + j, x->d, x->T, 0, 1, c->cin, HW);
    copy_frames(win.d, n, nc + nl, x->d, x->T, 0, x->T, c->cin, HW);
    for (int64_t j = 0; j < nr; j++) copy_frames(win.d, n, nc + nl + x->T + j, win.d, n, nc + nl + x->T - 1, 1, c->cin, HW);
    int rc = To > 0 ? hb_conv3d(y->d, win.d, c->cin, n, x->H, x->W, &c->w, &c->b, &prm) : 0;
    if (!rc && !last && n > 0) { /* keep the last k-1 frames */
        if (!cc) {
            size_t b = sizeof(float) * (size_t)(c->cin * (k - 1) * HW);
            if (!(cc = s->cache[c->slot] = hb_dev_alloc(b, "light_vae frame cache"))) rc = -1;
            s->bytes += b;
        }
        int64_t keep = n < k - 1 ? n : k - 1;
        if (cc) copy_frames(cc, k - 1, 0, win.d, n, n - keep, keep, c->cin, HW);
        s->ncache[c->slot] = keep;
    }
    s->started[c->slot] = any && !last; /* an ended conv gives nothing more (later finish steps pass it by) */
    if (last) s->ncache[c->slot] = 0;
    buf_free(s, &win);
    if (rc) buf_free(s, y);
    return rc;
}

static int sep(lstate *s, const lv_sep *c, const lbuf *x, lbuf *y) {
    y->d = NULL;
    if (!c->dw) return tconv(s, &c->a, x, y);
    lbuf t;
    if (tconv(s, &c->a, x, &t)) return -1;
    int rc = tconv(s, &c->p, &t, y);
    buf_free(s, &t);
    return rc;
}

/* y = act(channel RMS norm(x)), no weight (eps 1e-8 is below float32 resolution of O(1) activations) */
static int rms_act(lstate *s, const lbuf *x, bool relu, lbuf *y) {
    if (buf_new(s, y, x->C, x->T, x->H, x->W)) return -1;
    if (x->T <= 0) return 0;
    int64_t S = x->T * x->H * x->W;
    hb_channel_rmsnorm(y->d, x->d, x->C, S, NULL, NULL);
    if (relu) hb_elementwise(HB_EW_RELU, y->d, y->d, NULL, 0.0f, 0.0f, x->C * S);
    else hb_silu(y->d, y->d, x->C * S);
    return 0;
}

/* The width-changing shortcut: LayerNorm over channels (positions transposed to rows), then the kernel-1 conv. */
static int shortcut(lstate *s, const lv_res *r, const lbuf *x, lbuf *y) {
    int64_t S = x->T * x->H * x->W, C = x->C;
    lbuf t, ln;
    if (buf_new(s, &t, C, x->T, x->H, x->W) || buf_new(s, &ln, C, x->T, x->H, x->W)) return buf_free(s, &t), -1;
    if (x->T > 0) {
        const int64_t shp[2] = {S, C}, rows[2] = {C, 1}, cols[2] = {1, S};
        hb_copy_nd(t.d, rows, x->d, cols, 2, shp);
        hb_layernorm(t.d, t.d, S, C, &r->ln_w, &r->ln_b, s->m->cfg.resnet_norm_eps);
        hb_copy_nd(ln.d, cols, t.d, rows, 2, shp);
    }
    buf_free(s, &t);
    int rc = sep(s, &r->sc, &ln, y);
    buf_free(s, &ln);
    return rc;
}

/* x (consumed) -> conv2(silu(rms(conv1(act(rms(x)))))) + shortcut(x). The branch lags its input by the convs'
 * right padding; shortcut frames wait in the resnet's queue until the branch has produced their partners. */
static int resnet(lstate *s, const lv_res *r, lbuf *x, lbuf *out) {
    lbuf h, t, sc;
    int rc = rms_act(s, x, r->relu, &h);
    if (!rc) rc = sep(s, &r->c1, &h, &t), buf_free(s, &h);
    if (!rc) rc = rms_act(s, &t, false, &h), buf_free(s, &t);
    if (!rc) rc = sep(s, &r->c2, &h, out), buf_free(s, &h);
    if (rc) return buf_free(s, x), -1;
    if (r->has_sc) {
        rc = shortcut(s, r, x, &sc);
        buf_free(s, x);
        if (rc) return buf_free(s, out), -1;
    } else sc = *x, x->d = NULL;
    int64_t HW = sc.H * sc.W, nq = s->nqueue[r->id], total = nq + sc.T, used = out->T, lag = r->c1.a.pr + r->c2.a.pr;
    lbuf all = sc;
    if (nq > 0) { /* [queue | new shortcut frames] */
        if (buf_new(s, &all, r->cout, total, sc.H, sc.W)) return buf_free(s, &sc), buf_free(s, out), -1;
        copy_frames(all.d, total, 0, s->queue[r->id], lag, 0, nq, r->cout, HW);
        copy_frames(all.d, total, nq, sc.d, sc.T, 0, sc.T, r->cout, HW);
        buf_free(s, &sc);
    }
    if (used > total || total - used > lag) rc = hb_error("light_vae: internal error (resnet queue %lld)", (long long)(total - used));
    if (!rc && used == total && used > 0) hb_add(out->d, out->d, all.d, r->cout * used * HW);
    else if (!rc && used > 0) { /* the first `used` frames, contiguous */
        lbuf head;
        if (!(rc = buf_new(s, &head, r->cout, used, sc.H, sc.W))) {
            copy_frames(head.d, used, 0, all.d, total, 0, used, r->cout, HW);
            hb_add(out->d, out->d, head.d, r->cout * used * HW);
            buf_free(s, &head);
        }
    }
    if (!rc && total > used) {
        if (!s->queue[r->id]) {
            size_t b = sizeof(float) * (size_t)(r->cout * lag * HW);
            if (!(s->queue[r->id] = hb_dev_alloc(b, "light_vae shortcut queue"))) rc = -1;
            s->bytes += b;
        }
        if (!rc) copy_frames(s->queue[r->id], lag, 0, all.d, total, used, total - used, r->cout, HW);
    }
    s->nqueue[r->id] = rc ? 0 : total - used;
    buf_free(s, &all);
    if (rc) buf_free(s, out);
    return rc;
}

/* The upsampler on x (consumed): conv to C s_t s s channels, then channel ((c s + i) s + j) s_t + st goes to
 * channel c, frame t s_t + st, pixel (y s + i, x s + j); the first s_t - 1 frames of the clip are dropped. */
static int upsample(lstate *s, const lv_block *b, lbuf *x, lbuf *y) {
    lbuf u;
    int rc = tconv(s, &b->up, x, &u);
    buf_free(s, x);
    if (rc) return -1;
    int64_t st = b->st, ss = b->ss, C = u.C / (st * ss * ss), H = u.H * ss, W = u.W * ss, HW = u.H * u.W;
    int64_t drop = s->up_out[b->up_id] == 0 && u.T > 0 ? st - 1 : 0, To = u.T * st - drop;
    s->up_out[b->up_id] += u.T;
    if (buf_new(s, y, C, To, H, W)) return buf_free(s, &u), -1;
    /* one copy per (k, i), the column sub-pixel j innermost: each output row is written whole by one copy */
    for (int64_t k = 0; k < st && u.T > 0; k++)
        for (int64_t i = 0; i < ss; i++) {
            int64_t t0 = k < drop ? 1 : 0, nt = u.T - t0;
            if (nt <= 0) continue;
            const int64_t shp[5] = {C, nt, u.H, u.W, ss}, sst[5] = {ss * ss * st * u.T * HW, HW, u.W, 1, st * u.T * HW},
                          dst[5] = {To * H * W, st * H * W, ss * W, ss, 1};
            const float *src = u.d + (i * ss * st + k) * u.T * HW + t0 * HW;
            hb_copy_nd(y->d + (t0 * st + k - drop) * H * W + i * W, dst, src, sst, 5, shp);
        }
    buf_free(s, &u);
    return 0;
}

static int block(lstate *s, const lv_block *b, lbuf *x, const char *name) {
    lbuf y;
    if (b->has_entry) {
        if (resnet(s, &b->entry, x, &y)) return -1;
        *x = y;
    }
    if (b->has_up) {
        if (upsample(s, b, x, &y)) return -1;
        *x = y;
    }
    for (int j = 0; j < b->nres; j++) {
        if (resnet(s, &b->res[j], x, &y)) return -1;
        *x = y;
    }
    return hook(s, name, x);
}

/* patch stage: rms + SiLU, per-frame 3x3 Conv2d, pixel_shuffle(2) (torch channel order) */
static int stage2d(lstate *s, int i, lbuf *x) {
    const hb_light_vae *m = s->m;
    lbuf h, c, y;
    int rc = rms_act(s, x, false, &h);
    buf_free(s, x);
    if (rc) return -1;
    hb_conv3d_params prm = {{1, 1, 1}, {0, 0}, {1, 1}, {1, 1}, 1, HB_CONV_FAST};
    rc = buf_new(s, &c, h.C, h.T, h.H, h.W);
    if (!rc && h.T > 0) rc = hb_conv3d(c.d, h.d, h.C, h.T, h.H, h.W, &m->s2d[i].w, &m->s2d[i].b, &prm);
    buf_free(s, &h);
    if (!rc) rc = buf_new(s, &y, c.C / 4, c.T, c.H * 2, c.W * 2);
    if (!rc && c.T > 0) hb_pixel_shuffle(y.d, c.d, c.C / 4, c.T, c.H, c.W, 2, HB_PS_CQR);
    buf_free(s, &c);
    if (!rc) *x = y;
    return rc;
}

/* The network on x (the de-normalised latent frames, consumed) -> raw output frames. */
static int net(lstate *s, lbuf *x, lbuf *out) {
    const hb_light_vae *m = s->m;
    static const char *names[] = {"up_blocks.0", "up_blocks.1", "up_blocks.2", "up_blocks.3", "up_blocks.4",
                                  "up_blocks.5"};
    lbuf y = {0}; /* freed on every path, also when the stage that fills it fails before it does */
    if (hook(s, "latent_denorm", x)) return buf_free(s, x), -1;
    int rc = tconv(s, &m->conv_in, x, &y);
    buf_free(s, x);
    if (rc || hook(s, "conv_in", &y)) return buf_free(s, &y), -1;
    *x = y;
    for (int i = 0; i <= m->cfg.n_up; i++)
        if (block(s, &m->blk[i], x, i == 0 ? "mid_block" : names[i - 1])) return buf_free(s, x), -1;
    for (int i = 0; i < m->n2d; i++)
        if (stage2d(s, i, x) || hook(s, i ? "upsampler2d_2" : "upsampler2d_1", x)) return buf_free(s, x), -1;
    rc = rms_act(s, x, false, &y);
    buf_free(s, x);
    if (!rc) rc = tconv(s, &m->conv_out, &y, out);
    buf_free(s, &y);
    return rc;
}

/* ---------------------------------------------------------------- state */

static void state_free(lstate *s) {
    for (int i = 0; s->cache && i < s->m->nslots; i++) hb_dev_free(s->cache[i]);
    for (int i = 0; s->queue && i < s->m->nres; i++) hb_dev_free(s->queue[i]);
    for (int i = 0; i < s->npool; i++) hb_dev_free(s->pool[i].p);
    hb_free(s->cache), hb_free(s->ncache), hb_free(s->started), hb_free(s->queue), hb_free(s->nqueue);
    hb_free(s->up_out);
    memset(s, 0, sizeof *s);
}

static int state_init(lstate *s, const hb_light_vae *m) {
    memset(s, 0, sizeof *s);
    s->m = m;
    size_t ns = (size_t)(m->nslots + 1), nr = (size_t)(m->nres + 1), nu = (size_t)(m->nups + 1);
    s->cache = hb_calloc(sizeof(float *) * ns, "light_vae state");
    s->ncache = hb_calloc(sizeof(int64_t) * ns, "light_vae state");
    s->started = hb_calloc(sizeof(bool) * ns, "light_vae state");
    s->queue = hb_calloc(sizeof(float *) * nr, "light_vae state");
    s->nqueue = hb_calloc(sizeof(int64_t) * nr, "light_vae state");
    s->up_out = hb_calloc(sizeof(int64_t) * nu, "light_vae state");
    if (s->cache && s->ncache && s->started && s->queue && s->nqueue && s->up_out) return 0;
    state_free(s);
    return -1;
}

/* n latent frames (channel stride cstride) -> de-normalised contiguous [z, n, h, w] */
static int denorm(lstate *s, const float *lat, int64_t n, int64_t h, int64_t w, int64_t cstride, lbuf *x) {
    const hb_light_vae *m = s->m;
    int64_t z = m->cfg.latent_channels, S = n * h * w;
    if (buf_new(s, x, z, n, h, w)) return -1;
    if (n <= 0) return 0;
    hb_copy_rows(x->d, S, lat, cstride, z, S);
    hb_tensor sc = hb_tensor_1d(HB_F32, z, (void *)m->scale), mu = hb_tensor_1d(HB_F32, z, (void *)m->mean);
    hb_channel_affine(x->d, x->d, z, S, &sc, &mu);
    return 0;
}

static int check_size(int64_t t, int64_t h, int64_t w) {
    if (t < 0 || h < 1 || w < 1)
        return hb_error("light_vae: latent size %lldx%lldx%lld", (long long)t, (long long)h, (long long)w);
    return 0;
}

/* out [3, T, H, W] -> clamp to [-1, 1] into video and/or raw copy */
/* o [3, T, H, W] -> frames [f0, f0 + T) of video [3, nf, H, W], clamped to [-1, 1] or copied */
static void deliver_at(const lbuf *o, float *video, int64_t nf, int64_t f0, bool clamp) {
    int64_t HW = o->H * o->W;
    if (o->T <= 0) return;
    if (!clamp) hb_copy_rows(video + f0 * HW, nf * HW, o->d, o->T * HW, o->C, o->T * HW);
    else
        for (int64_t c = 0; c < o->C; c++)
            hb_elementwise(HB_EW_CLAMP, video + (c * nf + f0) * HW, o->d + c * o->T * HW, NULL, -1.0f, 1.0f, o->T * HW);
}

static void deliver(const lbuf *o, float *video, float *raw, bool clamp) {
    int64_t n = o->C * o->T * o->H * o->W;
    if (n <= 0) return;
    if (raw) hb_copy(raw, o->d, n);
    if (video) {
        if (clamp) hb_elementwise(HB_EW_CLAMP, video, o->d, NULL, -1.0f, 1.0f, n);
        else hb_copy(video, o->d, n);
    }
}

int hb_light_vae_decode(const hb_light_vae *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video,
                        float *raw, hb_light_vae_block_fn fn, void *user) {
    if (check_size(t, h, w) || t < 1) return t < 1 ? hb_error("light_vae: no latent frames") : -1;
    lstate s;
    if (state_init(&s, m)) return -1;
    s.last_upto = m->nslots, s.hook = fn, s.user = user;
    lbuf x, o;
    int rc = denorm(&s, latent, t, h, w, t * h * w, &x);
    if (!rc && !(rc = net(&s, &x, &o))) {
        if (o.T != hb_light_vae_decoded_frames(m, t))
            rc = hb_error("light_vae: internal error (%lld frames for %lld latents)", (long long)o.T, (long long)t);
        else deliver(&o, video, raw, true);
        buf_free(&s, &o);
    }
    state_free(&s);
    return rc;
}

/* multiply-adds x2 of one conv over T frames of H x W */
static double conv_flops(const lv_conv *c, int64_t T, int64_t H, int64_t W) {
    return 2.0 * (double)c->cout * (double)(c->cin / c->groups) * c->k * c->k * c->k * (double)(T * H * W);
}

static double res_flops(const lv_res *r, int64_t T, int64_t H, int64_t W) {
    double f = conv_flops(&r->c1.a, T, H, W) + conv_flops(&r->c2.a, T, H, W);
    if (r->c1.dw) f += conv_flops(&r->c1.p, T, H, W) + conv_flops(&r->c2.p, T, H, W);
    if (r->has_sc) f += conv_flops(&r->sc.a, T, H, W) + (r->sc.dw ? conv_flops(&r->sc.p, T, H, W) : 0.0);
    return f;
}

double hb_light_vae_decode_flops(const hb_light_vae *m, int64_t t, int64_t h, int64_t w) {
    int64_t T = t, H = h, W = w;
    double f = conv_flops(&m->conv_in, T, H, W);
    for (int i = 0; i <= m->cfg.n_up; i++) {
        const lv_block *b = &m->blk[i];
        if (b->has_entry) f += res_flops(&b->entry, T, H, W);
        if (b->has_up) f += conv_flops(&b->up, T, H, W), T = T * b->st - (b->st - 1), H *= b->ss, W *= b->ss;
        for (int j = 0; j < b->nres; j++) f += res_flops(&b->res[j], T, H, W);
    }
    int64_t C = m->cfg.widths[m->cfg.n_up];
    for (int i = 0; i < m->n2d; i++, C /= 4, H *= 2, W *= 2) f += 2.0 * (double)(C * C * 9) * (double)(T * H * W);
    return f + conv_flops(&m->conv_out, T, H, W);
}

int64_t hb_light_vae_decode_bytes(const hb_light_vae *m, int64_t t, int64_t h, int64_t w) {
    int64_t best = 0, Hs = h, Ws = w, T = t;
    for (int i = 0; i <= m->cfg.n_up; i++) {
        if (i > 0 && m->cfg.upsample[i - 1]) {
            Hs *= 2, Ws *= 2;
            if (!m->cfg.spatial_only[i - 1]) T = 2 * T - 1;
        }
        int64_t C = m->cfg.widths[i], up = i > 0 && m->cfg.upsample[i - 1] ? 8 : 1;
        int64_t b = C * (T + 4) * Hs * Ws * (4 + up); /* x, h, t, window (+ the upsampler's conv output) */
        if (b > best) best = b;
    }
    return best * (int64_t)sizeof(float);
}

/* ---------------------------------------------------------------- streaming */

struct hb_light_vae_stream {
    lstate s;
    int64_t h, w, latents_in, frames_out;
    bool clamp;
};

hb_light_vae_stream *hb_light_vae_stream_new(const hb_light_vae *m, int64_t h, int64_t w, bool clamp) {
    if (check_size(1, h, w)) return NULL;
    hb_light_vae_stream *st = hb_calloc(sizeof *st, "light_vae stream");
    if (!st) return NULL;
    if (state_init(&st->s, m)) { hb_free(st); return NULL; }
    st->s.pooled = true;
    st->h = h, st->w = w, st->clamp = clamp;
    return st;
}

/* n latents (or, finishing, none) through the network; the output frames go to video [3, cap, ...] from frame
 * *nout on (*nout advanced). */
static int stream_run(hb_light_vae_stream *st, const float *latent, int64_t n, int64_t cstride, float *video,
                      int64_t cap, int64_t *nout) {
    lbuf x, o;
    if (denorm(&st->s, latent, n, st->h, st->w, cstride, &x)) return -1;
    if (net(&st->s, &x, &o)) return -1;
    int rc = *nout + o.T > cap ? hb_error("light_vae: stream gave %lld frames, room for %lld", (long long)(*nout + o.T), (long long)cap) : 0;
    if (!rc) deliver_at(&o, video, cap, *nout, st->clamp), *nout += o.T, st->frames_out += o.T;
    buf_free(&st->s, &o);
    pool_trim(&st->s);
    return rc;
}

int hb_light_vae_stream_push(hb_light_vae_stream *st, const float *latent, int64_t n, int64_t cstride, float *video,
                             int64_t *nout) {
    if (n < 0) return hb_error("light_vae: push of %lld frames", (long long)n);
    if (cstride == 0) cstride = n * st->h * st->w;
    int64_t F = hb_light_vae_temporal_factor(st->s.m);
    st->s.last_upto = -1;
    *nout = 0;
    int64_t cap = F * n; /* the frames come out contiguous: [3, *nout, ...] */
    int rc = stream_run(st, latent, n, cstride, video, cap, nout);
    if (!rc && *nout < cap && *nout > 0) { /* repack [3, cap] -> [3, nout]: channels move down, in chunks that
                                              * never overlap the part not yet read */
        int64_t S = hb_light_vae_spatial_factor(st->s.m), HW = S * S * st->h * st->w, n1 = *nout * HW;
        for (int64_t c = 1; c < 3; c++) {
            int64_t d = c * (cap - *nout) * HW;
            for (int64_t i = 0; i < n1; i += d) hb_copy(video + c * n1 + i, video + c * cap * HW + i, n1 - i < d ? n1 - i : d);
        }
    }
    st->latents_in += n;
    return rc;
}

/* Each conv holds back pr frames at its rate r (frames per latent); in output frames that is pr F / r. */
int64_t hb_light_vae_stream_max_pending(const hb_light_vae *m) {
    int64_t F = hb_light_vae_temporal_factor(m), r = 1, lag = m->conv_in.pr * F + m->conv_out.pr;
    for (int i = 0; i <= m->cfg.n_up; i++) {
        const lv_block *b = &m->blk[i];
        int64_t lb = b->has_entry ? b->entry.c1.a.pr + b->entry.c2.a.pr : 0;
        lag += lb * F / r;
        if (b->has_up) lag += b->up.pr * F / r, r *= b->st;
        for (int j = 0; j < b->nres; j++) lag += (b->res[j].c1.a.pr + b->res[j].c2.a.pr) * F / r;
    }
    return lag + F;
}

int64_t hb_light_vae_stream_pending(const hb_light_vae_stream *st) {
    return hb_light_vae_decoded_frames(st->s.m, st->latents_in) - st->frames_out;
}

/* The convs end their clip one at a time, in execution order: each call then carries only that conv's held-back
 * frames down the network, so the finish needs no more memory than a push. */
int hb_light_vae_stream_finish(hb_light_vae_stream *st, float *video, int64_t *nout) {
    int64_t pend = hb_light_vae_stream_pending(st);
    int rc = 0;
    *nout = 0;
    for (int k = 0; k < st->s.m->nslots && !rc; k++) {
        st->s.last_upto = k;
        rc = stream_run(st, NULL, 0, 0, video, pend, nout);
    }
    if (!rc && *nout != pend)
        rc = hb_error("light_vae: stream finished with %lld frames, expected %lld", (long long)*nout, (long long)pend);
    hb_light_vae_stream_reset(st);
    return rc;
}

int hb_light_vae_stream_decode(hb_light_vae_stream *st, const float *latent, int64_t t, float *video, float *raw) {
    if (t < 1) return hb_error("light_vae: no latent frames");
    hb_light_vae_stream_reset(st);
    st->s.last_upto = st->s.m->nslots;
    lbuf x, o;
    int rc = denorm(&st->s, latent, t, st->h, st->w, t * st->h * st->w, &x);
    if (!rc && !(rc = net(&st->s, &x, &o))) {
        if (o.T != hb_light_vae_decoded_frames(st->s.m, t))
            rc = hb_error("light_vae: internal error (%lld frames for %lld latents)", (long long)o.T, (long long)t);
        else deliver(&o, video, raw, st->clamp);
        buf_free(&st->s, &o);
    }
    pool_trim(&st->s);
    hb_light_vae_stream_reset(st);
    return rc;
}

void hb_light_vae_stream_reset(hb_light_vae_stream *st) {
    const hb_light_vae *m = st->s.m;
    for (int i = 0; i < m->nslots; i++) st->s.ncache[i] = 0, st->s.started[i] = false;
    for (int i = 0; i < m->nres; i++) st->s.nqueue[i] = 0;
    for (int i = 0; i < m->nups; i++) st->s.up_out[i] = 0;
    st->s.last_upto = -1;
    st->latents_in = 0, st->frames_out = 0;
}

size_t hb_light_vae_stream_bytes(const hb_light_vae_stream *st) { return st->s.bytes; }

void hb_light_vae_stream_free(hb_light_vae_stream *st) {
    if (!st) return;
    state_free(&st->s);
    hb_free(st);
}

/* The frame-decoder interface (models/frame_decoder.h) over the stream. */
static void *fd_create(void *model, int64_t h, int64_t w, bool raw) { return hb_light_vae_stream_new(model, h, w, !raw); }

static int fd_push(void *st, const float *latent, int64_t n, float *video, int64_t *nout) {
    return hb_light_vae_stream_push(st, latent, n, 0, video, nout);
}

static int fd_finish(void *st, float *video, int64_t *nout) { return hb_light_vae_stream_finish(st, video, nout); }

static int fd_decode(void *st, const float *latent, int64_t n, float *video) {
    hb_light_vae_stream *s = st;
    return s->clamp ? hb_light_vae_stream_decode(s, latent, n, video, NULL) : hb_light_vae_stream_decode(s, latent, n, NULL, video);
}

static void fd_reset(void *st) { hb_light_vae_stream_reset(st); }
static size_t fd_bytes(const void *st) { return hb_light_vae_stream_bytes(st); }
static void fd_free(void *st) { hb_light_vae_stream_free(st); }
static int64_t fd_decode_bytes(const void *model, int64_t n, int64_t h, int64_t w) { return hb_light_vae_decode_bytes(model, n, h, w); }

static const hb_frame_decoder_ops light_fd_ops = {fd_create, fd_push,  fd_finish, fd_decode,
                                                  fd_reset,  fd_bytes, fd_free,   fd_decode_bytes};

void hb_light_vae_frame_decoder(const hb_light_vae *m, hb_frame_decoder *out) {
    *out = (hb_frame_decoder){.ops = &light_fd_ops, .model = (void *)m, .name = "light VAE",
                              .latent_channels = m->cfg.latent_channels, .temporal_factor = hb_light_vae_temporal_factor(m),
                              .spatial_factor = hb_light_vae_spatial_factor(m), .causal = m->cfg.causal,
                              .max_held = hb_light_vae_stream_max_pending(m), .tile_frames = 16, .tile_stride = 12};
}
