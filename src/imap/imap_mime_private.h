/*
 * imap_mime_private.h: the parsed MIME tree shared by imap_mime.c (structure,
 * BODYSTRUCTURE, sections), imap_mime_envelope.c (ENVELOPE, IMAP quoting)
 * and imap_mime_search.c (SEARCH through GMime's RFC 2047/charset code).
 */
#ifndef BULWARK_IMAP_MIME_PRIVATE_H
#define BULWARK_IMAP_MIME_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/imap_mime.h"

struct evbuffer;

enum {
	MIME_MULTIPART = 1 << 0,
	MIME_RFC822 = 1 << 1,
	MIME_TEXT = 1 << 2,
	MIME_IS_MIME = 1 << 3,
	MIME_DIGEST = 1 << 4,
};

struct mime_param {
	char *name;
	char *value;
};

/* One header field: offsets into the message (name, and the value after
 * the colon and leading blanks, continuation lines included). */
struct mime_field {
	size_t name_off, name_len;
	size_t value_off, value_len;   /* up to (not incl.) the final newline */
};

struct mime_part {
	struct mime_part *parent, *children, *next;
	unsigned flags;
	size_t hdr_off, hdr_len;        /* header block, blank line included */
	bool eoh;                       /* the header ended with a blank line */
	size_t body_off, body_len;
	uint64_t body_vsize;            /* body_len + bare LFs (CRLF size) */
	unsigned body_lines;
	struct mime_field *fields;
	size_t nfields;
	/* Content-* (values as in the header, unfolded); NULL when absent */
	char *type, *subtype;
	struct mime_param *params;
	size_t nparams;
	char *id, *description, *encoding, *md5, *location;
	char *disposition;
	struct mime_param *dparams;
	size_t ndparams;
	char **language;                /* NULL-terminated or NULL */
};

struct imap_mime {
	const char *msg;
	size_t len;
	struct mime_part *root;
	size_t nparts;                  /* bounded: hostile nesting */
};

/* imap_mime.c */
/* The unfolded raw value of field f (CR/LF kept), malloc'd, NUL-terminated. */
char *mime_field_value(const struct imap_mime *m, const struct mime_field *f);
/* The first field called name in part p, or NULL. */
const struct mime_field *mime_field_find(const struct imap_mime *m, const struct mime_part *p,
    const char *name);

/* imap_mime_envelope.c: IMAP strings the way Dovecot writes them */
int mime_write_nstring(struct evbuffer *out, const char *s);
int mime_write_nstring_nolf(struct evbuffer *out, const char *s);
int mime_write_for_humans(struct evbuffer *out, const char *s, size_t len);
int mime_write_envelope(const struct imap_mime *m, const struct mime_part *p,
    struct evbuffer *out);

#endif
