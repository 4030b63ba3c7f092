#!/usr/bin/env bash
# The access log's cost (issue 18): keep-alive proxied requests/s of two
# "certgate gateway" processes, identical but for their access log: one
# writes a file only, the other the same file plus the syslog output to a
# local rsyslog (RFC 5424, octet-counted, over TCP), in the same run, with
# the same certificates, measured by "certgate bench" per server
# CPU-second as in scripts/bench-gateway.sh (which this follows; see it for
# the method). Both gateways are pinned to CPU $SERVER_CPU; the load
# generator, the upstream, rsyslog and the idle certgate server to CPU
# $CLIENT_CPU (the collector's work is not the gateway's).
#
# Settings (environment): ROUNDS (3), DURATION (5s), WARMUP (1s),
# CONCURRENCY (16), CURVE (P256), SERVER_CPU (0), CLIENT_CPU (1), KEEP, BIN
# as in bench-gateway.sh. Needs rsyslogd (Debian rsyslog).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONCURRENCY=${CONCURRENCY:-16}
CURVE=${CURVE:-P256}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KEEP=${KEEP:-0}
BIN=${BIN:-}

. scripts/lib.sh
need_pinning servers
make_work "${TMPDIR:-/tmp}"

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.

build_certgate "$BIN"
td=bench.example.org
server_port=$(free_port)
init_ca --trust-domain "$td" --key-type ecdsa-p256 --listen "127.0.0.1:$server_port"

echo "== starting the certgate server (CPU $CLIENT_CPU) and enrolling the client" >&2
taskset -c "$CLIENT_CPU" "$cg" server --dir "$work/ca" >"$work/server.out" 2>"$work/server.log" &
pids+=($!)
server_url=$(wait_line "$work/server.out" 's/^certgate server listening on //p' "${pids[-1]}")
"$cg" token create --dir "$work/ca" --identity "spiffe://$td/svc/bench" 2>/dev/null >"$work/client.token"
timeout 60 "$cg" enroll --token "$(cat "$work/client.token")" --out "$work/client" --key-type ecdsa-p256 >/dev/null
for g in file syslog; do
  "$cg" token create --dir "$work/ca" --identity "spiffe://$td/gateway/$g" 2>/dev/null >"$work/$g.token"
done

echo "== starting the upstream (CPU $CLIENT_CPU)" >&2
taskset -c "$CLIENT_CPU" "$cg" bench upstream --listen 127.0.0.1:0 >"$work/upstream.out" 2>"$work/upstream.log" &
pids+=($!)
upstream=$(wait_line "$work/upstream.out" 's/^upstream listening on //p' "${pids[-1]}")

echo "== starting rsyslog (CPU $CLIENT_CPU), plain TCP, writing what it receives" >&2
command -v rsyslogd >/dev/null || { echo "bench-accesslog: rsyslogd is needed (apt-get install rsyslog)" >&2; exit 1; }
syslog_port=$(free_port)
mkdir -p "$work/rsyslog"
cat >"$work/rsyslog/rsyslog.conf" <<EOF
global(workDirectory="$work/rsyslog" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="$syslog_port")
template(name="msgonly" type="string" string="%msg%\n")
action(type="omfile" file="$work/rsyslog/received.log" template="msgonly")
EOF
taskset -c "$CLIENT_CPU" rsyslogd -n -f "$work/rsyslog/rsyslog.conf" -i "$work/rsyslog/pid" >"$work/rsyslog.log" 2>&1 &
pids+=($!)

# start_gateway NAME EXTRA: a gateway on CPU $SERVER_CPU with EXTRA under
# access_log; sets gw_pid and gw_addr.
start_gateway() {
  local name=$1 extra=$2 port
  port=$(free_port)
  cat >"$work/$name.yaml" <<EOF
listen: 127.0.0.1:$port
trust_domain: $td
identity:
  dir: $work/gw-$name
  hosts: [localhost]
  token_file: $work/$name.token
  key_type: ecdsa-p256
server:
  url: $server_url
metrics:
  listen: 127.0.0.1:0
access_log:
  path: $work/$name-access.log
$extra
routes:
  - name: bench
    path_prefix: /bench
    upstream: http://$upstream
    allow: ["spiffe://$td/svc/*"]
EOF
  taskset -c "$SERVER_CPU" "$cg" gateway --config "$work/$name.yaml" >"$work/$name.out" 2>"$work/$name.log" &
  gw_pid=$!
  pids+=("$gw_pid")
  wait_line "$work/$name.log" '/gateway listening/p' "$gw_pid" >/dev/null
  gw_addr=127.0.0.1:$port
}
echo "== starting the gateways (CPU $SERVER_CPU)" >&2
start_gateway file ""
file_pid=$gw_pid file_addr=$gw_addr
start_gateway syslog "  syslog:
    address: 127.0.0.1:$syslog_port"
syslog_pid=$gw_pid syslog_addr=$gw_addr

echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -sr)"
echo "go:       $(go version 2>/dev/null | cut -d' ' -f3- || echo unknown)"
echo "servers:  file+syslog $syslog_addr (pid $syslog_pid), file only $file_addr (pid $file_pid), both on CPU $SERVER_CPU"
echo "client:   CPU $CLIENT_CPU, with the upstream $upstream, rsyslog 127.0.0.1:$syslog_port and the idle certgate server"
echo
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== keep-alive proxying: GET /bench, proxied to the upstream"
status=0
timeout 900 taskset -c "$CLIENT_CPU" "$cg" bench --addr "$syslog_addr" --compare "$file_addr" --names file+syslog,file-only \
  --server-pid "$syslog_pid" --compare-pid "$file_pid" \
  --cert "$work/client/cert.pem" --key "$work/client/key.pem" --cacert "$work/ca/bundle.pem" --curve "$CURVE" \
  --duration "$DURATION" --warmup "$WARMUP" --concurrency "$CONCURRENCY" --rounds "$ROUNDS" --mode keepalive --path /bench || status=1
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
sleep 2
echo "lines: file-only gateway $(wc -l <"$work/file-access.log"), file+syslog gateway $(wc -l <"$work/syslog-access.log"), at rsyslog $(wc -l <"$work/rsyslog/received.log" 2>/dev/null || echo 0)"
exit $status
