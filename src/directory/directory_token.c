/*
 * directory_token.c: confirmation tokens. 256 random bits (libsodium),
 * given out once as 64 hex characters and stored only as their SHA-256, so
 * a copy of the database confirms nothing. Single use, expiring. Trusts no
 * token text it is shown: anything but 64 hex digits is simply unknown.
 */
#include "directory/directory.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "directory/directory_private.h"

#define TOKEN_BYTES 32

/*
 * The stored form of token: SHA-256 of its text, lower-cased (a token copied
 * in capitals still works). -1 if it cannot be a token.
 */
static int
token_hash(const char *token, unsigned char hash_r[crypto_hash_sha256_BYTES])
{
	char lower[DIRECTORY_TOKEN_LEN];

	if (token == NULL || strnlen(token, DIRECTORY_TOKEN_LEN + 1) != DIRECTORY_TOKEN_LEN)
		return -1;
	for (size_t i = 0; i < DIRECTORY_TOKEN_LEN; i++) {
		if (!isxdigit((unsigned char)token[i]))
			return -1;
		lower[i] = (char)tolower((unsigned char)token[i]);
	}
	crypto_hash_sha256(hash_r, (const unsigned char *)lower, sizeof(lower));
	return 0;
}

int
directory_token_create(struct directory *dir, const char *address, int64_t now,
    int64_t ttl, char token_r[DIRECTORY_TOKEN_LEN + 1], char **error_r)
{
	struct directory_user u;
	unsigned char random[TOKEN_BYTES], hash[crypto_hash_sha256_BYTES];
	char b[DIRECTORY_SHOW_MAX];
	int rc;

	token_r[0] = '\0';
	if (ttl <= 0)
		return directory_fail(error_r, "a token needs a positive lifetime");
	if ((rc = dir->be->user_get(dir->store, address, &u, NULL)) <= 0)
		return rc < 0 ? directory_store_error(dir, error_r) :
		    directory_fail(error_r, "no such user %s", DIRECTORY_SHOW(b, address));
	randombytes_buf(random, sizeof(random));
	sodium_bin2hex(token_r, DIRECTORY_TOKEN_LEN + 1, random, sizeof(random));
	sodium_memzero(random, sizeof(random));
	(void)token_hash(token_r, hash);
	rc = dir->be->token_insert(dir->store, hash, sizeof(hash), u.address, now,
	    now + ttl);
	if (rc != 0) {
		sodium_memzero(token_r, DIRECTORY_TOKEN_LEN + 1);
		directory_user_clear(&u);
		return directory_store_error(dir, error_r);
	}
	log_info("event=token_created account=%s expires=%lld", u.address,
	    (long long)(now + ttl));
	directory_user_clear(&u);
	return 0;
}

/*
 * Look the token up: 1 valid (unused, unexpired; *address_r malloc'd),
 * 0 unknown, used or expired (*why_r says which), -1 store error.
 */
static int
token_lookup(struct directory *dir, const unsigned char *hash, int64_t now,
    char **address_r, const char **why_r)
{
	int64_t expires = 0, used = 0;
	int rc;

	*address_r = NULL;
	rc = dir->be->token_get(dir->store, hash, crypto_hash_sha256_BYTES, address_r,
	    &expires, &used);
	if (rc <= 0) {
		*why_r = "unknown";
		return rc < 0 ? directory_store_error(dir, NULL) : 0;
	}
	if (used != 0 || expires <= now) {
		*why_r = used != 0 ? "used" : "expired";
		free(*address_r);
		*address_r = NULL;
		return 0;
	}
	return 1;
}

/* Copy the token's account out; -1 if it does not fit. */
static int
copy_address(const char *address, char *address_r, size_t addresslen)
{
	if (address_r == NULL)
		return 0;
	if (addresslen == 0 || (size_t)snprintf(address_r, addresslen, "%s", address) >=
	    addresslen) {
		log_warnx("event=directory_error error=\"address buffer too small\"");
		return -1;
	}
	return 0;
}

int
directory_token_peek(struct directory *dir, const char *token, int64_t now,
    char *address_r, size_t addresslen)
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	const char *why;
	char *address;
	int rc;

	if (address_r != NULL && addresslen > 0)
		address_r[0] = '\0';
	if (token_hash(token, hash) != 0)
		return 0;
	if ((rc = token_lookup(dir, hash, now, &address, &why)) == 1) {
		rc = copy_address(address, address_r, addresslen) == 0 ? 1 : -1;
		free(address);
	}
	return rc;
}

int
directory_token_confirm(struct directory *dir, const char *token, int64_t now,
    char *address_r, size_t addresslen)
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	const char *why = "unknown";
	char *address = NULL;
	int rc;

	if (address_r != NULL && addresslen > 0)
		address_r[0] = '\0';
	if (token_hash(token, hash) != 0) {
		log_info("event=confirmation_refused reason=malformed");
		return 0;
	}
	/* Check, use and confirm in one transaction: two clicks confirm once. */
	if (dir->be->begin(dir->store) != 0)
		return directory_store_error(dir, NULL);
	if ((rc = token_lookup(dir, hash, now, &address, &why)) != 1)
		goto out;
	if ((rc = dir->be->token_use(dir->store, hash, sizeof(hash), now)) == 1)
		rc = dir->be->user_set_flag(dir->store, address, DIRECTORY_FLAG_CONFIRMED, true);
	if (rc < 0) {
		directory_store_error(dir, NULL);
		goto out;
	}
	if (rc == 0) {
		why = "unknown";
		goto out;
	}
	if (dir->be->commit(dir->store) != 0) {
		rc = directory_store_error(dir, NULL);
		goto out;
	}
	log_info("event=account_confirmed account=%s via=token", address);
	rc = copy_address(address, address_r, addresslen) == 0 ? 1 : -1;
	free(address);
	return rc;
out:
	dir->be->rollback(dir->store);
	if (rc == 0)
		log_info("event=confirmation_refused reason=%s", why);
	free(address);
	return rc;
}
