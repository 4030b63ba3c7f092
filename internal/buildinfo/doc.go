// Package buildinfo says which certgate this binary is: the module version,
// the VCS revision and commit time, whether the tree had local changes, and
// the Go toolchain, as the go command stamped them into the binary
// (runtime/debug.ReadBuildInfo). It is what `certgate version` and
// `certgate --version` print, so an operator can say exactly what runs.
//
// It reads nothing else: a binary built without VCS stamping (a linked git
// worktree, -buildvcs=false, a copy of the source without .git) says so
// instead of guessing.
package buildinfo
