/*
 * config.h: bulwark's one YAML configuration file (libyaml), loaded into a
 * struct that starts from safe defaults (the values of etc/bulwark.yaml).
 * Unknown keys, wrong types, bad CIDRs or addresses are errors naming the
 * file, line and key. config_audit() is what `bulwarkd -t` and
 * `bulwarkctl check` print: the incident's mistakes, as errors or warnings.
 */
#ifndef BULWARK_CONFIG_H
#define BULWARK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/cidr.h"

struct config_listen {
	char *text;                 /* as written, e.g. "127.0.0.1:2525" */
	struct sockaddr_storage ss;
	socklen_t sslen;
};

struct config_listen_list {
	struct config_listen *v;
	size_t n;
};

enum config_bare_lf {
	CONFIG_BARE_LF_NORMALIZE = 0,   /* bare LF taken as a line end, stored as CRLF */
	CONFIG_BARE_LF_REJECT,          /* a message with a bare LF gets a 5xx */
};

struct config_security_policy {
	bool require_email_confirmation;        /* true */
	int max_failed_login_attempts;          /* 3 */
	int account_lockout_duration_minutes;   /* 60 */
	int minimum_password_length;            /* 12 */
	bool require_password_complexity;       /* true */
	bool disable_smtp_auth_for_unconfirmed; /* true */
};

struct config_intrusion_prevention {
	bool enabled;   /* true */
	int maxretry;   /* 5 */
	int findtime;   /* 300 s */
	int bantime;    /* 3600 s: the first ban; each repeat doubles it */
	int bantime_max;            /* 604800 s: the cap of that doubling */
	int ipv6_prefix;            /* 64: IPv6 clients are banned by this prefix */
	int maxretry_authenticated; /* 20: threshold for an IP that logged in recently (NAT) */
	bool drop_before_accept;    /* true: a BPF filter on the listeners drops banned SYNs */
	struct cidr *ignoreip;      /* never banned; defaults to mynetworks */
	size_t nignoreip;
};

/* accounts: confirmation and lockout details beyond the report's keys. */
struct config_accounts {
	int confirmation_ttl_hours;  /* 24: a confirmation link expires */
	int known_ip_days;           /* 30: an IP that logged in within this is not locked out by others */
};

struct config_http {
	char *public_url;            /* base of links in mails; NULL: http://<first listen.http> */
	struct cidr *metrics_allow;  /* who may read /metrics; defaults to mynetworks */
	size_t nmetrics_allow;
};

/* One named detector of the queue monitor (docs/containment.md). */
struct config_detector {
	bool enabled;
	int threshold;        /* what "too many" is; its unit depends on the detector */
	int window_seconds;   /* the sliding window it is counted over */
	int min_samples;      /* deferral_ratio: results needed before a ratio means anything */
};

struct config_queue_monitor {
	int interval_seconds; /* 30 */
	int alert_threshold;  /* 5: messages in the queue above which an alert is raised */
	char *alert_command;  /* NULL: none; "/abs/path arg ..." split on spaces, no shell */
	int alert_command_timeout;  /* 10 s, then the command is killed */
	int alert_repeat_seconds;   /* 3600: a queue alert that persists is repeated this often */
	bool containment;           /* true: a detector that fires holds and suspends */
	int messages_per_hour;      /* 100 per account (authenticated submission) */
	int recipients_per_hour;    /* 500 remote recipients per account */
	struct {
		struct config_detector rate_limit;        /* over messages/recipients_per_hour */
		struct config_detector distinct_domains;  /* recipient domains in the window */
		struct config_detector deferral_ratio;    /* % of deferred+bounced results */
		struct config_detector from_mismatch;     /* From: not the authenticated identity */
		struct config_detector same_subject;      /* recipients of one subject in the window */
	} detectors;
};

/* smtp: limits of the SMTP server, each with its RFC 5321 reply. */
struct config_smtp {
	size_t max_line_length;        /* 1000 octets incl. CRLF -> 500 5.5.2 */
	size_t max_message_size;       /* 26214400 octets -> 552 5.3.4 */
	int max_recipients;            /* 100 per message -> 452 4.5.3 */
	int max_errors;                /* 10 per session -> 421 and close */
	int idle_timeout;              /* 300 s (RFC 5321 4.5.3.2 asks >= 5 min) */
	int data_timeout;              /* 600 s for a whole DATA/BDAT transfer */
	int max_connections_per_ip;    /* 20 */
	int max_connections;           /* 1000 in total */
	int greet_pause_ms;            /* 1000: talkers before the greeting are dropped */
	enum config_bare_lf bare_lf;   /* normalize */
	int shutdown_timeout;          /* 10 s: SIGTERM waits this long for transactions */
};

/* imap: limits of the IMAP server (docs/imap.md). */
struct config_imap {
	size_t max_line_length;        /* 65536 octets of a command outside literals -> BAD */
	size_t max_literal_size;       /* 1048576 octets of literals in a command -> NO [TOOBIG] */
	size_t max_message_size;       /* 67108864 octets of an APPEND -> NO [TOOBIG] */
	int max_errors;                /* 10 per session -> BYE and close */
	int idle_timeout;              /* 1800 s (RFC 3501 5.4 asks >= 30 min) */
	int login_timeout;             /* 60 s before a login */
	int max_connections_per_ip;    /* 50 */
	int max_connections;           /* 5000 in total */
	int max_sessions_per_account;  /* 50 */
};

struct config {
	char *path;                      /* file it came from, for messages */
	char *hostname;                  /* mail.example.test */
	char **domains;                  /* lower-case, no trailing dot */
	size_t ndomains;
	char *data_dir;                  /* "var" */
	char *user;                      /* NULL: do not drop privileges */
	char *log_level;                 /* "info" */
	struct {
		struct config_listen_list smtp, submission, submissions, imap, imaps, http;
	} listen;
	char *tls_cert, *tls_key;        /* NULL: self-signed pair in data_dir/tls */
	struct cidr *mynetworks;
	size_t nmynetworks;
	bool allow_nonlocal_mynetworks;  /* false */
	struct config_outbound {
		char *smarthost;             /* HOST:PORT or NULL */
		char **dns_servers;
		size_t ndns_servers;
		int max_connections;         /* 100: outbound SMTP connections in total */
		int max_per_destination;     /* 20: to one destination (domain or smarthost) */
		int max_messages_per_connection;  /* 100: then QUIT and a new connection */
		int connection_idle_seconds; /* 5: an idle connection waits this long for reuse; 0: none */
		int retry_base;              /* 300 s: the first retry after a deferral */
		int retry_max;               /* 14400 s: the doubling stops here */
		int max_queue_lifetime;      /* 432000 s (5 days): then a 4.4.7 bounce */
	} outbound;
	struct config_security_policy security_policy;
	struct config_intrusion_prevention intrusion_prevention;
	struct config_accounts accounts;
	struct config_http http;
	struct config_queue_monitor queue_monitor;
	struct config_smtp smtp;
	struct config_imap imap;
};

/*
 * Load a config file. On error returns -1 and sets *error_r to a malloc'd
 * "FILE:LINE: key 'a.b': reason" message (caller frees).
 */
int config_load(const char *path, struct config **cfg_r, char **error_r);
/* Same, from memory; name is used in messages in place of a file name. */
int config_load_string(const char *name, const char *text, size_t len,
    struct config **cfg_r, char **error_r);
void config_free(struct config **cfg);

/* True if domain (any case, no trailing dot) is one of cfg->domains. */
bool config_is_local_domain(const struct config *cfg, const char *domain);

enum config_audit_severity {
	CONFIG_AUDIT_WARNING,  /* the daemon starts, and says so loudly */
	CONFIG_AUDIT_ERROR,    /* the daemon refuses to start */
};

typedef void config_audit_cb(void *ctx, enum config_audit_severity sev,
    const char *key, const char *message);

/*
 * Audit cfg for unsafe settings (the incident's list): a mynetworks wider
 * than loopback without allow_nonlocal_mynetworks (error) or with it
 * (warning), a security_policy weaker than the defaults (warning naming the
 * key), intrusion prevention off, no domains, etc. Calls cb once per
 * finding; returns the number of errors.
 */
int config_audit(const struct config *cfg, config_audit_cb *cb, void *ctx);

#endif
