/*
 * smtp_server.c: the SMTP listeners. Binds before privileges are dropped,
 * through the guard's listener helper (guard_listener_new: the kernel ban
 * filter, bans and connection limits checked at accept before any session
 * memory or TLS work is spent), and owns the list of live sessions for shutdown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "guard/guard.h"
#include "smtp/smtp_session_private.h"

static const char *const kind_names[] = {
	[SMTP_LISTENER_MX] = "smtp",
	[SMTP_LISTENER_SUBMISSION] = "submission",
	[SMTP_LISTENER_SUBMISSIONS] = "submissions",
};

/* A client the guard let in: its session (or -1, and the slot is released). */
static int
smtp_server_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	return smtp_session_new(arg, fd, sa, salen) != NULL ? 0 : -1;
}

static int
smtp_server_bind(struct smtp_server *srv, enum smtp_listener_kind kind,
    const struct config_listen_list *list, char **error_r)
{
	const struct config *cfg = srv->deps.cfg;
	char refusal[300];
	struct guard_listener_params params = {
		.base = srv->deps.base, .guard = srv->deps.guard, .conns = srv->deps.guard,
		.max_per_ip = cfg->smtp.max_connections_per_ip, .max_total = cfg->smtp.max_connections,
		.protocol = "smtp", .service = kind_names[kind], .shutting_down = &srv->shutting_down,
		.accept = smtp_server_accept,
	};

	/* On the implicit-TLS port a plaintext reply would be noise: none. */
	snprintf(refusal, sizeof(refusal), "421 4.7.0 %s Too many connections, try later\r\n",
	    cfg->hostname);
	params.refusal = kind != SMTP_LISTENER_SUBMISSIONS ? refusal : NULL;
	for (size_t i = 0; i < list->n; i++) {
		struct smtp_listener *l = &srv->listeners[srv->nlisteners];

		l->srv = srv;
		l->kind = kind;
		params.arg = l;
		if ((l->gl = guard_listener_new(&params, &list->v[i], error_r)) == NULL)
			return -1;
		srv->nlisteners++;
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
		if (guard_listener_enable(srv->listeners[i].gl) == -1)
			return -1;
	return 0;
}

void
smtp_server_log_listeners(const struct smtp_server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		guard_listener_log(srv->listeners[i].gl);
}

void
smtp_server_shutdown(struct smtp_server *srv)
{
	struct smtp_session *s, *next;

	srv->shutting_down = true;
	for (size_t i = 0; i < srv->nlisteners; i++)
		guard_listener_free(&srv->listeners[i].gl);
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
	for (size_t i = 0; i < srv->nlisteners; i++)
		guard_listener_free(&srv->listeners[i].gl);
	free(srv->listeners);
	free(srv);
}
