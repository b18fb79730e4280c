"""
test_queue_monitor.py: the queue monitor (issue 4, "Queue monitor and
containment"; docs/containment.md).

Every queue_monitor.interval_seconds the daemon counts its queue; above
alert_threshold it raises an alert on every channel: a WARNING log line, the
bulwark_monitor_alerts_total metric, a message to the postmaster, and
alert_command with the JSON summary on its stdin. Here: more than
alert_threshold deferred messages (the in-process sink answers 451) raise
one alert within an interval (not one per interval while it lasts); the
command runs without a shell, its failure and its output are logged, a
command that hangs is killed after alert_command_timeout while the daemon
keeps serving. Loopback only.
"""

import functools
import json
import smtplib
import time

import bulwark_helpers as H


# this file polls at 0.1 s, for 30 s unless told
wait_until = functools.partial(H.wait_until, timeout=30, interval=0.1)


def script(tmp_path, name, body):
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def send_trusted(d, n, tok):
    s = smtplib.SMTP(H.SERVER_IP, d.smtp_port, local_hostname="client.example.org",
                     source_address=(H.TRUSTED, 0), timeout=30)
    for i in range(n):
        assert s.sendmail("news@example.test", [f"reader{i}@far.example"],
                          f"From: news@example.test\r\nSubject: {tok} {i}\r\n\r\nx\r\n".encode()) == {}
    s.quit()


def monitor_config(sink, **qm):
    """Outbound to the in-process sink; the queue monitor looks every second
    unless told, with qm (alert_threshold, alert_command, ...)."""
    return {"outbound": {"smarthost": f"127.0.0.1:{sink.port}"},
            "queue_monitor": {"interval_seconds": 1, **qm}}


def queue_alerts(out):
    if not out.exists():
        return []
    return [a for a in (json.loads(l) for l in out.read_text().splitlines() if l.strip())
            if a["kind"] == "queue"]


def test_deferred_messages_over_the_threshold_raise_one_alert(bulwark, sink, tmp_path):
    out = tmp_path / "alerts.jsonl"
    cmd = script(tmp_path, "alert.sh", 'cat >> "$1"\n')
    port, over = H.http_overrides(monitor_config(sink, interval_seconds=2, alert_threshold=3,
                                                 alert_command=f"{cmd} {out}"))
    sink.tempfail = True
    d = bulwark(over)
    tok = H.token()
    send_trusted(d, 5, tok)
    # all five deferred (the sink says 451)
    wait_until(lambda: d.log_text().count("event=queue.deferred") >= 5, what="5 deferrals")
    t0 = time.monotonic()
    a = wait_until(lambda: queue_alerts(out), what="the queue alert")[0]
    # within one interval (2 s) of being over, plus the time to run the script
    assert time.monotonic() - t0 < 2 + 8, "the alert comes within an interval"
    assert a["type"] == "bulwark.alert" and a["account"] is None
    assert a["queue"]["messages"] >= 5 and a["queue"]["deferred"] >= 4
    assert a["queue"]["threshold"] == 3
    assert "messages in the queue" in a["evidence"]
    log = d.log_text()
    assert "warning: event=monitor.alert kind=queue" in log
    assert "event=monitor.command alert=queue" in log and "result=ok exit=0" in \
        wait_until(lambda: "result=ok" in d.log_text() and d.log_text(), what="the command's end")
    # the metric and the gauge
    H.wait_metric(port, 'bulwark_monitor_alerts_total{kind="queue"}', lambda v: v >= 1)
    H.wait_metric(port, "bulwark_queue_deferred", lambda v: v >= 4, timeout=10)
    # the postmaster's copy
    wait_until(lambda: any(b"queue alert" in raw
                           for _, raw in d.read_maildir("postmaster@example.test")),
               what="the postmaster's alert message")
    # not repeated every interval while it lasts (alert_repeat_seconds: 3600)
    time.sleep(5)
    assert len(queue_alerts(out)) == 1
    assert d.log_text().count("event=monitor.alert kind=queue") == 1
    # below the threshold again: said once
    assert d.ctl("queue", "delete", "--all").returncode == 0
    wait_until(lambda: "event=monitor.queue_ok" in d.log_text(), what="the queue back to normal")


def test_under_the_threshold_no_alert(bulwark, sink, tmp_path):
    out = tmp_path / "alerts.jsonl"
    cmd = script(tmp_path, "alert.sh", 'cat >> "$1"\n')
    sink.tempfail = True
    d = bulwark(monitor_config(sink, alert_threshold=5, alert_command=f"{cmd} {out}"))
    send_trusted(d, 5, H.token())   # 5 is not above 5
    wait_until(lambda: d.log_text().count("event=queue.deferred") >= 5, what="5 deferrals")
    wait_until(lambda: d.log_text().count("event=monitor.queue ") >= 3, what="three looks")
    assert queue_alerts(out) == []
    assert "event=monitor.alert" not in d.log_text()


def test_alert_command_no_shell_failure_and_timeout(bulwark, sink, tmp_path):
    # arguments are literal (no shell): "$HOME" and ";" reach the program as they are
    marker = tmp_path / "should-not-exist"
    fail = script(tmp_path, "fail.sh", 'echo "args: $1 $2 $3"; read line; echo "got ${#line}"; exit 3\n')
    sink.tempfail = True
    d = bulwark(monitor_config(sink, alert_threshold=1,
                               alert_command=f"{fail} $HOME ; touch{marker}"))
    send_trusted(d, 2, H.token())
    log = wait_until(lambda: "result=failed exit=3" in d.log_text() and d.log_text(),
                     what="the failed command logged")
    # (the log escapes blanks and line ends as \x20, \x0a)
    assert r"args:\x20$HOME\x20;\x20touch" in log
    assert not marker.exists()
    assert r"got\x20" in log and r"got\x200\x0a" not in log, "the JSON arrived on stdin"
    d.stop()

    # a command that hangs is killed after alert_command_timeout; the daemon keeps serving
    hang = script(tmp_path, "hang.sh", "sleep 60\n")
    d2 = bulwark(monitor_config(sink, alert_threshold=1, alert_command=str(hang),
                                alert_command_timeout=2), name="hang")
    send_trusted(d2, 2, H.token())
    wait_until(lambda: "event=monitor.command alert=queue" in d2.log_text(), what="the start")
    s = smtplib.SMTP(H.SERVER_IP, d2.smtp_port, local_hostname="client.example.org",
                     source_address=(H.TRUSTED, 0), timeout=5)
    assert s.noop()[0] == 250, "the loop is not blocked by the command"
    s.quit()
    wait_until(lambda: "result=timeout" in d2.log_text(), timeout=20, what="the kill")


def test_alert_command_must_be_an_absolute_path(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("queue_monitor:\n  alert_command: curl -d @- https://hook.example\n")
    cp = H.run([H.BULWARKD, "-c", str(cfg), "-t"], cwd=tmp_path)
    assert cp.returncode != 0
    assert "queue_monitor.alert_command" in H.output_of(cp)
    assert "absolute program path" in H.output_of(cp)
