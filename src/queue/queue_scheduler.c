/*
 * queue_scheduler.c: what happens to a spooled message. Local recipients
 * are delivered to Maildir on the worker pool; when none is left the spool
 * file goes. Progress for a partly delivered message is kept in ID.state
 * (indexes of finished recipients) so a restart does not deliver twice what
 * it knows was delivered. Failed local deliveries are retried every minute.
 * Remote recipients go to queue_remote.c once the local ones are done.
 */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/pool.h"
#include "delivery/delivery.h"
#include "dkim/dkim.h"
#include "dns/dns.h"
#include "queue/queue_private.h"

#define QUEUE_RETRY_SECONDS 60
#define QUEUE_HEADER_SLACK (1024 * 1024)

struct queue_job {
	struct queue *q;
	struct queue_entry *e;
	/* inbound DKIM (RFC 6376) before local delivery: verify, then A-R */
	struct dkim_verify *verify;      /* signatures waiting for their keys */
	char *auth_results;              /* the header to prepend, once known */
	size_t dns_left;
	struct queue_envelope env;   /* kept for remote delivery */
	char *buf;
	size_t len, body;
	int attempts;
	time_t next_retry;  /* ID.state's "next": no remote attempt before (restart) */
	bool removed;       /* every recipient done, spool file gone */
	bool failed;        /* a local delivery failed: retry later */
	bool remote_left;
};

static bool
queue_id_valid(const char *name)
{
	if (strlen(name) != QUEUE_ID_LEN)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* Mark the recipients listed in ID.state as done. */
static void
queue_state_load(const char *path, struct queue_envelope *env, int *attempts_r, time_t *next_r)
{
	char *buf;
	size_t len;

	if (fs_read_file(path, &buf, &len, 1 << 20) == -1)
		return;
	for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		char *end;
		unsigned long idx;

		if (strncmp(line, "attempts ", 9) == 0) {
			*attempts_r = atoi(line + 9);
			continue;
		}
		if (strncmp(line, "next ", 5) == 0) {
			*next_r = (time_t)strtoll(line + 5, NULL, 10);
			continue;
		}
		if (strncmp(line, "done ", 5) != 0)
			continue;
		idx = strtoul(line + 5, &end, 10);
		if (*end == '\0' && idx < env->nrcpts)
			env->rcpts[idx].done = true;
	}
	free(buf);
}

static int
queue_state_save(const char *dir, const char *id, const struct queue_envelope *env, int attempts)
{
	char name[QUEUE_ID_LEN + 8], *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int ret;

	if (f == NULL)
		return -1;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].done)
			fprintf(f, "done %zu\n", i);
	if (attempts > 0)
		fprintf(f, "attempts %d\n", attempts);
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	snprintf(name, sizeof(name), "%s.state", id);
	ret = fs_write_file_durable(dir, name, buf, len, 0600);
	free(buf);
	return ret;
}

/*
 * Deliver every local recipient not done yet: write all the Maildir files,
 * one barrier for their data, publish them all, one barrier for the names.
 * Returns true if any recipient was newly delivered.
 */
/*
 * Is line (at a header field start) an Authentication-Results field that
 * claims our authserv-id? (RFC 8601 5: a border MTA removes those.)
 */
static bool
ar_claims_us(const char *line, const char *end, const char *hostname)
{
	const char *p = line + 23;
	size_t hl = strlen(hostname);

	if (end - line < 23 || strncasecmp(line, "Authentication-Results:", 23) != 0)
		return false;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return (size_t)(end - p) >= hl && strncasecmp(p, hostname, hl) == 0 &&
	    (p + hl == end || p[hl] == ';' || p[hl] == ' ' || p[hl] == '\t' || p[hl] == '\r');
}

/* The copy for local mailboxes: our A-R first, forged ones claiming us dropped. */
static char *
queue_local_copy(const struct queue_job *job, const char *msg, size_t len, size_t *len_r)
{
	const char *hend = memmem(msg, len, "\r\n\r\n", 4);
	size_t arl = job->auth_results != NULL ? strlen(job->auth_results) : 0;
	char *out = malloc(arl + len + 1), *o = out;
	const char *p = msg, *stop = hend != NULL ? hend + 2 : msg + len;

	if (out == NULL)
		return NULL;
	if (arl > 0) {
		memcpy(o, job->auth_results, arl);
		o += arl;
	}
	while (p < stop) {
		/* one field: its first line and every continuation line */
		const char *f = p, *q = p;

		do {
			const char *nl = memmem(q, (size_t)(stop - q), "\r\n", 2);

			q = nl != NULL ? nl + 2 : stop;
		} while (q < stop && (*q == ' ' || *q == '\t'));
		if (ar_claims_us(f, q, job->q->cfg->hostname))
			log_info("event=delivery.strip queue_id=%s header=Authentication-Results reason=forged",
			    job->e->id);
		else {
			memcpy(o, f, (size_t)(q - f));
			o += q - f;
		}
		p = q;
	}
	memcpy(o, stop, (size_t)(msg + len - stop));
	o += msg + len - stop;
	*len_r = (size_t)(o - out);
	return out;
}

static bool
queue_job_deliver_local_copy(struct queue_job *job, struct queue_envelope *env,
    const char *msg, size_t len);

/* Does env still have a local recipient to deliver to? */
static bool
queue_local_pending(const struct queue_envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		if (!env->rcpts[i].done && env->rcpts[i].local)
			return true;
	return false;
}

static bool
queue_job_deliver_local(struct queue_job *job, struct queue_envelope *env,
    const char *msg, size_t len)
{
	size_t clen;
	char *copy;
	bool r;

	if (!queue_local_pending(env))   /* only remote ones: no copy to make */
		return queue_job_deliver_local_copy(job, env, msg, len);
	if ((copy = queue_local_copy(job, msg, len, &clen)) == NULL) {
		job->failed = true;
		return false;
	}
	r = queue_job_deliver_local_copy(job, env, copy, clen);
	free(copy);
	return r;
}

static bool
queue_job_deliver_local_copy(struct queue_job *job, struct queue_envelope *env,
    const char *msg, size_t len)
{
	const struct config *cfg = job->q->cfg;
	struct delivery_file *files = calloc(env->nrcpts, sizeof(*files));
	bool *written = calloc(env->nrcpts, sizeof(*written));
	char esc[LOG_ESCAPE_MAX];
	const char *reason;
	bool any = false, progress = false;

	if (files == NULL || written == NULL) {
		free(files);
		free(written);
		job->failed = true;
		return false;
	}
	for (size_t i = 0; i < env->nrcpts; i++) {
		struct queue_rcpt *r = &env->rcpts[i];

		if (r->done)
			continue;
		if (!r->local) {
			job->remote_left = true;
			continue;
		}
		if (delivery_maildir_write(cfg->data_dir, cfg->hostname, r->address, env->sender,
		    msg, len, &files[i], &reason) == -1) {
			log_warn("event=delivery.deferred queue_id=%s to=%s reason=\"%s\"", env->id,
			    log_escape(esc, sizeof(esc), r->address, strlen(r->address)), reason);
			job->failed = true;
			continue;
		}
		written[i] = any = true;
	}
	if (any && fs_barrier_wait(job->q->mail_barrier) == -1) {
		log_warn("event=delivery.deferred queue_id=%s reason=\"cannot sync maildir data\"", env->id);
		for (size_t i = 0; i < env->nrcpts; i++)
			if (written[i])
				delivery_maildir_discard(&files[i]);
		job->failed = true;
		any = false;
	}
	for (size_t i = 0; i < env->nrcpts && any; i++) {
		if (!written[i])
			continue;
		if (delivery_maildir_publish(&files[i]) == -1) {
			log_warn("event=delivery.deferred queue_id=%s reason=\"cannot publish\"", env->id);
			written[i] = false;
			job->failed = true;
		}
	}
	if (any && fs_barrier_wait(job->q->mail_barrier) == -1) {
		/* Published but maybe not durable: deliver again later (a duplicate
		 * is tolerable, a loss is not). */
		log_warn("event=delivery.deferred queue_id=%s reason=\"cannot sync maildir\"", env->id);
		job->failed = true;
		any = false;
	}
	for (size_t i = 0; i < env->nrcpts && any; i++) {
		if (!written[i])
			continue;
		env->rcpts[i].done = true;
		progress = true;
		log_info("event=delivery.ok queue_id=%s to=%s mailbox=maildir size=%zu", env->id,
		    log_escape(esc, sizeof(esc), env->rcpts[i].address, strlen(env->rcpts[i].address)), len);
	}
	free(files);
	free(written);
	return progress;
}

static int queue_job_sign(struct queue_job *job);

/*
 * Pool thread: verify the DKIM signatures of mail from outside that has
 * local recipients. Without signatures the result is known at once
 * (dkim=none); with some, returns true: their keys are looked up on the
 * loop (queue_job_done) and the job runs again with job->auth_results.
 */
static bool
queue_job_verify(struct queue_job *job, const struct queue_envelope *env, const char *msg,
    size_t len)
{
	const char *host = job->q->cfg->hostname;
	char *clauses;

	if (!queue_local_pending(env) || (env->flags & QUEUE_FLAG_SIGN) || job->q->dns == NULL)
		return false;   /* ours (authenticated, mynetworks): nothing to verify */
	if (dkim_verify_begin(msg, len, time(NULL), &job->verify) == -1)
		return false;
	for (size_t i = 0; i < dkim_verify_count(job->verify); i++)
		if (dkim_verify_query(job->verify, i) != NULL)
			return true;
	if (dkim_verify_count(job->verify) == 0) {
		/* Unsigned: nothing to report (forged results are still removed). */
		job->auth_results = strdup("");
		dkim_verify_free(&job->verify);
		return false;
	}
	/* No lookup needed: every signature is decided already. */
	clauses = dkim_auth_results(job->verify, ";\r\n\t");
	if (clauses != NULL && asprintf(&job->auth_results,
	    "Authentication-Results: %s;\r\n\t%s\r\n", host, clauses) == -1)
		job->auth_results = NULL;
	free(clauses);
	dkim_verify_free(&job->verify);
	return false;
}

/* Pool thread: deliver what is local and not done yet. */
static void
queue_job_work(void *arg)
{
	struct queue_job *job = arg;
	const struct config *cfg = job->q->cfg;
	char path[PATH_MAX], statepath[PATH_MAX + 8];
	struct queue_envelope env;
	size_t len, body;
	char *buf;
	bool progress;

	if (fs_path(path, sizeof(path), "%s/%s", job->q->dir, job->e->id) == -1 ||
	    fs_path(statepath, sizeof(statepath), "%s.state", path) == -1 ||
	    fs_read_file(path, &buf, &len, cfg->smtp.max_message_size + QUEUE_HEADER_SLACK) == -1) {
		if (errno == ENOENT) {
			/* Held or deleted by bulwarkctl meanwhile: not ours any more. */
			log_info("event=queue.gone queue_id=%s", job->e->id);
			job->removed = true;
			return;
		}
		log_warn("event=queue.error queue_id=%s reason=read", job->e->id);
		job->failed = true;
		return;
	}
	if (queue_envelope_parse(buf, len, &env, &body) == -1) {
		/* Keep the file for the admin; never delete what we cannot read. */
		log_error("event=queue.corrupt queue_id=%s path=%s", job->e->id, path);
		job->failed = true;
		free(buf);
		return;
	}
	queue_state_load(statepath, &env, &job->attempts, &job->next_retry);
	if (job->auth_results == NULL && queue_job_verify(job, &env, buf + body, len - body)) {
		/* Key lookups first (on the loop), then this job runs again. */
		queue_envelope_clear(&env);
		free(buf);
		return;
	}
	progress = queue_job_deliver_local(job, &env, buf + body, len - body);
	if (!job->failed && !job->remote_left) {
		/* No fsync needed: a lost unlink means a duplicate, never a loss. */
		(void)unlink(statepath);
		if (unlink(path) == -1)
			log_warn("event=queue.error queue_id=%s reason=unlink", env.id);
		job->removed = true;
		log_info("event=queue.removed queue_id=%s", env.id);
	} else if (progress && queue_state_save(job->q->dir, env.id, &env, job->attempts) == -1) {
		log_warn("event=queue.error queue_id=%s reason=state", env.id);
	}
	if (job->remote_left && !job->failed) {
		/* Handed to remote delivery on the loop (queue_job_done). */
		job->env = env;
		job->buf = buf;
		job->len = len;
		job->body = body;
		if (queue_job_sign(job) == -1)
			job->failed = true;   /* retried later, never sent unsigned */
		return;
	}
	queue_envelope_clear(&env);
	free(buf);
}

static void queue_entry_unlink(struct queue *q, struct queue_entry *e);

void
queue_entry_drop(struct queue *q, struct queue_entry *e)
{
	queue_entry_unlink(q, e);
}

static void
queue_entry_unlink(struct queue *q, struct queue_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		q->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	q->count--;
	free(e->sender);
	free(e);
}

/*
 * Move a message into queue/hold/ (lockdown, containment): state file
 * first, then the message, as bulwarkctl queue hold does. The entry leaves
 * the schedule.
 */
static int
queue_hold(struct queue *q, struct queue_entry *e, const char *reason)
{
	char from[PATH_MAX + 32], to[PATH_MAX + 48];

	if (fs_path(from, sizeof(from), "%s/%s.state", q->dir, e->id) == 0 &&
	    fs_path(to, sizeof(to), "%s/hold/%s.state", q->dir, e->id) == 0 &&
	    rename(from, to) == -1 && errno != ENOENT)
		goto fail;
	if (fs_path(from, sizeof(from), "%s/%s", q->dir, e->id) == -1 ||
	    fs_path(to, sizeof(to), "%s/hold/%s", q->dir, e->id) == -1 || rename(from, to) == -1)
		goto fail;
	log_warnx("event=queue.held queue_id=%s reason=%s", e->id, reason);
	queue_entry_unlink(q, e);
	return 0;
fail:
	log_warn("event=queue.error queue_id=%s reason=hold", e->id);
	return -1;
}

static void
queue_job_free(struct queue_job *job)
{
	queue_envelope_clear(&job->env);
	dkim_verify_free(&job->verify);
	free(job->auth_results);
	free(job->buf);
	free(job);
}

static void queue_job_done(void *arg);
static void queue_job_work(void *arg);

/* All keys answered: write the A-R header and run the job again. */
static void
queue_job_keys_done(struct queue_job *job)
{
	char *clauses = dkim_auth_results(job->verify, ";\r\n\t");

	if (clauses == NULL || asprintf(&job->auth_results, "Authentication-Results: %s;\r\n\t%s\r\n",
	    job->q->cfg->hostname, clauses) == -1)
		job->auth_results = strdup("");   /* no memory: deliver without it */
	free(clauses);
	log_info("event=dkim.verified queue_id=%s pass=%s", job->e->id,
	    dkim_verify_pass(job->verify) ? "yes" : "no");
	dkim_verify_free(&job->verify);
	if (job->auth_results == NULL || pool_submit(job->q->pool, queue_job_work, queue_job_done, job) == -1) {
		job->e->busy = false;
		job->e->retry_at = time(NULL) + QUEUE_RETRY_SECONDS;
		queue_job_free(job);
		return;
	}
	job->q->busy++;
}

struct queue_key_lookup {
	struct queue_key_lookup *next, *prev;   /* q->lookups, for shutdown */
	struct queue_job *job;
	size_t sig;
	struct dns_req *req;
};

static void
queue_lookup_unlink(struct queue *q, struct queue_key_lookup *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		q->lookups = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
}

/* Shutdown: cancel key lookups in flight and free their jobs. */
static void
queue_lookups_abort(struct queue *q)
{
	while (q->lookups != NULL) {
		struct queue_key_lookup *l = q->lookups;
		struct queue_job *job = l->job;

		queue_lookup_unlink(q, l);
		dns_cancel(&l->req);
		free(l);
		if (--job->dns_left == 0)
			queue_job_free(job);
	}
}

static void
queue_key_cb(void *arg, enum dns_status status, const char *const *txts, size_t n)
{
	struct queue_key_lookup *l = arg;
	struct queue_job *job = l->job;

	l->req = NULL;
	queue_lookup_unlink(job->q, l);
	enum dkim_dns r = status == DNS_OK && n > 0 ? DKIM_DNS_FOUND :
	    status == DNS_TEMPFAIL ? DKIM_DNS_TEMPFAIL : DKIM_DNS_NONE;

	dkim_verify_answer(job->verify, l->sig, r, r == DKIM_DNS_FOUND ? txts[0] : NULL,
	    r == DKIM_DNS_FOUND ? strlen(txts[0]) : 0);
	free(l);
	if (--job->dns_left == 0)
		queue_job_keys_done(job);
}

/* Loop thread: one TXT lookup per signature that needs its key. */
static void
queue_job_lookup_keys(struct queue_job *job)
{
	size_t n = dkim_verify_count(job->verify);

	job->dns_left = 1;   /* held until every lookup is started */
	for (size_t i = 0; i < n; i++) {
		const char *name = dkim_verify_query(job->verify, i);
		struct queue_key_lookup *l;

		if (name == NULL || (l = calloc(1, sizeof(*l))) == NULL)
			continue;   /* decided already (or no memory: a temperror) */
		l->job = job;
		l->sig = i;
		if ((l->req = dns_resolve_txt(job->q->dns, name, queue_key_cb, l)) == NULL) {
			dkim_verify_answer(job->verify, i, DKIM_DNS_NONE, NULL, 0);
			free(l);
			continue;
		}
		job->dns_left++;
		l->next = job->q->lookups;
		if (l->next != NULL)
			l->next->prev = l;
		job->q->lookups = l;
	}
	if (--job->dns_left == 0)
		queue_job_keys_done(job);
}

static void
queue_job_done(void *arg)
{
	struct queue_job *job = arg;
	struct queue *q = job->q;
	struct queue_entry *e = job->e;

	q->busy--;
	if (job->verify != NULL && !job->removed && !job->failed) {
		queue_job_lookup_keys(job);   /* e stays busy: the job comes back */
		return;
	}
	e->busy = false;
	if (job->removed) {
		queue_entry_unlink(q, e);
		queue_job_free(job);
		return;
	} else if (job->failed) {
		e->retry_at = time(NULL) + QUEUE_RETRY_SECONDS;
	} else if (job->remote_left) {
		bool forced = e->forced;

		e->remote_waiting = true;
		e->attempts = job->attempts;
		e->forced = false;
		if (e->sender == NULL && job->env.sender != NULL)
			e->sender = strdup(job->env.sender);   /* NULL (no memory): never matched */
		if (q->lockdown && queue_hold(q, e, "lockdown") == 0) {
			queue_job_free(job);
			return;
		}
		if (q->observer.hold != NULL && job->env.sender != NULL &&
		    q->observer.hold(q->observer.arg, job->env.sender) &&
		    queue_hold(q, e, "containment") == 0) {
			queue_job_free(job);
			return;
		}
		if (q->dns != NULL && !forced && job->next_retry > time(NULL)) {
			/* Deferred before a restart: its retry time still holds. */
			e->remote_waiting = false;
			e->retry_at = job->next_retry;
		} else if (q->dns != NULL) {
			if (queue_remote_start(q, e, &job->env, job->buf, job->len, job->body,
			    job->attempts)) {
				e->remote_waiting = false;
				job->buf = NULL;   /* the attempt's now */
			} else {
				/* No room: again when an attempt ends (queue_slot_freed), or soon. */
				e->slot_wait = true;
				e->retry_at = time(NULL) + 30;
			}
		} else {
			log_info("event=queue.waiting queue_id=%s reason=\"no remote delivery configured\"", e->id);
		}
	}
	queue_job_free(job);
}

static void
queue_run(struct queue *q, struct queue_entry *e)
{
	struct queue_job *job = calloc(1, sizeof(*job));

	e->slot_wait = false;
	if (job == NULL) {
		e->retry_at = time(NULL) + QUEUE_RETRY_SECONDS;
		return;
	}
	job->q = q;
	job->e = e;
	if (pool_submit(q->pool, queue_job_work, queue_job_done, job) == -1) {
		free(job);
		e->retry_at = time(NULL) + QUEUE_RETRY_SECONDS;
		return;
	}
	e->busy = true;
	e->retry_at = 0;
	q->busy++;
}

void
queue_slot_freed(struct queue *q)
{
	for (struct queue_entry *e = q->head; e != NULL; e = e->next)
		if (e->slot_wait && !e->busy) {
			queue_run(q, e);
			return;
		}
}

static struct queue_entry *
queue_entry_add(struct queue *q, const char *id)
{
	struct queue_entry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	memcpy(e->id, id, QUEUE_ID_LEN);
	e->next = q->head;
	if (q->head != NULL)
		q->head->prev = e;
	q->head = e;
	q->count++;
	return e;
}

static struct queue_entry *
queue_entry_find(struct queue *q, const char *id)
{
	for (struct queue_entry *e = q->head; e != NULL; e = e->next)
		if (memcmp(e->id, id, QUEUE_ID_LEN) == 0)
			return e;
	return NULL;
}

void
queue_schedule_new(struct queue *q, const char *id)
{
	struct queue_entry *e = queue_entry_find(q, id);

	if (e != NULL) {
		/* Released after a hold we had not noticed yet: one entry, one job. */
		e->remote_waiting = false;
		if (!e->busy) {
			e->forced = true;   /* released by the admin: now, not at its retry time */
			queue_run(q, e);
		}
		return;
	}
	e = queue_entry_add(q, id);

	if (e == NULL) {
		/* The file is safe on disk; the next start picks it up. */
		log_warnx("event=queue.error queue_id=%s reason=\"out of memory\"", id);
		return;
	}
	e->forced = true;
	queue_run(q, e);
}

/*
 * Pickup: notices dropped into queue/incoming/ (by bulwarkctl or by our
 * workers) move into queue/ and are scheduled. The rename is atomic and
 * both names are scanned at start, so no flush is needed here.
 */
static void
queue_pickup(struct queue *q)
{
	char indir[PATH_MAX + 16];
	struct dirent *de;
	DIR *d;

	if (fs_path(indir, sizeof(indir), "%s/incoming", q->dir) == -1 ||
	    (d = opendir(indir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char from[PATH_MAX + 300], to[PATH_MAX + 32];

		if (!queue_id_valid(de->d_name))
			continue;
		if (fs_path(from, sizeof(from), "%s/%s", indir, de->d_name) == -1 ||
		    fs_path(to, sizeof(to), "%s/%s", q->dir, de->d_name) == -1)
			continue;
		if (rename(from, to) == -1) {
			log_warn("event=queue.error queue_id=%s reason=pickup", de->d_name);
			continue;
		}
		log_info("event=queue.pickup queue_id=%s", de->d_name);
		queue_schedule_new(q, de->d_name);
	}
	closedir(d);
}

/*
 * The admin's control files in queue/: FLUSH (retry every deferred message
 * now, then the file goes) and LOCKDOWN (no remote delivery; messages with
 * remote recipients are held while it exists).
 */
static void
queue_control(struct queue *q)
{
	char path[PATH_MAX + 16];
	bool lockdown;

	if (fs_path(path, sizeof(path), "%s/FLUSH", q->dir) == 0 && unlink(path) == 0) {
		log_info("event=queue.flush");
		for (struct queue_entry *e = q->head; e != NULL; e = e->next)
			if (!e->busy && e->retry_at != 0) {
				e->forced = true;
				queue_run(q, e);
			}
	}
	lockdown = fs_path(path, sizeof(path), "%s/LOCKDOWN", q->dir) == 0 && access(path, F_OK) == 0;
	if (lockdown != q->lockdown) {
		q->lockdown = lockdown;
		if (lockdown)
			log_warnx("event=queue.lockdown state=on reason=\"outbound delivery stopped by the admin\"");
		else
			log_warnx("event=queue.lockdown state=off");
	}
	/* Entries whose file bulwarkctl held or deleted leave the schedule. */
	for (struct queue_entry *e = q->head, *next; e != NULL; e = next) {
		next = e->next;
		if (!e->busy && (e->remote_waiting || e->retry_at != 0) &&
		    fs_path(path, sizeof(path), "%s/%s", q->dir, e->id) == 0 &&
		    access(path, F_OK) == -1 && errno == ENOENT) {
			log_info("event=queue.gone queue_id=%s", e->id);
			queue_entry_unlink(q, e);
		}
	}
	if (q->lockdown) {
		struct queue_entry *e = q->head, *next;

		for (; e != NULL; e = next) {
			next = e->next;
			if (!e->busy && (e->remote_waiting || e->retry_at != 0))
				(void)queue_hold(q, e, "lockdown");
		}
	}
}

static void
queue_pickup_cb(evutil_socket_t fd, short what, void *arg)
{
	queue_control(arg);
	queue_pickup(arg);
}

static void
queue_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	time_t now = time(NULL);

	for (struct queue_entry *e = q->head; e != NULL; e = e->next)
		if (!e->busy && e->retry_at != 0 && e->retry_at <= now)
			queue_run(q, e);
}

struct queue *
queue_new(struct event_base *base, struct pool *pool, const struct config *cfg)
{
	struct queue *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->base = base;
	q->pool = pool;
	q->cfg = cfg;
	if (fs_path(q->dir, sizeof(q->dir) - 64, "%s/queue", cfg->data_dir) == -1 ||
	    fs_path(q->tmpdir, sizeof(q->tmpdir), "%s/queue/tmp", cfg->data_dir) == -1 ||
	    fs_path(q->incomingdir, sizeof(q->incomingdir), "%s/queue/incoming", cfg->data_dir) == -1 ||
	    fs_path(q->holddir, sizeof(q->holddir), "%s/queue/hold", cfg->data_dir) == -1) {
		free(q);
		return NULL;
	}
	return q;
}

/* One barrier per filesystem: the spool's, and the Maildirs' if elsewhere. */
static int
queue_barriers_open(struct queue *q)
{
	char mail[PATH_MAX];
	struct stat a, b;

	if (fs_path(mail, sizeof(mail), "%s/mail", q->cfg->data_dir) == -1 ||
	    fs_mkdir_p(mail, 0700) == -1 || stat(q->dir, &a) == -1 || stat(mail, &b) == -1)
		return -1;
	if ((q->spool_barrier = fs_barrier_new(q->dir)) == NULL)
		return -1;
	if (a.st_dev == b.st_dev)
		q->mail_barrier = q->spool_barrier;
	else if ((q->mail_barrier = fs_barrier_new(mail)) == NULL)
		return -1;
	return 0;
}

void
queue_set_dkim(struct queue *q, struct dkim_key ***keys, const size_t *nkeys)
{
	q->dkim_keys = keys;
	q->dkim_nkeys = nkeys;
}

/* The domain of the message's first From: address, lower-cased, or "". */
static void
from_domain(const char *msg, size_t len, char *buf, size_t buflen)
{
	const char *end = memmem(msg, len, "\r\n\r\n", 4);
	const char *p = msg, *hend = end != NULL ? end : msg + len;
	size_t o = 0;

	buf[0] = '\0';
	while (p < hend) {
		const char *eol = memmem(p, (size_t)(hend - p), "\r\n", 2);
		const char *line_end = eol != NULL ? eol : hend;

		if (line_end - p > 5 && strncasecmp(p, "From:", 5) == 0) {
			/* the field may be folded: look up to the next unfolded line */
			const char *f = p + 5, *fend = line_end;
			const char *at;

			while (fend + 2 < hend && (fend[2] == ' ' || fend[2] == '\t')) {
				const char *n = memmem(fend + 2, (size_t)(hend - fend - 2), "\r\n", 2);

				fend = n != NULL ? n : hend;
			}
			if ((at = memchr(f, '@', (size_t)(fend - f))) == NULL)
				return;
			for (at++; at < fend && o + 1 < buflen; at++) {
				char c = *at;

				if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				    (c >= '0' && c <= '9') || c == '-' || c == '.'))
					break;
				buf[o++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
			}
			buf[o] = '\0';
			return;
		}
		p = line_end + 2;
	}
}

/*
 * Pool thread: sign a message that leaves (QUEUE_FLAG_SIGN) with the keys of
 * its From domain. The spool file stays as received; the signed copy goes
 * out. A signing failure defers the message (logged), so a broken key
 * never sends mail unsigned in silence.
 */
static int
queue_job_sign(struct queue_job *job)
{
	const struct config *cfg = job->q->cfg;
	char domain[256], *hdrs = NULL, *err = NULL, *nb;
	const char *msg = job->buf + job->body;
	size_t len = job->len - job->body, hl;

	if (!(job->env.flags & QUEUE_FLAG_SIGN) || job->q->dkim_keys == NULL)
		return 0;
	from_domain(msg, len, domain, sizeof(domain));
	for (size_t i = 0; i < cfg->ndomains; i++) {
		if (strcmp(cfg->domains[i], domain) != 0 || job->q->dkim_nkeys[i] == 0)
			continue;
		if (dkim_sign_keys(job->q->dkim_keys[i], job->q->dkim_nkeys[i], msg, len, time(NULL),
		    &hdrs, &err) == -1) {
			log_warnx("event=dkim.error queue_id=%s domain=%s reason=\"%s\"", job->env.id,
			    domain, err != NULL ? err : "out of memory");
			free(err);
			return -1;
		}
		hl = strlen(hdrs);
		if ((nb = malloc(hl + len)) == NULL) {
			free(hdrs);
			return -1;
		}
		memcpy(nb, hdrs, hl);
		memcpy(nb + hl, msg, len);
		free(hdrs);
		free(job->buf);
		job->buf = nb;
		job->len = hl + len;
		job->body = 0;
		log_info("event=dkim.signed queue_id=%s domain=%s signatures=%zu", job->env.id, domain,
		    job->q->dkim_nkeys[i]);
		return 0;
	}
	return 0;
}

int
queue_set_outbound(struct queue *q, struct dns *dns, SSL_CTX *client_tls, char **error_r)
{
	const char *sh = q->cfg->outbound.smarthost;

	q->dns = dns;
	q->client_tls = client_tls;
	if (sh != NULL) {
		const char *colon = strrchr(sh, ':');
		const char *why;
		socklen_t sl;
		size_t hl;

		if (colon == NULL || (q->smarthost_port = atoi(colon + 1)) <= 0 ||
		    q->smarthost_port > 65535) {
			if (asprintf(error_r, "outbound.smarthost: bad HOST:PORT '%s'", sh) == -1)
				*error_r = NULL;
			return -1;
		}
		hl = (size_t)(colon - sh);
		if (hl >= 2 && sh[0] == '[' && sh[hl - 1] == ']') {
			sh++;
			hl -= 2;
		}
		snprintf(q->smarthost_host, sizeof(q->smarthost_host), "%.*s", (int)hl, sh);
		if (sockaddr_parse_listen(q->cfg->outbound.smarthost, &q->smarthost_ss, &sl, &why) != 0)
			memset(&q->smarthost_ss, 0, sizeof(q->smarthost_ss));   /* a name: resolve it */
	}
	return 0;
}

int
queue_start(struct queue *q, char **error_r)
{
	/* Retries are looked at every 15 s, or as often as the retry base asks. */
	struct timeval tv = { .tv_sec = q->cfg->outbound.retry_base < 15 ?
	    q->cfg->outbound.retry_base : 15 };
	struct dirent *de;
	DIR *d;

	if (fs_mkdir_p(q->tmpdir, 0700) == -1 || fs_mkdir_p(q->incomingdir, 0700) == -1 ||
	    fs_mkdir_p(q->holddir, 0700) == -1 ||
	    queue_barriers_open(q) == -1)
		goto fail;
	/* Half-written messages never got a 250: drop them. */
	if ((d = opendir(q->tmpdir)) == NULL)
		goto fail;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX + 300];

		if (de->d_name[0] == '.')
			continue;
		if (fs_path(path, sizeof(path), "%s/%s", q->tmpdir, de->d_name) == 0 &&
		    unlink(path) == 0)
			log_info("event=queue.dropped_partial file=%s", de->d_name);
	}
	closedir(d);
	if ((d = opendir(q->dir)) == NULL)
		goto fail;
	while ((de = readdir(d)) != NULL) {
		struct queue_entry *e;
		size_t n = strlen(de->d_name);

		if (n == QUEUE_ID_LEN + 6 && strcmp(de->d_name + QUEUE_ID_LEN, ".state") == 0) {
			char msg[PATH_MAX + 32], state[PATH_MAX + 32];

			/* A state file whose message was held or deleted: debris. */
			if (fs_path(msg, sizeof(msg), "%s/%.*s", q->dir, QUEUE_ID_LEN, de->d_name) == 0 &&
			    access(msg, F_OK) == -1 && errno == ENOENT &&
			    fs_path(state, sizeof(state), "%s/%s", q->dir, de->d_name) == 0)
				(void)unlink(state);
			continue;
		}
		if (!queue_id_valid(de->d_name))
			continue;
		if ((e = queue_entry_add(q, de->d_name)) == NULL) {
			closedir(d);
			goto fail;
		}
		queue_run(q, e);
	}
	closedir(d);
	if (q->count > 0)
		log_info("event=queue.recovered messages=%zu", q->count);
	q->retry_ev = event_new(q->base, -1, EV_PERSIST, queue_retry_cb, q);
	if (q->retry_ev == NULL || event_add(q->retry_ev, &tv) == -1)
		goto fail;
	{
		struct timeval pick = { .tv_sec = 2 };

		q->pickup_ev = event_new(q->base, -1, EV_PERSIST, queue_pickup_cb, q);
		if (q->pickup_ev == NULL || event_add(q->pickup_ev, &pick) == -1)
			goto fail;
	}
	queue_control(q);
	queue_pickup(q);
	return 0;
fail:
	if (asprintf(error_r, "queue: %s: %s", q->dir, strerror(errno)) == -1)
		*error_r = NULL;
	return -1;
}

void
queue_set_observer(struct queue *q, const struct queue_observer *obs)
{
	q->observer = *obs;
}

bool
queue_attempt_done(struct queue *q, struct queue_entry *e, const struct queue_envelope *env,
    bool removed, size_t delivered, size_t deferred, size_t failed)
{
	const char *sender = env->sender != NULL ? env->sender : "";
	bool busy = e->busy;

	/* busy meanwhile: a containment the observer starts must not hold e under us */
	e->busy = true;
	if (q->observer.attempt != NULL)
		q->observer.attempt(q->observer.arg, sender, env->flags, delivered, deferred, failed);
	e->busy = busy;
	if (removed || q->observer.hold == NULL || !q->observer.hold(q->observer.arg, sender))
		return false;
	return queue_hold(q, e, "containment") == 0;
}

size_t
queue_hold_senders(struct queue *q, const char *const *senders, size_t n, const char *reason)
{
	size_t held = 0;

	for (struct queue_entry *e = q->head, *next; e != NULL; e = next) {
		next = e->next;
		if (e->busy || e->sender == NULL)
			continue;   /* in flight, or not read yet: asked again when it ends */
		for (size_t i = 0; i < n; i++) {
			if (strcasecmp(e->sender, senders[i]) != 0)
				continue;
			if (queue_hold(q, e, reason) == 0)
				held++;
			break;
		}
	}
	return held;
}

size_t
queue_deferred_count(const struct queue *q)
{
	size_t n = 0;

	for (const struct queue_entry *e = q->head; e != NULL; e = e->next)
		if (e->attempts > 0 && !e->busy)
			n++;
	return n;
}

size_t
queue_count(const struct queue *q)
{
	return q->count;
}

bool
queue_lockdown(const struct queue *q)
{
	return q->lockdown;
}

size_t
queue_busy(const struct queue *q)
{
	return q->busy;
}

void
queue_free(struct queue **qp)
{
	struct queue *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	queue_remote_abort_all(q);
	queue_lookups_abort(q);
	if (q->retry_ev != NULL)
		event_free(q->retry_ev);
	if (q->pickup_ev != NULL)
		event_free(q->pickup_ev);
	while (q->head != NULL)
		queue_entry_unlink(q, q->head);
	if (q->mail_barrier != q->spool_barrier)
		fs_barrier_free(&q->mail_barrier);
	fs_barrier_free(&q->spool_barrier);
	free(q);
}
