#!/usr/bin/env bash
# Issuance against step-ca (issue 16), not in CI: certgate's enrollment
# (POST /v1/enroll: a one-time token and a CSR, P-256) against step-ca
# 0.30.2's POST /1.0/sign (a one-time JWK provisioner token and a CSR,
# P-256), per server CPU-second, both servers pinned to CPU SERVER_CPU and
# measured in alternating rounds in one run. Tokens and CSRs are prepared
# before each measurement (not measured): certgate's by "certgate bench
# enroll" through its admin API, step-ca's by scripts/stepca-load.py
# (ES256 tokens signed with the provisioner key that "step crypto jwe
# decrypt" takes out of ca.json). Both send over CLIENTS keep-alive
# connections opened before the clock starts; the load generators are
# pinned to CPU CLIENT_CPU. step-ca's requests are sent by "scripts/stepca-rekey
# -sign" (Go, standard library only, like "certgate bench enroll") after
# "stepca-load.py --sign-prepare" wrote them; LOADGEN=python sends them
# from stepca-load.py itself (requests, CLIENTS threads), which drove step-ca
# to only 29-40% of its core here.
#
# MODE=renew measures renewal on new connections instead: certgate's
# "certgate bench renew" (each renewal a new mTLS connection, full
# handshake, presenting the current certificate, a new P-256 key and CSR to
# POST /v1/renew, Connection: close) against step-ca's POST /1.0/rekey
# (the call that also rotates the key: a new mTLS connection presenting
# the current certificate, body {"csr": PEM} with a new P-256 key), sent by
# scripts/stepca-rekey (Go crypto/tls, CLIENTS goroutines, one connection
# per renewal, no session cache; a module of its own, standard library
# only) after "scripts/stepca-load.py --rekey-prepare" has enrolled the
# clients and made the CSRs (not measured). LOADGEN=python uses
# "stepca-load.py --rekey" (Python ssl, CLIENTS threads) instead, which
# drove step-ca to only about a quarter of its core here. Both print
# p50/p99 latency, dial to answer.
#
# Needs step-ca and step 0.30.2 on PATH or in STEPBIN:
#   CGO_ENABLED=0 go install github.com/smallstep/certificates/cmd/step-ca@v0.30.2
#   CGO_ENABLED=0 go install github.com/smallstep/cli/cmd/step@v0.30.2
# and python3 with cryptography and requests. Settings (environment):
# MODE (issue or renew), LOADGEN (go or python), KEX (default:
# the step-ca client offers Go's default key exchanges like "certgate bench
# renew", and step-ca picks X25519MLKEM768 where certgate's server picks
# X25519; x25519: the step-ca client offers X25519 only), ROUNDS (3), COUNT (2000 per round and server), CLIENTS (8), DURATION (20
# s, bounds each measurement), SERVER_CPU (0), CLIENT_CPU (1), BIN, KEEP.
# 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-issue}
LOADGEN=${LOADGEN:-go}
KEX=${KEX:-default}
case $MODE in
  issue) noun=enrollments ;;
  renew) noun=renewals ;;
  *) echo "bench-stepca: unknown MODE $MODE (issue, renew)" >&2; exit 2 ;;
esac
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-2000}
CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-20}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KEEP=${KEEP:-0}
BIN=${BIN:-}
STEPBIN=${STEPBIN:-}
[ -n "$STEPBIN" ] && PATH=$STEPBIN:$PATH
for c in step-ca step python3; do
  command -v "$c" >/dev/null || { echo "bench-stepca: $c is not installed (see the header)" >&2; exit 1; }
done

. scripts/lib.sh
need_pinning servers
make_work "${TMPDIR:-/tmp}"
build_certgate "$BIN"
init_ca --trust-domain bench.example.org --key-type ecdsa-p256
echo "== starting the certgate server (CPU $SERVER_CPU)" >&2
start_server taskset -c "$SERVER_CPU"

echo "== step ca init and step-ca (CPU $SERVER_CPU)" >&2
export STEPPATH=$work/step
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$work/step.pw"
sport=$(free_port)
step ca init --name bench --dns localhost --address "127.0.0.1:$sport" --provisioner admin \
  --password-file "$work/step.pw" --deployment-type standalone >/dev/null 2>&1
python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['authority']['provisioners'][0]['encryptedKey'])" "$STEPPATH/config/ca.json" |
  step crypto jwe decrypt --password-file "$work/step.pw" >"$work/prov.jwk" 2>/dev/null
chmod 600 "$work/prov.jwk"
cat "$STEPPATH/certs/root_ca.crt" "$STEPPATH/certs/intermediate_ca.crt" >"$work/step-bundle.pem"
taskset -c "$SERVER_CPU" step-ca "$STEPPATH/config/ca.json" --password-file "$work/step.pw" >"$work/step-ca.log" 2>&1 &
step_pid=$!
pids+=("$step_pid")
for _ in $(seq 1 300); do
  grep -q "Serving HTTPS" "$work/step-ca.log" && break
  kill -0 "$step_pid" 2>/dev/null || { cat "$work/step-ca.log" >&2; exit 1; }
  sleep 0.1
done

if [ "$LOADGEN" = go ]; then
  echo "== building scripts/stepca-rekey" >&2
  (cd scripts/stepca-rekey && go build -o "$work/stepca-rekey" .)
fi
print_host
echo "certgate: $url pid $server_pid (SQLite WAL, synchronous=FULL); step-ca $(step-ca version 2>/dev/null | head -1) https://localhost:$sport pid $step_pid (badger v2, its default); both on CPU $SERVER_CPU"
echo "settings: MODE=$MODE LOADGEN=$LOADGEN KEX=$KEX ROUNDS=$ROUNDS COUNT=$COUNT CLIENTS=$CLIENTS DURATION=${DURATION}s; load generators on CPU $CLIENT_CPU"
echo "load:     $(uptime)"

cg_run() {
  timeout 600 taskset -c "$CLIENT_CPU" "$cg" bench "${MODE/issue/enroll}" --dir "$work/ca" --server "$url" --clients "$CLIENTS" \
    --count "$COUNT" --duration "${DURATION}s" --server-pid "$server_pid" >"$work/cg.out" 2>&1 || true
  sed -n "s/.* \([0-9][0-9]*\) $noun per CPU-second\$/\1/p" "$work/cg.out"
}
step_run() {
  rekey=()
  if [ "$MODE" = renew ]; then
    rm -f "$work"/rekey-*.pem "$work"/rekey-*.json
    rekey=(--rekey "$work")
    [ "$LOADGEN" = go ] && rekey=(--rekey-prepare "$work")
  elif [ "$LOADGEN" = go ]; then
    rm -f "$work"/sign-*.json
    rekey=(--sign-prepare "$work")
  fi
  timeout 600 taskset -c "$CLIENT_CPU" python3 scripts/stepca-load.py "${rekey[@]}" "https://localhost:$sport" "$work/step-bundle.pem" admin \
    "$work/prov.jwk" "$step_pid" "$COUNT" "$CLIENTS" "$DURATION" >"$work/step.out" 2>&1 || true
  if [ "$MODE" = renew ] && [ "$LOADGEN" = go ]; then
    timeout 600 taskset -c "$CLIENT_CPU" "$work/stepca-rekey" "https://localhost:$sport" "$work/step-bundle.pem" \
      "$step_pid" "$COUNT" "$CLIENTS" "$DURATION" "$work" "$KEX" >>"$work/step.out" 2>&1 || true
  elif [ "$LOADGEN" = go ]; then
    timeout 600 taskset -c "$CLIENT_CPU" "$work/stepca-rekey" -sign "https://localhost:$sport" "$work/step-bundle.pem" \
      "$step_pid" "$COUNT" "$CLIENTS" "$DURATION" "$work" >>"$work/step.out" 2>&1 || true
  fi
  sed -n 's/.*per server CPU-second \([0-9][0-9]*\)$/\1/p' "$work/step.out"
}
ratios=()
status=0
for r in $(seq 1 "$ROUNDS"); do
  echo
  echo "== round $r (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ $((r % 2)) = 1 ]; then
    a=$(cg_run); b=$(step_run)
  else
    b=$(step_run); a=$(cg_run)
  fi
  grep -E "^(rate|server CPU|latency|errors)|$noun" "$work/cg.out" | sed 's/^/certgate: /' | head -5
  grep -E "issued|renewed|key exchanges|error" "$work/step.out" | sed 's/^/step-ca:  /'
  if [ -z "$a" ] || [ -z "$b" ] || [ "$b" = 0 ]; then
    echo "bench-stepca: round $r has no figure (see above)" >&2
    status=1
    continue
  fi
  ratio=$(python3 -c "print(f'{$a / $b:.2f}')")
  echo "round $r: certgate $a, step-ca $b $noun per server CPU-second: ${ratio}x"
  ratios+=("$ratio")
done
echo
echo "load:     $(uptime)"
[ ${#ratios[@]} -gt 0 ] && python3 -c "import statistics,sys; r=[float(x) for x in sys.argv[1:]]; print(f'$MODE per server CPU-second, certgate/step-ca: {statistics.median(r):.2f}x [' + ' '.join(sys.argv[1:]) + ']')" "${ratios[@]}"
exit $status
