/*
 * directory.h: the accounts store (domains' users and aliases) and the
 * password rules. Callers see only this door; the SQLite store sits behind a
 * table of function pointers (directory_backend in directory_private.h) so a
 * PostgreSQL twin can come later. Not thread-safe: one handle per thread.
 * Lockout counters, IP strikes, tokens come with the authentication issue
 * and will live here too, shared by SMTP, IMAP and HTTP.
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

#endif
