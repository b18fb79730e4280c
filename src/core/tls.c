/*
 * tls.c: TLS context set-up. Trusts the configured key files and data_dir;
 * the self-signed pair is only a bootstrap so STARTTLS works from minute one
 * (opportunistic TLS between MTAs does not verify, RFC 7435).
 */
#include "core/tls.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/bn.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"

static char *
tls_error(const char *what, const char *path)
{
	char *msg = NULL;
	unsigned long e = ERR_peek_last_error();
	char detail[256] = "";

	if (e != 0)
		ERR_error_string_n(e, detail, sizeof(detail));
	if (asprintf(&msg, "tls: %s %s: %s", what, path != NULL ? path : "",
	    e != 0 ? detail : strerror(errno)) == -1)
		msg = NULL;
	log_ssl_errors("tls.setup");
	return msg;
}

/* Write a PEM through fs_write_file_durable so it is whole or absent. */
static int
tls_write_pem(const char *dir, const char *name, EVP_PKEY *key, X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int ret = -1;

	if (bio == NULL)
		return -1;
	if (key != NULL && !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		goto out;
	if (cert != NULL && !PEM_write_bio_X509(bio, cert))
		goto out;
	len = BIO_get_mem_data(bio, &data);
	ret = fs_write_file_durable(dir, name, data, (size_t)len, 0600);
out:
	BIO_free(bio);
	return ret;
}

/* Make data_dir/tls/{key,cert}.pem: RSA 2048, CN=hostname, SAN dNSName. */
static int
tls_make_self_signed(const struct config *cfg, const char *dir, char **error_r)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX v3;
	char san[300];
	int ret = -1;

	if (fs_mkdir_p(dir, 0700) == -1) {
		*error_r = tls_error("cannot create", dir);
		return -1;
	}
	key = EVP_RSA_gen(2048);
	x = X509_new();
	if (key == NULL || x == NULL)
		goto fail;
	X509_set_version(x, 2);
	{
		unsigned char serial[16];
		BIGNUM *bn;

		RAND_bytes(serial, sizeof(serial));
		serial[0] &= 0x7f;
		bn = BN_bin2bn(serial, sizeof(serial), NULL);
		if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
			BN_free(bn);
			goto fail;
		}
		BN_free(bn);
	}
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 60L * 60 * 24 * 825);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)cfg->hostname, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	snprintf(san, sizeof(san), "DNS:%s", cfg->hostname);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		goto fail;
	if (!X509_sign(x, key, EVP_sha256()))
		goto fail;
	/* Key first: a cert without its key would be useless at next start. */
	if (tls_write_pem(dir, "key.pem", key, NULL) == -1 ||
	    tls_write_pem(dir, "cert.pem", NULL, x) == -1) {
		*error_r = tls_error("cannot write", dir);
		goto out;
	}
	log_info("event=tls.selfsigned dir=%s cn=%s", dir, cfg->hostname);
	ret = 0;
	goto out;
fail:
	*error_r = tls_error("cannot make self-signed certificate in", dir);
out:
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}

SSL_CTX *
tls_server_ctx_new(const struct config *cfg, char **error_r)
{
	char dir[PATH_MAX], certbuf[PATH_MAX], keybuf[PATH_MAX];
	const char *cert = cfg->tls_cert, *key = cfg->tls_key;
	SSL_CTX *ctx;

	if (cert == NULL || key == NULL) {
		snprintf(dir, sizeof(dir), "%s/tls", cfg->data_dir);
		snprintf(certbuf, sizeof(certbuf), "%s/tls/cert.pem", cfg->data_dir);
		snprintf(keybuf, sizeof(keybuf), "%s/tls/key.pem", cfg->data_dir);
		cert = certbuf;
		key = keybuf;
		if ((access(cert, R_OK) == -1 || access(key, R_OK) == -1) &&
		    tls_make_self_signed(cfg, dir, error_r) == -1)
			return NULL;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = tls_error("cannot create context", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		*error_r = tls_error("cannot load certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		*error_r = tls_error("cannot load key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = tls_error("key does not match certificate", cert);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_describe(SSL *ssl, char *buf, size_t buflen)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int alg = 0, bits = c != NULL ? SSL_CIPHER_get_bits(c, &alg) : 0;

	snprintf(buf, buflen, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
	    c != NULL ? SSL_CIPHER_get_name(c) : "unknown", bits, alg);
}

struct bufferevent *
tls_bufferevent_accept(struct event_base *base, int fd, SSL_CTX *ctx)
{
	struct bufferevent *bev;
	SSL *ssl;

	if (ctx == NULL)
		return bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL)
		SSL_free(ssl);
	return bev;
}

struct bufferevent *
tls_bufferevent_filter(struct event_base *base, struct bufferevent *bev, SSL *ssl)
{
	struct bufferevent *tlsbev = bufferevent_openssl_filter_new(base, bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);

	if (tlsbev == NULL)
		SSL_free(ssl);
	return tlsbev;
}

bool
tls_bufferevent_drained(struct bufferevent *bev)
{
	struct bufferevent *under = bufferevent_get_underlying(bev);

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return false;
	return under == NULL || evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

bool
tls_bufferevent_error(struct bufferevent *bev, char *buf, size_t buflen)
{
	unsigned long e = bufferevent_get_openssl_error(bev);

	if (e == 0)
		return false;
	ERR_error_string_n(e, buf, buflen);
	while (bufferevent_get_openssl_error(bev) != 0)
		;
	return true;
}
