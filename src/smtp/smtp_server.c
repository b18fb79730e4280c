/*
 * smtp_server.c: the SMTP listeners. Binds before privileges are dropped,
 * registers each listener with the guard's ban filter (banned SYNs dropped
 * by the kernel), checks the guard (bans, connection limits) at accept before any session memory
 * or TLS work is spent, and owns the list of live sessions for shutdown.
 */
#include <errno.h>
#include <event2/listener.h>
#include <fcntl.h>
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
#include "smtp/smtp_session_private.h"

static const char *const kind_names[] = {
	[SMTP_LISTENER_MX] = "smtp",
	[SMTP_LISTENER_SUBMISSION] = "submission",
	[SMTP_LISTENER_SUBMISSIONS] = "submissions",
};

static void
smtp_server_accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct smtp_listener *l = arg;
	struct smtp_server *srv = l->srv;
	const struct config *cfg = srv->deps.cfg;
	enum guard_verdict v;

	/* Banned: dropped before any greeting, TLS or session memory. */
	if (guard_is_banned(srv->deps.guard, sa, time(NULL))) {
		metrics_inc("bulwark_connections_refused_total", "reason=\"banned\"");
		close(fd);
		return;
	}
	v = guard_conn_open(srv->deps.guard, sa, cfg->smtp.max_connections_per_ip,
	    cfg->smtp.max_connections);
	if (v != GUARD_ACCEPT || srv->shutting_down) {
		char ip[64], reply[300];
		int n;

		sockaddr_format_ip(sa, ip, sizeof(ip));
		log_info("event=smtp.refused client=%s service=%s reason=%s", ip, kind_names[l->kind],
		    srv->shutting_down ? "shutting_down" : guard_verdict_reason(v));
		/* Best effort, never blocks: the socket is non-blocking. On the
		 * implicit-TLS port a plaintext reply would be noise: just close. */
		if (l->kind != SMTP_LISTENER_SUBMISSIONS) {
			n = snprintf(reply, sizeof(reply), "421 4.7.0 %s Too many connections, try later\r\n",
			    cfg->hostname);
			(void)!write(fd, reply, (size_t)n);
		}
		if (v == GUARD_ACCEPT)
			guard_conn_close(srv->deps.guard, sa);
		metrics_inc("bulwark_connections_refused_total", v == GUARD_TOO_MANY_FROM_IP ?
		    "reason=\"too_many_from_ip\"" : "reason=\"too_many_connections\"");
		close(fd);
		return;
	}
	if (smtp_session_new(l, fd, sa, (socklen_t)salen) == NULL)
		guard_conn_close(srv->deps.guard, sa);
}

static void
smtp_server_accept_error_cb(struct evconnlistener *evl, void *arg)
{
	/* EMFILE and friends: log, keep listening (libevent retries). */
	log_warn("event=smtp.accept_error");
}

static int
smtp_server_bind(struct smtp_server *srv, enum smtp_listener_kind kind,
    const struct config_listen_list *list, char **error_r)
{
	for (size_t i = 0; i < list->n; i++) {
		const struct config_listen *cl = &list->v[i];
		struct smtp_listener *l;
		unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
		    LEV_OPT_DISABLED;

		if (cl->ss.ss_family == AF_INET6)
			flags |= LEV_OPT_BIND_IPV6ONLY;
		l = &srv->listeners[srv->nlisteners];
		l->srv = srv;
		l->kind = kind;
		l->text = cl->text;
		l->evl = evconnlistener_new_bind(srv->deps.base, smtp_server_accept_cb, l, flags,
		    1024, (const struct sockaddr *)&cl->ss, (int)cl->sslen);
		if (l->evl == NULL) {
			if (asprintf(error_r, "listen.%s: cannot listen on %s: %s", kind_names[kind],
			    cl->text, strerror(errno)) == -1)
				*error_r = NULL;
			return -1;
		}
		evconnlistener_set_error_cb(l->evl, smtp_server_accept_error_cb);
		srv->nlisteners++;
		/* Banned networks' SYNs dropped by the kernel (a failure is logged; accept still checks). */
		(void)guard_filter_attach(srv->deps.guard, evconnlistener_get_fd(l->evl));
	}
	return 0;
}

struct smtp_server *
smtp_server_new(const struct smtp_server_deps *deps, char **error_r)
{
	const struct config *cfg = deps->cfg;
	struct smtp_server *srv = calloc(1, sizeof(*srv));
	size_t n = cfg->listen.smtp.n + cfg->listen.submission.n + cfg->listen.submissions.n;

	if (srv == NULL)
		return NULL;
	srv->deps = *deps;
	srv->listeners = calloc(n > 0 ? n : 1, sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		goto fail;
	if (smtp_server_bind(srv, SMTP_LISTENER_MX, &cfg->listen.smtp, error_r) == -1 ||
	    smtp_server_bind(srv, SMTP_LISTENER_SUBMISSION, &cfg->listen.submission, error_r) == -1 ||
	    smtp_server_bind(srv, SMTP_LISTENER_SUBMISSIONS, &cfg->listen.submissions, error_r) == -1)
		goto fail;
	return srv;
fail:
	smtp_server_free(&srv);
	return NULL;
}

void
smtp_server_attach(struct smtp_server *srv, struct directory *dir, struct queue *queue,
    struct pool *auth_pool)
{
	srv->deps.auth_pool = auth_pool;
	srv->deps.dir = dir;
	srv->deps.queue = queue;
}

void
smtp_server_set_monitor(struct smtp_server *srv, struct queue_monitor *monitor)
{
	srv->deps.monitor = monitor;
}

int
smtp_server_start(struct smtp_server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		if (evconnlistener_enable(srv->listeners[i].evl) == -1)
			return -1;
	return 0;
}

void
smtp_server_log_listeners(const struct smtp_server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		log_info("event=listen service=%s address=%s", kind_names[srv->listeners[i].kind],
		    srv->listeners[i].text);
}

void
smtp_server_shutdown(struct smtp_server *srv)
{
	struct smtp_session *s, *next;

	srv->shutting_down = true;
	for (size_t i = 0; i < srv->nlisteners; i++) {
		guard_filter_detach(srv->deps.guard, evconnlistener_get_fd(srv->listeners[i].evl));
		evconnlistener_free(srv->listeners[i].evl);
		srv->listeners[i].evl = NULL;
	}
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		smtp_session_shutdown(s);
	}
}

size_t
smtp_server_sessions(const struct smtp_server *srv)
{
	return srv->nsessions;
}

void
smtp_server_free(struct smtp_server **srvp)
{
	struct smtp_server *srv = *srvp;

	if (srv == NULL)
		return;
	*srvp = NULL;
	while (srv->sessions != NULL) {
		struct smtp_session *s = srv->sessions;

		smtp_session_free(&s);
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
