"""
test_valgrind.py: the daemon is Valgrind-clean on its main paths.

make test builds build-vg (Debug, no sanitizers: Valgrind and ASan do not mix)
and sets BULWARK_VG_BUILD; without it this test is skipped. One daemon runs
under memcheck while a client does what the other suites do one by one:
inbound delivery over STARTTLS, AUTH (wrong, then right password), an
authenticated relay, a relay attempt from an untrusted address, a smuggling
look-alike, a bare-LF command, /metrics, then SIGTERM. Memcheck must report
no error and no definite or indirect leak, and the daemon must exit 0.
"""

import base64
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

import bulwark_helpers as H

VG_BUILD = os.environ.get("BULWARK_VG_BUILD")

pytestmark = pytest.mark.skipif(
    not VG_BUILD or shutil.which("valgrind") is None,
    reason="BULWARK_VG_BUILD not set or valgrind missing (make test sets it)")


def _client(port, src):
    import smtplib
    s = smtplib.SMTP(H.SERVER_IP, port, local_hostname="client.example.org",
                     source_address=(src, 0), timeout=60)
    return s


def test_daemon_under_memcheck(tmp_path):
    vg_build = H.REPO / VG_BUILD
    daemon_bin = vg_build / "bulwarkd"
    ctl_bin = vg_build / "bulwarkctl"
    assert daemon_bin.exists(), daemon_bin
    http_port = H.free_ports(1)[0]
    d = H.Daemon(tmp_path, {"listen": {"http": [f"{H.SERVER_IP}:{http_port}"]}}, name="valgrind")
    # The RSA key for the self-signed pair is slow under memcheck: make it first.
    boot = subprocess.Popen([str(H.BULWARKD), "-c", str(d.config_path)], cwd=str(d.workdir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=H.sanitizer_env())
    # Wait until it serves (signal handlers are in place by then), then stop it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((H.SERVER_IP, d.smtp_port), timeout=2,
                                          source_address=(H.TRUSTED, 0)) as s:
                if s.recv(100).startswith(b"220 "):
                    break
        except OSError:
            time.sleep(0.1)
    assert (d.data_dir / "tls" / "cert.pem").exists()
    boot.terminate()
    assert boot.wait(timeout=30) == 0
    vglog = tmp_path / "valgrind.log"
    proc = H.start_under_memcheck(d, daemon_bin, vglog)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, d.log_tail()
            try:
                with socket.create_connection((H.SERVER_IP, d.smtp_port), timeout=5,
                                              source_address=(H.TRUSTED, 0)) as s:
                    if s.recv(100).startswith(b"220 "):
                        break
            except OSError:
                time.sleep(0.5)
        pw = "Correct-Horse-Battery-9"
        cp = subprocess.run([str(ctl_bin), "-c", str(d.config_path), "user", "add",
                             "alice@example.test", "--confirmed"], input=pw + "\n",
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        ctx = ssl._create_unverified_context()

        s = _client(d.smtp_port, H.UNTRUSTED)
        s.starttls(context=ctx)
        s.ehlo("client.example.org")
        assert s.sendmail("bob@remote.example", ["alice@example.test"],
                          b"Subject: vg\r\n\r\nhello\r\n") == {}
        assert s.docmd("RCPT TO:<x@remote.example>")[0] == 503
        s.quit()

        for password, expect in (("wrong-password-1", 535), (pw, 235)):
            s = _client(d.submission_port, "127.0.0.10")
            s.starttls(context=ctx)
            s.ehlo("client.example.org")
            token = base64.b64encode(f"\0alice@example.test\0{password}".encode()).decode()
            code, _ = s.docmd("AUTH", "PLAIN " + token)
            assert code == expect
            if code == 235:
                assert s.sendmail("alice@example.test", ["x@remote.example"],
                                  b"Subject: relay\r\n\r\nout\r\n") == {}
            s.close()

        raw = socket.create_connection((H.SERVER_IP, d.smtp_port), timeout=60,
                                       source_address=(H.UNTRUSTED, 0))
        raw.recv(1000)
        raw.sendall(b"EHLO c.example.org\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@remote.example>\r\n"
                    b"RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: s\r\n\r\nx\n.\r\nMAIL FROM:<e@x.example>\r\n"
                    b"\r\n.\r\nNOOP\nQUIT\r\nQUIT\r\n")
        got = b""
        end = time.monotonic() + 60
        while b"221 " not in got and time.monotonic() < end:
            chunk = raw.recv(4096)
            if not chunk:
                break
            got += chunk
        raw.close()
        assert b"550 5.6.0" in got and b"500 5.5.2" in got, got

        with urllib.request.urlopen(f"http://{H.SERVER_IP}:{http_port}/metrics", timeout=60) as r:
            assert r.status == 200
        time.sleep(2)   # let delivery finish
    finally:
        proc.terminate()
        rc = proc.wait(timeout=120)
    H.assert_memcheck_clean(rc, vglog)
