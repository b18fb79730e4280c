"""
test_imap_commands.py: every IMAP4rev1 command and the extensions bulwark
advertises, with Python's imaplib against the real daemon.

Each test runs twice: against bulwarkd ([bulwark]) and against Debian's
Dovecot ([dovecot-oracle]), to prove that what the test expects is what a
reference server does. Each test uses a fresh account, so the servers are
shared by the module. Where RFC 3501 allows more than one answer the test
accepts each of them (and says so).

Covered: CAPABILITY, NOOP, CHECK, LOGOUT, SELECT/EXAMINE, CREATE/DELETE/
RENAME with hierarchy (and RENAME INBOX), LIST/LSUB with * and %, the
special-use mailboxes of a new account, SUBSCRIBE/UNSUBSCRIBE, STATUS,
APPEND with flags and date then FETCH byte-exact, STORE +/-FLAGS(.SILENT)
and keywords, COPY, MOVE, UIDPLUS (APPENDUID, COPYUID, UID EXPUNGE), UID
FETCH/SEARCH/STORE/COPY/MOVE, EXPUNGE, CLOSE, UNSELECT, NAMESPACE, ID,
ENABLE, every FETCH item (macros, partial, BODY.PEEK vs BODY and \\Seen),
two sessions on one mailbox (EXISTS, EXPUNGE, FLAGS), a restart keeping
UIDs and UIDVALIDITY, flags as :2,FLAGS in the Maildir file names both ways,
the index lost and the Maildir changed while the server was down, CONDSTORE,
modified UTF-7 names; and (bulwark only) Dovecot reading the Maildir bulwark
wrote.
"""

import imaplib
import os
import re
import time

import pytest

import bulwark_helpers as H
import dovecot as DV
import imap_servers as S
import imap_wire as W
from imap_servers import fetch, flags_of, list_mailboxes, ok, untagged

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED", "LOGOUT"))


@pytest.fixture(scope="module")
def bulwark_server(module_bulwark):
    return S.BulwarkServer(module_bulwark(name="imap-commands"))


@pytest.fixture(scope="module")
def dovecot_server():
    DV.skip_unless_installed()
    s = S.DovecotServer()
    yield s
    s.cleanup()


@pytest.fixture(params=["bulwark", pytest.param("dovecot", id="dovecot-oracle")])
def srv(request):
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def acct(srv):
    return srv.account()


@pytest.fixture
def m(acct):
    """A logged-in imaplib session of a fresh account."""
    c = acct.imap()
    yield c
    try:
        c.logout()
    except Exception:
        pass


def msg(tok, subject=None, body=None, extra=""):
    return (f"From: Sender <sender@example.net>\r\nTo: <rcpt@example.test>\r\n"
            f"Subject: {subject or 'test ' + tok}\r\nMessage-ID: <{tok}@example.net>\r\n"
            f"Date: Thu, 27 Nov 2025 08:00:00 +0000\r\n{extra}\r\n"
            f"{body or 'Body of ' + tok}\r\n").encode()


def append(m, mailbox, raw, flags=None, date=None):
    """APPEND; returns (uidvalidity, uid) from [APPENDUID] (RFC 4315)."""
    typ, data = m.append(mailbox, flags, date, raw)
    assert typ == "OK", f"APPEND {mailbox}: {typ} {data!r}"
    mm = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert mm, f"APPEND OK without APPENDUID: {data!r}"
    return int(mm.group(1)), int(mm.group(2))


def fill(m, mailbox, n, prefix="m"):
    """n appended messages; returns their UIDs."""
    return [append(m, mailbox, msg(f"{prefix}{i}-{H.token()}"))[1] for i in range(n)]


def select(m, mailbox="INBOX", readonly=False):
    typ, data = m.select(mailbox, readonly=readonly)
    assert typ == "OK", f"SELECT {mailbox}: {typ} {data!r}"
    return int(data[0])


def uid_validity(m):
    return int(m.untagged_responses.get("UIDVALIDITY", [b"0"])[-1])


def capabilities(m):
    typ, data = m.capability()
    assert typ == "OK"
    return set(data[0].decode().upper().split())


# ------------------------------------------------------------ any state


def test_capability_noop_check_logout(acct):
    m = imaplib.IMAP4(H.SERVER_IP, acct.srv.port, timeout=30)
    pre = set(m.capabilities)
    assert "IMAP4REV1" in pre
    ok(m.login(acct.user, acct.password), "LOGIN")
    caps = capabilities(m)
    for c in ("IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "LITERAL+", "ENABLE", "ID",
              "NAMESPACE", "SPECIAL-USE", "UNSELECT", "CHILDREN"):
        assert c in caps, f"{c} not in CAPABILITY after login: {sorted(caps)}"
    ok(m.noop(), "NOOP")
    select(m)
    ok(m.check(), "CHECK")
    typ, data = m.logout()
    assert typ == "BYE", (typ, data)


def test_namespace(m):
    typ, data = m.namespace()
    assert typ == "OK", data
    # RFC 2342: one personal namespace with an empty prefix and "/" as the
    # delimiter, no other users' or shared namespaces
    assert data[0] == b'(("" "/")) NIL NIL', data


def test_id(m):
    typ, data = m._simple_command("ID", '("name" "bulwark-tests" "version" "1")')
    assert typ == "OK", data
    ids = untagged(m, "ID")
    assert ids, "no untagged ID response (RFC 2971 requires one, NIL or a list)"
    assert ids[0] == b"NIL" or ids[0].startswith(b"("), ids


def test_enable(m):
    typ, data = m._simple_command("ENABLE", "X-NO-SUCH-EXTENSION")
    assert typ == "OK", data
    # RFC 5161: unknown extensions are ignored, the ENABLED reply lists none
    en = untagged(m, "ENABLED")
    assert en in ([], [b""], [None]) or all(b"X-NO-SUCH" not in (e or b"") for e in en), en
    if "CONDSTORE" in capabilities(m):
        ok(m._simple_command("ENABLE", "CONDSTORE"))
        assert any(b"CONDSTORE" in (e or b"").upper() for e in untagged(m, "ENABLED"))


# ------------------------------------------------------------ mailboxes


SPECIAL = {"Sent": "\\sent", "Drafts": "\\drafts", "Trash": "\\trash", "Junk": "\\junk",
           "Archive": "\\archive"}


def test_new_account_special_use(m):
    boxes = list_mailboxes(m)
    assert "INBOX" in boxes, boxes
    for name, flag in SPECIAL.items():
        assert name in boxes, f"{name} missing from LIST of a new account: {boxes}"
        assert flag in boxes[name], f"{name} lacks {flag} (RFC 6154): {boxes[name]}"
        ok(m.select(name), f"SELECT {name}")
    assert set(boxes) == {"INBOX", *SPECIAL}, boxes


def test_select_examine(m, acct):
    fill(m, "INBOX", 2)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"2"], (typ, data)
    for key in ("FLAGS", "EXISTS", "RECENT", "UIDVALIDITY", "UIDNEXT", "PERMANENTFLAGS"):
        assert key in m.untagged_responses, f"SELECT without {key}: {m.untagged_responses}"
    assert m.untagged_responses.get("READ-WRITE") is not None, m.untagged_responses
    assert int(m.untagged_responses["UIDNEXT"][-1]) == 3
    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK" and data == [b"2"], (typ, data)
    assert m.untagged_responses.get("READ-ONLY") is not None, m.untagged_responses
    # RFC 3501 6.3.2: no change to the mailbox under EXAMINE; bulwark answers
    # STORE with NO, Dovecot with OK and changes nothing
    m.store("1", "+FLAGS", "(\\Flagged)")
    assert "\\Flagged" not in flags_of(m, 1), "STORE changed flags under EXAMINE"
    typ, data = m.select("No/Such/Box")
    assert typ == "NO", (typ, data)
    # a failed SELECT leaves the unselected state (RFC 3501 6.3.1)
    with pytest.raises(imaplib.IMAP4.error):
        m.fetch("1", "(FLAGS)")


def test_create_list_hierarchy(m):
    ok(m.create("Projects/2025/Q4"), "CREATE")
    boxes = list_mailboxes(m)
    assert "Projects/2025/Q4" in boxes, boxes
    # RFC 3501 6.3.3: superior names SHOULD be created; at least LIST must
    # show them (selectable or \Noselect) so clients can display the tree
    assert "Projects" in boxes and "Projects/2025" in boxes, boxes
    assert "\\haschildren" in boxes["Projects"], boxes["Projects"]
    assert "\\hasnochildren" in boxes["Projects/2025/Q4"], boxes["Projects/2025/Q4"]
    ok(m.select("Projects/2025/Q4"))
    assert m.create("Projects/2025/Q4")[0] == "NO", "CREATE of an existing mailbox"
    assert m.create("INBOX")[0] == "NO", "CREATE INBOX"
    assert m.create("inbox")[0] == "NO", "CREATE inbox (INBOX is case-insensitive)"
    ok(m.create("Trailing/"), "CREATE with a trailing separator (RFC 3501 6.3.3)")
    assert "Trailing" in list_mailboxes(m)


def test_list_wildcards(m):
    for name in ("Q", "Q/B", "Q/B/C", "QB", "Other"):
        ok(m.create(name), f"CREATE {name}")
    names = lambda pat, ref='""': set(list_mailboxes(m, ref, pat))
    assert names('"Q*"') == {"Q", "Q/B", "Q/B/C", "QB"}
    assert names('"Q%"') == {"Q", "QB"}
    assert names('"Q/%"') == {"Q/B"}
    assert names('"%"', ref='"Q/"') == {"Q/B"}, "LIST with a reference name"
    assert names('"*/C"') == {"Q/B/C"}
    assert names('"inbox"') == {"INBOX"}, "INBOX matches case-insensitively"
    assert names('"%"') == {"INBOX", "Q", "QB", "Other", *SPECIAL}
    # the hierarchy delimiter query (RFC 3501 6.3.8)
    typ, data = m.list('""', '""')
    assert typ == "OK" and S.flatten(data) == [b'(\\Noselect) "/" ""'], data
    assert list_mailboxes(m, '""', '"Q"')["Q"] >= {"\\haschildren"}
    assert list_mailboxes(m, '""', '"QB"')["QB"] >= {"\\hasnochildren"}


def test_delete(m):
    for name in ("Del", "Del/Child", "Leaf"):
        ok(m.create(name))
    fill(m, "Leaf", 2)
    ok(m.delete("Leaf"), "DELETE a leaf with messages")
    assert "Leaf" not in list_mailboxes(m)
    assert m.select("Leaf")[0] == "NO"
    assert m.delete("Leaf")[0] == "NO", "DELETE of a mailbox that does not exist"
    assert m.delete("INBOX")[0] == "NO", "DELETE INBOX (RFC 3501 6.3.4)"
    # A parent with children: RFC 3501 lets the server delete it (it becomes
    # \Noselect) or refuse; either way the child stays.
    m.delete("Del")
    boxes = list_mailboxes(m)
    assert "Del/Child" in boxes, boxes
    ok(m.delete("Del/Child"))
    m.delete("Del")
    assert "Del/Child" not in list_mailboxes(m)


def test_rename_hierarchy(m):
    ok(m.create("Old/Sub"))
    fill(m, "Old/Sub", 2)
    ok(m.rename("Old", "New"), "RENAME with children")
    boxes = list_mailboxes(m)
    assert "New/Sub" in boxes and "Old/Sub" not in boxes and "Old" not in boxes, boxes
    assert select(m, "New/Sub") == 2, "messages move with the renamed mailbox"
    m.close()
    ok(m.create("Taken"))
    assert m.rename("New/Sub", "Taken")[0] == "NO", "RENAME onto an existing mailbox"
    assert m.rename("Nope", "Other")[0] == "NO", "RENAME of a missing mailbox"
    ok(m.rename("New/Sub", "Deep/er/Box"), "RENAME creating superior names")
    assert "Deep/er/Box" in list_mailboxes(m)


def test_rename_inbox(m):
    """RFC 3501 6.3.5: RENAME INBOX moves all its messages to the new name
    and leaves INBOX empty. Dovecot refuses it (NO [CANNOT]) on Maildir++;
    a refusal must leave INBOX as it was."""
    fill(m, "INBOX", 3)
    typ, data = m.rename("INBOX", "Saved")
    if typ == "NO":
        assert select(m, "INBOX") == 3 and "Saved" not in list_mailboxes(m), data
        return
    assert typ == "OK", data
    boxes = list_mailboxes(m)
    assert "INBOX" in boxes and "Saved" in boxes, boxes
    assert select(m, "INBOX") == 0
    assert select(m, "Saved") == 3


def test_subscribe_lsub(m):
    ok(m.create("Sub/Scribed"))
    ok(m.create("Unsub"))
    ok(m.subscribe("Sub/Scribed"), "SUBSCRIBE")
    lsub = list_mailboxes(m, cmd="LSUB")
    assert "Sub/Scribed" in lsub and "Unsub" not in lsub, lsub
    # LSUB %: a subscribed child's unsubscribed parent shows as \Noselect
    # (RFC 3501 6.3.9)
    top = list_mailboxes(m, '""', '"%"', cmd="LSUB")
    assert "Sub" in top and "\\noselect" in top["Sub"], top
    ok(m.unsubscribe("Sub/Scribed"), "UNSUBSCRIBE")
    assert "Sub/Scribed" not in list_mailboxes(m, cmd="LSUB")
    # a name that does not exist: RFC 3501 6.3.6 lets the server refuse it
    # (Dovecot does) or subscribe it
    if m.subscribe("Not/There")[0] == "OK":
        assert "Not/There" in list_mailboxes(m, cmd="LSUB")


def test_status(m):
    ok(m.create("Stat"))
    uids = fill(m, "Stat", 3)
    typ, data = m.status("Stat", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    assert typ == "OK", data
    d = dict(re.findall(rb"(MESSAGES|RECENT|UIDNEXT|UIDVALIDITY|UNSEEN) (\d+)", data[0]))
    assert int(d[b"MESSAGES"]) == 3 and int(d[b"UNSEEN"]) == 3, data
    assert int(d[b"UIDNEXT"]) == uids[-1] + 1, data
    assert int(d[b"UIDVALIDITY"]) > 0 and int(d[b"RECENT"]) in (0, 3), data
    assert m.status("Missing", "(MESSAGES)")[0] == "NO"


# ------------------------------------------------------------ APPEND / FETCH


RAW = (b"From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.de>\r\n"
       b"To: alice@example.test\r\n"
       b"Subject: byte-exact \xc3\xa4\xc3\xb6\xc3\xbc\r\n"
       b"Date: Mon, 1 Jan 2024 12:34:56 +0200\r\n"
       b"Message-ID: <append-exact@example.test>\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: text/plain; charset=utf-8\r\n"
       b"Content-Transfer-Encoding: 8bit\r\n"
       b"\r\n"
       b"Line one\r\n"
       b"  leading spaces, trailing spaces   \r\n"
       b"\r\n"
       b".a line starting with a dot\r\n"
       b"8-bit: \xe2\x82\xac \xf0\x9f\x93\xa7\r\n"
       + b"x" * 998 + b"\r\n"
       b"last line\r\n")


def test_append_fetch_byte_exact(m, acct):
    date = imaplib.Time2Internaldate(time.mktime((2024, 1, 1, 12, 34, 56, 0, 0, -1)))
    uidv, uid = append(m, "INBOX", RAW, flags="(\\Seen \\Flagged $Forwarded)", date=date)
    select(m)
    assert uid_validity(m) == uidv
    f = fetch(m, str(uid), "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])", uid=True)
    item = next(iter(f.values()))
    assert item[b"BODY[]"] == RAW, "APPEND then FETCH BODY[] is not byte-exact"
    assert item[b"RFC822.SIZE"] == len(RAW)
    got = sorted(bytes(x).decode().lower() for x in item[b"FLAGS"] if bytes(x).lower() != b"\\recent")
    assert got == ["$forwarded", "\\flagged", "\\seen"], item[b"FLAGS"]
    assert (time.mktime(imaplib.Internaldate2tuple(b'INTERNALDATE "' + item[b"INTERNALDATE"] + b'"'))
            == time.mktime(imaplib.Internaldate2tuple(b"INTERNALDATE " + date.encode()))), \
        (item[b"INTERNALDATE"], date)
    # On disk: one file in cur/ with the flags in its name and LF line ends
    files = acct.files()
    assert len(files) == 1, files
    (name, data), = files.items()
    assert name.startswith("cur/") and re.search(r":2,[A-Za-z]*F[A-Za-z]*S", name), name
    assert data.replace(b"\n", b"\r\n") == RAW or data == RAW, "stored message differs"


def test_append_errors(m):
    typ, data = m.append("No/Such", None, None, msg(H.token()))
    assert typ == "NO" and b"[TRYCREATE]" in data[0], (typ, data)


def test_append_to_folder_and_uids_increase(m):
    ok(m.create("Box"))
    v1, u1 = append(m, "Box", msg(H.token()))
    v2, u2 = append(m, "Box", msg(H.token()))
    assert v1 == v2 and u2 > u1


ALL_ITEMS = ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID")


def test_fetch_every_item(m):
    raw = msg(H.token(), extra="Content-Type: text/plain; charset=us-ascii\r\n")
    append(m, "INBOX", raw)
    select(m)
    f = fetch(m, "1", "(" + " ".join(ALL_ITEMS) + ")")[1]
    for k in ALL_ITEMS:
        assert k.encode() in f, f"FETCH {k} missing: {sorted(f)}"
    env = f[b"ENVELOPE"]
    assert len(env) == 10 and env[1].startswith(b"test "), env
    assert f[b"BODYSTRUCTURE"][:2] == [b"text", b"plain"] or \
        [bytes(x).lower() for x in f[b"BODYSTRUCTURE"][:2]] == [b"text", b"plain"]
    hdr, body = raw.split(b"\r\n\r\n", 1)
    g = fetch(m, "1", "(RFC822.HEADER BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] "
                      "BODY.PEEK[]<0.10> BODY.PEEK[]<5.1000000> BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
    assert g[b"RFC822.HEADER"] == hdr + b"\r\n\r\n"
    assert g[b"BODY[HEADER]"] == hdr + b"\r\n\r\n"
    assert g[b"BODY[TEXT]"] == body and g[b"BODY[1]"] == body
    assert g[b"BODY[]<0>"] == raw[:10], "partial <0.10> (RFC 3501 6.4.5)"
    assert g[b"BODY[]<5>"] == raw[5:], "partial past the end gives what is there"
    subj = [v for k, v in g.items() if k.startswith(b"BODY[HEADER.FIELDS")]
    assert subj and subj[0].lower().startswith(b"subject: test "), g
    assert "\\Seen" not in flags_of(m, 1), "PEEK and RFC822.HEADER must not set \\Seen"
    # macros
    for macro, want in (("ALL", {b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE"}),
                        ("FAST", {b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"}),
                        ("FULL", {b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE", b"BODY"})):
        got = set(fetch(m, "1", macro)[1])
        assert want <= got, f"FETCH {macro}: {got}"


@pytest.mark.parametrize("item,key,sets_seen", [
    ("BODY.PEEK[]", b"BODY[]", False),
    ("BODY[]", b"BODY[]", True),
    ("BODY[TEXT]", b"BODY[TEXT]", True),
    ("BODY.PEEK[TEXT]", b"BODY[TEXT]", False),
    ("BODY[]<0.5>", b"BODY[]<0>", True),
    ("RFC822", b"RFC822", True),
    ("RFC822.TEXT", b"RFC822.TEXT", True),
    ("RFC822.HEADER", b"RFC822.HEADER", False),
])
def test_fetch_sets_seen(m, item, key, sets_seen):
    raw = msg(H.token())
    append(m, "INBOX", raw)
    select(m)
    f = fetch(m, "1", f"({item})")[1]
    assert key in f, f
    if sets_seen:
        # RFC 3501 6.4.5: the server SHOULD send the new FLAGS unsolicited
        assert "\\Seen" in flags_of(m, 1), f"FETCH {item} did not set \\Seen"
    else:
        assert "\\Seen" not in flags_of(m, 1), f"FETCH {item} set \\Seen"
    # no \Seen change in a read-only mailbox
    if sets_seen:
        ok(m.store("1", "-FLAGS", "(\\Seen)"))
        select(m, readonly=True)
        fetch(m, "1", f"({item})")
        select(m)
        assert "\\Seen" not in flags_of(m, 1), f"FETCH {item} set \\Seen under EXAMINE"


# ------------------------------------------------------------ STORE


def test_store_flags_round_trip(m, acct):
    fill(m, "INBOX", 3)
    select(m)
    typ, data = m.store("1", "+FLAGS", "(\\Flagged \\Answered)")
    assert typ == "OK", data
    assert any(re.search(rb"1 \(.*FLAGS \(", x) for x in data if x), f"no FETCH FLAGS reply: {data}"
    assert flags_of(m, 1) == ["\\Answered", "\\Flagged"]
    ok(m.store("1", "-FLAGS", "(\\Answered)"))
    assert flags_of(m, 1) == ["\\Flagged"]
    ok(m.store("1", "FLAGS", "(\\Seen \\Draft)"))
    assert flags_of(m, 1) == ["\\Draft", "\\Seen"]
    # .SILENT: no untagged FETCH for the changed message (RFC 3501 6.4.6)
    typ, data = m.store("2", "+FLAGS.SILENT", "(\\Deleted)")
    assert typ == "OK" and not any(x for x in data if x and b"FETCH" in x or (x and x.startswith(b"2 ("))), data
    assert "\\Deleted" in flags_of(m, 2)
    typ, data = m.store("2", "-FLAGS.SILENT", "(\\Deleted)")
    assert typ == "OK" and not any(x for x in data if x and x.startswith(b"2 (")), data
    assert flags_of(m, 2) == []
    # keywords
    ok(m.store("3", "+FLAGS", "($Label1 Junk)"))
    assert flags_of(m, 3) == ["$Label1", "Junk"]
    ok(m.store("3", "-FLAGS", "($Label1)"))
    assert flags_of(m, 3) == ["Junk"]
    # ranges and UID STORE
    ok(m.store("1:3", "+FLAGS.SILENT", "(\\Seen)"))
    assert all("\\Seen" in flags_of(m, i) for i in (1, 2, 3))
    uid3 = fetch(m, "3", "(UID)")[3][b"UID"]
    typ, data = m.uid("STORE", str(uid3), "-FLAGS", "(\\Seen)")
    assert typ == "OK" and any(b"UID" in x for x in data if x), f"UID STORE reply without UID: {data}"
    assert "\\Seen" not in flags_of(m, 3)
    # persisted: a new session sees the same flags
    m2 = acct.imap()
    select(m2)
    assert flags_of(m2, 1) == ["\\Draft", "\\Seen"] and flags_of(m2, 3) == ["Junk"]
    m2.logout()


def test_flags_in_maildir_file_names(m, acct):
    """Flags live in the standard ':2,FLAGS' suffix (letters sorted), so mutt
    and Dovecot agree with the server; a rename done by another Maildir
    client is seen by IMAP."""
    fill(m, "INBOX", 2)
    select(m)
    ok(m.store("1", "FLAGS", "(\\Seen \\Flagged \\Answered \\Draft)"))
    ok(m.store("2", "FLAGS", "(\\Seen)"))
    m.noop()
    names = sorted(acct.files())
    assert any(n.startswith("cur/") and n.endswith(":2,DFRS") for n in names), names
    assert any(n.startswith("cur/") and n.endswith(":2,S") for n in names), names
    # another Maildir client (mutt) marks message 2 flagged and unseen
    p = next(p for p in (acct.maildir() / "cur").iterdir() if p.name.endswith(":2,S"))
    os.rename(p, p.with_name(p.name[:-len(":2,S")] + ":2,F"))
    acct.srv.fixup(acct.user)

    def seen_by_imap():
        m.noop()
        return flags_of(m, 2) == ["\\Flagged"]
    H.wait_until(seen_by_imap, timeout=5, interval=0.2, what="flag change made on disk")


# ------------------------------------------------------------ COPY / MOVE / EXPUNGE


def test_copy_uidplus(m):
    uids = fill(m, "INBOX", 3)
    select(m)
    ok(m.store("2", "+FLAGS", "(\\Flagged)"))
    typ, data = m.copy("1:2", "Archive")
    assert typ == "OK", data
    mm = re.search(rb"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", data[0])
    assert mm, f"COPY without COPYUID (RFC 4315): {data}"
    assert mm.group(2) in (b"%d:%d" % (uids[0], uids[1]), b"%d,%d" % (uids[0], uids[1]))
    assert select(m, "Archive") == 2
    assert flags_of(m, 2) == ["\\Flagged"], "COPY keeps flags"
    select(m)
    assert m.copy("1", "No/Such")[0] == "NO"
    typ, data = m.copy("1", "No/Such")
    assert b"[TRYCREATE]" in data[0], data


def test_move(m):
    uids = fill(m, "INBOX", 4)
    select(m)
    typ, data = m._simple_command("MOVE", "2:3", "Trash")
    assert typ == "OK", data
    expunged = untagged(m, "EXPUNGE")
    assert expunged in ([b"2", b"2"], [b"3", b"2"]), f"MOVE EXPUNGE replies: {expunged}"
    assert untagged(m, "COPYUID"), "MOVE without COPYUID (RFC 6851 with UIDPLUS)"
    assert [fetch(m, "1:*", "(UID)")[i][b"UID"] for i in (1, 2)] == [uids[0], uids[3]]
    typ, data = m.uid("MOVE", str(uids[3]), "Trash")
    assert typ == "OK", data
    assert select(m, "Trash") == 3


def test_expunge_order(m):
    fill(m, "INBOX", 5)
    select(m)
    ok(m.store("2,4", "+FLAGS.SILENT", "(\\Deleted)"))
    typ, data = m.expunge()
    assert typ == "OK", data
    seqs = [int(x) for x in data if x]
    # RFC 3501 7.4.1: each EXPUNGE renumbers; "4 2" and "2 3" both remove
    # the 2nd and the 4th message
    alive = list(range(1, 6))
    for s in seqs:
        del alive[s - 1]
    assert alive == [1, 3, 5], f"EXPUNGE replies {seqs} remove the wrong messages"
    assert len(fetch(m, "1:*", "(UID)")) == 3


def test_uid_expunge(m):
    uids = fill(m, "INBOX", 3)
    select(m)
    ok(m.store("1:3", "+FLAGS.SILENT", "(\\Deleted)"))
    typ, data = m.uid("EXPUNGE", str(uids[1]))
    assert typ == "OK", data
    left = [v[b"UID"] for v in fetch(m, "1:*", "(UID)").values()]
    assert left == [uids[0], uids[2]], "UID EXPUNGE removes only the given \\Deleted UIDs"


def test_close_unselect(m):
    fill(m, "INBOX", 3)
    select(m)
    ok(m.store("1", "+FLAGS.SILENT", "(\\Deleted)"))
    ok(m._simple_command("UNSELECT"), "UNSELECT")
    assert select(m) == 3, "UNSELECT must not expunge (RFC 3691)"
    select(m, readonly=True)
    ok(m.close(), "CLOSE on EXAMINE")
    assert select(m) == 3, "CLOSE of a read-only mailbox must not expunge"
    typ, data = m.close()
    assert typ == "OK" and not [x for x in data if x and b"EXPUNGE" in x], data
    assert not untagged(m, "EXPUNGE"), "CLOSE expunges silently (RFC 3501 6.4.2)"
    assert select(m) == 2


def test_uid_commands(m):
    uids = fill(m, "INBOX", 4, prefix="uidcmd")
    select(m)
    ok(m.store("1", "+FLAGS", "(\\Deleted)"))
    ok(m.expunge())          # UIDs no longer match sequence numbers
    typ, data = m.uid("SEARCH", "ALL")
    assert typ == "OK" and [int(x) for x in data[0].split()] == uids[1:], data
    typ, data = m.uid("SEARCH", f"UID {uids[2]}:*")
    assert [int(x) for x in data[0].split()] == uids[2:], data
    f = fetch(m, f"{uids[2]}", "(FLAGS)", uid=True)
    assert list(f) == [2] and f[2][b"UID"] == uids[2], "UID FETCH includes UID (RFC 3501 6.4.8)"
    # a UID range with no match is not an error
    typ, data = m.uid("FETCH", "999999:1000000", "(FLAGS)")
    assert typ == "OK", data
    untagged(m, "COPYUID")
    typ, data = m.uid("COPY", f"{uids[1]}:{uids[3]}", "Drafts")
    assert typ == "OK" and untagged(m, "COPYUID"), data
    assert select(m, "Drafts") == 3


def test_search_basics(m):
    append(m, "INBOX", msg(H.token(), subject="alpha report"), flags="(\\Seen)")
    append(m, "INBOX", msg(H.token(), subject="beta report", body="needle in the body"))
    append(m, "INBOX", msg(H.token(), subject="gamma"), flags="(\\Flagged)")
    select(m)
    s = lambda *q: [int(x) for x in ok(m.search(None, *q))[0].split()]
    assert s("ALL") == [1, 2, 3]
    assert s("SUBJECT", "report") == [1, 2]
    assert s("BODY", "needle") == [2]
    assert s("SEEN") == [1] and s("UNSEEN") == [2, 3] and s("FLAGGED") == [3]
    assert s("OR", "SEEN", "FLAGGED") == [1, 3]
    assert s("NOT", "SUBJECT", "report") == [3]
    assert s("2:3", "UNSEEN") == [2, 3]
    assert s("LARGER", "1") == [1, 2, 3] and s("SMALLER", "1") == []
    assert ok(m.search("UTF-8", "SUBJECT", "gamma"))[0] == b"3"


# ------------------------------------------------------------ concurrency


def test_two_sessions_see_each_other(acct):
    a, b = acct.imap(), acct.imap()
    try:
        fill(a, "INBOX", 2)
        select(a)
        select(b)
        # a new message appended by a: b gets EXISTS at its next command
        append(a, "INBOX", msg(H.token()))

        def b_exists():
            b.noop()
            ex = untagged(b, "EXISTS")
            return ex and int(ex[-1]) == 3
        H.wait_until(b_exists, timeout=5, interval=0.2, what="EXISTS in the second session")
        # flags changed by a: b gets an untagged FETCH FLAGS
        ok(a.store("1", "+FLAGS", "(\\Flagged)"))

        def b_flags():
            b.noop()
            return any(b"\\Flagged" in x for x in untagged(b, "FETCH") if x)
        H.wait_until(b_flags, timeout=5, interval=0.2, what="FETCH FLAGS in the second session")
        # an expunge by a: b gets EXPUNGE
        ok(a.store("2", "+FLAGS.SILENT", "(\\Deleted)"))
        ok(a.expunge())

        def b_expunge():
            b.noop()
            return untagged(b, "EXPUNGE") == [b"2"]
        H.wait_until(b_expunge, timeout=5, interval=0.2, what="EXPUNGE in the second session")
        assert len(fetch(b, "1:*", "(UID)")) == 2
        # a delivery into the Maildir (not through IMAP): both see it
        acct.deliver(msg(H.token()).replace(b"\r\n", b"\n"))
        for s in (a, b):
            def exists(s=s):
                s.noop()
                ex = untagged(s, "EXISTS")
                return ex and int(ex[-1]) == 3
            H.wait_until(exists, timeout=5, interval=0.2, what="EXISTS after a Maildir delivery")
    finally:
        for s in (a, b):
            try:
                s.logout()
            except Exception:
                pass


def test_restart_keeps_uids(srv, acct):
    m = acct.imap()
    ok(m.create("Kept"))
    uids = fill(m, "INBOX", 3)
    fill(m, "Kept", 2)
    select(m)
    ok(m.store("2", "+FLAGS.SILENT", "(\\Deleted \\Seen)"))
    ok(m.expunge())
    ok(m.store("1", "+FLAGS.SILENT", "(\\Answered)"))
    before = {box: ok(m.status(box, "(UIDVALIDITY UIDNEXT MESSAGES)"))[0] for box in ("INBOX", "Kept")}
    m.logout()
    srv.restart()
    m = acct.imap()
    try:
        after = {box: ok(m.status(box, "(UIDVALIDITY UIDNEXT MESSAGES)"))[0] for box in ("INBOX", "Kept")}
        norm = lambda v: dict(re.findall(rb"(\w+) (\d+)", v.split(b"(", 1)[1]))
        assert {k: norm(v) for k, v in after.items()} == {k: norm(v) for k, v in before.items()}
        select(m)
        f = fetch(m, "1:*", "(UID FLAGS)")
        assert [f[i][b"UID"] for i in sorted(f)] == [uids[0], uids[2]]
        assert flags_of(m, 1) == ["\\Answered"]
        _, u = append(m, "INBOX", msg(H.token()))
        assert u > uids[2], "a UID is never reused after a restart"
    finally:
        m.logout()


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_index_lost_or_stale(srv, acct, damage):
    """The index is a cache: with it deleted (or overwritten with garbage), and the Maildir changed behind
    the server's back (one message removed, one delivered) while it was down,
    the server rebuilds it: UIDVALIDITY and the surviving UIDs, flags and
    keywords are unchanged (RFC 3501 2.3.1.1: a UID may only change with
    UIDVALIDITY), the new message gets a higher UID."""
    m = acct.imap()
    uids = fill(m, "INBOX", 3)
    select(m)
    ok(m.store("1", "+FLAGS.SILENT", "(\\Flagged $Important)"))
    ok(m.store("3", "+FLAGS.SILENT", "(\\Seen)"))
    before = fetch(m, "1:*", "(UID FLAGS)")
    env1 = fetch(m, "1", "(ENVELOPE)")[1][b"ENVELOPE"]
    uidv = uid_validity(m)
    m.logout()
    srv.stop()
    try:
        files = srv.index_files(acct.user)
        assert files, "no index files found to delete"
        for p in files:
            if damage == "deleted":
                p.unlink()
            else:
                p.write_bytes(b"\x00garbage, not an index\xff" * 64)
        second = next(p for sub in ("new", "cur") for p in (acct.maildir() / sub).iterdir()
                      if b"m1-" in p.read_bytes())
        second.unlink()
    finally:
        srv.start()
    acct.deliver(msg("late-" + H.token()).replace(b"\r\n", b"\n"))
    m = acct.imap()
    try:
        assert select(m) == 3
        assert uid_validity(m) == uidv, "UIDVALIDITY changed although the UIDs could be kept"
        after = fetch(m, "1:*", "(UID FLAGS)")
        assert [after[i][b"UID"] for i in (1, 2)] == [uids[0], uids[2]]
        assert after[3][b"UID"] > uids[2]
        fl = lambda f: sorted(bytes(x).decode() for x in f[b"FLAGS"] if bytes(x).lower() != b"\\recent")
        assert fl(after[1]) == fl(before[1]) == ["$Important", "\\Flagged"], (after[1], before[1])
        assert fl(after[2]) == fl(before[3]) == ["\\Seen"]
        assert fetch(m, "1", "(ENVELOPE)")[1][b"ENVELOPE"] == env1
    finally:
        m.logout()


def test_condstore(srv, acct):
    """RFC 7162 CONDSTORE, when advertised: HIGHESTMODSEQ on SELECT, MODSEQ
    in FETCH, CHANGEDSINCE, STORE UNCHANGEDSINCE with [MODIFIED], STATUS
    HIGHESTMODSEQ, SEARCH MODSEQ; modseqs only grow."""
    c = acct.wire()
    try:
        caps = c.cmd("CAPABILITY").untagged[0].upper().split()
        if b"CONDSTORE" not in caps:
            pytest.skip(f"{srv.name} does not advertise CONDSTORE")
        for i in range(3):
            assert c.cmd("APPEND INBOX", W.Lit(msg(f"cs{i}-{H.token()}"))).status == "OK"
        r = c.cmd("SELECT INBOX (CONDSTORE)")
        assert r.status == "OK", r.text
        hms = [int(x) for u in r.untagged for x in re.findall(rb"\[HIGHESTMODSEQ (\d+)\]", u)]
        assert hms and hms[0] > 0, r.untagged
        f = c.cmd("FETCH 1:* (MODSEQ)").fetch()
        mods = {seq: v[b"MODSEQ"][0] for seq, v in f.items()}
        assert len(mods) == 3 and max(mods.values()) <= hms[0], (mods, hms)
        # a change gives message 2 a new, higher modseq, reported with the FETCH
        r = c.cmd("STORE 2 +FLAGS (\\Flagged)")
        assert r.status == "OK", r.text
        ms2 = r.fetch()[2][b"MODSEQ"][0]
        assert ms2 > max(mods.values()), (ms2, mods)
        f = c.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {max(mods.values())})").fetch()
        assert list(f) == [2], f"CHANGEDSINCE: {f}"
        # UNCHANGEDSINCE older than the message's modseq: not stored, [MODIFIED 2]
        r = c.cmd(f"STORE 2 (UNCHANGEDSINCE {ms2 - 1}) +FLAGS (\\Seen)")
        assert r.status == "OK" and b"[MODIFIED 2]" in r.text, (r.text, r.untagged)
        flags = c.cmd("FETCH 2 (FLAGS)").fetch()[2][b"FLAGS"]
        assert b"\\Seen" not in [bytes(x) for x in flags], flags
        r = c.cmd(f"STORE 2 (UNCHANGEDSINCE {ms2}) +FLAGS (\\Seen)")
        assert r.status == "OK" and b"MODIFIED" not in r.text, r.text
        r = c.cmd("SEARCH MODSEQ", str(ms2))
        assert r.status == "OK" and r.search() == [2], r.untagged
        st = c.cmd('STATUS INBOX (HIGHESTMODSEQ)')
        m = re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(st.untagged))
        assert m and int(m.group(1)) > ms2, st.untagged
    finally:
        c.close()


def test_international_mailbox_name(m, acct):
    """A mailbox name in modified UTF-7 (RFC 3501 5.1.3) round-trips through
    CREATE, LIST, SELECT and APPEND, and is the Maildir++ folder
    '.Entw&APw-rfe/Alt' -> '.Entw&APw-rfe.Alt' on disk, the name Dovecot and
    mutt use for the same folder."""
    ok(m.create('"Entw&APw-rfe/Alt"'))
    boxes = list_mailboxes(m)
    assert "Entw&APw-rfe/Alt" in boxes and "Entw&APw-rfe" in boxes, boxes
    append(m, '"Entw&APw-rfe/Alt"', msg(H.token()))
    assert select(m, '"Entw&APw-rfe/Alt"') == 1
    folder = acct.maildir("Entw&APw-rfe/Alt")
    assert (folder / "cur").is_dir(), sorted(p.name for p in folder.parent.iterdir())
    assert len(acct.files("Entw&APw-rfe/Alt")) == 1


def test_dovecot_reads_bulwarks_maildir(bulwark_server, tmp_path):
    """What bulwark wrote is a Maildir another server reads the same way:
    after folders, APPENDs with flags and keywords, STOREs and an EXPUNGE
    through bulwark, a Dovecot given a copy of the account's Maildir lists
    the same mailboxes and sees the same messages with the same flags and
    keywords (RFC 6154 attributes aside: those are Dovecot's config)."""
    DV.skip_unless_installed()
    acct = bulwark_server.account()
    m = acct.imap()
    ok(m.create("Work/2025"))
    ok(m.create('"Entw&APw-rfe"'))
    for box, n in (("INBOX", 4), ("Work/2025", 2), ('"Entw&APw-rfe"', 1)):
        for i in range(n):
            append(m, box, msg(f"dv{i}-{H.token()}"),
                   flags=["(\\Seen)", "(\\Flagged $Label1)", "($Important \\Answered)", None][i % 4])
    select(m)
    ok(m.store("4", "+FLAGS", "(\\Draft $Label1)"))
    ok(m.store("1", "+FLAGS", "(\\Deleted)"))
    ok(m.expunge())

    def snapshot(sess):
        out = {}
        for name in sorted(list_mailboxes(sess)):
            typ, _ = sess.select(f'"{name}"', readonly=True)
            if typ != "OK":
                continue
            f = fetch(sess, "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])") \
                if int(sess.untagged_responses.get("EXISTS", [b"0"])[-1]) else {}
            out[name] = sorted(
                (v[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].strip(),
                 tuple(sorted(bytes(x).decode() for x in v[b"FLAGS"] if bytes(x).lower() != b"\\recent")))
                for v in f.values())
        return out

    mine = snapshot(m)
    m.logout()
    assert len(mine["INBOX"]) == 3 and len(mine["Work/2025"]) == 2, mine
    dv = DV.Dovecot(control_in_maildir=True)
    try:
        dv.add_user(acct.user)
        dv.load_maildir(acct.user, acct.maildir())
        dv.start()
        d = imaplib.IMAP4(H.SERVER_IP, dv.imap_port, timeout=30)
        ok(d.login(acct.user, H.PASSWORD))
        theirs = snapshot(d)
        d.logout()
    finally:
        dv.cleanup()
    assert theirs == mine, f"\nbulwark: {mine}\ndovecot: {theirs}"


def test_fetch_large_bodies_twice_and_partial(m):
    """Large bodies go out by reference, not copied (imap_fetch.c): the same
    message in several items of one FETCH, partial pieces of it, and several
    large messages in one command are still byte-exact."""
    raws = [msg(f"big{i}-{H.token()}", body="".join(f"line {k:05d} of big {i}, padded out a bit\r\n"
                                                     for k in range(300 + 200 * i)))
            for i in range(3)]
    uids = [append(m, "INBOX", raw)[1] for raw in raws]
    select(m)
    f = fetch(m, f"{uids[0]}:{uids[-1]}", "(RFC822.SIZE BODY.PEEK[] BODY.PEEK[]<5000.6000> "
              "BODY.PEEK[]<0.100> BODY.PEEK[TEXT])", uid=True)
    assert len(f) == 3
    for raw, item in zip(raws, sorted(f.values(), key=lambda v: int(v[b"UID"]))):
        assert len(raw) > 10000
        assert item[b"BODY[]"] == raw
        assert item[b"RFC822.SIZE"] == len(raw)
        assert item[b"BODY[]<5000>"] == raw[5000:11000]
        assert item[b"BODY[]<0>"] == raw[:100]
        assert item[b"BODY[TEXT]"] == raw[raw.index(b"\r\n\r\n") + 4:]
    g = fetch(m, str(uids[1]), "(RFC822 BODY[])", uid=True)
    item = next(iter(g.values()))
    assert item[b"RFC822"] == raws[1] and item[b"BODY[]"] == raws[1]
