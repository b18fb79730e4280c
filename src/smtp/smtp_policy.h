/*
 * smtp_policy.h: the relay decision, pure so it can be table-tested with its
 * reason. The domain of the final path alone decides local or remote; no
 * %-hack, bang path or quoted '@' is ever rewritten (see docs/smtp.md).
 */
#ifndef BULWARK_SMTP_POLICY_H
#define BULWARK_SMTP_POLICY_H

#include <stdbool.h>

struct config;
struct smtp_address;

enum smtp_policy_verdict {
	SMTP_POLICY_LOCAL,        /* a local domain: look the user up */
	SMTP_POLICY_RELAY,        /* remote, and the client may relay */
	SMTP_POLICY_DENY,         /* remote, and the client may not relay: 554 5.7.1 */
};

struct smtp_policy_client {
	bool mynetworks;          /* client address in mynetworks */
	bool authenticated;       /* SMTP AUTH succeeded (authentication issue) */
};

/* Decide for one recipient; *reason_r is a log token ("local_domain", ...). */
enum smtp_policy_verdict smtp_policy_rcpt(const struct config *cfg,
    const struct smtp_address *rcpt, const struct smtp_policy_client *client,
    const char **reason_r);

/*
 * May a client outside mynetworks use this HELO name? Not our hostname, a
 * local domain, or one of our addresses as a literal. 1 ok, 0 refuse.
 */
int smtp_policy_helo(const struct config *cfg, const char *helo, const char *local_ip);

#endif
