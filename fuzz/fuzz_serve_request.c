/* libFuzzer target: hb serve's request handling (tools/serve/request.c), everything a client controls before
 * a job exists. The first byte picks the entry point, the second the model (XT or XTX):
 *   0  a JSON create body                       -> fields -> job
 *   1  "CONTENT-TYPE\n" + a multipart body     -> fields + image span -> job
 *   2  a path, optionally "?query"              -> route, list query, variant, one query value
 *   3  an Authorization header value            -> auth check against a fixed key
 *   4  a --store value                          -> redis:// URL (host, port, db, credentials)
 * Invariants: every failure is a 4xx with a message; every job fits the model's rules; the image span lies
 * inside the body. */
#include "serve/serve.h"
#include <stdlib.h>
#include <string.h>

static const srv_model_info k_models[2] = {
    {"xt", SRV_KIND_XT, 32, 24, 1280, 704, 1920, 241, 8192},
    {"xtx", SRV_KIND_AR, 16, 16, 832, 480, 1920, 1921, 8192},
};

static void check_err(const srv_err *e) {
    if (e->status < 400 || e->status > 499 || !e->message[0]) abort();
}

static void check_job(json_t *job, const srv_model_info *mi) {
    if (!job) return;
    json_int_t w = json_integer_value(json_object_get(job, "width")), h = json_integer_value(json_object_get(job, "height"));
    json_int_t f = json_integer_value(json_object_get(job, "frames"));
    if (w <= 0 || h <= 0 || w % mi->size_mult || h % mi->size_mult || w > mi->max_side || h > mi->max_side) abort();
    if (f < 1 || f > mi->max_frames || (f - 1) % 4) abort();
    if (!json_is_string(json_object_get(job, "prompt")) || !json_is_string(json_object_get(job, "seconds"))) abort();
    char *txt = json_dumps(job, JSON_COMPACT); /* what the store keeps: must serialise */
    if (!txt) abort();
    free(txt);
    json_decref(job);
}

static void create(const char *body, size_t n, bool form, const char *ctype, const srv_model_info *mi) {
    srv_err e = {0};
    srv_span img = {NULL, 0};
    json_t *f = form ? srv_fields_from_multipart(ctype, (const uint8_t *)body, n, &img, &e) : srv_fields_from_json(body, n, &e);
    if (!f) { check_err(&e); return; }
    if (img.data && (img.data < (const uint8_t *)body || img.data + img.size > (const uint8_t *)body + n)) abort();
    json_t *job = srv_job_from_fields(f, form, img.data != NULL, mi, 12345, &e);
    if (!job) check_err(&e);
    check_job(job, mi);
    json_decref(f);
}

static void store_url(const char *s) {
    srv_redis_url u;
    char err[256] = "";
    if (srv_redis_url_parse(s, &u, err, sizeof err)) {
        if (!err[0]) abort();
        return;
    }
    if (!u.host[0] || u.port < 1 || u.port > 65535 || u.db < 0 || (u.user[0] && !u.password[0])) abort();
}

static void path(const char *s) {
    char p[2048];
    snprintf(p, sizeof p, "%s", s);
    char *q = strchr(p, '?');
    if (q) *q++ = 0;
    srv_route r = srv_route_parse(p);
    if (r.kind >= SRV_R_VIDEO && !srv_valid_id(r.id)) abort();
    srv_list_query lq;
    srv_err e = {0};
    if (srv_list_query_parse(q, &lq, &e)) check_err(&e);
    else if (lq.limit < 1 || lq.limit > 100 || (lq.after[0] && !srv_valid_id(lq.after))) abort();
    if (srv_variant_parse(q, &e) < 0) check_err(&e);
    char v[64];
    if (srv_query_get(q, "after", v, sizeof v) > 0 && strlen(v) >= sizeof v) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const srv_model_info *mi = &k_models[data[1] & 1];
    char *s = malloc(size - 1); /* NUL-terminated copy of the rest (the parsers also get its exact length) */
    memcpy(s, data + 2, size - 2);
    s[size - 2] = 0;
    switch (data[0] & 7) {
    case 0: create(s, size - 2, false, NULL, mi); break;
    case 1: {
        char *nl = memchr(s, '\n', size - 2);
        if (nl) {
            *nl = 0;
            create(nl + 1, size - 2 - (size_t)(nl + 1 - s), true, s, mi);
        }
        break;
    }
    case 2: path(s); break;
    case 3:
        if (srv_auth_ok(s, "s3cret-key") && strcmp(s, "Bearer s3cret-key")) abort();
        break;
    case 4: store_url(s); break;
    default: break;
    }
    free(s);
    return 0;
}
