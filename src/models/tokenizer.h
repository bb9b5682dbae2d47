/* tokenizer: the SentencePiece unigram tokenizer of the umT5 text encoder (and of T5 and any other
 * SentencePiece unigram model), plus the prompt cleaning of the Wan pipelines.
 *
 * A model is read from a SentencePiece `spiece.model` (ModelProto protobuf) or from a Hugging Face
 * `tokenizer.json` (Unigram model). Encoding follows SentencePiece exactly: the model's own normaliser
 * (precompiled charsmap, remove_extra_whitespaces, add_dummy_prefix, escape_whitespaces), Viterbi over
 * the pieces with the model's scores, unknown characters -> unk (a run merged into one) or <0xXX> byte
 * pieces when the model has byte fallback; then EOS is appended (no BOS), as the T5/umT5 tokenizers do.
 * See docs/tokenizer.md. */
#ifndef HB_TOKENIZER_H
#define HB_TOKENIZER_H

#include "core/core.h"

typedef struct hb_tokenizer hb_tokenizer;

/* Piece types (SentencePiece ModelProto.SentencePiece.Type). */
enum { HB_PIECE_NORMAL = 1, HB_PIECE_UNKNOWN = 2, HB_PIECE_CONTROL = 3, HB_PIECE_USER_DEFINED = 4,
       HB_PIECE_UNUSED = 5, HB_PIECE_BYTE = 6 };

/* Load a tokenizer file: a SentencePiece model (protobuf) or a tokenizer.json (recognised by content),
 * or a *.safetensors text-encoder file holding the model bytes as a uint8 tensor `spiece_model`
 * (ComfyUI's umT5 files). NULL + a message naming the file on any problem. */
hb_tokenizer *hb_tokenizer_load(const char *path);
/* A SentencePiece model from memory (e.g. the `spiece_model` uint8 tensor of ComfyUI text encoders);
 * `name` is used in error messages. The bytes are copied. */
hb_tokenizer *hb_tokenizer_load_spm_buffer(const void *data, size_t n, const char *name);
/* Find the tokenizer of a model folder: spiece.model in DIR, DIR/google/umt5-xxl, DIR/tokenizer, then
 * tokenizer.json in the same places (a file given as DIR is loaded as it is). `found` (optional, cap
 * bytes) receives the path used. */
hb_tokenizer *hb_tokenizer_open_dir(const char *dir, char *found, size_t cap);
void hb_tokenizer_free(hb_tokenizer *tok);

/* Encode `len` bytes of UTF-8 text (need not be NUL-terminated; invalid bytes are handled as
 * SentencePiece does). *ids (malloc'ed, free with free()) receives the ids followed by EOS; *n their
 * count. Returns 0 or -1. */
int hb_tokenizer_encode(const hb_tokenizer *tok, const char *text, size_t len, int32_t **ids, int *n);
/* The encoder API: ids of `text` (NUL-terminated) + EOS, truncated to text_len keeping EOS last (as the
 * Hugging Face tokenizer does with truncation=True, max_length=text_len), padded with the pad id to
 * text_len. mask[i] = 1 for real tokens, 0 for padding (mask may be NULL). Returns the number of real
 * tokens (>= 1), or -1. When `clean` is true the prompt is first cleaned as Wan does (hb_prompt_clean). */
int hb_tokenizer_encode_padded(const hb_tokenizer *tok, const char *text, bool clean, int text_len,
                               int32_t *ids, int32_t *mask);
/* The same with the types hb_umt5_encode / hb_umt5_forward take (int64 ids, uint8 mask; mask may be NULL). */
int hb_tokenizer_encode_padded_i64(const hb_tokenizer *tok, const char *text, bool clean, int text_len,
                                   int64_t *ids, uint8_t *mask);
/* The normalised text (what the Viterbi search sees, spaces as U+2581), malloc'ed; NULL on error. */
char *hb_tokenizer_normalize(const hb_tokenizer *tok, const char *text, size_t len, size_t *out_len);

int hb_tokenizer_vocab_size(const hb_tokenizer *tok);
int hb_tokenizer_eos_id(const hb_tokenizer *tok);
int hb_tokenizer_pad_id(const hb_tokenizer *tok);   /* trainer_spec pad id, 0 when the model has none */
int hb_tokenizer_unk_id(const hb_tokenizer *tok);
int hb_tokenizer_bos_id(const hb_tokenizer *tok);   /* -1 when none */
bool hb_tokenizer_byte_fallback(const hb_tokenizer *tok);
/* Piece string of an id (NUL-terminated, owned by the tokenizer), NULL when out of range. */
const char *hb_tokenizer_piece(const hb_tokenizer *tok, int id, int *type);
/* Id of a piece string, -1 when absent. */
int hb_tokenizer_piece_id(const hb_tokenizer *tok, const char *piece);

/* Wan's prompt cleaning (wan/modules/tokenizers.py, clean='whitespace'):
 * whitespace_clean(basic_clean(text)) where basic_clean = ftfy.fix_text, html.unescape twice, strip,
 * and whitespace_clean collapses every run of Unicode whitespace to one space and strips. ftfy is
 * approximated (see docs/tokenizer.md). Returns a malloc'ed NUL-terminated string, NULL on error. */
char *hb_prompt_clean(const char *text);
/* Python's html.unescape on UTF-8 text (named entities of a common subset, all numeric references
 * with Python's replacement rules). malloc'ed result. */
char *hb_html_unescape(const char *text);

#endif
