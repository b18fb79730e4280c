/*
 * test_guard_filter.c: tests for src/guard/guard_filter.c, the ban table as
 * a classic BPF socket filter. The compiled program is checked the way the
 * kernel checks it (known opcodes, jumps inside, a return at the end) and
 * run in a small interpreter on hand-made TCP/IP headers, case by case with
 * the reason of each verdict; the bounds (BPF_MAXINSNS, 8-bit jumps) with
 * thousands of bans; then the real thing: the program attached to loopback
 * listeners, with connections from a banned and a free address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "guard/guard.h"
#include "guard/guard_private.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_NETS 8
#define T0 ((time_t)1750000000)

/* ---- a classic BPF checker and interpreter, for what the compiler emits ---- */

/* A packet as tcp_filter() shows it: skb->data at the TCP header, the IP header before. */
struct packet {
	uint8_t net[60];    /* the IP header (IPv4 or IPv6) */
	size_t netlen;
	uint8_t tcp[20];
};

/* The kernel's bpf_check_classic(), for the opcodes used. */
static void
check_prog(const struct sock_filter *prog, size_t len)
{
	assert_true(len > 0 && len <= BPF_MAXINSNS);
	for (size_t pc = 0; pc < len; pc++) {
		const struct sock_filter *in = &prog[pc];

		switch (in->code) {
		case BPF_LD | BPF_W | BPF_ABS:
		case BPF_LD | BPF_B | BPF_ABS:
		case BPF_ALU | BPF_RSH | BPF_K:
		case BPF_ALU | BPF_AND | BPF_K:
		case BPF_RET | BPF_K:
			break;
		case BPF_JMP | BPF_JA:
			assert_true((size_t)in->k < len - pc - 1);
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
		case BPF_JMP | BPF_JSET | BPF_K:
			assert_true(pc + 1 + in->jt < len);
			assert_true(pc + 1 + in->jf < len);
			break;
		default:
			fail_msg("pc %zu: unexpected opcode 0x%x", pc, in->code);
		}
	}
	assert_int_equal(BPF_CLASS(prog[len - 1].code), BPF_RET);
}

/* Load size bytes big-endian at k: SKF_NET_OFF-relative or skb->data-relative. */
static bool
load(const struct packet *p, uint32_t k, unsigned size, uint32_t *a_r)
{
	int32_t off = (int32_t)k;
	const uint8_t *base = p->tcp;
	size_t avail = sizeof(p->tcp);

	if (off < 0) {
		if (off < SKF_NET_OFF || off >= SKF_NET_OFF + (int32_t)p->netlen)
			return false;
		base = p->net;
		avail = p->netlen;
		off -= SKF_NET_OFF;
	}
	if ((size_t)off + size > avail)
		return false;
	*a_r = 0;
	for (unsigned i = 0; i < size; i++)
		*a_r = *a_r << 8 | base[off + (int32_t)i];
	return true;
}

/* Run the program; its return value (0: drop). Counts the instructions run. */
static uint32_t
run(const struct sock_filter *prog, size_t len, const struct packet *p, size_t *steps_r)
{
	uint32_t a = 0;
	size_t pc = 0, steps = 0;

	while (pc < len) {
		const struct sock_filter *in = &prog[pc++];

		steps++;
		switch (in->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			if (!load(p, in->k, 4, &a))
				return 0;
			break;
		case BPF_LD | BPF_B | BPF_ABS:
			if (!load(p, in->k, 1, &a))
				return 0;
			break;
		case BPF_ALU | BPF_RSH | BPF_K:
			a >>= in->k;
			break;
		case BPF_ALU | BPF_AND | BPF_K:
			a &= in->k;
			break;
		case BPF_JMP | BPF_JA:
			pc += in->k;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += a == in->k ? in->jt : in->jf;
			break;
		case BPF_JMP | BPF_JSET | BPF_K:
			pc += (a & in->k) != 0 ? in->jt : in->jf;
			break;
		case BPF_RET | BPF_K:
			if (steps_r != NULL)
				*steps_r = steps;
			return in->k;
		default:
			fail_msg("pc %zu: unexpected opcode 0x%x", pc - 1, in->code);
		}
	}
	fail_msg("ran off the end");
	return 0;
}

/* ---- packets and networks ---- */

#define SYN 0x02
#define ACK 0x10

/* A TCP segment from ip ("1.2.3.4" or "2001:db8::1") with these flags. */
static void
make_packet(const char *ip, uint8_t flags, int ip4_options, struct packet *p)
{
	memset(p, 0, sizeof(*p));
	p->tcp[12] = 5 << 4;
	p->tcp[13] = flags;
	if (strchr(ip, ':') != NULL) {
		p->net[0] = 6 << 4;
		p->net[6] = IPPROTO_TCP;
		p->netlen = 40;
		if (inet_pton(AF_INET6, ip, p->net + 8) != 1)
			fail_msg("bad test address %s", ip);
		inet_pton(AF_INET6, "2001:db8:ffff::25", p->net + 24);
	} else {
		p->net[0] = (uint8_t)(4 << 4 | (5 + ip4_options));
		p->net[9] = IPPROTO_TCP;
		p->netlen = 20 + 4 * (size_t)ip4_options;
		if (inet_pton(AF_INET, ip, p->net + 12) != 1)
			fail_msg("bad test address %s", ip);
		inet_pton(AF_INET, "192.0.2.25", p->net + 16);
	}
}

/* "203.0.113.0/24" or "2001:db8::/64" as the ban table holds it. */
static void
make_net(const char *text, struct guard_net *net)
{
	char buf[64];
	char *slash;
	int prefix;

	snprintf(buf, sizeof(buf), "%s", text);
	if ((slash = strchr(buf, '/')) == NULL)
		fail_msg("bad test network %s", text);
	*slash = '\0';
	prefix = atoi(slash + 1);
	memset(net, 0, sizeof(*net));
	if (strchr(buf, ':') != NULL) {
		if (inet_pton(AF_INET6, buf, net->addr) != 1)
			fail_msg("bad test network %s", text);
		net->prefix = (uint8_t)prefix;
	} else {
		net->addr[10] = net->addr[11] = 0xff;
		if (inet_pton(AF_INET, buf, net->addr + 12) != 1)
			fail_msg("bad test network %s", text);
		net->prefix = (uint8_t)(96 + prefix);
	}
}

static struct sock_filter prog[BPF_MAXINSNS];

/* ---- verdicts, case by case ---- */

struct verdict_case {
	const char *name;
	const char *nets[MAX_NETS];
	const char *src;
	uint8_t flags;
	int ip4_options;
	bool drop;
};

static const struct verdict_case verdicts[] = {
	{ .name = "no bans: a SYN passes", .src = "203.0.113.9", .flags = SYN },
	{ .name = "a banned address: its SYN is dropped", .nets = { "203.0.113.9/32" },
	  .src = "203.0.113.9", .flags = SYN, .drop = true },
	{ .name = "a banned address: SYN+ECE+CWR is still a SYN", .nets = { "203.0.113.9/32" },
	  .src = "203.0.113.9", .flags = SYN | 0xc0, .drop = true },
	{ .name = "a banned address: an ACK passes (not a new connection)",
	  .nets = { "203.0.113.9/32" }, .src = "203.0.113.9", .flags = ACK },
	{ .name = "the neighbour of a banned address passes", .nets = { "203.0.113.9/32" },
	  .src = "203.0.113.10", .flags = SYN },
	{ .name = "IPv4 options do not move the source", .nets = { "203.0.113.9/32" },
	  .src = "203.0.113.9", .flags = SYN, .ip4_options = 3, .drop = true },
	{ .name = "inside a banned /24", .nets = { "198.51.100.0/24" }, .src = "198.51.100.77",
	  .flags = SYN, .drop = true },
	{ .name = "just outside a banned /24", .nets = { "198.51.100.0/24" },
	  .src = "198.51.101.0", .flags = SYN },
	{ .name = "prefix groups of several lengths: /16 matches",
	  .nets = { "203.0.113.9/32", "198.51.100.0/24", "10.20.0.0/16", "192.0.2.128/25" },
	  .src = "10.20.255.1", .flags = SYN, .drop = true },
	{ .name = "prefix groups of several lengths: /25 matches its upper half",
	  .nets = { "203.0.113.9/32", "198.51.100.0/24", "10.20.0.0/16", "192.0.2.128/25" },
	  .src = "192.0.2.200", .flags = SYN, .drop = true },
	{ .name = "prefix groups of several lengths: /25 leaves the lower half",
	  .nets = { "203.0.113.9/32", "198.51.100.0/24", "10.20.0.0/16", "192.0.2.128/25" },
	  .src = "192.0.2.127", .flags = SYN },
	{ .name = "an IPv4 /0 drops every IPv4 SYN", .nets = { "0.0.0.0/0" }, .src = "8.8.8.8",
	  .flags = SYN, .drop = true },
	{ .name = "an IPv4 /0 leaves IPv6 alone", .nets = { "0.0.0.0/0" }, .src = "2001:db8::1",
	  .flags = SYN },
	{ .name = "inside a banned IPv6 /64", .nets = { "2001:db8:1:2::/64" },
	  .src = "2001:db8:1:2:aaaa:bbbb:cccc:dddd", .flags = SYN, .drop = true },
	{ .name = "the next IPv6 /64 passes", .nets = { "2001:db8:1:2::/64" },
	  .src = "2001:db8:1:3::1", .flags = SYN },
	{ .name = "an IPv6 /64 differing only in its first word passes",
	  .nets = { "2001:db8:1:2::/64" }, .src = "2001:db9:1:2::1", .flags = SYN },
	{ .name = "an IPv6 ACK from a banned /64 passes", .nets = { "2001:db8:1:2::/64" },
	  .src = "2001:db8:1:2::1", .flags = ACK },
	{ .name = "an IPv6 /60 (a partial word)", .nets = { "2001:db8:1:20::/60" },
	  .src = "2001:db8:1:2f::1", .flags = SYN, .drop = true },
	{ .name = "just outside an IPv6 /60", .nets = { "2001:db8:1:20::/60" },
	  .src = "2001:db8:1:30::1", .flags = SYN },
	{ .name = "an IPv6 /48", .nets = { "2001:db8:5::/48" }, .src = "2001:db8:5:ffff::1",
	  .flags = SYN, .drop = true },
	{ .name = "an IPv6 /128", .nets = { "2001:db8::7/128" }, .src = "2001:db8::7",
	  .flags = SYN, .drop = true },
	{ .name = "next to an IPv6 /128", .nets = { "2001:db8::7/128" }, .src = "2001:db8::8",
	  .flags = SYN },
	{ .name = "an IPv6 ::/0 drops every IPv6 SYN", .nets = { "::/0" }, .src = "2001:db8::8",
	  .flags = SYN, .drop = true },
	{ .name = "an IPv6 ::/0 leaves IPv4 alone", .nets = { "::/0" }, .src = "203.0.113.9",
	  .flags = SYN },
	/* the IPv4 test reads network offset 12, which in an IPv6 header is inside the source */
	{ .name = "an IPv4 ban never matches IPv6 bytes at the same offset",
	  .nets = { "203.0.113.9/32" }, .src = "2001:db8:cb00:7109::1", .flags = SYN },
	{ .name = "an IPv6 ban never matches an IPv4 packet",
	  .nets = { "2001:db8::/32" }, .src = "32.1.13.184", .flags = SYN },
	{ .name = "mixed families: the IPv4 member matches",
	  .nets = { "2001:db8:1:2::/64", "203.0.113.9/32", "2001:db8:9::/48" },
	  .src = "203.0.113.9", .flags = SYN, .drop = true },
	{ .name = "mixed families: the last IPv6 member matches",
	  .nets = { "2001:db8:1:2::/64", "203.0.113.9/32", "2001:db8:9::/48" },
	  .src = "2001:db8:9:1::1", .flags = SYN, .drop = true },
	{ .name = "mixed families: a stranger passes",
	  .nets = { "2001:db8:1:2::/64", "203.0.113.9/32", "2001:db8:9::/48" },
	  .src = "2001:db8:1:1::1", .flags = SYN },
};

static void
test_verdicts(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(verdicts); i++) {
		const struct verdict_case *c = &verdicts[i];
		struct guard_net nets[MAX_NETS];
		struct packet p;
		size_t n = 0, len;

		while (n < MAX_NETS && c->nets[n] != NULL) {
			make_net(c->nets[n], &nets[n]);
			n++;
		}
		assert_int_equal(guard_filter_compile(nets, n, prog, BPF_MAXINSNS, &len), n);
		check_prog(prog, len);
		make_packet(c->src, c->flags, c->ip4_options, &p);
		if ((run(prog, len, &p, NULL) == 0) != c->drop)
			fail_msg("case \"%s\": %s expected", c->name, c->drop ? "drop" : "accept");
	}
}

/* A packet that is neither IPv4 nor IPv6 (or too short to test) passes. */
static void
test_odd_packets(void **state)
{
	struct guard_net net;
	struct packet p;
	size_t len;

	(void)state;
	make_net("203.0.113.9/32", &net);
	assert_int_equal(guard_filter_compile(&net, 1, prog, BPF_MAXINSNS, &len), 1);
	make_packet("203.0.113.9", SYN, 0, &p);
	p.net[0] = 5 << 4 | 5;
	assert_int_not_equal(run(prog, len, &p, NULL), 0);
	/* the frame alone: no network, every packet passes */
	assert_int_equal(guard_filter_compile(NULL, 0, prog, BPF_MAXINSNS, &len), 0);
	check_prog(prog, len);
	make_packet("203.0.113.9", SYN, 0, &p);
	assert_int_not_equal(run(prog, len, &p, NULL), 0);
	/* no room even for the frame: nothing */
	assert_int_equal(guard_filter_compile(&net, 1, prog, 5, &len), 0);
	assert_int_equal(len, 0);
}

/* Anything but a SYN leaves after three instructions (accepted sockets inherit the program). */
static void
test_non_syn_is_cheap(void **state)
{
	static struct guard_net nets[1000];
	struct packet p;
	size_t len, steps = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(nets); i++) {
		char text[32];

		snprintf(text, sizeof(text), "10.0.%zu.%zu/32", i / 256, i % 256);
		make_net(text, &nets[i]);
	}
	assert_int_equal(guard_filter_compile(nets, ARRAY_SIZE(nets), prog, BPF_MAXINSNS, &len),
	    ARRAY_SIZE(nets));
	make_packet("10.0.3.231", ACK, 0, &p);
	assert_int_not_equal(run(prog, len, &p, &steps), 0);
	assert_int_equal(steps, 3);
}

/*
 * Many bans: chunk boundaries of the 8-bit jumps, the BPF_MAXINSNS bound,
 * and the networks covered are the first ones given (the newest bans).
 */
static void
test_bounds(void **state)
{
	static const size_t counts[] = { 1, 254, 255, 256, 510, 511, 3000, 5000 };
	static struct guard_net nets[5000];
	struct packet p;
	size_t len, covered;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(nets); i++) {
		char text[32];

		snprintf(text, sizeof(text), "10.%zu.%zu.%zu/32", i / 65536, i / 256 % 256, i % 256);
		make_net(text, &nets[i]);
	}
	for (size_t c = 0; c < ARRAY_SIZE(counts); c++) {
		size_t n = counts[c];

		covered = guard_filter_compile(nets, n, prog, BPF_MAXINSNS, &len);
		check_prog(prog, len);
		if (n <= 3000)
			assert_int_equal(covered, n);
		else
			assert_true(covered > 3900 && covered < n);
		for (size_t i = 0; i < n; i++) {
			char ip[32];

			snprintf(ip, sizeof(ip), "10.%zu.%zu.%zu", i / 65536, i / 256 % 256, i % 256);
			make_packet(ip, SYN, 0, &p);
			if ((run(prog, len, &p, NULL) == 0) != (i < covered))
				fail_msg("%zu bans: ban %zu (%s) %s", n, i, ip,
				    i < covered ? "not dropped" : "dropped but not covered");
		}
		make_packet("10.200.0.1", SYN, 0, &p);
		assert_int_not_equal(run(prog, len, &p, NULL), 0);
	}
	/* IPv6 /64s: five instructions each */
	for (size_t i = 0; i < 1000; i++) {
		char text[64];

		snprintf(text, sizeof(text), "2001:db8:%zx:%zx::/64", i / 7, i);
		make_net(text, &nets[i]);
	}
	covered = guard_filter_compile(nets, 1000, prog, BPF_MAXINSNS, &len);
	check_prog(prog, len);
	assert_int_equal(covered, (BPF_MAXINSNS - 11) / 5);
	for (size_t i = 0; i < 1000; i += 37) {
		char ip[64];

		snprintf(ip, sizeof(ip), "2001:db8:%zx:%zx:1::1", i / 7, i);
		make_packet(ip, SYN, 0, &p);
		assert_int_equal(run(prog, len, &p, NULL) == 0, i < covered);
	}
	/* a smaller room (the ENOMEM fallback compiles again with fewer) */
	covered = guard_filter_compile(nets, 1000, prog, 100, &len);
	assert_true(len <= 100);
	check_prog(prog, len);
	assert_int_equal(covered, (100 - 11) / 5);
}

/* ---- the real thing: the program on loopback listeners ---- */

static struct config *
test_config(bool drop_before_accept)
{
	static const char yaml[] = "intrusion_prevention:\n  ignoreip: [192.0.2.0/24]\n";
	struct config *cfg = NULL;
	char *error = NULL;

	if (config_load_string("test", yaml, strlen(yaml), &cfg, &error) != 0)
		fail_msg("config: %s", error);
	cfg->intrusion_prevention.drop_before_accept = drop_before_accept;
	cfg->intrusion_prevention.bantime = 60;
	return cfg;
}

static int
listener(struct sockaddr_in *addr_r)
{
	socklen_t len = sizeof(*addr_r);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(addr_r, 0, sizeof(*addr_r));
	addr_r->sin_family = AF_INET;
	addr_r->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)addr_r, sizeof(*addr_r)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)addr_r, &len), 0);
	return fd;
}

/* A non-blocking connect from source to addr; the socket. */
static int
connect_from(const char *source, const struct sockaddr_in *addr)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, source, &src.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == -1)
		assert_int_equal(errno, EINPROGRESS);
	return fd;
}

/* The source address of the next connection accepted within ms, or "" if none. */
static void
accept_from(int lfd, int ms, char *ip, size_t iplen)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	int fd;

	ip[0] = '\0';
	if (poll(&pfd, 1, ms) != 1)
		return;
	fd = accept(lfd, (struct sockaddr *)&peer, &len);
	assert_true(fd >= 0);
	close(fd);
	inet_ntop(AF_INET, &peer.sin_addr, ip, (socklen_t)iplen);
}

static void
ban(struct guard *g, const char *ip, time_t now)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };

	assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
	for (int i = 0; i < 5; i++)
		(void)guard_strike(g, (struct sockaddr *)&sa, GUARD_STRIKE_RELAY_DENIED, now);
	assert_true(guard_is_banned(g, (struct sockaddr *)&sa, now));
}

/*
 * The banned client connects first, the free one second: only the free one
 * reaches accept(). (Were the ban not in the kernel, the first connection
 * would be queued first, so the check cannot pass by being too quick.)
 */
static void
test_loopback_listener(void **state)
{
	struct config *cfg = test_config(true);
	struct guard *g = guard_new();
	struct guard_filter_stats fs;
	struct sockaddr_in addr;
	int lfd = listener(&addr), banned, free1, late;
	char ip[INET_ADDRSTRLEN];

	(void)state;
	assert_non_null(g);
	assert_int_equal(guard_filter_attach(g, lfd), 0);   /* before the bans start */
	assert_int_equal(guard_bans_start(g, cfg, NULL, T0), 0);
	ban(g, "127.0.0.9", T0);
	guard_filter_sync(g, T0);
	guard_filter_stats(g, &fs);
	assert_int_equal(fs.networks, 1);
	assert_int_equal(fs.bans, 1);
	assert_int_equal(fs.listeners, 1);
	assert_int_equal(fs.attached, 1);
	assert_true(fs.instructions > 0);

	banned = connect_from("127.0.0.9", &addr);
	free1 = connect_from("127.0.0.10", &addr);
	accept_from(lfd, 5000, ip, sizeof(ip));
	assert_string_equal(ip, "127.0.0.10");
	accept_from(lfd, 200, ip, sizeof(ip));
	assert_string_equal(ip, "");
	{
		/* the banned client is still waiting for a SYN-ACK */
		struct pollfd pfd = { .fd = banned, .events = POLLOUT };

		assert_int_equal(poll(&pfd, 1, 0), 0);
	}
	close(banned);
	close(free1);

	/* nothing changed: the next sync does not touch the sockets */
	guard_filter_sync(g, T0 + 1);
	/* the ban runs out: the program goes, the client gets in */
	guard_bans_expire(g, T0 + 61);
	guard_filter_sync(g, T0 + 61);
	guard_filter_stats(g, &fs);
	assert_int_equal(fs.networks, 0);
	assert_int_equal(fs.instructions, 0);
	late = connect_from("127.0.0.9", &addr);
	accept_from(lfd, 5000, ip, sizeof(ip));
	assert_string_equal(ip, "127.0.0.9");
	close(late);

	/* a listener registered later gets the current program at once */
	ban(g, "127.0.0.11", T0 + 62);
	guard_filter_sync(g, T0 + 62);
	{
		struct sockaddr_in addr2;
		int lfd2 = listener(&addr2), c;

		assert_int_equal(guard_filter_attach(g, lfd2), 0);
		guard_filter_stats(g, &fs);
		assert_int_equal(fs.listeners, 2);
		assert_int_equal(fs.attached, 2);
		c = connect_from("127.0.0.11", &addr2);
		accept_from(lfd2, 300, ip, sizeof(ip));
		assert_string_equal(ip, "");
		close(c);
		guard_filter_detach(g, lfd2);
		close(lfd2);
	}
	guard_filter_stats(g, &fs);
	assert_int_equal(fs.listeners, 1);
	guard_filter_detach(g, lfd);
	close(lfd);
	guard_free(&g);
	config_free(&cfg);
}

/* drop_before_accept: false: no program; the ban is left to accept. */
static void
test_loopback_disabled(void **state)
{
	struct config *cfg = test_config(false);
	struct guard *g = guard_new();
	struct guard_filter_stats fs;
	struct sockaddr_in addr;
	int lfd = listener(&addr), c;
	char ip[INET_ADDRSTRLEN];

	(void)state;
	assert_int_equal(guard_bans_start(g, cfg, NULL, T0), 0);
	assert_int_equal(guard_filter_attach(g, lfd), 0);
	ban(g, "127.0.0.9", T0);
	guard_filter_sync(g, T0);
	guard_filter_stats(g, &fs);
	assert_int_equal(fs.networks, 0);
	assert_int_equal(fs.attached, 0);
	assert_int_equal(fs.listeners, 1);
	c = connect_from("127.0.0.9", &addr);
	accept_from(lfd, 5000, ip, sizeof(ip));
	assert_string_equal(ip, "127.0.0.9");
	close(c);
	guard_filter_detach(g, lfd);
	close(lfd);
	guard_free(&g);
	config_free(&cfg);
}

/* The largest program the compiler makes is one the kernel takes. */
static void
test_kernel_takes_the_largest(void **state)
{
	static struct guard_net nets[6000];
	struct sockaddr_in addr;
	int lfd = listener(&addr), c;
	size_t len, covered;
	char ip[INET_ADDRSTRLEN];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(nets); i++) {
		char text[48];

		if (i % 3 == 0)
			snprintf(text, sizeof(text), "2001:db8:%zx::/48", i);
		else
			snprintf(text, sizeof(text), "10.%zu.%zu.0/%d", i / 256 % 256, i % 256,
			    i % 3 == 1 ? 32 : 24);
		make_net(text, &nets[i]);
	}
	make_net("127.0.0.9/32", &nets[0]);   /* the newest ban */
	covered = guard_filter_compile(nets, ARRAY_SIZE(nets), prog, BPF_MAXINSNS, &len);
	assert_true(covered < ARRAY_SIZE(nets));
	assert_true(len > BPF_MAXINSNS - 12 && len <= BPF_MAXINSNS);
	check_prog(prog, len);
	{
		struct sock_fprog fp = { .len = (unsigned short)len, .filter = prog };

		assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)), 0);
	}
	c = connect_from("127.0.0.9", &addr);
	accept_from(lfd, 300, ip, sizeof(ip));
	assert_string_equal(ip, "");
	close(c);
	c = connect_from("127.0.0.10", &addr);
	accept_from(lfd, 5000, ip, sizeof(ip));
	assert_string_equal(ip, "127.0.0.10");
	close(c);
	close(lfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_odd_packets),
		cmocka_unit_test(test_non_syn_is_cheap),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_loopback_listener),
		cmocka_unit_test(test_loopback_disabled),
		cmocka_unit_test(test_kernel_takes_the_largest),
	};

	log_init("test_guard_filter", LOG_LEVEL_WARNING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
