#!/usr/bin/python3
"""bulwark under an AUTH flood: the latency of a normal client, and what a
banned connection costs the daemon.

  make bench                      # runs bench_smtp.py, then this script
  bench/bench_auth.py --help

1. One bulwarkd with an MX listener, a submission listener (STARTTLS, then
   AUTH) and /metrics on free loopback ports; only 127.0.0.1 is in
   mynetworks; 127.0.0.1 and 127.0.1.0/24 are in intrusion_prevention.ignoreip;
   one confirmed user, user@bench.test. 127.0.2.1..N are banned beforehand
   (`bulwarkctl ban add IP --for 3600`).
2. Baseline: --transactions sequential SMTP transactions (connect, EHLO,
   MAIL, RCPT user@bench.test, DATA of a small message, QUIT) from 127.0.0.5,
   an untrusted client, to the MX port; the latency of each, p50 and p99.
3. Flood: --guessers processes from 127.0.1.1.. (never banned, so they keep
   going) do STARTTLS on submission and AUTH PLAIN with wrong passwords for
   users that do not exist, as fast as the server answers, reconnecting when
   it hangs up; --banned processes from the banned 127.0.2.1.. connect in a
   tight loop (to the MX and submission ports in turn) and are dropped at
   accept. The baseline is measured again while they run.
4. Banned-connection cost: only the banned connectors, --banned-attempts
   connections in all; the daemon's CPU time (utime + stime from
   /proc/PID/stat) during that phase, minus its CPU time over an idle
   stretch of the same length, divided by the connections the clients saw
   accepted and closed.

Standard library only, loopback only, every loop and wait bounded; the
daemon and every client process are stopped on the way out, also on
failure, Ctrl-C or SIGTERM. Exit 0 unless something broke; --strict: exit 1
when a target (p50 and p99 within 2x under the flood, banned connection
under 20 us of CPU) is missed.
"""

import argparse
import base64
import json
import math
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import (BENCH_DOMAIN, BENCH_USER, SMTP_STEPS, BenchError, Interrupted,  # noqa: E402
                      SmtpClosed, SmtpLineClient, arg_parser, bound_socket, catch_signals,
                      count_files, end_perf, exit_status, fetch_metrics, free_port, log,
                      make_workdir, metrics_sum, percentile, proc_cpu_seconds, proc_sched_seconds,
                      proc_status_kb, raise_nofile, read_tail, shut_down, smtp_transaction,
                      start_perf, wait_for_port, warn_if_loaded)
from bulwark_instance import AuthBenchInstance  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.abspath(__file__)

TARGET_RATIO = 2.0        # p50 and p99 under the flood within 2x of without
TARGET_BANNED_US = 20.0   # CPU per connection from a banned IP

CLIENT = "127.0.0.5"            # the normal client: untrusted, not ignored
GUESSER_NET = "127.0.1."        # in ignoreip: never banned, keep guessing
BANNED_NET = "127.0.2."         # banned before the flood
IGNOREIP = ["127.0.0.1/32", "127.0.1.0/24"]
HELO = "client.bench.example"
SENDER = "sender@remote.example"
BAN_SECONDS = 3600


def parse_args(argv):
    p = arg_parser(__doc__)
    p.add_argument("--transactions", type=int, default=300,
                   help="measured SMTP transactions, without and with the flood (300)")
    p.add_argument("--warmup", type=int, default=30, help="unmeasured transactions first (30)")
    p.add_argument("--guessers", type=int, default=10,
                   help="AUTH guessing processes from 127.0.1.1.. (10)")
    p.add_argument("--banned", type=int, default=10,
                   help="connecting processes from the banned 127.0.2.1.. (10)")
    p.add_argument("--banned-attempts", type=int, default=5000,
                   help="connect attempts from banned IPs in the CPU-cost phase, in all (5000)")
    p.add_argument("--banned-timeout", type=float, default=0.02,
                   help="seconds a banned connector waits for its connect before it gives "
                        "up and tries again (0.02: the kernel drops banned SYNs, so without "
                        "a short timeout each attempt would wait for SYN retransmissions)")
    p.add_argument("--rounds", type=int, default=1,
                   help="alternate baseline and flood this many times, --transactions/ROUNDS "
                        "each time, and pool the samples (1). More rounds spread a change in "
                        "the machine's other load over both sides")
    p.add_argument("--ramp", type=float, default=3.0,
                   help="seconds the flood runs before the measurement starts (3)")
    p.add_argument("--flood", choices=("both", "guessers", "banned"), default="both",
                   help="who floods during the latency measurement (both; the others "
                        "are for finding out which half slows the client down)")
    p.add_argument("--attacker-nice", type=int, default=0,
                   help="nice value of the attacking processes (0). They share this "
                        "machine's CPUs with the daemon and the measuring client, which "
                        "real attackers on other machines do not; a positive value "
                        "shows how much of the slowdown is theirs")
    p.add_argument("--ban-method", choices=("auto", "ctl", "strikes"), default="auto",
                   help="how 127.0.2.x get banned: `bulwarkctl ban add` (ctl), five RCPTs "
                        "to unknown users each (strikes), or ctl falling back to strikes (auto)")
    p.add_argument("--phase-timeout", type=float, default=300.0,
                   help="seconds one phase may take (300)")
    p.add_argument("--idle-max", type=float, default=60.0,
                   help="longest idle stretch measured for the CPU baseline (60)")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                   help="where bulwarkd and bulwarkctl are (build/)")
    p.add_argument("--bulwark-log-level", default="info",
                   help="log_level in the bench config (info: every failed AUTH is logged)")
    p.add_argument("--perf", metavar="FILE",
                   help="perf record -g bulwarkd during the banned-connection phase into FILE "
                        "and print its top symbols (perf's own overhead inflates that phase's "
                        "CPU figure)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (config, data, log)")
    p.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a target (2x, 20 us) is missed")
    # Internal: one attacking process (started by this script).
    p.add_argument("--worker", choices=("guess", "banned"), help=argparse.SUPPRESS)
    p.add_argument("--source", help=argparse.SUPPRESS)
    p.add_argument("--ports", help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, default=600.0, help=argparse.SUPPRESS)
    p.add_argument("--max-attempts", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------
# Attacking processes: `bench_auth.py --worker KIND ...`. Each runs until
# SIGTERM/SIGINT, --max-attempts, --max-seconds or its parent's death, then
# prints one JSON line of counts on stdout.

class Worker:
    def __init__(self, args):
        self.args = args
        self.stop = False
        self.parent = os.getppid()
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.max_seconds
        self.stats = {"kind": args.worker, "source": args.source, "attempts": 0,
                      "sessions": 0, "hangups": 0, "connects": 0, "dropped": 0, "greeted": 0,
                      "errors": {}, "first_error": None}

    def should_stop(self):
        a = self.args
        return (self.stop or time.monotonic() > self.deadline
                or (a.max_attempts and self.stats["attempts"] >= a.max_attempts)
                or os.getppid() != self.parent)

    def error(self, what, detail):
        e = self.stats["errors"]
        e[what] = e.get(what, 0) + 1
        if self.stats["first_error"] is None:
            self.stats["first_error"] = f"{what}: {detail}"
        time.sleep(0.01)  # a persistent failure must not become a hot loop

    def guess(self):
        """STARTTLS, then AUTH PLAIN with wrong passwords until the server
        hangs up (max_errors), then again."""
        host, port = "127.0.0.1", int(self.args.ports.split(",")[0])
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        n = 0
        last = self.args.source.rsplit(".", 1)[1]
        while not self.should_stop():
            c = None
            tried = 0
            try:
                c = SmtpLineClient(host, port, self.args.source, timeout=30)
                c.expect(None, 220)
                c.expect("EHLO guesser.bench.example", 250)
                c.starttls(ctx)
                lines = c.expect("EHLO guesser.bench.example", 250)
                if not any(l[4:].upper().startswith(b"AUTH") for l in lines):
                    self.error("no_auth_offered", repr(lines))
                    time.sleep(0.1)
                    continue
                self.stats["sessions"] += 1
                while not self.should_stop():
                    n += 1
                    resp = base64.b64encode(
                        f"\0guess-{last}-{n}@{BENCH_DOMAIN}\0wrong-{n}-Pa55word!".encode()).decode()
                    code, lines = c.cmd(f"AUTH PLAIN {resp}")
                    if code == 535:
                        self.stats["attempts"] += 1
                        tried += 1
                    elif code == 421:
                        self.stats["hangups"] += 1
                        break
                    else:
                        self.error(f"auth_reply_{code}", repr(lines))
                        break
            except (SmtpClosed, ssl.SSLError, ConnectionError) as e:
                if tried:   # the server hung up after the errors allowed
                    self.stats["hangups"] += 1
                else:
                    self.error(type(e).__name__, str(e))
            except (OSError, BenchError) as e:
                self.error(type(e).__name__, str(e))
            finally:
                if c is not None:
                    c.close()

    def banned(self):
        """Connect again and again, one attempt at a time, as fast as the
        server lets us: a connect that gets no answer within --banned-timeout
        (the kernel dropped the SYN before accept) or a connection closed
        before any greeting (refused at accept) is a ban that holds; a
        greeting is a ban that failed."""
        host = "127.0.0.1"
        ports = [int(p) for p in self.args.ports.split(",")]
        i = 0
        while not self.should_stop():
            port = ports[i % len(ports)]
            i += 1
            s = None
            try:
                s = bound_socket(self.args.source, self.args.banned_timeout)
                try:
                    s.connect((host, port))
                except (socket.timeout, TimeoutError):
                    self.stats["dropped"] += 1   # SYN dropped: never reached accept()
                    self.stats["attempts"] += 1
                    continue
                s.settimeout(10)
                try:
                    data = s.recv(512)
                except ConnectionResetError:
                    data = b""
                if data:
                    self.stats["greeted"] += 1   # not dropped: the ban did not hold
                    self.error("greeted", repr(data[:80]))
                else:
                    self.stats["connects"] += 1  # accepted, closed without a byte
                    self.stats["attempts"] += 1
            except OSError as e:
                self.error(type(e).__name__, str(e))
            finally:
                if s is not None:
                    s.close()

    def run(self):
        try:
            if self.args.worker == "guess":
                self.guess()
            else:
                self.banned()
        finally:
            self.stats["seconds"] = time.monotonic() - self.t0
            self.stats["cpu_s"] = time.process_time()   # this process: user + system
            sys.stdout.write(json.dumps(self.stats) + "\n")
            sys.stdout.flush()


def worker_main(args):
    w = Worker(args)

    def stop(signum, frame):
        w.stop = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, stop)
    w.run()
    return 0


class Attackers:
    """The attacking processes of one phase."""

    def __init__(self, tmp, name, banned_timeout):
        self.tmp = tmp
        self.name = name
        self.banned_timeout = banned_timeout
        self.procs = []

    def start(self, kind, source, ports, nice=0, max_attempts=0, max_seconds=600.0):
        errpath = os.path.join(self.tmp, f"worker-{self.name}-{kind}-{source}.err")
        cmd = [sys.executable, SCRIPT, "--worker", kind, "--source", source,
               "--ports", ",".join(str(p) for p in ports), "--max-seconds", str(max_seconds),
               "--max-attempts", str(max_attempts), "--banned-timeout", str(self.banned_timeout)]
        with open(errpath, "wb") as err:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                 stdin=subprocess.DEVNULL,
                                 preexec_fn=(lambda: os.nice(nice)) if nice else None)
        p.errpath = errpath
        self.procs.append(p)

    def running(self):
        return sum(1 for p in self.procs if p.poll() is None)

    def wait(self, timeout):
        """Wait until all exited by themselves (max_attempts); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running() == 0:
                return True
            time.sleep(0.02)
        return False

    def stop(self, grace=15.0):
        """SIGTERM all, collect their JSON; SIGKILL what does not exit."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        results = []
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                out, _ = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            try:
                results.append(json.loads(out.decode().strip().splitlines()[-1]))
            except (ValueError, IndexError):
                results.append({"kind": "?", "source": "?", "attempts": 0, "connects": 0,
                                "dropped": 0, "greeted": 0, "sessions": 0, "hangups": 0, "seconds": 0,
                                "errors": {"no_report": 1},
                                "first_error": f"exit {p.returncode}: "
                                               f"{read_tail(p.errpath, 400)!r}"})
        self.procs = []
        return results

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                pass
        self.procs = []


# ---------------------------------------------------------------------------

def message(i):
    return (f"From: <{SENDER}>\r\nTo: <{BENCH_USER}>\r\nSubject: bench {i}\r\n"
            f"Message-ID: <bench-auth-{i}-{os.getpid()}@remote.example>\r\n\r\n"
            + "A normal message while someone guesses passwords.\r\n" * 8
            + ".\r\n").encode()


def transactions(bw, n, label, timeout, first=0, steps=None):
    """N sequential transactions from CLIENT to the MX port; their latencies
    in seconds (STEPS, a list, gets each one's steps). Stops early (returns
    fewer) when TIMEOUT seconds are used up."""
    lat = []
    deadline = time.monotonic() + timeout
    for i in range(n):
        if time.monotonic() > deadline:
            log(f"{label}: phase timeout after {len(lat)}/{n} transactions")
            break
        try:
            lat.append(smtp_transaction("127.0.0.1", bw.port, CLIENT, SENDER, BENCH_USER,
                                        message(first + i), HELO, timeout=30, steps=steps))
        except (OSError, BenchError) as e:
            raise BenchError(f"{label}: transaction {i + 1} from {CLIENT} failed: "
                             f"{type(e).__name__}: {e}"
                             + ("" if bw.alive() else " (bulwarkd is gone)")) from None
    return lat


def dropped_at_accept(port, source, timeout=3.0, connect_timeout=0.3):
    """True if a connection from SOURCE never gets through (the kernel's ban
    filter dropped its SYN) or is closed without a greeting (refused at accept)."""
    s = bound_socket(source, connect_timeout)
    try:
        try:
            s.connect(("127.0.0.1", port))
        except (socket.timeout, TimeoutError):
            return True
        s.settimeout(timeout)
        try:
            return s.recv(512) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
    finally:
        s.close()


def earn_ban(bw, source):
    """Five RCPTs to unknown local users (directory harvesting strikes, maxretry 5)."""
    c = SmtpLineClient("127.0.0.1", bw.port, source, timeout=10)
    try:
        c.expect(None, 220)
        c.expect(f"EHLO {HELO}", 250)
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        for i in range(10):
            try:
                code, lines = c.cmd(f"RCPT TO:<nosuch-{i}@{BENCH_DOMAIN}>")
            except (SmtpClosed, ConnectionError):
                return
            if code == 421:
                return
    finally:
        c.close()


def ban_sources(bw, sources, method):
    used = method
    for ip in sources:
        if method in ("ctl", "auto") and used != "strikes":
            try:
                bw.ban_add(ip, BAN_SECONDS)
                used = "ctl"
                continue
            except BenchError as e:
                if method == "ctl":
                    raise
                log(f"bans: {e}; earning the bans with strikes instead")
                used = "strikes"
        earn_ban(bw, ip)
    # bulwarkd picks up bulwarkctl's changes within a second or so.
    deadline = time.monotonic() + 15
    pending = list(sources)
    while pending and time.monotonic() < deadline:
        pending = [ip for ip in pending
                   if not (dropped_at_accept(bw.port, ip) and
                           dropped_at_accept(bw.submission_port, ip))]
        if pending:
            time.sleep(0.25)
    if pending:
        raise BenchError(f"bans ({used}): {', '.join(pending)} still served after 15 s\n"
                         f"{read_tail(bw.logfile)}")
    return used


def summarize(lat, steps=None):
    res = {"n": len(lat), "p50_ms": percentile(lat, 50) * 1000,
           "p99_ms": percentile(lat, 99) * 1000, "max_ms": max(lat) * 1000 if lat else float("nan"),
           "mean_ms": sum(lat) / len(lat) * 1000 if lat else float("nan")}
    if steps:
        cols = list(zip(*steps))
        res["steps"] = {name: {"p50_ms": percentile(c, 50) * 1000,
                               "p99_ms": percentile(c, 99) * 1000,
                               "max_ms": max(c) * 1000}
                        for name, c in zip(SMTP_STEPS, cols)}
    return res


def totals(results, kind):
    rs = [r for r in results if r["kind"] == kind]
    errors = {}
    for r in rs:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "processes": len(rs),
        "attempts": sum(r["attempts"] for r in rs),
        "connects": sum(r["connects"] for r in rs),
        "dropped": sum(r.get("dropped", 0) for r in rs),
        "cpu_s": sum(r.get("cpu_s", 0.0) for r in rs),
        "greeted": sum(r["greeted"] for r in rs),
        "sessions": sum(r["sessions"] for r in rs),
        "hangups": sum(r["hangups"] for r in rs),
        "seconds": max((r["seconds"] for r in rs), default=0.0),
        "errors": errors,
        "first_errors": [f"{r['source']}: {r['first_error']}" for r in rs if r["first_error"]][:3],
    }


def try_metrics(bw):
    try:
        return fetch_metrics("127.0.0.1", bw.http_port)
    except (OSError, ValueError) as e:
        log(f"metrics: GET /metrics failed: {e}")
        return None


def daemon_cpu(pid):
    return proc_cpu_seconds(pid), proc_sched_seconds(pid)


def flood_phase(bw, args, tmp, n, first):
    """Start the attackers, wait --ramp, measure N transactions (numbered from
    FIRST), stop them."""
    guessers = [f"{GUESSER_NET}{i}" for i in range(1, args.guessers + 1)]
    banned = [f"{BANNED_NET}{i}" for i in range(1, args.banned + 1)]
    att = Attackers(tmp, "flood", args.banned_timeout)
    m0 = try_metrics(bw)
    cpu0 = daemon_cpu(bw.pid)
    t0 = time.monotonic()
    try:
        if args.flood in ("both", "guessers"):
            for ip in guessers:
                att.start("guess", ip, [bw.submission_port], nice=args.attacker_nice,
                          max_seconds=args.phase_timeout + args.ramp + 60)
        if args.flood in ("both", "banned"):
            for ip in banned:
                att.start("banned", ip, [bw.port, bw.submission_port], nice=args.attacker_nice,
                          max_seconds=args.phase_timeout + args.ramp + 60)
        time.sleep(args.ramp)
        if att.running() < len(att.procs):
            raise BenchError(f"flood: {len(att.procs) - att.running()} attacking processes "
                             f"exited during the ramp-up: {att.stop()}")
        log(f"flood: {len(att.procs)} attackers running; measuring {n} "
            f"transactions from {CLIENT}")
        steps = []
        lat = transactions(bw, n, "flood", args.phase_timeout, first=first, steps=steps)
        if att.running() < len(att.procs):
            log(f"flood: warning: only {att.running()}/{len(att.procs)} attackers still running")
        results = att.stop()
    except BaseException:
        att.kill()
        raise
    seconds = time.monotonic() - t0
    cpu1 = daemon_cpu(bw.pid)
    m1 = try_metrics(bw)
    g, b = totals(results, "guess"), totals(results, "banned")
    res = {"latency": summarize(lat, steps), "raw": (lat, steps), "seconds": seconds,
           "guessers": g, "banned": b,
           "daemon_cpu_s": (cpu1[0] - cpu0[0]) if None not in (cpu0[0], cpu1[0]) else None,
           "hwm_mb": (proc_status_kb(bw.pid, "VmHWM") or 0) / 1024}
    res["auth_per_s"] = g["attempts"] / g["seconds"] if g["seconds"] else 0.0
    res["banned_per_s"] = b["attempts"] / b["seconds"] if b["seconds"] else 0.0
    if m0 is not None and m1 is not None:
        res["metrics"] = {
            "auth_failures": metrics_sum(m1, "bulwark_auth_failures_total")
            - metrics_sum(m0, "bulwark_auth_failures_total"),
            "auth_failures_by_reason": {k: v - m0.get(k, 0) for k, v in m1.items()
                                        if k.startswith("bulwark_auth_failures_total")},
            "refused_banned": m1.get('bulwark_connections_refused_total{reason="banned"}', 0)
            - m0.get('bulwark_connections_refused_total{reason="banned"}', 0),
        }
    if args.flood in ("both", "guessers") and g["attempts"] == 0:
        raise BenchError(f"flood: the guessers made no AUTH attempt: {g['errors']} "
                         f"{g['first_errors']}")
    if args.flood in ("both", "banned") and b["attempts"] == 0:
        raise BenchError(f"flood: the banned connectors made no attempt: "
                         f"{b['errors']} {b['first_errors']}")
    if b["greeted"]:
        log(f"flood: PROBLEM: {b['greeted']} connections from banned IPs were greeted")
    log(f"flood: {g['attempts']} AUTH attempts ({res['auth_per_s']:.1f}/s) in "
        f"{g['sessions']} TLS sessions by {g['processes']} guessers; {b['attempts']} banned "
        f"connect attempts ({res['banned_per_s']:.0f}/s; {b['dropped']} dropped before accept, "
        f"{b['connects']} closed at accept) by {b['processes']}; "
        f"errors {g['errors'] or '-'} / {b['errors'] or '-'}")
    return res


def wait_quiet(bw, limit=30.0):
    """Wait until the daemon is idle (under 5% of a CPU over half a second):
    password checks queued by a flood keep hashing after it stops. At least
    2 s, at most LIMIT."""
    time.sleep(2)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        c0 = proc_sched_seconds(bw.pid)
        time.sleep(0.5)
        c1 = proc_sched_seconds(bw.pid)
        if c0 is None or c1 is None or c1 - c0 < 0.025:
            return
    log(f"warning: bulwarkd still busy {limit:.0f} s after the flood")


def merge_floods(floods):
    """One result from the flood rounds: samples pooled, counts added."""
    if len(floods) == 1:
        return floods[0]
    lat = [x for f in floods for x in f["raw"][0]]
    steps = [x for f in floods for x in f["raw"][1]]
    res = {"latency": summarize(lat, steps), "raw": (lat, steps),
           "seconds": sum(f["seconds"] for f in floods),
           "hwm_mb": max(f["hwm_mb"] for f in floods),
           "daemon_cpu_s": (None if any(f["daemon_cpu_s"] is None for f in floods)
                            else sum(f["daemon_cpu_s"] for f in floods))}
    for kind in ("guessers", "banned"):
        t = dict(floods[0][kind])
        t["errors"] = dict(t["errors"])
        for f in floods[1:]:
            for k in ("attempts", "connects", "dropped", "greeted", "sessions", "hangups",
                      "seconds", "cpu_s"):
                t[k] += f[kind][k]
            for k, v in f[kind]["errors"].items():
                t["errors"][k] = t["errors"].get(k, 0) + v
            t["first_errors"] = (t["first_errors"] + f[kind]["first_errors"])[:3]
        res[kind] = t
    g, b = res["guessers"], res["banned"]
    res["auth_per_s"] = g["attempts"] / g["seconds"] if g["seconds"] else 0.0
    res["banned_per_s"] = b["attempts"] / b["seconds"] if b["seconds"] else 0.0
    if all("metrics" in f for f in floods):
        m = {"auth_failures": 0, "auth_failures_by_reason": {}, "refused_banned": 0}
        for f in floods:
            m["auth_failures"] += f["metrics"]["auth_failures"]
            m["refused_banned"] += f["metrics"]["refused_banned"]
            for k, v in f["metrics"]["auth_failures_by_reason"].items():
                m["auth_failures_by_reason"][k] = m["auth_failures_by_reason"].get(k, 0) + v
        res["metrics"] = m
    return res


def stop_perf(proc, path):
    if not end_perf(proc):
        return
    try:
        r = subprocess.run(["perf", "report", "-i", path, "--stdio", "-g", "none", "--no-children",
                            "--sort", "dso,sym", "--percent-limit", "1"],
                           capture_output=True, text=True, timeout=120)
        own = [" ".join(l.split()) for l in r.stdout.splitlines()
               if l.strip() and not l.startswith("#")][:25]
        log(f"perf ({path}): bulwarkd's CPU during the banned-connection phase, self time:\n    "
            + "\n    ".join(own))
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"perf report failed: {e}")


def banned_cost_phase(bw, args, tmp):
    banned = [f"{BANNED_NET}{i}" for i in range(1, args.banned + 1)]
    per = math.ceil(args.banned_attempts / max(1, len(banned)))
    att = Attackers(tmp, "cost", args.banned_timeout)
    m0 = try_metrics(bw)
    perf = start_perf(bw.pid, args.perf, freq=999) if args.perf else None
    if perf is not None:
        time.sleep(1)  # perf attaching
    cpu0 = daemon_cpu(bw.pid)
    t0 = time.monotonic()
    try:
        for ip in banned:
            att.start("banned", ip, [bw.port, bw.submission_port], nice=args.attacker_nice,
                      max_attempts=per, max_seconds=args.phase_timeout + 30)
        finished = att.wait(args.phase_timeout)
        # Read the daemon's CPU the moment the last client is done.
        cpu1 = daemon_cpu(bw.pid)
        seconds = time.monotonic() - t0
        results = att.stop()
    except BaseException:
        att.kill()
        raise
    finally:
        stop_perf(perf, args.perf)
    m1 = try_metrics(bw)
    if not finished:
        log(f"banned cost: phase timeout after {args.phase_timeout:.0f}s; counting what was done")
    b = totals(results, "banned")
    if b["attempts"] == 0:
        raise BenchError(f"banned cost: no connect attempt was made: {b['errors']} "
                         f"{b['first_errors']}")
    # The same stretch of wall time with nothing connecting.
    idle_s = min(seconds, args.idle_max)
    time.sleep(0.5)
    i0 = daemon_cpu(bw.pid)
    time.sleep(idle_s)
    i1 = daemon_cpu(bw.pid)
    busy = cpu1[0] - cpu0[0]
    idle = (i1[0] - i0[0]) * seconds / idle_s
    busy_ns = cpu1[1] - cpu0[1]
    idle_ns = (i1[1] - i0[1]) * seconds / idle_s
    # Per connect attempt, whether the kernel dropped its SYN (most) or the
    # daemon accepted and closed it (bans not in the filter yet).
    n = b["attempts"]
    res = {
        "attempts": n, "connects": b["connects"], "dropped": b["dropped"],
        "greeted": b["greeted"], "errors": b["errors"],
        "first_errors": b["first_errors"], "seconds": seconds, "idle_seconds": idle_s,
        "cpu_s": busy, "idle_cpu_s": idle,
        "us_per_conn": max(0.0, busy - idle) * 1e6 / n,
        "us_per_conn_schedstat": max(0.0, busy_ns - idle_ns) * 1e6 / n,
        "rate": n / seconds if seconds else 0.0,
        "tick_us": 1e6 / os.sysconf("SC_CLK_TCK") / n,
        "attacker_us": b["cpu_s"] * 1e6 / n,
    }
    if m0 is not None and m1 is not None:
        key = 'bulwark_connections_refused_total{reason="banned"}'
        res["refused_banned"] = m1.get(key, 0) - m0.get(key, 0)
    if b["greeted"]:
        log(f"banned cost: PROBLEM: {b['greeted']} connections from banned IPs were greeted")
    log(f"banned cost: {n} connect attempts in {seconds:.2f}s ({res['rate']:.0f}/s; "
        f"{b['dropped']} dropped before accept, {b['connects']} closed at accept), "
        f"daemon CPU {busy * 1000:.0f} ms (idle over the same time {idle * 1000:.0f} ms): "
        f"{res['us_per_conn']:.2f} us per attempt (schedstat: "
        f"{res['us_per_conn_schedstat']:.2f} us); refused by ban per /metrics: "
        f"{res.get('refused_banned', '?')}; the connecting processes' own CPU "
        f"{res['attacker_us']:.0f} us per attempt")
    return res


def print_report(r):
    out = [""]
    base, fl, cost = r.get("baseline"), r.get("flood"), r.get("banned_cost")
    ok = True
    if base:
        rounds = r["args"].get("rounds", 1)
        out.append(f"Normal SMTP transactions from {CLIENT} to the MX port (connect .. QUIT), "
                   f"{base['n']} sequential"
                   + (f", in {rounds} rounds alternating with the flood" if rounds > 1 else ""))
        out.append(f"{'':<22}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'mean ms':>10}")
        out.append(f"{'without flood':<22}{base['p50_ms']:>10.2f}{base['p99_ms']:>10.2f}"
                   f"{base['max_ms']:>10.2f}{base['mean_ms']:>10.2f}")
    if fl:
        fb = fl["latency"]
        out.append(f"{'with flood':<22}{fb['p50_ms']:>10.2f}{fb['p99_ms']:>10.2f}"
                   f"{fb['max_ms']:>10.2f}{fb['mean_ms']:>10.2f}")
        if "steps" in base and "steps" in fb:
            out.append("by step, p50/p99 ms without -> with flood (\"message\": the data, "
                       "up to the 250 after the dot):")
            out.append("  " + "  ".join(
                f"{n} {base['steps'][n]['p50_ms']:.2f}/{base['steps'][n]['p99_ms']:.2f}"
                f" -> {fb['steps'][n]['p50_ms']:.2f}/{fb['steps'][n]['p99_ms']:.2f}"
                for n in SMTP_STEPS[:4]))
            out.append("  " + "  ".join(
                f"{n} {base['steps'][n]['p50_ms']:.2f}/{base['steps'][n]['p99_ms']:.2f}"
                f" -> {fb['steps'][n]['p50_ms']:.2f}/{fb['steps'][n]['p99_ms']:.2f}"
                for n in SMTP_STEPS[4:]))
        g, b = fl["guessers"], fl["banned"]
        out.append(f"flood ({r['args']['flood']}, attackers at nice {r['args']['attacker_nice']}): "
                   f"{g['processes']} guessers: {g['attempts']} AUTH attempts, "
                   f"{fl['auth_per_s']:.1f}/s, {g['sessions']} TLS sessions; "
                   f"{b['processes']} banned connectors: {b['attempts']} connect attempts, "
                   f"{fl['banned_per_s']:.0f}/s ({b['dropped']} dropped before accept, "
                   f"{b['connects']} closed at accept); daemon CPU {fl['daemon_cpu_s']:.1f} s in "
                   f"{fl['seconds']:.1f} s, peak RSS {fl['hwm_mb']:.0f} MB")
        if "metrics" in fl:
            reasons = ", ".join(f"{k.split('reason=')[1].strip('}').strip(chr(34))} {v:.0f}"
                                for k, v in sorted(fl["metrics"]["auth_failures_by_reason"].items())
                                if v)
            out.append(f"/metrics during the flood: bulwark_auth_failures_total "
                       f"+{fl['metrics']['auth_failures']:.0f} ({reasons or '-'}), "
                       f"connections refused as banned +{fl['metrics']['refused_banned']:.0f}")
    if cost:
        out.append(f"Banned connect attempts only: {cost['attempts']} in {cost['seconds']:.2f} s "
                   f"({cost['rate']:.0f}/s; {cost['dropped']} dropped before accept, "
                   f"{cost['connects']} closed at accept), daemon CPU "
                   f"{cost['cpu_s'] * 1000:.0f} ms minus "
                   f"{cost['idle_cpu_s'] * 1000:.0f} ms idle = {cost['us_per_conn']:.2f} us each "
                   f"(+-{cost['tick_us']:.2f} us for one clock tick; per schedstat "
                   f"{cost['us_per_conn_schedstat']:.2f} us); /metrics refused as banned: "
                   f"{cost.get('refused_banned', '?')}; the connecting processes' own CPU "
                   f"(Python, socket calls, and the kernel's SYN path with the filter, which on "
                   f"loopback runs in the sender's context): {cost['attacker_us']:.0f} us each")
        if cost["greeted"]:
            out.append(f"PROBLEM: {cost['greeted']} connections from banned IPs were greeted")
    load = os.getloadavg()
    out.append(f"machine: {os.cpu_count()} CPUs, load average now {load[0]:.2f} {load[1]:.2f} "
               f"{load[2]:.2f} (other work on the machine skews these numbers)")
    parts = []
    if base and fl:
        fb = fl["latency"]
        r50 = fb["p50_ms"] / base["p50_ms"]
        r99 = fb["p99_ms"] / base["p99_ms"]
        parts.append(f"auth flood: p50 {base['p50_ms']:.2f} ms -> {fb['p50_ms']:.2f} ms "
                     f"({r50:.2f}x), p99 {base['p99_ms']:.2f} ms -> {fb['p99_ms']:.2f} ms "
                     f"({r99:.2f}x) (target <= {TARGET_RATIO:.0f}x); "
                     f"{fl['auth_per_s']:.1f} AUTH/s")
        if r50 > TARGET_RATIO or r99 > TARGET_RATIO or fb["n"] < base["n"]:
            ok = False
    if cost:
        parts.append(f"banned connection: {cost['us_per_conn']:.2f} us CPU "
                     f"(target < {TARGET_BANNED_US:.0f} us)")
        if cost["us_per_conn"] >= TARGET_BANNED_US or cost["greeted"]:
            ok = False
    if fl and fl["banned"]["greeted"]:
        ok = False
    if parts:
        out.append("; ".join(parts))
    print("\n".join(out), flush=True)
    return ok


def distinct_ports(n):
    ports = set()
    for _ in range(100):
        ports.add(free_port())
        if len(ports) == n:
            return sorted(ports)
    raise BenchError("cannot find free loopback ports")


def main(argv):
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    catch_signals()
    if not 1 <= args.guessers <= 254 or not 1 <= args.banned <= 254:
        print("bench_auth.py: --guessers and --banned: 1 to 254", file=sys.stderr)
        return 2
    raise_nofile(4096)  # inherited by bulwarkd

    tmp = make_workdir("bulwark-bench-auth-")
    warn_if_loaded()
    report = {"args": {k: v for k, v in vars(args).items()
                       if k not in ("worker", "source", "ports", "max_seconds", "max_attempts")}}
    bw = None
    status = 0
    try:
        smtp_port, sub_port, http_port = distinct_ports(3)
        bw = AuthBenchInstance(tmp, smtp_port, sub_port, http_port, args.build_dir,
                               ignoreip=IGNOREIP, log_level=args.bulwark_log_level)
        bw.setup()
        bw.start()
        wait_for_port("127.0.0.1", sub_port, 30, proc=bw.proc)
        banned = [f"{BANNED_NET}{i}" for i in range(1, args.banned + 1)]
        report["ban_method"] = ban_sources(bw, banned, args.ban_method)
        log(f"bans: {len(banned)} addresses {banned[0]}..{banned[-1]} dropped at accept "
            f"({report['ban_method']})")

        if args.warmup:
            transactions(bw, args.warmup, "warm-up", args.phase_timeout)
        rounds = max(1, min(args.rounds, args.transactions))
        steps, lat, floods = [], [], []
        first = args.warmup
        for r in range(rounds):
            n = args.transactions // rounds + (1 if r < args.transactions % rounds else 0)
            if r > 0:
                wait_quiet(bw)   # the last flood's queued password checks first
            lat += transactions(bw, n, "baseline", args.phase_timeout, first=first, steps=steps)
            first += n
            report["baseline"] = summarize(lat, steps)
            log(f"baseline: p50 {report['baseline']['p50_ms']:.2f} ms, "
                f"p99 {report['baseline']['p99_ms']:.2f} ms (round {r + 1}/{rounds})")
            floods.append(flood_phase(bw, args, tmp, n, first))
            first += n
            report["flood"] = merge_floods(floods)
            log(f"flood: p50 {report['flood']['latency']['p50_ms']:.2f} ms, "
                f"p99 {report['flood']['latency']['p99_ms']:.2f} ms (round {r + 1}/{rounds})")
            if not bw.alive():
                raise BenchError(f"bulwarkd died during the flood\n{read_tail(bw.logfile)}")

        wait_quiet(bw)  # let the flood's last sessions and jobs finish
        report["banned_cost"] = banned_cost_phase(bw, args, tmp)
        if not bw.alive():
            raise BenchError(f"bulwarkd died during the banned-connection phase\n"
                             f"{read_tail(bw.logfile)}")

        # Sanity: every measured message made it into the Maildir.
        want = args.warmup + 2 * args.transactions
        deadline = time.monotonic() + 30
        while count_files(bw.maildir_new) < want and time.monotonic() < deadline:
            time.sleep(0.1)
        got = count_files(bw.maildir_new)
        if got < want:
            log(f"warning: only {got}/{want} messages in {bw.maildir_new} after 30 s")
        report["delivered"] = got

        ok = print_report(report)
        if args.json:
            report.get("flood", {}).pop("raw", None)
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
        if args.strict and not ok:
            status = 1
    except (BenchError, OSError, Interrupted, KeyboardInterrupt) as e:
        print(f"bench_auth.py: {type(e).__name__ + ': ' if isinstance(e, OSError) else ''}"
              f"{e or type(e).__name__}", file=sys.stderr)
        if "baseline" in report:
            print_report(report)
        status = exit_status(e)
    finally:
        shut_down(tmp, args.keep, status, "config, data and log", bw)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
