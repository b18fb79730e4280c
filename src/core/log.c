/*
 * log.c: the single place that writes log lines. One line per event:
 *   2026-11-27T07:50:00.123Z bulwarkd[123] info: event=... key=value
 * Callers pass client text through log_escape(); we add nothing else.
 */
#include "core/log.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "bulwark";
static enum log_level log_min_level = LOG_LEVEL_INFO;
static _Thread_local int log_no_level;   /* log_compat: the next line has no level word */

static const char *const level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_ERROR] = "error",
};

void
log_init(const char *progname, enum log_level min_level)
{
	log_progname = progname;
	log_min_level = min_level;
}

void
log_set_level(enum log_level min_level)
{
	log_min_level = min_level;
}

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

static void log_vwrite(enum log_level level, const char *suffix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
log_vwrite(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char line[4096];
	struct timeval tv;
	struct tm tm;
	int n, m;

	if (level < log_min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (long)(tv.tv_usec / 1000), log_progname, (long)getpid(),
	    log_no_level ? "" : level_names[level], log_no_level ? "" : ": ");
	if (n < 0)
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 2 - (suffix ? 0 : 0);
	if (suffix != NULL) {
		m = snprintf(line + n, sizeof(line) - 1 - (size_t)n, " error=\"%s\"", suffix);
		if (m > 0)
			n = (size_t)(n + m) >= sizeof(line) - 1 ? (int)sizeof(line) - 2 : n + m;
	}
	line[n++] = '\n';
	/* One write(2) per line so lines from threads never interleave. */
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

#define LOG_FN(name, level, with_errno)                        \
	void name(const char *fmt, ...)                        \
	{                                                      \
		va_list ap;                                    \
		const char *err = (with_errno) ? strerror(errno) : NULL; \
		va_start(ap, fmt);                             \
		log_vwrite(level, err, fmt, ap);               \
		va_end(ap);                                    \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_warn, LOG_LEVEL_WARNING, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARNING, 0)
LOG_FN(log_error, LOG_LEVEL_ERROR, 0)

void
log_compat(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_no_level = 1;
	log_vwrite(LOG_LEVEL_WARNING, NULL, fmt, ap);
	log_no_level = 0;
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	const char *err = strerror(errno);

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, err, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_ssl_errors(const char *context)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_warnx("event=tls.error context=%s detail=\"%s\"", context, buf);
	}
}

char *
log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dstlen == 0)
		return dst;
	for (size_t i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];
		size_t need = (c < 0x21 || c > 0x7e || c == '"' || c == '\\' || c == '=') ? 4 : 1;

		if (o + need + 3 >= dstlen) {
			if (dstlen >= 4) {
				o = o > dstlen - 4 ? dstlen - 4 : o;
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 4) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
	return dst;
}
