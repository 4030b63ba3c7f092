#!/usr/bin/env bash
# Cross-builds release binaries of certgate, static and CGO-free, for
# linux, darwin and windows on amd64 and arm64, into OUT as
# certgate_VERSION_OS_ARCH[.exe], with SHA256SUMS beside them (check with
# "sha256sum -c SHA256SUMS" in OUT). VERSION defaults to "git describe".
# Builds are reproducible: -trimpath, no build ID, the commit stamped by
# -buildvcs.
#
# Settings (environment): OUT (dist), VERSION, TARGETS (space-separated
# OS/ARCH pairs; default all six).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
TARGETS=${TARGETS:-"linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64"}
# A linked git worktree or a tarball has no VCS stamp to give; a clone does.
buildvcs=false
if git rev-parse --git-dir >/dev/null 2>&1 && [ -d "$(git rev-parse --git-dir)/objects" ]; then
  buildvcs=auto
fi

mkdir -p "$OUT"
names=()
for t in $TARGETS; do
  os=${t%/*} arch=${t#*/}
  name="certgate_${VERSION}_${os}_${arch}"
  [ "$os" = windows ] && name="$name.exe"
  echo "building $name" >&2
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=$buildvcs -ldflags='-s -w -buildid=' -o "$OUT/$name" ./cmd/certgate
  names+=("$name")
done
(cd "$OUT" && sha256sum "${names[@]}" >SHA256SUMS)
echo "$OUT/SHA256SUMS" >&2
