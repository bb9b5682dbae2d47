/* 3-D rotary position embedding as Wan's rope_params/rope_apply: per axis, pair j of that axis' part turns by
 * pos / 10000^(2j / dim_axis) (angle, cos and sin in float64); the complex product is done in float64 and rounded
 * to float32 once. head_dim d: c = d/2 pairs split (c - 2*(c/3), c/3, c/3) over (frame, row, col). */
#include "ops/ops_internal.h"
#include <math.h>
#include <stdlib.h>

typedef struct {
    float *x; int64_t L, stride; int heads, d, H, W, f0;
    int np[3];
    const double *cs[3]; /* per axis: [positions][np][2] (cos, sin) */
} rope_job;

static double *axis_table(int npos, int pos0, int np) {
    double *t = malloc((size_t)(npos > 0 ? npos : 1) * (size_t)(np > 0 ? np : 1) * 2 * sizeof(double));
    if (!t) return NULL;
    for (int p = 0; p < npos; p++)
        for (int j = 0; j < np; j++) {
            double inv = 1.0 / pow(10000.0, (double)(2 * j) / (double)(2 * np));
            double ang = (double)(pos0 + p) * inv;
            t[((size_t)p * np + j) * 2] = cos(ang);
            t[((size_t)p * np + j) * 2 + 1] = sin(ang);
        }
    return t;
}

static void rope_tokens(void *ctx, int64_t b, int64_t e) {
    const rope_job *j = ctx;
    int64_t hw = (int64_t)j->H * j->W;
    for (int64_t i = b; i < e; i++) {
        int64_t pos[3] = {i / hw, (i / j->W) % j->H, i % j->W};
        for (int h = 0; h < j->heads; h++) {
            float *x = j->x + i * j->stride + (int64_t)h * j->d;
            int pair = 0;
            for (int a = 0; a < 3; a++) {
                const double *t = j->cs[a] + (size_t)pos[a] * j->np[a] * 2;
                for (int q = 0; q < j->np[a]; q++, pair++) {
                    double xr = x[2 * pair], xi = x[2 * pair + 1], c = t[2 * q], s = t[2 * q + 1];
                    x[2 * pair] = (float)(xr * c - xi * s);
                    x[2 * pair + 1] = (float)(xr * s + xi * c);
                }
            }
        }
    }
}

void hb_cpu_rope3d(float *x, int64_t L, int heads, int head_dim, int64_t stride, int H, int W, int f0) {
    if (L <= 0 || heads <= 0 || head_dim < 2 || H <= 0 || W <= 0) return;
    int c = head_dim / 2;
    rope_job j = {x, L, stride, heads, head_dim, H, W, f0, {c - 2 * (c / 3), c / 3, c / 3}, {0}};
    int64_t nf = (L + (int64_t)H * W - 1) / ((int64_t)H * W);
    double *t0 = axis_table((int)nf, f0, j.np[0]), *t1 = axis_table(H, 0, j.np[1]), *t2 = axis_table(W, 0, j.np[2]);
    if (t0 && t1 && t2) {
        j.cs[0] = t0; j.cs[1] = t1; j.cs[2] = t2;
        hb_parallel_for(L, 64, rope_tokens, &j);
    } else {
        hb__cpu_fail("hb_rope3d: out of memory");
    }
    free(t0); free(t1); free(t2);
}

typedef struct { float *x; int64_t stride; int heads, d, np; const double *cs; } shift_job;

static void shift_rows(void *ctx, int64_t b, int64_t e) {
    const shift_job *j = ctx;
    for (int64_t r = b; r < e; r++)
        for (int h = 0; h < j->heads; h++) {
            float *x = j->x + r * j->stride + (int64_t)h * j->d;
            for (int q = 0; q < j->np; q++) {
                double xr = x[2 * q], xi = x[2 * q + 1], c = j->cs[2 * q], s = j->cs[2 * q + 1];
                x[2 * q] = (float)(xr * c - xi * s);
                x[2 * q + 1] = (float)(xr * s + xi * c);
            }
        }
}

void hb_cpu_rope_shift(float *x, int64_t rows, int64_t stride, int heads, int head_dim, int np, double delta) {
    if (rows <= 0 || np <= 0) return;
    double *cs = malloc(sizeof(double) * 2 * (size_t)np);
    if (!cs) { hb__cpu_fail("hb_rope_shift: out of memory"); return; }
    for (int q = 0; q < np; q++) {
        double a = delta * (1.0 / pow(10000.0, (double)(2 * q) / (double)(2 * np)));
        cs[2 * q] = cos(a);
        cs[2 * q + 1] = sin(a);
    }
    shift_job j = {x, stride, heads, head_dim, np, cs};
    hb_parallel_for(rows, 64, shift_rows, &j);
    free(cs);
}
