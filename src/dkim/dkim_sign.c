/*
 * dkim_sign.c: DKIM-Signature fields for outbound mail (RFC 6376 5; RFC 8463
 * for ed25519-sha256, which signs the SHA-256 hash of the header data).
 * Always relaxed/relaxed, the RFC 6376 5.4.1 header fields that are present
 * (and a few that carry the message's meaning), From over-signed so a second
 * From cannot be added; t=, never l= (a signed prefix invites appended
 * content) nor x=. Trusts its keys and the message's framing (CRLF lines, as
 * the spool keeps it); the fields it signs are bounded.
 */
#include "dkim/dkim_private.h"

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim.h"

#define FOLD_COLUMN 76
#define SIGN_MAX_H 256
#define SHA256_LEN 32

/* What is signed when present, in this order in h=. */
static const char *const sign_fields[] = {
	"From", "Reply-To", "Subject", "Date", "To", "Cc",
	"Resent-Date", "Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc",
	"Resent-Message-ID", "In-Reply-To", "References", "Message-ID", "Sender",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Unsubscribe-Post",
	"List-Subscribe", "List-Post", "List-Owner", "List-Archive",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-ID",
	"Content-Description",
};
#define NSIGN_FIELDS (sizeof(sign_fields) / sizeof(sign_fields[0]))

/* What all the keys share: the header data and h=, and the body hash. */
struct sign_common {
	struct dkim_buf hdata;   /* the canonical signed fields, each ending CRLF */
	const char *h[SIGN_MAX_H];
	size_t hlen[SIGN_MAX_H];
	size_t nh;
	char bh[2 * SHA256_LEN];
};

static char *
error_text(const char *fmt, ...) LOG_PRINTF(1, 2);

static char *
error_text(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static void
sink_digest(void *ctx, const void *p, size_t n)
{
	/* SHA-256 updates do not fail short of a broken library. */
	(void)EVP_DigestUpdate(ctx, p, n);
}

static int
sign_prepare(const char *msg, size_t len, struct sign_common *c, char **error_r)
{
	struct dkim_msg m;
	struct dkim_canon_body body;
	struct dkim_buf bh = { 0 };
	unsigned char hash[SHA256_LEN];
	EVP_MD_CTX *md = NULL;
	unsigned from = 0;

	/*
	 * A first line starting with white space would continue the field we
	 * put in front, and break it: such a message is not signed.
	 */
	if (len > 0 && (msg[0] == ' ' || msg[0] == '\t')) {
		*error_r = error_text("DKIM: the message starts with a continuation line: "
		    "not signed");
		return -1;
	}
	if (dkim_msg_parse(msg, len, &m) != 0) {
		*error_r = error_text("DKIM: out of memory");
		return -1;
	}
	if (m.truncated) {
		*error_r = error_text("DKIM: more than %d header fields: not signed",
		    DKIM_MAX_FIELDS);
		goto fail;
	}
	/* h=: each listed field as often as it occurs, From once more. */
	for (size_t k = 0; k < NSIGN_FIELDS; k++) {
		size_t nlen = strlen(sign_fields[k]), count = 0;

		for (size_t i = 0; i < m.nfields; i++)
			count += dkim_msg_field_is(&m.fields[i], sign_fields[k], nlen);
		if (k == 0) {
			from = (unsigned)count;
			count++;
		}
		if (count > SIGN_MAX_H - c->nh) {
			*error_r = error_text("DKIM: more than %d fields to sign: not signed",
			    SIGN_MAX_H);
			goto fail;
		}
		for (size_t i = 0; i < count; i++) {
			c->h[c->nh] = sign_fields[k];
			c->hlen[c->nh++] = nlen;
		}
	}
	if (from == 0) {
		*error_r = error_text("DKIM: the message has no From field: not signed");
		goto fail;
	}
	dkim_msg_canon_fields(&m, DKIM_CANON_RELAXED, c->h, c->hlen, c->nh, &c->hdata);
	if (c->hdata.oom) {
		*error_r = error_text("DKIM: out of memory");
		goto fail;
	}
	/* bh=: the relaxed body, whole. */
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		*error_r = error_text("DKIM: cannot hash the body");
		goto fail;
	}
	dkim_canon_body_init(&body, DKIM_CANON_RELAXED, UINT64_MAX, sink_digest, md);
	dkim_canon_body_update(&body, m.body, m.body_len);
	dkim_canon_body_final(&body);
	if (EVP_DigestFinal_ex(md, hash, NULL) != 1) {
		*error_r = error_text("DKIM: cannot hash the body");
		goto fail;
	}
	dkim_buf_base64(&bh, hash, sizeof(hash));
	if (bh.oom || bh.len >= sizeof(c->bh)) {
		*error_r = error_text("DKIM: out of memory");
		goto fail;
	}
	memcpy(c->bh, bh.p, bh.len + 1);
	dkim_buf_free(&bh);
	EVP_MD_CTX_free(md);
	dkim_msg_clear(&m);
	return 0;
fail:
	ERR_clear_error();
	dkim_buf_free(&bh);
	EVP_MD_CTX_free(md);
	dkim_msg_clear(&m);
	return -1;
}

/* Append token, after a space or, past the fold column, a CRLF and a TAB. */
static void
fold_add(struct dkim_buf *b, size_t *col, const char *token, bool space)
{
	size_t n = strlen(token);

	if (*col + n + (space ? 1 : 0) > FOLD_COLUMN && *col > 8) {
		dkim_buf_adds(b, "\r\n\t");
		*col = 8;
	} else if (space) {
		dkim_buf_addc(b, ' ');
		(*col)++;
	}
	dkim_buf_adds(b, token);
	*col += n;
}

/* The signature of data (RFC 8463: Ed25519 signs the SHA-256 hash of it). */
static int
sign_data(const struct dkim_key *key, const char *data, size_t len,
    unsigned char **sig_r, size_t *siglen_r, char **error_r)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char hash[SHA256_LEN], *sig = NULL;
	const unsigned char *in = (const unsigned char *)data;
	size_t siglen = 0;
	char ssl[256];

	ERR_clear_error();
	if (ctx == NULL)
		goto fail;
	if (key->alg == DKIM_ALG_ED25519_SHA256) {
		if (EVP_Digest(data, len, hash, NULL, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) != 1)
			goto fail;
		in = hash;
		len = sizeof(hash);
	} else if (EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, key->pkey) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
		goto fail;
	}
	if (EVP_DigestSign(ctx, NULL, &siglen, in, len) != 1 ||
	    (sig = malloc(siglen)) == NULL ||
	    EVP_DigestSign(ctx, sig, &siglen, in, len) != 1)
		goto fail;
	EVP_MD_CTX_free(ctx);
	*sig_r = sig;
	*siglen_r = siglen;
	return 0;
fail:
	*error_r = error_text("DKIM: signing with %s failed: %s", key->path,
	    dkim_buf_ssl_error(ssl, sizeof(ssl), "out of memory"));
	free(sig);
	EVP_MD_CTX_free(ctx);
	return -1;
}

/* Append key's DKIM-Signature field to out. */
static int
sign_one(const struct dkim_key *key, const struct sign_common *c, time_t now,
    struct dkim_buf *out, char **error_r)
{
	struct dkim_buf field = { 0 }, data = { 0 }, b64 = { 0 };
	unsigned char *sig = NULL;
	size_t siglen, col = strlen("DKIM-Signature:");
	char token[400];
	int rc = -1;

	dkim_buf_adds(&field, "DKIM-Signature:");
	fold_add(&field, &col, "v=1;", true);
	snprintf(token, sizeof(token), "a=%s;", dkim_alg_name(key->alg));
	fold_add(&field, &col, token, true);
	fold_add(&field, &col, "c=relaxed/relaxed;", true);
	snprintf(token, sizeof(token), "d=%s;", key->domain);
	fold_add(&field, &col, token, true);
	snprintf(token, sizeof(token), "s=%s;", key->selector);
	fold_add(&field, &col, token, true);
	snprintf(token, sizeof(token), "t=%lld;", (long long)now);
	fold_add(&field, &col, token, true);
	for (size_t i = 0; i < c->nh; i++) {
		snprintf(token, sizeof(token), "%s%.*s%s", i == 0 ? "h=" : "",
		    (int)c->hlen[i], c->h[i], i + 1 < c->nh ? ":" : ";");
		fold_add(&field, &col, token, i == 0);
	}
	snprintf(token, sizeof(token), "bh=%s;", c->bh);
	fold_add(&field, &col, token, true);
	fold_add(&field, &col, "b=", true);
	/* What is signed: the fields, then this one with b= empty and no CRLF. */
	dkim_buf_add(&data, c->hdata.p, c->hdata.len);
	dkim_canon_header(DKIM_CANON_RELAXED, field.p, field.len, false, &data);
	if (field.oom || data.oom) {
		*error_r = error_text("DKIM: out of memory");
		goto out;
	}
	if (sign_data(key, data.p, data.len, &sig, &siglen, error_r) != 0)
		goto out;
	dkim_buf_base64(&b64, sig, siglen);
	for (size_t i = 0; i < b64.len; ) {
		size_t room = FOLD_COLUMN > col ? FOLD_COLUMN - col : 0;

		if (room < 8) {
			dkim_buf_adds(&field, "\r\n\t");
			col = 8;
			continue;
		}
		if (room > b64.len - i)
			room = b64.len - i;
		dkim_buf_add(&field, b64.p + i, room);
		col += room;
		i += room;
	}
	dkim_buf_adds(&field, "\r\n");
	if (field.oom || b64.oom) {
		*error_r = error_text("DKIM: out of memory");
		goto out;
	}
	dkim_buf_add(out, field.p, field.len);
	rc = 0;
out:
	free(sig);
	dkim_buf_free(&field);
	dkim_buf_free(&data);
	dkim_buf_free(&b64);
	return rc;
}

int
dkim_sign_keys(struct dkim_key *const *keys, size_t nkeys, const char *msg,
    size_t len, time_t now, char **headers_r, char **error_r)
{
	struct sign_common c = { 0 };
	struct dkim_buf out = { 0 };

	*headers_r = NULL;
	if (nkeys == 0) {
		*error_r = error_text("DKIM: no key to sign with");
		return -1;
	}
	if (sign_prepare(msg, len, &c, error_r) != 0)
		goto fail;
	for (size_t i = 0; i < nkeys; i++)
		if (sign_one(keys[i], &c, now, &out, error_r) != 0)
			goto fail;
	if ((*headers_r = dkim_buf_steal(&out)) == NULL) {
		*error_r = error_text("DKIM: out of memory");
		goto fail;
	}
	dkim_buf_free(&c.hdata);
	return 0;
fail:
	dkim_buf_free(&c.hdata);
	dkim_buf_free(&out);
	return -1;
}

int
dkim_sign(const struct dkim_key *key, const char *msg, size_t len, time_t now,
    char **header_r, char **error_r)
{
	struct dkim_key *const keys[1] = { (struct dkim_key *)key };

	return dkim_sign_keys(keys, 1, msg, len, now, header_r, error_r);
}
