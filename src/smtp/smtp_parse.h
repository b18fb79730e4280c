/*
 * smtp_parse.h: pure parsers for SMTP command lines, paths and ESMTP
 * parameters (RFC 5321 4.1, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531
 * SMTPUTF8, RFC 3030 BDAT, RFC 3461 DSN parameters). They never touch a
 * socket and trust nothing: every input is a client's.
 * Convention: 1 done, 0 need more input, -1 error with *error_r set to a
 * complete reply text ("501 5.5.4 ...") suitable for the client.
 */
#ifndef BULWARK_SMTP_PARSE_H
#define BULWARK_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_LOCAL_MAX 64      /* RFC 5321 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX 255    /* RFC 5321 4.5.3.1.2 */
#define SMTP_PATH_MAX 256      /* RFC 5321 4.5.3.1.3, with the brackets */

/* ---- line reader: splits the input stream into command lines ---- */

/*
 * Incremental line splitter for the command phase. A line ends with CRLF
 * only: a bare LF or a bare CR inside a command line makes that line an
 * error, and never splits it in two (they are the building blocks of
 * smuggling and injection). Lines longer than max
 * octets (with the CRLF) are an error, detected as soon as max is passed;
 * the rest of that line is then skipped up to its end so the session can
 * answer and continue.
 */
struct smtp_line_reader {
	size_t max;          /* with CRLF; 1000 by default */
	char *buf;           /* max bytes */
	size_t len;
	bool saw_cr;
	bool skipping;       /* discarding the tail of an over-long line */
	int pending_error;   /* SMTP_LINE_ERR_* to report once the line ends */
};

enum smtp_line_error {
	SMTP_LINE_OK = 0,
	SMTP_LINE_ERR_TOO_LONG,  /* 500 5.5.2 */
	SMTP_LINE_ERR_BARE_LF,   /* 500 5.5.2 */
	SMTP_LINE_ERR_BARE_CR,   /* 500 5.5.2 */
	SMTP_LINE_ERR_NUL,       /* 500 5.5.2 */
};

int smtp_line_reader_init(struct smtp_line_reader *r, size_t max);
void smtp_line_reader_clear(struct smtp_line_reader *r);
/*
 * Feed up to len bytes; consumes bytes until a line ends (or all of them).
 * Returns 1 when a line is complete: *line_r (NUL-terminated, without CRLF,
 * valid until the next call) and *linelen_r are set. Returns -1 when a bad
 * line is complete (its bytes consumed, *code_r one of SMTP_LINE_ERR_*,
 * *error_r the reply). Returns 0 when it needs more. *consumed_r is always
 * set to how many bytes were used.
 */
int smtp_line_reader_feed(struct smtp_line_reader *r, const char *data, size_t len,
    size_t *consumed_r, const char **line_r, size_t *linelen_r,
    int *code_r, const char **error_r);

/* ---- commands ---- */

enum smtp_cmd {
	SMTP_CMD_UNKNOWN = 0,
	SMTP_CMD_HELO, SMTP_CMD_EHLO, SMTP_CMD_MAIL, SMTP_CMD_RCPT,
	SMTP_CMD_DATA, SMTP_CMD_BDAT, SMTP_CMD_RSET, SMTP_CMD_NOOP,
	SMTP_CMD_QUIT, SMTP_CMD_VRFY, SMTP_CMD_EXPN, SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS, SMTP_CMD_AUTH,
	/* HTTP verbs seen on an SMTP port: a cross-protocol attack, hang up. */
	SMTP_CMD_HTTP,
	SMTP_CMD_COUNT
};

/*
 * Split a command line into the verb (case-insensitive) and its argument
 * text (after exactly one SP; NULL if none). "MAIL FROM:" and "RCPT TO:"
 * keep "FROM:<...>"/"TO:<...>" in args for smtp_parse_mail/rcpt.
 * Returns the verb; SMTP_CMD_UNKNOWN for anything else.
 */
enum smtp_cmd smtp_parse_command(const char *line, size_t len, const char **args_r);
const char *smtp_cmd_name(enum smtp_cmd cmd);

/* ---- addresses ---- */

struct smtp_address {
	bool null_path;                       /* <> */
	bool postmaster_only;                 /* <Postmaster> (RFC 5321 4.1.1.3) */
	bool quoted_local;                    /* local part was a quoted-string */
	bool domain_literal;                  /* domain is [a.b.c.d] / [IPv6:...] */
	bool utf8;                            /* contains non-ASCII (needs SMTPUTF8) */
	char local[SMTP_LOCAL_MAX * 4 + 1];   /* dequoted local part, as written */
	char domain[SMTP_DOMAIN_MAX + 1];     /* lower-cased (ASCII), no trailing dot */
};

/*
 * Parse "FROM:<path> params" (MAIL) or "TO:<path> params" (RCPT) argument
 * text. Strict: RFC 5321 allows no space after the colon; exactly one is
 * tolerated (as Postfix does), never more; a source route (<@a,@b:u@d>) is parsed and dropped as
 * RFC 5321 C says; a domain must be a valid hostname (LDH labels, or
 * U-labels when SMTPUTF8) or an address literal; a trailing dot is refused;
 * MAIL allows <>, RCPT allows <Postmaster>. *params_r points at the text
 * after the path (after its SP), or NULL.
 * Returns 1, or -1 with *error_r a reply ("501 5.1.7 ..." for a bad sender,
 * "501 5.1.3 ..." for a bad recipient, "555 5.5.4 ..." for parameters).
 */
int smtp_parse_mail(const char *args, struct smtp_address *addr_r,
    const char **params_r, const char **error_r);
int smtp_parse_rcpt(const char *args, struct smtp_address *addr_r,
    const char **params_r, const char **error_r);

enum smtp_body_type {
	SMTP_BODY_7BIT = 0,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME,
};

struct smtp_mail_params {
	uint64_t size;              /* SIZE=, 0 if absent */
	enum smtp_body_type body;   /* BODY= */
	bool smtputf8;              /* SMTPUTF8 */
	char ret[8];                /* RET=FULL|HDRS or "" */
	char envid[101];            /* ENVID=xtext, decoded, or "" */
};

/*
 * Parse MAIL parameters ("SIZE=123 BODY=8BITMIME SMTPUTF8"). Unknown
 * keywords, repeats, bad values: -1 with "555 5.5.4 ..." in *error_r.
 * NULL or "" params is valid (all defaults).
 */
int smtp_parse_mail_params(const char *params, struct smtp_mail_params *p_r,
    const char **error_r);
/* RCPT parameters: NOTIFY= and ORCPT= (RFC 3461) are accepted and ignored,
 * anything else is 555 5.5.4. */
int smtp_parse_rcpt_params(const char *params, const char **error_r);

/*
 * HELO/EHLO argument: a domain (LDH labels, at least one dot unless
 * allow_single_label) or an address literal ([1.2.3.4], [IPv6:...]).
 * Returns 1 ok, -1 with *error_r "501 5.5.4 ...".
 */
int smtp_parse_helo(const char *args, bool allow_single_label, const char **error_r);

/* Is text a valid domain name (LDH labels, each <=63, total <=253)? */
bool smtp_domain_valid(const char *text, size_t len, bool allow_utf8);

/* BDAT argument "SIZE [LAST]". Returns 1, -1 with "501 5.5.4 ...". */
int smtp_parse_bdat(const char *args, uint64_t *size_r, bool *last_r,
    const char **error_r);

#endif
