/*
 * log.h: one event per line, key=value, to stderr (the daemon runs in the
 * foreground; systemd/journald or a redirect keeps the file).
 * Trusts nothing it prints: client text goes through log_escape() first.
 */
#ifndef BULWARK_LOG_H
#define BULWARK_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_ERROR,
};

/* Set the program name printed on each line and the lowest level shown. */
void log_init(const char *progname, enum log_level min_level);
void log_set_level(enum log_level min_level);
/* Parse "debug", "info", "warning", "error"; -1 if unknown. */
int log_level_parse(const char *name);

void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
/* log_warn appends ": strerror(errno)"; log_warnx does not. */
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_error(const char *fmt, ...) LOG_PRINTF(1, 2);
/* A warning-level line without the level word: for stock fail2ban filters
 * (dovecot's) that expect the text right after "prog[pid] ". */
void log_compat(const char *fmt, ...) LOG_PRINTF(1, 2);
/* Log every queued OpenSSL error with the given context, then clear the queue. */
void log_ssl_errors(const char *context);
/* Broken start-up or impossible state: log and exit(1). */
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));

/*
 * Copy at most srclen bytes of untrusted text into dst as a printable,
 * log-safe token: bytes outside 0x21..0x7e, '"', '\\' and '=' become \xHH,
 * and the output is capped at dstlen-1 characters (a trailing "..." marks a
 * cut). Always NUL-terminates. Returns dst, so it can sit in an argument list.
 */
char *log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);
#define LOG_ESCAPE_MAX 128

#endif
