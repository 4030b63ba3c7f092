// Package testca is a test-only certificate authority built in memory, one
// per test: a root, an intermediate under it, and leaves shaped by options
// (identity, extended key usage, validity window, key type, serial).
//
// It exists so tests never depend on committed certificate fixtures, which
// expire and hide what a test is about. It is not the real CA (see
// internal/ca): it enforces no policy, records nothing and its keys live
// only in memory. Only _test.go files and test helpers may import it.
package testca
