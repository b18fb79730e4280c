/*
 * delivery_maildir.c: Maildir delivery (https://cr.yp.to/proto/maildir.html).
 * Trusts the address only after delivery_maildir_path() encoded it. The
 * order tmp/ write, fsync, rename, fsync new/ means a crash leaves either no
 * file in new/ or a whole one.
 */
#include "delivery/delivery.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/fsutil.h"

int
delivery_maildir_path(const char *data_dir, const char *address, char *buf, size_t buflen)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *at = strrchr(address, '@');
	char local[1024], domain[256];
	size_t o = 0;

	if (at == NULL || at == address)
		return -1;
	for (const char *p = address; p < at; p++) {
		unsigned char c = (unsigned char)tolower((unsigned char)*p);
		bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '+' || c == '-' || (c == '.' && p != address);

		if (o + 4 >= sizeof(local))
			return -1;
		if (plain) {
			local[o++] = (char)c;
		} else {
			local[o++] = '%';
			local[o++] = hex[c >> 4];
			local[o++] = hex[c & 0xf];
		}
	}
	local[o] = '\0';
	o = 0;
	for (const char *d = at + 1; *d != '\0'; d++) {
		/* never trust a domain with a path in it */
		if (*d == '/' || (*d == '.' && (d == at + 1 || d[-1] == '.')) || o + 1 >= sizeof(domain))
			return -1;
		domain[o++] = (char)tolower((unsigned char)*d);
	}
	domain[o] = '\0';
	if (o == 0 || (size_t)snprintf(buf, buflen, "%s/mail/%s/%s", data_dir, domain, local) >= buflen)
		return -1;
	return 0;
}

/* Maildir unique name: TIME.MusecPpidQseq.HOST (seq unique within the process). */
static void
maildir_unique(char *buf, size_t buflen, const char *hostname)
{
	static atomic_ulong seq;
	struct timeval tv;
	char host[256];
	size_t o = 0;

	/* '/' and ':' may not appear in a Maildir name (maildir spec). */
	for (const char *h = hostname; *h != '\0' && o < sizeof(host) - 5; h++) {
		if (*h == '/') {
			memcpy(host + o, "\\057", 4);
			o += 4;
		} else if (*h == ':') {
			memcpy(host + o, "\\072", 4);
			o += 4;
		} else {
			host[o++] = *h;
		}
	}
	host[o] = '\0';
	gettimeofday(&tv, NULL);
	snprintf(buf, buflen, "%lld.M%06ldP%ldQ%lu.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), (unsigned long)atomic_fetch_add(&seq, 1), host);
}

/* Write msg with CRLF turned into LF, after the Return-Path line. */
static int
write_lf(int fd, const char *return_path, const char *msg, size_t len, size_t *written_r)
{
	char buf[65536];
	size_t o, total = 0;
	int n;

	n = snprintf(buf, sizeof(buf), "Return-Path: <%s>\n", return_path);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	o = (size_t)n;
	for (size_t i = 0; i < len; i++) {
		if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
			continue;
		buf[o++] = msg[i];
		if (o == sizeof(buf)) {
			if (fs_write_all(fd, buf, o) == -1)
				return -1;
			total += o;
			o = 0;
		}
	}
	if (o > 0 && fs_write_all(fd, buf, o) == -1)
		return -1;
	*written_r = total + o;
	return 0;
}

/* Create the Maildir if needed and write tmp/UNIQUE (no fsync). */
static int
maildir_write_tmp(const char *data_dir, const char *hostname, const char *address,
    const char *return_path, const char *msg, size_t len, bool sync,
    struct delivery_file *f, const char **error_r)
{
	char dir[PATH_MAX], sub[PATH_MAX], unique[512];
	size_t size = 0;
	int fd, saved;

	*error_r = "bad mailbox path";
	if (delivery_maildir_path(data_dir, address, dir, sizeof(dir)) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	*error_r = "cannot create maildir";
	if (fs_path(sub, sizeof(sub), "%s/tmp", dir) == -1)
		return -1;
	if (access(sub, F_OK) == -1) {
		static const char *const subs[] = { "tmp", "new", "cur" };

		for (size_t i = 0; i < 3; i++) {
			if (fs_path(sub, sizeof(sub), "%s/%s", dir, subs[i]) == -1 ||
			    fs_mkdir_p(sub, 0700) == -1)
				return -1;
		}
	}
	maildir_unique(unique, sizeof(unique), hostname);
	if (fs_path(f->tmp, sizeof(f->tmp), "%s/tmp/%s", dir, unique) == -1)
		return -1;
	*error_r = "cannot write message";
	fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (write_lf(fd, return_path, msg, len, &size) == -1 || (sync && fsync(fd) == -1)) {
		saved = errno;
		close(fd);
		(void)unlink(f->tmp);
		errno = saved;
		return -1;
	}
	if (close(fd) == -1) {
		saved = errno;
		(void)unlink(f->tmp);
		errno = saved;
		return -1;
	}
	/* S= lets IMAP servers (ours, Dovecot) know the size without a stat. */
	if (fs_path(f->final, sizeof(f->final), "%s/new/%s,S=%zu", dir, unique, size) == -1) {
		(void)unlink(f->tmp);
		return -1;
	}
	return 0;
}

int
delivery_maildir_write(const char *data_dir, const char *hostname, const char *address,
    const char *return_path, const char *msg, size_t len, struct delivery_file *f_r,
    const char **error_r)
{
	return maildir_write_tmp(data_dir, hostname, address, return_path, msg, len, false,
	    f_r, error_r);
}

int
delivery_maildir_publish(struct delivery_file *f)
{
	if (rename(f->tmp, f->final) == -1) {
		int saved = errno;

		(void)unlink(f->tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

void
delivery_maildir_discard(struct delivery_file *f)
{
	(void)unlink(f->tmp);
}

int
delivery_maildir(const char *data_dir, const char *hostname, const char *address,
    const char *return_path, const char *msg, size_t len, const char **error_r)
{
	struct delivery_file f;
	char *slash;

	if (maildir_write_tmp(data_dir, hostname, address, return_path, msg, len, true,
	    &f, error_r) == -1)
		return -1;
	*error_r = "cannot publish message";
	if (delivery_maildir_publish(&f) == -1)
		return -1;
	*error_r = "cannot sync maildir";
	slash = strrchr(f.final, '/');
	*slash = '\0';   /* f.final is now the new/ directory */
	return fs_fsync_dir(f.final);
}
