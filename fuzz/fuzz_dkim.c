/*
 * fuzz_dkim.c: libFuzzer target for src/dkim: the message and key record
 * parsers, the canonicalisations, verification and signing. Input:
 *
 *   [0]     bits 0-1: the DNS answer for every signature (0 the record given
 *           below, 1 the fuzz key's record, 2 no record, 3 a temporary
 *           failure); bit 2: also sign the message and verify that
 *   [1..4]  seed for the chunk sizes of the body canonicaliser
 *   rest    the message, then optionally a NUL and a key record
 *
 * Beyond the sanitizers it checks invariants: the body canonicalised whole
 * and in chunks is the same, and has the shape RFC 6376 3.4 gives it;
 * relaxed header canonicalisation is idempotent; results are well formed,
 * Authentication-Results text is printable; and whatever dkim_sign accepts
 * verifies with its key.
 */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim.h"
#include "dkim/dkim_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 5
#define NOW ((time_t)1795770000)

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static struct dkim_key fuzz_key = {
	.domain = (char *)"example.test",
	.selector = (char *)"fuzz",
	.path = (char *)"(fuzz key)",
	.alg = DKIM_ALG_ED25519_SHA256,
};
static char *fuzz_record;

static void
key_init(void)
{
	static const unsigned char seed[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
	    13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

	if (fuzz_key.pkey != NULL)
		return;
	fuzz_key.pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	CHECK(fuzz_key.pkey != NULL);
	fuzz_record = dkim_key_txt(&fuzz_key);
	CHECK(fuzz_record != NULL);
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

static void
sink_buf(void *ctx, const void *p, size_t n)
{
	dkim_buf_add(ctx, p, n);
}

static void
check_body(const char *body, size_t len, enum dkim_canon canon, uint32_t seed)
{
	struct dkim_buf whole = { 0 }, split = { 0 };
	struct dkim_canon_body b;

	dkim_canon_body_init(&b, canon, UINT64_MAX, sink_buf, &whole);
	dkim_canon_body_update(&b, body, len);
	dkim_canon_body_final(&b);
	CHECK(!whole.oom);
	CHECK(b.total == whole.len);
	dkim_canon_body_init(&b, canon, UINT64_MAX, sink_buf, &split);
	for (size_t i = 0; i < len; ) {
		size_t n = 1 + xorshift32(&seed) % 64;

		if (n > len - i)
			n = len - i;
		dkim_canon_body_update(&b, body + i, n);
		i += n;
	}
	dkim_canon_body_final(&b);
	CHECK(whole.len == split.len);
	CHECK(whole.len == 0 || memcmp(whole.p, split.p, whole.len) == 0);
	/* The shape: CRLF at the end, no empty line at the end. */
	if (canon == DKIM_CANON_SIMPLE)
		CHECK(whole.len >= 2);
	if (whole.len > 0) {
		CHECK(whole.len >= 2 && whole.p[whole.len - 2] == '\r' &&
		    whole.p[whole.len - 1] == '\n');
		if (whole.len > 2 || canon == DKIM_CANON_RELAXED)
			CHECK(!(whole.len >= 4 && memcmp(whole.p + whole.len - 4, "\r\n\r\n", 4) == 0));
	}
	if (canon == DKIM_CANON_RELAXED) {
		for (size_t i = 0; i + 1 < whole.len; i++) {
			bool wsp = whole.p[i] == ' ' || whole.p[i] == '\t';

			CHECK(whole.p[i] != '\t');
			CHECK(!(wsp && (whole.p[i + 1] == ' ' || (whole.p[i + 1] == '\r' &&
			    i + 2 < whole.len && whole.p[i + 2] == '\n'))));
		}
	}
	dkim_buf_free(&whole);
	dkim_buf_free(&split);
}

static void
check_fields(const struct dkim_msg *m)
{
	for (size_t i = 0; i < m->nfields && i < 64; i++) {
		struct dkim_buf once = { 0 }, twice = { 0 };

		dkim_canon_header(DKIM_CANON_RELAXED, m->fields[i].p, m->fields[i].len, true, &once);
		CHECK(!once.oom && once.len >= 3);
		dkim_canon_header(DKIM_CANON_RELAXED, once.p, once.len, true, &twice);
		if (m->fields[i].name_len > 0)
			CHECK(once.len == twice.len && memcmp(once.p, twice.p, once.len) == 0);
		dkim_buf_free(&once);
		dkim_buf_free(&twice);
	}
}

static void
check_results(const struct dkim_verify *v)
{
	char *ar = dkim_auth_results(v, ";\r\n\t");

	CHECK(dkim_verify_count(v) <= DKIM_MAX_SIGNATURES);
	for (size_t i = 0; i < dkim_verify_count(v); i++) {
		struct dkim_result r;

		dkim_verify_result(v, i, &r);
		CHECK(r.status <= DKIM_STATUS_PERMERROR);
		CHECK((r.reason == NULL) == (r.status == DKIM_STATUS_PASS));
		CHECK(r.status != DKIM_STATUS_PASS || (r.domain != NULL && r.selector != NULL));
	}
	CHECK(ar != NULL);
	for (const char *p = ar; *p != '\0'; p++) {
		if (p[0] == '\r') {
			CHECK(p[1] == '\n' && p[2] == '\t');
			continue;
		}
		CHECK(*p == '\n' || *p == '\t' || (*p >= 0x20 && *p < 0x7f));
	}
	free(ar);
}

static void
verify(const char *msg, size_t len, int mode, const char *record, size_t record_len)
{
	struct dkim_verify *v = NULL;

	if (dkim_verify_begin(msg, len, NOW, &v) != 0)
		return;
	for (size_t i = 0; i < dkim_verify_count(v); i++) {
		if (dkim_verify_query(v, i) == NULL)
			continue;
		switch (mode) {
		case 0:
			dkim_verify_answer(v, i, record != NULL ? DKIM_DNS_FOUND : DKIM_DNS_NONE,
			    record, record_len);
			break;
		case 1:
			dkim_verify_answer(v, i, DKIM_DNS_FOUND, fuzz_record, strlen(fuzz_record));
			break;
		case 2:
			dkim_verify_answer(v, i, DKIM_DNS_NONE, NULL, 0);
			break;
		default:
			dkim_verify_answer(v, i, DKIM_DNS_TEMPFAIL, NULL, 0);
			break;
		}
	}
	check_results(v);
	dkim_verify_free(&v);
}

static void
sign_and_verify(const char *msg, size_t len)
{
	struct dkim_verify *v = NULL;
	struct dkim_result r;
	char *header = NULL, *error = NULL, *both;
	size_t hlen;

	if (dkim_sign(&fuzz_key, msg, len, NOW, &header, &error) != 0) {
		free(error);
		return;
	}
	hlen = strlen(header);
	both = malloc(hlen + len + 1);
	CHECK(both != NULL);
	memcpy(both, header, hlen);
	memcpy(both + hlen, msg, len);
	CHECK(dkim_verify_begin(both, hlen + len, NOW, &v) == 0);
	CHECK(dkim_verify_count(v) >= 1);
	CHECK(dkim_verify_query(v, 0) != NULL);
	CHECK(strcmp(dkim_verify_query(v, 0), "fuzz._domainkey.example.test") == 0);
	dkim_verify_answer(v, 0, DKIM_DNS_FOUND, fuzz_record, strlen(fuzz_record));
	dkim_verify_result(v, 0, &r);
	if (r.status != DKIM_STATUS_PASS)
		fprintf(stderr, "signed message does not verify: %s\n", r.reason);
	CHECK(r.status == DKIM_STATUS_PASS);
	dkim_verify_free(&v);
	free(both);
	free(header);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg, *record = NULL, *nul;
	size_t len, record_len = 0;
	struct dkim_msg m;
	uint32_t seed;
	int mode;

	if (size < HDR)
		return 0;
	key_init();
	mode = data[0] & 3;
	seed = ((uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 |
	    (uint32_t)data[3] << 8 | data[4]) | 1;
	msg = (const char *)data + HDR;
	len = size - HDR;
	if ((nul = memchr(msg, '\0', len)) != NULL) {
		record = nul + 1;
		record_len = len - (size_t)(nul + 1 - msg);
		len = (size_t)(nul - msg);
	}
	if (dkim_msg_parse(msg, len, &m) == 0) {
		check_fields(&m);
		check_body(m.body, m.body_len, DKIM_CANON_SIMPLE, seed);
		check_body(m.body, m.body_len, DKIM_CANON_RELAXED, seed);
		dkim_msg_clear(&m);
	}
	verify(msg, len, mode, record, record_len);
	if ((data[0] & 4) != 0)
		sign_and_verify(msg, len);
	return 0;
}
