"""
dovecot.py: a real Dovecot (Debian's dovecot-imapd, 2.3) as the IMAP oracle.

  d = Dovecot(workdir).start()          # pytest.skip()s if not installed
  d.add_user("alice@example.test", PASSWORD)
  d.maildir("alice@example.test")        # <home>/Maildir, Maildir++ layout
  ... imaplib.IMAP4("127.0.0.1", d.imap_port) ...
  d.stop()

Its own config in a temp dir (nothing of /etc/dovecot is read), one plaintext
IMAP listener on a free loopback port, no TLS, plaintext LOGIN allowed, a
static passdb (one password for every user name: the oracle does not test
authentication) and a static userdb. Dovecot 2.3.19 refuses mail access
as root whatever first_valid_uid says ("userdb returned 0 as uid" for a
userdb uid of 0, "Mail access not allowed for root" for mail_uid = root), so
the mail processes run as Debian's "mail" user (uid 8; first_valid_uid = 1)
and every Maildir copied in is chowned to it (load_maildir, fix_owner). The
login and internal processes run as Debian's dovenull/dovecot users, so the
run directory is world-readable (0755) in a
directory of our own, never under pytest's 0700 tmp.

Mail: home = RUN/home/DOMAIN/LOCAL, mail in ~/Maildir (the same Maildir++
layout as bulwark: INBOX at the root, ".Sub.Folder" subfolders, "/" as the
IMAP separator), Dovecot's index and control files (dovecot-uidlist,
dovecot-keywords) in ~/index and ~/control so the Maildir itself holds only
messages, exactly like a copy of bulwark's. New accounts get Sent, Drafts,
Trash, Junk and Archive with their RFC 6154 special-use flags (auto =
subscribe), like bulwark's.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"
HOST = "127.0.0.1"
DEFAULT_PASSWORD = "Correct-Horse-Battery-9"   # bulwark_helpers.PASSWORD

CONFIG = """\
# Dovecot config for the bulwark tests (written by tests/integration/dovecot.py)
base_dir = {run}/base
state_dir = {run}/state
instance_name = bulwark-test-{port}
protocols = imap
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = {run}/dovecot.log
info_log_path = {run}/dovecot.log
mail_debug = no
first_valid_uid = 1
first_valid_gid = 1
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:~/Maildir:INDEX=~/index{control}
mail_fsync = never
maildir_very_dirty_syncs = no
imap_capability = +SPECIAL-USE
protocol imap {{
  mail_max_userip_connections = 2000
}}
login_trusted_networks =
shutdown_clients = yes
default_process_limit = 2000
default_client_limit = 4000

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
  mailbox Sent {{
    auto = subscribe
    special_use = \\Sent
  }}
  mailbox Drafts {{
    auto = subscribe
    special_use = \\Drafts
  }}
  mailbox Trash {{
    auto = subscribe
    special_use = \\Trash
  }}
  mailbox Junk {{
    auto = subscribe
    special_use = \\Junk
  }}
  mailbox Archive {{
    auto = subscribe
    special_use = \\Archive
  }}
}}

passdb {{
  driver = static
  args = password={password_field}
}}
userdb {{
  driver = static
  args = home={run}/home/%Ld/%Ln
}}

service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_min_avail = 1
  service_count = 0
  client_limit = 4000
  vsz_limit = 1G
}}
service imap {{
  process_limit = 2000
  client_limit = 1
  vsz_limit = 1G
}}
service auth {{
  client_limit = 5000
}}
service anvil {{
  client_limit = 5000
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
"""


def installed():
    return os.access(DOVECOT, os.X_OK)


def skip_unless_installed():
    if not installed():
        import pytest
        pytest.skip(f"{DOVECOT} not installed (Debian dovecot-imapd; scripts/deps.sh installs it)")


def mail_ids():
    """(uid, gid) Dovecot's mail processes run as: Debian's "mail" user, else
    "nobody". Dovecot 2.3 refuses root for mail access outright (userdb uid 0:
    "userdb returned 0 as uid"; mail_uid = root: "Mail access not allowed for
    root"), whatever first_valid_uid says, so the copies of the test Maildirs
    are chowned to this user."""
    for name in ("mail", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    return 65534, 65534


def chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class DovecotError(AssertionError):
    pass


class Dovecot:
    """One Dovecot master (dovecot -F) on its own config, run dir and port."""

    def __init__(self, workdir=None, port=None, extra_config="", password=DEFAULT_PASSWORD,
                 password_hash=None, control_in_maildir=False):
        """password_hash: a libsodium argon2id string (crypto_pwhash_str, as
        bulwark stores it): Dovecot then verifies logins against it with its
        ARGON2ID scheme, at the same cost as bulwark (the benchmark).
        control_in_maildir: Dovecot's control files (dovecot-uidlist,
        dovecot-keywords) in the Maildir folders, its default, instead of
        ~/control: to read the keyword names another server wrote there."""
        # Our own 0755 directory: dovenull/dovecot must reach base_dir, which
        # they could not under pytest's 0700 tmp.
        self.run = Path(tempfile.mkdtemp(prefix="bulwark-dovecot-"))
        os.chmod(self.run, 0o755)
        self.workdir = Path(workdir) if workdir else self.run
        self.port = port or _free_port()
        self.config_path = self.run / "dovecot.conf"
        self.log_path = self.run / "dovecot.log"
        self.password = password
        self.users = {}
        self.proc = None
        for d in ("base", "state", "home"):
            (self.run / d).mkdir(mode=0o755)
        self.uid, self.gid = mail_ids()
        self.config_path.write_text(CONFIG.format(run=self.run, host=HOST, port=self.port,
                                                  uid=self.uid, gid=self.gid,
                                                  control="" if control_in_maildir
                                                  else ":CONTROL=~/control",
                                                  password_field=(
                                                      "{ARGON2ID}" + password_hash if password_hash
                                                      else password))
                                    + extra_config)

    name = "dovecot"

    @property
    def imap_port(self):
        return self.port

    # users and mail
    def add_user(self, address, password=None):
        """Make address's home. Every user name logs in with the one password
        (a static passdb: a passwd-file rewritten while Dovecot runs is not
        always reread at once, and the oracle does not test authentication)."""
        assert password in (None, self.password), "the Dovecot oracle has one password for all"
        self.users[address.lower()] = self.password
        self.fix_owner(address)

    def home(self, address):
        local, domain = address.lower().rsplit("@", 1)
        return self.run / "home" / domain / local

    def maildir(self, address):
        return self.home(address) / "Maildir"

    def load_maildir(self, address, src):
        """Make address's mail a copy of the Maildir++ tree at src (replacing
        whatever was there, and Dovecot's index of it)."""
        home = self.home(address)
        for sub in ("Maildir", "index", "control"):
            shutil.rmtree(home / sub, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        # bulwark's SQLite index (and its -wal/-shm, which come and go while
        # bulwarkd runs) is a cache Dovecot has no use for
        shutil.copytree(src, home / "Maildir", symlinks=False,
                        ignore=shutil.ignore_patterns("bulwark-index.sqlite*"))
        self.fix_owner(address)
        return home / "Maildir"

    def fix_owner(self, address):
        """chown address's home to the mail user (after writing files into it)."""
        home = self.home(address)
        home.mkdir(parents=True, exist_ok=True)
        chown_tree(home, self.uid, self.gid)

    # lifecycle
    def start(self, timeout=20.0):
        skip_unless_installed()
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace")
                raise DovecotError(f"dovecot exited with {self.proc.returncode}: {out}\n"
                                   f"{self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as s:
                    s.settimeout(5)
                    banner = s.recv(512)
                    if banner.startswith(b"* OK"):
                        s.sendall(b"a LOGOUT\r\n")
                        return self
                    last = banner
            except OSError as e:
                last = e
            time.sleep(0.05)
        self.stop()
        raise DovecotError(f"dovecot not ready on {HOST}:{self.port} after {timeout}s "
                           f"(last: {last!r})\n{self.log_tail()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # the master and every child are in its own session
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        rc = self.proc.returncode
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.run, ignore_errors=True)

    def pids(self):
        """The master and its children (for RSS measurements)."""
        if not self.running():
            return []
        out = [self.proc.pid]
        try:
            r = subprocess.run(["pgrep", "-s", str(self.proc.pid)], capture_output=True,
                               text=True, timeout=10)
            out += [int(x) for x in r.stdout.split() if int(x) != self.proc.pid]
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        return out

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=30):
        lines = self.log_text().splitlines()
        return f"---- last {min(n, len(lines))} lines of {self.log_path}:\n" + "\n".join(lines[-n:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
