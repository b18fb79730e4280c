"""
test_imap_mutt.py: a real IMAP client. Debian's mutt, driven in tmux, reads
over IMAP a message that came in through SMTP: it lists it in the index,
shows it in the pager (no carriage returns, 8-bit text decoded), and marks it
read, which the server keeps (\\Seen over IMAP, ':2,S' in the Maildir).

Runs against bulwarkd and, to prove the script, against Dovecot
([dovecot-oracle], where the message is put into the Maildir as delivery
does, Dovecot having no SMTP of its own here).
"""

import os
import shutil
import subprocess
import time

import pytest

import bulwark_helpers as H
import dovecot as DV
import imap_corpus as C
import imap_servers as S

pytestmark = pytest.mark.skipif(not shutil.which("tmux") or not shutil.which("mutt"),
                                reason="needs tmux and mutt")

USER = "carol@example.org"


@pytest.fixture(params=["bulwark", pytest.param("dovecot", id="dovecot-oracle")])
def server(request, bulwark):
    if request.param == "bulwark":
        d = bulwark(name="imap-mutt")
        yield S.BulwarkServer(d), d
    else:
        DV.skip_unless_installed()
        s = S.DovecotServer()
        s.dv.add_user(USER)
        yield s, None
        s.cleanup()


def message(tok):
    return (f"From: Sender <sender@remote.example>\r\nTo: <{USER}>\r\n"
            f"Subject: mutt {tok}\r\nMessage-ID: <{tok}@remote.example>\r\n"
            "Date: Thu, 27 Nov 2025 08:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            f"Hello over IMAP, {tok}.\r\nGrüße aus München.\r\nEND-OF-MESSAGE {tok}\r\n").encode()


def test_mutt_reads_over_imap(server, tmp_path):
    srv, daemon = server
    tok = H.token()
    if daemon is not None:
        H.send_one(daemon.smtp_port, tok=tok, rcpts=(USER,), message=message(tok))
        daemon.wait_for(USER, tok)
    else:
        C.deliver(srv.maildir_root(USER), message(tok), time.time())
        srv.fixup(USER)

    home = tmp_path / "home"
    home.mkdir()
    muttrc = home / "muttrc"
    muttrc.write_text(
        f'set folder="imap://{H.SERVER_IP}:{srv.port}/"\n'
        'set spoolfile="+INBOX"\n'
        f'set imap_user="{USER}"\n'
        f'set imap_pass="{H.PASSWORD}"\n'
        "set ssl_starttls=no\nset ssl_force_tls=no\n"
        "set imap_passive=no\nset mail_check=2\nset timeout=2\n"
        "set quit=yes\nset move=no\nset mark_old=no\nset wait_key=no\n"
        "set charset=utf-8\nset header_cache=\nset message_cachedir=\n")
    sock = f"bulwark-imap-mutt-{os.getpid()}-{srv.name}"
    env = dict(os.environ, HOME=str(home), TERM="xterm", MAIL="/dev/null",
               LANG="C.UTF-8", LC_ALL="C.UTF-8")
    tmux = ["tmux", "-L", sock, "-f", "/dev/null"]
    subprocess.run(tmux + ["new-session", "-d", "-s", "m", "-x", "200", "-y", "50",
                           f"mutt -n -F {muttrc}"], env=env, check=True, timeout=20)

    def screen():
        return subprocess.run(tmux + ["capture-pane", "-p", "-t", "m"], env=env,
                              capture_output=True, text=True, timeout=10).stdout

    def keys(*k):
        subprocess.run(tmux + ["send-keys", "-t", "m", *k], env=env, timeout=10)

    def wait_screen(text, what, timeout=20):
        try:
            return H.wait_until(lambda: (lambda s: s if text in s else None)(screen()),
                                timeout=timeout, interval=0.2, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n---- mutt's screen:\n{screen()}\n{srv.log_tail()}") from None

    try:
        index = wait_screen(f"mutt {tok}", "mutt's index showing the message")
        assert "INBOX" in index, index
        keys("/", tok, "Enter")
        time.sleep(0.5)
        keys("Enter")
        pager = wait_screen(f"END-OF-MESSAGE {tok}", "mutt's pager showing the body")
        assert f"Hello over IMAP, {tok}." in pager, pager
        assert "Grüße aus München." in pager, pager
        assert "^M" not in pager, "mutt shows carriage returns"
        keys("q")          # back to the index
        time.sleep(0.3)
        keys("$")          # sync the mailbox (flags) now
        time.sleep(0.5)
        keys("q")          # quit mutt
        H.wait_until(lambda: subprocess.run(tmux + ["has-session", "-t", "m"], env=env,
                                            capture_output=True, timeout=10).returncode != 0,
                     timeout=10, interval=0.2, what="mutt exiting")
    finally:
        subprocess.run(tmux + ["kill-server"], env=env, capture_output=True, timeout=10)

    # mutt marked it read: the server keeps \Seen, and the Maildir file says so
    acct = S.Account(srv, USER, H.PASSWORD)
    m = acct.imap()
    try:
        S.ok(m.select("INBOX"))
        hits = S.ok(m.search(None, "SUBJECT", tok))[0].split()
        assert len(hits) == 1, hits
        assert "\\Seen" in S.flags_of(m, int(hits[0])), "mutt read the message but it is not \\Seen"
    finally:
        m.logout()
    files = [n for n, raw in acct.files().items() if tok.encode() in raw]
    assert len(files) == 1 and files[0].startswith("cur/") and ":2," in files[0] \
        and "S" in files[0].split(":2,")[1], files
