/*
 * directory_ban.c: the persistent side of the guard's ban table (the
 * built-in fail2ban), so bans survive a restart and bulwarkctl can list,
 * add and remove them while the daemon runs. Trusts its callers' times and
 * counts; checks every network text (a CIDR, as cidr_parse reads it) and
 * reason before it is stored, since bulwarkctl shows them back.
 */
#include "directory/directory.h"

#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"
#include "core/log.h"
#include "directory/directory_private.h"

#define NETWORK_MAX 64   /* "xxxx:...:xxxx/128" is 43 */
#define REASON_MAX 64

/* A short printable token, as reasons are ("auth_failed", "manual"). */
static bool
reason_ok(const char *reason)
{
	size_t n = 0;

	if (reason == NULL || reason[0] == '\0')
		return false;
	for (; reason[n] != '\0'; n++)
		if (n >= REASON_MAX || (unsigned char)reason[n] < 0x20 ||
		    (unsigned char)reason[n] >= 0x7f)
			return false;
	return true;
}

static bool
network_ok(const char *network)
{
	struct cidr c;
	const char *why;

	return network != NULL && strnlen(network, NETWORK_MAX) < NETWORK_MAX &&
	    cidr_parse(network, &c, &why) == 0;
}

int
directory_ban_save(struct directory *dir, const struct directory_ban *ban)
{
	char b[DIRECTORY_SHOW_MAX];

	if (!network_ok(ban->network) || !reason_ok(ban->reason) ||
	    ban->evidence < 0 || ban->level < 0) {
		log_warnx("event=directory_error error=\"ban refused: bad network or "
		    "reason\" network=%s", DIRECTORY_LOGSAFE(b, ban->network != NULL ?
		    ban->network : "(null)"));
		return -1;
	}
	if (dir->be->ban_save(dir->store, ban) != 0)
		return directory_store_error(dir, NULL);
	return 0;
}

int
directory_ban_delete(struct directory *dir, const char *network)
{
	int rc;

	if (network == NULL)
		return 0;
	if ((rc = dir->be->ban_delete(dir->store, network)) < 0)
		return directory_store_error(dir, NULL);
	return rc > 0 ? 1 : 0;
}

int
directory_ban_list(struct directory *dir, struct directory_ban **bans_r, size_t *n_r)
{
	*bans_r = NULL;
	*n_r = 0;
	if (dir->be->ban_list(dir->store, bans_r, n_r) != 0)
		return directory_store_error(dir, NULL);
	return 0;
}

void
directory_ban_list_free(struct directory_ban **bans, size_t n)
{
	if (bans == NULL || *bans == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*bans)[i].network);
		free((*bans)[i].reason);
	}
	free(*bans);
	*bans = NULL;
}
