"""
test_delivery.py: mail for local users lands in their Maildir (issue 2,
"Queue and local delivery"): users, aliases to two users, the second
domain, case variants, Return-Path and Received headers (with TLS version
and cipher after STARTTLS), implicit TLS on submissions, swaks, RFC 2920
pipelining (several whole transactions in one write), 8BITMIME bodies
byte-exact, SMTPUTF8, large bodies, and that Python's mailbox and mutt can
read the result. Maildir files use LF line endings.
"""

import mailbox
import os
import re
import shutil
import stat
import subprocess
import time

import pytest

import bulwark_helpers as H

ALICE = "alice@example.test"
BOB = "bob@example.test"


def test_deliver_to_user(mx):
    tok, qid = H.send_one(mx.smtp_port)
    msgs = mx.wait_for(ALICE, tok)
    assert len(msgs) == 1
    paths = [p for p, raw in mx.read_maildir(ALICE) if tok.encode() in raw]
    assert paths[0].parent.name == "new", paths
    assert (mx.maildir(ALICE) / "tmp").is_dir() and (mx.maildir(ALICE) / "cur").is_dir()


def test_deliver_to_second_domain(mx):
    tok, _ = H.send_one(mx.smtp_port, rcpts=("carol@example.org",))
    mx.wait_for("carol@example.org", tok)
    assert (mx.data_dir / "mail" / "example.org" / "carol" / "new").is_dir()


def test_alias_expands_to_two_users(mx):
    tok, _ = H.send_one(mx.smtp_port, rcpts=("team@example.test",))
    mx.wait_for(ALICE, tok)
    mx.wait_for(BOB, tok)
    time.sleep(0.5)
    assert len(mx.find(ALICE, tok)) == 1 and len(mx.find(BOB, tok)) == 1
    assert not (mx.data_dir / "mail" / "example.test" / "team").exists(), \
        "an alias got a Maildir of its own"


@pytest.mark.parametrize("rcpt", ["ALICE@example.test", "Alice@Example.TEST"])
def test_mixed_case_local_part(mx, rcpt):
    tok, _ = H.send_one(mx.smtp_port, rcpts=(rcpt,))
    mx.wait_for(ALICE, tok)


def test_several_recipients_one_transaction(mx):
    tok, _ = H.send_one(mx.smtp_port, rcpts=(ALICE, BOB, "carol@example.org"))
    for a in (ALICE, BOB, "carol@example.org"):
        mx.wait_for(a, tok)


def test_postmaster_without_domain(mx):
    mx.add_alias("postmaster@example.test", ALICE)
    tok = H.token()
    c = H.session(mx.smtp_port)
    try:
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
        H.expect(c.cmd("RCPT TO:<Postmaster>"), 250)
        H.expect(c.data(H.make_message(tok, to="postmaster")), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    mx.wait_for(ALICE, tok)


def test_return_path_and_received(mx):
    tok, qid = H.send_one(mx.smtp_port, sender="Sender.Name@remote.example")
    raw = mx.wait_for(ALICE, tok)[0]
    first = raw.split(b"\n", 1)[0].rstrip(b"\r")
    assert first == b"Return-Path: <Sender.Name@remote.example>", first
    hdrs = H.headers_of(raw)
    assert hdrs[0][0] == "return-path"
    assert hdrs[1][0] == "received", hdrs[:3]
    received = hdrs[1][1]
    assert H.CLIENT_HELO in received, received
    assert "[127.0.0.9]" in received, received
    assert f"by {H.HOSTNAME}" in received, received
    assert re.search(r"\bid " + re.escape(qid) + r"\b", received), (qid, received)
    # the client's own headers follow, untouched and in order
    names = [n for n, _ in hdrs]
    assert names[-5:] == ["from", "to", "subject", "message-id", "date"], names
    _, body = H.split_message(raw)
    assert H.to_lf(body) == f"Hello, this is {tok}.\nSecond line.\nEND-OF-MESSAGE {tok}\n".encode()


def test_null_sender_return_path(mx):
    tok = H.token()
    c = H.session(mx.smtp_port)
    try:
        H.expect(c.cmd("MAIL FROM:<>"), 250)
        H.expect(c.cmd(f"RCPT TO:<{ALICE}>"), 250)
        H.expect(c.data(H.make_message(tok, sender="MAILER-DAEMON@remote.example")), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    raw = mx.wait_for(ALICE, tok)[0]
    assert raw.startswith(b"Return-Path: <>"), raw[:80]


def test_maildir_files_use_lf_line_endings(mx):
    tok, _ = H.send_one(mx.smtp_port)
    raw = mx.wait_for(ALICE, tok)[0]
    assert b"\r" not in raw, f"CR in the Maildir file: {raw[:200]!r}"
    assert raw.endswith(b"\n")


def test_queue_id_in_log(mx):
    tok, qid = H.send_one(mx.smtp_port)
    mx.wait_for(ALICE, tok)
    time.sleep(0.3)
    lines = [l for l in mx.log_text().splitlines() if qid in l]
    assert len(lines) >= 2, f"queue id {qid} in {len(lines)} log line(s)\n{mx.log_tail()}"
    assert any("127.0.0.9" in l for l in mx.log_text().splitlines()), mx.log_tail()


# ---------------------------------------------------------------- TLS

def test_starttls_received_names_tls_and_cipher(mx):
    tok = H.token()
    with H.smtp_client(mx.smtp_port) as s:
        code, resp = s.ehlo()
        assert s.has_extn("starttls"), resp
        code, resp = s.starttls(context=H.unverified_context())
        assert code == 220, resp
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        code, resp = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls"), "STARTTLS offered again inside TLS"
        assert s.mail("sender@remote.example")[0] == 250
        assert s.rcpt(ALICE)[0] == 250
        code, resp = s.data(H.make_message(tok))
        assert code == 250, resp
    assert version in ("TLSv1.3", "TLSv1.2"), version
    raw = mx.wait_for(ALICE, tok)[0]
    received = dict(H.headers_of(raw)[:2]).get("received", "")
    assert version in received, received
    assert cipher in received, (cipher, received)


def test_tls_material_made_on_first_start(mx):
    tls = mx.data_dir / "tls"
    assert tls.is_dir(), "no data_dir/tls"
    keys = [p for p in tls.iterdir() if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    assert keys, list(tls.iterdir())
    for k in keys:
        mode = stat.S_IMODE(k.stat().st_mode)
        assert mode & 0o077 == 0, f"{k} has mode {oct(mode)}"


def test_implicit_tls_submissions_from_mynetworks(mx):
    tok = H.token()
    with H.smtp_client(mx.submissions_port, source=H.TRUSTED, tls=True) as s:
        assert s.ehlo()[0] == 250
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt(BOB)[0] == 250
        code, resp = s.data(H.make_message(tok, sender=ALICE, to=BOB))
        assert code == 250 and b"queued as" in resp, resp
    raw = mx.wait_for(BOB, tok)[0]
    assert "TLSv1." in dict(H.headers_of(raw)[:2]).get("received", "")


def swaks_has_tls():
    return subprocess.run(["perl", "-MNet::SSLeay", "-e", "1"],
                          capture_output=True).returncode == 0


needs_swaks_tls = pytest.mark.skipif(not swaks_has_tls(),
                                     reason="swaks TLS needs Net::SSLeay (libnet-ssleay-perl)")


@needs_swaks_tls
def test_swaks_starttls_delivery(mx):
    tok = H.token()
    cp = H.swaks("--server", f"127.0.0.1:{mx.smtp_port}", "--local-interface", H.UNTRUSTED,
                 "--helo", H.CLIENT_HELO, "--from", "sender@remote.example", "--to", ALICE,
                 "--tls", "--header", f"Subject: swaks {tok}", "--body", f"body {tok}")
    out = H.output_of(cp)
    assert cp.returncode == 0, out
    assert "TLS started" in out, out
    assert re.search(r"<~\s+250 2\.0\.0 Ok: queued as \S+", out), out
    mx.wait_for(ALICE, tok)


@needs_swaks_tls
def test_swaks_tls_on_connect_submissions(mx):
    tok = H.token()
    cp = H.swaks("--server", f"127.0.0.1:{mx.submissions_port}", "--local-interface", H.TRUSTED,
                 "--helo", H.CLIENT_HELO, "--from", ALICE, "--to", ALICE,
                 "--tls-on-connect", "--header", f"Subject: swaks {tok}", "--body", f"body {tok}")
    out = H.output_of(cp)
    assert cp.returncode == 0, out
    mx.wait_for(ALICE, tok)


def test_swaks_pipelining(mx):
    tok = H.token()
    cp = H.swaks("--server", f"127.0.0.1:{mx.smtp_port}", "--local-interface", H.UNTRUSTED,
                 "--helo", H.CLIENT_HELO, "--from", "sender@remote.example",
                 "--to", f"{ALICE},{BOB}", "--pipeline", "--header", f"Subject: {tok}",
                 "--body", f"pipelined {tok}")
    out = H.output_of(cp)
    assert cp.returncode == 0, out
    mx.wait_for(ALICE, tok)
    mx.wait_for(BOB, tok)


# ---------------------------------------------------------------- pipelining

def test_three_transactions_in_one_write(mx):
    toks = [H.token() for _ in range(3)]
    c = H.session(mx.smtp_port)
    try:
        ehlo = c.cmd(f"EHLO {H.CLIENT_HELO}")
        assert "PIPELINING" in ehlo.keywords()
        blob = b""
        for i, t in enumerate(toks):
            rcpt = (ALICE, BOB, "carol@example.org")[i]
            blob += (f"MAIL FROM:<sender@remote.example>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n").encode()
            blob += H.make_message(t, to=rcpt) + b".\r\n"
        blob += b"QUIT\r\n"
        c.send(blob)
        replies = c.read_all_until_closed(timeout=20)
    finally:
        c.close()
    codes = [r.code for r in replies]
    assert codes == [250, 250, 354, 250] * 3 + [221], [r.text for r in replies]
    qids = [replies[i].queue_id() for i in (3, 7, 11)]
    assert all(qids) and len(set(qids)) == 3, qids
    mx.wait_for(ALICE, toks[0])
    mx.wait_for(BOB, toks[1])
    mx.wait_for("carol@example.org", toks[2])


def test_pipelined_group_with_a_refused_recipient(mx):
    tok = H.token()
    c = H.session(mx.smtp_port)
    try:
        c.send(b"MAIL FROM:<sender@remote.example>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nosuch@example.test>\r\n"
               b"RCPT TO:<user@remote.example>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        rs = c.read_replies(6)
        got = [(r.code, (r.enhanced or "")[:2]) for r in rs[:5]]
        assert got == [(250, "2."), (250, "2."), (550, "5."), (554, "5."), (250, "2.")], \
            [r.text for r in rs]
        H.expect(rs[2], 550, "5.1.1")
        H.expect(rs[3], 554, "5.7.1")
        H.expect(rs[5], 354)
        c.send(H.make_message(tok) + b".\r\n")
        H.expect(c.read_reply(), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    mx.wait_for(ALICE, tok)
    mx.wait_for(BOB, tok)


def test_many_transactions_one_session(mx):
    toks = [H.token() for _ in range(20)]
    c = H.session(mx.smtp_port)
    try:
        for t in toks:
            c.start_transaction()
            H.expect(c.data(H.make_message(t)), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    for t in toks:
        mx.wait_for(ALICE, t)


# ---------------------------------------------------------------- content

def test_8bitmime_body_byte_exact(mx):
    tok = H.token()
    high = bytes(range(0x80, 0x100))
    body_lines = [f"8bit {tok}".encode(),
                  "Grüße, naïve café, 日本語, emoji \U0001F600".encode(),
                  high[:64], high[64:],
                  bytes(range(0x20, 0x7f)),
                  b"\ttab\tseparated\t",
                  b"trailing spaces   ",
                  b"",
                  f"END-OF-MESSAGE {tok}".encode()]
    head = (f"From: <sender@remote.example>\r\nTo: <{ALICE}>\r\nSubject: {tok}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode()
    body = b"\r\n".join(body_lines) + b"\r\n"
    c = H.session(mx.smtp_port)
    try:
        ehlo = c.cmd(f"EHLO {H.CLIENT_HELO}")
        assert "8BITMIME" in ehlo.keywords()
        H.expect(c.cmd("MAIL FROM:<sender@remote.example> BODY=8BITMIME"), 250)
        H.expect(c.cmd(f"RCPT TO:<{ALICE}>"), 250)
        H.expect(c.data(head + body), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    raw = mx.wait_for(ALICE, tok)[0]
    _, stored = H.split_message(raw)
    assert H.to_lf(stored) == H.to_lf(body)


def test_large_message_intact(mx):
    tok = H.token()
    lines = [f"{i:07d} {tok} ".encode() + bytes((0x21 + (i + j) % 94) for j in range(900))
             for i in range(1200)]     # ~1.1 MB
    body = b"\r\n".join(lines) + b"\r\n"
    msg = f"Subject: {tok}\r\n\r\n".encode() + body
    H.send_one(mx.smtp_port, tok=tok, message=msg)
    raw = mx.wait_for(ALICE, tok, timeout=30)[0]
    _, stored = H.split_message(raw)
    assert H.to_lf(stored) == H.to_lf(body)


def test_smtputf8(mx):
    tok = H.token()
    c = H.session(mx.smtp_port)
    try:
        ehlo = c.cmd(f"EHLO {H.CLIENT_HELO}")
        assert "SMTPUTF8" in ehlo.keywords()
        sender = "üser@rémote.example"
        r = c.cmd(f"MAIL FROM:<{sender}>".encode())
        assert 500 <= r.code < 600, f"UTF-8 sender without SMTPUTF8 accepted: {r.text}"
        r = c.cmd(f"MAIL FROM:<{sender}> SMTPUTF8".encode())
        H.expect(r, 250)
        H.expect(c.cmd(f"RCPT TO:<{ALICE}>"), 250)
        msg = (f"From: <{sender}>\r\nTo: <{ALICE}>\r\nSubject: ünïcode {tok}\r\n\r\n"
               f"héllo {tok}\r\n").encode()
        H.expect(c.data(msg), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    raw = mx.wait_for(ALICE, tok)[0]
    assert raw.startswith(f"Return-Path: <{sender}>".encode()), raw[:80]
    assert f"héllo {tok}".encode() in raw


def test_python_mailbox_reads_maildir(mx):
    tok, _ = H.send_one(mx.smtp_port, rcpts=(BOB,))
    mx.wait_for(BOB, tok)
    md = mailbox.Maildir(str(mx.maildir(BOB)), factory=None, create=False)
    found = [m for m in md if tok in (m["Subject"] or "")]
    assert len(found) == 1
    m = found[0]
    assert m["Return-Path"] == "<sender@remote.example>"
    assert m["Message-ID"] == f"<{tok}@{H.CLIENT_HELO}>"
    assert m.get_payload().splitlines()[-1] == f"END-OF-MESSAGE {tok}"


@pytest.mark.skipif(not shutil.which("tmux") or not shutil.which("mutt"),
                    reason="needs tmux and mutt")
def test_mutt_reads_maildir(mx, tmp_path):
    tok, _ = H.send_one(mx.smtp_port, rcpts=("carol@example.org",))
    mx.wait_for("carol@example.org", tok)
    sock = f"bulwark-test-{os.getpid()}"
    (tmp_path / "Mail").mkdir()
    env = dict(os.environ, HOME=str(tmp_path), TERM="xterm", MAIL="/dev/null")
    tmux = ["tmux", "-L", sock, "-f", "/dev/null"]
    md = str(mx.maildir("carol@example.org"))
    subprocess.run(tmux + ["new-session", "-d", "-s", "m", "-x", "200", "-y", "50",
                           f"mutt -n -F /dev/null -R -f {md}"], env=env, check=True, timeout=20)
    try:
        def screen():
            return subprocess.run(tmux + ["capture-pane", "-p", "-t", "m"], env=env,
                                  capture_output=True, text=True, timeout=10).stdout

        deadline = time.monotonic() + 10
        while tok not in screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        index = screen()
        assert f"test {tok}" in index, index
        # search for our message (the Maildir holds others), then open it
        subprocess.run(tmux + ["send-keys", "-t", "m", "/", tok, "Enter"], env=env, timeout=10)
        time.sleep(0.5)
        subprocess.run(tmux + ["send-keys", "-t", "m", "Enter"], env=env, timeout=10)
        deadline = time.monotonic() + 10
        while f"END-OF-MESSAGE {tok}" not in screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        pager = screen()
        assert f"Hello, this is {tok}." in pager, pager
        assert f"END-OF-MESSAGE {tok}" in pager, pager
        assert "^M" not in pager, "mutt shows carriage returns"
    finally:
        subprocess.run(tmux + ["kill-server"], env=env, timeout=10)
