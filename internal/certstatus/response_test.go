package certstatus

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

func TestOCSPGoodRevokedUnknown(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	live := f.leaf(t, "/svc/live")
	gone := f.leaf(t, "/svc/gone")
	rev := f.revoke(t, gone, 1)
	foreign := big.NewInt(0x5eed)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for _, c := range []struct {
			name   string
			serial *big.Int
			status int
		}{
			{"live", live.SerialNumber, ocsp.Good},
			{"revoked", gone.SerialNumber, ocsp.Revoked},
			{"foreign", foreign, ocsp.Unknown},
			{"negative", big.NewInt(-7), ocsp.Unknown},
		} {
			t.Run(fmt.Sprintf("%s/%s", h, c.name), func(t *testing.T) {
				resp, err := f.svc.Respond(ctx, request(t, f.inter, c.serial, h, nil))
				if err != nil {
					t.Fatal(err)
				}
				p := f.parse(t, resp.DER)
				if p.Status != c.status || resp.Status != c.status {
					t.Fatalf("status %d (%d), want %d", p.Status, resp.Status, c.status)
				}
				if p.SerialNumber.Cmp(c.serial) != 0 || p.IssuerHash != h {
					t.Errorf("CertID serial %x hash %s, want %x %s", p.SerialNumber, p.IssuerHash, c.serial, h)
				}
				now := f.clock.Now()
				wantThis := now.Add(-backdate)
				if c.status == ocsp.Revoked {
					// Never before the revocation it reports.
					wantThis = rev.RevokedAt.Truncate(time.Second)
				}
				if !p.ThisUpdate.Equal(wantThis) || p.NextUpdate.Sub(p.ThisUpdate) != DefaultOCSPValidity || !p.ProducedAt.Equal(now) {
					t.Errorf("thisUpdate %s nextUpdate %s producedAt %s at %s", p.ThisUpdate, p.NextUpdate, p.ProducedAt, now)
				}
				if c.status == ocsp.Revoked {
					if !p.RevokedAt.Equal(rev.RevokedAt.Truncate(time.Second)) || p.RevocationReason != ocsp.KeyCompromise {
						t.Errorf("revoked at %s reason %d, want %s reason 1", p.RevokedAt, p.RevocationReason, rev.RevokedAt)
					}
				}
				if p.nonce != nil {
					t.Errorf("nonce %x in a response to a request without one", p.nonce)
				}
			})
		}
	}
}

func TestOCSPSignerIsDelegatedAndRecorded(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	before := f.auditCount(t)
	if err := f.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.auditCount(t); n != before+1 {
		t.Fatalf("start appended %d audit records, want 1 (the signer's issuance)", n-before)
	}
	resp, err := f.svc.Respond(ctx, request(t, f.inter, f.leaf(t, "/svc/a").SerialNumber, crypto.SHA1, nil))
	if err != nil {
		t.Fatal(err)
	}
	p := f.parse(t, resp.DER)
	sc := p.Certificate
	if sc == nil {
		t.Fatal("response carries no signer certificate")
	}
	if !slices.Equal(sc.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}) || sc.IsCA {
		t.Errorf("signer EKU %v CA %v, want OCSPSigning only", sc.ExtKeyUsage, sc.IsCA)
	}
	noCheck := false
	for _, e := range sc.Extensions {
		noCheck = noCheck || e.Id.String() == "1.3.6.1.5.5.7.48.1.5" && bytes.Equal(e.Value, []byte{5, 0})
	}
	if !noCheck {
		t.Error("signer has no id-pkix-ocsp-nocheck extension")
	}
	if got := sc.NotAfter.Sub(sc.NotBefore); got != ca.DefaultOCSPSignerLifetime+time.Minute {
		t.Errorf("signer lives %s", got)
	}
	if sc.URIs[0].String() != "spiffe://"+td+SignerPath {
		t.Errorf("signer identity %s", sc.URIs[0])
	}
	rec, err := f.st.GetCertificate(ctx, ca.SerialHex(sc.SerialNumber))
	if err != nil || rec.Obtained != store.ObtainedServer {
		t.Fatalf("signer not recorded: %+v %v", rec, err)
	}
	recs, err := f.st.AuditRecords(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(recs, func(r audit.Record) bool { return r.Subject == rec.Serial })
	if i < 0 || recs[i].Action != audit.ActionIssue || recs[i].Actor != "spiffe://"+td+SignerPath {
		t.Errorf("no audit record of the signer's issuance (%d)", i)
	}
	if sg := f.svc.activeState().signer; !bytes.Equal(p.ResponderKeyHash, sg.keyHash) {
		t.Errorf("responder key hash %x, want %x", p.ResponderKeyHash, sg.keyHash)
	}
}

func TestOCSPNonceEchoedAndNeverCached(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	c := f.leaf(t, "/svc/a")
	nonce := []byte("0123456789abcdef")
	var ders [][]byte
	for range 2 {
		resp, err := f.svc.Respond(ctx, request(t, f.inter, c.SerialNumber, crypto.SHA256, nonce))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Cached || !resp.Nonce {
			t.Fatalf("nonce response: cached %v nonce %v", resp.Cached, resp.Nonce)
		}
		if p := f.parse(t, resp.DER); !bytes.Equal(p.nonce, nonce) || p.Status != ocsp.Good {
			t.Fatalf("nonce %q status %d", p.nonce, p.Status)
		}
		ders = append(ders, resp.DER)
	}
	if bytes.Equal(ders[0], ders[1]) {
		t.Error("two nonce requests got the same bytes: not signed per request")
	}
	if n := f.svc.cache.len(); n != 0 {
		t.Errorf("%d cached responses after nonce requests only", n)
	}
}

func TestOCSPCacheAndInvalidation(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	c := f.leaf(t, "/svc/a")
	req := request(t, f.inter, c.SerialNumber, crypto.SHA1, nil)
	first, err := f.svc.Respond(ctx, req)
	if err != nil || first.Cached {
		t.Fatalf("first: cached %v, %v", first.Cached, err)
	}
	second, _ := f.svc.Respond(ctx, req)
	if !second.Cached || !bytes.Equal(second.DER, first.DER) {
		t.Fatal("second request was signed again")
	}
	// Another hash algorithm is another response (the CertID differs).
	other, _ := f.svc.Respond(ctx, request(t, f.inter, c.SerialNumber, crypto.SHA256, nil))
	if other.Cached {
		t.Fatal("SHA-256 request answered with the SHA-1 response")
	}
	f.clock.Advance(time.Second)
	f.revoke(t, c, 9)
	third, err := f.svc.Respond(ctx, req)
	if err != nil || third.Cached || third.Status != ocsp.Revoked {
		t.Fatalf("after revocation: cached %v status %d, %v", third.Cached, third.Status, err)
	}
	if p := f.parse(t, third.DER); p.RevocationReason != ocsp.PrivilegeWithdrawn {
		t.Errorf("reason %d", p.RevocationReason)
	}
	fourth, _ := f.svc.Respond(ctx, req)
	if !fourth.Cached || fourth.Status != ocsp.Revoked {
		t.Fatal("revoked response not cached")
	}
	// Half the validity later it is signed again, with a later thisUpdate.
	f.clock.Advance(DefaultOCSPValidity / 2)
	fifth, _ := f.svc.Respond(ctx, req)
	if fifth.Cached || !fifth.ThisUpdate.After(fourth.ThisUpdate) {
		t.Fatalf("due for re-signing: cached %v thisUpdate %s", fifth.Cached, fifth.ThisUpdate)
	}
	// Unknown serials are never cached.
	unknown := request(t, f.inter, big.NewInt(42), crypto.SHA1, nil)
	for range 2 {
		if r, _ := f.svc.Respond(ctx, unknown); r.Cached || r.Status != ocsp.Unknown {
			t.Fatalf("unknown: cached %v status %d", r.Cached, r.Status)
		}
	}
}

// A revocation made by another replica has no in-process notification: it
// is seen at the next poll.
func TestOCSPRevocationSeenAtPoll(t *testing.T) {
	f := newFixture(t, Settings{Poll: 2 * time.Second})
	ctx := context.Background()
	svc, err := New(Options{Authority: f.authz, Store: f.st, Clock: f.clock, Settings: Settings{Poll: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	c := f.leaf(t, "/svc/a")
	req := request(t, f.inter, c.SerialNumber, crypto.SHA1, nil)
	if r, err := svc.Respond(ctx, req); err != nil || r.Status != ocsp.Good {
		t.Fatalf("before: %d %v", r.Status, err)
	}
	f.revoke(t, c, 1)
	if r, _ := svc.Respond(ctx, req); !r.Cached || r.Status != ocsp.Good {
		t.Fatalf("before the poll: cached %v status %d", r.Cached, r.Status)
	}
	f.clock.Advance(2 * time.Second)
	if r, _ := svc.Respond(ctx, req); r.Cached || r.Status != ocsp.Revoked {
		t.Fatalf("after the poll: cached %v status %d", r.Cached, r.Status)
	}
}

func TestOCSPSignerRenewal(t *testing.T) {
	f := newFixture(t, Settings{})
	auth := &failingAuthority{Service: f.authz}
	svc, err := New(Options{Authority: auth, Store: f.st, Notifier: f.st, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := request(t, f.inter, f.leaf(t, "/svc/a").SerialNumber, crypto.SHA1, nil)
	r1, err := svc.Respond(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	s1 := f.parse(t, r1.DER).Certificate
	life := s1.NotAfter.Sub(s1.NotBefore)

	// Renewal fails at two thirds: the current signer goes on.
	f.clock.Set(s1.NotBefore.Add(life*2/3 + time.Second))
	auth.err = errDown
	r2, err := svc.Respond(ctx, req)
	if err != nil {
		t.Fatalf("renewal failure broke answering: %v", err)
	}
	if s := f.parse(t, r2.DER).Certificate; !s.Equal(s1) {
		t.Fatal("signer changed although its renewal failed")
	}

	// Renewal works: a new signer, and the cache signed by the old one is gone.
	auth.err = nil
	f.clock.Advance(DefaultOCSPValidity)
	r3, err := svc.Respond(ctx, req)
	if err != nil || r3.Cached {
		t.Fatalf("after renewal: cached %v, %v", r3.Cached, err)
	}
	s3 := f.parse(t, r3.DER).Certificate
	if s3.Equal(s1) {
		t.Fatal("signer not renewed at two thirds")
	}
	if f.lastAudit(t).Subject != ca.SerialHex(s3.SerialNumber) {
		t.Errorf("renewal not audited")
	}

	// Renewal fails and the old one would not outlive a response: error.
	auth.err = errDown
	f.clock.Set(s3.NotAfter.Add(-DefaultOCSPValidity / 2))
	_, err = svc.Respond(ctx, request(t, f.inter, f.leaf(t, "/svc/b").SerialNumber, crypto.SHA1, nil))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("error %v, want the store's unavailability", err)
	}
	if want := "certstatus: OCSP signer: store: test: store unavailable"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func TestOCSPNextUpdateNeverOutlivesSigner(t *testing.T) {
	f := newFixture(t, Settings{SignerLifetime: 90 * time.Minute, OCSPValidity: time.Hour})
	ctx := context.Background()
	req := request(t, f.inter, f.leaf(t, "/svc/a").SerialNumber, crypto.SHA1, nil)
	r, err := f.svc.Respond(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	sc := f.parse(t, r.DER).Certificate
	// Just before two thirds (renewal) the response would end after the
	// signer; nextUpdate is clamped to the signer's NotAfter.
	f.clock.Set(sc.NotBefore.Add(59 * time.Minute))
	r, err = f.svc.Respond(ctx, request(t, f.inter, f.leaf(t, "/svc/b").SerialNumber, crypto.SHA1, nil))
	if err != nil {
		t.Fatal(err)
	}
	if p := f.parse(t, r.DER); p.NextUpdate.After(sc.NotAfter) || !p.NextUpdate.Equal(sc.NotAfter) {
		t.Fatalf("nextUpdate %s, signer ends %s", p.NextUpdate, sc.NotAfter)
	}
}

func TestOCSPRefusals(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	c := f.leaf(t, "/svc/a")
	otherKey, _ := keytype.Generate(keytype.ECDSAP256)
	otherRoot, err := ca.CreateRoot(ca.RootOptions{TrustDomain: "other.org", Key: otherKey, Now: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// Same name, other key: only the key hash differs.
	sameNameKey, _ := keytype.Generate(keytype.ECDSAP256)
	impostor := *f.inter
	spki, _ := x509.MarshalPKIXPublicKey(sameNameKey.Public())
	impostor.RawSubjectPublicKeyInfo = spki
	h1 := mustHashes(t, otherRoot)[crypto.SHA1]
	h2 := mustHashes(t, &impostor)[crypto.SHA256]
	before := f.auditCount(t)
	for _, tc := range []struct {
		name string
		der  []byte
		is   error
		want string
	}{
		{"other CA", request(t, otherRoot, c.SerialNumber, crypto.SHA1, nil), ErrUnauthorized,
			fmt.Sprintf("certstatus: not authorized for this issuer: issuer name hash %x and key hash %x (SHA-1) name no intermediate of this CA that answers for its certificates", h1[0], h1[1])},
		{"same name other key", request(t, &impostor, c.SerialNumber, crypto.SHA256, nil), ErrUnauthorized,
			fmt.Sprintf("certstatus: not authorized for this issuer: issuer name hash %x and key hash %x (SHA-256) name no intermediate of this CA that answers for its certificates", h2[0], h2[1])},
		{"garbage", []byte("not an OCSP request"), ErrMalformed,
			"certstatus: malformed OCSP request: not a DER-encoded OCSPRequest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Respond(ctx, tc.der)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			if err.Error() != tc.want {
				t.Fatalf("error\n%q, want\n%q", err, tc.want)
			}
		})
	}
	if n := f.auditCount(t); n != before {
		t.Fatalf("refused requests wrote %d audit records", n-before)
	}
}

func mustHashes(t *testing.T, c *x509.Certificate) issuerHashes {
	t.Helper()
	h, err := newIssuerHashes(c)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestOCSPStoreDown(t *testing.T) {
	f := newFixture(t, Settings{})
	fs := &failingStore{Store: f.st}
	svc, err := New(Options{Authority: f.authz, Store: fs, Notifier: f.st, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	fs.err = errDown
	_, err = svc.Respond(context.Background(), request(t, f.inter, big.NewInt(77), crypto.SHA1, nil))
	if !errors.Is(err, store.ErrUnavailable) || err.Error() != "certstatus: look up 4d: store: test: store unavailable" {
		t.Fatalf("error %v", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	f := newFixture(t, Settings{})
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Store: f.st, Clock: f.clock}, "certstatus: needs an authority, a store and a clock"},
		{Options{Authority: f.authz, Store: f.st, Clock: f.clock, Settings: Settings{CRLValidity: -time.Second}}, "certstatus: negative duration -1s"},
		{Options{Authority: f.authz, Store: f.st, Clock: f.clock, Settings: Settings{OCSPValidity: 2 * time.Hour, SignerLifetime: time.Hour}},
			"certstatus: OCSP validity 2h0m0s must be shorter than the signer lifetime 1h0m0s"},
	} {
		if _, err := New(tc.o); err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

func TestHTTPMaxAge(t *testing.T) {
	f := newFixture(t, Settings{MaxAge: time.Minute})
	now := f.clock.Now()
	for _, c := range []struct {
		next time.Time
		want time.Duration
	}{
		{now.Add(time.Hour), time.Minute},
		{now.Add(30 * time.Second), 30 * time.Second},
		{now.Add(-time.Second), 0},
	} {
		if got := f.svc.HTTPMaxAge(c.next); got != c.want {
			t.Errorf("max age until %s: %s, want %s", c.next.Sub(now), got, c.want)
		}
	}
}

// deviceKey stands for a key in a PKCS#11 token (a crypto.Signer that is not
// a software key of the standard library).
type deviceKey struct{ crypto.Signer }

// TestOCSPSignedByIssuerInDevice: when the intermediate's key is in a
// device, the intermediate signs OCSP responses itself (RFC 6960 section
// 4.2.2.2), with its own key type's algorithm: no delegated responder key
// is made outside the device, nothing is issued for one, and the response
// carries no certificate. Go's parser verifies it with the issuer's key.
func TestOCSPSignedByIssuerInDevice(t *testing.T) {
	for _, kt := range []keytype.Type{keytype.ECDSAP256, keytype.ECDSAP384, keytype.RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			f := newFixtureWith(t, Settings{}, kt, func(k crypto.Signer) crypto.Signer { return deviceKey{k} })
			ctx := context.Background()
			live, gone := f.leaf(t, "/svc/live"), f.leaf(t, "/svc/gone")
			f.revoke(t, gone, 1)
			before := f.auditCount(t)
			if err := f.svc.Start(ctx); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				leaf   *x509.Certificate
				status int
			}{{live, ocsp.Good}, {gone, ocsp.Revoked}} {
				resp, err := f.svc.Respond(ctx, request(t, f.inter, c.leaf.SerialNumber, crypto.SHA256, nil))
				if err != nil {
					t.Fatal(err)
				}
				r, err := ocsp.ParseResponseForCert(resp.DER, c.leaf, f.inter)
				if err != nil || r.Status != c.status {
					t.Fatalf("status %v, %v; want %d", r, err, c.status)
				}
				if r.Certificate != nil {
					t.Fatalf("the response carries a responder certificate %q", r.Certificate.Subject)
				}
				want := map[keytype.Type]x509.SignatureAlgorithm{keytype.ECDSAP256: x509.ECDSAWithSHA256,
					keytype.ECDSAP384: x509.ECDSAWithSHA384, keytype.RSA2048: x509.SHA256WithRSA}[kt]
				if r.SignatureAlgorithm != want {
					t.Errorf("signature algorithm %s for a %s key", r.SignatureAlgorithm, kt)
				}
				hashes := mustHashes(t, f.inter)
				if !bytes.Equal(r.ResponderKeyHash, hashes[crypto.SHA1][1]) {
					t.Errorf("responder key hash %x, want the issuer's %x", r.ResponderKeyHash, hashes[crypto.SHA1][1])
				}
				if r.NextUpdate.After(f.inter.NotAfter) {
					t.Errorf("nextUpdate %s after the issuer's notAfter %s", r.NextUpdate, f.inter.NotAfter)
				}
			}
			if n := f.auditCount(t); n != before {
				t.Errorf("%d audit records appended: a delegated signer was issued", n-before)
			}
		})
	}
}
