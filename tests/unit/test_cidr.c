/*
 * test_cidr.c: table tests for core/cidr.h: network parsing (host bits,
 * prefixes), matching with IPv4-mapped IPv6, the loopback test that the
 * mynetworks audit relies on, formatting, and listen address syntax.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/cidr.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* A sockaddr from address text: IPv6 if it has a ':', else IPv4. */
static socklen_t
make_sa(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		return sizeof(*sin6);
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	return sizeof(*sin);
}

/* ---- cidr_parse ---- */

struct parse_case {
	const char *text;
	const char *formatted;   /* NULL: an error is expected */
	const char *error;       /* substring of the error */
};

static const struct parse_case parse_cases[] = {
	{ .text = "127.0.0.0/8", .formatted = "127.0.0.0/8" },
	{ .text = "10.0.0.0/8", .formatted = "10.0.0.0/8" },
	{ .text = "192.168.1.7", .formatted = "192.168.1.7/32" },
	{ .text = "0.0.0.0/0", .formatted = "0.0.0.0/0" },
	{ .text = "172.16.0.0/12", .formatted = "172.16.0.0/12" },
	{ .text = "192.168.0.0/16", .formatted = "192.168.0.0/16" },
	{ .text = "10.1.2.128/25", .formatted = "10.1.2.128/25" },
	{ .text = "::1/128", .formatted = "::1/128" },
	{ .text = "::1", .formatted = "::1/128" },
	{ .text = "::/0", .formatted = "::/0" },
	{ .text = "2001:db8::/32", .formatted = "2001:db8::/32" },
	{ .text = "2001:DB8::/32", .formatted = "2001:db8::/32" },
	{ .text = "::ffff:127.0.0.0/104", .formatted = "::ffff:127.0.0.0/104" },
	{ .text = "fe80::/10", .formatted = "fe80::/10" },
	{ .text = "10.0.0.1/8", .error = "host bits set" },
	{ .text = "127.0.0.1/8", .error = "host bits set" },
	{ .text = "10.1.2.129/25", .error = "host bits set" },
	{ .text = "::1/64", .error = "host bits set" },
	{ .text = "2001:db8::1/32", .error = "host bits set" },
	{ .text = "0.0.0.1/0", .error = "host bits set" },
	{ .text = "10.0.0.0/33", .error = "0..32 for IPv4" },
	{ .text = "::/129", .error = "0..128 for IPv6" },
	{ .text = "10.0.0.0/", .error = "bad prefix length" },
	{ .text = "10.0.0.0/-1", .error = "bad prefix length" },
	{ .text = "10.0.0.0/+8", .error = "bad prefix length" },
	{ .text = "10.0.0.0/08", .error = "bad prefix length" },
	{ .text = "10.0.0.0/8/8", .error = "bad prefix length" },
	{ .text = "10.0.0.0/8 ", .error = "bad prefix length" },
	{ .text = "10.0.0.0/1000", .error = "bad prefix length" },
	{ .text = "10/8", .error = "not an IP address" },
	{ .text = "10.0.0/24", .error = "not an IP address" },
	{ .text = "0x0a.0.0.0/8", .error = "not an IP address" },
	{ .text = "256.0.0.0/8", .error = "not an IP address" },
	{ .text = " 10.0.0.0/8", .error = "not an IP address" },
	{ .text = "example.test", .error = "not an IP address" },
	{ .text = "[::1]/128", .error = "not an IP address" },
	{ .text = "/8", .error = "not an IP address" },
	{ .text = "", .error = "empty" },
	{ .text = "1:2:3:4:5:6:7:8:9/128", .error = "not an IP address" },
	{ .text = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  .error = "not an IP address" },
};

static void
test_cidr_parse(void **state)
{
	for (size_t i = 0; i < N_ELEMENTS(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		const char *error = NULL;
		struct cidr cidr;
		char buf[64];
		int r = cidr_parse(c->text, &cidr, &error);

		if (c->formatted != NULL) {
			if (r != 0)
				fail_msg("case %zu '%s': %s", i, c->text, error);
			cidr_format(&cidr, buf, sizeof(buf));
			assert_string_equal(buf, c->formatted);
		} else {
			if (r != -1)
				fail_msg("case %zu '%s' parsed", i, c->text);
			assert_non_null(error);
			if (strstr(error, c->error) == NULL)
				fail_msg("case %zu '%s': '%s' lacks '%s'", i,
				    c->text, error, c->error);
		}
	}
}

static void
test_cidr_parse_null(void **state)
{
	const char *error = NULL;
	struct cidr cidr;

	assert_int_equal(cidr_parse(NULL, &cidr, &error), -1);
	assert_string_equal(error, "empty network");
}

/* ---- cidr_match ---- */

struct match_case {
	const char *net;
	const char *addr;
	bool match;
};

static const struct match_case match_cases[] = {
	{ .net = "127.0.0.0/8", .addr = "127.0.0.1", .match = true },
	{ .net = "127.0.0.0/8", .addr = "127.255.255.255", .match = true },
	{ .net = "127.0.0.0/8", .addr = "128.0.0.1", .match = false },
	{ .net = "127.0.0.0/8", .addr = "::ffff:127.0.0.1", .match = true },
	{ .net = "127.0.0.0/8", .addr = "::ffff:10.0.0.1", .match = false },
	{ .net = "127.0.0.0/8", .addr = "::1", .match = false },
	{ .net = "127.0.0.0/8", .addr = "::127.0.0.1", .match = false },
	{ .net = "10.0.0.0/8", .addr = "10.89.0.5", .match = true },
	{ .net = "10.0.0.0/8", .addr = "::ffff:10.89.0.5", .match = true },
	{ .net = "172.16.0.0/12", .addr = "172.31.255.1", .match = true },
	{ .net = "172.16.0.0/12", .addr = "172.32.0.1", .match = false },
	{ .net = "10.1.2.128/25", .addr = "10.1.2.200", .match = true },
	{ .net = "10.1.2.128/25", .addr = "10.1.2.127", .match = false },
	{ .net = "192.168.1.7", .addr = "192.168.1.7", .match = true },
	{ .net = "192.168.1.7", .addr = "192.168.1.8", .match = false },
	{ .net = "0.0.0.0/0", .addr = "203.0.113.9", .match = true },
	{ .net = "0.0.0.0/0", .addr = "::ffff:203.0.113.9", .match = true },
	{ .net = "0.0.0.0/0", .addr = "2001:db8::1", .match = false },
	{ .net = "::1/128", .addr = "::1", .match = true },
	{ .net = "::1/128", .addr = "::2", .match = false },
	{ .net = "::1/128", .addr = "127.0.0.1", .match = false },
	{ .net = "::/0", .addr = "2001:db8::1", .match = true },
	/* An IPv4 client is IPv4 whatever the socket: ::/0 is IPv6 only. */
	{ .net = "::/0", .addr = "203.0.113.9", .match = false },
	{ .net = "::/0", .addr = "::ffff:203.0.113.9", .match = false },
	{ .net = "2001:db8::/32", .addr = "2001:db8:ffff::1", .match = true },
	{ .net = "2001:db8::/32", .addr = "2001:db9::1", .match = false },
	{ .net = "fe80::/10", .addr = "febf::1", .match = true },
	{ .net = "fe80::/10", .addr = "fec0::1", .match = false },
	{ .net = "::ffff:127.0.0.0/104", .addr = "127.0.0.1", .match = true },
	{ .net = "::ffff:127.0.0.0/104", .addr = "::ffff:127.1.2.3", .match = true },
	{ .net = "::ffff:127.0.0.0/104", .addr = "10.0.0.1", .match = false },
	{ .net = "::ffff:0.0.0.0/96", .addr = "198.51.100.1", .match = true },
};

static void
test_cidr_match(void **state)
{
	for (size_t i = 0; i < N_ELEMENTS(match_cases); i++) {
		const struct match_case *c = &match_cases[i];
		struct sockaddr_storage ss;
		const char *error;
		struct cidr cidr;

		assert_int_equal(cidr_parse(c->net, &cidr, &error), 0);
		make_sa(c->addr, &ss);
		if (cidr_match(&cidr, (struct sockaddr *)&ss) != c->match)
			fail_msg("case %zu: %s in %s should be %s", i, c->addr,
			    c->net, c->match ? "true" : "false");
	}
}

static void
test_cidr_match_odd(void **state)
{
	struct sockaddr_storage ss = { .ss_family = AF_UNIX };
	struct cidr cidr, list[2];
	const char *error;

	assert_int_equal(cidr_parse("0.0.0.0/0", &cidr, &error), 0);
	assert_false(cidr_match(&cidr, (struct sockaddr *)&ss));
	assert_false(cidr_match(&cidr, NULL));
	assert_false(cidr_match(NULL, (struct sockaddr *)&ss));

	assert_int_equal(cidr_parse("10.0.0.0/8", &list[0], &error), 0);
	assert_int_equal(cidr_parse("::1", &list[1], &error), 0);
	make_sa("::1", &ss);
	assert_true(cidr_list_match(list, 2, (struct sockaddr *)&ss));
	assert_false(cidr_list_match(list, 1, (struct sockaddr *)&ss));
	assert_false(cidr_list_match(list, 0, (struct sockaddr *)&ss));
	make_sa("::ffff:10.9.8.7", &ss);
	assert_true(cidr_list_match(list, 2, (struct sockaddr *)&ss));
}

/* ---- cidr_is_loopback ---- */

struct loopback_case {
	const char *net;
	bool loopback;
};

static const struct loopback_case loopback_cases[] = {
	{ .net = "127.0.0.0/8", .loopback = true },
	{ .net = "127.0.0.1", .loopback = true },
	{ .net = "127.1.0.0/16", .loopback = true },
	{ .net = "::1/128", .loopback = true },
	{ .net = "::ffff:127.0.0.0/104", .loopback = true },
	{ .net = "::ffff:127.0.0.1/128", .loopback = true },
	{ .net = "126.0.0.0/7", .loopback = false },   /* 126/8 and 127/8 */
	{ .net = "0.0.0.0/0", .loopback = false },
	{ .net = "::/0", .loopback = false },
	{ .net = "::/127", .loopback = false },        /* :: and ::1 */
	{ .net = "::ffff:0.0.0.0/96", .loopback = false },
	{ .net = "::ffff:126.0.0.0/103", .loopback = false },
	{ .net = "10.0.0.0/8", .loopback = false },
	{ .net = "172.16.0.0/12", .loopback = false },
	{ .net = "192.168.0.0/16", .loopback = false },
	{ .net = "::2", .loopback = false },
	{ .net = "::127.0.0.1", .loopback = false },   /* IPv4-compatible, not mapped */
	{ .net = "fe80::/10", .loopback = false },
};

static void
test_cidr_is_loopback(void **state)
{
	for (size_t i = 0; i < N_ELEMENTS(loopback_cases); i++) {
		const struct loopback_case *c = &loopback_cases[i];
		const char *error;
		struct cidr cidr;

		assert_int_equal(cidr_parse(c->net, &cidr, &error), 0);
		if (cidr_is_loopback(&cidr) != c->loopback)
			fail_msg("case %zu: %s loopback should be %s", i, c->net,
			    c->loopback ? "true" : "false");
	}
	assert_false(cidr_is_loopback(NULL));
}

/* ---- formatting ---- */

struct format_case {
	const char *addr;
	const char *text;
};

static const struct format_case format_cases[] = {
	{ .addr = "192.0.2.1", .text = "192.0.2.1" },
	{ .addr = "::ffff:192.0.2.1", .text = "192.0.2.1" },
	{ .addr = "::1", .text = "::1" },
	{ .addr = "2001:db8::1", .text = "2001:db8::1" },
	{ .addr = "::", .text = "::" },
};

static void
test_sockaddr_format_ip(void **state)
{
	struct sockaddr_storage ss = { .ss_family = AF_UNIX };
	char buf[INET6_ADDRSTRLEN], tiny[4];

	for (size_t i = 0; i < N_ELEMENTS(format_cases); i++) {
		make_sa(format_cases[i].addr, &ss);
		sockaddr_format_ip((struct sockaddr *)&ss, buf, sizeof(buf));
		assert_string_equal(buf, format_cases[i].text);
	}
	ss.ss_family = AF_UNIX;
	sockaddr_format_ip((struct sockaddr *)&ss, buf, sizeof(buf));
	assert_string_equal(buf, "?");
	sockaddr_format_ip(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "?");
	make_sa("192.0.2.1", &ss);
	sockaddr_format_ip((struct sockaddr *)&ss, tiny, sizeof(tiny));
	assert_string_equal(tiny, "?");
	sockaddr_format_ip((struct sockaddr *)&ss, tiny, 0);   /* no write */
}

static void
test_cidr_format_small(void **state)
{
	struct cidr cidr;
	const char *error;
	char buf[8];

	assert_int_equal(cidr_parse("192.168.0.0/16", &cidr, &error), 0);
	cidr_format(&cidr, buf, sizeof(buf));
	assert_string_equal(buf, "192.168");   /* cut, NUL-terminated */
	cidr_format(&cidr, buf, 0);
	cidr.family = AF_UNIX;
	cidr_format(&cidr, buf, sizeof(buf));
	assert_string_equal(buf, "?");
}

/* ---- sockaddr_parse_listen ---- */

struct listen_case {
	const char *text;
	int family;          /* 0: an error is expected */
	const char *ip;
	unsigned port;
	const char *error;
};

static const struct listen_case listen_cases[] = {
	{ .text = "127.0.0.1:25", .family = AF_INET, .ip = "127.0.0.1", .port = 25 },
	{ .text = "127.0.0.1:2525", .family = AF_INET, .ip = "127.0.0.1", .port = 2525 },
	{ .text = "*:25", .family = AF_INET, .ip = "0.0.0.0", .port = 25 },
	{ .text = "0.0.0.0:465", .family = AF_INET, .ip = "0.0.0.0", .port = 465 },
	{ .text = "[::1]:25", .family = AF_INET6, .ip = "::1", .port = 25 },
	{ .text = "[::]:25", .family = AF_INET6, .ip = "::", .port = 25 },
	{ .text = "[2001:db8::5]:65535", .family = AF_INET6, .ip = "2001:db8::5",
	  .port = 65535 },
	{ .text = "10.0.0.1:1", .family = AF_INET, .ip = "10.0.0.1", .port = 1 },
	{ .text = "127.0.0.1:0", .error = "bad port" },
	{ .text = "127.0.0.1:65536", .error = "bad port" },
	{ .text = "127.0.0.1:99999", .error = "bad port" },
	{ .text = "127.0.0.1:100000", .error = "bad port" },
	{ .text = "127.0.0.1:025", .error = "bad port" },
	{ .text = "127.0.0.1:+25", .error = "bad port" },
	{ .text = "127.0.0.1:-25", .error = "bad port" },
	{ .text = "127.0.0.1:25 ", .error = "bad port" },
	{ .text = "127.0.0.1:2x5", .error = "bad port" },
	{ .text = "127.0.0.1:", .error = "bad port" },
	{ .text = "127.0.0.1", .error = "expected ADDRESS:PORT" },
	{ .text = "::1:25", .error = "needs brackets" },
	{ .text = "[::1]25", .error = "expected [IPV6]:PORT" },
	{ .text = "[::1:25", .error = "expected [IPV6]:PORT" },
	{ .text = "[]:25", .error = "bad address" },
	{ .text = ":25", .error = "bad address" },
	{ .text = "[127.0.0.1]:25", .error = "not an IPv6 address" },
	{ .text = "[*]:25", .error = "not an IPv6 address" },
	{ .text = "[fe80::1%eth0]:25", .error = "not an IPv6 address" },
	{ .text = "localhost:25", .error = "not an IPv4 address" },
	{ .text = "**:25", .error = "not an IPv4 address" },
	{ .text = "256.1.1.1:25", .error = "not an IPv4 address" },
	{ .text = "", .error = "empty address" },
};

static void
check_listen_ok(size_t i, const struct listen_case *c,
    const struct sockaddr_storage *ss, socklen_t len)
{
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, c->family);
	if (c->family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		assert_int_equal(len, sizeof(*sin));
		assert_int_equal(ntohs(sin->sin_port), c->port);
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		assert_int_equal(len, sizeof(*sin6));
		assert_int_equal(ntohs(sin6->sin6_port), c->port);
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
	}
	if (strcmp(buf, c->ip) != 0)
		fail_msg("case %zu '%s': address %s, expected %s", i, c->text,
		    buf, c->ip);
}

static void
test_sockaddr_parse_listen(void **state)
{
	for (size_t i = 0; i < N_ELEMENTS(listen_cases); i++) {
		const struct listen_case *c = &listen_cases[i];
		struct sockaddr_storage ss;
		const char *error = NULL;
		socklen_t len = 0;
		int r = sockaddr_parse_listen(c->text, &ss, &len, &error);

		if (c->family != 0) {
			if (r != 0)
				fail_msg("case %zu '%s': %s", i, c->text, error);
			check_listen_ok(i, c, &ss, len);
			continue;
		}
		if (r != -1)
			fail_msg("case %zu '%s' parsed", i, c->text);
		if (error == NULL || strstr(error, c->error) == NULL)
			fail_msg("case %zu '%s': '%s' lacks '%s'", i, c->text,
			    error != NULL ? error : "(null)", c->error);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_parse_null),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_cidr_match_odd),
		cmocka_unit_test(test_cidr_is_loopback),
		cmocka_unit_test(test_sockaddr_format_ip),
		cmocka_unit_test(test_cidr_format_small),
		cmocka_unit_test(test_sockaddr_parse_listen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
