/*
 * bulwarkctl.c: the admin CLI. Thin: parse the command line, load the
 * config, call the directory (or the config audit, or the queue for a
 * notice), print. Trusts the operator who runs it, and no text it prints
 * back: addresses and reasons from the database are escaped for the
 * terminal and for JSON; the daemon's /metrics answer is read bounded.
 * Works directly on data_dir/bulwark.db (WAL lets the daemon run meanwhile;
 * it polls the database's data version and reloads bans).
 * XXX talk to the daemon over control.sock once it has one (DESIGN.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/default_config.h"
#include "core/log.h"
#include "directory/directory.h"
#include "dkim/dkim.h"
#include "guard/guard.h"
#include "queue/queue.h"
#include "queue/queue_admin.h"

#define PROG "bulwarkctl"
#define MAX_POS 4
#define PASSWORD_LINE_MAX 4096

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAIL = 1,       /* the command failed */
	EXIT_USAGE = 2,      /* the command line is wrong, or the verb not here yet */
};

/* Options a command may accept; a command lists the ones it takes. */
enum {
	OPT_CONTACT = 1 << 0,
	OPT_CONFIRMED = 1 << 1,
	OPT_JSON = 1 << 2,
	OPT_FOR = 1 << 3,
	OPT_REASON = 1 << 4,
	OPT_ALL = 1 << 5,
	OPT_SENDER = 1 << 12,
	OPT_SELECTOR = 1 << 6,
	OPT_ALGORITHM = 1 << 7,
	OPT_TXT = 1 << 8,
};

static const struct option_def {
	unsigned bit;
	const char *name;
	bool has_value;
} option_defs[] = {
	{ OPT_CONTACT, "--contact", true },
	{ OPT_CONFIRMED, "--confirmed", false },
	{ OPT_JSON, "--json", false },
	{ OPT_FOR, "--for", true },
	{ OPT_REASON, "--reason", true },
	{ OPT_ALL, "--all", false },
	{ OPT_SENDER, "--sender", true },
	{ OPT_SELECTOR, "--selector", true },
	{ OPT_ALGORITHM, "--algorithm", true },
	{ OPT_TXT, "--txt", true },
};

#define MAX_TXT 8

struct args {
	char *pos[MAX_POS];
	int npos;
	const char *contact;
	bool confirmed;
	bool json;
	const char *seconds;     /* --for */
	const char *reason;      /* --reason */
	bool all;
	const char *sender;      /* --sender */
	const char *selector;    /* --selector */
	const char *algorithm;   /* --algorithm */
	const char *txt[MAX_TXT];   /* --txt NAME=RECORD, repeated */
	int ntxt;
};

struct ctl {
	const char *name;        /* "user add", for messages */
	struct config *cfg;
	struct directory *dir;
};

/* Command flags. */
enum {
	CMD_CONFIG = 1 << 0,     /* needs the config loaded */
	CMD_DIRECTORY = 1 << 1,  /* needs the directory open (implies CMD_CONFIG) */
};

struct command {
	const char *verb;
	const char *sub;         /* NULL: no subverb (or, unavailable: any) */
	const char *usage;       /* arguments, for help */
	int min_pos, max_pos;
	unsigned options;        /* OPT_* accepted */
	unsigned flags;          /* CMD_* */
	int (*run)(struct ctl *ctl, const struct args *a);
	const char *help;
};

static int cmd_user_add(struct ctl *, const struct args *);
static int cmd_user_del(struct ctl *, const struct args *);
static int cmd_user_passwd(struct ctl *, const struct args *);
static int cmd_user_flag(struct ctl *, const struct args *);
static int cmd_user_unlock(struct ctl *, const struct args *);
static int cmd_user_list(struct ctl *, const struct args *);
static int cmd_alias_add(struct ctl *, const struct args *);
static int cmd_alias_del(struct ctl *, const struct args *);
static int cmd_alias_list(struct ctl *, const struct args *);
static int cmd_ban_list(struct ctl *, const struct args *);
static int cmd_ban_add(struct ctl *, const struct args *);
static int cmd_ban_del(struct ctl *, const struct args *);
static int cmd_stats(struct ctl *, const struct args *);
static int cmd_check(struct ctl *, const struct args *);
static int cmd_help(struct ctl *, const struct args *);
static int cmd_queue_list(struct ctl *, const struct args *);
static int cmd_queue_show(struct ctl *, const struct args *);
static int cmd_queue_apply(struct ctl *, const struct args *);
static int cmd_queue_flush(struct ctl *, const struct args *);
static int cmd_lockdown(struct ctl *, const struct args *);
static int cmd_dkim_keygen(struct ctl *, const struct args *);
static int cmd_dkim_records(struct ctl *, const struct args *);
static int cmd_dkim_sign(struct ctl *, const struct args *);
static int cmd_dkim_verify(struct ctl *, const struct args *);

/* NULL run: the verb is in DESIGN.md but not built yet. */
static const struct command commands[] = {
	{ "user", "add", "ADDRESS [--contact EMAIL] [--confirmed]", 1, 1,
	  OPT_CONTACT | OPT_CONFIRMED, CMD_DIRECTORY, cmd_user_add,
	  "create an account; the password is read from stdin" },
	{ "user", "del", "ADDRESS", 1, 1, 0, CMD_DIRECTORY, cmd_user_del,
	  "delete an account (its Maildir is left in place)" },
	{ "user", "passwd", "ADDRESS", 1, 1, 0, CMD_DIRECTORY, cmd_user_passwd,
	  "set a new password, read from stdin" },
	{ "user", "confirm", "ADDRESS", 1, 1, 0, CMD_DIRECTORY, cmd_user_flag,
	  "mark an account confirmed" },
	{ "user", "suspend", "ADDRESS", 1, 1, 0, CMD_DIRECTORY, cmd_user_flag,
	  "suspend an account" },
	{ "user", "resume", "ADDRESS", 1, 1, 0, CMD_DIRECTORY, cmd_user_flag,
	  "lift a suspension" },
	{ "user", "unlock", "ADDRESS", 1, 1, 0, CMD_DIRECTORY, cmd_user_unlock,
	  "clear failed logins and the lockout" },
	{ "user", "list", "[--json]", 0, 0, OPT_JSON, CMD_DIRECTORY, cmd_user_list,
	  "list the accounts" },
	{ "alias", "add", "SOURCE TARGET", 2, 2, 0, CMD_DIRECTORY, cmd_alias_add,
	  "deliver mail for SOURCE to TARGET (an account, an alias or a remote address)" },
	{ "alias", "del", "SOURCE [TARGET]", 1, 2, 0, CMD_DIRECTORY, cmd_alias_del,
	  "remove one target of an alias, or the whole alias" },
	{ "alias", "list", "[--json]", 0, 0, OPT_JSON, CMD_DIRECTORY, cmd_alias_list,
	  "list the aliases" },
	{ "ban", "list", "[--json] [--all]", 0, 0, OPT_JSON | OPT_ALL, CMD_DIRECTORY,
	  cmd_ban_list, "the bans in force (--all: expired ones too)" },
	{ "ban", "add", "IP|CIDR [--for SECONDS] [--reason TEXT]", 1, 1,
	  OPT_FOR | OPT_REASON, CMD_DIRECTORY, cmd_ban_add,
	  "ban a client (IPv6: its /ipv6_prefix); default intrusion_prevention.bantime" },
	{ "ban", "del", "IP|CIDR", 1, 1, 0, CMD_DIRECTORY, cmd_ban_del, "lift a ban" },
	{ "stats", NULL, "", 0, 0, 0, CMD_DIRECTORY, cmd_stats,
	  "account and confirmation counts, and the running daemon's metrics" },
	{ "check", NULL, "", 0, 0, 0, CMD_CONFIG, cmd_check,
	  "audit the config (as bulwarkd -t); exit 1 on errors" },
	{ "help", NULL, "", 0, 0, 0, 0, cmd_help, "this text" },
	{ "queue", "list", "[--json]", 0, 0, OPT_JSON, CMD_CONFIG, cmd_queue_list,
	  "the queue: state, sender, recipients left, size, age, last error" },
	{ "queue", "show", "ID", 1, 1, 0, CMD_CONFIG, cmd_queue_show,
	  "one message: envelope, state and headers" },
	{ "queue", "hold", "ID | --sender ADDRESS | --all", 0, 1, OPT_SENDER | OPT_ALL,
	  CMD_CONFIG, cmd_queue_apply, "keep messages from delivery until released" },
	{ "queue", "release", "ID | --sender ADDRESS | --all", 0, 1, OPT_SENDER | OPT_ALL,
	  CMD_CONFIG, cmd_queue_apply, "let held messages be delivered" },
	{ "queue", "delete", "ID | --sender ADDRESS | --all", 0, 1, OPT_SENDER | OPT_ALL,
	  CMD_CONFIG, cmd_queue_apply, "delete messages (no bounce is sent)" },
	{ "queue", "flush", "", 0, 0, 0, CMD_CONFIG, cmd_queue_flush,
	  "retry every deferred message now" },
	{ "dkim", "keygen", "DOMAIN [--selector S] [--algorithm rsa|ed25519]", 1, 1,
	  OPT_SELECTOR | OPT_ALGORITHM, CMD_CONFIG, cmd_dkim_keygen,
	  "make DKIM keys (rsa and ed25519 by default); print their DNS TXT records" },
	{ "dkim", "records", "DOMAIN", 1, 1, 0, CMD_CONFIG, cmd_dkim_records,
	  "print the DNS TXT records of the domain's DKIM keys again" },
	{ "dkim", "sign", "DOMAIN [--selector S]", 1, 1, OPT_SELECTOR, CMD_CONFIG,
	  cmd_dkim_sign, "sign the message on stdin with the domain's keys; print it" },
	{ "dkim", "verify", "[--txt NAME=RECORD]...", 0, 0, OPT_TXT, 0, cmd_dkim_verify,
	  "verify the message on stdin (keys only from --txt, no DNS); print the results" },
	{ "lockdown", NULL, "[on|off|status]", 0, 1, 0, CMD_CONFIG, cmd_lockdown,
	  "emergency stop: no remote delivery, outbound mail held (default: status)" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* One line on stderr: "bulwarkctl: user add: message". Returns EXIT_FAIL. */
static int complain(const struct ctl *ctl, const char *fmt, ...) LOG_PRINTF(2, 3);

static int
complain(const struct ctl *ctl, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	if (ctl != NULL && ctl->name != NULL)
		fprintf(stderr, "%s: ", ctl->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

/* Report a directory failure; error may be NULL (out of memory). */
static int
complain_error(const struct ctl *ctl, char *error)
{
	complain(ctl, "%s", error != NULL ? error : "out of memory");
	free(error);
	return EXIT_FAIL;
}

/* Text for a terminal: control bytes and backslashes as \xHH. */
static const char *
printable(char *buf, size_t buflen, const char *s)
{
	size_t o = 0;

	if (s == NULL)
		return "-";
	for (; *s != '\0' && o + 5 < buflen; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == '\\')
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

/* ---- JSON output ---- */

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t len;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		len = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string (RFC 8259): escapes, and U+FFFD for bytes that are not UTF-8. */
static void
json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	while (*p != '\0') {
		size_t len;

		switch (*p) {
		case '"': fputs("\\\"", out); p++; continue;
		case '\\': fputs("\\\\", out); p++; continue;
		case '\n': fputs("\\n", out); p++; continue;
		case '\r': fputs("\\r", out); p++; continue;
		case '\t': fputs("\\t", out); p++; continue;
		default: break;
		}
		if (*p < 0x20 || *p == 0x7f) {
			fprintf(out, "\\u%04x", *p);
			p++;
		} else if ((len = utf8_len(p)) == 0) {
			fputs("\\ufffd", out);
			p++;
		} else {
			fwrite(p, 1, len, out);
			p += len;
		}
	}
	fputc('"', out);
}

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

static int
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

static int
cmd_user_del(struct ctl *ctl, const struct args *a)
{
	char *error = NULL;

	if (directory_user_del(ctl->dir, a->pos[0], &error) != 0)
		return complain_error(ctl, error);
	printf("user %s deleted; its Maildir, if any, is left in place\n", a->pos[0]);
	return EXIT_OK;
}

static int
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
static int
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

static int
cmd_user_unlock(struct ctl *ctl, const struct args *a)
{
	char *error = NULL;

	if (directory_user_unlock(ctl->dir, a->pos[0], &error) != 0)
		return complain_error(ctl, error);
	printf("user %s unlocked\n", a->pos[0]);
	return EXIT_OK;
}

static void
format_time(int64_t t, char *buf, size_t buflen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		snprintf(buf, buflen, "-");
	else
		strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
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
			    " \"failed_logins\": %d, \"created\": %lld}",
			    u->confirmed ? "true" : "false", u->suspended ? "true" : "false",
			    (long long)u->locked_until, u->failed_logins, (long long)u->created);
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

static int
cmd_alias_add(struct ctl *ctl, const struct args *a)
{
	char *error = NULL;

	if (directory_alias_add(ctl->dir, ctl->cfg, a->pos[0], a->pos[1], &error) != 0)
		return complain_error(ctl, error);
	printf("alias %s -> %s added\n", a->pos[0], a->pos[1]);
	return EXIT_OK;
}

static int
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

static int
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

/* ---- ban ---- */

#define BAN_SECONDS_MAX (10LL * 365 * 86400)
#define REASON_MAX 64

/*
 * The network key of a ban, as the daemon's guard writes it: a single
 * IPv4 address as /32, a single IPv6 address widened to its
 * /intrusion_prevention.ipv6_prefix (guard_network_text), a CIDR as
 * written (canonical). *single_r: text was one address (sa_r filled).
 * 0, or EXIT_FAIL after complaining.
 */
static int
ban_network(const struct ctl *ctl, const char *text, char *buf, size_t buflen,
    struct sockaddr_storage *sa_r, bool *single_r)
{
	struct cidr c;
	const char *why;

	memset(sa_r, 0, sizeof(*sa_r));
	*single_r = false;
	if (cidr_parse(text, &c, &why) != 0)
		return complain(ctl, "%s: %s (an IP address or a CIDR network)",
		    text, why);
	if (strchr(text, '/') != NULL) {
		/* A whole range in one line could lock everyone out: keep it sane. */
		if ((c.family == AF_INET && c.prefix < 8) ||
		    (c.family == AF_INET6 && c.prefix < 32))
			return complain(ctl, "%s is too wide to ban (at most a /8 for IPv4, "
			    "a /32 for IPv6)", text);
		cidr_format(&c, buf, buflen);
		return 0;
	}
	*single_r = true;
	if (c.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa_r;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, c.addr, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa_r;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, c.addr, 16);
	}
	guard_network_text((const struct sockaddr *)sa_r,
	    ctl->cfg->intrusion_prevention.ipv6_prefix, buf, buflen);
	if (strcmp(buf, "?") == 0)
		return complain(ctl, "%s: cannot make a ban key of it", text);
	return 0;
}

/* --for: a positive number of seconds, bounded. 0, or EXIT_FAIL after complaining. */
static int
ban_seconds(const struct ctl *ctl, const char *text, long long *seconds_r)
{
	char *end;

	errno = 0;
	*seconds_r = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || *seconds_r <= 0 ||
	    *seconds_r > BAN_SECONDS_MAX)
		return complain(ctl, "--for %s: a number of seconds from 1 to %lld",
		    text, BAN_SECONDS_MAX);
	return 0;
}

static int
cmd_ban_list(struct ctl *ctl, const struct args *a)
{
	struct directory_ban *bans = NULL;
	time_t now = time(NULL);
	size_t n = 0, shown = 0;
	int width = 7;

	if (directory_ban_list(ctl->dir, &bans, &n) != 0)
		return complain(ctl, "cannot read the bans from the database");
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(bans[i].network) > width)
			width = (int)strlen(bans[i].network);
	width = width > 64 ? 64 : width;
	if (a->json)
		fputs("[", stdout);
	else
		printf("%-*s  %-20s  %8s  %5s  %-20s  %-20s  %s\n", width, "NETWORK",
		    "REASON", "EVIDENCE", "LEVEL", "CREATED", "EXPIRES", "ACTIVE");
	for (size_t i = 0; i < n; i++) {
		const struct directory_ban *b = &bans[i];
		bool active = b->expires > (int64_t)now;
		char b1[300], b2[300], created[32], expires[32];

		if (!active && !a->all)
			continue;
		if (a->json) {
			fputs(shown == 0 ? "\n  {\"network\": " : ",\n  {\"network\": ", stdout);
			json_string(stdout, b->network);
			fputs(", \"reason\": ", stdout);
			json_string(stdout, b->reason);
			printf(", \"evidence\": %d, \"level\": %d, \"created\": %lld, "
			    "\"expires\": %lld, \"active\": %s}", b->evidence, b->level,
			    (long long)b->created, (long long)b->expires,
			    active ? "true" : "false");
		} else {
			format_time(b->created, created, sizeof(created));
			format_time(b->expires, expires, sizeof(expires));
			printf("%-*s  %-20s  %8d  %5d  %-20s  %-20s  %s\n", width,
			    printable(b1, sizeof(b1), b->network),
			    printable(b2, sizeof(b2), b->reason), b->evidence, b->level,
			    created, expires, active ? "yes" : "no");
		}
		shown++;
	}
	if (a->json)
		fputs(shown > 0 ? "\n]\n" : "]\n", stdout);
	directory_ban_list_free(&bans, n);
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

static int
cmd_ban_add(struct ctl *ctl, const struct args *a)
{
	const struct config_intrusion_prevention *ip = &ctl->cfg->intrusion_prevention;
	struct directory_ban *bans = NULL, ban;
	struct sockaddr_storage ss;
	char network[80], reason[REASON_MAX + 1], until[32];
	long long seconds = ip->bantime;
	time_t now = time(NULL);
	size_t n = 0;
	bool single;
	int level = 1;

	if (ban_network(ctl, a->pos[0], network, sizeof(network), &ss, &single) != 0)
		return EXIT_FAIL;
	if (a->seconds != NULL && ban_seconds(ctl, a->seconds, &seconds) != 0)
		return EXIT_FAIL;
	snprintf(reason, sizeof(reason), "%s", a->reason != NULL ? a->reason : "manual");
	if (a->reason != NULL) {
		bool ok = a->reason[0] != '\0' && strlen(a->reason) <= REASON_MAX;

		for (const char *p = a->reason; ok && *p != '\0'; p++)
			ok = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f;
		if (!ok)
			return complain(ctl, "--reason: 1 to %d printable ASCII characters",
			    REASON_MAX);
	}
	/* A network banned before climbs a level (the guard's escalation). */
	if (directory_ban_list(ctl->dir, &bans, &n) != 0)
		return complain(ctl, "cannot read the bans from the database");
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(bans[i].network, network) == 0)
			level = bans[i].level + 1;
	directory_ban_list_free(&bans, n);
	ban = (struct directory_ban){ .network = network, .reason = reason, .evidence = 0,
	    .level = level, .created = (int64_t)now, .expires = (int64_t)now + seconds };
	if (directory_ban_save(ctl->dir, &ban) != 0)
		return complain(ctl, "cannot save the ban of %s", network);
	format_time(ban.expires, until, sizeof(until));
	printf("banned %s until %s (%lld seconds, level %d, reason %s)\n", network, until,
	    seconds, level, reason);
	if (single && cidr_list_match(ip->ignoreip, ip->nignoreip,
	    (const struct sockaddr *)&ss))
		fprintf(stderr, PROG ": warning: %s is in intrusion_prevention.ignoreip: "
		    "the daemon never bans it\n", a->pos[0]);
	return EXIT_OK;
}

static int
cmd_ban_del(struct ctl *ctl, const struct args *a)
{
	struct sockaddr_storage ss;
	char network[80];
	bool single;
	int rc;

	if (ban_network(ctl, a->pos[0], network, sizeof(network), &ss, &single) != 0)
		return EXIT_FAIL;
	if ((rc = directory_ban_delete(ctl->dir, network)) < 0)
		return complain(ctl, "cannot delete the ban of %s", network);
	if (rc == 0)
		return complain(ctl, "no ban of %s", network);
	printf("ban of %s lifted\n", network);
	return EXIT_OK;
}

/* ---- stats ---- */

#define METRICS_TIMEOUT_MS 2000
#define METRICS_MAX (4 * 1024 * 1024)

/*
 * Where to reach the daemon's /metrics: the first listen.http address, a
 * wildcard replaced by loopback. 0, or -1 if listen.http is empty.
 */
static int
metrics_address(const struct config *cfg, struct sockaddr_storage *ss_r, socklen_t *len_r)
{
	static const unsigned char any6[16];

	if (cfg->listen.http.n == 0)
		return -1;
	*ss_r = cfg->listen.http.v[0].ss;
	*len_r = cfg->listen.http.v[0].sslen;
	if (ss_r->ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss_r;

		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss_r->ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss_r;

		if (memcmp(&sin6->sin6_addr, any6, 16) == 0)
			sin6->sin6_addr = in6addr_loopback;
	}
	return 0;
}

/*
 * GET /metrics from the running daemon with a plain blocking socket (a
 * 2 s limit on connecting and on each read). The malloc'd answer, or NULL
 * with *why_r saying why.
 */
static char *
metrics_fetch(const struct sockaddr_storage *ss, socklen_t sslen, const char *host,
    const char **why_r)
{
	struct timeval tv = { .tv_sec = METRICS_TIMEOUT_MS / 1000 };
	struct pollfd pfd;
	char req[512], *buf = NULL, *grown;
	size_t len = 0, cap = 0;
	socklen_t errlen = sizeof(int);
	int fd, err = 0, flags;
	ssize_t got;

	*why_r = "cannot create a socket";
	if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return NULL;
	/* Connect without blocking, to bound the wait; then block with timeouts. */
	flags = fcntl(fd, F_GETFL);
	(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, (const struct sockaddr *)ss, sslen) == -1) {
		if (errno != EINPROGRESS) {
			*why_r = strerror(errno);
			goto fail;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, METRICS_TIMEOUT_MS) != 1) {
			*why_r = "connection timed out";
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) == -1 || err != 0) {
			*why_r = strerror(err != 0 ? err : errno);
			goto fail;
		}
	}
	(void)fcntl(fd, F_SETFL, flags);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(req, sizeof(req), "GET /metrics HTTP/1.0\r\nHost: %s\r\n"
	    "User-Agent: " PROG "\r\nConnection: close\r\n\r\n", host);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		*why_r = "cannot send the request";
		goto fail;
	}
	for (;;) {
		if (cap - len < 4096) {
			if (cap >= METRICS_MAX) {
				*why_r = "the answer is too long";
				goto fail;
			}
			cap = cap == 0 ? 16384 : cap * 2;
			if ((grown = realloc(buf, cap + 1)) == NULL) {
				*why_r = "out of memory";
				goto fail;
			}
			buf = grown;
		}
		got = read(fd, buf + len, cap - len);
		if (got == 0)
			break;
		if (got < 0) {
			if (errno == EINTR)
				continue;
			*why_r = errno == EAGAIN || errno == EWOULDBLOCK ?
			    "no answer within 2 seconds" : strerror(errno);
			goto fail;
		}
		len += (size_t)got;
	}
	close(fd);
	if (buf == NULL) {
		*why_r = "empty answer";
		return NULL;
	}
	buf[len] = '\0';
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

/*
 * Print the bulwark_* sample lines of a /metrics answer (status checked),
 * as they are, so scripts can read them like /metrics itself.
 */
static void
metrics_print(const char *answer, const char *url)
{
	const char *body, *line, *end;
	char sample[1024], b[4 * sizeof(sample)];
	int status = 0;

	if (sscanf(answer, "HTTP/%*d.%*d %d", &status) != 1 ||
	    (body = strstr(answer, "\r\n\r\n")) == NULL) {
		printf("\ndaemon metrics: %s answered something other than HTTP\n", url);
		return;
	}
	if (status != 200) {
		printf("\ndaemon metrics: %s answered status %d%s\n", url, status,
		    status == 403 ? " (is this host in http.metrics_allow?)" : "");
		return;
	}
	printf("\ndaemon metrics (%s):\n", url);
	for (line = body + 4; *line != '\0'; line = *end != '\0' ? end + 1 : end) {
		size_t n;

		end = strchr(line, '\n');
		if (end == NULL)
			end = line + strlen(line);
		n = (size_t)(end - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n < 8 || strncmp(line, "bulwark_", 8) != 0)
			continue;
		if (n >= sizeof(sample))
			n = sizeof(sample) - 1;
		memcpy(sample, line, n);
		sample[n] = '\0';
		printf("%s\n", printable(b, sizeof(b), sample));
	}
}

static int
cmd_stats(struct ctl *ctl, const struct args *a)
{
	struct directory_stats st;
	struct directory_ban *bans = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen;
	time_t now = time(NULL);
	size_t n = 0, active = 0;
	char url[300], host[INET6_ADDRSTRLEN + 8], ipbuf[INET6_ADDRSTRLEN];
	const char *why;
	char *answer;

	(void)a;
	if (directory_stats(ctl->dir, (int64_t)now, &st) != 0 ||
	    directory_ban_list(ctl->dir, &bans, &n) != 0)
		return complain(ctl, "cannot read the database");
	for (size_t i = 0; i < n; i++)
		active += bans[i].expires > (int64_t)now;
	directory_ban_list_free(&bans, n);
	printf("accounts                  %ld\n", st.users);
	printf("  confirmed               %ld\n", st.confirmed);
	printf("  unconfirmed             %ld\n", st.unconfirmed);
	printf("  suspended               %ld\n", st.suspended);
	printf("  locked now              %ld\n", st.locked);
	printf("confirmations requested   %ld\n", st.confirmations_requested);
	printf("confirmations completed   %ld", st.confirmations_completed);
	if (st.confirmations_requested > 0)
		printf(" (%.0f%%)", 100.0 * (double)st.confirmations_completed /
		    (double)st.confirmations_requested);
	printf("\nbans in force             %zu (stored, expired included: %zu)\n",
	    active, n);
	if (metrics_address(ctl->cfg, &ss, &sslen) != 0) {
		printf("\ndaemon metrics: listen.http is not configured\n");
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
	}
	sockaddr_format_ip((const struct sockaddr *)&ss, ipbuf, sizeof(ipbuf));
	snprintf(host, sizeof(host), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ipbuf,
	    ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port));
	snprintf(url, sizeof(url), "http://%s/metrics", host);
	fflush(stdout);
	if ((answer = metrics_fetch(&ss, sslen, host, &why)) == NULL) {
		printf("\ndaemon metrics: cannot read %s: %s (is bulwarkd running?)\n",
		    url, why);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
	}
	metrics_print(answer, url);
	free(answer);
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

/* ---- dkim ---- */

#define DKIM_STDIN_MAX (64 * 1024 * 1024)

/* DOMAIN must be one of ours; 0, or EXIT_FAIL after complaining. */
static int
dkim_local_domain(struct ctl *ctl, const char *domain)
{
	char b[300];

	if (!config_is_local_domain(ctl->cfg, domain))
		return complain(ctl, "domain %s is not a local domain (see domains: in %s)",
		    printable(b, sizeof(b), domain), ctl->cfg->path);
	return 0;
}

static int
cmd_dkim_keygen(struct ctl *ctl, const struct args *a)
{
	const char *domain = a->pos[0];
	enum dkim_alg algs[2] = { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };
	char selectors[2][64], *record = NULL, *error = NULL;
	time_t now = time(NULL);
	struct tm tm;
	size_t n = 2;

	if (dkim_local_domain(ctl, domain) != 0)
		return EXIT_FAIL;
	if (a->algorithm != NULL) {
		if (dkim_alg_parse(a->algorithm, &algs[0]) != 0)
			return complain(ctl, "--algorithm: rsa or ed25519");
		n = 1;
	} else if (a->selector != NULL) {
		/* One selector names one key: RSA, which every verifier knows. */
		n = 1;
	}
	if (a->selector != NULL) {
		if (strlen(a->selector) >= sizeof(selectors[0]) ||
		    !dkim_key_name_valid(a->selector))
			return complain(ctl, "--selector: letters, digits, '-' and '_', "
			    "at most 63");
		snprintf(selectors[0], sizeof(selectors[0]), "%s", a->selector);
	} else {
		/* rsa-YYYYMM, ed25519-YYYYMM: a new pair each rotation. */
		gmtime_r(&now, &tm);
		for (size_t i = 0; i < n; i++)
			snprintf(selectors[i], sizeof(selectors[i]), "%s-%04d%02d",
			    dkim_alg_key_type(algs[i]), tm.tm_year + 1900, tm.tm_mon + 1);
	}
	for (size_t i = 0; i < n; i++) {
		if (dkim_keygen(ctl->cfg->data_dir, domain, selectors[i], algs[i], &record,
		    &error) != 0)
			return complain_error(ctl, error);
		printf("; DKIM %s key %s for %s: publish this record in DNS\n%s\n",
		    dkim_alg_name(algs[i]), selectors[i], domain, record);
		free(record);
	}
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

static int
cmd_dkim_records(struct ctl *ctl, const struct args *a)
{
	struct dkim_key **keys = NULL;
	size_t n = 0;
	char *error = NULL, b[300];

	if (dkim_local_domain(ctl, a->pos[0]) != 0)
		return EXIT_FAIL;
	if (dkim_keys_load(ctl->cfg->data_dir, a->pos[0], &keys, &n, &error) != 0)
		return complain_error(ctl, error);
	if (n == 0) {
		const char *domain = printable(b, sizeof(b), a->pos[0]);

		return complain(ctl, "no DKIM keys for %s (" PROG " dkim keygen %s)", domain,
		    domain);
	}
	for (size_t i = 0; i < n; i++) {
		char *record = dkim_key_record(keys[i]);

		if (record == NULL) {
			dkim_keys_free(&keys, n);
			return complain(ctl, "out of memory");
		}
		printf("; DKIM %s key %s\n%s\n", dkim_alg_name(dkim_key_alg(keys[i])),
		    dkim_key_path(keys[i]), record);
		free(record);
	}
	dkim_keys_free(&keys, n);
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

/*
 * The message on stdin, bounded, every bare LF made CRLF (a file saved on
 * Unix; the wire and the spool use CRLF). NULL after complaining.
 */
static char *
dkim_read_message(struct ctl *ctl, size_t *len_r)
{
	char *in = NULL, *out;
	size_t len = 0, cap = 0, lf = 0, o = 0;

	for (;;) {
		size_t got;

		if (cap - len < 65536) {
			char *grown;

			if (cap >= DKIM_STDIN_MAX) {
				free(in);
				complain(ctl, "the message on stdin is over %d bytes", DKIM_STDIN_MAX);
				return NULL;
			}
			cap = cap == 0 ? 262144 : cap * 2;
			if ((grown = realloc(in, cap)) == NULL) {
				free(in);
				complain(ctl, "out of memory");
				return NULL;
			}
			in = grown;
		}
		got = fread(in + len, 1, cap - len, stdin);
		len += got;
		if (got == 0) {
			if (ferror(stdin)) {
				free(in);
				complain(ctl, "reading stdin: %s", strerror(errno));
				return NULL;
			}
			break;
		}
	}
	for (size_t i = 0; i < len; i++)
		lf += in[i] == '\n' && (i == 0 || in[i - 1] != '\r');
	if ((out = malloc(len + lf + 1)) == NULL) {
		free(in);
		complain(ctl, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = in[i];
	}
	out[o] = '\0';
	free(in);
	*len_r = o;
	return out;
}

static int
cmd_dkim_sign(struct ctl *ctl, const struct args *a)
{
	struct dkim_key **keys = NULL;
	size_t n = 0, use = 0, len;
	char *msg = NULL, *headers = NULL, *error = NULL, b[300];
	int rc = EXIT_FAIL;

	if (dkim_local_domain(ctl, a->pos[0]) != 0)
		return EXIT_FAIL;
	if (dkim_keys_load(ctl->cfg->data_dir, a->pos[0], &keys, &n, &error) != 0)
		return complain_error(ctl, error);
	/* The keys to use, moved to the front: all, or the one --selector names. */
	for (size_t i = 0; i < n; i++) {
		if (a->selector == NULL || strcmp(dkim_key_selector(keys[i]), a->selector) == 0) {
			struct dkim_key *k = keys[use];

			keys[use++] = keys[i];
			keys[i] = k;
		}
	}
	if (use == 0) {
		complain(ctl, "no DKIM key%s%s for %s (" PROG " dkim keygen)",
		    a->selector != NULL ? " with selector " : "",
		    a->selector != NULL ? printable(b, sizeof(b), a->selector) : "", a->pos[0]);
		goto out;
	}
	if ((msg = dkim_read_message(ctl, &len)) == NULL)
		goto out;
	if (dkim_sign_keys(keys, use, msg, len, time(NULL), &headers, &error) != 0) {
		rc = complain_error(ctl, error);
		goto out;
	}
	if (fwrite(headers, 1, strlen(headers), stdout) != strlen(headers) ||
	    fwrite(msg, 1, len, stdout) != len || fflush(stdout) != 0) {
		complain(ctl, "write: %s", strerror(errno));
		goto out;
	}
	rc = EXIT_OK;
out:
	free(headers);
	free(msg);
	dkim_keys_free(&keys, n);
	return rc;
}

/*
 * A TXT record as given to --txt: its text, or zone-file quoted strings
 * ("v=DKIM1; k=rsa; " "p=...") joined. Malloc'd; NULL if malformed.
 */
static char *
dkim_txt_text(const char *s, size_t *len_r)
{
	char *out = malloc(strlen(s) + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '"' && *s != '(') {
		strcpy(out, s);
		*len_r = strlen(out);
		return out;
	}
	for (; *s != '\0'; s++) {
		if (*s == ' ' || *s == '\t' || *s == '(' || *s == ')')
			continue;
		if (*s != '"')
			goto bad;
		for (s++; *s != '"'; s++) {
			if (*s == '\0')
				goto bad;
			if (*s == '\\' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
			    s[2] <= '9' && s[3] >= '0' && s[3] <= '9') {
				int v = (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');

				if (v > 255)
					goto bad;
				out[o++] = (char)v;
				s += 3;
			} else if (*s == '\\' && s[1] != '\0') {
				out[o++] = *++s;
			} else {
				out[o++] = *s;
			}
		}
	}
	out[o] = '\0';
	*len_r = o;
	return out;
bad:
	free(out);
	return NULL;
}

/* Same DNS name, any case, a final dot or not. */
static bool
dkim_name_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen > 0 && a[alen - 1] == '.')
		alen--;
	if (blen > 0 && b[blen - 1] == '.')
		blen--;
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

static int
cmd_dkim_verify(struct ctl *ctl, const struct args *a)
{
	struct dkim_verify *v = NULL;
	char *msg, *results;
	size_t len;
	int rc;

	for (int k = 0; k < a->ntxt; k++)
		if (strchr(a->txt[k], '=') == NULL)
			return complain(ctl, "--txt: NAME=RECORD");
	if ((msg = dkim_read_message(ctl, &len)) == NULL)
		return EXIT_FAIL;
	rc = dkim_verify_begin(msg, len, time(NULL), &v);
	free(msg);
	if (rc != 0)
		return complain(ctl, "out of memory");
	for (size_t i = 0; i < dkim_verify_count(v); i++) {
		const char *name = dkim_verify_query(v, i);
		enum dkim_dns dns = DKIM_DNS_NONE;
		char *txt = NULL;
		size_t txt_len = 0;

		if (name == NULL)
			continue;
		for (int k = 0; k < a->ntxt && txt == NULL; k++) {
			const char *eq = strchr(a->txt[k], '=');

			if (!dkim_name_eq(a->txt[k], (size_t)(eq - a->txt[k]), name))
				continue;
			if ((txt = dkim_txt_text(eq + 1, &txt_len)) == NULL) {
				dkim_verify_free(&v);
				return complain(ctl, "--txt %.*s: a malformed record",
				    (int)(eq - a->txt[k]), a->txt[k]);
			}
			dns = DKIM_DNS_FOUND;
		}
		dkim_verify_answer(v, i, dns, txt, txt_len);
		free(txt);
	}
	if ((results = dkim_auth_results(v, "\n")) == NULL) {
		dkim_verify_free(&v);
		return complain(ctl, "out of memory");
	}
	printf("%s\n", results);
	free(results);
	rc = dkim_verify_pass(v) ? EXIT_OK : EXIT_FAIL;
	dkim_verify_free(&v);
	if (fflush(stdout) != 0)
		return complain(ctl, "write: %s", strerror(errno));
	return rc;
}

/* ---- queue and lockdown ---- */

/* 45s, 12m, 3h, 2d: a queue table's AGE column. */
static void
format_age(int64_t seconds, char *buf, size_t buflen)
{
	long long s = seconds > 0 ? (long long)seconds : 0;

	if (s < 120)
		snprintf(buf, buflen, "%llds", s);
	else if (s < 2 * 3600)
		snprintf(buf, buflen, "%lldm", s / 60);
	else if (s < 2 * 86400)
		snprintf(buf, buflen, "%lldh", s / 3600);
	else
		snprintf(buf, buflen, "%lldd", s / 86400);
}

/* An id typed by the operator: checked here so no path is made of it. */
static int
queue_id_check(const struct ctl *ctl, const char *id)
{
	char b[100];

	if (queue_admin_id_valid(id))
		return 0;
	return complain(ctl, "invalid queue id %s (16 lowercase hex digits)",
	    printable(b, sizeof(b), id));
}

/* Messages in queue/hold/, or -1. */
static long
queue_held_count(const struct config *cfg)
{
	struct queue_admin_msg *msgs = NULL;
	size_t n = 0;
	long held = 0;

	if (queue_admin_list(cfg->data_dir, &msgs, &n, NULL) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		held += msgs[i].place == QUEUE_ADMIN_IN_HOLD;
	queue_admin_list_free(&msgs, n);
	return held;
}

static void
queue_list_json(const struct queue_admin_msg *msgs, size_t n, time_t now)
{
	fputs("[", stdout);
	for (size_t i = 0; i < n; i++) {
		const struct queue_admin_msg *m = &msgs[i];
		bool first = true;

		fputs(i == 0 ? "\n  {\"id\": " : ",\n  {\"id\": ", stdout);
		json_string(stdout, m->id);
		fputs(", \"state\": ", stdout);
		json_string(stdout, queue_admin_state_name(m->state));
		fputs(", \"sender\": ", stdout);
		json_string(stdout, m->env.sender);
		fputs(", \"recipients\": [", stdout);
		for (size_t r = 0; r < m->env.nrcpts; r++) {
			if (m->env.rcpts[r].done)
				continue;
			fputs(first ? "" : ", ", stdout);
			json_string(stdout, m->env.rcpts[r].address);
			first = false;
		}
		printf("], \"size\": %zu, \"age\": %lld, \"attempts\": %u, \"last_error\": ",
		    m->size, m->state == QUEUE_ADMIN_CORRUPT ? 0LL :
		    (long long)((int64_t)now > m->env.ctime ? (int64_t)now - m->env.ctime : 0),
		    m->attempts);
		json_string(stdout, m->last_error);
		fputs("}", stdout);
	}
	fputs(n > 0 ? "\n]\n" : "]\n", stdout);
}

static void
queue_list_table(const struct queue_admin_msg *msgs, size_t n, time_t now)
{
	int width = 6;
	size_t held = 0;

	for (size_t i = 0; i < n; i++)
		if (msgs[i].env.sender != NULL && (int)strlen(msgs[i].env.sender) > width)
			width = (int)strlen(msgs[i].env.sender);
	width = width > 40 ? 40 : width;
	if (n > 0)
		printf("%-16s  %-14s  %9s  %5s  %-*s  %s\n", "ID", "STATE", "SIZE", "AGE",
		    width, "SENDER", "RECIPIENTS");
	for (size_t i = 0; i < n; i++) {
		const struct queue_admin_msg *m = &msgs[i];
		char b[300], age[32];
		size_t left = 0, shown = 0;

		held += m->state == QUEUE_ADMIN_HELD;
		format_age(m->state == QUEUE_ADMIN_CORRUPT ? 0 : (int64_t)now - m->env.ctime, age,
		    sizeof(age));
		printf("%-16s  %-14s  %9zu  %5s  %-*s ", m->id, queue_admin_state_name(m->state),
		    m->size, age, width, m->env.sender == NULL ? "-" : m->env.sender[0] == '\0' ?
		    "<>" : printable(b, sizeof(b), m->env.sender));
		for (size_t r = 0; r < m->env.nrcpts; r++) {
			if (m->env.rcpts[r].done)
				continue;
			if (shown++ < 3)
				printf(" %s", printable(b, sizeof(b), m->env.rcpts[r].address));
			else
				left++;
		}
		printf(left > 0 ? " (+%zu more)\n" : "\n", left);
		if (m->last_error != NULL)
			printf("%18s(%s)\n", "", printable(b, sizeof(b), m->last_error));
	}
	if (n == 0)
		printf("the queue is empty\n");
	else
		printf("-- %zu message%s, %zu held\n", n, n == 1 ? "" : "s", held);
}

static int
cmd_queue_list(struct ctl *ctl, const struct args *a)
{
	struct queue_admin_msg *msgs = NULL;
	struct queue_admin_lockdown ld;
	time_t now = time(NULL);
	char since[32], *error = NULL;
	size_t n = 0;

	if (queue_admin_lockdown_status(ctl->cfg->data_dir, &ld, &error) != 0 ||
	    queue_admin_list(ctl->cfg->data_dir, &msgs, &n, &error) != 0)
		return complain_error(ctl, error);
	if (a->json) {
		queue_list_json(msgs, n, now);
	} else {
		format_time(ld.since, since, sizeof(since));
		if (ld.on)
			printf("LOCKDOWN is on (since %s by %s): nothing is delivered remotely\n",
			    since, ld.by);
		queue_list_table(msgs, n, now);
	}
	queue_admin_list_free(&msgs, n);
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

/* A header line as it is, except bytes a terminal would act on (TAB folds stay). */
static void
print_header_line(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f || *p == '\\')
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
	putchar('\n');
}

static int
cmd_queue_show(struct ctl *ctl, const struct args *a)
{
	struct queue_admin_msg m;
	const struct queue_envelope *env = &m.env;
	char b[300], when[32], age[32], *error = NULL;
	int rc;

	if (queue_id_check(ctl, a->pos[0]) != 0)
		return EXIT_FAIL;
	if ((rc = queue_admin_show(ctl->cfg->data_dir, a->pos[0], &m, &error)) < 0)
		return complain_error(ctl, error);
	if (rc == 0)
		return complain(ctl, "no message %s in the queue", a->pos[0]);
	printf("id:         %s\nstate:      %s\n", m.id, queue_admin_state_name(m.state));
	if (m.state == QUEUE_ADMIN_CORRUPT) {
		printf("size:       %zu bytes (the envelope cannot be read; the file is kept)\n",
		    m.size);
		queue_admin_msg_clear(&m);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
	}
	format_time(env->ctime, when, sizeof(when));
	format_age((int64_t)time(NULL) - env->ctime, age, sizeof(age));
	printf("received:   %s (%s ago)\n", when, age);
	printf("client:     %s\n", printable(b, sizeof(b), env->client_ip));
	printf("helo:       %s\n", printable(b, sizeof(b), env->helo));
	printf("sender:     <%s>\n", printable(b, sizeof(b), env->sender));
	printf("flags:     %s%s%s\n", env->flags & QUEUE_FLAG_8BITMIME ? " 8bitmime" : "",
	    env->flags & QUEUE_FLAG_SMTPUTF8 ? " smtputf8" : "", env->flags == 0 ? " -" : "");
	for (size_t r = 0; r < env->nrcpts; r++)
		printf("recipient:  <%s> %s, %s\n", printable(b, sizeof(b), env->rcpts[r].address),
		    env->rcpts[r].local ? "local" : "remote",
		    env->rcpts[r].done ? "done" : "pending");
	printf("size:       %zu bytes\n", m.size);
	if (m.attempts > 0)
		printf("attempts:   %u\n", m.attempts);
	if (m.last_error != NULL)
		printf("last error: %s\n", printable(b, sizeof(b), m.last_error));
	putchar('\n');
	for (size_t i = 0; i < m.nheaders; i++)
		print_header_line(m.headers[i]);
	if (m.nheaders == QUEUE_ADMIN_SHOW_HEADERS)
		printf("[only the first %d header lines are shown]\n", QUEUE_ADMIN_SHOW_HEADERS);
	queue_admin_msg_clear(&m);
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

/* hold, release, delete: told apart by the subverb. */
static int
cmd_queue_apply(struct ctl *ctl, const struct args *a)
{
	static const struct {
		const char *sub, *done, *undone;
		enum queue_admin_action action;
	} map[] = {
		{ "hold", "held", "is already held", QUEUE_ADMIN_HOLD },
		{ "release", "released", "is not held", QUEUE_ADMIN_RELEASE },
		{ "delete", "deleted", "was gone already", QUEUE_ADMIN_DELETE },
	};
	const char *sub = strchr(ctl->name, ' ') + 1;
	struct queue_admin_select sel = { .id = a->npos > 0 ? a->pos[0] : NULL,
	    .sender = a->sender, .all = a->all };
	struct queue_admin_lockdown ld;
	size_t k = 0, matched, done;
	char *error = NULL;

	while (k < sizeof(map) / sizeof(map[0]) - 1 && strcmp(sub, map[k].sub) != 0)
		k++;
	if ((sel.id != NULL) + (sel.sender != NULL) + sel.all != 1) {
		complain(ctl, "give one of: ID, --sender ADDRESS, --all");
		return EXIT_USAGE;
	}
	if (sel.id != NULL && queue_id_check(ctl, sel.id) != 0)
		return EXIT_FAIL;
	if (queue_admin_apply(ctl->cfg->data_dir, map[k].action, &sel, &matched, &done,
	    &error) != 0) {
		if (done > 0)
			printf("%zu message%s %s before the error\n", done, done == 1 ? "" : "s",
			    map[k].done);
		return complain_error(ctl, error);
	}
	if (sel.id != NULL && matched == 0)
		return complain(ctl, "no message %s in the queue", sel.id);
	if (sel.id != NULL)
		printf("message %s %s\n", sel.id, done > 0 ? map[k].done : map[k].undone);
	else
		printf("%zu message%s %s\n", done, done == 1 ? "" : "s", map[k].done);
	if (map[k].action == QUEUE_ADMIN_RELEASE && done > 0 &&
	    queue_admin_lockdown_status(ctl->cfg->data_dir, &ld, NULL) == 0 && ld.on)
		fprintf(stderr, PROG ": warning: lockdown is on: bulwarkd holds released messages "
		    "with remote recipients again (" PROG " lockdown off)\n");
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

static int
cmd_queue_flush(struct ctl *ctl, const struct args *a)
{
	char *error = NULL;

	(void)a;
	if (queue_admin_flush(ctl->cfg->data_dir, &error) != 0)
		return complain_error(ctl, error);
	printf("flush requested: bulwarkd retries every deferred message within seconds\n");
	return EXIT_OK;
}

/* Who turns the lockdown on, for the record: the sudo user behind root if any. */
static void
lockdown_who(char *buf, size_t buflen)
{
	const char *sudo = getenv("SUDO_USER");
	struct passwd *pw;

	if (getuid() == 0 && sudo != NULL && sudo[0] != '\0')
		snprintf(buf, buflen, "%s", sudo);
	else if ((pw = getpwuid(getuid())) != NULL)
		snprintf(buf, buflen, "%s", pw->pw_name);
	else
		snprintf(buf, buflen, "uid:%ld", (long)getuid());
}

static int
cmd_lockdown(struct ctl *ctl, const struct args *a)
{
	const char *what = a->npos > 0 ? a->pos[0] : "status", *dir = ctl->cfg->data_dir;
	struct queue_admin_lockdown ld;
	char who[64], since[32], *error = NULL;
	size_t held;
	long nheld;
	bool was_on;

	if (strcmp(what, "on") == 0) {
		lockdown_who(who, sizeof(who));
		if (queue_admin_lockdown_on(dir, (int64_t)time(NULL), who, &held, &was_on,
		    &error) != 0)
			return complain_error(ctl, error);
		printf("lockdown on%s: bulwarkd delivers nothing remotely and holds every "
		    "message with remote recipients; %zu message%s held now\n",
		    was_on ? " (it was already)" : "", held, held == 1 ? "" : "s");
	} else if (strcmp(what, "off") == 0) {
		if (queue_admin_lockdown_off(dir, &was_on, &error) != 0)
			return complain_error(ctl, error);
		nheld = queue_held_count(ctl->cfg);
		printf("lockdown %s", was_on ? "off: remote delivery resumes" : "was not on");
		if (nheld > 0)
			printf("; %ld held message%s stay%s held: release them with '" PROG
			    " queue release --all' (or --sender ADDRESS, or ID)", nheld,
			    nheld == 1 ? "" : "s", nheld == 1 ? "s" : "");
		putchar('\n');
	} else if (strcmp(what, "status") == 0) {
		if (queue_admin_lockdown_status(dir, &ld, &error) != 0)
			return complain_error(ctl, error);
		nheld = queue_held_count(ctl->cfg);
		format_time(ld.since, since, sizeof(since));
		if (ld.on)
			printf("lockdown: on since %s by %s", since, ld.by);
		else
			printf("lockdown: off");
		if (nheld >= 0)
			printf(" (%ld message%s held)", nheld, nheld == 1 ? "" : "s");
		putchar('\n');
	} else {
		complain(ctl, "on, off or status, not %s", printable(who, sizeof(who), what));
		return EXIT_USAGE;
	}
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

/* ---- check ---- */

struct check_count {
	int errors, warnings;
};

static void
check_finding(void *ctx, enum config_audit_severity sev, const char *key,
    const char *message)
{
	struct check_count *c = ctx;
	size_t klen = strlen(key);

	/* Some messages already start with their key: say it once. */
	if (strncmp(message, key, klen) == 0 && strncmp(message + klen, ": ", 2) == 0)
		message += klen + 2;
	if (sev == CONFIG_AUDIT_ERROR)
		c->errors++;
	else
		c->warnings++;
	printf("%s %s: %s\n", sev == CONFIG_AUDIT_ERROR ? "ERROR" : "WARNING", key, message);
}

static int
cmd_check(struct ctl *ctl, const struct args *a)
{
	struct check_count c = { 0 };

	(void)a;
	(void)config_audit(ctl->cfg, check_finding, &c);
	printf("check: %d error%s, %d warning%s\n", c.errors, c.errors == 1 ? "" : "s",
	    c.warnings, c.warnings == 1 ? "" : "s");
	return c.errors > 0 ? EXIT_FAIL : EXIT_OK;
}

/* ---- help and dispatch ---- */

static void
usage(FILE *out)
{
	char left[64];

	fprintf(out, "usage: " PROG " [-c FILE] COMMAND [ARGS]\n\n"
	    "  -c FILE    the config (default: the embedded etc/bulwark.yaml)\n\n"
	    "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];

		if (c->run == NULL)
			continue;
		snprintf(left, sizeof(left), "%s%s%s %s", c->verb, c->sub ? " " : "",
		    c->sub ? c->sub : "", c->usage);
		fprintf(out, "  %-52s %s\n", left, c->help);
	}
	fprintf(out, "\nPasswords: the first line of stdin; on a terminal, asked twice "
	    "without echo.\n"
	    "Exit status: 0 done, 1 failed (one line on stderr), 2 bad command line.\n");
}

static int
cmd_help(struct ctl *ctl, const struct args *a)
{
	(void)ctl, (void)a;
	usage(stdout);
	return EXIT_OK;
}

/* Split a command's arguments into positionals and its options. */
static int
args_parse(const struct ctl *ctl, const struct command *c, int argc, char **argv,
    struct args *a)
{
	bool options_done = false;

	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		const struct option_def *o = NULL;

		if (!options_done && strcmp(argv[i], "--") == 0) {
			options_done = true;
			continue;
		}
		if (!options_done && argv[i][0] == '-' && argv[i][1] != '\0') {
			for (size_t k = 0; k < sizeof(option_defs) / sizeof(option_defs[0]); k++)
				if ((c->options & option_defs[k].bit) != 0 &&
				    strcmp(argv[i], option_defs[k].name) == 0)
					o = &option_defs[k];
			if (o == NULL) {
				complain(ctl, "unknown option %s (try '" PROG " help')", argv[i]);
				return -1;
			}
			if (o->has_value && i + 1 >= argc) {
				complain(ctl, "%s needs a value", o->name);
				return -1;
			}
			switch (o->bit) {
			case OPT_CONTACT: a->contact = argv[++i]; break;
			case OPT_CONFIRMED: a->confirmed = true; break;
			case OPT_JSON: a->json = true; break;
			case OPT_FOR: a->seconds = argv[++i]; break;
			case OPT_REASON: a->reason = argv[++i]; break;
			case OPT_ALL: a->all = true; break;
			case OPT_SENDER: a->sender = argv[++i]; break;
			case OPT_SELECTOR: a->selector = argv[++i]; break;
			case OPT_ALGORITHM: a->algorithm = argv[++i]; break;
			case OPT_TXT:
				if (a->ntxt == MAX_TXT) {
					complain(ctl, "at most %d --txt", MAX_TXT);
					return -1;
				}
				a->txt[a->ntxt++] = argv[++i];
				break;
			default: break;
			}
			continue;
		}
		if (a->npos >= c->max_pos) {
			complain(ctl, "too many arguments (usage: %s %s)", ctl->name, c->usage);
			return -1;
		}
		a->pos[a->npos++] = argv[i];
	}
	if (a->npos < c->min_pos) {
		complain(ctl, "missing arguments (usage: %s %s)", ctl->name, c->usage);
		return -1;
	}
	return 0;
}

/* The command named by argv (verb, maybe subverb); NULL after complaining. */
static const struct command *
command_find(int argc, char **argv, int *used_r)
{
	const char *verb = argv[0], *sub = argc > 1 ? argv[1] : NULL;
	bool verb_known = false;
	char subs[200] = "";

	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];

		if (strcmp(c->verb, verb) != 0)
			continue;
		verb_known = true;
		if (c->sub == NULL) {
			*used_r = 1;
			return c;
		}
		if (sub != NULL && strcmp(c->sub, sub) == 0) {
			*used_r = 2;
			return c;
		}
		snprintf(subs + strlen(subs), sizeof(subs) - strlen(subs), "%s%s",
		    subs[0] != '\0' ? ", " : "", c->sub);
	}
	if (!verb_known)
		fprintf(stderr, PROG ": unknown command '%s' (try '" PROG " help')\n", verb);
	else if (sub == NULL)
		fprintf(stderr, PROG ": %s: missing command (one of: %s)\n", verb, subs);
	else
		fprintf(stderr, PROG ": %s: unknown command '%s' (one of: %s)\n", verb,
		    sub, subs);
	return NULL;
}

static int
config_get(const char *path, struct config **cfg_r)
{
	char *error = NULL;
	int rc;

	if (path != NULL)
		rc = config_load(path, cfg_r, &error);
	else
		rc = config_load_string("(embedded default)", bulwark_default_config_yaml,
		    bulwark_default_config_len, cfg_r, &error);
	if (rc != 0) {
		fprintf(stderr, PROG ": %s\n", error != NULL ? error : "out of memory");
		free(error);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *config_path = NULL;
	const struct command *c;
	struct ctl ctl = { 0 };
	struct args a;
	char name[64], *error = NULL;
	int i = 1, used, rc;

	/* Directory events are the daemon's business; here only errors speak. */
	log_init(PROG, LOG_LEVEL_ERROR);
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return EXIT_OK;
		} else if (strcmp(argv[i], "-c") == 0) {
			fprintf(stderr, PROG ": -c needs a file\n");
			return EXIT_USAGE;
		} else {
			fprintf(stderr, PROG ": unknown option %s (try '" PROG " help')\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fprintf(stderr, PROG ": missing command (try '" PROG " help')\n");
		return EXIT_USAGE;
	}
	if ((c = command_find(argc - i, argv + i, &used)) == NULL)
		return EXIT_USAGE;
	if (c->run == NULL) {
		fprintf(stderr, PROG ": '%s' is not available yet\n", c->verb);
		return EXIT_USAGE;
	}
	snprintf(name, sizeof(name), "%s%s%s", c->verb, c->sub ? " " : "",
	    c->sub ? c->sub : "");
	ctl.name = name;
	if (args_parse(&ctl, c, argc - i - used, argv + i + used, &a) != 0)
		return EXIT_USAGE;
	if ((c->flags & (CMD_CONFIG | CMD_DIRECTORY)) != 0 &&
	    config_get(config_path, &ctl.cfg) != 0)
		return EXIT_FAIL;
	if ((c->flags & CMD_DIRECTORY) != 0 &&
	    directory_open(ctl.cfg->data_dir, &ctl.dir, &error) != 0) {
		rc = complain_error(&ctl, error);
		config_free(&ctl.cfg);
		return rc;
	}
	rc = c->run(&ctl, &a);
	directory_free(&ctl.dir);
	config_free(&ctl.cfg);
	return rc;
}
