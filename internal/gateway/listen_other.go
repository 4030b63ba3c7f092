//go:build !linux

package gateway

import "syscall"

// inheritKeepAlive: elsewhere each accepted connection gets its
// keep-alive options from Go, as net.Listen's do.
const inheritKeepAlive = false

func setListenerKeepAlive(string, string, syscall.RawConn) error { return nil }
