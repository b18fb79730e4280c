#!/bin/sh
# Install the Debian packages bulwark needs to build, run and test.
# Idempotent: prints nothing and touches nothing when everything is there.
set -eu

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
libevent-dev libssl-dev openssl libsqlite3-dev sqlite3 libsodium-dev libyaml-dev
libc-ares-dev libmicrohttpd-dev libcmocka-dev libgmime-3.0-dev
python3 python3-pytest python3-aiosmtpd python3-dnslib swaks libnet-ssleay-perl mutt tmux valgrind fail2ban python3-dkim opendkim-tools"

# The IMAP tests (conformance, commands) and make bench compare bulwark with a
# real Dovecot (tests/integration/dovecot.py): a test dependency, always installed.
PKGS="$PKGS dovecot-imapd"

# make bench additionally wants Postfix (its smtp-source and a reference instance).
if [ "${BULWARK_DEPS_BENCH:-0}" = 1 ]; then
	PKGS="$PKGS postfix"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "deps.sh: missing packages:$missing (run as root or install sudo)" >&2
		exit 1
	fi
fi
echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions at install time; answer them up front (local only).
if echo "$missing" | grep -q postfix; then
	echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
fi
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
