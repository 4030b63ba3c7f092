#!/usr/bin/env bash
# What a Go program that uses certgatetls pays for it: how many packages
# certgatetls pulls in, the size of a five-line client built with it, and
# how long that client takes to build with an empty build cache (a fresh CI
# runner or a new developer). Run from anywhere in the repository:
#
#   scripts/measure-sdk.sh
#
# The client is built in a temporary directory inside the module (it imports
# the module by path, as a user's program would through a require), with a
# temporary GOCACHE removed at exit; GOMODCACHE is left alone, so modules
# are not downloaded again and only compilation is timed.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "$PWD/sdkmeasure.XXXXXX")
cache=$(mktemp -d)
trap 'rm -rf "$work" "$cache"' EXIT

cat >"$work/main.go" <<'EOF'
package main

import (
	"fmt"
	"log"
	"os"

	"github.com/certgate/certgate/certgatetls"
)

func main() {
	src, err := certgatetls.NewSource(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	resp, err := certgatetls.NewHTTPClient(src, certgatetls.ClientOptions{}).Get(os.Args[2])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status)
}
EOF

rel=./$(basename "$work")
deps=$(go list -deps ./certgatetls | wc -l)
drivers=$(go list -deps ./certgatetls | grep -cE '^(database/sql|modernc.org/sqlite|github.com/jackc/pgx|github.com/certgate/certgate/internal/store)' || true)
# Wall time depends on what else the machine does; the CPU time (user +
# system, of go and every compiler and linker it runs) much less.
TIMEFORMAT='%R %U %S'
times=$( { time GOCACHE=$cache go build -o "$work/client" "$rel" 2>&1 ; } 2>&1 )
[ -f "$work/client" ] || { echo "$times" >&2; exit 1; }
read -r wall user sys <<<"$(echo "$times" | tail -1)"
size=$(stat -c %s "$work/client")

echo "commit:                       $(git rev-parse --short HEAD)"
echo "go list -deps ./certgatetls:  $deps packages ($drivers of them store or database packages)"
echo "five-line client binary:      $size bytes ($(awk "BEGIN{printf \"%.1f\", $size/1048576}") MiB)"
echo "cold build (empty GOCACHE):   $wall s wall, $(awk "BEGIN{printf \"%.1f\", $user+$sys}") s CPU (user+sys)"
echo "load average:                 $(cut -d' ' -f1-3 /proc/loadavg)"
