/*
 * imap_index.c: the IMAP index of one account, a SQLite database (WAL) in the
 * Maildir root: per mailbox UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ, per message
 * UID, file name, flags, keywords, modseq, INTERNALDATE, RFC822.SIZE and the
 * cached ENVELOPE/BODY/BODYSTRUCTURE/header block. Prepared statements only.
 * The Maildir stays the truth: the index is a cache the store rebuilds.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "imap/imap_store_private.h"

enum {
	S_BEGIN, S_COMMIT, S_MBOX_GET, S_MBOX_ADD, S_MBOX_UPDATE, S_MBOX_RENAME, S_MBOX_RENAME_SUB,
	S_MBOX_DELETE, S_MSG_DELETE_ALL, S_CACHE_DELETE_ALL, S_MSG_LOAD, S_MSG_ADD, S_MSG_UPDATE,
	S_MSG_DELETE, S_CACHE_DELETE,
	S_CACHE_ENVELOPE, S_CACHE_BODY, S_CACHE_BODYSTRUCTURE, S_CACHE_HEADER, S_CACHE_PUT,
	S_CACHE_COPY, S_RANGE_ENVELOPE, S_RANGE_BODY, S_RANGE_BODYSTRUCTURE, S_RANGE_HEADER,
	S_COUNT
};

static const char *const sqls[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_MBOX_GET] = "SELECT id, uidvalidity, uidnext, highestmodseq, keywords FROM mailbox WHERE name = ?1",
	[S_MBOX_ADD] = "INSERT INTO mailbox (name, uidvalidity, uidnext, highestmodseq, keywords) "
	    "VALUES (?1, ?2, ?3, 1, '')",
	[S_MBOX_UPDATE] = "UPDATE mailbox SET uidnext = ?2, highestmodseq = ?3, keywords = ?4 WHERE id = ?1",
	[S_MBOX_RENAME] = "UPDATE mailbox SET name = ?2 WHERE name = ?1",
	/* children: ".a.x" -> ".b.x" */
	[S_MBOX_RENAME_SUB] = "UPDATE mailbox SET name = ?2 || substr(name, length(?1) + 1) "
	    "WHERE substr(name, 1, length(?1) + 1) = ?1 || '.'",
	[S_MBOX_DELETE] = "DELETE FROM mailbox WHERE id = ?1",
	[S_MSG_DELETE_ALL] = "DELETE FROM msg WHERE mailbox = ?1",
	[S_CACHE_DELETE_ALL] = "DELETE FROM cache WHERE mailbox = ?1",
	[S_MSG_LOAD] = "SELECT uid, fname, flags, keywords, modseq, internaldate, size FROM msg "
	    "WHERE mailbox = ?1 ORDER BY uid",
	[S_MSG_ADD] = "INSERT OR REPLACE INTO msg (mailbox, uid, fname, flags, keywords, modseq, "
	    "internaldate, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_MSG_UPDATE] = "UPDATE msg SET fname = ?3, flags = ?4, keywords = ?5, modseq = ?6 "
	    "WHERE mailbox = ?1 AND uid = ?2",
	[S_MSG_DELETE] = "DELETE FROM msg WHERE mailbox = ?1 AND uid = ?2",
	[S_CACHE_DELETE] = "DELETE FROM cache WHERE mailbox = ?1 AND uid = ?2",
	[S_CACHE_ENVELOPE] = "SELECT envelope FROM cache WHERE mailbox = ?1 AND uid = ?2",
	[S_CACHE_BODY] = "SELECT body FROM cache WHERE mailbox = ?1 AND uid = ?2",
	[S_CACHE_BODYSTRUCTURE] = "SELECT bodystructure FROM cache WHERE mailbox = ?1 AND uid = ?2",
	[S_CACHE_HEADER] = "SELECT header FROM cache WHERE mailbox = ?1 AND uid = ?2",
	[S_CACHE_PUT] = "INSERT OR REPLACE INTO cache (mailbox, uid, envelope, body, bodystructure, "
	    "header) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_CACHE_COPY] = "INSERT OR REPLACE INTO cache (mailbox, uid, envelope, body, bodystructure, "
	    "header) SELECT ?3, ?4, envelope, body, bodystructure, header FROM cache "
	    "WHERE mailbox = ?1 AND uid = ?2",
	[S_RANGE_ENVELOPE] = "SELECT uid, envelope FROM cache WHERE mailbox = ?1 AND uid >= ?2 "
	    "ORDER BY uid LIMIT ?3",
	[S_RANGE_BODY] = "SELECT uid, body FROM cache WHERE mailbox = ?1 AND uid >= ?2 "
	    "ORDER BY uid LIMIT ?3",
	[S_RANGE_BODYSTRUCTURE] = "SELECT uid, bodystructure FROM cache WHERE mailbox = ?1 "
	    "AND uid >= ?2 ORDER BY uid LIMIT ?3",
	[S_RANGE_HEADER] = "SELECT uid, header FROM cache WHERE mailbox = ?1 AND uid >= ?2 "
	    "ORDER BY uid LIMIT ?3",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS mailbox ("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, uidvalidity INTEGER NOT NULL,"
    " uidnext INTEGER NOT NULL, highestmodseq INTEGER NOT NULL, keywords TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS msg ("
    " mailbox INTEGER NOT NULL, uid INTEGER NOT NULL, fname TEXT NOT NULL,"
    " flags INTEGER NOT NULL, keywords TEXT NOT NULL, modseq INTEGER NOT NULL,"
    " internaldate INTEGER NOT NULL, size INTEGER NOT NULL,"
    " PRIMARY KEY (mailbox, uid)) WITHOUT ROWID;"
    /* the parsed-message cache apart, so loading a mailbox reads small rows */
    "CREATE TABLE IF NOT EXISTS cache ("
    " mailbox INTEGER NOT NULL, uid INTEGER NOT NULL,"
    " envelope TEXT, body TEXT, bodystructure TEXT, header BLOB,"
    " PRIMARY KEY (mailbox, uid));";

struct imap_index {
	sqlite3 *db;             /* NULL while parked */
	sqlite3_stmt *st[S_COUNT];
	int depth;               /* nested begin/commit */
	int64_t last_use;        /* monotonic ms */
	char *path;
};

/*
 * Before SQLite initialises (hence a constructor; sqlite3_config() is
 * refused later, harmlessly): no bulk page-cache block per connection.
 * SQLite gives every connection 20 pages (87 KB) at its first read, which
 * is most of what 1,000 IMAP accounts open at once would cost; pages are
 * then allocated one by one as used, for the directory database too.
 */
__attribute__((constructor)) static void
imap_index_sqlite_config(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)0, 0, 0);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
db_open(struct imap_index *ix)
{
	if (sqlite3_open_v2(ix->path, &ix->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		log_warnx("imap index %s: %s", ix->path, ix->db ? sqlite3_errmsg(ix->db) : "no memory");
		goto fail;
	}
	sqlite3_busy_timeout(ix->db, 5000);
	if (sqlite3_exec(ix->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	    "PRAGMA cache_size=-1024; PRAGMA mmap_size=268435456;", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(ix->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		log_warnx("imap index %s: %s", ix->path, sqlite3_errmsg(ix->db));
		goto fail;
	}
	return 0;
fail:
	sqlite3_close(ix->db);
	ix->db = NULL;
	return -1;
}

static void
db_close(struct imap_index *ix)
{
	for (int i = 0; i < S_COUNT; i++) {
		sqlite3_finalize(ix->st[i]);
		ix->st[i] = NULL;
	}
	sqlite3_close(ix->db);
	ix->db = NULL;
}

/* Statements are prepared on first use, and the connection itself is
 * (re)opened on first use after imap_index_park(): an idle account (IMAP
 * IDLE) holds no SQLite memory at all (a connection costs ~150 KB). A
 * NULL statement is safe: SQLite's bind/step/reset answer SQLITE_MISUSE,
 * so every caller takes its error path. */
static sqlite3_stmt *
stmt(struct imap_index *ix, int which)
{
	sqlite3_stmt *s;

	ix->last_use = now_ms();
	if (ix->db == NULL && db_open(ix) == -1)
		return NULL;
	if ((s = ix->st[which]) == NULL) {
		if (sqlite3_prepare_v3(ix->db, sqls[which], -1, SQLITE_PREPARE_PERSISTENT,
		    &ix->st[which], NULL) != SQLITE_OK) {
			log_warnx("imap index: prepare: %s", sqlite3_errmsg(ix->db));
			ix->st[which] = NULL;
		}
		s = ix->st[which];
	}
	if (s != NULL) {
		/* sqlite3_clear_bindings() does not take NULL without API armor */
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	return s;
}

static int
step_done(struct imap_index *ix, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_warnx("imap index: %s", ix->db != NULL ? sqlite3_errmsg(ix->db) : "not open");
		return -1;
	}
	return 0;
}

struct imap_index *
imap_index_open(const char *path, bool *created_r)
{
	struct imap_index *ix = calloc(1, sizeof(*ix));
	FILE *f;

	if (ix == NULL || (ix->path = strdup(path)) == NULL)
		goto fail;
	f = fopen(path, "r");
	*created_r = f == NULL;
	if (f != NULL)
		fclose(f);
	if (db_open(ix) == -1) {
		/* damaged (not a database, corrupt): it is only a cache of the
		 * Maildir, so set it aside and rebuild (the uidlist keeps UIDs) */
		char aside[PATH_MAX], side[PATH_MAX];

		if (fs_path(aside, sizeof(aside), "%s.damaged", path) == -1 ||
		    rename(path, aside) == -1)
			goto fail;
		log_warnx("imap index %s: damaged, set aside as %s and rebuilt", path, aside);
		if (fs_path(side, sizeof(side), "%s-wal", path) == 0)
			(void)unlink(side);
		if (fs_path(side, sizeof(side), "%s-shm", path) == 0)
			(void)unlink(side);
		*created_r = false;  /* the mailboxes exist: no special-use folders again */
		if (db_open(ix) == -1)
			goto fail;
	}
	ix->last_use = now_ms();
	return ix;
fail:
	imap_index_free(&ix);
	return NULL;
}

void
imap_index_park(struct imap_index *ix, int64_t idle_ms)
{
	if (ix->db != NULL && ix->depth == 0 && now_ms() - ix->last_use >= idle_ms)
		db_close(ix);
}

void
imap_index_free(struct imap_index **ixp)
{
	struct imap_index *ix = *ixp;

	if (ix == NULL)
		return;
	db_close(ix);
	free(ix->path);
	free(ix);
	*ixp = NULL;
}

int
imap_index_begin(struct imap_index *ix)
{
	if (ix->depth++ > 0)
		return 0;
	return step_done(ix, stmt(ix, S_BEGIN));
}

int
imap_index_commit(struct imap_index *ix)
{
	if (ix->depth == 0 || --ix->depth > 0)
		return 0;
	return step_done(ix, stmt(ix, S_COMMIT));
}

int
imap_index_mailbox_get(struct imap_index *ix, const char *dname, int64_t *id_r,
    uint32_t *uidvalidity_r, uint32_t *uidnext_r, uint64_t *hms_r, char **keywords_r)
{
	sqlite3_stmt *s = stmt(ix, S_MBOX_GET);
	int rc;

	sqlite3_bind_text(s, 1, dname, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		log_warnx("imap index: %s", ix->db != NULL ? sqlite3_errmsg(ix->db) : "not open");
		sqlite3_reset(s);
		return -1;
	}
	*id_r = sqlite3_column_int64(s, 0);
	*uidvalidity_r = (uint32_t)sqlite3_column_int64(s, 1);
	*uidnext_r = (uint32_t)sqlite3_column_int64(s, 2);
	*hms_r = (uint64_t)sqlite3_column_int64(s, 3);
	*keywords_r = strdup((const char *)sqlite3_column_text(s, 4) ?
	    (const char *)sqlite3_column_text(s, 4) : "");
	sqlite3_reset(s);
	return *keywords_r == NULL ? -1 : 1;
}

int
imap_index_mailbox_add(struct imap_index *ix, const char *dname, uint32_t uidvalidity,
    uint32_t uidnext, int64_t *id_r)
{
	sqlite3_stmt *s = stmt(ix, S_MBOX_ADD);

	sqlite3_bind_text(s, 1, dname, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, uidvalidity);
	sqlite3_bind_int64(s, 3, uidnext);
	if (step_done(ix, s) == -1)
		return -1;
	*id_r = ix->db != NULL ? sqlite3_last_insert_rowid(ix->db) : 0;
	return 0;
}

int
imap_index_mailbox_update(struct imap_index *ix, int64_t id, uint32_t uidnext, uint64_t hms,
    const char *keywords)
{
	sqlite3_stmt *s = stmt(ix, S_MBOX_UPDATE);

	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, uidnext);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)hms);
	sqlite3_bind_text(s, 4, keywords, -1, SQLITE_STATIC);
	return step_done(ix, s);
}

int
imap_index_mailbox_rename(struct imap_index *ix, const char *from, const char *to)
{
	sqlite3_stmt *s;

	if (imap_index_begin(ix) == -1)
		return -1;
	s = stmt(ix, S_MBOX_RENAME);
	sqlite3_bind_text(s, 1, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, to, -1, SQLITE_STATIC);
	if (step_done(ix, s) == -1) {
		imap_index_commit(ix);
		return -1;
	}
	s = stmt(ix, S_MBOX_RENAME_SUB);
	sqlite3_bind_text(s, 1, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, to, -1, SQLITE_STATIC);
	if (step_done(ix, s) == -1) {
		imap_index_commit(ix);
		return -1;
	}
	return imap_index_commit(ix);
}

int
imap_index_mailbox_delete(struct imap_index *ix, int64_t id)
{
	sqlite3_stmt *s;
	int ret = 0;

	if (imap_index_begin(ix) == -1)
		return -1;
	s = stmt(ix, S_MSG_DELETE_ALL);
	sqlite3_bind_int64(s, 1, id);
	ret |= step_done(ix, s);
	s = stmt(ix, S_CACHE_DELETE_ALL);
	sqlite3_bind_int64(s, 1, id);
	ret |= step_done(ix, s);
	s = stmt(ix, S_MBOX_DELETE);
	sqlite3_bind_int64(s, 1, id);
	ret |= step_done(ix, s);
	ret |= imap_index_commit(ix);
	return ret;
}

int
imap_index_msgs_load(struct imap_index *ix, int64_t id,
    int (*cb)(void *ctx, const struct index_msg *m), void *ctx)
{
	sqlite3_stmt *s = stmt(ix, S_MSG_LOAD);
	int rc;

	sqlite3_bind_int64(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct index_msg m = {
			.uid = (uint32_t)sqlite3_column_int64(s, 0),
			.fname = (const char *)sqlite3_column_text(s, 1),
			.flags = (uint32_t)sqlite3_column_int64(s, 2),
			.keywords = (const char *)sqlite3_column_text(s, 3),
			.modseq = (uint64_t)sqlite3_column_int64(s, 4),
			.internaldate = sqlite3_column_int64(s, 5),
			.size = (uint64_t)sqlite3_column_int64(s, 6),
		};

		if (m.fname == NULL)
			continue;
		if (m.keywords == NULL)
			m.keywords = "";
		if (cb(ctx, &m) == -1) {
			sqlite3_reset(s);
			return -1;
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		log_warnx("imap index: %s", ix->db != NULL ? sqlite3_errmsg(ix->db) : "not open");
		return -1;
	}
	return 0;
}

int
imap_index_msg_add(struct imap_index *ix, int64_t id, const struct index_msg *m)
{
	sqlite3_stmt *s = stmt(ix, S_MSG_ADD);

	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, m->uid);
	sqlite3_bind_text(s, 3, m->fname, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, m->flags);
	sqlite3_bind_text(s, 5, m->keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)m->modseq);
	sqlite3_bind_int64(s, 7, m->internaldate);
	sqlite3_bind_int64(s, 8, (sqlite3_int64)m->size);
	return step_done(ix, s);
}

int
imap_index_msg_update(struct imap_index *ix, int64_t id, const struct index_msg *m)
{
	sqlite3_stmt *s = stmt(ix, S_MSG_UPDATE);

	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, m->uid);
	sqlite3_bind_text(s, 3, m->fname, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, m->flags);
	sqlite3_bind_text(s, 5, m->keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)m->modseq);
	return step_done(ix, s);
}

int
imap_index_msg_delete(struct imap_index *ix, int64_t id, uint32_t uid)
{
	sqlite3_stmt *s = stmt(ix, S_MSG_DELETE);
	int ret;

	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, uid);
	ret = step_done(ix, s);
	s = stmt(ix, S_CACHE_DELETE);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, uid);
	return ret | step_done(ix, s);
}

int
imap_index_cache_get(struct imap_index *ix, int64_t id, uint32_t uid, enum index_cache what,
    char **val_r, size_t *len_r)
{
	static const int which[] = {
		[INDEX_ENVELOPE] = S_CACHE_ENVELOPE, [INDEX_BODY] = S_CACHE_BODY,
		[INDEX_BODYSTRUCTURE] = S_CACHE_BODYSTRUCTURE, [INDEX_HEADER] = S_CACHE_HEADER,
	};
	sqlite3_stmt *s = stmt(ix, which[what]);
	const void *v;
	int rc, n;

	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, uid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE || (rc == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_NULL)) {
		sqlite3_reset(s);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		log_warnx("imap index: %s", ix->db != NULL ? sqlite3_errmsg(ix->db) : "not open");
		sqlite3_reset(s);
		return -1;
	}
	v = sqlite3_column_blob(s, 0);
	n = sqlite3_column_bytes(s, 0);
	*val_r = malloc((size_t)n + 1);
	if (*val_r == NULL) {
		sqlite3_reset(s);
		return -1;
	}
	if (n > 0)
		memcpy(*val_r, v, (size_t)n);
	(*val_r)[n] = '\0';
	if (len_r != NULL)
		*len_r = (size_t)n;
	sqlite3_reset(s);
	return 1;
}

int
imap_index_cache_put(struct imap_index *ix, int64_t id, uint32_t uid, const char *envelope,
    const char *body, const char *bodystructure, const char *header, size_t hlen)
{
	sqlite3_stmt *s = stmt(ix, S_CACHE_PUT);

	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, uid);
	sqlite3_bind_text(s, 3, envelope, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, body, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, bodystructure, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(s, 6, header, hlen, SQLITE_STATIC);
	return step_done(ix, s);
}

int
imap_index_cache_copy(struct imap_index *ix, int64_t src_id, uint32_t src_uid, int64_t dst_id,
    uint32_t dst_uid)
{
	sqlite3_stmt *s = stmt(ix, S_CACHE_COPY);

	sqlite3_bind_int64(s, 1, src_id);
	sqlite3_bind_int64(s, 2, src_uid);
	sqlite3_bind_int64(s, 3, dst_id);
	sqlite3_bind_int64(s, 4, dst_uid);
	return step_done(ix, s);
}

int
imap_index_cache_range(struct imap_index *ix, int64_t id, uint32_t first_uid, size_t max,
    enum index_cache what, int (*cb)(void *ctx, uint32_t uid, const char *val, size_t len),
    void *ctx)
{
	static const int which[] = {
		[INDEX_ENVELOPE] = S_RANGE_ENVELOPE, [INDEX_BODY] = S_RANGE_BODY,
		[INDEX_BODYSTRUCTURE] = S_RANGE_BODYSTRUCTURE, [INDEX_HEADER] = S_RANGE_HEADER,
	};
	sqlite3_stmt *s = stmt(ix, which[what]);
	int rc;

	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, first_uid);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_type(s, 1) == SQLITE_NULL)
			continue;
		if (cb(ctx, (uint32_t)sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1),
		    (size_t)sqlite3_column_bytes(s, 1)) == -1)
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}
