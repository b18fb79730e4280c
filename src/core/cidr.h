/*
 * cidr.h: IPv4/IPv6 networks and addresses. Pure functions, no allocation.
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match IPv4 networks.
 */
#ifndef BULWARK_CIDR_H
#define BULWARK_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family;          /* AF_INET or AF_INET6 */
	uint8_t addr[16];    /* network address, host bits zero */
	unsigned prefix;     /* 0..32 or 0..128 */
};

/*
 * Parse "a.b.c.d/n", "x:y::z/n" or a bare address (a host network).
 * Host bits set below the prefix are an error ("10.0.0.1/8"), as Postfix
 * warns: the admin probably meant something else. 0 ok, -1 with *error_r.
 */
int cidr_parse(const char *text, struct cidr *cidr_r, const char **error_r);
/* Does the network contain the address (sockaddr_in or sockaddr_in6)? */
bool cidr_match(const struct cidr *cidr, const struct sockaddr *sa);
bool cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *sa);
/* Is every address of the network a loopback address (127/8, ::1/128)? */
bool cidr_is_loopback(const struct cidr *cidr);
/* Write "net/prefix" into buf. */
void cidr_format(const struct cidr *cidr, char *buf, size_t buflen);

/* Address text of a sockaddr, IPv4-mapped shown as IPv4. "?" on failure. */
void sockaddr_format_ip(const struct sockaddr *sa, char *buf, size_t buflen);

/*
 * Parse "ADDRESS:PORT" listen syntax: "127.0.0.1:25", "[::1]:25", "*:25"
 * (all IPv4), "[::]:25". 0 ok, -1 with *error_r.
 */
int sockaddr_parse_listen(const char *text, struct sockaddr_storage *ss_r,
    socklen_t *len_r, const char **error_r);

#endif
