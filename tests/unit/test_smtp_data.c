/*
 * test_smtp_data.c: table tests for src/smtp/smtp_data.c, the DATA/BDAT
 * content parser. Every case runs whole, byte by byte, split in two at every
 * offset (short inputs) and in random-sized chunks, and each run must give
 * the same output, flags, end detection, consumed count and reply. Inputs
 * are copied into exact-size heap buffers so ASan sees any read past the end.
 * RFC 5321 4.1.1.4, 4.5.2, 4.5.3.1.6; RFC 3030; CVE-2023-51764.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The replies, verbatim from docs/smtp.md. */
#define E_SIZE "552 5.3.4 Message size exceeds fixed limit"
#define E_LONG "500 5.5.2 Line too long"
#define E_CR "550 5.6.0 Message refused: bare CR (carriage return without line feed)"
#define E_LOOK "550 5.6.0 Message refused: end-of-data look-alike (SMTP smuggling)"
#define E_LF "550 5.6.0 Message refused: bare LF (line feed without carriage return)"

/* What a smuggler puts after a look-alike: a second transaction. */
#define SMUGGLED "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.test>\r\n" \
	"DATA\r\nFrom: ceo@example.test\r\n\r\nsmuggled\r\n"

/*
 * Generated text: pre + rep * n + post. pre_len/post_len are for texts that
 * hold NULs (0: strlen). A text with all NULL fields is empty.
 */
struct gen {
	const char *pre;
	size_t pre_len;
	const char *rep;
	size_t n;
	const char *post;
	size_t post_len;
};

struct data_case {
	const char *name;
	struct gen in;
	bool bdat;
	bool reject_bare_lf;
	size_t max_line;      /* 0: 1000 (the default) */
	bool no_line_limit;   /* pass max_line 0 to the parser */
	size_t max_size;      /* 0: no limit */
	bool finish;          /* BDAT LAST: call smtp_data_finish_bdat at the end */
	struct gen out;       /* the stored message */
	int ret;              /* 1: the end marker was found */
	size_t tail;          /* with ret 1: input octets left after the end marker */
	unsigned flags;       /* SMTP_DATA_* */
	const char *error;    /* smtp_data_error(), NULL when accepted */
};

static const struct data_case data_cases[] = {
	/* ---- plain messages and the end marker ---- */
	{ .name = "plain message",
	  .in = { .pre = "From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n.\r\n" },
	  .out = { .pre = "From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n" }, .ret = 1 },
	{ .name = "empty message: first line is the dot",
	  .in = { .pre = ".\r\n" }, .out = { 0 }, .ret = 1 },
	{ .name = "empty message, commands pipelined after",
	  .in = { .pre = ".\r\nQUIT\r\n" }, .out = { 0 }, .ret = 1, .tail = 6 },
	{ .name = "one empty line then the end",
	  .in = { .pre = "\r\n.\r\n" }, .out = { .pre = "\r\n" }, .ret = 1 },
	{ .name = "bytes after the end are not consumed",
	  .in = { .pre = "hi\r\n.\r\nMAIL FROM:<a@example.org>\r\n" },
	  .out = { .pre = "hi\r\n" }, .ret = 1, .tail = 27 },
	{ .name = "a second end marker belongs to the next command",
	  .in = { .pre = "hi\r\n.\r\n.\r\n" }, .out = { .pre = "hi\r\n" }, .ret = 1, .tail = 3 },
	{ .name = "one byte after the end",
	  .in = { .pre = "hi\r\n.\r\nX" }, .out = { .pre = "hi\r\n" }, .ret = 1, .tail = 1 },
	{ .name = "no end yet", .in = { .pre = "hi\r\nthere\r\n" },
	  .out = { .pre = "hi\r\nthere\r\n" } },
	{ .name = "input ends inside the end marker",
	  .in = { .pre = "hi\r\n.\r" }, .out = { .pre = "hi\r\n" } },
	{ .name = "input ends after the dot", .in = { .pre = "hi\r\n." }, .out = { .pre = "hi\r\n" } },
	{ .name = "last line without CRLF is not an end",
	  .in = { .pre = "hi\r\n.x" }, .out = { .pre = "hi\r\nx" } },
	{ .name = "dots inside lines are data",
	  .in = { .pre = "a.b\r\nc.\r\n . \r\n.\r\n" }, .out = { .pre = "a.b\r\nc.\r\n . \r\n" },
	  .ret = 1 },
	{ .name = "NUL and 8-bit bytes pass through",
	  .in = { .pre = "a\0b\xc3\xa9\xff\r\n.\r\n", .pre_len = 11 },
	  .out = { .pre = "a\0b\xc3\xa9\xff\r\n", .pre_len = 8 }, .ret = 1 },
	{ .name = "many lines",
	  .in = { .pre = "H: v\r\n\r\n", .rep = "line of text\r\n", .n = 500, .post = ".\r\nQUIT\r\n" },
	  .out = { .pre = "H: v\r\n\r\n", .rep = "line of text\r\n", .n = 500 }, .ret = 1, .tail = 6 },

	/* ---- dot-unstuffing (RFC 5321 4.5.2) ---- */
	{ .name = "stuffed dot line", .in = { .pre = "..x\r\n.\r\n" }, .out = { .pre = ".x\r\n" },
	  .ret = 1 },
	{ .name = "stuffed lone dot", .in = { .pre = "a\r\n..\r\nb\r\n.\r\n" },
	  .out = { .pre = "a\r\n.\r\nb\r\n" }, .ret = 1 },
	{ .name = "three dots", .in = { .pre = "...\r\n.\r\n" }, .out = { .pre = "..\r\n" }, .ret = 1 },
	{ .name = "unstuffed leading dot is dropped",
	  .in = { .pre = ".x\r\n.\r\n" }, .out = { .pre = "x\r\n" }, .ret = 1 },
	{ .name = "stuffed dot then space", .in = { .pre = ". \r\n.\r\n" }, .out = { .pre = " \r\n" },
	  .ret = 1 },

	/* ---- end-of-data look-alikes (SMTP smuggling): refused, parsing goes on ---- */
	{ .name = "LF . LF",
	  .in = { .pre = "a\n.\n" SMUGGLED ".\r\nQUIT\r\n" },
	  .out = { .pre = "a\r\n.\r\n" SMUGGLED }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_LOOKALIKE | SMTP_DATA_BARE_LF, .error = E_LOOK },
	{ .name = "CR . CR",
	  .in = { .pre = "a\r.\r" SMUGGLED ".\r\nQUIT\r\n" },
	  .out = { .pre = "a\r.\r" SMUGGLED }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "CRLF . LF",
	  .in = { .pre = "a\r\n.\n" SMUGGLED ".\r\nQUIT\r\n" },
	  .out = { .pre = "a\r\n.\r\n" SMUGGLED }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_LOOKALIKE | SMTP_DATA_BARE_LF, .error = E_LOOK },
	{ .name = "LF . CRLF",
	  .in = { .pre = "a\n.\r\n" SMUGGLED ".\r\nQUIT\r\n" },
	  .out = { .pre = "a\r\n.\r\n" SMUGGLED }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_LOOKALIKE | SMTP_DATA_BARE_LF, .error = E_LOOK },
	{ .name = "CRLF . CR x",
	  .in = { .pre = "a\r\n.\rx" SMUGGLED ".\r\nQUIT\r\n" },
	  .out = { .pre = "a\r\n.\rx" SMUGGLED }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "LF . CR x",
	  .in = { .pre = "a\n.\rx" SMUGGLED ".\r\nQUIT\r\n" },
	  .out = { .pre = "a\r\n.\rx" SMUGGLED }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "CR . CRLF",
	  .in = { .pre = "a\r.\r\n" SMUGGLED ".\r\nQUIT\r\n" },
	  .out = { .pre = "a\r.\r\n" SMUGGLED }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "CR . LF",
	  .in = { .pre = "a\r.\n" SMUGGLED ".\r\nQUIT\r\n" },
	  .out = { .pre = "a\r.\r\n" SMUGGLED }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF, .error = E_CR },
	{ .name = "CRLF . CR CR LF",
	  .in = { .pre = "a\r\n.\r\r\n" SMUGGLED ".\r\n" },
	  .out = { .pre = "a\r\n.\r\r\n" SMUGGLED }, .ret = 1,
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "look-alike as the first line: . LF",
	  .in = { .pre = ".\n" SMUGGLED ".\r\n" },
	  .out = { .pre = ".\r\n" SMUGGLED }, .ret = 1,
	  .flags = SMTP_DATA_LOOKALIKE | SMTP_DATA_BARE_LF, .error = E_LOOK },
	{ .name = "look-alike as the first line: . CR x",
	  .in = { .pre = ".\rx\r\n.\r\n" }, .out = { .pre = ".\rx\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "look-alike at the very end, no real end yet",
	  .in = { .pre = "a\n.\n" }, .out = { .pre = "a\r\n.\r\n" },
	  .flags = SMTP_DATA_LOOKALIKE | SMTP_DATA_BARE_LF, .error = E_LOOK },
	{ .name = "LF . CRLF then the real end right after",
	  .in = { .pre = "a\n.\r\n.\r\nQUIT\r\n" }, .out = { .pre = "a\r\n.\r\n" }, .ret = 1,
	  .tail = 6, .flags = SMTP_DATA_LOOKALIKE | SMTP_DATA_BARE_LF, .error = E_LOOK },
	{ .name = "look-alike in reject mode: the look-alike reply wins",
	  .in = { .pre = "a\r\n.\n" SMUGGLED ".\r\n" }, .reject_bare_lf = true,
	  .out = { .pre = "a\r\n.\r\n" SMUGGLED }, .ret = 1,
	  .flags = SMTP_DATA_LOOKALIKE | SMTP_DATA_BARE_LF, .error = E_LOOK },
	{ .name = "stuffed dot after a bare LF is not a look-alike",
	  .in = { .pre = "a\n..\nb\r\n.\r\n" }, .out = { .pre = "a\r\n.\r\nb\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_BARE_LF },
	{ .name = "many look-alikes, one real end",
	  .in = { .pre = "a\n.\nb\r\n.\nc\n.\r\nd\r.\re\r\n.\r\nQUIT\r\n" },
	  .out = { .pre = "a\r\n.\r\nb\r\n.\r\nc\r\n.\r\nd\r.\re\r\n" }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_LOOKALIKE | SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR, .error = E_CR },

	/* ---- bare LF and bare CR ---- */
	{ .name = "bare LF normalised",
	  .in = { .pre = "a\nb\r\nc\n\r\n.\r\n" }, .out = { .pre = "a\r\nb\r\nc\r\n\r\n" },
	  .ret = 1, .flags = SMTP_DATA_BARE_LF },
	{ .name = "bare LF rejected",
	  .in = { .pre = "a\nb\r\n.\r\n" }, .reject_bare_lf = true, .out = { .pre = "a\r\nb\r\n" },
	  .ret = 1, .flags = SMTP_DATA_BARE_LF, .error = E_LF },
	{ .name = "lone LF as the first line",
	  .in = { .pre = "\n\r\n.\r\n" }, .out = { .pre = "\r\n\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_BARE_LF },
	{ .name = "CRLF only: reject mode accepts",
	  .in = { .pre = "a\r\nb\r\n.\r\n" }, .reject_bare_lf = true, .out = { .pre = "a\r\nb\r\n" },
	  .ret = 1 },
	{ .name = "bare CR inside a line",
	  .in = { .pre = "a\rb\r\n.\r\n" }, .out = { .pre = "a\rb\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "CR CR LF",
	  .in = { .pre = "a\r\r\n.\r\n" }, .out = { .pre = "a\r\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "bare CR on an empty line",
	  .in = { .pre = "\rx\r\n.\r\n" }, .out = { .pre = "\rx\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "bare CR beats bare LF in reject mode",
	  .in = { .pre = "a\rb\nc\r\n.\r\n" }, .reject_bare_lf = true,
	  .out = { .pre = "a\rb\r\nc\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF, .error = E_CR },

	/* ---- line length (1000 octets with CRLF, RFC 5321 4.5.3.1.6) ---- */
	{ .name = "998 + CRLF = 1000 ok",
	  .in = { .rep = "x", .n = 998, .post = "\r\n.\r\n" },
	  .out = { .rep = "x", .n = 998, .post = "\r\n" }, .ret = 1 },
	{ .name = "999 + CRLF = 1001 too long",
	  .in = { .rep = "x", .n = 999, .post = "\r\n.\r\n" },
	  .out = { .rep = "x", .n = 999, .post = "\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_LINE_TOO_LONG, .error = E_LONG },
	{ .name = "the limit is per line", .max_line = 11,
	  .in = { .rep = "123456789\r\n", .n = 50, .post = ".\r\n" },
	  .out = { .rep = "123456789\r\n", .n = 50 }, .ret = 1 },
	{ .name = "long line later in the message",
	  .in = { .pre = "Subject: x\r\n\r\n", .rep = "y", .n = 4000, .post = "\r\nok\r\n.\r\nQUIT\r\n" },
	  .out = { .pre = "Subject: x\r\n\r\n", .rep = "y", .n = 4000, .post = "\r\nok\r\n" },
	  .ret = 1, .tail = 6, .flags = SMTP_DATA_LINE_TOO_LONG, .error = E_LONG },
	{ .name = "small limit: 8 + CRLF = 10 ok",
	  .in = { .pre = "12345678\r\n.\r\n" }, .max_line = 10, .out = { .pre = "12345678\r\n" },
	  .ret = 1 },
	{ .name = "small limit: 9 + CRLF = 11 too long",
	  .in = { .pre = "123456789\r\n.\r\n" }, .max_line = 10, .out = { .pre = "123456789\r\n" },
	  .ret = 1, .flags = SMTP_DATA_LINE_TOO_LONG, .error = E_LONG },
	{ .name = "no line limit",
	  .in = { .rep = "z", .n = 5000, .post = "\r\n.\r\n" }, .no_line_limit = true,
	  .out = { .rep = "z", .n = 5000, .post = "\r\n" }, .ret = 1 },
	{ .name = "1000 + bare LF too long",
	  .in = { .rep = "x", .n = 1000, .post = "\nb\r\n.\r\n" },
	  .out = { .rep = "x", .n = 1000, .post = "\r\nb\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_BARE_LF | SMTP_DATA_LINE_TOO_LONG, .error = E_LONG },
	/*
	 * RFC 5321 4.5.3.1.6: the 1000 octets do not count "the leading dot
	 * duplicated for transparency": a 999-octet line starting with "."
	 * travels as 1001 octets and is fine.
	 */
	{ .name = "stuffed dot not counted in the line length",
	  .in = { .pre = "..", .rep = "x", .n = 997, .post = "\r\n.\r\n" },
	  .out = { .pre = ".", .rep = "x", .n = 997, .post = "\r\n" }, .ret = 1 },
	{ .name = "stuffed dot: one more is too long",
	  .in = { .pre = "..", .rep = "x", .n = 998, .post = "\r\n.\r\n" },
	  .out = { .pre = ".", .rep = "x", .n = 998, .post = "\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_LINE_TOO_LONG, .error = E_LONG },

	{ .name = "stuffed dot after a bare LF not counted either",
	  .in = { .pre = "a\n..", .rep = "x", .n = 997, .post = "\r\n.\r\n" },
	  .out = { .pre = "a\r\n.", .rep = "x", .n = 997, .post = "\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_BARE_LF },
	{ .name = "stuffed dot with a small limit",
	  .in = { .pre = "..\r\n...\r\n.\r\n" }, .max_line = 3, .out = { .pre = ".\r\n..\r\n" },
	  .ret = 1, .flags = SMTP_DATA_LINE_TOO_LONG, .error = E_LONG },

	/* ---- message size ---- */
	{ .name = "exactly max size", .in = { .pre = "abc\r\n.\r\n" }, .max_size = 5,
	  .out = { .pre = "abc\r\n" }, .ret = 1 },
	{ .name = "max size + 1: output stops", .in = { .pre = "abc\r\n.\r\nQUIT\r\n" },
	  .max_size = 4, .out = { .pre = "abc" }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_TOO_BIG, .error = E_SIZE },
	{ .name = "large, exactly max",
	  .in = { .rep = "123456789\r\n", .n = 100, .post = ".\r\n" }, .max_size = 1100,
	  .out = { .rep = "123456789\r\n", .n = 100 }, .ret = 1 },
	{ .name = "large, one over max: cut before the CRLF",
	  .in = { .rep = "123456789\r\n", .n = 100, .post = ".\r\n" }, .max_size = 1099,
	  .out = { .rep = "123456789\r\n", .n = 99, .post = "123456789" }, .ret = 1,
	  .flags = SMTP_DATA_TOO_BIG, .error = E_SIZE },
	{ .name = "large, far over max: the rest is read and dropped",
	  .in = { .rep = "123456789\r\n", .n = 100, .post = ".\r\nQUIT\r\n" }, .max_size = 25,
	  .out = { .pre = "123456789\r\n123456789\r\n123" }, .ret = 1, .tail = 6,
	  .flags = SMTP_DATA_TOO_BIG, .error = E_SIZE },
	{ .name = "stuffing dots do not count in the size",
	  .in = { .pre = "..\r\n..\r\n.\r\n" }, .max_size = 6, .out = { .pre = ".\r\n.\r\n" },
	  .ret = 1 },
	{ .name = "too big beats too long and look-alike",
	  .in = { .rep = "x", .n = 1200, .post = "\r\n.\nz\r\n.\r\n" }, .max_size = 100,
	  .out = { .rep = "x", .n = 100 }, .ret = 1,
	  .flags = SMTP_DATA_TOO_BIG | SMTP_DATA_LINE_TOO_LONG | SMTP_DATA_LOOKALIKE |
	      SMTP_DATA_BARE_LF, .error = E_SIZE },
	{ .name = "too long beats bare CR",
	  .in = { .pre = "a\rb\r\n", .rep = "x", .n = 1200, .post = "\r\n.\r\n" },
	  .out = { .pre = "a\rb\r\n", .rep = "x", .n = 1200, .post = "\r\n" }, .ret = 1,
	  .flags = SMTP_DATA_LINE_TOO_LONG | SMTP_DATA_BARE_CR, .error = E_LONG },

	/* ---- BDAT (RFC 3030): binary-exact, dots not special, no end marker ---- */
	{ .name = "BDAT: dots are data", .bdat = true, .finish = true,
	  .in = { .pre = "a\r\n.\r\n..x\r\n.\r\n" }, .out = { .pre = "a\r\n.\r\n..x\r\n.\r\n" } },
	{ .name = "BDAT: ends mid-line, LAST adds CRLF", .bdat = true, .finish = true,
	  .in = { .pre = "a\r\nlast line" }, .out = { .pre = "a\r\nlast line\r\n" } },
	{ .name = "BDAT: ends on CRLF, nothing added", .bdat = true, .finish = true,
	  .in = { .pre = "a\r\nb\r\n" }, .out = { .pre = "a\r\nb\r\n" } },
	{ .name = "BDAT: trailing CR is a bare CR", .bdat = true, .finish = true,
	  .in = { .pre = "a\r\nb\r" }, .out = { .pre = "a\r\nb\r\r\n" },
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "BDAT: lone CR", .bdat = true, .finish = true,
	  .in = { .pre = "\r" }, .out = { .pre = "\r\r\n" },
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "BDAT: empty", .bdat = true, .finish = true, .in = { 0 }, .out = { 0 } },
	{ .name = "BDAT: not finished, no CRLF added", .bdat = true,
	  .in = { .pre = "a\r\npartial" }, .out = { .pre = "a\r\npartial" } },
	{ .name = "BDAT: bare LF normalised, no look-alike", .bdat = true, .finish = true,
	  .in = { .pre = "a\n.\nb" }, .out = { .pre = "a\r\n.\r\nb\r\n" }, .flags = SMTP_DATA_BARE_LF },
	{ .name = "BDAT: bare LF rejected", .bdat = true, .finish = true, .reject_bare_lf = true,
	  .in = { .pre = "a\nb\n" }, .out = { .pre = "a\r\nb\r\n" }, .flags = SMTP_DATA_BARE_LF,
	  .error = E_LF },
	{ .name = "BDAT: bare CR", .bdat = true, .finish = true,
	  .in = { .pre = "a\rb\r\n" }, .out = { .pre = "a\rb\r\n" },
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "BDAT: CRLF . CR x", .bdat = true, .finish = true,
	  .in = { .pre = "a\r\n.\rx" }, .out = { .pre = "a\r\n.\rx\r\n" },
	  .flags = SMTP_DATA_BARE_CR, .error = E_CR },
	{ .name = "BDAT: binary bytes", .bdat = true, .finish = true,
	  .in = { .pre = "\0\x01\xff\x7f", .pre_len = 4 }, .out = { .pre = "\0\x01\xff\x7f\r\n",
	      .pre_len = 6 } },
	{ .name = "BDAT: line limit", .bdat = true, .finish = true,
	  .in = { .rep = "b", .n = 999, .post = "\r\n" }, .out = { .rep = "b", .n = 999, .post = "\r\n" },
	  .flags = SMTP_DATA_LINE_TOO_LONG, .error = E_LONG },
	{ .name = "BDAT: size limit counts the added CRLF", .bdat = true, .finish = true,
	  .in = { .pre = "abcd" }, .max_size = 5, .out = { .pre = "abcd" },
	  .flags = SMTP_DATA_TOO_BIG, .error = E_SIZE },
	{ .name = "BDAT: exactly max with the added CRLF", .bdat = true, .finish = true,
	  .in = { .pre = "abcd" }, .max_size = 6, .out = { .pre = "abcd\r\n" } },
};

/* ---- helpers ---- */

static void
buf_add(char **buf, size_t *len, const char *s, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	assert_non_null(*buf);
	if (n > 0)
		memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/* Build g into an exact-size heap buffer (never NULL). */
static char *
gen_build(const struct gen *g, size_t *len_r)
{
	char *buf = malloc(1);
	size_t len = 0;

	assert_non_null(buf);
	buf[0] = '\0';
	if (g->pre != NULL)
		buf_add(&buf, &len, g->pre, g->pre_len != 0 ? g->pre_len : strlen(g->pre));
	for (size_t i = 0; g->rep != NULL && i < g->n; i++)
		buf_add(&buf, &len, g->rep, strlen(g->rep));
	if (g->post != NULL)
		buf_add(&buf, &len, g->post, g->post_len != 0 ? g->post_len : strlen(g->post));
	*len_r = len;
	return buf;
}

struct sink {
	char *buf;
	size_t len;
	size_t calls;
};

static void
sink_emit(void *ctx, const char *data, size_t len)
{
	struct sink *s = ctx;

	s->calls++;
	buf_add(&s->buf, &s->len, data, len);
}

struct data_run {
	struct sink out;
	int ret;
	size_t consumed;    /* total input octets used */
	unsigned flags;
	const char *error;
	size_t size;
};

static uint32_t
xorshift32(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

/*
 * Chunk sizes: mode 0 whole, mode 1 byte by byte, mode 2 split at `split`
 * then the rest, mode 3 random sizes from `seed`.
 */
struct chunker {
	int mode;
	size_t split;
	uint32_t seed;
	size_t fed;
};

static size_t
chunk_next(struct chunker *ch, size_t left)
{
	size_t n = left;

	switch (ch->mode) {
	case 1:
		n = 1;
		break;
	case 2:
		n = ch->fed < ch->split ? ch->split - ch->fed : left;
		break;
	case 3: {
		uint32_t x = xorshift32(&ch->seed);

		/* mostly short chunks, now and then a long one */
		n = (x & 7) == 0 ? 1 + (x >> 3) % 1500 : 1 + (x >> 3) % 7;
		break;
	}
	default:
		break;
	}
	if (n > left)
		n = left;
	ch->fed += n;
	return n;
}

static void
data_run(const struct data_case *c, const char *in, size_t len, struct chunker *ch,
    struct data_run *run)
{
	struct smtp_data_parser p;
	size_t off = 0;

	memset(run, 0, sizeof(*run));
	smtp_data_init(&p, c->bdat, c->reject_bare_lf,
	    c->no_line_limit ? 0 : c->max_line != 0 ? c->max_line : 1000, c->max_size,
	    sink_emit, &run->out);
	assert_null(smtp_data_error(&p));
	while (off < len) {
		size_t n = chunk_next(ch, len - off), consumed = (size_t)-1;
		int ret;

		/* an exact-size copy of the chunk, so ASan sees any overread */
		char *chunk = malloc(n);

		assert_non_null(chunk);
		memcpy(chunk, in + off, n);
		ret = smtp_data_feed(&p, chunk, n, &consumed);
		free(chunk);
		if (ret == 1) {
			assert_true(consumed >= 1 && consumed <= n);
			assert_false(c->bdat);
			run->ret = 1;
			off += consumed;
			break;
		}
		assert_int_equal(ret, 0);
		assert_int_equal(consumed, n);
		off += n;
	}
	if (c->finish)
		smtp_data_finish_bdat(&p);
	run->consumed = off;
	run->flags = p.flags;
	run->error = smtp_data_error(&p);
	run->size = p.size;
}

/* Compare a run with the case; print every difference, return false if any. */
static bool
data_check(const struct data_case *c, const struct data_run *run, const char *want,
    size_t wantlen, size_t inlen, const char *mode)
{
	bool ok = true;

	if (run->ret != c->ret) {
		print_error("%s (%s): ret %d, expected %d\n", c->name, mode, run->ret, c->ret);
		ok = false;
	}
	if (run->consumed != (c->ret == 1 ? inlen - c->tail : inlen)) {
		print_error("%s (%s): consumed %zu of %zu, expected tail %zu\n", c->name, mode,
		    run->consumed, inlen, c->tail);
		ok = false;
	}
	if (run->flags != c->flags) {
		print_error("%s (%s): flags 0x%x, expected 0x%x\n", c->name, mode, run->flags,
		    c->flags);
		ok = false;
	}
	if (run->out.len != wantlen || memcmp(run->out.buf != NULL ? run->out.buf : "", want,
	    wantlen) != 0) {
		print_error("%s (%s): output (%zu octets) \"%.*s\", expected (%zu) \"%.*s\"\n",
		    c->name, mode, run->out.len, (int)(run->out.len > 200 ? 200 : run->out.len),
		    run->out.buf != NULL ? run->out.buf : "", wantlen,
		    (int)(wantlen > 200 ? 200 : wantlen), want);
		ok = false;
	}
	if (c->error == NULL && run->error != NULL) {
		print_error("%s (%s): refused with \"%s\"\n", c->name, mode, run->error);
		ok = false;
	}
	if (c->error != NULL && (run->error == NULL || strcmp(run->error, c->error) != 0)) {
		print_error("%s (%s): reply \"%s\", expected \"%s\"\n", c->name, mode,
		    run->error != NULL ? run->error : "(none)", c->error);
		ok = false;
	}
	/* size counts what was (or would have been) emitted */
	if (!(run->flags & SMTP_DATA_TOO_BIG) ? run->size != run->out.len :
	    run->size <= c->max_size || run->out.len > c->max_size) {
		print_error("%s (%s): size %zu, output %zu, max %zu\n", c->name, mode, run->size,
		    run->out.len, c->max_size);
		ok = false;
	}
	return ok;
}

/* Run one case in one chunking mode; false (and printed) on a difference. */
static bool
data_run_check(const struct data_case *c, const char *in, size_t inlen, const char *want,
    size_t wantlen, struct chunker ch, const char *mode)
{
	struct data_run run;
	bool ok;

	data_run(c, in, inlen, &ch, &run);
	ok = data_check(c, &run, want, wantlen, inlen, mode);
	free(run.out.buf);
	return ok;
}

/*
 * All cases, all modes. A case stops at its first failing mode; every
 * failing case is printed before the test fails, so one bug hides no other.
 */
static void
test_data_cases(void **state)
{
	size_t failed = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(data_cases); i++) {
		const struct data_case *c = &data_cases[i];
		size_t inlen, wantlen;
		char *in = gen_build(&c->in, &inlen), *want = gen_build(&c->out, &wantlen);
		bool ok;
		char mode[64];

		ok = data_run_check(c, in, inlen, want, wantlen,
		    (struct chunker){ .mode = 0 }, "whole");
		ok = ok && data_run_check(c, in, inlen, want, wantlen,
		    (struct chunker){ .mode = 1 }, "byte by byte");
		/* every two-piece split of short inputs */
		for (size_t split = 1; ok && inlen <= 400 && split < inlen; split++) {
			snprintf(mode, sizeof(mode), "split at %zu", split);
			ok = data_run_check(c, in, inlen, want, wantlen,
			    (struct chunker){ .mode = 2, .split = split }, mode);
		}
		for (uint32_t seed = 1; ok && seed <= 32; seed++) {
			snprintf(mode, sizeof(mode), "random chunks, seed %u", seed);
			ok = data_run_check(c, in, inlen, want, wantlen,
			    (struct chunker){ .mode = 3, .seed = seed * 2654435761u }, mode);
		}
		if (!ok)
			failed++;
		free(in);
		free(want);
	}
	if (failed > 0)
		fail_msg("%zu of %zu cases failed", failed, ARRAY_SIZE(data_cases));
}
/* BDAT across several chunks (commands): state carries over, LAST settles it. */
static void
test_bdat_chunks(void **state)
{
	static const char *const chunks[] = { "Subject: x\r", "\n\r\nline one\r\nli", "ne two" };
	struct smtp_data_parser p;
	struct sink out = { 0 };
	size_t consumed;

	(void)state;
	smtp_data_init(&p, true, false, 1000, 0, sink_emit, &out);
	for (size_t i = 0; i < ARRAY_SIZE(chunks); i++) {
		assert_int_equal(smtp_data_feed(&p, chunks[i], strlen(chunks[i]), &consumed), 0);
		assert_int_equal(consumed, strlen(chunks[i]));
	}
	smtp_data_finish_bdat(&p);
	assert_int_equal(out.len, strlen("Subject: x\r\n\r\nline one\r\nline two\r\n"));
	assert_memory_equal(out.buf, "Subject: x\r\n\r\nline one\r\nline two\r\n", out.len);
	assert_int_equal(p.flags, 0);
	assert_null(smtp_data_error(&p));
	free(out.buf);
}

/* Zero-length feeds change nothing; a NULL emit callback is allowed. */
static void
test_data_edges(void **state)
{
	struct smtp_data_parser p;
	size_t consumed = 99;

	(void)state;
	smtp_data_init(&p, false, false, 1000, 0, NULL, NULL);
	assert_int_equal(smtp_data_feed(&p, "", 0, &consumed), 0);
	assert_int_equal(consumed, 0);
	assert_int_equal(smtp_data_feed(&p, "abc\r\n", 5, &consumed), 0);
	assert_int_equal(smtp_data_feed(&p, ".\r\nX", 4, &consumed), 1);
	assert_int_equal(consumed, 3);
	assert_int_equal(p.size, 5);
	assert_null(smtp_data_error(&p));
}

static void
test_case_count(void **state)
{
	(void)state;
	/* the brief asks for at least 40 parser cases */
	assert_true(ARRAY_SIZE(data_cases) >= 40);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_cases),
		cmocka_unit_test(test_bdat_chunks),
		cmocka_unit_test(test_data_edges),
		cmocka_unit_test(test_case_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
