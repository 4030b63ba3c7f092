// Package staple keeps a fresh OCSP response for a server's own
// certificate, so that the server staples it in the TLS handshake
// (tls.Certificate.OCSPStaple) and a client or scanner that asks for the
// certificate's status gets it without a round trip to the responder.
//
// [Stapler.Staple] never blocks a handshake: it returns the certificate
// with the response it holds, if that is still valid, and starts a refresh
// in the background when there is none or half of its validity has
// passed. Only a "good" response that verifies against the issuer is
// stapled; a failed fetch is logged and the last good response stays in
// use until its NextUpdate. The gateway staples its own certificate with
// responses fetched from the certificate's OCSP URL ([HTTPFetcher]); the
// server asks its in-process responder.
package staple

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/ocspcheck"
)

// Fetcher asks an OCSP responder about leaf with the DER request req and
// returns the DER response.
type Fetcher func(ctx context.Context, req []byte, leaf *x509.Certificate) ([]byte, error)

// HTTPFetcher posts the request to the first OCSP URL of the certificate
// (RFC 6960 appendix A.1) with client.
func HTTPFetcher(client *http.Client) Fetcher {
	return func(ctx context.Context, req []byte, leaf *x509.Certificate) ([]byte, error) {
		if len(leaf.OCSPServer) == 0 {
			return nil, errors.New("staple: the certificate names no OCSP responder")
		}
		return ocspcheck.Post(ctx, client, leaf.OCSPServer[0], req)
	}
}

// Stapler keeps OCSP responses for the certificates it is asked about.
type Stapler struct {
	fetch Fetcher
	now   func() time.Time
	log   *slog.Logger

	mu       sync.Mutex
	byLeaf   map[string]*entry // by the leaf's DER
	inFlight map[string]bool
	failed   map[string]time.Time // when the last fetch for a leaf failed
}

// retryAfter is how long a failed fetch waits before the next try, so a
// responder that is down is not asked at every handshake.
const retryAfter = time.Minute

type entry struct {
	der                    []byte
	thisUpdate, nextUpdate time.Time
}

// New returns a Stapler that fetches with fetch and tells time with now.
func New(fetch Fetcher, now func() time.Time, log *slog.Logger) *Stapler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stapler{fetch: fetch, now: now, log: log, byLeaf: map[string]*entry{}, inFlight: map[string]bool{}, failed: map[string]time.Time{}}
}

// Staple returns c with the OCSP response held for its leaf, or c itself
// when none is valid now; either way it starts a refresh in the background
// when needed. c's chain must hold the issuer after the leaf.
func (s *Stapler) Staple(c *tls.Certificate) *tls.Certificate {
	if c == nil || c.Leaf == nil || len(c.Certificate) < 2 {
		return c
	}
	key := string(c.Certificate[0])
	now := s.now()
	s.mu.Lock()
	e := s.byLeaf[key]
	refresh := e == nil || now.After(e.thisUpdate.Add(e.nextUpdate.Sub(e.thisUpdate)/2))
	if f, ok := s.failed[key]; ok && now.Sub(f) < retryAfter {
		refresh = false
	}
	if refresh && !s.inFlight[key] {
		s.inFlight[key] = true
		go s.refresh(c, key)
	}
	s.mu.Unlock()
	if e == nil || now.Before(e.thisUpdate) || !now.Before(e.nextUpdate) {
		return c
	}
	stapled := *c
	stapled.OCSPStaple = e.der
	return &stapled
}

// Refresh fetches a response for c now and waits for it; for a start-up
// that wants the first handshake stapled.
func (s *Stapler) Refresh(c *tls.Certificate) error {
	if c == nil || c.Leaf == nil || len(c.Certificate) < 2 {
		return errors.New("staple: the certificate has no issuer in its chain")
	}
	return s.fetchOne(c, string(c.Certificate[0]))
}

func (s *Stapler) refresh(c *tls.Certificate, key string) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("OCSP stapling: panic recovered", "panic", fmt.Sprint(v))
		}
		s.mu.Lock()
		delete(s.inFlight, key)
		s.mu.Unlock()
	}()
	if err := s.fetchOne(c, key); err != nil {
		s.mu.Lock()
		s.failed[key] = s.now()
		s.mu.Unlock()
		s.log.Warn("OCSP stapling: no fresh response for the certificate; serving without a staple or with the last one", "serial", c.Leaf.SerialNumber.Text(16), "err", err)
	}
}

func (s *Stapler) fetchOne(c *tls.Certificate, key string) error {
	issuer, err := x509.ParseCertificate(c.Certificate[1])
	if err != nil {
		return fmt.Errorf("staple: issuer: %w", err)
	}
	// The CertID's hashes are SHA-1, as RFC 5019 2.1.1 requires of
	// clients: the response echoes the request's CertID, and a client
	// checking a staple against the certificate looks its status up by a
	// CertID it builds itself, with SHA-1 in OpenSSL's
	// OCSP_resp_find_status (testssl.sh, openssl ocsp -respin -cert): a
	// SHA-256 CertID left them with "No Status found". SHA-1 only names
	// the issuer here; the response's signature is the CA's own.
	req, err := ocsp.CreateRequest(c.Leaf, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return fmt.Errorf("staple: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	der, err := s.fetch(ctx, req, c.Leaf)
	if err != nil {
		return err
	}
	resp, err := ocsp.ParseResponseForCert(der, c.Leaf, issuer)
	if err != nil {
		return fmt.Errorf("staple: response: %w", err)
	}
	now := s.now()
	switch {
	case resp.Status != ocsp.Good:
		return fmt.Errorf("staple: the responder says the certificate is not good (status %d)", resp.Status)
	case resp.NextUpdate.IsZero() || !now.Before(resp.NextUpdate) || now.Before(resp.ThisUpdate.Add(-5*time.Minute)):
		return fmt.Errorf("staple: response valid %s to %s, not now (%s)", resp.ThisUpdate, resp.NextUpdate, now)
	}
	s.mu.Lock()
	s.byLeaf[key] = &entry{der: der, thisUpdate: resp.ThisUpdate, nextUpdate: resp.NextUpdate}
	delete(s.failed, key)
	// Forget responses for certificates no longer in use (a renewal).
	for k, e := range s.byLeaf {
		if k != key && !now.Before(e.nextUpdate) {
			delete(s.byLeaf, k)
		}
	}
	s.mu.Unlock()
	return nil
}
