#!/usr/bin/env bash
# The renewal load runs of issue 4: renewals per second, each on a NEW mTLS
# connection, with the server pinned to one core (full handshakes, then
# resumed sessions), and a renewal storm of $AGENTS agents renewing once
# each at random moments of $WINDOW.
#
# It builds certgate, inits a CA in a temporary directory on disk (the
# SQLite store commits with synchronous=FULL, so the disk's fsync is part of
# what is measured), starts "certgate server" pinned to CPU $SERVER_CPU
# (GOMAXPROCS follows the affinity mask: 1), runs "certgate bench renew"
# (and "bench storm") pinned to CPU $CLIENT_CPU, prints the figures, stops
# the server and removes everything. 127.0.0.1 only; every step is bounded
# by a timeout.
#
# Settings (environment): CLIENTS (32), COUNT (20000), DURATION (60s),
# MODES ("full resumed storm"; any subset), AGENTS (10000), WINDOW (60s),
# SERVER_CPU (0), CLIENT_CPU (1), BENCH_DIR (parent of the temporary
# directory; default $TMPDIR or /tmp: it must be on a real disk, on a tmpfs
# fsync is free), KEEP (1 keeps the directory and the server log),
# SERVER_ENV (extra environment for the server, e.g. "GOGC=200"), BIN (a
# certgate binary to use instead of building one, e.g. to compare builds).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-32}
COUNT=${COUNT:-20000}
DURATION=${DURATION:-60s}
MODES=${MODES:-full resumed storm}
AGENTS=${AGENTS:-10000}
WINDOW=${WINDOW:-60s}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/tmp}}
KEEP=${KEEP:-0}
SERVER_ENV=${SERVER_ENV:-}
BIN=${BIN:-}

. scripts/lib.sh
need_pinning server
make_work "$BENCH_DIR"
warn_tmpfs
build_certgate "$BIN"
init_ca --trust-domain bench.example.org

echo "== starting the server pinned to CPU $SERVER_CPU" >&2
# shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=VALUE words
start_server env $SERVER_ENV taskset -c "$SERVER_CPU"

print_host
echo "store:    SQLite WAL synchronous=FULL on $(findmnt -n -o FSTYPE -T "$work") ($(findmnt -n -o SOURCE -T "$work"))"
echo "server:   $url, pinned to CPU $SERVER_CPU (taskset), GOMAXPROCS 1${SERVER_ENV:+, $SERVER_ENV}"
status=0
for mode in $MODES; do
  echo
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  case $mode in
    full|resumed)
      flag=; [ "$mode" = resumed ] && flag=--resume
      echo "== bench renew ($mode): pinned to CPU $CLIENT_CPU, $CLIENTS in flight, count $COUNT, duration $DURATION"
      timeout 900 taskset -c "$CLIENT_CPU" "$cg" bench renew --dir "$work/ca" --server "$url" \
        --clients "$CLIENTS" --count "$COUNT" --duration "$DURATION" --server-pid "$server_pid" $flag || status=1
      ;;
    storm)
      echo "== bench storm: pinned to CPU $CLIENT_CPU, $AGENTS agents over $WINDOW, full handshakes"
      timeout 900 taskset -c "$CLIENT_CPU" "$cg" bench storm --dir "$work/ca" --server "$url" \
        --agents "$AGENTS" --window "$WINDOW" --server-pid "$server_pid" || status=1
      ;;
    *) echo "bench-renew: unknown mode $mode (full, resumed, storm)" >&2; exit 2 ;;
  esac
done
echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
