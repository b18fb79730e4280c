"""
test_queue_cli.py: bulwarkctl queue and lockdown against a running daemon
(issue 4, "Queue monitor and containment"; docs/queue.md, "Admin").

127.0.0.1 is in mynetworks, so it may relay: a message from it to
x@remote.example waits in the queue (no remote delivery, or a smarthost on a
closed port). `queue list --json` shows it with its sender and recipient;
`queue hold` moves it to queue/hold/; `queue release` gives it back and the
daemon picks it up (event=queue.pickup); `queue delete` removes every trace.
`lockdown on` holds what waits for remote delivery, and the daemon holds new
remote mail itself while local mail is still delivered; `lockdown off`
leaves held mail held. Bad ids never name a file.
"""

import json

import pytest

import bulwark_helpers as H

REMOTE_RCPT = "x@remote.example"
# The daemon may try remote delivery (to the test's closed smarthost port)
# and defer, or not deliver remotely at all yet: either way it waits.
WAITING = ("waiting-remote", "deferred")


@pytest.fixture(scope="module")
def qd(module_bulwark):
    return module_bulwark(name="queue")


def queue_json(d):
    return H.ctl_json(d, "queue", "list")


def entry(d, qid):
    for m in queue_json(d):
        if m["id"] == qid:
            return m
    return None


def wait_state(d, qid, states, timeout=6.0):
    states = (states,) if isinstance(states, str) else states
    return H.wait_until(lambda: (lambda m: m if m and m["state"] in states else None)(entry(d, qid)),
                        timeout=timeout, interval=0.1, what=f"{qid} in state {states}")


def relay_one(d, sender, rcpts=(REMOTE_RCPT,)):
    """A message from the trusted 127.0.0.1; returns (tok, queue id)."""
    return H.send_one(d.smtp_port, source=H.TRUSTED, sender=sender, rcpts=rcpts)


def ctl_fails(d, *args, code=1):
    cp = d.ctl(*args)
    assert cp.returncode == code, f"bulwarkctl {' '.join(args)}: exit {cp.returncode}: {H.output_of(cp)}"
    lines = [l for l in cp.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line on stderr: {cp.stderr!r}"
    assert lines[0].startswith("bulwarkctl: "), lines
    return lines[0]


def test_list_hold_release_delete(qd):
    sender = "Ops.Relay@example.org"
    tok, qid = relay_one(qd, sender)
    m = wait_state(qd, qid, WAITING)
    assert m["sender"] == sender
    assert m["recipients"] == [REMOTE_RCPT]
    assert m["size"] > len(tok) and 0 <= m["age"] < 60

    show = H.ctl_ok(qd, "queue", "show", qid).stdout
    assert f"id:         {qid}" in show
    assert f"sender:     <{sender}>" in show
    assert f"recipient:  <{REMOTE_RCPT}> remote, pending" in show
    assert f"Subject: test {tok}" in show
    assert f"END-OF-MESSAGE {tok}" not in show, "queue show prints headers only"
    human = H.ctl_ok(qd, "queue", "list").stdout
    assert qid in human and sender in human and REMOTE_RCPT in human

    # hold: out of queue/, into queue/hold/, never delivered
    out = H.ctl_ok(qd, "queue", "hold", qid).stdout
    assert out.strip() == f"message {qid} held"
    assert entry(qd, qid)["state"] == "held"
    assert (qd.queue_dir() / "hold" / qid).is_file()
    assert not (qd.queue_dir() / qid).exists()
    assert H.ctl_ok(qd, "queue", "hold", qid).stdout.strip() == f"message {qid} is already held"

    # release: the daemon picks it up and schedules it again
    mark = H.log_mark(qd)
    out = H.ctl_ok(qd, "queue", "release", qid).stdout
    assert out.strip() == f"message {qid} released"
    H.wait_log(qd, "event=queue.pickup", f"queue_id={qid}", since=mark, timeout=6)
    m = wait_state(qd, qid, WAITING)
    assert m["recipients"] == [REMOTE_RCPT]
    assert (qd.queue_dir() / qid).is_file()

    # delete: gone from the list and from every file of the spool
    out = H.ctl_ok(qd, "queue", "delete", qid).stdout
    assert out.strip() == f"message {qid} deleted"
    assert entry(qd, qid) is None
    assert not qd.queue_contains(tok)
    ctl_fails(qd, "queue", "show", qid)


def test_by_sender(qd):
    sender = "bulk-sender@example.org"
    ids = [relay_one(qd, sender)[1] for _ in range(2)]
    _, other = relay_one(qd, "someone-else@example.org")
    for qid in ids + [other]:
        wait_state(qd, qid, WAITING)

    out = H.ctl_ok(qd, "queue", "hold", "--sender", sender.upper()).stdout
    assert out.strip() == "2 messages held"
    assert [entry(qd, q)["state"] for q in ids] == ["held", "held"]
    assert entry(qd, other)["state"] in WAITING

    out = H.ctl_ok(qd, "queue", "delete", "--sender", f"<{sender}>").stdout
    assert out.strip() == "2 messages deleted"
    assert all(entry(qd, q) is None for q in ids)
    assert entry(qd, other) is not None
    H.ctl_ok(qd, "queue", "delete", other)


def test_bad_ids_and_arguments(qd):
    line = ctl_fails(qd, "queue", "hold", "0000000000000000")
    assert "no message 0000000000000000" in line
    for bad in ("../../../etc/passwd", "ABCDEF0123456789", "0123456789abcdef0", "hold/x", ""):
        for verb in ("hold", "release", "delete", "show"):
            line = ctl_fails(qd, "queue", verb, bad)
            assert "invalid queue id" in line, line
    ctl_fails(qd, "queue", "hold", code=2)
    ctl_fails(qd, "queue", "delete", "--all", "--sender", "a@example.org", code=2)
    ctl_fails(qd, "lockdown", "maybe", code=2)


def test_flush(qd):
    mark = H.log_mark(qd)
    out = H.ctl_ok(qd, "queue", "flush").stdout
    assert "flush requested" in out
    flag = qd.queue_dir() / "FLUSH"
    H.wait_until(lambda: not flag.exists(), timeout=6, what="the daemon takes queue/FLUSH")
    H.wait_log(qd, "event=queue.flush", since=mark, timeout=2)


def test_lockdown(qd):
    tok, qid = relay_one(qd, "before@example.org")
    wait_state(qd, qid, WAITING)
    mark = H.log_mark(qd)

    out = H.ctl_ok(qd, "lockdown", "on").stdout
    assert out.startswith("lockdown on:") and "1 message held" in out, out
    status = H.ctl_ok(qd, "lockdown").stdout
    assert status.startswith("lockdown: on since "), status
    assert (qd.queue_dir() / "LOCKDOWN").read_text().startswith("on ")
    assert entry(qd, qid)["state"] == "held"
    assert H.ctl_ok(qd, "queue", "list").stdout.startswith("LOCKDOWN is on")
    H.wait_log(qd, "event=queue.lockdown", "state=on", since=mark, timeout=6)

    # new remote mail is held by the daemon itself; local mail still arrives
    _, during = relay_one(qd, "during@example.org")
    wait_state(qd, during, "held", timeout=8)
    ltok, _ = relay_one(qd, "during@example.org", rcpts=("alice@example.test",))
    qd.wait_for("alice@example.test", ltok)

    mark = H.log_mark(qd)
    out = H.ctl_ok(qd, "lockdown", "off").stdout
    assert out.startswith("lockdown off"), out
    assert "queue release --all" in out, out
    assert H.ctl_ok(qd, "lockdown", "status").stdout.startswith("lockdown: off")
    assert not (qd.queue_dir() / "LOCKDOWN").exists()
    H.wait_log(qd, "event=queue.lockdown", "state=off", since=mark, timeout=6)
    assert entry(qd, qid)["state"] == "held", "lockdown off releases nothing by itself"

    out = H.ctl_ok(qd, "queue", "release", "--all").stdout
    assert out.strip() == "2 messages released", out
    for q in (qid, during):
        wait_state(qd, q, WAITING, timeout=8)
    out = H.ctl_ok(qd, "queue", "delete", "--all").stdout
    assert out.strip() == "2 messages deleted", out
    assert queue_json(qd) == []
