/*
 * imap_store_scan.c: one mailbox's shared state kept in step with its
 * Maildir: loading it from the index, scanning new/ and cur/ (mtime-driven,
 * same-tick safe), the ":2," info letters and dovecot-keywords, the uidlist
 * that keeps UIDs when the index is lost, and reading message files.
 * Trusts nothing on disk: names from other programs are parsed, never used
 * to build paths outside the mailbox directory. The Maildir spec
 * (cr.yp.to/proto/maildir.html), Maildir++ and Dovecot's keyword letters.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "imap/imap_store_private.h"

static void
set_err(enum imap_store_error *err_r, enum imap_store_error e)
{
	if (err_r != NULL)
		*err_r = e;
}
/* --- Maildir file names ------------------------------------------------ */

static const struct {
	char letter;
	uint32_t flag;
} info_letters[] = {
	{ 'D', IMAP_FLAG_DRAFT },
	{ 'F', IMAP_FLAG_FLAGGED },
	{ 'R', IMAP_FLAG_ANSWERED },
	{ 'S', IMAP_FLAG_SEEN },
	{ 'T', IMAP_FLAG_DELETED },
};

uint32_t
store_info_flags(const char *fname)
{
	const char *info = strstr(fname, ":2,");
	uint32_t flags = 0;

	if (info == NULL)
		return 0;
	for (const char *p = info + 3; *p != '\0'; p++) {
		for (size_t i = 0; i < sizeof(info_letters) / sizeof(info_letters[0]); i++) {
			if (*p == info_letters[i].letter)
				flags |= info_letters[i].flag;
		}
	}
	return flags;
}

void
store_info_build(uint32_t flags, const char *old_info, const char *kw_letters, char *buf,
    size_t buflen)
{
	bool have[128] = { false };
	size_t o = 0;

	for (const char *p = old_info; p != NULL && *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 128 && c > ' ' && c != ',' && c != ':' && c != '/' &&
		    (kw_letters == NULL || c < 'a' || c > 'z'))
			have[c] = true;
	}
	for (const char *p = kw_letters; p != NULL && *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'z')
			have[(unsigned char)*p] = true;
	}
	for (size_t i = 0; i < sizeof(info_letters) / sizeof(info_letters[0]); i++)
		have[(unsigned char)info_letters[i].letter] = (flags & info_letters[i].flag) != 0;
	for (int c = 0; c < 128 && o + 1 < buflen; c++) {
		if (have[c])
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
}

/* dovecot-keywords: "N name" lines, N the letter 'a' + N. */
static void
kw_file_read(struct store_mbox *sm)
{
	char path[PATH_MAX], *buf, *save = NULL;
	size_t len;

	if (fs_path(path, sizeof(path), "%s/%s", sm->path, STORE_KEYWORDS_NAME) == -1 ||
	    fs_read_file(path, &buf, &len, 1u << 16) == -1)
		return;
	for (char *l = strtok_r(buf, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(l, ' ');
		unsigned long i = strtoul(l, NULL, 10);

		if (sp == NULL || i >= STORE_KEYWORD_LETTERS || sp[1] == '\0' || sm->kwname[i] != NULL)
			continue;
		if ((sm->kwname[i] = strdup(sp + 1)) != NULL && i + 1 > sm->nkw)
			sm->nkw = i + 1;
	}
	free(buf);
}

static void
kw_file_write(struct store_mbox *sm)
{
	char buf[STORE_KEYWORD_LETTERS * 160];
	size_t o = 0;

	for (size_t i = 0; i < sm->nkw; i++) {
		if (sm->kwname[i] != NULL && strlen(sm->kwname[i]) < 150)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%zu %s\n", i, sm->kwname[i]);
	}
	if (fs_write_file_durable(sm->path, STORE_KEYWORDS_NAME, buf, o, 0600) == -1)
		log_warn("imap store: %s/%s: cannot write", sm->path, STORE_KEYWORDS_NAME);
}

void
store_kw_letters(struct store_mbox *sm, const char *const *words, char *buf, size_t buflen)
{
	bool have[STORE_KEYWORD_LETTERS] = { false }, added = false;
	size_t o = 0;

	for (size_t w = 0; words != NULL && words[w] != NULL; w++) {
		size_t i;

		for (i = 0; i < sm->nkw; i++) {
			if (sm->kwname[i] != NULL && strcasecmp(sm->kwname[i], words[w]) == 0)
				break;
		}
		if (i == sm->nkw) {
			if (sm->nkw == STORE_KEYWORD_LETTERS || strlen(words[w]) >= 150 ||
			    (sm->kwname[i] = strdup(words[w])) == NULL)
				continue;  /* no letter left: the index keeps it */
			sm->nkw++;
			added = true;
		}
		have[i] = true;
	}
	if (added)
		kw_file_write(sm);
	for (size_t i = 0; i < STORE_KEYWORD_LETTERS && o + 1 < buflen; i++) {
		if (have[i])
			buf[o++] = (char)('a' + i);
	}
	buf[o] = '\0';
}

const struct store_kwset *
store_kw_from_info(struct store_mbox *sm, const char *fname, const char *const *keep)
{
	const char *info = strstr(fname, ":2,"), *words[STORE_KEYWORD_LETTERS + 65];
	size_t n = 0;
	bool reread = false;

	for (const char *p = info != NULL ? info + 3 : ""; *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'z' && sm->kwname[*p - 'a'] == NULL && !reread) {
			kw_file_read(sm);  /* a letter set by another program */
			reread = true;
		}
		if (*p >= 'a' && *p <= 'z' && sm->kwname[*p - 'a'] != NULL)
			words[n++] = sm->kwname[*p - 'a'];
	}
	for (size_t k = 0; keep != NULL && keep[k] != NULL && n < STORE_KEYWORD_LETTERS + 64; k++) {
		bool lettered = false;

		for (size_t i = 0; i < sm->nkw && !lettered; i++)
			lettered = sm->kwname[i] != NULL && strcasecmp(sm->kwname[i], keep[k]) == 0;
		if (!lettered)
			words[n++] = keep[k];
	}
	words[n] = NULL;
	return store_kwset_intern(sm->st, words);
}

/* Length of the base name (before ":") of a file name without directory. */
static size_t
base_len(const char *name)
{
	const char *colon = strchr(name, ':');

	return colon != NULL ? (size_t)(colon - name) : strlen(name);
}

void
store_unique(struct imap_store *st, char *buf, size_t buflen)
{
	static unsigned long seq;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	snprintf(buf, buflen, "%lld.M%06ldP%ldQ%luI.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
	    (long)getpid(), ++seq, st->hostname);
}

/* --- reading messages -------------------------------------------------- */

char *
store_read_crlf(const char *path, bool served, size_t *len_r, int64_t *mtime_r, int *errno_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	char *raw = NULL, *out = NULL;
	size_t got = 0, o = 0;

	*errno_r = 0;
	if (fd == -1) {
		*errno_r = errno;
		return NULL;
	}
	if (fstat(fd, &sb) == -1 || (uint64_t)sb.st_size > (uint64_t)SIZE_MAX / 2 - 2) {
		*errno_r = errno != 0 ? errno : EFBIG;
		goto done;
	}
	if ((raw = malloc((size_t)sb.st_size + 1)) == NULL) {
		*errno_r = ENOMEM;
		goto done;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, raw + got, (size_t)sb.st_size - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			*errno_r = errno;
			goto done;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	/* One pass, line by line with memchr/memcpy (FETCH BODY[]'s hot path):
	 * room for a CR every 16 bytes first, more only for very short lines. */
	{
		size_t cap = got + got / 16 + 64;

		if ((out = malloc(cap + 1)) == NULL) {
			*errno_r = ENOMEM;
			goto done;
		}
		for (const char *p = raw, *end = raw + got; p < end; ) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

			if (cap - o < n + 2) {
				size_t ncap = cap + cap / 2 > o + n + 2 ? cap + cap / 2 : o + n + 2;
				char *t = realloc(out, ncap + 1);

				if (t == NULL) {
					free(out);
					out = NULL;
					*errno_r = ENOMEM;
					goto done;
				}
				out = t;
				cap = ncap;
			}
			memcpy(out + o, p, n);
			o += n;
			if (nl == NULL)
				break;
			if (nl == raw || nl[-1] != '\r')
				out[o++] = '\r';
			out[o++] = '\n';
			p = nl + 1;
		}
	}
	if (served) {
		/* NUL cannot travel in a literal: 0x80, as Dovecot */
		for (char *z = memchr(out, '\0', o); z != NULL; z = memchr(z, '\0', o - (size_t)(z - out)))
			*z = (char)0x80;
	}
	out[o] = '\0';
	*len_r = o;
	if (mtime_r != NULL)
		*mtime_r = sb.st_mtime;
done:
	free(raw);
	close(fd);
	return out;
}

/* --- the uidlist: UIDs survive the loss of the index -------------------- */

/* First line "bulwark-uidlist 1 V<uidvalidity> N<uidnext>", then "UID BASE"
 * lines appended as UIDs are given. Stale lines are harmless (their base is
 * no longer in the Maildir) and dropped when the file is compacted. */
struct uidlist_ent {
	uint32_t uid;
	char *base;
};

struct uidlist {
	uint32_t uidvalidity, uidnext;
	struct uidlist_ent *e;
	size_t n;
};

static int
cmp_uidlist_base(const void *a, const void *b)
{
	return strcmp(((const struct uidlist_ent *)a)->base, ((const struct uidlist_ent *)b)->base);
}

static void
uidlist_free(struct uidlist *ul)
{
	for (size_t i = 0; i < ul->n; i++)
		free(ul->e[i].base);
	free(ul->e);
	memset(ul, 0, sizeof(*ul));
}

/* 0 read (sorted by base), -1 none or unreadable. */
static int
uidlist_read(const char *dir, struct uidlist *ul)
{
	char path[PATH_MAX], *buf, *save = NULL;
	size_t len, cap = 0;
	unsigned long v, nx;

	memset(ul, 0, sizeof(*ul));
	if (fs_path(path, sizeof(path), "%s/%s", dir, STORE_UIDLIST_NAME) == -1 ||
	    fs_read_file(path, &buf, &len, 64u << 20) == -1)
		return -1;
	if (sscanf(buf, "bulwark-uidlist 1 V%lu N%lu", &v, &nx) != 2 || v == 0 || v > UINT32_MAX ||
	    nx > UINT32_MAX) {
		free(buf);
		return -1;
	}
	ul->uidvalidity = (uint32_t)v;
	ul->uidnext = (uint32_t)nx;
	strtok_r(buf, "\n", &save);
	for (char *line = strtok_r(NULL, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');
		unsigned long uid = strtoul(line, NULL, 10);

		if (sp == NULL || uid == 0 || uid > UINT32_MAX || sp[1] == '\0' || strchr(sp + 1, '/'))
			continue;
		if (ul->n == cap) {
			struct uidlist_ent *ne = realloc(ul->e, (cap = cap ? cap * 2 : 64) * sizeof(*ne));

			if (ne == NULL)
				break;
			ul->e = ne;
		}
		if ((ul->e[ul->n].base = strdup(sp + 1)) == NULL)
			break;
		ul->e[ul->n++].uid = (uint32_t)uid;
		if (uid >= ul->uidnext)
			ul->uidnext = (uint32_t)uid + 1;
	}
	free(buf);
	if (ul->n > 0)
		qsort(ul->e, ul->n, sizeof(ul->e[0]), cmp_uidlist_base);
	return 0;
}

static uint32_t
uidlist_lookup(const struct uidlist *ul, const char *base)
{
	struct uidlist_ent key = { .base = (char *)base }, *hit;

	if (ul == NULL || ul->n == 0)
		return 0;
	hit = bsearch(&key, ul->e, ul->n, sizeof(ul->e[0]), cmp_uidlist_base);
	return hit != NULL ? hit->uid : 0;
}

/* Rewrite the uidlist from the shared state (durably). */
static void
uidlist_write(struct store_mbox *sm)
{
	size_t cap = 64 + sm->n * 80, o;
	char *buf = malloc(cap);

	if (buf == NULL)
		return;
	o = (size_t)snprintf(buf, cap, "bulwark-uidlist 1 V%u N%u\n", sm->uidvalidity, sm->uidnext);
	for (size_t i = 0; i < sm->n; i++) {
		const struct store_entry *e = &sm->e[i];
		size_t bl = e->baselen - 4;

		if (o + bl + 16 > cap) {
			char *nb = realloc(buf, cap = cap * 2 + bl + 16);

			if (nb == NULL) {
				free(buf);
				return;
			}
			buf = nb;
		}
		o += (size_t)snprintf(buf + o, cap - o, "%u %.*s\n", e->m.uid, (int)bl, e->fname + 4);
	}
	if (fs_write_file_durable(sm->path, STORE_UIDLIST_NAME, buf, o, 0600) == -1)
		log_warn("imap store: %s/%s: cannot write", sm->path, STORE_UIDLIST_NAME);
	else
		sm->uidlist_lines = sm->n;
	free(buf);
}

/* Write the lines gathered during a scan (one append instead of one a file). */
static void
uidlist_flush(struct store_mbox *sm)
{
	char path[PATH_MAX];
	int fd;

	if (sm->uidlist_pending == NULL || sm->uidlist_pending_len == 0)
		goto done;
	if (sm->uidlist_lines > 2 * sm->n + 256 ||
	    fs_path(path, sizeof(path), "%s/%s", sm->path, STORE_UIDLIST_NAME) == -1 ||
	    (fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)) == -1) {
		uidlist_write(sm);
		goto done;
	}
	(void)fs_write_all(fd, sm->uidlist_pending, sm->uidlist_pending_len);
	close(fd);
done:
	free(sm->uidlist_pending);
	sm->uidlist_pending = NULL;
	sm->uidlist_pending_len = sm->uidlist_pending_cap = 0;
}

void
store_uidlist_append(struct store_mbox *sm, uint32_t uid, const char *fname)
{
	char line[600];
	int n;

	n = snprintf(line, sizeof(line), "%u %.*s\n", uid, (int)base_len(fname + 4), fname + 4);
	if (n <= 0 || (size_t)n >= sizeof(line))
		return;
	if (sm->uidlist_pending_len + (size_t)n > sm->uidlist_pending_cap) {
		size_t cap = (sm->uidlist_pending_len + (size_t)n) * 2;
		char *nb = realloc(sm->uidlist_pending, cap);

		if (nb == NULL) {
			uidlist_flush(sm);
			uidlist_write(sm);
			return;
		}
		sm->uidlist_pending = nb;
		sm->uidlist_pending_cap = cap;
	}
	memcpy(sm->uidlist_pending + sm->uidlist_pending_len, line, (size_t)n);
	sm->uidlist_pending_len += (size_t)n;
	sm->uidlist_lines++;
	if (!sm->scanning)
		uidlist_flush(sm);
}

/* --- shared mailbox state ---------------------------------------------- */

ssize_t
store_mbox_find(const struct store_mbox *sm, uint32_t uid)
{
	size_t lo = 0, hi = sm->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (sm->e[mid].m.uid == uid)
			return (ssize_t)mid;
		if (sm->e[mid].m.uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int
mbox_grow(struct store_mbox *sm)
{
	if (sm->n == sm->cap) {
		size_t cap = sm->cap ? sm->cap * 2 : 32;
		struct store_entry *ne = realloc(sm->e, cap * sizeof(*ne));

		if (ne == NULL)
			return -1;
		sm->e = ne;
		sm->cap = cap;
	}
	return 0;
}

static int
entry_cmp_uid(const void *a, const void *b)
{
	uint32_t x = ((const struct store_entry *)a)->m.uid, y = ((const struct store_entry *)b)->m.uid;

	return x < y ? -1 : x > y;
}

static struct store_entry *
mbox_insert(struct store_mbox *sm, uint32_t uid, const char *fname, uint32_t flags,
    const struct store_kwset *kw, uint64_t modseq, int64_t internaldate, uint64_t size)
{
	struct store_entry *e;
	char *copy;

	if (store_mbox_detach_views(sm) == -1 || mbox_grow(sm) == -1 ||
	    (copy = strdup(fname)) == NULL)
		return NULL;
	e = &sm->e[sm->n++];
	memset(e, 0, sizeof(*e));
	e->m.uid = uid;
	e->m.flags = flags & ~(uint32_t)IMAP_FLAG_RECENT;
	e->m.keywords = (const char *const *)(kw != NULL ? kw : &store_kwset_empty)->words;
	e->m.modseq = modseq;
	e->m.internaldate = internaldate;
	e->m.size = size;
	e->fname = copy;
	e->baselen = 4 + base_len(copy + 4);
	if (strncmp(copy, "new/", 4) == 0)
		sm->has_new = true;
	if (sm->n > 1 && sm->e[sm->n - 2].m.uid > uid) {
		qsort(sm->e, sm->n, sizeof(sm->e[0]), entry_cmp_uid);
		e = &sm->e[store_mbox_find(sm, uid)];
	}
	return e;
}

static const char *
kw_joined(struct imap_store *st, const char *const *words)
{
	const struct store_kwset *k = store_kwset_intern(st, words);

	return k != NULL ? k->joined : "";
}

struct store_entry *
store_mbox_add(struct store_mbox *sm, const char *fname, uint32_t flags,
    const struct store_kwset *kw, int64_t internaldate, uint64_t size, bool recent)
{
	uint32_t uid = sm->uidnext;
	struct store_entry *e;
	struct index_msg im;

	if (uid == UINT32_MAX)
		return NULL;
	e = mbox_insert(sm, uid, fname, flags, kw, ++sm->highestmodseq, internaldate, size);
	if (e == NULL)
		return NULL;
	sm->uidnext = uid + 1;
	e->recent = recent;
	im = (struct index_msg){ .uid = uid, .fname = e->fname, .flags = e->m.flags,
	    .keywords = kw != NULL ? kw->joined : "", .modseq = e->m.modseq,
	    .internaldate = internaldate, .size = size };
	imap_index_msg_add(sm->st->ix, sm->dbid, &im);
	imap_index_mailbox_update(sm->st->ix, sm->dbid, sm->uidnext, sm->highestmodseq,
	    sm->kw_used->joined);
	store_uidlist_append(sm, uid, fname);
	store_mbox_note_keywords(sm, kw);
	sm->gen++;
	return e;
}

void
store_mbox_remove(struct store_mbox *sm, size_t i)
{
	if (store_mbox_detach_views(sm) == -1)
		return;  /* the next scan removes it */
	imap_index_msg_delete(sm->st->ix, sm->dbid, sm->e[i].m.uid);
	free(sm->e[i].fname);
	memmove(&sm->e[i], &sm->e[i + 1], (sm->n - i - 1) * sizeof(sm->e[0]));
	sm->n--;
	sm->highestmodseq++;
	sm->gen++;
}

static int
load_cb(void *ctx, const struct index_msg *m)
{
	struct store_mbox *sm = ctx;
	const struct store_kwset *kw = store_kwset_from_joined(sm->st, m->keywords);

	if ((strncmp(m->fname, "cur/", 4) != 0 && strncmp(m->fname, "new/", 4) != 0) ||
	    strchr(m->fname + 4, '/') != NULL)
		return 0;
	return mbox_insert(sm, m->uid, m->fname, m->flags, kw, m->modseq, m->internaldate,
	    m->size) == NULL ? -1 : 0;
}

void
store_mbox_free(struct store_mbox *sm)
{
	free(sm->uidlist_pending);
	for (size_t i = 0; i < STORE_KEYWORD_LETTERS; i++)
		free(sm->kwname[i]);
	for (size_t i = 0; i < sm->n; i++)
		free(sm->e[i].fname);
	free(sm->e);
	free(sm->name);
	free(sm->dname);
	free(sm->path);
	free(sm);
}

static bool
ts_eq(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

int64_t
store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
stat_dirs(struct store_mbox *sm, struct timespec *new_r, struct timespec *cur_r)
{
	char path[PATH_MAX];
	struct stat sb;

	if (fs_path(path, sizeof(path), "%s/new", sm->path) == -1 || stat(path, &sb) == -1)
		return -1;
	*new_r = sb.st_mtim;
	if (fs_path(path, sizeof(path), "%s/cur", sm->path) == -1 || stat(path, &sb) == -1)
		return -1;
	*cur_r = sb.st_mtim;
	return 0;
}

bool
store_mbox_disk_changed(struct store_mbox *sm)
{
	struct timespec n, c;

	if (sm->deleted)
		return false;
	if (stat_dirs(sm, &n, &c) == -1)
		return true;
	if (!ts_eq(&n, &sm->new_mtime) || !ts_eq(&c, &sm->cur_mtime))
		return true;
	/* A change in the same clock tick as our scan leaves the mtime as we
	 * saw it: look again (at most twice a second) until the directories
	 * have been quiet for a while. */
	return sm->dirty && store_now_ms() - (int64_t)sm->scanned_at >= 500;
}

struct scan_file {
	char *fname;      /* "new/x" or "cur/x:2,..." */
	size_t baselen;   /* like store_entry */
};

static int
cmp_scan(const void *a, const void *b)
{
	const struct scan_file *x = a, *y = b;
	size_t l = x->baselen < y->baselen ? x->baselen : y->baselen;
	int c = memcmp(x->fname + 4, y->fname + 4, l - 4);

	return c != 0 ? c : (x->baselen > y->baselen) - (x->baselen < y->baselen);
}

static int
read_dir(struct store_mbox *sm, const char *sub, struct scan_file **files, size_t *n, size_t *cap)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	if (fs_path(path, sizeof(path), "%s/%s", sm->path, sub) == -1 || (d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.' || len > 255)
			continue;
		if (*n == *cap) {
			struct scan_file *nf = realloc(*files, (*cap = *cap ? *cap * 2 : 256) * sizeof(*nf));

			if (nf == NULL)
				goto fail;
			*files = nf;
		}
		if (((*files)[*n].fname = malloc(len + 5)) == NULL)
			goto fail;
		memcpy((*files)[*n].fname, sub, 3);
		(*files)[*n].fname[3] = '/';
		memcpy((*files)[*n].fname + 4, de->d_name, len + 1);
		(*files)[*n].baselen = 4 + base_len(de->d_name);
		(*n)++;
	}
	closedir(d);
	return 0;
fail:
	closedir(d);
	return -1;
}

/* A file we have never seen: read it for the size (and the cache). */
static void
scan_new_file(struct store_mbox *sm, const char *fname, const struct uidlist *ul)
{
	char path[PATH_MAX], base[300];
	char *data;
	size_t len = 0;
	int64_t mtime = 0;
	int e;
	uint32_t uid;
	struct store_entry *ent;
	bool in_new = strncmp(fname, "new/", 4) == 0;
	const struct store_kwset *kw;

	if (fs_path(path, sizeof(path), "%s/%s", sm->path, fname) == -1)
		return;
	data = store_read_crlf(path, false, &len, &mtime, &e);
	if (data == NULL)
		return;  /* gone already, or unreadable: the next scan sees */
	snprintf(base, sizeof(base), "%.*s", (int)base_len(fname + 4), fname + 4);
	kw = in_new ? NULL : store_kw_from_info(sm, fname, NULL);
	if (kw != NULL)
		store_mbox_note_keywords(sm, kw);
	uid = uidlist_lookup(ul, base);
	if (uid != 0 && uid < sm->uidnext && store_mbox_find(sm, uid) == -1) {
		struct index_msg im;

		ent = mbox_insert(sm, uid, fname, in_new ? 0 : store_info_flags(fname), kw,
		    ++sm->highestmodseq, mtime, len);
		if (ent != NULL) {
			im = (struct index_msg){ .uid = uid, .fname = ent->fname,
			    .flags = ent->m.flags, .keywords = kw != NULL ? kw->joined : "",
			    .modseq = ent->m.modseq,
			    .internaldate = mtime, .size = len };
			imap_index_msg_add(sm->st->ix, sm->dbid, &im);
			ent->recent = in_new;
			sm->gen++;
		}
	} else {
		ent = store_mbox_add(sm, fname, in_new ? 0 : store_info_flags(fname), kw, mtime,
		    len, true);
	}
	if (ent != NULL)
		store_cache_fill(sm, ent->m.uid, data, len);
	free(data);
}

static int
scan_once(struct store_mbox *sm, const struct uidlist *ul, bool *again_r)
{
	struct scan_file *files = NULL;
	size_t nfiles = 0, cap = 0, *order = NULL, i, j;
	struct timespec n0, c0, n1, c1;
	int ret = -1;

	*again_r = false;
	if (stat_dirs(sm, &n0, &c0) == -1)
		return -1;
	if (read_dir(sm, "new", &files, &nfiles, &cap) == -1 ||
	    read_dir(sm, "cur", &files, &nfiles, &cap) == -1)
		goto done;
	if (nfiles > 0)
		qsort(files, nfiles, sizeof(files[0]), cmp_scan);
	/* the shared entries in base order */
	if (sm->n > 0 && (order = malloc(sm->n * sizeof(*order))) == NULL)
		goto done;
	for (i = 0; i < sm->n; i++)
		order[i] = i;
	if (sm->n > 0) {
		/* sort indices by base: insertion of a comparator over sm */
		struct sort_ctx {
			struct scan_file f;
			size_t idx;
		} *tmp = malloc(sm->n * sizeof(*tmp));

		if (tmp == NULL)
			goto done;
		for (i = 0; i < sm->n; i++) {
			tmp[i].f.fname = sm->e[i].fname;
			tmp[i].f.baselen = sm->e[i].baselen;
			tmp[i].idx = i;
		}
		qsort(tmp, sm->n, sizeof(tmp[0]), cmp_scan);
		for (i = 0; i < sm->n; i++)
			order[i] = tmp[i].idx;
		free(tmp);
	}
	imap_index_begin(sm->st->ix);
	{
		bool *seen = calloc(sm->n + 1, sizeof(bool));
		size_t nold = sm->n;
		char **fresh = NULL;
		size_t nfresh = 0;

		if (seen == NULL || (nfiles > 0 && (fresh = calloc(nfiles, sizeof(char *))) == NULL)) {
			free(seen);
			imap_index_commit(sm->st->ix);
			goto done;
		}
		for (i = 0, j = 0; i < nfiles; i++) {
			struct scan_file key = files[i];
			int c = 1;

			if (i > 0 && cmp_scan(&files[i - 1], &key) == 0)
				continue;  /* the same base twice (new/ and cur/ mid-rename) */
			while (j < nold) {
				struct scan_file ef = { sm->e[order[j]].fname, sm->e[order[j]].baselen };

				c = cmp_scan(&ef, &key);
				if (c >= 0)
					break;
				j++;
			}
			if (j < nold && c == 0) {
				struct store_entry *e = &sm->e[order[j]];

				seen[order[j]] = true;
				if (strcmp(e->fname, key.fname) != 0) {
					uint32_t sys = IMAP_FLAG_SEEN | IMAP_FLAG_ANSWERED | IMAP_FLAG_FLAGGED |
					    IMAP_FLAG_DELETED | IMAP_FLAG_DRAFT;
					uint32_t nf = strncmp(key.fname, "new/", 4) == 0 ?
					    (e->m.flags & sys) : store_info_flags(key.fname);
					struct index_msg im;

					char *copy = strdup(key.fname);

					if (copy == NULL)
						continue;
					const struct store_kwset *nk = strncmp(key.fname, "new/", 4) == 0 ?
					    NULL : store_kw_from_info(sm, key.fname, e->m.keywords);

					free(e->fname);
					e->fname = copy;
					if (strncmp(copy, "new/", 4) == 0)
						sm->has_new = true;
					if (nf != (e->m.flags & sys) ||
					    (nk != NULL && (const char *const *)nk->words != e->m.keywords)) {
						e->m.flags = (e->m.flags & ~sys) | nf;
						if (nk != NULL) {
							e->m.keywords = (const char *const *)nk->words;
							store_mbox_note_keywords(sm, nk);
						}
						e->m.modseq = ++sm->highestmodseq;
						sm->gen++;
					}
					im = (struct index_msg){ .uid = e->m.uid, .fname = e->fname,
					    .flags = e->m.flags,
					    .keywords = kw_joined(sm->st, e->m.keywords),
					    .modseq = e->m.modseq };
					imap_index_msg_update(sm->st->ix, sm->dbid, &im);
				}
				j++;
			} else {
				fresh[nfresh++] = key.fname;
			}
		}
		/* vanished files: expunged by another program */
		for (i = nold; i-- > 0; ) {
			if (!seen[i])
				store_mbox_remove(sm, i);
		}
		/* new files get UIDs in name order (names begin with the time) */
		for (i = 0; i < nfresh; i++)
			scan_new_file(sm, fresh[i], ul);
		imap_index_mailbox_update(sm->st->ix, sm->dbid, sm->uidnext, sm->highestmodseq,
		    sm->kw_used->joined);
		free(fresh);
		free(seen);
	}
	imap_index_commit(sm->st->ix);
	if (stat_dirs(sm, &n1, &c1) == 0 && (!ts_eq(&n0, &n1) || !ts_eq(&c0, &c1)))
		*again_r = true;  /* changed while we read: a rename may have hidden a file */
	sm->new_mtime = n0;
	sm->cur_mtime = c0;
	{
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		sm->dirty = rt.tv_sec - n0.tv_sec < 2 || rt.tv_sec - c0.tv_sec < 2;
	}
	sm->scanned_at = (time_t)store_now_ms();
	ret = 0;
done:
	for (i = 0; i < nfiles; i++)
		free(files[i].fname);
	free(files);
	free(order);
	return ret;
}

static int
mbox_scan(struct store_mbox *sm, const struct uidlist *ul)
{
	bool again = true;
	int ret = 0;

	sm->scanning = true;
	for (int tries = 0; again && tries < 3; tries++) {
		if ((ret = scan_once(sm, ul, &again)) == -1)
			break;
	}
	sm->scanning = false;
	uidlist_flush(sm);
	return ret;
}

int
store_mbox_refresh(struct store_mbox *sm, bool force)
{
	if (sm->deleted)
		return 0;
	if (!force && !store_mbox_disk_changed(sm))
		return 0;
	return mbox_scan(sm, NULL);
}

static uint32_t
new_uidvalidity(void)
{
	static uint32_t last;
	uint32_t uv = (uint32_t)time(NULL);

	if (uv <= last)
		uv = last + 1;
	last = uv;
	return uv;
}

int
store_maildir_make(const char *path, bool folder)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	char sub[PATH_MAX];

	for (size_t i = 0; i < 3; i++) {
		if (fs_path(sub, sizeof(sub), "%s/%s", path, subs[i]) == -1 || fs_mkdir_p(sub, 0700) == -1)
			return -1;
	}
	if (folder) {
		int fd;

		if (fs_path(sub, sizeof(sub), "%s/maildirfolder", path) == -1)
			return -1;
		fd = open(sub, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd == -1)
			return -1;
		close(fd);
	}
	return 0;
}

bool
store_mbox_exists(const char *path)
{
	char sub[PATH_MAX];
	struct stat sb;

	return fs_path(sub, sizeof(sub), "%s/cur", path) == 0 && stat(sub, &sb) == 0 &&
	    S_ISDIR(sb.st_mode);
}

struct store_mbox *
store_mbox_get(struct imap_store *st, const char *name, enum imap_store_error *err_r)
{
	char dname[PATH_MAX], path[PATH_MAX], wire[STORE_NAME_MAX + 8];
	struct store_mbox *sm;
	char *keywords = NULL;
	struct uidlist ul;
	bool have_ul = false;
	int rc;

	if (store_name_to_disk(name, dname, sizeof(dname)) == -1) {
		set_err(err_r, IMAP_STORE_ERR_BADNAME);
		return NULL;
	}
	for (sm = st->mboxes; sm != NULL; sm = sm->next) {
		if (!sm->deleted && strcmp(sm->dname, dname) == 0)
			break;
	}
	if (store_mbox_path(st, dname, path, sizeof(path)) == -1) {
		set_err(err_r, IMAP_STORE_ERR_BADNAME);
		return NULL;
	}
	if (!store_mbox_exists(path)) {
		if (dname[0] != '\0') {
			set_err(err_r, IMAP_STORE_ERR_NONEXISTENT);
			return NULL;
		}
		if (store_maildir_make(path, false) == -1) {
			set_err(err_r, store_errno(errno));
			return NULL;
		}
	}
	if (sm != NULL) {
		if (store_mbox_refresh(sm, false) == -1) {
			set_err(err_r, IMAP_STORE_ERR_IO);
			return NULL;
		}
		return sm;
	}
	store_name_canon(name, wire, sizeof(wire));
	if ((sm = calloc(1, sizeof(*sm))) == NULL || (sm->name = strdup(wire)) == NULL ||
	    (sm->dname = strdup(dname)) == NULL || (sm->path = strdup(path)) == NULL)
		goto fail;
	sm->st = st;
	rc = imap_index_mailbox_get(st->ix, dname, &sm->dbid, &sm->uidvalidity, &sm->uidnext,
	    &sm->highestmodseq, &keywords);
	if (rc == -1)
		goto fail;
	if (rc == 0) {
		/* not in the index (new, or the index was lost): the uidlist keeps UIDs */
		have_ul = uidlist_read(path, &ul) == 0;
		sm->uidvalidity = have_ul ? ul.uidvalidity : new_uidvalidity();
		sm->uidnext = have_ul && ul.uidnext > 0 ? ul.uidnext : 1;
		sm->highestmodseq = 1;
		if (imap_index_mailbox_add(st->ix, dname, sm->uidvalidity, sm->uidnext, &sm->dbid) == -1)
			goto fail;
		if (!have_ul)
			uidlist_write(sm);
	}
	kw_file_read(sm);
	sm->kw_used = store_kwset_from_joined(st, keywords);
	free(keywords);
	keywords = NULL;
	if (sm->kw_used == NULL)
		goto fail;
	if (rc == 1 && imap_index_msgs_load(st->ix, sm->dbid, load_cb, sm) == -1)
		goto fail;
	sm->uidlist_lines = sm->n + 1;
	if (mbox_scan(sm, have_ul ? &ul : NULL) == -1)
		goto fail;
	if (have_ul) {
		uidlist_write(sm);  /* compact */
		uidlist_free(&ul);
	}
	sm->next = st->mboxes;
	st->mboxes = sm;
	return sm;
fail:
	log_warnx("imap store: %s: cannot load mailbox %s", st->address, name);
	if (have_ul)
		uidlist_free(&ul);
	free(keywords);
	if (sm != NULL)
		store_mbox_free(sm);
	set_err(err_r, IMAP_STORE_ERR_IO);
	return NULL;
}

