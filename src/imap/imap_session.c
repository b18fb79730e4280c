/*
 * imap_session.c: one IMAP session: its I/O on a libevent bufferevent, its one
 * state-change function, input bounding (the parser bounds lines and
 * literals; SASL and IDLE lines are bounded here), backpressure, STARTTLS
 * (RFC 3501 6.2.1, RFC 2595), the IDLE poll (RFC 2177), untagged mailbox
 * updates (RFC 3501 7.3, 7.4.1) and its lifetime (a session whose client
 * vanished while a password check runs is freed when the check answers).
 * Trusts nothing the client sends.
 */
#include <errno.h>
#include <inttypes.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/tls.h"
#include "guard/guard.h"
#include "monitor/metrics.h"
#include "imap/imap_session_private.h"

#define IMAP_CLOSE_DRAIN_SECONDS 5

static const char *const state_names[] = {
	[IMAP_STATE_NOT_AUTHENTICATED] = "not_authenticated",
	[IMAP_STATE_AUTHENTICATED] = "authenticated",
	[IMAP_STATE_SELECTED] = "selected",
	[IMAP_STATE_LOGOUT] = "logout",
};

static void imap_session_read_cb(struct bufferevent *bev, void *arg);

/*
 * Stop reading when this much input waits (during a long FETCH, a password
 * check, a TLS handshake): the parser consumes literals as they arrive, and
 * an AUTHENTICATE or IDLE line is at most imap.max_line_length.
 */
static void
imap_session_read_limit(struct imap_session *s)
{
	size_t hw = s->cfg->imap.max_line_length + 4096;

	bufferevent_setwatermark(s->bev, EV_READ, 0, hw > 256 * 1024 ? hw : 256 * 1024);
	/* The write callback (a long FETCH goes on from it) fires at half the
	 * high-water mark, not when empty: the socket never waits for us. */
	bufferevent_setwatermark(s->bev, EV_WRITE, IMAP_OUTPUT_HIGH_WATER / 2, 0);
}
static void imap_session_write_cb(struct bufferevent *bev, void *arg);
static void imap_session_event_cb(struct bufferevent *bev, short what, void *arg);
static void imap_session_timer_cb(evutil_socket_t fd, short what, void *arg);
static void imap_session_idle_cb(evutil_socket_t fd, short what, void *arg);
static void imap_session_work_cb(evutil_socket_t fd, short what, void *arg);

/* The inactivity timer: login_timeout before a login, idle_timeout after
 * (RFC 3501 5.4: at least 30 minutes); restarted by each complete command. */
static void
imap_session_arm_timer(struct imap_session *s)
{
	struct timeval tv = { 0 };

	if (s->closing)
		return;
	tv.tv_sec = s->state == IMAP_STATE_NOT_AUTHENTICATED ? s->cfg->imap.login_timeout :
	    s->cfg->imap.idle_timeout;
	evtimer_add(s->timer, &tv);
}

void
imap_session_enter_state(struct imap_session *s, enum imap_state state)
{
	if (s->state == state)
		return;
	log_debug("event=imap.state session=%s client=%s from=%s to=%s", s->id, s->ip,
	    state_names[s->state], state_names[state]);
	s->state = state;
	if (s->bev != NULL)
		imap_session_arm_timer(s);
}

struct evbuffer *
imap_session_out(struct imap_session *s)
{
	return bufferevent_get_output(s->bev);
}

static void imap_session_vprintf(struct imap_session *s, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
imap_session_vprintf(struct imap_session *s, const char *fmt, va_list ap)
{
	if (s->bev == NULL || s->closing)
		return;
	evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
}

void
imap_session_printf(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	imap_session_vprintf(s, fmt, ap);
	va_end(ap);
}

void
imap_session_tagged(struct imap_session *s, const char *tag, const char *fmt, ...)
{
	va_list ap;

	if (s->bev == NULL || s->closing)
		return;
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s ", tag[0] != '\0' ? tag : "*");
	va_start(ap, fmt);
	imap_session_vprintf(s, fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(s->bev), "\r\n", 2);
}

void
imap_session_error(struct imap_session *s, const char *tag, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	if (s->bev == NULL || s->closing)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s %s\r\n", tag[0] != '\0' ? tag : "*",
	    text);
	/* Our reply text only (no client bytes in it), for the operator. */
	log_info("event=imap.client_error session=%s client=%s state=%s reply=\"%s\"", s->id, s->ip,
	    state_names[s->state], text);
	if (++s->errors >= s->cfg->imap.max_errors) {
		log_info("event=imap.too_many_errors session=%s client=%s errors=%d", s->id, s->ip,
		    s->errors);
		imap_session_printf(s, "* BYE Too many errors\r\n");
		imap_session_close(s);
		imap_session_strike(s, GUARD_STRIKE_PROTOCOL_ERRORS);
	}
}

/* ---- output helpers ---- */

void
imap_write_string(struct evbuffer *out, const char *str, size_t len)
{
	bool quote = len <= 1024;

	for (size_t i = 0; quote && i < len; i++) {
		unsigned char c = (unsigned char)str[i];

		if (c == '\r' || c == '\n' || c == 0 || c >= 0x80)
			quote = false;
	}
	if (!quote) {
		evbuffer_add_printf(out, "{%zu}\r\n", len);
		evbuffer_add(out, str, len);
		return;
	}
	evbuffer_add(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (str[i] == '"' || str[i] == '\\')
			evbuffer_add(out, "\\", 1);
		evbuffer_add(out, &str[i], 1);
	}
	evbuffer_add(out, "\"", 1);
}

void
imap_write_flags(struct evbuffer *out, uint32_t flags, const char *const *keywords)
{
	static const struct {
		uint32_t flag;
		const char *name;
	} names[] = {
		{ IMAP_FLAG_SEEN, "\\Seen" }, { IMAP_FLAG_ANSWERED, "\\Answered" },
		{ IMAP_FLAG_FLAGGED, "\\Flagged" }, { IMAP_FLAG_DELETED, "\\Deleted" },
		{ IMAP_FLAG_DRAFT, "\\Draft" }, { IMAP_FLAG_RECENT, "\\Recent" },
	};
	char buf[128];
	size_t n = 0;

	buf[n++] = '(';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (flags & names[i].flag) {
			size_t len = strlen(names[i].name);

			if (n > 1)
				buf[n++] = ' ';
			memcpy(buf + n, names[i].name, len);
			n += len;
		}
	}
	evbuffer_add(out, buf, n);
	for (size_t i = 0; keywords != NULL && keywords[i] != NULL; i++) {
		if (n > 1 || i > 0)
			evbuffer_add(out, " ", 1);
		evbuffer_add(out, keywords[i], strlen(keywords[i]));
	}
	evbuffer_add(out, ")", 1);
}

void
imap_write_date(struct evbuffer *out, int64_t t)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	    "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (t < 0 || gmtime_r(&tt, &tm) == NULL)
		tt = 0, gmtime_r(&tt, &tm);
	evbuffer_add_printf(out, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, mon[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- untagged updates ---- */

static void
sync_expunged(void *ctx, uint32_t seq)
{
	imap_session_printf(ctx, "* %" PRIu32 " EXPUNGE\r\n", seq);
}

static void
sync_exists(void *ctx, uint32_t count)
{
	imap_session_printf(ctx, "* %" PRIu32 " EXISTS\r\n", count);
}

static void
sync_recent(void *ctx, uint32_t count)
{
	imap_session_printf(ctx, "* %" PRIu32 " RECENT\r\n", count);
}

static void
sync_flags(void *ctx, uint32_t seq)
{
	imap_fetch_flags_response(ctx, seq, true);
}

const struct imap_sync_cb imap_session_sync_cbs = {
	.expunged = sync_expunged,
	.exists = sync_exists,
	.recent = sync_recent,
	.flags = sync_flags,
};

void
imap_session_flags_response(struct imap_session *s)
{
	const char *const *kw = imap_mailbox_keywords(s->mb);
	struct evbuffer *out = imap_session_out(s);
	size_t n = 0;

	evbuffer_add_printf(out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (; kw != NULL && kw[n] != NULL; n++)
		evbuffer_add_printf(out, " %s", kw[n]);
	evbuffer_add_printf(out, ")\r\n* OK [PERMANENTFLAGS (");
	if (!s->readonly) {
		evbuffer_add_printf(out, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
		for (size_t i = 0; i < n; i++)
			evbuffer_add_printf(out, " %s", kw[i]);
		evbuffer_add_printf(out, " \\*");   /* new keywords may be made */
	}
	evbuffer_add_printf(out, ")] Flags permitted\r\n");
	s->nkeywords = n;
}

void
imap_session_sync(struct imap_session *s, bool allow_expunge)
{
	const char *const *kw;
	size_t n = 0;

	if (s->mb == NULL || s->bev == NULL || s->closing)
		return;
	if (imap_mailbox_sync(s->mb, allow_expunge, &imap_session_sync_cbs, s) == -1)
		log_warnx("event=imap.sync_error session=%s client=%s account=%s", s->id, s->ip,
		    s->account);
	/* RFC 3501 7.2.6: a new keyword in the mailbox is announced. */
	for (kw = imap_mailbox_keywords(s->mb); kw != NULL && kw[n] != NULL; n++)
		;
	if (n != s->nkeywords)
		imap_session_flags_response(s);
}

/* ---- lifetime ---- */

struct imap_session *
imap_session_new(struct imap_listener *l, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct imap_server *srv = l->srv;
	const struct config *cfg = srv->deps.cfg;
	struct imap_session *s = calloc(1, sizeof(*s));
	struct sockaddr_storage local;
	socklen_t locallen = sizeof(local);
	struct imap_parser_limits lim = {
		.max_line = cfg->imap.max_line_length,
		.max_literal = cfg->imap.max_literal_size,
		.max_append_literal = cfg->imap.max_message_size,
	};

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
	imap_parser_init(&s->parser, &lim);
	if (l->kind == IMAP_LISTENER_IMAPS) {
		SSL *ssl = SSL_new(srv->deps.tls);

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
	bufferevent_setcb(s->bev, imap_session_read_cb, imap_session_write_cb,
	    imap_session_event_cb, s);
	imap_session_read_limit(s);
	if ((s->timer = evtimer_new(srv->deps.base, imap_session_timer_cb, s)) == NULL ||
	    (s->idle_poll = event_new(srv->deps.base, -1, EV_PERSIST, imap_session_idle_cb, s)) == NULL ||
	    (s->work = evtimer_new(srv->deps.base, imap_session_work_cb, s)) == NULL)
		goto fail;
	{
		/* A client that does not read what it asked for is cut after idle_timeout. */
		struct timeval wt = { .tv_sec = cfg->imap.idle_timeout };

		bufferevent_set_timeouts(s->bev, NULL, &wt);
	}
	s->state = IMAP_STATE_NOT_AUTHENTICATED;
	s->input = IMAP_INPUT_COMMAND;
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	log_info("event=imap.connect session=%s client=%s service=%s trusted=%s tls=%s", s->id, s->ip,
	    l->kind == IMAP_LISTENER_IMAP ? "imap" : "imaps", s->trusted ? "yes" : "no",
	    s->tls ? "implicit" : "no");
	{
		struct evbuffer *out = bufferevent_get_output(s->bev);

		evbuffer_add_printf(out, "* OK [");
		imap_command_capability_list(s, out);
		evbuffer_add_printf(out, "] %s bulwark IMAP ready\r\n", cfg->hostname);
	}
	imap_session_arm_timer(s);
	return s;
fail:
	log_warnx("event=imap.error client=%s reason=\"session set-up failed\"", s->ip);
	imap_parser_clear(&s->parser);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->idle_poll != NULL)
		event_free(s->idle_poll);
	if (s->work != NULL)
		event_free(s->work);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	else
		close(fd);
	free(s);
	return NULL;
}

void
imap_session_strike(struct imap_session *s, int what)
{
	if (guard_strike(s->srv->deps.guard, (struct sockaddr *)&s->peer, (enum guard_strike)what,
	    time(NULL)) && s->bev != NULL && !s->closing && !s->async_pending) {
		imap_session_printf(s, "* BYE Too many errors from your address\r\n");
		imap_session_close(s);
	}
}

static void
imap_session_release_slot(struct imap_session *s)
{
	if (!s->slot_released) {
		s->slot_released = true;
		guard_conn_close(s->srv->deps.conns, (struct sockaddr *)&s->peer);
	}
}

void
imap_session_unselect(struct imap_session *s)
{
	imap_mailbox_close(&s->mb);
	s->readonly = false;
	s->nkeywords = 0;
	free(s->saved);
	s->saved = NULL;
	s->nsaved = 0;
}

void
imap_session_free(struct imap_session **sp)
{
	struct imap_session *s = *sp;

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
	imap_session_release_slot(s);
	log_info("event=imap.disconnect session=%s client=%s account=%s commands=%lu errors=%d",
	    s->id, s->ip, s->account[0] != '\0' ? s->account : "-", s->ncommands, s->errors);
	imap_fetch_free(&s->fetch);
	imap_search_free(&s->search);
	imap_session_unselect(s);
	imap_store_close(&s->store);
	imap_parser_clear(&s->parser);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->idle_poll != NULL)
		event_free(s->idle_poll);
	if (s->work != NULL)
		event_free(s->work);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	free(s);
}

static bool
imap_session_drained(struct imap_session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return false;
	return under == NULL || evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

static void
imap_session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;
	struct timeval tv = { .tv_usec = 20000 };

	if (s->closing) {
		if (imap_session_drained(s) || ++s->close_ticks >= IMAP_CLOSE_DRAIN_SECONDS * 50) {
			imap_session_free(&s);
			return;
		}
		evtimer_add(s->timer, &tv);
		return;
	}
	if (s->async_pending)
		return;
	log_info("event=imap.timeout session=%s client=%s state=%s", s->id, s->ip,
	    state_names[s->state]);
	imap_session_printf(s, "* BYE Autologout; idle for too long\r\n");
	imap_session_close(s);
}

void
imap_session_close(struct imap_session *s)
{
	struct timeval tv = { .tv_usec = 20000 };

	if (s->closing)
		return;
	if (s->async_pending) {
		s->bye_after = true;   /* the pool job's answer closes it */
		return;
	}
	imap_session_enter_state(s, IMAP_STATE_LOGOUT);
	s->closing = true;
	imap_session_release_slot(s);
	imap_fetch_free(&s->fetch);
	imap_search_free(&s->search);
	event_del(s->idle_poll);
	event_del(s->work);
	if (s->bev == NULL)
		return;
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	evtimer_del(s->timer);
	/* Never freed here: callers up the stack still hold s. */
	evtimer_add(s->timer, &tv);
}

static void
imap_session_lost(struct imap_session *s, const char *why)
{
	if (!s->closing)
		log_info("event=imap.lost session=%s client=%s state=%s reason=%s", s->id, s->ip,
		    state_names[s->state], why);
	if (s->async_pending) {
		s->dead = true;
		imap_session_release_slot(s);
		bufferevent_free(s->bev);
		s->bev = NULL;
		return;
	}
	imap_session_free(&s);
}

void
imap_session_shutdown(struct imap_session *s)
{
	if (s->closing)
		return;
	if (s->async_pending) {
		s->bye_after = true;
		return;
	}
	imap_session_printf(s, "* BYE Server shutting down\r\n");
	imap_session_close(s);
}

/* ---- long commands in slices ---- */

void
imap_session_schedule(struct imap_session *s)
{
	struct timeval zero = { 0 };

	evtimer_add(s->work, &zero);
}

static void
imap_session_work_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;
	bool done;

	if (s->closing || s->bev == NULL)
		return;
	if (s->fetch != NULL)
		done = imap_fetch_continue(s);
	else if (s->search != NULL)
		done = imap_search_continue(s);
	else
		return;
	if (done)
		imap_session_resume(s);
}

/* ---- IDLE ---- */

void
imap_session_idle_start(struct imap_session *s, const char *tag)
{
	struct timeval one = { .tv_sec = 1 };

	snprintf(s->tag, sizeof(s->tag), "%s", tag);
	s->input = IMAP_INPUT_IDLE;
	imap_session_printf(s, "+ idling\r\n");
	imap_session_sync(s, true);
	if (s->mb != NULL)
		event_add(s->idle_poll, &one);
}

static void
imap_session_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	if (s->closing || s->bev == NULL || s->input != IMAP_INPUT_IDLE || s->mb == NULL)
		return;
	if (imap_mailbox_changed(s->mb)) {
		imap_session_sync(s, true);
		bufferevent_flush(s->bev, EV_WRITE, BEV_NORMAL);
	}
}

static void
imap_session_idle_line(struct imap_session *s, const char *line)
{
	event_del(s->idle_poll);
	s->input = IMAP_INPUT_COMMAND;
	if (strcasecmp(line, "DONE") != 0) {
		imap_session_error(s, s->tag, "BAD Expected DONE");
		return;
	}
	imap_session_sync(s, true);
	imap_session_tagged(s, s->tag, "OK IDLE terminated");
}

/* ---- input ---- */

static void
imap_session_parse_error(struct imap_session *s, const char *err)
{
	struct imap_parser *p = &s->parser;
	/* No client text in this line: after a misframed literal the "tag"
	 * may well be a password. */
	log_info("event=imap.bad_command session=%s client=%s reason=\"%s\"", s->id, s->ip, err);
	switch (p->error) {
	case IMAP_PARSE_ERR_LITERAL_TOO_BIG:
		imap_session_error(s, p->tag, "NO [TOOBIG] %s", err);
		break;
	case IMAP_PARSE_ERR_NOMEM:
		imap_session_tagged(s, p->tag, "NO [UNAVAILABLE] %s", err);
		break;
	default:
		imap_session_error(s, p->tag, "BAD %s", err);
		break;
	}
	if (p->fatal && !s->closing) {
		/* RFC 7888 4: a LITERAL+ we refuse is on its way: we cannot
		 * find the next command in it, so we hang up. */
		imap_session_printf(s, "* BYE Literal refused, closing\r\n");
		imap_session_close(s);
	}
}

/* One line of SASL or IDLE input, bounded before it is read. false: wait. */
static bool
imap_session_line_input(struct imap_session *s, struct evbuffer *in)
{
	struct evbuffer_ptr eol;
	size_t eol_len = 0, max = s->cfg->imap.max_line_length;
	char *line;
	size_t n;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos < 0 || (size_t)eol.pos > max) {
		if (eol.pos >= 0 || evbuffer_get_length(in) > max) {
			imap_session_printf(s, "* BYE Line too long\r\n");
			imap_session_close(s);
		}
		return false;
	}
	if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) == NULL)
		return false;
	imap_session_arm_timer(s);
	if (s->input == IMAP_INPUT_SASL)
		imap_auth_sasl_line(s, line, n);
	else
		imap_session_idle_line(s, line);
	sodium_memzero(line, n);
	free(line);
	return true;
}

void
imap_session_process(struct imap_session *s)
{
	while (s->bev != NULL && !s->closing) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		struct evbuffer_iovec v;
		const char *err;
		size_t consumed;
		bool cont;
		int r;

		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > IMAP_OUTPUT_HIGH_WATER) {
			/* The client does not read: stop reading it (libevent's le-proxy). */
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->input == IMAP_INPUT_WAIT || evbuffer_get_length(in) == 0)
			return;
		if (s->input == IMAP_INPUT_SASL || s->input == IMAP_INPUT_IDLE) {
			if (!imap_session_line_input(s, in))
				return;
			continue;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		r = imap_parser_feed(&s->parser, v.iov_base, v.iov_len, &consumed, &cont, &err);
		evbuffer_drain(in, consumed);
		if (cont)
			imap_session_printf(s, "+ Ready for literal data\r\n");
		if (r == 1) {
			imap_session_arm_timer(s);
			s->ncommands++;
			imap_command_dispatch(s, s->parser.tag, s->parser.name, s->parser.root.list,
			    s->parser.root.n);
		} else if (r == -1) {
			imap_session_arm_timer(s);
			imap_session_parse_error(s, err);
		}
	}
}

void
imap_session_resume(struct imap_session *s)
{
	if (s->bev == NULL || s->closing)
		return;
	if (s->bye_after) {
		imap_session_printf(s, "* BYE Server shutting down\r\n");
		imap_session_close(s);
		return;
	}
	s->input = IMAP_INPUT_COMMAND;
	bufferevent_enable(s->bev, EV_READ);
	imap_session_process(s);
}

static void
imap_session_read_cb(struct bufferevent *bev, void *arg)
{
	imap_session_process(arg);
}

static void
imap_session_write_cb(struct bufferevent *bev, void *arg)
{
	struct imap_session *s = arg;

	if (s->closing || s->async_pending)
		return;
	if (evbuffer_get_length(bufferevent_get_output(bev)) > IMAP_OUTPUT_HIGH_WATER / 2)
		return;
	if (s->fetch != NULL) {
		/* A long FETCH goes on as the client reads it. */
		if (!imap_fetch_continue(s))
			return;
		imap_session_resume(s);
		return;
	}
	if (!(bufferevent_get_enabled(bev) & EV_READ) && s->input != IMAP_INPUT_WAIT) {
		bufferevent_enable(bev, EV_READ);
		imap_session_process(s);
	}
}

static void
imap_session_tls_ready(struct imap_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	tls_describe(ssl, s->tls_desc, sizeof(s->tls_desc));
	log_info("event=imap.tls session=%s client=%s tls=\"%s\"", s->id, s->ip, s->tls_desc);
	if (s->tls_handshake) {
		s->tls_handshake = false;
		imap_session_resume(s);
	}
}

static void
imap_session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct imap_session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		imap_session_tls_ready(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->closing) {
			imap_session_free(&s);
			return;
		}
		log_info("event=imap.timeout session=%s client=%s state=%s reason=write", s->id, s->ip,
		    state_names[s->state]);
		imap_session_lost(s, "write_timeout");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);

		if (e != 0) {
			char buf[256];

			ERR_error_string_n(e, buf, sizeof(buf));
			log_info("event=imap.tls_error session=%s client=%s detail=\"%s\"", s->id, s->ip,
			    buf);
			while (bufferevent_get_openssl_error(bev) != 0)
				;
			if (s->tls_desc[0] == '\0')
				guard_strike(s->srv->deps.guard, (struct sockaddr *)&s->peer,
				    GUARD_STRIKE_TLS_GARBAGE, time(NULL));
			imap_session_lost(s, "tls_error");
			return;
		}
		imap_session_lost(s, "error");
		return;
	}
	imap_session_lost(s, "eof");
}

void
imap_session_start_tls(struct imap_session *s, const char *tag)
{
	SSL *ssl = SSL_new(s->srv->deps.tls);
	struct bufferevent *tlsbev;

	if (ssl == NULL) {
		log_ssl_errors("imap.starttls");
		imap_session_tagged(s, tag, "NO [UNAVAILABLE] TLS not available");
		return;
	}
	/* RFC 3501 6.2.1 / RFC 2595 3.1: nothing the client pipelined after
	 * STARTTLS may be taken as if it came under TLS. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		SSL_free(ssl);
		log_info("event=imap.starttls_injection session=%s client=%s", s->id, s->ip);
		imap_session_printf(s, "* BYE Commands after STARTTLS before the handshake\r\n");
		imap_session_close(s);
		return;
	}
	imap_session_tagged(s, tag, "OK Begin TLS negotiation now");
	tlsbev = bufferevent_openssl_filter_new(s->srv->deps.base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tlsbev == NULL) {
		SSL_free(ssl);
		imap_session_close(s);
		return;
	}
	s->bev = tlsbev;
	s->tls = true;
	s->tls_handshake = true;
	s->input = IMAP_INPUT_WAIT;
	bufferevent_setcb(s->bev, imap_session_read_cb, imap_session_write_cb,
	    imap_session_event_cb, s);
	imap_session_read_limit(s);
	{
		struct timeval wt = { .tv_sec = s->cfg->imap.idle_timeout };

		bufferevent_set_timeouts(s->bev, NULL, &wt);
	}
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}
