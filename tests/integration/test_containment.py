"""
test_containment.py: outbound containment of a compromised account (issue 4,
"Queue monitor and containment"; docs/containment.md).

The incident replayed: an authenticated account sends 300 messages fast to
external recipients. The hourly limit lets the first LIMIT through (451
4.7.1 at RCPT after that); going over is the rate_limit detector's signal,
so the account is contained: its queued outbound mail is held, its sending
suspended (550 5.7.1 at MAIL, while it can still log in), and the
alert_command (a script writing its stdin to a file) gets a JSON alert
naming the account. The sink (tests/integration/gated_sink.py, in-process)
keeps DATA waiting until the test opens its gate, so what bulwark held is
seen before anything more is delivered. Then `user resume` + `queue release
--sender` delivers it all, or `queue delete --sender` removes it.

Also: the per-account rate limits alone (detector off): 451 4.7.1 at RCPT
for messages and recipients, and the per-account override set by
`bulwarkctl user limit`. Each detector fires in a focused test: From
mismatch, same-subject burst, distinct domains, deferral ratio.
Loopback only; the untrusted client is 127.0.0.9.
"""

import functools
import json
import smtplib
import ssl
import time

import pytest

import bulwark_helpers as H

ACCOUNT = "alice@example.test"
LIMIT = 30   # more than the scheduler's 20 attempts at once: some must wait, and be held


# this file polls at 0.1 s, for 30 s unless told
wait_until = functools.partial(H.wait_until, timeout=30, interval=0.1)


def alert_script(tmp_path):
    out = tmp_path / "alerts.jsonl"
    script = tmp_path / "alert.sh"
    script.write_text('#!/bin/sh\ncat >> "$1"\n')
    script.chmod(0o755)
    return f"{script} {out}", out


def alerts(out):
    if not out.exists():
        return []
    return [json.loads(l) for l in out.read_text().splitlines() if l.strip()]


def config(sink, **qm):
    base = {
        "interval_seconds": 1,
        "alert_threshold": 100000,   # the queue alert is test_queue_monitor's
        "messages_per_hour": 1000,
        "recipients_per_hour": 10000,
        "detectors": {
            "rate_limit": {"enabled": True},
            "distinct_domains": {"enabled": True, "threshold": 1000, "window_seconds": 600},
            "deferral_ratio": {"enabled": True, "threshold": 100, "window_seconds": 3600,
                               "min_samples": 100000},
            "from_mismatch": {"enabled": True, "threshold": 1000, "window_seconds": 3600},
            "same_subject": {"enabled": True, "threshold": 100000, "window_seconds": 600},
        },
    }
    det = qm.pop("detectors", {})
    base.update(qm)
    for k, v in det.items():
        base["detectors"][k].update(v)
    # max_connections 10: at most 20 messages in delivery at once (2x, at least
    # 20; docs/outbound.md), so with LIMIT 30 some wait and must be held.
    return {"outbound": {"smarthost": f"127.0.0.1:{sink.port}", "max_connections": 10},
            "queue_monitor": base}


def login(d, source=H.UNTRUSTED, user=ACCOUNT):
    s = smtplib.SMTP(H.SERVER_IP, d.submission_port, local_hostname="client.example.org",
                     source_address=(source, 0), timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.ehlo("client.example.org")
    s.login(user, H.PASSWORD)
    return s


def message(i, subject=None, to="victim@far.example", frm=ACCOUNT):
    subject = subject if subject is not None else f"offer number {i}"
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{i}.{time.time_ns()}@example.test>\r\n\r\nbuy now {i}\r\n").encode()


def user_row(d, address=ACCOUNT):
    cp = d.ctl("user", "list", "--json")
    assert cp.returncode == 0, H.output_of(cp)
    return [u for u in json.loads(cp.stdout) if u["address"].lower() == address][0]


def queue_rows(d, sender=ACCOUNT):
    cp = d.ctl("queue", "list", "--json")
    assert cp.returncode == 0, H.output_of(cp)
    return [r for r in json.loads(cp.stdout) if r["sender"].lower() == sender]


def spam_run(d, n):
    """The compromised account sends n messages as fast as it can.
    Returns (accepted, refused_451_4.7.1, refused_550_5.7.1, other)."""
    accepted = rate = suspended = other = 0
    s = None
    for i in range(n):
        try:
            if s is None:
                s = login(d)
            s.sendmail(ACCOUNT, [f"victim{i}@far{i % 3}.example"], message(i))
            accepted += 1
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[0]
            if code == 451 and b"4.7.1" in text:
                rate += 1
            else:
                other += 1
        except smtplib.SMTPSenderRefused as e:
            if e.smtp_code == 550 and b"5.7.1" in e.smtp_error:
                suspended += 1
            else:
                other += 1
        except (smtplib.SMTPException, OSError):
            # too many refusals: the server hangs up (and may ban us): count, go on
            other += 1
            try:
                s.close()
            except Exception:
                pass
            s = None
    if s is not None:
        try:
            s.quit()
        except Exception:
            pass
    return accepted, rate, suspended, other


def contain_incident(bulwark, sink, tmp_path):
    """The incident up to containment; returns (daemon, alerts file, held rows)."""
    command, out = alert_script(tmp_path)
    sink.gate.clear()   # deliveries wait at DATA: nothing more leaves until we say
    d = bulwark(config(sink, messages_per_hour=LIMIT, alert_command=command))
    accepted, rate, suspended, other = spam_run(d, 300)
    assert accepted == LIMIT, (accepted, rate, suspended, other)
    assert rate >= 1, "over the limit is refused with 451 4.7.1 at RCPT"
    assert suspended + other >= 1, "once contained, MAIL is refused"
    log = wait_until(lambda: "event=monitor.containment" in d.log_text() and d.log_text(),
                     what="the containment")
    assert f"event=monitor.containment account={ACCOUNT} detector=rate_limit suspended=yes" in log
    # suspended in the directory; reading mail still works (it can log in)
    assert user_row(d)["suspended"] is True
    s = login(d, source=H.UNTRUSTED2)
    code, text = s.mail(ACCOUNT)
    assert code == 550 and b"5.7.1" in text, (code, text)
    s.quit()
    # the alert command got a JSON alert naming the account and the detector
    got = wait_until(lambda: [a for a in alerts(out) if a["kind"] == "containment"],
                     what="the alert_command's JSON")
    a = got[0]
    assert a["type"] == "bulwark.alert"
    assert a["account"] == ACCOUNT and a["detector"] == "rate_limit"
    assert "messages in one hour" in a["evidence"]
    assert a["action"]["contained"] is True and a["action"]["suspended"] is True
    assert "event=monitor.command alert=containment" in d.log_text()
    # held: everything not already at the sink's door (at most 20 attempts run at once)
    held = wait_until(lambda: [r for r in queue_rows(d) if r["state"] == "held"] or None,
                      what="held mail in queue list")
    assert len(held) >= LIMIT - 20, len(held)
    # the postmaster is told too
    wait_until(lambda: any(b"account contained" in raw
                           for _, raw in d.read_maildir("postmaster@example.test")),
               what="the postmaster's alert message")
    return d, out, held


def test_incident_contained_then_resumed_and_released(bulwark, sink, tmp_path):
    d, out, held = contain_incident(bulwark, sink, tmp_path)
    # Let what was in flight finish: it and the held mail are all the LIMIT accepted.
    sink.gate.set()
    wait_until(lambda: sink.count() + len([r for r in queue_rows(d) if r["state"] == "held"])
               == LIMIT and not [r for r in queue_rows(d) if r["state"] != "held"],
               what="in-flight deliveries to end, the rest held")
    before = sink.count()
    assert before <= LIMIT - len(held)
    time.sleep(1.5)   # held mail stays held
    assert sink.count() == before
    # `queue list` (table) shows the held mail too
    cp = d.ctl("queue", "list")
    assert cp.returncode == 0 and "held" in cp.stdout and ACCOUNT in cp.stdout
    # the admin resumes the account and releases its mail: it is delivered
    assert d.ctl("user", "resume", ACCOUNT).returncode == 0
    cp = d.ctl("queue", "release", "--sender", ACCOUNT)
    assert cp.returncode == 0, H.output_of(cp)
    wait_until(lambda: sink.count() == LIMIT, timeout=60, what="the released mail at the sink")
    wait_until(lambda: queue_rows(d) == [], what="an empty queue")
    assert sink.count() == LIMIT, "the sink never receives more than the limit"
    assert "event=monitor.lifted account=alice@example.test" in d.log_text()
    # the account sends again (its windows start afresh)
    s = login(d, source=H.UNTRUSTED2)
    assert s.sendmail(ACCOUNT, ["friend@far.example"], message(999)) == {}
    s.quit()
    wait_until(lambda: sink.count() == LIMIT + 1, what="mail after the resume")


def test_incident_contained_then_deleted(bulwark, sink, tmp_path):
    d, out, held = contain_incident(bulwark, sink, tmp_path)
    cp = d.ctl("queue", "delete", "--sender", ACCOUNT)
    assert cp.returncode == 0, H.output_of(cp)
    sink.gate.set()
    wait_until(lambda: queue_rows(d) == [], what="the spam deleted")
    time.sleep(1.5)
    assert sink.count() <= LIMIT - len(held)
    assert queue_rows(d) == []
    assert user_row(d)["suspended"] is True, "deleting the mail does not resume the account"


# ---- rate limits on their own ----

def test_rate_limit_messages_and_override(bulwark, sink):
    d = bulwark(config(sink, messages_per_hour=3, detectors={"rate_limit": {"enabled": False}}))
    s = login(d)
    for i in range(3):
        assert s.sendmail(ACCOUNT, [f"r{i}@far.example"], message(i)) == {}
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        s.sendmail(ACCOUNT, ["r9@far.example"], message(9))
    code, text = e.value.recipients["r9@far.example"]
    assert code == 451 and text.startswith(b"4.7.1") and b"messages" in text
    # local recipients are not outbound mail: not limited
    assert s.sendmail(ACCOUNT, ["bob@example.test"], message(10)) == {}
    s.quit()
    assert "reason=rate_limit_messages" in d.log_text()
    assert "event=monitor.containment" not in d.log_text(), "the detector is off"
    assert user_row(d)["suspended"] is False
    # a per-account override, read at the next MAIL
    cp = d.ctl("user", "limit", ACCOUNT, "--messages", "5")
    assert cp.returncode == 0, H.output_of(cp)
    assert "messages_per_hour=5 " in cp.stdout and "recipients_per_hour=10000 (default)" in cp.stdout
    assert user_row(d)["messages_per_hour"] == 5 and user_row(d)["recipients_per_hour"] is None
    s = login(d)
    for i in range(2):
        assert s.sendmail(ACCOUNT, [f"o{i}@far.example"], message(20 + i)) == {}
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        s.sendmail(ACCOUNT, ["o9@far.example"], message(29))
    s.quit()
    # bob has no override: the config's limit
    cp = d.ctl("user", "limit", "bob@example.test")
    assert cp.returncode == 0 and "messages_per_hour=3 (default)" in cp.stdout
    # back to the default; bad values refused
    assert d.ctl("user", "limit", ACCOUNT, "--messages", "default").returncode == 0
    assert d.ctl("user", "limit", ACCOUNT, "--messages", "-1").returncode == 1
    assert d.ctl("user", "limit", "nobody@example.test").returncode == 1
    wait_until(lambda: sink.count() == 5, what="the accepted mail at the sink")


def test_rate_limit_recipients_at_rcpt(bulwark, sink):
    d = bulwark(config(sink, recipients_per_hour=4, detectors={"rate_limit": {"enabled": False}}))
    s = login(d)
    s.ehlo("client.example.org")
    assert s.mail(ACCOUNT)[0] == 250
    for i in range(4):
        assert s.rcpt(f"x{i}@far.example")[0] == 250
    code, text = s.rcpt("x4@far.example")
    assert code == 451 and text.startswith(b"4.7.1") and b"recipients" in text
    code, _ = s.data(message(1))
    assert code == 250
    # the hour's recipients are spent: the next message's first RCPT is refused
    assert s.mail(ACCOUNT)[0] == 250
    code, text = s.rcpt("y@far.example")
    assert code == 451 and b"4.7.1" in text
    s.rset()
    s.quit()
    wait_until(lambda: sink.count() == 1 and len(sink.messages()[0][1]) == 4,
               what="the 4 recipients at the sink")
    assert "reason=rate_limit_recipients" in d.log_text()


def test_rate_limit_per_account_override_for_recipients(bulwark, sink):
    d = bulwark(config(sink, detectors={"rate_limit": {"enabled": False}}))
    cp = d.ctl("user", "limit", ACCOUNT, "--recipients", "2")
    assert cp.returncode == 0 and "recipients_per_hour=2" in cp.stdout
    s = login(d)
    refused = s.sendmail(ACCOUNT, ["a@far.example", "b@far.example"], message(1))
    assert refused == {}
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        s.sendmail(ACCOUNT, ["c@far.example"], message(2))
    s.quit()
    # bob is not limited by alice's override
    s = login(d, user="bob@example.test")
    assert s.sendmail("bob@example.test", ["c@far.example", "d@far.example", "e@far.example"],
                      message(3, frm="bob@example.test")) == {}
    s.quit()


def test_rate_limit_holds_across_parallel_sessions_at_data_and_bdat(bulwark, sink):
    d = bulwark(config(sink, messages_per_hour=1, detectors={"rate_limit": {"enabled": False}}))
    a, b, c = login(d), login(d), login(d)
    # a and c are at RCPT (nothing counted yet) when b sends the hour's one message
    for s, to in ((a, "pa@far.example"), (c, "pc@far.example")):
        assert s.mail(ACCOUNT)[0] == 250 and s.rcpt(to)[0] == 250
    assert b.sendmail(ACCOUNT, ["pb@far.example"], message(1)) == {}
    code, text = a.docmd("DATA")
    assert code == 451 and text.startswith(b"4.7.1"), (code, text)
    body = message(2)
    c.send(f"BDAT {len(body)} LAST\r\n".encode() + body)
    code, text = c.getreply()
    assert code == 451 and text.startswith(b"4.7.1"), (code, text)
    for s in (a, b, c):
        s.quit()
    wait_until(lambda: sink.count() == 1, what="the one message")
    time.sleep(0.5)
    assert sink.count() == 1


# ---- each detector, focused ----

def detected(d, detector):
    return wait_until(lambda: f"detector={detector}" in d.log_text() and
                      "event=monitor.containment" in d.log_text() and d.log_text(),
                      what=f"the {detector} detector")


def test_detector_from_mismatch(bulwark, sink, tmp_path):
    command, out = alert_script(tmp_path)
    d = bulwark(config(sink, alert_command=command,
                       detectors={"from_mismatch": {"threshold": 2}}))
    s = login(d)
    # its own address, display names, an alias that includes it are fine
    assert s.sendmail(ACCOUNT, ["a@far.example"],
                      message(1, frm=f'"Alice A." <{ACCOUNT}>')) == {}
    assert s.sendmail(ACCOUNT, ["a@far.example"],
                      message(1, frm='"ceo@bank.example" <team@example.test>')) == {}
    # mail between colleagues is not outbound: not watched
    assert s.sendmail(ACCOUNT, ["bob@example.test"], message(1, frm="boss@bank.example")) == {}
    assert s.sendmail(ACCOUNT, ["bob@example.test"], message(1, frm="boss@bank.example")) == {}
    assert s.sendmail(ACCOUNT, ["a@far.example"], message(2, frm="ceo@bank.example")) == {}
    assert "event=monitor.detected" not in d.log_text(), "one mismatch is under the threshold"
    assert s.sendmail(ACCOUNT, ["a@far.example"],
                      message(3, frm='"Bank" <security@bank.example>')) == {}
    s.quit()
    log = detected(d, "from_mismatch")
    assert "security@bank.example" in log
    a = wait_until(lambda: [a for a in alerts(out) if a["kind"] == "containment"],
                   what="the alert")[0]
    assert a["detector"] == "from_mismatch" and a["account"] == ACCOUNT
    assert user_row(d)["suspended"] is True


def test_detector_same_subject_burst(bulwark, sink):
    sink.gate.clear()
    d = bulwark(config(sink, detectors={"same_subject": {"threshold": 5}}))
    s = login(d)
    for i in range(2):
        rcpts = [f"u{i}{k}@far{k}.example" for k in range(3)]
        assert s.sendmail(ACCOUNT, rcpts, message(i, subject="You  have WON")) == {}
    s.quit()
    log = detected(d, "same_subject")
    assert "6 recipients" in log and "You have WON" in log
    assert user_row(d)["suspended"] is True
    wait_until(lambda: [r for r in queue_rows(d) if r["state"] == "held"], what="held mail")
    sink.gate.set()


def test_detector_distinct_domains(bulwark, sink):
    d = bulwark(config(sink, detectors={"distinct_domains": {"threshold": 4,
                                                              "window_seconds": 600}}))
    s = login(d)
    # many recipients in few domains: fine
    assert s.sendmail(ACCOUNT, [f"p{k}@same.example" for k in range(8)], message(0)) == {}
    for i in range(4):
        assert s.sendmail(ACCOUNT, [f"p@d{i}.example"], message(i + 1)) == {}
    s.quit()
    log = detected(d, "distinct_domains")
    assert "5 distinct recipient domains" in log
    assert user_row(d)["suspended"] is True


def test_detector_deferral_ratio(bulwark, sink, tmp_path):
    command, out = alert_script(tmp_path)
    sink.tempfail = True
    d = bulwark(config(sink, alert_command=command,
                       detectors={"deferral_ratio": {"threshold": 50, "min_samples": 3}}))
    s = login(d)
    for i in range(3):
        assert s.sendmail(ACCOUNT, [f"z{i}@far.example"], message(i)) == {}
    s.quit()
    log = detected(d, "deferral_ratio")
    assert "3 of 3 remote recipients deferred or bounced" in log
    a = wait_until(lambda: [a for a in alerts(out) if a["kind"] == "containment"],
                   what="the alert")[0]
    assert a["detector"] == "deferral_ratio"
    # the deferred mail is held, not retried
    held = wait_until(lambda: len([r for r in queue_rows(d) if r["state"] == "held"]) == 3,
                      what="the deferred mail held")
    assert held


def test_detector_alert_only_when_containment_is_off(bulwark, sink, tmp_path):
    command, out = alert_script(tmp_path)
    d = bulwark(config(sink, alert_command=command, containment=False,
                       detectors={"same_subject": {"threshold": 2}}))
    s = login(d)
    for i in range(2):
        assert s.sendmail(ACCOUNT, [f"q{i}a@far.example", f"q{i}b@far.example"],
                          message(i, subject="same")) == {}
    s.quit()
    a = wait_until(lambda: [a for a in alerts(out) if a["kind"] == "detector"],
                   what="the detector alert")[0]
    assert a["detector"] == "same_subject" and a["action"]["contained"] is False
    assert user_row(d)["suspended"] is False
    wait_until(lambda: sink.count() == 2, what="the mail delivered anyway")
    assert "event=monitor.containment" not in d.log_text()


def test_release_before_resume_is_held_again_even_after_a_restart(bulwark, sink, tmp_path):
    """Resume first, then release: mail of a suspended account stays held."""
    sink.tempfail = True   # deferred: held when its attempt ends
    port, over = H.http_overrides(config(sink, detectors={"from_mismatch": {"threshold": 1}}))
    d = bulwark(over)
    s = login(d)
    assert s.sendmail(ACCOUNT, ["v@far.example"], message(1, frm="it@bank.example")) == {}
    s.quit()
    detected(d, "from_mismatch")
    wait_until(lambda: [r for r in queue_rows(d) if r["state"] == "held"], what="held")
    H.wait_metric(port, 'bulwark_containments_total{detector="from_mismatch"}', lambda v: v == 1)
    H.wait_metric(port, 'bulwark_monitor_detections_total{detector="from_mismatch"}',
                  lambda v: v == 1)
    H.wait_metric(port, "bulwark_accounts_contained", lambda v: v == 1)
    sink.tempfail = False
    # released while still suspended: held again at once
    assert d.ctl("queue", "release", "--sender", ACCOUNT).returncode == 0
    wait_until(lambda: d.log_text().count("event=queue.held") >= 2, what="held again")
    wait_until(lambda: [r["state"] for r in queue_rows(d)] == ["held"], what="held state")
    # a restart forgets the windows, not the suspension: held again too
    assert d.stop() == 0
    d.restart()
    assert d.ctl("queue", "release", "--sender", ACCOUNT).returncode == 0
    wait_until(lambda: "reason=containment" in d.log_text().split("test harness: starting")[-1],
               what="held again after the restart")
    wait_until(lambda: [r["state"] for r in queue_rows(d)] == ["held"], what="held state")
    assert sink.count() == 0
    # resume, release: delivered
    assert d.ctl("user", "resume", ACCOUNT).returncode == 0
    assert d.ctl("queue", "release", "--sender", ACCOUNT).returncode == 0
    wait_until(lambda: sink.count() == 1, what="delivery after the resume")


def test_postmaster_alias_gets_the_alert(bulwark, sink):
    d = bulwark(config(sink, detectors={"from_mismatch": {"threshold": 1}}))
    d.add_alias("postmaster@example.test", "bob@example.test")
    s = login(d)
    assert s.sendmail(ACCOUNT, ["v@far.example"], message(1, frm="it@bank.example")) == {}
    s.quit()
    raw = wait_until(lambda: [r for _, r in d.read_maildir("bob@example.test")
                              if b"account contained" in r], what="the alert in bob's Maildir")[0]
    assert b"alice@example.test (from_mismatch)" in raw
    assert b"bulwarkctl queue release --sender" in raw
    assert b'"type":"bulwark.alert"' in raw
