/* queue_private.h: the queue's insides, shared by queue_spool.c and queue_scheduler.c only. */
#ifndef BULWARK_QUEUE_PRIVATE_H
#define BULWARK_QUEUE_PRIVATE_H

#include <limits.h>
#include <time.h>

#include "queue/queue.h"

struct event;

struct queue_entry {
	struct queue_entry *prev, *next;
	char id[QUEUE_ID_LEN + 1];
	bool busy;            /* a delivery job runs */
	bool remote_waiting;  /* only remote recipients are left */
	time_t retry_at;      /* 0: not waiting for a retry */
};

struct queue {
	struct event_base *base;
	struct pool *pool;
	const struct config *cfg;
	char dir[PATH_MAX];       /* data_dir/queue */
	char tmpdir[PATH_MAX];    /* data_dir/queue/tmp */
	char incomingdir[PATH_MAX]; /* data_dir/queue/incoming: notices to pick up */
	char holddir[PATH_MAX];     /* data_dir/queue/hold: held by the admin or lockdown */
	bool lockdown;              /* queue/LOCKDOWN exists */
	struct queue_entry *head;
	size_t count, busy;
	struct event *retry_ev;
	struct event *pickup_ev;
	/* Group commit for the spool and the Maildirs (one if same filesystem). */
	struct fs_barrier *spool_barrier, *mail_barrier;
};

/* queue_scheduler.c: a committed message enters the schedule. */
void queue_schedule_new(struct queue *q, const char *id);

#endif
