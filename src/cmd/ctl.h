/*
 * ctl.h: what bulwarkctl's files share: the parsed command line, the context
 * a verb runs in, the verbs (for the table in bulwarkctl.c, one ctl_*.c file
 * a family) and the helpers they all print with (ctl_print.c). Private to
 * src/cmd: no module includes it.
 */
#ifndef BULWARK_CMD_CTL_H
#define BULWARK_CMD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/log.h"

#define PROG "bulwarkctl"
#define MAX_POS 4
#define MAX_TXT 8

struct config;
struct directory;

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAIL = 1,       /* the command failed */
	EXIT_USAGE = 2,      /* the command line is wrong, or the verb not here yet */
};

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
	const char *messages;    /* --messages */
	const char *recipients;  /* --recipients */
	const char *txt[MAX_TXT];   /* --txt NAME=RECORD, repeated */
	int ntxt;
};

struct ctl {
	const char *name;        /* "user add", for messages */
	struct config *cfg;
	struct directory *dir;
};

/* ---- ctl_print.c ---- */

/* One line on stderr: "bulwarkctl: user add: message". Returns EXIT_FAIL. */
int complain(const struct ctl *ctl, const char *fmt, ...) LOG_PRINTF(2, 3);
/* Report a directory failure and free error; error may be NULL (out of memory). */
int complain_error(const struct ctl *ctl, char *error);
/* s for a terminal, in buf: control bytes and backslashes as \xHH; "-" for NULL. */
const char *printable(char *buf, size_t buflen, const char *s);
/* s as a JSON string (RFC 8259), or null; bytes that are not UTF-8 as U+FFFD. */
void json_string(FILE *out, const char *s);
/* t as 2024-01-31T12:00:00Z (UTC), or "-" when not set. */
void format_time(int64_t t, char *buf, size_t buflen);

/* ---- the verbs: each returns an exit_code ---- */

/* ctl_user.c */
int cmd_user_add(struct ctl *ctl, const struct args *a);
int cmd_user_del(struct ctl *ctl, const struct args *a);
int cmd_user_passwd(struct ctl *ctl, const struct args *a);
int cmd_user_flag(struct ctl *ctl, const struct args *a);
int cmd_user_unlock(struct ctl *ctl, const struct args *a);
int cmd_user_list(struct ctl *ctl, const struct args *a);
int cmd_user_limit(struct ctl *ctl, const struct args *a);
int cmd_alias_add(struct ctl *ctl, const struct args *a);
int cmd_alias_del(struct ctl *ctl, const struct args *a);
int cmd_alias_list(struct ctl *ctl, const struct args *a);

/* ctl_ban.c */
int cmd_ban_list(struct ctl *ctl, const struct args *a);
int cmd_ban_add(struct ctl *ctl, const struct args *a);
int cmd_ban_del(struct ctl *ctl, const struct args *a);
int cmd_stats(struct ctl *ctl, const struct args *a);

/* ctl_queue.c */
int cmd_queue_list(struct ctl *ctl, const struct args *a);
int cmd_queue_show(struct ctl *ctl, const struct args *a);
int cmd_queue_apply(struct ctl *ctl, const struct args *a);
int cmd_queue_flush(struct ctl *ctl, const struct args *a);
int cmd_lockdown(struct ctl *ctl, const struct args *a);

/* ctl_dkim.c */
int cmd_dkim_keygen(struct ctl *ctl, const struct args *a);
int cmd_dkim_records(struct ctl *ctl, const struct args *a);
int cmd_dkim_sign(struct ctl *ctl, const struct args *a);
int cmd_dkim_verify(struct ctl *ctl, const struct args *a);

/* ctl_check.c */
int cmd_check(struct ctl *ctl, const struct args *a);

#endif
