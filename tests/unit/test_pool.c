/*
 * test_pool.c: tests for src/core/pool.c: jobs run on the workers and their
 * done() on the loop, in order; pool_submit_fair puts a key's second and
 * later jobs behind everybody's first (a flood of password checks from one
 * client does not delay another client's), with the counts asserted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/pool.h"

#define MAX_JOBS 16

struct run {
	sem_t gate;             /* the first job waits on it: the worker is busy */
	char order[MAX_JOBS + 1];
	int ndone;
};

struct job {
	struct run *run;
	char name;
	bool gate;
};

static void
job_work(void *arg)
{
	struct job *j = arg;

	if (j->gate)
		sem_wait(&j->run->gate);
}

static void
job_done(void *arg)
{
	struct job *j = arg;

	j->run->order[j->run->ndone++] = j->name;
}

static void
run_until(struct event_base *base, struct run *r, int n)
{
	time_t until = time(NULL) + 10;

	while (r->ndone < n && time(NULL) < until)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(r->ndone, n);
}

/* Fair jobs: a key's first job in the normal queue, the others behind. */
static void
test_fair_order(void **state)
{
	static const struct {
		char name;
		const char *key;    /* NULL: pool_submit */
	} jobs[] = {
		{ 'a', "attacker" }, { 'b', "attacker" }, { 'c', "attacker" },
		{ 'X', "user" }, { 'd', "attacker" }, { 'S', NULL }, { 'Y', "other" },
	};
	struct event_base *base = event_base_new();
	struct pool *pool = pool_new(base, 1, 0);
	struct job gate, js[sizeof(jobs) / sizeof(jobs[0])];
	struct run r = { .ndone = 0 };
	size_t n = sizeof(jobs) / sizeof(jobs[0]);

	(void)state;
	assert_non_null(pool);
	sem_init(&r.gate, 0, 0);
	gate = (struct job){ .run = &r, .name = '0', .gate = true };
	assert_int_equal(pool_submit(pool, job_work, job_done, &gate), 0);
	for (size_t i = 0; i < n; i++) {
		js[i] = (struct job){ .run = &r, .name = jobs[i].name };
		if (jobs[i].key == NULL)
			assert_int_equal(pool_submit(pool, job_work, job_done, &js[i]), 0);
		else
			assert_int_equal(pool_submit_fair(pool, jobs[i].key, strlen(jobs[i].key),
			    job_work, job_done, &js[i]), 0);
	}
	assert_int_equal(pool_pending(pool), n + 1);
	assert_int_equal(pool_pending_behind(pool), 3);
	assert_int_equal(pool_inflight_key(pool, "attacker", 8), 4);
	assert_int_equal(pool_inflight_key(pool, "user", 4), 1);
	assert_int_equal(pool_inflight_key(pool, "nobody", 6), 0);
	/* a prefix of a key is another key */
	assert_int_equal(pool_inflight_key(pool, "attack", 6), 0);
	sem_post(&r.gate);
	run_until(base, &r, (int)n + 1);
	/* the gate, then every first job in submission order, then the rest */
	assert_string_equal(r.order, "0aXSYbcd");
	assert_int_equal(pool_pending(pool), 0);
	assert_int_equal(pool_pending_behind(pool), 0);
	assert_int_equal(pool_inflight_key(pool, "attacker", 8), 0);

	/* done: a key's next job is a first job again */
	r.ndone = 0;
	memset(r.order, 0, sizeof(r.order));
	js[0] = (struct job){ .run = &r, .name = 'e' };
	assert_int_equal(pool_submit_fair(pool, "attacker", 8, job_work, job_done, &js[0]), 0);
	assert_int_equal(pool_pending_behind(pool), 0);
	run_until(base, &r, 1);
	assert_string_equal(r.order, "e");

	pool_free(&pool);
	sem_destroy(&r.gate);
	event_base_free(base);
}

/* pool_free runs what is still queued, behind or not, and their done(). */
static void
test_free_drains(void **state)
{
	struct event_base *base = event_base_new();
	struct pool *pool = pool_new(base, 2, POOL_IDLE);
	struct job js[6];
	struct run r = { .ndone = 0 };

	(void)state;
	assert_non_null(pool);
	sem_init(&r.gate, 0, 0);
	for (int i = 0; i < 6; i++) {
		js[i] = (struct job){ .run = &r, .name = (char)('a' + i) };
		assert_int_equal(pool_submit_fair(pool, "k", 1, job_work, job_done, &js[i]), 0);
	}
	assert_int_equal(pool_pending_behind(pool), 5);
	pool_free(&pool);
	assert_int_equal(r.ndone, 6);
	sem_destroy(&r.gate);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fair_order),
		cmocka_unit_test(test_free_drains),
	};

	log_init("test_pool", LOG_LEVEL_WARNING);
	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
