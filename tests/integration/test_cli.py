"""
test_cli.py: bulwarkctl's accounts verbs and the password rules (issue 2,
"Accounts"): the incident's admin123 and password1 are refused with the
failed rule named on stderr and a non-zero exit; each rule (length,
complexity, local part, domain, common list) is tried; a strong password is
accepted and stored only as an argon2id hash; duplicates are refused; user
list [--json], user del, alias add/del and check; all while the daemon runs
and sees the change at once.
"""

import json

import pytest

import bulwark_helpers as H


@pytest.fixture(scope="module")
def cli(module_bulwark):
    return module_bulwark(users=False, name="cli")


def listed(d):
    cp = d.ctl("user", "list", "--json")
    assert cp.returncode == 0, H.output_of(cp)
    data = json.loads(cp.stdout)
    return data, cp.stdout


def addresses(d):
    data, text = listed(d)
    out = set()

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("address"), str):
                out.add(x["address"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str) and "@" in x:
            out.add(x)
    walk(data)
    return out


def rcpt_reply(d, address):
    c = H.session(d.smtp_port)
    try:
        H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
        r = c.cmd(f"RCPT TO:<{address}>")
        c.quit()
        return r
    finally:
        c.close()


def add(d, address, password, *extra):
    return d.ctl("user", "add", address, "--confirmed", *extra, input=password + "\n")


# (password, words one of which the error must contain)
WEAK = [
    ("admin123", ["length", "short", "12", "common", "complex"]),
    ("password1", ["length", "short", "12", "common", "complex"]),
    ("Sh0rt!Pw", ["length", "short", "12"]),
    ("all-lowercase-and-7", ["upper", "complex"]),
    ("ALL-UPPERCASE-AND-7", ["lower", "complex"]),
    ("No-Digits-Here-At-All", ["digit", "complex"]),
    ("NoSpecials12345Abc", ["special", "symbol", "complex"]),
    ("Dave-Secret-2024!x", ["local", "address", "user", "name", "contain"]),
    ("Example-Secret-2024!", ["domain", "address", "contain"]),
    ("Password123!", ["common", "guess", "list"]),
    ("Qwerty123456!", ["common", "guess", "list"]),
]


@pytest.mark.parametrize("password,words", WEAK, ids=[w for w, _ in WEAK])
def test_weak_password_refused(cli, password, words):
    cp = add(cli, "dave@example.test", password)
    err = cp.stderr.strip()
    assert cp.returncode != 0, f"{password!r} accepted: {H.output_of(cp)}"
    assert err, "no reason on stderr"
    assert any(w in err.lower() for w in words), f"{password!r}: rule not named: {err!r}"
    assert password not in err, "the password is echoed back"
    assert "dave@example.test" not in addresses(cli)


def test_incident_passwords_refused_on_the_second_domain_too(cli):
    for pw in ("admin123", "password1"):
        cp = add(cli, "admin@example.org", pw)
        assert cp.returncode != 0
        assert cp.stderr.strip()
    assert "admin@example.org" not in addresses(cli)


def test_strong_password_accepted_and_hashed(cli):
    pw = "Tr1cky-Lantern-Oak%88"
    cp = add(cli, "erin@example.test", pw)
    assert cp.returncode == 0, H.output_of(cp)
    assert pw not in H.output_of(cp)
    assert "erin@example.test" in addresses(cli)
    stored = b"".join(p.read_bytes() for p in cli.data_dir.glob("bulwark.db*") if p.is_file())
    assert stored, "no bulwark.db in data_dir"
    assert pw.encode() not in stored, "plaintext password in the database"
    assert b"$argon2id$" in stored, "no argon2id hash in the database"
    H.expect(rcpt_reply(cli, "erin@example.test"), 250)


def test_duplicate_user_refused(cli):
    assert add(cli, "frank@example.test", H.PASSWORD).returncode == 0
    cp = add(cli, "frank@example.test", H.PASSWORD)
    assert cp.returncode != 0
    assert "exist" in cp.stderr.lower(), cp.stderr
    cp = add(cli, "FRANK@EXAMPLE.TEST", H.PASSWORD)
    assert cp.returncode != 0, "the same user in another case was added twice"


def test_user_for_foreign_domain_refused(cli):
    cp = add(cli, "mallory@remote.example", H.PASSWORD)
    assert cp.returncode != 0
    assert cp.stderr.strip()


@pytest.mark.parametrize("address", ["noatsign", "@example.test", "x@", "a b@example.test",
                                     "x@example.test."])
def test_bad_address_refused(cli, address):
    cp = add(cli, address, H.PASSWORD)
    assert cp.returncode != 0, address
    assert cp.stderr.strip()


def test_empty_password_refused(cli):
    cp = cli.ctl("user", "add", "gina@example.test", "--confirmed", input="")
    assert cp.returncode != 0
    assert "gina@example.test" not in addresses(cli)


def test_user_list_json_and_plain(cli):
    assert add(cli, "hank@example.test", H.PASSWORD).returncode == 0
    data, text = listed(cli)
    assert "hank@example.test" in addresses(cli)
    entries = data if isinstance(data, list) else next(
        (v for v in data.values() if isinstance(v, list)), [])
    hank = [e for e in entries if isinstance(e, dict) and e.get("address") == "hank@example.test"]
    assert hank, text
    assert hank[0].get("confirmed") in (True, 1), hank
    assert "password" not in json.dumps(hank[0]).lower() or "$argon2" not in json.dumps(hank[0])
    cp = cli.ctl("user", "list")
    assert cp.returncode == 0
    assert "hank@example.test" in cp.stdout


def test_user_del(cli):
    assert add(cli, "ivan@example.test", H.PASSWORD).returncode == 0
    H.expect(rcpt_reply(cli, "ivan@example.test"), 250)
    cp = cli.ctl("user", "del", "ivan@example.test")
    assert cp.returncode == 0, H.output_of(cp)
    assert "ivan@example.test" not in addresses(cli)
    H.expect(rcpt_reply(cli, "ivan@example.test"), 550, "5.1.1")
    cp = cli.ctl("user", "del", "ivan@example.test")
    assert cp.returncode != 0
    assert cp.stderr.strip()


def test_alias_add_and_del(cli):
    assert add(cli, "judy@example.test", H.PASSWORD).returncode == 0
    H.expect(rcpt_reply(cli, "sales@example.test"), 550, "5.1.1")
    cp = cli.ctl("alias", "add", "sales@example.test", "judy@example.test")
    assert cp.returncode == 0, H.output_of(cp)
    H.expect(rcpt_reply(cli, "sales@example.test"), 250)
    tok, _ = H.send_one(cli.smtp_port, rcpts=("sales@example.test",))
    cli.wait_for("judy@example.test", tok)
    cp = cli.ctl("alias", "del", "sales@example.test", "judy@example.test")
    assert cp.returncode == 0, H.output_of(cp)
    H.expect(rcpt_reply(cli, "sales@example.test"), 550, "5.1.1")


def test_alias_for_foreign_domain_refused(cli):
    cp = cli.ctl("alias", "add", "x@remote.example", "judy@example.test")
    assert cp.returncode != 0
    assert cp.stderr.strip()


def test_check_clean(cli):
    cp = cli.ctl("check")
    assert cp.returncode == 0, H.output_of(cp)


def test_unknown_command(cli):
    cp = cli.ctl("frobnicate")
    assert cp.returncode != 0
    assert cp.stderr.strip()
    assert len(cp.stderr.strip().splitlines()) <= 3, cp.stderr


def test_ctl_with_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hostname: mail.example.test\nfrobnicate: 1\n")
    cp = H.run([H.BULWARKCTL, "-c", bad, "user", "list"], cwd=tmp_path)
    assert cp.returncode != 0
    assert "frobnicate" in cp.stderr
