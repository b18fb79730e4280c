"""
imap_wire.py: a small byte-exact IMAP client for the conformance tests and
the benchmark, and a parser that turns response data into Python values.

  c = Client(port); c.login(user, password); c.select("INBOX")
  r = c.cmd(b"UID FETCH 1:* (ENVELOPE)")      # -> Response
  r.status ("OK"/"NO"/"BAD"), r.untagged [bytes lines with literals inlined],
  r.fetch() -> {seq: {b"ENVELOPE": [...], ...}}, r.search() -> [ints]

Values: atoms are bytes (NIL -> None), numbers int, quoted strings and
literals bytes (as a Literal subclass so the two spellings compare equal),
parenthesized lists Python lists.
"""

import re
import socket
import time


class Literal(bytes):
    """A string that came as a literal; equal to the same quoted string."""


class Str(bytes):
    """A quoted string."""


class Atom(bytes):
    """An atom other than NIL and numbers."""


class ImapError(AssertionError):
    pass


class Response:
    def __init__(self, tag, status, text, untagged):
        self.tag = tag
        self.status = status            # "OK" / "NO" / "BAD"
        self.text = text                # the tagged line after the status
        self.untagged = untagged        # [bytes] of each untagged response (literals inline)

    def __repr__(self):
        return f"Response({self.status} {self.text!r}, {len(self.untagged)} untagged)"

    def fetch(self):
        """{seq: {ITEM (upper bytes): value}} from the untagged FETCH replies."""
        out = {}
        for u in self.untagged:
            m = re.match(rb"\* (\d+) FETCH ", u)
            if not m:
                continue
            vals = parse(u[m.end():])
            assert len(vals) == 1 and isinstance(vals[0], list), u[:200]
            items = vals[0]
            d = out.setdefault(int(m.group(1)), {})
            for i in range(0, len(items) - 1, 2):
                d[bytes(items[i]).upper()] = items[i + 1]
        return out

    def search(self):
        for u in self.untagged:
            if u.startswith(b"* SEARCH"):
                # RFC 7162 3.1.5: "(MODSEQ n)" may follow the numbers
                return sorted(int(x) for x in u[8:].split(b"(")[0].split())
        return None

    def lines(self, prefix):
        return [u for u in self.untagged if u.startswith(prefix)]


def parse(data):
    """Parse a sequence of IMAP values (with literals inlined as {n}\\r\\nBYTES)."""
    pos = 0
    n = len(data)

    def value():
        nonlocal pos
        c = data[pos:pos + 1]
        if c == b"(":
            pos += 1
            out = []
            while True:
                while pos < n and data[pos:pos + 1] == b" ":
                    pos += 1
                if pos >= n:
                    raise ValueError("unterminated list")
                if data[pos:pos + 1] == b")":
                    pos += 1
                    return out
                out.append(value())
        if c == b'"':
            pos += 1
            buf = bytearray()
            while True:
                ch = data[pos:pos + 1]
                if ch == b"":
                    raise ValueError("unterminated quoted string")
                if ch == b"\\":
                    buf += data[pos + 1:pos + 2]
                    pos += 2
                    continue
                pos += 1
                if ch == b'"':
                    return Str(bytes(buf))
                buf += ch
        if c == b"{":
            m = re.compile(rb"\{(\d+)\+?\}\r\n").match(data, pos)
            if not m:
                raise ValueError(f"bad literal at {data[pos:pos + 20]!r}")
            size = int(m.group(1))
            pos = m.end() + size
            return Literal(data[m.end():pos])
        # atom, number, NIL, or an item name with a section: BODY[...]<...>
        m = re.compile(rb"[^ ()\[\]{\"\r\n]+").match(data, pos)
        if not m:
            raise ValueError(f"unexpected {data[pos:pos + 20]!r}")
        pos = m.end()
        tok = m.group(0)
        if data[pos:pos + 1] == b"[":   # BODY[HEADER.FIELDS (A B)]<0>
            depth = 0
            start = m.start()
            while pos < n:
                ch = data[pos:pos + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                    if depth == 0:
                        pos += 1
                        break
                pos += 1
            m2 = re.compile(rb"<\d+>").match(data, pos)
            if m2:
                pos = m2.end()
            return Atom(data[start:pos])
        if tok.upper() == b"NIL":
            return None
        if tok.isdigit():
            return int(tok)
        return Atom(tok)

    out = []
    while pos < n:
        if data[pos:pos + 1] in (b" ", b"\r", b"\n"):
            pos += 1
            continue
        out.append(value())
    return out


def quote(s):
    if isinstance(s, str):
        s = s.encode()
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class Client:
    """One IMAP connection; commands are bytes with {n} literals passed as
    separate args: c.cmd(b"SEARCH CHARSET UTF-8 SUBJECT", Lit(b"...")).
    Synchronizing literals (waits for the continuation)."""

    def __init__(self, port, host="127.0.0.1", timeout=30.0, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.n = 0
        self.greeting = self.read_line()
        if not self.greeting.startswith(b"* OK"):
            raise ImapError(f"greeting: {self.greeting!r}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.cmd(b"LOGOUT", timeout=5)
        except Exception:
            pass
        self.close()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"IMAP read timed out (buffer {self.buf[:200]!r})")
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ImapError(f"connection closed (buffer {self.buf[:200]!r})")
        self.buf += chunk

    def read_line(self, timeout=None):
        """One response line with its literals inlined (the CRLF stripped)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill(deadline)
            line, self.buf = self.buf.split(b"\r\n", 1)
            m = re.search(rb"\{(\d+)\+?\}$", line)
            if not m:
                return out + line
            size = int(m.group(1))
            while len(self.buf) < size:
                self._fill(deadline)
            out += line + b"\r\n" + self.buf[:size]
            self.buf = self.buf[size:]

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, *parts, timeout=None, check=False):
        """Send one command; parts are bytes/str joined with spaces, a Lit
        part is sent as a literal. Returns the Response."""
        self.n += 1
        tag = f"t{self.n}".encode()
        line = tag
        untagged = []
        for p in parts:
            if isinstance(p, str):
                p = p.encode()
            if isinstance(p, Lit):
                self.send(line + b" {%d}\r\n" % len(p))
                while True:
                    got = self.read_line(timeout)
                    if got.startswith(b"+"):
                        break
                    if got.startswith(tag + b" "):
                        st = got.split(b" ", 2)
                        return Response(tag, st[1].decode(), got, untagged)
                    untagged.append(got)
                self.send(bytes(p))
                line = b""
            else:
                line += b" " + p
        self.send(line + b"\r\n")
        while True:
            line = self.read_line(timeout)
            if line.startswith(tag + b" "):
                st = line.split(b" ", 2)
                r = Response(tag, st[1].decode(), st[2] if len(st) > 2 else b"", untagged)
                if check and r.status != "OK":
                    raise ImapError(f"{parts!r}: {line!r}")
                return r
            untagged.append(line)

    def login(self, user, password):
        return self.cmd(b"LOGIN", quote(user), quote(password), check=True)

    def select(self, mailbox="INBOX", readonly=False):
        return self.cmd(b"EXAMINE" if readonly else b"SELECT", quote(mailbox), check=True)


class Lit(bytes):
    """A command argument sent as a synchronizing literal."""
