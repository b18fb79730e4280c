/*
 * smtp_server.h: the SMTP listeners (MX, submission, submissions) and their
 * sessions. The door the daemon uses; sessions are private to src/smtp.
 */
#ifndef BULWARK_SMTP_SERVER_H
#define BULWARK_SMTP_SERVER_H

#include <openssl/ssl.h>
#include <stddef.h>

struct event_base;
struct config;
struct directory;
struct queue;
struct guard;
struct pool;
struct queue_monitor;
struct smtp_server;

struct smtp_server_deps {
	struct event_base *base;
	const struct config *cfg;
	struct directory *dir;
	struct queue *queue;
	struct guard *guard;
	struct pool *auth_pool;   /* password checks (argon2id): their own small, low-priority pool */
	SSL_CTX *tls;
	struct queue_monitor *monitor;   /* rate limits and detectors for authenticated submission */
};

/* Bind every configured SMTP listener (before privileges are dropped). */
struct smtp_server *smtp_server_new(const struct smtp_server_deps *deps, char **error_r);
/* Wire in the stores opened after the privilege drop. */
void smtp_server_attach(struct smtp_server *srv, struct directory *dir, struct queue *queue,
    struct pool *auth_pool);
/* Wire in the queue monitor (NULL: no rate limits, no detectors). */
void smtp_server_set_monitor(struct smtp_server *srv, struct queue_monitor *monitor);
/* Start accepting (after the rest of the daemon is ready). */
int smtp_server_start(struct smtp_server *srv);
/* Log one line per listener: "event=listen service=smtp address=..." */
void smtp_server_log_listeners(const struct smtp_server *srv);
/*
 * SIGTERM: stop accepting; idle sessions get 421 and close; sessions in a
 * transaction finish it (their reply is sent) and then get 421.
 */
void smtp_server_shutdown(struct smtp_server *srv);
size_t smtp_server_sessions(const struct smtp_server *srv);
/* Close everything now (sessions mid-DATA lose nothing: they never got 250). */
void smtp_server_free(struct smtp_server **srv);

#endif
