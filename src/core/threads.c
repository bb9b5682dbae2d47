#include "core/core.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define HB_MAX_THREADS 256

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    pthread_mutex_t call_mu; /* one parallel_for at a time from outside the pool */
    pthread_t tid[HB_MAX_THREADS];
    int n;                   /* threads including the caller */
    uint64_t generation;
    bool quit;
    /* the current job */
    hb_range_fn fn;
    void *ctx;
    int64_t total;
    int ntasks;
    atomic_int next_task;
    int active_workers;
} pool_t;

static pool_t g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
                        .done = PTHREAD_COND_INITIALIZER, .call_mu = PTHREAD_MUTEX_INITIALIZER};
static _Thread_local bool t_in_pool;

static void run_tasks(pool_t *p) {
    for (;;) {
        int i = atomic_fetch_add(&p->next_task, 1);
        if (i >= p->ntasks) break;
        int64_t b = p->total * i / p->ntasks, e = p->total * (i + 1) / p->ntasks;
        if (e > b) p->fn(p->ctx, b, e);
    }
}

static void *worker(void *arg) {
    pool_t *p = arg;
    t_in_pool = true;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p);
        pthread_mutex_lock(&p->mu);
        if (--p->active_workers == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int hb_threads_init(int n) {
    if (g_pool.n > 0) hb_threads_shutdown();
    if (n <= 0) {
        const char *e = getenv("HB_THREADS");
        n = e ? atoi(e) : 0;
        if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (n < 1) n = 1;
    if (n > HB_MAX_THREADS) n = HB_MAX_THREADS;
    g_pool.quit = false;
    g_pool.generation = 0;
    g_pool.n = 1;
    for (int i = 1; i < n; i++) {
        if (pthread_create(&g_pool.tid[i], NULL, worker, &g_pool) != 0) {
            hb_log(HB_LOG_WARN, "could only start %d threads", i);
            break;
        }
        g_pool.n = i + 1;
    }
    return 0;
}

int hb_threads_count(void) {
    if (g_pool.n == 0) hb_threads_init(0);
    return g_pool.n;
}

void hb_threads_shutdown(void) {
    if (g_pool.n <= 0) return;
    pthread_mutex_lock(&g_pool.mu);
    g_pool.quit = true;
    pthread_cond_broadcast(&g_pool.wake);
    pthread_mutex_unlock(&g_pool.mu);
    for (int i = 1; i < g_pool.n; i++) pthread_join(g_pool.tid[i], NULL);
    g_pool.n = 0;
}

void hb_parallel_for(int64_t n, int64_t grain, hb_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int nt = hb_threads_count();
    int64_t chunks = (n + grain - 1) / grain;
    if (t_in_pool || nt == 1 || chunks == 1) { fn(ctx, 0, n); return; }
    pool_t *p = &g_pool;
    pthread_mutex_lock(&p->call_mu);
    /* A few tasks per thread balance uneven work; the split never changes any element's arithmetic. */
    int ntasks = (int)(chunks < (int64_t)nt * 4 ? chunks : (int64_t)nt * 4);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->total = n;
    p->ntasks = ntasks;
    atomic_store(&p->next_task, 0);
    p->active_workers = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    t_in_pool = true;
    run_tasks(p);
    t_in_pool = false;
    pthread_mutex_lock(&p->mu);
    while (p->active_workers > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->call_mu);
}
