package gateway

import (
	"crypto/x509"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

// The verified-leaf cache (trust.signedBy): a leaf whose signature was
// checked under a verified issuer is not checked again, and nothing else
// is skipped.
func TestVerifiedLeafCache(t *testing.T) {
	ca := testca.New(t, td)
	now := time.Now()
	chain := func(l *testca.Leaf) []*x509.Certificate { return []*x509.Certificate{l.Cert, ca.Intermediate} }
	// warm builds a trust whose intermediate is already verified (by a
	// chain build for another leaf), so the next leaves take the fast path.
	warm := func(t *testing.T) *trust {
		tr := newTrust(td, []*x509.Certificate{ca.Root}, nil)
		if _, err := tr.verifyChain(chain(ca.Issue(t, withSvc("warm"))), now); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	counts := func(tr *trust) [2]uint64 { return [2]uint64{tr.leafHits.Load(), tr.leafMiss.Load()} }
	mustVerify := func(t *testing.T, tr *trust, certs []*x509.Certificate) {
		t.Helper()
		if _, err := tr.verifyChain(certs, now); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("miss then hit, another leaf misses", func(t *testing.T) {
		tr := warm(t)
		a, b := ca.Issue(t, withSvc("a")), ca.Issue(t, withSvc("b"))
		mustVerify(t, tr, chain(a))
		if c := counts(tr); c != [2]uint64{0, 1} {
			t.Fatalf("first full verification of a: hits, misses = %v, want [0 1]", c)
		}
		mustVerify(t, tr, chain(a))
		if c := counts(tr); c != [2]uint64{1, 1} {
			t.Fatalf("a again: hits, misses = %v, want [1 1]", c)
		}
		mustVerify(t, tr, chain(b))
		if c := counts(tr); c != [2]uint64{1, 2} {
			t.Fatalf("b: hits, misses = %v, want [1 2]", c)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		tr := warm(t)
		tr.maxLeaves = 4
		var leaves []*testca.Leaf
		for range 10 {
			l := ca.Issue(t, withSvc("n"))
			leaves = append(leaves, l)
			mustVerify(t, tr, chain(l))
			if n := tr.cachedLeaves(); n > 4 {
				t.Fatalf("%d leaves cached, bound 4", n)
			}
		}
		if c := counts(tr); c != [2]uint64{0, 10} {
			t.Fatalf("hits, misses = %v, want [0 10]", c)
		}
		// 6 of the 10 were dropped: each costs a signature check again,
		// and is then cached again within the bound.
		for _, l := range leaves {
			mustVerify(t, tr, chain(l))
		}
		if c := counts(tr); c[0]+c[1] != 20 || c[1] < 16 || tr.cachedLeaves() > 4 {
			t.Fatalf("second pass: hits, misses = %v, cached %d; want at least 6 more misses, at most 4 cached", c, tr.cachedLeaves())
		}
	})

	t.Run("a different leaf with the same serial", func(t *testing.T) {
		tr := warm(t)
		serial := big.NewInt(0x5e51a1)
		a := ca.Issue(t, withSvc("a"), testca.WithSerial(serial))
		mustVerify(t, tr, chain(a))
		mustVerify(t, tr, chain(a))
		// A forger whose intermediate has the same name issues a leaf with
		// the same serial and identity: its bytes differ, so it misses, and
		// its signature is not our intermediate's.
		forged := testca.New(t, td).Issue(t, withSvc("a"), testca.WithSerial(serial))
		before := counts(tr)
		_, err := tr.verifyChain(chain(forged), now)
		if err == nil || err.Reason != ReasonUnknownAuthority {
			t.Fatalf("forged leaf with a cached leaf's serial: %v, want unknown_authority", err)
		}
		if c := counts(tr); c[0] != before[0] {
			t.Fatalf("forged leaf counted as a hit: %v -> %v", before, c)
		}
		// Our CA's second certificate with that serial (another key):
		// checked, then cached under its own bytes.
		b := ca.Issue(t, withSvc("a"), testca.WithSerial(serial))
		mustVerify(t, tr, chain(b))
		if c := counts(tr); c[1] != before[1]+2 {
			t.Fatalf("hits, misses = %v after %v: the forged and the second leaf must both miss", c, before)
		}
		if tr.cachedLeaves() != 2 {
			t.Fatalf("%d leaves cached, want 2 (a and b)", tr.cachedLeaves())
		}
	})

	t.Run("an issuer no longer verified does not serve its leaves", func(t *testing.T) {
		tr := warm(t)
		a := ca.Issue(t, withSvc("a"))
		mustVerify(t, tr, chain(a))
		// The known intermediates change (a CA rotation): the leaves go.
		tr.setIntermediates(nil)
		if tr.cachedLeaves() != 0 {
			t.Fatalf("%d leaves cached after the intermediates changed", tr.cachedLeaves())
		}
		// After the intermediate's end the fast path is not taken at all,
		// cached leaf or not.
		mustVerify(t, tr, chain(a))
		if _, err := tr.verifyChain(chain(a), ca.Intermediate.NotAfter.Add(time.Hour)); err == nil || err.Reason != ReasonExpired {
			t.Fatalf("after the intermediate expired: %v", err)
		}
	})
}

// The cache in the gateway: full handshakes of the same certificate hit
// it, and a hit still gets every check of the handshake.
func TestVerifiedLeafCacheInHandshakes(t *testing.T) {
	e := newEnv(t, quiet())
	now := e.clock.Now()
	leaf := e.ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(-time.Hour), now.Add(time.Hour)))
	// A new client (no session cache) per request: full handshakes.
	get := func() int {
		t.Helper()
		resp, err := e.client(leaf, false).Get(e.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.TLS.DidResume {
			t.Fatal("resumed: the test needs full handshakes")
		}
		return resp.StatusCode
	}
	tr := func() *trust { return e.gw.rt.Load().trust }
	for range 3 {
		if s := get(); s != http.StatusOK {
			t.Fatalf("status %d", s)
		}
	}
	if h := tr().leafHits.Load(); h < 1 {
		t.Fatalf("three full handshakes of one certificate: %d cache hits", h)
	}

	t.Run("reload drops it", func(t *testing.T) {
		if tr().cachedLeaves() == 0 {
			t.Fatal("nothing cached before the reload")
		}
		if err := e.gw.ReloadFrom(e.cfgPath); err != nil {
			t.Fatal(err)
		}
		if n := tr().cachedLeaves(); n != 0 {
			t.Fatalf("%d leaves cached after a reload", n)
		}
		for range 3 {
			get()
		}
	})

	t.Run("a revoked leaf is refused on a hit", func(t *testing.T) {
		e.revoked.Update(revocation.NewSet(1, e.clock.Now(), revocation.SerialOf(leaf.Cert)))
		t.Cleanup(func() { e.revoked.Update(revocation.NewSet(2, e.clock.Now())) })
		hits := tr().leafHits.Load()
		e.refusedWith(leaf, false, ReasonRevoked)
		if tr().leafHits.Load() == hits {
			t.Fatal("the refused handshake did not hit the cache: the test shows nothing")
		}
	})

	t.Run("an expired leaf is refused while cached", func(t *testing.T) {
		if tr().cachedLeaves() == 0 {
			t.Fatal("the leaf is not cached: the test shows nothing")
		}
		e.clock.Set(leaf.Cert.NotAfter.Add(time.Second))
		e.refusedWith(leaf, false, ReasonExpired)
	})
}

// cachedLeaves is the number of leaves in the verified-leaf cache.
func (t *trust) cachedLeaves() int {
	t.leafMu.RLock()
	defer t.leafMu.RUnlock()
	return len(t.leaves)
}
