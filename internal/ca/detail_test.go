package ca

import (
	"encoding/json"
	"testing"
	"time"
)

// TestIssueDetailJSON: the audit detail of an issuance encodes as the map
// it was before issueDetail, byte for byte, so entries written before and
// after read the same.
func TestIssueDetailJSON(t *testing.T) {
	for _, d := range []issueDetail{
		{},
		{
			Fingerprint: "ab12", Identity: "spiffe://example.org/svc/a", NotAfter: time.Date(2026, 12, 6, 22, 0, 0, 123456789, time.UTC),
			Obtained: "enroll", Profile: "client", Token: "0123456789abcdef0123456789abcdef",
		},
		{
			Identity: `spiffe://example.org/"q"\<&>` + "\u2028\x01é", NotAfter: time.Date(2049, 12, 31, 23, 59, 59, 0, time.FixedZone("x", 3600)),
			Obtained: "renew", Profile: "gateway", RenewedFrom: "7f", Token: "\xff",
		},
	} {
		got, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(map[string]any{
			"identity": d.Identity, "profile": d.Profile, "obtained": d.Obtained,
			"not_after": d.NotAfter, "fingerprint": d.Fingerprint,
			"token": d.Token, "renewed_from": d.RenewedFrom,
		})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("issueDetail encodes as\n%s\nthe map as\n%s", got, want)
		}
	}
}
