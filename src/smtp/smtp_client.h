/*
 * smtp_client.h: the outbound SMTP client: one connection to one peer,
 * event-driven on the loop, carrying one transaction at a time and reusable
 * for the next. Trusts nothing the peer sends (bounded reply lines and
 * replies, timeouts on every step). RFC 5321, RFC 3207 STARTTLS
 * (opportunistic, RFC 7435), RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152
 * 8BITMIME, RFC 6531 SMTPUTF8, RFC 2034/3463 enhanced status codes.
 *
 * Lifetime: the client belongs to its caller. Callbacks run on the loop,
 * never from inside the smtp_client_* call that asked for them. Inside a
 * callback the caller may send, reset, quit or free the client.
 */
#ifndef BULWARK_SMTP_CLIENT_H
#define BULWARK_SMTP_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct smtp_client;

#define SMTP_CLIENT_LINE_MAX 4096     /* a reply line; RFC 5321 says 512 */
#define SMTP_CLIENT_REPLY_LINES_MAX 256
#define SMTP_CLIENT_TEXT_MAX 1024     /* reply text kept (lines joined by "\n") */

enum smtp_client_status {
	SMTP_CLIENT_OK = 0,        /* 2xx */
	SMTP_CLIENT_TEMPFAIL,      /* 4xx, connection lost, timeout, protocol error */
	SMTP_CLIENT_PERMFAIL,      /* 5xx, or refused here (size, 8bit, SMTPUTF8) */
};

const char *smtp_client_status_name(enum smtp_client_status status);

/* The outcome of one step: the server's reply, or our own verdict (code 0). */
struct smtp_client_reply {
	enum smtp_client_status status;
	int code;                          /* 250, 451, 550; 0: no reply from the server */
	char enhanced[16];                 /* "5.1.1", or "" */
	char text[SMTP_CLIENT_TEXT_MAX];   /* the reply text without code and enhanced
	                                      code, lines joined by "\n"; or what went wrong */
};

/* Timeouts in seconds; 0 means the default (RFC 5321 4.5.3.2). */
struct smtp_client_timeouts {
	int connect;     /* 30 (Postfix's smtp_connect_timeout) */
	int greeting;    /* 300: the 220 */
	int helo;        /* 300: EHLO/HELO, STARTTLS and its handshake, RSET, QUIT */
	int mail;        /* 300 */
	int rcpt;        /* 300 */
	int data_init;   /* 120: the 354 */
	int data_block;  /* 180: each write of the body making no progress */
	int data_final;  /* 600: the reply after the final "." */
};

struct smtp_client_options {
	struct smtp_client_timeouts timeouts;
	const char *log_id;     /* put in every log line (a queue id); NULL: none */
	bool no_starttls;       /* do not try STARTTLS (after a failed handshake) */
};

/* What the peer offered in its (last) EHLO reply. */
enum smtp_client_ext {
	SMTP_EXT_PIPELINING = 1 << 0,
	SMTP_EXT_SIZE = 1 << 1,
	SMTP_EXT_8BITMIME = 1 << 2,
	SMTP_EXT_SMTPUTF8 = 1 << 3,
	SMTP_EXT_STARTTLS = 1 << 4,
	SMTP_EXT_ENHANCEDSTATUSCODES = 1 << 5,
	SMTP_EXT_CHUNKING = 1 << 6,
	SMTP_EXT_DSN = 1 << 7,
};

struct smtp_ehlo {
	unsigned ext;        /* SMTP_EXT_* */
	uint64_t size_max;   /* SIZE's value; 0: no limit given */
};

/*
 * The connection is ready for transactions (greeting, EHLO or HELO,
 * STARTTLS when offered and tls_ctx is given, EHLO again) or failed; in
 * both cases reply says so (OK, or why not: a failure here is about this
 * peer, try the next one). After a failure only smtp_client_free is left.
 */
typedef void smtp_client_ready_cb(void *arg, struct smtp_client *client,
    const struct smtp_client_reply *reply);

/*
 * Connect to addr (port set) and get ready. tls_ctx: the client context
 * (smtp_client_tls_ctx_new), or NULL for plaintext only. peer_name: the
 * MX host name, for SNI and certificate verification (an IP literal works:
 * no SNI, the IP is checked). helo: our name. opts may be NULL.
 * NULL (errno set) only when nothing could be started; cb is then never called.
 */
struct smtp_client *smtp_client_connect(struct event_base *base, SSL_CTX *tls_ctx,
    const struct sockaddr *addr, socklen_t addrlen, const char *peer_name,
    const char *helo, const struct smtp_client_options *opts,
    smtp_client_ready_cb *cb, void *arg);

enum smtp_client_msg_flag {
	SMTP_CLIENT_MSG_8BITMIME = 1 << 0,   /* received as BODY=8BITMIME */
	SMTP_CLIENT_MSG_SMTPUTF8 = 1 << 1,   /* received with SMTPUTF8 */
};

struct smtp_client_message {
	const char *sender;            /* "" for the null sender <> */
	const char *const *rcpts;      /* local@domain as on the wire (a quoted local
	                                  part quoted), without brackets */
	size_t nrcpts;
	const char *data;              /* CRLF line ends only, not dot-stuffed */
	size_t len;
	unsigned flags;                /* SMTP_CLIENT_MSG_* */
};

/*
 * The transaction ended. msg: the reply to the final "." (or the reason no
 * message was sent: MAIL refused, no recipient accepted, refused here,
 * connection lost). rcpts[i]: the final outcome for recipient i: its RCPT
 * refusal, or, when RCPT was accepted, msg. Both valid during the callback.
 * smtp_client_usable() says whether the connection can carry another one.
 */
typedef void smtp_client_sent_cb(void *arg, struct smtp_client *client,
    const struct smtp_client_reply *msg, const struct smtp_client_reply *rcpts,
    size_t nrcpts);

/*
 * Send one message (MAIL, RCPT..., DATA, the dot-stuffed body). The
 * message, addresses and strings must stay valid until cb. Refused here,
 * before any command: a message bigger than the peer's SIZE (5.3.4), with
 * 8-bit bytes to a peer without 8BITMIME (5.6.3), needing SMTPUTF8 from a
 * peer without it (5.6.7), or with a bare CR or LF (a bug upstream: 5.6.0).
 * Returns 0, or -1 without calling cb: errno EBUSY (a transaction or a
 * callback is pending), ENOTCONN (the connection is gone: free the client),
 * EINVAL (no recipients), ENOMEM.
 */
int smtp_client_send(struct smtp_client *client, const struct smtp_client_message *msg,
    smtp_client_sent_cb *cb, void *arg);

typedef void smtp_client_reset_cb(void *arg, struct smtp_client *client,
    const struct smtp_client_reply *reply);
/*
 * RSET: a liveness check before reusing an idle connection. (A transaction
 * that failed half-way is reset by the next smtp_client_send by itself.)
 * 0, or -1 with errno EBUSY.
 */
int smtp_client_reset(struct smtp_client *client, smtp_client_reset_cb *cb, void *arg);

/* Ready, connected and not in a transaction: smtp_client_send will be tried. */
bool smtp_client_usable(const struct smtp_client *client);
/* The peer's EHLO (zeroes after HELO). */
const struct smtp_ehlo *smtp_client_ehlo(const struct smtp_client *client);
/*
 * "none" (no STARTTLS), "verified", or "unverified: REASON" (the
 * certificate did not verify against the system store or the peer name;
 * mail still goes, RFC 7435).
 */
const char *smtp_client_tls_verify(const struct smtp_client *client);
/* "TLSv1.3 with cipher ..." (tls_describe), or "" without TLS. */
const char *smtp_client_tls_desc(const struct smtp_client *client);
const char *smtp_client_peer_name(const struct smtp_client *client);

/* Say QUIT and close when the peer answers (or after a few seconds); the
 * client frees itself. *client is set to NULL. No callback follows. */
void smtp_client_quit(struct smtp_client **client);
/* Close now (no QUIT) and free. No callback follows. */
void smtp_client_free(struct smtp_client **client);
/*
 * Clients not yet freed, those finishing a QUIT included (a quitting client
 * is gone within 10 s). At shutdown, run the loop until this is 0 (or give
 * up) before freeing the event base.
 */
size_t smtp_client_count(void);

/*
 * The client TLS context: TLS 1.2 minimum, the system trust store (or
 * cafile, for tests), no verification failure ever fatal (the result is
 * read after the handshake). NULL with a malloc'd *error_r.
 */
SSL_CTX *smtp_client_tls_ctx_new(const char *cafile, char **error_r);

/* ---- pure parsers (smtp_client_parse.c), exposed for tests and fuzzing ---- */

/*
 * Incremental reply reader. A line ends with CRLF (a bare LF is tolerated
 * from servers); a line longer than SMTP_CLIENT_LINE_MAX, a line without a
 * valid code ("[2-5][0-9][0-9]" then " ", "-" or the end), a continuation
 * line whose code differs, a NUL, or more than SMTP_CLIENT_REPLY_LINES_MAX
 * lines is an error. Text past SMTP_CLIENT_TEXT_MAX is dropped (it is only
 * for people). Enhanced codes are taken from the first line when their class
 * matches the reply code, and removed from every line.
 */
struct smtp_reply_parser {
	char line[SMTP_CLIENT_LINE_MAX + 1];
	size_t len;
	bool skipping_cr;
	int nlines;
	struct smtp_client_reply reply;   /* being built */
	size_t textlen;
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);
/*
 * Feed bytes; stops after a complete reply. 1: *reply_r is complete (and
 * the parser is ready for the next), 0: all consumed, more needed, -1:
 * malformed, *error_r says why. *consumed_r is always set.
 */
int smtp_reply_parser_feed(struct smtp_reply_parser *p, const char *data, size_t len,
    size_t *consumed_r, struct smtp_client_reply *reply_r, const char **error_r);

/*
 * The keywords of an EHLO reply's text (as the reply parser joins it: the
 * greeting line, then one keyword line each). Case-insensitive; unknown
 * keywords are ignored; "SIZE" with no or a bad number means no limit.
 */
void smtp_client_parse_ehlo(const char *text, struct smtp_ehlo *ehlo_r);

/*
 * Dot-stuffing for DATA (RFC 5321 4.5.2): every line starting with "." gets
 * another. Input must be CRLF-only; a bare CR or LF is an error (-1).
 * smtp_dotstuff_finish ends the body: CRLF if the input did not end with
 * one, then ".\r\n". emit gets the output in pieces.
 */
typedef void smtp_dotstuff_emit_fn(void *ctx, const char *data, size_t len);

struct smtp_dotstuff {
	bool bol;       /* at the beginning of a line */
	bool cr;        /* the last byte was a CR */
	smtp_dotstuff_emit_fn *emit;
	void *ctx;
};

void smtp_dotstuff_init(struct smtp_dotstuff *d, smtp_dotstuff_emit_fn *emit, void *ctx);
int smtp_dotstuff_feed(struct smtp_dotstuff *d, const char *data, size_t len);
int smtp_dotstuff_finish(struct smtp_dotstuff *d);

/*
 * One pass over a message: *has_8bit_r when a byte is >= 0x80; returns -1
 * at the first bare CR or LF (with *offset_r), else 0.
 */
int smtp_client_scan_message(const char *data, size_t len, bool *has_8bit_r,
    size_t *offset_r);

#endif
