/*
 * imap_parse.c: the IMAP command parser and argument parsers (RFC 3501
 * section 9, RFC 7888 LITERAL+, RFC 5182 "$"). Pure and incremental: it is
 * fed whatever bytes arrived and keeps its place; a literal's size is checked
 * against the limit when it is announced, before a byte of it is stored.
 * Trusts nothing: lines, tokens, nesting and literals are all bounded.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap/imap_parse.h"
#include "imap/imap_store.h"

enum {
	PS_TAG = 0,       /* reading the tag */
	PS_NAME,          /* reading the command name */
	PS_ARG,           /* expecting an argument, ')' or the line end */
	PS_AFTER,         /* after an argument: SP, ')' or the line end */
	PS_ATOM,
	PS_QUOTED,
	PS_QUOTED_ESC,
	PS_LITLEN,        /* inside {...} */
	PS_LITEOL,        /* after '}': the CRLF */
	PS_LITDATA,
	PS_EOL,           /* saw CR, want LF */
	PS_SKIP,          /* after an error: skip to the end of the line */
};

bool
imap_arg_is_string(const struct imap_arg *a)
{
	return a != NULL && a->type != IMAP_ARG_LIST;
}

const char *
imap_arg_str(const struct imap_arg *a)
{
	return imap_arg_is_string(a) ? a->str : NULL;
}

bool
imap_arg_atom_is(const struct imap_arg *a, const char *word)
{
	return a != NULL && a->type == IMAP_ARG_ATOM && strcasecmp(a->str, word) == 0;
}

static void
arg_clear(struct imap_arg *a)
{
	free(a->str);
	a->str = NULL;
	for (size_t i = 0; i < a->n; i++)
		arg_clear(&a->list[i]);
	free(a->list);
	a->list = NULL;
	a->n = a->cap = 0;
}

int
imap_parser_init(struct imap_parser *p, const struct imap_parser_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->lim = *lim;
	p->root.type = IMAP_ARG_LIST;
	p->stack[0] = &p->root;
	return 0;
}

/* Forget the command (after it was returned, or after an error). */
static void
parser_reset(struct imap_parser *p)
{
	arg_clear(&p->root);
	p->root.type = IMAP_ARG_LIST;
	p->stack[0] = &p->root;
	p->depth = 0;
	p->state = PS_TAG;
	p->done = false;
	p->tag[0] = '\0';
	p->taglen = 0;
	p->name[0] = '\0';
	p->namelen = 0;
	p->toklen = 0;
	p->linelen = 0;
	p->literal_total = 0;
	p->literal_len = 0;
	p->literal_got = 0;
	p->literal_plus = false;
	p->literal_too_big = false;
	p->bracket = false;
	p->error = IMAP_PARSE_OK;
}

void
imap_parser_clear(struct imap_parser *p)
{
	arg_clear(&p->root);
	free(p->tok);
	p->tok = NULL;
	p->tokcap = 0;
}

static int
tok_add(struct imap_parser *p, char c)
{
	if (p->toklen + 2 > p->tokcap) {
		size_t cap = p->tokcap == 0 ? 64 : p->tokcap * 2;
		char *t = realloc(p->tok, cap);

		if (t == NULL)
			return -1;
		p->tok = t;
		p->tokcap = cap;
	}
	p->tok[p->toklen++] = c;
	return 0;
}

/* Append a new member to the innermost open list; NULL on ENOMEM. */
static struct imap_arg *
arg_push(struct imap_parser *p, enum imap_arg_type type)
{
	struct imap_arg *l = p->stack[p->depth], *a;

	if (l->n == l->cap) {
		size_t cap = l->cap == 0 ? 8 : l->cap * 2;
		struct imap_arg *v = realloc(l->list, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		l->list = v;
		l->cap = cap;
	}
	a = &l->list[l->n++];
	memset(a, 0, sizeof(*a));
	a->type = type;
	return a;
}

/* The token becomes an argument of the given type. */
static int
tok_finish(struct imap_parser *p, enum imap_arg_type type)
{
	struct imap_arg *a = arg_push(p, type);

	if (a == NULL || (a->str = malloc(p->toklen + 1)) == NULL)
		return -1;
	if (p->toklen > 0)
		memcpy(a->str, p->tok, p->toklen);
	a->str[p->toklen] = '\0';
	a->len = p->toklen;
	if (p->toklen > 0)
		memset(p->tok, 0, p->toklen);   /* it may have been a password */
	p->toklen = 0;
	return 0;
}

/* The literal was read whole: it becomes an argument (the buffer moves). */
static int
literal_finish(struct imap_parser *p)
{
	struct imap_arg *a = arg_push(p, IMAP_ARG_LITERAL);

	if (a == NULL)
		return -1;
	a->str = p->tok;
	a->len = (size_t)p->literal_len;
	a->str[a->len] = '\0';
	p->tok = NULL;
	p->tokcap = 0;
	p->toklen = 0;
	p->state = PS_AFTER;
	return 0;
}

/* Valid UTF-8 (no overlongs, no surrogates)? */
static bool
utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* RFC 3501 ATOM-CHAR, plus '*' and '%' (list wildcards, sequence sets),
 * '\\' (flags) and ']' (resp-specials, allowed in astrings). */
static bool
atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return c != '(' && c != ')' && c != '{' && c != '"';
}

static bool
tag_char(unsigned char c)
{
	return atom_char(c) && c != '+' && c != '*' && c != '%' && c != '\\';
}

static int
parse_fail(struct imap_parser *p, enum imap_parse_error e, const char *msg, bool at_eol,
    const char **error_r)
{
	p->error = e;
	*error_r = msg;
	p->state = at_eol ? PS_TAG : PS_SKIP;
	/* keep tag for the reply; the args are dropped at the next reset */
	arg_clear(&p->root);
	p->root.type = IMAP_ARG_LIST;
	p->depth = 0;
	p->toklen = 0;
	return -1;
}

/* The line ended (CRLF or bare LF seen). */
static int
parser_eol(struct imap_parser *p, const char **error_r)
{
	if (p->taglen == 0)
		return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Empty command line", true, error_r);
	if (p->namelen == 0)
		return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Missing command", true, error_r);
	if (p->depth > 0)
		return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Unbalanced parentheses", true, error_r);
	p->done = true;
	return 1;
}

int
imap_parser_feed(struct imap_parser *p, const char *data, size_t len, size_t *consumed_r,
    bool *continue_r, const char **error_r)
{
	size_t i = 0;

	*continue_r = false;
	*error_r = NULL;
	*consumed_r = 0;
	if (p->done || p->error != IMAP_PARSE_OK) {
		int st = p->state;

		parser_reset(p);
		if (st == PS_SKIP)
			p->state = PS_SKIP;
	}
	while (i < len) {
		unsigned char c = (unsigned char)data[i];

		if (p->state == PS_LITDATA) {
			size_t take = len - i;

			if (take > p->literal_len - p->literal_got)
				take = (size_t)(p->literal_len - p->literal_got);
			memcpy(p->tok + p->literal_got, data + i, take);
			p->literal_got += take;
			i += take;
			if (p->literal_got == p->literal_len && literal_finish(p) == -1) {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
			}
			continue;
		}
		i++;
		if (p->state == PS_SKIP) {
			if (c == '\n') {
				p->state = PS_TAG;
				p->error = IMAP_PARSE_OK;
				p->taglen = 0;
				p->tag[0] = '\0';
				p->linelen = 0;
			}
			continue;
		}
		if (++p->linelen > p->lim.max_line) {
			*consumed_r = i;
			return parse_fail(p, IMAP_PARSE_ERR_LINE_TOO_LONG, "Line too long", c == '\n',
			    error_r);
		}
		if (c == '\n' || (p->state == PS_EOL)) {
			int r;

			if (p->state == PS_EOL && c != '\n') {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "CR without LF", false, error_r);
			}
			switch (p->state) {
			case PS_QUOTED:
			case PS_QUOTED_ESC:
			case PS_LITLEN:
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Unexpected end of line", true,
				    error_r);
			case PS_ATOM:
				if (p->bracket) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Missing ']'", true, error_r);
				}
				if (tok_finish(p, IMAP_ARG_ATOM) == -1) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", true, error_r);
				}
				break;
			case PS_LITEOL:
				goto literal_announced;
			default:
				break;
			}
			*consumed_r = i;
			r = parser_eol(p, error_r);
			return r;
		}
		if (c == '\r') {
			switch (p->state) {
			case PS_QUOTED:
			case PS_QUOTED_ESC:
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "CR in quoted string", false,
				    error_r);
			case PS_LITEOL:
				continue;   /* the LF completes it */
			case PS_ATOM:
				if (p->bracket) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Missing ']'", false,
					    error_r);
				}
				if (tok_finish(p, IMAP_ARG_ATOM) == -1) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false,
					    error_r);
				}
				p->state = PS_EOL;
				continue;
			case PS_LITLEN:
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Bad literal", false, error_r);
			default:
				p->state = PS_EOL;
				continue;
			}
		}
		switch (p->state) {
		case PS_TAG:
			if (c == ' ' && p->taglen > 0) {
				p->tag[p->taglen] = '\0';
				p->state = PS_NAME;
			} else if (tag_char(c) && p->taglen < IMAP_TAG_MAX) {
				p->tag[p->taglen++] = (char)c;
				p->tag[p->taglen] = '\0';
			} else {
				*consumed_r = i;
				p->taglen = 0;
				p->tag[0] = '\0';
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Bad tag", false, error_r);
			}
			break;
		case PS_NAME:
			if (c == ' ' && p->namelen > 0) {
				p->state = PS_ARG;
			} else if (isalpha(c) && p->namelen < IMAP_NAME_MAX) {
				p->name[p->namelen++] = (char)toupper(c);
				p->name[p->namelen] = '\0';
			} else {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Bad command name", false, error_r);
			}
			break;
		case PS_AFTER:
			if (c == ' ') {
				p->state = PS_ARG;
				break;
			}
			if (c == ')')
				goto close_list;
			*consumed_r = i;
			return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Missing space between arguments", false,
			    error_r);
		case PS_ARG:
			if (c == '(') {
				struct imap_arg *a;

				if (p->depth >= IMAP_PARSE_DEPTH_MAX) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Lists nested too deep", false,
					    error_r);
				}
				if ((a = arg_push(p, IMAP_ARG_LIST)) == NULL) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
				}
				p->stack[++p->depth] = a;
				break;   /* stay in PS_ARG: "()" and "(a" */
			}
			if (c == ')')
				goto close_list;
			if (c == '"') {
				p->state = PS_QUOTED;
				p->toklen = 0;
				break;
			}
			if (c == '{') {
				p->state = PS_LITLEN;
				p->literal_len = 0;
				p->literal_plus = false;
				p->literal_too_big = false;
				p->toklen = 0;
				break;
			}
			if (atom_char(c)) {
				p->state = PS_ATOM;
				p->toklen = 0;
				p->bracket = c == '[';
				if (tok_add(p, (char)c) == -1) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
				}
				break;
			}
			*consumed_r = i;
			return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, c >= 0x80 ?
			    "8-bit characters outside a string" : "Unexpected character", false, error_r);
		case PS_ATOM:
			if (p->bracket) {
				if (c == ']')
					p->bracket = false;
				else if (c < 0x20 || c >= 0x7f) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Bad character in section",
					    false, error_r);
				}
				if (tok_add(p, (char)c) == -1) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
				}
				break;
			}
			if (c == ' ' || c == ')') {
				if (tok_finish(p, IMAP_ARG_ATOM) == -1) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
				}
				p->state = c == ' ' ? PS_ARG : PS_AFTER;
				if (c == ')')
					goto close_list;
				break;
			}
			if (c == '[')
				p->bracket = true;
			else if (!atom_char(c)) {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, c >= 0x80 ?
				    "8-bit characters outside a string" : "Bad character in atom", false,
				    error_r);
			}
			if (tok_add(p, (char)c) == -1) {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
			}
			break;
		case PS_QUOTED:
			if (c == '\\') {
				p->state = PS_QUOTED_ESC;
				break;
			}
			if (c == '"') {
				if (!utf8_valid((const unsigned char *)p->tok, p->toklen)) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Invalid UTF-8 in string",
					    false, error_r);
				}
				if (tok_finish(p, IMAP_ARG_QUOTED) == -1) {
					*consumed_r = i;
					return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
				}
				p->state = PS_AFTER;
				break;
			}
			if (c == 0) {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "NUL in string", false, error_r);
			}
			if (tok_add(p, (char)c) == -1) {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
			}
			break;
		case PS_QUOTED_ESC:
			if (c != '\\' && c != '"') {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Bad escape in quoted string", false,
				    error_r);
			}
			if (tok_add(p, (char)c) == -1) {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
			}
			p->state = PS_QUOTED;
			break;
		case PS_LITLEN:
			if (c >= '0' && c <= '9' && !p->literal_plus && p->toklen < 20) {
				p->literal_len = p->literal_len * 10 + (uint64_t)(c - '0');
				p->toklen++;
				if (p->literal_len > (uint64_t)1 << 40)
					p->literal_len = (uint64_t)1 << 40;   /* saturate: too big anyway */
			} else if (c == '+' && p->toklen > 0 && !p->literal_plus) {
				p->literal_plus = true;
			} else if (c == '}' && p->toklen > 0) {
				size_t limit = strcmp(p->name, "APPEND") == 0 ? p->lim.max_append_literal :
				    p->lim.max_literal;

				p->toklen = 0;
				p->literal_too_big = p->literal_len > limit ||
				    p->literal_total + p->literal_len > limit;
				p->state = PS_LITEOL;
			} else {
				*consumed_r = i;
				return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Bad literal size", false, error_r);
			}
			break;
		case PS_LITEOL:
			*consumed_r = i;
			return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Literal announcement not at line end",
			    false, error_r);
		case PS_EOL:
		case PS_SKIP:
		case PS_LITDATA:
			break;   /* handled above */
		}
		continue;

close_list:
		if (p->depth == 0) {
			*consumed_r = i;
			return parse_fail(p, IMAP_PARSE_ERR_SYNTAX, "Unbalanced ')'", false, error_r);
		}
		p->depth--;
		p->state = PS_AFTER;
		continue;

literal_announced:
		/* {n} or {n+} then CRLF: the size is known, nothing of it read yet. */
		*consumed_r = i;
		if (p->literal_too_big) {
			p->fatal = p->literal_plus;
			return parse_fail(p, IMAP_PARSE_ERR_LITERAL_TOO_BIG, "Literal too big", true,
			    error_r);
		}
		p->literal_total += (size_t)p->literal_len;
		free(p->tok);
		p->tok = malloc((size_t)p->literal_len + 1);
		p->tokcap = (size_t)p->literal_len + 1;
		if (p->tok == NULL) {
			p->tokcap = 0;
			p->fatal = p->literal_plus;
			return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", true, error_r);
		}
		p->literal_got = 0;
		p->state = PS_LITDATA;
		if (p->literal_len == 0 && literal_finish(p) == -1)
			return parse_fail(p, IMAP_PARSE_ERR_NOMEM, "Out of memory", false, error_r);
		if (!p->literal_plus) {
			*continue_r = true;
			return 0;
		}
	}
	*consumed_r = i;
	return 0;
}

/* ---- sequence sets ---- */

static int
parse_seqnum(const char **sp, uint32_t *v_r)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (*s == '*') {
		*v_r = IMAP_SEQ_STAR;
		*sp = s + 1;
		return 0;
	}
	if (*s < '1' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v >= UINT32_MAX)
			return -1;
		s++;
	}
	*v_r = (uint32_t)v;
	*sp = s;
	return 0;
}

int
imap_seqset_parse(const char *s, struct imap_seqset *set_r, const char **error_r)
{
	size_t cap = 0;

	memset(set_r, 0, sizeof(*set_r));
	if (strcmp(s, "$") == 0) {
		set_r->saved = true;
		return 0;
	}
	for (;;) {
		struct imap_seqrange r;

		if (parse_seqnum(&s, &r.lo) == -1)
			goto bad;
		r.hi = r.lo;
		if (*s == ':') {
			s++;
			if (parse_seqnum(&s, &r.hi) == -1)
				goto bad;
		}
		if (set_r->n == cap) {
			size_t ncap = cap == 0 ? 4 : cap * 2;
			struct imap_seqrange *v;

			if (ncap > 100000)
				goto bad;
			if ((v = realloc(set_r->v, ncap * sizeof(*v))) == NULL)
				goto bad;
			set_r->v = v;
			cap = ncap;
		}
		set_r->v[set_r->n++] = r;
		if (*s == '\0')
			return 0;
		if (*s++ != ',')
			goto bad;
	}
bad:
	imap_seqset_free(set_r);
	*error_r = "Invalid sequence set";
	return -1;
}

static int
range_cmp(const void *a, const void *b)
{
	const struct imap_seqrange *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void
imap_seqset_normalize(struct imap_seqset *set, uint32_t star)
{
	size_t o = 0;

	for (size_t i = 0; i < set->n; i++) {
		struct imap_seqrange *r = &set->v[i];

		if (r->lo == IMAP_SEQ_STAR)
			r->lo = star;
		if (r->hi == IMAP_SEQ_STAR)
			r->hi = star;
		if (r->lo > r->hi) {
			uint32_t t = r->lo;

			r->lo = r->hi;
			r->hi = t;
		}
	}
	if (set->n == 0)
		return;
	qsort(set->v, set->n, sizeof(set->v[0]), range_cmp);
	for (size_t i = 1; i < set->n; i++) {
		if (set->v[i].lo <= set->v[o].hi + (uint64_t)1) {
			if (set->v[i].hi > set->v[o].hi)
				set->v[o].hi = set->v[i].hi;
		} else {
			set->v[++o] = set->v[i];
		}
	}
	set->n = o + 1;
}

bool
imap_seqset_has(const struct imap_seqset *set, uint32_t v)
{
	size_t lo = 0, hi = set->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (v < set->v[mid].lo)
			hi = mid;
		else if (v > set->v[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

void
imap_seqset_free(struct imap_seqset *set)
{
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

/* ---- FETCH attributes ---- */

static char *
xstrdup_upper(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (d == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		d[i] = (char)toupper((unsigned char)s[i]);
	d[len] = '\0';
	return d;
}

static bool
header_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 200)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == ':')
			return false;
	}
	return true;
}

/* "1.2.HEADER.FIELDS (A B)" (inside the brackets) into sec. */
static int
section_parse(const char *s, size_t len, struct imap_fetch_section *fs)
{
	const char *end = s + len, *p = s;
	struct imap_section *sec = &fs->sec;

	sec->kind = IMAP_SECTION_ALL;
	while (p < end && *p >= '1' && *p <= '9') {
		uint64_t v = 0;

		while (p < end && *p >= '0' && *p <= '9') {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > 100000)
				return -1;
			p++;
		}
		if (sec->depth >= IMAP_SECTION_DEPTH_MAX)
			return -1;
		sec->part[sec->depth++] = (uint32_t)v;
		if (p == end)
			return 0;
		if (*p++ != '.')
			return -1;
	}
	if (p == end)
		return sec->depth == 0 ? 0 : -1;   /* "1." */
#define KW(w) ((size_t)(end - p) >= strlen(w) && strncasecmp(p, w, strlen(w)) == 0)
	if (KW("HEADER.FIELDS.NOT") || KW("HEADER.FIELDS")) {
		bool not = KW("HEADER.FIELDS.NOT");
		size_t nnames = 0;

		p += not ? 17 : 13;
		sec->kind = not ? IMAP_SECTION_HEADER_FIELDS_NOT : IMAP_SECTION_HEADER_FIELDS;
		if (end - p < 3 || p[0] != ' ' || p[1] != '(' || end[-1] != ')')
			return -1;
		p += 2;
		end--;
		fs->names = calloc((size_t)(end - p) / 2 + 2, sizeof(char *));
		if (fs->names == NULL)
			return -1;
		while (p < end) {
			const char *w = p;
			size_t wl;

			if (*p == '"') {
				w = ++p;
				while (p < end && *p != '"')
					p++;
				if (p == end)
					return -1;
				wl = (size_t)(p - w);
				p++;
			} else {
				while (p < end && *p != ' ')
					p++;
				wl = (size_t)(p - w);
			}
			if (!header_name_ok(w, wl))
				return -1;
			if ((fs->names[nnames++] = xstrdup_upper(w, wl)) == NULL)
				return -1;
			if (p < end && *p++ != ' ')
				return -1;
			if (p == end && p[-1] == ' ')
				return -1;
		}
		if (nnames == 0)
			return -1;
		sec->fields = (const char *const *)fs->names;
		sec->nfields = nnames;
		return 0;
	}
	if (KW("HEADER") && end - p == 6)
		sec->kind = IMAP_SECTION_HEADER;
	else if (KW("TEXT") && end - p == 4)
		sec->kind = IMAP_SECTION_TEXT;
	else if (KW("MIME") && end - p == 4 && sec->depth > 0)
		sec->kind = IMAP_SECTION_MIME;
	else
		return -1;
#undef KW
	return 0;
}

/* The section as echoed in the reply: parts, upper-case keyword, names. */
static int
section_label(struct imap_fetch_section *fs)
{
	static const char *const kinds[] = {
		[IMAP_SECTION_ALL] = "", [IMAP_SECTION_HEADER] = "HEADER",
		[IMAP_SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
		[IMAP_SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
		[IMAP_SECTION_TEXT] = "TEXT", [IMAP_SECTION_MIME] = "MIME",
	};
	size_t cap = 64, n;
	char *b;

	for (size_t i = 0; i < fs->sec.nfields; i++)
		cap += strlen(fs->names[i]) + 1;
	cap += fs->sec.depth * 11;
	if ((b = malloc(cap)) == NULL)
		return -1;
	n = (size_t)snprintf(b, cap, "BODY[");
	for (size_t i = 0; i < fs->sec.depth; i++)
		n += (size_t)snprintf(b + n, cap - n, "%s%u", i > 0 ? "." : "", fs->sec.part[i]);
	if (fs->sec.kind != IMAP_SECTION_ALL)
		n += (size_t)snprintf(b + n, cap - n, "%s%s", fs->sec.depth > 0 ? "." : "",
		    kinds[fs->sec.kind]);
	if (fs->sec.nfields > 0) {
		n += (size_t)snprintf(b + n, cap - n, " (");
		for (size_t i = 0; i < fs->sec.nfields; i++)
			n += (size_t)snprintf(b + n, cap - n, "%s%s", i > 0 ? " " : "", fs->names[i]);
		n += (size_t)snprintf(b + n, cap - n, ")");
	}
	snprintf(b + n, cap - n, "]");
	fs->label = b;
	return 0;
}

static void
fetch_section_free(struct imap_fetch_section *fs)
{
	if (fs->names != NULL)
		for (size_t i = 0; fs->names[i] != NULL; i++)
			free(fs->names[i]);
	free(fs->names);
	free(fs->label);
}

/* BODY[...]<o.c> or BODY.PEEK[...]<o.c> */
static int
fetch_body_parse(const char *s, struct imap_fetch_spec *spec)
{
	struct imap_fetch_section fs = { 0 };
	const char *lb = strchr(s, '['), *rb;
	struct imap_fetch_section *v;

	if (lb == NULL)
		return -1;
	if ((size_t)(lb - s) == 9 && strncasecmp(s, "BODY.PEEK", 9) == 0)
		fs.peek = true;
	else if (!((size_t)(lb - s) == 4 && strncasecmp(s, "BODY", 4) == 0))
		return -1;
	if ((rb = strchr(lb, ']')) == NULL)
		return -1;
	if (section_parse(lb + 1, (size_t)(rb - lb - 1), &fs) == -1)
		goto fail;
	s = rb + 1;
	if (*s == '<') {
		char *e;
		unsigned long long o, c;

		errno = 0;
		if (s[1] < '0' || s[1] > '9')
			goto fail;
		o = strtoull(s + 1, &e, 10);
		if (*e != '.' || e[1] < '0' || e[1] > '9' || o > UINT32_MAX)
			goto fail;
		c = strtoull(e + 1, &e, 10);
		if (*e != '>' || e[1] != '\0' || c > UINT32_MAX || errno != 0)
			goto fail;
		fs.partial = true;
		fs.offset = (uint32_t)o;
		fs.count = (uint32_t)c;
	} else if (*s != '\0') {
		goto fail;
	}
	if (section_label(&fs) == -1)
		goto fail;
	if (spec->nsecs >= 64)
		goto fail;
	if ((v = realloc(spec->secs, (spec->nsecs + 1) * sizeof(*v))) == NULL)
		goto fail;
	spec->secs = v;
	spec->secs[spec->nsecs++] = fs;
	if (!fs.peek)
		spec->sets_seen = true;
	return 0;
fail:
	fetch_section_free(&fs);
	return -1;
}

static int
fetch_item_parse(const struct imap_arg *a, struct imap_fetch_spec *spec)
{
	static const struct {
		const char *name;
		unsigned items;
	} simple[] = {
		{ "FLAGS", IMAP_FETCH_FLAGS },
		{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE },
		{ "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
		{ "ENVELOPE", IMAP_FETCH_ENVELOPE },
		{ "BODY", IMAP_FETCH_BODY },
		{ "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
		{ "UID", IMAP_FETCH_UID },
		{ "RFC822", IMAP_FETCH_RFC822 },
		{ "RFC822.HEADER", IMAP_FETCH_RFC822_HEADER },
		{ "RFC822.TEXT", IMAP_FETCH_RFC822_TEXT },
		{ "MODSEQ", IMAP_FETCH_MODSEQ },
	};

	if (a->type != IMAP_ARG_ATOM)
		return -1;
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strcasecmp(a->str, simple[i].name) == 0) {
			spec->items |= simple[i].items;
			if (simple[i].items & (IMAP_FETCH_RFC822 | IMAP_FETCH_RFC822_TEXT))
				spec->sets_seen = true;
			return 0;
		}
	}
	return fetch_body_parse(a->str, spec);
}

int
imap_fetch_spec_parse(const struct imap_arg *args, size_t nargs, struct imap_fetch_spec *spec_r,
    const char **error_r)
{
	memset(spec_r, 0, sizeof(*spec_r));
	*error_r = "Invalid fetch attribute";
	if (nargs != 1)
		return -1;
	if (args[0].type == IMAP_ARG_ATOM) {
		const char *s = args[0].str;

		if (strcasecmp(s, "ALL") == 0) {
			spec_r->items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE |
			    IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE;
			return 0;
		}
		if (strcasecmp(s, "FAST") == 0) {
			spec_r->items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE |
			    IMAP_FETCH_RFC822_SIZE;
			return 0;
		}
		if (strcasecmp(s, "FULL") == 0) {
			spec_r->items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE |
			    IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY;
			return 0;
		}
		if (fetch_item_parse(&args[0], spec_r) == -1)
			goto fail;
		return 0;
	}
	if (args[0].type != IMAP_ARG_LIST || args[0].n == 0)
		goto fail;
	for (size_t i = 0; i < args[0].n; i++)
		if (fetch_item_parse(&args[0].list[i], spec_r) == -1)
			goto fail;
	return 0;
fail:
	imap_fetch_spec_free(spec_r);
	return -1;
}

void
imap_fetch_spec_free(struct imap_fetch_spec *spec)
{
	for (size_t i = 0; i < spec->nsecs; i++)
		fetch_section_free(&spec->secs[i]);
	free(spec->secs);
	memset(spec, 0, sizeof(*spec));
}

/* ---- dates ---- */

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
    "Sep", "Oct", "Nov", "Dec" };

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* "d-Mon-yyyy" at s; sets *end_r. */
static int64_t
date_at(const char *s, const char **end_r)
{
	unsigned d = 0, y = 0, m = 0, nd = 0, ny = 0;
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	while (*s >= '0' && *s <= '9' && nd < 2) {
		d = d * 10 + (unsigned)(*s++ - '0');
		nd++;
	}
	if (nd == 0 || *s++ != '-')
		return -1;
	for (m = 0; m < 12; m++)
		if (strncasecmp(s, months[m], 3) == 0)
			break;
	if (m == 12)
		return -1;
	s += 3;
	if (*s++ != '-')
		return -1;
	while (*s >= '0' && *s <= '9' && ny < 4) {
		y = y * 10 + (unsigned)(*s++ - '0');
		ny++;
	}
	if (ny != 4 || d < 1 || d > mdays[m] || y < 1900)
		return -1;
	*end_r = s;
	return days_from_civil(y, m + 1, d);
}

int64_t
imap_date_parse(const char *s)
{
	const char *e;
	int64_t days = date_at(s, &e);

	return days >= 0 && *e == '\0' ? days : -1;
}

int64_t
imap_datetime_parse(const char *s)
{
	const char *e;
	int64_t days;
	int hh, mm, ss, zh, zm, sign;

	if (*s == ' ')
		s++;   /* date-day-fixed: " 1-Jan-2000" */
	if ((days = date_at(s, &e)) < 0 || *e++ != ' ')
		return -1;
	if (strlen(e) != 14 || e[2] != ':' || e[5] != ':' || e[8] != ' ' ||
	    (e[9] != '+' && e[9] != '-'))
		return -1;
	for (int i = 0; i < 14; i++)
		if (i != 2 && i != 5 && i != 8 && i != 9 && (e[i] < '0' || e[i] > '9'))
			return -1;
	hh = (e[0] - '0') * 10 + (e[1] - '0');
	mm = (e[3] - '0') * 10 + (e[4] - '0');
	ss = (e[6] - '0') * 10 + (e[7] - '0');
	sign = e[9] == '-' ? -1 : 1;
	zh = (e[10] - '0') * 10 + (e[11] - '0');
	zm = (e[12] - '0') * 10 + (e[13] - '0');
	if (hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return -1;
	return days * 86400 + hh * 3600 + mm * 60 + ss - sign * (zh * 3600 + zm * 60);
}

/* ---- flags ---- */

void
imap_keywords_free(char ***kwp)
{
	char **kw = *kwp;

	if (kw == NULL)
		return;
	for (size_t i = 0; kw[i] != NULL; i++)
		free(kw[i]);
	free(kw);
	*kwp = NULL;
}

static int
flag_one(const struct imap_arg *a, uint32_t *flags, char **kw, size_t *nkw)
{
	static const struct {
		const char *name;
		uint32_t flag;
	} sys[] = {
		{ "\\Seen", IMAP_FLAG_SEEN }, { "\\Answered", IMAP_FLAG_ANSWERED },
		{ "\\Flagged", IMAP_FLAG_FLAGGED }, { "\\Deleted", IMAP_FLAG_DELETED },
		{ "\\Draft", IMAP_FLAG_DRAFT },
	};

	if (a->type != IMAP_ARG_ATOM || a->len == 0 || a->len > 100)
		return -1;
	if (a->str[0] == '\\') {
		for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
			if (strcasecmp(a->str, sys[i].name) == 0) {
				*flags |= sys[i].flag;
				return 0;
			}
		}
		return -1;   /* \Recent and unknown system flags */
	}
	for (size_t i = 0; i < a->len; i++)
		if (strchr("*%]\\", a->str[i]) != NULL)
			return -1;
	for (size_t i = 0; i < *nkw; i++)
		if (strcasecmp(kw[i], a->str) == 0)
			return 0;
	if ((kw[*nkw] = strdup(a->str)) == NULL)
		return -1;
	(*nkw)++;
	return 0;
}

int
imap_flags_parse(const struct imap_arg *a, uint32_t *flags_r, char ***keywords_r,
    const char **error_r)
{
	size_t n = a->type == IMAP_ARG_LIST ? a->n : 1, nkw = 0;
	char **kw = calloc(n + 1, sizeof(char *));

	*flags_r = 0;
	*keywords_r = NULL;
	*error_r = "Invalid flag";
	if (kw == NULL)
		return -1;
	if (n > 1000)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (flag_one(a->type == IMAP_ARG_LIST ? &a->list[i] : a, flags_r, kw, &nkw) == -1)
			goto fail;
	*keywords_r = kw;
	return 0;
fail:
	imap_keywords_free(&kw);
	return -1;
}

/* ---- SEARCH ---- */

void
imap_search_node_free(struct imap_search_node *n)
{
	for (size_t i = 0; i < n->nkids; i++)
		imap_search_node_free(&n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n->str2);
	imap_seqset_free(&n->set);
	memset(n, 0, sizeof(*n));
}

struct search_ctx {
	const struct imap_arg *args;
	size_t n, i;
	int depth;
	size_t nodes;
};

static int search_key(struct search_ctx *c, struct imap_search_node *out);

static struct imap_search_node *
node_add(struct imap_search_node *parent)
{
	struct imap_search_node *v = realloc(parent->kids, (parent->nkids + 1) * sizeof(*v));

	if (v == NULL)
		return NULL;
	parent->kids = v;
	memset(&v[parent->nkids], 0, sizeof(v[0]));
	return &v[parent->nkids++];
}

static const struct imap_arg *
search_next(struct search_ctx *c)
{
	return c->i < c->n ? &c->args[c->i++] : NULL;
}

static int
search_string(struct search_ctx *c, char **out)
{
	const struct imap_arg *a = search_next(c);

	if (!imap_arg_is_string(a))
		return -1;
	if (memchr(a->str, '\0', a->len) != NULL)
		return -1;
	return (*out = strdup(a->str)) == NULL ? -1 : 0;
}

static int
search_date(struct search_ctx *c, int64_t *day)
{
	const struct imap_arg *a = search_next(c);

	if (!imap_arg_is_string(a))
		return -1;
	return (*day = imap_date_parse(a->str)) < 0 ? -1 : 0;
}

static int
search_number(struct search_ctx *c, uint64_t *v)
{
	const struct imap_arg *a = search_next(c);
	char *e;

	if (a == NULL || a->type != IMAP_ARG_ATOM || a->str[0] < '0' || a->str[0] > '9')
		return -1;
	errno = 0;
	*v = strtoull(a->str, &e, 10);
	return *e != '\0' || errno != 0 ? -1 : 0;
}

/* A list of keys: an AND node (the top level, or a parenthesised list). */
static int
search_list(const struct imap_arg *args, size_t n, struct search_ctx *parent,
    struct imap_search_node *out)
{
	struct search_ctx c = { .args = args, .n = n, .depth = parent != NULL ? parent->depth + 1 : 0 };

	out->key = IMAP_SK_AND;
	if (n == 0 || c.depth > 32)
		return -1;
	while (c.i < c.n) {
		struct imap_search_node *k = node_add(out);

		if (k == NULL || search_key(&c, k) == -1)
			return -1;
	}
	if (parent != NULL)
		parent->nodes += c.nodes;
	return 0;
}

static int
search_key(struct search_ctx *c, struct imap_search_node *out)
{
	static const struct {
		const char *name;
		enum imap_search_key key;
		uint32_t flag;
	} flagkeys[] = {
		{ "ANSWERED", IMAP_SK_FLAG, IMAP_FLAG_ANSWERED },
		{ "DELETED", IMAP_SK_FLAG, IMAP_FLAG_DELETED },
		{ "DRAFT", IMAP_SK_FLAG, IMAP_FLAG_DRAFT },
		{ "FLAGGED", IMAP_SK_FLAG, IMAP_FLAG_FLAGGED },
		{ "RECENT", IMAP_SK_FLAG, IMAP_FLAG_RECENT },
		{ "SEEN", IMAP_SK_FLAG, IMAP_FLAG_SEEN },
		{ "UNANSWERED", IMAP_SK_UNFLAG, IMAP_FLAG_ANSWERED },
		{ "UNDELETED", IMAP_SK_UNFLAG, IMAP_FLAG_DELETED },
		{ "UNDRAFT", IMAP_SK_UNFLAG, IMAP_FLAG_DRAFT },
		{ "UNFLAGGED", IMAP_SK_UNFLAG, IMAP_FLAG_FLAGGED },
		{ "UNSEEN", IMAP_SK_UNFLAG, IMAP_FLAG_SEEN },
	};
	static const struct {
		const char *name;
		enum imap_search_key key;
	} datekeys[] = {
		{ "BEFORE", IMAP_SK_BEFORE }, { "ON", IMAP_SK_ON }, { "SINCE", IMAP_SK_SINCE },
		{ "SENTBEFORE", IMAP_SK_SENTBEFORE }, { "SENTON", IMAP_SK_SENTON },
		{ "SENTSINCE", IMAP_SK_SENTSINCE },
	}, strkeys[] = {
		{ "BODY", IMAP_SK_BODY }, { "TEXT", IMAP_SK_TEXT },
	};
	static const char *const addrkeys[] = { "BCC", "CC", "FROM", "SUBJECT", "TO" };
	const struct imap_arg *a = search_next(c);
	const char *w;

	if (a == NULL || ++c->nodes > 10000)
		return -1;
	if (a->type == IMAP_ARG_LIST)
		return search_list(a->list, a->n, c, out);
	if (a->type != IMAP_ARG_ATOM)
		return -1;
	w = a->str;
	for (size_t i = 0; i < sizeof(flagkeys) / sizeof(flagkeys[0]); i++) {
		if (strcasecmp(w, flagkeys[i].name) == 0) {
			out->key = flagkeys[i].key;
			out->num = flagkeys[i].flag;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(datekeys) / sizeof(datekeys[0]); i++) {
		if (strcasecmp(w, datekeys[i].name) == 0) {
			out->key = datekeys[i].key;
			return search_date(c, &out->day);
		}
	}
	for (size_t i = 0; i < sizeof(strkeys) / sizeof(strkeys[0]); i++) {
		if (strcasecmp(w, strkeys[i].name) == 0) {
			out->key = strkeys[i].key;
			return search_string(c, &out->str);
		}
	}
	for (size_t i = 0; i < sizeof(addrkeys) / sizeof(addrkeys[0]); i++) {
		if (strcasecmp(w, addrkeys[i]) == 0) {
			out->key = IMAP_SK_HEADER;
			if ((out->str = strdup(addrkeys[i])) == NULL)
				return -1;
			return search_string(c, &out->str2);
		}
	}
	if (strcasecmp(w, "ALL") == 0) {
		out->key = IMAP_SK_ALL;
		return 0;
	}
	if (strcasecmp(w, "NEW") == 0) {
		out->key = IMAP_SK_NEW;
		return 0;
	}
	if (strcasecmp(w, "OLD") == 0) {
		out->key = IMAP_SK_OLD;
		return 0;
	}
	if (strcasecmp(w, "KEYWORD") == 0 || strcasecmp(w, "UNKEYWORD") == 0) {
		out->key = strcasecmp(w, "KEYWORD") == 0 ? IMAP_SK_KEYWORD : IMAP_SK_UNKEYWORD;
		a = search_next(c);
		if (a == NULL || a->type != IMAP_ARG_ATOM)
			return -1;
		return (out->str = strdup(a->str)) == NULL ? -1 : 0;
	}
	if (strcasecmp(w, "HEADER") == 0) {
		out->key = IMAP_SK_HEADER;
		if (search_string(c, &out->str) == -1 ||
		    !header_name_ok(out->str, strlen(out->str)))
			return -1;
		return search_string(c, &out->str2);
	}
	if (strcasecmp(w, "LARGER") == 0 || strcasecmp(w, "SMALLER") == 0) {
		out->key = strcasecmp(w, "LARGER") == 0 ? IMAP_SK_LARGER : IMAP_SK_SMALLER;
		return search_number(c, &out->num);
	}
	if (strcasecmp(w, "MODSEQ") == 0) {
		out->key = IMAP_SK_MODSEQ;
		/* RFC 7162 3.1.5: MODSEQ ["/flags/\\seen" priv|shared|all] n; the
		 * per-flag entries are not kept apart, so the entry is accepted and
		 * the message's mod-sequence used. */
		if (c->i + 1 < c->n && c->args[c->i].type != IMAP_ARG_ATOM) {
			if (!imap_arg_is_string(&c->args[c->i]) || c->args[c->i + 1].type != IMAP_ARG_ATOM ||
			    (strcasecmp(c->args[c->i + 1].str, "priv") != 0 &&
			    strcasecmp(c->args[c->i + 1].str, "shared") != 0 &&
			    strcasecmp(c->args[c->i + 1].str, "all") != 0))
				return -1;
			c->i += 2;
		}
		return search_number(c, &out->num);
	}
	if (strcasecmp(w, "NOT") == 0) {
		struct imap_search_node *k;

		out->key = IMAP_SK_NOT;
		return (k = node_add(out)) == NULL ? -1 : search_key(c, k);
	}
	if (strcasecmp(w, "OR") == 0) {
		struct imap_search_node *k;

		out->key = IMAP_SK_OR;
		for (int i = 0; i < 2; i++)
			if ((k = node_add(out)) == NULL || search_key(c, k) == -1)
				return -1;
		return 0;
	}
	if (strcasecmp(w, "UID") == 0) {
		const char *err;

		out->key = IMAP_SK_UIDSET;
		a = search_next(c);
		if (a == NULL || a->type != IMAP_ARG_ATOM)
			return -1;
		return imap_seqset_parse(a->str, &out->set, &err);
	}
	{
		const char *err;

		out->key = IMAP_SK_SEQSET;
		return imap_seqset_parse(w, &out->set, &err);
	}
}

int
imap_search_parse(const struct imap_arg *args, size_t nargs, struct imap_search_node *root_r,
    const char **charset_r, const char **error_r)
{
	memset(root_r, 0, sizeof(*root_r));
	*charset_r = NULL;
	*error_r = "Invalid search criteria";
	if (nargs >= 2 && imap_arg_atom_is(&args[0], "CHARSET")) {
		const char *cs = imap_arg_str(&args[1]);

		if (cs == NULL || cs[0] == '\0' || strlen(cs) > 64)
			return -1;
		*charset_r = cs;
		args += 2;
		nargs -= 2;
	}
	if (search_list(args, nargs, NULL, root_r) == -1) {
		imap_search_node_free(root_r);
		return -1;
	}
	return 0;
}
