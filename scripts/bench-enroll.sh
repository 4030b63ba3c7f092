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

. scripts/lib.sh
need_pinning server
make_work "$BENCH_DIR"
warn_tmpfs
build_certgate
init_ca --trust-domain bench.example.org

echo "== starting the server pinned to CPU $SERVER_CPU" >&2
start_server taskset -c "$SERVER_CPU"

print_host
echo "store:    SQLite WAL synchronous=FULL on $(findmnt -n -o FSTYPE -T "$work") ($(findmnt -n -o SOURCE -T "$work"))"
echo "server:   $url, pinned to CPU $SERVER_CPU (taskset), GOMAXPROCS 1"
echo "load:     certgate bench enroll pinned to CPU $CLIENT_CPU, $CLIENTS clients, count $COUNT, duration $DURATION"
http2_flag=
[ "$HTTP2" = 1 ] && http2_flag=--http2
# The run is bounded by --duration; timeout is a backstop for a hung server.
# --server-pid adds the server's CPU time during the measured phase.
timeout 600 taskset -c "$CLIENT_CPU" "$cg" bench enroll --dir "$work/ca" --server "$url" \
  --clients "$CLIENTS" --count "$COUNT" --duration "$DURATION" --server-pid "$server_pid" $http2_flag
