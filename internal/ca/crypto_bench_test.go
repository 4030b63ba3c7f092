package ca_test

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
)

// BenchmarkCrypto measures, on this machine, the public-key operations an
// issuance and a TLS handshake cannot avoid, so the benchmark figures in
// docs/benchmarks.md can be held against the ceiling they impose:
//
//   - ecdsa-p256-sign, ecdsa-p256-verify: one signature and one
//     verification with crypto/ecdsa (a CSR check is a verify; a
//     certificate is a sign plus the verify x509.CreateCertificate makes of
//     its own signature; a full TLS 1.3 handshake with a client
//     certificate costs the server one sign and, for the client's chain
//     and CertificateVerify, three verifies).
//   - x25519, p256-ecdh, x25519mlkem768: the server's share of a TLS 1.3
//     key exchange (key generation + shared secret; for the hybrid also the
//     ML-KEM encapsulation).
//   - issue: Issuer.Prepare + Issue, i.e. x509.CreateCertificate (sign +
//     self-check) and x509.ParseCertificate of a leaf.
//
// go test -run '^$' -bench Crypto -cpu 1 ./internal/ca
func BenchmarkCrypto(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("certgate"))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ecdsa-p256-sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ecdsa-p256-verify", func(b *testing.B) {
		for b.Loop() {
			if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
				b.Fatal("verify failed")
			}
		}
	})
	// One TLS key exchange: a fresh key pair and a shared secret.
	keyExchange := func(curve ecdh.Curve) func(*testing.B) {
		return func(b *testing.B) {
			peer, _ := curve.GenerateKey(rand.Reader)
			for b.Loop() {
				k, err := curve.GenerateKey(rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := k.ECDH(peer.PublicKey()); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("x25519", keyExchange(ecdh.X25519()))
	b.Run("p256-ecdh", keyExchange(ecdh.P256()))
	b.Run("x25519mlkem768", func(b *testing.B) {
		peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
		dk, _ := mlkem.GenerateKey768()
		ek := dk.EncapsulationKey().Bytes()
		for b.Loop() {
			k, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := k.ECDH(peer.PublicKey()); err != nil {
				b.Fatal(err)
			}
			pk, err := mlkem.NewEncapsulationKey768(ek)
			if err != nil {
				b.Fatal(err)
			}
			pk.Encapsulate()
		}
	})
	b.Run("issue", func(b *testing.B) {
		clk := clock.Real{}
		rootKey, _ := keytype.Generate(keytype.ECDSAP256)
		root, err := ca.CreateRoot(ca.RootOptions{TrustDomain: "example.org", Key: rootKey, Now: clk.Now()})
		if err != nil {
			b.Fatal(err)
		}
		interKey, _ := keytype.Generate(keytype.ECDSAP256)
		inter, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: interKey, Now: clk.Now()})
		if err != nil {
			b.Fatal(err)
		}
		iss, err := ca.NewIssuer(inter, interKey, "example.org", clk)
		if err != nil {
			b.Fatal(err)
		}
		leafKey, _ := keytype.Generate(keytype.ECDSAP256)
		req := ca.Request{PublicKey: leafKey.Public(), Identity: identity.MustParse("spiffe://example.org/bench")}
		var last *x509.Certificate
		for b.Loop() {
			p, err := iss.Prepare(req, ca.ClientProfile)
			if err != nil {
				b.Fatal(err)
			}
			if last, err = iss.Issue(p); err != nil {
				b.Fatal(err)
			}
		}
		if last.NotAfter.Before(time.Now()) {
			b.Fatal("issued an expired certificate")
		}
	})
}
