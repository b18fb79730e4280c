/*
 * cidr.c: IPv4/IPv6 networks, addresses and listen syntax. Pure functions,
 * no allocation; every input is untrusted text from a config file or a peer.
 * Standards: RFC 4291 (IPv6 addressing, 2.5.5.2 IPv4-mapped), RFC 4632 (CIDR).
 */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" and a little slack. */
#define CIDR_ADDR_MAX 64

/* ::ffff:0:0/96, the IPv4-mapped prefix (RFC 4291 2.5.5.2). */
static const uint8_t v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
};

/* A network or an address brought to one comparable form. */
struct cidr_norm {
	int family;
	uint8_t addr[16];
	unsigned prefix;
};

static bool
is_v4mapped(const uint8_t addr[16])
{
	return memcmp(addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0;
}

/*
 * An IPv6 network inside ::ffff:0:0/96 is really an IPv4 network
 * (::ffff:127.0.0.0/104 is 127.0.0.0/8); anything else stays as it is.
 * So ::/0 does not match IPv4 clients: an IPv4 client is an IPv4 client
 * whichever socket it came through, and only IPv4 (or mapped) networks
 * match it.
 */
static void
cidr_normalize(const struct cidr *cidr, struct cidr_norm *n_r)
{
	memset(n_r, 0, sizeof(*n_r));
	if (cidr->family == AF_INET6 && cidr->prefix >= 96 &&
	    is_v4mapped(cidr->addr)) {
		n_r->family = AF_INET;
		memcpy(n_r->addr, cidr->addr + 12, 4);
		n_r->prefix = cidr->prefix - 96;
		return;
	}
	n_r->family = cidr->family;
	memcpy(n_r->addr, cidr->addr, sizeof(n_r->addr));
	n_r->prefix = cidr->prefix;
}

/* The address of a sockaddr, an IPv4-mapped one as IPv4. -1 if neither. */
static int
sockaddr_normalize(const struct sockaddr *sa, struct cidr_norm *n_r)
{
	memset(n_r, 0, sizeof(*n_r));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		n_r->family = AF_INET;
		memcpy(n_r->addr, &sin->sin_addr, 4);
		n_r->prefix = 32;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *a = sin6->sin6_addr.s6_addr;

		if (is_v4mapped(a)) {
			n_r->family = AF_INET;
			memcpy(n_r->addr, a + 12, 4);
			n_r->prefix = 32;
		} else {
			n_r->family = AF_INET6;
			memcpy(n_r->addr, a, 16);
			n_r->prefix = 128;
		}
		return 0;
	}
	return -1;
}

/* Are the first `bits` bits of a and b equal? */
static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

/* Are all bits after the first `bits` of an addrlen-byte address zero? */
static bool
host_bits_zero(const uint8_t *addr, size_t addrlen, unsigned bits)
{
	for (size_t i = 0; i < addrlen; i++) {
		unsigned first = (unsigned)i * 8;
		uint8_t mask;

		if (first + 8 <= bits)
			continue;
		mask = first >= bits ? 0xff : (uint8_t)(0xff >> (bits - first));
		if ((addr[i] & mask) != 0)
			return false;
	}
	return true;
}

/* Strictly decimal 0..max, at most 3 digits, no sign, no leading zero. */
static int
parse_prefix(const char *s, unsigned max, unsigned *prefix_r)
{
	size_t len = strlen(s);
	unsigned v = 0;

	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*prefix_r = v;
	return 0;
}

int
cidr_parse(const char *text, struct cidr *cidr_r, const char **error_r)
{
	char addr[CIDR_ADDR_MAX];
	const char *slash;
	size_t addrlen, bytes;
	struct cidr c;

	memset(&c, 0, sizeof(c));
	if (text == NULL || *text == '\0') {
		*error_r = "empty network";
		return -1;
	}
	slash = strchr(text, '/');
	addrlen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	if (addrlen == 0 || addrlen >= sizeof(addr)) {
		*error_r = "not an IP address";
		return -1;
	}
	memcpy(addr, text, addrlen);
	addr[addrlen] = '\0';

	if (strchr(addr, ':') != NULL) {
		c.family = AF_INET6;
		bytes = 16;
	} else {
		c.family = AF_INET;
		bytes = 4;
	}
	/* inet_pton: IPv4 only as four decimal parts, no "10/8" or "0x0a". */
	if (inet_pton(c.family, addr, c.addr) != 1) {
		*error_r = "not an IP address";
		return -1;
	}
	c.prefix = (unsigned)bytes * 8;
	if (slash != NULL &&
	    parse_prefix(slash + 1, (unsigned)bytes * 8, &c.prefix) < 0) {
		*error_r = c.family == AF_INET ?
		    "bad prefix length (0..32 for IPv4)" :
		    "bad prefix length (0..128 for IPv6)";
		return -1;
	}
	if (!host_bits_zero(c.addr, bytes, c.prefix)) {
		*error_r = "host bits set";
		return -1;
	}
	*cidr_r = c;
	return 0;
}

bool
cidr_match(const struct cidr *cidr, const struct sockaddr *sa)
{
	struct cidr_norm net, addr;

	if (cidr == NULL || sockaddr_normalize(sa, &addr) < 0)
		return false;
	cidr_normalize(cidr, &net);
	if (net.family != addr.family)
		return false;
	return prefix_equal(net.addr, addr.addr, net.prefix);
}

bool
cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *sa)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_match(&list[i], sa))
			return true;
	return false;
}

bool
cidr_is_loopback(const struct cidr *cidr)
{
	static const uint8_t v6_loopback[16] = { [15] = 1 };
	struct cidr_norm n;

	if (cidr == NULL)
		return false;
	cidr_normalize(cidr, &n);
	if (n.family == AF_INET)
		return n.prefix >= 8 && n.addr[0] == 127;
	if (n.family == AF_INET6)
		return n.prefix == 128 &&
		    memcmp(n.addr, v6_loopback, sizeof(v6_loopback)) == 0;
	return false;
}

void
cidr_format(const struct cidr *cidr, char *buf, size_t buflen)
{
	char addr[INET6_ADDRSTRLEN];

	if (buflen == 0)
		return;
	if (cidr == NULL ||
	    (cidr->family != AF_INET && cidr->family != AF_INET6) ||
	    inet_ntop(cidr->family, cidr->addr, addr, sizeof(addr)) == NULL) {
		snprintf(buf, buflen, "?");
		return;
	}
	snprintf(buf, buflen, "%s/%u", addr, cidr->prefix);
}

void
sockaddr_format_ip(const struct sockaddr *sa, char *buf, size_t buflen)
{
	struct cidr_norm n;

	if (buflen == 0)
		return;
	if (sockaddr_normalize(sa, &n) < 0 ||
	    inet_ntop(n.family, n.addr, buf, (socklen_t)buflen) == NULL)
		snprintf(buf, buflen, "?");
}

/* Strictly decimal 1..65535, no sign, no leading zero. */
static int
parse_port(const char *s, uint16_t *port_r)
{
	size_t len = strlen(s);
	unsigned v = 0;

	if (len == 0 || len > 5 || s[0] == '0')
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port_r = (uint16_t)v;
	return 0;
}

/*
 * Split "HOST:PORT" or "[HOST]:PORT" into host (brackets removed) and port
 * text. *bracketed_r says which form it was.
 */
static int
split_hostport(const char *text, char *host, size_t hostlen,
    const char **port_r, bool *bracketed_r, const char **error_r)
{
	const char *colon, *start = text, *end;

	*bracketed_r = text[0] == '[';
	if (*bracketed_r) {
		start = text + 1;
		end = strchr(start, ']');
		if (end == NULL || end[1] != ':') {
			*error_r = "expected [IPV6]:PORT";
			return -1;
		}
		colon = end + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			*error_r = "expected ADDRESS:PORT";
			return -1;
		}
		end = colon;
		if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
			*error_r = "an IPv6 address needs brackets: [ADDRESS]:PORT";
			return -1;
		}
	}
	if (end == start || (size_t)(end - start) >= hostlen) {
		*error_r = "bad address";
		return -1;
	}
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	*port_r = colon + 1;
	return 0;
}

int
sockaddr_parse_listen(const char *text, struct sockaddr_storage *ss_r,
    socklen_t *len_r, const char **error_r)
{
	char host[CIDR_ADDR_MAX];
	const char *port_text;
	bool bracketed;
	uint16_t port;

	if (text == NULL || *text == '\0') {
		*error_r = "empty address";
		return -1;
	}
	if (split_hostport(text, host, sizeof(host), &port_text, &bracketed,
	    error_r) < 0)
		return -1;
	if (parse_port(port_text, &port) < 0) {
		*error_r = "bad port (1..65535)";
		return -1;
	}
	memset(ss_r, 0, sizeof(*ss_r));
	if (bracketed) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss_r;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*error_r = "not an IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len_r = sizeof(*sin6);
		return 0;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss_r;

	if (strcmp(host, "*") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
		*error_r = "not an IPv4 address (host names are not allowed)";
		return -1;
	}
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	*len_r = sizeof(*sin);
	return 0;
}
