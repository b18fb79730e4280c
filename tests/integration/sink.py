#!/usr/bin/python3
"""Loopback peers for the outbound tests: a DNS server (python3-dnslib) and
SMTP sinks (python3-aiosmtpd) playing remote MXs.

Started by tests/unit/test_dns.c and tests/unit/test_smtp_client.c (and
usable by hand). Prints one line on stdout when ready:

    READY dir=DIR ca=DIR/ca.pem dns=PORT plain=PORT tls=PORT small=PORT no8bit=PORT utf8=PORT
          slow=PORT starttls=PORT badtls=PORT

and runs until its standard input closes (so it never outlives the test).
Every accepted message is written to DIR/N.env (envelope, one "key value"
a line: port, tls, from, rcpt..., opt...) and DIR/N.eml (the data, as
received after un-stuffing; "tls" requires STARTTLS, "starttls" offers it,
"badtls" offers it and fails every handshake). Recipients whose local part is "tempfail" get
451 4.3.0, "reject" gets 550 5.1.1, one starting with "tempfail1" gets 451
4.3.0 the first time only (then 250: a retry succeeds). Loopback only.

Connections are counted per port: DIR/stats.PORT holds "connections N"
(accepted so far), "concurrent N" (open now) and "peak N" (most open at
once), rewritten at every change; each .env has "conn N", the number of
the connection (per port) that carried the message. The "slow" sink waits
0.3 s before answering the final dot (so concurrent sessions overlap).
"""
import argparse
import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

# ---- DNS ----

# name -> list of (type, value). Names are lower case, without the trailing dot.
ZONE = {
    "mx.test": [("MX", (10, "mx1.mx.test")), ("MX", (20, "mx2.mx.test"))],
    "mx1.mx.test": [("A", "127.0.0.1")],
    "mx2.mx.test": [("A", "127.0.0.1")],
    "pref.test": [("MX", (10, "a.pref.test")), ("MX", (10, "b.pref.test")),
                  ("MX", (5, "c.pref.test")), ("MX", (20, "d.pref.test")),
                  ("MX", (30, "a.pref.test")), ("MX", (15, "bad!name.pref.test"))],
    "nullmx.test": [("MX", (0, "."))],
    "nullmix.test": [("MX", (0, ".")), ("MX", (10, "mx1.mx.test"))],
    "implicit.test": [("A", "127.0.0.1")],
    "v6only.test": [("AAAA", "::1")],
    "dual.test": [("AAAA", "::1"), ("A", "127.0.0.2"), ("A", "127.0.0.3")],
    "nodata.test": [("TXT", ["just text"])],
    "sel._domainkey.txt.test": [("TXT", ["v=DKIM1; k=ed25519; ", "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]),
                                ("TXT", ["second record"]),
                                ("TXT", [b"with\x00nul"])],
    "cname.test": [("CNAME", "alias.cname.test")],
    "alias.cname.test": [("CNAME", "host.cname.test")],
    "host.cname.test": [("A", "127.0.0.4"), ("MX", (10, "mx1.mx.test"))],
    "loop.test": [("CNAME", "loop2.test")],
    "loop2.test": [("CNAME", "loop.test")],
    "badmx.test": [("MX", (10, "bad!name.test"))],
}
SERVFAIL = {"servfail.test", "mx1.servfail.test"}


class Resolver(BaseResolver):
    """Answers like a recursive resolver: the whole CNAME chain, then data."""

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        if qname in SERVFAIL:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        name = qname
        for _ in range(12):   # a loop is handed out as a long chain
            records = ZONE.get(name)
            if records is None:
                if name == qname:
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply
            cname = [v for t, v in records if t == "CNAME"]
            if cname and qtype != "CNAME":
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(cname[0]), ttl=60))
                name = cname[0]
                continue
            for t, v in records:
                if t != qtype:
                    continue
                if t == "A":
                    rd = A(v)
                elif t == "AAAA":
                    rd = AAAA(v)
                elif t == "MX":
                    rd = MX(DNSLabel(v[1]) if v[1] != "." else DNSLabel([]), v[0])
                elif t == "TXT":
                    rd = TXT([s.encode() if isinstance(s, str) else s for s in v])
                else:
                    continue
                # Owner names in upper case: names compare without case.
                reply.add_answer(RR(name.upper(), getattr(QTYPE, t), rdata=rd, ttl=60))
            return reply
        return reply


# ---- SMTP ----

class Stats:
    """Connections to one port: accepted, open now, most open at once."""

    def __init__(self, directory, port_ref):
        self.directory = directory
        self.port_ref = port_ref
        self.connections = self.concurrent = self.peak = 0

    def _write(self):
        path = os.path.join(self.directory, "stats.%d" % self.port_ref[0])
        with open(path + ".tmp", "w") as f:
            f.write("connections %d\nconcurrent %d\npeak %d\n"
                    % (self.connections, self.concurrent, self.peak))
        os.rename(path + ".tmp", path)

    def opened(self):
        with Sink.lock:
            self.connections += 1
            self.concurrent += 1
            self.peak = max(self.peak, self.concurrent)
            self._write()
            return self.connections

    def closed(self):
        with Sink.lock:
            self.concurrent -= 1
            self._write()


class CountingSMTP(SMTP):
    """aiosmtpd's SMTP, counting connections (STARTTLS calls
    connection_made a second time: that is not a new connection)."""

    def __init__(self, *a, stats=None, **kw):
        super().__init__(*a, **kw)
        self._stats = stats
        self.conn_no = 0
        self._open = False

    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first and not self._open:
            self._open = True
            self.conn_no = self._stats.opened()

    def connection_lost(self, error):
        if self._open:
            self._open = False
            self._stats.closed()
        super().connection_lost(error)


class CountingController(Controller):
    def __init__(self, handler, stats, **kw):
        self._stats = stats
        super().__init__(handler, **kw)

    def factory(self):
        return CountingSMTP(self.handler, stats=self._stats, **self.SMTP_kwargs)


class Sink:
    """Records messages; refuses some recipients."""

    counter = 0
    lock = threading.Lock()
    tempfailed_once = set()

    def __init__(self, directory, port_ref, pipelining=True, no8bit=False, slow=False):
        self.directory = directory
        self.port_ref = port_ref
        self.pipelining = pipelining
        self.no8bit = no8bit
        self.slow = slow

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        out = [r for r in responses if not (self.no8bit and r.endswith("8BITMIME"))]
        if self.pipelining:
            out.insert(1, "250-PIPELINING")
        return out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local == "tempfail":
            return "451 4.3.0 Try again later"
        if local == "reject":
            return "550 5.1.1 No such user"
        if local.startswith("tempfail1"):
            with Sink.lock:
                first = address.lower() not in Sink.tempfailed_once
                Sink.tempfailed_once.add(address.lower())
            if first:
                return "451 4.3.0 Try again later (once)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.slow:
            await asyncio.sleep(0.3)
        with Sink.lock:
            Sink.counter += 1
            n = Sink.counter
        base = os.path.join(self.directory, str(n))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        lines = ["port %d" % self.port_ref[0], "tls %d" % (1 if session.ssl else 0),
                 "from %s" % envelope.mail_from]
        lines += ["rcpt %s" % r for r in envelope.rcpt_tos]
        lines += ["opt %s" % o for o in envelope.mail_options]
        lines.append("conn %d" % getattr(server, "conn_no", 0))
        with open(base + ".env.tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".env.tmp", base + ".env")
        return "250 2.0.0 Ok: queued as sink%d" % n


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(d):
    """A test CA and a leaf for mx1.mx.test signed by it (EC P-256: fast)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, cwd=d,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=bulwark test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=mx1.mx.test")
    with open(os.path.join(d, "leaf.ext"), "w") as f:
        f.write("subjectAltName=DNS:mx1.mx.test\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", help="where messages go (default: a new temporary directory)")
    args = ap.parse_args()
    d = args.dir or tempfile.mkdtemp(prefix="bulwark-sink-")
    own = args.dir is None
    try:
        make_certs(d)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(os.path.join(d, "leaf.pem"), os.path.join(d, "leaf.key"))
        # Offers STARTTLS, then fails every handshake: no cipher in common with
        # a TLS 1.2+ client that has no PSK.
        badtls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        badtls.load_cert_chain(os.path.join(d, "leaf.pem"), os.path.join(d, "leaf.key"))
        badtls.maximum_version = ssl.TLSVersion.TLSv1_2
        badtls.set_ciphers("PSK")

        dns = DNSServer(Resolver(), port=0, address="127.0.0.1",
                        logger=DNSLogger(prefix=False, logf=lambda s: None))
        dns.start_thread()
        ports = {"dns": dns.server.server_address[1]}

        # aiosmtpd's Controller offers SMTPUTF8 unless told not to.
        variants = {
            "plain": dict(enable_SMTPUTF8=False),
            "tls": dict(tls_context=tls, require_starttls=True, enable_SMTPUTF8=False),
            "small": dict(data_size_limit=2000, enable_SMTPUTF8=False),
            "no8bit": dict(sink=dict(no8bit=True, pipelining=False), enable_SMTPUTF8=False),
            "utf8": dict(enable_SMTPUTF8=True),
            "slow": dict(sink=dict(slow=True), enable_SMTPUTF8=False),
            "starttls": dict(tls_context=tls, enable_SMTPUTF8=False),
            "badtls": dict(tls_context=badtls, enable_SMTPUTF8=False),
        }
        controllers = []
        for name, kw in variants.items():
            port_ref = [0]
            sink = Sink(d, port_ref, **kw.pop("sink", {}))
            port = free_port()
            port_ref[0] = port
            c = CountingController(sink, Stats(d, port_ref), hostname="127.0.0.1", port=port,
                                   server_hostname="%s.sink.test" % name, decode_data=False,
                                   **kw)
            c.start()
            controllers.append(c)
            ports[name] = port
        print("READY dir=%s ca=%s %s" % (d, os.path.join(d, "ca.pem"),
              " ".join("%s=%d" % kv for kv in ports.items())), flush=True)
        sys.stdin.read()   # until the test closes our stdin (or exits)
        for c in controllers:
            c.stop()
        dns.stop()
    finally:
        if own:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
