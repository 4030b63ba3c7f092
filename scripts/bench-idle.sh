#!/usr/bin/env bash
# The idle-connection benchmark of issue 16: what certgate's gateway, the
# bare Go server ("certgate bench baseline --bare": crypto/tls and a
# minimal HTTP/1.1 responder, the floor of a Go server) and nginx hold for
# each mTLS keep-alive connection waiting for its next request, in one run,
# on the same certificates and upstream.
#
# For each connection count in CONNS and each round, every server is
# started fresh (a Go server keeps and reuses the heap of earlier
# connections, hiding their cost), "certgate bench idle" opens the
# connections (a full handshake each), sends one request on each (GET
# /all/x: proxied by the gateway and nginx with all identity headers and a
# JSON access log line, the gateway's default config; answered 403 by the
# bare server), holds them for SETTLE and reads the server's VmRSS against
# what it was before them, and for the Go servers the runtime's heap,
# stacks and goroutines from their metrics listener; then the server is
# stopped. The order of the servers rotates from round to round. The
# report gives KiB per idle connection per server and round, the median,
# the peak while they were opened (VmHWM above the RSS before them, per
# connection), and the ratios gateway/bare and gateway/nginx (median of the rounds'
# ratios, each round in brackets).
#
# Settings (environment): CONNS ("5000 20000"), ROUNDS (2), SETTLE (5s),
# CONCURRENCY (32 handshakes in flight), KEEP (1 keeps the directory), BIN
# (a certgate binary instead of building one), SERVERS ("gateway bare
# nginx"). A count above the open-file limit (RLIMIT_NOFILE, raised to its
# hard limit here) less 100 is lowered to it, and the report says so.
# The servers' idle timeouts are 15 minutes (opening 20,000 connections
# takes minutes under load), and a run fails when the server holds fewer
# open files than connections (it closed some).
# Installs nginx from apt if it is missing. 127.0.0.1 only; every step is
# bounded by a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-5000 20000}
ROUNDS=${ROUNDS:-2}
SETTLE=${SETTLE:-5s}
CONCURRENCY=${CONCURRENCY:-32}
KEEP=${KEEP:-0}
BIN=${BIN:-}
SERVERS=${SERVERS:-gateway bare nginx}

. scripts/lib.sh
install_nginx
ngx=$(command -v nginx)
ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
make_work "${TMPDIR:-/tmp}"

build_certgate "$BIN"
td=bench.example.org
server_port=$(free_port)
init_ca --trust-domain "$td" --key-type ecdsa-p256 --listen "127.0.0.1:$server_port"

echo "== starting the certgate server and enrolling the client" >&2
"$cg" server --dir "$work/ca" >"$work/server.out" 2>"$work/server.log" &
pids+=($!)
server_url=$(wait_line "$work/server.out" 's/^certgate server listening on //p' "${pids[-1]}")
"$cg" token create --dir "$work/ca" --identity "spiffe://$td/svc/bench" 2>/dev/null >"$work/client.token"
timeout 60 "$cg" enroll --token "$(cat "$work/client.token")" --out "$work/client" --key-type ecdsa-p256 >/dev/null
"$cg" role grant --dir "$work/ca" gateway "spiffe://$td/gateway/idle" >/dev/null
"$cg" token create --dir "$work/ca" --identity "spiffe://$td/gateway/idle" --role gateway 2>/dev/null >"$work/gw.token"

echo "== starting the upstream" >&2
"$cg" bench upstream --listen 127.0.0.1:0 >"$work/upstream.out" 2>"$work/upstream.log" &
pids+=($!)
upstream=$(wait_line "$work/upstream.out" 's/^upstream listening on //p' "${pids[-1]}")

gw_port=$(free_port) gw_metrics=$(free_port) bare_metrics=$(free_port) ngx_port=$(free_port)
cat >"$work/gw.yaml" <<EOF
listen: 127.0.0.1:$gw_port
trust_domain: $td
identity:
  dir: $work/gw
  hosts: [localhost]
  token_file: $work/gw.token
  key_type: ecdsa-p256
server:
  url: $server_url
timeouts:
  idle: 15m
metrics:
  listen: 127.0.0.1:$gw_metrics
access_log:
  path: "$work/gw-access.log"
routes:
  - name: all
    path_prefix: /all
    upstream: http://$upstream
    allow: ["spiffe://$td/svc/*"]
EOF

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $nofile;
pid $work/nginx/nginx.pid;
error_log stderr error;
# Twice the file limit: nginx closes idle keep-alive connections once
# fewer than worker_connections/16 are free (ngx_drain_connections).
events { worker_connections $((2 * nofile)); }
http {
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  keepalive_requests 1000000;
  keepalive_timeout 900s;
  default_type application/json;
  log_format cg escape=json '{"schema":1,"time":"\$time_iso8601","kind":"http","request_id":"\$request_id","identity":"\$ssl_client_s_dn","serial":"\$ssl_client_serial","fingerprint":"\$ssl_client_fingerprint","client":"\$remote_addr:\$remote_port","tls_version":"\$ssl_protocol","resumed":"\$ssl_session_reused","method":"\$request_method","host":"\$host","path":"\$uri","route":"all","decision":"allow","status":\$status,"bytes_in":\$request_length,"bytes_out":\$bytes_sent,"duration_ms":\$request_time,"upstream_ms":"\$upstream_response_time","upstream":"\$upstream_addr"}';
  upstream up { server $upstream; keepalive 64; }
  server {
    listen 127.0.0.1:$ngx_port ssl;
    ssl_certificate $work/gw/cert.pem;
    ssl_certificate_key $work/gw/key.pem;
    ssl_client_certificate $work/ca/bundle.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    access_log $work/nginx/access.log cg buffer=64k flush=100ms;
    location /all {
      proxy_pass http://up;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header Forwarded "for=\$remote_addr;proto=https;host=\"\$host\"";
      proxy_set_header X-Request-Id \$request_id;
      proxy_set_header Host \$host;
      proxy_set_header Connection "";
      proxy_http_version 1.1;
      proxy_set_header Client-Cert ":\$ssl_client_escaped_cert:";
      proxy_set_header Client-Cert-Chain "";
      proxy_set_header X-Forwarded-Client-Cert "Hash=\$ssl_client_fingerprint;Subject=\"\$ssl_client_s_dn\"";
      proxy_set_header X-Client-Identity \$ssl_client_s_dn;
      proxy_set_header X-Client-Cert-Serial \$ssl_client_serial;
    }
    location / { return 403; }
  }
}
EOF

# start NAME: starts a fresh server; sets srv_pid, srv_addr, srv_metrics.
start() {
  srv_metrics=
  case $1 in
    gateway)
      "$cg" gateway --config "$work/gw.yaml" >>"$work/gw.out" 2>"$work/gw.log" &
      srv_pid=$!
      wait_line "$work/gw.log" '/gateway listening/p' "$srv_pid" >/dev/null
      srv_addr=127.0.0.1:$gw_port srv_metrics=http://127.0.0.1:$gw_metrics/metrics ;;
    bare)
      "$cg" bench baseline --bare --listen 127.0.0.1:0 --metrics "127.0.0.1:$bare_metrics" --cert "$work/gw/cert.pem" \
        --key "$work/gw/key.pem" --bundle "$work/ca/bundle.pem" >"$work/bare.out" 2>"$work/bare.log" &
      srv_pid=$!
      srv_addr=$(wait_line "$work/bare.out" 's/^baseline listening on //p' "$srv_pid")
      srv_metrics=http://127.0.0.1:$bare_metrics/metrics ;;
    nginx)
      "$ngx" -e stderr -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx.out" 2>"$work/nginx.log" &
      srv_pid=$!
      wait_port "$ngx_port"
      srv_addr=127.0.0.1:$ngx_port ;;
    *) echo "bench-idle: unknown server $1 (gateway bare nginx)" >&2; exit 2 ;;
  esac
  pids+=("$srv_pid")
}

stop() {
  kill -TERM "$srv_pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
}

# The gateway's certificate is the one every server presents: enroll it.
start gateway
stop

print_host
echo "nginx:    $("$ngx" -v 2>&1 | cut -d/ -f2), $(openssl version 2>/dev/null || echo OpenSSL)"
echo "settings: CONNS=\"$CONNS\" ROUNDS=$ROUNDS SETTLE=$SETTLE CONCURRENCY=$CONCURRENCY SERVERS=\"$SERVERS\"; open-file limit $nofile"
echo "load:     $(uptime)"
echo
status=0
read -r -a servers <<<"$SERVERS"
results=$work/results
: >"$results"
for n in $CONNS; do
  if [ "$n" -gt $((nofile - 100)) ]; then
    echo "== $n connections need more than the open-file limit of $nofile (hard limit; raising it needs CAP_SYS_RESOURCE): measuring $((nofile - 100))"
    n=$((nofile - 100))
  fi
  for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order: round r starts with server (r-1) mod count.
    order=()
    for i in "${!servers[@]}"; do
      order+=("${servers[$(((i + round - 1) % ${#servers[@]}))]}")
    done
    for s in "${order[@]}"; do
      echo "== $n connections, round $round: $s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
      start "$s"
      args=(--addr "$srv_addr" --name "$s" --server-pid "$srv_pid" --cert "$work/client/cert.pem" --key "$work/client/key.pem"
        --cacert "$work/ca/bundle.pem" --conns "$n" --concurrency "$CONCURRENCY" --settle "$SETTLE" --path /all/x --timeout 15m)
      [ -n "$srv_metrics" ] && args+=(--metrics "$srv_metrics")
      if timeout 1000 "$cg" bench idle "${args[@]}" >"$work/idle.out" 2>&1; then
        sed -n 's/^idle-result /round='"$round"' /p' "$work/idle.out" >>"$results"
      else
        status=1
      fi
      sed '/^idle-result /d' "$work/idle.out"
      stop
    done
  done
done

echo
echo "load:     $(uptime)"
echo
echo "== KiB of server RSS per idle connection (median of the rounds; each round in brackets); ratios are the median of the rounds' ratios"
awk -v servers="$SERVERS" '
function kv(s, k,   i, n, a) { n = split(s, a, " "); for (i = 1; i <= n; i++) if (index(a[i], k "=") == 1) return substr(a[i], length(k) + 2); return "" }
function med(list,   a, n, i, j, t) { n = split(list, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
{ r = kv($0, "round"); s = kv($0, "name"); n = kv($0, "conns"); v = kv($0, "rss_kib")
  key = n SUBSEP s; val[n, s, r] = v; list[key] = list[key] " " v; conns[n] = 1; if (r > maxr) maxr = r
  pk = kv($0, "peak_kib"); if (pk != "") peak[key] = peak[key] " " pk
  h = kv($0, "memstats_heap_inuse_bytes"); if (h != "") heap[key] = heap[key] " " h
  st = kv($0, "memstats_stack_inuse_bytes"); if (st != "") stack[key] = stack[key] " " st }
END {
  ns = split(servers, sv, " ")
  for (n in conns) {
    for (i = 1; i <= ns; i++) { key = n SUBSEP sv[i]; if (!(key in list)) continue
      line = sprintf("%6d conns  %-8s %7.1f KiB [%s]", n, sv[i], med(list[key]), substr(list[key], 2))
      if (key in peak) line = line sprintf("   peak %.1f KiB [%s]", med(peak[key]), substr(peak[key], 2))
      if (key in heap) line = line sprintf("   runtime: heap in use %.1f KiB [%s], stacks %.1f KiB [%s]", med(heap[key]), substr(heap[key], 2), med(stack[key]), substr(stack[key], 2))
      print line }
    for (i = 2; i <= ns; i++) { rl = ""
      for (r = 1; r <= maxr; r++) if ((n, sv[1], r) in val && (n, sv[i], r) in val && val[n, sv[i], r] > 0) rl = rl " " sprintf("%.2f", val[n, sv[1], r] / val[n, sv[i], r])
      if (rl != "") printf "%6d conns  %s/%s %.2fx [%s]\n", n, sv[1], sv[i], med(rl), substr(rl, 2) }
  }
}' "$results"
exit $status
