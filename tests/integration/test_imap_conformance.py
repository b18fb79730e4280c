"""
test_imap_conformance.py: bulwark's IMAP answers compared with Dovecot's on a
copy of the same Maildir (imap_corpus: real-world-shaped and malformed
messages, LF line ends as delivery writes them).

Compared, per message: ENVELOPE, BODYSTRUCTURE, BODY, RFC822.SIZE,
INTERNALDATE, FLAGS, and BODY[section] for every part of the message (each
part N, N.MIME, and N.HEADER / N.TEXT of an encapsulated message/rfc822)
plus HEADER, TEXT, HEADER.FIELDS, HEADER.FIELDS.NOT, RFC822.HEADER,
RFC822.TEXT, a part that does not exist, and partial fetches. Then SEARCH:
flags, HEADER, FROM/TO/CC/BCC/SUBJECT with RFC 2047 decoding in several
charsets, BODY/TEXT through transfer and charset decoding, sent and internal
dates, sizes, sequence and UID sets, OR/NOT.

Values are compared after parsing (a quoted string equals the same literal),
nothing else is normalised. Every known difference is an xfail below whose
reason is the entry in docs/imap-conformance.md; any other difference is a
finding for /work/imap-findings.md.
"""

import os
import shutil
import socket
import time

import pytest

import bulwark_helpers as H
import dovecot as DV
import imap_corpus as C
import imap_wire as W

USER = "alice@example.test"
# BULWARK_IMAP_SELFTEST=1: both sides are Dovecot (every test must pass then).
SELFTEST = os.environ.get("BULWARK_IMAP_SELFTEST") == "1"
NAMES = [n for n, _ in C.MESSAGES]

# (test kind, corpus name or search id) -> reason (see docs/imap-conformance.md)
# None at present: every difference found so far was fixed in bulwark (see
# docs/imap-conformance.md). An entry here must be an RFC-acceptable one.
XFAIL = {
}


def xfail_params(kind, ids):
    out = []
    for i in ids:
        reason = None if SELFTEST else XFAIL.get((kind, i))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        out.append(pytest.param(i, marks=marks, id=i))
    return out


def wait_imap(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((H.SERVER_IP, port), timeout=2) as s:
                s.settimeout(5)
                data = s.recv(512)
                if data.startswith(b"* OK"):
                    s.sendall(b"a LOGOUT\r\n")
                    return
                last = data
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"no IMAP greeting on port {port} after {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def pair(module_bulwark, tmp_path_factory):
    """(bulwark client, dovecot client), both logged in as USER with INBOX
    EXAMINEd, on copies of one corpus Maildir."""
    DV.skip_unless_installed()
    extra = []
    src = tmp_path_factory.mktemp("corpus") / "Maildir"
    C.write_corpus(src)

    if SELFTEST:
        # Dovecot against itself: proves the comparisons, not bulwark.
        d = DV.Dovecot()
        d.add_user(USER, H.PASSWORD)
        d.load_maildir(USER, src)
        d.start()
        extra.append(d)
    else:
        d = module_bulwark(name="conformance")
        md = d.maildir(USER)
        if md.exists():
            shutil.rmtree(md)
        md.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, md)

    dv = DV.Dovecot()
    dv.add_user(USER, H.PASSWORD)
    dv.load_maildir(USER, src)
    dv.start()

    wait_imap(d.imap_port)
    b = Session("bulwark", d.imap_port)
    o = Session("dovecot", dv.imap_port)
    yield b, o
    for c in (b, o):
        try:
            c.cmd(b"LOGOUT", timeout=5)
        except Exception:
            pass
        c.close()
    dv.cleanup()
    for x in extra:
        x.cleanup()


class Session:
    """A logged-in connection with INBOX EXAMINEd that comes back by itself:
    a server that hangs up (too many errors, a crash) fails the command that
    saw it, not every test after it."""

    def __init__(self, who, port):
        self.who, self.port = who, port
        self.c = None
        self._open()

    def _open(self):
        self.c = W.Client(self.port, source=H.TRUSTED)
        self.c.login(USER, H.PASSWORD)
        self.c.select("INBOX", readonly=True)

    def cmd(self, *args, **kw):
        try:
            return self.c.cmd(*args, **kw)
        except (OSError, W.ImapError, TimeoutError) as e:
            self.c.close()
            self._open()
            raise AssertionError(f"{self.who}: the connection failed during {args!r}: {e!r}") from None

    def close(self):
        self.c.close()


def seq_of(name):
    return NAMES.index(name) + 1


def fetch_one(c, seq, items):
    r = c.cmd(f"FETCH {seq} ({items})")
    assert r.status == "OK", f"FETCH {seq} ({items}): {r.status} {r.text!r}"
    f = r.fetch()
    assert seq in f, f"FETCH {seq} ({items}): no FETCH reply for {seq}: {r.untagged[:3]!r}"
    return f[seq]


def both(pair, seq, items):
    b, o = pair
    return fetch_one(b, seq, items), fetch_one(o, seq, items)


def show(v):
    return repr(v)[:3000]


# ------------------------------------------------------------ sanity


def test_same_messages_same_order(pair):
    """Both servers see the 32 messages in corpus order with UIDs 1..N (the
    precondition for comparing by sequence number)."""
    b, o = pair
    want = len(NAMES)
    for c, who in ((b, "bulwark"), (o, "dovecot")):
        r = c.cmd("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        f = r.fetch()
        assert len(f) == want, f"{who}: {len(f)} messages, want {want}"
        for seq, name in enumerate(NAMES, 1):
            hdr = f[seq][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]
            assert f"<c{seq}.{name}@".encode() in hdr, f"{who}: seq {seq} is {hdr!r}, want {name}"
            assert f[seq][b"UID"] == seq, f"{who}: seq {seq} has UID {f[seq][b'UID']}"


# ------------------------------------------------------------ per message


@pytest.mark.parametrize("name", xfail_params("envelope", NAMES))
def test_envelope(pair, name):
    got, want = both(pair, seq_of(name), "ENVELOPE")
    assert got[b"ENVELOPE"] == want[b"ENVELOPE"], (
        f"ENVELOPE of {name}\nbulwark: {show(got[b'ENVELOPE'])}\ndovecot: {show(want[b'ENVELOPE'])}")


@pytest.mark.parametrize("name", xfail_params("bodystructure", NAMES))
def test_bodystructure(pair, name):
    got, want = both(pair, seq_of(name), "BODYSTRUCTURE")
    assert got[b"BODYSTRUCTURE"] == want[b"BODYSTRUCTURE"], (
        f"BODYSTRUCTURE of {name}\nbulwark: {show(got[b'BODYSTRUCTURE'])}\n"
        f"dovecot: {show(want[b'BODYSTRUCTURE'])}")


@pytest.mark.parametrize("name", xfail_params("body", NAMES))
def test_body_nonextensible(pair, name):
    got, want = both(pair, seq_of(name), "BODY")
    assert got[b"BODY"] == want[b"BODY"], (
        f"BODY of {name}\nbulwark: {show(got[b'BODY'])}\ndovecot: {show(want[b'BODY'])}")


@pytest.mark.parametrize("name", xfail_params("attrs", NAMES))
def test_size_date_flags(pair, name):
    items = "UID RFC822.SIZE INTERNALDATE FLAGS"
    got, want = both(pair, seq_of(name), items)
    for k in (b"UID", b"RFC822.SIZE", b"INTERNALDATE"):
        assert got[k] == want[k], f"{k.decode()} of {name}: bulwark {got[k]!r}, dovecot {want[k]!r}"
    # \Recent is per session and server policy; compare the stored flags
    strip = lambda fl: sorted(bytes(x).lower() for x in fl if bytes(x).lower() != b"\\recent")
    assert strip(got[b"FLAGS"]) == strip(want[b"FLAGS"]), (
        f"FLAGS of {name}: bulwark {got[b'FLAGS']!r}, dovecot {want[b'FLAGS']!r}")


def part_sections(bs, prefix=""):
    """Section specs of every part of a BODYSTRUCTURE (as Dovecot gave it)."""
    out = []
    if isinstance(bs[0], list):                     # multipart
        children = []
        for x in bs:
            if isinstance(x, list):
                children.append(x)
            else:
                break
        for i, child in enumerate(children, 1):
            num = f"{prefix}{i}"
            out += [num, num + ".MIME"]
            out += _inner(child, num)
        return out
    if not prefix:
        out.append("1")
        out += _inner(bs, "1", top=True)
    return out


def _inner(part, num, top=False):
    out = []
    if isinstance(part[0], list):
        out += part_sections(part, num + ".")
    elif (bytes(part[0]).lower(), bytes(part[1]).lower()) == (b"message", b"rfc822") and not top:
        out += [num + ".HEADER", num + ".TEXT"]
        inner = part[8]
        if isinstance(inner, list):
            if isinstance(inner[0], list):
                out += part_sections(inner, num + ".")
            else:
                out.append(num + ".1")
    return out


COMMON_SECTIONS = [
    "", "HEADER", "TEXT",
    "HEADER.FIELDS (From Subject Date Message-ID)",
    "HEADER.FIELDS (X-NOT-THERE)",
    "HEADER.FIELDS.NOT (Return-Path Received Subject)",
    "99",
]

# (<0.0> is not asked: it is outside RFC 3501's grammar, "<" number "."
# nz-number ">"; bad input is test_imap_session.py's business.)
PARTIALS = ["<0.100>", "<10.20>", "<100000000.10>"]


def fetch_section(c, seq, spec, partial="", peek=True):
    items = f"BODY.PEEK[{spec}]{partial}" if peek else f"BODY[{spec}]{partial}"
    r = c.cmd(f"FETCH {seq} ({items})")
    if r.status != "OK":
        return ("status", r.status, bytes(r.text))
    f = r.fetch().get(seq, {})
    vals = [(k, v) for k, v in f.items() if k.startswith(b"BODY[")]
    if len(vals) != 1:
        return ("items", sorted(f))
    k, v = vals[0]
    return (k.upper(), v)


@pytest.mark.parametrize("name", xfail_params("sections", NAMES))
def test_body_sections(pair, name):
    b, o = pair
    seq = seq_of(name)
    bs = fetch_one(o, seq, "BODYSTRUCTURE")[b"BODYSTRUCTURE"]
    specs = [(s, "") for s in COMMON_SECTIONS + part_sections(bs)]
    specs += [(s, p) for s in ("", "TEXT", "1") for p in PARTIALS]
    diffs = []
    for spec, partial in specs:
        want = fetch_section(o, seq, spec, partial)
        assert want[0] not in ("status", "items"), f"the oracle refused BODY[{spec}]{partial}: {want}"
        got = fetch_section(b, seq, spec, partial)
        if got != want:
            diffs.append(f"BODY[{spec}]{partial}\n  bulwark: {show(got)[:600]}\n  dovecot: {show(want)[:600]}")
    for item in ("RFC822.HEADER", "RFC822.TEXT"):
        got, want = both(pair, seq, item)
        if got.get(item.encode()) != want.get(item.encode()):
            diffs.append(f"{item}\n  bulwark: {show(got)[:600]}\n  dovecot: {show(want)[:600]}")
    assert not diffs, f"{name}: {len(diffs)} of {len(specs) + 2} sections differ:\n" + "\n".join(diffs)


# ------------------------------------------------------------ SEARCH


def u8(s):
    return W.Lit(s.encode("utf-8"))


SEARCHES = {
    # flags (imap_corpus.FLAGS)
    "all": ["ALL"],
    "seen": ["SEEN"], "unseen": ["UNSEEN"], "flagged": ["FLAGGED"],
    "answered": ["ANSWERED"], "unanswered": ["UNANSWERED"], "deleted": ["DELETED"],
    "undeleted": ["UNDELETED"], "draft": ["DRAFT"], "undraft": ["UNDRAFT"],
    "keyword": ["KEYWORD", "$Forwarded"], "unkeyword": ["UNKEYWORD", "$Forwarded"],
    # addresses, case-insensitive substrings, decoded display names
    "from-ascii": ["FROM", "alice"],
    "from-display": ["FROM", '"Bob Example"'],
    "from-domain": ["FROM", "example.test"],
    "from-utf8-q": ["CHARSET", "UTF-8", "FROM", u8("Müller")],
    "from-koi8": ["CHARSET", "UTF-8", "FROM", u8("Иван")],
    "from-latin1-raw": ["CHARSET", "UTF-8", "FROM", u8("François")],
    "from-8bit-raw": ["CHARSET", "UTF-8", "FROM", u8("Größ")],
    "from-split-words": ["CHARSET", "UTF-8", "FROM", u8("Élodíe Díaz")],
    "to-iso2022jp": ["CHARSET", "UTF-8", "TO", u8("山田")],
    "to-gb2312": ["CHARSET", "UTF-8", "TO", u8("张三")],
    "to-group": ["TO", "undisclosed"],
    "cc-big5": ["CHARSET", "UTF-8", "CC", u8("陳")],
    "cc-cp1252": ["CHARSET", "UTF-8", "CC", u8("“Frank”")],
    "cc-group-member": ["CC", "bob@example.test"],
    "bcc": ["BCC", "hidden"],
    # subjects
    "subject-ascii": ["SUBJECT", "lunch"],
    "subject-utf8": ["CHARSET", "UTF-8", "SUBJECT", u8("Grüße")],
    "subject-latin1-q": ["CHARSET", "UTF-8", "SUBJECT", u8("réservation")],
    "subject-iso8859-15": ["CHARSET", "UTF-8", "SUBJECT", u8("€")],
    "subject-multi-charset": ["CHARSET", "UTF-8", "SUBJECT", u8("€ – привет 日本")],
    "subject-cafe": ["CHARSET", "UTF-8", "SUBJECT", u8("café")],
    "subject-folded": ["SUBJECT", '"word99 word100"'],
    "subject-empty-needle": ["SUBJECT", '""'],
    "subject-iso8859-1-charset": ["CHARSET", "ISO-8859-1", "SUBJECT", W.Lit("réservation".encode("latin-1"))],
    "subject-bad-charset": ["CHARSET", "X-NO-SUCH-CHARSET", "SUBJECT", "x"],
    # HEADER
    "header-priority": ["HEADER", "X-Priority", "1"],
    "header-exists": ["HEADER", "List-Id", '""'],
    "header-message-id": ["HEADER", "Message-ID", "c7.attachment"],
    "header-in-reply-to": ["HEADER", "In-Reply-To", "c1.plain"],
    "header-folded": ["HEADER", "X-Folded", '"second line"'],
    "header-content-type": ["HEADER", "Content-Type", "multipart/alternative"],
    "header-subject-2047": ["CHARSET", "UTF-8", "HEADER", "Subject", u8("Grüße")],
    "header-missing": ["HEADER", "X-No-Such-Header", '""'],
    # BODY / TEXT through transfer and charset decoding
    "body-plain": ["BODY", "needle-plain"],
    "body-base64": ["BODY", "needle-base64"],
    "body-inner-rfc822": ["BODY", "needle-inner"],
    "body-koi8-ascii": ["BODY", "needle-koi8"],
    "body-koi8-cyrillic": ["CHARSET", "UTF-8", "BODY", u8("Привет, мир")],
    "body-utf8": ["CHARSET", "UTF-8", "BODY", u8("Grüße aus München")],
    "body-qp-latin1": ["CHARSET", "UTF-8", "BODY", u8("réservation est confirmée")],
    "body-qp-softbreak": ["BODY", '"ligne doux"'],
    "body-html": ["BODY", "needle-html"],
    "body-cp1252-html": ["CHARSET", "UTF-8", "BODY", u8("Café “quotes”")],
    "body-unclosed": ["BODY", "needle-unclosed"],
    "body-deep": ["BODY", "needle-deep"],
    "body-large-end": ["BODY", "needle-large-end"],
    "body-not-header": ["BODY", "Lunch"],
    "text-header": ["TEXT", "carol"],
    "text-body": ["TEXT", "needle-plain"],
    # dates: SENT* use the Date: header (its own date), the others INTERNALDATE
    "sentbefore": ["SENTBEFORE", "1-Dec-2025"],
    "sentsince": ["SENTSINCE", "10-Dec-2025"],
    "senton": ["SENTON", "28-Nov-2025"],
    "senton-tz": ["SENTON", "5-Dec-2025"],
    "senton-2digit-year": ["SENTON", "9-Dec-2025"],
    "senton-no-date": ["SENTON", "1-Dec-2025"],
    "sentsince-no-date": ["SENTSINCE", "1-Dec-2025"],
    "before": ["BEFORE", "1-Dec-2025"],
    "since": ["SINCE", "3-Dec-2025"],
    "on": ["ON", "29-Nov-2025"],
    # sizes
    "larger": ["LARGER", "1000"],
    "smaller": ["SMALLER", "400"],
    "larger-huge": ["LARGER", "200000"],
    # sets and logic
    "seqset": ["2:4,7,30:*"],
    "uidset": ["UID", "3:7,9"],
    "seq-and-subject": ["1:10", "SUBJECT", "lunch"],
    "or": ["OR", "FROM", "bob", "SUBJECT", "cron"],
    "not": ["NOT", "FROM", "example.test"],
    "not-or": ["NOT", "(OR", "SMALLER", "400", "LARGER", "1000)"],
    "nested-or": ["OR", "OR", "SEEN", "FLAGGED", "(DRAFT", "SMALLER", "300)"],
    "and-list": ["(FROM", "bob", "SUBJECT", "lunch)"],
}


def run_search(c, query, uid=False):
    r = c.cmd("UID SEARCH" if uid else "SEARCH", *query)
    if r.status != "OK":
        # the response code's name only: BADCHARSET MAY list the charsets
        code = r.text[1:].split(b"]")[0].split(b" ")[0] if r.text.startswith(b"[") else b""
        return (r.status, code)
    return r.search()


@pytest.mark.parametrize("sid", xfail_params("search", list(SEARCHES)))
def test_search(pair, sid):
    b, o = pair
    query = SEARCHES[sid]
    got, want = run_search(b, query), run_search(o, query)
    names = lambda v: [NAMES[i - 1] for i in v] if isinstance(v, list) else v
    assert got == want, (f"SEARCH {query!r}\n  bulwark: {got} {names(got)}\n"
                         f"  dovecot: {want} {names(want)}")
    got, want = run_search(b, query, uid=True), run_search(o, query, uid=True)
    assert got == want, f"UID SEARCH {query!r}\n  bulwark: {got}\n  dovecot: {want}"


# ------------------------------------------------------------ through SMTP


def test_corpus_delivered_through_smtp(pair, module_bulwark, tmp_path):
    """The corpus sent through bulwark's SMTP (delivery adds Return-Path and
    Received, writes LF and ,S=): Dovecot, given a copy of the Maildir bulwark's
    delivery wrote, answers ENVELOPE, BODYSTRUCTURE, RFC822.SIZE and BODY[]
    as bulwark does. Messages SMTP refuses (a bare CR, a line over 998
    octets) are left out."""
    if SELFTEST:
        pytest.skip("needs bulwark's SMTP")
    d = next(x for x in module_bulwark.daemons if x.name == "conformance")
    user = H.unique_user(d, prefix="smtp")
    sent = []
    for name, raw in C.corpus():
        if b"\r" in raw or max(len(x) for x in raw.split(b"\n")) > 998:
            continue
        H.send_one(d.smtp_port, tok=name, rcpts=(user,), message=raw.replace(b"\n", b"\r\n"))
        sent.append(name)
    H.wait_until(lambda: len(d.read_maildir(user)) == len(sent), timeout=30,
                 what=f"{len(sent)} messages delivered")
    dv = DV.Dovecot()
    try:
        dv.add_user(user)
        dv.load_maildir(user, d.maildir(user))
        dv.start()
        items = "(ENVELOPE BODYSTRUCTURE RFC822.SIZE BODY.PEEK[])"
        b = W.Client(d.imap_port, source=H.TRUSTED)
        b.login(user, H.PASSWORD)
        b.select("INBOX", readonly=True)
        o = W.Client(dv.imap_port)
        o.login(user, H.PASSWORD)
        o.select("INBOX", readonly=True)
        # match by Message-ID: SMTP delivery order is the queue's
        def by_id(c):
            out = {}
            for v in c.cmd(f"FETCH 1:* {items}").fetch().values():
                out[v[b"ENVELOPE"][9]] = v
            return out
        got, want = by_id(b), by_id(o)
        b.close()
        o.close()
    finally:
        dv.cleanup()
    assert len(want) == len(sent), f"Dovecot sees {len(want)} of {len(sent)}"
    diffs = [f"{mid!r}: {k.decode()}\n  bulwark: {show(got.get(mid, {}).get(k))[:400]}\n"
             f"  dovecot: {show(v)[:400]}"
             for mid, item in want.items() for k, v in item.items()
             if got.get(mid, {}).get(k) != v]
    assert not diffs, "\n".join(diffs)
