/* hb serve: parsing and validation of requests, independent of the HTTP library (fuzzed by
 * fuzz/fuzz_serve_request.c). Every bad input gives an srv_err naming the field; nothing here trusts a length,
 * a count or a terminator in the input. */
#include "serve.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int srv_fail(srv_err *e, int status, const char *param, const char *code, const char *fmt, ...) {
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

json_t *srv_err_json(const srv_err *e) {
    const char *type = e->status == 401 ? "authentication_error" : e->status == 429 ? "rate_limit_error"
                     : e->status >= 500 ? "server_error" : "invalid_request_error";
    return json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", e->message, "type", type, "param",
                     e->param[0] ? e->param : NULL, "code", e->code[0] ? e->code : NULL);
}

bool srv_valid_id(const char *id) {
    if (strncmp(id, "video_", 6)) return false;
    for (int i = 6; i < SRV_ID_LEN; i++)
        if (!isxdigit((unsigned char)id[i]) || isupper((unsigned char)id[i])) return false;
    return id[SRV_ID_LEN] == 0;
}

/* ---------------------------------------------------------------- routes and queries */

srv_route srv_route_parse(const char *path) {
    srv_route r = {SRV_R_NOT_FOUND, ""};
    if (!strcmp(path, "/health")) r.kind = SRV_R_HEALTH;
    else if (!strcmp(path, "/v1/models")) r.kind = SRV_R_MODELS;
    else if (!strcmp(path, "/v1/cluster")) r.kind = SRV_R_CLUSTER;
    else if (!strcmp(path, "/v1/videos") || !strcmp(path, "/v1/videos/")) r.kind = SRV_R_VIDEOS;
    else if (!strncmp(path, "/v1/videos/", 11)) {
        const char *id = path + 11, *slash = strchr(id, '/');
        size_t n = slash ? (size_t)(slash - id) : strlen(id);
        if (n != SRV_ID_LEN) return r;
        memcpy(r.id, id, n);
        r.id[n] = 0;
        if (!srv_valid_id(r.id)) return r;
        const char *rest = slash ? slash : "";
        if (!*rest) r.kind = SRV_R_VIDEO;
        else if (!strcmp(rest, "/content")) r.kind = SRV_R_CONTENT;
        else if (!strcmp(rest, "/cancel")) r.kind = SRV_R_CANCEL;
        else if (!strcmp(rest, "/events")) r.kind = SRV_R_EVENTS;
        else if (!strcmp(rest, "/remix")) r.kind = SRV_R_REMIX;
    }
    return r;
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int srv_query_get(const char *query, const char *name, char *buf, size_t cap) {
    if (!query || cap == 0) return 0;
    size_t nl = strlen(name);
    for (const char *p = query; *p;) {
        const char *end = strchr(p, '&');
        if (!end) end = p + strlen(p);
        if ((size_t)(end - p) > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            size_t o = 0;
            for (const char *s = p + nl + 1; s < end; s++) {
                int c = (unsigned char)*s;
                if (c == '+') c = ' ';
                else if (c == '%') {
                    if (end - s < 3 || hexval(s[1]) < 0 || hexval(s[2]) < 0) return -1;
                    c = hexval(s[1]) * 16 + hexval(s[2]);
                    s += 2;
                }
                if (c == 0 || o + 1 >= cap) return -1;
                buf[o++] = (char)c;
            }
            buf[o] = 0;
            return 1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

int srv_list_query_parse(const char *query, srv_list_query *q, srv_err *e) {
    char v[64];
    *q = (srv_list_query){"", 20, false};
    int r = srv_query_get(query, "after", v, sizeof v);
    if (r < 0 || (r > 0 && v[0] && !srv_valid_id(v))) return srv_fail(e, 400, "after", "invalid_value", "after: not a video id");
    if (r > 0 && v[0]) memcpy(q->after, v, SRV_ID_LEN + 1);
    r = srv_query_get(query, "limit", v, sizeof v);
    if (r) {
        char *end;
        long n = r > 0 ? strtol(v, &end, 10) : 0;
        if (r < 0 || !v[0] || *end || n < 1 || n > 100) return srv_fail(e, 400, "limit", "invalid_value", "limit: an integer in [1, 100]");
        q->limit = (int)n;
    }
    r = srv_query_get(query, "order", v, sizeof v);
    if (r < 0 || (r > 0 && strcmp(v, "asc") && strcmp(v, "desc")))
        return srv_fail(e, 400, "order", "invalid_value", "order: asc or desc");
    q->asc = r > 0 && !strcmp(v, "asc");
    return 0;
}

int srv_variant_parse(const char *query, srv_err *e) {
    char v[32];
    int r = srv_query_get(query, "variant", v, sizeof v);
    if (r == 0 || (r > 0 && !strcmp(v, "video"))) return 0;
    if (r > 0 && !strcmp(v, "thumbnail")) return 1;
    return srv_fail(e, 400, "variant", "invalid_value", "variant: video or thumbnail (spritesheet is not made)");
}

bool srv_auth_ok(const char *authorization, const char *key) {
    static const char pre[] = "Bearer ";
    if (!authorization || strncmp(authorization, pre, sizeof pre - 1)) return false;
    const char *got = authorization + sizeof pre - 1;
    size_t gl = strlen(got), kl = strlen(key);
    /* every byte of the key is compared whatever the input, and the lengths in the same sum */
    unsigned diff = (unsigned)(gl ^ kl);
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < gl ? got[i] : 0);
    return diff == 0 && kl > 0;
}

/* ---------------------------------------------------------------- bodies */

json_t *srv_fields_from_json(const char *body, size_t n, srv_err *e) {
    json_error_t je;
    json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    if (!j) { srv_fail(e, 400, "", "invalid_json", "the body is not valid JSON: %s (line %d column %d)", je.text, je.line, je.column); return NULL; }
    if (!json_is_object(j)) { json_decref(j); srv_fail(e, 400, "", "invalid_json", "the body must be a JSON object"); return NULL; }
    return j;
}

/* a parameter of a header value: `name=value` or `name="value"` after a ';' (value copied into buf) */
static bool header_param(const char *h, size_t hn, const char *name, char *buf, size_t cap) {
    size_t nl = strlen(name);
    for (size_t i = 0; i < hn; i++) {
        if (h[i] != ';') continue;
        size_t k = i + 1;
        while (k < hn && (h[k] == ' ' || h[k] == '\t')) k++;
        if (k + nl + 1 > hn || strncasecmp(h + k, name, nl) || h[k + nl] != '=') continue;
        k += nl + 1;
        size_t o = 0;
        bool quoted = k < hn && h[k] == '"';
        if (quoted) k++;
        for (; k < hn && (quoted ? h[k] != '"' : h[k] != ';' && h[k] != ' '); k++) {
            if (o + 1 >= cap) return false;
            buf[o++] = h[k];
        }
        buf[o] = 0;
        return o > 0;
    }
    return false;
}

static const uint8_t *find(const uint8_t *h, size_t hn, const char *needle, size_t nn) {
    if (nn == 0 || hn < nn) return NULL;
    for (const uint8_t *p = h; (p = memchr(p, needle[0], hn - (size_t)(p - h) - nn + 1)) != NULL; p++)
        if (!memcmp(p, needle, nn)) return p;
    return NULL;
}

/* One part: headers [h, h + hn), data [d, d + dn). */
static int add_part(json_t *fields, const uint8_t *h, size_t hn, const uint8_t *d, size_t dn, srv_span *image,
                    srv_err *e) {
    char name[64] = "", file[256] = "";
    bool have_cd = false;
    for (size_t i = 0; i < hn;) {
        const uint8_t *eol = find(h + i, hn - i, "\r\n", 2);
        size_t ln = eol ? (size_t)(eol - (h + i)) : hn - i;
        const char *line = (const char *)h + i;
        if (ln > 20 && !strncasecmp(line, "content-disposition:", 20)) {
            have_cd = true;
            if (!header_param(line, ln, "name", name, sizeof name))
                return srv_fail(e, 400, "", "invalid_multipart", "multipart: a part without a usable name");
            header_param(line, ln, "filename", file, sizeof file);
        }
        i += ln + 2;
    }
    if (!have_cd) return srv_fail(e, 400, "", "invalid_multipart", "multipart: a part without Content-Disposition");
    if (!strcmp(name, "input_reference")) {
        if (image->data) return srv_fail(e, 400, "input_reference", "invalid_multipart", "input_reference given twice");
        image->data = d, image->size = dn;
        return 0;
    }
    if (file[0]) return srv_fail(e, 400, name, "unknown_parameter", "%s: the only file field is input_reference", name);
    if (json_object_get(fields, name)) return srv_fail(e, 400, name, "invalid_multipart", "%s given twice", name);
    json_t *s = json_stringn((const char *)d, dn);
    if (!s) return srv_fail(e, 400, name, "invalid_value", "%s: not UTF-8 text", name);
    json_object_set_new(fields, name, s);
    return 0;
}

json_t *srv_fields_from_multipart(const char *content_type, const uint8_t *body, size_t n, srv_span *image,
                                  srv_err *e) {
    char bnd[80] = "--";
    *image = (srv_span){NULL, 0};
    if (!header_param(content_type, strlen(content_type), "boundary", bnd + 2, sizeof bnd - 2)) {
        srv_fail(e, 400, "", "invalid_multipart", "multipart/form-data without a boundary (at most 70 characters)");
        return NULL;
    }
    const size_t bl = strlen(bnd);
    json_t *fields = json_object();
    const uint8_t *p = find(body, n, bnd, bl), *end = body + n;
    int parts = 0;
    while (p) {
        p += bl;
        if (end - p >= 2 && !memcmp(p, "--", 2)) return fields; /* closing delimiter */
        if (end - p < 2 || memcmp(p, "\r\n", 2)) break;
        p += 2;
        const uint8_t *hend = find(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend) break;
        const uint8_t *d = hend + 4;
        /* the data ends at CRLF + boundary */
        char delim[84];
        snprintf(delim, sizeof delim, "\r\n%s", bnd);
        const uint8_t *next = find(d, (size_t)(end - d), delim, bl + 2);
        if (!next) break;
        if (++parts > 64) { srv_fail(e, 400, "", "invalid_multipart", "multipart: more than 64 parts"); goto fail; }
        if (add_part(fields, p, (size_t)(hend - p), d, (size_t)(next - d), image, e)) goto fail;
        p = next + 2;
    }
    srv_fail(e, 400, "", "invalid_multipart", "multipart body is malformed or truncated (boundary %s)", bnd + 2);
fail:
    json_decref(fields);
    *image = (srv_span){NULL, 0};
    return NULL;
}

/* ---------------------------------------------------------------- create fields -> job */

static const char *const k_known[] = {"prompt", "model", "seconds", "size", "input_reference", "seed", "num_frames",
                                      "fps", "negative_prompt", "steps", "shift", "sampler", "mode", "prompts",
                                      "character_ids", NULL};

/* A number field: a JSON number (integer when `integer`), or text holding one when from a form. 1 given, 0 absent. */
static int get_number(const json_t *f, const char *name, bool from_form, bool integer, double lo, double hi, double *out,
                      srv_err *e) {
    const json_t *v = json_object_get(f, name);
    if (!v || json_is_null(v)) return 0;
    double x;
    if (json_is_integer(v)) x = (double)json_integer_value(v);
    else if (json_is_real(v) && !integer) x = json_real_value(v);
    else if (json_is_string(v) && from_form) {
        const char *s = json_string_value(v);
        char *endp;
        errno = 0;
        x = strtod(s, &endp);
        if (!*s || *endp || errno || isspace((unsigned char)*s) || (integer && x != floor(x)))
            return srv_fail(e, 400, name, "invalid_type", "%s: '%.40s' is not %s", name, s, integer ? "an integer" : "a number");
    } else return srv_fail(e, 400, name, "invalid_type", "%s must be %s", name, integer ? "an integer" : "a number");
    if (!(x >= lo && x <= hi)) return srv_fail(e, 400, name, "invalid_value", "%s: %g is outside [%g, %g]", name, x, lo, hi);
    *out = x;
    return 1;
}

static int get_string(const json_t *f, const char *name, const char **out, srv_err *e) {
    const json_t *v = json_object_get(f, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return srv_fail(e, 400, name, "invalid_type", "%s must be a string", name);
    *out = json_string_value(v);
    return 1;
}

/* A JSON-valued field: itself in a JSON body; in a form, text holding JSON. Returns a new reference or NULL. */
static json_t *get_json(const json_t *f, const char *name, bool from_form, srv_err *e, bool *bad) {
    const json_t *v = json_object_get(f, name);
    *bad = false;
    if (!v || json_is_null(v)) return NULL;
    if (from_form && json_is_string(v)) {
        const char *s = json_string_value(v);
        json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
        if (!j && (isdigit((unsigned char)s[0]))) j = json_integer(strtoll(s, NULL, 10));
        if (!j) { *bad = true; srv_fail(e, 400, name, "invalid_type", "%s: not valid JSON", name); }
        return j;
    }
    return json_incref((json_t *)v);
}

static int nearest_mult(int x, int m, int hi) {
    int r = (x + m / 2) / m * m;
    if (r < m) r = m;
    if (r > hi / m * m) r = hi / m * m;
    return r;
}

/* size "WxH": OpenAI's standard sizes map to the native size of the same orientation; others must fit the rule */
static int resolve_size(const char *s, const srv_model_info *mi, int *w, int *h, srv_err *e) {
    static const char *const k_std[] = {"720x1280", "1280x720", "1024x1792", "1792x1024", NULL};
    for (int i = 0; k_std[i]; i++)
        if (!strcmp(s, k_std[i])) {
            bool portrait = i % 2 == 0;
            *w = portrait ? mi->native_h : mi->native_w, *h = portrait ? mi->native_w : mi->native_h;
            return 0;
        }
    char *x;
    errno = 0;
    long W = isdigit((unsigned char)s[0]) ? strtol(s, &x, 10) : -1, H = -1;
    if (W > 0 && (*x == 'x' || *x == 'X') && isdigit((unsigned char)x[1])) {
        char *end;
        H = strtol(x + 1, &end, 10);
        if (*end || errno) H = -1;
    }
    if (W <= 0 || H <= 0) return srv_fail(e, 400, "size", "invalid_value", "size '%.40s': expected WIDTHxHEIGHT, e.g. %dx%d", s, mi->native_w, mi->native_h);
    const int m = mi->size_mult;
    if (W % m || H % m || W > mi->max_side || H > mi->max_side) {
        int nw = nearest_mult(W > 1 << 20 ? 1 << 20 : (int)W, m, mi->max_side), nh = nearest_mult(H > 1 << 20 ? 1 << 20 : (int)H, m, mi->max_side);
        return srv_fail(e, 400, "size", "invalid_size", "size %ldx%ld: width and height must be multiples of %d, at most %d; the nearest valid size is %dx%d",
                        W, H, m, mi->max_side, nw, nh);
    }
    *w = (int)W, *h = (int)H;
    return 0;
}

static int check_unknown(const json_t *f, srv_err *e) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)f, k, v) {
        bool known = false;
        for (int i = 0; k_known[i] && !known; i++) known = !strcmp(k, k_known[i]);
        if (!known) return srv_fail(e, 400, k, "unknown_parameter", "unknown parameter '%.40s'", k);
    }
    return 0;
}

/* steps: an integer (unipc/euler sampler steps) or an array of timesteps in [0, 1000] (few-step list) */
static int resolve_steps(const json_t *f, bool from_form, json_t *job, srv_err *e) {
    bool bad;
    json_t *v = get_json(f, "steps", from_form, e, &bad);
    if (bad) return -1;
    if (!v) return 0;
    int rc = 0;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 1 || n > 1000) rc = srv_fail(e, 400, "steps", "invalid_value", "steps: %lld is outside [1, 1000]", (long long)n);
        else json_object_set_new(job, "steps", json_integer(n));
    } else if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n < 1 || n > 16) rc = srv_fail(e, 400, "steps", "invalid_value", "steps: a list of 1 to 16 timesteps");
        for (size_t i = 0; i < n && !rc; i++) {
            json_t *t = json_array_get(v, i);
            if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > 1000)
                rc = srv_fail(e, 400, "steps", "invalid_value", "steps[%zu]: an integer timestep in [0, 1000]", i);
        }
        if (!rc) json_object_set(job, "steps_list", v);
    } else rc = srv_fail(e, 400, "steps", "invalid_type", "steps must be an integer or a list of timesteps");
    json_decref(v);
    return rc;
}

/* prompts (mode ar): [{"frame": video frame > 0, "prompt": text}, ...] switches after the main prompt */
static int resolve_prompts(const json_t *f, bool from_form, int frames, size_t max_prompt, json_t *job, srv_err *e) {
    bool bad;
    json_t *v = get_json(f, "prompts", from_form, e, &bad);
    if (bad) return -1;
    if (!v) return 0;
    int rc = 0;
    json_t *out = json_array();
    if (!json_is_array(v) || json_array_size(v) > 64) rc = srv_fail(e, 400, "prompts", "invalid_type", "prompts must be a list of at most 64 {\"frame\", \"prompt\"} objects");
    long last = 0;
    for (size_t i = 0; !rc && i < json_array_size(v); i++) {
        json_t *o = json_array_get(v, i), *fr = json_object_get(o, "frame"), *pr = json_object_get(o, "prompt");
        if (!json_is_object(o) || !json_is_integer(fr) || !json_is_string(pr))
            rc = srv_fail(e, 400, "prompts", "invalid_type", "prompts[%zu]: an object with an integer frame and a string prompt", i);
        else if (json_integer_value(fr) <= last || json_integer_value(fr) >= frames)
            rc = srv_fail(e, 400, "prompts", "invalid_value", "prompts[%zu]: frames must increase, start after 0 and stay below %d", i, frames);
        else if (json_string_length(pr) > max_prompt || strpbrk(json_string_value(pr), "\n\r\t") || !json_string_length(pr))
            rc = srv_fail(e, 400, "prompts", "invalid_value", "prompts[%zu]: a non-empty single-line prompt of at most %zu bytes", i, max_prompt);
        else {
            last = (long)json_integer_value(fr);
            json_array_append_new(out, json_pack("{s:I, s:O}", "frame", (json_int_t)last, "prompt", pr));
        }
    }
    if (!rc) json_object_set(job, "prompts", out);
    json_decref(out);
    json_decref(v);
    return rc;
}

static int resolve_frames(const json_t *f, bool from_form, const srv_model_info *mi, double fps, json_t *job, srv_err *e) {
    double nf = 0, sec = 4;
    int rn = get_number(f, "num_frames", from_form, true, 1, 1e6, &nf, e);
    if (rn < 0) return -1;
    const json_t *sv = json_object_get(f, "seconds");
    int rs = 0;
    if (sv && !json_is_null(sv)) { /* OpenAI sends text ("4"); a JSON number is accepted too */
        json_t *tmp = json_object();
        json_object_set(tmp, "seconds", (json_t *)sv);
        rs = get_number(tmp, "seconds", true, false, 0.01, 3600, &sec, e);
        json_decref(tmp);
        if (rs < 0) return -1;
    }
    int frames;
    if (rn) {
        frames = (int)nf;
        if ((frames - 1) % 4 || frames > mi->max_frames) {
            int k = (frames - 1 + 2) / 4, near = 4 * k + 1;
            if (near > mi->max_frames) near = (mi->max_frames - 1) / 4 * 4 + 1;
            return srv_fail(e, 400, "num_frames", "invalid_value", "num_frames %d: must be 4k+1 and at most %d; the nearest valid count is %d", frames, mi->max_frames, near);
        }
    } else {
        double k = round(sec * fps / 4.0);
        frames = 4 * (int)(k < 1 ? 1 : k > 1e6 ? 1e6 : k) + 1;
        if (frames > mi->max_frames)
            return srv_fail(e, 400, "seconds", "invalid_value", "seconds %g at %g fps is %d frames; at most %d (%.2f s)", sec, fps, frames, mi->max_frames, mi->max_frames / fps);
    }
    char secs[32];
    if (rs) snprintf(secs, sizeof secs, "%s", json_is_string(sv) ? json_string_value(sv) : "");
    if (!rs || !secs[0]) snprintf(secs, sizeof secs, "%g", rn ? round(frames / fps * 100) / 100 : sec);
    json_object_set_new(job, "frames", json_integer(frames));
    json_object_set_new(job, "seconds", json_string(secs));
    return 0;
}

static int resolve_options(const json_t *f, bool from_form, const srv_model_info *mi, json_t *job, srv_err *e) {
    const char *s = NULL;
    double x;
    int r = get_string(f, "negative_prompt", &s, e);
    if (r < 0) return -1;
    if (r && strlen(s) > mi->max_prompt) return srv_fail(e, 400, "negative_prompt", "string_above_max_length", "negative_prompt: at most %zu bytes", mi->max_prompt);
    if (r) json_object_set_new(job, "negative_prompt", json_string(s));
    if ((r = get_number(f, "shift", from_form, false, 0.01, 100, &x, e)) < 0) return -1;
    if (r) json_object_set_new(job, "shift", json_real(x));
    if ((r = get_string(f, "sampler", &s, e)) < 0) return -1;
    if (r) {
        if (strcmp(s, "xt") && strcmp(s, "unipc") && strcmp(s, "euler"))
            return srv_fail(e, 400, "sampler", "invalid_value", "sampler: xt, unipc or euler");
        if (mi->kind == SRV_KIND_AR && strcmp(s, "xt")) return srv_fail(e, 400, "sampler", "invalid_value", "sampler: the XTX model samples with xt only");
        json_object_set_new(job, "sampler", json_string(s));
    }
    return resolve_steps(f, from_form, job, e);
}

json_t *srv_job_from_fields(const json_t *f, bool from_form, bool has_image, const srv_model_info *mi,
                            uint64_t seed_default, srv_err *e) {
    json_t *job = json_object();
    const char *prompt = NULL, *model = NULL, *size = NULL, *mode = NULL;
    double fps = mi->fps, seed = 0;
    int w = mi->native_w, h = mi->native_h, r;
    if (check_unknown(f, e)) goto fail;
    if ((r = get_string(f, "prompt", &prompt, e)) < 0) goto fail;
    if (!r) { srv_fail(e, 400, "prompt", "missing_required_parameter", "prompt is required"); goto fail; }
    if (strlen(prompt) > mi->max_prompt) { srv_fail(e, 400, "prompt", "string_above_max_length", "prompt: at most %zu bytes", mi->max_prompt); goto fail; }
    if (get_string(f, "model", &model, e) < 0) goto fail;
    if (model && strcmp(model, mi->id)) { srv_fail(e, 400, "model", "model_not_found", "model '%.60s' is not served here (this server has '%s')", model, mi->id); goto fail; }
    if (get_string(f, "mode", &mode, e) < 0) goto fail;
    if (mode && strcmp(mode, "ar") && strcmp(mode, "xt")) { srv_fail(e, 400, "mode", "invalid_value", "mode: xt or ar"); goto fail; }
    bool ar = mi->kind == SRV_KIND_AR;
    if (mode && (!strcmp(mode, "ar")) != ar) { srv_fail(e, 400, "mode", "invalid_value", "mode %s: the model %s is %s", mode, mi->id, ar ? "an XTX (ar) model" : "an XT model (no ar mode)"); goto fail; }
    if (json_object_get(f, "character_ids")) { srv_fail(e, 400, "character_ids", "unsupported_parameter", "character_ids are not supported"); goto fail; }
    if (json_object_get(f, "input_reference") && !has_image) {
        srv_fail(e, 400, "input_reference", "invalid_type", "input_reference: send the image as a multipart/form-data file part"); goto fail;
    }
    if (has_image && ar) { srv_fail(e, 400, "input_reference", "invalid_value", "input_reference: the XTX model has no image input"); goto fail; }
    if ((r = get_string(f, "size", &size, e)) < 0) goto fail;
    if (r && resolve_size(size, mi, &w, &h, e)) goto fail;
    if ((r = get_number(f, "fps", from_form, false, 1, 120, &fps, e)) < 0) goto fail;
    if (resolve_frames(f, from_form, mi, fps, job, e)) goto fail;
    if ((r = get_number(f, "seed", from_form, true, 0, 9007199254740991.0, &seed, e)) < 0) goto fail;
    if (resolve_options(f, from_form, mi, job, e)) goto fail;
    if (ar && resolve_prompts(f, from_form, (int)json_integer_value(json_object_get(job, "frames")), mi->max_prompt, job, e)) goto fail;
    if (!ar && json_object_get(f, "prompts")) { srv_fail(e, 400, "prompts", "invalid_value", "prompts: prompt switches need mode ar"); goto fail; }
    if (ar && strpbrk(prompt, "\n\r\t") && json_object_get(job, "prompts")) { srv_fail(e, 400, "prompt", "invalid_value", "prompt: one line with prompts"); goto fail; }
    char sz[32];
    snprintf(sz, sizeof sz, "%dx%d", w, h);
    json_object_set_new(job, "prompt", json_string(prompt));
    json_object_set_new(job, "model", json_string(mi->id));
    json_object_set_new(job, "mode", json_string(ar ? "ar" : "xt"));
    json_object_set_new(job, "width", json_integer(w));
    json_object_set_new(job, "height", json_integer(h));
    json_object_set_new(job, "size", json_string(sz));
    json_object_set_new(job, "fps", json_real(fps));
    json_object_set_new(job, "seed", json_integer(r ? (json_int_t)seed : (json_int_t)(seed_default & ((1ull << 53) - 1))));
    json_object_set_new(job, "input", json_boolean(has_image));
    return job;
fail:
    json_decref(job);
    return NULL;
}

/* ---------------------------------------------------------------- --store redis://... */

/* copy [p, p+n) into out (cap bytes) with %XX decoded; -1 when it does not fit or an escape is malformed */
static int url_part(const char *p, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = hi * 16 + lo, i += 2;
        }
        if (c == 0 || k + 1 >= cap) return -1;
        out[k++] = (char)c;
    }
    out[k] = 0;
    return 0;
}

static int url_num(const char *p, size_t n, int lo, int hi, int *out) {
    if (n == 0 || n > 9) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i])) return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int srv_redis_url_parse(const char *url, srv_redis_url *o, char *err, size_t cap) {
    memset(o, 0, sizeof *o);
    o->port = 6379;
    if (!strncmp(url, "rediss://", 9))
        return snprintf(err, cap, "--store %.200s: TLS (rediss://) needs hiredis with SSL, which Debian 12's hiredis 0.14 "
                                  "lacks: reach Redis through a TLS tunnel (stunnel) and give its local end", url), -1;
    if (strncmp(url, "redis://", 8)) return snprintf(err, cap, "--store %.200s: expected redis://HOST[:PORT][/DB]", url), -1;
    const char *p = url + 8, *end = p + strlen(p), *slash = strchr(p, '/');
    const char *hostend = slash ? slash : end, *at = NULL;
    for (const char *q = p; q < hostend; q++)
        if (*q == '@') at = q; /* the last '@' before the path ends the credentials */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) return snprintf(err, cap, "--store: the credentials must be [USER]:PASSWORD@"), -1;
        if (url_part(p, (size_t)(colon - p), o->user, sizeof o->user) ||
            url_part(colon + 1, (size_t)(at - colon - 1), o->password, sizeof o->password) || !o->password[0])
            return snprintf(err, cap, "--store: the user or password is empty, too long or badly %%-escaped"), -1;
        p = at + 1;
    }
    const char *colon = NULL;
    if (*p == '[') { /* [IPv6] */
        const char *rb = memchr(p, ']', (size_t)(hostend - p));
        if (!rb || rb == p + 1 || (size_t)(rb - p - 1) >= sizeof o->host) return snprintf(err, cap, "--store: a bad [IPv6] host"), -1;
        memcpy(o->host, p + 1, (size_t)(rb - p - 1));
        if (rb + 1 < hostend && rb[1] != ':') return snprintf(err, cap, "--store: text after the ] of the host"), -1;
        colon = rb + 1 < hostend ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(hostend - p));
        const char *he = colon ? colon : hostend;
        if (he == p || (size_t)(he - p) >= sizeof o->host) return snprintf(err, cap, "--store: the host is empty or too long"), -1;
        memcpy(o->host, p, (size_t)(he - p));
        for (const char *q = o->host; *q; q++)
            if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_')
                return snprintf(err, cap, "--store: the host has a character '%c' not allowed in a host name", *q), -1;
    }
    if (colon && url_num(colon + 1, (size_t)(hostend - colon - 1), 1, 65535, &o->port))
        return snprintf(err, cap, "--store: the port must be a number in [1, 65535]"), -1;
    if (slash && slash + 1 < end && url_num(slash + 1, (size_t)(end - slash - 1), 0, 100000, &o->db))
        return snprintf(err, cap, "--store: the database must be a number (redis://HOST:PORT/DB)"), -1;
    return 0;
}
