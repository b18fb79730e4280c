/*
 * test_directory_auth.c: logins (directory_auth), lockout and its two
 * softenings (known IPs, the same wrong password counted once), confirmed
 * accounts, senders an account may use, confirmation tokens, stored bans
 * and change polling. Lockout scenarios are tables of steps; every step
 * asserts the result and the reason flags (counted, repeat, locked_now,
 * known_ip), not only the verdict. Time is passed in, so expiry is a number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "directory/directory.h"

#define RIGHT "Correct-Horse-Battery-9"
#define T0 1800000000LL          /* "now" at the start of every scenario */
#define HOUR 3600
#define DAY 86400
#define IP_A "192.0.2.10"
#define IP_B "198.51.100.20"
#define IP_C "203.0.113.30"
#define ALICE "alice@example.test"

struct fixture {
	char root[64];
	char data_dir[96];
	char db_path[128];
	struct config cfg;
	struct directory *dir;
};

static char domain_test[] = "example.test";
static char *local_domains[] = { domain_test };
static char cfg_path[] = "(test)";

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* The defaults of etc/bulwark.yaml, which the incident report asked for. */
static void
default_config(struct fixture *f)
{
	f->cfg = (struct config){
		.path = cfg_path,
		.domains = local_domains,
		.ndomains = 1,
		.data_dir = f->data_dir,
		.security_policy = {
			.require_email_confirmation = true,
			.max_failed_login_attempts = 3,
			.account_lockout_duration_minutes = 60,
			.minimum_password_length = 12,
			.require_password_complexity = true,
			.disable_smtp_auth_for_unconfirmed = true,
		},
		.intrusion_prevention = { .enabled = true, .maxretry = 5, .findtime = 300,
		    .bantime = 3600, .bantime_max = 604800, .ipv6_prefix = 64 },
		.accounts = { .confirmation_ttl_hours = 24, .known_ip_days = 30 },
	};
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *error = NULL;

	assert_non_null(f);
	strcpy(f->root, "/tmp/test_directory_auth.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->data_dir, sizeof(f->data_dir), "%s/data", f->root);
	snprintf(f->db_path, sizeof(f->db_path), "%s/bulwark.db", f->data_dir);
	default_config(f);
	if (directory_open(f->data_dir, &f->dir, &error) != 0)
		fail_msg("directory_open: %s", error);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	directory_free(&f->dir);
	nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void
add_user(struct fixture *f, const char *address, bool confirmed, const char *contact)
{
	char *error = NULL;

	if (directory_user_add(f->dir, &f->cfg, address, RIGHT, contact, confirmed,
	    &error) != 0)
		fail_msg("user add %s: %s", address, error);
}

static void
add_alias(struct fixture *f, const char *source, const char *target)
{
	char *error = NULL;

	if (directory_alias_add(f->dir, &f->cfg, source, target, &error) != 0)
		fail_msg("alias add %s %s: %s", source, target, error);
}

/* ---- lockout scenarios ---- */

enum act {
	ACT_END = 0,       /* the rest of the table is empty */
	ACT_AUTH,
	ACT_UNLOCK,        /* bulwarkctl user unlock */
};

/* Reason flags of an outcome. */
enum {
	F_COUNTED = 1 << 0,
	F_REPEAT = 1 << 1,
	F_LOCKED_NOW = 1 << 2,
	F_KNOWN = 1 << 3,
	F_SUSPENDED = 1 << 4,
};

struct step {
	enum act act;
	const char *why;          /* what this step shows, for the failure message */
	const char *user;         /* NULL: alice */
	const char *password;     /* NULL: the right one */
	const char *ip;           /* NULL: IP_A */
	int64_t at;               /* seconds after T0 */
	enum directory_auth_result expect;
	unsigned flags;           /* F_*: exactly these */
	int failed;               /* failed_logins after the step */
	int64_t locked_at;        /* the lock began at T0 + this (0: not locked; lock at >= 1) */
};

struct scenario {
	const char *name;
	int max_failed;           /* 0: the default 3; -1: 0 (never lock) */
	int known_ip_days;        /* 0: the default 30; -1: 0 (no exception) */
	bool unconfirmed;         /* alice is created unconfirmed */
	bool suspended;
	bool confirmation_off;    /* both confirmation switches false */
	struct step steps[16];
};

#define AUTH(...) { .act = ACT_AUTH, __VA_ARGS__ }

static const struct scenario scenarios[] = {
	{ .name = "three failures lock, then the right password is refused", .steps = {
		AUTH(.why = "first failure", .password = "Wrong-1", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 1),
		AUTH(.why = "second", .password = "Wrong-2", .at = 10,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 2),
		AUTH(.why = "third locks", .password = "Wrong-3", .at = 20,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED | F_LOCKED_NOW,
		    .failed = 3, .locked_at = 20),
		AUTH(.why = "right password while locked", .at = 30,
		    .expect = DIRECTORY_AUTH_LOCKED, .failed = 3, .locked_at = 20),
		AUTH(.why = "wrong password while locked: not counted, lock not extended",
		    .password = "Wrong-4", .at = 40, .expect = DIRECTORY_AUTH_LOCKED,
		    .failed = 3, .locked_at = 20),
		AUTH(.why = "one second before expiry", .at = 20 + HOUR - 1,
		    .expect = DIRECTORY_AUTH_LOCKED, .failed = 3, .locked_at = 20),
		AUTH(.why = "at expiry the lock and its count are gone", .at = 20 + HOUR,
		    .expect = DIRECTORY_AUTH_OK, .failed = 0),
		} },
	{ .name = "success resets the count", .steps = {
		AUTH(.password = "Wrong-1", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 1),
		AUTH(.password = "Wrong-2", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 2),
		AUTH(.why = "success", .expect = DIRECTORY_AUTH_OK, .failed = 0),
		AUTH(.why = "counting starts again", .password = "Wrong-3",
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED | F_KNOWN, .failed = 1),
		AUTH(.password = "Wrong-4", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED | F_KNOWN, .failed = 2),
		} },
	{ .name = "unlock resets", .steps = {
		AUTH(.password = "Wrong-1", .at = 1, .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 1),
		AUTH(.password = "Wrong-2", .at = 2, .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 2),
		AUTH(.password = "Wrong-3", .at = 3, .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED | F_LOCKED_NOW, .failed = 3, .locked_at = 3),
		AUTH(.why = "locked", .at = 4, .expect = DIRECTORY_AUTH_LOCKED, .failed = 3,
		    .locked_at = 3),
		{ .act = ACT_UNLOCK, .why = "admin unlocks" },
		AUTH(.why = "right password after unlock", .at = 60, .expect = DIRECTORY_AUTH_OK),
		} },
	{ .name = "the same wrong password from the same IP counts once", .steps = {
		AUTH(.why = "phone with an old password", .password = "Old-Password-1",
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 1),
		AUTH(.why = "again", .password = "Old-Password-1", .at = 60,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_REPEAT, .failed = 1),
		AUTH(.why = "and again", .password = "Old-Password-1", .at = 120,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_REPEAT, .failed = 1),
		AUTH(.why = "and again", .password = "Old-Password-1", .at = 600,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_REPEAT, .failed = 1),
		AUTH(.why = "same password from another IP counts", .password = "Old-Password-1",
		    .ip = IP_B, .at = 700, .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 2),
		AUTH(.why = "a different wrong password counts", .password = "Old-Password-2",
		    .at = 800, .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED | F_LOCKED_NOW, .failed = 3, .locked_at = 800),
		} },
	{ .name = "a repeat outside the lockout window counts again", .steps = {
		AUTH(.password = "Old-Password-1", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 1),
		AUTH(.password = "Old-Password-1", .at = HOUR - 1,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_REPEAT, .failed = 1),
		AUTH(.why = "an hour later", .password = "Old-Password-1", .at = HOUR + 1,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 2),
		} },
	{ .name = "known IP is not locked out by another IP's failures", .steps = {
		AUTH(.why = "A logs in", .expect = DIRECTORY_AUTH_OK),
		AUTH(.password = "Guess-1", .ip = IP_B, .at = 100,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 1),
		AUTH(.password = "Guess-2", .ip = IP_B, .at = 110,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 2),
		AUTH(.why = "B locks the account", .password = "Guess-3", .ip = IP_B, .at = 120,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED | F_LOCKED_NOW,
		    .failed = 3, .locked_at = 120),
		AUTH(.why = "A still gets in", .at = 130, .expect = DIRECTORY_AUTH_OK,
		    .flags = F_KNOWN, .failed = 3, .locked_at = 120),
		AUTH(.why = "B, even with the right password, does not", .ip = IP_B, .at = 140,
		    .expect = DIRECTORY_AUTH_LOCKED, .failed = 3, .locked_at = 120),
		AUTH(.why = "nor a new IP", .ip = IP_C, .at = 150,
		    .expect = DIRECTORY_AUTH_LOCKED, .failed = 3, .locked_at = 120),
		AUTH(.why = "A's typo while locked counts", .password = "Typo-1", .at = 160,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED | F_KNOWN,
		    .failed = 4, .locked_at = 120),
		AUTH(.why = "A again", .at = 170, .expect = DIRECTORY_AUTH_OK,
		    .flags = F_KNOWN, .failed = 4, .locked_at = 120),
		} },
	{ .name = "a known IP that caused the lock itself is locked out", .steps = {
		AUTH(.why = "A logs in", .expect = DIRECTORY_AUTH_OK),
		AUTH(.password = "Wrong-1", .at = 100, .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED | F_KNOWN, .failed = 1),
		AUTH(.password = "Wrong-2", .at = 110, .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED | F_KNOWN, .failed = 2),
		AUTH(.password = "Wrong-3", .at = 120, .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED | F_KNOWN | F_LOCKED_NOW, .failed = 3, .locked_at = 120),
		AUTH(.why = "A with the right password", .at = 130,
		    .expect = DIRECTORY_AUTH_LOCKED, .flags = F_KNOWN, .failed = 3,
		    .locked_at = 120),
		} },
	{ .name = "a known IP is forgotten after known_ip_days", .steps = {
		AUTH(.why = "A logs in", .expect = DIRECTORY_AUTH_OK),
		AUTH(.password = "Guess-1", .ip = IP_B, .at = 31 * DAY,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 1),
		AUTH(.password = "Guess-2", .ip = IP_B, .at = 31 * DAY,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 2),
		AUTH(.password = "Guess-3", .ip = IP_B, .at = 31 * DAY,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED | F_LOCKED_NOW,
		    .failed = 3, .locked_at = 31 * DAY),
		AUTH(.why = "A, 31 days on", .at = 31 * DAY + 1,
		    .expect = DIRECTORY_AUTH_LOCKED, .failed = 3, .locked_at = 31 * DAY),
		} },
	{ .name = "known_ip_days 0 turns the exception off", .known_ip_days = -1, .steps = {
		AUTH(.why = "A logs in", .expect = DIRECTORY_AUTH_OK),
		AUTH(.password = "Guess-1", .ip = IP_B, .at = 1,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 1),
		AUTH(.password = "Guess-2", .ip = IP_B, .at = 2,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 2),
		AUTH(.password = "Guess-3", .ip = IP_B, .at = 3,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED | F_LOCKED_NOW,
		    .failed = 3, .locked_at = 3),
		AUTH(.why = "A", .at = 10, .expect = DIRECTORY_AUTH_LOCKED, .failed = 3,
		    .locked_at = 3),
		} },
	{ .name = "max_failed_login_attempts 0 never locks", .max_failed = -1, .steps = {
		AUTH(.password = "Wrong-1", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 1),
		AUTH(.password = "Wrong-2", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 2),
		AUTH(.password = "Wrong-3", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 3),
		AUTH(.password = "Wrong-4", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED, .failed = 4),
		AUTH(.expect = DIRECTORY_AUTH_OK),
		} },
	{ .name = "unknown user", .steps = {
		AUTH(.user = "nobody@example.test", .expect = DIRECTORY_AUTH_UNKNOWN_USER),
		AUTH(.user = "nobody@elsewhere.example", .expect = DIRECTORY_AUTH_UNKNOWN_USER),
		AUTH(.user = "not an address", .expect = DIRECTORY_AUTH_UNKNOWN_USER),
		AUTH(.user = "", .expect = DIRECTORY_AUTH_UNKNOWN_USER),
		AUTH(.why = "case does not matter", .user = "ALICE@Example.TEST",
		    .expect = DIRECTORY_AUTH_OK),
		} },
	{ .name = "unconfirmed account", .unconfirmed = true, .steps = {
		AUTH(.why = "right password", .expect = DIRECTORY_AUTH_UNCONFIRMED),
		AUTH(.why = "wrong password counts as usual", .password = "Wrong-1",
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 1),
		AUTH(.why = "no known IP was remembered", .password = "Wrong-2", .ip = IP_A,
		    .expect = DIRECTORY_AUTH_BAD_PASSWORD, .flags = F_COUNTED, .failed = 2),
		} },
	{ .name = "unconfirmed account with confirmation switched off", .unconfirmed = true,
	  .confirmation_off = true, .steps = {
		AUTH(.expect = DIRECTORY_AUTH_OK),
		} },
	{ .name = "suspended account logs in (reading works; sending is refused)",
	  .suspended = true, .steps = {
		AUTH(.expect = DIRECTORY_AUTH_OK, .flags = F_SUSPENDED),
		AUTH(.password = "Wrong-1", .expect = DIRECTORY_AUTH_BAD_PASSWORD,
		    .flags = F_COUNTED | F_KNOWN, .failed = 1),
		} },
};

static void
check_step(const struct scenario *sc, size_t i, const struct step *s,
    const struct directory_auth_outcome *o)
{
	unsigned flags = (o->counted ? F_COUNTED : 0) | (o->repeat ? F_REPEAT : 0) |
	    (o->locked_now ? F_LOCKED_NOW : 0) | (o->known_ip ? F_KNOWN : 0) |
	    (o->suspended ? F_SUSPENDED : 0);
	int64_t want_lock = s->locked_at != 0 ? T0 + s->locked_at + HOUR : 0;

	if (o->result != s->expect)
		fail_msg("%s, step %zu (%s): result %s, expected %s", sc->name, i,
		    s->why ? s->why : "-", directory_auth_result_name(o->result),
		    directory_auth_result_name(s->expect));
	if (flags != s->flags)
		fail_msg("%s, step %zu (%s): flags %#x, expected %#x", sc->name, i,
		    s->why ? s->why : "-", flags, s->flags);
	if (s->expect != DIRECTORY_AUTH_UNKNOWN_USER && (o->failed_logins != s->failed ||
	    o->locked_until != want_lock))
		fail_msg("%s, step %zu (%s): failed %d locked_until %lld, expected %d %lld",
		    sc->name, i, s->why ? s->why : "-", o->failed_logins,
		    (long long)o->locked_until, s->failed, (long long)want_lock);
	if (s->expect == DIRECTORY_AUTH_UNKNOWN_USER)
		assert_string_equal(o->account, "");
	else
		assert_string_equal(o->account, ALICE);
}

static void
test_lockout_scenarios(void **state)
{
	struct fixture *f = *state;

	for (size_t k = 0; k < sizeof(scenarios) / sizeof(scenarios[0]); k++) {
		const struct scenario *sc = &scenarios[k];
		struct directory_auth_outcome o;
		char *error = NULL;

		default_config(f);
		if (sc->max_failed != 0)
			f->cfg.security_policy.max_failed_login_attempts =
			    sc->max_failed < 0 ? 0 : sc->max_failed;
		if (sc->known_ip_days != 0)
			f->cfg.accounts.known_ip_days = sc->known_ip_days < 0 ? 0 :
			    sc->known_ip_days;
		if (sc->confirmation_off) {
			f->cfg.security_policy.require_email_confirmation = false;
			f->cfg.security_policy.disable_smtp_auth_for_unconfirmed = false;
		}
		if (directory_user_exists(f->dir, ALICE) == 1)
			assert_int_equal(directory_user_del(f->dir, ALICE, &error), 0);
		add_user(f, ALICE, !sc->unconfirmed, "alice@home.example");
		if (sc->suspended)
			assert_int_equal(directory_user_set_flag(f->dir, ALICE, "suspended",
			    true, &error), 0);
		for (size_t i = 0; i < 16 && sc->steps[i].act != ACT_END; i++) {
			const struct step *s = &sc->steps[i];

			if (s->act == ACT_UNLOCK) {
				assert_int_equal(directory_user_unlock(f->dir, ALICE, &error), 0);
				continue;
			}
			assert_int_equal(directory_auth(f->dir, &f->cfg,
			    s->user != NULL ? s->user : ALICE,
			    s->password != NULL ? s->password : RIGHT,
			    s->ip != NULL ? s->ip : IP_A, T0 + s->at, &o), 0);
			check_step(sc, i, s, &o);
			if (s->expect != DIRECTORY_AUTH_UNKNOWN_USER)
				assert_string_equal(o.contact, "alice@home.example");
		}
	}
}

/* The expiry case, stepped by hand: the lock ends at T0 + 1 + HOUR exactly. */
static void
test_lock_expiry(void **state)
{
	struct fixture *f = *state;
	struct directory_auth_outcome o;
	struct directory_user u;

	add_user(f, ALICE, true, NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(directory_auth(f->dir, &f->cfg, ALICE, i == 0 ? "W-1" :
		    i == 1 ? "W-2" : "W-3", IP_B, T0, &o), 0);
	assert_true(o.locked_now);
	assert_int_equal(o.locked_until, T0 + HOUR);
	assert_int_equal(directory_user_get(f->dir, ALICE, &u), 1);
	assert_int_equal(u.locked_until, T0 + HOUR);
	assert_int_equal(u.failed_logins, 3);
	directory_user_clear(&u);
	assert_int_equal(directory_auth(f->dir, &f->cfg, ALICE, RIGHT, IP_B,
	    T0 + HOUR - 1, &o), 0);
	assert_int_equal(o.result, DIRECTORY_AUTH_LOCKED);
	/* At expiry: a wrong password starts a fresh count instead of locking. */
	assert_int_equal(directory_auth(f->dir, &f->cfg, ALICE, "W-4", IP_B,
	    T0 + HOUR, &o), 0);
	assert_int_equal(o.result, DIRECTORY_AUTH_BAD_PASSWORD);
	assert_true(o.counted);
	assert_int_equal(o.failed_logins, 1);
	assert_int_equal(o.locked_until, 0);
	assert_int_equal(directory_auth(f->dir, &f->cfg, ALICE, RIGHT, IP_B,
	    T0 + HOUR + 1, &o), 0);
	assert_int_equal(o.result, DIRECTORY_AUTH_OK);
	assert_int_equal(o.failed_logins, 0);
	assert_int_equal(directory_user_get(f->dir, ALICE, &u), 1);
	assert_int_equal(u.locked_until, 0);
	assert_int_equal(u.failed_logins, 0);
	directory_user_clear(&u);
}

static void
test_result_names(void **state)
{
	static const struct {
		enum directory_auth_result r;
		const char *name;
	} names[] = {
		{ .r = DIRECTORY_AUTH_OK, .name = "ok" },
		{ .r = DIRECTORY_AUTH_BAD_PASSWORD, .name = "bad_password" },
		{ .r = DIRECTORY_AUTH_UNKNOWN_USER, .name = "unknown_user" },
		{ .r = DIRECTORY_AUTH_LOCKED, .name = "locked" },
		{ .r = DIRECTORY_AUTH_UNCONFIRMED, .name = "unconfirmed" },
		{ .r = DIRECTORY_AUTH_ERROR, .name = "error" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(directory_auth_result_name(names[i].r), names[i].name);
}

/* ---- the database never holds a password or a token in clear ---- */

/* Does the database (file and WAL) contain these bytes? */
static bool
db_contains(const struct fixture *f, const void *needle, size_t len)
{
	static const char *const suffixes[] = { "", "-wal" };
	bool found = false;

	for (size_t i = 0; i < 2 && !found; i++) {
		char path[160];
		FILE *fp;
		char *buf;
		long size;

		snprintf(path, sizeof(path), "%s%s", f->db_path, suffixes[i]);
		if ((fp = fopen(path, "rb")) == NULL)
			continue;
		fseek(fp, 0, SEEK_END);
		size = ftell(fp);
		rewind(fp);
		buf = malloc((size_t)size + 1);
		assert_non_null(buf);
		assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
		fclose(fp);
		found = memmem(buf, (size_t)size, needle, len) != NULL;
		free(buf);
	}
	return found;
}

static void
test_wrong_password_not_stored(void **state)
{
	struct fixture *f = *state;
	struct directory_auth_outcome o;
	static const char wrong[] = "Wrong-But-Telling-Password-42";

	add_user(f, ALICE, true, NULL);
	assert_int_equal(directory_auth(f->dir, &f->cfg, ALICE, wrong, IP_A, T0, &o), 0);
	assert_true(o.counted);
	assert_false(db_contains(f, wrong, strlen(wrong)));
	assert_false(db_contains(f, RIGHT, strlen(RIGHT)));
}

/* ---- concurrency: worker threads, each with its own handle ---- */

#define THREADS 4
#define ATTEMPTS 20

struct worker {
	struct fixture *f;
	int id;
	int results[DIRECTORY_AUTH_ERROR + 1];
	int counted, locked_now, errors;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct directory *dir = NULL;
	char *error = NULL, password[64], ip[32];

	if (directory_open(w->f->data_dir, &dir, &error) != 0) {
		w->errors++;
		free(error);
		return NULL;
	}
	snprintf(ip, sizeof(ip), "192.0.2.%d", 100 + w->id);
	for (int i = 0; i < ATTEMPTS; i++) {
		struct directory_auth_outcome o;

		snprintf(password, sizeof(password), "Wrong-%d-%d", w->id, i);
		if (directory_auth(dir, &w->f->cfg, ALICE, password, ip, T0 + i, &o) != 0)
			w->errors++;
		w->results[o.result]++;
		w->counted += o.counted;
		w->locked_now += o.locked_now;
	}
	directory_free(&dir);
	return NULL;
}

/* Run THREADS workers at once; sum their tallies into total. */
static void
run_workers(struct fixture *f, struct worker *total)
{
	pthread_t t[THREADS];
	struct worker w[THREADS];

	memset(total, 0, sizeof(*total));
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .f = f, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		for (int r = 0; r <= DIRECTORY_AUTH_ERROR; r++)
			total->results[r] += w[i].results[r];
		total->counted += w[i].counted;
		total->locked_now += w[i].locked_now;
		total->errors += w[i].errors;
	}
}

static void
test_concurrent_logins(void **state)
{
	struct fixture *f = *state;
	struct directory_user u;
	struct worker total;

	add_user(f, ALICE, true, NULL);
	/* Never locking: every one of the failures is counted, none lost. */
	f->cfg.security_policy.max_failed_login_attempts = 0;
	run_workers(f, &total);
	assert_int_equal(total.errors, 0);
	assert_int_equal(total.results[DIRECTORY_AUTH_BAD_PASSWORD], THREADS * ATTEMPTS);
	assert_int_equal(total.counted, THREADS * ATTEMPTS);
	assert_int_equal(directory_user_get(f->dir, ALICE, &u), 1);
	assert_int_equal(u.failed_logins, THREADS * ATTEMPTS);
	directory_user_clear(&u);

	/* Locking after 3: exactly 3 count, one of them locks, the rest find it locked. */
	assert_int_equal(directory_user_del(f->dir, ALICE, NULL), 0);
	add_user(f, ALICE, true, NULL);
	f->cfg.security_policy.max_failed_login_attempts = 3;
	run_workers(f, &total);
	assert_int_equal(total.errors, 0);
	assert_int_equal(total.counted, 3);
	assert_int_equal(total.locked_now, 1);
	assert_int_equal(total.results[DIRECTORY_AUTH_BAD_PASSWORD], 3);
	assert_int_equal(total.results[DIRECTORY_AUTH_LOCKED], THREADS * ATTEMPTS - 3);
	assert_int_equal(directory_user_get(f->dir, ALICE, &u), 1);
	assert_int_equal(u.failed_logins, 3);
	assert_true(u.locked_until > T0);
	directory_user_clear(&u);
}

/* ---- senders ---- */

struct sender_case {
	const char *sender;
	int allowed;
	const char *why;
};

static void
test_sender_allowed(void **state)
{
	static const struct sender_case cases[] = {
		{ .sender = ALICE, .allowed = 1, .why = "its own address" },
		{ .sender = "ALICE@EXAMPLE.TEST", .allowed = 1, .why = "in any case" },
		{ .sender = "team@example.test", .allowed = 1, .why = "an alias that reaches it" },
		{ .sender = "sales@example.test", .allowed = 1,
		  .why = "an alias of an alias that reaches it" },
		{ .sender = "Sales@Example.Test", .allowed = 1, .why = "alias in any case" },
		{ .sender = "postmaster@example.test", .allowed = 0,
		  .why = "an alias that reaches bob only" },
		{ .sender = "bob@example.test", .allowed = 0, .why = "another account" },
		{ .sender = "info@example.test", .allowed = 0, .why = "an alias to a remote address" },
		{ .sender = "stranger@example.test", .allowed = 0, .why = "nobody" },
		{ .sender = "alice@remote.example", .allowed = 0, .why = "a remote address" },
		{ .sender = "", .allowed = 0, .why = "the null sender: no bounce comes from a user" },
		{ .sender = "not an address", .allowed = 0, .why = "garbage" },
	};
	struct fixture *f = *state;

	add_user(f, ALICE, true, NULL);
	add_user(f, "bob@example.test", true, NULL);
	add_alias(f, "team@example.test", ALICE);
	add_alias(f, "team@example.test", "bob@example.test");
	add_alias(f, "sales@example.test", "team@example.test");
	add_alias(f, "postmaster@example.test", "bob@example.test");
	add_alias(f, "info@example.test", "carol@remote.example");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = directory_sender_allowed(f->dir, &f->cfg, ALICE, cases[i].sender);

		if (rc != cases[i].allowed)
			fail_msg("sender %s (%s): %d, expected %d", cases[i].sender,
			    cases[i].why, rc, cases[i].allowed);
	}
	assert_int_equal(directory_sender_allowed(f->dir, &f->cfg, "bob@example.test",
	    "postmaster@example.test"), 1);
}

/* ---- confirmation tokens ---- */

static void
test_tokens(void **state)
{
	struct fixture *f = *state;
	struct directory_stats st;
	struct directory_user u;
	char token[DIRECTORY_TOKEN_LEN + 1], other[DIRECTORY_TOKEN_LEN + 1];
	char upper[DIRECTORY_TOKEN_LEN + 1], address[320], *error = NULL;
	unsigned char raw[32];

	add_user(f, ALICE, false, "alice@home.example");
	assert_int_equal(directory_token_create(f->dir, ALICE, T0, 24 * HOUR, token, &error), 0);
	assert_int_equal(strlen(token), DIRECTORY_TOKEN_LEN);
	assert_int_equal(strspn(token, "0123456789abcdef"), DIRECTORY_TOKEN_LEN);

	/* Never stored in clear: neither the text nor its 32 bytes. */
	assert_false(db_contains(f, token, DIRECTORY_TOKEN_LEN));
	assert_int_equal(sodium_hex2bin(raw, sizeof(raw), token, DIRECTORY_TOKEN_LEN,
	    NULL, NULL, NULL), 0);
	assert_false(db_contains(f, raw, sizeof(raw)));

	/* Peek does not use it; capitals are the same token. */
	assert_int_equal(directory_token_peek(f->dir, token, T0 + 1, address,
	    sizeof(address)), 1);
	assert_string_equal(address, ALICE);
	for (size_t i = 0; i <= DIRECTORY_TOKEN_LEN; i++)
		upper[i] = (char)(token[i] >= 'a' && token[i] <= 'f' ? token[i] - 32 : token[i]);
	assert_int_equal(directory_token_peek(f->dir, upper, T0 + 1, address,
	    sizeof(address)), 1);
	assert_int_equal(directory_user_get(f->dir, ALICE, &u), 1);
	assert_false(u.confirmed);
	directory_user_clear(&u);

	/* Confirm once. */
	assert_int_equal(directory_token_confirm(f->dir, token, T0 + 2, address,
	    sizeof(address)), 1);
	assert_string_equal(address, ALICE);
	assert_int_equal(directory_user_get(f->dir, ALICE, &u), 1);
	assert_true(u.confirmed);
	directory_user_clear(&u);

	/* Reuse fails, and so does peeking at a used token. */
	assert_int_equal(directory_token_confirm(f->dir, token, T0 + 3, address,
	    sizeof(address)), 0);
	assert_string_equal(address, "");
	assert_int_equal(directory_token_peek(f->dir, token, T0 + 3, NULL, 0), 0);

	/* Expired: valid one second before, not at expiry. */
	assert_int_equal(directory_token_create(f->dir, ALICE, T0, 60, other, &error), 0);
	assert_int_equal(directory_token_peek(f->dir, other, T0 + 59, NULL, 0), 1);
	assert_int_equal(directory_token_confirm(f->dir, other, T0 + 60, NULL, 0), 0);
	assert_int_equal(directory_token_peek(f->dir, other, T0 + 60, NULL, 0), 0);

	/* Made-up, short, long and non-hex tokens are simply unknown. */
	memset(other, 'a', DIRECTORY_TOKEN_LEN);
	other[DIRECTORY_TOKEN_LEN] = '\0';
	assert_int_equal(directory_token_confirm(f->dir, other, T0, NULL, 0), 0);
	assert_int_equal(directory_token_peek(f->dir, "abc", T0, NULL, 0), 0);
	assert_int_equal(directory_token_peek(f->dir, NULL, T0, NULL, 0), 0);
	other[10] = 'g';
	assert_int_equal(directory_token_peek(f->dir, other, T0, NULL, 0), 0);
	char longer[DIRECTORY_TOKEN_LEN + 2];
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(directory_token_peek(f->dir, longer, T0, NULL, 0), 0);

	/* No token for a missing account, nor one that lives no time. */
	assert_int_equal(directory_token_create(f->dir, "nobody@example.test", T0, 60,
	    other, &error), -1);
	assert_non_null(strstr(error, "no such user nobody@example.test"));
	free(error);
	error = NULL;
	assert_int_equal(directory_token_create(f->dir, ALICE, T0, 0, other, &error), -1);
	free(error);
	error = NULL;

	/* Requested 2, completed 1. */
	assert_int_equal(directory_stats(f->dir, T0, &st), 0);
	assert_int_equal(st.confirmations_requested, 2);
	assert_int_equal(st.confirmations_completed, 1);

	/* A deleted account takes its tokens along: a re-created one is not confirmed by them. */
	assert_int_equal(directory_token_create(f->dir, ALICE, T0, HOUR, other, &error), 0);
	assert_int_equal(directory_user_del(f->dir, ALICE, &error), 0);
	add_user(f, ALICE, false, "alice@home.example");
	assert_int_equal(directory_token_confirm(f->dir, other, T0 + 1, NULL, 0), 0);
	assert_int_equal(directory_user_get(f->dir, ALICE, &u), 1);
	assert_false(u.confirmed);
	directory_user_clear(&u);
}

/* ---- stats ---- */

static void
test_stats(void **state)
{
	struct fixture *f = *state;
	struct directory_auth_outcome o;
	struct directory_stats st;
	char *error = NULL;

	assert_int_equal(directory_stats(f->dir, T0, &st), 0);
	assert_int_equal(st.users, 0);
	add_user(f, ALICE, true, NULL);
	add_user(f, "bob@example.test", false, NULL);
	add_user(f, "carol@example.test", true, NULL);
	assert_int_equal(directory_user_set_flag(f->dir, "carol@example.test", "suspended",
	    true, &error), 0);
	for (int i = 0; i < 3; i++) {
		char pw[32];

		snprintf(pw, sizeof(pw), "Wrong-%d", i);
		assert_int_equal(directory_auth(f->dir, &f->cfg, ALICE, pw, IP_B, T0, &o), 0);
	}
	assert_int_equal(directory_stats(f->dir, T0 + 1, &st), 0);
	assert_int_equal(st.users, 3);
	assert_int_equal(st.confirmed, 2);
	assert_int_equal(st.unconfirmed, 1);
	assert_int_equal(st.suspended, 1);
	assert_int_equal(st.locked, 1);
	assert_int_equal(st.confirmations_requested, 0);
	/* Past the lock: no longer counted as locked. */
	assert_int_equal(directory_stats(f->dir, T0 + HOUR, &st), 0);
	assert_int_equal(st.locked, 0);
}

/* ---- bans ---- */

static void
test_bans(void **state)
{
	struct fixture *f = *state;
	struct directory_ban *bans = NULL;
	size_t n = 0;
	char v4[] = "203.0.113.9/32", v6[] = "2001:db8:1:2::/64", reason[] = "auth_failed";
	char manual[] = "manual", bad[] = "not-a-network", badreason[] = "two\nlines";

	assert_int_equal(directory_ban_save(f->dir, &(struct directory_ban){ .network = v6,
	    .reason = reason, .evidence = 5, .level = 1, .created = T0,
	    .expires = T0 + HOUR }), 0);
	assert_int_equal(directory_ban_save(f->dir, &(struct directory_ban){ .network = v4,
	    .reason = reason, .evidence = 5, .level = 1, .created = T0,
	    .expires = T0 + HOUR }), 0);
	assert_int_equal(directory_ban_list(f->dir, &bans, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(bans[0].network, v6);   /* ordered by network text */
	assert_string_equal(bans[1].network, v4);
	assert_string_equal(bans[1].reason, "auth_failed");
	assert_int_equal(bans[1].evidence, 5);
	assert_int_equal(bans[1].level, 1);
	assert_int_equal(bans[1].created, T0);
	assert_int_equal(bans[1].expires, T0 + HOUR);
	directory_ban_list_free(&bans, n);
	assert_null(bans);

	/* Saving the same network replaces its row (escalation: level 2). */
	assert_int_equal(directory_ban_save(f->dir, &(struct directory_ban){ .network = v4,
	    .reason = manual, .evidence = 0, .level = 2, .created = T0 + 10,
	    .expires = T0 + 3 * HOUR }), 0);
	assert_int_equal(directory_ban_list(f->dir, &bans, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(bans[1].reason, "manual");
	assert_int_equal(bans[1].level, 2);
	assert_int_equal(bans[1].expires, T0 + 3 * HOUR);
	directory_ban_list_free(&bans, n);

	/* Refused: a network that does not parse, a reason with a newline. */
	assert_int_equal(directory_ban_save(f->dir, &(struct directory_ban){ .network = bad,
	    .reason = reason, .created = T0, .expires = T0 + 1 }), -1);
	assert_int_equal(directory_ban_save(f->dir, &(struct directory_ban){ .network = v4,
	    .reason = badreason, .created = T0, .expires = T0 + 1 }), -1);

	assert_int_equal(directory_ban_delete(f->dir, v4), 1);
	assert_int_equal(directory_ban_delete(f->dir, v4), 0);
	assert_int_equal(directory_ban_list(f->dir, &bans, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(bans[0].network, v6);
	directory_ban_list_free(&bans, n);
}

/* ---- change polling between two connections (daemon and bulwarkctl) ---- */

static void
test_changed(void **state)
{
	struct fixture *f = *state;
	struct directory *ctl = NULL;
	char *error = NULL, net[] = "192.0.2.1/32", reason[] = "manual";

	assert_int_equal(directory_open(f->data_dir, &ctl, &error), 0);
	assert_int_equal(directory_changed(f->dir), 0);   /* first call: remembers */
	assert_int_equal(directory_changed(f->dir), 0);
	assert_int_equal(directory_ban_save(ctl, &(struct directory_ban){ .network = net,
	    .reason = reason, .level = 1, .created = T0, .expires = T0 + HOUR }), 0);
	assert_int_equal(directory_changed(f->dir), 1);
	assert_int_equal(directory_changed(f->dir), 0);
	/* Its own commits are not news to a handle. */
	assert_int_equal(directory_ban_delete(f->dir, net), 1);
	assert_int_equal(directory_changed(f->dir), 0);
	assert_int_equal(directory_changed(ctl), 0);
	assert_int_equal(directory_ban_save(f->dir, &(struct directory_ban){ .network = net,
	    .reason = reason, .level = 1, .created = T0, .expires = T0 + HOUR }), 0);
	assert_int_equal(directory_changed(ctl), 1);
	directory_free(&ctl);
}

/* ---- the fingerprint key is made once and shared ---- */

static void
test_fingerprint_key_shared(void **state)
{
	struct fixture *f = *state;
	struct directory *other = NULL;
	struct directory_auth_outcome o;
	char *error = NULL;

	add_user(f, ALICE, true, NULL);
	/* A failure through one handle, its repeat through another: same key. */
	assert_int_equal(directory_auth(f->dir, &f->cfg, ALICE, "Old-1", IP_A, T0, &o), 0);
	assert_true(o.counted);
	assert_int_equal(directory_open(f->data_dir, &other, &error), 0);
	assert_int_equal(directory_auth(other, &f->cfg, ALICE, "Old-1", IP_A, T0 + 1, &o), 0);
	assert_true(o.repeat);
	assert_false(o.counted);
	directory_free(&other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_result_names),
		cmocka_unit_test_setup_teardown(test_lockout_scenarios, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_password_not_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fingerprint_key_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_logins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sender_allowed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
