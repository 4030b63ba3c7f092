package server

import (
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// TestIssuedResponseJSON checks the hand-written answer against
// encoding/json's, byte for byte, twice (the second time the chain and
// bundle come from pemText), and after the hierarchy changed.
func TestIssuedResponseJSON(t *testing.T) {
	der := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	leaf := &x509.Certificate{Raw: der(700), NotAfter: time.Date(2027, 1, 2, 3, 4, 5, 6, time.UTC)}
	inter := &x509.Certificate{Raw: der(500)}
	root, root2 := &x509.Certificate{Raw: der(400)}, &x509.Certificate{Raw: der(450)}
	var s Server
	for _, tc := range []struct {
		identity string
		roots    []*x509.Certificate
	}{
		{"spiffe://example.org/svc/a", []*x509.Certificate{root}},
		{"spiffe://example.org/svc/a", []*x509.Certificate{root}},
		{"spiffe://example.org/svc/a&b<c>\"é\u2028", []*x509.Certificate{root, root2}},
		{"spiffe://example.org/svc/a", []*x509.Certificate{root2}},
	} {
		iss := ca.Issued{Cert: leaf, Chain: []*x509.Certificate{inter}, Roots: tc.roots,
			Record: store.Certificate{Serial: "1a2b3c", Identity: tc.identity}}
		got, ok := s.issuedResponse(iss).(rawJSON)
		if !ok {
			t.Fatalf("issuedResponse is %T, want rawJSON", s.issuedResponse(iss))
		}
		want, err := json.Marshal(wire.EnrollResponse{
			Serial: "1a2b3c", Identity: tc.identity, NotAfter: leaf.NotAfter,
			Certificate: string(pemutil.EncodeCertificates(leaf)),
			Chain:       string(pemutil.EncodeCertificates(inter)),
			Bundle:      string(pemutil.EncodeCertificates(tc.roots...)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want)+"\n" {
			t.Errorf("identity %q:\n got %s\nwant %s", tc.identity, got, want)
		}
	}
}
