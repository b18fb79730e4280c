"""
bulwark_helpers.py: what the integration tests share, kept out of conftest so
it can be imported by name: the daemon harness (config, start, readiness,
stop, logs), bulwarkctl, Maildir and spool inspection, and SMTP clients (an
smtplib wrapper and a raw socket client that shows every byte).

Loopback only. The untrusted internet client binds its source to 127.0.0.9
(and 127.0.0.10 as a second stranger); the trusted client is 127.0.0.1, the
only address in the test configs' mynetworks.
"""

import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / os.environ.get("BULWARK_BUILD", "build-asan")
BULWARKD = BUILD / "bulwarkd"
BULWARKCTL = BUILD / "bulwarkctl"
DEFAULT_CONFIG = REPO / "etc" / "bulwark.yaml"

HOSTNAME = "mail.example.test"
DOMAINS = ["example.test", "example.org"]
SERVER_IP = "127.0.0.1"
TRUSTED = "127.0.0.1"       # in mynetworks
UNTRUSTED = "127.0.0.9"     # a stranger on the internet
UNTRUSTED2 = "127.0.0.10"   # another stranger
CLIENT_HELO = "client.example.net"

PASSWORD = "Correct-Horse-Battery-9"
USERS = ["alice@example.test", "bob@example.test", "carol@example.org"]
ALIASES = [("team@example.test", "alice@example.test"),
           ("team@example.test", "bob@example.test")]

READY_TIMEOUT = 20.0
DELIVERY_TIMEOUT = 15.0

# Lines in a daemon log that mean a sanitizer found a bug.
SANITIZER_RE = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer|ThreadSanitizer")

# Every daemon started and not yet reaped, so a failing test can show logs.
LIVE_DAEMONS = []


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def token():
    """A unique marker to find one message among all the others."""
    return "tok" + uuid.uuid4().hex[:20]


# ---------------------------------------------------------------- config


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bind port 0, then release)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((SERVER_IP, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """A small YAML emitter for our config dicts (block maps, flow lists)."""
    pad = "  " * indent
    out = []
    for key, value in obj.items():
        if isinstance(value, dict):
            if value:
                out.append(f"{pad}{key}:")
                out.append(to_yaml(value, indent + 1))
            else:
                out.append(f"{pad}{key}: {{}}")
        elif isinstance(value, (list, tuple)):
            out.append(f"{pad}{key}: [" + ", ".join(yaml_scalar(x) for x in value) + "]")
        else:
            out.append(f"{pad}{key}: {yaml_scalar(value)}")
    return "\n".join(out)


def deep_merge(base, over):
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# Loopback is never banned in tests that do not ask for bans (see Daemon).
NO_BAN_OVERRIDES = {"intrusion_prevention": {"ignoreip": ["127.0.0.0/8"]}}


def base_config(data_dir, ports):
    """The test config: loopback, free ports, mynetworks 127.0.0.1/32 only,
    no greet pause (tests that need one set it), nothing leaves the box
    (smarthost and resolver point at a closed loopback port)."""
    smtp, submission, submissions, dead, imap, imaps = ports
    return {
        "hostname": HOSTNAME,
        "domains": list(DOMAINS),
        "data_dir": str(data_dir),
        "user": None,
        "log_level": "info",
        "listen": {
            "smtp": [f"{SERVER_IP}:{smtp}"],
            "submission": [f"{SERVER_IP}:{submission}"],
            "submissions": [f"{SERVER_IP}:{submissions}"],
            "imap": [f"{SERVER_IP}:{imap}"],
            "imaps": [f"{SERVER_IP}:{imaps}"],
            "http": [],
        },
        "tls": {"cert": None, "key": None},
        "mynetworks": ["127.0.0.1/32"],
        "allow_nonlocal_mynetworks": False,
        "outbound": {
            "smarthost": f"{SERVER_IP}:{dead}",
            "dns_servers": [f"{SERVER_IP}:{dead}"],
        },
        "smtp": {
            "greet_pause_ms": 0,
            "shutdown_timeout": 3,
        },
    }


# ---------------------------------------------------------------- processes


class DaemonError(AssertionError):
    pass


def run(cmd, input=None, timeout=60, cwd=None):
    """Run a command, return CompletedProcess with text stdout/stderr."""
    return subprocess.run([str(c) for c in cmd], input=input, capture_output=True,
                          text=True, errors="replace", timeout=timeout,
                          cwd=cwd, env=sanitizer_env())


def output_of(cp):
    return (cp.stdout or "") + (cp.stderr or "")


class Daemon:
    """One bulwarkd on its own data_dir and free ports."""

    def __init__(self, workdir, overrides=None, name="bulwarkd"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.data_dir = self.workdir / "data"
        self.ports = free_ports(6)
        overrides = overrides or {}
        if "intrusion_prevention" not in overrides:
            # Tests that do not exercise bans must not be banned by them: the
            # untrusted 127.0.0.9 trips relay/harvest strikes on purpose.
            overrides = deep_merge(overrides, NO_BAN_OVERRIDES)
        self.config = deep_merge(base_config(self.data_dir, self.ports), overrides)
        self.config_path = self.workdir / "bulwark.yaml"
        self.config_path.write_text(to_yaml(self.config) + "\n")
        self.log_path = self.workdir / "bulwarkd.log"
        self.proc = None
        self.reaped = True
        self.exits = []   # return codes of earlier runs

    # ports
    @property
    def smtp_port(self):
        return self.ports[0]

    @property
    def submission_port(self):
        return self.ports[1]

    @property
    def submissions_port(self):
        return self.ports[2]

    @property
    def imap_port(self):
        return self.ports[4]

    @property
    def imaps_port(self):
        return self.ports[5]

    @property
    def shutdown_timeout(self):
        return int(self.config.get("smtp", {}).get("shutdown_timeout", 10))

    # lifecycle
    def start(self, wait=True):
        assert BULWARKD.exists(), f"{BULWARKD} not built (set BULWARK_BUILD)"
        with open(self.log_path, "ab") as log:
            log.write(f"---- test harness: starting {BULWARKD} -c {self.config_path}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(BULWARKD), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=str(self.workdir), env=sanitizer_env())
        self.reaped = False
        if self not in LIVE_DAEMONS:
            LIVE_DAEMONS.append(self)
        if wait:
            self.wait_ready()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Poll-connect the smtp port (as the trusted client) until the 220."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError(f"bulwarkd exited with {self.proc.returncode} before "
                                  f"it was ready\n{self.log_tail()}")
            try:
                with socket.create_connection((SERVER_IP, self.smtp_port), timeout=2,
                                              source_address=(TRUSTED, 0)) as s:
                    data = b""
                    while not re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n", data):
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if re.search(rb"(^|\r\n)220 ", data):
                        try:
                            s.sendall(b"QUIT\r\n")
                            s.recv(4096)
                        except OSError:
                            pass
                        return
                    last = data
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise DaemonError(f"bulwarkd not ready after {timeout}s (last: {last!r})\n"
                          f"{self.log_tail()}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=None):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        self.reaped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout or self.shutdown_timeout + 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.exits.append(None)
                return None
        self.exits.append(self.proc.returncode)
        return self.proc.returncode

    def kill9(self):
        self.reaped = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.exits.append("SIGKILL")

    def restart(self):
        self.start(wait=True)

    # logs
    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        lines = self.log_text().splitlines()
        return f"---- last {min(n, len(lines))} lines of {self.log_path}:\n" + "\n".join(lines[-n:])

    def sanitizer_reports(self):
        return [l for l in self.log_text().splitlines() if SANITIZER_RE.search(l)]

    # bulwarkctl
    def ctl(self, *args, input=None, timeout=60):
        return run([BULWARKCTL, "-c", self.config_path, *args], input=input,
                   timeout=timeout, cwd=self.workdir)

    def add_user(self, address, password=PASSWORD, confirmed=True):
        args = ["user", "add", address] + (["--confirmed"] if confirmed else [])
        cp = self.ctl(*args, input=password + "\n")
        assert cp.returncode == 0, f"bulwarkctl user add {address} failed: {output_of(cp)}"
        return cp

    def add_alias(self, source, target):
        cp = self.ctl("alias", "add", source, target)
        assert cp.returncode == 0, f"bulwarkctl alias add {source} {target}: {output_of(cp)}"
        return cp

    def add_standard_users(self):
        for u in USERS:
            self.add_user(u)
        for src, dst in ALIASES:
            self.add_alias(src, dst)

    # storage
    def maildir(self, address):
        local, domain = address.rsplit("@", 1)
        return self.data_dir / "mail" / domain.lower() / local

    def read_maildir(self, address):
        """[(path, raw bytes)] of the delivered messages (new/ and cur/)."""
        md = self.maildir(address)
        out = []
        for sub in ("new", "cur"):
            d = md / sub
            if not d.is_dir():
                continue
            for p in sorted(d.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    try:
                        out.append((p, p.read_bytes()))
                    except FileNotFoundError:
                        pass  # moved new/ -> cur/ under us
        return out

    def all_delivered(self):
        """[(path, raw)] of every file in every new/ and cur/ of every Maildir."""
        out = []
        root = self.data_dir / "mail"
        if not root.is_dir():
            return out
        for sub in ("new", "cur"):
            for p in sorted(root.glob(f"*/*/{sub}/*")):
                if p.is_file() and not p.name.startswith("."):
                    try:
                        out.append((p, p.read_bytes()))
                    except FileNotFoundError:
                        pass
        return out

    def find(self, address, tok):
        return [raw for _, raw in self.read_maildir(address) if tok.encode() in raw]

    def find_anywhere(self, tok):
        return [(p, raw) for p, raw in self.all_delivered() if tok.encode() in raw]

    def wait_for(self, address, tok, count=1, timeout=DELIVERY_TIMEOUT):
        """Poll address's Maildir until count messages hold tok; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(address, tok)
            if len(found) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(found) >= count, (
            f"{count} message(s) with {tok} not in {self.maildir(address)} after {timeout}s "
            f"(found {len(found)}; spool files: {len(self.queue_files())})\n{self.log_tail()}")
        return found

    def queue_dir(self):
        return self.data_dir / "queue"

    def queue_files(self):
        """Non-hidden regular files under data_dir/queue: queued messages."""
        q = self.queue_dir()
        if not q.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(q):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for f in filenames:
                p = Path(dirpath) / f
                if not f.startswith(".") and p.is_file():
                    out.append(p)
        return out

    def queue_contains(self, tok):
        """Any file under data_dir/queue (hidden or not) holding tok."""
        q = self.queue_dir()
        if not q.is_dir():
            return []
        hits = []
        for dirpath, _, filenames in os.walk(q):
            for f in filenames:
                p = Path(dirpath) / f
                try:
                    if tok.encode() in p.read_bytes():
                        hits.append(p)
                except (FileNotFoundError, IsADirectoryError, PermissionError):
                    pass
        return hits

    def wait_queue_empty(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            files = self.queue_files()
            if not files or time.monotonic() > deadline:
                return files
            time.sleep(0.05)


def assert_nothing_queued_or_delivered(d, tok, settle=0.3):
    """After a refused transaction: the token is in no spool file and no
    Maildir, and the spool holds no message at all."""
    time.sleep(settle)
    assert not d.queue_contains(tok), f"{tok} reached the spool: {d.queue_contains(tok)}"
    assert not d.find_anywhere(tok), f"{tok} was delivered: {[p for p, _ in d.find_anywhere(tok)]}"
    left = d.wait_queue_empty(timeout=5)
    assert not left, f"spool not empty: {left}"


# ---------------------------------------------------------------- messages


def make_message(tok, sender="sender@remote.example", to="alice@example.test",
                 subject=None, body=None, extra_headers=()):
    """A small RFC 5322 message with CRLF line ends, carrying tok in the
    Subject, the Message-ID and an end-marker line."""
    lines = [
        f"From: <{sender}>",
        f"To: <{to}>",
        f"Subject: {subject or 'test ' + tok}",
        f"Message-ID: <{tok}@{CLIENT_HELO}>",
        "Date: Thu, 27 Nov 2025 08:00:00 +0000",
        *extra_headers,
        "",
    ]
    if body is None:
        body = [f"Hello, this is {tok}.", "Second line.", f"END-OF-MESSAGE {tok}"]
    return ("\r\n".join(lines + list(body)) + "\r\n").encode()


def split_message(raw):
    """(header bytes, body bytes) of a delivered file, LF or CRLF."""
    for sep in (b"\n\n", b"\r\n\r\n"):
        i = raw.find(sep)
        if i >= 0:
            return raw[:i], raw[i + len(sep):]
    return raw, b""


def to_lf(data):
    return data.replace(b"\r\n", b"\n")


def headers_of(raw):
    """Unfolded header lines [(name lower, value)] in order."""
    head, _ = split_message(raw)
    lines = to_lf(head).decode("utf-8", "replace").split("\n")
    out = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        elif ":" in line:
            name, value = line.split(":", 1)
            out.append((name.strip().lower(), value.strip()))
    return out


# ---------------------------------------------------------------- SMTP clients

ENHANCED_RE = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)")
QUEUED_RE = re.compile(r"queued as (\S+)")


class Reply:
    def __init__(self, lines):
        self.raw_lines = lines            # ["250-foo", "250 bar"]
        self.code = int(lines[-1][:3])
        self.codes = [l[:3] for l in lines]
        self.lines = [l[4:] for l in lines]
        m = ENHANCED_RE.match(self.lines[0])
        self.enhanced = m.group(1) if m else None
        self.text = "\n".join(self.raw_lines)

    def queue_id(self):
        m = QUEUED_RE.search(self.text)
        return m.group(1) if m else None

    def keywords(self):
        """EHLO keywords (upper-cased first words of lines after the first)."""
        return [l.split()[0].upper() for l in self.lines[1:] if l.split()]

    def __repr__(self):
        return f"Reply({self.text!r})"


def expect(reply, code, enhanced=None):
    """Assert the reply's code (int or tuple of ints) and enhanced code."""
    codes = code if isinstance(code, (tuple, list, set)) else (code,)
    assert reply.code in codes, f"expected {code} {enhanced or ''}, got {reply.text!r}"
    if enhanced is not None:
        encs = enhanced if isinstance(enhanced, (tuple, list, set)) else (enhanced,)
        assert reply.enhanced in encs, f"expected {code} {enhanced}, got {reply.text!r}"
    return reply


class Closed(Exception):
    pass


def unverified_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RawClient:
    """A byte-exact SMTP client on a plain socket (optionally implicit TLS)."""

    def __init__(self, port, source=UNTRUSTED, timeout=10.0, tls=False):
        self.timeout = timeout
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect((SERVER_IP, port))
        if tls:
            s = unverified_context().wrap_socket(s)
        self.sock = s
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def abort(self):
        """Vanish with a TCP RST."""
        import struct
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send_slowly(self, data, delay=0.005):
        if isinstance(data, str):
            data = data.encode()
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            time.sleep(delay)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        finally:
            self.sock.settimeout(self.timeout)
        if not chunk:
            self.eof = True
            raise Closed(f"connection closed (unread: {self.buf!r})")
        self.buf += chunk

    def read_line(self, timeout=None):
        """One CRLF-terminated line, without the CRLF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete line within {timeout or self.timeout}s "
                                   f"(buffer: {self.buf[:300]!r})")
            try:
                self._fill(left)
            except socket.timeout:
                continue
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_reply(self, timeout=None):
        lines = []
        while True:
            line = self.read_line(timeout)
            assert re.match(r"^\d{3}[ -]", line) or re.match(r"^\d{3}$", line), \
                f"malformed reply line {line!r} (after {lines})"
            if len(line) == 3:
                line += " "
            lines.append(line)
            if line[3] == " ":
                return Reply(lines)

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def read_replies(self, n, timeout=None):
        return [self.read_reply(timeout) for _ in range(n)]

    def read_all_until_closed(self, timeout=10.0):
        """Every reply up to the server's close (or timeout)."""
        replies = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                replies.append(self.read_reply(timeout=max(0.05, deadline - time.monotonic())))
        except (Closed, TimeoutError, ConnectionResetError):
            pass
        return replies

    def read_lines_until_closed(self, timeout=10.0):
        lines = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                lines.append(self.read_line(timeout=max(0.05, deadline - time.monotonic())))
        except (Closed, TimeoutError, ConnectionResetError):
            pass
        return lines

    def is_closed(self, timeout=5.0):
        """True if the server closes the connection within timeout
        (any bytes still arriving are drained first)."""
        if self.eof:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._fill(max(0.05, deadline - time.monotonic()))
            except Closed:
                return True
            except socket.timeout:
                return False
            except OSError:
                return True
        return False

    # conveniences
    def greeting(self, timeout=None):
        return expect(self.read_reply(timeout), 220)

    def ehlo(self, name=CLIENT_HELO):
        return expect(self.cmd(f"EHLO {name}"), 250)

    def start_transaction(self, sender="sender@remote.example", rcpts=("alice@example.test",)):
        expect(self.cmd(f"MAIL FROM:<{sender}>"), 250)
        for r in rcpts:
            expect(self.cmd(f"RCPT TO:<{r}>"), 250)

    def data(self, message_bytes):
        """DATA, then the message (dot-stuffed here), then CRLF.CRLF."""
        expect(self.cmd("DATA"), 354)
        stuffed = re.sub(rb"(?m)^\.", b"..", message_bytes)
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        self.send(stuffed + b".\r\n")
        return self.read_reply()

    def quit(self):
        """QUIT, expect 221, and wait for the server to close its side.
        (Waiting keeps the per-IP connection count of rapid sequential
        tests independent of how fast the server reaps closed sessions;
        test_limits.py::test_sequential_sessions_never_refused checks that
        separately.)"""
        try:
            r = self.cmd("QUIT")
            expect(r, 221)
            self.is_closed(timeout=5)
        finally:
            self.close()


def session(port, source=UNTRUSTED, helo=CLIENT_HELO, timeout=10.0, tls=False):
    """A RawClient that has read the greeting and sent EHLO."""
    c = RawClient(port, source=source, timeout=timeout, tls=tls)
    c.greeting()
    c.ehlo(helo)
    return c


def smtp_client(port, source=UNTRUSTED, helo=CLIENT_HELO, timeout=15, tls=False):
    """smtplib client bound to source (127.0.0.9 = untrusted by default)."""
    if tls:
        return smtplib.SMTP_SSL(SERVER_IP, port, local_hostname=helo, timeout=timeout,
                                source_address=(source, 0), context=unverified_context())
    return smtplib.SMTP(SERVER_IP, port, local_hostname=helo, timeout=timeout,
                        source_address=(source, 0))


def send_one(port, tok=None, source=UNTRUSTED, sender="sender@remote.example",
             rcpts=("alice@example.test",), message=None, starttls=False):
    """One complete transaction with smtplib; returns (tok, queue id)."""
    tok = tok or token()
    msg = message if message is not None else make_message(tok, sender=sender, to=rcpts[0])
    with smtp_client(port, source=source) as s:
        s.ehlo()
        if starttls:
            s.starttls(context=unverified_context())
            s.ehlo()
        code, resp = s.mail(sender)
        assert code == 250, (code, resp)
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, (r, code, resp)
        code, resp = s.data(msg)
        assert code == 250, (code, resp)
        assert resp.startswith(b"2.0.0"), resp
        m = QUEUED_RE.search(resp.decode())
        assert m, f"no queue id in {resp!r}"
        return tok, m.group(1)



def sendmail_trusted(d, sender, rcpts, body):
    """smtplib.sendmail from the trusted address to d's SMTP port; returns
    the refused recipients ({} when all were taken)."""
    s = smtplib.SMTP(SERVER_IP, d.smtp_port, local_hostname="client.example.org",
                     source_address=(TRUSTED, 0), timeout=30)
    try:
        refused = s.sendmail(sender, rcpts, body)
    finally:
        s.quit()
    return refused


def assert_serves(d, source=UNTRUSTED, deliver=False):
    """The server still serves a new client normally: a full transaction
    from a fresh connection gets 250 queued (and, if asked, is delivered)."""
    tok, qid = send_one(d.smtp_port, source=source)
    assert qid
    if deliver:
        d.wait_for("alice@example.test", tok)
    return tok


def swaks(*args, timeout=60):
    return run(["/usr/bin/swaks", "--timeout", "15", *args], timeout=timeout)


# ================================================================ authentication issue
# Helpers for test_auth.py, test_confirm.py, test_lockout.py, test_bans.py and
# test_metrics.py: SMTP AUTH, the HTTP side (/confirm, /metrics), bans, the
# database and fail2ban-regex. Appended; nothing above depends on them.

import base64 as _base64
import http.client as _http_client
import sqlite3 as _sqlite3
import urllib.parse as _urllib_parse

UNTRUSTED3 = "127.0.0.11"   # a third stranger
FAIL2BAN_REGEX = "/usr/bin/fail2ban-regex"
AUTH_OK = (235, "2.7.0")
AUTH_BAD = (535, "5.7.8")
AUTH_BAD_TEXT = "535 5.7.8 Authentication credentials invalid"


def wait_until(fn, timeout=5.0, interval=0.05, what="condition"):
    """Poll fn() until it returns something truthy; return it, or raise."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout}s (last: {v!r})")
        time.sleep(interval)


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return _base64.b64encode(data).decode()


def plain_response(user, password, authzid=""):
    """The SASL PLAIN initial response (RFC 4616), base64."""
    return b64(f"{authzid}\0{user}\0{password}")


def starttls(c):
    """STARTTLS on a RawClient that said EHLO; wraps its socket in TLS."""
    expect(c.cmd("STARTTLS"), 220)
    c.sock = unverified_context().wrap_socket(c.sock)
    c.buf = b""
    return c


def sub_session(d, source=UNTRUSTED, implicit=False, timeout=15.0):
    """A RawClient on a submission listener, inside TLS, after EHLO:
    submission + STARTTLS, or submissions (implicit TLS). Returns (client,
    the EHLO reply inside TLS)."""
    if implicit:
        c = RawClient(d.submissions_port, source=source, timeout=timeout, tls=True)
        c.greeting()
        return c, c.ehlo()
    c = RawClient(d.submission_port, source=source, timeout=timeout)
    c.greeting()
    c.ehlo()
    starttls(c)
    return c, c.ehlo()


def auth_plain(c, user, password, authzid=""):
    """AUTH PLAIN with an initial response; the Reply."""
    return c.cmd(f"AUTH PLAIN {plain_response(user, password, authzid)}", timeout=30)


def auth_login(c, user, password):
    """AUTH LOGIN in two steps (Username:, Password:); the final Reply."""
    r = expect(c.cmd("AUTH LOGIN"), 334)
    assert r.lines[0] == "VXNlcm5hbWU6", r.text   # "Username:"
    r = expect(c.cmd(b64(user)), 334)
    assert r.lines[0] == "UGFzc3dvcmQ6", r.text   # "Password:"
    return c.cmd(b64(password), timeout=30)


def try_auth(d, user, password, source=UNTRUSTED, implicit=True, mech="PLAIN"):
    """One AUTH on a fresh TLS submission connection; returns the Reply
    (the session is closed afterwards)."""
    c, _ = sub_session(d, source=source, implicit=implicit)
    try:
        if mech == "PLAIN":
            r = auth_plain(c, user, password)
        else:
            r = auth_login(c, user, password)
        try:
            c.cmd("QUIT", timeout=5)
        except (Closed, TimeoutError, OSError):
            pass
        return r
    finally:
        c.close()


def assert_auth_ok(d, user, password=PASSWORD, source=UNTRUSTED, implicit=True):
    r = try_auth(d, user, password, source=source, implicit=implicit)
    expect(r, 235, "2.7.0")
    assert r.text == "235 2.7.0 Authentication successful", r.text
    return r


def assert_auth_refused(d, user, password=PASSWORD, source=UNTRUSTED, implicit=True):
    r = try_auth(d, user, password, source=source, implicit=implicit)
    assert r.text == AUTH_BAD_TEXT, f"AUTH {user} from {source}: expected {AUTH_BAD_TEXT!r}, got {r.text!r}"
    return r


def authed_session(d, user, password=PASSWORD, source=UNTRUSTED, implicit=False):
    """A TLS submission RawClient logged in as user (235 asserted)."""
    c, _ = sub_session(d, source=source, implicit=implicit)
    expect(auth_plain(c, user, password), 235, "2.7.0")
    return c


def unique_user(d, prefix="u", password=PASSWORD, confirmed=True, contact=None, domain="example.test"):
    """Create a fresh account (its own lockout state) and return its address."""
    address = f"{prefix}{uuid.uuid4().hex[:8]}@{domain}"
    args = ["user", "add", address]
    if contact:
        args += ["--contact", contact]
    if confirmed:
        args.append("--confirmed")
    cp = d.ctl(*args, input=password + "\n")
    assert cp.returncode == 0, f"bulwarkctl {' '.join(args)}: {output_of(cp)}"
    return address


def ctl_ok(d, *args, input=None):
    cp = d.ctl(*args, input=input)
    assert cp.returncode == 0, f"bulwarkctl {' '.join(map(str, args))} exited {cp.returncode}: {output_of(cp)}"
    return cp


def ctl_json(d, *args):
    cp = ctl_ok(d, *args, "--json")
    try:
        return json.loads(cp.stdout)
    except ValueError as e:
        raise AssertionError(f"bulwarkctl {' '.join(args)} --json printed no JSON ({e}): {cp.stdout!r}")


def user_record(d, address):
    for u in ctl_json(d, "user", "list"):
        if u["address"].lower() == address.lower():
            return u
    raise AssertionError(f"{address} not in bulwarkctl user list --json")


def db_path(d):
    return d.data_dir / "bulwark.db"


def db_exec(d, sql, params=()):
    """Run one statement on DATA_DIR/bulwark.db (WAL: the daemon may run)."""
    con = _sqlite3.connect(str(db_path(d)), timeout=10)
    try:
        con.execute("PRAGMA busy_timeout=10000")
        cur = con.execute(sql, params)
        rows = cur.fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def log_lines(d, *needles, since=0):
    """Log lines (from byte offset since) containing every needle."""
    text = d.log_text()[since:]
    return [l for l in text.splitlines() if all(n in l for n in needles)]


def log_mark(d):
    """An offset into the log: pass it as since= to see only later lines."""
    return len(d.log_text())


def wait_log(d, *needles, since=0, timeout=5.0, count=1):
    return wait_until(lambda: (lambda ls: ls if len(ls) >= count else None)(log_lines(d, *needles, since=since)),
                      timeout=timeout, what=f"log line with {needles}")


def fail2ban_ips(logfile, filt="postfix[mode=auth]"):
    """fail2ban-regex LOGFILE FILTER -o ip: the host of every matched line."""
    cp = run([FAIL2BAN_REGEX, "-o", "ip", str(logfile), filt], timeout=120)
    assert cp.returncode == 0, f"fail2ban-regex failed: {output_of(cp)}"
    return [l.strip() for l in cp.stdout.splitlines() if l.strip()]


# ---------------------------------------------------------------- HTTP


def http_overrides(overrides=None):
    """overrides plus listen.http on a free loopback port; returns (port, dict)."""
    port = free_ports(1)[0]
    return port, deep_merge(overrides or {}, {"listen": {"http": [f"{SERVER_IP}:{port}"]}})


class HttpReply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers              # {lower name: value}
        self.body = body
        self.text = body.decode("utf-8", "replace")

    def __repr__(self):
        return f"HttpReply({self.status}, {self.headers}, {self.text[:300]!r})"


def http_request(port, method, path, body=None, source=TRUSTED, headers=None, timeout=15):
    """One HTTP/1.1 request with http.client from source; never raises on 4xx/5xx."""
    conn = _http_client.HTTPConnection(SERVER_IP, port, timeout=timeout, source_address=(source, 0))
    try:
        h = dict(headers or {})
        if isinstance(body, dict):
            body = _urllib_parse.urlencode(body)
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        return HttpReply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def http_get(port, path, source=TRUSTED):
    return http_request(port, "GET", path, source=source)


def http_post_form(port, path, fields, source=TRUSTED):
    return http_request(port, "POST", path, body=dict(fields), source=source)


CONFIRM_LINK_RE = re.compile(r"http://127\.0\.0\.1:(\d+)(/confirm\?token=([0-9a-f]{64}))")


def confirmation_links(d, inbox, account):
    """[(port, path, token)] of confirmation links for account in inbox's Maildir."""
    out = []
    for _, raw in d.read_maildir(inbox):
        text = to_lf(raw).decode("utf-8", "replace")
        # undo quoted-printable soft breaks in case the body is QP
        text = text.replace("=\n", "").replace("=3D", "=")
        if account.lower() not in text.lower():
            continue
        for m in CONFIRM_LINK_RE.finditer(text):
            out.append((int(m.group(1)), m.group(2), m.group(3)))
    return out


def wait_confirmation_link(d, inbox, account, timeout=15.0):
    return wait_until(lambda: confirmation_links(d, inbox, account), timeout=timeout,
                      what=f"confirmation mail for {account} in {inbox}'s Maildir")[-1]


def parse_metrics(text):
    """Prometheus text -> {'name{labels}' or 'name': float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)(?:\s+\d+)?$", line)
        assert m, f"malformed metrics line {line!r}"
        out[m.group(1)] = float(m.group(2))
    return out


def metrics(port, source=TRUSTED):
    r = http_get(port, "/metrics", source=source)
    assert r.status == 200, r
    return parse_metrics(r.text)


def metric(port, key):
    return metrics(port).get(key, 0.0)


def wait_metric(port, key, pred, timeout=5.0):
    """Poll /metrics until pred(value of key) holds; returns the value."""
    last = [None]

    def check():
        last[0] = metric(port, key)
        return pred(last[0])
    try:
        wait_until(check, timeout=timeout, interval=0.1, what=key)
    except AssertionError:
        raise AssertionError(f"{key}: condition not met after {timeout}s; last value {last[0]}")
    return last[0]


# ---------------------------------------------------------------- bans


def dropped_at_accept(port, source, timeout=3.0, connect_timeout=0.3):
    """Connect from source: True when the connection never gets through (the
    kernel's ban filter dropped the SYN: the connect times out after
    connect_timeout, as behind a firewall's DROP) or when the server closes
    (or resets) it without sending a single byte (refused at accept); False
    when it sends anything (a greeting) or keeps the connection open for
    timeout seconds. On loopback a connect that is let through completes in
    microseconds, so a short connect_timeout only tells a drop."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(connect_timeout)
    try:
        s.bind((source, 0))
        try:
            s.connect((SERVER_IP, port))
        except (ConnectionRefusedError, ConnectionResetError):
            return True
        except (socket.timeout, TimeoutError):
            return True   # SYN dropped before accept
        s.settimeout(timeout)
        try:
            data = s.recv(4096)
        except (ConnectionResetError, ConnectionAbortedError):
            return True
        except socket.timeout:
            return False
        return data == b""
    finally:
        s.close()


def greeted(port, source, timeout=5.0, tls=False):
    """True when a new connection from source gets a 220 greeting."""
    try:
        c = RawClient(port, source=source, timeout=timeout, tls=tls)
    except (OSError, ssl.SSLError):
        return False
    try:
        r = c.read_reply(timeout)
        ok = r.code == 220
        try:
            c.cmd("QUIT", timeout=2)
        except Exception:
            pass
        return ok
    except Exception:
        return False
    finally:
        c.close()


def all_ports(d):
    return [("smtp", d.smtp_port), ("submission", d.submission_port),
            ("submissions", d.submissions_port)]


def wait_banned(d, source, timeout=5.0):
    """Poll until connections from source are dropped at accept on every listener."""
    for name, port in all_ports(d):
        wait_until(lambda: dropped_at_accept(port, source), timeout=timeout, interval=0.2,
                   what=f"{source} dropped at accept on {name}")


def wait_served(d, source, timeout=5.0):
    for name, port in all_ports(d):
        wait_until(lambda: greeted(port, source, tls=(name == "submissions")), timeout=timeout,
                   interval=0.2, what=f"{source} greeted on {name}")


def relay_strikes(d, source, n, port=None):
    """n RCPTs to remote domains (554 5.7.1 relay denied) from source on the
    MX listener, in as few sessions as needed (the server may close a session
    once the IP is banned). Returns the replies seen."""
    replies = []
    port = port or d.smtp_port
    sent = 0
    while sent < n:
        try:
            c = session(port, source=source)
        except (Closed, OSError, TimeoutError, AssertionError):
            break   # banned already
        try:
            c.cmd("MAIL FROM:<sender@remote.example>")
            while sent < n:
                r = c.cmd(f"RCPT TO:<user{sent}@remote{sent}.example>")
                replies.append(r)
                sent += 1
                if r.code == 421:
                    break
            try:
                c.cmd("QUIT", timeout=3)
            except Exception:
                pass
        except (Closed, OSError, TimeoutError):
            break
        finally:
            c.close()
    return replies


def ban_list(d):
    return ctl_json(d, "ban", "list")


def ban_entry(d, network):
    for b in ban_list(d):
        if b.get("network") == network:
            return b
    return None


def start_under_memcheck(d, daemon_bin, vglog):
    """Start daemon_bin (a build-vg bulwarkd) on d's config under valgrind
    memcheck: definite and indirect leaks are errors, any error makes the
    exit code 99; the report goes to vglog, the daemon's output to d's log."""
    return subprocess.Popen(
        ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
         "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
         f"--log-file={vglog}", str(daemon_bin), "-c", str(d.config_path)],
        cwd=str(d.workdir), stdout=open(d.log_path, "ab"), stderr=subprocess.STDOUT)


def assert_memcheck_clean(rc, vglog):
    """The memcheck run ended with exit 0, no error and no definite leak."""
    report = vglog.read_text()
    assert rc == 0, report[-4000:]
    assert re.search(r"ERROR SUMMARY: 0 errors", report), report[-4000:]
    assert "definitely lost: 0 bytes" in report or "All heap blocks were freed" in report, report[-4000:]


def start_sink_process(sink_dir):
    """Start sink.py (the outbound sink: DNS and SMTP servers in a separate
    process) writing into sink_dir; return (proc, {key: value} of its READY
    line). Close proc.stdin to stop it."""
    proc = subprocess.Popen(["/usr/bin/python3", str(Path(__file__).parent / "sink.py"),
                             "--dir", str(sink_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("READY"), line
    return proc, dict(kv.split("=", 1) for kv in line.split()[1:])
