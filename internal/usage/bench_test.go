package usage

import (
	"fmt"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
)

// BenchmarkRecord is what usage adds to every request: Table.Record of
// the access-log entry, for one identity and for 10,000 identities, on 8
// goroutines at once (the lock is shared); the baseline in the same run is
// formatting the same entry as its access-log line, which every request
// already pays.
func BenchmarkRecord(b *testing.B) {
	entries := make([]accesslog.Entry, 10000)
	for i := range entries {
		entries[i] = accesslog.Entry{Time: time.Now(), Kind: accesslog.KindHTTP, Identity: fmt.Sprintf("spiffe://example.org/svc/client-%05d", i),
			Serial: "6f1c2a9b3e", Route: "api", Client: "127.0.0.1:51234", Status: 200, BytesIn: 120, BytesOut: 512,
			Method: "GET", Host: "api.example.org", Path: "/v1/pay", Decision: "allow", Reason: "allowed", Duration: time.Millisecond}
	}
	b.Run("baseline-accesslog-line", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 512)
			i := 0
			for pb.Next() {
				buf = entries[i%len(entries)].AppendJSON(buf[:0])
				i++
			}
		})
	})
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("record-%d-identities", n), func(b *testing.B) {
			tb := NewTable(Options{MaxEntries: 20000})
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					tb.Record(&entries[i%n])
					i++
				}
			})
		})
	}
}
