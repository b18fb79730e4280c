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

/* The parser follows the structure of Dovecot's message-address.c (with
 * MESSAGE_ADDRESS_PARSE_FLAG_FILL_MISSING) so that broken addresses come
 * out the same: MISSING_MAILBOX/MISSING_DOMAIN fill-ins, a quoted name
 * without address as a name, a comment after an addr-spec as the name, and
 * the list ending where an address is not followed by ','. */

struct addr {
	char *name, *route, *mailbox, *domain;
};

struct addrs {
	struct addr *a;
	size_t n, cap;
	bool nomem;
};

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
sb_dup(struct sbuf *b)
{
	return strdup(b->s != NULL ? b->s : "");
}

struct aparser {
	const char *s, *end;
	struct sbuf comment;     /* the last comment */
	struct sbuf str;
	struct addr cur;
	struct addrs *out;
	bool invalid;
};

static bool
is_atext(unsigned char c)
{
	/* 8-bit bytes count as atext (raw UTF-8 names), as in Dovecot */
	return c > ' ' && c != 0x7f && strchr("()<>@,;:\\\".[]", c) == NULL;
}

/* Whitespace and comments: 1 data left, 0 at the end, -1 broken comment. */
static int
skip_lwsp(struct aparser *p)
{
	while (p->s < p->end) {
		if (*p->s == ' ' || *p->s == '\t' || *p->s == '\r' || *p->s == '\n') {
			p->s++;
			continue;
		}
		if (*p->s != '(')
			return 1;
		p->comment.len = 0;
		if (p->comment.s != NULL)
			p->comment.s[0] = '\0';
		p->s++;
		for (int depth = 1; ; ) {
			const char *start = p->s;

			while (p->s < p->end && *p->s != '(' && *p->s != ')' && *p->s != '\\' &&
			    *p->s != '\r' && *p->s != '\n')
				p->s++;
			sb_add(&p->comment, start, (size_t)(p->s - start));
			if (p->s >= p->end)
				return -1;
			if (*p->s == '\\' && p->s + 1 < p->end) {
				sb_add(&p->comment, p->s + 1, 1);
				p->s += 2;
				continue;
			}
			if (*p->s == '\r' || *p->s == '\n' || *p->s == '\\') {
				p->s++;
				continue;
			}
			if (*p->s == '(')
				depth++;
			else if (--depth == 0) {
				p->s++;
				break;
			}
			sb_add(&p->comment, p->s, 1);
			p->s++;
		}
	}
	return 0;
}

static int
parse_quoted(struct aparser *p, struct sbuf *b)
{
	p->s++;
	while (p->s < p->end && *p->s != '"') {
		if (*p->s == '\\' && p->s + 1 < p->end)
			p->s++;
		if (*p->s != '\r' && *p->s != '\n')
			sb_add(b, p->s, 1);
		p->s++;
	}
	if (p->s >= p->end)
		return -1;
	p->s++;
	return skip_lwsp(p);
}

/* 1*(atext / ".") without a minimum length */
static int
parse_atom_or_dot(struct aparser *p, struct sbuf *b)
{
	const char *start = p->s;

	while (p->s < p->end && (is_atext((unsigned char)*p->s) || *p->s == '.'))
		p->s++;
	sb_add(b, start, (size_t)(p->s - start));
	if (p->s >= p->end)
		return 0;
	return skip_lwsp(p);
}

static int
parse_dot_atom(struct aparser *p, struct sbuf *b)
{
	const char *start;
	int ret;

	if (p->s >= p->end || !is_atext((unsigned char)*p->s))
		return -1;
	for (start = p->s++; p->s < p->end; ) {
		if (is_atext((unsigned char)*p->s)) {
			p->s++;
			continue;
		}
		sb_add(b, start, (size_t)(p->s - start));
		if ((ret = skip_lwsp(p)) <= 0)
			return ret;
		if (*p->s != '.')
			return 1;
		p->s++;
		sb_add(b, ".", 1);
		if ((ret = skip_lwsp(p)) <= 0)
			return ret;
		start = p->s;
	}
	sb_add(b, start, (size_t)(p->s - start));
	return 0;
}

static int
parse_phrase(struct aparser *p, struct sbuf *b)
{
	int ret;

	if (p->s >= p->end)
		return 0;
	if (*p->s == '.')
		return -1;
	for (;;) {
		if (*p->s == '"')
			ret = parse_quoted(p, b);
		else
			ret = parse_atom_or_dot(p, b);
		if (ret <= 0)
			return ret;
		if (!is_atext((unsigned char)*p->s) && *p->s != '"' && *p->s != '.')
			break;
		sb_add(b, " ", 1);
	}
	return 1;
}

/* "@" domain: dot-atom or [literal] */
static int
parse_domain_part(struct aparser *p, struct sbuf *b)
{
	int ret;

	p->s++;  /* '@' */
	if ((ret = skip_lwsp(p)) <= 0)
		return -1;
	if (*p->s == '[') {
		const char *start = p->s;

		while (p->s < p->end && *p->s != ']') {
			if (*p->s == '\\' && p->s + 1 < p->end)
				p->s++;
			p->s++;
		}
		if (p->s >= p->end)
			return -1;
		p->s++;
		sb_add(b, start, (size_t)(p->s - start));
		return skip_lwsp(p);
	}
	return parse_dot_atom(p, b);
}

static void
str_reset(struct sbuf *b)
{
	b->len = 0;
	if (b->s != NULL)
		b->s[0] = '\0';
}

static int
parse_local(struct aparser *p)
{
	int ret;

	str_reset(&p->str);
	if (*p->s == '"')
		ret = parse_quoted(p, &p->str);
	else
		ret = parse_dot_atom(p, &p->str);
	if (ret < 0)
		return -1;
	free(p->cur.mailbox);
	p->cur.mailbox = sb_dup(&p->str);
	return ret;
}

static int
parse_domain(struct aparser *p)
{
	int ret;

	str_reset(&p->str);
	if ((ret = parse_domain_part(p, &p->str)) < 0)
		return -1;
	free(p->cur.domain);
	p->cur.domain = sb_dup(&p->str);
	return ret;
}

static void
set(char **slot, const char *v)
{
	free(*slot);
	*slot = v != NULL ? strdup(v) : NULL;
}

static int
parse_angle(struct aparser *p)
{
	p->s++;  /* '<' */
	if (skip_lwsp(p) <= 0)
		return -1;
	if (*p->s == '@') {
		int ret = 0;

		/* obs-route: "@a,@b:" */
		str_reset(&p->str);
		for (;;) {
			if (p->s >= p->end) {
				ret = 0;
				break;
			}
			if (*p->s != '@') {
				ret = 1;
				break;
			}
			if (p->str.len > 0)
				sb_add(&p->str, ",", 1);
			sb_add(&p->str, "@", 1);
			if ((ret = parse_domain_part(p, &p->str)) <= 0)
				break;
			while (skip_lwsp(p) > 0 && *p->s == ',')
				p->s++;
		}
		if (ret > 0)
			set(&p->cur.route, p->str.s);
		if (ret > 0 && p->s < p->end && *p->s == ':') {
			p->s++;
		} else {
			set(&p->cur.route, "INVALID_ROUTE");
			if (p->s >= p->end)
				return -1;
		}
		if (skip_lwsp(p) <= 0)
			return -1;
	}
	if (*p->s != '>') {
		if (parse_local(p) <= 0)
			return -1;
		if (*p->s == '@' && parse_domain(p) <= 0)
			return -1;
	}
	if (*p->s != '>')
		return -1;
	p->s++;
	return skip_lwsp(p);
}

static int
parse_name_addr(struct aparser *p)
{
	str_reset(&p->str);
	if (parse_phrase(p, &p->str) <= 0 || *p->s != '<')
		return -1;
	set(&p->cur.name, p->str.len > 0 ? p->str.s : NULL);
	if (parse_angle(p) < 0) {
		set(&p->cur.domain, "SYNTAX_ERROR");
		p->invalid = true;
	}
	return p->s < p->end ? 1 : 0;
}

static int
parse_addr_spec(struct aparser *p)
{
	int ret, ret2 = -2;
	bool quoted = *p->s == '"';

	str_reset(&p->comment);
	ret = parse_local(p);
	if (ret <= 0)
		p->invalid = true;
	if (ret != 0 && p->s < p->end && *p->s == '@') {
		ret2 = parse_domain(p);
		if (ret2 <= 0)
			ret = ret2;
	}
	if (p->comment.len > 0) {
		set(&p->cur.name, p->comment.s);
	} else if (ret2 == -2) {
		/* "user" alone is a mailbox; followed by more words, a name */
		size_t before;

		sb_add(&p->str, " ", 1);
		before = p->str.len;
		(void)parse_phrase(p, &p->str);
		if (p->str.len != before) {
			set(&p->cur.mailbox, NULL);
			set(&p->cur.name, p->str.s);
		} else if (!quoted) {
			set(&p->cur.domain, "");
		} else if (p->cur.name == NULL && p->cur.mailbox != NULL) {
			/* a quoted string alone: a name without address */
			p->cur.name = p->cur.mailbox;
			p->cur.mailbox = NULL;
		}
		p->invalid = true;
		ret = -1;
	}
	return ret;
}

static void
add_address(struct aparser *p)
{
	struct addrs *as = p->out;

	if (as->n < ADDR_MAX && !as->nomem) {
		if (as->n == as->cap) {
			size_t cap = as->cap ? as->cap * 2 : 8;
			struct addr *na = realloc(as->a, cap * sizeof(*na));

			if (na == NULL)
				as->nomem = true;
			else {
				as->a = na;
				as->cap = cap;
			}
		}
		if (!as->nomem) {
			as->a[as->n++] = p->cur;
			memset(&p->cur, 0, sizeof(p->cur));
		}
	}
	free(p->cur.name);
	free(p->cur.route);
	free(p->cur.mailbox);
	free(p->cur.domain);
	memset(&p->cur, 0, sizeof(p->cur));
	p->invalid = false;
}

static void
add_fixed(struct aparser *p)
{
	if (p->cur.mailbox == NULL)
		set(&p->cur.mailbox, "MISSING_MAILBOX");
	if (p->cur.domain == NULL || p->cur.domain[0] == '\0')
		set(&p->cur.domain, "MISSING_DOMAIN");
	add_address(p);
}

static int
parse_mailbox(struct aparser *p)
{
	const char *start = p->s;
	int ret;

	if ((ret = parse_name_addr(p)) < 0) {
		p->s = start;
		set(&p->cur.name, NULL);
		ret = parse_addr_spec(p);
	}
	if (ret < 0)
		p->invalid = true;
	add_fixed(p);
	return ret;
}

static int
parse_group(struct aparser *p)
{
	int ret;

	str_reset(&p->str);
	if (parse_phrase(p, &p->str) <= 0 || *p->s != ':')
		return -1;
	p->s++;
	ret = skip_lwsp(p);
	set(&p->cur.mailbox, p->str.s != NULL ? p->str.s : "");
	add_address(p);
	if (ret > 0 && *p->s != ';') {
		for (;;) {
			(void)parse_mailbox(p);
			if (p->s >= p->end || *p->s != ',')
				break;
			p->s++;
			if (skip_lwsp(p) <= 0) {
				ret = -1;
				break;
			}
		}
	}
	if (ret >= 0) {
		if (p->s >= p->end || *p->s != ';')
			ret = -1;
		else {
			p->s++;
			ret = skip_lwsp(p);
		}
	}
	add_address(p);  /* the end of the group: all NIL */
	return ret == 0 ? 0 : 1;
}

static void
parse_address_list(const char *s, size_t len, struct addrs *as)
{
	struct aparser p = { .s = s, .end = s + len, .out = as };
	int ret;

	if (skip_lwsp(&p) > 0) {
		for (size_t n = 0; n < ADDR_MAX && !as->nomem; n++) {
			const char *start = p.s;

			if ((ret = parse_group(&p)) < 0) {
				p.s = start;
				set(&p.cur.mailbox, NULL);
				ret = parse_mailbox(&p);
			}
			if (ret == 0 || p.s >= p.end || *p.s != ',')
				break;
			p.s++;
			if ((ret = skip_lwsp(&p)) <= 0) {
				if (ret < 0)
					add_fixed(&p);
				break;
			}
		}
	}
	free(p.cur.name);
	free(p.cur.route);
	free(p.cur.mailbox);
	free(p.cur.domain);
	free(p.comment.s);
	free(p.str.s);
	if (p.comment.nomem || p.str.nomem)
		as->nomem = true;
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
