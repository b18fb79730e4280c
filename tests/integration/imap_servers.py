"""
imap_servers.py: one interface over bulwarkd and the Dovecot oracle, so an
IMAP test can run unchanged against both (test_imap_commands.py).

  srv.name                 "bulwark" or "dovecot"
  srv.port                 the plaintext IMAP port (loopback)
  a = srv.account()        a fresh account (own mailboxes): a.user, a.password
  a.imap()                 an imaplib.IMAP4 logged in as a (plaintext LOGIN:
                           bulwark allows it from mynetworks, 127.0.0.1)
  a.maildir(mailbox)       the Maildir directory of INBOX or a folder
  a.deliver(raw)           a message put into INBOX's new/ as delivery does
  srv.restart()            stop and start the server (same data)
"""

import imaplib
import re
import socket
import time
import uuid
from pathlib import Path

import bulwark_helpers as H
import dovecot as DV
import imap_corpus as C
import imap_wire as W


def wait_imap(port, timeout=20.0, source=H.TRUSTED):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((H.SERVER_IP, port), timeout=2,
                                          source_address=(source, 0)) as s:
                s.settimeout(5)
                data = s.recv(512)
                if data.startswith(b"* OK"):
                    try:
                        s.sendall(b"a LOGOUT\r\n")
                    except OSError:
                        pass
                    return
                last = data
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"no IMAP greeting on port {port} after {timeout}s (last: {last!r})")


def maildir_folder(root, mailbox):
    """Maildir++: INBOX is the root, "a/b" is root/.a.b (names in modified
    UTF-7 as on the wire)."""
    if mailbox.upper() == "INBOX":
        return Path(root)
    return Path(root) / ("." + mailbox.replace("/", "."))


class Account:
    def __init__(self, srv, user, password):
        self.srv = srv
        self.user = user
        self.password = password

    def imap(self):
        m = imaplib.IMAP4(H.SERVER_IP, self.srv.port, timeout=30)
        typ, data = m.login(self.user, self.password)
        assert typ == "OK", (typ, data)
        return m

    def wire(self):
        c = W.Client(self.srv.port, source=H.TRUSTED)
        c.login(self.user, self.password)
        return c

    def maildir(self, mailbox="INBOX"):
        return maildir_folder(self.srv.maildir_root(self.user), mailbox)

    def deliver(self, raw, when=None, info=None):
        p = C.deliver(self.maildir("INBOX"), raw, when or time.time(), info=info)
        self.srv.fixup(self.user)
        return p

    def files(self, mailbox="INBOX"):
        """{file name: bytes} in new/ and cur/ of mailbox's Maildir."""
        out = {}
        for sub in ("new", "cur"):
            d = self.maildir(mailbox) / sub
            if d.is_dir():
                for p in d.iterdir():
                    if p.is_file():
                        out[f"{sub}/{p.name}"] = p.read_bytes()
        return out


class BulwarkServer:
    name = "bulwark"

    def __init__(self, daemon):
        self.d = daemon
        wait_imap(self.port)

    @property
    def port(self):
        return self.d.imap_port

    def account(self):
        user = H.unique_user(self.d, prefix="imap")
        return Account(self, user, H.PASSWORD)

    def maildir_root(self, user):
        return self.d.maildir(user)

    def fixup(self, user):
        pass

    def index_files(self, user):
        """The store's cache (the SQLite index), not the UID list: what the
        store must be able to lose and rebuild from the Maildir."""
        root = self.maildir_root(user)
        return [p for p in root.rglob("bulwark-index.sqlite*") if p.is_file()]

    def stop(self):
        rc = self.d.stop()
        assert rc == 0, f"bulwarkd exited {rc} on SIGTERM\n{self.d.log_tail()}"

    def start(self):
        self.d.start()
        wait_imap(self.port)

    def restart(self):
        self.stop()
        self.start()

    def log_tail(self):
        return self.d.log_tail()


class DovecotServer:
    name = "dovecot"

    def __init__(self):
        self.dv = DV.Dovecot()
        self.dv.start()

    @property
    def port(self):
        return self.dv.imap_port

    def account(self):
        user = f"imap{uuid.uuid4().hex[:8]}@example.test"
        self.dv.add_user(user, H.PASSWORD)
        return Account(self, user, H.PASSWORD)

    def maildir_root(self, user):
        return self.dv.maildir(user)

    def fixup(self, user):
        self.dv.fix_owner(user)

    def index_files(self, user):
        """Dovecot's index and cache (~/index), not its UID list (~/control)."""
        return [p for p in (self.dv.home(user) / "index").rglob("*") if p.is_file()]

    def stop(self):
        self.dv.stop()

    def start(self):
        self.dv.start()

    def restart(self):
        self.dv.restart()

    def cleanup(self):
        self.dv.cleanup()

    def log_tail(self):
        return self.dv.log_tail()


# ---------------------------------------------------------------- imaplib helpers


def ok(res, what=""):
    typ, data = res
    assert typ == "OK", f"{what}: {typ} {data!r}"
    return data


def flatten(data):
    """imaplib's response list (bytes and (head, literal) tuples) back into
    one bytes per response line, literals inlined as {n}\\r\\nBYTES."""
    out = []
    cur = None
    for item in data:
        if isinstance(item, tuple):
            head, lit = item
            cur = (cur or b"") + head + b"\r\n" + lit
        elif item is None:
            continue
        else:
            if cur is not None:
                out.append(cur + item)
                cur = None
            else:
                out.append(item)
    if cur is not None:
        out.append(cur)
    return out


def fetch(m, msgset, items, uid=False):
    """{seq: {ITEM: value}} of FETCH (or UID FETCH)."""
    if uid:
        typ, data = m.uid("FETCH", msgset, items)
    else:
        typ, data = m.fetch(msgset, items)
    assert typ == "OK", f"FETCH {msgset} {items}: {typ} {data!r}"
    out = {}
    for line in flatten(data):
        mm = re.match(rb"(\d+) \(", line)
        if not mm:
            continue
        vals = W.parse(line[mm.end() - 1:])
        items_ = vals[0]
        d = out.setdefault(int(mm.group(1)), {})
        for i in range(0, len(items_) - 1, 2):
            d[bytes(items_[i]).upper()] = items_[i + 1]
    return out


def flags_of(m, seq):
    f = fetch(m, str(seq), "(FLAGS)")[seq][b"FLAGS"]
    return sorted(bytes(x).decode() for x in f if bytes(x).lower() != b"\\recent")


def untagged(m, name):
    """Pop and return the untagged responses of type name (imaplib keeps them)."""
    return m.untagged_responses.pop(name.upper(), [])


def list_mailboxes(m, ref='""', pattern="*", cmd="LIST"):
    """{name: set(attributes lower)} of a LIST/LSUB reply."""
    typ, data = (m.list if cmd == "LIST" else m.lsub)(ref, pattern)
    assert typ == "OK", (typ, data)
    out = {}
    for line in flatten(data):
        vals = W.parse(line)
        if len(vals) != 3:
            continue
        attrs, _delim, name = vals
        out[bytes(name).decode()] = {bytes(a).decode().lower() for a in attrs}
    return out
