"""
test_auth.py: SMTP AUTH on the submission listeners (issue 3).

AUTH (PLAIN, LOGIN) is offered and accepted only inside TLS on `submission`
(after STARTTLS) and `submissions` (implicit TLS), never before TLS (530
5.7.0) and never on the MX listener (503 5.5.1). A wrong password, an
unknown user, a locked and an unconfirmed account all get the same 535
5.7.8; the log says which (event=auth.failure reason=...), never the
password. An authenticated user relays (the message waits in the spool for
remote delivery) but only with MAIL FROM addresses that are theirs (553
5.7.1); a suspended user authenticates but cannot send (550 5.7.1). Every
failure also writes a line fail2ban's stock postfix filter (mode=auth)
matches, checked with fail2ban-regex.

The untrusted client is 127.0.0.9. Bans are pushed out of the way
(maxretry 1000) so many failures from one IP do not interfere; the lockout
(3 failures) stays at its default, so tests that fail logins use their own
accounts.
"""

import os
import smtplib

import pytest

import bulwark_helpers as H

NO_BANS = {"intrusion_prevention": {"maxretry": 1000, "maxretry_authenticated": 1000}}


@pytest.fixture(scope="module")
def sub(module_bulwark):
    return module_bulwark(overrides=NO_BANS, name="auth")


def wrong_password():
    return "Wrong-Guess-" + H.token()


# ---------------------------------------------------------------- where AUTH is offered


def test_no_auth_before_starttls(sub):
    c = H.RawClient(sub.submission_port, source=H.UNTRUSTED)
    try:
        c.greeting()
        ehlo = c.ehlo()
        assert "STARTTLS" in ehlo.keywords(), ehlo.text
        assert "AUTH" not in ehlo.keywords(), f"AUTH offered before TLS: {ehlo.text}"
        assert not any(l.upper().startswith("AUTH") for l in ehlo.lines), ehlo.text
        for line in (f"AUTH PLAIN {H.plain_response('alice@example.test', H.PASSWORD)}",
                     "AUTH LOGIN", "AUTH PLAIN"):
            r = c.cmd(line)
            assert r.text == "530 5.7.0 Must issue a STARTTLS command first", (line, r.text)
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 530, "5.7.0")
        c.quit()
    finally:
        c.close()
    assert H.PASSWORD not in sub.log_text()


def test_auth_advertised_after_starttls(sub):
    c, ehlo = H.sub_session(sub, source=H.UNTRUSTED)
    try:
        assert "AUTH PLAIN LOGIN" in ehlo.lines, ehlo.text
        assert "STARTTLS" not in ehlo.keywords(), ehlo.text
        c.quit()
    finally:
        c.close()


def test_auth_advertised_on_submissions(sub):
    c, ehlo = H.sub_session(sub, source=H.UNTRUSTED, implicit=True)
    try:
        assert "AUTH PLAIN LOGIN" in ehlo.lines, ehlo.text
        c.quit()
    finally:
        c.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_mx_never_offers_or_accepts_auth(sub, tls):
    c = H.session(sub.smtp_port, source=H.UNTRUSTED)
    try:
        if tls:
            H.starttls(c)
            ehlo = c.ehlo()
        else:
            ehlo = c.cmd(f"EHLO {H.CLIENT_HELO}")
        assert "AUTH" not in ehlo.keywords(), ehlo.text
        for line in (f"AUTH PLAIN {H.plain_response('alice@example.test', H.PASSWORD)}",
                     "AUTH LOGIN"):
            r = c.cmd(line)
            assert r.text == "503 5.5.1 Error: authentication not enabled", (line, r.text)
        # and it still refuses relay afterwards
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        H.expect(c.cmd("RCPT TO:<x@remote.example>"), 554, "5.7.1")
        c.quit()
    finally:
        c.close()


# ---------------------------------------------------------------- mechanisms


@pytest.mark.parametrize("implicit", [False, True], ids=["submission", "submissions"])
def test_auth_plain_initial_response(sub, implicit):
    mark = H.log_mark(sub)
    c, _ = H.sub_session(sub, source=H.UNTRUSTED, implicit=implicit)
    try:
        r = H.auth_plain(c, "alice@example.test", H.PASSWORD)
        assert r.text == "235 2.7.0 Authentication successful", r.text
        c.quit()
    finally:
        c.close()
    lines = H.wait_log(sub, "event=auth.success", "account=alice@example.test", since=mark)
    assert "protocol=smtp" in lines[-1], lines
    assert H.PASSWORD not in sub.log_text()


def test_auth_plain_without_initial_response(sub):
    c, _ = H.sub_session(sub)
    try:
        r = H.expect(c.cmd("AUTH PLAIN"), 334)
        r = c.cmd(H.plain_response("alice@example.test", H.PASSWORD), timeout=30)
        H.expect(r, 235, "2.7.0")
        c.quit()
    finally:
        c.close()


def test_auth_plain_with_matching_authzid(sub):
    c, _ = H.sub_session(sub)
    try:
        r = H.auth_plain(c, "alice@example.test", H.PASSWORD, authzid="alice@example.test")
        H.expect(r, 235, "2.7.0")
        c.quit()
    finally:
        c.close()


def test_auth_plain_other_authzid_refused(sub):
    """Proxy authorisation (authzid != authcid) is not offered: 535 like any failure."""
    c, _ = H.sub_session(sub)
    try:
        r = H.auth_plain(c, "alice@example.test", H.PASSWORD, authzid="bob@example.test")
        assert r.text == H.AUTH_BAD_TEXT, r.text
        H.expect(c.cmd("MAIL FROM:<bob@example.test>"), 530, "5.7.0")
        c.quit()
    finally:
        c.close()


@pytest.mark.parametrize("implicit", [False, True], ids=["submission", "submissions"])
def test_auth_login_two_steps(sub, implicit):
    c, _ = H.sub_session(sub, implicit=implicit)
    try:
        r = H.auth_login(c, "bob@example.test", H.PASSWORD)
        assert r.text == "235 2.7.0 Authentication successful", r.text
        c.quit()
    finally:
        c.close()


def test_auth_login_with_initial_username(sub):
    c, _ = H.sub_session(sub)
    try:
        r = H.expect(c.cmd(f"AUTH LOGIN {H.b64('bob@example.test')}"), 334)
        assert r.lines[0] == "UGFzc3dvcmQ6", r.text
        H.expect(c.cmd(H.b64(H.PASSWORD), timeout=30), 235, "2.7.0")
        c.quit()
    finally:
        c.close()


def test_second_auth_refused(sub):
    """RFC 4954: no AUTH after a successful AUTH in the same session."""
    c = H.authed_session(sub, "alice@example.test")
    try:
        r = H.auth_plain(c, "bob@example.test", H.PASSWORD)
        H.expect(r, 503, "5.5.1")
        H.expect(c.cmd("MAIL FROM:<bob@example.test>"), 553, "5.7.1")
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        c.quit()
    finally:
        c.close()


def test_smtplib_login_starttls(sub):
    with H.smtp_client(sub.submission_port, source=H.UNTRUSTED) as s:
        s.ehlo()
        assert not s.has_extn("auth"), s.esmtp_features
        s.starttls(context=H.unverified_context())
        s.ehlo()
        assert s.has_extn("auth"), s.esmtp_features
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"], s.esmtp_features
        code, resp = s.login("alice@example.test", H.PASSWORD)
        assert (code, resp) == (235, b"2.7.0 Authentication successful"), (code, resp)


def test_smtplib_login_mechanism_submissions(sub):
    with H.smtp_client(sub.submissions_port, source=H.UNTRUSTED, tls=True) as s:
        s.ehlo()
        s.user, s.password = "bob@example.test", H.PASSWORD
        code, resp = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        assert code == 235, (code, resp)


def test_smtplib_wrong_password_raises(sub):
    user = H.unique_user(sub, "sl")
    with H.smtp_client(sub.submissions_port, source=H.UNTRUSTED, tls=True) as s:
        s.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            s.login(user, wrong_password())
        assert ei.value.smtp_code == 535, ei.value
        assert ei.value.smtp_error == b"5.7.8 Authentication credentials invalid", ei.value


def test_unsupported_mechanism(sub):
    c, _ = H.sub_session(sub)
    try:
        for mech in ("CRAM-MD5", "DIGEST-MD5", "XOAUTH2", "GSSAPI", "ANONYMOUS", "PLAINX"):
            H.expect(c.cmd(f"AUTH {mech}"), 504, "5.5.4")
        # the session still works
        H.expect(H.auth_plain(c, "alice@example.test", H.PASSWORD), 235, "2.7.0")
        c.quit()
    finally:
        c.close()


def test_auth_cancelled_with_star(sub):
    c, _ = H.sub_session(sub)
    try:
        H.expect(c.cmd("AUTH PLAIN"), 334)
        H.expect(c.cmd("*"), 501, "5.7.0")
        H.expect(c.cmd("AUTH LOGIN"), 334)
        H.expect(c.cmd("*"), 501, "5.7.0")
        H.expect(c.cmd("AUTH LOGIN"), 334)
        H.expect(c.cmd(H.b64("alice@example.test")), 334)
        H.expect(c.cmd("*"), 501, "5.7.0")
        # not authenticated: MAIL still needs AUTH
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 530, "5.7.0")
        H.expect(H.auth_plain(c, "alice@example.test", H.PASSWORD), 235, "2.7.0")
        c.quit()
    finally:
        c.close()


def test_bad_base64(sub):
    c, _ = H.sub_session(sub)
    try:
        H.expect(c.cmd("AUTH PLAIN !!!not-base64!!!"), 501, "5.5.2")
        H.expect(c.cmd("AUTH PLAIN"), 334)
        H.expect(c.cmd("%%%%"), 501, "5.5.2")
        H.expect(c.cmd("AUTH LOGIN"), 334)
        H.expect(c.cmd("@@@@"), 501, "5.5.2")
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 530, "5.7.0")
        c.quit()
    finally:
        c.close()


# ---------------------------------------------------------------- failures look alike


def test_failures_are_indistinguishable_and_logged(sub):
    """Wrong password, unknown user and unconfirmed account: the same 535
    5.7.8 on the wire; the log says which, with account and client, and
    never the password."""
    mark = H.log_mark(sub)
    victim = H.unique_user(sub, "wp")
    unconfirmed = H.unique_user(sub, "uc", confirmed=False)
    unknown = "nosuch" + H.token()[:8] + "@example.test"
    pw_wrong, pw_unknown = wrong_password(), wrong_password()
    cases = [
        (victim, pw_wrong, "bad_password"),
        (unknown, pw_unknown, "unknown_user"),
        (unconfirmed, H.PASSWORD, "unconfirmed"),
    ]
    texts = set()
    for user, pw, reason in cases:
        for implicit in (False, True):
            r = H.try_auth(sub, user, pw, implicit=implicit)
            texts.add(r.text)
            assert r.text == H.AUTH_BAD_TEXT, (user, reason, r.text)
    assert len(texts) == 1, texts
    for user, pw, reason in cases:
        lines = H.wait_log(sub, "event=auth.failure", f"account={user}", f"reason={reason}",
                           since=mark, count=2)
        for l in lines:
            assert "protocol=smtp" in l and H.UNTRUSTED in l, l
    log = sub.log_text()
    for pw in (pw_wrong, pw_unknown):
        assert pw not in log, f"password {pw} in the log"
        assert H.b64(pw) not in log
    H.ctl_ok(sub, "user", "unlock", victim)


def test_login_mechanism_failure_same_reply_no_password_logged(sub):
    user = H.unique_user(sub, "lg")
    pw = wrong_password()
    r = H.try_auth(sub, user, pw, mech="LOGIN")
    assert r.text == H.AUTH_BAD_TEXT, r.text
    H.wait_log(sub, "event=auth.failure", f"account={user}", "reason=bad_password")
    assert pw not in sub.log_text()
    assert H.b64(pw) not in sub.log_text()


def test_session_continues_after_failure(sub):
    user = H.unique_user(sub, "sc")
    c, _ = H.sub_session(sub)
    try:
        assert H.auth_plain(c, user, wrong_password()).text == H.AUTH_BAD_TEXT
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 530, "5.7.0")
        H.expect(H.auth_plain(c, user, H.PASSWORD), 235, "2.7.0")
        H.expect(c.cmd(f"MAIL FROM:<{user}>"), 250)
        c.quit()
    finally:
        c.close()


# ---------------------------------------------------------------- sending after AUTH


@pytest.mark.parametrize("implicit", [False, True], ids=["submission", "submissions"])
def test_mail_requires_auth(sub, implicit):
    c, _ = H.sub_session(sub, implicit=implicit)
    try:
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.text == "530 5.7.0 Authentication required", r.text
        c.quit()
    finally:
        c.close()


@pytest.mark.parametrize("implicit", [False, True], ids=["submission", "submissions"])
def test_authenticated_relay_is_queued(sub, implicit):
    tok = H.token()
    rcpt = f"x{tok[-6:]}@remote.example"
    c = H.authed_session(sub, "alice@example.test", implicit=implicit)
    try:
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        H.expect(c.cmd(f"RCPT TO:<{rcpt}>"), 250)
        r = c.data(H.make_message(tok, sender="alice@example.test", to=rcpt))
        H.expect(r, 250, "2.0.0")
        assert r.queue_id(), r.text
        c.quit()
    finally:
        c.close()
    hits = H.wait_until(lambda: sub.queue_contains(tok), timeout=5, what="message in the spool")
    assert any(f"rcpt R {rcpt}".encode() in p.read_bytes() for p in hits), \
        [p.read_bytes()[:400] for p in hits]
    assert not sub.find_anywhere(tok)


def test_smtplib_authenticated_send_to_local_and_remote(sub):
    tok = H.token()
    with H.smtp_client(sub.submission_port, source=H.UNTRUSTED) as s:
        s.ehlo()
        s.starttls(context=H.unverified_context())
        s.ehlo()
        s.login("alice@example.test", H.PASSWORD)
        refused = s.sendmail("alice@example.test", ["bob@example.test", "y@remote.example"],
                             H.make_message(tok, sender="alice@example.test", to="bob@example.test"))
        assert refused == {}, refused
    sub.wait_for("bob@example.test", tok)


def test_mx_still_refuses_relay_from_stranger(sub):
    c = H.session(sub.smtp_port, source=H.UNTRUSTED)
    try:
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        H.expect(c.cmd("RCPT TO:<x@remote.example>"), 554, "5.7.1")
        c.quit()
    finally:
        c.close()


def test_sender_alias_allowed(sub):
    tok = H.token()
    c = H.authed_session(sub, "alice@example.test")
    try:
        H.expect(c.cmd("MAIL FROM:<team@example.test>"), 250)
        H.expect(c.cmd("RCPT TO:<bob@example.test>"), 250)
        H.expect(c.data(H.make_message(tok, sender="team@example.test", to="bob@example.test")),
                 250, "2.0.0")
        H.expect(c.cmd("MAIL FROM:<ALICE@EXAMPLE.TEST>"), 250)
        H.expect(c.cmd("RSET"), 250)
        c.quit()
    finally:
        c.close()
    sub.wait_for("bob@example.test", tok)


@pytest.mark.parametrize("sender", ["bob@example.test", "carol@example.org", "someone@remote.example",
                                    "alice@remote.example", "nosuch@example.test"])
def test_sender_mismatch_refused(sub, sender):
    c = H.authed_session(sub, "alice@example.test")
    try:
        H.expect(c.cmd(f"MAIL FROM:<{sender}>"), 553, "5.7.1")
        H.expect(c.cmd("RCPT TO:<bob@example.test>"), 503)
        # the session goes on with the right sender
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        c.quit()
    finally:
        c.close()


def test_sender_mismatch_nothing_queued(sub):
    tok = H.token()
    c = H.authed_session(sub, "alice@example.test", implicit=True)
    try:
        H.expect(c.cmd("MAIL FROM:<bob@example.test>"), 553, "5.7.1")
        H.expect(c.cmd("RCPT TO:<x@remote.example>"), 503)
        H.expect(c.cmd("DATA"), (503, 554))
        c.quit()
    finally:
        c.close()
    assert not sub.queue_contains(tok)


def test_suspended_user_authenticates_but_cannot_send(sub):
    user = H.unique_user(sub, "sp")
    H.ctl_ok(sub, "user", "suspend", user)
    try:
        c = H.authed_session(sub, user)
        try:
            H.expect(c.cmd(f"MAIL FROM:<{user}>"), 550, "5.7.1")
            c.quit()
        finally:
            c.close()
    finally:
        H.ctl_ok(sub, "user", "resume", user)
    tok = H.token()
    c = H.authed_session(sub, user)
    try:
        H.expect(c.cmd(f"MAIL FROM:<{user}>"), 250)
        H.expect(c.cmd("RCPT TO:<bob@example.test>"), 250)
        H.expect(c.data(H.make_message(tok, sender=user, to="bob@example.test")), 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    sub.wait_for("bob@example.test", tok)


def test_trusted_network_still_relays_without_auth(sub):
    """mynetworks stays the other way to relay, on submission too."""
    tok = H.token()
    c = H.session(sub.submission_port, source=H.TRUSTED)
    try:
        H.expect(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        H.expect(c.cmd("RCPT TO:<z@remote.example>"), 250)
        H.expect(c.data(H.make_message(tok, sender="alice@example.test", to="z@remote.example")),
                 250, "2.0.0")
        c.quit()
    finally:
        c.close()
    H.wait_until(lambda: sub.queue_contains(tok), timeout=5, what="trusted relay in the spool")


def test_password_never_logged(sub):
    assert H.PASSWORD not in sub.log_text()
    assert H.b64(H.PASSWORD) not in sub.log_text()


# ---------------------------------------------------------------- fail2ban compatibility


def test_fail2ban_postfix_auth_filter_matches_every_failure(bulwark):
    assert os.path.exists(H.FAIL2BAN_REGEX), "fail2ban not installed (scripts/deps.sh)"
    d = bulwark(overrides=NO_BANS)
    victim = H.unique_user(d, "fb")
    unconfirmed = H.unique_user(d, "fu", confirmed=False)
    locked = H.unique_user(d, "fl")
    failures = 0
    # a successful login and protocol noise must not be counted
    H.assert_auth_ok(d, "alice@example.test")
    c, _ = H.sub_session(d)
    try:
        H.expect(c.cmd("AUTH CRAM-MD5"), 504)
        H.expect(c.cmd("AUTH LOGIN"), 334)
        H.expect(c.cmd("*"), 501)
        c.quit()
    finally:
        c.close()
    for user, pw, implicit in [(victim, wrong_password(), True),
                               (victim, wrong_password(), False),
                               ("nosuch@example.test", wrong_password(), True),
                               (unconfirmed, H.PASSWORD, True)]:
        H.assert_auth_refused(d, user, pw, implicit=implicit)
        failures += 1
    for _ in range(3):
        H.assert_auth_refused(d, locked, wrong_password())
        failures += 1
    H.assert_auth_refused(d, locked, H.PASSWORD)    # locked now
    failures += 1
    r = H.try_auth(d, victim, wrong_password(), mech="LOGIN")
    assert r.text == H.AUTH_BAD_TEXT
    failures += 1
    H.wait_log(d, "event=auth.failure", count=failures)
    H.wait_log(d, f"account={locked}", "reason=locked")
    ips = H.fail2ban_ips(d.log_path)
    assert len(ips) == failures, f"fail2ban matched {len(ips)} lines, {failures} failed AUTHs\n{d.log_tail(60)}"
    assert set(ips) == {H.UNTRUSTED}, ips
    H.ctl_ok(d, "user", "unlock", victim)


# ---------------------------------------------------------------- regression


def test_bulwarkctl_while_running_keeps_auth_and_lookups_working(sub):
    """bulwarkctl opening and closing the database while the daemon runs
    (after the daemon's worker threads opened their own handles) must not
    break the daemon's handles: it once deleted the WAL under them, and every
    later AUTH got 454 4.7.0 and every RCPT 451 4.3.0."""
    for i in range(4):
        H.assert_auth_ok(sub, "alice@example.test")
        H.ctl_ok(sub, "user", "list")
        user = H.unique_user(sub, f"w{i}")
        H.assert_auth_ok(sub, user)
        H.assert_serves(sub, source=H.UNTRUSTED2)
    assert not H.log_lines(sub, "directory_error"), H.log_lines(sub, "directory_error")
