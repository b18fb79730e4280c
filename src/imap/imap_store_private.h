/*
 * imap_store_private.h: what imap_store.c, imap_index.c and imap_mailbox.c
 * share. Nothing outside src/imap/imap_{store,index,mailbox}.c includes it.
 */
#ifndef BULWARK_IMAP_STORE_PRIVATE_H
#define BULWARK_IMAP_STORE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "imap/imap_store.h"

#define STORE_INDEX_NAME "bulwark-index.sqlite"
#define STORE_UIDLIST_NAME "bulwark-uidlist"
#define STORE_SUBSCRIPTIONS_NAME "subscriptions"
#define STORE_KEYWORDS_NAME "dovecot-keywords"  /* letters a-z: Dovecot's format */
#define STORE_KEYWORD_LETTERS 26

/* An interned, NULL-terminated keyword set; lives as long as its store. */
struct store_kwset {
	struct store_kwset *next;
	char *joined;            /* "a b c" (sorted, case preserved) */
	char **words;            /* NULL-terminated */
};

/* One message as the store knows it (shared by all views). */
struct store_entry {
	struct imap_msg m;       /* flags without \Recent */
	char *fname;             /* "cur/BASE:2,FS" or "new/BASE" */
	size_t baselen;          /* length of BASE within fname + 4 */
	bool recent;             /* not yet claimed by a read-write view */
};

/* One mailbox's shared state (loaded on first use, kept while the store lives). */
struct store_mbox {
	struct store_mbox *next;
	struct imap_store *st;
	char *name;              /* wire name ("INBOX", "a/b") */
	char *dname;             /* on-disk name ("" for INBOX, ".a.b") */
	char *path;              /* directory */
	int64_t dbid;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	struct store_entry *e;   /* sorted by uid */
	size_t n, cap;
	struct timespec new_mtime, cur_mtime;
	time_t scanned_at;
	bool dirty;              /* rescan at the next check whatever the mtimes say */
	bool deleted;            /* DELETEd or RENAMEd away under open views */
	uint64_t gen;            /* bumped on every change */
	const struct store_kwset *kw_used;
	size_t uidlist_lines;    /* lines in the uidlist file, for compaction */
	char *uidlist_pending;   /* lines not yet appended (during a scan) */
	size_t uidlist_pending_len, uidlist_pending_cap;
	bool scanning;
	bool has_new;            /* some entry may still be in new/ */
	char *kwname[STORE_KEYWORD_LETTERS];  /* keyword of file name letter 'a' + i */
	size_t nkw;
	struct imap_mailbox *views;  /* the sessions' views (imap_mailbox.c) */
};

struct imap_index;

/* Stores whose last session ended are kept (without SQLite connection) for
 * the account's next login: at most this many, this long. */
#define STORE_IDLE_MAX 8
#define STORE_IDLE_KEEP_MS 60000

struct imap_store {
	struct imap_store *next;
	unsigned refs;           /* 0: kept idle since idle_since */
	int64_t idle_since;
	dev_t ix_dev;            /* the index file when it went idle */
	ino_t ix_ino;
	off_t ix_size;
	struct timespec ix_mtime;
	char *root;              /* the Maildir (INBOX) */
	char *address;
	struct imap_index *ix;
	struct store_mbox *mboxes;
	struct store_kwset *kwsets;
	char hostname[128];
};

#define STORE_NAME_MAX 200  /* a wire mailbox name */

/* imap_store.c */
extern struct store_kwset store_kwset_empty;
/* The canonical wire form: "INBOX" upper-cased as first level. */
void store_name_canon(const char *name, char *buf, size_t buflen);
/* The directory of on-disk name dname. 0 ok, -1 too long. */
int store_mbox_path(struct imap_store *st, const char *dname, char *buf, size_t buflen);
/* wire name -> on-disk name ("" for INBOX). 0 ok, -1 bad name. */
int store_name_to_disk(const char *name, char *buf, size_t buflen);
const struct store_kwset *store_kwset_intern(struct imap_store *st, const char *const *words);
const struct store_kwset *store_kwset_from_joined(struct imap_store *st, const char *joined);
/* Record keywords in the mailbox's "ever used" set. */
void store_mbox_note_keywords(struct store_mbox *sm, const struct store_kwset *kw);
/* errno -> the error the session reports */
enum imap_store_error store_errno(int e);
/* imap_store_scan.c */
int64_t store_now_ms(void);
/* The loaded (and scanned) shared state of a mailbox; NULL with *err_r. */
struct store_mbox *store_mbox_get(struct imap_store *st, const char *name,
    enum imap_store_error *err_r);
/* Maildir unique base name. */
void store_unique(struct imap_store *st, char *buf, size_t buflen);
/* mkdir cur/ new/ tmp/ (and the maildirfolder marker for a folder). */
int store_maildir_make(const char *path, bool folder);
bool store_mbox_exists(const char *path);
void store_mbox_free(struct store_mbox *sm);
/* Bring sm up to date with the disk if its directories changed (or force). */
int store_mbox_refresh(struct store_mbox *sm, bool force);
/* Has the disk changed since the last scan? (2 stat calls) */
bool store_mbox_disk_changed(struct store_mbox *sm);
/* Index of uid in sm->e, or -1. */
ssize_t store_mbox_find(const struct store_mbox *sm, uint32_t uid);
/* Add a message file (already in place in cur/ or new/) with a fresh UID. */
struct store_entry *store_mbox_add(struct store_mbox *sm, const char *fname, uint32_t flags,
    const struct store_kwset *kw, int64_t internaldate, uint64_t size, bool recent);
/* Flags -> the info letters of a Maildir name, merged with the letters of
 * old_info we do not manage (P...); the lower-case keyword letters are
 * kw_letters when not NULL, else those of old_info. */
void store_info_build(uint32_t flags, const char *old_info, const char *kw_letters, char *buf,
    size_t buflen);
uint32_t store_info_flags(const char *fname);
/* The keyword letters ("ac") of words in sm (new keywords get a letter in
 * dovecot-keywords while there are letters left; the rest live only in the
 * index). */
void store_kw_letters(struct store_mbox *sm, const char *const *words, char *buf, size_t buflen);
/* The keywords a file name carries, plus those of keep that have no letter. */
const struct store_kwset *store_kw_from_info(struct store_mbox *sm, const char *fname,
    const char *const *keep);
/* Remove entry i (file already gone). */
void store_mbox_remove(struct store_mbox *sm, size_t i);
/* Read a whole message file, converted to CRLF; served: NUL bytes become
 * 0x80 as well (they cannot travel in an IMAP literal; Dovecot does it). */
char *store_read_crlf(const char *path, bool served, size_t *len_r, int64_t *mtime_r,
    int *errno_r);
/* Append a line to the mailbox's uidlist file. */
void store_uidlist_append(struct store_mbox *sm, uint32_t uid, const char *fname);

/* imap_mailbox.c: before sm->e changes shape, the views attached to it get
 * a snapshot. 0 ok, -1 no memory (then do not change sm->e). */
int store_mbox_detach_views(struct store_mbox *sm);
/* imap_mailbox.c: parse msg (CRLF) and cache ENVELOPE/BODYSTRUCTURE/header. */
void store_cache_fill(struct store_mbox *sm, uint32_t uid, const char *msg, size_t len);

/* imap_index.c: the SQLite index of one account. */
struct index_msg {
	uint32_t uid;
	const char *fname;
	uint32_t flags;
	const char *keywords;
	uint64_t modseq;
	int64_t internaldate;
	uint64_t size;
};
struct imap_index *imap_index_open(const char *path, bool *created_r);
void imap_index_free(struct imap_index **ixp);
/* Close the SQLite connection if unused for idle_ms (it reopens by itself). */
void imap_index_park(struct imap_index *ix, int64_t idle_ms);
int imap_index_begin(struct imap_index *ix);
int imap_index_commit(struct imap_index *ix);
/* 1 found, 0 not, -1 error */
int imap_index_mailbox_get(struct imap_index *ix, const char *dname, int64_t *id_r,
    uint32_t *uidvalidity_r, uint32_t *uidnext_r, uint64_t *hms_r, char **keywords_r);
int imap_index_mailbox_add(struct imap_index *ix, const char *dname, uint32_t uidvalidity,
    uint32_t uidnext, int64_t *id_r);
int imap_index_mailbox_update(struct imap_index *ix, int64_t id, uint32_t uidnext,
    uint64_t hms, const char *keywords);
int imap_index_mailbox_rename(struct imap_index *ix, const char *from, const char *to);
int imap_index_mailbox_delete(struct imap_index *ix, int64_t id);
int imap_index_msgs_load(struct imap_index *ix, int64_t id,
    int (*cb)(void *ctx, const struct index_msg *m), void *ctx);
int imap_index_msg_add(struct imap_index *ix, int64_t id, const struct index_msg *m);
int imap_index_msg_update(struct imap_index *ix, int64_t id, const struct index_msg *m);
int imap_index_msg_delete(struct imap_index *ix, int64_t id, uint32_t uid);
enum index_cache { INDEX_ENVELOPE, INDEX_BODY, INDEX_BODYSTRUCTURE, INDEX_HEADER };
/* 1 found (malloc'd *val_r), 0 not cached, -1 error */
int imap_index_cache_get(struct imap_index *ix, int64_t id, uint32_t uid, enum index_cache what,
    char **val_r, size_t *len_r);
int imap_index_cache_put(struct imap_index *ix, int64_t id, uint32_t uid, const char *envelope,
    const char *body, const char *bodystructure, const char *header, size_t hlen);
/* The cached values of up to max messages from first_uid on (uid order). */
int imap_index_cache_range(struct imap_index *ix, int64_t id, uint32_t first_uid, size_t max,
    enum index_cache what, int (*cb)(void *ctx, uint32_t uid, const char *val, size_t len),
    void *ctx);
int imap_index_cache_copy(struct imap_index *ix, int64_t src_id, uint32_t src_uid,
    int64_t dst_id, uint32_t dst_uid);

#endif
