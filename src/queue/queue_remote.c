/*
 * queue_remote.c: delivery to other domains. One attempt per message: its
 * pending remote recipients are grouped by domain; each group goes to the
 * domain's MX hosts in preference order (RFC 5321 5.1: implicit MX, RFC
 * 7505 null MX) or to outbound.smarthost, one address after the other
 * until one takes the transaction. Results are per recipient: delivered,
 * failed for good (bounced, RFC 3464) or deferred (retried with backoff).
 * All network work is asynchronous on the loop; the state file and the
 * bounces are written on the worker pool. Connections come from the cache
 * in queue_conn.c (limits in total and per destination, reuse with RSET).
 * Retries: outbound.retry_base doubling up to outbound.retry_max; past
 * outbound.max_queue_lifetime what is still deferred bounces (4.4.7).
 */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/pool.h"
#include "dns/dns.h"
#include "queue/queue_private.h"
#include "smtp/smtp_client.h"

#define REMOTE_MAX_HOSTS 16
#define REMOTE_MAX_ADDRS 16

enum rcpt_outcome { R_PENDING = 0, R_DELIVERED, R_FAILED, R_DEFERRED };

struct remote_rcpt {
	enum rcpt_outcome outcome;
	char status[16];
	char mta[256];
	char diag[512];
};

struct queue_remote {
	struct queue_remote *next;
	struct queue *q;
	struct queue_entry *e;
	struct queue_envelope env;
	char *buf;
	size_t len, body;
	int attempts;
	struct remote_rcpt *res;          /* by envelope recipient index */
	size_t *idx;                      /* pending remote recipients, grouped by domain */
	size_t nidx, gstart, gend;
	const char **grcpts;              /* the current group's addresses */
	struct dns_mx hosts[REMOTE_MAX_HOSTS];
	size_t nhosts, hosti;
	struct sockaddr_storage addrs[REMOTE_MAX_ADDRS];
	size_t naddrs, addri;
	char peer[256];
	struct dns_req *req;
	struct queue_conn *conn;          /* the slot of the current group, or NULL */
	struct queue_conn_waiter waiter;  /* waiting for a slot (in q->conn_waiters) */
	bool waiting;
	bool plain_retry;                 /* this address again without STARTTLS */
	bool lockdown;                    /* stopped by the lockdown: not an attempt */
	char dest[256];                   /* the current group's destination */
	char last_error[512];
	time_t next_retry;                /* pool result: when to try again */
	bool removed;                     /* pool result: the spool entry is gone */
};

static void remote_next_domain(struct queue_remote *r);
static void remote_group_start(void *arg);
static void remote_send(struct queue_remote *r);
static void remote_next_host(struct queue_remote *r);
static void remote_next_addr(struct queue_remote *r);

static const char *
domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

/* Mark the current group (those not settled yet) with one outcome. */
static void
group_settle(struct queue_remote *r, enum rcpt_outcome o, const char *status, const char *diag)
{
	for (size_t i = r->gstart; i < r->gend; i++) {
		struct remote_rcpt *res = &r->res[r->idx[i]];

		if (res->outcome != R_PENDING)
			continue;
		res->outcome = o;
		snprintf(res->status, sizeof(res->status), "%s", status);
		snprintf(res->diag, sizeof(res->diag), "%s", diag);
		res->mta[0] = '\0';
	}
}

/* The TLS version and cipher of a connection, or "none". */
static const char *
tls_of(const struct smtp_client *client)
{
	const char *d = smtp_client_tls_desc(client);

	return d[0] != '\0' ? d : "none";
}

static void
remote_free(struct queue_remote *r)
{
	dns_cancel(&r->req);
	if (r->waiting)
		queue_conn_cancel(r->q, &r->waiter);
	queue_conn_drop(&r->conn);
	queue_envelope_clear(&r->env);
	free(r->buf);
	free(r->res);
	free(r->idx);
	free(r->grcpts);
	free(r);
}

static void
remote_unlist(struct queue_remote *r)
{
	struct queue_remote **pp = &r->q->remote;

	while (*pp != NULL && *pp != r)
		pp = &(*pp)->next;
	if (*pp == r)
		*pp = r->next;
	r->q->remote_active--;
}

/* Pool thread: record the outcome, bounce what failed, drop what is done. */
static void
remote_commit_work(void *arg)
{
	struct queue_remote *r = arg;
	struct queue *q = r->q;
	struct queue_bounce_rcpt *failed = calloc(r->env.nrcpts, sizeof(*failed));
	char path[PATH_MAX + 32], state[PATH_MAX + 48], name[QUEUE_ID_LEN + 8];
	const struct config_outbound *o = &q->cfg->outbound;
	time_t now = time(NULL);
	bool expired = now - (time_t)r->env.ctime > o->max_queue_lifetime;
	int attempts = r->lockdown ? r->attempts : r->attempts + 1;
	time_t delay = o->retry_base;
	size_t nfailed = 0;
	bool all_done = true;
	char *sbuf = NULL;
	size_t slen = 0;
	FILE *f;

	if (failed == NULL)
		return;   /* retried later: nothing was marked done */
	for (size_t i = 0; i < r->env.nrcpts; i++) {
		struct remote_rcpt *res = &r->res[i];

		if (res->outcome == R_DEFERRED && expired) {
			res->outcome = R_FAILED;
			char was[sizeof(res->diag)];

			memcpy(was, res->diag, sizeof(was));
			snprintf(res->status, sizeof(res->status), "4.4.7");
			snprintf(res->diag, sizeof(res->diag), "delivery time expired: %.400s", was);
		}
		if (res->outcome == R_DELIVERED || res->outcome == R_FAILED)
			r->env.rcpts[i].done = true;
		if (res->outcome == R_FAILED) {
			failed[nfailed].address = r->env.rcpts[i].address;
			memcpy(failed[nfailed].status, res->status, sizeof(res->status));
			memcpy(failed[nfailed].remote_mta, res->mta, sizeof(res->mta));
			memcpy(failed[nfailed].diagnostic, res->diag, sizeof(res->diag));
			nfailed++;
		}
		if (!r->env.rcpts[i].done)
			all_done = false;
	}
	if (nfailed > 0)
		(void)queue_bounce(q->cfg, &r->env, r->buf + r->body, r->len - r->body, failed, nfailed);
	free(failed);
	if (fs_path(path, sizeof(path), "%s/%s", q->dir, r->env.id) == -1 ||
	    fs_path(state, sizeof(state), "%s.state", path) == -1)
		return;
	if (all_done) {
		(void)unlink(state);
		(void)unlink(path);
		r->removed = true;
		log_info("event=queue.removed queue_id=%s", r->env.id);
		return;
	}
	/* retry_base, doubling after each attempt, at most retry_max (Postfix-like). */
	for (int i = 1; i < attempts && delay < o->retry_max; i++)
		delay *= 2;
	if (delay > o->retry_max)
		delay = o->retry_max > o->retry_base ? o->retry_max : o->retry_base;
	if (r->lockdown)
		delay = 0;   /* the lockdown holds it; released, it goes at once */
	r->next_retry = now + delay;
	if ((f = open_memstream(&sbuf, &slen)) == NULL)
		return;
	for (size_t i = 0; i < r->env.nrcpts; i++)
		if (r->env.rcpts[i].done)
			fprintf(f, "done %zu\n", i);
	fprintf(f, "attempts %d\nnext %lld\nerror ", attempts, (long long)r->next_retry);
	queue_value_encode(f, r->last_error);
	fputc('\n', f);
	if (fclose(f) == 0) {
		snprintf(name, sizeof(name), "%s.state", r->env.id);
		if (access(path, F_OK) == 0 &&
		    fs_write_file_durable(q->dir, name, sbuf, slen, 0600) == -1)
			log_warn("event=queue.error queue_id=%s reason=state", r->env.id);
	}
	free(sbuf);
}

/* Loop thread: back into the schedule. */
static void
remote_commit_done(void *arg)
{
	struct queue_remote *r = arg;
	struct queue *q = r->q;
	struct queue_entry *e = r->e;

	e->busy = false;
	{
		size_t n[R_DEFERRED + 1] = { 0 };

		for (size_t i = 0; i < r->env.nrcpts; i++)
			n[r->res[i].outcome]++;
		if (queue_attempt_done(q, e, &r->env, r->removed, n[R_DELIVERED], n[R_DEFERRED],
		    n[R_FAILED])) {
			remote_free(r);   /* held (containment): out of the schedule */
			queue_slot_freed(q);
			return;
		}
	}
	if (r->removed) {
		queue_entry_drop(q, e);
	} else {
		time_t now = time(NULL);

		if (r->next_retry == 0)   /* the state was not written: the first step */
			r->next_retry = now + q->cfg->outbound.retry_base;
		e->attempts = r->lockdown ? r->attempts : r->attempts + 1;
		e->retry_at = r->next_retry > now ? r->next_retry : now;
		log_info("event=queue.deferred queue_id=%s attempts=%d retry_in=%lld error=\"%s\"",
		    e->id, e->attempts, (long long)(e->retry_at - now), r->last_error);
	}
	remote_free(r);
	queue_slot_freed(q);
}

static void
remote_finish(struct queue_remote *r)
{
	remote_unlist(r);
	if (pool_submit(r->q->pool, remote_commit_work, remote_commit_done, r) == -1) {
		struct queue *q = r->q;

		r->e->busy = false;
		r->e->retry_at = time(NULL) + q->cfg->outbound.retry_base;
		remote_free(r);
		queue_slot_freed(q);
	}
}

static void
remote_sent_cb(void *arg, struct smtp_client *client, const struct smtp_client_reply *msg,
    const struct smtp_client_reply *rcpts, size_t n)
{
	struct queue_remote *r = arg;
	size_t k = 0;

	for (size_t i = r->gstart; i < r->gend && k < n; i++, k++) {
		struct remote_rcpt *res = &r->res[r->idx[i]];
		const struct smtp_client_reply *rep = &rcpts[k];

		res->outcome = rep->status == SMTP_CLIENT_OK ? R_DELIVERED :
		    rep->status == SMTP_CLIENT_PERMFAIL ? R_FAILED : R_DEFERRED;
		snprintf(res->status, sizeof(res->status), "%s",
		    rep->enhanced[0] != '\0' ? rep->enhanced : rep->status == SMTP_CLIENT_PERMFAIL ?
		    "5.0.0" : "4.0.0");
		snprintf(res->mta, sizeof(res->mta), "%s", r->peer);
		snprintf(res->diag, sizeof(res->diag), "%d %s %.450s", rep->code, rep->enhanced, rep->text);
		if (res->outcome == R_DELIVERED)
			log_info("event=delivery.ok queue_id=%s to=%s relay=%s reply=\"%d %s\" tls=\"%s\""
			    " verify=\"%s\" conn_messages=%d", r->env.id, r->env.rcpts[r->idx[i]].address,
			    r->peer, rep->code, rep->enhanced, tls_of(client),
			    smtp_client_tls_verify(client), r->conn->messages + 1);
		else
			log_info("event=delivery.%s queue_id=%s to=%s relay=%s reply=\"%d %s\"",
			    res->outcome == R_FAILED ? "failed" : "deferred", r->env.id,
			    r->env.rcpts[r->idx[i]].address, r->peer, rep->code, rep->enhanced);
		if (res->outcome == R_DEFERRED)
			snprintf(r->last_error, sizeof(r->last_error), "%.200s: %d %.250s", r->peer, rep->code,
			    rep->text);
	}
	(void)msg;
	queue_conn_put(&r->conn);   /* kept for the next message, or QUIT */
	r->gstart = r->gend;
	remote_next_domain(r);
}

static void
remote_ready_cb(void *arg, struct smtp_client *client, const struct smtp_client_reply *reply)
{
	struct queue_remote *r = arg;

	if (reply->status != SMTP_CLIENT_OK) {
		bool tls_failed = strcmp(reply->enhanced, "4.7.5") == 0;

		snprintf(r->last_error, sizeof(r->last_error), "%.200s: %d %.250s", r->peer, reply->code,
		    reply->text);
		smtp_client_free(&r->conn->client);   /* reply is the client's: not used after */
		if (tls_failed && !r->plain_retry) {
			/* Opportunistic TLS (RFC 7435): a failed handshake, try in plaintext. */
			log_warnx("event=delivery.tls_failed queue_id=%s relay=%s reason=\"%s\" retry=plaintext",
			    r->env.id, r->peer, r->last_error);
			r->plain_retry = true;
		} else {
			r->plain_retry = false;
			r->addri++;
		}
		remote_next_addr(r);
		return;
	}
	(void)client;
	snprintf(r->conn->peer, sizeof(r->conn->peer), "%s", r->peer);
	log_info("event=delivery.connected queue_id=%s dest=%s relay=%s tls=\"%s\" verify=\"%s\"",
	    r->env.id, r->conn->dest, r->peer, tls_of(r->conn->client),
	    smtp_client_tls_verify(r->conn->client));
	remote_send(r);
}

/* An idle connection answered RSET: it is alive, send; else a new slot. */
static void
remote_rset_cb(void *arg, struct smtp_client *client, const struct smtp_client_reply *reply)
{
	struct queue_remote *r = arg;

	(void)client;
	if (reply->status != SMTP_CLIENT_OK) {
		log_info("event=delivery.reuse_failed queue_id=%s relay=%s reply=\"%d %s\"",
		    r->env.id, r->conn->peer, reply->code, reply->enhanced);
		queue_conn_drop(&r->conn);
		remote_group_start(r);
		return;
	}
	remote_send(r);
}

static void
remote_send(struct queue_remote *r)
{
	struct smtp_client_message m = {
		.sender = r->env.sender,
		.rcpts = r->grcpts,
		.nrcpts = r->gend - r->gstart,
		.data = r->buf + r->body,
		.len = r->len - r->body,
		.flags = ((r->env.flags & QUEUE_FLAG_8BITMIME) ? SMTP_CLIENT_MSG_8BITMIME : 0) |
		    ((r->env.flags & QUEUE_FLAG_SMTPUTF8) ? SMTP_CLIENT_MSG_SMTPUTF8 : 0),
	};

	for (size_t i = r->gstart; i < r->gend; i++)
		r->grcpts[i - r->gstart] = r->env.rcpts[r->idx[i]].address;
	if (smtp_client_send(r->conn->client, &m, remote_sent_cb, r) == -1) {
		snprintf(r->last_error, sizeof(r->last_error), "%.200s: cannot send: %s", r->peer,
		    strerror(errno));
		queue_conn_drop(&r->conn);
		group_settle(r, R_DEFERRED, "4.4.2", r->last_error);
		r->gstart = r->gend;
		remote_next_domain(r);
	}
}

static void
remote_next_addr(struct queue_remote *r)
{
	const struct config *cfg = r->q->cfg;
	struct smtp_client_options opts = { .log_id = r->env.id, .no_starttls = r->plain_retry };
	struct sockaddr_storage *ss;
	socklen_t sl;

	if (r->addri >= r->naddrs) {
		r->hosti++;
		remote_next_host(r);
		return;
	}
	ss = &r->addrs[r->addri];
	sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	r->conn->client = smtp_client_connect(r->q->base, r->q->client_tls, (struct sockaddr *)ss, sl,
	    r->peer, cfg->hostname, &opts, remote_ready_cb, r);
	if (r->conn->client == NULL) {
		snprintf(r->last_error, sizeof(r->last_error), "%.200s: connect: %s", r->peer,
		    strerror(errno));
		r->addri++;
		r->plain_retry = false;
		remote_next_addr(r);
	}
}

static void
remote_addrs_cb(void *arg, enum dns_status status, const struct sockaddr_storage *addrs, size_t n)
{
	struct queue_remote *r = arg;
	in_port_t port = htons(25);

	r->req = NULL;
	if (status != DNS_OK || n == 0) {
		snprintf(r->last_error, sizeof(r->last_error), "%.200s: address lookup: %s", r->peer,
		    dns_status_name(status));
		r->hosti++;
		remote_next_host(r);
		return;
	}
	if (r->q->smarthost_port != 0)
		port = htons(r->q->smarthost_port);
	r->naddrs = n < REMOTE_MAX_ADDRS ? n : REMOTE_MAX_ADDRS;
	for (size_t i = 0; i < r->naddrs; i++) {
		r->addrs[i] = addrs[i];
		if (addrs[i].ss_family == AF_INET6)
			((struct sockaddr_in6 *)&r->addrs[i])->sin6_port = port;
		else
			((struct sockaddr_in *)&r->addrs[i])->sin_port = port;
	}
	r->addri = 0;
	r->plain_retry = false;
	remote_next_addr(r);
}

static void
remote_next_host(struct queue_remote *r)
{
	const struct config *cfg = r->q->cfg;

	if (r->hosti >= r->nhosts) {
		queue_conn_drop(&r->conn);   /* the slot goes back */
		group_settle(r, R_DEFERRED, "4.4.1", r->last_error[0] != '\0' ? r->last_error :
		    "no MX host could be reached");
		r->gstart = r->gend;
		remote_next_domain(r);
		return;
	}
	snprintf(r->peer, sizeof(r->peer), "%s", r->hosts[r->hosti].name);
	if (strcasecmp(r->peer, cfg->hostname) == 0) {
		/* Never deliver to ourselves remotely: a mail loop (RFC 5321 5.1). */
		snprintf(r->last_error, sizeof(r->last_error), "%.200s: MX points back to us (mail loop)",
		    r->peer);
		r->hosti++;
		remote_next_host(r);
		return;
	}
	if (r->q->smarthost_ss.ss_family != 0) {
		struct sockaddr_storage a = r->q->smarthost_ss;

		r->naddrs = 1;
		r->addrs[0] = a;
		r->addri = 0;
		r->plain_retry = false;
		remote_next_addr(r);
		return;
	}
	r->req = dns_resolve_addrs(r->q->dns, r->peer, remote_addrs_cb, r);
	if (r->req == NULL) {
		snprintf(r->last_error, sizeof(r->last_error), "%.200s: bad host name", r->peer);
		r->hosti++;
		remote_next_host(r);
	}
}

static void
remote_mx_cb(void *arg, enum dns_status status, const struct dns_mx *hosts, size_t n)
{
	struct queue_remote *r = arg;
	const char *domain = domain_of(r->env.rcpts[r->idx[r->gstart]].address);
	char diag[512];

	r->req = NULL;
	switch (status) {
	case DNS_OK:
		r->nhosts = n < REMOTE_MAX_HOSTS ? n : REMOTE_MAX_HOSTS;
		memcpy(r->hosts, hosts, r->nhosts * sizeof(*hosts));
		r->hosti = 0;
		remote_next_host(r);
		return;
	case DNS_NULL_MX:
		snprintf(diag, sizeof(diag), "556 5.1.10 %s does not accept mail (null MX)", domain);
		group_settle(r, R_FAILED, "5.1.10", diag);
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		snprintf(diag, sizeof(diag), "550 5.1.2 %s: no mail host for this domain", domain);
		group_settle(r, R_FAILED, "5.1.2", diag);
		break;
	case DNS_TEMPFAIL:
	default:
		snprintf(r->last_error, sizeof(r->last_error), "%s: MX lookup failed (temporary)", domain);
		group_settle(r, R_DEFERRED, "4.4.3", r->last_error);
		break;
	}
	log_info("event=delivery.dns queue_id=%s domain=%s status=%s", r->env.id, domain,
	    dns_status_name(status));
	queue_conn_drop(&r->conn);
	r->gstart = r->gend;
	remote_next_domain(r);
}

static void
remote_next_domain(struct queue_remote *r)
{
	const struct config *cfg = r->q->cfg;
	const char *domain;

	if (r->gstart >= r->nidx) {
		remote_finish(r);
		return;
	}
	domain = domain_of(r->env.rcpts[r->idx[r->gstart]].address);
	for (r->gend = r->gstart + 1; r->gend < r->nidx &&
	    strcasecmp(domain_of(r->env.rcpts[r->idx[r->gend]].address), domain) == 0; r->gend++)
		;
	snprintf(r->dest, sizeof(r->dest), "%s", cfg->outbound.smarthost != NULL ?
	    cfg->outbound.smarthost : domain);
	remote_group_start(r);
}

/* Get a connection slot for the current group: reuse, a new one, or wait. */
static void
remote_group_start(void *arg)
{
	struct queue_remote *r = arg;
	const struct config *cfg = r->q->cfg;
	const char *domain = domain_of(r->env.rcpts[r->idx[r->gstart]].address);

	r->waiting = false;
	if (r->q->lockdown) {
		/* bulwarkctl lockdown on: nothing more leaves; the scheduler holds it. */
		r->lockdown = true;
		snprintf(r->last_error, sizeof(r->last_error), "outbound delivery stopped (lockdown)");
		group_settle(r, R_DEFERRED, "4.3.2", r->last_error);
		r->gstart = r->gend;
		remote_next_domain(r);
		return;
	}
	switch (queue_conn_get(r->q, r->dest, &r->waiter, &r->conn)) {
	case QUEUE_CONN_WAIT:
		r->waiting = true;
		return;
	case QUEUE_CONN_REUSE:
		snprintf(r->peer, sizeof(r->peer), "%s", r->conn->peer);
		log_debug("event=delivery.reuse queue_id=%s dest=%s relay=%s messages=%d", r->env.id,
		    r->dest, r->peer, r->conn->messages);
		/* RFC 5321 4.1.1.5: RSET between transactions, and a liveness check. */
		if (smtp_client_reset(r->conn->client, remote_rset_cb, r) == -1) {
			queue_conn_drop(&r->conn);
			remote_group_start(r);
		}
		return;
	case QUEUE_CONN_SLOT:
		break;
	}
	if (cfg->outbound.smarthost != NULL) {
		r->nhosts = 1;
		snprintf(r->hosts[0].name, sizeof(r->hosts[0].name), "%s", r->q->smarthost_host);
		r->hosti = 0;
		remote_next_host(r);
		return;
	}
	r->req = dns_resolve_mx(r->q->dns, domain, remote_mx_cb, r);
	if (r->req == NULL) {
		char diag[512];

		queue_conn_drop(&r->conn);
		snprintf(diag, sizeof(diag), "553 5.1.2 %s: not a valid domain", domain);
		group_settle(r, R_FAILED, "5.1.2", diag);
		r->gstart = r->gend;
		remote_next_domain(r);
	}
}

static const struct queue_envelope *sort_env;

static int
idx_cmp(const void *a, const void *b)
{
	const char *da = domain_of(sort_env->rcpts[*(const size_t *)a].address);
	const char *db = domain_of(sort_env->rcpts[*(const size_t *)b].address);
	int c = strcasecmp(da, db);

	return c != 0 ? c : (*(const size_t *)a > *(const size_t *)b) -
	    (*(const size_t *)a < *(const size_t *)b);
}

bool
queue_remote_start(struct queue *q, struct queue_entry *e, struct queue_envelope *env,
    char *buf, size_t len, size_t body, int attempts)
{
	struct queue_remote *r;

	if (q->remote_max == 0) {
		int m = q->cfg->outbound.max_connections;

		q->remote_max = m > 10 ? 2 * (size_t)m : 20;
	}
	if (q->dns == NULL || q->remote_active >= q->remote_max)
		return false;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return false;
	r->waiter.cb = remote_group_start;
	r->waiter.arg = r;
	r->q = q;
	r->e = e;
	r->env = *env;
	r->buf = buf;
	r->len = len;
	r->body = body;
	r->attempts = attempts;
	r->res = calloc(env->nrcpts, sizeof(*r->res));
	r->idx = calloc(env->nrcpts, sizeof(*r->idx));
	r->grcpts = calloc(env->nrcpts, sizeof(*r->grcpts));
	if (r->res == NULL || r->idx == NULL || r->grcpts == NULL) {
		free(r->res);
		free(r->idx);
		free(r->grcpts);
		free(r);
		return false;
	}
	memset(env, 0, sizeof(*env));   /* ours now */
	for (size_t i = 0; i < r->env.nrcpts; i++)
		if (!r->env.rcpts[i].done && !r->env.rcpts[i].local)
			r->idx[r->nidx++] = i;
	sort_env = &r->env;
	qsort(r->idx, r->nidx, sizeof(*r->idx), idx_cmp);
	e->busy = true;
	r->next = q->remote;
	q->remote = r;
	q->remote_active++;
	log_info("event=delivery.attempt queue_id=%s recipients=%zu attempt=%d", r->env.id, r->nidx,
	    attempts + 1);
	remote_next_domain(r);
	return true;
}

void
queue_remote_abort_all(struct queue *q)
{
	while (q->remote != NULL) {
		struct queue_remote *r = q->remote;

		q->remote = r->next;
		q->remote_active--;
		remote_free(r);
	}
	queue_conn_close_all(q);
}
