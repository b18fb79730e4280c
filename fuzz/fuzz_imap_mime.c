/*
 * fuzz_imap_mime.c: libFuzzer target for src/imap/imap_mime*.c, the MIME
 * parser behind ENVELOPE, BODYSTRUCTURE, BODY[section] and SEARCH. The
 * input is a message as a client could APPEND or a sender deliver. Beyond
 * the sanitizers it checks what imap_mime.h promises: BODY and
 * BODYSTRUCTURE have balanced parentheses outside strings and literals,
 * BODY[] is the message, BODY[HEADER] + BODY[TEXT] is the message, and
 * every section of the first parts stays within the message size.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "imap/imap_mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* Parentheses balance outside "strings" and {n} literals. */
static void
check_balanced(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	const char *s = (const char *)evbuffer_pullup(b, -1);
	long depth = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"') {
			for (i++; i < n && s[i] != '"'; i++) {
				if (s[i] == '\\')
					i++;
			}
			CHECK(i < n);
		} else if (s[i] == '{') {
			char *end;
			unsigned long len = strtoul(s + i + 1, &end, 10);

			CHECK(end[0] == '}' && end[1] == '\r' && end[2] == '\n');
			i = (size_t)(end + 3 - s) + len - 1;
			CHECK(i < n);
		} else if (s[i] == '(') {
			depth++;
		} else if (s[i] == ')') {
			CHECK(--depth >= 0);
		}
	}
	CHECK(depth == 0);
}

static size_t
section_len(const struct imap_mime *m, const struct imap_section *sec, struct evbuffer *b)
{
	size_t n;

	CHECK(imap_mime_section(m, sec, b) == 0);
	n = evbuffer_get_length(b);
	evbuffer_drain(b, n);
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const fields[] = { "From", "Subject", "Content-Type" };
	struct imap_mime *m = imap_mime_parse((const char *)data, size);
	struct evbuffer *b = evbuffer_new();
	struct imap_section sec;
	size_t hl, tl;

	if (m == NULL || b == NULL) {
		imap_mime_free(&m);
		if (b != NULL)
			evbuffer_free(b);
		return 0;
	}
	CHECK(imap_mime_envelope(m, b) == 0);
	check_balanced(b);
	evbuffer_drain(b, evbuffer_get_length(b));
	CHECK(imap_mime_bodystructure(m, true, b) == 0);
	check_balanced(b);
	evbuffer_drain(b, evbuffer_get_length(b));
	CHECK(imap_mime_bodystructure(m, false, b) == 0);
	check_balanced(b);
	evbuffer_drain(b, evbuffer_get_length(b));

	memset(&sec, 0, sizeof(sec));
	CHECK(section_len(m, &sec, b) == size);
	sec.kind = IMAP_SECTION_HEADER;
	hl = section_len(m, &sec, b);
	sec.kind = IMAP_SECTION_TEXT;
	tl = section_len(m, &sec, b);
	CHECK(hl + tl == size);
	sec.fields = fields;
	sec.nfields = 3;
	for (uint32_t a = 1; a <= 3; a++) {
		for (uint32_t c = 0; c <= 2; c++) {
			sec.part[0] = a;
			sec.part[1] = c;
			sec.depth = c == 0 ? 1 : 2;
			for (int k = IMAP_SECTION_ALL; k <= IMAP_SECTION_MIME; k++) {
				sec.kind = (enum imap_section_kind)k;
				/* HEADER.FIELDS adds at most a CRLF per field and one at the end */
				CHECK(section_len(m, &sec, b) <= size + 2 * 64 + 2);
			}
		}
	}
	(void)imap_mime_header_contains(m, "Subject", "x");
	(void)imap_mime_header_contains(m, NULL, "\xc3\xa9t\xc3\xa9");
	(void)imap_mime_body_contains(m, "needle", true);
	(void)imap_mime_sent_date(m);
	imap_mime_free(&m);
	evbuffer_free(b);
	return 0;
}
