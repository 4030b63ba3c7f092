#!/usr/bin/env bash
# The revocation propagation run of issue 5: one server, five gateway
# processes following its change feed, and the time from the revoke call's
# return until every gateway has closed the client's connection and refuses
# its new handshake, over at least 100 revocations.
#
# It builds certgate, inits a CA in a temporary directory, starts
# "certgate server" on 127.0.0.1, then runs "certgate bench revoke", which
# enrolls a /gateway/ certificate per gateway, starts the "certgate gateway"
# processes (each on its own 127.0.0.1 port, following the feed), enrolls
# the clients, opens one keep-alive connection per gateway for each, revokes
# them one at a time and prints p50/p90/p99/max. Everything is stopped and
# removed at the end. 127.0.0.1 only; bounded by --timeout and timeout(1).
#
# Settings (environment): GATEWAYS (5), REVOCATIONS (100), TIMEOUT (5m),
# KEEP (1 keeps the directory and the server log).
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAYS=${GATEWAYS:-5}
REVOCATIONS=${REVOCATIONS:-100}
TIMEOUT=${TIMEOUT:-5m}
KEEP=${KEEP:-0}

work=$(mktemp -d "${TMPDIR:-/tmp}/certgate-bench-revoke.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

echo "== building certgate" >&2
go build -o "$work/certgate" ./cmd/certgate
cg=$work/certgate
export CERTGATE_PASSPHRASE="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
"$cg" init --dir "$work/ca" --trust-domain bench.example.org >/dev/null

echo "== starting the server" >&2
"$cg" server --dir "$work/ca" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
url=
for _ in $(seq 1 300); do
  url=$(sed -n 's/^certgate server listening on //p' "$work/server.out")
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "bench-revoke: the server exited:" >&2; cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "bench-revoke: the server did not start in 30 s" >&2; exit 1; }

echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -sr)"
echo "go:       $(go version | cut -d' ' -f3-)"
echo "server:   $url (SQLite store on $(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || echo '?'))"
echo "run:      certgate bench revoke --gateways $GATEWAYS --revocations $REVOCATIONS"
# The run is bounded by --timeout; timeout(1) is a backstop.
timeout 900 "$cg" bench revoke --dir "$work/ca" --server "$url" --certgate "$cg" \
  --gateways "$GATEWAYS" --revocations "$REVOCATIONS" --timeout "$TIMEOUT" --work-dir "$work"
