"""
test_outbound.py: remote delivery through the queue (issue 4, first part).

Loopback only: tests/integration/sink.py plays the remote side (an
aiosmtpd SMTP sink that answers 451 to "tempfail@" and 550 to "reject@",
and a dnslib DNS server with MX, null MX and missing domains). The daemon
reaches the sink as outbound.smarthost, or through the sink's DNS for the
MX answers that must bounce without any connection (null MX, NXDOMAIN).

Covered: delivery with the body byte-exact (dot-stuffing round trip), a
550 bounced to the sender as an RFC 3464 report, a 451 deferred (queue list
shows it, with attempts and the error), null MX and NXDOMAIN bounced at
once, a bounce never bounced (null sender), authenticated relay delivered.
"""

import email
import functools
import json
import re
import time
from pathlib import Path

import pytest

import bulwark_helpers as H


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    d = tmp_path_factory.mktemp("sink")
    proc, ports = H.start_sink_process(d)
    yield {"dir": d, "dns": int(ports["dns"]), "plain": int(ports["plain"])}
    proc.stdin.close()
    proc.wait(timeout=10)


def sink_messages(sink):
    out = []
    for env in sorted(Path(sink["dir"]).glob("*.env")):
        fields = [l.split(" ", 1) for l in env.read_text().splitlines() if " " in l]
        eml = env.with_suffix(".eml")
        out.append((fields, eml.read_bytes() if eml.exists() else b""))
    return out


# this file polls at 0.1 s, for 20 s unless told
wait_until = functools.partial(H.wait_until, timeout=20, interval=0.1)


def bounces_for(d, address):
    msgs = []
    for _, raw in d.read_maildir(address):
        m = email.message_from_bytes(raw)
        if m.get_content_type() == "multipart/report":
            msgs.append(m)
    return msgs


def test_delivery_bounce_and_deferral_through_smarthost(bulwark, sink):
    d = bulwark({"outbound": {"smarthost": f"127.0.0.1:{sink['plain']}",
                              "dns_servers": [f"127.0.0.1:{sink['dns']}"]}})
    token = f"token-{time.time_ns()}"
    body = (f"From: alice@example.test\r\nTo: bob@far.example\r\nSubject: out {token}\r\n\r\n"
            f"first line\r\n.leading dot line\r\n..two dots\r\nlast\r\n").encode()
    assert H.sendmail_trusted(d, "alice@example.test",
                        ["bob@far.example", "reject@far.example", "tempfail@far.example"],
                        body) == {}
    # delivered: bob, byte-exact body after the Received header we add
    got = wait_until(lambda: [m for m in sink_messages(sink) if token.encode() in m[1]],
                     what="delivery to the sink")
    fields, eml = got[0]
    rcpts = [v for k, v in fields if k == "rcpt"]
    assert "bob@far.example" in rcpts and "reject@far.example" not in rcpts
    assert eml.startswith(b"Received: from client.example.org"), eml[:200]
    assert b"\r\n.leading dot line\r\n..two dots\r\nlast\r\n" in eml.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    # bounced: reject@ -> an RFC 3464 report in alice's Maildir, from the null sender
    reports = wait_until(lambda: bounces_for(d, "alice@example.test"), what="the bounce")
    rep = reports[0]
    raw = rep.as_string()
    assert "Final-Recipient: rfc822; reject@far.example" in raw
    assert "Status: 5.1.1" in raw
    assert "Action: failed" in raw
    assert token in raw   # the original's headers are attached
    paths = [p for p, raw_b in d.read_maildir("alice@example.test") if b"multipart/report" in raw_b]
    assert paths and Path(paths[0]).read_bytes().startswith(b"Return-Path: <>"), "a bounce comes from <>"
    # deferred: tempfail@ stays queued with its error
    def deferred():
        cp = d.ctl("queue", "list", "--json")
        if cp.returncode != 0:
            return None
        rows = [r for r in json.loads(cp.stdout) if "tempfail@far.example" in json.dumps(r)]
        return rows if rows and rows[0].get("state") == "deferred" else None
    rows = wait_until(deferred, what="the deferred message in queue list")
    assert "451" in json.dumps(rows[0])
    assert "event=queue.deferred" in d.log_text()


def test_null_mx_and_missing_domain_bounce_at_once(bulwark, sink):
    d = bulwark({"outbound": {"smarthost": None, "dns_servers": [f"127.0.0.1:{sink['dns']}"]}})
    assert H.sendmail_trusted(d, "alice@example.test", ["x@nullmx.test", "y@missing-domain.test"],
                        b"Subject: nowhere\r\n\r\nbody\r\n") == {}
    def two_failures():
        for rep in bounces_for(d, "alice@example.test"):
            raw = rep.as_string()
            if "x@nullmx.test" in raw and "y@missing-domain.test" in raw:
                return raw
        # one report per attempt may hold both; accept them in separate reports too
        raws = [r.as_string() for r in bounces_for(d, "alice@example.test")]
        if any("x@nullmx.test" in r for r in raws) and any("y@missing-domain.test" in r for r in raws):
            return "\n".join(raws)
        return None
    raw = wait_until(two_failures, timeout=30, what="bounces for null MX and NXDOMAIN")
    assert "Status: 5.1.10" in raw
    assert "Status: 5.1.2" in raw
    # nothing left in the queue for them
    wait_until(lambda: json.loads(d.ctl("queue", "list", "--json").stdout) == [],
               what="an empty queue")


def test_a_bounce_is_never_bounced(bulwark, sink):
    d = bulwark({"outbound": {"smarthost": f"127.0.0.1:{sink['plain']}"}})
    assert H.sendmail_trusted(d, "", ["reject@far.example"], b"Subject: bounce\r\n\r\nx\r\n") == {}
    wait_until(lambda: "event=queue.bounce_dropped" in d.log_text(), what="the dropped bounce")
    assert "event=queue.bounce " not in d.log_text()


def test_authenticated_relay_reaches_the_sink(bulwark, sink):
    import smtplib
    import ssl
    d = bulwark({"outbound": {"smarthost": f"127.0.0.1:{sink['plain']}"}})
    token = f"auth-{time.time_ns()}"
    s = smtplib.SMTP(H.SERVER_IP, d.submission_port, local_hostname="client.example.org",
                     source_address=(H.UNTRUSTED, 0), timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.ehlo("client.example.org")
    s.login("alice@example.test", H.PASSWORD)
    assert s.sendmail("alice@example.test", ["carol@far.example"],
                      f"Subject: {token}\r\n\r\nhello\r\n".encode()) == {}
    s.quit()
    wait_until(lambda: [m for m in sink_messages(sink) if token.encode() in m[1]],
               what="the relayed message at the sink")


def _txt_records(text):
    """{'sel._domainkey.dom.': b'v=DKIM1; ...'} from bulwarkctl dkim keygen output."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(\S+)\s+IN\s+TXT\s+(.*)$', line)
        if m:
            out[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2))).encode()
    return out


def test_outbound_mail_is_dkim_signed(bulwark, sink):
    dkim = pytest.importorskip("dkim")
    d = bulwark({"outbound": {"smarthost": f"127.0.0.1:{sink['plain']}"}}, start=False)
    cp = d.ctl("dkim", "keygen", "example.test")
    assert cp.returncode == 0, cp.stderr
    records = _txt_records(cp.stdout)
    assert len(records) == 2, cp.stdout   # rsa-sha256 and ed25519-sha256 by default
    d.start()
    d.add_standard_users()
    token = f"signed-{time.time_ns()}"
    msg = (f"From: Alice <alice@example.test>\r\nTo: <dan@far.example>\r\nSubject: {token}\r\n"
           f"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\nMessage-ID: <{token}@example.test>\r\n\r\n"
           f"signed body\r\n").encode()
    assert H.sendmail_trusted(d, "alice@example.test", ["dan@far.example"], msg) == {}
    fields, eml = wait_until(lambda: [m for m in sink_messages(sink) if token.encode() in m[1]],
                             what="the signed message at the sink")[0]
    eml = eml.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    sigs = re.findall(rb"(?im)^DKIM-Signature:.*?a=([a-z0-9-]+)", eml.replace(b"\r\n\t", b" ").replace(b"\r\n ", b" "))
    assert sorted(sigs) == [b"ed25519-sha256", b"rsa-sha256"], eml[:600]

    def dnsfunc(name, timeout=5):
        key = name.decode() if isinstance(name, bytes) else name
        return records.get(key if key.endswith(".") else key + ".", b"")
    d_obj = dkim.DKIM(eml)
    n = eml.count(b"DKIM-Signature:")
    for i in range(n):
        assert d_obj.verify(idx=i, dnsfunc=dnsfunc), f"signature {i} does not verify"
    assert "event=dkim.signed" in d.log_text()
    # a tampered body fails
    bad = eml.replace(b"signed body", b"signed b0dy")
    try:
        ok = dkim.DKIM(bad).verify(idx=0, dnsfunc=dnsfunc)
    except dkim.ValidationError:
        ok = False   # dkimpy raises on a body hash mismatch
    assert not ok


def test_mail_from_strangers_is_not_signed(bulwark, sink):
    # inbound MX mail from outside is for local users: never signed, never relayed
    d = bulwark({"outbound": {"smarthost": f"127.0.0.1:{sink['plain']}"}}, start=False)
    assert d.ctl("dkim", "keygen", "example.test").returncode == 0
    d.start()
    d.add_standard_users()
    import smtplib
    s = smtplib.SMTP(H.SERVER_IP, d.smtp_port, local_hostname="client.example.org",
                     source_address=(H.UNTRUSTED, 0), timeout=30)
    s.sendmail("x@far.example", ["alice@example.test"], b"From: x@far.example\r\nSubject: in\r\n\r\nhi\r\n")
    s.quit()
    wait_until(lambda: d.read_maildir("alice@example.test"), what="local delivery")
    _, raw = d.read_maildir("alice@example.test")[0]
    assert b"DKIM-Signature" not in raw
