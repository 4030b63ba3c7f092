#!/usr/bin/env bash
# The gateway benchmark of issue 3: full mTLS handshakes/s, resumed
# handshakes/s and keep-alive proxied requests/s of "certgate gateway"
# against the bare baseline ("certgate bench baseline": net/http over
# crypto/tls with RequireAndVerifyClientCert, httputil.ReverseProxy for
# proxying), in the same run, with the same certificates.
#
# It builds certgate, inits a CA (ECDSA P-256 root and intermediate) in a
# temporary directory, starts "certgate server" to enroll a client
# (spiffe://bench.example.org/svc/bench, P-256) and lets the gateway enroll
# itself (spiffe://bench.example.org/gateway/bench, P-256, host localhost);
# the baseline serves with the gateway's certificate and key files. Both
# servers are pinned to CPU $SERVER_CPU (GOMAXPROCS follows the affinity
# mask: 1) and run side by side, idle while the other is measured. The load
# generator, the plain-HTTP upstream and the certgate server (idle: the
# gateway only follows its change feed) are pinned to CPU $CLIENT_CPU.
#
# The gateway runs as in production: it follows the revocation feed, writes
# its access log (to a file), serves metrics. Handshake runs request /denied,
# which both servers answer themselves with 403 (no upstream involved);
# keep-alive runs request /bench, proxied to the upstream by both.
#
# "certgate bench" runs $ROUNDS rounds, each round every mode against both
# servers back to back, alternating which goes first, and prints every run
# with the server's CPU time (from /proc/PID/stat), then the median ratio
# gateway/baseline by wall-clock rate and by operations per server
# CPU-second. The second is the server's cost per operation: it holds even
# when one client core cannot saturate the server core (full handshakes cost
# the client about as much as the server).
#
# Settings (environment): ROUNDS (3), DURATION (5s, measured, per run),
# WARMUP (1s, per run, not measured), CONCURRENCY (16), CURVE (P256),
# MODES ("full resumed keepalive"), SERVER_CPU (0), CLIENT_CPU (1), KEEP (1
# keeps the directory and logs), BIN (a certgate binary to use instead of
# building one, e.g. to compare builds). 127.0.0.1 only; every step is
# bounded by a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONCURRENCY=${CONCURRENCY:-16}
CURVE=${CURVE:-P256}
MODES=${MODES:-full resumed keepalive}
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
"$cg" role grant --dir "$work/ca" gateway "spiffe://$td/gateway/bench" >/dev/null
"$cg" token create --dir "$work/ca" --identity "spiffe://$td/gateway/bench" --role gateway 2>/dev/null >"$work/gateway.token"

echo "== starting the upstream (CPU $CLIENT_CPU)" >&2
taskset -c "$CLIENT_CPU" "$cg" bench upstream --listen 127.0.0.1:0 >"$work/upstream.out" 2>"$work/upstream.log" &
pids+=($!)
upstream=$(wait_line "$work/upstream.out" 's/^upstream listening on //p' "${pids[-1]}")

echo "== starting the gateway (CPU $SERVER_CPU)" >&2
gw_port=$(free_port)
cat >"$work/gateway.yaml" <<EOF
listen: 127.0.0.1:$gw_port
trust_domain: $td
identity:
  dir: $work/gateway
  hosts: [localhost]
  token_file: $work/gateway.token
  key_type: ecdsa-p256
server:
  url: $server_url
metrics:
  listen: 127.0.0.1:0
access_log:
  path: $work/access.log
routes:
  - name: bench
    path_prefix: /bench
    upstream: http://$upstream
    allow: ["spiffe://$td/svc/*"]
EOF
taskset -c "$SERVER_CPU" "$cg" gateway --config "$work/gateway.yaml" >"$work/gateway.out" 2>"$work/gateway.log" &
gw_pid=$!
pids+=("$gw_pid")
wait_line "$work/gateway.log" '/gateway listening/p' "$gw_pid" >/dev/null

echo "== starting the baseline (CPU $SERVER_CPU) with the gateway's certificate" >&2
taskset -c "$SERVER_CPU" "$cg" bench baseline --listen 127.0.0.1:0 --cert "$work/gateway/cert.pem" --key "$work/gateway/key.pem" \
  --bundle "$work/ca/bundle.pem" --upstream "http://$upstream" --proxy-prefix /bench >"$work/baseline.out" 2>"$work/baseline.log" &
base_pid=$!
pids+=("$base_pid")
baseline=$(wait_line "$work/baseline.out" 's/^baseline listening on //p' "$base_pid")

echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -sr)"
echo "go:       $(go version 2>/dev/null | cut -d' ' -f3- || echo unknown)"
echo "servers:  gateway 127.0.0.1:$gw_port (pid $gw_pid), baseline $baseline (pid $base_pid), both on CPU $SERVER_CPU"
echo "client:   CPU $CLIENT_CPU, with the upstream $upstream and the idle certgate server"
common=(--addr "127.0.0.1:$gw_port" --compare "$baseline" --names gateway,baseline --server-pid "$gw_pid" --compare-pid "$base_pid"
  --cert "$work/client/cert.pem" --key "$work/client/key.pem" --cacert "$work/ca/bundle.pem" --curve "$CURVE"
  --duration "$DURATION" --warmup "$WARMUP" --concurrency "$CONCURRENCY" --rounds "$ROUNDS")
hs=()
for m in $MODES; do
  case $m in
    full|resumed) hs+=("$m") ;;
    keepalive) ;;
    *) echo "bench-gateway: unknown mode $m (full, resumed, keepalive)" >&2; exit 2 ;;
  esac
done
status=0
if [ ${#hs[@]} -gt 0 ]; then
  echo
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "== handshakes: GET /denied, answered 403 by each server itself"
  timeout 900 taskset -c "$CLIENT_CPU" "$cg" bench "${common[@]}" --mode "$(IFS=,; echo "${hs[*]}")" --path /denied || status=1
  echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
fi
if [[ " $MODES " == *" keepalive "* ]]; then
  echo
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "== keep-alive proxying: GET /bench, proxied to the upstream"
  timeout 900 taskset -c "$CLIENT_CPU" "$cg" bench "${common[@]}" --mode keepalive --path /bench || status=1
  echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
fi
exit $status
