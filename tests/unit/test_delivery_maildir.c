/*
 * test_delivery_maildir.c: tests for src/delivery/delivery_maildir.c. The
 * path encoding is a table (no address may climb out of mail/ or name a
 * hidden or dot directory); deliveries go into a mkdtemp(3) directory and
 * the resulting Maildir is checked file by file: new/ holds the message with
 * ",S=" equal to its size, Return-Path first, LF line ends, mode 0600, and
 * tmp/ is left empty.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery/delivery.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- delivery_maildir_path ---- */

struct path_case {
	const char *name;
	const char *address;
	const char *path;   /* under "/srv/bw", or NULL when refused */
	size_t buflen;      /* 0: PATH_MAX */
};

static const struct path_case path_cases[] = {
	{ .name = "plain", .address = "bob@example.test", .path = "/srv/bw/mail/example.test/bob" },
	{ .name = "local part lower-cased", .address = "Bob.SMITH@example.test",
	  .path = "/srv/bw/mail/example.test/bob.smith" },
	{ .name = "domain lower-cased", .address = "bob@EXAMPLE.Test",
	  .path = "/srv/bw/mail/example.test/bob" },
	{ .name = "allowed punctuation", .address = "first.last+tag_x-y@example.test",
	  .path = "/srv/bw/mail/example.test/first.last+tag_x-y" },
	{ .name = "slash encoded", .address = "a/b@example.test",
	  .path = "/srv/bw/mail/example.test/a%2Fb" },
	{ .name = "dot-dot local part", .address = "..@example.test",
	  .path = "/srv/bw/mail/example.test/%2E." },
	{ .name = "single dot local part", .address = ".@example.test",
	  .path = "/srv/bw/mail/example.test/%2E" },
	{ .name = "leading dot encoded", .address = ".hidden@example.test",
	  .path = "/srv/bw/mail/example.test/%2Ehidden" },
	{ .name = "climbing local part", .address = "../../etc/passwd@example.test",
	  .path = "/srv/bw/mail/example.test/%2E.%2F..%2Fetc%2Fpasswd" },
	{ .name = "inner dots stay", .address = "a..b.@example.test",
	  .path = "/srv/bw/mail/example.test/a..b." },
	{ .name = "percent encoded (no collision with %XX)", .address = "a%2Fb@example.test",
	  .path = "/srv/bw/mail/example.test/a%252fb" },
	{ .name = "space and backslash", .address = "a b\\c@example.test",
	  .path = "/srv/bw/mail/example.test/a%20b%5Cc" },
	{ .name = "quoted local part with @", .address = "\"x@y\"@example.test",
	  .path = "/srv/bw/mail/example.test/%22x%40y%22" },
	{ .name = "UTF-8 bytes encoded", .address = "j\xc3\xa9r\xc3\xb4me@example.test",
	  .path = "/srv/bw/mail/example.test/j%C3%A9r%C3%B4me" },
	{ .name = "control bytes encoded", .address = "a\tb\x7f@example.test",
	  .path = "/srv/bw/mail/example.test/a%09b%7F" },
	{ .name = "upper-case hex encoded after lower-casing", .address = "A:B@example.test",
	  .path = "/srv/bw/mail/example.test/a%3Ab" },

	{ .name = "domain with a slash", .address = "bob@example.test/../x" },
	{ .name = "domain climbing", .address = "bob@../etc" },
	{ .name = "domain is dot-dot", .address = "bob@.." },
	{ .name = "domain is a dot", .address = "bob@." },
	{ .name = "domain with leading dot", .address = "bob@.example.test" },
	{ .name = "domain with dot-dot inside", .address = "bob@example..test" },
	{ .name = "domain ends in dot-dot", .address = "bob@example.test.." },
	{ .name = "domain is a slash", .address = "bob@/" },
	{ .name = "empty domain", .address = "bob@" },
	{ .name = "empty local part", .address = "@example.test" },
	{ .name = "no @", .address = "bob" },
	{ .name = "empty", .address = "" },
	{ .name = "buffer too small", .address = "bob@example.test", .buflen = 29 },
	{ .name = "buffer just big enough", .address = "bob@example.test", .buflen = 30,
	  .path = "/srv/bw/mail/example.test/bob" },
};

static void
test_maildir_path(void **state)
{
	size_t failed = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(path_cases); i++) {
		const struct path_case *c = &path_cases[i];
		size_t buflen = c->buflen != 0 ? c->buflen : PATH_MAX;
		char *buf = malloc(buflen);
		int r;

		assert_non_null(buf);
		r = delivery_maildir_path("/srv/bw", c->address, buf, buflen);
		if (c->path == NULL && r != -1) {
			print_error("%s: \"%s\" gave %s, expected refusal\n", c->name, c->address, buf);
			failed++;
		} else if (c->path != NULL && (r != 0 || strcmp(buf, c->path) != 0)) {
			print_error("%s: \"%s\" gave %d \"%s\", expected \"%s\"\n", c->name, c->address,
			    r, r == 0 ? buf : "", c->path);
			failed++;
		}
		free(buf);
	}
	if (failed > 0)
		fail_msg("%zu of %zu path cases failed", failed, ARRAY_SIZE(path_cases));
}

/* No encoded local part is ".", "..", hidden, or holds a '/'. */
static void
test_maildir_path_exhaustive(void **state)
{
	char addr[16], buf[256];

	(void)state;
	for (int a = 1; a < 256; a++) {
		for (int b = 0; b < 256; b++) {
			const char *local;

			snprintf(addr, sizeof(addr), "%c%c@x.example", a, b);
			if (b == 0)
				snprintf(addr, sizeof(addr), "%c@x.example", a);
			if (a == '@')
				continue;
			assert_int_equal(delivery_maildir_path("/d", addr, buf, sizeof(buf)), 0);
			assert_memory_equal(buf, "/d/mail/x.example/", 18);
			local = buf + 18;
			assert_null(strchr(local, '/'));
			assert_true(local[0] != '.');
			for (const char *p = local; *p != '\0'; p++)
				assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
				    strchr("._+-%ABCDEF", *p) != NULL);
		}
	}
}

/* ---- delivery_maildir ---- */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_rf(const char *dir)
{
	assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* The names in dir (not . and ..), at most max; returns how many. */
static size_t
list_dir(const char *dir, char names[][512], size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		fail_msg("opendir %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		assert_true(n < max);
		snprintf(names[n++], 512, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

static char *
read_all(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		fail_msg("fopen %s: %s", path, strerror(errno));
	do {
		if (len + 65536 > cap) {
			cap = (cap + 65536) * 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	*len_r = len;
	return buf;
}

struct deliver_case {
	const char *name;
	const char *hostname;
	const char *address;
	const char *mailbox;       /* relative to the data dir */
	const char *return_path;
	const char *msg;           /* wire format */
	size_t repeat;             /* msg repeated this many times (0: once) */
	const char *stored;        /* after the Return-Path line (repeated likewise) */
	const char *name_suffix;   /* the unique name ends with this, before ",S=" */
};

static const struct deliver_case deliver_cases[] = {
	{ .name = "simple", .hostname = "mail.example.test", .address = "Bob@Example.TEST",
	  .mailbox = "mail/example.test/bob", .return_path = "alice@example.org",
	  .msg = "Subject: hi\r\n\r\nline one\r\nline two\r\n",
	  .stored = "Subject: hi\n\nline one\nline two\n", .name_suffix = ".mail.example.test" },
	{ .name = "null sender", .hostname = "mx", .address = "postmaster@example.test",
	  .mailbox = "mail/example.test/postmaster", .return_path = "",
	  .msg = "Subject: bounce\r\n\r\nx\r\n", .stored = "Subject: bounce\n\nx\n",
	  .name_suffix = ".mx" },
	{ .name = "bare CR kept, CRLF only turned into LF", .hostname = "mx",
	  .address = "c@example.test", .mailbox = "mail/example.test/c", .return_path = "s@x.example",
	  .msg = "a\rb\r\n\r\r\nend\r", .stored = "a\rb\n\r\nend\r", .name_suffix = ".mx" },
	{ .name = "empty message", .hostname = "mx", .address = "e@example.test",
	  .mailbox = "mail/example.test/e", .return_path = "s@x.example", .msg = "", .stored = "",
	  .name_suffix = ".mx" },
	{ .name = "hostname with / and :", .hostname = "a/b:c", .address = "h@example.test",
	  .mailbox = "mail/example.test/h", .return_path = "s@x.example", .msg = "x\r\n",
	  .stored = "x\n", .name_suffix = ".a\\057b\\072c" },
	{ .name = "encoded local part", .hostname = "mx", .address = "../x@example.test",
	  .mailbox = "mail/example.test/%2E.%2Fx", .return_path = "s@x.example", .msg = "x\r\n",
	  .stored = "x\n", .name_suffix = ".mx" },
	{ .name = "larger than the write buffer", .hostname = "mx", .address = "big@example.test",
	  .mailbox = "mail/example.test/big", .return_path = "s@x.example",
	  .msg = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.!\r\n", .repeat = 5000,
	  .stored = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.!\n",
	  .name_suffix = ".mx" },
};

static char *
repeat_text(const char *s, size_t times, size_t *len_r)
{
	size_t n = strlen(s), len = n * (times != 0 ? times : 1);
	char *buf = malloc(len + 1);

	assert_non_null(buf);
	for (size_t i = 0; i * n < len; i++)
		memcpy(buf + i * n, s, n);
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

/* One delivered file in new/: check name, size, mode and content. */
static void
check_delivered(const struct deliver_case *c, const char *newdir, const char *fname)
{
	char path[PATH_MAX + 600], expect[1024], *content, *body;
	const char *s;
	size_t len, blen, hlen;
	unsigned long long named;
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", newdir, fname);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);

	/* TIME.MusecPpidQseq.HOST,S=SIZE */
	s = strstr(fname, ",S=");
	if (s == NULL)
		fail_msg("%s: no ,S= in %s", c->name, fname);
	named = strtoull(s + 3, NULL, 10);
	assert_int_equal(named, (unsigned long long)st.st_size);
	assert_null(strchr(fname, '/'));
	assert_null(strchr(fname, ':'));
	hlen = strlen(c->name_suffix);
	if ((size_t)(s - fname) < hlen || memcmp(s - hlen, c->name_suffix, hlen) != 0)
		fail_msg("%s: name %s does not end in %s", c->name, fname, c->name_suffix);

	content = read_all(path, &len);
	assert_int_equal(len, (size_t)st.st_size);
	snprintf(expect, sizeof(expect), "Return-Path: <%s>\n", c->return_path);
	hlen = strlen(expect);
	assert_true(len >= hlen);
	assert_memory_equal(content, expect, hlen);
	body = repeat_text(c->stored, c->repeat, &blen);
	assert_int_equal(len - hlen, blen);
	assert_memory_equal(content + hlen, body, blen);
	free(body);
	free(content);
}

static void
test_deliver(void **state)
{
	char tmpl[] = "/tmp/bulwark-maildir-XXXXXX";
	char *root = mkdtemp(tmpl);

	(void)state;
	assert_non_null(root);
	for (size_t i = 0; i < ARRAY_SIZE(deliver_cases); i++) {
		const struct deliver_case *c = &deliver_cases[i];
		char datadir[PATH_MAX], box[PATH_MAX + 300], sub[PATH_MAX + 400];
		char names[4][512];
		const char *error = NULL;
		size_t msglen;
		char *msg = repeat_text(c->msg, c->repeat, &msglen);
		struct stat st;

		/* a data dir that does not exist yet: the Maildir is created */
		snprintf(datadir, sizeof(datadir), "%s/case%zu/var", root, i);
		if (delivery_maildir(datadir, c->hostname, c->address, c->return_path, msg, msglen,
		    &error) != 0)
			fail_msg("%s: delivery failed: %s (%s)", c->name, error, strerror(errno));
		snprintf(box, sizeof(box), "%s/%s", datadir, c->mailbox);
		for (size_t d = 0; d < 3; d++) {
			static const char *const subs[] = { "tmp", "new", "cur" };

			snprintf(sub, sizeof(sub), "%s/%s", box, subs[d]);
			if (stat(sub, &st) != 0)
				fail_msg("%s: no %s", c->name, sub);
			assert_true(S_ISDIR(st.st_mode));
			assert_int_equal(st.st_mode & 0777, 0700);
		}
		snprintf(sub, sizeof(sub), "%s/tmp", box);
		assert_int_equal(list_dir(sub, names, 4), 0);
		snprintf(sub, sizeof(sub), "%s/cur", box);
		assert_int_equal(list_dir(sub, names, 4), 0);
		snprintf(sub, sizeof(sub), "%s/new", box);
		assert_int_equal(list_dir(sub, names, 4), 1);
		check_delivered(c, sub, names[0]);

		/* a second delivery gets its own name; tmp/ stays empty */
		assert_int_equal(delivery_maildir(datadir, c->hostname, c->address, c->return_path,
		    msg, msglen, &error), 0);
		assert_int_equal(list_dir(sub, names, 4), 2);
		assert_string_not_equal(names[0], names[1]);
		check_delivered(c, sub, names[0]);
		check_delivered(c, sub, names[1]);
		snprintf(sub, sizeof(sub), "%s/tmp", box);
		assert_int_equal(list_dir(sub, names, 4), 0);
		free(msg);
	}
	rm_rf(root);
}

/* Two addresses that differ only in case share one Maildir. */
static void
test_deliver_same_box(void **state)
{
	char tmpl[] = "/tmp/bulwark-maildir-XXXXXX";
	char *root = mkdtemp(tmpl), sub[PATH_MAX], names[4][512];
	const char *error;

	(void)state;
	assert_non_null(root);
	assert_int_equal(delivery_maildir(root, "mx", "Ann@example.test", "s@x.example", "a\r\n", 3,
	    &error), 0);
	assert_int_equal(delivery_maildir(root, "mx", "ann@EXAMPLE.test", "s@x.example", "b\r\n", 3,
	    &error), 0);
	snprintf(sub, sizeof(sub), "%s/mail/example.test/ann/new", root);
	assert_int_equal(list_dir(sub, names, 4), 2);
	snprintf(sub, sizeof(sub), "%s/mail", root);
	assert_int_equal(list_dir(sub, names, 4), 1);
	assert_string_equal(names[0], "example.test");
	rm_rf(root);
}

/* A refused address creates nothing and says why. */
static void
test_deliver_refused(void **state)
{
	static const char *const bad[] = { "bob@../../etc", "bob@a/b", "nobody", "@example.test" };
	char tmpl[] = "/tmp/bulwark-maildir-XXXXXX";
	char *root = mkdtemp(tmpl), names[4][512];

	(void)state;
	assert_non_null(root);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *error = NULL;

		errno = 0;
		assert_int_equal(delivery_maildir(root, "mx", bad[i], "s@x.example", "x\r\n", 3,
		    &error), -1);
		assert_non_null(error);
		assert_string_equal(error, "bad mailbox path");
		assert_int_equal(errno, ENAMETOOLONG);
		assert_int_equal(list_dir(root, names, 4), 0);
	}
	rm_rf(root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maildir_path),
		cmocka_unit_test(test_maildir_path_exhaustive),
		cmocka_unit_test(test_deliver),
		cmocka_unit_test(test_deliver_same_box),
		cmocka_unit_test(test_deliver_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
