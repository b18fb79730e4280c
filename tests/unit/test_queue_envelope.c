/*
 * test_queue_envelope.c: table tests for the spool envelope header
 * (queue_envelope_format / queue_envelope_parse in src/queue/queue_spool.c).
 * Envelopes round-trip byte for byte through format and parse, with a body
 * after them; damaged headers return -1, leave the envelope empty and leak
 * nothing (LeakSanitizer runs with the sanitizer build). Inputs sit in
 * exact-size heap buffers so ASan sees any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_RCPTS 8

struct rcpt_def {
	const char *address;
	bool local;
};

struct env_case {
	const char *name;
	const char *id;
	int64_t ctime;
	const char *sender;
	const char *client_ip;   /* NULL is written as "" and read back as "" */
	const char *helo;
	unsigned flags;
	struct rcpt_def rcpts[MAX_RCPTS];
	size_t many;             /* add this many generated remote recipients */
	const char *header;      /* the exact formatted header, when given */
};

static const struct env_case env_cases[] = {
	{ .name = "simple", .id = "0123456789abcdef", .ctime = 1764230000,
	  .sender = "alice@example.org", .client_ip = "127.0.0.9", .helo = "mx.example.org",
	  .rcpts = { { "bob@example.test", true } },
	  .header = "bulwark-queue 1\nid 0123456789abcdef\ntime 1764230000\n"
	      "client 127.0.0.9\nhelo mx.example.org\nsender alice@example.org\nflags\n"
	      "rcpt L bob@example.test\ndata\n" },
	{ .name = "null sender", .id = "ffffffffffffffff", .ctime = 1, .sender = "",
	  .client_ip = "::1", .helo = "[IPv6:::1]", .rcpts = { { "postmaster@example.test", true } },
	  .header = "bulwark-queue 1\nid ffffffffffffffff\ntime 1\nclient ::1\n"
	      "helo [IPv6:::1]\nsender \nflags\nrcpt L postmaster@example.test\ndata\n" },
	{ .name = "sender with space, percent, UTF-8 and control bytes", .id = "00000000000000aa",
	  .ctime = 1700000000, .sender = "\"a b%41\"\t\x7f@b\xc3\xa9\xe2\x82\xac.example",
	  .client_ip = "192.0.2.1", .helo = "h e\nl\r o%", .flags = QUEUE_FLAG_SMTPUTF8,
	  .rcpts = { { "j\xc3\xa9r\xc3\xb4me@example.test", true }, { "x y@remote.example", false } },
	  .header = "bulwark-queue 1\nid 00000000000000aa\ntime 1700000000\nclient 192.0.2.1\n"
	      "helo h%20e%0Al%0D%20o%25\n"
	      "sender \"a%20b%2541\"%09%7F@b\xc3\xa9\xe2\x82\xac.example\nflags smtputf8\n"
	      "rcpt L j\xc3\xa9r\xc3\xb4me@example.test\nrcpt R x%20y@remote.example\ndata\n" },
	{ .name = "both flags", .id = "1111111111111111", .ctime = 2000000000,
	  .sender = "s@example.org", .client_ip = "198.51.100.4", .helo = "h.example.org",
	  .flags = QUEUE_FLAG_8BITMIME | QUEUE_FLAG_SMTPUTF8,
	  .rcpts = { { "a@example.test", true } } },
	{ .name = "8bitmime only", .id = "2222222222222222", .ctime = 0,
	  .sender = "s@example.org", .client_ip = "198.51.100.4", .helo = "h.example.org",
	  .flags = QUEUE_FLAG_8BITMIME, .rcpts = { { "a@example.test", true } } },
	{ .name = "local and remote recipients", .id = "3333333333333333", .ctime = 42,
	  .sender = "s@example.org", .client_ip = "127.0.0.1", .helo = "localhost",
	  .rcpts = { { "a@example.test", true }, { "b@remote.example", false },
	      { "c@example.test", true }, { "d@other.example", false },
	      { "e%remote.example@example.test", true } } },
	{ .name = "many recipients", .id = "4444444444444444", .ctime = 7,
	  .sender = "list@example.org", .client_ip = "127.0.0.1", .helo = "localhost",
	  .rcpts = { { "first@example.test", true } }, .many = 500 },
	{ .name = "missing client and helo", .id = "5555555555555555", .ctime = 9,
	  .sender = "s@example.org", .rcpts = { { "a@example.test", true } } },
	{ .name = "negative time", .id = "6666666666666666", .ctime = -5,
	  .sender = "s@example.org", .client_ip = "127.0.0.1", .helo = "x.example",
	  .rcpts = { { "a@example.test", true } } },
};

static char *
xstrdup(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	assert_non_null(d);
	return d;
}

static void
env_build(const struct env_case *c, struct queue_envelope *env)
{
	size_t n = 0;

	memset(env, 0, sizeof(*env));
	assert_int_equal(strlen(c->id), QUEUE_ID_LEN);
	memcpy(env->id, c->id, QUEUE_ID_LEN + 1);
	env->ctime = c->ctime;
	env->sender = xstrdup(c->sender);
	env->client_ip = xstrdup(c->client_ip);
	env->helo = xstrdup(c->helo);
	env->flags = c->flags;
	while (n < MAX_RCPTS && c->rcpts[n].address != NULL)
		n++;
	env->rcpts = calloc(n + c->many, sizeof(*env->rcpts));
	assert_non_null(env->rcpts);
	for (size_t i = 0; i < n; i++) {
		env->rcpts[i].address = xstrdup(c->rcpts[i].address);
		env->rcpts[i].local = c->rcpts[i].local;
	}
	for (size_t i = 0; i < c->many; i++) {
		char addr[64];

		snprintf(addr, sizeof(addr), "user%zu@host%zu.example", i, i % 7);
		env->rcpts[n + i].address = xstrdup(addr);
		env->rcpts[n + i].local = i % 3 == 0;
	}
	env->nrcpts = n + c->many;
}

static void
assert_str_or_empty(const char *got, const char *want)
{
	assert_non_null(got);
	assert_string_equal(got, want != NULL ? want : "");
}

static void
test_round_trip(void **state)
{
	static const char body[] = "Received: from x\r\n\r\nbody\r\n";

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(env_cases); i++) {
		const struct env_case *c = &env_cases[i];
		struct queue_envelope env, got;
		size_t hlen = 0, body_off = 0, flen = 0;
		char *hdr, *file, *again;

		env_build(c, &env);
		hdr = queue_envelope_format(&env, &hlen);
		assert_non_null(hdr);
		assert_int_equal(strlen(hdr), hlen);
		if (c->header != NULL && strcmp(hdr, c->header) != 0)
			fail_msg("%s: header\n%s\nexpected\n%s", c->name, hdr, c->header);

		/* header + body in an exact-size buffer, as read from the spool */
		flen = hlen + sizeof(body) - 1;
		file = malloc(flen);
		assert_non_null(file);
		memcpy(file, hdr, hlen);
		memcpy(file + hlen, body, sizeof(body) - 1);
		if (queue_envelope_parse(file, flen, &got, &body_off) != 0)
			fail_msg("%s: does not parse back", c->name);
		assert_int_equal(body_off, hlen);
		assert_memory_equal(file + body_off, body, sizeof(body) - 1);

		assert_string_equal(got.id, env.id);
		assert_int_equal(got.ctime, env.ctime);
		assert_string_equal(got.sender, env.sender);
		assert_str_or_empty(got.client_ip, env.client_ip);
		assert_str_or_empty(got.helo, env.helo);
		assert_int_equal(got.flags, env.flags);
		assert_int_equal(got.nrcpts, env.nrcpts);
		for (size_t r = 0; r < env.nrcpts; r++) {
			assert_string_equal(got.rcpts[r].address, env.rcpts[r].address);
			assert_int_equal(got.rcpts[r].local, env.rcpts[r].local);
			assert_false(got.rcpts[r].done);
		}

		/* and formats to the same bytes again */
		again = queue_envelope_format(&got, &flen);
		assert_non_null(again);
		assert_int_equal(flen, hlen);
		assert_memory_equal(again, hdr, hlen);

		/* the header alone (no body) parses too: body_off is the end */
		queue_envelope_clear(&got);
		if (queue_envelope_parse(hdr, hlen, &got, &body_off) != 0)
			fail_msg("%s: header alone does not parse", c->name);
		assert_int_equal(body_off, hlen);

		queue_envelope_clear(&got);
		queue_envelope_clear(&env);
		free(again);
		free(file);
		free(hdr);
	}
}

/* queue_envelope_clear leaves a zeroed envelope that can be cleared again. */
static void
test_clear(void **state)
{
	struct queue_envelope env;

	(void)state;
	env_build(&env_cases[0], &env);
	queue_envelope_clear(&env);
	assert_null(env.sender);
	assert_null(env.rcpts);
	assert_int_equal(env.nrcpts, 0);
	queue_envelope_clear(&env);
}

/* ---- damaged headers ---- */

#define HDR_HEAD "bulwark-queue 1\nid 0123456789abcdef\ntime 5\nclient 127.0.0.1\n" \
	"helo h.example\n"
#define HDR_OK HDR_HEAD "sender s@example.org\nflags\nrcpt L a@example.test\n" \
	"rcpt R b@remote.example\n"

struct bad_case {
	const char *name;
	const char *text;
	size_t len;   /* 0: strlen */
};

/* a text holding NULs */
#define BIN(s) .text = (s), .len = sizeof(s) - 1

static const struct bad_case bad_cases[] = {
	{ .name = "empty", .text = "" },
	{ .name = "missing magic", .text = "id 0123456789abcdef\nsender s@example.org\nrcpt L a@example.test\ndata\n" },
	{ .name = "wrong magic version", .text = "bulwark-queue 2\nid 0123456789abcdef\nsender a@b.example\n"
	      "rcpt L a@example.test\ndata\n" },
	{ .name = "magic not first", .text = "id 0123456789abcdef\n" "bulwark-queue 1\nsender a@b.example\n"
	      "rcpt L a@example.test\ndata\n" },
	{ .name = "magic with CR", .text = "bulwark-queue 1\r\nid 0123456789abcdef\nsender a@b.example\n"
	      "rcpt L a@example.test\ndata\n" },
	{ .name = "magic only", .text = "bulwark-queue 1\n" },
	{ .name = "missing data line", .text = HDR_OK },
	{ .name = "missing data line, body follows", .text = HDR_OK "Subject: x\n\nbody\n" },
	{ .name = "data without newline", .text = HDR_OK "data" },
	{ .name = "unknown line", .text = HDR_HEAD "sender s@example.org\nbogus 1\nrcpt L a@example.test\ndata\n" },
	{ .name = "unknown line after recipients", .text = HDR_OK "x-extra yes\ndata\n" },
	{ .name = "empty line", .text = HDR_OK "\ndata\n" },
	{ .name = "truncated mid line", .text = HDR_HEAD "sender s@exa" },
	{ .name = "truncated after a recipient", .text = HDR_OK },
	{ .name = "truncated before the data newline", .text = HDR_OK "dat" },
	{ .name = "no recipients", .text = HDR_HEAD "sender s@example.org\nflags\ndata\n" },
	{ .name = "no sender", .text = HDR_HEAD "flags\nrcpt L a@example.test\ndata\n" },
	{ .name = "no id", .text = "bulwark-queue 1\ntime 5\nsender s@example.org\nrcpt L a@example.test\ndata\n" },
	{ .name = "short id", .text = "bulwark-queue 1\nid 0123\nsender s@example.org\nrcpt L a@example.test\ndata\n" },
	{ .name = "long id", .text = "bulwark-queue 1\nid 0123456789abcdef0\nsender s@example.org\n"
	      "rcpt L a@example.test\ndata\n" },
	{ .name = "bad recipient kind", .text = HDR_HEAD "sender s@example.org\nrcpt X a@example.test\ndata\n" },
	{ .name = "recipient without address", .text = HDR_HEAD "sender s@example.org\nrcpt L \ndata\n" },
	{ .name = "recipient without separator", .text = HDR_HEAD "sender s@example.org\nrcpt La@example.test\n"
	      "data\n" },
	{ .name = "sender without space", .text = HDR_HEAD "sender\nrcpt L a@example.test\ndata\n" },
	{ .name = "NUL in the magic", BIN("bulwark-queue\0" "1\nid 0123456789abcdef\n"
	      "sender s@example.org\nrcpt L a@example.test\ndata\n") },
	/*
	 * A field given twice is damage: refuse rather than guess (and never
	 * leak the first value).
	 */
	{ .name = "sender twice", .text = HDR_HEAD "sender s@example.org\nsender t@example.org\n"
	      "rcpt L a@example.test\ndata\n" },
	{ .name = "client twice", .text = HDR_HEAD "client 10.0.0.1\nsender s@example.org\n"
	      "rcpt L a@example.test\ndata\n" },
	{ .name = "helo twice", .text = HDR_HEAD "helo other.example\nsender s@example.org\n"
	      "rcpt L a@example.test\ndata\n" },
};

static void
test_parse_failures(void **state)
{
	size_t failed = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->text), body_off = 12345;
		char *buf = malloc(len + 1);   /* +1: malloc(0) may be NULL */
		struct queue_envelope env;
		int r;

		assert_non_null(buf);
		memcpy(buf, c->text, len);
		memset(&env, 0x5a, sizeof(env));
		r = queue_envelope_parse(buf, len, &env, &body_off);
		if (r != -1) {
			print_error("%s: parse returned %d, expected -1\n", c->name, r);
			failed++;
			queue_envelope_clear(&env);
		} else {
			/* nothing left behind for the caller to free */
			assert_null(env.sender);
			assert_null(env.client_ip);
			assert_null(env.helo);
			assert_null(env.rcpts);
			assert_int_equal(env.nrcpts, 0);
			assert_int_equal(body_off, 12345);
		}
		free(buf);
	}
	if (failed > 0)
		fail_msg("%zu of %zu damaged headers were accepted", failed, ARRAY_SIZE(bad_cases));
}

/* Every prefix of a good header but the whole is a truncated file: -1, no leak. */
static void
test_every_truncation(void **state)
{
	struct queue_envelope env;
	size_t hlen, body_off;
	char *hdr;

	(void)state;
	env_build(&env_cases[2], &env);
	hdr = queue_envelope_format(&env, &hlen);
	assert_non_null(hdr);
	queue_envelope_clear(&env);
	for (size_t n = 0; n < hlen; n++) {
		char *buf = malloc(n + 1);

		assert_non_null(buf);
		memcpy(buf, hdr, n);
		if (queue_envelope_parse(buf, n, &env, &body_off) != -1)
			fail_msg("prefix of %zu/%zu octets parsed", n, hlen);
		assert_null(env.sender);
		assert_int_equal(env.nrcpts, 0);
		free(buf);
	}
	free(hdr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_parse_failures),
		cmocka_unit_test(test_every_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
