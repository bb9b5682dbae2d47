/* Golden runner: a golden file holds a component's weights (official names), its inputs (in.*), the
 * reference outputs (out.*) and intermediates (mid.*), with the config in the metadata. Each kind has a
 * runner (tools/golden_KIND.c) that builds the component from the file, runs it and calls
 * golden_compare on every output and intermediate it can produce. */
#ifndef HB_GOLDEN_H
#define HB_GOLDEN_H

#include "core/core.h"
#include "io/checkpoint.h"
#include <jansson.h>

typedef struct golden_case {
    const char *path;
    hb_checkpoint *ck;
    const char *kind, *variant;
    json_t *config;     /* metadata "config", parsed (never NULL while a runner runs) */
    double tol;         /* max allowed normwise relative error */
    bool tol_default;   /* tol is the default for the backend (no --tol) */
    bool bf16;          /* --bf16: run with bf16 activations/weights where the component supports it */
    int checked, failed;
    double worst;
} golden_case;

/* A metadata value parsed as JSON (NULL when absent or not JSON); the caller json_decref()s it. */
json_t *golden_meta_json(golden_case *g, const char *key);
/* A number from the metadata (its value parsed as JSON), or `def` when absent or not a number. */
double golden_meta_num(golden_case *g, const char *key, double def);
/* An integer from the config (or `def` when absent). */
int64_t golden_cfg_int(golden_case *g, const char *key, int64_t def);
double golden_cfg_num(golden_case *g, const char *key, double def);
/* A tensor of the file (in.*, weights): -1 + message when missing. */
int golden_tensor(golden_case *g, const char *name, hb_tensor *out);
/* The tensor `name` of the file converted to a malloc'ed float32 copy (caller hb_free()s it); its shape in
 * *t when t is not NULL. NULL + message when missing. */
float *golden_tensor_f32(golden_case *g, const char *name, hb_tensor *t);
/* The Wan DiT config of a wan_dit / wan_causal_dit file (metadata "config"). */
struct wan_dit_config;
int golden_wan_dit_config(golden_case *g, struct wan_dit_config *cfg);
/* The same as f32 in the backend's memory (hb_dev_free it), and any host floats copied there. Runners pass
 * device-side inputs to the models: with -d the whole component runs on that backend. */
float *golden_tensor_dev(golden_case *g, const char *name, hb_tensor *t);
float *golden_to_dev(const float *host, int64_t n);
/* Compare our n values (in the backend's memory) with the file's tensor `name`: max|ours-ref| / max|ref|;
 * prints one line; a missing reference or a size mismatch counts as a failure. */
void golden_compare(golden_case *g, const char *name, const float *ours, int64_t n);
/* The same for values in host memory. */
void golden_compare_host(golden_case *g, const char *name, const float *ours, int64_t n);
/* Both with a tolerance of the check's own instead of the case's. */
void golden_compare_tol(golden_case *g, const char *name, const float *ours_dev, int64_t n, double tol);
void golden_compare_host_tol(golden_case *g, const char *name, const float *ours, int64_t n, double tol);
/* Count one check: passes when why is NULL and err <= tol; prints one line. */
void golden_report(golden_case *g, const char *name, double err, const char *why, double tol);
/* Integer tensors must match exactly. */
void golden_compare_i64(golden_case *g, const char *name, const int64_t *ours, int64_t n);
/* max |a-b| / max |b| over n values. */
double golden_rel_err(const float *ours, const float *ref, int64_t n);

/* Runners, one per kind (metadata "kind"). Return 0 when the case ran (pass or fail is counted in g),
 * -1 when it could not run (message set). */
int golden_run_wan_dit(golden_case *g);
int golden_run_wan_causal_dit(golden_case *g);
int golden_run_wan_vae(golden_case *g);
int golden_run_umt5_encoder(golden_case *g);
int golden_run_taehv(golden_case *g);
int golden_run_flow_schedule(golden_case *g);
int golden_run_xt_loop(golden_case *g);
int golden_run_xtx_loop(golden_case *g);
int golden_run_hummingbird_light_vae(golden_case *g);
int golden_run_hummingbird_light_vae_train(golden_case *g);
int golden_run_gguf_quant(golden_case *g);

#endif
