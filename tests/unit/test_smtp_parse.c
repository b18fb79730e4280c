/*
 * test_smtp_parse.c: table tests for src/smtp/smtp_parse.c. Every line
 * reader case runs whole, byte by byte (trickle) and split at every offset,
 * and must give the same results; address cases also go through the line
 * reader and smtp_parse_command byte by byte. Inputs are copied into
 * exact-size heap buffers so ASan sees any read past the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Generated text: pre + rep1 * n1 + mid + rep2 * n2 + post, for the cases
 * that need long inputs. A NULL pre with nothing else means NULL.
 */
struct gen {
	const char *pre;
	size_t pre_len;    /* when pre holds NULs; else strlen(pre) */
	const char *rep1;
	size_t n1;
	const char *mid;
	const char *rep2;
	size_t n2;
	const char *post;
	size_t post_len;   /* when post holds NULs; else strlen(post) */
};

static void
buf_add(char **buf, size_t *len, const char *s, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	assert_non_null(*buf);
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/* Build the text of g into an exact-size heap buffer (plus its NUL). */
static char *
gen_build(const struct gen *g, size_t *len_r)
{
	char *buf = NULL;
	size_t len = 0, i;

	if (g->pre == NULL && g->rep1 == NULL && g->post == NULL) {
		if (len_r != NULL)
			*len_r = 0;
		return NULL;
	}
	buf_add(&buf, &len, "", 0);
	if (g->pre != NULL)
		buf_add(&buf, &len, g->pre,
		    g->pre_len != 0 ? g->pre_len : strlen(g->pre));
	for (i = 0; g->rep1 != NULL && i < g->n1; i++)
		buf_add(&buf, &len, g->rep1, strlen(g->rep1));
	if (g->mid != NULL)
		buf_add(&buf, &len, g->mid, strlen(g->mid));
	for (i = 0; g->rep2 != NULL && i < g->n2; i++)
		buf_add(&buf, &len, g->rep2, strlen(g->rep2));
	if (g->post != NULL)
		buf_add(&buf, &len, g->post,
		    g->post_len != 0 ? g->post_len : strlen(g->post));
	if (len_r != NULL)
		*len_r = len;
	return buf;
}

/* ---- line reader ---- */

#define LR_MAX_RESULTS 6

struct lr_result {
	int ret;            /* 1 line, -1 error */
	const char *line;   /* expected line (ret 1) */
	bool fill_line;     /* line is rep1 * n1 of the input instead */
	int code;           /* SMTP_LINE_ERR_* (ret -1) */
};

struct lr_case {
	const char *name;
	struct gen in;
	size_t max;         /* 0: the default 1000 */
	struct lr_result out[LR_MAX_RESULTS];
	bool partial;       /* input ends inside a line */
};

static const char *const lr_error_texts[] = {
	[SMTP_LINE_ERR_TOO_LONG] = "500 5.5.2 Line too long",
	[SMTP_LINE_ERR_BARE_LF] = "500 5.5.2 Bad line ending (bare LF or CR)",
	[SMTP_LINE_ERR_BARE_CR] = "500 5.5.2 Bad line ending (bare LF or CR)",
	[SMTP_LINE_ERR_NUL] = "500 5.5.2 NUL in command",
};

#define LINE(s) { .ret = 1, .line = (s) }
#define FILL_LINE { .ret = 1, .fill_line = true }
#define LERR(c) { .ret = -1, .code = (c) }

static const struct lr_case lr_cases[] = {
	{ .name = "one line", .in = { .pre = "HELO a.example\r\n" },
	  .out = { LINE("HELO a.example") } },
	{ .name = "empty line", .in = { .pre = "\r\n" }, .out = { LINE("") } },
	{ .name = "pipelined", .in = { .pre = "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\n"
	      "RCPT TO:<c@d.example>\r\nDATA\r\n" },
	  .out = { LINE("EHLO x.example"), LINE("MAIL FROM:<a@b.example>"),
	      LINE("RCPT TO:<c@d.example>"), LINE("DATA") } },
	{ .name = "partial tail", .in = { .pre = "NOOP\r\nQUI" },
	  .out = { LINE("NOOP") }, .partial = true },
	{ .name = "only a CR", .in = { .pre = "QUIT\r" }, .partial = true },
	/* Only CRLF ends a line: a bare LF makes the line bad, never two lines. */
	{ .name = "bare LF does not end a line", .in = { .pre = "QUIT\n" }, .partial = true },
	{ .name = "bare LF", .in = { .pre = "QUIT\n\r\n" }, .out = { LERR(SMTP_LINE_ERR_BARE_LF) } },
	{ .name = "lone LF", .in = { .pre = "\n\r\n" }, .out = { LERR(SMTP_LINE_ERR_BARE_LF) } },
	{ .name = "bare LF inside one line", .in = { .pre = "A\nB\r\nC\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_BARE_LF), LINE("C") } },
	{ .name = "bare LF cannot smuggle a command", .in = { .pre = "NOOP\nMAIL FROM:<e@r.example>\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_BARE_LF) } },
	{ .name = "two bare LFs", .in = { .pre = "A\nB\nC\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_BARE_LF) } },
	{ .name = "bare CR inside", .in = { .pre = "MAIL\rFROM:<a@b.example>\r\nNOOP\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_BARE_CR), LINE("NOOP") } },
	{ .name = "CR CR LF", .in = { .pre = "A\r\r\nB\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_BARE_CR), LINE("B") } },
	{ .name = "CR CR LF alone", .in = { .pre = "\r\r\n" }, .out = { LERR(SMTP_LINE_ERR_BARE_CR) } },
	{ .name = "CR then bare LF", .in = { .pre = "A\rB\n\r\n" }, .out = { LERR(SMTP_LINE_ERR_BARE_CR) } },
	{ .name = "bare CR pending", .in = { .pre = "A\rB" }, .partial = true },
	{ .name = "smuggling look-alike", .in = { .pre = "DATA\r\n.\nMAIL FROM:<x@y.example>\r\n" },
	  .out = { LINE("DATA"), LERR(SMTP_LINE_ERR_BARE_LF) } },
	{ .name = "NUL", .in = { .pre = "A", .post = "\0B\r\nC\r\n", .post_len = 7 },
	  .out = { LERR(SMTP_LINE_ERR_NUL), LINE("C") } },
	{ .name = "NUL alone", .in = { .pre = "", .post = "\0\r\n", .post_len = 3 },
	  .out = { LERR(SMTP_LINE_ERR_NUL) } },
	{ .name = "NUL then bare CR", .in = { .pre = "", .post = "\0\rx\r\n", .post_len = 5 },
	  .out = { LERR(SMTP_LINE_ERR_NUL) } },
	{ .name = "998 octets + CRLF = 1000 ok", .in = { .rep1 = "a", .n1 = 998, .post = "\r\n" },
	  .out = { FILL_LINE } },
	{ .name = "999 octets + CRLF = 1001 too long", .in = { .rep1 = "a", .n1 = 999, .post = "\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_TOO_LONG) } },
	{ .name = "too long then good", .in = { .rep1 = "a", .n1 = 999, .post = "\r\nQUIT\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_TOO_LONG), LINE("QUIT") } },
	{ .name = "far too long", .in = { .pre = "NOOP\r\n", .rep1 = "x", .n1 = 5000, .post = "\r\nQUIT\r\n" },
	  .out = { LINE("NOOP"), LERR(SMTP_LINE_ERR_TOO_LONG), LINE("QUIT") } },
	{ .name = "far too long, no end yet", .in = { .rep1 = "x", .n1 = 3000 }, .partial = true },
	{ .name = "998 then bare LF", .in = { .rep1 = "a", .n1 = 998, .post = "\n\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_BARE_LF) } },
	{ .name = "999 then bare LF", .in = { .rep1 = "a", .n1 = 999, .post = "\n\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_TOO_LONG) } },
	{ .name = "998 then bare CR", .in = { .rep1 = "a", .n1 = 998, .post = "\rb\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_BARE_CR) } },
	{ .name = "too long then NUL", .in = { .rep1 = "z", .n1 = 2000, .post = "\0\r\nQUIT\r\n",
	      .post_len = 9 },
	  .out = { LERR(SMTP_LINE_ERR_TOO_LONG), LINE("QUIT") } },
	{ .name = "NUL then too long", .in = { .pre = "a\0", .pre_len = 2, .rep1 = "z", .n1 = 2000,
	      .post = "\r\nQUIT\r\n" },
	  .out = { LERR(SMTP_LINE_ERR_NUL), LINE("QUIT") } },
	{ .name = "NUL, line not ended", .in = { .pre = "a\0", .pre_len = 2, .rep1 = "z", .n1 = 1 },
	  .partial = true },
	{ .name = "small max ok", .in = { .pre = "12345678\r\n" }, .max = 10,
	  .out = { LINE("12345678") } },
	{ .name = "small max too long", .in = { .pre = "123456789\r\nok\r\n" }, .max = 10,
	  .out = { LERR(SMTP_LINE_ERR_TOO_LONG), LINE("ok") } },
	{ .name = "max 2: empty lines only", .in = { .pre = "\r\nx\r\n\r\n" }, .max = 2,
	  .out = { LINE(""), LERR(SMTP_LINE_ERR_TOO_LONG), LINE("") } },
	{ .name = "high bytes pass", .in = { .pre = "RCPT TO:<j\xc3\xa9@x.example>\r\n" },
	  .out = { LINE("RCPT TO:<j\xc3\xa9@x.example>") } },
	{ .name = "tab and DEL pass", .in = { .pre = "NOOP\t\x7f\r\n" },
	  .out = { LINE("NOOP\t\x7f") } },
};

struct lr_got {
	int ret;
	char *line;
	size_t linelen;
	int code;
	const char *error;
};

struct lr_run {
	struct lr_got got[64];
	size_t n;
	bool partial;   /* the reader holds part of a line at the end */
};

/* Feed data[0..len) in one call and loop until it is used up. */
static void
lr_feed_all(struct smtp_line_reader *r, const char *data, size_t len, struct lr_run *run)
{
	while (len > 0) {
		size_t consumed, linelen;
		const char *line, *error;
		int code, ret;

		ret = smtp_line_reader_feed(r, data, len, &consumed, &line,
		    &linelen, &code, &error);
		assert_true(consumed <= len);
		if (ret == 0) {
			assert_int_equal(consumed, len);
			assert_null(line);
			assert_null(error);
		} else {
			assert_true(consumed > 0);
			assert_true(run->n < ARRAY_SIZE(run->got));
			run->got[run->n].ret = ret;
			run->got[run->n].code = code;
			run->got[run->n].error = error;
			if (ret == 1) {
				assert_non_null(line);
				assert_null(error);
				assert_int_equal(code, SMTP_LINE_OK);
				assert_int_equal(strlen(line), linelen);
				run->got[run->n].line = malloc(linelen + 1);
				assert_non_null(run->got[run->n].line);
				memcpy(run->got[run->n].line, line, linelen + 1);
				run->got[run->n].linelen = linelen;
			} else {
				assert_int_equal(ret, -1);
				assert_null(line);
				assert_int_equal(linelen, 0);
				assert_non_null(error);
			}
			run->n++;
		}
		data += consumed;
		len -= consumed;
	}
	run->partial = r->len > 0 || r->saw_cr || r->pending_error != 0;
}

static void
lr_run_free(struct lr_run *run)
{
	size_t i;

	for (i = 0; i < run->n; i++)
		free(run->got[i].line);
	memset(run, 0, sizeof(*run));
}

/* Check a run against the case's expected results. */
static void
lr_check(const struct lr_case *c, const struct lr_run *run, const char *mode)
{
	size_t expected = 0, i;

	while (expected < LR_MAX_RESULTS && c->out[expected].ret != 0)
		expected++;
	if (run->n != expected)
		fail_msg("%s (%s): %zu results, expected %zu", c->name, mode, run->n, expected);
	for (i = 0; i < expected; i++) {
		const struct lr_result *want = &c->out[i];
		const struct lr_got *got = &run->got[i];

		if (got->ret != want->ret)
			fail_msg("%s (%s): result %zu is %d, expected %d", c->name,
			    mode, i, got->ret, want->ret);
		if (want->ret == 1 && want->fill_line) {
			size_t j;

			assert_int_equal(got->linelen, strlen(c->in.rep1) * c->in.n1);
			for (j = 0; j < got->linelen; j++)
				assert_int_equal(got->line[j], c->in.rep1[j % strlen(c->in.rep1)]);
		} else if (want->ret == 1) {
			assert_string_equal(got->line, want->line);
		} else {
			if (got->code != want->code)
				fail_msg("%s (%s): code %d, expected %d", c->name, mode,
				    got->code, want->code);
			assert_string_equal(got->error, lr_error_texts[want->code]);
		}
	}
	if (run->partial != c->partial)
		fail_msg("%s (%s): partial %d, expected %d", c->name, mode,
		    run->partial, c->partial);
}

static void
test_line_reader(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(lr_cases); i++) {
		const struct lr_case *c = &lr_cases[i];
		struct smtp_line_reader r;
		struct lr_run run;
		size_t len, split;
		char *data = gen_build(&c->in, &len);

		/* whole */
		memset(&run, 0, sizeof(run));
		assert_int_equal(smtp_line_reader_init(&r, c->max), 0);
		lr_feed_all(&r, data, len, &run);
		lr_check(c, &run, "whole");
		lr_run_free(&run);
		smtp_line_reader_clear(&r);

		/* trickle: one byte at a time, each in its own heap byte */
		assert_int_equal(smtp_line_reader_init(&r, c->max), 0);
		for (j = 0; j < len; j++) {
			char *one = malloc(1);

			assert_non_null(one);
			*one = data[j];
			lr_feed_all(&r, one, 1, &run);
			free(one);
		}
		run.partial = r.len > 0 || r.saw_cr || r.pending_error != 0;
		lr_check(c, &run, "trickle");
		lr_run_free(&run);
		smtp_line_reader_clear(&r);

		/* every split into two feeds (short inputs only: it is n^2) */
		for (split = 1; len <= 1100 && split < len; split++) {
			assert_int_equal(smtp_line_reader_init(&r, c->max), 0);
			lr_feed_all(&r, data, split, &run);
			lr_feed_all(&r, data + split, len - split, &run);
			lr_check(c, &run, "split");
			lr_run_free(&run);
			smtp_line_reader_clear(&r);
		}
		free(data);
	}
}

static void
test_line_reader_init(void **state)
{
	struct smtp_line_reader r;

	(void)state;
	assert_int_equal(smtp_line_reader_init(&r, 0), 0);
	assert_int_equal(r.max, 1000);
	assert_non_null(r.buf);
	smtp_line_reader_clear(&r);
	assert_null(r.buf);
	assert_int_equal(r.max, 0);
	smtp_line_reader_clear(&r);   /* twice is harmless */
	assert_int_equal(smtp_line_reader_init(&r, 1), -1);
	assert_null(r.buf);
	assert_int_equal(smtp_line_reader_init(&r, 512), 0);
	assert_int_equal(r.max, 512);
	smtp_line_reader_clear(&r);
}

/* ---- commands ---- */

struct cmd_case {
	const char *line;
	size_t len;          /* 0: strlen(line) */
	enum smtp_cmd cmd;
	const char *args;    /* NULL: no arguments */
};

static const struct cmd_case cmd_cases[] = {
	{ .line = "HELO a.example", .cmd = SMTP_CMD_HELO, .args = "a.example" },
	{ .line = "ehlo a.example", .cmd = SMTP_CMD_EHLO, .args = "a.example" },
	{ .line = "MAIL FROM:<a@b.example>", .cmd = SMTP_CMD_MAIL, .args = "FROM:<a@b.example>" },
	{ .line = "Mail From:<a@b.example> SIZE=10", .cmd = SMTP_CMD_MAIL,
	  .args = "From:<a@b.example> SIZE=10" },
	{ .line = "MAIL  FROM:<a@b.example>", .cmd = SMTP_CMD_MAIL, .args = " FROM:<a@b.example>" },
	{ .line = "RCPT TO:<a@b.example>", .cmd = SMTP_CMD_RCPT, .args = "TO:<a@b.example>" },
	{ .line = "DATA", .cmd = SMTP_CMD_DATA },
	{ .line = "DATA   ", .cmd = SMTP_CMD_DATA },
	{ .line = "data x", .cmd = SMTP_CMD_DATA, .args = "x" },
	{ .line = "BDAT 100 LAST", .cmd = SMTP_CMD_BDAT, .args = "100 LAST" },
	{ .line = "RSET", .cmd = SMTP_CMD_RSET },
	{ .line = "NOOP", .cmd = SMTP_CMD_NOOP },
	{ .line = "NOOP hello there", .cmd = SMTP_CMD_NOOP, .args = "hello there" },
	{ .line = "QUIT", .cmd = SMTP_CMD_QUIT },
	{ .line = "qUiT", .cmd = SMTP_CMD_QUIT },
	{ .line = "VRFY user", .cmd = SMTP_CMD_VRFY, .args = "user" },
	{ .line = "EXPN list", .cmd = SMTP_CMD_EXPN, .args = "list" },
	{ .line = "HELP", .cmd = SMTP_CMD_HELP },
	{ .line = "HELP MAIL", .cmd = SMTP_CMD_HELP, .args = "MAIL" },
	{ .line = "STARTTLS", .cmd = SMTP_CMD_STARTTLS },
	{ .line = "STARTTLS ", .cmd = SMTP_CMD_STARTTLS },
	{ .line = "AUTH PLAIN dGVzdA==", .cmd = SMTP_CMD_AUTH, .args = "PLAIN dGVzdA==" },
	{ .line = "QUITxyz", .len = 4, .cmd = SMTP_CMD_QUIT },
	{ .line = "QUIT    x", .len = 6, .cmd = SMTP_CMD_QUIT },
	{ .line = "MAILX FROM:<a@b.example>", .cmd = SMTP_CMD_UNKNOWN, .args = "FROM:<a@b.example>" },
	{ .line = "MAI", .cmd = SMTP_CMD_UNKNOWN },
	{ .line = "", .cmd = SMTP_CMD_UNKNOWN },
	{ .line = "   ", .cmd = SMTP_CMD_UNKNOWN },
	{ .line = " MAIL FROM:<a@b.example>", .cmd = SMTP_CMD_UNKNOWN, .args = "MAIL FROM:<a@b.example>" },
	{ .line = "MAIL\tFROM:<a@b.example>", .cmd = SMTP_CMD_UNKNOWN },
	{ .line = "MAIL:", .cmd = SMTP_CMD_UNKNOWN },
	{ .line = "GET / HTTP/1.1", .cmd = SMTP_CMD_HTTP, .args = "/ HTTP/1.1" },
	{ .line = "get / HTTP/1.1", .cmd = SMTP_CMD_HTTP, .args = "/ HTTP/1.1" },
	{ .line = "POST /cgi-bin/x HTTP/1.1", .cmd = SMTP_CMD_HTTP, .args = "/cgi-bin/x HTTP/1.1" },
	{ .line = "HEAD / HTTP/1.0", .cmd = SMTP_CMD_HTTP, .args = "/ HTTP/1.0" },
	{ .line = "PUT /x HTTP/1.1", .cmd = SMTP_CMD_HTTP, .args = "/x HTTP/1.1" },
	{ .line = "CONNECT mx.example:25 HTTP/1.1", .cmd = SMTP_CMD_HTTP, .args = "mx.example:25 HTTP/1.1" },
	{ .line = "OPTIONS * HTTP/1.1", .cmd = SMTP_CMD_HTTP, .args = "* HTTP/1.1" },
	{ .line = "GET", .cmd = SMTP_CMD_UNKNOWN },
	{ .line = "GETX /", .cmd = SMTP_CMD_UNKNOWN, .args = "/" },
	{ .line = "\xc3\xa9 x", .cmd = SMTP_CMD_UNKNOWN, .args = "x" },
};

static void
test_commands(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cmd_cases); i++) {
		const struct cmd_case *c = &cmd_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->line);
		const char *args = (const char *)1;
		char *line = malloc(len + 1);
		enum smtp_cmd cmd;

		assert_non_null(line);
		memcpy(line, c->line, len);
		line[len] = '\0';
		cmd = smtp_parse_command(line, len, &args);
		if (cmd != c->cmd)
			fail_msg("\"%s\": %s, expected %s", c->line, smtp_cmd_name(cmd),
			    smtp_cmd_name(c->cmd));
		if (c->args == NULL)
			assert_null(args);
		else {
			assert_non_null(args);
			assert_string_equal(args, c->args);
		}
		free(line);
	}
}

static void
test_cmd_names(void **state)
{
	int c;

	(void)state;
	for (c = 0; c < SMTP_CMD_COUNT; c++) {
		const char *name = smtp_cmd_name((enum smtp_cmd)c), *args;

		assert_non_null(name);
		if (c == SMTP_CMD_UNKNOWN || c == SMTP_CMD_HTTP)
			continue;
		assert_int_equal(smtp_parse_command(name, strlen(name), &args), c);
		assert_null(args);
	}
	assert_string_equal(smtp_cmd_name(SMTP_CMD_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_cmd_name(SMTP_CMD_COUNT), "UNKNOWN");
	assert_string_equal(smtp_cmd_name((enum smtp_cmd)-1), "UNKNOWN");
}

/* ---- addresses ---- */

#define E_SENDER "501 5.1.7 Bad sender address syntax"
#define E_RCPT "501 5.1.3 Bad recipient address syntax"
#define E_MAIL_KW "501 5.5.4 Syntax: MAIL FROM:<address>"
#define E_RCPT_KW "501 5.5.4 Syntax: RCPT TO:<address>"
#define E_SENDER_LOCAL "501 5.1.7 Sender address rejected: local part too long"
#define E_RCPT_LOCAL "501 5.1.3 Recipient address rejected: local part too long"
#define E_SENDER_DOMAIN "501 5.1.7 Sender address rejected: domain too long"
#define E_RCPT_DOMAIN "501 5.1.3 Recipient address rejected: domain too long"
#define E_SENDER_PATH "501 5.1.7 Sender address rejected: path too long"
#define E_RCPT_PATH "501 5.1.3 Recipient address rejected: path too long"

struct addr_case {
	struct gen args;
	bool rcpt;              /* smtp_parse_rcpt, else smtp_parse_mail */
	const char *error;      /* NULL: expect success */
	const char *local;      /* NULL: not checked (generated) */
	const char *domain;
	size_t local_len, domain_len;   /* checked when non-zero */
	const char *params;
	bool null_path, postmaster, quoted, literal, utf8;
};

#define A(s) { .pre = (s) }

static const struct addr_case addr_cases[] = {
	/* plain, keyword and the colon */
	{ .args = A("FROM:<user@example.com>"), .local = "user", .domain = "example.com" },
	{ .args = A("from:<user@example.com>"), .local = "user", .domain = "example.com" },
	{ .args = A("FrOm:<user@example.com>"), .local = "user", .domain = "example.com" },
	{ .args = A("FROM: <user@example.com>"), .local = "user", .domain = "example.com" },
	{ .args = A("FROM:  <user@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:\t<user@example.com>"), .error = E_SENDER },
	{ .args = A("FROM :<user@example.com>"), .error = E_MAIL_KW },
	{ .args = A("FROM<user@example.com>"), .error = E_MAIL_KW },
	{ .args = A("TO:<user@example.com>"), .error = E_MAIL_KW },
	{ .args = A("FROM:<user@example.com>"), .rcpt = true, .error = E_RCPT_KW },
	{ .args = A(""), .error = E_MAIL_KW },
	{ .args = { 0 }, .error = E_MAIL_KW },
	{ .args = { 0 }, .rcpt = true, .error = E_RCPT_KW },
	{ .args = A("FROM:"), .error = E_SENDER },
	{ .args = A("TO:"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<user@example.com>"), .rcpt = true, .local = "user", .domain = "example.com" },
	{ .args = A("to: <user@example.com>"), .rcpt = true, .local = "user", .domain = "example.com" },
	/* null path and Postmaster */
	{ .args = A("FROM:<>"), .local = "", .domain = "", .null_path = true },
	{ .args = A("FROM: <>"), .local = "", .domain = "", .null_path = true },
	{ .args = A("TO:<>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<Postmaster>"), .rcpt = true, .local = "Postmaster", .domain = "", .postmaster = true },
	{ .args = A("TO:<POSTMASTER>"), .rcpt = true, .local = "POSTMASTER", .domain = "", .postmaster = true },
	{ .args = A("TO:<postmaster@example.com>"), .rcpt = true, .local = "postmaster", .domain = "example.com" },
	{ .args = A("TO:<\"Postmaster\">"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<@a.example:Postmaster>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<postmastr>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<user>"), .rcpt = true, .error = E_RCPT },
	/* no domain in a sender parses: the session answers 553 5.1.8 */
	{ .args = A("FROM:<user>"), .local = "user", .domain = "" },
	{ .args = A("FROM:<Postmaster>"), .local = "Postmaster", .domain = "" },
	/* missing or doubled brackets, spaces */
	{ .args = A("FROM:user@example.com"), .error = E_SENDER },
	{ .args = A("FROM:<user@example.com"), .error = E_SENDER },
	{ .args = A("FROM:user@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<<user@example.com>>"), .error = E_SENDER },
	{ .args = A("FROM:<user @example.com>"), .error = E_SENDER },
	{ .args = A("FROM:< user@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<user@ example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<user@example.com >"), .error = E_SENDER },
	{ .args = A("TO:<a b@example.com>"), .rcpt = true, .error = E_RCPT },
	/* parameters are split off */
	{ .args = A("FROM:<user@example.com> SIZE=1"), .local = "user", .domain = "example.com",
	  .params = "SIZE=1" },
	{ .args = A("FROM:<> SIZE=1 BODY=8BITMIME"), .local = "", .domain = "", .null_path = true,
	  .params = "SIZE=1 BODY=8BITMIME" },
	{ .args = A("FROM:<user@example.com>  SIZE=1"), .local = "user", .domain = "example.com",
	  .params = " SIZE=1" },
	{ .args = A("FROM:<user@example.com>   "), .local = "user", .domain = "example.com" },
	{ .args = A("FROM:<user@example.com>SIZE=1"), .error = E_SENDER },
	{ .args = A("TO:<user@EXAMPLE.com> NOTIFY=NEVER"), .rcpt = true, .local = "user",
	  .domain = "example.com", .params = "NOTIFY=NEVER" },
	/* local parts */
	{ .args = A("FROM:<First.Last@Sub.Example.COM>"), .local = "First.Last", .domain = "sub.example.com" },
	{ .args = A("FROM:<a+tag@example.com>"), .local = "a+tag", .domain = "example.com" },
	{ .args = A("FROM:<!#$%&'*+-/=?^_`{|}~@example.com>"), .local = "!#$%&'*+-/=?^_`{|}~",
	  .domain = "example.com" },
	{ .args = A("TO:<u%remote.example@local.example>"), .rcpt = true, .local = "u%remote.example",
	  .domain = "local.example" },
	{ .args = A("TO:<remote.example!u@local.example>"), .rcpt = true, .local = "remote.example!u",
	  .domain = "local.example" },
	{ .args = A("FROM:<a..b@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<.a@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a.@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a\x7f@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a(comment)@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a\\b@example.com>"), .error = E_SENDER },
	/* quoted local parts */
	{ .args = A("TO:<\"u@remote.example\"@local.example>"), .rcpt = true, .local = "u@remote.example",
	  .domain = "local.example", .quoted = true },
	{ .args = A("TO:<\"a b\"@example.com>"), .rcpt = true, .local = "a b", .domain = "example.com",
	  .quoted = true },
	{ .args = A("TO:<\"a\\\"b\\\\c\"@example.com>"), .rcpt = true, .local = "a\"b\\c",
	  .domain = "example.com", .quoted = true },
	{ .args = A("TO:<\"quoted>\"@example.com>"), .rcpt = true, .local = "quoted>",
	  .domain = "example.com", .quoted = true },
	{ .args = A("TO:<\"\"@example.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<\"abc@example.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<\"a\\\tb\"@example.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<\"a\tb\"@example.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<\"a\"b@example.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<a\"b\"@example.com>"), .rcpt = true, .error = E_RCPT },
	/* source routes: checked, dropped */
	{ .args = A("TO:<@a.example,@b.example:u@c.example>"), .rcpt = true, .local = "u",
	  .domain = "c.example" },
	{ .args = A("FROM:<@a.example:u@c.example>"), .local = "u", .domain = "c.example" },
	{ .args = A("TO:<@a..example:u@c.example>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<@a.example,u@c.example>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<@a.example,:u@c.example>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<@[192.0.2.1]:u@c.example>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<@a.example:>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("FROM:<@a.example:>"), .error = E_SENDER },
	/* address literals */
	{ .args = A("TO:<u@[192.0.2.1]>"), .rcpt = true, .local = "u", .domain = "[192.0.2.1]", .literal = true },
	{ .args = A("TO:<u@[0.0.0.0]>"), .rcpt = true, .local = "u", .domain = "[0.0.0.0]", .literal = true },
	{ .args = A("TO:<u@[256.0.0.1]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[1.2.3]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[1.2.3.4.5]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[01.2.3.4]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[1.2.3.4>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[ 1.2.3.4]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[IPv6:2001:DB8::1]>"), .rcpt = true, .local = "u",
	  .domain = "[IPv6:2001:db8::1]", .literal = true },
	{ .args = A("FROM:<u@[ipv6:::1]>"), .local = "u", .domain = "[IPv6:::1]", .literal = true },
	{ .args = A("TO:<u@[IPv6:::ffff:192.0.2.1]>"), .rcpt = true, .local = "u",
	  .domain = "[IPv6:::ffff:192.0.2.1]", .literal = true },
	{ .args = A("TO:<u@[IPv6:1:2:3:4:5:6:7:8]>"), .rcpt = true, .local = "u",
	  .domain = "[IPv6:1:2:3:4:5:6:7:8]", .literal = true },
	{ .args = A("TO:<u@[IPv6:1:2:3:4:5:6::]>"), .rcpt = true, .local = "u",
	  .domain = "[IPv6:1:2:3:4:5:6::]", .literal = true },
	{ .args = A("TO:<u@[IPv6:1:2:3:4:5:6:7::]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[IPv6:1:2:3::4:5:6:7]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[IPv6:1:2:3:4:5:6:7:8:9]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[IPv6:2001:db8::g]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[IPv6:2001:db8:::1]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[IPv6:2001:db8::1%eth0]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[IPv6:]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[2001:db8::1]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[x-tag:something]>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@[IPv6:1111:2222:3333:4444:5555:6666:7777:8888:9999:0000]>"), .rcpt = true,
	  .error = E_RCPT },
	{ .args = { .pre = "TO:<u@[", .rep1 = "1", .n1 = 300, .post = "]>" }, .rcpt = true,
	  .error = E_RCPT },
	/* domains */
	{ .args = A("TO:<u@example.com.>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("FROM:<u@example.com.>"), .error = E_SENDER },
	{ .args = A("TO:<u@.example.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@exa_mple.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@-example.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@example-.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@xn--mnchen-3ya.example>"), .rcpt = true, .local = "u",
	  .domain = "xn--mnchen-3ya.example" },
	{ .args = A("TO:<u@192.0.2.1>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@123.example>"), .rcpt = true, .local = "u", .domain = "123.example" },
	{ .args = A("TO:<u@localhost>"), .rcpt = true, .local = "u", .domain = "localhost" },
	{ .args = A("TO:<u@example.com@other.example>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@example.com,>"), .rcpt = true, .error = E_RCPT },
	/* UTF-8 (RFC 6531) */
	{ .args = A("FROM:<jos\xc3\xa9@example.com>"), .local = "jos\xc3\xa9", .domain = "example.com",
	  .utf8 = true },
	{ .args = A("TO:<u@M\xc3\xbcnchen.EXAMPLE>"), .rcpt = true, .local = "u",
	  .domain = "m\xc3\xbcnchen.example", .utf8 = true },
	{ .args = A("TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>"),
	  .rcpt = true, .local = "\xe7\x94\xa8\xe6\x88\xb7",
	  .domain = "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", .utf8 = true },
	{ .args = A("TO:<\"j\xc3\xa9 d\"@example.com>"), .rcpt = true, .local = "j\xc3\xa9 d",
	  .domain = "example.com", .quoted = true, .utf8 = true },
	{ .args = A("TO:<\xf0\x9f\x98\x80@example.com>"), .rcpt = true, .local = "\xf0\x9f\x98\x80",
	  .domain = "example.com", .utf8 = true },
	{ .args = A("TO:<\xe0\xa4\xb9\xf1\x80\x80\x80@example.com>"), .rcpt = true,
	  .local = "\xe0\xa4\xb9\xf1\x80\x80\x80", .domain = "example.com", .utf8 = true },
	{ .args = A("FROM:<a\xe0\x80\xaf@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a\xf0\x9f\x98(@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a\xf0\x9f\x98@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<jos\xc3@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a\xc0\xaf@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a\xed\xa0\x80@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a\xf4\x90\x80\x80@example.com>"), .error = E_SENDER },
	{ .args = A("FROM:<a\xff@example.com>"), .error = E_SENDER },
	{ .args = A("TO:<u@ex\xffmple.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<u@ex\xc3mple.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<\"a\\\xc3\xa9\"@example.com>"), .rcpt = true, .error = E_RCPT },
	{ .args = A("TO:<@\xc3\xa9.example:u@example.com>"), .rcpt = true, .error = E_RCPT },
	/* limits: local part 64, label 63, domain 253, path 256 */
	{ .args = { .pre = "TO:<", .rep1 = "a", .n1 = 64, .post = "@example.com>" }, .rcpt = true,
	  .domain = "example.com", .local_len = 64 },
	{ .args = { .pre = "TO:<", .rep1 = "a", .n1 = 65, .post = "@example.com>" }, .rcpt = true,
	  .error = E_RCPT_LOCAL },
	{ .args = { .pre = "FROM:<", .rep1 = "a", .n1 = 65, .post = "@example.com>" },
	  .error = E_SENDER_LOCAL },
	{ .args = { .pre = "FROM:<", .rep1 = "a", .n1 = 500, .post = "@example.com>" },
	  .error = E_SENDER_LOCAL },
	{ .args = { .pre = "TO:<\"", .rep1 = "a", .n1 = 62, .post = "\"@example.com>" }, .rcpt = true,
	  .domain = "example.com", .local_len = 62, .quoted = true },
	{ .args = { .pre = "TO:<\"", .rep1 = "a", .n1 = 63, .post = "\"@example.com>" }, .rcpt = true,
	  .error = E_RCPT_LOCAL },
	{ .args = { .pre = "TO:<\"", .rep1 = "a", .n1 = 200, .post = "\"@example.com>" }, .rcpt = true,
	  .error = E_RCPT_LOCAL },
	{ .args = { .pre = "TO:<\"", .rep1 = "a", .n1 = 200 }, .rcpt = true, .error = E_RCPT_LOCAL },
	{ .args = { .pre = "TO:<\"", .rep1 = "\\a", .n1 = 31, .post = "\"@example.com>" }, .rcpt = true,
	  .domain = "example.com", .local_len = 31, .quoted = true },
	{ .args = { .pre = "TO:<\"", .rep1 = "\\a", .n1 = 32, .post = "\"@example.com>" }, .rcpt = true,
	  .error = E_RCPT_LOCAL },
	{ .args = { .pre = "TO:<", .rep1 = "\xf0\x9f\x98\x80", .n1 = 16, .post = "@example.com>" },
	  .rcpt = true, .domain = "example.com", .local_len = 64, .utf8 = true },
	{ .args = { .pre = "TO:<", .rep1 = "\xf0\x9f\x98\x80", .n1 = 17, .post = "@example.com>" },
	  .rcpt = true, .error = E_RCPT_LOCAL },
	{ .args = { .pre = "TO:<u@", .rep1 = "a", .n1 = 63, .post = ".example>" }, .rcpt = true,
	  .local = "u", .domain_len = 63 + 8 },
	{ .args = { .pre = "TO:<u@", .rep1 = "a", .n1 = 64, .post = ".example>" }, .rcpt = true,
	  .error = E_RCPT },
	/* "<u@" + 252 + ">" is the 256 of a path; 253 fits a domain, not a path */
	{ .args = { .pre = "TO:<u@", .rep1 = "abcdefghi.", .n1 = 24, .post = "abcdefg.test>" },
	  .rcpt = true, .local = "u", .domain_len = 252 },
	{ .args = { .pre = "TO:<u@", .rep1 = "abcdefghi.", .n1 = 24, .post = "abcdefgh.test>" },
	  .rcpt = true, .error = E_RCPT_PATH },
	{ .args = { .pre = "TO:<u@", .rep1 = "abcdefghi.", .n1 = 24, .post = "abcdefghi.test>" },
	  .rcpt = true, .error = E_RCPT_DOMAIN },
	{ .args = { .pre = "FROM:<u@", .rep1 = "abcdefghi.", .n1 = 24, .post = "abcdefghi.test>" },
	  .error = E_SENDER_DOMAIN },
	{ .args = { .pre = "TO:<", .rep1 = "a", .n1 = 64, .mid = "@", .rep2 = "abcdefghi.", .n2 = 18,
	      .post = "b.example>" }, .rcpt = true, .local_len = 64, .domain_len = 189 },
	{ .args = { .pre = "TO:<", .rep1 = "a", .n1 = 64, .mid = "@", .rep2 = "abcdefghi.", .n2 = 18,
	      .post = "bc.example>" }, .rcpt = true, .error = E_RCPT_PATH },
	{ .args = { .pre = "FROM:<", .rep1 = "a", .n1 = 64, .mid = "@", .rep2 = "abcdefghi.", .n2 = 18,
	      .post = "bc.example>" }, .error = E_SENDER_PATH },
	{ .args = { .pre = "TO:<", .rep1 = "@abcdefghi.example,", .n1 = 14,
	      .post = "@x.example:u@example.com>" }, .rcpt = true, .error = E_RCPT_PATH },
	{ .args = { .pre = "TO:<", .rep1 = "@abcdefghi.example,", .n1 = 5,
	      .post = "@x.example:u@example.com>" }, .rcpt = true, .local = "u", .domain = "example.com" },
};

static void
addr_check(const struct addr_case *c, const char *args, int ret,
    const struct smtp_address *a, const char *params, const char *error)
{
	if (c->error != NULL) {
		if (ret != -1)
			fail_msg("\"%s\": accepted, expected \"%s\"", args, c->error);
		assert_non_null(error);
		assert_string_equal(error, c->error);
		assert_null(params);
		return;
	}
	if (ret != 1)
		fail_msg("\"%s\": refused: %s", args, error);
	assert_null(error);
	if (c->local != NULL)
		assert_string_equal(a->local, c->local);
	if (c->domain != NULL)
		assert_string_equal(a->domain, c->domain);
	if (c->local_len != 0)
		assert_int_equal(strlen(a->local), c->local_len);
	if (c->domain_len != 0)
		assert_int_equal(strlen(a->domain), c->domain_len);
	if (c->params == NULL)
		assert_null(params);
	else {
		assert_non_null(params);
		assert_string_equal(params, c->params);
	}
	assert_int_equal(a->null_path, c->null_path);
	assert_int_equal(a->postmaster_only, c->postmaster);
	assert_int_equal(a->quoted_local, c->quoted);
	assert_int_equal(a->domain_literal, c->literal);
	assert_int_equal(a->utf8, c->utf8);
}

/* Send "MAIL "/"RCPT " + args + CRLF through the line reader byte by
 * byte and smtp_parse_command, and parse what comes out. */
static void
addr_pipeline(const struct addr_case *c, const char *args)
{
	struct smtp_line_reader r;
	struct smtp_address a;
	const char *verb = c->rcpt ? "RCPT " : "MAIL ";
	const char *line = NULL, *error, *params, *cargs;
	size_t len = strlen(verb) + strlen(args) + 2, i, consumed, linelen = 0;
	char *wire = malloc(len + 1);
	int code, ret = 0;

	assert_non_null(wire);
	snprintf(wire, len + 1, "%s%s\r\n", verb, args);
	assert_int_equal(smtp_line_reader_init(&r, 0), 0);
	for (i = 0; i < len; i++) {
		ret = smtp_line_reader_feed(&r, wire + i, 1, &consumed, &line,
		    &linelen, &code, &error);
		assert_int_equal(consumed, 1);
		assert_int_equal(ret, i + 1 == len ? 1 : 0);
	}
	assert_int_equal(smtp_parse_command(line, linelen, &cargs),
	    c->rcpt ? SMTP_CMD_RCPT : SMTP_CMD_MAIL);
	assert_non_null(cargs);
	assert_string_equal(cargs, args);
	ret = c->rcpt ? smtp_parse_rcpt(cargs, &a, &params, &error) :
	    smtp_parse_mail(cargs, &a, &params, &error);
	addr_check(c, args, ret, &a, params, error);
	smtp_line_reader_clear(&r);
	free(wire);
}

static void
test_addresses(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(addr_cases); i++) {
		const struct addr_case *c = &addr_cases[i];
		struct smtp_address a;
		const char *params = (const char *)1, *error = (const char *)1;
		char *args = gen_build(&c->args, NULL);
		int ret;

		memset(&a, 0x5a, sizeof(a));
		ret = c->rcpt ? smtp_parse_rcpt(args, &a, &params, &error) :
		    smtp_parse_mail(args, &a, &params, &error);
		addr_check(c, args != NULL ? args : "(null)", ret, &a, params, error);
		if (ret < 0) {
			/* a refused address leaves nothing half-filled */
			assert_string_equal(a.local, "");
			assert_string_equal(a.domain, "");
		}
		if (args != NULL && args[0] != '\0')
			addr_pipeline(c, args);
		free(args);
	}
}

/* ---- parameters ---- */

#define E_PSYNTAX "555 5.5.4 Bad parameter syntax"

struct mail_params_case {
	struct gen params;
	const char *error;
	uint64_t size;
	enum smtp_body_type body;
	bool smtputf8;
	const char *ret;
	const char *envid;
};

static const struct mail_params_case mail_params_cases[] = {
	{ .params = { 0 } },
	{ .params = A("") },
	{ .params = A("SIZE=0") },
	{ .params = A("SIZE=12345"), .size = 12345 },
	{ .params = A("size=12345"), .size = 12345 },
	{ .params = A("SIZE=18446744073709551615"), .size = UINT64_MAX },
	{ .params = A("SIZE=00000000000000000001"), .size = 1 },
	{ .params = A("SIZE=000000000000000000001"), .error = "555 5.5.4 Bad SIZE parameter" },
	{ .params = A("SIZE=18446744073709551616"), .error = "555 5.5.4 Bad SIZE parameter" },
	{ .params = A("SIZE=99999999999999999999"), .error = "555 5.5.4 Bad SIZE parameter" },
	{ .params = A("SIZE"), .error = "555 5.5.4 Bad SIZE parameter" },
	{ .params = A("SIZE=-1"), .error = "555 5.5.4 Bad SIZE parameter" },
	{ .params = A("SIZE=+1"), .error = "555 5.5.4 Bad SIZE parameter" },
	{ .params = A("SIZE=1a"), .error = "555 5.5.4 Bad SIZE parameter" },
	{ .params = A("SIZE=1k"), .error = "555 5.5.4 Bad SIZE parameter" },
	{ .params = A("SIZE="), .error = E_PSYNTAX },
	{ .params = A("SIZE=1 SIZE=2"), .error = "555 5.5.4 Duplicate SIZE parameter" },
	{ .params = A("SIZE=1 size=1"), .error = "555 5.5.4 Duplicate SIZE parameter" },
	{ .params = A("BODY=7BIT"), .body = SMTP_BODY_7BIT },
	{ .params = A("BODY=8BITMIME"), .body = SMTP_BODY_8BITMIME },
	{ .params = A("body=8bitmime"), .body = SMTP_BODY_8BITMIME },
	{ .params = A("BODY=BINARYMIME"), .body = SMTP_BODY_BINARYMIME },
	{ .params = A("BODY=9BIT"), .error = "555 5.5.4 Bad BODY parameter" },
	{ .params = A("BODY=8BITMIMEX"), .error = "555 5.5.4 Bad BODY parameter" },
	{ .params = A("BODY"), .error = "555 5.5.4 Bad BODY parameter" },
	{ .params = A("BODY=7BIT BODY=7BIT"), .error = "555 5.5.4 Duplicate BODY parameter" },
	{ .params = A("SMTPUTF8"), .smtputf8 = true },
	{ .params = A("smtputf8"), .smtputf8 = true },
	{ .params = A("SMTPUTF8=YES"), .error = "555 5.5.4 Bad SMTPUTF8 parameter" },
	{ .params = A("SMTPUTF8 SMTPUTF8"), .error = "555 5.5.4 Duplicate SMTPUTF8 parameter" },
	{ .params = A("RET=FULL"), .ret = "FULL" },
	{ .params = A("ret=hdrs"), .ret = "HDRS" },
	{ .params = A("RET=ALL"), .error = "555 5.5.4 Bad RET parameter" },
	{ .params = A("RET"), .error = "555 5.5.4 Bad RET parameter" },
	{ .params = A("RET=FULL RET=HDRS"), .error = "555 5.5.4 Duplicate RET parameter" },
	{ .params = A("ENVID=QQ314159"), .envid = "QQ314159" },
	{ .params = A("ENVID=abc+2Bdef+3D"), .envid = "abc+def=" },
	{ .params = A("ENVID=abc+2bdef"), .envid = "abc+def" },
	{ .params = A("ENVID=a+20b"), .envid = "a b" },
	{ .params = A("ENVID=a+2"), .error = "555 5.5.4 Bad ENVID parameter" },
	{ .params = A("ENVID=a+"), .error = "555 5.5.4 Bad ENVID parameter" },
	{ .params = A("ENVID=a+ZZ"), .error = "555 5.5.4 Bad ENVID parameter" },
	{ .params = A("ENVID=a+00"), .error = "555 5.5.4 Bad ENVID parameter" },
	{ .params = A("ENVID=a+0D+0A"), .error = "555 5.5.4 Bad ENVID parameter" },
	{ .params = A("ENVID=a+C3+A9"), .error = "555 5.5.4 Bad ENVID parameter" },
	{ .params = A("ENVID="), .error = E_PSYNTAX },
	{ .params = A("ENVID"), .error = "555 5.5.4 Bad ENVID parameter" },
	{ .params = A("ENVID=a ENVID=b"), .error = "555 5.5.4 Duplicate ENVID parameter" },
	{ .params = { .pre = "ENVID=", .rep1 = "x", .n1 = 100 }, .envid = NULL },
	{ .params = { .pre = "ENVID=", .rep1 = "x", .n1 = 101 }, .error = "555 5.5.4 Bad ENVID parameter" },
	{ .params = A("AUTH=<>") },
	{ .params = A("AUTH=user+40example.com") },
	{ .params = A("AUTH=a+4"), .error = "555 5.5.4 Bad AUTH parameter" },
	{ .params = A("AUTH=<> AUTH=<>"), .error = "555 5.5.4 Duplicate AUTH parameter" },
	{ .params = A("SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id1 AUTH=<>"), .size = 1000,
	  .body = SMTP_BODY_8BITMIME, .smtputf8 = true, .ret = "HDRS", .envid = "id1" },
	{ .params = A("SIZE=1 "), .size = 1 },
	{ .params = A("SIZE=1   "), .size = 1 },
	{ .params = A("   "), },
	{ .params = A("SIZE=1  BODY=8BITMIME"), .error = E_PSYNTAX },
	{ .params = A(" SIZE=1"), .error = E_PSYNTAX },
	{ .params = A("SIZE=1\tBODY=7BIT"), .error = E_PSYNTAX },
	{ .params = A("-X=1"), .error = E_PSYNTAX },
	{ .params = A("X_Y=1"), .error = E_PSYNTAX },
	{ .params = A("SIZE=1=2"), .error = E_PSYNTAX },
	{ .params = A("SIZE=\xc3\xa9"), .error = E_PSYNTAX },
	{ .params = A("=1"), .error = E_PSYNTAX },
	{ .params = A("FOO=bar"), .error = "555 5.5.4 Unsupported parameter: FOO" },
	{ .params = A("X-Custom"), .error = "555 5.5.4 Unsupported parameter: X-Custom" },
	{ .params = A("SIZE=1 FOO"), .error = "555 5.5.4 Unsupported parameter: FOO" },
	{ .params = A("NOTIFY=NEVER"), .error = "555 5.5.4 Unsupported parameter: NOTIFY" },
	{ .params = A("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=1"),
	  .error = "555 5.5.4 Unsupported parameter: ABCDEFGHIJKLMNOPQRSTUVWXYZ012345" },
};

static void
test_mail_params(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(mail_params_cases); i++) {
		const struct mail_params_case *c = &mail_params_cases[i];
		struct smtp_mail_params p;
		const char *error = (const char *)1;
		char *params = gen_build(&c->params, NULL);
		int ret;

		memset(&p, 0x5a, sizeof(p));
		ret = smtp_parse_mail_params(params, &p, &error);
		if (c->error != NULL) {
			if (ret != -1)
				fail_msg("\"%s\": accepted, expected \"%s\"", params, c->error);
			assert_string_equal(error, c->error);
		} else {
			if (ret != 1)
				fail_msg("\"%s\": refused: %s", params, error);
			assert_null(error);
			assert_int_equal(p.size, c->size);
			assert_int_equal(p.body, c->body);
			assert_int_equal(p.smtputf8, c->smtputf8);
			assert_string_equal(p.ret, c->ret != NULL ? c->ret : "");
			if (c->params.rep1 != NULL)
				assert_int_equal(strlen(p.envid), c->params.n1);
			else
				assert_string_equal(p.envid, c->envid != NULL ? c->envid : "");
		}
		free(params);
	}
}

struct rcpt_params_case {
	const char *params;
	const char *error;
};

static const struct rcpt_params_case rcpt_params_cases[] = {
	{ .params = NULL },
	{ .params = "" },
	{ .params = "NOTIFY=NEVER" },
	{ .params = "NOTIFY=SUCCESS" },
	{ .params = "NOTIFY=SUCCESS,FAILURE,DELAY" },
	{ .params = "notify=delay,failure" },
	{ .params = "NOTIFY=NEVER,SUCCESS", .error = "555 5.5.4 Bad NOTIFY parameter" },
	{ .params = "NOTIFY=DELAY,NEVER", .error = "555 5.5.4 Bad NOTIFY parameter" },
	{ .params = "NOTIFY=SUCCESS,SUCCESS", .error = "555 5.5.4 Bad NOTIFY parameter" },
	{ .params = "NOTIFY=SUCCESS,", .error = "555 5.5.4 Bad NOTIFY parameter" },
	{ .params = "NOTIFY=,SUCCESS", .error = "555 5.5.4 Bad NOTIFY parameter" },
	{ .params = "NOTIFY=SUCCESS,,DELAY", .error = "555 5.5.4 Bad NOTIFY parameter" },
	{ .params = "NOTIFY=FOO", .error = "555 5.5.4 Bad NOTIFY parameter" },
	{ .params = "NOTIFY", .error = "555 5.5.4 Bad NOTIFY parameter" },
	{ .params = "NOTIFY=", .error = E_PSYNTAX },
	{ .params = "NOTIFY=NEVER NOTIFY=DELAY", .error = "555 5.5.4 Duplicate NOTIFY parameter" },
	{ .params = "ORCPT=rfc822;user+40example.com" },
	{ .params = "orcpt=RFC822;u@example.com" },
	{ .params = "ORCPT=utf-8;u+40example.com" },
	{ .params = "ORCPT=rfc822", .error = "555 5.5.4 Bad ORCPT parameter" },
	{ .params = "ORCPT=;u@example.com", .error = "555 5.5.4 Bad ORCPT parameter" },
	{ .params = "ORCPT=rfc822;", .error = "555 5.5.4 Bad ORCPT parameter" },
	{ .params = "ORCPT=rfc822;a+4", .error = "555 5.5.4 Bad ORCPT parameter" },
	{ .params = "ORCPT=rfc822;a+00", .error = "555 5.5.4 Bad ORCPT parameter" },
	{ .params = "ORCPT=rfc(822);a", .error = "555 5.5.4 Bad ORCPT parameter" },
	{ .params = "ORCPT", .error = "555 5.5.4 Bad ORCPT parameter" },
	{ .params = "ORCPT=rfc822;a ORCPT=rfc822;b", .error = "555 5.5.4 Duplicate ORCPT parameter" },
	{ .params = "NOTIFY=FAILURE ORCPT=rfc822;u+40example.com" },
	{ .params = "NOTIFY=FAILURE  ORCPT=rfc822;a", .error = E_PSYNTAX },
	{ .params = "SIZE=1", .error = "555 5.5.4 Unsupported parameter: SIZE" },
	{ .params = "NOTIFY=NEVER XYZ", .error = "555 5.5.4 Unsupported parameter: XYZ" },
	{ .params = "a b", .error = "555 5.5.4 Unsupported parameter: a" },
	{ .params = "\x01", .error = E_PSYNTAX },
};

static void
test_rcpt_params(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(rcpt_params_cases); i++) {
		const struct rcpt_params_case *c = &rcpt_params_cases[i];
		const char *error = (const char *)1;
		char *params = c->params != NULL ? strdup(c->params) : NULL;
		int ret;

		ret = smtp_parse_rcpt_params(params, &error);
		if (c->error != NULL) {
			if (ret != -1)
				fail_msg("\"%s\": accepted, expected \"%s\"", params, c->error);
			assert_string_equal(error, c->error);
		} else {
			if (ret != 1)
				fail_msg("\"%s\": refused: %s", params, error);
			assert_null(error);
		}
		free(params);
	}
	/* ORCPT is at most 500 characters (RFC 3461 4.2) */
	for (i = 499; i <= 501; i++) {
		struct gen g = { .pre = "ORCPT=rfc822;", .rep1 = "x", .n1 = i - 7 };
		const char *error;
		char *params = gen_build(&g, NULL);

		assert_int_equal(strlen(params), i + 6);
		assert_int_equal(smtp_parse_rcpt_params(params, &error), i <= 500 ? 1 : -1);
		if (i > 500)
			assert_string_equal(error, "555 5.5.4 Bad ORCPT parameter");
		free(params);
	}
}

/* ---- HELO, domains, BDAT ---- */

#define E_HELO "501 5.5.4 Invalid HELO/EHLO hostname"

struct helo_case {
	struct gen args;
	bool single;     /* allow_single_label */
	bool ok;
};

static const struct helo_case helo_cases[] = {
	{ .args = A("mail.example.com"), .ok = true },
	{ .args = A("MAIL.EXAMPLE.COM"), .ok = true },
	{ .args = A("a.b"), .ok = true },
	{ .args = A("mail.example.com "), .ok = true },
	{ .args = A("localhost"), .ok = false },
	{ .args = A("localhost"), .single = true, .ok = true },
	{ .args = A("my-laptop"), .single = true, .ok = true },
	{ .args = A("[192.0.2.1]"), .ok = true },
	{ .args = A("[IPv6:2001:db8::1]"), .ok = true },
	{ .args = A("[ipv6:::1]"), .ok = true },
	{ .args = A("[300.1.1.1]"), .ok = false },
	{ .args = A("[IPv6:zz::1]"), .ok = false },
	{ .args = A("[192.0.2.1"), .ok = false },
	{ .args = A("[192.0.2.1] x"), .ok = false },
	{ .args = A("192.0.2.1"), .ok = false },
	{ .args = A("192.0.2.1"), .single = true, .ok = false },
	{ .args = A(""), .ok = false },
	{ .args = { 0 }, .ok = false },
	{ .args = { 0 }, .single = true, .ok = false },
	{ .args = A("   "), .single = true, .ok = false },
	{ .args = A(" mail.example.com"), .ok = false },
	{ .args = A("mail .example.com"), .ok = false },
	{ .args = A("mail.example.com extra"), .ok = false },
	{ .args = A("mail.example.com."), .ok = false },
	{ .args = A(".example.com"), .ok = false },
	{ .args = A("mail..example.com"), .ok = false },
	{ .args = A("mail_x.example.com"), .ok = false },
	{ .args = A("-mail.example.com"), .ok = false },
	{ .args = A("mail-.example.com"), .ok = false },
	{ .args = A("m\xc3\xbcnchen.example"), .ok = false },
	{ .args = A("mail.example.com\t"), .ok = false },
	{ .args = A("<mail.example.com>"), .ok = false },
	{ .args = { .rep1 = "a", .n1 = 63, .post = ".example" }, .ok = true },
	{ .args = { .rep1 = "a", .n1 = 64, .post = ".example" }, .ok = false },
	{ .args = { .rep1 = "abcdefghi.", .n1 = 24, .post = "abcdefgh.test" }, .ok = true },
	{ .args = { .rep1 = "abcdefghi.", .n1 = 24, .post = "abcdefghi.test" }, .ok = false },
	{ .args = { .rep1 = "abcdefghi.", .n1 = 30, .post = "test" }, .ok = false },
};

static void
test_helo(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(helo_cases); i++) {
		const struct helo_case *c = &helo_cases[i];
		const char *error = (const char *)1;
		char *args = gen_build(&c->args, NULL);
		int ret = smtp_parse_helo(args, c->single, &error);

		if (c->ok) {
			if (ret != 1)
				fail_msg("\"%s\": refused", args);
			assert_null(error);
		} else {
			if (ret != -1)
				fail_msg("\"%s\": accepted", args != NULL ? args : "(null)");
			assert_string_equal(error, E_HELO);
		}
		free(args);
	}
}

struct domain_case {
	const char *text;
	size_t len;      /* 0: strlen */
	bool utf8;
	bool ok;
};

static const struct domain_case domain_cases[] = {
	{ .text = "example.com", .ok = true },
	{ .text = "example.comXYZ!", .len = 11, .ok = true },
	{ .text = "example.com.", .ok = false },
	{ .text = "example.com.", .len = 11, .ok = true },
	{ .text = "com", .ok = true },
	{ .text = "123", .ok = false },
	{ .text = "a.1", .ok = false },
	{ .text = "1a.b2", .ok = true },
	{ .text = "", .ok = false },
	{ .text = ".", .ok = false },
	{ .text = "a", .ok = true },
	{ .text = "a-", .ok = false },
	{ .text = "m\xc3\xbcnchen.example", .ok = false },
	{ .text = "m\xc3\xbcnchen.example", .utf8 = true, .ok = true },
	{ .text = "m\xc3.example", .utf8 = true, .ok = false },
	{ .text = "m\xc3\xbc", .len = 2, .utf8 = true, .ok = false },
	{ .text = "exa mple.com", .ok = false },
	{ .text = "exa\x00mple.com", .len = 11, .ok = false },
};

static void
test_domain_valid(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(domain_cases); i++) {
		const struct domain_case *c = &domain_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->text);
		char *text = malloc(len + 1);

		assert_non_null(text);
		memcpy(text, c->text, len);
		/* no terminator inside the checked range: ASan sees overreads */
		if (smtp_domain_valid(text, len, c->utf8) != c->ok)
			fail_msg("domain case %zu \"%s\": expected %d", i, c->text, c->ok);
		free(text);
	}
	assert_false(smtp_domain_valid(NULL, 0, true));
}

#define E_BDAT "501 5.5.4 Syntax: BDAT size [LAST]"

struct bdat_case {
	const char *args;
	bool ok;
	uint64_t size;
	bool last;
};

static const struct bdat_case bdat_cases[] = {
	{ .args = "100", .ok = true, .size = 100 },
	{ .args = "100 LAST", .ok = true, .size = 100, .last = true },
	{ .args = "100 last", .ok = true, .size = 100, .last = true },
	{ .args = "0 LAST", .ok = true, .size = 0, .last = true },
	{ .args = "0", .ok = true, .size = 0 },
	{ .args = "100 ", .ok = true, .size = 100 },
	{ .args = "100 LAST ", .ok = true, .size = 100, .last = true },
	{ .args = "18446744073709551615", .ok = true, .size = UINT64_MAX },
	{ .args = "00000000000000000042 LAST", .ok = true, .size = 42, .last = true },
	{ .args = "18446744073709551616" },
	{ .args = "000000000000000000042" },
	{ .args = "" },
	{ .args = NULL },
	{ .args = "LAST" },
	{ .args = " 100" },
	{ .args = "100  LAST" },
	{ .args = "100 LASTX" },
	{ .args = "100 LAS" },
	{ .args = "100 LAST x" },
	{ .args = "100x" },
	{ .args = "-1" },
	{ .args = "+1" },
	{ .args = "1e3" },
	{ .args = "100\tLAST" },
};

static void
test_bdat(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bdat_cases); i++) {
		const struct bdat_case *c = &bdat_cases[i];
		const char *error = (const char *)1;
		char *args = c->args != NULL ? strdup(c->args) : NULL;
		uint64_t size = 7;
		bool last = true;
		int ret = smtp_parse_bdat(args, &size, &last, &error);

		if (c->ok) {
			if (ret != 1)
				fail_msg("\"%s\": refused", c->args);
			assert_null(error);
			assert_int_equal(size, c->size);
			assert_int_equal(last, c->last);
		} else {
			if (ret != -1)
				fail_msg("\"%s\": accepted", c->args != NULL ? c->args : "(null)");
			assert_string_equal(error, E_BDAT);
		}
		free(args);
	}
}

static void
test_case_counts(void **state)
{
	(void)state;
	print_message("cases: line reader %zu, commands %zu, addresses %zu, MAIL params %zu, "
	    "RCPT params %zu, HELO %zu, domains %zu, BDAT %zu\n",
	    ARRAY_SIZE(lr_cases), ARRAY_SIZE(cmd_cases), ARRAY_SIZE(addr_cases),
	    ARRAY_SIZE(mail_params_cases), ARRAY_SIZE(rcpt_params_cases),
	    ARRAY_SIZE(helo_cases), ARRAY_SIZE(domain_cases), ARRAY_SIZE(bdat_cases));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_reader_init),
		cmocka_unit_test(test_line_reader),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_cmd_names),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_mail_params),
		cmocka_unit_test(test_rcpt_params),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_domain_valid),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_case_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
