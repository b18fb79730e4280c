/*
 * test_dns.c: src/dns. The answer walker runs on packets built from tables
 * (and every truncation of each, under ASan); host names from a table; then
 * the resolver itself against tests/integration/sink.py's DNS server
 * (python3-dnslib on loopback): MX order and shuffling, null MX, implicit
 * MX, NXDOMAIN, NODATA, SERVFAIL, CNAME chains and loops, A/AAAA, TXT,
 * cancellation and freeing with requests in flight. Skipped without dnslib.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "dns/dns.h"
#include "sink_spawn.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- packets from tables ---- */

struct pkt {
	unsigned char b[8192];
	size_t n;
};

static void
put8(struct pkt *p, unsigned v)
{
	assert_true(p->n < sizeof(p->b));
	p->b[p->n++] = (unsigned char)v;
}

static void
put16(struct pkt *p, unsigned v)
{
	put8(p, v >> 8);
	put8(p, v & 0xff);
}

static void
put_name(struct pkt *p, const char *name)
{
	while (*name != '\0') {
		size_t l = strcspn(name, ".");

		put8(p, (unsigned)l);
		for (size_t i = 0; i < l; i++)
			put8(p, (unsigned char)name[i]);
		name += l;
		if (*name == '.')
			name++;
	}
	put8(p, 0);
}

struct rr_spec {
	const char *owner;     /* NULL: a compression pointer to the question name */
	enum dns_type type;
	const char *data;      /* A/AAAA text, CNAME target, MX "PREF host", TXT text */
	unsigned class;        /* 0: IN */
	int rdlen_extra;       /* lie about the rdata length */
};

struct walk_case {
	const char *name;
	const char *qname;
	enum dns_type qtype;
	struct rr_spec rrs[8];
	unsigned repeat;       /* add rrs[0] this many times instead */
	bool query;            /* QR=0 */
	const unsigned char *raw;   /* a hand-made packet instead */
	size_t rawlen;
	int ret;
	size_t nrecords;
	int ncname;
	const char *final;
	const char *error;     /* a substring of *error_r */
	bool no_truncations;   /* cuts past the records looked at are fine */
};

static void
put_rr(struct pkt *p, const struct rr_spec *rr)
{
	size_t lenpos;

	if (rr->owner == NULL) {
		put8(p, 0xc0);
		put8(p, 12);
	} else {
		put_name(p, rr->owner);
	}
	put16(p, rr->type);
	put16(p, rr->class != 0 ? rr->class : 1);
	put16(p, 0);
	put16(p, 60);
	lenpos = p->n;
	put16(p, 0);
	switch (rr->type) {
	case DNS_TYPE_A: {
		unsigned char a[4];

		assert_int_equal(inet_pton(AF_INET, rr->data, a), 1);
		for (int i = 0; i < 4; i++)
			put8(p, a[i]);
		break;
	}
	case DNS_TYPE_AAAA: {
		unsigned char a[16];

		assert_int_equal(inet_pton(AF_INET6, rr->data, a), 1);
		for (int i = 0; i < 16; i++)
			put8(p, a[i]);
		break;
	}
	case DNS_TYPE_CNAME:
		put_name(p, rr->data);
		break;
	case DNS_TYPE_MX: {
		char *end;

		put16(p, (unsigned)strtoul(rr->data, &end, 10));
		put_name(p, end + 1);
		break;
	}
	case DNS_TYPE_TXT:
		put8(p, (unsigned)strlen(rr->data));
		for (const char *c = rr->data; *c != '\0'; c++)
			put8(p, (unsigned char)*c);
		break;
	}
	{
		size_t rdlen = p->n - lenpos - 2 + (size_t)rr->rdlen_extra;

		p->b[lenpos] = (unsigned char)(rdlen >> 8);
		p->b[lenpos + 1] = (unsigned char)rdlen;
	}
}

static void
build(const struct walk_case *c, struct pkt *p)
{
	size_t nrr = 0;

	memset(p, 0, sizeof(*p));
	while (nrr < ARRAY_SIZE(c->rrs) && c->rrs[nrr].type != 0)
		nrr++;
	put16(p, 0x1234);
	put16(p, c->query ? 0x0100 : 0x8180);
	put16(p, 1);
	put16(p, c->repeat ? c->repeat : (unsigned)nrr);
	put16(p, 0);
	put16(p, 0);
	put_name(p, c->qname);
	put16(p, c->qtype);
	put16(p, 1);
	if (c->repeat)
		for (unsigned i = 0; i < c->repeat; i++)
			put_rr(p, &c->rrs[0]);
	else
		for (size_t i = 0; i < nrr; i++)
			put_rr(p, &c->rrs[i]);
}

/* A name that points at itself (offset 12): c-ares must refuse it. */
static const unsigned char loop_pkt[] = {
	0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
	0xc0, 12, 0, 1, 0, 1,
	0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1,
};

static const struct walk_case walk_cases[] = {
	{ .name = "two MX", .qname = "mx.test", .qtype = DNS_TYPE_MX,
	  .rrs = { { .owner = "mx.test", .type = DNS_TYPE_MX, .data = "10 a.mx.test" }, { .owner = "mx.test", .type = DNS_TYPE_MX, .data = "20 b.mx.test" } },
	  .nrecords = 2, .final = "mx.test" },
	{ .name = "owner case and trailing dot ignored", .qname = "Mx.Test.", .qtype = DNS_TYPE_MX,
	  .rrs = { { .owner = "MX.TEST", .type = DNS_TYPE_MX, .data = "10 a.mx.test" } }, .nrecords = 1 },
	{ .name = "compressed owner", .qname = "mx.test", .qtype = DNS_TYPE_A,
	  .rrs = { { .owner = NULL, .type = DNS_TYPE_A, .data = "127.0.0.1" } }, .nrecords = 1 },
	{ .name = "CNAME chain followed", .qname = "a.test", .qtype = DNS_TYPE_A,
	  .rrs = { { .owner = "a.test", .type = DNS_TYPE_CNAME, .data = "b.test" }, { .owner = "b.test", .type = DNS_TYPE_CNAME, .data = "c.test" },
	      { .owner = "c.test", .type = DNS_TYPE_A, .data = "127.0.0.2" }, { .owner = "a.test", .type = DNS_TYPE_TXT, .data = "other type" } },
	  .nrecords = 1, .ncname = 2, .final = "c.test" },
	{ .name = "CNAME without target data", .qname = "a.test", .qtype = DNS_TYPE_A,
	  .rrs = { { .owner = "a.test", .type = DNS_TYPE_CNAME, .data = "b.test" } }, .nrecords = 0, .ncname = 1,
	  .final = "b.test" },
	{ .name = "CNAME loop", .qname = "a.test", .qtype = DNS_TYPE_A,
	  .rrs = { { .owner = "a.test", .type = DNS_TYPE_CNAME, .data = "b.test" }, { .owner = "b.test", .type = DNS_TYPE_CNAME, .data = "a.test" } },
	  .ret = -1, .error = "CNAME" },
	{ .name = "records of other owners ignored", .qname = "a.test", .qtype = DNS_TYPE_A,
	  .rrs = { { .owner = "evil.test", .type = DNS_TYPE_A, .data = "10.0.0.1" }, { .owner = "a.test", .type = DNS_TYPE_A, .data = "127.0.0.1" } },
	  .nrecords = 1 },
	{ .name = "other class ignored", .qname = "a.test", .qtype = DNS_TYPE_A,
	  .rrs = { { .owner = "a.test", .type = DNS_TYPE_A, .data = "127.0.0.1", .class = 3 } }, .nrecords = 0 },
	{ .name = "rdata past the end", .qname = "a.test", .qtype = DNS_TYPE_A,
	  .rrs = { { .owner = "a.test", .type = DNS_TYPE_A, .data = "127.0.0.1", .rdlen_extra = 10 } },
	  .ret = -1, .error = "truncated" },
	{ .name = "not a response", .qname = "a.test", .qtype = DNS_TYPE_A, .query = true,
	  .ret = -1, .error = "not a response" },
	{ .name = "answer records are bounded", .qname = "a.test", .qtype = DNS_TYPE_A,
	  .rrs = { { .owner = "a.test", .type = DNS_TYPE_A, .data = "127.0.0.1" } }, .repeat = 150,
	  .nrecords = DNS_ANSWER_RR_MAX, .no_truncations = true },
	{ .name = "compression loop", .qname = "a.test", .qtype = DNS_TYPE_A,
	  .raw = loop_pkt, .rawlen = sizeof(loop_pkt), .ret = -1 },
};

static int
count_rr(void *ctx, const unsigned char *msg, size_t msglen,
    const unsigned char *rdata, size_t rdlen)
{
	size_t *n = ctx;

	assert_true(rdata >= msg && rdata + rdlen <= msg + msglen);
	(*n)++;
	return 0;
}

static void
test_answer_walk(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(walk_cases); i++) {
		const struct walk_case *c = &walk_cases[i];
		struct dns_answer_info info;
		const char *error = NULL;
		struct pkt p;
		unsigned char *heap;
		size_t len, seen = 0;
		int ret;

		if (c->raw != NULL) {
			memcpy(p.b, c->raw, c->rawlen);
			p.n = c->rawlen;
		} else {
			build(c, &p);
		}
		len = p.n;
		/* exact-size heap copies: ASan sees any read past the end */
		heap = malloc(len);
		assert_non_null(heap);
		memcpy(heap, p.b, len);
		ret = dns_answer_walk(heap, len, c->qname, c->qtype, count_rr, &seen, &info, &error);
		if (ret != c->ret)
			fail_msg("%s: ret %d (%s)", c->name, ret, ret == -1 ? error : "");
		if (c->ret == 0) {
			if (info.nrecords != c->nrecords || seen != c->nrecords)
				fail_msg("%s: %zu records, expected %zu", c->name, info.nrecords, c->nrecords);
			assert_int_equal(info.ncname, c->ncname);
			if (c->final != NULL)
				assert_string_equal(info.name, c->final);
		} else if (c->error != NULL && strstr(error, c->error) == NULL) {
			fail_msg("%s: error '%s', expected '%s'", c->name, error, c->error);
		}
		free(heap);
		/* Every truncation is refused, and read within its bounds. */
		for (size_t cut = 0; cut < len && !c->no_truncations; cut++) {
			heap = malloc(cut > 0 ? cut : 1);
			assert_non_null(heap);
			memcpy(heap, p.b, cut);
			seen = 0;
			if (dns_answer_walk(heap, cut, c->qname, c->qtype, count_rr, &seen, &info,
			    &error) != -1)
				fail_msg("%s: truncated to %zu accepted", c->name, cut);
			free(heap);
		}
	}
}

static void
test_hostname_valid(void **state)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
#define OK(n) { .name = (n), .ok = true }
#define BAD(n) { .name = (n), .ok = false }
		OK("example.test"), OK("a"), OK("mx-1.example.test"),
		OK("sel._domainkey.example.test"), OK("1.2.3.4"),
		BAD(""), BAD("."), BAD("a..b"), BAD("a."), BAD("-a.test"), BAD("a-.test"),
		BAD("a b.test"), BAD("bad!name.test"), BAD("a\\.b"),
		OK("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test"),    /* 63 */
		BAD("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test"),  /* 64 */
#undef OK
#undef BAD
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (dns_hostname_valid(cases[i].name) != cases[i].ok)
			fail_msg("'%s': expected %s", cases[i].name, cases[i].ok ? "valid" : "invalid");
}

/* ---- the resolver against sink.py ---- */

static struct sink sink;
static bool have_sink;
static struct event_base *base;
static struct config *cfg;

static int
setup_live(void **state)
{
	char yaml[256], *error = NULL;

	if (!sink_available())
		return 0;
	if (sink_start(&sink) == -1)
		return -1;
	have_sink = true;
	snprintf(yaml, sizeof(yaml), "outbound:\n  dns_servers: [\"127.0.0.1:%d\"]\n",
	    sink_port(&sink, "dns"));
	if (config_load_string("test", yaml, strlen(yaml), &cfg, &error) == -1) {
		fprintf(stderr, "config: %s\n", error);
		free(error);
		return -1;
	}
	base = event_base_new();
	return base != NULL ? 0 : -1;
}

static int
teardown_live(void **state)
{
	if (have_sink)
		sink_stop(&sink);
	config_free(&cfg);
	if (base != NULL)
		event_base_free(base);
	return 0;
}

struct result {
	bool called;
	int ncalls;
	enum dns_status status;
	size_t n;
	char names[DNS_MX_MAX][DNS_NAME_MAX + 1];
	unsigned prefs[DNS_MX_MAX];
	bool implicit;
	char addrs[2 * DNS_ADDR_MAX][64];
	char txt[DNS_TXT_MAX][256];
};

static void
mx_cb(void *arg, enum dns_status status, const struct dns_mx *hosts, size_t n)
{
	struct result *r = arg;

	r->called = true;
	r->ncalls++;
	r->status = status;
	r->n = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(r->names[i], sizeof(r->names[i]), "%s", hosts[i].name);
		r->prefs[i] = hosts[i].preference;
		r->implicit |= hosts[i].implicit;
	}
}

static void
addr_cb(void *arg, enum dns_status status, const struct sockaddr_storage *addrs, size_t n)
{
	struct result *r = arg;

	r->called = true;
	r->ncalls++;
	r->status = status;
	r->n = n;
	for (size_t i = 0; i < n; i++) {
		const void *a = addrs[i].ss_family == AF_INET ?
		    (const void *)&((const struct sockaddr_in *)&addrs[i])->sin_addr :
		    (const void *)&((const struct sockaddr_in6 *)&addrs[i])->sin6_addr;

		inet_ntop(addrs[i].ss_family, a, r->addrs[i], sizeof(r->addrs[i]));
	}
}

static void
txt_cb(void *arg, enum dns_status status, const char *const *txts, size_t n)
{
	struct result *r = arg;

	r->called = true;
	r->ncalls++;
	r->status = status;
	r->n = n;
	for (size_t i = 0; i < n; i++)
		snprintf(r->txt[i], sizeof(r->txt[i]), "%s", txts[i]);
}

static void
loop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	fail_msg("DNS test: no answer within 20 s");
}

/* Run the loop until *flag (20 s at most). */
static void
run_until(const bool *flag)
{
	struct event *t = evtimer_new(base, loop_timeout_cb, NULL);
	struct timeval tv = { .tv_sec = 20 };

	evtimer_add(t, &tv);
	while (!*flag)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
}

struct mx_case {
	const char *domain;
	enum dns_status status;
	const char *hosts[4];
	bool implicit;
};

static const struct mx_case mx_cases[] = {
	{ .domain = "mx.test", .status = DNS_OK, .hosts = { "mx1.mx.test", "mx2.mx.test" } },
	{ .domain = "MX.Test.", .status = DNS_OK, .hosts = { "mx1.mx.test", "mx2.mx.test" } },
	{ .domain = "nullmx.test", .status = DNS_NULL_MX },
	{ .domain = "nullmix.test", .status = DNS_OK, .hosts = { "mx1.mx.test" } },     /* "." among others: ignored */
	{ .domain = "implicit.test", .status = DNS_OK, .hosts = { "implicit.test" }, .implicit = true },
	{ .domain = "v6only.test", .status = DNS_OK, .hosts = { "v6only.test" }, .implicit = true },
	{ .domain = "nope.test", .status = DNS_NXDOMAIN },
	{ .domain = "nodata.test", .status = DNS_NODATA },                      /* no MX, no address */
	{ .domain = "servfail.test", .status = DNS_TEMPFAIL },
	{ .domain = "badmx.test", .status = DNS_TEMPFAIL },                     /* only an unusable exchange */
	{ .domain = "cname.test", .status = DNS_OK, .hosts = { "mx1.mx.test" } },        /* MX behind a CNAME chain */
	{ .domain = "loop.test", .status = DNS_TEMPFAIL },                      /* CNAME loop */
};

static void
test_live_mx(void **state)
{
	struct dns *dns;
	char *error = NULL;

	if (!have_sink)
		skip();
	dns = dns_new(base, cfg, &error);
	assert_non_null(dns);
	for (size_t i = 0; i < ARRAY_SIZE(mx_cases); i++) {
		const struct mx_case *c = &mx_cases[i];
		struct result r = { 0 };
		size_t n = 0;

		assert_non_null(dns_resolve_mx(dns, c->domain, mx_cb, &r));
		assert_false(r.called);   /* never from inside the call */
		run_until(&r.called);
		while (n < 4 && c->hosts[n] != NULL)
			n++;
		if (r.status != c->status)
			fail_msg("%s: %s, expected %s", c->domain, dns_status_name(r.status),
			    dns_status_name(c->status));
		assert_int_equal(r.n, n);
		for (size_t k = 0; k < n; k++)
			assert_string_equal(r.names[k], c->hosts[k]);
		assert_int_equal(r.implicit, c->implicit);
	}
	assert_int_equal(dns_pending(dns), 0);
	dns_free(&dns);
	assert_null(dns);
}

/* Preference order; equal preferences shuffled; bad names and repeats gone. */
static void
test_live_mx_order(void **state)
{
	struct dns *dns;
	char *error = NULL;
	int a_first = 0, b_first = 0;

	if (!have_sink)
		skip();
	dns = dns_new(base, cfg, &error);
	assert_non_null(dns);
	for (int i = 0; i < 40; i++) {
		struct result r = { 0 };

		assert_non_null(dns_resolve_mx(dns, "pref.test", mx_cb, &r));
		run_until(&r.called);
		assert_int_equal(r.status, DNS_OK);
		assert_int_equal(r.n, 4);
		assert_string_equal(r.names[0], "c.pref.test");
		assert_int_equal(r.prefs[0], 5);
		assert_int_equal(r.prefs[1], 10);
		assert_int_equal(r.prefs[2], 10);
		assert_string_equal(r.names[3], "d.pref.test");
		if (strcmp(r.names[1], "a.pref.test") == 0) {
			assert_string_equal(r.names[2], "b.pref.test");
			a_first++;
		} else {
			assert_string_equal(r.names[1], "b.pref.test");
			assert_string_equal(r.names[2], "a.pref.test");
			b_first++;
		}
	}
	assert_true(a_first > 0 && b_first > 0);
	dns_free(&dns);
}

static void
test_live_addrs(void **state)
{
	static const struct {
		const char *host;
		enum dns_status status;
		const char *addrs[4];
	} cases[] = {
		{ .host = "dual.test", .status = DNS_OK, .addrs = { "127.0.0.2", "127.0.0.3", "::1" } },
		{ .host = "mx1.mx.test", .status = DNS_OK, .addrs = { "127.0.0.1" } },
		{ .host = "v6only.test", .status = DNS_OK, .addrs = { "::1" } },
		{ .host = "cname.test", .status = DNS_OK, .addrs = { "127.0.0.4" } },
		{ .host = "nope.test", .status = DNS_NXDOMAIN },
		{ .host = "nodata.test", .status = DNS_NODATA },
		{ .host = "servfail.test", .status = DNS_TEMPFAIL },
		{ .host = "loop.test", .status = DNS_TEMPFAIL },
	};
	struct dns *dns;
	char *error = NULL;

	if (!have_sink)
		skip();
	dns = dns_new(base, cfg, &error);
	assert_non_null(dns);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct result r = { 0 };
		size_t n = 0;

		assert_non_null(dns_resolve_addrs(dns, cases[i].host, addr_cb, &r));
		run_until(&r.called);
		if (r.status != cases[i].status)
			fail_msg("%s: %s", cases[i].host, dns_status_name(r.status));
		while (n < 4 && cases[i].addrs[n] != NULL)
			n++;
		assert_int_equal(r.n, n);
		for (size_t k = 0; k < n; k++)
			assert_string_equal(r.addrs[k], cases[i].addrs[k]);
	}
	dns_free(&dns);
}

static void
test_live_txt(void **state)
{
	struct dns *dns;
	char *error = NULL;
	struct result r = { 0 }, r2 = { 0 }, r3 = { 0 };

	if (!have_sink)
		skip();
	dns = dns_new(base, cfg, &error);
	assert_non_null(dns);
	assert_non_null(dns_resolve_txt(dns, "sel._domainkey.txt.test", txt_cb, &r));
	assert_non_null(dns_resolve_txt(dns, "implicit.test", txt_cb, &r2));
	assert_non_null(dns_resolve_txt(dns, "nope.test", txt_cb, &r3));
	run_until(&r.called);
	run_until(&r2.called);
	run_until(&r3.called);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 2);   /* the record holding a NUL is skipped */
	assert_string_equal(r.txt[0],
	    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	assert_string_equal(r.txt[1], "second record");
	assert_int_equal(r2.status, DNS_NODATA);
	assert_int_equal(r3.status, DNS_NXDOMAIN);
	dns_free(&dns);
}

/* A cancelled requester is never called; dns_free drops the rest silently. */
static void
test_live_cancel_and_free(void **state)
{
	struct dns *dns;
	char *error = NULL;
	struct result cancelled = { 0 }, later = { 0 }, dropped = { 0 }, dropped2 = { 0 };
	struct dns_req *req;

	if (!have_sink)
		skip();
	dns = dns_new(base, cfg, &error);
	assert_non_null(dns);
	/* a bad name: refused at once, no callback */
	assert_null(dns_resolve_mx(dns, "bad name.test", mx_cb, &cancelled));
	assert_null(dns_resolve_mx(dns, "", mx_cb, &cancelled));

	req = dns_resolve_mx(dns, "mx.test", mx_cb, &cancelled);
	assert_non_null(req);
	assert_int_equal(dns_pending(dns), 1);
	dns_cancel(&req);
	assert_null(req);
	assert_int_equal(dns_pending(dns), 0);

	/* Cancel at every stage: after k loop turns (query out, answer in,
	 * implicit-MX queries out, callback queued), if not yet called. */
	for (int k = 0; k < 12; k++) {
		struct result r = { 0 };

		req = dns_resolve_mx(dns, k % 2 ? "implicit.test" : "nope.test", mx_cb, &r);
		assert_non_null(req);
		for (int turn = 0; turn < k && !r.called; turn++)
			event_base_loop(base, EVLOOP_ONCE);
		if (!r.called) {
			dns_cancel(&req);
			later.called = false;
			assert_non_null(dns_resolve_mx(dns, "mx.test", mx_cb, &later));
			run_until(&later.called);
			for (int i = 0; i < 5; i++)
				event_base_loop(base, EVLOOP_NONBLOCK);
			assert_false(r.called);
		}
		assert_int_equal(dns_pending(dns), 0);
	}

	assert_non_null(dns_resolve_mx(dns, "mx.test", mx_cb, &dropped));
	assert_non_null(dns_resolve_txt(dns, "sel._domainkey.txt.test", txt_cb, &dropped2));
	dns_free(&dns);
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	assert_false(dropped.called);
	assert_false(dropped2.called);
}

/* A callback may start another lookup and free the resolver. */
struct chain {
	struct dns *dns;
	struct result second;
	bool done;
};

static void
chain_second_cb(void *arg, enum dns_status status, const struct sockaddr_storage *addrs, size_t n)
{
	struct chain *ch = arg;

	ch->second.status = status;
	ch->second.n = n;
	dns_free(&ch->dns);
	ch->done = true;
}

static void
chain_first_cb(void *arg, enum dns_status status, const struct dns_mx *hosts, size_t n)
{
	struct chain *ch = arg;

	assert_int_equal(status, DNS_OK);
	assert_non_null(dns_resolve_addrs(ch->dns, hosts[0].name, chain_second_cb, ch));
}

static void
test_live_chain(void **state)
{
	struct chain ch = { 0 };
	char *error = NULL;

	if (!have_sink)
		skip();
	ch.dns = dns_new(base, cfg, &error);
	assert_non_null(ch.dns);
	assert_non_null(dns_resolve_mx(ch.dns, "mx.test", chain_first_cb, &ch));
	run_until(&ch.done);
	assert_int_equal(ch.second.status, DNS_OK);
	assert_int_equal(ch.second.n, 1);
	assert_null(ch.dns);
}

static void
test_bad_servers(void **state)
{
	struct config *bad = NULL;
	char *error = NULL;
	struct event_base *b = event_base_new();
	struct dns *dns;

	/* no config: /etc/resolv.conf; starting must work even if it is useless */
	dns = dns_new(b, NULL, &error);
	assert_non_null(dns);
	dns_free(&dns);
	assert_int_equal(config_load_string("t", "outbound:\n  dns_servers: [\"[::1]:5353\", \"127.0.0.1:53\"]\n",
	    strlen("outbound:\n  dns_servers: [\"[::1]:5353\", \"127.0.0.1:53\"]\n"), &bad, &error), 0);
	dns = dns_new(b, bad, &error);
	assert_non_null(dns);
	dns_free(&dns);
	config_free(&bad);
	event_base_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer_walk),
		cmocka_unit_test(test_hostname_valid),
		cmocka_unit_test(test_bad_servers),
		cmocka_unit_test(test_live_mx),
		cmocka_unit_test(test_live_mx_order),
		cmocka_unit_test(test_live_addrs),
		cmocka_unit_test(test_live_txt),
		cmocka_unit_test(test_live_cancel_and_free),
		cmocka_unit_test(test_live_chain),
	};

	log_init("test_dns", LOG_LEVEL_WARNING);
	return cmocka_run_group_tests(tests, setup_live, teardown_live);
}
