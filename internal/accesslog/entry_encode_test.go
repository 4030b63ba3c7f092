package accesslog

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// appendTime must write what the layout does, for any time.
func TestAppendTimeMatchesLayout(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 2, 3, 4, 5, 6, 7000, time.FixedZone("x", -7*3600)),
	}
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(1<<36)-1<<35, r.Int64N(1e9)).In(time.FixedZone("y", r.IntN(86400)-43200)))
	}
	for _, tm := range times {
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format(timeLayout); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// appendString's plain-ASCII fast path and its escaping agree with a JSON
// decoder, and escape what the slow path always escaped.
func TestAppendStringRoundTrip(t *testing.T) {
	for _, s := range []string{"", "spiffe://example.org/svc/a", "127.0.0.1:443", "a\"b", "<&>", "x\\y", "tab\there",
		"\x00\x1f\x7f", "caf\u00e9", "bad\xffutf8", "line\u2028sep", "ok"} {
		out := appendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("appendString(%q) = %s: %v", s, out, err)
		}
		for _, c := range string(out) {
			if c == '<' || c == '>' || c == '&' {
				t.Fatalf("appendString(%q) = %s: not escaped", s, out)
			}
		}
		if back != s && s != "bad\xffutf8" {
			t.Fatalf("appendString(%q) decodes to %q", s, back)
		}
	}
}
