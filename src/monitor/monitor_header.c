/*
 * monitor_header.c: the two header fields the detectors read from an
 * authenticated user's message, From and Subject (RFC 5322 3.6.2, 3.6.5;
 * unfolding 2.2.3). Pure; trusts nothing: the block may be cut anywhere,
 * hold any byte, and outputs are bounded. Not a full address parser: a
 * From it cannot read yields no address, which counts as no mismatch.
 */
#include "monitor/monitor_account.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MONITOR_HEADER_VALUE_MAX 1024   /* of a From: value looked at */

int
monitor_header_field(const char *msg, size_t len, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name), i = 0, o = 0;

	if (outlen == 0)
		return 0;
	out[0] = '\0';
	while (i < len) {
		size_t eol = i;

		while (eol < len && msg[eol] != '\n')
			eol++;
		if (eol == i || (eol == i + 1 && msg[i] == '\r'))
			return 0;   /* the empty line: end of the header */
		if (eol - i > nlen && strncasecmp(msg + i, name, nlen) == 0 && msg[i + nlen] == ':') {
			size_t p = i + nlen + 1;

			for (;;) {
				/* copy this line (without CR LF), then any continuation */
				for (; p < eol; p++) {
					/* controls (CR, TAB, NUL, ...) read as blanks */
					char c = (unsigned char)msg[p] < 0x20 || msg[p] == 0x7f ? ' ' : msg[p];

					if (c == ' ' && (o == 0 || out[o - 1] == ' '))
						continue;
					if (o + 1 < outlen)
						out[o++] = c;
				}
				if (eol + 1 < len && (msg[eol + 1] == ' ' || msg[eol + 1] == '\t')) {
					p = eol + 1;
					for (eol = p; eol < len && msg[eol] != '\n'; eol++)
						;
					continue;
				}
				break;
			}
			while (o > 0 && out[o - 1] == ' ')
				o--;
			out[o] = '\0';
			return 1;
		}
		i = eol + 1;
	}
	return 0;
}

/* Append value[a..b) trimmed to out[n] when it looks like local@domain. */
static size_t
address_add(const char *a, const char *b, char out[][320], size_t n, size_t max)
{
	size_t len;

	while (a < b && (*a == ' ' || *a == '"'))
		a++;
	while (b > a && (b[-1] == ' ' || b[-1] == '"' || b[-1] == ',' || b[-1] == ';'))
		b--;
	len = (size_t)(b - a);
	if (n >= max || len == 0 || len >= 320 || memchr(a, '@', len) == NULL)
		return n;
	for (const char *p = a; p < b; p++)
		if (*p == '<' || *p == '>' || (unsigned char)*p <= ' ' || *p == 0x7f)
			return n;   /* not an addr-spec: not counted (as no address) */
	memcpy(out[n], a, len);
	out[n][len] = '\0';
	return n + 1;
}

size_t
monitor_header_addresses(const char *value, char out[][320], size_t max)
{
	char buf[MONITOR_HEADER_VALUE_MAX];
	size_t n = 0, o = 0;
	int depth = 0;
	bool quoted = false;
	const char *p;

	/* Drop (comments) and "quoted strings" first: display names may hold anything. */
	for (p = value; *p != '\0' && o + 1 < sizeof(buf); p++) {
		if (quoted) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				quoted = false;
			continue;
		}
		if (depth > 0) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
			continue;
		}
		if (*p == '"')
			quoted = true;
		else if (*p == '(')
			depth = 1;
		else
			buf[o++] = *p;
	}
	buf[o] = '\0';
	if (strchr(buf, '<') != NULL) {
		for (p = buf; (p = strchr(p, '<')) != NULL; ) {
			const char *q = strchr(p + 1, '>');

			if (q == NULL)
				break;
			n = address_add(p + 1, q, out, n, max);
			p = q + 1;
		}
		return n;
	}
	for (p = buf; *p != '\0'; ) {
		const char *start;

		if (*p == ' ' || *p == ',') {
			p++;
			continue;
		}
		start = p;
		while (*p != '\0' && *p != ' ' && *p != ',')
			p++;
		n = address_add(start, p, out, n, max);
	}
	return n;
}
