/* queue_private.h: the queue's insides, shared by queue_spool.c and queue_scheduler.c only. */
#ifndef BULWARK_QUEUE_PRIVATE_H
#define BULWARK_QUEUE_PRIVATE_H

#include <limits.h>
#include <stdio.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <time.h>

#include "queue/queue.h"

struct event;

struct queue_entry {
	struct queue_entry *prev, *next;
	char id[QUEUE_ID_LEN + 1];
	bool busy;            /* a delivery job runs */
	bool remote_waiting;  /* only remote recipients are left */
	time_t retry_at;      /* 0: not waiting for a retry */
	int attempts;         /* remote delivery attempts so far */
	char *sender;         /* envelope sender once a job has read it (containment), or NULL */
	bool slot_wait;       /* remote delivery had no room: run when an attempt ends */
	bool forced;          /* queue flush: ignore the retry time kept in ID.state */
};

struct dns;
struct queue_remote;
struct queue_key_lookup;
struct smtp_client;

/* queue_conn.c: one outbound connection slot (see the file's header). */
struct queue_conn {
	struct queue_conn *next;
	struct queue *q;
	char dest[256];               /* the destination: a domain or the smarthost, lower case */
	char peer[256];               /* the host it is connected to (for logs and DSNs) */
	struct smtp_client *client;   /* NULL while the slot has no connection yet */
	bool busy;                    /* an attempt has it; false: idle, waiting for reuse */
	int messages;                 /* transactions it carried */
	unsigned long idle_since;     /* order of going idle (the oldest idle makes room) */
	struct event *idle_ev;
};

/* An attempt waiting for a slot: cb(arg) runs when one may be free. */
struct queue_conn_waiter {
	struct queue_conn_waiter *next;
	char dest[256];
	bool woken;
	void (*cb)(void *arg);
	void *arg;
};

enum queue_conn_got {
	QUEUE_CONN_REUSE,   /* an idle connection: RSET it, then send */
	QUEUE_CONN_SLOT,    /* a new slot, no client yet: look up and connect */
	QUEUE_CONN_WAIT,    /* w is queued: w->cb is called later (then ask again) */
};

enum queue_conn_got queue_conn_get(struct queue *q, const char *dest, struct queue_conn_waiter *w,
    struct queue_conn **conn_r);
/* Leave the wait list (an attempt that goes away). */
void queue_conn_cancel(struct queue *q, struct queue_conn_waiter *w);
/* A transaction ended: keep the connection for reuse, or QUIT it. */
void queue_conn_put(struct queue_conn **conn);
/* Close now and free the slot (a failed connection, an abort). */
void queue_conn_drop(struct queue_conn **conn);
/* Shutdown: QUIT every connection, forget every waiter. */
void queue_conn_close_all(struct queue *q);

struct queue {
	struct event_base *base;
	struct pool *pool;
	const struct config *cfg;
	char dir[PATH_MAX];       /* data_dir/queue */
	char tmpdir[PATH_MAX];    /* data_dir/queue/tmp */
	char incomingdir[PATH_MAX]; /* data_dir/queue/incoming: notices to pick up */
	char holddir[PATH_MAX];     /* data_dir/queue/hold: held by the admin or lockdown */
	bool lockdown;              /* queue/LOCKDOWN exists */
	/* remote delivery (queue_remote.c); dns NULL: remote mail waits */
	struct dns *dns;
	SSL_CTX *client_tls;
	struct queue_remote *remote;  /* attempts on the network now */
	size_t remote_active;
	size_t remote_max;            /* attempts at once: 2 x outbound.max_connections, >= 20 */
	struct queue_conn *conns;     /* outbound connections (queue_conn.c) */
	size_t nconns;
	struct queue_conn_waiter *conn_waiters;
	struct event *conn_wake_ev;
	unsigned long conn_clock;
	bool conn_closing;
	char smarthost_host[256];     /* outbound.smarthost split, or "" */
	int smarthost_port;
	struct sockaddr_storage smarthost_ss;  /* when the smarthost is an address */
	struct dkim_key ***dkim_keys;  /* by cfg->domains index (queue_set_dkim) */
	struct queue_key_lookup *lookups;   /* DKIM key lookups in flight */
	const size_t *dkim_nkeys;
	struct queue_observer observer;   /* the monitor (queue_set_observer), or zeroes */
	struct queue_entry *head;
	size_t count, busy;
	struct event *retry_ev;
	struct event *pickup_ev;
	/* Group commit for the spool and the Maildirs (one if same filesystem). */
	struct fs_barrier *spool_barrier, *mail_barrier;
};

struct queue_bounce_rcpt {
	const char *address;
	char status[16];          /* enhanced status, "5.1.1" */
	char remote_mta[256];     /* "" when the failure was ours (DNS, refused here) */
	char diagnostic[512];     /* "550 5.1.1 <x>: user unknown" */
};

/* queue_bounce.c: a DSN for the failed recipients to env's sender. 0 ok. */
int queue_bounce(const struct config *cfg, const struct queue_envelope *env, const char *msg,
    size_t len, const struct queue_bounce_rcpt *failed, size_t n);

/*
 * The spool's value encoding (queue_spool.c): bytes <= 0x20, 0x7f and '%'
 * as %XX, so a value is always one field of one line. Decoding refuses a
 * NUL (format never writes one): NULL then, as for no memory.
 */
void queue_value_encode(FILE *f, const char *s);
char *queue_value_decode(const char *s, size_t n);

/*
 * queue_scheduler.c: a remote attempt of e ended (loop thread): tell the
 * observer, and hold e if its sender is contained now. Before the entry is
 * dropped or rescheduled; true if e was held (and is gone).
 */
bool queue_attempt_done(struct queue *q, struct queue_entry *e, const struct queue_envelope *env,
    bool removed, size_t delivered, size_t deferred, size_t failed);

/* queue_scheduler.c: a committed message enters the schedule. */
void queue_schedule_new(struct queue *q, const char *id);
/* An attempt ended: run one entry that found no room for remote delivery. */
void queue_slot_freed(struct queue *q);
/* Forget an entry (its file is gone). */
void queue_entry_drop(struct queue *q, struct queue_entry *e);

/*
 * queue_remote.c: start delivering env's pending remote recipients (env and
 * buf become the attempt's on success; the entry is busy until it ends).
 * false: not now (no resolver, too many attempts running, no memory).
 */
bool queue_remote_start(struct queue *q, struct queue_entry *e, struct queue_envelope *env,
    char *buf, size_t len, size_t body, int attempts);
/* Shutdown: drop every attempt in flight (nothing acknowledged is lost). */
void queue_remote_abort_all(struct queue *q);

#endif
