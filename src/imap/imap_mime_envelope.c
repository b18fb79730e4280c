/*
 * imap_mime_envelope.c: ENVELOPE (RFC 3501 7.4.2) from the header of a
 * message, with an RFC 5322 address-list parser (groups, routes, obsolete
 * phrases, comments as names), and the IMAP string quoting rules as Dovecot
 * applies them (quoted unless CR/LF, 8-bit or many escapes: then a literal;
 * "for humans" strings with whitespace folded). Trusts nothing in headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "imap/imap_mime_private.h"

#define ADDR_MAX 1000   /* addresses in one header */

/* --- IMAP strings --------------------------------------------------------- */

static int
write_quoted(struct evbuffer *out, const char *s)
{
	int ret = evbuffer_add(out, "\"", 1);

	for (; *s != '\0'; s++) {
		if (*s == '\r' || *s == '\n')
			continue;
		if (*s == '"' || *s == '\\')
			ret |= evbuffer_add(out, "\\", 1);
		ret |= evbuffer_add(out, s, 1);
	}
	ret |= evbuffer_add(out, "\"", 1);
	return ret;
}

int
mime_write_nstring(struct evbuffer *out, const char *s)
{
	unsigned escapes = 0;

	if (s == NULL)
		return evbuffer_add(out, "NIL", 3);
	for (const char *p = s; *p != '\0'; p++) {
		if ((*p == '"' || *p == '\\') && escapes++ < 4)
			continue;
		if (*p == '"' || *p == '\\' || *p == '\r' || *p == '\n' || (unsigned char)*p >= 0x80) {
			size_t len = strlen(s);

			return evbuffer_add_printf(out, "{%zu}\r\n", len) < 0 ? -1 :
			    evbuffer_add(out, s, len);
		}
	}
	return write_quoted(out, s);
}

int
mime_write_nstring_nolf(struct evbuffer *out, const char *s)
{
	char *copy;
	size_t o = 0;
	int ret;

	if (s == NULL || strpbrk(s, "\r\n") == NULL)
		return mime_write_nstring(out, s);
	if ((copy = malloc(strlen(s) * 2 + 1)) == NULL)
		return -1;
	/* unfold: drop CR/LF, keeping one blank between the lines */
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] != '\r' && s[i] != '\n')
			copy[o++] = s[i];
		else if (s[i + 1] != ' ' && s[i + 1] != '\t' && s[i + 1] != '\0' &&
		    s[i + 1] != '\r' && s[i + 1] != '\n')
			copy[o++] = ' ';
	}
	copy[o] = '\0';
	ret = mime_write_nstring(out, copy);
	free(copy);
	return ret;
}

int
mime_write_for_humans(struct evbuffer *out, const char *src, size_t size)
{
	size_t remove = 0, o = 0;
	bool prefix = true, last_lwsp = true, modify = false;
	char *buf;
	int ret;

	for (size_t i = 0; i < size; i++) {
		unsigned char c = (unsigned char)src[i];

		switch (c) {
		case 0:
			last_lwsp = false;
			modify = true;
			break;
		case '\t':
			modify = true;
			/* FALLTHROUGH */
		case ' ':
			if (last_lwsp) {
				modify = true;
				remove++;
			}
			last_lwsp = true;
			break;
		case '\r':
		case '\n':
			remove++;
			modify = true;
			break;
		case '"':
		case '\\':
			modify = true;
			last_lwsp = false;
			break;
		default:
			if (c & 0x80)
				modify = true;
			last_lwsp = false;
			break;
		}
		if (!last_lwsp)
			prefix = false;
	}
	if (last_lwsp && size > 0 && !prefix) {
		modify = true;
		remove++;
	}
	if (!modify) {
		ret = evbuffer_add(out, "\"", 1);
		ret |= evbuffer_add(out, src, size);
		ret |= evbuffer_add(out, "\"", 1);
		return ret;
	}
	if (size == remove)
		return evbuffer_add(out, "\"\"", 2);
	if ((buf = malloc(size + 1)) == NULL)
		return -1;
	last_lwsp = true;
	prefix = true;
	for (size_t i = 0; i < size; i++) {
		unsigned char c = (unsigned char)src[i];

		switch (c) {
		case 0:
			buf[o++] = (char)0x80;
			last_lwsp = false;
			break;
		case '\t':
		case ' ':
			if (!last_lwsp)
				buf[o++] = ' ';
			last_lwsp = true;
			break;
		case '\r':
		case '\n':
			break;
		default:
			last_lwsp = false;
			buf[o++] = (char)c;
			break;
		}
		if (!last_lwsp)
			prefix = false;
	}
	if (last_lwsp && size > 0 && !prefix && o > 0)
		o--;
	ret = evbuffer_add_printf(out, "{%zu}\r\n", o) < 0 ? -1 : evbuffer_add(out, buf, o);
	free(buf);
	return ret;
}

/* --- RFC 5322 addresses --------------------------------------------------- */

struct addr {
	char *name, *route, *mailbox, *domain;
};

struct addrs {
	struct addr *a;
	size_t n, cap;
	bool nomem;
};

struct alex {
	const char *s, *end;
	char *comment;   /* the last comment seen (its content) */
};

static void
alex_skip(struct alex *l)
{
	while (l->s < l->end) {
		if (*l->s == ' ' || *l->s == '\t' || *l->s == '\r' || *l->s == '\n') {
			l->s++;
		} else if (*l->s == '(') {
			const char *start = ++l->s;
			int depth = 1;

			while (l->s < l->end) {
				if (*l->s == '\\' && l->s + 1 < l->end) {
					l->s += 2;
					continue;
				}
				if (*l->s == '(')
					depth++;
				else if (*l->s == ')' && --depth == 0)
					break;
				l->s++;
			}
			free(l->comment);
			l->comment = strndup(start, (size_t)(l->s - start));
			if (l->s < l->end)
				l->s++;
		} else {
			break;
		}
	}
}

static bool
is_atext(unsigned char c)
{
	return c > ' ' && c != 0x7f && strchr("()<>@,;:\\\".[]", c) == NULL;
}

/* Growable string. */
struct sbuf {
	char *s;
	size_t len, cap;
	bool nomem;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->nomem)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *ns = realloc(b->s, cap);

		if (ns == NULL) {
			b->nomem = true;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static char *
sb_take(struct sbuf *b)
{
	char *r = b->s;

	if (b->nomem) {
		free(b->s);
		return NULL;
	}
	if (r == NULL)
		r = strdup("");
	b->s = NULL;
	b->len = b->cap = 0;
	return r;
}

/* quoted-string content, unescaped. */
static void
alex_quoted(struct alex *l, struct sbuf *b)
{
	l->s++;
	while (l->s < l->end && *l->s != '"') {
		if (*l->s == '\\' && l->s + 1 < l->end)
			l->s++;
		if (*l->s != '\r' && *l->s != '\n')
			sb_add(b, l->s, 1);
		l->s++;
	}
	if (l->s < l->end)
		l->s++;
	alex_skip(l);
}

/* atext and dots */
static size_t
alex_atom_dot(struct alex *l, struct sbuf *b)
{
	const char *start = l->s;

	while (l->s < l->end && (is_atext((unsigned char)*l->s) || *l->s == '.'))
		l->s++;
	sb_add(b, start, (size_t)(l->s - start));
	alex_skip(l);
	return (size_t)(l->s - start);
}

/* phrase (obs-phrase allowed): words joined by single spaces. */
static void
alex_phrase(struct alex *l, struct sbuf *b)
{
	bool first = true;

	while (l->s < l->end && (*l->s == '"' || *l->s == '.' || is_atext((unsigned char)*l->s))) {
		if (!first)
			sb_add(b, " ", 1);
		first = false;
		if (*l->s == '"')
			alex_quoted(l, b);
		else
			alex_atom_dot(l, b);
	}
}

/* local-part: dot-atom or quoted-string pieces. */
static void
alex_local(struct alex *l, struct sbuf *b)
{
	while (l->s < l->end) {
		if (*l->s == '"')
			alex_quoted(l, b);
		else if (is_atext((unsigned char)*l->s) || *l->s == '.')
			alex_atom_dot(l, b);
		else
			break;
	}
}

/* domain: dot-atom or [domain literal]. */
static void
alex_domain(struct alex *l, struct sbuf *b)
{
	if (l->s < l->end && *l->s == '[') {
		const char *start = l->s;

		while (l->s < l->end && *l->s != ']') {
			if (*l->s == '\\' && l->s + 1 < l->end)
				l->s++;
			l->s++;
		}
		if (l->s < l->end)
			l->s++;
		sb_add(b, start, (size_t)(l->s - start));
		alex_skip(l);
		return;
	}
	while (l->s < l->end && (is_atext((unsigned char)*l->s) || *l->s == '.'))
		alex_atom_dot(l, b);
}

static void
addrs_add(struct addrs *as, char *name, char *route, char *mailbox, char *domain)
{
	if (as->n == ADDR_MAX || as->nomem) {
		free(name);
		free(route);
		free(mailbox);
		free(domain);
		return;
	}
	if (as->n == as->cap) {
		size_t cap = as->cap ? as->cap * 2 : 8;
		struct addr *na = realloc(as->a, cap * sizeof(*na));

		if (na == NULL) {
			as->nomem = true;
			free(name);
			free(route);
			free(mailbox);
			free(domain);
			return;
		}
		as->a = na;
		as->cap = cap;
	}
	as->a[as->n++] = (struct addr){ name, route, mailbox, domain };
}

static char *
nonempty(char *s)
{
	if (s != NULL && s[0] == '\0') {
		free(s);
		return NULL;
	}
	return s;
}

/* One mailbox (name-addr or addr-spec) at l; false when nothing parsed. */
static bool
parse_mailbox(struct alex *l, struct addrs *as)
{
	struct sbuf name = { 0 }, route = { 0 }, local = { 0 }, domain = { 0 };
	const char *start = l->s;
	char *n = NULL, *r = NULL, *mb, *dm;
	bool angle = false;

	free(l->comment);
	l->comment = NULL;
	alex_phrase(l, &name);
	if (l->s < l->end && *l->s == '<') {
		angle = true;
		l->s++;
		alex_skip(l);
		/* obs-route: "@a,@b:" */
		if (l->s < l->end && *l->s == '@') {
			while (l->s < l->end && (*l->s == '@' || *l->s == ',')) {
				if (*l->s == ',') {
					sb_add(&route, ",", 1);
					l->s++;
					alex_skip(l);
					continue;
				}
				sb_add(&route, "@", 1);
				l->s++;
				alex_skip(l);
				alex_domain(l, &route);
			}
			if (l->s < l->end && *l->s == ':') {
				l->s++;
				alex_skip(l);
			}
		}
		alex_local(l, &local);
		if (l->s < l->end && *l->s == '@') {
			l->s++;
			alex_skip(l);
			alex_domain(l, &domain);
		}
		while (l->s < l->end && *l->s != '>' && *l->s != ',')
			l->s++;
		if (l->s < l->end && *l->s == '>')
			l->s++;
		alex_skip(l);
		n = nonempty(sb_take(&name));
	} else {
		/* addr-spec: start again, the phrase was the local part */
		free(sb_take(&name));
		l->s = start;
		alex_local(l, &local);
		if (l->s < l->end && *l->s == '@') {
			l->s++;
			alex_skip(l);
			alex_domain(l, &domain);
		}
		if (l->comment != NULL && l->comment[0] != '\0') {
			n = l->comment;   /* "user@host (Real Name)" */
			l->comment = NULL;
		}
	}
	r = nonempty(sb_take(&route));
	mb = sb_take(&local);
	dm = sb_take(&domain);
	if (!angle && l->s == start) {
		free(n);
		free(r);
		free(mb);
		free(dm);
		return false;
	}
	if (mb != NULL && mb[0] == '\0') {
		free(mb);
		mb = strdup("MISSING_MAILBOX");
	}
	if (dm != NULL && dm[0] == '\0') {
		free(dm);
		dm = strdup("MISSING_DOMAIN");
	}
	addrs_add(as, n, r, mb, dm);
	return true;
}

static void
parse_address_list(const char *s, size_t len, struct addrs *as)
{
	struct alex l = { s, s + len, NULL };

	alex_skip(&l);
	while (l.s < l.end && !as->nomem) {
		const char *start = l.s;
		struct sbuf phrase = { 0 };

		if (*l.s == ',') {
			l.s++;
			alex_skip(&l);
			continue;
		}
		/* a group: phrase ":" [mailbox-list] ";" */
		alex_phrase(&l, &phrase);
		if (l.s < l.end && *l.s == ':' && phrase.len > 0) {
			l.s++;
			alex_skip(&l);
			addrs_add(as, NULL, NULL, sb_take(&phrase), NULL);
			while (l.s < l.end && *l.s != ';') {
				if (*l.s == ',') {
					l.s++;
					alex_skip(&l);
					continue;
				}
				if (!parse_mailbox(&l, as)) {
					l.s++;  /* garbage: skip a byte */
					alex_skip(&l);
				}
			}
			if (l.s < l.end)
				l.s++;
			alex_skip(&l);
			addrs_add(as, NULL, NULL, NULL, NULL);
			continue;
		}
		free(sb_take(&phrase));
		l.s = start;
		if (!parse_mailbox(&l, as)) {
			l.s++;
			alex_skip(&l);
		}
	}
	free(l.comment);
}

static void
addrs_free(struct addrs *as)
{
	for (size_t i = 0; i < as->n; i++) {
		free(as->a[i].name);
		free(as->a[i].route);
		free(as->a[i].mailbox);
		free(as->a[i].domain);
	}
	free(as->a);
	memset(as, 0, sizeof(*as));
}

static int
write_addrs(struct evbuffer *out, const struct addrs *as)
{
	int ret = 0;

	if (as->n == 0)
		return evbuffer_add(out, "NIL", 3);
	ret |= evbuffer_add(out, "(", 1);
	for (size_t i = 0; i < as->n; i++) {
		const struct addr *a = &as->a[i];

		ret |= evbuffer_add(out, "(", 1);
		if (a->name == NULL)
			ret |= evbuffer_add(out, "NIL", 3);
		else
			ret |= mime_write_for_humans(out, a->name, strlen(a->name));
		ret |= evbuffer_add(out, " ", 1);
		ret |= mime_write_nstring_nolf(out, a->route);
		ret |= evbuffer_add(out, " ", 1);
		ret |= mime_write_nstring_nolf(out, a->mailbox);
		ret |= evbuffer_add(out, " ", 1);
		ret |= mime_write_nstring_nolf(out, a->domain);
		ret |= evbuffer_add(out, ")", 1);
	}
	ret |= evbuffer_add(out, ")", 1);
	return ret;
}

/* --- ENVELOPE ------------------------------------------------------------- */

enum { E_DATE, E_SUBJECT, E_FROM, E_SENDER, E_REPLY_TO, E_TO, E_CC, E_BCC, E_IN_REPLY_TO,
	E_MESSAGE_ID, E_COUNT };

static const char *const env_names[E_COUNT] = {
	"Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "In-Reply-To",
	"Message-ID",
};

int
mime_write_envelope(const struct imap_mime *m, const struct mime_part *p, struct evbuffer *out)
{
	const struct mime_field *fields[E_COUNT] = { NULL };
	struct addrs addrs[E_COUNT];
	char *vals[E_COUNT] = { NULL };
	int ret = 0;

	memset(addrs, 0, sizeof(addrs));
	/* The last occurrence of a string field counts; the addresses of
	 * repeated address fields add up (both as Dovecot does). */
	for (size_t i = 0; i < p->nfields; i++) {
		const struct mime_field *f = &p->fields[i];

		for (int k = 0; k < E_COUNT; k++) {
			if (f->name_len != strlen(env_names[k]) ||
			    strncasecmp(m->msg + f->name_off, env_names[k], f->name_len) != 0)
				continue;
			fields[k] = f;
			if (k >= E_FROM && k <= E_BCC) {
				char *v = mime_field_value(m, f);

				if (v == NULL) {
					ret = -1;
					goto done;
				}
				parse_address_list(v, strlen(v), &addrs[k]);
				free(v);
				if (addrs[k].nomem) {
					ret = -1;
					goto done;
				}
			}
		}
	}
	for (int k = 0; k < E_COUNT; k++) {
		if (fields[k] == NULL || (k >= E_FROM && k <= E_BCC))
			continue;
		if ((vals[k] = mime_field_value(m, fields[k])) == NULL) {
			ret = -1;
			goto done;
		}
	}
	ret |= mime_write_nstring_nolf(out, vals[E_DATE]);
	ret |= evbuffer_add(out, " ", 1);
	if (vals[E_SUBJECT] == NULL)
		ret |= evbuffer_add(out, "NIL", 3);
	else
		ret |= mime_write_for_humans(out, vals[E_SUBJECT], strlen(vals[E_SUBJECT]));
	for (int k = E_FROM; k <= E_BCC; k++) {
		const struct addrs *a = &addrs[k];

		/* Sender and Reply-To default to From (RFC 3501 7.4.2) */
		if ((k == E_SENDER || k == E_REPLY_TO) && a->n == 0)
			a = &addrs[E_FROM];
		ret |= evbuffer_add(out, " ", 1);
		ret |= write_addrs(out, a);
	}
	ret |= evbuffer_add(out, " ", 1);
	ret |= mime_write_nstring_nolf(out, vals[E_IN_REPLY_TO]);
	ret |= evbuffer_add(out, " ", 1);
	ret |= mime_write_nstring_nolf(out, vals[E_MESSAGE_ID]);
done:
	for (int k = 0; k < E_COUNT; k++) {
		free(vals[k]);
		addrs_free(&addrs[k]);
	}
	return ret != 0 ? -1 : 0;
}
