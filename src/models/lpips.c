/* LPIPS (models/lpips.h): the backbone as a table of convs (name, kernel, stride, padding, max pool before it,
 * tap after it), run with the ops; the gradient walks the table back: lin + normalisation (hb_lpips_distance),
 * ReLU (hb_act_backward), conv data gradient (hb_conv3d of the stride-dilated dy with the flipped kernel), max
 * pool (hb_maxpool2d_backward), scaling layer (hb_channel_affine). */
#include "models/lpips.h"
#include "io/checkpoint.h"
#include "ops/ops.h"
#include <stdio.h>
#include <string.h>

#define LP_TAPS 5
#define LP_MAX_CONV 13

typedef struct {
    const char *name; /* state_dict prefix */
    int k, stride, pad, pool_k, pool_s; /* pool_k 0: no max pool before the conv */
    int tap;          /* -1 or the tap index after this conv's ReLU */
} lp_spec;

/* lpips.pretrained_networks.alexnet: torchvision alexnet().features split at relu1..relu5 */
static const lp_spec k_alex[] = {{"net.slice1.0", 11, 4, 2, 0, 0, 0}, {"net.slice2.3", 5, 1, 2, 3, 2, 1},
                                 {"net.slice3.6", 3, 1, 1, 3, 2, 2},  {"net.slice4.8", 3, 1, 1, 0, 0, 3},
                                 {"net.slice5.10", 3, 1, 1, 0, 0, 4}};
/* lpips.pretrained_networks.vgg16: torchvision vgg16().features split at relu1_2, 2_2, 3_3, 4_3, 5_3 */
static const lp_spec k_vgg[] = {
    {"net.slice1.0", 3, 1, 1, 0, 0, -1},  {"net.slice1.2", 3, 1, 1, 0, 0, 0},   {"net.slice2.5", 3, 1, 1, 2, 2, -1},
    {"net.slice2.7", 3, 1, 1, 0, 0, 1},   {"net.slice3.10", 3, 1, 1, 2, 2, -1}, {"net.slice3.12", 3, 1, 1, 0, 0, -1},
    {"net.slice3.14", 3, 1, 1, 0, 0, 2},  {"net.slice4.17", 3, 1, 1, 2, 2, -1}, {"net.slice4.19", 3, 1, 1, 0, 0, -1},
    {"net.slice4.21", 3, 1, 1, 0, 0, 3},  {"net.slice5.24", 3, 1, 1, 2, 2, -1}, {"net.slice5.26", 3, 1, 1, 0, 0, -1},
    {"net.slice5.28", 3, 1, 1, 0, 0, 4}};

typedef struct {
    lp_spec sp;
    int64_t cin, cout;
    hb_tensor w, b, wflip; /* [cout, cin, 1, k, k], [cout], the data-gradient kernel [cin, cout, 1, k, k] */
} lp_conv;

struct hb_lpips {
    hb_lpips_net net;
    int nconv;
    lp_conv conv[LP_MAX_CONV];
    hb_tensor lin[LP_TAPS];         /* [C_tap] */
    hb_tensor inv_scale, shift_term; /* x' = x * inv_scale + shift_term = (x - shift) / scale */
    float *buf[4 * LP_MAX_CONV + 8]; /* owned f32 host copies */
    size_t buf_n[4 * LP_MAX_CONV + 8];
    int nbuf;
};

static float *own(hb_lpips *l, int64_t n) {
    float *p = hb_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1), "lpips weights");
    if (p) l->buf[l->nbuf] = p, l->buf_n[l->nbuf++] = sizeof(float) * (size_t)n;
    return p;
}

/* tensor `name` with the given shape (-1: any) as an owned f32 copy; one message naming file and tensor */
static int get_f32(hb_lpips *l, const hb_checkpoint *ck, const char *name, int ndim, const int64_t *shape, hb_tensor *out) {
    hb_tensor t;
    if (!hb_checkpoint_has(ck, name))
        return hb_error("%s: LPIPS tensor %s is missing", hb_checkpoint_path(ck), name);
    if (hb_checkpoint_get_shaped(ck, name, ndim, shape, &t)) return -1;
    if (hb_dtype_is_quant(t.dtype)) return hb_error("%s: LPIPS tensor %s: a float tensor is needed", hb_checkpoint_path(ck), name);
    int64_t n = hb_tensor_numel(&t);
    float *d = own(l, n);
    if (!d) return -1;
    hb_convert_to_f32(d, t.data, t.dtype, (size_t)n);
    *out = hb_tensor_make(HB_F32, t.ndim, t.shape, d);
    return 0;
}

static int load_conv(hb_lpips *l, const hb_checkpoint *ck, lp_conv *c, int64_t cin) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s.weight", c->sp.name);
    int64_t ws[4] = {-1, cin, c->sp.k, c->sp.k};
    if (get_f32(l, ck, nm, 4, ws, &c->w)) return -1;
    c->cin = cin, c->cout = c->w.shape[0];
    int64_t bs[1] = {c->cout}, k = c->sp.k, w5[5] = {c->cout, cin, 1, k, k}, f5[5] = {cin, c->cout, 1, k, k};
    snprintf(nm, sizeof nm, "%s.bias", c->sp.name);
    if (get_f32(l, ck, nm, 1, bs, &c->b)) return -1;
    float *f = own(l, cin * c->cout * k * k), *w = c->w.data;
    if (!f) return -1;
    for (int64_t o = 0; o < c->cout; o++) /* flipped in both axes, in and out channels swapped */
        for (int64_t i = 0; i < cin; i++)
            for (int64_t t = 0; t < k * k; t++) f[(i * c->cout + o) * k * k + (k * k - 1 - t)] = w[(o * cin + i) * k * k + t];
    c->w = hb_tensor_make(HB_F32, 5, w5, w), c->wflip = hb_tensor_make(HB_F32, 5, f5, f);
    return 0;
}

static int load_lin(hb_lpips *l, const hb_checkpoint *ck, int i, int64_t C) {
    char nm[64], alt[64];
    snprintf(nm, sizeof nm, "lin%d.model.1.weight", i);
    snprintf(alt, sizeof alt, "lin%d.model.0.weight", i); /* a model built without dropout */
    if (!hb_checkpoint_has(ck, nm) && hb_checkpoint_has(ck, alt)) memcpy(nm, alt, sizeof nm);
    int64_t s[4] = {1, C, 1, 1};
    if (get_f32(l, ck, nm, 4, s, &l->lin[i])) return -1;
    l->lin[i] = hb_tensor_1d(HB_F32, C, l->lin[i].data);
    return 0;
}

static int load_scaling(hb_lpips *l, const hb_checkpoint *ck) {
    int64_t s[4] = {1, 3, 1, 1};
    hb_tensor sh, sc;
    float *inv = own(l, 3), *add = own(l, 3);
    if (!inv || !add || get_f32(l, ck, "scaling_layer.shift", 4, s, &sh) || get_f32(l, ck, "scaling_layer.scale", 4, s, &sc))
        return -1;
    for (int c = 0; c < 3; c++) {
        float a = ((float *)sh.data)[c], b = ((float *)sc.data)[c];
        if (!(b != 0.0f)) return hb_error("%s: LPIPS tensor scaling_layer.scale has a zero", hb_checkpoint_path(ck));
        inv[c] = 1.0f / b, add[c] = -a / b;
    }
    l->inv_scale = hb_tensor_1d(HB_F32, 3, inv), l->shift_term = hb_tensor_1d(HB_F32, 3, add);
    return 0;
}

static int load_all(hb_lpips *l, const hb_checkpoint *ck) {
    const char *file = hb_checkpoint_path(ck);
    if (hb_checkpoint_has(ck, "net.slice2.3.weight")) l->net = HB_LPIPS_ALEX, l->nconv = 5;
    else if (hb_checkpoint_has(ck, "net.slice2.5.weight")) l->net = HB_LPIPS_VGG, l->nconv = 13;
    else return hb_error("%s: not an LPIPS AlexNet or VGG16 state_dict (no net.slice2.3.weight or net.slice2.5.weight)", file);
    const lp_spec *spec = l->net == HB_LPIPS_ALEX ? k_alex : k_vgg;
    if (load_scaling(l, ck)) return -1;
    int64_t cin = 3;
    for (int i = 0; i < l->nconv; i++) {
        l->conv[i].sp = spec[i];
        if (load_conv(l, ck, &l->conv[i], cin)) return -1;
        cin = l->conv[i].cout;
        if (spec[i].tap >= 0 && load_lin(l, ck, spec[i].tap, cin)) return -1;
    }
    return 0;
}

hb_lpips *hb_lpips_load(const char *path) {
    hb_checkpoint *ck = hb_checkpoint_open(path);
    if (!ck) return NULL;
    hb_lpips *l = hb_calloc(sizeof *l, "lpips");
    int rc = l ? load_all(l, ck) : -1;
    hb_checkpoint_close(ck);
    if (rc) { hb_lpips_free(l); return NULL; }
    return l;
}

void hb_lpips_free(hb_lpips *l) {
    if (!l) return;
    for (int i = 0; i < l->nbuf; i++) hb_host_memory_released(l->buf[i], l->buf_n[i]), hb_free(l->buf[i]);
    hb_free(l);
}

hb_lpips_net hb_lpips_backbone(const hb_lpips *l) { return l->net; }

int64_t hb_lpips_tap_channels(const hb_lpips *l, int i) {
    for (int c = 0; c < l->nconv; c++)
        if (l->conv[c].sp.tap == i) return l->conv[c].cout;
    return 0;
}

/* ---------------------------------------------------------------- sizes */

/* the input size of conv i (after its pool) and its output size, for a side of n; false when a stage is empty */
static bool side_sizes(const hb_lpips *l, int64_t n, int64_t *in, int64_t *out) {
    for (int i = 0; i < l->nconv; i++) {
        const lp_spec *s = &l->conv[i].sp;
        if (s->pool_k) {
            if (n < s->pool_k) return false;
            n = (n - s->pool_k) / s->pool_s + 1;
        }
        if (in) in[i] = n;
        if (n + 2 * s->pad < s->k) return false;
        n = (n + 2 * s->pad - s->k) / s->stride + 1;
        if (out) out[i] = n;
    }
    return true;
}

int64_t hb_lpips_min_size(const hb_lpips *l) {
    int64_t n = 1;
    while (!side_sizes(l, n, NULL, NULL)) n++;
    return n;
}

/* ---------------------------------------------------------------- forward and backward */

typedef struct {
    float *r[LP_MAX_CONV];                      /* conv i's ReLU output [cout, oh, ow] */
    int64_t ih[LP_MAX_CONV], iw[LP_MAX_CONV];   /* conv i's input size (after its pool) */
    int64_t oh[LP_MAX_CONV], ow[LP_MAX_CONV];
} lp_acts;

static void acts_free(lp_acts *A) {
    for (int i = 0; i < LP_MAX_CONV; i++) hb_dev_free(A->r[i]), A->r[i] = NULL;
}

static float *dev_floats(int64_t n, const char *what) { return hb_dev_alloc(sizeof(float) * (size_t)(n > 0 ? n : 1), what); }

/* frame x [3, H, W] -> every ReLU output (kept for the backward) */
static int forward(const hb_lpips *l, const float *x, int64_t H, int64_t W, lp_acts *A) {
    memset(A, 0, sizeof *A);
    if (!side_sizes(l, H, A->ih, A->oh) || !side_sizes(l, W, A->iw, A->ow))
        return hb_error("LPIPS: a %lldx%lld frame is smaller than the %s network takes (%lld pixels a side)", (long long)H,
                        (long long)W, l->net == HB_LPIPS_ALEX ? "AlexNet" : "VGG16", (long long)hb_lpips_min_size(l));
    float *xs = dev_floats(3 * H * W, "lpips input");
    if (!xs) return -1;
    hb_channel_affine(xs, x, 3, H * W, &l->inv_scale, &l->shift_term);
    const float *in = xs;
    float *pooled = NULL;
    int rc = 0;
    for (int i = 0; i < l->nconv && !rc; i++) {
        const lp_conv *c = &l->conv[i];
        if (c->sp.pool_k) {
            if (!(pooled = dev_floats(c->cin * A->ih[i] * A->iw[i], "lpips pool"))) { rc = -1; break; }
            hb_maxpool2d(pooled, A->r[i - 1], c->cin, A->oh[i - 1], A->ow[i - 1], c->sp.pool_k, c->sp.pool_s);
            in = pooled;
        }
        int64_t n = c->cout * A->oh[i] * A->ow[i];
        /* f32 operands: the input gradient of a training loss (a GPU's bf16 fast path is too coarse) */
        hb_conv3d_params p = {{1, c->sp.stride, c->sp.stride}, {0, 0}, {c->sp.pad, c->sp.pad}, {c->sp.pad, c->sp.pad}, 1, HB_CONV_F32};
        if (!(A->r[i] = dev_floats(n, "lpips activation"))) rc = -1;
        if (!rc) rc = hb_conv3d(A->r[i], in, c->cin, 1, A->ih[i], A->iw[i], &c->w, &c->b, &p);
        if (!rc) hb_elementwise(HB_EW_RELU, A->r[i], A->r[i], NULL, 0.0f, 0.0f, n);
        hb_dev_free(pooled), pooled = NULL;
        if (i == 0) hb_dev_free(xs), xs = NULL;
        in = A->r[i];
    }
    hb_dev_free(xs);
    if (rc) acts_free(A);
    return rc;
}

/* dx [cin, ih, iw] = the data gradient of conv i for dy [cout, oh, ow]: dy dilated by the stride (zeros between),
 * convolved at stride 1 with the flipped kernel, padded k - 1 - pad (plus the rows the forward's floor dropped) */
static int conv_data_grad(const lp_conv *c, const lp_acts *A, int i, const float *dy, float *dx) {
    int s = c->sp.stride, k = c->sp.k, p = c->sp.pad;
    int64_t Hd = (A->oh[i] - 1) * s + 1, Wd = (A->ow[i] - 1) * s + 1;
    int rh = (int)((A->ih[i] + 2 * p - k) % s), rw = (int)((A->iw[i] + 2 * p - k) % s);
    float *dil = NULL;
    if (s > 1) {
        if (!(dil = dev_floats(c->cout * Hd * Wd, "lpips dilated gradient"))) return -1;
        hb_fill(dil, 0.0f, c->cout * Hd * Wd);
        int64_t shp[3] = {c->cout, A->oh[i], A->ow[i]}, ss[3] = {A->oh[i] * A->ow[i], A->ow[i], 1}, ds[3] = {Hd * Wd, s * Wd, s};
        hb_copy_nd(dil, ds, dy, ss, 3, shp);
    }
    hb_conv3d_params q = {{1, 1, 1}, {0, 0}, {k - 1 - p, k - 1 - p + rh}, {k - 1 - p, k - 1 - p + rw}, 1, HB_CONV_F32};
    int rc = hb_conv3d(dx, dil ? dil : dy, c->cout, 1, Hd, Wd, &c->wflip, NULL, &q);
    hb_dev_free(dil);
    return rc;
}

/* gtap[i] (the tap gradient after conv i, or NULL; taken over) back to dx [3, H, W] */
static int backward(const hb_lpips *l, lp_acts *A, float **gtap, float *dx) {
    float *g = NULL;
    int rc = 0;
    for (int i = l->nconv - 1; i >= 0 && !rc; i--) {
        const lp_conv *c = &l->conv[i];
        int64_t n = c->cout * A->oh[i] * A->ow[i];
        if (gtap[i] && g) hb_add(g, g, gtap[i], n), hb_dev_free(gtap[i]);
        else if (gtap[i]) g = gtap[i];
        gtap[i] = NULL;
        if (!g) continue; /* nothing flows here yet (no tap at or after this conv) */
        hb_act_backward(HB_EW_RELU, g, g, A->r[i], n);
        float *gin = i == 0 ? dev_floats(3 * A->ih[0] * A->iw[0], "lpips gradient") : dev_floats(c->cin * A->ih[i] * A->iw[i], "lpips gradient");
        rc = gin ? conv_data_grad(c, A, i, g, gin) : -1;
        hb_dev_free(g), g = gin;
        if (!rc && c->sp.pool_k) {
            float *gp = dev_floats(c->cin * A->oh[i - 1] * A->ow[i - 1], "lpips pool gradient");
            if (gp) hb_maxpool2d_backward(gp, g, A->r[i - 1], c->cin, A->oh[i - 1], A->ow[i - 1], c->sp.pool_k, c->sp.pool_s);
            else rc = -1;
            hb_dev_free(g), g = gp;
        }
    }
    if (!rc && g) hb_channel_affine(dx, g, 3, A->ih[0] * A->iw[0], &l->inv_scale, NULL); /* through the scaling layer */
    else if (!rc) hb_fill(dx, 0.0f, 3 * A->ih[0] * A->iw[0]);
    hb_dev_free(g);
    return rc;
}

int hb_lpips_frame(hb_lpips *l, const float *a, const float *b, int64_t H, int64_t W, float *da, float grad_scale,
                   double *dist, double *taps) {
    lp_acts A, B;
    float *gtap[LP_MAX_CONV] = {0}, *acc = hb_dev_calloc_f32(LP_TAPS, "lpips sums"), sums[LP_TAPS];
    int64_t S[LP_TAPS] = {0};
    int rc = acc ? forward(l, a, H, W, &A) : -1;
    if (!rc && (rc = forward(l, b, H, W, &B))) acts_free(&A);
    if (rc) { hb_dev_free(acc); return -1; }
    for (int i = 0; i < l->nconv && !rc; i++) {
        int t = l->conv[i].sp.tap;
        if (t < 0) continue;
        int64_t C = l->conv[i].cout;
        S[t] = A.oh[i] * A.ow[i];
        float *d = dev_floats(S[t], "lpips distance map");
        if (da && !(gtap[i] = dev_floats(C * S[t], "lpips tap gradient"))) rc = -1;
        if (d && !rc) {
            hb_lpips_distance(d, gtap[i], A.r[i], B.r[i], &l->lin[t], C, S[t], grad_scale / (float)S[t]);
            hb_channel_sum(acc + t, d, 1, S[t]);
        } else rc = -1;
        hb_dev_free(d);
    }
    acts_free(&B);
    if (!rc) rc = hb_dev_download(sums, acc, sizeof sums);
    if (!rc) rc = hb_backend_sync();
    *dist = 0;
    for (int t = 0; t < LP_TAPS && !rc; t++) {
        *dist += (double)sums[t] / (double)S[t];
        if (taps) taps[t] = (double)sums[t] / (double)S[t];
    }
    if (!rc && da) rc = backward(l, &A, gtap, da);
    for (int i = 0; i < LP_MAX_CONV; i++) hb_dev_free(gtap[i]);
    acts_free(&A);
    hb_dev_free(acc);
    return rc ? rc : hb_backend_sync();
}

int hb_lpips_video(hb_lpips *l, const float *a, const float *b, int64_t T, int64_t H, int64_t W, float *grad,
                   float grad_scale, double *mean) {
    int64_t HW = H * W, shp[2] = {3, HW}, fs[2] = {HW, 1}, vs[2] = {T * HW, 1};
    float *fa = dev_floats(3 * HW, "lpips frame"), *fb = dev_floats(3 * HW, "lpips frame");
    float *ga = grad ? dev_floats(3 * HW, "lpips frame gradient") : NULL, *gv = grad ? dev_floats(3 * HW, "lpips frame gradient") : NULL;
    int rc = fa && fb && (!grad || (ga && gv)) ? 0 : -1;
    *mean = 0;
    for (int64_t t = 0; t < T && !rc; t++) {
        double d = 0;
        hb_copy_nd(fa, fs, a + t * HW, vs, 2, shp);
        hb_copy_nd(fb, fs, b + t * HW, vs, 2, shp);
        rc = hb_lpips_frame(l, fa, fb, H, W, ga, grad_scale / (float)T, &d, NULL);
        *mean += d / (double)T;
        if (!rc && grad) { /* the video's frame t += the frame's gradient */
            hb_copy_nd(gv, fs, grad + t * HW, vs, 2, shp);
            hb_add(gv, gv, ga, 3 * HW);
            hb_copy_nd(grad + t * HW, vs, gv, fs, 2, shp);
        }
    }
    hb_dev_free(fa), hb_dev_free(fb), hb_dev_free(ga), hb_dev_free(gv);
    return rc ? rc : hb_backend_sync();
}
