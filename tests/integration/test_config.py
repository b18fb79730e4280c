"""
test_config.py: the config loader and the audit behind `bulwarkd -t` and
`bulwarkctl check` (issue 2, "Configuration"): unknown keys, wrong types,
bad CIDRs and addresses are errors naming file:line and the key, and the
daemon does not start; the incident's wide mynetworks is refused unless
allow_nonlocal_mynetworks, and then warned about; a security_policy weaker
than the defaults is a warning naming the key.
"""

import re
import subprocess

import pytest

import bulwark_helpers as H


def render(tmp_path, overrides=None, drop=(), extra=()):
    """Write a config: the test base config (minus the top-level keys in
    drop) followed by the lines in extra. Returns (path, line number of the
    first extra line)."""
    cfg = H.deep_merge(H.base_config(tmp_path / "data", H.free_ports(6)), overrides)
    for k in drop:
        cfg.pop(k, None)
    lines = H.to_yaml(cfg).split("\n")
    first = len(lines) + 1
    lines.extend(extra)
    path = tmp_path / "bulwark.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, first


def warning_lines(out):
    """Findings of warning severity ("WARNING key: ..." or a warning log line)."""
    return [l for l in out.splitlines()
            if re.search(r"\bWARNING\b", l) or re.search(r"\bwarning: ", l)]


def check_t(path, cwd):
    return H.run([H.BULWARKD, "-c", path, "-t"], timeout=60, cwd=cwd)


def ctl_check(path, cwd):
    return H.run([H.BULWARKCTL, "-c", path, "check"], timeout=60, cwd=cwd)


def assert_refuses_to_start(path, cwd, *needles):
    """bulwarkd -c path must exit non-zero on its own, saying why."""
    try:
        cp = H.run([H.BULWARKD, "-c", path], timeout=20, cwd=cwd)
    except subprocess.TimeoutExpired:
        pytest.fail(f"bulwarkd kept running with the bad config {path}")
    out = H.output_of(cp)
    assert cp.returncode != 0, f"bulwarkd started (exit {cp.returncode}): {out}"
    for n in needles:
        assert n.lower() in out.lower(), f"{n!r} not in bulwarkd's refusal: {out!r}"
    assert not H.SANITIZER_RE.search(out), out
    return out


# ---------------------------------------------------------------- good configs

def test_default_config_checks_clean(tmp_path):
    cp = check_t(H.DEFAULT_CONFIG, tmp_path)
    out = H.output_of(cp)
    assert cp.returncode == 0, out
    # Every control is on by default: nothing to warn about.
    assert not warning_lines(out), out
    assert not H.SANITIZER_RE.search(out), out


def test_default_config_bulwarkctl_check(tmp_path):
    cp = ctl_check(H.DEFAULT_CONFIG, tmp_path)
    out = H.output_of(cp)
    assert cp.returncode == 0, out
    assert not warning_lines(out), out


def test_test_config_checks_clean(tmp_path):
    path, _ = render(tmp_path)
    cp = check_t(path, tmp_path)
    assert cp.returncode == 0, H.output_of(cp)


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    cp = check_t(path, tmp_path)
    out = H.output_of(cp)
    assert cp.returncode != 0, out
    assert "nope.yaml" in out, out


# ---------------------------------------------------------------- errors with file:line and key

# (id, top-level keys to drop from the base, extra lines, index of the bad
#  line within extra, key name that must be named)
ERRORS = [
    ("unknown-top-level", (), ["frobnicate: true"], 0, "frobnicate"),
    ("unknown-smtp-key", ("smtp",), ["smtp:", "  greet_pause_ms: 0", "  max_lines: 5"], 2, "max_lines"),
    ("typo-in-security-policy", (), ["security_policy:", "  minimum_password_lenght: 12"], 1,
     "minimum_password_lenght"),
    ("int-is-a-word", ("smtp",), ["smtp:", "  greet_pause_ms: 0", "  max_recipients: lots"], 2,
     "max_recipients"),
    ("int-is-a-list", ("smtp",), ["smtp:", "  max_errors: [1, 2]"], 1, "max_errors"),
    ("negative-size", ("smtp",), ["smtp:", "  max_message_size: -1"], 1, "max_message_size"),
    ("bool-is-a-word", ("allow_nonlocal_mynetworks",), ["allow_nonlocal_mynetworks: maybe"], 0,
     "allow_nonlocal_mynetworks"),
    ("policy-bool-is-a-word", (), ["security_policy:", "  require_password_complexity: sometimes"], 1,
     "require_password_complexity"),
    ("string-is-a-list", ("hostname",), ["hostname: [a.example, b.example]"], 0, "hostname"),
    ("bad-enum", ("smtp",), ["smtp:", "  bare_lf: strip"], 1, "bare_lf"),
    ("section-is-a-scalar", ("smtp",), ["smtp: 5"], 0, "smtp"),
    ("cidr-prefix-33", ("mynetworks",), ["mynetworks: [127.0.0.1/33]"], 0, "mynetworks"),
    ("cidr-octet-256", ("mynetworks",), ["mynetworks: [127.0.0.256/32]"], 0, "mynetworks"),
    ("cidr-v6-prefix-129", ("mynetworks",), ['mynetworks: ["::1/129"]'], 0, "mynetworks"),
    ("cidr-hostname", ("mynetworks",), ["mynetworks: [localhost]"], 0, "mynetworks"),
    ("cidr-empty-prefix", ("mynetworks",), ["mynetworks: [127.0.0.1/]"], 0, "mynetworks"),
    ("cidr-trailing-junk", ("mynetworks",), ["mynetworks: [127.0.0.1/8x]"], 0, "mynetworks"),
    ("listen-port-99999", ("listen",), ["listen:", "  smtp: [127.0.0.1:99999]"], 1, "smtp"),
    ("listen-no-port", ("listen",), ["listen:", "  smtp: [127.0.0.1]"], 1, "smtp"),
    ("listen-bad-ip", ("listen",), ["listen:", "  smtp: [999.0.0.1:2525]"], 1, "smtp"),
    ("listen-port-word", ("listen",), ["listen:", "  smtp: [127.0.0.1:smtp]"], 1, "smtp"),
]


@pytest.mark.parametrize("drop,extra,bad,key", [pytest.param(*e[1:], id=e[0]) for e in ERRORS])
def test_config_error_names_file_line_and_key(tmp_path, drop, extra, bad, key):
    path, first = render(tmp_path, drop=drop, extra=extra)
    line = first + bad
    cp = check_t(path, tmp_path)
    out = H.output_of(cp)
    assert cp.returncode != 0, f"-t accepted a bad config:\n{path.read_text()}\n{out}"
    assert f"{path.name}:{line}" in out, f"expected {path.name}:{line} in {out!r}"
    assert key in out, f"expected the key {key!r} in {out!r}"
    assert not H.SANITIZER_RE.search(out), out
    # and the daemon itself does not start
    assert_refuses_to_start(path, tmp_path, key)
    # bulwarkctl check says the same
    cp = ctl_check(path, tmp_path)
    assert cp.returncode != 0, H.output_of(cp)
    assert key in H.output_of(cp), H.output_of(cp)


def test_yaml_syntax_error(tmp_path):
    path, first = render(tmp_path, drop=("smtp",), extra=["smtp: [unclosed"])
    cp = check_t(path, tmp_path)
    out = H.output_of(cp)
    assert cp.returncode != 0, out
    assert re.search(re.escape(path.name) + r":\d+", out), out
    assert_refuses_to_start(path, tmp_path)


def test_duplicate_key_is_an_error(tmp_path):
    # A second "mynetworks:" must not silently replace the first one (YAML
    # forbids duplicate keys; silently taking one is how configs lie).
    path, first = render(tmp_path, extra=["mynetworks: [127.0.0.0/8]"])
    cp = check_t(path, tmp_path)
    out = H.output_of(cp)
    assert cp.returncode != 0, out
    assert "mynetworks" in out and f"{path.name}:{first}" in out, out


# ---------------------------------------------------------------- the incident's mynetworks

WIDE = [
    ["10.0.0.0/8"],
    ["172.16.0.0/12"],
    ["192.168.0.0/16"],
    ["0.0.0.0/0"],
    ["::/0"],
    ["127.0.0.0/8", "10.89.0.0/24"],          # the pod network of the incident
    ["127.0.0.0/8", "::ffff:127.0.0.0/104", "::1/128", "10.0.0.0/8",
     "172.16.0.0/12", "192.168.0.0/16"],      # the incident's line, verbatim
]


@pytest.mark.parametrize("nets", WIDE, ids=lambda n: "+".join(n))
def test_wide_mynetworks_refused(tmp_path, nets):
    path, _ = render(tmp_path, overrides={"mynetworks": nets})
    cp = check_t(path, tmp_path)
    out = H.output_of(cp)
    assert cp.returncode != 0, f"-t accepted mynetworks {nets}: {out}"
    assert "mynetworks" in out, out
    assert "allow_nonlocal_mynetworks" in out or "loopback" in out.lower(), \
        f"the refusal should say how to allow it or why: {out!r}"
    assert_refuses_to_start(path, tmp_path, "mynetworks")
    cp = ctl_check(path, tmp_path)
    assert cp.returncode != 0, H.output_of(cp)
    assert "mynetworks" in H.output_of(cp)


def test_loopback_mynetworks_accepted(tmp_path):
    path, _ = render(tmp_path, overrides={"mynetworks": ["127.0.0.0/8", "::1/128"]})
    cp = check_t(path, tmp_path)
    assert cp.returncode == 0, H.output_of(cp)


def test_allow_nonlocal_mynetworks_starts_with_warning(tmp_path, bulwark):
    over = {"mynetworks": ["127.0.0.1/32", "10.0.0.0/8"], "allow_nonlocal_mynetworks": True}
    path, _ = render(tmp_path, overrides=over)
    cp = check_t(path, tmp_path)
    out = H.output_of(cp)
    assert cp.returncode == 0, out
    assert any("mynetworks" in l for l in warning_lines(out)), out
    cp = ctl_check(path, tmp_path)
    assert any("mynetworks" in l for l in warning_lines(H.output_of(cp))), H.output_of(cp)

    d = bulwark(overrides=over)
    warnings = [l for l in d.log_text().splitlines()
                if "warning" in l.lower() and "mynetworks" in l]
    assert warnings, f"no WARNING about mynetworks at start\n{d.log_tail()}"
    # 127.0.0.9 is not in 10.0.0.0/8: still no relay for it.
    c = H.session(d.smtp_port)
    H.expect(c.cmd("MAIL FROM:<sender@remote.example>"), 250)
    H.expect(c.cmd("RCPT TO:<user@remote.example>"), 554, "5.7.1")
    c.quit()


# ---------------------------------------------------------------- weaker security_policy

WEAK = [
    ("require_email_confirmation", False),
    ("max_failed_login_attempts", 10),
    ("account_lockout_duration_minutes", 5),
    ("minimum_password_length", 8),
    ("require_password_complexity", False),
    ("disable_smtp_auth_for_unconfirmed", False),
]


@pytest.mark.parametrize("key,value", WEAK, ids=[k for k, _ in WEAK])
def test_weak_security_policy_warns(tmp_path, key, value):
    path, _ = render(tmp_path, overrides={"security_policy": {key: value}})
    cp = check_t(path, tmp_path)
    out = H.output_of(cp)
    # A warning, not an error: the daemon would start.
    assert cp.returncode == 0, out
    assert any(key in l for l in warning_lines(out)), f"no warning naming {key}: {out!r}"
    cp = ctl_check(path, tmp_path)
    out2 = H.output_of(cp)
    assert cp.returncode == 0, out2
    assert any(key in l for l in warning_lines(out2)), f"bulwarkctl check: no warning naming {key}: {out2!r}"


def test_weak_policy_warned_at_start(bulwark):
    d = bulwark(overrides={"security_policy": {"minimum_password_length": 8}}, users=False)
    lines = [l for l in d.log_text().splitlines()
             if "minimum_password_length" in l and "warn" in l.lower()]
    assert lines, f"no start-up warning naming minimum_password_length\n{d.log_tail()}"


def test_intrusion_prevention_off_is_reported(tmp_path):
    path, _ = render(tmp_path, overrides={"intrusion_prevention": {"enabled": False}})
    cp = check_t(path, tmp_path)
    out = H.output_of(cp)
    assert "intrusion_prevention" in out, out


def test_stronger_policy_is_quiet(tmp_path):
    path, _ = render(tmp_path, overrides={"security_policy": {
        "minimum_password_length": 16, "max_failed_login_attempts": 2}})
    cp = check_t(path, tmp_path)
    out = H.output_of(cp)
    assert cp.returncode == 0, out
    assert "minimum_password_length" not in out and "max_failed_login_attempts" not in out, out
