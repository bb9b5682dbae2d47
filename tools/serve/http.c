/* hb serve: the HTTP side on CivetWeb (thread pool, one request per thread). Every request is routed here;
 * parsing and validation are request.c's, state changes go through the store under the server lock. */
#include "serve.h"
#include "io/image.h"
#include <civetweb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define JSON_BODY_MAX (1 << 20)

/* ---------------------------------------------------------------- replies */

static int reply_json(struct mg_connection *c, int status, json_t *body, const char *hname, const char *hval) {
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    size_t n = txt ? strlen(txt) : 0;
    char len[32];
    snprintf(len, sizeof len, "%zu", n);
    mg_response_header_start(c, status);
    mg_response_header_add(c, "Content-Type", "application/json", -1);
    mg_response_header_add(c, "Content-Length", len, -1);
    if (hname) mg_response_header_add(c, hname, hval, -1);
    mg_response_header_send(c);
    if (n && strcmp(mg_get_request_info(c)->request_method, "HEAD")) mg_write(c, txt, n);
    free(txt);
    return status;
}

static int reply_err(struct mg_connection *c, const srv_err *e) { return reply_json(c, e->status, srv_err_json(e), NULL, NULL); }

static int fail(struct mg_connection *c, int status, const char *param, const char *code, const char *msg) {
    srv_err e;
    srv_fail(&e, status, param, code, "%s", msg);
    return reply_err(c, &e);
}

static int reply_video(struct mg_connection *c, int status, json_t *video) {
    return reply_json(c, status, video, "openai-poll-after-ms", "500");
}

/* ---------------------------------------------------------------- create */

/* The body, at most `limit` bytes (413 beyond). NULL after replying. */
static char *read_body(struct mg_connection *c, size_t limit, size_t *n, int *status) {
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (ri->content_length > (long long)limit) {
        char m[128];
        snprintf(m, sizeof m, "the request body is larger than %zu bytes", limit);
        *status = fail(c, 413, "", "request_too_large", m);
        return NULL;
    }
    size_t cap = ri->content_length >= 0 ? (size_t)ri->content_length : 65536, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) { *status = fail(c, 500, "", "server_error", "out of memory"); return NULL; }
        if (len == cap) {
            if (ri->content_length >= 0) break;
            cap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *nb = len >= limit + 1 ? NULL : realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                char m[128];
                snprintf(m, sizeof m, "the request body is larger than %zu bytes", limit);
                *status = fail(c, 413, "", "request_too_large", m);
                return NULL;
            }
            buf = nb;
        }
        int r = mg_read(c, buf + len, cap - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    if (ri->content_length >= 0 && len != (size_t)ri->content_length) {
        free(buf);
        *status = fail(c, 400, "", "incomplete_body", "the request body ended early");
        return NULL;
    }
    buf[len] = 0;
    *n = len;
    return buf;
}

static void new_id(char *id) {
    uint8_t r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (int i = 0; i < 16; i++) r[i] = (uint8_t)(rand() ^ (int)time(NULL) >> (i % 8));
    memcpy(id, "video_", 6);
    for (int i = 0; i < 16; i++) snprintf(id + 6 + 2 * i, 3, "%02x", r[i]);
}

/* The uploaded image, written beside the jobs and decoded once to reject a bad one now. */
static int save_image(srv_server *s, const char *id, srv_span img, srv_err *e) {
    if (!img.size) return srv_fail(e, 400, "input_reference", "invalid_image", "input_reference: the file is empty");
    char tmp[4300], path[4200];
    srv_path(s, id, "img", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool ok = fd >= 0 && write(fd, img.data, img.size) == (ssize_t)img.size && fsync(fd) == 0;
    if (fd >= 0 && close(fd)) ok = false;
    if (!ok) { unlink(tmp); return srv_fail(e, 500, "input_reference", "server_error", "cannot store the image"); }
    hb_image im = {0};
    if (hb_image_load(tmp, &im)) {
        unlink(tmp);
        return srv_fail(e, 400, "input_reference", "invalid_image", "input_reference: not a readable PNG or JPEG image");
    }
    bool big = (int64_t)im.width * im.height > (int64_t)8192 * 8192;
    hb_image_free(&im);
    if (big || rename(tmp, path)) {
        unlink(tmp);
        return big ? srv_fail(e, 400, "input_reference", "invalid_image", "input_reference: more than 8192 x 8192 pixels")
                   : srv_fail(e, 500, "input_reference", "server_error", "cannot store the image");
    }
    return 0;
}

static bool queue_full(srv_server *s, char *retry, size_t cap) {
    int64_t q = srv_store_count(s->store, "queued");
    if (q >= 0 && q < s->queue_max) return false;
    if (q < 0) q = s->queue_max;
    double avg = s->avg_job_s, par = 1;
    if (s->cluster) { /* the cluster's jobs, run by as many workers as are busy */
        avg = srv_redis_mean_job_s(s->store);
        int64_t running = srv_store_count(s->store, "in_progress");
        par = running > 1 ? (double)running : 1;
    }
    double wait = (avg > 0 ? avg : 10) * (double)(q + 1) / par;
    snprintf(retry, cap, "%d", wait < 1 ? 1 : wait > 3600 ? 3600 : (int)wait);
    return true;
}

/* In a cluster: the rules of the model the request names (or the only one), as its workers declared them. */
static int model_of(srv_server *s, const json_t *fields, srv_model_info *mi, srv_err *e) {
    const json_t *m = json_object_get(fields, "model");
    if (m && !json_is_string(m)) return srv_fail(e, 400, "model", "invalid_type", "model: expected a string");
    pthread_mutex_lock(&s->mu);
    int rc = srv_redis_model(s->store, json_string_value(m), mi, e);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int create(struct mg_connection *c, srv_server *s) {
    const char *ct = mg_get_header(c, "Content-Type");
    bool form = ct && !strncasecmp(ct, "multipart/form-data", 19);
    if (!form && (!ct || strncasecmp(ct, "application/json", 16)))
        return fail(c, 415, "", "unsupported_media_type", "Content-Type must be application/json or multipart/form-data");
    srv_err e = {0};
    int status = 0;
    size_t n = 0;
    char *body = read_body(c, form ? s->max_body : JSON_BODY_MAX, &n, &status);
    if (!body) return status;
    srv_span img = {NULL, 0};
    json_t *fields = form ? srv_fields_from_multipart(ct, (const uint8_t *)body, n, &img, &e) : srv_fields_from_json(body, n, &e);
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) seed = (uint64_t)time(NULL);
    srv_model_info mi = s->mi;
    if (fields && s->cluster && model_of(s, fields, &mi, &e)) json_decref(fields), fields = NULL;
    json_t *job = fields ? srv_job_from_fields(fields, form, img.data != NULL, &mi, seed, &e) : NULL;
    json_decref(fields);
    char id[SRV_ID_LEN + 1], retry[16];
    new_id(id);
    int rc = -1;
    pthread_mutex_lock(&s->mu);
    bool full = job && queue_full(s, retry, sizeof retry);
    pthread_mutex_unlock(&s->mu);
    if (job && !full && (!img.data || !save_image(s, id, img, &e))) {
        json_t *v = NULL;
        pthread_mutex_lock(&s->mu);
        full = queue_full(s, retry, sizeof retry); /* again: the image took time */
        srv_job j;
        int ins = full || s->stopping ? -1 : srv_store_insert(s->store, id, (int64_t)time(NULL), job);
        if (ins == 1 && !full) full = true, queue_full(s, retry, sizeof retry); /* the cluster's queue filled meanwhile */
        if (ins == 0 && srv_store_get(s->store, id, &j) == 1) {
            if (s->cluster) snprintf(j.status, sizeof j.status, "queued"), j.progress = 0; /* as created: a worker may have it already */
            v = srv_video_json(s, &j);
            srv_emit(s, id, "status", json_incref(v), false);
            pthread_cond_signal(&s->work);
            srv_job_clear(&j);
        }
        pthread_mutex_unlock(&s->mu);
        if (v) rc = reply_video(c, 200, v);
        else {
            srv_remove_files(s, id);
            if (!full) srv_fail(&e, 503, "", "unavailable", "the server is shutting down or cannot store the job");
        }
    }
    free(body);
    json_decref(job);
    if (rc >= 0) return rc;
    if (full) {
        srv_fail(&e, 429, "", "queue_full", "the job queue is full (%d jobs); retry later", s->queue_max);
        return reply_json(c, 429, srv_err_json(&e), "Retry-After", retry);
    }
    return reply_err(c, &e);
}

/* ---------------------------------------------------------------- per-video routes */

/* the job (lock held); 404 replied when unknown */
static int get_job(struct mg_connection *c, srv_server *s, const char *id, srv_job *j, int *status) {
    int r = srv_store_get(s->store, id, j);
    if (r == 1) return 1;
    pthread_mutex_unlock(&s->mu);
    *status = r == 0 ? fail(c, 404, "id", "video_not_found", "no video with this id") : fail(c, 500, "", "server_error", "database error");
    pthread_mutex_lock(&s->mu);
    return 0;
}

static int retrieve(struct mg_connection *c, srv_server *s, const char *id) {
    srv_job j;
    int st = 0;
    pthread_mutex_lock(&s->mu);
    if (!get_job(c, s, id, &j, &st)) { pthread_mutex_unlock(&s->mu); return st; }
    json_t *v = srv_video_json(s, &j);
    pthread_mutex_unlock(&s->mu);
    srv_job_clear(&j);
    return reply_video(c, 200, v);
}

/* In a cluster the job may run on any worker: one script decides against the job's current status, and a running
 * job gets the flag its worker polls (cluster.c). */
static int cluster_cancel(struct mg_connection *c, srv_server *s, const char *id, bool del) {
    char prior[16];
    srv_job j = {0};
    json_t *deleted = json_pack("{s:s, s:s, s:b}", "id", id, "object", "video.deleted", "deleted", 1), *out = NULL;
    pthread_mutex_lock(&s->mu);
    int64_t exp = (int64_t)time(NULL) + (int64_t)(s->keep_hours * 3600);
    int rc = srv_redis_cancel(s->store, id, del, exp, prior, sizeof prior);
    bool finished = !strcmp(prior, "completed") || !strcmp(prior, "failed");
    if (!rc && prior[0] && (del ? strcmp(prior, "in_progress") : !strcmp(prior, "queued"))) {
        srv_remove_files(s, id); /* deleted, or cancelled before it ran: nothing of it stays */
        if (del) srv_emit(s, id, "status", json_incref(deleted), true);
    }
    if (!rc && prior[0] && !del && !finished && srv_store_get(s->store, id, &j) == 1) {
        out = srv_video_json(s, &j);
        if (!strcmp(prior, "queued")) srv_emit(s, id, "status", json_incref(out), true);
    }
    pthread_mutex_unlock(&s->mu);
    srv_job_clear(&j);
    int st = rc ? fail(c, 503, "", "unavailable", "the job store (Redis) does not answer")
           : !prior[0] ? fail(c, 404, "id", "video_not_found", "no video with this id")
           : del ? reply_json(c, 200, json_incref(deleted), NULL, NULL)
           : finished ? fail(c, 409, "id", "invalid_state", "the video is already finished")
           : out ? reply_video(c, 200, json_incref(out)) : fail(c, 404, "id", "video_not_found", "no video with this id");
    json_decref(deleted), json_decref(out);
    return st;
}

static int delete_or_cancel(struct mg_connection *c, srv_server *s, const char *id, bool del) {
    if (s->cluster) return cluster_cancel(c, s, id, del);
    srv_job j;
    int st = 0;
    pthread_mutex_lock(&s->mu);
    if (!get_job(c, s, id, &j, &st)) { pthread_mutex_unlock(&s->mu); return st; }
    json_t *out = NULL;
    bool running = !strcmp(s->running, id), finished = !strcmp(j.status, "completed") || !strcmp(j.status, "failed");
    if (running) {
        s->cancel = del ? SRV_CANCEL_DELETE : SRV_CANCEL_CANCEL; /* the worker stops it at the next step */
    } else if (del) {
        srv_store_delete(s->store, id);
        srv_remove_files(s, id);
        srv_emit(s, id, "status", json_pack("{s:s, s:s, s:b}", "id", id, "object", "video.deleted", "deleted", 1), true);
    } else if (!finished) {
        int64_t now = (int64_t)time(NULL);
        srv_store_set_status(s->store, id, "failed", 0, now, now + (int64_t)(s->keep_hours * 3600), "cancelled", "cancelled by request");
        srv_remove_files(s, id);
    }
    if (del) out = json_pack("{s:s, s:s, s:b}", "id", id, "object", "video.deleted", "deleted", 1);
    else if (finished) {
        pthread_mutex_unlock(&s->mu);
        srv_job_clear(&j);
        return fail(c, 409, "id", "invalid_state", "the video is already finished");
    } else {
        srv_job_clear(&j);
        srv_store_get(s->store, id, &j);
        out = srv_video_json(s, &j);
        if (!running) srv_emit(s, id, "status", json_incref(out), true);
    }
    pthread_mutex_unlock(&s->mu);
    srv_job_clear(&j);
    return del ? reply_json(c, 200, out, NULL, NULL) : reply_video(c, 200, out);
}

static int content(struct mg_connection *c, srv_server *s, const char *id, const char *query) {
    srv_err e;
    int variant = srv_variant_parse(query, &e);
    if (variant < 0) return reply_err(c, &e);
    srv_job j;
    int st = 0;
    pthread_mutex_lock(&s->mu);
    if (!get_job(c, s, id, &j, &st)) { pthread_mutex_unlock(&s->mu); return st; }
    bool done = !strcmp(j.status, "completed");
    pthread_mutex_unlock(&s->mu);
    srv_job_clear(&j);
    if (!done) return fail(c, 409, "id", "video_not_ready", "the video is not completed");
    char path[4200];
    srv_path(s, id, variant ? "jpg" : "mp4", path, sizeof path);
    if (access(path, R_OK)) return fail(c, 404, "variant", "not_found", "this variant is not available");
#ifdef HB_HAVE_JPEG
    const char *mime = variant ? "image/jpeg" : "video/mp4";
#else
    const char *mime = variant ? "image/png" : "video/mp4";
#endif
    mg_send_mime_file2(c, path, mime, "Cache-Control: private, max-age=3600\r\n");
    return 200;
}

static void sse_start(struct mg_connection *c) {
    mg_response_header_start(c, 200);
    mg_response_header_add(c, "Content-Type", "text/event-stream", -1);
    mg_response_header_add(c, "Cache-Control", "no-cache", -1);
    mg_response_header_add(c, "Transfer-Encoding", "chunked", -1);
    mg_response_header_send(c);
}

static bool sse_send_video(struct mg_connection *c, json_t *v) {
    char *d = json_dumps(v, JSON_COMPACT), *first = NULL;
    json_decref(v);
    bool ok = d && asprintf(&first, "event: status\ndata: %s\n\n", d) > 0 && mg_send_chunk(c, first, (unsigned)strlen(first)) > 0;
    free(d);
    free(first);
    return ok;
}

/* The events of a cluster's job come from its Redis stream (any worker, any API process publishes there), read
 * on a connection of this stream's own. */
static int cluster_events(struct mg_connection *c, srv_server *s, const char *id) {
    char err[300], cursor[64];
    srv_store *es = srv_redis_open_like(s->store, 10, err, sizeof err);
    srv_job j = {0};
    int r = !es || srv_redis_event_cursor(es, id, cursor, sizeof cursor) ? -1 : srv_store_get(es, id, &j);
    if (r <= 0) {
        srv_store_close(es);
        return r == 0 ? fail(c, 404, "id", "video_not_found", "no video with this id") : fail(c, 503, "", "unavailable", "the job store (Redis) does not answer");
    }
    bool terminal = !strcmp(j.status, "completed") || !strcmp(j.status, "failed");
    pthread_mutex_lock(&s->mu);
    json_t *v = srv_video_json(s, &j);
    pthread_mutex_unlock(&s->mu);
    srv_job_clear(&j);
    char *past = NULL; /* chunks made before this stream opened ("0-0": none yet) */
    if (strcmp(cursor, "0-0") && srv_redis_chunk_events(es, id, cursor, &past)) past = (free(past), NULL);
    sse_start(c);
    bool ok = sse_send_video(c, v);
    if (ok && past) ok = mg_send_chunk(c, past, (unsigned)strlen(past)) > 0;
    free(past);
    while (ok && !terminal) {
        char *out = NULL;
        if (srv_redis_events(es, id, cursor, sizeof cursor, 5000, &out, &terminal)) break;
        bool gone = !out && srv_store_get(es, id, &j) == 0; /* deleted without an event (expired) */
        srv_job_clear(&j);
        ok = out ? mg_send_chunk(c, out, (unsigned)strlen(out)) > 0 : mg_send_chunk(c, ": keep-alive\n\n", 15) > 0;
        free(out);
        pthread_mutex_lock(&s->mu);
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop || gone) break;
    }
    if (ok) mg_send_chunk(c, "", 0);
    srv_store_close(es);
    return 200;
}

/* The SSE text of job id's events from *from to the ring's end (only its chunks when chunks_only; NULL when
 * none); *from moves past what was taken, *terminal is set by the job's final status. Under s->mu. */
static char *ring_text(const srv_server *s, const char *id, uint64_t *from, bool chunks_only, bool *terminal) {
    char *out = NULL;
    size_t on = 0;
    for (; *from < s->ev_next; ++*from) {
        const srv_event *e = &s->ring[*from % SRV_EVENTS];
        if (strcmp(e->id, id) || !e->text || (chunks_only && !strstr(e->text, "event: chunk\n"))) continue;
        size_t l = strlen(e->text);
        char *nb = realloc(out, on + l + 1);
        if (!nb) break; /* the rest on the next round */
        out = nb;
        memcpy(out + on, e->text, l + 1);
        on += l;
        *terminal |= e->terminal;
    }
    return out;
}

/* Server-Sent Events: the current Video object, the chunks already made, then every new event of this video
 * until its final status. */
static int events(struct mg_connection *c, srv_server *s, const char *id) {
    if (s->cluster) return cluster_events(c, s, id);
    srv_job j;
    int st = 0;
    pthread_mutex_lock(&s->mu);
    if (!get_job(c, s, id, &j, &st)) { pthread_mutex_unlock(&s->mu); return st; }
    json_t *v = srv_video_json(s, &j);
    bool terminal = !strcmp(j.status, "completed") || !strcmp(j.status, "failed");
    uint64_t cursor = s->ev_next;
    uint64_t first = s->ev_next > SRV_EVENTS ? s->ev_next - SRV_EVENTS : 0;
    bool ended = false;
    char *past = ring_text(s, id, &first, true, &ended); /* chunks made before this stream opened, still in the ring */
    pthread_mutex_unlock(&s->mu);
    srv_job_clear(&j);
    sse_start(c);
    bool ok = sse_send_video(c, v);
    if (ok && past) ok = mg_send_chunk(c, past, (unsigned)strlen(past)) > 0;
    free(past);
    while (ok && !terminal) {
        pthread_mutex_lock(&s->mu);
        if (cursor + SRV_EVENTS < s->ev_next) cursor = s->ev_next - SRV_EVENTS; /* fell behind: the ring moved on */
        if (cursor == s->ev_next && !s->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 10;
            pthread_cond_timedwait(&s->events, &s->mu, &ts);
        }
        bool stop = s->stopping;
        char *out = ring_text(s, id, &cursor, false, &terminal);
        pthread_mutex_unlock(&s->mu);
        ok = out ? mg_send_chunk(c, out, (unsigned)strlen(out)) > 0 : mg_send_chunk(c, ": keep-alive\n\n", 15) > 0;
        free(out);
        if (stop) break;
    }
    if (ok) mg_send_chunk(c, "", 0); /* the end of the stream */
    return 200;
}

/* ---------------------------------------------------------------- the rest */

static int list(struct mg_connection *c, srv_server *s, const char *query) {
    srv_err e;
    srv_list_query q;
    if (srv_list_query_parse(query, &q, &e)) return reply_err(c, &e);
    srv_job *v = NULL;
    int n = 0;
    bool more = false;
    pthread_mutex_lock(&s->mu);
    int r = srv_store_list(s->store, q.after, q.limit, q.asc, &v, &n, &more);
    json_t *data = json_array();
    for (int i = 0; r == 0 && i < n; i++) json_array_append_new(data, srv_video_json(s, &v[i]));
    pthread_mutex_unlock(&s->mu);
    json_t *out = json_pack("{s:s, s:o, s:s?, s:s?, s:b}", "object", "list", "data", data, "first_id", n ? v[0].id : NULL,
                            "last_id", n ? v[n - 1].id : NULL, "has_more", more);
    for (int i = 0; i < n; i++) srv_job_clear(&v[i]);
    free(v);
    if (r == 1) { json_decref(out); return fail(c, 400, "after", "invalid_value", "after: no video with this id"); }
    if (r < 0) { json_decref(out); return fail(c, 500, "", "server_error", "database error"); }
    return reply_json(c, 200, out, NULL, NULL);
}

static const char *role_name(srv_role r) { return r == SRV_ROLE_API ? "api" : r == SRV_ROLE_WORKER ? "worker" : "both"; }

/* A cluster process: its role and model, the cluster's queue, whether Redis answers (503 when not). */
static int cluster_health(struct mg_connection *c, srv_server *s) {
    pthread_mutex_lock(&s->mu);
    int64_t queued = srv_store_count(s->store, "queued"), running = srv_store_count(s->store, "in_progress");
    bool up = queued >= 0 && running >= 0 && !s->stopping;
    json_t *out = json_pack("{s:s, s:s, s:s?, s:s?, s:{s:I, s:I, s:s?, s:i}}", "status", s->stopping ? "stopping" : up ? "ok" : "store_unavailable",
                            "role", role_name(s->role), "model", s->mi.id[0] ? s->mi.id : NULL, "worker",
                            s->role != SRV_ROLE_API ? s->worker_name : NULL, "queue", "queued", (json_int_t)queued,
                            "running", (json_int_t)running, "running_here", s->running[0] ? s->running : NULL, "max", s->queue_max);
    pthread_mutex_unlock(&s->mu);
    return reply_json(c, up ? 200 : 503, out, NULL, NULL);
}

static int cluster(struct mg_connection *c, srv_server *s) {
    if (!s->cluster) return fail(c, 404, "", "not_found", "this server is not part of a cluster (hb serve --store redis://...)");
    pthread_mutex_lock(&s->mu);
    json_t *out = srv_redis_cluster(s->store);
    pthread_mutex_unlock(&s->mu);
    return reply_json(c, 200, out, NULL, NULL);
}

static int health(struct mg_connection *c, srv_server *s) {
    if (s->cluster) return cluster_health(c, s);
    pthread_mutex_lock(&s->mu);
    json_t *out = json_pack("{s:s, s:s, s:{s:I, s:s?, s:i}}", "status", s->stopping ? "stopping" : "ok", "model", s->mi.id,
                            "queue", "queued", (json_int_t)srv_store_count(s->store, "queued"), "running",
                            s->running[0] ? s->running : NULL, "max", s->queue_max);
    pthread_mutex_unlock(&s->mu);
    return reply_json(c, s->stopping ? 503 : 200, out, NULL, NULL);
}

static int models(struct mg_connection *c, srv_server *s) {
    json_t *ids = json_array(), *data = json_array();
    if (s->cluster) {
        pthread_mutex_lock(&s->mu);
        json_t *m = srv_redis_models(s->store);
        json_array_extend(ids, m);
        json_decref(m);
        pthread_mutex_unlock(&s->mu);
    } else json_array_append_new(ids, json_string(s->mi.id));
    for (size_t i = 0; i < json_array_size(ids); i++)
        json_array_append_new(data, json_pack("{s:O, s:s, s:I, s:s}", "id", json_array_get(ids, i), "object", "model", "created",
                                              (json_int_t)s->started_at, "owned_by", "hummingbird"));
    json_decref(ids);
    return reply_json(c, 200, json_pack("{s:s, s:o}", "object", "list", "data", data), NULL, NULL);
}

static int route(struct mg_connection *c) {
    const struct mg_request_info *ri = mg_get_request_info(c);
    srv_server *s = ri->user_data;
    const char *m = ri->request_method, *q = ri->query_string;
    srv_route r = srv_route_parse(ri->local_uri ? ri->local_uri : "");
    if (s->api_key && r.kind != SRV_R_HEALTH && !srv_auth_ok(mg_get_header(c, "Authorization"), s->api_key))
        return reply_json(c, 401, json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", "missing or wrong API key (Authorization: Bearer KEY)",
                                            "type", "authentication_error", "param", "code", "invalid_api_key"), "WWW-Authenticate", "Bearer");
    bool get = !strcmp(m, "GET") || !strcmp(m, "HEAD"), post = !strcmp(m, "POST");
    if (s->role == SRV_ROLE_WORKER && r.kind != SRV_R_HEALTH && r.kind != SRV_R_CLUSTER)
        return fail(c, 404, "", "not_found", "this process is a worker (--role worker): send requests to an API process");
    switch (r.kind) {
    case SRV_R_CLUSTER: if (get) return cluster(c, s); break;
    case SRV_R_HEALTH: if (get) return health(c, s); break;
    case SRV_R_MODELS: if (get) return models(c, s); break;
    case SRV_R_VIDEOS:
        if (post) return create(c, s);
        if (get) return list(c, s, q);
        break;
    case SRV_R_VIDEO:
        if (get) return retrieve(c, s, r.id);
        if (!strcmp(m, "DELETE")) return delete_or_cancel(c, s, r.id, true);
        break;
    case SRV_R_CONTENT: if (get) return content(c, s, r.id, q); break;
    case SRV_R_CANCEL: if (post) return delete_or_cancel(c, s, r.id, false); break;
    case SRV_R_EVENTS: if (get) return events(c, s, r.id); break;
    case SRV_R_REMIX:
        if (post) return fail(c, 501, "", "not_implemented", "remix is not implemented: create a new video with another seed instead");
        break;
    case SRV_R_NOT_FOUND: return fail(c, 404, "", "not_found", "no such endpoint (see GET /v1/videos, POST /v1/videos)");
    }
    return fail(c, 405, "", "method_not_allowed", "this method is not allowed on this endpoint");
}

/* CivetWeb's threads have a 100 KiB stack, most of it used before the callback: each request runs on a
 * thread of our own with room for JSON, image decoding and printf. */
typedef struct {
    struct mg_connection *c;
    int status;
} handle_call;

static void *handle_thread(void *arg) {
    handle_call *h = arg;
    h->status = route(h->c);
    return NULL;
}

static int handle(struct mg_connection *c) {
    handle_call h = {c, 0};
    pthread_attr_t at;
    pthread_t t;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, (size_t)1 << 20);
    int rc = pthread_create(&t, &at, handle_thread, &h);
    pthread_attr_destroy(&at);
    if (rc) return fail(c, 503, "", "unavailable", "the server is out of threads");
    pthread_join(t, NULL);
    return h.status;
}

static int log_message(const struct mg_connection *c, const char *msg) {
    (void)c;
    fprintf(stderr, "hb serve: http: %s\n", msg);
    return 1;
}

struct mg_context *srv_http_start(srv_server *s, const char *host, int port, int threads, char *err, size_t cap) {
    char ports[300], nthreads[16];
    snprintf(ports, sizeof ports, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    const char *opts[] = {"listening_ports", ports, "num_threads", nthreads, "request_timeout_ms", "60000",
                          "enable_keep_alive", "yes", "keep_alive_timeout_ms", "5000", NULL};
    struct mg_callbacks cb = {0};
    cb.begin_request = handle;
    cb.log_message = log_message;
    mg_init_library(0);
    struct mg_context *ctx = mg_start(&cb, s, opts);
    if (!ctx) snprintf(err, cap, "cannot listen on %s (in use, or not an address of this machine?)", ports);
    return ctx;
}
