#!/usr/bin/env bash
# Time-to-ready of "certgate quickstart" (issue 4): from starting the
# process until it prints its --json line, that is until the CA, the
# server, the gateway (with its first revocation set from the change feed)
# and the demo API are up and the demo clients and the gateway are
# enrolled. Each round runs it on a new directory (the CA is created) and
# then again on the same directory (reused), stopping it with SIGINT and
# requiring exit 0 each time. Loopback only, free ports; the directories
# are removed at the end. The build is not timed ("go run" adds it).
#
# Settings (environment): RUNS (10).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/certgate-bench-quickstart.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/certgate" ./cmd/certgate

# once DIR: prints the milliseconds until the JSON line.
once() {
  local start end line
  start=$(date +%s%N)
  # exec: QS_PID is certgate itself, so SIGINT reaches it.
  coproc QS { exec env -u CERTGATE_PASSPHRASE "$work/certgate" quickstart --dir "$1" \
    --listen 127.0.0.1:0 --server-listen 127.0.0.1:0 --json 2>>"$work/stderr.log"; }
  local pid=$QS_PID
  read -r line <&"${QS[0]}"
  end=$(date +%s%N)
  case $line in "{"*) ;; *) echo "no JSON line; stderr:" >&2; cat "$work/stderr.log" >&2; exit 1 ;; esac
  kill -INT "$pid"
  wait "$pid" || { echo "quickstart exited $? after SIGINT" >&2; exit 1; }
  echo $(((end - start) / 1000000))
}

median_max() { sort -n | awk '{a[NR]=$1} END {printf "median %d ms, max %d ms (%d runs)\n", a[int((NR+1)/2)], a[NR], NR}'; }

: >"$work/new" && : >"$work/reused"
for i in $(seq "$RUNS"); do
  once "$work/qs$i" >>"$work/new"
  once "$work/qs$i" >>"$work/reused"
done
echo "new CA:     $(median_max <"$work/new")"
echo "reused DIR: $(median_max <"$work/reused")"
