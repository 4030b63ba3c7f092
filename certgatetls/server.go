package certgatetls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/tlspolicy"
)

// Errors a refused client's handshake wraps, for [errors.Is].
var (
	ErrNoClientCertificate = errors.New("certgatetls: client sent no certificate")
	ErrUntrusted           = errors.New("certgatetls: client certificate does not verify against the trust bundle")
	ErrExpired             = errors.New("certgatetls: client certificate is not valid now")
	ErrNotClientAuth       = errors.New("certgatetls: client certificate is not for client authentication")
	ErrBadIdentity         = errors.New("certgatetls: client certificate has no SPIFFE ID of the trust domain")
	ErrNotAllowed          = errors.New("certgatetls: client identity is not allowed")
)

// Authorizer decides whether a verified client identity, a SPIFFE ID such
// as "spiffe://example.org/svc/billing", may connect. A non-nil error
// refuses the handshake and is logged with the refusal.
type Authorizer func(identity string) error

// AllowIdentities returns an Authorizer that lets in exactly the listed
// SPIFFE IDs.
func AllowIdentities(ids ...string) Authorizer {
	ids = slices.Clone(ids)
	return func(id string) error {
		if slices.Contains(ids, id) {
			return nil
		}
		return errors.New("not in the allowed list")
	}
}

// ServerOptions configures [ServerConfig].
type ServerOptions struct {
	// Source is this service's own credentials: the certificate it serves
	// with (it must carry serverAuth, as a gateway certificate does) and the
	// bundle that client chains must verify against. Required.
	Source *Source
	// TrustDomain is the trust domain client identities must belong to
	// (default: the trust domain of Source's own identity).
	TrustDomain string
	// Revocations checks each client certificate; required. Use
	// [StartRevocations].
	Revocations RevocationChecker
	// Authorizer, if set, is asked about every client identity that passed
	// the other checks.
	Authorizer Authorizer
	Clock      Clock        // default the system clock
	Logger     *slog.Logger // refusals are logged at Info; default discards
}

// ServerConfig returns a TLS configuration that serves with the source's
// certificate and accepts a client only if it presents a certificate that
// is valid now, carries the clientAuth extended key usage, chains to the
// source's current bundle, names one SPIFFE ID of the trust domain, is not
// revoked, and passes the Authorizer. The checks run on full and resumed
// handshakes alike, so a revoked client cannot resume an older session.
//
// A refused handshake fails with an error wrapping one of the Err*
// variables of this package; [net/http.Server] writes it to its ErrorLog and
// the client gets a bad_certificate alert.
func ServerConfig(o ServerOptions) (*tls.Config, error) {
	if o.Source == nil {
		return nil, errors.New("certgatetls: ServerOptions.Source is required")
	}
	if o.Revocations == nil {
		return nil, errors.New("certgatetls: ServerOptions.Revocations is required (see StartRevocations)")
	}
	own := o.Source.Current()
	if !slices.Contains(own.Certificate.Leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return nil, fmt.Errorf("certgatetls: %s (%s) cannot serve TLS: it lacks the serverAuth extended key usage; enroll this service as a gateway identity (spiffe://%s/gateway/<name>)",
			own.Identity, o.Source.Dir(), own.id.TrustDomain())
	}
	if o.TrustDomain == "" {
		o.TrustDomain = own.id.TrustDomain()
	} else if err := identity.ValidateTrustDomain(o.TrustDomain); err != nil {
		return nil, fmt.Errorf("certgatetls: %w", err)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	v := &clientVerifier{o: o}
	return tlspolicy.Apply(&tls.Config{
		// The chain is verified in VerifyConnection, against the bundle the
		// source holds at the time of the handshake, and on resumed
		// handshakes too. RequestClientCert lets it name the reason when a
		// client sends no certificate; crypto/tls still checks that the
		// client holds the certificate's key.
		ClientAuth:       tls.RequestClientCert,
		GetCertificate:   o.Source.GetCertificate,
		VerifyConnection: v.verifyConnection,
		NextProtos:       []string{"h2", "http/1.1"},
		Time:             o.Clock.Now,
	}), nil
}

type clientVerifier struct {
	o      ServerOptions
	chains chainCache
}

func (v *clientVerifier) verifyConnection(cs tls.ConnectionState) error {
	id, err := v.verify(cs.PeerCertificates)
	if err != nil {
		attrs := []any{"error", err, "resumed", cs.DidResume}
		if len(cs.PeerCertificates) > 0 {
			attrs = append(attrs, "serial", cs.PeerCertificates[0].SerialNumber.Text(16))
		}
		if id != "" {
			attrs = append(attrs, "identity", id)
		}
		v.o.Logger.Info("certgatetls: refused client", attrs...)
	}
	return err
}

// verify returns the client's identity, and why it is refused if it is.
// The identity is returned with a refusal only once the chain verified.
func (v *clientVerifier) verify(certs []*x509.Certificate) (string, error) {
	if len(certs) == 0 {
		return "", ErrNoClientCertificate
	}
	leaf := certs[0]
	now := v.o.Clock.Now()
	switch {
	case now.Before(leaf.NotBefore):
		return "", fmt.Errorf("%w: not valid before %s (now %s)", ErrExpired, utc(leaf.NotBefore), utc(now))
	case now.After(leaf.NotAfter):
		return "", fmt.Errorf("%w: expired at %s (now %s)", ErrExpired, utc(leaf.NotAfter), utc(now))
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return "", fmt.Errorf("%w: its extended key usage lacks clientAuth", ErrNotClientAuth)
	}
	if err := v.chains.verify(certs, v.o.Source.Current(), now); err != nil {
		return "", fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	id, err := identity.FromCertificateIn(leaf, v.o.TrustDomain)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadIdentity, err)
	}
	if err := v.o.Revocations.Check(leaf); err != nil {
		return id.String(), err
	}
	if v.o.Authorizer != nil {
		if err := v.o.Authorizer(id.String()); err != nil {
			return id.String(), fmt.Errorf("%w: %s: %w", ErrNotAllowed, id, err)
		}
	}
	return id.String(), nil
}

// IdentityFromRequest returns the SPIFFE ID of the client certificate a
// request came with, e.g. "spiffe://example.org/svc/billing".
//
// It reads the identity and does not verify the certificate again: use it
// behind a server whose TLS configuration comes from [ServerConfig], which
// has verified the chain, the trust domain, revocation and the Authorizer
// before the request could arrive.
func IdentityFromRequest(r *http.Request) (string, error) {
	if r.TLS == nil {
		return "", errors.New("certgatetls: request did not come over TLS")
	}
	if len(r.TLS.PeerCertificates) == 0 {
		return "", ErrNoClientCertificate
	}
	id, err := identity.FromCertificate(r.TLS.PeerCertificates[0])
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadIdentity, err)
	}
	return id.String(), nil
}

// RejectRevoked wraps next so that every request, not only every
// handshake, is checked against rc: a client whose certificate is revoked
// while its keep-alive connection is open gets 403 on its next request, and
// the connection is closed (HTTP/1.1). Use it behind a server configured by
// [ServerConfig]; the check is one map lookup.
func RejectRevoked(rc RevocationChecker, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			writeError(w, http.StatusUnauthorized, "unauthenticated", ErrNoClientCertificate.Error())
			return
		}
		if err := rc.Check(r.TLS.PeerCertificates[0]); err != nil {
			code := "revoked"
			if errors.Is(err, ErrRevocationStale) {
				code = "unavailable"
			}
			if r.ProtoMajor == 1 {
				w.Header().Set("Connection", "close")
			}
			writeError(w, http.StatusForbidden, code, err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeError answers in certgate's API error format.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
