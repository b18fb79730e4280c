"""
test_confirm.py: confirmed accounts only (issue 3).

`bulwarkctl user add ADDRESS --contact EMAIL` makes an unconfirmed account
and mails a link to the contact (here alice@example.test, a local user, so
the mail lands in her Maildir). Until confirmed the account cannot AUTH
(535 5.7.8, logged reason=unconfirmed). GET on the link shows a page with one
POST button and confirms nothing (mail scanners prefetch links); the POST
confirms, once: a reused token gets 410, an expired one 410, a malformed one
400. `bulwarkctl user confirm` confirms by hand. Tokens are stored only
hashed. The pages are sent with Referrer-Policy: no-referrer and
Cache-Control: no-store. The link is opened from 127.0.0.9: the user's
browser is not in mynetworks.
"""

import re

import pytest

import bulwark_helpers as H

NO_BANS = {"intrusion_prevention": {"maxretry": 1000, "maxretry_authenticated": 1000}}
CONTACT = "alice@example.test"


@pytest.fixture(scope="module")
def web(module_bulwark):
    port, over = H.http_overrides(NO_BANS)
    d = module_bulwark(overrides=over, name="confirm")
    d.http_port = port
    return d


def add_with_contact(d, prefix):
    address = f"{prefix}{H.token()[-8:]}@example.test"
    cp = H.ctl_ok(d, "user", "add", address, "--contact", CONTACT, input=H.PASSWORD + "\n")
    return address, cp


def assert_security_headers(r):
    assert r.headers.get("referrer-policy", "").lower() == "no-referrer", r.headers
    assert "no-store" in r.headers.get("cache-control", "").lower(), r.headers


def hidden_fields(html):
    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", html, re.I):
        if not re.search(r"""type\s*=\s*["']?hidden""", tag, re.I):
            continue
        name = re.search(r"""name\s*=\s*["']([^"']*)["']""", tag, re.I)
        value = re.search(r"""value\s*=\s*["']([^"']*)["']""", tag, re.I)
        if name:
            fields[name.group(1)] = value.group(1) if value else ""
    return fields


def test_confirmation_by_link(web):
    mark = H.log_mark(web)
    carol = "carol@example.test"
    cp = H.ctl_ok(web, "user", "add", carol, "--contact", CONTACT, input=H.PASSWORD + "\n")
    assert H.PASSWORD not in H.output_of(cp)
    rec = H.user_record(web, carol)
    assert rec["confirmed"] is False and rec["contact"] == CONTACT, rec

    # the mail reaches the contact, with a link to listen.http
    port, path, tok = H.wait_confirmation_link(web, CONTACT, carol)
    assert port == web.http_port, (port, web.http_port)

    # unconfirmed: refused like any failure, logged as unconfirmed
    H.assert_auth_refused(web, carol)
    H.wait_log(web, "event=auth.failure", f"account={carol}", "reason=unconfirmed", since=mark)

    # GET shows a page with a POST form and the token in a hidden field; it confirms nothing
    r = H.http_get(port, path, source=H.UNTRUSTED)
    assert r.status == 200, r
    assert r.headers.get("content-type", "").lower().startswith("text/html"), r.headers
    assert_security_headers(r)
    assert re.search(r"""<form\b[^>]*method\s*=\s*["']?post""", r.text, re.I), r.text
    assert tok in hidden_fields(r.text).values(), (hidden_fields(r.text), r.text)
    assert H.user_record(web, carol)["confirmed"] is False
    H.assert_auth_refused(web, carol)
    # a second GET (a scanner and then the user) is harmless
    r = H.http_get(port, path, source=H.UNTRUSTED)
    assert r.status == 200, r

    # POST confirms
    r = H.http_post_form(port, "/confirm", {"token": tok}, source=H.UNTRUSTED)
    assert r.status == 200, r
    assert carol in r.text, r.text
    assert_security_headers(r)
    assert H.user_record(web, carol)["confirmed"] is True
    H.assert_auth_ok(web, carol)

    # single use
    r = H.http_post_form(port, "/confirm", {"token": tok}, source=H.UNTRUSTED)
    assert r.status == 410, r
    assert_security_headers(r)
    r = H.http_get(port, path, source=H.UNTRUSTED)
    assert r.status in (400, 404, 410), r
    assert "<form" not in r.text.lower(), r.text


def test_confirmation_mail_content(web):
    dave, _ = add_with_contact(web, "dv")
    port, path, tok = H.wait_confirmation_link(web, CONTACT, dave)
    msgs = [raw for _, raw in web.read_maildir(CONTACT) if tok.encode() in raw]
    assert len(msgs) == 1, len(msgs)
    hdrs = dict(H.headers_of(msgs[0]))
    assert "to" in hdrs and CONTACT in hdrs["to"].lower(), hdrs
    assert "subject" in hdrs, hdrs
    assert H.PASSWORD.encode() not in msgs[0]


def test_malformed_token_is_400(web):
    for path in ("/confirm?token=zz", "/confirm", "/confirm?token=",
                 "/confirm?token=" + "g" * 64, "/confirm?token=" + "a" * 63,
                 "/confirm?token=" + "a" * 65, "/confirm?token=%00"):
        r = H.http_get(web.http_port, path, source=H.UNTRUSTED)
        assert r.status == 400, (path, r)
        assert_security_headers(r)
    r = H.http_post_form(web.http_port, "/confirm", {"token": "zz"}, source=H.UNTRUSTED)
    assert r.status == 400, r
    r = H.http_request(web.http_port, "POST", "/confirm", body=b"", source=H.UNTRUSTED,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400, r


def test_unknown_token_does_not_confirm(web):
    r = H.http_get(web.http_port, "/confirm?token=" + "ab" * 32, source=H.UNTRUSTED)
    assert r.status in (404, 410), r
    r = H.http_post_form(web.http_port, "/confirm", {"token": "ab" * 32}, source=H.UNTRUSTED)
    assert r.status in (404, 410), r


def test_expired_token_is_410(web):
    frank, _ = add_with_contact(web, "fr")
    port, path, tok = H.wait_confirmation_link(web, CONTACT, frank)
    H.db_exec(web, "UPDATE tokens SET expires=1")
    r = H.http_get(port, path, source=H.UNTRUSTED)
    assert r.status == 410, r
    assert_security_headers(r)
    r = H.http_post_form(port, "/confirm", {"token": tok}, source=H.UNTRUSTED)
    assert r.status == 410, r
    assert H.user_record(web, frank)["confirmed"] is False
    H.assert_auth_refused(web, frank)


def test_confirmation_by_cli(web):
    gina, _ = add_with_contact(web, "gi")
    H.assert_auth_refused(web, gina)
    H.ctl_ok(web, "user", "confirm", gina)
    assert H.user_record(web, gina)["confirmed"] is True
    H.assert_auth_ok(web, gina)


def test_confirmed_flag_skips_confirmation(web):
    hugo = H.unique_user(web, "hu", contact=CONTACT, confirmed=True)
    H.assert_auth_ok(web, hugo)


def test_token_stored_only_hashed(web):
    ivan, _ = add_with_contact(web, "iv")
    _, _, tok = H.wait_confirmation_link(web, CONTACT, ivan)
    raw_token = bytes.fromhex(tok)
    for p in web.data_dir.glob("bulwark.db*"):
        data = p.read_bytes()
        assert tok.encode() not in data and tok.upper().encode() not in data, f"token in {p}"
        assert raw_token not in data, f"raw token bytes in {p}"
    assert tok not in web.log_text(), "token in the log"


def test_tokens_are_distinct(web):
    a, _ = add_with_contact(web, "ja")
    b, _ = add_with_contact(web, "jb")
    ta = H.wait_confirmation_link(web, CONTACT, a)[2]
    tb = H.wait_confirmation_link(web, CONTACT, b)[2]
    assert ta != tb
    # b's token confirms b only
    r = H.http_post_form(web.http_port, "/confirm", {"token": tb}, source=H.UNTRUSTED)
    assert r.status == 200 and b in r.text, r
    assert H.user_record(web, b)["confirmed"] is True
    assert H.user_record(web, a)["confirmed"] is False
