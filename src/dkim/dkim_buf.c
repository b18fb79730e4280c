/*
 * dkim_buf.c: the growing buffer the DKIM code builds its output in, base64
 * (RFC 4648) both ways, and OpenSSL error text. The decoder trusts nothing:
 * it takes only the alphabet, folding white space and correct padding.
 */
#include "dkim/dkim_private.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
buf_reserve(struct dkim_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (more < b->cap - b->len)
		return true;
	if (more > SIZE_MAX / 2 - b->len - 1)
		goto oom;
	cap = b->cap == 0 ? 256 : b->cap;
	while (cap - b->len <= more)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL)
		goto oom;
	b->p = p;
	b->cap = cap;
	return true;
oom:
	free(b->p);
	*b = (struct dkim_buf){ .oom = true };
	return false;
}

void
dkim_buf_add(struct dkim_buf *b, const void *p, size_t n)
{
	if (n == 0 || !buf_reserve(b, n))
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
dkim_buf_adds(struct dkim_buf *b, const char *s)
{
	dkim_buf_add(b, s, strlen(s));
}

void
dkim_buf_addc(struct dkim_buf *b, char c)
{
	dkim_buf_add(b, &c, 1);
}

void
dkim_buf_addf(struct dkim_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	(void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
dkim_buf_base64(struct dkim_buf *b, const unsigned char *p, size_t n)
{
	char quad[4];

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		quad[0] = b64[(v >> 18) & 63];
		quad[1] = b64[(v >> 12) & 63];
		quad[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		quad[3] = i + 2 < n ? b64[v & 63] : '=';
		dkim_buf_add(b, quad, 4);
	}
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
dkim_buf_base64_decode(const char *s, size_t n, unsigned char **out_r, size_t *outlen_r)
{
	unsigned char *out;
	size_t o = 0, q = 0, pad = 0;
	unsigned v = 0;

	/* Three bytes per four characters, at most. */
	if ((out = malloc(n / 4 * 3 + 3)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int d;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			/* Padding ends the last quad: "xx==" or "xxx=". */
			if ((pad == 0 && (q == 2 || q == 3)) || (pad == 1 && q == 2))
				pad++;
			else
				goto fail;
			continue;
		}
		if (pad > 0 || (d = b64_value(c)) < 0)
			goto fail;
		v = (v << 6) | (unsigned)d;
		if (++q == 4) {
			out[o++] = (unsigned char)(v >> 16);
			out[o++] = (unsigned char)(v >> 8);
			out[o++] = (unsigned char)v;
			q = 0;
			v = 0;
		}
	}
	if (q + pad != 4 && !(q == 0 && pad == 0))
		goto fail;
	if (q == 2) {
		out[o++] = (unsigned char)(v >> 4);
	} else if (q == 3) {
		out[o++] = (unsigned char)(v >> 10);
		out[o++] = (unsigned char)(v >> 2);
	}
	*out_r = out;
	*outlen_r = o;
	return 0;
fail:
	free(out);
	return -1;
}

char *
dkim_buf_steal(struct dkim_buf *b)
{
	char *p;

	if (b->oom)
		return NULL;
	if (b->p == NULL && !buf_reserve(b, 1))
		return NULL;
	p = b->p;
	p[b->len] = '\0';
	*b = (struct dkim_buf){ 0 };
	return p;
}

void
dkim_buf_free(struct dkim_buf *b)
{
	free(b->p);
	*b = (struct dkim_buf){ 0 };
}

const char *
dkim_buf_ssl_error(char *buf, size_t buflen, const char *fallback)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, buflen, "%s", fallback);
	else
		ERR_error_string_n(e, buf, buflen);
	ERR_clear_error();
	return buf;
}
