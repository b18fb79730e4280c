/*
 * smtp_data.c: DATA/BDAT content state machine. Trusts nothing; every byte
 * is the client's. See smtp_data.h for the rules. RFC 5321 4.5.2, RFC 3030.
 */
#include "smtp/smtp_data.h"

enum {
	S_BOL = 0,      /* at a line start after CRLF (or the start) */
	S_BOL_LF,       /* at a line start after a bare LF */
	S_DOT,          /* "." at S_BOL */
	S_DOT_CR,       /* ".\r" at S_BOL */
	S_DOT_LF,       /* "." at S_BOL_LF */
	S_DOT_LF_CR,    /* ".\r" at S_BOL_LF */
	S_TEXT,         /* inside a line */
	S_CR,           /* "\r" inside a line (or on an empty one) */
};

void
smtp_data_init(struct smtp_data_parser *p, bool bdat, bool reject_bare_lf,
    size_t max_line, size_t max_size, smtp_data_emit_fn *emit, void *ctx)
{
	*p = (struct smtp_data_parser){
		.state = S_BOL,
		.bdat = bdat,
		.reject_bare_lf = reject_bare_lf,
		.max_line = max_line,
		.max_size = max_size,
		.emit = emit,
		.ctx = ctx,
	};
}

static void
out(struct smtp_data_parser *p, const char *s, size_t n)
{
	p->size += n;
	if (p->max_size > 0 && p->size > p->max_size) {
		p->flags |= SMTP_DATA_TOO_BIG;
		return;
	}
	if (p->flags & (SMTP_DATA_TOO_BIG))
		return;
	if (p->emit != NULL)
		p->emit(p->ctx, s, n);
}

static void
line_end(struct smtp_data_parser *p, bool bare_lf)
{
	out(p, "\r\n", 2);
	p->line_len = 0;
	p->state = bare_lf ? S_BOL_LF : S_BOL;
	if (bare_lf)
		p->flags |= SMTP_DATA_BARE_LF;
}

/* A byte inside a line (S_TEXT semantics). */
static void
text_byte(struct smtp_data_parser *p, char c)
{
	switch (c) {
	case '\r':
		p->state = S_CR;
		break;
	case '\n':
		line_end(p, true);
		break;
	default:
		out(p, &c, 1);
		p->state = S_TEXT;
		break;
	}
}

/* The byte after a CR that was not followed by LF. */
static void
bare_cr(struct smtp_data_parser *p, char c)
{
	p->flags |= SMTP_DATA_BARE_CR;
	out(p, "\r", 1);
	p->state = S_TEXT;
	text_byte(p, c);
}

int
smtp_data_feed(struct smtp_data_parser *p, const char *data, size_t len, size_t *consumed_r)
{
	for (size_t i = 0; i < len; i++) {
		char c = data[i];

		if (++p->line_len > p->max_line && p->max_line > 0)
			p->flags |= SMTP_DATA_LINE_TOO_LONG;
		switch (p->state) {
		case S_BOL:
		case S_BOL_LF:
			if (c == '.' && !p->bdat) {
				p->state = p->state == S_BOL ? S_DOT : S_DOT_LF;
				break;
			}
			text_byte(p, c);
			break;
		case S_DOT:
			if (c == '\r') {
				p->state = S_DOT_CR;
			} else if (c == '\n') {
				p->flags |= SMTP_DATA_LOOKALIKE;   /* CRLF "." LF */
				out(p, ".", 1);
				line_end(p, true);
			} else {
				p->line_len--;   /* the stuffing dot is not counted (RFC 5321 4.5.3.1.6) */
				text_byte(p, c);   /* the first dot is stuffing: dropped */
			}
			break;
		case S_DOT_CR:
			if (c == '\n') {
				*consumed_r = i + 1;
				p->line_len = 0;
				p->state = S_BOL;
				return 1;
			}
			out(p, ".", 1);   /* CRLF "." CR x: a bare CR */
			bare_cr(p, c);
			break;
		case S_DOT_LF:
			if (c == '\r') {
				p->state = S_DOT_LF_CR;
			} else if (c == '\n') {
				p->flags |= SMTP_DATA_LOOKALIKE;   /* LF "." LF */
				out(p, ".", 1);
				line_end(p, true);
			} else {
				p->line_len--;   /* as in S_DOT */
				text_byte(p, c);
			}
			break;
		case S_DOT_LF_CR:
			out(p, ".", 1);
			if (c == '\n') {
				p->flags |= SMTP_DATA_LOOKALIKE;   /* LF "." CRLF */
				line_end(p, false);
			} else {
				bare_cr(p, c);
			}
			break;
		case S_TEXT:
			text_byte(p, c);
			break;
		case S_CR:
			if (c == '\n')
				line_end(p, false);
			else
				bare_cr(p, c);
			break;
		}
	}
	*consumed_r = len;
	return 0;
}

void
smtp_data_finish_bdat(struct smtp_data_parser *p)
{
	if (p->state == S_CR) {
		p->flags |= SMTP_DATA_BARE_CR;
		out(p, "\r", 1);
		p->state = S_TEXT;
	}
	if (p->state == S_TEXT)
		out(p, "\r\n", 2);   /* the message ends with a line end */
	p->state = S_BOL;
}

const char *
smtp_data_error(const struct smtp_data_parser *p)
{
	if (p->flags & SMTP_DATA_TOO_BIG)
		return "552 5.3.4 Message size exceeds fixed limit";
	if (p->flags & SMTP_DATA_LINE_TOO_LONG)
		return "500 5.5.2 Line too long";
	if (p->flags & SMTP_DATA_BARE_CR)
		return "550 5.6.0 Message refused: bare CR (carriage return without line feed)";
	if (p->flags & SMTP_DATA_LOOKALIKE)
		return "550 5.6.0 Message refused: end-of-data look-alike (SMTP smuggling)";
	if ((p->flags & SMTP_DATA_BARE_LF) && p->reject_bare_lf)
		return "550 5.6.0 Message refused: bare LF (line feed without carriage return)";
	return NULL;
}
