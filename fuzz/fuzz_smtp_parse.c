/*
 * fuzz_smtp_parse.c: libFuzzer target for src/smtp/smtp_parse.c. The input
 * is what a client could send. Byte 0 picks the line limit, bytes 1..4 seed
 * the chunk sizes; the rest is fed to the line reader in those chunks, and
 * each line goes to smtp_parse_command and the matching argument parsers.
 * Beyond the sanitizers it checks invariants: the same stream fed in one
 * piece gives the same lines (trickle), replies are well formed, and a
 * parsed address printed back parses to the same thing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
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

/* FNV-1a over the results, to compare a chunked run with a whole one. */
static void
digest_add(uint64_t *h, const void *p, size_t len)
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < len; i++) {
		*h ^= s[i];
		*h *= 1099511628211ULL;
	}
}

static void
check_address(const struct smtp_address *a, bool mail, const char *args,
    const char *params)
{
	size_t i, llen = strlen(a->local), dlen = strlen(a->domain);
	bool high = false;

	CHECK(llen <= SMTP_LOCAL_MAX);
	CHECK(dlen <= SMTP_DOMAIN_MAX);
	for (i = 0; i < llen; i++)
		high |= (unsigned char)a->local[i] >= 0x80;
	/* lower case, but for the "IPv6:" tag of a literal's normal form */
	for (i = a->domain_literal && starts_with(a->domain, "[IPv6:") ? 6 : 0;
	    i < dlen; i++) {
		CHECK(!(a->domain[i] >= 'A' && a->domain[i] <= 'Z'));
		high |= (unsigned char)a->domain[i] >= 0x80;
	}
	CHECK(a->utf8 == high);
	if (a->null_path)
		CHECK(mail && llen == 0 && dlen == 0);
	else
		CHECK(llen > 0);
	if (a->postmaster_only)
		CHECK(!mail && dlen == 0);
	if (dlen == 0)
		CHECK(mail || a->postmaster_only);
	if (a->domain_literal)
		CHECK(a->domain[0] == '[' && a->domain[dlen - 1] == ']');
	else if (dlen > 0)
		CHECK(smtp_domain_valid(a->domain, dlen, true));
	if (params != NULL)
		CHECK(params > args && params <= args + strlen(args) && params[-1] == ' ');

	/* The normal form must parse back to the same address. */
	if (!a->null_path && !a->quoted_local && dlen > 0) {
		char again[SMTP_PATH_MAX + 16];
		struct smtp_address b;
		const char *p2, *e2;
		int ret;

		snprintf(again, sizeof(again), "%s<%s@%s>", mail ? "FROM:" : "TO:",
		    a->local, a->domain);
		ret = mail ? smtp_parse_mail(again, &b, &p2, &e2) :
		    smtp_parse_rcpt(again, &b, &p2, &e2);
		CHECK(ret == 1);
		CHECK(strcmp(a->local, b.local) == 0);
		CHECK(strcmp(a->domain, b.domain) == 0);
		CHECK(a->domain_literal == b.domain_literal && a->utf8 == b.utf8);
		CHECK(p2 == NULL);
	}
}

static void
check_mail_rcpt(const char *args, bool mail)
{
	struct smtp_address a;
	const char *params, *error;
	int ret;

	ret = mail ? smtp_parse_mail(args, &a, &params, &error) :
	    smtp_parse_rcpt(args, &a, &params, &error);
	if (ret != 1) {
		CHECK(ret == -1 && error != NULL && params == NULL);
		CHECK(starts_with(error, "501 5."));
		return;
	}
	CHECK(error == NULL);
	check_address(&a, mail, args, params);
	if (mail) {
		struct smtp_mail_params p;

		ret = smtp_parse_mail_params(params, &p, &error);
		if (ret == 1) {
			CHECK(strlen(p.envid) <= 100);
			CHECK(p.ret[0] == '\0' || strcmp(p.ret, "FULL") == 0 ||
			    strcmp(p.ret, "HDRS") == 0);
			CHECK(p.body <= SMTP_BODY_BINARYMIME);
		} else
			CHECK(ret == -1 && starts_with(error, "555 5.5.4 "));
	} else {
		ret = smtp_parse_rcpt_params(params, &error);
		CHECK(ret == 1 || (ret == -1 && starts_with(error, "555 5.5.4 ")));
	}
}

static void
check_line(const char *line, size_t len)
{
	const char *args, *error;
	enum smtp_cmd cmd;
	uint64_t size;
	bool last;
	int ret;

	cmd = smtp_parse_command(line, len, &args);
	CHECK(cmd >= SMTP_CMD_UNKNOWN && cmd < SMTP_CMD_COUNT);
	CHECK(smtp_cmd_name(cmd) != NULL);
	if (args != NULL)
		CHECK(args > line && args <= line + len && args[-1] == ' ');
	(void)smtp_domain_valid(line, len, false);
	(void)smtp_domain_valid(line, len, true);

	switch (cmd) {
	case SMTP_CMD_MAIL:
		check_mail_rcpt(args, true);
		break;
	case SMTP_CMD_RCPT:
		check_mail_rcpt(args, false);
		break;
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		ret = smtp_parse_helo(args, false, &error);
		CHECK(ret == 1 || (ret == -1 && starts_with(error, "501 5.5.4 ")));
		if (ret == 1)
			CHECK(smtp_parse_helo(args, true, &error) == 1);
		else
			(void)smtp_parse_helo(args, true, &error);
		break;
	case SMTP_CMD_BDAT:
		ret = smtp_parse_bdat(args, &size, &last, &error);
		CHECK(ret == 1 || (ret == -1 && starts_with(error, "501 5.5.4 ")));
		break;
	default:
		break;
	}
}

/* Run the stream through a reader in chunks (or whole when seed is 0);
 * returns a digest of what came out and counts the results. */
static uint64_t
run_reader(const char *stream, size_t len, size_t max, uint32_t seed,
    bool parse, size_t *results_r)
{
	struct smtp_line_reader r;
	uint64_t h = 14695981039346656037ULL;
	size_t off = 0;

	*results_r = 0;
	if (smtp_line_reader_init(&r, max) < 0)
		abort();
	while (off < len) {
		size_t chunk = len - off, consumed, linelen;
		const char *line, *error;
		int code, ret;

		if (seed != 0) {
			uint32_t x = xorshift32(&seed);

			/* mostly short chunks, now and then a long one */
			chunk = (x & 7) == 0 ? 1 + (x >> 3) % 2048 : 1 + (x >> 3) % 8;
			if (chunk > len - off)
				chunk = len - off;
		}
		ret = smtp_line_reader_feed(&r, stream + off, chunk, &consumed,
		    &line, &linelen, &code, &error);
		CHECK(consumed <= chunk);
		off += consumed;
		if (ret == 0) {
			CHECK(consumed == chunk && line == NULL && error == NULL);
			continue;
		}
		CHECK(consumed > 0);
		(*results_r)++;
		digest_add(&h, &ret, sizeof(ret));
		if (ret == 1) {
			CHECK(line != NULL && error == NULL && code == SMTP_LINE_OK);
			CHECK(linelen + 2 <= r.max && strlen(line) == linelen);
			CHECK(memchr(line, '\r', linelen) == NULL);
			CHECK(memchr(line, '\n', linelen) == NULL);
			digest_add(&h, line, linelen);
			if (parse)
				check_line(line, linelen);
		} else {
			CHECK(ret == -1 && line == NULL && error != NULL);
			CHECK(code > SMTP_LINE_OK && code <= SMTP_LINE_ERR_NUL);
			CHECK(starts_with(error, "500 5.5.2 "));
			digest_add(&h, &code, sizeof(code));
		}
	}
	digest_add(&h, &r.len, sizeof(r.len));
	digest_add(&h, &r.saw_cr, sizeof(r.saw_cr));
	digest_add(&h, &r.pending_error, sizeof(r.pending_error));
	smtp_line_reader_clear(&r);
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max, n_chunked, n_whole;
	uint32_t seed;
	uint64_t h_chunked, h_whole;
	char *stream;

	if (size < 5)
		return 0;
	/* Small limits make the too-long paths reachable; 0x80+ is the default. */
	max = data[0] & 0x80 ? 1000 : 2 + (size_t)(data[0] & 0x7f) * 4;
	seed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
	    (uint32_t)data[4] << 24;
	if (seed == 0)
		seed = 1;
	/* an exact-size copy, so reading past the end is caught */
	stream = malloc(size - 5 + 1);
	if (stream == NULL)
		return 0;
	memcpy(stream, data + 5, size - 5);

	h_chunked = run_reader(stream, size - 5, max, seed, true, &n_chunked);
	h_whole = run_reader(stream, size - 5, max, 0, false, &n_whole);
	CHECK(n_chunked == n_whole);
	CHECK(h_chunked == h_whole);
	free(stream);
	return 0;
}
