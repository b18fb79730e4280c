/*
 * test_guard_ban.c: tests for src/guard/guard_ban.c, the built-in fail2ban.
 * Policy scenarios are tables of steps (strikes, logins, checks) with the
 * decision of each strike and the reason, level and expiry of each ban
 * asserted; then the bounds (200k networks, a full ban table), the log line,
 * and persistence through a real directory in a mkdtemp(3) data dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "directory/directory.h"
#include "guard/guard.h"
#include "guard/guard_private.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_STEPS 24
#define T0 ((time_t)1750000000)   /* 2025-06-15T15:06:40Z */

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

#define SA(ss) ((const struct sockaddr *)&(ss))

/* 2001:db8:N::/64 for the Nth network (N up to 2^32). */
static void
make_sa_net64(uint32_t n, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr.s6_addr[0] = 0x20;
	sin6->sin6_addr.s6_addr[1] = 0x01;
	sin6->sin6_addr.s6_addr[2] = 0x0d;
	sin6->sin6_addr.s6_addr[3] = 0xb8;
	sin6->sin6_addr.s6_addr[4] = (uint8_t)(n >> 24);
	sin6->sin6_addr.s6_addr[5] = (uint8_t)(n >> 16);
	sin6->sin6_addr.s6_addr[6] = (uint8_t)(n >> 8);
	sin6->sin6_addr.s6_addr[7] = (uint8_t)n;
	sin6->sin6_addr.s6_addr[15] = 0x42;   /* a host inside the /64 */
}

static void
make_sa_v4(uint32_t addr, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(addr);
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

/* ---- configuration ---- */

/* Overrides of the defaults (0: keep the default). */
struct cfg_over {
	const char *yaml;      /* loaded over the defaults first */
	bool disabled;
	int maxretry, findtime, bantime, bantime_max, ipv6_prefix, maxretry_authenticated;
};

static struct config *
test_config(const struct cfg_over *o)
{
	struct config *cfg = NULL;
	char *error = NULL;
	const char *y = o->yaml != NULL ? o->yaml : "";
	struct config_intrusion_prevention *ip;

	if (config_load_string("test", y, strlen(y), &cfg, &error) != 0)
		fail_msg("config: %s", error);
	ip = &cfg->intrusion_prevention;
	if (o->disabled)
		ip->enabled = false;
	if (o->maxretry != 0)
		ip->maxretry = o->maxretry;
	if (o->findtime != 0)
		ip->findtime = o->findtime;
	if (o->bantime != 0)
		ip->bantime = o->bantime;
	if (o->bantime_max != 0)
		ip->bantime_max = o->bantime_max;
	if (o->ipv6_prefix != 0)
		ip->ipv6_prefix = o->ipv6_prefix;
	if (o->maxretry_authenticated != 0)
		ip->maxretry_authenticated = o->maxretry_authenticated;
	return cfg;
}

/* ---- policy scenarios ---- */

enum op { OP_END = 0, OP_STRIKES, OP_AUTH, OP_CHECK };

struct step {
	enum op op;
	const char *ip;
	time_t at;                 /* seconds after T0 */
	/* OP_STRIKES */
	enum guard_strike what;
	int count;                 /* all but the last decide "below_threshold" ... */
	const char *decision;      /* ... unless the last is not "banned": then all alike */
	/* OP_CHECK */
	bool banned;               /* guard_is_banned() */
	const char *network;       /* the table's entry for ip, NULL: none */
	const char *reason;
	int evidence, level;
	time_t expires;            /* seconds after T0 */
};

struct scenario {
	const char *name;
	struct cfg_over cfg;
	struct step steps[MAX_STEPS];
};

#define STRIKES(a, t, n, d) \
	{ .op = OP_STRIKES, .ip = (a), .at = (t), .what = GUARD_STRIKE_AUTH_FAILED, \
	  .count = (n), .decision = (d) }
#define STRIKE_AS(a, t, w, d) \
	{ .op = OP_STRIKES, .ip = (a), .at = (t), .what = (w), .count = 1, .decision = (d) }
#define AUTH(a, t) { .op = OP_AUTH, .ip = (a), .at = (t) }
/* banned now, by this entry */
#define BANNED(a, t, net, r, ev, lv, exp) \
	{ .op = OP_CHECK, .ip = (a), .at = (t), .banned = true, .network = (net), \
	  .reason = (r), .evidence = (ev), .level = (lv), .expires = (exp) }
/* not banned, but the entry stays to remember the level */
#define REMEMBERED(a, t, net, lv) \
	{ .op = OP_CHECK, .ip = (a), .at = (t), .banned = false, .network = (net), \
	  .level = (lv) }
/* not banned, no entry at all */
#define FREE(a, t) { .op = OP_CHECK, .ip = (a), .at = (t), .banned = false }

#define BELOW "below_threshold"
#define BAN "banned"
#define AUTHF GUARD_STRIKE_AUTH_FAILED

static const struct scenario scenarios[] = {
	{ .name = "5 strikes within findtime ban for bantime", .steps = {
	    STRIKES("203.0.113.9", 0, 4, BELOW), FREE("203.0.113.9", 298),
	    STRIKES("203.0.113.9", 299, 1, BAN),
	    BANNED("203.0.113.9", 299, "203.0.113.9/32", "auth_failed", 5, 1, 299 + 3600),
	    FREE("203.0.113.10", 299), FREE("2001:db8::1", 299) } },
	{ .name = "4 strikes do not ban", .steps = {
	    STRIKES("203.0.113.9", 0, 4, BELOW), FREE("203.0.113.9", 1),
	    FREE("203.0.113.9", 299), FREE("203.0.113.9", 100000) } },
	{ .name = "strikes older than findtime do not count", .steps = {
	    STRIKES("203.0.113.9", 0, 4, BELOW),
	    /* those at 0 are exactly findtime old at 300: out */
	    STRIKES("203.0.113.9", 300, 1, BELOW), STRIKES("203.0.113.9", 301, 3, BELOW),
	    FREE("203.0.113.9", 301),
	    STRIKES("203.0.113.9", 599, 1, BAN),
	    BANNED("203.0.113.9", 599, "203.0.113.9/32", "auth_failed", 5, 1, 599 + 3600) } },
	{ .name = "a ban expires after bantime", .steps = {
	    STRIKES("198.51.100.1", 0, 5, BAN),
	    BANNED("198.51.100.1", 1, "198.51.100.1/32", "auth_failed", 5, 1, 3600),
	    BANNED("198.51.100.1", 3599, "198.51.100.1/32", "auth_failed", 5, 1, 3600),
	    REMEMBERED("198.51.100.1", 3600, "198.51.100.1/32", 1),
	    /* the ring was cleared at the ban: a fresh count */
	    STRIKES("198.51.100.1", 3600, 4, BELOW), FREE("198.51.100.2", 3600) } },
	{ .name = "escalation doubles each ban up to bantime_max",
	  .cfg = { .bantime = 100, .bantime_max = 350 }, .steps = {
	    STRIKES("198.51.100.1", 0, 5, BAN),
	    BANNED("198.51.100.1", 0, "198.51.100.1/32", "auth_failed", 5, 1, 100),
	    STRIKES("198.51.100.1", 100, 5, BAN),
	    BANNED("198.51.100.1", 100, "198.51.100.1/32", "auth_failed", 5, 2, 300),
	    STRIKES("198.51.100.1", 300, 5, BAN),   /* 400 capped */
	    BANNED("198.51.100.1", 300, "198.51.100.1/32", "auth_failed", 5, 3, 650),
	    STRIKES("198.51.100.1", 650, 5, BAN),
	    BANNED("198.51.100.1", 650, "198.51.100.1/32", "auth_failed", 5, 4, 1000),
	    /* another network starts at the bottom */
	    STRIKES("198.51.100.2", 650, 5, BAN),
	    BANNED("198.51.100.2", 650, "198.51.100.2/32", "auth_failed", 5, 1, 750) } },
	{ .name = "bantime above bantime_max is capped",
	  .cfg = { .bantime = 1000, .bantime_max = 500 }, .steps = {
	    STRIKES("198.51.100.1", 0, 5, BAN),
	    BANNED("198.51.100.1", 0, "198.51.100.1/32", "auth_failed", 5, 1, 500) } },
	{ .name = "strikes during a ban are not counted", .steps = {
	    STRIKES("198.51.100.1", 0, 5, BAN),
	    STRIKES("198.51.100.1", 10, 3, "already_banned"),
	    BANNED("198.51.100.1", 10, "198.51.100.1/32", "auth_failed", 5, 1, 3600),
	    STRIKES("198.51.100.1", 3600, 4, BELOW),
	    REMEMBERED("198.51.100.1", 3600, "198.51.100.1/32", 1) } },
	{ .name = "the strike that tips the ban names it", .steps = {
	    STRIKE_AS("192.0.2.77", 0, GUARD_STRIKE_AUTH_FAILED, BELOW),
	    STRIKE_AS("192.0.2.77", 1, GUARD_STRIKE_RELAY_DENIED, BELOW),
	    STRIKE_AS("192.0.2.77", 2, GUARD_STRIKE_UNKNOWN_RECIPIENT, BELOW),
	    STRIKE_AS("192.0.2.77", 3, GUARD_STRIKE_PREGREET, BELOW),
	    STRIKE_AS("192.0.2.77", 4, GUARD_STRIKE_TLS_GARBAGE, BAN),
	    BANNED("192.0.2.77", 4, "192.0.2.77/32", "tls_garbage", 5, 1, 3604),
	    STRIKE_AS("192.0.2.78", 0, GUARD_STRIKE_PROTOCOL_ERRORS, BELOW) } },
	{ .name = "ignoreip (by default mynetworks) is never banned", .steps = {
	    STRIKES("127.0.0.9", 0, 50, "ignoreip"), FREE("127.0.0.9", 0),
	    STRIKES("::1", 0, 50, "ignoreip"), FREE("::1", 0),
	    STRIKES("::ffff:127.0.0.1", 0, 50, "ignoreip"), FREE("127.0.0.1", 0),
	    STRIKES("::2", 0, 5, BAN) } },
	{ .name = "ignoreip set explicitly replaces mynetworks",
	  .cfg = { .yaml = "intrusion_prevention:\n"
	    "  ignoreip: [192.0.2.0/24, \"2001:db8:ffff::/48\"]\n" }, .steps = {
	    STRIKES("192.0.2.200", 0, 20, "ignoreip"), FREE("192.0.2.200", 0),
	    STRIKES("2001:db8:ffff:1::1", 0, 20, "ignoreip"), FREE("2001:db8:ffff:1::1", 0),
	    STRIKES("127.0.0.1", 0, 5, BAN),
	    BANNED("127.0.0.1", 0, "127.0.0.1/32", "auth_failed", 5, 1, 3600) } },
	{ .name = "IPv6 clients share strikes and bans by /64", .steps = {
	    STRIKES("2001:db8:1:2::1", 0, 3, BELOW),
	    STRIKES("2001:db8:1:2:ffff:ffff:ffff:ffff", 1, 1, BELOW),
	    STRIKES("2001:db8:1:2::abcd", 2, 1, BAN),
	    BANNED("2001:db8:1:2:1:2:3:4", 2, "2001:db8:1:2::/64", "auth_failed", 5, 1, 3602),
	    BANNED("2001:db8:1:2::1", 2, "2001:db8:1:2::/64", "auth_failed", 5, 1, 3602),
	    FREE("2001:db8:1:3::1", 2), FREE("2001:db8:1:1:ffff:ffff:ffff:ffff", 2),
	    STRIKES("2001:db8:1:3::1", 3, 4, BELOW),
	    STRIKES("2001:db8:1:3::2", 3, 1, BAN),
	    BANNED("2001:db8:1:3::9", 3, "2001:db8:1:3::/64", "auth_failed", 5, 1, 3603) } },
	{ .name = "ipv6_prefix 48 groups by /48", .cfg = { .ipv6_prefix = 48 }, .steps = {
	    STRIKES("2001:db8:1:2::1", 0, 2, BELOW), STRIKES("2001:db8:1:ff::1", 0, 2, BELOW),
	    STRIKES("2001:db8:1:ffff:1::1", 0, 1, BAN),
	    BANNED("2001:db8:1:abcd::1", 0, "2001:db8:1::/48", "auth_failed", 5, 1, 3600),
	    FREE("2001:db8:2::1", 0) } },
	{ .name = "ipv6_prefix 128 bans single addresses", .cfg = { .ipv6_prefix = 128 },
	  .steps = {
	    STRIKES("2001:db8::1", 0, 4, BELOW), STRIKES("2001:db8::2", 0, 4, BELOW),
	    STRIKES("2001:db8::1", 0, 1, BAN),
	    BANNED("2001:db8::1", 0, "2001:db8::1/128", "auth_failed", 5, 1, 3600),
	    FREE("2001:db8::2", 0) } },
	{ .name = "ipv6_prefix 60 masks inside a group", .cfg = { .ipv6_prefix = 60 },
	  .steps = {
	    STRIKES("2001:db8:1:f::1", 0, 4, BELOW), STRIKES("2001:db8:1:3::1", 0, 1, BAN),
	    BANNED("2001:db8:1:0::5", 0, "2001:db8:1::/60", "auth_failed", 5, 1, 3600),
	    FREE("2001:db8:1:10::1", 0) } },
	{ .name = "IPv4-mapped IPv6 is the IPv4 client", .steps = {
	    STRIKES("::ffff:198.51.100.7", 0, 2, BELOW), STRIKES("198.51.100.7", 0, 2, BELOW),
	    STRIKES("::ffff:198.51.100.7", 0, 1, BAN),
	    BANNED("198.51.100.7", 0, "198.51.100.7/32", "auth_failed", 5, 1, 3600),
	    BANNED("::ffff:198.51.100.7", 0, "198.51.100.7/32", "auth_failed", 5, 1, 3600),
	    FREE("::ffff:198.51.100.8", 0), FREE("::198.51.100.7", 0) } },
	{ .name = "NAT: after a login the threshold is maxretry_authenticated", .steps = {
	    AUTH("192.0.2.1", 0),
	    STRIKES("192.0.2.1", 1, 19, BELOW), FREE("192.0.2.1", 1),
	    STRIKES("192.0.2.1", 2, 1, BAN),
	    BANNED("192.0.2.1", 2, "192.0.2.1/32", "auth_failed", 20, 1, 3602) } },
	{ .name = "NAT: a login raises the threshold for findtime only", .steps = {
	    AUTH("192.0.2.1", 0), STRIKES("192.0.2.1", 299, 5, BELOW),
	    /* at 300 the login is findtime old: back to maxretry */
	    STRIKES("192.0.2.1", 300, 1, BAN),
	    BANNED("192.0.2.1", 300, "192.0.2.1/32", "auth_failed", 6, 1, 3900) } },
	{ .name = "NAT: a login from one IP does not shield another", .steps = {
	    AUTH("192.0.2.1", 0), STRIKES("192.0.2.2", 1, 5, BAN),
	    BANNED("192.0.2.2", 1, "192.0.2.2/32", "auth_failed", 5, 1, 3601),
	    FREE("192.0.2.1", 1) } },
	{ .name = "NAT: a login from a /64 shields the /64", .steps = {
	    AUTH("2001:db8:7:7::1", 0), STRIKES("2001:db8:7:7::2", 1, 19, BELOW),
	    STRIKES("2001:db8:7:7::3", 1, 1, BAN) } },
	{ .name = "maxretry_authenticated below maxretry never lowers it",
	  .cfg = { .maxretry_authenticated = 2 }, .steps = {
	    AUTH("192.0.2.1", 0), STRIKES("192.0.2.1", 1, 4, BELOW),
	    STRIKES("192.0.2.1", 1, 1, BAN) } },
	{ .name = "disabled never bans", .cfg = { .disabled = true }, .steps = {
	    STRIKES("203.0.113.9", 0, 100, "disabled"), FREE("203.0.113.9", 0),
	    STRIKES("2001:db8::1", 0, 100, "disabled"), FREE("2001:db8::1", 0) } },
	{ .name = "maxretry 1 bans at the first strike", .cfg = { .maxretry = 1, .findtime = 10 },
	  .steps = {
	    STRIKES("203.0.113.9", 0, 1, BAN),
	    BANNED("203.0.113.9", 0, "203.0.113.9/32", "auth_failed", 1, 1, 3600) } },
};

static void
run_step(const struct scenario *sc, size_t i, struct guard *g, const struct step *st)
{
	struct sockaddr_storage ss;
	struct guard_ban_info info;
	time_t now = T0 + st->at;

	make_sa(st->ip, &ss);
	switch (st->op) {
	case OP_STRIKES:
		for (int n = 1; n <= st->count; n++) {
			bool last = n == st->count;
			const char *want = !last && strcmp(st->decision, BAN) == 0 ?
			    BELOW : st->decision;
			bool r = guard_strike(g, SA(ss), st->what, now);

			if (strcmp(guard_ban_last_decision(g), want) != 0 ||
			    r != (strcmp(want, BAN) == 0))
				fail_msg("%s, step %zu (strike %d of %d from %s): %s (%s), expected %s",
				    sc->name, i, n, st->count, st->ip, guard_ban_last_decision(g),
				    r ? "true" : "false", want);
		}
		break;
	case OP_AUTH:
		guard_auth_success(g, SA(ss), now);
		break;
	case OP_CHECK:
		if (guard_is_banned(g, SA(ss), now) != st->banned)
			fail_msg("%s, step %zu: %s at +%lld: banned %s, expected %s", sc->name, i,
			    st->ip, (long long)st->at, st->banned ? "no" : "yes",
			    st->banned ? "yes" : "no");
		if (guard_ban_get(g, SA(ss), now, &info) != (st->network != NULL))
			fail_msg("%s, step %zu: %s: table entry %s, expected %s", sc->name, i,
			    st->ip, info.network[0] != '\0' ? info.network : "none",
			    st->network != NULL ? st->network : "none");
		if (st->network == NULL)
			break;
		if (strcmp(info.network, st->network) != 0 || info.level != st->level ||
		    info.active != st->banned)
			fail_msg("%s, step %zu: %s: %s level %d, expected %s level %d", sc->name, i,
			    st->ip, info.network, info.level, st->network, st->level);
		if (st->banned && (strcmp(info.reason, st->reason) != 0 ||
		    info.evidence != st->evidence || info.expires != T0 + st->expires))
			fail_msg("%s, step %zu: %s: reason %s evidence %d expires +%lld, expected"
			    " %s %d +%lld", sc->name, i, st->ip, info.reason, info.evidence,
			    (long long)(info.expires - T0), st->reason, st->evidence,
			    (long long)st->expires);
		break;
	case OP_END:
		break;
	}
}

static void
test_scenarios(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++) {
		const struct scenario *sc = &scenarios[i];
		struct config *cfg = test_config(&sc->cfg);
		struct guard *g = guard_new();

		assert_non_null(g);
		assert_int_equal(guard_bans_start(g, cfg, NULL, T0), 0);
		for (size_t s = 0; s < MAX_STEPS && sc->steps[s].op != OP_END; s++)
			run_step(sc, s, g, &sc->steps[s]);
		guard_free(&g);
		config_free(&cfg);
	}
}

/* ---- names and network text ---- */

static void
test_strike_names(void **state)
{
	static const struct {
		enum guard_strike s;
		const char *name;
	} cases[] = {
		{ .s = GUARD_STRIKE_AUTH_FAILED, .name = "auth_failed" },
		{ .s = GUARD_STRIKE_RELAY_DENIED, .name = "relay_denied" },
		{ .s = GUARD_STRIKE_UNKNOWN_RECIPIENT, .name = "unknown_recipient" },
		{ .s = GUARD_STRIKE_PROTOCOL_ERRORS, .name = "protocol_errors" },
		{ .s = GUARD_STRIKE_PREGREET, .name = "pregreet" },
		{ .s = GUARD_STRIKE_TLS_GARBAGE, .name = "tls_garbage" },
		{ .s = GUARD_STRIKE_COUNT, .name = "unknown" },
		{ .s = (enum guard_strike)99, .name = "unknown" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_string_equal(guard_strike_name(cases[i].s), cases[i].name);
}

static void
test_network_text(void **state)
{
	static const struct {
		const char *ip;
		int prefix;
		const char *text;
	} cases[] = {
		{ .ip = "203.0.113.9", .prefix = 64, .text = "203.0.113.9/32" },
		{ .ip = "0.0.0.0", .prefix = 64, .text = "0.0.0.0/32" },
		{ .ip = "::ffff:203.0.113.9", .prefix = 64, .text = "203.0.113.9/32" },
		{ .ip = "::ffff:203.0.113.9", .prefix = 128, .text = "203.0.113.9/32" },
		{ .ip = "2001:db8:1:2:3:4:5:6", .prefix = 64, .text = "2001:db8:1:2::/64" },
		{ .ip = "2001:db8:1:2:3:4:5:6", .prefix = 48, .text = "2001:db8:1::/48" },
		{ .ip = "2001:db8:1:2:3:4:5:6", .prefix = 56, .text = "2001:db8:1::/56" },
		{ .ip = "2001:db8:1:2ff:3:4:5:6", .prefix = 56, .text = "2001:db8:1:200::/56" },
		{ .ip = "2001:db8:1:2:3:4:5:6", .prefix = 128, .text = "2001:db8:1:2:3:4:5:6/128" },
		{ .ip = "2001:db8:1:2:3:4:5:6", .prefix = 127, .text = "2001:db8:1:2:3:4:5:6/127" },
		{ .ip = "2001:db8:1:2:3:4:5:7", .prefix = 127, .text = "2001:db8:1:2:3:4:5:6/127" },
		{ .ip = "::1", .prefix = 64, .text = "::/64" },
		{ .ip = "::198.51.100.7", .prefix = 128, .text = "::198.51.100.7/128" },   /* IPv4-compatible: IPv6 */
		{ .ip = "fe80::1", .prefix = 64, .text = "fe80::/64" },
		/* out of range: the default /64 */
		{ .ip = "2001:db8:1:2:3:4:5:6", .prefix = 0, .text = "2001:db8:1:2::/64" },
		{ .ip = "2001:db8:1:2:3:4:5:6", .prefix = 129, .text = "2001:db8:1:2::/64" },
	};
	char buf[GUARD_NETWORK_TEXT_MAX], small[8];
	struct sockaddr_storage ss;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		make_sa(cases[i].ip, &ss);
		guard_network_text(SA(ss), cases[i].prefix, buf, sizeof(buf));
		if (strcmp(buf, cases[i].text) != 0)
			fail_msg("%s /%d: %s, expected %s", cases[i].ip, cases[i].prefix, buf,
			    cases[i].text);
	}
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	guard_network_text(SA(ss), 64, buf, sizeof(buf));
	assert_string_equal(buf, "?");
	make_sa("2001:db8::1", &ss);
	guard_network_text(SA(ss), 64, small, sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);   /* cut, terminated */
}

/* ---- state, counters ---- */

static void
test_not_started(void **state)
{
	struct guard *g = guard_new();
	struct sockaddr_storage ss;
	struct guard_ban_stats st;

	(void)state;
	make_sa("203.0.113.9", &ss);
	for (int i = 0; i < 20; i++)
		assert_false(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0));
	assert_string_equal(guard_ban_last_decision(g), "not_started");
	guard_auth_success(g, SA(ss), T0);
	assert_false(guard_is_banned(g, SA(ss), T0));
	assert_int_equal(guard_bans_reload(g, T0), 0);
	guard_bans_expire(g, T0);
	guard_ban_stats(g, T0, &st);
	assert_int_equal(st.bans + st.unbans + st.refused + st.active, 0);
	guard_free(&g);
}

static void
test_unknown_family(void **state)
{
	struct config *cfg = test_config(&(struct cfg_over){ 0 });
	struct guard *g = guard_new();
	struct sockaddr_storage ss;

	(void)state;
	assert_int_equal(guard_bans_start(g, cfg, NULL, T0), 0);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	for (int i = 0; i < 10; i++)
		assert_false(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0));
	assert_string_equal(guard_ban_last_decision(g), "unknown_family");
	assert_false(guard_is_banned(g, SA(ss), T0));
	guard_free(&g);
	config_free(&cfg);
}

static void
test_stats(void **state)
{
	struct config *cfg = test_config(&(struct cfg_over){ .bantime = 100 });
	struct guard *g = guard_new();
	struct sockaddr_storage a, b;
	struct guard_ban_stats st;

	(void)state;
	assert_int_equal(guard_bans_start(g, cfg, NULL, T0), 0);
	make_sa("203.0.113.1", &a);
	make_sa("2001:db8::1", &b);
	for (int i = 0; i < 5; i++)
		guard_strike(g, SA(a), GUARD_STRIKE_RELAY_DENIED, T0);
	for (int i = 0; i < 5; i++)
		guard_strike(g, SA(b), GUARD_STRIKE_PREGREET, T0 + 50);
	for (int i = 0; i < 3; i++)
		assert_true(guard_is_banned(g, SA(a), T0 + 10));
	assert_true(guard_is_banned(g, SA(b), T0 + 60));
	guard_ban_stats(g, T0 + 60, &st);
	assert_int_equal(st.bans, 2);
	assert_int_equal(st.unbans, 0);
	assert_int_equal(st.refused, 4);
	assert_int_equal(st.active, 2);
	/* a ran out: counted as unbanned before anyone notices */
	guard_ban_stats(g, T0 + 100, &st);
	assert_int_equal(st.active, 1);
	assert_int_equal(st.unbans, 1);
	/* noticed at accept, then by the sweep: still counted once */
	assert_false(guard_is_banned(g, SA(a), T0 + 100));
	guard_bans_expire(g, T0 + 100);
	guard_ban_stats(g, T0 + 100, &st);
	assert_int_equal(st.unbans, 1);
	assert_int_equal(st.refused, 4);
	guard_bans_expire(g, T0 + 150);
	guard_ban_stats(g, T0 + 150, &st);
	assert_int_equal(st.active, 0);
	assert_int_equal(st.unbans, 2);
	assert_int_equal(st.bans, 2);
	/* a second ban of a: bans 3, and its unban counted once more later */
	for (int i = 0; i < 5; i++)
		guard_strike(g, SA(a), GUARD_STRIKE_AUTH_FAILED, T0 + 200);
	guard_ban_stats(g, T0 + 200, &st);
	assert_int_equal(st.bans, 3);
	assert_int_equal(st.active, 1);
	guard_ban_stats(g, T0 + 400, &st);   /* 200 s, the doubled ban */
	assert_int_equal(st.active, 0);
	assert_int_equal(st.unbans, 3);
	guard_free(&g);
	config_free(&cfg);
}

/* guard_is_banned allocates nothing, hit or miss. */
static void
test_is_banned_allocation_free(void **state)
{
	struct config *cfg = test_config(&(struct cfg_over){ 0 });
	struct guard *g = guard_new();
	struct sockaddr_storage ss;
	size_t before;
	unsigned long hits = 0;

	(void)state;
	assert_int_equal(guard_bans_start(g, cfg, NULL, T0), 0);
	for (uint32_t n = 0; n < 1000; n++) {
		make_sa_v4(0xc6336400u + n, &ss);
		for (int i = 0; i < 5; i++)
			guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0);
		make_sa_net64(n, &ss);
		for (int i = 0; i < 5; i++)
			guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0);
	}
	before = allocated_bytes();
	for (uint32_t n = 0; n < 100000; n++) {
		make_sa_v4(0xc6336400u + n % 2000, &ss);
		hits += guard_is_banned(g, SA(ss), T0 + 1);
		make_sa_net64(n % 2000, &ss);
		hits += guard_is_banned(g, SA(ss), T0 + 1);
	}
	assert_int_equal(allocated_bytes(), before);
	assert_int_equal(hits, 100000);
	guard_free(&g);
	config_free(&cfg);
}

/*
 * 200k distinct IPv6 /64s strike once each (a scan from a big allocation):
 * the strike table stops at its bound, the oldest networks are forgotten,
 * the newest still count, and memory stays bounded.
 */
static void
test_memory_bound(void **state)
{
	struct config *cfg = test_config(&(struct cfg_over){ 0 });
	struct guard *g = guard_new();
	struct sockaddr_storage ss;
	size_t before, after, max;
	const uint32_t n = 200000;

	(void)state;
	before = allocated_bytes();
	assert_int_equal(guard_bans_start(g, cfg, NULL, T0), 0);
	for (uint32_t i = 0; i < n; i++) {
		make_sa_net64(i, &ss);
		assert_false(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 1));
	}
	after = allocated_bytes();
	assert_int_equal(guard_ban_strike_networks(g, &max), GUARD_STRIKE_NETWORKS_MAX);
	assert_int_equal(max, GUARD_STRIKE_NETWORKS_MAX);
	if (after - before > 32u * 1024 * 1024)
		fail_msg("200000 networks took %zu bytes", after - before);
	/* the first network was forgotten: 4 more strikes are 4, not 5 */
	make_sa_net64(0, &ss);
	for (int i = 0; i < 4; i++)
		assert_false(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 2));
	assert_true(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 2));
	/* the last one was kept: its first strike still counts */
	make_sa_net64(n - 1, &ss);
	for (int i = 0; i < 3; i++)
		assert_false(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 2));
	assert_true(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 2));
	assert_string_equal(guard_ban_last_decision(g), "banned");
	/* a network that was touched recently survives the next wave */
	make_sa_net64(n - 2, &ss);
	guard_auth_success(g, SA(ss), T0 + 3);
	for (uint32_t i = n; i < n + GUARD_STRIKE_NETWORKS_MAX - 1; i++) {
		struct sockaddr_storage other;

		make_sa_net64(i, &other);
		guard_strike(g, SA(other), GUARD_STRIKE_AUTH_FAILED, T0 + 4);
	}
	/* the index is whole after 200k evictions: every newest one is there */
	assert_int_equal(guard_ban_strike_networks(g, NULL), GUARD_STRIKE_NETWORKS_MAX);
	for (uint32_t i = n; i < n + GUARD_STRIKE_NETWORKS_MAX - 1; i++) {
		struct sockaddr_storage other;

		make_sa_net64(i, &other);
		if (guard_ban_strikes(g, SA(other), T0 + 5) != 1)
			fail_msg("network %u: %d strikes", i, guard_ban_strikes(g, SA(other), T0 + 5));
	}
	for (uint32_t i = 0; i < n; i++) {
		struct sockaddr_storage other;

		make_sa_net64(i, &other);
		if (i != n - 2 && guard_ban_strikes(g, SA(other), T0 + 5) != -1)
			fail_msg("network %u still followed", i);
	}
	assert_int_equal(guard_ban_strikes(g, SA(ss), T0 + 5), 1);
	assert_int_equal(guard_ban_strikes(g, SA(ss), T0 + 301), 0);
	/* its strike and its login both survived: 1 + 19 strikes reach 20 */
	for (int i = 0; i < 18; i++)
		assert_false(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 5));
	assert_true(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 5));
	assert_true(allocated_bytes() - before <= 32u * 1024 * 1024);
	guard_free(&g);
	config_free(&cfg);
}

/*
 * The ban table's bound: with every slot a ban in force, one more ban is
 * refused (and logged); once bans run out their entries make room.
 */
static void
test_ban_table_bound(void **state)
{
	struct config *cfg = test_config(&(struct cfg_over){ .maxretry = 1, .bantime = 1000,
	    .bantime_max = 1000 });
	struct guard *g = guard_new();
	struct sockaddr_storage ss;
	struct guard_ban_stats st;

	(void)state;
	assert_int_equal(guard_bans_start(g, cfg, NULL, T0), 0);
	for (uint32_t i = 0; i < GUARD_BANS_MAX; i++) {
		make_sa_v4(0x0a000000u + i, &ss);
		assert_true(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0));
	}
	make_sa_v4(0x0b000000u, &ss);
	assert_false(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 1));
	assert_string_equal(guard_ban_last_decision(g), "ban_failed");
	assert_false(guard_is_banned(g, SA(ss), T0 + 1));
	guard_ban_stats(g, T0 + 1, &st);
	assert_int_equal(st.active, GUARD_BANS_MAX);
	assert_int_equal(st.bans, GUARD_BANS_MAX);
	/* all ran out: room again, the old levels forgotten */
	assert_true(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 1000));
	assert_true(guard_is_banned(g, SA(ss), T0 + 1000));
	make_sa_v4(0x0a000000u, &ss);
	assert_false(guard_is_banned(g, SA(ss), T0 + 1000));
	guard_ban_stats(g, T0 + 1000, &st);
	assert_int_equal(st.active, 1);
	assert_int_equal(st.unbans, GUARD_BANS_MAX);
	guard_free(&g);
	config_free(&cfg);
}

/* ---- the log line ---- */

/* Run the strikes with stderr going to a temporary file; return its text. */
static char *
capture_ban_log(struct guard *g, const struct sockaddr *sa, int strikes, time_t now)
{
	char path[] = "/tmp/bulwark-test-guard-log-XXXXXX", *text;
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	off_t len;

	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	log_set_level(LOG_LEVEL_INFO);
	for (int i = 0; i < strikes; i++)
		guard_strike(g, sa, GUARD_STRIKE_AUTH_FAILED, now);
	log_set_level(LOG_LEVEL_WARNING);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	len = lseek(fd, 0, SEEK_END);
	assert_true(len > 0);
	text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(pread(fd, text, (size_t)len, 0), len);
	close(fd);
	return text;
}

static void
test_log_line(void **state)
{
	struct config *cfg = test_config(&(struct cfg_over){ 0 });
	struct guard *g = guard_new();
	struct sockaddr_storage ss;
	char *text;

	(void)state;
	assert_int_equal(guard_bans_start(g, cfg, NULL, T0), 0);
	make_sa("203.0.113.9", &ss);
	text = capture_ban_log(g, SA(ss), 5, T0);
	if (strstr(text, " info: event=guard.ban network=203.0.113.9/32 reason=auth_failed"
	    " evidence=5 level=0 duration=3600 expires=2025-06-15T16:06:40Z"
	    " ip=203.0.113.9\n") == NULL ||
	    strstr(text, "event=guard.strike network=203.0.113.9/32 ip=203.0.113.9"
	    " reason=auth_failed strikes=4 threshold=5 decision=below_threshold\n") == NULL ||
	    strstr(text, "strikes=5 threshold=5 decision=banned\n") == NULL)
		fail_msg("log:\n%s", text);
	free(text);
	/* the second ban: level 1, doubled */
	text = capture_ban_log(g, SA(ss), 5, T0 + 3600);
	if (strstr(text, "event=guard.ban network=203.0.113.9/32 reason=auth_failed"
	    " evidence=5 level=1 duration=7200 expires=2025-06-15T18:06:40Z") == NULL)
		fail_msg("log:\n%s", text);
	free(text);
	guard_free(&g);
	config_free(&cfg);
}

/* ---- persistence through a real directory ---- */

struct store {
	char dir[64];
	struct directory *daemon;   /* the daemon's handle */
	struct directory *ctl;      /* a second connection, as bulwarkctl */
	struct config *cfg;
};

static int
store_setup(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	char *error = NULL;

	assert_non_null(s);
	snprintf(s->dir, sizeof(s->dir), "/tmp/bulwark-test-guard-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	if (directory_open(s->dir, &s->daemon, &error) != 0 ||
	    directory_open(s->dir, &s->ctl, &error) != 0)
		fail_msg("directory_open: %s", error);
	s->cfg = test_config(&(struct cfg_over){ 0 });
	*state = s;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
store_teardown(void **state)
{
	struct store *s = *state;

	directory_free(&s->daemon);
	directory_free(&s->ctl);
	config_free(&s->cfg);
	nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(s);
	return 0;
}

/* The store's row for network, with its reason checked, or fail. */
static void
store_row(struct directory *dir, const char *network, const char *reason,
    struct directory_ban *row_r)
{
	struct directory_ban *rows;
	size_t n;

	assert_int_equal(directory_ban_list(dir, &rows, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(rows[i].network, network) == 0) {
			assert_string_equal(rows[i].reason, reason);
			*row_r = rows[i];
			row_r->network = NULL;
			row_r->reason = NULL;
			directory_ban_list_free(&rows, n);
			return;
		}
	}
	fail_msg("no store row for %s (%zu rows)", network, n);
}

static void
ban_now(struct guard *g, const char *ip, enum guard_strike what, time_t now)
{
	struct sockaddr_storage ss;

	make_sa(ip, &ss);
	for (int i = 0; i < 4; i++)
		assert_false(guard_strike(g, SA(ss), what, now));
	assert_true(guard_strike(g, SA(ss), what, now));
}

static void
assert_ban(struct guard *g, const char *ip, time_t now, bool banned, const char *network,
    const char *reason, int level, time_t expires)
{
	struct sockaddr_storage ss;
	struct guard_ban_info info;

	make_sa(ip, &ss);
	if (guard_is_banned(g, SA(ss), now) != banned)
		fail_msg("%s at +%lld: banned %s", ip, (long long)(now - T0), banned ? "no" : "yes");
	if (network == NULL) {
		assert_int_equal(guard_ban_get(g, SA(ss), now, &info), 0);
		return;
	}
	assert_int_equal(guard_ban_get(g, SA(ss), now, &info), 1);
	assert_string_equal(info.network, network);
	if (reason != NULL)
		assert_string_equal(info.reason, reason);
	assert_int_equal(info.level, level);
	if (expires != 0)
		assert_int_equal(info.expires, expires);
}

/* A ban is saved; a new guard loading the store sees it, reason and all. */
static void
test_persist_round_trip(void **state)
{
	struct store *s = *state;
	struct guard *a = guard_new(), *b = guard_new();
	struct directory_ban row;
	struct guard_ban_stats st;

	assert_int_equal(guard_bans_start(a, s->cfg, s->daemon, T0), 0);
	ban_now(a, "203.0.113.9", GUARD_STRIKE_RELAY_DENIED, T0);
	ban_now(a, "2001:db8:1:2::7", GUARD_STRIKE_AUTH_FAILED, T0 + 1);
	store_row(s->ctl, "203.0.113.9/32", "relay_denied", &row);
	assert_int_equal(row.evidence, 5);
	assert_int_equal(row.level, 1);
	assert_int_equal(row.created, T0);
	assert_int_equal(row.expires, T0 + 3600);
	store_row(s->ctl, "2001:db8:1:2::/64", "auth_failed", &row);
	assert_int_equal(row.expires, T0 + 3601);

	/* a restart */
	guard_free(&a);
	assert_int_equal(guard_bans_start(b, s->cfg, s->daemon, T0 + 10), 0);
	assert_ban(b, "203.0.113.9", T0 + 10, true, "203.0.113.9/32", "relay_denied", 1,
	    T0 + 3600);
	assert_ban(b, "2001:db8:1:2::99", T0 + 10, true, "2001:db8:1:2::/64", "auth_failed", 1,
	    T0 + 3601);
	assert_ban(b, "203.0.113.10", T0 + 10, false, NULL, NULL, 0, 0);
	guard_ban_stats(b, T0 + 10, &st);
	assert_int_equal(st.active, 2);
	assert_int_equal(st.bans, 0);   /* loaded, not new */
	assert_ban(b, "203.0.113.9", T0 + 3600, false, "203.0.113.9/32", NULL, 1, 0);
	guard_free(&b);
}

/* Rows stay after expiry: a restart still escalates the next ban. */
static void
test_persist_level_after_expiry(void **state)
{
	struct store *s = *state;
	struct guard *a = guard_new(), *b = guard_new();
	struct directory_ban row;
	time_t later = T0 + 4000;

	assert_int_equal(guard_bans_start(a, s->cfg, s->daemon, T0), 0);
	ban_now(a, "198.51.100.3", GUARD_STRIKE_AUTH_FAILED, T0);
	guard_free(&a);

	assert_int_equal(guard_bans_start(b, s->cfg, s->daemon, later), 0);
	assert_ban(b, "198.51.100.3", later, false, "198.51.100.3/32", "auth_failed", 1, 0);
	ban_now(b, "198.51.100.3", GUARD_STRIKE_UNKNOWN_RECIPIENT, later);
	assert_ban(b, "198.51.100.3", later, true, "198.51.100.3/32", "unknown_recipient", 2,
	    later + 7200);
	store_row(s->ctl, "198.51.100.3/32", "unknown_recipient", &row);
	assert_int_equal(row.level, 2);
	assert_int_equal(row.expires, later + 7200);
	guard_free(&b);
}

/* bulwarkctl ban del / ban add while the daemon runs: reload follows the store. */
static void
test_persist_reload(void **state)
{
	struct store *s = *state;
	struct guard *g = guard_new();
	struct guard_ban_stats st;
	char net[] = "198.51.100.0/24", net6[] = "2001:db8:5::/48", reason[] = "manual";
	struct directory_ban manual = { .network = net, .reason = reason, .evidence = 0,
	    .level = 1, .created = T0 + 20, .expires = T0 + 20 + 600 };

	assert_int_equal(guard_bans_start(g, s->cfg, s->daemon, T0), 0);
	ban_now(g, "203.0.113.9", GUARD_STRIKE_AUTH_FAILED, T0);
	ban_now(g, "203.0.113.10", GUARD_STRIKE_AUTH_FAILED, T0);
	/* the daemon's own writes are not "changes by another connection" */
	assert_int_equal(directory_changed(s->daemon), 0);

	/* ban del */
	assert_int_equal(directory_ban_delete(s->ctl, "203.0.113.9/32"), 1);
	assert_int_equal(directory_changed(s->daemon), 1);
	assert_int_equal(guard_bans_reload(g, T0 + 10), 0);
	assert_ban(g, "203.0.113.9", T0 + 10, false, NULL, NULL, 0, 0);
	assert_ban(g, "203.0.113.10", T0 + 10, true, "203.0.113.10/32", "auth_failed", 1,
	    T0 + 3600);
	guard_ban_stats(g, T0 + 10, &st);
	assert_int_equal(st.bans, 2);
	assert_int_equal(st.unbans, 1);
	assert_int_equal(st.active, 1);
	/* its level went with the row: a new ban starts at bantime */
	ban_now(g, "203.0.113.9", GUARD_STRIKE_AUTH_FAILED, T0 + 11);
	assert_ban(g, "203.0.113.9", T0 + 11, true, "203.0.113.9/32", "auth_failed", 1,
	    T0 + 11 + 3600);

	/* ban add: an IPv4 /24 and an IPv6 /48, wider than what strikes ban */
	assert_int_equal(directory_ban_save(s->ctl, &manual), 0);
	manual.network = net6;
	assert_int_equal(directory_ban_save(s->ctl, &manual), 0);
	assert_int_equal(guard_bans_reload(g, T0 + 20), 0);
	assert_ban(g, "198.51.100.77", T0 + 20, true, "198.51.100.0/24", "manual", 1,
	    T0 + 620);
	assert_ban(g, "::ffff:198.51.100.1", T0 + 20, true, "198.51.100.0/24", "manual", 1, 0);
	assert_ban(g, "198.51.101.1", T0 + 20, false, NULL, NULL, 0, 0);
	assert_ban(g, "2001:db8:5:6::1", T0 + 20, true, "2001:db8:5::/48", "manual", 1, 0);
	assert_ban(g, "2001:db8:6::1", T0 + 20, false, NULL, NULL, 0, 0);
	{
		struct sockaddr_storage ss;

		make_sa("198.51.100.5", &ss);   /* strikes inside a wider ban */
		assert_false(guard_strike(g, SA(ss), GUARD_STRIKE_AUTH_FAILED, T0 + 21));
		assert_string_equal(guard_ban_last_decision(g), "already_banned");
	}
	guard_ban_stats(g, T0 + 20, &st);
	assert_int_equal(st.bans, 5);
	assert_int_equal(st.active, 4);

	/* a ban shortened into the past by hand is lifted at the next reload */
	manual.expires = T0;
	assert_int_equal(directory_ban_save(s->ctl, &manual), 0);
	assert_int_equal(guard_bans_reload(g, T0 + 30), 0);
	assert_ban(g, "2001:db8:5:6::1", T0 + 30, false, "2001:db8:5::/48", "manual", 1, 0);
	guard_ban_stats(g, T0 + 30, &st);
	assert_int_equal(st.unbans, 2);
	assert_int_equal(st.active, 3);

	/* reload with nothing changed changes nothing */
	assert_int_equal(guard_bans_reload(g, T0 + 31), 0);
	guard_ban_stats(g, T0 + 31, &st);
	assert_int_equal(st.bans, 5);
	assert_int_equal(st.unbans, 2);
	assert_int_equal(st.active, 3);

	/* everything deleted: all lifted */
	assert_int_equal(directory_ban_delete(s->ctl, "198.51.100.0/24"), 1);
	assert_int_equal(directory_ban_delete(s->ctl, "2001:db8:5::/48"), 1);
	assert_int_equal(directory_ban_delete(s->ctl, "203.0.113.9/32"), 1);
	assert_int_equal(directory_ban_delete(s->ctl, "203.0.113.10/32"), 1);
	assert_int_equal(guard_bans_reload(g, T0 + 40), 0);
	guard_ban_stats(g, T0 + 40, &st);
	assert_int_equal(st.active, 0);
	assert_int_equal(st.unbans, 5);
	assert_ban(g, "198.51.100.77", T0 + 40, false, NULL, NULL, 0, 0);
	assert_ban(g, "203.0.113.10", T0 + 40, false, NULL, NULL, 0, 0);
	guard_free(&g);
}

/* Rows bulwarkctl may write: level 0, a long reason (cut to the table's field). */
static void
test_persist_odd_rows(void **state)
{
	struct store *s = *state;
	struct guard *g = guard_new();
	char net[] = "2001:db8:9::/48", reason[] = "a reason longer than the table's own field";
	struct directory_ban row = { .network = net, .reason = reason, .evidence = 0,
	    .level = 0, .created = T0, .expires = T0 + 100 };

	assert_int_equal(directory_ban_save(s->ctl, &row), 0);
	assert_int_equal(guard_bans_start(g, s->cfg, s->daemon, T0), 0);
	/* level 0 (a manual row may say so) escalates like no earlier ban */
	assert_ban(g, "2001:db8:9::1", T0, true, "2001:db8:9::/48", NULL, 0, T0 + 100);
	{
		struct sockaddr_storage ss;
		struct guard_ban_info info;

		make_sa("2001:db8:9::1", &ss);
		assert_int_equal(guard_ban_get(g, SA(ss), T0, &info), 1);
		assert_int_equal(strlen(info.reason), GUARD_BAN_REASON_MAX - 1);
	}
	guard_free(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenarios),
		cmocka_unit_test(test_strike_names),
		cmocka_unit_test(test_network_text),
		cmocka_unit_test(test_not_started),
		cmocka_unit_test(test_unknown_family),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_is_banned_allocation_free),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_ban_table_bound),
		cmocka_unit_test(test_log_line),
		cmocka_unit_test_setup_teardown(test_persist_round_trip, store_setup,
		    store_teardown),
		cmocka_unit_test_setup_teardown(test_persist_level_after_expiry, store_setup,
		    store_teardown),
		cmocka_unit_test_setup_teardown(test_persist_reload, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_persist_odd_rows, store_setup,
		    store_teardown),
	};

	log_init("test_guard_ban", LOG_LEVEL_WARNING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
