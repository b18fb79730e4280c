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
 * one (v2: tokens, auth failures, bans, events...), and the runner does the
 * rest.
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
	ST_USER_UNLOCK,
	ST_USER_LIST,
	ST_ALIAS_INSERT,
	ST_ALIAS_DELETE_ONE,
	ST_ALIAS_DELETE_ALL,
	ST_ALIAS_TARGETS,
	ST_ALIAS_LIST,
	ST_COUNT
};

#define USER_COLUMNS \
	"address, contact, confirmed, suspended, locked_until, failed_logins, created, password_hash"

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
	[ST_USER_UNLOCK] = "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE address = ?1",
	[ST_USER_LIST] = "SELECT " USER_COLUMNS " FROM users ORDER BY address",
	[ST_ALIAS_INSERT] = "INSERT OR IGNORE INTO aliases (source, target) VALUES (?1, ?2)",
	[ST_ALIAS_DELETE_ONE] = "DELETE FROM aliases WHERE source = ?1 AND target = ?2",
	[ST_ALIAS_DELETE_ALL] = "DELETE FROM aliases WHERE source = ?1",
	[ST_ALIAS_TARGETS] = "SELECT target FROM aliases WHERE source = ?1 ORDER BY target",
	[ST_ALIAS_LIST] = "SELECT source, target FROM aliases ORDER BY source, target",
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
	snprintf(s->error, sizeof(s->error), "%s: %s", what, sqlite3_errmsg(s->db));
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
 */
static int
make_db_file(const char *path, char **error_r)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		if (asprintf(error_r, "cannot open %s: %s", path, strerror(errno)) < 0)
			*error_r = NULL;
		return -1;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
		log_warnx("event=db_mode_tightened path=%s mode=%03o", path,
		    (unsigned)(st.st_mode & 0777));
		if (fchmod(fd, st.st_mode & 0700) != 0)
			log_warn("event=db_chmod_failed path=%s", path);
	}
	close(fd);
	return 0;
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
	.user_list = sqlite_user_list,
	.alias_insert = sqlite_alias_insert,
	.alias_delete = sqlite_alias_delete,
	.alias_targets = sqlite_alias_targets,
	.alias_list = sqlite_alias_list,
};
