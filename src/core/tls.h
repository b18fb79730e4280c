/*
 * tls.h: the server's TLS context (OpenSSL 3). Loads the configured pair,
 * or makes and keeps a self-signed one in data_dir/tls on first start.
 * TLS 1.2 minimum (RFC 8996), server cipher preference.
 */
#ifndef BULWARK_TLS_H
#define BULWARK_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

struct config;

/* NULL on failure with a malloc'd *error_r (OpenSSL's queue is logged). */
SSL_CTX *tls_server_ctx_new(const struct config *cfg, char **error_r);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for Received. */
void tls_describe(SSL *ssl, char *buf, size_t buflen);

/* ---- a server connection's bufferevent, plain or TLS: SMTP and IMAP alike ---- */

struct bufferevent;
struct event_base;

/*
 * An accepted socket's bufferevent (close on free, deferred callbacks): TLS
 * accepting with a new SSL of ctx (implicit TLS), or plain when ctx is NULL.
 * NULL on failure: fd is still the caller's to close.
 */
struct bufferevent *tls_bufferevent_accept(struct event_base *base, int fd, SSL_CTX *ctx);
/*
 * STARTTLS: a TLS filter (accepting) over bev, owning ssl and bev. NULL on
 * failure (ssl freed, bev untouched).
 */
struct bufferevent *tls_bufferevent_filter(struct event_base *base, struct bufferevent *bev,
    SSL *ssl);
/* True once everything written to bev has left, through a TLS filter too. */
bool tls_bufferevent_drained(struct bufferevent *bev);
/*
 * After BEV_EVENT_ERROR: the OpenSSL error behind it, if any, as text in buf
 * (true), with the rest of the bufferevent's error queue drained; false when
 * it was not a TLS error.
 */
bool tls_bufferevent_error(struct bufferevent *bev, char *buf, size_t buflen);

#endif
