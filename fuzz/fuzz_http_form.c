/*
 * fuzz_http_form.c: libFuzzer target for src/http/http_form.c, the parser
 * of application/x-www-form-urlencoded request bodies (http_form_value).
 * The input is what a web client could POST:
 *
 *   [0]   bits 0-2: the key looked up
 *   [1]   the size of the value buffer (255: HTTP_BODY_MAX + 1)
 *   rest  the body, in an exact-size copy (at most HTTP_BODY_MAX bytes, as
 *         the server bounds it)
 *
 * The value buffer is exactly that size on the heap, so a write past it is
 * caught. Beyond the sanitizers it checks the result against a reference
 * parser written from the contract in http_private.h (strict escapes in
 * every pair, a repeated key, a value that does not fit, a NUL), and that
 * a value found, encoded back into a body, is found again unchanged.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 2
#define NAME_MAX_RAW 64   /* http_form.c's name buffer: longer raw names are refused */

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static const char *const keys[] = {
	"csrf", "user", "password", "token", "a", "a b", "", "x&y=z%",
};

static int
ref_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode s[0..n) into out (room for at least n + 1); its length, or -1. */
static long
ref_decode(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				return -1;
			hi = ref_hex((unsigned char)s[i + 1]);
			lo = ref_hex((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (long)o;
}

/* The contract, the slow way: -1 for any fault anywhere in the body. */
static int
ref_form_value(const char *body, size_t len, const char *key, char *value_r,
    size_t valuelen)
{
	char *name = malloc(len + 1), *value = malloc(len + 1);
	size_t start = 0;
	int found = 0, ret = 0;

	if (name == NULL || value == NULL)
		abort();
	while (start < len && ret == 0) {
		size_t end = start, eq;
		long vlen;

		while (end < len && body[end] != '&')
			end++;
		for (eq = start; eq < end && body[eq] != '='; eq++)
			;
		if (end == start) {
			start = end + 1;
			continue;
		}
		if (eq - start >= NAME_MAX_RAW || ref_decode(body + start, eq - start, name) < 0) {
			ret = -1;
			break;
		}
		vlen = eq < end ? ref_decode(body + eq + 1, end - eq - 1, value) : 0;
		if (eq == end)
			value[0] = '\0';
		if (vlen < 0) {
			ret = -1;
			break;
		}
		if (strcmp(name, key) == 0) {
			if (found || (size_t)vlen + 1 > valuelen) {
				ret = -1;
				break;
			}
			found = 1;
			memcpy(value_r, value, (size_t)vlen + 1);
		}
		start = end + 1;
	}
	free(name);
	free(value);
	return ret == -1 ? -1 : found;
}

/* Percent-encode s as a browser would (some bytes raw, space as '+'). */
static size_t
encode(char *out, const char *s, uint32_t salt)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '*';

		if (plain && !((salt >> (i & 31)) & 1)) {
			out[o++] = (char)c;
		} else if (c == ' ' && (salt & 1)) {
			out[o++] = '+';
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = (salt >> 3) & 1 ? (char)(hex[c & 15] | 0x20) : hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
}

static void
check_roundtrip(const char *key, const char *value, size_t valuelen, uint32_t salt)
{
	size_t vl = strlen(value), kl = strlen(key), n;
	char *body = malloc(3 * (kl + vl) + 64), *got = malloc(valuelen);
	const char *error = NULL;
	int ret;

	if (body == NULL || got == NULL)
		abort();
	n = (size_t)sprintf(body, "&other=1&&");
	n += encode(body + n, key, salt);
	body[n++] = '=';
	n += encode(body + n, value, salt >> 1);
	n += (size_t)sprintf(body + n, "&zz=%%2B");
	ret = http_form_value(body, n, key, got, valuelen, &error);
	CHECK(ret == 1);
	CHECK(strcmp(got, value) == 0);
	free(body);
	free(got);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *key, *error = NULL;
	size_t len, valuelen;
	char *body, *value, *ref;
	int ret, ref_ret;

	if (size < HDR || size - HDR > HTTP_BODY_MAX)
		return 0;
	key = keys[data[0] & 7];
	valuelen = data[1] == 255 ? HTTP_BODY_MAX + 1 : data[1];
	len = size - HDR;
	body = malloc(len > 0 ? len : 1);
	value = malloc(valuelen);   /* malloc(0) too: any write to it is caught */
	ref = malloc(valuelen + 1);
	if (body == NULL || (value == NULL && valuelen > 0) || ref == NULL)
		abort();
	memcpy(body, data + HDR, len);
	if (valuelen > 0) {
		memset(value, 0x5a, valuelen);
		value[valuelen - 1] = '\0';
	}

	ret = http_form_value(body, len, key, value, valuelen, &error);
	ref_ret = ref_form_value(body, len, key, ref, valuelen);
	CHECK(ret == -1 || ret == 0 || ret == 1);
	if (ret == -1)
		CHECK(error != NULL && error[0] != '\0');
	if (ret != ref_ret) {
		fprintf(stderr, "http_form_value: %d (%s), reference: %d\n", ret,
		    ret == -1 ? error : "-", ref_ret);
		abort();
	}
	if (ret == 1) {
		size_t vl = strnlen(value, valuelen);

		CHECK(vl < valuelen);
		CHECK(strcmp(value, ref) == 0);
		check_roundtrip(key, value, valuelen, data[0] | (uint32_t)data[1] << 8 |
		    (uint32_t)len << 16);
	}
	free(body);
	free(value);
	free(ref);
	return 0;
}
