package certstatus

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
)

// BenchmarkOCSP measures answering one OCSP request (parse, issuer check,
// view check, response) from the cache, against the baselines of signing a
// fresh response: a nonce request (parse, store lookup, sign, encode) and
// the signing and encoding alone.
//
//	go test -run '^$' -bench 'OCSP' -benchtime 2s ./internal/certstatus
func BenchmarkOCSP(b *testing.B) {
	f := newFixture(b, Settings{})
	ctx := context.Background()
	leaf := f.leaf(b, "/svc/a")
	plain := request(b, f.inter, leaf.SerialNumber, crypto.SHA1, nil)
	withNonce := request(b, f.inter, leaf.SerialNumber, crypto.SHA1, []byte("0123456789abcdef"))
	if r, err := f.svc.Respond(ctx, plain); err != nil || r.Cached {
		b.Fatal(err)
	}
	perSecond := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "responses/s")
	}
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if r, err := f.svc.Respond(ctx, plain); err != nil || !r.Cached {
				b.Fatal("not from the cache", err)
			}
		}
		perSecond(b)
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if r, err := f.svc.Respond(ctx, plain); err != nil || !r.Cached {
					b.Error("not from the cache", err)
					return
				}
			}
		})
		perSecond(b)
	})
	b.Run("fresh-nonce", func(b *testing.B) {
		for b.Loop() {
			if r, err := f.svc.Respond(ctx, withNonce); err != nil || r.Cached {
				b.Fatal("cached", err)
			}
		}
		perSecond(b)
	})
	b.Run("sign-only", func(b *testing.B) {
		is := f.svc.activeState()
		sg, err := f.svc.currentSigner(ctx, is)
		if err != nil {
			b.Fatal(err)
		}
		req, _ := ParseRequest(plain)
		now := f.clock.Now()
		for b.Loop() {
			if _, err := f.svc.sign(is, sg, req, certStatus{status: 0}, now); err != nil {
				b.Fatal(err)
			}
		}
		perSecond(b)
	})
}

// BenchmarkCRL100k measures building the CRL of 100,000 revocations from
// the in-memory view (copy, sort, serial parsing, DER encoding, signing),
// against the baselines of the standard library doing the encoding and
// signing of an already prepared list, and of DER-encoding the list alone.
//
//	go test -run '^$' -bench 'CRL100k' -benchtime 10x ./internal/certstatus
func BenchmarkCRL100k(b *testing.B) {
	const n = 100_000
	f := newFixture(b, Settings{})
	now := f.clock.Now()
	evs := make(map[string]*revoked, n)
	for i := range n {
		serial, err := ca.NewSerial()
		if err != nil {
			b.Fatal(err)
		}
		evs[ca.SerialHex(serial)] = &revoked{serial: serial, position: int64(i + 1), at: now.Add(-time.Duration(i) * time.Second),
			reason: []int{0, 1, 4, 5}[i%4], notAfter: now.Add(time.Hour)}
	}
	f.svc.mu.Lock()
	f.svc.revs, f.svc.pos, f.svc.loaded = evs, n, true
	f.svc.mu.Unlock()

	var size int
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			c, err := f.svc.buildCRL(f.svc.activeState(), n, now)
			if err != nil || c.Entries != n {
				b.Fatal(err)
			}
			size = len(c.DER)
		}
		b.ReportMetric(float64(size), "CRL-bytes")
	})
	list := make([]*revoked, 0, n)
	for _, r := range evs {
		list = append(list, r)
	}
	entries := revocationEntries(list)
	b.Run("stdlib-create", func(b *testing.B) {
		tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour), RevokedCertificateEntries: entries}
		for b.Loop() {
			if _, err := f.svc.o.Authority.Hierarchy().Active.SignCRL(tmpl); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-list", func(b *testing.B) {
		type entryASN1 struct {
			Serial     *big.Int
			Time       time.Time
			Extensions []pkix.Extension `asn1:"optional"`
		}
		raw := make([]entryASN1, len(entries))
		for i, e := range entries {
			raw[i] = entryASN1{Serial: e.SerialNumber, Time: e.RevocationTime}
			if e.ReasonCode != 0 {
				v, _ := asn1.Marshal(asn1.Enumerated(e.ReasonCode))
				raw[i].Extensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 21}, Value: v}}
			}
		}
		for b.Loop() {
			if _, err := asn1.Marshal(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
