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

/*
 * Views share the mailbox's message list. A view that has seen every change
 * ("attached", snap == NULL) numbers the messages of sm->e directly; before
 * the list changes shape (a message added or removed), the attached views
 * are given the list as it was (the very array, so the pointers they handed
 * out stay valid; the mailbox goes on with a copy), shared by all of them,
 * which they keep until their next sync reports the difference. Flag
 * changes happen in place and are found at sync by their modseq. So 1,000
 * sessions idling on a 10,000-message mailbox hold one list, not 1,000.
 */
struct snapshot {
	unsigned refs;
	size_t n;
	struct store_entry *e;   /* only .m is used (fname belongs to the mailbox) */
};

struct imap_mailbox {
	struct imap_store *st;
	struct store_mbox *sm;
	struct imap_mailbox *next_view;  /* sm->views */
	bool readonly;
	struct snapshot *snap;   /* NULL: attached to sm->e */
	uint64_t modseq_seen;    /* flag changes up to here are reported */
	uint64_t *own;           /* modseqs of this view's own STOREs since */
	size_t nown, capown;
	uint32_t *recent;        /* UIDs \Recent in this view (sorted) */
	struct imap_msg *rmsg;   /* their messages with IMAP_FLAG_RECENT */
	size_t nrecent, caprecent;
	char *scratch[4];        /* returned cache strings, per enum index_cache */
	struct window *win[4];   /* read-ahead of cached values (FETCH 1:*) */
};

/* Values of consecutive UIDs read in one query: FETCH 1:* ENVELOPE on a
 * large mailbox costs one SQLite query per WINDOW_MAX messages. Dropped
 * when the view syncs or idles, so idle sessions hold nothing. */
#define WINDOW_MAX 256

struct window {
	size_t n, next;            /* next: where the following UID usually is */
	uint32_t uid[WINDOW_MAX];
	size_t off[WINDOW_MAX], len[WINDOW_MAX];
	char *arena;               /* the values, NUL-terminated, one allocation */
	size_t used, cap;
};

static void windows_drop(struct imap_mailbox *mb);

static void
set_err(enum imap_store_error *err_r, enum imap_store_error e)
{
	if (err_r != NULL)
		*err_r = e;
}

/* Move new/ files to cur/ (a read-write SELECT takes them, as Dovecot does). */
static void
claim_new(struct store_mbox *sm)
{
	char from[PATH_MAX], to[PATH_MAX], fname[600];
	bool began = false, left = false;

	if (!sm->has_new)
		return;  /* every sync of every session comes here: no walk */
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
		if (rename(from, to) == -1 || (copy = strdup(fname)) == NULL) {
			left = true;
			continue;  /* gone or taken by someone else: the next scan sees */
		}
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
	sm->has_new = left;
}

/* --- the view's message list ------------------------------------------- */

static size_t
view_n(const struct imap_mailbox *mb)
{
	return mb->snap != NULL ? mb->snap->n : mb->sm->n;
}

static const struct imap_msg *
view_base(const struct imap_mailbox *mb, size_t i)
{
	return mb->snap != NULL ? &mb->snap->e[i].m : &mb->sm->e[i].m;
}

static void
snap_unref(struct snapshot **sp)
{
	if (*sp != NULL && --(*sp)->refs == 0) {
		free((*sp)->e);
		free(*sp);
	}
	*sp = NULL;
}

int
store_mbox_detach_views(struct store_mbox *sm)
{
	struct snapshot *s = NULL;
	struct store_entry *copy;

	for (struct imap_mailbox *v = sm->views; v != NULL; v = v->next_view) {
		if (v->snap != NULL)
			continue;
		if (s == NULL) {
			/* the views keep the array they point into; sm goes on with a copy */
			s = malloc(sizeof(*s));
			copy = malloc((sm->cap > 0 ? sm->cap : 1) * sizeof(*copy));
			if (s == NULL || copy == NULL) {
				free(s);
				free(copy);
				log_warnx("imap store: %s: no memory for a view snapshot", sm->st->address);
				return -1;
			}
			if (sm->n > 0)
				memcpy(copy, sm->e, sm->n * sizeof(*copy));
			s->refs = 0;
			s->n = sm->n;
			s->e = sm->e;
			sm->e = copy;
			if (sm->cap == 0)
				sm->cap = 1;
		}
		v->snap = s;
		s->refs++;
	}
	return 0;
}

static ssize_t
recent_find(const struct imap_mailbox *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->nrecent;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mb->recent[mid] == uid)
			return (ssize_t)mid;
		if (mb->recent[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* uid becomes \Recent in this view (uids arrive in ascending order). */
static void
recent_add(struct imap_mailbox *mb, const struct imap_msg *m)
{
	if (mb->nrecent == mb->caprecent) {
		size_t cap = mb->caprecent ? mb->caprecent * 2 : 8;
		uint32_t *nu = realloc(mb->recent, cap * sizeof(*nu));
		struct imap_msg *nm;

		if (nu == NULL)
			return;
		mb->recent = nu;
		if ((nm = realloc(mb->rmsg, cap * sizeof(*nm))) == NULL)
			return;
		mb->rmsg = nm;
		mb->caprecent = cap;
	}
	mb->recent[mb->nrecent] = m->uid;
	mb->rmsg[mb->nrecent] = *m;
	mb->rmsg[mb->nrecent].flags |= IMAP_FLAG_RECENT;
	mb->nrecent++;
}

/* The \Recent copies follow the current flags; expunged ones go. */
static void
recent_refresh(struct imap_mailbox *mb)
{
	size_t o = 0;

	for (size_t k = 0; k < mb->nrecent; k++) {
		ssize_t i = store_mbox_find(mb->sm, mb->recent[k]);

		if (i == -1 && (mb->snap == NULL || imap_mailbox_seq_of_uid(mb, mb->recent[k]) == 0))
			continue;
		mb->recent[o] = mb->recent[k];
		if (i != -1) {
			mb->rmsg[o] = mb->sm->e[i].m;
			mb->rmsg[o].flags |= IMAP_FLAG_RECENT;
		} else {
			mb->rmsg[o] = mb->rmsg[k];
		}
		o++;
	}
	mb->nrecent = o;
}

/* Own modseqs come in increasing order (each STORE takes the next one). */
static bool
own_change(const struct imap_mailbox *mb, uint64_t modseq)
{
	size_t lo = 0, hi = mb->nown;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mb->own[mid] == modseq)
			return true;
		if (mb->own[mid] < modseq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void
own_add(struct imap_mailbox *mb, uint64_t modseq)
{
	if (mb->nown == mb->capown) {
		size_t cap = mb->capown ? mb->capown * 2 : 16;
		uint64_t *n = realloc(mb->own, cap * sizeof(*n));

		if (n == NULL)
			return;  /* at worst a FETCH FLAGS the client knew already */
		mb->own = n;
		mb->capown = cap;
	}
	mb->own[mb->nown++] = modseq;
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
	for (size_t i = 0; i < sm->n; i++) {
		if (!sm->e[i].recent)
			continue;
		recent_add(mb, &sm->e[i].m);
		if (!readonly)
			sm->e[i].recent = false;  /* \Recent goes to one session only */
	}
	mb->modseq_seen = sm->highestmodseq;
	mb->next_view = sm->views;
	sm->views = mb;
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
	for (struct imap_mailbox **pp = &mb->sm->views; *pp != NULL; pp = &(*pp)->next_view) {
		if (*pp == mb) {
			*pp = mb->next_view;
			break;
		}
	}
	for (size_t i = 0; i < 4; i++)
		free(mb->scratch[i]);
	windows_drop(mb);
	snap_unref(&mb->snap);
	free(mb->own);
	free(mb->recent);
	free(mb->rmsg);
	free(mb);
	imap_store_close(&st);
}

uint32_t
imap_mailbox_count(const struct imap_mailbox *mb)
{
	return (uint32_t)view_n(mb);
}

uint32_t
imap_mailbox_uidvalidity(const struct imap_mailbox *mb)
{
	return mb->sm->uidvalidity;
}

uint32_t
imap_mailbox_uidnext(const struct imap_mailbox *mb)
{
	size_t n = view_n(mb);

	/* attached: the mailbox's; else what this view has been told of */
	if (mb->snap == NULL)
		return mb->sm->uidnext;
	return n > 0 ? view_base(mb, n - 1)->uid + 1 : 1;
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
	const struct imap_msg *m;
	ssize_t k;

	if (seq == 0 || seq > view_n(mb))
		return NULL;
	m = view_base(mb, seq - 1);
	if (mb->nrecent > 0 && (k = recent_find(mb, m->uid)) != -1)
		return &mb->rmsg[k];
	return m;
}

uint32_t
imap_mailbox_seq_of_uid(const struct imap_mailbox *mb, uint32_t uid)
{
	size_t lo = 0, hi = view_n(mb);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		uint32_t u = view_base(mb, mid)->uid;

		if (u == uid)
			return (uint32_t)mid + 1;
		if (u < uid)
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
	imap_index_park(mb->st->ix, 5000);  /* nor its account an SQLite connection */
	return mb->snap != NULL || mb->modseq_seen != mb->sm->highestmodseq ||
	    store_mbox_disk_changed(mb->sm);
}

int
imap_mailbox_sync(struct imap_mailbox *mb, bool allow_expunge, const struct imap_sync_cb *cb,
    void *ctx)
{
	struct store_mbox *sm = mb->sm;
	struct snapshot *snap, *priv = NULL;
	uint32_t *kept = NULL, maxuid;
	bool *present = NULL;
	size_t nkept = 0, nnew = 0, first_new = 0;
	bool gone = false;

	windows_drop(mb);
	if (store_mbox_refresh(sm, false) == -1)
		return -1;
	if (!mb->readonly)
		claim_new(sm);
	if ((snap = mb->snap) == NULL) {
		/* attached: only flags can have changed */
		if (mb->modseq_seen == sm->highestmodseq) {
			mb->nown = 0;
			return 0;  /* nothing at all (the common case: cheap) */
		}
		{
			for (size_t i = 0; i < sm->n; i++) {
				const struct imap_msg *m = &sm->e[i].m;

				if (m->modseq > mb->modseq_seen && !own_change(mb, m->modseq) &&
				    cb != NULL && cb->flags != NULL)
					cb->flags(ctx, (uint32_t)i + 1);
			}
		}
		goto done;
	}
	/* 1. messages gone from the mailbox, highest sequence number first
	 * (both lists are in UID order: one merge, linear in the mailbox) */
	if (snap->n > 0 && ((kept = malloc(snap->n * sizeof(*kept))) == NULL ||
	    (present = malloc(snap->n)) == NULL)) {
		free(kept);
		return -1;
	}
	for (size_t i = 0, j = 0; i < snap->n; i++) {
		while (j < sm->n && sm->e[j].m.uid < snap->e[i].m.uid)
			j++;
		present[i] = j < sm->n && sm->e[j].m.uid == snap->e[i].m.uid;
	}
	for (size_t i = snap->n; i-- > 0; ) {
		uint32_t uid = snap->e[i].m.uid;

		if (!present[i]) {
			if (allow_expunge) {
				if (cb != NULL && cb->expunged != NULL)
					cb->expunged(ctx, (uint32_t)i + 1);
				continue;
			}
			gone = true;
		}
		kept[nkept++] = uid;
	}
	for (size_t i = 0; i < nkept / 2; i++) {
		uint32_t t = kept[i];

		kept[i] = kept[nkept - 1 - i];
		kept[nkept - 1 - i] = t;
	}
	free(present);
	/* 2. flags changed by others */
	for (size_t i = 0, j = 0; i < nkept; i++) {
		while (j < sm->n && sm->e[j].m.uid < kept[i])
			j++;
		if (j < sm->n && sm->e[j].m.uid == kept[i] && sm->e[j].m.modseq > mb->modseq_seen &&
		    !own_change(mb, sm->e[j].m.modseq) && cb != NULL && cb->flags != NULL)
			cb->flags(ctx, (uint32_t)i + 1);
	}
	/* 3. new messages */
	maxuid = snap->n > 0 ? snap->e[snap->n - 1].m.uid : 0;
	for (first_new = sm->n; first_new > 0 && sm->e[first_new - 1].m.uid > maxuid; first_new--)
		;
	nnew = sm->n - first_new;
	if (gone || nkept + nnew != sm->n) {
		/* cannot attach yet (unreported expunges): a list of its own */
		priv = malloc(sizeof(*priv));
		if (priv == NULL || (priv->e = calloc(nkept + nnew + 1, sizeof(*priv->e))) == NULL) {
			free(priv);
			free(kept);
			return -1;
		}
		priv->refs = 1;
		priv->n = 0;
		for (size_t i = 0, j = 0; i < nkept; i++) {
			ssize_t k = store_mbox_find(sm, kept[i]);

			if (k != -1) {
				priv->e[priv->n++].m = sm->e[k].m;
				continue;
			}
			while (j < snap->n && snap->e[j].m.uid != kept[i])
				j++;
			if (j < snap->n)
				priv->e[priv->n++].m = snap->e[j].m;
		}
		for (size_t k = first_new; k < sm->n; k++)
			priv->e[priv->n++].m = sm->e[k].m;
	}
	for (size_t k = first_new; k < sm->n; k++) {
		if (sm->e[k].recent) {
			recent_add(mb, &sm->e[k].m);
			if (!mb->readonly)
				sm->e[k].recent = false;  /* \Recent goes to one session only */
		}
	}
	snap_unref(&mb->snap);
	mb->snap = priv;
	free(kept);
	if (nnew > 0) {
		if (cb != NULL && cb->exists != NULL)
			cb->exists(ctx, (uint32_t)view_n(mb));
		if (cb != NULL && cb->recent != NULL)
			cb->recent(ctx, (uint32_t)mb->nrecent);
	}
done:
	recent_refresh(mb);
	mb->modseq_seen = sm->highestmodseq;
	mb->nown = 0;
	return 0;
}

/* The shared entry of a view message, NULL (err set) when it is gone. */
static struct store_entry *
entry_of(struct imap_mailbox *mb, uint32_t seq, enum imap_store_error *err_r)
{
	ssize_t i;

	if (seq == 0 || seq > view_n(mb) ||
	    (i = store_mbox_find(mb->sm, view_base(mb, seq - 1)->uid)) == -1) {
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
	own_add(mb, e->m.modseq);
	if (mb->snap != NULL) {
		/* a lagging view sees its own change at once (the list is shared:
		 * other lagging views see it too, and hear of it at their sync) */
		uint32_t s2 = imap_mailbox_seq_of_uid(mb, e->m.uid);

		if (s2 != 0)
			mb->snap->e[s2 - 1].m = e->m;
	}
	{
		ssize_t k = recent_find(mb, e->m.uid);

		if (k != -1) {
			mb->rmsg[k] = e->m;
			mb->rmsg[k].flags |= IMAP_FLAG_RECENT;
		}
	}
	set_err(err_r, IMAP_STORE_OK);
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Unlink the file of message uid and drop it from the shared state (the
 * views hear of it at their sync). 0 ok (or already gone), -1 error. */
static int
remove_msg(struct imap_mailbox *mb, uint32_t uid, enum imap_store_error *err_r)
{
	struct store_mbox *sm = mb->sm;

	for (int tries = 0; tries < 2; tries++) {
		ssize_t i = store_mbox_find(sm, uid);
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
	for (size_t i = view_n(mb); i-- > 0; ) {
		uint32_t uid = view_base(mb, i)->uid;
		ssize_t k;

		if (uids != NULL && (sorted == NULL ||
		    bsearch(&uid, sorted, nuids, sizeof(*sorted), cmp_u32) == NULL))
			continue;
		if ((k = store_mbox_find(sm, uid)) == -1 || !(sm->e[k].m.flags & IMAP_FLAG_DELETED))
			continue;
		if (remove_msg(mb, uid, err_r) == -1) {
			ret = -1;
			break;
		}
	}
	imap_index_mailbox_update(sm->st->ix, sm->dbid, sm->uidnext, sm->highestmodseq,
	    sm->kw_used->joined);
	/* the view learns it like any other change: EXPUNGE responses, highest
	 * sequence number first (and anything else pending) */
	if (imap_mailbox_sync(mb, true, cb, ctx) == -1 && ret == 0) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		ret = -1;
	}
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
		/* then expunge the sources */
		for (size_t k = 0; k < n; k++) {
			if (remove_msg(mb, srcuids[k], err_r) == -1)
				break;
		}
	}
	imap_index_mailbox_update(mb->st->ix, sm->dbid, sm->uidnext, sm->highestmodseq,
	    sm->kw_used->joined);
	imap_index_commit(mb->st->ix);
	/* MOVE: EXPUNGE responses, highest sequence number first (RFC 6851) */
	if (move)
		(void)imap_mailbox_sync(mb, true, cb, ctx);
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
		free(w->arena);
		free(w);
		mb->win[k] = NULL;
	}
}

static int
window_add(void *ctx, uint32_t uid, const char *val, size_t len)
{
	struct window *w = ctx;

	if (w->n == WINDOW_MAX)
		return -1;
	if (w->used + len + 1 > w->cap) {
		size_t cap = (w->used + len + 1) * 2;
		char *na = realloc(w->arena, cap);

		if (na == NULL)
			return -1;
		w->arena = na;
		w->cap = cap;
	}
	memcpy(w->arena + w->used, val, len);
	w->arena[w->used + len] = '\0';
	w->uid[w->n] = uid;
	w->off[w->n] = w->used;
	w->len[w->n] = len;
	w->used += len + 1;
	w->n++;
	return 0;
}

/* The value for uid from the read-ahead window (refilled from uid on when
 * uid is not in it): a pointer into the window, valid until the next call
 * for the same kind; NULL when not cached. */
static const char *
window_get(struct imap_mailbox *mb, enum index_cache what, uint32_t uid, size_t *len_r)
{
	struct window *w = mb->win[what];

	for (int pass = 0; pass < 2; pass++) {
		if (w != NULL && w->n > 0 && uid >= w->uid[0] && uid <= w->uid[w->n - 1]) {
			size_t i = w->next < w->n && w->uid[w->next] == uid ? w->next : 0;

			for (; i < w->n && w->uid[i] < uid; i++)
				;
			if (i < w->n && w->uid[i] == uid) {
				w->next = i + 1;
				*len_r = w->len[i];
				return w->arena + w->off[i];
			}
			return NULL;  /* in range but not cached */
		}
		if (pass == 1)
			break;
		/* refill from uid on */
		if (w == NULL && (w = mb->win[what] = calloc(1, sizeof(*w))) == NULL)
			return NULL;
		w->n = w->next = w->used = 0;
		if (imap_index_cache_range(mb->st->ix, mb->sm->dbid, uid, WINDOW_MAX, what, window_add,
		    w) == -1)
			return NULL;
	}
	return NULL;
}

static const char *
cached(struct imap_mailbox *mb, uint32_t seq, enum index_cache what, size_t *len_r,
    enum imap_store_error *err_r)
{
	struct store_entry *e = entry_of(mb, seq, err_r);
	char *val = NULL, *msg;
	const char *hit;
	size_t len = 0, mlen = 0;
	uint32_t uid;
	int rc;

	if (e == NULL)
		return NULL;
	uid = e->m.uid;
	if ((hit = window_get(mb, what, uid, &len)) != NULL) {
		if (len_r != NULL)
			*len_r = len;
		set_err(err_r, IMAP_STORE_OK);
		return hit;
	}
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
