/*
 * test_imap_store.c: tests for src/imap/imap_store.c, imap_index.c and
 * imap_mailbox.c on a mkdtemp(3) data directory: the mailbox hierarchy
 * (create/list/rename/delete), APPEND then read byte-exact, flags persisted
 * in Maildir file names, UIDs stable across reopen and after the index is
 * deleted, two views seeing each other's changes, external delivery into
 * new/, EXPUNGE, COPY/MOVE UIDs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "delivery/delivery.h"
#include "imap/imap_store.h"

#define ADDR "bob@example.test"

struct fixture {
	char dir[256];
	char root[1024];
};

static int
rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_imap_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(delivery_maildir_path(f->dir, ADDR, f->root, sizeof(f->root)), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct imap_store *
open_store(struct fixture *f)
{
	enum imap_store_error err = IMAP_STORE_ERR_IO;
	struct imap_store *st = imap_store_open(f->dir, ADDR, &err);

	assert_non_null(st);
	return st;
}

static unsigned
attrs_of(struct imap_store *st, const char *name, bool *found_r)
{
	struct imap_mailbox_info *list;
	size_t n;
	unsigned attrs = 0;

	*found_r = false;
	assert_int_equal(imap_store_list(st, &list, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i].name, name) == 0) {
			*found_r = true;
			attrs = list[i].attrs;
		}
	}
	imap_store_infos_free(&list, n);
	return attrs;
}

static bool
listed(struct imap_store *st, const char *name)
{
	bool found;
	unsigned attrs = attrs_of(st, name, &found);

	return found && !(attrs & IMAP_MBOX_NOSELECT);
}

static uint32_t
append(struct imap_store *st, const char *mbox, const char *msg, uint32_t flags)
{
	enum imap_store_error err;
	uint32_t uv = 0, uid = 0;

	assert_int_equal(imap_store_append(st, mbox, msg, strlen(msg), flags, NULL, -1, &uv, &uid,
	    &err), 0);
	assert_true(uv != 0);
	assert_true(uid != 0);
	return uid;
}

/* Count files in root/sub whose name contains needle. */
static int
count_files(const char *dir, const char *sub, const char *needle)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' && (needle == NULL || strstr(de->d_name, needle) != NULL))
			n++;
	}
	closedir(d);
	return n;
}

static void
test_defaults_and_hierarchy(void **state)
{
	struct fixture *f = *state;
	struct imap_store *st = open_store(f);
	enum imap_store_error err;
	bool found;
	char path[PATH_MAX];
	struct stat sb;

	/* first use: INBOX and the special-use folders */
	assert_true(listed(st, "INBOX"));
	assert_true(attrs_of(st, "Sent", &found) & IMAP_MBOX_SENT);
	assert_true(attrs_of(st, "Trash", &found) & IMAP_MBOX_TRASH);
	assert_true(attrs_of(st, "Junk", &found) & IMAP_MBOX_JUNK);
	assert_true(attrs_of(st, "Drafts", &found) & IMAP_MBOX_DRAFTS);
	assert_true(attrs_of(st, "Archive", &found) & IMAP_MBOX_ARCHIVE);
	assert_true(attrs_of(st, "Trash", &found) & IMAP_MBOX_SUBSCRIBED);

	/* create: Maildir++ ".a.b", the maildirfolder marker, "/" on the wire */
	assert_int_equal(imap_store_create(st, "Work/Projects", &err), 0);
	snprintf(path, sizeof(path), "%s/.Work.Projects/maildirfolder", f->root);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(listed(st, "Work/Projects"));
	/* the parent does not exist: \Noselect \HasChildren */
	assert_true(attrs_of(st, "Work", &found) & IMAP_MBOX_NOSELECT);
	assert_true(attrs_of(st, "Work", &found) & IMAP_MBOX_HASCHILDREN);
	assert_int_equal(imap_store_create(st, "Work/", &err), 0);  /* trailing delimiter */
	assert_true(listed(st, "Work"));
	assert_int_equal(imap_store_create(st, "Work", &err), -1);
	assert_int_equal(err, IMAP_STORE_ERR_EXISTS);
	assert_int_equal(imap_store_create(st, "inbox", &err), -1);
	assert_int_equal(err, IMAP_STORE_ERR_EXISTS);

	/* a "." inside a name is kept, encoded on disk */
	assert_int_equal(imap_store_create(st, "v1.2", &err), 0);
	snprintf(path, sizeof(path), "%s/.v1&AC4-2", f->root);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(listed(st, "v1.2"));

	/* bad names */
	static const char *const bad[] = { "", "a//b", "/a", "a/../b", "..", "a\x01", "a*",
	    "caf\xc3\xa9", "x&AC4-y" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(imap_store_create(st, bad[i], &err), -1);
		assert_int_equal(err, IMAP_STORE_ERR_BADNAME);
	}

	/* rename carries children along */
	assert_int_equal(imap_store_rename(st, "Work", "Job", &err), 0);
	assert_true(listed(st, "Job"));
	assert_true(listed(st, "Job/Projects"));
	assert_false(listed(st, "Work"));
	assert_false(listed(st, "Work/Projects"));
	assert_int_equal(imap_store_rename(st, "Nope", "Other", &err), -1);
	assert_int_equal(err, IMAP_STORE_ERR_NONEXISTENT);
	assert_int_equal(imap_store_rename(st, "Job", "Sent", &err), -1);
	assert_int_equal(err, IMAP_STORE_ERR_EXISTS);
	assert_int_equal(imap_store_rename(st, "Job", "Job/Sub", &err), -1);
	/* an implied parent (\Noselect) renames its children */
	assert_int_equal(imap_store_create(st, "Old/Sub", &err), 0);
	assert_int_equal(imap_store_rename(st, "Old", "New", &err), 0);
	assert_true(listed(st, "New/Sub"));
	assert_false(listed(st, "Old/Sub"));
	assert_int_equal(imap_store_rename(st, "Old", "Newer", &err), -1);
	assert_int_equal(err, IMAP_STORE_ERR_NONEXISTENT);

	/* delete: the mailbox only (Maildir++ is flat), never INBOX */
	assert_int_equal(imap_store_delete(st, "Job", &err), 0);
	assert_false(listed(st, "Job"));
	assert_true(listed(st, "Job/Projects"));
	assert_int_equal(imap_store_delete(st, "INBOX", &err), -1);
	assert_int_equal(err, IMAP_STORE_ERR_INBOX);
	assert_int_equal(imap_store_delete(st, "Job", &err), -1);
	assert_int_equal(err, IMAP_STORE_ERR_NONEXISTENT);

	/* subscriptions */
	assert_int_equal(imap_store_subscribe(st, "Job/Projects", true, &err), 0);
	assert_int_equal(imap_store_subscribe(st, "Sent", true, &err), 0);
	assert_true(attrs_of(st, "Job/Projects", &found) & IMAP_MBOX_SUBSCRIBED);
	assert_int_equal(imap_store_subscribe(st, "Job/Projects", false, &err), 0);
	assert_false(attrs_of(st, "Job/Projects", &found) & IMAP_MBOX_SUBSCRIBED);
	assert_true(attrs_of(st, "Sent", &found) & IMAP_MBOX_SUBSCRIBED);
	imap_store_close(&st);
	assert_null(st);
}

static const char msg1[] = "From: a@example.test\r\nSubject: one\r\n\r\nbody line\r\nsecond\r\n";

static void
test_append_read_flags(void **state)
{
	struct fixture *f = *state;
	struct imap_store *st = open_store(f);
	struct imap_mailbox *mb;
	enum imap_store_error err;
	const struct imap_msg *m;
	size_t len;
	char *data;
	uint32_t uid;
	static const char *const kw[] = { "$Junk", "work", NULL };

	uid = append(st, "INBOX", msg1, IMAP_FLAG_SEEN);
	assert_int_equal(uid, 1);
	/* stored with LF line ends, flags in the name */
	assert_int_equal(count_files(f->root, "cur", ":2,S"), 1);
	mb = imap_mailbox_open(st, "INBOX", false, &err);
	assert_non_null(mb);
	assert_int_equal(imap_mailbox_count(mb), 1);
	m = imap_mailbox_msg(mb, 1);
	assert_int_equal(m->uid, 1);
	assert_int_equal(m->size, strlen(msg1));
	assert_true(m->flags & IMAP_FLAG_SEEN);
	assert_true(m->flags & IMAP_FLAG_RECENT);
	data = imap_mailbox_read(mb, 1, &len, &err);
	assert_non_null(data);
	assert_int_equal(len, strlen(msg1));
	assert_memory_equal(data, msg1, len);
	free(data);

	/* STORE renames the file; keywords are letters, as Dovecot writes them */
	assert_int_equal(imap_mailbox_store(mb, 1, IMAP_FLAGS_ADD, IMAP_FLAG_FLAGGED | IMAP_FLAG_ANSWERED,
	    kw, &err), 0);
	assert_int_equal(count_files(f->root, "cur", ":2,FRSab"), 1);
	assert_int_equal(count_files(f->root, ".", "dovecot-keywords"), 1);
	m = imap_mailbox_msg(mb, 1);
	assert_int_equal(m->flags & ~IMAP_FLAG_RECENT, IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED |
	    IMAP_FLAG_ANSWERED);
	assert_non_null(m->keywords);
	assert_string_equal(m->keywords[0], "$Junk");
	assert_string_equal(m->keywords[1], "work");
	assert_null(m->keywords[2]);
	assert_string_equal(imap_mailbox_keywords(mb)[0], "$Junk");
	assert_int_equal(imap_mailbox_store(mb, 1, IMAP_FLAGS_REMOVE, IMAP_FLAG_SEEN, NULL, &err), 0);
	assert_int_equal(count_files(f->root, "cur", ":2,FR"), 1);
	assert_int_equal(imap_mailbox_store(mb, 1, IMAP_FLAGS_SET, IMAP_FLAG_DRAFT, NULL, &err), 0);
	assert_int_equal(count_files(f->root, "cur", ":2,D"), 1);
	assert_null(imap_mailbox_msg(mb, 1)->keywords[0]);
	assert_null(imap_mailbox_msg(mb, 2));
	imap_mailbox_close(&mb);
	imap_store_close(&st);

	/* reopen: flags and keywords persisted */
	st = open_store(f);
	mb = imap_mailbox_open(st, "INBOX", false, &err);
	assert_non_null(mb);
	m = imap_mailbox_msg(mb, 1);
	assert_int_equal(m->flags, IMAP_FLAG_DRAFT);
	assert_int_equal(m->uid, 1);
	imap_mailbox_close(&mb);
	imap_store_close(&st);
}

static void
test_uids_stable(void **state)
{
	struct fixture *f = *state;
	struct imap_store *st = open_store(f);
	struct imap_mailbox *mb;
	enum imap_store_error err;
	struct imap_status s;
	uint32_t uv;
	char path[PATH_MAX];
	const char *err_s;

	for (int i = 0; i < 5; i++)
		append(st, "INBOX", msg1, 0);
	/* an external delivery into new/ */
	assert_int_equal(delivery_maildir(f->dir, "host", ADDR, "x@example.test", msg1, strlen(msg1),
	    &err_s), 0);
	mb = imap_mailbox_open(st, "INBOX", false, &err);
	assert_int_equal(imap_mailbox_count(mb), 6);
	uv = imap_mailbox_uidvalidity(mb);
	assert_int_equal(imap_mailbox_msg(mb, 6)->uid, 6);
	/* the delivered one was moved to cur/ and is \Recent */
	assert_int_equal(count_files(f->root, "new", NULL), 0);
	assert_true(imap_mailbox_msg(mb, 6)->flags & IMAP_FLAG_RECENT);
	assert_int_equal(imap_mailbox_msg(mb, 6)->size, strlen(msg1) + strlen("Return-Path: <x@example.test>\r\n"));
	/* keywords survive in the file name */
	{
		static const char *const kw[] = { "$Important", NULL };

		assert_int_equal(imap_mailbox_store(mb, 3, IMAP_FLAGS_ADD, IMAP_FLAG_FLAGGED, kw, &err),
		    0);
	}
	/* expunge 2 so the UIDs have a gap */
	assert_int_equal(imap_mailbox_store(mb, 2, IMAP_FLAGS_ADD, IMAP_FLAG_DELETED, NULL, &err), 0);
	assert_int_equal(imap_mailbox_expunge(mb, NULL, 0, NULL, NULL, &err), 0);
	imap_mailbox_close(&mb);
	imap_store_close(&st);

	/* reopen: same UIDs */
	st = open_store(f);
	assert_int_equal(imap_store_status(st, "INBOX", &s, &err), 0);
	assert_int_equal(s.messages, 5);
	assert_int_equal(s.uidnext, 7);
	assert_int_equal(s.uidvalidity, uv);
	imap_store_close(&st);

	/* the index lost: rebuilt, same UIDVALIDITY and UIDs */
	snprintf(path, sizeof(path), "%s/bulwark-index.sqlite", f->root);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/bulwark-index.sqlite-wal", f->root);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/bulwark-index.sqlite-shm", f->root);
	(void)unlink(path);
	st = open_store(f);
	mb = imap_mailbox_open(st, "INBOX", false, &err);
	assert_non_null(mb);
	assert_int_equal(imap_mailbox_uidvalidity(mb), uv);
	assert_int_equal(imap_mailbox_count(mb), 5);
	assert_int_equal(imap_mailbox_msg(mb, 1)->uid, 1);
	assert_int_equal(imap_mailbox_msg(mb, 2)->uid, 3);
	assert_int_equal(imap_mailbox_msg(mb, 5)->uid, 6);
	assert_int_equal(imap_mailbox_uidnext(mb), 7);
	assert_int_equal(imap_mailbox_msg(mb, 2)->flags & ~IMAP_FLAG_RECENT, IMAP_FLAG_FLAGGED);
	assert_non_null(imap_mailbox_msg(mb, 2)->keywords);
	assert_string_equal(imap_mailbox_msg(mb, 2)->keywords[0], "$Important");
	assert_string_equal(imap_mailbox_keywords(mb)[0], "$Important");
	/* a new message after the rebuild continues the sequence */
	imap_mailbox_close(&mb);
	assert_int_equal(append(st, "INBOX", msg1, 0), 7);
	imap_store_close(&st);

	/* a damaged index is set aside and rebuilt the same way */
	snprintf(path, sizeof(path), "%s/bulwark-index.sqlite", f->root);
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		fputs("this is not an SQLite database, not even close..............................."
		    "................................................................................",
		    fp);
		fclose(fp);
	}
	snprintf(path, sizeof(path), "%s/bulwark-index.sqlite-wal", f->root);
	(void)unlink(path);
	st = open_store(f);
	mb = imap_mailbox_open(st, "INBOX", false, &err);
	assert_non_null(mb);
	assert_int_equal(imap_mailbox_uidvalidity(mb), uv);
	assert_int_equal(imap_mailbox_count(mb), 6);
	assert_int_equal(imap_mailbox_msg(mb, 6)->uid, 7);
	imap_mailbox_close(&mb);
	imap_store_close(&st);
}

struct events {
	uint32_t expunged[16];
	size_t nexp;
	uint32_t exists, recent;
	uint32_t flags[16];
	size_t nflags;
};

static void
ev_expunged(void *ctx, uint32_t seq)
{
	struct events *e = ctx;

	e->expunged[e->nexp++] = seq;
}

static void
ev_exists(void *ctx, uint32_t n)
{
	((struct events *)ctx)->exists = n;
}

static void
ev_recent(void *ctx, uint32_t n)
{
	((struct events *)ctx)->recent = n;
}

static void
ev_flags(void *ctx, uint32_t seq)
{
	struct events *e = ctx;

	e->flags[e->nflags++] = seq;
}

static const struct imap_sync_cb cb = {
	.expunged = ev_expunged, .exists = ev_exists, .recent = ev_recent, .flags = ev_flags,
};

static void
test_two_views(void **state)
{
	struct fixture *f = *state;
	struct imap_store *st1 = open_store(f), *st2 = open_store(f);
	struct imap_mailbox *a, *b;
	enum imap_store_error err;
	struct events ev;
	const char *err_s;

	assert_ptr_equal(st1, st2);  /* one shared store per account */
	for (int i = 0; i < 3; i++)
		append(st1, "INBOX", msg1, 0);
	a = imap_mailbox_open(st1, "INBOX", false, &err);
	b = imap_mailbox_open(st2, "INBOX", false, &err);
	assert_non_null(a);
	assert_non_null(b);
	/* \Recent went to the first session only */
	assert_true(imap_mailbox_msg(a, 1)->flags & IMAP_FLAG_RECENT);
	assert_false(imap_mailbox_msg(b, 1)->flags & IMAP_FLAG_RECENT);
	assert_false(imap_mailbox_changed(b));

	/* a changes flags: b is told */
	assert_int_equal(imap_mailbox_store(a, 2, IMAP_FLAGS_ADD, IMAP_FLAG_SEEN, NULL, &err), 0);
	assert_true(imap_mailbox_changed(b));
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_sync(b, true, &cb, &ev), 0);
	assert_int_equal(ev.nflags, 1);
	assert_int_equal(ev.flags[0], 2);
	assert_true(imap_mailbox_msg(b, 2)->flags & IMAP_FLAG_SEEN);
	/* a's own sync reports nothing for its own change */
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_sync(a, true, &cb, &ev), 0);
	assert_int_equal(ev.nflags, 0);

	/* a delivery: both see EXISTS */
	assert_int_equal(delivery_maildir(f->dir, "host", ADDR, "x@example.test", msg1, strlen(msg1),
	    &err_s), 0);
	assert_true(imap_mailbox_changed(b));
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_sync(b, true, &cb, &ev), 0);
	assert_int_equal(ev.exists, 4);
	assert_int_equal(ev.recent, 1);
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_sync(a, true, &cb, &ev), 0);
	assert_int_equal(ev.exists, 4);
	assert_int_equal(imap_mailbox_msg(a, 4)->uid, 4);

	/* a expunges 1 and 3: b hears of it only when expunges are allowed */
	assert_int_equal(imap_mailbox_store(a, 1, IMAP_FLAGS_ADD, IMAP_FLAG_DELETED, NULL, &err), 0);
	assert_int_equal(imap_mailbox_store(a, 3, IMAP_FLAGS_ADD, IMAP_FLAG_DELETED, NULL, &err), 0);
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_expunge(a, NULL, 0, &cb, &ev, &err), 0);
	assert_int_equal(ev.nexp, 2);
	assert_int_equal(ev.expunged[0], 3);
	assert_int_equal(ev.expunged[1], 1);
	assert_int_equal(imap_mailbox_count(a), 2);
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_sync(b, false, &cb, &ev), 0);
	assert_int_equal(ev.nexp, 0);
	assert_int_equal(imap_mailbox_count(b), 4);
	assert_null(imap_mailbox_read(b, 1, &(size_t){ 0 }, &err));
	assert_int_equal(err, IMAP_STORE_ERR_NONEXISTENT);
	assert_true(imap_mailbox_changed(b));
	assert_int_equal(imap_mailbox_sync(b, true, &cb, &ev), 0);
	assert_int_equal(ev.nexp, 2);
	assert_int_equal(imap_mailbox_count(b), 2);
	assert_int_equal(imap_mailbox_msg(b, 1)->uid, 2);
	assert_int_equal(imap_mailbox_seq_of_uid(b, 4), 2);
	assert_int_equal(imap_mailbox_seq_of_uid(b, 3), 0);

	/* an external flag change (mutt renames the file) */
	{
		char dir[1100], from[1500], to[1500];
		DIR *d;
		struct dirent *de;

		snprintf(dir, sizeof(dir), "%s/cur", f->root);
		d = opendir(dir);
		while ((de = readdir(d)) != NULL) {
			if (strstr(de->d_name, ":2,S") != NULL) {
				char base[300];

				snprintf(base, sizeof(base), "%s", de->d_name);
				*strstr(base, ":2,") = '\0';
				snprintf(from, sizeof(from), "%s/%s", dir, de->d_name);
				snprintf(to, sizeof(to), "%s/%s:2,FS", dir, base);
				assert_int_equal(rename(from, to), 0);
				break;
			}
		}
		closedir(d);
		/* mtime granularity: the scan must find it whatever the clock says */
		sleep(1);
		assert_true(imap_mailbox_changed(a));
		memset(&ev, 0, sizeof(ev));
		assert_int_equal(imap_mailbox_sync(a, true, &cb, &ev), 0);
		assert_int_equal(ev.nflags, 1);
		assert_true(imap_mailbox_msg(a, 1)->flags & IMAP_FLAG_FLAGGED);
	}
	imap_mailbox_close(&a);
	imap_mailbox_close(&b);
	imap_store_close(&st1);
	imap_store_close(&st2);
}

/* Views share one list: a view that has not synced keeps its numbering
 * (and its pointers) while others change the mailbox. */
static void
test_lagging_views(void **state)
{
	struct fixture *f = *state;
	struct imap_store *st = open_store(f);
	struct imap_mailbox *v[3];
	enum imap_store_error err;
	struct events ev;
	const struct imap_msg *held;
	const char *err_s;

	for (int i = 0; i < 5; i++)
		append(st, "INBOX", msg1, 0);
	for (int i = 0; i < 3; i++) {
		v[i] = imap_mailbox_open(st, "INBOX", false, &err);
		assert_non_null(v[i]);
	}
	held = imap_mailbox_msg(v[2], 3);
	assert_int_equal(held->uid, 3);
	/* v0 expunges 2 and 4; a delivery arrives */
	assert_int_equal(imap_mailbox_store(v[0], 2, IMAP_FLAGS_ADD, IMAP_FLAG_DELETED, NULL, &err), 0);
	assert_int_equal(imap_mailbox_store(v[0], 4, IMAP_FLAGS_ADD, IMAP_FLAG_DELETED, NULL, &err), 0);
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_expunge(v[0], NULL, 0, &cb, &ev, &err), 0);
	assert_int_equal(ev.nexp, 2);
	assert_int_equal(ev.expunged[0], 4);
	assert_int_equal(ev.expunged[1], 2);
	assert_int_equal(delivery_maildir(f->dir, "host", ADDR, "x@example.test", msg1, strlen(msg1),
	    &err_s), 0);
	/* v2 has not synced: same numbering, same pointer */
	assert_int_equal(imap_mailbox_count(v[2]), 5);
	assert_ptr_equal(imap_mailbox_msg(v[2], 3), held);
	assert_int_equal(held->uid, 3);
	assert_int_equal(imap_mailbox_seq_of_uid(v[2], 4), 4);
	/* v1 in a FETCH (no expunges allowed): sees the new one, keeps 2 and 4 */
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_sync(v[1], false, &cb, &ev), 0);
	assert_int_equal(ev.nexp, 0);
	assert_int_equal(ev.exists, 6);
	assert_int_equal(imap_mailbox_msg(v[1], 6)->uid, 6);
	assert_null(imap_mailbox_read(v[1], 2, &(size_t){ 0 }, &err));
	assert_int_equal(err, IMAP_STORE_ERR_NONEXISTENT);
	/* ... and at its next sync the expunges, then it is in step */
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_sync(v[1], true, &cb, &ev), 0);
	assert_int_equal(ev.nexp, 2);
	assert_int_equal(ev.expunged[0], 4);
	assert_int_equal(ev.expunged[1], 2);
	assert_int_equal(imap_mailbox_count(v[1]), 4);
	/* v2 all at once; the delivery was \Recent for exactly one view */
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_sync(v[2], true, &cb, &ev), 0);
	assert_int_equal(ev.nexp, 2);
	assert_int_equal(ev.exists, 4);
	assert_int_equal(imap_mailbox_msg(v[2], 2)->uid, 3);
	assert_int_equal(imap_mailbox_msg(v[2], 4)->uid, 6);
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_sync(v[0], true, &cb, &ev), 0);
	assert_int_equal(ev.exists, 4);
	assert_int_equal(((imap_mailbox_msg(v[0], 4)->flags & IMAP_FLAG_RECENT) != 0) +
	    ((imap_mailbox_msg(v[1], 4)->flags & IMAP_FLAG_RECENT) != 0) +
	    ((imap_mailbox_msg(v[2], 4)->flags & IMAP_FLAG_RECENT) != 0), 1);
	for (int i = 0; i < 3; i++) {
		assert_false(imap_mailbox_changed(v[i]));
		imap_mailbox_close(&v[i]);
	}
	imap_store_close(&st);
}

static void
test_copy_move(void **state)
{
	struct fixture *f = *state;
	struct imap_store *st = open_store(f);
	struct imap_mailbox *mb, *dst;
	enum imap_store_error err;
	uint32_t seqs[] = { 1, 3 }, duids[2], uv = 0;
	struct events ev;
	size_t len;
	char *data;

	for (int i = 0; i < 4; i++)
		append(st, "INBOX", msg1, i == 2 ? IMAP_FLAG_FLAGGED : 0);
	assert_int_equal(imap_store_create(st, "Folder", &err), 0);
	mb = imap_mailbox_open(st, "INBOX", false, &err);
	assert_int_equal(imap_mailbox_copy(mb, seqs, 2, "Folder", false, &uv, duids, &cb, &ev, &err),
	    0);
	assert_int_equal(duids[0], 1);
	assert_int_equal(duids[1], 2);
	assert_int_equal(imap_mailbox_count(mb), 4);
	assert_int_equal(imap_mailbox_copy(mb, seqs, 2, "Nowhere", false, &uv, duids, &cb, &ev, &err),
	    -1);
	assert_int_equal(err, IMAP_STORE_ERR_NONEXISTENT);
	/* move: sources expunged, reported highest first */
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(imap_mailbox_copy(mb, seqs, 2, "Folder", true, &uv, duids, &cb, &ev, &err), 0);
	assert_int_equal(duids[0], 3);
	assert_int_equal(duids[1], 4);
	assert_int_equal(ev.nexp, 2);
	assert_int_equal(ev.expunged[0], 3);
	assert_int_equal(ev.expunged[1], 1);
	assert_int_equal(imap_mailbox_count(mb), 2);
	assert_int_equal(imap_mailbox_msg(mb, 1)->uid, 2);

	dst = imap_mailbox_open(st, "Folder", true, &err);
	assert_non_null(dst);
	assert_int_equal(imap_mailbox_uidvalidity(dst), uv);
	assert_int_equal(imap_mailbox_count(dst), 4);
	assert_true(imap_mailbox_msg(dst, 2)->flags & IMAP_FLAG_FLAGGED);
	assert_true(imap_mailbox_msg(dst, 4)->flags & IMAP_FLAG_FLAGGED);
	assert_true(imap_mailbox_msg(dst, 4)->flags & IMAP_FLAG_RECENT);
	data = imap_mailbox_read(dst, 4, &len, &err);
	assert_non_null(data);
	assert_int_equal(len, strlen(msg1));
	assert_memory_equal(data, msg1, len);
	free(data);
	imap_mailbox_close(&dst);

	/* UID EXPUNGE only touches the listed UIDs */
	assert_int_equal(imap_mailbox_store(mb, 1, IMAP_FLAGS_ADD, IMAP_FLAG_DELETED, NULL, &err), 0);
	assert_int_equal(imap_mailbox_store(mb, 2, IMAP_FLAGS_ADD, IMAP_FLAG_DELETED, NULL, &err), 0);
	{
		uint32_t uids[] = { 4 };

		memset(&ev, 0, sizeof(ev));
		assert_int_equal(imap_mailbox_expunge(mb, uids, 1, &cb, &ev, &err), 0);
		assert_int_equal(ev.nexp, 1);
		assert_int_equal(ev.expunged[0], 2);
	}
	assert_int_equal(imap_mailbox_count(mb), 1);
	imap_mailbox_close(&mb);
	imap_store_close(&st);
}

static void
test_append_odd_bytes(void **state)
{
	struct fixture *f = *state;
	struct imap_store *st = open_store(f);
	struct imap_mailbox *mb;
	enum imap_store_error err;
	/* bare LF, bare CR, NUL (served as 0x80, as Dovecot), no final newline */
	static const char odd[] = "Subject: x\r\n\r\na\nb\rc\0d\r\nend";
	static const char served[] = "Subject: x\r\n\r\na\r\nb\rc\x80" "d\r\nend";
	uint32_t uv, uid;
	size_t len;
	char *data;

	assert_int_equal(imap_store_append(st, "INBOX", odd, sizeof(odd) - 1, 0, NULL, 1000000000,
	    &uv, &uid, &err), 0);
	mb = imap_mailbox_open(st, "INBOX", true, &err);
	assert_int_equal(imap_mailbox_msg(mb, 1)->size, sizeof(served) - 1);
	assert_int_equal(imap_mailbox_msg(mb, 1)->internaldate, 1000000000);
	data = imap_mailbox_read(mb, 1, &len, &err);
	assert_int_equal(len, sizeof(served) - 1);
	assert_memory_equal(data, served, len);
	free(data);
	assert_int_equal(imap_store_append(st, "Nope", odd, 3, 0, NULL, -1, &uv, &uid, &err), -1);
	assert_int_equal(err, IMAP_STORE_ERR_NONEXISTENT);
	imap_mailbox_close(&mb);
	imap_store_close(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults_and_hierarchy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_read_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_views, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lagging_views, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_odd_bytes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
