package audit

import (
	"encoding/hex"
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

// The hashes of a chain are stored: Link's bytes never change. These are
// the hashes of chain(3) as Link computed them when chains were first
// written (bytes.Buffer), kept when it was rewritten with append.
func TestLinkGolden(t *testing.T) {
	want := []string{
		"67202b0cf89ab30d4ca17f92a75663145dc496c918f33e35583c3e11c8952f85",
		"0659c53a42b931bc82298b5e08f50c6badc019262e7268edc3ed5ed6440d6548",
		"8c6014076554b52f3ee80290748bc0aa8cafc4ba678da5c3a4806e6215706843",
	}
	for i, r := range chain(3) {
		if got := hex.EncodeToString(r.Hash); got != want[i] {
			t.Errorf("record %d: hash %s, want %s", r.Seq, got, want[i])
		}
	}
}

// BenchmarkLink hashes an issuance's record as the server writes it.
func BenchmarkLink(b *testing.B) {
	r := Next(nil, Entry{Time: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), Actor: "spiffe://bench.example.org/admin/a", Action: ActionIssue,
		Subject: "5f0c3a9be1d24c7f8a6b0e2d9c1f4a37",
		Detail: `{"fingerprint":"3f1b6c0e9a2d4f8b7c5e1a0d9b8c7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a","identity":"spiffe://bench.example.org/bench/1234",` +
			`"not_after":"2026-11-28T12:00:00Z","obtained":"enroll","profile":"client","renewed_from":"","token":"0123456789abcdef01234567"}`})
	b.ReportAllocs()
	for b.Loop() {
		Link(r)
	}
}
