"""
test_metrics.py: security metrics as Prometheus text on listen.http /metrics
(issue 3), and `bulwarkctl stats`.

/metrics answers clients in mynetworks (127.0.0.1) and refuses others (403).
The values move as the tests act: failed AUTH by protocol and reason,
successful logins, lockouts, bans (total and active), connections refused
by a ban, relay denials, accepted messages, the queue size. Gauges are
refreshed once a second, so the tests poll.

AUTH failures come from 127.0.0.1 (in mynetworks, so in ignoreip: never
banned); bans are provoked from 127.0.0.9 (maxretry 5, bantime 3).
"""

import re
import time

import pytest

import bulwark_helpers as H

CONF = {"intrusion_prevention": {"maxretry": 5, "findtime": 60, "bantime": 3, "bantime_max": 100}}

REQUIRED = [
    "bulwark_auth_failures_total",
    "bulwark_auth_success_total",
    "bulwark_lockouts_total",
    "bulwark_bans_total",
    "bulwark_bans_active",
    "bulwark_connections_refused_total",
    "bulwark_relay_denied_total",
    "bulwark_messages_accepted_total",
    "bulwark_queue_messages",
]
# also on the list; only their HELP/TYPE are required up front
DESCRIBED = REQUIRED + [
    "bulwark_lockouts_active",
    "bulwark_unbans_total",
    "bulwark_confirmations_requested_total",
    "bulwark_confirmations_completed_total",
    "bulwark_messages_rejected_total",
    "bulwark_ban_filter_networks",
]

BAD_PW = 'bulwark_auth_failures_total{protocol="smtp",reason="bad_password"}'
UNKNOWN = 'bulwark_auth_failures_total{protocol="smtp",reason="unknown_user"}'
SUCCESS = 'bulwark_auth_success_total{protocol="smtp"}'
REFUSED = 'bulwark_connections_refused_total{reason="banned"}'


@pytest.fixture(scope="module")
def mon(module_bulwark):
    port, over = H.http_overrides(CONF)
    d = module_bulwark(overrides=over, name="metrics")
    d.http_port = port
    return d


def names(series):
    return {k.split("{", 1)[0] for k in series}


def value(series, name):
    """Sum of every series of name (any labels)."""
    return sum(v for k, v in series.items() if k == name or k.startswith(name + "{"))


def test_metrics_refused_outside_mynetworks(mon):
    for src in (H.UNTRUSTED, H.UNTRUSTED2):
        r = H.http_get(mon.http_port, "/metrics", source=src)
        assert r.status == 403, (src, r)
        assert "bulwark_" not in r.text, r.text


def test_metrics_served_to_mynetworks(mon):
    r = H.http_get(mon.http_port, "/metrics", source=H.TRUSTED)
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    series = H.parse_metrics(r.text)
    missing = [n for n in DESCRIBED if f"# TYPE {n} " not in r.text]
    assert not missing, f"no TYPE line for {missing} in:\n{r.text}"
    for n in DESCRIBED:
        kind = "counter" if n.endswith("_total") else "gauge"
        assert f"# TYPE {n} {kind}\n" in r.text, (n, kind)
    # unlabelled series are shown (as 0) before anything happened
    for n in ("bulwark_lockouts_total", "bulwark_bans_active", "bulwark_relay_denied_total",
              "bulwark_messages_accepted_total", "bulwark_queue_messages"):
        assert n in series, f"{n} has no sample:\n{r.text}"
    assert all(v >= 0 for v in series.values()), series


def test_auth_failure_and_success_counters(mon):
    user = H.unique_user(mon, "mt")
    before = H.metrics(mon.http_port)
    H.assert_auth_refused(mon, user, "Wrong-Guess-metrics-1", source=H.TRUSTED)
    H.wait_metric(mon.http_port, BAD_PW, lambda v: v == before.get(BAD_PW, 0) + 1)
    H.assert_auth_refused(mon, "nosuch@example.test", "Wrong-Guess-metrics-2", source=H.TRUSTED)
    H.wait_metric(mon.http_port, UNKNOWN, lambda v: v == before.get(UNKNOWN, 0) + 1)
    H.assert_auth_ok(mon, user, source=H.TRUSTED)
    H.wait_metric(mon.http_port, SUCCESS, lambda v: v == before.get(SUCCESS, 0) + 1)
    after = H.metrics(mon.http_port)
    assert after.get(BAD_PW) == before.get(BAD_PW, 0) + 1, (before, after)


def test_lockout_counter(mon):
    user = H.unique_user(mon, "ml")
    before = value(H.metrics(mon.http_port), "bulwark_lockouts_total")
    for i in range(3):
        H.assert_auth_refused(mon, user, f"Wrong-Guess-lock-{i}", source=H.TRUSTED)
    H.wait_metric(mon.http_port, "bulwark_lockouts_total", lambda v: v == before + 1)
    locked = 'bulwark_auth_failures_total{protocol="smtp",reason="locked"}'
    b = H.metric(mon.http_port, locked)
    H.assert_auth_refused(mon, user, source=H.TRUSTED)
    H.wait_metric(mon.http_port, locked, lambda v: v == b + 1)


def test_ban_metrics(mon):
    before = H.metrics(mon.http_port)
    relay_before = value(before, "bulwark_relay_denied_total")
    replies = H.relay_strikes(mon, H.UNTRUSTED, 5)
    codes = [r.code for r in replies]
    assert codes[:4] == [554] * 4 and codes[4] in (554, 421), replies
    H.wait_banned(mon, H.UNTRUSTED, timeout=2)
    after = H.metrics(mon.http_port)
    assert value(after, "bulwark_relay_denied_total") >= relay_before + 5, (before, after)
    assert value(after, "bulwark_bans_total") == value(before, "bulwark_bans_total") + 1, after
    # wait_banned's connections were refused at accept (counted) or, once the
    # tick put the ban into the kernel filter, dropped before it (not counted)
    assert after.get(REFUSED, 0) >= before.get(REFUSED, 0), after
    H.wait_metric(mon.http_port, "bulwark_bans_active", lambda v: v >= 1, timeout=2.5)
    H.wait_metric(mon.http_port, "bulwark_ban_filter_networks", lambda v: v >= 1, timeout=2.5)
    # the ban ends after 3 s; the gauges follow
    H.wait_served(mon, H.UNTRUSTED, timeout=10)
    H.wait_metric(mon.http_port, "bulwark_bans_active", lambda v: v == 0, timeout=5)
    H.wait_metric(mon.http_port, "bulwark_ban_filter_networks", lambda v: v == 0, timeout=5)


def test_refused_at_accept_counted(bulwark):
    """Without the kernel filter every connection from a banned network
    reaches accept and is counted as refused."""
    conf = H.deep_merge(CONF, {"intrusion_prevention": {"drop_before_accept": False,
                                                        "bantime": 30}})
    port, over = H.http_overrides(conf)
    d = bulwark(overrides=over)
    H.relay_strikes(d, H.UNTRUSTED, 5)
    H.wait_banned(d, H.UNTRUSTED, timeout=2)
    time.sleep(1.2)   # a tick: the filter would be attached by now if it were on
    before = H.metric(port, REFUSED)
    for name, p in H.all_ports(d):
        assert H.dropped_at_accept(p, H.UNTRUSTED, connect_timeout=5), name
    H.wait_metric(port, REFUSED, lambda v: v == before + 3, timeout=2.5)
    assert H.metric(port, "bulwark_ban_filter_networks") == 0


def test_confirmation_counters(mon):
    before = H.metrics(mon.http_port)
    req = before.get("bulwark_confirmations_requested_total", 0)
    done = before.get("bulwark_confirmations_completed_total", 0)
    user = f"cm{H.token()[-8:]}@example.test"
    H.ctl_ok(mon, "user", "add", user, "--contact", "alice@example.test", input=H.PASSWORD + "\n")
    H.wait_metric(mon.http_port, "bulwark_confirmations_requested_total", lambda v: v == req + 1)
    _, path, tok = H.wait_confirmation_link(mon, "alice@example.test", user)
    r = H.http_post_form(mon.http_port, "/confirm", {"token": tok}, source=H.UNTRUSTED2)
    assert r.status == 200, r
    H.wait_metric(mon.http_port, "bulwark_confirmations_completed_total", lambda v: v == done + 1)


def test_messages_and_queue(mon):
    before = H.metrics(mon.http_port)
    acc = value(before, "bulwark_messages_accepted_total")
    tok = H.assert_serves(mon, source=H.UNTRUSTED2, deliver=True)
    H.wait_metric(mon.http_port, "bulwark_messages_accepted_total", lambda v: v >= acc + 1)
    # a message to a remote domain waits in the queue (no outbound yet)
    rtok, qid = H.send_one(mon.smtp_port, source=H.TRUSTED, rcpts=("far@remote.example",))
    assert (mon.queue_dir() / qid).is_file(), qid

    def spooled():
        return len([p for p in mon.queue_dir().iterdir()
                    if p.is_file() and re.fullmatch(r"[0-9a-f]{16}", p.name)])
    # the gauge settles on the number of messages in the spool (>= 1: ours waits)
    H.wait_until(lambda: H.metric(mon.http_port, "bulwark_queue_messages") == spooled() >= 1,
                 timeout=5, what="bulwark_queue_messages == messages in the spool")
    assert tok


def test_bulwarkctl_stats_prints_the_same(mon):
    H.assert_auth_refused(mon, "nosuch@example.test", "Wrong-Guess-stats", source=H.TRUSTED)
    time.sleep(1.2)
    served = H.metrics(mon.http_port)
    cp = H.ctl_ok(mon, "stats")
    out = cp.stdout
    for n in REQUIRED:
        assert n in out, f"{n} not in bulwarkctl stats:\n{out}"
    lines = [l for l in out.splitlines() if l.startswith("bulwark_")]
    assert lines, out
    # the same series, with the same values for counters nothing touches now
    stats = H.parse_metrics("\n".join(lines))
    assert set(served) <= set(stats), set(served) - set(stats)
    assert stats.get(UNKNOWN) == served.get(UNKNOWN), (stats.get(UNKNOWN), served.get(UNKNOWN))


def test_metrics_other_paths(mon):
    r = H.http_get(mon.http_port, "/nosuch", source=H.TRUSTED)
    assert r.status == 404, r
    r = H.http_request(mon.http_port, "POST", "/metrics", body=b"x", source=H.TRUSTED)
    assert r.status in (404, 405), r
