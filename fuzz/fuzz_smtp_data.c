/*
 * fuzz_smtp_data.c: libFuzzer target for src/smtp/smtp_data.c, the DATA/BDAT
 * content parser. The input is what a client could send after 354 (or in
 * BDAT chunks). Header bytes pick the mode and limits:
 *
 *   [0] bit 0 BDAT, bit 1 reject bare LF, bit 2 BDAT LAST (finish)
 *   [1] line limit: < 0x80 1000, < 0xc0 none, else 1 + (b & 0x3f)
 *   [2] size limit: < 0x80 none, else (b & 0x7f) * 8
 *   [3..4] seed for the chunk sizes
 *
 * The rest is fed whole, in chunks, and byte by byte; the runs must agree.
 * Beyond the sanitizers it checks what smtp_data.h promises: DATA ends at
 * the first CRLF "." CRLF and nowhere else; every bare CR, bare LF and
 * end-of-data look-alike is flagged, and nothing else is; the output has
 * CRLF line ends only (a bare CR only when flagged); a clean message
 * dot-stuffed again parses back to itself.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 5

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

struct params {
	bool bdat, reject_bare_lf, finish;
	size_t max_line, max_size;
};

struct out {
	char *buf;
	size_t len, cap;
};

struct result {
	struct out out;
	int ret;
	size_t consumed;
	unsigned flags;
	size_t size;
	const char *error;
};

static void
emit(void *ctx, const char *data, size_t len)
{
	struct out *o = ctx;

	CHECK(len > 0);
	if (o->len + len > o->cap) {
		size_t cap = o->cap > 0 ? o->cap : 256;

		while (cap < o->len + len)
			cap *= 2;
		o->buf = realloc(o->buf, cap);
		CHECK(o->buf != NULL);
		o->cap = cap;
	}
	memcpy(o->buf + o->len, data, len);
	o->len += len;
}

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

/* mode 0: whole; 1: byte by byte; 2: chunks from seed. */
static void
run(const struct params *pa, const char *in, size_t len, int mode, uint32_t seed,
    struct result *r)
{
	struct smtp_data_parser p;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	smtp_data_init(&p, pa->bdat, pa->reject_bare_lf, pa->max_line, pa->max_size,
	    emit, &r->out);
	while (off < len) {
		size_t n = len - off, consumed = (size_t)-1;
		int ret;

		if (mode == 1) {
			n = 1;
		} else if (mode == 2) {
			uint32_t x = xorshift32(&seed);

			n = (x & 7) == 0 ? 1 + (x >> 3) % 1024 : 1 + (x >> 3) % 9;
			if (n > len - off)
				n = len - off;
		}
		ret = smtp_data_feed(&p, in + off, n, &consumed);
		CHECK(consumed <= n);
		if (ret == 1) {
			CHECK(!pa->bdat);
			CHECK(consumed >= 1);
			off += consumed;
			r->ret = 1;
			break;
		}
		CHECK(ret == 0);
		CHECK(consumed == n);
		off += n;
	}
	if (pa->bdat && pa->finish)
		smtp_data_finish_bdat(&p);
	r->consumed = off;
	r->flags = p.flags;
	r->size = p.size;
	r->error = smtp_data_error(&p);
}

static bool
same(const struct result *a, const struct result *b)
{
	return a->ret == b->ret && a->consumed == b->consumed && a->flags == b->flags &&
	    a->size == b->size && a->error == b->error && a->out.len == b->out.len &&
	    (a->out.len == 0 || memcmp(a->out.buf, b->out.buf, a->out.len) == 0);
}

/* Where DATA must end: after the first CRLF "." CRLF (or a first line "."). */
static size_t
reference_end(const char *in, size_t len)
{
	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= len; i++)
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return 0;
}

/* The flags the rules in smtp_data.h give for in[0..len). */
static unsigned
reference_flags(const struct params *pa, const char *in, size_t len, bool ended)
{
	unsigned flags = 0;
	size_t line_start = 0;

	for (size_t i = 0; i < len; i++) {
		/* a CR decided by the byte after it (or by BDAT LAST) */
		if (in[i] == '\r' && (i + 1 < len ? in[i + 1] != '\n' : pa->bdat && pa->finish))
			flags |= SMTP_DATA_BARE_CR;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			flags |= SMTP_DATA_BARE_LF;
		if (!pa->bdat && in[i] == '.' && (i == 0 || in[i - 1] == '\n')) {
			/* a line holding one "." ended otherwise than by CRLF, or
			 * CRLF-ended after a bare LF; the real end is not one */
			bool after_bare_lf = i > 0 && (i < 2 || in[i - 2] != '\r');

			if (i + 1 < len && in[i + 1] == '\n')
				flags |= SMTP_DATA_LOOKALIKE;
			if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n' && after_bare_lf)
				flags |= SMTP_DATA_LOOKALIKE;
		}
		/* line length: input octets, the stuffing dot not counted */
		if (pa->max_line > 0 && (in[i] == '\n' || i + 1 == len)) {
			size_t l = i + 1 - line_start;
			bool stuffed = !pa->bdat && l >= 3 && in[line_start] == '.' &&
			    in[line_start + 1] != '\r' && in[line_start + 1] != '\n';
			size_t eff = stuffed ? l - 1 : l;

			/* the count of a stuffed line reaches 2 before the drop */
			if (stuffed && eff < 2)
				eff = 2;
			if (eff > pa->max_line)
				flags |= SMTP_DATA_LINE_TOO_LONG;
		}
		if (in[i] == '\n')
			line_start = i + 1;
	}
	(void)ended;
	return flags;
}

static size_t
count_lf(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += s[i] == '\n';
	return n;
}

/* Dot-stuff a CRLF message and add the end marker (RFC 5321 4.5.2). */
static char *
stuff(const char *msg, size_t len, size_t *len_r)
{
	char *buf = malloc(len * 2 + 4);
	size_t o = 0;
	bool bol = true;

	CHECK(buf != NULL);
	for (size_t i = 0; i < len; i++) {
		if (bol && msg[i] == '.')
			buf[o++] = '.';
		buf[o++] = msg[i];
		bol = msg[i] == '\n';
	}
	memcpy(buf + o, ".\r\n", 3);
	*len_r = o + 3;
	return buf;
}

static void
check_result(const struct params *pa, const char *in, size_t len, const struct result *r)
{
	const struct out *o = &r->out;
	unsigned want, got;
	size_t end = pa->bdat ? 0 : reference_end(in, len);

	/* DATA ends at the first CRLF.CRLF and nowhere else; BDAT never */
	CHECK(r->ret == (end > 0));
	CHECK(r->consumed == (end > 0 ? end : len));

	/* flags: all the dangerous shapes, and nothing else */
	want = reference_flags(pa, in, r->consumed, r->ret == 1);
	got = r->flags & (SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF | SMTP_DATA_LOOKALIKE |
	    SMTP_DATA_LINE_TOO_LONG);
	if (want != got) {
		fprintf(stderr, "flags 0x%x, reference 0x%x\n", got, want);
		CHECK(want == got);
	}
	CHECK(((r->flags & SMTP_DATA_TOO_BIG) != 0) == (pa->max_size > 0 && r->size > pa->max_size));
	CHECK((r->flags & ~(unsigned)(SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF |
	    SMTP_DATA_LOOKALIKE | SMTP_DATA_LINE_TOO_LONG | SMTP_DATA_TOO_BIG)) == 0);

	/* the reply */
	if ((r->flags & ~(unsigned)SMTP_DATA_BARE_LF) == 0 &&
	    (!(r->flags & SMTP_DATA_BARE_LF) || !pa->reject_bare_lf))
		CHECK(r->error == NULL);
	else
		CHECK(r->error != NULL && (strncmp(r->error, "552 5.3.4 ", 10) == 0 ||
		    strncmp(r->error, "500 5.5.2 ", 10) == 0 ||
		    strncmp(r->error, "550 5.6.0 ", 10) == 0));

	/* size: what was (or would have been) stored */
	if (r->flags & SMTP_DATA_TOO_BIG)
		CHECK(o->len <= pa->max_size);
	else
		CHECK(o->len == r->size);

	/* CRLF line ends only; a CR alone only when flagged */
	for (size_t i = 0; i < o->len; i++) {
		if (o->buf[i] == '\n')
			CHECK(i > 0 && o->buf[i - 1] == '\r');
		if (o->buf[i] == '\r' && !(r->flags & SMTP_DATA_BARE_CR))
			CHECK(i + 1 < o->len && o->buf[i + 1] == '\n');
	}
	if (r->flags & SMTP_DATA_TOO_BIG)
		return;

	/* one line end out for each in (not the end marker's); LAST may add one */
	{
		size_t lines = count_lf(in, r->consumed) - (r->ret == 1 ? 1 : 0);

		if (pa->bdat && pa->finish && len > 0 && in[len - 1] != '\n')
			lines++;
		CHECK(count_lf(o->buf, o->len) == lines);
	}
	/* a finished message ends with a line end */
	if (r->ret == 1 || (pa->bdat && pa->finish))
		CHECK(o->len == 0 || (o->len >= 2 && memcmp(o->buf + o->len - 2, "\r\n", 2) == 0));

	if (r->flags != 0)
		return;
	if (pa->bdat) {
		/* clean BDAT is stored byte for byte */
		size_t n = len;

		if (!pa->finish && n > 0 && in[n - 1] == '\r')
			n--;   /* a CR waiting for its LF */
		CHECK(o->len >= n && (n == 0 || memcmp(o->buf, in, n) == 0));
		if (pa->finish && len > 0 && in[len - 1] != '\n')
			CHECK(o->len == n + 2);
		else
			CHECK(o->len == n);
	} else if (r->ret == 1) {
		/* a clean message, stuffed again, comes back unchanged */
		struct result again;
		size_t slen;
		char *s = stuff(o->buf, o->len, &slen);

		run(pa, s, slen, 0, 0, &again);
		CHECK(again.ret == 1 && again.consumed == slen && again.flags == 0);
		CHECK(again.out.len == o->len && (o->len == 0 ||
		    memcmp(again.out.buf, o->buf, o->len) == 0));
		free(again.out.buf);
		free(s);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct params pa;
	struct result whole, chunked, trickle;
	uint32_t seed;
	size_t len;
	char *in;

	if (size < HDR)
		return 0;
	pa.bdat = data[0] & 1;
	pa.reject_bare_lf = data[0] & 2;
	pa.finish = data[0] & 4;
	pa.max_line = data[1] < 0x80 ? 1000 : data[1] < 0xc0 ? 0 : 1 + (size_t)(data[1] & 0x3f);
	pa.max_size = data[2] < 0x80 ? 0 : (size_t)(data[2] & 0x7f) * 8;
	seed = (uint32_t)data[3] | (uint32_t)data[4] << 8 | 0x10000u;

	/* an exact-size copy, so reading past the end is caught */
	len = size - HDR;
	in = malloc(len > 0 ? len : 1);
	if (in == NULL)
		return 0;
	memcpy(in, data + HDR, len);

	run(&pa, in, len, 0, 0, &whole);
	check_result(&pa, in, len, &whole);
	run(&pa, in, len, 2, seed, &chunked);
	CHECK(same(&whole, &chunked));
	if (len <= 4096) {
		run(&pa, in, len, 1, 0, &trickle);
		CHECK(same(&whole, &trickle));
		free(trickle.out.buf);
	}
	free(whole.out.buf);
	free(chunked.out.buf);
	free(in);
	return 0;
}
