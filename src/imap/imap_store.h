/*
 * imap_store.h: one account's Maildir++ as IMAP mailboxes. INBOX is the
 * Maildir root (data_dir/mail/DOMAIN/LOCAL, see delivery_maildir_path), other
 * mailboxes are ".Name" subfolders; "/" is the IMAP hierarchy delimiter.
 * Names are passed in their wire form (modified UTF-7, RFC 3501 5.1.3).
 * UIDs, UIDVALIDITY, keywords and cached message data live in an index the
 * store keeps beside the Maildir and rebuilds from it if lost or stale; flags
 * live in the standard ":2,FLAGS" file name suffix so mutt and Dovecot agree.
 * Event-loop thread only (not thread-safe). Sessions of the same account share
 * one struct imap_store (refcounted), so changes made by one session are seen
 * by the others at their next imap_mailbox_sync().
 */
#ifndef BULWARK_IMAP_STORE_H
#define BULWARK_IMAP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imap_mime;

/* System flags (RFC 3501 2.3.2); \Recent is per session, see imap_msg. */
enum {
	IMAP_FLAG_SEEN = 1 << 0,
	IMAP_FLAG_ANSWERED = 1 << 1,
	IMAP_FLAG_FLAGGED = 1 << 2,
	IMAP_FLAG_DELETED = 1 << 3,
	IMAP_FLAG_DRAFT = 1 << 4,
	IMAP_FLAG_RECENT = 1 << 5,
};

/* Mailbox attributes for LIST (RFC 3501 7.2.2, RFC 6154, RFC 3348). */
enum {
	IMAP_MBOX_NOSELECT = 1 << 0,
	IMAP_MBOX_HASCHILDREN = 1 << 1,
	IMAP_MBOX_HASNOCHILDREN = 1 << 2,
	IMAP_MBOX_SUBSCRIBED = 1 << 3,
	IMAP_MBOX_SENT = 1 << 4,
	IMAP_MBOX_DRAFTS = 1 << 5,
	IMAP_MBOX_TRASH = 1 << 6,
	IMAP_MBOX_JUNK = 1 << 7,
	IMAP_MBOX_ARCHIVE = 1 << 8,
};

/* Why a call failed: lets the session pick NO [TRYCREATE], [NONEXISTENT]... */
enum imap_store_error {
	IMAP_STORE_OK = 0,
	IMAP_STORE_ERR_NONEXISTENT,  /* no such mailbox */
	IMAP_STORE_ERR_EXISTS,       /* CREATE/RENAME onto an existing one */
	IMAP_STORE_ERR_BADNAME,      /* name not allowed (.., empty level, too long) */
	IMAP_STORE_ERR_INBOX,        /* DELETE INBOX etc. */
	IMAP_STORE_ERR_QUOTA,        /* ENOSPC / EDQUOT */
	IMAP_STORE_ERR_IO,           /* anything else; logged by the store */
};

struct imap_store;    /* one account, shared by its sessions */
struct imap_mailbox;  /* one session's view of one selected mailbox */

struct imap_msg {
	uint32_t uid;
	uint32_t flags;          /* IMAP_FLAG_*, including this view's \Recent */
	const char *const *keywords;  /* NULL-terminated, may be NULL */
	uint64_t modseq;         /* CONDSTORE (RFC 7162) */
	int64_t internaldate;    /* Unix time (delivery or APPEND date) */
	uint64_t size;           /* RFC822.SIZE: size with CRLF line ends */
};

struct imap_mailbox_info {
	char *name;              /* wire form */
	unsigned attrs;          /* IMAP_MBOX_* */
};

/* Open (and on first use create, with INBOX, Sent, Drafts, Trash, Junk and
 * Archive carrying their special-use attributes) the store of address. */
struct imap_store *imap_store_open(const char *data_dir, const char *address,
    enum imap_store_error *err_r);
void imap_store_close(struct imap_store **stp);

/* Every mailbox (the caller matches LIST patterns); free with _infos_free. */
int imap_store_list(struct imap_store *st, struct imap_mailbox_info **list_r, size_t *n_r);
void imap_store_infos_free(struct imap_mailbox_info **listp, size_t n);

int imap_store_create(struct imap_store *st, const char *name, enum imap_store_error *err_r);
int imap_store_delete(struct imap_store *st, const char *name, enum imap_store_error *err_r);
int imap_store_rename(struct imap_store *st, const char *from, const char *to,
    enum imap_store_error *err_r);
int imap_store_subscribe(struct imap_store *st, const char *name, bool on,
    enum imap_store_error *err_r);

/* STATUS without selecting. */
struct imap_status {
	uint32_t messages, recent, uidnext, uidvalidity, unseen;
	uint64_t highestmodseq;
};
int imap_store_status(struct imap_store *st, const char *name, struct imap_status *st_r,
    enum imap_store_error *err_r);

/* APPEND: data as received (CRLF), stored with LF line ends; flags and
 * keywords; internaldate -1 for now. uid_r / uidvalidity_r for APPENDUID. */
int imap_store_append(struct imap_store *st, const char *name, const char *data, size_t len,
    uint32_t flags, const char *const *keywords, int64_t internaldate,
    uint32_t *uidvalidity_r, uint32_t *uid_r, enum imap_store_error *err_r);

/* SELECT (readonly false) / EXAMINE (true). Takes \Recent for new messages
 * unless readonly. */
struct imap_mailbox *imap_mailbox_open(struct imap_store *st, const char *name, bool readonly,
    enum imap_store_error *err_r);
void imap_mailbox_close(struct imap_mailbox **mbp);

uint32_t imap_mailbox_count(const struct imap_mailbox *mb);
uint32_t imap_mailbox_uidvalidity(const struct imap_mailbox *mb);
uint32_t imap_mailbox_uidnext(const struct imap_mailbox *mb);
uint64_t imap_mailbox_highestmodseq(const struct imap_mailbox *mb);
/* Keywords ever used in this mailbox, for the FLAGS / PERMANENTFLAGS reply. */
const char *const *imap_mailbox_keywords(const struct imap_mailbox *mb);
/* seq is 1-based; NULL when out of range. Valid until the next sync/expunge. */
const struct imap_msg *imap_mailbox_msg(const struct imap_mailbox *mb, uint32_t seq);
/* UID -> seq, 0 if not in the view. */
uint32_t imap_mailbox_seq_of_uid(const struct imap_mailbox *mb, uint32_t uid);

/* Cheap test (a few stat calls) whether the Maildir or another session
 * changed anything since this view last synced: for IDLE's 1 s poll. */
bool imap_mailbox_changed(struct imap_mailbox *mb);

/* Bring the view up to date with disk and other sessions, reporting what the
 * client must be told (RFC 3501 7.4.1 EXPUNGE in descending-safe order,
 * 7.3.1 EXISTS, 7.3.2 RECENT, FETCH FLAGS for flags changed by others).
 * allow_expunge false (during FETCH/STORE/SEARCH, RFC 3501 7.4.1) keeps
 * vanished messages in the view until a later sync that allows it. */
struct imap_sync_cb {
	void (*expunged)(void *ctx, uint32_t seq);
	void (*exists)(void *ctx, uint32_t count);
	void (*recent)(void *ctx, uint32_t count);
	void (*flags)(void *ctx, uint32_t seq);
};
int imap_mailbox_sync(struct imap_mailbox *mb, bool allow_expunge,
    const struct imap_sync_cb *cb, void *ctx);

enum imap_flag_op { IMAP_FLAGS_SET, IMAP_FLAGS_ADD, IMAP_FLAGS_REMOVE };
/* STORE on one message (renames the file's :2, suffix, bumps modseq).
 * Callers refuse STORE on a read-only (EXAMINE) view before calling. */
int imap_mailbox_store(struct imap_mailbox *mb, uint32_t seq, enum imap_flag_op op,
    uint32_t flags, const char *const *keywords, enum imap_store_error *err_r);

/* EXPUNGE / UID EXPUNGE / CLOSE: remove \Deleted messages (only those whose
 * UID is in uids[] when uids != NULL), reporting each removed seq through
 * cb->expunged, highest first, then whatever else is pending as
 * imap_mailbox_sync() does (cb NULL for CLOSE, which is silent). */
int imap_mailbox_expunge(struct imap_mailbox *mb, const uint32_t *uids, size_t nuids,
    const struct imap_sync_cb *cb, void *ctx, enum imap_store_error *err_r);

/* COPY / MOVE of the given seqs to mailbox dest (flags kept, \Recent set in
 * dest). Fills uids_r/dest_uids_r (caller-allocated, n entries) for COPYUID.
 * MOVE expunges the sources and reports them through cb->expunged. All or
 * nothing; IMAP_STORE_ERR_NONEXISTENT: dest does not exist, or a source was
 * expunged meanwhile (imap_store_status(dest) tells the two apart). */
int imap_mailbox_copy(struct imap_mailbox *mb, const uint32_t *seqs, size_t n,
    const char *dest, bool move, uint32_t *dest_uidvalidity_r, uint32_t *dest_uids_r,
    const struct imap_sync_cb *cb, void *ctx, enum imap_store_error *err_r);

/* The message as served (LF -> CRLF, NUL as 0x80 like Dovecot: a literal
 * cannot carry NUL), malloc'd; NULL with err on failure (a file removed
 * under us by another client gives IMAP_STORE_ERR_NONEXISTENT). */
char *imap_mailbox_read(struct imap_mailbox *mb, uint32_t seq, size_t *len_r,
    enum imap_store_error *err_r);

/* Cached from the index (computed once per message, then read from the
 * index): the ENVELOPE and BODYSTRUCTURE strings and the raw header block
 * (CRLF), so FETCH ENVELOPE and SEARCH HEADER on a large mailbox do not
 * reparse every message file. Returned pointers are valid until the next call
 * on mb. NULL with err on failure. */
const char *imap_mailbox_envelope(struct imap_mailbox *mb, uint32_t seq,
    enum imap_store_error *err_r);
const char *imap_mailbox_bodystructure(struct imap_mailbox *mb, uint32_t seq, bool extended,
    enum imap_store_error *err_r);
const char *imap_mailbox_header(struct imap_mailbox *mb, uint32_t seq, size_t *len_r,
    enum imap_store_error *err_r);

#endif
