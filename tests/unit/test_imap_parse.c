/*
 * test_imap_parse.c: table tests for src/imap/imap_parse.c. Every command
 * stream runs whole, byte by byte (trickle) and split at every offset, and
 * must give the same events: commands rendered as text, errors with their
 * code and tag, and the "+" continuations owed. Argument parsers (sequence
 * sets, FETCH attributes, SEARCH keys, flags, dates) have their own tables.
 * Inputs are copied into exact-size heap buffers so ASan sees any overread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_parse.h"
#include "imap/imap_store.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The tables below are positional (one case a line reads better here); the
 * fields left out are zero on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* ---- rendering ---- */

static void
render_arg(const struct imap_arg *a, char *buf, size_t cap)
{
	size_t n = strlen(buf);

	switch (a->type) {
	case IMAP_ARG_ATOM:
		snprintf(buf + n, cap - n, "%s", a->str);
		break;
	case IMAP_ARG_QUOTED:
		snprintf(buf + n, cap - n, "\"%s\"", a->str);
		break;
	case IMAP_ARG_LITERAL:
		snprintf(buf + n, cap - n, "{%zu}%s", a->len, a->str);
		break;
	case IMAP_ARG_LIST:
		snprintf(buf + n, cap - n, "(");
		for (size_t i = 0; i < a->n; i++) {
			if (i > 0) {
				n = strlen(buf);
				snprintf(buf + n, cap - n, " ");
			}
			render_arg(&a->list[i], buf, cap);
		}
		n = strlen(buf);
		snprintf(buf + n, cap - n, ")");
		break;
	}
}

/* Events of a run joined by '|': "tag NAME args", "+", "E<code>:tag", "F" (fatal). */
static void
run_parser(const char *in, size_t len, size_t chunk, size_t split, const struct imap_parser_limits *lim,
    char *out, size_t cap)
{
	struct imap_parser p;
	size_t off = 0;

	out[0] = '\0';
	imap_parser_init(&p, lim);
	while (off < len) {
		size_t n = len - off, consumed;
		const char *err;
		bool cont;
		int r;
		char *copy;

		if (chunk > 0 && n > chunk)
			n = chunk;
		if (split > 0 && off < split && off + n > split)
			n = split - off;
		copy = malloc(n);
		assert_non_null(copy);
		memcpy(copy, in + off, n);
		r = imap_parser_feed(&p, copy, n, &consumed, &cont, &err);
		free(copy);
		assert_true(consumed <= n);
		off += consumed;
		if (cont)
			snprintf(out + strlen(out), cap - strlen(out), "+|");
		if (r == 1) {
			char args[4096] = "";

			for (size_t i = 0; i < p.root.n; i++) {
				if (i > 0)
					strcat(args, " ");
				render_arg(&p.root.list[i], args, sizeof(args));
			}
			snprintf(out + strlen(out), cap - strlen(out), "%s %s%s%s|", p.tag, p.name,
			    args[0] != '\0' ? " " : "", args);
		} else if (r == -1) {
			assert_non_null(err);
			snprintf(out + strlen(out), cap - strlen(out), "E%d:%s%s|", (int)p.error, p.tag,
			    p.fatal ? ":F" : "");
			if (p.fatal)
				break;
		} else if (!cont) {
			assert_int_equal(consumed, n);
		}
	}
	imap_parser_clear(&p);
}

struct parse_case {
	const char *name;
	const char *in;
	size_t len;             /* 0: strlen(in) */
	const char *events;
	size_t max_line, max_literal;
};

static const struct parse_case parse_cases[] = {
	{ "simple", "a1 NOOP\r\n", 0, "a1 NOOP|" },
	{ "lower-case name", "a1 noop\r\n", 0, "a1 NOOP|" },
	{ "bare LF accepted", "a1 NOOP\n", 0, "a1 NOOP|" },
	{ "pipelined", "a CAPABILITY\r\nb NOOP\r\n", 0, "a CAPABILITY|b NOOP|" },
	{ "login atoms", "a LOGIN alice secret\r\n", 0, "a LOGIN alice secret|" },
	{ "quoted", "a LOGIN \"al ice\" \"p\\\"w\\\\\"\r\n", 0, "a LOGIN \"al ice\" \"p\"w\\\"|" },
	{ "empty quoted", "a LOGIN \"\" \"\"\r\n", 0, "a LOGIN \"\" \"\"|" },
	{ "literal", "a LOGIN {5}\r\nalice pw\r\n", 0, "+|a LOGIN {5}alice pw|" },
	{ "literal plus", "a LOGIN {5+}\r\nalice pw\r\n", 0, "a LOGIN {5}alice pw|" },
	{ "empty literal", "a LOGIN {0}\r\n pw\r\n", 0, "+|a LOGIN {0} pw|" },
	{ "literal with CRLF inside", "a APPEND INBOX {7}\r\nA\r\nB\r\nC\r\n", 0,
	  "+|a APPEND INBOX {7}A\r\nB\r\nC|" },
	{ "list", "a FETCH 1:* (FLAGS UID)\r\n", 0, "a FETCH 1:* (FLAGS UID)|" },
	{ "nested list", "a X ((a b) (c (d)))\r\n", 0, "a X ((a b) (c (d)))|" },
	{ "empty list", "a X ()\r\n", 0, "a X ()|" },
	{ "section with spaces", "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> UID)\r\n", 0,
	  "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> UID)|" },
	{ "flags", "a STORE 1 +FLAGS (\\Seen \\Deleted)\r\n", 0, "a STORE 1 +FLAGS (\\Seen \\Deleted)|" },
	{ "wildcards", "a LIST \"\" *\r\nb LIST \"\" %/x\r\n", 0, "a LIST \"\" *|b LIST \"\" %/x|" },
	{ "utf-8 quoted", "a SEARCH CHARSET UTF-8 TEXT \"gr\xc3\xbc\xc3\x9f\"\r\n", 0,
	  "a SEARCH CHARSET UTF-8 TEXT \"gr\xc3\xbc\xc3\x9f\"|" },
	{ "UID prefix", "a UID FETCH 1:* FLAGS\r\n", 0, "a UID FETCH 1:* FLAGS|" },
	/* errors, each followed by a good command: the parser resynchronises */
	{ "empty line", "\r\na NOOP\r\n", 0, "E1:|a NOOP|" },
	{ "tag only", "a\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "bad tag", "a+b NOOP\r\nc NOOP\r\n", 0, "E1:|c NOOP|" },
	{ "star tag", "* NOOP\r\nc NOOP\r\n", 0, "E1:|c NOOP|" },
	{ "garbage after tag", "a \x01\x02\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "bad command name", "a NO0P\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "8-bit atom", "a LOGIN \xff\xfe x\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "invalid utf-8 quoted", "a LOGIN \"\xc3\x28\" x\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "overlong utf-8", "a LOGIN \"\xc0\xaf\" x\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "surrogate", "a LOGIN \"\xed\xa0\x80\" x\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "truncated utf-8", "a LOGIN \"\xe2\x82\" x\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "unterminated quoted", "a LOGIN \"abc\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "unbalanced (", "a X (a b\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "unbalanced )", "a X a)\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "missing space", "a X (a)(b)\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "bad literal size", "a X {1x}\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "literal not at eol", "a X {1} y\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "unclosed bracket", "a FETCH 1 BODY[HEADER\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "CR without LF", "a NOOP\rb\r\nc NOOP\r\n", 0, "E1:a|c NOOP|" },
	{ "NUL in quoted", "a X \"a\0b\"\r\nb NOOP\r\n", 19, "E1:a|b NOOP|" },
	{ "too deep", "a X ((((((((((((((((((x))))))))))))))))))\r\nb NOOP\r\n", 0, "E1:a|b NOOP|" },
	{ "huge literal, sync", "a APPEND INBOX {99999999999}\r\nb NOOP\r\n", 0, "E3:a|b NOOP|" },
	{ "huge literal, plus", "a APPEND INBOX {99999999999+}\r\nxxxx\r\n", 0, "E3:a:F|" },
	{ "literal over the non-APPEND limit", "a LOGIN {2000}\r\nb NOOP\r\n", 0, "E3:a|b NOOP|",
	  0, 1024 },
	{ "literal under the limit", "a X {600}\r\n", 0, "+|", 0, 1024 },
	{ "line too long", "a LOGIN aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
	  "b NOOP\r\n", 0, "E2:a|b NOOP|", 32 },
	{ "partial", "a NOOP\r\nb NO", 0, "a NOOP|" },
};

static void
test_parser(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->in);
		struct imap_parser_limits lim = {
			.max_line = c->max_line != 0 ? c->max_line : 65536,
			.max_literal = c->max_literal != 0 ? c->max_literal : 1 << 20,
			.max_append_literal = 1 << 26,
		};
		char whole[8192], trickle[8192], split[8192];

		run_parser(c->in, len, 0, 0, &lim, whole, sizeof(whole));
		if (strcmp(whole, c->events) != 0)
			fail_msg("%s: whole: got '%s', want '%s'", c->name, whole, c->events);
		run_parser(c->in, len, 1, 0, &lim, trickle, sizeof(trickle));
		if (strcmp(trickle, c->events) != 0)
			fail_msg("%s: byte by byte: got '%s', want '%s'", c->name, trickle, c->events);
		for (size_t k = 1; k < len; k++) {
			run_parser(c->in, len, 0, k, &lim, split, sizeof(split));
			if (strcmp(split, c->events) != 0)
				fail_msg("%s: split at %zu: got '%s', want '%s'", c->name, k, split, c->events);
		}
	}
}

/* A literal too big is refused at its announcement: nothing of it is stored,
 * and the parser asks for no continuation. */
static void
test_literal_limit_before_reading(void **state)
{
	struct imap_parser p;
	struct imap_parser_limits lim = { .max_line = 1000, .max_literal = 1000,
	    .max_append_literal = 10000 };
	const char *in = "t APPEND INBOX {10001}\r\n", *err;
	size_t consumed;
	bool cont;

	(void)state;
	imap_parser_init(&p, &lim);
	assert_int_equal(imap_parser_feed(&p, in, strlen(in), &consumed, &cont, &err), -1);
	assert_false(cont);
	assert_int_equal(consumed, strlen(in));
	assert_int_equal(p.error, IMAP_PARSE_ERR_LITERAL_TOO_BIG);
	assert_string_equal(p.tag, "t");
	assert_true(p.tokcap < 1000);
	imap_parser_clear(&p);
}

/* ---- sequence sets ---- */

struct seq_case {
	const char *in;
	bool ok;
	uint32_t star;
	const char *has, *hasnot;   /* comma-separated numbers */
};

static const struct seq_case seq_cases[] = {
	{ "1", true, 10, "1", "2" },
	{ "1:3,7", true, 10, "1,2,3,7", "4,8" },
	{ "3:1", true, 10, "1,2,3", "4" },
	{ "5:*", true, 10, "5,10", "4,11" },
	{ "*", true, 10, "10", "9" },
	{ "20:*", true, 10, "10,15,20", "9,21" },
	{ "1,1,2:4,3", true, 10, "1,2,3,4", "5" },
	{ "4294967294", true, 10, "4294967294", "1" },
	{ "0", false }, { "", false }, { "1:", false }, { ":1", false }, { "1,", false },
	{ "a", false }, { "1:2:3", false }, { "4294967295", false }, { "99999999999", false },
	{ "-1", false }, { "1 2", false },
};

static bool
has_all(const struct imap_seqset *set, const char *list, bool want)
{
	char buf[256], *save = NULL;

	if (list == NULL)
		return true;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
		if (imap_seqset_has(set, (uint32_t)strtoul(t, NULL, 10)) != want)
			return false;
	return true;
}

static void
test_seqsets(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(seq_cases); i++) {
		const struct seq_case *c = &seq_cases[i];
		struct imap_seqset set;
		const char *err;
		int r = imap_seqset_parse(c->in, &set, &err);

		if ((r == 0) != c->ok)
			fail_msg("seqset '%s': got %d", c->in, r);
		if (r != 0)
			continue;
		imap_seqset_normalize(&set, c->star);
		if (!has_all(&set, c->has, true) || !has_all(&set, c->hasnot, false))
			fail_msg("seqset '%s': membership wrong", c->in);
		imap_seqset_free(&set);
	}
	{
		struct imap_seqset set;
		const char *err;

		assert_int_equal(imap_seqset_parse("$", &set, &err), 0);
		assert_true(set.saved);
		imap_seqset_free(&set);
	}
}

/* ---- FETCH attributes ---- */

struct fetch_case {
	const char *in;          /* the FETCH attribute argument(s) as a command tail */
	bool ok;
	unsigned items;
	const char *labels;      /* '|'-joined section labels */
	bool sets_seen;
};

static const struct fetch_case fetch_cases[] = {
	{ "ALL", true, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
	  IMAP_FETCH_ENVELOPE, "" },
	{ "FAST", true, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE, "" },
	{ "full", true, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
	  IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY, "" },
	{ "(FLAGS UID RFC822.SIZE)", true, IMAP_FETCH_FLAGS | IMAP_FETCH_UID | IMAP_FETCH_RFC822_SIZE, "" },
	{ "BODYSTRUCTURE", true, IMAP_FETCH_BODYSTRUCTURE, "" },
	{ "RFC822", true, IMAP_FETCH_RFC822, "", true },
	{ "RFC822.TEXT", true, IMAP_FETCH_RFC822_TEXT, "", true },
	{ "RFC822.HEADER", true, IMAP_FETCH_RFC822_HEADER, "" },
	{ "BODY[]", true, 0, "BODY[]", true },
	{ "BODY.PEEK[]", true, 0, "BODY[]" },
	{ "body.peek[1.2.mime]", true, 0, "BODY[1.2.MIME]" },
	{ "BODY[1.TEXT]<0.100>", true, 0, "BODY[1.TEXT]", true },
	{ "(BODY.PEEK[HEADER.FIELDS (from \"To\")] BODY[2])", true, 0,
	  "BODY[HEADER.FIELDS (FROM TO)]|BODY[2]", true },
	{ "BODY.PEEK[HEADER.FIELDS.NOT (Received)]", true, 0, "BODY[HEADER.FIELDS.NOT (RECEIVED)]" },
	{ "BODY[HEADER]", true, 0, "BODY[HEADER]", true },
	{ "BODY[MIME]", false }, { "BODY[0]", false }, { "BODY[1.]", false }, { "BODY[X]", false },
	{ "BODY[HEADER.FIELDS ()]", false }, { "BODY[HEADER.FIELDS]", false },
	{ "BODY[]<1>", false }, { "BODY[]<a.1>", false }, { "BODY[]<1.0>", true, 0, "BODY[]", true },
	{ "BODY[]x", false }, { "BODYX[]", false }, { "FOO", false }, { "()", false },
	{ "(FLAGS (UID))", false }, { "\"FLAGS\"", false },
};

static void
test_fetch_specs(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(fetch_cases); i++) {
		const struct fetch_case *c = &fetch_cases[i];
		struct imap_parser p;
		struct imap_parser_limits lim = { 4096, 4096, 4096 };
		struct imap_fetch_spec spec;
		char line[512], labels[512] = "";
		const char *err;
		size_t consumed;
		bool cont;
		int r;

		snprintf(line, sizeof(line), "a FETCH %s\r\n", c->in);
		imap_parser_init(&p, &lim);
		assert_int_equal(imap_parser_feed(&p, line, strlen(line), &consumed, &cont, &err), 1);
		r = imap_fetch_spec_parse(p.root.list, p.root.n, &spec, &err);
		if ((r == 0) != c->ok)
			fail_msg("fetch '%s': got %d", c->in, r);
		if (r == 0) {
			for (size_t k = 0; k < spec.nsecs; k++)
				snprintf(labels + strlen(labels), sizeof(labels) - strlen(labels), "%s%s",
				    k > 0 ? "|" : "", spec.secs[k].label);
			if (spec.items != c->items || strcmp(labels, c->labels) != 0 ||
			    spec.sets_seen != c->sets_seen)
				fail_msg("fetch '%s': items %#x labels '%s' seen %d", c->in, spec.items,
				    labels, spec.sets_seen);
			imap_fetch_spec_free(&spec);
		}
		imap_parser_clear(&p);
	}
	{
		/* the partial range */
		struct imap_parser p;
		struct imap_parser_limits lim = { 4096, 4096, 4096 };
		struct imap_fetch_spec spec;
		const char *line = "a FETCH BODY.PEEK[TEXT]<10.20>\r\n", *err;
		size_t consumed;
		bool cont;

		imap_parser_init(&p, &lim);
		assert_int_equal(imap_parser_feed(&p, line, strlen(line), &consumed, &cont, &err), 1);
		assert_int_equal(imap_fetch_spec_parse(p.root.list, p.root.n, &spec, &err), 0);
		assert_true(spec.secs[0].partial && spec.secs[0].peek);
		assert_int_equal(spec.secs[0].offset, 10);
		assert_int_equal(spec.secs[0].count, 20);
		assert_int_equal(spec.secs[0].sec.kind, IMAP_SECTION_TEXT);
		imap_fetch_spec_free(&spec);
		imap_parser_clear(&p);
	}
}

/* ---- SEARCH ---- */

struct search_case {
	const char *in;
	int ok;          /* 1 ok, 0 bad, -1 bad charset */
	enum imap_search_key first;
	size_t nkids;    /* of the top AND */
};

static const struct search_case search_cases[] = {
	{ "ALL", 1, IMAP_SK_ALL, 1 },
	{ "UNSEEN FLAGGED", 1, IMAP_SK_UNFLAG, 2 },
	{ "CHARSET UTF-8 SUBJECT \"x\"", 1, IMAP_SK_HEADER, 1 },
	{ "CHARSET us-ascii BODY x", 1, IMAP_SK_BODY, 1 },
	{ "CHARSET KOI8-R BODY x", 1, IMAP_SK_BODY, 1 },
	{ "OR FROM a TO b", 1, IMAP_SK_OR, 1 },
	{ "NOT (SEEN DELETED)", 1, IMAP_SK_NOT, 1 },
	{ "1:5 UID 3:*", 1, IMAP_SK_SEQSET, 2 },
	{ "$", 1, IMAP_SK_SEQSET, 1 },
	{ "SINCE 1-Feb-1994 BEFORE 01-Mar-2030", 1, IMAP_SK_SINCE, 2 },
	{ "SENTON \"5-Jan-2000\"", 1, IMAP_SK_SENTON, 1 },
	{ "LARGER 100 SMALLER 2000", 1, IMAP_SK_LARGER, 2 },
	{ "HEADER X-Spam yes", 1, IMAP_SK_HEADER, 1 },
	{ "HEADER \"Message-ID\" \"\"", 1, IMAP_SK_HEADER, 1 },
	{ "KEYWORD $Label1 UNKEYWORD foo", 1, IMAP_SK_KEYWORD, 2 },
	{ "NEW OLD RECENT ANSWERED DRAFT", 1, IMAP_SK_NEW, 5 },
	{ "TEXT {3}\r\nabc", 1, IMAP_SK_TEXT, 1 },
	{ "", 0 }, { "FOO", 0 }, { "SINCE", 0 }, { "SINCE 32-Jan-2000", 0 }, { "SINCE 1-Foo-2000", 0 },
	{ "LARGER x", 0 }, { "OR a", 0 }, { "NOT", 0 }, { "HEADER", 0 }, { "HEADER a:b x", 0 },
	{ "()", 0 }, { "UID x", 0 }, { "KEYWORD (a)", 0 }, { "CHARSET", 0 },
};

static void
test_search(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(search_cases); i++) {
		const struct search_case *c = &search_cases[i];
		struct imap_parser p;
		struct imap_parser_limits lim = { 4096, 4096, 4096 };
		struct imap_search_node root;
		char line[512];
		const char *err;
		size_t consumed, off = 0;
		bool cont;
		const char *charset;
		int r = 0;

		snprintf(line, sizeof(line), "a SEARCH %s\r\n", c->in);
		imap_parser_init(&p, &lim);
		while (off < strlen(line)) {
			r = imap_parser_feed(&p, line + off, strlen(line) - off, &consumed, &cont, &err);
			off += consumed;
			if (r != 0)
				break;
		}
		assert_int_equal(r, 1);
		r = imap_search_parse(p.root.list, p.root.n, &root, &charset, &err);
		if (c->ok == 1) {
			if (r != 0 || root.key != IMAP_SK_AND || root.nkids != c->nkids ||
			    root.kids[0].key != c->first)
				fail_msg("search '%s': r %d", c->in, r);
			imap_search_node_free(&root);
		} else {
			if (r != -1)
				fail_msg("search '%s': expected an error, got %d", c->in, r);
		}
		imap_parser_clear(&p);
	}
}

/* ---- flags and dates ---- */

static void
test_flags(void **state)
{
	struct imap_arg seen = { .type = IMAP_ARG_ATOM, .str = (char *)"\\Seen", .len = 5 };
	struct imap_arg kw = { .type = IMAP_ARG_ATOM, .str = (char *)"$Label1", .len = 7 };
	struct imap_arg recent = { .type = IMAP_ARG_ATOM, .str = (char *)"\\Recent", .len = 7 };
	struct imap_arg bogus = { .type = IMAP_ARG_ATOM, .str = (char *)"\\Bogus", .len = 6 };
	struct imap_arg star = { .type = IMAP_ARG_ATOM, .str = (char *)"a*b", .len = 3 };
	struct imap_arg items[3] = { seen, kw, kw };
	struct imap_arg list = { .type = IMAP_ARG_LIST, .list = items, .n = 3 };
	uint32_t flags;
	char **k = NULL;
	const char *err;

	(void)state;
	assert_int_equal(imap_flags_parse(&list, &flags, &k, &err), 0);
	assert_int_equal(flags, IMAP_FLAG_SEEN);
	assert_string_equal(k[0], "$Label1");
	assert_null(k[1]);   /* the duplicate is dropped */
	imap_keywords_free(&k);
	assert_int_equal(imap_flags_parse(&seen, &flags, &k, &err), 0);
	imap_keywords_free(&k);
	assert_int_equal(imap_flags_parse(&recent, &flags, &k, &err), -1);
	assert_int_equal(imap_flags_parse(&bogus, &flags, &k, &err), -1);
	assert_int_equal(imap_flags_parse(&star, &flags, &k, &err), -1);
}

static void
test_dates(void **state)
{
	(void)state;
	assert_int_equal(imap_date_parse("1-Jan-1970"), 0);
	assert_int_equal(imap_date_parse("02-Jan-1970"), 1);
	assert_int_equal(imap_date_parse("29-Feb-2000"), 11016);
	assert_int_equal(imap_date_parse("1-jan-1970"), 0);
	assert_int_equal(imap_date_parse("31-Apr-2000"), -1);
	assert_int_equal(imap_date_parse("1-Jan-70"), -1);
	assert_int_equal(imap_date_parse("1-Jan-1970x"), -1);
	assert_int_equal(imap_datetime_parse("17-Jul-1996 02:44:25 -0700"), 837596665);
	assert_int_equal(imap_datetime_parse(" 1-Jan-1970 00:00:00 +0000"), 0);
	assert_int_equal(imap_datetime_parse("01-Jan-1970 01:00:00 +0100"), 0);
	assert_int_equal(imap_datetime_parse("17-Jul-1996 24:44:25 -0700"), -1);
	assert_int_equal(imap_datetime_parse("17-Jul-1996 02:44:25"), -1);
	assert_int_equal(imap_datetime_parse("17-Jul-1996 02:44:25 -07000"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parser),
		cmocka_unit_test(test_literal_limit_before_reading),
		cmocka_unit_test(test_seqsets),
		cmocka_unit_test(test_fetch_specs),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_dates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
