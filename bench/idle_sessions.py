"""Hold many idle SMTP sessions open from one Python process.

Each session: connect (from 127.0.0.1 .. 127.0.0.<sources>, so that no source
address runs short of ephemeral ports), read the 220 greeting, send EHLO, read
the whole 250 reply, then stay silent. Non-blocking sockets and one selector;
at most `ramp` sessions are between connect and EHLO reply at any time, so the
server's listen queue is never flooded.
"""

import errno
import re
import selectors
import socket
import time

from benchlib import log, nb_connect, nb_event

FINAL_LINE = re.compile(rb"(?:^|\r\n)(\d{3}) [^\r\n]*\r\n$")

CONNECTING, GREETING, EHLO, IDLE, FAILED = range(5)


class _Session:
    __slots__ = ("sock", "state", "buf", "started")

    def __init__(self, sock):
        self.sock = sock
        self.state = CONNECTING
        self.buf = b""
        self.started = time.monotonic()


class IdleSessions:
    def __init__(self, host, port, count, sources=50, ramp=200, helo="idle.bench.example"):
        self.host, self.port, self.count = host, port, count
        self.sources = [f"127.0.0.{i}" for i in range(1, sources + 1)]
        self.ramp, self.helo = ramp, helo
        self.sel = selectors.DefaultSelector()
        self.sessions = []
        self.opened = 0
        self.greeted = 0
        self.ehlo_ok = 0
        self.dropped = 0      # closed by the server after the EHLO reply
        self.failures = {}    # reason -> count
        self.in_flight = 0

    # -- bookkeeping ---------------------------------------------------------
    def _fail(self, s, reason):
        if s.state in (CONNECTING, GREETING, EHLO):
            self.in_flight -= 1
        if s.state == IDLE:
            self.dropped += 1
        s.state = FAILED
        self.failures[reason] = self.failures.get(reason, 0) + 1
        try:
            self.sel.unregister(s.sock)
        except (KeyError, ValueError):
            pass
        s.sock.close()

    def _open_one(self):
        src = self.sources[self.opened % len(self.sources)]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s = _Session(sock)
        self.sessions.append(s)
        self.opened += 1
        self.in_flight += 1
        why = nb_connect(sock, src, self.host, self.port)
        if why:
            self._fail(s, why)
            return
        self.sel.register(sock, selectors.EVENT_WRITE, s)

    def _on_event(self, s, mask):
        data = nb_event(s, self.sel, self._fail, 4096, CONNECTING, GREETING)
        if data is None:
            return
        if not data:
            self._fail(s, {GREETING: "closed before greeting", EHLO: "closed after EHLO",
                           IDLE: "closed while idle"}[s.state])
            return
        if s.state == IDLE:
            # The server spoke on a silent session: a timeout or shutdown notice.
            s.buf += data
            if FINAL_LINE.search(s.buf):
                self._fail(s, f"server spoke while idle: {s.buf[:60]!r}")
            return
        s.buf += data
        m = FINAL_LINE.search(s.buf)
        if not m:
            return
        code = m.group(1)
        if s.state == GREETING:
            if code != b"220":
                self._fail(s, f"greeting {code.decode()}")
                return
            self.greeted += 1
            s.buf = b""
            s.state = EHLO
            try:
                s.sock.send(f"EHLO {self.helo}\r\n".encode())
            except OSError as e:
                self._fail(s, f"send: {errno.errorcode.get(e.errno, e.errno)}")
        elif s.state == EHLO:
            if code != b"250":
                self._fail(s, f"EHLO reply {code.decode()}")
                return
            self.ehlo_ok += 1
            s.buf = b""
            s.state = IDLE
            self.in_flight -= 1

    def _poll(self, timeout):
        for key, mask in self.sel.select(timeout):
            self._on_event(key.data, mask)

    # -- public --------------------------------------------------------------
    def open_all(self, timeout=180, stall=30):
        """Open COUNT sessions; returns when all are idle or failed, or at the deadline.

        A session that has not got its EHLO reply `stall` seconds after connect
        is counted as failed.
        """
        t0 = time.monotonic()
        deadline = t0 + timeout
        next_report = t0 + 5
        next_stall_check = t0 + 1
        while time.monotonic() < deadline:
            while self.opened < self.count and self.in_flight < self.ramp:
                self._open_one()
            if self.opened >= self.count and self.in_flight == 0:
                break
            self._poll(0.2)
            now = time.monotonic()
            if now > next_stall_check:
                next_stall_check = now + 1
                for s in self.sessions:
                    if s.state in (CONNECTING, GREETING, EHLO) and now - s.started > stall:
                        self._fail(s, f"no {('connect', 'greeting', 'EHLO reply')[s.state]} "
                                      f"within {stall}s")
            if now > next_report:
                log(f"idle: {self.opened} opened, {self.greeted} greeted, {self.ehlo_ok} idle, "
                    f"{sum(self.failures.values())} failed")
                next_report = now + 5
        for s in self.sessions:  # deadline hit: whatever is not idle has failed
            if s.state in (CONNECTING, GREETING, EHLO):
                self._fail(s, "open_all deadline")
        return time.monotonic() - t0

    def hold(self, seconds):
        """Stay silent for SECONDS, noticing any session the server closes."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._poll(min(left, 0.5))

    def idle_count(self):
        return sum(1 for s in self.sessions if s.state == IDLE)

    def close(self):
        for s in self.sessions:
            if s.state != FAILED:
                try:
                    self.sel.unregister(s.sock)
                except (KeyError, ValueError):
                    pass
                s.sock.close()
                s.state = FAILED
        self.sel.close()
