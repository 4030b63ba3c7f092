package certgatetls_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/testca"
)

// BenchmarkServerVerifyConnection measures the checks ServerConfig adds to
// each handshake (chain verification, identity, revocation lookup,
// authorizer), without the TLS handshake itself.
func BenchmarkServerVerifyConnection(b *testing.B) {
	ca := testca.New(b, "example.org")
	dir := b.TempDir()
	own := ca.Issue(b, testca.Server("spiffe://example.org/gateway/svc"))
	writeCreds(b, dir, own, ca.BundlePEM())
	src, err := certgatetls.NewSource(dir, certgatetls.WithPollInterval(0))
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	cfg, err := certgatetls.ServerConfig(certgatetls.ServerOptions{
		Source: src, Revocations: checker(nil),
		Authorizer: certgatetls.AllowIdentities("spiffe://example.org/svc/test"),
	})
	if err != nil {
		b.Fatal(err)
	}
	leaf := ca.Issue(b)
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert, ca.Intermediate}}
	b.ReportAllocs()
	for b.Loop() {
		if err := cfg.VerifyConnection(cs); err != nil {
			b.Fatal(err)
		}
	}
}
