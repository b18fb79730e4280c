"""
test_limits.py: every limit and bad input of docs/smtp.md with its reply
code and enhanced code, and the server still serving the next client:
line length, SIZE and message size, recipients, errors per session, idle
timeout, connections per IP and in total, talking before the greeting,
command order, HELO/EHLO names, sender syntax, VRFY/EXPN, HTTP on the SMTP
port, NUL/bare LF/bare CR in commands, STARTTLS with pipelined bytes, slow
clients and clients that vanish. Raw sockets from 127.0.0.9 unless noted.
"""

import threading
import time

import pytest

import bulwark_helpers as H

MAX_SIZE = 10000
MAX_ERRORS = 5


@pytest.fixture(scope="module")
def lim(module_bulwark):
    return module_bulwark(overrides={"smtp": {"max_errors": MAX_ERRORS,
                                              "max_message_size": MAX_SIZE}}, name="lim")


def fresh(d, source=H.UNTRUSTED, ehlo=True):
    c = H.RawClient(d.smtp_port, source=source)
    c.greeting()
    if ehlo:
        c.ehlo()
    return c


def sync(c):
    """Send a marker command and return every reply up to its answer."""
    c.send(b"VRFY syncmarker\r\n")
    replies = []
    while True:
        r = c.read_reply()
        replies.append(r)
        if r.code == 252:
            return replies[:-1]


# ---------------------------------------------------------------- greeting and EHLO

def test_greeting_and_ehlo_keywords(lim):
    c = H.RawClient(lim.smtp_port)
    try:
        g = c.greeting()
        assert g.lines[-1].startswith(f"{H.HOSTNAME} ESMTP"), g.text
        e = c.cmd(f"EHLO {H.CLIENT_HELO}")
        H.expect(e, 250)
        assert e.lines[0].startswith(H.HOSTNAME), e.text
        kw = e.keywords()
        for k in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS",
                  "SMTPUTF8", "CHUNKING"):
            assert k in kw, f"{k} not advertised: {e.text}"
        assert f"SIZE {MAX_SIZE}" in e.lines, f"SIZE should be the configured {MAX_SIZE}: {e.text}"
        assert "AUTH" not in kw, e.text
        H.expect(c.cmd("HELO client.example.net"), 250)
        H.expect(c.cmd("RSET"), 250, "2.0.0")
        H.expect(c.cmd("NOOP"), 250, "2.0.0")
        r = c.cmd("QUIT")
        H.expect(r, 221, "2.0.0")
        assert c.is_closed(), "QUIT did not close"
    finally:
        c.close()


# ---------------------------------------------------------------- line length

def test_command_line_of_1000_octets_accepted(lim):
    c = fresh(lim)
    try:
        line = b"NOOP " + b"x" * (1000 - 5 - 2)
        assert len(line) + 2 == 1000
        H.expect(c.cmd(line), 250)
        c.quit()
    finally:
        c.close()


def test_command_line_of_1001_octets_refused(lim):
    c = fresh(lim)
    try:
        line = b"NOOP " + b"x" * (1001 - 5 - 2)
        H.expect(c.cmd(line), 500, "5.5.2")
        # the tail of the line was skipped, the session goes on
        assert sync(c) == []
        H.expect(c.cmd("NOOP"), 250)
        c.quit()
    finally:
        c.close()
    H.assert_serves(lim)


def test_huge_command_line_refused_once(lim):
    c = fresh(lim)
    try:
        c.send(b"MAIL FROM:<" + b"a" * 65536 + b"@remote.example>\r\n")
        H.expect(c.read_reply(), 500, "5.5.2")
        assert sync(c) == [], "more than one reply to one over-long line"
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
        c.quit()
    finally:
        c.close()


def test_data_line_limit(lim):
    ok, bad = H.token(), H.token()
    c = fresh(lim)
    try:
        c.start_transaction()
        ok_line = (ok + " ").encode() + b"y" * (998 - len(ok) - 1)
        assert len(ok_line) + 2 == 1000
        H.expect(c.data(f"Subject: {ok}\r\n\r\n".encode() + ok_line + b"\r\n"), 250, "2.0.0")
        c.start_transaction()
        line = (bad + " ").encode() + b"y" * (999 - len(bad) - 1)
        assert len(line) + 2 == 1001
        H.expect(c.data(f"Subject: {bad}\r\n\r\n".encode() + line + b"\r\nafter\r\n"), 500, "5.5.2")
        H.expect(c.cmd("NOOP"), 250)
        c.quit()
    finally:
        c.close()
    raw = lim.wait_for("alice@example.test", ok)[0]
    _, body = H.split_message(raw)
    assert H.to_lf(body) == ok_line + b"\n"
    time.sleep(0.3)
    assert not lim.find_anywhere(bad)


def test_dot_stuffed_line_of_1000_octets_accepted(lim):
    # RFC 5321 4.5.3.1.6: the limit does not count the dot added for transparency.
    tok = H.token()
    c = fresh(lim)
    try:
        c.start_transaction()
        H.expect(c.cmd("DATA"), 354)
        line = b"." + b"d" * 997                 # 998 + CRLF = 1000 octets
        c.send(f"Subject: {tok}\r\n\r\n".encode() + b"." + line + b"\r\n.\r\n")
        H.expect(c.read_reply(), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    _, body = H.split_message(lim.wait_for("alice@example.test", tok)[0])
    assert H.to_lf(body) == line + b"\n"


# ---------------------------------------------------------------- sizes

@pytest.mark.parametrize("param,code,enh", [
    (f"SIZE={MAX_SIZE + 1}", 552, "5.3.4"),
    ("SIZE=999999999", 552, "5.3.4"),
    ("SIZE=99999999999999999999999999", (552, 555), ("5.3.4", "5.5.4")),
    ("SIZE=abc", 555, "5.5.4"),
    ("SIZE=-1", 555, "5.5.4"),
    ("SIZE=", 555, "5.5.4"),
    (f"SIZE={MAX_SIZE // 2}", 250, None),
])
def test_size_parameter(lim, param, code, enh):
    c = fresh(lim)
    try:
        H.expect(c.cmd(f"MAIL FROM:<sender@remote.example> {param}"), code, enh)
        c.quit()
    finally:
        c.close()


def test_message_over_max_size(lim):
    big, small = H.token(), H.token()
    c = fresh(lim)
    try:
        c.start_transaction()
        body = [f"{big} " + "z" * 70] * (2 * MAX_SIZE // 70)
        r = c.data(H.make_message(big, body=body))
        H.expect(r, 552, "5.3.4")
        # the session is still usable
        c.start_transaction()
        H.expect(c.data(H.make_message(small)), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    lim.wait_for("alice@example.test", small)
    assert not lim.find_anywhere(big)
    assert not lim.queue_contains(big)


def test_bdat_chunks_together_over_max_size(lim):
    big = H.token()
    c = fresh(lim)
    try:
        c.start_transaction()
        part = f"Subject: {big}\r\n\r\n".encode() + (b"q" * 78 + b"\r\n") * 70   # ~5.6 kB
        c.send(f"BDAT {len(part)}\r\n".encode() + part)
        H.expect(c.read_reply(), 250)
        part2 = (b"r" * 78 + b"\r\n") * 70
        c.send(f"BDAT {len(part2)} LAST\r\n".encode() + part2)
        H.expect(c.read_reply(), 552, "5.3.4")
        H.expect(c.cmd("NOOP"), 250)
        c.quit()
    finally:
        c.close()
    time.sleep(0.3)
    assert not lim.find_anywhere(big)


def test_bdat_over_max_size(lim):
    big = H.token()
    c = fresh(lim)
    try:
        c.start_transaction()
        payload = f"Subject: {big}\r\n\r\n".encode() + (b"z" * 78 + b"\r\n") * (2 * MAX_SIZE // 80)
        c.send(f"BDAT {len(payload)} LAST\r\n".encode() + payload)
        H.expect(c.read_reply(), 552, "5.3.4")
        H.expect(c.cmd("NOOP"), 250)   # the whole chunk was consumed
        c.quit()
    finally:
        c.close()
    time.sleep(0.3)
    assert not lim.find_anywhere(big)


# ---------------------------------------------------------------- recipients

def test_101st_recipient_trusted_distinct(lim):
    c = fresh(lim, source=H.TRUSTED)
    try:
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        for i in range(100):
            H.expect(c.cmd(f"RCPT TO:<r{i}@remote.example>"), 250)
        H.expect(c.cmd("RCPT TO:<r100@remote.example>"), 452, "4.5.3")
        H.expect(c.cmd("RSET"), 250)
        c.quit()
    finally:
        c.close()


def test_101st_recipient_untrusted_same_user(lim):
    tok = H.token()
    c = fresh(lim)
    try:
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
        # 100 recipients: the same users and alias over and over.
        names = ["alice@example.test", "bob@example.test", "team@example.test",
                 "carol@example.org"]
        for i in range(100):
            H.expect(c.cmd(f"RCPT TO:<{names[i % 4]}>"), 250)
        H.expect(c.cmd("RCPT TO:<alice@example.test>"), 452, "4.5.3")
        H.expect(c.data(H.make_message(tok)), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    lim.wait_for("alice@example.test", tok)
    lim.wait_for("carol@example.org", tok)


# ---------------------------------------------------------------- errors per session

@pytest.mark.parametrize("bad,code,enh", [
    ("XYZZY", 500, "5.5.1"),
    ("EHLO mail.example.test", 550, "5.7.1"),
])
def test_too_many_errors(lim, bad, code, enh):
    c = fresh(lim)
    at = None
    try:
        for i in range(1, MAX_ERRORS + 3):
            try:
                c.send(bad.encode() + b"\r\n")
                r = c.read_reply(timeout=5)
            except (H.Closed, OSError):
                break
            if r.code == 421:
                at = i
                H.expect(r, 421, "4.7.0")
                assert H.HOSTNAME in r.text, r.text
                break
            H.expect(r, code, enh)
        assert at in (MAX_ERRORS, MAX_ERRORS + 1), \
            f"421 after {at} errors, expected after {MAX_ERRORS}"
        assert c.is_closed(), "not closed after 421"
    finally:
        c.close()
    H.assert_serves(lim)


def test_errors_are_per_session(lim):
    for _ in range(3):
        c = fresh(lim)
        for _ in range(MAX_ERRORS - 1):
            H.expect(c.cmd("XYZZY"), 500, "5.5.1")
        c.quit()
    H.assert_serves(lim)


# ---------------------------------------------------------------- command order

@pytest.mark.parametrize("setup,command,code,enh", [
    ([], "MAIL FROM:<sender@remote.example>", 503, "5.5.1"),
    ([], "RCPT TO:<alice@example.test>", 503, "5.5.1"),
    ([], "DATA", 503, "5.5.1"),
    (["EHLO client.example.net"], "RCPT TO:<alice@example.test>", 503, "5.5.1"),
    (["EHLO client.example.net"], "DATA", 503, "5.5.1"),
    (["EHLO client.example.net", "MAIL FROM:<sender@remote.example>"], "DATA", (503, 554), "5.5.1"),
    (["EHLO client.example.net", "MAIL FROM:<sender@remote.example>",
      "RCPT TO:<nosuch@example.test>"], "DATA", (503, 554), "5.5.1"),
    (["EHLO client.example.net", "MAIL FROM:<sender@remote.example>"],
     "MAIL FROM:<sender@remote.example>", 503, "5.5.1"),
    (["EHLO client.example.net", "MAIL FROM:<sender@remote.example>",
      "RCPT TO:<alice@example.test>"], "MAIL FROM:<other@remote.example>", 503, "5.5.1"),
    (["EHLO client.example.net", "MAIL FROM:<sender@remote.example>", "RSET"],
     "RCPT TO:<alice@example.test>", 503, "5.5.1"),
], ids=["mail-before-ehlo", "rcpt-before-ehlo", "data-before-ehlo", "rcpt-before-mail",
        "data-before-mail", "data-before-rcpt", "data-after-refused-rcpt", "nested-mail",
        "nested-mail-after-rcpt", "rcpt-after-rset"])
def test_command_order(lim, setup, command, code, enh):
    c = H.RawClient(lim.smtp_port)
    try:
        c.greeting()
        for s in setup:
            c.cmd(s)
        H.expect(c.cmd(command), code, enh)
        # still a working session
        c.ehlo()
        c.start_transaction()
        c.cmd("RSET")
        c.quit()
    finally:
        c.close()


def test_bdat_before_rcpt_skips_its_chunk(lim):
    c = fresh(lim)
    try:
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
        # The chunk holds a command; it must be skipped as data, not run.
        c.send(b"BDAT 6 LAST\r\nNOOP\r\n")
        H.expect(c.read_reply(), (503, 554), "5.5.1")
        assert sync(c) == [], "the BDAT chunk was executed as a command"
        c.quit()
    finally:
        c.close()


@pytest.mark.parametrize("args", ["abc", "-1", "18446744073709551616 LAST", "10 LAST extra", ""])
def test_bad_bdat_arguments(lim, args):
    c = fresh(lim)
    try:
        c.start_transaction()
        H.expect(c.cmd(f"BDAT {args}".rstrip()), 501, "5.5.4")
        # The chunk size is unknown, so the bytes that follow cannot be
        # told from commands: closing (421) is the only safe move.
        rest = c.read_all_until_closed(timeout=10)
        assert [r.code for r in rest] == [421], [r.text for r in rest]
        assert c.eof
    finally:
        c.close()
    H.assert_serves(lim)


def test_nothing_runs_after_quit(lim):
    c = fresh(lim)
    try:
        c.send(b"QUIT\r\nNOOP\r\nMAIL FROM:<sender@remote.example>\r\n")
        replies = c.read_all_until_closed(timeout=10)
        assert [r.code for r in replies] == [221], [r.text for r in replies]
    finally:
        c.close()


def test_thousands_of_pipelined_commands(lim):
    # Backpressure, not loss: every command gets its reply, in order.
    c = fresh(lim)
    try:
        c.send(b"NOOP\r\n" * 5000 + b"RSET\r\n" * 5000)
        codes = [c.read_reply(timeout=30).code for _ in range(10000)]
        assert codes == [250] * 10000
        assert sync(c) == []
        c.quit()
    finally:
        c.close()


def test_unknown_command(lim):
    c = fresh(lim)
    try:
        H.expect(c.cmd("XYZZY plugh"), 500, "5.5.1")
        H.expect(c.cmd("MAILFROM:<sender@remote.example>"), 500, "5.5.1")
        c.quit()
    finally:
        c.close()


# ---------------------------------------------------------------- HELO/EHLO names

BAD_HELO = ["HELO", "EHLO", "HELO foo bar", "EHLO -bad-", "EHLO [300.1.1.1]",
            "EHLO foo_bar.example", "EHLO example..com", "EHLO .example.com",
            "EHLO " + "a" * 64 + ".example", "EHLO [IPv6:zz::1]", "EHLO [127.0.0.1",
            "EHLO <client.example.net>"]


@pytest.mark.parametrize("line", BAD_HELO)
def test_bad_helo_refused(lim, line):
    c = H.RawClient(lim.smtp_port)
    try:
        c.greeting()
        H.expect(c.cmd(line), 501, "5.5.4")
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 503, "5.5.1")
        c.ehlo()
        c.quit()
    finally:
        c.close()


CLAIMS = ["EHLO mail.example.test", "EHLO MAIL.EXAMPLE.TEST", "EHLO example.test",
          "EHLO example.org", "HELO example.test", "EHLO [127.0.0.1]"]


@pytest.mark.parametrize("line", CLAIMS)
def test_helo_claiming_to_be_us_refused(lim, line):
    c = H.RawClient(lim.smtp_port, source=H.UNTRUSTED)
    try:
        c.greeting()
        H.expect(c.cmd(line), 550, "5.7.1")
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 503, "5.5.1")
        c.ehlo()
        c.quit()
    finally:
        c.close()


@pytest.mark.parametrize("name", ["mail.example.test", "[127.0.0.1]"])
def test_helo_as_us_fine_from_mynetworks(lim, name):
    c = H.RawClient(lim.smtp_port, source=H.TRUSTED)
    try:
        c.greeting()
        H.expect(c.cmd(f"EHLO {name}"), 250)
        c.quit()
    finally:
        c.close()


@pytest.mark.parametrize("name", ["[127.0.0.9]", "client.example.net", "[IPv6:::9]"])
def test_valid_helo_accepted(lim, name):
    c = H.RawClient(lim.smtp_port)
    try:
        c.greeting()
        H.expect(c.cmd(f"EHLO {name}"), 250)
        c.quit()
    finally:
        c.close()


# ---------------------------------------------------------------- senders

@pytest.mark.parametrize("path", ["<user>", "<user@localhost>", "<user@host>"])
def test_non_fqdn_sender(lim, path):
    c = fresh(lim)
    try:
        H.expect(c.cmd(f"MAIL FROM:{path}"), 553, "5.1.8")
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
        c.quit()
    finally:
        c.close()


@pytest.mark.parametrize("path", ["<user@@remote.example>", "<user@remote.example",
                                  "<user@-bad-.example>", "<us er@remote.example>",
                                  "<user@remote.example.>", "<@remote.example>"])
def test_bad_sender_syntax(lim, path):
    c = fresh(lim)
    try:
        H.expect(c.cmd(f"MAIL FROM:{path}"), 501, "5.1.7")
        c.quit()
    finally:
        c.close()


@pytest.mark.parametrize("params", ["FOO=BAR", "BODY=9BIT", "SIZE=1 SIZE=2", "SMTPUTF8=yes"])
def test_bad_mail_parameters(lim, params):
    c = fresh(lim)
    try:
        H.expect(c.cmd(f"MAIL FROM:<sender@remote.example> {params}"), 555, "5.5.4")
        c.quit()
    finally:
        c.close()


def test_bad_rcpt_parameter(lim):
    c = fresh(lim)
    try:
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
        H.expect(c.cmd("RCPT TO:<alice@example.test> FOO=BAR"), 555, "5.5.4")
        H.expect(c.cmd("RCPT TO:<alice@example.test> NOTIFY=NEVER"), 250)
        c.quit()
    finally:
        c.close()


# ---------------------------------------------------------------- VRFY / EXPN

def test_vrfy_never_reveals(lim):
    c = fresh(lim)
    try:
        replies = [c.cmd(f"VRFY {a}") for a in
                   ("alice", "nosuch", "alice@example.test", "nosuch@example.test", "team")]
        for r in replies:
            H.expect(r, 252, "2.1.5")
        assert len({r.text for r in replies}) == 1, [r.text for r in replies]
        c.quit()
    finally:
        c.close()


def test_expn_not_available(lim):
    c = fresh(lim)
    try:
        a = H.expect(c.cmd("EXPN team@example.test"), 502, "5.5.1")
        b = H.expect(c.cmd("EXPN nosuch@example.test"), 502, "5.5.1")
        assert a.text == b.text
        assert "alice" not in a.text and "bob" not in a.text
        c.quit()
    finally:
        c.close()


# ---------------------------------------------------------------- hostile bytes

@pytest.mark.parametrize("request_line", ["GET / HTTP/1.1", "POST /x HTTP/1.1",
                                          "CONNECT mail.example.test:25 HTTP/1.1"])
def test_http_on_smtp_port(lim, request_line):
    c = H.RawClient(lim.smtp_port)
    try:
        c.greeting()
        c.send(f"{request_line}\r\nHost: mail.example.test\r\n\r\n".encode())
        H.expect(c.read_reply(), 421, "4.7.0")
        assert c.is_closed(), "not closed after an HTTP request"
    finally:
        c.close()
    H.assert_serves(lim)


@pytest.mark.parametrize("line", [b"NOOP\x00", b"MAIL FROM:<a\x00b@remote.example>",
                                  b"\x00EHLO client.example.net"])
def test_nul_in_command(lim, line):
    c = fresh(lim)
    try:
        H.expect(c.cmd(line), 500, "5.5.2")
        assert sync(c) == []
        # the MAIL with a NUL was not executed
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
        c.quit()
    finally:
        c.close()
    H.assert_serves(lim)


@pytest.mark.parametrize("sep", [b"\n", b"\r"], ids=["bare-lf", "bare-cr"])
def test_bare_line_end_in_command(lim, sep):
    c = fresh(lim)
    try:
        # One line (it ends at CRLF only), so the MAIL inside never runs.
        c.send(b"NOOP" + sep + b"MAIL FROM:<evil@remote.example>\r\n")
        H.expect(c.read_reply(), 500, "5.5.2")
        assert sync(c) == [], "a bare line end split one line into two commands"
        H.expect(c.cmd("RCPT TO:<alice@example.test>"), 503, "5.5.1")
        c.quit()
    finally:
        c.close()
    H.assert_serves(lim)


def test_starttls_with_pipelined_bytes(lim):
    # CVE-2011-0411: bytes after STARTTLS must never be run after the handshake.
    c = fresh(lim)
    try:
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@remote.example>\r\n")
        replies = c.read_all_until_closed(timeout=10)
        assert replies, "no reply"
        H.expect(replies[0], 501, "5.5.1")
        assert len(replies) == 1, [r.text for r in replies]
        assert c.is_closed()
    finally:
        c.close()
    H.assert_serves(lim)


def test_starttls_resets_the_session(lim):
    # RFC 3207 4.2: after the handshake the client must EHLO again; nothing
    # from the plaintext phase survives.
    c = fresh(lim)
    try:
        H.expect(c.cmd("STARTTLS"), 220)
        c.sock = H.unverified_context().wrap_socket(c.sock)
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 503, "5.5.1")
        e = c.ehlo()
        assert "STARTTLS" not in e.keywords(), e.text
        r = c.cmd("STARTTLS")
        assert 500 <= r.code < 600, f"STARTTLS inside TLS: {r.text}"
        c.start_transaction()
        c.quit()
    finally:
        c.close()


def test_garbage_instead_of_tls_handshake(lim):
    c = fresh(lim)
    try:
        H.expect(c.cmd("STARTTLS"), 220)
        c.send(b"EHLO client.example.net\r\nMAIL FROM:<evil@remote.example>\r\n" + bytes(range(256)))
        c.read_lines_until_closed(timeout=10)
        assert c.is_closed(timeout=10), "server kept a failed handshake open"
    finally:
        c.close()
    H.assert_serves(lim)


def test_plaintext_on_implicit_tls_port(lim):
    c = H.RawClient(lim.submissions_port)
    try:
        c.send(b"EHLO client.example.net\r\nMAIL FROM:<evil@remote.example>\r\n")
        lines = c.read_lines_until_closed(timeout=10)
        assert not any(l.startswith("250") for l in lines), lines
        assert c.is_closed(timeout=10)
    finally:
        c.close()
    with H.smtp_client(lim.submissions_port, source=H.TRUSTED, tls=True) as s:
        assert s.ehlo()[0] == 250


def test_client_text_is_escaped_in_the_log(lim):
    c = fresh(lim)
    try:
        H.expect(c.cmd(b'MAIL FROM:<"evil\x1b[31m\x07 key=value"@remote.example>'), (250, 501, 553))
        c.cmd(b'RCPT TO:<"x\x1b]0;pwned\x07 event=fake"@example.test>')
        c.cmd(b"XYZZY \x1b[2J\x7f\xff")
        c.quit()
    finally:
        c.close()
    time.sleep(0.3)
    raw = lim.log_path.read_bytes()
    assert b"\x1b" not in raw, "raw ESC from a client reached the log"
    assert b"\x07" not in raw, "raw BEL from a client reached the log"


# ---------------------------------------------------------------- slow and vanishing clients

def test_slow_client_byte_by_byte(lim):
    tok = H.token()
    c = H.RawClient(lim.smtp_port, timeout=20)
    try:
        c.greeting()
        for line in ("EHLO client.example.net", "MAIL FROM:<sender@remote.example>",
                     "RCPT TO:<alice@example.test>", "DATA"):
            c.send_slowly(line + "\r\n")
            r = c.read_reply()
            assert r.code in (250, 354), r.text
            if line.startswith("EHLO"):
                # others are served meanwhile
                t0 = time.monotonic()
                H.assert_serves(lim)
                assert time.monotonic() - t0 < 5
        msg = H.make_message(tok, body=[f"slow {tok}", ".leading dot", f"END-OF-MESSAGE {tok}"])
        stuffed = msg.replace(b"\r\n.", b"\r\n..")
        c.send_slowly(stuffed + b".\r\n")
        H.expect(c.read_reply(), 250, "2.0.0")
        c.send_slowly(b"QUIT\r\n")
        H.expect(c.read_reply(), 221)
    finally:
        c.close()
    raw = lim.wait_for("alice@example.test", tok)[0]
    _, body = H.split_message(raw)
    assert H.to_lf(body) == f"slow {tok}\n.leading dot\nEND-OF-MESSAGE {tok}\n".encode()


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_vanishes_mid_data(lim, how):
    tok = H.token()
    c = fresh(lim)
    c.start_transaction()
    H.expect(c.cmd("DATA"), 354)
    c.send(f"Subject: {tok}\r\n\r\npartial {tok}\r\nno end".encode())
    time.sleep(0.2)
    if how == "rst":
        c.abort()
    else:
        c.close()
    H.assert_serves(lim, deliver=True)
    time.sleep(0.5)
    assert not lim.find_anywhere(tok), "a half-received message was delivered"
    assert not lim.queue_contains(tok), "a half-received message is in the spool"


def test_client_vanishes_mid_command(lim):
    c = fresh(lim)
    c.send(b"MAIL FROM:<sender@rem")
    c.abort()
    c = fresh(lim)
    c.send(b"BDAT 1000 LAST\r\nonly a few bytes")
    c.close()
    H.assert_serves(lim, deliver=True)


# ---------------------------------------------------------------- timeouts

@pytest.fixture(scope="module")
def timeouts(module_bulwark):
    return module_bulwark(overrides={"smtp": {"idle_timeout": 2, "data_timeout": 3}},
                          name="timeouts")


def trickle_until_closed(c, step=0.25, limit=10.0):
    """Send one byte every step seconds until the server closes (returns the
    seconds it took) or limit passes (returns None)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            c.send(b"x")
        except OSError:
            return time.monotonic() - t0
        time.sleep(step)
        if c.is_closed(timeout=0.01):
            return time.monotonic() - t0
    return None


def test_idle_timeout(timeouts):
    d = timeouts
    a = H.RawClient(d.smtp_port)
    b = H.RawClient(d.smtp_port)
    try:
        a.greeting()
        a.ehlo()
        b.greeting()              # never says anything
        t0 = time.monotonic()
        ra = a.read_reply(timeout=10)
        rb = b.read_reply(timeout=10)
        elapsed = time.monotonic() - t0
        for r in (ra, rb):
            H.expect(r, 421, "4.4.2")
            assert H.HOSTNAME in r.text
        assert 1.0 <= elapsed <= 8, f"idle timeout after {elapsed:.1f}s, configured 2 s"
        assert a.is_closed() and b.is_closed()
    finally:
        a.close()
        b.close()
    c = H.RawClient(d.smtp_port)
    c.greeting()
    c.ehlo()
    c.quit()


def test_trickled_command_times_out(timeouts):
    """Slowloris in the command phase: bytes keep coming but no command
    ever completes. idle_timeout is "seconds without a command"."""
    c = H.session(timeouts.smtp_port)
    try:
        took = trickle_until_closed(c, step=0.5, limit=10)
        assert took is not None, "a client trickling one byte per 0.5 s without ever " \
            "completing a command was not timed out (idle_timeout: 2)"
        assert took < 6, took
        assert any(l.startswith("421 4.4.2") for l in c.buf.decode(errors="replace").splitlines()) \
            or c.eof
    finally:
        c.close()


def test_trickled_data_bounded_by_data_timeout(timeouts):
    """Slowloris in DATA: data_timeout bounds the whole transfer, however
    steadily the bytes arrive."""
    c = H.session(timeouts.smtp_port)
    try:
        c.start_transaction()
        H.expect(c.cmd("DATA"), 354)
        took = trickle_until_closed(c, step=0.25, limit=12)
        assert took is not None, "a DATA transfer trickling 4 bytes/s outlived data_timeout (3 s)"
        assert took < 8, took
    finally:
        c.close()


def test_idle_in_data_times_out(timeouts):
    c = H.session(timeouts.smtp_port)
    try:
        c.start_transaction()
        H.expect(c.cmd("DATA"), 354)
        c.send(b"Subject: stalled\r\n\r\npartial")
        t0 = time.monotonic()
        r = c.read_reply(timeout=15)
        H.expect(r, 421, "4.4.2")
        assert time.monotonic() - t0 < 8
        assert c.is_closed()
    finally:
        c.close()


# ---------------------------------------------------------------- connection limits

def test_connections_per_ip_and_total(bulwark):
    d = bulwark(overrides={"smtp": {"max_connections_per_ip": 3, "max_connections": 4}})
    held = []
    try:
        for _ in range(3):
            c = H.RawClient(d.smtp_port, source=H.UNTRUSTED)
            c.greeting()
            held.append(c)
        over = H.RawClient(d.smtp_port, source=H.UNTRUSTED)
        H.expect(over.read_reply(), 421, "4.7.0")
        assert over.is_closed()
        over.close()
        # another IP is still served...
        other = H.RawClient(d.smtp_port, source=H.UNTRUSTED2)
        other.greeting()
        other.ehlo()
        held.append(other)
        # ...until the total (4) is reached
        total = H.RawClient(d.smtp_port, source=H.UNTRUSTED2)
        H.expect(total.read_reply(), 421, "4.7.0")
        assert total.is_closed()
        total.close()
        # the held sessions still work
        for c in held:
            H.expect(c.cmd("NOOP"), 250)
    finally:
        for c in held:
            c.close()
    # once they are gone, everyone is served again
    deadline = time.monotonic() + 5
    while True:
        try:
            H.assert_serves(d)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    H.assert_serves(d, source=H.UNTRUSTED2)


def test_sequential_sessions_never_refused(bulwark):
    """One client, one connection at a time (QUIT, read 221, close, next):
    it never holds more than one connection, so the per-IP limit (20) must
    never refuse it, however fast it goes."""
    d = bulwark(users=False)
    refused = []
    for i in range(60):
        c = H.RawClient(d.smtp_port)
        try:
            r = c.read_reply()
            if r.code != 220:
                refused.append((i, r.text))
                continue
            H.expect(c.cmd("QUIT"), 221)
        finally:
            c.close()
    assert not refused, f"{len(refused)} of 60 sequential sessions refused: {refused[:3]}"


# ---------------------------------------------------------------- talk before greeting

@pytest.fixture(scope="module")
def paused(module_bulwark):
    return module_bulwark(overrides={"smtp": {"greet_pause_ms": 500}}, name="paused")


def test_talk_before_greeting_dropped(paused):
    c = H.RawClient(paused.smtp_port)
    try:
        c.send(b"EHLO client.example.net\r\n")
        lines = c.read_lines_until_closed(timeout=10)
        assert any(l.startswith("554 5.5.1") for l in lines), lines
        assert not any(l.startswith("220 ") for l in lines), lines
        assert c.eof, "not disconnected"
    finally:
        c.close()


def test_talk_after_first_greeting_line_dropped(paused):
    c = H.RawClient(paused.smtp_port)
    try:
        first = c.read_line(timeout=5)
        assert first.startswith("220-"), f"expected 220- at once, got {first!r}"
        c.send(b"EHLO client.example.net\r\nMAIL FROM:<sender@remote.example>\r\n")
        lines = c.read_lines_until_closed(timeout=10)
        assert any(l.startswith("554 5.5.1") for l in lines), lines
        assert not any(l.startswith("250") for l in lines), lines
    finally:
        c.close()
    H.assert_serves(paused)


def test_patient_stranger_waits_for_pause(paused):
    t0 = time.monotonic()
    c = H.RawClient(paused.smtp_port)
    try:
        g = c.greeting()
        elapsed = time.monotonic() - t0
        assert elapsed >= 0.4, f"greeting after {elapsed:.2f}s, pause is 0.5s"
        assert g.lines[-1].startswith(H.HOSTNAME)
        c.ehlo()
        c.quit()
    finally:
        c.close()


def test_mynetworks_and_submission_greeted_at_once(paused):
    for port, src in ((paused.smtp_port, H.TRUSTED), (paused.submission_port, H.UNTRUSTED)):
        t0 = time.monotonic()
        c = H.RawClient(port, source=src)
        try:
            c.greeting()
            elapsed = time.monotonic() - t0
            assert elapsed < 0.4, f"{src} on {port}: greeting after {elapsed:.2f}s"
            c.quit()
        finally:
            c.close()


def test_paused_server_delivers(paused):
    tok, _ = H.send_one(paused.smtp_port)
    paused.wait_for("alice@example.test", tok)


def test_concurrent_clients(lim):
    """Twenty clients at once, each a full transaction: all delivered."""
    toks, errors = [], []

    def one():
        try:
            t, _ = H.send_one(lim.smtp_port)
            toks.append(t)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for t in toks:
        lim.wait_for("alice@example.test", t)
