/* hb serve: the worker thread. It takes the oldest queued job from the store, runs it through the public API
 * (hb_generate for XT, hb_generate_ar for XTX), reports progress and chunks to the event log, and writes the
 * video and its thumbnail beside the database (temp file + rename: a finished file is always whole). Cancel,
 * delete and shutdown reach a running job through the progress callback's return value. When idle it
 * deletes expired results. */
#include "serve.h"
#include "io/image.h"
#include "io/video.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef HB_HAVE_JPEG
#include <jpeglib.h>
#endif

void srv_path(const srv_server *s, const char *id, const char *kind, char *buf, size_t cap) {
    snprintf(buf, cap, "%.3900s/%.38s.%.12s", s->videos, id, kind);
}

void srv_remove_files(const srv_server *s, const char *id) {
    static const char *const kinds[] = {"mp4", "jpg", "img", "partial.mp4", "prompts", "jpg.tmp"};
    char p[4200];
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        srv_path(s, id, kinds[i], p, sizeof p);
        unlink(p);
    }
}

static json_t *time_or_null(int64_t t) { return t > 0 ? json_integer(t) : json_null(); }

json_t *srv_video_json(srv_server *s, const srv_job *j) {
    const json_t *p = j->params;
    bool running = !strcmp(j->id, s->running);
    int progress = !strcmp(j->status, "completed") ? 100 : running ? s->running_progress : j->progress;
    json_t *qp = json_null();
    if (!strcmp(j->status, "queued")) qp = json_integer(srv_store_count_before(s->store, j->seq) + (s->running[0] ? 1 : 0));
    json_t *err = j->error_code[0] ? json_pack("{s:s, s:s}", "code", j->error_code, "message", j->error_message) : json_null();
    return json_pack("{s:s, s:s, s:O, s:s, s:i, s:I, s:o, s:o, s:O, s:O, s:O, s:n, s:o, s:o, s:O, s:O, s:O, s:O}",
                     "id", j->id, "object", "video", "model", json_object_get(p, "model"), "status", j->status,
                     "progress", progress, "created_at", (json_int_t)j->created_at, "completed_at",
                     time_or_null(j->completed_at), "expires_at", time_or_null(j->expires_at), "seconds",
                     json_object_get(p, "seconds"), "size", json_object_get(p, "size"), "prompt",
                     json_object_get(p, "prompt"), "remixed_from_video_id", "error", err, "queue_position", qp,
                     "seed", json_object_get(p, "seed"), "num_frames", json_object_get(p, "frames"), "fps",
                     json_object_get(p, "fps"), "mode", json_object_get(p, "mode"));
}

void srv_emit(srv_server *s, const char *id, const char *event, json_t *data, bool terminal) {
    char *d = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    srv_event *e = &s->ring[s->ev_next % SRV_EVENTS];
    free(e->text);
    e->text = NULL;
    if (d && asprintf(&e->text, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)s->ev_next, event, d) < 0) e->text = NULL;
    e->seq = s->ev_next++;
    snprintf(e->id, sizeof e->id, "%s", id);
    e->terminal = terminal;
    pthread_cond_broadcast(&s->events);
    if (s->cluster && d) srv_redis_publish(s->store, id, event, d, terminal); /* the SSE streams of every API process */
    free(d);
}

void srv_emit_status(srv_server *s, const char *id) {
    srv_job j;
    if (srv_store_get(s->store, id, &j) != 1) return;
    bool terminal = !strcmp(j.status, "completed") || !strcmp(j.status, "failed");
    srv_emit(s, id, "status", srv_video_json(s, &j), terminal);
    srv_job_clear(&j);
}

/* ---------------------------------------------------------------- thumbnails */

/* The first frame as a JPEG (a PNG in builds without libjpeg), atomically. */
static int write_thumbnail(const char *path, const uint8_t *rgb, int h, int w) {
#ifdef HB_HAVE_JPEG
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid()); /* per process: two workers may run one job */
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h, c.input_components = 3, c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) { unlink(tmp); return -1; }
    return 0;
#else
    return hb_png_write(path, rgb, w, h, NULL);
#endif
}

/* ---------------------------------------------------------------- running a job */

typedef struct {
    srv_server *s;
    const char *id;
    bool ar;
    int last_pct;
    bool thumb_done;
    char thumb[4200];
} run_ctx;

static int on_progress(void *user, const char *stage, int step, int total, double el, double eta) {
    (void)el;
    run_ctx *r = user;
    int pct;
    if (!strcmp(stage, "text")) pct = 5;
    else if (!strcmp(stage, "image")) pct = 10;
    else if (!strcmp(stage, "denoise")) pct = 10 + 80 * step / (total > 0 ? total : 1);
    else if (!strcmp(stage, "decode")) pct = 90 + 9 * step / (total > 0 ? total : 1);
    else if (!strcmp(stage, "chunks")) pct = 99 * step / (total > 0 ? total : 1);
    else pct = -1; /* sub-stages of the models */
    pthread_mutex_lock(&r->s->mu);
    if (pct >= 0 && step > 0) {
        if (pct > r->last_pct && r->s->cluster) srv_redis_progress(r->s->store, r->id, pct); /* for every API process */
        if (pct > r->last_pct) r->last_pct = pct;
        r->s->running_progress = r->last_pct;
        srv_emit(r->s, r->id, "progress",
                 json_pack("{s:s, s:s, s:i, s:i, s:i, s:f}", "id", r->id, "stage", stage, "step", step, "total", total,
                           "progress", r->last_pct, "eta_seconds", eta < 0 ? 0.0 : eta),
                 false);
    }
    int stop = r->s->cancel != SRV_CANCEL_NONE;
    pthread_mutex_unlock(&r->s->mu);
    return stop;
}

static int on_chunk(void *user, int64_t first, int n, const uint8_t *rgb, int h, int w) {
    run_ctx *r = user;
    if (!r->thumb_done && first == 0 && n > 0) r->thumb_done = write_thumbnail(r->thumb, rgb, h, w) == 0;
    pthread_mutex_lock(&r->s->mu);
    srv_emit(r->s, r->id, "chunk", json_pack("{s:s, s:I, s:i, s:i, s:i}", "id", r->id, "first_frame", (json_int_t)first,
                                             "frames", n, "width", w, "height", h), false);
    pthread_mutex_unlock(&r->s->mu);
    return 0; /* a cancel goes through on_progress, whose nonzero return hb_generate_ar reports as HB_CANCELLED */
}

static int jint(const json_t *p, const char *k) { return (int)json_integer_value(json_object_get(p, k)); }

static void steps_from(const json_t *p, int *nsteps, int64_t *list, int *steps) {
    const json_t *l = json_object_get(p, "steps_list");
    for (size_t i = 0; i < json_array_size(l) && i < HB_GEN_MAX_STEPS; i++) list[i] = json_integer_value(json_array_get(l, i));
    if (l) *nsteps = (int)json_array_size(l);
    if (steps && json_object_get(p, "steps")) *steps = jint(p, "steps");
}

static int run_xt(srv_server *s, run_ctx *r, const json_t *p, char *err, size_t cap) {
    hb_generate_params g;
    hb_generate_params_init(&g);
    char img[4200], mp4[4200];
    g.prompt = json_string_value(json_object_get(p, "prompt"));
    g.negative = json_string_value(json_object_get(p, "negative_prompt"));
    g.width = jint(p, "width"), g.height = jint(p, "height"), g.frames = jint(p, "frames");
    g.seed = (uint64_t)json_integer_value(json_object_get(p, "seed"));
    const char *smp = json_string_value(json_object_get(p, "sampler"));
    g.sampler = !smp ? HB_GEN_SAMPLER_DEFAULT : !strcmp(smp, "unipc") ? HB_GEN_SAMPLER_UNIPC
              : !strcmp(smp, "euler") ? HB_GEN_SAMPLER_EULER : HB_GEN_SAMPLER_XT;
    steps_from(p, &g.nsteps, g.steps_list, &g.steps);
    if (json_object_get(p, "shift")) g.shift = json_number_value(json_object_get(p, "shift"));
    if (s->vae_set) g.vae = s->vae;
    if (json_is_true(json_object_get(p, "input"))) srv_path(s, r->id, "img", img, sizeof img), g.image_path = img;
    g.progress = on_progress, g.progress_user = r;
    hb_video_frames v = {0};
    int rc = hb_generate(s->model, &g, &v);
    if (rc) { snprintf(err, cap, "%s", hb_last_error_message()); return rc; }
    srv_path(s, r->id, "mp4", mp4, sizeof mp4);
    hb_video_meta meta = {.prompt = g.prompt, .model = s->mi.id, .seed = (int64_t)g.seed, .has_seed = true};
    hb_video_opts vo = {.fps = json_number_value(json_object_get(p, "fps")), .meta = &meta};
    if (write_thumbnail(r->thumb, v.rgb, v.height, v.width) || hb_video_write(mp4, v.rgb, v.frames, v.height, v.width, &vo)) {
        snprintf(err, cap, "writing the result: %s", hb_last_error_message()[0] ? hb_last_error_message() : strerror(errno));
        rc = -1;
    }
    hb_frames_free(&v);
    return rc;
}

/* XTX: prompt switches go to a prompts file (latent frame <TAB> prompt), the video streams to a partial file
 * renamed when whole. */
static int run_ar(srv_server *s, run_ctx *r, const json_t *p, char *err, size_t cap) {
    hb_ar_params a;
    hb_ar_params_init(&a);
    char prompts[4200], part[4200], mp4[4200];
    srv_path(s, r->id, "prompts", prompts, sizeof prompts);
    srv_path(s, r->id, "partial.mp4", part, sizeof part);
    if (s->cluster) /* two workers may run one job (a lease taken over): each streams to its own partial file */
        snprintf(part, sizeof part, "%.3900s/%.38s.%.100s.partial.mp4", s->videos, r->id, s->worker_name);
    srv_path(s, r->id, "mp4", mp4, sizeof mp4);
    a.prompt = json_string_value(json_object_get(p, "prompt"));
    const json_t *sw = json_object_get(p, "prompts");
    if (sw) {
        FILE *f = fopen(prompts, "w");
        if (!f) { snprintf(err, cap, "%.300s: %s", prompts, strerror(errno)); return -1; }
        fprintf(f, "0\t%s\n", a.prompt);
        for (size_t i = 0; i < json_array_size(sw); i++) {
            const json_t *e = json_array_get(sw, i);
            fprintf(f, "%lld\t%s\n", (long long)(json_integer_value(json_object_get(e, "frame")) + 3) / 4,
                    json_string_value(json_object_get(e, "prompt")));
        }
        if (fclose(f)) { snprintf(err, cap, "%.300s: %s", prompts, strerror(errno)); return -1; }
        a.prompts_file = prompts;
    }
    a.width = jint(p, "width"), a.height = jint(p, "height"), a.frames = jint(p, "frames");
    a.seed = (uint64_t)json_integer_value(json_object_get(p, "seed"));
    steps_from(p, &a.nsteps, a.steps_list, NULL);
    if (json_object_get(p, "shift")) a.shift = json_number_value(json_object_get(p, "shift"));
    if (s->vae_set) a.vae = s->vae;
    a.fps = json_number_value(json_object_get(p, "fps"));
    a.output = part, a.on_chunk = on_chunk, a.user = r, a.progress = on_progress, a.progress_user = r;
    a.device = s->device;
    int rc = hb_generate_ar(s->model_dir, &a, NULL);
    if (rc) snprintf(err, cap, "%s", hb_last_error_message());
    else if (rename(part, mp4)) { snprintf(err, cap, "%.300s: %s", mp4, strerror(errno)); rc = -1; }
    unlink(prompts);
    if (rc) unlink(part);
    return rc;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Record the outcome of a run (lock held). */
static void finish(srv_server *s, const char *id, int rc, const char *err, double secs) {
    int64_t now = (int64_t)time(NULL), exp = now + (int64_t)(s->keep_hours * 3600);
    srv_cancel why = s->cancel;
    bool gone = false;
    if (why == SRV_CANCEL_DELETE) { /* deleted while running, whatever the run's end */
        srv_store_delete(s->store, id);
        srv_remove_files(s, id);
        gone = true;
    } else if (rc == 0) {
        srv_store_set_status(s->store, id, "completed", 100, now, exp, NULL, NULL);
        s->avg_job_s = s->avg_job_s > 0 ? 0.8 * s->avg_job_s + 0.2 * secs : secs;
    } else if (rc == HB_CANCELLED && why == SRV_CANCEL_SHUTDOWN) {
        srv_store_set_status(s->store, id, "queued", 0, 0, 0, NULL, NULL); /* runs again after the restart */
    } else if (rc == HB_CANCELLED) {
        srv_store_set_status(s->store, id, "failed", s->running_progress, now, exp, "cancelled", "cancelled by request");
    } else {
        srv_store_set_status(s->store, id, "failed", s->running_progress, now, exp, "generation_failed", err);
    }
    s->running[0] = 0;
    s->cancel = SRV_CANCEL_NONE;
    if (gone) srv_emit(s, id, "status", json_pack("{s:s, s:s, s:b}", "id", id, "object", "video.deleted", "deleted", 1), true);
    else if (!(rc == HB_CANCELLED && why == SRV_CANCEL_SHUTDOWN)) srv_emit_status(s, id);
}

int srv_run_job(srv_server *s, const char *id, const json_t *params, char *err, size_t cap) {
    run_ctx r = {s, id, s->mi.kind == SRV_KIND_AR, 0, false, ""};
    srv_path(s, id, "jpg", r.thumb, sizeof r.thumb);
    int rc = r.ar ? run_ar(s, &r, params, err, cap) : run_xt(s, &r, params, err, cap);
    if (rc && rc != HB_CANCELLED) fprintf(stderr, "hb serve: %s failed: %s\n", id, err);
    return rc;
}

static void run_job(srv_server *s, srv_job *j) {
    char err[512] = "";
    double t0 = now_s();
    int rc = srv_run_job(s, j->id, j->params, err, sizeof err);
    pthread_mutex_lock(&s->mu);
    finish(s, j->id, rc, err, now_s() - t0);
    pthread_mutex_unlock(&s->mu);
}

/* Delete expired results (lock held). */
void srv_sweep(srv_server *s) {
    char ids[64][SRV_ID_LEN + 1];
    int n = srv_store_expired(s->store, (int64_t)time(NULL), ids, 64);
    for (int i = 0; i < n; i++) {
        srv_remove_files(s, ids[i]);
        srv_store_delete(s->store, ids[i]);
    }
}

static void *worker_main(void *arg) {
    srv_server *s = arg;
    double next_sweep = 0;
    /* every minute, or four times per --keep when that is shorter */
    double every = s->keep_hours * 3600 / 4 < 60 ? s->keep_hours * 3600 / 4 : 60;
    if (every < 0.5) every = 0.5;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        if (now_s() >= next_sweep) srv_sweep(s), next_sweep = now_s() + every;
        srv_job j;
        int got = srv_store_next_queued(s->store, &j);
        if (got != 1) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            double wait = got < 0 ? 1 : every;
            ts.tv_sec += (time_t)wait;
            ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&s->work, &s->mu, &ts);
            continue;
        }
        snprintf(s->running, sizeof s->running, "%s", j.id);
        s->running_progress = 0;
        s->cancel = SRV_CANCEL_NONE;
        srv_store_set_status(s->store, j.id, "in_progress", 0, 0, 0, NULL, NULL);
        srv_emit_status(s, j.id);
        pthread_mutex_unlock(&s->mu);
        run_job(s, &j);
        srv_job_clear(&j);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int srv_worker_start(srv_server *s) {
    return pthread_create(&s->worker, NULL, s->cluster ? srv_cluster_worker_main : worker_main, s) ? -1 : 0;
}

void srv_worker_join(srv_server *s) { pthread_join(s->worker, NULL); }
