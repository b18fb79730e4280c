/*
 * test_queue_admin.c: bulwarkctl's side of the spool (src/queue/queue_admin.c)
 * on a fresh mkdtemp(3) data_dir per test. The spool is a table of messages
 * written through queue_envelope_format (+ message bytes, + ID.state), in
 * queue/, queue/hold/ and queue/incoming/, next to files that must be
 * ignored (tmp/, symlinks, a FIFO, upper-case names). Then: list with the
 * state of each, show, hold / release / delete by id, --sender, --all, the
 * lockdown holding only messages with a remote recipient not done, flush,
 * and ids that must never name a file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue_admin.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define ID_LOCAL    "aaaaaaaaaaaaaa01"
#define ID_REMOTE   "aaaaaaaaaaaaaa02"
#define ID_MIXED    "aaaaaaaaaaaaaa03"
#define ID_RDONE    "aaaaaaaaaaaaaa04"
#define ID_DEFERRED "aaaaaaaaaaaaaa05"
#define ID_HELD     "aaaaaaaaaaaaaa06"
#define ID_INCOMING "aaaaaaaaaaaaaa07"
#define ID_CORRUPT  "aaaaaaaaaaaaaa08"
#define ID_UNKNOWN  "0000000000000000"

struct rcpt_def {
	const char *address;
	bool local;
};

struct spool_def {
	const char *name;
	const char *id;
	enum queue_admin_place place;
	int64_t ctime;
	const char *sender;
	struct rcpt_def rcpts[4];
	const char *state;           /* ID.state, or NULL */
	const char *raw;             /* the whole file, instead of an envelope */
	/* what list must say */
	enum queue_admin_state want_state;
	bool want_remote_pending;
	size_t want_pending;         /* recipients not done */
	unsigned want_attempts;
	const char *want_error;
};

static const struct spool_def spool[] = {
	{ .name = "corrupt", .id = ID_CORRUPT, .place = QUEUE_ADMIN_IN_QUEUE,
	  .raw = "not a spool file\nat all\n", .want_state = QUEUE_ADMIN_CORRUPT },
	{ .name = "local only", .id = ID_LOCAL, .place = QUEUE_ADMIN_IN_QUEUE, .ctime = 1000,
	  .sender = "alice@example.org", .rcpts = { { "bob@example.test", true } },
	  .want_state = QUEUE_ADMIN_QUEUED, .want_pending = 1 },
	{ .name = "remote only", .id = ID_REMOTE, .place = QUEUE_ADMIN_IN_QUEUE, .ctime = 2000,
	  .sender = "Mallory@Example.ORG",
	  .rcpts = { { "x@remote.example", false }, { "y@remote.example", false } },
	  .want_state = QUEUE_ADMIN_WAITING_REMOTE, .want_remote_pending = true,
	  .want_pending = 2 },
	{ .name = "local done, remote left", .id = ID_MIXED, .place = QUEUE_ADMIN_IN_QUEUE,
	  .ctime = 3000, .sender = "mallory@example.org",
	  .rcpts = { { "bob@example.test", true }, { "z@remote.example", false } },
	  .state = "done 0\n", .want_state = QUEUE_ADMIN_WAITING_REMOTE,
	  .want_remote_pending = true, .want_pending = 1 },
	{ .name = "remote done, local left", .id = ID_RDONE, .place = QUEUE_ADMIN_IN_QUEUE,
	  .ctime = 4000, .sender = "alice@example.org",
	  .rcpts = { { "bob@example.test", true }, { "w@remote.example", false } },
	  .state = "done 1\ndone 7\nnonsense\n", .want_state = QUEUE_ADMIN_QUEUED,
	  .want_pending = 1 },
	{ .name = "deferred, null sender", .id = ID_DEFERRED, .place = QUEUE_ADMIN_IN_QUEUE,
	  .ctime = 5000, .sender = "", .rcpts = { { "bounce@remote.example", false } },
	  .state = "attempts 3\nerror 421%20old\nerror 451%204.4.1%20no%20answer%20from%25mx\n",
	  .want_state = QUEUE_ADMIN_DEFERRED, .want_remote_pending = true, .want_pending = 1,
	  .want_attempts = 3, .want_error = "451 4.4.1 no answer from%mx" },
	{ .name = "held", .id = ID_HELD, .place = QUEUE_ADMIN_IN_HOLD, .ctime = 6000,
	  .sender = "mallory@example.org", .rcpts = { { "q@remote.example", false } },
	  .want_state = QUEUE_ADMIN_HELD, .want_remote_pending = true, .want_pending = 1 },
	{ .name = "incoming notice", .id = ID_INCOMING, .place = QUEUE_ADMIN_IN_INCOMING,
	  .ctime = 7000, .sender = "postmaster@example.test",
	  .rcpts = { { "alice@example.test", true } }, .want_state = QUEUE_ADMIN_QUEUED,
	  .want_pending = 1 },
};

static const char *
place_dir(enum queue_admin_place place)
{
	switch (place) {
	case QUEUE_ADMIN_IN_HOLD: return "queue/hold";
	case QUEUE_ADMIN_IN_INCOMING: return "queue/incoming";
	default: return "queue";
	}
}

static void
write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	if (fd == -1)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static char *
message_of(const char *name)
{
	char *m = NULL;

	assert_true(asprintf(&m, "Received: by test; %s\r\nSubject: spool %s\r\n"
	    "X-Folded: a\r\n\tb\r\n\r\nbody of %s\r\n", name, name, name) > 0);
	return m;
}

/* One message of the table into the spool, its state file beside it. */
static void
spool_write(const char *dd, const struct spool_def *s)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/%s", dd, place_dir(s->place), s->id);
	if (s->raw != NULL) {
		write_file(path, s->raw, strlen(s->raw));
	} else {
		struct queue_rcpt rcpts[4];
		struct queue_envelope env = { .ctime = s->ctime, .sender = (char *)s->sender,
		    .client_ip = (char *)"127.0.0.1", .helo = (char *)"client.example.net",
		    .rcpts = rcpts };
		char *hdr, *msg = message_of(s->name), *all;
		size_t hlen, mlen = strlen(msg);

		memcpy(env.id, s->id, QUEUE_ID_LEN + 1);
		for (; env.nrcpts < 4 && s->rcpts[env.nrcpts].address != NULL; env.nrcpts++)
			rcpts[env.nrcpts] = (struct queue_rcpt){
				.address = (char *)s->rcpts[env.nrcpts].address,
				.local = s->rcpts[env.nrcpts].local };
		hdr = queue_envelope_format(&env, &hlen);
		assert_non_null(hdr);
		all = malloc(hlen + mlen);
		assert_non_null(all);
		memcpy(all, hdr, hlen);
		memcpy(all + hlen, msg, mlen);
		write_file(path, all, hlen + mlen);
		free(all);
		free(hdr);
		free(msg);
	}
	if (s->state != NULL) {
		snprintf(path, sizeof(path), "%s/%s/%s.state", dd,
		    s->place == QUEUE_ADMIN_IN_HOLD ? "queue/hold" : "queue", s->id);
		write_file(path, s->state, strlen(s->state));
	}
}

static void
mkdir_in(const char *dd, const char *sub)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dd, sub);
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		fail_msg("mkdir %s: %s", path, strerror(errno));
}

/* Setup: a data_dir with the table's spool and files that are not messages. */
static int
setup(void **state)
{
	char *dd = strdup("/tmp/bulwark-qadmin-XXXXXX"), path[PATH_MAX], target[PATH_MAX];
	static const char tmp_msg[] = "bulwark-queue 1\nid 00000000000000ff\n";

	if (dd == NULL || mkdtemp(dd) == NULL)
		return -1;
	mkdir_in(dd, "queue");
	mkdir_in(dd, "queue/hold");
	mkdir_in(dd, "queue/incoming");
	mkdir_in(dd, "queue/tmp");
	for (size_t i = 0; i < ARRAY_SIZE(spool); i++)
		spool_write(dd, &spool[i]);
	/* Not messages: being received, upper case, hidden, a symlink to a
	 * message, a directory and a FIFO named like ids. */
	snprintf(path, sizeof(path), "%s/queue/tmp/00000000000000ff", dd);
	write_file(path, tmp_msg, sizeof(tmp_msg) - 1);
	snprintf(path, sizeof(path), "%s/queue/AAAAAAAAAAAAAA01", dd);
	write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/queue/.aaaaaaaaaaaaaa09", dd);
	write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/queue/ffffffffffffff01", dd);
	snprintf(target, sizeof(target), "%s/queue/" ID_LOCAL, dd);
	assert_int_equal(symlink(target, path), 0);
	mkdir_in(dd, "queue/ffffffffffffff02");
	snprintf(path, sizeof(path), "%s/queue/ffffffffffffff03", dd);
	assert_int_equal(mkfifo(path, 0600), 0);
	*state = dd;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	char *dd = *state;
	int rc = nftw(dd, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	free(dd);
	return rc;
}

/* Is there a file at data_dir/rel/name? */
static bool
exists(const char *dd, const char *rel, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/%s", dd, rel, name);
	return lstat(path, &st) == 0;
}

static const struct queue_admin_msg *
find(const struct queue_admin_msg *msgs, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(msgs[i].id, id) == 0)
			return &msgs[i];
	return NULL;
}

static const struct spool_def *
def_of(const char *id)
{
	for (size_t i = 0; i < ARRAY_SIZE(spool); i++)
		if (strcmp(spool[i].id, id) == 0)
			return &spool[i];
	fail_msg("no spool entry %s", id);
	return NULL;
}

/* The state list gives for id now. */
static enum queue_admin_state
state_of(const char *dd, const char *id)
{
	struct queue_admin_msg *msgs = NULL;
	const struct queue_admin_msg *m;
	enum queue_admin_state st;
	char *error = NULL;
	size_t n = 0;

	assert_int_equal(queue_admin_list(dd, &msgs, &n, &error), 0);
	m = find(msgs, n, id);
	if (m == NULL)
		fail_msg("%s not listed", id);
	st = m->state;
	queue_admin_list_free(&msgs, n);
	return st;
}

static size_t
count_listed(const char *dd)
{
	struct queue_admin_msg *msgs = NULL;
	char *error = NULL;
	size_t n = 0;

	assert_int_equal(queue_admin_list(dd, &msgs, &n, &error), 0);
	queue_admin_list_free(&msgs, n);
	return n;
}

/* ---- list and show ---- */

static void
test_list(void **state)
{
	const char *dd = *state;
	struct queue_admin_msg *msgs = NULL;
	char *error = NULL;
	size_t n = 0;

	assert_int_equal(queue_admin_list(dd, &msgs, &n, &error), 0);
	assert_null(error);
	assert_int_equal(n, ARRAY_SIZE(spool));
	for (size_t i = 0; i < n; i++) {
		const struct queue_admin_msg *m = &msgs[i];
		const struct spool_def *s = &spool[i];   /* the table is in age order */
		size_t pending = 0;

		if (strcmp(m->id, s->id) != 0)
			fail_msg("position %zu: %s, expected %s (%s)", i, m->id, s->id, s->name);
		if (m->state != s->want_state)
			fail_msg("%s: state %s, expected %s", s->name,
			    queue_admin_state_name(m->state), queue_admin_state_name(s->want_state));
		assert_int_equal(m->place, s->place);
		if (s->raw != NULL) {
			assert_null(m->env.sender);
			assert_int_equal(m->env.nrcpts, 0);
			assert_int_equal(m->size, strlen(s->raw));
			continue;
		}
		for (size_t r = 0; r < m->env.nrcpts; r++)
			pending += !m->env.rcpts[r].done;
		if (pending != s->want_pending)
			fail_msg("%s: %zu recipients pending, expected %zu", s->name, pending,
			    s->want_pending);
		assert_string_equal(m->env.sender, s->sender);
		assert_int_equal(m->env.ctime, s->ctime);
		assert_int_equal(queue_admin_remote_pending(m), s->want_remote_pending);
		assert_int_equal(m->attempts, s->want_attempts);
		if (s->want_error == NULL)
			assert_null(m->last_error);
		else
			assert_string_equal(m->last_error, s->want_error);
		{
			char *body = message_of(s->name);

			assert_int_equal(m->size, strlen(body));
			free(body);
		}
		assert_int_equal(m->nheaders, 0);
	}
	queue_admin_list_free(&msgs, n);
	assert_null(msgs);
}

static void
test_list_no_spool(void **state)
{
	struct queue_admin_msg *msgs = NULL;
	char *error = NULL, path[PATH_MAX];
	size_t n = 7;

	snprintf(path, sizeof(path), "%s/nothing-here", (const char *)*state);
	assert_int_equal(queue_admin_list(path, &msgs, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_null(msgs);
	/* flush needs a queue: the daemon makes it */
	assert_int_equal(queue_admin_flush(path, &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, "has bulwarkd run?"));
	free(error);
}

static void
test_show(void **state)
{
	static const char *const want[] = {
		"Received: by test; remote only", "Subject: spool remote only", "X-Folded: a", "\tb",
	};
	const char *dd = *state;
	struct queue_admin_msg m;
	char *error = NULL;

	assert_int_equal(queue_admin_show(dd, ID_REMOTE, &m, &error), 1);
	assert_string_equal(m.id, ID_REMOTE);
	assert_int_equal(m.state, QUEUE_ADMIN_WAITING_REMOTE);
	assert_string_equal(m.env.helo, "client.example.net");
	assert_int_equal(m.env.nrcpts, 2);
	assert_int_equal(m.nheaders, ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		assert_string_equal(m.headers[i], want[i]);
	queue_admin_msg_clear(&m);

	/* held, and found in hold/ */
	assert_int_equal(queue_admin_show(dd, ID_HELD, &m, &error), 1);
	assert_int_equal(m.state, QUEUE_ADMIN_HELD);
	assert_int_equal(m.place, QUEUE_ADMIN_IN_HOLD);
	assert_int_equal(m.nheaders, 4);
	queue_admin_msg_clear(&m);

	/* corrupt: shown as such, no headers */
	assert_int_equal(queue_admin_show(dd, ID_CORRUPT, &m, &error), 1);
	assert_int_equal(m.state, QUEUE_ADMIN_CORRUPT);
	assert_int_equal(m.nheaders, 0);
	queue_admin_msg_clear(&m);

	/* unknown: 0, and the symlink named like an id is no message */
	assert_int_equal(queue_admin_show(dd, ID_UNKNOWN, &m, &error), 0);
	assert_int_equal(queue_admin_show(dd, "ffffffffffffff01", &m, &error), 0);
	assert_int_equal(queue_admin_show(dd, "ffffffffffffff03", &m, &error), 0);
	assert_null(error);
}

/* Header lines stop at the empty line and at QUEUE_ADMIN_SHOW_HEADERS; LF-only too. */
static void
test_show_header_limits(void **state)
{
	static const struct {
		const char *name, *eol;
		size_t lines;
		size_t want;
	} cases[] = {
		{ .name = "CRLF, 3 lines", .eol = "\r\n", .lines = 3, .want = 3 },
		{ .name = "LF only, 5 lines", .eol = "\n", .lines = 5, .want = 5 },
		{ .name = "150 lines", .eol = "\r\n", .lines = 150, .want = QUEUE_ADMIN_SHOW_HEADERS },
		{ .name = "no header at all", .eol = "\r\n", .lines = 0, .want = 0 },
	};
	const char *dd = *state;

	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		struct queue_rcpt rcpt = { .address = (char *)"bob@example.test", .local = true };
		struct queue_envelope env = { .ctime = 1, .sender = (char *)"a@example.org",
		    .client_ip = (char *)"127.0.0.1", .helo = (char *)"h", .rcpts = &rcpt,
		    .nrcpts = 1 };
		char id[QUEUE_ID_LEN + 1], path[PATH_MAX], *hdr, *buf = NULL;
		size_t hlen, len = 0;
		struct queue_admin_msg m;
		char *error = NULL;
		FILE *f = open_memstream(&buf, &len);

		snprintf(id, sizeof(id), "bbbbbbbbbbbbbb%02zx", c);
		memcpy(env.id, id, sizeof(id));
		hdr = queue_envelope_format(&env, &hlen);
		assert_non_null(hdr);
		fwrite(hdr, 1, hlen, f);
		for (size_t i = 0; i < cases[c].lines; i++)
			fprintf(f, "X-Line-%zu: %zu%s", i, i, cases[c].eol);
		fprintf(f, "%sX-Not-A-Header: body%s", cases[c].eol, cases[c].eol);
		assert_int_equal(fclose(f), 0);
		snprintf(path, sizeof(path), "%s/queue/%s", dd, id);
		write_file(path, buf, len);
		assert_int_equal(queue_admin_show(dd, id, &m, &error), 1);
		if (m.nheaders != cases[c].want)
			fail_msg("%s: %zu header lines, expected %zu", cases[c].name, m.nheaders,
			    cases[c].want);
		for (size_t i = 0; i < m.nheaders; i++) {
			char line[64];

			snprintf(line, sizeof(line), "X-Line-%zu: %zu", i, i);
			assert_string_equal(m.headers[i], line);
		}
		assert_int_equal(m.size, len - hlen);
		queue_admin_msg_clear(&m);
		free(hdr);
		free(buf);
	}
}

/* ---- hold, release, delete ---- */

struct step {
	const char *name;
	enum queue_admin_action action;
	struct queue_admin_select sel;
	size_t matched, done;
	/* afterwards: where the message of sel.id (or check) is */
	const char *check;
	const char *msg_in;          /* "queue", "queue/hold", "queue/incoming", NULL: gone */
	const char *state_in;        /* where ID.state is, NULL: nowhere */
};

static void
run_steps(const char *dd, const struct step *steps, size_t nsteps)
{
	static const char *const places[] = { "queue", "queue/hold", "queue/incoming" };

	for (size_t i = 0; i < nsteps; i++) {
		const struct step *s = &steps[i];
		const char *id = s->check != NULL ? s->check : s->sel.id;
		size_t matched = 99, done = 99;
		char *error = NULL, statename[QUEUE_ID_LEN + 8];

		if (queue_admin_apply(dd, s->action, &s->sel, &matched, &done, &error) != 0)
			fail_msg("%s: %s", s->name, error);
		if (matched != s->matched || done != s->done)
			fail_msg("%s: matched %zu done %zu, expected %zu and %zu", s->name, matched,
			    done, s->matched, s->done);
		if (id == NULL)
			continue;
		snprintf(statename, sizeof(statename), "%s.state", id);
		for (size_t p = 0; p < ARRAY_SIZE(places); p++) {
			bool want = s->msg_in != NULL && strcmp(s->msg_in, places[p]) == 0;
			bool want_state = s->state_in != NULL && strcmp(s->state_in, places[p]) == 0;

			if (exists(dd, places[p], id) != want)
				fail_msg("%s: %s/%s %s", s->name, places[p], id,
				    want ? "missing" : "still there");
			if (exists(dd, places[p], statename) != want_state)
				fail_msg("%s: %s/%s %s", s->name, places[p], statename,
				    want_state ? "missing" : "still there");
		}
	}
}

static void
test_by_id(void **state)
{
	static const struct step steps[] = {
		{ .name = "hold a remote message", .action = QUEUE_ADMIN_HOLD,
		  .sel = { .id = ID_REMOTE }, .matched = 1, .done = 1, .msg_in = "queue/hold" },
		{ .name = "hold moves the state file too", .action = QUEUE_ADMIN_HOLD,
		  .sel = { .id = ID_MIXED }, .matched = 1, .done = 1, .msg_in = "queue/hold",
		  .state_in = "queue/hold" },
		{ .name = "hold twice", .action = QUEUE_ADMIN_HOLD, .sel = { .id = ID_MIXED },
		  .matched = 1, .done = 0, .msg_in = "queue/hold", .state_in = "queue/hold" },
		{ .name = "release: message to incoming/, state to queue/",
		  .action = QUEUE_ADMIN_RELEASE, .sel = { .id = ID_MIXED }, .matched = 1,
		  .done = 1, .msg_in = "queue/incoming", .state_in = "queue" },
		{ .name = "release what is not held", .action = QUEUE_ADMIN_RELEASE,
		  .sel = { .id = ID_LOCAL }, .matched = 1, .done = 0, .msg_in = "queue" },
		{ .name = "hold from incoming/: its state is in queue/",
		  .action = QUEUE_ADMIN_HOLD, .sel = { .id = ID_MIXED }, .matched = 1, .done = 1,
		  .msg_in = "queue/hold", .state_in = "queue/hold" },
		{ .name = "hold a notice in incoming/", .action = QUEUE_ADMIN_HOLD,
		  .sel = { .id = ID_INCOMING }, .matched = 1, .done = 1, .msg_in = "queue/hold" },
		{ .name = "delete a deferred message and its state", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .id = ID_DEFERRED }, .matched = 1, .done = 1 },
		{ .name = "delete a held message", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .id = ID_MIXED }, .matched = 1, .done = 1 },
		{ .name = "delete the corrupt one", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .id = ID_CORRUPT }, .matched = 1, .done = 1 },
		{ .name = "hold an unknown id", .action = QUEUE_ADMIN_HOLD,
		  .sel = { .id = ID_UNKNOWN }, .matched = 0, .done = 0 },
		{ .name = "delete an unknown id", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .id = ID_DEFERRED }, .matched = 0, .done = 0 },
		{ .name = "a symlink named like an id is no message", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .id = "ffffffffffffff01" }, .matched = 0, .done = 0,
		  .check = ID_LOCAL, .msg_in = "queue" },
	};
	const char *dd = *state;

	run_steps(dd, steps, ARRAY_SIZE(steps));
	assert_int_equal(state_of(dd, ID_REMOTE), QUEUE_ADMIN_HELD);
	assert_int_equal(state_of(dd, ID_INCOMING), QUEUE_ADMIN_HELD);
	assert_int_equal(state_of(dd, ID_LOCAL), QUEUE_ADMIN_QUEUED);
	assert_int_equal(count_listed(dd), ARRAY_SIZE(spool) - 3);
	assert_true(exists(dd, "queue", "ffffffffffffff01"));   /* untouched */
}

static void
test_by_sender(void **state)
{
	static const struct step steps[] = {
		{ .name = "hold by sender, any case (one was held already)",
		  .action = QUEUE_ADMIN_HOLD, .sel = { .sender = "MALLORY@example.org" },
		  .matched = 3, .done = 2, .check = ID_MIXED, .msg_in = "queue/hold",
		  .state_in = "queue/hold" },
		{ .name = "release by sender in angle brackets", .action = QUEUE_ADMIN_RELEASE,
		  .sel = { .sender = "<mallory@EXAMPLE.org>" }, .matched = 3, .done = 3,
		  .check = ID_HELD, .msg_in = "queue/incoming" },
		{ .name = "no such sender", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .sender = "nobody@example.org" }, .matched = 0, .done = 0,
		  .check = ID_LOCAL, .msg_in = "queue" },
		{ .name = "a prefix is not the sender", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .sender = "alice@example" }, .matched = 0, .done = 0 },
		{ .name = "delete the null sender's", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .sender = "<>" }, .matched = 1, .done = 1, .check = ID_DEFERRED },
		{ .name = "the null sender as an empty string", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .sender = "" }, .matched = 0, .done = 0 },
		{ .name = "delete by sender", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .sender = "alice@example.org" }, .matched = 2, .done = 2,
		  .check = ID_RDONE },
	};
	const char *dd = *state;

	run_steps(dd, steps, ARRAY_SIZE(steps));
	assert_int_equal(count_listed(dd), ARRAY_SIZE(spool) - 3);
}

static void
test_all(void **state)
{
	static const struct step steps[] = {
		{ .name = "hold all (one held already)", .action = QUEUE_ADMIN_HOLD,
		  .sel = { .all = true }, .matched = ARRAY_SIZE(spool),
		  .done = ARRAY_SIZE(spool) - 1, .check = ID_RDONE, .msg_in = "queue/hold",
		  .state_in = "queue/hold" },
		{ .name = "release all", .action = QUEUE_ADMIN_RELEASE, .sel = { .all = true },
		  .matched = ARRAY_SIZE(spool), .done = ARRAY_SIZE(spool), .check = ID_RDONE,
		  .msg_in = "queue/incoming", .state_in = "queue" },
		{ .name = "delete all", .action = QUEUE_ADMIN_DELETE, .sel = { .all = true },
		  .matched = ARRAY_SIZE(spool), .done = ARRAY_SIZE(spool), .check = ID_RDONE },
		{ .name = "delete all of nothing", .action = QUEUE_ADMIN_DELETE,
		  .sel = { .all = true }, .matched = 0, .done = 0 },
	};
	const char *dd = *state;

	run_steps(dd, steps, ARRAY_SIZE(steps));
	assert_int_equal(count_listed(dd), 0);
	/* only what is not a message is left */
	assert_true(exists(dd, "queue/tmp", "00000000000000ff"));
	assert_true(exists(dd, "queue", "ffffffffffffff03"));
	assert_false(exists(dd, "queue", ID_MIXED ".state"));
	assert_false(exists(dd, "queue/hold", ID_MIXED ".state"));
}

/* A released message is listed once even when found in two places (a move
 * between two directory reads), at the later place. */
static void
test_list_duplicate(void **state)
{
	const char *dd = *state;
	char from[PATH_MAX], to[PATH_MAX];

	snprintf(from, sizeof(from), "%s/queue/hold/%s", dd, ID_HELD);
	snprintf(to, sizeof(to), "%s/queue/incoming/%s", dd, ID_HELD);
	assert_int_equal(link(from, to), 0);
	assert_int_equal(count_listed(dd), ARRAY_SIZE(spool));
	assert_int_equal(state_of(dd, ID_HELD), QUEUE_ADMIN_QUEUED);
}

/* ---- lockdown and flush ---- */

static void
test_lockdown(void **state)
{
	static const struct {
		const char *id;
		bool held;
	} after[] = {
		{ ID_LOCAL, false },     /* local recipients only */
		{ ID_REMOTE, true },
		{ ID_MIXED, true },      /* its remote recipient is left */
		{ ID_RDONE, false },     /* its remote recipient is done */
		{ ID_DEFERRED, true },
		{ ID_HELD, true },       /* already */
		{ ID_INCOMING, false },
		{ ID_CORRUPT, false },   /* unreadable: the daemon cannot send it either */
	};
	const char *dd = *state;
	struct queue_admin_lockdown ld;
	char *error = NULL, path[PATH_MAX], *content = NULL;
	struct stat st;
	size_t held = 99;
	bool was_on = true;
	FILE *f;

	assert_int_equal(queue_admin_lockdown_status(dd, &ld, &error), 0);
	assert_false(ld.on);
	assert_int_equal(queue_admin_lockdown_on(dd, 1700000000, "evil user\nx", &held, &was_on,
	    &error), 0);
	assert_false(was_on);
	assert_int_equal(held, 3);
	for (size_t i = 0; i < ARRAY_SIZE(after); i++)
		if ((state_of(dd, after[i].id) == QUEUE_ADMIN_HELD) != after[i].held)
			fail_msg("lockdown: %s (%s) %s", after[i].id, def_of(after[i].id)->name,
			    after[i].held ? "not held" : "held");
	assert_true(exists(dd, "queue/hold", ID_MIXED ".state"));

	/* the file: one line, 0600 */
	snprintf(path, sizeof(path), "%s/queue/LOCKDOWN", dd);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	f = fopen(path, "r");
	assert_non_null(f);
	content = calloc(1, 256);
	assert_non_null(content);
	assert_true(fread(content, 1, 255, f) > 0);
	fclose(f);
	assert_string_equal(content, "on 1700000000 by evil_user_x\n");
	free(content);
	assert_int_equal(queue_admin_lockdown_status(dd, &ld, &error), 0);
	assert_true(ld.on);
	assert_int_equal(ld.since, 1700000000);
	assert_string_equal(ld.by, "evil_user_x");

	/* on again: the first record stays, nothing more to hold */
	assert_int_equal(queue_admin_lockdown_on(dd, 1800000000, "other", &held, &was_on,
	    &error), 0);
	assert_true(was_on);
	assert_int_equal(held, 0);
	assert_int_equal(queue_admin_lockdown_status(dd, &ld, &error), 0);
	assert_int_equal(ld.since, 1700000000);

	/* off: the file goes, held messages stay held */
	assert_int_equal(queue_admin_lockdown_off(dd, &was_on, &error), 0);
	assert_true(was_on);
	assert_false(exists(dd, "queue", "LOCKDOWN"));
	assert_int_equal(queue_admin_lockdown_status(dd, &ld, &error), 0);
	assert_false(ld.on);
	assert_int_equal(state_of(dd, ID_REMOTE), QUEUE_ADMIN_HELD);
	assert_int_equal(queue_admin_lockdown_off(dd, &was_on, &error), 0);
	assert_false(was_on);
	assert_null(error);
}

/* A LOCKDOWN file that says nothing useful is still a lockdown. */
static void
test_lockdown_odd_file(void **state)
{
	const char *dd = *state;
	struct queue_admin_lockdown ld;
	char path[PATH_MAX], *error = NULL;

	snprintf(path, sizeof(path), "%s/queue/LOCKDOWN", dd);
	write_file(path, "", 0);
	assert_int_equal(queue_admin_lockdown_status(dd, &ld, &error), 0);
	assert_true(ld.on);
	assert_int_equal(ld.since, 0);
	assert_string_equal(ld.by, "?");
}

static void
test_flush(void **state)
{
	const char *dd = *state;
	char path[PATH_MAX], *error = NULL;
	struct stat st;

	assert_int_equal(queue_admin_flush(dd, &error), 0);
	snprintf(path, sizeof(path), "%s/queue/FLUSH", dd);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(queue_admin_flush(dd, &error), 0);   /* twice is fine */
	assert_int_equal(count_listed(dd), ARRAY_SIZE(spool));
}

/* ---- ids and selections that must be refused ---- */

static void
test_bad_ids(void **state)
{
	static const char *const bad[] = {
		"", "0", "aaaaaaaaaaaaaa0", "aaaaaaaaaaaaaa010", "AAAAAAAAAAAAAA01",
		"aaaaaaaaaaaaaa0g", "../../etc/passw", "..", "aaaaaaa/aaaaaaaa",
		"/aaaaaaaaaaaaa01", "aaaaaaaaaaaaaa0\n", "aaaaaaaaaaaaaa0 ", " aaaaaaaaaaaaaa01",
		"hold/aaaaaaaaaaaaaa06", "aaaaaaaaaaaaaa01.state", "tmp/00000000000000ff",
	};
	const char *dd = *state;

	assert_false(queue_admin_id_valid(NULL));
	assert_true(queue_admin_id_valid(ID_LOCAL));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		static const enum queue_admin_action actions[] = {
			QUEUE_ADMIN_HOLD, QUEUE_ADMIN_RELEASE, QUEUE_ADMIN_DELETE,
		};
		struct queue_admin_select sel = { .id = bad[i] };
		struct queue_admin_msg m;

		if (queue_admin_id_valid(bad[i]))
			fail_msg("id %s taken as valid", bad[i]);
		for (size_t a = 0; a < ARRAY_SIZE(actions); a++) {
			size_t matched = 9, done = 9;
			char *error = NULL;

			assert_int_equal(queue_admin_apply(dd, actions[a], &sel, &matched, &done,
			    &error), -1);
			assert_non_null(error);
			assert_non_null(strstr(error, "invalid queue id"));
			assert_int_equal(matched, 0);
			assert_int_equal(done, 0);
			free(error);
		}
		{
			char *error = NULL;

			assert_int_equal(queue_admin_show(dd, bad[i], &m, &error), -1);
			assert_non_null(error);
			free(error);
		}
	}
	/* nothing moved */
	assert_int_equal(count_listed(dd), ARRAY_SIZE(spool));
	assert_true(exists(dd, "queue/hold", ID_HELD));
	assert_true(exists(dd, "queue/tmp", "00000000000000ff"));
	assert_true(exists(dd, "queue", ID_MIXED ".state"));
}

static void
test_bad_selections(void **state)
{
	static const struct {
		const char *name;
		struct queue_admin_select sel;
	} cases[] = {
		{ .name = "nothing", .sel = { 0 } },
		{ .name = "id and --all", .sel = { .id = ID_LOCAL, .all = true } },
		{ .name = "id and --sender", .sel = { .id = ID_LOCAL, .sender = "a@b" } },
		{ .name = "--sender and --all", .sel = { .sender = "a@b", .all = true } },
	};
	const char *dd = *state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t matched, done;
		char *error = NULL;

		if (queue_admin_apply(dd, QUEUE_ADMIN_DELETE, &cases[i].sel, &matched, &done,
		    &error) != -1)
			fail_msg("%s: accepted", cases[i].name);
		assert_non_null(error);
		assert_int_equal(done, 0);
		free(error);
	}
	assert_int_equal(count_listed(dd), ARRAY_SIZE(spool));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_no_spool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_show, setup, teardown),
		cmocka_unit_test_setup_teardown(test_show_header_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_by_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_by_sender, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lockdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lockdown_odd_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_selections, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
