/*
 * http_server.h: the small web side on listen.http (libmicrohttpd, its own
 * thread): GET /metrics (Prometheus text, http.metrics_allow only),
 * GET /confirm?token=T (a page with one confirm button) and POST /confirm
 * (uses the token once and confirms the account; a GET never confirms, so
 * mail scanners that prefetch links do not).
 */
#ifndef BULWARK_HTTP_SERVER_H
#define BULWARK_HTTP_SERVER_H

struct config;
struct http_server;

/*
 * Bind every listen.http address (before privileges are dropped). Nothing is
 * served until http_server_start(). NULL with a malloc'd *error_r.
 * cfg must outlive the server. No listen.http addresses: a server that serves
 * nothing.
 */
struct http_server *http_server_new(const struct config *cfg, char **error_r);
/*
 * Open the server's own database handle (after the drop) and start serving:
 * one libmicrohttpd thread per address. 0 ok, -1 with a malloc'd *error_r.
 */
int http_server_start(struct http_server *srv, char **error_r);
/* Stop the threads, close the sockets and the database handle; *srv = NULL. */
void http_server_free(struct http_server **srv);

#endif
