package usage

import (
	"fmt"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
)

var t0 = time.Date(2030, 1, 2, 23, 59, 59, 0, time.UTC)

func entry(id, serial, route, client string, status int, at time.Time) *accesslog.Entry {
	return &accesslog.Entry{Time: at, Kind: accesslog.KindHTTP, Identity: id, Serial: serial, Route: route, Client: client, Status: status, BytesIn: 3, BytesOut: 7}
}

// TestTableBounded: past MaxEntries counters new keys are dropped and
// reported as dropped, existing keys still count; a cut starts again from
// zero and a pending report is returned again until acknowledged.
func TestTableBounded(t *testing.T) {
	tb := NewTable(Options{MaxEntries: 100})
	for i := range 1000 {
		tb.Record(entry(fmt.Sprintf("spiffe://example.org/svc/c%d", i), "1", "api", "127.0.0.1:1", 200, t0))
	}
	tb.Record(entry("spiffe://example.org/svc/c0", "1", "api", "127.0.0.1:1", 503, t0))
	tb.Record(entry("", "", "", "127.0.0.1:1", 401, t0)) // no identity: not counted
	r := tb.Next()
	if len(r.Entries) != 100 || r.Dropped != 900 {
		t.Fatalf("report has %d entries and %d dropped, want 100 and 900", len(r.Entries), r.Dropped)
	}
	if e := r.Entries[0]; e.Identity != "spiffe://example.org/svc/c0" || e.Requests != [6]int64{0, 0, 1, 0, 0, 1} || e.BytesIn != 6 || e.BytesOut != 14 || e.Source != "127.0.0.1" || e.Day != "2030-01-02" {
		t.Errorf("first entry = %+v", e)
	}
	tb.Record(entry("spiffe://example.org/svc/x", "1", "api", "127.0.0.1:1", 200, t0.Add(time.Second)))
	if again := tb.Next(); again.ID != r.ID {
		t.Fatalf("unacknowledged report not returned again")
	}
	tb.Ack(r.ID)
	next := tb.Next()
	if next.ID == r.ID || len(next.Entries) != 1 || next.Dropped != 0 || next.Entries[0].Day != "2030-01-03" {
		t.Fatalf("next report = %+v; want one entry on the next day, nothing dropped", next)
	}
	tb.Ack(next.ID)
	if tb.Next() != nil {
		t.Error("a report with nothing to send")
	}
}

// TestTableSharing: one certificate from two hosts within the window is
// reported once per window; hosts outside the window do not count, nor
// does another port of the same host.
func TestTableSharing(t *testing.T) {
	tb := NewTable(Options{MaxSources: 1, Window: time.Minute})
	id := "spiffe://example.org/svc/a"
	tb.Record(entry(id, "ab", "api", "127.0.0.1:1000", 200, t0))
	tb.Record(entry(id, "ab", "api", "127.0.0.1:2000", 200, t0.Add(time.Second)))
	tb.Record(entry(id, "cd", "api", "127.0.0.2:1000", 200, t0.Add(time.Second)))   // another certificate
	tb.Record(entry(id, "ab", "api", "127.0.0.3:1000", 200, t0.Add(2*time.Minute))) // the first host is out of the window
	if r := tb.Next(); len(r.Sharing) != 0 {
		t.Fatalf("sharing reported without sharing: %+v", r.Sharing)
	} else {
		tb.Ack(r.ID)
	}
	tb.Record(entry(id, "ab", "api", "127.0.0.2:1000", 200, t0.Add(2*time.Minute+time.Second)))
	tb.Record(entry(id, "ab", "api", "127.0.0.3:1000", 200, t0.Add(2*time.Minute+2*time.Second)))
	r := tb.Next()
	if len(r.Sharing) != 1 {
		t.Fatalf("%d sharing reports, want 1: %+v", len(r.Sharing), r.Sharing)
	}
	if s := r.Sharing[0]; s.Serial != "ab" || fmt.Sprint(s.Sources) != "[127.0.0.2 127.0.0.3]" || s.Window != "1m0s" {
		t.Errorf("sharing = %+v", s)
	}
}
