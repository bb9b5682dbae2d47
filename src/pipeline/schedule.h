/* pipeline/schedule: flow-matching noise schedules and samplers.
 *
 * 1. The FlowMatch training table every self-forcing wrapper uses (Self-Forcing utils/scheduler.py
 *    FlowMatchScheduler(shift=S, sigma_min=0, extra_one_step=True).set_timesteps(1000, training=True)),
 *    computed in float32 as torch does; the warped few-step lists of the causal pipelines; the sigma
 *    lookup (argmin |timesteps - t|) of the wrapper; the x0 / re-noise helpers of few-step sampling.
 * 2. The Wan 2.2 base sampler: FlowUniPCMultistepScheduler(num_train_timesteps, shift=ctor_shift,
 *    use_dynamic_shifting=False).set_timesteps(steps, shift=S) (int64 timesteps, steps+1 sigmas) and its
 *    multistep step (order 2, bh2, predict_x0, corrector on, lower_order_final) as a C state machine;
 *    a plain flow Euler step as an option; the dpm++ path's get_sampling_sigmas(steps, shift).
 * All functions are pure C on caller memory; nothing here allocates except hb_flow_sampler_init. */
#ifndef HB_PIPELINE_SCHEDULE_H
#define HB_PIPELINE_SCHEDULE_H

#include "core/core.h"

/* ---------- FlowMatch table (self-forcing wrappers) ---------- */
#define HB_FM_STEPS 1000 /* set_timesteps(1000, training=True): the table has 1000 entries */
typedef struct hb_flowmatch_table {
    float shift;
    int n;                          /* HB_FM_STEPS */
    float sigmas[HB_FM_STEPS];      /* descending, sigmas[0] = 1, last = smallest (> 0) */
    float timesteps[HB_FM_STEPS];   /* 1000 * sigma (float32) */
} hb_flowmatch_table;

/* s_i = linspace(1, 0, 1001)[i] (float32), sigma_i = S*s_i / (1 + (S-1)*s_i), t_i = 1000*sigma_i, all in
 * float32. -1 + message when shift is not a positive finite number. */
int hb_flowmatch_table_init(hb_flowmatch_table *t, double shift);
/* Index of the table entry nearest to timestep t (argmin |timesteps - t|, first on ties; float32 math). */
int hb_flowmatch_index(const hb_flowmatch_table *t, float timestep);
/* sigmas[hb_flowmatch_index(t)] (t = 0 gives the smallest entry, not 0, as the reference does). */
float hb_flowmatch_sigma(const hb_flowmatch_table *t, float timestep);
/* Warped few-step list: out[i] = cat(timesteps, [0])[1000 - list[i]]; list entries in [0, 1000].
 * -1 + message naming the bad entry otherwise. */
int hb_flowmatch_warp(const hb_flowmatch_table *t, const int64_t *list, int n, float *out);
/* x0 = x - sigma * flow, computed in float64 per element and rounded to float32 (the wrappers'
 * _convert_flow_pred_to_x0). out may alias x or flow. */
void hb_flow_to_x0(float *x0, const float *x, const float *flow, float sigma, int64_t n);
/* y = (1 - sigma) * x0 + sigma * noise in float32 (FlowMatchScheduler.add_noise). y may alias x0 or noise. */
void hb_flow_renoise(float *y, const float *x0, const float *noise, float sigma, int64_t n);

/* ---------- dpm++ path ---------- */
/* get_sampling_sigmas(steps, shift): sigma = linspace(1, 0, steps+1)[:steps] shifted, in float64. */
void hb_dpmpp_sampling_sigmas(int steps, double shift, double *out);

/* ---------- Wan 2.2 multistep sampler (UniPC, or Euler) ---------- */
typedef enum { HB_SAMPLER_UNIPC = 0, HB_SAMPLER_EULER = 1 } hb_sampler_kind;

typedef struct hb_flow_sampler {
    hb_sampler_kind kind;
    int steps;
    int64_t *timesteps;   /* [steps] int64 (truncated toward zero, as the reference's .to(int64)) */
    float *sigmas;        /* [steps + 1], last 0 */
    int64_t numel;        /* elements of one sample */
    /* state */
    int step_index;       /* -1 until the first step */
    int lower_order_nums, this_order;
    bool have_last;
    float *m_prev, *m_last, *m_new; /* converted model outputs (x0 predictions): [-2], [-1], scratch */
    float *last_sample, *cur, *tmp;
} hb_flow_sampler;

/* The reference constructor arguments (FlowUniPCMultistepScheduler(num_train_timesteps, shift=ctor_shift,
 * use_dynamic_shifting=False)) and set_timesteps(steps, shift). Wan 2.2 uses 1000, 1.0. */
typedef struct {
    int num_train_timesteps;  /* 1000 */
    double ctor_shift;        /* 1.0 */
    int steps;                /* e.g. 50 */
    double shift;             /* e.g. 5.0 */
} hb_sampler_params;

/* Only the schedule (no state buffers): timesteps [steps] and sigmas [steps+1]. */
int hb_unipc_schedule(const hb_sampler_params *p, int64_t *timesteps, float *sigmas);
/* Schedule + state for samples of `numel` floats. -1 + message on bad parameters or no memory. */
int hb_flow_sampler_init(hb_flow_sampler *s, hb_sampler_kind kind, const hb_sampler_params *p, int64_t numel);
void hb_flow_sampler_free(hb_flow_sampler *s);
/* Forget the history (a new trajectory on the same schedule). */
void hb_flow_sampler_reset(hb_flow_sampler *s);
/* Samples, model outputs and the state live in the current memory space (hb_dev_*), computed with ops.
 * One step: out = the sample at the next sigma, given the model's flow prediction at `timestep` for
 * `sample`. The first call locates `timestep` in the schedule (as the reference's index_for_timestep);
 * later calls advance one step each. out may alias sample. -1 + message past the last step or when the
 * first timestep is not in the schedule. */
int hb_flow_sampler_step(hb_flow_sampler *s, const float *model_out, int64_t timestep, const float *sample,
                         float *out);

#endif
