/*
 * smtp_auth.c: SMTP AUTH (RFC 4954) with SASL PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login), on the submission listeners after TLS only.
 * The password check (argon2id, lockout, known IPs) runs on the worker pool
 * through the directory's login service (directory_login_submit), never on
 * the event loop. Every failure gets the
 * same 535 5.7.8; the log says exactly why. Passwords never reach a log and
 * are wiped after use.
 */
#include <event2/bufferevent.h>
#include <event2/event.h>
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
#include "smtp/smtp_session_private.h"

enum {
	AUTH_MECH_PLAIN = 1,
	AUTH_MECH_LOGIN_USER,      /* LOGIN: waiting for the username */
	AUTH_MECH_LOGIN_PASSWORD,  /* LOGIN: waiting for the password */
};

#define AUTH_FIELD_MAX DIRECTORY_LOGIN_FIELD_MAX

/*
 * Log a failed login: bulwark's own line, and (for the client's failures,
 * not our store's) the line fail2ban's stock postfix filter matches, a
 * strike and the metric. out is NULL for a malformed SASL exchange.
 */
static void
smtp_auth_fail(struct smtp_session *s, const char *mech, const char *user, size_t userlen,
    const char *reason, const struct directory_auth_outcome *out)
{
	char u[LOG_ESCAPE_MAX];

	if (!directory_login_log_failure("smtp", s->id, s->ip, mech, user, userlen, reason, out, u))
		return;   /* our failure, not the client's: no ban, no fail2ban line */
	/* fail2ban's stock postfix filter (mode=auth) matches this line. */
	log_warnx("unknown[%s]: SASL %s authentication failed: session=%s", s->ip, mech, s->id);
	directory_login_log_lockout(s->id, s->ip, u, out);
	smtp_session_strike(s, GUARD_STRIKE_AUTH_FAILED);
}

/* Loop thread: answer the client (the reply before any strike can hang up). */
static void
smtp_auth_done(struct directory_login *login)
{
	struct smtp_session *s = login->arg;
	const char *reason = directory_auth_result_name(login->out.result);

	s->async_pending = false;
	if (s->dead) {
		/* Logged and struck even if the client already hung up. */
		if (login->out.result != DIRECTORY_AUTH_OK)
			smtp_auth_fail(s, login->mech, login->user, strlen(login->user), reason,
			    &login->out);
		smtp_session_free(&s);
		directory_login_free(&login);
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	if (login->out.result == DIRECTORY_AUTH_OK) {
		char user[LOG_ESCAPE_MAX];

		s->authenticated = true;
		s->suspended = login->out.suspended;
		snprintf(s->account, sizeof(s->account), "%s", login->out.account);
		log_escape(user, sizeof(user), s->account, strlen(s->account));
		log_info("event=auth.success session=%s client=%s protocol=smtp mechanism=%s account=%s%s",
		    s->id, s->ip, login->mech, user, s->suspended ? " suspended=yes" : "");
		metrics_inc("bulwark_auth_success_total", "protocol=\"smtp\"");
		guard_auth_success(s->srv->deps.guard, (struct sockaddr *)&s->peer, time(NULL));
		smtp_session_reply(s, "235 2.7.0 Authentication successful");
	} else if (login->out.result == DIRECTORY_AUTH_ERROR) {
		smtp_session_reply(s, "454 4.7.0 Temporary authentication failure");
		smtp_auth_fail(s, login->mech, login->user, strlen(login->user), reason, &login->out);
	} else {
		smtp_session_reply_error(s, "535 5.7.8 Authentication credentials invalid");
		smtp_auth_fail(s, login->mech, login->user, strlen(login->user), reason, &login->out);
	}
	directory_login_free(&login);
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

static void
smtp_auth_submit(struct smtp_session *s, const char *mech, const char *user, size_t userlen,
    const char *password, size_t passlen)
{
	const struct directory_login_request req = {
		.cfg = s->cfg, .peer = (const struct sockaddr *)&s->peer, .ip = s->ip, .mech = mech,
		.user = user, .userlen = userlen, .password = password, .passlen = passlen,
		.locked = queue_notice_lockout, .via = "",
	};
	size_t backlog = 0;
	bool behind = false;

	switch (directory_login_submit(s->srv->deps.auth_pool, &req, smtp_auth_done, s, &backlog,
	    &behind)) {
	case DIRECTORY_LOGIN_QUEUED:
		smtp_session_enter_state(s, SMTP_STATE_AUTH_WAIT);
		s->async_pending = true;
		return;
	case DIRECTORY_LOGIN_BUSY:
		log_warnx("event=auth.busy session=%s client=%s backlog=%zu queue=%s", s->id, s->ip,
		    backlog, behind ? "behind" : "first");
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_session_reply(s, "454 4.7.0 Temporary authentication failure, try again later");
		return;
	case DIRECTORY_LOGIN_NOMEM:
		break;
	}
	smtp_session_reply(s, "454 4.7.0 Temporary authentication failure");
	smtp_session_enter_state(s, SMTP_STATE_HELO);
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
