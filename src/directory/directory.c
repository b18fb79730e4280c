/*
 * directory.c: the door of the accounts store. Every address, password and
 * alias is validated and normalised here (domain lower-case), and every
 * decision made here (who receives a recipient's mail, which alias may
 * exist); the backend (directory_private.h) only stores. Trusts the config;
 * trusts no caller's text, and not the database's contents either when
 * expanding aliases (a hand-edited loop is cut, not followed).
 * Addresses: RFC 5321 4.1.2 dot-atom local parts, LDH domains.
 */
#include "directory/directory.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "directory/directory_private.h"

#define ALIAS_DEPTH_MAX 8     /* alias -> alias -> ... levels followed */
#define HASH_MAX 256          /* >= crypto_pwhash_STRBYTES */
#define ADDRESS_MAX DIRECTORY_ADDRESS_MAX

/* ---- small helpers ---- */

int
directory_fail(char **error_r, const char *fmt, ...)
{
	va_list ap;

	if (error_r == NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(error_r, fmt, ap) < 0)
		*error_r = NULL; /* out of memory: callers print a fallback */
	va_end(ap);
	return -1;
}

/*
 * Untrusted text for a one-line message: printable ASCII kept, the rest as
 * \xHH, capped. Returns buf so it fits in an argument list.
 */
const char *
directory_show(char *buf, size_t buflen, const char *s)
{
	size_t o = 0;

	if (s == NULL)
		s = "(null)";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (o + 8 >= buflen) { /* room for one \xHH, "..." and the NUL */
			memcpy(buf + o, "...", 4);
			return buf;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", c);
	}
	buf[o] = '\0';
	return buf;
}

int
directory_strings_add(struct directory_strings *list, const char *s)
{
	char **grown, *copy;

	if ((copy = strdup(s)) == NULL)
		return -1;
	if ((grown = reallocarray(list->v, list->n + 1, sizeof(*list->v))) == NULL) {
		free(copy);
		return -1;
	}
	list->v = grown;
	list->v[list->n++] = copy;
	return 0;
}

void
directory_strings_clear(struct directory_strings *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static bool
strings_has(const struct directory_strings *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcasecmp(s->v[i], x) == 0)
			return true;
	return false;
}

void
directory_user_clear(struct directory_user *user)
{
	if (user == NULL)
		return;
	free(user->address);
	free(user->contact);
	memset(user, 0, sizeof(*user));
}

void
directory_user_list_free(struct directory_user **users, size_t n)
{
	if (users == NULL || *users == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		directory_user_clear(&(*users)[i]);
	free(*users);
	*users = NULL;
}

/* ---- addresses ---- */

int
directory_split_address(const char *address, char *local_r, size_t locallen,
    char *domain_r, size_t domainlen)
{
	const char *at, *p;
	size_t llen, dlen;

	if (address == NULL || (at = strrchr(address, '@')) == NULL)
		return -1;
	for (p = address; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return -1;
	llen = (size_t)(at - address);
	dlen = strlen(at + 1);
	if (llen == 0 || dlen == 0 || at[dlen] == '.' ||
	    llen >= locallen || dlen >= domainlen)
		return -1;
	memcpy(local_r, address, llen);
	local_r[llen] = '\0';
	for (size_t i = 0; i <= dlen; i++)
		domain_r[i] = (char)tolower((unsigned char)at[1 + i]);
	return 0;
}

/* RFC 5322 atext, the characters of a dot-atom besides the dots. */
static bool
is_atext(unsigned char c)
{
	return isalnum(c) ? c < 0x80 : (c != '\0' && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL);
}

/*
 * Check and normalise an address: a dot-atom local part of 1..64 characters
 * and an LDH domain (lower-cased; IDNs as xn-- A-labels). NULL if fine, else
 * the reason. need_dot: a single-label domain is refused (remote targets).
 */
const char *
directory_addr_parse(const char *address, bool need_dot, struct directory_addr *a)
{
	const char *at, *p;
	size_t llen, dlen, label = 0;

	if (address == NULL || address[0] == '\0')
		return "empty address";
	if ((at = strrchr(address, '@')) == NULL)
		return "no @domain";
	llen = (size_t)(at - address);
	dlen = strlen(at + 1);
	if (llen == 0)
		return "empty local part";
	if (llen > DIRECTORY_LOCAL_MAX)
		return "local part longer than 64 characters";
	if (dlen == 0)
		return "empty domain";
	if (dlen > DIRECTORY_DOMAIN_MAX)
		return "domain longer than 253 characters";
	for (p = address; p < at; p++) {
		if (*p == '.') {
			if (p == address || p + 1 == at || p[1] == '.')
				return "local part starts or ends with a dot, or has two dots in a row";
		} else if (!is_atext((unsigned char)*p)) {
			return "local part has a character other than letters, digits and "
			    "!#$%&'*+/=?^_`{|}~.-";
		}
	}
	memcpy(a->local, address, llen);
	a->local[llen] = '\0';
	for (size_t i = 0; i <= dlen; i++) {
		unsigned char c = (unsigned char)at[1 + i];

		if (c == '.' || c == '\0') {
			if (label == 0)
				return "domain has an empty label";
			if (label > 63)
				return "domain label longer than 63 characters";
			if (a->domain[i - 1] == '-')
				return "domain label ends with a hyphen";
			label = 0;
		} else if ((c < 0x80 && isalnum(c)) || c == '-') {
			if (label == 0 && c == '-')
				return "domain label starts with a hyphen";
			label++;
		} else {
			return "domain has a character other than letters, digits, "
			    "hyphens and dots (write IDNs as xn--)";
		}
		a->domain[i] = (char)tolower(c);
	}
	if (need_dot && strchr(a->domain, '.') == NULL)
		return "domain has no dot";
	snprintf(a->full, sizeof(a->full), "%s@%s", a->local, a->domain);
	return NULL;
}

/* Parse an address that must be in a local domain, or say why not. */
static int
addr_parse_local(const struct config *cfg, const char *what, const char *address,
    struct directory_addr *a, char **error_r)
{
	char b[DIRECTORY_SHOW_MAX];
	const char *why;

	if ((why = directory_addr_parse(address, false, a)) != NULL)
		return directory_fail(error_r, "invalid %s %s: %s", what,
		    DIRECTORY_SHOW(b, address), why);
	if (!config_is_local_domain(cfg, a->domain))
		return directory_fail(error_r, "domain %s is not a local domain (see domains: in %s)",
		    a->domain, cfg->path != NULL ? cfg->path : "the config");
	return 0;
}

/* ---- open and close ---- */

int
directory_open(const char *data_dir, struct directory **dir_r, char **error_r)
{
	struct directory *dir;

	*dir_r = NULL;
	if ((dir = calloc(1, sizeof(*dir))) == NULL)
		return directory_fail(error_r, "out of memory");
	dir->be = &directory_backend_sqlite;
	if (dir->be->open(data_dir, &dir->store, error_r) != 0) {
		free(dir);
		return -1;
	}
	*dir_r = dir;
	return 0;
}

void
directory_free(struct directory **dir)
{
	if (dir == NULL || *dir == NULL)
		return;
	(*dir)->be->close((*dir)->store);
	sodium_memzero((*dir)->fingerprint_key, sizeof((*dir)->fingerprint_key));
	free(*dir);
	*dir = NULL;
}

int
directory_store_error(struct directory *dir, char **error_r)
{
	log_warnx("event=directory_error backend=%s error=\"%s\"", dir->be->name,
	    dir->be->error(dir->store));
	return directory_fail(error_r, "database error: %s", dir->be->error(dir->store));
}

/* ---- accounts ---- */

int
directory_user_exists(struct directory *dir, const char *address)
{
	struct directory_user u;
	int rc;

	rc = dir->be->user_get(dir->store, address, &u, NULL);
	if (rc == 1)
		directory_user_clear(&u);
	else if (rc < 0)
		directory_store_error(dir, NULL);
	return rc;
}

int
directory_user_get(struct directory *dir, const char *address,
    struct directory_user *user_r)
{
	int rc;

	memset(user_r, 0, sizeof(*user_r));
	if ((rc = dir->be->user_get(dir->store, address, user_r, NULL)) < 0)
		directory_store_error(dir, NULL);
	return rc;
}

/* Is address (normalised) the source of at least one alias? 1, 0, -1. */
static int
alias_exists(struct directory *dir, const char *address)
{
	struct directory_strings t = { 0 };
	int rc = dir->be->alias_targets(dir->store, address, &t);

	directory_strings_clear(&t);
	return rc;
}

/* Hash a password that passed the policy. 0, or -1 with the message. */
static int
hash_password(const char *password, char hash_r[HASH_MAX], char **error_r)
{
	if (password_hash(password, hash_r, HASH_MAX) != 0)
		return directory_fail(error_r, "cannot hash the password (out of memory?)");
	return 0;
}

int
directory_user_add(struct directory *dir, const struct config *cfg,
    const char *address, const char *password, const char *contact,
    bool confirmed, char **error_r)
{
	struct directory_user u = { 0 };
	struct directory_addr a, c;
	char hash[HASH_MAX], b[DIRECTORY_SHOW_MAX];
	const char *why;
	int rc;

	if (addr_parse_local(cfg, "address", address, &a, error_r) != 0)
		return -1;
	if (contact != NULL) {
		if ((why = directory_addr_parse(contact, true, &c)) != NULL)
			return directory_fail(error_r, "invalid contact %s: %s",
			    DIRECTORY_SHOW(b, contact), why);
		/* The contact confirms the account: it cannot be the account. */
		if (strcasecmp(c.full, a.full) == 0)
			return directory_fail(error_r,
			    "the contact must be another address than the account");
	}
	if (password_policy_check(&cfg->security_policy, a.full, password, &why) != 0)
		return directory_fail(error_r, "%s", why);
	if ((rc = directory_user_exists(dir, a.full)) != 0)
		return rc < 0 ? directory_store_error(dir, error_r) :
		    directory_fail(error_r, "user %s exists", a.full);
	/* One address, one meaning: an account would silently shadow the alias. */
	if ((rc = alias_exists(dir, a.full)) != 0)
		return rc < 0 ? directory_store_error(dir, error_r) :
		    directory_fail(error_r, "%s is an alias; remove it first (alias del %s)",
		    a.full, a.full);
	if (hash_password(password, hash, error_r) != 0)
		return -1;
	u.address = a.full;
	u.contact = contact != NULL ? c.full : NULL;
	u.confirmed = confirmed;
	u.created = (int64_t)time(NULL);
	rc = dir->be->user_insert(dir->store, &u, hash);
	sodium_memzero(hash, sizeof(hash));
	if (rc < 0)
		return directory_store_error(dir, error_r);
	if (rc == 0)
		return directory_fail(error_r, "user %s exists", a.full);
	log_info("event=user_added account=%s confirmed=%s", a.full,
	    confirmed ? "yes" : "no");
	return 0;
}

/* 0 when the change touched the account, else the message. */
static int
user_changed(struct directory *dir, int rc, const char *address, char **error_r)
{
	char b[DIRECTORY_SHOW_MAX];

	if (rc < 0)
		return directory_store_error(dir, error_r);
	if (rc == 0)
		return directory_fail(error_r, "no such user %s", DIRECTORY_SHOW(b, address));
	return 0;
}

int
directory_user_del(struct directory *dir, const char *address, char **error_r)
{
	char b[DIRECTORY_SHOW_MAX];

	if (user_changed(dir, dir->be->user_delete(dir->store, address), address,
	    error_r) != 0)
		return -1;
	/* XXX aliases pointing here stay; resolve skips them with a warning. */
	log_info("event=user_deleted account=%s", DIRECTORY_LOGSAFE(b, address));
	return 0;
}

int
directory_user_set_password(struct directory *dir, const struct config *cfg,
    const char *address, const char *password, char **error_r)
{
	struct directory_user u;
	char hash[HASH_MAX], b[DIRECTORY_SHOW_MAX];
	const char *why;
	int rc;

	if ((rc = directory_user_get(dir, address, &u)) <= 0)
		return rc < 0 ? directory_store_error(dir, error_r) :
		    directory_fail(error_r, "no such user %s", DIRECTORY_SHOW(b, address));
	rc = password_policy_check(&cfg->security_policy, u.address, password, &why);
	if (rc != 0) {
		directory_user_clear(&u);
		return directory_fail(error_r, "%s", why);
	}
	if (hash_password(password, hash, error_r) != 0) {
		directory_user_clear(&u);
		return -1;
	}
	rc = dir->be->user_set_hash(dir->store, u.address, hash);
	sodium_memzero(hash, sizeof(hash));
	if (user_changed(dir, rc, u.address, error_r) == 0)
		log_info("event=user_password_changed account=%s", u.address);
	else
		rc = -1;
	directory_user_clear(&u);
	return rc < 0 ? -1 : 0;
}

int
directory_user_set_flag(struct directory *dir, const char *address,
    const char *flag, bool value, char **error_r)
{
	char b[DIRECTORY_SHOW_MAX];
	enum directory_flag f;

	if (strcmp(flag, "confirmed") == 0)
		f = DIRECTORY_FLAG_CONFIRMED;
	else if (strcmp(flag, "suspended") == 0)
		f = DIRECTORY_FLAG_SUSPENDED;
	else
		return directory_fail(error_r, "unknown account flag %s", DIRECTORY_SHOW(b, flag));
	if (user_changed(dir, dir->be->user_set_flag(dir->store, address, f, value),
	    address, error_r) != 0)
		return -1;
	log_info("event=user_flag account=%s %s=%s", DIRECTORY_LOGSAFE(b, address), flag,
	    value ? "yes" : "no");
	return 0;
}

int
directory_user_set_limits(struct directory *dir, const char *address, int messages,
    int recipients, char **error_r)
{
	char b[DIRECTORY_SHOW_MAX];

	if (user_changed(dir, dir->be->user_set_limits(dir->store, address,
	    messages < 0 ? -1 : messages, recipients < 0 ? -1 : recipients), address, error_r) != 0)
		return -1;
	log_info("event=user_limits account=%s messages_per_hour=%d recipients_per_hour=%d",
	    DIRECTORY_LOGSAFE(b, address), messages, recipients);
	return 0;
}

int
directory_user_unlock(struct directory *dir, const char *address, char **error_r)
{
	char b[DIRECTORY_SHOW_MAX];

	if (user_changed(dir, dir->be->user_unlock(dir->store, address), address,
	    error_r) != 0)
		return -1;
	log_info("event=user_unlocked account=%s", DIRECTORY_LOGSAFE(b, address));
	return 0;
}

int
directory_user_list(struct directory *dir, struct directory_user **users_r,
    size_t *n_r, char **error_r)
{
	*users_r = NULL;
	*n_r = 0;
	if (dir->be->user_list(dir->store, users_r, n_r) != 0)
		return directory_store_error(dir, error_r);
	return 0;
}

int
directory_user_verify_password(struct directory *dir, const char *address,
    const char *password)
{
	struct directory_user u;
	char *hash = NULL;
	int rc;

	rc = dir->be->user_get(dir->store, address, &u, &hash);
	if (rc < 0)
		return directory_store_error(dir, NULL);
	if (rc == 1) {
		directory_user_clear(&u);
		rc = password_verify(hash, password);
		free(hash);
		return rc;
	}
	/*
	 * No such account: spend the same time on a hash anyway, so the
	 * answer's delay does not tell which addresses exist.
	 */
	(void)password_verify_dummy(password);
	return 0;
}

/* ---- aliases ---- */

/*
 * Expansion of aliases into the addresses that receive. path holds the
 * aliases being expanded (a repeat is a loop), done the ones finished (a
 * repeat is a diamond, already counted). needle: set hit when an address
 * equal to it is met (alias add's loop check); quiet: log nothing.
 */
struct walk {
	struct directory *dir;
	const struct config *cfg;
	const char *origin;               /* the recipient, for logs */
	struct directory_strings *out;
	struct directory_strings path, done;
	const char *needle;
	bool hit, quiet;
};

static void walk_warn(const struct walk *w, const char *event,
    const char *target, const char *why);

static void
walk_warn(const struct walk *w, const char *event, const char *target,
    const char *why)
{
	char b1[DIRECTORY_SHOW_MAX], b2[DIRECTORY_SHOW_MAX];

	if (!w->quiet)
		log_warnx("event=%s recipient=%s target=%s reason=\"%s\"", event,
		    DIRECTORY_LOGSAFE(b1, w->origin), DIRECTORY_LOGSAFE(b2, target), why);
}

static int
walk_add(struct walk *w, const char *address)
{
	if (strings_has(w->out, address))
		return 0;
	return directory_strings_add(w->out, address);
}

/*
 * Expand the alias source (normalised) at depth (1 = the recipient).
 * 0 ok, -1 store error, -2 out of memory.
 */
static int
walk_alias(struct walk *w, const char *source, int depth)
{
	struct directory_strings targets = { 0 };
	struct directory_user u;
	struct directory_addr a;
	int rc = 0;

	if (directory_strings_add(&w->path, source) != 0)
		return -2;
	if (w->dir->be->alias_targets(w->dir->store, source, &targets) < 0) {
		rc = -1;
		goto done;
	}
	for (size_t i = 0; i < targets.n && !w->hit; i++) {
		const char *t = targets.v[i], *why;
		int got;

		if ((why = directory_addr_parse(t, false, &a)) != NULL) {
			walk_warn(w, "alias_target_invalid", t, why);
			continue;
		}
		if (w->needle != NULL && strcasecmp(a.full, w->needle) == 0) {
			w->hit = true;
			break;
		}
		if (!config_is_local_domain(w->cfg, a.domain)) {
			if (walk_add(w, a.full) != 0)
				goto oom;
			continue;
		}
		/* An account wins over an alias of the same address. */
		if ((got = w->dir->be->user_get(w->dir->store, a.full, &u, NULL)) < 0) {
			rc = -1;
			goto done;
		}
		if (got == 1) {
			got = walk_add(w, u.address);
			directory_user_clear(&u);
			if (got != 0)
				goto oom;
			continue;
		}
		if (strings_has(&w->path, a.full)) {
			walk_warn(w, "alias_loop", a.full, "alias loop cut");
			continue;
		}
		if (strings_has(&w->done, a.full))
			continue;
		if ((got = alias_exists(w->dir, a.full)) < 0) {
			rc = -1;
			goto done;
		}
		if (got == 0) {
			walk_warn(w, "alias_target_missing", a.full,
			    "no such account or alias, skipped");
			continue;
		}
		if (depth >= ALIAS_DEPTH_MAX) {
			walk_warn(w, "alias_too_deep", a.full,
			    "more than 8 levels of aliases, cut");
			continue;
		}
		if ((rc = walk_alias(w, a.full, depth + 1)) != 0)
			goto done;
	}
	free(w->path.v[--w->path.n]);
	if (directory_strings_add(&w->done, source) != 0)
		rc = -2;
	directory_strings_clear(&targets);
	return rc;
oom:
	rc = -2;
done:
	directory_strings_clear(&targets);
	return rc;
}

int
directory_resolve(struct directory *dir, const struct config *cfg,
    const char *local, const char *domain, struct directory_strings *targets_r)
{
	struct walk w = { .dir = dir, .cfg = cfg, .out = targets_r };
	struct directory_user u;
	char address[ADDRESS_MAX + 1 + 8];
	int rc;

	targets_r->v = NULL;
	targets_r->n = 0;
	if ((size_t)snprintf(address, sizeof(address), "%s@%s", local, domain) >=
	    sizeof(address))
		return 0; /* longer than any address we store */
	w.origin = address;
	if ((rc = dir->be->user_get(dir->store, address, &u, NULL)) != 0) {
		if (rc < 0)
			return directory_store_error(dir, NULL);
		rc = directory_strings_add(targets_r, u.address);
		directory_user_clear(&u);
		return rc == 0 ? 1 : -1;
	}
	if ((rc = alias_exists(dir, address)) <= 0)
		return rc < 0 ? directory_store_error(dir, NULL) : 0;
	rc = walk_alias(&w, address, 1);
	directory_strings_clear(&w.path);
	directory_strings_clear(&w.done);
	if (rc != 0) {
		directory_strings_clear(targets_r);
		if (rc == -2) {
			log_warnx("event=directory_error error=\"out of memory\"");
			return -1;
		}
		return directory_store_error(dir, NULL);
	}
	if (targets_r->n == 0) {
		char b[DIRECTORY_SHOW_MAX];

		log_warnx("event=alias_undeliverable recipient=%s reason=\"no target "
		    "of the alias receives mail\"", DIRECTORY_LOGSAFE(b, address));
		return 0;
	}
	return 1;
}

int
directory_alias_add(struct directory *dir, const struct config *cfg,
    const char *source, const char *target, char **error_r)
{
	struct directory_strings out = { 0 };
	struct directory_addr s, t;
	char b[DIRECTORY_SHOW_MAX];
	const char *why;
	bool local;
	int rc;

	if (source != NULL && source[0] == '@')
		return directory_fail(error_r, "catch-all aliases (%s) are not supported: they "
		    "take mail for every address, which invites dictionary spam and "
		    "backscatter; add one alias per address", DIRECTORY_SHOW(b, source));
	if (addr_parse_local(cfg, "alias source", source, &s, error_r) != 0)
		return -1;
	if ((why = directory_addr_parse(target, false, &t)) != NULL)
		return directory_fail(error_r, "invalid alias target %s: %s",
		    DIRECTORY_SHOW(b, target), why);
	local = config_is_local_domain(cfg, t.domain);
	if (!local && strchr(t.domain, '.') == NULL)
		return directory_fail(error_r, "invalid alias target %s: domain has no dot", t.full);
	if (strcasecmp(s.full, t.full) == 0)
		return directory_fail(error_r, "alias %s -> %s would make a loop", s.full, t.full);
	/* One address, one meaning: the account would silently win. */
	if ((rc = directory_user_exists(dir, s.full)) != 0)
		return rc < 0 ? directory_store_error(dir, error_r) :
		    directory_fail(error_r, "%s is an account; an alias cannot share its address",
		    s.full);
	if (local) {
		/* A typo here would lose mail quietly: the target must exist. */
		if ((rc = directory_user_exists(dir, t.full)) < 0)
			return directory_store_error(dir, error_r);
		if (rc == 0) {
			if ((rc = alias_exists(dir, t.full)) < 0)
				return directory_store_error(dir, error_r);
			if (rc == 0)
				return directory_fail(error_r, "alias target %s is neither an account "
				    "nor an alias (add it first)", t.full);
			struct walk w = { .dir = dir, .cfg = cfg, .origin = t.full,
			    .out = &out, .needle = s.full, .quiet = true };
			rc = walk_alias(&w, t.full, 1);
			directory_strings_clear(&out);
			directory_strings_clear(&w.path);
			directory_strings_clear(&w.done);
			if (rc == -1)
				return directory_store_error(dir, error_r);
			if (rc != 0)
				return directory_fail(error_r, "out of memory");
			if (w.hit)
				return directory_fail(error_r, "alias %s -> %s would make a loop (%s "
				    "leads back to %s)", s.full, t.full, t.full, s.full);
		}
	}
	if ((rc = dir->be->alias_insert(dir->store, s.full, t.full)) < 0)
		return directory_store_error(dir, error_r);
	if (rc == 0)
		return directory_fail(error_r, "alias %s -> %s exists", s.full, t.full);
	log_info("event=alias_added source=%s target=%s", s.full, t.full);
	return 0;
}

int
directory_alias_del(struct directory *dir, const char *source,
    const char *target, char **error_r)
{
	struct directory_addr s, t;
	char b1[DIRECTORY_SHOW_MAX], b2[DIRECTORY_SHOW_MAX];
	int rc;

	/* Normalise what parses; anything else is looked up as given. */
	if (directory_addr_parse(source, false, &s) == NULL)
		source = s.full;
	if (target != NULL && directory_addr_parse(target, false, &t) == NULL)
		target = t.full;
	if ((rc = dir->be->alias_delete(dir->store, source, target)) < 0)
		return directory_store_error(dir, error_r);
	if (rc == 0)
		return target == NULL ?
		    directory_fail(error_r, "no alias %s", DIRECTORY_SHOW(b1, source)) :
		    directory_fail(error_r, "no alias %s -> %s", DIRECTORY_SHOW(b1, source),
		    DIRECTORY_SHOW(b2, target));
	log_info("event=alias_deleted source=%s target=%s removed=%d",
	    DIRECTORY_LOGSAFE(b1, source),
	    target != NULL ? DIRECTORY_LOGSAFE(b2, target) : "*", rc);
	return 0;
}

int
directory_alias_list(struct directory *dir, struct directory_strings *list_r,
    char **error_r)
{
	list_r->v = NULL;
	list_r->n = 0;
	if (dir->be->alias_list(dir->store, list_r) != 0) {
		directory_strings_clear(list_r);
		return directory_store_error(dir, error_r);
	}
	return 0;
}

/* ---- counts and change polling ---- */

int
directory_stats(struct directory *dir, int64_t now, struct directory_stats *st_r)
{
	if (dir->be->stats(dir->store, now, st_r) != 0)
		return directory_store_error(dir, NULL);
	return 0;
}

int
directory_changed(struct directory *dir)
{
	int64_t version;
	bool changed;

	if (dir->be->data_version(dir->store, &version) != 0)
		return directory_store_error(dir, NULL);
	changed = dir->have_data_version && version != dir->data_version;
	dir->data_version = version;
	dir->have_data_version = true;
	return changed ? 1 : 0;
}
