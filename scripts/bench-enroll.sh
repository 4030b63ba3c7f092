#!/usr/bin/env bash
# The enrollment load run of issue 2: enrollments per second (token + CSR ->
# durable record -> certificate) with the server pinned to one core, and
# their latency.
#
# It builds certgate, inits a CA in a temporary directory on disk (the
# SQLite store commits with synchronous=FULL, so the disk's fsync is part of
# what is measured), starts "certgate server" pinned to CPU $SERVER_CPU
# (GOMAXPROCS follows the affinity mask: 1), runs "certgate bench enroll"
# pinned to CPU $CLIENT_CPU, prints the figures, stops the server and
# removes everything. 127.0.0.1 only.
#
# Settings (environment): CLIENTS (32), COUNT (20000), DURATION (60s),
# SERVER_CPU (0), CLIENT_CPU (1), HTTP2 (0; 1 speaks HTTP/2),
# BENCH_DIR (parent of the temporary directory; default $TMPDIR or /tmp:
# it must be on a real disk, on a tmpfs fsync is free and the figures
# overstate durable throughput), KEEP (1 keeps the directory and the server
# log).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-32}
COUNT=${COUNT:-20000}
DURATION=${DURATION:-60s}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
HTTP2=${HTTP2:-0}
BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/tmp}}
KEEP=${KEEP:-0}

command -v taskset >/dev/null || { echo "bench-enroll: taskset (util-linux) is needed to pin the server" >&2; exit 1; }
if [ "$(nproc)" -lt 2 ] && [ "$SERVER_CPU" != "$CLIENT_CPU" ]; then
  echo "bench-enroll: one CPU only: server and load generator share CPU 0" >&2
  SERVER_CPU=0 CLIENT_CPU=0
fi

work=$(mktemp -d "$BENCH_DIR/certgate-bench-enroll.XXXXXX")
if [ "$(findmnt -n -o FSTYPE -T "$work")" = tmpfs ]; then
  echo "bench-enroll: WARNING: $BENCH_DIR is a tmpfs: fsync costs nothing there; set BENCH_DIR to a directory on disk" >&2
fi
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

echo "== starting the server pinned to CPU $SERVER_CPU" >&2
taskset -c "$SERVER_CPU" "$cg" server --dir "$work/ca" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
url=
for _ in $(seq 1 300); do
  url=$(sed -n 's/^certgate server listening on //p' "$work/server.out")
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "bench-enroll: the server exited:" >&2; cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "bench-enroll: the server did not start in 30 s" >&2; exit 1; }

echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -sr)"
echo "go:       $(go version | cut -d' ' -f3-)"
echo "store:    SQLite WAL synchronous=FULL on $(findmnt -n -o FSTYPE -T "$work") ($(findmnt -n -o SOURCE -T "$work"))"
echo "server:   $url, pinned to CPU $SERVER_CPU (taskset), GOMAXPROCS 1"
echo "load:     certgate bench enroll pinned to CPU $CLIENT_CPU, $CLIENTS clients, count $COUNT, duration $DURATION"
http2_flag=
[ "$HTTP2" = 1 ] && http2_flag=--http2
# The run is bounded by --duration; timeout is a backstop for a hung server.
# --server-pid adds the server's CPU time during the measured phase.
timeout 600 taskset -c "$CLIENT_CPU" "$cg" bench enroll --dir "$work/ca" --server "$url" \
  --clients "$CLIENTS" --count "$COUNT" --duration "$DURATION" --server-pid "$server_pid" $http2_flag
