/* The light decoder's recorded forward and its backward (light_vae_train.h). The forward appends one node per
 * operation (conv with replicated edge frames, channel RMS norm, activation, channel LayerNorm, residual add,
 * shuffle) and keeps every value; the backward walks the nodes in reverse, adding each node's input gradients
 * into per-value buffers (a value read twice, like a resnet input, sums both) and the parameter gradients into
 * the model's flat gradient buffer. Activations and gradients live in the current memory space and are touched
 * only through ops (cpu-guard checks it); the losses are computed on host copies. Float32. */
#include "models/light_vae_train_impl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RMS_EPS 1e-8f

typedef struct {
    float *d, *g; /* value [C, T, H, W], its gradient (NULL until something flows back) */
    int64_t C, T, H, W;
    bool no_grad;
} lt_val;

typedef enum { N_CONV, N_RMS, N_ACT, N_LN, N_ADD, N_SHUF } lt_op;
/* shuffle: out[c, t ft + a - drop, y fh + b, x fw + d] = in[c F + a sa + b sb + d sd, t, y, x] */
typedef struct { int ft, fh, fw, sa, sb, sd, drop; } lt_shuf;
typedef struct {
    lt_op op;
    int x, y, out;
    const lv_conv *conv;
    hb_ew_op act;
    const hb_tensor *ln_w, *ln_b;
    lt_shuf sh;
} lt_node;

typedef struct {
    hb_lvt *m;
    lt_val *v;
    int nv;
    lt_node *n;
    int nn;
} lt_graph;

static int64_t numel(const lt_val *v) { return v->C * v->T * v->H * v->W; }

static int val_new(lt_graph *G, int64_t C, int64_t T, int64_t H, int64_t W) {
    if (G->nv % 64 == 0) {
        lt_val *p = realloc(G->v, sizeof *p * (size_t)(G->nv + 64));
        if (!p) return hb_error("light_vae train: out of memory");
        G->v = p;
    }
    lt_val *v = &G->v[G->nv];
    memset(v, 0, sizeof *v);
    v->C = C, v->T = T, v->H = H, v->W = W;
    if (!(v->d = hb_dev_alloc(sizeof(float) * (size_t)(numel(v) > 0 ? numel(v) : 1), "light_vae train activation"))) return -1;
    return G->nv++;
}

static int node_add(lt_graph *G, lt_node nd) {
    if (G->nn % 64 == 0) {
        lt_node *p = realloc(G->n, sizeof *p * (size_t)(G->nn + 64));
        if (!p) return hb_error("light_vae train: out of memory");
        G->n = p;
    }
    G->n[G->nn++] = nd;
    return nd.out;
}

static void graph_free(lt_graph *G) {
    for (int i = 0; i < G->nv; i++) hb_dev_free(G->v[i].d), hb_dev_free(G->v[i].g);
    free(G->v), free(G->n);
    memset(G, 0, sizeof *G);
}

static float *zeros(int64_t n, const char *what) {
    float *p = hb_dev_alloc(sizeof(float) * (size_t)(n > 0 ? n : 1), what);
    if (p) hb_fill(p, 0.0f, n);
    return p;
}

/* the gradient buffer of value i (zeroed on first use) */
static float *grad_of(lt_graph *G, int i) {
    lt_val *v = &G->v[i];
    if (!v->g) v->g = zeros(numel(v), "light_vae train gradient");
    return v->g;
}

static void add_into(float *dst, const float *src, int64_t n) { hb_add(dst, dst, src, n); }

/* frames [d0, d0 + n) of dst [C, Td, HW] += frames [s0, s0 + n) of src [C, Ts, HW] */
static int add_frames(float *dst, int64_t Td, int64_t d0, const float *src, int64_t Ts, int64_t s0, int64_t n, int64_t C,
                      int64_t HW) {
    float *a = hb_dev_alloc(sizeof(float) * (size_t)(C * n * HW), "frames"), *b = hb_dev_alloc(sizeof(float) * (size_t)(C * n * HW), "frames");
    if (a && b) {
        hb_copy_rows(a, n * HW, dst + d0 * HW, Td * HW, C, n * HW);
        hb_copy_rows(b, n * HW, src + s0 * HW, Ts * HW, C, n * HW);
        hb_add(a, a, b, C * n * HW);
        hb_copy_rows(dst + d0 * HW, Td * HW, a, n * HW, C, n * HW);
    }
    hb_dev_free(a), hb_dev_free(b);
    return a && b ? 0 : -1;
}

/* ---------------------------------------------------------------- forward ops */

/* x with pl copies of its first frame before and pr of its last after: [C, pl + T + pr, H, W] */
static float *time_pad(const lt_val *x, int pl, int pr) {
    int64_t HW = x->H * x->W, n = pl + x->T + pr;
    float *w = hb_dev_alloc(sizeof(float) * (size_t)(x->C * n * HW), "light_vae train window");
    if (!w) return NULL;
    for (int j = 0; j < pl; j++) hb_copy_rows(w + j * HW, n * HW, x->d, x->T * HW, x->C, HW);
    hb_copy_rows(w + pl * HW, n * HW, x->d, x->T * HW, x->C, x->T * HW);
    for (int j = 0; j < pr; j++) hb_copy_rows(w + (pl + x->T + j) * HW, n * HW, x->d + (x->T - 1) * HW, x->T * HW, x->C, HW);
    return w;
}

static hb_conv3d_params conv_params(const lv_conv *c) {
    /* f32 operands on every backend: a GPU's bf16 fast path is too coarse for gradients (docs/training.md) */
    hb_conv3d_params p = {{1, 1, 1}, {0, 0}, {c->k / 2, c->k / 2}, {c->k / 2, c->k / 2}, c->groups, HB_CONV_F32};
    return p;
}

/* the parameter gradient of weight tensor t (a view of m->w) */
static float *grad_at(const hb_lvt *m, const hb_tensor *t) { return m->g + ((const float *)t->data - m->w); }

static int f_conv(lt_graph *G, const lv_conv *c, int x) {
    if (x < 0) return -1;
    const lt_val *xv = &G->v[x];
    int64_t To = xv->T + c->pl + c->pr - c->w.shape[2] + 1; /* time kernel: 1 for a patch stage's Conv2d */
    int y = val_new(G, c->cout, To, xv->H, xv->W);
    if (y < 0) return -1;
    xv = &G->v[x];
    float *win = c->pl || c->pr ? time_pad(xv, c->pl, c->pr) : (float *)xv->d;
    if (!win) return -1;
    hb_tensor w = c->w, b = c->b;
    hb_conv3d_params p = conv_params(c);
    int rc = hb_conv3d(G->v[y].d, win, c->cin, xv->T + c->pl + c->pr, xv->H, xv->W, &w, &b, &p);
    if (win != xv->d) hb_dev_free(win);
    return rc ? -1 : node_add(G, (lt_node){.op = N_CONV, .x = x, .out = y, .conv = c});
}

static int f_rms(lt_graph *G, int x) {
    if (x < 0) return -1;
    const lt_val *xv = &G->v[x];
    int y = val_new(G, xv->C, xv->T, xv->H, xv->W);
    if (y < 0) return -1;
    xv = &G->v[x];
    hb_channel_rmsnorm(G->v[y].d, xv->d, xv->C, xv->T * xv->H * xv->W, NULL, NULL);
    return node_add(G, (lt_node){.op = N_RMS, .x = x, .out = y});
}

static int f_act(lt_graph *G, hb_ew_op act, int x) {
    if (x < 0) return -1;
    const lt_val *xv = &G->v[x];
    int y = val_new(G, xv->C, xv->T, xv->H, xv->W);
    if (y < 0) return -1;
    xv = &G->v[x];
    if (act == HB_EW_RELU) hb_elementwise(HB_EW_RELU, G->v[y].d, xv->d, NULL, 0.0f, 0.0f, numel(xv));
    else hb_silu(G->v[y].d, xv->d, numel(xv));
    return node_add(G, (lt_node){.op = N_ACT, .x = x, .out = y, .act = act});
}

/* LayerNorm over channels: positions transposed to rows, hb_layernorm, transposed back */
static int f_ln(lt_graph *G, const hb_tensor *ln_w, const hb_tensor *ln_b, int x) {
    if (x < 0) return -1;
    const lt_val *xv = &G->v[x];
    int y = val_new(G, xv->C, xv->T, xv->H, xv->W);
    if (y < 0) return -1;
    xv = &G->v[x];
    int64_t S = xv->T * xv->H * xv->W, C = xv->C;
    float *t = hb_dev_alloc(sizeof(float) * (size_t)(C * S), "light_vae train layernorm");
    if (!t) return -1;
    const int64_t shp[2] = {S, C}, rows[2] = {C, 1}, cols[2] = {1, S};
    hb_tensor w = *ln_w, b = *ln_b;
    hb_copy_nd(t, rows, xv->d, cols, 2, shp);
    hb_layernorm(t, t, S, C, &w, &b, G->m->cfg.resnet_norm_eps);
    hb_copy_nd(G->v[y].d, cols, t, rows, 2, shp);
    hb_dev_free(t);
    return node_add(G, (lt_node){.op = N_LN, .x = x, .out = y, .ln_w = ln_w, .ln_b = ln_b});
}

static int f_add(lt_graph *G, int a, int b) {
    if (a < 0 || b < 0) return -1;
    const lt_val *av = &G->v[a];
    int y = val_new(G, av->C, av->T, av->H, av->W);
    if (y < 0) return -1;
    hb_add(G->v[y].d, G->v[a].d, G->v[b].d, numel(&G->v[a]));
    return node_add(G, (lt_node){.op = N_ADD, .x = a, .y = b, .out = y});
}

/* the shuffle's copies, one per sub-index (a, b, d); back = false: in -> out, true: out -> in */
static void shuffle_copy(const lt_shuf *s, float *in, const lt_val *iv, float *out, const lt_val *ov, bool back) {
    int64_t C = ov->C, T = iv->T, HWi = iv->H * iv->W, F = (int64_t)s->ft * s->fh * s->fw;
    for (int a = 0; a < s->ft; a++)
        for (int b = 0; b < s->fh; b++)
            for (int d = 0; d < s->fw; d++) {
                int64_t t0 = a < s->drop ? 1 : 0, nt = T - t0;
                if (nt <= 0) continue;
                const int64_t shp[4] = {C, nt, iv->H, iv->W}, is[4] = {F * T * HWi, HWi, iv->W, 1},
                              os[4] = {ov->T * ov->H * ov->W, s->ft * ov->H * ov->W, s->fh * ov->W, s->fw};
                float *ip = in + ((int64_t)a * s->sa + b * s->sb + d * s->sd) * T * HWi + t0 * HWi;
                float *op = out + (t0 * s->ft + a - s->drop) * ov->H * ov->W + b * ov->W + d;
                if (back) hb_copy_nd(ip, is, op, os, 4, shp);
                else hb_copy_nd(op, os, ip, is, 4, shp);
            }
}

static int f_shuf(lt_graph *G, lt_shuf s, int x) {
    if (x < 0) return -1;
    const lt_val *xv = &G->v[x];
    int y = val_new(G, xv->C / (s.ft * s.fh * s.fw), xv->T * s.ft - s.drop, xv->H * s.fh, xv->W * s.fw);
    if (y < 0) return -1;
    shuffle_copy(&s, G->v[x].d, &G->v[x], G->v[y].d, &G->v[y], false);
    return node_add(G, (lt_node){.op = N_SHUF, .x = x, .out = y, .sh = s});
}

/* ---------------------------------------------------------------- network */

static int f_sep(lt_graph *G, const lv_sep *s, int x) {
    x = f_conv(G, &s->a, x);
    return s->dw ? f_conv(G, &s->p, x) : x;
}

static int f_res(lt_graph *G, const lv_res *r, int x) {
    int h = f_act(G, r->relu ? HB_EW_RELU : HB_EW_SILU, f_rms(G, x));
    h = f_sep(G, &r->c2, f_act(G, HB_EW_SILU, f_rms(G, f_sep(G, &r->c1, h))));
    int sc = r->has_sc ? f_sep(G, &r->sc, f_ln(G, &r->ln_w, &r->ln_b, x)) : x;
    return f_add(G, h, sc);
}

static int f_block(lt_graph *G, const lv_block *b, int x) {
    if (b->has_entry) x = f_res(G, &b->entry, x);
    if (b->has_up) { /* channel ((c s + i) s + j) s_t + st -> (c, t s_t + st, y s + i, x s + j), first s_t - 1 frames dropped */
        lt_shuf s = {b->st, b->ss, b->ss, 1, b->ss * b->st, b->st, b->st - 1};
        x = f_shuf(G, s, f_conv(G, &b->up, x));
    }
    for (int j = 0; j < b->nres; j++) x = f_res(G, &b->res[j], x);
    return x;
}

static int f_head(lt_graph *G, int i, int feat) {
    const hb_lvt_head *h = &G->m->heads[i];
    int x = f_conv(G, &G->m->net->head[i][1], f_conv(G, &G->m->net->head[i][0], feat));
    if (h->align == HB_LVT_ALIGN_S4) return f_shuf(G, (lt_shuf){1, 2, 2, 0, 2, 1, 0}, x);
    if (h->align == HB_LVT_ALIGN_ST8) return f_shuf(G, (lt_shuf){2, 2, 2, 4, 2, 1, 1}, x);
    return x;
}

/* latent -> video_raw; feats[b] = block b's output value, heads[i] = head i's aligned output */
static int f_net(lt_graph *G, const float *latent, int64_t t, int64_t h, int64_t w, int *feats, int *heads) {
    const hb_lvt *m = G->m;
    const hb_light_vae *n = m->net->dec;
    int64_t z = m->cfg.latent_channels, S = t * h * w;
    int x = val_new(G, z, t, h, w);
    if (x < 0) return -1;
    G->v[x].no_grad = true;
    hb_tensor sc = hb_tensor_1d(HB_F32, z, (void *)n->scale), mu = hb_tensor_1d(HB_F32, z, (void *)n->mean);
    hb_channel_affine(G->v[x].d, latent, z, S, &sc, &mu);
    x = f_conv(G, &n->conv_in, x);
    for (int i = 0; i <= m->cfg.n_up; i++) feats[i] = x = f_block(G, &n->blk[i], x);
    for (int i = 0; i < n->n2d; i++)
        x = f_shuf(G, (lt_shuf){1, 2, 2, 0, 2, 1, 0}, f_conv(G, &n->s2d[i], f_act(G, HB_EW_SILU, f_rms(G, x))));
    x = f_conv(G, &n->conv_out, f_act(G, HB_EW_SILU, f_rms(G, x)));
    for (int i = 0; heads && i < m->nheads && x >= 0; i++)
        if ((heads[i] = f_head(G, i, feats[m->heads[i].block])) < 0) return -1;
    return x;
}

/* ---------------------------------------------------------------- backward */

/* the input gradient of a conv node: the window gradient with its replicated frames folded back */
static int b_conv(lt_graph *G, const lt_node *nd) {
    const lv_conv *c = nd->conv;
    lt_val *xv = &G->v[nd->x];
    hb_lvt *m = G->m;
    int64_t HW = xv->H * xv->W, Tw = xv->T + c->pl + c->pr;
    float *win = c->pl || c->pr ? time_pad(xv, c->pl, c->pr) : xv->d;
    float *dwin = xv->no_grad ? NULL : hb_dev_alloc(sizeof(float) * (size_t)(c->cin * Tw * HW), "conv gradient");
    int rc = !win || (!xv->no_grad && !dwin) ? -1 : 0;
    hb_tensor w = c->w;
    hb_conv3d_params p = conv_params(c);
    if (!rc)
        rc = hb_conv3d_backward(dwin, grad_at(m, &c->w), grad_at(m, &c->b), G->v[nd->out].g, win,
                                c->cin, Tw, xv->H, xv->W, &w, &p);
    float *gx = !rc && dwin ? grad_of(G, nd->x) : NULL;
    if (dwin && !gx) rc = -1;
    if (gx && Tw == xv->T) add_into(gx, dwin, c->cin * Tw * HW);
    else if (gx) {
        int64_t T = xv->T, C = c->cin;
        rc = add_frames(gx, T, 0, dwin, Tw, c->pl, T, C, HW);
        for (int j = 0; j < c->pl && !rc; j++) rc = add_frames(gx, T, 0, dwin, Tw, j, 1, C, HW);
        for (int j = 0; j < c->pr && !rc; j++) rc = add_frames(gx, T, T - 1, dwin, Tw, c->pl + T + j, 1, C, HW);
    }
    if (win != xv->d) hb_dev_free(win);
    hb_dev_free(dwin);
    return rc;
}

static int b_node(lt_graph *G, const lt_node *nd) {
    lt_val *xv = &G->v[nd->x], *ov = &G->v[nd->out];
    const float *gy = ov->g;
    int64_t n = numel(xv), S = xv->T * xv->H * xv->W;
    if (nd->op == N_CONV) return b_conv(G, nd);
    if (nd->op == N_ADD) {
        float *ga = grad_of(G, nd->x), *gb = ga ? grad_of(G, nd->y) : NULL;
        if (!gb) return -1;
        add_into(ga, gy, n), add_into(gb, gy, n);
        return 0;
    }
    float *tmp = zeros(n, "light_vae train gradient"), *gx = grad_of(G, nd->x);
    if (!tmp || !gx) return hb_dev_free(tmp), -1;
    hb_lvt *m = G->m;
    switch (nd->op) {
    case N_RMS: hb_channel_rms_backward(tmp, gy, xv->d, xv->C, S, RMS_EPS); break;
    case N_ACT: hb_act_backward(nd->act, tmp, gy, xv->d, n); break;
    case N_LN: {
        hb_channel_layernorm_backward(tmp, grad_at(m, nd->ln_w), grad_at(m, nd->ln_b), gy, xv->d, nd->ln_w, xv->C, S,
                                      m->cfg.resnet_norm_eps);
        break;
    }
    case N_SHUF: shuffle_copy(&nd->sh, tmp, xv, (float *)gy, ov, true); break;
    default: break;
    }
    add_into(gx, tmp, n);
    hb_dev_free(tmp);
    return 0;
}

static int backward(lt_graph *G) {
    for (int i = G->nn - 1; i >= 0; i--) {
        const lt_node *nd = &G->n[i];
        if (!G->v[nd->out].g || (G->v[nd->x].no_grad && nd->op != N_CONV)) continue; /* nothing flows here */
        if (b_node(G, nd)) return -1;
        hb_dev_free(G->v[nd->out].g), G->v[nd->out].g = NULL; /* fully used: no later node adds to it */
    }
    return 0;
}

/* loss of value v against the host tensor ref (L1 or MSE), its gradient scaled by `scale` added on the device */
static int loss_of(lt_graph *G, int v, const float *ref, bool l1, float scale, double *loss) {
    int64_t n = numel(&G->v[v]);
    float *h = hb_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1), "loss"), *g = hb_calloc(sizeof(float) * (size_t)(n > 0 ? n : 1), "loss");
    float *gd = grad_of(G, v), *up = NULL;
    int rc = h && g && gd ? hb_dev_download(h, G->v[v].d, sizeof(float) * (size_t)n) : -1;
    if (!rc) {
        *loss = l1 ? hb_l1_loss(h, ref, n, g, scale) : hb_mse_loss(h, ref, n, g, scale);
        rc = (up = hb_dev_alloc(sizeof(float) * (size_t)(n > 0 ? n : 1), "loss")) ? hb_dev_upload(up, g, sizeof(float) * (size_t)n) : -1;
    }
    if (!rc) add_into(gd, up, n);
    hb_free(h), hb_free(g), hb_dev_free(up);
    return rc;
}

/* ---------------------------------------------------------------- interface */

void hb_lvt_video_shape(const hb_lvt *m, int64_t t, int64_t h, int64_t w, int64_t s[4]) {
    const int64_t S = hb_light_vae_spatial_factor(m->net->dec);
    s[0] = m->cfg.out_channels, s[1] = hb_light_vae_decoded_frames(m->net->dec, t), s[2] = S * h, s[3] = S * w;
}

void hb_lvt_feature_shape(const hb_lvt *m, int block, int64_t t, int64_t h, int64_t w, int64_t s[4]) {
    for (int i = 0; i < block && i < m->cfg.n_up; i++)
        if (m->cfg.upsample[i]) {
            if (!m->cfg.spatial_only[i]) t = 2 * t - 1;
            h *= 2, w *= 2;
        }
    s[0] = m->cfg.widths[block], s[1] = t, s[2] = h, s[3] = w;
}

void hb_lvt_head_shape(const hb_lvt *m, int head, int64_t t, int64_t h, int64_t w, int64_t s[4]) {
    const hb_lvt_head *hd = &m->heads[head];
    hb_lvt_feature_shape(m, hd->block, t, h, w, s);
    s[0] = hd->teacher_dim;
    if (hd->align != HB_LVT_ALIGN_NONE) s[2] *= 2, s[3] *= 2;
    if (hd->align == HB_LVT_ALIGN_ST8) s[1] = 2 * s[1] - 1;
}

int hb_lvt_forward(hb_lvt *m, const float *latent, int64_t t, int64_t h, int64_t w, float *video_raw) {
    lt_graph G = {.m = m};
    int feats[HB_LIGHT_VAE_MAX_UP + 1];
    int x = f_net(&G, latent, t, h, w, feats, NULL);
    if (x >= 0) hb_copy(video_raw, G.v[x].d, numel(&G.v[x]));
    graph_free(&G);
    return x < 0 ? -1 : 0;
}

int hb_lvt_train_pass(hb_lvt *m, const hb_lvt_batch *b, hb_lvt_losses *out, hb_lvt_observe_fn obs, void *user) {
    return hb_lvt_train_pass_with(m, b, NULL, out, obs, user);
}

int hb_lvt_train_pass_with(hb_lvt *m, const hb_lvt_batch *b, const hb_lvt_video_loss *extra, hb_lvt_losses *out,
                           hb_lvt_observe_fn obs, void *user) {
    lt_graph G = {.m = m};
    int feats[HB_LIGHT_VAE_MAX_UP + 1], heads[HB_LVT_MAX_HEADS];
    memset(out, 0, sizeof *out);
    int x = f_net(&G, b->latent, b->t, b->h, b->w, feats, b->w_feat != 0.0f ? heads : NULL);
    int rc = x < 0 ? -1 : 0;
    if (!rc && obs) {
        obs(user, "latent_denorm", G.v[0].d, numel(&G.v[0]));
        obs(user, "video_raw", G.v[x].d, numel(&G.v[x]));
        for (int i = 0; i < m->nheads && b->w_feat != 0.0f; i++) {
            char nm[32];
            snprintf(nm, sizeof nm, "feat.%d", i);
            obs(user, nm, G.v[feats[m->heads[i].block]].d, numel(&G.v[feats[m->heads[i].block]]));
            snprintf(nm, sizeof nm, "head.%d", i);
            obs(user, nm, G.v[heads[i]].d, numel(&G.v[heads[i]]));
        }
    }
    if (!rc) rc = loss_of(&G, x, b->target, true, b->w_rec * b->grad_scale, &out->loss_rec);
    double feat = 0.0;
    for (int i = 0; !rc && b->w_feat != 0.0f && i < m->nheads; i++) {
        rc = loss_of(&G, heads[i], b->teacher[i], false, b->w_feat * b->grad_scale, &out->loss_feat[i]);
        feat += out->loss_feat[i];
    }
    if (!rc && extra) {
        const lt_val *v = &G.v[x];
        int64_t shape[4] = {v->C, v->T, v->H, v->W};
        float *g = grad_of(&G, x);
        rc = g ? extra->fn(extra->user, v->d, g, shape, extra->weight * b->grad_scale, &out->loss_video) : -1;
    }
    out->loss = (double)b->w_rec * out->loss_rec + (double)b->w_feat * feat + (extra ? extra->weight * out->loss_video : 0.0);
    if (!rc) rc = backward(&G);
    graph_free(&G);
    return rc;
}
