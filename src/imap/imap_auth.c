/*
 * imap_auth.c: IMAP LOGIN (RFC 3501 6.2.3) and AUTHENTICATE PLAIN (RFC 3501
 * 6.2.2, RFC 4616, SASL-IR RFC 4959), through the same machinery as SMTP
 * AUTH: the directory's login service (directory_login_submit) on the
 * password pool (argon2id, lockout, known IPs),
 * a guard strike per failure, the auth metrics with protocol="imap". Only
 * after TLS, or from mynetworks. Every failure gets the same
 * "NO [AUTHENTICATIONFAILED]"; the log says exactly why, and a second line in
 * Dovecot's words feeds fail2ban's stock dovecot filter. Passwords never
 * reach a log and are wiped after use.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "directory/directory.h"
#include "guard/guard.h"
#include "monitor/metrics.h"
#include "queue/queue.h"
#include "imap/imap_session_private.h"

#define AUTH_FIELD_MAX DIRECTORY_LOGIN_FIELD_MAX

/* What the loop needs back when the check answers, besides the login. */
struct imap_auth_wait {
	struct imap_session *s;
	char tag[IMAP_TAG_MAX + 1];
};

bool
imap_auth_allowed(const struct imap_session *s)
{
	return s->tls || s->trusted;
}

/*
 * A failed login: bulwark's own line; for the client's failures (not our
 * store's) Dovecot's line for fail2ban, a strike and the metric.
 */
static void
imap_auth_fail(struct imap_session *s, const char *mech, const char *user, size_t userlen,
    const char *reason, const struct directory_auth_outcome *out)
{
	char u[LOG_ESCAPE_MAX];

	if (!directory_login_log_failure("imap", s->id, s->ip, mech, user, userlen, reason, out, u))
		return;   /* our failure, not the client's */
	/* fail2ban's stock dovecot filter matches this line (no level word). */
	for (char *p = u; *p != '\0'; p++)
		if (*p == '>' || *p == '<' || *p == ',')
			*p = '?';
	log_compat("imap-login: Aborted login (auth failed, 1 attempts in 0 secs): user=<%s>, "
	    "method=%s, rip=%s, lip=%s, session=<%s>", u, mech, s->ip,
	    s->local_ip[0] != '\0' ? s->local_ip : "-", s->id);
	directory_login_log_lockout(s->id, s->ip, u, out);
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
imap_auth_done(struct directory_login *login)
{
	struct imap_auth_wait *wait = login->arg;
	struct imap_session *s = wait->s;
	const char *reason = directory_auth_result_name(login->out.result);

	s->async_pending = false;
	if (s->dead) {
		if (login->out.result != DIRECTORY_AUTH_OK)
			imap_auth_fail(s, login->mech, login->user, strlen(login->user), reason, &login->out);
		imap_session_free(&s);
		directory_login_free(&login);
		free(wait);
		return;
	}
	s->input = IMAP_INPUT_COMMAND;
	if (login->out.result == DIRECTORY_AUTH_OK) {
		char user[LOG_ESCAPE_MAX];
		enum imap_store_error err = IMAP_STORE_OK;

		log_escape(user, sizeof(user), login->out.account, strlen(login->out.account));
		metrics_inc("bulwark_auth_success_total", "protocol=\"imap\"");
		guard_auth_success(s->srv->deps.guard, (struct sockaddr *)&s->peer, time(NULL));
		if (imap_auth_account_sessions(s, login->out.account) >=
		    s->cfg->imap.max_sessions_per_account) {
			log_warnx("event=imap.refused session=%s client=%s account=%s reason=too_many_sessions",
			    s->id, s->ip, user);
			imap_session_tagged(s, wait->tag, "NO [LIMIT] Too many sessions for this account");
		} else if ((s->store = imap_store_open(s->cfg->data_dir, login->out.account, &err)) == NULL) {
			log_warnx("event=imap.error session=%s client=%s account=%s reason=store_open error=%d",
			    s->id, s->ip, user, (int)err);
			imap_session_tagged(s, wait->tag, "NO [UNAVAILABLE] Mailbox store not available");
		} else {
			snprintf(s->account, sizeof(s->account), "%s", login->out.account);
			s->suspended = login->out.suspended;
			log_info("event=auth.success session=%s client=%s protocol=imap mechanism=%s "
			    "account=%s%s", s->id, s->ip, login->mech, user,
			    s->suspended ? " suspended=yes" : "");
			imap_session_enter_state(s, IMAP_STATE_AUTHENTICATED);
			{
				struct evbuffer *out = imap_session_out(s);

				evbuffer_add_printf(out, "%s OK [", wait->tag);
				imap_command_capability_list(s, out);
				evbuffer_add_printf(out, "] Logged in\r\n");
			}
		}
	} else if (login->out.result == DIRECTORY_AUTH_ERROR) {
		imap_session_tagged(s, wait->tag, "NO [UNAVAILABLE] Temporary authentication failure");
		imap_auth_fail(s, login->mech, login->user, strlen(login->user), reason, &login->out);
	} else {
		imap_session_error(s, wait->tag, "NO [AUTHENTICATIONFAILED] Authentication failed.");
		imap_auth_fail(s, login->mech, login->user, strlen(login->user), reason, &login->out);
	}
	directory_login_free(&login);
	free(wait);
	imap_session_resume(s);
}

static void
imap_auth_submit(struct imap_session *s, const char *tag, const char *mech, const char *user,
    size_t userlen, const char *password, size_t passlen)
{
	const struct directory_login_request req = {
		.cfg = s->cfg, .peer = (const struct sockaddr *)&s->peer, .ip = s->ip, .mech = mech,
		.user = user, .userlen = userlen, .password = password, .passlen = passlen,
		.locked = queue_notice_lockout, .via = " (IMAP)",
	};
	struct imap_auth_wait *wait;
	size_t backlog = 0;
	bool behind = false;

	if ((wait = calloc(1, sizeof(*wait))) == NULL) {
		imap_session_tagged(s, tag, "NO [UNAVAILABLE] Temporary authentication failure");
		return;
	}
	wait->s = s;
	snprintf(wait->tag, sizeof(wait->tag), "%s", tag);
	switch (directory_login_submit(s->srv->deps.auth_pool, &req, imap_auth_done, wait, &backlog,
	    &behind)) {
	case DIRECTORY_LOGIN_QUEUED:
		s->input = IMAP_INPUT_WAIT;
		s->async_pending = true;
		return;
	case DIRECTORY_LOGIN_BUSY:
		log_warnx("event=auth.busy session=%s client=%s protocol=imap backlog=%zu queue=%s",
		    s->id, s->ip, backlog, behind ? "behind" : "first");
		imap_session_tagged(s, tag, "NO [UNAVAILABLE] Temporary authentication failure, try later");
		break;
	case DIRECTORY_LOGIN_NOMEM:
		imap_session_tagged(s, tag, "NO [UNAVAILABLE] Temporary authentication failure");
		break;
	}
	free(wait);
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
