/*
 * ctl_check.c: bulwarkctl check: the config audit bulwarkd -t runs, one
 * finding a line, then the counts; exit 1 when there are errors. Trusts the
 * audit's messages (they escape what they quote from the config).
 */
#include <stdio.h>
#include <string.h>

#include "cmd/ctl.h"
#include "core/config.h"

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

int
cmd_check(struct ctl *ctl, const struct args *a)
{
	struct check_count c = { 0 };

	(void)a;
	(void)config_audit(ctl->cfg, check_finding, &c);
	printf("check: %d error%s, %d warning%s\n", c.errors, c.errors == 1 ? "" : "s",
	    c.warnings, c.warnings == 1 ? "" : "s");
	return c.errors > 0 ? EXIT_FAIL : EXIT_OK;
}
