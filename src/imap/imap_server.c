/*
 * imap_server.c: the IMAP listeners (listen.imap, listen.imaps). Binds before
 * privileges are dropped, through the guard's listener helper
 * (guard_listener_new: the kernel ban filter, bans and connection limits
 * checked at accept before any session memory or TLS work is spent), and
 * owns the list of live sessions for shutdown. RFC 3501, RFC 8314 (implicit TLS).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "guard/guard.h"
#include "imap/imap_session_private.h"

static const char *const kind_names[] = {
	[IMAP_LISTENER_IMAP] = "imap",
	[IMAP_LISTENER_IMAPS] = "imaps",
};

/* A client the guard let in: its session (or -1, and the slot is released). */
static int
imap_server_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	return imap_session_new(arg, fd, sa, salen) != NULL ? 0 : -1;
}

static int
imap_server_bind(struct imap_server *srv, enum imap_listener_kind kind,
    const struct config_listen_list *list, char **error_r)
{
	const struct config *cfg = srv->deps.cfg;
	/* Counted apart from SMTP (deps.conns): an office behind one NAT with
	 * many mail clients idling must not run out of SMTP connections. */
	struct guard_listener_params params = {
		.base = srv->deps.base, .guard = srv->deps.guard, .conns = srv->deps.conns,
		.max_per_ip = cfg->imap.max_connections_per_ip, .max_total = cfg->imap.max_connections,
		.protocol = "imap", .service = kind_names[kind], .shutting_down = &srv->shutting_down,
		/* Nothing in clear on imaps. */
		.refusal = kind == IMAP_LISTENER_IMAP ? "* BYE Too many connections, try later\r\n" : NULL,
		.accept = imap_server_accept,
	};

	for (size_t i = 0; i < list->n; i++) {
		struct imap_listener *l = &srv->listeners[srv->nlisteners];

		l->srv = srv;
		l->kind = kind;
		params.arg = l;
		if ((l->gl = guard_listener_new(&params, &list->v[i], error_r)) == NULL)
			return -1;
		srv->nlisteners++;
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
		if (guard_listener_enable(srv->listeners[i].gl) == -1)
			return -1;
	return 0;
}

void
imap_server_log_listeners(const struct imap_server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		guard_listener_log(srv->listeners[i].gl);
}

void
imap_server_shutdown(struct imap_server *srv)
{
	struct imap_session *s, *next;

	srv->shutting_down = true;
	for (size_t i = 0; i < srv->nlisteners; i++)
		guard_listener_free(&srv->listeners[i].gl);
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
	for (size_t i = 0; i < srv->nlisteners; i++)
		guard_listener_free(&srv->listeners[i].gl);
	free(srv->listeners);
	free(srv);
}
