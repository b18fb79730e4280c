/*
 * dkim_private.h: what the dkim_*.c files share and the unit tests reach:
 * a growing buffer, base64, the header/body split of a message, the RFC 6376
 * canonicalisations (3.4) and the tag=value lists (3.2). Not a door: other
 * modules use dkim.h.
 */
#ifndef BULWARK_DKIM_PRIVATE_H
#define BULWARK_DKIM_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/log.h"
#include "dkim/dkim.h"

#define DKIM_MAX_FIELDS 4096       /* header fields looked at in a message */
#define DKIM_MAX_TAGS 32           /* tags in a signature or a key record */
#define DKIM_MAX_TAG_NAME 16

enum dkim_canon {
	DKIM_CANON_SIMPLE,
	DKIM_CANON_RELAXED,
};

/* ---- dkim_key.c ---- */

struct dkim_key {
	char *domain;            /* lower case */
	char *selector;
	char *path;
	enum dkim_alg alg;
	EVP_PKEY *pkey;
};

/* ---- dkim_buf.c ---- */

/* A growing byte string; after a failed allocation it stays empty and oom. */
struct dkim_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void dkim_buf_add(struct dkim_buf *b, const void *p, size_t n);
void dkim_buf_adds(struct dkim_buf *b, const char *s);
void dkim_buf_addc(struct dkim_buf *b, char c);
void dkim_buf_addf(struct dkim_buf *b, const char *fmt, ...) LOG_PRINTF(2, 3);
/* Append the base64 of p (RFC 4648, padded, no line breaks). */
void dkim_buf_base64(struct dkim_buf *b, const unsigned char *p, size_t n);
/* The NUL-terminated contents, handed over (the buffer is emptied); NULL if oom. */
char *dkim_buf_steal(struct dkim_buf *b);
void dkim_buf_free(struct dkim_buf *b);
/*
 * Decode base64 ignoring SP, HTAB, CR and LF (folding); strict alphabet and
 * padding. 0 with a malloc'd *out_r (of *outlen_r bytes, maybe 0), or -1.
 */
int dkim_buf_base64_decode(const char *s, size_t n, unsigned char **out_r,
    size_t *outlen_r);
/* The first queued OpenSSL error as text (or fallback), the queue cleared. */
const char *dkim_buf_ssl_error(char *buf, size_t buflen, const char *fallback);

/* ---- dkim_msg.c: the header fields of a message (RFC 5322 2.2) ---- */

struct dkim_field {
	const char *p;           /* the field as it came, continuation lines included */
	size_t len;              /* up to and including its final CRLF, if any */
	size_t name_len;         /* the name before ':' without trailing WSP; 0: no ':' */
};

struct dkim_msg {
	struct dkim_field *fields;
	size_t nfields;
	bool truncated;          /* more than DKIM_MAX_FIELDS fields: the rest unread */
	const char *body;        /* after the empty line; empty if there is none */
	size_t body_len;
};

/* Split msg into its header fields and body. 0, or -1 when out of memory. */
int dkim_msg_parse(const char *msg, size_t len, struct dkim_msg *m);
void dkim_msg_clear(struct dkim_msg *m);
/* True if f is named name (ASCII case-insensitive). */
bool dkim_msg_field_is(const struct dkim_field *f, const char *name, size_t name_len);
/*
 * Append the canonical form of the fields named by h (n names) to out,
 * RFC 6376 5.4.2: the k-th mention of a name takes the k-th instance from
 * the bottom; a mention with no instance left adds nothing. Each field ends
 * in CRLF.
 */
void dkim_msg_canon_fields(const struct dkim_msg *m, enum dkim_canon canon,
    const char *const *h, const size_t *hlen, size_t n, struct dkim_buf *out);

/* ---- dkim_canon.c: RFC 6376 3.4 ---- */

/*
 * Append the canonical form of one header field (raw, as in the message,
 * with or without its final CRLF) to out; with crlf, end it in CRLF, else
 * not (the signature field itself is hashed without one).
 */
void dkim_canon_header(enum dkim_canon canon, const char *raw, size_t len, bool crlf,
    struct dkim_buf *out);

typedef void dkim_canon_sink(void *ctx, const void *p, size_t n);

/* The body canonicaliser: feed it bytes, it feeds the sink (a hash) the result. */
struct dkim_canon_body {
	enum dkim_canon canon;
	dkim_canon_sink *sink;
	void *ctx;
	uint64_t limit;          /* l=: bytes passed on at most (UINT64_MAX: all) */
	uint64_t total;          /* canonical length so far, past the limit too */
	uint64_t empty_lines;    /* empty lines held back: they count only if more follows */
	bool cr;                 /* the last byte was a CR, held back */
	bool line;               /* the current line has content */
	bool wsp;                /* relaxed: white space held back in this line */
	size_t blen;
	char buf[4096];
};

void dkim_canon_body_init(struct dkim_canon_body *b, enum dkim_canon canon,
    uint64_t limit, dkim_canon_sink *sink, void *ctx);
void dkim_canon_body_update(struct dkim_canon_body *b, const char *p, size_t n);
/* End of the body: the last line and the final CRLF rules; flushes the sink. */
void dkim_canon_body_final(struct dkim_canon_body *b);

/* ---- dkim_tag.c: tag=value lists (RFC 6376 3.2) ---- */

struct dkim_tag {
	char name[DKIM_MAX_TAG_NAME + 1];
	const char *value;       /* trimmed of white space; folding inside kept */
	size_t value_len;
	size_t start, end;       /* in the input: just after '=', and the value's end */
};

struct dkim_tags {
	struct dkim_tag t[DKIM_MAX_TAGS];
	size_t n;
};

/* Parse a tag list; 0, or -1 with a fixed *error_r. */
int dkim_tag_parse(const char *s, size_t len, struct dkim_tags *tags,
    const char **error_r);
/* The tag named name (case-sensitive), or NULL. */
const struct dkim_tag *dkim_tag_get(const struct dkim_tags *tags, const char *name);
/* The value with every white space byte removed, malloc'd; NULL: no memory. */
char *dkim_tag_compact(const struct dkim_tag *t);
/* True if the colon-separated list value (white space ignored) contains word. */
bool dkim_tag_list_has(const char *value, size_t len, const char *word, bool nocase);

#endif
