/*
 * smtp_session.c: one SMTP server session: its I/O on a libevent
 * bufferevent, its one state-change function, input bounding, backpressure,
 * STARTTLS (RFC 3207), message assembly into the spool and its lifetime
 * (a session whose client vanished while the spool works is freed when the
 * spool answers). Trusts nothing the client sends. RFC 5321, RFC 2920.
 */
#include <errno.h>
#include <inttypes.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/tls.h"
#include "guard/guard.h"
#include "monitor/metrics.h"
#include "smtp/smtp_session_private.h"

#define SMTP_OUTPUT_HIGH_WATER (256 * 1024)   /* stop reading above this */
#define SMTP_CLOSE_DRAIN_SECONDS 5

static const char *const state_names[] = {
	[SMTP_STATE_PREGREET] = "pregreet",
	[SMTP_STATE_GREETED] = "greeted",
	[SMTP_STATE_HELO] = "helo",
	[SMTP_STATE_MAIL] = "mail",
	[SMTP_STATE_RCPT] = "rcpt",
	[SMTP_STATE_DATA] = "data",
	[SMTP_STATE_BDAT] = "bdat",
	[SMTP_STATE_BDAT_WAIT] = "bdat_wait",
	[SMTP_STATE_COMMIT] = "commit",
	[SMTP_STATE_AUTH_INPUT] = "auth_input",
	[SMTP_STATE_AUTH_WAIT] = "auth_wait",
	[SMTP_STATE_STARTTLS] = "starttls",
	[SMTP_STATE_CLOSING] = "closing",
};

static void smtp_session_read_cb(struct bufferevent *bev, void *arg);
static void smtp_session_write_cb(struct bufferevent *bev, void *arg);
static void smtp_session_event_cb(struct bufferevent *bev, short what, void *arg);

/*
 * The session's one timer, by state: the greet pause, idle_timeout between
 * complete commands (a byte a second does not keep a session alive),
 * data_timeout over a whole DATA or BDAT transfer, the TLS handshake
 * (idle_timeout), nothing while the spool works, the drain while closing.
 */
static void
smtp_session_arm_timer(struct smtp_session *s)
{
	struct timeval tv = { 0 };

	switch (s->state) {
	case SMTP_STATE_PREGREET:
	case SMTP_STATE_CLOSING:
		return;   /* armed where they start */
	case SMTP_STATE_COMMIT:
	case SMTP_STATE_AUTH_WAIT:
		evtimer_del(s->timer);
		return;
	case SMTP_STATE_DATA:
	case SMTP_STATE_BDAT:
		tv.tv_sec = s->cfg->smtp.data_timeout;
		break;
	default:
		tv.tv_sec = s->cfg->smtp.idle_timeout;
		break;
	}
	evtimer_add(s->timer, &tv);
}

void
smtp_session_enter_state(struct smtp_session *s, enum smtp_state state)
{
	if (s->state == state)
		return;
	log_debug("event=smtp.state session=%s client=%s from=%s to=%s", s->id, s->ip,
	    state_names[s->state], state_names[state]);
	s->state = state;
	if (s->bev != NULL)
		smtp_session_arm_timer(s);
}

static void smtp_session_vreply(struct smtp_session *s, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
smtp_session_vreply(struct smtp_session *s, const char *fmt, va_list ap)
{
	struct evbuffer *out;

	if (s->bev == NULL || s->state == SMTP_STATE_CLOSING)
		return;
	out = bufferevent_get_output(s->bev);
	evbuffer_add_vprintf(out, fmt, ap);
	evbuffer_add(out, "\r\n", 2);
}

void
smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_session_vreply(s, fmt, ap);
	va_end(ap);
}

void
smtp_session_reply_error(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_session_vreply(s, fmt, ap);
	va_end(ap);
	if (++s->errors >= s->cfg->smtp.max_errors && s->state != SMTP_STATE_CLOSING) {
		log_info("event=smtp.too_many_errors session=%s client=%s errors=%d",
		    s->id, s->ip, s->errors);
		smtp_session_reply(s, "421 4.7.0 %s Too many errors", s->cfg->hostname);
		smtp_session_close(s);
		guard_strike(s->srv->deps.guard, (struct sockaddr *)&s->peer,
		    GUARD_STRIKE_PROTOCOL_ERRORS, time(NULL));
	}
}

static void
smtp_session_greet(struct smtp_session *s)
{
	smtp_session_reply(s, "220 %s ESMTP bulwark", s->cfg->hostname);
	smtp_session_enter_state(s, SMTP_STATE_GREETED);
}

static void smtp_session_timer_cb(evutil_socket_t fd, short what, void *arg);

struct smtp_session *
smtp_session_new(struct smtp_listener *l, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct smtp_server *srv = l->srv;
	const struct config *cfg = srv->deps.cfg;
	struct smtp_session *s = calloc(1, sizeof(*s));
	struct sockaddr_storage local;
	socklen_t locallen = sizeof(local);
	SSL *ssl = NULL;

	if (s == NULL)
		return NULL;
	s->srv = srv;
	s->cfg = cfg;
	s->kind = l->kind;
	memcpy(&s->peer, sa, salen);
	fs_random_hex(s->id, 12);
	sockaddr_format_ip(sa, s->ip, sizeof(s->ip));
	if (getsockname(fd, (struct sockaddr *)&local, &locallen) == 0)
		sockaddr_format_ip((struct sockaddr *)&local, s->local_ip, sizeof(s->local_ip));
	s->trusted = cidr_list_match(cfg->mynetworks, cfg->nmynetworks, sa);
	if (smtp_line_reader_init(&s->lr, cfg->smtp.max_line_length) == -1)
		goto fail;
	if (l->kind == SMTP_LISTENER_SUBMISSIONS) {
		ssl = SSL_new(srv->deps.tls);
		if (ssl == NULL)
			goto fail;
		s->bev = bufferevent_openssl_socket_new(srv->deps.base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (s->bev == NULL) {
			SSL_free(ssl);
			goto fail;
		}
		s->tls = true;
	} else {
		s->bev = bufferevent_socket_new(srv->deps.base, fd,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (s->bev == NULL)
			goto fail;
	}
	bufferevent_setcb(s->bev, smtp_session_read_cb, smtp_session_write_cb,
	    smtp_session_event_cb, s);
	/* One timer for the greet pause and the close drain, made now so that
	 * closing never needs memory. */
	if ((s->timer = evtimer_new(srv->deps.base, smtp_session_timer_cb, s)) == NULL)
		goto fail;
	{
		/* A client that does not read its replies is cut after idle_timeout. */
		struct timeval wt = { .tv_sec = cfg->smtp.idle_timeout };

		bufferevent_set_timeouts(s->bev, NULL, &wt);
	}
	s->state = SMTP_STATE_PREGREET;
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	log_info("event=smtp.connect session=%s client=%s service=%s trusted=%s tls=%s",
	    s->id, s->ip, l->kind == SMTP_LISTENER_MX ? "smtp" :
	    l->kind == SMTP_LISTENER_SUBMISSION ? "submission" : "submissions",
	    s->trusted ? "yes" : "no", s->tls ? "implicit" : "no");
	if (l->kind == SMTP_LISTENER_MX && !s->trusted && cfg->smtp.greet_pause_ms > 0) {
		struct timeval tv = {
			.tv_sec = cfg->smtp.greet_pause_ms / 1000,
			.tv_usec = (cfg->smtp.greet_pause_ms % 1000) * 1000,
		};

		smtp_session_reply(s, "220-%s ESMTP bulwark", cfg->hostname);
		if (evtimer_add(s->timer, &tv) == -1)
			smtp_session_greet(s);
	} else {
		smtp_session_greet(s);
	}
	return s;
fail:
	log_warnx("event=smtp.error client=%s reason=\"session set-up failed\"", s->ip);
	smtp_line_reader_clear(&s->lr);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	else
		close(fd);
	free(s);
	return NULL;
}

void
smtp_session_reset_transaction(struct smtp_session *s)
{
	queue_writer_abort(&s->qw);
	for (size_t i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i].address);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->rcpt_cmds = 0;
	s->remote_rcpts = 0;
	free(s->headers);
	s->headers = NULL;
	s->headers_len = 0;
	s->first_rcpt[0] = '\0';
	s->qw_failed = false;
	s->qid[0] = '\0';
	s->bdat_left = 0;
	s->bdat_last = false;
	s->bdat_error = NULL;
	memset(&s->sender, 0, sizeof(s->sender));
	memset(&s->params, 0, sizeof(s->params));
}

void
smtp_session_strike(struct smtp_session *s, int what)
{
	if (guard_strike(s->srv->deps.guard, (struct sockaddr *)&s->peer,
	    (enum guard_strike)what, time(NULL)) && s->bev != NULL &&
	    s->state != SMTP_STATE_CLOSING && !s->async_pending) {
		smtp_session_reply(s, "421 4.7.0 %s Too many errors from your address, closing",
		    s->cfg->hostname);
		smtp_session_close(s);
	}
}

/* The session stops counting toward the connection limits (once). */
static void
smtp_session_release_slot(struct smtp_session *s)
{
	if (!s->slot_released) {
		s->slot_released = true;
		guard_conn_close(s->srv->deps.guard, (struct sockaddr *)&s->peer);
	}
}

void
smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		s->srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->srv->nsessions--;
	smtp_session_release_slot(s);
	log_info("event=smtp.disconnect session=%s client=%s transactions=%lu errors=%d",
	    s->id, s->ip, s->ntransactions, s->errors);
	smtp_session_reset_transaction(s);
	smtp_line_reader_clear(&s->lr);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	free(s);
}

/* True once everything we wrote has left, through a TLS filter too. */
static bool
smtp_session_drained(struct smtp_session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return false;
	return under == NULL || evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

static void
smtp_session_timeout(struct smtp_session *s)
{
	log_info("event=smtp.timeout session=%s client=%s state=%s", s->id, s->ip,
	    state_names[s->state]);
	smtp_session_reply(s, "421 4.4.2 %s Timeout exceeded", s->cfg->hostname);
	smtp_session_close(s);
}

/*
 * The timer's callback: end of the greet pause (a client that already
 * talked is a bot, postscreen's PREGREET), or a drain poll while closing.
 */
static void
smtp_session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct timeval tv = { .tv_usec = 20000 };

	switch (s->state) {
	case SMTP_STATE_PREGREET:
		if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
			smtp_session_process(s);
		else
			smtp_session_greet(s);
		break;
	case SMTP_STATE_CLOSING:
		if (smtp_session_drained(s) || ++s->close_ticks >= SMTP_CLOSE_DRAIN_SECONDS * 50) {
			smtp_session_free(&s);
			return;
		}
		evtimer_add(s->timer, &tv);
		break;
	case SMTP_STATE_COMMIT:
	case SMTP_STATE_AUTH_WAIT:
		break;
	default:
		smtp_session_timeout(s);
		break;
	}
}

void
smtp_session_close(struct smtp_session *s)
{
	struct timeval tv = { .tv_usec = 20000 };

	if (s->state == SMTP_STATE_CLOSING)
		return;
	if (s->async_pending) {
		s->quit_after_reply = true;   /* the pool job's answer closes it */
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_CLOSING);
	smtp_session_release_slot(s);
	smtp_session_reset_transaction(s);
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	evtimer_del(s->timer);
	/* Never freed here: callers up the stack still hold s. */
	evtimer_add(s->timer, &tv);
}

/* The client is gone (EOF, reset, TLS failure). */
static void
smtp_session_lost(struct smtp_session *s, const char *why)
{
	if (s->state != SMTP_STATE_CLOSING)
		log_info("event=smtp.lost session=%s client=%s state=%s reason=%s",
		    s->id, s->ip, state_names[s->state], why);
	if (s->async_pending) {
		/* A pool job still points at us: free when it answers. */
		s->dead = true;
		smtp_session_release_slot(s);
		bufferevent_free(s->bev);
		s->bev = NULL;
		return;
	}
	smtp_session_free(&s);
}

void
smtp_session_shutdown(struct smtp_session *s)
{
	switch (s->state) {
	case SMTP_STATE_DATA:
	case SMTP_STATE_BDAT:
	case SMTP_STATE_BDAT_WAIT:
	case SMTP_STATE_COMMIT:
	case SMTP_STATE_AUTH_WAIT:
	case SMTP_STATE_STARTTLS:
		s->quit_after_reply = true;   /* finish this transaction first */
		break;
	case SMTP_STATE_CLOSING:
		break;
	default:
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down", s->cfg->hostname);
		smtp_session_close(s);
		break;
	}
}

/* Client text left in the buffer before a greeting or after STARTTLS. */
static void
smtp_session_pregreet(struct smtp_session *s)
{
	log_info("event=smtp.pregreet session=%s client=%s reason=\"talked before greeting\"",
	    s->id, s->ip);
	smtp_session_reply(s, "554 5.5.1 Protocol error: talked before greeting");
	smtp_session_close(s);
	guard_strike(s->srv->deps.guard, (struct sockaddr *)&s->peer, GUARD_STRIKE_PREGREET,
	    time(NULL));
}

/* Append a Received: header (RFC 5321 4.4) to the spool. */
static int
smtp_session_received(struct smtp_session *s)
{
	char date[64], *hdr = NULL;
	const char *with;
	time_t now = time(NULL);
	struct tm tm;
	int n;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (s->params.smtputf8)
		with = s->tls ? "UTF8SMTPS" : "UTF8SMTP";
	else if (s->esmtp)
		with = s->tls ? "ESMTPS" : "ESMTP";
	else
		with = "SMTP";
	n = asprintf(&hdr, "Received: from %s ([%s])\r\n\tby %s (bulwark) with %s%s%s%s\r\n"
	    "\tid %s%s%s%s; %s\r\n",
	    s->helo, s->ip, s->cfg->hostname, with,
	    s->tls ? "\r\n\t(" : "", s->tls ? s->tls_desc : "", s->tls ? ")" : "",
	    s->qid, s->first_rcpt[0] != '\0' && s->nrcpts == 1 ? "\r\n\tfor <" : "",
	    s->first_rcpt[0] != '\0' && s->nrcpts == 1 ? s->first_rcpt : "",
	    s->first_rcpt[0] != '\0' && s->nrcpts == 1 ? ">" : "", date);
	if (n == -1)
		return -1;
	n = queue_writer_write(s->qw, hdr, (size_t)n);
	free(hdr);
	return n;
}

static void
smtp_session_emit(void *ctx, const char *data, size_t len)
{
	struct smtp_session *s = ctx;

	if (s->qw != NULL && !s->qw_failed && queue_writer_write(s->qw, data, len) == -1)
		s->qw_failed = true;
	if (s->headers != NULL && s->headers_len < SMTP_HEADERS_KEPT) {
		size_t take = len < SMTP_HEADERS_KEPT - s->headers_len ? len :
		    SMTP_HEADERS_KEPT - s->headers_len;

		memcpy(s->headers + s->headers_len, data, take);
		s->headers_len += take;
	}
}

int
smtp_session_begin_message(struct smtp_session *s, bool bdat)
{
	struct queue_envelope env = {
		.ctime = time(NULL),
		.sender = s->sender.null_path ? (char *)"" : s->sender_text,
		.client_ip = s->ip,
		.helo = s->helo,
		.flags = (s->params.body == SMTP_BODY_8BITMIME ? QUEUE_FLAG_8BITMIME : 0) |
		    (s->params.smtputf8 ? QUEUE_FLAG_SMTPUTF8 : 0) |
		    (s->authenticated || s->trusted ? QUEUE_FLAG_SIGN : 0),
		.rcpts = s->rcpts,
		.nrcpts = s->nrcpts,
	};

	memcpy(env.id, s->qid, sizeof(env.id));
	if (queue_writer_new(s->srv->deps.queue, &env, &s->qw) == -1 ||
	    smtp_session_received(s) == -1) {
		log_warn("event=queue.error session=%s client=%s queue_id=%s reason=open",
		    s->id, s->ip, s->qid);
		queue_writer_abort(&s->qw);
		return -1;
	}
	free(s->headers);
	s->headers_len = 0;
	/* The header of an authenticated user's message, for the detectors (no
	 * memory: they see no From or Subject, nothing else changes). */
	s->headers = s->authenticated && s->srv->deps.monitor != NULL ?
	    malloc(SMTP_HEADERS_KEPT) : NULL;
	smtp_data_init(&s->dp, bdat, s->cfg->smtp.bare_lf == CONFIG_BARE_LF_REJECT,
	    s->cfg->smtp.max_line_length, s->cfg->smtp.max_message_size,
	    smtp_session_emit, s);
	return 0;
}

static void
smtp_session_commit_cb(void *arg, int result)
{
	struct smtp_session *s = arg;

	s->async_pending = false;
	if (result == 0) {
		s->ntransactions++;
		log_info("event=smtp.queued session=%s client=%s queue_id=%s from=<%s> rcpts=%zu size=%zu",
		    s->id, s->ip, s->qid, s->sender_log, s->nrcpts, s->dp.size);
		smtp_session_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
		metrics_inc("bulwark_messages_accepted_total", NULL);
		if (s->authenticated && s->srv->deps.monitor != NULL) {
			struct queue_monitor_message mm = {
				.account = s->account,
				.sender = s->sender_text,
				.queue_id = s->qid,
				.headers = s->headers != NULL ? s->headers : "",
				.headers_len = s->headers != NULL ? s->headers_len : 0,
				.rcpts = s->rcpts,
				.nrcpts = s->nrcpts,
			};

			queue_monitor_submitted(s->srv->deps.monitor, &mm);
		}
	} else {
		smtp_session_reply(s, "451 4.3.0 Error: queue file write error, try again later");
	}
	if (s->dead) {
		/* Acknowledged to nobody; still durable, so it will be delivered
		 * (the client will retry: a duplicate, never a loss). */
		smtp_session_free(&s);
		return;
	}
	smtp_session_reset_transaction(s);
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	if (s->quit_after_reply) {
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down", s->cfg->hostname);
		smtp_session_close(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	smtp_session_process(s);
}

void
smtp_session_end_message(struct smtp_session *s)
{
	const char *err = smtp_data_error(&s->dp);

	if (err == NULL && s->qw_failed)
		err = "451 4.3.0 Error: queue file write error, try again later";
	if (err != NULL) {
		log_info("event=smtp.reject session=%s client=%s queue_id=%s stage=data from=<%s> reply=\"%s\"",
		    s->id, s->ip, s->qid, s->sender_log, err);
		if (err[0] == '4')
			smtp_session_reply(s, "%s", err);
		else
			smtp_session_reply_error(s, "%s", err);
		smtp_session_reset_transaction(s);
		if (s->state != SMTP_STATE_CLOSING)
			smtp_session_enter_state(s, SMTP_STATE_HELO);
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_COMMIT);
	s->async_pending = true;
	if (queue_writer_commit(&s->qw, smtp_session_commit_cb, s) == -1) {
		s->async_pending = false;
		smtp_session_reply(s, "451 4.3.0 Error: out of resources, try again later");
		smtp_session_reset_transaction(s);
		smtp_session_enter_state(s, SMTP_STATE_HELO);
	}
}

void
smtp_session_bdat_chunk_done(struct smtp_session *s)
{
	if (s->bdat_error != NULL) {
		const char *err = s->bdat_error;

		s->bdat_error = NULL;
		if (s->qw != NULL || s->bdat_prev_state == SMTP_STATE_BDAT_WAIT) {
			smtp_session_reset_transaction(s);   /* RFC 3030: the message is void */
			smtp_session_enter_state(s, SMTP_STATE_HELO);
		} else {
			smtp_session_enter_state(s, s->bdat_prev_state);
		}
		smtp_session_reply_error(s, "%s", err);
		return;
	}
	if (!s->bdat_last) {
		smtp_session_reply(s, "250 2.0.0 %" PRIu64 " octets received", s->bdat_chunk);
		smtp_session_enter_state(s, SMTP_STATE_BDAT_WAIT);
		return;
	}
	smtp_data_finish_bdat(&s->dp);
	smtp_session_end_message(s);
}

/* Feed message content from the input buffer. Returns false to stop processing. */
static bool
smtp_session_feed_content(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec v;
	size_t consumed, take;
	int done;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		return false;
	take = v.iov_len;
	if (s->state == SMTP_STATE_BDAT && take > s->bdat_left)
		take = (size_t)s->bdat_left;
	done = smtp_data_feed(&s->dp, v.iov_base, take, &consumed);
	evbuffer_drain(in, consumed);
	if (s->state == SMTP_STATE_DATA) {
		if (done == 1)
			smtp_session_end_message(s);
		return true;
	}
	s->bdat_left -= consumed;
	if (s->bdat_left == 0)
		smtp_session_bdat_chunk_done(s);
	return true;
}

void
smtp_session_process(struct smtp_session *s)
{
	struct evbuffer *in, *out;

	while (s->bev != NULL) {
		struct evbuffer_iovec v;

		in = bufferevent_get_input(s->bev);
		out = bufferevent_get_output(s->bev);
		if (evbuffer_get_length(in) == 0)
			return;
		if (evbuffer_get_length(out) > SMTP_OUTPUT_HIGH_WATER) {
			/* The client does not read its replies: wait (libevent's le-proxy). */
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		switch (s->state) {
		case SMTP_STATE_PREGREET:
			smtp_session_pregreet(s);
			return;
		case SMTP_STATE_COMMIT:
		case SMTP_STATE_AUTH_WAIT:
		case SMTP_STATE_STARTTLS:
		case SMTP_STATE_CLOSING:
			return;
		case SMTP_STATE_DATA:
		case SMTP_STATE_BDAT:
			if (!smtp_session_feed_content(s, in))
				return;
			continue;
		default:
			break;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		{
			const char *line, *err;
			size_t consumed, linelen;
			int code, r;

			r = smtp_line_reader_feed(&s->lr, v.iov_base, v.iov_len, &consumed,
			    &line, &linelen, &code, &err);
			evbuffer_drain(in, consumed);
			if (r != 0 && s->state != SMTP_STATE_CLOSING)
				smtp_session_arm_timer(s);   /* a complete line: idle restarts */
			if (r == 1 && s->state == SMTP_STATE_AUTH_INPUT) {
				smtp_auth_continue(s, line, linelen);
			} else if (r == 1) {
				smtp_command_dispatch(s, line, linelen);
			} else if (r == -1) {
				log_info("event=smtp.bad_line session=%s client=%s reply=\"%s\"",
				    s->id, s->ip, err);
				smtp_session_reply_error(s, "%s", err);
			}
		}
	}
}

static void
smtp_session_read_cb(struct bufferevent *bev, void *arg)
{
	smtp_session_process(arg);
}

static void
smtp_session_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	/* Backpressure released: the client read its replies. */
	if (s->state != SMTP_STATE_CLOSING && !s->async_pending &&
	    !(bufferevent_get_enabled(bev) & EV_READ) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) <= SMTP_OUTPUT_HIGH_WATER / 2) {
		bufferevent_enable(bev, EV_READ);
		smtp_session_process(s);
	}
}

static void
smtp_session_tls_ready(struct smtp_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	tls_describe(ssl, s->tls_desc, sizeof(s->tls_desc));
	log_info("event=smtp.tls session=%s client=%s tls=\"%s\"", s->id, s->ip, s->tls_desc);
	if (s->state == SMTP_STATE_STARTTLS) {
		/* RFC 3207 4.2: forget everything learnt before TLS. */
		s->helo_seen = false;
		s->esmtp = false;
		s->helo[0] = '\0';
		smtp_session_reset_transaction(s);
		smtp_session_enter_state(s, SMTP_STATE_GREETED);
		if (s->quit_after_reply) {
			smtp_session_reply(s, "421 4.3.2 %s Service shutting down", s->cfg->hostname);
			smtp_session_close(s);
		}
	}
}

static void
smtp_session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		smtp_session_tls_ready(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == SMTP_STATE_CLOSING) {
			smtp_session_free(&s);
			return;
		}
		/* The client stopped reading its replies. */
		log_info("event=smtp.timeout session=%s client=%s state=%s reason=write",
		    s->id, s->ip, state_names[s->state]);
		smtp_session_lost(s, "write_timeout");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);

		if (e != 0) {
			char buf[256];

			ERR_error_string_n(e, buf, sizeof(buf));
			log_info("event=smtp.tls_error session=%s client=%s detail=\"%s\"", s->id, s->ip, buf);
			while (bufferevent_get_openssl_error(bev) != 0)
				;
			if (s->tls_desc[0] == '\0')   /* the handshake never completed */
				guard_strike(s->srv->deps.guard, (struct sockaddr *)&s->peer,
				    GUARD_STRIKE_TLS_GARBAGE, time(NULL));
			smtp_session_lost(s, "tls_error");
			return;
		}
		smtp_session_lost(s, "error");
		return;
	}
	smtp_session_lost(s, "eof");
}

void
smtp_session_start_tls(struct smtp_session *s)
{
	SSL *ssl = SSL_new(s->srv->deps.tls);
	struct bufferevent *tlsbev;

	if (ssl == NULL) {
		log_ssl_errors("smtp.starttls");
		smtp_session_reply(s, "454 4.7.0 TLS not available due to temporary reason");
		return;
	}
	smtp_session_reply(s, "220 2.0.0 Ready to start TLS");
	tlsbev = bufferevent_openssl_filter_new(s->srv->deps.base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tlsbev == NULL) {
		SSL_free(ssl);
		smtp_session_close(s);
		return;
	}
	s->bev = tlsbev;
	s->tls = true;
	bufferevent_setcb(s->bev, smtp_session_read_cb, smtp_session_write_cb,
	    smtp_session_event_cb, s);
	{
		struct timeval wt = { .tv_sec = s->cfg->smtp.idle_timeout };

		bufferevent_set_timeouts(s->bev, NULL, &wt);
	}
	smtp_session_enter_state(s, SMTP_STATE_STARTTLS);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}
