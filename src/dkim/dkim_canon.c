/*
 * dkim_canon.c: the RFC 6376 canonicalisations, "simple" and "relaxed", of a
 * header field (3.4.1, 3.4.2) and of a body (3.4.3, 3.4.4), the body one
 * incremental so a caller can stream. Only CRLF ends a line; a bare CR or LF
 * is an ordinary byte. WSP is SP and HTAB, nothing else.
 */
#include "dkim/dkim_private.h"

#include <string.h>

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

void
dkim_canon_header(enum dkim_canon canon, const char *raw, size_t len, bool crlf,
    struct dkim_buf *out)
{
	const char *colon;
	size_t n, i;
	bool space = false, started = false;

	if (canon == DKIM_CANON_SIMPLE) {
		if (len >= 2 && raw[len - 2] == '\r' && raw[len - 1] == '\n')
			len -= 2;
		dkim_buf_add(out, raw, len);
		if (crlf)
			dkim_buf_add(out, "\r\n", 2);
		return;
	}
	/* relaxed: lower-case name, no WSP around ':', unfolded, WSP runs as one SP. */
	colon = memchr(raw, ':', len);
	n = colon != NULL ? (size_t)(colon - raw) : len;
	i = n;
	while (n > 0 && is_wsp(raw[n - 1]))
		n--;
	for (size_t k = 0; k < n; k++) {
		char c = raw[k];

		dkim_buf_addc(out, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
	}
	dkim_buf_addc(out, ':');
	for (i = colon != NULL ? i + 1 : len; i < len; i++) {
		char c = raw[i];

		if (c == '\r' && i + 1 < len && raw[i + 1] == '\n') {
			i++;
			continue;
		}
		if (is_wsp(c)) {
			space = started;
			continue;
		}
		if (space)
			dkim_buf_addc(out, ' ');
		space = false;
		started = true;
		dkim_buf_addc(out, c);
	}
	if (crlf)
		dkim_buf_add(out, "\r\n", 2);
}

/* ---- body ---- */

static void
body_flush(struct dkim_canon_body *b)
{
	if (b->blen > 0)
		b->sink(b->ctx, b->buf, b->blen);
	b->blen = 0;
}

/* Pass n canonical bytes on, within the limit. */
static void
body_out(struct dkim_canon_body *b, const char *p, size_t n)
{
	uint64_t room = b->total < b->limit ? b->limit - b->total : 0;
	size_t pass = room < n ? (size_t)room : n;

	b->total += n;
	while (pass > 0) {
		size_t chunk = sizeof(b->buf) - b->blen;

		if (chunk > pass)
			chunk = pass;
		memcpy(b->buf + b->blen, p, chunk);
		b->blen += chunk;
		p += chunk;
		pass -= chunk;
		if (b->blen == sizeof(b->buf))
			body_flush(b);
	}
}

/* Content starts on this line: the empty lines before it count after all. */
static void
body_line_content(struct dkim_canon_body *b)
{
	if (b->line)
		return;
	for (; b->empty_lines > 0; b->empty_lines--)
		body_out(b, "\r\n", 2);
	b->line = true;
}

static void
body_content(struct dkim_canon_body *b, char c)
{
	body_line_content(b);
	if (b->wsp)
		body_out(b, " ", 1);
	b->wsp = false;
	body_out(b, &c, 1);
}

static void
body_line_end(struct dkim_canon_body *b)
{
	if (b->line)
		body_out(b, "\r\n", 2);
	else
		b->empty_lines++;
	b->line = false;
	b->wsp = false;
}

void
dkim_canon_body_init(struct dkim_canon_body *b, enum dkim_canon canon, uint64_t limit,
    dkim_canon_sink *sink, void *ctx)
{
	memset(b, 0, offsetof(struct dkim_canon_body, buf));
	b->canon = canon;
	b->limit = limit;
	b->sink = sink;
	b->ctx = ctx;
}

void
dkim_canon_body_update(struct dkim_canon_body *b, const char *p, size_t n)
{
	bool relaxed = b->canon == DKIM_CANON_RELAXED;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (b->cr) {
			b->cr = false;
			if (c == '\n') {
				body_line_end(b);
				continue;
			}
			body_content(b, '\r');
		}
		if (c == '\r') {
			b->cr = true;
		} else if (relaxed && is_wsp(c)) {
			b->wsp = true;
		} else {
			/* The common case: a run of plain bytes in one go. */
			size_t j = i + 1;

			body_content(b, c);
			while (j < n && p[j] != '\r' && !(relaxed && is_wsp(p[j])))
				j++;
			body_out(b, p + i + 1, j - i - 1);
			i = j - 1;
		}
	}
}

void
dkim_canon_body_final(struct dkim_canon_body *b)
{
	if (b->cr) {
		b->cr = false;
		body_content(b, '\r');
	}
	/* A last line without CRLF gets one (its trailing WSP dropped, relaxed). */
	if (b->line)
		body_line_end(b);
	/* Trailing empty lines are dropped; "simple" makes an empty body one CRLF. */
	if (b->canon == DKIM_CANON_SIMPLE && b->total == 0)
		body_out(b, "\r\n", 2);
	b->empty_lines = 0;
	body_flush(b);
}
