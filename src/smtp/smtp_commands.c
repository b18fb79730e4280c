/*
 * smtp_commands.c: the SMTP command table (OpenSMTPD's commands[] idea):
 * for each verb, when it is allowed (check) and what it does (proceed).
 * Trusts the parsers in smtp_parse.c for syntax and smtp_policy.c for who
 * may send where; decides the replies of docs/smtp.md. RFC 5321, 2920
 * (pipelining), 3030 (CHUNKING), 3207 (STARTTLS), 6531 (SMTPUTF8).
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/log.h"
#include "directory/directory.h"
#include "guard/guard.h"
#include "monitor/metrics.h"
#include "smtp/smtp_policy.h"
#include "smtp/smtp_session_private.h"

enum {
	CMD_F_NEEDS_HELO = 1 << 0,   /* 503 5.5.1 before HELO/EHLO */
};

struct smtp_command_def {
	enum smtp_cmd cmd;
	unsigned flags;
	/* NULL when allowed, else the reply (a client error). */
	const char *(*check)(struct smtp_session *s, const char *args);
	void (*proceed)(struct smtp_session *s, const char *args);
};

static bool
in_transaction(const struct smtp_session *s)
{
	return s->state == SMTP_STATE_MAIL || s->state == SMTP_STATE_RCPT ||
	    s->state == SMTP_STATE_BDAT_WAIT;
}

/* Write local@domain as an RFC 5321 mailbox, quoting the local part if it is not a dot-atom. */
static void
address_format(const struct smtp_address *a, char *buf, size_t buflen)
{
	bool atom = a->local[0] != '\0' && a->local[0] != '.';
	size_t o = 0;

	for (const char *p = a->local; *p != '\0' && atom; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x80)
			continue;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL) || (c == '.' && (p[1] == '.' || p[1] == '\0')))
			atom = false;
	}
	if (atom) {
		snprintf(buf, buflen, "%s@%s", a->local, a->domain);
		return;
	}
	if (buflen < 4)
		return;
	buf[o++] = '"';
	for (const char *p = a->local; *p != '\0' && o + 4 < buflen; p++) {
		if (*p == '"' || *p == '\\')
			buf[o++] = '\\';
		buf[o++] = *p;
	}
	buf[o++] = '"';
	snprintf(buf + o, buflen - o, "@%s", a->domain);
}

/* ---- HELO / EHLO ---- */

static const char *
check_helo(struct smtp_session *s, const char *args)
{
	const char *err;

	if (args == NULL || smtp_parse_helo(args, true, &err) != 1)
		return "501 5.5.4 Invalid HELO/EHLO hostname";
	if (s->kind == SMTP_LISTENER_MX && !s->trusted &&
	    !smtp_policy_helo(s->cfg, args, s->local_ip)) {
		log_info("event=smtp.reject session=%s client=%s stage=helo reason=helo_is_us",
		    s->id, s->ip);
		return "550 5.7.1 You are not me";
	}
	return NULL;
}

static void
greet_common(struct smtp_session *s, const char *args, bool esmtp)
{
	size_t len;

	smtp_session_reset_transaction(s);   /* RFC 5321 4.1.4: like RSET */
	snprintf(s->helo, sizeof(s->helo), "%s", args);
	len = strlen(s->helo);
	while (len > 0 && s->helo[len - 1] == ' ')
		s->helo[--len] = '\0';   /* tolerated by the parser, not worth keeping */
	s->helo_seen = true;
	s->esmtp = esmtp;
	smtp_session_enter_state(s, SMTP_STATE_HELO);
}

static void
proceed_helo(struct smtp_session *s, const char *args)
{
	greet_common(s, args, false);
	smtp_session_reply(s, "250 %s", s->cfg->hostname);
}

static void
proceed_ehlo(struct smtp_session *s, const char *args)
{
	greet_common(s, args, true);
	smtp_session_reply(s, "250-%s Hello %s [%s]", s->cfg->hostname, s->helo, s->ip);
	smtp_session_reply(s, "250-PIPELINING");
	smtp_session_reply(s, "250-SIZE %zu", s->cfg->smtp.max_message_size);
	smtp_session_reply(s, "250-8BITMIME");
	smtp_session_reply(s, "250-ENHANCEDSTATUSCODES");
	if (!s->tls)
		smtp_session_reply(s, "250-STARTTLS");
	/* RFC 4954: only on submission, and only once the channel is private. */
	if (s->kind != SMTP_LISTENER_MX && s->tls && !s->authenticated)
		smtp_session_reply(s, "250-AUTH PLAIN LOGIN");
	smtp_session_reply(s, "250-SMTPUTF8");
	smtp_session_reply(s, "250 CHUNKING");
}

/* ---- MAIL ---- */

static const char *
check_mail(struct smtp_session *s, const char *args)
{
	if (in_transaction(s))
		return "503 5.5.1 Error: nested MAIL command";
	if (s->kind != SMTP_LISTENER_MX && !s->trusted && !s->authenticated)
		return s->tls ? "530 5.7.0 Authentication required" :
		    "530 5.7.0 Must issue a STARTTLS command first";
	if (s->authenticated && s->suspended)
		return "550 5.7.1 Sending is suspended for this account; contact your administrator";
	return NULL;
}

/* An authenticated user sends only as themselves or their aliases. -1 replied. */
static int
mail_sender_check(struct smtp_session *s)
{
	int r = s->sender_text[0] == '\0' ? 0 :
	    directory_sender_allowed(s->srv->deps.dir, s->cfg, s->account, s->sender_text);
	char from[LOG_ESCAPE_MAX], acct[LOG_ESCAPE_MAX];

	if (r == 1)
		return 0;
	if (r == -1) {
		smtp_session_reply(s, "451 4.3.0 Temporary lookup failure");
		return -1;
	}
	log_info("event=smtp.reject session=%s client=%s stage=mail account=%s from=<%s> reason=sender_not_owned",
	    s->id, s->ip, log_escape(acct, sizeof(acct), s->account, strlen(s->account)),
	    log_escape(from, sizeof(from), s->sender_text, strlen(s->sender_text)));
	smtp_session_reply_error(s, "553 5.7.1 Sender address rejected: not owned by user %s", s->account);
	return -1;
}

static void
proceed_mail(struct smtp_session *s, const char *args)
{
	struct smtp_address a;
	struct smtp_mail_params p;
	const char *params, *err;

	if (args == NULL || smtp_parse_mail(args, &a, &params, &err) != 1) {
		smtp_session_reply_error(s, "%s", args == NULL ? "501 5.5.4 Syntax: MAIL FROM:<address>" : err);
		return;
	}
	if (smtp_parse_mail_params(params, &p, &err) != 1) {
		smtp_session_reply_error(s, "%s", err);
		return;
	}
	if (p.body == SMTP_BODY_BINARYMIME) {
		smtp_session_reply_error(s, "555 5.5.4 BODY=BINARYMIME is not supported");
		return;
	}
	if (a.utf8 && !p.smtputf8) {
		smtp_session_reply_error(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		return;
	}
	if (!a.null_path && !a.domain_literal && strchr(a.domain, '.') == NULL) {
		log_info("event=smtp.reject session=%s client=%s stage=mail reason=non_fqdn_sender",
		    s->id, s->ip);
		smtp_session_reply_error(s, "553 5.1.8 Sender address rejected: need fully-qualified address");
		return;
	}
	if (s->cfg->smtp.max_message_size > 0 && p.size > s->cfg->smtp.max_message_size) {
		smtp_session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (s->authenticated && s->srv->deps.monitor != NULL) {
		/* Live: a containment or an admin's suspend/resume applies to open sessions. */
		int r = queue_monitor_mail(s->srv->deps.monitor, s->account, &s->limits);

		if (r == -1) {
			smtp_session_reply(s, "451 4.3.0 Temporary lookup failure");
			return;
		}
		s->suspended = r == 1;
		if (s->suspended) {
			log_info("event=smtp.reject session=%s client=%s stage=mail reason=suspended",
			    s->id, s->ip);
			smtp_session_reply_error(s, "550 5.7.1 Sending is suspended for this account; contact your administrator");
			return;
		}
	}
	s->sender = a;
	s->params = p;
	if (a.null_path)
		s->sender_text[0] = '\0';
	else
		address_format(&a, s->sender_text, sizeof(s->sender_text));
	if (s->authenticated && mail_sender_check(s) == -1)
		return;
	log_escape(s->sender_log, sizeof(s->sender_log), s->sender_text, strlen(s->sender_text));
	/* The queue id exists from MAIL on, so every line of the transaction carries it. */
	queue_new_id(s->qid);
	log_info("event=smtp.mail session=%s client=%s queue_id=%s from=<%s> size=%" PRIu64 " body=%s%s",
	    s->id, s->ip, s->qid, s->sender_log, p.size,
	    p.body == SMTP_BODY_8BITMIME ? "8bitmime" : "7bit", p.smtputf8 ? " smtputf8=yes" : "");
	smtp_session_enter_state(s, SMTP_STATE_MAIL);
	smtp_session_reply(s, "250 2.1.0 Ok");
}

/* ---- RCPT ---- */

static const char *
check_rcpt(struct smtp_session *s, const char *args)
{
	if (s->state == SMTP_STATE_BDAT_WAIT)
		return "503 5.5.1 Error: RCPT during BDAT";
	if (s->state != SMTP_STATE_MAIL && s->state != SMTP_STATE_RCPT)
		return "503 5.5.1 Error: need MAIL command";
	return NULL;
}

static int
add_target(struct smtp_session *s, const char *address, bool local)
{
	struct queue_rcpt *r;

	for (size_t i = 0; i < s->nrcpts; i++)
		if (strcasecmp(s->rcpts[i].address, address) == 0)
			return 0;   /* the same mailbox once per message */
	r = reallocarray(s->rcpts, s->nrcpts + 1, sizeof(*r));
	if (r == NULL)
		return -1;
	s->rcpts = r;
	r[s->nrcpts].address = strdup(address);
	r[s->nrcpts].local = local;
	r[s->nrcpts].done = false;
	if (r[s->nrcpts].address == NULL)
		return -1;
	s->nrcpts++;
	return 0;
}

static void
rcpt_reject(struct smtp_session *s, const char *to, const char *reason, const char *reply)
{
	char esc[LOG_ESCAPE_MAX];

	log_info("event=smtp.reject session=%s client=%s queue_id=%s stage=rcpt from=<%s> to=<%s> reason=%s reply=\"%s\"",
	    s->id, s->ip, s->qid, s->sender_log, log_escape(esc, sizeof(esc), to, strlen(to)), reason, reply);
	/* The reply first, so a client that this strike bans still hears why. */
	if (reply[0] == '4')
		smtp_session_reply(s, "%s", reply);
	else
		smtp_session_reply_error(s, "%s", reply);
	if (strcmp(reason, "relay_denied") == 0 || strcmp(reason, "address_literal") == 0) {
		metrics_inc("bulwark_relay_denied_total", NULL);
		smtp_session_strike(s, GUARD_STRIKE_RELAY_DENIED);
	} else if (strcmp(reason, "unknown_user") == 0) {
		metrics_inc("bulwark_messages_rejected_total", "reason=\"unknown_user\"");
		smtp_session_strike(s, GUARD_STRIKE_UNKNOWN_RECIPIENT);
	}
}

/* A local-domain recipient: its user or alias must exist (no backscatter later). */
static int
rcpt_local(struct smtp_session *s, const struct smtp_address *a, const char *text)
{
	struct directory_strings targets = { 0 };
	const char *local = a->postmaster_only ? "postmaster" : a->local;
	const char *domain = a->postmaster_only ? s->cfg->domains[0] : a->domain;
	int r = directory_resolve(s->srv->deps.dir, s->cfg, local, domain, &targets);

	if (r == -1) {
		rcpt_reject(s, text, "lookup_error", "451 4.3.0 Temporary lookup failure");
		return -1;
	}
	if (r == 0) {
		rcpt_reject(s, text, "unknown_user", "550 5.1.1 Recipient address rejected: User unknown");
		return -1;
	}
	for (size_t i = 0; i < targets.n; i++) {
		const char *at = strrchr(targets.v[i], '@');
		bool local_target = at != NULL && config_is_local_domain(s->cfg, at + 1);

		if (add_target(s, targets.v[i], local_target) == -1) {
			directory_strings_clear(&targets);
			rcpt_reject(s, text, "out_of_memory", "451 4.3.0 Out of resources");
			return -1;
		}
	}
	directory_strings_clear(&targets);
	return 0;
}

static void
proceed_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_address a;
	struct smtp_policy_client client = { .mynetworks = s->trusted,
	    .authenticated = s->authenticated };
	const char *params, *err, *reason;
	char text[SMTP_PATH_MAX * 4 + 1];

	if (args == NULL || smtp_parse_rcpt(args, &a, &params, &err) != 1) {
		smtp_session_reply_error(s, "%s", args == NULL ? "501 5.5.4 Syntax: RCPT TO:<address>" : err);
		return;
	}
	if (smtp_parse_rcpt_params(params, &err) != 1) {
		smtp_session_reply_error(s, "%s", err);
		return;
	}
	if (a.utf8 && !s->params.smtputf8) {
		smtp_session_reply_error(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		return;
	}
	if (s->rcpt_cmds >= s->cfg->smtp.max_recipients) {
		smtp_session_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (a.postmaster_only)
		snprintf(text, sizeof(text), "postmaster@%s", s->cfg->domains[0]);
	else
		address_format(&a, text, sizeof(text));
	switch (smtp_policy_rcpt(s->cfg, &a, &client, &reason)) {
	case SMTP_POLICY_LOCAL:
		if (rcpt_local(s, &a, text) == -1)
			return;
		break;
	case SMTP_POLICY_RELAY: {
		size_t before = s->nrcpts;
		const char *which;

		if (s->authenticated && s->srv->deps.monitor != NULL &&
		    queue_monitor_rcpt(s->srv->deps.monitor, s->account, &s->limits, s->remote_rcpts,
		    &which) == -1) {
			rcpt_reject(s, text, strcmp(which, "messages") == 0 ? "rate_limit_messages" :
			    "rate_limit_recipients", strcmp(which, "messages") == 0 ?
			    "451 4.7.1 Too many messages from this account in the last hour; try again later" :
			    "451 4.7.1 Too many recipients from this account in the last hour; try again later");
			return;
		}
		if (add_target(s, text, false) == -1) {
			rcpt_reject(s, text, "out_of_memory", "451 4.3.0 Out of resources");
			return;
		}
		if (s->nrcpts > before)
			s->remote_rcpts++;
		break;
	}
	case SMTP_POLICY_DENY:
		rcpt_reject(s, text, reason, "554 5.7.1 Relay access denied");
		return;
	}
	if (s->rcpt_cmds++ == 0)
		snprintf(s->first_rcpt, sizeof(s->first_rcpt), "%s", a.quoted_local ? "" : text);
	{
		char esc[LOG_ESCAPE_MAX];

		log_info("event=smtp.rcpt session=%s client=%s queue_id=%s to=<%s> verdict=%s",
		    s->id, s->ip, s->qid, log_escape(esc, sizeof(esc), text, strlen(text)), reason);
	}
	smtp_session_enter_state(s, SMTP_STATE_RCPT);
	smtp_session_reply(s, "250 2.1.5 Ok");
}

/* ---- DATA / BDAT ---- */

static const char *
check_data(struct smtp_session *s, const char *args)
{
	if (args != NULL)
		return "501 5.5.4 Syntax: DATA";
	if (s->state == SMTP_STATE_BDAT_WAIT)
		return "503 5.5.1 Error: DATA during BDAT";
	if (s->state == SMTP_STATE_MAIL)
		return "554 5.5.1 Error: no valid recipients";
	if (s->state != SMTP_STATE_RCPT)
		return "503 5.5.1 Error: need RCPT command";
	return NULL;
}

/*
 * An authenticated user's message reaches DATA/BDAT: count it against the
 * account's hourly limits (sessions in parallel count too). NULL ok, else
 * the reply.
 */
static const char *
data_rate_check(struct smtp_session *s)
{
	const char *which;

	if (!s->authenticated || s->srv->deps.monitor == NULL ||
	    queue_monitor_data(s->srv->deps.monitor, s->account, &s->limits, s->remote_rcpts,
	    &which) == 0)
		return NULL;
	log_info("event=smtp.reject session=%s client=%s queue_id=%s stage=data from=<%s> reason=rate_limit_%s",
	    s->id, s->ip, s->qid, s->sender_log, which);
	return strcmp(which, "messages") == 0 ?
	    "451 4.7.1 Too many messages from this account in the last hour; try again later" :
	    "451 4.7.1 Too many recipients from this account in the last hour; try again later";
}

static void
proceed_data(struct smtp_session *s, const char *args)
{
	const char *err = data_rate_check(s);

	if (err != NULL) {
		smtp_session_reply(s, "%s", err);
		smtp_session_reset_transaction(s);
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		return;
	}
	if (smtp_session_begin_message(s, false) == -1) {
		smtp_session_reply(s, "451 4.3.0 Error: queue file write error, try again later");
		smtp_session_reset_transaction(s);
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_DATA);
	smtp_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
proceed_bdat(struct smtp_session *s, const char *args)
{
	uint64_t size;
	bool last;
	const char *err;

	if (args == NULL || smtp_parse_bdat(args, &size, &last, &err) != 1) {
		/* Without a size the chunk cannot be skipped: its bytes would be
		 * read as commands. Hang up instead. */
		smtp_session_reply(s, "%s", args == NULL ? "501 5.5.4 Syntax: BDAT size [LAST]" : err);
		smtp_session_reply(s, "421 4.5.0 %s BDAT chunk size unknown, closing", s->cfg->hostname);
		smtp_session_close(s);
		return;
	}
	s->bdat_prev_state = s->state;
	s->bdat_chunk = size;
	s->bdat_left = size;
	s->bdat_last = last;
	s->bdat_error = NULL;
	if (s->state == SMTP_STATE_MAIL)
		s->bdat_error = "554 5.5.1 Error: no valid recipients";
	else if (s->state != SMTP_STATE_RCPT && s->state != SMTP_STATE_BDAT_WAIT)
		s->bdat_error = "503 5.5.1 Error: need RCPT command";
	else if (s->state == SMTP_STATE_RCPT && (s->bdat_error = data_rate_check(s)) != NULL)
		;   /* the chunk is read and dropped, the transaction void */
	else if (s->state == SMTP_STATE_RCPT && smtp_session_begin_message(s, true) == -1)
		s->bdat_error = "451 4.3.0 Error: queue file write error, try again later";
	if (s->bdat_error != NULL)
		/* Read and drop the chunk so its bytes never become commands. */
		smtp_data_init(&s->dp, true, false, 0, 0, NULL, NULL);
	smtp_session_enter_state(s, SMTP_STATE_BDAT);
	if (size == 0)
		smtp_session_bdat_chunk_done(s);
}

/* ---- the rest ---- */

static void
proceed_rset(struct smtp_session *s, const char *args)
{
	smtp_session_reset_transaction(s);
	smtp_session_enter_state(s, s->helo_seen ? SMTP_STATE_HELO : SMTP_STATE_GREETED);
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
proceed_noop(struct smtp_session *s, const char *args)
{
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
proceed_quit(struct smtp_session *s, const char *args)
{
	smtp_session_reply(s, "221 2.0.0 Bye");
	smtp_session_close(s);
}

static void
proceed_vrfy(struct smtp_session *s, const char *args)
{
	/* Never say whether a user exists (directory harvesting). */
	smtp_session_reply(s, "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
proceed_expn(struct smtp_session *s, const char *args)
{
	smtp_session_reply_error(s, "502 5.5.1 EXPN not available");
}

static void
proceed_help(struct smtp_session *s, const char *args)
{
	smtp_session_reply(s, "214 2.0.0 See RFC 5321 (https://www.rfc-editor.org/rfc/rfc5321)");
}

static const char *
check_starttls(struct smtp_session *s, const char *args)
{
	if (args != NULL)
		return "501 5.5.4 Syntax: STARTTLS";
	if (s->tls)
		return "554 5.5.1 Error: TLS already active";
	if (in_transaction(s))
		return "503 5.5.1 Error: STARTTLS inside a mail transaction";
	return NULL;
}

static void
proceed_starttls(struct smtp_session *s, const char *args)
{
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		/* Plaintext pipelined after STARTTLS would be read as if it came
		 * over TLS (CVE-2011-0411): refuse and hang up. */
		log_info("event=smtp.reject session=%s client=%s stage=starttls reason=pipelined_after_starttls",
		    s->id, s->ip);
		smtp_session_reply(s, "501 5.5.1 Error: data pipelined after STARTTLS, closing");
		smtp_session_close(s);
		return;
	}
	smtp_session_start_tls(s);
}

static const char *
check_auth(struct smtp_session *s, const char *args)
{
	if (s->kind == SMTP_LISTENER_MX)
		return "503 5.5.1 Error: authentication not enabled";
	if (!s->tls)
		return "530 5.7.0 Must issue a STARTTLS command first";
	if (s->authenticated)
		return "503 5.5.1 Error: already authenticated";
	if (in_transaction(s))
		return "503 5.5.1 Error: MAIL transaction in progress";
	return NULL;
}

static void
proceed_auth(struct smtp_session *s, const char *args)
{
	smtp_auth_start(s, args);
}

static void
proceed_http(struct smtp_session *s, const char *args)
{
	log_info("event=smtp.reject session=%s client=%s reason=http_on_smtp", s->id, s->ip);
	smtp_session_reply(s, "421 4.7.0 %s This is an SMTP server, closing", s->cfg->hostname);
	smtp_session_close(s);
}

static const struct smtp_command_def commands[] = {
	{ SMTP_CMD_HELO, 0, check_helo, proceed_helo },
	{ SMTP_CMD_EHLO, 0, check_helo, proceed_ehlo },
	{ SMTP_CMD_MAIL, CMD_F_NEEDS_HELO, check_mail, proceed_mail },
	{ SMTP_CMD_RCPT, CMD_F_NEEDS_HELO, check_rcpt, proceed_rcpt },
	{ SMTP_CMD_DATA, CMD_F_NEEDS_HELO, check_data, proceed_data },
	{ SMTP_CMD_BDAT, CMD_F_NEEDS_HELO, NULL, proceed_bdat },
	{ SMTP_CMD_RSET, 0, NULL, proceed_rset },
	{ SMTP_CMD_NOOP, 0, NULL, proceed_noop },
	{ SMTP_CMD_QUIT, 0, NULL, proceed_quit },
	{ SMTP_CMD_VRFY, 0, NULL, proceed_vrfy },
	{ SMTP_CMD_EXPN, 0, NULL, proceed_expn },
	{ SMTP_CMD_HELP, 0, NULL, proceed_help },
	{ SMTP_CMD_STARTTLS, 0, check_starttls, proceed_starttls },
	{ SMTP_CMD_AUTH, CMD_F_NEEDS_HELO, check_auth, proceed_auth },
	{ SMTP_CMD_HTTP, 0, NULL, proceed_http },
};

void
smtp_command_dispatch(struct smtp_session *s, const char *line, size_t len)
{
	const char *args, *err;
	enum smtp_cmd cmd = smtp_parse_command(line, len, &args);

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct smtp_command_def *def = &commands[i];

		if (def->cmd != cmd)
			continue;
		if ((def->flags & CMD_F_NEEDS_HELO) && !s->helo_seen) {
			if (cmd == SMTP_CMD_BDAT) {
				/* Still consume the chunk (see proceed_bdat). */
				def->proceed(s, args);
				return;
			}
			smtp_session_reply_error(s, "503 5.5.1 Error: send HELO/EHLO first");
			return;
		}
		if (def->check != NULL && (err = def->check(s, args)) != NULL) {
			smtp_session_reply_error(s, "%s", err);
			return;
		}
		def->proceed(s, args);
		return;
	}
	{
		char esc[64];

		log_info("event=smtp.unknown_command session=%s client=%s command=\"%s\"",
		    s->id, s->ip, log_escape(esc, sizeof(esc), line, len));
	}
	smtp_session_reply_error(s, "500 5.5.1 Error: command not recognized");
}
