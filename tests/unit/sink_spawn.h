/*
 * sink_spawn.h: start tests/integration/sink.py (a dnslib DNS server and
 * aiosmtpd SMTP sinks on loopback) for the outbound tests, read its READY
 * line, and stop it by closing its stdin. Header-only: shared by
 * test_dns.c and test_smtp_client.c. Tests using it are skipped when
 * /usr/bin/python3 lacks aiosmtpd or dnslib (scripts/deps.sh installs them).
 */
#ifndef BULWARK_TEST_SINK_SPAWN_H
#define BULWARK_TEST_SINK_SPAWN_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct sink {
	pid_t pid;
	int stdin_fd;      /* closing it stops the sink */
	char ready[2048];  /* "READY dir=... dns=PORT ..." */
};

/* The source tree: $BULWARK_SOURCE_DIR, or derived from this file's path. */
static inline void
sink_source_dir(char *buf, size_t len)
{
	const char *env = getenv("BULWARK_SOURCE_DIR");
	char *p;

	if (env != NULL) {
		snprintf(buf, len, "%s", env);
		return;
	}
	snprintf(buf, len, "%s", __FILE__);   /* .../tests/unit/sink_spawn.h */
	for (int i = 0; i < 3 && (p = strrchr(buf, '/')) != NULL; i++)
		*p = '\0';
	if (strchr(__FILE__, '/') == NULL)
		snprintf(buf, len, ".");
}

static inline bool
sink_available(void)
{
	return access("/usr/bin/python3", X_OK) == 0 &&
	    system("/usr/bin/python3 -c 'import aiosmtpd.controller, dnslib.server' "
	        ">/dev/null 2>&1") == 0;
}

/* 0 and s filled, or -1 (the sink could not start). */
static inline int
sink_start(struct sink *s)
{
	char script[PATH_MAX], src[PATH_MAX - 64];
	int in[2], out[2];
	FILE *f;

	memset(s, 0, sizeof(*s));
	sink_source_dir(src, sizeof(src));
	snprintf(script, sizeof(script), "%s/tests/integration/sink.py", src);
	if (pipe(in) == -1 || pipe(out) == -1)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	if ((s->pid = fork()) == -1)
		return -1;
	if (s->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl("/usr/bin/python3", "python3", script, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	s->stdin_fd = in[1];
	f = fdopen(out[0], "r");
	if (f == NULL || fgets(s->ready, sizeof(s->ready), f) == NULL ||
	    strncmp(s->ready, "READY ", 6) != 0) {
		fprintf(stderr, "sink: %s did not start\n", script);
		if (f != NULL)
			fclose(f);
		close(s->stdin_fd);
		waitpid(s->pid, NULL, 0);
		return -1;
	}
	fclose(f);   /* the sink prints nothing more */
	s->ready[strcspn(s->ready, "\n")] = '\0';
	return 0;
}

/* The value of "key=VALUE" in the READY line, copied into buf. */
static inline const char *
sink_value(const struct sink *s, const char *key, char *buf, size_t len)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), " %s=", key);
	if ((p = strstr(s->ready, pat)) == NULL)
		return NULL;
	p += strlen(pat);
	snprintf(buf, len, "%.*s", (int)strcspn(p, " "), p);
	return buf;
}

static inline int
sink_port(const struct sink *s, const char *key)
{
	char buf[32];

	return sink_value(s, key, buf, sizeof(buf)) != NULL ? atoi(buf) : -1;
}

static inline void
sink_stop(struct sink *s)
{
	if (s->pid <= 0)
		return;
	close(s->stdin_fd);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
}

#endif
