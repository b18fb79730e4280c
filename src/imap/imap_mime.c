/*
 * imap_mime.c: a byte-offset MIME parser (RFC 2045, RFC 2046 multipart and
 * message/rfc822, RFC 2231 parameter continuations) producing the tree
 * IMAP needs: BODY/BODYSTRUCTURE (RFC 3501 7.4.2) and BODY[section]
 * (RFC 3501 6.4.5) byte-exact against the message as served. Boundaries,
 * sizes and line counts follow Dovecot's message-parser so that both
 * servers answer the same on the same Maildir (docs/imap-storage.md).
 * Trusts nothing: hostile nesting and part counts are bounded.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "imap/imap_mime_private.h"

#define MIME_DEPTH_MAX 50       /* nested multipart/message levels */
#define MIME_PARTS_MAX 5000     /* parts in one message */
#define MIME_FIELDS_MAX 2000    /* header fields in one part */

struct boundary {
	const char *b;
	size_t len;
	const struct mime_part *owner;
};

struct parser {
	struct imap_mime *m;
	struct boundary stack[MIME_DEPTH_MAX + 1];
	size_t depth;
	bool nomem;
};

/* Where a part stopped: at a boundary line (owner != NULL) or at the end. */
struct stop {
	size_t line;                   /* start of the boundary line (or len) */
	size_t after;                  /* after the boundary line */
	const struct mime_part *owner;
	bool close;                    /* "--boundary--" */
	bool first;                    /* first line of what was scanned: the
	                                  newline before it is not the boundary's */
};

/* --- small string helpers ----------------------------------------------- */

static char *
xstrndup(struct parser *p, const char *s, size_t n)
{
	char *r = malloc(n + 1);

	if (r == NULL) {
		p->nomem = true;
		return NULL;
	}
	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

static size_t
line_end(const char *msg, size_t len, size_t pos)
{
	const char *nl = memchr(msg + pos, '\n', len - pos);

	return nl != NULL ? (size_t)(nl - msg) + 1 : len;
}

/* Does the line at pos start a boundary on the stack? Longest match wins
 * (RFC 2046 5.1.1: only the prefix must match, Dovecot does the same). */
static bool
boundary_at(const struct parser *p, size_t pos, struct stop *st)
{
	const char *msg = p->m->msg;
	size_t len = p->m->len, le;
	const struct boundary *best = NULL;

	if (p->depth == 0 || pos + 2 > len || msg[pos] != '-' || msg[pos + 1] != '-')
		return false;
	le = line_end(msg, len, pos);
	for (size_t i = 0; i < p->depth; i++) {
		const struct boundary *b = &p->stack[i];

		if (pos + 2 + b->len <= le && memcmp(msg + pos + 2, b->b, b->len) == 0 &&
		    (best == NULL || best->len < b->len))
			best = b;
	}
	if (best == NULL)
		return false;
	st->line = pos;
	st->after = le;
	st->owner = best->owner;
	st->close = pos + 2 + best->len + 2 <= le &&
	    memcmp(msg + pos + 2 + best->len, "--", 2) == 0;
	st->first = false;
	return true;
}

/* The next boundary line at or after pos (pos at a line start). */
static void
find_boundary(const struct parser *p, size_t pos, struct stop *st)
{
	const char *msg = p->m->msg;
	size_t len = p->m->len, start = pos;

	while (pos < len) {
		if (boundary_at(p, pos, st)) {
			st->first = pos == start;
			return;
		}
		pos = line_end(msg, len, pos);
	}
	st->line = st->after = len;
	st->owner = NULL;
	st->close = false;
	st->first = false;
}

/* The end of content that started at start and stops at boundary line ls:
 * the newline before the boundary belongs to the boundary (RFC 2046),
 * except on the first line scanned (right after another boundary line). */
static size_t
content_end(const char *msg, size_t start, size_t ls, bool at_boundary)
{
	size_t end = ls;

	if (!at_boundary || ls <= start)
		return ls;
	if (end > start && msg[end - 1] == '\n') {
		end--;
		if (end > start && msg[end - 1] == '\r')
			end--;
	}
	return end;
}

/* --- header fields ------------------------------------------------------ */

char *
mime_field_value(const struct imap_mime *m, const struct mime_field *f)
{
	const char *v = m->msg + f->value_off;
	size_t nuls = 0, o = 0;
	char *r;

	for (size_t i = 0; i < f->value_len; i++)
		nuls += v[i] == '\0';
	if ((r = malloc(f->value_len + 2 * nuls + 1)) == NULL)
		return NULL;
	/* NUL bytes would cut C strings short: U+FFFD, as Dovecot's parser */
	for (size_t i = 0; i < f->value_len; i++) {
		if (v[i] == '\0') {
			memcpy(r + o, "\xef\xbf\xbd", 3);
			o += 3;
		} else {
			r[o++] = v[i];
		}
	}
	r[o] = '\0';
	return r;
}

const struct mime_field *
mime_field_find(const struct imap_mime *m, const struct mime_part *p, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < p->nfields; i++) {
		const struct mime_field *f = &p->fields[i];

		if (f->name_len == nl && strncasecmp(m->msg + f->name_off, name, nl) == 0)
			return f;
	}
	return NULL;
}

static bool
field_is(const struct imap_mime *m, const struct mime_field *f, const char *name)
{
	size_t nl = strlen(name);

	return f->name_len == nl && strncasecmp(m->msg + f->name_off, name, nl) == 0;
}

/* --- RFC 822 lexical helpers for Content-* values ---------------------- */

struct lex {
	const char *s, *end;
};

static void
skip_lwsp(struct lex *l)
{
	while (l->s < l->end) {
		if (*l->s == ' ' || *l->s == '\t' || *l->s == '\r' || *l->s == '\n') {
			l->s++;
		} else if (*l->s == '(') {
			int depth = 0;

			while (l->s < l->end) {
				if (*l->s == '\\' && l->s + 1 < l->end) {
					l->s += 2;
					continue;
				}
				if (*l->s == '(')
					depth++;
				else if (*l->s == ')' && --depth == 0) {
					l->s++;
					break;
				}
				l->s++;
			}
		} else {
			break;
		}
	}
}

static bool
is_token_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* A MIME token (RFC 2045 5.1); 8-bit bytes are allowed like Dovecot does. */
static size_t
lex_token(struct lex *l, const char **tok_r)
{
	const char *start = l->s;

	while (l->s < l->end && (is_token_char((unsigned char)*l->s) ||
	    (unsigned char)*l->s >= 0x80))
		l->s++;
	*tok_r = start;
	return (size_t)(l->s - start);
}

/* A quoted-string's content, unescaped, appended to a malloc'd string. */
static char *
lex_quoted(struct parser *p, struct lex *l)
{
	size_t cap = (size_t)(l->end - l->s) + 1, o = 0;
	char *r = malloc(cap);

	if (r == NULL) {
		p->nomem = true;
		return NULL;
	}
	l->s++;  /* the opening quote */
	while (l->s < l->end && *l->s != '"') {
		if (*l->s == '\\' && l->s + 1 < l->end)
			l->s++;
		if (*l->s == '\r' || *l->s == '\n') {  /* folding inside quotes */
			l->s++;
			continue;
		}
		r[o++] = *l->s++;
	}
	if (l->s < l->end)
		l->s++;
	r[o] = '\0';
	return r;
}

/* RFC 2231: collect "name*N[*]" segments and merge them, after the plain
 * parameters, as Dovecot's rfc2231_parse() does. Values stay encoded. */
struct rawparam {
	char *name;       /* base name */
	char *value;
	int index;        /* -1: no "*N" */
	bool extended;    /* trailing '*': charset'lang'%XX value */
};

static int
cmp_rawparam(const void *a, const void *b)
{
	const struct rawparam *x = a, *y = b;
	int c;

	if (x->name == NULL || y->name == NULL)
		return (x->name != NULL) - (y->name != NULL);
	c = strcasecmp(x->name, y->name);

	return c != 0 ? c : x->index - y->index;
}

static void
params_parse(struct parser *p, struct lex *l, struct mime_param **out, size_t *nout)
{
	struct rawparam raw[64];
	size_t nraw = 0;
	struct mime_param *res;
	size_t nres = 0;

	for (;;) {
		const char *tok;
		size_t tl;
		char *name, *value, *star;

		skip_lwsp(l);
		if (l->s >= l->end || *l->s != ';')
			break;
		l->s++;
		skip_lwsp(l);
		if ((tl = lex_token(l, &tok)) == 0)
			break;
		name = xstrndup(p, tok, tl);
		skip_lwsp(l);
		if (name == NULL || l->s >= l->end || *l->s != '=') {
			free(name);
			break;
		}
		l->s++;
		skip_lwsp(l);
		if (l->s < l->end && *l->s == '"') {
			value = lex_quoted(p, l);
		} else if (l->s < l->end && *l->s == '=') {
			/* name==?utf-8?b?...?= (unquoted encoded word): to ';' or blank */
			const char *start = l->s;

			while (l->s < l->end && *l->s != ';' && *l->s != ' ' && *l->s != '\t' &&
			    *l->s != '\r' && *l->s != '\n')
				l->s++;
			value = xstrndup(p, start, (size_t)(l->s - start));
		} else {
			tl = lex_token(l, &tok);
			value = xstrndup(p, tok, tl);
		}
		if (value == NULL || nraw == sizeof(raw) / sizeof(raw[0])) {
			free(name);
			free(value);
			break;
		}
		raw[nraw].name = name;
		raw[nraw].value = value;
		raw[nraw].index = -1;
		raw[nraw].extended = false;
		if ((star = strchr(name, '*')) != NULL) {
			char *q = star + 1;

			if (*q == '\0') {
				raw[nraw].extended = true;
				raw[nraw].index = 0;
			} else if (isdigit((unsigned char)*q)) {
				long idx = strtol(q, &q, 10);

				raw[nraw].index = idx > 1000 ? 1000 : (int)idx;
				if (*q == '*') {
					raw[nraw].extended = true;
					q++;
				}
			}
			if (*q == '\0')
				*star = '\0';
			else
				raw[nraw].index = -1;  /* not RFC 2231 after all: keep as is */
		}
		nraw++;
	}
	*out = NULL;
	*nout = 0;
	if (nraw == 0)
		return;
	if ((res = calloc(nraw, sizeof(*res))) == NULL) {
		p->nomem = true;
		goto done;
	}
	/* plain parameters first, in order */
	for (size_t i = 0; i < nraw; i++) {
		if (raw[i].index != -1)
			continue;
		res[nres].name = raw[i].name;
		res[nres].value = raw[i].value;
		raw[i].name = raw[i].value = NULL;
		nres++;
	}
	/* then the merged continuations */
	qsort(raw, nraw, sizeof(raw[0]), cmp_rawparam);
	for (size_t i = 0; i < nraw; ) {
		size_t j = i, total = 0, o = 0;
		bool ext = false;
		char *v, *n;

		if (raw[i].name == NULL || raw[i].index == -1) {
			i++;
			continue;
		}
		while (j < nraw && raw[j].name != NULL && raw[j].index != -1 &&
		    strcasecmp(raw[j].name, raw[i].name) == 0) {
			total += strlen(raw[j].value);
			ext |= raw[j].extended && raw[j].index == 0;
			j++;
		}
		v = malloc(total + 1);
		n = malloc(strlen(raw[i].name) + 2);
		if (v == NULL || n == NULL) {
			free(v);
			free(n);
			p->nomem = true;
			break;
		}
		for (size_t k = i; k < j; k++) {
			size_t vl = strlen(raw[k].value);

			memcpy(v + o, raw[k].value, vl);
			o += vl;
		}
		v[o] = '\0';
		sprintf(n, "%s%s", raw[i].name, ext ? "*" : "");
		res[nres].name = n;
		res[nres].value = v;
		nres++;
		i = j;
	}
	*out = res;
	*nout = nres;
done:
	for (size_t i = 0; i < nraw; i++) {
		free(raw[i].name);
		free(raw[i].value);
	}
}

static void
params_free(struct mime_param *ps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ps[i].name);
		free(ps[i].value);
	}
	free(ps);
}

static void
parse_content_type(struct parser *p, struct mime_part *part, const char *v, size_t len)
{
	struct lex l = { v, v + len };
	const char *tok;
	size_t tl;

	/* Broken values come out as Dovecot writes them: "text" alone keeps
	 * its type (subtype ""), anything else broken is "" "". */
	skip_lwsp(&l);
	tl = lex_token(&l, &tok);
	if (tl == 0)
		goto broken;
	part->type = xstrndup(p, tok, tl);
	skip_lwsp(&l);
	if (l.s >= l.end)
		return;
	if (*l.s != '/')
		goto broken;
	l.s++;
	skip_lwsp(&l);
	tl = lex_token(&l, &tok);
	if (tl == 0)
		goto broken;
	part->subtype = xstrndup(p, tok, tl);
	skip_lwsp(&l);
	if (l.s < l.end && *l.s != ';')
		goto broken;
	params_parse(p, &l, &part->params, &part->nparams);
	return;
broken:
	free(part->type);
	free(part->subtype);
	part->type = xstrndup(p, "", 0);
	part->subtype = xstrndup(p, "", 0);
}

static void
parse_disposition(struct parser *p, struct mime_part *part, const char *v, size_t len)
{
	struct lex l = { v, v + len };
	const char *tok;
	size_t tl;

	skip_lwsp(&l);
	if ((tl = lex_token(&l, &tok)) == 0)
		return;
	part->disposition = xstrndup(p, tok, tl);
	params_parse(p, &l, &part->dparams, &part->ndparams);
}

static void
parse_encoding(struct parser *p, struct mime_part *part, const char *v, size_t len)
{
	struct lex l = { v, v + len };
	const char *tok;
	size_t tl;

	skip_lwsp(&l);
	tl = lex_token(&l, &tok);
	skip_lwsp(&l);
	if (tl > 0 && l.s == l.end)
		part->encoding = xstrndup(p, tok, tl);
}

static void
parse_language(struct parser *p, struct mime_part *part, const char *v, size_t len)
{
	struct lex l = { v, v + len };
	char *langs[32];
	size_t n = 0;

	skip_lwsp(&l);
	while (l.s < l.end && n < 31) {
		const char *start = l.s;

		/* an atom: anything but specials and blanks */
		while (l.s < l.end && (unsigned char)*l.s > ' ' &&
		    strchr("()<>@,;:\\\".[]", *l.s) == NULL)
			l.s++;
		if (l.s == start)
			break;
		if ((langs[n] = xstrndup(p, start, (size_t)(l.s - start))) == NULL)
			break;
		n++;
		skip_lwsp(&l);
		if (l.s >= l.end || *l.s != ',')
			break;
		l.s++;
		skip_lwsp(&l);
	}
	if (n == 0)
		return;
	if ((part->language = calloc(n + 1, sizeof(char *))) == NULL) {
		p->nomem = true;
		for (size_t i = 0; i < n; i++)
			free(langs[i]);
		return;
	}
	memcpy(part->language, langs, n * sizeof(char *));
}

static void
content_clear(struct mime_part *part)
{
	free(part->type);
	free(part->subtype);
	params_free(part->params, part->nparams);
	free(part->id);
	free(part->description);
	free(part->encoding);
	free(part->md5);
	free(part->location);
	free(part->disposition);
	params_free(part->dparams, part->ndparams);
	if (part->language != NULL) {
		for (size_t i = 0; part->language[i] != NULL; i++)
			free(part->language[i]);
		free(part->language);
	}
	part->type = part->subtype = part->id = part->description = part->encoding = NULL;
	part->md5 = part->location = part->disposition = NULL;
	part->params = part->dparams = NULL;
	part->nparams = part->ndparams = 0;
	part->language = NULL;
}

/* Content-* headers into part (the first of each counts). */
static void
parse_content_fields(struct parser *p, struct mime_part *part)
{
	const struct imap_mime *m = p->m;
	bool seen_ct = false, is_mime = (part->flags & MIME_IS_MIME) != 0;

	for (size_t i = 0; i < part->nfields && !p->nomem; i++) {
		const struct mime_field *f = &part->fields[i];
		const char *v = m->msg + f->value_off;
		size_t vl = f->value_len;
		char *val;

		if (field_is(m, f, "MIME-Version")) {
			is_mime = true;
			continue;
		}
		if (f->name_len < 8 || strncasecmp(m->msg + f->name_off, "Content-", 8) != 0)
			continue;
		if (field_is(m, f, "Content-Type")) {
			is_mime = true;
			if (!seen_ct)
				parse_content_type(p, part, v, vl);
			seen_ct = true;
		} else if (field_is(m, f, "Content-Transfer-Encoding")) {
			if (part->encoding == NULL)
				parse_encoding(p, part, v, vl);
		} else if (field_is(m, f, "Content-Disposition")) {
			if (part->disposition == NULL)
				parse_disposition(p, part, v, vl);
		} else if (field_is(m, f, "Content-Language")) {
			if (part->language == NULL)
				parse_language(p, part, v, vl);
		} else {
			char **slot = field_is(m, f, "Content-ID") ? &part->id :
			    field_is(m, f, "Content-Description") ? &part->description :
			    field_is(m, f, "Content-MD5") ? &part->md5 :
			    field_is(m, f, "Content-Location") ? &part->location : NULL;

			if (slot != NULL && *slot == NULL) {
				if ((val = mime_field_value(m, f)) == NULL)
					p->nomem = true;
				*slot = val;
			}
		}
	}
	if (!is_mime) {
		/* no MIME-Version and no Content-Type: not MIME, forget Content-* */
		content_clear(part);
		seen_ct = false;
	} else {
		part->flags |= MIME_IS_MIME;
	}
	if (seen_ct && part->type != NULL) {
		if (part->subtype != NULL && strcasecmp(part->type, "message") == 0 &&
		    strcasecmp(part->subtype, "rfc822") == 0)
			part->flags |= MIME_RFC822;
		else if (strcasecmp(part->type, "text") == 0)
			part->flags |= MIME_TEXT;
		else if (strcasecmp(part->type, "multipart") == 0) {
			part->flags |= MIME_MULTIPART;
			if (part->subtype != NULL && strcasecmp(part->subtype, "digest") == 0)
				part->flags |= MIME_DIGEST;
		}
	} else if (part->parent != NULL && (part->parent->flags & MIME_DIGEST)) {
		part->flags |= MIME_RFC822;  /* RFC 2046 5.1.5 */
	} else {
		part->flags |= MIME_TEXT;
	}
}

/* Header block from pos: fields, and where it ends (blank line, a boundary
 * line of an enclosing multipart, or the end). Returns the body start;
 * *stop_r set when a boundary ended it. */
static size_t
parse_header(struct parser *p, struct mime_part *part, size_t pos, struct stop *stop_r,
    bool *stopped_r)
{
	const char *msg = p->m->msg;
	size_t len = p->m->len, cap = 0;

	*stopped_r = false;
	part->hdr_off = pos;
	while (pos < len) {
		size_t le = line_end(msg, len, pos), colon, name_end, vstart, fend;
		struct mime_field *f;

		if (msg[pos] == '\n' || (msg[pos] == '\r' && pos + 1 < len && msg[pos + 1] == '\n')) {
			pos = le;  /* the blank line */
			part->hdr_len = pos - part->hdr_off;
			part->eoh = true;
			return pos;
		}
		if (boundary_at(p, pos, stop_r)) {
			*stopped_r = true;
			stop_r->first = pos == part->hdr_off;
			part->hdr_len = content_end(msg, part->hdr_off, pos, true) - part->hdr_off;
			return part->hdr_off + part->hdr_len;
		}
		/* the field: this line and its continuations */
		fend = le;
		while (fend < len && (msg[fend] == ' ' || msg[fend] == '\t'))
			fend = line_end(msg, len, fend);
		for (colon = pos; colon < le && msg[colon] != ':'; colon++)
			;
		name_end = colon;
		while (name_end > pos && (msg[name_end - 1] == ' ' || msg[name_end - 1] == '\t'))
			name_end--;
		if (part->nfields < MIME_FIELDS_MAX) {
			if (part->nfields == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct mime_field *nf = realloc(part->fields, ncap * sizeof(*nf));

				if (nf == NULL) {
					p->nomem = true;
					break;
				}
				part->fields = nf;
				cap = ncap;
			}
			f = &part->fields[part->nfields++];
			f->name_off = pos;
			if (colon < le) {
				f->name_len = name_end - pos;
				vstart = colon + 1;
				while (vstart < fend && (msg[vstart] == ' ' || msg[vstart] == '\t'))
					vstart++;
			} else {
				/* no colon: Dovecot keeps it as a field without value */
				f->name_len = content_end(msg, pos, le, true) - pos;
				vstart = pos + f->name_len;
			}
			f->value_off = vstart;
			f->value_len = content_end(msg, vstart, fend, true) - vstart;
			if (fend == len && (fend == 0 || msg[fend - 1] != '\n'))
				f->value_len = fend - vstart;
			if (colon >= le)
				f->value_len = 0;
		}
		pos = fend;
	}
	part->hdr_len = pos - part->hdr_off;
	return pos;
}

static void
body_stats(struct imap_mime *m, struct mime_part *part, size_t end)
{
	const char *msg = m->msg;

	part->body_len = end > part->body_off ? end - part->body_off : 0;
	part->body_vsize = part->body_len;
	part->body_lines = 0;
	for (size_t i = part->body_off; i < part->body_off + part->body_len; i++) {
		if (msg[i] == '\n') {
			part->body_lines++;
			if (i == part->body_off || msg[i - 1] != '\r')
				part->body_vsize++;
		}
	}
}

static struct mime_part *
part_new(struct parser *p, struct mime_part *parent)
{
	struct mime_part *part = calloc(1, sizeof(*part));

	if (part == NULL) {
		p->nomem = true;
		return NULL;
	}
	part->parent = parent;
	p->m->nparts++;
	if (parent != NULL) {
		struct mime_part **pp = &parent->children;

		while (*pp != NULL)
			pp = &(*pp)->next;
		*pp = part;
	}
	return part;
}

/* Parse the part starting at pos (its header); st_r: where it stopped. */
static void
parse_part(struct parser *p, struct mime_part *part, size_t pos, struct stop *st_r)
{
	struct imap_mime *m = p->m;
	bool stopped;
	struct stop st;

	part->body_off = parse_header(p, part, pos, &st, &stopped);
	parse_content_fields(p, part);
	if (stopped) {
		/* a boundary inside the header: no body */
		part->body_len = 0;
		part->body_vsize = 0;
		*st_r = st;
		return;
	}
	if ((part->flags & MIME_MULTIPART) && p->depth < MIME_DEPTH_MAX &&
	    m->nparts < MIME_PARTS_MAX) {
		const char *b = NULL;

		for (size_t i = 0; i < part->nparams; i++) {
			if (strcasecmp(part->params[i].name, "boundary") == 0) {
				b = part->params[i].value;
				break;
			}
		}
		if (b != NULL && b[0] != '\0') {
			size_t bottom = p->depth;

			p->stack[p->depth].b = b;
			p->stack[p->depth].len = strlen(b);
			p->stack[p->depth].owner = part;
			p->depth++;
			find_boundary(p, part->body_off, &st);
			/* children while the boundary found is ours and not closing */
			while (st.owner == part && !st.close && !p->nomem) {
				struct mime_part *child;

				if (m->nparts >= MIME_PARTS_MAX) {
					find_boundary(p, st.after, &st);
					continue;
				}
				if ((child = part_new(p, part)) == NULL)
					break;
				child->flags |= MIME_IS_MIME;
				parse_part(p, child, st.after, &st);
			}
			if (st.owner == part && st.close) {
				/* the epilogue: up to an outer boundary or the end */
				p->depth = bottom;
				find_boundary(p, st.after, &st);
			}
			p->depth = bottom;
			body_stats(m, part, content_end(m->msg, part->body_off, st.line,
			    st.owner != NULL && !st.first));
			*st_r = st;
			return;
		}
	}
	if ((part->flags & MIME_RFC822) && p->depth < MIME_DEPTH_MAX && m->nparts < MIME_PARTS_MAX) {
		struct mime_part *child = part_new(p, part);

		if (child != NULL) {
			parse_part(p, child, part->body_off, &st);
			body_stats(m, part, content_end(m->msg, part->body_off, st.line,
			    st.owner != NULL && !st.first));
			*st_r = st;
			return;
		}
	}
	find_boundary(p, part->body_off, &st);
	body_stats(m, part, content_end(m->msg, part->body_off, st.line,
	    st.owner != NULL && !st.first));
	*st_r = st;
}

static void
part_free(struct mime_part *part)
{
	while (part != NULL) {
		struct mime_part *next = part->next;

		part_free(part->children);
		content_clear(part);
		free(part->fields);
		free(part);
		part = next;
	}
}

struct imap_mime *
imap_mime_parse(const char *msg, size_t len)
{
	struct imap_mime *m = calloc(1, sizeof(*m));
	struct parser p = { .m = m };
	struct stop st;

	if (m == NULL)
		return NULL;
	m->msg = msg;
	m->len = len;
	if ((m->root = part_new(&p, NULL)) == NULL) {
		free(m);
		return NULL;
	}
	parse_part(&p, m->root, 0, &st);
	/* the root ends at the end of the message whatever stopped it */
	if (st.line < len)
		body_stats(m, m->root, len);
	if (p.nomem) {
		imap_mime_free(&m);
		return NULL;
	}
	return m;
}

void
imap_mime_free(struct imap_mime **mp)
{
	struct imap_mime *m = *mp;

	if (m == NULL)
		return;
	part_free(m->root);
	free(m);
	*mp = NULL;
}

/* --- BODY / BODYSTRUCTURE (RFC 3501 7.4.2, as Dovecot writes it) --------- */

static int
write_params(struct evbuffer *out, const struct mime_param *ps, size_t n, bool default_charset)
{
	bool seen = false;
	int ret = 0;

	if (!default_charset && n == 0)
		return evbuffer_add(out, "NIL", 3);
	ret |= evbuffer_add(out, "(", 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			ret |= evbuffer_add(out, " ", 1);
		seen |= strcasecmp(ps[i].name, "charset") == 0;
		ret |= mime_write_nstring(out, ps[i].name);
		ret |= evbuffer_add(out, " ", 1);
		ret |= mime_write_nstring(out, ps[i].value);
	}
	if (default_charset && !seen)
		ret |= evbuffer_add_printf(out, "%s\"charset\" \"us-ascii\"", n > 0 ? " " : "") < 0;
	ret |= evbuffer_add(out, ")", 1);
	return ret;
}

static int
write_common(struct evbuffer *out, const struct mime_part *part)
{
	int ret = 0;

	ret |= evbuffer_add(out, " ", 1);
	if (part->disposition == NULL) {
		ret |= evbuffer_add(out, "NIL", 3);
	} else {
		ret |= evbuffer_add(out, "(", 1);
		ret |= mime_write_nstring(out, part->disposition);
		ret |= evbuffer_add(out, " ", 1);
		ret |= write_params(out, part->dparams, part->ndparams, false);
		ret |= evbuffer_add(out, ")", 1);
	}
	ret |= evbuffer_add(out, " ", 1);
	if (part->language == NULL) {
		ret |= evbuffer_add(out, "NIL", 3);
	} else {
		ret |= evbuffer_add(out, "(", 1);
		for (size_t i = 0; part->language[i] != NULL; i++) {
			if (i > 0)
				ret |= evbuffer_add(out, " ", 1);
			ret |= mime_write_nstring(out, part->language[i]);
		}
		ret |= evbuffer_add(out, ")", 1);
	}
	ret |= evbuffer_add(out, " ", 1);
	ret |= mime_write_nstring_nolf(out, part->location);
	return ret;
}

static int write_part(const struct imap_mime *m, const struct mime_part *part, bool ext,
    struct evbuffer *out);

static int
write_multipart(const struct imap_mime *m, const struct mime_part *part, bool ext,
    struct evbuffer *out)
{
	int ret = 0;

	if (part->children == NULL) {
		/* no parts: Dovecot writes one empty text/plain */
		ret |= evbuffer_add_printf(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		    "\"7bit\" 0 0%s)", ext ? " NIL NIL NIL NIL" : "") < 0;
	}
	for (const struct mime_part *c = part->children; c != NULL; c = c->next) {
		ret |= evbuffer_add(out, "(", 1);
		ret |= write_part(m, c, ext, out);
		ret |= evbuffer_add(out, ")", 1);
	}
	ret |= evbuffer_add(out, " ", 1);
	ret |= mime_write_nstring(out, part->subtype != NULL ? part->subtype : "x-unknown");
	if (!ext)
		return ret;
	ret |= evbuffer_add(out, " ", 1);
	ret |= write_params(out, part->params, part->nparams, false);
	ret |= write_common(out, part);
	return ret;
}

static int
write_part(const struct imap_mime *m, const struct mime_part *part, bool ext,
    struct evbuffer *out)
{
	bool text;
	int ret = 0;

	if (part->flags & MIME_MULTIPART)
		return write_multipart(m, part, ext, out);
	if (part->flags & MIME_RFC822) {
		ret |= evbuffer_add(out, "\"message\" \"rfc822\"", 18);
		text = false;
	} else if (part->type == NULL) {
		ret |= evbuffer_add(out, "\"text\" \"plain\"", 14);
		text = true;
	} else {
		text = strcasecmp(part->type, "text") == 0;
		ret |= mime_write_nstring(out, part->type);
		ret |= evbuffer_add(out, " ", 1);
		/* "Content-Type: text" (no subtype): Dovecot writes "" */
		ret |= mime_write_nstring(out, part->subtype != NULL ? part->subtype : "");
	}
	ret |= evbuffer_add(out, " ", 1);
	ret |= write_params(out, part->params, part->nparams, text);
	ret |= evbuffer_add(out, " ", 1);
	ret |= mime_write_nstring_nolf(out, part->id);
	ret |= evbuffer_add(out, " ", 1);
	ret |= mime_write_nstring_nolf(out, part->description);
	ret |= evbuffer_add(out, " ", 1);
	if (part->encoding != NULL)
		ret |= mime_write_nstring(out, part->encoding);
	else
		ret |= evbuffer_add(out, "\"7bit\"", 6);
	ret |= evbuffer_add_printf(out, " %llu", (unsigned long long)part->body_vsize) < 0;
	if (text) {
		ret |= evbuffer_add_printf(out, " %u", part->body_lines) < 0;
	} else if ((part->flags & MIME_RFC822) && part->children != NULL) {
		ret |= evbuffer_add(out, " (", 2);
		ret |= mime_write_envelope(m, part->children, out);
		ret |= evbuffer_add(out, ") (", 3);
		ret |= write_part(m, part->children, ext, out);
		ret |= evbuffer_add_printf(out, ") %u", part->body_lines) < 0;
	} else if (part->flags & MIME_RFC822) {
		/* too deep to parse: an empty message */
		ret |= evbuffer_add_printf(out, " (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
		    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0%s) %u",
		    ext ? " NIL NIL NIL NIL" : "", part->body_lines) < 0;
	}
	if (!ext)
		return ret;
	ret |= evbuffer_add(out, " ", 1);
	ret |= mime_write_nstring_nolf(out, part->md5);
	ret |= write_common(out, part);
	return ret;
}

int
imap_mime_bodystructure(const struct imap_mime *m, bool extended, struct evbuffer *out)
{
	int ret = 0;

	ret |= evbuffer_add(out, "(", 1);
	ret |= write_part(m, m->root, extended, out);
	ret |= evbuffer_add(out, ")", 1);
	return ret != 0 ? -1 : 0;
}

int
imap_mime_envelope(const struct imap_mime *m, struct evbuffer *out)
{
	int ret = 0;

	ret |= evbuffer_add(out, "(", 1);
	ret |= mime_write_envelope(m, m->root, out);
	ret |= evbuffer_add(out, ")", 1);
	return ret != 0 ? -1 : 0;
}

/* --- BODY[section] (RFC 3501 6.4.5) -------------------------------------- */

/* Message bytes as served: NUL cannot travel in a literal, Dovecot sends
 * 0x80 instead (RFC 3501 4.3; BINARY is not offered). */
static int
add_served(struct evbuffer *out, const char *s, size_t len)
{
	const char *nul;

	while (len > 0 && (nul = memchr(s, '\0', len)) != NULL) {
		size_t n = (size_t)(nul - s);

		if (evbuffer_add(out, s, n) == -1 || evbuffer_add(out, "\x80", 1) == -1)
			return -1;
		s += n + 1;
		len -= n + 1;
	}
	return len > 0 ? evbuffer_add(out, s, len) : 0;
}

/* The part a section path names, as Dovecot's imap-msgpart resolves it:
 * a message/rfc822 part is entered when the path goes on. */
static const struct mime_part *
section_part(const struct imap_mime *m, const struct imap_section *sec)
{
	const struct mime_part *part = m->root;

	for (size_t i = 0; i < sec->depth && part != NULL; i++) {
		uint32_t num = sec->part[i];
		bool more = i + 1 < sec->depth;

		if (part->flags & MIME_MULTIPART) {
			part = part->children;
			for (uint32_t k = 1; k < num && part != NULL; k++)
				part = part->next;
			if (num == 0)
				part = NULL;
		} else if (num != 1 || (more && !(part->flags & MIME_RFC822))) {
			part = NULL;
		}
		if (part != NULL && (part->flags & MIME_RFC822) && more)
			part = part->children;
	}
	return part;
}

static bool
field_listed(const struct imap_mime *m, const struct mime_field *f, const struct imap_section *sec)
{
	for (size_t i = 0; i < sec->nfields; i++) {
		size_t l = strlen(sec->fields[i]);

		if (l == f->name_len && strncasecmp(m->msg + f->name_off, sec->fields[i], l) == 0)
			return true;
	}
	return false;
}

/* The raw bytes of field i of part (its lines, newline included). */
static void
field_raw(const struct imap_mime *m, const struct mime_part *part, size_t i, size_t *off_r,
    size_t *len_r)
{
	const struct mime_field *f = &part->fields[i];
	size_t end = f->value_off + f->value_len;

	/* include the newline that ends the field */
	if (end < m->len && m->msg[end] == '\r' && end + 1 < m->len && m->msg[end + 1] == '\n')
		end += 2;
	else if (end < m->len && m->msg[end] == '\n')
		end += 1;
	*off_r = f->name_off;
	*len_r = end - f->name_off;
}

static int
write_fields(const struct imap_mime *m, const struct mime_part *part,
    const struct imap_section *sec, bool not, struct evbuffer *out)
{
	int ret = 0;

	for (size_t i = 0; i < part->nfields; i++) {
		size_t off, len;

		if (field_listed(m, &part->fields[i], sec) == not)
			continue;
		field_raw(m, part, i, &off, &len);
		ret |= add_served(out, m->msg + off, len);
		/* a last field without newline still ends with CRLF */
		if (!not && (len == 0 || m->msg[off + len - 1] != '\n'))
			ret |= evbuffer_add(out, "\r\n", 2);
	}
	/* Dovecot: HEADER.FIELDS always ends with the blank line, .NOT only
	 * when the message has one */
	if (!not || part->eoh)
		ret |= evbuffer_add(out, "\r\n", 2);
	return ret;
}

int
imap_mime_section(const struct imap_mime *m, const struct imap_section *sec, struct evbuffer *out)
{
	const struct mime_part *part;
	int ret = 0;

	if (sec->depth == 0) {
		part = m->root;
	} else {
		part = section_part(m, sec);
		if (part == NULL)
			return 0;
		/* N.HEADER / N.TEXT / N.HEADER.FIELDS: the message inside part N */
		if (sec->kind != IMAP_SECTION_ALL && sec->kind != IMAP_SECTION_MIME) {
			if (!(part->flags & MIME_RFC822) || part->children == NULL)
				return 0;
			part = part->children;
		}
	}
	switch (sec->kind) {
	case IMAP_SECTION_ALL:
		if (sec->depth == 0)
			ret = add_served(out, m->msg, m->len);
		else
			ret = add_served(out, m->msg + part->body_off, part->body_len);
		break;
	case IMAP_SECTION_HEADER:
	case IMAP_SECTION_MIME:
		ret = add_served(out, m->msg + part->hdr_off, part->hdr_len);
		break;
	case IMAP_SECTION_TEXT:
		ret = add_served(out, m->msg + part->body_off, part->body_len);
		break;
	case IMAP_SECTION_HEADER_FIELDS:
		ret = write_fields(m, part, sec, false, out);
		break;
	case IMAP_SECTION_HEADER_FIELDS_NOT:
		ret = write_fields(m, part, sec, true, out);
		break;
	}
	return ret != 0 ? -1 : 0;
}
