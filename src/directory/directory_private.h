/*
 * directory_private.h: the table of storage functions behind directory.h.
 * directory.c (the door) validates every input and makes the decisions; a
 * backend only stores and fetches, trusting that what it is given is checked
 * and normalised (domain lower-case). Only files of src/directory include it.
 */
#ifndef BULWARK_DIRECTORY_PRIVATE_H
#define BULWARK_DIRECTORY_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/log.h"
#include "directory/directory.h"

enum directory_flag {
	DIRECTORY_FLAG_CONFIRMED,
	DIRECTORY_FLAG_SUSPENDED,
};

/*
 * Conventions: addresses match case-insensitively (ASCII). -1 is a store
 * error whose text error() returns until the next call. Functions that
 * change one account return 1 changed, 0 no such account.
 */
struct directory_backend {
	const char *name;
	/* Open or create the store under data_dir. 0, or -1 with malloc'd *error_r. */
	int (*open)(const char *data_dir, void **store_r, char **error_r);
	void (*close)(void *store);
	/* The last store error, for one-line messages. Never NULL. */
	const char *(*error)(void *store);

	/* 1 found (user_r filled; *hash_r malloc'd when hash_r is not NULL), 0 none. */
	int (*user_get)(void *store, const char *address,
	    struct directory_user *user_r, char **hash_r);
	/* 1 inserted, 0 an account with that address exists. */
	int (*user_insert)(void *store, const struct directory_user *user,
	    const char *hash);
	int (*user_delete)(void *store, const char *address);
	int (*user_set_hash)(void *store, const char *address, const char *hash);
	int (*user_set_flag)(void *store, const char *address,
	    enum directory_flag flag, bool value);
	int (*user_unlock)(void *store, const char *address);
	/* Outbound rate limits of one account; -1: the config's default (NULL). */
	int (*user_set_limits)(void *store, const char *address, int messages, int recipients);
	/* All accounts ordered by address. 0 ok. */
	int (*user_list)(void *store, struct directory_user **users_r, size_t *n_r);

	/* 1 inserted, 0 the pair exists. */
	int (*alias_insert)(void *store, const char *source, const char *target);
	/* Number of rows removed (target NULL: every row of source). */
	int (*alias_delete)(void *store, const char *source, const char *target);
	/* Targets of source, appended to targets_r. 1 some, 0 none. */
	int (*alias_targets)(void *store, const char *source,
	    struct directory_strings *targets_r);
	/* Every alias as "source target", ordered. 0 ok. */
	int (*alias_list)(void *store, struct directory_strings *list_r);

	/*
	 * A write transaction, so that a decision read and its writes are one
	 * step even with other processes and threads on the same store. begin
	 * takes the write lock at once (waiting up to the busy timeout).
	 * 0, -1. rollback never fails (it is the error path).
	 */
	int (*begin)(void *store);
	int (*commit)(void *store);
	void (*rollback)(void *store);

	/* The lockout counters of one account. */
	int (*user_set_login)(void *store, const char *address, int failed_logins,
	    int64_t locked_until);
	/* Remember a counted failure (fingerprint: keyed hash of the password). 0. */
	int (*failure_insert)(void *store, const char *address, const char *ip,
	    const unsigned char *fingerprint, size_t fplen, int64_t time);
	/* 1 a failure of address from ip with that fingerprint at or after since, 0 none. */
	int (*failure_find)(void *store, const char *address, const char *ip,
	    const unsigned char *fingerprint, size_t fplen, int64_t since);
	/* Failures of address from ip at or after since: the count (>= 0). */
	int (*failure_count)(void *store, const char *address, const char *ip,
	    int64_t since);
	/* Forget the failures of address older than before (0: all). Rows removed. */
	int (*failure_delete)(void *store, const char *address, int64_t before);
	/* 1 found (*last_success_r set), 0 the IP never logged in to address. */
	int (*known_ip_get)(void *store, const char *address, const char *ip,
	    int64_t *last_success_r);
	/* Insert or refresh (address, ip) with last_success = now. 0. */
	int (*known_ip_touch)(void *store, const char *address, const char *ip,
	    int64_t now);

	/* Settings (small blobs by name): 1 found (copied, *len_r set), 0 none. */
	int (*setting_get)(void *store, const char *key, void *buf, size_t buflen,
	    size_t *len_r);
	/* 1 inserted, 0 the key exists already (left alone). */
	int (*setting_add)(void *store, const char *key, const void *value, size_t len);

	/* Tokens, by the SHA-256 of their text. 0 inserted. */
	int (*token_insert)(void *store, const unsigned char *hash, size_t hashlen,
	    const char *address, int64_t created, int64_t expires);
	/* 1 found (*address_r malloc'd; *used_r 0 when unused), 0 none. */
	int (*token_get)(void *store, const unsigned char *hash, size_t hashlen,
	    char **address_r, int64_t *expires_r, int64_t *used_r);
	/* Mark used at now if unused: 1 marked, 0 not (unknown or used). */
	int (*token_use)(void *store, const unsigned char *hash, size_t hashlen,
	    int64_t now);

	/* Counts over accounts and tokens. 0. */
	int (*stats)(void *store, int64_t now, struct directory_stats *st_r);

	/* Bans by network text: insert or replace (0), delete (1, 0 none), list (0). */
	int (*ban_save)(void *store, const struct directory_ban *ban);
	int (*ban_delete)(void *store, const char *network);
	int (*ban_list)(void *store, struct directory_ban **bans_r, size_t *n_r);

	/* A number that changes when another connection commits. 0. */
	int (*data_version)(void *store, int64_t *version_r);
};

extern const struct directory_backend directory_backend_sqlite;

/* ---- shared by the files of the door (directory*.c) ---- */

#define DIRECTORY_LOCAL_MAX 64          /* RFC 5321 4.5.3.1.1 */
#define DIRECTORY_DOMAIN_MAX 253        /* without a trailing dot */
#define DIRECTORY_ADDRESS_MAX (DIRECTORY_LOCAL_MAX + 1 + DIRECTORY_DOMAIN_MAX)
#define DIRECTORY_FINGERPRINT_KEY_LEN 32 /* crypto_generichash_KEYBYTES */

struct directory {
	const struct directory_backend *be;
	void *store;
	/* Key of the wrong-password fingerprints (settings.fingerprint_key). */
	unsigned char fingerprint_key[DIRECTORY_FINGERPRINT_KEY_LEN];
	bool have_fingerprint_key;
	/* directory_changed(): the store's data version at the previous call. */
	int64_t data_version;
	bool have_data_version;
};

/* An address split, checked and normalised. */
struct directory_addr {
	char local[DIRECTORY_LOCAL_MAX + 1];
	char domain[DIRECTORY_DOMAIN_MAX + 1];
	char full[DIRECTORY_ADDRESS_MAX + 1];   /* local@domain, domain lower-case */
};

/* Append a copy of s to list. 0 ok, -1 out of memory. */
int directory_strings_add(struct directory_strings *list, const char *s);

/* Set *error_r (when asked for) to a malloc'd message; returns -1. */
int directory_fail(char **error_r, const char *fmt, ...) LOG_PRINTF(2, 3);
/* Log the backend's last error once and return it as a message; -1. */
int directory_store_error(struct directory *dir, char **error_r);
/*
 * Check and normalise an address (dot-atom local part, LDH domain lower-
 * cased). NULL if fine, else the reason. need_dot: refuse a single label.
 */
const char *directory_addr_parse(const char *address, bool need_dot,
    struct directory_addr *a);
/* Untrusted text for a one-line message: printable ASCII, the rest \xHH, capped. */
const char *directory_show(char *buf, size_t buflen, const char *s);

#define DIRECTORY_SHOW_MAX 128
#define DIRECTORY_SHOW(b, s) directory_show((b), sizeof(b), (s))
/* Untrusted text for a log line: log.h's escaping, so key=value stays parseable. */
#define DIRECTORY_LOGSAFE(b, s) log_escape((b), sizeof(b), (s), strlen(s))

/*
 * Spend the time of one argon2id verify against a fixed hash made once per
 * process (an unknown user must cost what a known one costs). 0, or -1 if
 * the hash could not be made (out of memory). prepare only makes it.
 */
int password_dummy_prepare(void);
int password_verify_dummy(const char *password);

#endif
