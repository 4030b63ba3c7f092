package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/devicekey"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/wire"
)

// renew makes a new key of cur's type, has the server certify it over a
// connection authenticated with cur, checks the answer, writes the files
// and makes the new credentials current. A refusal that no retry can fix is
// a *StoppedError.
func (a *Agent) renew(ctx context.Context, cur *credentials) (fresh *credentials, err error) {
	// Before a certificate is issued that could not be written.
	if err := checkDir(a.o.Dir, cur.Identity); err != nil {
		return nil, err
	}
	kt, err := keytype.Of(cur.Key().Public())
	if err != nil {
		return nil, fmt.Errorf("agent: current key: %w", err)
	}
	// A key in a device is replaced by a new key made in the same device;
	// the old one is deleted once the new certificate is current.
	var key crypto.Signer
	var keyURI string
	if old := cur.KeyURI(); old != "" {
		tokenURI, err := devicekey.TokenOf(old)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		if key, keyURI, err = devicekey.Generate(tokenURI, kt, "certgate "+cur.id.String()); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		defer func() {
			if fresh == nil { // renewal failed: the new key certifies nothing
				if derr := devicekey.Delete(keyURI); derr != nil {
					a.o.Log.Warn("deleting the unused new key from the token failed", "key", devicekey.Redacted(keyURI), "err", derr)
				}
			}
		}()
	} else if key, err = keytype.Generate(kt); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	// A certificate that also serves TLS (a gateway's) keeps its host
	// names: the server takes them from the request.
	leaf := cur.leaf()
	var csrPEM []byte
	if len(leaf.DNSNames)+len(leaf.IPAddresses) > 0 {
		csrPEM, err = csr.CreateWithHosts(key, cur.id, leaf.DNSNames, leaf.IPAddresses)
	} else {
		csrPEM, err = csr.Create(key, cur.id)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	u, _ := url.Parse(a.o.ServerURL) // checked by New
	cl, err := apiclient.New(apiclient.Options{
		URLSource:        a.o.ServerURLSource,
		ServerURL:        a.o.ServerURL,
		Certificate:      cur.Certificate,
		VerifyConnection: a.verifyServer(u.Hostname(), cur.Roots),
		Timeout:          a.o.RequestTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer cl.CloseIdleConnections()
	resp, err := cl.Renew(ctx, string(csrPEM))
	if err != nil {
		return nil, a.classify(err, cur)
	}
	checked, err := a.checkAnswer(resp, key, cur)
	if err != nil {
		return nil, err
	}
	if keyURI != "" {
		dc, err := certgatetls.NewDeviceCredentials(key, keyURI, checked.Chain, checked.Bundle)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		if checked, err = withIdentity(dc); err != nil {
			return nil, err
		}
	}
	if err := checked.write(a.o.Dir); err != nil {
		return nil, err
	}
	a.cur.Store(checked)
	a.mu.Lock()
	hooks := append([]func(){}, a.rotated...)
	a.mu.Unlock()
	for _, f := range hooks {
		f()
	}
	if old := cur.KeyURI(); old != "" {
		// Connections made with the old key are established; new ones
		// take the new certificate. The old key certifies nothing any
		// more (its certificate is superseded) and goes.
		if err := devicekey.Delete(old); err != nil {
			a.o.Log.Warn("deleting the replaced key from the token failed", "key", devicekey.Redacted(old), "err", err)
		}
	}
	return checked, nil
}

// verifyServer checks the server's certificate against the roots we
// already trust, for serverAuth and host, at the agent's "now" (the same
// clock that decides when our own certificate expires).
func (a *Agent) verifyServer(host string, roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("agent: the server sent no certificate")
		}
		inters := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inters.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			DNSName: host, Roots: roots, Intermediates: inters, CurrentTime: a.o.Clock.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("agent: server certificate: %w", err)
		}
		return nil
	}
}

// classify turns the server's final refusals into a *StoppedError and
// leaves every other failure as a retryable error.
func (a *Agent) classify(err error, cur *credentials) error {
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
		stop := &StoppedError{Serial: cur.Serial, NotAfter: cur.leaf().NotAfter}
		switch ae.Code {
		case wire.CodeRevoked:
			stop.Err = ErrRevoked
		case wire.CodeExpired:
			stop.Err = ErrExpired
		case wire.CodeUnknownCert:
			stop.Err = ErrUnknown
		}
		if stop.Err != nil {
			return stop
		}
	}
	return fmt.Errorf("agent: renewal: %w", err)
}

// checkAnswer makes sure the server certified our new key, for the same
// identity, with a chain the roots we trust verify for client auth.
func (a *Agent) checkAnswer(resp wire.EnrollResponse, key crypto.Signer, cur *credentials) (*credentials, error) {
	c, err := enroll.Credentials(resp, key)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	leaf := c.Chain[0]
	if c.Identity != cur.id.String() {
		return nil, fmt.Errorf("agent: the server returned a certificate for %s, not %s", c.Identity, cur.id)
	}
	if bytes.Equal(leaf.Raw, cur.leaf().Raw) {
		return nil, errors.New("agent: the server returned the current certificate")
	}
	if err := enroll.CheckHosts(leaf, cur.leaf().DNSNames, cur.leaf().IPAddresses); err != nil {
		return nil, fmt.Errorf("agent: the server's answer: %w", err)
	}
	fresh, err := withIdentity(c)
	if err != nil {
		return nil, err
	}
	for _, roots := range []*x509.CertPool{cur.Roots, fresh.Roots} {
		if err := enroll.VerifyClient(c, roots, a.o.Clock.Now()); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	return fresh, nil
}
