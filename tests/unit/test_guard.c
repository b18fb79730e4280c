/*
 * test_guard.c: tests for src/guard/guard_conn.c, connection counting per
 * client IP and in total. Scenarios are tables of steps (open or close an
 * IP, with the verdict and its reason asserted, then the counts); the hash
 * table is driven through resizes, tombstones and long probe chains, and
 * must neither lose a count nor grow without bound under churn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "guard/guard.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_STEPS 16

/* "1.2.3.4" or "2001:db8::1" into a sockaddr as accept(2) gives it. */
static void
make_sa(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(40000);
		if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) != 1)
			fail_msg("bad test address %s", ip);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(40001);
		if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
			fail_msg("bad test address %s", ip);
	}
}

static void
make_sa_v4(uint32_t addr, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(addr);
}

static void
make_sa_v6(uint32_t n, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr.s6_addr[0] = 0x20;
	sin6->sin6_addr.s6_addr[1] = 0x01;
	sin6->sin6_addr.s6_addr[2] = 0x0d;
	sin6->sin6_addr.s6_addr[3] = 0xb8;
	sin6->sin6_addr.s6_addr[12] = (uint8_t)(n >> 24);
	sin6->sin6_addr.s6_addr[13] = (uint8_t)(n >> 16);
	sin6->sin6_addr.s6_addr[14] = (uint8_t)(n >> 8);
	sin6->sin6_addr.s6_addr[15] = (uint8_t)n;
}

/* ---- scenarios ---- */

enum op { OP_END = 0, OP_OPEN, OP_CLOSE };

struct step {
	enum op op;
	const char *ip;
	enum guard_verdict verdict;   /* OP_OPEN */
	size_t count;                 /* guard_conn_count(ip) afterwards */
	size_t total;                 /* guard_conn_total() afterwards */
};

struct scenario {
	const char *name;
	int max_per_ip;
	int max_total;
	struct step steps[MAX_STEPS];
};

#define OPEN(a, v, c, t) { .op = OP_OPEN, .ip = (a), .verdict = (v), .count = (c), .total = (t) }
#define CLOSE(a, c, t) { .op = OP_CLOSE, .ip = (a), .count = (c), .total = (t) }
#define OK GUARD_ACCEPT
#define PER_IP GUARD_TOO_MANY_FROM_IP
#define TOTAL GUARD_TOO_MANY_TOTAL

static const struct scenario scenarios[] = {
	{ .name = "per-IP limit", .max_per_ip = 3, .max_total = 100, .steps = {
	    OPEN("192.0.2.1", OK, 1, 1), OPEN("192.0.2.1", OK, 2, 2), OPEN("192.0.2.1", OK, 3, 3),
	    OPEN("192.0.2.1", PER_IP, 3, 3), OPEN("192.0.2.1", PER_IP, 3, 3),
	    OPEN("192.0.2.2", OK, 1, 4),
	    CLOSE("192.0.2.1", 2, 3), OPEN("192.0.2.1", OK, 3, 4),
	    OPEN("192.0.2.1", PER_IP, 3, 4) } },
	{ .name = "per-IP limit of 1", .max_per_ip = 1, .max_total = 0, .steps = {
	    OPEN("2001:db8::1", OK, 1, 1), OPEN("2001:db8::1", PER_IP, 1, 1),
	    CLOSE("2001:db8::1", 0, 0), OPEN("2001:db8::1", OK, 1, 1) } },
	{ .name = "total limit", .max_per_ip = 10, .max_total = 3, .steps = {
	    OPEN("192.0.2.1", OK, 1, 1), OPEN("192.0.2.2", OK, 1, 2), OPEN("2001:db8::5", OK, 1, 3),
	    OPEN("192.0.2.3", TOTAL, 0, 3), OPEN("192.0.2.1", TOTAL, 1, 3),
	    CLOSE("192.0.2.2", 0, 2), OPEN("192.0.2.3", OK, 1, 3) } },
	{ .name = "total limit checked before the per-IP one", .max_per_ip = 1, .max_total = 1,
	  .steps = { OPEN("192.0.2.1", OK, 1, 1), OPEN("192.0.2.1", TOTAL, 1, 1) } },
	{ .name = "0 means no limit", .max_per_ip = 0, .max_total = 0, .steps = {
	    OPEN("192.0.2.1", OK, 1, 1), OPEN("192.0.2.1", OK, 2, 2), OPEN("192.0.2.1", OK, 3, 3),
	    OPEN("192.0.2.1", OK, 4, 4), OPEN("192.0.2.1", OK, 5, 5) } },
	{ .name = "IPv4 and IPv4-mapped IPv6 are one client", .max_per_ip = 2, .max_total = 0,
	  .steps = {
	    OPEN("198.51.100.7", OK, 1, 1), OPEN("::ffff:198.51.100.7", OK, 2, 2),
	    OPEN("198.51.100.7", PER_IP, 2, 2), OPEN("::ffff:198.51.100.7", PER_IP, 2, 2),
	    CLOSE("::ffff:198.51.100.7", 1, 1), CLOSE("198.51.100.7", 0, 0) } },
	{ .name = "IPv6 addresses are distinct", .max_per_ip = 1, .max_total = 0, .steps = {
	    OPEN("2001:db8::1", OK, 1, 1), OPEN("2001:db8::2", OK, 1, 2),
	    OPEN("2001:db8:0:1::1", OK, 1, 3), OPEN("::1", OK, 1, 4),
	    OPEN("127.0.0.1", OK, 1, 5), OPEN("::", OK, 1, 6), OPEN("0.0.0.0", OK, 1, 7),
	    OPEN("::127.0.0.1", OK, 1, 8), OPEN("2001:db8::1", PER_IP, 1, 8) } },
	{ .name = "close decrements, never below zero", .max_per_ip = 5, .max_total = 5, .steps = {
	    OPEN("192.0.2.9", OK, 1, 1), OPEN("192.0.2.9", OK, 2, 2),
	    CLOSE("192.0.2.9", 1, 1), CLOSE("192.0.2.9", 0, 0),
	    CLOSE("192.0.2.9", 0, 0), CLOSE("203.0.113.1", 0, 0),
	    OPEN("192.0.2.9", OK, 1, 1) } },
	{ .name = "close of a stranger leaves the others", .max_per_ip = 5, .max_total = 5,
	  .steps = { OPEN("192.0.2.9", OK, 1, 1), CLOSE("192.0.2.10", 0, 1),
	    CLOSE("2001:db8::9", 0, 1) } },
};

static void
test_scenarios(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++) {
		const struct scenario *sc = &scenarios[i];
		struct guard *g = guard_new();

		assert_non_null(g);
		assert_int_equal(guard_conn_total(g), 0);
		for (size_t s = 0; s < MAX_STEPS && sc->steps[s].op != OP_END; s++) {
			const struct step *st = &sc->steps[s];
			struct sockaddr_storage ss;

			make_sa(st->ip, &ss);
			if (st->op == OP_OPEN) {
				enum guard_verdict v = guard_conn_open(g, (struct sockaddr *)&ss,
				    sc->max_per_ip, sc->max_total);

				if (v != st->verdict)
					fail_msg("%s, step %zu (open %s): %s, expected %s", sc->name, s,
					    st->ip, guard_verdict_reason(v),
					    guard_verdict_reason(st->verdict));
			} else {
				guard_conn_close(g, (struct sockaddr *)&ss);
			}
			if (guard_conn_count(g, (struct sockaddr *)&ss) != st->count ||
			    guard_conn_total(g) != st->total)
				fail_msg("%s, step %zu (%s): count %zu total %zu, expected %zu %zu",
				    sc->name, s, st->ip, guard_conn_count(g, (struct sockaddr *)&ss),
				    guard_conn_total(g), st->count, st->total);
		}
		guard_free(&g);
		assert_null(g);
	}
}

static void
test_reasons(void **state)
{
	(void)state;
	assert_string_equal(guard_verdict_reason(GUARD_ACCEPT), "accept");
	assert_string_equal(guard_verdict_reason(GUARD_TOO_MANY_FROM_IP),
	    "too_many_connections_from_ip");
	assert_string_equal(guard_verdict_reason(GUARD_TOO_MANY_TOTAL), "too_many_connections");
	assert_string_equal(guard_verdict_reason((enum guard_verdict)99), "unknown");
}

static void
test_free_null(void **state)
{
	struct guard *g = NULL;

	(void)state;
	guard_free(&g);
	assert_null(g);
}

/* ---- the table under load ---- */

#define MANY 10000

/* 10000 distinct IPv4 and IPv6 clients: every resize keeps every count. */
static void
test_many_clients(void **state)
{
	struct guard *g = guard_new();
	struct sockaddr_storage ss;

	(void)state;
	assert_non_null(g);
	for (int round = 0; round < 3; round++) {
		for (uint32_t i = 0; i < MANY; i++) {
			make_sa_v4(0x0a000000u + i * 7919u, &ss);
			assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss, 2, 0), GUARD_ACCEPT);
			make_sa_v6(i, &ss);
			assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss, 2, 0), GUARD_ACCEPT);
		}
		assert_int_equal(guard_conn_total(g), 2 * MANY);
		/* a second connection each, then the limit */
		for (uint32_t i = 0; i < MANY; i += 97) {
			make_sa_v4(0x0a000000u + i * 7919u, &ss);
			assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss, 2, 0), GUARD_ACCEPT);
			assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss, 2, 0),
			    GUARD_TOO_MANY_FROM_IP);
			assert_int_equal(guard_conn_count(g, (struct sockaddr *)&ss), 2);
			guard_conn_close(g, (struct sockaddr *)&ss);
		}
		for (uint32_t i = 0; i < MANY; i++) {
			make_sa_v4(0x0a000000u + i * 7919u, &ss);
			assert_int_equal(guard_conn_count(g, (struct sockaddr *)&ss), 1);
			make_sa_v6(i, &ss);
			assert_int_equal(guard_conn_count(g, (struct sockaddr *)&ss), 1);
		}
		/* close in another order than opened: odd ones first */
		for (uint32_t i = 1; i < MANY; i += 2) {
			make_sa_v4(0x0a000000u + i * 7919u, &ss);
			guard_conn_close(g, (struct sockaddr *)&ss);
			make_sa_v6(i, &ss);
			guard_conn_close(g, (struct sockaddr *)&ss);
		}
		assert_int_equal(guard_conn_total(g), MANY);
		for (uint32_t i = 0; i < MANY; i += 2) {
			make_sa_v6(i, &ss);
			assert_int_equal(guard_conn_count(g, (struct sockaddr *)&ss), 1);
			guard_conn_close(g, (struct sockaddr *)&ss);
			make_sa_v4(0x0a000000u + i * 7919u, &ss);
			guard_conn_close(g, (struct sockaddr *)&ss);
		}
		assert_int_equal(guard_conn_total(g), 0);
		for (uint32_t i = 0; i < MANY; i += 13) {
			make_sa_v4(0x0a000000u + i * 7919u, &ss);
			assert_int_equal(guard_conn_count(g, (struct sockaddr *)&ss), 0);
		}
	}
	guard_free(&g);
}

/* The table's hash (FNV-1a over the v4-mapped key), to build probe chains. */
static size_t
v4_bucket(uint32_t addr, size_t cap)
{
	uint8_t key[16] = { [10] = 0xff, [11] = 0xff };
	uint64_t h = 1469598103934665603ULL;

	key[12] = (uint8_t)(addr >> 24);
	key[13] = (uint8_t)(addr >> 16);
	key[14] = (uint8_t)(addr >> 8);
	key[15] = (uint8_t)addr;
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return (size_t)h & (cap - 1);
}

/*
 * Tombstones: clients that share a bucket form a probe chain; closing one in
 * the middle must not hide those after it, and a new client reuses the
 * hole. (If the hash changes the chain is gone, but every assertion holds.)
 */
static void
test_tombstones(void **state)
{
	struct guard *g = guard_new();
	struct sockaddr_storage ss[6];
	uint32_t found[6];
	size_t n = 0, bucket;

	(void)state;
	assert_non_null(g);
	bucket = v4_bucket(0xc0000200u, 256);
	for (uint32_t a = 0xc0000200u; n < 6 && a < 0xc0100000u; a++)
		if (v4_bucket(a, 256) == bucket)
			found[n++] = a;
	assert_int_equal(n, 6);
	for (size_t i = 0; i < 6; i++)
		make_sa_v4(found[i], &ss[i]);

	for (size_t i = 0; i < 4; i++)
		assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss[i], 1, 0), GUARD_ACCEPT);
	/* holes in the middle of the chain */
	guard_conn_close(g, (struct sockaddr *)&ss[1]);
	guard_conn_close(g, (struct sockaddr *)&ss[2]);
	assert_int_equal(guard_conn_count(g, (struct sockaddr *)&ss[3]), 1);
	assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss[3], 1, 0),
	    GUARD_TOO_MANY_FROM_IP);
	/* new clients take the holes, and the one behind is still found */
	assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss[4], 1, 0), GUARD_ACCEPT);
	assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss[5], 1, 0), GUARD_ACCEPT);
	assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss[3], 1, 0),
	    GUARD_TOO_MANY_FROM_IP);
	/* a closed client comes back: counted once, not twice */
	assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss[1], 1, 0), GUARD_ACCEPT);
	assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss[1], 1, 0),
	    GUARD_TOO_MANY_FROM_IP);
	assert_int_equal(guard_conn_total(g), 5);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(guard_conn_count(g, (struct sockaddr *)&ss[i]), i == 2 ? 0 : 1);
	for (size_t i = 0; i < 6; i++)
		guard_conn_close(g, (struct sockaddr *)&ss[i]);
	assert_int_equal(guard_conn_total(g), 0);
	/* closing every slot in the chain leaves it usable */
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss[i], 1, 0), GUARD_ACCEPT);
		assert_int_equal(guard_conn_count(g, (struct sockaddr *)&ss[i]), 1);
	}
	assert_int_equal(guard_conn_total(g), 6);
	guard_free(&g);
}

/* Bytes allocated now: the sanitizer's count, or glibc's. */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static size_t
allocated_bytes(void)
{
	if (__sanitizer_get_current_allocated_bytes != NULL)
		return __sanitizer_get_current_allocated_bytes();
	return mallinfo2().uordblks;
}

/*
 * Churn: a million distinct clients, one at a time (what a scan from an
 * IPv6 /64 looks like). At most one is connected at any moment, so the
 * table must stay small: tombstones are dropped, not doubled forever.
 */
static void
test_churn_bounded(void **state)
{
	struct guard *g;
	struct sockaddr_storage ss;
	size_t before, after;

	(void)state;
	before = allocated_bytes();
	g = guard_new();
	assert_non_null(g);
	for (uint32_t i = 0; i < 1000000; i++) {
		make_sa_v6(i, &ss);
		assert_int_equal(guard_conn_open(g, (struct sockaddr *)&ss, 20, 1000), GUARD_ACCEPT);
		guard_conn_close(g, (struct sockaddr *)&ss);
	}
	assert_int_equal(guard_conn_total(g), 0);
	after = allocated_bytes();
	guard_free(&g);
	/* 1000 live clients at most would fit in 64 KiB; allow 256 KiB */
	if (after > before + 256 * 1024)
		fail_msg("guard table grew by %zu bytes for 0 live clients after 1000000 "
		    "open/close pairs", after - before);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenarios),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_many_clients),
		cmocka_unit_test(test_tombstones),
		cmocka_unit_test(test_churn_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
