/*
 * dns.c: the resolver's event-loop half: a c-ares channel whose sockets and
 * timeouts are libevent events, and the MX / address / TXT requests built on
 * ares_query. Answers are untrusted and go through dns_answer_walk(); every
 * callback to a requester is deferred to its own loop turn, so it never runs
 * inside a dns_* call and a cancelled requester is never called.
 * RFC 5321 5.1 (MX, implicit MX), RFC 7505 (null MX), RFC 1035.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "dns/dns.h"

#define DNS_TIMEOUT_MS 3000   /* per try; c-ares doubles it per round */
#define DNS_TRIES 3
#define DNS_EDNS_SIZE 1232    /* the 2020 DNS flag day size */

struct dns_sock {
	struct dns_sock *next;
	ares_socket_t fd;
	short what;
	struct event *ev;
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	bool channel_ok;
	struct event *timer;        /* c-ares' next timeout */
	struct dns_sock *socks;
	struct dns_req *reqs;       /* every request not yet freed */
	size_t npending;
	bool freeing;
};

enum dns_req_kind { DNS_REQ_MX, DNS_REQ_ADDRS, DNS_REQ_TXT };

/* One ares_query in flight; the index of a request's slot. */
enum { DNS_Q_MX, DNS_Q_A, DNS_Q_AAAA, DNS_Q_TXT, DNS_Q_COUNT };

struct dns_query {
	struct dns_req *req;
	enum dns_type type;
	enum dns_status status;
};

struct dns_mx_sort {
	struct dns_mx mx;
	uint32_t key;   /* random tie-breaker within a preference */
};

struct dns_req {
	struct dns_req *prev, *next;
	struct dns *dns;
	enum dns_req_kind kind;
	char name[DNS_NAME_MAX + 1];
	union {
		dns_mx_cb *mx;
		dns_addr_cb *addr;
		dns_txt_cb *txt;
	} cb;
	void *arg;
	int outstanding;            /* ares queries in flight */
	bool cancelled;
	bool done;                  /* result ready, callback deferred */
	struct event *ev_done;      /* made up front: finishing never allocates */
	struct dns_query q[DNS_Q_COUNT];
	enum dns_status status;
	struct dns_mx mx[DNS_MX_MAX];
	size_t nmx;
	struct sockaddr_storage addr4[DNS_ADDR_MAX], addr6[DNS_ADDR_MAX];
	size_t n4, n6;
	char *txt[DNS_TXT_MAX];
	size_t ntxt;
};

static const char *const status_names[] = {
	[DNS_OK] = "ok",
	[DNS_NXDOMAIN] = "nxdomain",
	[DNS_NODATA] = "nodata",
	[DNS_NULL_MX] = "null_mx",
	[DNS_TEMPFAIL] = "tempfail",
};

const char *
dns_status_name(enum dns_status status)
{
	return (unsigned)status < sizeof(status_names) / sizeof(status_names[0]) ?
	    status_names[status] : "unknown";
}

/* ---- the channel on the loop ---- */

static void
dns_reschedule(struct dns *dns)
{
	struct timeval tv, *tvp;

	if (dns->freeing)
		return;
	tvp = ares_timeout(dns->channel, NULL, &tv);
	if (tvp != NULL)
		evtimer_add(dns->timer, tvp);
	else
		evtimer_del(dns->timer);
}

static void
dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;

	/* May free this socket's event through dns_sock_state_cb: no touching it after. */
	ares_process_fd(dns->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_reschedule(dns);
}

static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;

	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_reschedule(dns);
}

/* c-ares says which of its sockets it wants to read or write. */
static void
dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	struct dns_sock **pp, *s;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));

	for (pp = &dns->socks; *pp != NULL && (*pp)->fd != fd; pp = &(*pp)->next)
		;
	s = *pp;
	if (what == 0) {
		if (s != NULL) {
			*pp = s->next;
			event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s != NULL && s->what == what)
		return;
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			log_warn("event=dns.error reason=socket_state");
			return;   /* the query times out and is retried */
		}
		s->fd = fd;
		s->next = dns->socks;
		dns->socks = s;
	} else {
		event_free(s->ev);
		s->ev = NULL;
	}
	s->what = what;
	s->ev = event_new(dns->base, fd, (short)(what | EV_PERSIST), dns_sock_cb, dns);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1)
		log_warnx("event=dns.error reason=socket_event fd=%d", (int)fd);
}

struct dns *
dns_new(struct event_base *base, const struct config *cfg, char **error_r)
{
	struct dns *dns;
	struct ares_options opts;
	char lookups[] = "b";
	char *csv = NULL;
	int rc, mask;

	*error_r = NULL;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		if (asprintf(error_r, "dns: c-ares: %s", ares_strerror(rc)) == -1)
			*error_r = NULL;
		return NULL;
	}
	if ((dns = calloc(1, sizeof(*dns))) == NULL)
		goto nomem;
	dns->base = base;
	if ((dns->timer = evtimer_new(base, dns_timer_cb, dns)) == NULL)
		goto nomem;
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state_cb;
	opts.sock_state_cb_data = dns;
	/* Names are absolute: no search list, no HOSTALIASES, DNS only. */
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_EDNS;
	opts.lookups = lookups;
	opts.domains = NULL;
	opts.ndomains = 0;
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	opts.ednspsz = DNS_EDNS_SIZE;
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_LOOKUPS |
	    ARES_OPT_DOMAINS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_EDNSPSZ;
	if ((rc = ares_init_options(&dns->channel, &opts, mask)) != ARES_SUCCESS) {
		if (asprintf(error_r, "dns: cannot start c-ares: %s", ares_strerror(rc)) == -1)
			*error_r = NULL;
		goto fail;
	}
	dns->channel_ok = true;
	if (cfg != NULL && cfg->outbound.ndns_servers > 0) {
		size_t len = 1;

		for (size_t i = 0; i < cfg->outbound.ndns_servers; i++)
			len += strlen(cfg->outbound.dns_servers[i]) + 1;
		if ((csv = calloc(1, len)) == NULL)
			goto nomem;
		for (size_t i = 0; i < cfg->outbound.ndns_servers; i++) {
			if (i > 0)
				strcat(csv, ",");
			strcat(csv, cfg->outbound.dns_servers[i]);
		}
		if ((rc = ares_set_servers_ports_csv(dns->channel, csv)) != ARES_SUCCESS) {
			if (asprintf(error_r, "dns: bad outbound.dns_servers '%s': %s", csv,
			    ares_strerror(rc)) == -1)
				*error_r = NULL;
			goto fail;
		}
		log_info("event=dns.servers servers=%s", csv);
		free(csv);
	}
	return dns;
nomem:
	if (asprintf(error_r, "dns: out of memory") == -1)
		*error_r = NULL;
fail:
	free(csv);
	{
		/* dns_free cleans c-ares' library up only after a full start. */
		bool full = dns != NULL && dns->channel_ok;

		dns_free(&dns);
		if (!full)
			ares_library_cleanup();
	}
	return NULL;
}

static void dns_req_free(struct dns_req *r);

void
dns_free(struct dns **dnsp)
{
	struct dns *dns = *dnsp;
	bool full;

	if (dns == NULL)
		return;
	*dnsp = NULL;
	full = dns->channel_ok;
	dns->freeing = true;
	/* Calls every query's callback with ARES_EDESTRUCTION, and closes the sockets. */
	if (dns->channel_ok)
		ares_destroy(dns->channel);
	while (dns->reqs != NULL)
		dns_req_free(dns->reqs);
	while (dns->socks != NULL) {
		struct dns_sock *s = dns->socks;

		dns->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	if (dns->timer != NULL)
		event_free(dns->timer);
	free(dns);
	if (full)
		ares_library_cleanup();
}

size_t
dns_pending(const struct dns *dns)
{
	return dns->npending;
}

/* ---- requests ---- */

static void
dns_req_free(struct dns_req *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else if (r->dns->reqs == r)
		r->dns->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	if (!r->cancelled && !r->done)
		r->dns->npending--;
	if (r->ev_done != NULL)
		event_free(r->ev_done);
	for (size_t i = 0; i < r->ntxt; i++)
		free(r->txt[i]);
	free(r);
}

/* The deferred callback: unlink first, so a callback may free the resolver. */
static void
dns_req_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req *r = arg;
	struct sockaddr_storage addrs[2 * DNS_ADDR_MAX];
	const char *txts[DNS_TXT_MAX];
	size_t n = 0;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		r->dns->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	r->dns->npending--;
	r->done = true;
	r->dns = NULL;
	switch (r->kind) {
	case DNS_REQ_MX:
		r->cb.mx(r->arg, r->status, r->mx, r->status == DNS_OK ? r->nmx : 0);
		break;
	case DNS_REQ_ADDRS:
		if (r->status == DNS_OK) {
			memcpy(addrs, r->addr4, r->n4 * sizeof(addrs[0]));
			memcpy(addrs + r->n4, r->addr6, r->n6 * sizeof(addrs[0]));
			n = r->n4 + r->n6;
		}
		r->cb.addr(r->arg, r->status, addrs, n);
		break;
	case DNS_REQ_TXT:
		for (n = 0; r->status == DNS_OK && n < r->ntxt; n++)
			txts[n] = r->txt[n];
		r->cb.txt(r->arg, r->status, txts, n);
		break;
	}
	event_free(r->ev_done);
	for (size_t i = 0; i < r->ntxt; i++)
		free(r->txt[i]);
	free(r);
}

static void
dns_req_finish(struct dns_req *r, enum dns_status status)
{
	r->status = status;
	log_debug("event=dns.result name=%s kind=%s status=%s mx=%zu a=%zu aaaa=%zu txt=%zu",
	    r->name, r->kind == DNS_REQ_MX ? "mx" : r->kind == DNS_REQ_ADDRS ? "addrs" : "txt",
	    dns_status_name(status), r->nmx, r->n4, r->n6, r->ntxt);
	event_active(r->ev_done, EV_TIMEOUT, 1);
}

static void dns_query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

static void
dns_query_start(struct dns_req *r, int slot, enum dns_type type)
{
	r->q[slot].req = r;
	r->q[slot].type = type;
	/* The caller counted it in r->outstanding already, so that a query
	 * failing synchronously cannot finish a request whose sibling has not
	 * started. c-ares may call back from in here (no servers, no memory): that is
	 * fine, the requester is only ever called from ev_done. */
	ares_query(r->dns->channel, r->name, 1 /* IN */, (int)type, dns_query_cb, &r->q[slot]);
}

static struct dns_req *
dns_req_new(struct dns *dns, enum dns_req_kind kind, const char *name, void *arg)
{
	struct dns_req *r;
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;   /* absolute either way */
	if (len == 0 || len > DNS_NAME_MAX) {
		errno = EINVAL;
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		r->name[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
	if (!dns_hostname_valid(r->name)) {
		free(r);
		errno = EINVAL;
		return NULL;
	}
	if ((r->ev_done = event_new(dns->base, -1, 0, dns_req_done_cb, r)) == NULL) {
		free(r);
		return NULL;
	}
	r->dns = dns;
	r->kind = kind;
	r->arg = arg;
	r->next = dns->reqs;
	if (dns->reqs != NULL)
		dns->reqs->prev = r;
	dns->reqs = r;
	dns->npending++;
	return r;
}

struct dns_req *
dns_resolve_mx(struct dns *dns, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_req *r = dns_req_new(dns, DNS_REQ_MX, domain, arg);

	if (r == NULL)
		return NULL;
	r->cb.mx = cb;
	r->outstanding++;
	dns_query_start(r, DNS_Q_MX, DNS_TYPE_MX);
	dns_reschedule(dns);
	return r;
}

static void
dns_start_addrs(struct dns_req *r)
{
	r->outstanding += 2;
	dns_query_start(r, DNS_Q_A, DNS_TYPE_A);
	dns_query_start(r, DNS_Q_AAAA, DNS_TYPE_AAAA);
}

struct dns_req *
dns_resolve_addrs(struct dns *dns, const char *host, dns_addr_cb *cb, void *arg)
{
	struct dns_req *r = dns_req_new(dns, DNS_REQ_ADDRS, host, arg);

	if (r == NULL)
		return NULL;
	r->cb.addr = cb;
	dns_start_addrs(r);
	dns_reschedule(dns);
	return r;
}

struct dns_req *
dns_resolve_txt(struct dns *dns, const char *name, dns_txt_cb *cb, void *arg)
{
	struct dns_req *r = dns_req_new(dns, DNS_REQ_TXT, name, arg);

	if (r == NULL)
		return NULL;
	r->cb.txt = cb;
	r->outstanding++;
	dns_query_start(r, DNS_Q_TXT, DNS_TYPE_TXT);
	dns_reschedule(dns);
	return r;
}

void
dns_cancel(struct dns_req **reqp)
{
	struct dns_req *r = *reqp;

	if (r == NULL)
		return;
	*reqp = NULL;
	if (r->cancelled)
		return;
	r->dns->npending--;
	r->cancelled = true;
	if (r->outstanding == 0)
		dns_req_free(r);   /* also drops a deferred callback */
	/* else freed when its last c-ares query returns */
}

/* ---- reading answers ---- */

struct dns_mx_collect {
	struct dns_mx_sort *v;
	size_t n, cap;
	size_t nroot;   /* exchanges that are "." */
};

static int
dns_rr_mx(void *ctx, const unsigned char *msg, size_t msglen,
    const unsigned char *rdata, size_t rdlen)
{
	struct dns_mx_collect *c = ctx;
	char *name = NULL;
	long enclen = 0;
	size_t len;

	if (rdlen < 3 || ares_expand_name(rdata + 2, msg, (int)msglen, &name, &enclen) != ARES_SUCCESS)
		return -1;
	if ((size_t)enclen > rdlen - 2) {
		ares_free_string(name);
		return -1;
	}
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		name[--len] = '\0';
	if (len == 0) {
		c->nroot++;
		ares_free_string(name);
		return 0;
	}
	if (!dns_hostname_valid(name) || len > DNS_NAME_MAX) {
		char esc[LOG_ESCAPE_MAX];

		log_info("event=dns.bad_mx exchange=%s", log_escape(esc, sizeof(esc), name, len));
		ares_free_string(name);
		return 0;   /* skipped, not fatal */
	}
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		struct dns_mx_sort *nv = realloc(c->v, ncap * sizeof(*nv));

		if (nv == NULL) {
			ares_free_string(name);
			return -1;
		}
		c->v = nv;
		c->cap = ncap;
	}
	memset(&c->v[c->n], 0, sizeof(c->v[c->n]));
	for (size_t i = 0; i <= len; i++)
		c->v[c->n].mx.name[i] = (name[i] >= 'A' && name[i] <= 'Z') ?
		    (char)(name[i] - 'A' + 'a') : name[i];
	c->v[c->n].mx.preference = (unsigned)(rdata[0] << 8 | rdata[1]);
	c->v[c->n].key = arc4random();
	c->n++;
	ares_free_string(name);
	return 0;
}

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx_sort *x = a, *y = b;

	if (x->mx.preference != y->mx.preference)
		return x->mx.preference < y->mx.preference ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

static int
dns_rr_addr(void *ctx, const unsigned char *msg, size_t msglen,
    const unsigned char *rdata, size_t rdlen)
{
	struct dns_query *q = ctx;
	struct dns_req *r = q->req;

	if (q->type == DNS_TYPE_A) {
		struct sockaddr_in *sin;

		if (rdlen != 4)
			return -1;
		if (r->n4 == DNS_ADDR_MAX)
			return 0;
		sin = (struct sockaddr_in *)&r->addr4[r->n4++];
		memset(sin, 0, sizeof(r->addr4[0]));
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, rdata, 4);
	} else {
		struct sockaddr_in6 *sin6;

		if (rdlen != 16)
			return -1;
		if (r->n6 == DNS_ADDR_MAX)
			return 0;
		sin6 = (struct sockaddr_in6 *)&r->addr6[r->n6++];
		memset(sin6, 0, sizeof(r->addr6[0]));
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, rdata, 16);
	}
	return 0;
}

static int
dns_rr_txt(void *ctx, const unsigned char *msg, size_t msglen,
    const unsigned char *rdata, size_t rdlen)
{
	struct dns_req *r = ctx;
	size_t off = 0, out = 0;
	char *s;

	if (r->ntxt == DNS_TXT_MAX)
		return 0;
	if ((s = malloc(rdlen + 1)) == NULL)
		return -1;
	while (off < rdlen) {
		size_t n = rdata[off++];

		if (n > rdlen - off) {
			free(s);
			return -1;
		}
		memcpy(s + out, rdata + off, n);
		out += n;
		off += n;
	}
	s[out] = '\0';
	if (memchr(s, '\0', out) != NULL) {
		free(s);
		return 0;   /* not text: no caller could use it */
	}
	r->txt[r->ntxt++] = s;
	return 0;
}

static enum dns_status
dns_status_from_ares(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	default:
		return DNS_TEMPFAIL;
	}
}

/* Walk an answer for q; DNS_NODATA when the name (after CNAMEs) has none. */
static enum dns_status
dns_query_walk(struct dns_query *q, const unsigned char *abuf, int alen,
    dns_rr_fn *fn, void *ctx)
{
	struct dns_answer_info info;
	const char *error;
	char esc[LOG_ESCAPE_MAX];

	if (abuf == NULL || alen <= 0)
		return DNS_TEMPFAIL;
	if (dns_answer_walk(abuf, (size_t)alen, q->req->name, q->type, fn, ctx, &info, &error) == -1) {
		log_info("event=dns.bad_answer name=%s type=%d reason=\"%s\"",
		    log_escape(esc, sizeof(esc), q->req->name, strlen(q->req->name)),
		    (int)q->type, error);
		return DNS_TEMPFAIL;
	}
	return info.nrecords > 0 ? DNS_OK : DNS_NODATA;
}

/* The MX answer is in: hosts, a null MX, or on to the implicit MX. */
static void
dns_mx_answer(struct dns_req *r, struct dns_query *q, int status,
    const unsigned char *abuf, int alen)
{
	struct dns_mx_collect c = { 0 };
	enum dns_status st = dns_status_from_ares(status);

	if (st == DNS_OK)
		st = dns_query_walk(q, abuf, alen, dns_rr_mx, &c);
	if (st == DNS_NODATA) {
		/* RFC 5321 5.1: no MX, so the domain itself, if it has an address. */
		free(c.v);
		dns_start_addrs(r);
		return;
	}
	if (st != DNS_OK) {
		free(c.v);
		dns_req_finish(r, st);
		return;
	}
	if (c.n == 0) {
		free(c.v);
		/* RFC 7505: one MX, and it is ".". Only unusable names left: retry,
		 * the domain's owner may fix them. */
		dns_req_finish(r, c.nroot == 1 ? DNS_NULL_MX : DNS_TEMPFAIL);
		return;
	}
	qsort(c.v, c.n, sizeof(c.v[0]), dns_mx_cmp);
	for (size_t i = 0; i < c.n && r->nmx < DNS_MX_MAX; i++) {
		bool dup = false;

		for (size_t j = 0; j < r->nmx && !dup; j++)
			dup = strcmp(r->mx[j].name, c.v[i].mx.name) == 0;
		if (!dup)
			r->mx[r->nmx++] = c.v[i].mx;
	}
	free(c.v);
	dns_req_finish(r, DNS_OK);
}

/* Both address queries are in: combine them (for addrs and the implicit MX). */
static void
dns_addrs_answered(struct dns_req *r)
{
	enum dns_status a = r->q[DNS_Q_A].status, aaaa = r->q[DNS_Q_AAAA].status, st;

	if (r->n4 + r->n6 > 0)
		st = DNS_OK;
	else if (a == DNS_NXDOMAIN || aaaa == DNS_NXDOMAIN)
		st = DNS_NXDOMAIN;
	else if (a == DNS_TEMPFAIL || aaaa == DNS_TEMPFAIL)
		st = DNS_TEMPFAIL;
	else
		st = DNS_NODATA;
	if (r->kind == DNS_REQ_MX && st == DNS_OK) {
		memset(&r->mx[0], 0, sizeof(r->mx[0]));
		memcpy(r->mx[0].name, r->name, sizeof(r->name));
		r->mx[0].implicit = true;
		r->nmx = 1;
		/* The caller asks for the addresses again: a cache hit, and one
		 * code path for implicit and explicit MX. */
		r->n4 = r->n6 = 0;
	}
	dns_req_finish(r, st);
}

static void
dns_query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct dns_req *r = q->req;

	r->outstanding--;
	if (r->cancelled) {
		if (r->outstanding == 0)
			dns_req_free(r);
		return;
	}
	if (r->dns->freeing)
		return;   /* dns_free frees r */
	switch (q->type) {
	case DNS_TYPE_MX:
		dns_mx_answer(r, q, status, abuf, alen);
		break;
	case DNS_TYPE_A:
	case DNS_TYPE_AAAA:
		q->status = dns_status_from_ares(status);
		if (q->status == DNS_OK)
			q->status = dns_query_walk(q, abuf, alen, dns_rr_addr, q);
		if (q->status == DNS_TEMPFAIL) {
			/* a half-parsed answer is no answer */
			if (q->type == DNS_TYPE_A)
				r->n4 = 0;
			else
				r->n6 = 0;
		}
		if (r->outstanding == 0)
			dns_addrs_answered(r);
		break;
	case DNS_TYPE_TXT: {
		enum dns_status st = dns_status_from_ares(status);

		if (st == DNS_OK)
			st = dns_query_walk(q, abuf, alen, dns_rr_txt, r);
		if (st == DNS_OK && r->ntxt == 0)
			st = DNS_NODATA;   /* only records that were not text */
		if (st != DNS_OK) {
			for (size_t i = 0; i < r->ntxt; i++)
				free(r->txt[i]);
			r->ntxt = 0;
		}
		dns_req_finish(r, st);
		break;
	}
	default:
		dns_req_finish(r, DNS_TEMPFAIL);
		break;
	}
}
