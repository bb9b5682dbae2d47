/* hb serve: an HTTP server with OpenAI's videos API (docs/serving.md). One model loaded once, one worker
 * thread running the jobs in order, jobs kept in SQLite under --data so that they survive restarts; or, with
 * --store redis://..., one process of a cluster (an API, a worker or both) sharing Redis and --results. The
 * parts are in tools/serve/ (serve.h); this file reads the flags, starts them and stops them on SIGTERM. */
#include "tools.h"
#include "hummingbird.h"
#include "serve/serve.h"
#include "pipeline/model_folder.h"
#include "pipeline/settings.h"
#include "models/wan_dit.h"
#include <civetweb.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: hb serve -m MODEL_DIR [options]\n\n"
            "  -m DIR              model folder: Hummingbird-XT (hb_generate) or XTX (mode ar, hb_generate_ar)\n"
            "  --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)\n"
            "  --port N            TCP port (default 8080)\n"
            "  --api-key KEY       require 'Authorization: Bearer KEY' (default: HB_API_KEY, else none)\n"
            "  --queue N           most jobs waiting; more get 429 + Retry-After (default 32)\n"
            "  --data DIR          job database and videos (default hb-serve-data)\n"
            "  --keep HOURS        results are deleted this long after they finish (default 24)\n"
            "  --model-name NAME   the model id clients use (default: the folder's name)\n"
            "  --max-frames N      longest video in frames (default 241 XT, 1921 XTX)\n"
            "  --max-side N        largest width or height (default 1920)\n"
            "  --max-upload-mb N   largest request body (multipart with an image; default 32)\n"
            "  --http-threads N    connections served at once, event streams included (default 32)\n"
            "  --vae K             decoder: full | tae | light (XTX: full | tae); default: the model's\n"
            "  --offload           keep only one of text encoder / DiT / VAE loaded at a time\n"
            "  -d DEV, -t N, -v, -q   device, threads, verbose, quiet (as hb generate)\n\n"
            "a cluster (docs/serving.md, \"Scaling out\"): many processes share one Redis and a results folder\n"
            "  --store redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]   jobs in Redis instead of --data's SQLite\n"
            "  --role api|worker|both  HTTP API only (no -m), jobs of -m's model only, or both (default both)\n"
            "  --results DIR       the shared folder of videos (default hb-serve-results)\n"
            "  --lease SECONDS     a job whose worker is silent this long runs on another worker (default 30)\n");
}

static int parse_num(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !(x >= lo && x <= hi)) return hb_error("%s: '%s' is not a number in [%g, %g]", flag, v, lo, hi);
    *out = x;
    return 0;
}

typedef struct {
    const char *model, *host, *data, *name, *device, *store, *results;
    int port, http_threads, max_frames, max_side;
    bool offload;
} serve_opts;

static int load_model(srv_server *s, const serve_opts *o) {
    /* XTX (a release root, or "arch": "hummingbird-xtx") runs chunk by chunk with the release's defaults; any
     * other folder is loaded once as XT (pipeline/model_folder.h, pipeline/settings.h) */
    hb_model_folder mf;
    if (hb_model_folder_scan(o->model, &mf)) return -1;
    const bool ar = hb_model_folder_family(&mf, 0) == HB_FAMILY_XTX;
    int latent_channels = 16, size_mult = 16;
    if (ar) { /* the causal DiT's latent (Wan2.1 16 channels or the 5B's 48) sets its native size and multiple */
        wan_dit *dit = hb_model_folder_open_dit(&mf, NULL);
        if (!dit) return -1;
        latent_channels = dit->cfg.in_dim, size_mult = (latent_channels == 48 ? 16 : 8) * dit->cfg.patch[1];
        hb_wan_dit_free(dit);
    }
    hb_ar_settings as;
    hb_ar_settings_for(&mf, latent_channels, &as);
    srv_model_info *mi = &s->mi;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", o->model);
    while (strlen(tmp) > 1 && tmp[strlen(tmp) - 1] == '/') tmp[strlen(tmp) - 1] = 0;
    snprintf(mi->id, sizeof mi->id, "%s", o->name ? o->name : basename(tmp));
    mi->max_side = o->max_side, mi->max_prompt = 8192;
    if (ar) {
        struct stat st;
        if (stat(o->model, &st) || !S_ISDIR(st.st_mode)) return hb_error("-m %s: not a folder", o->model);
        if (s->vae_set && s->vae == HB_GEN_VAE_LIGHT) return hb_error("--vae light: XTX decodes with full or tae");
        mi->kind = SRV_KIND_AR, mi->size_mult = size_mult, mi->fps = as.fps, mi->native_w = as.width, mi->native_h = as.height;
        mi->max_frames = o->max_frames ? o->max_frames : 1921;
        return 0;
    }
    hb_load_params lp = {.offload = o->offload, .device = o->device};
    s->model = hb_model_load(o->model, &lp);
    if (!s->model) return -1;
    mi->kind = SRV_KIND_XT, mi->size_mult = hb_model_size_multiple(s->model), mi->fps = hb_model_default_fps(s->model);
    bool wan22 = hb_model_latent_channels(s->model) == 48; /* the 5B's 720p, else Wan 2.1's 480p */
    mi->native_w = wan22 ? 1280 : 832, mi->native_h = wan22 ? 704 : 480;
    mi->max_frames = o->max_frames ? o->max_frames : 241;
    return 0;
}

/* Temporary and partial files of runs that were killed, untouched for min_age seconds (a cluster's folder is
 * shared: other workers' files in progress are younger). */
static void remove_leftovers(const char *dir, double min_age) {
    DIR *d = opendir(dir);
    time_t now = time(NULL);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if ((n > 4 && !strcmp(e->d_name + n - 4, ".tmp")) || strstr(e->d_name, ".partial.") || strstr(e->d_name, ".hbtmp.")) {
            char f[4600];
            struct stat st;
            snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
            if (!stat(f, &st) && difftime(now, st.st_mtime) >= min_age) unlink(f);
        }
    }
    if (d) closedir(d);
}

/* --data DIR: the database, the videos folder, one server at a time; leftovers of a killed run removed */
static int open_data(srv_server *s, int *lock_fd) {
    char p[4200];
    snprintf(s->videos, sizeof s->videos, "%.3900s/videos", s->data);
    snprintf(p, sizeof p, "%s/videos", s->data);
    if ((mkdir(s->data, 0755) && errno != EEXIST) || (mkdir(p, 0755) && errno != EEXIST))
        return hb_error("--data %s: cannot create %s: %s", s->data, p, strerror(errno));
    snprintf(p, sizeof p, "%s/lock", s->data);
    *lock_fd = open(p, O_RDWR | O_CREAT, 0644);
    if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX | LOCK_NB)) return hb_error("--data %s: in use by another hb serve", s->data);
    remove_leftovers(s->videos, 0);
    char err[600];
    snprintf(p, sizeof p, "%s/jobs.db", s->data);
    if (!(s->store = srv_store_open(p, err, sizeof err))) return hb_error("%s", err);
    if (srv_store_requeue_running(s->store)) return hb_error("%s: cannot re-queue the interrupted jobs", p);
    return 0;
}

/* --store redis://...: the shared store and results folder; a worker's own connection and its name */
static int open_cluster(srv_server *s, const serve_opts *o) {
    srv_redis_url url;
    char err[600];
    if (srv_redis_url_parse(o->store, &url, err, sizeof err)) return hb_error("%s", err);
    const char *res = o->results ? o->results : "hb-serve-results";
    if (strlen(res) > 3800) return hb_error("--results: the path is too long");
    snprintf(s->videos, sizeof s->videos, "%s", res);
    s->cluster = true;
    if (!(s->store = srv_redis_open(&url, s->queue_max, 10, err, sizeof err))) return hb_error("%s", err);
    if (mkdir(res, 0755) && errno != EEXIST) return hb_error("--results %s: cannot create it: %s", res, strerror(errno));
    if (s->role == SRV_ROLE_API) return 0;
    remove_leftovers(s->videos, 3600);
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(s->worker_name, sizeof s->worker_name, "%s-%d", host, (int)getpid());
    if (!(s->wstore = srv_redis_open(&url, s->queue_max, 5, err, sizeof err))) return hb_error("%s", err);
    /* declared now, so that API processes accept this model's jobs from the start */
    if (srv_redis_group(s->wstore, s->mi.id) || srv_redis_heartbeat(s->wstore, s->worker_name, &s->mi, s->lease_ms / 1000 > 2 ? s->lease_ms / 1000 : 2, s->started_at, ""))
        return hb_error("--store: cannot register this worker");
    return 0;
}

static int parse_args(int argc, char **argv, serve_opts *o, srv_server *s) {
    double x = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-d") || !strcmp(a, "--device")) && i + 1 < argc) { o->device = argv[++i]; continue; }
        int c = tool_common_flag(argc, argv, &i);
        if (c < 0) return -1;
        if (c) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 1; }
        if (!strcmp(a, "--offload")) { o->offload = true; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "hb serve: unknown option or missing value: '%s'\n\n", a); usage(stderr); return 2; }
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--host")) o->host = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--model-name")) o->name = v;
        else if (!strcmp(a, "--api-key")) s->api_key = v;
        else if (!strcmp(a, "--store")) o->store = v;
        else if (!strcmp(a, "--results")) o->results = v;
        else if (!strcmp(a, "--lease")) rc = parse_num(a, v, 1, 86400, &x), s->lease_ms = (int)(x * 1000);
        else if (!strcmp(a, "--role")) {
            if (!strcmp(v, "api")) s->role = SRV_ROLE_API;
            else if (!strcmp(v, "worker")) s->role = SRV_ROLE_WORKER;
            else if (!strcmp(v, "both")) s->role = SRV_ROLE_BOTH;
            else rc = hb_error("--role must be api, worker or both (got '%s')", v);
        }
        else if (!strcmp(a, "--port")) rc = parse_num(a, v, 1, 65535, &x), o->port = (int)x;
        else if (!strcmp(a, "--queue")) rc = parse_num(a, v, 1, 1e6, &x), s->queue_max = (int)x;
        else if (!strcmp(a, "--keep")) rc = parse_num(a, v, 0.0001, 1e6, &s->keep_hours);
        else if (!strcmp(a, "--max-frames")) rc = parse_num(a, v, 1, 100001, &x), o->max_frames = (int)x;
        else if (!strcmp(a, "--max-side")) rc = parse_num(a, v, 16, 16384, &x), o->max_side = (int)x;
        else if (!strcmp(a, "--max-upload-mb")) rc = parse_num(a, v, 1, 4096, &x), s->max_body = (size_t)x << 20;
        else if (!strcmp(a, "--http-threads")) rc = parse_num(a, v, 2, 1024, &x), o->http_threads = (int)x;
        else if (!strcmp(a, "--vae")) {
            if (!strcmp(v, "full")) s->vae = HB_GEN_VAE_FULL;
            else if (!strcmp(v, "tae")) s->vae = HB_GEN_VAE_TAE;
            else if (!strcmp(v, "light")) s->vae = HB_GEN_VAE_LIGHT;
            else rc = hb_error("--vae must be full, tae or light (got '%s')", v);
            s->vae_set = true;
        } else { fprintf(stderr, "hb serve: unknown option '%s'\n\n", a); usage(stderr); return 2; }
        if (rc) return -1;
    }
    if (!o->store && (s->role != SRV_ROLE_BOTH || o->results))
        { fprintf(stderr, "hb serve: --role and --results go with --store redis://...\n\n"); usage(stderr); return 2; }
    if (!o->model && s->role != SRV_ROLE_API) { fprintf(stderr, "hb serve: -m MODEL_DIR is required\n\n"); usage(stderr); return 2; }
    if (o->model && s->role == SRV_ROLE_API) { fprintf(stderr, "hb serve: --role api runs no model: leave out -m\n\n"); usage(stderr); return 2; }
    return 0;
}

static void shutdown_server(srv_server *s, struct mg_context *ctx, bool worker) {
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    if (s->running[0]) {
        s->cancel = SRV_CANCEL_SHUTDOWN; /* stopped at its next step, queued again */
        fprintf(stderr, "hb serve: %s goes back to the queue\n", s->running);
    }
    pthread_cond_broadcast(&s->work);
    pthread_cond_broadcast(&s->events);
    pthread_mutex_unlock(&s->mu);
    mg_stop(ctx); /* no new connections; waits for the requests in flight */
    if (worker) srv_worker_join(s);
}

int cmd_serve(int argc, char **argv) {
    static srv_server s = {.mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .events = PTHREAD_COND_INITIALIZER};
    serve_opts o = {.host = "127.0.0.1", .data = "hb-serve-data", .port = 8080, .http_threads = 32, .max_side = 1920};
    s.queue_max = 32, s.keep_hours = 24, s.lease_ms = 30000, s.max_body = (size_t)32 << 20, s.api_key = getenv("HB_API_KEY");
    if (s.api_key && !*s.api_key) s.api_key = NULL;
    int pr = parse_args(argc, argv, &o, &s);
    if (pr) return pr < 0 ? tool_fail(argv[0]) : pr == 1 ? 0 : pr;
    if (s.api_key && !*s.api_key) { fprintf(stderr, "hb serve: --api-key is empty\n"); return 2; }
    if (strlen(o.data) > 3800) { fprintf(stderr, "hb serve: --data: the path is too long\n"); return 2; }
    snprintf(s.data, sizeof s.data, "%s", o.data);
    s.model_dir = o.model, s.device = o.device, s.started_at = (int64_t)time(NULL);
    int lock_fd = -1;
    if ((o.model && load_model(&s, &o)) || (o.store ? open_cluster(&s, &o) : open_data(&s, &lock_fd))) {
        tool_fail(argv[0]);
        srv_store_close(s.store);
        srv_store_close(s.wstore);
        hb_model_free(s.model);
        return 1;
    }
    bool worker = s.role != SRV_ROLE_API;
    /* SIGINT/SIGTERM go to sigwait below: blocked before any thread starts, so every thread inherits it */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT), sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    char err[400];
    struct mg_context *ctx = NULL;
    if (worker && srv_worker_start(&s)) { hb_error("cannot start the worker thread"); goto fail; }
    if (!(ctx = srv_http_start(&s, o.host, o.port, o.http_threads, err, sizeof err))) {
        hb_error("%s", err);
        pthread_mutex_lock(&s.mu);
        s.stopping = true;
        pthread_cond_broadcast(&s.work);
        pthread_mutex_unlock(&s.mu);
        if (worker) srv_worker_join(&s);
        goto fail;
    }
    fprintf(stderr, "hb serve: %s (%s) on http://%s%s%s:%d/v1/videos, %s %s%s\n", s.mi.id[0] ? s.mi.id : "cluster API",
            !worker ? "no model" : s.mi.kind == SRV_KIND_AR ? "XTX" : "XT", strchr(o.host, ':') ? "[" : "", o.host,
            strchr(o.host, ':') ? "]" : "", o.port, o.store ? "results in" : "data in", o.store ? s.videos : s.data,
            s.api_key ? ", API key required" : "");
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "hb serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    shutdown_server(&s, ctx, worker);
    srv_store_close(s.store);
    srv_store_close(s.wstore);
    hb_model_free(s.model);
    for (int i = 0; i < SRV_EVENTS; i++) free(s.ring[i].text);
    fprintf(stderr, "hb serve: stopped\n");
    close(lock_fd);
    return 0;
fail:
    tool_fail(argv[0]);
    srv_store_close(s.store);
    srv_store_close(s.wstore);
    hb_model_free(s.model);
    close(lock_fd);
    return 1;
}
