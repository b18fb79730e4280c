"""
imap_corpus.py: real-world-shaped messages for the IMAP tests, and a writer
that puts them into a Maildir the way bulwark's delivery does
(src/delivery/delivery_maildir.c): LF line ends, a Return-Path line first,
tmp/ then rename into new/ as TIME.MusecPpidQseq.HOST,S=SIZE.

Every message carries a unique Message-ID <cN.NAME@corpus.example> so the
tests can match a message across servers without trusting sequence numbers.
The file times are fixed (mtime = INTERNALDATE for both Dovecot and bulwark's
store) and increase with the corpus order, and so do the file names, so both
servers assign UIDs in corpus order.

The corpus covers: plain text (no Content-Type, us-ascii, UTF-8 8bit,
quoted-printable, base64 text), multipart/alternative, base64 attachments,
nested message/rfc822 (itself multipart), multipart/mixed inside
multipart/alternative, multipart/related, multipart/digest, deep nesting,
RFC 2047 encoded words in UTF-8, ISO-8859-1, ISO-8859-15, windows-1252,
KOI8-R, ISO-2022-JP, GB2312 and Big5 (B and Q), RFC 2231 parameters
(charset'lang'value and continuations), group addresses (named, empty,
undisclosed-recipients), a missing Date, every ENVELOPE field, extension
data (Content-MD5, -Language, -Location, -Disposition, -ID, -Description),
and malformed MIME: a missing closing boundary, a multipart without a
boundary parameter, a Content-Type without subtype, garbage Content-Type,
unknown transfer encoding, raw 8-bit (UTF-8 and Latin-1) headers, a header
block without a body, a body with NUL-free binary bytes, bare CR.
"""

import base64
import os
import time
from pathlib import Path

HOST = "mail.example.test"
BASE_TIME = 1764230400          # 2025-11-27 08:00:00 UTC, the first message's mtime
STEP = 3600 * 7                 # later messages are 7 hours apart (spans days)


def _b64(data, width=76):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + width] for i in range(0, len(s), width))


PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" * 20
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7d6a4f200"
                    "00000049454e44ae426082")

# (name, message text with LF line ends, str or bytes). Order matters: UIDs.
MESSAGES = []


def msg(name, text):
    MESSAGES.append((name, text))


msg("plain", """\
From: Alice Example <alice@example.test>
To: Bob Example <bob@example.test>
Subject: Lunch on Thursday
Date: Thu, 27 Nov 2025 08:00:00 +0000
Message-ID: <c1.plain@corpus.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

Hi Bob,

shall we have lunch on Thursday? The usual place, noon.
The word needle-plain appears only in this body.

-- 
Alice
""")

msg("no-content-type", """\
From: root@localhost
To: alice@example.test
Subject: cron output
Date: Thu, 27 Nov 2025 09:00:00 +0100
Message-ID: <c2.no-content-type@corpus.example>

/etc/cron.daily/logrotate:
error: skipping "/var/log/foo.log" because parent directory has insecure permissions
""")

msg("utf8-8bit", """\
From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>
To: alice@example.test
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=
Date: Fri, 28 Nov 2025 10:15:00 +0100
Message-ID: <c3.utf8-8bit@corpus.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Liebe Alice,

viele Grüße aus München! Das Wetter ist schön, der Föhn weht.
Straße, Maß, Übermut.
""")

msg("quoted-printable", """\
From: "Renée Dupont" <renee@example.fr>
To: alice@example.test
Subject: =?ISO-8859-1?Q?R=E9servation_confirm=E9e?=
Date: Sat, 29 Nov 2025 14:00:00 +0100
Message-ID: <c4.quoted-printable@corpus.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Votre r=E9servation est confirm=E9e pour le 12 d=E9cembre =E0 l'h=F4tel.
Cette ligne est tr=E8s longue et doit =EAtre coup=E9e par un saut de ligne =
doux, ce qui est permis en quoted-printable.
""")

msg("base64-text", """\
From: notifications@service.example
To: alice@example.test
Subject: Your statement is ready
Date: Sun, 30 Nov 2025 06:30:00 -0500
Message-ID: <c5.base64-text@corpus.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

""" + _b64("Your monthly statement is ready. Balance: 1 234,56 €.\nneedle-base64 hidden in base64.\n".encode()) + "\n")

msg("alternative", """\
From: Newsletter <news@shop.example>
To: alice@example.test
Subject: Black Friday: 40% off everything
Date: Fri, 28 Nov 2025 07:00:00 +0000
Message-ID: <c6.alternative@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-boundary-1"

This is a multi-part message in MIME format.

--alt-boundary-1
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

Black Friday =E2=80=94 40% off everything until Monday.
Visit https://shop.example/deals

--alt-boundary-1
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

<html><body><h1>Black Friday =E2=80=94 40% off</h1><p>Visit <a href=3D"http=
s://shop.example/deals">our deals</a>.</p></body></html>

--alt-boundary-1--

epilogue text that nobody reads
""")

msg("attachment", """\
From: Bob Example <bob@example.test>
To: Alice Example <alice@example.test>
Cc: Carol <carol@example.org>
Subject: Q3 report
Date: Mon, 1 Dec 2025 09:12:44 +0000
Message-ID: <c7.attachment@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="----=_Part_0_123456.789"

------=_Part_0_123456.789
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 7bit

Please find the Q3 report attached.

------=_Part_0_123456.789
Content-Type: application/pdf; name="Q3 report.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="Q3 report.pdf"; size=""" + str(len(PDF)) + """

""" + _b64(PDF) + """
------=_Part_0_123456.789
Content-Type: image/png; name=dot.png
Content-Transfer-Encoding: base64
Content-ID: <dot.png@corpus.example>
Content-Disposition: inline; filename=dot.png

""" + _b64(PNG) + """
------=_Part_0_123456.789--
""")

msg("forwarded-rfc822", """\
From: Carol <carol@example.org>
To: alice@example.test
Subject: Fwd: Lunch on Thursday
Date: Tue, 2 Dec 2025 11:00:00 +0000
Message-ID: <c8.forwarded-rfc822@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain; charset=us-ascii

See the forwarded message below.

--outer
Content-Type: message/rfc822
Content-Disposition: inline

From: Alice Example <alice@example.test>
To: Bob Example <bob@example.test>
Cc: Dave <dave@example.net>, Eve <eve@example.net>
Subject: =?UTF-8?B?TGFzdCBtaW51dGUgY2hhbmdlIOKAkyBuZXcgcGxhY2U=?=
Date: Wed, 26 Nov 2025 18:00:00 +0000
Message-ID: <inner.forwarded@corpus.example>
In-Reply-To: <c1.plain@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8

Inner plain text with needle-inner.

--inner
Content-Type: text/html; charset=utf-8

<p>Inner <b>HTML</b> text.</p>

--inner--

--outer--
""")

msg("mixed-in-alternative", """\
From: "Apple Mail User" <mac@example.com>
To: alice@example.test
Subject: Photo from the weekend
Date: Wed, 3 Dec 2025 20:45:10 +0100
Message-ID: <c9.mixed-in-alternative@corpus.example>
Mime-Version: 1.0 (Mac OS X Mail 16.0)
Content-Type: multipart/alternative; boundary="Apple-Mail=_A1"

--Apple-Mail=_A1
Content-Transfer-Encoding: 7bit
Content-Type: text/plain; charset=us-ascii

Here is the photo.

--Apple-Mail=_A1
Content-Type: multipart/mixed; boundary="Apple-Mail=_B2"

--Apple-Mail=_B2
Content-Transfer-Encoding: 7bit
Content-Type: text/html; charset=us-ascii

<html><body>Here is the photo.</body></html>
--Apple-Mail=_B2
Content-Disposition: inline; filename=photo.png
Content-Type: image/png; x-unix-mode=0644; name="photo.png"
Content-Transfer-Encoding: base64

""" + _b64(PNG) + """
--Apple-Mail=_B2
Content-Transfer-Encoding: 7bit
Content-Type: text/html; charset=us-ascii

<html><body><br></body></html>
--Apple-Mail=_B2--

--Apple-Mail=_A1--
""")

msg("related", """\
From: marketing@shop.example
To: alice@example.test
Subject: Your cart
Date: Thu, 4 Dec 2025 08:00:00 +0000
Message-ID: <c10.related@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/related; boundary=rel; type="multipart/alternative"

--rel
Content-Type: multipart/alternative; boundary=alt2

--alt2
Content-Type: text/plain

You left something in your cart.
--alt2
Content-Type: text/html

<img src="cid:logo@shop"> You left something in your cart.
--alt2--

--rel
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-ID: <logo@shop>
Content-Description: the shop logo
Content-Location: http://shop.example/logo.png

""" + _b64(PNG) + """
--rel--
""")

msg("rfc2047-charsets", """\
From: =?KOI8-R?B?6dfBziDwxdTSz9c=?= <ivan@example.ru>
To: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <yamada@example.jp>,
 =?GB2312?B?1cXI/Q==?= <zhang@example.cn>
Cc: =?Big5?B?s6+kag==?= <chen@example.tw>,
 =?windows-1252?Q?Fran=E7ois_=93Frank=94?= <francois@example.fr>
Subject: =?ISO-8859-15?Q?Prix_en_=A4?= =?UTF-8?B?IOKAkyDQv9GA0LjQstC10YI=?=
 =?utf-8?q?_=E6=97=A5=E6=9C=AC?=
Date: Fri, 5 Dec 2025 12:00:00 +0300
Message-ID: <c11.rfc2047-charsets@corpus.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=KOI8-R
Content-Transfer-Encoding: 8bit

""" + "Привет, мир! needle-koi8\n")   # body re-encoded to KOI8-R in build()

msg("rfc2047-edge", """\
From: =?utf-8?b?w4lsb2TDrWU=?= =?utf-8?b?IETDrWF6?= <elodie@example.es>
To: "=?UTF-8?Q?Quoted_encoded?=" <quoted@example.net>
Subject: Re: =?UTF-8?Q?caf=C3=A9?= and plain, =?bogus-charset?Q?caf=E9?=, =?UTF-8?X?bad?=,
 not=?UTF-8?Q?_encoded?=inside, =?UTF-8*en?Q?language_tag?=
Date: Sat, 6 Dec 2025 00:00:01 -0000
Message-ID: <c12.rfc2047-edge@corpus.example>
Content-Type: text/plain; charset="us-ascii"

Encoded words in odd places.
""")

msg("rfc2231", """\
From: Dieter <dieter@example.de>
To: alice@example.test
Subject: Dateien
Date: Sun, 7 Dec 2025 16:20:00 +0100
Message-ID: <c13.rfc2231@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="2231"

--2231
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Anbei die Dateien.

--2231
Content-Type: application/octet-stream; name*=UTF-8''%E2%82%AC%20rates.txt
Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates.txt
Content-Transfer-Encoding: base64

""" + _b64(b"EUR 1.00 = USD 1.05\n") + """
--2231
Content-Type: text/plain; charset=us-ascii;
 name*0="a very long file name that was ";
 name*1="split into continuations.txt"
Content-Disposition: attachment;
 filename*0*=ISO-8859-1'de'%DCbersicht%20;
 filename*1*=%FCber%20alles;
 filename*2=".txt"
Content-Language: de, en

Continuation parameters.
--2231
Content-Type: text/plain; charset=utf-8
Content-Disposition: attachment; filename="=?UTF-8?B?w5xiZXJzaWNodC50eHQ=?="

RFC 2047 inside a quoted parameter (common, not standard).
--2231--
""")

msg("groups", """\
From: Mailing List <list@lists.example>
Sender: list-bounces@lists.example
Reply-To: Discussion <discuss@lists.example>
To: undisclosed-recipients:;
Cc: Team: alice@example.test, "Bob B." <bob@example.test>;, Empty Group:;
Bcc: Hidden <hidden@example.test>
Subject: group syntax
Date: Mon, 8 Dec 2025 09:00:00 +0000
Message-ID: <c14.groups@corpus.example>
In-Reply-To: <c1.plain@corpus.example> <c7.attachment@corpus.example>

Groups in To and Cc.
""")

msg("no-date", """\
From: nodate@example.test
To: alice@example.test
Subject: no date header at all
Message-ID: <c15.no-date@corpus.example>

This message has no Date: header; ENVELOPE gives NIL and SENT* searches
fall back to the internal date (RFC 3501 6.4.4).
""")

msg("envelope-edge", """\
From: "Last, First (Work)" <first.last@example.test> (a comment), second@example.test
Sender: <sender@example.test>
Reply-To: <>
To: "quoted \\"inner\\" name" <q@example.test>, local-only, <@route.example:routed@example.test>
Cc: =?UTF-8?Q?=E2=98=83?= <snow@example.test>
Subject:
Date: 9 Dec 25 13:05 EST
Message-ID: <c16.envelope-edge@corpus.example>
message-id: <duplicate@corpus.example>
X-Weird-Header : value with space before colon
X-Folded: first line
\tsecond line
\t third line

Odd envelope fields.
""")

msg("missing-close-boundary", """\
From: broken@example.test
To: alice@example.test
Subject: truncated multipart
Date: Wed, 10 Dec 2025 10:00:00 +0000
Message-ID: <c17.missing-close-boundary@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="never-closed"

--never-closed
Content-Type: text/plain

first part
--never-closed
Content-Type: text/plain

second part, and the message ends without the closing boundary needle-unclosed
""")

msg("bad-content-type", """\
From: broken@example.test
To: alice@example.test
Subject: bad content type
Date: Wed, 10 Dec 2025 11:00:00 +0000
Message-ID: <c18.bad-content-type@corpus.example>
MIME-Version: 1.0
Content-Type: text
Content-Transfer-Encoding: x-uuencode-ish

A Content-Type without subtype and an unknown transfer encoding.
""")

msg("garbage-content-type", """\
From: broken@example.test
To: alice@example.test
Subject: garbage content type
Date: Wed, 10 Dec 2025 12:00:00 +0000
Message-ID: <c19.garbage-content-type@corpus.example>
MIME-Version: 1.0
Content-Type: ;;; =broken; charset

Garbage in Content-Type.
""")

msg("multipart-no-boundary", """\
From: broken@example.test
To: alice@example.test
Subject: multipart without boundary
Date: Wed, 10 Dec 2025 13:00:00 +0000
Message-ID: <c20.multipart-no-boundary@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/mixed

--x
Content-Type: text/plain

no boundary parameter
--x--
""")

msg("8bit-headers", "From: Jörg Größ <joerg@example.de>\n"
    "To: alice@example.test\n"
    "Subject: Grüße ohne Kodierung – raw UTF-8\n"
    "Date: Thu, 11 Dec 2025 09:30:00 +0100\n"
    "Message-ID: <c21.8bit-headers@corpus.example>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Raw UTF-8 in the header, as many mailers still send.\n")

msg("latin1-headers", b"From: Fran\xe7ois <francois@example.fr>\n"
    b"To: alice@example.test\n"
    b"Subject: Caf\xe9 cr\xe8me, raw Latin-1\n"
    b"Date: Thu, 11 Dec 2025 10:30:00 +0100\n"
    b"Message-ID: <c22.latin1-headers@corpus.example>\n"
    b"Content-Type: text/plain; charset=iso-8859-1\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n"
    b"Raw Latin-1 in header and body: \xe9t\xe9.\n")

msg("header-only", """\
From: empty@example.test
To: alice@example.test
Subject: header only, no body, no blank line
Date: Fri, 12 Dec 2025 00:00:00 +0000
Message-ID: <c23.header-only@corpus.example>
""")

msg("empty-body", """\
From: empty@example.test
To: alice@example.test
Subject: empty body
Date: Fri, 12 Dec 2025 00:01:00 +0000
Message-ID: <c24.empty-body@corpus.example>

""")

msg("deep-nesting", """\
From: deep@example.test
To: alice@example.test
Subject: deep nesting
Date: Sat, 13 Dec 2025 08:00:00 +0000
Message-ID: <c25.deep-nesting@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=L1

preamble L1
--L1
Content-Type: multipart/mixed; boundary=L2

--L2
Content-Type: multipart/alternative; boundary=L3

--L3
Content-Type: text/plain

level 3 plain
--L3
Content-Type: multipart/related; boundary=L4

--L4
Content-Type: text/html

<p>level 4 html</p>
--L4
Content-Type: message/rfc822

Subject: innermost
From: inner@example.test
Message-ID: <innermost@corpus.example>

innermost body needle-deep
--L4--
--L3--
--L2
Content-Type: text/plain; charset=us-ascii; format=flowed; delsp=yes

level 2 flowed text
--L2--
--L1
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAECAwQFBgcICQ==
--L1--
""")

msg("digest", """\
From: digest@lists.example
To: alice@example.test
Subject: Digest, Vol 1, Issue 2
Date: Sun, 14 Dec 2025 00:00:00 +0000
Message-ID: <c26.digest@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/digest; boundary=dig

--dig

From: one@example.test
Subject: digest item one

first item
--dig
Content-Type: message/rfc822

From: two@example.test
Subject: digest item two
Content-Type: text/plain; charset=utf-8

second item
--dig--
""")

msg("extension-data", """\
From: ext@example.test
To: alice@example.test
Subject: extension data
Date: Mon, 15 Dec 2025 17:30:00 +0000
Message-ID: <c27.extension-data@corpus.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="ext"; charset=ignored
Content-Language: en-GB
Content-Location: http://example.test/ext

--ext
Content-Type: text/plain; charset=utf-8; format=flowed
Content-Transfer-Encoding: quoted-printable
Content-ID: <part1@ext>
Content-Description: the text part
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==
Content-Disposition: inline
Content-Language: en, fr
Content-Location: part1.txt

Text with extension data.=20
--ext
Content-Type: APPLICATION/X-Custom; Name="UPPER.BIN"
Content-Transfer-Encoding: BASE64
Content-Disposition: ATTACHMENT; FILENAME="UPPER.BIN"; creation-date="Mon, 15 Dec 2025 17:30:00 +0000"

AAEC
--ext--
""")

msg("large", "From: big@example.test\nTo: alice@example.test\nSubject: a large text\n"
    "Date: Tue, 16 Dec 2025 12:00:00 +0000\nMessage-ID: <c28.large@corpus.example>\n"
    "Content-Type: text/plain; charset=us-ascii\n\n"
    + "".join(f"line {i:05d} of the large message, padded to make it longer than a page.\n"
              for i in range(3000)) + "needle-large-end\n")

msg("reply-thread", """\
From: Bob Example <bob@example.test>
To: Alice Example <alice@example.test>
Subject: Re: Re: Lunch on Thursday
Date: Wed, 17 Dec 2025 12:34:56 +0000
Message-ID: <c29.reply-thread@corpus.example>
In-Reply-To: <c1.plain@corpus.example>
References: <c1.plain@corpus.example>
 <c29-parent@corpus.example>
X-Priority: 1
List-Id: Example list <list.example.test>

Sounds good.

> shall we have lunch on Thursday?
""")

msg("html-only", """\
From: "HTML Only" <html@example.test>
To: alice@example.test
Subject: html only
Date: Thu, 18 Dec 2025 09:00:00 +0000
Message-ID: <c30.html-only@corpus.example>
MIME-Version: 1.0
Content-Type: text/html; charset=windows-1252
Content-Transfer-Encoding: quoted-printable

<html><body><p>Caf=E9 =93quotes=94 needle-html</p></body></html>
""")

msg("bare-cr-and-binary", b"From: binary@example.test\n"
    b"To: alice@example.test\n"
    b"Subject: binary-ish body\n"
    b"Date: Fri, 19 Dec 2025 09:00:00 +0000\n"
    b"Message-ID: <c31.bare-cr-and-binary@corpus.example>\n"
    b"Content-Type: application/octet-stream\n"
    b"Content-Transfer-Encoding: binary\n"
    b"\n"
    b"bytes \x01\x02\x7f\x80\xff and a bare\rCR in the line\n")

msg("long-header-line", "From: long@example.test\nTo: alice@example.test\n"
    "Subject: " + " ".join(f"word{i}" for i in range(150)) + "\n"
    "Date: Sat, 20 Dec 2025 09:00:00 +0000\nMessage-ID: <c32.long-header-line@corpus.example>\n"
    "X-Long: " + "x" * 1500 + "\n\nA very long unfolded header line.\n")


# Names of the messages whose MIME is deliberately broken.
MALFORMED = {"missing-close-boundary", "bad-content-type", "garbage-content-type",
             "multipart-no-boundary", "8bit-headers", "latin1-headers", "header-only",
             "bare-cr-and-binary", "long-header-line", "rfc2047-edge", "envelope-edge"}


def message_id(name):
    i = [n for n, _ in MESSAGES].index(name) + 1
    return f"<c{i}.{name}@corpus.example>"


def build(name, text):
    """The bytes of one corpus message (LF line ends, not yet Return-Path'ed)."""
    if isinstance(text, bytes):
        return text
    if name == "rfc2047-charsets":
        head, body = text.split("\n\n", 1)
        return head.encode("ascii") + b"\n\n" + body.encode("koi8-r")
    return text.encode("utf-8")


def corpus():
    """[(name, bytes)] in corpus order, each with LF line ends."""
    out = []
    for i, (name, text) in enumerate(MESSAGES, 1):
        raw = build(name, text)
        assert f"<c{i}.{name}@corpus.example>".encode() in raw, name
        assert b"\r\n" not in raw, name
        out.append((name, raw))
    return out


_seq = [0]


def unique_name(t, host=HOST):
    _seq[0] += 1
    return f"{t}.M{_seq[0] % 1000000:06d}P{os.getpid()}Q{_seq[0]}.{host}"


def deliver(maildir, raw, when, return_path="sender@corpus.example", subdir="new", info=None):
    """Write one message into maildir the way delivery_maildir.c does: a
    Return-Path line, LF line ends, tmp/ then rename to new/ with ,S=SIZE
    (or into cur/ with ':2,' + info when info is given). mtime = when.
    Returns the final path."""
    maildir = Path(maildir)
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    data = f"Return-Path: <{return_path}>\n".encode() + raw.replace(b"\r\n", b"\n")
    name = unique_name(int(when))
    tmp = maildir / "tmp" / name
    with open(tmp, "wb") as f:
        f.write(data)
    os.utime(tmp, (when, when))
    final = f"{name},S={len(data)}"
    if info is not None:
        subdir = "cur"
        final += ":2," + info
    dest = maildir / subdir / final
    os.rename(tmp, dest)
    return dest


# Messages a client has already seen or flagged: in cur/ with these Maildir
# info flags (D draft, F flagged, R answered, S seen, T deleted), the rest in new/.
FLAGS = {"plain": "S", "utf8-8bit": "RS", "attachment": "FS", "forwarded-rfc822": "S",
         "groups": "F", "no-date": "ST", "reply-thread": "RS", "html-only": "D",
         "large": "S"}


def write_corpus(maildir, base_time=BASE_TIME, step=STEP):
    """Deliver the whole corpus into maildir (INBOX). Returns
    [(name, message-id, path)]."""
    out = []
    for i, (name, raw) in enumerate(corpus()):
        p = deliver(maildir, raw, base_time + i * step, info=FLAGS.get(name))
        out.append((name, message_id(name), p))
    return out


def big_maildir(maildir, count, base_time=BASE_TIME, seed=1):
    """count generated messages (a mix of plain, alternative and attachment
    shapes, 1-20 KB) for the benchmark. Returns the list of paths."""
    import random
    rnd = random.Random(seed)
    words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima "
             "mike november oscar papa quebec romeo sierra tango uniform victor whiskey "
             "xray yankee zulu").split()
    paths = []
    for i in range(count):
        subj = " ".join(rnd.choice(words) for _ in range(rnd.randint(2, 8)))
        body = "\n".join(" ".join(rnd.choice(words) for _ in range(12))
                         for _ in range(rnd.randint(5, 300)))
        shape = i % 3
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(base_time + i * 60))
        head = (f"From: Sender {i % 97} <sender{i % 97}@bench.example>\n"
                f"To: user@bench.test\nSubject: {subj} #{i}\nDate: {date}\n"
                f"Message-ID: <bench{i}@bench.example>\nX-Bench-Group: g{i % 100}\n"
                "MIME-Version: 1.0\n")
        if shape == 0:
            raw = head + "Content-Type: text/plain; charset=us-ascii\n\n" + body + "\n"
        elif shape == 1:
            raw = (head + 'Content-Type: multipart/alternative; boundary="b"\n\n'
                   "--b\nContent-Type: text/plain; charset=utf-8\n\n" + body +
                   "\n--b\nContent-Type: text/html; charset=utf-8\n\n<p>" + body +
                   "</p>\n--b--\n")
        else:
            raw = (head + 'Content-Type: multipart/mixed; boundary="m"\n\n'
                   "--m\nContent-Type: text/plain\n\n" + body[:500] +
                   "\n--m\nContent-Type: application/octet-stream; name=a.bin\n"
                   "Content-Transfer-Encoding: base64\n"
                   "Content-Disposition: attachment; filename=a.bin\n\n" +
                   _b64(rnd.randbytes(rnd.randint(100, 3000))) + "\n--m--\n")
        paths.append(deliver(maildir, raw.encode(), base_time + i * 60))
    return paths
