/*
 * imap_mime.h: the MIME structure of one message as IMAP needs it (RFC 3501
 * section 7.4.2 ENVELOPE/BODYSTRUCTURE, section 6.4.5 BODY[section]), with
 * byte offsets into the raw message so sections are returned byte-exact.
 * Pure: works on a buffer, never touches files or sockets; fuzzable.
 * Trusts nothing in the message: malformed MIME gives a best-effort tree,
 * never a crash. RFC 2045-2049, RFC 2047 (decoding for SEARCH), RFC 2231.
 */
#ifndef BULWARK_IMAP_MIME_H
#define BULWARK_IMAP_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* A parsed message: a tree of parts with offsets into msg. */
struct imap_mime;

/* Parse msg (CRLF line ends, as served over IMAP). NULL only on ENOMEM. */
struct imap_mime *imap_mime_parse(const char *msg, size_t len);
void imap_mime_free(struct imap_mime **mp);

/* Append the ENVELOPE / BODYSTRUCTURE (extended) / BODY (non-extended)
 * value, exactly as it goes on the wire after "ENVELOPE " etc.
 * 0 ok, -1 ENOMEM. */
int imap_mime_envelope(const struct imap_mime *m, struct evbuffer *out);
int imap_mime_bodystructure(const struct imap_mime *m, bool extended, struct evbuffer *out);

enum imap_section_kind {
	IMAP_SECTION_ALL = 0,          /* BODY[] or BODY[1.2] */
	IMAP_SECTION_HEADER,           /* BODY[HEADER], BODY[1.HEADER] */
	IMAP_SECTION_HEADER_FIELDS,    /* BODY[HEADER.FIELDS (A B)] */
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_TEXT,             /* BODY[TEXT], BODY[1.TEXT] */
	IMAP_SECTION_MIME,             /* BODY[1.MIME] */
};

#define IMAP_SECTION_DEPTH_MAX 32

struct imap_section {
	uint32_t part[IMAP_SECTION_DEPTH_MAX];  /* "1.2.3" -> {1,2,3} */
	size_t depth;                           /* 0: the whole message */
	enum imap_section_kind kind;
	const char *const *fields;              /* HEADER.FIELDS[.NOT] names */
	size_t nfields;
};

/* Append the bytes of section to out (RFC 3501 6.4.5; a part that does not
 * exist gives empty output, as Dovecot does). The caller applies <partial>.
 * 0 ok, -1 ENOMEM. */
int imap_mime_section(const struct imap_mime *m, const struct imap_section *sec,
    struct evbuffer *out);

/* SEARCH support (RFC 3501 6.4.4), case-insensitive substring matches on
 * UTF-8 needles after RFC 2047 / charset / transfer decoding. */
/* field NULL: any header (used by TEXT). */
bool imap_mime_header_contains(const struct imap_mime *m, const char *field,
    const char *needle);
/* Body text of the message (text parts decoded); with_headers for TEXT. */
bool imap_mime_body_contains(const struct imap_mime *m, const char *needle,
    bool with_headers);
/* The Date: header as a Unix time, or -1 if absent or unparseable
 * (SENTBEFORE/SENTON/SENTSINCE). The zone is disregarded (RFC 3501 6.4.4):
 * the date and time as written, counted as UTC; compare with UTC days. */
int64_t imap_mime_sent_date(const struct imap_mime *m);

#endif
