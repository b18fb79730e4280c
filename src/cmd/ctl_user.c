/*
 * ctl_user.c: bulwarkctl's user and alias verbs, and the passwords they read
 * (the first line of stdin, or typed twice without echo on a terminal).
 * Trusts the operator; a password is wiped from memory once used, and the
 * directory checks every address and password again. A new unconfirmed
 * account's contact is mailed a confirmation link through the spool.
 */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd/ctl.h"
#include "core/config.h"
#include "directory/directory.h"
#include "queue/queue.h"

#define PASSWORD_LINE_MAX 4096

/* ---- passwords from stdin ---- */

static struct termios saved_termios;
static volatile sig_atomic_t echo_off;

/* A signal while echo is off: put the terminal back, then die of it. */
static void
restore_tty(int sig)
{
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Read one line without echo; the caller frees. NULL on EOF or error. */
static char *
tty_read_line(const char *prompt)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
	struct sigaction sa = { .sa_handler = restore_tty }, old[5];
	struct termios t;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (tcgetattr(STDIN_FILENO, &saved_termios) != 0)
		return NULL;
	for (size_t i = 0; i < 5; i++)
		sigaction(sigs[i], &sa, &old[i]);
	t = saved_termios;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	t.c_lflag |= ECHONL;
	fputs(prompt, stderr);
	fflush(stderr);
	echo_off = 1;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
	n = getline(&line, &cap, stdin);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
	echo_off = 0;
	for (size_t i = 0; i < 5; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (n < 0) {
		free(line);
		return NULL;
	}
	return line;
}

/* Drop the line end; refuse what cannot be a password. 0, or -1 with reason. */
static int
password_line(char *line, size_t n, const char **why_r)
{
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n == 0)
		*why_r = "empty password on stdin";
	else if (strlen(line) != n)
		*why_r = "the password contains a NUL byte";
	else if (n > PASSWORD_LINE_MAX)
		*why_r = "the password line is too long";
	else
		return 0;
	return -1;
}

static void
password_free(char **pw)
{
	if (*pw != NULL) {
		sodium_memzero(*pw, strlen(*pw));
		free(*pw);
		*pw = NULL;
	}
}

/*
 * The password for address: the first line of stdin, or, on a terminal,
 * typed twice without echo. NULL after complaining.
 */
static char *
read_password(const struct ctl *ctl, const char *address)
{
	char *line = NULL, *again = NULL, prompt[400], b[300];
	const char *why;
	size_t cap = 0;
	ssize_t n;

	if (isatty(STDIN_FILENO)) {
		snprintf(prompt, sizeof(prompt), "Password for %s: ",
		    printable(b, sizeof(b), address));
		if ((line = tty_read_line(prompt)) == NULL ||
		    (again = tty_read_line("Again: ")) == NULL) {
			password_free(&line);
			complain(ctl, "no password read");
			return NULL;
		}
		if (password_line(line, strlen(line), &why) != 0 ||
		    password_line(again, strlen(again), &why) != 0) {
			why = strcmp(why, "empty password on stdin") == 0 ?
			    "empty password" : why;
		} else if (strcmp(line, again) != 0) {
			why = "the passwords do not match";
		} else {
			password_free(&again);
			return line;
		}
		password_free(&line);
		password_free(&again);
		complain(ctl, "%s", why);
		return NULL;
	}
	n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		complain(ctl, "no password on stdin (the first line is the password)");
		return NULL;
	}
	if (password_line(line, (size_t)n, &why) != 0) {
		sodium_memzero(line, cap);
		free(line);
		complain(ctl, "%s", why);
		return NULL;
	}
	return line;
}

/* ---- user ---- */

/*
 * Before asking for a password, the checks that need none, so nobody types
 * a password twice to learn the account exists. The directory checks all
 * again, and more.
 */
static int
user_precheck(struct ctl *ctl, const char *address, bool must_exist)
{
	char local[65], domain[256], b[300];
	int rc = directory_user_exists(ctl->dir, address);

	if (rc < 0)
		return complain(ctl, "cannot read the directory");
	if (must_exist && rc == 0)
		return complain(ctl, "no such user %s", printable(b, sizeof(b), address));
	if (!must_exist && rc == 1)
		return complain(ctl, "user %s exists", printable(b, sizeof(b), address));
	if (!must_exist && directory_split_address(address, local, sizeof(local),
	    domain, sizeof(domain)) == 0 && !config_is_local_domain(ctl->cfg, domain))
		return complain(ctl, "domain %s is not a local domain (see domains: in %s)",
		    domain, ctl->cfg->path);
	return 0;
}

/*
 * The base of links in mails: http.public_url, else http:// and the first
 * listen.http address (a wildcard address replaced by the hostname).
 * NULL when nothing serves the links (no listen.http).
 */
static char *
public_url(const struct config *cfg)
{
	const char *listen, *port;
	char *url = NULL;
	size_t n;

	if (cfg->listen.http.n == 0)
		return NULL;
	if (cfg->http.public_url != NULL) {
		n = strlen(cfg->http.public_url);
		while (n > 0 && cfg->http.public_url[n - 1] == '/')
			n--;
		return strndup(cfg->http.public_url, n);
	}
	listen = cfg->listen.http.v[0].text;
	port = strrchr(listen, ':');
	if (port != NULL && (strncmp(listen, "*:", 2) == 0 ||
	    strncmp(listen, "0.0.0.0:", 8) == 0 || strncmp(listen, "[::]:", 5) == 0)) {
		if (asprintf(&url, "http://%s%s", cfg->hostname, port) < 0)
			url = NULL;
	} else if (asprintf(&url, "http://%s", listen) < 0) {
		url = NULL;
	}
	return url;
}

/*
 * Mail a confirmation link for the new, unconfirmed account address to its
 * contact (through the spool: the daemon delivers it). 0, or EXIT_FAIL
 * after saying what to do instead.
 */
static int
send_confirmation(struct ctl *ctl, const char *address, const char *contact)
{
	const struct config *cfg = ctl->cfg;
	char token[DIRECTORY_TOKEN_LEN + 1], id[QUEUE_ID_LEN + 1], subject[400];
	char *url = NULL, *body = NULL, *error = NULL;
	int64_t ttl = (int64_t)cfg->accounts.confirmation_ttl_hours * 3600;
	int rc = EXIT_FAIL;

	if ((url = public_url(cfg)) == NULL) {
		if (cfg->listen.http.n != 0)
			return complain(ctl, "out of memory");
		fprintf(stderr, PROG ": warning: listen.http is not configured, so no "
		    "confirmation link can be served; none was sent\n");
		printf("user %s added, unconfirmed: confirm it by hand once %s has "
		    "answered (" PROG " user confirm %s)\n", address, contact, address);
		return EXIT_OK;
	}
	if (directory_token_create(ctl->dir, address, (int64_t)time(NULL), ttl, token,
	    &error) != 0) {
		complain(ctl, "user %s added, but no confirmation link: %s; confirm by "
		    "hand (" PROG " user confirm %s)", address,
		    error != NULL ? error : "out of memory", address);
		goto out;
	}
	snprintf(subject, sizeof(subject), "Confirm your mail account %s", address);
	if (asprintf(&body,
	    "Hello,\n\n"
	    "This address was given as the contact of a new mail account:\n\n"
	    "  %s (on %s)\n\n"
	    "The account cannot log in or send mail until it is confirmed.\n"
	    "To confirm it, open this link and press the Confirm button:\n\n"
	    "  %s/confirm?token=%s\n\n"
	    "The link works once and expires in %d hour%s.\n\n"
	    "If you did not expect this message, ignore it: the account stays\n"
	    "unconfirmed and cannot be used.\n", address, cfg->hostname, url, token,
	    cfg->accounts.confirmation_ttl_hours,
	    cfg->accounts.confirmation_ttl_hours == 1 ? "" : "s") < 0) {
		body = NULL;
		complain(ctl, "out of memory");
		goto out;
	}
	if (queue_notice(cfg, contact, subject, body, id) != 0) {
		complain(ctl, "user %s added, but the confirmation mail to %s could not be "
		    "queued: %s; confirm by hand (" PROG " user confirm %s)", address,
		    contact, strerror(errno), address);
		goto out;
	}
	printf("user %s added, unconfirmed\n", address);
	printf("confirmation link queued to %s (queue id %s)\n", contact, id);
	rc = EXIT_OK;
out:
	sodium_memzero(token, sizeof(token));
	if (body != NULL)
		sodium_memzero(body, strlen(body));
	free(body);
	free(url);
	free(error);
	return rc;
}

int
cmd_user_add(struct ctl *ctl, const struct args *a)
{
	const char *address = a->pos[0];
	struct directory_user u;
	char *password, *error = NULL;
	int rc;

	if (user_precheck(ctl, address, false) != 0)
		return EXIT_FAIL;
	if ((password = read_password(ctl, address)) == NULL)
		return EXIT_FAIL;
	rc = directory_user_add(ctl->dir, ctl->cfg, address, password, a->contact,
	    a->confirmed, &error);
	password_free(&password);
	if (rc != 0)
		return complain_error(ctl, error);
	if (a->confirmed || !ctl->cfg->security_policy.require_email_confirmation) {
		printf("user %s added\n", address);
		return EXIT_OK;
	}
	if (a->contact == NULL) {
		printf("user %s added, unconfirmed: it cannot log in until confirmed "
		    "(" PROG " user confirm %s)\n", address, address);
		return EXIT_OK;
	}
	/* The contact as stored (checked and normalised by the directory). */
	if (directory_user_get(ctl->dir, address, &u) != 1 || u.contact == NULL) {
		directory_user_clear(&u);
		return complain(ctl, "user %s added, but cannot read it back; confirm by "
		    "hand (" PROG " user confirm %s)", address, address);
	}
	rc = send_confirmation(ctl, u.address, u.contact);
	directory_user_clear(&u);
	return rc;
}

int
cmd_user_del(struct ctl *ctl, const struct args *a)
{
	char *error = NULL;

	if (directory_user_del(ctl->dir, a->pos[0], &error) != 0)
		return complain_error(ctl, error);
	printf("user %s deleted; its Maildir, if any, is left in place\n", a->pos[0]);
	return EXIT_OK;
}

int
cmd_user_passwd(struct ctl *ctl, const struct args *a)
{
	char *password, *error = NULL;
	int rc;

	if (user_precheck(ctl, a->pos[0], true) != 0)
		return EXIT_FAIL;
	if ((password = read_password(ctl, a->pos[0])) == NULL)
		return EXIT_FAIL;
	rc = directory_user_set_password(ctl->dir, ctl->cfg, a->pos[0], password, &error);
	password_free(&password);
	if (rc != 0)
		return complain_error(ctl, error);
	printf("password of %s changed\n", a->pos[0]);
	return EXIT_OK;
}

/* confirm, suspend, resume: one flag each, told apart by the subverb. */
int
cmd_user_flag(struct ctl *ctl, const struct args *a)
{
	static const struct {
		const char *sub, *flag;
		bool value;
		const char *done;
	} map[] = {
		{ "confirm", "confirmed", true, "confirmed" },
		{ "suspend", "suspended", true, "suspended" },
		{ "resume", "suspended", false, "resumed" },
	};
	const char *sub = strchr(ctl->name, ' ') + 1;
	char *error = NULL;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(sub, map[i].sub) != 0)
			continue;
		if (directory_user_set_flag(ctl->dir, a->pos[0], map[i].flag,
		    map[i].value, &error) != 0)
			return complain_error(ctl, error);
		printf("user %s %s\n", a->pos[0], map[i].done);
		return EXIT_OK;
	}
	return complain(ctl, "internal error: no flag for this command");
}

int
cmd_user_unlock(struct ctl *ctl, const struct args *a)
{
	char *error = NULL;

	if (directory_user_unlock(ctl->dir, a->pos[0], &error) != 0)
		return complain_error(ctl, error);
	printf("user %s unlocked\n", a->pos[0]);
	return EXIT_OK;
}

/* "N" (0..10000000) or "default" (-1) into *v_r; -1 when neither. */
static int
limit_parse(const char *s, int *v_r)
{
	char *end;
	long v;

	if (strcmp(s, "default") == 0) {
		*v_r = -1;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < 0 || v > 10000000)
		return -1;
	*v_r = (int)v;
	return 0;
}

int
cmd_user_limit(struct ctl *ctl, const struct args *a)
{
	const struct config_queue_monitor *qm = &ctl->cfg->queue_monitor;
	struct directory_user u;
	char *error = NULL, b[320];
	int messages, recipients, r;

	if ((r = directory_user_get(ctl->dir, a->pos[0], &u)) != 1)
		return r == 0 ? complain(ctl, "no such user %s", printable(b, sizeof(b), a->pos[0])) :
		    complain(ctl, "cannot read the account");
	messages = u.messages_per_hour;
	recipients = u.recipients_per_hour;
	directory_user_clear(&u);
	if (a->messages != NULL && limit_parse(a->messages, &messages) == -1)
		return complain(ctl, "--messages: expected a number of 0..10000000 or 'default'");
	if (a->recipients != NULL && limit_parse(a->recipients, &recipients) == -1)
		return complain(ctl, "--recipients: expected a number of 0..10000000 or 'default'");
	if ((a->messages != NULL || a->recipients != NULL) &&
	    directory_user_set_limits(ctl->dir, a->pos[0], messages, recipients, &error) != 0)
		return complain_error(ctl, error);
	printf("%s messages_per_hour=%d%s recipients_per_hour=%d%s\n",
	    printable(b, sizeof(b), a->pos[0]),
	    messages >= 0 ? messages : qm->messages_per_hour, messages >= 0 ? "" : " (default)",
	    recipients >= 0 ? recipients : qm->recipients_per_hour, recipients >= 0 ? "" : " (default)");
	return EXIT_OK;
}

int
cmd_user_list(struct ctl *ctl, const struct args *a)
{
	struct directory_user *users = NULL;
	size_t n = 0;
	char *error = NULL;
	int width = 7;

	if (directory_user_list(ctl->dir, &users, &n, &error) != 0)
		return complain_error(ctl, error);
	if (a->json) {
		fputs("[", stdout);
		for (size_t i = 0; i < n; i++) {
			const struct directory_user *u = &users[i];

			fputs(i == 0 ? "\n  {\"address\": " : ",\n  {\"address\": ", stdout);
			json_string(stdout, u->address);
			fputs(", \"contact\": ", stdout);
			json_string(stdout, u->contact);
			printf(", \"confirmed\": %s, \"suspended\": %s, \"locked_until\": %lld,"
			    " \"failed_logins\": %d, \"created\": %lld",
			    u->confirmed ? "true" : "false", u->suspended ? "true" : "false",
			    (long long)u->locked_until, u->failed_logins, (long long)u->created);
			/* outbound limits of its own; null: queue_monitor's */
			if (u->messages_per_hour >= 0)
				printf(", \"messages_per_hour\": %d", u->messages_per_hour);
			else
				fputs(", \"messages_per_hour\": null", stdout);
			if (u->recipients_per_hour >= 0)
				printf(", \"recipients_per_hour\": %d}", u->recipients_per_hour);
			else
				fputs(", \"recipients_per_hour\": null}", stdout);
		}
		fputs(n > 0 ? "\n]\n" : "]\n", stdout);
	} else {
		for (size_t i = 0; i < n; i++)
			if ((int)strlen(users[i].address) > width)
				width = (int)strlen(users[i].address);
		width = width > 64 ? 64 : width;
		printf("%-*s  %-9s  %-9s  %-6s  %-20s  %-20s  %s\n", width, "ADDRESS",
		    "CONFIRMED", "SUSPENDED", "FAILED", "LOCKED_UNTIL", "CREATED", "CONTACT");
		for (size_t i = 0; i < n; i++) {
			const struct directory_user *u = &users[i];
			char b1[300], b2[300], locked[32], created[32];

			format_time(u->locked_until, locked, sizeof(locked));
			format_time(u->created, created, sizeof(created));
			printf("%-*s  %-9s  %-9s  %-6d  %-20s  %-20s  %s\n", width,
			    printable(b1, sizeof(b1), u->address), u->confirmed ? "yes" : "no",
			    u->suspended ? "yes" : "no", u->failed_logins, locked, created,
			    printable(b2, sizeof(b2), u->contact));
		}
	}
	directory_user_list_free(&users, n);
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

/* ---- alias ---- */

int
cmd_alias_add(struct ctl *ctl, const struct args *a)
{
	char *error = NULL;

	if (directory_alias_add(ctl->dir, ctl->cfg, a->pos[0], a->pos[1], &error) != 0)
		return complain_error(ctl, error);
	printf("alias %s -> %s added\n", a->pos[0], a->pos[1]);
	return EXIT_OK;
}

int
cmd_alias_del(struct ctl *ctl, const struct args *a)
{
	char *error = NULL;

	if (directory_alias_del(ctl->dir, a->pos[0], a->pos[1], &error) != 0)
		return complain_error(ctl, error);
	if (a->pos[1] != NULL)
		printf("alias %s -> %s deleted\n", a->pos[0], a->pos[1]);
	else
		printf("alias %s deleted\n", a->pos[0]);
	return EXIT_OK;
}

int
cmd_alias_list(struct ctl *ctl, const struct args *a)
{
	struct directory_strings list = { 0 };
	char *error = NULL;
	int width = 6;

	if (directory_alias_list(ctl->dir, &list, &error) != 0)
		return complain_error(ctl, error);
	/* Each entry is "source target": addresses hold no spaces. */
	for (size_t i = 0; i < list.n; i++) {
		char *sp = strchr(list.v[i], ' ');

		if (sp != NULL)
			*sp = '\0';
		if ((int)strlen(list.v[i]) > width)
			width = (int)strlen(list.v[i]);
	}
	width = width > 64 ? 64 : width;
	if (a->json)
		fputs("[", stdout);
	else
		printf("%-*s  %s\n", width, "SOURCE", "TARGET");
	for (size_t i = 0; i < list.n; i++) {
		const char *source = list.v[i], *target = source + strlen(source) + 1;
		char b1[300], b2[300];

		if (a->json) {
			fputs(i == 0 ? "\n  {\"source\": " : ",\n  {\"source\": ", stdout);
			json_string(stdout, source);
			fputs(", \"target\": ", stdout);
			json_string(stdout, target);
			fputs("}", stdout);
		} else {
			printf("%-*s  %s\n", width, printable(b1, sizeof(b1), source),
			    printable(b2, sizeof(b2), target));
		}
	}
	if (a->json)
		fputs(list.n > 0 ? "\n]\n" : "]\n", stdout);
	directory_strings_clear(&list);
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}
