/*
 * test_queue_conn.c: the outbound connection slots (src/queue/queue_conn.c)
 * without a network: slots without clients, a real event loop for the
 * wake-ups. The limit per destination and in total, first come first
 * served (a newcomer does not pass those waiting), a cancelled waiter is
 * never called, a slot without a usable connection is not kept for reuse,
 * destinations compare without case, and shutdown frees everything (ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <stdbool.h>
#include <string.h>

#include "core/config.h"
#include "queue/queue_private.h"

struct waiter {
	struct queue_conn_waiter w;
	struct queue *q;
	const char *dest;
	struct queue_conn *conn;
	int woken;
	int *order;      /* where to write our number when we get a slot */
	int *norder;
	int number;
};

static void
waiter_cb(void *arg)
{
	struct waiter *t = arg;

	t->woken++;
	/* As queue_remote.c does: ask again; it is our turn now. */
	if (queue_conn_get(t->q, t->dest, &t->w, &t->conn) != QUEUE_CONN_WAIT && t->order != NULL)
		t->order[(*t->norder)++] = t->number;
}

static void
waiter_init(struct waiter *t, struct queue *q, const char *dest, int number)
{
	memset(t, 0, sizeof(*t));
	t->w.cb = waiter_cb;
	t->w.arg = t;
	t->q = q;
	t->dest = dest;
	t->number = number;
}

struct fixture {
	struct config cfg;
	struct queue q;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->cfg.outbound.max_connections = 3;
	f->cfg.outbound.max_per_destination = 2;
	f->cfg.outbound.max_messages_per_connection = 100;
	f->cfg.outbound.connection_idle_seconds = 5;
	f->q.cfg = &f->cfg;
	f->q.base = event_base_new();
	assert_non_null(f->q.base);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	queue_conn_close_all(&f->q);
	assert_null(f->q.conns);
	assert_int_equal(f->q.nconns, 0);
	event_base_free(f->q.base);
	free(f);
	return 0;
}

static void
run_loop(struct fixture *f)
{
	event_base_loop(f->q.base, EVLOOP_NONBLOCK);
}

static void
test_per_destination_and_total(void **state)
{
	struct fixture *f = *state;
	struct waiter a1, a2, a3, b1, c1;

	waiter_init(&a1, &f->q, "a.test", 1);
	waiter_init(&a2, &f->q, "A.TEST", 2);
	waiter_init(&a3, &f->q, "a.test", 3);
	waiter_init(&b1, &f->q, "b.test", 4);
	waiter_init(&c1, &f->q, "c.test", 5);
	assert_int_equal(queue_conn_get(&f->q, a1.dest, &a1.w, &a1.conn), QUEUE_CONN_SLOT);
	assert_int_equal(queue_conn_get(&f->q, a2.dest, &a2.w, &a2.conn), QUEUE_CONN_SLOT);
	assert_string_equal(a2.conn->dest, "a.test");   /* lower case */
	/* a.test has its 2; the third waits, though the total has room */
	assert_int_equal(queue_conn_get(&f->q, a3.dest, &a3.w, &a3.conn), QUEUE_CONN_WAIT);
	assert_null(a3.conn);
	assert_int_equal(queue_conn_get(&f->q, b1.dest, &b1.w, &b1.conn), QUEUE_CONN_SLOT);
	/* the total (3) is full: c.test waits too */
	assert_int_equal(queue_conn_get(&f->q, c1.dest, &c1.w, &c1.conn), QUEUE_CONN_WAIT);
	assert_int_equal(f->q.nconns, 3);
	run_loop(f);
	assert_int_equal(a3.woken + c1.woken, 0);

	/* b.test's slot goes: c.test may go (a.test is still at its limit) */
	queue_conn_drop(&b1.conn);
	assert_null(b1.conn);
	assert_int_equal(a3.woken, 0);   /* never from inside the call */
	run_loop(f);
	assert_int_equal(a3.woken, 0);
	assert_int_equal(c1.woken, 1);
	assert_non_null(c1.conn);
	/* an a.test slot without a usable connection is not kept: a3 gets a slot */
	queue_conn_put(&a1.conn);
	assert_null(a1.conn);
	run_loop(f);
	assert_int_equal(a3.woken, 1);
	assert_non_null(a3.conn);
	assert_int_equal(f->q.nconns, 3);
	queue_conn_drop(&a2.conn);
	queue_conn_drop(&a3.conn);
	queue_conn_drop(&c1.conn);
	assert_int_equal(f->q.nconns, 0);
}

static void
test_first_come_first_served(void **state)
{
	struct fixture *f = *state;
	struct waiter s1, s2, w[3], late;
	int order[8], norder = 0;

	waiter_init(&s1, &f->q, "a.test", 0);
	waiter_init(&s2, &f->q, "a.test", 0);
	assert_int_equal(queue_conn_get(&f->q, "a.test", &s1.w, &s1.conn), QUEUE_CONN_SLOT);
	assert_int_equal(queue_conn_get(&f->q, "a.test", &s2.w, &s2.conn), QUEUE_CONN_SLOT);
	for (int i = 0; i < 3; i++) {
		waiter_init(&w[i], &f->q, "a.test", i + 1);
		w[i].order = order;
		w[i].norder = &norder;
		assert_int_equal(queue_conn_get(&f->q, "a.test", &w[i].w, &w[i].conn),
		    QUEUE_CONN_WAIT);
	}
	/* one slot frees; a newcomer before the wake-up does not pass the queue */
	queue_conn_drop(&s1.conn);
	waiter_init(&late, &f->q, "a.test", 9);
	late.order = order;
	late.norder = &norder;
	assert_int_equal(queue_conn_get(&f->q, "a.test", &late.w, &late.conn), QUEUE_CONN_WAIT);
	run_loop(f);
	assert_int_equal(norder, 1);
	assert_int_equal(order[0], 1);
	queue_conn_drop(&s2.conn);
	run_loop(f);
	queue_conn_drop(&w[0].conn);
	run_loop(f);
	queue_conn_drop(&w[1].conn);
	run_loop(f);
	assert_int_equal(norder, 4);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 3);
	assert_int_equal(order[3], 9);
	queue_conn_drop(&w[2].conn);
	queue_conn_drop(&late.conn);
}

static void
test_cancelled_waiter_is_not_called(void **state)
{
	struct fixture *f = *state;
	struct waiter s1, s2, gone, next;

	waiter_init(&s1, &f->q, "a.test", 0);
	waiter_init(&s2, &f->q, "a.test", 0);
	waiter_init(&gone, &f->q, "a.test", 1);
	waiter_init(&next, &f->q, "a.test", 2);
	assert_int_equal(queue_conn_get(&f->q, "a.test", &s1.w, &s1.conn), QUEUE_CONN_SLOT);
	assert_int_equal(queue_conn_get(&f->q, "a.test", &s2.w, &s2.conn), QUEUE_CONN_SLOT);
	assert_int_equal(queue_conn_get(&f->q, "a.test", &gone.w, &gone.conn), QUEUE_CONN_WAIT);
	assert_int_equal(queue_conn_get(&f->q, "a.test", &next.w, &next.conn), QUEUE_CONN_WAIT);
	queue_conn_cancel(&f->q, &gone.w);
	queue_conn_drop(&s1.conn);
	run_loop(f);
	assert_int_equal(gone.woken, 0);
	assert_int_equal(next.woken, 1);
	assert_non_null(next.conn);
	queue_conn_drop(&s2.conn);
	queue_conn_drop(&next.conn);
}

static void
test_close_all_with_waiters(void **state)
{
	struct fixture *f = *state;
	struct waiter s1, s2, w1;

	waiter_init(&s1, &f->q, "a.test", 0);
	waiter_init(&s2, &f->q, "a.test", 0);
	waiter_init(&w1, &f->q, "a.test", 1);
	assert_int_equal(queue_conn_get(&f->q, "a.test", &s1.w, &s1.conn), QUEUE_CONN_SLOT);
	assert_int_equal(queue_conn_get(&f->q, "a.test", &s2.w, &s2.conn), QUEUE_CONN_SLOT);
	assert_int_equal(queue_conn_get(&f->q, "a.test", &w1.w, &w1.conn), QUEUE_CONN_WAIT);
	queue_conn_close_all(&f->q);   /* shutdown: slots freed, waiters forgotten */
	run_loop(f);
	assert_int_equal(w1.woken, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_per_destination_and_total, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_come_first_served, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancelled_waiter_is_not_called, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_all_with_waiters, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
