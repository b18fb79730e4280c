/*
 * directory.h: the accounts store (domains' users and aliases) and the
 * password rules. Callers see only this door; the SQLite store sits behind a
 * table of function pointers (directory_backend in directory_private.h) so a
 * PostgreSQL twin can come later. Not thread-safe: one handle per thread.
 * Logins, lockout counters, known IPs and confirmation tokens live here too,
 * shared by SMTP, IMAP and HTTP; so do the bans the guard persists.
 */
#ifndef BULWARK_DIRECTORY_H
#define BULWARK_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct directory;

struct directory_user {
	char *address;        /* local@domain, lower-case domain */
	char *contact;        /* may be NULL */
	bool confirmed;
	bool suspended;
	int64_t locked_until; /* unix time, 0 = not locked */
	int failed_logins;
	int64_t created;      /* unix time */
	int messages_per_hour;   /* outbound rate limits; -1: queue_monitor's default */
	int recipients_per_hour;
};

/* A list of malloc'd strings. */
struct directory_strings {
	char **v;
	size_t n;
};

/*
 * Open (creating if needed) data_dir/bulwark.db: WAL, synchronous=FULL,
 * busy_timeout, numbered schema migrations applied in one transaction each.
 * 0 ok, -1 with a malloc'd *error_r.
 */
int directory_open(const char *data_dir, struct directory **dir_r, char **error_r);
void directory_free(struct directory **dir);

/*
 * Resolve the recipient local@domain (domain already known local, lower-case)
 * to the account addresses that receive it: the user itself, or an alias's
 * targets expanded recursively (depth-bounded, loops cut, duplicates dropped).
 * Local parts match case-insensitively. Targets outside the local domains
 * are returned as they are (delivered remotely, later).
 * Returns 1 found (*targets_r filled), 0 no such user or alias, -1 store error.
 * An alias none of whose targets receives mail (all missing or cut) is 0 too.
 */
int directory_resolve(struct directory *dir, const struct config *cfg,
    const char *local, const char *domain, struct directory_strings *targets_r);
/* Is address an existing account? 1 yes, 0 no, -1 store error. */
int directory_user_exists(struct directory *dir, const char *address);

/*
 * Create an account. The password is checked against cfg's security_policy
 * first (password_policy_check) and stored as an argon2id hash.
 * 0 ok; -1 with *error_r a malloc'd one-line reason ("password: ...",
 * "user exists", "domain example.org is not a local domain", ...).
 */
int directory_user_add(struct directory *dir, const struct config *cfg,
    const char *address, const char *password, const char *contact,
    bool confirmed, char **error_r);
int directory_user_del(struct directory *dir, const char *address, char **error_r);
int directory_user_set_password(struct directory *dir, const struct config *cfg,
    const char *address, const char *password, char **error_r);
/* flag: "confirmed", "suspended"; value true/false. */
int directory_user_set_flag(struct directory *dir, const char *address,
    const char *flag, bool value, char **error_r);
/*
 * Per-account outbound rate limits (messages and remote recipients an hour
 * on authenticated submission); -1 puts one back to queue_monitor's default.
 */
int directory_user_set_limits(struct directory *dir, const char *address, int messages,
    int recipients, char **error_r);
/* Clear the failed-login count and any lock. */
int directory_user_unlock(struct directory *dir, const char *address, char **error_r);
/* Fetch one account: 1 found, 0 none, -1 error. Free with directory_user_clear. */
int directory_user_get(struct directory *dir, const char *address,
    struct directory_user *user_r);
/* All accounts ordered by address; free with directory_user_list_free. */
int directory_user_list(struct directory *dir, struct directory_user **users_r,
    size_t *n_r, char **error_r);
void directory_user_clear(struct directory_user *user);
void directory_user_list_free(struct directory_user **users, size_t n);
/*
 * Check a password against the stored hash (argon2id, constant time).
 * Slow by design: call it on the worker pool. 1 match, 0 no match or no
 * such user, -1 error.
 */
int directory_user_verify_password(struct directory *dir, const char *address,
    const char *password);

/* Aliases: source address -> target address (many rows per source). */
int directory_alias_add(struct directory *dir, const struct config *cfg,
    const char *source, const char *target, char **error_r);
int directory_alias_del(struct directory *dir, const char *source,
    const char *target, char **error_r); /* target NULL: all of source */
/* Every alias as "source target" strings. */
int directory_alias_list(struct directory *dir, struct directory_strings *list_r,
    char **error_r);

void directory_strings_clear(struct directory_strings *s);

/*
 * Split "local@domain" at the last '@' into lower-cased domain and local part
 * as written. Rejects empty parts, a trailing dot, spaces and control bytes.
 * 0 ok, -1. Buffers are NUL-terminated.
 */
int directory_split_address(const char *address, char *local_r, size_t locallen,
    char *domain_r, size_t domainlen);

/*
 * The password rules (security_policy): length, complexity (upper, lower,
 * digit, special), not containing the address's local part or domain labels
 * (case-insensitive), not in the built-in list of the most common passwords
 * (compared case-insensitively, also with trailing digits/symbols removed).
 * 0 acceptable; -1 with *reason_r a static one-line reason naming the rule.
 * (Reasons with numbers sit in a per-thread buffer, valid until the next call.)
 */
int password_policy_check(const struct config_security_policy *policy,
    const char *address, const char *password, const char **reason_r);
/* argon2id (libsodium, interactive limits) into an encoded string. */
int password_hash(const char *password, char *hash_r, size_t hashlen);
/* 1 match, 0 mismatch, -1 malformed hash. Constant time. */
int password_verify(const char *hash, const char *password);

/* ---- authentication: one place for SMTP AUTH, IMAP LOGIN and the web ---- */

enum directory_auth_result {
	DIRECTORY_AUTH_OK = 0,
	DIRECTORY_AUTH_BAD_PASSWORD,
	DIRECTORY_AUTH_UNKNOWN_USER,
	DIRECTORY_AUTH_LOCKED,        /* locked out (and not a known IP's exception) */
	DIRECTORY_AUTH_UNCONFIRMED,   /* right password, account not confirmed yet */
	DIRECTORY_AUTH_ERROR,         /* store failure: a temporary error to the client */
};

struct directory_auth_outcome {
	enum directory_auth_result result;
	char account[320];       /* the account as stored (when it exists) */
	bool counted;            /* a failure that counted toward the lockout */
	bool repeat;             /* the same wrong password again from the same IP: not counted */
	bool locked_now;         /* this attempt locked the account */
	bool known_ip;           /* the IP logged in to this account within accounts.known_ip_days */
	bool suspended;          /* OK, but sending is suspended (reading still works) */
	int failed_logins;       /* after this attempt */
	int64_t locked_until;    /* unix time, 0 if not locked */
	char contact[320];       /* contact address ("" if none), for the lockout notice */
};

/* A short token for logs and metrics: "ok", "bad_password", "unknown_user", ... */
const char *directory_auth_result_name(enum directory_auth_result r);

/*
 * Check a login and record its outcome (security_policy + accounts keys):
 * - argon2id verify (slow by design: call it on the worker pool); an unknown
 *   user spends the time of one hash too;
 * - a failure counts toward max_failed_login_attempts, except the same wrong
 *   password again from the same IP (a keyed hash of it is kept, never the
 *   password), which counts once;
 * - at the limit the account locks for account_lockout_duration_minutes;
 *   while locked every attempt fails, even with the right password, unless
 *   the IP logged in successfully within accounts.known_ip_days and did not
 *   itself cause the lock;
 * - a success resets the count and lock and remembers the IP (a success
 *   through the known-IP exception only remembers the IP: the lock stays
 *   on for the others until it expires);
 * - unconfirmed accounts fail when disable_smtp_auth_for_unconfirmed (or
 *   require_email_confirmation) is on.
 * Uses dir from one thread at a time (open one handle per worker thread).
 * Returns 0 (outcome filled) or -1 (store error; result DIRECTORY_AUTH_ERROR).
 */
int directory_auth(struct directory *dir, const struct config *cfg, const char *address,
    const char *password, const char *ip, int64_t now, struct directory_auth_outcome *out_r);

/*
 * May the account use sender in MAIL FROM? Its own address, or an alias
 * whose expansion includes the account. 1 yes, 0 no, -1 store error.
 */
int directory_sender_allowed(struct directory *dir, const struct config *cfg,
    const char *account, const char *sender);

/* ---- confirmation tokens (256 random bits, stored only as SHA-256) ---- */

#define DIRECTORY_TOKEN_LEN 64   /* hex characters */

/* New confirmation token for address, valid ttl seconds. 0 ok, -1 with *error_r. */
int directory_token_create(struct directory *dir, const char *address, int64_t now,
    int64_t ttl, char token_r[DIRECTORY_TOKEN_LEN + 1], char **error_r);
/* Is token valid (known, unused, unexpired)? 1 yes (address copied), 0 no, -1 error. */
int directory_token_peek(struct directory *dir, const char *token, int64_t now,
    char *address_r, size_t addresslen);
/* Use token once and confirm its account, atomically. 1 confirmed, 0 invalid, -1 error. */
int directory_token_confirm(struct directory *dir, const char *token, int64_t now,
    char *address_r, size_t addresslen);

struct directory_stats {
	long users, confirmed, unconfirmed, suspended, locked;   /* now */
	long confirmations_requested, confirmations_completed;  /* ever (tokens) */
};
int directory_stats(struct directory *dir, int64_t now, struct directory_stats *st_r);

/* ---- bans: the persistent side of the guard's ban table ---- */

struct directory_ban {
	char *network;       /* "203.0.113.9/32", "2001:db8:1:2::/64" */
	char *reason;        /* "auth_failed", "relay_denied", "manual", ... */
	int evidence;        /* strikes that led to it */
	int level;           /* how many times this network was banned (escalation) */
	int64_t created;
	int64_t expires;     /* unix time; rows stay after expiry to remember the level */
};

/* Insert or replace the row of ban->network. 0 ok, -1 error. */
int directory_ban_save(struct directory *dir, const struct directory_ban *ban);
/* 1 removed, 0 none, -1 error. */
int directory_ban_delete(struct directory *dir, const char *network);
/* Every row (active and expired), ordered by network. */
int directory_ban_list(struct directory *dir, struct directory_ban **bans_r, size_t *n_r);
void directory_ban_list_free(struct directory_ban **bans, size_t n);

/*
 * Did another connection (bulwarkctl) commit since the last call on this
 * handle? (PRAGMA data_version) 1 yes, 0 no, -1 error. Cheap: poll it.
 * The first call answers 0. Any other connection counts, the same
 * process's other handles too (a worker recording a failed login).
 */
int directory_changed(struct directory *dir);

#endif
