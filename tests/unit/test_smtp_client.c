/*
 * test_smtp_client.c: src/smtp/smtp_client*.c. Tables for the pure parts
 * (the reply reader, EHLO keywords, dot-stuffing, the message scan), each
 * run whole, byte by byte and split at every offset. Then the client on a
 * real loop: against a scripted in-process server (pipelining, HELO
 * fallback, refusals, 421, timeouts, garbage, STARTTLS injection, lost
 * connections, reuse, backpressure), and against tests/integration/sink.py
 * (aiosmtpd sinks, dnslib DNS) end to end: MX lookup, delivery, per-recipient
 * 451/550, STARTTLS with verified and unverified certificates, SIZE,
 * 8BITMIME, SMTPUTF8. The sink tests are skipped without python3-aiosmtpd.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/log.h"
#include "dns/dns.h"
#include "smtp/smtp_client.h"
#include "sink_spawn.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the reply reader ---- */

#define MAX_OUT 4

struct reply_expect {
	int code;                 /* 0: an error */
	const char *enhanced;
	const char *text;         /* NULL: not checked */
	enum smtp_client_status status;
	const char *error;        /* for code 0: a substring */
};

struct reply_case {
	const char *name;
	const char *in;
	const char *fill;         /* in + fill * nfill + post */
	size_t nfill;
	const char *post;
	struct reply_expect out[MAX_OUT];
	bool partial;             /* the input ends inside a reply */
};

#define R(c, e, t, s) { .code = (c), .enhanced = (e), .text = (t), .status = (s) }
#define RERR(e) { .code = 0, .error = (e) }

static const struct reply_case reply_cases[] = {
	{ .name = "greeting", .in = "220 mx.test ESMTP\r\n",
	  .out = { R(220, "", "mx.test ESMTP", SMTP_CLIENT_OK) } },
	{ .name = "multi-line", .in = "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
	  .out = { R(250, "", "mx.test\nPIPELINING\nSIZE 100", SMTP_CLIENT_OK) } },
	{ .name = "enhanced", .in = "550 5.1.1 No such user\r\n",
	  .out = { R(550, "5.1.1", "No such user", SMTP_CLIENT_PERMFAIL) } },
	{ .name = "enhanced on every line", .in = "451-4.3.0 first\r\n451 4.3.0 second\r\n",
	  .out = { R(451, "4.3.0", "first\nsecond", SMTP_CLIENT_TEMPFAIL) } },
	{ .name = "enhanced of another class is text", .in = "550 4.1.1 odd\r\n",
	  .out = { R(550, "", "4.1.1 odd", SMTP_CLIENT_PERMFAIL) } },
	{ .name = "enhanced with long parts", .in = "250 2.123.456 ok\r\n",
	  .out = { R(250, "2.123.456", "ok", SMTP_CLIENT_OK) } },
	{ .name = "not enhanced: too many digits", .in = "250 2.1234.5 ok\r\n",
	  .out = { R(250, "", "2.1234.5 ok", SMTP_CLIENT_OK) } },
	{ .name = "enhanced alone", .in = "250 2.0.0\r\n", .out = { R(250, "2.0.0", "", SMTP_CLIENT_OK) } },
	{ .name = "code alone", .in = "250\r\n", .out = { R(250, "", "", SMTP_CLIENT_OK) } },
	{ .name = "354 is fine", .in = "354 go ahead\r\n", .out = { R(354, "", "go ahead", SMTP_CLIENT_OK) } },
	{ .name = "bare LF tolerated", .in = "250-a\n250 b\n", .out = { R(250, "", "a\nb", SMTP_CLIENT_OK) } },
	{ .name = "pipelined replies", .in = "250 a\r\n550 5.1.1 b\r\n451 c\r\n",
	  .out = { R(250, "", "a", SMTP_CLIENT_OK), R(550, "5.1.1", "b", SMTP_CLIENT_PERMFAIL),
	      R(451, "", "c", SMTP_CLIENT_TEMPFAIL) } },
	{ .name = "partial", .in = "250-a\r\n250 b", .partial = true },
	{ .name = "no code", .in = "hello\r\n", .out = { RERR("no reply code") } },
	{ .name = "short code", .in = "25\r\n", .out = { RERR("no reply code") } },
	{ .name = "1xx", .in = "150 x\r\n", .out = { RERR("no reply code") } },
	{ .name = "6xx", .in = "650 x\r\n", .out = { RERR("no reply code") } },
	{ .name = "no separator", .in = "2500 x\r\n", .out = { RERR("separator") } },
	{ .name = "code changes", .in = "250-a\r\n251 b\r\n", .out = { RERR("changes") } },
	{ .name = "NUL", .in = "250 a\0b\r\n", .out = { RERR("NUL") } },
	{ .name = "bare CR", .in = "250 a\rb\r\n", .out = { RERR("bare CR") } },
	{ .name = "after a good reply", .in = "250 ok\r\ngarbage\r\n",
	  .out = { R(250, "", "ok", SMTP_CLIENT_OK), RERR("no reply code") } },
	{ .name = "line of 4096 with CRLF", .in = "250 ", .fill = "x", .nfill = 4090, .post = "\r\n",
	  .out = { R(250, "", NULL, SMTP_CLIENT_OK) } },
	{ .name = "line of 4097 with CRLF", .in = "250 ", .fill = "x", .nfill = 4091, .post = "\r\n",
	  .out = { RERR("too long") } },
	{ .name = "endless line", .in = "250 ", .fill = "x", .nfill = 100000, .out = { RERR("too long") } },
	{ .name = "256 lines", .in = "", .fill = "250-x\r\n", .nfill = 255, .post = "250 x\r\n",
	  .out = { R(250, "", NULL, SMTP_CLIENT_OK) } },
	{ .name = "257 lines", .in = "", .fill = "250-x\r\n", .nfill = 256, .post = "250 x\r\n",
	  .out = { RERR("too many lines") } },
	{ .name = "long text is cut, not refused", .in = "250-", .fill = "y", .nfill = 3000,
	  .post = "\r\n250 end\r\n", .out = { R(250, "", NULL, SMTP_CLIENT_OK) } },
};

static char *
make_input(const char *in, const char *fill, size_t nfill, const char *post, size_t *len_r)
{
	size_t inlen = strlen(in);
	size_t flen = fill != NULL ? strlen(fill) : 0, plen = post != NULL ? strlen(post) : 0;
	size_t len = inlen + flen * nfill + plen;
	char *buf = malloc(len + 1), *p = buf;

	assert_non_null(buf);
	memcpy(p, in, inlen);
	p += inlen;
	for (size_t i = 0; i < nfill; i++, p += flen)
		memcpy(p, fill, flen);
	if (plen > 0)
		memcpy(p, post, plen);
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

struct reply_got {
	struct smtp_client_reply r[MAX_OUT];
	const char *error[MAX_OUT];
	size_t n;
	bool partial;
};

/* Feed buf in pieces of step bytes (0: whole), or split once at cut. */
static void
reply_run(const char *buf, size_t len, size_t step, size_t cut, struct reply_got *got)
{
	struct smtp_reply_parser *p = malloc(sizeof(*p));
	size_t off = 0;

	assert_non_null(p);
	smtp_reply_parser_init(p);
	memset(got, 0, sizeof(*got));
	while (off < len && got->n < MAX_OUT) {
		size_t n = step != 0 ? step : (cut != 0 && off < cut ? cut - off : len - off);
		size_t used = 0;
		const char *error = NULL;
		char *piece;
		int ret;

		if (n > len - off)
			n = len - off;
		piece = malloc(n);   /* exact size: ASan sees overreads */
		assert_non_null(piece);
		memcpy(piece, buf + off, n);
		ret = smtp_reply_parser_feed(p, piece, n, &used, &got->r[got->n], &error);
		free(piece);
		assert_true(used <= n);
		off += used;
		if (ret == 1) {
			got->n++;
			continue;
		}
		if (ret == -1) {
			got->error[got->n++] = error;
			break;
		}
		assert_int_equal(used, n);
	}
	got->partial = p->len > 0 || p->nlines > 0;
	free(p);
}

static void
reply_check(const struct reply_case *c, const struct reply_got *got, const char *how)
{
	size_t n = 0;

	while (n < MAX_OUT && (c->out[n].code != 0 || c->out[n].error != NULL))
		n++;
	if (got->n != n)
		fail_msg("%s (%s): %zu results, expected %zu", c->name, how, got->n, n);
	for (size_t i = 0; i < n; i++) {
		const struct reply_expect *e = &c->out[i];

		if (e->code == 0) {
			if (got->error[i] == NULL || strstr(got->error[i], e->error) == NULL)
				fail_msg("%s (%s): error '%s', expected '%s'", c->name, how,
				    got->error[i] != NULL ? got->error[i] : "(none)", e->error);
			continue;
		}
		if (got->error[i] != NULL)
			fail_msg("%s (%s): error %s", c->name, how, got->error[i]);
		assert_int_equal(got->r[i].code, e->code);
		assert_string_equal(got->r[i].enhanced, e->enhanced);
		assert_int_equal(got->r[i].status, e->status);
		if (e->text != NULL)
			assert_string_equal(got->r[i].text, e->text);
		assert_true(strlen(got->r[i].text) < SMTP_CLIENT_TEXT_MAX);
	}
	if (c->partial)
		assert_true(got->partial);
}

static void
test_reply_parser(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(reply_cases); i++) {
		const struct reply_case *c = &reply_cases[i];
		struct reply_got whole, got;
		size_t len;
		char *buf;

		if (strcmp(c->name, "NUL") == 0) {
			len = 9;
			buf = malloc(len);
			assert_non_null(buf);
			memcpy(buf, "250 a\0b\r\n", len);
		} else {
			buf = make_input(c->in, c->fill, c->nfill, c->post, &len);
		}
		reply_run(buf, len, 0, 0, &whole);
		reply_check(c, &whole, "whole");
		if (len <= 20000) {
			reply_run(buf, len, 1, 0, &got);
			reply_check(c, &got, "byte by byte");
		}
		for (size_t cut = 1; cut < len && len <= 600; cut++) {
			reply_run(buf, len, 0, cut, &got);
			reply_check(c, &got, "split");
		}
		free(buf);
	}
}

/* ---- EHLO keywords ---- */

static void
test_ehlo_parse(void **state)
{
	static const struct {
		const char *text;
		unsigned ext;
		uint64_t size;
	} cases[] = {
		{ .text = "mx.test\nPIPELINING\nSIZE 1000\n8BITMIME\nSTARTTLS",
		  .ext = SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_STARTTLS,
		  .size = 1000 },
		{ .text = "mx.test\npipelining\nsize\nsmtputf8",
		  .ext = SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_SMTPUTF8 },
		{ .text = "mx.test\nSIZE abc", .ext = SMTP_EXT_SIZE },
		{ .text = "mx.test\nSIZE 12x", .ext = SMTP_EXT_SIZE },
		{ .text = "mx.test\nSIZE 99999999999999999999999", .ext = SMTP_EXT_SIZE },
		{ .text = "mx.test\nSIZE 0", .ext = SMTP_EXT_SIZE },
		{ .text = "mx.test\nAUTH PLAIN LOGIN\nX-UNKNOWN\nENHANCEDSTATUSCODES\nCHUNKING\nDSN",
		  .ext = SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_CHUNKING | SMTP_EXT_DSN },
		{ .text = "PIPELINING", .ext = 0 },   /* the first line is the greeting */
		{ .text = "mx.test\nPIPELININGX\nXPIPELINING\nSTART TLS", .ext = 0 },
		{ .text = "", .ext = 0 },
		{ .text = "mx.test\n\n\nSTARTTLS", .ext = SMTP_EXT_STARTTLS },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct smtp_ehlo e;

		smtp_client_parse_ehlo(cases[i].text, &e);
		if (e.ext != cases[i].ext || e.size_max != cases[i].size)
			fail_msg("'%s': ext %#x size %llu", cases[i].text, e.ext,
			    (unsigned long long)e.size_max);
	}
}

/* ---- dot-stuffing and the message scan ---- */

struct outbuf {
	char b[4096];
	size_t n;
};

static void
outbuf_emit(void *ctx, const char *data, size_t len)
{
	struct outbuf *o = ctx;

	assert_true(o->n + len <= sizeof(o->b));
	memcpy(o->b + o->n, data, len);
	o->n += len;
}

static const struct {
	const char *in;
	const char *out;     /* NULL: an error */
} stuff_cases[] = {
	{ .in = "", .out = ".\r\n" },
	{ .in = "a\r\n", .out = "a\r\n.\r\n" },
	{ .in = "a", .out = "a\r\n.\r\n" },
	{ .in = ".\r\n", .out = "..\r\n.\r\n" },
	{ .in = ".", .out = "..\r\n.\r\n" },
	{ .in = "a\r\n.b\r\n..c\r\n", .out = "a\r\n..b\r\n...c\r\n.\r\n" },
	{ .in = ".a\r\n\r\n.\r\n.", .out = "..a\r\n\r\n..\r\n..\r\n.\r\n" },
	{ .in = "a.b\r\n x.\r\n", .out = "a.b\r\n x.\r\n.\r\n" },
	{ .in = "\r\n.\r\n", .out = "\r\n..\r\n.\r\n" },
	{ .in = "a\nb", .out = NULL },
	{ .in = "a\rb", .out = NULL },
	{ .in = "a\r", .out = NULL },
	{ .in = "\n", .out = NULL },
	{ .in = "a\r\n\n", .out = NULL },
	{ .in = "a\r\r\n", .out = NULL },
};

/* Feed in pieces (step 0: whole; else split at cut, or byte by byte when cut is 0). */
static int
stuff_run(const char *in, size_t len, size_t step, size_t cut, struct outbuf *o)
{
	struct smtp_dotstuff d;
	size_t off = 0;

	o->n = 0;
	smtp_dotstuff_init(&d, outbuf_emit, o);
	while (off < len) {
		size_t n = step == 0 ? len : cut != 0 ? (off < cut ? cut - off : len - off) : 1;

		if (n > len - off)
			n = len - off;
		if (smtp_dotstuff_feed(&d, in + off, n) == -1)
			return -1;
		off += n;
	}
	return smtp_dotstuff_finish(&d);
}

static void
test_dotstuff(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(stuff_cases); i++) {
		const char *in = stuff_cases[i].in, *want = stuff_cases[i].out;
		size_t len = strlen(in);
		struct outbuf o;
		bool has8bit;
		size_t off;

		for (size_t mode = 0; mode <= len + 1; mode++) {
			/* mode 0: whole; 1: byte by byte; 2..: split at mode-1 */
			int r = stuff_run(in, len, mode == 0 ? 0 : 1, mode >= 2 ? mode - 1 : 0, &o);

			if (want == NULL) {
				if (r != -1)
					fail_msg("'%s' (mode %zu): accepted", in, mode);
				continue;
			}
			if (r != 0 || o.n != strlen(want) || memcmp(o.b, want, o.n) != 0)
				fail_msg("'%s' (mode %zu): got '%.*s'", in, mode, (int)o.n, o.b);
		}
		/* the scan agrees on what is CRLF-clean */
		assert_int_equal(smtp_client_scan_message(in, len, &has8bit, &off),
		    want == NULL ? -1 : 0);
	}
}

static void
test_scan_message(void **state)
{
	static const struct {
		const char *in;
		int ret;
		bool has8bit;
		size_t off;
	} cases[] = {
		{ .in = "", .ret = 0, .off = 0 },
		{ .in = "a\r\nb", .ret = 0, .off = 4 },
		{ .in = "caf\xc3\xa9\r\n", .ret = 0, .has8bit = true, .off = 7 },
		{ .in = "\x80", .ret = 0, .has8bit = true, .off = 1 },
		{ .in = "ab\ncd", .ret = -1, .off = 2 },
		{ .in = "ab\rcd", .ret = -1, .off = 3 },
		{ .in = "ab\r", .ret = -1, .off = 3 },
		{ .in = "\xff\r\n\n", .ret = -1, .has8bit = true, .off = 3 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool has8bit;
		size_t off;
		int r = smtp_client_scan_message(cases[i].in, strlen(cases[i].in), &has8bit, &off);

		assert_int_equal(r, cases[i].ret);
		assert_int_equal(has8bit, cases[i].has8bit);
		assert_int_equal(off, cases[i].off);
	}
}

/* ---- a scripted server on the loop ---- */

static struct event_base *base;

struct step {
	const char *expect;    /* a line ("X*" matches a prefix); NULL: send at once */
	const char *send;      /* NULL: say nothing */
	bool close;            /* hang up after sending */
};

struct fake {
	struct evconnlistener *l;
	int port;
	const struct step *steps;
	size_t nsteps, at;
	struct bufferevent *bev;
	char transcript[16384];
	size_t tlen;
	size_t lines;          /* every line read, with the body */
	size_t bytes;
	int early;             /* lines that came before our reply to the one before */
	bool closed;           /* the client hung up (or we did) */
	bool closing;          /* hang up once our output is out */
	const char *big_reply; /* sent instead of a step's text when it is "BIG" */
};

static bool
fake_match(const char *expect, const char *line)
{
	size_t n = strlen(expect);

	if (n > 0 && expect[n - 1] == '*')
		return strncmp(expect, line, n - 1) == 0;
	return strcmp(expect, line) == 0;
}

static void
fake_close(struct fake *f)
{
	f->closing = false;
	if (f->bev != NULL)
		bufferevent_free(f->bev);
	f->bev = NULL;
	f->closed = true;
}

/* Say a step's text; hang up after it has gone out, if the step says so. */
static void
fake_say(struct fake *f, const struct step *s)
{
	if (s->send != NULL) {
		const char *text = strcmp(s->send, "BIG") == 0 ? f->big_reply : s->send;

		bufferevent_write(f->bev, text, strlen(text));
	}
	if (s->close) {
		if (evbuffer_get_length(bufferevent_get_output(f->bev)) == 0)
			fake_close(f);
		else
			f->closing = true;
	}
}

static void
fake_write_cb(struct bufferevent *bev, void *arg)
{
	struct fake *f = arg;

	if (f->closing)
		fake_close(f);
}

/* Send the steps that wait for nothing. */
static void
fake_run_free_steps(struct fake *f)
{
	while (f->bev != NULL && !f->closing && f->at < f->nsteps && f->steps[f->at].expect == NULL)
		fake_say(f, &f->steps[f->at++]);
}

static void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fake *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while (f->bev != NULL && !f->closing &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
		f->lines++;
		f->bytes += n + 2;
		if (f->tlen + n + 2 < sizeof(f->transcript)) {
			memcpy(f->transcript + f->tlen, line, n);
			f->tlen += n;
			f->transcript[f->tlen++] = '\n';
			f->transcript[f->tlen] = '\0';
		}
		if (f->at < f->nsteps && f->steps[f->at].expect != NULL &&
		    fake_match(f->steps[f->at].expect, line)) {
			const struct step *s = &f->steps[f->at++];

			if (s->send != NULL && evbuffer_get_length(in) > 0)
				f->early++;
			fake_say(f, s);
			if (f->bev == NULL) {
				free(line);
				return;
			}
			fake_run_free_steps(f);
		}
		free(line);
	}
}

static void
fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	fake_close(arg);
}

static void
fake_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct fake *f = arg;

	if (f->bev != NULL)   /* a new client: the old one is done with */
		bufferevent_free(f->bev);
	f->at = 0;
	f->closed = f->closing = false;
	f->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(f->bev);
	bufferevent_setcb(f->bev, fake_read_cb, fake_write_cb, fake_event_cb, f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
	fake_run_free_steps(f);
}

static struct fake *
fake_new(const struct step *steps, size_t nsteps)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	assert_non_null(f);
	f->steps = steps;
	f->nsteps = nsteps;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->l = evconnlistener_new_bind(base, fake_accept_cb, f, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(f->l);
	assert_int_equal(getsockname(evconnlistener_get_fd(f->l), (struct sockaddr *)&ss, &sl), 0);
	f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return f;
}

static void
fake_free(struct fake *f)
{
	if (f->bev != NULL)
		bufferevent_free(f->bev);
	evconnlistener_free(f->l);
	free(f);
}

/* ---- driving the client ---- */

struct drive {
	struct smtp_client *c;
	bool ready_called, sent_called, reset_called;
	int ncalls;
	struct smtp_client_reply ready, msg, reset;
	struct smtp_client_reply rcpts[8];
	size_t nrcpts;
};

static void
ready_cb(void *arg, struct smtp_client *c, const struct smtp_client_reply *r)
{
	struct drive *d = arg;

	assert_ptr_equal(c, d->c);
	d->ready_called = true;
	d->ncalls++;
	d->ready = *r;
}

static void
sent_cb(void *arg, struct smtp_client *c, const struct smtp_client_reply *msg,
    const struct smtp_client_reply *rcpts, size_t n)
{
	struct drive *d = arg;

	assert_ptr_equal(c, d->c);
	assert_true(n <= ARRAY_SIZE(d->rcpts));
	d->sent_called = true;
	d->ncalls++;
	d->msg = *msg;
	memcpy(d->rcpts, rcpts, n * sizeof(*rcpts));
	d->nrcpts = n;
}

static void
reset_cb(void *arg, struct smtp_client *c, const struct smtp_client_reply *r)
{
	struct drive *d = arg;

	d->reset_called = true;
	d->ncalls++;
	d->reset = *r;
}

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	fail_msg("SMTP client test: nothing happened within 20 s");
}

static void
run_until(const bool *flag)
{
	struct event *t = evtimer_new(base, guard_cb, NULL);
	struct timeval tv = { .tv_sec = 20 };

	evtimer_add(t, &tv);
	while (!*flag)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
}

static void
spin(int turns)
{
	for (int i = 0; i < turns; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

static const struct smtp_client_options short_opts = {
	.timeouts = { .connect = 2, .greeting = 2, .helo = 2, .mail = 2, .rcpt = 2,
	    .data_init = 2, .data_block = 2, .data_final = 2 },
	.log_id = "TESTQID",
};

static void
connect_to(struct drive *d, SSL_CTX *ctx, int port, const char *peer,
    const struct smtp_client_options *opts)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(d, 0, sizeof(*d));
	d->c = smtp_client_connect(base, ctx, (struct sockaddr *)&sin, sizeof(sin), peer,
	    "client.test", opts != NULL ? opts : &short_opts, ready_cb, d);
	assert_non_null(d->c);
	assert_false(d->ready_called);   /* never from inside the call */
	run_until(&d->ready_called);
}

static void
send_msg(struct drive *d, const char *sender, const char *const *rcpts, size_t n,
    const char *data, size_t len, unsigned flags)
{
	struct smtp_client_message m = {
		.sender = sender, .rcpts = rcpts, .nrcpts = n, .data = data, .len = len,
		.flags = flags,
	};

	d->sent_called = false;
	assert_int_equal(smtp_client_send(d->c, &m, sent_cb, d), 0);
	assert_false(d->sent_called);
	assert_false(smtp_client_usable(d->c));
	run_until(&d->sent_called);
}

static void
quit_and_wait(struct drive *d, struct fake *f)
{
	smtp_client_quit(&d->c);
	assert_null(d->c);
	run_until(&f->closed);
}

#define ASSERT_REPLY(r, st, cd, enh) do { \
	if ((r).status != (st) || (r).code != (cd) || strcmp((r).enhanced, (enh)) != 0) \
		fail_msg("reply %s %d %s '%s', expected %s %d %s", \
		    smtp_client_status_name((r).status), (r).code, (r).enhanced, (r).text, \
		    smtp_client_status_name(st), (cd), (enh)); \
} while (0)

#define GREET { .expect = NULL, .send = "220-mx.test ESMTP\r\n220 ready\r\n" }
#define EHLO_PIPE { .expect = "EHLO client.test", .send = "250-mx.test\r\n250-PIPELINING\r\n" \
	"250-SIZE 100000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n" }

/* Pipelining, per-recipient results, dot-stuffing, SIZE=, reuse, QUIT. */
static void
test_client_pipelined(void **state)
{
	static const struct step steps[] = {
		GREET, EHLO_PIPE,
		{ .expect = "MAIL FROM:<s@a.test> SIZE=36" },   /* nothing until all RCPTs */
		{ .expect = "RCPT TO:<ok@b.test>" },
		{ .expect = "RCPT TO:<no@b.test>" },
		{ .expect = "RCPT TO:<later@b.test>", .send = "250 2.1.0 ok\r\n250 2.1.5 ok\r\n"
		    "550 5.1.1 no such user\r\n451 4.2.0 later\r\n" },
		{ .expect = "DATA", .send = "354 go\r\n" },
		{ .expect = ".", .send = "250 2.0.0 queued as X\r\n" },
		{ .expect = "MAIL FROM:<> SIZE=4" },
		{ .expect = "RCPT TO:<ok@b.test>", .send = "250 ok\r\n250 ok\r\n" },
		{ .expect = "DATA", .send = "354 go\r\n" },
		{ .expect = ".", .send = "250 second\r\n" },
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = true },
	};
	static const char body[] = "Subject: x\r\n\r\n.leading\r\nline\r\n.\r\nend";
	const char *rcpts[] = { "ok@b.test", "no@b.test", "later@b.test" };
	struct fake *f = fake_new(steps, ARRAY_SIZE(steps));
	struct drive d;

	connect_to(&d, NULL, f->port, "mx.test", NULL);
	ASSERT_REPLY(d.ready, SMTP_CLIENT_OK, 250, "");
	assert_true(smtp_client_usable(d.c));
	assert_true(smtp_client_ehlo(d.c)->ext & SMTP_EXT_PIPELINING);
	assert_int_equal(smtp_client_ehlo(d.c)->size_max, 100000);
	assert_string_equal(smtp_client_tls_verify(d.c), "none");
	send_msg(&d, "s@a.test", rcpts, 3, body, strlen(body), 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	assert_string_equal(d.msg.text, "queued as X");
	assert_int_equal(d.nrcpts, 3);
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_OK, 250, "2.0.0");
	ASSERT_REPLY(d.rcpts[1], SMTP_CLIENT_PERMFAIL, 550, "5.1.1");
	ASSERT_REPLY(d.rcpts[2], SMTP_CLIENT_TEMPFAIL, 451, "4.2.0");
	assert_non_null(strstr(f->transcript, "DATA\nSubject: x\n\n..leading\nline\n..\nend\n.\n"));
	assert_true(smtp_client_usable(d.c));

	/* the same connection again, the null sender */
	send_msg(&d, "", rcpts, 1, "hi\r\n", 4, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "");
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_OK, 250, "");
	assert_non_null(strstr(f->transcript, "MAIL FROM:<> SIZE=4\nRCPT TO:<ok@b.test>\nDATA\nhi\n.\n"));
	quit_and_wait(&d, f);
	fake_free(f);
}


/* No PIPELINING, EHLO refused: HELO, one command at a time; local refusals
 * (8-bit, SMTPUTF8, bad addresses, bare LF) send nothing. */
static void
test_client_helo_sequential(void **state)
{
	static const struct step steps[] = {
		{ .expect = NULL, .send = "220 old.test\r\n" },
		{ .expect = "EHLO client.test", .send = "502 5.5.1 what?\r\n" },
		{ .expect = "HELO client.test", .send = "250 old.test\r\n" },
		{ .expect = "MAIL FROM:<s@a.test>", .send = "250 ok\r\n" },
		{ .expect = "RCPT TO:<a@b.test>", .send = "250 ok\r\n" },
		{ .expect = "RCPT TO:<c@b.test>", .send = "250 ok\r\n" },
		{ .expect = "DATA", .send = "354 go\r\n" },
		{ .expect = ".", .send = "250 ok\r\n" },
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = true },
	};
	const char *rcpts[] = { "a@b.test", "c@b.test" };
	const char *utf8[] = { "\xce\xb4@b.test" };
	const char *bad[] = { "a b@c.test", "x>@c.test" };
	struct fake *f = fake_new(steps, ARRAY_SIZE(steps));
	struct drive d;

	connect_to(&d, NULL, f->port, "old.test", NULL);
	ASSERT_REPLY(d.ready, SMTP_CLIENT_OK, 250, "");
	assert_int_equal(smtp_client_ehlo(d.c)->ext, 0);

	send_msg(&d, "s@a.test", rcpts, 2, "caf\xc3\xa9\r\n", 7, SMTP_CLIENT_MSG_8BITMIME);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 0, "5.6.3");
	ASSERT_REPLY(d.rcpts[1], SMTP_CLIENT_PERMFAIL, 0, "5.6.3");
	assert_true(smtp_client_usable(d.c));
	send_msg(&d, "s@a.test", utf8, 1, "hi\r\n", 4, SMTP_CLIENT_MSG_SMTPUTF8);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 0, "5.6.7");
	send_msg(&d, "s@a.test", bad, 2, "hi\r\n", 4, 0);
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_PERMFAIL, 0, "5.1.3");
	ASSERT_REPLY(d.rcpts[1], SMTP_CLIENT_PERMFAIL, 0, "5.1.3");
	send_msg(&d, "s>@a.test", rcpts, 2, "hi\r\n", 4, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 0, "5.1.7");
	send_msg(&d, "s@a.test", rcpts, 2, "hi\nthere\r\n", 11, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 0, "5.6.0");
	assert_null(strstr(f->transcript, "MAIL"));
	spin(3);
	{
		/* a 7-bit message marked 8BITMIME goes without BODY= */
		struct smtp_client_message m = { .sender = "s@a.test", .rcpts = rcpts, .nrcpts = 2,
		    .data = "plain\r\n", .len = 7, .flags = SMTP_CLIENT_MSG_8BITMIME };

		assert_int_equal(smtp_client_send(d.c, &m, sent_cb, &d), 0);
		assert_int_equal(smtp_client_send(d.c, &m, sent_cb, &d), -1);   /* busy */
		assert_int_equal(errno, EBUSY);
		d.sent_called = false;
		run_until(&d.sent_called);
	}
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "");
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_OK, 250, "");
	ASSERT_REPLY(d.rcpts[1], SMTP_CLIENT_OK, 250, "");
	assert_non_null(strstr(f->transcript, "MAIL FROM:<s@a.test>\nRCPT"));
	assert_int_equal(f->early, 0);   /* never ahead of a reply without PIPELINING */
	quit_and_wait(&d, f);
	fake_free(f);
}

/* SIZE is honoured locally; the connection stays usable. */
static void
test_client_size(void **state)
{
	static const struct step steps[] = {
		GREET,
		{ .expect = "EHLO client.test", .send = "250-mx.test\r\n250 SIZE 100\r\n" },
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = true },
	};
	const char *rcpts[] = { "a@b.test" };
	char big[200];
	struct fake *f = fake_new(steps, ARRAY_SIZE(steps));
	struct drive d;

	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 2] = '\r';
	big[sizeof(big) - 1] = '\n';
	connect_to(&d, NULL, f->port, "mx.test", NULL);
	send_msg(&d, "s@a.test", rcpts, 1, big, sizeof(big), 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 0, "5.3.4");
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_PERMFAIL, 0, "5.3.4");
	assert_true(smtp_client_usable(d.c));
	assert_null(strstr(f->transcript, "MAIL"));
	quit_and_wait(&d, f);
	fake_free(f);
}

/* No recipient accepted: no DATA; the next transaction starts with RSET.
 * MAIL refused while pipelined: the RCPT replies are read and ignored. */
static void
test_client_refusals(void **state)
{
	static const struct step steps[] = {
		GREET, EHLO_PIPE,
		{ .expect = "MAIL FROM:<s@a.test>*" },
		{ .expect = "RCPT TO:<a@b.test>", .send = "250 ok\r\n550 5.1.1 no\r\n" },
		{ .expect = "RSET" },
		{ .expect = "MAIL FROM:<s@a.test>*" },
		{ .expect = "RCPT TO:<a@b.test>", .send = "250 reset\r\n250 ok\r\n450 4.2.1 busy\r\n" },
		{ .expect = "RSET" },   /* MAIL was accepted last time, no RCPT was */
		{ .expect = "MAIL FROM:<bad@a.test>*" },
		{ .expect = "RCPT TO:<a@b.test>" },
		{ .expect = "RCPT TO:<c@b.test>", .send = "250 ok\r\n550 5.7.1 sender refused\r\n"
		    "503 5.5.1 MAIL first\r\n503 5.5.1 MAIL first\r\n" },
		{ .expect = "MAIL FROM:<s@a.test>*" },
		{ .expect = "RCPT TO:<a@b.test>", .send = "250 ok\r\n250 ok\r\n" },
		{ .expect = "DATA", .send = "354 go\r\n" },
		{ .expect = ".", .send = "552 5.3.4 too big after all\r\n" },
		{ .expect = "MAIL FROM:<s@a.test>*" },
		{ .expect = "RCPT TO:<a@b.test>", .send = "250 ok\r\n250 ok\r\n" },
		{ .expect = "DATA", .send = "554 5.5.1 no valid recipients\r\n" },
		{ .expect = "RSET", .send = "250 ok\r\n" },   /* smtp_client_reset */
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = true },
	};
	const char *one[] = { "a@b.test" }, *two[] = { "a@b.test", "c@b.test" };
	struct fake *f = fake_new(steps, ARRAY_SIZE(steps));
	struct drive d;

	connect_to(&d, NULL, f->port, "mx.test", NULL);
	send_msg(&d, "s@a.test", one, 1, "x\r\n", 3, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 550, "5.1.1");
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_PERMFAIL, 550, "5.1.1");
	assert_null(strstr(f->transcript, "DATA"));
	send_msg(&d, "s@a.test", one, 1, "x\r\n", 3, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_TEMPFAIL, 450, "4.2.1");
	assert_non_null(strstr(f->transcript, "RSET\nMAIL"));
	/* MAIL refused: every recipient gets MAIL's reply, not the 503s */
	send_msg(&d, "bad@a.test", two, 2, "x\r\n", 3, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 550, "5.7.1");
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_PERMFAIL, 550, "5.7.1");
	ASSERT_REPLY(d.rcpts[1], SMTP_CLIENT_PERMFAIL, 550, "5.7.1");
	/* refused after the body */
	send_msg(&d, "s@a.test", one, 1, "x\r\n", 3, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 552, "5.3.4");
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_PERMFAIL, 552, "5.3.4");
	/* DATA refused */
	send_msg(&d, "s@a.test", one, 1, "x\r\n", 3, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 554, "5.5.1");
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_PERMFAIL, 554, "5.5.1");
	/* an explicit RSET (the next send would have done it) */
	assert_int_equal(smtp_client_reset(d.c, reset_cb, &d), 0);
	assert_false(d.reset_called);
	run_until(&d.reset_called);
	ASSERT_REPLY(d.reset, SMTP_CLIENT_OK, 250, "");
	assert_true(smtp_client_usable(d.c));
	quit_and_wait(&d, f);
	fake_free(f);
}

/* 421, a lost connection, a timeout: temporary, connection unusable. */
static void
test_client_connection_failures(void **state)
{
	static const struct step s421[] = {
		GREET, EHLO_PIPE,
		{ .expect = "MAIL FROM:<s@a.test>*" },
		{ .expect = "RCPT TO:<a@b.test>", .send = "250 ok\r\n421 4.3.2 shutting down\r\n",
		    .close = true },
	};
	static const struct step slost[] = {
		GREET, { .expect = "EHLO client.test", .send = "250 mx.test\r\n" },
		{ .expect = "MAIL FROM:<s@a.test>*", .close = true },
	};
	static const struct step stimeout[] = {
		GREET, EHLO_PIPE,
		{ .expect = "MAIL FROM:<s@a.test>*" },
		{ .expect = "RCPT TO:<a@b.test>", .send = "250 ok\r\n250 ok\r\n" },
		{ .expect = "DATA" },   /* no 354 */
	};
	static const struct step sidle[] = {
		GREET, { .expect = "EHLO client.test", .send = "250 mx.test\r\n421 4.4.2 idle\r\n" },
	};
	const char *one[] = { "a@b.test" };
	struct fake *f;
	struct drive d;

	f = fake_new(s421, ARRAY_SIZE(s421));
	connect_to(&d, NULL, f->port, "mx.test", NULL);
	send_msg(&d, "s@a.test", one, 1, "x\r\n", 3, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_TEMPFAIL, 421, "4.3.2");
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_TEMPFAIL, 421, "4.3.2");
	assert_false(smtp_client_usable(d.c));
	assert_int_equal(smtp_client_send(d.c, &(struct smtp_client_message){ .sender = "",
	    .rcpts = one, .nrcpts = 1, .data = "", .len = 0 }, sent_cb, &d), -1);
	assert_int_equal(errno, ENOTCONN);
	smtp_client_free(&d.c);
	assert_null(d.c);
	fake_free(f);

	f = fake_new(slost, ARRAY_SIZE(slost));
	connect_to(&d, NULL, f->port, "mx.test", NULL);
	send_msg(&d, "s@a.test", one, 1, "x\r\n", 3, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_TEMPFAIL, 0, "4.4.2");
	assert_non_null(strstr(d.msg.text, "lost connection"));
	assert_false(smtp_client_usable(d.c));
	smtp_client_quit(&d.c);   /* nothing to say QUIT on: just freed */
	fake_free(f);

	f = fake_new(stimeout, ARRAY_SIZE(stimeout));
	connect_to(&d, NULL, f->port, "mx.test", NULL);
	send_msg(&d, "s@a.test", one, 1, "x\r\n", 3, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_TEMPFAIL, 0, "4.4.2");
	assert_non_null(strstr(d.msg.text, "timeout"));
	smtp_client_free(&d.c);
	fake_free(f);

	/* a 421 while idle: nobody is called, the client is just unusable */
	f = fake_new(sidle, ARRAY_SIZE(sidle));
	connect_to(&d, NULL, f->port, "mx.test", NULL);
	d.ncalls = 0;
	spin(10);
	run_until(&f->closed);
	spin(5);
	assert_int_equal(d.ncalls, 0);
	assert_false(smtp_client_usable(d.c));
	smtp_client_free(&d.c);
	fake_free(f);
}

/* The connection phase: each failure reaches the ready callback once. */
static void
test_client_connect_failures(void **state)
{
	static const struct step silent[] = { { .expect = "never" } };
	static const struct step garbage[] = { { .send = "hello there\r\n" } };
	static const struct step big[] = { { .send = "BIG" } };
	static const struct step s554[] = { { .send = "554 5.7.1 go away\r\n" } };
	static const struct step ehlo421[] = { GREET,
		{ .expect = "EHLO client.test", .send = "421 4.7.0 not now\r\n", .close = true } };
	static const struct step helo550[] = { GREET,
		{ .expect = "EHLO client.test", .send = "500 no\r\n" },
		{ .expect = "HELO client.test", .send = "550 5.7.1 not you\r\n" } };
	static const struct step inject[] = { GREET,
		{ .expect = "EHLO client.test", .send = "250-mx.test\r\n250 STARTTLS\r\n" },
		{ .expect = "STARTTLS", .send = "220 go\r\n250-injected\r\n" } };
	static const struct step tlsmute[] = { GREET,
		{ .expect = "EHLO client.test", .send = "250-mx.test\r\n250 STARTTLS\r\n" },
		{ .expect = "STARTTLS", .send = "220 go\r\n" } };   /* then no handshake */
	static const struct step tls454[] = { GREET,
		{ .expect = "EHLO client.test", .send = "250-mx.test\r\n250 STARTTLS\r\n" },
		{ .expect = "STARTTLS", .send = "454 4.7.0 TLS not available\r\n" },
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = true } };
	static const struct {
		const char *name;
		const struct step *steps;
		size_t n;
		enum smtp_client_status status;
		int code;
		const char *enhanced, *text;
	} cases[] = {
		{ .name = "silent", .steps = silent, .n = 1, .status = SMTP_CLIENT_TEMPFAIL,
		  .enhanced = "4.4.2", .text = "timeout" },
		{ .name = "garbage", .steps = garbage, .n = 1, .status = SMTP_CLIENT_TEMPFAIL,
		  .enhanced = "4.5.0", .text = "bad reply" },
		{ .name = "long line", .steps = big, .n = 1, .status = SMTP_CLIENT_TEMPFAIL,
		  .enhanced = "4.5.0", .text = "too long" },
		{ .name = "554 greeting", .steps = s554, .n = 1, .status = SMTP_CLIENT_TEMPFAIL,
		  .code = 554, .enhanced = "5.7.1", .text = "go away" },
		{ .name = "421 to EHLO", .steps = ehlo421, .n = 2, .status = SMTP_CLIENT_TEMPFAIL,
		  .code = 421, .enhanced = "4.7.0" },
		{ .name = "550 to HELO", .steps = helo550, .n = 3, .status = SMTP_CLIENT_PERMFAIL,
		  .code = 550, .enhanced = "5.7.1" },
		{ .name = "STARTTLS injection", .steps = inject, .n = 3, .status = SMTP_CLIENT_TEMPFAIL,
		  .enhanced = "4.7.0", .text = "injection" },
		{ .name = "TLS handshake timeout", .steps = tlsmute, .n = 3, .status = SMTP_CLIENT_TEMPFAIL,
		  .enhanced = "4.4.2", .text = "handshake" },
	};
	char *bigline = malloc(6000), *error = NULL;
	SSL_CTX *ctx = smtp_client_tls_ctx_new(NULL, &error);

	assert_non_null(ctx);
	assert_non_null(bigline);
	memcpy(bigline, "220 ", 4);
	memset(bigline + 4, 'x', 5000);
	strcpy(bigline + 5004, "\r\n");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct fake *f = fake_new(cases[i].steps, cases[i].n);
		struct drive d;

		f->big_reply = bigline;
		connect_to(&d, ctx, f->port, "mx.test", NULL);
		if (d.ready.status != cases[i].status || d.ready.code != cases[i].code ||
		    strcmp(d.ready.enhanced, cases[i].enhanced) != 0 ||
		    (cases[i].text != NULL && strstr(d.ready.text, cases[i].text) == NULL))
			fail_msg("%s: %s %d %s '%s'", cases[i].name, smtp_client_status_name(d.ready.status),
			    d.ready.code, d.ready.enhanced, d.ready.text);
		assert_false(smtp_client_usable(d.c));
		spin(5);
		assert_int_equal(d.ncalls, 1);
		smtp_client_free(&d.c);
		fake_free(f);
	}

	/* STARTTLS refused: on in plaintext */
	{
		struct fake *f = fake_new(tls454, ARRAY_SIZE(tls454));
		struct drive d;

		connect_to(&d, ctx, f->port, "mx.test", NULL);
		ASSERT_REPLY(d.ready, SMTP_CLIENT_OK, 250, "");
		assert_string_equal(smtp_client_tls_verify(d.c), "none");
		quit_and_wait(&d, f);
		fake_free(f);
	}

	/* nobody listening */
	{
		struct fake *f = fake_new(silent, 1);
		int port = f->port;
		struct drive d;

		fake_free(f);
		connect_to(&d, NULL, port, "mx.test", NULL);
		ASSERT_REPLY(d.ready, SMTP_CLIENT_TEMPFAIL, 0, "4.4.1");
		smtp_client_free(&d.c);
	}

	/* freed while connecting, or quit before ready: never called back */
	{
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct fake *f = fake_new(silent, 1);
		struct drive d = { 0 };

		sin.sin_port = htons((uint16_t)f->port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		d.c = smtp_client_connect(base, NULL, (struct sockaddr *)&sin, sizeof(sin), "mx.test",
		    "client.test", &short_opts, ready_cb, &d);
		assert_non_null(d.c);
		smtp_client_free(&d.c);
		d.c = smtp_client_connect(base, NULL, (struct sockaddr *)&sin, sizeof(sin), "mx.test",
		    "client.test", &short_opts, ready_cb, &d);
		spin(5);
		smtp_client_quit(&d.c);
		spin(5);
		assert_int_equal(d.ncalls, 0);
		fake_free(f);
		assert_null(smtp_client_connect(base, NULL, (struct sockaddr *)&sin, sizeof(sin),
		    "mx.test", "bad helo", &short_opts, ready_cb, &d));
	}
	SSL_CTX_free(ctx);
	free(bigline);
}

/* A body of megabytes: written under backpressure, every line arrives. */
static void
test_client_big_body(void **state)
{
	static const struct step steps[] = {
		GREET, { .expect = "EHLO client.test", .send = "250-mx.test\r\n250-PIPELINING\r\n"
		    "250 SIZE\r\n" },
		{ .expect = "MAIL FROM:<s@a.test>*" },
		{ .expect = "RCPT TO:<a@b.test>", .send = "250 ok\r\n250 ok\r\n" },
		{ .expect = "DATA", .send = "354 go\r\n" },
		{ .expect = ".", .send = "250 2.0.0 ok\r\n" },
		{ .expect = "QUIT", .send = "221 bye\r\n", .close = true },
	};
	const char *one[] = { "a@b.test" };
	const size_t nlines = 40000;
	const char line[] = ".0123456789012345678901234567890123456789012345678901234567890123456789\r\n";
	size_t len = nlines * (sizeof(line) - 1), before;
	char *body = malloc(len);
	struct fake *f = fake_new(steps, ARRAY_SIZE(steps));
	struct drive d;

	assert_non_null(body);
	for (size_t i = 0; i < nlines; i++)
		memcpy(body + i * (sizeof(line) - 1), line, sizeof(line) - 1);
	connect_to(&d, NULL, f->port, "mx.test", NULL);
	before = f->bytes;
	send_msg(&d, "s@a.test", one, 1, body, len, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	/* MAIL, RCPT, DATA, the stuffed lines (one more byte each), the dot */
	assert_int_equal(f->bytes - before, strlen("MAIL FROM:<s@a.test> SIZE=") +
	    (size_t)snprintf(NULL, 0, "%zu", len) + 2 + strlen("RCPT TO:<a@b.test>\r\nDATA\r\n") +
	    len + nlines + 3);
	quit_and_wait(&d, f);
	fake_free(f);
	free(body);
}

/* ---- against the aiosmtpd sinks and the dnslib server ---- */

static void quit_sink(struct drive *d);

static struct sink sink;
static bool have_sink;

static int
setup_sink(void **state)
{
	if (!sink_available()) {
		fprintf(stderr, "test_smtp_client: python3-aiosmtpd/dnslib missing: sink tests skipped\n");
		return 0;
	}
	if (sink_start(&sink) == -1)
		return -1;
	have_sink = true;
	return 0;
}

static int
teardown_sink(void **state)
{
	if (have_sink)
		sink_stop(&sink);
	have_sink = false;
	return 0;
}

/* The sink's files for the message its 250 named ("queued as sinkN"). */
static char *
sink_file(const struct smtp_client_reply *r, const char *ext, size_t *len_r)
{
	const char *p = strstr(r->text, "queued as sink");
	char dir[PATH_MAX - 64], path[PATH_MAX];
	FILE *fp;
	char *buf;
	long n;

	assert_non_null(p);
	assert_non_null(sink_value(&sink, "dir", dir, sizeof(dir)));
	snprintf(path, sizeof(path), "%s/%d.%s", dir, atoi(p + strlen("queued as sink")), ext);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	if (len_r != NULL)
		*len_r = (size_t)n;
	return buf;
}

struct mx_lookup {
	bool done;
	enum dns_status status;
	char host[DNS_NAME_MAX + 1];
	struct sockaddr_storage addr;
};

static void
e2e_mx_cb(void *arg, enum dns_status status, const struct dns_mx *hosts, size_t n)
{
	struct mx_lookup *m = arg;

	m->status = status;
	if (n > 0)
		snprintf(m->host, sizeof(m->host), "%s", hosts[0].name);
	m->done = true;
}

static void
e2e_addr_cb(void *arg, enum dns_status status, const struct sockaddr_storage *addrs, size_t n)
{
	struct mx_lookup *m = arg;

	m->status = status;
	if (n > 0)
		m->addr = addrs[0];
	m->done = true;
}

/* MX lookup, address lookup, delivery with mixed recipients, reuse. */
static void
test_sink_end_to_end(void **state)
{
	static const char msg1[] = "From: s@a.test\r\nTo: ok@mx.test\r\nSubject: e2e\r\n\r\n"
	    ".dot line\r\nlast line without CRLF";
	static const char msg2[] = "Subject: 8bit\r\n\r\ncaf\xc3\xa9\r\n";
	const char *rcpts[] = { "ok@mx.test", "tempfail@mx.test", "reject@mx.test", "two@mx.test" };
	char yaml[128], *error = NULL, *env, *eml;
	struct config *cfg = NULL;
	struct mx_lookup m = { 0 };
	struct dns *dns;
	struct drive d;
	size_t len;

	if (!have_sink)
		skip();
	snprintf(yaml, sizeof(yaml), "outbound:\n  dns_servers: [\"127.0.0.1:%d\"]\n",
	    sink_port(&sink, "dns"));
	assert_int_equal(config_load_string("t", yaml, strlen(yaml), &cfg, &error), 0);
	dns = dns_new(base, cfg, &error);
	assert_non_null(dns);
	assert_non_null(dns_resolve_mx(dns, "mx.test", e2e_mx_cb, &m));
	run_until(&m.done);
	assert_int_equal(m.status, DNS_OK);
	assert_string_equal(m.host, "mx1.mx.test");
	m.done = false;
	assert_non_null(dns_resolve_addrs(dns, m.host, e2e_addr_cb, &m));
	run_until(&m.done);
	assert_int_equal(m.status, DNS_OK);
	((struct sockaddr_in *)&m.addr)->sin_port = htons((uint16_t)sink_port(&sink, "plain"));

	memset(&d, 0, sizeof(d));
	d.c = smtp_client_connect(base, NULL, (struct sockaddr *)&m.addr, sizeof(struct sockaddr_in),
	    m.host, "client.test", NULL, ready_cb, &d);
	assert_non_null(d.c);
	run_until(&d.ready_called);
	ASSERT_REPLY(d.ready, SMTP_CLIENT_OK, 250, "");
	assert_true(smtp_client_ehlo(d.c)->ext & SMTP_EXT_PIPELINING);
	send_msg(&d, "s@a.test", rcpts, 4, msg1, strlen(msg1), 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	ASSERT_REPLY(d.rcpts[0], SMTP_CLIENT_OK, 250, "2.0.0");
	ASSERT_REPLY(d.rcpts[1], SMTP_CLIENT_TEMPFAIL, 451, "4.3.0");
	ASSERT_REPLY(d.rcpts[2], SMTP_CLIENT_PERMFAIL, 550, "5.1.1");
	ASSERT_REPLY(d.rcpts[3], SMTP_CLIENT_OK, 250, "2.0.0");
	env = sink_file(&d.msg, "env", NULL);
	assert_non_null(strstr(env, "tls 0\nfrom s@a.test\nrcpt ok@mx.test\nrcpt two@mx.test\n"));
	assert_non_null(strstr(env, "opt SIZE="));
	assert_null(strstr(env, "BODY="));
	eml = sink_file(&d.msg, "eml", &len);
	assert_int_equal(len, strlen(msg1) + 2);   /* the CRLF we add at the end */
	assert_memory_equal(eml, msg1, strlen(msg1));
	assert_memory_equal(eml + strlen(msg1), "\r\n", 2);
	free(env);
	free(eml);

	/* the same connection, an 8-bit message */
	send_msg(&d, "", rcpts, 1, msg2, strlen(msg2), SMTP_CLIENT_MSG_8BITMIME);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	env = sink_file(&d.msg, "env", NULL);
	assert_non_null(strstr(env, "from <>\n"));
	assert_non_null(strstr(env, "opt BODY=8BITMIME"));
	eml = sink_file(&d.msg, "eml", &len);
	assert_int_equal(len, strlen(msg2));
	assert_memory_equal(eml, msg2, len);
	free(env);
	free(eml);
	quit_sink(&d);
	dns_free(&dns);
	config_free(&cfg);
}

/* QUIT and wait until the client is gone. */
static void
quit_sink(struct drive *d)
{
	struct event *t = evtimer_new(base, guard_cb, NULL);
	struct timeval tv = { .tv_sec = 20 };

	smtp_client_quit(&d->c);
	evtimer_add(t, &tv);
	while (smtp_client_count() > 0)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
}

static void
connect_sink(struct drive *d, SSL_CTX *ctx, const char *variant, const char *peer)
{
	connect_to(d, ctx, sink_port(&sink, variant), peer, NULL);
	ASSERT_REPLY(d->ready, SMTP_CLIENT_OK, 250, "");
}

/* STARTTLS: verified with the test CA, unverified otherwise, never fatal. */
static void
test_sink_starttls(void **state)
{
	static const char msg[] = "Subject: tls\r\n\r\nhello\r\n";
	const char *rcpts[] = { "ok@mx.test" };
	char ca[PATH_MAX], *error = NULL, *env;
	SSL_CTX *with_ca, *system;
	struct drive d;

	if (!have_sink)
		skip();
	assert_non_null(sink_value(&sink, "ca", ca, sizeof(ca)));
	with_ca = smtp_client_tls_ctx_new(ca, &error);
	assert_non_null(with_ca);
	system = smtp_client_tls_ctx_new(NULL, &error);
	assert_non_null(system);

	connect_sink(&d, with_ca, "tls", "mx1.mx.test");
	assert_string_equal(smtp_client_tls_verify(d.c), "verified");
	assert_non_null(strstr(smtp_client_tls_desc(d.c), "TLSv1."));
	assert_false(smtp_client_ehlo(d.c)->ext & SMTP_EXT_STARTTLS);   /* the EHLO after TLS */
	send_msg(&d, "s@a.test", rcpts, 1, msg, strlen(msg), 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	env = sink_file(&d.msg, "env", NULL);
	assert_non_null(strstr(env, "tls 1\n"));
	free(env);
	quit_sink(&d);

	connect_sink(&d, with_ca, "tls", "wrong.test");
	assert_string_equal(smtp_client_tls_verify(d.c), "unverified: hostname mismatch");
	send_msg(&d, "s@a.test", rcpts, 1, msg, strlen(msg), 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	quit_sink(&d);

	connect_sink(&d, system, "tls", "mx1.mx.test");
	assert_true(strncmp(smtp_client_tls_verify(d.c), "unverified: ", 12) == 0);
	send_msg(&d, "s@a.test", rcpts, 1, msg, strlen(msg), 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	quit_sink(&d);

	/* without a TLS context: no STARTTLS, and this sink insists on it */
	connect_sink(&d, NULL, "tls", "mx1.mx.test");
	assert_string_equal(smtp_client_tls_verify(d.c), "none");
	send_msg(&d, "s@a.test", rcpts, 1, msg, strlen(msg), 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 530, "");
	quit_sink(&d);

	/* no_starttls: the caller's retry after a failed handshake */
	{
		struct smtp_client_options o = { .no_starttls = true };

		connect_to(&d, with_ca, sink_port(&sink, "plain"), "mx1.mx.test", &o);
		assert_string_equal(smtp_client_tls_verify(d.c), "none");
		quit_sink(&d);
	}
	spin(10);
	SSL_CTX_free(with_ca);
	SSL_CTX_free(system);
}

/* SIZE, 8BITMIME and SMTPUTF8 against real servers. */
static void
test_sink_extensions(void **state)
{
	const char *rcpts[] = { "ok@mx.test" };
	const char *utf8[] = { "\xce\xb4\xce\xbf\xce\xba@mx.test" };
	static const char eight[] = "Subject: x\r\n\r\ncaf\xc3\xa9\r\n";
	char big[3000], *env;
	struct drive d;

	if (!have_sink)
		skip();
	memset(big, 'x', sizeof(big));
	for (size_t i = 78; i < sizeof(big); i += 80) {
		big[i] = '\r';
		big[i + 1] = '\n';
	}
	big[sizeof(big) - 2] = '\r';
	big[sizeof(big) - 1] = '\n';

	connect_sink(&d, NULL, "small", "small.test");
	assert_int_equal(smtp_client_ehlo(d.c)->size_max, 2000);
	send_msg(&d, "s@a.test", rcpts, 1, big, sizeof(big), 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 0, "5.3.4");
	send_msg(&d, "s@a.test", rcpts, 1, big, 1000, 0);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	quit_sink(&d);

	/* no 8BITMIME and no PIPELINING */
	connect_sink(&d, NULL, "no8bit", "no8bit.test");
	assert_false(smtp_client_ehlo(d.c)->ext & (SMTP_EXT_8BITMIME | SMTP_EXT_PIPELINING));
	send_msg(&d, "s@a.test", rcpts, 1, eight, strlen(eight), SMTP_CLIENT_MSG_8BITMIME);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 0, "5.6.3");
	send_msg(&d, "s@a.test", rcpts, 1, big, 1000, SMTP_CLIENT_MSG_8BITMIME);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	env = sink_file(&d.msg, "env", NULL);
	assert_null(strstr(env, "BODY="));
	free(env);
	quit_sink(&d);

	/* SMTPUTF8: refused locally where not offered, used where it is */
	connect_sink(&d, NULL, "plain", "mx1.mx.test");
	send_msg(&d, "s@a.test", utf8, 1, "hi\r\n", 4, SMTP_CLIENT_MSG_SMTPUTF8);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_PERMFAIL, 0, "5.6.7");
	quit_sink(&d);
	connect_sink(&d, NULL, "utf8", "utf8.test");
	assert_true(smtp_client_ehlo(d.c)->ext & SMTP_EXT_SMTPUTF8);
	send_msg(&d, "s@a.test", utf8, 1, eight, strlen(eight),
	    SMTP_CLIENT_MSG_SMTPUTF8 | SMTP_CLIENT_MSG_8BITMIME);
	ASSERT_REPLY(d.msg, SMTP_CLIENT_OK, 250, "2.0.0");
	env = sink_file(&d.msg, "env", NULL);
	assert_non_null(strstr(env, "rcpt \xce\xb4\xce\xbf\xce\xba@mx.test\n"));
	assert_non_null(strstr(env, "opt SMTPUTF8"));
	assert_non_null(strstr(env, "opt BODY=8BITMIME"));
	free(env);
	quit_sink(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_parser),
		cmocka_unit_test(test_ehlo_parse),
		cmocka_unit_test(test_dotstuff),
		cmocka_unit_test(test_scan_message),
		cmocka_unit_test(test_client_pipelined),
		cmocka_unit_test(test_client_helo_sequential),
		cmocka_unit_test(test_client_size),
		cmocka_unit_test(test_client_refusals),
		cmocka_unit_test(test_client_connection_failures),
		cmocka_unit_test(test_client_connect_failures),
		cmocka_unit_test(test_client_big_body),
	};
	const struct CMUnitTest sink_tests[] = {
		cmocka_unit_test(test_sink_end_to_end),
		cmocka_unit_test(test_sink_starttls),
		cmocka_unit_test(test_sink_extensions),
	};
	int ret;

	log_init("test_smtp_client", LOG_LEVEL_WARNING);
	base = event_base_new();
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	ret |= cmocka_run_group_tests(sink_tests, setup_sink, teardown_sink);
	event_base_free(base);
	return ret;
}
