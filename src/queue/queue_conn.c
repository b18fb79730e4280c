/*
 * queue_conn.c: the outbound connection cache and its limits. A slot is one
 * SMTP connection (connecting, carrying a transaction, or idle); at most
 * outbound.max_connections in total and outbound.max_per_destination to one
 * destination (a recipient domain, or the smarthost). After a transaction a
 * connection waits outbound.connection_idle_seconds for the next message to
 * the same destination (RFC 5321 3.3 allows many transactions on one
 * connection; the next one starts with RSET), at most
 * outbound.max_messages_per_connection times. Attempts that find no slot wait
 * in FIFO order and are called back, on their own loop turn, when one frees.
 * Loop thread only.
 */
#include <ctype.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/log.h"
#include "queue/queue_private.h"
#include "smtp/smtp_client.h"

static void queue_conn_wake(struct queue *q);

static void
queue_conn_dest(char *buf, size_t size, const char *dest)
{
	size_t i;

	for (i = 0; i + 1 < size && dest[i] != '\0'; i++)
		buf[i] = (char)tolower((unsigned char)dest[i]);
	buf[i] = '\0';
}

static size_t
queue_conn_count_dest(const struct queue *q, const char *dest)
{
	size_t n = 0;

	for (const struct queue_conn *c = q->conns; c != NULL; c = c->next)
		if (strcmp(c->dest, dest) == 0)
			n++;
	return n;
}

/* An idle connection to dest (NULL: any destination), the oldest first. */
static struct queue_conn *
queue_conn_find_idle(const struct queue *q, const char *dest)
{
	struct queue_conn *found = NULL;

	for (struct queue_conn *c = q->conns; c != NULL; c = c->next)
		if (!c->busy && (dest == NULL || strcmp(c->dest, dest) == 0) &&
		    (found == NULL || c->idle_since <= found->idle_since))
			found = c;
	return found;
}

static bool
queue_conn_waiting_for(const struct queue *q, const char *dest)
{
	for (const struct queue_conn_waiter *w = q->conn_waiters; w != NULL; w = w->next)
		if (strcmp(w->dest, dest) == 0)
			return true;
	return false;
}

/* Unlink and free a slot; the client says QUIT (quit) or is closed now. */
static void
queue_conn_destroy(struct queue_conn *c, bool quit)
{
	struct queue *q = c->q;
	struct queue_conn **pp = &q->conns;

	while (*pp != NULL && *pp != c)
		pp = &(*pp)->next;
	if (*pp == c)
		*pp = c->next;
	q->nconns--;
	if (c->idle_ev != NULL)
		event_free(c->idle_ev);
	if (quit)
		smtp_client_quit(&c->client);
	else
		smtp_client_free(&c->client);
	free(c);
	queue_conn_wake(q);
}

static void
queue_conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue_conn *c = arg;

	(void)fd;
	(void)what;
	log_debug("event=delivery.conn_closed dest=%s peer=%s messages=%d reason=idle", c->dest,
	    c->peer, c->messages);
	queue_conn_destroy(c, true);
}

/* Can an attempt for dest get a slot now (without waiting)? */
static bool
queue_conn_available(const struct queue *q, const char *dest)
{
	const struct config_outbound *o = &q->cfg->outbound;

	if (queue_conn_find_idle(q, dest) != NULL)
		return true;
	if (queue_conn_count_dest(q, dest) >= (size_t)o->max_per_destination)
		return false;
	return q->nconns < (size_t)o->max_connections || queue_conn_find_idle(q, NULL) != NULL;
}

enum queue_conn_got
queue_conn_get(struct queue *q, const char *dest_in, struct queue_conn_waiter *w,
    struct queue_conn **conn_r)
{
	char dest[sizeof(w->dest)];
	struct queue_conn *c;

	queue_conn_dest(dest, sizeof(dest), dest_in);
	*conn_r = NULL;
	if ((c = queue_conn_find_idle(q, dest)) != NULL) {
		w->woken = false;
		c->busy = true;
		if (c->idle_ev != NULL)
			event_del(c->idle_ev);
		*conn_r = c;
		return QUEUE_CONN_REUSE;
	}
	/* First come, first served: a newcomer does not pass those waiting. */
	if ((w->woken || !queue_conn_waiting_for(q, dest)) && queue_conn_available(q, dest)) {
		w->woken = false;
		if (q->nconns >= (size_t)q->cfg->outbound.max_connections) {
			/* Full, with an idle connection elsewhere: it makes room. */
			struct queue_conn *idle = queue_conn_find_idle(q, NULL);

			log_debug("event=delivery.conn_closed dest=%s peer=%s messages=%d reason=room",
			    idle->dest, idle->peer, idle->messages);
			queue_conn_destroy(idle, true);
		}
		if ((c = calloc(1, sizeof(*c))) == NULL)
			goto wait;
		c->q = q;
		memcpy(c->dest, dest, sizeof(c->dest));
		c->busy = true;
		c->next = q->conns;
		q->conns = c;
		q->nconns++;
		*conn_r = c;
		return QUEUE_CONN_SLOT;
	}
wait:
	w->woken = false;
	memcpy(w->dest, dest, sizeof(w->dest));
	w->next = NULL;
	{
		struct queue_conn_waiter **pp = &q->conn_waiters;

		while (*pp != NULL)
			pp = &(*pp)->next;
		*pp = w;
	}
	if (c == NULL && q->nconns == 0)
		queue_conn_wake(q);   /* no memory, nothing open: try again on the next turn */
	return QUEUE_CONN_WAIT;
}

void
queue_conn_cancel(struct queue *q, struct queue_conn_waiter *w)
{
	for (struct queue_conn_waiter **pp = &q->conn_waiters; *pp != NULL; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			w->next = NULL;
			return;
		}
}

void
queue_conn_put(struct queue_conn **connp)
{
	struct queue_conn *c = *connp;
	struct queue *q;
	const struct config_outbound *o;
	struct timeval tv;

	if (c == NULL)
		return;
	*connp = NULL;
	q = c->q;
	o = &q->cfg->outbound;
	c->messages++;
	if (c->client == NULL || !smtp_client_usable(c->client) ||
	    c->messages >= o->max_messages_per_connection || o->connection_idle_seconds == 0 ||
	    q->lockdown) {
		log_debug("event=delivery.conn_closed dest=%s peer=%s messages=%d reason=%s", c->dest,
		    c->peer, c->messages, c->client == NULL || !smtp_client_usable(c->client) ?
		    "unusable" : "done");
		queue_conn_destroy(c, true);
		return;
	}
	if (c->idle_ev == NULL)
		c->idle_ev = event_new(q->base, -1, 0, queue_conn_idle_cb, c);
	tv.tv_sec = o->connection_idle_seconds;
	tv.tv_usec = 0;
	if (c->idle_ev == NULL || event_add(c->idle_ev, &tv) == -1) {
		queue_conn_destroy(c, true);
		return;
	}
	c->busy = false;
	c->idle_since = ++q->conn_clock;
	queue_conn_wake(q);
}

void
queue_conn_drop(struct queue_conn **connp)
{
	if (*connp == NULL)
		return;
	queue_conn_destroy(*connp, false);
	*connp = NULL;
}

/* Wake event: every waiter that can go now, in order, is called back. */
static void
queue_conn_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	size_t n = 0;

	(void)fd;
	(void)what;
	for (struct queue_conn_waiter *w = q->conn_waiters; w != NULL; w = w->next)
		n++;
	/* At most the waiters there were: one that has to wait again goes last. */
	for (struct queue_conn_waiter **pp = &q->conn_waiters; *pp != NULL && n > 0; n--) {
		struct queue_conn_waiter *w = *pp;

		if (!queue_conn_available(q, w->dest)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->next = NULL;
		w->woken = true;
		w->cb(w->arg);   /* may queue itself again, at the end */
	}
}

static void
queue_conn_wake(struct queue *q)
{
	if (q->conn_waiters == NULL || q->conn_closing)
		return;
	if (q->conn_wake_ev == NULL &&
	    (q->conn_wake_ev = event_new(q->base, -1, 0, queue_conn_wake_cb, q)) == NULL)
		return;   /* the next release tries again */
	event_active(q->conn_wake_ev, 0, 0);
}

void
queue_conn_close_all(struct queue *q)
{
	q->conn_closing = true;
	q->conn_waiters = NULL;
	while (q->conns != NULL)
		queue_conn_destroy(q->conns, true);
	if (q->conn_wake_ev != NULL)
		event_free(q->conn_wake_ev);
	q->conn_wake_ev = NULL;
}
