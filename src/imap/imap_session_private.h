/*
 * imap_session_private.h: the IMAP session, shared by imap_session.c (I/O,
 * lifetime, the state), imap_commands.c (the command table), imap_auth.c,
 * imap_fetch.c, imap_search.c and imap_server.c. Nothing outside src/imap
 * sees it.
 */
#ifndef BULWARK_IMAP_SESSION_PRIVATE_H
#define BULWARK_IMAP_SESSION_PRIVATE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/log.h"
#include "imap/imap_parse.h"
#include "imap/imap_server.h"
#include "imap/imap_store.h"

struct bufferevent;
struct event;
struct evbuffer;
struct evconnlistener;

#define IMAP_OUTPUT_HIGH_WATER (256 * 1024)   /* stop producing/reading above this */
#define IMAP_SLICE_US 20000   /* a long FETCH or SEARCH yields the loop after this long */

enum imap_listener_kind {
	IMAP_LISTENER_IMAP = 0,    /* STARTTLS */
	IMAP_LISTENER_IMAPS,       /* implicit TLS */
};

/* RFC 3501 3: the protocol state. Changed only by imap_session_enter_state. */
enum imap_state {
	IMAP_STATE_NOT_AUTHENTICATED = 0,
	IMAP_STATE_AUTHENTICATED,
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT,
};

/* What the session reads next (not a protocol state: how input is taken). */
enum imap_input {
	IMAP_INPUT_COMMAND = 0,    /* commands, through the parser */
	IMAP_INPUT_SASL,           /* AUTHENTICATE: one base64 line */
	IMAP_INPUT_IDLE,           /* IDLE: waiting for DONE */
	IMAP_INPUT_WAIT,           /* nothing: a password check, a long FETCH, a TLS handshake */
};

struct imap_listener {
	struct imap_server *srv;
	enum imap_listener_kind kind;
	struct evconnlistener *evl;
	char *text;
};

struct imap_server {
	struct imap_server_deps deps;
	struct imap_listener *listeners;
	size_t nlisteners;
	struct imap_session *sessions;
	size_t nsessions;
	bool shutting_down;
};

struct imap_fetch_job;
struct imap_search_job;

struct imap_session {
	struct imap_session *prev, *next;
	struct imap_server *srv;
	const struct config *cfg;
	enum imap_listener_kind kind;
	enum imap_state state;
	enum imap_input input;
	char id[13];
	struct bufferevent *bev;
	struct event *timer;           /* inactivity; the drain while closing */
	struct event *idle_poll;       /* IDLE: the 1 s look at the mailbox */
	struct sockaddr_storage peer;
	char ip[64];
	char local_ip[64];
	bool trusted;                  /* client in mynetworks */
	bool tls;
	bool tls_handshake;            /* STARTTLS handshake running */
	char tls_desc[160];
	int errors;
	unsigned long ncommands;
	struct imap_parser parser;
	bool closing;
	int close_ticks;
	bool dead;                     /* connection gone while a pool job holds us */
	bool async_pending;            /* a pool job holds a pointer to us */
	bool slot_released;
	bool bye_after;                /* shutdown while busy: BYE when it ends */

	char tag[IMAP_TAG_MAX + 1];    /* the command in progress (AUTHENTICATE, IDLE, FETCH) */
	bool uid_cmd;

	/* after LOGIN */
	char account[320];
	bool suspended;
	struct imap_store *store;
	struct imap_mailbox *mb;
	bool readonly;
	bool condstore;                /* ENABLE CONDSTORE or a CONDSTORE-using command */
	uint32_t *saved;               /* the last SEARCH result, UIDs (RFC 5182 "$") */
	size_t nsaved;
	size_t nkeywords;              /* keywords announced in the last FLAGS response */

	struct imap_fetch_job *fetch;  /* a FETCH waiting for the client to read */
	struct imap_search_job *search; /* a SEARCH going on in slices */
	struct event *work;            /* runs the next slice of a FETCH or SEARCH */
};

/* ---- imap_session.c ---- */
struct imap_session *imap_session_new(struct imap_listener *l, int fd, const struct sockaddr *sa,
    socklen_t salen);
void imap_session_enter_state(struct imap_session *s, enum imap_state state);
struct evbuffer *imap_session_out(struct imap_session *s);
void imap_session_printf(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "TAG OK ...", "TAG NO ..." (the tag is the command's) */
void imap_session_tagged(struct imap_session *s, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A tagged BAD (or NO) for a client mistake: counts toward imap.max_errors. */
void imap_session_error(struct imap_session *s, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]" of the selected mailbox. */
void imap_session_flags_response(struct imap_session *s);
/* The callbacks that write untagged updates to the session (ctx: the session). */
extern const struct imap_sync_cb imap_session_sync_cbs;
/* Untagged updates of the selected mailbox (RFC 3501 7.3, 7.4.1). */
void imap_session_sync(struct imap_session *s, bool allow_expunge);
/* Close after the output drains ("* BYE" already written). */
void imap_session_close(struct imap_session *s);
void imap_session_strike(struct imap_session *s, int what);
void imap_session_process(struct imap_session *s);
void imap_session_start_tls(struct imap_session *s, const char *tag);
void imap_session_shutdown(struct imap_session *s);
void imap_session_free(struct imap_session **s);
/* Run the next slice of the FETCH or SEARCH in progress from the loop, soon. */
void imap_session_schedule(struct imap_session *s);
/* Input is taken again (after a pool job, a FETCH, IDLE). */
void imap_session_resume(struct imap_session *s);
/* IDLE (RFC 2177): start the 1 s poll; DONE ends it. */
void imap_session_idle_start(struct imap_session *s, const char *tag);
void imap_session_unselect(struct imap_session *s);

/* ---- output helpers (imap_session.c) ---- */
/* An astring: quoted when it can be, a literal otherwise. */
void imap_write_string(struct evbuffer *out, const char *s, size_t len);
/* "(\Seen \Deleted kw)" */
void imap_write_flags(struct evbuffer *out, uint32_t flags, const char *const *keywords);
/* "17-Jul-1996 02:44:25 +0000" */
void imap_write_date(struct evbuffer *out, int64_t t);

/* ---- imap_auth.c ---- */
void imap_auth_login(struct imap_session *s, const char *tag, const char *user, size_t userlen,
    const char *password, size_t passlen);
void imap_auth_authenticate(struct imap_session *s, const char *tag, const char *mech,
    const char *initial);
void imap_auth_sasl_line(struct imap_session *s, const char *line, size_t len);
/* Before TLS and not from mynetworks: no LOGIN, no AUTHENTICATE. */
bool imap_auth_allowed(const struct imap_session *s);

/* ---- imap_commands.c ---- */
void imap_command_dispatch(struct imap_session *s, const char *tag, const char *name,
    struct imap_arg *args, size_t nargs);
void imap_command_capability_list(struct imap_session *s, struct evbuffer *out);

/* ---- imap_fetch.c ---- */
/* FETCH / UID FETCH: starts the job; it continues from the write callback. */
void imap_fetch_start(struct imap_session *s, const char *tag, bool uid,
    const struct imap_arg *args, size_t nargs);
/* Produce more output; true when the job finished (and was freed). */
bool imap_fetch_continue(struct imap_session *s);
void imap_fetch_free(struct imap_fetch_job **job);
/* The seqs (ascending) of set in the selected mailbox; n_r 0 with NULL is fine. */
int imap_session_seqs(struct imap_session *s, const struct imap_seqset *set, bool uid,
    uint32_t **seqs_r, size_t *n_r);
/* One FETCH response of only FLAGS (and UID, MODSEQ once CONDSTORE is on),
 * for unsolicited updates. */
void imap_fetch_flags_response(struct imap_session *s, uint32_t seq, bool with_uid);
/* The same after STORE; silent: only UID and MODSEQ (RFC 7162 3.1.3). */
void imap_fetch_store_response(struct imap_session *s, uint32_t seq, bool with_uid, bool silent);
/* The same into any buffer (MOVE gathers its untagged responses first). */
void imap_fetch_flags_write(struct evbuffer *out, struct imap_session *s, uint32_t seq,
    bool with_uid, bool silent);

/* ---- imap_search.c ---- */
void imap_search_command(struct imap_session *s, const char *tag, bool uid,
    const struct imap_arg *args, size_t nargs);
/* The next slice; true when the SEARCH finished (and was freed). */
bool imap_search_continue(struct imap_session *s);
void imap_search_free(struct imap_search_job **job);

#endif
