/*
 * http_form.c: a strict parser of small application/x-www-form-urlencoded
 * bodies (HTML 5 "URL-encoded form data"; percent-encoding as in RFC 3986
 * 2.1). Pure: the body is untrusted client bytes, bounded by the caller.
 */
#include "http/http_private.h"

#include <string.h>

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode s[0..len) into out (outlen bytes with room for the NUL).
 * Returns the decoded length or -1 with *error_r.
 */
static int
form_decode(const char *s, size_t len, char *out, size_t outlen, const char **error_r)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;

			if (i + 2 >= len) {
				*error_r = "truncated percent-escape";
				return -1;
			}
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0) {
				*error_r = "bad percent-escape";
				return -1;
			}
			c = hi * 16 + lo;
			i += 2;
			if (c == 0) {
				*error_r = "NUL byte";
				return -1;
			}
		}
		if (out != NULL) {
			if (n + 1 >= outlen) {
				*error_r = "value too long";
				return -1;
			}
			out[n] = (char)c;
		}
		n++;
	}
	if (out != NULL)
		out[n] = '\0';
	return (int)n;
}

int
http_form_value(const char *body, size_t len, const char *key,
    char *value_r, size_t valuelen, const char **error_r)
{
	char name[64];
	size_t pos = 0;
	int found = 0;

	while (pos < len) {
		const char *pair = body + pos, *amp, *eq;
		size_t plen, nlen;

		amp = memchr(pair, '&', len - pos);
		plen = amp != NULL ? (size_t)(amp - pair) : len - pos;
		pos += plen + 1;
		if (plen == 0)
			continue;   /* "a=1&&b=2": browsers never send it; harmless */
		eq = memchr(pair, '=', plen);
		nlen = eq != NULL ? (size_t)(eq - pair) : plen;
		if (nlen >= sizeof(name)) {
			*error_r = "name too long";
			return -1;
		}
		if (form_decode(pair, nlen, name, sizeof(name), error_r) < 0)
			return -1;
		if (strcmp(name, key) != 0) {
			/* Check the value's escapes too: reject, never half-parse. */
			if (eq != NULL && form_decode(eq + 1, plen - nlen - 1, NULL, 0, error_r) < 0)
				return -1;
			continue;
		}
		if (found) {
			*error_r = "repeated key";
			return -1;
		}
		found = 1;
		if (valuelen == 0) {
			*error_r = "value too long";
			return -1;
		}
		if (eq == NULL)
			value_r[0] = '\0';
		else if (form_decode(eq + 1, plen - nlen - 1, value_r, valuelen, error_r) < 0)
			return -1;
	}
	return found;
}
