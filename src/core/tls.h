/*
 * tls.h: the server's TLS context (OpenSSL 3). Loads the configured pair,
 * or makes and keeps a self-signed one in data_dir/tls on first start.
 * TLS 1.2 minimum (RFC 8996), server cipher preference.
 */
#ifndef BULWARK_TLS_H
#define BULWARK_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

struct config;

/* NULL on failure with a malloc'd *error_r (OpenSSL's queue is logged). */
SSL_CTX *tls_server_ctx_new(const struct config *cfg, char **error_r);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for Received. */
void tls_describe(SSL *ssl, char *buf, size_t buflen);

#endif
