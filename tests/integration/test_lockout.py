"""
test_lockout.py: account lockout (issue 3; security_policy.max_failed_login_attempts
= 3, account_lockout_duration_minutes = 60, the defaults).

Three failed logins lock the account: the right password is then refused
(535 5.7.8, logged reason=locked) until `bulwarkctl user unlock` or expiry
(here: locked_until moved into the past in the database). A success resets
the count. The same wrong password again from the same IP counts once (a
phone with an old password). An IP that logged in to the account before
(known IP) is not locked out by failures from other IPs. When an account
locks, its contact gets a mail saying how to unlock it.

Bans are pushed out of the way (maxretry 1000): only the lockout is tested.
Each test uses its own account; 127.0.0.9 and 127.0.0.10 are strangers.
"""

import time

import pytest

import bulwark_helpers as H

NO_BANS = {"intrusion_prevention": {"maxretry": 1000, "maxretry_authenticated": 1000}}


@pytest.fixture(scope="module")
def lk(module_bulwark):
    return module_bulwark(overrides=NO_BANS, name="lockout")


def wrong(i=0):
    return f"Wrong-Guess-{i}-" + H.token()[-10:]


def fail_n(d, user, n, source=H.UNTRUSTED, same=False):
    pw = wrong()
    for i in range(n):
        H.assert_auth_refused(d, user, pw if same else wrong(i), source=source)


def test_three_failures_lock_then_unlock(lk):
    user = H.unique_user(lk, "lk")
    mark = H.log_mark(lk)
    fail_n(lk, user, 3)
    rec = H.user_record(lk, user)
    now = time.time()
    assert rec["locked_until"] > now, rec
    # 60 minutes by default
    assert 55 * 60 < rec["locked_until"] - now <= 60 * 60 + 5, rec
    H.wait_log(lk, "event=auth.lockout", f"account={user}", since=mark)
    # the right password is refused now, on both listeners, logged as locked
    H.assert_auth_refused(lk, user, implicit=True)
    H.assert_auth_refused(lk, user, implicit=False)
    H.wait_log(lk, "event=auth.failure", f"account={user}", "reason=locked", since=mark, count=2)
    # unlock
    H.ctl_ok(lk, "user", "unlock", user)
    rec = H.user_record(lk, user)
    assert rec["locked_until"] <= time.time() and rec["failed_logins"] == 0, rec
    H.assert_auth_ok(lk, user)


def test_two_failures_do_not_lock(lk):
    user = H.unique_user(lk, "tw")
    fail_n(lk, user, 2)
    assert H.user_record(lk, user)["locked_until"] <= time.time()
    H.assert_auth_ok(lk, user)


def test_success_resets_the_count(lk):
    user = H.unique_user(lk, "rs")
    fail_n(lk, user, 2)
    H.assert_auth_ok(lk, user)
    assert H.user_record(lk, user)["failed_logins"] == 0
    fail_n(lk, user, 2)
    rec = H.user_record(lk, user)
    assert rec["locked_until"] <= time.time(), rec
    H.assert_auth_ok(lk, user)


def test_same_wrong_password_counts_once(lk):
    user = H.unique_user(lk, "sw")
    fail_n(lk, user, 5, same=True)
    rec = H.user_record(lk, user)
    assert rec["locked_until"] <= time.time(), rec
    assert rec["failed_logins"] <= 1, rec
    H.assert_auth_ok(lk, user)


def test_same_wrong_password_from_another_ip_counts_again(lk):
    """The repeat rule is per IP: one wrong password tried from three IPs is
    three guesses."""
    user = H.unique_user(lk, "si")
    pw = wrong()
    for src in (H.UNTRUSTED, H.UNTRUSTED2, H.UNTRUSTED3):
        H.assert_auth_refused(lk, user, pw, source=src)
    assert H.user_record(lk, user)["locked_until"] > time.time()
    H.assert_auth_refused(lk, user, source=H.UNTRUSTED)


def test_known_ip_is_not_locked_out_by_others(lk):
    user = H.unique_user(lk, "kn")
    H.assert_auth_ok(lk, user, source=H.UNTRUSTED2)      # 127.0.0.10 is now known
    mark = H.log_mark(lk)
    fail_n(lk, user, 3, source=H.UNTRUSTED)              # 127.0.0.9 guesses
    assert H.user_record(lk, user)["locked_until"] > time.time()
    H.assert_auth_refused(lk, user, source=H.UNTRUSTED)
    H.wait_log(lk, "event=auth.failure", f"account={user}", "reason=locked", H.UNTRUSTED,
               since=mark)
    H.assert_auth_ok(lk, user, source=H.UNTRUSTED2)
    # a third IP that never logged in is locked out too
    H.assert_auth_refused(lk, user, source=H.UNTRUSTED3)


def test_known_ip_of_another_account_does_not_help(lk):
    user = H.unique_user(lk, "ko")
    other = H.unique_user(lk, "kp")
    H.assert_auth_ok(lk, other, source=H.UNTRUSTED2)
    fail_n(lk, user, 3, source=H.UNTRUSTED)
    H.assert_auth_refused(lk, user, source=H.UNTRUSTED2)


def test_lockout_expires(lk):
    user = H.unique_user(lk, "ex")
    fail_n(lk, user, 3)
    H.assert_auth_refused(lk, user)
    H.db_exec(lk, "UPDATE users SET locked_until=1 WHERE address=?", (user,))
    H.assert_auth_ok(lk, user)


def test_unknown_user_failures_lock_nothing(lk):
    user = H.unique_user(lk, "uu")
    for i in range(4):
        H.assert_auth_refused(lk, f"nosuch{i}{H.token()[-6:]}@example.test", wrong(i))
    H.assert_auth_ok(lk, user)


def test_locked_reply_same_as_bad_password(lk):
    user = H.unique_user(lk, "rp")
    r1 = H.try_auth(lk, user, wrong())
    fail_n(lk, user, 2)
    r2 = H.try_auth(lk, user, H.PASSWORD)
    assert r1.text == r2.text == H.AUTH_BAD_TEXT, (r1.text, r2.text)


def test_lockout_notice_mailed_to_contact(lk):
    dave = H.unique_user(lk, "dave")
    user = H.unique_user(lk, "nt", contact=dave)
    fail_n(lk, user, 3)

    def notice():
        for _, raw in lk.read_maildir(dave):
            hdrs = dict(H.headers_of(raw))
            if hdrs.get("subject") == "Your mail account was locked" and user.encode() in raw:
                return raw
        return None
    raw = H.wait_until(notice, timeout=15, what=f"lockout notice in {dave}'s Maildir")
    assert b"bulwarkctl user unlock" in raw, raw
    assert H.PASSWORD.encode() not in raw
    # one lock, one notice: failures while locked send nothing more
    H.assert_auth_refused(lk, user)
    time.sleep(3)
    n = sum(1 for _, r in lk.read_maildir(dave) if b"Your mail account was locked" in r and user.encode() in r)
    assert n == 1, n
