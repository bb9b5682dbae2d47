/* hb serve: the job store on Redis (--store redis://...), for many API and worker processes on many machines
 * (docs/serving.md "Scaling out"). Every state change that reads before it writes is one Lua script, so it is
 * atomic across the cluster; every script is safe to run twice (a command is retried after a reconnect when
 * its reply was lost). Keys (all under "hb:"):
 *   job:ID      hash: the job record (seq, id, status, progress, times, params, errors, model, worker, cancel)
 *   seq         the counter that orders jobs          jobs     zset seq -> id, every job (list, cursors)
 *   queued      zset seq -> id, queued jobs (queue position, 429)      running  set of in-progress ids
 *   expiry      zset expires_at -> id                 q:MODEL  stream of job ids, consumer group "workers"
 *   ev:ID       stream of a job's events (SSE)        stats    hash: completed, failed, job_seconds
 *   done        zset finish time -> id (throughput)   workers  hash name -> JSON; alive:NAME (TTL) */
#include "serve.h"
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct redis_store {
    srv_store base;
    srv_redis_url url;
    redisContext *c;
    double give_up_s; /* how long a command keeps retrying while Redis is away */
    int queue_max;
} redis_store;

#define RS(s) ((redis_store *)(s))

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- the connection: reconnect with backoff */

/* 0 connected, -1 not reachable (retried), -2 refused for good: a wrong password or database (not retried) */
static int connect_once(redis_store *s) {
    if (s->c) redisFree(s->c);
    struct timeval tv = {2, 0}, cmd = {15, 0}; /* commands block at most ~1 s (XREADGROUP), scripts are short */
    s->c = redisConnectWithTimeout(s->url.host, s->url.port, tv);
    int rc = !s->c || s->c->err || redisSetTimeout(s->c, cmd) != REDIS_OK ? -1 : 0;
    if (!rc) redisEnableKeepAlive(s->c);
    redisReply *r = NULL;
    if (!rc && s->url.password[0]) {
        r = s->url.user[0] ? redisCommand(s->c, "AUTH %s %s", s->url.user, s->url.password)
                           : redisCommand(s->c, "AUTH %s", s->url.password);
        rc = !r ? -1 : r->type == REDIS_REPLY_ERROR ? -2 : 0;
        if (rc == -2) fprintf(stderr, "hb serve: redis %s:%d: AUTH: %s\n", s->url.host, s->url.port, r->str);
        freeReplyObject(r);
    }
    if (!rc && s->url.db) {
        r = redisCommand(s->c, "SELECT %d", s->url.db);
        rc = !r ? -1 : r->type == REDIS_REPLY_ERROR ? -2 : 0;
        if (rc == -2) fprintf(stderr, "hb serve: redis %s:%d: SELECT %d: %s\n", s->url.host, s->url.port, s->url.db, r->str);
        freeReplyObject(r);
    }
    if (rc && s->c) redisFree(s->c), s->c = NULL;
    return rc;
}

/* One command, retried with exponential backoff (0.1 s to 2 s) across reconnects for up to give_up_s; a Redis
 * still loading its AOF after a restart answers LOADING and is waited for too. NULL when it never answered. */
static redisReply *cmd(srv_store *st, const char *fmt, ...) {
    redis_store *s = RS(st);
    double t0 = mono_s(), backoff = 0.1;
    bool told = false;
    for (;;) {
        redisReply *r = NULL;
        int conn = s->c && !s->c->err ? 0 : connect_once(s);
        if (conn == -2) return NULL;
        if (conn == 0) {
            va_list ap;
            va_start(ap, fmt);
            r = redisvCommand(s->c, fmt, ap);
            va_end(ap);
        }
        bool loading = r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LOADING", 7);
        if (r && !loading) {
            if (told) fprintf(stderr, "hb serve: redis %s:%d: connected again\n", s->url.host, s->url.port);
            return r;
        }
        freeReplyObject(r);
        if (mono_s() - t0 > s->give_up_s) {
            fprintf(stderr, "hb serve: redis %s:%d: %s\n", s->url.host, s->url.port,
                    loading ? "still loading its data" : s->c && s->c->errstr[0] ? s->c->errstr : "cannot connect");
            return NULL;
        }
        if (!told) fprintf(stderr, "hb serve: redis %s:%d unavailable (%s); retrying\n", s->url.host, s->url.port,
                           loading ? "loading" : s->c && s->c->errstr[0] ? s->c->errstr : "cannot connect");
        told = true;
        if (s->c && s->c->err) redisFree(s->c), s->c = NULL;
        usleep((useconds_t)(backoff * 1e6));
        backoff = backoff * 2 > 2 ? 2 : backoff * 2;
    }
}

/* a reply that is not an error; frees and reports otherwise */
static redisReply *ok_reply(redisReply *r, const char *what) {
    if (r && r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "hb serve: redis: %s: %s\n", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int64_t int_reply(redisReply *r, const char *what) {
    r = ok_reply(r, what);
    int64_t v = !r ? -1 : r->type == REDIS_REPLY_INTEGER ? (int64_t)r->integer
              : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : r->type == REDIS_REPLY_NIL ? 0 : -1;
    freeReplyObject(r);
    return v;
}

/* ---------------------------------------------------------------- scripts */

/* KEYS none (one Redis, not Redis Cluster); ARGV id, created_at, params, model, queue max. 0 done (or already
 * there), -2 the queue is full. */
static const char k_insert[] =
    "local k = 'hb:job:' .. ARGV[1]\n"
    "if redis.call('EXISTS', k) == 1 then return 0 end\n"
    "if redis.call('ZCARD', 'hb:queued') >= tonumber(ARGV[5]) then return -2 end\n"
    "local seq = redis.call('INCR', 'hb:seq')\n"
    "redis.call('HSET', k, 'seq', seq, 'id', ARGV[1], 'status', 'queued', 'progress', 0, 'created_at', ARGV[2],\n"
    "  'completed_at', 0, 'expires_at', 0, 'params', ARGV[3], 'model', ARGV[4])\n"
    "redis.call('ZADD', 'hb:jobs', seq, ARGV[1])\n"
    "redis.call('ZADD', 'hb:queued', seq, ARGV[1])\n"
    "redis.call('XADD', 'hb:q:' .. ARGV[4], '*', 'id', ARGV[1])\n"
    "return 0\n";

/* ARGV id status progress completed_at expires_at error_code error_message. A completed record is final. */
static const char k_set_status[] =
    "local k = 'hb:job:' .. ARGV[1]\n"
    "local cur = redis.call('HGET', k, 'status')\n"
    "if not cur or cur == 'completed' then return 0 end\n"
    "redis.call('HSET', k, 'status', ARGV[2], 'progress', ARGV[3], 'completed_at', ARGV[4], 'expires_at', ARGV[5],\n"
    "  'error_code', ARGV[6], 'error_message', ARGV[7])\n"
    "if ARGV[2] == 'queued' then redis.call('ZADD', 'hb:queued', redis.call('HGET', k, 'seq'), ARGV[1])\n"
    "else redis.call('ZREM', 'hb:queued', ARGV[1]) end\n"
    "if ARGV[2] ~= 'in_progress' then redis.call('SREM', 'hb:running', ARGV[1]) end\n"
    "if tonumber(ARGV[5]) > 0 then redis.call('ZADD', 'hb:expiry', ARGV[5], ARGV[1]) end\n"
    "if ARGV[2] == 'failed' then redis.call('HINCRBY', 'hb:stats', 'failed', 1) end\n"
    "return 1\n";

static const char k_delete[] =
    "redis.call('DEL', 'hb:job:' .. ARGV[1], 'hb:ev:' .. ARGV[1])\n"
    "redis.call('ZREM', 'hb:jobs', ARGV[1]) redis.call('ZREM', 'hb:queued', ARGV[1])\n"
    "redis.call('ZREM', 'hb:expiry', ARGV[1]) redis.call('SREM', 'hb:running', ARGV[1])\n"
    "return 1\n";

/* ---------------------------------------------------------------- the store interface */

static void job_from_hash(const redisReply *r, srv_job *j) {
    memset(j, 0, sizeof *j);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *k = r->element[i]->str, *v = r->element[i + 1]->str ? r->element[i + 1]->str : "";
        if (!k) continue;
        if (!strcmp(k, "seq")) j->seq = strtoll(v, NULL, 10);
        else if (!strcmp(k, "id")) snprintf(j->id, sizeof j->id, "%s", v);
        else if (!strcmp(k, "status")) snprintf(j->status, sizeof j->status, "%s", v);
        else if (!strcmp(k, "progress")) j->progress = atoi(v);
        else if (!strcmp(k, "created_at")) j->created_at = strtoll(v, NULL, 10);
        else if (!strcmp(k, "completed_at")) j->completed_at = strtoll(v, NULL, 10);
        else if (!strcmp(k, "expires_at")) j->expires_at = strtoll(v, NULL, 10);
        else if (!strcmp(k, "params")) j->params = json_loads(v, 0, NULL);
        else if (!strcmp(k, "error_code")) snprintf(j->error_code, sizeof j->error_code, "%s", v);
        else if (!strcmp(k, "error_message")) snprintf(j->error_message, sizeof j->error_message, "%s", v);
    }
    if (!j->params) j->params = json_object();
}

static int r_get(srv_store *s, const char *id, srv_job *out) {
    redisReply *r = ok_reply(cmd(s, "HGETALL hb:job:%s", id), "HGETALL");
    if (!r) return -1;
    int found = r->type == REDIS_REPLY_ARRAY && r->elements >= 2;
    if (found) job_from_hash(r, out);
    freeReplyObject(r);
    if (found && !out->id[0]) srv_job_clear(out), found = 0; /* not a whole record */
    return found;
}

static int r_insert(srv_store *s, const char *id, int64_t created_at, const json_t *params) {
    char *txt = json_dumps(params, JSON_COMPACT);
    if (!txt) return -1;
    const char *model = json_string_value(json_object_get(params, "model"));
    int64_t v = int_reply(cmd(s, "EVAL %s 0 %s %lld %s %s %d", k_insert, id, (long long)created_at, txt, model ? model : "",
                              RS(s)->queue_max), "insert");
    free(txt);
    return v == -2 ? 1 : v == 0 ? 0 : -1; /* 1: the queue is full */
}

static int r_set_status(srv_store *s, const char *id, const char *status, int progress, int64_t completed_at,
                        int64_t expires_at, const char *error_code, const char *error_message) {
    int64_t v = int_reply(cmd(s, "EVAL %s 0 %s %s %d %lld %lld %s %s", k_set_status, id, status, progress, (long long)completed_at,
                              (long long)expires_at, error_code ? error_code : "", error_message ? error_message : ""),
                          "set status");
    return v < 0 ? -1 : 0;
}

static int r_delete(srv_store *s, const char *id) {
    return int_reply(cmd(s, "EVAL %s 0 %s", k_delete, id), "delete") < 0 ? -1 : 0;
}

static int64_t r_count(srv_store *s, const char *status) {
    if (!strcmp(status, "queued")) return int_reply(cmd(s, "ZCARD hb:queued"), "ZCARD");
    if (!strcmp(status, "in_progress")) return int_reply(cmd(s, "SCARD hb:running"), "SCARD");
    if (!strcmp(status, "completed")) return int_reply(cmd(s, "HGET hb:stats completed"), "HGET");
    return -1;
}

static int64_t r_count_before(srv_store *s, int64_t seq) {
    return int_reply(cmd(s, "ZCOUNT hb:queued -inf (%lld", (long long)seq), "ZCOUNT");
}

static int r_list(srv_store *s, const char *after, int limit, bool asc, srv_job **out, int *n, bool *has_more) {
    *out = NULL, *n = 0, *has_more = false;
    char from[32] = "";
    if (after && after[0]) {
        redisReply *sc = ok_reply(cmd(s, "ZSCORE hb:jobs %s", after), "ZSCORE");
        if (!sc) return -1;
        bool known = sc->type == REDIS_REPLY_STRING;
        if (known) snprintf(from, sizeof from, "(%s", sc->str);
        freeReplyObject(sc);
        if (!known) return 1; /* unknown cursor */
    }
    redisReply *ids = ok_reply(asc ? cmd(s, "ZRANGEBYSCORE hb:jobs %s +inf LIMIT 0 %d", from[0] ? from : "-inf", limit + 1)
                                   : cmd(s, "ZREVRANGEBYSCORE hb:jobs %s -inf LIMIT 0 %d", from[0] ? from : "+inf", limit + 1),
                               "ZRANGEBYSCORE");
    if (!ids) return -1;
    srv_job *v = calloc((size_t)limit + 1, sizeof *v);
    int k = 0, rc = v ? 0 : -1;
    for (size_t i = 0; v && i < ids->elements; i++) {
        if (k == limit) { *has_more = true; break; }
        int g = r_get(s, ids->element[i]->str, &v[k]);
        if (g < 0) { rc = -1; break; }
        k += g; /* a job deleted in between is left out */
    }
    freeReplyObject(ids);
    if (rc) {
        for (int i = 0; v && i < k; i++) srv_job_clear(&v[i]);
        free(v);
        return -1;
    }
    *out = v, *n = k;
    return 0;
}

static int r_expired(srv_store *s, int64_t now, char (*ids)[SRV_ID_LEN + 1], int cap) {
    redisReply *r = ok_reply(cmd(s, "ZRANGEBYSCORE hb:expiry -inf %lld LIMIT 0 %d", (long long)now, cap), "ZRANGEBYSCORE");
    if (!r) return -1;
    int k = 0;
    for (size_t i = 0; i < r->elements && k < cap; i++)
        if (r->element[i]->str && srv_valid_id(r->element[i]->str)) snprintf(ids[k++], SRV_ID_LEN + 1, "%s", r->element[i]->str);
    freeReplyObject(r);
    return k;
}

static void r_close(srv_store *s) {
    if (RS(s)->c) redisFree(RS(s)->c);
    free(s);
}

static const srv_store_ops k_redis_ops = {r_close, r_insert, r_get, r_set_status, r_delete, r_count,
                                          r_count_before, r_list, r_expired};

srv_store *srv_redis_open(const srv_redis_url *url, int queue_max, double give_up_s, char *err, size_t cap) {
    redis_store *s = calloc(1, sizeof *s);
    if (!s) return snprintf(err, cap, "out of memory"), NULL;
    s->base.ops = &k_redis_ops;
    s->url = *url, s->queue_max = queue_max, s->give_up_s = give_up_s;
    redisReply *r = cmd(&s->base, "PING");
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, cap, "--store redis://%s:%d: %s", url->host, url->port,
                 r ? r->str : s->c && s->c->errstr[0] ? s->c->errstr : "cannot connect, or refused (above)");
        freeReplyObject(r);
        r_close(&s->base);
        return NULL;
    }
    freeReplyObject(r);
    return &s->base;
}

srv_store *srv_redis_open_like(srv_store *s, double give_up_s, char *err, size_t cap) {
    return srv_redis_open(&RS(s)->url, RS(s)->queue_max, give_up_s, err, cap);
}

bool srv_store_is_redis(const srv_store *s) { return s && s->ops == &k_redis_ops; }

/* ---------------------------------------------------------------- the queue (workers) */

/* ARGV id worker now max_attempts. The job goes in_progress when it is still to run (queued, or in_progress
 * under a worker that died); returns its params, or nil when it was cancelled, deleted or finished meanwhile.
 * A job whose workers died max_attempts times (a job that crashes its worker) fails instead of running again. */
static const char k_claim[] =
    "local k = 'hb:job:' .. ARGV[1]\n"
    "local st = redis.call('HGET', k, 'status')\n"
    "if st ~= 'queued' and st ~= 'in_progress' then return false end\n"
    "if tonumber(redis.call('HGET', k, 'attempts') or '0') >= tonumber(ARGV[4]) then\n"
    "  redis.call('HSET', k, 'status', 'failed', 'completed_at', ARGV[3], 'expires_at', ARGV[5], 'error_code',\n"
    "    'worker_lost', 'error_message', 'the workers running this job stopped ' .. ARGV[4] .. ' times')\n"
    "  redis.call('ZREM', 'hb:queued', ARGV[1]) redis.call('SREM', 'hb:running', ARGV[1])\n"
    "  redis.call('ZADD', 'hb:expiry', ARGV[5], ARGV[1]) redis.call('HINCRBY', 'hb:stats', 'failed', 1)\n"
    "  return false\n"
    "end\n"
    "redis.call('HSET', k, 'status', 'in_progress', 'progress', 0, 'worker', ARGV[2], 'started_at', ARGV[3])\n"
    "redis.call('HINCRBY', k, 'attempts', 1)\n"
    "redis.call('ZREM', 'hb:queued', ARGV[1]) redis.call('SADD', 'hb:running', ARGV[1])\n"
    "return redis.call('HGET', k, 'params')\n";

/* ARGV stream entry id outcome(completed|failed|deleted|requeue|skip) progress completed_at expires_at code
 * message seconds now. Records the outcome once (a completed record is never written again: the exactly-once
 * completion record), then acknowledges and removes the stream entry. 1 when this call recorded it, 2 when
 * the job was deleted during a run that did not see the flag (the caller removes its files). */
static const char k_finish[] =
    "local k, id, out = 'hb:job:' .. ARGV[3], ARGV[3], ARGV[4]\n"
    "local st = redis.call('HGET', k, 'status')\n"
    "local live = st == 'queued' or st == 'in_progress'\n"
    "local r = 0\n"
    "if live and out ~= 'skip' and redis.call('HGET', k, 'cancel') == 'delete' then out = 'deleted' r = 1 end\n"
    "if out == 'deleted' then\n"
    "  redis.call('DEL', k, 'hb:ev:' .. id) redis.call('ZREM', 'hb:jobs', id) redis.call('ZREM', 'hb:queued', id)\n"
    "  redis.call('ZREM', 'hb:expiry', id) redis.call('SREM', 'hb:running', id) r = r + 1\n"
    "elseif live and out == 'requeue' then\n"
    "  redis.call('HSET', k, 'status', 'queued', 'progress', 0) redis.call('HDEL', k, 'worker')\n"
    "  redis.call('HINCRBY', k, 'attempts', -1)\n"
    "  redis.call('ZADD', 'hb:queued', redis.call('HGET', k, 'seq'), id) redis.call('SREM', 'hb:running', id)\n"
    "  redis.call('XADD', ARGV[1], '*', 'id', id) r = 1\n"
    "elseif live and (out == 'completed' or out == 'failed') then\n"
    "  redis.call('HSET', k, 'status', out, 'progress', ARGV[5], 'completed_at', ARGV[6], 'expires_at', ARGV[7],\n"
    "    'error_code', ARGV[8], 'error_message', ARGV[9])\n"
    "  redis.call('ZREM', 'hb:queued', id) redis.call('SREM', 'hb:running', id)\n"
    "  redis.call('ZADD', 'hb:expiry', ARGV[7], id) redis.call('HINCRBY', 'hb:stats', out, 1)\n"
    "  if out == 'completed' then\n"
    "    redis.call('HINCRBYFLOAT', 'hb:stats', 'job_seconds', ARGV[10])\n"
    "    redis.call('ZADD', 'hb:done', ARGV[11], id)\n"
    "    redis.call('ZREMRANGEBYSCORE', 'hb:done', '-inf', tonumber(ARGV[11]) - 3600)\n"
    "  end\n"
    "  r = 1\n"
    "end\n"
    "redis.call('XACK', ARGV[1], 'workers', ARGV[2]) redis.call('XDEL', ARGV[1], ARGV[2])\n"
    "return r\n";

static void stream_key(const char *model, char *buf, size_t cap) { snprintf(buf, cap, "hb:q:%s", model); }

int srv_redis_group(srv_store *s, const char *model) {
    char q[200];
    stream_key(model, q, sizeof q);
    redisReply *r = cmd(s, "XGROUP CREATE %s workers 0 MKSTREAM", q);
    int rc = r && (r->type != REDIS_REPLY_ERROR || !strncmp(r->str, "BUSYGROUP", 9)) ? 0 : -1;
    if (rc && r) fprintf(stderr, "hb serve: redis: XGROUP CREATE %s: %s\n", q, r->str);
    freeReplyObject(r);
    return rc;
}

/* the first entry [id, [field, value, ...]] of a stream reply's entry list (NULL entries: deleted ones) */
static int entry_of(const redisReply *list, char *entry, size_t ecap, char *id) {
    for (size_t i = 0; list && list->type == REDIS_REPLY_ARRAY && i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !e->element[0]->str) continue;
        snprintf(entry, ecap, "%s", e->element[0]->str);
        const redisReply *f = e->element[1];
        for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2)
            if (f->element[k]->str && !strcmp(f->element[k]->str, "id") && f->element[k + 1]->str)
                snprintf(id, SRV_ID_LEN + 1, "%s", f->element[k + 1]->str);
        return 1;
    }
    return 0;
}

/* The next stream entry for this worker: first one whose worker died (idle longer than the lease), else a new
 * one (waiting up to block_ms). 1 + entry and job id, 0 none, -1 error. */
static int next_entry(srv_store *s, const char *q, const char *worker, int lease_ms, int block_ms, char *entry, char *id) {
    redisReply *r = ok_reply(cmd(s, "XAUTOCLAIM %s workers %s %d 0-0 COUNT 1", q, worker, lease_ms), "XAUTOCLAIM");
    if (!r) return -1;
    int got = r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && entry_of(r->element[1], entry, 32, id);
    freeReplyObject(r);
    if (got) {
        fprintf(stderr, "hb serve: %s: claimed %s of a worker gone for over the lease\n", worker, id);
        return 1;
    }
    r = ok_reply(cmd(s, "XREADGROUP GROUP workers %s COUNT 1 BLOCK %d STREAMS %s >", worker, block_ms, q), "XREADGROUP");
    if (!r) return -1;
    got = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->elements >= 2 &&
          entry_of(r->element[0]->element[1], entry, 32, id);
    freeReplyObject(r);
    return got;
}

int srv_redis_take(srv_store *s, const char *model, const char *worker, int lease_ms, int64_t keep_s, srv_job *out,
                   char *entry) {
    char q[200], id[SRV_ID_LEN + 1] = "";
    stream_key(model, q, sizeof q);
    int got = next_entry(s, q, worker, lease_ms, 1000, entry, id);
    if (got <= 0) return got;
    int64_t now = (int64_t)time(NULL);
    redisReply *r = srv_valid_id(id) ? ok_reply(cmd(s, "EVAL %s 0 %s %s %lld %d %lld", k_claim, id, worker, (long long)now,
                                                    SRV_MAX_ATTEMPTS, (long long)(now + keep_s)), "claim")
                                     : NULL;
    bool run = r && r->type == REDIS_REPLY_STRING;
    if (run) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", id);
        snprintf(out->status, sizeof out->status, "in_progress");
        out->params = json_loads(r->str, 0, NULL);
        if (!out->params) out->params = json_object();
    }
    freeReplyObject(r);
    if (run) return 1;
    /* cancelled, deleted or finished before it ran: nothing to do but drop the entry */
    srv_redis_finish(s, model, entry, id[0] ? id : "none", "skip", 0, 0, 0, NULL, NULL, 0);
    return 0;
}

int srv_redis_finish(srv_store *s, const char *model, const char *entry, const char *id, const char *outcome, int progress,
                     int64_t completed_at, int64_t expires_at, const char *code, const char *msg, double secs) {
    char q[200];
    stream_key(model, q, sizeof q);
    return (int)int_reply(cmd(s, "EVAL %s 0 %s %s %s %s %d %lld %lld %s %s %f %lld", k_finish, q, entry, id, outcome, progress,
                              (long long)completed_at, (long long)expires_at, code ? code : "", msg ? msg : "", secs,
                              (long long)time(NULL)),
                          "finish");
}

/* Keep this worker's claim on its entry fresh (XCLAIM to itself resets the idle time other workers compare
 * with the lease) and read the job's cancel flag into cancel ("", "cancel" or "delete"). */
int srv_redis_lease(srv_store *s, const char *model, const char *worker, const char *entry, const char *id, char *cancel,
                    size_t cap) {
    char q[200];
    stream_key(model, q, sizeof q);
    redisReply *r = ok_reply(cmd(s, "XCLAIM %s workers %s 0 %s JUSTID", q, worker, entry), "XCLAIM");
    freeReplyObject(r);
    r = ok_reply(cmd(s, "HGET hb:job:%s cancel", id), "HGET");
    if (!r) return -1;
    snprintf(cancel, cap, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return 0;
}

/* ---------------------------------------------------------------- the API side */

/* ARGV id kind(cancel|delete) now expires. Atomic against a worker claiming the job: a queued job is
 * cancelled (failed, "cancelled") or deleted at once; a running one gets the flag its worker polls. Returns the
 * status the job had ("" when unknown). */
static const char k_cancel[] =
    "local k, id = 'hb:job:' .. ARGV[1], ARGV[1]\n"
    "local st = redis.call('HGET', k, 'status')\n"
    "if not st then return '' end\n"
    "if st == 'in_progress' then redis.call('HSET', k, 'cancel', ARGV[2]) return st end\n"
    "if ARGV[2] == 'delete' then\n"
    "  redis.call('DEL', k) redis.call('ZREM', 'hb:jobs', id) redis.call('ZREM', 'hb:queued', id)\n"
    "  redis.call('ZREM', 'hb:expiry', id)\n"
    "elseif st == 'queued' then\n"
    "  redis.call('HSET', k, 'status', 'failed', 'progress', 0, 'completed_at', ARGV[3], 'expires_at', ARGV[4],\n"
    "    'error_code', 'cancelled', 'error_message', 'cancelled by request')\n"
    "  redis.call('ZREM', 'hb:queued', id) redis.call('ZADD', 'hb:expiry', ARGV[4], id)\n"
    "end\n"
    "return st\n";

int srv_redis_cancel(srv_store *s, const char *id, bool del, int64_t expires_at, char *prior, size_t cap) {
    redisReply *r = ok_reply(cmd(s, "EVAL %s 0 %s %s %lld %lld", k_cancel, id, del ? "delete" : "cancel", (long long)time(NULL),
                                 (long long)expires_at), "cancel");
    if (!r) return -1;
    snprintf(prior, cap, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return 0;
}

/* only while the job runs: a record deleted or finished meanwhile is not brought back as a stub */
static const char k_progress[] =
    "local k = 'hb:job:' .. ARGV[1]\n"
    "if redis.call('HGET', k, 'status') ~= 'in_progress' then return 0 end\n"
    "redis.call('HSET', k, 'progress', ARGV[2])\n"
    "return 1\n";

int srv_redis_progress(srv_store *s, const char *id, int progress) {
    return int_reply(cmd(s, "EVAL %s 0 %s %d", k_progress, id, progress), "progress") < 0 ? -1 : 0;
}

/* A job's event for the SSE streams of every API process: a capped stream that expires with the job. */
int srv_redis_publish(srv_store *s, const char *id, const char *event, const char *data, bool terminal) {
    redisReply *r = ok_reply(cmd(s, "XADD hb:ev:%s MAXLEN ~ 256 * e %s d %s t %d", id, event, data, terminal ? 1 : 0), "XADD");
    freeReplyObject(r);
    if (!r) return -1;
    return int_reply(cmd(s, "EXPIRE hb:ev:%s 86400", id), "EXPIRE") < 0 ? -1 : 0;
}

/* The id of a job's newest event ("0-0" when none): where an SSE stream starts reading. */
int srv_redis_event_cursor(srv_store *s, const char *id, char *cursor, size_t cap) {
    redisReply *r = ok_reply(cmd(s, "XREVRANGE hb:ev:%s + - COUNT 1", id), "XREVRANGE");
    if (!r) return -1;
    snprintf(cursor, cap, "%s", r->type == REDIS_REPLY_ARRAY && r->elements && r->element[0]->elements &&
                                        r->element[0]->element[0]->str ? r->element[0]->element[0]->str : "0-0");
    freeReplyObject(r);
    return 0;
}

/* Stream entries [id, [e, EVENT, d, DATA, t, 0|1]] as SSE text appended to *out (only events named `only` when
 * it is not NULL); cursor follows the last entry, *terminal is set when the job ended. */
static void append_events(const redisReply *list, char *cursor, size_t cap, const char *only, char **out, bool *terminal) {
    size_t on = *out ? strlen(*out) : 0;
    for (size_t i = 0; list && i < list->elements; i++) {
        const redisReply *e = list->element[i], *f = e->elements >= 2 ? e->element[1] : NULL;
        if (!e->element[0]->str || !f) continue;
        snprintf(cursor, cap, "%s", e->element[0]->str);
        const char *ev = "", *d = "";
        bool term = false;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            const char *key = f->element[k]->str, *v = f->element[k + 1]->str;
            if (!key || !v) continue;
            if (!strcmp(key, "e")) ev = v;
            else if (!strcmp(key, "d")) d = v;
            else if (!strcmp(key, "t")) term = !strcmp(v, "1");
        }
        if (only && strcmp(ev, only)) continue;
        *terminal |= term;
        char *txt = NULL;
        int n = asprintf(&txt, "event: %s\ndata: %s\n\n", ev, d);
        char *nb = n > 0 ? realloc(*out, on + (size_t)n + 1) : NULL;
        if (nb) memcpy(nb + on, txt, (size_t)n + 1), on += (size_t)n, *out = nb;
        free(txt);
    }
}

/* Events after cursor (waiting up to block_ms) as SSE text appended to *out; *terminal when the job ended. */
int srv_redis_events(srv_store *s, const char *id, char *cursor, size_t cap, int block_ms, char **out, bool *terminal) {
    redisReply *r = ok_reply(cmd(s, "XREAD COUNT 64 BLOCK %d STREAMS hb:ev:%s %s", block_ms, id, cursor), "XREAD");
    if (!r) return -1;
    const redisReply *list = r->type == REDIS_REPLY_ARRAY && r->elements && r->element[0]->elements >= 2 ? r->element[0]->element[1] : NULL;
    append_events(list, cursor, cap, NULL, out, terminal);
    freeReplyObject(r);
    return 0;
}

/* The chunk events up to and including cursor, so a stream opened after a job began still gets every chunk. */
int srv_redis_chunk_events(srv_store *s, const char *id, const char *upto, char **out) {
    redisReply *r = ok_reply(cmd(s, "XRANGE hb:ev:%s - %s", id, upto), "XRANGE");
    if (!r) return -1;
    char last[64];
    bool terminal = false;
    append_events(r->type == REDIS_REPLY_ARRAY ? r : NULL, last, sizeof last, "chunk", out, &terminal);
    freeReplyObject(r);
    return 0;
}

/* ---------------------------------------------------------------- workers and models */

static json_t *model_json(const srv_model_info *mi) {
    return json_pack("{s:s, s:i, s:i, s:f, s:i, s:i, s:i, s:i, s:I}", "id", mi->id, "kind", (int)mi->kind, "size_mult",
                     mi->size_mult, "fps", mi->fps, "native_w", mi->native_w, "native_h", mi->native_h, "max_side",
                     mi->max_side, "max_frames", mi->max_frames, "max_prompt", (json_int_t)mi->max_prompt);
}

static int model_from_json(const char *txt, srv_model_info *mi) {
    json_t *j = json_loads(txt, 0, NULL);
    memset(mi, 0, sizeof *mi);
    const char *id = json_string_value(json_object_get(j, "id"));
    if (id) snprintf(mi->id, sizeof mi->id, "%s", id);
    mi->kind = json_integer_value(json_object_get(j, "kind")) ? SRV_KIND_AR : SRV_KIND_XT;
    mi->size_mult = (int)json_integer_value(json_object_get(j, "size_mult"));
    mi->fps = json_number_value(json_object_get(j, "fps"));
    mi->native_w = (int)json_integer_value(json_object_get(j, "native_w"));
    mi->native_h = (int)json_integer_value(json_object_get(j, "native_h"));
    mi->max_side = (int)json_integer_value(json_object_get(j, "max_side"));
    mi->max_frames = (int)json_integer_value(json_object_get(j, "max_frames"));
    mi->max_prompt = (size_t)json_integer_value(json_object_get(j, "max_prompt"));
    json_decref(j);
    return id && mi->size_mult > 0 && mi->native_w > 0 && mi->native_h > 0 && mi->max_frames > 0 ? 0 : -1;
}

int srv_redis_heartbeat(srv_store *s, const char *worker, const srv_model_info *mi, int ttl_s, int64_t started_at,
                        const char *running) {
    json_t *w = json_pack("{s:[s], s:I, s:s}", "models", mi->id, "started_at", (json_int_t)started_at, "running", running);
    char *wt = json_dumps(w, JSON_COMPACT), *mt = NULL;
    json_t *m = model_json(mi);
    mt = json_dumps(m, JSON_COMPACT);
    json_decref(w), json_decref(m);
    int rc = wt && mt ? 0 : -1;
    if (!rc) rc = int_reply(cmd(s, "HSET hb:workers %s %s", worker, wt), "HSET") < 0 ? -1 : 0;
    if (!rc) rc = int_reply(cmd(s, "HSET hb:models %s %s", mi->id, mt), "HSET") < 0 ? -1 : 0;
    redisReply *r = rc ? NULL : ok_reply(cmd(s, "SET hb:alive:%s %s EX %d", worker, mi->id, ttl_s), "SET");
    if (!r) rc = -1;
    freeReplyObject(r);
    free(wt), free(mt);
    return rc;
}

/* A worker stopping cleanly leaves the cluster's list at once instead of when its heartbeat expires. */
int srv_redis_leave(srv_store *s, const char *worker) {
    int64_t a = int_reply(cmd(s, "DEL hb:alive:%s", worker), "DEL"), b = int_reply(cmd(s, "HDEL hb:workers %s", worker), "HDEL");
    return a < 0 || b < 0 ? -1 : 0;
}

/* The rules of model `name` (NULL: the cluster's only model) as its workers declared them. */
int srv_redis_model(srv_store *s, const char *name, srv_model_info *out, srv_err *e) {
    redisReply *r = ok_reply(cmd(s, "HGETALL hb:models"), "HGETALL");
    if (!r) return srv_fail(e, 503, "", "unavailable", "the job store (Redis) does not answer");
    int found = -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->str && (!name || !strcmp(r->element[i]->str, name))) found = (int)i;
    size_t nmodels = r->elements / 2;
    int rc = 0;
    if (!nmodels) rc = srv_fail(e, 503, "", "no_workers", "no worker has declared a model yet; retry when one is up");
    else if (!name && nmodels > 1) rc = srv_fail(e, 400, "model", "missing_required_parameter", "model: this cluster serves several models; name one (GET /v1/models)");
    else if (found < 0) rc = srv_fail(e, 400, "model", "model_not_found", "model '%.60s' is not served by this cluster (GET /v1/models)", name);
    else if (model_from_json(r->element[found + 1]->str, out)) rc = srv_fail(e, 500, "", "server_error", "the record of model '%.60s' is damaged", r->element[found]->str);
    freeReplyObject(r);
    return rc;
}

json_t *srv_redis_models(srv_store *s) {
    redisReply *r = ok_reply(cmd(s, "HKEYS hb:models"), "HKEYS");
    json_t *out = json_array();
    for (size_t i = 0; r && i < r->elements; i++)
        if (r->element[i]->str) json_array_append_new(out, json_string(r->element[i]->str));
    freeReplyObject(r);
    return out;
}

/* workers alive (heartbeat key present) with their models and running job; dead entries are dropped */
static json_t *workers_json(srv_store *s, int *alive) {
    redisReply *r = ok_reply(cmd(s, "HGETALL hb:workers"), "HGETALL");
    json_t *out = json_array();
    *alive = 0;
    for (size_t i = 0; r && i + 1 < r->elements; i += 2) {
        const char *name = r->element[i]->str;
        if (!name || !r->element[i + 1]->str) continue;
        if (int_reply(cmd(s, "EXISTS hb:alive:%s", name), "EXISTS") != 1) {
            int_reply(cmd(s, "HDEL hb:workers %s", name), "HDEL");
            continue;
        }
        json_t *w = json_loads(r->element[i + 1]->str, 0, NULL);
        if (!w) continue;
        json_object_set_new(w, "name", json_string(name));
        json_array_append_new(out, w);
        ++*alive;
    }
    freeReplyObject(r);
    return out;
}

double srv_redis_mean_job_s(srv_store *s) {
    int64_t done = r_count(s, "completed");
    redisReply *r = ok_reply(cmd(s, "HGET hb:stats job_seconds"), "HGET");
    double secs = r && r->type == REDIS_REPLY_STRING ? atof(r->str) : 0;
    freeReplyObject(r);
    return done > 0 ? secs / (double)done : 0;
}

json_t *srv_redis_cluster(srv_store *s) {
    int alive = 0;
    json_t *workers = workers_json(s, &alive);
    int64_t now = (int64_t)time(NULL);
    int64_t done = r_count(s, "completed"), last_min = int_reply(cmd(s, "ZCOUNT hb:done %lld +inf", (long long)(now - 60)), "ZCOUNT");
    int64_t last_hour = int_reply(cmd(s, "ZCOUNT hb:done %lld +inf", (long long)(now - 3600)), "ZCOUNT");
    redisReply *js = ok_reply(cmd(s, "HGET hb:stats job_seconds"), "HGET");
    double job_s = js && js->type == REDIS_REPLY_STRING ? atof(js->str) : 0;
    freeReplyObject(js);
    return json_pack("{s:s, s:i, s:o, s:o, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:f}}", "object", "cluster", "workers_alive",
                     alive, "workers", workers, "models", srv_redis_models(s), "jobs", "queued",
                     (json_int_t)r_count(s, "queued"), "running", (json_int_t)r_count(s, "in_progress"), "completed",
                     (json_int_t)(done > 0 ? done : 0), "failed", (json_int_t)int_reply(cmd(s, "HGET hb:stats failed"), "HGET"),
                     "throughput", "completed_last_minute", (json_int_t)last_min, "completed_last_hour",
                     (json_int_t)last_hour, "mean_job_seconds", done > 0 ? round(job_s / (double)done * 1000) / 1000 : 0.0);
}
