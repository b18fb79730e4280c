/*
 * test_dkim.c: tests for src/dkim. Canonicalisation vectors (RFC 6376 3.4,
 * with body hashes cross-checked against dkimpy), each body case fed whole
 * and byte by byte; tag lists and base64; key files (modes, refusals, bad
 * files named by path); sign-then-verify scenarios for rsa-sha256 and
 * ed25519-sha256 with the result and its reason asserted; hand-made
 * signatures for what our signer never produces (x=, l=, simple, i=,
 * rsa-sha1, broken tags); a known-answer message signed with the RFC 8463
 * Appendix A keys; Authentication-Results text; the bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "dkim/dkim.h"
#include "dkim/dkim_private.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define T0 ((time_t)1795770000)   /* 2026-11-27 */

/* ---------------------------------------------------------------- helpers */

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	assert_non_null(d);
	return d;
}

static char *
xasprintf(const char *fmt, ...) LOG_PRINTF(1, 2);

static char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	return s;
}

/* s with the first find replaced by repl (find must occur). */
static char *
replace(const char *s, const char *find, const char *repl)
{
	const char *at = strstr(s, find);

	if (at == NULL)
		fail_msg("'%s' not found", find);
	return xasprintf("%.*s%s%s", (int)(at - s), s, repl, at + strlen(find));
}

/* Every occurrence of find in s replaced by repl. */
static char *
replace_all(const char *s, const char *find, const char *repl)
{
	char *out = xstrdup(s), *next;
	size_t off = 0;

	for (;;) {
		char *at = strstr(out + off, find);

		if (at == NULL)
			return out;
		off = (size_t)(at - out) + strlen(repl);
		next = xasprintf("%.*s%s%s", (int)(at - out), out, repl, at + strlen(find));
		free(out);
		out = next;
	}
}

static void
sink_buf(void *ctx, const void *p, size_t n)
{
	dkim_buf_add(ctx, p, n);
}

static void
sink_md(void *ctx, const void *p, size_t n)
{
	assert_int_equal(EVP_DigestUpdate(ctx, p, n), 1);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void
rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------- canonicalisation */

struct header_case {
	const char *name;
	enum dkim_canon canon;
	const char *raw;
	bool crlf;
	const char *want;
};

static const struct header_case header_cases[] = {
	/* RFC 6376 3.4.6's example. */
	{ .name = "rfc a", .canon = DKIM_CANON_RELAXED, .raw = "A: X\r\n", .crlf = true,
	  .want = "a:X\r\n" },
	{ .name = "rfc b", .canon = DKIM_CANON_RELAXED, .raw = "B : Y\t\r\n\tZ  \r\n",
	  .crlf = true, .want = "b:Y Z\r\n" },
	{ .name = "rfc a simple", .canon = DKIM_CANON_SIMPLE, .raw = "A: X\r\n", .crlf = true,
	  .want = "A: X\r\n" },
	{ .name = "rfc b simple", .canon = DKIM_CANON_SIMPLE, .raw = "B : Y\t\r\n\tZ  \r\n",
	  .crlf = true, .want = "B : Y\t\r\n\tZ  \r\n" },
	{ .name = "case and runs", .canon = DKIM_CANON_RELAXED,
	  .raw = "SUBJect:  Hello \t  World \r\n", .crlf = true,
	  .want = "subject:Hello World\r\n" },
	{ .name = "folded thrice", .canon = DKIM_CANON_RELAXED,
	  .raw = "To: a@x,\r\n  b@x,\r\n\tc@x\r\n", .crlf = true, .want = "to:a@x, b@x, c@x\r\n" },
	{ .name = "wsp before colon", .canon = DKIM_CANON_RELAXED, .raw = "Subject \t: x\r\n",
	  .crlf = true, .want = "subject:x\r\n" },
	{ .name = "empty value", .canon = DKIM_CANON_RELAXED, .raw = "X-Empty:\r\n",
	  .crlf = true, .want = "x-empty:\r\n" },
	{ .name = "blank value", .canon = DKIM_CANON_RELAXED, .raw = "X-Empty: \t \r\n",
	  .crlf = true, .want = "x-empty:\r\n" },
	{ .name = "no crlf wanted", .canon = DKIM_CANON_RELAXED,
	  .raw = "DKIM-Signature: v=1;\r\n\tb=\r\n", .crlf = false,
	  .want = "dkim-signature:v=1; b=" },
	{ .name = "no crlf simple", .canon = DKIM_CANON_SIMPLE,
	  .raw = "DKIM-Signature: v=1;\r\n\tb=\r\n", .crlf = false,
	  .want = "DKIM-Signature: v=1;\r\n\tb=" },
	{ .name = "last field without crlf", .canon = DKIM_CANON_SIMPLE, .raw = "A: b",
	  .crlf = true, .want = "A: b\r\n" },
	{ .name = "8-bit kept", .canon = DKIM_CANON_RELAXED, .raw = "Subject: caf\xc3\xa9 \r\n",
	  .crlf = true, .want = "subject:caf\xc3\xa9\r\n" },
	{ .name = "bare cr kept", .canon = DKIM_CANON_RELAXED, .raw = "X: a\rb\r\n",
	  .crlf = true, .want = "x:a\rb\r\n" },
};

static void
test_canon_header(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(header_cases); i++) {
		const struct header_case *c = &header_cases[i];
		struct dkim_buf b = { 0 };

		dkim_canon_header(c->canon, c->raw, strlen(c->raw), c->crlf, &b);
		if (b.len != strlen(c->want) || memcmp(b.p, c->want, b.len) != 0)
			fail_msg("%s: got '%.*s'", c->name, (int)b.len, b.p != NULL ? b.p : "");
		dkim_buf_free(&b);
	}
}

struct body_case {
	const char *name;
	enum dkim_canon canon;
	const char *body;
	uint64_t limit;          /* 0: none */
	const char *want;        /* what the sink receives */
	uint64_t total;          /* 0: strlen(want) */
	const char *bh;          /* SHA-256, base64, as dkimpy computes it (no limit) */
};

static const struct body_case body_cases[] = {
	{ .name = "rfc relaxed", .canon = DKIM_CANON_RELAXED, .body = " C \r\nD \t E\r\n\r\n\r\n",
	  .want = " C\r\nD E\r\n", .bh = "unak6JHq0wL+Q1HP7dW1tjBx9FLA6DffoZ0qrLwbbpo=" },
	{ .name = "rfc simple", .canon = DKIM_CANON_SIMPLE, .body = " C \r\nD \t E\r\n\r\n\r\n",
	  .want = " C \r\nD \t E\r\n", .bh = "NOeivbQlDH9TmNKJUw7D53wZfsk8YMZ/hTuVVwTgi8s=" },
	/* RFC 6376 3.4.3 and 3.4.4: an empty body is CRLF in simple, nothing in relaxed. */
	{ .name = "empty simple", .canon = DKIM_CANON_SIMPLE, .body = "", .want = "\r\n",
	  .bh = "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=" },
	{ .name = "empty relaxed", .canon = DKIM_CANON_RELAXED, .body = "", .want = "",
	  .bh = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" },
	{ .name = "crlf simple", .canon = DKIM_CANON_SIMPLE, .body = "\r\n", .want = "\r\n",
	  .bh = "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=" },
	{ .name = "crlf relaxed", .canon = DKIM_CANON_RELAXED, .body = "\r\n", .want = "",
	  .bh = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" },
	{ .name = "empty lines simple", .canon = DKIM_CANON_SIMPLE, .body = "\r\n\r\n\r\n",
	  .want = "\r\n" },
	{ .name = "no final crlf simple", .canon = DKIM_CANON_SIMPLE, .body = "abc",
	  .want = "abc\r\n", .bh = "VSuraGTHp7aaUC7RhUuSRcDhow8AiqoLKB2mJYX9sCU=" },
	{ .name = "no final crlf relaxed", .canon = DKIM_CANON_RELAXED, .body = "abc \t",
	  .want = "abc\r\n" },
	{ .name = "trailing wsp relaxed", .canon = DKIM_CANON_RELAXED,
	  .body = "Hi Bob,  \r\n\r\nthis  is\ta test.\t\r\n \r\n\r\n",
	  .want = "Hi Bob,\r\n\r\nthis is a test.\r\n",
	  .bh = "E5r+F3j9WG5gSEcbgGHbhUot/Odx6arN5+og+j0IKBc=" },
	{ .name = "trailing wsp simple", .canon = DKIM_CANON_SIMPLE,
	  .body = "Hi Bob,  \r\n\r\nthis  is\ta test.\t\r\n \r\n\r\n",
	  .want = "Hi Bob,  \r\n\r\nthis  is\ta test.\t\r\n \r\n",
	  .bh = "hTR5moj1DBrjFiJM66wwGLV3L9cobKDT+4PWzRs2rZc=" },
	{ .name = "leading wsp kept as one", .canon = DKIM_CANON_RELAXED, .body = "\t  a\r\n",
	  .want = " a\r\n" },
	{ .name = "inner empty lines kept", .canon = DKIM_CANON_RELAXED,
	  .body = "a\r\n\r\n \r\nb\r\n\r\n", .want = "a\r\n\r\n\r\nb\r\n" },
	{ .name = "bare cr and lf are content", .canon = DKIM_CANON_RELAXED,
	  .body = "a\rb\nc\r\n\r", .want = "a\rb\nc\r\n\r\r\n" },
	{ .name = "cr cr lf", .canon = DKIM_CANON_SIMPLE, .body = "a\r\r\n", .want = "a\r\r\n" },
	{ .name = "limit", .canon = DKIM_CANON_RELAXED, .body = "abcdef\r\n", .limit = 3,
	  .want = "abc", .total = 8 },
	{ .name = "limit zero", .canon = DKIM_CANON_SIMPLE, .body = "", .limit = UINT64_MAX - 1,
	  .want = "\r\n" },
};

static void
body_run(const struct body_case *c, size_t step, struct dkim_buf *out, uint64_t *total_r)
{
	struct dkim_canon_body b;
	size_t len = strlen(c->body);

	dkim_canon_body_init(&b, c->canon, c->limit != 0 ? c->limit : UINT64_MAX, sink_buf, out);
	for (size_t i = 0; i < len; i += step)
		dkim_canon_body_update(&b, c->body + i, len - i < step ? len - i : step);
	dkim_canon_body_final(&b);
	*total_r = b.total;
}

static void
test_canon_body(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(body_cases); i++) {
		const struct body_case *c = &body_cases[i];
		size_t steps[] = { strlen(c->body) + 1, 1, 2 };

		for (size_t s = 0; s < ARRAY_SIZE(steps); s++) {
			struct dkim_buf out = { 0 };
			uint64_t total;

			body_run(c, steps[s], &out, &total);
			if (out.len != strlen(c->want) ||
			    (out.len > 0 && memcmp(out.p, c->want, out.len) != 0))
				fail_msg("%s (step %zu): got '%.*s'", c->name, steps[s],
				    (int)out.len, out.p != NULL ? out.p : "");
			if (total != (c->total != 0 ? c->total : strlen(c->want)))
				fail_msg("%s: total %llu", c->name, (unsigned long long)total);
			if (c->bh != NULL) {
				unsigned char h[32];
				struct dkim_buf b64 = { 0 };

				assert_int_equal(EVP_Digest(out.p != NULL ? out.p : "", out.len, h,
				    NULL, EVP_sha256(), NULL), 1);
				dkim_buf_base64(&b64, h, sizeof(h));
				if (strcmp(b64.p, c->bh) != 0)
					fail_msg("%s: bh %s, dkimpy says %s", c->name, b64.p, c->bh);
				dkim_buf_free(&b64);
			}
			dkim_buf_free(&out);
		}
	}
}

/* A body larger than the sink buffer, in odd chunks, hashes like the whole. */
static void
test_canon_body_large(void **state)
{
	struct dkim_buf whole = { 0 }, split = { 0 };
	struct dkim_canon_body b;
	size_t len = 300000;
	char *body = malloc(len);

	(void)state;
	assert_non_null(body);
	static const char pattern[] = "ab \t\r\ncd\r\n\r\n  x\r";

	for (size_t i = 0; i < len; i++)
		body[i] = pattern[i % (sizeof(pattern) - 1)];
	dkim_canon_body_init(&b, DKIM_CANON_RELAXED, UINT64_MAX, sink_buf, &whole);
	dkim_canon_body_update(&b, body, len);
	dkim_canon_body_final(&b);
	dkim_canon_body_init(&b, DKIM_CANON_RELAXED, UINT64_MAX, sink_buf, &split);
	for (size_t i = 0, step = 1; i < len; i += step, step = step * 7 % 9973 + 1)
		dkim_canon_body_update(&b, body + i, len - i < step ? len - i : step);
	dkim_canon_body_final(&b);
	assert_int_equal(whole.len, split.len);
	assert_memory_equal(whole.p, split.p, whole.len);
	assert_int_equal(b.total, whole.len);
	dkim_buf_free(&whole);
	dkim_buf_free(&split);
	free(body);
}

/* ------------------------------------------------------------ message split */

static void
test_msg_parse(void **state)
{
	const char *msg = "From: a@x\r\nSubject: one\r\n two\r\nnot a field\r\n"
	    "X-Y : z\r\n\r\nbody\r\n";
	struct dkim_msg m;

	(void)state;
	assert_int_equal(dkim_msg_parse(msg, strlen(msg), &m), 0);
	assert_int_equal(m.nfields, 4);
	assert_int_equal(m.fields[1].len, strlen("Subject: one\r\n two\r\n"));
	assert_true(dkim_msg_field_is(&m.fields[1], "subject", 7));
	assert_int_equal(m.fields[2].name_len, 0);
	assert_true(dkim_msg_field_is(&m.fields[3], "x-y", 3));
	assert_int_equal(m.body_len, 6);
	assert_memory_equal(m.body, "body\r\n", 6);
	dkim_msg_clear(&m);

	/* No empty line: all header, empty body; a last line without CRLF. */
	msg = "From: a@x\r\nTo: b";
	assert_int_equal(dkim_msg_parse(msg, strlen(msg), &m), 0);
	assert_int_equal(m.nfields, 2);
	assert_int_equal(m.body_len, 0);
	dkim_msg_clear(&m);

	/* No header at all. */
	msg = "\r\nbody";
	assert_int_equal(dkim_msg_parse(msg, strlen(msg), &m), 0);
	assert_int_equal(m.nfields, 0);
	assert_int_equal(m.body_len, 4);
	dkim_msg_clear(&m);
}

/* --------------------------------------------------------- tags and base64 */

struct tag_case {
	const char *name;
	const char *text;
	const char *error;       /* NULL: parses */
	size_t n;
	const char *tag, *value; /* one tag to check */
};

static const struct tag_case tag_cases[] = {
	{ .name = "simple", .text = "v=1; a=rsa-sha256", .n = 2, .tag = "a",
	  .value = "rsa-sha256" },
	{ .name = "final semicolon", .text = "v=1; a=x;", .n = 2, .tag = "v", .value = "1" },
	{ .name = "final semicolon and fws", .text = "v=1;\r\n\t", .n = 1 },
	{ .name = "fws everywhere", .text = " v \t=\r\n 1 ;\r\n\tb = ab\r\n cd ", .n = 2,
	  .tag = "b", .value = "ab\r\n cd" },
	{ .name = "empty value", .text = "p=; k=rsa", .n = 2, .tag = "p", .value = "" },
	{ .name = "empty list", .text = "", .n = 0 },
	{ .name = "names with digits", .text = "x1_y=2", .n = 1, .tag = "x1_y", .value = "2" },
	{ .name = "duplicate", .text = "v=1; v=1", .error = "duplicate tag" },
	{ .name = "empty tag", .text = "v=1;; a=2", .error = "empty tag" },
	{ .name = "no equals", .text = "v=1; a", .error = "tag without '='" },
	{ .name = "bad name", .text = "1v=1", .error = "bad tag name" },
	{ .name = "semicolon in value", .text = "n=a\"b", .n = 1, .tag = "n", .value = "a\"b" },
	{ .name = "8-bit", .text = "n=caf\xc3\xa9", .error = "bad character in a tag value" },
	{ .name = "control", .text = "n=a\x01", .error = "bad character in a tag value" },
	{ .name = "bare lf", .text = "n=a\nb", .error = "bare CR or LF in a tag value" },
	{ .name = "crlf without wsp", .text = "n=a\r\nb", .error = "bare CR or LF in a tag value" },
	{ .name = "long name", .text = "abcdefghijklmnopq=1", .error = "tag name too long" },
	{ .name = "too many", .text = "a=1;b=1;c=1;d=1;e=1;f=1;g=1;h=1;i=1;j=1;k=1;l=1;m=1;"
	  "n=1;o=1;p=1;q=1;r=1;s=1;t=1;u=1;v=1;w=1;x=1;y=1;z=1;aa=1;ab=1;ac=1;ad=1;ae=1;"
	  "af=1;ag=1", .error = "too many tags" },
};

static void
test_tags(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(tag_cases); i++) {
		const struct tag_case *c = &tag_cases[i];
		struct dkim_tags tags;
		const char *error = NULL;
		int rc = dkim_tag_parse(c->text, strlen(c->text), &tags, &error);

		if (c->error != NULL) {
			if (rc != -1 || strcmp(error, c->error) != 0)
				fail_msg("%s: rc %d error %s", c->name, rc, error ? error : "-");
			continue;
		}
		if (rc != 0)
			fail_msg("%s: %s", c->name, error);
		assert_int_equal(tags.n, c->n);
		if (c->tag != NULL) {
			const struct dkim_tag *t = dkim_tag_get(&tags, c->tag);

			assert_non_null(t);
			if (t->value_len != strlen(c->value) ||
			    memcmp(t->value, c->value, t->value_len) != 0)
				fail_msg("%s: value '%.*s'", c->name, (int)t->value_len, t->value);
		}
	}
	assert_true(dkim_tag_list_has("sha1 : sha256", 13, "sha256", false));
	assert_false(dkim_tag_list_has("sha1:sha2560", 12, "sha256", false));
	assert_true(dkim_tag_list_has("DNS/TXT", 7, "dns/txt", true));
	assert_true(dkim_tag_list_has("*", 1, "*", false));
}

struct b64_case {
	const char *in;
	int rc;
	const char *out;
};

static const struct b64_case b64_cases[] = {
	{ "", 0, "" }, { "TWFu", 0, "Man" }, { "TWE=", 0, "Ma" }, { "TQ==", 0, "M" },
	{ " T W\r\n\tE = ", 0, "Ma" }, { "TWFuTWFu", 0, "ManMan" },
	{ "TQ=", -1, NULL }, { "T===", -1, NULL }, { "TWFu=", -1, NULL },
	{ "TW@u", -1, NULL }, { "TQ==TQ==", -1, NULL }, { "TWF", -1, NULL },
	{ "=", -1, NULL },
};

static void
test_base64(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(b64_cases); i++) {
		const struct b64_case *c = &b64_cases[i];
		unsigned char *out = NULL;
		size_t len = 0;
		int rc = dkim_buf_base64_decode(c->in, strlen(c->in), &out, &len);

		if (rc != c->rc)
			fail_msg("'%s': rc %d", c->in, rc);
		if (rc == 0) {
			struct dkim_buf again = { 0 };

			assert_int_equal(len, strlen(c->out));
			assert_memory_equal(out, c->out, len);
			free(out);
			/* And back, for the padded canonical ones. */
			dkim_buf_base64(&again, (const unsigned char *)c->out, strlen(c->out));
			if (strchr(c->in, ' ') == NULL && len > 0)
				assert_string_equal(again.p, c->in);
			dkim_buf_free(&again);
		}
	}
}

/* ------------------------------------------------------------------- keys */

struct keys_state {
	char dir[64];
	struct dkim_key *rsa, *ed, *rsa2, *ed2;
};

static struct dkim_key *
load_one(const char *dir, const char *domain, const char *selector)
{
	struct dkim_key *key = NULL;
	char path[512], *error = NULL;

	snprintf(path, sizeof(path), "%s/dkim/%s/%s.pem", dir, domain, selector);
	if (dkim_key_load_file(path, domain, selector, &key, &error) != 0)
		fail_msg("load %s: %s", path, error);
	return key;
}

static void
make_key(const char *dir, const char *domain, const char *selector, enum dkim_alg alg)
{
	char *record = NULL, *error = NULL;

	if (dkim_keygen(dir, domain, selector, alg, &record, &error) != 0)
		fail_msg("keygen %s: %s", selector, error);
	free(record);
}

static int
keys_setup(void **state)
{
	struct keys_state *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	snprintf(s->dir, sizeof(s->dir), "/tmp/test_dkim.XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	make_key(s->dir, "example.test", "r1", DKIM_ALG_RSA_SHA256);
	make_key(s->dir, "example.test", "e1", DKIM_ALG_ED25519_SHA256);
	make_key(s->dir, "other.test", "r2", DKIM_ALG_RSA_SHA256);
	make_key(s->dir, "other.test", "e2", DKIM_ALG_ED25519_SHA256);
	s->rsa = load_one(s->dir, "example.test", "r1");
	s->ed = load_one(s->dir, "example.test", "e1");
	s->rsa2 = load_one(s->dir, "other.test", "r2");
	s->ed2 = load_one(s->dir, "other.test", "e2");
	*state = s;
	return 0;
}

static int
keys_teardown(void **state)
{
	struct keys_state *s = *state;

	dkim_key_free(&s->rsa);
	dkim_key_free(&s->ed);
	dkim_key_free(&s->rsa2);
	dkim_key_free(&s->ed2);
	rm_rf(s->dir);
	free(s);
	return 0;
}

static void
test_keygen_files(void **state)
{
	struct keys_state *s = *state;
	struct dkim_key **keys = NULL;
	struct stat st;
	char path[512], *record = NULL, *error = NULL, *txt;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/dkim/example.test/r1.pem", s->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/dkim/example.test", s->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(path, sizeof(path), "%s/dkim", s->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* Never overwritten, whatever the algorithm. */
	assert_int_equal(dkim_keygen(s->dir, "example.test", "r1", DKIM_ALG_ED25519_SHA256,
	    &record, &error), -1);
	assert_null(record);
	assert_non_null(strstr(error, "exists: refusing to overwrite it"));
	assert_non_null(strstr(error, "/dkim/example.test/r1.pem"));
	free(error);

	/* Names that could leave the directory, or are not DNS names. */
	{
		static const char *const bad[] = { "../x", "a/b", "", ".a", "a.", "a..b",
		    "a b", "x\n" };

		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			error = NULL;
			assert_int_equal(dkim_keygen(s->dir, "example.test", bad[i],
			    DKIM_ALG_RSA_SHA256, &record, &error), -1);
			assert_non_null(strstr(error, "bad selector"));
			free(error);
			error = NULL;
			assert_int_equal(dkim_keygen(s->dir, bad[i], "s", DKIM_ALG_RSA_SHA256,
			    &record, &error), -1);
			assert_non_null(strstr(error, "bad domain"));
			free(error);
		}
	}

	/* The domain is stored lower case; keys load RSA first. */
	assert_int_equal(dkim_keys_load(s->dir, "EXAMPLE.test", &keys, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_string_equal(dkim_key_selector(keys[0]), "r1");
	assert_int_equal(dkim_key_alg(keys[0]), DKIM_ALG_RSA_SHA256);
	assert_string_equal(dkim_key_selector(keys[1]), "e1");
	assert_int_equal(dkim_key_alg(keys[1]), DKIM_ALG_ED25519_SHA256);
	assert_string_equal(dkim_key_domain(keys[1]), "example.test");
	dkim_keys_free(&keys, n);
	assert_null(keys);

	/* No directory: no keys, no error. */
	assert_int_equal(dkim_keys_load(s->dir, "nokeys.test", &keys, &n, &error), 0);
	assert_int_equal(n, 0);

	/* The records. */
	record = dkim_key_record(s->rsa);
	assert_non_null(record);
	assert_true(strncmp(record, "r1._domainkey.example.test. IN TXT \"v=DKIM1; k=rsa; p=MII",
	    56) == 0);
	{
		/* 2048-bit SPKI: two strings, the first of 255 characters. */
		const char *q1 = strchr(record, '"'), *q2 = strchr(q1 + 1, '"');
		size_t quotes = 0;

		for (const char *p = record; *p != '\0'; p++)
			quotes += *p == '"';
		assert_int_equal(quotes, 4);
		assert_int_equal(q2 - q1 - 1, 255);
		assert_int_equal(q2[1], ' ');
		assert_int_equal(q2[2], '"');
		assert_int_equal(record[strlen(record) - 1], '"');
	}
	free(record);
	record = dkim_key_record(s->ed);
	assert_non_null(record);
	assert_true(strncmp(record, "e1._domainkey.example.test. IN TXT \"v=DKIM1; k=ed25519; p=",
	    58) == 0);
	assert_int_equal(strlen(record), 58 + 44 + 1);
	free(record);
	txt = dkim_key_txt(s->ed);
	assert_int_equal(strlen(txt), strlen("v=DKIM1; k=ed25519; p=") + 44);
	free(txt);
}

/* Write text as dir/dkim/DOMAIN/name with mode. */
static void
put_file(const char *dir, const char *domain, const char *name, const char *text,
    mode_t mode)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/dkim/%s", dir, domain);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/dkim/%s/%s", dir, domain, name);
	unlink(path);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static char *
pem_of(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long len;

	assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
	len = BIO_get_mem_data(bio, &data);
	out = xasprintf("%.*s", (int)len, data);
	BIO_free(bio);
	return out;
}

struct load_case {
	const char *name;
	const char *file;        /* in dkim/bad.test/ */
	const char *text;        /* NULL: an RSA-512 key */
	mode_t mode;
	const char *error;       /* NULL: loads */
};

static void
test_keys_load_errors(void **state)
{
	struct keys_state *s = *state;
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	char *small_pem, *good_pem, src[512], *text;
	size_t len;
	struct load_case cases[] = {
		{ "good", "good.pem", NULL, 0600, NULL },
		{ "others may read", "good.pem", NULL, 0644, "lets others than its owner" },
		{ "group may write", "good.pem", NULL, 0620, "chmod 600" },
		{ "not pem", "good.pem", "hello\n", 0600, "not a readable PEM private key" },
		{ "empty", "good.pem", "", 0600, "empty file" },
		{ "small rsa", "good.pem", NULL, 0600, "shorter than 1024 bits" },
		{ "bad selector name", "a b.pem", NULL, 0600, "the name is not a selector" },
	};

	assert_non_null(small);
	small_pem = pem_of(small);
	EVP_PKEY_free(small);
	snprintf(src, sizeof(src), "%s/dkim/example.test/e1.pem", s->dir);
	assert_int_equal(fs_read_file(src, &good_pem, &len, 65536), 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct load_case *c = &cases[i];
		struct dkim_key **keys = NULL;
		char dir[512], *error = NULL;
		size_t n = 0;
		int rc;

		snprintf(dir, sizeof(dir), "%s/dkim/bad.test", s->dir);
		rm_rf(dir);
		text = c->text != NULL ? (char *)c->text :
		    strcmp(c->name, "small rsa") == 0 ? small_pem : good_pem;
		put_file(s->dir, "bad.test", c->file, text, c->mode);
		/* Ignored: dot files (our temporaries) and other names. */
		put_file(s->dir, "bad.test", ".x.pem.new", "junk", 0644);
		put_file(s->dir, "bad.test", "README", "junk", 0644);
		rc = dkim_keys_load(s->dir, "bad.test", &keys, &n, &error);
		if (c->error == NULL) {
			if (rc != 0)
				fail_msg("%s: %s", c->name, error);
			assert_int_equal(n, 1);
			dkim_keys_free(&keys, n);
			continue;
		}
		if (rc != -1 || strstr(error, c->error) == NULL ||
		    strstr(error, "/dkim/bad.test/") == NULL)
			fail_msg("%s: rc %d error %s", c->name, rc, error ? error : "-");
		assert_null(keys);
		free(error);
	}
	free(small_pem);
	free(good_pem);
}

/* -------------------------------------------------------- sign and verify */

static const char base_msg[] =
    "From: Alice <alice@example.test>\r\n"
    "To: bob@remote.example\r\n"
    "Subject: Hello there\r\n"
    "Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n"
    "Message-ID: <x1@example.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "X-Mailer: not signed\r\n"
    "\r\n"
    "Hi Bob,  \r\n"
    "\r\n"
    "this is a test.\r\n";

/* signed header + msg, malloc'd. */
static char *
signed_with(const struct dkim_key *key, const char *msg, time_t now)
{
	char *header = NULL, *error = NULL, *out;

	if (dkim_sign(key, msg, strlen(msg), now, &header, &error) != 0)
		fail_msg("sign: %s", error);
	out = xasprintf("%s%s", header, msg);
	free(header);
	return out;
}

/* The p= of key's record. */
static char *
p_of(const struct dkim_key *key)
{
	char *txt = dkim_key_txt(key), *p;

	assert_non_null(txt);
	p = xstrdup(strstr(txt, "p=") + 2);
	free(txt);
	return p;
}

/*
 * A record from a template: %P the key's p=, %Q the other key's p= (same
 * type), %K its type, %k the other type.
 */
static char *
record_from(const char *tmpl, const struct dkim_key *key, const struct dkim_key *other)
{
	char *p = p_of(key), *q = p_of(other), *a, *b, *c, *d;
	const char *k = dkim_alg_key_type(key->alg);
	const char *ok = key->alg == DKIM_ALG_RSA_SHA256 ? "ed25519" : "rsa";

	a = replace_all(tmpl, "%P", p);
	b = replace_all(a, "%Q", q);
	c = replace_all(b, "%K", k);
	d = replace_all(c, "%k", ok);
	free(p), free(q), free(a), free(b), free(c);
	return d;
}

struct verified {
	size_t n;
	struct dkim_result r;        /* of the first signature */
	char *ar;                    /* Authentication-Results clauses, "; " */
	struct dkim_verify *v;
};

/* Verify msg; every lookup gets (dns, record). */
static void
verify_with(const char *msg, time_t now, enum dkim_dns dns, const char *record,
    struct verified *out)
{
	memset(out, 0, sizeof(*out));
	assert_int_equal(dkim_verify_begin(msg, strlen(msg), now, &out->v), 0);
	out->n = dkim_verify_count(out->v);
	for (size_t i = 0; i < out->n; i++)
		if (dkim_verify_query(out->v, i) != NULL)
			dkim_verify_answer(out->v, i, dns, record, record ? strlen(record) : 0);
	if (out->n > 0)
		dkim_verify_result(out->v, 0, &out->r);
	out->ar = dkim_auth_results(out->v, "; ");
	assert_non_null(out->ar);
}

static void
verified_free(struct verified *v)
{
	free(v->ar);
	dkim_verify_free(&v->v);
}

enum lookup {
	LOOKUP_FOUND,            /* the template, or the right record */
	LOOKUP_NONE,
	LOOKUP_TEMPFAIL,
};

struct scenario {
	const char *name;
	const char *find, *repl;     /* changed after signing (in the whole message) */
	const char *prepend;         /* added in front after signing */
	const char *append;          /* added at the end after signing */
	const char *b_prefix;        /* put in front of b='s value */
	enum lookup lookup;
	const char *record;          /* template (see record_from); NULL: the right one */
	time_t later;                /* verified this long after signing */
	enum dkim_status want;
	const char *reason;          /* NULL: none */
};

static const struct scenario scenarios[] = {
	{ .name = "round trip", .want = DKIM_STATUS_PASS },
	{ .name = "a year later", .later = 365 * 86400, .want = DKIM_STATUS_PASS },
	{ .name = "body changed", .find = "a test", .repl = "a tent",
	  .want = DKIM_STATUS_FAIL, .reason = "body hash did not verify" },
	{ .name = "body appended", .append = "P.S. buy now\r\n",
	  .want = DKIM_STATUS_FAIL, .reason = "body hash did not verify" },
	{ .name = "empty lines appended", .append = "\r\n\r\n \r\n", .want = DKIM_STATUS_PASS },
	{ .name = "body whitespace changed", .find = "Hi Bob,  ", .repl = "Hi \t Bob,",
	  .want = DKIM_STATUS_PASS },
	{ .name = "signed header changed", .find = "Subject: Hello there",
	  .repl = "Subject: Hello there!", .want = DKIM_STATUS_FAIL,
	  .reason = "signature did not verify" },
	{ .name = "signed header removed", .find = "Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n",
	  .repl = "", .want = DKIM_STATUS_FAIL, .reason = "signature did not verify" },
	{ .name = "signed header refolded", .find = "Subject: Hello there",
	  .repl = "SUBJECT :  Hello\r\n\t  there ", .want = DKIM_STATUS_PASS },
	{ .name = "unsigned header changed", .find = "X-Mailer: not signed",
	  .repl = "X-Mailer: changed", .want = DKIM_STATUS_PASS },
	{ .name = "unsigned header added on top",
	  .prepend = "Received: from a by b; Fri, 27 Nov 2026 09:00:01 +0000\r\n",
	  .want = DKIM_STATUS_PASS },
	{ .name = "unsigned header added below", .find = "X-Mailer: not signed\r\n",
	  .repl = "X-Mailer: not signed\r\nX-Spam: no\r\n", .want = DKIM_STATUS_PASS },
	{ .name = "fields reordered", .find = "To: bob@remote.example\r\nSubject: Hello there\r\n",
	  .repl = "Subject: Hello there\r\nTo: bob@remote.example\r\n", .want = DKIM_STATUS_PASS },
	/* From is over-signed: a second one anywhere breaks the signature. */
	{ .name = "second From on top", .prepend = "From: Mallory <ceo@example.test>\r\n",
	  .want = DKIM_STATUS_FAIL, .reason = "signature did not verify" },
	{ .name = "second From below", .find = "X-Mailer: not signed\r\n",
	  .repl = "X-Mailer: not signed\r\nFrom: Mallory <ceo@example.test>\r\n",
	  .want = DKIM_STATUS_FAIL, .reason = "signature did not verify" },
	/* To is signed once: a To below the signed one is what h= then covers. */
	{ .name = "second To below", .find = "X-Mailer: not signed\r\n",
	  .repl = "X-Mailer: not signed\r\nTo: x@evil.example\r\n",
	  .want = DKIM_STATUS_FAIL, .reason = "signature did not verify" },
	{ .name = "signature's t= changed", .find = "t=1795770000;", .repl = "t=1795770001;",
	  .want = DKIM_STATUS_FAIL, .reason = "signature did not verify" },
	{ .name = "signature's b= damaged", .b_prefix = "AAAA",
	  .want = DKIM_STATUS_FAIL, .reason = "signature did not verify" },
	{ .name = "signature's b= not base64", .b_prefix = "*",
	  .want = DKIM_STATUS_PERMERROR, .reason = "b= is not a signature in base64" },
	{ .name = "bh= damaged", .find = "bh=", .repl = "bh=AAAA",
	  .want = DKIM_STATUS_PERMERROR, .reason = "bh= is not a SHA-256 hash in base64" },
	{ .name = "rsa-sha1 claimed", .find = "-sha256;", .repl = "-sha1;",
	  .want = DKIM_STATUS_PERMERROR },
	/* The key record. */
	{ .name = "no key", .lookup = LOOKUP_NONE, .want = DKIM_STATUS_PERMERROR,
	  .reason = "no key for signature" },
	{ .name = "dns tempfail", .lookup = LOOKUP_TEMPFAIL, .want = DKIM_STATUS_TEMPERROR,
	  .reason = "key lookup failed" },
	{ .name = "wrong key", .record = "v=DKIM1; k=%K; p=%Q", .want = DKIM_STATUS_FAIL,
	  .reason = "signature did not verify" },
	{ .name = "revoked key", .record = "v=DKIM1; k=%K; p=", .want = DKIM_STATUS_FAIL,
	  .reason = "key revoked" },
	{ .name = "revoked key, folded", .record = "v=DKIM1; k=%K; p= ;",
	  .want = DKIM_STATUS_FAIL, .reason = "key revoked" },
	{ .name = "key type mismatch", .record = "v=DKIM1; k=%k; p=%P",
	  .want = DKIM_STATUS_PERMERROR,
	  .reason = "key type does not match the signature's algorithm" },
	{ .name = "unknown key type", .record = "v=DKIM1; k=dsa; p=%P",
	  .want = DKIM_STATUS_PERMERROR, .reason = "unknown key type" },
	{ .name = "testing mode, wrong key", .record = "v=DKIM1; k=%K; t=y; p=%Q",
	  .want = DKIM_STATUS_NEUTRAL, .reason = "signature did not verify (key in testing mode)" },
	{ .name = "testing mode, right key", .record = "v=DKIM1; k=%K; t=y; p=%P",
	  .want = DKIM_STATUS_PASS },
	{ .name = "strict key, no i=", .record = "v=DKIM1; k=%K; t=s; p=%P",
	  .want = DKIM_STATUS_PASS },
	{ .name = "key h=sha1 only", .record = "v=DKIM1; h=sha1; k=%K; p=%P",
	  .want = DKIM_STATUS_PERMERROR, .reason = "key does not allow sha256" },
	{ .name = "key h=sha1:sha256", .record = "v=DKIM1; h=sha1:sha256; k=%K; p=%P",
	  .want = DKIM_STATUS_PASS },
	{ .name = "key v= not first", .record = "k=%K; v=DKIM1; p=%P",
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad key record version" },
	{ .name = "key v=DKIM2", .record = "v=DKIM2; k=%K; p=%P",
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad key record version" },
	{ .name = "key without v=", .record = "k=%K; p=%P", .want = DKIM_STATUS_PASS },
	{ .name = "key s=other", .record = "v=DKIM1; k=%K; s=other; p=%P",
	  .want = DKIM_STATUS_PERMERROR, .reason = "key is not for email" },
	{ .name = "key s=*", .record = "v=DKIM1; k=%K; s=*; p=%P", .want = DKIM_STATUS_PASS },
	{ .name = "key with unknown tags", .record = "v=DKIM1; k=%K; n=notes; g=*; p=%P;",
	  .want = DKIM_STATUS_PASS },
	{ .name = "key p= folded", .record = "v=DKIM1; k=%K; p=%P", .want = DKIM_STATUS_PASS },
	{ .name = "key without p=", .record = "v=DKIM1; k=%K", .want = DKIM_STATUS_PERMERROR,
	  .reason = "key record has no p=" },
	{ .name = "key p= not base64", .record = "v=DKIM1; k=%K; p=!!!!",
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad key data" },
	{ .name = "key p= 8-bit", .record = "v=DKIM1; k=%K; p=\xff",
	  .want = DKIM_STATUS_PERMERROR, .reason = "key record syntax: bad character in a "
	  "tag value" },
	{ .name = "key p= not a key", .record = "v=DKIM1; k=%K; p=AAAA",
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad key data" },
	{ .name = "key syntax", .record = "v=DKIM1; k=%K; p=%P; p=%P",
	  .want = DKIM_STATUS_PERMERROR, .reason = "key record syntax: duplicate tag" },
	{ .name = "key garbage", .record = "garbage", .want = DKIM_STATUS_PERMERROR,
	  .reason = "key record syntax: tag without '='" },
};

static void
run_scenarios(const struct dkim_key *key, const struct dkim_key *other)
{
	for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++) {
		const struct scenario *c = &scenarios[i];
		char *msg = signed_with(key, base_msg, T0), *m2, *record = NULL;
		struct verified v;

		if (c->find != NULL) {
			m2 = replace(msg, c->find, c->repl);
			free(msg);
			msg = m2;
		}
		if (c->b_prefix != NULL) {
			/* b= after SP or HTAB: bh='s base64 holds neither. */
			char *b = strstr(msg, " b=");

			if (b == NULL)
				b = strstr(msg, "\tb=");
			assert_non_null(b);
			m2 = xasprintf("%.*s%s%s", (int)(b + 3 - msg), msg, c->b_prefix, b + 3);
			free(msg);
			msg = m2;
		}
		if (c->prepend != NULL || c->append != NULL) {
			m2 = xasprintf("%s%s%s", c->prepend ? c->prepend : "", msg,
			    c->append ? c->append : "");
			free(msg);
			msg = m2;
		}
		if (c->lookup == LOOKUP_FOUND)
			record = c->record != NULL ? record_from(c->record, key, other) :
			    dkim_key_txt(key);
		if (c->record != NULL && strcmp(c->name, "key p= folded") == 0) {
			/* Folding white space inside p=, as some DNS tools print it. */
			char *p = strstr(record, "p=") + 10, *f = xasprintf("%.*s \t %s",
			    (int)(p - record), record, p);

			free(record);
			record = f;
		}
		verify_with(msg, T0 + 10 + c->later, c->lookup == LOOKUP_FOUND ? DKIM_DNS_FOUND :
		    c->lookup == LOOKUP_NONE ? DKIM_DNS_NONE : DKIM_DNS_TEMPFAIL, record, &v);
		if (v.n != 1)
			fail_msg("%s/%s: %zu signatures", dkim_alg_name(key->alg), c->name, v.n);
		if (v.r.status != c->want || (c->reason != NULL && (v.r.reason == NULL ||
		    strcmp(v.r.reason, c->reason) != 0)) ||
		    (c->want == DKIM_STATUS_PASS && v.r.reason != NULL))
			fail_msg("%s/%s: %s (%s), want %s (%s)", dkim_alg_name(key->alg), c->name,
			    dkim_status_name(v.r.status), v.r.reason ? v.r.reason : "-",
			    dkim_status_name(c->want), c->reason ? c->reason : "-");
		assert_int_equal(dkim_verify_pass(v.v), c->want == DKIM_STATUS_PASS);
		verified_free(&v);
		free(record);
		free(msg);
	}
}

static void
test_scenarios_rsa(void **state)
{
	struct keys_state *s = *state;

	run_scenarios(s->rsa, s->rsa2);
}

static void
test_scenarios_ed25519(void **state)
{
	struct keys_state *s = *state;

	run_scenarios(s->ed, s->ed2);
}

/* What the signer writes: the tags, From over-signed, folding, CRLF. */
static void
test_sign_format(void **state)
{
	struct keys_state *s = *state;
	const struct dkim_key *keys[] = { s->rsa, s->ed };

	for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
		char *header = NULL, *error = NULL, *flat, want[200];
		const char *line;

		assert_int_equal(dkim_sign(keys[k], base_msg, strlen(base_msg), T0, &header,
		    &error), 0);
		assert_true(strncmp(header, "DKIM-Signature: v=1; a=", 23) == 0);
		assert_int_equal(header[strlen(header) - 2], '\r');
		assert_int_equal(header[strlen(header) - 1], '\n');
		for (line = header; *line != '\0'; ) {
			const char *end = strstr(line, "\r\n");

			assert_non_null(end);
			assert_true(end - line <= 78);
			if (line != header)
				assert_int_equal(line[0], '\t');
			line = end + 2;
		}
		flat = replace_all(header, "\r\n\t", " ");
		snprintf(want, sizeof(want), "a=%s; c=relaxed/relaxed; d=example.test; s=%s; "
		    "t=%lld;", dkim_alg_name(keys[k]->alg), keys[k]->selector, (long long)T0);
		assert_non_null(strstr(flat, want));
		{
			/* Folding may split h= only after a ':'; remove those spaces. */
			char *h = replace_all(flat, ": ", ":");

			assert_non_null(strstr(h, "h=From:From:Subject:Date:To:Message-ID:"
			    "MIME-Version:Content-Type;"));
			free(h);
		}
		assert_non_null(strstr(flat, "bh=E5r+F3j9WG5gSEcbgGHbhUot/Odx6arN5+og+j0IKBc=;"));
		assert_null(strstr(flat, "l="));
		assert_null(strstr(flat, "x="));
		assert_null(strstr(flat, "X-Mailer"));
		free(flat);
		free(header);
	}
}

/* Both keys at once: two fields, each verifying on its own. */
static void
test_sign_both(void **state)
{
	struct keys_state *s = *state;
	struct dkim_key *keys[] = { s->rsa, s->ed };
	char *headers = NULL, *error = NULL, *msg, *rsa_txt, *ed_txt;
	struct dkim_verify *v = NULL;
	struct dkim_result r;

	assert_int_equal(dkim_sign_keys(keys, 2, base_msg, strlen(base_msg), T0, &headers,
	    &error), 0);
	msg = xasprintf("%s%s", headers, base_msg);
	rsa_txt = dkim_key_txt(s->rsa);
	ed_txt = dkim_key_txt(s->ed);
	assert_int_equal(dkim_verify_begin(msg, strlen(msg), T0, &v), 0);
	assert_int_equal(dkim_verify_count(v), 2);
	assert_string_equal(dkim_verify_query(v, 0), "r1._domainkey.example.test");
	assert_string_equal(dkim_verify_query(v, 1), "e1._domainkey.example.test");
	/* Unanswered: a temperror. */
	dkim_verify_result(v, 1, &r);
	assert_int_equal(r.status, DKIM_STATUS_TEMPERROR);
	dkim_verify_answer(v, 0, DKIM_DNS_FOUND, rsa_txt, strlen(rsa_txt));
	dkim_verify_answer(v, 1, DKIM_DNS_FOUND, ed_txt, strlen(ed_txt));
	assert_null(dkim_verify_query(v, 0));
	/* A second answer changes nothing. */
	dkim_verify_answer(v, 0, DKIM_DNS_NONE, NULL, 0);
	for (size_t i = 0; i < 2; i++) {
		dkim_verify_result(v, i, &r);
		assert_int_equal(r.status, DKIM_STATUS_PASS);
		assert_null(r.reason);
		assert_string_equal(r.domain, "example.test");
		assert_string_equal(r.algorithm, dkim_alg_name(keys[i]->alg));
	}
	dkim_verify_free(&v);
	assert_null(v);
	free(rsa_txt);
	free(ed_txt);
	free(msg);
	free(headers);
}

struct sign_error_case {
	const char *name;
	const char *msg;
	const char *error;
};

static void
test_sign_errors(void **state)
{
	struct keys_state *s = *state;
	static const struct sign_error_case cases[] = {
		{ "no From", "To: a@b\r\nSubject: x\r\n\r\nbody\r\n", "has no From field" },
		{ "From without colon", "From a@b\r\n\r\nbody\r\n", "has no From field" },
		{ "empty", "", "has no From field" },
		{ "continuation first", " x: y\r\nFrom: a@b\r\n\r\nbody\r\n",
		  "starts with a continuation line" },
	};
	char *header = NULL, *error = NULL;
	struct dkim_buf big = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(dkim_sign(s->rsa, cases[i].msg, strlen(cases[i].msg), T0,
		    &header, &error), -1);
		assert_null(header);
		if (strstr(error, cases[i].error) == NULL)
			fail_msg("%s: %s", cases[i].name, error);
		free(error);
	}
	/* Bounds: too many fields, or too many to sign. */
	dkim_buf_adds(&big, "From: a@example.test\r\n");
	for (int i = 0; i < DKIM_MAX_FIELDS; i++)
		dkim_buf_adds(&big, "X-A: b\r\n");
	dkim_buf_adds(&big, "\r\nbody\r\n");
	assert_int_equal(dkim_sign(s->rsa, big.p, big.len, T0, &header, &error), -1);
	assert_non_null(strstr(error, "header fields: not signed"));
	free(error);
	dkim_buf_free(&big);
	dkim_buf_adds(&big, "From: a@example.test\r\n");
	for (int i = 0; i < 300; i++)
		dkim_buf_adds(&big, "To: b@example.test\r\n");
	dkim_buf_adds(&big, "\r\nbody\r\n");
	assert_int_equal(dkim_sign(s->rsa, big.p, big.len, T0, &header, &error), -1);
	assert_non_null(strstr(error, "fields to sign: not signed"));
	free(error);
	dkim_buf_free(&big);
	assert_int_equal(dkim_sign_keys(NULL, 0, base_msg, strlen(base_msg), T0, &header,
	    &error), -1);
	free(error);
}

/* ------------------------------------------ hand-made signatures (the rest) */

/*
 * Sign msg with a DKIM-Signature made from tags (which must end in "b="; %A
 * is replaced by a=, %S by s=, %BH by the body hash), canonicalised hc/bc,
 * the body limited to l bytes, the header fields its h= names.
 */
static char *
custom_signed(const struct dkim_key *key, const char *msg, const char *tags,
    enum dkim_canon hc, enum dkim_canon bc, uint64_t l)
{
	struct dkim_msg m;
	struct dkim_canon_body body;
	struct dkim_buf data = { 0 }, b64 = { 0 };
	unsigned char hash[32], *sig;
	const char *names[64];
	size_t lens[64], nh = 0, siglen = 0;
	char *t1, *t2, *t3, *field, *hcopy, *out, *save = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const char *h = strstr(tags, " h=");

	/* The names of h=, white space dropped. */
	assert_non_null(h);
	h += 3;
	hcopy = xasprintf("%.*s", (int)strcspn(h, ";"), h);
	for (char *r = hcopy, *w = hcopy; ; r++) {
		if (*r != ' ' && *r != '\t' && *r != '\r' && *r != '\n')
			*w++ = *r;
		if (*r == '\0')
			break;
	}

	assert_int_equal(dkim_msg_parse(msg, strlen(msg), &m), 0);
	assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
	dkim_canon_body_init(&body, bc, l, sink_md, md);
	dkim_canon_body_update(&body, m.body, m.body_len);
	dkim_canon_body_final(&body);
	assert_int_equal(EVP_DigestFinal_ex(md, hash, NULL), 1);
	dkim_buf_base64(&b64, hash, sizeof(hash));
	t1 = replace_all(tags, "%BH", b64.p);
	t2 = replace_all(t1, "%A", dkim_alg_name(key->alg));
	t3 = replace_all(t2, "%S", key->selector);
	field = xasprintf("DKIM-Signature: %s", t3);
	for (char *n = strtok_r(hcopy, ":", &save); n != NULL; n = strtok_r(NULL, ":", &save)) {
		names[nh] = n;
		lens[nh++] = strlen(n);
	}
	dkim_msg_canon_fields(&m, hc, names, lens, nh, &data);
	dkim_canon_header(hc, field, strlen(field), false, &data);
	/* Sign as dkim_sign_data does. */
	EVP_MD_CTX_reset(md);
	if (key->alg == DKIM_ALG_ED25519_SHA256) {
		assert_int_equal(EVP_Digest(data.p, data.len, hash, NULL, EVP_sha256(), NULL), 1);
		assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, key->pkey), 1);
		assert_int_equal(EVP_DigestSign(md, NULL, &siglen, hash, 32), 1);
		sig = malloc(siglen);
		assert_int_equal(EVP_DigestSign(md, sig, &siglen, hash, 32), 1);
	} else {
		assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->pkey), 1);
		assert_int_equal(EVP_DigestSign(md, NULL, &siglen, (unsigned char *)data.p,
		    data.len), 1);
		sig = malloc(siglen);
		assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)data.p,
		    data.len), 1);
	}
	dkim_buf_free(&b64);
	dkim_buf_base64(&b64, sig, siglen);
	out = xasprintf("%s%s\r\n%s", field, b64.p, msg);
	free(sig);
	free(t1), free(t2), free(t3), free(field), free(hcopy);
	dkim_buf_free(&b64);
	dkim_buf_free(&data);
	dkim_msg_clear(&m);
	EVP_MD_CTX_free(md);
	return out;
}

struct custom_case {
	const char *name;
	const char *tags;
	enum dkim_canon hc, bc;
	uint64_t l;              /* 0: none */
	const char *find, *repl; /* after signing */
	const char *append;
	const char *record;      /* template; NULL: the right one */
	enum dkim_status want;
	const char *reason;
};

#define STD "v=1; a=%A; d=example.test; s=%S; "
#define TAIL "bh=%BH; b="

static const struct custom_case custom_cases[] = {
	{ .name = "plain", .tags = STD "c=relaxed/relaxed; h=From:Subject; " TAIL,
	  .hc = DKIM_CANON_RELAXED, .bc = DKIM_CANON_RELAXED, .want = DKIM_STATUS_PASS },
	{ .name = "simple/simple", .tags = STD "c=simple/simple; h=From:Subject; " TAIL,
	  .want = DKIM_STATUS_PASS },
	{ .name = "default c= is simple", .tags = STD "h=From:Subject; " TAIL,
	  .want = DKIM_STATUS_PASS },
	{ .name = "simple header refolded", .tags = STD "c=simple; h=From:Subject; " TAIL,
	  .find = "Subject: Hello there", .repl = "Subject:  Hello there",
	  .want = DKIM_STATUS_FAIL, .reason = "signature did not verify" },
	{ .name = "simple body respaced", .tags = STD "c=relaxed/simple; h=From:Subject; " TAIL,
	  .hc = DKIM_CANON_RELAXED, .find = "Hi Bob,  ", .repl = "Hi Bob, ",
	  .want = DKIM_STATUS_FAIL, .reason = "body hash did not verify" },
	{ .name = "simple body, empty lines added", .tags = STD "c=simple/simple; "
	  "h=From:Subject; " TAIL, .append = "\r\n\r\n", .want = DKIM_STATUS_PASS },
	{ .name = "expired", .tags = STD "c=relaxed/relaxed; t=1795760000; x=1795769000; "
	  "h=From:Subject; " TAIL, .hc = DKIM_CANON_RELAXED, .bc = DKIM_CANON_RELAXED,
	  .want = DKIM_STATUS_FAIL, .reason = "signature expired" },
	{ .name = "not expired", .tags = STD "c=relaxed/relaxed; t=1795760000; x=1795779000; "
	  "h=From:Subject; " TAIL, .hc = DKIM_CANON_RELAXED, .bc = DKIM_CANON_RELAXED,
	  .want = DKIM_STATUS_PASS },
	{ .name = "x before t", .tags = STD "t=1795770000; x=1795769999; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "x= is before t=" },
	{ .name = "t= not a number", .tags = STD "t=soon; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad t= or x= time" },
	{ .name = "x= overflows", .tags = STD "x=99999999999999999999; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad t= or x= time" },
	/* l=: honoured, so what follows the signed part is not covered. */
	{ .name = "l= honoured", .tags = STD "c=relaxed/relaxed; l=9; h=From:Subject; " TAIL,
	  .hc = DKIM_CANON_RELAXED, .bc = DKIM_CANON_RELAXED, .l = 9,
	  .append = "appended\r\n", .want = DKIM_STATUS_PASS },
	{ .name = "l= inside the change", .tags = STD "c=relaxed/relaxed; l=9; h=From; " TAIL,
	  .hc = DKIM_CANON_RELAXED, .bc = DKIM_CANON_RELAXED, .l = 9, .find = "Hi Bob",
	  .repl = "Yo Bob", .want = DKIM_STATUS_FAIL, .reason = "body hash did not verify" },
	{ .name = "l= past the body", .tags = STD "c=relaxed/relaxed; l=5000; h=From; " TAIL,
	  .hc = DKIM_CANON_RELAXED, .bc = DKIM_CANON_RELAXED, .l = 5000,
	  .want = DKIM_STATUS_PERMERROR, .reason = "l= is longer than the body" },
	{ .name = "l= not a number", .tags = STD "l=-1; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad l= length" },
	/* i= */
	{ .name = "i= subdomain", .tags = STD "i=alice@mail.example.test; h=From; " TAIL,
	  .want = DKIM_STATUS_PASS },
	{ .name = "i= subdomain, strict key", .tags = STD "i=@mail.example.test; h=From; " TAIL,
	  .record = "v=DKIM1; k=%K; t=s; p=%P", .want = DKIM_STATUS_PERMERROR,
	  .reason = "i= must be d= itself (key t=s)" },
	{ .name = "i= d itself, strict key", .tags = STD "i=@EXAMPLE.test; h=From; " TAIL,
	  .record = "v=DKIM1; k=%K; t=y:s; p=%P", .want = DKIM_STATUS_PASS },
	{ .name = "i= elsewhere", .tags = STD "i=@example.org; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "i= is not within d=" },
	{ .name = "i= look-alike", .tags = STD "i=@badexample.test; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "i= is not within d=" },
	{ .name = "i= without @", .tags = STD "i=example.test; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad i= identity" },
	/* The other tags. */
	{ .name = "rsa-sha1", .tags = "v=1; a=rsa-sha1; d=example.test; s=%S; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "rsa-sha1 is not accepted (RFC 8301)" },
	{ .name = "unknown a=", .tags = "v=1; a=rsa-sha512; d=example.test; s=%S; h=From; "
	  TAIL, .want = DKIM_STATUS_PERMERROR, .reason = "unknown signature algorithm" },
	{ .name = "From not signed", .tags = STD "h=Subject; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "From is not signed" },
	{ .name = "h= with spaces", .tags = STD "h= from : Subject\r\n\t: date ; " TAIL,
	  .want = DKIM_STATUS_PASS },
	{ .name = "h= empty name", .tags = STD "h=From::Subject; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad h= list" },
	{ .name = "h= over-signs absent fields", .tags = STD "h=From:Cc:Cc:Reply-To; " TAIL,
	  .want = DKIM_STATUS_PASS },
	{ .name = "h= absent field then added", .tags = STD "h=From:Cc; " TAIL, 
	  .find = "Subject:", .repl = "Cc: x@evil.example\r\nSubject:",
	  .want = DKIM_STATUS_FAIL, .reason = "signature did not verify" },
	{ .name = "v=2", .tags = "v=2; a=%A; d=example.test; s=%S; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "unsupported signature version" },
	{ .name = "no v=", .tags = "a=%A; d=example.test; s=%S; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "signature lacks a required tag (v=)" },
	{ .name = "no bh=", .tags = STD "h=From; b=", .want = DKIM_STATUS_PERMERROR,
	  .reason = "signature lacks a required tag (bh=)" },
	{ .name = "no d=", .tags = "v=1; a=%A; s=%S; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "signature lacks a required tag (d=)" },
	{ .name = "q=dns/txt", .tags = STD "q=dns/txt; h=From; " TAIL, .want = DKIM_STATUS_PASS },
	{ .name = "q=http", .tags = STD "q=http/well-known; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "no usable q= query method" },
	{ .name = "c=fancy", .tags = STD "c=fancy/simple; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "unknown canonicalization" },
	{ .name = "c=relaxed/", .tags = STD "c=relaxed/; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "unknown canonicalization" },
	{ .name = "bad d=", .tags = "v=1; a=%A; d=example..test; s=%S; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad d= domain" },
	{ .name = "single-label d=", .tags = "v=1; a=%A; d=test; s=%S; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad d= domain" },
	{ .name = "bad s=", .tags = "v=1; a=%A; d=example.test; s=a/b; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "bad s= selector" },
	{ .name = "duplicate tag", .tags = STD "h=From; h=From; " TAIL,
	  .want = DKIM_STATUS_PERMERROR, .reason = "signature syntax: duplicate tag" },
	{ .name = "unknown tag", .tags = STD "zz=top; h=From; " TAIL, .want = DKIM_STATUS_PASS },
	{ .name = "b= before the others", .tags = "b=; " STD "h=From; bh=%BH",
	  .want = DKIM_STATUS_PASS },
};

/* For "b= before the others": a signer that writes b= first and fills it. */
static char *
fill_first_b(const char *signed_msg)
{
	/* custom_signed appended the signature after the last tag: move it into b=. */
	const char *end = strstr(signed_msg, "\r\n");
	const char *bh = strstr(signed_msg, "bh=");
	const char *sig = bh + 3 + 44;

	return xasprintf("DKIM-Signature: b=%.*s;%.*s%s", (int)(end - sig), sig,
	    (int)(sig - (signed_msg + strlen("DKIM-Signature: b=;"))),
	    signed_msg + strlen("DKIM-Signature: b=;"), end);
}

static void
run_custom(const struct dkim_key *key, const struct dkim_key *other)
{
	for (size_t i = 0; i < ARRAY_SIZE(custom_cases); i++) {
		const struct custom_case *c = &custom_cases[i];
		char *msg = custom_signed(key, base_msg, c->tags, c->hc, c->bc,
		    c->l != 0 ? c->l : UINT64_MAX);
		char *record, *m2;
		struct verified v;

		if (strncmp(c->tags, "b=;", 3) == 0) {
			m2 = fill_first_b(msg);
			free(msg);
			msg = m2;
		}
		if (c->find != NULL) {
			m2 = replace(msg, c->find, c->repl);
			free(msg);
			msg = m2;
		}
		if (c->append != NULL) {
			m2 = xasprintf("%s%s", msg, c->append);
			free(msg);
			msg = m2;
		}
		record = c->record != NULL ? record_from(c->record, key, other) :
		    dkim_key_txt(key);
		verify_with(msg, T0, DKIM_DNS_FOUND, record, &v);
		assert_int_equal(v.n, 1);
		if (v.r.status != c->want || (c->reason != NULL && (v.r.reason == NULL ||
		    strcmp(v.r.reason, c->reason) != 0)))
			fail_msg("%s/%s: %s (%s), want %s (%s)", dkim_alg_name(key->alg), c->name,
			    dkim_status_name(v.r.status), v.r.reason ? v.r.reason : "-",
			    dkim_status_name(c->want), c->reason ? c->reason : "-");
		verified_free(&v);
		free(record);
		free(msg);
	}
}

static void
test_custom_rsa(void **state)
{
	struct keys_state *s = *state;

	run_custom(s->rsa, s->rsa2);
}

static void
test_custom_ed25519(void **state)
{
	struct keys_state *s = *state;

	run_custom(s->ed, s->ed2);
}

/* ------------------------------------------------- known answers, interop */

/*
 * The RFC 8463 Appendix A example message signed with the appendix's
 * Ed25519 key and RSA key (simple/simple, i=, spaced h=), as dkimpy's test
 * data carries it (tests/data/rfc6376.signed.msg).
 */
static const char rfc8463_msg[] =
	"DKIM-Signature: v=1; a=ed25519-sha256; c=simple/simple; \r\n"
	" d=football.example.com; i=@football.example.com; \r\n"
	" q=dns/txt; s=brisbane; t=1518460054; h=from : to : \r\n"
	" subject : date : message-id : from : subject : date; \r\n"
	" bh=4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=; \r\n"
	" b=9/dsDChY0YMTtD5Eyw3wx7x22BlSJP7M5ECbJ7GWrR45nXlTCGb8l0YB\r\n"
	" o0wBLR++X5LqmsxXaOYLLJe46l10AQ==\r\n"
	"DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; \r\n"
	" d=football.example.com; i=@football.example.com; \r\n"
	" q=dns/txt; s=test; t=1527915362; h=from : to : subject : \r\n"
	" date : message-id : from : subject : date; \r\n"
	" bh=4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=; \r\n"
	" b=icKcLSEZYXJ95flvWE8FT6hl5iqd8MC/LEKYH0QjsqYy6MO/4pgVNCZH\r\n"
	" l/RAXAuADxE/40Fg7uTlxwwD1hjN2Ple6J//cJfslBdDOq6zTVbne1dqtl\r\n"
	" NOat7iamJ1AfRqyG+ja7a2AZsrpUuJ7VA6O+0zRYPqpwMEkEFIzI9i/Xk=\r\n"
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"\r\n"
	"Hi.\r\n"
	"\r\n"
	"We lost the game.  Are you hungry yet?\r\n"
	"\r\n"
	"Joe.\r\n"
	"\r\n";

static const char rfc8463_ed_record[] =
	"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char rfc8463_rsa_record[] =
	"v=DKIM1; g=*; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3"
	"idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1"
	"Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

static void
check_rfc8463(const char *msg, enum dkim_status want0, enum dkim_status want1,
    const char *want_ar)
{
	struct dkim_verify *v = NULL;
	struct dkim_result r;
	char *ar;

	assert_int_equal(dkim_verify_begin(msg, strlen(msg), T0, &v), 0);
	assert_int_equal(dkim_verify_count(v), 2);
	/* A body hash mismatch is known before any lookup. */
	if (dkim_verify_query(v, 0) != NULL)
		assert_string_equal(dkim_verify_query(v, 0),
		    "brisbane._domainkey.football.example.com");
	if (dkim_verify_query(v, 1) != NULL)
		assert_string_equal(dkim_verify_query(v, 1), "test._domainkey.football.example.com");
	dkim_verify_answer(v, 0, DKIM_DNS_FOUND, rfc8463_ed_record, strlen(rfc8463_ed_record));
	dkim_verify_answer(v, 1, DKIM_DNS_FOUND, rfc8463_rsa_record,
	    strlen(rfc8463_rsa_record));
	dkim_verify_result(v, 0, &r);
	if (r.status != want0)
		fail_msg("ed25519: %s (%s)", dkim_status_name(r.status), r.reason);
	dkim_verify_result(v, 1, &r);
	if (r.status != want1)
		fail_msg("rsa: %s (%s)", dkim_status_name(r.status), r.reason);
	ar = dkim_auth_results(v, ";\r\n\t");
	assert_string_equal(ar, want_ar);
	free(ar);
	dkim_verify_free(&v);
}

static void
test_rfc8463_known_answer(void **state)
{
	char *m;

	(void)state;
	check_rfc8463(rfc8463_msg, DKIM_STATUS_PASS, DKIM_STATUS_PASS,
	    "dkim=pass header.d=football.example.com header.s=brisbane "
	    "header.i=@football.example.com header.a=ed25519-sha256 header.b=\"9/dsDChY\";\r\n"
	    "\tdkim=pass header.d=football.example.com header.s=test "
	    "header.i=@football.example.com header.a=rsa-sha256 header.b=icKcLSEZ");
	/* One header byte changed (simple canonicalisation): both fail. */
	m = replace(rfc8463_msg, "Is dinner ready?", "Is dinner ready? ");
	check_rfc8463(m, DKIM_STATUS_FAIL, DKIM_STATUS_FAIL,
	    "dkim=fail reason=\"signature did not verify\" header.d=football.example.com "
	    "header.s=brisbane header.i=@football.example.com header.a=ed25519-sha256 "
	    "header.b=\"9/dsDChY\";\r\n"
	    "\tdkim=fail reason=\"signature did not verify\" header.d=football.example.com "
	    "header.s=test header.i=@football.example.com header.a=rsa-sha256 "
	    "header.b=icKcLSEZ");
	free(m);
	m = replace(rfc8463_msg, "Joe.", "Jon.");
	check_rfc8463(m, DKIM_STATUS_FAIL, DKIM_STATUS_FAIL,
	    "dkim=fail reason=\"body hash did not verify\" header.d=football.example.com "
	    "header.s=brisbane header.i=@football.example.com header.a=ed25519-sha256 "
	    "header.b=\"9/dsDChY\";\r\n"
	    "\tdkim=fail reason=\"body hash did not verify\" header.d=football.example.com "
	    "header.s=test header.i=@football.example.com header.a=rsa-sha256 "
	    "header.b=icKcLSEZ");
	free(m);
}

/* ---------------------------------------------- results text and the bounds */

static void
test_auth_results(void **state)
{
	struct keys_state *s = *state;
	struct dkim_verify *v = NULL;
	const char *nosig = "From: a@example.test\r\n\r\nbody\r\n";
	char *ar, *msg, *txt, want[200], b8[9];

	(void)s;
	assert_int_equal(dkim_verify_begin(nosig, strlen(nosig), T0, &v), 0);
	assert_int_equal(dkim_verify_count(v), 0);
	assert_false(dkim_verify_pass(v));
	ar = dkim_auth_results(v, "; ");
	assert_string_equal(ar, "dkim=none");
	free(ar);
	dkim_verify_free(&v);

	msg = signed_with(s->rsa, base_msg, T0);
	{
		const char *b = (strstr(msg, " b=") != NULL ? strstr(msg, " b=") :
		    strstr(msg, "\tb=")) + 3;
		size_t o = 0;

		for (; o < 8; b++)
			if (*b != '\r' && *b != '\n' && *b != '\t' && *b != ' ')
				b8[o++] = *b;
		b8[8] = '\0';
	}
	txt = dkim_key_txt(s->rsa);
	assert_int_equal(dkim_verify_begin(msg, strlen(msg), T0, &v), 0);
	dkim_verify_answer(v, 0, DKIM_DNS_FOUND, txt, strlen(txt));
	ar = dkim_auth_results(v, "; ");
	snprintf(want, sizeof(want), "dkim=pass header.d=example.test header.s=r1 "
	    "header.a=rsa-sha256 header.b=%s%s%s", strpbrk(b8, "/=") ? "\"" : "", b8,
	    strpbrk(b8, "/=") ? "\"" : "");
	assert_string_equal(ar, want);
	free(ar);
	dkim_verify_free(&v);
	free(txt);
	free(msg);

	/* A permerror that could not read d= or s= names neither. */
	msg = xasprintf("DKIM-Signature: v=1; a=rsa-sha256; d=..; s=a b; b=; bh=; h=From\r\n%s",
	    base_msg);
	assert_int_equal(dkim_verify_begin(msg, strlen(msg), T0, &v), 0);
	assert_null(dkim_verify_query(v, 0));
	ar = dkim_auth_results(v, "; ");
	assert_string_equal(ar, "dkim=permerror reason=\"bad d= domain\" header.a=rsa-sha256");
	free(ar);
	dkim_verify_free(&v);
	free(msg);
	msg = xasprintf("DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=\x01; h=From\r\n"
	    "%s", base_msg);
	assert_int_equal(dkim_verify_begin(msg, strlen(msg), T0, &v), 0);
	ar = dkim_auth_results(v, "; ");
	assert_string_equal(ar, "dkim=permerror reason=\"signature syntax: bad character in a "
	    "tag value\"");
	free(ar);
	dkim_verify_free(&v);
	free(msg);
}

static void
test_bounds(void **state)
{
	struct keys_state *s = *state;
	struct dkim_buf big = { 0 };
	struct dkim_verify *v = NULL;
	struct dkim_result r;
	char *msg = signed_with(s->ed, base_msg, T0), *txt = dkim_key_txt(s->ed);
	size_t siglen = strstr(msg, "\r\nFrom:") + 2 - msg;

	/* Ten signatures: eight verified, two ignored. */
	for (int i = 0; i < 10; i++)
		dkim_buf_add(&big, msg, siglen);
	dkim_buf_adds(&big, base_msg);
	assert_int_equal(dkim_verify_begin(big.p, big.len, T0, &v), 0);
	assert_int_equal(dkim_verify_count(v), DKIM_MAX_SIGNATURES);
	assert_int_equal(dkim_verify_ignored(v), 2);
	for (size_t i = 0; i < DKIM_MAX_SIGNATURES; i++)
		dkim_verify_answer(v, i, DKIM_DNS_FOUND, txt, strlen(txt));
	for (size_t i = 0; i < DKIM_MAX_SIGNATURES; i++) {
		dkim_verify_result(v, i, &r);
		assert_int_equal(r.status, DKIM_STATUS_PASS);
	}
	dkim_verify_free(&v);
	dkim_buf_free(&big);

	/* A giant signature field. */
	dkim_buf_adds(&big, "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=x; h=From");
	for (int i = 0; i < 6000; i++)
		dkim_buf_adds(&big, ":To");
	dkim_buf_adds(&big, "; bh=; b=\r\n");
	dkim_buf_adds(&big, base_msg);
	assert_int_equal(dkim_verify_begin(big.p, big.len, T0, &v), 0);
	dkim_verify_result(v, 0, &r);
	assert_int_equal(r.status, DKIM_STATUS_PERMERROR);
	assert_string_equal(r.reason, "signature field too long");
	dkim_verify_free(&v);
	dkim_buf_free(&big);

	/* Too many names in h=. */
	dkim_buf_adds(&big, "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=x; h=From");
	for (int i = 0; i < 300; i++)
		dkim_buf_adds(&big, ":To");
	dkim_buf_adds(&big, "; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n");
	dkim_buf_adds(&big, base_msg);
	assert_int_equal(dkim_verify_begin(big.p, big.len, T0, &v), 0);
	dkim_verify_result(v, 0, &r);
	assert_int_equal(r.status, DKIM_STATUS_PERMERROR);
	assert_string_equal(r.reason, "bad h= list");
	dkim_verify_free(&v);
	dkim_buf_free(&big);

	/* More header fields than are read: the signature is a permerror. */
	dkim_buf_add(&big, msg, siglen);
	for (int i = 0; i < DKIM_MAX_FIELDS + 10; i++)
		dkim_buf_adds(&big, "X-A: b\r\n");
	dkim_buf_adds(&big, base_msg);
	assert_int_equal(dkim_verify_begin(big.p, big.len, T0, &v), 0);
	dkim_verify_result(v, 0, &r);
	assert_int_equal(r.status, DKIM_STATUS_PERMERROR);
	assert_string_equal(r.reason, "more than 4096 header fields");
	dkim_verify_free(&v);
	dkim_buf_free(&big);

	/* A key record too long to be one. */
	{
		char *huge = calloc(1, 10000);

		memset(huge, 'a', 9999);
		assert_int_equal(dkim_verify_begin(msg, strlen(msg), T0, &v), 0);
		dkim_verify_answer(v, 0, DKIM_DNS_FOUND, huge, strlen(huge));
		dkim_verify_result(v, 0, &r);
		assert_string_equal(r.reason, "key record too long");
		dkim_verify_free(&v);
		free(huge);
	}
	free(txt);
	free(msg);
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_canon_header),
		cmocka_unit_test(test_canon_body),
		cmocka_unit_test(test_canon_body_large),
		cmocka_unit_test(test_msg_parse),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_rfc8463_known_answer),
	};
	const struct CMUnitTest keyed[] = {
		cmocka_unit_test(test_keygen_files),
		cmocka_unit_test(test_keys_load_errors),
		cmocka_unit_test(test_scenarios_rsa),
		cmocka_unit_test(test_scenarios_ed25519),
		cmocka_unit_test(test_sign_format),
		cmocka_unit_test(test_sign_both),
		cmocka_unit_test(test_sign_errors),
		cmocka_unit_test(test_custom_rsa),
		cmocka_unit_test(test_custom_ed25519),
		cmocka_unit_test(test_auth_results),
		cmocka_unit_test(test_bounds),
	};
	int failed = cmocka_run_group_tests_name("dkim", pure, NULL, NULL);

	return failed + cmocka_run_group_tests_name("dkim keys", keyed, keys_setup,
	    keys_teardown);
}
