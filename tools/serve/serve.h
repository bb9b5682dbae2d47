/* hb serve: an HTTP server with OpenAI's videos API (docs/serving.md) over include/hummingbird.h.
 *
 *   request.c  parsing and validation of requests (no HTTP library: fuzzed by fuzz/fuzz_serve_request.c)
 *   store.c    the job-store interface and its SQLite implementation (--data DIR/jobs.db), durable before a
 *              job is acknowledged
 *   store_redis.c  the same interface on Redis (--store redis://...), plus the cluster's queue operations
 *   worker.c   the one worker thread running jobs in order, progress and the event log for SSE
 *   cluster.c  the Redis worker loop (consumer group, lease, cancel polling) and GET /v1/cluster
 *   http.c     CivetWeb handlers: routes, auth, limits, replies
 *   cmd_serve.c (tools/) flags, start-up, signals, shutdown */
#ifndef HB_SERVE_H
#define HB_SERVE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- request.c */

/* An OpenAI-style error: HTTP status, message, the field it names (param, may be ""), code. */
typedef struct srv_err {
    int status;
    char message[512];
    char param[64];
    char code[48];
} srv_err;
int srv_fail(srv_err *e, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* {"error": {"message", "type", "param", "code"}} */
json_t *srv_err_json(const srv_err *e);

typedef enum { SRV_KIND_XT = 0, SRV_KIND_AR = 1 } srv_kind;

/* What requests are checked against: the served model and the limits. */
typedef struct srv_model_info {
    char id[128];          /* the `model` name clients use */
    srv_kind kind;         /* XT (hb_generate) or XTX (hb_generate_ar, mode "ar") */
    int size_mult;         /* width and height multiple */
    double fps;            /* default frames per second */
    int native_w, native_h;/* landscape native size; OpenAI's standard sizes map to it or its transpose */
    int max_side;          /* largest width or height */
    int max_frames;        /* largest frame count (frames are 4k+1) */
    size_t max_prompt;     /* bytes */
} srv_model_info;

#define SRV_ID_LEN 38      /* "video_" + 32 hex digits */
bool srv_valid_id(const char *id);

typedef enum {
    SRV_R_NOT_FOUND = 0, SRV_R_HEALTH, SRV_R_MODELS, SRV_R_CLUSTER, SRV_R_VIDEOS, SRV_R_VIDEO, SRV_R_CONTENT,
    SRV_R_CANCEL, SRV_R_EVENTS, SRV_R_REMIX
} srv_route_kind; /* the per-video routes last: kind >= SRV_R_VIDEO has an id */
typedef struct srv_route {
    srv_route_kind kind;
    char id[SRV_ID_LEN + 1]; /* for the per-video routes */
} srv_route;
/* Path (no query) to a route; a malformed video id gives SRV_R_NOT_FOUND. */
srv_route srv_route_parse(const char *path);

/* The value of `name` in a query string, URL-decoded into buf; 1 found, 0 absent, -1 malformed/too long. */
int srv_query_get(const char *query, const char *name, char *buf, size_t cap);
typedef struct srv_list_query {
    char after[SRV_ID_LEN + 1]; /* "" = from the start */
    int limit;                  /* 1..100, default 20 */
    bool asc;                   /* order=asc; default desc (newest first) */
} srv_list_query;
int srv_list_query_parse(const char *query, srv_list_query *q, srv_err *e);
/* ?variant=video|thumbnail (default video): 0 video, 1 thumbnail, -1 + error otherwise. */
int srv_variant_parse(const char *query, srv_err *e);

/* Authorization header against the key, in time independent of where they differ. */
bool srv_auth_ok(const char *authorization, const char *key);

/* A create request's fields as a JSON object: from a JSON body, or from a multipart/form-data body (text parts
 * become strings; the file part input_reference is returned as a span of the body). NULL + error. */
json_t *srv_fields_from_json(const char *body, size_t n, srv_err *e);
typedef struct srv_span {
    const uint8_t *data;
    size_t size;
} srv_span;
json_t *srv_fields_from_multipart(const char *content_type, const uint8_t *body, size_t n, srv_span *image,
                                  srv_err *e);
/* Validate the fields against the model and resolve defaults into the job's parameters (JSON object: prompt,
 * model, mode, width, height, frames, fps, seed, seconds, size, and the optional negative_prompt, sampler,
 * steps, steps_list, shift, prompts, input). from_form: numbers may arrive as text. seed_default: used when
 * no seed is given. NULL + error naming the field. */
json_t *srv_job_from_fields(const json_t *fields, bool from_form, bool has_image, const srv_model_info *mi,
                            uint64_t seed_default, srv_err *e);

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (port 6379, db 0). 0, or -1 + a message naming the part. */
typedef struct srv_redis_url {
    char host[256];
    int port;
    int db;
    char user[128];
    char password[256]; /* "" = no AUTH */
} srv_redis_url;
int srv_redis_url_parse(const char *url, srv_redis_url *out, char *err, size_t cap);

/* ---------------------------------------------------------------- the job store (callers hold the server lock)
 * One interface, two implementations: SQLite (store.c, one machine) and Redis (store_redis.c, a cluster). */

typedef struct srv_store srv_store;
typedef struct srv_job {
    int64_t seq;
    char id[SRV_ID_LEN + 1];
    char status[16];        /* queued, in_progress, completed, failed */
    int progress;
    int64_t created_at, completed_at, expires_at; /* unix seconds; 0 = none */
    json_t *params;         /* owned */
    char error_code[48];
    char error_message[512];
} srv_job;
void srv_job_clear(srv_job *j);

/* The operations every job store implements; srv_store_* below dispatch to them. */
typedef struct srv_store_ops {
    void (*close)(srv_store *s);
    int (*insert)(srv_store *s, const char *id, int64_t created_at, const json_t *params);
    int (*get)(srv_store *s, const char *id, srv_job *out);
    int (*set_status)(srv_store *s, const char *id, const char *status, int progress, int64_t completed_at,
                      int64_t expires_at, const char *error_code, const char *error_message);
    int (*delete)(srv_store *s, const char *id);
    int64_t (*count)(srv_store *s, const char *status);
    int64_t (*count_before)(srv_store *s, int64_t seq);
    int (*list)(srv_store *s, const char *after, int limit, bool asc, srv_job **out, int *n, bool *has_more);
    int (*expired)(srv_store *s, int64_t now, char (*ids)[SRV_ID_LEN + 1], int cap);
} srv_store_ops;
struct srv_store {
    const srv_store_ops *ops;
};

srv_store *srv_store_open(const char *path, char *err, size_t cap); /* SQLite */
void srv_store_close(srv_store *s);
int srv_store_insert(srv_store *s, const char *id, int64_t created_at, const json_t *params);
int srv_store_get(srv_store *s, const char *id, srv_job *out); /* 1 found, 0 not, -1 error */
int srv_store_next_queued(srv_store *s, srv_job *out);         /* SQLite: oldest queued: 1, none 0, -1 error */
int srv_store_set_status(srv_store *s, const char *id, const char *status, int progress, int64_t completed_at,
                         int64_t expires_at, const char *error_code, const char *error_message);
int srv_store_delete(srv_store *s, const char *id);
int64_t srv_store_count(srv_store *s, const char *status);
/* queued jobs created before seq */
int64_t srv_store_count_before(srv_store *s, int64_t seq);
/* a page of jobs after the job `after` ("" = from the start); n jobs into out (caller frees), has_more */
int srv_store_list(srv_store *s, const char *after, int limit, bool asc, srv_job **out, int *n, bool *has_more);
int srv_store_requeue_running(srv_store *s);                   /* SQLite, at start-up: in_progress -> queued */
/* ids of finished jobs with expires_at <= now (at most cap) */
int srv_store_expired(srv_store *s, int64_t now, char (*ids)[SRV_ID_LEN + 1], int cap);

/* ---------------------------------------------------------------- store_redis.c: the store on Redis
 * A Redis store is one connection (not thread-safe: callers hold the server lock, or own the handle) that
 * reconnects with backoff; a command retries for give_up_s while Redis is away. Insert returns 1 when the
 * cluster's queue is full (checked atomically with the insert). */
srv_store *srv_redis_open(const srv_redis_url *url, int queue_max, double give_up_s, char *err, size_t cap);
srv_store *srv_redis_open_like(srv_store *s, double give_up_s, char *err, size_t cap); /* one more connection */
bool srv_store_is_redis(const srv_store *s);
/* the queue: one stream per model, consumer group "workers"; entry: the stream entry id (32 bytes) */
int srv_redis_group(srv_store *s, const char *model);
/* the next job to run (a dead worker's first, after lease_ms idle): 1 + job (in_progress now), 0 none, -1.
 * A job started SRV_MAX_ATTEMPTS times without finishing fails (worker_lost), expiring after keep_s. */
#define SRV_MAX_ATTEMPTS 3
int srv_redis_take(srv_store *s, const char *model, const char *worker, int lease_ms, int64_t keep_s, srv_job *out,
                   char *entry);
/* record the outcome (completed|failed|deleted|requeue|skip) once, then XACK + XDEL the entry: 1 recorded */
int srv_redis_finish(srv_store *s, const char *model, const char *entry, const char *id, const char *outcome, int progress,
                     int64_t completed_at, int64_t expires_at, const char *code, const char *msg, double secs);
int srv_redis_lease(srv_store *s, const char *model, const char *worker, const char *entry, const char *id, char *cancel,
                    size_t cap);
int srv_redis_cancel(srv_store *s, const char *id, bool del, int64_t expires_at, char *prior, size_t cap);
int srv_redis_progress(srv_store *s, const char *id, int progress);
int srv_redis_publish(srv_store *s, const char *id, const char *event, const char *data, bool terminal);
int srv_redis_event_cursor(srv_store *s, const char *id, char *cursor, size_t cap);
int srv_redis_events(srv_store *s, const char *id, char *cursor, size_t cap, int block_ms, char **out, bool *terminal);
int srv_redis_chunk_events(srv_store *s, const char *id, const char *upto, char **out);
/* workers: name -> models with a heartbeat (TTL ttl_s); the models' request rules for the API processes */
int srv_redis_heartbeat(srv_store *s, const char *worker, const srv_model_info *mi, int ttl_s, int64_t started_at,
                        const char *running);
int srv_redis_leave(srv_store *s, const char *worker);
int srv_redis_model(srv_store *s, const char *name, srv_model_info *out, srv_err *e);
json_t *srv_redis_models(srv_store *s);  /* /v1/models data */
json_t *srv_redis_cluster(srv_store *s); /* /v1/cluster */
double srv_redis_mean_job_s(srv_store *s); /* of the completed jobs; 0 before the first */

/* ---------------------------------------------------------------- the running server (worker.c, http.c) */
#include "hummingbird.h"
#include <pthread.h>

typedef enum { SRV_CANCEL_NONE = 0, SRV_CANCEL_CANCEL, SRV_CANCEL_DELETE, SRV_CANCEL_SHUTDOWN } srv_cancel;

/* The event log that Server-Sent Events streams read: a ring of the latest events of every job. */
#define SRV_EVENTS 1024
typedef struct srv_event {
    uint64_t seq;
    char id[SRV_ID_LEN + 1];
    char *text;     /* "id: ..\nevent: ..\ndata: {..}\n\n" */
    bool terminal;  /* the job's final status */
} srv_event;

typedef enum { SRV_ROLE_BOTH = 0, SRV_ROLE_API, SRV_ROLE_WORKER } srv_role;

typedef struct srv_server {
    pthread_mutex_t mu;     /* guards everything below and the store */
    pthread_cond_t work;    /* the worker waits for jobs */
    pthread_cond_t events;  /* SSE streams wait for events */
    srv_store *store;
    srv_model_info mi;
    hb_model *model;        /* XT; NULL for XTX (hb_generate_ar loads per job) */
    const char *model_dir, *device, *api_key;
    hb_gen_vae vae;         /* --vae, when vae_set; else the model's default decoder */
    bool vae_set;
    char data[4000];        /* --data DIR; videos in DIR/videos */
    char videos[4000];      /* where the job files are: DIR/videos, or --results DIR with Redis */
    /* the cluster (--store redis://...): s->store is then a Redis store */
    bool cluster;
    srv_role role;
    char worker_name[128];  /* this worker's consumer name: HOST-PID */
    int lease_ms;           /* a job whose worker is silent this long is run by another */
    srv_store *wstore;      /* the worker thread's own connection (blocking reads) */
    int queue_max;
    double keep_hours;
    size_t max_body;
    int64_t started_at;
    /* the running job */
    char running[SRV_ID_LEN + 1];
    int running_progress;
    srv_cancel cancel;
    bool stopping;
    double avg_job_s;       /* for Retry-After */
    char running_entry[32]; /* its stream entry (cluster) */
    srv_event ring[SRV_EVENTS];
    uint64_t ev_next;
    pthread_t worker, lease;
} srv_server;

/* paths of a job's files: kind "mp4", "jpg", "img" (uploaded image), "partial.mp4", "prompts" */
void srv_path(const srv_server *s, const char *id, const char *kind, char *buf, size_t cap);
void srv_remove_files(const srv_server *s, const char *id);
/* The Video object of a job (lock held). */
json_t *srv_video_json(srv_server *s, const srv_job *j);
/* Append an event for job id (lock held): takes data. */
void srv_emit(srv_server *s, const char *id, const char *event, json_t *data, bool terminal);
int srv_worker_start(srv_server *s);
void srv_worker_join(srv_server *s);
/* Run one job through the public API (worker thread): 0, HB_CANCELLED, or an error with err filled. */
int srv_run_job(srv_server *s, const char *id, const json_t *params, char *err, size_t cap);
void srv_emit_status(srv_server *s, const char *id); /* lock held */
void srv_sweep(srv_server *s);                       /* lock held: delete expired results */
/* cluster.c: the Redis worker loop (worker thread) with its lease thread */
void *srv_cluster_worker_main(void *arg);

struct mg_context;
struct mg_context *srv_http_start(srv_server *s, const char *host, int port, int threads, char *err, size_t cap);

#endif
