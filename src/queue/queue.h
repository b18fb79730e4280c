/*
 * queue.h: the spool (data_dir/queue) and its scheduler. A message and its
 * envelope live in one file, written and fsynced (file and directory)
 * before the session answers 250; then local recipients are delivered to
 * Maildir on the worker pool and the entry goes. Remote recipients stay
 * queued until outbound delivery exists (the outbound issue).
 * Loop thread only, except where noted.
 */
#ifndef BULWARK_QUEUE_H
#define BULWARK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>
#include <stdint.h>

struct event_base;
struct pool;
struct config;
struct queue;
struct queue_writer;

#define QUEUE_ID_LEN 16   /* hex characters */

enum queue_flag {
	QUEUE_FLAG_8BITMIME = 1 << 0,
	QUEUE_FLAG_SMTPUTF8 = 1 << 1,
	QUEUE_FLAG_SIGN = 1 << 2,      /* from an authenticated user or mynetworks: DKIM-sign */
};

struct queue_rcpt {
	char *address;     /* the delivery target: an account or a remote address */
	bool local;        /* a local account (Maildir) */
	bool done;
};

struct queue_envelope {
	char id[QUEUE_ID_LEN + 1];
	int64_t ctime;
	char *sender;      /* "" for the null sender <> */
	char *client_ip;
	char *helo;
	unsigned flags;    /* QUEUE_FLAG_* */
	struct queue_rcpt *rcpts;
	size_t nrcpts;
};

/* Free the strings and array inside env (not env itself). */
void queue_envelope_clear(struct queue_envelope *env);
/* Serialise/parse the envelope header of a spool file (see queue_spool.c). */
char *queue_envelope_format(const struct queue_envelope *env, size_t *len_r);
/* Parse the header at the start of buf; *body_off_r is where the message starts. */
int queue_envelope_parse(const char *buf, size_t len, struct queue_envelope *env_r,
    size_t *body_off_r);

struct queue *queue_new(struct event_base *base, struct pool *pool, const struct config *cfg);
struct dns;
/*
 * Turn on remote delivery: MX lookups through dns, STARTTLS with client_tls
 * (NULL: plaintext), outbound.smarthost honoured. Before queue_start.
 * 0 ok, -1 with a malloc'd *error_r (a smarthost that cannot be parsed).
 */
int queue_set_outbound(struct queue *q, struct dns *dns, SSL_CTX *client_tls, char **error_r);
struct dkim_key;
/*
 * DKIM keys for outbound mail: for each local domain cfg->domains[i], its
 * keys[i] (nkeys[i] of them, possibly 0). Messages flagged QUEUE_FLAG_SIGN
 * whose From domain has keys are signed with all of them before they
 * leave. The arrays stay the caller's and must outlive the queue.
 */
void queue_set_dkim(struct queue *q, struct dkim_key ***keys, const size_t *nkeys);
/* Create the directories, drop half-written files, schedule what is queued. */
int queue_start(struct queue *q, char **error_r);
void queue_free(struct queue **q);
/* Messages in the spool (queued, delivering or waiting for remote delivery). */
size_t queue_count(const struct queue *q);
/* Is the admin's emergency stop (queue/LOCKDOWN) on? */
bool queue_lockdown(const struct queue *q);
/* Deliveries running on the pool right now. */
size_t queue_busy(const struct queue *q);

/*
 * What the queue monitor hears from the scheduler (loop thread). Either
 * callback may be NULL.
 * - attempt: a remote delivery attempt of a message from sender ended with
 *   so many recipients delivered, deferred and failed (bounced).
 * - hold: should a message from sender that still has remote recipients be
 *   held now (its account is contained)? Asked before each remote attempt
 *   and after each deferral.
 */
struct queue_observer {
	void (*attempt)(void *arg, const char *sender, unsigned flags, size_t delivered,
	    size_t deferred, size_t failed);
	bool (*hold)(void *arg, const char *sender);
	void *arg;
};
void queue_set_observer(struct queue *q, const struct queue_observer *obs);
/*
 * Containment: hold every message of the schedule from one of the senders
 * (case-insensitive) that is not being delivered right now; those in flight
 * are held when their attempt ends, if the observer's hold still says so.
 * Returns how many were held now.
 */
size_t queue_hold_senders(struct queue *q, const char *const *senders, size_t n,
    const char *reason);
/* Messages waiting for a retry after a failed attempt. */
size_t queue_deferred_count(const struct queue *q);

/* Make a fresh queue id (random, QUEUE_ID_LEN hex). */
void queue_new_id(char id_r[QUEUE_ID_LEN + 1]);

/*
 * Start a message: opens queue/tmp/ID (O_EXCL, 0600) and writes the
 * envelope (env->id must be set; env is copied). 0 ok, -1 with errno.
 */
int queue_writer_new(struct queue *q, const struct queue_envelope *env,
    struct queue_writer **w_r);
/* Append message bytes (buffered; large messages stream to the file). */
int queue_writer_write(struct queue_writer *w, const void *data, size_t len);
typedef void queue_commit_cb(void *arg, int result);
/*
 * Finish: on the pool, write the rest, fsync, rename into queue/, fsync the
 * directory; then cb(arg, 0) (or -1) on the loop, and the message is
 * scheduled for delivery. *w is consumed. Returns -1 (and does not call cb)
 * only when the job cannot be queued.
 */
int queue_writer_commit(struct queue_writer **w, queue_commit_cb *cb, void *arg);
/* Drop the message being written (the tmp file is removed). */
void queue_writer_abort(struct queue_writer **w);

/*
 * Queue a notice written by bulwark itself (a confirmation link, a lockout
 * warning), from any thread or from bulwarkctl: composes an RFC 5322
 * message (From: bulwark <postmaster@FIRST-DOMAIN>, Date, Message-ID,
 * text/plain UTF-8) and writes it durably into data_dir/queue/incoming/,
 * where the daemon picks it up within seconds (or at its next start).
 * The recipient is local when its domain is one of ours.
 * 0 ok (id_r set, if not NULL), -1 with errno.
 */
int queue_notice(const struct config *cfg, const char *to, const char *subject,
    const char *body, char id_r[QUEUE_ID_LEN + 1]);
/*
 * Queue a whole message (CRLF wire format) from sender ("" for <>) to one
 * recipient through queue/incoming, as queue_notice does. 0 ok, -1 errno.
 */
int queue_inject(const struct config *cfg, const char *sender, const char *to,
    const char *msg, size_t msglen, char id_r[QUEUE_ID_LEN + 1]);

#endif
