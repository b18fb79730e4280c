/*
 * smtp_parse.c: pure parsers for the SMTP command phase: line splitting,
 * verbs, paths and ESMTP parameters. Trusts nothing: every byte is a
 * client's, and every reply text is static or built from checked, capped
 * characters. Standards: RFC 5321 4.1 (grammar), 4.5.3.1 (limits),
 * appendix C (source routes); RFC 1870, 6152, 3030, 3461, 6531, 4954 (AUTH=).
 */
#include "smtp/smtp_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMTP_LINE_DEFAULT_MAX 1000
#define SMTP_DOMAIN_TEXT_MAX 253    /* RFC 1035 name without the root dot */
#define SMTP_LABEL_MAX 63
#define SMTP_ENVID_MAX 100          /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500          /* RFC 3461 4.2 */
#define SMTP_UINT64_DIGITS 20       /* 18446744073709551615 */

/* ---- character classes (ASCII only: never the locale's ctype) ---- */

static bool
c_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
c_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
c_alnum(unsigned char c)
{
	return c_alpha(c) || c_digit(c);
}

static bool
c_hex(unsigned char c)
{
	return c_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned char
c_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static unsigned char
c_upper(unsigned char c)
{
	return c >= 'a' && c <= 'z' ? (unsigned char)(c - ('a' - 'A')) : c;
}

/* RFC 5321 atext (RFC 5322 3.2.3), ASCII part. */
static bool
c_atext(unsigned char c)
{
	return c_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static unsigned
hex_value(unsigned char c)
{
	if (c_digit(c))
		return c - '0';
	return c_lower(c) - 'a' + 10;
}

/* Do s[0..len) and the NUL-terminated word match, ignoring ASCII case? */
static bool
word_eq(const char *s, size_t len, const char *word)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (word[i] == '\0' ||
		    c_upper((unsigned char)s[i]) != c_upper((unsigned char)word[i]))
			return false;
	}
	return word[i] == '\0';
}

/*
 * Length of the well-formed UTF-8 multi-byte sequence at s (RFC 3629:
 * no overlongs, no surrogates, nothing past U+10FFFF), or 0. Reads byte by
 * byte and stops at the first bad one, so a NUL terminator or avail is
 * never passed.
 */
static size_t
utf8_seq_len(const unsigned char *s, size_t avail)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] == 0xe0) {
		n = 3;
		lo = 0xa0;
	} else if (s[0] == 0xed) {
		n = 3;
		hi = 0x9f;
	} else if (s[0] >= 0xe1 && s[0] <= 0xef)
		n = 3;
	else if (s[0] == 0xf0) {
		n = 4;
		lo = 0x90;
	} else if (s[0] == 0xf4) {
		n = 4;
		hi = 0x8f;
	} else if (s[0] >= 0xf1 && s[0] <= 0xf3)
		n = 4;
	else
		return 0;
	if (avail < n || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return n;
}

/* Parse 1..20 decimal digits into a uint64_t; false on anything else. */
static bool
parse_u64(const char *s, size_t len, uint64_t *value_r)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > SMTP_UINT64_DIGITS)
		return false;
	for (i = 0; i < len; i++) {
		unsigned d;

		if (!c_digit((unsigned char)s[i]))
			return false;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*value_r = v;
	return true;
}

/* ---- line reader ---- */

static const char *const line_errors[] = {
	[SMTP_LINE_OK] = "250 2.0.0 Ok",
	[SMTP_LINE_ERR_TOO_LONG] = "500 5.5.2 Line too long",
	[SMTP_LINE_ERR_BARE_LF] = "500 5.5.2 Bad line ending (bare LF or CR)",
	[SMTP_LINE_ERR_BARE_CR] = "500 5.5.2 Bad line ending (bare LF or CR)",
	/* docs/smtp.md's wording, the contract the integration tests check. */
	[SMTP_LINE_ERR_NUL] = "500 5.5.2 NUL in command",
};

int
smtp_line_reader_init(struct smtp_line_reader *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	if (max == 0)
		max = SMTP_LINE_DEFAULT_MAX;
	if (max < 2) {
		/* not even room for the CRLF */
		errno = EINVAL;
		return -1;
	}
	r->buf = malloc(max);
	if (r->buf == NULL)
		return -1;
	r->max = max;
	return 0;
}

void
smtp_line_reader_clear(struct smtp_line_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

/* Remember the first thing wrong with the current line. */
static void
line_fail(struct smtp_line_reader *r, int code)
{
	if (r->pending_error == SMTP_LINE_OK)
		r->pending_error = code;
}

/* Add one octet of line text; past the limit the line is only skipped. */
static void
line_add(struct smtp_line_reader *r, char c)
{
	if (r->pending_error != SMTP_LINE_OK)
		return;
	/* The text may hold max - 2 octets: the CRLF takes the last two. */
	if (r->len + 2 >= r->max) {
		r->skipping = true;
		line_fail(r, SMTP_LINE_ERR_TOO_LONG);
		return;
	}
	r->buf[r->len++] = c;
}

int
smtp_line_reader_feed(struct smtp_line_reader *r, const char *data, size_t len,
    size_t *consumed_r, const char **line_r, size_t *linelen_r,
    int *code_r, const char **error_r)
{
	size_t i;
	int code;

	*consumed_r = 0;
	*line_r = NULL;
	*linelen_r = 0;
	*code_r = SMTP_LINE_OK;
	*error_r = NULL;

	for (i = 0; i < len; i++) {
		char c = data[i];

		if (r->saw_cr) {
			/* The CR of the last byte (maybe of the last feed) is
			 * decided now: before LF it ends the line, else it is
			 * bare, and this byte is handled as usual. */
			r->saw_cr = false;
			if (c == '\n')
				break;
			line_fail(r, SMTP_LINE_ERR_BARE_CR);
		}
		if (c == '\n') {
			/* Only CRLF ends a line: a bare LF never splits one command
			 * into two (the line stays one bad line up to its CRLF). */
			line_fail(r, SMTP_LINE_ERR_BARE_LF);
			continue;
		}
		if (c == '\r')
			r->saw_cr = true;
		else if (c == '\0')
			line_fail(r, SMTP_LINE_ERR_NUL);
		else
			line_add(r, c);
	}
	if (i == len) {
		*consumed_r = len;
		return 0;
	}

	/* data[i] is the LF that ends the line. */
	*consumed_r = i + 1;
	code = r->pending_error;
	r->pending_error = SMTP_LINE_OK;
	r->skipping = false;
	if (code != SMTP_LINE_OK) {
		r->len = 0;
		*code_r = code;
		*error_r = line_errors[code];
		return -1;
	}
	r->buf[r->len] = '\0';
	*line_r = r->buf;
	*linelen_r = r->len;
	r->len = 0;
	return 1;
}

/* ---- commands ---- */

static const char *const cmd_names[SMTP_CMD_COUNT] = {
	[SMTP_CMD_UNKNOWN] = "UNKNOWN",
	[SMTP_CMD_HELO] = "HELO",
	[SMTP_CMD_EHLO] = "EHLO",
	[SMTP_CMD_MAIL] = "MAIL",
	[SMTP_CMD_RCPT] = "RCPT",
	[SMTP_CMD_DATA] = "DATA",
	[SMTP_CMD_BDAT] = "BDAT",
	[SMTP_CMD_RSET] = "RSET",
	[SMTP_CMD_NOOP] = "NOOP",
	[SMTP_CMD_QUIT] = "QUIT",
	[SMTP_CMD_VRFY] = "VRFY",
	[SMTP_CMD_EXPN] = "EXPN",
	[SMTP_CMD_HELP] = "HELP",
	[SMTP_CMD_STARTTLS] = "STARTTLS",
	[SMTP_CMD_AUTH] = "AUTH",
	[SMTP_CMD_HTTP] = "HTTP",
};

/* Request methods of a browser or proxy client that found an SMTP port. */
static const char *const http_verbs[] = {
	"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE", "TRACE",
	"PATCH",
};

const char *
smtp_cmd_name(enum smtp_cmd cmd)
{
	if ((int)cmd < 0 || cmd >= SMTP_CMD_COUNT)
		return cmd_names[SMTP_CMD_UNKNOWN];
	return cmd_names[cmd];
}

enum smtp_cmd
smtp_parse_command(const char *line, size_t len, const char **args_r)
{
	enum smtp_cmd cmd = SMTP_CMD_UNKNOWN;
	size_t vlen, i;
	int c;

	*args_r = NULL;
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	for (c = SMTP_CMD_UNKNOWN + 1; c < SMTP_CMD_HTTP; c++) {
		if (word_eq(line, vlen, cmd_names[c])) {
			cmd = (enum smtp_cmd)c;
			break;
		}
	}
	if (cmd == SMTP_CMD_UNKNOWN && vlen < len) {
		for (i = 0; i < sizeof(http_verbs) / sizeof(http_verbs[0]); i++) {
			if (word_eq(line, vlen, http_verbs[i])) {
				cmd = SMTP_CMD_HTTP;
				break;
			}
		}
	}
	/* Arguments start after one SP; spaces alone are no arguments. */
	for (i = vlen; i < len && line[i] == ' '; i++)
		;
	if (i < len)
		*args_r = line + vlen + 1;
	return cmd;
}

/* ---- domains and address literals ---- */

bool
smtp_domain_valid(const char *text, size_t len, bool allow_utf8)
{
	const unsigned char *s = (const unsigned char *)text;
	bool all_digits = true;
	size_t i = 0;

	if (text == NULL || len == 0 || len > SMTP_DOMAIN_TEXT_MAX)
		return false;
	while (i < len) {
		size_t start = i, n;

		all_digits = true;
		while (i < len && s[i] != '.') {
			if (s[i] >= 0x80) {
				/* a U-label (RFC 6531): UTF-8, same LDH shape */
				n = allow_utf8 ? utf8_seq_len(s + i, len - i) : 0;
				if (n == 0)
					return false;
				i += n;
				all_digits = false;
			} else if (c_alnum(s[i]) || s[i] == '-') {
				if (!c_digit(s[i]))
					all_digits = false;
				i++;
			} else
				return false;
		}
		if (i == start || i - start > SMTP_LABEL_MAX ||
		    s[start] == '-' || s[i - 1] == '-')
			return false;
		if (i < len && ++i == len)
			return false;   /* trailing dot */
	}
	/* An all-numeric top label is an IP address without its brackets
	 * (RFC 3696 2); names like that are refused, as Postfix does. */
	return !all_digits;
}

/*
 * Parse "[a.b.c.d]" or "[IPv6:addr]" (RFC 5321 4.1.3) of text[0..len) and
 * write its normal form ("[IPv6:" + lower-case address + "]") to out.
 * General-address-literals (other tags) are refused.
 */
static bool
literal_parse(const char *text, size_t len, char *out, size_t outsize)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned char bin[16];
	const char *in;
	size_t ilen, i, groups = 0;
	bool v6, compressed = false;

	if (len < 3 || text[0] != '[' || text[len - 1] != ']')
		return false;
	in = text + 1;
	ilen = len - 2;
	v6 = ilen > 5 && word_eq(in, 5, "IPv6:");
	if (v6) {
		in += 5;
		ilen -= 5;
	}
	if (ilen == 0 || ilen >= sizeof(addr))
		return false;
	for (i = 0; i < ilen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (!(c_digit(c) || c == '.' || (v6 && (c_hex(c) || c == ':'))))
			return false;
		addr[i] = (char)c_lower(c);
	}
	addr[ilen] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1)
		return false;
	if (v6) {
		/* RFC 5321 IPv6-comp: "::" stands for at least two groups,
		 * so at most 6 groups (an IPv4 tail counts 2) may go with it.
		 * inet_pton accepts "::" for a single group. */
		for (i = 0; i < ilen; i++) {
			if (addr[i] == ':' && addr[i + 1] == ':')
				compressed = true;
			if (addr[i] != ':' && (i == 0 || addr[i - 1] == ':'))
				groups += strchr(addr + i, '.') != NULL &&
				    strchr(addr + i, ':') == NULL ? 2 : 1;
		}
		if (compressed && groups > 6)
			return false;
	}
	return (size_t)snprintf(out, outsize, "[%s%s]", v6 ? "IPv6:" : "",
	    addr) < outsize;
}

/* ---- paths ---- */

enum addr_err {
	ADDR_ERR_SYNTAX = 0,
	ADDR_ERR_LOCAL_LONG,
	ADDR_ERR_DOMAIN_LONG,
	ADDR_ERR_PATH_LONG,
	ADDR_ERR_KEYWORD,
	ADDR_ERR_COUNT
};

static const char *const addr_errors[2][ADDR_ERR_COUNT] = {
	{   /* RCPT */
		[ADDR_ERR_SYNTAX] = "501 5.1.3 Bad recipient address syntax",
		[ADDR_ERR_LOCAL_LONG] = "501 5.1.3 Recipient address rejected: local part too long",
		[ADDR_ERR_DOMAIN_LONG] = "501 5.1.3 Recipient address rejected: domain too long",
		[ADDR_ERR_PATH_LONG] = "501 5.1.3 Recipient address rejected: path too long",
		[ADDR_ERR_KEYWORD] = "501 5.5.4 Syntax: RCPT TO:<address>",
	},
	{   /* MAIL */
		[ADDR_ERR_SYNTAX] = "501 5.1.7 Bad sender address syntax",
		[ADDR_ERR_LOCAL_LONG] = "501 5.1.7 Sender address rejected: local part too long",
		[ADDR_ERR_DOMAIN_LONG] = "501 5.1.7 Sender address rejected: domain too long",
		[ADDR_ERR_PATH_LONG] = "501 5.1.7 Sender address rejected: path too long",
		[ADDR_ERR_KEYWORD] = "501 5.5.4 Syntax: MAIL FROM:<address>",
	},
};

/*
 * Parse a Domain or, when literal_ok, an address-literal at *pp; on success
 * *pp is past it and out (SMTP_DOMAIN_MAX + 1 bytes) holds it lower-cased.
 * Returns 0 or -1 with *err_r set.
 */
static int
path_domain(const char **pp, bool literal_ok, bool utf8_ok, char *out,
    bool *literal_r, bool *utf8_r, int *err_r)
{
	const unsigned char *s = (const unsigned char *)*pp;
	size_t len, i;

	*err_r = ADDR_ERR_SYNTAX;
	if (s[0] == '[') {
		if (!literal_ok)
			return -1;
		for (len = 1; s[len] != ']'; len++) {
			/* dcontent: printable, no SP, no brackets or '\' */
			if (s[len] < 33 || s[len] > 126 || s[len] == '[' ||
			    s[len] == '\\' || len >= SMTP_DOMAIN_MAX)
				return -1;
		}
		len++;
		if (!literal_parse(*pp, len, out, SMTP_DOMAIN_MAX + 1))
			return -1;
		*literal_r = true;
		*pp += len;
		return 0;
	}
	for (len = 0; c_alnum(s[len]) || s[len] == '-' || s[len] == '.' ||
	    s[len] >= 0x80; len++)
		;
	if (len > SMTP_DOMAIN_TEXT_MAX) {
		*err_r = ADDR_ERR_DOMAIN_LONG;
		return -1;
	}
	if (!smtp_domain_valid(*pp, len, utf8_ok))
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] >= 0x80)
			*utf8_r = true;
		out[i] = (char)c_lower(s[i]);
	}
	out[len] = '\0';
	*pp += len;
	return 0;
}

/*
 * Parse a Local-part (Dot-string or Quoted-string, RFC 5321 4.1.2, with
 * RFC 6531 UTF-8) at *pp into a->local, dequoted. At most SMTP_LOCAL_MAX
 * octets as written (quotes and backslashes count). 0 or -1 with *err_r.
 */
static int
path_local(const char **pp, struct smtp_address *a, int *err_r)
{
	const unsigned char *start = (const unsigned char *)*pp, *s = start;
	size_t n = 0, seq;

	*err_r = ADDR_ERR_SYNTAX;
	if (*s == '"') {
		a->quoted_local = true;
		for (s++; *s != '"'; ) {
			if ((size_t)(s - start) >= SMTP_LOCAL_MAX) {
				*err_r = ADDR_ERR_LOCAL_LONG;
				return -1;
			}
			if (*s == '\\') {
				/* quoted-pairSMTP: printable ASCII only */
				if (s[1] < 32 || s[1] > 126)
					return -1;
				a->local[n++] = (char)s[1];
				s += 2;
			} else if (*s >= 32 && *s <= 126) {
				a->local[n++] = (char)*s++;
			} else if (*s >= 0x80 &&
			    (seq = utf8_seq_len(s, SIZE_MAX)) > 0) {
				a->utf8 = true;
				memcpy(a->local + n, s, seq);
				n += seq;
				s += seq;
			} else
				return -1;   /* controls, bad UTF-8, the end */
		}
		s++;
	} else {
		bool atom = false;   /* inside an Atom (after a non-dot) */

		for (;;) {
			if ((size_t)(s - start) > SMTP_LOCAL_MAX) {
				*err_r = ADDR_ERR_LOCAL_LONG;
				return -1;
			}
			if (c_atext(*s)) {
				a->local[n++] = (char)*s++;
				atom = true;
			} else if (*s >= 0x80 &&
			    (seq = utf8_seq_len(s, SIZE_MAX)) > 0) {
				a->utf8 = true;
				memcpy(a->local + n, s, seq);
				n += seq;
				s += seq;
				atom = true;
			} else if (*s == '.' && atom) {
				a->local[n++] = '.';
				s++;
				atom = false;
			} else
				break;
		}
		if (!atom)
			return -1;   /* empty, or a leading/trailing dot */
	}
	if ((size_t)(s - start) > SMTP_LOCAL_MAX) {
		*err_r = ADDR_ERR_LOCAL_LONG;
		return -1;
	}
	/* An empty mailbox name ("") is legal grammar but never a user. */
	if (n == 0)
		return -1;
	a->local[n] = '\0';
	*pp = (const char *)s;
	return 0;
}

/*
 * Parse "<path>" at *pp (RFC 5321 4.1.2, and RFC 6531 for UTF-8).
 * Reverse-path rules (<>, <user>) when mail, forward-path (<Postmaster>)
 * otherwise. Returns 0 with *pp past '>', or -1 with *err_r.
 */
static int
path_parse(const char **pp, bool mail, struct smtp_address *a, int *err_r)
{
	const char *start = *pp, *p = start + 1;
	char route[SMTP_DOMAIN_MAX + 1];
	bool ignored_literal = false, ignored_utf8 = false, routed;

	*err_r = ADDR_ERR_SYNTAX;
	if (*start != '<')
		return -1;
	if (*p == '>') {
		if (!mail)
			return -1;
		a->null_path = true;
		*pp = p + 1;
		return 0;
	}
	if (*p == '@') {
		/* A-d-l ":": a source route, validated and dropped (C) */
		for (;;) {
			if (*p != '@')
				return -1;
			p++;
			if (path_domain(&p, false, false, route,
			    &ignored_literal, &ignored_utf8, err_r) < 0)
				return -1;
			if (*p == ':')
				break;
			if (*p != ',')
				return -1;
			p++;
		}
		p++;
		if ((size_t)(p - start) >= SMTP_PATH_MAX) {
			*err_r = ADDR_ERR_PATH_LONG;
			return -1;
		}
	}
	routed = p != start + 1;
	if (path_local(&p, a, err_r) < 0)
		return -1;
	if (*p == '@') {
		p++;
		if (path_domain(&p, true, true, a->domain, &a->domain_literal,
		    &a->utf8, err_r) < 0)
			return -1;
	} else if (*p == '>' && !mail && !routed && !a->quoted_local &&
	    word_eq(a->local, strlen(a->local), "postmaster")) {
		/* exactly <Postmaster>, any case (RFC 5321 4.1.1.3) */
		a->postmaster_only = true;
	} else if (!(*p == '>' && mail)) {
		/* <user> as a sender parses, with no domain: docs/smtp.md
		 * wants "553 5.1.8 need fully-qualified address" for it,
		 * which the session decides. */
		return -1;
	}
	if (*p != '>')
		return -1;
	p++;
	if ((size_t)(p - start) > SMTP_PATH_MAX) {
		*err_r = ADDR_ERR_PATH_LONG;
		return -1;
	}
	*pp = p;
	return 0;
}

/* The shared half of smtp_parse_mail and smtp_parse_rcpt. */
static int
parse_mail_rcpt(const char *args, bool mail, struct smtp_address *addr_r,
    const char **params_r, const char **error_r)
{
	const char *keyword = mail ? "FROM:" : "TO:";
	size_t klen = strlen(keyword), i;
	const char *p;
	int err;

	memset(addr_r, 0, sizeof(*addr_r));
	*params_r = NULL;
	*error_r = NULL;
	if (args == NULL || strlen(args) < klen || !word_eq(args, klen, keyword)) {
		*error_r = addr_errors[mail][ADDR_ERR_KEYWORD];
		return -1;
	}
	p = args + klen;
	/* RFC 5321 has no space here; one is so common (Postfix takes it)
	 * that it is accepted, but only one. */
	if (*p == ' ')
		p++;
	if (path_parse(&p, mail, addr_r, &err) < 0) {
		memset(addr_r, 0, sizeof(*addr_r));
		*error_r = addr_errors[mail][err];
		return -1;
	}
	for (i = 0; p[i] == ' '; i++)
		;
	if (p[i] == '\0')
		return 1;   /* no parameters; trailing spaces tolerated */
	if (*p != ' ') {
		memset(addr_r, 0, sizeof(*addr_r));
		*error_r = addr_errors[mail][ADDR_ERR_SYNTAX];
		return -1;
	}
	*params_r = p + 1;
	return 1;
}

int
smtp_parse_mail(const char *args, struct smtp_address *addr_r,
    const char **params_r, const char **error_r)
{
	return parse_mail_rcpt(args, true, addr_r, params_r, error_r);
}

int
smtp_parse_rcpt(const char *args, struct smtp_address *addr_r,
    const char **params_r, const char **error_r)
{
	return parse_mail_rcpt(args, false, addr_r, params_r, error_r);
}

/* ---- ESMTP parameters ---- */

#define PARAM_ERR_SYNTAX "555 5.5.4 Bad parameter syntax"

/* One "keyword[=value]" of a parameter list. */
struct esmtp_param {
	const char *kw;
	size_t kwlen;
	const char *val;    /* NULL when there is no "=" */
	size_t vallen;
};

/*
 * Take the next parameter from *pp: esmtp-keyword ["=" esmtp-value]
 * (RFC 5321 4.1.2), parameters apart by one SP, trailing spaces ignored.
 * Returns 1 with *param_r, 0 at the end, -1 on bad syntax.
 */
static int
param_next(const char **pp, struct esmtp_param *param_r)
{
	const unsigned char *s = (const unsigned char *)*pp;
	size_t i;

	for (i = 0; s[i] == ' '; i++)
		;
	if (s[i] == '\0')
		return 0;
	if (i > 0)
		return -1;   /* empty parameter: two spaces, or a leading one */
	memset(param_r, 0, sizeof(*param_r));
	param_r->kw = (const char *)s;
	if (!c_alnum(s[0]))
		return -1;
	for (i = 1; c_alnum(s[i]) || s[i] == '-'; i++)
		;
	param_r->kwlen = i;
	if (s[i] == '=') {
		size_t vstart = ++i;

		param_r->val = (const char *)s + i;
		/* esmtp-value: %d33-60 / %d62-126 */
		for (; s[i] >= 33 && s[i] <= 126 && s[i] != '='; i++)
			;
		param_r->vallen = i - vstart;
		if (param_r->vallen == 0)
			return -1;
	}
	if (s[i] == ' ')
		*pp = (const char *)s + i + 1;
	else if (s[i] == '\0')
		*pp = (const char *)s + i;
	else
		return -1;
	return 1;
}

static bool
param_is(const struct esmtp_param *param, const char *kw)
{
	return word_eq(param->kw, param->kwlen, kw);
}

/* "555 5.5.4 Unsupported parameter: NAME"; NAME is checked keyword text,
 * capped. Valid until the next call in this thread. */
static const char *
param_unsupported(const struct esmtp_param *param)
{
	static _Thread_local char reply[80];

	snprintf(reply, sizeof(reply), "555 5.5.4 Unsupported parameter: %.*s",
	    (int)(param->kwlen > 32 ? 32 : param->kwlen), param->kw);
	return reply;
}

/*
 * Check RFC 3461 xtext (xchar / "+" 2HEXDIG) and decode it into out
 * (outsize bytes, NUL-terminated) when out is not NULL. Decoded octets
 * must be printable ASCII (a "+00" must not cut a string short). Lower
 * case hex digits are tolerated: the decoding is the same.
 */
static bool
xtext_decode(const char *text, size_t len, char *out, size_t outsize)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i, n = 0;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c == '+') {
			if (len - i < 3 || !c_hex(s[i + 1]) || !c_hex(s[i + 2]))
				return false;
			c = (unsigned char)(hex_value(s[i + 1]) << 4 |
			    hex_value(s[i + 2]));
			i += 2;
			if (c < 32 || c > 126)
				return false;
		} else if (c < 33 || c > 126 || c == '=')
			return false;
		if (out != NULL) {
			if (n + 1 >= outsize)
				return false;
			out[n++] = (char)c;
		}
	}
	if (out != NULL)
		out[n] = '\0';
	return true;
}

int
smtp_parse_mail_params(const char *params, struct smtp_mail_params *p_r,
    const char **error_r)
{
	struct esmtp_param param;
	bool seen_size = false, seen_body = false, seen_auth = false;
	int ret;

	memset(p_r, 0, sizeof(*p_r));
	p_r->body = SMTP_BODY_7BIT;
	*error_r = NULL;
	if (params == NULL)
		return 1;
	while ((ret = param_next(&params, &param)) > 0) {
		if (param_is(&param, "SIZE")) {
			/* RFC 1870 */
			if (seen_size) {
				*error_r = "555 5.5.4 Duplicate SIZE parameter";
				return -1;
			}
			seen_size = true;
			if (param.val == NULL ||
			    !parse_u64(param.val, param.vallen, &p_r->size)) {
				*error_r = "555 5.5.4 Bad SIZE parameter";
				return -1;
			}
		} else if (param_is(&param, "BODY")) {
			/* RFC 6152, RFC 3030 */
			if (seen_body) {
				*error_r = "555 5.5.4 Duplicate BODY parameter";
				return -1;
			}
			seen_body = true;
			if (param.val != NULL && word_eq(param.val, param.vallen, "7BIT"))
				p_r->body = SMTP_BODY_7BIT;
			else if (param.val != NULL &&
			    word_eq(param.val, param.vallen, "8BITMIME"))
				p_r->body = SMTP_BODY_8BITMIME;
			else if (param.val != NULL &&
			    word_eq(param.val, param.vallen, "BINARYMIME"))
				p_r->body = SMTP_BODY_BINARYMIME;
			else {
				*error_r = "555 5.5.4 Bad BODY parameter";
				return -1;
			}
		} else if (param_is(&param, "SMTPUTF8")) {
			/* RFC 6531 3.4 */
			if (p_r->smtputf8) {
				*error_r = "555 5.5.4 Duplicate SMTPUTF8 parameter";
				return -1;
			}
			if (param.val != NULL) {
				*error_r = "555 5.5.4 Bad SMTPUTF8 parameter";
				return -1;
			}
			p_r->smtputf8 = true;
		} else if (param_is(&param, "RET")) {
			/* RFC 3461 4.3 */
			if (p_r->ret[0] != '\0') {
				*error_r = "555 5.5.4 Duplicate RET parameter";
				return -1;
			}
			if (param.val != NULL && word_eq(param.val, param.vallen, "FULL"))
				memcpy(p_r->ret, "FULL", sizeof("FULL"));
			else if (param.val != NULL &&
			    word_eq(param.val, param.vallen, "HDRS"))
				memcpy(p_r->ret, "HDRS", sizeof("HDRS"));
			else {
				*error_r = "555 5.5.4 Bad RET parameter";
				return -1;
			}
		} else if (param_is(&param, "ENVID")) {
			/* RFC 3461 4.4 */
			if (p_r->envid[0] != '\0') {
				*error_r = "555 5.5.4 Duplicate ENVID parameter";
				return -1;
			}
			if (param.val == NULL || param.vallen > SMTP_ENVID_MAX ||
			    !xtext_decode(param.val, param.vallen, p_r->envid,
			    sizeof(p_r->envid))) {
				p_r->envid[0] = '\0';
				*error_r = "555 5.5.4 Bad ENVID parameter";
				return -1;
			}
		} else if (param_is(&param, "AUTH")) {
			/* RFC 4954 5: AUTH=<> or AUTH=xtext mailbox. Clients
			 * (sendmail) send it when we offer AUTH; it is checked
			 * and ignored, the session's own login decides. */
			if (seen_auth) {
				*error_r = "555 5.5.4 Duplicate AUTH parameter";
				return -1;
			}
			seen_auth = true;
			if (param.val == NULL ||
			    (!word_eq(param.val, param.vallen, "<>") &&
			    !xtext_decode(param.val, param.vallen, NULL, 0))) {
				*error_r = "555 5.5.4 Bad AUTH parameter";
				return -1;
			}
		} else {
			*error_r = param_unsupported(&param);
			return -1;
		}
	}
	if (ret < 0) {
		*error_r = PARAM_ERR_SYNTAX;
		return -1;
	}
	return 1;
}

/* NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
static bool
notify_valid(const char *val, size_t len)
{
	static const char *const words[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
	unsigned seen = 0, count = 0, w;
	size_t i = 0, start;

	while (i <= len) {
		for (start = i; i < len && val[i] != ','; i++)
			;
		for (w = 0; w < 4; w++) {
			if (word_eq(val + start, i - start, words[w]))
				break;
		}
		if (w == 4 || (seen & (1u << w)) != 0)
			return false;
		seen |= 1u << w;
		count++;
		i++;   /* past the comma, or past the end to stop */
	}
	return !((seen & 1u) != 0 && count > 1);   /* NEVER stands alone */
}

/* ORCPT=addr-type;xtext (RFC 3461 4.2). */
static bool
orcpt_valid(const char *val, size_t len)
{
	size_t i;

	if (len > SMTP_ORCPT_MAX)
		return false;
	for (i = 0; i < len && val[i] != ';'; i++) {
		if (!c_atext((unsigned char)val[i]))
			return false;
	}
	if (i == 0 || i == len)
		return false;
	return xtext_decode(val + i + 1, len - i - 1, NULL, 0);
}

int
smtp_parse_rcpt_params(const char *params, const char **error_r)
{
	struct esmtp_param param;
	bool seen_notify = false, seen_orcpt = false;
	int ret;

	*error_r = NULL;
	if (params == NULL)
		return 1;
	while ((ret = param_next(&params, &param)) > 0) {
		if (param_is(&param, "NOTIFY")) {
			if (seen_notify) {
				*error_r = "555 5.5.4 Duplicate NOTIFY parameter";
				return -1;
			}
			seen_notify = true;
			if (param.val == NULL || !notify_valid(param.val, param.vallen)) {
				*error_r = "555 5.5.4 Bad NOTIFY parameter";
				return -1;
			}
		} else if (param_is(&param, "ORCPT")) {
			if (seen_orcpt) {
				*error_r = "555 5.5.4 Duplicate ORCPT parameter";
				return -1;
			}
			seen_orcpt = true;
			if (param.val == NULL || !orcpt_valid(param.val, param.vallen)) {
				*error_r = "555 5.5.4 Bad ORCPT parameter";
				return -1;
			}
		} else {
			*error_r = param_unsupported(&param);
			return -1;
		}
	}
	if (ret < 0) {
		*error_r = PARAM_ERR_SYNTAX;
		return -1;
	}
	return 1;
}

/* ---- HELO/EHLO, BDAT ---- */

int
smtp_parse_helo(const char *args, bool allow_single_label, const char **error_r)
{
	char literal[SMTP_DOMAIN_MAX + 1];
	size_t len;
	bool ok;

	*error_r = NULL;
	len = args == NULL ? 0 : strlen(args);
	while (len > 0 && args[len - 1] == ' ')
		len--;   /* trailing spaces tolerated, as after any verb */
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		ok = false;
	else if (args[0] == '[')
		ok = literal_parse(args, len, literal, sizeof(literal));
	else
		ok = smtp_domain_valid(args, len, false) &&
		    (allow_single_label || memchr(args, '.', len) != NULL);
	if (!ok) {
		*error_r = "501 5.5.4 Invalid HELO/EHLO hostname";
		return -1;
	}
	return 1;
}

int
smtp_parse_bdat(const char *args, uint64_t *size_r, bool *last_r,
    const char **error_r)
{
	size_t n, i;

	*size_r = 0;
	*last_r = false;
	*error_r = NULL;
	if (args == NULL)
		goto fail;
	for (n = 0; c_digit((unsigned char)args[n]); n++)
		;
	if (!parse_u64(args, n, size_r))
		goto fail;
	i = n;
	if (args[i] == ' ' && word_eq(args + i + 1, 4, "LAST") &&
	    (args[i + 5] == ' ' || args[i + 5] == '\0')) {
		*last_r = true;
		i += 5;
	}
	while (args[i] == ' ')
		i++;
	if (args[i] != '\0')
		goto fail;
	return 1;
fail:
	*size_r = 0;
	*last_r = false;
	*error_r = "501 5.5.4 Syntax: BDAT size [LAST]";
	return -1;
}
