/*
 * directory_login.c: the login service SMTP AUTH and IMAP share. A check
 * (directory_auth: argon2id, lockout, known IPs) runs on the password pool,
 * fair per client network and bounded, with one directory handle per worker
 * thread; the outcome comes back to the loop. Passwords never reach a log
 * and are wiped after use. Trusts its callers for the field lengths.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/pool.h"
#include "directory/directory.h"
#include "monitor/metrics.h"

struct directory_login_job {
	struct directory_login login;    /* first: done() gets it */
	const struct config *cfg;
	char password[DIRECTORY_LOGIN_FIELD_MAX];
	char ip[64];
	directory_login_locked_fn *locked;
	const char *via;
	directory_login_done_fn *done;
};

/* Each worker thread keeps its own directory handle (SQLite handles are per thread). */
static pthread_key_t login_dir_key;
static pthread_once_t login_dir_once = PTHREAD_ONCE_INIT;

static void
directory_login_dir_destroy(void *p)
{
	struct directory *dir = p;

	directory_free(&dir);
}

static void
directory_login_dir_key_make(void)
{
	(void)pthread_key_create(&login_dir_key, directory_login_dir_destroy);
}

static struct directory *
directory_login_thread_directory(const struct config *cfg)
{
	struct directory *dir;
	char *error = NULL;

	pthread_once(&login_dir_once, directory_login_dir_key_make);
	if ((dir = pthread_getspecific(login_dir_key)) != NULL)
		return dir;
	if (directory_open(cfg->data_dir, &dir, &error) == -1) {
		log_warnx("event=auth.error reason=\"%s\"", error != NULL ? error : "directory");
		free(error);
		return NULL;
	}
	pthread_setspecific(login_dir_key, dir);
	return dir;
}

/* Pool thread: the slow part, and the lockout notice if this attempt locked. */
static void
directory_login_work(void *arg)
{
	struct directory_login_job *job = arg;
	struct directory *dir = directory_login_thread_directory(job->cfg);

	if (dir == NULL)
		job->login.out.result = DIRECTORY_AUTH_ERROR;
	else
		(void)directory_auth(dir, job->cfg, job->login.user, job->password, job->ip,
		    (int64_t)time(NULL), &job->login.out);
	sodium_memzero(job->password, sizeof(job->password));
	if (job->login.out.locked_now && job->login.out.contact[0] != '\0' && job->locked != NULL)
		job->locked(job->cfg, &job->login.out, job->ip, job->via);
}

/* Loop thread. */
static void
directory_login_done(void *arg)
{
	struct directory_login_job *job = arg;

	job->done(&job->login);
}

size_t
directory_login_key(const struct sockaddr *sa, uint8_t key[POOL_KEY_MAX])
{
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

enum directory_login_submitted
directory_login_submit(struct pool *pool, const struct directory_login_request *req,
    directory_login_done_fn *done, void *arg, size_t *backlog_r, bool *behind_r)
{
	struct directory_login_job *job;
	uint8_t key[POOL_KEY_MAX];
	size_t keylen = directory_login_key(req->peer, key), queue;
	bool behind = pool_inflight_key(pool, key, keylen) > 0;

	/* A flood: refuse at once rather than queue without bound (memory, and
	 * every legitimate login stuck behind the guesses). */
	queue = behind ? pool_pending_behind(pool) : pool_pending(pool) - pool_pending_behind(pool);
	if (queue >= DIRECTORY_LOGIN_BACKLOG_MAX) {
		*backlog_r = pool_pending(pool);
		*behind_r = behind;
		return DIRECTORY_LOGIN_BUSY;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return DIRECTORY_LOGIN_NOMEM;
	job->login.arg = arg;
	snprintf(job->login.mech, sizeof(job->login.mech), "%s", req->mech);
	memcpy(job->login.user, req->user, req->userlen);
	job->cfg = req->cfg;
	memcpy(job->password, req->password, req->passlen);
	snprintf(job->ip, sizeof(job->ip), "%s", req->ip);
	job->locked = req->locked;
	job->via = req->via;
	job->done = done;
	if (pool_submit_fair(pool, key, keylen, directory_login_work, directory_login_done,
	    job) == -1) {
		sodium_memzero(job->password, sizeof(job->password));
		free(job);
		return DIRECTORY_LOGIN_NOMEM;
	}
	return DIRECTORY_LOGIN_QUEUED;
}

void
directory_login_free(struct directory_login **loginp)
{
	struct directory_login_job *job = (struct directory_login_job *)*loginp;

	if (job == NULL)
		return;
	*loginp = NULL;
	sodium_memzero(job->password, sizeof(job->password));
	free(job);
}

bool
directory_login_log_failure(const char *protocol, const char *session, const char *ip,
    const char *mech, const char *user, size_t userlen, const char *reason,
    const struct directory_auth_outcome *out, char user_r[LOG_ESCAPE_MAX])
{
	char labels[96];

	log_escape(user_r, LOG_ESCAPE_MAX, user, userlen);
	if (out != NULL)
		log_warnx("event=auth.failure session=%s client=%s protocol=%s mechanism=%s account=%s "
		    "reason=%s counted=%s failed_logins=%d locked=%s known_ip=%s",
		    session, ip, protocol, mech, user_r, reason, out->counted ? "yes" : "no",
		    out->failed_logins, out->locked_until > time(NULL) ? "yes" : "no",
		    out->known_ip ? "yes" : "no");
	else
		log_warnx("event=auth.failure session=%s client=%s protocol=%s mechanism=%s account=%s "
		    "reason=%s", session, ip, protocol, mech, user_r, reason);
	snprintf(labels, sizeof(labels), "protocol=\"%s\",reason=\"%s\"", protocol, reason);
	metrics_inc("bulwark_auth_failures_total", labels);
	return out == NULL || out->result != DIRECTORY_AUTH_ERROR;
}

void
directory_login_log_lockout(const char *session, const char *ip, const char *user,
    const struct directory_auth_outcome *out)
{
	if (out == NULL || !out->locked_now)
		return;
	log_warnx("event=auth.lockout session=%s client=%s account=%s failed_logins=%d until=%lld",
	    session, ip, user, out->failed_logins, (long long)out->locked_until);
	metrics_inc("bulwark_lockouts_total", NULL);
}
