/*
 * fuzz_monitor_header.c: libFuzzer target for src/monitor/monitor_header.c,
 * the From and Subject reading of an authenticated user's message (what
 * the detectors see). The input is the start of a message as a client sent
 * it, in an exact-size heap copy (a read past it is caught):
 *
 *   [0]   the size of the output buffer (0..255)
 *   rest  the header block (any bytes, cut anywhere)
 *
 * Beyond the sanitizers it checks the contract of monitor_account.h: the
 * value fits its buffer and is NUL-terminated, holds no control byte and no
 * leading, trailing or doubled blank, and every address found holds an '@'
 * and no '<', '>' or blank.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/monitor_account.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static void
check_value(const char *v, size_t outlen)
{
	size_t n = strnlen(v, outlen);

	CHECK(n < outlen);
	for (size_t i = 0; i < n; i++) {
		CHECK((unsigned char)v[i] >= 0x20 && v[i] != 0x7f);
		if (v[i] == ' ')
			CHECK(i > 0 && i + 1 < n && v[i + 1] != ' ');
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "From", "Subject" };
	char addrs[4][320];
	size_t outlen, len;
	char *block, *out;

	if (size < 1)
		return 0;
	outlen = data[0] > 0 ? data[0] : 1;
	len = size - 1;
	block = malloc(len > 0 ? len : 1);
	out = malloc(outlen);
	if (block == NULL || out == NULL)
		abort();
	memcpy(block, data + 1, len);
	for (size_t k = 0; k < 2; k++) {
		int r = monitor_header_field(block, len, names[k], out, outlen);

		CHECK(r == 0 || r == 1);
		check_value(out, outlen);
		if (r == 1 && k == 0) {
			size_t n = monitor_header_addresses(out, addrs, 4);

			CHECK(n <= 4);
			for (size_t i = 0; i < n; i++) {
				CHECK(strnlen(addrs[i], 320) < 320);
				CHECK(strchr(addrs[i], '@') != NULL);
				CHECK(strpbrk(addrs[i], "<> ") == NULL);
			}
		}
	}
	free(block);
	free(out);
	return 0;
}
