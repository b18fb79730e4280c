#!/usr/bin/python3
"""bulwark's IMAP server vs Dovecot, measured in the same run on the same machine.

  make bench                      # builds, then bench_smtp.py, bench_auth.py and this
  bench/bench_imap.py --help

1. The same --messages-message Maildir (generated: plain, multipart/alternative
   and attachment shapes, 1-20 KB, LF line ends as delivery writes them) is
   copied for bulwark and for Dovecot (Debian's dovecot-imapd, its own config
   in the temp dir, see tests/integration/dovecot.py). Both verify the same
   argon2id password hash (the one bulwarkctl stored) at login.
2. A warm-up pass runs every operation once on each server (both build their
   indexes and caches), then --rounds measured rounds alternate between the
   servers; the best time of each operation is reported:
     LOGIN+SELECT         connect, LOGIN, SELECT INBOX, LOGOUT (--logins times)
     FETCH FLAGS          FETCH 1:* (FLAGS UID RFC822.SIZE)
     FETCH ENVELOPE       FETCH 1:* (ENVELOPE)
     UID SEARCH HEADER    UID SEARCH HEADER X-Bench-Group g42
     FETCH 100 BODIES     UID FETCH of 100 spread UIDs (BODY.PEEK[])
   with both times and the ratio Dovecot/bulwark (above 1: bulwark faster).
3. --idle sessions (1000) to bulwark, each logged in, with a 100-message
   folder selected and in IDLE: bulwarkd's RSS (target < 100 MB), then one
   message dropped into the folder and the time until every session got its
   EXISTS. Then the same sessions (DONE, SELECT, IDLE: no new login) on the
   --messages INBOX. The same with --idle-dovecot sessions (100) to Dovecot,
   for its memory per session (PSS of its processes: one imap process per
   session).

Loopback only; every wait is bounded; everything started is stopped on the
way out, also on Ctrl-C or SIGTERM.
"""

import errno
import os
import re
import selectors
import shutil
import socket
import sqlite3
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from benchlib import (BENCH_DOMAIN, BENCH_USER, BenchError, Interrupted, arg_parser,  # noqa: E402
                      catch_signals, exit_status, free_port, ignore_signals, log, make_workdir,
                      nb_connect, nb_event, proc_pss_kb, proc_status_kb, process_tree,
                      raise_nofile, remove_workdir, terminate, wait_for_port)
from bulwark_instance import BENCH_PASSWORD, CONFIG_HEAD, BulwarkInstance  # noqa: E402
import dovecot as DV  # noqa: E402
import imap_corpus as C  # noqa: E402

TARGET_IDLE_MB = 100.0
SMALL_MAILBOX = "Small"        # a Maildir++ folder (.Small) the IDLE sessions select first
SMALL_MESSAGES = 100

CONFIG = """\
# bulwark IMAP benchmark config (written by bench/bench_imap.py)
""" + CONFIG_HEAD + """\
  smtp: [127.0.0.1:{smtp_port}]
  submission: []
  submissions: []
  imap: [127.0.0.1:{imap_port}]
  imaps: []
  http: []

mynetworks: [127.0.0.0/8]

smtp:
  greet_pause_ms: 0

imap:
  max_connections_per_ip: {max_conn}
  max_connections: {max_conn}
  max_sessions_per_account: {max_conn}

intrusion_prevention:
  ignoreip: [127.0.0.0/8]
"""


def parse_args(argv):
    p = arg_parser(__doc__)
    p.add_argument("--messages", type=int, default=10000, help="messages in the Maildir (10000)")
    p.add_argument("--rounds", type=int, default=5, help="measured rounds, best reported (5)")
    p.add_argument("--logins", type=int, default=10, help="LOGIN+SELECT per round (10)")
    p.add_argument("--repeat", type=int, default=3,
                   help="each other operation repeated per round, the best kept (3)")
    p.add_argument("--bodies", type=int, default=100, help="full bodies fetched (100)")
    p.add_argument("--idle", type=int, default=1000, help="IDLE sessions to bulwark (1000)")
    p.add_argument("--idle-dovecot", type=int, default=100,
                   help="IDLE sessions to Dovecot for its memory per session (100)")
    p.add_argument("--idle-hold", type=float, default=5.0, help="seconds the IDLE sessions are held (5)")
    p.add_argument("--only", choices=("both", "bulwark", "dovecot"), default="both")
    p.add_argument("--skip-ops", action="store_true", help="only the IDLE part")
    p.add_argument("--skip-idle", action="store_true", help="only the operations")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                   help="where bulwarkd and bulwarkctl are (build/)")
    p.add_argument("--bulwark-log-level", default="warning")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a target (faster than Dovecot on each, idle RSS < 100 MB) is missed")
    return p.parse_args(argv)


# ---------------------------------------------------------------- servers


class BulwarkImap(BulwarkInstance):
    name = "bulwark"

    def __init__(self, tmp, build_dir, max_conn, log_level):
        super().__init__(tmp, free_port(), build_dir, max_conn=max_conn, log_level=log_level)
        self.smtp_port = free_port()
        self.maildir = os.path.join(self.data_dir, "mail", BENCH_DOMAIN, "user")

    def config_text(self):
        return CONFIG.format(domain=BENCH_DOMAIN, data_dir=self.data_dir,
                             smtp_port=self.smtp_port, imap_port=self.port,
                             max_conn=self.max_conn, log_level=self.log_level)

    def listen_label(self):
        return f"IMAP 127.0.0.1:{self.port}"

    def wait_ready(self):
        wait_for_port("127.0.0.1", self.port, 30, proc=self.proc, greeting=b"* OK",
                      bye=b"a LOGOUT\r\n", failed="gave no IMAP greeting")

    def password_hash(self):
        con = sqlite3.connect(os.path.join(self.data_dir, "bulwark.db"))
        try:
            row = con.execute("SELECT password_hash FROM users WHERE address = ?",
                              (BENCH_USER,)).fetchone()
        finally:
            con.close()
        if not row or not row[0].startswith("$argon2id$"):
            raise BenchError(f"unexpected password hash in bulwark.db: {row!r}")
        return row[0]

    def rss_kb(self):
        return proc_status_kb(self.pid, "VmRSS") or 0

    def stop(self):  # without the base class's "had already exited" line
        if self.proc is None:
            return
        terminate(self.proc, grace=20)
        self.proc = None


class DovecotImap:
    name = "dovecot"

    def __init__(self, password_hash):
        self.dv = DV.Dovecot(password=BENCH_PASSWORD, password_hash=password_hash)
        self.port = self.dv.port
        self.dv.add_user(BENCH_USER)
        self.maildir = str(self.dv.maildir(BENCH_USER))

    def start(self):
        if not DV.installed():
            raise BenchError(f"{DV.DOVECOT} is missing (apt-get install dovecot-imapd; "
                             "BULWARK_DEPS_BENCH=1 scripts/deps.sh does it)")
        log(f"dovecot: starting {DV.DOVECOT} -F -c {self.dv.config_path} (IMAP 127.0.0.1:{self.port})")
        try:
            self.dv.start()
        except AssertionError as e:
            raise BenchError(f"dovecot: {e}") from None

    def alive(self):
        return self.dv.running()

    def pss_kb(self):
        if not self.dv.running():
            return 0, []
        pids = process_tree(self.dv.proc.pid)
        return sum(proc_pss_kb(p) for p in pids), pids

    def stop(self):
        self.dv.stop()

    def cleanup(self):
        self.dv.cleanup()


# ---------------------------------------------------------------- a fast client


class Conn:
    """A blocking IMAP connection that reads whole responses as bytes
    (no parsing: the client's own cost stays small and equal for both)."""

    def __init__(self, port, timeout=120):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.n = 0
        self.buf = b""
        while b"\r\n" not in self.buf:
            self._recv()
        if not self.buf.startswith(b"* OK"):
            raise BenchError(f"greeting {self.buf[:100]!r}")
        self.buf = b""

    def _recv(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise BenchError(f"connection closed (read {self.buf[-200:]!r})")
        self.buf += chunk

    def cmd(self, text):
        """Send TAG TEXT; return the whole response (untagged lines, literals,
        the tagged line). Raises unless the tagged status is OK."""
        self.n += 1
        tag = b"b%d " % self.n
        self.sock.sendall(tag + text.encode() + b"\r\n")
        chunks = []
        pending = b""
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise BenchError(f"connection closed during {text[:40]!r}")
            chunks.append(chunk)
            tail = pending + chunk
            i = tail.rfind(b"\r\n" + tag)
            if (i >= 0 or tail.startswith(tag)) and tail.endswith(b"\r\n"):
                line = tail[i + 2:] if i >= 0 else tail
                if line.count(b"\r\n") == 1:
                    data = b"".join(chunks)
                    if not line.startswith(tag + b"OK"):
                        raise BenchError(f"{text[:60]!r}: {line.strip()!r}")
                    return data
            pending = tail[-4096:]

    def close(self):
        try:
            self.sock.sendall(b"z LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()


def login(port):
    c = Conn(port)
    c.cmd(f'LOGIN "{BENCH_USER}" "{BENCH_PASSWORD}"')
    return c


# ---------------------------------------------------------------- operations


def op_login_select(server, args, state):
    t0 = time.perf_counter()
    for _ in range(args.logins):
        c = login(server.port)
        r = c.cmd("SELECT INBOX")
        c.close()
        if f"* {args.messages} EXISTS".encode() not in r:
            raise BenchError(f"{server.name}: SELECT did not say {args.messages} EXISTS: {r[:300]!r}")
    return (time.perf_counter() - t0) / args.logins


def _timed(state, text, check):
    c = state["conn"]
    t0 = time.perf_counter()
    r = c.cmd(text)
    dt = time.perf_counter() - t0
    check(r)
    return dt


def op_select(server, args, state):
    def check(r):
        if f"* {args.messages} EXISTS".encode() not in r:
            raise BenchError(f"{server.name}: SELECT did not say {args.messages} EXISTS")
    return _timed(state, "SELECT INBOX", check)


def op_fetch_flags(server, args, state):
    def check(r):
        n = len(re.findall(rb"\* \d+ FETCH ", r))
        if n != args.messages:
            raise BenchError(f"{server.name}: FETCH FLAGS gave {n} replies, want {args.messages}")
    return _timed(state, "FETCH 1:* (FLAGS UID RFC822.SIZE)", check)


def op_fetch_envelope(server, args, state):
    def check(r):
        n = r.count(b" FETCH (ENVELOPE (")
        if n != args.messages:
            raise BenchError(f"{server.name}: FETCH ENVELOPE gave {n} envelopes, want {args.messages}")
    return _timed(state, "FETCH 1:* (ENVELOPE)", check)


def op_search_header(server, args, state):
    want = [i + 1 for i in range(args.messages) if i % 100 == 42]

    def check(r):
        m = re.search(rb"\* SEARCH([ \d]*)\r\n", r)
        got = sorted(int(x) for x in m.group(1).split()) if m else None
        if got != want:
            raise BenchError(f"{server.name}: UID SEARCH HEADER gave {got and len(got)} UIDs, "
                             f"want {len(want)}")
    return _timed(state, "UID SEARCH HEADER X-Bench-Group g42", check)


def op_fetch_bodies(server, args, state):
    step = max(1, args.messages // args.bodies)
    uids = ",".join(str(1 + i * step) for i in range(args.bodies))

    def check(r):
        n = len(re.findall(rb"BODY\[\] \{\d+\}\r\n", r))
        if n != args.bodies:
            raise BenchError(f"{server.name}: FETCH BODY[] gave {n} bodies, want {args.bodies}")
    return _timed(state, f"UID FETCH {uids} (BODY.PEEK[])", check)


OPS = [
    ("LOGIN+SELECT", op_login_select, "per login"),
    ("SELECT INBOX (logged in)", op_select, ""),
    ("FETCH 1:* (FLAGS UID RFC822.SIZE)", op_fetch_flags, ""),
    ("FETCH 1:* (ENVELOPE)", op_fetch_envelope, ""),
    ("UID SEARCH HEADER", op_search_header, ""),
    ("FETCH 100 full bodies", op_fetch_bodies, ""),
]


def run_ops(server, args, label):
    state = {"conn": login(server.port)}
    try:
        state["conn"].cmd("SELECT INBOX")
        out = {}
        for name, fn, _ in OPS:
            # the quick ones are repeated and the best kept: a few ms are
            # easily lost to other work on the machine
            reps = 1 if fn is op_login_select else args.repeat
            out[name] = min(fn(server, args, state) for _ in range(reps))
            if not server.alive():
                raise BenchError(f"{server.name} died during {name}")
        log(f"{server.name} {label}: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in out.items()))
        return out
    finally:
        state["conn"].close()


def operations(servers, args):
    for s in servers:
        run_ops(s, args, "warm-up")
    best = {s.name: {} for s in servers}
    for r in range(args.rounds):
        for s in servers:
            res = run_ops(s, args, f"round {r + 1}")
            for k, v in res.items():
                best[s.name][k] = min(v, best[s.name].get(k, v))
    return best


# ---------------------------------------------------------------- IDLE sessions

CONNECTING, GREETING, LOGIN, SELECT, IDLE_WAIT, IDLE, DONE_WAIT, FAILED = range(8)


class _S:
    __slots__ = ("sock", "state", "buf", "started", "exists_at")

    def __init__(self, sock):
        self.sock, self.state, self.buf = sock, CONNECTING, b""
        self.started = time.monotonic()
        self.exists_at = None


class IdleSessions:
    """COUNT sessions, each LOGIN, SELECT INBOX, IDLE; one selector; at most
    RAMP sessions between connect and '+ idling' at a time."""

    def __init__(self, port, count, mailbox="INBOX", sources=50, ramp=16):
        self.port, self.count, self.ramp, self.mailbox = port, count, ramp, mailbox
        self.sources = [f"127.0.0.{i}" for i in range(1, sources + 1)]
        self.sel = selectors.DefaultSelector()
        self.sessions, self.failures = [], {}
        self.opened = self.in_flight = 0

    def _fail(self, s, why):
        if s.state not in (IDLE, FAILED):
            self.in_flight -= 1
        s.state = FAILED
        self.failures[why] = self.failures.get(why, 0) + 1
        try:
            self.sel.unregister(s.sock)
        except (KeyError, ValueError):
            pass
        s.sock.close()

    def _open(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s = _S(sock)
        self.sessions.append(s)
        src = self.sources[self.opened % len(self.sources)]
        self.opened += 1
        self.in_flight += 1
        why = nb_connect(sock, src, "127.0.0.1", self.port)
        if why:
            self._fail(s, why)
            return
        self.sel.register(sock, selectors.EVENT_WRITE, s)

    def _send(self, s, data):
        try:
            s.sock.send(data)
        except OSError as e:
            self._fail(s, f"send: {errno.errorcode.get(e.errno, e.errno)}")

    def _event(self, s):
        data = nb_event(s, self.sel, self._fail, 65536, CONNECTING, GREETING)
        if data is None:
            return
        if not data:
            self._fail(s, f"closed in state {s.state}")
            return
        s.buf += data
        if s.state == IDLE:
            if s.exists_at is None and re.search(rb"\* \d+ EXISTS\r\n", s.buf):
                s.exists_at = time.monotonic()
            s.buf = s.buf[-256:]
            return
        if not s.buf.endswith(b"\r\n"):
            return
        if s.state == GREETING:
            if not s.buf.startswith(b"* OK"):
                self._fail(s, f"greeting {s.buf[:40]!r}")
                return
            s.buf, s.state = b"", LOGIN
            self._send(s, f'l LOGIN "{BENCH_USER}" "{BENCH_PASSWORD}"\r\n'.encode())
        elif s.state == LOGIN and re.search(rb"(^|\r\n)l ", s.buf):
            self._next(s, b"l", "LOGIN", SELECT, self._select_line())
        elif s.state == SELECT and re.search(rb"(^|\r\n)s ", s.buf):
            self._next(s, b"s", "SELECT", IDLE_WAIT, b"i IDLE\r\n")
        elif s.state == IDLE_WAIT and re.search(rb"(^|\r\n)\+", s.buf):
            s.buf, s.state = b"", IDLE
            self.in_flight -= 1
        elif s.state == DONE_WAIT and re.search(rb"(^|\r\n)i ", s.buf):
            self._next(s, b"i", "IDLE end", SELECT, self._select_line())

    def _select_line(self):
        return b"s SELECT " + self.mailbox.encode() + b"\r\n"

    def _next(self, s, tag, what, state, line):
        """The tagged reply to WHAT is in: on OK go to STATE and send LINE."""
        if not re.search(rb"(^|\r\n)" + tag + rb" OK", s.buf):
            self._fail(s, f"{what} {s.buf[-80:]!r}")
            return
        s.buf, s.state = b"", state
        self._send(s, line)

    def poll(self, timeout):
        for key, _ in self.sel.select(timeout):
            self._event(key.data)

    def _fail_stalled(self, now, stall):
        for s in self.sessions:
            if s.state not in (IDLE, FAILED) and now - s.started > stall:
                self._fail(s, f"stalled in state {s.state}")

    def _fail_unfinished(self, why):
        for s in self.sessions:
            if s.state not in (IDLE, FAILED):
                self._fail(s, why)

    def open_all(self, timeout, stall=60):
        t0 = time.monotonic()
        next_report = t0 + 10
        while time.monotonic() - t0 < timeout:
            while self.opened < self.count and self.in_flight < self.ramp:
                self._open()
            if self.opened >= self.count and self.in_flight == 0:
                break
            self.poll(0.2)
            now = time.monotonic()
            self._fail_stalled(now, stall)
            if now > next_report:
                log(f"idle: {self.opened} opened, {self.idle_count()} idling, "
                    f"{sum(self.failures.values())} failed")
                next_report = now + 10
        self._fail_unfinished("open_all deadline")
        return time.monotonic() - t0

    def reselect(self, mailbox, timeout, stall=60):
        """End IDLE (DONE), SELECT mailbox and IDLE again on every idling
        session, RAMP at a time, without logging in again."""
        self.mailbox = mailbox
        todo = [s for s in self.sessions if s.state == IDLE]
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            while todo and self.in_flight < self.ramp:
                s = todo.pop()
                s.buf, s.state, s.exists_at, s.started = b"", DONE_WAIT, None, time.monotonic()
                self.in_flight += 1
                self._send(s, b"DONE\r\n")
            if not todo and self.in_flight == 0:
                break
            self.poll(0.2)
            now = time.monotonic()
            self._fail_stalled(now, stall)
        self._fail_unfinished("reselect deadline")
        return time.monotonic() - t0

    def hold(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll(min(0.5, max(0.0, end - time.monotonic())))

    def idle_count(self):
        return sum(1 for s in self.sessions if s.state == IDLE)

    def wait_exists(self, t0, timeout):
        """Seconds until every idling session got an EXISTS (or None), and how many did."""
        end = t0 + timeout
        while time.monotonic() < end:
            live = [s for s in self.sessions if s.state == IDLE]
            if live and all(s.exists_at for s in live):
                return max(s.exists_at for s in live) - t0, len(live)
            self.poll(0.1)
        live = [s for s in self.sessions if s.state == IDLE]
        return None, sum(1 for s in live if s.exists_at)

    def close(self):
        for s in self.sessions:
            if s.state != FAILED:
                try:
                    s.sock.close()
                except OSError:
                    pass
        self.sel.close()


def _measure_idle(server, sess, count, args, measure, base, mailbox, label, secs):
    sess.hold(args.idle_hold)
    if not server.alive():
        raise BenchError(f"{server.name} died during the IDLE test")
    mem = measure()
    t0 = time.monotonic()
    folder = server.maildir if mailbox == "INBOX" else os.path.join(server.maildir, "." + mailbox)
    C.deliver(folder, b"From: a@bench.example\nSubject: push\n\nnew mail\n", time.time())
    if server.name == "dovecot":
        server.dv.fix_owner(BENCH_USER)
    push, got = sess.wait_exists(t0, 30)
    res = {"server": server.name, "mailbox": label, "sessions": count, "idle": sess.idle_count(),
           "failures": dict(sess.failures), "open_seconds": secs, "mem_kb": mem,
           "base_kb": base, "push_seconds": push, "pushed": got}
    log(f"{server.name} idle on {label}: {res['idle']}/{count} idling (ready in {secs:.1f}s), "
        f"memory {mem / 1024:.1f} MB (before {base / 1024:.1f} MB), EXISTS pushed to {got} "
        "sessions" + (f" within {push:.2f}s" if push is not None else " (not all within 30s)"))
    return res


def idle_test(server, count, args, measure):
    """COUNT sessions IDLE on the small mailbox, then (DONE, SELECT, IDLE, no
    new login) on the --messages INBOX; memory and push time for each."""
    base = measure()
    sess = IdleSessions(server.port, count, mailbox=SMALL_MAILBOX)
    out = []
    try:
        secs = sess.open_all(timeout=300 + count / 5)
        out.append(_measure_idle(server, sess, count, args, measure, base, SMALL_MAILBOX,
                                 f"{SMALL_MESSAGES}-msg {SMALL_MAILBOX}", secs))
        secs = sess.reselect("INBOX", timeout=120 + count / 10)
        out.append(_measure_idle(server, sess, count, args, measure, base, "INBOX",
                                 f"{args.messages}-msg INBOX", secs))
    finally:
        sess.close()
    return out


# ---------------------------------------------------------------- report


def report(args, best, idle):
    out = [""]
    if best:
        out.append(f"IMAP on a {args.messages}-message Maildir (best of {args.rounds} rounds "
                   f"after a warm-up; LOGIN+SELECT per login, over {args.logins})")
        out.append(f"{'operation':<36}{'bulwark ms':>12}{'dovecot ms':>12}{'dovecot/bulwark':>18}")
    ok = True
    for name, _, _ in OPS if best else []:
        b = best.get("bulwark", {}).get(name)
        d = best.get("dovecot", {}).get(name)
        ratio = d / b if b and d else None
        out.append(f"{name:<36}{(b or 0) * 1000:>12.2f}{(d or 0) * 1000:>12.2f}"
                   + (f"{ratio:>17.2f}x" if ratio else f"{'-':>18}"))
        if ratio is not None and ratio < 1.0:
            ok = False
    if idle:
        out.append("")
        out.append("IDLE sessions (LOGIN, SELECT, IDLE, then silent), and one new message")
        out.append(f"{'server':<10}{'mailbox':<20}{'sessions':>9}{'idling':>8}{'memory MB':>14}"
                   f"{'before MB':>11}{'MB/1000 sess':>14}{'EXISTS to all':>15}")
        for r in idle:
            what = "RSS" if r["server"] == "bulwark" else "PSS"
            per_k = (r["mem_kb"] - r["base_kb"]) / max(r["idle"], 1) * 1000 / 1024
            push = f"{r['push_seconds']:.2f}s" if r["push_seconds"] is not None else f"{r['pushed']} only"
            out.append(f"{r['server']:<10}{r['mailbox']:<20}{r['sessions']:>9}{r['idle']:>8}"
                       f"{r['mem_kb'] / 1024:>10.1f} {what}"
                       f"{r['base_kb'] / 1024:>11.1f}{per_k:>14.1f}{push:>15}")
            if r["failures"]:
                out.append(f"    {r['server']} failures: {r['failures']}")
        for r in idle:
            if r["server"] == "bulwark":
                if r["idle"] < r["sessions"] or r["mem_kb"] / 1024 >= TARGET_IDLE_MB:
                    ok = False
                out.append(f"bulwark: {r['idle']} IDLE sessions on the {r['mailbox']}, RSS "
                           f"{r['mem_kb'] / 1024:.1f} MB (target < {TARGET_IDLE_MB:.0f} MB)")
    load = os.getloadavg()
    out.append("")
    out.append(f"machine: {os.cpu_count()} CPUs, load average now {load[0]:.2f} {load[1]:.2f} "
               f"{load[2]:.2f} (other work on the machine skews these numbers)")
    print("\n".join(out), flush=True)
    return ok


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0 and args.only != "bulwark":
        print("bench_imap.py: the Dovecot half needs root (run as root, or --only bulwark)",
              file=sys.stderr)
        return 2
    catch_signals()
    raise_nofile(max(args.idle, args.idle_dovecot) * 3 + 4096)
    tmp = make_workdir("bulwark-bench-imap-")
    bw = dv = None
    best, idle = {}, []
    status = 0
    try:
        bw = BulwarkImap(tmp, args.build_dir, max(5000, args.idle + 100), args.bulwark_log_level)
        bw.setup()      # the user and its hash (Dovecot verifies the same hash)
        src = os.path.join(tmp, "Maildir")
        t0 = time.monotonic()
        C.big_maildir(src, args.messages)
        C.big_maildir(os.path.join(src, "." + SMALL_MAILBOX), SMALL_MESSAGES, seed=2)
        with open(os.path.join(src, "." + SMALL_MAILBOX, "maildirfolder"), "w"):
            pass
        log(f"generated {args.messages} + {SMALL_MESSAGES} messages in {time.monotonic() - t0:.1f}s")
        servers = []
        if args.only in ("both", "bulwark"):
            if os.path.exists(bw.maildir):
                shutil.rmtree(bw.maildir)
            os.makedirs(os.path.dirname(bw.maildir), exist_ok=True)
            shutil.copytree(src, bw.maildir)
            bw.start()
            servers.append(bw)
        if args.only in ("both", "dovecot"):
            dv = DovecotImap(bw.password_hash())
            shutil.rmtree(dv.maildir, ignore_errors=True)
            dv.dv.load_maildir(BENCH_USER, src)
            dv.start()
            servers.append(dv)
        os.sync()
        if not args.skip_ops:
            best = operations(servers, args)
        if not args.skip_idle:
            if bw in servers and args.idle > 0:
                idle += idle_test(bw, args.idle, args, bw.rss_kb)
            if dv is not None and args.idle_dovecot > 0:
                idle += idle_test(dv, args.idle_dovecot, args, lambda: dv.pss_kb()[0])
        ok = report(args, best, idle)
        if args.strict and not ok:
            status = 1
    except (BenchError, Interrupted, KeyboardInterrupt) as e:
        print(f"bench_imap.py: {e or type(e).__name__}", file=sys.stderr)
        if best or idle:
            report(args, best, idle)
        status = exit_status(e)
    finally:
        ignore_signals()
        if bw is not None:
            bw.stop()
        if dv is not None:
            dv.stop()
            if status in (0, 130) and not args.keep:
                dv.cleanup()
            else:
                log(f"dovecot files kept in {dv.dv.run}")
        remove_workdir(tmp, args.keep, status, "logs and Maildirs")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
