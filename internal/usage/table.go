package usage

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/wire"
)

// Options configure a Table. Zero fields get defaults.
type Options struct {
	MaxEntries int           // counters between two reports (10000)
	MaxSources int           // distinct hosts a certificate may be used from within Window (1)
	Window     time.Duration // of the sharing check (1 minute)
}

type key struct {
	identity, serial, route string
	day                     int64 // days since 1970-01-01, UTC
}

type counter struct {
	requests        [6]int64
	bytesIn, bytout int64
	last            time.Time
	source          string
}

// Table counts requests per identity, certificate, route and day.
type Table struct {
	o Options

	mu      sync.Mutex
	cur     map[key]*counter
	dropped int64
	sharing []wire.SharingReport
	hosts   map[string]*hostSet // serial -> recent source hosts
	pending *wire.UsageReport   // cut and not yet acknowledged
	latest  time.Time           // the latest entry time recorded
}

// hostSet is the source hosts a certificate was seen from recently.
type hostSet struct {
	identity string
	hosts    []hostSeen
	reported time.Time // the last sharing report about it
}

type hostSeen struct {
	host string
	at   time.Time
}

// NewTable returns an empty Table.
func NewTable(o Options) *Table {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10000
	}
	if o.MaxSources <= 0 {
		o.MaxSources = 1
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	return &Table{o: o, cur: map[key]*counter{}, hosts: map[string]*hostSet{}}
}

// Record counts one access-log entry. Entries without an identity (no
// client certificate) are not usage of anyone and are left out.
func (t *Table) Record(e *accesslog.Entry) {
	if e.Identity == "" {
		return
	}
	host := e.Client
	if h, _, err := net.SplitHostPort(e.Client); err == nil {
		host = h
	}
	class := 0
	if e.Status >= 100 && e.Status < 600 {
		class = e.Status / 100
	}
	at := e.Time.UTC()
	k := key{identity: e.Identity, serial: e.Serial, route: e.Route, day: at.Unix() / 86400}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.cur[k]
	if c == nil {
		if len(t.cur) >= t.o.MaxEntries {
			t.dropped++
			return
		}
		c = &counter{}
		t.cur[k] = c
	}
	if at.After(t.latest) {
		t.latest = at
	}
	c.requests[class]++
	c.bytesIn += e.BytesIn
	c.bytout += e.BytesOut
	if !at.Before(c.last) {
		c.last, c.source = at, host
	}
	if e.Serial != "" && host != "" && e.Auth == "" {
		t.checkSharing(e.Identity, e.Serial, host, at)
	}
}

// checkSharing notes that serial was used from host at at, and queues a
// sharing report when more than MaxSources hosts used it within Window
// (at most one per certificate per Window). The hosts tracked are bounded
// like the counters: a new certificate past MaxEntries is not tracked
// until old ones expire.
func (t *Table) checkSharing(identity, serial, host string, at time.Time) {
	hs := t.hosts[serial]
	if hs == nil {
		if len(t.hosts) >= t.o.MaxEntries {
			t.expireHosts(at)
			if len(t.hosts) >= t.o.MaxEntries {
				return
			}
		}
		hs = &hostSet{identity: identity}
		t.hosts[serial] = hs
	}
	from := at.Add(-t.o.Window)
	live := hs.hosts[:0]
	found := false
	for _, h := range hs.hosts {
		if h.host == host {
			h.at, found = at, true
		}
		if !h.at.Before(from) {
			live = append(live, h)
		}
	}
	hs.hosts = live
	if !found {
		if len(hs.hosts) > wire.MaxSharing || len(hs.hosts) >= 32 {
			hs.hosts = hs.hosts[1:] // bounded; the threshold is at most 32
		}
		hs.hosts = append(hs.hosts, hostSeen{host, at})
	}
	if len(hs.hosts) <= t.o.MaxSources || (!hs.reported.IsZero() && at.Sub(hs.reported) < t.o.Window) {
		return
	}
	if len(t.sharing) >= wire.MaxSharing {
		return
	}
	hs.reported = at
	srcs := make([]string, len(hs.hosts))
	for i, h := range hs.hosts {
		srcs[i] = h.host
	}
	sort.Strings(srcs)
	t.sharing = append(t.sharing, wire.SharingReport{Identity: identity, Serial: serial, Sources: srcs, Window: t.o.Window.String(), Time: at})
}

// expireHosts forgets certificates not seen within Window of now.
func (t *Table) expireHosts(now time.Time) {
	from := now.Add(-t.o.Window)
	for s, hs := range t.hosts {
		if n := len(hs.hosts); n == 0 || hs.hosts[n-1].at.Before(from) {
			delete(t.hosts, s)
		}
	}
}

// Next returns the report to send: the one not yet acknowledged if there
// is one, else the counts since the last report, cut into a new report
// with a fresh ID (the counting starts again from zero). It returns nil
// when there is nothing to send.
func (t *Table) Next() *wire.UsageReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending != nil {
		return t.pending
	}
	if len(t.cur) == 0 && t.dropped == 0 && len(t.sharing) == 0 {
		return nil
	}
	r := &wire.UsageReport{ID: newID(), Entries: make([]wire.UsageEntry, 0, len(t.cur)), Dropped: t.dropped, Sharing: t.sharing}
	for k, c := range t.cur {
		r.Entries = append(r.Entries, wire.UsageEntry{
			Identity: k.identity, Serial: k.serial, Route: k.route,
			Day:      time.Unix(k.day*86400, 0).UTC().Format(time.DateOnly),
			Requests: c.requests, BytesIn: c.bytesIn, BytesOut: c.bytout, LastSeen: c.last, Source: c.source,
		})
	}
	sort.Slice(r.Entries, func(i, j int) bool {
		a, b := &r.Entries[i], &r.Entries[j]
		if a.Identity != b.Identity {
			return a.Identity < b.Identity
		}
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.Route != b.Route {
			return a.Route < b.Route
		}
		return a.Serial < b.Serial
	})
	t.cur = make(map[key]*counter, len(t.cur))
	t.dropped, t.sharing = 0, nil
	t.expireHosts(t.latest)
	t.pending = r
	return r
}

// Ack forgets the pending report with that ID: the server recorded it.
func (t *Table) Ack(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending != nil && t.pending.ID == id {
		t.pending = nil
	}
}

// Len returns the counters accumulating and whether a report is pending.
func (t *Table) Len() (counters int, pending bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur), t.pending != nil
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
