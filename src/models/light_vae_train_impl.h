/* models/light_vae_train internals shared by light_vae_train.c (structure, parameters, optimiser) and
 * light_vae_train_graph.c (the recorded forward and its backward). Not part of the interface. */
#ifndef HB_MODELS_LIGHT_VAE_TRAIN_IMPL_H
#define HB_MODELS_LIGHT_VAE_TRAIN_IMPL_H

#include "models/light_vae_impl.h"
#include "models/light_vae_train.h"

/* The network: the inference model's tree (models/light_vae_impl.h), its weights views of the flat buffer
 * hb_lvt.w, and the heads' 1x1x1 convs. */
struct hb_lvt_net {
    hb_light_vae *dec;
    lv_conv head[HB_LVT_MAX_HEADS][2];
};

#endif
