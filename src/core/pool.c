/*
 * pool.c: worker threads fed from one job list; finished jobs go to a done
 * list, and a pipe wakes the event loop to run their done() callbacks.
 */
#include "core/pool.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/log.h"

struct pool_job {
	struct pool_job *next;
	pool_fn *work, *done;
	void *arg;
	/* pool_submit_fair: the key, and the loop thread's list of such jobs in flight */
	uint8_t key[POOL_KEY_MAX];
	size_t keylen;            /* 0: not a fair job */
	bool behind;              /* queued behind the other keys' jobs */
	struct pool_job *fair_prev, *fair_next;
};

struct pool_list {
	struct pool_job *head, *tail;
};

struct pool {
	pthread_mutex_t lock;        /* todo lists and stopping */
	pthread_mutex_t done_lock;   /* finished list: the loop takes only this one */
	pthread_cond_t cond;
	int nice;                    /* workers' scheduling niceness */
	struct pool_list todo, finished;
	struct pool_list behind;     /* taken only when todo is empty */
	bool stopping;
	size_t pending;          /* loop thread only */
	size_t pending_behind;   /* loop thread only */
	struct pool_job *fair;   /* loop thread only: fair jobs in flight */
	int nthreads;
	pthread_t *threads;
	int wake[2];             /* workers write a byte; the loop reads */
	struct event *wake_ev;
};

static void
pool_list_push(struct pool_list *l, struct pool_job *job)
{
	job->next = NULL;
	if (l->tail != NULL)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
}

static struct pool_job *
pool_list_take_all(struct pool_list *l)
{
	struct pool_job *all = l->head;

	l->head = l->tail = NULL;
	return all;
}

static void *
pool_worker(void *arg)
{
	struct pool *pool = arg;

	/* Linux: niceness and policy are per thread; CPU-heavy pools yield to the loop. */
	if (pool->nice == POOL_IDLE) {
		struct sched_param sp = { .sched_priority = 0 };

		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
		if (sched_setscheduler(0, SCHED_IDLE, &sp) == -1)
			log_warn("event=pool.sched_idle_failed (the workers run at nice 19)");
	} else if (pool->nice != 0) {
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), pool->nice);
	}

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		struct pool_list *from = pool->todo.head != NULL ? &pool->todo : &pool->behind;
		struct pool_job *job = from->head;
		bool was_empty;

		if (job == NULL) {
			if (pool->stopping)
				break;
			pthread_cond_wait(&pool->cond, &pool->lock);
			continue;
		}
		from->head = job->next;
		if (from->head == NULL)
			from->tail = NULL;
		pthread_mutex_unlock(&pool->lock);

		job->work(job->arg);

		pthread_mutex_lock(&pool->done_lock);
		was_empty = pool->finished.head == NULL;
		pool_list_push(&pool->finished, job);
		pthread_mutex_unlock(&pool->done_lock);
		/* Never a system call under a lock the loop takes. */
		if (was_empty)
			(void)!write(pool->wake[1], "x", 1);
		pthread_mutex_lock(&pool->lock);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Run the done() of every finished job, on the loop thread. */
static void
pool_run_finished(struct pool *pool)
{
	struct pool_job *job, *next;
	char buf[64];

	while (read(pool->wake[0], buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&pool->done_lock);
	job = pool_list_take_all(&pool->finished);
	pthread_mutex_unlock(&pool->done_lock);
	for (; job != NULL; job = next) {
		next = job->next;
		pool->pending--;
		if (job->behind)
			pool->pending_behind--;
		if (job->keylen > 0) {
			if (job->fair_prev != NULL)
				job->fair_prev->fair_next = job->fair_next;
			else
				pool->fair = job->fair_next;
			if (job->fair_next != NULL)
				job->fair_next->fair_prev = job->fair_prev;
		}
		if (job->done != NULL)
			job->done(job->arg);
		free(job);
	}
}

static void
pool_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	pool_run_finished(arg);
}

struct pool *
pool_new(struct event_base *base, int nthreads, int nice)
{
	struct pool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL)
		return NULL;
	pool->wake[0] = pool->wake[1] = -1;
	pool->nice = nice;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_mutex_init(&pool->done_lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	if (pipe2(pool->wake, O_NONBLOCK | O_CLOEXEC) == -1)
		goto fail;
	pool->wake_ev = event_new(base, pool->wake[0], EV_READ | EV_PERSIST, pool_wake_cb, pool);
	if (pool->wake_ev == NULL || event_add(pool->wake_ev, NULL) == -1)
		goto fail;
	pool->threads = calloc((size_t)nthreads, sizeof(pthread_t));
	if (pool->threads == NULL)
		goto fail;
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&pool->threads[i], NULL, pool_worker, pool) != 0)
			goto fail;
		pool->nthreads++;
	}
	return pool;
fail:
	log_warn("event=pool.error reason=start");
	pool_free(&pool);
	return NULL;
}

static int
pool_enqueue(struct pool *pool, const void *key, size_t keylen, pool_fn *work, pool_fn *done,
    void *arg)
{
	struct pool_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return -1;
	job->work = work;
	job->done = done;
	job->arg = arg;
	if (keylen > 0) {
		memcpy(job->key, key, keylen);
		job->keylen = keylen;
		job->behind = pool_inflight_key(pool, key, keylen) > 0;
		job->fair_next = pool->fair;
		if (pool->fair != NULL)
			pool->fair->fair_prev = job;
		pool->fair = job;
	}
	pthread_mutex_lock(&pool->lock);
	pool_list_push(job->behind ? &pool->behind : &pool->todo, job);
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	pool->pending++;
	if (job->behind)
		pool->pending_behind++;
	return 0;
}

int
pool_submit(struct pool *pool, pool_fn *work, pool_fn *done, void *arg)
{
	return pool_enqueue(pool, NULL, 0, work, done, arg);
}

int
pool_submit_fair(struct pool *pool, const void *key, size_t keylen, pool_fn *work,
    pool_fn *done, void *arg)
{
	if (keylen == 0 || keylen > POOL_KEY_MAX)
		keylen = keylen == 0 ? 1 : POOL_KEY_MAX;   /* never unkeyed: still fair */
	return pool_enqueue(pool, key, keylen, work, done, arg);
}

size_t
pool_inflight_key(const struct pool *pool, const void *key, size_t keylen)
{
	size_t n = 0;

	if (keylen > POOL_KEY_MAX)
		keylen = POOL_KEY_MAX;
	/* bounded by the callers' backlog limits: a scan is cheaper than a table */
	for (const struct pool_job *j = pool->fair; j != NULL; j = j->fair_next)
		if (j->keylen == keylen && memcmp(j->key, key, keylen) == 0)
			n++;
	return n;
}

size_t
pool_pending(const struct pool *pool)
{
	return pool->pending;
}

size_t
pool_pending_behind(const struct pool *pool)
{
	return pool->pending_behind;
}

void
pool_free(struct pool **poolp)
{
	struct pool *pool = *poolp;

	if (pool == NULL)
		return;
	*poolp = NULL;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	if (pool->wake[0] != -1)
		pool_run_finished(pool);
	if (pool->wake_ev != NULL)
		event_free(pool->wake_ev);
	if (pool->wake[0] != -1)
		close(pool->wake[0]);
	if (pool->wake[1] != -1)
		close(pool->wake[1]);
	pthread_mutex_destroy(&pool->lock);
	pthread_mutex_destroy(&pool->done_lock);
	pthread_cond_destroy(&pool->cond);
	free(pool->threads);
	free(pool);
}
