/*
 * queue_admin.h: the admin's view of the spool, for bulwarkctl (never the
 * daemon's loop): list and show messages, hold, release and delete them,
 * ask for a flush, and the lockdown switch. Works on the files alone
 * (data_dir/queue, see docs/queue.md); the running daemon notices within
 * seconds. Functions return 0 (or a count), or -1 with *error_r set to a
 * malloc'd sentence (NULL when out of memory).
 */
#ifndef BULWARK_QUEUE_ADMIN_H
#define BULWARK_QUEUE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"

enum queue_admin_state {
	QUEUE_ADMIN_QUEUED,          /* waiting for (or in) local delivery, or being picked up */
	QUEUE_ADMIN_HELD,            /* in queue/hold/: never delivered until released */
	QUEUE_ADMIN_DEFERRED,        /* a delivery failed (state file: error or attempts) */
	QUEUE_ADMIN_WAITING_REMOTE,  /* only remote recipients are left */
	QUEUE_ADMIN_CORRUPT,         /* the envelope cannot be read: kept for the admin */
};

/* Where the message file is. */
enum queue_admin_place {
	QUEUE_ADMIN_IN_QUEUE,        /* queue/ID */
	QUEUE_ADMIN_IN_INCOMING,     /* queue/incoming/ID: the daemon picks it up */
	QUEUE_ADMIN_IN_HOLD,         /* queue/hold/ID */
};

struct queue_admin_msg {
	char id[QUEUE_ID_LEN + 1];
	enum queue_admin_state state;
	enum queue_admin_place place;
	struct queue_envelope env;   /* empty when corrupt; rcpts[].done from ID.state */
	size_t size;                 /* bytes of the message (after the envelope) */
	unsigned attempts;           /* "attempts N" in ID.state */
	char *last_error;            /* "error ENC" in ID.state, decoded; NULL if none */
	char **headers;              /* queue_admin_show only: header lines, no line end */
	size_t nheaders;
};

enum queue_admin_action {
	QUEUE_ADMIN_HOLD,
	QUEUE_ADMIN_RELEASE,
	QUEUE_ADMIN_DELETE,
};

/* Which messages an action applies to: exactly one of the three. */
struct queue_admin_select {
	const char *id;              /* one message */
	const char *sender;          /* envelope sender, case-insensitive; "" or "<>": the null sender */
	bool all;
};

struct queue_admin_lockdown {
	bool on;
	int64_t since;               /* 0 when the file does not say */
	char by[64];                 /* "?" when the file does not say */
};

/* Header lines queue_admin_show returns at most. */
#define QUEUE_ADMIN_SHOW_HEADERS 100

/* 16 lowercase hex digits, nothing else: ids name files. */
bool queue_admin_id_valid(const char *id);
const char *queue_admin_state_name(enum queue_admin_state state);
/* Does msg still have a remote recipient that is not done? */
bool queue_admin_remote_pending(const struct queue_admin_msg *msg);

/* Every message (queued, picked up, held), oldest first. */
int queue_admin_list(const char *data_dir, struct queue_admin_msg **msgs_r, size_t *n_r,
    char **error_r);
void queue_admin_list_free(struct queue_admin_msg **msgs, size_t n);
/*
 * One message, with its header lines (up to the first empty line, at most
 * QUEUE_ADMIN_SHOW_HEADERS). 1 found, 0 no such message, -1 error.
 */
int queue_admin_show(const char *data_dir, const char *id, struct queue_admin_msg *msg_r,
    char **error_r);
void queue_admin_msg_clear(struct queue_admin_msg *msg);

/*
 * Hold (queue/ → hold/), release (hold/ → incoming/, the daemon schedules
 * it) or delete the selected messages. *matched_r: messages selected,
 * *done_r: those changed (a held message is not held again). An unknown id
 * is not an error: *matched_r is 0. 0, or -1 (some may have been done).
 */
int queue_admin_apply(const char *data_dir, enum queue_admin_action action,
    const struct queue_admin_select *sel, size_t *matched_r, size_t *done_r, char **error_r);

/* Create queue/FLUSH: the daemon retries every deferred message now. */
int queue_admin_flush(const char *data_dir, char **error_r);

int queue_admin_lockdown_status(const char *data_dir, struct queue_admin_lockdown *st_r,
    char **error_r);
/*
 * Lockdown on: create queue/LOCKDOWN ("on TIME by BY", unless it exists),
 * then hold every message that has a remote recipient not done.
 * *held_r: messages held now; *was_on_r: it was on already.
 */
int queue_admin_lockdown_on(const char *data_dir, int64_t now, const char *by, size_t *held_r,
    bool *was_on_r, char **error_r);
/* Lockdown off: remove queue/LOCKDOWN (held messages stay held). */
int queue_admin_lockdown_off(const char *data_dir, bool *was_on_r, char **error_r);

#endif
