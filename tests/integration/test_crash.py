"""
test_crash.py: nothing acknowledged is ever lost (DESIGN.md "Durability",
issue 2 "Crash safety" and SIGTERM).

Four client threads stream messages at full speed from 127.0.0.9 to alice,
each with a unique token in its Message-ID and an END-OF-MESSAGE line; every
token that got "250 ... queued as ID" is recorded. Then the daemon is
killed with SIGKILL (or stopped with SIGTERM, which must exit 0 within
shutdown_timeout + 5 s). After a restart on the same data_dir every
acknowledged token must be in the Maildir at least once, the spool must
drain, and no file in any new/ or cur/ may be partial.
"""

import re
import shutil
import signal
import smtplib
import threading
import time

import bulwark_helpers as H

ALICE = "alice@example.test"
MSGID_RE = re.compile(rb"^Message-ID: <(tok[0-9a-f]+)@", re.M | re.I)


class Streamer:
    def __init__(self, d, threads=4):
        self.d = d
        self.acked = {}
        self.sent = 0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(30)

    def count(self):
        with self.lock:
            return len(self.acked)

    def worker(self):
        body_line = "The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij"
        while not self.stop_event.is_set():
            try:
                with H.smtp_client(self.d.smtp_port, timeout=10) as s:
                    s.ehlo()
                    while not self.stop_event.is_set():
                        tok = H.token()
                        body = [f"crash test {tok}"] + [body_line] * 25 + [f"END-OF-MESSAGE {tok}"]
                        msg = H.make_message(tok, body=body)
                        if s.mail("sender@remote.example")[0] != 250:
                            break
                        if s.rcpt(ALICE)[0] != 250:
                            break
                        with self.lock:
                            self.sent += 1
                        code, resp = s.data(msg)
                        if code != 250:
                            break
                        m = H.QUEUED_RE.search(resp.decode(errors="replace"))
                        with self.lock:
                            self.acked[tok] = m.group(1) if m else "?"
            except (smtplib.SMTPException, OSError):
                time.sleep(0.05)


def stream_until(st, seconds, at_least, cap=20.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < cap:
        if time.monotonic() - t0 >= seconds and st.count() >= at_least:
            break
        time.sleep(0.05)


def delivered_tokens(d):
    toks = {}
    for _, raw in d.all_delivered():
        m = MSGID_RE.search(raw)
        if m:
            t = m.group(1).decode()
            toks[t] = toks.get(t, 0) + 1
    return toks


def assert_no_partial_files(d):
    bad = []
    for path, raw in d.all_delivered():
        m = MSGID_RE.search(raw)
        if not m:
            bad.append((str(path), "no Message-ID", raw[:100]))
            continue
        tok = m.group(1).decode()
        end = f"END-OF-MESSAGE {tok}".encode()
        if not H.to_lf(raw).endswith(end + b"\n"):
            bad.append((str(path), "does not end with its end marker", raw[-100:]))
        if not raw.startswith(b"Return-Path: "):
            bad.append((str(path), "no Return-Path first", raw[:100]))
    assert not bad, f"{len(bad)} partial/broken file(s) in Maildirs: {bad[:5]}"


def wait_all_delivered(d, acked, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        got = delivered_tokens(d)
        missing = [t for t in acked if t not in got]
        if not missing or time.monotonic() > deadline:
            return got, missing
        if not d.running():
            raise AssertionError(f"bulwarkd died with {d.proc.returncode} with {len(missing)} "
                                 f"of {len(acked)} messages undelivered\n{d.log_tail()}")
        time.sleep(0.2)


def test_kill9_while_streaming_loses_nothing(bulwark):
    d = bulwark()
    st = Streamer(d).start()
    stream_until(st, 3.0, 100)
    d.kill9()
    st.stop()
    acked = dict(st.acked)
    assert len(acked) >= 50, f"only {len(acked)} messages acknowledged before the kill"
    # Whatever is in new/ right after the kill is complete.
    assert_no_partial_files(d)

    d.restart()
    got, missing = wait_all_delivered(d, acked)
    assert not missing, (f"{len(missing)} of {len(acked)} acknowledged messages lost after "
                         f"kill -9 + restart, e.g. {[(t, acked[t]) for t in missing[:5]]}\n"
                         f"{d.log_tail()}")
    assert_no_partial_files(d)
    left = d.wait_queue_empty(timeout=30)
    assert not left, f"spool did not drain after restart: {left[:5]}"
    dups = sum(1 for t in acked if got.get(t, 0) > 1)
    print(f"acknowledged={len(acked)} sent={st.sent} delivered={len(got)} duplicates={dups}")
    H.assert_serves(d, deliver=True)


def test_kill9_twice_in_a_row(bulwark):
    """A crash right after the restart (during recovery) loses nothing either."""
    d = bulwark()
    st = Streamer(d).start()
    stream_until(st, 1.5, 30)
    d.kill9()
    st.stop()
    acked = dict(st.acked)
    d.restart()
    time.sleep(0.2)
    d.kill9()
    d.restart()
    got, missing = wait_all_delivered(d, acked)
    assert not missing, f"{len(missing)} of {len(acked)} lost: {missing[:5]}\n{d.log_tail()}"
    assert_no_partial_files(d)
    assert not d.wait_queue_empty(timeout=30)


def test_sigterm_while_streaming(bulwark):
    d = bulwark()
    idle = H.session(d.smtp_port)
    st = Streamer(d).start()
    stream_until(st, 1.5, 20)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    try:
        r = idle.read_reply(timeout=d.shutdown_timeout + 5)
        H.expect(r, 421, "4.3.2")
        assert H.HOSTNAME in r.text
    finally:
        idle.close()
    try:
        rc = d.proc.wait(timeout=d.shutdown_timeout + 5)
    finally:
        st.stop()
    elapsed = time.monotonic() - t0
    d.reaped = True
    d.exits.append(rc)
    assert rc == 0, f"exit {rc} on SIGTERM\n{d.log_tail()}"
    assert elapsed <= d.shutdown_timeout + 5, elapsed
    acked = dict(st.acked)
    assert acked, "nothing was acknowledged before SIGTERM"
    assert_no_partial_files(d)

    d.restart()
    got, missing = wait_all_delivered(d, acked)
    assert not missing, f"{len(missing)} of {len(acked)} lost after SIGTERM: {missing[:5]}"
    assert_no_partial_files(d)
    assert not d.wait_queue_empty(timeout=30)


def test_sigterm_idle_daemon_exits_promptly(bulwark):
    d = bulwark(users=False)
    t0 = time.monotonic()
    rc = d.stop(timeout=d.shutdown_timeout + 5)
    assert rc == 0, f"exit {rc}\n{d.log_tail()}"
    assert time.monotonic() - t0 < d.shutdown_timeout + 5


def test_queued_remote_message_survives_restart(bulwark):
    d = bulwark()
    tok = H.token()
    H.send_one(d.smtp_port, tok=tok, source=H.TRUSTED, sender=ALICE,
               rcpts=("someone@remote.example",))
    deadline = time.monotonic() + 5
    while not d.queue_contains(tok) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert d.queue_contains(tok)
    assert d.stop() == 0
    d.restart()
    time.sleep(1.0)
    assert d.queue_contains(tok), "a queued message disappeared over a restart"
    d.kill9()
    d.restart()
    time.sleep(1.0)
    assert d.queue_contains(tok), "a queued message disappeared over a kill -9"


def test_restart_with_many_queued_local_messages(bulwark):
    """120 messages that could not be delivered wait in the spool; a restart
    recovers and delivers all of them (and must survive doing so)."""
    d = bulwark()
    md = d.maildir(ALICE)
    md.parent.mkdir(parents=True, exist_ok=True)
    if md.exists():
        shutil.rmtree(md)
    md.write_text("not a Maildir: delivery to alice fails and is deferred\n")
    toks = []
    with H.smtp_client(d.smtp_port) as s:
        for _ in range(120):
            tok = H.token()
            s.sendmail("sender@remote.example", [ALICE], H.make_message(tok))
            toks.append(tok)
    time.sleep(1.0)
    assert md.is_file(), "the daemon replaced the blocking file"
    assert len(d.queue_files()) >= 120, f"only {len(d.queue_files())} spool files for 120 deferred messages"
    assert d.stop() == 0
    md.unlink()
    d.restart()
    got, missing = wait_all_delivered(d, toks)
    assert not missing, f"{len(missing)} of 120 deferred messages not delivered after restart\n{d.log_tail()}"
    assert not d.sanitizer_reports(), d.sanitizer_reports()
    assert d.running(), f"daemon died during recovery\n{d.log_tail()}"
    assert_no_partial_files(d)
    assert not d.wait_queue_empty(timeout=30)
