package certgatetls_test

import (
	"context"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/ca"
)

// The set stays current by itself, following the feed or pulling, and
// keeps working across a rotation of the service's own certificate: after
// the rotation the old certificate is revoked, so only a refresh made with
// the new one can succeed.
func TestRevocationsFollowServerAndSource(t *testing.T) {
	for _, mode := range []certgatetls.RevocationMode{certgatetls.RevocationFeed, certgatetls.RevocationPull} {
		t.Run(string(mode), func(t *testing.T) { testRevocationsFollowServerAndSource(t, mode) })
	}
}

func testRevocationsFollowServerAndSource(t *testing.T, mode certgatetls.RevocationMode) {
	d := newDemo(t)
	dir, first, err := d.issueDir("svc", "/gateway/svc", ca.GatewayProfile)
	if err != nil {
		t.Fatal(err)
	}
	src, err := certgatetls.NewSource(dir, certgatetls.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	revs, err := certgatetls.StartRevocations(context.Background(), certgatetls.RevocationOptions{
		ServerURL: d.ServerURL + "/", Source: src, Refresh: 20 * time.Millisecond, Mode: mode,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer revs.Close()
	if revs.Mode() != mode {
		t.Fatalf("mode %q, want %q", revs.Mode(), mode)
	}
	if revs.Len() != 0 || time.Since(revs.Updated()) > time.Minute {
		t.Fatalf("initial set: %d entries, updated %s", revs.Len(), revs.Updated())
	}
	waitLen := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); revs.Len() != n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("revoked set has %d entries, want %d", revs.Len(), n)
			}
		}
	}
	_, victim := d.issueTLS(t, "/svc/victim", ca.ClientProfile)
	if err := d.revoke(victim); err != nil {
		t.Fatal(err)
	}
	waitLen(1)

	serial := d.renew(t, dir)
	for deadline := time.Now().Add(5 * time.Second); src.Current().Serial != serial; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("source did not load the renewed certificate")
		}
	}
	if err := d.revoke(first.Record.Serial); err != nil {
		t.Fatal(err)
	}
	waitLen(2)
	if err := revs.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh with the renewed certificate: %v", err)
	}
	if err := revs.Check(first.Cert); err == nil || err.Error() != "certgatetls: client certificate is revoked: serial "+first.Record.Serial {
		t.Fatalf("Check(old certificate) = %v", err)
	}
}
