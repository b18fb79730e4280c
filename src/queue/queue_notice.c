/*
 * queue_notice.c: mail that bulwark writes itself (confirmation links,
 * lockout warnings). Composed here as RFC 5322 text (RFC 3834
 * Auto-Submitted), dropped durably into queue/incoming/ by whoever calls
 * (the daemon's workers or bulwarkctl), and picked up by the scheduler.
 * Trusts its callers' text: no client input reaches it unchecked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "directory/directory.h"
#include "queue/queue.h"

/* Write buf as dir/name durably, owned like dir (bulwarkctl runs as root). */
static int
notice_write(const char *dir, const char *name, const char *buf, size_t len)
{
	struct stat st;

	if (stat(dir, &st) == -1)
		return -1;
	if (geteuid() == 0 && st.st_uid != 0)
		return fs_write_file_durable_owned(dir, name, buf, len, 0600, st.st_uid, st.st_gid);
	return fs_write_file_durable(dir, name, buf, len, 0600);
}

/* The message: headers, then body with every line end as CRLF. */
static char *
notice_compose(const struct config *cfg, const char *id, const char *from, const char *to,
    const char *subject, const char *body, size_t *len_r)
{
	char date[64], *buf = NULL;
	size_t len = 0;
	time_t now = time(NULL);
	struct tm tm;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	fprintf(f, "Received: by %s (bulwark) id %s; %s\r\n", cfg->hostname, id, date);
	fprintf(f, "Date: %s\r\nFrom: bulwark <%s>\r\nTo: <%s>\r\nSubject: %s\r\n", date, from,
	    to, subject);
	fprintf(f, "Message-ID: <%s.%lld@%s>\r\n", id, (long long)now, cfg->hostname);
	fputs("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", f);
	for (const char *p = body; *p != '\0'; p++) {
		if (*p == '\n' && (p == body || p[-1] != '\r'))
			fputc('\r', f);
		/* A lone "." line would be harmless in the spool, but keep
		 * notices safe to relay as they are. */
		if (*p == '.' && (p == body || p[-1] == '\n'))
			fputc(' ', f);
		fputc(*p, f);
	}
	if (*body != '\0' && body[strlen(body) - 1] != '\n')
		fputs("\r\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len_r = len;
	return buf;
}

int
queue_inject(const struct config *cfg, const char *sender, const char *to, const char *msg,
    size_t msglen, char id_r[QUEUE_ID_LEN + 1])
{
	char dir[4096], id[QUEUE_ID_LEN + 1];
	const char *at = strrchr(to, '@');
	struct queue_rcpt rcpt = { .address = (char *)to };
	struct queue_envelope env = {
		.ctime = time(NULL),
		.sender = (char *)sender,
		.client_ip = (char *)"127.0.0.1",
		.helo = cfg->hostname,
		.flags = QUEUE_FLAG_8BITMIME,
		.rcpts = &rcpt,
		.nrcpts = 1,
	};
	char *hdr = NULL, *all = NULL;
	size_t hdrlen;
	int ret = -1;

	if (at == NULL || strpbrk(to, "\r\n<> ") != NULL || strpbrk(sender, "\r\n<> ") != NULL) {
		errno = EINVAL;
		return -1;
	}
	rcpt.local = config_is_local_domain(cfg, at + 1);
	queue_new_id(id);
	memcpy(env.id, id, sizeof(env.id));
	if (fs_path(dir, sizeof(dir), "%s/queue/incoming", cfg->data_dir) == -1 ||
	    fs_mkdir_p(dir, 0700) == -1)
		return -1;
	hdr = queue_envelope_format(&env, &hdrlen);
	if (hdr == NULL || (all = malloc(hdrlen + msglen)) == NULL) {
		errno = ENOMEM;
		goto out;
	}
	memcpy(all, hdr, hdrlen);
	memcpy(all + hdrlen, msg, msglen);
	if (notice_write(dir, id, all, hdrlen + msglen) == -1)
		goto out;
	if (id_r != NULL)
		memcpy(id_r, id, QUEUE_ID_LEN + 1);
	ret = 0;
out:
	free(hdr);
	free(all);
	return ret;
}

int
queue_notice(const struct config *cfg, const char *to, const char *subject, const char *body,
    char id_r[QUEUE_ID_LEN + 1])
{
	char from[300], id[QUEUE_ID_LEN + 1];
	char *msg;
	size_t msglen;
	int ret;

	if (cfg->ndomains == 0 || strpbrk(subject, "\r\n") != NULL) {
		errno = EINVAL;
		return -1;
	}
	snprintf(from, sizeof(from), "postmaster@%s", cfg->domains[0]);
	queue_new_id(id);   /* names the Message-ID; the spool id is queue_inject's */
	if ((msg = notice_compose(cfg, id, from, to, subject, body, &msglen)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	ret = queue_inject(cfg, from, to, msg, msglen, id_r);
	free(msg);
	return ret;
}

void
queue_notice_lockout(const struct config *cfg, const struct directory_auth_outcome *out,
    const char *ip, const char *via)
{
	char body[2048], until[64], qid[QUEUE_ID_LEN + 1];
	time_t t = (time_t)out->locked_until;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S UTC", &tm);
	snprintf(body, sizeof(body),
	    "Your mail account %s was locked after %d failed logins; the last\n"
	    "came from %s%s.\n\n"
	    "It unlocks by itself at %s. If this was not you, someone is\n"
	    "guessing your password: ask your administrator to change it.\n"
	    "An administrator can unlock it at once with:\n\n"
	    "    bulwarkctl user unlock %s\n",
	    out->account, out->failed_logins, ip, via, until, out->account);
	if (queue_notice(cfg, out->contact, "Your mail account was locked", body, qid) == 0)
		log_info("event=auth.lockout_notice account=%s queue_id=%s", out->account, qid);
	else
		log_warn("event=auth.error account=%s reason=lockout_notice", out->account);
}
