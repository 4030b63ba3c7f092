package ocspcheck

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/testca"
)

// TestCheck: the answers a responder can give, and every answer that must
// not be taken for one: an error page, garbage, an oversized body, a
// response about another certificate, one signed by another CA, a stale
// one. Each error says which responder and why.
func TestCheck(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ca := testca.New(t, "example.org", testca.WithNow(now.Add(-time.Hour)))
	other := testca.New(t, "example.org", testca.WithNow(now.Add(-time.Hour)))
	leaf := ca.Issue(t)
	stranger := ca.Issue(t)
	respond := func(signer *testca.CA, serialOf *x509.Certificate, status int, thisUpdate, nextUpdate time.Time) []byte {
		der, err := ocsp.CreateResponse(signer.Intermediate, signer.Intermediate, ocsp.Response{
			Status: status, SerialNumber: serialOf.SerialNumber, ThisUpdate: thisUpdate, NextUpdate: nextUpdate,
			RevokedAt: now.Add(-10 * time.Minute), RevocationReason: ocsp.KeyCompromise,
		}, signer.IntermediateKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	fresh, later := now.Add(-time.Minute), now.Add(time.Hour)
	var body []byte
	code := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/ocsp-request" {
			http.Error(w, "bad request", 400)
			return
		}
		w.WriteHeader(code)
		w.Write(body)
	}))
	defer srv.Close()
	ck := Checker{ServerURL: srv.URL, ServerSource: "--server", Now: func() time.Time { return now }}
	prefix := "ocspcheck: the answer of " + srv.URL + "/ocsp "
	for _, tc := range []struct {
		name    string
		body    []byte
		code    int
		want    Status
		wantErr string
	}{
		{name: "good", body: respond(ca, leaf.Cert, ocsp.Good, fresh, later), want: Good},
		{name: "revoked", body: respond(ca, leaf.Cert, ocsp.Revoked, fresh, later), want: Revoked},
		{name: "unknown", body: respond(ca, leaf.Cert, ocsp.Unknown, fresh, later), want: Unknown},
		{name: "error page", code: 500, body: []byte("oops"), wantErr: "ocspcheck: " + srv.URL + "/ocsp answered 500 Internal Server Error"},
		{name: "garbage", body: []byte("not DER"), wantErr: prefix + "cannot be trusted: "},
		{name: "oversized", body: make([]byte, MaxResponse+1), wantErr: "ocspcheck: " + srv.URL + "/ocsp answered more than 65536 bytes"},
		{name: "another certificate", body: respond(ca, stranger.Cert, ocsp.Good, fresh, later), wantErr: prefix + "cannot be trusted: "},
		{name: "another CA", body: respond(other, leaf.Cert, ocsp.Good, fresh, later), wantErr: prefix + "cannot be trusted: "},
		{name: "stale", body: respond(ca, leaf.Cert, ocsp.Good, now.Add(-2*time.Hour), now.Add(-time.Hour)),
			wantErr: prefix + "is valid from 2026-05-01T10:00:00Z to 2026-05-01T11:00:00Z, not now (2026-05-01T12:00:00Z)"},
		{name: "from the future", body: respond(ca, leaf.Cert, ocsp.Good, now.Add(time.Hour), now.Add(2*time.Hour)),
			wantErr: prefix + "is valid from 2026-05-01T13:00:00Z to 2026-05-01T14:00:00Z, not now (2026-05-01T12:00:00Z)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, code = tc.body, tc.code
			if code == 0 {
				code = http.StatusOK
			}
			a, err := ck.Check(context.Background(), leaf.Cert, ca.Intermediate)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				if a.Status != "" {
					t.Fatalf("an untrusted answer was read as %q", a.Status)
				}
				return
			}
			if err != nil || a.Status != tc.want || a.URL != srv.URL+"/ocsp" || a.Source != "the server's responder, from --server" {
				t.Fatalf("answer %+v, %v", a, err)
			}
			if tc.want == Revoked && (a.Reason != "keyCompromise" || !a.RevokedAt.Equal(now.Add(-10*time.Minute))) {
				t.Fatalf("revocation details: %+v", a)
			}
		})
	}
	if _, _, err := (Checker{}).Where(leaf.Cert); err == nil || err.Error() != "ocspcheck: the certificate names no OCSP responder and no server was given" {
		t.Fatalf("Where without a responder: %v", err)
	}
	if got := IssuerOf(leaf.Cert, []*x509.Certificate{ca.Root, other.Intermediate, ca.Intermediate}); got != ca.Intermediate {
		t.Fatalf("IssuerOf = %v", got)
	}
}
