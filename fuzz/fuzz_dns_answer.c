/*
 * fuzz_dns_answer.c: libFuzzer target for src/dns/dns_answer.c: the DNS
 * reply walker (dns_answer_walk) and dns_hostname_valid. The input is what
 * a DNS server (or anyone spoofing one) could answer:
 *
 *   [0]   bits 0-2: the type asked (A, AAAA, MX, TXT, CNAME, then again);
 *         bit 3: ask a fixed name (bits 4-5 pick it) instead of the name in
 *         the packet's question
 *   rest  the reply, in an exact-size copy so a read past it is caught
 *
 * The record decoders of dns.c (dns_rr_mx, dns_rr_addr, dns_rr_txt) are
 * static there; the callback below does what they do to rdata, so the
 * walker sees a callback that both reads the packet and fails. Beyond the
 * sanitizers it checks: every rdata handed out lies inside the packet; the
 * record count is the number of calls; the CNAME count, final name and
 * RCODE are well formed; and a walk without a callback agrees with one
 * with it.
 */
#include <ares.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static const enum dns_type types[] = {
	DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_MX, DNS_TYPE_TXT, DNS_TYPE_CNAME,
	DNS_TYPE_MX, DNS_TYPE_TXT, DNS_TYPE_A,
};

static const char *const fixed_names[] = {
	"example.org", "mx1.example.org", "Example.ORG",
	"sel._domainkey.example.org",
};

struct walk_ctx {
	const unsigned char *msg;
	size_t len;
	enum dns_type qtype;
	size_t calls;
	size_t fails;
	bool fail_seen;
};

/* What dns.c's dns_rr_mx does with the exchange: -1 when it is not a name. */
static int
check_mx(const unsigned char *msg, size_t msglen, const unsigned char *rdata, size_t rdlen)
{
	char *name = NULL;
	long enclen = 0;
	size_t len;

	if (rdlen < 3 || ares_expand_name(rdata + 2, msg, (int)msglen, &name, &enclen) != ARES_SUCCESS)
		return -1;
	CHECK(enclen > 0);
	if ((size_t)enclen > rdlen - 2) {
		ares_free_string(name);
		return -1;
	}
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		name[--len] = '\0';
	if (len > 0 && dns_hostname_valid(name))
		CHECK(len <= 253);
	ares_free_string(name);
	return 0;
}

/* What dns_rr_txt does: character-strings joined, -1 when one overruns. */
static int
check_txt(const unsigned char *rdata, size_t rdlen)
{
	size_t off = 0, out = 0;
	char *s = malloc(rdlen + 1);

	if (s == NULL)
		return -1;
	while (off < rdlen) {
		size_t n = rdata[off++];

		if (n > rdlen - off) {
			free(s);
			return -1;
		}
		memcpy(s + out, rdata + off, n);
		out += n;
		off += n;
	}
	s[out] = '\0';
	CHECK(out <= rdlen);
	free(s);
	return 0;
}

static int
walk_fn(void *arg, const unsigned char *msg, size_t msglen,
    const unsigned char *rdata, size_t rdlen)
{
	struct walk_ctx *c = arg;
	int ret = 0;

	CHECK(!c->fail_seen);   /* the walk stops at the first -1 */
	CHECK(msg == c->msg && msglen == c->len);
	CHECK(rdata >= msg && rdata <= msg + msglen);
	CHECK(rdlen <= (size_t)(msg + msglen - rdata));
	CHECK(rdlen <= 65535);
	c->calls++;
	switch (c->qtype) {
	case DNS_TYPE_A:
		ret = rdlen == 4 ? 0 : -1;
		break;
	case DNS_TYPE_AAAA:
		ret = rdlen == 16 ? 0 : -1;
		break;
	case DNS_TYPE_MX:
		ret = check_mx(msg, msglen, rdata, rdlen);
		break;
	case DNS_TYPE_TXT:
		ret = check_txt(rdata, rdlen);
		break;
	case DNS_TYPE_CNAME:
		break;
	}
	if (ret == -1) {
		c->fails++;
		c->fail_seen = true;
	}
	return ret;
}

/* The first question's name, if it is one dns_resolve_* would ask for. */
static bool
question_name(const unsigned char *msg, size_t len, char *name_r, size_t namelen)
{
	char *name = NULL;
	long enclen = 0;
	size_t n;

	if (len < 13 || (msg[4] == 0 && msg[5] == 0))
		return false;
	if (ares_expand_name(msg + 12, msg, (int)len, &name, &enclen) != ARES_SUCCESS)
		return false;
	n = strlen(name);
	if (n >= namelen || !dns_hostname_valid(name)) {
		ares_free_string(name);
		return false;
	}
	memcpy(name_r, name, n + 1);
	ares_free_string(name);
	return true;
}

static void
check_hostname(const char *s)
{
	size_t n = strlen(s);

	if (!dns_hostname_valid(s))
		return;
	CHECK(n >= 1 && n <= 253);
	CHECK(s[0] != '.' && s[n - 1] != '.' && s[0] != '-' && s[n - 1] != '-');
	CHECK(strstr(s, "..") == NULL);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		CHECK((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.');
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_answer_info info, info2;
	struct walk_ctx c;
	const char *error = NULL, *error2 = NULL;
	char qname[DNS_NAME_MAX + 1];
	unsigned char *msg;
	enum dns_type qtype;
	size_t len;
	int ret, ret2;

	if (size < 1)
		return 0;
	qtype = types[data[0] & 7];
	len = size - 1;
	msg = malloc(len > 0 ? len : 1);
	if (msg == NULL)
		return 0;
	memcpy(msg, data + 1, len);

	if ((data[0] & 8) || !question_name(msg, len, qname, sizeof(qname)))
		snprintf(qname, sizeof(qname), "%s", fixed_names[(data[0] >> 4) & 3]);

	memset(&c, 0, sizeof(c));
	c.msg = msg;
	c.len = len;
	c.qtype = qtype;
	ret = dns_answer_walk(msg, len, qname, qtype, walk_fn, &c, &info, &error);
	CHECK(ret == 0 || ret == -1);
	CHECK(strlen(info.name) <= DNS_NAME_MAX);
	CHECK(info.ncname >= 0 && info.ncname <= DNS_CNAME_MAX);
	CHECK(info.rcode >= 0 && info.rcode <= 15);
	CHECK(info.nrecords <= DNS_ANSWER_RR_MAX);
	if (qtype == DNS_TYPE_CNAME)
		CHECK(info.ncname == 0);
	if (len >= 12 && (msg[2] & 0x80))
		CHECK(info.rcode == (msg[3] & 0x0f));
	if (ret == 0) {
		CHECK(error == NULL || error[0] != '\0');
		CHECK(c.fails == 0);
		CHECK(info.nrecords == c.calls);
		if (info.ncname == 0)
			CHECK(strcmp(info.name, qname) == 0);
	} else {
		CHECK(error != NULL && error[0] != '\0');
		CHECK(c.fails <= 1);
		/* the callbacks come last: a bad packet fails before any */
		if (c.fails == 1)
			CHECK(info.nrecords + 1 == c.calls && strcmp(error, "bad record data") == 0);
		else
			CHECK(c.calls == 0 && strcmp(error, "bad record data") != 0);
	}

	/* Without a callback: the same walk, failing only where the packet does. */
	ret2 = dns_answer_walk(msg, len, qname, qtype, NULL, NULL, &info2, &error2);
	if (ret == 0 || c.fails == 1) {
		CHECK(ret2 == 0);
		CHECK(info2.rcode == info.rcode && info2.ncname == info.ncname);
		CHECK(strcmp(info2.name, info.name) == 0);
		if (ret == 0)
			CHECK(info2.nrecords == info.nrecords);
		else
			CHECK(info2.nrecords >= info.nrecords + 1);
	} else {
		CHECK(ret2 == -1 && strcmp(error, error2) == 0);
	}

	/* The packet bytes as a name to ask for. */
	{
		char name[300];
		size_t n = len < sizeof(name) - 1 ? len : sizeof(name) - 1;

		memcpy(name, msg, n);
		name[n] = '\0';
		check_hostname(name);
		check_hostname(qname);
	}
	free(msg);
	return 0;
}
