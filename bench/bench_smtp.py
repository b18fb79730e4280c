#!/usr/bin/python3
"""bulwark vs Postfix, measured in the same run on the same machine.

  make bench                      # build, then this script with its defaults
  bench/bench_smtp.py --help

1. End-to-end throughput: Postfix's smtp-source sends --messages messages of
   --size payload bytes over --sessions parallel sessions (one SMTP session per
   message) to each server; the clock runs from smtp-source's start until the
   last message is a file in the user's Maildir new/. Both servers fsync (Postfix
   by default, bulwark always). A warm-up of --warmup messages goes first.
2. Idle sessions: --idle sessions to bulwark (connect, greeting, EHLO, then
   silence) and the daemon's RSS; --idle-postfix sessions to Postfix and the
   PSS its processes need per session, for comparison.

Runs as root (Postfix's master must); everything listens on 127.0.0.1 only,
every wait is bounded, and everything started is stopped on the way out, also
on Ctrl-C or SIGTERM.
"""

import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import (BenchError, Interrupted, arg_parser, catch_signals, drive,  # noqa: E402
                      end_perf, exit_status, free_port, log, make_workdir, measured_run,
                      proc_status_kb, raise_nofile, shut_down, warn_if_loaded)
from bulwark_instance import BulwarkInstance  # noqa: E402
from idle_sessions import IdleSessions  # noqa: E402
from postfix_instance import PostfixInstance  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TARGET_RATIO = 2.0        # bulwark at least 2x Postfix end-to-end
TARGET_IDLE_MB = 150.0    # 10,000 idle sessions under 150 MB RSS


def parse_args(argv):
    p = arg_parser(__doc__)
    p.add_argument("--messages", type=int, default=5000, help="messages per measured run (5000)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up messages per server (200)")
    p.add_argument("--sessions", type=int, default=50, help="parallel SMTP sessions (50)")
    p.add_argument("--size", type=int, default=5120, help="message payload bytes (5120)")
    p.add_argument("--rounds", type=int, default=1,
                   help="measured runs per server, the best one is reported (1)")
    p.add_argument("--idle", type=int, default=10000, help="idle sessions held to bulwark (10000)")
    p.add_argument("--idle-postfix", type=int, default=200,
                   help="idle sessions held to Postfix for the PSS comparison (200)")
    p.add_argument("--idle-hold", type=float, default=5.0,
                   help="seconds the idle sessions stay open before they are counted (5)")
    p.add_argument("--pause", type=float, default=5.0,
                   help="seconds of quiet (after a sync) before each measured run (5)")
    p.add_argument("--only", choices=("both", "postfix", "bulwark"), default="both")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-idle", action="store_true")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                   help="where bulwarkd and bulwarkctl are (build/)")
    p.add_argument("--bulwark-log-level", default="info",
                   help="log_level in the bench config (info, the default, like Postfix's maillog)")
    p.add_argument("--timeout", type=float, default=0,
                   help="seconds one run may take before it counts as failed (default: 60 + messages/20)")
    p.add_argument("--perf", metavar="FILE",
                   help="perf record -g bulwarkd during its first measured run into FILE, "
                        "then print the top symbols")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, Maildirs)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a target (ratio >= 2, idle RSS < 150 MB) is missed")
    return p.parse_args(argv)


def stop_perf(proc, path):
    if not end_perf(proc):
        return
    def report(*extra):
        r = subprocess.run(["perf", "report", "-i", path, "--stdio", "-g", "none", *extra],
                           capture_output=True, text=True, timeout=120)
        return [" ".join(l.replace(" - ", " ").split()) for l in r.stdout.splitlines()
                if l.strip() and not l.startswith("#")]
    try:
        own = report("--no-children", "--sort", "dso,sym", "--percent-limit", "1.5")[:15]
        calls = [l for l in report("--children", "--sort", "sym", "--percent-limit", "2")
                 if "__x64_sys_" in l][:10]
        log(f"perf ({path}): where bulwarkd's CPU went during its first measured run\n"
            "  self time by symbol:\n    " + "\n    ".join(own)
            + "\n  by system call (children, self):\n    " + "\n    ".join(calls))
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"perf report failed: {e}")


def throughput(servers, args, workdir):
    """Warm each server up, then measured runs, alternating between the servers
    round by round so that a burst of other load on the machine hits both.
    SERVERS: [(name, instance)]. Returns the best run of each."""
    timeout = args.timeout or 60 + args.messages / 20
    for name, server in servers:
        if args.warmup:
            w = drive(name, "127.0.0.1", server.port, server.maildir_new, args.warmup,
                      min(args.sessions, args.warmup), args.size, workdir, timeout,
                      alive=server.alive)
            log(f"{name}: warm-up {w['messages']} msgs in {w['seconds']:.2f}s ({w['rate']:.0f} msg/s)")
    best = {}
    for r in range(args.rounds):
        for name, server in servers:
            # Let the previous run's writeback and ext4's "recently deleted inode"
            # window pass, so one server's churn does not slow the next one down.
            os.sync()
            time.sleep(args.pause)
            pid = getattr(server, "pid", None)
            res = measured_run(
                pid, args.perf if r == 0 else None,
                lambda: drive(name, "127.0.0.1", server.port, server.maildir_new, args.messages,
                              args.sessions, args.size, workdir, timeout, alive=server.alive),
                stop_perf)
            log(f"{name}: run {r + 1}: {res['messages']} msgs, accepted in {res['accept_seconds']:.2f}s, "
                f"in Maildir after {res['seconds']:.2f}s ({res['rate']:.0f} msg/s); machine CPU "
                f"{res['cpu_busy'] * 100:.0f}% busy, {res['cpu_iowait'] * 100:.0f}% iowait"
                + (f"; daemon {res['server_cpu_ms_per_msg']:.2f} ms CPU/msg"
                   if "server_cpu_ms_per_msg" in res else ""))
            if name not in best or res["rate"] > best[name]["rate"]:
                best[name] = res
    for name, server in servers:
        check_maildir(name, server.maildir_new, args.size)
    return [best[name] for name, _ in servers]


def check_maildir(name, maildir_new, size):
    """Sanity: the delivered files hold the whole payload."""
    with os.scandir(maildir_new) as it:
        entries = [e for _, e in zip(range(50), it)]
    short = [e.name for e in entries if e.stat().st_size < size]
    if short:
        raise BenchError(f"{name}: {len(short)} delivered files are shorter than {size} bytes, "
                         f"e.g. {os.path.join(maildir_new, short[0])}")


def idle_postfix(pf, args):
    # A fresh start, so that the smtpd, cleanup and virtual processes left idle
    # by the throughput run are not counted in the baseline.
    pf.stop()
    pf.start()
    time.sleep(1)
    base_kb, base_pids = pf.pss_kb()
    sess = IdleSessions("127.0.0.1", pf.port, args.idle_postfix)
    try:
        sess.open_all(timeout=60 + args.idle_postfix / 10)
        sess.hold(min(args.idle_hold, 2.0))
        kb, pids = pf.pss_kb()
        res = {
            "server": "postfix", "sessions": args.idle_postfix, "greeted": sess.greeted,
            "idle": sess.idle_count(), "failures": dict(sess.failures),
            "processes": len(pids), "base_processes": len(base_pids),
            "mem_mb": kb / 1024, "base_mb": base_kb / 1024,
        }
    finally:
        sess.close()
    n = max(res["idle"], 1)
    res["per_session_kb"] = (kb - base_kb) / n
    log(f"postfix idle: {res['idle']}/{args.idle_postfix} idle sessions, {len(pids)} processes, "
        f"PSS {res['mem_mb']:.1f} MB (was {res['base_mb']:.1f} MB), "
        f"{res['per_session_kb'] / 1024:.2f} MiB per session")
    return res


def idle_bulwark(bw, args):
    base_kb = proc_status_kb(bw.pid, "VmRSS") or 0
    sess = IdleSessions("127.0.0.1", bw.port, args.idle)
    try:
        secs = sess.open_all(timeout=120 + args.idle / 50)
        sess.hold(args.idle_hold)
        if not bw.alive():
            raise BenchError("bulwark: bulwarkd died during the idle-session test")
        kb = proc_status_kb(bw.pid, "VmRSS") or 0
        hwm = proc_status_kb(bw.pid, "VmHWM") or 0
        res = {
            "server": "bulwark", "sessions": args.idle, "greeted": sess.greeted,
            "idle": sess.idle_count(), "failures": dict(sess.failures),
            "open_seconds": secs, "mem_mb": kb / 1024, "base_mb": base_kb / 1024,
            "hwm_mb": hwm / 1024,
        }
    finally:
        sess.close()
    n = max(res["idle"], 1)
    res["per_session_kb"] = (kb - base_kb) / n
    log(f"bulwark idle: {res['greeted']}/{args.idle} greeted, {res['idle']} still idle after "
        f"{args.idle_hold:.0f}s, opened in {secs:.1f}s, RSS {res['mem_mb']:.1f} MB "
        f"(was {res['base_mb']:.1f} MB)")
    return res


def print_report(args, tp, idle):
    out = []
    if tp:
        out.append("")
        out.append(f"End-to-end into Maildir: {args.messages} messages, {args.size}-byte payload, "
                   f"{args.sessions} parallel sessions (smtp-source, one session per message)")
        out.append(f"{'server':<10}{'messages':>10}{'seconds':>10}{'msg/s':>10}"
                   f"{'accepted s':>12}{'accept msg/s':>14}{'CPU busy':>10}{'iowait':>8}")
        for r in tp:
            out.append(f"{r['server']:<10}{r['messages']:>10}{r['seconds']:>10.2f}{r['rate']:>10.0f}"
                       f"{r['accept_seconds']:>12.2f}{r['accept_rate']:>14.0f}"
                       f"{r['cpu_busy'] * 100:>9.0f}%{r['cpu_iowait'] * 100:>7.0f}%")
    by = {r["server"]: r for r in tp}
    ratio = None
    if "bulwark" in by and "postfix" in by:
        ratio = by["bulwark"]["rate"] / by["postfix"]["rate"]
        out.append(f"ratio bulwark/postfix: {ratio:.2f} (target >= {TARGET_RATIO:.1f})")
    ib = next((r for r in idle if r["server"] == "bulwark"), None)
    ip = next((r for r in idle if r["server"] == "postfix"), None)
    if idle:
        out.append("")
        out.append("Idle sessions (connect, 220, EHLO, 250, then silent)")
        out.append(f"{'server':<10}{'sessions':>10}{'greeted':>10}{'idle':>8}{'memory MB':>12}"
                   f"{'before MB':>12}{'MB/1000 sess':>14}")
        for r in idle:
            per_k = r["per_session_kb"] * 1000 / 1024
            what = "RSS" if r["server"] == "bulwark" else "PSS"
            out.append(f"{r['server']:<10}{r['sessions']:>10}{r['greeted']:>10}{r['idle']:>8}"
                       f"{r['mem_mb']:>8.1f} {what}{r['base_mb']:>12.1f}{per_k:>14.1f}")
            if r["failures"]:
                out.append(f"    {r['server']} failures: {r['failures']}")
        if ip:
            out.append(f"postfix: {ip['processes']} processes, "
                       f"{ip['per_session_kb'] / 1024:.2f} MiB PSS per idle session")
    out.append("")
    load = os.getloadavg()
    out.append(f"machine: {os.cpu_count()} CPUs, load average now {load[0]:.2f} {load[1]:.2f} "
               f"{load[2]:.2f} (other work on the machine skews these numbers)")
    ok = True
    if by.get("bulwark") or by.get("postfix"):
        b = f"{by['bulwark']['rate']:.0f}" if "bulwark" in by else "-"
        p = f"{by['postfix']['rate']:.0f}" if "postfix" in by else "-"
        r = f"{ratio:.2f}" if ratio is not None else "-"
        out.append(f"end-to-end: bulwark {b} msg/s, postfix {p} msg/s, ratio {r}")
        if ratio is not None and ratio < TARGET_RATIO:
            ok = False
    if ib:
        out.append(f"idle: {ib['idle']}/{ib['sessions']} sessions, RSS {ib['mem_mb']:.1f} MB "
                   f"({ib['per_session_kb'] * 1000 / 1024:.1f} MB per 1000 sessions over the "
                   f"{ib['base_mb']:.1f} MB before; target < {TARGET_IDLE_MB:.0f} MB)")
        if ib["idle"] < ib["sessions"] or ib["mem_mb"] >= TARGET_IDLE_MB:
            ok = False
    print("\n".join(out), flush=True)
    return ok


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0 and args.only != "bulwark":
        print("bench_smtp.py: the Postfix half needs root (run as root, or --only bulwark)",
              file=sys.stderr)
        return 2
    catch_signals()
    want_fds = max(args.idle, args.idle_postfix) * 2 + 4096
    nofile = raise_nofile(want_fds)  # inherited by bulwarkd too
    if nofile < args.idle + 512:
        log(f"warning: RLIMIT_NOFILE is {nofile}, fewer than --idle {args.idle} needs")

    tmp = make_workdir("bulwark-bench-")
    warn_if_loaded()
    tp, idle = [], []
    pf = bw = None
    status = 0
    try:
        servers = []
        if args.only in ("both", "bulwark"):  # fail before anything is started
            BulwarkInstance(tmp, 0, args.build_dir).check_binaries()
        if args.only in ("both", "postfix"):
            pf = PostfixInstance(tmp, free_port(), process_limit=max(100, args.idle_postfix + 50))
            pf.setup()
            pf.start()
            servers.append(("postfix", pf))
        if args.only in ("both", "bulwark"):
            bw = BulwarkInstance(tmp, free_port(), args.build_dir,
                                 max_conn=max(20000, args.idle + 100),
                                 log_level=args.bulwark_log_level)
            bw.setup()
            bw.start()
            servers.append(("bulwark", bw))
        if not args.skip_throughput:
            tp = throughput(servers, args, tmp)
        if pf is not None:
            if not args.skip_idle and args.idle_postfix > 0:
                idle.append(idle_postfix(pf, args))
            pf.stop()
        if bw is not None:
            if not args.skip_idle and args.idle > 0:
                idle.append(idle_bulwark(bw, args))
            bw.stop()
        ok = print_report(args, tp, idle)
        if args.strict and not ok:
            status = 1
    except (BenchError, Interrupted, KeyboardInterrupt) as e:
        print(f"bench_smtp.py: {e or type(e).__name__}", file=sys.stderr)
        if tp or idle:
            print_report(args, tp, idle)
        status = exit_status(e)
    finally:
        shut_down(tmp, args.keep, status, "logs and Maildirs", bw, pf)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
