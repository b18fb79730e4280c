/*
 * ctl_print.c: what every bulwarkctl verb prints with: one-line complaints
 * on stderr, text made safe for a terminal, JSON strings (RFC 8259) and UTC
 * times. Trusts no text it is given: what comes from the database or the
 * spool may hold any byte, and leaves here escaped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cmd/ctl.h"

int
complain(const struct ctl *ctl, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	if (ctl != NULL && ctl->name != NULL)
		fprintf(stderr, "%s: ", ctl->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

/* Report a directory failure; error may be NULL (out of memory). */
int
complain_error(const struct ctl *ctl, char *error)
{
	complain(ctl, "%s", error != NULL ? error : "out of memory");
	free(error);
	return EXIT_FAIL;
}

/* Text for a terminal: control bytes and backslashes as \xHH. */
const char *
printable(char *buf, size_t buflen, const char *s)
{
	size_t o = 0;

	if (s == NULL)
		return "-";
	for (; *s != '\0' && o + 5 < buflen; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == '\\')
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

/* ---- JSON output ---- */

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t len;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		len = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string (RFC 8259): escapes, and U+FFFD for bytes that are not UTF-8. */
void
json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	while (*p != '\0') {
		size_t len;

		switch (*p) {
		case '"': fputs("\\\"", out); p++; continue;
		case '\\': fputs("\\\\", out); p++; continue;
		case '\n': fputs("\\n", out); p++; continue;
		case '\r': fputs("\\r", out); p++; continue;
		case '\t': fputs("\\t", out); p++; continue;
		default: break;
		}
		if (*p < 0x20 || *p == 0x7f) {
			fprintf(out, "\\u%04x", *p);
			p++;
		} else if ((len = utf8_len(p)) == 0) {
			fputs("\\ufffd", out);
			p++;
		} else {
			fwrite(p, 1, len, out);
			p += len;
		}
	}
	fputc('"', out);
}

/* ---- times ---- */

void
format_time(int64_t t, char *buf, size_t buflen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		snprintf(buf, buflen, "-");
	else
		strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
