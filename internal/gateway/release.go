package gateway

import (
	"runtime/debug"
	"time"
)

// Memory after a burst of connections. Opening connections allocates
// ~80 KiB each (the handshake, the first request), of which ~20 KiB stays
// while the connection is idle; the rest is garbage the collector frees
// at its next cycle, but the runtime keeps the pages it freed: its
// scavenger returns only what exceeds the heap goal (twice the live heap
// once it passes 16 MiB, gc.go), so the process stays at the highest the heap
// reached while the connections were opened, between once and twice what
// they hold (docs/benchmarks.md, idle connections). A lower GOGC would
// cost every handshake and request 10-15% to shrink that.
//
// Instead, once a burst is over, the gateway returns it: when the open
// connections grew by at least releaseMinNew and a quarter since the last
// release (or since the fewest open after it) and no handshake completed
// during the last releaseEvery, it
// runs one garbage collection and gives the free pages back
// (debug.FreeOSMemory). That costs one collection per burst, when the
// gateway is quiet; a steady load (handshakes every second, or
// connections that do not stay open) never triggers it.
const (
	releaseEvery  = time.Second
	releaseMinNew = 1000
)

// releasePolicy decides, every releaseEvery, whether to release.
type releasePolicy struct {
	minNew int
	base   int    // open connections at the last release, or fewer since
	lastHS uint64 // handshakes at the last check
}

// due reports whether to release now, given the open connections and the
// handshakes completed so far.
func (r *releasePolicy) due(open int, handshakes uint64) bool {
	quiet := handshakes == r.lastHS
	r.lastHS = handshakes
	r.base = min(r.base, open)
	grown := open - r.base
	if !quiet || grown < r.minNew || grown < r.base/4 {
		return false
	}
	r.base = open
	return true
}

// releaseLoop runs the policy until the gateway closes. It runs where
// connections are parked (a poller): elsewhere each idle connection keeps
// a goroutine, whose stack is most of what it holds.
func (g *Gateway) releaseLoop() {
	defer g.wg.Done()
	tick := time.NewTicker(releaseEvery)
	defer tick.Stop()
	r := releasePolicy{minNew: releaseMinNew}
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-tick.C:
		}
		g.releaseStep(&r)
	}
}

func (g *Gateway) releaseStep(r *releasePolicy) {
	defer g.recovered(panicRelease)
	if n := g.releaseMin.Load(); n > 0 {
		r.minNew = int(n)
	}
	open := g.Connections()
	if r.due(open, g.handshakes.Load()) {
		start := time.Now()
		releaseMemory()
		g.log.Info("memory returned after a burst of connections", "connections", open, "took", time.Since(start))
	}
}

// releaseMemory is debug.FreeOSMemory; a variable for tests.
var releaseMemory = debug.FreeOSMemory
