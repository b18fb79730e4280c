/*
 * fsutil.h: durable-file helpers (OpenSMTPD queue_fs.c style): create with
 * O_EXCL and 0600, write everything, fsync, rename, fsync the directory.
 */
#ifndef BULWARK_FSUTIL_H
#define BULWARK_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p with mode for each created component. 0 ok, -1 errno set. */
int fs_mkdir_p(const char *path, mode_t mode);
/* write(2) all of buf, retrying on EINTR and short writes. 0 ok, -1 errno. */
int fs_write_all(int fd, const void *buf, size_t len);
/* open the directory and fsync it. 0 ok, -1 errno. */
int fs_fsync_dir(const char *dir);
/*
 * Write a whole file durably: dir/.name.tmp (O_EXCL, mode), fsync, rename to
 * dir/name, fsync dir. 0 ok, -1 errno (the temporary file is removed).
 */
int fs_write_file_durable(const char *dir, const char *name, const void *buf,
    size_t len, mode_t mode);
/* The same, the file owned by uid:gid ((uid_t)-1: leave it to the caller's). */
int fs_write_file_durable_owned(const char *dir, const char *name, const void *buf,
    size_t len, mode_t mode, uid_t uid, gid_t gid);
/* Read a whole file (NUL-terminated for convenience). 0 ok, -1 errno. */
int fs_read_file(const char *path, char **buf_r, size_t *len_r, size_t max);
/* snprintf into a path buffer; -1 (errno ENAMETOOLONG) when it does not fit. */
int fs_path(char *buf, size_t buflen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Fill buf with n random hex characters + NUL (OpenSSL RAND). */
void fs_random_hex(char *buf, size_t n);

/*
 * Group commit. Callers that need what they wrote so far to be durable call
 * fs_barrier_wait(): it returns after a syncfs(2) of the filesystem that
 * STARTED after the call began, so many callers (worker threads) share one
 * flush instead of paying an fsync each. Thread-safe.
 */
struct fs_barrier;
/* A barrier for the filesystem holding path. NULL with errno on failure. */
struct fs_barrier *fs_barrier_new(const char *path);
/* 0 when everything written before the call is on stable storage, -1 errno. */
int fs_barrier_wait(struct fs_barrier *b);
/* Flushes done so far (for tests and metrics). */
unsigned long fs_barrier_flushes(struct fs_barrier *b);
void fs_barrier_free(struct fs_barrier **b);

#endif
