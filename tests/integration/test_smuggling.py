"""
test_smuggling.py: end of data is CRLF.CRLF and nothing else (SMTP
smuggling, CVE-2023-51764 class; docs/smtp.md "DATA and BDAT").

Raw sockets from 127.0.0.9. Each end-of-data look-alike (\\n.\\n, \\r.\\r,
\\r\\n.\\n, \\n.\\r\\n, \\r\\n.\\r, \\n.\\r, \\r.\\r\\n, \\r.\\n, \\n..\\n,
\\r\\n.\\x00\\r\\n, ...) is followed by a second, smuggled transaction
(MAIL/RCPT/DATA to bob) and the real CRLF.CRLF: never two messages, never
extra replies, and the reply is the one docs/smtp.md promises. Also bare LF
in both bare_lf modes, dot-unstuffing, and BDAT (RFC 3030) where dots are
data but bare CR/LF rules still hold.
"""

import time

import pytest

import bulwark_helpers as H

ALICE = "alice@example.test"
BOB = "bob@example.test"

REFUSED = (550, "5.6.0")
QUEUED = (250, "2.0.0")


@pytest.fixture(scope="module")
def reject_mx(module_bulwark):
    return module_bulwark(overrides={"smtp": {"bare_lf": "reject"}}, name="reject_mx")


@pytest.fixture(params=["normalize", "reject"])
def any_mx(request, mx, reject_mx):
    return mx if request.param == "normalize" else reject_mx


def smuggle_payload(seq, tok, smugtok):
    head = (b"From: <sender@remote.example>\r\nTo: <alice@example.test>\r\n"
            b"Subject: smuggle " + tok.encode() + b"\r\n"
            b"Message-ID: <" + tok.encode() + b"@client.example.net>\r\n\r\n"
            b"first part " + tok.encode())
    smuggled = (b"MAIL FROM:<evil@remote.example>\r\n"
                b"RCPT TO:<bob@example.test>\r\n"
                b"DATA\r\n"
                b"Subject: smuggled " + smugtok.encode() + b"\r\n\r\n"
                b"smuggled " + smugtok.encode() + b"\r\n"
                b".\r\n")          # the one real CRLF.CRLF
    return head + seq + smuggled


# (id, bytes, kind): kind "lookalike"/"bare_cr" must be 550 5.6.0 in both
# modes; "either" may be one message (250) or refused (550 5.6.0) in
# normalize mode, and is refused in reject mode when it holds a bare LF.
SEQS = [
    ("lf-dot-lf", b"\n.\n", "lookalike"),
    ("cr-dot-cr", b"\r.\r", "bare_cr"),
    ("crlf-dot-lf", b"\r\n.\n", "lookalike"),
    ("lf-dot-crlf", b"\n.\r\n", "lookalike"),
    ("crlf-dot-cr", b"\r\n.\r", "bare_cr"),
    ("lf-dot-cr", b"\n.\r", "bare_cr"),
    ("cr-dot-crlf", b"\r.\r\n", "bare_cr"),
    ("cr-dot-lf", b"\r.\n", "bare_cr"),
    ("crlf-dot-cr-crlf", b"\r\n.\r\r\n", "bare_cr"),
    ("lf-crlf-dot-lf", b"\n\r\n.\n", "lookalike"),
    ("crlf-dot-lf-lf", b"\r\n.\n\n", "lookalike"),
    ("lf-dotdot-lf", b"\n..\n", "either"),
    ("crlf-dot-nul-crlf", b"\r\n.\x00\r\n", "either"),
    ("crlf-dot-space-crlf", b"\r\n. \r\n", "either"),
]


def run_smuggle(d, seq):
    tok, smugtok = H.token(), H.token()
    c = H.session(d.smtp_port)
    try:
        c.start_transaction(rcpts=(ALICE,))
        H.expect(c.cmd("DATA"), 354)
        c.send(smuggle_payload(seq, tok, smugtok) + b"QUIT\r\n")
        replies = c.read_all_until_closed(timeout=15)
    finally:
        c.close()
    return tok, smugtok, replies


@pytest.mark.parametrize("seq,kind", [pytest.param(s, k, id=i) for i, s, k in SEQS])
def test_smuggling_never_two_messages(any_mx, seq, kind):
    d = any_mx
    reject_mode = d.config["smtp"].get("bare_lf") == "reject"
    tok, smugtok, replies = run_smuggle(d, seq)
    texts = [r.text for r in replies]
    # Exactly one reply for the whole data (250 or 550), then 221 for QUIT:
    # anything more means the smuggled MAIL/RCPT/DATA were executed.
    assert len(replies) == 2 and replies[1].code == 221, f"replies: {texts}"
    final = replies[0]
    got = (final.code, final.enhanced)
    if kind in ("lookalike", "bare_cr") or (reject_mode and b"\n" in seq.replace(b"\r\n", b"")):
        assert got == REFUSED, f"expected 550 5.6.0, got {final.text!r}"
    else:
        assert got in (QUEUED, REFUSED), f"expected 250 2.0.0 or 550 5.6.0, got {final.text!r}"
    # Bob never gets the smuggled message; at most one message in all.
    time.sleep(0.2)
    if got == QUEUED:
        msgs = d.wait_for(ALICE, tok)
        assert len(msgs) == 1, msgs
        assert smugtok.encode() in msgs[0], "the rest of the data is missing from the one message"
        assert b"MAIL FROM:<evil@remote.example>" in msgs[0]
    else:
        time.sleep(0.3)
        assert not d.find_anywhere(tok), "a refused message was delivered"
    assert not d.find(BOB, smugtok), "SMUGGLED: a second message reached bob"
    everywhere = d.find_anywhere(tok) + d.find_anywhere(smugtok)
    assert len({p for p, _ in everywhere}) <= 1, [str(p) for p, _ in everywhere]
    H.assert_serves(d)


def test_smuggling_server_still_serves(mx, reject_mx):
    H.assert_serves(mx, deliver=True)
    H.assert_serves(reject_mx, deliver=True)


# ---------------------------------------------------------------- bare LF

def send_raw_data(d, payload, rcpt=ALICE):
    """DATA with payload sent verbatim (caller supplies the terminator)."""
    c = H.session(d.smtp_port)
    try:
        c.start_transaction(rcpts=(rcpt,))
        H.expect(c.cmd("DATA"), 354)
        c.send(payload)
        r = c.read_reply(timeout=15)
        # the session goes on after the verdict
        H.expect(c.cmd("NOOP"), 250)
        c.quit()
    finally:
        c.close()
    return r


def test_bare_lf_rejected_in_reject_mode(reject_mx):
    tok = H.token()
    payload = (f"Subject: {tok}\r\n\r\nline one\nline two\r\n.\r\n").encode()
    r = send_raw_data(reject_mx, payload)
    H.expect(r, 550, "5.6.0")
    assert "bare LF" in r.text or "line feed" in r.text.lower(), r.text
    time.sleep(0.3)
    assert not reject_mx.find_anywhere(tok)
    H.assert_serves(reject_mx)


def test_clean_message_accepted_in_reject_mode(reject_mx):
    tok, _ = H.send_one(reject_mx.smtp_port)
    reject_mx.wait_for(ALICE, tok)


def test_bare_lf_normalized_by_default(mx):
    tok = H.token()
    payload = (f"Subject: {tok}\r\n\r\nline one\nline two\nline three {tok}\r\n.\r\n").encode()
    r = send_raw_data(mx, payload)
    H.expect(r, 250, "2.0.0")
    raw = mx.wait_for(ALICE, tok)[0]
    _, body = H.split_message(raw)
    lines = H.to_lf(body).split(b"\n")
    assert lines[:3] == [b"line one", b"line two", f"line three {tok}".encode()], body
    assert b"\r" not in body.replace(b"\r\n", b""), f"bare CR in stored body: {body!r}"


def test_bare_lf_in_headers_normalized(mx):
    tok = H.token()
    payload = (f"Subject: {tok}\nX-Test: yes\r\n\r\nbody {tok}\r\n.\r\n").encode()
    H.expect(send_raw_data(mx, payload), 250, "2.0.0")
    raw = mx.wait_for(ALICE, tok)[0]
    hdrs = dict(H.headers_of(raw))
    assert hdrs.get("x-test") == "yes", raw
    assert hdrs.get("subject") == tok, raw


def test_bare_cr_in_body_refused(mx):
    tok = H.token()
    r = send_raw_data(mx, (f"Subject: {tok}\r\n\r\nover\rwrite\r\n.\r\n").encode())
    H.expect(r, 550, "5.6.0")
    assert "bare CR" in r.text or "carriage return" in r.text.lower(), r.text
    time.sleep(0.3)
    assert not mx.find_anywhere(tok)


def test_crlf_split_across_segments_is_not_bare_cr(mx):
    tok = H.token()
    c = H.session(mx.smtp_port)
    try:
        c.start_transaction()
        H.expect(c.cmd("DATA"), 354)
        c.send(f"Subject: {tok}\r\n\r\nline one\r".encode())
        time.sleep(0.3)
        c.send(b"\nline two\r\n\r")
        time.sleep(0.3)
        c.send(b"\n.\r")
        time.sleep(0.3)
        c.send(b"\n")
        H.expect(c.read_reply(timeout=15), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    raw = mx.wait_for(ALICE, tok)[0]
    _, body = H.split_message(raw)
    assert H.to_lf(body) == b"line one\nline two\n\n", body


# ---------------------------------------------------------------- dot-unstuffing

def test_dot_unstuffing(mx):
    tok = H.token()
    payload = (f"Subject: {tok}\r\n\r\n"
               "..leading\r\n"
               "...two\r\n"
               "..\r\n"
               "x..y\r\n"
               " .space\r\n"
               f"end {tok}\r\n"
               ".\r\n").encode()
    H.expect(send_raw_data(mx, payload), 250, "2.0.0")
    raw = mx.wait_for(ALICE, tok)[0]
    _, body = H.split_message(raw)
    assert H.to_lf(body).split(b"\n")[:6] == [
        b".leading", b"..two", b".", b"x..y", b" .space", f"end {tok}".encode()], body


def test_empty_body_and_terminator_right_after_headers(mx):
    tok = H.token()
    H.expect(send_raw_data(mx, f"Subject: {tok}\r\n.\r\n".encode()), 250, "2.0.0")
    raw = mx.wait_for(ALICE, tok)[0]
    assert f"Subject: {tok}".encode() in raw


# ---------------------------------------------------------------- BDAT (RFC 3030)

def bdat_session(d, chunks, rcpt=ALICE):
    """MAIL/RCPT, then each (payload, last) as BDAT; returns the replies."""
    c = H.session(d.smtp_port)
    replies = []
    try:
        ehlo = c.cmd(f"EHLO {H.CLIENT_HELO}")
        assert "CHUNKING" in ehlo.keywords(), ehlo.text
        c.start_transaction(rcpts=(rcpt,))
        for payload, last in chunks:
            c.send(f"BDAT {len(payload)}{' LAST' if last else ''}\r\n".encode() + payload)
            replies.append(c.read_reply(timeout=15))
        H.expect(c.cmd("NOOP"), 250)
        c.quit()
    finally:
        c.close()
    return replies


def test_bdat_dots_are_data(mx):
    tok, smugtok = H.token(), H.token()
    payload = (f"Subject: {tok}\r\n\r\nbefore\r\n.\r\n"
               "MAIL FROM:<evil@remote.example>\r\n"
               "RCPT TO:<bob@example.test>\r\n"
               "DATA\r\n"
               f"smuggled {smugtok}\r\n.\r\n"
               "..two dots stay two\r\n").encode()
    (r,) = bdat_session(mx, [(payload, True)])
    H.expect(r, 250, "2.0.0")
    assert r.queue_id(), r.text
    raw = mx.wait_for(ALICE, tok)[0]
    _, body = H.split_message(raw)
    lines = H.to_lf(body).split(b"\n")
    assert lines[:2] == [b"before", b"."], body
    assert b"MAIL FROM:<evil@remote.example>" in body
    assert f"smuggled {smugtok}".encode() in body
    assert b"..two dots stay two" in lines, body   # no unstuffing in BDAT
    time.sleep(0.3)
    assert not mx.find(BOB, smugtok)


def test_bdat_multiple_chunks_concatenate(mx):
    tok = H.token()
    msg = f"Subject: {tok}\r\n\r\n" + "".join(f"line {i:04d} {tok}\r\n" for i in range(200))
    data = msg.encode()
    # Cut mid-line and between CR and LF on purpose.
    cuts = [0, 7, data.index(b"\r\n", 100) + 1, 2000, 2001, len(data)]
    chunks = [(data[a:b], False) for a, b in zip(cuts, cuts[1:])]
    chunks.append((b"", True))          # BDAT 0 LAST
    replies = bdat_session(mx, chunks)
    for r in replies[:-1]:
        H.expect(r, 250)
    H.expect(replies[-1], 250, "2.0.0")
    assert replies[-1].queue_id()
    raw = mx.wait_for(ALICE, tok)[0]
    _, body = H.split_message(raw)
    expected = "".join(f"line {i:04d} {tok}\n" for i in range(200)).encode()
    assert H.to_lf(body) == expected


def test_bdat_bare_cr_refused(mx):
    tok = H.token()
    (r,) = bdat_session(mx, [(f"Subject: {tok}\r\n\r\nover\rwrite\r\n".encode(), True)])
    H.expect(r, 550, "5.6.0")
    time.sleep(0.3)
    assert not mx.find_anywhere(tok)
    H.assert_serves(mx)


def test_bdat_bare_lf_normalized(mx):
    tok = H.token()
    (r,) = bdat_session(mx, [(f"Subject: {tok}\r\n\r\none\ntwo\r\n".encode(), True)])
    H.expect(r, 250, "2.0.0")
    _, body = H.split_message(mx.wait_for(ALICE, tok)[0])
    assert H.to_lf(body).split(b"\n")[:2] == [b"one", b"two"], body


def test_bdat_bare_lf_rejected_in_reject_mode(reject_mx):
    tok = H.token()
    (r,) = bdat_session(reject_mx, [(f"Subject: {tok}\r\n\r\none\ntwo\r\n".encode(), True)])
    H.expect(r, 550, "5.6.0")
    time.sleep(0.3)
    assert not reject_mx.find_anywhere(tok)


def test_bdat_lookalike_never_two_messages(mx):
    tok, smugtok = H.token(), H.token()
    payload = (f"Subject: {tok}\r\n\r\nbody\n.\nMAIL FROM:<evil@remote.example>\r\n"
               f"RCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled {smugtok}\r\n.\r\n").encode()
    (r,) = bdat_session(mx, [(payload, True)])
    assert (r.code, r.enhanced) in (QUEUED, REFUSED), r.text
    time.sleep(0.5)
    assert not mx.find(BOB, smugtok)
    assert len(mx.find_anywhere(tok)) <= 1


def test_bdat_split_crlf_across_chunks_is_not_bare_cr(mx):
    tok = H.token()
    replies = bdat_session(mx, [(f"Subject: {tok}\r\n\r\nline one\r".encode(), False),
                                (b"\nline two\r\n", True)])
    H.expect(replies[0], 250)
    H.expect(replies[1], 250, "2.0.0")
    _, body = H.split_message(mx.wait_for(ALICE, tok)[0])
    assert H.to_lf(body) == b"line one\nline two\n", body


def test_bdat_then_data_in_same_session(mx):
    # A BDAT transaction followed by a DATA one on the same connection.
    tok1, tok2 = H.token(), H.token()
    c = H.session(mx.smtp_port)
    try:
        c.start_transaction()
        p = f"Subject: {tok1}\r\n\r\nvia bdat\r\n".encode()
        c.send(f"BDAT {len(p)} LAST\r\n".encode() + p)
        H.expect(c.read_reply(), 250, "2.0.0")
        c.start_transaction()
        H.expect(c.data(H.make_message(tok2)), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    mx.wait_for(ALICE, tok1)
    mx.wait_for(ALICE, tok2)


def test_data_after_bdat_in_same_transaction_refused(mx):
    # RFC 3030: BDAT and DATA must not be mixed in one transaction.
    c = H.session(mx.smtp_port)
    try:
        c.start_transaction()
        c.send(b"BDAT 4\r\nabcd")
        H.expect(c.read_reply(), 250)
        r = c.cmd("DATA")
        assert r.code in (503, 554), r.text
        c.cmd("RSET")
        c.quit()
    finally:
        c.close()
