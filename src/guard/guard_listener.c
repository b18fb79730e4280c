/*
 * guard_listener.c: the listening sockets of every protocol, with the guard
 * at the door. Binds (before privileges are dropped), registers the socket
 * with the kernel ban filter, and at accept refuses banned clients and those
 * over the connection limits before any session memory or TLS work is spent.
 * Trusts its callers; client text never reaches it.
 */
#include <errno.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/log.h"
#include "guard/guard.h"
#include "monitor/metrics.h"

struct guard_listener {
	struct guard_listener_params p;
	char *refusal;            /* owned copy of p.refusal, or NULL */
	const char *text;         /* the address as configured (the config's string) */
	struct evconnlistener *evl;
};

static void
guard_listener_accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct guard_listener *l = arg;
	const struct guard_listener_params *p = &l->p;
	enum guard_verdict v;

	/* Banned: dropped before any greeting, TLS or session memory. */
	if (guard_is_banned(p->guard, sa, time(NULL))) {
		metrics_inc("bulwark_connections_refused_total", "reason=\"banned\"");
		close(fd);
		return;
	}
	v = guard_conn_open(p->conns, sa, p->max_per_ip, p->max_total);
	if (v != GUARD_ACCEPT || *p->shutting_down) {
		char ip[64];

		sockaddr_format_ip(sa, ip, sizeof(ip));
		log_info("event=%s.refused client=%s service=%s reason=%s", p->protocol, ip, p->service,
		    *p->shutting_down ? "shutting_down" : guard_verdict_reason(v));
		/* Best effort, never blocks: the socket is non-blocking. On an
		 * implicit-TLS port a plaintext reply would be noise: just close. */
		if (l->refusal != NULL)
			(void)!write(fd, l->refusal, strlen(l->refusal));
		if (v == GUARD_ACCEPT)
			guard_conn_close(p->conns, sa);
		metrics_inc("bulwark_connections_refused_total", v == GUARD_TOO_MANY_FROM_IP ?
		    "reason=\"too_many_from_ip\"" : "reason=\"too_many_connections\"");
		close(fd);
		return;
	}
	/*
	 * Replies are written whole from the output buffer, so Nagle only adds
	 * latency: the last small segment of a reply (IMAP's tagged OK after a
	 * large FETCH) would wait for the client's delayed ACK, ~40 ms.
	 */
	{
		int one = 1;

		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (p->accept(p->arg, fd, sa, (socklen_t)salen) == -1)
		guard_conn_close(p->conns, sa);
}

static void
guard_listener_error_cb(struct evconnlistener *evl, void *arg)
{
	struct guard_listener *l = arg;

	/* EMFILE and friends: log, keep listening (libevent retries). */
	log_warn("event=%s.accept_error", l->p.protocol);
}

struct guard_listener *
guard_listener_new(const struct guard_listener_params *params, const struct config_listen *cl,
    char **error_r)
{
	struct guard_listener *l = calloc(1, sizeof(*l));
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
	    LEV_OPT_DISABLED;

	*error_r = NULL;
	if (l == NULL)
		return NULL;
	l->p = *params;
	l->text = cl->text;
	if (params->refusal != NULL && (l->refusal = strdup(params->refusal)) == NULL)
		goto fail;
	if (cl->ss.ss_family == AF_INET6)
		flags |= LEV_OPT_BIND_IPV6ONLY;
	l->evl = evconnlistener_new_bind(params->base, guard_listener_accept_cb, l, flags, 1024,
	    (const struct sockaddr *)&cl->ss, (int)cl->sslen);
	if (l->evl == NULL) {
		if (asprintf(error_r, "listen.%s: cannot listen on %s: %s", params->service, cl->text,
		    strerror(errno)) == -1)
			*error_r = NULL;
		goto fail;
	}
	evconnlistener_set_error_cb(l->evl, guard_listener_error_cb);
	/* Banned networks' SYNs dropped by the kernel (a failure is logged; accept still checks). */
	(void)guard_filter_attach(params->guard, evconnlistener_get_fd(l->evl));
	return l;
fail:
	free(l->refusal);
	free(l);
	return NULL;
}

int
guard_listener_enable(struct guard_listener *l)
{
	return evconnlistener_enable(l->evl);
}

void
guard_listener_log(const struct guard_listener *l)
{
	log_info("event=listen service=%s address=%s", l->p.service, l->text);
}

void
guard_listener_free(struct guard_listener **lp)
{
	struct guard_listener *l = *lp;

	if (l == NULL)
		return;
	*lp = NULL;
	guard_filter_detach(l->p.guard, evconnlistener_get_fd(l->evl));
	evconnlistener_free(l->evl);
	free(l->refusal);
	free(l);
}
