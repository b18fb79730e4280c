"""
test_dkim_inbound.py: mail from outside is DKIM-verified before local
delivery, and the result is an Authentication-Results header (RFC 8601)
at the top of the delivered message (signed mail only); an Authentication-Results header from
outside that claims our hostname is removed (a forged verdict).

A dnslib DNS server in this process serves the signer's key on loopback;
dkimpy signs the test messages with a fresh RSA key from openssl.
"""

import base64
import re
import smtplib
import subprocess
import threading
import time

import pytest

import bulwark_helpers as H

dkim = pytest.importorskip("dkim")
dnslib = pytest.importorskip("dnslib")
from dnslib import QTYPE, RCODE, RR, TXT  # noqa: E402
from dnslib.server import BaseResolver, DNSLogger, DNSServer  # noqa: E402


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkimkey")
    key = d / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()

    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            name = str(request.q.qname).rstrip(".").lower()
            if name == "sel._domainkey.far.example" and QTYPE[request.q.qtype] == "TXT":
                chunks = [record[i:i + 255] for i in range(0, len(record), 255)]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
            else:
                reply.header.rcode = RCODE.NXDOMAIN
            return reply

    server = DNSServer(Resolver(), port=0, address="127.0.0.1",
                       logger=DNSLogger(prefix=False, logf=lambda s: None))
    server.start_thread()
    yield {"key": key.read_bytes(), "dns": server.server.server_address[1]}
    server.stop()


def _send(d, msg):
    s = smtplib.SMTP(H.SERVER_IP, d.smtp_port, local_hostname="mx.far.example",
                     source_address=(H.UNTRUSTED, 0), timeout=30)
    try:
        assert s.sendmail("x@far.example", ["alice@example.test"], msg) == {}
    finally:
        s.quit()


def _delivered(d, token):
    end = time.monotonic() + 30
    while time.monotonic() < end:
        for _, raw in d.read_maildir("alice@example.test"):
            if token.encode() in raw:
                return raw
        time.sleep(0.1)
    raise AssertionError(f"{token} not delivered\n{d.log_tail()}")


def _signed(signer, token, body=b"hello from far away\r\n"):
    msg = (f"From: X <x@far.example>\r\nTo: alice@example.test\r\nSubject: {token}\r\n"
           f"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\nMessage-ID: <{token}@far.example>\r\n"
           f"\r\n").encode() + body
    sig = dkim.sign(msg, b"sel", b"far.example", signer["key"],
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig + msg


def _ar(raw):
    """The first header field of the delivered message after Return-Path."""
    head = raw.split(b"\n\n", 1)[0].decode(errors="replace")
    fields = re.split(r"\n(?=\S)", head)
    return [f for f in fields if f.lower().startswith("authentication-results:")]


def test_good_signature_passes(bulwark, signer):
    d = bulwark({"outbound": {"smarthost": None, "dns_servers": [f"127.0.0.1:{signer['dns']}"]}})
    token = f"dkimok-{time.time_ns()}"
    _send(d, _signed(signer, token))
    ar = _ar(_delivered(d, token))
    assert len(ar) == 1, ar
    assert ar[0].startswith(f"Authentication-Results: {H.HOSTNAME};"), ar
    assert "dkim=pass" in ar[0] and "header.d=far.example" in ar[0] and "header.s=sel" in ar[0], ar


def test_tampered_body_fails(bulwark, signer):
    d = bulwark({"outbound": {"smarthost": None, "dns_servers": [f"127.0.0.1:{signer['dns']}"]}})
    token = f"dkimbad-{time.time_ns()}"
    msg = _signed(signer, token).replace(b"hello from far away", b"hello from far AWAY")
    _send(d, msg)
    ar = _ar(_delivered(d, token))
    assert len(ar) == 1 and "dkim=fail" in ar[0], ar


def test_forged_results_are_stripped(bulwark, signer):
    d = bulwark({"outbound": {"smarthost": None, "dns_servers": [f"127.0.0.1:{signer['dns']}"]}})
    token = f"forged-{time.time_ns()}"
    msg = (f"Authentication-Results: {H.HOSTNAME}; dkim=pass header.d=example.test\r\n"
           f"Authentication-Results: other.example; spf=pass\r\n"
           f"From: x@far.example\r\nSubject: {token}\r\n\r\nbody\r\n").encode()
    _send(d, msg)
    raw = _delivered(d, token)
    ar = _ar(raw)
    ours = [f for f in ar if f.split(":", 1)[1].strip().startswith(H.HOSTNAME)]
    assert ours == [], ar   # the forged one is gone; an unsigned message gets none of ours
    assert any("other.example" in f for f in ar), ar          # others' results are kept
    assert "event=delivery.strip" in d.log_text()
