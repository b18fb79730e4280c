/*
 * test_directory_login.c: the pure part of the login service SMTP AUTH and
 * IMAP share: the password pool's fairness key of a client address
 * (directory_login_key). IPv4 and IPv4-mapped IPv6 key on the address,
 * other IPv6 on its /64 (what one subscriber holds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sys/socket.h>

#include "core/cidr.h"
#include "core/pool.h"
#include "directory/directory.h"

struct key_case {
	const char *name;
	const char *address;
	size_t keylen;
	uint8_t key[8];
	const char *same_as;     /* another address with the same key, or NULL */
	const char *differs;     /* another address with a different key, or NULL */
};

static const struct key_case key_cases[] = {
	{ .name = "ipv4 is its address", .address = "127.0.0.9", .keylen = 4,
	  .key = { 127, 0, 0, 9 }, .differs = "127.0.0.10" },
	{ .name = "ipv4-mapped ipv6 is the ipv4 address", .address = "::ffff:192.0.2.7",
	  .keylen = 4, .key = { 192, 0, 2, 7 }, .same_as = "192.0.2.7" },
	{ .name = "ipv6 is its /64", .address = "2001:db8:1:2::5", .keylen = 8,
	  .key = { 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02 },
	  .same_as = "2001:db8:1:2:ffff::9", .differs = "2001:db8:1:3::5" },
};

static size_t
key_of(const char *text, uint8_t key[POOL_KEY_MAX])
{
	struct sockaddr_storage ss;
	socklen_t len;
	char listen[80];
	const char *error = NULL;

	/* The listen syntax's parser makes the sockaddr: "[v6]:1" or "v4:1". */
	snprintf(listen, sizeof(listen), strchr(text, ':') != NULL ? "[%s]:1" : "%s:1", text);
	assert_int_equal(sockaddr_parse_listen(listen, &ss, &len, &error), 0);
	return directory_login_key((const struct sockaddr *)&ss, key);
}

static void
test_key_table(void **state)
{
	for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
		const struct key_case *c = &key_cases[i];
		uint8_t key[POOL_KEY_MAX], other[POOL_KEY_MAX];
		size_t n = key_of(c->address, key);

		print_message("case: %s\n", c->name);
		assert_int_equal(n, c->keylen);
		assert_memory_equal(key, c->key, c->keylen);
		if (c->same_as != NULL) {
			assert_int_equal(key_of(c->same_as, other), n);
			assert_memory_equal(other, key, n);
		}
		if (c->differs != NULL)
			assert_true(key_of(c->differs, other) != n || memcmp(other, key, n) != 0);
	}
}

static void
test_key_other_family(void **state)
{
	struct sockaddr_storage ss = { .ss_family = AF_UNIX };
	uint8_t key[POOL_KEY_MAX];

	/* One shared key for whatever is not IP (not expected on a listener). */
	assert_int_equal(directory_login_key((const struct sockaddr *)&ss, key), 1);
	assert_int_equal(key[0], 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_table),
		cmocka_unit_test(test_key_other_family),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
