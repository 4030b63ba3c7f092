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

. scripts/lib.sh
make_work "${TMPDIR:-/tmp}"
build_certgate
init_ca --trust-domain bench.example.org

echo "== starting the server" >&2
start_server

print_host
echo "server:   $url (SQLite store on $(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || echo '?'))"
echo "run:      certgate bench revoke --gateways $GATEWAYS --revocations $REVOCATIONS"
# The run is bounded by --timeout; timeout(1) is a backstop.
timeout 900 "$cg" bench revoke --dir "$work/ca" --server "$url" --certgate "$cg" \
  --gateways "$GATEWAYS" --revocations "$REVOCATIONS" --timeout "$TIMEOUT" --work-dir "$work"
