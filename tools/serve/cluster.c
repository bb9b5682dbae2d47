/* hb serve: a worker of the cluster (--store redis://..., role worker or both). The worker thread takes jobs
 * of its model from the model's Redis stream through the consumer group "workers", runs them like the
 * single-machine worker (worker.c), writes the files into the shared results folder (temp file + rename),
 * then records the outcome and acknowledges the entry in one script (store_redis.c): a job is acknowledged
 * only once its file is whole and its completion recorded, and the record is written once. A lease thread
 * keeps the running entry claimed, beats the worker's heartbeat and polls the job's cancel flag; a worker
 * that dies stops refreshing, and after --lease another worker claims the entry and runs the job again. */
#include "serve.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool stopping(srv_server *s) {
    pthread_mutex_lock(&s->mu);
    bool v = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* ---------------------------------------------------------------- the lease thread */

#define LEASE_POLL_US 250000 /* cancel reaches a running job within this (plus one step) */

static void lease_tick(srv_server *s, srv_store *ls) {
    char id[SRV_ID_LEN + 1], entry[32], cancel[16] = "";
    pthread_mutex_lock(&s->mu);
    snprintf(id, sizeof id, "%s", s->running);
    snprintf(entry, sizeof entry, "%s", s->running_entry);
    pthread_mutex_unlock(&s->mu);
    if (!id[0] || srv_redis_lease(ls, s->mi.id, s->worker_name, entry, id, cancel, sizeof cancel)) return;
    pthread_mutex_lock(&s->mu);
    if (!strcmp(s->running, id) && s->cancel == SRV_CANCEL_NONE) {
        if (!strcmp(cancel, "cancel")) s->cancel = SRV_CANCEL_CANCEL;
        else if (!strcmp(cancel, "delete")) s->cancel = SRV_CANCEL_DELETE;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *lease_main(void *arg) {
    srv_server *s = arg;
    char err[300];
    srv_store *ls = srv_redis_open_like(s->store, 2, err, sizeof err);
    if (!ls) fprintf(stderr, "hb serve: lease thread: %s\n", err);
    int ttl = s->lease_ms / 1000 > 2 ? s->lease_ms / 1000 : 2;
    double next_beat = 0;
    while (ls && !stopping(s)) {
        if (now_s() >= next_beat) {
            pthread_mutex_lock(&s->mu);
            char running[SRV_ID_LEN + 1];
            snprintf(running, sizeof running, "%s", s->running);
            pthread_mutex_unlock(&s->mu);
            srv_redis_heartbeat(ls, s->worker_name, &s->mi, ttl, s->started_at, running);
            next_beat = now_s() + 1;
        }
        lease_tick(s, ls);
        usleep(LEASE_POLL_US);
    }
    if (ls) srv_redis_leave(ls, s->worker_name);
    srv_store_close(ls);
    return NULL;
}

/* ---------------------------------------------------------------- the worker thread */

/* The outcome of a run as the finish script's words, and the files removed for a deleted job (lock held). */
static const char *outcome_of(srv_server *s, const char *id, int rc, srv_cancel why, const char **code) {
    *code = NULL;
    if (why == SRV_CANCEL_DELETE) { srv_remove_files(s, id); return "deleted"; }
    if (rc == 0) return "completed";
    if (rc == HB_CANCELLED && why == SRV_CANCEL_SHUTDOWN) return "requeue"; /* another worker runs it now */
    *code = rc == HB_CANCELLED ? "cancelled" : "generation_failed";
    return "failed";
}

static void run_one(srv_server *s, srv_job *j, const char *entry) {
    pthread_mutex_lock(&s->mu);
    snprintf(s->running, sizeof s->running, "%s", j->id);
    snprintf(s->running_entry, sizeof s->running_entry, "%s", entry);
    s->running_progress = 0;
    s->cancel = SRV_CANCEL_NONE;
    srv_emit_status(s, j->id);
    pthread_mutex_unlock(&s->mu);
    char err[512] = "";
    double t0 = now_s();
    int rc = srv_run_job(s, j->id, j->params, err, sizeof err);
    double secs = now_s() - t0;
    pthread_mutex_lock(&s->mu);
    const char *code, *out = outcome_of(s, j->id, rc, s->cancel, &code);
    int progress = rc == 0 ? 100 : s->running_progress;
    pthread_mutex_unlock(&s->mu);
    int64_t now = (int64_t)time(NULL), exp = now + (int64_t)(s->keep_hours * 3600);
    const char *msg = !code ? NULL : !strcmp(code, "cancelled") ? "cancelled by request" : err;
    /* the file is whole (renamed into place); record once and acknowledge, retrying while Redis is away */
    int rec;
    while ((rec = srv_redis_finish(s->wstore, s->mi.id, entry, j->id, out, progress, now, exp, code, msg, secs)) < 0 && !stopping(s))
        sleep(1);
    if (rec == 0 && !strcmp(out, "completed"))
        fprintf(stderr, "hb serve: %s was already finished by another worker; this run's record is dropped\n", j->id);
    pthread_mutex_lock(&s->mu);
    if (rec == 2 && strcmp(out, "deleted")) srv_remove_files(s, j->id), out = "deleted"; /* deleted as it finished */
    s->running[0] = 0, s->running_entry[0] = 0;
    s->cancel = SRV_CANCEL_NONE;
    if (!strcmp(out, "deleted"))
        srv_emit(s, j->id, "status", json_pack("{s:s, s:s, s:b}", "id", j->id, "object", "video.deleted", "deleted", 1), true);
    else if (strcmp(out, "requeue")) srv_emit_status(s, j->id);
    pthread_mutex_unlock(&s->mu);
}

void *srv_cluster_worker_main(void *arg) {
    srv_server *s = arg;
    bool lease = pthread_create(&s->lease, NULL, lease_main, s) == 0;
    if (!lease) fprintf(stderr, "hb serve: cannot start the lease thread\n");
    double every = s->keep_hours * 3600 / 4 < 60 ? s->keep_hours * 3600 / 4 : 60, next_sweep = 0;
    if (every < 0.5) every = 0.5;
    while (lease && !stopping(s)) {
        if (now_s() >= next_sweep) {
            pthread_mutex_lock(&s->mu);
            srv_sweep(s);
            pthread_mutex_unlock(&s->mu);
            next_sweep = now_s() + every;
        }
        srv_job j;
        char entry[32] = "";
        int64_t keep_s = (int64_t)(s->keep_hours * 3600);
        int got = srv_redis_group(s->wstore, s->mi.id) ? -1
                : srv_redis_take(s->wstore, s->mi.id, s->worker_name, s->lease_ms, keep_s, &j, entry);
        if (got < 0) sleep(1); /* Redis away: the store's reconnect already backed off */
        if (got <= 0) continue;
        run_one(s, &j, entry);
        srv_job_clear(&j);
    }
    if (lease) pthread_join(s->lease, NULL);
    return NULL;
}
