"""
test_bans.py: intrusion prevention, fail2ban built in (issue 3).

Config: maxretry 5, findtime 60, bantime 3 (bantime_max 100). Five strikes
from 127.0.0.9 (relay denied, failed AUTH, RCPT to unknown local users, TLS
handshake garbage) ban 127.0.0.9/32: a new connection from it gets no
greeting and no TLS handshake on any listener, while 127.0.0.10 is served
normally. Until the next tick (a second at most) it is closed at accept;
from then on the kernel's BPF filter on the listeners drops its SYN, so the
connect times out (H.dropped_at_accept takes either). The ban is logged (event=guard.ban), listed by
`bulwarkctl ban list --json` with its reason and evidence, survives a
restart, expires, and doubles for a repeat offender. ignoreip (default:
mynetworks) is never banned; an IP that just logged in successfully gets a
higher threshold (maxretry_authenticated, 20: a shared NAT). `ban add IP
--for S` and `ban del IP` act on the running daemon within seconds.
"""

import socket
import time

import pytest

import bulwark_helpers as H

BANS = {"intrusion_prevention": {"maxretry": 5, "findtime": 60, "bantime": 3,
                                 "bantime_max": 100}}
LONG_BANS = H.deep_merge(BANS, {"intrusion_prevention": {"bantime": 30}})
NET9 = "127.0.0.9/32"


def assert_strikes(replies, n, code=554):
    """n strike replies; the one that bans may instead be the 421 that
    closes the banned client's session."""
    codes = [r.code for r in replies]
    assert len(codes) == n and codes[:-1] == [code] * (n - 1) and codes[-1] in (code, 421), replies


def active_entries(d, network):
    """Bans of network in force now (expired rows stay in the list, to
    remember their level for escalation)."""
    now = time.time()
    return [b for b in H.ban_list(d) if b.get("network") == network and
            b.get("active", b.get("expires", 0) > now)]


def latest_entry(d, network):
    entries = active_entries(d, network)
    assert entries, f"{network} not in bulwarkctl ban list --json: {H.ban_list(d)}"
    return max(entries, key=lambda b: (b.get("level", 0), b.get("created", 0)))


def assert_not_banned(d, source):
    for name, port in H.all_ports(d):
        assert H.greeted(port, source, tls=(name == "submissions")), f"{source} not greeted on {name}"
    net = f"{source}/32"
    assert not active_entries(d, net), H.ban_list(d)
    assert not H.log_lines(d, "event=guard.ban", f"network={net}"), H.log_lines(d, "event=guard.ban")


def test_relay_strikes_ban_on_every_listener_then_expire(bulwark):
    d = bulwark(overrides=BANS)
    replies = H.relay_strikes(d, H.UNTRUSTED, 4)
    assert [r.code for r in replies] == [554] * 4, replies
    assert H.greeted(d.smtp_port, H.UNTRUSTED), "banned after 4 strikes (maxretry is 5)"
    assert_strikes(H.relay_strikes(d, H.UNTRUSTED, 1), 1)
    t_ban = time.monotonic()
    # dropped at accept: no 220, no TLS handshake, on every listener
    H.wait_banned(d, H.UNTRUSTED, timeout=2)
    # another stranger is served normally meanwhile
    for name, port in H.all_ports(d):
        assert H.greeted(port, H.UNTRUSTED2, tls=(name == "submissions")), name
    assert time.monotonic() - t_ban < 3, "checks too slow for a 3 s ban"
    lines = H.wait_log(d, "event=guard.ban", f"network={NET9}")
    assert "reason=" in lines[0], lines
    H.assert_serves(d, source=H.UNTRUSTED2, deliver=True)
    # bantime 3 s: served again
    H.wait_served(d, H.UNTRUSTED, timeout=10)
    H.assert_serves(d, source=H.UNTRUSTED)


def test_auth_failures_ban_and_ban_list(bulwark):
    d = bulwark(overrides=LONG_BANS)
    mark = H.log_mark(d)
    for i in range(5):
        r = H.try_auth(d, f"nosuch{i}@example.test", f"Wrong-Guess-{i}-xyz", implicit=(i % 2 == 0))
        assert r.text == H.AUTH_BAD_TEXT, r.text
    H.wait_banned(d, H.UNTRUSTED, timeout=3)
    line = H.wait_log(d, "event=guard.ban", f"network={NET9}", since=mark)[0]
    assert "reason=" in line, line
    b = latest_entry(d, NET9)
    assert "auth" in str(b.get("reason", "")).lower(), b
    assert int(b.get("evidence", 0)) >= 5, b
    assert b["expires"] - b["created"] == 30, b
    assert b["expires"] > time.time(), b
    # plain listing names it too, with the reason
    out = H.ctl_ok(d, "ban", "list").stdout
    assert NET9 in out and str(b["reason"]) in out, out
    assert_not_banned(d, H.UNTRUSTED2)


def test_unknown_recipient_harvesting_bans(bulwark):
    d = bulwark(overrides=LONG_BANS)
    c = H.session(d.smtp_port, source=H.UNTRUSTED)
    try:
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
        replies = [c.cmd(f"RCPT TO:<harvest{i}@example.test>") for i in range(5)]
        assert_strikes(replies, 5, 550)
    finally:
        c.close()
    H.wait_banned(d, H.UNTRUSTED, timeout=3)
    assert latest_entry(d, NET9).get("reason"), H.ban_list(d)


def test_tls_garbage_bans(bulwark):
    d = bulwark(overrides=LONG_BANS)
    for _ in range(5):
        c = H.RawClient(d.submissions_port, source=H.UNTRUSTED)
        try:
            c.send(b"EHLO client.example.net\r\n" + b"\x00garbage" * 20 + b"\r\n")
            c.is_closed(timeout=5)
        except OSError:
            pass
        finally:
            c.close()
    H.wait_banned(d, H.UNTRUSTED, timeout=3)
    assert_not_banned(d, H.UNTRUSTED2)


def test_ban_survives_restart(bulwark):
    d = bulwark(overrides=LONG_BANS)
    H.relay_strikes(d, H.UNTRUSTED, 5)
    H.wait_banned(d, H.UNTRUSTED, timeout=3)
    before = latest_entry(d, NET9)
    assert d.stop() == 0, d.log_tail()
    d.start()
    H.wait_banned(d, H.UNTRUSTED, timeout=3)
    after = latest_entry(d, NET9)
    assert (after["created"], after["expires"], after["reason"]) == \
        (before["created"], before["expires"], before["reason"]), (before, after)
    assert_not_banned(d, H.UNTRUSTED2)
    H.ctl_ok(d, "ban", "del", "127.0.0.9")
    H.wait_served(d, H.UNTRUSTED, timeout=4)
    assert not active_entries(d, NET9), H.ban_list(d)


def test_repeat_offender_ban_doubles(bulwark):
    d = bulwark(overrides=BANS)
    H.relay_strikes(d, H.UNTRUSTED, 5)
    H.wait_banned(d, H.UNTRUSTED, timeout=2)
    first = latest_entry(d, NET9)
    assert first.get("level") == 1 and first["expires"] - first["created"] == 3, first
    H.wait_served(d, H.UNTRUSTED, timeout=10)
    H.relay_strikes(d, H.UNTRUSTED, 5)
    H.wait_banned(d, H.UNTRUSTED, timeout=2)
    second = latest_entry(d, NET9)
    assert second.get("level") == 2, second
    assert second["expires"] - second["created"] == 6, second
    # still banned after the first bantime
    time.sleep(3.5)
    assert H.dropped_at_accept(d.smtp_port, H.UNTRUSTED), "the second ban did not last 6 s"


def test_bantime_capped_by_bantime_max(bulwark):
    d = bulwark(overrides=H.deep_merge(BANS, {"intrusion_prevention": {"bantime": 2, "bantime_max": 3}}))
    for level in (1, 2):
        H.relay_strikes(d, H.UNTRUSTED, 5)
        H.wait_banned(d, H.UNTRUSTED, timeout=2)
        b = latest_entry(d, NET9)
        assert b.get("level") == level, b
        assert b["expires"] - b["created"] == (2 if level == 1 else 3), b
        H.wait_served(d, H.UNTRUSTED, timeout=10)


def test_mynetworks_never_banned(bulwark):
    d = bulwark(overrides=BANS)
    for _ in range(2):
        c = H.session(d.smtp_port, source=H.TRUSTED)
        try:
            H.expect(c.cmd("MAIL FROM:<sender@example.test>"), 250)
            for i in range(5):
                H.expect(c.cmd(f"RCPT TO:<nosuch{i}@example.test>"), 550, "5.1.1")
            c.quit()
        finally:
            c.close()
    for i in range(6):
        r = H.try_auth(d, f"nosuch{i}@example.test", "Wrong-Guess-xyz-1", source=H.TRUSTED)
        assert r.text == H.AUTH_BAD_TEXT, r.text
    time.sleep(0.5)
    assert_not_banned(d, H.TRUSTED)
    H.assert_serves(d, source=H.TRUSTED)


def test_explicit_ignoreip(bulwark):
    d = bulwark(overrides=H.deep_merge(BANS, {"intrusion_prevention": {
        "ignoreip": ["127.0.0.1/32", "127.0.0.10/32"]}}))
    replies = H.relay_strikes(d, H.UNTRUSTED2, 6)
    assert [r.code for r in replies] == [554] * 6, replies
    time.sleep(0.5)
    assert_not_banned(d, H.UNTRUSTED2)
    H.relay_strikes(d, H.UNTRUSTED, 5)
    H.wait_banned(d, H.UNTRUSTED, timeout=2)


def test_ban_add_and_del_while_running(bulwark):
    d = bulwark(overrides=BANS)
    H.ctl_ok(d, "ban", "add", "127.0.0.11", "--for", "30")
    H.wait_banned(d, H.UNTRUSTED3, timeout=3)
    b = latest_entry(d, "127.0.0.11/32")
    assert b["expires"] - b["created"] == 30, b
    assert b.get("reason"), b
    assert_not_banned(d, H.UNTRUSTED)
    H.ctl_ok(d, "ban", "del", "127.0.0.11")
    H.wait_served(d, H.UNTRUSTED3, timeout=3)
    assert not active_entries(d, "127.0.0.11/32"), H.ban_list(d)
    H.assert_serves(d, source=H.UNTRUSTED3)


def test_ban_cli_bad_input(bulwark):
    d = bulwark(overrides=BANS, users=False)
    for args in (["ban", "add", "not-an-ip"], ["ban", "add", "127.0.0.300"],
                 ["ban", "add", "127.0.0.12", "--for", "-5"],
                 ["ban", "add", "127.0.0.12", "--for", "abc"]):
        cp = d.ctl(*args)
        assert cp.returncode != 0, (args, H.output_of(cp))
        assert cp.stderr.strip(), args
    assert H.ban_list(d) == [], H.ban_list(d)


def test_recently_authenticated_ip_gets_higher_threshold(bulwark):
    d = bulwark(overrides=BANS)
    H.assert_auth_ok(d, "alice@example.test", source=H.UNTRUSTED2)
    replies = H.relay_strikes(d, H.UNTRUSTED2, 6)
    assert [r.code for r in replies] == [554] * 6, replies
    time.sleep(0.5)
    assert_not_banned(d, H.UNTRUSTED2)
    H.assert_serves(d, source=H.UNTRUSTED2)
    # a stranger without a login is banned at 5, as always
    H.relay_strikes(d, H.UNTRUSTED, 5)
    H.wait_banned(d, H.UNTRUSTED, timeout=2)


def connect_outcome(port, source, connect_timeout=0.3):
    """'timeout' (the SYN was dropped before accept), 'closed' (accepted and
    closed without a byte) or 'served' (anything sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(connect_timeout)
    try:
        s.bind((source, 0))
        try:
            s.connect((H.SERVER_IP, port))
        except (socket.timeout, TimeoutError):
            return "timeout"
        s.settimeout(3)
        try:
            return "served" if s.recv(512) else "closed"
        except (ConnectionResetError, ConnectionAbortedError):
            return "closed"
        except (socket.timeout, TimeoutError):
            return "served"   # held open: not refused
    finally:
        s.close()


def test_banned_syn_dropped_by_the_kernel(bulwark):
    """After a tick, a banned network's SYNs never reach accept(): the
    connect times out on every listener, nothing is counted or logged per
    connection, a stranger is served; lifting the ban lifts the filter."""
    d = bulwark(overrides=BANS)
    H.ctl_ok(d, "ban", "add", "127.0.0.9", "--for", "60")
    for name, port in H.all_ports(d):
        H.wait_until(lambda: connect_outcome(port, H.UNTRUSTED) == "timeout", timeout=5,
                     interval=0.2, what=f"{H.UNTRUSTED}'s SYN dropped on {name}")
    for name, port in H.all_ports(d):
        assert H.greeted(port, H.UNTRUSTED2, tls=(name == "submissions")), name
    H.assert_serves(d, source=H.UNTRUSTED2)
    assert "event=guard.filter_failed" not in d.log_text()
    H.ctl_ok(d, "ban", "del", "127.0.0.9")
    H.wait_served(d, H.UNTRUSTED, timeout=4)


def test_drop_before_accept_off_closes_at_accept(bulwark):
    """intrusion_prevention.drop_before_accept: false: no kernel filter, a
    banned client is accepted and closed at once, as before."""
    d = bulwark(overrides=H.deep_merge(BANS, {"intrusion_prevention": {
        "drop_before_accept": False}}))
    H.ctl_ok(d, "ban", "add", "127.0.0.9", "--for", "60")
    H.wait_banned(d, H.UNTRUSTED, timeout=3)
    time.sleep(1.2)   # a tick: the filter would be in place by now
    for name, port in H.all_ports(d):
        assert connect_outcome(port, H.UNTRUSTED, connect_timeout=5) == "closed", name
