package audit

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func chain(n int) []Record {
	var out []Record
	var prev *Record
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for i := range n {
		r := Next(prev, Entry{Time: t0.Add(time.Duration(i) * time.Second), Actor: "spiffe://example.org/admin/a", Action: ActionIssue, Subject: fmt.Sprint(i), Detail: `{"n":1}`})
		out = append(out, r)
		prev = &out[len(out)-1]
	}
	return out
}

func verify(recs []Record) error {
	var v Verifier
	for _, r := range recs {
		if err := v.Add(r); err != nil {
			return err
		}
	}
	return nil
}

func TestVerify(t *testing.T) {
	if err := verify(chain(5)); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func([]Record) []Record
		want string
	}{
		"edited subject": {func(r []Record) []Record { r[2].Subject = "x"; return r },
			"audit: record 3: hash mismatch: contents changed after it was written"},
		"edited time": {func(r []Record) []Record { r[0].Time = r[0].Time.Add(time.Nanosecond); return r },
			"audit: record 1: hash mismatch: contents changed after it was written"},
		"edited and rehashed": {func(r []Record) []Record { r[1].Actor = "mallory"; r[1].Hash = Link(r[1]); return r },
			"audit: record 3: previous-hash link does not match the record before it (record inserted, deleted or reordered)"},
		"deleted": {func(r []Record) []Record { return append(r[:1], r[2:]...) },
			"audit: record 2: expected record 2, found 3 (record deleted or reordered)"},
		"reordered": {func(r []Record) []Record { r[1], r[2] = r[2], r[1]; return r },
			"audit: record 2: expected record 2, found 3 (record deleted or reordered)"},
		"renumbered after delete": {func(r []Record) []Record {
			r = append(r[:1], r[2:]...)
			for i := range r {
				r[i].Seq = int64(i + 1)
			}
			return r
		}, "audit: record 2: previous-hash link does not match the record before it (record inserted, deleted or reordered)"},
	} {
		t.Run(name, func(t *testing.T) {
			err := verify(tc.edit(chain(5)))
			if err == nil || !errors.Is(err, ErrBroken) || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}
