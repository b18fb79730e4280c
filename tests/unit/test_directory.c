/*
 * test_directory.c: the accounts store on a fresh mkdtemp data_dir: file
 * modes, migrations, accounts, aliases and their expansion, passwords.
 * Refusals assert the reason, not only the verdict. Where the door rightly
 * refuses to build a state (an alias loop, an alias shadowed by an account),
 * the test writes it into the database by hand, as a careless admin might.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "directory/directory.h"

#define STRONG "Correct-Horse-Battery-9"

struct fixture {
	char root[64];        /* the mkdtemp directory */
	char data_dir[96];    /* root/data: created by directory_open */
	char db_path[128];
	struct config cfg;
	struct directory *dir;
};

static char domain_test[] = "example.test";
static char domain_org[] = "example.org";
static char *local_domains[] = { domain_test, domain_org };
static char cfg_path[] = "(test)";

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *error = NULL;

	assert_non_null(f);
	strcpy(f->root, "/tmp/test_directory.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->data_dir, sizeof(f->data_dir), "%s/data", f->root);
	snprintf(f->db_path, sizeof(f->db_path), "%s/bulwark.db", f->data_dir);
	f->cfg = (struct config){
		.path = cfg_path,
		.domains = local_domains,
		.ndomains = 2,
		.data_dir = f->data_dir,
		.security_policy = {
			.require_email_confirmation = true,
			.max_failed_login_attempts = 3,
			.account_lockout_duration_minutes = 60,
			.minimum_password_length = 12,
			.require_password_complexity = true,
			.disable_smtp_auth_for_unconfirmed = true,
		},
	};
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
	assert_null(f->dir);
	nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Run constant SQL on the database behind the directory's back. */
static void
db_exec(const struct fixture *f, const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

/* One integer or text column of the first row of a query, into buf. */
static void
db_query(const struct fixture *f, const char *sql, const char *param,
    char *buf, size_t buflen)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (param != NULL)
		sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(buf, buflen, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void
add_user(struct fixture *f, const char *address)
{
	char *error = NULL;

	if (directory_user_add(f->dir, &f->cfg, address, STRONG, NULL, true, &error) != 0)
		fail_msg("user add %s: %s", address, error);
}

static void
add_alias(struct fixture *f, const char *source, const char *target)
{
	char *error = NULL;

	if (directory_alias_add(f->dir, &f->cfg, source, target, &error) != 0)
		fail_msg("alias add %s %s: %s", source, target, error);
}

/* Resolve and compare with the expected space-separated list (any order). */
static void
expect_resolve(struct fixture *f, const char *local, const char *domain,
    int expect_rc, const char *expect)
{
	struct directory_strings t = { 0 };
	char want[512], *save = NULL, *w;
	size_t nwant = 0;
	int rc;

	rc = directory_resolve(f->dir, &f->cfg, local, domain, &t);
	if (rc != expect_rc)
		fail_msg("resolve %s@%s: %d, expected %d", local, domain, rc, expect_rc);
	snprintf(want, sizeof(want), "%s", expect != NULL ? expect : "");
	for (w = strtok_r(want, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
		bool found = false;

		for (size_t i = 0; i < t.n; i++)
			found = found || strcmp(t.v[i], w) == 0;
		if (!found)
			fail_msg("resolve %s@%s: %s missing", local, domain, w);
		nwant++;
	}
	if (t.n != nwant)
		fail_msg("resolve %s@%s: %zu targets, expected %zu", local, domain,
		    t.n, nwant);
	directory_strings_clear(&t);
}

/* ---- files and migrations ---- */

static void
test_files_and_modes(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	char wal[160];

	assert_int_equal(stat(f->data_dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(f->db_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	add_user(f, "alice@example.test");
	snprintf(wal, sizeof(wal), "%s-wal", f->db_path);
	assert_int_equal(stat(wal, &st), 0);   /* journal_mode=WAL */
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void
test_db_mode_tightened(void **state)
{
	struct fixture *f = *state;
	struct directory *dir = NULL;
	struct stat st;
	char *error = NULL;

	assert_int_equal(chmod(f->db_path, 0644), 0);
	assert_int_equal(directory_open(f->data_dir, &dir, &error), 0);
	directory_free(&dir);
	assert_int_equal(stat(f->db_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void
test_migrations_idempotent(void **state)
{
	struct fixture *f = *state;
	struct directory *again = NULL;
	char *error = NULL, buf[64];

	add_user(f, "alice@example.test");
	/* A second handle at once (the daemon and bulwarkctl), then a reopen. */
	assert_int_equal(directory_open(f->data_dir, &again, &error), 0);
	assert_int_equal(directory_user_exists(again, "alice@example.test"), 1);
	directory_free(&again);
	directory_free(&f->dir);
	assert_int_equal(directory_open(f->data_dir, &f->dir, &error), 0);
	assert_int_equal(directory_user_exists(f->dir, "alice@example.test"), 1);
	db_query(f, "SELECT COUNT(*) || ':' || MAX(version) FROM schema_version",
	    NULL, buf, sizeof(buf));
	assert_string_equal(buf, "3:3");
	db_query(f, "PRAGMA journal_mode", NULL, buf, sizeof(buf));
	assert_string_equal(buf, "wal");
}

/*
 * A database written by the first bulwark (schema 1 only) gets version 2's
 * tables on open, and keeps its accounts: the account logs in.
 */
static void
test_migration_from_v1(void **state)
{
	struct fixture *f = *state;
	struct directory_auth_outcome o;
	char *error = NULL, buf[64];

	add_user(f, "alice@example.test");
	directory_free(&f->dir);
	db_exec(f, "DROP TABLE tokens; DROP TABLE auth_failures; DROP TABLE known_ips;"
	    " DROP TABLE bans; DROP TABLE settings; ALTER TABLE users DROP COLUMN messages_per_hour;"
	    " ALTER TABLE users DROP COLUMN recipients_per_hour;"
	    " DELETE FROM schema_version WHERE version >= 2");
	db_query(f, "SELECT MAX(version) FROM schema_version", NULL, buf, sizeof(buf));
	assert_string_equal(buf, "1");
	if (directory_open(f->data_dir, &f->dir, &error) != 0)
		fail_msg("reopen: %s", error);
	db_query(f, "SELECT COUNT(*) || ':' || MAX(version) FROM schema_version",
	    NULL, buf, sizeof(buf));
	assert_string_equal(buf, "3:3");
	db_query(f, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('tokens',"
	    " 'auth_failures', 'known_ips', 'bans', 'settings')", NULL, buf, sizeof(buf));
	assert_string_equal(buf, "5");
	assert_int_equal(directory_auth(f->dir, &f->cfg, "alice@example.test", STRONG,
	    "192.0.2.1", 1800000000, &o), 0);
	assert_int_equal(o.result, DIRECTORY_AUTH_OK);
}

/*
 * Opening a second handle in the same process (the daemon: one per worker)
 * must not drop the first one's locks: a bulwarkctl closing its connection
 * meanwhile would think itself the last, checkpoint and delete the WAL
 * under the first handle (SQLITE_IOERR_SHORT_READ, seen in the daemon).
 */
static void
test_second_handle_keeps_locks(void **state)
{
	struct fixture *f = *state;
	struct directory *second = NULL;
	char *error = NULL, wal[160];
	struct stat st;
	pid_t pid;
	int status;

	add_user(f, "alice@example.test");
	assert_int_equal(directory_user_exists(f->dir, "alice@example.test"), 1);
	assert_int_equal(directory_open(f->data_dir, &second, &error), 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->db_path);
	assert_int_equal(stat(wal, &st), 0);
	/*
	 * Another process (bulwarkctl) opens, writes and closes: the sqlite3
	 * shell, exec'd, since a forked child would share our SQLite's lock
	 * bookkeeping.
	 */
	if (access("/usr/bin/sqlite3", X_OK) != 0)
		skip();
	if ((pid = fork()) == 0) {
		execl("/usr/bin/sqlite3", "sqlite3", "-cmd", ".timeout 5000", f->db_path,
		    "UPDATE users SET failed_logins = 1;", (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* We are still open: the WAL must still be there, and both handles read. */
	assert_int_equal(stat(wal, &st), 0);
	assert_int_equal(directory_user_exists(f->dir, "alice@example.test"), 1);
	assert_int_equal(directory_user_exists(second, "alice@example.test"), 1);
	directory_free(&second);
}

static void
test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	struct directory *dir = NULL;
	char *error = NULL;

	db_exec(f, "INSERT INTO schema_version (version, applied, what) VALUES (99, 0, 'future')");
	assert_int_equal(directory_open(f->data_dir, &dir, &error), -1);
	assert_null(dir);
	assert_non_null(strstr(error, "schema version 99 is newer"));
	free(error);
}

static void
test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct directory *dir = NULL;
	char *error = NULL, path[160];

	(void)f;
	snprintf(path, sizeof(path), "%s/missing/parent", f->root);
	assert_int_equal(directory_open(path, &dir, &error), -1);
	assert_non_null(strstr(error, "cannot create data_dir"));
	free(error);
	snprintf(path, sizeof(path), "%s/bulwark.db", f->data_dir);
	assert_int_equal(directory_open(path, &dir, &error), -1);
	assert_non_null(strstr(error, "is not a directory"));
	free(error);
}

/* ---- accounts ---- */

struct user_add_case {
	const char *name;
	const char *address;
	const char *password;   /* NULL: STRONG */
	const char *contact;
	bool ok;
	const char *reason;     /* substring of the error when refused */
};

/* Run in order on one store: later cases see earlier ones. */
static const struct user_add_case user_add_cases[] = {
	{ .name = "plain", .address = "alice@example.test", .ok = true },
	{ .name = "second domain", .address = "alice@example.org", .ok = true },
	{ .name = "domain lower-cased", .address = "Bob@EXAMPLE.Test",
	  .contact = "bob.private@elsewhere.example", .ok = true },
	{ .name = "atext local part", .address = "o'brien+tag!x{y}@example.test", .ok = true },
	{ .name = "duplicate", .address = "alice@example.test",
	  .reason = "user alice@example.test exists" },
	{ .name = "duplicate other case", .address = "ALICE@example.test",
	  .reason = "user ALICE@example.test exists" },
	{ .name = "non-local domain", .address = "carol@example.net",
	  .reason = "domain example.net is not a local domain" },
	{ .name = "subdomain is not local", .address = "carol@sub.example.test",
	  .reason = "domain sub.example.test is not a local domain" },
	{ .name = "incident password", .address = "admin@example.test",
	  .password = "admin123",
	  .reason = "password too short: 8 characters, security_policy.minimum_password_length is 12" },
	{ .name = "common password", .address = "carol@example.test",
	  .password = "P@ssw0rd2024!", .reason = "most common passwords" },
	{ .name = "password with the name", .address = "carol@example.test",
	  .password = "Carol-Horse-Battery-9", .reason = "password contains the account name" },
	{ .name = "password not complex", .address = "carol@example.test",
	  .password = "correct horse battery", .reason = "missing: upper-case, digit" },
	{ .name = "no @", .address = "carol", .reason = "no @domain" },
	{ .name = "empty local part", .address = "@example.test", .reason = "empty local part" },
	{ .name = "empty domain", .address = "carol@", .reason = "empty domain" },
	{ .name = "leading dot", .address = ".carol@example.test", .reason = "starts or ends with a dot" },
	{ .name = "trailing dot", .address = "carol.@example.test", .reason = "starts or ends with a dot" },
	{ .name = "double dot", .address = "ca..rol@example.test", .reason = "two dots in a row" },
	{ .name = "space", .address = "ca rol@example.test", .reason = "character other than letters" },
	{ .name = "quote", .address = "\"carol\"@example.test", .reason = "character other than letters" },
	{ .name = "non-ASCII", .address = "c\xc3\xa4rol@example.test", .reason = "character other than letters" },
	{ .name = "local part too long",
	  .address = "a123456789b123456789c123456789d123456789e123456789f123456789g1234@example.test",
	  .reason = "local part longer than 64 characters" },
	{ .name = "local part 64", .address =
	  "a123456789b123456789c123456789d123456789e123456789f123456789g123@example.test",
	  .ok = true },
	{ .name = "domain trailing dot", .address = "carol@example.test.", .reason = "empty label" },
	{ .name = "domain hyphen", .address = "carol@-example.test", .reason = "starts with a hyphen" },
	{ .name = "domain underscore", .address = "carol@exa_mple.test", .reason = "domain has a character" },
	{ .name = "contact not an address", .address = "carol@example.test",
	  .contact = "carol at home", .reason = "invalid contact carol at home: no @domain" },
	{ .name = "contact without dot", .address = "carol@example.test",
	  .contact = "carol@localhost", .reason = "invalid contact carol@localhost: domain has no dot" },
	{ .name = "contact is the account", .address = "carol@example.test",
	  .contact = "Carol@Example.Test", .reason = "contact must be another address" },
	{ .name = "control byte shown escaped", .address = "car\nol@example.test",
	  .reason = "invalid address car\\x0aol@example.test" },
	{ .name = "with contact", .address = "carol@example.test",
	  .contact = "carol@elsewhere.example", .ok = true },
};

static void
test_user_add_table(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(user_add_cases) / sizeof(user_add_cases[0]); i++) {
		const struct user_add_case *c = &user_add_cases[i];
		char *error = NULL;
		int rc;

		rc = directory_user_add(f->dir, &f->cfg, c->address,
		    c->password != NULL ? c->password : STRONG, c->contact, false, &error);
		if (c->ok) {
			if (rc != 0)
				fail_msg("case '%s': refused: %s", c->name, error);
			assert_int_equal(directory_user_exists(f->dir, c->address), 1);
			continue;
		}
		if (rc != -1)
			fail_msg("case '%s': accepted, expected '%s'", c->name, c->reason);
		if (error == NULL || strstr(error, c->reason) == NULL)
			fail_msg("case '%s': error '%s', expected '%s'", c->name,
			    error != NULL ? error : "(null)", c->reason);
		if (strchr(error, '\n') != NULL)
			fail_msg("case '%s': error spans lines", c->name);
		free(error);
	}
}

/* Per-account outbound limits: unset (-1) until set, back to -1 on reset. */
static void
test_user_limits(void **state)
{
	struct fixture *f = *state;
	struct directory_user u;
	char *error = NULL;

	add_user(f, "amy@example.test");
	assert_int_equal(directory_user_get(f->dir, "amy@example.test", &u), 1);
	assert_int_equal(u.messages_per_hour, -1);
	assert_int_equal(u.recipients_per_hour, -1);
	directory_user_clear(&u);
	assert_int_equal(directory_user_set_limits(f->dir, "AMY@example.test", 7, 70, &error), 0);
	assert_int_equal(directory_user_get(f->dir, "amy@example.test", &u), 1);
	assert_int_equal(u.messages_per_hour, 7);
	assert_int_equal(u.recipients_per_hour, 70);
	directory_user_clear(&u);
	assert_int_equal(directory_user_set_limits(f->dir, "amy@example.test", -1, 0, &error), 0);
	assert_int_equal(directory_user_get(f->dir, "amy@example.test", &u), 1);
	assert_int_equal(u.messages_per_hour, -1);
	assert_int_equal(u.recipients_per_hour, 0);
	directory_user_clear(&u);
	assert_int_equal(directory_user_set_limits(f->dir, "nobody@example.test", 1, 1, &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, "no such user"));
	free(error);
}

static void
test_user_get_list_flags_del(void **state)
{
	struct fixture *f = *state;
	struct directory_user u, *users = NULL;
	size_t n = 0;
	char *error = NULL;
	time_t now = time(NULL);

	assert_int_equal(directory_user_add(f->dir, &f->cfg, "Zed@Example.Test", STRONG,
	    "zed@elsewhere.example", false, &error), 0);
	add_user(f, "amy@example.test");
	add_user(f, "mia@example.org");

	assert_int_equal(directory_user_get(f->dir, "zed@example.test", &u), 1);
	assert_string_equal(u.address, "Zed@example.test");
	assert_string_equal(u.contact, "zed@elsewhere.example");
	assert_false(u.confirmed);
	assert_false(u.suspended);
	assert_int_equal(u.failed_logins, 0);
	assert_int_equal(u.locked_until, 0);
	assert_true(u.created >= now - 5 && u.created <= now + 5);
	directory_user_clear(&u);
	assert_null(u.address);
	assert_int_equal(directory_user_get(f->dir, "nobody@example.test", &u), 0);

	assert_int_equal(directory_user_list(f->dir, &users, &n, &error), 0);
	assert_int_equal(n, 3);
	assert_string_equal(users[0].address, "amy@example.test");
	assert_string_equal(users[1].address, "mia@example.org");
	assert_string_equal(users[2].address, "Zed@example.test");
	assert_true(users[0].confirmed);
	assert_null(users[0].contact);
	directory_user_list_free(&users, n);
	assert_null(users);

	/* Flags, lock. */
	assert_int_equal(directory_user_set_flag(f->dir, "ZED@example.test", "confirmed",
	    true, &error), 0);
	assert_int_equal(directory_user_set_flag(f->dir, "zed@example.test", "suspended",
	    true, &error), 0);
	db_exec(f, "UPDATE users SET failed_logins = 3, locked_until = 2000000000");
	assert_int_equal(directory_user_get(f->dir, "zed@example.test", &u), 1);
	assert_true(u.confirmed);
	assert_true(u.suspended);
	assert_int_equal(u.failed_logins, 3);
	assert_int_equal(u.locked_until, 2000000000);
	directory_user_clear(&u);
	assert_int_equal(directory_user_unlock(f->dir, "zed@example.test", &error), 0);
	assert_int_equal(directory_user_set_flag(f->dir, "zed@example.test", "suspended",
	    false, &error), 0);
	assert_int_equal(directory_user_get(f->dir, "zed@example.test", &u), 1);
	assert_false(u.suspended);
	assert_int_equal(u.failed_logins, 0);
	assert_int_equal(u.locked_until, 0);
	directory_user_clear(&u);

	assert_int_equal(directory_user_set_flag(f->dir, "zed@example.test", "admin",
	    true, &error), -1);
	assert_string_equal(error, "unknown account flag admin");
	free(error);
	assert_int_equal(directory_user_set_flag(f->dir, "nobody@example.test",
	    "confirmed", true, &error), -1);
	assert_string_equal(error, "no such user nobody@example.test");
	free(error);
	assert_int_equal(directory_user_unlock(f->dir, "nobody@example.test", &error), -1);
	assert_string_equal(error, "no such user nobody@example.test");
	free(error);

	/* Delete. */
	assert_int_equal(directory_user_del(f->dir, "ZED@EXAMPLE.TEST", &error), 0);
	assert_int_equal(directory_user_exists(f->dir, "zed@example.test"), 0);
	assert_int_equal(directory_user_del(f->dir, "zed@example.test", &error), -1);
	assert_string_equal(error, "no such user zed@example.test");
	free(error);
}

static void
test_passwords(void **state)
{
	struct fixture *f = *state;
	char *error = NULL, hash[256];

	add_user(f, "alice@example.test");
	db_query(f, "SELECT password_hash FROM users WHERE address = ?1",
	    "alice@example.test", hash, sizeof(hash));
	assert_memory_equal(hash, "$argon2id$", 10);
	assert_null(strstr(hash, STRONG));

	assert_int_equal(directory_user_verify_password(f->dir, "alice@example.test", STRONG), 1);
	assert_int_equal(directory_user_verify_password(f->dir, "ALICE@Example.Test", STRONG), 1);
	assert_int_equal(directory_user_verify_password(f->dir, "alice@example.test",
	    "Correct-Horse-Battery-8"), 0);
	assert_int_equal(directory_user_verify_password(f->dir, "alice@example.test", ""), 0);
	assert_int_equal(directory_user_verify_password(f->dir, "nobody@example.test", STRONG), 0);

	/* passwd: the same policy, then the new one works and the old does not. */
	assert_int_equal(directory_user_set_password(f->dir, &f->cfg, "alice@example.test",
	    "password1", &error), -1);
	assert_non_null(strstr(error, "password too short: 9 characters"));
	free(error);
	assert_int_equal(directory_user_set_password(f->dir, &f->cfg, "alice@example.test",
	    "Alice-Horse-Battery-9", &error), -1);
	assert_non_null(strstr(error, "password contains the account name"));
	free(error);
	assert_int_equal(directory_user_set_password(f->dir, &f->cfg, "nobody@example.test",
	    "Staple-Horse-Battery-7", &error), -1);
	assert_string_equal(error, "no such user nobody@example.test");
	free(error);
	assert_int_equal(directory_user_set_password(f->dir, &f->cfg, "alice@example.test",
	    "Staple-Horse-Battery-7", &error), 0);
	assert_int_equal(directory_user_verify_password(f->dir, "alice@example.test",
	    "Staple-Horse-Battery-7"), 1);
	assert_int_equal(directory_user_verify_password(f->dir, "alice@example.test", STRONG), 0);

	/* A weaker policy (lowered length): the common list still holds. */
	f->cfg.security_policy.minimum_password_length = 6;
	assert_int_equal(directory_user_set_password(f->dir, &f->cfg, "alice@example.test",
	    "admin123", &error), -1);
	assert_non_null(strstr(error, "password is in the list of most common passwords"));
	free(error);
}

/* ---- aliases ---- */

static void
test_alias_expansion(void **state)
{
	struct fixture *f = *state;

	add_user(f, "alice@example.test");
	add_user(f, "bob@example.test");
	add_user(f, "carol@example.org");
	add_alias(f, "team@example.test", "alice@example.test");
	add_alias(f, "team@example.test", "Bob@Example.Test");
	add_alias(f, "all@example.test", "team@example.test");
	add_alias(f, "all@example.test", "carol@example.org");
	add_alias(f, "all@example.test", "alice@example.test");   /* also via team */
	add_alias(f, "all@example.test", "Partner@Remote.Example");
	add_alias(f, "postmaster@example.org", "all@example.test");

	expect_resolve(f, "alice", "example.test", 1, "alice@example.test");
	expect_resolve(f, "ALICE", "example.test", 1, "alice@example.test");
	expect_resolve(f, "team", "example.test", 1, "alice@example.test bob@example.test");
	expect_resolve(f, "TeAm", "example.test", 1, "alice@example.test bob@example.test");
	expect_resolve(f, "all", "example.test", 1,
	    "alice@example.test bob@example.test carol@example.org Partner@remote.example");
	expect_resolve(f, "postmaster", "example.org", 1,
	    "alice@example.test bob@example.test carol@example.org Partner@remote.example");
	expect_resolve(f, "nobody", "example.test", 0, NULL);
	expect_resolve(f, "team", "example.org", 0, NULL);
	/* Diamond: two ways to the same alias are no loop. */
	add_alias(f, "both@example.test", "team@example.test");
	add_alias(f, "both@example.test", "all@example.test");
	expect_resolve(f, "both", "example.test", 1,
	    "alice@example.test bob@example.test carol@example.org Partner@remote.example");
}

struct alias_add_case {
	const char *name;
	const char *source, *target;
	bool ok;
	const char *reason;
};

static const struct alias_add_case alias_add_cases[] = {
	{ .name = "to an account", .source = "a1@example.test", .target = "alice@example.test",
	  .ok = true },
	{ .name = "to an alias", .source = "a2@example.test", .target = "a1@example.test",
	  .ok = true },
	{ .name = "to a remote address", .source = "a3@example.test",
	  .target = "someone@remote.example", .ok = true },
	{ .name = "duplicate", .source = "A1@example.test", .target = "ALICE@example.test",
	  .reason = "alias A1@example.test -> ALICE@example.test exists" },
	{ .name = "catch-all", .source = "@example.test", .target = "alice@example.test",
	  .reason = "catch-all aliases (@example.test) are not supported" },
	{ .name = "source is an account", .source = "alice@example.test",
	  .target = "someone@remote.example", .reason = "alice@example.test is an account" },
	{ .name = "source not local", .source = "x@remote.example",
	  .target = "alice@example.test", .reason = "domain remote.example is not a local domain" },
	{ .name = "source invalid", .source = "x..y@example.test",
	  .target = "alice@example.test", .reason = "invalid alias source x..y@example.test" },
	{ .name = "target missing", .source = "a4@example.test", .target = "ghost@example.test",
	  .reason = "alias target ghost@example.test is neither an account nor an alias" },
	{ .name = "target catch-all", .source = "a4@example.test", .target = "@remote.example",
	  .reason = "invalid alias target @remote.example: empty local part" },
	{ .name = "target without dot", .source = "a4@example.test", .target = "root@localhost",
	  .reason = "domain has no dot" },
	{ .name = "self", .source = "a5@example.test", .target = "A5@example.test",
	  .reason = "would make a loop" },
	{ .name = "loop back", .source = "a1@example.test", .target = "a2@example.test",
	  .reason = "alias a1@example.test -> a2@example.test would make a loop" },
	{ .name = "longer loop", .source = "a1@example.test", .target = "a6@example.test",
	  .reason = "would make a loop" },
};

static void
test_alias_add_table(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;

	add_user(f, "alice@example.test");
	for (size_t i = 0; i < sizeof(alias_add_cases) / sizeof(alias_add_cases[0]); i++) {
		const struct alias_add_case *c = &alias_add_cases[i];
		int rc;

		if (strcmp(c->name, "longer loop") == 0)
			add_alias(f, "a6@example.test", "a2@example.test");
		error = NULL;
		rc = directory_alias_add(f->dir, &f->cfg, c->source, c->target, &error);
		if (c->ok) {
			if (rc != 0)
				fail_msg("case '%s': refused: %s", c->name, error);
			continue;
		}
		if (rc != -1)
			fail_msg("case '%s': accepted, expected '%s'", c->name, c->reason);
		if (error == NULL || strstr(error, c->reason) == NULL)
			fail_msg("case '%s': error '%s', expected '%s'", c->name,
			    error != NULL ? error : "(null)", c->reason);
		free(error);
	}
	/* An account cannot take an alias's address either. */
	assert_int_equal(directory_user_add(f->dir, &f->cfg, "a1@example.test", STRONG,
	    NULL, true, &error), -1);
	assert_non_null(strstr(error, "a1@example.test is an alias; remove it first"));
	free(error);
}

static void
test_alias_list_del(void **state)
{
	struct fixture *f = *state;
	struct directory_strings list = { 0 };
	char *error = NULL;

	add_user(f, "alice@example.test");
	add_user(f, "bob@example.test");
	add_alias(f, "team@example.test", "bob@example.test");
	add_alias(f, "team@example.test", "alice@example.test");
	add_alias(f, "info@example.test", "alice@example.test");
	assert_int_equal(directory_alias_list(f->dir, &list, &error), 0);
	assert_int_equal(list.n, 3);
	assert_string_equal(list.v[0], "info@example.test alice@example.test");
	assert_string_equal(list.v[1], "team@example.test alice@example.test");
	assert_string_equal(list.v[2], "team@example.test bob@example.test");
	directory_strings_clear(&list);
	assert_null(list.v);

	assert_int_equal(directory_alias_del(f->dir, "TEAM@Example.Test",
	    "BOB@example.test", &error), 0);
	expect_resolve(f, "team", "example.test", 1, "alice@example.test");
	assert_int_equal(directory_alias_del(f->dir, "team@example.test",
	    "bob@example.test", &error), -1);
	assert_string_equal(error, "no alias team@example.test -> bob@example.test");
	free(error);
	assert_int_equal(directory_alias_del(f->dir, "info@example.test", NULL, &error), 0);
	assert_int_equal(directory_alias_del(f->dir, "info@example.test", NULL, &error), -1);
	assert_string_equal(error, "no alias info@example.test");
	free(error);
	expect_resolve(f, "info", "example.test", 0, NULL);
}

/* States the door refuses to build, written by hand: the expansion copes. */
static void
test_alias_hand_edited(void **state)
{
	struct fixture *f = *state;

	add_user(f, "alice@example.test");
	add_user(f, "bob@example.test");
	db_exec(f,
	    "INSERT INTO aliases VALUES ('l1@example.test', 'l2@example.test');"
	    "INSERT INTO aliases VALUES ('l2@example.test', 'l1@example.test');"
	    "INSERT INTO aliases VALUES ('l2@example.test', 'bob@example.test');"
	    "INSERT INTO aliases VALUES ('self@example.test', 'SELF@example.test');"
	    "INSERT INTO aliases VALUES ('alice@example.test', 'bob@example.test');"
	    "INSERT INTO aliases VALUES ('z@example.test', 'ghost@example.test');"
	    "INSERT INTO aliases VALUES ('z@example.test', 'not an address');"
	    "INSERT INTO aliases VALUES ('z@example.test', 'alice@example.test');"
	    "INSERT INTO aliases VALUES ('dead@example.test', 'ghost@example.test');"
	    "INSERT INTO aliases VALUES ('catch@example.test', '@example.test');");
	/* A loop is cut; what the loop also reaches is still delivered. */
	expect_resolve(f, "l1", "example.test", 1, "bob@example.test");
	expect_resolve(f, "l2", "example.test", 1, "bob@example.test");
	/* Only a loop, nothing that receives: no such recipient. */
	expect_resolve(f, "self", "example.test", 0, NULL);
	/* The account wins over an alias of the same address. */
	expect_resolve(f, "alice", "example.test", 1, "alice@example.test");
	/* Missing and invalid targets are skipped. */
	expect_resolve(f, "z", "example.test", 1, "alice@example.test");
	expect_resolve(f, "dead", "example.test", 0, NULL);
	expect_resolve(f, "catch", "example.test", 0, NULL);
}

static void
test_alias_depth(void **state)
{
	struct fixture *f = *state;

	/* d1 -> d2 -> ... -> d10 -> alice: eight levels of aliases are followed. */
	add_user(f, "alice@example.test");
	add_alias(f, "d10@example.test", "alice@example.test");
	add_alias(f, "d9@example.test", "d10@example.test");
	add_alias(f, "d8@example.test", "d9@example.test");
	add_alias(f, "d7@example.test", "d8@example.test");
	add_alias(f, "d6@example.test", "d7@example.test");
	add_alias(f, "d5@example.test", "d6@example.test");
	add_alias(f, "d4@example.test", "d5@example.test");
	add_alias(f, "d3@example.test", "d4@example.test");
	add_alias(f, "d2@example.test", "d3@example.test");
	add_alias(f, "d1@example.test", "d2@example.test");
	expect_resolve(f, "d3", "example.test", 1, "alice@example.test");
	expect_resolve(f, "d2", "example.test", 0, NULL);
	expect_resolve(f, "d1", "example.test", 0, NULL);
}

static void
test_split_address(void **state)
{
	char local[65], domain[256];

	(void)state;
	assert_int_equal(directory_split_address("Bob@EXAMPLE.test", local, sizeof(local),
	    domain, sizeof(domain)), 0);
	assert_string_equal(local, "Bob");
	assert_string_equal(domain, "example.test");
	assert_int_equal(directory_split_address("a@b@example.test", local, sizeof(local),
	    domain, sizeof(domain)), 0);
	assert_string_equal(local, "a@b");
	assert_string_equal(domain, "example.test");
	assert_int_equal(directory_split_address("@example.test", local, sizeof(local),
	    domain, sizeof(domain)), -1);
	assert_int_equal(directory_split_address("bob@", local, sizeof(local),
	    domain, sizeof(domain)), -1);
	assert_int_equal(directory_split_address("bob@example.test.", local, sizeof(local),
	    domain, sizeof(domain)), -1);
	assert_int_equal(directory_split_address("b ob@example.test", local, sizeof(local),
	    domain, sizeof(domain)), -1);
	assert_int_equal(directory_split_address("bob@exa\rmple.test", local, sizeof(local),
	    domain, sizeof(domain)), -1);
	assert_int_equal(directory_split_address("bob", local, sizeof(local),
	    domain, sizeof(domain)), -1);
	assert_int_equal(directory_split_address("bob@example.test", local, 3,
	    domain, sizeof(domain)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_files_and_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_mode_tightened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_handle_keeps_locks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_add_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_get_list_flags_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passwords, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_expansion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_add_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_list_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_hand_edited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_depth, setup, teardown),
		cmocka_unit_test(test_split_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
