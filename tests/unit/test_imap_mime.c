/*
 * test_imap_mime.c: tests for src/imap/imap_mime*.c. The structure table
 * holds real-world-shaped and malformed messages with the ENVELOPE, BODY
 * and BODYSTRUCTURE Dovecot 2.3.19 answers for them (taken from its imap
 * binary: the conformance oracle); the section table the BODY[section]
 * bytes of a nested message/rfc822; the search table RFC 2047, charset and
 * transfer decoding. Messages are written with LF and served with CRLF.
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

#include <event2/buffer.h>

#include "imap/imap_mime.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* LF -> CRLF, as the store serves messages (n bytes of lf) */
static char *
crlf_n(const char *lf, size_t n, size_t *len_r)
{
	size_t o = 0;
	char *out = malloc(2 * n + 1);

	assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		if (lf[i] == '\n' && (i == 0 || lf[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = lf[i];
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

static char *
crlf(const char *lf, size_t *len_r)
{
	return crlf_n(lf, strlen(lf), len_r);
}

static char *
take(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	assert_non_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

/* ---- ENVELOPE / BODY / BODYSTRUCTURE ---- */

/* Also the BODY[section] tests' message. */
static const char nested_msg[] =
    "From: outer@example.com\n"
    "To: x@example.com\n"
    "Subject: forwarded\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "--outer\n"
    "Content-Type: text/plain\n"
    "\n"
    "Here is the message.\n"
    "\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: Inner Person <inner@example.com>\n"
    "To: y@example.com\n"
    "Subject: =?iso-8859-1?q?inner_r=E9sum=E9?=\n"
    "Date: Wed, 2 Mar 2022 11:00:00 +0000\n"
    "Message-ID: <inner@example.com>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "inner plain\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<b>inner</b>\n"
    "--inner--\n"
    "\n"
    "--outer--\n";


struct structure_case {
	const char *name;
	const char *msg;
	const char *envelope;
	const char *bodystructure;
	const char *body;
};

static const struct structure_case structure_cases[] = {
	{ .name = "multipart/alternative",
	  .msg = "From: Alice <alice@example.com>\n"
	    "To: bob@example.com\n"
	    "Subject: multipart alternative\n"
	    "Date: Tue, 1 Mar 2022 10:00:00 +0100\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/alternative; boundary=\"XYZ\"\n"
	    "\n"
	    "preamble text\n"
	    "--XYZ\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: quoted-printable\n"
	    "\n"
	    "Caf=C3=A9 plain\n"
	    "--XYZ\n"
	    "Content-Type: text/html; charset=utf-8\n"
	    "\n"
	    "<p>Caf&eacute; html</p>\n"
	    "--XYZ--\n"
	    "epilogue\n"
	    "",
	  .envelope = "(\"Tue, 1 Mar 2022 10:00:00 +0100\" \"multipart alternative\" ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((NIL NIL \"bob\" \"example.com\")) NIL NIL NIL NIL)",
	  .bodystructure = "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 15 0 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 23 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"XYZ\") NIL NIL NIL)",
	  .body = "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 15 0)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 23 0) \"alternative\")" },
	{ .name = "attachment with every Content-* field",
	  .msg = "From: \"Smith, John\" <john@example.com>\n"
	    "To: \"A\" <a@x.org>, b@y.org\n"
	    "Cc: undisclosed-recipients:;\n"
	    "Subject: attachment\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed;\n"
	    " boundary=\"=_b1\"\n"
	    "\n"
	    "--=_b1\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "see attached\n"
	    "--=_b1\n"
	    "Content-Type: application/pdf; name=\"doc.pdf\"\n"
	    "Content-Transfer-Encoding: base64\n"
	    "Content-Disposition: attachment; filename=\"doc.pdf\"\n"
	    "Content-ID: <part1@x>\n"
	    "Content-Description: A document\n"
	    "Content-Language: en, fr\n"
	    "Content-Location: http://x/doc.pdf\n"
	    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
	    "\n"
	    "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k\n"
	    "ZT4+CnN0cmVhbQp4nCvkMlAwUDC1NNUzMVGwMDHUszRSKErlCtfiyuMK5AIAXQ8GCgplbmRzdHJl\n"
	    "--=_b1--\n"
	    "",
	  .envelope = "(NIL \"attachment\" ((\"Smith, John\" NIL \"john\" \"example.com\")) ((\"Smith, John\" NIL \"john\" \"example.com\")) ((\"Smith, John\" NIL \"john\" \"example.com\")) ((\"A\" NIL \"a\" \"x.org\")(NIL NIL \"b\" \"y.org\")) ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)",
	  .bodystructure = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0 NIL NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"doc.pdf\") \"<part1@x>\" \"A document\" \"base64\" 154 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" \"doc.pdf\")) (\"en\" \"fr\") \"http://x/doc.pdf\") \"mixed\" (\"boundary\" \"=_b1\") NIL NIL NIL)",
	  .body = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0)(\"application\" \"pdf\" (\"name\" \"doc.pdf\") \"<part1@x>\" \"A document\" \"base64\" 154) \"mixed\")" },
	{ .name = "nested message/rfc822",
	  .msg = nested_msg,
	  .envelope = "(NIL \"forwarded\" ((NIL NIL \"outer\" \"example.com\")) ((NIL NIL \"outer\" \"example.com\")) ((NIL NIL \"outer\" \"example.com\")) ((NIL NIL \"x\" \"example.com\")) NIL NIL NIL NIL)",
	  .bodystructure = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 22 1 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 359 (\"Wed, 2 Mar 2022 11:00:00 +0000\" \"=?iso-8859-1?q?inner_r=E9sum=E9?=\" ((\"Inner Person\" NIL \"inner\" \"example.com\")) ((\"Inner Person\" NIL \"inner\" \"example.com\")) ((\"Inner Person\" NIL \"inner\" \"example.com\")) ((NIL NIL \"y\" \"example.com\")) NIL NIL NIL \"<inner@example.com>\") ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"inner\") NIL NIL NIL) 17 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)",
	  .body = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 22 1)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 359 (\"Wed, 2 Mar 2022 11:00:00 +0000\" \"=?iso-8859-1?q?inner_r=E9sum=E9?=\" ((\"Inner Person\" NIL \"inner\" \"example.com\")) ((\"Inner Person\" NIL \"inner\" \"example.com\")) ((\"Inner Person\" NIL \"inner\" \"example.com\")) ((NIL NIL \"y\" \"example.com\")) NIL NIL NIL \"<inner@example.com>\") ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0) \"alternative\") 17) \"mixed\")" },
	{ .name = "RFC 2047 headers",
	  .msg = "From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>\n"
	    "To: =?iso-8859-1?Q?Andr=E9?= <andre@example.fr>\n"
	    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?UTF-8?B?S8O2bG4=?=\n"
	    "Date: Thu, 03 Mar 2022 12:00:00 -0500\n"
	    "Message-ID: <2047@example.de>\n"
	    "In-Reply-To: <prev@example.de>\n"
	    "\n"
	    "Hallo\n"
	    "",
	  .envelope = "(\"Thu, 03 Mar 2022 12:00:00 -0500\" \"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?UTF-8?B?S8O2bG4=?=\" ((\"=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=\" NIL \"joerg\" \"example.de\")) ((\"=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=\" NIL \"joerg\" \"example.de\")) ((\"=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=\" NIL \"joerg\" \"example.de\")) ((\"=?iso-8859-1?Q?Andr=E9?=\" NIL \"andre\" \"example.fr\")) NIL NIL \"<prev@example.de>\" \"<2047@example.de>\")",
	  .bodystructure = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1 NIL NIL NIL NIL)",
	  .body = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1)" },
	{ .name = "Content-Type without MIME-Version",
	  .msg = "From: plain@example.com\n"
	    "Subject: no mime version but content type\n"
	    "Content-Type: text/html; charset=iso-8859-1\n"
	    "Content-Transfer-Encoding: 8bit\n"
	    "\n"
	    "<html>x</html>\n"
	    "",
	  .envelope = "(NIL \"no mime version but content type\" ((NIL NIL \"plain\" \"example.com\")) ((NIL NIL \"plain\" \"example.com\")) ((NIL NIL \"plain\" \"example.com\")) NIL NIL NIL NIL NIL)",
	  .bodystructure = "(\"text\" \"html\" (\"charset\" \"iso-8859-1\") NIL NIL \"8bit\" 16 1 NIL NIL NIL NIL)",
	  .body = "(\"text\" \"html\" (\"charset\" \"iso-8859-1\") NIL NIL \"8bit\" 16 1)" },
	{ .name = "multipart without boundary",
	  .msg = "From: a@example.com\n"
	    "Subject: multipart without boundary\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed\n"
	    "\n"
	    "text without any boundary\n"
	    "",
	  .envelope = "(NIL \"multipart without boundary\" ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
	  .bodystructure = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)",
	  .body = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")" },
	{ .name = "unterminated multipart",
	  .msg = "From: a@example.com\n"
	    "Subject: unterminated multipart\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"b\"\n"
	    "\n"
	    "--b\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "first\n"
	    "--b\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "second, no close\n"
	    "",
	  .envelope = "(NIL \"unterminated multipart\" ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
	  .bodystructure = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 18 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)",
	  .body = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 18 1) \"mixed\")" },
	{ .name = "RFC 2231 continuations",
	  .msg = "From: a@example.com\n"
	    "Subject: rfc2231\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"b\"\n"
	    "\n"
	    "--b\n"
	    "Content-Type: application/octet-stream;\n"
	    " name*0=\"very long \";\n"
	    " name*1=\"name.txt\"\n"
	    "Content-Disposition: attachment;\n"
	    " filename*=utf-8''%E2%82%AC%20rates.txt\n"
	    "\n"
	    "xx\n"
	    "--b\n"
	    "Content-Type: text/plain; charset*=us-ascii'en'plain; format=flowed\n"
	    "\n"
	    "t\n"
	    "--b--\n"
	    "",
	  .envelope = "(NIL \"rfc2231\" ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
	  .bodystructure = "((\"application\" \"octet-stream\" (\"name\" \"very long name.txt\") NIL NIL \"7bit\" 2 NIL (\"attachment\" (\"filename*\" \"utf-8''%E2%82%AC%20rates.txt\")) NIL NIL)(\"text\" \"plain\" (\"format\" \"flowed\" \"charset*\" \"us-ascii'en'plain\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)",
	  .body = "((\"application\" \"octet-stream\" (\"name\" \"very long name.txt\") NIL NIL \"7bit\" 2)(\"text\" \"plain\" (\"format\" \"flowed\" \"charset*\" \"us-ascii'en'plain\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"mixed\")" },
	{ .name = "multipart/digest default",
	  .msg = "From: a@example.com\n"
	    "Subject: digest\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/digest; boundary=\"d\"\n"
	    "\n"
	    "--d\n"
	    "\n"
	    "From: one@example.com\n"
	    "Subject: first in digest\n"
	    "\n"
	    "one\n"
	    "--d\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "not a message\n"
	    "--d--\n"
	    "",
	  .envelope = "(NIL \"digest\" ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
	  .bodystructure = "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 54 (NIL \"first in digest\" ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 13 0 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d\") NIL NIL NIL)",
	  .body = "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 54 (NIL \"first in digest\" ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) 3)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 13 0) \"digest\")" },
	{ .name = "nested boundary sharing a prefix",
	  .msg = "From: a@example.com\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"abc\"\n"
	    "\n"
	    "--abc\n"
	    "Content-Type: multipart/alternative; boundary=\"abcdef\"\n"
	    "\n"
	    "--abcdef\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "inner1\n"
	    "--abcdef\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "inner2\n"
	    "--abc\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "outer2\n"
	    "--abc--\n"
	    "",
	  .envelope = "(NIL NIL ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
	  .bodystructure = "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"abcdef\") NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"abc\") NIL NIL NIL)",
	  .body = "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0) \"alternative\")(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0) \"mixed\")" },
	{ .name = "Content-Type: text (no subtype)",
	  .msg = "From: a@example.com\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text\n"
	    "\n"
	    "x\n"
	    "",
	  .envelope = "(NIL NIL ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
	  .bodystructure = "(\"text\" \"\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
	  .body = "(\"text\" \"\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)" },
	{ .name = "repeated fields",
	  .msg = "From: first@example.com\n"
	    "From: second@example.com\n"
	    "Subject: first subject\n"
	    "Subject: second subject\n"
	    "Content-Type: image/png\n"
	    "Content-Type: text/plain\n"
	    "MIME-Version: 1.0\n"
	    "\n"
	    "x\n"
	    "",
	  .envelope = "(NIL \"second subject\" ((NIL NIL \"first\" \"example.com\")(NIL NIL \"second\" \"example.com\")) ((NIL NIL \"first\" \"example.com\")(NIL NIL \"second\" \"example.com\")) ((NIL NIL \"first\" \"example.com\")(NIL NIL \"second\" \"example.com\")) NIL NIL NIL NIL NIL)",
	  .bodystructure = "(\"image\" \"png\" NIL NIL NIL \"7bit\" 3 NIL NIL NIL NIL)",
	  .body = "(\"image\" \"png\" NIL NIL NIL \"7bit\" 3)" },
	{ .name = "boundary inside a part header",
	  .msg = "From: a@example.com\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"b\"\n"
	    "\n"
	    "--b\n"
	    "Content-Type: text/plain\n"
	    "--b\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "second\n"
	    "--b--\n"
	    "",
	  .envelope = "(NIL NIL ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
	  .bodystructure = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)",
	  .body = "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0) \"mixed\")" },
	{ .name = "broken addresses and groups",
	  .msg = "From: \"\" <empty@name.com>\n"
	    "To: @nolocal.com, local@, \"Only Name\", <a@[1.2.3.4]>, \"x\"@\"y\", a.b.c@d.e.f (c1) (c2)\n"
	    "Cc: =?utf-8?q?J=C3=B6?= <jo@x.com>, Mixed \"Quote\" Name <m@x.com>\n"
	    "Reply-To: ,,,\n"
	    "Bcc:\n"
	    "Subject:\n"
	    "In-Reply-To: <a@b> <c@d>\n"
	    "\n"
	    "x\n"
	    "",
	  .envelope = "(NIL \"\" ((NIL NIL \"empty\" \"name.com\")) ((NIL NIL \"empty\" \"name.com\")) ((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) ((NIL NIL \"MISSING_MAILBOX\" \"nolocal.com\")(NIL NIL \"local\" \"MISSING_DOMAIN\")(\"Only Name\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"a\" \"[1.2.3.4]\")(NIL NIL \"x\" \"MISSING_DOMAIN\")) ((\"=?utf-8?q?J=C3=B6?=\" NIL \"jo\" \"x.com\")(\"Mixed Quote Name\" NIL \"m\" \"x.com\")) NIL \"<a@b> <c@d>\" NIL)",
	  .bodystructure = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
	  .body = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)" },
	{ .name = "deep nesting, boundaries back to back",
	  .msg = "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=l1\n"
	    "\n"
	    "--l1\n"
	    "Content-Type: multipart/mixed; boundary=l2\n"
	    "\n"
	    "--l2\n"
	    "Content-Type: message/rfc822\n"
	    "\n"
	    "Content-Type: multipart/mixed; boundary=l3\n"
	    "MIME-Version: 1.0\n"
	    "\n"
	    "--l3\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "deep\n"
	    "--l3--\n"
	    "--l2--\n"
	    "--l1--\n"
	    "",
	  .envelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
	  .bodystructure = "(((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 113 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"l3\") NIL NIL NIL) 8 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"l2\") NIL NIL NIL) \"mixed\" (\"boundary\" \"l1\") NIL NIL NIL)",
	  .body = "(((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 113 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0) \"mixed\") 8) \"mixed\") \"mixed\")" },
	{ .name = "broken Content-Type",
	  .msg = "MIME-Version: 1.0\n"
	    "Content-Type: text/plain charset=utf-8\n"
	    "\n"
	    "x\n"
	    "",
	  .envelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
	  .bodystructure = "(\"\" \"\" NIL NIL NIL \"7bit\" 3 NIL NIL NIL NIL)",
	  .body = "(\"\" \"\" NIL NIL NIL \"7bit\" 3)" },
	{ .name = "param value starting with =",
	  .msg = "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; name==x\n"
	    "\n"
	    "x\n"
	    "",
	  .envelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
	  .bodystructure = "(\"text\" \"plain\" (\"name\" \"=x\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
	  .body = "(\"text\" \"plain\" (\"name\" \"=x\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)" },
	{ .name = "header only, no newline",
	  .msg = "Subject: no body, no blank line",
	  .envelope = "(NIL \"no body, no blank line\" NIL NIL NIL NIL NIL NIL NIL NIL)",
	  .bodystructure = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
	  .body = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)" },
	{ .name = "empty message",
	  .msg = "",
	  .envelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
	  .bodystructure = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
	  .body = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)" },
};

static void
test_structure(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(structure_cases); i++) {
		const struct structure_case *c = &structure_cases[i];
		size_t len;
		char *msg = crlf(c->msg, &len), *got;
		struct imap_mime *m = imap_mime_parse(msg, len);
		struct evbuffer *b = evbuffer_new();

		print_message("case: %s\n", c->name);
		assert_non_null(m);
		assert_int_equal(imap_mime_envelope(m, b), 0);
		got = take(b);
		assert_string_equal(got, c->envelope);
		free(got);
		assert_int_equal(imap_mime_bodystructure(m, true, b), 0);
		got = take(b);
		assert_string_equal(got, c->bodystructure);
		free(got);
		assert_int_equal(imap_mime_bodystructure(m, false, b), 0);
		got = take(b);
		assert_string_equal(got, c->body);
		free(got);
		evbuffer_free(b);
		imap_mime_free(&m);
		assert_null(m);
		free(msg);
	}
}

/* ---- IMAP string quoting (literals for 8-bit, CR/LF, many escapes) ---- */

static void
test_quoting(void **state)
{
	static const struct {
		const char *name, *msg, *envelope;
		size_t len;  /* 0: strlen */
	} cases[] = {
		{ .name = "8-bit subject is a literal",
		  .msg = "Subject: Gr\xc3\xbc\xc3\x9f" "e\n\nx\n",
		  .envelope = "(NIL {7}\r\nGr\xc3\xbc\xc3\x9f" "e NIL NIL NIL NIL NIL NIL NIL NIL)" },
		{ .name = "folded subject is unfolded, blanks squeezed (a literal, as Dovecot)",
		  .msg = "Subject: a  b\n\tc \n\nx\n",
		  .envelope = "(NIL {5}\r\na b c NIL NIL NIL NIL NIL NIL NIL NIL)" },
		{ .name = "NUL in a header is U+FFFD", .msg = "Subject: a\0b\n\nx\n", .len = 17,
		  .envelope = "(NIL {5}\r\na\xef\xbf\xbd" "b NIL NIL NIL NIL NIL NIL NIL NIL)" },
		{ .name = "quotes in message-id escaped", .msg = "Message-ID: <a\"b@c>\n\nx\n",
		  .envelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL \"<a\\\"b@c>\")" },
		{ .name = "five escapes make a literal", .msg = "Message-ID: \\\\\\\\\\\n\nx\n",
		  .envelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL {5}\r\n\\\\\\\\\\)" },
		{ .name = "empty subject", .msg = "Subject:\n\nx\n",
		  .envelope = "(NIL \"\" NIL NIL NIL NIL NIL NIL NIL NIL)" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len;
		char *msg = crlf_n(cases[i].msg, cases[i].len ? cases[i].len : strlen(cases[i].msg),
		    &len), *got;
		struct imap_mime *m = imap_mime_parse(msg, len);
		struct evbuffer *b = evbuffer_new();

		print_message("case: %s\n", cases[i].name);
		assert_int_equal(imap_mime_envelope(m, b), 0);
		got = take(b);
		assert_string_equal(got, cases[i].envelope);
		free(got);
		evbuffer_free(b);
		imap_mime_free(&m);
		free(msg);
	}
}

/* ---- BODY[section] ---- */


struct section_case {
	const char *section;
	const char *want;
};

static const struct section_case section_cases[] = {
	{ .section = "",
	  .want = "From: outer@example.com\r\n"
	    "To: x@example.com\r\n"
	    "Subject: forwarded\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=outer\r\n"
	    "\r\n"
	    "--outer\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "Here is the message.\r\n"
	    "\r\n"
	    "--outer\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "From: Inner Person <inner@example.com>\r\n"
	    "To: y@example.com\r\n"
	    "Subject: =?iso-8859-1?q?inner_r=E9sum=E9?=\r\n"
	    "Date: Wed, 2 Mar 2022 11:00:00 +0000\r\n"
	    "Message-ID: <inner@example.com>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=inner\r\n"
	    "\r\n"
	    "--inner\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "inner plain\r\n"
	    "--inner\r\n"
	    "Content-Type: text/html\r\n"
	    "\r\n"
	    "<b>inner</b>\r\n"
	    "--inner--\r\n"
	    "\r\n"
	    "--outer--\r\n"
	    "" },
	{ .section = "HEADER",
	  .want = "From: outer@example.com\r\n"
	    "To: x@example.com\r\n"
	    "Subject: forwarded\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=outer\r\n"
	    "\r\n"
	    "" },
	{ .section = "TEXT",
	  .want = "--outer\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "Here is the message.\r\n"
	    "\r\n"
	    "--outer\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "From: Inner Person <inner@example.com>\r\n"
	    "To: y@example.com\r\n"
	    "Subject: =?iso-8859-1?q?inner_r=E9sum=E9?=\r\n"
	    "Date: Wed, 2 Mar 2022 11:00:00 +0000\r\n"
	    "Message-ID: <inner@example.com>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=inner\r\n"
	    "\r\n"
	    "--inner\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "inner plain\r\n"
	    "--inner\r\n"
	    "Content-Type: text/html\r\n"
	    "\r\n"
	    "<b>inner</b>\r\n"
	    "--inner--\r\n"
	    "\r\n"
	    "--outer--\r\n"
	    "" },
	{ .section = "1",
	  .want = "Here is the message.\r\n"
	    "" },
	{ .section = "1.MIME",
	  .want = "Content-Type: text/plain\r\n"
	    "\r\n"
	    "" },
	{ .section = "2",
	  .want = "From: Inner Person <inner@example.com>\r\n"
	    "To: y@example.com\r\n"
	    "Subject: =?iso-8859-1?q?inner_r=E9sum=E9?=\r\n"
	    "Date: Wed, 2 Mar 2022 11:00:00 +0000\r\n"
	    "Message-ID: <inner@example.com>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=inner\r\n"
	    "\r\n"
	    "--inner\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "inner plain\r\n"
	    "--inner\r\n"
	    "Content-Type: text/html\r\n"
	    "\r\n"
	    "<b>inner</b>\r\n"
	    "--inner--\r\n"
	    "" },
	{ .section = "2.MIME",
	  .want = "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "" },
	{ .section = "2.HEADER",
	  .want = "From: Inner Person <inner@example.com>\r\n"
	    "To: y@example.com\r\n"
	    "Subject: =?iso-8859-1?q?inner_r=E9sum=E9?=\r\n"
	    "Date: Wed, 2 Mar 2022 11:00:00 +0000\r\n"
	    "Message-ID: <inner@example.com>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=inner\r\n"
	    "\r\n"
	    "" },
	{ .section = "2.TEXT",
	  .want = "--inner\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "inner plain\r\n"
	    "--inner\r\n"
	    "Content-Type: text/html\r\n"
	    "\r\n"
	    "<b>inner</b>\r\n"
	    "--inner--\r\n"
	    "" },
	{ .section = "2.1",
	  .want = "inner plain" },
	{ .section = "2.2",
	  .want = "<b>inner</b>" },
	{ .section = "2.1.MIME",
	  .want = "Content-Type: text/plain\r\n"
	    "\r\n"
	    "" },
	{ .section = "3",
	  .want = "" },
	{ .section = "1.1",
	  .want = "Here is the message.\r\n"
	    "" },
	{ .section = "HEADER.FIELDS (FROM SUBJECT)",
	  .want = "From: outer@example.com\r\n"
	    "Subject: forwarded\r\n"
	    "\r\n"
	    "" },
	{ .section = "HEADER.FIELDS.NOT (FROM SUBJECT)",
	  .want = "To: x@example.com\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=outer\r\n"
	    "\r\n"
	    "" },
	{ .section = "2.HEADER.FIELDS (SUBJECT)",
	  .want = "Subject: =?iso-8859-1?q?inner_r=E9sum=E9?=\r\n"
	    "\r\n"
	    "" },
	{ .section = "2.HEADER.FIELDS.NOT (SUBJECT TO FROM DATE)",
	  .want = "Message-ID: <inner@example.com>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=inner\r\n"
	    "\r\n"
	    "" },
};

/* "1.2.HEADER.FIELDS (A B)" -> struct imap_section */
static void
parse_section(const char *s, struct imap_section *sec, const char **fields, char *buf)
{
	memset(sec, 0, sizeof(*sec));
	while (*s >= '0' && *s <= '9') {
		sec->part[sec->depth++] = (uint32_t)strtoul(s, (char **)&s, 10);
		if (*s == '.')
			s++;
	}
	if (*s == '\0') {
		sec->kind = IMAP_SECTION_ALL;
	} else if (strcmp(s, "HEADER") == 0) {
		sec->kind = IMAP_SECTION_HEADER;
	} else if (strcmp(s, "TEXT") == 0) {
		sec->kind = IMAP_SECTION_TEXT;
	} else if (strcmp(s, "MIME") == 0) {
		sec->kind = IMAP_SECTION_MIME;
	} else {
		char *save = NULL;

		sec->kind = strncmp(s, "HEADER.FIELDS.NOT", 17) == 0 ?
		    IMAP_SECTION_HEADER_FIELDS_NOT : IMAP_SECTION_HEADER_FIELDS;
		strcpy(buf, strchr(s, '(') + 1);
		*strchr(buf, ')') = '\0';
		for (char *t = strtok_r(buf, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save))
			fields[sec->nfields++] = t;
		sec->fields = fields;
	}
}

static void
test_sections(void **state)
{
	size_t len;
	char *msg = crlf(nested_msg, &len);
	struct imap_mime *m = imap_mime_parse(msg, len);

	(void)state;
	assert_non_null(m);
	for (size_t i = 0; i < ARRAY_SIZE(section_cases); i++) {
		struct imap_section sec;
		const char *fields[8];
		char buf[128], *got;
		struct evbuffer *b = evbuffer_new();

		print_message("section: [%s]\n", section_cases[i].section);
		parse_section(section_cases[i].section, &sec, fields, buf);
		assert_int_equal(imap_mime_section(m, &sec, b), 0);
		got = take(b);
		assert_string_equal(got, section_cases[i].want);
		free(got);
		evbuffer_free(b);
	}
	imap_mime_free(&m);
	free(msg);
}

/* ---- SEARCH ---- */

static const char search_msg[] =
    "From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>\n"
    "To: =?iso-8859-1?Q?Andr=E9?= <andre@example.fr>\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?UTF-8?B?S8O2bG4=?=\n"
    "Date: Thu, 03 Mar 2022 23:30:00 -0500\n"
    "X-Raw: caf\xe9 latin-1 raw\n"
    "Cc: =?utf-8?b?w4lsb2TDrWU=?= =?utf-8?b?IETDrWF6?= <elodie@example.es>\n"
    "X-Split: =?utf-8?q?=C3?= =?utf-8?q?=A9t=C3=A9?= and =?utf-8?q?plain?= words\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=b\n"
    "\n"
    "--b\n"
    "Content-Type: text/plain; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Le pr=E9sident a dit: soft=\n"
    "break\n"
    "--b\n"
    "Content-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "PHA+U3RyYcOfZSBpbSBIVE1MPC9wPgo=\n"
    "--b\n"
    "Content-Type: application/octet-stream\n"
    "\n"
    "binaryneedle\n"
    "--b--\n";

static void
test_search(void **state)
{
	static const struct {
		const char *field, *needle;
		bool body, text, want;
	} cases[] = {
		{ "Subject", "grüße", false, false, true },        /* RFC 2047 Q, case folded */
		{ "subject", "KÖLN", false, false, true },         /* B, upper case needle */
		{ "Subject", "gruesse", false, false, false },
		{ "From", "jörg müller", false, false, true },
		{ "From", "joerg@example.de", false, false, true },
		{ "To", "andré", false, false, true },             /* ISO-8859-1 word */
		{ "X-Missing", "", false, false, false },
		{ "Subject", "", false, false, true },              /* empty: the field exists */
		{ NULL, "andre@example", false, false, true },      /* any header */
		{ "Cc", "Díaz", false, false, true },               /* 2nd of two base64 words */
		{ "Cc", "élodíe díaz", false, false, true },        /* the blank between: kept */
		{ "X-Split", "été and plain words", false, false, true },  /* a character split */
		{ NULL, "président", true, false, true },           /* QP + latin-1 body */
		{ NULL, "softbreak", true, false, true },           /* soft line break joined */
		{ NULL, "STRAßE IM", true, false, true },           /* base64 html */
		{ NULL, "binaryneedle", true, false, false },       /* not a text part */
		{ NULL, "grüße", true, false, false },              /* BODY is not headers */
		{ NULL, "grüße", true, true, true },                /* TEXT is */
	};
	size_t len;
	char *msg = crlf(search_msg, &len);
	struct imap_mime *m = imap_mime_parse(msg, len);

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool got;

		print_message("search %zu: %s %s\n", i, cases[i].field ? cases[i].field : "(body)",
		    cases[i].needle);
		if (cases[i].body)
			got = imap_mime_body_contains(m, cases[i].needle, cases[i].text);
		else
			got = imap_mime_header_contains(m, cases[i].field, cases[i].needle);
		assert_int_equal(got, cases[i].want);
	}
	/* the date as written, zone disregarded (RFC 3501 SENTON): 2022-03-03 23:30 */
	assert_int_equal(imap_mime_sent_date(m), 1646350200);
	imap_mime_free(&m);
	free(msg);

	msg = crlf("Subject: x\n\nno date\n", &len);
	m = imap_mime_parse(msg, len);
	assert_int_equal(imap_mime_sent_date(m), -1);
	imap_mime_free(&m);
	free(msg);
}

/* ---- hostile input: never a crash, bounded work ---- */

static void
test_hostile(void **state)
{
	struct evbuffer *b = evbuffer_new();
	size_t n = 200000, o = 0;
	char *msg = malloc(n * 2);

	(void)state;
	/* 3000 nested multiparts, each with its own boundary */
	for (int i = 0; i < 3000 && o < n; i++)
		o += (size_t)sprintf(msg + o, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n",
		    i, i);
	{
		struct imap_mime *m = imap_mime_parse(msg, o);

		assert_non_null(m);
		assert_int_equal(imap_mime_bodystructure(m, true, b), 0);
		evbuffer_drain(b, evbuffer_get_length(b));
		imap_mime_free(&m);
	}
	/* 20000 empty parts */
	o = (size_t)sprintf(msg, "Content-Type: multipart/mixed; boundary=x\r\n\r\n");
	for (int i = 0; i < 20000; i++)
		o += (size_t)sprintf(msg + o, "--x\r\n");
	{
		struct imap_mime *m = imap_mime_parse(msg, o);

		assert_non_null(m);
		assert_int_equal(imap_mime_bodystructure(m, false, b), 0);
		imap_mime_free(&m);
	}
	free(msg);
	evbuffer_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_quoting),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
