/*
 * smtp_auth.c: SMTP AUTH (RFC 4954) with SASL PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login), on the submission listeners after TLS only.
 * The password check (argon2id, lockout, known IPs) runs on the worker pool
 * through directory_auth(), never on the event loop. Every failure gets the
 * same 535 5.7.8; the log says exactly why. Passwords never reach a log and
 * are wiped after use.
 */
#include <event2/bufferevent.h>
#include <event2/event.h>
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
#include "smtp/smtp_session_private.h"

enum {
	AUTH_MECH_PLAIN = 1,
	AUTH_MECH_LOGIN_USER,      /* LOGIN: waiting for the username */
	AUTH_MECH_LOGIN_PASSWORD,  /* LOGIN: waiting for the password */
};

#define AUTH_FIELD_MAX 512
#define SMTP_AUTH_BACKLOG_MAX 64   /* password checks queued at most */

struct smtp_auth_job {
	struct smtp_session *s;
	const struct config *cfg;
	char mech[8];
	char user[AUTH_FIELD_MAX];
	char password[AUTH_FIELD_MAX];
	char ip[64];
	struct directory_auth_outcome out;
	int rc;
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

/* Pool thread: the slow part, and the lockout notice if this attempt locked. */
static void
smtp_auth_work(void *arg)
{
	struct smtp_auth_job *job = arg;
	struct directory *dir = auth_thread_directory(job->cfg);

	if (dir == NULL) {
		job->out.result = DIRECTORY_AUTH_ERROR;
		job->rc = -1;
	} else {
		job->rc = directory_auth(dir, job->cfg, job->user, job->password, job->ip,
		    (int64_t)time(NULL), &job->out);
	}
	sodium_memzero(job->password, sizeof(job->password));
	if (job->out.locked_now && job->out.contact[0] != '\0') {
		char body[2048], until[64], qid[QUEUE_ID_LEN + 1];
		time_t t = (time_t)job->out.locked_until;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S UTC", &tm);
		snprintf(body, sizeof(body),
		    "Your mail account %s was locked after %d failed logins; the last\n"
		    "came from %s.\n\n"
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
 * Log a failed login: bulwark's own line, and (for the client's failures,
 * not our store's) the line fail2ban's stock postfix filter matches, a
 * strike and the metric. out is NULL for a malformed SASL exchange.
 */
static void
smtp_auth_fail(struct smtp_session *s, const char *mech, const char *user, size_t userlen,
    const char *reason, const struct directory_auth_outcome *out)
{
	char u[LOG_ESCAPE_MAX], labels[96];

	log_escape(u, sizeof(u), user, userlen);
	if (out != NULL)
		log_warnx("event=auth.failure session=%s client=%s protocol=smtp mechanism=%s account=%s "
		    "reason=%s counted=%s failed_logins=%d locked=%s known_ip=%s",
		    s->id, s->ip, mech, u, reason, out->counted ? "yes" : "no",
		    out->failed_logins, out->locked_until > time(NULL) ? "yes" : "no",
		    out->known_ip ? "yes" : "no");
	else
		log_warnx("event=auth.failure session=%s client=%s protocol=smtp mechanism=%s account=%s "
		    "reason=%s", s->id, s->ip, mech, u, reason);
	snprintf(labels, sizeof(labels), "protocol=\"smtp\",reason=\"%s\"", reason);
	metrics_inc("bulwark_auth_failures_total", labels);
	if (out != NULL && out->result == DIRECTORY_AUTH_ERROR)
		return;   /* our failure, not the client's: no ban, no fail2ban line */
	/* fail2ban's stock postfix filter (mode=auth) matches this line. */
	log_warnx("unknown[%s]: SASL %s authentication failed: session=%s", s->ip, mech, s->id);
	if (out != NULL && out->locked_now) {
		log_warnx("event=auth.lockout session=%s client=%s account=%s failed_logins=%d until=%lld",
		    s->id, s->ip, u, out->failed_logins, (long long)out->locked_until);
		metrics_inc("bulwark_lockouts_total", NULL);
	}
	smtp_session_strike(s, GUARD_STRIKE_AUTH_FAILED);
}

/* Loop thread: answer the client (the reply before any strike can hang up). */
static void
smtp_auth_done(void *arg)
{
	struct smtp_auth_job *job = arg;
	struct smtp_session *s = job->s;
	const char *reason = directory_auth_result_name(job->out.result);

	s->async_pending = false;
	if (s->dead) {
		/* Logged and struck even if the client already hung up. */
		if (job->out.result != DIRECTORY_AUTH_OK)
			smtp_auth_fail(s, job->mech, job->user, strlen(job->user), reason, &job->out);
		smtp_session_free(&s);
		free(job);
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	if (job->out.result == DIRECTORY_AUTH_OK) {
		char user[LOG_ESCAPE_MAX];

		s->authenticated = true;
		s->suspended = job->out.suspended;
		snprintf(s->account, sizeof(s->account), "%s", job->out.account);
		log_escape(user, sizeof(user), s->account, strlen(s->account));
		log_info("event=auth.success session=%s client=%s protocol=smtp mechanism=%s account=%s%s",
		    s->id, s->ip, job->mech, user, s->suspended ? " suspended=yes" : "");
		metrics_inc("bulwark_auth_success_total", "protocol=\"smtp\"");
		guard_auth_success(s->srv->deps.guard, (struct sockaddr *)&s->peer, time(NULL));
		smtp_session_reply(s, "235 2.7.0 Authentication successful");
	} else if (job->out.result == DIRECTORY_AUTH_ERROR) {
		smtp_session_reply(s, "454 4.7.0 Temporary authentication failure");
		smtp_auth_fail(s, job->mech, job->user, strlen(job->user), reason, &job->out);
	} else {
		smtp_session_reply_error(s, "535 5.7.8 Authentication credentials invalid");
		smtp_auth_fail(s, job->mech, job->user, strlen(job->user), reason, &job->out);
	}
	free(job);
	if (s->state == SMTP_STATE_CLOSING)
		return;
	if (s->quit_after_reply) {
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down", s->cfg->hostname);
		smtp_session_close(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	smtp_session_process(s);
}

/*
 * The fairness key of a client: its IPv4 address, or its IPv6 /64 (what one
 * subscriber holds, as for bans). Returns its length.
 */
static size_t
smtp_auth_key(const struct smtp_session *s, uint8_t key[POOL_KEY_MAX])
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
smtp_auth_submit(struct smtp_session *s, const char *mech, const char *user, size_t userlen,
    const char *password, size_t passlen)
{
	struct pool *pool = s->srv->deps.auth_pool;
	struct smtp_auth_job *job;
	uint8_t key[POOL_KEY_MAX];
	size_t keylen = smtp_auth_key(s, key), queue;
	bool behind = pool_inflight_key(pool, key, keylen) > 0;

	/* Checks of a network that has one in flight already wait behind the
	 * others' (pool_submit_fair); each of the two queues is bounded. */
	queue = behind ? pool_pending_behind(pool) : pool_pending(pool) - pool_pending_behind(pool);
	if (queue >= SMTP_AUTH_BACKLOG_MAX) {
		/* A flood: refuse at once rather than queue without bound (memory,
		 * and every legitimate login stuck behind the guesses). */
		log_warnx("event=auth.busy session=%s client=%s backlog=%zu queue=%s", s->id, s->ip,
		    pool_pending(pool), behind ? "behind" : "first");
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_session_reply(s, "454 4.7.0 Temporary authentication failure, try again later");
		return;
	}
	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		smtp_session_reply(s, "454 4.7.0 Temporary authentication failure");
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		return;
	}
	job->s = s;
	job->cfg = s->cfg;
	snprintf(job->mech, sizeof(job->mech), "%s", mech);
	memcpy(job->user, user, userlen);
	memcpy(job->password, password, passlen);
	snprintf(job->ip, sizeof(job->ip), "%s", s->ip);
	smtp_session_enter_state(s, SMTP_STATE_AUTH_WAIT);
	s->async_pending = true;
	if (pool_submit_fair(pool, key, keylen, smtp_auth_work, smtp_auth_done, job) == -1) {
		s->async_pending = false;
		sodium_memzero(job->password, sizeof(job->password));
		free(job);
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_session_reply(s, "454 4.7.0 Temporary authentication failure");
	}
}

/* Decode one base64 SASL line into buf (NUL-terminated). -1 if malformed. */
static int
sasl_decode(const char *b64, size_t len, char *buf, size_t buflen, size_t *outlen_r)
{
	if (len == 1 && b64[0] == '=') {   /* RFC 4954: an empty initial response */
		*outlen_r = 0;
		buf[0] = '\0';
		return 0;
	}
	if (sodium_base642bin((unsigned char *)buf, buflen - 1, b64, len, NULL, outlen_r, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0)
		return -1;
	buf[*outlen_r] = '\0';
	return 0;
}

/* PLAIN: [authzid] NUL authcid NUL password (RFC 4616). */
static void
smtp_auth_plain(struct smtp_session *s, const char *b64, size_t len)
{
	char buf[3 * AUTH_FIELD_MAX];
	const char *authz, *user, *pass;
	size_t n, zlen, ulen, plen;

	if (sasl_decode(b64, len, buf, sizeof(buf), &n) == -1) {
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_session_reply_error(s, "501 5.5.2 Cannot decode AUTH parameter");
		return;
	}
	authz = buf;
	zlen = strnlen(authz, n);
	user = authz + zlen + 1;
	if (zlen >= n || (ulen = strnlen(user, n - zlen - 1)) >= n - zlen - 1) {
		sodium_memzero(buf, sizeof(buf));
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_session_reply_error(s, "501 5.5.2 Malformed PLAIN response");
		return;
	}
	pass = user + ulen + 1;
	plen = n - zlen - ulen - 2;
	if (ulen == 0 || ulen >= AUTH_FIELD_MAX || plen == 0 || plen >= AUTH_FIELD_MAX ||
	    memchr(pass, '\0', plen) != NULL || (zlen > 0 && strcasecmp(authz, user) != 0)) {
		/* Proxy authorisation (authzid != authcid) is not offered. */
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_session_reply_error(s, "535 5.7.8 Authentication credentials invalid");
		smtp_auth_fail(s, "PLAIN", user, ulen < AUTH_FIELD_MAX ? ulen : AUTH_FIELD_MAX, "malformed",
		    NULL);
		sodium_memzero(buf, sizeof(buf));
		return;
	}
	smtp_auth_submit(s, "PLAIN", user, ulen, pass, plen);
	sodium_memzero(buf, sizeof(buf));
}

void
smtp_auth_start(struct smtp_session *s, const char *args)
{
	const char *sp = args != NULL ? strchr(args, ' ') : NULL;
	size_t mechlen = sp != NULL ? (size_t)(sp - args) : (args != NULL ? strlen(args) : 0);
	const char *initial = sp != NULL ? sp + 1 : NULL;

	if (args == NULL || mechlen == 0) {
		smtp_session_reply_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if (mechlen == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
		if (initial != NULL) {
			smtp_auth_plain(s, initial, strlen(initial));
			return;
		}
		s->auth_mech = AUTH_MECH_PLAIN;
		smtp_session_enter_state(s, SMTP_STATE_AUTH_INPUT);
		smtp_session_reply(s, "334 ");
		return;
	}
	if (mechlen == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
		if (initial != NULL) {
			s->auth_mech = AUTH_MECH_LOGIN_USER;
			smtp_session_enter_state(s, SMTP_STATE_AUTH_INPUT);
			smtp_auth_continue(s, initial, strlen(initial));
			return;
		}
		s->auth_mech = AUTH_MECH_LOGIN_USER;
		smtp_session_enter_state(s, SMTP_STATE_AUTH_INPUT);
		smtp_session_reply(s, "334 VXNlcm5hbWU6");   /* "Username:" */
		return;
	}
	smtp_session_reply_error(s, "504 5.5.4 Unrecognized authentication type");
}

void
smtp_auth_continue(struct smtp_session *s, const char *line, size_t len)
{
	char buf[AUTH_FIELD_MAX + 4];
	size_t n;

	if (len == 1 && line[0] == '*') {
		s->auth_user[0] = '\0';
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_session_reply_error(s, "501 5.7.0 Authentication aborted");
		return;
	}
	switch (s->auth_mech) {
	case AUTH_MECH_PLAIN:
		smtp_auth_plain(s, line, len);
		return;
	case AUTH_MECH_LOGIN_USER:
		if (sasl_decode(line, len, buf, sizeof(buf), &n) == -1 || n == 0 ||
		    n >= sizeof(s->auth_user) || memchr(buf, '\0', n) != NULL) {
			smtp_session_enter_state(s, SMTP_STATE_HELO);
			smtp_session_reply_error(s, "501 5.5.2 Cannot decode AUTH response");
			return;
		}
		memcpy(s->auth_user, buf, n + 1);
		s->auth_mech = AUTH_MECH_LOGIN_PASSWORD;
		smtp_session_reply(s, "334 UGFzc3dvcmQ6");   /* "Password:" */
		return;
	case AUTH_MECH_LOGIN_PASSWORD:
		if (sasl_decode(line, len, buf, sizeof(buf), &n) == -1 || n == 0 ||
		    n >= AUTH_FIELD_MAX || memchr(buf, '\0', n) != NULL) {
			sodium_memzero(buf, sizeof(buf));
			s->auth_user[0] = '\0';
			smtp_session_enter_state(s, SMTP_STATE_HELO);
			smtp_session_reply_error(s, "501 5.5.2 Cannot decode AUTH response");
			return;
		}
		smtp_auth_submit(s, "LOGIN", s->auth_user, strlen(s->auth_user), buf, n);
		sodium_memzero(buf, sizeof(buf));
		s->auth_user[0] = '\0';
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	smtp_session_reply_error(s, "503 5.5.1 Error: no AUTH in progress");
}
