/*
 * smtp_client_parse.c: the pure half of the SMTP client: the reply reader,
 * EHLO keywords, dot-stuffing and the message scan. No sockets. Everything
 * a server sends is untrusted: lines and replies are bounded, text is only
 * ever kept capped. RFC 5321 4.2 (replies), 4.5.2 (transparency),
 * RFC 2034/3463 (enhanced codes), RFC 1869/1870/6152/6531/2920 keywords.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp_client.h"

static const char *const status_names[] = {
	[SMTP_CLIENT_OK] = "ok",
	[SMTP_CLIENT_TEMPFAIL] = "tempfail",
	[SMTP_CLIENT_PERMFAIL] = "permfail",
};

const char *
smtp_client_status_name(enum smtp_client_status status)
{
	return (unsigned)status < sizeof(status_names) / sizeof(status_names[0]) ?
	    status_names[status] : "unknown";
}

/* ---- replies ---- */

void
smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* An enhanced code "C.SSS.DDD" then SP or the end, C being class; its length or 0. */
static size_t
smtp_reply_enhanced_len(const char *s, size_t n, char class)
{
	size_t i = 0, d;

	if (n < 5 || s[0] != class || s[1] != '.')
		return 0;
	i = 2;
	for (d = 0; i < n && is_digit(s[i]) && d < 3; i++, d++)
		;
	if (d == 0 || i >= n || s[i] != '.')
		return 0;
	i++;
	for (d = 0; i < n && is_digit(s[i]) && d < 3; i++, d++)
		;
	if (d == 0 || (i < n && s[i] != ' '))
		return 0;
	return i;
}

static void
smtp_reply_append(struct smtp_reply_parser *p, const char *s, size_t n)
{
	size_t room = sizeof(p->reply.text) - 1 - p->textlen;

	if (n > room)
		n = room;   /* text is for people: the rest is dropped */
	memcpy(p->reply.text + p->textlen, s, n);
	p->textlen += n;
	p->reply.text[p->textlen] = '\0';
}

/* One complete line (without its line end): 1 last line, 0 more to come, -1 bad. */
static int
smtp_reply_line(struct smtp_reply_parser *p, const char *line, size_t n, const char **error_r)
{
	const char *text;
	size_t tlen, elen;
	int code;
	bool last;

	if (n < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) || !is_digit(line[2])) {
		*error_r = "malformed reply line (no reply code)";
		return -1;
	}
	if (n > 3 && line[3] != ' ' && line[3] != '-') {
		*error_r = "malformed reply line (no separator after the code)";
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	last = n == 3 || line[3] == ' ';
	if (p->nlines > 0 && code != p->reply.code) {
		*error_r = "reply code changes inside a multi-line reply";
		return -1;
	}
	if (++p->nlines > SMTP_CLIENT_REPLY_LINES_MAX) {
		*error_r = "too many lines in one reply";
		return -1;
	}
	p->reply.code = code;
	text = n > 4 ? line + 4 : "";
	tlen = n > 4 ? n - 4 : 0;
	elen = smtp_reply_enhanced_len(text, tlen, line[0]);
	if (elen > 0) {
		if (p->nlines == 1)
			memcpy(p->reply.enhanced, text, elen);   /* elen <= 9 */
		text += elen;
		tlen -= elen;
		if (tlen > 0) {   /* the SP after it */
			text++;
			tlen--;
		}
	}
	if (p->nlines > 1)
		smtp_reply_append(p, "\n", 1);
	smtp_reply_append(p, text, tlen);
	return last ? 1 : 0;
}

int
smtp_reply_parser_feed(struct smtp_reply_parser *p, const char *data, size_t len,
    size_t *consumed_r, struct smtp_client_reply *reply_r, const char **error_r)
{
	size_t i;
	int r;

	for (i = 0; i < len; i++) {
		char ch = data[i];

		if (ch == '\n') {
			size_t n = p->len;

			if (n > 0 && p->line[n - 1] == '\r')
				n--;
			p->line[n] = '\0';
			p->len = 0;
			r = smtp_reply_line(p, p->line, n, error_r);
			if (r == -1) {
				*consumed_r = i + 1;
				return -1;
			}
			if (r == 1) {
				*consumed_r = i + 1;
				switch (p->reply.code / 100) {
				case 2:
				case 3:
					p->reply.status = SMTP_CLIENT_OK;
					break;
				case 4:
					p->reply.status = SMTP_CLIENT_TEMPFAIL;
					break;
				default:
					p->reply.status = SMTP_CLIENT_PERMFAIL;
					break;
				}
				*reply_r = p->reply;
				smtp_reply_parser_init(p);
				return 1;
			}
			continue;
		}
		if (ch == '\0') {
			*consumed_r = i + 1;
			*error_r = "NUL in reply";
			return -1;
		}
		if (p->len > 0 && p->line[p->len - 1] == '\r') {
			*consumed_r = i + 1;
			*error_r = "bare CR in reply";
			return -1;
		}
		/* The line with its CR LF must fit SMTP_CLIENT_LINE_MAX. */
		if (p->len + 1 >= SMTP_CLIENT_LINE_MAX) {
			*consumed_r = i + 1;
			*error_r = "reply line too long";
			return -1;
		}
		p->line[p->len++] = ch;
	}
	*consumed_r = len;
	return 0;
}

/* ---- EHLO ---- */

void
smtp_client_parse_ehlo(const char *text, struct smtp_ehlo *ehlo_r)
{
	static const struct {
		const char *name;
		unsigned bit;
	} keywords[] = {
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "SIZE", SMTP_EXT_SIZE },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "STARTTLS", SMTP_EXT_STARTTLS },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
		{ "CHUNKING", SMTP_EXT_CHUNKING },
		{ "DSN", SMTP_EXT_DSN },
	};
	const char *line = strchr(text, '\n');   /* the first line is the greeting */

	memset(ehlo_r, 0, sizeof(*ehlo_r));
	while (line != NULL) {
		const char *kw = line + 1, *end = strchr(kw, '\n'), *sp;
		size_t n = end != NULL ? (size_t)(end - kw) : strlen(kw), klen;

		sp = memchr(kw, ' ', n);
		klen = sp != NULL ? (size_t)(sp - kw) : n;
		for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
			if (strlen(keywords[i].name) != klen ||
			    strncasecmp(kw, keywords[i].name, klen) != 0)
				continue;
			ehlo_r->ext |= keywords[i].bit;
			if (keywords[i].bit == SMTP_EXT_SIZE && sp != NULL) {
				uint64_t v = 0;
				const char *d = sp + 1, *dend = kw + n;
				bool ok = d < dend;

				for (; d < dend && ok; d++) {
					if (!is_digit(*d) || v > (UINT64_MAX - 9) / 10)
						ok = false;
					else
						v = v * 10 + (uint64_t)(*d - '0');
				}
				ehlo_r->size_max = ok ? v : 0;
			}
		}
		line = end;
	}
}

/* ---- dot-stuffing ---- */

void
smtp_dotstuff_init(struct smtp_dotstuff *d, smtp_dotstuff_emit_fn *emit, void *ctx)
{
	d->bol = true;
	d->cr = false;
	d->emit = emit;
	d->ctx = ctx;
}

int
smtp_dotstuff_feed(struct smtp_dotstuff *d, const char *data, size_t len)
{
	size_t i, run = 0;   /* data[run..i) is waiting to be emitted */

	for (i = 0; i < len; i++) {
		char ch = data[i];

		if (d->cr != (ch == '\n')) {
			/* a CR not followed by LF, or an LF without its CR */
			return -1;
		}
		if (d->bol && ch == '.') {
			if (i > run)
				d->emit(d->ctx, data + run, i - run);
			d->emit(d->ctx, ".", 1);
			run = i;   /* the original dot follows */
		}
		d->cr = ch == '\r';
		d->bol = ch == '\n';
	}
	if (i > run)
		d->emit(d->ctx, data + run, i - run);
	return 0;
}

int
smtp_dotstuff_finish(struct smtp_dotstuff *d)
{
	if (d->cr)
		return -1;
	if (!d->bol)
		d->emit(d->ctx, "\r\n", 2);
	d->emit(d->ctx, ".\r\n", 3);
	d->bol = true;
	return 0;
}

int
smtp_client_scan_message(const char *data, size_t len, bool *has_8bit_r, size_t *offset_r)
{
	bool cr = false, high = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (cr != (ch == '\n')) {
			*has_8bit_r = high;
			*offset_r = i;
			return -1;
		}
		cr = ch == '\r';
		high |= ch >= 0x80;
	}
	*has_8bit_r = high;
	*offset_r = len;
	if (cr)
		return -1;   /* ends with a bare CR */
	return 0;
}
