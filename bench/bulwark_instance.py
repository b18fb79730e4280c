"""A bulwarkd for the benchmark: its own config and data_dir under a temp dir.

MX listener only (on a free loopback port), bench.test as the local domain,
one confirmed user, the connection limits raised for the idle-session test
and greet_pause_ms 0. Everything else, fsync included, is the default.
"""

import os
import signal
import subprocess

from benchlib import BenchError, BENCH_DOMAIN, BENCH_USER, log, read_tail, terminate, wait_for_port

BENCH_PASSWORD = "Kestrel-Throughput-42!x"  # must not contain "user" or "bench"

# The top of every bench config; each one goes on with its listeners.
CONFIG_HEAD = """\
hostname: mail.bench.test
domains: [{domain}]
data_dir: {data_dir}
user: null
log_level: {log_level}

listen:
"""

CONFIG = """\
# bulwark benchmark config (written by bench/bulwark_instance.py)
""" + CONFIG_HEAD + """\
  smtp: [127.0.0.1:{port}]
  submission: []
  submissions: []
  imap: []
  imaps: []
  http: []

mynetworks: [127.0.0.0/8]

smtp:
  max_connections_per_ip: {max_conn}
  max_connections: {max_conn}
  greet_pause_ms: 0
"""


class BulwarkInstance:
    def __init__(self, tmp, port, build_dir, max_conn=20000, log_level="warning"):
        self.tmp = tmp
        self.port = port
        self.bulwarkd = os.path.join(build_dir, "bulwarkd")
        self.bulwarkctl = os.path.join(build_dir, "bulwarkctl")
        self.data_dir = os.path.join(tmp, "bulwark-data")
        self.config = os.path.join(tmp, "bulwark.yaml")
        self.logfile = os.path.join(tmp, "bulwarkd.log")
        self.max_conn = max_conn
        self.log_level = log_level
        self.maildir_new = os.path.join(self.data_dir, "mail", BENCH_DOMAIN, "user", "new")
        self.proc = None

    def _ctl(self, *args, stdin=None):
        r = subprocess.run([self.bulwarkctl, "-c", self.config, *args], input=stdin,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise BenchError(f"bulwarkctl {' '.join(args)} failed ({r.returncode}): "
                             f"{(r.stdout + r.stderr).strip()}")
        return r.stdout

    def check_binaries(self):
        for b in (self.bulwarkd, self.bulwarkctl):
            if not os.access(b, os.X_OK):
                raise BenchError(f"{b} is missing: run `make build` first")

    def config_text(self):
        """The bulwark.yaml that setup writes (subclasses: their own listeners)."""
        return CONFIG.format(domain=BENCH_DOMAIN, data_dir=self.data_dir, port=self.port,
                             max_conn=self.max_conn, log_level=self.log_level)

    def setup(self):
        self.check_binaries()
        os.makedirs(self.data_dir, 0o700, exist_ok=True)
        with open(self.config, "w") as f:
            f.write(self.config_text())
        self._ctl("user", "add", BENCH_USER, "--confirmed", stdin=BENCH_PASSWORD + "\n")

    def listen_label(self):
        """What start() logs as the address it waits on."""
        return f"127.0.0.1:{self.port}"

    def wait_ready(self):
        """Wait until the daemon answers on self.port (an SMTP greeting here)."""
        wait_for_port("127.0.0.1", self.port, 30, proc=self.proc)

    def start(self):
        log(f"bulwark: starting {self.bulwarkd} -c {self.config} ({self.listen_label()})")
        out = open(self.logfile, "ab")
        try:
            # Its own session: a Ctrl-C in the terminal reaches us, and we stop it.
            self.proc = subprocess.Popen([self.bulwarkd, "-c", self.config], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            out.close()
        try:
            self.wait_ready()
        except BenchError as e:
            raise BenchError(f"bulwark: {e}\n{read_tail(self.logfile)}") from None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            log(f"bulwark: had already exited with {self.proc.returncode}")
        terminate(self.proc, grace=20)
        self.proc = None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# ---- for bench/bench_auth.py ----

AUTH_CONFIG = """\
# bulwark AUTH-flood benchmark config (written by bench/bulwark_instance.py)
""" + CONFIG_HEAD + """\
  smtp: [127.0.0.1:{port}]
  submission: [127.0.0.1:{submission_port}]
  submissions: []
  imap: []
  imaps: []
  http: [127.0.0.1:{http_port}]

mynetworks: [127.0.0.1/32]

smtp:
  max_connections_per_ip: {max_conn_ip}
  max_connections: {max_conn}
  greet_pause_ms: 0

intrusion_prevention:
  ignoreip: [{ignoreip}]
"""


class AuthBenchInstance(BulwarkInstance):
    """MX and submission (STARTTLS, AUTH) listeners and /metrics on free
    loopback ports; only 127.0.0.1 trusted (mynetworks), IGNOREIP never
    banned; one confirmed user with BENCH_PASSWORD."""

    def __init__(self, tmp, port, submission_port, http_port, build_dir,
                 ignoreip=("127.0.0.1/32",), max_conn=20000, max_conn_ip=1000,
                 log_level="info"):
        super().__init__(tmp, port, build_dir, max_conn=max_conn, log_level=log_level)
        self.submission_port = submission_port
        self.http_port = http_port
        self.ignoreip = list(ignoreip)
        self.max_conn_ip = max_conn_ip

    def config_text(self):
        return AUTH_CONFIG.format(
            domain=BENCH_DOMAIN, data_dir=self.data_dir, port=self.port,
            submission_port=self.submission_port, http_port=self.http_port,
            max_conn=self.max_conn, max_conn_ip=self.max_conn_ip,
            log_level=self.log_level, ignoreip=", ".join(self.ignoreip))

    def ctl(self, *args, stdin=None):
        """bulwarkctl -c CONFIG ARGS: (exit status, stdout + stderr), never raises."""
        try:
            r = subprocess.run([self.bulwarkctl, "-c", self.config, *args], input=stdin,
                               capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return -1, "timed out after 60s"
        return r.returncode, (r.stdout + r.stderr).strip()

    def ban_add(self, ip, seconds):
        """bulwarkctl ban add IP --for SECONDS; BenchError if it fails."""
        rc, out = self.ctl("ban", "add", ip, "--for", str(seconds))
        if rc != 0:
            raise BenchError(f"bulwarkctl ban add {ip} --for {seconds} failed ({rc}): {out}")
        return out
