// Package ocspcheck asks an OCSP responder (RFC 6960) whether a
// certificate is revoked, for the clients that must tell the truth about
// it: `certgate verify` and the agent. It says which responder it asked
// and why that one (the certificate's own OCSP URL, or the certgate server
// it was given), and treats every answer it cannot trust (a bad
// signature, a response for another certificate, a stale one) as no
// answer: never as "good".
//
// It is not a verifier of chains (package diagnose) and keeps no cache.
package ocspcheck

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/tlspolicy"
)

// Status is a responder's answer.
type Status string

// The answers.
const (
	Good    Status = "good"
	Revoked Status = "revoked"
	Unknown Status = "unknown" // the responder does not know the certificate: its CA did not issue it
)

// Answer is what a responder said, and where it was asked.
type Answer struct {
	Status     Status    `json:"status"`
	URL        string    `json:"url"`
	Source     string    `json:"source"` // why this URL: "the certificate's OCSP URL" or the server's
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	Reason     string    `json:"reason,omitempty"` // RFC 5280 reason name, when revoked
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update,omitzero"`
}

// Checker asks about certificates.
type Checker struct {
	// Client makes the request: plain HTTP for a status listener, HTTPS
	// (trusting the CA's bundle) for the server.
	Client *http.Client
	// ServerURL is the certgate server, https://HOST:PORT, asked at
	// /ocsp when the certificate names no OCSP URL; ServerSource says
	// where it came from ("--server", "$CERTGATE_SERVER", "DIR/server.url").
	ServerURL, ServerSource string
	// Now tells the time a response must be current at.
	Now func() time.Time
}

// MaxResponse bounds a response read from a responder.
const MaxResponse = 64 << 10

// skew is how far a responder's clock may be ahead of ours.
const skew = 5 * time.Minute

// Where returns the responder to ask about leaf and why that one; an
// error when there is none.
func (c Checker) Where(leaf *x509.Certificate) (url, source string, err error) {
	if len(leaf.OCSPServer) > 0 {
		return leaf.OCSPServer[0], "the certificate's OCSP URL", nil
	}
	if c.ServerURL != "" {
		src := "the server's responder"
		if c.ServerSource != "" {
			src += ", from " + c.ServerSource
		}
		return strings.TrimSuffix(c.ServerURL, "/") + "/ocsp", src, nil
	}
	return "", "", errors.New("ocspcheck: the certificate names no OCSP responder and no server was given")
}

// Check asks about leaf, issued by issuer.
func (c Checker) Check(ctx context.Context, leaf, issuer *x509.Certificate) (Answer, error) {
	url, source, err := c.Where(leaf)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{URL: url, Source: source}
	req, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		return a, fmt.Errorf("ocspcheck: %w", err)
	}
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	der, err := Post(ctx, client, url, req)
	if err != nil {
		return a, err
	}
	resp, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil {
		return a, fmt.Errorf("ocspcheck: the answer of %s cannot be trusted: %w", url, err)
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	if now.Add(skew).Before(resp.ThisUpdate) || (!resp.NextUpdate.IsZero() && !now.Before(resp.NextUpdate)) {
		return a, fmt.Errorf("ocspcheck: the answer of %s is valid from %s to %s, not now (%s)", url,
			resp.ThisUpdate.UTC().Format(time.RFC3339), resp.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	a.ThisUpdate, a.NextUpdate = resp.ThisUpdate, resp.NextUpdate
	switch resp.Status {
	case ocsp.Good:
		a.Status = Good
	case ocsp.Revoked:
		a.Status = Revoked
		a.RevokedAt = resp.RevokedAt
		a.Reason = ReasonName(resp.RevocationReason)
	default:
		a.Status = Unknown
	}
	return a, nil
}

// Post sends the DER OCSP request req to url (RFC 6960 appendix A.1) and
// returns the DER response.
func Post(ctx context.Context, client *http.Client, url string, req []byte) ([]byte, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return nil, fmt.Errorf("ocspcheck: %w", err)
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := client.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("ocspcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ocspcheck: %s answered %s", url, resp.Status)
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("ocspcheck: %s: %w", url, err)
	}
	if len(der) > MaxResponse {
		return nil, fmt.Errorf("ocspcheck: %s answered more than %d bytes", url, MaxResponse)
	}
	return der, nil
}

// ReasonName is the RFC 5280 name of a CRL reason code.
func ReasonName(code int) string {
	names := map[int]string{
		ocsp.Unspecified: "unspecified", ocsp.KeyCompromise: "keyCompromise", ocsp.CACompromise: "cACompromise",
		ocsp.AffiliationChanged: "affiliationChanged", ocsp.Superseded: "superseded", ocsp.CessationOfOperation: "cessationOfOperation",
		ocsp.CertificateHold: "certificateHold", ocsp.RemoveFromCRL: "removeFromCRL", ocsp.PrivilegeWithdrawn: "privilegeWithdrawn",
		ocsp.AACompromise: "aACompromise",
	}
	if n, ok := names[code]; ok {
		return n
	}
	return fmt.Sprintf("reason %d", code)
}

// IssuerOf returns the certificate in certs that issued leaf, nil if none.
func IssuerOf(leaf *x509.Certificate, certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		if c != leaf && bytes.Equal(c.RawSubject, leaf.RawIssuer) && leaf.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	return nil
}

// HTTPClient returns a client for responders: plain HTTP (a status
// listener), or HTTPS trusting roots (a certgate server's /ocsp).
func HTTPClient(roots *x509.CertPool, timeout time.Duration) *http.Client {
	tr := &http.Transport{TLSClientConfig: tlspolicy.Apply(&tls.Config{RootCAs: roots}), Proxy: http.ProxyFromEnvironment}
	return &http.Client{Transport: tr, Timeout: timeout}
}
