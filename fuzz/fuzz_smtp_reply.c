/*
 * fuzz_smtp_reply.c: libFuzzer target for src/smtp/smtp_client_parse.c, the
 * pure half of the outbound client: the reply reader, EHLO keywords and
 * dot-stuffing. The input is what a remote server could send:
 *
 *   [0..3]  seed for the chunk sizes
 *   rest    the byte stream
 *
 * The stream goes to smtp_reply_parser_feed in chunks and whole (as a
 * client would read it, stopping at the first error); every 250 reply's
 * text goes to smtp_client_parse_ehlo, and so does the raw stream. The
 * stream is also dot-stuffed as if it were a message body. Beyond the
 * sanitizers it checks: chunked and whole reads give the same replies;
 * replies are well formed (code, status, enhanced code, bounded text
 * without CR or NUL); an EHLO result printed back parses to itself; and
 * dot-stuffing agrees with smtp_client_scan_message, never leaves a lone
 * "." line inside the body, and unstuffs back to the input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 4

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#define EXT_ALL (SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | \
    SMTP_EXT_SMTPUTF8 | SMTP_EXT_STARTTLS | SMTP_EXT_ENHANCEDSTATUSCODES | \
    SMTP_EXT_CHUNKING | SMTP_EXT_DSN)

static uint32_t
xorshift32(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

static void
digest_add(uint64_t *h, const void *p, size_t len)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < len; i++) {
		*h ^= s[i];
		*h *= 1099511628211ULL;
	}
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "C.S.D" with 1..3 digits each, C the class of code. */
static void
check_enhanced(const char *e, int code)
{
	size_t i = 2, d;

	if (e[0] == '\0')
		return;
	CHECK(e[0] == '0' + code / 100 && e[1] == '.');
	for (d = 0; is_digit(e[i]); i++, d++)
		;
	CHECK(d >= 1 && d <= 3 && e[i] == '.');
	for (i++, d = 0; is_digit(e[i]); i++, d++)
		;
	CHECK(d >= 1 && d <= 3 && e[i] == '\0');
}

/* The EHLO result printed as a reply text parses back to itself. */
static void
check_ehlo_roundtrip(const struct smtp_ehlo *e)
{
	static const struct { const char *name; unsigned bit; } kw[] = {
		{ "PIPELINING", SMTP_EXT_PIPELINING }, { "8BITMIME", SMTP_EXT_8BITMIME },
		{ "smtputf8", SMTP_EXT_SMTPUTF8 }, { "StartTLS", SMTP_EXT_STARTTLS },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
		{ "CHUNKING", SMTP_EXT_CHUNKING }, { "DSN", SMTP_EXT_DSN },
	};
	char text[512];
	struct smtp_ehlo again;
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "mx.example.org Hello");
	for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (e->ext & kw[i].bit)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "\n%s", kw[i].name);
	if (e->ext & SMTP_EXT_SIZE) {
		if (e->size_max != 0)
			snprintf(text + n, sizeof(text) - n, "\nSIZE %llu",
			    (unsigned long long)e->size_max);
		else
			snprintf(text + n, sizeof(text) - n, "\nSIZE");
	}
	smtp_client_parse_ehlo(text, &again);
	CHECK(again.ext == e->ext);
	CHECK(again.size_max == e->size_max);
}

static void
check_ehlo(const char *text)
{
	struct smtp_ehlo e;

	memset(&e, 0xa5, sizeof(e));
	smtp_client_parse_ehlo(text, &e);
	CHECK((e.ext & ~(unsigned)EXT_ALL) == 0);
	if (e.size_max != 0)
		CHECK(e.ext & SMTP_EXT_SIZE);
	if (strchr(text, '\n') == NULL)
		CHECK(e.ext == 0);   /* the greeting line alone offers nothing */
	check_ehlo_roundtrip(&e);
}

static void
check_reply(const struct smtp_client_reply *r)
{
	size_t tlen = strlen(r->text);

	CHECK(r->code >= 200 && r->code <= 599);
	switch (r->code / 100) {
	case 2:
	case 3:
		CHECK(r->status == SMTP_CLIENT_OK);
		break;
	case 4:
		CHECK(r->status == SMTP_CLIENT_TEMPFAIL);
		break;
	default:
		CHECK(r->status == SMTP_CLIENT_PERMFAIL);
		break;
	}
	CHECK(memchr(r->enhanced, '\0', sizeof(r->enhanced)) != NULL);
	check_enhanced(r->enhanced, r->code);
	CHECK(tlen < SMTP_CLIENT_TEXT_MAX);
	CHECK(memchr(r->text, '\r', tlen) == NULL);
	CHECK(smtp_client_status_name(r->status) != NULL);
	if (r->code == 250)
		check_ehlo(r->text);
}

/* Read the stream as the client does (up to the first error); a digest of
 * what came out. seed 0: in one piece. */
static uint64_t
run_reader(const char *stream, size_t len, uint32_t seed, bool check, size_t *replies_r)
{
	struct smtp_reply_parser *p = malloc(sizeof(*p));
	uint64_t h = 14695981039346656037ULL;
	size_t off = 0;

	*replies_r = 0;
	if (p == NULL)
		abort();
	smtp_reply_parser_init(p);
	while (off < len) {
		struct smtp_client_reply reply;
		size_t chunk = len - off, consumed = (size_t)-1;
		const char *error = NULL;
		int ret;

		if (seed != 0) {
			uint32_t x = xorshift32(&seed);

			chunk = (x & 7) == 0 ? 1 + (x >> 3) % 5000 : 1 + (x >> 3) % 8;
			if (chunk > len - off)
				chunk = len - off;
		}
		ret = smtp_reply_parser_feed(p, stream + off, chunk, &consumed, &reply, &error);
		CHECK(consumed <= chunk);
		off += consumed;
		if (ret == 0) {
			CHECK(consumed == chunk);
			continue;
		}
		CHECK(consumed > 0);
		digest_add(&h, &ret, sizeof(ret));
		digest_add(&h, &off, sizeof(off));
		if (ret == -1) {
			CHECK(error != NULL && error[0] != '\0');
			digest_add(&h, error, strlen(error));
			break;
		}
		CHECK(ret == 1);
		CHECK(stream[off - 1] == '\n');
		(*replies_r)++;
		if (check)
			check_reply(&reply);
		digest_add(&h, &reply.status, sizeof(reply.status));
		digest_add(&h, &reply.code, sizeof(reply.code));
		digest_add(&h, reply.enhanced, strlen(reply.enhanced) + 1);
		digest_add(&h, reply.text, strlen(reply.text) + 1);
	}
	free(p);
	return h;
}

struct outbuf {
	char *b;
	size_t n, cap;
};

static void
emit(void *ctx, const char *d, size_t n)
{
	struct outbuf *o = ctx;

	CHECK(n > 0);
	if (o->n + n > o->cap) {
		size_t cap = (o->n + n) * 2;
		char *nb = realloc(o->b, cap);

		if (nb == NULL)
			abort();
		o->b = nb;
		o->cap = cap;
	}
	memcpy(o->b + o->n, d, n);
	o->n += n;
}

static void
check_dotstuff(const char *in, size_t len, uint32_t seed)
{
	struct smtp_dotstuff d;
	struct outbuf o = { NULL, 0, 0 };
	size_t off = 0, bad_off = 0, i, j, body;
	bool high = false, high2 = false;
	int scan, ret = 0;

	scan = smtp_client_scan_message(in, len, &high, &bad_off);
	CHECK(scan == 0 || scan == -1);
	CHECK(bad_off <= len);
	if (scan == 0)
		CHECK(bad_off == len);
	for (i = 0; i < bad_off; i++)   /* the bytes looked at */
		high2 |= (unsigned char)in[i] >= 0x80;
	CHECK(high == high2);

	smtp_dotstuff_init(&d, emit, &o);
	while (off < len && ret == 0) {
		uint32_t x = xorshift32(&seed);
		size_t chunk = 1 + x % 64;

		if (chunk > len - off)
			chunk = len - off;
		ret = smtp_dotstuff_feed(&d, in + off, chunk);
		off += chunk;
	}
	if (ret == 0)
		ret = smtp_dotstuff_finish(&d);
	CHECK((ret == 0) == (scan == 0));
	if (ret != 0) {
		free(o.b);
		return;
	}

	/* The output ends with the terminator, and holds no other "." line. */
	CHECK(o.n >= 3 && memcmp(o.b + o.n - 3, ".\r\n", 3) == 0);
	body = o.n - 3;
	CHECK(body == 0 || (body >= 2 && o.b[body - 2] == '\r' && o.b[body - 1] == '\n'));
	/* Unstuff line by line: the input comes back, with a CRLF added when
	 * it lacked one. */
	for (i = 0, j = 0; i < body; ) {
		const char *lf = memchr(o.b + i, '\n', body - i);
		size_t l = (size_t)(lf - (o.b + i)) + 1;

		CHECK(lf != NULL && l >= 2);
		if (o.b[i] == '.') {
			CHECK(l >= 4 && o.b[i + 1] == '.');   /* never a lone "." line */
			i++;
			l--;
		}
		if (j + l > len) {
			CHECK(j + l == len + 2 && memcmp(o.b + i + l - 2, "\r\n", 2) == 0);
			CHECK(memcmp(o.b + i, in + j, l - 2) == 0);
			j = len;
			i += l;
			CHECK(i == body);
			break;
		}
		CHECK(memcmp(o.b + i, in + j, l) == 0);
		i += l;
		j += l;
	}
	CHECK(j == len);
	free(o.b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len, n_chunked, n_whole;
	uint64_t h_chunked, h_whole;
	uint32_t seed;
	char *stream, *text;

	if (size < HDR)
		return 0;
	seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
	    (uint32_t)data[3] << 24;
	if (seed == 0)
		seed = 1;
	len = size - HDR;
	/* an exact-size copy, so reading past the end is caught */
	stream = malloc(len > 0 ? len : 1);
	if (stream == NULL)
		return 0;
	memcpy(stream, data + HDR, len);

	h_chunked = run_reader(stream, len, seed, true, &n_chunked);
	h_whole = run_reader(stream, len, 0, false, &n_whole);
	CHECK(n_chunked == n_whole);
	CHECK(h_chunked == h_whole);

	check_dotstuff(stream, len, seed);

	/* and as a string, for the EHLO parser */
	if ((text = malloc(len + 1)) != NULL) {
		memcpy(text, stream, len);
		text[len] = '\0';
		check_ehlo(text);
		free(text);
	}
	free(stream);
	return 0;
}
