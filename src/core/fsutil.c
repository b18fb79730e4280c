/*
 * fsutil.c: the durable-write primitives every persistent file goes through.
 */
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
fs_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;

			*p = '\0';
			if (mkdir(buf, mode) == -1 && errno != EEXIST)
				return -1;
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	return 0;
}

int
fs_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
fs_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret;

	if (fd == -1)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

int
fs_write_file_durable(const char *dir, const char *name, const void *buf,
    size_t len, mode_t mode)
{
	return fs_write_file_durable_owned(dir, name, buf, len, mode, (uid_t)-1, (gid_t)-1);
}

int
fs_write_file_durable_owned(const char *dir, const char *name, const void *buf,
    size_t len, mode_t mode, uid_t uid, gid_t gid)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	int fd, saved;

	if (fs_path(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) == -1 ||
	    fs_path(final, sizeof(final), "%s/%s", dir, name) == -1)
		return -1;
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1)
		return -1;
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) == -1)
		goto fail;
	if (fs_write_all(fd, buf, len) == -1 || fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, final) == -1)
		goto fail;
	return fs_fsync_dir(dir);
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	(void)unlink(tmp);
	errno = saved;
	return -1;
}

int
fs_read_file(const char *path, char **buf_r, size_t *len_r, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t off = 0;
	int saved;

	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto fail;
	if ((size_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		goto fail;
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto fail;
		}
		off += (size_t)n;
	}
	buf[off] = '\0';
	close(fd);
	*buf_r = buf;
	*len_r = off;
	return 0;
fail:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return -1;
}

void
fs_random_hex(char *buf, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[64];

	if (n > sizeof(raw) * 2)
		n = sizeof(raw) * 2;
	if (RAND_bytes(raw, (int)((n + 1) / 2)) != 1)
		abort(); /* no randomness: nothing safe to do */
	for (size_t i = 0; i < n; i++)
		buf[i] = hex[(raw[i / 2] >> ((i % 2) ? 0 : 4)) & 0xf];
	buf[n] = '\0';
}

int
fs_path(char *buf, size_t buflen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, buflen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= buflen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

struct fs_barrier {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fd;
	uint64_t started, done;   /* syncfs calls begun, finished */
	bool syncing;
	int last_errno;           /* of the last finished flush, 0 if it worked */
};

struct fs_barrier *
fs_barrier_new(const char *path)
{
	struct fs_barrier *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->fd == -1) {
		free(b);
		return NULL;
	}
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	return b;
}

int
fs_barrier_wait(struct fs_barrier *b)
{
	uint64_t target;
	int err = 0;

	pthread_mutex_lock(&b->lock);
	/* A flush already running may have missed our writes: wait for the next. */
	target = b->started + 1;
	while (b->done < target) {
		if (!b->syncing) {
			uint64_t mine = ++b->started;

			b->syncing = true;
			pthread_mutex_unlock(&b->lock);
			err = syncfs(b->fd) == -1 ? errno : 0;
			pthread_mutex_lock(&b->lock);
			b->done = mine;
			b->last_errno = err;
			b->syncing = false;
			pthread_cond_broadcast(&b->cond);
		} else {
			pthread_cond_wait(&b->cond, &b->lock);
		}
	}
	err = b->last_errno;
	pthread_mutex_unlock(&b->lock);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

unsigned long
fs_barrier_flushes(struct fs_barrier *b)
{
	unsigned long n;

	pthread_mutex_lock(&b->lock);
	n = (unsigned long)b->done;
	pthread_mutex_unlock(&b->lock);
	return n;
}

void
fs_barrier_free(struct fs_barrier **bp)
{
	struct fs_barrier *b = *bp;

	if (b == NULL)
		return;
	*bp = NULL;
	close(b->fd);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b);
}
