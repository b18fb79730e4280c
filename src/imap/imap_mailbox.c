/*
 * imap_mailbox.c: one session's view of a selected mailbox (RFC 3501 section
 * 2.3.1 sequence numbers over the shared state of imap_store.c): sync with
 * EXPUNGE/EXISTS/RECENT/FETCH FLAGS reporting, STORE by renaming the Maildir
 * ":2," suffix, EXPUNGE, COPY/MOVE (RFC 4315 UIDs, RFC 6851), reading
 * messages with LF -> CRLF, and the ENVELOPE/BODYSTRUCTURE cache.
 * Trusts the shared state; files may vanish under it (another client, mutt).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "imap/imap_mime.h"
#include "imap/imap_store_private.h"

#define SYSTEM_FLAGS (IMAP_FLAG_SEEN | IMAP_FLAG_ANSWERED | IMAP_FLAG_FLAGGED | \
    IMAP_FLAG_DELETED | IMAP_FLAG_DRAFT)

struct view_msg {
	struct imap_msg m;
	bool gone;             /* expunged elsewhere, not yet reported */
};

struct imap_mailbox {
	struct imap_store *st;
	struct store_mbox *sm;
	bool readonly;
	struct view_msg *v;
	size_t n, cap;
	uint64_t gen;          /* sm->gen at the last sync */
	bool pending_expunge;  /* gone messages still in the view */
	char *scratch[4];      /* returned cache strings, per enum index_cache */
	struct window *win[4]; /* read-ahead of cached values (FETCH 1:*) */
};

/* Values of consecutive UIDs read in one query: FETCH 1:* ENVELOPE on a
 * large mailbox costs one SQLite query per WINDOW_MAX messages. Dropped
 * when the view syncs or idles, so idle sessions hold nothing. */
#define WINDOW_MAX 128

struct window {
	size_t n;
	uint32_t uid[WINDOW_MAX];
	char *val[WINDOW_MAX];
	size_t len[WINDOW_MAX];
};

static void windows_drop(struct imap_mailbox *mb);

static void
set_err(enum imap_store_error *err_r, enum imap_store_error e)
{
	if (err_r != NULL)
		*err_r = e;
}

static int
view_grow(struct imap_mailbox *mb)
{
	if (mb->n == mb->cap) {
		size_t cap = mb->cap ? mb->cap * 2 : 32;
		struct view_msg *nv = realloc(mb->v, cap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		mb->v = nv;
		mb->cap = cap;
	}
	return 0;
}

/* Move new/ files to cur/ (a read-write SELECT takes them, as Dovecot does). */
static void
claim_new(struct store_mbox *sm)
{
	char from[PATH_MAX], to[PATH_MAX], fname[600];
	bool began = false;

	for (size_t i = 0; i < sm->n; i++) {
		struct store_entry *e = &sm->e[i];
		char info[64], letters[STORE_KEYWORD_LETTERS + 1];
		char *copy;
		struct index_msg im;

		if (strncmp(e->fname, "new/", 4) != 0)
			continue;
		store_kw_letters(sm, e->m.keywords, letters, sizeof(letters));
		store_info_build(e->m.flags, NULL, letters, info, sizeof(info));
		if (fs_path(fname, sizeof(fname), "cur/%.*s:2,%s", (int)(e->baselen - 4), e->fname + 4,
		    info) == -1 ||
		    fs_path(from, sizeof(from), "%s/%s", sm->path, e->fname) == -1 ||
		    fs_path(to, sizeof(to), "%s/%s", sm->path, fname) == -1)
			continue;
		if (rename(from, to) == -1 || (copy = strdup(fname)) == NULL)
			continue;  /* gone or taken by someone else: the next scan sees */
		free(e->fname);
		e->fname = copy;
		if (!began) {
			imap_index_begin(sm->st->ix);
			began = true;
		}
		im = (struct index_msg){ .uid = e->m.uid, .fname = e->fname, .flags = e->m.flags,
		    .keywords = store_kwset_intern(sm->st, e->m.keywords)->joined,
		    .modseq = e->m.modseq };
		imap_index_msg_update(sm->st->ix, sm->dbid, &im);
	}
	if (began)
		imap_index_commit(sm->st->ix);
}

static void
view_append(struct imap_mailbox *mb, struct store_entry *e)
{
	struct view_msg *vm;

	if (view_grow(mb) == -1)
		return;
	vm = &mb->v[mb->n++];
	vm->m = e->m;
	vm->gone = false;
	if (e->recent) {
		vm->m.flags |= IMAP_FLAG_RECENT;
		if (!mb->readonly)
			e->recent = false;  /* \Recent goes to one session only */
	}
}

struct imap_mailbox *
imap_mailbox_open(struct imap_store *st, const char *name, bool readonly,
    enum imap_store_error *err_r)
{
	struct store_mbox *sm = store_mbox_get(st, name, err_r);
	struct imap_mailbox *mb;

	if (sm == NULL)
		return NULL;
	if ((mb = calloc(1, sizeof(*mb))) == NULL) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		return NULL;
	}
	mb->st = st;
	mb->sm = sm;
	mb->readonly = readonly;
	st->refs++;  /* the view keeps the store (and sm) alive */
	if (!readonly)
		claim_new(sm);
	if (sm->n > 0 && (mb->v = malloc(sm->n * sizeof(*mb->v))) == NULL) {
		imap_mailbox_close(&mb);
		set_err(err_r, IMAP_STORE_ERR_IO);
		return NULL;
	}
	mb->cap = sm->n;
	for (size_t i = 0; i < sm->n; i++)
		view_append(mb, &sm->e[i]);
	mb->gen = sm->gen;
	set_err(err_r, IMAP_STORE_OK);
	return mb;
}

void
imap_mailbox_close(struct imap_mailbox **mbp)
{
	struct imap_mailbox *mb = *mbp;
	struct imap_store *st;

	if (mb == NULL)
		return;
	*mbp = NULL;
	st = mb->st;
	for (size_t i = 0; i < 4; i++)
		free(mb->scratch[i]);
	windows_drop(mb);
	free(mb->v);
	free(mb);
	imap_store_close(&st);
}

uint32_t
imap_mailbox_count(const struct imap_mailbox *mb)
{
	return (uint32_t)mb->n;
}

uint32_t
imap_mailbox_uidvalidity(const struct imap_mailbox *mb)
{
	return mb->sm->uidvalidity;
}

uint32_t
imap_mailbox_uidnext(const struct imap_mailbox *mb)
{
	/* what this view has seen: a UID above it would have been announced */
	uint32_t next = mb->n > 0 ? mb->v[mb->n - 1].m.uid + 1 : 1;

	return mb->sm->uidnext > next && mb->gen == mb->sm->gen ? mb->sm->uidnext : next;
}

uint64_t
imap_mailbox_highestmodseq(const struct imap_mailbox *mb)
{
	return mb->sm->highestmodseq;
}

const char *const *
imap_mailbox_keywords(const struct imap_mailbox *mb)
{
	return (const char *const *)mb->sm->kw_used->words;
}

const struct imap_msg *
imap_mailbox_msg(const struct imap_mailbox *mb, uint32_t seq)
{
	if (seq == 0 || seq > mb->n)
		return NULL;
	return &mb->v[seq - 1].m;
}

uint32_t
imap_mailbox_seq_of_uid(const struct imap_mailbox *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mb->v[mid].m.uid == uid)
			return (uint32_t)mid + 1;
		if (mb->v[mid].m.uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

bool
imap_mailbox_changed(struct imap_mailbox *mb)
{
	windows_drop(mb);  /* an idling view holds no read-ahead */
	return mb->gen != mb->sm->gen || mb->pending_expunge || store_mbox_disk_changed(mb->sm);
}

static void
view_remove(struct imap_mailbox *mb, size_t i)
{
	memmove(&mb->v[i], &mb->v[i + 1], (mb->n - i - 1) * sizeof(mb->v[0]));
	mb->n--;
}

int
imap_mailbox_sync(struct imap_mailbox *mb, bool allow_expunge, const struct imap_sync_cb *cb,
    void *ctx)
{
	struct store_mbox *sm = mb->sm;
	size_t old_n, j;
	uint32_t maxuid, recent = 0;
	bool changed_flags = false;

	windows_drop(mb);
	if (store_mbox_refresh(sm, false) == -1)
		return -1;
	if (!mb->readonly)
		claim_new(sm);
	if (mb->gen == sm->gen && !(allow_expunge && mb->pending_expunge))
		return 0;
	/* 1. messages gone from the shared state */
	for (size_t i = mb->n; i-- > 0; ) {
		if (!mb->v[i].gone && store_mbox_find(sm, mb->v[i].m.uid) != -1)
			continue;
		if (allow_expunge) {
			view_remove(mb, i);
			if (cb != NULL && cb->expunged != NULL)
				cb->expunged(ctx, (uint32_t)i + 1);
		} else {
			mb->v[i].gone = true;
		}
	}
	mb->pending_expunge = false;
	for (size_t i = 0; i < mb->n; i++)
		mb->pending_expunge |= mb->v[i].gone;
	/* 2. flags changed by others */
	old_n = mb->n;
	maxuid = mb->n > 0 ? mb->v[mb->n - 1].m.uid : 0;
	j = 0;
	for (size_t i = 0; i < old_n; i++) {
		struct view_msg *vm = &mb->v[i];
		const struct store_entry *e;

		if (vm->gone)
			continue;
		while (j < sm->n && sm->e[j].m.uid < vm->m.uid)
			j++;
		if (j >= sm->n || sm->e[j].m.uid != vm->m.uid)
			continue;
		e = &sm->e[j];
		if ((vm->m.flags & SYSTEM_FLAGS) != (e->m.flags & SYSTEM_FLAGS) ||
		    vm->m.keywords != e->m.keywords) {
			vm->m.flags = (vm->m.flags & IMAP_FLAG_RECENT) | (e->m.flags & SYSTEM_FLAGS);
			vm->m.keywords = e->m.keywords;
			vm->m.modseq = e->m.modseq;
			changed_flags = true;
			if (cb != NULL && cb->flags != NULL)
				cb->flags(ctx, (uint32_t)i + 1);
		} else {
			vm->m.modseq = e->m.modseq;
		}
	}
	(void)changed_flags;
	/* 3. new messages */
	for (size_t k = 0; k < sm->n; k++) {
		if (sm->e[k].m.uid > maxuid)
			view_append(mb, &sm->e[k]);
	}
	mb->gen = sm->gen;
	if (mb->n != old_n) {
		for (size_t i = 0; i < mb->n; i++)
			recent += (mb->v[i].m.flags & IMAP_FLAG_RECENT) != 0;
		if (cb != NULL && cb->exists != NULL)
			cb->exists(ctx, (uint32_t)mb->n);
		if (cb != NULL && cb->recent != NULL)
			cb->recent(ctx, recent);
	}
	return 0;
}

/* The shared entry of a view message, NULL (err set) when it is gone. */
static struct store_entry *
entry_of(struct imap_mailbox *mb, uint32_t seq, enum imap_store_error *err_r)
{
	ssize_t i;

	if (seq == 0 || seq > mb->n) {
		set_err(err_r, IMAP_STORE_ERR_NONEXISTENT);
		return NULL;
	}
	if (mb->v[seq - 1].gone || (i = store_mbox_find(mb->sm, mb->v[seq - 1].m.uid)) == -1) {
		set_err(err_r, IMAP_STORE_ERR_NONEXISTENT);
		return NULL;
	}
	return &mb->sm->e[i];
}

/* Rename e's file to carry flags; retries once after a rescan if another
 * program renamed it first. 0 ok, -1 err set. */
static int
entry_rename(struct imap_mailbox *mb, uint32_t seq, uint32_t flags, const char *const *keywords,
    enum imap_store_error *err_r)
{
	struct store_mbox *sm = mb->sm;
	char letters[STORE_KEYWORD_LETTERS + 1];

	store_kw_letters(sm, keywords, letters, sizeof(letters));

	for (int tries = 0; tries < 2; tries++) {
		struct store_entry *e = entry_of(mb, seq, err_r);
		char from[PATH_MAX], to[PATH_MAX], fname[600], info[64];
		const char *old_info;
		char *copy;

		if (e == NULL)
			return -1;
		old_info = strncmp(e->fname, "cur/", 4) == 0 ? strstr(e->fname, ":2,") : NULL;
		store_info_build(flags, old_info != NULL ? old_info + 3 : NULL, letters, info,
		    sizeof(info));
		if (fs_path(fname, sizeof(fname), "cur/%.*s:2,%s", (int)(e->baselen - 4), e->fname + 4,
		    info) == -1 ||
		    fs_path(from, sizeof(from), "%s/%s", sm->path, e->fname) == -1 ||
		    fs_path(to, sizeof(to), "%s/%s", sm->path, fname) == -1) {
			set_err(err_r, IMAP_STORE_ERR_IO);
			return -1;
		}
		if (strcmp(fname, e->fname) == 0)
			return 0;
		if (rename(from, to) == 0) {
			if ((copy = strdup(fname)) == NULL) {
				set_err(err_r, IMAP_STORE_ERR_IO);
				return -1;
			}
			free(e->fname);
			e->fname = copy;
			return 0;
		}
		if (errno != ENOENT) {
			log_warn("imap store: %s: rename %s", sm->st->address, from);
			set_err(err_r, store_errno(errno));
			return -1;
		}
		if (store_mbox_refresh(sm, true) == -1)
			break;
	}
	set_err(err_r, IMAP_STORE_ERR_NONEXISTENT);
	return -1;
}

int
imap_mailbox_store(struct imap_mailbox *mb, uint32_t seq, enum imap_flag_op op, uint32_t flags,
    const char *const *keywords, enum imap_store_error *err_r)
{
	struct store_mbox *sm = mb->sm;
	struct store_entry *e = entry_of(mb, seq, err_r);
	const struct store_kwset *kw, *cur;
	uint32_t nf;
	struct index_msg im;
	const char *merged[130];
	size_t n = 0;

	if (e == NULL)
		return -1;
	flags &= SYSTEM_FLAGS;
	cur = store_kwset_intern(mb->st, e->m.keywords);
	switch (op) {
	case IMAP_FLAGS_SET:
		nf = flags;
		kw = store_kwset_intern(mb->st, keywords);
		break;
	case IMAP_FLAGS_ADD:
		nf = (e->m.flags & SYSTEM_FLAGS) | flags;
		for (size_t i = 0; e->m.keywords[i] != NULL && n < 64; i++)
			merged[n++] = e->m.keywords[i];
		for (size_t i = 0; keywords != NULL && keywords[i] != NULL && n < 128; i++)
			merged[n++] = keywords[i];
		merged[n] = NULL;
		kw = store_kwset_intern(mb->st, merged);
		break;
	default:
		nf = (e->m.flags & SYSTEM_FLAGS) & ~flags;
		for (size_t i = 0; e->m.keywords[i] != NULL && n < 64; i++) {
			bool drop = false;

			for (size_t k = 0; keywords != NULL && keywords[k] != NULL; k++)
				drop |= strcasecmp(keywords[k], e->m.keywords[i]) == 0;
			if (!drop)
				merged[n++] = e->m.keywords[i];
		}
		merged[n] = NULL;
		kw = store_kwset_intern(mb->st, merged);
		break;
	}
	if (kw == NULL || cur == NULL) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		return -1;
	}
	if (nf == (e->m.flags & SYSTEM_FLAGS) && kw == cur) {
		set_err(err_r, IMAP_STORE_OK);
		return 0;
	}
	/* system flags and keyword letters live in the file name */
	if (entry_rename(mb, seq, nf, (const char *const *)kw->words, err_r) == -1)
		return -1;
	if ((e = entry_of(mb, seq, err_r)) == NULL)
		return -1;
	e->m.flags = nf;
	e->m.keywords = (const char *const *)kw->words;
	e->m.modseq = ++sm->highestmodseq;
	sm->gen++;
	im = (struct index_msg){ .uid = e->m.uid, .fname = e->fname, .flags = nf,
	    .keywords = kw->joined, .modseq = e->m.modseq };
	imap_index_begin(sm->st->ix);
	imap_index_msg_update(sm->st->ix, sm->dbid, &im);
	store_mbox_note_keywords(sm, kw);
	imap_index_mailbox_update(sm->st->ix, sm->dbid, sm->uidnext, sm->highestmodseq,
	    sm->kw_used->joined);
	imap_index_commit(sm->st->ix);
	/* this view knows already: the session answers the STORE itself */
	mb->v[seq - 1].m.flags = (mb->v[seq - 1].m.flags & IMAP_FLAG_RECENT) | nf;
	mb->v[seq - 1].m.keywords = e->m.keywords;
	mb->v[seq - 1].m.modseq = e->m.modseq;
	set_err(err_r, IMAP_STORE_OK);
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Unlink the file of view message seq and drop it from the shared state
 * and the view. 0 ok (or already gone), -1 error. */
static int
remove_msg(struct imap_mailbox *mb, uint32_t seq, enum imap_store_error *err_r)
{
	struct store_mbox *sm = mb->sm;

	for (int tries = 0; tries < 2; tries++) {
		ssize_t i = store_mbox_find(sm, mb->v[seq - 1].m.uid);
		char path[PATH_MAX];

		if (i == -1)
			break;
		if (fs_path(path, sizeof(path), "%s/%s", sm->path, sm->e[i].fname) == -1) {
			set_err(err_r, IMAP_STORE_ERR_IO);
			return -1;
		}
		if (unlink(path) == 0) {
			store_mbox_remove(sm, (size_t)i);
			break;
		}
		if (errno != ENOENT) {
			log_warn("imap store: %s: unlink %s", sm->st->address, path);
			set_err(err_r, store_errno(errno));
			return -1;
		}
		if (store_mbox_refresh(sm, true) == -1)
			break;
	}
	view_remove(mb, seq - 1);
	return 0;
}

int
imap_mailbox_expunge(struct imap_mailbox *mb, const uint32_t *uids, size_t nuids,
    const struct imap_sync_cb *cb, void *ctx, enum imap_store_error *err_r)
{
	struct store_mbox *sm = mb->sm;
	uint32_t *sorted = NULL;
	int ret = 0;

	if (uids != NULL && nuids > 0) {
		if ((sorted = malloc(nuids * sizeof(*sorted))) == NULL) {
			set_err(err_r, IMAP_STORE_ERR_IO);
			return -1;
		}
		memcpy(sorted, uids, nuids * sizeof(*sorted));
		qsort(sorted, nuids, sizeof(*sorted), cmp_u32);
	}
	imap_index_begin(sm->st->ix);
	for (size_t i = mb->n; i-- > 0; ) {
		uint32_t uid = mb->v[i].m.uid;
		ssize_t k;

		if (mb->v[i].gone)
			continue;
		if (uids != NULL && (sorted == NULL ||
		    bsearch(&uid, sorted, nuids, sizeof(*sorted), cmp_u32) == NULL))
			continue;
		if ((k = store_mbox_find(sm, uid)) == -1 || !(sm->e[k].m.flags & IMAP_FLAG_DELETED))
			continue;
		if (remove_msg(mb, (uint32_t)i + 1, err_r) == -1) {
			ret = -1;
			break;
		}
		if (cb != NULL && cb->expunged != NULL)
			cb->expunged(ctx, (uint32_t)i + 1);
	}
	imap_index_mailbox_update(sm->st->ix, sm->dbid, sm->uidnext, sm->highestmodseq,
	    sm->kw_used->joined);
	imap_index_commit(sm->st->ix);
	free(sorted);
	if (ret == 0)
		set_err(err_r, IMAP_STORE_OK);
	return ret;
}

/* Copy one message file into dsm (a hard link when we can). */
static struct store_entry *
copy_one(struct imap_mailbox *mb, struct store_entry *e, struct store_mbox *dsm,
    enum imap_store_error *err_r)
{
	struct store_mbox *sm = mb->sm;
	char unique[400], info[64], src[PATH_MAX], dst[PATH_MAX], fname[600];
	char letters[STORE_KEYWORD_LETTERS + 1];
	const char *old_info = strncmp(e->fname, "cur/", 4) == 0 ? strstr(e->fname, ":2,") : NULL;
	const struct store_kwset *kw;
	struct store_entry *ne;

	store_unique(sm->st, unique, sizeof(unique));
	store_kw_letters(dsm, e->m.keywords, letters, sizeof(letters));
	store_info_build(e->m.flags & SYSTEM_FLAGS, old_info != NULL ? old_info + 3 : NULL, letters,
	    info, sizeof(info));
	if (fs_path(fname, sizeof(fname), "cur/%s,W=%llu:2,%s", unique, (unsigned long long)e->m.size,
	    info) == -1 ||
	    fs_path(src, sizeof(src), "%s/%s", sm->path, e->fname) == -1 ||
	    fs_path(dst, sizeof(dst), "%s/%s", dsm->path, fname) == -1) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		return NULL;
	}
	if (link(src, dst) == -1) {
		char *data = NULL, tmp[PATH_MAX];
		size_t len = 0;
		int fd;

		if (errno == ENOENT) {
			set_err(err_r, IMAP_STORE_ERR_NONEXISTENT);
			return NULL;
		}
		/* another filesystem or no hard links: write a copy */
		if (fs_read_file(src, &data, &len, SIZE_MAX / 2) == -1 ||
		    fs_path(tmp, sizeof(tmp), "%s/tmp/%s", dsm->path, unique) == -1) {
			free(data);
			set_err(err_r, store_errno(errno));
			return NULL;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1 || fs_write_all(fd, data, len) == -1 || fsync(fd) == -1 ||
		    close(fd) == -1 || rename(tmp, dst) == -1) {
			int saved = errno;

			(void)unlink(tmp);
			free(data);
			set_err(err_r, store_errno(saved));
			return NULL;
		}
		free(data);
	}
	kw = store_kwset_intern(sm->st, e->m.keywords);
	ne = store_mbox_add(dsm, fname, e->m.flags, kw, e->m.internaldate, e->m.size, true);
	if (ne == NULL) {
		(void)unlink(dst);
		set_err(err_r, IMAP_STORE_ERR_IO);
		return NULL;
	}
	return ne;
}

int
imap_mailbox_copy(struct imap_mailbox *mb, const uint32_t *seqs, size_t n, const char *dest,
    bool move, uint32_t *dest_uidvalidity_r, uint32_t *dest_uids_r,
    const struct imap_sync_cb *cb, void *ctx, enum imap_store_error *err_r)
{
	struct store_mbox *sm = mb->sm, *dsm = store_mbox_get(mb->st, dest, err_r);
	uint32_t *srcuids = NULL;
	size_t done = 0;
	char dir[PATH_MAX];

	if (dsm == NULL)
		return -1;
	if (n > 0 && (srcuids = malloc(n * sizeof(*srcuids))) == NULL) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		return -1;
	}
	imap_index_begin(mb->st->ix);
	for (done = 0; done < n; done++) {
		struct store_entry *e = entry_of(mb, seqs[done], err_r), *ne;
		uint32_t suid;

		if (e == NULL)
			break;
		suid = e->m.uid;
		if ((ne = copy_one(mb, e, dsm, err_r)) == NULL)
			break;
		srcuids[done] = suid;
		dest_uids_r[done] = ne->m.uid;
		imap_index_cache_copy(mb->st->ix, sm->dbid, suid, dsm->dbid, ne->m.uid);
	}
	if (done < n) {
		/* all or nothing (RFC 3501 6.4.7): take back what was copied */
		for (size_t i = 0; i < done; i++) {
			ssize_t k = store_mbox_find(dsm, dest_uids_r[i]);
			char path[PATH_MAX];

			if (k == -1)
				continue;
			if (fs_path(path, sizeof(path), "%s/%s", dsm->path, dsm->e[k].fname) == 0)
				(void)unlink(path);
			store_mbox_remove(dsm, (size_t)k);
		}
		imap_index_commit(mb->st->ix);
		free(srcuids);
		return -1;
	}
	if (fs_path(dir, sizeof(dir), "%s/cur", dsm->path) == 0)
		(void)fs_fsync_dir(dir);
	if (move) {
		/* then expunge the sources, highest sequence number first */
		for (size_t i = mb->n; i-- > 0; ) {
			bool hit = false;

			for (size_t k = 0; k < n && !hit; k++)
				hit = srcuids[k] == mb->v[i].m.uid;
			if (!hit)
				continue;
			if (remove_msg(mb, (uint32_t)i + 1, err_r) == -1)
				break;
			if (cb != NULL && cb->expunged != NULL)
				cb->expunged(ctx, (uint32_t)i + 1);
		}
	}
	imap_index_mailbox_update(mb->st->ix, sm->dbid, sm->uidnext, sm->highestmodseq,
	    sm->kw_used->joined);
	imap_index_commit(mb->st->ix);
	free(srcuids);
	if (dest_uidvalidity_r != NULL)
		*dest_uidvalidity_r = dsm->uidvalidity;
	set_err(err_r, IMAP_STORE_OK);
	return 0;
}

/* The message (CRLF); served: NUL as 0x80 too. */
static char *
read_msg(struct imap_mailbox *mb, uint32_t seq, bool served, size_t *len_r,
    enum imap_store_error *err_r)
{
	for (int tries = 0; tries < 2; tries++) {
		struct store_entry *e = entry_of(mb, seq, err_r);
		char path[PATH_MAX], *data;
		int e_no;

		if (e == NULL)
			return NULL;
		if (fs_path(path, sizeof(path), "%s/%s", mb->sm->path, e->fname) == -1) {
			set_err(err_r, IMAP_STORE_ERR_IO);
			return NULL;
		}
		data = store_read_crlf(path, served, len_r, NULL, &e_no);
		if (data != NULL) {
			set_err(err_r, IMAP_STORE_OK);
			return data;
		}
		if (e_no != ENOENT) {
			log_warnx("imap store: %s: read %s: %s", mb->st->address, path, strerror(e_no));
			set_err(err_r, IMAP_STORE_ERR_IO);
			return NULL;
		}
		/* renamed by another program (flags): look again */
		if (store_mbox_refresh(mb->sm, true) == -1)
			break;
	}
	set_err(err_r, IMAP_STORE_ERR_NONEXISTENT);
	return NULL;
}

char *
imap_mailbox_read(struct imap_mailbox *mb, uint32_t seq, size_t *len_r,
    enum imap_store_error *err_r)
{
	return read_msg(mb, seq, true, len_r, err_r);
}

/* The length of the header block of msg, the empty line included. */
static size_t
header_len(const char *msg, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (msg[i] == '\n' && (msg[i + 1] == '\n' ||
		    (msg[i + 1] == '\r' && i + 2 < len && msg[i + 2] == '\n')))
			return msg[i + 1] == '\n' ? i + 2 : i + 3;
	}
	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 2;
	return len;
}

static char *
buf_str(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	if (s == NULL)
		return NULL;
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

/* Parse msg (CRLF) and store its ENVELOPE, BODY, BODYSTRUCTURE and header
 * block in the index. 0 ok, -1 error. */
static int
cache_fill(struct imap_index *ix, int64_t dbid, uint32_t uid, const char *msg, size_t len)
{
	struct imap_mime *m = imap_mime_parse(msg, len);
	struct evbuffer *b = evbuffer_new();
	char *env = NULL, *body = NULL, *bs = NULL;
	int ret = -1;

	if (m == NULL || b == NULL)
		goto done;
	if (imap_mime_envelope(m, b) == -1 || (env = buf_str(b)) == NULL)
		goto done;
	if (imap_mime_bodystructure(m, false, b) == -1 || (body = buf_str(b)) == NULL)
		goto done;
	if (imap_mime_bodystructure(m, true, b) == -1 || (bs = buf_str(b)) == NULL)
		goto done;
	{
		/* the header block as served: NUL as 0x80 */
		size_t hl = header_len(msg, len);
		char *hdr = malloc(hl + 1);

		if (hdr == NULL)
			goto done;
		for (size_t i = 0; i < hl; i++)
			hdr[i] = msg[i] == '\0' ? (char)0x80 : msg[i];
		ret = imap_index_cache_put(ix, dbid, uid, env, body, bs, hdr, hl);
		free(hdr);
	}
done:
	free(env);
	free(body);
	free(bs);
	if (b != NULL)
		evbuffer_free(b);
	imap_mime_free(&m);
	return ret;
}

static void
windows_drop(struct imap_mailbox *mb)
{
	for (size_t k = 0; k < 4; k++) {
		struct window *w = mb->win[k];

		if (w == NULL)
			continue;
		for (size_t i = 0; i < w->n; i++)
			free(w->val[i]);
		free(w);
		mb->win[k] = NULL;
	}
}

static int
window_add(void *ctx, uint32_t uid, const char *val, size_t len)
{
	struct window *w = ctx;
	char *copy;

	if (w->n == WINDOW_MAX || (copy = malloc(len + 1)) == NULL)
		return -1;
	memcpy(copy, val, len);
	copy[len] = '\0';
	w->uid[w->n] = uid;
	w->val[w->n] = copy;
	w->len[w->n] = len;
	w->n++;
	return 0;
}

/* The value for uid from the read-ahead window (refilled from uid on when
 * uid is not in it): 1 found (ownership moves to *val_r), 0 not cached. */
static int
window_get(struct imap_mailbox *mb, enum index_cache what, uint32_t uid, char **val_r,
    size_t *len_r)
{
	struct window *w = mb->win[what];

	for (int pass = 0; pass < 2; pass++) {
		if (w != NULL) {
			for (size_t i = 0; i < w->n; i++) {
				if (w->uid[i] == uid && w->val[i] != NULL) {
					*val_r = w->val[i];
					*len_r = w->len[i];
					w->val[i] = NULL;
					return 1;
				}
			}
		}
		if (pass == 1)
			break;
		/* refill from uid on */
		if (w == NULL && (w = mb->win[what] = calloc(1, sizeof(*w))) == NULL)
			return 0;
		for (size_t i = 0; i < w->n; i++)
			free(w->val[i]);
		w->n = 0;
		if (imap_index_cache_range(mb->st->ix, mb->sm->dbid, uid, WINDOW_MAX, what, window_add,
		    w) == -1)
			return 0;
	}
	return 0;
}

static const char *
cached(struct imap_mailbox *mb, uint32_t seq, enum index_cache what, size_t *len_r,
    enum imap_store_error *err_r)
{
	struct store_entry *e = entry_of(mb, seq, err_r);
	char *val = NULL, *msg;
	size_t len = 0, mlen = 0;
	uint32_t uid;
	int rc;

	if (e == NULL)
		return NULL;
	uid = e->m.uid;
	rc = window_get(mb, what, uid, &val, &len);
	if (rc == 0)
		rc = imap_index_cache_get(mb->st->ix, mb->sm->dbid, uid, what, &val, &len);
	if (rc == 0) {
		if ((msg = read_msg(mb, seq, false, &mlen, err_r)) == NULL)
			return NULL;
		if (cache_fill(mb->st->ix, mb->sm->dbid, uid, msg, mlen) == -1) {
			free(msg);
			set_err(err_r, IMAP_STORE_ERR_IO);
			return NULL;
		}
		free(msg);
		rc = imap_index_cache_get(mb->st->ix, mb->sm->dbid, uid, what, &val, &len);
	}
	if (rc != 1) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		return NULL;
	}
	free(mb->scratch[what]);
	mb->scratch[what] = val;
	if (len_r != NULL)
		*len_r = len;
	set_err(err_r, IMAP_STORE_OK);
	return val;
}

const char *
imap_mailbox_envelope(struct imap_mailbox *mb, uint32_t seq, enum imap_store_error *err_r)
{
	return cached(mb, seq, INDEX_ENVELOPE, NULL, err_r);
}

const char *
imap_mailbox_bodystructure(struct imap_mailbox *mb, uint32_t seq, bool extended,
    enum imap_store_error *err_r)
{
	return cached(mb, seq, extended ? INDEX_BODYSTRUCTURE : INDEX_BODY, NULL, err_r);
}

const char *
imap_mailbox_header(struct imap_mailbox *mb, uint32_t seq, size_t *len_r,
    enum imap_store_error *err_r)
{
	return cached(mb, seq, INDEX_HEADER, len_r, err_r);
}

void
store_cache_fill(struct store_mbox *sm, uint32_t uid, const char *msg, size_t len)
{
	(void)cache_fill(sm->st->ix, sm->dbid, uid, msg, len);
}
