// Package drain counts an http.Server's connections by state, so that a
// graceful shutdown can say what it drained: how many requests were in
// flight and how many idle connections it closed. It is the shutdown log
// line of every long-running certgate command that serves HTTP, and
// nothing else.
package drain

import (
	"net"
	"net/http"
	"sync"
)

// Conns tracks connections; set an http.Server's ConnState to its Track.
// The zero value is ready.
type Conns struct {
	m sync.Map // net.Conn -> http.ConnState
}

// Track is an http.Server ConnState hook.
func (c *Conns) Track(conn net.Conn, st http.ConnState) {
	switch st {
	case http.StateClosed, http.StateHijacked:
		c.m.Delete(conn)
	default:
		c.m.Store(conn, st)
	}
}

// Count returns how many connections are serving a request (active, new
// ones included: a request is on its way) and how many are idle.
func (c *Conns) Count() (active, idle int) {
	c.m.Range(func(_, v any) bool {
		if v == http.StateIdle {
			idle++
		} else {
			active++
		}
		return true
	})
	return active, idle
}
