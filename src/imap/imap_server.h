/*
 * imap_server.h: the IMAP listeners (listen.imap with STARTTLS, listen.imaps
 * with implicit TLS) and their sessions. The door the daemon uses; sessions
 * are private to src/imap.
 */
#ifndef BULWARK_IMAP_SERVER_H
#define BULWARK_IMAP_SERVER_H

#include <openssl/ssl.h>
#include <stddef.h>

struct event_base;
struct config;
struct guard;
struct pool;
struct imap_server;

struct imap_server_deps {
	struct event_base *base;
	const struct config *cfg;
	struct guard *guard;      /* bans and strikes, shared with SMTP */
	struct guard *conns;      /* IMAP's own connection counts (imap.max_connections*) */
	struct pool *auth_pool;   /* password checks, shared with SMTP AUTH */
	SSL_CTX *tls;
};

/* Bind every configured IMAP listener (before privileges are dropped). */
struct imap_server *imap_server_new(const struct imap_server_deps *deps, char **error_r);
/* The password-check pool, made after the privilege drop. */
void imap_server_attach(struct imap_server *srv, struct pool *auth_pool);
int imap_server_start(struct imap_server *srv);
/* "event=listen service=imap address=..." per listener. */
void imap_server_log_listeners(const struct imap_server *srv);
/* SIGTERM: stop accepting, "* BYE" to every session, close. */
void imap_server_shutdown(struct imap_server *srv);
size_t imap_server_sessions(const struct imap_server *srv);
void imap_server_free(struct imap_server **srv);

#endif
