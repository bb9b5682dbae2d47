/* pipeline/text: the text-encoding stage of both pipelines (XT and XTX): prompts -> umT5 rows, the encoder
 * opened for the stage and released before it returns, so it never stays resident beside the DiT.
 * Each prompt is tokenized with EOS (cleaned as Wan does when `clean`; the Hummingbird-XT release feeds the
 * raw text), truncated to text_len, and encoded; its rows are the real tokens only (the DiT pads them). */
#ifndef HB_PIPELINE_TEXT_H
#define HB_PIPELINE_TEXT_H

#include "core/core.h"
#include "models/tokenizer.h"

typedef struct hb_text_rows {
    float *ctx;     /* [len, text_dim] in the current memory space */
    int64_t len;
} hb_text_rows;

typedef struct hb_text_opts {
    const hb_tokenizer *tok;
    const char *encoder;     /* path handed to hb_umt5_open */
    int text_len, text_dim;  /* the DiT's */
    bool clean;
    bool low_memory;         /* stream the encoder's layers (resident set ~ one layer) */
    hb_progress_fn progress; /* stage "text", one step per prompt */
    void *progress_user;
} hb_text_opts;

/* Encode n prompts into out[n]; on error every out[i] is freed and zeroed. */
int hb_text_encode(const hb_text_opts *o, const char *const *texts, int n, hb_text_rows *out);
void hb_text_rows_free(hb_text_rows *rows, int n);

#endif
