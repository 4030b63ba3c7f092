#!/usr/bin/env bash
# Cold build of "go run ./cmd/certgate quickstart" (issue 13): what a new
# user waits for on a fresh clone. GOMODCACHE and GOCACHE are new empty
# directories (GOFLAGS=-modcacherw so they can be removed), so the time
# includes downloading every module from the module proxy and compiling
# the standard library and every dependency. Timed in three parts: "go mod
# download" (the network), "go build" (compile and link) and the
# quickstart until it prints its --json line (start). The compile's action
# graph (-debug-actiongraph) is summed per module to say what dominates.
# Prints the load average before and after. Everything is removed at the end.
#
# Settings (environment): KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/certgate-coldbuild.XXXXXX")
qs_pid=
cleanup() {
  if [ -n "$qs_pid" ]; then kill -INT "$qs_pid" 2>/dev/null || true; wait "$qs_pid" 2>/dev/null || true; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"; fi
}
trap cleanup EXIT
export GOMODCACHE="$work/mod" GOCACHE="$work/cache" GOFLAGS=-modcacherw
mkdir -p "$GOMODCACHE" "$GOCACHE"

echo "go:           $(go version)"
echo "cores:        $(nproc)"
echo "load before:  $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s%N)
go mod download
t1=$(date +%s%N)
# "go run" is "go build" into a temporary directory, then run: the two are
# timed apart so the build's action graph can be kept (go run discards it).
go build -debug-actiongraph="$work/actions.json" -o "$work/certgate" ./cmd/certgate
t2=$(date +%s%N)
coproc QS { exec env -u CERTGATE_PASSPHRASE "$work/certgate" quickstart \
  --dir "$work/qs" --listen 127.0.0.1:0 --server-listen 127.0.0.1:0 --json 2>>"$work/stderr.log"; }
qs_pid=$QS_PID
read -r line <&"${QS[0]}" || true
t3=$(date +%s%N)
case $line in "{"*) ;; *) echo "no JSON line from quickstart; stderr:" >&2; cat "$work/stderr.log" >&2; exit 1 ;; esac
echo "load after:   $(cut -d' ' -f1-3 /proc/loadavg)"
echo "download:     $(((t1 - t0) / 1000000)) ms (go mod download, $(find "$GOMODCACHE/cache/download" -name '*.zip' | wc -l) module zips)"
echo "build:        $(((t2 - t1) / 1000000)) ms (go build ./cmd/certgate: compile and link, cold)"
echo "start:        $(((t3 - t2) / 1000000)) ms (quickstart until its --json line: new CA, server, gateway, demo)"
echo "total:        $(((t3 - t0) / 1000000)) ms (what a first go run ./cmd/certgate quickstart costs)"
python3 - "$work/actions.json" <<'PY'
import json, sys, collections
acts = json.load(open(sys.argv[1]))
# Each action that ran a tool records its wall time (CmdReal) and CPU
# time (CmdUser + CmdSys) in nanoseconds.
cpu_mod = collections.Counter()
cpu_pkg = collections.Counter()
real_pkg = collections.Counter()
link = 0.0
def module(p):
    first = p.split("/")[0]
    if "." not in first:
        return "std"
    n = {"github.com": 3, "golang.org": 3, "google.golang.org": 2, "modernc.org": 2, "go.yaml.in": 3, "gopkg.in": 2}.get(first, 1)
    return "/".join(p.split("/")[:n])
for a in acts:
    if not a.get("CmdReal"):
        continue
    cpu = (a.get("CmdUser", 0) + a.get("CmdSys", 0)) / 1e9
    if a.get("Mode") == "build" and a.get("Package"):
        p = a["Package"]
        cpu_pkg[p] += cpu
        real_pkg[p] += a["CmdReal"] / 1e9
        cpu_mod[module(p)] += cpu
    elif a.get("Mode") == "link":
        link += a["CmdReal"] / 1e9
total = sum(cpu_mod.values())
if total == 0:
    print("the action graph recorded no command times")
    sys.exit(0)
print(f"compile CPU:  {total:.0f} s summed over {len(cpu_pkg)} compiled packages; link {link:.1f} s wall")
print("compile CPU by module (seconds, share):")
for m, d in cpu_mod.most_common(8):
    print(f"  {d:7.1f} s  {100*d/total:4.1f} %  {m}")
print("slowest packages (compile CPU s / wall s):")
for p, d in cpu_pkg.most_common(8):
    print(f"  {d:7.1f} / {real_pkg[p]:6.1f}  {p}")
PY
