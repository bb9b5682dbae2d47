/* models/light_vae_train internals shared by light_vae_train.c (structure, parameters, optimiser) and
 * light_vae_train_graph.c (the recorded forward and its backward). Not part of the interface. */
#ifndef HB_MODELS_LIGHT_VAE_TRAIN_IMPL_H
#define HB_MODELS_LIGHT_VAE_TRAIN_IMPL_H

#include "models/light_vae_train.h"

/* A conv: weight / bias parameter indices; time padding by replicating pl / pr edge frames; space: zero, kh/2. */
typedef struct {
    int w, b;
    int64_t cin, cout;
    int kt, kh, groups, pl, pr;
} lt_conv;
typedef struct {
    bool dw;
    lt_conv a, p;
} lt_sep;
typedef struct {
    lt_sep c1, c2, sc;
    bool has_sc, relu;
    int ln_w, ln_b;
    int64_t cin, cout;
} lt_res;
typedef struct {
    bool has_entry, has_up;
    lt_res entry;
    lt_conv up;
    int st, ss, nres;
    lt_res *res;
} lt_block;

struct hb_lvt_net {
    lt_conv conv_in, conv_out, s2d[2];
    int n2d;
    lt_block blk[HB_LIGHT_VAE_MAX_UP + 1];
    lt_conv head[HB_LVT_MAX_HEADS][2];
};

/* parameter i's weights as an F32 tensor view (its registered shape) */
hb_tensor hb_lt_param_tensor(const hb_lvt *m, int i);

#endif
