#!/usr/bin/env bash
# Builds the certgate OCI image: a FROM scratch image holding only the
# static, CGO-free certgate binary (deploy/container/Containerfile), with
# buildah, or podman when buildah is not installed (both are Debian
# packages). No base image is pulled. The image runs the quickstart by
# default; any other command is given as arguments:
#   podman run --rm -p 8443:8443 certgate:dev
#   podman run --rm -v /srv/certgate:/data certgate:dev server --dir /data
#
# Settings (environment): IMAGE (certgate:dev), ARCH (the Go GOARCH,
# default this machine's), OCI_ARCHIVE (also write the image to this
# oci-archive file).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-certgate:dev}
ARCH=${ARCH:-$(go env GOARCH)}
if command -v buildah >/dev/null; then
  build() { buildah bud --quiet --isolation chroot --platform "linux/$ARCH" -t "$IMAGE" -f "$1/Containerfile" "$1"; }
  push() { buildah push --quiet "$IMAGE" "oci-archive:$1"; }
elif command -v podman >/dev/null; then
  build() { podman build --quiet --platform "linux/$ARCH" -t "$IMAGE" -f "$1/Containerfile" "$1"; }
  push() { podman save --quiet --format oci-archive -o "$1" "$IMAGE"; }
else
  echo "build-image: neither buildah nor podman is installed (apt-get install buildah)" >&2
  exit 1
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/certgate-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp deploy/container/Containerfile "$ctx/"
mkdir "$ctx/data"
# Static: no libc to find in an empty image.
CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags='-s -w' -o "$ctx/certgate" ./cmd/certgate
build "$ctx" >/dev/null
if [ -n "${OCI_ARCHIVE:-}" ]; then
  push "$OCI_ARCHIVE"
fi
echo "$IMAGE"
