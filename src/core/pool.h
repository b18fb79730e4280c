/*
 * pool.h: a small pool of worker threads for blocking work (fsync, password
 * hashing) so the event loop never waits on it. Each job runs work(arg) on a
 * worker, then done(arg) on the loop thread. Trusts its callers.
 */
#ifndef BULWARK_POOL_H
#define BULWARK_POOL_H

#include <stddef.h>

struct event_base;
struct pool;

typedef void pool_fn(void *arg);

/*
 * nice for pool_new(): SCHED_IDLE (Linux), the workers run only when no
 * normal thread on their CPU wants it, and are preempted at once when one
 * wakes up: for CPU-bound work an attacker can ask for (password hashing).
 */
#define POOL_IDLE 20

/*
 * Start nthreads workers whose completions are run on base, at the given
 * niceness (0 normal; CPU-heavy pools use a positive value, or POOL_IDLE,
 * so the event loop keeps its CPU). NULL on failure.
 */
struct pool *pool_new(struct event_base *base, int nthreads, int nice);
/*
 * Queue a job. work runs on a worker thread (must not touch loop state);
 * done (may be NULL) runs on the loop thread afterwards. 0 ok, -1 out of memory.
 */
int pool_submit(struct pool *pool, pool_fn *work, pool_fn *done, void *arg);
/*
 * Queue a job on behalf of key (a client's address or network, at most
 * POOL_KEY_MAX bytes): while another job of the same key is queued or
 * running, this one waits behind every job queued without that condition,
 * so one client's flood of requests cannot delay the others' first ones.
 * 0 ok, -1 out of memory. Loop thread only, like pool_submit.
 */
#define POOL_KEY_MAX 16
int pool_submit_fair(struct pool *pool, const void *key, size_t keylen, pool_fn *work,
    pool_fn *done, void *arg);
/* Fair jobs of key queued or running (their done() not run yet). */
size_t pool_inflight_key(const struct pool *pool, const void *key, size_t keylen);
/* Jobs submitted whose done() has not run yet. */
size_t pool_pending(const struct pool *pool);
/* ... of which queued behind (pool_submit_fair with their key already in flight). */
size_t pool_pending_behind(const struct pool *pool);
/* Stop the workers after the queued jobs ran, run the pending done()s, free. */
void pool_free(struct pool **pool);

#endif
