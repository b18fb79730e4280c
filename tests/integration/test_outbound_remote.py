"""
test_outbound_remote.py: remote delivery over time (issue 4): retries,
restarts, STARTTLS, lockdown, queue lifetime, connection reuse and limits.

Loopback only: tests/integration/sink.py plays the remote side (aiosmtpd
sinks; "tempfail1..." recipients get one 451 then 250, "tempfail" always
451; the "slow" sink answers the final dot after 0.3 s; every sink counts
its connections in stats.PORT and tags each message with its connection).
The daemon reaches the sink as outbound.smarthost. Each test has its own
sink, so the connection counts are its own. test_outbound.py covers
delivery, the 550 bounce, null MX and DKIM; nothing here repeats it.
"""

import email
import functools
import json
import time
from pathlib import Path

import pytest

import bulwark_helpers as H


@pytest.fixture
def sink(tmp_path_factory):
    d = tmp_path_factory.mktemp("sink")
    proc, ready = H.start_sink_process(d)
    ports = {k: (v if k in ("dir", "ca") else int(v)) for k, v in ready.items()}
    ports["dir"] = d
    yield ports
    proc.stdin.close()
    proc.wait(timeout=10)


def sink_messages(sink):
    """[(fields dict of lists, body bytes)] of every message the sink took."""
    out = []
    for env in sorted(Path(sink["dir"]).glob("*.env")):
        fields = {}
        for line in env.read_text().splitlines():
            k, _, v = line.partition(" ")
            fields.setdefault(k, []).append(v)
        eml = env.with_suffix(".eml")
        out.append((fields, eml.read_bytes() if eml.exists() else b""))
    return out


def with_token(sink, token):
    return [m for m in sink_messages(sink) if token.encode() in m[1]]


def sink_stats(sink, port):
    p = Path(sink["dir"]) / f"stats.{port}"
    if not p.exists():
        return {"connections": 0, "concurrent": 0, "peak": 0}
    return {k: int(v) for k, v in (l.split() for l in p.read_text().splitlines())}


# this file polls at 0.1 s, for 20 s unless told
wait_until = functools.partial(H.wait_until, timeout=20, interval=0.1)


def message(token, to="bob@far.example"):
    return (f"From: alice@example.test\r\nTo: {to}\r\nSubject: {token}\r\n\r\n"
            f"body of {token}\r\n").encode()


def queue_rows(d):
    cp = d.ctl("queue", "list", "--json")
    assert cp.returncode == 0, H.output_of(cp)
    return json.loads(cp.stdout)


def outbound(sink, port_name, **extra):
    o = {"smarthost": f"127.0.0.1:{sink[port_name]}"}
    o.update(extra)
    return {"outbound": o}


def test_retry_after_451_delivers(bulwark, sink):
    d = bulwark(outbound(sink, "plain", retry_base=1, retry_max=2))
    token = H.token()
    rcpt = f"tempfail1-{token}@far.example"
    assert H.sendmail_trusted(d, "alice@example.test", [rcpt], message(token, rcpt)) == {}
    got = wait_until(lambda: with_token(sink, token), timeout=30, what="delivery after the retry")
    assert len(got) == 1 and got[0][0]["rcpt"] == [rcpt]
    log = d.log_text()
    deferred = [l for l in log.splitlines() if "event=queue.deferred" in l]
    assert deferred and "attempts=1" in deferred[0] and "451" in deferred[0], deferred
    assert "attempt=2" in log, "the second attempt delivered it"
    wait_until(lambda: queue_rows(d) == [], what="an empty queue")


def test_restart_keeps_the_retry_state_and_delivers_once(bulwark, sink):
    d = bulwark(outbound(sink, "plain", retry_base=2, retry_max=2))
    token = H.token()
    rcpt = f"tempfail1-{token}@far.example"
    assert H.sendmail_trusted(d, "alice@example.test", [rcpt], message(token, rcpt)) == {}

    def deferred():
        rows = [r for r in queue_rows(d) if r["state"] == "deferred"]
        return rows[0] if rows and rows[0]["attempts"] == 1 else None
    row = deferred_row = wait_until(deferred, what="the deferred message")
    assert "451" in (row["last_error"] or "")
    state = (d.queue_dir() / f"{deferred_row['id']}.state").read_text()
    assert "attempts 1\n" in state and "\nnext " in state, state
    assert d.stop() == 0
    assert with_token(sink, token) == [], "the 451 delivered nothing"
    mark = len(d.log_text())
    d.restart()
    got = wait_until(lambda: with_token(sink, token), timeout=30, what="delivery after restart")
    after = d.log_text()[mark:]
    assert "event=queue.recovered messages=1" in after
    assert f"queue_id={deferred_row['id']} recipients=1 attempt=2" in after, \
        "the attempt count survived the restart"
    wait_until(lambda: queue_rows(d) == [], what="an empty queue")
    time.sleep(0.5)
    assert len(with_token(sink, token)) == 1 == len(got), "delivered exactly once"


def test_starttls_sink_gets_tls_and_the_result_is_logged(bulwark, sink):
    d = bulwark(outbound(sink, "starttls"))
    token = H.token()
    assert H.sendmail_trusted(d, "alice@example.test", ["bob@far.example"], message(token)) == {}
    fields, _ = wait_until(lambda: with_token(sink, token), what="delivery over STARTTLS")[0]
    assert fields["tls"] == ["1"], fields
    log = d.log_text()
    ok = [l for l in log.splitlines() if "event=delivery.ok" in l and "bob@far.example" in l]
    assert ok, log[-2000:]
    # The sink's certificate is from a test CA, not the system store: recorded, not enforced.
    assert 'tls="TLSv1.' in ok[0] and 'verify="unverified: ' in ok[0], ok[0]
    assert "event=smtp_client.tls" in log


def test_failed_tls_handshake_falls_back_to_plaintext(bulwark, sink):
    d = bulwark(outbound(sink, "badtls"))
    token = H.token()
    assert H.sendmail_trusted(d, "alice@example.test", ["bob@far.example"], message(token)) == {}
    fields, _ = wait_until(lambda: with_token(sink, token), what="delivery in plaintext")[0]
    assert fields["tls"] == ["0"], fields
    log = d.log_text()
    assert "event=delivery.tls_failed" in log and "retry=plaintext" in log
    ok = [l for l in log.splitlines() if "event=delivery.ok" in l and "bob@far.example" in l]
    assert ok and 'tls="none"' in ok[0], ok


def test_lockdown_stops_everything_then_release_delivers_all(bulwark, sink):
    d = bulwark(outbound(sink, "plain"))
    mark = len(d.log_text())
    assert d.ctl("lockdown", "on").returncode == 0
    H.wait_log(d, "event=queue.lockdown", "state=on", since=mark, timeout=6)
    tokens = [H.token() for _ in range(3)]
    for t in tokens:
        assert H.sendmail_trusted(d, "alice@example.test", [f"x-{t}@far.example"], message(t)) == {}
    wait_until(lambda: len([r for r in queue_rows(d) if r["state"] == "held"]) == 3,
               what="three held messages")
    time.sleep(2.5)   # a pickup tick: nothing may leave meanwhile
    assert all(with_token(sink, t) == [] for t in tokens), "nothing reaches the sink in lockdown"
    assert d.ctl("lockdown", "off").returncode == 0
    assert d.ctl("queue", "release", "--all").returncode == 0
    for t in tokens:
        wait_until(lambda: with_token(sink, t), what="delivery after the lockdown")
    wait_until(lambda: queue_rows(d) == [], what="an empty queue")


def test_max_queue_lifetime_expiry_bounces_with_a_dsn(bulwark, sink):
    d = bulwark(outbound(sink, "plain", retry_base=1, retry_max=1, max_queue_lifetime=2))
    token = H.token()
    rcpt = "tempfail@far.example"   # always 451
    assert H.sendmail_trusted(d, "alice@example.test", [rcpt], message(token, rcpt)) == {}

    def bounce():
        for path, raw in d.read_maildir("alice@example.test"):
            m = email.message_from_bytes(raw)
            if m.get_content_type() == "multipart/report" and token in raw.decode(errors="replace"):
                return path, raw, m
        return None
    path, raw, m = wait_until(bounce, timeout=40, what="the expiry bounce")
    assert Path(path).read_bytes().startswith(b"Return-Path: <>")
    assert m.get_param("report-type") == "delivery-status"
    parts = m.get_payload()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    status = parts[1].as_string()
    assert "Reporting-MTA: dns; " in status
    assert f"Final-Recipient: rfc822; {rcpt}" in status
    assert "Action: failed" in status
    assert "Status: 4.4.7" in status
    assert parts[2].get_content_type() in ("text/rfc822-headers", "message/rfc822")
    assert token in parts[2].as_string()
    wait_until(lambda: queue_rows(d) == [], what="an empty queue after the bounce")
    assert with_token(sink, token) == []


def _send_many(d, n):
    tokens = [H.token() for _ in range(n)]
    for t in tokens:
        assert H.sendmail_trusted(d, "alice@example.test", [f"m-{t}@far.example"], message(t)) == {}
    return tokens


def test_connections_are_reused_and_capped_per_destination(bulwark, sink):
    d = bulwark(outbound(sink, "slow", max_per_destination=2, max_connections=10,
                         connection_idle_seconds=5))
    before = sink_stats(sink, sink["slow"])   # aiosmtpd's own start-up probe is one
    tokens = _send_many(d, 8)
    got = [wait_until(lambda: with_token(sink, t), timeout=30, what="delivery")[0] for t in tokens]
    stats = sink_stats(sink, sink["slow"])
    assert stats["peak"] <= 2, stats
    assert stats["connections"] - before["connections"] < len(tokens), f"no reuse: {stats}"
    conns = [f["conn"][0] for f, _ in got]
    assert max(conns.count(c) for c in set(conns)) >= 2, conns
    assert "conn_messages=2" in d.log_text()


def test_total_connection_cap(bulwark, sink):
    d = bulwark(outbound(sink, "slow", max_per_destination=10, max_connections=1))
    tokens = _send_many(d, 5)
    for t in tokens:
        wait_until(lambda: with_token(sink, t), timeout=30, what="delivery")
    stats = sink_stats(sink, sink["slow"])
    assert stats["peak"] == 1, stats


def test_no_reuse_when_the_idle_window_is_zero(bulwark, sink):
    d = bulwark(outbound(sink, "plain", connection_idle_seconds=0))
    before = sink_stats(sink, sink["plain"])
    tokens = _send_many(d, 3)
    for t in tokens:
        wait_until(lambda: with_token(sink, t), timeout=30, what="delivery")
    assert sink_stats(sink, sink["plain"])["connections"] - before["connections"] == 3
