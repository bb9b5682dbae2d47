/* The process-wide thread pool. Workers spin for a while after each job before they sleep (HB_SPIN_US
 * microseconds, default 2000; 0 sleeps at once), like OpenMP's block time: a DiT forward issues thousands of
 * parallel loops back to back, and a worker that sleeps between them must be woken by the kernel each time and,
 * on a machine with other jobs, often loses its core to them while it waits to be scheduled. */
#include "core/core.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define HB_MAX_THREADS 256
#define HB_SPIN_US_DEFAULT 2000

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    pthread_mutex_t call_mu; /* one parallel_for at a time from outside the pool */
    pthread_t tid[HB_MAX_THREADS];
    int n;                   /* threads including the caller */
    double spin_s;           /* how long a waiting thread spins before it sleeps */
    atomic_uint_fast64_t generation;
    atomic_bool quit;
    /* the current job (written before generation is bumped, read after it is seen) */
    hb_range_fn fn;
    void *ctx;
    int64_t total;
    int ntasks;
    atomic_int next_task;
    atomic_int active_workers;
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

/* Spin until *gen differs from seen (or quit), for at most spin_s; true if it did. */
static bool spin_for_generation(pool_t *p, uint64_t seen) {
    if (p->spin_s <= 0) return false;
    double t0 = hb_time_now();
    for (int i = 1;; i++) {
        if (atomic_load_explicit(&p->generation, memory_order_acquire) != seen || atomic_load(&p->quit)) return true;
        cpu_relax();
        if ((i & 255) == 0 && hb_time_now() - t0 > p->spin_s) return false;
    }
}

static void *worker(void *arg) {
    pool_t *p = arg;
    t_in_pool = true;
    uint64_t seen = 0;
    for (;;) {
        if (!spin_for_generation(p, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen) pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        run_tasks(p);
        if (atomic_fetch_sub(&p->active_workers, 1) == 1) {
            /* under mu: the caller checks active_workers under mu before it waits */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static double spin_seconds(void) {
    const char *e = getenv("HB_SPIN_US");
    long us = e && *e ? atol(e) : HB_SPIN_US_DEFAULT;
    return us > 0 ? (double)us * 1e-6 : 0.0;
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
    atomic_store(&g_pool.quit, false);
    atomic_store(&g_pool.generation, 0);
    g_pool.spin_s = spin_seconds();
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
    atomic_store(&g_pool.quit, true);
    pthread_cond_broadcast(&g_pool.wake);
    pthread_mutex_unlock(&g_pool.mu);
    for (int i = 1; i < g_pool.n; i++) pthread_join(g_pool.tid[i], NULL);
    g_pool.n = 0;
}

/* The caller waits for the workers: spins first (they usually finish within microseconds of it), then sleeps. */
static void wait_workers(pool_t *p) {
    double t0 = hb_time_now();
    for (int i = 1; atomic_load_explicit(&p->active_workers, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 255) == 0 && hb_time_now() - t0 > p->spin_s) break;
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->active_workers) > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void hb_parallel_for(int64_t n, int64_t grain, hb_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int nt = hb_threads_count();
    int64_t chunks = (n + grain - 1) / grain;
    if (t_in_pool || nt == 1 || chunks == 1) { fn(ctx, 0, n); return; }
    pool_t *p = &g_pool;
    pthread_mutex_lock(&p->call_mu);
    /* Several tasks per thread, taken in turn: a thread that loses its core for a while (other jobs on the
     * machine) leaves only a small last piece to the others. The split never changes any element's arithmetic. */
    int ntasks = (int)(chunks < (int64_t)nt * 8 ? chunks : (int64_t)nt * 8);
    p->fn = fn;
    p->ctx = ctx;
    p->total = n;
    p->ntasks = ntasks;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->active_workers, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    t_in_pool = true;
    run_tasks(p);
    t_in_pool = false;
    wait_workers(p);
    pthread_mutex_unlock(&p->call_mu);
}
