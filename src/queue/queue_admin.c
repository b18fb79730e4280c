/*
 * queue_admin.c: what bulwarkctl does to the spool (docs/queue.md, "Admin").
 * Files only: each move is one atomic rename, and the running daemon drops
 * a vanished message from its schedule, picks up queue/incoming/ and reads
 * queue/FLUSH and queue/LOCKDOWN every 2 s (queue_scheduler.c). Trusts the
 * operator, not the spool: ids are checked before they name a file, every
 * read is bounded, nothing follows a symlink or opens a FIFO.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "queue/queue_admin.h"
#include "queue/queue_private.h"

#define QA_ENVELOPE_MAX (1024 * 1024)  /* the scheduler's header slack */
#define QA_STATE_MAX (1024 * 1024)
#define QA_SHOW_BYTES (128 * 1024)     /* message bytes read for queue show */
#define QA_CHUNK 16384
#define QA_LOCKDOWN_MAX 4096

struct qa_paths {
	char queue[PATH_MAX];
	char hold[PATH_MAX];
	char incoming[PATH_MAX];
};

static int qa_fail(char **error_r, const char *fmt, ...) LOG_PRINTF(2, 3);

/* Set *error_r (NULL when out of memory); returns -1. */
static int
qa_fail(char **error_r, const char *fmt, ...)
{
	va_list ap;

	if (error_r == NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(error_r, fmt, ap) < 0)
		*error_r = NULL;
	va_end(ap);
	return -1;
}

static int
qa_paths_init(const char *data_dir, struct qa_paths *p, char **error_r)
{
	if (fs_path(p->queue, sizeof(p->queue), "%s/queue", data_dir) == -1 ||
	    fs_path(p->hold, sizeof(p->hold), "%s/queue/hold", data_dir) == -1 ||
	    fs_path(p->incoming, sizeof(p->incoming), "%s/queue/incoming", data_dir) == -1)
		return qa_fail(error_r, "data_dir %s: path too long", data_dir);
	return 0;
}

static const char *
qa_place_dir(const struct qa_paths *p, enum queue_admin_place place)
{
	switch (place) {
	case QUEUE_ADMIN_IN_HOLD: return p->hold;
	case QUEUE_ADMIN_IN_INCOMING: return p->incoming;
	default: return p->queue;
	}
}

/* A message in incoming/ keeps its progress as queue/ID.state (release puts it there). */
static const char *
qa_state_dir(const struct qa_paths *p, enum queue_admin_place place)
{
	return place == QUEUE_ADMIN_IN_HOLD ? p->hold : p->queue;
}

/*
 * Files we create, owned like queue/ when root runs us for a daemon that
 * runs as its own user (as queue_notice.c does). (uid_t)-1: leave them.
 */
static void
qa_owner(const struct qa_paths *p, uid_t *uid_r, gid_t *gid_r)
{
	struct stat st;

	*uid_r = (uid_t)-1;
	*gid_r = (gid_t)-1;
	if (geteuid() == 0 && stat(p->queue, &st) == 0 && st.st_uid != 0) {
		*uid_r = st.st_uid;
		*gid_r = st.st_gid;
	}
}

/* hold/ or incoming/ when an older daemon never made it. */
static int
qa_mkdir(const struct qa_paths *p, const char *dir)
{
	uid_t uid;
	gid_t gid;

	if (mkdir(dir, 0700) == -1)
		return errno == EEXIST ? 0 : -1;
	qa_owner(p, &uid, &gid);
	if (uid != (uid_t)-1 && chown(dir, uid, gid) == -1)
		return -1;
	return 0;
}

bool
queue_admin_id_valid(const char *id)
{
	if (id == NULL || strlen(id) != QUEUE_ID_LEN)
		return false;
	for (const char *p = id; *p != '\0'; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

const char *
queue_admin_state_name(enum queue_admin_state state)
{
	switch (state) {
	case QUEUE_ADMIN_QUEUED: return "queued";
	case QUEUE_ADMIN_HELD: return "held";
	case QUEUE_ADMIN_DEFERRED: return "deferred";
	case QUEUE_ADMIN_WAITING_REMOTE: return "waiting-remote";
	case QUEUE_ADMIN_CORRUPT: return "corrupt";
	}
	return "?";
}

bool
queue_admin_remote_pending(const struct queue_admin_msg *msg)
{
	for (size_t i = 0; i < msg->env.nrcpts; i++)
		if (!msg->env.rcpts[i].local && !msg->env.rcpts[i].done)
			return true;
	return false;
}

void
queue_admin_msg_clear(struct queue_admin_msg *msg)
{
	queue_envelope_clear(&msg->env);
	free(msg->last_error);
	for (size_t i = 0; i < msg->nheaders; i++)
		free(msg->headers[i]);
	free(msg->headers);
	memset(msg, 0, sizeof(*msg));
}

void
queue_admin_list_free(struct queue_admin_msg **msgs, size_t n)
{
	if (*msgs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		queue_admin_msg_clear(&(*msgs)[i]);
	free(*msgs);
	*msgs = NULL;
}

/* ---- reading ---- */

/*
 * Read fd until the envelope ends (its "data" line) and then up to extra
 * bytes of the message; never more than QA_ENVELOPE_MAX + extra. The buffer
 * is NUL-terminated. 0, or -1 with errno.
 */
static int
qa_read_head(int fd, size_t extra, char **buf_r, size_t *len_r)
{
	size_t len = 0, cap = 0, want = QA_ENVELOPE_MAX, searched = 0;
	bool envelope_done = false;
	char *buf = NULL;

	for (;;) {
		ssize_t got;

		if (len == cap) {
			size_t ncap = cap == 0 ? QA_CHUNK : cap * 2;
			char *nb;

			if (ncap > want)
				ncap = want;
			if ((nb = realloc(buf, ncap + 1)) == NULL)
				goto fail;
			buf = nb;
			cap = ncap;
		}
		got = read(fd, buf + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto fail;
		if (got == 0)
			break;
		len += (size_t)got;
		if (!envelope_done) {
			/* "\ndata\n" may straddle two reads: look back 5 bytes. */
			size_t from = searched > 5 ? searched - 5 : 0;
			const char *end = memmem(buf + from, len - from, "\ndata\n", 6);

			searched = len;
			if (end != NULL) {
				envelope_done = true;
				want = (size_t)(end - buf) + 6 + extra;
			}
		}
		if (len >= want)
			break;
	}
	if (buf == NULL && (buf = malloc(1)) == NULL)
		return -1;
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	return 0;
fail:
	free(buf);
	return -1;
}

/* ID.state: "done N" (recipient N delivered), "attempts N", "error ENC". */
static int
qa_state_load(const char *dir, struct queue_admin_msg *msg)
{
	char path[PATH_MAX + 32], *buf, *line, *next;
	size_t len;

	if (fs_path(path, sizeof(path), "%s/%s.state", dir, msg->id) == -1)
		return -1;
	if (fs_read_file(path, &buf, &len, QA_STATE_MAX) == -1)
		return errno == ENOENT ? 0 : -1;
	for (line = buf; line < buf + len; line = next) {
		char *nl = memchr(line, '\n', (size_t)(buf + len - line)), *end;
		unsigned long v;

		next = nl != NULL ? nl + 1 : buf + len;
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(line, "done ", 5) == 0) {
			v = strtoul(line + 5, &end, 10);
			if (*end == '\0' && v < msg->env.nrcpts)
				msg->env.rcpts[v].done = true;
		} else if (strncmp(line, "attempts ", 9) == 0) {
			v = strtoul(line + 9, &end, 10);
			if (*end == '\0')
				msg->attempts = v > UINT_MAX ? UINT_MAX : (unsigned)v;
		} else if (strncmp(line, "error ", 6) == 0) {
			free(msg->last_error);
			if ((msg->last_error = queue_value_decode(line + 6, strlen(line + 6))) == NULL) {
				free(buf);
				return -1;
			}
		}
	}
	free(buf);
	return 0;
}

static enum queue_admin_state
qa_state_of(const struct queue_admin_msg *msg)
{
	bool local_left = false;

	if (msg->place == QUEUE_ADMIN_IN_HOLD)
		return QUEUE_ADMIN_HELD;
	if (msg->place == QUEUE_ADMIN_IN_INCOMING)
		return QUEUE_ADMIN_QUEUED;   /* the daemon has not looked at it yet */
	if (msg->attempts > 0 || msg->last_error != NULL)
		return QUEUE_ADMIN_DEFERRED;
	for (size_t i = 0; i < msg->env.nrcpts; i++)
		if (msg->env.rcpts[i].local && !msg->env.rcpts[i].done)
			local_left = true;
	if (!local_left && queue_admin_remote_pending(msg))
		return QUEUE_ADMIN_WAITING_REMOTE;
	return QUEUE_ADMIN_QUEUED;
}

/* The header lines at the start of the message, up to the first empty line. */
static int
qa_headers(struct queue_admin_msg *msg, const char *p, const char *end)
{
	while (p < end && msg->nheaders < QUEUE_ADMIN_SHOW_HEADERS) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		char **nh;

		if (le > p && le[-1] == '\r')
			le--;
		if (le == p)
			break;
		if ((nh = reallocarray(msg->headers, msg->nheaders + 1, sizeof(*nh))) == NULL)
			return -1;
		msg->headers = nh;
		/* strndup stops at a NUL byte: such a line is shown cut, not hidden. */
		if ((nh[msg->nheaders] = strndup(p, (size_t)(le - p))) == NULL)
			return -1;
		msg->nheaders++;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}

/*
 * Load the message id at place (headers too when extra > 0). 1 loaded,
 * 0 no such regular file (it moved or went meanwhile), -1 with errno.
 */
static int
qa_load(const struct qa_paths *p, enum queue_admin_place place, const char *id, size_t extra,
    struct queue_admin_msg *msg)
{
	char path[PATH_MAX + 32], *buf = NULL;
	size_t len = 0, body = 0;
	struct stat st;
	int fd, saved;

	memset(msg, 0, sizeof(*msg));
	memcpy(msg->id, id, QUEUE_ID_LEN + 1);
	msg->place = place;
	if (fs_path(path, sizeof(path), "%s/%s", qa_place_dir(p, place), id) == -1)
		return -1;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT || errno == ELOOP ? 0 : -1;
	if (fstat(fd, &st) == -1 || (S_ISREG(st.st_mode) &&
	    qa_read_head(fd, extra, &buf, &len) == -1)) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	if (!S_ISREG(st.st_mode))
		return 0;   /* not a message, whatever its name */
	if (queue_envelope_parse(buf, len, &msg->env, &body) == -1) {
		msg->state = QUEUE_ADMIN_CORRUPT;
		msg->size = (size_t)st.st_size;
		free(buf);
		return 1;
	}
	msg->size = (size_t)st.st_size > body ? (size_t)st.st_size - body : 0;
	if (qa_state_load(qa_state_dir(p, place), msg) == -1 ||
	    (extra > 0 && qa_headers(msg, buf + body, buf + len) == -1)) {
		saved = errno;
		free(buf);
		queue_admin_msg_clear(msg);
		errno = saved;
		return -1;
	}
	msg->state = qa_state_of(msg);
	free(buf);
	return 1;
}

/* Where the message id is now (hold/, incoming/, queue/), or -1. */
static int
qa_locate(const struct qa_paths *p, const char *id, enum queue_admin_place *place_r)
{
	static const enum queue_admin_place order[] = {
		QUEUE_ADMIN_IN_HOLD, QUEUE_ADMIN_IN_INCOMING, QUEUE_ADMIN_IN_QUEUE,
	};
	char path[PATH_MAX + 32];
	struct stat st;

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (fs_path(path, sizeof(path), "%s/%s", qa_place_dir(p, order[i]), id) == 0 &&
		    lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			*place_r = order[i];
			return 0;
		}
	}
	return -1;
}

static int
qa_cmp_id(const void *a, const void *b)
{
	const struct queue_admin_msg *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	/* QUEUE_ADMIN_IN_QUEUE sorts first: see queue_admin_list. */
	return c != 0 ? c : (int)x->place - (int)y->place;
}

static int
qa_cmp_age(const void *a, const void *b)
{
	const struct queue_admin_msg *x = a, *y = b;

	if (x->env.ctime != y->env.ctime)
		return x->env.ctime < y->env.ctime ? -1 : 1;
	return strcmp(x->id, y->id);
}

int
queue_admin_list(const char *data_dir, struct queue_admin_msg **msgs_r, size_t *n_r,
    char **error_r)
{
	/* In the order a released message travels, so a move is seen at least
	 * once; a message seen twice is shown once. */
	static const enum queue_admin_place order[] = {
		QUEUE_ADMIN_IN_HOLD, QUEUE_ADMIN_IN_INCOMING, QUEUE_ADMIN_IN_QUEUE,
	};
	struct queue_admin_msg *msgs = NULL;
	size_t n = 0, cap = 0, kept = 0;
	struct qa_paths p;

	*msgs_r = NULL;
	*n_r = 0;
	if (qa_paths_init(data_dir, &p, error_r) == -1)
		return -1;
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		const char *dir = qa_place_dir(&p, order[k]);
		struct dirent *de;
		DIR *d = opendir(dir);

		if (d == NULL) {
			if (errno == ENOENT)
				continue;
			qa_fail(error_r, "cannot read %s: %s", dir, strerror(errno));
			goto fail;
		}
		while ((de = readdir(d)) != NULL) {
			int rc;

			if (!queue_admin_id_valid(de->d_name))
				continue;
			if (n == cap) {
				size_t ncap = cap == 0 ? 64 : cap * 2;
				struct queue_admin_msg *nm = reallocarray(msgs, ncap, sizeof(*nm));

				if (nm == NULL) {
					closedir(d);
					qa_fail(error_r, "out of memory");
					goto fail;
				}
				msgs = nm;
				cap = ncap;
			}
			if ((rc = qa_load(&p, order[k], de->d_name, 0, &msgs[n])) == -1) {
				qa_fail(error_r, "cannot read %s/%s: %s", dir, de->d_name,
				    strerror(errno));
				closedir(d);
				goto fail;
			}
			n += (size_t)rc;
		}
		closedir(d);
	}
	/* A message moved between two directory reads is seen twice: keep
	 * the place seen last (the later scan), queue/ before incoming/ before hold/. */
	if (n > 1)
		qsort(msgs, n, sizeof(*msgs), qa_cmp_id);
	for (size_t i = 0; i < n; i++) {
		if (kept > 0 && strcmp(msgs[kept - 1].id, msgs[i].id) == 0) {
			queue_admin_msg_clear(&msgs[i]);
			continue;
		}
		if (kept != i)
			msgs[kept] = msgs[i];
		kept++;
	}
	n = kept;
	if (n > 1)
		qsort(msgs, n, sizeof(*msgs), qa_cmp_age);
	*msgs_r = msgs;
	*n_r = n;
	return 0;
fail:
	queue_admin_list_free(&msgs, n);
	return -1;
}

int
queue_admin_show(const char *data_dir, const char *id, struct queue_admin_msg *msg_r,
    char **error_r)
{
	enum queue_admin_place place;
	struct qa_paths p;

	memset(msg_r, 0, sizeof(*msg_r));
	if (!queue_admin_id_valid(id))
		return qa_fail(error_r, "invalid queue id (16 lowercase hex digits)");
	if (qa_paths_init(data_dir, &p, error_r) == -1)
		return -1;
	/* Twice: the daemon may move it (incoming/ to queue/) between the two looks. */
	for (int tries = 0; tries < 2; tries++) {
		int rc;

		if (qa_locate(&p, id, &place) == -1)
			return 0;
		if ((rc = qa_load(&p, place, id, QA_SHOW_BYTES, msg_r)) == -1)
			return qa_fail(error_r, "cannot read message %s: %s", id, strerror(errno));
		if (rc == 1)
			return 1;
	}
	return 0;
}

/* ---- changing ---- */

static int
qa_rename(const char *fromdir, const char *todir, const char *id, const char *suffix)
{
	char from[PATH_MAX + 32], to[PATH_MAX + 32];

	if (fs_path(from, sizeof(from), "%s/%s%s", fromdir, id, suffix) == -1 ||
	    fs_path(to, sizeof(to), "%s/%s%s", todir, id, suffix) == -1)
		return -1;
	return rename(from, to);
}

/* 1 unlinked, 0 there was nothing, -1 with errno. */
static int
qa_unlink(const char *dir, const char *id, const char *suffix)
{
	char path[PATH_MAX + 32];

	if (fs_path(path, sizeof(path), "%s/%s%s", dir, id, suffix) == -1)
		return -1;
	if (unlink(path) == 0)
		return 1;
	return errno == ENOENT ? 0 : -1;
}

static bool
qa_exists(const char *dir, const char *id)
{
	char path[PATH_MAX + 32];
	struct stat st;

	return fs_path(path, sizeof(path), "%s/%s", dir, id) == 0 && lstat(path, &st) == 0;
}

/*
 * Hold: the state file first, then the message, as the daemon does at a
 * lockdown (it forgets a message whose file vanished). *done_r stays false
 * when the message was held already or went meanwhile.
 */
static int
qa_hold(const struct qa_paths *p, const char *id, enum queue_admin_place place, bool *done_r,
    char **error_r)
{
	int saved;

	*done_r = false;
	if (place == QUEUE_ADMIN_IN_HOLD)
		return 0;
	if (qa_mkdir(p, p->hold) == -1)
		return qa_fail(error_r, "cannot create %s: %s", p->hold, strerror(errno));
	if (qa_rename(p->queue, p->hold, id, ".state") == -1 && errno != ENOENT)
		return qa_fail(error_r, "cannot hold %s: %s", id, strerror(errno));
	if (qa_rename(qa_place_dir(p, place), p->hold, id, "") == 0 ||
	    (errno == ENOENT && place == QUEUE_ADMIN_IN_INCOMING &&
	    qa_rename(p->queue, p->hold, id, "") == 0)) {   /* picked up meanwhile */
		*done_r = true;
		return 0;
	}
	saved = errno;
	if (saved == ENOENT) {
		/* Delivered or deleted meanwhile: its state file has no message. */
		if (!qa_exists(p->hold, id))
			(void)qa_unlink(p->hold, id, ".state");
		return 0;
	}
	(void)qa_rename(p->hold, p->queue, id, ".state");
	return qa_fail(error_r, "cannot hold %s: %s", id, strerror(saved));
}

/* Release: the state file back into queue/, the message into incoming/. */
static int
qa_release(const struct qa_paths *p, const char *id, enum queue_admin_place place,
    bool *done_r, char **error_r)
{
	int saved;

	*done_r = false;
	if (place != QUEUE_ADMIN_IN_HOLD)
		return 0;
	if (qa_mkdir(p, p->incoming) == -1)
		return qa_fail(error_r, "cannot create %s: %s", p->incoming, strerror(errno));
	if (qa_rename(p->hold, p->queue, id, ".state") == -1 && errno != ENOENT)
		return qa_fail(error_r, "cannot release %s: %s", id, strerror(errno));
	if (qa_rename(p->hold, p->incoming, id, "") == 0) {
		*done_r = true;
		return 0;
	}
	saved = errno;
	if (saved == ENOENT) {
		/* Released or deleted by someone else meanwhile. */
		if (!qa_exists(p->incoming, id) && !qa_exists(p->queue, id))
			(void)qa_unlink(p->queue, id, ".state");
		return 0;
	}
	(void)qa_rename(p->queue, p->hold, id, ".state");
	return qa_fail(error_r, "cannot release %s: %s", id, strerror(saved));
}

/* Delete: the message wherever it is, then its state files. */
static int
qa_delete(const struct qa_paths *p, const char *id, bool *done_r, char **error_r)
{
	const char *const msgdirs[] = { p->queue, p->incoming, p->hold };
	const char *const statedirs[] = { p->queue, p->hold };
	int rc;

	*done_r = false;
	for (size_t i = 0; i < sizeof(msgdirs) / sizeof(msgdirs[0]); i++) {
		if ((rc = qa_unlink(msgdirs[i], id, "")) == -1)
			return qa_fail(error_r, "cannot delete %s/%s: %s", msgdirs[i], id,
			    strerror(errno));
		*done_r |= rc == 1;
	}
	for (size_t i = 0; i < sizeof(statedirs) / sizeof(statedirs[0]); i++)
		if (qa_unlink(statedirs[i], id, ".state") == -1)
			return qa_fail(error_r, "cannot delete %s/%s.state: %s", statedirs[i], id,
			    strerror(errno));
	return 0;
}

static int
qa_act(const struct qa_paths *p, enum queue_admin_action action, const char *id,
    enum queue_admin_place place, bool *done_r, char **error_r)
{
	switch (action) {
	case QUEUE_ADMIN_HOLD: return qa_hold(p, id, place, done_r, error_r);
	case QUEUE_ADMIN_RELEASE: return qa_release(p, id, place, done_r, error_r);
	case QUEUE_ADMIN_DELETE: return qa_delete(p, id, done_r, error_r);
	}
	return qa_fail(error_r, "unknown action");
}

/* Make the moves durable: a hold that a crash undoes would send the mail. */
static int
qa_sync(const struct qa_paths *p, char **error_r)
{
	const char *const dirs[] = { p->queue, p->hold, p->incoming };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (fs_fsync_dir(dirs[i]) == -1 && errno != ENOENT)
			return qa_fail(error_r, "cannot sync %s: %s", dirs[i], strerror(errno));
	return 0;
}

/* The envelope sender as the admin may write it: "<a@b>" is "a@b", "<>" is "". */
static bool
qa_sender_matches(const char *want, const char *sender)
{
	size_t n = strlen(want);

	if (n >= 2 && want[0] == '<' && want[n - 1] == '>')
		return strlen(sender) == n - 2 && strncasecmp(want + 1, sender, n - 2) == 0;
	return strcasecmp(want, sender) == 0;
}

int
queue_admin_apply(const char *data_dir, enum queue_admin_action action,
    const struct queue_admin_select *sel, size_t *matched_r, size_t *done_r, char **error_r)
{
	struct queue_admin_msg *msgs = NULL;
	struct qa_paths p;
	size_t n = 0;
	bool done;
	int ret = -1;

	*matched_r = *done_r = 0;
	if ((sel->id != NULL) + (sel->sender != NULL) + sel->all != 1)
		return qa_fail(error_r, "give one of: a queue id, --sender ADDRESS, --all");
	if (sel->id != NULL && !queue_admin_id_valid(sel->id))
		return qa_fail(error_r, "invalid queue id (16 lowercase hex digits)");
	if (qa_paths_init(data_dir, &p, error_r) == -1)
		return -1;
	if (sel->id != NULL) {
		enum queue_admin_place place;

		if (qa_locate(&p, sel->id, &place) == -1)
			return 0;
		*matched_r = 1;
		if (qa_act(&p, action, sel->id, place, &done, error_r) == -1)
			return -1;
		*done_r = done;
		return done ? qa_sync(&p, error_r) : 0;
	}
	if (queue_admin_list(data_dir, &msgs, &n, error_r) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct queue_admin_msg *m = &msgs[i];

		if (sel->sender != NULL && (m->state == QUEUE_ADMIN_CORRUPT ||
		    !qa_sender_matches(sel->sender, m->env.sender)))
			continue;
		(*matched_r)++;
		if (qa_act(&p, action, m->id, m->place, &done, error_r) == -1)
			goto out;
		*done_r += done;
	}
	ret = 0;
out:
	queue_admin_list_free(&msgs, n);
	if (*done_r > 0 && qa_sync(&p, ret == 0 ? error_r : NULL) == -1)
		ret = -1;
	return ret;
}

int
queue_admin_flush(const char *data_dir, char **error_r)
{
	struct qa_paths p;
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (qa_paths_init(data_dir, &p, error_r) == -1)
		return -1;
	if (stat(p.queue, &st) == -1)
		return qa_fail(error_r, "no queue at %s: %s (has bulwarkd run?)", p.queue,
		    strerror(errno));
	qa_owner(&p, &uid, &gid);
	if (fs_write_file_durable_owned(p.queue, "FLUSH", "", 0, 0600, uid, gid) == -1)
		return qa_fail(error_r, "cannot create %s/FLUSH: %s", p.queue, strerror(errno));
	return 0;
}

/* ---- lockdown ---- */

int
queue_admin_lockdown_status(const char *data_dir, struct queue_admin_lockdown *st_r,
    char **error_r)
{
	char path[PATH_MAX + 16], *buf;
	long long since;
	struct qa_paths p;
	struct stat st;
	size_t len;

	memset(st_r, 0, sizeof(*st_r));
	snprintf(st_r->by, sizeof(st_r->by), "?");
	if (qa_paths_init(data_dir, &p, error_r) == -1 ||
	    fs_path(path, sizeof(path), "%s/LOCKDOWN", p.queue) == -1)
		return -1;
	if (fs_read_file(path, &buf, &len, QA_LOCKDOWN_MAX) == -1) {
		if (errno == ENOENT)
			return 0;
		/* The file's existence is the switch; its words are only a note. */
		if (lstat(path, &st) == 0) {
			st_r->on = true;
			return 0;
		}
		return qa_fail(error_r, "cannot read %s: %s", path, strerror(errno));
	}
	st_r->on = true;
	if (sscanf(buf, "on %lld by %63s", &since, st_r->by) == 2 && since > 0)
		st_r->since = since;
	else
		snprintf(st_r->by, sizeof(st_r->by), "?");
	free(buf);
	return 0;
}

int
queue_admin_lockdown_on(const char *data_dir, int64_t now, const char *by, size_t *held_r,
    bool *was_on_r, char **error_r)
{
	struct queue_admin_lockdown st;
	struct queue_admin_msg *msgs = NULL;
	struct qa_paths p;
	char line[128], who[64];
	size_t n = 0, o = 0;
	uid_t uid;
	gid_t gid;
	bool done;
	int ret = -1, len;

	*held_r = 0;
	*was_on_r = false;
	if (qa_paths_init(data_dir, &p, error_r) == -1)
		return -1;
	if (fs_mkdir_p(p.queue, 0700) == -1)
		return qa_fail(error_r, "cannot create %s: %s", p.queue, strerror(errno));
	if (queue_admin_lockdown_status(data_dir, &st, error_r) == -1)
		return -1;
	*was_on_r = st.on;
	if (!st.on) {
		/* One word, so the line stays "on TIME by WHO". */
		for (const char *s = by != NULL ? by : ""; *s != '\0' && o + 1 < sizeof(who); s++)
			who[o++] = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._@:+-", *s) != NULL ? *s : '_';
		if (o == 0)
			who[o++] = '?';
		who[o] = '\0';
		len = snprintf(line, sizeof(line), "on %lld by %s\n", (long long)now, who);
		qa_owner(&p, &uid, &gid);
		if (fs_write_file_durable_owned(p.queue, "LOCKDOWN", line, (size_t)len, 0600,
		    uid, gid) == -1)
			return qa_fail(error_r, "cannot create %s/LOCKDOWN: %s", p.queue,
			    strerror(errno));
	}
	/* The daemon stops remote delivery as soon as it sees the file; what
	 * is queued already is held here, now. */
	if (queue_admin_list(data_dir, &msgs, &n, error_r) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct queue_admin_msg *m = &msgs[i];

		if (m->place == QUEUE_ADMIN_IN_HOLD || m->state == QUEUE_ADMIN_CORRUPT ||
		    !queue_admin_remote_pending(m))
			continue;
		if (qa_hold(&p, m->id, m->place, &done, error_r) == -1)
			goto out;
		*held_r += done;
	}
	ret = 0;
out:
	queue_admin_list_free(&msgs, n);
	if (*held_r > 0 && qa_sync(&p, ret == 0 ? error_r : NULL) == -1)
		ret = -1;
	return ret;
}

int
queue_admin_lockdown_off(const char *data_dir, bool *was_on_r, char **error_r)
{
	struct qa_paths p;
	int rc;

	*was_on_r = false;
	if (qa_paths_init(data_dir, &p, error_r) == -1)
		return -1;
	if ((rc = qa_unlink(p.queue, "LOCKDOWN", "")) == -1)
		return qa_fail(error_r, "cannot remove %s/LOCKDOWN: %s", p.queue, strerror(errno));
	*was_on_r = rc == 1;
	if (rc == 1 && fs_fsync_dir(p.queue) == -1)
		return qa_fail(error_r, "cannot sync %s: %s", p.queue, strerror(errno));
	return 0;
}
