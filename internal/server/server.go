package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/certstatus"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/drain"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/server/feedserver"
	"github.com/certgate/certgate/internal/staple"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/tlspolicy"
	"github.com/certgate/certgate/internal/wire"
)

// Store is what the API reads directly; writes go through the CA service.
type Store interface {
	GetCertificate(ctx context.Context, serial string) (store.Certificate, error)
	ListCertificates(ctx context.Context, f store.CertFilter) ([]store.Certificate, error)
	AuditRecords(ctx context.Context, after int64, limit int) ([]audit.Record, error)
	Unrecorded(ctx context.Context) ([]store.Unrecorded, error)
	AppendAudit(ctx context.Context, e audit.Entry) (audit.Record, error)
	RevocationSnapshot(ctx context.Context, now time.Time) (store.Snapshot, error)
	Events(ctx context.Context, after int64, limit int) ([]store.Event, error)
	LastPosition(ctx context.Context) (int64, error)
	ListCAs(ctx context.Context) ([]store.CACert, error)
	RecordUsage(ctx context.Context, r store.UsageReport) (bool, error)
	IdentitiesSeen(ctx context.Context) ([]store.Seen, error)
	CertificatesSeen(ctx context.Context) (map[string]store.Seen, error)
	UsageDays(ctx context.Context, identity, from string) ([]store.UsageRow, error)
	RoleGrants(ctx context.Context) ([]roles.Grant, error)
	GrantRole(ctx context.Context, g roles.Grant) error
	RevokeRole(ctx context.Context, g roles.Grant, by string, now time.Time) error
	LegacyKeyStore
	Ping(ctx context.Context) error
}

// Options configures a Server.
type Options struct {
	Authority *ca.Service
	Store     Store
	Clock     clock.Clock
	Log       *slog.Logger
	// Hostnames go into the serving certificate: DNS names and IP literals.
	Hostnames         []string
	ServerProfile     ca.Profile
	MaxBodyBytes      int64
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	// FeedHeartbeat is how often an idle change feed says it is alive.
	FeedHeartbeat time.Duration
	// Status tunes the CRL and OCSP responder; zero fields are defaults.
	Status certstatus.Settings
	// ESTBootstrap are the CAs whose certificates may enroll over EST
	// without a token; none by default.
	ESTBootstrap []ESTBootstrap
	// Checkpoints, when set, is the audit log's newest signed checkpoint,
	// served at GET /v1/audit/checkpoint; AuditKey verifies it (served at
	// GET /v1/audit/key).
	Checkpoints Checkpoints
	AuditKey    ed25519.PublicKey
	// LegacyAutoRevokeInterval is how often legacy keys past their
	// migration grace are revoked (5 s if zero).
	LegacyAutoRevokeInterval time.Duration
}

// Server is the control-plane HTTPS server.
type Server struct {
	o Options

	feed   *feedserver.Server
	status *certstatus.Service
	// stapler staples the responder's own answer about the serving
	// certificate to every handshake.
	stapler *staple.Stapler
	// streams is cancelled when a graceful shutdown starts: feed streams
	// never go idle, so Shutdown would otherwise wait them out.
	streams     context.Context
	stopStreams context.CancelFunc

	mu      sync.Mutex
	serving *tls.Certificate

	// trust follows the CA's hierarchy: the roots client certificates
	// must chain to and the verifier with its shortcut for leaves of the
	// active intermediate, rebuilt when a rotation changed the hierarchy.
	trustMu sync.Mutex
	trust   atomic.Pointer[serverTrust]

	// csrfKey signs the console's form tokens (console.go); new at every
	// start, so a restart makes open forms stale.
	csrfKey [32]byte
	// gateways are the feed streams and usage reports of this replica,
	// for the console's gateways page.
	gateways gatewayBook

	// chainPEM and bundlePEM keep the PEM text of the last chain and
	// bundle answered to an enrollment or a renewal.
	chainPEM, bundlePEM pemText
}

// serverTrust is the client verification of one hierarchy.
type serverTrust struct {
	h       *ca.Hierarchy
	roots   *x509.CertPool
	clients *clientVerifier
	// clientCAs is roots and the EST bootstrap roots, for the handshake's
	// certificate request.
	clientCAs *x509.CertPool

	once sync.Once
	cfg  *tls.Config
}

// currentTrust returns the verification of the authority's current
// hierarchy, building it once per hierarchy.
func (s *Server) currentTrust() *serverTrust {
	h := s.o.Authority.Hierarchy()
	if t := s.trust.Load(); t != nil && t.h == h {
		return t
	}
	s.trustMu.Lock()
	defer s.trustMu.Unlock()
	if t := s.trust.Load(); t != nil && t.h == h {
		return t
	}
	pool := x509.NewCertPool()
	for _, r := range h.Roots {
		pool.AddCert(r)
	}
	t := &serverTrust{h: h, roots: pool, clientCAs: pool, clients: newClientVerifier(pool, h.Active.Certificate(), s.o.Authority.TrustDomain(), s.o.Clock.Now)}
	if len(s.o.ESTBootstrap) > 0 {
		// The handshake names the bootstrap CAs too, or a client (Go's
		// crypto/tls) would send no certificate.
		t.clientCAs = pool.Clone()
		for _, b := range s.o.ESTBootstrap {
			bp := x509.NewCertPool()
			for _, c := range b.Roots {
				bp.AddCert(c)
				t.clientCAs.AddCert(c)
			}
			t.clients.bootstrap = append(t.clients.bootstrap, bp)
		}
	}
	s.trust.Store(t)
	return t
}

// New returns a Server. Call Run to serve.
func New(o Options) (*Server, error) {
	if o.Authority == nil || o.Store == nil || o.Clock == nil {
		return nil, errors.New("server: needs an authority, a store and a clock")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.ServerProfile.Name == "" {
		o.ServerProfile = ca.ServerProfile
	}
	if o.LegacyAutoRevokeInterval == 0 {
		o.LegacyAutoRevokeInterval = 5 * time.Second
	}
	for _, d := range []*time.Duration{&o.ReadHeaderTimeout, &o.ReadTimeout, &o.IdleTimeout} {
		if *d == 0 {
			*d = 30 * time.Second
		}
	}
	fo := feedserver.Options{Store: o.Store, Clock: o.Clock, Log: o.Log, Heartbeat: o.FeedHeartbeat,
		CA:         func(ctx context.Context, pos int64) (wire.CA, error) { return caState(ctx, o.Store, o.Authority, pos) },
		LegacyKeys: func(ctx context.Context) (wire.LegacyKeySet, error) { return legacyKeySet(ctx, o.Store, o.Clock.Now()) }}
	so := certstatus.Options{Authority: o.Authority, Store: o.Store, Clock: o.Clock, Log: o.Log, Settings: o.Status}
	if n, ok := o.Store.(feedserver.Notifier); ok {
		fo.Notifier = n
		so.Notifier = n
	}
	status, err := certstatus.New(so)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	streams, stopStreams := context.WithCancel(context.Background())
	s := &Server{o: o, feed: feedserver.New(fo), status: status, streams: streams, stopStreams: stopStreams}
	rand.Read(s.csrfKey[:])
	s.stapler = staple.New(func(ctx context.Context, req []byte, _ *x509.Certificate) ([]byte, error) {
		r, err := status.Respond(ctx, req)
		return r.DER, err
	}, o.Clock.Now, o.Log)
	s.currentTrust()
	return s, nil
}

// TLSConfig is the server's TLS configuration: certgate's TLS policy
// (package tlspolicy), client certificates verified against the roots when
// given (enrollment has none), and a serving certificate from our own
// intermediate that renews itself.
func (s *Server) TLSConfig() *tls.Config {
	t0 := s.currentTrust()
	base := s.tlsConfig(t0)
	// Each handshake gets the configuration of the CA's current hierarchy:
	// after a root rotation ClientCAs names both roots, and client
	// certificates are verified against what the CA trusts now.
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		t := s.currentTrust()
		if t == t0 {
			return nil, nil
		}
		return t.config(s), nil
	}
	return base
}

// config is the TLS configuration of t, built once.
func (t *serverTrust) config(s *Server) *tls.Config {
	t.once.Do(func() { t.cfg = s.tlsConfig(t) })
	return t.cfg
}

func (s *Server) tlsConfig(t *serverTrust) *tls.Config {
	return tlspolicy.Apply(&tls.Config{
		// Client certificates are verified when given (enrollment has
		// none) by t.clients, which is cheaper than crypto/tls's own
		// verification for leaves of our intermediate; ClientCAs still
		// tells clients which CAs the server accepts.
		ClientAuth:       tls.RequestClientCert,
		VerifyConnection: t.clients.verifyConnection,
		ClientCAs:        t.clientCAs,
		GetCertificate:   s.getCertificate,
		NextProtos:       []string{"h2", "http/1.1"},
		// Client certificates are judged at the same "now" as everything else.
		Time:             s.o.Clock.Now,
		CurvePreferences: KeyExchanges,
	})
}

// KeyExchanges are the key exchanges the server accepts, X25519 first. The
// hybrid post-quantum X25519MLKEM768, which crypto/tls would otherwise pick
// whenever a client offers it (Go and recent OpenSSL clients do), is left
// out: on the server it adds an ML-KEM encapsulation and a 1,184-byte key
// to parse to every handshake, about as much CPU as the X25519 exchange
// itself (BenchmarkCrypto in internal/ca), and every renewal is a new
// connection. What it would protect against is the later decryption of
// recorded traffic, and the control plane carries nothing that stays
// secret for long: certificates and CSRs are public, an enrollment token is
// single-use and expires within a day. Clients that offer X25519MLKEM768
// also send an X25519 key share, so no HelloRetryRequest is needed.
var KeyExchanges = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}

// getCertificate is the serving certificate with the OCSP response of the
// server's own responder stapled (once it has one: the first handshakes
// after a renewal go without while it is made).
func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := s.servingCert(context.Background())
	if err != nil {
		return nil, err
	}
	return s.stapler.Staple(c), nil
}

// servingCert returns the current serving certificate, issuing a new one
// when none exists or two thirds of its lifetime have passed.
func (s *Server) servingCert(ctx context.Context) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Clock.Now()
	if c := s.serving; c != nil {
		life := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)
		// A rotation made another intermediate active: the next handshake
		// gets a certificate of it, so nothing keeps using the old one.
		current := bytes.Equal(c.Leaf.AuthorityKeyId, s.o.Authority.Issuer().Certificate().SubjectKeyId)
		if current && now.Before(c.Leaf.NotBefore.Add(life*2/3)) {
			return c, nil
		}
	}
	c, err := s.issueServing(ctx)
	if err != nil {
		if s.serving != nil && now.Before(s.serving.Leaf.NotAfter) {
			// Keep serving with the old one; the next handshake tries again.
			s.o.Log.Error("renewing the server certificate failed; keeping the current one", "err", err)
			return s.serving, nil
		}
		return nil, err
	}
	s.serving = c
	return c, nil
}

// Reconfigure changes the serving certificate's host names and lifetime
// (a reload of server.hostnames and profiles.server_lifetime) and issues a
// new serving certificate at once, which the next handshake gets; open
// connections carry on. When the new certificate cannot be issued, the
// old settings and certificate stay and the error says why.
func (s *Server) Reconfigure(ctx context.Context, hostnames []string, lifetime time.Duration) (*x509.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	oldNames, oldLife := s.o.Hostnames, s.o.ServerProfile.Lifetime
	s.o.Hostnames, s.o.ServerProfile.Lifetime = slices.Clone(hostnames), lifetime
	c, err := s.issueServing(ctx)
	if err != nil {
		s.o.Hostnames, s.o.ServerProfile.Lifetime = oldNames, oldLife
		return nil, err
	}
	s.serving = c
	return c.Leaf, nil
}

func (s *Server) issueServing(ctx context.Context) (*tls.Certificate, error) {
	key, err := keytype.Generate(keytype.ECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("server: key: %w", err)
	}
	td := s.o.Authority.TrustDomain()
	id, err := identity.New(td, "/server")
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	req := ca.Request{PublicKey: key.Public(), Identity: id}
	for _, h := range s.o.Hostnames {
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			req.IPAddresses = append(req.IPAddresses, ip)
		} else if h != "" {
			req.DNSNames = append(req.DNSNames, h)
		}
	}
	iss, err := s.o.Authority.IssueDirect(ctx, req, s.o.ServerProfile, store.ObtainedServer, id.String())
	if err != nil {
		return nil, fmt.Errorf("server: serving certificate: %w", err)
	}
	c := &tls.Certificate{Certificate: [][]byte{iss.Cert.Raw}, PrivateKey: key, Leaf: iss.Cert}
	for _, ic := range iss.Chain {
		c.Certificate = append(c.Certificate, ic.Raw)
	}
	// The root goes last so a client holding only an enrollment token (which
	// pins the root's fingerprint) can verify the server on first contact.
	for _, r := range iss.Roots {
		c.Certificate = append(c.Certificate, r.Raw)
	}
	s.o.Log.Info("issued server certificate", "serial", iss.Record.Serial, "not_after", iss.Cert.NotAfter)
	return c, nil
}

// HTTPServer returns the http.Server with the API handler, timeouts and TLS.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: s.o.ReadHeaderTimeout,
		ReadTimeout:       s.o.ReadTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.o.Log.Handler(), slog.LevelDebug),
	}
}

// Serve serves HTTPS on ln until ctx is done, then shuts down gracefully
// (open requests get up to 10 s).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Issue the serving certificate before accepting, so a store that is
	// down is reported at start and not at the first handshake.
	if _, err := s.servingCert(ctx); err != nil {
		return err
	}
	// Likewise the OCSP signer and the first CRL; then keep them current.
	if err := s.status.Start(ctx); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	statusCtx, stopStatus := context.WithCancel(ctx)
	statusDone := make(chan struct{})
	go func() { defer close(statusDone); s.status.Run(statusCtx) }()
	defer func() { stopStatus(); <-statusDone }()
	legacyDone := make(chan struct{})
	go func() { defer close(legacyDone); s.legacyAutoRevoke(statusCtx, s.o.LegacyAutoRevokeInterval) }()
	defer func() { stopStatus(); <-legacyDone }()
	hs := s.HTTPServer()
	hs.RegisterOnShutdown(s.stopStreams)
	// Count the connections a shutdown drains, for its log line.
	var conns drain.Conns
	hs.ConnState = conns.Track
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	start := time.Now()
	active, idle := conns.Count()
	s.o.Log.Info("server shutting down: no new connections; draining", "active_connections", active, "idle_connections", idle,
		"feed_streams", s.feed.Streams(), "grace", "10s")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		s.o.Log.Error("server stopped before every request finished", "err", err, "took", time.Since(start).Round(time.Millisecond).String())
		return fmt.Errorf("server: shutdown: %w", err)
	}
	s.o.Log.Info("server stopped", "drained_active", active, "closed_idle", idle, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}
