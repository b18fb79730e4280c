/*
 * smtp_policy.c: who may send to whom. Trusts the parsed address (domain
 * lower-cased, validated) and the client facts the session measured.
 */
#include "smtp/smtp_policy.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "smtp/smtp_parse.h"

enum smtp_policy_verdict
smtp_policy_rcpt(const struct config *cfg, const struct smtp_address *rcpt,
    const struct smtp_policy_client *client, const char **reason_r)
{
	if (rcpt->postmaster_only) {
		*reason_r = "postmaster";
		return SMTP_POLICY_LOCAL;
	}
	if (!rcpt->domain_literal && config_is_local_domain(cfg, rcpt->domain)) {
		*reason_r = "local_domain";
		return SMTP_POLICY_LOCAL;
	}
	if (client->authenticated) {
		*reason_r = "authenticated";
		return SMTP_POLICY_RELAY;
	}
	if (client->mynetworks) {
		*reason_r = "mynetworks";
		return SMTP_POLICY_RELAY;
	}
	*reason_r = rcpt->domain_literal ? "address_literal" : "relay_denied";
	return SMTP_POLICY_DENY;
}

/* Is the address literal text ("[1.2.3.4]", "[IPv6:...]") the address local_ip? */
static bool
literal_is(const char *lit, size_t len, const char *local_ip)
{
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned char a[16], b[16];
	int af = AF_INET;

	if (len < 3 || lit[0] != '[' || lit[len - 1] != ']' || len - 2 >= sizeof(buf))
		return false;
	memcpy(buf, lit + 1, len - 2);
	buf[len - 2] = '\0';
	if (strncasecmp(buf, "IPv6:", 5) == 0) {
		memmove(buf, buf + 5, strlen(buf + 5) + 1);
		af = AF_INET6;
	}
	if (inet_pton(af, buf, a) != 1)
		return false;
	if (inet_pton(af, local_ip, b) != 1)
		return false;
	return memcmp(a, b, af == AF_INET ? 4 : 16) == 0;
}

int
smtp_policy_helo(const struct config *cfg, const char *helo, const char *local_ip)
{
	char name[SMTP_DOMAIN_MAX + 1];
	size_t len = strlen(helo);

	/* The parser tolerates trailing spaces; they must not dodge this check. */
	while (len > 0 && helo[len - 1] == ' ')
		len--;
	if (len >= sizeof(name))
		return 1;
	memcpy(name, helo, len);
	name[len] = '\0';
	/* A trailing dot names the same host (FQDN form). */
	if (len > 1 && name[len - 1] == '.')
		name[len - 1] = '\0';
	if (strcasecmp(name, cfg->hostname) == 0 || config_is_local_domain(cfg, name))
		return 0;
	if (literal_is(name, strlen(name), local_ip))
		return 0;
	return 1;
}
