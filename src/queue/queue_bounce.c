/*
 * queue_bounce.c: delivery status notifications for mail that could not be
 * delivered (RFC 3464 multipart/report, RFC 3462 report-type
 * delivery-status), sent from the null sender so they are never bounced
 * themselves; a message whose sender is already null is never bounced.
 * Trusts the spool; remote replies are quoted only after control bytes
 * are removed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "queue/queue_private.h"

/* Copy text without control bytes (a remote reply must not forge headers). */
static void
put_clean(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		fputc(*p < 0x20 || *p == 0x7f ? ' ' : *p, f);
}

int
queue_bounce(const struct config *cfg, const struct queue_envelope *env, const char *msg,
    size_t len, const struct queue_bounce_rcpt *failed, size_t n)
{
	char date[64], boundary[40], id[QUEUE_ID_LEN + 1], *buf = NULL;
	size_t buflen = 0, hdrlen;
	time_t now = time(NULL);
	struct tm tm;
	const char *end;
	FILE *f;
	int ret;

	if (n == 0)
		return 0;
	if (env->sender == NULL || env->sender[0] == '\0') {
		log_info("event=queue.bounce_dropped queue_id=%s reason=\"null sender: never bounce a bounce\"",
		    env->id);
		return 0;
	}
	if ((f = open_memstream(&buf, &buflen)) == NULL)
		return -1;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	fs_random_hex(boundary, 24);
	fprintf(f, "Date: %s\r\nFrom: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n"
	    "\r\nThis is a MIME-encapsulated message.\r\n\r\n--%s\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	    "This is the mail system at %s.\r\n\r\n"
	    "Your message (queue id %s) could not be delivered to one or more\r\n"
	    "recipients. It is attached below.\r\n\r\n",
	    date, cfg->hostname, env->sender, boundary, boundary, cfg->hostname, env->id);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "<%s>: ", failed[i].address);
		put_clean(f, failed[i].diagnostic);
		fputs("\r\n", f);
	}
	fprintf(f, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; %s\r\nX-Bulwark-Queue-ID: %s\r\n", boundary, cfg->hostname, env->id);
	{
		time_t arrival = (time_t)env->ctime;
		char adate[64];

		localtime_r(&arrival, &tm);
		strftime(adate, sizeof(adate), "%a, %d %b %Y %H:%M:%S %z", &tm);
		fprintf(f, "Arrival-Date: %s\r\n", adate);
	}
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n",
		    failed[i].address, failed[i].status[0] != '\0' ? failed[i].status : "5.0.0");
		if (failed[i].remote_mta[0] != '\0')
			fprintf(f, "Remote-MTA: dns; %s\r\n", failed[i].remote_mta);
		fputs("Diagnostic-Code: smtp; ", f);
		put_clean(f, failed[i].diagnostic);
		fputs("\r\n", f);
	}
	/* The original's header section only (RFC 3462 text/rfc822-headers). */
	end = memmem(msg, len, "\r\n\r\n", 4);
	hdrlen = end != NULL ? (size_t)(end - msg) + 2 : len;
	fprintf(f, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
	fwrite(msg, 1, hdrlen, f);
	if (hdrlen < 2 || msg[hdrlen - 1] != '\n')
		fputs("\r\n", f);
	fprintf(f, "\r\n--%s--\r\n", boundary);
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	ret = queue_inject(cfg, "", env->sender, buf, buflen, id);
	if (ret == 0)
		log_info("event=queue.bounce queue_id=%s bounce_id=%s to=<%s> recipients=%zu",
		    env->id, id, env->sender, n);
	else
		log_warn("event=queue.error queue_id=%s reason=bounce", env->id);
	free(buf);
	return ret;
}
