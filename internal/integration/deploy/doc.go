// Package deploy holds the packaging tests: the systemd units, the release
// script and the container image, each built from this tree. They build
// certgate several times over (cross-compiled release archives, a static
// image), so they live in their own test binary with its own time budget,
// apart from internal/integration's runtime tests.
//
// The package has no code of its own: only tests.
package deploy
