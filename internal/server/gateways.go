package server

import (
	"sort"
	"sync"
	"time"
)

// gatewayView is what this server replica knows of one gateway (or admin)
// identity: its change feed streams and its usage reports. It is kept in
// memory: another replica knows the gateways connected to it.
type gatewayView struct {
	Identity     string
	Streams      int       // feed streams open now
	StreamSince  time.Time // when the current oldest one opened
	StreamFrom   int64     // the position it asked to start after
	LastReport   time.Time // the last usage report received
	Reports      int64
	LastReportOK bool
}

type gatewayBook struct {
	mu sync.Mutex
	m  map[string]*gatewayView
}

func (b *gatewayBook) get(id string) *gatewayView {
	if b.m == nil {
		b.m = map[string]*gatewayView{}
	}
	g := b.m[id]
	if g == nil {
		g = &gatewayView{Identity: id}
		b.m[id] = g
	}
	return g
}

// streamOpened records a feed stream and returns the func that closes it.
func (b *gatewayBook) streamOpened(id string, now time.Time, after int64) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.get(id)
	if g.Streams == 0 {
		g.StreamSince, g.StreamFrom = now, after
	}
	g.Streams++
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.m[id].Streams--
	}
}

func (b *gatewayBook) reported(id string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.get(id)
	g.LastReport = now
	g.Reports++
}

// list returns a copy of every gateway seen, by identity.
func (b *gatewayBook) list() []gatewayView {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]gatewayView, 0, len(b.m))
	for _, g := range b.m {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}
