/*
 * bulwarkctl.c: the admin CLI's main. Thin: parse the command line, find the
 * verb in the table, load the config and open the directory it needs, run
 * it. The verbs live beside it, a family a file (ctl_user.c, ctl_ban.c,
 * ctl_queue.c, ctl_dkim.c, ctl_check.c); ctl.h is what they share. Trusts
 * the operator who runs it. Works directly on data_dir/bulwark.db (WAL lets
 * the daemon run meanwhile; it polls the database's data version and
 * reloads bans).
 * XXX talk to the daemon over control.sock once it has one (DESIGN.md).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/ctl.h"
#include "core/config.h"
#include "core/default_config.h"
#include "core/log.h"
#include "directory/directory.h"

/* The help's column for the commands' descriptions; a longer usage wraps. */
#define HELP_COLUMN 52

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
	OPT_MESSAGES = 1 << 9,
	OPT_RECIPIENTS = 1 << 10,
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
	{ OPT_MESSAGES, "--messages", true },
	{ OPT_RECIPIENTS, "--recipients", true },
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

static int cmd_help(struct ctl *, const struct args *);

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
	{ "user", "limit", "ADDRESS [--messages N|default] [--recipients N|default]", 1, 1,
	  OPT_MESSAGES | OPT_RECIPIENTS, CMD_DIRECTORY, cmd_user_limit,
	  "the account's outbound limits per hour (queue_monitor.*_per_hour unless set)" },
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

/* ---- help and dispatch ---- */

static void
usage(FILE *out)
{
	char left[128];

	fprintf(out, "usage: " PROG " [-c FILE] COMMAND [ARGS]\n\n"
	    "  -c FILE    the config (default: the embedded etc/bulwark.yaml)\n\n"
	    "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];

		if (c->run == NULL)
			continue;
		snprintf(left, sizeof(left), "%s%s%s %s", c->verb, c->sub ? " " : "",
		    c->sub ? c->sub : "", c->usage);
		if (strlen(left) > HELP_COLUMN)
			fprintf(out, "  %s\n  %-*s %s\n", left, HELP_COLUMN, "", c->help);
		else
			fprintf(out, "  %-*s %s\n", HELP_COLUMN, left, c->help);
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
			case OPT_MESSAGES: a->messages = argv[++i]; break;
			case OPT_RECIPIENTS: a->recipients = argv[++i]; break;
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
