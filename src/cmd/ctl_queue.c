/*
 * ctl_queue.c: bulwarkctl's queue and lockdown verbs, through queue_admin
 * (the daemon sees the control files it writes). Trusts nothing in the
 * spool: envelopes, headers and errors are escaped for the terminal and for
 * JSON, and a queue id the operator types is checked before a path is made
 * of it.
 */
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/ctl.h"
#include "core/config.h"
#include "queue/queue.h"
#include "queue/queue_admin.h"

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

int
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

int
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
int
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

int
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

int
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
