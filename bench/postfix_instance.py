"""A private Postfix instance for the benchmark, under a temp dir.

Its own config_directory (main.cf, master.cf), queue_directory and
data_directory; smtpd on 127.0.0.1:PORT only; mail for bench.test delivered
by virtual(8) into a Maildir under the temp dir. Every command is run with
`postfix -c DIR`, so a system Postfix (if any) is neither used nor touched.
Postfix keeps its defaults otherwise: queue files and Maildir files fsynced,
in_flow_delay, qmgr concurrency, one process per stage.
"""

import grp
import os
import pwd
import signal
import subprocess
import time

from benchlib import BenchError, BENCH_DOMAIN, log, process_tree, proc_pss_kb, read_tail, wait_for_port

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
# bulwark benchmark: a private Postfix instance (see bench/postfix_instance.py)
compatibility_level = 3.6
config_directory = {conf}
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.example
myorigin = $myhostname
mydestination =
relay_domains =
relayhost =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
biff = no
append_dot_mydomain = no
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {vmail}
virtual_mailbox_maps = static:{domain}/user/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = {process_limit}
maillog_file_prefixes = {tmp}
maillog_file = {maillog}
"""


class PostfixInstance:
    def __init__(self, tmp, port, process_limit=100):
        self.tmp = tmp
        self.port = port
        self.process_limit = process_limit
        self.conf = os.path.join(tmp, "postfix-etc")
        self.queue = os.path.join(tmp, "postfix-spool")
        self.data = os.path.join(tmp, "postfix-data")
        self.vmail = os.path.join(tmp, "vmail")
        self.maillog = os.path.join(tmp, "postfix.log")
        self.maildir_new = os.path.join(self.vmail, BENCH_DOMAIN, "user", "new")
        self.started = False

    def _postfix(self, *args, check=True, timeout=60):
        r = subprocess.run([POSTFIX, "-c", self.conf, *args], capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise BenchError(f"postfix -c {self.conf} {' '.join(args)} failed ({r.returncode}): "
                             f"{(r.stdout + r.stderr).strip()}\n{read_tail(self.maillog)}")
        return r

    def setup(self):
        pw = pwd.getpwnam("postfix")  # the Debian package creates it
        grp.getgrnam("postdrop")
        uid, gid = pw.pw_uid, pw.pw_gid
        os.chmod(self.tmp, 0o755)  # postfix processes (uid postfix) traverse it
        os.makedirs(self.conf, 0o755)
        os.makedirs(self.queue, 0o755)
        os.makedirs(self.data, 0o700)
        os.chown(self.data, uid, gid)
        os.makedirs(os.path.join(self.vmail, BENCH_DOMAIN), 0o755)
        os.chown(os.path.join(self.vmail, BENCH_DOMAIN), uid, gid)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(conf=self.conf, queue=self.queue, data=self.data,
                                   domain=BENCH_DOMAIN, vmail=self.vmail, uid=uid, gid=gid,
                                   process_limit=self.process_limit, tmp=self.tmp,
                                   maillog=self.maillog))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        # postfix start runs `postfix check` which creates the queue subdirectories.
        self._postfix("check", check=False)

    def start(self):
        log(f"postfix: starting (config {self.conf}, 127.0.0.1:{self.port})")
        self.started = True  # from here on, stop() must run
        self._postfix("start")
        wait_for_port("127.0.0.1", self.port, 30)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def alive(self):
        pid = self.master_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def pss_kb(self):
        """Sum of PSS over the master and all its children, with the process list."""
        pid = self.master_pid()
        if pid is None:
            return 0, []
        pids = process_tree(pid)
        return sum(proc_pss_kb(p) for p in pids), pids

    def stop(self):
        if not self.started:
            return
        pid = self.master_pid()
        r = self._postfix("stop", check=False)
        if r.returncode != 0:
            log(f"postfix stop: {(r.stdout + r.stderr).strip()}")
        # Wait for the master (and so its children) to be gone; escalate if not.
        deadline = time.monotonic() + 15
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            if pid is not None:
                log("postfix: still running after stop, aborting")
                self._postfix("abort", check=False)
                time.sleep(1)
                for p in process_tree(pid):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.started = False
