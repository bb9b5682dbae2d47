/* ops: hb_conv3d / hb_conv2d against a direct double-precision convolution (PyTorch semantics: cross-correlation,
 * per-side zero padding, strides, groups, depthwise (kernels 3 and 5 and an odd one, row and width remainders),
 * causal time padding, every weight dtype), nearest upsampling
 * and pixel (un)shuffle against explicit index formulas (HB_PS_CQR = torch pixel_shuffle per frame).
 * Tolerance 2e-5 normwise for convs, exact for data movement; bitwise identity across 1/2/3 threads. */
#include "test_ops_common.h"
#include "ops/ops_internal.h"

typedef struct {
    const float *x; int64_t Cin, T, H, W; hb_tensor w, b; bool has_b; hb_conv3d_params p; bool as2d;
} conv_ctx;

static void conv_body(void *vc, float *out) {
    conv_ctx *c = vc;
    int rc;
    if (c->as2d) {
        hb_tensor w4 = c->w;
        w4.ndim = 4;
        w4.shape[2] = c->w.shape[3]; w4.shape[3] = c->w.shape[4];
        w4.stride[2] = c->w.stride[3]; w4.stride[3] = c->w.stride[4];
        rc = hb_conv2d(out, c->x, c->Cin, c->H, c->W, &w4, c->has_b ? &c->b : NULL, c->p.stride[1], c->p.pad_h[0],
                       c->p.groups);
    } else {
        rc = hb_conv3d(out, c->x, c->Cin, c->T, c->H, c->W, &c->w, c->has_b ? &c->b : NULL, &c->p);
    }
    CHECKF(rc == 0, "conv failed: %s", hb_last_error());
}

static void check_conv(hb_rng *r, int64_t Cin, int64_t Cout, int64_t T, int64_t H, int64_t W, int kt, int kh, int kw,
                       hb_conv3d_params p, hb_dtype wt, bool has_b, bool as2d) {
    int g = p.groups;
    int64_t cin_g = Cin / g, cout_g = Cout / g, ksz = (int64_t)kt * kh * kw, nw = Cout * cin_g * ksz;
    float *x = rnd(r, Cin * T * H * W, 1.0f), *wv = rnd(r, nw, 0.3f), *bv = rnd(r, Cout, 1.0f);
    void *ws = to_dtype(wv, nw, wt), *bs = to_dtype(bv, Cout, HB_BF16);
    int64_t shape[5] = {Cout, cin_g, kt, kh, kw};
    conv_ctx c = {x, Cin, T, H, W, hb_tensor_make(wt, 5, shape, ws), hb_tensor_1d(HB_BF16, Cout, bs), has_b, p, as2d};
    int64_t To = (T + p.pad_t[0] + p.pad_t[1] - kt) / p.stride[0] + 1, Ho = (H + p.pad_h[0] + p.pad_h[1] - kh) / p.stride[1] + 1,
            Wo = (W + p.pad_w[0] + p.pad_w[1] - kw) / p.stride[2] + 1;
    int64_t a, b2, c2;
    hb_conv3d_out_size(T, H, W, &c.w, &p, &a, &b2, &c2);
    CHECK(a == To && b2 == Ho && c2 == Wo);
    int64_t ny = Cout * To * Ho * Wo;
    float *out = malloc(sizeof(float) * (size_t)ny), *ref = malloc(sizeof(float) * (size_t)ny);
    for (int64_t co = 0; co < Cout; co++)
        for (int64_t to = 0; to < To; to++)
            for (int64_t ho = 0; ho < Ho; ho++)
                for (int64_t wo = 0; wo < Wo; wo++) {
                    double s = has_b ? bv[co] : 0;
                    int64_t gi = co / cout_g;
                    for (int64_t ci = 0; ci < cin_g; ci++)
                        for (int dt = 0; dt < kt; dt++)
                            for (int dh = 0; dh < kh; dh++)
                                for (int dw = 0; dw < kw; dw++) {
                                    int64_t t = to * p.stride[0] + dt - p.pad_t[0], h = ho * p.stride[1] + dh - p.pad_h[0],
                                            w = wo * p.stride[2] + dw - p.pad_w[0];
                                    if (t < 0 || t >= T || h < 0 || h >= H || w < 0 || w >= W) continue;
                                    s += (double)x[((gi * cin_g + ci) * T + t) * H * W + h * W + w] *
                                         wv[(((co * cin_g + ci) * kt + dt) * kh + dh) * kw + dw];
                                }
                    ref[((co * To + to) * Ho + ho) * Wo + wo] = (float)s;
                }
    char what[200];
    snprintf(what, sizeof what, "conv%s Cin=%lld Cout=%lld T=%lld H=%lld W=%lld k=%dx%dx%d s=%d,%d,%d g=%d w=%s",
             as2d ? "2d" : "3d", (long long)Cin, (long long)Cout, (long long)T, (long long)H, (long long)W, kt, kh, kw,
             p.stride[0], p.stride[1], p.stride[2], g, hb_dtype_name(wt));
    same_for_threads(conv_body, &c, out, sizeof(float) * (size_t)ny, what);
    double e = tl_rel_err(out, ref, ny);
    CHECKF(e <= 2e-5, "%s: rel err %.3e", what, e);
    free(x); free(wv); free(bv); free(ws); free(bs); free(out); free(ref);
}

static hb_conv3d_params P(int st, int sh, int sw, int pt0, int pt1, int ph, int pw, int g) {
    hb_conv3d_params p = {{st, sh, sw}, {pt0, pt1}, {ph, ph}, {pw, pw}, g, HB_CONV_FAST};
    return p;
}

static void check_resample(hb_rng *r) {
    int64_t C = 3, T = 2, H = 3, W = 5;
    int p = 2;
    float *lo = rnd(r, C * p * p * T * H * W, 1.0f), *hi = malloc(sizeof(float) * (size_t)(C * p * p * T * H * W));
    float *back = malloc(sizeof(float) * (size_t)(C * p * p * T * H * W));
    for (int o = 0; o < 2; o++) {
        hb_pixel_shuffle(hi, lo, C, T, H, W, p, (hb_ps_order)o);
        bool ok = true;
        for (int64_t c = 0; c < C; c++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t y = 0; y < H * p; y++)
                    for (int64_t x = 0; x < W * p; x++) {
                        int64_t q = y % p, s = x % p;
                        int64_t lc = o == HB_PS_CQR ? c * p * p + q * p + s : c * p * p + s * p + q;
                        ok &= hi[((c * T + t) * H * p + y) * W * p + x] == lo[((lc * T + t) * H + y / p) * W + x / p];
                    }
        CHECKF(ok, "pixel_shuffle order %d", o);
        hb_pixel_unshuffle(back, hi, C, T, H, W, p, (hb_ps_order)o);
        CHECKF(memcmp(back, lo, sizeof(float) * (size_t)(C * p * p * T * H * W)) == 0, "pixel_unshuffle order %d", o);
    }
    /* nearest upsampling */
    int ft = 2, fh = 3, fw = 2;
    float *up = malloc(sizeof(float) * (size_t)(C * T * ft * H * fh * W * fw));
    hb_upsample_nearest(up, lo, C, T, H, W, ft, fh, fw);
    bool ok = true;
    for (int64_t c = 0; c < C; c++)
        for (int64_t t = 0; t < T * ft; t++)
            for (int64_t y = 0; y < H * fh; y++)
                for (int64_t x = 0; x < W * fw; x++)
                    ok &= up[((c * T * ft + t) * H * fh + y) * W * fw + x] == lo[((c * T + t / ft) * H + y / fh) * W + x / fw];
    CHECK(ok);
    free(lo); free(hi); free(back); free(up);
}

int main(void) {
    hb_rng r;
    hb_rng_seed(&r, tl_seed());
    /* every GEMM code path this machine has (the default one last) */
    const char *def = hb__gemm_path(), *paths[4] = {"generic", "avx2", "openblas", def};
    for (int pi = 0; pi < 4; pi++) {
        if (hb__gemm_select(paths[pi]) != 0) { fprintf(stderr, "GEMM path %s not available here\n", paths[pi]); continue; }
        fprintf(stderr, "GEMM path %s\n", hb__gemm_path());
        check_conv(&r, 3, 5, 4, 7, 6, 3, 3, 3, P(1, 1, 1, 1, 1, 1, 1, 1), HB_F32, true, false);
        check_conv(&r, 4, 6, 5, 9, 8, 3, 3, 3, P(1, 2, 2, 2, 0, 1, 1, 1), HB_BF16, true, false);   /* causal, strided */
        check_conv(&r, 4, 6, 3, 5, 7, 1, 3, 3, P(1, 1, 1, 0, 0, 1, 1, 2), HB_F16, false, false);   /* groups */
        check_conv(&r, 5, 5, 4, 6, 6, 3, 3, 3, P(1, 1, 1, 2, 0, 1, 1, 5), HB_F32, true, false);    /* depthwise */
        check_conv(&r, 6, 6, 4, 7, 5, 3, 3, 3, P(2, 2, 2, 1, 1, 0, 1, 6), HB_BF16, false, false);  /* depthwise strided */
        /* depthwise kernel 5 (the light decoder's): spans of 4 vectors and a partial one (W 37), a row remainder
         * (H 13 = 4 spans of 3 rows + 1), time padding on both sides; one row wide (W 3: 12-row spans); kernel 2x3x4 */
        check_conv(&r, 3, 3, 6, 13, 37, 5, 5, 5, P(1, 1, 1, 2, 2, 2, 2, 3), HB_F32, true, false);
        check_conv(&r, 4, 4, 3, 14, 3, 5, 5, 5, P(1, 1, 1, 2, 2, 2, 2, 4), HB_BF16, true, false);
        check_conv(&r, 2, 2, 5, 9, 21, 2, 3, 4, P(1, 1, 1, 1, 0, 1, 2, 2), HB_F32, false, false);
        check_conv(&r, 7, 9, 3, 5, 4, 1, 1, 1, P(1, 1, 1, 0, 0, 0, 0, 1), HB_BF16, true, false);   /* pointwise */
        check_conv(&r, 6, 4, 3, 5, 4, 1, 1, 1, P(1, 1, 1, 0, 0, 0, 0, 2), HB_F32, true, false);    /* grouped pointwise */
        check_conv(&r, 8, 16, 5, 4, 4, 3, 1, 1, P(2, 1, 1, 0, 0, 0, 0, 1), HB_F32, true, false);   /* time conv, stride 2 */
        check_conv(&r, 1, 1, 1, 1, 1, 1, 1, 1, P(1, 1, 1, 0, 0, 0, 0, 1), HB_F16, true, false);
        check_conv(&r, 32, 24, 4, 16, 13, 3, 3, 3, P(1, 1, 1, 2, 0, 1, 1, 1), HB_BF16, true, false); /* many tiles */
        check_conv(&r, 3, 8, 1, 11, 9, 1, 3, 3, P(1, 2, 2, 0, 0, 1, 1, 1), HB_F32, true, true);    /* conv2d */
        check_conv(&r, 8, 3, 4, 7, 19, 3, 3, 3, P(1, 1, 1, 2, 0, 1, 1, 1), HB_BF16, true, false);  /* few Cout (head) */
        check_conv(&r, 16, 4, 3, 6, 5, 3, 3, 3, P(2, 2, 1, 1, 1, 1, 2, 2), HB_F16, false, false); /* few Cout, groups */
        check_conv(&r, 64, 3, 1, 9, 13, 1, 3, 3, P(1, 1, 1, 0, 0, 1, 1, 1), HB_F32, true, true);  /* TAEHV-like tail */
        check_conv(&r, 4, 4, 1, 6, 6, 1, 4, 4, P(1, 2, 2, 0, 0, 0, 0, 1), HB_BF16, false, true);   /* conv2d k4 s2 */
        check_resample(&r);
    }

    /* bad input: one clear error, no crash */
    float buf[64] = {0};
    int64_t s5[5] = {2, 3, 1, 1, 1};
    hb_tensor w = hb_tensor_make(HB_F32, 5, s5, buf);
    hb_conv3d_params p = P(1, 1, 1, 0, 0, 0, 0, 1);
    CHECK(hb_conv3d(buf, buf, 4, 1, 2, 2, &w, NULL, &p) != 0 && strstr(hb_last_error(), "input channels"));
    int64_t s5b[5] = {2, 1, 3, 3, 3};
    hb_tensor wb = hb_tensor_make(HB_F32, 5, s5b, buf);
    CHECK(hb_conv3d(buf, buf, 1, 1, 2, 2, &wb, NULL, &p) != 0 && strstr(hb_last_error(), "smaller than the kernel"));
    hb_threads_shutdown();
    return tl_done();
}
