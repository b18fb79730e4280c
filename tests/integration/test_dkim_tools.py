"""
test_dkim_tools.py: DKIM interoperability through bulwarkctl, no daemon
needed (issue 4, "DKIM"). Keys come from `bulwarkctl dkim keygen` on a test
config; messages are signed by `bulwarkctl dkim sign` and checked by two
independent verifiers fed the printed TXT records as the DNS answers:

  dkimpy (Debian python3-dkim)        its dnsfunc returns the records
  opendkim-testmsg (opendkim-tools)   it only asks the system resolver, so it
                                      runs in a user+network+mount namespace
                                      (unshare -rnm) whose /etc/resolv.conf
                                      points at a tiny DNS server on that
                                      namespace's loopback

Both signatures (rsa-sha256 and ed25519-sha256) must verify in both, and a
tampered body must fail. The other way round, messages signed by dkimpy (all
four canonicalisations, with and without l=) must pass `bulwarkctl dkim
verify`, and opendkim-testmsg's own signature (rsa-sha1, hard-coded there)
must be refused as RFC 8301 asks.
"""

import base64
import os
import re
import shutil
import subprocess
import textwrap

import pytest

import bulwark_helpers as H

dkim = pytest.importorskip("dkim", reason="python3-dkim (dkimpy) is not installed")

DOMAIN = "example.test"

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@remote.example>\r\n"
    b"Subject:  Quarterly   report \r\n"
    b"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n"
    b"Message-ID: <dkim-interop-1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hi Bob,  \r\n"
    b"\r\n"
    b"the numbers are\tin.\r\n"
    b"\r\n"
    b"\r\n"
)


def tamper(msg):
    out = msg.replace(b"the numbers are", b"the numbers were")
    assert out != msg
    return out


def ctl(d, *args, input=b""):
    """bulwarkctl with bytes in and out (CRLF must survive)."""
    return subprocess.run([str(H.BULWARKCTL), "-c", str(d.config_path), *args],
                          input=input, capture_output=True, timeout=60,
                          env=H.sanitizer_env())


def parse_records(text):
    """{name with final dot: TXT text} from keygen's zone-file lines."""
    out = {}
    for line in text.splitlines():
        if line.startswith(";") or " IN TXT " not in line:
            continue
        name, rest = line.split(" IN TXT ", 1)
        strings = re.findall(r'"([^"]*)"', rest)
        assert strings, line
        assert all(len(s) <= 255 for s in strings), line
        out[name.strip()] = "".join(strings)
    return out


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A config (daemon not started) with rsa and ed25519 keys for example.test."""
    d = H.Daemon(tmp_path_factory.mktemp("dkim"), name="dkim")
    cp = ctl(d, "dkim", "keygen", DOMAIN)
    assert cp.returncode == 0, cp.stderr.decode()
    out = cp.stdout.decode()
    records = parse_records(out)
    assert len(records) == 2, out
    d.records = records
    d.keygen_output = out
    d.selectors = {}
    for name, txt in records.items():
        sel = name.split("._domainkey.")[0]
        d.selectors["ed25519" if "k=ed25519" in txt else "rsa"] = sel
    return d


def dnsfunc_for(records):
    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        txt = records.get(name) or records.get(name + ".")
        return txt.encode() if txt is not None else None
    return dnsfunc


def dkimpy_results(msg, records):
    """[(a=, verified)] for every DKIM-Signature, in order."""
    header = msg.split(b"\r\n\r\n", 1)[0]
    n = len(re.findall(rb"(?im)^dkim-signature:", header))
    out = []
    for i in range(n):
        d = dkim.DKIM(msg)
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc_for(records))
        except dkim.ValidationError:
            ok = False
        out.append((d.signature_fields.get(b"a"), bool(ok)))
    return out


def txt_args(records):
    args = []
    for name, txt in records.items():
        args += ["--txt", f"{name}={txt}"]
    return args


# ---------------------------------------------------------------- keygen


def test_keygen_records_and_files(keyed):
    d = keyed
    out = d.keygen_output
    assert set(d.selectors) == {"rsa", "ed25519"}
    for alg, sel in d.selectors.items():
        assert re.fullmatch(rf"{alg}-\d{{6}}", sel), sel
        path = d.data_dir / "dkim" / DOMAIN / f"{sel}.pem"
        assert path.exists()
        assert path.stat().st_mode & 0o777 == 0o600
        assert (d.data_dir / "dkim" / DOMAIN).stat().st_mode & 0o777 == 0o700
    rsa = d.records[f"{d.selectors['rsa']}._domainkey.{DOMAIN}."]
    assert rsa.startswith("v=DKIM1; k=rsa; p=MII")
    # 2048 bits: the SubjectPublicKeyInfo is 294 bytes.
    assert len(base64.b64decode(rsa.split("p=")[1])) == 294
    ed = d.records[f"{d.selectors['ed25519']}._domainkey.{DOMAIN}."]
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", ed)
    # The RSA record is two quoted strings on one line.
    line = [l for l in out.splitlines() if l.startswith(d.selectors["rsa"] + ".")][0]
    assert line.count('"') == 4
    # records prints them again.
    cp = ctl(d, "dkim", "records", DOMAIN)
    assert cp.returncode == 0, cp.stderr
    assert parse_records(cp.stdout.decode()) == d.records


@pytest.mark.parametrize("args, message", [
    (["dkim", "keygen", DOMAIN], "exists: refusing to overwrite it"),
    (["dkim", "keygen", "elsewhere.example"], "is not a local domain"),
    (["dkim", "keygen", DOMAIN, "--algorithm", "dsa"], "--algorithm: rsa or ed25519"),
    (["dkim", "keygen", DOMAIN, "--selector", "../../etc"], "--selector:"),
    (["dkim", "sign", "example.org"], "no DKIM key"),
    (["dkim", "records", "example.org"], "no DKIM keys for example.org"),
    (["dkim", "sign", DOMAIN, "--selector", "nope"], "no DKIM key with selector nope"),
])
def test_cli_refusals(keyed, args, message):
    cp = ctl(keyed, *args, input=MESSAGE)
    err = cp.stderr.decode()
    assert cp.returncode == 1, (cp.returncode, err)
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert cp.stdout == b""


def test_keygen_one_algorithm(tmp_path):
    d = H.Daemon(tmp_path, name="dkim-one")
    cp = ctl(d, "dkim", "keygen", "example.org", "--algorithm", "ed25519", "--selector", "s1")
    assert cp.returncode == 0, cp.stderr
    records = parse_records(cp.stdout.decode())
    assert list(records) == ["s1._domainkey.example.org."]
    assert "k=ed25519" in records["s1._domainkey.example.org."]
    # A selector alone means one RSA key.
    cp = ctl(d, "dkim", "keygen", "example.org", "--selector", "s2")
    assert cp.returncode == 0, cp.stderr
    assert "k=rsa" in parse_records(cp.stdout.decode())["s2._domainkey.example.org."]


def test_bad_key_is_an_error_naming_it(tmp_path):
    d = H.Daemon(tmp_path, name="dkim-bad")
    assert ctl(d, "dkim", "keygen", DOMAIN, "--selector", "k1").returncode == 0
    path = d.data_dir / "dkim" / DOMAIN / "k1.pem"
    path.chmod(0o644)
    cp = ctl(d, "dkim", "sign", DOMAIN, input=MESSAGE)
    assert cp.returncode == 1
    assert str(path) in cp.stderr.decode() and "chmod 600" in cp.stderr.decode()
    path.chmod(0o600)
    path.write_text("not a key\n")
    cp = ctl(d, "dkim", "sign", DOMAIN, input=MESSAGE)
    assert cp.returncode == 1
    assert str(path) in cp.stderr.decode() and "not a readable PEM private key" in \
        cp.stderr.decode()


# ---------------------------------------------------------------- dkimpy


def test_dkimpy_verifies_both_signatures(keyed):
    cp = ctl(keyed, "dkim", "sign", DOMAIN, input=MESSAGE)
    assert cp.returncode == 0, cp.stderr
    signed = cp.stdout
    assert signed.endswith(MESSAGE)
    assert dkimpy_results(signed, keyed.records) == [
        (b"rsa-sha256", True), (b"ed25519-sha256", True)]
    # dkimpy's own one-call verify checks the first signature.
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(keyed.records))
    # A tampered body fails both.
    assert dkimpy_results(tamper(signed), keyed.records) == [
        (b"rsa-sha256", False), (b"ed25519-sha256", False)]
    # A second From fails both (From is over-signed).
    second_from = b"From: Mallory <ceo@example.test>\r\n" + signed
    assert [ok for _, ok in dkimpy_results(second_from, keyed.records)] == [False, False]
    # And our own verifier agrees.
    cp = ctl(keyed, "dkim", "verify", *txt_args(keyed.records), input=signed)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.decode().splitlines()
    assert lines[0].startswith(f"dkim=pass header.d={DOMAIN} header.s={keyed.selectors['rsa']} "
                               "header.a=rsa-sha256 header.b=")
    assert lines[1].startswith(f"dkim=pass header.d={DOMAIN} "
                               f"header.s={keyed.selectors['ed25519']} header.a=ed25519-sha256")


def test_lf_input_is_signed_as_crlf(keyed):
    cp = ctl(keyed, "dkim", "sign", DOMAIN, "--selector", keyed.selectors["ed25519"],
             input=MESSAGE.replace(b"\r\n", b"\n"))
    assert cp.returncode == 0, cp.stderr
    assert b"\n" not in cp.stdout.replace(b"\r\n", b"")
    assert dkimpy_results(cp.stdout, keyed.records) == [(b"ed25519-sha256", True)]


def pem_der(path):
    text = path.read_text()
    body = "".join(l for l in text.splitlines() if not l.startswith("-----"))
    return base64.b64decode(body)


@pytest.mark.parametrize("canon", [(b"relaxed", b"relaxed"), (b"simple", b"simple"),
                                   (b"relaxed", b"simple"), (b"simple", b"relaxed")])
@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
@pytest.mark.parametrize("length", [False, True])
def test_dkimpy_signed_verify_with_ours(keyed, canon, alg, length):
    sel = keyed.selectors[alg]
    path = keyed.data_dir / "dkim" / DOMAIN / f"{sel}.pem"
    if alg == "rsa":
        privkey = path.read_bytes()
        sigalg = b"rsa-sha256"
    else:
        # dkimpy takes the bare 32-byte Ed25519 seed, the end of the PKCS#8 DER.
        privkey = base64.b64encode(pem_der(path)[-32:])
        sigalg = b"ed25519-sha256"
    sig = dkim.sign(MESSAGE, sel.encode(), DOMAIN.encode(), privkey,
                    canonicalize=canon, signature_algorithm=sigalg, length=length)
    signed = sig + MESSAGE
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(keyed.records))
    cp = ctl(keyed, "dkim", "verify", *txt_args(keyed.records), input=signed)
    out = cp.stdout.decode()
    assert cp.returncode == 0, out + cp.stderr.decode()
    assert out.startswith(f"dkim=pass header.d={DOMAIN} header.s={sel} "), out
    cp = ctl(keyed, "dkim", "verify", *txt_args(keyed.records), input=tamper(signed))
    assert cp.returncode == 1
    assert cp.stdout.decode().startswith(
        'dkim=fail reason="body hash did not verify"'), cp.stdout
    if length:
        # l= is honoured: what follows the signed length is not covered.
        cp = ctl(keyed, "dkim", "verify", *txt_args(keyed.records),
                 input=signed + b"appended after signing\r\n")
        assert cp.stdout.decode().startswith("dkim=pass"), cp.stdout


def test_verify_without_keys_and_unsigned(keyed):
    cp = ctl(keyed, "dkim", "sign", DOMAIN, input=MESSAGE)
    cp = ctl(keyed, "dkim", "verify", input=cp.stdout)
    assert cp.returncode == 1
    assert cp.stdout.decode().splitlines()[0].startswith(
        'dkim=permerror reason="no key for signature"')
    cp = ctl(keyed, "dkim", "verify", input=MESSAGE)
    assert cp.returncode == 1
    assert cp.stdout == b"dkim=none\n"


# ------------------------------------------------------- opendkim-testmsg

DNS_SERVER = textwrap.dedent("""\
    # A DNS server for one test: TXT answers from a JSON map, NXDOMAIN otherwise.
    import json, socket, struct, sys
    records = json.load(open(sys.argv[1]))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    open(sys.argv[2], "w").write("ready")
    while True:
        data, peer = s.recvfrom(4096)
        qid = struct.unpack(">H", data[:2])[0]
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode().lower())
            i += 1 + data[i]
        qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
        text = records.get(".".join(labels))
        answer = b""
        if text is not None and qtype == 16:
            raw = text.encode()
            rdata = b"".join(bytes([len(raw[k:k + 255])]) + raw[k:k + 255]
                             for k in range(0, len(raw), 255))
            answer = b"\\xc0\\x0c" + struct.pack(">HHIH", 16, 1, 60, len(rdata)) + rdata
        flags = 0x8180 | (3 if text is None else 0)
        head = struct.pack(">HHHHHH", qid, flags, 1, 1 if answer else 0, 0, 0)
        s.sendto(head + data[12:i + 5] + answer, peer)
""")

NAMESPACE_SCRIPT = textwrap.dedent("""\
    set -u
    ip link set lo up || exit 90
    mount --bind "$WORK/resolv.conf" /etc/resolv.conf || exit 91
    /usr/bin/python3 "$WORK/dns.py" "$WORK/records.json" "$WORK/ready" \
        < /dev/null > "$WORK/dns.log" 2>&1 &
    dns=$!
    trap 'kill "$dns" 2>/dev/null' EXIT
    for i in $(seq 100); do [ -e "$WORK/ready" ] && break; sleep 0.05; done
    [ -e "$WORK/ready" ] || exit 92
    for f in "$WORK"/in/*.eml; do
        opendkim-testmsg < "$f" > /dev/null 2> "$f.err"
        echo "$(basename "$f") $?"
    done
""")


def run_opendkim(tmp_path, records, messages):
    """{name: exit status of opendkim-testmsg} for each message, in a namespace."""
    import json
    for tool in ("opendkim-testmsg", "unshare", "ip"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.skip(f"{tool} is not installed (Debian opendkim-tools, util-linux, iproute2)")
    work = tmp_path / "odkim"
    (work / "in").mkdir(parents=True)
    (work / "dns.py").write_text(DNS_SERVER)
    (work / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    (work / "records.json").write_text(json.dumps(
        {k.rstrip(".").lower(): v for k, v in records.items()}))
    for name, data in messages.items():
        (work / "in" / f"{name}.eml").write_bytes(data)
    env = dict(os.environ, WORK=str(work),
               PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    cp = subprocess.run(["unshare", "-rnm", "sh", "-c", NAMESPACE_SCRIPT], env=env,
                        capture_output=True, text=True, timeout=120)
    if cp.returncode in (90, 91) or "Operation not permitted" in cp.stderr:
        pytest.skip(f"no user namespaces here: {cp.stderr.strip()}")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out = {}
    for line in cp.stdout.splitlines():
        name, rc = line.rsplit(" ", 1)
        out[name[:-4]] = (int(rc), (work / "in" / f"{name}.err").read_text().strip())
    return out


def test_opendkim_verifies_both_signatures(keyed, tmp_path):
    messages = {}
    for alg, sel in keyed.selectors.items():
        cp = ctl(keyed, "dkim", "sign", DOMAIN, "--selector", sel, input=MESSAGE)
        assert cp.returncode == 0, cp.stderr
        messages[f"{alg}-good"] = cp.stdout
        messages[f"{alg}-tampered"] = tamper(cp.stdout)
    cp = ctl(keyed, "dkim", "sign", DOMAIN, input=MESSAGE)
    messages["both"] = cp.stdout
    results = run_opendkim(tmp_path, keyed.records, messages)
    for alg in ("rsa", "ed25519"):
        assert results[f"{alg}-good"][0] == 0, (alg, results[f"{alg}-good"])
        assert results[f"{alg}-tampered"][0] != 0, (alg, results[f"{alg}-tampered"])
        assert "Bad signature" in results[f"{alg}-tampered"][1]
    assert results["both"][0] == 0


def test_opendkim_rejects_a_revoked_key(keyed, tmp_path):
    sel = keyed.selectors["ed25519"]
    cp = ctl(keyed, "dkim", "sign", DOMAIN, "--selector", sel, input=MESSAGE)
    records = dict(keyed.records)
    records[f"{sel}._domainkey.{DOMAIN}."] = "v=DKIM1; k=ed25519; p="
    results = run_opendkim(tmp_path, records, {"revoked": cp.stdout})
    assert results["revoked"][0] != 0, results


def test_opendkim_rsa_sha1_is_refused(keyed, tmp_path):
    """opendkim-testmsg signs with rsa-sha1 (hard-coded); RFC 8301 says refuse it."""
    if shutil.which("opendkim-testmsg") is None and \
            not os.path.exists("/usr/sbin/opendkim-testmsg"):
        pytest.skip("opendkim-testmsg is not installed (Debian opendkim-tools)")
    sel = keyed.selectors["rsa"]
    key = keyed.data_dir / "dkim" / DOMAIN / f"{sel}.pem"
    tool = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"
    cp = subprocess.run([tool, "-C", "-d", DOMAIN, "-s", sel, "-k", str(key)],
                        input=MESSAGE, capture_output=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    signed = cp.stdout
    assert b"a=rsa-sha1" in signed
    cp = ctl(keyed, "dkim", "verify", *txt_args(keyed.records), input=signed)
    assert cp.returncode == 1
    assert cp.stdout.decode().startswith(
        'dkim=permerror reason="rsa-sha1 is not accepted (RFC 8301)"'), cp.stdout
