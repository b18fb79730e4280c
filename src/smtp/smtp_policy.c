/*
 * smtp_policy.c: who may send to whom. Trusts the parsed address (domain
 * lower-cased, validated) and the client facts the session measured.
 */
#include "smtp/smtp_policy.h"

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

int
smtp_policy_helo(const struct config *cfg, const char *helo, const char *local_ip)
{
	char literal[80];

	if (strcasecmp(helo, cfg->hostname) == 0)
		return 0;
	if (config_is_local_domain(cfg, helo))
		return 0;
	snprintf(literal, sizeof(literal), "[%s]", local_ip);
	if (strcasecmp(helo, literal) == 0)
		return 0;
	snprintf(literal, sizeof(literal), "[IPv6:%s]", local_ip);
	if (strcasecmp(helo, literal) == 0)
		return 0;
	return 1;
}
