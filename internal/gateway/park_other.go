//go:build !linux

package gateway

import "time"

// canPark: without a poller a parked connection waits on a new goroutine
// (goServe) until its idle timeout.
const canPark = false

// poller is Linux's (park_linux.go); elsewhere nothing parks, and a
// connection's wait moves to a new goroutine with a small stack instead.
type poller struct{}

func newPoller(*Gateway) (*poller, error)                     { return nil, nil }
func (*poller) park(*tracked, func(*tracked), time.Time) bool { return false }
func (*poller) unpark(*tracked) bool                          { return false }
func (*poller) count() int                                    { return 0 }
func (*poller) shutdown() []*tracked                          { return nil }
func (*poller) run()                                          {}
