/*
 * delivery.h: local delivery into Maildir (data_dir/mail/DOMAIN/LOCAL/).
 * Thread-safe (no shared state): runs on the worker pool.
 */
#ifndef BULWARK_DELIVERY_H
#define BULWARK_DELIVERY_H

#include <stddef.h>

/*
 * Deliver msg (wire format, CRLF line ends) to the account address: write
 * tmp/UNIQUE with a Return-Path header first and LF line ends (as Postfix's
 * virtual(8) and Dovecot store Maildir), fsync, rename into new/, fsync new/.
 * The Maildir is created (0700) if missing. 0 ok; -1 with *error_r a static
 * reason ("disk full"...) and errno set.
 */
int delivery_maildir(const char *data_dir, const char *hostname, const char *address,
    const char *return_path, const char *msg, size_t len, const char **error_r);

/*
 * Delivery in two steps, for group commit (see fs_barrier in fsutil.h):
 * write tmp/UNIQUE without fsync, make the data durable (one barrier for a
 * whole batch), publish by renaming into new/, make that durable (another
 * barrier). A crash before publishing leaves only tmp/ debris.
 */
struct delivery_file {
	char tmp[4096];
	char final[4096];
};
int delivery_maildir_write(const char *data_dir, const char *hostname, const char *address,
    const char *return_path, const char *msg, size_t len, struct delivery_file *f_r,
    const char **error_r);
/* rename tmp -> new. 0 ok, -1 errno (the tmp file is removed). */
int delivery_maildir_publish(struct delivery_file *f);
/* Drop an unpublished file. */
void delivery_maildir_discard(struct delivery_file *f);

/*
 * The Maildir path of address: DATA_DIR/mail/DOMAIN/LOCAL with the local
 * part lower-cased and every byte outside [a-z0-9._+-] (and a leading '.')
 * written as %XX, so no address can climb out of mail/. 0 ok, -1 too long.
 */
int delivery_maildir_path(const char *data_dir, const char *address, char *buf, size_t buflen);

#endif
