/* imap_mime.c: placeholder until the parser lands. */
#include <stdlib.h>

#include "imap/imap_mime.h"

struct imap_mime {
	const char *msg;
	size_t len;
};

struct imap_mime *
imap_mime_parse(const char *msg, size_t len)
{
	struct imap_mime *m = calloc(1, sizeof(*m));

	if (m != NULL) {
		m->msg = msg;
		m->len = len;
	}
	return m;
}

void
imap_mime_free(struct imap_mime **mp)
{
	free(*mp);
	*mp = NULL;
}

int
imap_mime_envelope(const struct imap_mime *m, struct evbuffer *out)
{
	return -1;
}

int
imap_mime_bodystructure(const struct imap_mime *m, bool extended, struct evbuffer *out)
{
	return -1;
}

int
imap_mime_section(const struct imap_mime *m, const struct imap_section *sec, struct evbuffer *out)
{
	return -1;
}

bool
imap_mime_header_contains(const struct imap_mime *m, const char *field, const char *needle)
{
	return false;
}

bool
imap_mime_body_contains(const struct imap_mime *m, const char *needle, bool with_headers)
{
	return false;
}

int64_t
imap_mime_sent_date(const struct imap_mime *m)
{
	return -1;
}
