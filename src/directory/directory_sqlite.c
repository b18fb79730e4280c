/*
 * directory_sqlite.c: the SQLite store of the directory (data_dir/bulwark.db).
 * Trusts its caller (directory.c) to have validated and normalised every
 * value; trusts nothing about the file: the schema version is checked, and a
 * database newer than this binary is refused rather than guessed at.
 * Values reach SQL only through sqlite3_bind_*; the only SQL text run with
 * sqlite3_exec is the constant migrations and pragmas below.
 */
#include "directory/directory_private.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define DB_NAME "bulwark.db"
#define BUSY_TIMEOUT_MS 5000

/*
 * Schema migrations, applied in order, each in one transaction together
 * with its row in schema_version. Never edit a shipped entry: add the next
 * one, and the runner does the rest.
 */
struct migration {
	int version;
	const char *what;
	const char *sql;
};

static const struct migration migrations[] = {
	{
		.version = 1,
		.what = "users and aliases",
		.sql =
		    "CREATE TABLE users ("
		    " address TEXT PRIMARY KEY COLLATE NOCASE,"
		    " password_hash TEXT NOT NULL,"
		    " contact TEXT,"
		    " confirmed INTEGER NOT NULL DEFAULT 0,"
		    " suspended INTEGER NOT NULL DEFAULT 0,"
		    " failed_logins INTEGER NOT NULL DEFAULT 0,"
		    " locked_until INTEGER NOT NULL DEFAULT 0,"
		    " created INTEGER NOT NULL"
		    ");"
		    "CREATE TABLE aliases ("
		    " source TEXT NOT NULL COLLATE NOCASE,"
		    " target TEXT NOT NULL COLLATE NOCASE,"
		    " PRIMARY KEY (source, target)"
		    ");",
	},
	{
		.version = 2,
		.what = "tokens, auth failures, known IPs, bans, settings",
		/*
		 * An account's rows go with it (ON DELETE CASCADE): an old
		 * confirmation link must not confirm a new account of the same
		 * address, nor an old known IP open its lockout.
		 */
		.sql =
		    "CREATE TABLE tokens ("
		    " hash BLOB PRIMARY KEY,"   /* SHA-256 of the token's text */
		    " address TEXT NOT NULL COLLATE NOCASE"
		    "  REFERENCES users (address) ON DELETE CASCADE,"
		    " created INTEGER NOT NULL,"
		    " expires INTEGER NOT NULL,"
		    " used INTEGER"             /* unix time of use, NULL unused */
		    ");"
		    "CREATE INDEX tokens_address ON tokens (address);"
		    "CREATE TABLE auth_failures ("
		    " address TEXT NOT NULL COLLATE NOCASE"
		    "  REFERENCES users (address) ON DELETE CASCADE,"
		    " ip TEXT NOT NULL,"
		    " fingerprint BLOB NOT NULL," /* keyed BLAKE2b of the wrong password */
		    " time INTEGER NOT NULL"
		    ");"
		    "CREATE INDEX auth_failures_address_time ON auth_failures (address, time);"
		    "CREATE TABLE known_ips ("
		    " address TEXT NOT NULL COLLATE NOCASE"
		    "  REFERENCES users (address) ON DELETE CASCADE,"
		    " ip TEXT NOT NULL,"
		    " last_success INTEGER NOT NULL,"
		    " PRIMARY KEY (address, ip)"
		    ");"
		    "CREATE TABLE bans ("
		    " network TEXT PRIMARY KEY COLLATE NOCASE,"
		    " reason TEXT NOT NULL,"
		    " evidence INTEGER NOT NULL DEFAULT 0,"
		    " level INTEGER NOT NULL DEFAULT 1,"
		    " created INTEGER NOT NULL,"
		    " expires INTEGER NOT NULL"
		    ");"
		    "CREATE TABLE settings ("
		    " key TEXT PRIMARY KEY,"
		    " value BLOB NOT NULL"
		    ");",
	},
	{
		.version = 3,
		.what = "per-account outbound rate limits",
		/* NULL: the account follows queue_monitor.*_per_hour. */
		.sql =
		    "ALTER TABLE users ADD COLUMN messages_per_hour INTEGER;"
		    "ALTER TABLE users ADD COLUMN recipients_per_hour INTEGER;",
	},
};

/* Every statement, prepared once at open. */
enum stmt_id {
	ST_VERSION_GET,
	ST_VERSION_SET,
	ST_USER_GET,
	ST_USER_INSERT,
	ST_USER_DELETE,
	ST_USER_SET_HASH,
	ST_USER_SET_CONFIRMED,
	ST_USER_SET_SUSPENDED,
	ST_USER_SET_LIMITS,
	ST_USER_UNLOCK,
	ST_USER_LIST,
	ST_ALIAS_INSERT,
	ST_ALIAS_DELETE_ONE,
	ST_ALIAS_DELETE_ALL,
	ST_ALIAS_TARGETS,
	ST_ALIAS_LIST,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_USER_SET_LOGIN,
	ST_FAILURE_INSERT,
	ST_FAILURE_FIND,
	ST_FAILURE_COUNT,
	ST_FAILURE_DELETE,
	ST_KNOWN_IP_GET,
	ST_KNOWN_IP_TOUCH,
	ST_SETTING_GET,
	ST_SETTING_ADD,
	ST_TOKEN_INSERT,
	ST_TOKEN_GET,
	ST_TOKEN_USE,
	ST_STATS_USERS,
	ST_STATS_TOKENS,
	ST_BAN_SAVE,
	ST_BAN_DELETE,
	ST_BAN_LIST,
	ST_DATA_VERSION,
	ST_COUNT
};

#define USER_COLUMNS \
	"address, contact, confirmed, suspended, locked_until, failed_logins, created, password_hash," \
	" messages_per_hour, recipients_per_hour"

static const char *const stmt_sql[ST_COUNT] = {
	[ST_VERSION_GET] = "SELECT COALESCE(MAX(version), 0) FROM schema_version",
	[ST_VERSION_SET] = "INSERT INTO schema_version (version, applied, what) VALUES (?1, ?2, ?3)",
	[ST_USER_GET] = "SELECT " USER_COLUMNS " FROM users WHERE address = ?1",
	[ST_USER_INSERT] = "INSERT OR IGNORE INTO users (address, password_hash, contact,"
	    " confirmed, suspended, failed_logins, locked_until, created)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6)",
	[ST_USER_DELETE] = "DELETE FROM users WHERE address = ?1",
	[ST_USER_SET_HASH] = "UPDATE users SET password_hash = ?2 WHERE address = ?1",
	[ST_USER_SET_CONFIRMED] = "UPDATE users SET confirmed = ?2 WHERE address = ?1",
	[ST_USER_SET_SUSPENDED] = "UPDATE users SET suspended = ?2 WHERE address = ?1",
	[ST_USER_SET_LIMITS] = "UPDATE users SET messages_per_hour = ?2, recipients_per_hour = ?3"
	    " WHERE address = ?1",
	[ST_USER_UNLOCK] = "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE address = ?1",
	[ST_USER_LIST] = "SELECT " USER_COLUMNS " FROM users ORDER BY address",
	[ST_ALIAS_INSERT] = "INSERT OR IGNORE INTO aliases (source, target) VALUES (?1, ?2)",
	[ST_ALIAS_DELETE_ONE] = "DELETE FROM aliases WHERE source = ?1 AND target = ?2",
	[ST_ALIAS_DELETE_ALL] = "DELETE FROM aliases WHERE source = ?1",
	[ST_ALIAS_TARGETS] = "SELECT target FROM aliases WHERE source = ?1 ORDER BY target",
	[ST_ALIAS_LIST] = "SELECT source, target FROM aliases ORDER BY source, target",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_USER_SET_LOGIN] = "UPDATE users SET failed_logins = ?2, locked_until = ?3"
	    " WHERE address = ?1",
	[ST_FAILURE_INSERT] = "INSERT INTO auth_failures (address, ip, fingerprint, time)"
	    " VALUES (?1, ?2, ?3, ?4)",
	[ST_FAILURE_FIND] = "SELECT 1 FROM auth_failures WHERE address = ?1 AND time >= ?4"
	    " AND ip = ?2 AND fingerprint = ?3 LIMIT 1",
	[ST_FAILURE_COUNT] = "SELECT COUNT(*) FROM auth_failures WHERE address = ?1"
	    " AND time >= ?3 AND ip = ?2",
	[ST_FAILURE_DELETE] = "DELETE FROM auth_failures WHERE address = ?1 AND time < ?2",
	[ST_KNOWN_IP_GET] = "SELECT last_success FROM known_ips WHERE address = ?1 AND ip = ?2",
	[ST_KNOWN_IP_TOUCH] = "INSERT INTO known_ips (address, ip, last_success)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT (address, ip) DO UPDATE"
	    " SET last_success = MAX(last_success, excluded.last_success)",
	[ST_SETTING_GET] = "SELECT value FROM settings WHERE key = ?1",
	[ST_SETTING_ADD] = "INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)",
	[ST_TOKEN_INSERT] = "INSERT INTO tokens (hash, address, created, expires, used)"
	    " VALUES (?1, ?2, ?3, ?4, NULL)",
	[ST_TOKEN_GET] = "SELECT address, expires, COALESCE(used, 0) FROM tokens WHERE hash = ?1",
	[ST_TOKEN_USE] = "UPDATE tokens SET used = ?2 WHERE hash = ?1 AND used IS NULL",
	[ST_STATS_USERS] = "SELECT COUNT(*), COALESCE(SUM(confirmed <> 0), 0),"
	    " COALESCE(SUM(confirmed = 0), 0), COALESCE(SUM(suspended <> 0), 0),"
	    " COALESCE(SUM(locked_until > ?1), 0) FROM users",
	[ST_STATS_TOKENS] = "SELECT COUNT(*), COUNT(used) FROM tokens",
	[ST_BAN_SAVE] = "INSERT OR REPLACE INTO bans (network, reason, evidence, level,"
	    " created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_BAN_DELETE] = "DELETE FROM bans WHERE network = ?1",
	[ST_BAN_LIST] = "SELECT network, reason, evidence, level, created, expires FROM bans"
	    " ORDER BY network",
	[ST_DATA_VERSION] = "PRAGMA data_version",
};

struct sqlite_store {
	sqlite3 *db;
	sqlite3_stmt *stmt[ST_COUNT];
	char error[256];
};

static const char *
sqlite_error(void *store)
{
	struct sqlite_store *s = store;

	return s->error[0] != '\0' ? s->error : "no error";
}

/* Remember the connection's current error, prefixed with what we were doing. */
static int
store_fail(struct sqlite_store *s, const char *what)
{
	snprintf(s->error, sizeof(s->error), "%s: %s (code %d)", what, sqlite3_errmsg(s->db),
	    sqlite3_extended_errcode(s->db));
	return -1;
}

static sqlite3_stmt *
stmt_get(struct sqlite_store *s, enum stmt_id id)
{
	sqlite3_stmt *st = s->stmt[id];

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

/* Reset after use so the statement holds no read transaction open. */
static void
stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int
bind_text(sqlite3_stmt *st, int idx, const char *text)
{
	if (text == NULL)
		return sqlite3_bind_null(st, idx);
	return sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT);
}

/* Run a statement that returns no rows; the number of rows changed, or -1. */
static int
stmt_change(struct sqlite_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	int changed;

	if (rc != SQLITE_DONE) {
		store_fail(s, what);
		stmt_done(st);
		return -1;
	}
	changed = sqlite3_changes(s->db);
	stmt_done(st);
	return changed;
}

static char *
column_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t == NULL ? NULL : strdup((const char *)t);
}

/* Fill user_r (and *hash_r) from a row of USER_COLUMNS. 0, -1 out of memory. */
static int
row_to_user(sqlite3_stmt *st, struct directory_user *user_r, char **hash_r)
{
	memset(user_r, 0, sizeof(*user_r));
	user_r->address = column_strdup(st, 0);
	if (user_r->address == NULL)
		goto fail;
	if (sqlite3_column_type(st, 1) != SQLITE_NULL &&
	    (user_r->contact = column_strdup(st, 1)) == NULL)
		goto fail;
	user_r->confirmed = sqlite3_column_int(st, 2) != 0;
	user_r->suspended = sqlite3_column_int(st, 3) != 0;
	user_r->locked_until = sqlite3_column_int64(st, 4);
	user_r->failed_logins = sqlite3_column_int(st, 5);
	user_r->created = sqlite3_column_int64(st, 6);
	user_r->messages_per_hour = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 :
	    sqlite3_column_int(st, 8);
	user_r->recipients_per_hour = sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 :
	    sqlite3_column_int(st, 9);
	if (hash_r != NULL && (*hash_r = column_strdup(st, 7)) == NULL)
		goto fail;
	return 0;
fail:
	directory_user_clear(user_r);
	return -1;
}

/* ---- opening: files, pragmas, migrations ---- */

/* Create data_dir (0700) if missing; refuse something that is not a directory. */
static int
make_data_dir(const char *data_dir, char **error_r)
{
	struct stat st;

	if (mkdir(data_dir, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		if (asprintf(error_r, "cannot create data_dir %s: %s", data_dir,
		    strerror(errno)) < 0)
			*error_r = NULL;
		return -1;
	}
	if (stat(data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		if (asprintf(error_r, "data_dir %s is not a directory", data_dir) < 0)
			*error_r = NULL;
		return -1;
	}
	return 0;
}

/*
 * Create the database file ourselves, mode 0600, before SQLite opens it:
 * SQLite would use 0644 and copies the file's mode to its -wal and -shm.
 * An existing file readable by others is tightened, and said so.
 * An existing file is never opened here: close() on any descriptor of it
 * drops every POSIX lock this process holds on it, including those of the
 * SQLite connections other threads have open (the daemon opens one handle
 * per worker), and a bulwarkctl closing meanwhile would then think itself
 * the last user, checkpoint and remove the WAL under their feet.
 */
static int
make_db_file(const char *path, char **error_r)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd != -1) {
		/* New, so nobody holds a lock on it yet. */
		close(fd);
		return 0;
	}
	if (errno != EEXIST)
		goto fail;
	if (lstat(path, &st) != 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		if (asprintf(error_r, "%s is not a regular file", path) < 0)
			*error_r = NULL;
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		log_warnx("event=db_mode_tightened path=%s mode=%03o", path,
		    (unsigned)(st.st_mode & 0777));
		if (chmod(path, st.st_mode & 0700) != 0)
			log_warn("event=db_chmod_failed path=%s", path);
	}
	return 0;
fail:
	if (asprintf(error_r, "cannot open %s: %s", path, strerror(errno)) < 0)
		*error_r = NULL;
	return -1;
}

static int
exec_sql(struct sqlite_store *s, const char *sql, const char *what)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(s->error, sizeof(s->error), "%s: %s", what,
		    msg != NULL ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
set_pragmas(struct sqlite_store *s)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *mode;
	int ok;

	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	/* journal_mode answers with the mode in force: make sure it is WAL. */
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
		return store_fail(s, "journal_mode");
	ok = sqlite3_step(st) == SQLITE_ROW &&
	    (mode = sqlite3_column_text(st, 0)) != NULL &&
	    strcmp((const char *)mode, "wal") == 0;
	sqlite3_finalize(st);
	if (!ok) {
		snprintf(s->error, sizeof(s->error), "journal_mode: cannot switch to WAL");
		return -1;
	}
	if (exec_sql(s, "PRAGMA synchronous=FULL", "synchronous") != 0 ||
	    exec_sql(s, "PRAGMA foreign_keys=ON", "foreign_keys") != 0)
		return -1;
	return 0;
}

static int
schema_version_get(struct sqlite_store *s, sqlite3_stmt *st, int *version_r)
{
	sqlite3_reset(st);
	if (sqlite3_step(st) != SQLITE_ROW) {
		store_fail(s, "schema_version");
		sqlite3_reset(st);
		return -1;
	}
	*version_r = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return 0;
}

/*
 * Apply one migration if the database is older than it. BEGIN IMMEDIATE
 * takes the write lock before reading the version, so the daemon and
 * bulwarkctl opening the same new file at once apply each step once.
 */
static int
migrate_one(struct sqlite_store *s, const struct migration *m, int *version_r)
{
	sqlite3_stmt *get = NULL, *set = NULL;
	int version;

	if (exec_sql(s, "BEGIN IMMEDIATE", "begin") != 0)
		return -1;
	if (exec_sql(s, "CREATE TABLE IF NOT EXISTS schema_version ("
	    " version INTEGER PRIMARY KEY, applied INTEGER NOT NULL, what TEXT NOT NULL)",
	    "schema_version") != 0)
		goto fail;
	if (sqlite3_prepare_v2(s->db, stmt_sql[ST_VERSION_GET], -1, &get, NULL) != SQLITE_OK) {
		store_fail(s, "schema_version");
		goto fail;
	}
	if (schema_version_get(s, get, &version) != 0)
		goto fail;
	*version_r = version;
	if (version >= m->version) {
		sqlite3_finalize(get);
		return exec_sql(s, "COMMIT", "commit");
	}
	if (exec_sql(s, m->sql, m->what) != 0)
		goto fail;
	if (sqlite3_prepare_v2(s->db, stmt_sql[ST_VERSION_SET], -1, &set, NULL) != SQLITE_OK) {
		store_fail(s, "schema_version");
		goto fail;
	}
	sqlite3_bind_int(set, 1, m->version);
	sqlite3_bind_int64(set, 2, (sqlite3_int64)time(NULL));
	sqlite3_bind_text(set, 3, m->what, -1, SQLITE_STATIC);
	if (sqlite3_step(set) != SQLITE_DONE) {
		store_fail(s, "schema_version");
		goto fail;
	}
	if (exec_sql(s, "COMMIT", "commit") != 0)
		goto fail;
	sqlite3_finalize(get);
	sqlite3_finalize(set);
	*version_r = m->version;
	log_info("event=db_migrated version=%d what=\"%s\"", m->version, m->what);
	return 0;
fail:
	sqlite3_finalize(get);
	sqlite3_finalize(set);
	/* Keep the first error: the rollback's own message says nothing useful. */
	(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int
migrate(struct sqlite_store *s)
{
	const size_t n = sizeof(migrations) / sizeof(migrations[0]);
	const int latest = migrations[n - 1].version;
	int version = 0;

	for (size_t i = 0; i < n; i++)
		if (migrate_one(s, &migrations[i], &version) != 0)
			return -1;
	/* A newer bulwark has been here: its tables mean things we do not know. */
	if (version > latest) {
		snprintf(s->error, sizeof(s->error),
		    "database schema version %d is newer than this bulwark's (%d)",
		    version, latest);
		return -1;
	}
	return 0;
}

static void
sqlite_close(void *store)
{
	struct sqlite_store *s = store;

	if (s == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	free(s);
}

static int
sqlite_open(const char *data_dir, void **store_r, char **error_r)
{
	struct sqlite_store *s = NULL;
	char *path = NULL;
	int rc;

	*error_r = NULL;
	if (make_data_dir(data_dir, error_r) != 0)
		goto fail;
	if (asprintf(&path, "%s/%s", data_dir, DB_NAME) < 0) {
		path = NULL;
		goto oom;
	}
	if (make_db_file(path, error_r) != 0)
		goto fail;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto oom;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		if (asprintf(error_r, "%s: %s", path, s->db != NULL ?
		    sqlite3_errmsg(s->db) : sqlite3_errstr(rc)) < 0)
			*error_r = NULL;
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	if (set_pragmas(s) != 0 || migrate(s) != 0)
		goto store_error;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &s->stmt[i], NULL) != SQLITE_OK) {
			store_fail(s, "prepare");
			goto store_error;
		}
	}
	free(path);
	*store_r = s;
	return 0;
store_error:
	if (asprintf(error_r, "%s: %s", path, s->error) < 0)
		*error_r = NULL;
	goto fail;
oom:
	*error_r = strdup("out of memory");
fail:
	free(path);
	sqlite_close(s);
	return -1;
}

/* ---- accounts ---- */

static int
sqlite_user_get(void *store, const char *address, struct directory_user *user_r,
    char **hash_r)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_USER_GET);
	int rc, ret;

	bind_text(st, 1, address);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ret = row_to_user(st, user_r, hash_r) == 0 ? 1 : -1;
		if (ret < 0)
			snprintf(s->error, sizeof(s->error), "out of memory");
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = store_fail(s, "user get");
	}
	stmt_done(st);
	return ret;
}

static int
sqlite_user_insert(void *store, const struct directory_user *user, const char *hash)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_USER_INSERT);

	bind_text(st, 1, user->address);
	bind_text(st, 2, hash);
	bind_text(st, 3, user->contact);
	sqlite3_bind_int(st, 4, user->confirmed ? 1 : 0);
	sqlite3_bind_int(st, 5, user->suspended ? 1 : 0);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)user->created);
	return stmt_change(s, st, "user add");
}

static int
sqlite_user_delete(void *store, const char *address)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_USER_DELETE);

	bind_text(st, 1, address);
	return stmt_change(s, st, "user del");
}

static int
sqlite_user_set_hash(void *store, const char *address, const char *hash)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_USER_SET_HASH);

	bind_text(st, 1, address);
	bind_text(st, 2, hash);
	return stmt_change(s, st, "user passwd");
}

static int
sqlite_user_set_flag(void *store, const char *address, enum directory_flag flag,
    bool value)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, flag == DIRECTORY_FLAG_CONFIRMED ?
	    ST_USER_SET_CONFIRMED : ST_USER_SET_SUSPENDED);

	bind_text(st, 1, address);
	sqlite3_bind_int(st, 2, value ? 1 : 0);
	return stmt_change(s, st, "user flag");
}

static int
sqlite_user_set_limits(void *store, const char *address, int messages, int recipients)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_USER_SET_LIMITS);

	bind_text(st, 1, address);
	if (messages < 0)
		sqlite3_bind_null(st, 2);
	else
		sqlite3_bind_int(st, 2, messages);
	if (recipients < 0)
		sqlite3_bind_null(st, 3);
	else
		sqlite3_bind_int(st, 3, recipients);
	return stmt_change(s, st, "user limits");
}

static int
sqlite_user_unlock(void *store, const char *address)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_USER_UNLOCK);

	bind_text(st, 1, address);
	return stmt_change(s, st, "user unlock");
}

static int
sqlite_user_list(void *store, struct directory_user **users_r, size_t *n_r)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_USER_LIST);
	struct directory_user *users = NULL, *grown;
	size_t n = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((grown = reallocarray(users, cap, sizeof(*users))) == NULL)
				goto oom;
			users = grown;
		}
		if (row_to_user(st, &users[n], NULL) != 0)
			goto oom;
		n++;
	}
	if (rc != SQLITE_DONE) {
		store_fail(s, "user list");
		goto fail;
	}
	stmt_done(st);
	*users_r = users;
	*n_r = n;
	return 0;
oom:
	snprintf(s->error, sizeof(s->error), "out of memory");
fail:
	stmt_done(st);
	directory_user_list_free(&users, n);
	return -1;
}

/* ---- aliases ---- */

static int
sqlite_alias_insert(void *store, const char *source, const char *target)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_ALIAS_INSERT);

	bind_text(st, 1, source);
	bind_text(st, 2, target);
	return stmt_change(s, st, "alias add");
}

static int
sqlite_alias_delete(void *store, const char *source, const char *target)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, target != NULL ? ST_ALIAS_DELETE_ONE :
	    ST_ALIAS_DELETE_ALL);

	bind_text(st, 1, source);
	if (target != NULL)
		bind_text(st, 2, target);
	return stmt_change(s, st, "alias del");
}

static int
sqlite_alias_targets(void *store, const char *source,
    struct directory_strings *targets_r)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_ALIAS_TARGETS);
	const unsigned char *t;
	int rc, found = 0;

	bind_text(st, 1, source);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((t = sqlite3_column_text(st, 0)) == NULL)
			continue;
		if (directory_strings_add(targets_r, (const char *)t) != 0) {
			snprintf(s->error, sizeof(s->error), "out of memory");
			stmt_done(st);
			return -1;
		}
		found = 1;
	}
	if (rc != SQLITE_DONE)
		found = store_fail(s, "alias lookup");
	stmt_done(st);
	return found;
}

static int
sqlite_alias_list(void *store, struct directory_strings *list_r)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_ALIAS_LIST);
	char *line;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (asprintf(&line, "%s %s", (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1)) < 0)
			goto oom;
		if (directory_strings_add(list_r, line) != 0) {
			free(line);
			goto oom;
		}
		free(line);
	}
	if (rc != SQLITE_DONE) {
		store_fail(s, "alias list");
		stmt_done(st);
		return -1;
	}
	stmt_done(st);
	return 0;
oom:
	snprintf(s->error, sizeof(s->error), "out of memory");
	stmt_done(st);
	return -1;
}

/* ---- transactions ---- */

static int
sqlite_begin(void *store)
{
	struct sqlite_store *s = store;

	return stmt_change(s, stmt_get(s, ST_BEGIN), "begin") < 0 ? -1 : 0;
}

static int
sqlite_commit(void *store)
{
	struct sqlite_store *s = store;

	return stmt_change(s, stmt_get(s, ST_COMMIT), "commit") < 0 ? -1 : 0;
}

static void
sqlite_rollback(void *store)
{
	struct sqlite_store *s = store;
	char keep[sizeof(s->error)];

	/* Keep the error that made us roll back; the rollback's own says nothing. */
	memcpy(keep, s->error, sizeof(keep));
	if (!sqlite3_get_autocommit(s->db))
		(void)stmt_change(s, stmt_get(s, ST_ROLLBACK), "rollback");
	memcpy(s->error, keep, sizeof(keep));
}

/* ---- lockout: counters, failures, known IPs ---- */

/* A statement whose one row has one integer column: 1 row, 0 none, -1. */
static int
stmt_int64(struct sqlite_store *s, sqlite3_stmt *st, const char *what, int64_t *value_r)
{
	int rc = sqlite3_step(st), ret;

	if (rc == SQLITE_ROW) {
		*value_r = sqlite3_column_int64(st, 0);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = store_fail(s, what);
	}
	stmt_done(st);
	return ret;
}

static int
sqlite_user_set_login(void *store, const char *address, int failed_logins,
    int64_t locked_until)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_USER_SET_LOGIN);

	bind_text(st, 1, address);
	sqlite3_bind_int(st, 2, failed_logins);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)locked_until);
	return stmt_change(s, st, "user login state");
}

static int
sqlite_failure_insert(void *store, const char *address, const char *ip,
    const unsigned char *fingerprint, size_t fplen, int64_t time)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_FAILURE_INSERT);

	bind_text(st, 1, address);
	bind_text(st, 2, ip);
	sqlite3_bind_blob(st, 3, fingerprint, (int)fplen, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)time);
	return stmt_change(s, st, "auth failure add") < 0 ? -1 : 0;
}

static int
sqlite_failure_find(void *store, const char *address, const char *ip,
    const unsigned char *fingerprint, size_t fplen, int64_t since)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_FAILURE_FIND);
	int64_t one;

	bind_text(st, 1, address);
	bind_text(st, 2, ip);
	sqlite3_bind_blob(st, 3, fingerprint, (int)fplen, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)since);
	return stmt_int64(s, st, "auth failure find", &one);
}

static int
sqlite_failure_count(void *store, const char *address, const char *ip, int64_t since)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_FAILURE_COUNT);
	int64_t n = 0;

	bind_text(st, 1, address);
	bind_text(st, 2, ip);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)since);
	if (stmt_int64(s, st, "auth failure count", &n) < 0)
		return -1;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

static int
sqlite_failure_delete(void *store, const char *address, int64_t before)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_FAILURE_DELETE);

	bind_text(st, 1, address);
	sqlite3_bind_int64(st, 2, before == 0 ? INT64_MAX : (sqlite3_int64)before);
	return stmt_change(s, st, "auth failure delete");
}

static int
sqlite_known_ip_get(void *store, const char *address, const char *ip,
    int64_t *last_success_r)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_KNOWN_IP_GET);

	bind_text(st, 1, address);
	bind_text(st, 2, ip);
	return stmt_int64(s, st, "known ip get", last_success_r);
}

static int
sqlite_known_ip_touch(void *store, const char *address, const char *ip, int64_t now)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_KNOWN_IP_TOUCH);

	bind_text(st, 1, address);
	bind_text(st, 2, ip);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
	return stmt_change(s, st, "known ip touch") < 0 ? -1 : 0;
}

/* ---- settings ---- */

static int
sqlite_setting_get(void *store, const char *key, void *buf, size_t buflen,
    size_t *len_r)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_SETTING_GET);
	int rc, ret;

	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *v = sqlite3_column_blob(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);

		*len_r = len;
		if (len > 0 && v != NULL)
			memcpy(buf, v, len < buflen ? len : buflen);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = store_fail(s, "setting get");
	}
	stmt_done(st);
	return ret;
}

static int
sqlite_setting_add(void *store, const char *key, const void *value, size_t len)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_SETTING_ADD);

	bind_text(st, 1, key);
	sqlite3_bind_blob(st, 2, value, (int)len, SQLITE_TRANSIENT);
	return stmt_change(s, st, "setting add");
}

/* ---- tokens ---- */

static int
sqlite_token_insert(void *store, const unsigned char *hash, size_t hashlen,
    const char *address, int64_t created, int64_t expires)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_TOKEN_INSERT);

	sqlite3_bind_blob(st, 1, hash, (int)hashlen, SQLITE_TRANSIENT);
	bind_text(st, 2, address);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)created);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)expires);
	return stmt_change(s, st, "token add") < 0 ? -1 : 0;
}

static int
sqlite_token_get(void *store, const unsigned char *hash, size_t hashlen,
    char **address_r, int64_t *expires_r, int64_t *used_r)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_TOKEN_GET);
	int rc, ret;

	*address_r = NULL;
	sqlite3_bind_blob(st, 1, hash, (int)hashlen, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*expires_r = sqlite3_column_int64(st, 1);
		*used_r = sqlite3_column_int64(st, 2);
		if ((*address_r = column_strdup(st, 0)) == NULL) {
			snprintf(s->error, sizeof(s->error), "out of memory");
			ret = -1;
		} else {
			ret = 1;
		}
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = store_fail(s, "token get");
	}
	stmt_done(st);
	return ret;
}

static int
sqlite_token_use(void *store, const unsigned char *hash, size_t hashlen, int64_t now)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_TOKEN_USE);

	sqlite3_bind_blob(st, 1, hash, (int)hashlen, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	return stmt_change(s, st, "token use");
}

/* ---- stats ---- */

static int
sqlite_stats(void *store, int64_t now, struct directory_stats *st_r)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_STATS_USERS);

	memset(st_r, 0, sizeof(*st_r));
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	if (sqlite3_step(st) != SQLITE_ROW) {
		store_fail(s, "stats");
		stmt_done(st);
		return -1;
	}
	st_r->users = (long)sqlite3_column_int64(st, 0);
	st_r->confirmed = (long)sqlite3_column_int64(st, 1);
	st_r->unconfirmed = (long)sqlite3_column_int64(st, 2);
	st_r->suspended = (long)sqlite3_column_int64(st, 3);
	st_r->locked = (long)sqlite3_column_int64(st, 4);
	stmt_done(st);
	st = stmt_get(s, ST_STATS_TOKENS);
	if (sqlite3_step(st) != SQLITE_ROW) {
		store_fail(s, "stats");
		stmt_done(st);
		return -1;
	}
	st_r->confirmations_requested = (long)sqlite3_column_int64(st, 0);
	st_r->confirmations_completed = (long)sqlite3_column_int64(st, 1);
	stmt_done(st);
	return 0;
}

/* ---- bans ---- */

static int
sqlite_ban_save(void *store, const struct directory_ban *ban)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_BAN_SAVE);

	bind_text(st, 1, ban->network);
	bind_text(st, 2, ban->reason);
	sqlite3_bind_int(st, 3, ban->evidence);
	sqlite3_bind_int(st, 4, ban->level);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)ban->created);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)ban->expires);
	return stmt_change(s, st, "ban save") < 0 ? -1 : 0;
}

static int
sqlite_ban_delete(void *store, const char *network)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_BAN_DELETE);

	bind_text(st, 1, network);
	return stmt_change(s, st, "ban delete");
}

static int
sqlite_ban_list(void *store, struct directory_ban **bans_r, size_t *n_r)
{
	struct sqlite_store *s = store;
	sqlite3_stmt *st = stmt_get(s, ST_BAN_LIST);
	struct directory_ban *bans = NULL, *grown, *b;
	size_t n = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((grown = reallocarray(bans, cap, sizeof(*bans))) == NULL)
				goto oom;
			bans = grown;
		}
		b = &bans[n];
		memset(b, 0, sizeof(*b));
		n++;
		if ((b->network = column_strdup(st, 0)) == NULL ||
		    (b->reason = column_strdup(st, 1)) == NULL)
			goto oom;
		b->evidence = sqlite3_column_int(st, 2);
		b->level = sqlite3_column_int(st, 3);
		b->created = sqlite3_column_int64(st, 4);
		b->expires = sqlite3_column_int64(st, 5);
	}
	if (rc != SQLITE_DONE) {
		store_fail(s, "ban list");
		goto fail;
	}
	stmt_done(st);
	*bans_r = bans;
	*n_r = n;
	return 0;
oom:
	snprintf(s->error, sizeof(s->error), "out of memory");
fail:
	stmt_done(st);
	directory_ban_list_free(&bans, n);
	return -1;
}

static int
sqlite_data_version(void *store, int64_t *version_r)
{
	struct sqlite_store *s = store;

	return stmt_int64(s, stmt_get(s, ST_DATA_VERSION), "data_version",
	    version_r) == 1 ? 0 : -1;
}

const struct directory_backend directory_backend_sqlite = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.error = sqlite_error,
	.user_get = sqlite_user_get,
	.user_insert = sqlite_user_insert,
	.user_delete = sqlite_user_delete,
	.user_set_hash = sqlite_user_set_hash,
	.user_set_flag = sqlite_user_set_flag,
	.user_unlock = sqlite_user_unlock,
	.user_set_limits = sqlite_user_set_limits,
	.user_list = sqlite_user_list,
	.alias_insert = sqlite_alias_insert,
	.alias_delete = sqlite_alias_delete,
	.alias_targets = sqlite_alias_targets,
	.alias_list = sqlite_alias_list,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.user_set_login = sqlite_user_set_login,
	.failure_insert = sqlite_failure_insert,
	.failure_find = sqlite_failure_find,
	.failure_count = sqlite_failure_count,
	.failure_delete = sqlite_failure_delete,
	.known_ip_get = sqlite_known_ip_get,
	.known_ip_touch = sqlite_known_ip_touch,
	.setting_get = sqlite_setting_get,
	.setting_add = sqlite_setting_add,
	.token_insert = sqlite_token_insert,
	.token_get = sqlite_token_get,
	.token_use = sqlite_token_use,
	.stats = sqlite_stats,
	.ban_save = sqlite_ban_save,
	.ban_delete = sqlite_ban_delete,
	.ban_list = sqlite_ban_list,
	.data_version = sqlite_data_version,
};
