/*
 * smtp_session_private.h: the SMTP session, shared by smtp_session.c (I/O,
 * lifetime, states), smtp_commands.c (the command table) and smtp_server.c
 * (listeners). Nothing outside src/smtp sees it.
 */
#ifndef BULWARK_SMTP_SESSION_PRIVATE_H
#define BULWARK_SMTP_SESSION_PRIVATE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/log.h"
#include "monitor/queue_monitor.h"
#include "queue/queue.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_server.h"

#define SMTP_HEADERS_KEPT (16 * 1024)   /* of an authenticated user's message, for the monitor */

struct bufferevent;
struct event;
struct evconnlistener;

enum smtp_listener_kind {
	SMTP_LISTENER_MX = 0,
	SMTP_LISTENER_SUBMISSION,
	SMTP_LISTENER_SUBMISSIONS,
};

enum smtp_state {
	SMTP_STATE_PREGREET = 0,  /* greet pause: the client must stay silent */
	SMTP_STATE_GREETED,       /* waiting for HELO/EHLO */
	SMTP_STATE_HELO,          /* no transaction */
	SMTP_STATE_MAIL,          /* MAIL accepted */
	SMTP_STATE_RCPT,          /* at least one RCPT accepted */
	SMTP_STATE_DATA,          /* reading DATA content */
	SMTP_STATE_BDAT,          /* reading a BDAT chunk */
	SMTP_STATE_BDAT_WAIT,     /* between BDAT chunks */
	SMTP_STATE_COMMIT,        /* the spool is making the message durable */
	SMTP_STATE_AUTH_INPUT,    /* AUTH: waiting for the client's next SASL line */
	SMTP_STATE_AUTH_WAIT,     /* AUTH: the password check runs on the pool */
	SMTP_STATE_STARTTLS,      /* TLS handshake after STARTTLS */
	SMTP_STATE_CLOSING,       /* draining output, then freed */
};

struct smtp_listener {
	struct smtp_server *srv;
	enum smtp_listener_kind kind;
	struct evconnlistener *evl;
	char *text;
};

struct smtp_server {
	struct smtp_server_deps deps;
	struct smtp_listener *listeners;
	size_t nlisteners;
	struct smtp_session *sessions;  /* list of live sessions */
	size_t nsessions;
	bool shutting_down;
};

struct smtp_session {
	struct smtp_session *prev, *next;
	struct smtp_server *srv;
	const struct config *cfg;
	enum smtp_listener_kind kind;
	enum smtp_state state;
	char id[13];
	struct bufferevent *bev;
	struct event *timer;           /* greet pause, close drain */
	struct sockaddr_storage peer;
	char ip[64];                   /* client address text */
	char local_ip[64];
	bool trusted;                  /* client in mynetworks */
	bool tls;
	char tls_desc[160];
	bool esmtp;
	bool helo_seen;
	char helo[SMTP_DOMAIN_MAX + 1];
	int errors;
	unsigned long ntransactions;
	struct smtp_line_reader lr;
	bool dead;                     /* connection gone while a pool job holds us */
	bool async_pending;            /* a pool job (spool commit, AUTH) holds a pointer to us */
	bool quit_after_reply;         /* shutdown: 421 after this transaction */
	int close_ticks;               /* drain polls while closing */
	bool slot_released;            /* no longer counted by the guard */

	/* SMTP AUTH (RFC 4954), submission listeners only */
	bool authenticated;
	bool suspended;                /* authenticated, but sending is suspended */
	char account[320];
	int auth_mech;                 /* smtp_auth.c's mechanism while AUTH_INPUT */
	char auth_user[320];           /* LOGIN: the username, between the two steps */
	struct queue_monitor_limits limits;  /* outbound rate limits, read at each MAIL */

	/* the transaction */
	struct smtp_address sender;
	char sender_text[SMTP_PATH_MAX * 4 + 1]; /* local@domain, "" for <> */
	char sender_log[LOG_ESCAPE_MAX];
	struct smtp_mail_params params;
	struct queue_rcpt *rcpts;      /* delivery targets, deduplicated */
	size_t nrcpts;
	int rcpt_cmds;                 /* accepted RCPT commands (the limit) */
	size_t remote_rcpts;           /* relayed targets of an authenticated user (rate limits) */
	char *headers;                 /* authenticated: the message's start, for the detectors */
	size_t headers_len;
	char first_rcpt[SMTP_PATH_MAX * 4 + 1];
	struct smtp_data_parser dp;
	struct queue_writer *qw;
	bool qw_failed;
	char qid[QUEUE_ID_LEN + 1];
	uint64_t bdat_left;
	uint64_t bdat_chunk;           /* size of the chunk being read */
	enum smtp_state bdat_prev_state;
	bool bdat_last;
	const char *bdat_error;        /* reply owed once the chunk is consumed */
};

/* smtp_session.c */
struct smtp_session *smtp_session_new(struct smtp_listener *l, int fd,
    const struct sockaddr *sa, socklen_t salen);
void smtp_session_enter_state(struct smtp_session *s, enum smtp_state state);
void smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A reply to a client mistake: counts against smtp.max_errors. */
void smtp_session_reply_error(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtp_session_close(struct smtp_session *s);
/* Count a strike against the client's IP (intrusion prevention); a ban hangs up. */
void smtp_session_strike(struct smtp_session *s, int what);
void smtp_session_reset_transaction(struct smtp_session *s);
/* Process buffered input until it runs out or the session must wait. */
void smtp_session_process(struct smtp_session *s);
void smtp_session_start_tls(struct smtp_session *s);
/* Begin a message: open the spool writer, write the Received header. */
int smtp_session_begin_message(struct smtp_session *s, bool bdat);
/* A BDAT chunk has been read whole: answer it. */
void smtp_session_bdat_chunk_done(struct smtp_session *s);
/* The content is complete: refuse it or commit it to the spool. */
void smtp_session_end_message(struct smtp_session *s);
void smtp_session_shutdown(struct smtp_session *s);
void smtp_session_free(struct smtp_session **s);

/* smtp_auth.c */
void smtp_auth_start(struct smtp_session *s, const char *args);
void smtp_auth_continue(struct smtp_session *s, const char *line, size_t len);

/* smtp_commands.c */
void smtp_command_dispatch(struct smtp_session *s, const char *line, size_t len);

#endif
