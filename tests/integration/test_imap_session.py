"""
test_imap_session.py: the IMAP protocol side (issue 5) against the real
daemon, with Debian's imaplib and a raw socket client that shows every byte.

- listen.imap: CAPABILITY before and after STARTTLS; LOGINDISABLED and no
  AUTH=PLAIN before TLS for strangers (127.0.0.9), LOGIN refused there with
  [PRIVACYREQUIRED]; mynetworks (127.0.0.1) may log in without TLS.
- listen.imaps (implicit TLS): LOGIN, SELECT, FETCH of a message delivered
  through SMTP, byte-exact.
- LOGIN and AUTHENTICATE PLAIN (with and without SASL-IR) succeed; an
  unconfirmed account and a locked one are refused with the generic
  "NO [AUTHENTICATIONFAILED] Authentication failed." and the precise reason
  in the log; a suspended account may still read its mail.
- Lockout and bans work over IMAP as over SMTP, and SMTP + IMAP failures
  count together (for the account lockout and for the IP's strikes); a
  banned IP is dropped at accept on both IMAP listeners.
- Every failure writes a line that fail2ban's stock `dovecot` filter matches
  (checked with fail2ban-regex) and counts in /metrics with protocol="imap".
- IDLE sees a message delivered through SMTP within a few seconds.
- CONDSTORE (RFC 7162); untagged FLAGS when a new keyword appears; two
  sessions on one mailbox keep consistent counts through MOVE, COPY, EXPUNGE
  and UID EXPUNGE while the other appends and expunges; pipelined commands; a
  large FETCH to a slow reader (backpressure); a long SEARCH in slices;
  per-IP IMAP connection limit apart from SMTP's; per-account sessions;
  login and IDLE timeouts; SIGTERM with an IDLE session (BYE, exit 0); the
  IMAP paths under valgrind memcheck (when BULWARK_VG_BUILD is set).
- Bad input, each answered without a crash, and the server still serves a new
  client afterwards: an unterminated literal (client vanishes mid-literal), a
  huge synchronizing literal announcement ({99999999999}: NO [TOOBIG], no
  "+"), a huge LITERAL+ announcement (BYE and close), an unknown command, garbage
  after the tag (control bytes), non-UTF-8 in a quoted string and 8-bit bytes
  in an atom, an unbalanced parenthesis, a line over imap.max_line_length, a
  command in the wrong state, and too many errors (BYE and close).
"""

import base64
import imaplib
import re
import socket
import ssl
import time

import pytest

import bulwark_helpers as H

AUTH_FAILED = "[AUTHENTICATIONFAILED] Authentication failed."
NO_BANS = {"intrusion_prevention": {"maxretry": 1000, "maxretry_authenticated": 1000}}


def ctx():
    return H.unverified_context()


class IMAP(imaplib.IMAP4):
    """imaplib on listen.imap, from a chosen source address."""

    def __init__(self, port, source=H.UNTRUSTED, timeout=15):
        self._source = source
        super().__init__(H.SERVER_IP, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


class IMAPS(imaplib.IMAP4_SSL):
    """imaplib on listen.imaps (implicit TLS), from a chosen source address."""

    def __init__(self, port, source=H.UNTRUSTED, timeout=15):
        self._source = source
        super().__init__(H.SERVER_IP, port, ssl_context=ctx(), timeout=timeout)

    def _create_socket(self, timeout):
        s = socket.create_connection((self.host, self.port), timeout,
                                     source_address=(self._source, 0))
        return self.ssl_context.wrap_socket(s, server_hostname=self.host)


class Raw:
    """A byte-exact IMAP client on a plain socket (optionally implicit TLS)."""

    def __init__(self, port, source=H.UNTRUSTED, tls=False, timeout=10.0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect((H.SERVER_IP, port))
        if tls:
            s = ctx().wrap_socket(s)
        self.sock = s
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed; buffered {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def until_tagged(self, tag, timeout=None):
        """Lines up to and including the one tagged tag."""
        out = []
        while True:
            line = self.line(timeout)
            out.append(line)
            if line.startswith(tag + " "):
                return out

    def cmd(self, tag, text, timeout=None):
        self.send(f"{tag} {text}\r\n")
        return self.until_tagged(tag, timeout)

    def closed(self, timeout=5.0):
        """True when the server closes the connection (after what it sends)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def imap_dropped_at_accept(port, source, tls=False):
    return H.dropped_at_accept(port, source)


def deliver(d, to="alice@example.test", subject="hello", body=None):
    tok = H.token()
    body = body or f"body {tok}\r\n"
    raw = (f"From: Sender <sender@remote.example>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
           f"Message-ID: <{tok}@remote.example>\r\n\r\n{body}").encode()
    c = H.session(d.smtp_port, source=H.TRUSTED)
    c.start_transaction(rcpts=(to,))
    c.data(raw)
    c.quit()
    d.wait_for(to, tok)
    return tok, raw


def login_ok(m, user, password=H.PASSWORD):
    typ, data = m.login(user, password)
    assert typ == "OK", data
    return data


def login_refused(d, user, password, source=H.UNTRUSTED, implicit=True):
    m = IMAPS(d.imaps_port, source=source) if implicit else IMAP(d.imap_port, source=H.TRUSTED)
    try:
        with pytest.raises(imaplib.IMAP4.error) as e:
            m.login(user, password)
        assert AUTH_FAILED in str(e.value), str(e.value)
    finally:
        try:
            m.logout()
        except Exception:
            pass


@pytest.fixture(scope="module")
def im(module_bulwark):
    return module_bulwark(overrides=NO_BANS, name="imap")


# ---------------------------------------------------------------- capabilities, TLS


def test_capability_before_and_after_starttls(im):
    m = IMAP(im.imap_port, source=H.UNTRUSTED)
    caps = set(m.capabilities)
    assert {"IMAP4REV1", "STARTTLS", "LOGINDISABLED", "IDLE", "UIDPLUS", "MOVE", "LITERAL+",
            "SASL-IR", "ENABLE", "ID", "NAMESPACE", "SPECIAL-USE", "UNSELECT",
            "CHILDREN"} <= caps, caps
    assert "AUTH=PLAIN" not in caps
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("alice@example.test", H.PASSWORD)
    assert "PRIVACYREQUIRED" in str(e.value)
    typ, _ = m.starttls(ssl_context=ctx())
    assert typ == "OK"
    caps = set(m.capabilities)
    assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps and "LOGINDISABLED" not in caps, caps
    login_ok(m, "alice@example.test")
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_no_authenticate_before_tls_for_strangers(im):
    c = Raw(im.imap_port, source=H.UNTRUSTED)
    r = c.cmd("a", "AUTHENTICATE PLAIN " + H.b64("\0alice@example.test\0" + H.PASSWORD))
    assert r[-1].startswith("a NO [PRIVACYREQUIRED]"), r
    c.close()


def test_mynetworks_may_login_without_tls(im):
    m = IMAP(im.imap_port, source=H.TRUSTED)
    assert "AUTH=PLAIN" in m.capabilities and "LOGINDISABLED" not in m.capabilities
    login_ok(m, "bob@example.test")
    m.logout()


def test_starttls_refuses_pipelined_commands(im):
    c = Raw(im.imap_port, source=H.UNTRUSTED)
    c.send("a STARTTLS\r\nb LOGIN alice@example.test x\r\n")
    # whether the OK arrives or not, the injected command is never run
    assert c.closed(), "pipelined input after STARTTLS must not be kept"
    c.close()


def test_imaps_login_select_fetch_byte_exact(im):
    tok, raw = deliver(im, "carol@example.org", subject="imaps fetch")
    m = IMAPS(im.imaps_port)
    login_ok(m, "carol@example.org")
    typ, data = m.select("INBOX")
    assert typ == "OK" and int(data[0]) >= 1
    typ, data = m.search(None, "ALL")
    last = data[0].split()[-1]
    typ, data = m.fetch(last, "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    body = data[0][1]
    assert body.endswith(raw), body[-200:]
    size = int(re.search(rb"RFC822.SIZE (\d+)", data[0][0]).group(1))
    assert size == len(body)
    # PEEK does not set \Seen; BODY[] does (RFC 3501 6.4.5)
    assert b"\\Seen" not in m.fetch(last, "FLAGS")[1][0]
    typ, data = m.fetch(last, "(BODY[TEXT])")
    assert b"\\Seen" in m.fetch(last, "FLAGS")[1][0]
    m.logout()


# ---------------------------------------------------------------- logins


def test_login_and_authenticate_plain(im):
    m = IMAPS(im.imaps_port)
    typ, data = m.authenticate("PLAIN", lambda _: b"\0alice@example.test\0" + H.PASSWORD.encode())
    assert typ == "OK", data
    m.logout()
    # SASL-IR (RFC 4959): the response on the command line
    c = Raw(im.imaps_port, tls=True)
    r = c.cmd("a", "AUTHENTICATE PLAIN " + H.b64("\0bob@example.test\0" + H.PASSWORD), timeout=30)
    assert r[-1].startswith("a OK"), r
    r = c.cmd("b", "LOGOUT")
    assert r[0].startswith("* BYE"), r
    c.close()


def test_authenticate_abort_and_garbage(im):
    c = Raw(im.imaps_port, tls=True)
    c.send("a AUTHENTICATE PLAIN\r\n")
    assert c.line().startswith("+")
    c.send("*\r\n")
    assert c.line().startswith("a BAD"), "SASL abort"
    c.send("b AUTHENTICATE PLAIN\r\n")
    assert c.line().startswith("+")
    c.send("%%%not-base64%%%\r\n")
    assert c.line().startswith("b BAD")
    c.close()


def test_wrong_password_generic_reply_precise_log(im):
    user = H.unique_user(im, "wp")
    mark = H.log_mark(im)
    login_refused(im, user, "Wrong-Guess-1-abc")
    login_refused(im, "nosuch@example.test", "Wrong-Guess-2-abc")
    H.wait_log(im, "event=auth.failure", "protocol=imap", f"account={user}", "reason=bad_password",
               since=mark)
    H.wait_log(im, "event=auth.failure", "protocol=imap", "account=nosuch@example.test",
               "reason=unknown_user", since=mark)


def test_unconfirmed_refused(im):
    user = H.unique_user(im, "unc", confirmed=False)
    mark = H.log_mark(im)
    login_refused(im, user, H.PASSWORD)
    H.wait_log(im, "event=auth.failure", "protocol=imap", f"account={user}", "reason=unconfirmed",
               since=mark)


def test_suspended_may_read(im):
    user = H.unique_user(im, "sus")
    H.ctl_ok(im, "user", "suspend", user)
    m = IMAPS(im.imaps_port)
    login_ok(m, user)
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_lockout_over_imap_then_locked_refused(im):
    user = H.unique_user(im, "lk")
    mark = H.log_mark(im)
    for i in range(3):
        login_refused(im, user, f"Wrong-Guess-{i}-lk")
    rec = H.user_record(im, user)
    assert rec["locked_until"] > time.time(), rec
    login_refused(im, user, H.PASSWORD)
    H.wait_log(im, "event=auth.failure", "protocol=imap", f"account={user}", "reason=locked",
               since=mark)
    H.ctl_ok(im, "user", "unlock", user)
    m = IMAPS(im.imaps_port)
    login_ok(m, user)
    m.logout()


def test_smtp_and_imap_failures_lock_together(im):
    user = H.unique_user(im, "mx")
    H.assert_auth_refused(im, user, "Wrong-Guess-s1-mx")
    H.assert_auth_refused(im, user, "Wrong-Guess-s2-mx")
    login_refused(im, user, "Wrong-Guess-i1-mx")
    assert H.user_record(im, user)["locked_until"] > time.time()
    # locked on both protocols now
    H.assert_auth_refused(im, user)
    login_refused(im, user, H.PASSWORD)


def test_fail2ban_dovecot_filter_matches_imap_failures(im):
    import os
    assert os.path.exists(H.FAIL2BAN_REGEX), "fail2ban not installed (scripts/deps.sh)"
    login_refused(im, H.unique_user(im, "f2b"), "Wrong-Guess-f2b-1", source=H.UNTRUSTED2)
    H.wait_log(im, "imap-login: Aborted login", f"rip={H.UNTRUSTED2}")
    ips = H.fail2ban_ips(im.log_path, "dovecot")
    assert H.UNTRUSTED2 in ips, ips
    n_lines = len(H.log_lines(im, "imap-login: Aborted login", f"rip={H.UNTRUSTED2},"))
    assert ips.count(H.UNTRUSTED2) == n_lines, (ips, n_lines)
    # successes never match
    assert H.TRUSTED not in ips


def test_metrics_count_imap_failures(bulwark):
    port, over = H.http_overrides(NO_BANS)
    d = bulwark(overrides=over)
    key = 'bulwark_auth_failures_total{protocol="imap",reason="bad_password"}'
    before = H.metrics(port).get(key, 0.0)
    login_refused(d, "alice@example.test", "Wrong-Guess-metrics-1")
    H.wait_metric(port, key, lambda v: v == before + 1)


def test_sessions_per_account_limit(bulwark):
    d = bulwark(overrides={"imap": {"max_sessions_per_account": 2}, **NO_BANS})
    ms = [IMAPS(d.imaps_port) for _ in range(3)]
    login_ok(ms[0], "alice@example.test")
    login_ok(ms[1], "alice@example.test")
    with pytest.raises(imaplib.IMAP4.error) as e:
        ms[2].login("alice@example.test", H.PASSWORD)
    assert "LIMIT" in str(e.value)
    ms[0].logout()
    login_ok(ms[2], "alice@example.test")
    for m in ms[1:]:
        m.logout()


# ---------------------------------------------------------------- bans


BANS = {"intrusion_prevention": {"enabled": True, "maxretry": 5, "findtime": 60, "bantime": 30,
                                 "ignoreip": []}}


def test_imap_failures_ban_and_drop_at_accept(bulwark):
    d = bulwark(overrides=BANS)
    for i in range(5):
        login_refused(d, f"nosuch{i}@example.test", f"Wrong-Guess-{i}-ban")
    H.wait_until(lambda: H.dropped_at_accept(d.imaps_port, H.UNTRUSTED), timeout=3,
                 what="banned on imaps")
    assert H.dropped_at_accept(d.imap_port, H.UNTRUSTED)
    assert H.dropped_at_accept(d.smtp_port, H.UNTRUSTED)
    H.wait_log(d, "event=guard.ban", "network=127.0.0.9/32")
    # another stranger is still served
    m = IMAPS(d.imaps_port, source=H.UNTRUSTED2)
    login_ok(m, "alice@example.test")
    m.logout()


def test_mixed_smtp_imap_strikes_ban(bulwark):
    d = bulwark(overrides=BANS)
    for i in range(3):
        r = H.try_auth(d, f"nosuch{i}@example.test", f"Wrong-Guess-{i}-mix")
        assert r.text == H.AUTH_BAD_TEXT
    assert not H.dropped_at_accept(d.imap_port, H.UNTRUSTED, timeout=1)
    for i in range(2):
        login_refused(d, f"nosuchi{i}@example.test", f"Wrong-Guess-i{i}-mix")
    H.wait_until(lambda: H.dropped_at_accept(d.imap_port, H.UNTRUSTED), timeout=3,
                 what="banned after 3 SMTP + 2 IMAP failures")


def test_banned_ip_dropped_at_accept(im):
    H.ctl_ok(im, "ban", "add", "127.0.0.11", "--for", "60")
    try:
        H.wait_until(lambda: H.dropped_at_accept(im.imap_port, "127.0.0.11"), timeout=5,
                     what="ban applied")
        assert H.dropped_at_accept(im.imaps_port, "127.0.0.11")
    finally:
        H.ctl_ok(im, "ban", "del", "127.0.0.11")


# ---------------------------------------------------------------- IDLE


def test_idle_sees_smtp_delivery(im):
    c = Raw(im.imaps_port, tls=True)
    assert c.cmd("a", "LOGIN bob@example.test " + H.PASSWORD, timeout=30)[-1].startswith("a OK")
    r = c.cmd("b", "SELECT INBOX")
    exists = int([l for l in r if l.endswith(" EXISTS")][0].split()[1])
    c.send("c IDLE\r\n")
    assert c.line().startswith("+")
    deliver(im, "bob@example.test", subject="idle")
    # pushed by the 1 s poll; the bound is generous for a loaded machine
    line = c.line(timeout=30)
    assert line == f"* {exists + 1} EXISTS", line
    c.send("DONE\r\n")
    r = c.until_tagged("c")
    assert r[-1].startswith("c OK"), r
    c.cmd("d", "LOGOUT")
    c.close()


# ---------------------------------------------------------------- bad input


def assert_still_serves(d):
    m = IMAPS(d.imaps_port)
    login_ok(m, "alice@example.test")
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_bad_input_answered_without_crash(im):
    c = Raw(im.imap_port, source=H.TRUSTED)
    assert c.cmd("a", "FOOBAR")[-1].startswith("a BAD"), "unknown command"
    c.send(b"b \x01\x02\x03\r\n")
    assert c.line().startswith("b BAD"), "garbage after the tag"
    c.send(b"c LOGIN \"\xc3\x28\" x\r\n")
    assert c.line().startswith("c BAD"), "non-UTF-8 in a quoted string"
    c.send(b"d LOGIN \xff\xfe x\r\n")
    assert c.line().startswith("d BAD"), "8-bit in an atom"
    c.send(b"e SELECT (INBOX\r\n")
    assert c.line().startswith("e BAD"), "unbalanced parenthesis"
    c.send(b"f SELECT INBOX\r\n")
    assert c.line().startswith("f BAD"), "SELECT before login"
    # a huge synchronizing literal: refused at the announcement, no "+"
    c.send(b"g APPEND INBOX {99999999999}\r\n")
    assert c.line().startswith("g NO [TOOBIG]")
    assert c.cmd("h", "NOOP")[-1] == "h OK NOOP completed"
    c.close()
    assert_still_serves(im)


def test_line_too_long(im):
    c = Raw(im.imap_port, source=H.TRUSTED)
    c.send(b"a NOOP " + b"x" * 70000 + b"\r\n")
    assert c.line().startswith("a BAD"), "line over imap.max_line_length"
    assert c.cmd("b", "NOOP")[-1].startswith("b OK")
    c.close()


def test_huge_literal_plus_closes(im):
    c = Raw(im.imap_port, source=H.TRUSTED)
    c.send(b"a LOGIN alice@example.test " + H.PASSWORD.encode() + b"\r\n")
    assert c.until_tagged("a", timeout=30)[-1].startswith("a OK")
    c.send(b"b APPEND INBOX {99999999999+}\r\nxxxxxxxx")
    lines = [c.line()]
    assert lines[0].startswith("b NO [TOOBIG]"), lines
    assert c.line().startswith("* BYE")
    assert c.closed()
    c.close()
    assert_still_serves(im)


def test_unterminated_literal_client_vanishes(im):
    c = Raw(im.imap_port, source=H.TRUSTED)
    c.send(b"a LOGIN {20}\r\n")
    assert c.line().startswith("+")
    c.send(b"abc")
    c.close()
    assert_still_serves(im)


def test_too_many_errors_bye(im):
    c = Raw(im.imap_port, source=H.TRUSTED)
    replies = []
    for i in range(10):
        c.send(f"t{i} BOGUS\r\n")
    assert c.closed(timeout=5)
    text = c.buf.decode("utf-8", "replace")
    assert "* BYE Too many errors" in text, text
    c.close()
    assert_still_serves(im)


def test_literal_and_append_roundtrip(im):
    c = Raw(im.imap_port, source=H.TRUSTED)
    c.send("a LOGIN {17}\r\n")
    assert c.line().startswith("+")
    c.send("dave@example.test {" + str(len(H.PASSWORD)) + "+}\r\n" + H.PASSWORD + "\r\n")
    r = c.until_tagged("a", timeout=30)
    assert "AUTHENTICATIONFAILED" in r[-1]   # no dave: the literals were read right
    c.close()
    m = IMAP(im.imap_port, source=H.TRUSTED)
    login_ok(m, "alice@example.test")
    msg = b"Subject: appended\r\nX-Tok: " + H.token().encode() + b"\r\n\r\nline\r\n"
    typ, data = m.append("INBOX", "(\\Flagged $Work)", imaplib.Time2Internaldate(1700000000), msg)
    assert typ == "OK" and b"APPENDUID" in data[0], data
    uid = data[0].split()[2].rstrip(b"]")
    m.select("INBOX")
    typ, data = m.uid("FETCH", uid, "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert data[0][1] == msg
    assert b"\\Flagged" in data[0][0] and b"$Work" in data[0][0]
    assert b"14-Nov-2023 22:13:20 +0000" in data[0][0], data[0][0]
    m.logout()


# ---------------------------------------------------------------- CONDSTORE (RFC 7162)


def test_condstore(im):
    user = H.unique_user(im, "cs")
    c = Raw(im.imap_port, source=H.TRUSTED)
    assert c.cmd("a", f"LOGIN {user} {H.PASSWORD}", timeout=30)[-1].startswith("a OK")
    assert c.cmd("b", "ENABLE CONDSTORE")[0] == "* ENABLED CONDSTORE"
    assert c.cmd("c", "APPEND INBOX {5+}\r\nhello")[-1].startswith("c OK [APPENDUID")
    assert c.cmd("d", "APPEND INBOX (\\Seen) {5+}\r\nworld")[-1].startswith("d OK")
    r = c.cmd("e", "SELECT INBOX (CONDSTORE)")
    hms = [l for l in r if "[HIGHESTMODSEQ " in l]
    assert hms, r
    highest = int(re.search(r"HIGHESTMODSEQ (\d+)", hms[0]).group(1))
    r = c.cmd("f", "FETCH 1:* (FLAGS)")
    mods = [int(re.search(r"MODSEQ \((\d+)\)", l).group(1)) for l in r if l.startswith("* ") and " FETCH " in l]
    assert len(mods) == 2 and max(mods) == highest, r
    # a conditional STORE against an older mod-sequence fails for that message
    r = c.cmd("g", f"STORE 1 (UNCHANGEDSINCE {mods[0] - 1}) +FLAGS (\\Flagged)")
    assert r[-1].startswith("g OK [MODIFIED 1]"), r
    r = c.cmd("h", f"UID STORE 1 (UNCHANGEDSINCE {mods[0]}) +FLAGS.SILENT (\\Flagged)")
    assert r[-1].startswith("h OK"), r
    assert any("MODSEQ (" in l and "FLAGS" not in l for l in r), "silent STORE still says MODSEQ"
    r = c.cmd("i", f"FETCH 1:* (UID) (CHANGEDSINCE {highest})")
    assert len([l for l in r if l.startswith("* ") and " FETCH " in l]) == 1, r
    r = c.cmd("j", f"SEARCH MODSEQ {highest + 1}")
    assert r[0].startswith("* SEARCH 1 (MODSEQ "), r
    r = c.cmd("k", "STATUS INBOX (HIGHESTMODSEQ)")
    assert int(re.search(r"HIGHESTMODSEQ (\d+)", r[0]).group(1)) > highest, r
    c.cmd("l", "LOGOUT")
    c.close()


# ---------------------------------------------------------------- pipelining, backpressure


def test_pipelined_commands(im):
    c = Raw(im.imap_port, source=H.TRUSTED)
    c.send(f"a LOGIN carol@example.org {H.PASSWORD}\r\nb SELECT INBOX\r\nc NOOP\r\nd LOGOUT\r\n")
    lines = c.until_tagged("d", timeout=30)
    tags = [l.split()[0] for l in lines if not l.startswith("*")]
    assert tags == ["a", "b", "c", "d"], lines
    assert all(l.split()[1] == "OK" for l in lines if not l.startswith("*")), lines
    c.close()


def test_large_fetch_slow_reader(im):
    """FETCH of ~8 MB to a client that reads slowly: the daemon keeps at most
    its high-water mark buffered and finishes when the client catches up."""
    user = H.unique_user(im, "big")
    m = IMAP(im.imap_port, source=H.TRUSTED)
    login_ok(m, user)
    body = (b"x" * 76 + b"\r\n") * 6500   # ~500 KB
    for _ in range(16):
        assert m.append("INBOX", None, None, b"Subject: big\r\n\r\n" + body)[0] == "OK"
    m.logout()
    c = Raw(im.imap_port, source=H.TRUSTED)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    assert c.cmd("a", f"LOGIN {user} {H.PASSWORD}", timeout=30)[-1].startswith("a OK")
    c.cmd("b", "SELECT INBOX")
    c.send("c FETCH 1:* (BODY.PEEK[])\r\nd NOOP\r\n")
    got = 0
    c.sock.settimeout(30)
    deadline = time.monotonic() + 60
    while b"\r\nd OK" not in c.buf[-200:] and time.monotonic() < deadline:
        chunk = c.sock.recv(65536)
        assert chunk, "closed during the FETCH"
        c.buf += chunk
        got += len(chunk)
        if got < 2_000_000:
            time.sleep(0.01)   # slow at first: the daemon must wait for us
    assert b"c OK" in c.buf and b"\r\nd OK" in c.buf[-200:], c.buf[-300:]
    assert got > 16 * len(body)
    c.close()


# ---------------------------------------------------------------- timeouts, shutdown


def test_login_and_idle_timeouts(bulwark):
    d = bulwark(overrides={"imap": {"login_timeout": 1, "idle_timeout": 5}, **NO_BANS})
    c = Raw(d.imap_port, source=H.TRUSTED)
    assert c.closed(timeout=30), "not logged in: closed after imap.login_timeout"
    assert b"* BYE Autologout" in c.buf, c.buf
    c.close()
    c = Raw(d.imap_port, source=H.TRUSTED)
    assert c.cmd("a", f"LOGIN alice@example.test {H.PASSWORD}", timeout=30)[-1].startswith("a OK")
    c.cmd("b", "SELECT INBOX")
    c.send("c IDLE\r\n")
    assert c.line().startswith("+")
    assert c.closed(timeout=30), "IDLE past imap.idle_timeout: closed"
    assert b"* BYE Autologout" in c.buf, c.buf
    c.close()


def test_sigterm_says_bye_and_exits_0(bulwark):
    d = bulwark(overrides=NO_BANS)
    c = Raw(d.imap_port, source=H.TRUSTED)
    assert c.cmd("a", f"LOGIN alice@example.test {H.PASSWORD}", timeout=30)[-1].startswith("a OK")
    c.cmd("b", "SELECT INBOX")
    c.send("c IDLE\r\n")
    assert c.line().startswith("+")
    assert d.stop() == 0
    c.closed(timeout=5)
    assert b"* BYE" in c.buf, c.buf
    c.close()


def test_new_keyword_announced_in_flags(im):
    user = H.unique_user(im, "kw")
    c = Raw(im.imap_port, source=H.TRUSTED)
    assert c.cmd("a", f"LOGIN {user} {H.PASSWORD}", timeout=30)[-1].startswith("a OK")
    c.cmd("b", "APPEND INBOX {5+}\r\nhello")
    r = c.cmd("c", "SELECT INBOX")
    assert "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in r, r
    r = c.cmd("d", "STORE 1 +FLAGS ($Project)")
    # RFC 3501 7.2.6: the new keyword is announced before the tagged reply
    flags = [l for l in r if l.startswith("* FLAGS")]
    assert flags and "$Project" in flags[0], r
    assert any(l.startswith("* OK [PERMANENTFLAGS") and "$Project" in l for l in r), r
    c.cmd("e", "LOGOUT")
    c.close()


# ---------------------------------------------------------------- valgrind


@pytest.mark.skipif(not __import__("os").environ.get("BULWARK_VG_BUILD") or
                    __import__("shutil").which("valgrind") is None,
                    reason="BULWARK_VG_BUILD not set or valgrind missing (make test sets it)")
def test_imap_under_memcheck(tmp_path):
    """The daemon under memcheck through the IMAP paths: LOGIN (wrong, then
    right), APPEND, SELECT, FETCH of every kind, SEARCH, STORE, COPY, MOVE,
    EXPUNGE, IDLE, bad input, a client vanishing mid-literal, SIGTERM with a
    session open. No memcheck error, no definite or indirect leak, exit 0."""
    import os
    vg_build = H.REPO / os.environ["BULWARK_VG_BUILD"]
    d = H.Daemon(tmp_path, NO_BANS, name="imap-valgrind")
    vglog = tmp_path / "valgrind.log"
    # the TLS pair is made by a first, normal start (valgrind makes RSA keygen slow)
    d.start()
    d.add_user("alice@example.test")
    d.stop()
    proc = H.start_under_memcheck(d, vg_build / "bulwarkd", vglog)
    try:
        deadline = time.monotonic() + 120
        c = None
        while time.monotonic() < deadline and c is None:
            assert proc.poll() is None, d.log_tail()
            try:
                c = Raw(d.imap_port, source=H.TRUSTED, timeout=60)
            except OSError:
                time.sleep(0.5)
        assert c is not None
        assert "NO [AUTHENTICATIONFAILED]" in c.cmd("a", "LOGIN alice@example.test Wrong-1-pw")[-1]
        assert c.cmd("b", f"LOGIN alice@example.test {H.PASSWORD}")[-1].startswith("b OK")
        msg = ("From: A <a@example.net>\r\nTo: alice@example.test\r\nSubject: vg\r\n"
               "Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
               "needle\r\n--XX\r\nContent-Type: application/octet-stream\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--XX--\r\n")
        assert c.cmd("c", f"APPEND INBOX (\\Seen $k) {{{len(msg)}+}}\r\n{msg}")[-1].startswith("c OK")
        for tag, cmd in (("d", "SELECT INBOX (CONDSTORE)"),
                         ("e", "FETCH 1:* (FLAGS UID ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE INTERNALDATE)"),
                         ("f", "FETCH 1 (BODY[] BODY.PEEK[1] BODY[2.MIME] BODY[HEADER.FIELDS (SUBJECT)]<0.5> "
                               "RFC822.HEADER RFC822.TEXT)"),
                         ("g", "UID SEARCH CHARSET UTF-8 OR SUBJECT vg BODY needle"),
                         ("g2", "SEARCH CHARSET ISO-8859-1 TEXT x"),
                         ("h", "STORE 1 +FLAGS (\\Flagged)"), ("i", "COPY 1 Trash"),
                         ("j", "UID MOVE 1 Archive"), ("k", "EXPUNGE"), ("l", "LIST \"\" *"),
                         ("m", "STATUS Trash (MESSAGES UIDNEXT)"), ("n", "FOO"),
                         ("o", "FETCH 1:* FLAGS")):
            assert c.cmd(tag, cmd)[-1].split()[1] in ("OK", "NO", "BAD")
        c.send("p IDLE\r\n")
        assert c.line().startswith("+")
        c.send("DONE\r\n")
        assert c.until_tagged("p")[-1].startswith("p OK")
        c.send(b"q APPEND INBOX {99999999999}\r\n")
        assert "TOOBIG" in c.line()
        c2 = Raw(d.imap_port, source=H.TRUSTED, timeout=60)
        c2.send(b"x LOGIN {20}\r\n")
        assert c2.line().startswith("+")
        c2.send(b"abc")
        c2.close()
        time.sleep(1)
    finally:
        proc.terminate()
        rc = proc.wait(timeout=120)
    H.assert_memcheck_clean(rc, vglog)


def test_long_search_in_slices_is_correct(im):
    """SEARCH BODY over a few hundred messages runs in slices of the loop
    (imap_search_continue); the result is the same as in one go, and another
    session is served meanwhile."""
    user = H.unique_user(im, "sl")
    c = Raw(im.imap_port, source=H.TRUSTED)
    assert c.cmd("a", f"LOGIN {user} {H.PASSWORD}", timeout=30)[-1].startswith("a OK")
    n = 300
    for i in range(n):
        body = f"Subject: m{i}\r\n\r\n{'needle' if i % 7 == 0 else 'hay'} {i}\r\n"
        c.send(f"p{i} APPEND INBOX {{{len(body)}+}}\r\n{body}\r\n")
    c.until_tagged(f"p{n - 1}", timeout=120)
    c.cmd("s", "SELECT INBOX")
    c.send("t SEARCH BODY needle\r\n")
    other = Raw(im.imap_port, source=H.TRUSTED)
    assert other.cmd("o", "NOOP")[-1].startswith("o OK")
    other.close()
    r = c.until_tagged("t", timeout=120)
    found = [int(x) for x in r[0].split()[2:]]
    assert found == [i + 1 for i in range(n) if i % 7 == 0], r[0]
    r = c.cmd("u", "UID SEARCH NOT BODY needle")
    assert len(r[0].split()) - 2 == n - len(found)
    c.cmd("v", "LOGOUT")
    c.close()


def test_connection_limit_per_ip_apart_from_smtp(bulwark):
    d = bulwark(overrides={"imap": {"max_connections_per_ip": 2},
                           "smtp": {"max_connections_per_ip": 2}, **NO_BANS})
    held = [Raw(d.imap_port, source=H.UNTRUSTED) for _ in range(2)]
    c = Raw(d.imap_port, source=H.UNTRUSTED)
    assert c.greeting.startswith("* BYE"), c.greeting
    c.close()
    # SMTP from the same IP is not affected by its IMAP sessions
    assert H.greeted(d.smtp_port, H.UNTRUSTED)
    # another IP is served
    other = Raw(d.imap_port, source=H.UNTRUSTED2)
    assert other.greeting.startswith("* OK"), other.greeting
    for x in held + [other]:
        x.close()
    def greeted_ok():
        r = Raw(d.imap_port, source=H.UNTRUSTED)
        ok = r.greeting.startswith("* OK")
        r.close()
        return ok
    H.wait_until(greeted_ok, timeout=5, what="slots released")


def _track(count, lines):
    """A client's message count after the untagged EXISTS/EXPUNGE lines."""
    for l in lines:
        w = l.split()
        if len(w) >= 3 and w[0] == "*" and w[2] == "EXISTS":
            count = int(w[1])
        elif len(w) >= 3 and w[0] == "*" and w[2] == "EXPUNGE":
            assert 1 <= int(w[1]) <= count, (l, count)
            count -= 1
    return count


@pytest.mark.parametrize("action", ["UID MOVE {uid} Trash", "UID MOVE {keep} Trash", "MOVE 1:3 Trash",
                                    "UID COPY {keep} Trash", "EXPUNGE", "UID EXPUNGE {uid}"])
def test_two_sessions_counts_stay_consistent(im, action):
    user = H.unique_user(im, "two")
    a = Raw(im.imap_port, source=H.TRUSTED)
    b = Raw(im.imap_port, source=H.TRUSTED)
    for c in (a, b):
        assert c.cmd("l", f"LOGIN {user} {H.PASSWORD}", timeout=30)[-1].startswith("l OK")
    for i in range(4):
        a.cmd(f"p{i}", f"APPEND INBOX {{5+}}\r\nmsg{i}\r\n")
    r = a.cmd("s", "SELECT INBOX")
    count = _track(0, r)
    b.cmd("s", "SELECT INBOX")
    uid = a.cmd("f", "FETCH 2 (UID)")[0].split()[4].rstrip(")")
    keep = a.cmd("g", "FETCH 1 (UID)")[0].split()[4].rstrip(")")
    a.cmd("d", f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
    # meanwhile the other session adds one and removes one
    b.cmd("x", "APPEND INBOX {5+}\r\nnewer")
    b.cmd("y", "STORE 4 +FLAGS.SILENT (\\Deleted)")
    b.cmd("z", "EXPUNGE")
    r = a.cmd("m", action.format(uid=uid, keep=keep))
    # the message to move was expunged by the other session meanwhile
    assert r[-1].startswith("m OK") or r[-1].startswith("m NO [EXPUNGEISSUED]"), r
    count = _track(count, r)
    r = a.cmd("n", "NOOP")
    count = _track(count, r)
    st = b.cmd("t", "STATUS INBOX (MESSAGES)")[0]
    assert count == int(re.search(r"MESSAGES (\d+)", st).group(1)), (count, st)
    for c in (a, b):
        c.close()


def test_imaps_fetch_large_bodies(im):
    """Over TLS, several large bodies in one FETCH (referenced in the output
    buffer, written up to 256 KiB at a time, past the high-water mark) arrive
    byte-exact and in order."""
    sent = []
    for i in range(4):
        body = "".join(f"line {k:05d} of large message {i} over imaps, padded\r\n" for k in range(2000))
        sent.append(deliver(im, "carol@example.org", subject=f"imaps large {i}", body=body)[1])
    m = IMAPS(im.imaps_port)
    login_ok(m, "carol@example.org")
    typ, data = m.select("INBOX")
    assert typ == "OK"
    n = int(data[0])
    typ, data = m.fetch(f"{n - 3}:{n}", "(BODY.PEEK[] BODY.PEEK[]<100.5000>)")
    assert typ == "OK"
    bodies = [x for x in data if isinstance(x, tuple)]
    assert len(bodies) == 8, [x[0][:60] if isinstance(x, tuple) else x for x in data]
    for raw, whole, part in zip(sent, bodies[0::2], bodies[1::2]):
        assert len(raw) > 100000
        assert whole[1].endswith(raw)
        assert part[1] == whole[1][100:5100]
    m.logout()
