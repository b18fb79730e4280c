/*
 * ctl_ban.c: bulwarkctl's ban and stats verbs: bans keyed as the daemon's
 * guard keys them, counts from the database, and the running daemon's
 * /metrics (HTTP/1.0, RFC 1945) read with a bounded buffer and a 2 s limit.
 * Trusts nothing the database or the daemon answers: it is escaped for the
 * terminal and for JSON.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cmd/ctl.h"
#include "core/cidr.h"
#include "core/config.h"
#include "directory/directory.h"
#include "guard/guard.h"

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

int
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

int
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

int
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

int
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
