/* TAEHV (models/tae): golden files through the C API; an independent naive float64 re-statement of the
 * reference graph on random models (both patch sizes, odd sizes and frame counts); streaming == whole clip
 * bit for bit (also fed from a [C, T, h, w] tensor); reset; thread-count determinism; the TGrow row
 * truncation; clear errors on missing / mis-shaped weights and bad sizes; every path (whole clip + raw,
 * streaming, the frame-callback decoder fed from a [C, T, h, w] tensor with a reset, the unfused upsampling,
 * whole and streaming encode) under the cpu-guard backend (activations reachable only through ops) == the
 * plain CPU bits, both patch sizes. */
#include "testlib.h"
#include "io/checkpoint.h"
#include "models/tae.h"
#include "ops/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------- a random TAEHV state dict, described layer by layer (the reference nn.Sequential) ---------- */

typedef enum { N_CLAMP, N_CONV, N_RELU, N_MEM, N_UP, N_TGROW, N_TPOOL } nkind;
typedef struct {
    nkind k;
    int cin, cout, stride; /* CONV: spatial stride; TGROW/TPOOL: time stride; UP: factor */
    float *w, *b, *w2, *b2, *w4, *b4;
} nlayer;
typedef struct { nlayer L[24]; int n; } nseq;

#define MAXT 256
typedef struct {
    int n;
    char *names[MAXT];
    hb_tensor t[MAXT];
} sdict;

static float *add_t(sdict *d, hb_rng *r, const char *name, int ndim, const int64_t *shape, float std) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *x = malloc((size_t)n * sizeof(float));
    tl_fill_normal(r, x, n, std);
    d->names[d->n] = strdup(name);
    d->t[d->n] = hb_tensor_make(HB_F32, ndim, shape, x);
    d->n++;
    return x;
}

static void sdict_free(sdict *d) {
    for (int i = 0; i < d->n; i++) free(d->names[i]), free(d->t[i].data);
    d->n = 0;
}

static void add_conv(sdict *d, hb_rng *r, const char *pre, int co, int ci, int k, bool bias, float **w, float **b) {
    char nm[96];
    int64_t s[4] = {co, ci, k, k};
    snprintf(nm, sizeof nm, "%s.weight", pre);
    *w = add_t(d, r, nm, 4, s, 1.2f / sqrtf((float)(ci * k * k)));
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias", pre);
        *b = add_t(d, r, nm, 1, s, 0.05f);
    } else if (b) *b = NULL;
}

static void push_layer(nseq *q, sdict *d, hb_rng *r, const char *part, nkind k, int cin, int cout, int stride, bool bias) {
    nlayer *l = &q->L[q->n];
    char pre[64], p2[80];
    memset(l, 0, sizeof *l);
    l->k = k, l->cin = cin, l->cout = cout, l->stride = stride;
    snprintf(pre, sizeof pre, "%s.%d", part, q->n);
    switch (k) {
    case N_CONV: add_conv(d, r, pre, cout, cin, 3, bias, &l->w, &l->b); break;
    case N_MEM:
        snprintf(p2, sizeof p2, "%s.conv.0", pre); add_conv(d, r, p2, cout, 2 * cin, 3, true, &l->w, &l->b);
        snprintf(p2, sizeof p2, "%s.conv.2", pre); add_conv(d, r, p2, cout, cout, 3, true, &l->w2, &l->b2);
        snprintf(p2, sizeof p2, "%s.conv.4", pre); add_conv(d, r, p2, cout, cout, 3, true, &l->w4, &l->b4);
        break;
    case N_TGROW: snprintf(p2, sizeof p2, "%s.conv", pre); add_conv(d, r, p2, cin * stride, cin, 1, false, &l->w, NULL); break;
    case N_TPOOL: snprintf(p2, sizeof p2, "%s.conv", pre); add_conv(d, r, p2, cin, cin * stride, 1, false, &l->w, NULL); break;
    default: break;
    }
    q->n++;
}

static void make_decoder(nseq *q, sdict *d, hb_rng *r, int P, int C, const int nf[4], const int tst[3],
                         const int sup[3]) {
    q->n = 0;
    push_layer(q, d, r, "decoder", N_CLAMP, C, C, 0, false);
    push_layer(q, d, r, "decoder", N_CONV, C, nf[0], 1, true);
    push_layer(q, d, r, "decoder", N_RELU, nf[0], nf[0], 0, false);
    for (int s = 0; s < 3; s++) {
        for (int j = 0; j < 3; j++) push_layer(q, d, r, "decoder", N_MEM, nf[s], nf[s], 0, false);
        push_layer(q, d, r, "decoder", N_UP, nf[s], nf[s], sup[s], false);
        push_layer(q, d, r, "decoder", N_TGROW, nf[s], nf[s], tst[s], false);
        push_layer(q, d, r, "decoder", N_CONV, nf[s], nf[s + 1], 1, false);
    }
    push_layer(q, d, r, "decoder", N_RELU, nf[3], nf[3], 0, false);
    push_layer(q, d, r, "decoder", N_CONV, nf[3], 3 * P * P, 1, true);
    nlayer *l = &q->L[q->n - 1]; /* scaled down (as the golden files do) so frames mostly stay inside [0, 1] */
    for (int i = 0; i < l->cout * l->cin * 9; i++) l->w[i] *= 0.08f;
    for (int i = 0; i < l->cout; i++) l->b[i] += 0.5f;
}

static void make_encoder(nseq *q, sdict *d, hb_rng *r, int P, int C, int E) {
    static const int tst[3] = {2, 2, 1};
    q->n = 0;
    push_layer(q, d, r, "encoder", N_CONV, 3 * P * P, E, 1, true);
    push_layer(q, d, r, "encoder", N_RELU, E, E, 0, false);
    for (int s = 0; s < 3; s++) {
        push_layer(q, d, r, "encoder", N_TPOOL, E, E, tst[s], false);
        push_layer(q, d, r, "encoder", N_CONV, E, E, 2, false);
        for (int j = 0; j < 3; j++) push_layer(q, d, r, "encoder", N_MEM, E, E, 0, false);
    }
    push_layer(q, d, r, "encoder", N_CONV, E, C, 1, true);
}

/* ---------- naive float64 forward of the reference's parallel path ---------- */

typedef struct { double *x; int T, C, H, W; } clip;

static double *at(clip *c, int t) { return c->x + (size_t)t * c->C * c->H * c->W; }

static void nconv(double *y, const double *x, int ci, int H, int W, int co, int k, int s, const float *w, const float *b,
                  int *Ho, int *Wo) {
    int p = k / 2, ho = (H + 2 * p - k) / s + 1, wo = (W + 2 * p - k) / s + 1;
    for (int o = 0; o < co; o++)
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                double acc = b ? b[o] : 0.0;
                for (int c = 0; c < ci; c++)
                    for (int u = 0; u < k; u++)
                        for (int v = 0; v < k; v++) {
                            int yy = i * s - p + u, xx = j * s - p + v;
                            if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                            acc += (double)w[((o * ci + c) * k + u) * k + v] * x[((size_t)c * H + yy) * W + xx];
                        }
                y[((size_t)o * ho + i) * wo + j] = acc;
            }
    *Ho = ho, *Wo = wo;
}

static void nrun(const nseq *q, clip *c) {
    for (int li = 0; li < q->n; li++) {
        const nlayer *l = &q->L[li];
        int T = c->T, C = c->C, H = c->H, W = c->W, hw = H * W;
        size_t fn = (size_t)C * hw;
        clip o = *c;
        switch (l->k) {
        case N_CLAMP: for (size_t i = 0; i < T * fn; i++) c->x[i] = tanh(c->x[i] / 3) * 3; continue;
        case N_RELU: for (size_t i = 0; i < T * fn; i++) c->x[i] = c->x[i] > 0 ? c->x[i] : 0; continue;
        case N_CONV: {
            int ho = (H + 2 - 3) / l->stride + 1, wo = (W + 2 - 3) / l->stride + 1;
            o.C = l->cout, o.H = ho, o.W = wo;
            o.x = malloc((size_t)T * o.C * ho * wo * sizeof(double));
            for (int t = 0; t < T; t++) nconv(at(&o, t), at(c, t), C, H, W, l->cout, 3, l->stride, l->w, l->b, &ho, &wo);
            break;
        }
        case N_MEM: {
            o.x = malloc(T * fn * sizeof(double));
            double *cat = malloc(2 * fn * sizeof(double)), *a = malloc(fn * sizeof(double)), *b2 = malloc(fn * sizeof(double));
            int ho, wo;
            for (int t = 0; t < T; t++) {
                memcpy(cat, at(c, t), fn * sizeof(double));
                if (t) memcpy(cat + fn, at(c, t - 1), fn * sizeof(double));
                else memset(cat + fn, 0, fn * sizeof(double));
                nconv(a, cat, 2 * C, H, W, C, 3, 1, l->w, l->b, &ho, &wo);
                for (size_t i = 0; i < fn; i++) a[i] = a[i] > 0 ? a[i] : 0;
                nconv(b2, a, C, H, W, C, 3, 1, l->w2, l->b2, &ho, &wo);
                for (size_t i = 0; i < fn; i++) b2[i] = b2[i] > 0 ? b2[i] : 0;
                nconv(at(&o, t), b2, C, H, W, C, 3, 1, l->w4, l->b4, &ho, &wo);
                double *y = at(&o, t), *x = at(c, t);
                for (size_t i = 0; i < fn; i++) y[i] = y[i] + x[i] > 0 ? y[i] + x[i] : 0;
            }
            free(cat), free(a), free(b2);
            break;
        }
        case N_UP: {
            int f = l->stride;
            o.H = H * f, o.W = W * f;
            o.x = malloc(T * fn * f * f * sizeof(double));
            for (int t = 0; t < T; t++)
                for (int ch = 0; ch < C; ch++)
                    for (int i = 0; i < o.H; i++)
                        for (int j = 0; j < o.W; j++)
                            at(&o, t)[((size_t)ch * o.H + i) * o.W + j] = at(c, t)[((size_t)ch * H + i / f) * W + j / f];
            break;
        }
        case N_TGROW: {
            int s = l->stride, ho, wo;
            o.T = T * s;
            o.x = malloc((size_t)o.T * fn * sizeof(double));
            for (int t = 0; t < T; t++) nconv(at(&o, t * s), at(c, t), C, H, W, C * s, 1, 1, l->w, NULL, &ho, &wo);
            break; /* [s*C] channels of one input frame = s consecutive output frames */
        }
        case N_TPOOL: {
            int s = l->stride, ho, wo;
            o.T = T / s;
            o.x = malloc((size_t)o.T * fn * sizeof(double));
            for (int t = 0; t < o.T; t++) nconv(at(&o, t), at(c, t * s), C * s, H, W, C, 1, 1, l->w, NULL, &ho, &wo);
            break;
        }
        }
        free(c->x);
        *c = o;
    }
}

/* Decode [T, C, h, w] -> video [4T-3, 3, H, W] (torch pixel_shuffle, clamp, trim 3). Returns frame count. */
static int naive_decode(const nseq *q, const float *lat, int T, int C, int h, int w, int P, double **video,
                        double **raw) {
    clip c = {malloc((size_t)T * C * h * w * sizeof(double)), T, C, h, w};
    for (size_t i = 0; i < (size_t)T * C * h * w; i++) c.x[i] = lat[i];
    nrun(q, &c);
    size_t nraw = (size_t)c.T * c.C * c.H * c.W;
    *raw = malloc(nraw * sizeof(double));
    memcpy(*raw, c.x, nraw * sizeof(double));
    int trim = c.T / T - 1, To = c.T - trim, H = c.H * P, W = c.W * P;
    double *v = malloc((size_t)To * 3 * H * W * sizeof(double));
    for (int t = 0; t < To; t++)
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int src = ch * P * P + (y % P) * P + (x % P);
                    double val = at(&c, t + trim)[((size_t)src * c.H + y / P) * c.W + x / P];
                    v[(((size_t)t * 3 + ch) * H + y) * W + x] = val < 0 ? 0 : val > 1 ? 1 : val;
                }
    free(c.x);
    *video = v;
    return To;
}

/* Encode [T, 3, H, W] -> latent (pixel_unshuffle, pad T to 4 with the last frame). Returns latent count. */
static int naive_encode(const nseq *q, const float *vid, int T, int H, int W, int P, double **lat) {
    int Tp = (T + 3) / 4 * 4, h = H / P, w = W / P;
    clip c = {malloc((size_t)Tp * 3 * H * W * sizeof(double)), Tp, 3 * P * P, h, w};
    for (int t = 0; t < Tp; t++) {
        const float *src = vid + (size_t)(t < T ? t : T - 1) * 3 * H * W;
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    at(&c, t)[((size_t)(ch * P * P + (y % P) * P + x % P) * h + y / P) * w + x / P] =
                        src[((size_t)ch * H + y) * W + x];
    }
    nrun(q, &c);
    *lat = c.x;
    return c.T;
}

static double rel_err_d(const float *ours, const double *ref, int64_t n) {
    double md = 0, mr = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(ours[i] - ref[i]);
        if (!(d <= md)) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

/* ---------- helpers ---------- */

typedef struct { sdict d; nseq enc, dec; char path[512]; hb_checkpoint *ck; hb_tae *m; int P, C; } rmodel;

static int rm_count;

static int write_open(rmodel *rm, const char *tag) {
    snprintf(rm->path, sizeof rm->path, "%s/%s_%d.safetensors", tl_tmpdir(), tag, rm_count++);
    if (hb_safetensors_write(rm->path, rm->d.n, (const char *const *)rm->d.names, rm->d.t, NULL)) return -1;
    rm->ck = hb_checkpoint_open(rm->path);
    return rm->ck ? 0 : -1;
}

static bool rm_make(rmodel *rm, hb_rng *r, int P, int C, int E, const int nf[4]) {
    static const int tst[3] = {1, 2, 2}, sup[3] = {2, 2, 2};
    memset(rm, 0, sizeof *rm);
    rm->P = P, rm->C = C;
    make_encoder(&rm->enc, &rm->d, r, P, C, E);
    make_decoder(&rm->dec, &rm->d, r, P, C, nf, tst, sup);
    if (write_open(rm, "rand")) { fprintf(stderr, "%s\n", hb_last_error()); return false; }
    rm->m = hb_tae_load(rm->ck, NULL, HB_TAE_ENCODER | HB_TAE_DECODER);
    if (!rm->m) fprintf(stderr, "%s\n", hb_last_error());
    return rm->m != NULL;
}

static void rm_free(rmodel *rm) {
    hb_tae_free(rm->m);
    hb_checkpoint_close(rm->ck);
    sdict_free(&rm->d);
}

/* ---------- tests ---------- */

static float *tensor_f32(hb_checkpoint *ck, const char *name, hb_tensor *t) {
    if (hb_checkpoint_get(ck, name, t)) return NULL;
    int64_t n = hb_tensor_numel(t);
    float *x = malloc((size_t)n * sizeof(float));
    hb_convert_to_f32(x, t->data, t->dtype, (size_t)n);
    return x;
}

static void test_golden(const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tl_shared_dir(), file);
    if (access(path, R_OK) != 0) { printf("SKIP golden part: %s is missing\n", path); return; }
    hb_checkpoint *ck = hb_checkpoint_open(path);
    CHECKF(ck != NULL, "%s", hb_last_error());
    if (!ck) return;
    hb_tae *m = hb_tae_load(ck, NULL, HB_TAE_ENCODER | HB_TAE_DECODER); /* sizes from the weights only */
    CHECKF(m != NULL, "%s", hb_last_error());
    if (!m) { hb_checkpoint_close(ck); return; }
    hb_tensor tl, tv, tref;
    float *lat = tensor_f32(ck, "in.latent", &tl), *vin = tensor_f32(ck, "in.video", &tv);
    CHECK(lat && vin);
    int64_t T = tl.shape[0], h = tl.shape[2], w = tl.shape[3], sc = hb_tae_space_scale(m);
    int64_t To = hb_tae_decoded_frames(m, T), nv = To * 3 * h * sc * w * sc;
    int64_t nr = T * 4 * 3 * hb_tae_patch_size(m) * hb_tae_patch_size(m) * (h * sc / hb_tae_patch_size(m)) *
                 (w * sc / hb_tae_patch_size(m));
    float *video = malloc((size_t)nv * sizeof(float)), *raw = malloc((size_t)nr * sizeof(float));
    CHECKF(hb_tae_decode_video(m, lat, T, h, w, video, raw, false) == 0, "%s", hb_last_error());
    float *ref = tensor_f32(ck, "out.video", &tref);
    CHECK(ref && hb_tensor_numel(&tref) == nv);
    if (ref && hb_tensor_numel(&tref) == nv) CHECK_REL(video, ref, nv, 1e-4);
    free(ref);
    ref = tensor_f32(ck, "mid.decoder_raw", &tref);
    CHECK(ref && hb_tensor_numel(&tref) == nr);
    if (ref && hb_tensor_numel(&tref) == nr) CHECK_REL(raw, ref, nr, 1e-4);
    free(ref);
    int64_t Tv = tv.shape[0], H = tv.shape[2], W = tv.shape[3], nz = hb_tae_encoded_frames(m, Tv) *
                 hb_tae_latent_channels(m) * (H / sc) * (W / sc);
    float *z = malloc((size_t)nz * sizeof(float));
    CHECKF(hb_tae_encode_video(m, vin, Tv, H, W, z, true) == 0, "%s", hb_last_error());
    ref = tensor_f32(ck, "out.latent", &tref);
    CHECK(ref && hb_tensor_numel(&tref) == nz);
    if (ref && hb_tensor_numel(&tref) == nz) CHECK_REL(z, ref, nz, 1e-4);
    free(ref), free(z), free(video), free(raw), free(lat), free(vin);
    hb_tae_free(m);
    hb_checkpoint_close(ck);
}

/* Collects frames pushed by the streaming decoder. */
typedef struct { float *video; int64_t n, frames, raw_frames; bool order_ok; } collect;

static int collect_frame(void *user, const hb_tae_frame *f) {
    collect *c = user;
    if (f->raw_index != c->raw_frames) c->order_ok = false;
    c->raw_frames++;
    if (!f->rgb) return f->index == -1 ? 0 : 1;
    if (f->index != c->frames) c->order_ok = false;
    memcpy(c->video + f->index * c->n, f->rgb, (size_t)c->n * sizeof(float));
    c->frames++;
    return 0;
}

static void test_random(hb_rng *r, int P) {
    static const int nf[4] = {16, 12, 8, 8};
    int C = P == 1 ? 6 : 10, E = 8;
    rmodel rm;
    CHECK(rm_make(&rm, r, P, C, E, nf));
    if (!rm.m) { rm_free(&rm); return; }
    CHECK(hb_tae_patch_size(rm.m) == P && hb_tae_latent_channels(rm.m) == C && hb_tae_space_scale(rm.m) == 8 * P);
    /* decoder */
    int T = 1 + (int)(hb_rng_u64(r) % 4), h = 2 + (int)(hb_rng_u64(r) % 3), w = 2 + (int)(hb_rng_u64(r) % 4);
    int64_t fl = (int64_t)C * h * w, H = h * 8 * P, W = w * 8 * P, fv = 3 * H * W;
    int64_t To = hb_tae_decoded_frames(rm.m, T);
    CHECK(To == 4 * T - 3);
    float *lat = malloc((size_t)(T * fl) * sizeof(float));
    tl_fill_normal(r, lat, T * fl, 1.5f);
    float *v1 = malloc((size_t)(To * fv) * sizeof(float)), *v2 = malloc((size_t)(To * fv) * sizeof(float));
    int64_t nraw = 4 * T * fv;
    float *raw = malloc((size_t)nraw * sizeof(float));
    CHECKF(hb_tae_decode_video(rm.m, lat, T, h, w, v1, raw, false) == 0, "%s", hb_last_error());
    CHECKF(hb_tae_decode_video(rm.m, lat, T, h, w, v2, NULL, true) == 0, "%s", hb_last_error());
    CHECKF(memcmp(v1, v2, (size_t)(To * fv) * sizeof(float)) == 0, "P=%d T=%d %dx%d: streaming decode differs", P, T, h, w);
    double *ref, *rref;
    int nref = naive_decode(&rm.dec, lat, T, C, h, w, P, &ref, &rref);
    CHECK(nref == To);
    double e = rel_err_d(v1, ref, To * fv), er = rel_err_d(raw, rref, nraw);
    CHECKF(e <= 2e-5 && er <= 2e-5, "P=%d decode vs naive float64: video %.3e raw %.3e", P, e, er);
    if (getenv("TAE_TEST_VERBOSE")) printf("  P=%d decode vs f64: video %.2e raw %.2e\n", P, e, er);
    /* the literal upsample-then-conv path (unfused_upsample) agrees with the default phase convs */
    hb_tae_config cfg;
    hb_tae_config_default(&cfg);
    cfg.unfused_upsample = true;
    hb_tae *mu = hb_tae_load(rm.ck, &cfg, HB_TAE_DECODER);
    CHECKF(mu != NULL, "%s", hb_last_error());
    if (mu) {
        float *rawu = malloc((size_t)nraw * sizeof(float));
        CHECK(hb_tae_decode_video(mu, lat, T, h, w, v2, rawu, true) == 0);
        double eu = rel_err_d(rawu, rref, nraw), ef = tl_rel_err(rawu, raw, nraw);
        CHECKF(eu <= 2e-5 && ef <= 1e-5, "unfused: vs f64 %.3e, vs fused %.3e", eu, ef);
        CHECKF(memcmp(rawu, raw, (size_t)nraw * sizeof(float)) != 0, "fused and unfused paths gave the same bits");
        if (getenv("TAE_TEST_VERBOSE")) printf("  P=%d unfused vs f64 %.2e, vs fused %.2e\n", P, eu, ef);
        free(rawu);
        hb_tae_free(mu);
    }
    free(ref), free(rref), free(raw);
    int inside = 0;
    for (int64_t i = 0; i < To * fv; i++) inside += v1[i] > 0.0f && v1[i] < 1.0f;
    CHECKF(inside > To * fv / 4, "decoded values mostly clamped (%d inside): test data too weak", inside);

    /* streaming from a [C, T, h, w] tensor, twice (reset in between), frames via the callback */
    float *lct = malloc((size_t)(T * fl) * sizeof(float));
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) memcpy(lct + ((size_t)c * T + t) * h * w, lat + (size_t)t * fl + (size_t)c * h * w, (size_t)h * w * sizeof(float));
    collect col = {calloc((size_t)(To * fv), sizeof(float)), fv, 0, 0, true};
    hb_tae_decoder *d = hb_tae_decoder_new(rm.m, h, w, collect_frame, &col);
    CHECKF(d != NULL, "%s", hb_last_error());
    for (int rep = 0; d && rep < 2; rep++) {
        memset(col.video, 0, (size_t)(To * fv) * sizeof(float));
        col.frames = col.raw_frames = 0;
        for (int t = 0; t < T; t++) {
            CHECK(hb_tae_decoder_push(d, lct + (size_t)t * h * w, (int64_t)T * h * w) == 0);
            CHECKF(col.frames == 4 * (t + 1) - 3, "after latent %d: %lld frames", t, (long long)col.frames); /* no lag */
        }
        CHECK(col.order_ok && col.raw_frames == 4 * T && hb_tae_decoder_frames_out(d) == To);
        CHECKF(memcmp(col.video, v1, (size_t)(To * fv) * sizeof(float)) == 0, "rep %d: [C,T,h,w] streaming differs", rep);
        hb_tae_decoder_reset(d);
    }
    hb_tae_decoder_free(d);
    free(col.video), free(lct);

    /* encoder: T not a multiple of 4 */
    int Tv = 1 + (int)(hb_rng_u64(r) % 9);
    int64_t nz = hb_tae_encoded_frames(rm.m, Tv) * fl;
    CHECK(hb_tae_encoded_frames(rm.m, Tv) == (Tv + 3) / 4);
    float *vid = malloc((size_t)(Tv * fv) * sizeof(float));
    tl_fill_uniform(r, vid, Tv * fv, 0.0f, 1.0f);
    float *z1 = malloc((size_t)nz * sizeof(float)), *z2 = malloc((size_t)nz * sizeof(float));
    CHECKF(hb_tae_encode_video(rm.m, vid, Tv, H, W, z1, false) == 0, "%s", hb_last_error());
    CHECKF(hb_tae_encode_video(rm.m, vid, Tv, H, W, z2, true) == 0, "%s", hb_last_error());
    CHECKF(memcmp(z1, z2, (size_t)nz * sizeof(float)) == 0, "P=%d T=%d: streaming encode differs", P, Tv);
    double *zref;
    int nzref = naive_encode(&rm.enc, vid, Tv, (int)H, (int)W, P, &zref);
    CHECK(nzref == (Tv + 3) / 4);
    e = rel_err_d(z1, zref, nz);
    CHECKF(e <= 2e-5, "P=%d encode vs naive float64: %.3e", P, e);
    if (getenv("TAE_TEST_VERBOSE")) printf("  P=%d encode vs f64: %.2e\n", P, e);
    free(zref);

    /* thread counts: 1 vs 3 threads, bitwise */
    int nthr = hb_threads_count();
    hb_threads_init(1);
    CHECK(hb_tae_decode_video(rm.m, lat, T, h, w, v2, NULL, true) == 0);
    CHECK(hb_tae_encode_video(rm.m, vid, Tv, H, W, z2, false) == 0);
    hb_threads_init(3);
    float *v3 = malloc((size_t)(To * fv) * sizeof(float)), *z3 = malloc((size_t)nz * sizeof(float));
    CHECK(hb_tae_decode_video(rm.m, lat, T, h, w, v3, NULL, true) == 0);
    CHECK(hb_tae_encode_video(rm.m, vid, Tv, H, W, z3, false) == 0);
    CHECKF(memcmp(v2, v3, (size_t)(To * fv) * sizeof(float)) == 0 && memcmp(v1, v3, (size_t)(To * fv) * sizeof(float)) == 0,
           "decode differs across thread counts");
    CHECKF(memcmp(z2, z3, (size_t)nz * sizeof(float)) == 0 && memcmp(z1, z3, (size_t)nz * sizeof(float)) == 0,
           "encode differs across thread counts");
    hb_threads_init(nthr);

    /* bad encoder frame size */
    hb_tae_encoder *en = hb_tae_encoder_new(rm.m, H + 4, W, NULL, NULL);
    CHECK(en == NULL && strstr(hb_last_error(), "multiple"));
    hb_tae_encoder_free(en);
    free(v1), free(v2), free(v3), free(z1), free(z2), free(z3), free(vid), free(lat);
    rm_free(&rm);
}

/* ---------- cpu-guard: the model touches its activations only through ops ---------- */

/* frames from the streaming decoder in device memory: download them */
static int collect_dev(void *user, const hb_tae_frame *f) {
    collect *c = user;
    if (f->raw_index != c->raw_frames) c->order_ok = false;
    c->raw_frames++;
    if (!f->rgb) return 0;
    if (f->index != c->frames) c->order_ok = false;
    c->frames++;
    return hb_dev_download(c->video + f->index * c->n, f->rgb, (size_t)c->n * sizeof(float)) ? 1 : 0;
}

static void test_guard(hb_rng *r, int P) {
    static const int nf[4] = {16, 12, 8, 8};
    int C = P == 1 ? 6 : 10, E = 8;
    rmodel rm;
    CHECK(rm_make(&rm, r, P, C, E, nf));
    if (!rm.m) { rm_free(&rm); return; }
    hb_tae_config cfg;
    hb_tae_config_default(&cfg);
    cfg.unfused_upsample = true;
    hb_tae *mu = hb_tae_load(rm.ck, &cfg, HB_TAE_DECODER);
    CHECKF(mu != NULL, "%s", hb_last_error());
    int T = 3, h = 2, w = 3, Tv = 6;
    int64_t fl = (int64_t)C * h * w, H = h * 8 * P, W = w * 8 * P, fv = 3 * H * W;
    int64_t To = hb_tae_decoded_frames(rm.m, T), nraw = 4 * T * fv, nz = hb_tae_encoded_frames(rm.m, Tv) * fl;
    float *lat = malloc(sizeof(float) * (size_t)(T * fl)), *lct = malloc(sizeof(float) * (size_t)(T * fl));
    float *vid = malloc(sizeof(float) * (size_t)(Tv * fv));
    tl_fill_normal(r, lat, T * fl, 1.5f);
    tl_fill_uniform(r, vid, Tv * fv, 0.0f, 1.0f);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) memcpy(lct + ((size_t)c * T + t) * h * w, lat + (size_t)t * fl + (size_t)c * h * w, (size_t)h * w * sizeof(float));
    /* plain CPU */
    float *v = malloc(sizeof(float) * (size_t)(To * fv)), *raw = malloc(sizeof(float) * (size_t)nraw);
    float *vu = malloc(sizeof(float) * (size_t)(To * fv)), *rawu = malloc(sizeof(float) * (size_t)nraw);
    float *z = malloc(sizeof(float) * (size_t)nz);
    CHECK(hb_tae_decode_video(rm.m, lat, T, h, w, v, raw, false) == 0);
    CHECK(mu && hb_tae_decode_video(mu, lat, T, h, w, vu, rawu, true) == 0);
    CHECK(hb_tae_encode_video(rm.m, vid, Tv, H, W, z, false) == 0);
    /* cpu-guard */
    const hb_backend *prev = hb_backend_use(hb_backend_cpu_guard());
    float *dl = tl_dev_upload(lat, T * fl), *dct = tl_dev_upload(lct, T * fl), *dvid = tl_dev_upload(vid, Tv * fv);
    float *dv = hb_dev_alloc(sizeof(float) * (size_t)(To * fv), "test"), *draw = hb_dev_alloc(sizeof(float) * (size_t)nraw, "test");
    float *dz = hb_dev_alloc(sizeof(float) * (size_t)nz, "test");
    CHECK(dl && dct && dvid && dv && draw && dz);
    bool ok[6];
    ok[0] = hb_tae_decode_video(rm.m, dl, T, h, w, dv, draw, false) == 0 && tl_dev_same(dv, v, To * fv) && tl_dev_same(draw, raw, nraw);
    ok[1] = hb_tae_decode_video(rm.m, dl, T, h, w, dv, draw, true) == 0 && tl_dev_same(dv, v, To * fv) && tl_dev_same(draw, raw, nraw);
    ok[2] = mu && hb_tae_decode_video(mu, dl, T, h, w, dv, draw, false) == 0 && tl_dev_same(dv, vu, To * fv) && tl_dev_same(draw, rawu, nraw);
    collect col = {calloc((size_t)(To * fv), sizeof(float)), fv, 0, 0, true};
    hb_tae_decoder *d = hb_tae_decoder_new(rm.m, h, w, collect_dev, &col);
    ok[3] = d != NULL;
    for (int rep = 0; d && rep < 2; rep++) {
        col.frames = col.raw_frames = 0;
        memset(col.video, 0, sizeof(float) * (size_t)(To * fv));
        ok[3] = ok[3] && hb_tae_decoder_push_frames(d, dct, T, h * w, (int64_t)T * h * w) == 0 && col.order_ok &&
                col.frames == To && memcmp(col.video, v, sizeof(float) * (size_t)(To * fv)) == 0;
        hb_tae_decoder_reset(d);
    }
    hb_tae_decoder_free(d);
    free(col.video);
    ok[4] = hb_tae_encode_video(rm.m, dvid, Tv, H, W, dz, false) == 0 && tl_dev_same(dz, z, nz);
    ok[5] = hb_tae_encode_video(rm.m, dvid, Tv, H, W, dz, true) == 0 && tl_dev_same(dz, z, nz);
    static const char *what[6] = {"decode whole + raw", "decode streaming + raw", "unfused decode", "frame decoder x2",
                                  "encode whole", "encode streaming"};
    printf("cpu-guard TAEHV P=%d:", P);
    for (int i = 0; i < 6; i++) {
        printf(" %s %s%s", what[i], ok[i] ? "bitwise" : "DIFFERS", i < 5 ? "," : "\n");
        CHECKF(ok[i], "cpu-guard P=%d: %s", P, what[i]);
    }
    hb_dev_free(dl), hb_dev_free(dct), hb_dev_free(dvid), hb_dev_free(dv), hb_dev_free(draw), hb_dev_free(dz);
    hb_backend_use(prev);
    free(lat), free(lct), free(vid), free(v), free(raw), free(vu), free(rawu), free(z);
    hb_tae_free(mu);
    rm_free(&rm);
}

/* A TGrow weight with more rows than its stride needs keeps the last rows (patch_tgrow_layers). */
static void test_tgrow_truncation(hb_rng *r) {
    static const int nf[4] = {8, 8, 8, 8};
    rmodel rm;
    CHECK(rm_make(&rm, r, 1, 4, 8, nf));
    if (!rm.m) { rm_free(&rm); return; }
    int T = 2, h = 2, w = 3;
    int64_t To = hb_tae_decoded_frames(rm.m, T), fv = 3 * 16 * 24, fl = 4 * h * w;
    float *lat = malloc((size_t)(T * fl) * sizeof(float)), *v1 = malloc((size_t)(To * fv) * sizeof(float)),
          *v2 = malloc((size_t)(To * fv) * sizeof(float));
    tl_fill_normal(r, lat, T * fl, 1.0f);
    CHECK(hb_tae_decode_video(rm.m, lat, T, h, w, v1, NULL, false) == 0);
    /* same weights, decoder.7 with 2x rows: random ones first, the real ones last */
    rmodel big = {0};
    for (int i = 0; i < rm.d.n; i++) {
        const hb_tensor *t = &rm.d.t[i];
        if (!strcmp(rm.d.names[i], "decoder.7.conv.weight")) {
            int64_t s[4] = {2 * t->shape[0], t->shape[1], 1, 1};
            float *x = add_t(&big.d, r, rm.d.names[i], 4, s, 1.0f);
            memcpy(x + hb_tensor_numel(t), t->data, (size_t)hb_tensor_numel(t) * sizeof(float));
        } else {
            float *x = add_t(&big.d, r, rm.d.names[i], t->ndim, t->shape, 0.0f);
            memcpy(x, t->data, (size_t)hb_tensor_numel(t) * sizeof(float));
        }
    }
    CHECK(write_open(&big, "tgrow") == 0);
    big.m = big.ck ? hb_tae_load(big.ck, NULL, HB_TAE_DECODER) : NULL;
    CHECKF(big.m != NULL, "%s", hb_last_error());
    if (big.m) {
        CHECK(hb_tae_decode_video(big.m, lat, T, h, w, v2, NULL, true) == 0);
        CHECK(memcmp(v1, v2, (size_t)(To * fv) * sizeof(float)) == 0);
        CHECK(!hb_tae_has_encoder(big.m));
        CHECK(hb_tae_encoder_new(big.m, 16, 16, NULL, NULL) == NULL && strstr(hb_last_error(), "without its encoder"));
    }
    free(lat), free(v1), free(v2);
    rm_free(&big);
    rm_free(&rm);
}

/* Non-default constructor flags (a cheaper preview decoder): no time upscale in stage 1, no space upscale in
 * stage 1 -> 2T-1 frames at 4x instead of 8x; weights made for those strides. */
static void test_preview_flags(hb_rng *r) {
    static const int nf[4] = {12, 8, 8, 8}, tst[3] = {1, 1, 2}, sup[3] = {2, 1, 2};
    int P = 2, C = 8, T = 3, h = 3, w = 2;
    rmodel rm;
    memset(&rm, 0, sizeof rm);
    make_decoder(&rm.dec, &rm.d, r, P, C, nf, tst, sup);
    CHECK(write_open(&rm, "preview") == 0);
    hb_tae_config cfg;
    hb_tae_config_default(&cfg);
    cfg.decoder_time_upscale[1] = false;
    cfg.decoder_space_upscale[1] = false;
    rm.m = rm.ck ? hb_tae_load(rm.ck, &cfg, HB_TAE_DECODER) : NULL;
    CHECKF(rm.m != NULL, "%s", hb_last_error());
    if (!rm.m) { rm_free(&rm); return; }
    CHECK(hb_tae_t_upscale(rm.m) == 2 && hb_tae_frames_to_trim(rm.m) == 1 && hb_tae_space_scale(rm.m) == 4 * P);
    int64_t To = hb_tae_decoded_frames(rm.m, T), fv = 3 * (4 * P * h) * (4 * P * w), fl = (int64_t)C * h * w;
    CHECK(To == 2 * T - 1);
    float *lat = malloc((size_t)(T * fl) * sizeof(float)), *v1 = malloc((size_t)(To * fv) * sizeof(float)),
          *v2 = malloc((size_t)(To * fv) * sizeof(float));
    tl_fill_normal(r, lat, T * fl, 1.0f);
    CHECKF(hb_tae_decode_video(rm.m, lat, T, h, w, v1, NULL, false) == 0, "%s", hb_last_error());
    CHECKF(hb_tae_decode_video(rm.m, lat, T, h, w, v2, NULL, true) == 0, "%s", hb_last_error());
    CHECK(memcmp(v1, v2, (size_t)(To * fv) * sizeof(float)) == 0);
    double *ref, *rref;
    CHECK(naive_decode(&rm.dec, lat, T, C, h, w, P, &ref, &rref) == To);
    double e = rel_err_d(v1, ref, To * fv);
    CHECKF(e <= 2e-5, "preview decode vs naive: %.3e", e);
    free(ref), free(rref), free(lat), free(v1), free(v2);
    rm_free(&rm);
}

/* Copy of a state dict without one tensor, or with one tensor's dim 1 changed. */
static void check_bad(const sdict *src, const char *victim, bool drop, const char *want) {
    rmodel bad = {0};
    hb_rng r;
    hb_rng_seed(&r, 1);
    for (int i = 0; i < src->n; i++) {
        const hb_tensor *t = &src->t[i];
        bool hit = !strcmp(src->names[i], victim);
        if (hit && drop) continue;
        int64_t s[4];
        memcpy(s, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        if (hit) s[t->ndim > 1 ? 1 : 0] += 1;
        add_t(&bad.d, &r, src->names[i], t->ndim, s, 0.1f);
    }
    CHECK(write_open(&bad, "bad") == 0);
    hb_tae *m = bad.ck ? hb_tae_load(bad.ck, NULL, HB_TAE_ENCODER | HB_TAE_DECODER) : NULL;
    CHECKF(m == NULL, "loading with %s %s succeeded", victim, drop ? "missing" : "mis-shaped");
    const char *msg = hb_last_error();
    CHECKF(strstr(msg, victim) && strstr(msg, bad.path) && (!want || strstr(msg, want)), "message: %s", msg);
    printf("  expected error: %s\n", msg);
    hb_tae_free(m);
    rm_free(&bad);
}

static void test_errors(hb_rng *r) {
    static const int nf[4] = {8, 8, 8, 8};
    rmodel rm;
    CHECK(rm_make(&rm, r, 2, 12, 8, nf));
    check_bad(&rm.d, "decoder.10.conv.2.bias", true, NULL);
    check_bad(&rm.d, "encoder.7.conv.weight", true, NULL);
    check_bad(&rm.d, "decoder.14.weight", false, "[");
    check_bad(&rm.d, "encoder.5.conv.0.weight", false, "[");
    check_bad(&rm.d, "decoder.22.weight", false, NULL);
    /* a config that contradicts the weights */
    hb_tae_config cfg;
    hb_tae_config_default(&cfg);
    cfg.patch_size = 1;
    CHECK(hb_tae_load(rm.ck, &cfg, HB_TAE_DECODER) == NULL && strstr(hb_last_error(), "patch size"));
    cfg.patch_size = 0, cfg.latent_channels = 16;
    CHECK(hb_tae_load(rm.ck, &cfg, HB_TAE_DECODER) == NULL && strstr(hb_last_error(), "decoder.1.weight"));
    rm_free(&rm);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    test_random(&r, 1);
    test_random(&r, 2);
    test_guard(&r, 1);
    test_guard(&r, 2);
    test_tgrow_truncation(&r);
    test_preview_flags(&r);
    test_errors(&r);
    if (tl_shared_dir()) {
        test_golden("golden/taew21.safetensors");
        test_golden("golden/taew22.safetensors");
    } else printf("shared/ not found: golden part skipped\n");
    return tl_done();
}
