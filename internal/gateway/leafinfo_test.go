package gateway

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

// The leaf record cache (leafinfo.go): one record per certificate object,
// bounded, only for identities in the trust domain.
func TestLeafInfoCache(t *testing.T) {
	ca := testca.New(t, td)
	want := func(t *testing.T, li *leafInfo, l *testca.Leaf, id string) {
		t.Helper()
		sum := sha256.Sum256(l.Cert.Raw)
		if li.id != id || li.serial != revocation.SerialOf(l.Cert) || li.fingerprint != hex.EncodeToString(sum[:]) {
			t.Fatalf("record %+v, want %s %s %x", li, id, revocation.SerialOf(l.Cert), sum)
		}
	}

	t.Run("hit on the same certificate", func(t *testing.T) {
		c := &leafInfos{max: maxCachedLeafInfos}
		a := ca.Issue(t, withSvc("a"))
		for i := range 3 {
			li, err := c.get(a.Cert, td)
			if err != nil {
				t.Fatal(err)
			}
			want(t, li, a, "spiffe://"+td+"/svc/a")
			if h, m := c.hits.Load(), c.miss.Load(); h != uint64(i) || m != 1 {
				t.Fatalf("get %d: hits, misses = %d, %d", i, h, m)
			}
		}
		// Another parse of the same bytes is another object: a miss, with
		// the same record.
		again, err := x509.ParseCertificate(a.Cert.Raw)
		if err != nil {
			t.Fatal(err)
		}
		li, _ := c.get(again, td)
		want(t, li, a, "spiffe://"+td+"/svc/a")
		if c.miss.Load() != 2 {
			t.Fatalf("misses %d, want 2", c.miss.Load())
		}
	})

	t.Run("bounded", func(t *testing.T) {
		c := &leafInfos{max: 4}
		var leaves []*testca.Leaf
		for i := range 10 {
			l := ca.Issue(t, withSvc(fmt.Sprint("n", i)))
			leaves = append(leaves, l)
			if _, err := c.get(l.Cert, td); err != nil {
				t.Fatal(err)
			}
			if n := c.len(); n > 4 {
				t.Fatalf("%d records cached, bound 4", n)
			}
		}
		// The dropped ones are computed again, the same.
		for i, l := range leaves {
			li, err := c.get(l.Cert, td)
			if err != nil {
				t.Fatal(err)
			}
			want(t, li, l, fmt.Sprint("spiffe://", td, "/svc/n", i))
		}
		if c.len() > 4 || c.miss.Load() < 16 {
			t.Fatalf("cached %d, misses %d: want at most 4 cached and 6 misses more", c.len(), c.miss.Load())
		}
	})

	t.Run("an identity outside the trust domain is refused and not cached", func(t *testing.T) {
		c := &leafInfos{max: 4}
		l := ca.Issue(t, testca.WithID("spiffe://other.org/svc/a"))
		for range 2 {
			if _, err := c.get(l.Cert, td); err == nil || err.Reason != ReasonBadIdentity {
				t.Fatalf("foreign identity: %v, want bad_identity", err)
			}
		}
		if c.len() != 0 || c.hits.Load() != 0 {
			t.Fatalf("cached %d, hits %d after a refusal", c.len(), c.hits.Load())
		}
	})
}

// The cache in the gateway: resumed handshakes of one certificate hit it,
// a hit still gets the revocation check, the peer record is the
// certificate's, and a reload drops the cache.
func TestLeafInfoCacheInResumedHandshakes(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	leaf := e.ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(-time.Hour), now.Add(time.Hour)))
	cfg := e.tlsConfig(leaf)
	cfg.NextProtos = []string{"http/1.1"}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	// connect sends one request on a new connection and returns the status
	// line's code and whether the session was resumed.
	connect := func() (string, bool) {
		t.Helper()
		c, err := tls.Dial("tcp", e.addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		b := make([]byte, 12)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return string(b[9:]), c.ConnectionState().DidResume
	}
	tr := func() *trust { return e.gw.rt.Load().trust }
	if status, resumed := connect(); status != "200" || resumed {
		t.Fatalf("first connection: %s resumed=%v", status, resumed)
	}
	if tr().leafInfos.len() != 0 {
		t.Fatal("a full handshake's certificate cached")
	}
	// The first resumption parses the certificate (crypto/tls's cache held
	// none after the full handshake) and caches its record; the next ones
	// get the same object.
	for i := range 3 {
		hits := tr().leafInfos.hits.Load()
		if status, resumed := connect(); status != "200" || !resumed {
			t.Fatalf("resumed connection %d: %s resumed=%v", i, status, resumed)
		}
		if got := tr().leafInfos.hits.Load() - hits; i > 0 && got != 2 || i == 0 && got != 1 {
			t.Fatalf("resumed connection %d: %d hits, want %d (check and peer record)", i, got, min(i+1, 2))
		}
	}
	if tr().leafInfos.len() != 1 {
		t.Fatalf("%d records cached for one certificate", tr().leafInfos.len())
	}
	sum := sha256.Sum256(leaf.Cert.Raw)
	e.waitLog(func(m map[string]any) bool {
		return m["resumed"] == true && m["status"] == float64(200) && m["identity"] == "spiffe://"+td+"/svc/a" &&
			m["serial"] == revocation.SerialOf(leaf.Cert) && m["fingerprint"] == hex.EncodeToString(sum[:])
	})

	t.Run("revoked while cached: the next resumed handshake is refused", func(t *testing.T) {
		if tr().leafInfos.len() == 0 {
			t.Fatal("nothing cached: the test shows nothing")
		}
		e.revoked.Update(revocation.NewSet(1, now, revocation.SerialOf(leaf.Cert)))
		hits := tr().leafInfos.hits.Load()
		if status, resumed := connect(); status != "403" || !resumed {
			t.Fatalf("revoked: %s resumed=%v, want a resumed handshake answered 403", status, resumed)
		}
		if tr().leafInfos.hits.Load() == hits {
			t.Fatal("the refused handshake did not hit the cache: the test shows nothing")
		}
		e.waitLog(func(m map[string]any) bool { return m["reason"] == "revoked" && m["resumed"] == true })
		e.revoked.Update(revocation.NewSet(2, now))
	})

	t.Run("reload drops it", func(t *testing.T) {
		connect() // the refused session is not resumed: a full handshake
		connect() // resumed
		if tr().leafInfos.len() == 0 {
			t.Fatal("nothing cached before the reload")
		}
		if err := e.gw.ReloadFrom(e.cfgPath); err != nil {
			t.Fatal(err)
		}
		if n := tr().leafInfos.len(); n != 0 {
			t.Fatalf("%d records cached after a reload", n)
		}
		// The session still resumes (the bundle is the same); its record
		// is computed and cached again.
		if status, resumed := connect(); status != "200" || !resumed {
			t.Fatalf("after the reload: %s resumed=%v", status, resumed)
		}
		if tr().leafInfos.len() != 1 {
			t.Fatalf("after the reload: %d records cached, want 1", tr().leafInfos.len())
		}
	})
}

// The tracker's per-serial lists: add, remove in any order, remove twice
// or untracked, and what serial, collect and count see.
func TestTrackerLists(t *testing.T) {
	tr := newTracker()
	conn := func(serial string) *tracked { return &tracked{peer: &peer{serial: serial}} }
	a1, a2, a3, b1 := conn("a"), conn("a"), conn("a"), conn("b")
	for _, c := range []*tracked{a1, a2, a3, b1} {
		tr.add(c)
	}
	tr.add(a2) // twice: once
	if tr.count() != 4 || len(tr.serial("a")) != 3 || len(tr.serial("b")) != 1 || len(tr.serial("c")) != 0 {
		t.Fatalf("count %d, a %d, b %d", tr.count(), len(tr.serial("a")), len(tr.serial("b")))
	}
	for _, c := range []*tracked{a2, a2, conn("a"), a3} { // middle, again, never tracked, head
		tr.remove(c)
	}
	if got := tr.serial("a"); len(got) != 1 || got[0] != a1 || tr.count() != 2 {
		t.Fatalf("after removals: a %v, count %d", got, tr.count())
	}
	if all := tr.collect(func(*tracked) bool { return true }); len(all) != 2 {
		t.Fatalf("collect: %d", len(all))
	}
	tr.remove(a1)
	tr.remove(b1)
	if tr.count() != 0 || len(tr.bySerial) != 0 {
		t.Fatalf("empty tracker: count %d, %d serials", tr.count(), len(tr.bySerial))
	}
	tr.add(a2) // removed connections can be tracked again
	if got := tr.serial("a"); len(got) != 1 || got[0] != a2 {
		t.Fatalf("re-added: %v", got)
	}
}
