/*
 * config_audit.c: the audit that `bulwarkd -t` and `bulwarkctl check` print
 * and the daemon runs at start (refusing on errors): the incident's mistakes
 * (an open relay through mynetworks, weak password and lockout policy, bans
 * off, a host name that is not a FQDN) found before they are exploited.
 * Trusts a loaded config (config.c checked its syntax and ranges); what it
 * quotes from it is escaped.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/config_private.h"
#include "core/log.h"

struct audit {
	config_audit_cb *cb;
	void *ctx;
	int errors;
};

/* One finding. Messages start with the key, so they read alone. */
static LOG_PRINTF(4, 5) void
audit_report(struct audit *a, enum config_audit_severity sev, const char *key,
    const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (sev == CONFIG_AUDIT_ERROR)
		a->errors++;
	if (a->cb == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	a->cb(a->ctx, sev, key, msg);
}

/* 0.0.0.0/0, ::/0 or ::ffff:0:0/96: every address of a family. */
static bool
cidr_is_everything(const struct cidr *c)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (c->prefix == 0)
		return true;
	return c->family == AF_INET6 && c->prefix == 96 &&
	    memcmp(c->addr, mapped, sizeof(mapped)) == 0;
}

static void
audit_mynetworks(struct audit *a, const struct config *cfg)
{
	enum config_audit_severity sev = cfg->allow_nonlocal_mynetworks ?
	    CONFIG_AUDIT_WARNING : CONFIG_AUDIT_ERROR;
	const char *fix = cfg->allow_nonlocal_mynetworks ? "" :
	    "; keep mynetworks to loopback and let those hosts authenticate on"
	    " submission, or set allow_nonlocal_mynetworks: true if you really"
	    " mean it";
	char net[INET6_ADDRSTRLEN + 8];

	for (size_t i = 0; i < cfg->nmynetworks; i++) {
		const struct cidr *c = &cfg->mynetworks[i];

		if (cidr_is_loopback(c))
			continue;
		cidr_format(c, net, sizeof(net));
		if (cidr_is_everything(c))
			audit_report(a, sev, "mynetworks", "mynetworks: %s is every"
			    " %s address on the Internet: anyone anywhere may relay"
			    " mail through this server without authentication (an"
			    " open relay, wider than the incident's)%s", net,
			    c->family == AF_INET6 && c->prefix == 0 ? "IPv6" : "IPv4",
			    fix);
		else
			audit_report(a, sev, "mynetworks", "mynetworks: %s is not"
			    " loopback: every host there may relay mail without"
			    " authentication (the incident's open relay)%s", net, fix);
	}
}

static void
audit_identity(struct audit *a, const struct config *cfg)
{
	char buf[LOG_ESCAPE_MAX];
	const char *h = cfg->hostname;

	if (h == NULL)
		audit_report(a, CONFIG_AUDIT_ERROR, "hostname",
		    "hostname: not set: it is what the greeting and HELO announce");
	else if (config_hostname_problem(h) != NULL || strchr(h, '.') == NULL)
		audit_report(a, CONFIG_AUDIT_ERROR, "hostname",
		    "hostname: '%s' is not a fully qualified domain name: it is"
		    " what the greeting and HELO announce, and receivers check it",
		    log_escape(buf, sizeof(buf), h, strlen(h)));
	if (cfg->ndomains == 0)
		audit_report(a, CONFIG_AUDIT_ERROR, "domains",
		    "domains: empty: bulwark would accept mail for no one; list at"
		    " least one domain");
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
		const char *set = cfg->tls_cert != NULL ? "tls.cert" : "tls.key";
		const char *unset = cfg->tls_cert != NULL ? "tls.key" : "tls.cert";

		audit_report(a, CONFIG_AUDIT_ERROR, unset, "%s: %s is set but %s"
		    " is not: give both, or neither for a self-signed pair in"
		    " data_dir/tls", unset, set, unset);
	}
}

static void
audit_security_policy(struct audit *a, const struct config_security_policy *p)
{
	if (!p->require_email_confirmation)
		audit_report(a, CONFIG_AUDIT_WARNING,
		    "security_policy.require_email_confirmation",
		    "security_policy.require_email_confirmation: false: accounts"
		    " work before anyone confirms them (the incident's test accounts)");
	if (p->max_failed_login_attempts == 0)
		audit_report(a, CONFIG_AUDIT_WARNING,
		    "security_policy.max_failed_login_attempts",
		    "security_policy.max_failed_login_attempts: 0 turns account"
		    " lockout off: passwords can be guessed without limit");
	else if (p->max_failed_login_attempts > 3)
		audit_report(a, CONFIG_AUDIT_WARNING,
		    "security_policy.max_failed_login_attempts",
		    "security_policy.max_failed_login_attempts: %d is weaker than"
		    " the default 3: more guesses before an account locks",
		    p->max_failed_login_attempts);
	if (p->account_lockout_duration_minutes < 60)
		audit_report(a, CONFIG_AUDIT_WARNING,
		    "security_policy.account_lockout_duration_minutes",
		    "security_policy.account_lockout_duration_minutes: %d is weaker"
		    " than the default 60: a locked account reopens sooner",
		    p->account_lockout_duration_minutes);
	if (p->minimum_password_length < 12)
		audit_report(a, CONFIG_AUDIT_WARNING,
		    "security_policy.minimum_password_length",
		    "security_policy.minimum_password_length: %d is weaker than the"
		    " default 12: short passwords like the incident's admin123 pass",
		    p->minimum_password_length);
	if (!p->require_password_complexity)
		audit_report(a, CONFIG_AUDIT_WARNING,
		    "security_policy.require_password_complexity",
		    "security_policy.require_password_complexity: false: passwords"
		    " like the incident's password1 pass");
	if (!p->disable_smtp_auth_for_unconfirmed)
		audit_report(a, CONFIG_AUDIT_WARNING,
		    "security_policy.disable_smtp_auth_for_unconfirmed",
		    "security_policy.disable_smtp_auth_for_unconfirmed: false:"
		    " unconfirmed accounts may send mail");
}

/* Thresholds are only reported while the bans are on: off says it all. */
static void
audit_intrusion_prevention(struct audit *a,
    const struct config_intrusion_prevention *ip)
{
	if (!ip->enabled) {
		audit_report(a, CONFIG_AUDIT_WARNING, "intrusion_prevention.enabled",
		    "intrusion_prevention.enabled: false: no automatic bans;"
		    " password guessing and abuse go on unchecked");
		return;
	}
	if (ip->maxretry > 5)
		audit_report(a, CONFIG_AUDIT_WARNING, "intrusion_prevention.maxretry",
		    "intrusion_prevention.maxretry: %d is weaker than the default 5:"
		    " more failures before a ban", ip->maxretry);
	if (ip->findtime < 300)
		audit_report(a, CONFIG_AUDIT_WARNING, "intrusion_prevention.findtime",
		    "intrusion_prevention.findtime: %d is weaker than the default"
		    " 300: failures are forgotten sooner", ip->findtime);
	if (ip->bantime < 3600)
		audit_report(a, CONFIG_AUDIT_WARNING, "intrusion_prevention.bantime",
		    "intrusion_prevention.bantime: %d is weaker than the default"
		    " 3600: bans end sooner", ip->bantime);
}

/* The outbound containment (docs/containment.md): a control turned off is said. */
static void
audit_queue_monitor(struct audit *a, const struct config_queue_monitor *qm)
{
	static const struct {
		const char *key;
		size_t offset;
		const char *what;
	} detectors[] = {
		{ "queue_monitor.detectors.rate_limit.enabled",
		  offsetof(struct config_queue_monitor, detectors.rate_limit),
		  "an account over its hourly limit is refused but not contained" },
		{ "queue_monitor.detectors.distinct_domains.enabled",
		  offsetof(struct config_queue_monitor, detectors.distinct_domains),
		  "mail to many recipient domains is not noticed" },
		{ "queue_monitor.detectors.deferral_ratio.enabled",
		  offsetof(struct config_queue_monitor, detectors.deferral_ratio),
		  "an account whose mail is mostly refused is not noticed" },
		{ "queue_monitor.detectors.from_mismatch.enabled",
		  offsetof(struct config_queue_monitor, detectors.from_mismatch),
		  "a From: that is not the sender's own is not noticed" },
		{ "queue_monitor.detectors.same_subject.enabled",
		  offsetof(struct config_queue_monitor, detectors.same_subject),
		  "a burst of one subject to many recipients is not noticed" },
	};

	if (!qm->containment)
		audit_report(a, CONFIG_AUDIT_WARNING, "queue_monitor.containment",
		    "queue_monitor.containment: false: a detector only alerts; a"
		    " compromised account keeps sending until someone acts (the incident)");
	for (size_t i = 0; i < sizeof(detectors) / sizeof(detectors[0]); i++) {
		const struct config_detector *d = (const struct config_detector *)
		    ((const char *)qm + detectors[i].offset);

		if (!d->enabled)
			audit_report(a, CONFIG_AUDIT_WARNING, detectors[i].key,
			    "%s: false: %s", detectors[i].key, detectors[i].what);
	}
}

int
config_audit(const struct config *cfg, config_audit_cb *cb, void *ctx)
{
	struct audit a = { .cb = cb, .ctx = ctx };

	if (cfg == NULL)
		return 0;
	audit_identity(&a, cfg);
	audit_mynetworks(&a, cfg);
	audit_security_policy(&a, &cfg->security_policy);
	audit_intrusion_prevention(&a, &cfg->intrusion_prevention);
	audit_queue_monitor(&a, &cfg->queue_monitor);
	return a.errors;
}
