#!/usr/bin/python3
"""Outbound relay throughput: bulwark (DKIM signing on) vs Postfix, same run.

  make bench                        # runs this after bench_smtp.py
  bench/bench_outbound.py --help

One Postfix smtp-sink on 127.0.0.1 plays the remote MX; both servers relay
to it (bulwark: outbound.smarthost, Postfix: relayhost), one after the
other. Postfix's smtp-source sends --messages messages of --size payload
bytes from sender@bench.test to a remote address, over --sessions parallel
sessions (one SMTP session per message), from 127.0.0.1 (mynetworks of
both). The clock runs from smtp-source's start until smtp-sink has counted
the last message. Both servers fsync their queue (Postfix by default,
bulwark always), both send at most --concurrency connections at once to the
sink (bulwark: outbound.max_per_destination; Postfix:
default_destination_concurrency_limit), both may reuse connections
(Postfix's connection cache on demand; bulwark's idle window). bulwark signs
every message twice (rsa-sha256 2048 and ed25519-sha256: the default keys of
`bulwarkctl dkim keygen`); Postfix signs nothing.

Runs as root (Postfix's master must); everything listens on 127.0.0.1 only,
every wait is bounded, everything started is stopped on the way out.
"""

import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import (BENCH_DOMAIN, BenchError, Interrupted, arg_parser,  # noqa: E402
                      catch_signals, cpu_share_since, cpu_times, end_perf, exit_status,
                      free_port, log, make_workdir, measured_run, raise_nofile,
                      reap_smtp_source, run_smtp_source, shut_down, smtp_source_done,
                      terminate, wait_for_port, warn_if_loaded)
from bulwark_instance import BulwarkInstance  # noqa: E402
from postfix_instance import PostfixInstance  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTCONF = "/usr/sbin/postconf"
TARGET_RATIO = 1.5          # bulwark at least 1.5x Postfix
SENDER = f"sender@{BENCH_DOMAIN}"   # From: bench.test, whose keys sign
RCPT = "user@remote.example"        # not local to either server


def parse_args(argv):
    p = arg_parser(__doc__)
    p.add_argument("--messages", type=int, default=3000, help="messages per measured run (3000)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up messages per server (200)")
    p.add_argument("--sessions", type=int, default=20, help="parallel inbound SMTP sessions (20)")
    p.add_argument("--concurrency", type=int, default=20,
                   help="outbound connections to the sink at once, both servers (20)")
    p.add_argument("--size", type=int, default=5120, help="message payload bytes (5120)")
    p.add_argument("--rounds", type=int, default=1,
                   help="measured runs per server, alternating; the best is reported (1)")
    p.add_argument("--pause", type=float, default=3.0,
                   help="seconds of quiet (after a sync) before each measured run (3)")
    p.add_argument("--only", choices=("both", "postfix", "bulwark"), default="both")
    p.add_argument("--no-dkim", action="store_true", help="bulwark without DKIM keys")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                   help="where bulwarkd and bulwarkctl are (build/)")
    p.add_argument("--bulwark-log-level", default="info",
                   help="log_level in the bench config (info, like Postfix's maillog)")
    p.add_argument("--timeout", type=float, default=0,
                   help="seconds one run may take (default: 60 + messages/20)")
    p.add_argument("--perf", metavar="FILE",
                   help="perf record -g bulwarkd during its first measured run into FILE")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when the target (ratio >= 1.5) is missed")
    return p.parse_args(argv)


class Sink:
    """smtp-sink -c on a free loopback port; counts from its running counter."""

    COUNTER = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")

    def __init__(self, tmp):
        self.port = free_port()
        self.out = os.path.join(tmp, "smtp-sink.out")
        self.proc = None

    def start(self):
        if not os.access(SMTP_SINK, os.X_OK):
            raise BenchError(f"{SMTP_SINK} is missing (BULWARK_DEPS_BENCH=1 scripts/deps.sh)")
        out = open(self.out, "wb")
        try:
            # -u: required as root; -m: connections it serves at once; backlog 1024.
            self.proc = subprocess.Popen(
                [SMTP_SINK, "-c", "-u", "nobody", "-m", "1000", f"127.0.0.1:{self.port}", "1024"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            out.close()
        wait_for_port("127.0.0.1", self.port, 10, proc=self.proc)
        log(f"smtp-sink: 127.0.0.1:{self.port}")

    def counters(self):
        """(sessions ended, messages) so far: smtp-sink counts a session when it ends."""
        try:
            with open(self.out, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 200))
                tail = f.read()
        except OSError:
            return 0, 0
        found = self.COUNTER.findall(tail)
        if not found:
            return 0, 0
        sess, _, mesg = found[-1]
        return int(sess), int(mesg)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        terminate(self.proc, grace=5)
        self.proc = None


class OutboundPostfix(PostfixInstance):
    """The bench Postfix, relaying everything not local to the sink."""

    def __init__(self, tmp, port, sink_port, concurrency):
        super().__init__(tmp, port, process_limit=max(100, 2 * concurrency + 20))
        self.sink_port = sink_port
        self.concurrency = concurrency

    def setup(self):
        super().setup()
        r = subprocess.run([POSTCONF, "-c", self.conf, "-e",
                            f"relayhost = [127.0.0.1]:{self.sink_port}",
                            f"default_destination_concurrency_limit = {self.concurrency}",
                            f"smtp_destination_concurrency_limit = {self.concurrency}",
                            "smtp_tls_security_level = none",   # smtp-sink offers no STARTTLS
                            "smtp_dns_support_level = disabled"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise BenchError(f"postconf failed: {(r.stdout + r.stderr).strip()}")


OUTBOUND_CONFIG = """
outbound:
  smarthost: 127.0.0.1:{sink_port}
  max_connections: {max_conn}
  max_per_destination: {concurrency}
"""


class OutboundBulwark(BulwarkInstance):
    """The bench bulwarkd, relaying to the sink, with DKIM keys for bench.test."""

    def __init__(self, tmp, port, build_dir, sink_port, concurrency, dkim=True, log_level="info"):
        super().__init__(tmp, port, build_dir, max_conn=1000, log_level=log_level)
        self.sink_port = sink_port
        self.concurrency = concurrency
        self.dkim = dkim

    def setup(self):
        super().setup()
        with open(self.config, "a") as f:
            f.write(OUTBOUND_CONFIG.format(sink_port=self.sink_port, concurrency=self.concurrency,
                                           max_conn=max(100, self.concurrency)))
        if self.dkim:
            self._ctl("dkim", "keygen", BENCH_DOMAIN)   # rsa-sha256 2048 + ed25519-sha256


def drive(name, server, sink, messages, sessions, size, workdir, timeout):
    """Send MESSAGES through SERVER; wait until the sink has counted them all."""
    sess0, base = sink.counters()
    target = base + messages
    cpu0 = cpu_times()
    t0 = time.monotonic()
    proc = run_smtp_source("127.0.0.1", server.port, messages, sessions, size,
                           "client.bench.example", workdir, sender=SENDER, rcpt=RCPT)
    accepted_at = done_at = None
    next_check = 0.0
    try:
        deadline = t0 + timeout
        while True:
            now = time.monotonic()
            if accepted_at is None and smtp_source_done(name, proc):
                accepted_at = now
            if now >= next_check:
                next_check = now + 0.5
                if not server.alive():
                    raise BenchError(f"{name}: the server died during the run")
                if not sink.alive():
                    raise BenchError("smtp-sink died during the run")
            sess, n = sink.counters()
            if n >= target and accepted_at is not None:
                done_at = time.monotonic()
                break
            if now > deadline:
                raise BenchError(f"{name}: only {n - base}/{messages} messages at the sink after "
                                 f"{timeout:.0f}s (smtp-source "
                                 f"{'running' if proc.poll() is None else 'done'})")
            time.sleep(0.01)
    finally:
        reap_smtp_source(proc)
    total = done_at - t0
    return {
        "server": name, "messages": messages, "seconds": total,
        "rate": messages / total if total > 0 else float("inf"),
        "accept_seconds": accepted_at - t0,
        "connections": sess - sess0,
        **cpu_share_since(cpu0),
    }


def stop_perf(proc, path):
    if not end_perf(proc):
        return
    r = subprocess.run(["perf", "report", "-i", path, "--stdio", "-g", "none", "--no-children",
                        "--sort", "dso,sym", "--percent-limit", "1.5"],
                       capture_output=True, text=True, timeout=120)
    top = [" ".join(l.split()) for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")]
    log(f"perf ({path}): bulwarkd's self time by symbol\n    " + "\n    ".join(top[:20]))


def throughput(servers, sink, args, workdir):
    timeout = args.timeout or 60 + args.messages / 20
    for name, server in servers:
        if args.warmup:
            w = drive(name, server, sink, args.warmup, min(args.sessions, args.warmup), args.size,
                      workdir, timeout)
            log(f"{name}: warm-up {w['messages']} msgs in {w['seconds']:.2f}s ({w['rate']:.0f} msg/s)")
    best = {}
    for r in range(args.rounds):
        for name, server in servers:
            os.sync()
            time.sleep(args.pause)
            pid = getattr(server, "pid", None)
            res = measured_run(
                pid, args.perf if r == 0 else None,
                lambda: drive(name, server, sink, args.messages, args.sessions, args.size,
                              workdir, timeout),
                stop_perf)
            log(f"{name}: run {r + 1}: {res['messages']} msgs accepted in "
                f"{res['accept_seconds']:.2f}s, all at the sink after {res['seconds']:.2f}s "
                f"({res['rate']:.0f} msg/s); {res['connections']} sink sessions ended meanwhile; machine CPU "
                f"{res['cpu_busy'] * 100:.0f}% busy, {res['cpu_iowait'] * 100:.0f}% iowait"
                + (f"; daemon {res['server_cpu_ms_per_msg']:.2f} ms CPU/msg"
                   if "server_cpu_ms_per_msg" in res else ""))
            if name not in best or res["rate"] > best[name]["rate"]:
                best[name] = res
    return [best[name] for name, _ in servers]


def print_report(args, tp, dkim):
    out = ["", f"Outbound relay to smtp-sink: {args.messages} messages, {args.size}-byte payload, "
           f"{args.sessions} inbound sessions, at most {args.concurrency} connections to the sink; "
           f"bulwark DKIM signing {'on (rsa-sha256 + ed25519-sha256)' if dkim else 'OFF'}",
           f"{'server':<10}{'messages':>10}{'seconds':>10}{'msg/s':>10}{'accepted s':>12}"
           f"{'sink ended':>12}{'CPU busy':>10}{'iowait':>8}"]
    for r in tp:
        out.append(f"{r['server']:<10}{r['messages']:>10}{r['seconds']:>10.2f}{r['rate']:>10.0f}"
                   f"{r['accept_seconds']:>12.2f}{r['connections']:>12}"
                   f"{r['cpu_busy'] * 100:>9.0f}%{r['cpu_iowait'] * 100:>7.0f}%")
    by = {r["server"]: r for r in tp}
    ok = True
    load = os.getloadavg()
    out.append(f"machine: {os.cpu_count()} CPUs, load average now {load[0]:.2f} {load[1]:.2f} "
               f"{load[2]:.2f} (other work on the machine skews these numbers)")
    if "bulwark" in by and "postfix" in by:
        ratio = by["bulwark"]["rate"] / by["postfix"]["rate"]
        out.append(f"outbound: bulwark {by['bulwark']['rate']:.0f} msg/s, postfix "
                   f"{by['postfix']['rate']:.0f} msg/s, ratio {ratio:.2f} "
                   f"(target >= {TARGET_RATIO:.1f})")
        ok = ratio >= TARGET_RATIO
    print("\n".join(out), flush=True)
    return ok


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench_outbound.py: smtp-sink and Postfix need root", file=sys.stderr)
        return 2
    catch_signals()
    raise_nofile(8192)
    tmp = make_workdir("bulwark-bench-out-")
    warn_if_loaded(why="")
    tp = []
    sink = pf = bw = None
    status = 0
    try:
        if args.only in ("both", "bulwark"):
            BulwarkInstance(tmp, 0, args.build_dir).check_binaries()
        sink = Sink(tmp)
        os.chmod(tmp, 0o755)
        sink.start()
        servers = []
        if args.only in ("both", "postfix"):
            pf = OutboundPostfix(tmp, free_port(), sink.port, args.concurrency)
            pf.setup()
            pf.start()
            servers.append(("postfix", pf))
        if args.only in ("both", "bulwark"):
            bw = OutboundBulwark(tmp, free_port(), args.build_dir, sink.port, args.concurrency,
                                 dkim=not args.no_dkim, log_level=args.bulwark_log_level)
            bw.setup()
            bw.start()
            servers.append(("bulwark", bw))
        tp = throughput(servers, sink, args, tmp)
        if bw is not None and not args.no_dkim:
            with open(bw.logfile, "rb") as f:
                signed = f.read().count(b"event=dkim.signed")
            if signed < args.messages:
                raise BenchError(f"bulwark: only {signed} dkim.signed lines for "
                                 f"{args.messages + args.warmup} messages")
        ok = print_report(args, tp, not args.no_dkim)
        if args.strict and not ok:
            status = 1
    except (BenchError, Interrupted, KeyboardInterrupt) as e:
        print(f"bench_outbound.py: {e or type(e).__name__}", file=sys.stderr)
        if tp:
            print_report(args, tp, not args.no_dkim)
        status = exit_status(e)
    finally:
        shut_down(tmp, args.keep, status, "logs", bw, pf, sink)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
