/* io/fp8: scaled-fp8 safetensors (../shared/spec/quantization.md, "fp8 checkpoints"), dequantized at load.
 * A weight stored as F8_E4M3 is multiplied by its scale and kept as BF16 (what the bf16 files hold):
 *   ComfyUI/Kijai:       NAME.weight (F8_E4M3) + NAME.scale_weight (f32, one value), marker tensor `scaled_fp8`;
 *   LightX2V / ComfyUI:  NAME.weight (F8_E4M3) + NAME.weight_scale (one value, or one per output channel:
 *                        [out] or [out, 1]).
 * A file with no scale tensor and no marker is a plain fp8 cast (scale 1). In a scaled file every F8_E4M3 tensor
 * needs its scale; a missing scale, a scale of another shape, a non-finite scale or a NaN code in a weight is
 * refused, naming the file and the tensor. The scale tensors stay in the checkpoint (unused by the models). */
#include "io/io_internal.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The scale entry of fp8 tensor e (-1: none). */
static int find_scale(const hb_checkpoint *ck, const ck_entry *e) {
    char name[HB_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s_scale", e->name); /* NAME.weight_scale */
    int i = hb__ck_find_exact(ck, name);
    if (i >= 0 || !has_suffix(e->name, ".weight")) return i;
    snprintf(name, sizeof name, "%.*s.scale_weight", (int)(strlen(e->name) - 7), e->name);
    return hb__ck_find_exact(ck, name);
}

static bool is_scaled_file(const hb_checkpoint *ck) {
    for (int i = 0; i < ck->n; i++) {
        const char *n = ck->ents[i].name, *base = strrchr(n, '.');
        if (has_suffix(n, ".scale_weight") || has_suffix(n, ".weight_scale") || !strcmp(base ? base + 1 : n, "scaled_fp8"))
            return true;
    }
    return false;
}

/* The scale values of fp8 tensor e (1 or rows of them, as f32) into *sc; *nsc = their count. */
static int read_scale(const hb_checkpoint *ck, const ck_entry *e, int si, float *one, const float **sc, int64_t *nsc) {
    const char *path = ck->files[e->file].path;
    const ck_entry *s = &ck->ents[si];
    const int64_t rows = e->t.ndim ? e->t.shape[0] : 1, n = hb_tensor_numel(&s->t);
    if (s->t.dtype != HB_F32 && s->t.dtype != HB_BF16 && s->t.dtype != HB_F16)
        return hb_error("%s: tensor '%s': scale '%s' has dtype %s (F32, BF16 or F16 expected)", path, e->name, s->name,
                        hb_dtype_name(s->t.dtype));
    if (n != 1 && (n != rows || s->t.ndim > 2 || (s->t.ndim == 2 && s->t.shape[1] != 1)))
        return hb_error("%s: tensor '%s': scale '%s' holds %lld values; one (per tensor) or %lld (per output channel, "
                        "shape [%lld] or [%lld, 1]) expected", path, e->name, s->name, (long long)n, (long long)rows,
                        (long long)rows, (long long)rows);
    float *buf = n == 1 ? one : hb_malloc(sizeof(float) * (size_t)n, "fp8 scale");
    if (!buf) return -1;
    hb_convert_to_f32(buf, s->t.data, s->t.dtype, (size_t)n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(buf[i])) {
            if (buf != one) hb_free(buf);
            return hb_error("%s: tensor '%s': scale '%s' value %lld is not finite", path, e->name, s->name, (long long)i);
        }
    *sc = buf, *nsc = n;
    return 0;
}

/* BF16 = e4m3 x scale (per row when there is one scale per output channel), into an owned buffer. */
static int dequantize(hb_checkpoint *ck, ck_entry *e, const float *sc, int64_t nsc) {
    const int64_t n = hb_tensor_numel(&e->t), rows = nsc > 1 ? nsc : 1, cols = rows ? n / rows : 0;
    const uint8_t *q = e->t.data;
    uint16_t *out = hb_malloc(sizeof(uint16_t) * (size_t)(n ? n : 1), "fp8 weight");
    if (!out) return -1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            uint8_t b = q[r * cols + c];
            if ((b & 0x7f) == 0x7f) {
                hb_free(out);
                return hb_error("%s: tensor '%s': element %lld is an fp8 NaN code (0x%02x)", ck->files[e->file].path,
                                e->name, (long long)(r * cols + c), b);
            }
            out[r * cols + c] = hb_f32_to_bf16(hb_e4m3_to_f32(b) * sc[nsc > 1 ? r : 0]);
        }
    if (hb__ck_own(ck, out)) return hb_error("%s: out of memory", ck->files[e->file].path);
    e->t.dtype = HB_BF16;
    e->t.data = out;
    e->copied = true;
    e->fp8 = false;
    return 0;
}

int hb__ck_resolve_fp8(hb_checkpoint *ck) {
    int scaled = -1; /* decided at the first fp8 tensor */
    for (int i = 0; i < ck->n; i++) {
        ck_entry *e = &ck->ents[i];
        if (!e->fp8) continue;
        const char *base = strrchr(e->name, '.');
        if (!strcmp(base ? base + 1 : e->name, "scaled_fp8")) { e->fp8 = false; continue; } /* the marker: no weight */
        if (scaled < 0) scaled = is_scaled_file(ck);
        int si = find_scale(ck, e);
        if (si < 0 && scaled) {
            int stem = has_suffix(e->name, ".weight") ? (int)strlen(e->name) - 7 : (int)strlen(e->name);
            return hb_error("%s: tensor '%s' is F8_E4M3 in a scaled-fp8 file but has no scale ('%s_scale' or "
                            "'%.*s.scale_weight')", ck->files[e->file].path, e->name, e->name, stem, e->name);
        }
        float one = 1.0f;
        const float *sc = &one;
        int64_t nsc = 1;
        if (si >= 0 && read_scale(ck, e, si, &one, &sc, &nsc)) return -1;
        int rc = dequantize(ck, e, sc, nsc);
        if (sc != &one) hb_free((void *)sc);
        if (rc) return -1;
    }
    return 0;
}
