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
};

extern const struct directory_backend directory_backend_sqlite;

/* Append a copy of s to list. 0 ok, -1 out of memory. */
int directory_strings_add(struct directory_strings *list, const char *s);

#endif
