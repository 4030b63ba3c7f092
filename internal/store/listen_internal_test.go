package store

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseNotification(t *testing.T) {
	for _, tc := range []struct {
		payload, schema string
		pos             int64
		ok              bool
	}{
		{"public 42", "public", 42, true},
		{"certgate_test_ab 7", "certgate_test_ab", 7, true},
		{"my schema 9", "my schema", 9, true}, // a quoted schema name with a space
		{" 3", "", 3, true},                   // no current schema
		{"other 42", "public", 0, false},
		{"public", "public", 0, false},
		{"public x", "public", 0, false},
		{"public 0", "public", 0, false},
		{"public -1", "public", 0, false},
		{"42", "public", 0, false}, // the payload of a certgate before the schema was added
		{"", "", 0, false},
	} {
		pos, ok := parseNotification(tc.payload, tc.schema)
		if pos != tc.pos || ok != tc.ok {
			t.Errorf("parseNotification(%q, %q) = %d, %v; want %d, %v", tc.payload, tc.schema, pos, ok, tc.pos, tc.ok)
		}
	}
}

func TestNotifiedSkipsSeenPositions(t *testing.T) {
	s := &SQL{evCh: make(chan struct{})}
	fired := func(wake func(int64), pos int64) bool {
		ch := s.EventsChanged()
		wake(pos)
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	for i, step := range []struct {
		local bool // the writer of this process, else a notification
		pos   int64
		want  bool
	}{
		{true, 5, true},    // this process commits up to 5
		{false, 5, false},  // its own notification coming back
		{false, 4, false},  // older news
		{false, 7, true},   // another replica
		{false, 6, true},   // still wakes: notifications are not remembered
		{false, 1e9, true}, // a bogus notification wakes once...
		{false, 8, true},   // ...and silences nothing after it
		{true, 9, true},    // this process again
		{false, 0, true},   // a reconnection: always, and forget
		{false, 3, true},   // the database was restored to an earlier state
	} {
		wake := s.notified
		if step.local {
			wake = s.signalEvents
		}
		if got := fired(wake, step.pos); got != step.want {
			t.Fatalf("step %d (local %v, position %d): woke = %v, want %v", i, step.local, step.pos, got, step.want)
		}
	}
}

func FuzzParseNotification(f *testing.F) {
	for _, seed := range []string{"public 42", "certgate_test_ab 7", " 3", "42", "", "a b c 9", "public -1", "public 99999999999999999999"} {
		f.Add(seed, "public")
	}
	f.Fuzz(func(t *testing.T, payload, schema string) {
		pos, ok := parseNotification(payload, schema)
		if !ok {
			if pos != 0 {
				t.Fatalf("parseNotification(%q, %q) = %d, false", payload, schema, pos)
			}
			return
		}
		if pos <= 0 || payload != schema+" "+strconv.FormatInt(pos, 10) && !strings.HasPrefix(payload, schema+" ") {
			t.Fatalf("parseNotification(%q, %q) = %d, true", payload, schema, pos)
		}
	})
}
