#!/usr/bin/env bash
# The peer comparison of issue 16: certgate's gateway against the strongest
# peers doing the same work, in one run, on the same certificates and
# upstream, per server CPU-second, every server pinned to one core:
#
#   full and resumed mTLS handshakes   gateway vs the bare Go server
#                                      ("certgate bench baseline --bare":
#                                      crypto/tls + a minimal responder) and
#                                      vs nginx
#   keep-alive proxied requests        gateway vs nginx, three configs:
#     all      all identity headers, JSON access log to a file (the
#              gateway's default config)
#     one      one identity header (X-Client-Identity), JSON log to a file
#     null     one identity header, log to /dev/null (gateway: path "-",
#              standard output sent to /dev/null; nginx: access_log off)
#
# Both nginx and the gateways log one JSON line per request with identity,
# serial, route, status and duration; nginx's buffer=64k flush=100ms is
# the gateway's batching (64 KiB buffer, lines out within 100 ms). nginx
# cannot send what it has no variable for: the intermediate the client
# sent (Client-Cert-Chain) and the SPIFFE ID in the URI SAN (it sends the
# subject DN as X-Client-Identity and in X-Forwarded-Client-Cert); so in
# "all" it does a little less than the gateway. Both configs are printed.
#
# Each comparison is one "certgate bench" run of ROUNDS rounds, alternating
# which server goes first; the report gives every round, the median ratio
# and each round's ratio (the spread), the median p99 latencies, and the
# load average before and after. At the end the gateways are stopped
# cleanly (SIGTERM) and their access logs must hold exactly one line per
# request they answered (warm-ups included), nginx's too: the script fails
# otherwise.
#
# Not by default, what a lower GC percentage costs the gateway (issue 16,
# idle connections: its memory side is GOGC=... scripts/bench-idle.sh): a
# second file-logging gateway with GOGC=$GC_ALT compared with the first
# (Go's default GOGC) on handshakes (gc-hs) and keep-alive requests with
# all identity headers (gc-ka).
#
# Settings (environment): ROUNDS (3), DURATION (5s), WARMUP (1s),
# CONCURRENCY (32), SERVER_CPU (0), CLIENT_CPU (1), KEEP (1 keeps the
# directory), BIN (a certgate binary instead of building one), PAIRS
# (default "hs-bare hs-nginx all one null"; also gc-hs gc-ka), GC_ALT
# (50). Installs nginx from apt if it is missing. 127.0.0.1 only; every
# step is bounded by a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONCURRENCY=${CONCURRENCY:-32}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KEEP=${KEEP:-0}
BIN=${BIN:-}
PAIRS=${PAIRS:-hs-bare hs-nginx all one null}
GC_ALT=${GC_ALT:-50}

. scripts/lib.sh
need_pinning servers
install_nginx
ngx=$(command -v nginx)
make_work "${TMPDIR:-/tmp}"

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
for g in file null gc; do
  "$cg" role grant --dir "$work/ca" gateway "spiffe://$td/gateway/$g" >/dev/null
  "$cg" token create --dir "$work/ca" --identity "spiffe://$td/gateway/$g" --role gateway 2>/dev/null >"$work/$g.token"
done

echo "== starting the upstream (CPU $CLIENT_CPU)" >&2
taskset -c "$CLIENT_CPU" "$cg" bench upstream --listen 127.0.0.1:0 >"$work/upstream.out" 2>"$work/upstream.log" &
pids+=($!)
upstream=$(wait_line "$work/upstream.out" 's/^upstream listening on //p' "${pids[-1]}")

# gateway NAME ACCESS_LOG_PATH ROUTES [GOGC]: a gateway on CPU $SERVER_CPU
# (GOGC: Go's default unless given); sets gw_pid and gw_addr.
one_header="    headers: {client_cert: false, client_cert_chain: false, xfcc: false, identity: true, serial: false}"
gateway() {
  local name=$1 path=$2 routes=$3 gogc=${4:-} port
  port=$(free_port)
  cat >"$work/gw-$name.yaml" <<EOF
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
  path: "$path"
  # every rotated file kept: the line check below counts them all (the
  # default keeps 5, fewer than a run with every pair writes; 0 is taken
  # as unset and gives that default too, although the reference says "any
  # number")
  max_backups: 100000
routes:
$routes
EOF
  local out=$work/gw-$name.out
  [ "$path" = - ] && out=/dev/null # the access log is standard output
  env ${gogc:+GOGC=$gogc} taskset -c "$SERVER_CPU" "$cg" gateway --config "$work/gw-$name.yaml" >"$out" 2>"$work/gw-$name.log" &
  gw_pid=$!
  pids+=("$gw_pid")
  wait_line "$work/gw-$name.log" '/gateway listening/p' "$gw_pid" >/dev/null
  gw_addr=127.0.0.1:$port
}
echo "== starting the gateways (CPU $SERVER_CPU)" >&2
gateway file "$work/gw-access.log" "  - name: all
    path_prefix: /all
    upstream: http://$upstream
    allow: [\"spiffe://$td/svc/*\"]
  - name: one
    path_prefix: /one
    upstream: http://$upstream
    allow: [\"spiffe://$td/svc/*\"]
$one_header"
gw=$gw_addr gw_pid_file=$gw_pid
gateway null - "  - name: one
    path_prefix: /one
    upstream: http://$upstream
    allow: [\"spiffe://$td/svc/*\"]
$one_header"
gwnull=$gw_addr gw_pid_null=$gw_pid
case " $PAIRS " in
  *" gc-"*)
    gateway gc "$work/gw-gc-access.log" "  - name: all
    path_prefix: /all
    upstream: http://$upstream
    allow: [\"spiffe://$td/svc/*\"]" "$GC_ALT"
    gwgc=$gw_addr gw_pid_gc=$gw_pid ;;
esac

echo "== starting the bare Go server (CPU $SERVER_CPU) with the gateway's certificate" >&2
taskset -c "$SERVER_CPU" "$cg" bench baseline --bare --listen 127.0.0.1:0 --cert "$work/gw-file/cert.pem" --key "$work/gw-file/key.pem" \
  --bundle "$work/ca/bundle.pem" >"$work/bare.out" 2>"$work/bare.log" &
bare_pid=$!
pids+=("$bare_pid")
bare=$(wait_line "$work/bare.out" 's/^baseline listening on //p' "$bare_pid")

echo "== starting nginx (CPU $SERVER_CPU) with the gateway's certificate" >&2
ngx_port=$(free_port) ngx_null_port=$(free_port)
mkdir -p "$work/nginx"
# The forwarding headers the gateway sets on every request, and the ones a
# client may not send (proxy_set_header replaces a client's copy).
fwd='proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header Forwarded "for=$remote_addr;proto=https;host=\"$host\"";
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header Host $host;
      proxy_set_header Connection "";
      proxy_http_version 1.1;'
one='proxy_set_header X-Client-Identity $ssl_client_s_dn;
      proxy_set_header Client-Cert "";
      proxy_set_header Client-Cert-Chain "";
      proxy_set_header X-Forwarded-Client-Cert "";
      proxy_set_header X-Client-Cert-Serial "";'
all='proxy_set_header Client-Cert ":$ssl_client_escaped_cert:";
      proxy_set_header Client-Cert-Chain "";
      proxy_set_header X-Forwarded-Client-Cert "Hash=$ssl_client_fingerprint;Subject=\"$ssl_client_s_dn\"";
      proxy_set_header X-Client-Identity $ssl_client_s_dn;
      proxy_set_header X-Client-Cert-Serial $ssl_client_serial;'
tlsconf="ssl_certificate $work/gw-file/cert.pem;
    ssl_certificate_key $work/gw-file/key.pem;
    ssl_client_certificate $work/ca/bundle.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;"
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  default_type application/json;
  log_format cg escape=json '{"schema":1,"time":"\$time_iso8601","kind":"http","request_id":"\$request_id","identity":"\$ssl_client_s_dn","serial":"\$ssl_client_serial","fingerprint":"\$ssl_client_fingerprint","client":"\$remote_addr:\$remote_port","tls_version":"\$ssl_protocol","resumed":"\$ssl_session_reused","method":"\$request_method","host":"\$host","path":"\$uri","route":"\$route","decision":"\$decision","status":\$status,"bytes_in":\$request_length,"bytes_out":\$bytes_sent,"duration_ms":\$request_time,"upstream_ms":"\$upstream_response_time","upstream":"\$upstream_addr"}';
  upstream up { server $upstream; keepalive 64; }
  server {
    listen 127.0.0.1:$ngx_port ssl;
    $tlsconf
    access_log $work/nginx/access.log cg buffer=64k flush=100ms;
    set \$route ""; set \$decision deny;
    location /all {
      set \$route all; set \$decision allow;
      proxy_pass http://up;
      $fwd
      $all
    }
    location /one {
      set \$route one; set \$decision allow;
      proxy_pass http://up;
      $fwd
      $one
    }
    location / { return 403 '{"error":{"code":"forbidden","message":"this identity is not allowed to make this request"}}'; }
  }
  server {
    listen 127.0.0.1:$ngx_null_port ssl;
    $tlsconf
    access_log off;
    location /one {
      proxy_pass http://up;
      $fwd
      $one
    }
    location / { return 403; }
  }
}
EOF
taskset -c "$SERVER_CPU" "$ngx" -e stderr -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx.out" 2>"$work/nginx.log" &
ngx_pid=$!
pids+=("$ngx_pid")
wait_port "$ngx_port"
wait_port "$ngx_null_port"

print_host
echo "nginx:    $("$ngx" -v 2>&1 | cut -d/ -f2), $(openssl version 2>/dev/null || echo OpenSSL)"
echo "servers:  gateway (file log) $gw pid $gw_pid_file, gateway (log to /dev/null) $gwnull pid $gw_pid_null,"
echo "          bare Go $bare pid $bare_pid, nginx 127.0.0.1:$ngx_port and :$ngx_null_port pid $ngx_pid; all on CPU $SERVER_CPU"
echo "client:   CPU $CLIENT_CPU, with the upstream $upstream and the idle certgate server"
echo "settings: ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONCURRENCY=$CONCURRENCY"
if [ "${PRINT_CONFIGS:-1}" = 1 ]; then
  echo; echo "---- gateway config (file log; the /dev/null gateway has path: - and route one only)"; cat "$work/gw-file.yaml"
  echo "---- nginx config"; cat "$work/nginx/nginx.conf"; echo "----"
fi

common=(--cert "$work/client/cert.pem" --key "$work/client/key.pem" --cacert "$work/ca/bundle.pem" --curve P256
  --duration "$DURATION" --warmup "$WARMUP" --concurrency "$CONCURRENCY" --rounds "$ROUNDS")
status=0
gw_answered=0 ngx_answered=0
# run TITLE BENCH-ARGS...: one comparison; adds up what the file-logging
# gateway and nginx's logging server answered.
run() {
  local title=$1
  shift
  echo
  echo "== $title"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  timeout 1200 taskset -c "$CLIENT_CPU" "$cg" bench "${common[@]}" "$@" >"$work/run.out" 2>&1 || status=1
  cat "$work/run.out"
  echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
  local n
  n=$(sed -n 's/^answered gateway: \([0-9]*\) requests.*/\1/p' "$work/run.out")
  gw_answered=$((gw_answered + ${n:-0}))
  n=$(sed -n 's/^answered nginx: \([0-9]*\) requests.*/\1/p' "$work/run.out")
  ngx_answered=$((ngx_answered + ${n:-0}))
}
for p in $PAIRS; do
  case $p in
    hs-bare) run "handshakes: gateway vs bare Go (GET /denied, 403 from each server)" --mode full,resumed --path /denied \
      --addr "$gw" --compare "$bare" --names gateway,bare-go --server-pid "$gw_pid_file" --compare-pid "$bare_pid" ;;
    hs-nginx) run "handshakes: gateway vs nginx (GET /denied, 403 from each server)" --mode full,resumed --path /denied \
      --addr "$gw" --compare "127.0.0.1:$ngx_port" --names gateway,nginx --server-pid "$gw_pid_file" --compare-pid "$ngx_pid" ;;
    all) run "keep-alive, all identity headers, JSON log to a file (gateway default config)" --mode keepalive --path /all/x \
      --addr "$gw" --compare "127.0.0.1:$ngx_port" --names gateway,nginx --server-pid "$gw_pid_file" --compare-pid "$ngx_pid" ;;
    one) run "keep-alive, one identity header, JSON log to a file" --mode keepalive --path /one/x \
      --addr "$gw" --compare "127.0.0.1:$ngx_port" --names gateway,nginx --server-pid "$gw_pid_file" --compare-pid "$ngx_pid" ;;
    null) run "keep-alive, one identity header, log to /dev/null (nginx: access_log off)" --mode keepalive --path /one/x \
      --addr "$gwnull" --compare "127.0.0.1:$ngx_null_port" --names gateway-null,nginx-nolog --server-pid "$gw_pid_null" --compare-pid "$ngx_pid" ;;
    gc-hs) run "handshakes: gateway (GOGC default) vs gateway GOGC=$GC_ALT (GET /denied, 403)" --mode full,resumed --path /denied \
      --addr "$gw" --compare "$gwgc" --names gateway,gateway-gogc$GC_ALT --server-pid "$gw_pid_file" --compare-pid "$gw_pid_gc" ;;
    gc-ka) run "keep-alive, all identity headers, JSON log to a file: gateway (GOGC default) vs gateway GOGC=$GC_ALT" --mode keepalive --path /all/x \
      --addr "$gw" --compare "$gwgc" --names gateway,gateway-gogc$GC_ALT --server-pid "$gw_pid_file" --compare-pid "$gw_pid_gc" ;;
    *) echo "bench-peers: unknown pair $p (hs-bare hs-nginx all one null gc-hs gc-ka)" >&2; exit 2 ;;
  esac
done

# Stop the file-logging gateway and nginx cleanly: every line must be in
# their logs.
echo
kill -TERM "$gw_pid_file" "$ngx_pid"
wait "$gw_pid_file" 2>/dev/null || true
wait "$ngx_pid" 2>/dev/null || true
# The gateway rotates its log at 100 MB (the default max_size_mb): count
# the rotated files too (about 270,000 lines fill one).
gw_lines=$( {
  cat "$work/gw-access.log"
  for f in "$work"/gw-access-*.log; do [ ! -e "$f" ] || cat "$f"; done
  for f in "$work"/gw-access-*.log.gz; do [ ! -e "$f" ] || zcat "$f"; done
} | wc -l)
rotated=$(find "$work" -maxdepth 1 -name 'gw-access-*' | wc -l)
ngx_lines=$(wc -l <"$work/nginx/access.log")
echo "access log lines: gateway $gw_lines (in $((rotated + 1)) files) for $gw_answered requests answered; nginx $ngx_lines for $ngx_answered"
if [ "$gw_lines" != "$gw_answered" ]; then
  echo "bench-peers: FAIL: the gateway's access log has $gw_lines lines for $gw_answered requests" >&2
  status=1
fi
dropped=$(grep -c 'access log lines dropped' "$work/gw-file.log" || true)
[ "$dropped" = 0 ] || { echo "bench-peers: the gateway reported dropped lines:" >&2; grep 'dropped' "$work/gw-file.log" >&2; status=1; }
exit $status
