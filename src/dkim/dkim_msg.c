/*
 * dkim_msg.c: a message's header fields as DKIM sees them (RFC 5322 2.2):
 * a field runs to the CRLF not followed by SP or HTAB; the header ends at
 * the first empty line. Trusts nothing: a line without ':' is a nameless
 * field (never signed, never matched), bytes are bytes, the count is bounded.
 * RFC 6376 5.4.2 (which instance of a repeated field is signed).
 */
#include "dkim/dkim_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Offset of the next CRLF at or after i, or len. */
static size_t
next_crlf(const char *p, size_t len, size_t i)
{
	while (i + 1 < len) {
		const char *cr = memchr(p + i, '\r', len - i - 1);

		if (cr == NULL)
			return len;
		i = (size_t)(cr - p);
		if (p[i + 1] == '\n')
			return i;
		i++;
	}
	return len;
}

int
dkim_msg_parse(const char *msg, size_t len, struct dkim_msg *m)
{
	size_t cap = 0, i = 0;

	*m = (struct dkim_msg){ .body = msg + len };
	while (i < len) {
		struct dkim_field *f;
		size_t start = i, end, colon;

		if (len - i >= 2 && msg[i] == '\r' && msg[i + 1] == '\n') {
			m->body = msg + i + 2;
			m->body_len = len - i - 2;
			return 0;
		}
		/* The field's lines: the first, then any starting with WSP. */
		for (;;) {
			end = next_crlf(msg, len, i);
			i = end + 2 <= len ? end + 2 : len;
			if (i >= len || (msg[i] != ' ' && msg[i] != '\t'))
				break;
		}
		if (m->nfields == DKIM_MAX_FIELDS) {
			m->truncated = true;
			continue;
		}
		if (m->nfields == cap) {
			size_t ncap = cap == 0 ? 32 : cap * 2;
			struct dkim_field *nf = reallocarray(m->fields, ncap, sizeof(*nf));

			if (nf == NULL) {
				dkim_msg_clear(m);
				return -1;
			}
			m->fields = nf;
			cap = ncap;
		}
		f = &m->fields[m->nfields++];
		f->p = msg + start;
		f->len = i - start;
		f->name_len = 0;
		/* The name: before the first ':' of the first line. */
		end = next_crlf(msg, len, start);
		for (colon = start; colon < end && msg[colon] != ':'; colon++)
			;
		if (colon < end) {
			size_t n = colon - start;

			while (n > 0 && (msg[start + n - 1] == ' ' || msg[start + n - 1] == '\t'))
				n--;
			f->name_len = n;
		}
	}
	return 0;
}

void
dkim_msg_clear(struct dkim_msg *m)
{
	free(m->fields);
	*m = (struct dkim_msg){ 0 };
}

bool
dkim_msg_field_is(const struct dkim_field *f, const char *name, size_t name_len)
{
	return f->name_len == name_len && name_len > 0 &&
	    strncasecmp(f->p, name, name_len) == 0;
}

void
dkim_msg_canon_fields(const struct dkim_msg *m, enum dkim_canon canon,
    const char *const *h, const size_t *hlen, size_t n, struct dkim_buf *out)
{
	for (size_t k = 0; k < n; k++) {
		size_t seen = 0, want = 0;

		/* How many earlier mentions of this name took an instance already. */
		for (size_t j = 0; j < k; j++)
			if (hlen[j] == hlen[k] && strncasecmp(h[j], h[k], hlen[k]) == 0)
				want++;
		for (size_t i = m->nfields; i-- > 0; ) {
			if (!dkim_msg_field_is(&m->fields[i], h[k], hlen[k]))
				continue;
			if (seen++ == want) {
				dkim_canon_header(canon, m->fields[i].p, m->fields[i].len, true, out);
				break;
			}
		}
	}
}
