/*
 * imap_server.c: the IMAP listeners (listen.imap, listen.imaps). Binds before
 * privileges are dropped, drops banned clients and checks the connection
 * limits at accept before any session memory or TLS work is spent, and owns
 * the list of live sessions for shutdown. RFC 3501, RFC 8314 (implicit TLS).
 */
#include <errno.h>
#include <event2/listener.h>
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
#include "imap/imap_session_private.h"

static const char *const kind_names[] = {
	[IMAP_LISTENER_IMAP] = "imap",
	[IMAP_LISTENER_IMAPS] = "imaps",
};

static void
imap_server_accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct imap_listener *l = arg;
	struct imap_server *srv = l->srv;
	const struct config *cfg = srv->deps.cfg;
	enum guard_verdict v;

	/* Banned: dropped before any greeting, TLS or session memory. */
	if (guard_is_banned(srv->deps.guard, sa, time(NULL))) {
		metrics_inc("bulwark_connections_refused_total", "reason=\"banned\"");
		close(fd);
		return;
	}
	/* Counted apart from SMTP: an office behind one NAT with many mail
	 * clients idling must not run out of SMTP connections. */
	v = guard_conn_open(srv->deps.conns, sa, cfg->imap.max_connections_per_ip,
	    cfg->imap.max_connections);
	if (v != GUARD_ACCEPT || srv->shutting_down) {
		char ip[64];
		static const char bye[] = "* BYE Too many connections, try later\r\n";

		sockaddr_format_ip(sa, ip, sizeof(ip));
		log_info("event=imap.refused client=%s service=%s reason=%s", ip, kind_names[l->kind],
		    srv->shutting_down ? "shutting_down" : guard_verdict_reason(v));
		/* Best effort on the non-blocking socket; nothing in clear on imaps. */
		if (l->kind == IMAP_LISTENER_IMAP)
			(void)!write(fd, bye, sizeof(bye) - 1);
		if (v == GUARD_ACCEPT)
			guard_conn_close(srv->deps.conns, sa);
		metrics_inc("bulwark_connections_refused_total", v == GUARD_TOO_MANY_FROM_IP ?
		    "reason=\"too_many_from_ip\"" : "reason=\"too_many_connections\"");
		close(fd);
		return;
	}
	if (imap_session_new(l, fd, sa, (socklen_t)salen) == NULL)
		guard_conn_close(srv->deps.conns, sa);
}

static void
imap_server_accept_error_cb(struct evconnlistener *evl, void *arg)
{
	log_warn("event=imap.accept_error");
}

static int
imap_server_bind(struct imap_server *srv, enum imap_listener_kind kind,
    const struct config_listen_list *list, char **error_r)
{
	for (size_t i = 0; i < list->n; i++) {
		const struct config_listen *cl = &list->v[i];
		struct imap_listener *l;
		unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
		    LEV_OPT_DISABLED;

		if (cl->ss.ss_family == AF_INET6)
			flags |= LEV_OPT_BIND_IPV6ONLY;
		l = &srv->listeners[srv->nlisteners];
		l->srv = srv;
		l->kind = kind;
		l->text = cl->text;
		l->evl = evconnlistener_new_bind(srv->deps.base, imap_server_accept_cb, l, flags,
		    1024, (const struct sockaddr *)&cl->ss, (int)cl->sslen);
		if (l->evl == NULL) {
			if (asprintf(error_r, "listen.%s: cannot listen on %s: %s", kind_names[kind],
			    cl->text, strerror(errno)) == -1)
				*error_r = NULL;
			return -1;
		}
		evconnlistener_set_error_cb(l->evl, imap_server_accept_error_cb);
		srv->nlisteners++;
		/* Banned networks' SYNs dropped by the kernel (a failure is logged; accept still checks). */
		(void)guard_filter_attach(srv->deps.guard, evconnlistener_get_fd(l->evl));
	}
	return 0;
}

struct imap_server *
imap_server_new(const struct imap_server_deps *deps, char **error_r)
{
	const struct config *cfg = deps->cfg;
	struct imap_server *srv = calloc(1, sizeof(*srv));
	size_t n = cfg->listen.imap.n + cfg->listen.imaps.n;

	if (srv == NULL)
		return NULL;
	srv->deps = *deps;
	srv->listeners = calloc(n > 0 ? n : 1, sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		goto fail;
	if (imap_server_bind(srv, IMAP_LISTENER_IMAP, &cfg->listen.imap, error_r) == -1 ||
	    imap_server_bind(srv, IMAP_LISTENER_IMAPS, &cfg->listen.imaps, error_r) == -1)
		goto fail;
	return srv;
fail:
	imap_server_free(&srv);
	return NULL;
}

void
imap_server_attach(struct imap_server *srv, struct pool *auth_pool)
{
	srv->deps.auth_pool = auth_pool;
}

int
imap_server_start(struct imap_server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		if (evconnlistener_enable(srv->listeners[i].evl) == -1)
			return -1;
	return 0;
}

void
imap_server_log_listeners(const struct imap_server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		log_info("event=listen service=%s address=%s", kind_names[srv->listeners[i].kind],
		    srv->listeners[i].text);
}

void
imap_server_shutdown(struct imap_server *srv)
{
	struct imap_session *s, *next;

	srv->shutting_down = true;
	for (size_t i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].evl == NULL)
			continue;
		guard_filter_detach(srv->deps.guard, evconnlistener_get_fd(srv->listeners[i].evl));
		evconnlistener_free(srv->listeners[i].evl);
		srv->listeners[i].evl = NULL;
	}
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		imap_session_shutdown(s);
	}
}

size_t
imap_server_sessions(const struct imap_server *srv)
{
	return srv != NULL ? srv->nsessions : 0;
}

void
imap_server_free(struct imap_server **srvp)
{
	struct imap_server *srv = *srvp;

	if (srv == NULL)
		return;
	*srvp = NULL;
	while (srv->sessions != NULL) {
		struct imap_session *s = srv->sessions;

		imap_session_free(&s);
	}
	for (size_t i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].evl == NULL)
			continue;
		guard_filter_detach(srv->deps.guard, evconnlistener_get_fd(srv->listeners[i].evl));
		evconnlistener_free(srv->listeners[i].evl);
	}
	free(srv->listeners);
	free(srv);
}
