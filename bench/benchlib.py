"""Small helpers shared by the bulwark benchmarks (stdlib only).

Everything here is bounded: every wait has a deadline, every process we start
is remembered so that the caller can stop it on the way out.
"""

import argparse
import errno
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCH_DOMAIN = "bench.test"
BENCH_USER = "user@bench.test"
BENCH_SENDER = "sender@bench.test"
SMTP_SOURCE = "/usr/sbin/smtp-source"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def arg_parser(doc):
    """The ArgumentParser of a bench script whose module docstring is DOC."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


class BenchError(Exception):
    """A benchmark step failed; the message says which and why."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived (raised by on_signal)."""


def on_signal(signum, frame):
    """Signal handler for the bench scripts: turn the signal into Interrupted."""
    raise Interrupted(f"signal {signal.Signals(signum).name}")


def catch_signals():
    """SIGTERM and SIGHUP raise Interrupted, SIGINT KeyboardInterrupt (even
    when the script was started with it ignored)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def ignore_signals():
    """From here on, a second Ctrl-C (or SIGTERM, SIGHUP) must not skip the clean-up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def exit_status(e):
    """A bench script's exit status for the exception E that ended it."""
    return 130 if isinstance(e, (Interrupted, KeyboardInterrupt)) else 1


def make_workdir(prefix):
    tmp = tempfile.mkdtemp(prefix=prefix)
    log(f"work dir {tmp}")
    return tmp


def warn_if_loaded(why="the machine is busy, "):
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"warning: load average is {load:.2f} before the start: {why}"
            f"the numbers will be noisy")


def remove_workdir(tmp, keep, status, what):
    """Remove TMP, unless KEEP or the run failed (STATUS not 0 or 130) and left
    something there: then say that WHAT is kept."""
    if keep or (status not in (0, 130) and os.listdir(tmp)):
        log(f"{what} kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def shut_down(tmp, keep, status, what, *servers):
    """The end of a bench script's main: ignore signals, stop every server
    of SERVERS that is not None (in that order), then remove_workdir."""
    ignore_signals()
    for server in servers:
        if server is not None:
            server.stop()
    remove_workdir(tmp, keep, status, what)


def wait_for_port(host, port, timeout, proc=None, greeting=b"220", bye=b"QUIT\r\n",
                  failed="did not greet"):
    """Wait until HOST:PORT accepts a connection and sends a GREETING (SMTP's
    220 by default; IMAP: b"* OK"), answer it with BYE; return the banner."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process exited with {proc.returncode} before {host}:{port} answered")
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(5)
                banner = s.recv(512)
                if banner.startswith(greeting):
                    try:
                        s.sendall(bye)
                    except OSError:
                        pass
                    return banner.decode("ascii", "replace").strip()
                last = banner
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise BenchError(f"{host}:{port} {failed} within {timeout}s (last: {last!r})")


def count_files(path):
    """How many entries a directory holds (0 while it does not exist)."""
    try:
        with os.scandir(path) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def raise_nofile(want):
    """Raise RLIMIT_NOFILE to at least WANT if we can; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard < want:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                nr_open = int(f.read())
        except OSError:
            nr_open = hard
        new_hard = min(max(want, hard), nr_open)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_hard, new_hard))
            hard = new_hard
        except (ValueError, OSError):
            pass  # not root: stay within the hard limit
    soft = min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def proc_status_kb(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM, ...), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_pss_kb(pid):
    """Pss of one process from /proc/PID/smaps_rollup, in kB (0 if gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def children_of(ppid):
    """Pids whose parent is PPID (one level)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: split after the last ')'.
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == ppid:
            kids.append(int(name))
    return kids


def process_tree(root):
    """ROOT and all its descendants."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children_of(pid))
    return out


def proc_comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def run_smtp_source(host, port, messages, sessions, size, helo, workdir,
                    sender=BENCH_SENDER, rcpt=BENCH_USER):
    """Start smtp-source against HOST:PORT; returns the Popen (output to a file).

    -s sessions in parallel, -l payload bytes, -m messages in total; each
    message is its own SMTP session (connect, EHLO, MAIL, RCPT, DATA, QUIT),
    like an MX sees it.
    """
    out = open(os.path.join(workdir, f"smtp-source-{port}-{messages}.out"), "wb")
    cmd = [SMTP_SOURCE, "-c", "-s", str(sessions), "-l", str(size), "-m", str(messages),
           "-M", helo, "-f", sender, "-t", rcpt, f"{host}:{port}"]
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proc.bench_out = out  # closed by the caller through finish_smtp_source
    proc.bench_cmd = cmd
    return proc


def read_tail(path, limit=2000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"({path}: {e})"


def cpu_times():
    """Machine-wide jiffies from /proc/stat: (busy, iowait, total)."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (parts + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, iowait, busy + idle + iowait


def cpu_share_since(cpu0):
    """The machine's CPU busy and iowait shares since CPU0 (a cpu_times())."""
    cpu1 = cpu_times()
    span = max(cpu1[2] - cpu0[2], 1)
    return {"cpu_busy": (cpu1[0] - cpu0[0]) / span, "cpu_iowait": (cpu1[1] - cpu0[1]) / span}


def proc_cpu_seconds(pid):
    """utime + stime of PID (all its threads), in seconds; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def smtp_source_done(name, proc):
    """Whether smtp-source PROC has exited (BenchError if it failed)."""
    if proc.poll() is None:
        return False
    if proc.returncode != 0:
        proc.bench_out.flush()
        raise BenchError(f"{name}: smtp-source exited {proc.returncode}: "
                         f"{read_tail(proc.bench_out.name, 600)!r}")
    return True


def reap_smtp_source(proc):
    """Kill smtp-source PROC if it still runs, reap it, close its output file."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.bench_out.close()


def drive(name, host, port, maildir_new, messages, sessions, size, workdir, timeout,
          helo="client.bench.example", alive=None):
    """Send MESSAGES with smtp-source and wait until they all sit in MAILDIR_NEW.

    Returns a dict: seconds until smtp-source finished (all 250s received),
    seconds until the last message was in the Maildir, and the rates.
    ALIVE, if given, is called now and then; False means the server died.
    """
    base = count_files(maildir_new)
    target = base + messages
    cpu0 = cpu_times()
    t0 = time.monotonic()
    proc = run_smtp_source(host, port, messages, sessions, size, helo, workdir)
    accepted_at = None
    next_count = 0.0
    try:
        deadline = t0 + timeout
        while True:
            now = time.monotonic()
            if accepted_at is None and smtp_source_done(name, proc):
                accepted_at = now
            # Listing a directory of thousands of files costs CPU the servers
            # need: while smtp-source still sends, count twice a second only;
            # once it is done, every 10 ms (that is when the clock stops).
            if accepted_at is not None or now >= next_count:
                if alive is not None and now >= next_count and not alive():
                    raise BenchError(f"{name}: the server died during the run")
                n = count_files(maildir_new)
                next_count = now + 0.5
                if n >= target and accepted_at is not None:
                    done_at = time.monotonic()
                    break
            if now > deadline:
                raise BenchError(
                    f"{name}: only {count_files(maildir_new) - base}/{messages} messages in "
                    f"{maildir_new} after {timeout:.0f}s "
                    f"(smtp-source {'running' if proc.poll() is None else 'done'})")
            time.sleep(0.01)
    finally:
        reap_smtp_source(proc)
    total = done_at - t0
    acc = accepted_at - t0
    return {
        **cpu_share_since(cpu0),
        "server": name,
        "messages": messages,
        "seconds": total,
        "rate": messages / total if total > 0 else float("inf"),
        "accept_seconds": acc,
        "accept_rate": messages / acc if acc > 0 else float("inf"),
    }


def start_perf(pid, path, freq=499):
    """perf record -g on PID into PATH, or None when perf is missing."""
    if not shutil.which("perf"):
        log("perf: not installed, --perf ignored")
        return None
    return subprocess.Popen(["perf", "record", "-F", str(freq), "-g", "-p", str(pid), "-o", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def end_perf(proc):
    """Stop a perf record started by start_perf (SIGINT, so that it writes its
    file); False when there was none (PROC None)."""
    if proc is None:
        return False
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return True


def measured_run(pid, perf_path, run, stop_perf):
    """RUN() (one measured run against the daemon PID, returning a dict with
    "messages"), with perf recording PID meanwhile when PERF_PATH is given
    (STOP_PERF(perf, PERF_PATH) ends and reports it); adds
    "server_cpu_ms_per_msg" when PID's CPU time could be read."""
    perf = start_perf(pid, perf_path) if (perf_path and pid) else None
    cpu0 = proc_cpu_seconds(pid) if pid else None
    try:
        res = run()
    finally:
        cpu1 = proc_cpu_seconds(pid) if pid else None
        stop_perf(perf, perf_path)
    if cpu0 is not None and cpu1 is not None:
        res["server_cpu_ms_per_msg"] = (cpu1 - cpu0) * 1000 / res["messages"]
    return res


def nb_connect(sock, source, host, port):
    """Start a non-blocking connect of SOCK from address SOURCE (port chosen at
    connect time) to HOST:PORT; None, or why it failed ("connect: E...")."""
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        err = sock.connect_ex((host, port))
    except OSError as e:
        return f"connect: {errno.errorcode.get(e.errno, e.errno)}"
    if err not in (0, errno.EINPROGRESS):
        return f"connect: {errno.errorcode.get(err, err)}"
    return None


def nb_event(s, sel, fail, size, connecting, greeting):
    """The first half of a selector event on a non-blocking session S (with
    .sock and .state), the one after nb_connect: in state CONNECTING, finish
    the connect (state GREETING, watched for reading from now on); else read
    up to SIZE bytes. Returns them (b"" when the server closed), or None when
    the caller has nothing to do (connected, nothing to read yet, or FAIL(S,
    why) was called)."""
    if s.state == connecting:
        err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            fail(s, f"connect: {errno.errorcode.get(err, err)}")
            return None
        s.state = greeting
        sel.modify(s.sock, selectors.EVENT_READ, s)
        return None
    try:
        return s.sock.recv(size)
    except BlockingIOError:
        return None
    except OSError as e:
        fail(s, f"recv: {errno.errorcode.get(e.errno, e.errno)}")
        return None


def terminate(proc, grace=10.0):
    """SIGTERM a Popen, SIGKILL after GRACE seconds; always reaps it."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


# ---- helpers for bench/bench_auth.py ----


def proc_sched_seconds(pid):
    """On-CPU time of all PID's threads from /proc/PID/task/*/schedstat, in
    seconds (nanosecond resolution, unlike the clock ticks of /proc/PID/stat;
    threads that already exited are not counted); None if PID is gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def percentile(values, p):
    """Nearest-rank percentile P (0-100] of VALUES (which need not be sorted)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(1, -(-len(s) * p // 100))  # ceil(n * p / 100), at least 1
    return s[int(min(k, len(s))) - 1]


def bound_socket(source, timeout):
    """A TCP socket bound to SOURCE (an address, port chosen at connect time,
    so that many short connections from one address do not run out of ports)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source:
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
    except OSError:
        sock.close()
        raise
    return sock


class SmtpClosed(BenchError):
    """The server closed the connection where a reply was expected."""


class SmtpLineClient:
    """A minimal blocking SMTP client on a raw socket, optionally with
    STARTTLS: no smtplib, so the time measured is the server's and the
    network's, not a library's. Every read has the socket's timeout."""

    def __init__(self, host, port, source=None, timeout=10.0):
        self.sock = bound_socket(source, timeout)
        try:
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.buf = b""

    def read_reply(self):
        """(code, [lines]) of one (possibly multi-line) reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                if len(self.buf) > 65536:
                    raise BenchError(f"SMTP reply line too long: {self.buf[:80]!r}")
                data = self.sock.recv(4096)
                if not data:
                    raise SmtpClosed(f"connection closed (after {lines!r} {self.buf[:80]!r})")
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                try:
                    return int(line[:3]), lines
                except ValueError:
                    raise BenchError(f"not an SMTP reply: {line[:80]!r}") from None

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, line):
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        return self.read_reply()

    def expect(self, line, want):
        """Send LINE (None: just read), check the reply code is WANT."""
        code, lines = self.cmd(line) if line is not None else self.read_reply()
        if code != want:
            raise BenchError(f"{line or 'greeting'}: expected {want}, got {lines!r}")
        return lines

    def starttls(self, ctx):
        self.expect("STARTTLS", 220)
        if self.buf:
            raise BenchError(f"bytes after the STARTTLS reply: {self.buf[:80]!r}")
        self.sock = ctx.wrap_socket(self.sock, server_hostname=None)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


SMTP_STEPS = ("connect", "greeting", "EHLO", "MAIL", "RCPT", "DATA", "message", "QUIT")


def smtp_transaction(host, port, source, sender, rcpt, body, helo, timeout=30.0, steps=None):
    """One whole SMTP transaction as an MX sees it (connect, greeting, EHLO,
    MAIL, RCPT, DATA, QUIT); returns the seconds from connect to the 221.
    STEPS, if a list, gets the seconds of each step of SMTP_STEPS appended
    (the "message" step ends with the 250 after the final dot)."""
    t = [time.perf_counter()]
    c = SmtpLineClient(host, port, source, timeout)
    try:
        t.append(time.perf_counter())
        c.expect(None, 220)
        t.append(time.perf_counter())
        for line, want in ((f"EHLO {helo}", 250), (f"MAIL FROM:<{sender}>", 250),
                           (f"RCPT TO:<{rcpt}>", 250), ("DATA", 354)):
            c.expect(line, want)
            t.append(time.perf_counter())
        c.send(body)
        c.expect(None, 250)
        t.append(time.perf_counter())
        c.expect("QUIT", 221)
        t.append(time.perf_counter())
    finally:
        c.close()
    if steps is not None:
        steps.append([b - a for a, b in zip(t, t[1:])])
    return t[-1] - t[0]


def fetch_metrics(host, port, timeout=10.0):
    """GET /metrics (Prometheus text) -> {'name{labels}': value}."""
    import urllib.request
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as r:
        text = r.read().decode("utf-8", "replace")
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def metrics_sum(metrics, name):
    """Sum of every series of metric NAME (all label sets)."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))
