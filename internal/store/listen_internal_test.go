package store

import "testing"

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

func TestSignalEventsSkipsSeenPositions(t *testing.T) {
	s := &SQL{evCh: make(chan struct{})}
	fired := func(pos int64) bool {
		ch := s.EventsChanged()
		s.signalEvents(pos)
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	for _, step := range []struct {
		pos  int64
		want bool
	}{
		{5, true},  // the writer's commit
		{5, false}, // its own notification coming back
		{4, false}, // older news
		{7, true},  // another replica
		{0, true},  // a reconnection: always, and forget
		{3, true},  // the database was restored to an earlier state
	} {
		if got := fired(step.pos); got != step.want {
			t.Fatalf("signalEvents(%d) woke = %v, want %v", step.pos, got, step.want)
		}
	}
}
