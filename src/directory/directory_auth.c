/*
 * directory_auth.c: the one login check of SMTP AUTH, IMAP and the web:
 * password, lockout (security_policy), known IPs (accounts.known_ip_days),
 * confirmed accounts. Trusts nothing it is given (address, password, IP
 * text); a password is only ever hashed, never stored or logged.
 * The slow argon2id verify runs outside any transaction; the decision and
 * its writes are one short BEGIN IMMEDIATE, so several threads and
 * processes on the same database count every failure exactly once.
 */
#include "directory/directory.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "directory/directory_private.h"

#define FINGERPRINT_LEN 32          /* BLAKE2b-256 */
#define FINGERPRINT_KEY_NAME "fingerprint_key"
#define IP_MAX 64                   /* longer than any IPv6 text with a zone */
#define SECONDS_PER_DAY 86400
/* Times the password changed under a login before we give up (never, really). */
#define AUTH_TRIES 3

const char *
directory_auth_result_name(enum directory_auth_result r)
{
	switch (r) {
	case DIRECTORY_AUTH_OK: return "ok";
	case DIRECTORY_AUTH_BAD_PASSWORD: return "bad_password";
	case DIRECTORY_AUTH_UNKNOWN_USER: return "unknown_user";
	case DIRECTORY_AUTH_LOCKED: return "locked";
	case DIRECTORY_AUTH_UNCONFIRMED: return "unconfirmed";
	case DIRECTORY_AUTH_ERROR: return "error";
	}
	return "error";
}

/*
 * The key of the wrong-password fingerprints: 32 random bytes made on first
 * use and kept in settings, so every handle and process agrees. An
 * INSERT OR IGNORE then a read: two first users at once keep one key.
 */
static int
fingerprint_key(struct directory *dir)
{
	unsigned char fresh[DIRECTORY_FINGERPRINT_KEY_LEN];
	size_t len = 0;
	int rc;

	if (dir->have_fingerprint_key)
		return 0;
	rc = dir->be->setting_get(dir->store, FINGERPRINT_KEY_NAME, dir->fingerprint_key,
	    sizeof(dir->fingerprint_key), &len);
	if (rc == 0) {
		randombytes_buf(fresh, sizeof(fresh));
		rc = dir->be->setting_add(dir->store, FINGERPRINT_KEY_NAME, fresh,
		    sizeof(fresh));
		sodium_memzero(fresh, sizeof(fresh));
		if (rc < 0)
			return directory_store_error(dir, NULL);
		rc = dir->be->setting_get(dir->store, FINGERPRINT_KEY_NAME,
		    dir->fingerprint_key, sizeof(dir->fingerprint_key), &len);
	}
	if (rc < 0)
		return directory_store_error(dir, NULL);
	if (rc == 0 || len != sizeof(dir->fingerprint_key)) {
		log_warnx("event=directory_error error=\"settings.%s is missing or not "
		    "%zu bytes\"", FINGERPRINT_KEY_NAME, sizeof(dir->fingerprint_key));
		return -1;
	}
	dir->have_fingerprint_key = true;
	return 0;
}

/* What a login attempt needs from the account and the verify. */
struct attempt {
	const struct config *cfg;
	const char *ip;
	int64_t now;
	bool match;                                  /* the password was right */
	unsigned char fingerprint[FINGERPRINT_LEN];  /* of a wrong password */
};

/*
 * The decision, inside the write transaction, on the account as it is now
 * (u). Fills out; writes what changed. 0, -1 store error.
 */
static int
auth_decide(struct directory *dir, const struct attempt *at,
    const struct directory_user *u, struct directory_auth_outcome *out)
{
	const struct config_security_policy *sp = &at->cfg->security_policy;
	const struct directory_backend *be = dir->be;
	const int64_t duration = (int64_t)sp->account_lockout_duration_minutes * 60;
	/* How long a wrong password is remembered (same-password rule, pruning). */
	const int64_t window = duration > 0 ? duration :
	    (int64_t)at->cfg->intrusion_prevention.findtime;
	const int max = sp->max_failed_login_attempts;
	int failed = u->failed_logins, rc;
	int64_t locked_until = u->locked_until, last_success = 0;
	bool dirty = false, locked = false;

	/* An expired lock is gone, and its count with it. */
	if (locked_until != 0 && locked_until <= at->now) {
		failed = 0;
		locked_until = 0;
		dirty = true;
	}
	if (at->cfg->accounts.known_ip_days > 0 && at->ip[0] != '\0') {
		if ((rc = be->known_ip_get(dir->store, u->address, at->ip, &last_success)) < 0)
			return -1;
		out->known_ip = rc == 1 && last_success >=
		    at->now - (int64_t)at->cfg->accounts.known_ip_days * SECONDS_PER_DAY;
	}
	if (locked_until > at->now) {
		/*
		 * The known-IP exception: the owner's usual IP is not locked out
		 * by someone else's guesses, unless its own failures would have
		 * locked the account: those that led to the lock (within the
		 * window before it began) and those since.
		 */
		bool exempt = false;

		locked = true;
		if (out->known_ip) {
			rc = be->failure_count(dir->store, u->address, at->ip,
			    locked_until - duration - window);
			if (rc < 0)
				return -1;
			exempt = max == 0 || rc < max;
		}
		if (!exempt) {
			/* Not counted, and the lock is not extended. */
			out->result = DIRECTORY_AUTH_LOCKED;
			goto done;
		}
	}
	if (at->match) {
		if (!u->confirmed && (sp->disable_smtp_auth_for_unconfirmed ||
		    sp->require_email_confirmation)) {
			out->result = DIRECTORY_AUTH_UNCONFIRMED;
			goto done;
		}
		out->result = DIRECTORY_AUTH_OK;
		out->suspended = u->suspended;
		if (at->ip[0] != '\0' &&
		    be->known_ip_touch(dir->store, u->address, at->ip, at->now) != 0)
			return -1;
		/*
		 * A success through the known-IP exception leaves the lock and the
		 * count on for everyone else: lifting it would give whoever caused
		 * it max more guesses each time the owner's phone checks mail.
		 */
		if (!locked) {
			failed = 0;
			locked_until = 0;
			dirty = true;
			if (be->failure_delete(dir->store, u->address, 0) < 0)
				return -1;
		}
		goto done;
	}
	out->result = DIRECTORY_AUTH_BAD_PASSWORD;
	rc = be->failure_find(dir->store, u->address, at->ip, at->fingerprint,
	    sizeof(at->fingerprint), at->now - window);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		/* The same wrong password from the same IP: one mistake, not a guess. */
		out->repeat = true;
		goto done;
	}
	out->counted = true;
	if (be->failure_insert(dir->store, u->address, at->ip, at->fingerprint,
	    sizeof(at->fingerprint), at->now) != 0)
		return -1;
	/*
	 * Rows older than this decide nothing any more: the repeat rule looks
	 * one window back, the exception a window before the lock began.
	 */
	if (be->failure_delete(dir->store, u->address, at->now - window - duration) < 0)
		return -1;
	if (failed < INT32_MAX)
		failed++;
	dirty = true;
	if (max > 0 && failed >= max && !locked && duration > 0) {
		locked_until = at->now + duration;
		out->locked_now = true;
	}
done:
	if (dirty && be->user_set_login(dir->store, u->address, failed, locked_until) < 0)
		return -1;
	out->failed_logins = failed;
	out->locked_until = locked_until > at->now ? locked_until : 0;
	return 0;
}

/* Copy the account's name and contact into the outcome. */
static void
outcome_account(struct directory_auth_outcome *out, const struct directory_user *u)
{
	snprintf(out->account, sizeof(out->account), "%s", u->address);
	snprintf(out->contact, sizeof(out->contact), "%s",
	    u->contact != NULL ? u->contact : "");
}

int
directory_auth(struct directory *dir, const struct config *cfg, const char *address,
    const char *password, const char *ip, int64_t now, struct directory_auth_outcome *out_r)
{
	struct directory_addr a;
	struct directory_user u = { 0 }, cur = { 0 };
	struct attempt at = { .cfg = cfg, .now = now };
	char *hash = NULL, *cur_hash = NULL, b1[DIRECTORY_SHOW_MAX], b2[DIRECTORY_SHOW_MAX];
	int rc;

	memset(out_r, 0, sizeof(*out_r));
	out_r->result = DIRECTORY_AUTH_ERROR;
	if (password == NULL)
		password = "";
	at.ip = ip != NULL ? ip : "";
	if (strnlen(at.ip, IP_MAX) >= IP_MAX) {
		log_warnx("event=directory_error error=\"client IP text too long\"");
		return -1;
	}
	/* Made before anything can differ between known and unknown users. */
	if (password_dummy_prepare() != 0) {
		log_warnx("event=directory_error error=\"cannot make the dummy hash "
		    "(out of memory?)\"");
		return -1;
	}
	for (int tries = 0; tries < AUTH_TRIES; tries++) {
		rc = directory_addr_parse(address, false, &a) == NULL ?
		    dir->be->user_get(dir->store, a.full, &u, &hash) : 0;
		if (rc < 0)
			goto store_fail;
		if (rc == 0) {
			/* Same time as a real verify: timing must not tell who exists. */
			(void)password_verify_dummy(password);
			out_r->result = DIRECTORY_AUTH_UNKNOWN_USER;
			return 0;
		}
		/* The slow part, outside any transaction. */
		if ((rc = password_verify(hash, password)) < 0) {
			log_warnx("event=directory_error account=%s error=\"stored password "
			    "hash is malformed\"", DIRECTORY_LOGSAFE(b1, u.address));
			outcome_account(out_r, &u);
			goto fail;
		}
		at.match = rc == 1;
		if (!at.match) {
			if (fingerprint_key(dir) != 0)
				goto fail;
			crypto_generichash(at.fingerprint, sizeof(at.fingerprint),
			    (const unsigned char *)password, strlen(password),
			    dir->fingerprint_key, sizeof(dir->fingerprint_key));
		}
		if (dir->be->begin(dir->store) != 0)
			goto store_fail;
		/* The account may have changed while we hashed: decide on it as it is. */
		if ((rc = dir->be->user_get(dir->store, u.address, &cur, &cur_hash)) <= 0) {
			dir->be->rollback(dir->store);
			if (rc < 0)
				goto store_fail;
			/* Deleted while we hashed. */
			directory_user_clear(&u);
			free(hash);
			out_r->result = DIRECTORY_AUTH_UNKNOWN_USER;
			return 0;
		}
		if (strcmp(cur_hash, hash) != 0) {
			/* A new password meanwhile: our verify says nothing about it. */
			dir->be->rollback(dir->store);
			directory_user_clear(&u);
			directory_user_clear(&cur);
			free(hash);
			free(cur_hash);
			hash = cur_hash = NULL;
			continue;
		}
		outcome_account(out_r, &cur);
		if (auth_decide(dir, &at, &cur, out_r) != 0 ||
		    dir->be->commit(dir->store) != 0) {
			dir->be->rollback(dir->store);
			out_r->result = DIRECTORY_AUTH_ERROR;
			goto store_fail;
		}
		if (out_r->locked_now)
			log_warnx("event=account_locked account=%s ip=%s failed_logins=%d "
			    "locked_until=%lld", DIRECTORY_LOGSAFE(b1, cur.address),
			    DIRECTORY_LOGSAFE(b2, at.ip), out_r->failed_logins,
			    (long long)out_r->locked_until);
		directory_user_clear(&u);
		directory_user_clear(&cur);
		free(hash);
		free(cur_hash);
		sodium_memzero(at.fingerprint, sizeof(at.fingerprint));
		return 0;
	}
	log_warnx("event=directory_error account=%s error=\"password changed %d times "
	    "during one login\"", DIRECTORY_LOGSAFE(b1, a.full), AUTH_TRIES);
	goto fail;
store_fail:
	directory_store_error(dir, NULL);
fail:
	directory_user_clear(&u);
	directory_user_clear(&cur);
	free(hash);
	free(cur_hash);
	sodium_memzero(at.fingerprint, sizeof(at.fingerprint));
	out_r->result = DIRECTORY_AUTH_ERROR;
	return -1;
}

int
directory_sender_allowed(struct directory *dir, const struct config *cfg,
    const char *account, const char *sender)
{
	struct directory_addr s;
	struct directory_strings targets = { 0 };
	int rc;

	/*
	 * The null sender <> is for bounces and other automatic replies (RFC
	 * 5321 4.5.5), which come from mail systems, never from a person's
	 * client; an authenticated user sending <> would send mail nobody can
	 * answer or bounce, the usual shape of backscatter spam. Refused.
	 */
	if (account == NULL || sender == NULL || sender[0] == '\0')
		return 0;
	if (directory_addr_parse(sender, false, &s) != NULL)
		return 0;
	if (strcasecmp(s.full, account) == 0)
		return 1;
	if (!config_is_local_domain(cfg, s.domain))
		return 0;
	/* Another account (which wins over an alias of its name), or an alias. */
	if ((rc = directory_resolve(dir, cfg, s.local, s.domain, &targets)) <= 0)
		return rc;
	rc = 0;
	for (size_t i = 0; i < targets.n; i++)
		if (strcasecmp(targets.v[i], account) == 0)
			rc = 1;
	directory_strings_clear(&targets);
	return rc;
}
