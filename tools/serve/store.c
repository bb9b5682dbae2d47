/* hb serve: job records in SQLite. WAL journal with synchronous=FULL: a job is acknowledged (HTTP 200) only
 * after its row is durable, so neither a kill -9 nor a power cut loses an accepted job; the fsync per commit
 * is negligible next to a video generation. One connection, used under the server's lock. */
#include "serve.h"
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sql_store {
    srv_store base;
    sqlite3 *db;
} sql_store;
#define DB(s) (((sql_store *)(s))->db)

static const char k_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS jobs ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT UNIQUE NOT NULL,"
    " status TEXT NOT NULL,"
    " progress INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " completed_at INTEGER NOT NULL DEFAULT 0,"
    " expires_at INTEGER NOT NULL DEFAULT 0,"
    " params TEXT NOT NULL,"
    " error_code TEXT,"
    " error_message TEXT);"
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);";

#define COLS "seq, id, status, progress, created_at, completed_at, expires_at, params, error_code, error_message"

void srv_job_clear(srv_job *j) {
    json_decref(j->params);
    memset(j, 0, sizeof *j);
}

static const srv_store_ops k_sql_ops;

srv_store *srv_store_open(const char *path, char *err, size_t cap) {
    sql_store *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, cap, "out of memory"); return NULL; }
    char *msg = NULL;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(s->db, 5000) != SQLITE_OK || sqlite3_exec(s->db, k_schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        sqlite3_close(s->db);
        free(s);
        return NULL;
    }
    s->base.ops = &k_sql_ops;
    return &s->base;
}

static void sql_close(srv_store *st) {
    sql_store *s = (sql_store *)st;
    sqlite3_close(s->db);
    free(s);
}

/* prepare, bind text/int64 arguments by a format ("s" text, "i" int64), step once */
static sqlite3_stmt *prep(srv_store *s, const char *sql, const char *fmt, ...) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(DB(s), sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "hb serve: database: %s\n", sqlite3_errmsg(DB(s)));
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 's') {
            const char *v = va_arg(ap, const char *);
            if (v) sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT);
            else sqlite3_bind_null(st, i + 1);
        } else sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
    }
    va_end(ap);
    return st;
}

static int exec_done(srv_store *s, sqlite3_stmt *st) {
    if (!st) return -1;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "hb serve: database: %s\n", sqlite3_errmsg(DB(s)));
        return -1;
    }
    return 0;
}

static void row_to_job(sqlite3_stmt *st, srv_job *j) {
    memset(j, 0, sizeof *j);
    j->seq = sqlite3_column_int64(st, 0);
    snprintf(j->id, sizeof j->id, "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(j->status, sizeof j->status, "%s", (const char *)sqlite3_column_text(st, 2));
    j->progress = sqlite3_column_int(st, 3);
    j->created_at = sqlite3_column_int64(st, 4);
    j->completed_at = sqlite3_column_int64(st, 5);
    j->expires_at = sqlite3_column_int64(st, 6);
    const char *p = (const char *)sqlite3_column_text(st, 7);
    j->params = p ? json_loads(p, 0, NULL) : NULL;
    if (!j->params) j->params = json_object();
    const char *c = (const char *)sqlite3_column_text(st, 8), *m = (const char *)sqlite3_column_text(st, 9);
    snprintf(j->error_code, sizeof j->error_code, "%s", c ? c : "");
    snprintf(j->error_message, sizeof j->error_message, "%s", m ? m : "");
}

static int sql_insert(srv_store *s, const char *id, int64_t created_at, const json_t *params) {
    char *txt = json_dumps(params, JSON_COMPACT);
    if (!txt) return -1;
    int rc = exec_done(s, prep(s, "INSERT INTO jobs (id, status, created_at, params) VALUES (?, 'queued', ?, ?)", "sis",
                               id, created_at, txt));
    free(txt);
    return rc;
}

static int get_one(srv_store *s, sqlite3_stmt *st, srv_job *out) {
    if (!st) return -1;
    int rc = sqlite3_step(st), r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (r == 1) row_to_job(st, out);
    if (r < 0) fprintf(stderr, "hb serve: database: %s\n", sqlite3_errmsg(DB(s)));
    sqlite3_finalize(st);
    return r;
}

static int sql_get(srv_store *s, const char *id, srv_job *out) {
    return get_one(s, prep(s, "SELECT " COLS " FROM jobs WHERE id = ?", "s", id), out);
}

int srv_store_next_queued(srv_store *s, srv_job *out) {
    return get_one(s, prep(s, "SELECT " COLS " FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1", ""), out);
}

static int sql_set_status(srv_store *s, const char *id, const char *status, int progress, int64_t completed_at,
                         int64_t expires_at, const char *error_code, const char *error_message) {
    return exec_done(s, prep(s, "UPDATE jobs SET status = ?, progress = ?, completed_at = ?, expires_at = ?, error_code = ?, "
                                "error_message = ? WHERE id = ?", "siiisss", status, (int64_t)progress, completed_at,
                             expires_at, error_code, error_message, id));
}

static int sql_delete(srv_store *s, const char *id) {
    return exec_done(s, prep(s, "DELETE FROM jobs WHERE id = ?", "s", id));
}

static int64_t count(sqlite3_stmt *st) {
    if (!st) return -1;
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
}

static int64_t sql_count(srv_store *s, const char *status) {
    return count(prep(s, "SELECT COUNT(*) FROM jobs WHERE status = ?", "s", status));
}

static int64_t sql_count_before(srv_store *s, int64_t seq) {
    return count(prep(s, "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq < ?", "i", seq));
}

static int sql_list(srv_store *s, const char *after, int limit, bool asc, srv_job **out, int *n, bool *has_more) {
    *out = NULL, *n = 0, *has_more = false;
    int64_t from = asc ? 0 : INT64_MAX;
    if (after && after[0]) {
        srv_job a;
        int r = sql_get(s, after, &a);
        if (r <= 0) return r < 0 ? -1 : 1; /* 1: unknown cursor */
        from = a.seq;
        srv_job_clear(&a);
    }
    sqlite3_stmt *st = prep(s, asc ? "SELECT " COLS " FROM jobs WHERE seq > ? ORDER BY seq ASC LIMIT ?"
                                   : "SELECT " COLS " FROM jobs WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                            "ii", from, (int64_t)limit + 1);
    if (!st) return -1;
    srv_job *v = calloc((size_t)limit + 1, sizeof *v);
    int k = 0, rc;
    while (v && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == limit) { *has_more = true; break; }
        row_to_job(st, &v[k++]);
    }
    sqlite3_finalize(st);
    if (!v) return -1;
    *out = v, *n = k;
    return 0;
}

int srv_store_requeue_running(srv_store *s) {
    return exec_done(s, prep(s, "UPDATE jobs SET status = 'queued', progress = 0 WHERE status = 'in_progress'", ""));
}

static int sql_expired(srv_store *s, int64_t now, char (*ids)[SRV_ID_LEN + 1], int cap) {
    sqlite3_stmt *st = prep(s, "SELECT id FROM jobs WHERE status IN ('completed', 'failed') AND expires_at > 0 AND "
                               "expires_at <= ? LIMIT ?", "ii", now, (int64_t)cap);
    if (!st) return -1;
    int k = 0;
    while (k < cap && sqlite3_step(st) == SQLITE_ROW) snprintf(ids[k++], SRV_ID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return k;
}

static const srv_store_ops k_sql_ops = {sql_close, sql_insert, sql_get, sql_set_status, sql_delete, sql_count,
                                        sql_count_before, sql_list, sql_expired};

/* ---------------------------------------------------------------- the interface */

void srv_store_close(srv_store *s) {
    if (s) s->ops->close(s);
}
int srv_store_insert(srv_store *s, const char *id, int64_t created_at, const json_t *params) {
    return s->ops->insert(s, id, created_at, params);
}
int srv_store_get(srv_store *s, const char *id, srv_job *out) { return s->ops->get(s, id, out); }
int srv_store_set_status(srv_store *s, const char *id, const char *status, int progress, int64_t completed_at,
                         int64_t expires_at, const char *error_code, const char *error_message) {
    return s->ops->set_status(s, id, status, progress, completed_at, expires_at, error_code, error_message);
}
int srv_store_delete(srv_store *s, const char *id) { return s->ops->delete(s, id); }
int64_t srv_store_count(srv_store *s, const char *status) { return s->ops->count(s, status); }
int64_t srv_store_count_before(srv_store *s, int64_t seq) { return s->ops->count_before(s, seq); }
int srv_store_list(srv_store *s, const char *after, int limit, bool asc, srv_job **out, int *n, bool *has_more) {
    return s->ops->list(s, after, limit, asc, out, n, has_more);
}
int srv_store_expired(srv_store *s, int64_t now, char (*ids)[SRV_ID_LEN + 1], int cap) {
    return s->ops->expired(s, now, ids, cap);
}
