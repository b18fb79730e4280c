/*
 * imap_mime_search.c: SEARCH matching (RFC 3501 6.4.4) on a parsed message:
 * header fields decoded from RFC 2047 (and 8-bit in any charset) with GMime,
 * bodies decoded from base64/quoted-printable and converted to UTF-8 from
 * their charset, then compared case-insensitively (Unicode case folding).
 * Trusts nothing: undecodable text is made valid UTF-8, never rejected.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "imap/imap_mime_private.h"

static void
gmime_once(void)
{
	static bool done;

	if (!done) {
		g_mime_init();
		done = true;
	}
}

/* Case-folded valid UTF-8 of s (any bytes), g_free'd by the caller. */
static char *
fold(const char *s, gssize len)
{
	char *valid = g_utf8_make_valid(s, len);
	char *f = g_utf8_casefold(valid, -1);

	g_free(valid);
	return f;
}

static bool
contains_folded(const char *hay, gssize len, const char *needle_folded)
{
	char *h;
	bool hit;

	if (needle_folded[0] == '\0')
		return true;
	h = fold(hay, len);
	hit = strstr(h, needle_folded) != NULL;
	g_free(h);
	return hit;
}

/* bytes in charset -> UTF-8 appended to out (raw when unknown). */
static void
append_utf8(GString *out, const char *charset, const char *bytes, size_t len)
{
	char *conv = NULL;
	gsize wrote = 0;

	if (len == 0)
		return;
	if (charset != NULL && g_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    g_ascii_strcasecmp(charset, "us-ascii") != 0)
		conv = g_convert_with_fallback(bytes, (gssize)len, "UTF-8",
		    g_mime_charset_iconv_name(charset), "?", NULL, &wrote, NULL);
	if (conv != NULL) {
		g_string_append_len(out, conv, (gssize)wrote);
		g_free(conv);
	} else {
		g_string_append_len(out, bytes, (gssize)len);
	}
}

static int hexval(int c);

/*
 * RFC 2047 decoding, one encoded word at a time: GMime's own decoder glues
 * adjacent words of one charset together before decoding, which loses the
 * second of two base64 words when the first ends in '=' padding. Bytes of
 * adjacent words in the same charset are joined before the conversion (a
 * character may be split across them); blanks between encoded words go.
 */
static char *
decode_2047(const char *s)
{
	GString *out = g_string_new(NULL), *pend = g_string_new(NULL);
	char pend_cs[64] = "";
	const char *p = s, *plain = s;
	bool last_was_word = false;

	while (*p != '\0') {
		const char *cs, *q1, *q2, *end, *t;
		char enc;

		if (p[0] != '=' || p[1] != '?') {
			p++;
			continue;
		}
		cs = p + 2;
		if ((q1 = strchr(cs, '?')) == NULL || q1 == cs || (q1[1] != 'b' && q1[1] != 'B' &&
		    q1[1] != 'q' && q1[1] != 'Q') || q1[2] != '?' ||
		    (end = strstr(q1 + 3, "?=")) == NULL) {
			p++;
			continue;
		}
		q2 = q1 + 2;
		enc = (char)(q1[1] | 0x20);
		t = q2 + 1;
		/* the text before the word: kept unless blanks between two words */
		{
			bool blank = true;

			for (const char *b = plain; b < p; b++)
				blank &= *b == ' ' || *b == '\t' || *b == '\r' || *b == '\n';
			if (!(blank && last_was_word) && p > plain) {
				append_utf8(out, pend_cs, pend->str, pend->len);
				g_string_truncate(pend, 0);
				g_string_append_len(out, plain, p - plain);
			}
		}
		{
			char csname[64];
			size_t cl = (size_t)(q1 - cs);
			const char *star;

			if (cl >= sizeof(csname))
				cl = sizeof(csname) - 1;
			memcpy(csname, cs, cl);
			csname[cl] = '\0';
			if ((star = strchr(csname, '*')) != NULL)  /* RFC 2231 language */
				csname[star - csname] = '\0';
			if (g_ascii_strcasecmp(csname, pend_cs) != 0) {
				append_utf8(out, pend_cs, pend->str, pend->len);
				g_string_truncate(pend, 0);
				snprintf(pend_cs, sizeof(pend_cs), "%s", csname);
			}
		}
		if (enc == 'b') {
			gint state = 0;
			guint save = 0;
			size_t tl = (size_t)(end - t);
			guchar *buf = g_malloc(tl + 3);
			gsize n = g_base64_decode_step(t, tl, buf, &state, &save);

			g_string_append_len(pend, (const char *)buf, (gssize)n);
			g_free(buf);
		} else {
			for (const char *c = t; c < end; c++) {
				if (*c == '_') {
					g_string_append_c(pend, ' ');
				} else if (*c == '=' && c + 2 < end && hexval(c[1]) >= 0 && hexval(c[2]) >= 0) {
					g_string_append_c(pend, (char)(hexval(c[1]) * 16 + hexval(c[2])));
					c += 2;
				} else {
					g_string_append_c(pend, *c);
				}
			}
		}
		p = end + 2;
		plain = p;
		last_was_word = true;
	}
	append_utf8(out, pend_cs, pend->str, pend->len);
	g_string_append(out, plain);
	g_string_free(pend, TRUE);
	return g_string_free(out, FALSE);
}

/* A header value unfolded and decoded (RFC 2047; raw 8-bit made valid). */
static char *
field_decoded(const struct imap_mime *m, const struct mime_field *f)
{
	char *raw = mime_field_value(m, f), *dec;
	size_t o = 0;

	if (raw == NULL)
		return NULL;
	for (size_t i = 0; raw[i] != '\0'; i++) {
		if (raw[i] != '\r' && raw[i] != '\n')
			raw[o++] = raw[i];
	}
	raw[o] = '\0';
	gmime_once();
	dec = decode_2047(raw);
	free(raw);
	return dec;
}

static bool
is_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] >= 0x80 || s[i] == '\0')
			return false;
	}
	return true;
}

/* Plain ASCII value, ASCII needle: no decoding needed, compare in place
 * (line folds skipped). The common case of SEARCH HEADER on a big mailbox. */
static bool
ascii_contains(const char *v, size_t len, const char *needle)
{
	size_t nl = strlen(needle);

	for (size_t i = 0; i < len; i++) {
		size_t a = i, b = 0;

		while (b < nl && a < len) {
			if (v[a] == '\r' || v[a] == '\n') {
				a++;
				continue;
			}
			if (tolower((unsigned char)v[a]) != tolower((unsigned char)needle[b]))
				break;
			a++;
			b++;
		}
		if (b == nl)
			return true;
	}
	return false;
}

static bool
part_header_contains(const struct imap_mime *m, const struct mime_part *p, const char *field,
    const char *needle_folded)
{
	bool ascii_needle = is_ascii(needle_folded, strlen(needle_folded));

	for (size_t i = 0; i < p->nfields; i++) {
		const struct mime_field *f = &p->fields[i];
		const char *v = m->msg + f->value_off;
		char *dec;
		bool hit;

		if (field != NULL && (f->name_len != strlen(field) ||
		    strncasecmp(m->msg + f->name_off, field, f->name_len) != 0))
			continue;
		if (needle_folded[0] == '\0')
			return true;
		if (ascii_needle && is_ascii(v, f->value_len) &&
		    memmem(v, f->value_len, "=?", 2) == NULL) {
			if (ascii_contains(v, f->value_len, needle_folded))
				return true;
			continue;
		}
		if ((dec = field_decoded(m, f)) == NULL)
			continue;
		hit = contains_folded(dec, -1, needle_folded);
		g_free(dec);
		if (hit)
			return true;
	}
	return false;
}

bool
imap_mime_header_contains(const struct imap_mime *m, const char *field, const char *needle)
{
	char *nf;
	bool hit;

	gmime_once();
	nf = fold(needle, -1);
	hit = part_header_contains(m, m->root, field, nf);
	g_free(nf);
	return hit;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Transfer-decode a body into a malloc'd buffer. */
static char *
transfer_decode(const char *enc, const char *s, size_t len, size_t *len_r)
{
	char *out = malloc(len + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	if (enc != NULL && strcasecmp(enc, "base64") == 0) {
		gint state = 0;
		guint save = 0;

		o = g_base64_decode_step(s, len, (guchar *)out, &state, &save);
	} else if (enc != NULL && strcasecmp(enc, "quoted-printable") == 0) {
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '=' && i + 1 < len && (s[i + 1] == '\r' || s[i + 1] == '\n')) {
				/* soft line break */
				i++;
				if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
					i++;
			} else if (s[i] == '=' && i + 2 < len && hexval(s[i + 1]) >= 0 &&
			    hexval(s[i + 2]) >= 0) {
				out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
				i += 2;
			} else {
				out[o++] = s[i];
			}
		}
	} else {
		memcpy(out, s, len);
		o = len;
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

static const char *
param(const struct mime_part *p, const char *name)
{
	for (size_t i = 0; i < p->nparams; i++) {
		if (strcasecmp(p->params[i].name, name) == 0)
			return p->params[i].value;
	}
	return NULL;
}

static bool
text_contains(const struct imap_mime *m, const struct mime_part *p, const char *needle_folded)
{
	size_t dlen;
	char *dec = transfer_decode(p->encoding, m->msg + p->body_off, p->body_len, &dlen);
	const char *charset = param(p, "charset");
	bool hit = false;

	if (dec == NULL)
		return false;
	if (charset != NULL && strcasecmp(charset, "utf-8") != 0 &&
	    strcasecmp(charset, "us-ascii") != 0) {
		gsize wrote = 0;
		char *utf8 = g_convert_with_fallback(dec, (gssize)dlen, "UTF-8",
		    g_mime_charset_iconv_name(charset), "?", NULL, &wrote, NULL);

		if (utf8 != NULL) {
			hit = contains_folded(utf8, (gssize)wrote, needle_folded);
			g_free(utf8);
			free(dec);
			return hit;
		}
	}
	hit = contains_folded(dec, (gssize)dlen, needle_folded);
	free(dec);
	return hit;
}

static bool
body_walk(const struct imap_mime *m, const struct mime_part *p, const char *needle_folded)
{
	if (p->flags & MIME_MULTIPART) {
		for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
			if (body_walk(m, c, needle_folded))
				return true;
		}
		return false;
	}
	if ((p->flags & MIME_RFC822) && p->children != NULL) {
		/* the message inside: its header is body text of the outer one */
		return part_header_contains(m, p->children, NULL, needle_folded) ||
		    body_walk(m, p->children, needle_folded);
	}
	if (p->type != NULL && strcasecmp(p->type, "text") != 0 &&
	    strcasecmp(p->type, "message") != 0)
		return false;  /* binary attachments are not text */
	return text_contains(m, p, needle_folded);
}

bool
imap_mime_body_contains(const struct imap_mime *m, const char *needle, bool with_headers)
{
	char *nf;
	bool hit;

	gmime_once();
	nf = fold(needle, -1);
	hit = (with_headers && part_header_contains(m, m->root, NULL, nf)) ||
	    body_walk(m, m->root, nf);
	g_free(nf);
	return hit;
}

int64_t
imap_mime_sent_date(const struct imap_mime *m)
{
	const struct mime_field *f = mime_field_find(m, m->root, "Date");
	char *raw;
	GDateTime *dt;
	int64_t t;

	if (f == NULL || (raw = mime_field_value(m, f)) == NULL)
		return -1;
	gmime_once();
	dt = g_mime_utils_header_decode_date(raw);
	free(raw);
	if (dt == NULL)
		return -1;
	/* RFC 3501: the date as written, its zone disregarded (as Dovecot) */
	t = g_date_time_to_unix(dt) + g_date_time_get_utc_offset(dt) / G_TIME_SPAN_SECOND;
	g_date_time_unref(dt);
	return t;
}
