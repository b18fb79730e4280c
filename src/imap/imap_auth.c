/*
 * imap_auth.c: IMAP LOGIN (RFC 3501 6.2.3) and AUTHENTICATE PLAIN (RFC 3501
 * 6.2.2, RFC 4616, SASL-IR RFC 4959), through the same machinery as SMTP
 * AUTH: directory_auth() on the password pool (argon2id, lockout, known IPs),
 * a guard strike per failure, the auth metrics with protocol="imap". Only
 * after TLS, or from mynetworks. Every failure gets the same
 * "NO [AUTHENTICATIONFAILED]"; the log says exactly why, and a second line in
 * Dovecot's words feeds fail2ban's stock dovecot filter. Passwords never
 * reach a log and are wiped after use.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "core/pool.h"
#include "directory/directory.h"
#include "guard/guard.h"
#include "monitor/metrics.h"
#include "queue/queue.h"
#include "imap/imap_session_private.h"

#define AUTH_FIELD_MAX 512
#define IMAP_AUTH_BACKLOG_MAX 64   /* password checks queued at most (shared pool) */

struct imap_auth_job {
	struct imap_session *s;
	const struct config *cfg;
	char tag[IMAP_TAG_MAX + 1];
	char mech[8];
	char user[AUTH_FIELD_MAX];
	char password[AUTH_FIELD_MAX];
	char ip[64];
	struct directory_auth_outcome out;
};

/* Each worker thread keeps its own directory handle (SQLite handles are per thread). */
static pthread_key_t auth_dir_key;
static pthread_once_t auth_dir_once = PTHREAD_ONCE_INIT;

static void
auth_dir_destroy(void *p)
{
	struct directory *dir = p;

	directory_free(&dir);
}

static void
auth_dir_key_make(void)
{
	(void)pthread_key_create(&auth_dir_key, auth_dir_destroy);
}

static struct directory *
auth_thread_directory(const struct config *cfg)
{
	struct directory *dir;
	char *error = NULL;

	pthread_once(&auth_dir_once, auth_dir_key_make);
	if ((dir = pthread_getspecific(auth_dir_key)) != NULL)
		return dir;
	if (directory_open(cfg->data_dir, &dir, &error) == -1) {
		log_warnx("event=auth.error reason=\"%s\"", error != NULL ? error : "directory");
		free(error);
		return NULL;
	}
	pthread_setspecific(auth_dir_key, dir);
	return dir;
}

bool
imap_auth_allowed(const struct imap_session *s)
{
	return s->tls || s->trusted;
}

/* Pool thread: the slow part, and the lockout notice if this attempt locked. */
static void
imap_auth_work(void *arg)
{
	struct imap_auth_job *job = arg;
	struct directory *dir = auth_thread_directory(job->cfg);

	if (dir == NULL)
		job->out.result = DIRECTORY_AUTH_ERROR;
	else
		(void)directory_auth(dir, job->cfg, job->user, job->password, job->ip,
		    (int64_t)time(NULL), &job->out);
	sodium_memzero(job->password, sizeof(job->password));
	if (job->out.locked_now && job->out.contact[0] != '\0') {
		char body[2048], until[64], qid[QUEUE_ID_LEN + 1];
		time_t t = (time_t)job->out.locked_until;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S UTC", &tm);
		snprintf(body, sizeof(body),
		    "Your mail account %s was locked after %d failed logins; the last\n"
		    "came from %s (IMAP).\n\n"
		    "It unlocks by itself at %s. If this was not you, someone is\n"
		    "guessing your password: ask your administrator to change it.\n"
		    "An administrator can unlock it at once with:\n\n"
		    "    bulwarkctl user unlock %s\n",
		    job->out.account, job->out.failed_logins, job->ip, until, job->out.account);
		if (queue_notice(job->cfg, job->out.contact, "Your mail account was locked", body,
		    qid) == 0)
			log_info("event=auth.lockout_notice account=%s queue_id=%s", job->out.account, qid);
		else
			log_warn("event=auth.error account=%s reason=lockout_notice", job->out.account);
	}
}

/*
 * A failed login: bulwark's own line; for the client's failures (not our
 * store's) Dovecot's line for fail2ban, a strike and the metric.
 */
static void
imap_auth_fail(struct imap_session *s, const char *mech, const char *user, size_t userlen,
    const char *reason, const struct directory_auth_outcome *out)
{
	char u[LOG_ESCAPE_MAX], labels[96];

	log_escape(u, sizeof(u), user, userlen);
	if (out != NULL)
		log_warnx("event=auth.failure session=%s client=%s protocol=imap mechanism=%s account=%s "
		    "reason=%s counted=%s failed_logins=%d locked=%s known_ip=%s",
		    s->id, s->ip, mech, u, reason, out->counted ? "yes" : "no",
		    out->failed_logins, out->locked_until > time(NULL) ? "yes" : "no",
		    out->known_ip ? "yes" : "no");
	else
		log_warnx("event=auth.failure session=%s client=%s protocol=imap mechanism=%s account=%s "
		    "reason=%s", s->id, s->ip, mech, u, reason);
	snprintf(labels, sizeof(labels), "protocol=\"imap\",reason=\"%s\"", reason);
	metrics_inc("bulwark_auth_failures_total", labels);
	if (out != NULL && out->result == DIRECTORY_AUTH_ERROR)
		return;   /* our failure, not the client's */
	/* fail2ban's stock dovecot filter matches this line (no level word). */
	for (char *p = u; *p != '\0'; p++)
		if (*p == '>' || *p == '<' || *p == ',')
			*p = '?';
	log_compat("imap-login: Aborted login (auth failed, 1 attempts in 0 secs): user=<%s>, "
	    "method=%s, rip=%s, lip=%s, session=<%s>", u, mech, s->ip,
	    s->local_ip[0] != '\0' ? s->local_ip : "-", s->id);
	if (out != NULL && out->locked_now) {
		log_warnx("event=auth.lockout session=%s client=%s account=%s failed_logins=%d until=%lld",
		    s->id, s->ip, u, out->failed_logins, (long long)out->locked_until);
		metrics_inc("bulwark_lockouts_total", NULL);
	}
	imap_session_strike(s, GUARD_STRIKE_AUTH_FAILED);
}

/* Sessions of this account now (the limit imap.max_sessions_per_account). */
static int
imap_auth_account_sessions(struct imap_session *self, const char *account)
{
	int n = 0;

	for (struct imap_session *o = self->srv->sessions; o != NULL; o = o->next)
		if (o != self && !o->closing && o->store != NULL && strcasecmp(o->account, account) == 0)
			n++;
	return n;
}

/* Loop thread: answer the client (the reply before any strike can hang up). */
static void
imap_auth_done(void *arg)
{
	struct imap_auth_job *job = arg;
	struct imap_session *s = job->s;
	const char *reason = directory_auth_result_name(job->out.result);

	s->async_pending = false;
	if (s->dead) {
		if (job->out.result != DIRECTORY_AUTH_OK)
			imap_auth_fail(s, job->mech, job->user, strlen(job->user), reason, &job->out);
		imap_session_free(&s);
		free(job);
		return;
	}
	s->input = IMAP_INPUT_COMMAND;
	if (job->out.result == DIRECTORY_AUTH_OK) {
		char user[LOG_ESCAPE_MAX];
		enum imap_store_error err = IMAP_STORE_OK;

		log_escape(user, sizeof(user), job->out.account, strlen(job->out.account));
		metrics_inc("bulwark_auth_success_total", "protocol=\"imap\"");
		guard_auth_success(s->srv->deps.guard, (struct sockaddr *)&s->peer, time(NULL));
		if (imap_auth_account_sessions(s, job->out.account) >=
		    s->cfg->imap.max_sessions_per_account) {
			log_warnx("event=imap.refused session=%s client=%s account=%s reason=too_many_sessions",
			    s->id, s->ip, user);
			imap_session_tagged(s, job->tag, "NO [LIMIT] Too many sessions for this account");
		} else if ((s->store = imap_store_open(s->cfg->data_dir, job->out.account, &err)) == NULL) {
			log_warnx("event=imap.error session=%s client=%s account=%s reason=store_open error=%d",
			    s->id, s->ip, user, (int)err);
			imap_session_tagged(s, job->tag, "NO [UNAVAILABLE] Mailbox store not available");
		} else {
			snprintf(s->account, sizeof(s->account), "%s", job->out.account);
			s->suspended = job->out.suspended;
			log_info("event=auth.success session=%s client=%s protocol=imap mechanism=%s "
			    "account=%s%s", s->id, s->ip, job->mech, user,
			    s->suspended ? " suspended=yes" : "");
			imap_session_enter_state(s, IMAP_STATE_AUTHENTICATED);
			{
				struct evbuffer *out = imap_session_out(s);

				evbuffer_add_printf(out, "%s OK [", job->tag);
				imap_command_capability_list(s, out);
				evbuffer_add_printf(out, "] Logged in\r\n");
			}
		}
	} else if (job->out.result == DIRECTORY_AUTH_ERROR) {
		imap_session_tagged(s, job->tag, "NO [UNAVAILABLE] Temporary authentication failure");
		imap_auth_fail(s, job->mech, job->user, strlen(job->user), reason, &job->out);
	} else {
		imap_session_error(s, job->tag, "NO [AUTHENTICATIONFAILED] Authentication failed.");
		imap_auth_fail(s, job->mech, job->user, strlen(job->user), reason, &job->out);
	}
	free(job);
	imap_session_resume(s);
}

/*
 * The fairness key of a client: its IPv4 address, or its IPv6 /64 (what one
 * subscriber holds, as for bans and SMTP AUTH). Returns its length.
 */
static size_t
imap_auth_key(const struct imap_session *s, uint8_t key[POOL_KEY_MAX])
{
	const struct sockaddr *sa = (const struct sockaddr *)&s->peer;
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (sa->sa_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (memcmp(a, v4mapped, 12) == 0) {
			memcpy(key, a + 12, 4);
			return 4;
		}
		memcpy(key, a, 8);
		return 8;
	}
	key[0] = 0;
	return 1;
}

static void
imap_auth_submit(struct imap_session *s, const char *tag, const char *mech, const char *user,
    size_t userlen, const char *password, size_t passlen)
{
	struct pool *pool = s->srv->deps.auth_pool;
	struct imap_auth_job *job;
	uint8_t key[POOL_KEY_MAX];
	size_t keylen = imap_auth_key(s, key), queue;
	bool behind = pool_inflight_key(pool, key, keylen) > 0;

	/* As SMTP AUTH: checks of a network that has one in flight already wait
	 * behind the others' (pool_submit_fair); each of the two queues is bounded. */
	queue = behind ? pool_pending_behind(pool) : pool_pending(pool) - pool_pending_behind(pool);
	if (queue >= IMAP_AUTH_BACKLOG_MAX) {
		log_warnx("event=auth.busy session=%s client=%s protocol=imap backlog=%zu queue=%s",
		    s->id, s->ip, pool_pending(pool), behind ? "behind" : "first");
		imap_session_tagged(s, tag, "NO [UNAVAILABLE] Temporary authentication failure, try later");
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		imap_session_tagged(s, tag, "NO [UNAVAILABLE] Temporary authentication failure");
		return;
	}
	job->s = s;
	job->cfg = s->cfg;
	snprintf(job->tag, sizeof(job->tag), "%s", tag);
	snprintf(job->mech, sizeof(job->mech), "%s", mech);
	memcpy(job->user, user, userlen);
	memcpy(job->password, password, passlen);
	snprintf(job->ip, sizeof(job->ip), "%s", s->ip);
	s->input = IMAP_INPUT_WAIT;
	s->async_pending = true;
	if (pool_submit_fair(pool, key, keylen, imap_auth_work, imap_auth_done, job) == -1) {
		s->async_pending = false;
		s->input = IMAP_INPUT_COMMAND;
		sodium_memzero(job->password, sizeof(job->password));
		free(job);
		imap_session_tagged(s, tag, "NO [UNAVAILABLE] Temporary authentication failure");
	}
}

void
imap_auth_login(struct imap_session *s, const char *tag, const char *user, size_t userlen,
    const char *password, size_t passlen)
{
	if (userlen == 0 || userlen >= AUTH_FIELD_MAX || passlen == 0 || passlen >= AUTH_FIELD_MAX ||
	    memchr(user, '\0', userlen) != NULL || memchr(password, '\0', passlen) != NULL) {
		imap_session_error(s, tag, "NO [AUTHENTICATIONFAILED] Authentication failed.");
		imap_auth_fail(s, "LOGIN", user, userlen < AUTH_FIELD_MAX ? userlen : AUTH_FIELD_MAX,
		    "malformed", NULL);
		return;
	}
	imap_auth_submit(s, tag, "LOGIN", user, userlen, password, passlen);
}

/* PLAIN: [authzid] NUL authcid NUL password (RFC 4616), base64. */
static void
imap_auth_plain(struct imap_session *s, const char *tag, const char *b64, size_t len)
{
	char buf[3 * AUTH_FIELD_MAX];
	const char *authz, *user, *pass;
	size_t n, zlen, ulen, plen;

	if (len == 1 && b64[0] == '=') {
		n = 0;
	} else if (sodium_base642bin((unsigned char *)buf, sizeof(buf) - 1, b64, len, NULL, &n, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) {
		imap_session_error(s, tag, "BAD Cannot decode the SASL response");
		return;
	}
	buf[n] = '\0';
	authz = buf;
	zlen = strnlen(authz, n);
	user = authz + zlen + 1;
	if (zlen >= n || (ulen = strnlen(user, n - zlen - 1)) >= n - zlen - 1) {
		sodium_memzero(buf, sizeof(buf));
		imap_session_error(s, tag, "NO [AUTHENTICATIONFAILED] Authentication failed.");
		imap_auth_fail(s, "PLAIN", "", 0, "malformed", NULL);
		return;
	}
	pass = user + ulen + 1;
	plen = n - zlen - ulen - 2;
	if (ulen == 0 || ulen >= AUTH_FIELD_MAX || plen == 0 || plen >= AUTH_FIELD_MAX ||
	    memchr(pass, '\0', plen) != NULL || (zlen > 0 && strcasecmp(authz, user) != 0)) {
		imap_session_error(s, tag, "NO [AUTHENTICATIONFAILED] Authentication failed.");
		imap_auth_fail(s, "PLAIN", user, ulen < AUTH_FIELD_MAX ? ulen : AUTH_FIELD_MAX,
		    "malformed", NULL);
		sodium_memzero(buf, sizeof(buf));
		return;
	}
	imap_auth_submit(s, tag, "PLAIN", user, ulen, pass, plen);
	sodium_memzero(buf, sizeof(buf));
}

void
imap_auth_authenticate(struct imap_session *s, const char *tag, const char *mech,
    const char *initial)
{
	if (strcasecmp(mech, "PLAIN") != 0) {
		imap_session_error(s, tag, "NO Unsupported authentication mechanism");
		return;
	}
	if (initial != NULL) {   /* SASL-IR (RFC 4959) */
		imap_auth_plain(s, tag, initial, strlen(initial));
		return;
	}
	snprintf(s->tag, sizeof(s->tag), "%s", tag);
	s->input = IMAP_INPUT_SASL;
	imap_session_printf(s, "+ \r\n");
}

void
imap_auth_sasl_line(struct imap_session *s, const char *line, size_t len)
{
	char tag[IMAP_TAG_MAX + 1];

	snprintf(tag, sizeof(tag), "%s", s->tag);
	s->input = IMAP_INPUT_COMMAND;
	if (len == 1 && line[0] == '*') {
		imap_session_error(s, tag, "BAD Authentication aborted");
		return;
	}
	imap_auth_plain(s, tag, line, len);
}
