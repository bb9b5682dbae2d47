/* io/json_file: JSON read from files and buffers with errors that say what went wrong (a missing file, an
 * allocation failure, bad JSON are told apart), and numeric fields read with a type and range check. */
#ifndef HB_IO_JSON_FILE_H
#define HB_IO_JSON_FILE_H

#include "core/core.h"
#include <jansson.h>

#define HB_JSON_MAX_FILE (64u << 20) /* config.json, hummingbird.json, tokenizer.json: far below this */

/* The whole file plus a terminating NUL (*len excludes it), refused past max_bytes. NULL with one error naming
 * the file: cannot open, not a regular file, too large, out of memory, read error. Free with free(). */
char *hb_read_text_file(const char *path, size_t max_bytes, size_t *len);

/* Parse len bytes (jansson decoding flags). NULL with an error naming `what`: "out of memory parsing JSON" when
 * the parser could not allocate, else "invalid JSON at line L column C: ..." (the input's fault). */
json_t *hb_json_parse(const char *text, size_t len, size_t flags, const char *what);

/* The allocator behind jansson's allocations (NULL: malloc; memory is released with free): tests inject
 * allocation failures through it. A failure during hb_json_parse is always reported as out of memory. */
void hb_json_set_allocator(void *(*alloc)(size_t));

/* hb_read_text_file (HB_JSON_MAX_FILE) then hb_json_parse: the file is read by us, never by jansson's file
 * reader, so a failed allocation is reported as one and not as bad JSON. */
json_t *hb_json_load_file(const char *path, size_t flags);

/* Numeric fields of obj. An absent or null key leaves *dst unchanged (returns 0). An integer, or a real with no
 * fractional part, inside [lo, hi] is stored. Anything else (a string, a fraction, out of range, too big for
 * the type) is one error naming `what` and the key, and *dst is left unchanged. */
int hb_json_int64(json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *dst, const char *what);
int hb_json_int(json_t *obj, const char *key, int lo, int hi, int *dst, const char *what);
/* A finite number inside [lo, hi]. */
int hb_json_real(json_t *obj, const char *key, double lo, double hi, double *dst, const char *what);
int hb_json_float(json_t *obj, const char *key, double lo, double hi, float *dst, const char *what);

#endif
