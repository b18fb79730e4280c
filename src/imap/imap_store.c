/*
 * imap_store.c: one account's Maildir++ as IMAP mailboxes (the registry of
 * shared stores, mailbox names, keyword sets, LIST/CREATE/DELETE/RENAME/
 * SUBSCRIBE/STATUS/APPEND; the scan lives in imap_store_scan.c).
 * Trusts nothing on disk: file names from other programs (mutt, delivery)
 * are parsed, never used to build paths outside the Maildir. RFC 3501, the
 * Maildir spec (cr.yp.to/proto/maildir.html) and Maildir++ (Courier).
 * See docs/imap-storage.md for the layout and the name encoding.
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
#include "delivery/delivery.h"
#include "imap/imap_store_private.h"

#define DOT_RUN "&AC4-"         /* "." inside a name, on disk (see docs) */

static struct imap_store *registry;

static const struct {
	const char *name;
	unsigned attr;
} special_use[] = {
	{ "Sent", IMAP_MBOX_SENT },
	{ "Drafts", IMAP_MBOX_DRAFTS },
	{ "Trash", IMAP_MBOX_TRASH },
	{ "Junk", IMAP_MBOX_JUNK },
	{ "Archive", IMAP_MBOX_ARCHIVE },
};

enum imap_store_error
store_errno(int e)
{
	if (e == ENOSPC || e == EDQUOT)
		return IMAP_STORE_ERR_QUOTA;
	if (e == ENOENT)
		return IMAP_STORE_ERR_NONEXISTENT;
	return IMAP_STORE_ERR_IO;
}

static void
set_err(enum imap_store_error *err_r, enum imap_store_error e)
{
	if (err_r != NULL)
		*err_r = e;
}

/* --- names ------------------------------------------------------------- */

static bool
is_inbox(const char *name, size_t len)
{
	return len == 5 && strncasecmp(name, "INBOX", 5) == 0;
}

int
store_name_to_disk(const char *name, char *buf, size_t buflen)
{
	size_t len = strlen(name), o = 0;
	const char *level = name;

	if (len == 0 || len > STORE_NAME_MAX || strstr(name, DOT_RUN) != NULL)
		return -1;
	if (is_inbox(name, len)) {
		buf[0] = '\0';
		return 0;
	}
	if (o + 2 > buflen)
		return -1;
	buf[o++] = '.';
	for (const char *p = name; ; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '/' || c == '\0') {
			size_t l = (size_t)(p - level);

			/* no empty levels, no "." or ".." levels */
			if (l == 0 || (l == 1 && level[0] == '.') ||
			    (l == 2 && level[0] == '.' && level[1] == '.'))
				return -1;
			if (level == name && is_inbox(level, l) && c == '/') {
				/* "inbox/x" is "INBOX/x": INBOX is case-insensitive */
				memcpy(buf + 1, "INBOX", 5);
			}
			if (c == '\0')
				break;
			if (o + 2 > buflen)
				return -1;
			buf[o++] = '.';
			level = p + 1;
			continue;
		}
		if (c < 0x20 || c >= 0x7f || c == '*' || c == '%' || c == '\\')
			return -1;
		if (c == '.') {
			if (o + sizeof(DOT_RUN) > buflen)
				return -1;
			memcpy(buf + o, DOT_RUN, sizeof(DOT_RUN) - 1);
			o += sizeof(DOT_RUN) - 1;
			continue;
		}
		if (o + 2 > buflen)
			return -1;
		buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return 0;
}

/* ".a.b&AC4-c" -> "a/b.c"; -1 for names we would not have written. */
static int
disk_to_name(const char *dname, char *buf, size_t buflen)
{
	size_t o = 0;
	char back[PATH_MAX];

	if (dname[0] != '.' || dname[1] == '.' || dname[1] == '\0')
		return -1;
	for (const char *p = dname + 1; *p != '\0'; ) {
		if (o + 2 > buflen)
			return -1;
		if (strncmp(p, DOT_RUN, sizeof(DOT_RUN) - 1) == 0) {
			buf[o++] = '.';
			p += sizeof(DOT_RUN) - 1;
		} else if (*p == '.') {
			buf[o++] = '/';
			p++;
		} else {
			buf[o++] = *p++;
		}
	}
	buf[o] = '\0';
	/* round trip: only names that map back to the same directory */
	if (store_name_to_disk(buf, back, sizeof(back)) == -1 || strcmp(back, dname) != 0)
		return -1;
	return 0;
}

/* The canonical wire form: "INBOX" upper-cased as first level. */
void
store_name_canon(const char *name, char *buf, size_t buflen)
{
	snprintf(buf, buflen, "%s", name);
	if (strncasecmp(buf, "INBOX", 5) == 0 && (buf[5] == '\0' || buf[5] == '/'))
		memcpy(buf, "INBOX", 5);
}

int
store_mbox_path(struct imap_store *st, const char *dname, char *buf, size_t buflen)
{
	if (dname[0] == '\0')
		return fs_path(buf, buflen, "%s", st->root);
	return fs_path(buf, buflen, "%s/%s", st->root, dname);
}

/* --- keyword sets ------------------------------------------------------ */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct store_kwset store_kwset_empty = { .joined = (char *)"", .words = (char *[]){ NULL } };

const struct store_kwset *
store_kwset_intern(struct imap_store *st, const char *const *words)
{
	const char *tmp[64];
	size_t n = 0, len = 0;
	char *joined;
	struct store_kwset *k;

	for (size_t i = 0; words != NULL && words[i] != NULL && n < 64; i++) {
		bool dup = false;

		if (words[i][0] == '\0' || strpbrk(words[i], " \t\r\n") != NULL)
			continue;
		for (size_t j = 0; j < n; j++)
			dup |= strcasecmp(tmp[j], words[i]) == 0;
		if (!dup) {
			tmp[n++] = words[i];
			len += strlen(words[i]) + 1;
		}
	}
	if (n == 0)
		return &store_kwset_empty;
	qsort(tmp, n, sizeof(tmp[0]), cmp_str);
	joined = malloc(len);
	if (joined == NULL)
		return NULL;
	joined[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strcat(joined, " ");
		strcat(joined, tmp[i]);
	}
	for (k = st->kwsets; k != NULL; k = k->next) {
		if (strcmp(k->joined, joined) == 0) {
			free(joined);
			return k;
		}
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL || (k->words = calloc(n + 1, sizeof(char *))) == NULL) {
		free(k);
		free(joined);
		return NULL;
	}
	k->joined = joined;
	for (size_t i = 0; i < n; i++) {
		if ((k->words[i] = strdup(tmp[i])) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(k->words[j]);
			free(k->words);
			free(k);
			free(joined);
			return NULL;
		}
	}
	k->next = st->kwsets;
	st->kwsets = k;
	return k;
}

const struct store_kwset *
store_kwset_from_joined(struct imap_store *st, const char *joined)
{
	char *copy, *save = NULL;
	const char *words[65];
	size_t n = 0;
	const struct store_kwset *k;

	if (joined == NULL || joined[0] == '\0')
		return &store_kwset_empty;
	if ((copy = strdup(joined)) == NULL)
		return NULL;
	for (char *w = strtok_r(copy, " ", &save); w != NULL && n < 64; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	words[n] = NULL;
	k = store_kwset_intern(st, words);
	free(copy);
	return k;
}

void
store_mbox_note_keywords(struct store_mbox *sm, const struct store_kwset *kw)
{
	const char *words[130];
	size_t n = 0;
	const struct store_kwset *k;

	if (kw == NULL || kw->words[0] == NULL)
		return;
	for (size_t i = 0; sm->kw_used->words[i] != NULL && n < 64; i++)
		words[n++] = sm->kw_used->words[i];
	for (size_t i = 0; kw->words[i] != NULL && n < 128; i++)
		words[n++] = kw->words[i];
	words[n] = NULL;
	k = store_kwset_intern(sm->st, words);
	if (k != NULL && k != sm->kw_used) {
		sm->kw_used = k;
		imap_index_mailbox_update(sm->st->ix, sm->dbid, sm->uidnext, sm->highestmodseq,
		    k->joined);
	}
}

/* --- the store --------------------------------------------------------- */

static void
store_free(struct imap_store *st)
{
	for (struct imap_store **pp = &registry; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	}
	while (st->mboxes != NULL) {
		struct store_mbox *sm = st->mboxes;

		st->mboxes = sm->next;
		store_mbox_free(sm);
	}
	while (st->kwsets != NULL) {
		struct store_kwset *k = st->kwsets;

		st->kwsets = k->next;
		for (size_t i = 0; k->words[i] != NULL; i++)
			free(k->words[i]);
		free(k->words);
		free(k->joined);
		free(k);
	}
	imap_index_free(&st->ix);
	free(st->root);
	free(st->address);
	free(st);
}

/* The index file as it was left: a store kept after its last session is
 * reused only if nobody touched the index meanwhile. */
static bool
index_stat(const struct imap_store *st, struct stat *sb)
{
	char path[PATH_MAX];

	return fs_path(path, sizeof(path), "%s/%s", st->root, STORE_INDEX_NAME) == 0 &&
	    stat(path, sb) == 0;
}

/* Forget stores idle too long or too many (oldest first). */
static void
registry_trim(void)
{
	int64_t now = store_now_ms();
	size_t idle = 0;

	for (struct imap_store *st = registry, *next; st != NULL; st = next) {
		next = st->next;
		if (st->refs > 0)
			continue;
		if (now - st->idle_since > STORE_IDLE_KEEP_MS)
			store_free(st);
		else
			idle++;
	}
	while (idle > STORE_IDLE_MAX) {
		struct imap_store *oldest = NULL;

		for (struct imap_store *st = registry; st != NULL; st = st->next) {
			if (st->refs == 0 && (oldest == NULL || st->idle_since < oldest->idle_since))
				oldest = st;
		}
		store_free(oldest);
		idle--;
	}
}

struct imap_store *
imap_store_open(const char *data_dir, const char *address, enum imap_store_error *err_r)
{
	char root[PATH_MAX], path[PATH_MAX];
	struct imap_store *st;
	bool created = false;

	if (delivery_maildir_path(data_dir, address, root, sizeof(root)) == -1) {
		set_err(err_r, IMAP_STORE_ERR_BADNAME);
		return NULL;
	}
	registry_trim();
	for (st = registry; st != NULL; st = st->next) {
		struct stat sb;

		if (strcmp(st->root, root) != 0)
			continue;
		if (st->refs > 0) {
			st->refs++;
			return st;
		}
		/* kept from an earlier session: still what the disk says? */
		if (index_stat(st, &sb) && sb.st_dev == st->ix_dev && sb.st_ino == st->ix_ino &&
		    sb.st_size == st->ix_size && sb.st_mtim.tv_sec == st->ix_mtime.tv_sec &&
		    sb.st_mtim.tv_nsec == st->ix_mtime.tv_nsec) {
			st->refs = 1;
			return st;
		}
		store_free(st);
		break;
	}
	if (store_maildir_make(root, false) == -1) {
		log_warn("imap store: %s: cannot create %s", address, root);
		set_err(err_r, store_errno(errno));
		return NULL;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->root = strdup(root)) == NULL ||
	    (st->address = strdup(address)) == NULL)
		goto fail;
	if (gethostname(st->hostname, sizeof(st->hostname) - 1) == -1 || st->hostname[0] == '\0')
		snprintf(st->hostname, sizeof(st->hostname), "localhost");
	for (char *h = st->hostname; *h != '\0'; h++) {
		if (*h == '/' || *h == ':' || *h == ',' || (unsigned char)*h < 0x21)
			*h = '_';
	}
	if (fs_path(path, sizeof(path), "%s/%s", root, STORE_INDEX_NAME) == -1 ||
	    (st->ix = imap_index_open(path, &created)) == NULL)
		goto fail;
	st->refs = 1;
	if (created) {
		/* first use: the special-use folders (RFC 6154) */
		for (size_t i = 0; i < sizeof(special_use) / sizeof(special_use[0]); i++) {
			enum imap_store_error e;

			if (imap_store_create(st, special_use[i].name, &e) == -1 &&
			    e != IMAP_STORE_ERR_EXISTS)
				log_warnx("imap store: %s: cannot create %s", address, special_use[i].name);
			/* subscribed, so clients that list LSUB only show them */
			(void)imap_store_subscribe(st, special_use[i].name, true, &e);
		}
	}
	st->next = registry;
	registry = st;
	return st;
fail:
	log_warnx("imap store: %s: cannot open the store", address);
	if (st != NULL) {
		imap_index_free(&st->ix);
		free(st->root);
		free(st->address);
		free(st);
	}
	set_err(err_r, IMAP_STORE_ERR_IO);
	return NULL;
}

void
imap_store_close(struct imap_store **stp)
{
	struct imap_store *st = *stp;
	struct stat sb;

	if (st == NULL)
		return;
	*stp = NULL;
	if (--st->refs > 0)
		return;
	/* Kept a while for the next login of this account (its mailboxes
	 * need not be loaded again), without its SQLite connection. */
	imap_index_park(st->ix, 0);
	if (!index_stat(st, &sb)) {
		store_free(st);
		return;
	}
	st->ix_dev = sb.st_dev;
	st->ix_ino = sb.st_ino;
	st->ix_size = sb.st_size;
	st->ix_mtime = sb.st_mtim;
	st->idle_since = store_now_ms();
	registry_trim();
}

/* --- subscriptions ----------------------------------------------------- */

/* The subscriptions file: one wire name a line (Courier/Dovecot Maildir++). */
static int
subs_read(struct imap_store *st, char ***names_r, size_t *n_r)
{
	char path[PATH_MAX], *buf = NULL, *save = NULL;
	size_t len;
	char **names = NULL;
	size_t n = 0;

	*names_r = NULL;
	*n_r = 0;
	if (fs_path(path, sizeof(path), "%s/%s", st->root, STORE_SUBSCRIPTIONS_NAME) == -1)
		return -1;
	if (fs_read_file(path, &buf, &len, 1u << 20) == -1)
		return errno == ENOENT ? 0 : -1;
	for (char *l = strtok_r(buf, "\r\n", &save); l != NULL; l = strtok_r(NULL, "\r\n", &save)) {
		char **nn;

		if (l[0] == '\0' || strchr(l, '\t') != NULL)
			continue;  /* Dovecot's "V\t2" header and its tab-form lines */
		if ((nn = realloc(names, (n + 1) * sizeof(*nn))) == NULL)
			break;
		names = nn;
		if ((names[n] = strdup(l)) == NULL)
			break;
		n++;
	}
	free(buf);
	*names_r = names;
	*n_r = n;
	return 0;
}

static void
names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int
imap_store_subscribe(struct imap_store *st, const char *name, bool on, enum imap_store_error *err_r)
{
	char dname[PATH_MAX], wire[STORE_NAME_MAX + 8];
	char **names;
	size_t n, len = 0, o = 0;
	char *buf;
	bool found = false;
	int ret;

	if (store_name_to_disk(name, dname, sizeof(dname)) == -1) {
		set_err(err_r, IMAP_STORE_ERR_BADNAME);
		return -1;
	}
	store_name_canon(name, wire, sizeof(wire));
	if (subs_read(st, &names, &n) == -1) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	if ((buf = malloc(len + strlen(wire) + 2)) == NULL) {
		names_free(names, n);
		set_err(err_r, IMAP_STORE_ERR_IO);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], wire) == 0) {
			found = true;
			if (!on)
				continue;
		}
		o += (size_t)sprintf(buf + o, "%s\n", names[i]);
	}
	if (on && !found)
		o += (size_t)sprintf(buf + o, "%s\n", wire);
	names_free(names, n);
	ret = fs_write_file_durable(st->root, STORE_SUBSCRIPTIONS_NAME, buf, o, 0600);
	free(buf);
	if (ret == -1) {
		log_warn("imap store: %s: cannot write subscriptions", st->address);
		set_err(err_r, store_errno(errno));
		return -1;
	}
	set_err(err_r, IMAP_STORE_OK);
	return 0;
}

/* --- LIST -------------------------------------------------------------- */

static int
cmp_info(const void *a, const void *b)
{
	const struct imap_mailbox_info *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;

	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
info_add(struct imap_mailbox_info **list, size_t *n, size_t *cap, const char *name, unsigned attrs)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*list)[i].name, name) == 0) {
			(*list)[i].attrs &= attrs | ~(unsigned)IMAP_MBOX_NOSELECT;
			return 0;
		}
	}
	if (*n == *cap) {
		struct imap_mailbox_info *nl = realloc(*list, (*cap = *cap ? *cap * 2 : 16) * sizeof(*nl));

		if (nl == NULL)
			return -1;
		*list = nl;
	}
	if (((*list)[*n].name = strdup(name)) == NULL)
		return -1;
	(*list)[(*n)++].attrs = attrs;
	return 0;
}

int
imap_store_list(struct imap_store *st, struct imap_mailbox_info **list_r, size_t *n_r)
{
	struct imap_mailbox_info *list = NULL;
	size_t n = 0, cap = 0;
	char name[PATH_MAX], **subs = NULL;
	size_t nsubs = 0;
	DIR *d;
	struct dirent *de;

	*list_r = NULL;
	*n_r = 0;
	if ((d = opendir(st->root)) == NULL)
		return -1;
	if (info_add(&list, &n, &cap, "INBOX", 0) == -1)
		goto fail;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];

		if (disk_to_name(de->d_name, name, sizeof(name)) == -1 ||
		    fs_path(path, sizeof(path), "%s/%s", st->root, de->d_name) == -1 || !store_mbox_exists(path))
			continue;
		if (info_add(&list, &n, &cap, name, 0) == -1)
			goto fail;
		/* parents that do not exist: \Noselect (Maildir++ is flat) */
		for (char *slash = strrchr(name, '/'); slash != NULL; slash = strrchr(name, '/')) {
			*slash = '\0';
			if (info_add(&list, &n, &cap, name, IMAP_MBOX_NOSELECT) == -1)
				goto fail;
		}
	}
	closedir(d);
	d = NULL;
	(void)subs_read(st, &subs, &nsubs);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(list[i].name);
		bool kids = false;

		for (size_t j = 0; j < n && !kids; j++)
			kids = strncmp(list[j].name, list[i].name, l) == 0 && list[j].name[l] == '/';
		list[i].attrs |= kids ? IMAP_MBOX_HASCHILDREN : IMAP_MBOX_HASNOCHILDREN;
		for (size_t j = 0; j < nsubs; j++) {
			if (strcmp(subs[j], list[i].name) == 0)
				list[i].attrs |= IMAP_MBOX_SUBSCRIBED;
		}
		for (size_t j = 0; j < sizeof(special_use) / sizeof(special_use[0]); j++) {
			if (strcmp(list[i].name, special_use[j].name) == 0)
				list[i].attrs |= special_use[j].attr;
		}
	}
	/* subscribed names that no longer exist still show in LSUB */
	for (size_t j = 0; j < nsubs; j++) {
		bool found = false;

		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(subs[j], list[i].name) == 0;
		if (!found && info_add(&list, &n, &cap, subs[j],
		    IMAP_MBOX_NOSELECT | IMAP_MBOX_SUBSCRIBED) == -1)
			goto fail;
	}
	names_free(subs, nsubs);
	subs = NULL;
	qsort(list, n, sizeof(list[0]), cmp_info);
	*list_r = list;
	*n_r = n;
	return 0;
fail:
	if (d != NULL)
		closedir(d);
	names_free(subs, nsubs);
	imap_store_infos_free(&list, n);
	return -1;
}

void
imap_store_infos_free(struct imap_mailbox_info **listp, size_t n)
{
	if (*listp == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((*listp)[i].name);
	free(*listp);
	*listp = NULL;
}

/* --- CREATE / DELETE / RENAME ------------------------------------------ */

int
imap_store_create(struct imap_store *st, const char *name, enum imap_store_error *err_r)
{
	char wire[STORE_NAME_MAX + 8], dname[PATH_MAX], path[PATH_MAX];
	size_t len;

	snprintf(wire, sizeof(wire), "%s", name);
	len = strlen(wire);
	if (len > 1 && wire[len - 1] == '/')
		wire[len - 1] = '\0';  /* "foo/": will hold children (RFC 3501 6.3.3) */
	if (store_name_to_disk(wire, dname, sizeof(dname)) == -1 || strlen(name) > STORE_NAME_MAX) {
		set_err(err_r, IMAP_STORE_ERR_BADNAME);
		return -1;
	}
	if (dname[0] == '\0') {
		set_err(err_r, IMAP_STORE_ERR_EXISTS);
		return -1;
	}
	if (store_mbox_path(st, dname, path, sizeof(path)) == -1) {
		set_err(err_r, IMAP_STORE_ERR_BADNAME);
		return -1;
	}
	if (mkdir(path, 0700) == -1) {
		set_err(err_r, errno == EEXIST ? IMAP_STORE_ERR_EXISTS : store_errno(errno));
		if (errno != EEXIST)
			log_warn("imap store: %s: mkdir %s", st->address, path);
		return -1;
	}
	if (store_maildir_make(path, true) == -1) {
		log_warn("imap store: %s: create %s", st->address, path);
		set_err(err_r, store_errno(errno));
		return -1;
	}
	set_err(err_r, IMAP_STORE_OK);
	return 0;
}

/* rm -r of a Maildir folder already renamed out of sight. */
static void
remove_tree(const char *path, int depth)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char sub[PATH_MAX];

	if (d != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct stat sb;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
			    fs_path(sub, sizeof(sub), "%s/%s", path, de->d_name) == -1)
				continue;
			if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode) && depth < 2)
				remove_tree(sub, depth + 1);
			else
				(void)unlink(sub);
		}
		closedir(d);
	}
	(void)rmdir(path);
}

static void
mbox_forget(struct store_mbox *sm)
{
	/* Views still open on it see every message expunged. */
	(void)store_mbox_detach_views(sm);
	for (size_t i = 0; i < sm->n; i++)
		free(sm->e[i].fname);
	sm->n = 0;
	sm->deleted = true;
	sm->gen++;
}

int
imap_store_delete(struct imap_store *st, const char *name, enum imap_store_error *err_r)
{
	char dname[PATH_MAX], path[PATH_MAX], trash[PATH_MAX], rnd[17];
	int64_t id;
	uint32_t uv, un;
	uint64_t hms;
	char *kw = NULL;

	if (store_name_to_disk(name, dname, sizeof(dname)) == -1) {
		set_err(err_r, IMAP_STORE_ERR_BADNAME);
		return -1;
	}
	if (dname[0] == '\0') {
		set_err(err_r, IMAP_STORE_ERR_INBOX);
		return -1;
	}
	if (store_mbox_path(st, dname, path, sizeof(path)) == -1 || !store_mbox_exists(path)) {
		set_err(err_r, IMAP_STORE_ERR_NONEXISTENT);
		return -1;
	}
	fs_random_hex(rnd, 16);
	if (fs_path(trash, sizeof(trash), "%s/..bulwark-deleted.%s", st->root, rnd) == -1 ||
	    rename(path, trash) == -1) {
		log_warn("imap store: %s: delete %s", st->address, path);
		set_err(err_r, store_errno(errno));
		return -1;
	}
	remove_tree(trash, 0);
	for (struct store_mbox *sm = st->mboxes; sm != NULL; sm = sm->next) {
		if (!sm->deleted && strcmp(sm->dname, dname) == 0)
			mbox_forget(sm);
	}
	if (imap_index_mailbox_get(st->ix, dname, &id, &uv, &un, &hms, &kw) == 1)
		imap_index_mailbox_delete(st->ix, id);
	free(kw);
	set_err(err_r, IMAP_STORE_OK);
	return 0;
}

/* RENAME INBOX (RFC 3501 6.3.5): its messages move to the new mailbox. */
static int
rename_inbox(struct imap_store *st, const char *to, enum imap_store_error *err_r)
{
	struct store_mbox *in, *dst;
	char from_path[PATH_MAX], to_path[PATH_MAX];

	if (imap_store_create(st, to, err_r) == -1)
		return -1;
	if ((in = store_mbox_get(st, "INBOX", err_r)) == NULL ||
	    (dst = store_mbox_get(st, to, err_r)) == NULL)
		return -1;
	for (size_t i = 0; i < in->n; i++) {
		if (fs_path(from_path, sizeof(from_path), "%s/%s", in->path, in->e[i].fname) == -1 ||
		    fs_path(to_path, sizeof(to_path), "%s/%s", dst->path, in->e[i].fname) == -1)
			continue;
		(void)rename(from_path, to_path);
	}
	if (store_mbox_refresh(in, true) == -1 || store_mbox_refresh(dst, true) == -1) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		return -1;
	}
	set_err(err_r, IMAP_STORE_OK);
	return 0;
}

int
imap_store_rename(struct imap_store *st, const char *from, const char *to,
    enum imap_store_error *err_r)
{
	char fd[PATH_MAX], td[PATH_MAX], path[PATH_MAX], tpath[PATH_MAX], wire[STORE_NAME_MAX + 8];
	size_t fl, tl;
	DIR *d;
	struct dirent *de;
	char **moves = NULL;
	size_t nmoves = 0;
	int ret = -1;

	if (store_name_to_disk(from, fd, sizeof(fd)) == -1 || store_name_to_disk(to, td, sizeof(td)) == -1) {
		set_err(err_r, IMAP_STORE_ERR_BADNAME);
		return -1;
	}
	if (td[0] == '\0') {
		set_err(err_r, IMAP_STORE_ERR_EXISTS);
		return -1;
	}
	if (fd[0] == '\0')
		return rename_inbox(st, to, err_r);
	fl = strlen(fd);
	tl = strlen(td);
	if (strcmp(fd, td) == 0 || (tl > fl && strncmp(td, fd, fl) == 0 && td[fl] == '.')) {
		set_err(err_r, IMAP_STORE_ERR_BADNAME);  /* onto itself or inside itself */
		return -1;
	}
	if (store_mbox_path(st, fd, path, sizeof(path)) == -1) {
		set_err(err_r, IMAP_STORE_ERR_NONEXISTENT);
		return -1;
	}
	/* the mailbox and its children: ".a" and ".a.*" (an implied \Noselect
	 * parent has only children: they move all the same, RFC 3501 6.3.5) */
	if ((d = opendir(st->root)) == NULL) {
		set_err(err_r, store_errno(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		char **nm;

		if (strncmp(de->d_name, fd, fl) != 0 || (de->d_name[fl] != '\0' && de->d_name[fl] != '.'))
			continue;
		if (fs_path(tpath, sizeof(tpath), "%s/%s", st->root, de->d_name) == -1 ||
		    !store_mbox_exists(tpath))
			continue;
		if ((nm = realloc(moves, (nmoves + 1) * sizeof(*nm))) == NULL ||
		    (nm[nmoves] = strdup(de->d_name)) == NULL) {
			if (nm != NULL)
				moves = nm;
			closedir(d);
			set_err(err_r, IMAP_STORE_ERR_IO);
			goto done;
		}
		moves = nm;
		nmoves++;
	}
	closedir(d);
	if (nmoves == 0) {
		set_err(err_r, IMAP_STORE_ERR_NONEXISTENT);
		goto done;
	}
	for (size_t i = 0; i < nmoves; i++) {
		struct stat sb;

		if (fs_path(tpath, sizeof(tpath), "%s/%s%s", st->root, td, moves[i] + fl) == -1 ||
		    strlen(moves[i]) - fl + tl > 255) {
			set_err(err_r, IMAP_STORE_ERR_BADNAME);
			goto done;
		}
		if (lstat(tpath, &sb) == 0) {
			set_err(err_r, IMAP_STORE_ERR_EXISTS);
			goto done;
		}
	}
	for (size_t i = 0; i < nmoves; i++) {
		if (fs_path(path, sizeof(path), "%s/%s", st->root, moves[i]) == -1 ||
		    fs_path(tpath, sizeof(tpath), "%s/%s%s", st->root, td, moves[i] + fl) == -1 ||
		    rename(path, tpath) == -1) {
			log_warn("imap store: %s: rename %s", st->address, moves[i]);
			set_err(err_r, store_errno(errno));
			goto done;
		}
	}
	imap_index_mailbox_rename(st->ix, fd, td);
	/* loaded mailboxes follow (their views keep working) */
	for (struct store_mbox *sm = st->mboxes; sm != NULL; sm = sm->next) {
		size_t l = strlen(sm->dname);
		char nd[PATH_MAX], *a, *b, *c;

		if (sm->deleted || l < fl || strncmp(sm->dname, fd, fl) != 0 ||
		    (sm->dname[fl] != '\0' && sm->dname[fl] != '.'))
			continue;
		if (fs_path(nd, sizeof(nd), "%s%s", td, sm->dname + fl) == -1 ||
		    store_mbox_path(st, nd, tpath, sizeof(tpath)) == -1 || disk_to_name(nd, wire, sizeof(wire)) == -1)
			continue;
		a = strdup(nd);
		b = strdup(tpath);
		c = strdup(wire);
		if (a == NULL || b == NULL || c == NULL) {
			free(a);
			free(b);
			free(c);
			continue;
		}
		free(sm->dname);
		free(sm->path);
		free(sm->name);
		sm->dname = a;
		sm->path = b;
		sm->name = c;
	}
	set_err(err_r, IMAP_STORE_OK);
	ret = 0;
done:
	names_free(moves, nmoves);
	return ret;
}

/* --- STATUS / APPEND --------------------------------------------------- */

int
imap_store_status(struct imap_store *st, const char *name, struct imap_status *s_r,
    enum imap_store_error *err_r)
{
	struct store_mbox *sm = store_mbox_get(st, name, err_r);

	memset(s_r, 0, sizeof(*s_r));
	if (sm == NULL)
		return -1;
	s_r->messages = (uint32_t)sm->n;
	s_r->uidnext = sm->uidnext;
	s_r->uidvalidity = sm->uidvalidity;
	s_r->highestmodseq = sm->highestmodseq;
	for (size_t i = 0; i < sm->n; i++) {
		s_r->recent += sm->e[i].recent;
		s_r->unseen += (sm->e[i].m.flags & IMAP_FLAG_SEEN) == 0;
	}
	set_err(err_r, IMAP_STORE_OK);
	return 0;
}

int
imap_store_append(struct imap_store *st, const char *name, const char *data, size_t len,
    uint32_t flags, const char *const *keywords, int64_t internaldate,
    uint32_t *uidvalidity_r, uint32_t *uid_r, enum imap_store_error *err_r)
{
	struct store_mbox *sm = store_mbox_get(st, name, err_r);
	char unique[400], info[64], tmp[PATH_MAX], final[PATH_MAX], fname[600], dir[PATH_MAX];
	char letters[STORE_KEYWORD_LETTERS + 1];
	size_t lf = 0, crlf = 0, o = 0;
	char *buf;
	int fd;
	const struct store_kwset *kw;
	struct store_entry *e;
	struct timespec times[2];

	if (sm == NULL)
		return -1;
	if ((buf = malloc(len + 1)) == NULL) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
			continue;
		buf[o++] = data[i];
	}
	lf = o;
	crlf = lf;
	for (size_t i = 0; i < lf; i++)
		crlf += buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r');
	store_unique(st, unique, sizeof(unique));
	kw = store_kwset_intern(st, keywords);
	store_kw_letters(sm, kw != NULL ? (const char *const *)kw->words : NULL, letters,
	    sizeof(letters));
	store_info_build(flags, NULL, letters, info, sizeof(info));
	if (fs_path(tmp, sizeof(tmp), "%s/tmp/%s,S=%zu,W=%zu", sm->path, unique, lf, crlf) == -1 ||
	    fs_path(fname, sizeof(fname), "cur/%s,S=%zu,W=%zu:2,%s", unique, lf, crlf, info) == -1 ||
	    fs_path(final, sizeof(final), "%s/%s", sm->path, fname) == -1 ||
	    fs_path(dir, sizeof(dir), "%s/cur", sm->path) == -1) {
		free(buf);
		set_err(err_r, IMAP_STORE_ERR_IO);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 || fs_write_all(fd, buf, lf) == -1 || fsync(fd) == -1) {
		int saved = errno;

		if (fd != -1) {
			close(fd);
			(void)unlink(tmp);
		}
		free(buf);
		log_warn("imap store: %s: append to %s", st->address, sm->name);
		set_err(err_r, store_errno(saved));
		return -1;
	}
	if (internaldate < 0)
		internaldate = time(NULL);
	/* the file's mtime is the INTERNALDATE, so a rebuilt index finds it again */
	times[0].tv_sec = times[1].tv_sec = (time_t)internaldate;
	times[0].tv_nsec = times[1].tv_nsec = 0;
	(void)futimens(fd, times);
	close(fd);
	if (rename(tmp, final) == -1 || fs_fsync_dir(dir) == -1) {
		int saved = errno;

		(void)unlink(tmp);
		free(buf);
		log_warn("imap store: %s: append to %s", st->address, sm->name);
		set_err(err_r, store_errno(saved));
		return -1;
	}
	imap_index_begin(st->ix);
	e = store_mbox_add(sm, fname, flags, kw, internaldate, crlf, true);
	if (e != NULL) {
		/* the message as served (LF -> CRLF), for the cache */
		char *served = malloc(crlf + 1);

		if (served != NULL) {
			o = 0;
			for (size_t i = 0; i < lf; i++) {
				if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
					served[o++] = '\r';
				served[o++] = buf[i];
			}
			store_cache_fill(sm, e->m.uid, served, o);
			free(served);
		}
	}
	free(buf);
	imap_index_commit(st->ix);
	if (e == NULL) {
		set_err(err_r, IMAP_STORE_ERR_IO);
		return -1;
	}
	if (uidvalidity_r != NULL)
		*uidvalidity_r = sm->uidvalidity;
	if (uid_r != NULL)
		*uid_r = e->m.uid;
	set_err(err_r, IMAP_STORE_OK);
	return 0;
}
