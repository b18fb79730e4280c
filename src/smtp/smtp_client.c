/*
 * smtp_client.c: one outbound SMTP connection on a libevent bufferevent:
 * its one state-change function, the greeting, EHLO/HELO, opportunistic
 * STARTTLS (verified and logged, never required: RFC 7435), pipelined
 * transactions (RFC 2920), the dot-stuffed body with backpressure, the RFC
 * 5321 4.5.3.2 timeouts, and per-recipient results. Trusts nothing the peer
 * sends; replies go through smtp_client_parse.c. RFC 5321, RFC 3207.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"
#include "core/log.h"
#include "core/tls.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_parse.h"

#define SMTP_CLIENT_OUTPUT_HIGH (256 * 1024)  /* stop stuffing the body above this */
#define SMTP_CLIENT_OUTPUT_LOW (64 * 1024)    /* and go on below this */
#define SMTP_CLIENT_BODY_CHUNK (64 * 1024)
#define SMTP_CLIENT_QUIT_TIMEOUT 10           /* s: waiting for the 221 */
#define SMTP_CLIENT_ADDR_MAX (SMTP_PATH_MAX * 4)

enum smtp_client_state {
	SMTP_CLIENT_S_CONNECTING = 0,
	SMTP_CLIENT_S_GREETING,    /* waiting for the 220 */
	SMTP_CLIENT_S_EHLO,
	SMTP_CLIENT_S_HELO,        /* EHLO was refused */
	SMTP_CLIENT_S_STARTTLS,    /* waiting for STARTTLS' 220 */
	SMTP_CLIENT_S_HANDSHAKE,
	SMTP_CLIENT_S_READY,       /* idle between transactions */
	SMTP_CLIENT_S_RSET,        /* smtp_client_reset */
	SMTP_CLIENT_S_TX_RSET,     /* the RSET before MAIL after a half transaction */
	SMTP_CLIENT_S_MAIL,
	SMTP_CLIENT_S_RCPT,
	SMTP_CLIENT_S_DATA,        /* waiting for 354 */
	SMTP_CLIENT_S_BODY,        /* writing the body */
	SMTP_CLIENT_S_DOT,         /* waiting for the final reply */
	SMTP_CLIENT_S_QUIT,        /* QUIT sent, the client frees itself */
	SMTP_CLIENT_S_CLOSED,      /* no connection any more */
};

static size_t smtp_client_live;   /* objects not yet freed (loop thread only) */

static const char *const state_names[] = {
	[SMTP_CLIENT_S_CONNECTING] = "connecting",
	[SMTP_CLIENT_S_GREETING] = "greeting",
	[SMTP_CLIENT_S_EHLO] = "ehlo",
	[SMTP_CLIENT_S_HELO] = "helo",
	[SMTP_CLIENT_S_STARTTLS] = "starttls",
	[SMTP_CLIENT_S_HANDSHAKE] = "handshake",
	[SMTP_CLIENT_S_READY] = "ready",
	[SMTP_CLIENT_S_RSET] = "rset",
	[SMTP_CLIENT_S_TX_RSET] = "tx_rset",
	[SMTP_CLIENT_S_MAIL] = "mail",
	[SMTP_CLIENT_S_RCPT] = "rcpt",
	[SMTP_CLIENT_S_DATA] = "data",
	[SMTP_CLIENT_S_BODY] = "body",
	[SMTP_CLIENT_S_DOT] = "dot",
	[SMTP_CLIENT_S_QUIT] = "quit",
	[SMTP_CLIENT_S_CLOSED] = "closed",
};

/* What the deferred notification will tell the caller. */
enum smtp_client_notify {
	SMTP_CLIENT_N_NONE = 0,
	SMTP_CLIENT_N_READY,
	SMTP_CLIENT_N_SENT,
	SMTP_CLIENT_N_RESET,
};

struct smtp_client {
	struct event_base *base;
	SSL_CTX *tls_ctx;
	enum smtp_client_state state;
	struct bufferevent *bev;
	struct event *timer;          /* the reply timeout of the current step */
	struct event *ev_notify;      /* callbacks run from here, on their own */
	struct smtp_client_timeouts to;
	char log_id[64];
	char peer[SMTP_DOMAIN_MAX + 1];
	char ip[64];
	char helo[SMTP_DOMAIN_MAX + 1];
	bool peer_is_ip;
	bool no_starttls;
	struct smtp_reply_parser rp;
	struct smtp_client_reply helo_reply;   /* the EHLO/HELO reply, for the ready callback */
	struct smtp_ehlo ehlo;
	bool tls;
	char tls_desc[160];
	char tls_verify[160];

	enum smtp_client_notify notify;
	smtp_client_ready_cb *ready_cb;
	smtp_client_sent_cb *sent_cb;
	smtp_client_reset_cb *reset_cb;
	void *cb_arg;
	struct smtp_client_reply result;   /* for N_READY, N_RESET, N_SENT's msg */

	/* the transaction */
	struct smtp_client_message msg;
	struct smtp_client_reply *rcpt_results;   /* [msg.nrcpts] */
	size_t *sent_idx;                         /* recipients sent, in order */
	size_t nsent, rcpt_sent, rcpt_replies, naccepted;
	bool pipelined;
	bool need_rset;              /* a transaction was left open */
	bool mail_failed;
	struct smtp_client_reply mail_reply;
	bool body_8bit, body_utf8;
	struct smtp_dotstuff ds;
	size_t body_pos;
	bool body_done;
	bool out_failed;             /* could not buffer output: no memory */
};

static void smtp_client_read_cb(struct bufferevent *bev, void *arg);
static void smtp_client_write_cb(struct bufferevent *bev, void *arg);
static void smtp_client_event_cb(struct bufferevent *bev, short what, void *arg);
static void smtp_client_timer_cb(evutil_socket_t fd, short what, void *arg);
static void smtp_client_abort(struct smtp_client *c, const struct smtp_client_reply *why);
static void smtp_client_fail(struct smtp_client *c, enum smtp_client_status status,
    const char *enhanced, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static const char *
smtp_client_id(const struct smtp_client *c)
{
	return c->log_id[0] != '\0' ? c->log_id : "-";
}

/* The one place the state changes; it arms the step's timer. */
static void
smtp_client_enter_state(struct smtp_client *c, enum smtp_client_state state)
{
	struct timeval tv = { 0 };

	if (c->state != state)
		log_debug("event=smtp_client.state id=%s peer=%s ip=%s from=%s to=%s",
		    smtp_client_id(c), c->peer, c->ip, state_names[c->state], state_names[state]);
	c->state = state;
	switch (state) {
	case SMTP_CLIENT_S_CONNECTING:
		tv.tv_sec = c->to.connect;
		break;
	case SMTP_CLIENT_S_GREETING:
		tv.tv_sec = c->to.greeting;
		break;
	case SMTP_CLIENT_S_EHLO:
	case SMTP_CLIENT_S_HELO:
	case SMTP_CLIENT_S_STARTTLS:
	case SMTP_CLIENT_S_HANDSHAKE:
	case SMTP_CLIENT_S_RSET:
	case SMTP_CLIENT_S_TX_RSET:
		tv.tv_sec = c->to.helo;
		break;
	case SMTP_CLIENT_S_MAIL:
		tv.tv_sec = c->to.mail;
		break;
	case SMTP_CLIENT_S_RCPT:
		tv.tv_sec = c->to.rcpt;
		break;
	case SMTP_CLIENT_S_DATA:
		tv.tv_sec = c->to.data_init;
		break;
	case SMTP_CLIENT_S_DOT:
		tv.tv_sec = c->to.data_final;
		break;
	case SMTP_CLIENT_S_QUIT:
		tv.tv_sec = c->to.helo < SMTP_CLIENT_QUIT_TIMEOUT ? c->to.helo : SMTP_CLIENT_QUIT_TIMEOUT;
		break;
	case SMTP_CLIENT_S_BODY:      /* the bufferevent's write timeout (data_block) */
	case SMTP_CLIENT_S_READY:     /* the caller decides how long to keep it */
	case SMTP_CLIENT_S_CLOSED:
		evtimer_del(c->timer);
		return;
	}
	evtimer_add(c->timer, &tv);
}

static void
smtp_client_set_reply(struct smtp_client_reply *r, enum smtp_client_status status,
    const char *enhanced, const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void
smtp_client_set_reply(struct smtp_client_reply *r, enum smtp_client_status status,
    const char *enhanced, const char *fmt, va_list ap)
{
	memset(r, 0, sizeof(*r));
	r->status = status;
	r->code = 0;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
}

static void
smtp_client_local_reply(struct smtp_client_reply *r, enum smtp_client_status status,
    const char *enhanced, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
smtp_client_local_reply(struct smtp_client_reply *r, enum smtp_client_status status,
    const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_client_set_reply(r, status, enhanced, fmt, ap);
	va_end(ap);
}

static void
smtp_client_schedule(struct smtp_client *c, enum smtp_client_notify what)
{
	c->notify = what;
	event_active(c->ev_notify, EV_TIMEOUT, 1);
}

/* Drop the connection (not the object): no more I/O, no more timers. */
static void
smtp_client_close(struct smtp_client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	smtp_client_enter_state(c, SMTP_CLIENT_S_CLOSED);
}

static void
smtp_client_destroy(struct smtp_client *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->ev_notify != NULL)
		event_free(c->ev_notify);
	free(c->rcpt_results);
	free(c->sent_idx);
	free(c);
	smtp_client_live--;
}

static void
smtp_client_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	enum smtp_client_notify n = c->notify;

	c->notify = SMTP_CLIENT_N_NONE;
	/* Each call is the last thing done here: the caller may free c. */
	switch (n) {
	case SMTP_CLIENT_N_READY:
		c->ready_cb(c->cb_arg, c, &c->result);
		return;
	case SMTP_CLIENT_N_SENT:
		c->sent_cb(c->cb_arg, c, &c->result, c->rcpt_results, c->msg.nrcpts);
		return;
	case SMTP_CLIENT_N_RESET:
		c->reset_cb(c->cb_arg, c, &c->result);
		return;
	case SMTP_CLIENT_N_NONE:
		return;
	}
}

static void
smtp_client_write(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
smtp_client_write(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (c->bev == NULL)
		return;
	va_start(ap, fmt);
	r = evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
	if (r < 0 || evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2) == -1)
		c->out_failed = true;
}

static void
smtp_client_log_reply(const struct smtp_client *c, const char *what,
    const struct smtp_client_reply *r)
{
	char esc[LOG_ESCAPE_MAX];

	log_info("event=smtp_client.%s id=%s peer=%s ip=%s status=%s code=%d enhanced=%s text=%s",
	    what, smtp_client_id(c), c->peer, c->ip, smtp_client_status_name(r->status), r->code,
	    r->enhanced[0] != '\0' ? r->enhanced : "-",
	    log_escape(esc, sizeof(esc), r->text, strlen(r->text)));
}

/* ---- connection set-up ---- */

static void
smtp_client_ready(struct smtp_client *c)
{
	const char *nl;

	c->result = c->helo_reply;
	if ((nl = strchr(c->result.text, '\n')) != NULL)
		c->result.text[nl - c->result.text] = '\0';
	smtp_client_enter_state(c, SMTP_CLIENT_S_READY);
	log_info("event=smtp_client.ready id=%s peer=%s ip=%s esmtp=%s pipelining=%s size=%" PRIu64
	    " 8bitmime=%s smtputf8=%s tls=%s verify=\"%s\"", smtp_client_id(c), c->peer, c->ip,
	    c->ehlo.ext != 0 ? "yes" : "no", (c->ehlo.ext & SMTP_EXT_PIPELINING) ? "yes" : "no",
	    c->ehlo.size_max, (c->ehlo.ext & SMTP_EXT_8BITMIME) ? "yes" : "no",
	    (c->ehlo.ext & SMTP_EXT_SMTPUTF8) ? "yes" : "no", c->tls ? "yes" : "no", c->tls_verify);
	smtp_client_schedule(c, SMTP_CLIENT_N_READY);
}

static void
smtp_client_send_ehlo(struct smtp_client *c)
{
	smtp_client_write(c, "EHLO %s", c->helo);
	smtp_client_enter_state(c, SMTP_CLIENT_S_EHLO);
}

static void
smtp_client_start_tls(struct smtp_client *c)
{
	struct bufferevent *tlsbev;
	SSL *ssl;

	/* Bytes after the 220 would be read as if they came over TLS
	 * (the client side of CVE-2011-0411): refuse. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.7.0",
		    "%s sent data after its STARTTLS reply (injection attempt)", c->peer);
		return;
	}
	if ((ssl = SSL_new(c->tls_ctx)) == NULL)
		goto fail;
	if (c->peer_is_ip) {
		if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->peer))
			goto fail_ssl;
	} else if (!SSL_set_tlsext_host_name(ssl, c->peer) || !SSL_set1_host(ssl, c->peer))
		goto fail_ssl;
	/* Verify, record, go on whatever the result (RFC 7435). */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	tlsbev = bufferevent_openssl_filter_new(c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tlsbev == NULL)
		goto fail_ssl;
	c->bev = tlsbev;
	bufferevent_setcb(c->bev, smtp_client_read_cb, smtp_client_write_cb,
	    smtp_client_event_cb, c);
	{
		struct timeval wt = { .tv_sec = c->to.data_block };

		bufferevent_set_timeouts(c->bev, NULL, &wt);
	}
	bufferevent_setwatermark(c->bev, EV_WRITE, SMTP_CLIENT_OUTPUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	smtp_client_enter_state(c, SMTP_CLIENT_S_HANDSHAKE);
	return;
fail_ssl:
	SSL_free(ssl);
fail:
	log_ssl_errors("smtp_client.starttls");
	smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.7.0", "cannot start TLS with %s", c->peer);
}

/* The handshake is done: record the verification result, then EHLO again. */
static void
smtp_client_tls_ready(struct smtp_client *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	X509 *cert = SSL_get0_peer_certificate(ssl);
	long v = SSL_get_verify_result(ssl);

	c->tls = true;
	tls_describe(ssl, c->tls_desc, sizeof(c->tls_desc));
	if (cert == NULL)
		snprintf(c->tls_verify, sizeof(c->tls_verify), "unverified: no certificate");
	else if (v == X509_V_OK)
		snprintf(c->tls_verify, sizeof(c->tls_verify), "verified");
	else
		snprintf(c->tls_verify, sizeof(c->tls_verify), "unverified: %s",
		    X509_verify_cert_error_string(v));
	log_info("event=smtp_client.tls id=%s peer=%s ip=%s tls=\"%s\" verify=\"%s\"",
	    smtp_client_id(c), c->peer, c->ip, c->tls_desc, c->tls_verify);
	/* RFC 3207 4.2: forget what was learnt before TLS. */
	memset(&c->ehlo, 0, sizeof(c->ehlo));
	smtp_client_send_ehlo(c);
}

struct smtp_client *
smtp_client_connect(struct event_base *base, SSL_CTX *tls_ctx,
    const struct sockaddr *addr, socklen_t addrlen, const char *peer_name,
    const char *helo, const struct smtp_client_options *opts,
    smtp_client_ready_cb *cb, void *arg)
{
	static const struct smtp_client_timeouts defaults = {
		.connect = 30, .greeting = 300, .helo = 300, .mail = 300, .rcpt = 300,
		.data_init = 120, .data_block = 180, .data_final = 600,
	};
	struct smtp_client *c;
	struct in6_addr a6;
	struct timeval wt;

	if (strlen(peer_name) > SMTP_DOMAIN_MAX || strlen(helo) > SMTP_DOMAIN_MAX ||
	    strpbrk(helo, " \r\n") != NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	smtp_client_live++;
	c->base = base;
	c->tls_ctx = tls_ctx;
	c->ready_cb = cb;
	c->cb_arg = arg;
	c->to = defaults;
	if (opts != NULL) {
		const struct smtp_client_timeouts *t = &opts->timeouts;

#define SMTP_CLIENT_TO(f) if (t->f > 0) c->to.f = t->f
		SMTP_CLIENT_TO(connect); SMTP_CLIENT_TO(greeting); SMTP_CLIENT_TO(helo);
		SMTP_CLIENT_TO(mail); SMTP_CLIENT_TO(rcpt); SMTP_CLIENT_TO(data_init);
		SMTP_CLIENT_TO(data_block); SMTP_CLIENT_TO(data_final);
#undef SMTP_CLIENT_TO
		if (opts->log_id != NULL)
			snprintf(c->log_id, sizeof(c->log_id), "%s", opts->log_id);
		c->no_starttls = opts->no_starttls;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", peer_name);
	snprintf(c->helo, sizeof(c->helo), "%s", helo);
	c->peer_is_ip = inet_pton(AF_INET, peer_name, &a6) == 1 ||
	    inet_pton(AF_INET6, peer_name, &a6) == 1;
	sockaddr_format_ip(addr, c->ip, sizeof(c->ip));
	snprintf(c->tls_verify, sizeof(c->tls_verify), "none");
	smtp_reply_parser_init(&c->rp);
	c->timer = evtimer_new(base, smtp_client_timer_cb, c);
	c->ev_notify = event_new(base, -1, 0, smtp_client_notify_cb, c);
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->timer == NULL || c->ev_notify == NULL || c->bev == NULL) {
		smtp_client_destroy(c);
		errno = ENOMEM;
		return NULL;
	}
	bufferevent_setcb(c->bev, smtp_client_read_cb, smtp_client_write_cb,
	    smtp_client_event_cb, c);
	wt.tv_sec = c->to.data_block;
	wt.tv_usec = 0;
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	bufferevent_setwatermark(c->bev, EV_WRITE, SMTP_CLIENT_OUTPUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	smtp_client_enter_state(c, SMTP_CLIENT_S_CONNECTING);
	log_debug("event=smtp_client.connect id=%s peer=%s ip=%s", smtp_client_id(c), c->peer, c->ip);
	/* A failure here is reported through the event callback, on the loop. */
	(void)bufferevent_socket_connect(c->bev, (struct sockaddr *)addr, (int)addrlen);
	return c;
}

/* ---- failures ---- */

/*
 * The connection failed (lost, timed out, garbage, a refusal that ends it):
 * end whatever the caller waits for with why, and close. c may be gone
 * after this (a QUIT nobody waits for).
 */
static void
smtp_client_abort(struct smtp_client *c, const struct smtp_client_reply *why)
{
	enum smtp_client_state was = c->state;

	smtp_client_close(c);
	switch (was) {
	case SMTP_CLIENT_S_CONNECTING:
	case SMTP_CLIENT_S_GREETING:
	case SMTP_CLIENT_S_EHLO:
	case SMTP_CLIENT_S_HELO:
	case SMTP_CLIENT_S_STARTTLS:
	case SMTP_CLIENT_S_HANDSHAKE:
		c->result = *why;
		smtp_client_log_reply(c, "failed", &c->result);
		smtp_client_schedule(c, SMTP_CLIENT_N_READY);
		return;
	case SMTP_CLIENT_S_RSET:
		c->result = *why;
		smtp_client_log_reply(c, "failed", &c->result);
		smtp_client_schedule(c, SMTP_CLIENT_N_RESET);
		return;
	case SMTP_CLIENT_S_TX_RSET:
	case SMTP_CLIENT_S_MAIL:
	case SMTP_CLIENT_S_RCPT:
	case SMTP_CLIENT_S_DATA:
	case SMTP_CLIENT_S_BODY:
	case SMTP_CLIENT_S_DOT:
		c->result = *why;
		/* Every recipient not refused yet shares the failure. */
		for (size_t i = 0; i < c->msg.nrcpts; i++)
			if (c->rcpt_results[i].status == SMTP_CLIENT_OK)
				c->rcpt_results[i] = c->result;
		smtp_client_log_reply(c, "sent", &c->result);
		smtp_client_schedule(c, SMTP_CLIENT_N_SENT);
		return;
	case SMTP_CLIENT_S_QUIT:
		smtp_client_destroy(c);   /* nobody waits for a QUIT */
		return;
	case SMTP_CLIENT_S_READY:
	case SMTP_CLIENT_S_CLOSED:
		/* Nobody waits (a result may still be on its way to the caller,
		 * untouched): smtp_client_usable() says it. */
		log_info("event=smtp_client.closed id=%s peer=%s ip=%s reason=\"%s\"",
		    smtp_client_id(c), c->peer, c->ip, why->text);
		return;
	}
}

static void
smtp_client_fail(struct smtp_client *c, enum smtp_client_status status,
    const char *enhanced, const char *fmt, ...)
{
	struct smtp_client_reply why;
	va_list ap;

	va_start(ap, fmt);
	smtp_client_set_reply(&why, status, enhanced, fmt, ap);
	va_end(ap);
	smtp_client_abort(c, &why);
}

static void
smtp_client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	if (c->state == SMTP_CLIENT_S_QUIT) {
		smtp_client_destroy(c);
		return;
	}
	smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.4.2", "timeout with %s while waiting for %s",
	    c->peer, c->state == SMTP_CLIENT_S_CONNECTING ? "the connection" : state_names[c->state]);
}

static void
smtp_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	unsigned long e;
	char detail[256];

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == SMTP_CLIENT_S_CONNECTING) {
			log_debug("event=smtp_client.connected id=%s peer=%s ip=%s",
			    smtp_client_id(c), c->peer, c->ip);
			smtp_client_enter_state(c, SMTP_CLIENT_S_GREETING);
		} else if (c->state == SMTP_CLIENT_S_HANDSHAKE) {
			smtp_client_tls_ready(c);
		}
		return;
	}
	if (c->state == SMTP_CLIENT_S_QUIT) {
		smtp_client_destroy(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.4.2",
		    "timeout writing to %s while in %s", c->peer, state_names[c->state]);
		return;
	}
	if ((e = bufferevent_get_openssl_error(bev)) != 0) {
		ERR_error_string_n(e, detail, sizeof(detail));
		while (bufferevent_get_openssl_error(bev) != 0)
			;
		smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.7.5", "TLS error with %s: %s",
		    c->peer, detail);
		return;
	}
	if (c->state == SMTP_CLIENT_S_HANDSHAKE) {
		/* The peer dropped the handshake (an alert, a close): a TLS failure. */
		int err = EVUTIL_SOCKET_ERROR();

		smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.7.5", "TLS handshake with %s failed: %s",
		    c->peer, (what & BEV_EVENT_ERROR) && err != 0 ? evutil_socket_error_to_string(err) :
		    "connection closed");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();

		smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.4.1", "%s with %s while in %s",
		    c->state == SMTP_CLIENT_S_CONNECTING ? "cannot connect" : "connection error",
		    c->peer, err != 0 ? evutil_socket_error_to_string(err) : state_names[c->state]);
		return;
	}
	smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.4.2", "lost connection with %s while in %s",
	    c->peer, state_names[c->state]);
}

/* ---- transactions ---- */

static bool
smtp_client_addr_ok(const char *a, bool allow_empty)
{
	size_t n = strlen(a);

	if (n == 0)
		return allow_empty;
	/* Nothing that could end the command or the path early; a space only
	 * inside a quoted local part. */
	return n <= SMTP_CLIENT_ADDR_MAX && strpbrk(a, "\r\n<>") == NULL &&
	    strchr(a, '@') != NULL && (a[0] == '"' || strchr(a, ' ') == NULL);
}

static bool
smtp_client_non_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

static void
smtp_client_send_rcpt(struct smtp_client *c)
{
	smtp_client_write(c, "RCPT TO:<%s>", c->msg.rcpts[c->sent_idx[c->rcpt_sent++]]);
}

static void
smtp_client_send_mail(struct smtp_client *c)
{
	char size[32] = "";

	if (c->ehlo.ext & SMTP_EXT_SIZE)
		snprintf(size, sizeof(size), " SIZE=%zu", c->msg.len);
	smtp_client_write(c, "MAIL FROM:<%s>%s%s%s", c->msg.sender, size,
	    c->body_8bit ? " BODY=8BITMIME" : "", c->body_utf8 ? " SMTPUTF8" : "");
	if (c->pipelined)
		while (c->rcpt_sent < c->nsent)
			smtp_client_send_rcpt(c);
}

/* The transaction is over (with a reply or our verdict in c->result). */
static void
smtp_client_tx_done(struct smtp_client *c)
{
	smtp_client_log_reply(c, "sent", &c->result);
	if (c->bev != NULL)
		smtp_client_enter_state(c, SMTP_CLIENT_S_READY);
	smtp_client_schedule(c, SMTP_CLIENT_N_SENT);
}

/* Every recipient is refused here with the same verdict; nothing is sent. */
static void
smtp_client_refuse(struct smtp_client *c, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
smtp_client_refuse(struct smtp_client *c, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_client_set_reply(&c->result, SMTP_CLIENT_PERMFAIL, enhanced, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < c->msg.nrcpts; i++)
		if (c->rcpt_results[i].status == SMTP_CLIENT_OK)
			c->rcpt_results[i] = c->result;
	smtp_client_log_reply(c, "refused", &c->result);
	smtp_client_schedule(c, SMTP_CLIENT_N_SENT);
}

int
smtp_client_send(struct smtp_client *c, const struct smtp_client_message *m,
    smtp_client_sent_cb *cb, void *arg)
{
	bool has8bit, utf8_addrs = false, needs_utf8;
	size_t off;

	if (c->state == SMTP_CLIENT_S_CLOSED || c->bev == NULL) {
		errno = ENOTCONN;
		return -1;
	}
	if (c->state != SMTP_CLIENT_S_READY || c->notify != SMTP_CLIENT_N_NONE) {
		errno = EBUSY;
		return -1;
	}
	if (m->nrcpts == 0) {
		errno = EINVAL;
		return -1;
	}
	free(c->rcpt_results);
	free(c->sent_idx);
	c->rcpt_results = calloc(m->nrcpts, sizeof(*c->rcpt_results));
	c->sent_idx = calloc(m->nrcpts, sizeof(*c->sent_idx));
	if (c->rcpt_results == NULL || c->sent_idx == NULL) {
		free(c->rcpt_results);
		free(c->sent_idx);
		c->rcpt_results = NULL;
		c->sent_idx = NULL;
		errno = ENOMEM;
		return -1;
	}
	c->msg = *m;
	c->sent_cb = cb;
	c->cb_arg = arg;
	c->nsent = c->rcpt_sent = c->rcpt_replies = c->naccepted = 0;
	c->mail_failed = false;
	c->body_pos = 0;
	c->body_done = false;
	c->out_failed = false;

	/* What can be refused here is refused before a byte is sent. */
	if (smtp_client_scan_message(m->data, m->len, &has8bit, &off) == -1) {
		log_error("event=smtp_client.bad_message id=%s offset=%zu reason=\"bare CR or LF: "
		    "the spool must hold CRLF only\"", smtp_client_id(c), off);
		smtp_client_refuse(c, "5.6.0", "message has a bare CR or LF at offset %zu "
		    "(local error, not sent)", off);
		return 0;
	}
	if (!smtp_client_addr_ok(m->sender, true)) {
		smtp_client_refuse(c, "5.1.7", "bad sender address syntax (not sent)");
		return 0;
	}
	utf8_addrs = smtp_client_non_ascii(m->sender);
	for (size_t i = 0; i < m->nrcpts; i++) {
		if (!smtp_client_addr_ok(m->rcpts[i], false)) {
			smtp_client_local_reply(&c->rcpt_results[i], SMTP_CLIENT_PERMFAIL, "5.1.3",
			    "bad recipient address syntax (not sent)");
			continue;
		}
		utf8_addrs |= smtp_client_non_ascii(m->rcpts[i]);
		c->sent_idx[c->nsent++] = i;
	}
	if (c->nsent == 0) {
		c->result = c->rcpt_results[0];
		smtp_client_log_reply(c, "refused", &c->result);
		smtp_client_schedule(c, SMTP_CLIENT_N_SENT);
		return 0;
	}
	if ((c->ehlo.ext & SMTP_EXT_SIZE) && c->ehlo.size_max > 0 && m->len > c->ehlo.size_max) {
		smtp_client_refuse(c, "5.3.4", "message size %zu exceeds the limit of %s (%" PRIu64 ")",
		    m->len, c->peer, c->ehlo.size_max);
		return 0;
	}
	if (has8bit && !(c->ehlo.ext & SMTP_EXT_8BITMIME)) {
		smtp_client_refuse(c, "5.6.3", "%s does not support 8BITMIME and the message has "
		    "8-bit content (conversion not supported)", c->peer);
		return 0;
	}
	needs_utf8 = utf8_addrs || ((m->flags & SMTP_CLIENT_MSG_SMTPUTF8) && has8bit);
	if (needs_utf8 && !(c->ehlo.ext & SMTP_EXT_SMTPUTF8)) {
		smtp_client_refuse(c, "5.6.7", "%s does not support SMTPUTF8, which the message needs",
		    c->peer);
		return 0;
	}
	c->body_8bit = (c->ehlo.ext & SMTP_EXT_8BITMIME) &&
	    (has8bit || (m->flags & SMTP_CLIENT_MSG_8BITMIME));
	c->body_utf8 = (c->ehlo.ext & SMTP_EXT_SMTPUTF8) &&
	    (utf8_addrs || (m->flags & SMTP_CLIENT_MSG_SMTPUTF8));
	c->pipelined = (c->ehlo.ext & SMTP_EXT_PIPELINING) != 0;

	if (c->need_rset) {
		smtp_client_write(c, "RSET");
		if (c->pipelined)
			smtp_client_send_mail(c);
		smtp_client_enter_state(c, SMTP_CLIENT_S_TX_RSET);
	} else {
		smtp_client_send_mail(c);
		smtp_client_enter_state(c, SMTP_CLIENT_S_MAIL);
	}
	if (c->out_failed)
		smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.3.0", "out of memory");
	return 0;
}

static void
smtp_client_dotstuff_emit(void *ctx, const char *data, size_t len)
{
	struct smtp_client *c = ctx;

	if (evbuffer_add(bufferevent_get_output(c->bev), data, len) == -1)
		c->out_failed = true;
}

/* Stuff the body into the output up to the high-water mark. */
static void
smtp_client_body_fill(struct smtp_client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (!c->body_done && evbuffer_get_length(out) < SMTP_CLIENT_OUTPUT_HIGH) {
		size_t n = c->msg.len - c->body_pos;
		int r;

		if (n > SMTP_CLIENT_BODY_CHUNK)
			n = SMTP_CLIENT_BODY_CHUNK;
		r = smtp_dotstuff_feed(&c->ds, c->msg.data + c->body_pos, n);
		c->body_pos += n;
		if (r == 0 && c->body_pos == c->msg.len) {
			r = smtp_dotstuff_finish(&c->ds);
			c->body_done = true;
		}
		if (r == -1) {
			/* Scanned before MAIL: only memory corruption gets here. The
			 * end marker must never follow a partial body: hang up. */
			log_error("event=smtp_client.bad_message id=%s reason=\"bare CR or LF in the body\"",
			    smtp_client_id(c));
			smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.3.0", "local error: bad message body");
			return;
		}
		if (c->out_failed) {
			smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.3.0", "out of memory");
			return;
		}
	}
	if (c->body_done)
		smtp_client_enter_state(c, SMTP_CLIENT_S_DOT);
}

/* Every RCPT has its reply: DATA if one was accepted, else the end. */
static void
smtp_client_rcpts_done(struct smtp_client *c)
{
	if (c->mail_failed) {
		c->result = c->mail_reply;
		smtp_client_tx_done(c);
		return;
	}
	if (c->naccepted == 0) {
		/* The most hopeful refusal speaks for the message. */
		size_t best = c->sent_idx[0];

		for (size_t k = 0; k < c->nsent; k++)
			if (c->rcpt_results[c->sent_idx[k]].status == SMTP_CLIENT_TEMPFAIL) {
				best = c->sent_idx[k];
				break;
			}
		c->result = c->rcpt_results[best];
		smtp_client_tx_done(c);
		return;
	}
	smtp_client_write(c, "DATA");
	smtp_client_enter_state(c, SMTP_CLIENT_S_DATA);
}

/* A complete reply, read in state c->state. c may be closed or gone after it. */
static void
smtp_client_handle_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
	char esc[LOG_ESCAPE_MAX];

	log_debug("event=smtp_client.reply id=%s peer=%s state=%s code=%d text=%s",
	    smtp_client_id(c), c->peer, state_names[c->state], r->code,
	    log_escape(esc, sizeof(esc), r->text, strlen(r->text)));
	switch (c->state) {
	case SMTP_CLIENT_S_GREETING:
		if (r->code != 220) {
			/* A 554 greeting is about this host: try the next one
			 * (Postfix's smtp_skip_5xx_greeting). */
			c->result = *r;
			c->result.status = SMTP_CLIENT_TEMPFAIL;
			smtp_client_close(c);
			smtp_client_log_reply(c, "failed", &c->result);
			smtp_client_schedule(c, SMTP_CLIENT_N_READY);
			return;
		}
		smtp_client_send_ehlo(c);
		return;
	case SMTP_CLIENT_S_EHLO:
		if (r->code / 100 == 5) {
			smtp_client_write(c, "HELO %s", c->helo);
			smtp_client_enter_state(c, SMTP_CLIENT_S_HELO);
			return;
		}
		if (r->code / 100 != 2)
			break;
		c->helo_reply = *r;
		smtp_client_parse_ehlo(r->text, &c->ehlo);
		if ((c->ehlo.ext & SMTP_EXT_STARTTLS) && c->tls_ctx != NULL && !c->tls &&
		    !c->no_starttls) {
			smtp_client_write(c, "STARTTLS");
			smtp_client_enter_state(c, SMTP_CLIENT_S_STARTTLS);
			return;
		}
		smtp_client_ready(c);
		return;
	case SMTP_CLIENT_S_HELO:
		if (r->code / 100 != 2)
			break;
		c->helo_reply = *r;
		memset(&c->ehlo, 0, sizeof(c->ehlo));
		smtp_client_ready(c);
		return;
	case SMTP_CLIENT_S_STARTTLS:
		if (r->code == 220) {
			smtp_client_start_tls(c);
			return;
		}
		/* RFC 3207 4: go on in plaintext, and say so. */
		log_info("event=smtp_client.starttls_refused id=%s peer=%s ip=%s code=%d",
		    smtp_client_id(c), c->peer, c->ip, r->code);
		if (r->code == 421)
			break;
		snprintf(c->tls_verify, sizeof(c->tls_verify), "none");
		smtp_client_ready(c);
		return;
	case SMTP_CLIENT_S_RSET:
		c->result = *r;
		if (r->code / 100 != 2) {
			smtp_client_close(c);
			smtp_client_schedule(c, SMTP_CLIENT_N_RESET);
			return;
		}
		c->need_rset = false;
		smtp_client_enter_state(c, SMTP_CLIENT_S_READY);
		smtp_client_schedule(c, SMTP_CLIENT_N_RESET);
		return;
	case SMTP_CLIENT_S_TX_RSET:
		if (r->code / 100 != 2) {
			smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.4.0", "%s refused RSET: %d %s",
			    c->peer, r->code, r->text);
			return;
		}
		c->need_rset = false;
		if (!c->pipelined)
			smtp_client_send_mail(c);
		smtp_client_enter_state(c, SMTP_CLIENT_S_MAIL);
		return;
	case SMTP_CLIENT_S_MAIL:
		c->mail_reply = *r;
		if (r->code / 100 == 2) {
			c->need_rset = true;   /* until the final reply ends it */
		} else {
			if (r->code / 100 != 4 && r->code / 100 != 5)
				c->mail_reply.status = SMTP_CLIENT_TEMPFAIL;
			c->mail_failed = true;
			if (!c->pipelined) {
				c->result = c->mail_reply;
				for (size_t k = 0; k < c->nsent; k++)
					c->rcpt_results[c->sent_idx[k]] = c->mail_reply;
				if (r->code == 421)
					break;
				smtp_client_tx_done(c);
				return;
			}
		}
		if (!c->pipelined)
			smtp_client_send_rcpt(c);
		smtp_client_enter_state(c, SMTP_CLIENT_S_RCPT);
		return;
	case SMTP_CLIENT_S_RCPT: {
		struct smtp_client_reply *res = &c->rcpt_results[c->sent_idx[c->rcpt_replies++]];

		if (c->mail_failed) {
			*res = c->mail_reply;   /* the 503s that follow say nothing new */
		} else {
			*res = *r;
			if (r->code / 100 == 2)
				c->naccepted++;
			else if (r->code / 100 != 4 && r->code / 100 != 5)
				res->status = SMTP_CLIENT_TEMPFAIL;
		}
		if (r->code == 421)
			break;
		if (c->rcpt_replies < c->nsent) {
			if (!c->pipelined)
				smtp_client_send_rcpt(c);
			smtp_client_enter_state(c, SMTP_CLIENT_S_RCPT);   /* re-arms per RCPT */
			return;
		}
		smtp_client_rcpts_done(c);
		return;
	}
	case SMTP_CLIENT_S_DATA:
		if (r->code == 354) {
			smtp_dotstuff_init(&c->ds, smtp_client_dotstuff_emit, c);
			smtp_client_enter_state(c, SMTP_CLIENT_S_BODY);
			smtp_client_body_fill(c);
			return;
		}
		c->result = *r;
		if (r->code / 100 != 4 && r->code / 100 != 5)
			c->result.status = SMTP_CLIENT_TEMPFAIL;   /* 2xx to DATA: confused */
		for (size_t k = 0; k < c->nsent; k++)
			if (c->rcpt_results[c->sent_idx[k]].status == SMTP_CLIENT_OK)
				c->rcpt_results[c->sent_idx[k]] = c->result;
		if (r->code == 421 || r->code / 100 == 2)
			break;
		smtp_client_tx_done(c);
		return;
	case SMTP_CLIENT_S_BODY:
		/* A reply before the end of the body: the server gave up on it. */
		c->result = *r;
		if (c->result.status == SMTP_CLIENT_OK)
			c->result.status = SMTP_CLIENT_TEMPFAIL;
		for (size_t k = 0; k < c->nsent; k++)
			if (c->rcpt_results[c->sent_idx[k]].status == SMTP_CLIENT_OK)
				c->rcpt_results[c->sent_idx[k]] = c->result;
		smtp_client_close(c);
		smtp_client_tx_done(c);
		return;
	case SMTP_CLIENT_S_DOT:
		c->result = *r;
		if (r->code / 100 == 3)
			c->result.status = SMTP_CLIENT_TEMPFAIL;
		c->need_rset = false;   /* the final reply ends the transaction */
		for (size_t k = 0; k < c->nsent; k++)
			if (c->rcpt_results[c->sent_idx[k]].status == SMTP_CLIENT_OK)
				c->rcpt_results[c->sent_idx[k]] = c->result;
		if (r->code == 421)
			smtp_client_close(c);
		smtp_client_tx_done(c);
		return;
	case SMTP_CLIENT_S_QUIT:
		smtp_client_destroy(c);
		return;
	case SMTP_CLIENT_S_READY:
		/* Nobody asked: a 421 before an idle close, or garbage. */
		smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.4.0", "unexpected reply from %s: %d",
		    c->peer, r->code);
		return;
	case SMTP_CLIENT_S_CONNECTING:
	case SMTP_CLIENT_S_HANDSHAKE:
	case SMTP_CLIENT_S_CLOSED:
		return;
	}
	/* A reply that ends the connection (421, a 4xx to EHLO/HELO, a 2xx to
	 * DATA): the server's words, as a failure. */
	{
		struct smtp_client_reply why = *r;

		if (why.status == SMTP_CLIENT_OK || r->code == 421)
			why.status = SMTP_CLIENT_TEMPFAIL;
		smtp_client_abort(c, &why);
	}
}

static void
smtp_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	while (c->bev != NULL) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		size_t avail = evbuffer_get_contiguous_space(in), used = 0;
		struct smtp_client_reply r;
		const char *error;
		int ret;

		if (avail == 0)
			return;
		switch (c->state) {
		case SMTP_CLIENT_S_CONNECTING:
		case SMTP_CLIENT_S_HANDSHAKE:
		case SMTP_CLIENT_S_CLOSED:
			return;
		default:
			break;
		}
		ret = smtp_reply_parser_feed(&c->rp, (const char *)evbuffer_pullup(in, (ssize_t)avail),
		    avail, &used, &r, &error);
		evbuffer_drain(in, used);
		if (ret == 0)
			continue;
		if (ret == -1) {
			if (c->state == SMTP_CLIENT_S_QUIT) {
				smtp_client_destroy(c);
				return;
			}
			smtp_client_fail(c, SMTP_CLIENT_TEMPFAIL, "4.5.0", "bad reply from %s: %s",
			    c->peer, error);
			return;
		}
		if (c->state == SMTP_CLIENT_S_QUIT) {
			smtp_client_destroy(c);
			return;
		}
		if (c->state == SMTP_CLIENT_S_STARTTLS && r.code == 220) {
			smtp_client_handle_reply(c, &r);   /* no more reading in plaintext */
			return;
		}
		smtp_client_handle_reply(c, &r);
		/* handle_reply may have closed (c->bev NULL): the loop ends. A
		 * scheduled callback does not stop reading: what follows is a
		 * reply to something already pipelined, or garbage. */
	}
}

static void
smtp_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	if (c->state == SMTP_CLIENT_S_BODY)
		smtp_client_body_fill(c);
}

int
smtp_client_reset(struct smtp_client *c, smtp_client_reset_cb *cb, void *arg)
{
	if (c->state == SMTP_CLIENT_S_CLOSED || c->bev == NULL) {
		errno = ENOTCONN;
		return -1;
	}
	if (c->state != SMTP_CLIENT_S_READY || c->notify != SMTP_CLIENT_N_NONE) {
		errno = EBUSY;
		return -1;
	}
	c->reset_cb = cb;
	c->cb_arg = arg;
	smtp_client_write(c, "RSET");
	smtp_client_enter_state(c, SMTP_CLIENT_S_RSET);
	return 0;
}

size_t
smtp_client_count(void)
{
	return smtp_client_live;
}

bool
smtp_client_usable(const struct smtp_client *c)
{
	return c->bev != NULL && c->state == SMTP_CLIENT_S_READY && c->notify == SMTP_CLIENT_N_NONE;
}

const struct smtp_ehlo *
smtp_client_ehlo(const struct smtp_client *c)
{
	return &c->ehlo;
}

const char *
smtp_client_tls_verify(const struct smtp_client *c)
{
	return c->tls_verify;
}

const char *
smtp_client_tls_desc(const struct smtp_client *c)
{
	return c->tls_desc;
}

const char *
smtp_client_peer_name(const struct smtp_client *c)
{
	return c->peer;
}

void
smtp_client_quit(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	event_del(c->ev_notify);   /* the caller is gone: nothing more to say */
	c->notify = SMTP_CLIENT_N_NONE;
	if (c->bev == NULL || c->state != SMTP_CLIENT_S_READY) {
		smtp_client_destroy(c);
		return;
	}
	smtp_client_write(c, "QUIT");
	smtp_client_enter_state(c, SMTP_CLIENT_S_QUIT);
}

void
smtp_client_free(struct smtp_client **cp)
{
	if (*cp == NULL)
		return;
	smtp_client_destroy(*cp);
	*cp = NULL;
}

SSL_CTX *
smtp_client_tls_ctx_new(const char *cafile, char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	unsigned long e;
	char detail[256] = "unknown error";

	*error_r = NULL;
	if (ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (cafile != NULL ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(ctx) != 1)
		goto fail;
	return ctx;
fail:
	if ((e = ERR_peek_last_error()) != 0)
		ERR_error_string_n(e, detail, sizeof(detail));
	log_ssl_errors("smtp_client.tls_ctx");
	if (asprintf(error_r, "smtp client TLS context%s%s: %s", cafile != NULL ? " with " : "",
	    cafile != NULL ? cafile : "", detail) == -1)
		*error_r = NULL;
	SSL_CTX_free(ctx);
	return NULL;
}
