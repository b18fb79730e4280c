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
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/log.h"

struct pool_job {
	struct pool_job *next;
	pool_fn *work, *done;
	void *arg;
};

struct pool_list {
	struct pool_job *head, *tail;
};

struct pool {
	pthread_mutex_t lock;        /* todo list and stopping */
	pthread_mutex_t done_lock;   /* finished list: the loop takes only this one */
	pthread_cond_t cond;
	int nice;                    /* workers' scheduling niceness */
	struct pool_list todo, finished;
	bool stopping;
	size_t pending;          /* loop thread only */
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
		struct pool_job *job = pool->todo.head;
		bool was_empty;

		if (job == NULL) {
			if (pool->stopping)
				break;
			pthread_cond_wait(&pool->cond, &pool->lock);
			continue;
		}
		pool->todo.head = job->next;
		if (pool->todo.head == NULL)
			pool->todo.tail = NULL;
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

int
pool_submit(struct pool *pool, pool_fn *work, pool_fn *done, void *arg)
{
	struct pool_job *job = malloc(sizeof(*job));

	if (job == NULL)
		return -1;
	job->work = work;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&pool->lock);
	pool_list_push(&pool->todo, job);
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	pool->pending++;
	return 0;
}

size_t
pool_pending(const struct pool *pool)
{
	return pool->pending;
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
