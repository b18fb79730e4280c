/*
 * test_smtp_policy.c: table tests for src/smtp/smtp_policy.c. Relay cases
 * assert the verdict and its reason; recipients go through smtp_parse_rcpt
 * as in a session (domain lower-cased) unless a case builds the address by
 * hand. HELO cases first check that smtp_parse_helo accepts the name, so
 * every case is something a client can really send. docs/smtp.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_policy.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char config_yaml[] =
    "hostname: mail.example.test\n"
    "domains: [example.test, Example.NET]\n"
    "mynetworks: [127.0.0.0/8, \"::1/128\"]\n";

static struct config *
load_config(void)
{
	struct config *cfg = NULL;
	char *error = NULL;

	if (config_load_string("policy", config_yaml, strlen(config_yaml), &cfg, &error) != 0)
		fail_msg("config: %s", error != NULL ? error : "?");
	assert_non_null(cfg);
	return cfg;
}

/* ---- relay decision ---- */

struct rcpt_case {
	const char *name;
	const char *args;         /* RCPT argument text, parsed as a session would */
	struct {                  /* or, when args is NULL, the address by hand */
		const char *domain;
		bool literal;
		bool postmaster_only;
	} raw;
	bool mynetworks;
	bool authenticated;
	enum smtp_policy_verdict verdict;
	const char *reason;
};

#define UNTRUSTED .mynetworks = false, .authenticated = false
#define LOCAL(r) .verdict = SMTP_POLICY_LOCAL, .reason = (r)
#define RELAY(r) .verdict = SMTP_POLICY_RELAY, .reason = (r)
#define DENY(r) .verdict = SMTP_POLICY_DENY, .reason = (r)

static const struct rcpt_case rcpt_cases[] = {
	/* local domains: anyone may send */
	{ .name = "local domain", .args = "TO:<bob@example.test>", UNTRUSTED,
	  LOCAL("local_domain") },
	{ .name = "local domain, upper case on the wire", .args = "TO:<Bob@EXAMPLE.Test>",
	  UNTRUSTED, LOCAL("local_domain") },
	{ .name = "local domain, upper case given to the policy",
	  .raw = { .domain = "EXAMPLE.TEST" }, UNTRUSTED, LOCAL("local_domain") },
	{ .name = "second local domain (config upper case)", .args = "TO:<x@example.net>",
	  UNTRUSTED, LOCAL("local_domain") },
	{ .name = "local domain from mynetworks", .args = "TO:<bob@example.test>",
	  .mynetworks = true, LOCAL("local_domain") },
	{ .name = "local domain, authenticated", .args = "TO:<bob@example.test>",
	  .authenticated = true, LOCAL("local_domain") },
	{ .name = "postmaster of a local domain", .args = "TO:<postmaster@example.test>",
	  UNTRUSTED, LOCAL("local_domain") },
	{ .name = "<Postmaster> alone", .args = "TO:<Postmaster>", UNTRUSTED,
	  LOCAL("postmaster") },
	{ .name = "<postmaster> any case", .args = "TO:<POSTMASTER>", UNTRUSTED,
	  LOCAL("postmaster") },
	{ .name = "<Postmaster> by hand", .raw = { .postmaster_only = true }, UNTRUSTED,
	  LOCAL("postmaster") },

	/* remote domains: only trusted clients relay */
	{ .name = "remote from untrusted", .args = "TO:<x@remote.example>", UNTRUSTED,
	  DENY("relay_denied") },
	{ .name = "remote from mynetworks", .args = "TO:<x@remote.example>", .mynetworks = true,
	  RELAY("mynetworks") },
	{ .name = "remote, authenticated", .args = "TO:<x@remote.example>", .authenticated = true,
	  RELAY("authenticated") },
	{ .name = "remote, authenticated and mynetworks", .args = "TO:<x@remote.example>",
	  .mynetworks = true, .authenticated = true, RELAY("authenticated") },
	{ .name = "postmaster of a remote domain", .args = "TO:<postmaster@remote.example>",
	  UNTRUSTED, DENY("relay_denied") },
	{ .name = "subdomain of a local domain is remote", .args = "TO:<x@sub.example.test>",
	  UNTRUSTED, DENY("relay_denied") },
	{ .name = "local domain as a prefix", .args = "TO:<x@example.test.remote.example>",
	  UNTRUSTED, DENY("relay_denied") },
	{ .name = "local domain as a suffix", .args = "TO:<x@notexample.test>", UNTRUSTED,
	  DENY("relay_denied") },

	/* relay tricks: the domain after the last '@' alone decides */
	{ .name = "percent hack stays local", .args = "TO:<u%remote.example@example.test>",
	  UNTRUSTED, LOCAL("local_domain") },
	{ .name = "bang path stays local", .args = "TO:<remote.example!u@example.test>",
	  UNTRUSTED, LOCAL("local_domain") },
	{ .name = "quoted @ stays local", .args = "TO:<\"u@remote.example\"@example.test>",
	  UNTRUSTED, LOCAL("local_domain") },
	{ .name = "percent hack to a remote domain", .args = "TO:<u%example.test@remote.example>",
	  UNTRUSTED, DENY("relay_denied") },
	{ .name = "source route through us to remote",
	  .args = "TO:<@example.test:u@remote.example>", UNTRUSTED, DENY("relay_denied") },
	{ .name = "source route through remote to us",
	  .args = "TO:<@remote.example,@other.example:u@example.test>", UNTRUSTED,
	  LOCAL("local_domain") },

	/* address literals are never local */
	{ .name = "literal 127.0.0.1 from untrusted", .args = "TO:<root@[127.0.0.1]>", UNTRUSTED,
	  DENY("address_literal") },
	{ .name = "literal ::1 from untrusted", .args = "TO:<root@[IPv6:::1]>", UNTRUSTED,
	  DENY("address_literal") },
	{ .name = "literal elsewhere from untrusted", .args = "TO:<x@[192.0.2.7]>", UNTRUSTED,
	  DENY("address_literal") },
	{ .name = "literal from mynetworks", .args = "TO:<x@[192.0.2.7]>", .mynetworks = true,
	  RELAY("mynetworks") },
	{ .name = "literal, authenticated", .args = "TO:<x@[192.0.2.7]>", .authenticated = true,
	  RELAY("authenticated") },
	{ .name = "literal naming a local domain by hand",
	  .raw = { .domain = "example.test", .literal = true }, UNTRUSTED,
	  DENY("address_literal") },
};

static void
test_rcpt_policy(void **state)
{
	struct config *cfg = load_config();
	size_t failed = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rcpt_cases); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct smtp_policy_client client = {
			.mynetworks = c->mynetworks,
			.authenticated = c->authenticated,
		};
		struct smtp_address a;
		const char *params, *error, *reason = NULL;
		enum smtp_policy_verdict v;

		memset(&a, 0, sizeof(a));
		if (c->args != NULL) {
			if (smtp_parse_rcpt(c->args, &a, &params, &error) != 1)
				fail_msg("%s: \"%s\" does not parse: %s", c->name, c->args, error);
		} else {
			snprintf(a.local, sizeof(a.local), "%s", "user");
			snprintf(a.domain, sizeof(a.domain), "%s",
			    c->raw.domain != NULL ? c->raw.domain : "");
			a.domain_literal = c->raw.literal;
			a.postmaster_only = c->raw.postmaster_only;
		}
		v = smtp_policy_rcpt(cfg, &a, &client, &reason);
		if (v != c->verdict || reason == NULL || strcmp(reason, c->reason) != 0) {
			print_error("%s: verdict %d reason %s, expected %d reason %s\n", c->name,
			    v, reason != NULL ? reason : "(null)", c->verdict, c->reason);
			failed++;
		}
	}
	config_free(&cfg);
	if (failed > 0)
		fail_msg("%zu of %zu relay cases failed", failed, ARRAY_SIZE(rcpt_cases));
}

/* ---- HELO: "You are not me" ---- */

struct helo_case {
	const char *name;
	const char *helo;       /* EHLO argument as sent */
	const char *local_ip;   /* as sockaddr_format_ip writes it */
	int ok;                 /* 1 allowed, 0 refused */
};

static const struct helo_case helo_cases[] = {
	{ "our hostname", "mail.example.test", "127.0.0.1", 0 },
	{ "our hostname, any case", "MAIL.Example.TEST", "127.0.0.1", 0 },
	{ "a local domain", "example.test", "192.0.2.1", 0 },
	{ "a local domain, any case", "EXAMPLE.NET", "192.0.2.1", 0 },
	{ "our IPv4 literal", "[127.0.0.1]", "127.0.0.1", 0 },
	{ "our other IPv4 literal", "[192.0.2.1]", "192.0.2.1", 0 },
	{ "our IPv6 literal", "[IPv6:::1]", "::1", 0 },
	{ "our IPv6 literal, tag in lower case", "[ipv6:::1]", "::1", 0 },
	{ "our IPv6 literal, hex in upper case", "[IPv6:2001:DB8::1]", "2001:db8::1", 0 },
	{ "another name", "client.example.org", "127.0.0.1", 1 },
	{ "single label", "localhost", "127.0.0.1", 1 },
	{ "subdomain of our hostname", "x.mail.example.test", "127.0.0.1", 1 },
	{ "our hostname as a prefix", "mail.example.test.evil.example", "127.0.0.1", 1 },
	{ "a literal that is not ours", "[127.0.0.2]", "127.0.0.1", 1 },
	{ "loopback literal when we listen elsewhere", "[127.0.0.1]", "192.0.2.1", 1 },
	{ "IPv4 literal when we are on IPv6", "[192.0.2.1]", "2001:db8::1", 1 },
	{ "another IPv6 literal", "[IPv6:2001:db8::2]", "2001:db8::1", 1 },
	/*
	 * smtp_parse_helo tolerates trailing spaces and check_helo passes the
	 * argument on unchanged: the name is still ours.
	 */
	{ "our hostname with a trailing space", "mail.example.test ", "127.0.0.1", 0 },
	{ "our literal with a trailing space", "[127.0.0.1] ", "127.0.0.1", 0 },
	/* the same IPv6 address written another way is still our literal */
	{ "our IPv6 literal, uncompressed", "[IPv6:0:0:0:0:0:0:0:1]", "::1", 0 },
	{ "our IPv6 literal, leading zeros", "[IPv6:2001:0db8::0001]", "2001:db8::1", 0 },
};

static void
test_helo_policy(void **state)
{
	struct config *cfg = load_config();
	size_t failed = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(helo_cases); i++) {
		const struct helo_case *c = &helo_cases[i];
		const char *error;
		int ok;

		/* reachable: the session parses the name before the policy sees it */
		if (smtp_parse_helo(c->helo, true, &error) != 1)
			fail_msg("%s: \"%s\" does not parse: %s", c->name, c->helo, error);
		ok = smtp_policy_helo(cfg, c->helo, c->local_ip);
		if (ok != c->ok) {
			print_error("%s: smtp_policy_helo(\"%s\", local %s) = %d, expected %d\n",
			    c->name, c->helo, c->local_ip, ok, c->ok);
			failed++;
		}
	}
	config_free(&cfg);
	if (failed > 0)
		fail_msg("%zu of %zu HELO cases failed", failed, ARRAY_SIZE(helo_cases));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rcpt_policy),
		cmocka_unit_test(test_helo_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
