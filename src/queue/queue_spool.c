/*
 * queue_spool.c: spool files. One file per message, data_dir/queue/ID:
 *
 *   bulwark-queue 1
 *   id 0123456789abcdef
 *   time 1764230000
 *   client 127.0.0.9
 *   helo mx.example.org
 *   sender alice@example.org        (empty after "sender " for <>)
 *   flags 8bitmime smtputf8
 *   rcpt L bob@example.test         (L local account, R remote address)
 *   data
 *   <the message, CRLF line ends, Received: header first>
 *
 * Values are %XX-encoded (bytes <= 0x20, 0x7f and '%'), so a line is always
 * one field. The file is written in queue/tmp/, fsynced, renamed into queue/
 * and the directory fsynced before the client hears 250.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "core/pool.h"
#include "queue/queue_private.h"

#define QUEUE_STREAM_THRESHOLD (256 * 1024)

struct queue_writer {
	struct queue *q;
	char id[QUEUE_ID_LEN + 1];
	int fd;
	char tmppath[PATH_MAX];
	char *buf;
	size_t len, cap;
	int result;
	int saved_errno;
	bool published;           /* renamed into queue/: never unlink the tmp name */
	queue_commit_cb *cb;
	void *arg;
};

void
queue_new_id(char id_r[QUEUE_ID_LEN + 1])
{
	fs_random_hex(id_r, QUEUE_ID_LEN);
}

void
queue_envelope_clear(struct queue_envelope *env)
{
	free(env->sender);
	free(env->client_ip);
	free(env->helo);
	for (size_t i = 0; i < env->nrcpts; i++)
		free(env->rcpts[i].address);
	free(env->rcpts);
	memset(env, 0, sizeof(*env));
}

void
queue_value_encode(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : ""); *p; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '%')
			fprintf(f, "%%%02X", *p);
		else
			fputc(*p, f);
	}
}

char *
queue_envelope_format(const struct queue_envelope *env, size_t *len_r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	fprintf(f, "bulwark-queue 1\nid %s\ntime %lld\nclient ", env->id, (long long)env->ctime);
	queue_value_encode(f, env->client_ip);
	fputs("\nhelo ", f);
	queue_value_encode(f, env->helo);
	fputs("\nsender ", f);
	queue_value_encode(f, env->sender);
	fputs("\nflags", f);
	if (env->flags & QUEUE_FLAG_8BITMIME)
		fputs(" 8bitmime", f);
	if (env->flags & QUEUE_FLAG_SMTPUTF8)
		fputs(" smtputf8", f);
	if (env->flags & QUEUE_FLAG_SIGN)
		fputs(" sign", f);
	fputc('\n', f);
	for (size_t i = 0; i < env->nrcpts; i++) {
		fprintf(f, "rcpt %c ", env->rcpts[i].local ? 'L' : 'R');
		queue_value_encode(f, env->rcpts[i].address);
		fputc('\n', f);
	}
	fputs("data\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len_r = len;
	return buf;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *
queue_value_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			out[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else {
			out[o++] = s[i];
		}
		if (out[o - 1] == '\0') {
			/* format never writes a NUL: a value cut short is a corrupt file */
			free(out);
			return NULL;
		}
	}
	out[o] = '\0';
	return out;
}

/* " 8bitmime smtputf8": each known word once; anything else refused. */
static int
queue_flags_parse(const char *p, size_t n, unsigned *flags_r)
{
	static const struct { const char *word; unsigned flag; } words[] = {
		{ "8bitmime", QUEUE_FLAG_8BITMIME },
		{ "smtputf8", QUEUE_FLAG_SMTPUTF8 },
		{ "sign", QUEUE_FLAG_SIGN },
	};
	const char *end = p + n;

	while (p < end) {
		const char *w;
		size_t wl, i;

		if (*p++ != ' ')
			return -1;
		w = p;
		while (p < end && *p != ' ')
			p++;
		wl = (size_t)(p - w);
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i].word) == wl && memcmp(words[i].word, w, wl) == 0 &&
			    !(*flags_r & words[i].flag))
				break;
		if (i == sizeof(words) / sizeof(words[0]))
			return -1;
		*flags_r |= words[i].flag;
	}
	return 0;
}

int
queue_envelope_parse(const char *buf, size_t len, struct queue_envelope *env, size_t *body_off_r)
{
	size_t off = 0;
	bool magic = false;

	memset(env, 0, sizeof(*env));
	while (off < len) {
		const char *line = buf + off, *nl = memchr(line, '\n', len - off);
		size_t n;

		if (nl == NULL)
			break;
		n = (size_t)(nl - line);
		off += n + 1;
		if (!magic) {
			if (n != 15 || memcmp(line, "bulwark-queue 1", 15) != 0)
				break;
			magic = true;
		} else if (n == 4 && memcmp(line, "data", 4) == 0) {
			if (env->id[0] == '\0' || env->sender == NULL || env->nrcpts == 0)
				break;
			*body_off_r = off;
			return 0;
		} else if (n == 3 + QUEUE_ID_LEN && memcmp(line, "id ", 3) == 0 && env->id[0] == '\0') {
			memcpy(env->id, line + 3, QUEUE_ID_LEN);
			env->id[QUEUE_ID_LEN] = '\0';
			if (strspn(env->id, "0123456789abcdef") != QUEUE_ID_LEN)
				break;   /* the id names files: hex only */
		} else if (n > 5 && memcmp(line, "time ", 5) == 0) {
			env->ctime = strtoll(line + 5, NULL, 10);
		} else if (n >= 7 && memcmp(line, "client ", 7) == 0 && env->client_ip == NULL) {
			if ((env->client_ip = queue_value_decode(line + 7, n - 7)) == NULL)
				break;
		} else if (n >= 5 && memcmp(line, "helo ", 5) == 0 && env->helo == NULL) {
			if ((env->helo = queue_value_decode(line + 5, n - 5)) == NULL)
				break;
		} else if (n >= 7 && memcmp(line, "sender ", 7) == 0 && env->sender == NULL) {
			if ((env->sender = queue_value_decode(line + 7, n - 7)) == NULL)
				break;
		} else if (n >= 5 && memcmp(line, "flags", 5) == 0 && queue_flags_parse(line + 5, n - 5, &env->flags) == 0) {
			;
		} else if (n > 7 && memcmp(line, "rcpt ", 5) == 0 && line[6] == ' ' &&
		    (line[5] == 'L' || line[5] == 'R')) {
			struct queue_rcpt *r = reallocarray(env->rcpts, env->nrcpts + 1, sizeof(*r));

			if (r == NULL)
				break;
			env->rcpts = r;
			r[env->nrcpts] = (struct queue_rcpt){
				.address = queue_value_decode(line + 7, n - 7),
				.local = line[5] == 'L',
			};
			if (r[env->nrcpts++].address == NULL || r[env->nrcpts - 1].address[0] == '\0')
				break;
		} else {
			break;   /* unknown line: refuse rather than guess */
		}
	}
	queue_envelope_clear(env);
	return -1;
}

static int
writer_append(struct queue_writer *w, const void *data, size_t len)
{
	if (w->len + len > w->cap) {
		size_t cap = w->cap > 0 ? w->cap : 8192;
		char *nb;

		while (cap < w->len + len)
			cap *= 2;
		nb = realloc(w->buf, cap);
		if (nb == NULL)
			return -1;
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
	return 0;
}

/* Write what is buffered to the tmp file, opening it first if needed. */
static int
writer_flush(struct queue_writer *w)
{
	if (w->fd == -1) {
		w->fd = open(w->tmppath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd == -1)
			return -1;
	}
	if (fs_write_all(w->fd, w->buf, w->len) == -1)
		return -1;
	w->len = 0;
	return 0;
}

int
queue_writer_new(struct queue *q, const struct queue_envelope *env, struct queue_writer **w_r)
{
	struct queue_writer *w = calloc(1, sizeof(*w));
	char *hdr;
	size_t hdrlen;

	if (w == NULL)
		return -1;
	w->q = q;
	w->fd = -1;
	memcpy(w->id, env->id, sizeof(w->id));
	if (fs_path(w->tmppath, sizeof(w->tmppath), "%s/%s", q->tmpdir, env->id) == -1) {
		free(w);
		return -1;
	}
	hdr = queue_envelope_format(env, &hdrlen);
	if (hdr == NULL || writer_append(w, hdr, hdrlen) == -1) {
		free(hdr);
		free(w->buf);
		free(w);
		return -1;
	}
	free(hdr);
	*w_r = w;
	return 0;
}

int
queue_writer_write(struct queue_writer *w, const void *data, size_t len)
{
	if (w->result == -1)
		return -1;
	if (writer_append(w, data, len) == -1 ||
	    (w->len >= QUEUE_STREAM_THRESHOLD && writer_flush(w) == -1)) {
		w->saved_errno = errno;
		w->result = -1;
		return -1;
	}
	return 0;
}

/* Pool thread: make the message durable. */
static void
writer_commit_work(void *arg)
{
	struct queue_writer *w = arg;
	char final[PATH_MAX];

	if (w->result == -1)
		return;
	if (fs_path(final, sizeof(final), "%s/%s", w->q->dir, w->id) == -1 ||
	    writer_flush(w) == -1)
		goto fail;
	if (close(w->fd) == -1) {
		w->fd = -1;
		goto fail;
	}
	w->fd = -1;
	/* Data durable before the name appears, the name durable before 250:
	 * both through the shared barrier, so concurrent commits share flushes. */
	if (fs_barrier_wait(w->q->spool_barrier) == -1 || rename(w->tmppath, final) == -1)
		goto fail;
	if (fs_barrier_wait(w->q->spool_barrier) == -1) {
		/* The name may or may not survive a crash: never say 250 then. It
		 * will be delivered anyway if it does (a duplicate at worst). */
		w->saved_errno = errno;
		w->result = -1;
		w->published = true;
	}
	return;
fail:
	w->saved_errno = errno;
	w->result = -1;
}

static void
writer_free(struct queue_writer *w)
{
	if (w->fd != -1)
		close(w->fd);
	if (w->result == -1 && !w->published)
		(void)unlink(w->tmppath);
	free(w->buf);
	free(w);
}

/* Loop thread: tell the session, schedule the delivery. */
static void
writer_commit_done(void *arg)
{
	struct queue_writer *w = arg;

	if (w->result == -1) {
		errno = w->saved_errno;
		log_warn("event=queue.error queue_id=%s reason=commit", w->id);
	} else {
		queue_schedule_new(w->q, w->id);
	}
	w->cb(w->arg, w->result);
	writer_free(w);
}

int
queue_writer_commit(struct queue_writer **wp, queue_commit_cb *cb, void *arg)
{
	struct queue_writer *w = *wp;

	w->cb = cb;
	w->arg = arg;
	if (pool_submit(w->q->pool, writer_commit_work, writer_commit_done, w) == -1)
		return -1;   /* *wp still owned by the caller, who aborts it */
	*wp = NULL;
	return 0;
}

void
queue_writer_abort(struct queue_writer **wp)
{
	if (*wp == NULL)
		return;
	(*wp)->result = -1;
	writer_free(*wp);
	*wp = NULL;
}
