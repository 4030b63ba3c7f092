package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
)

// AdminPath is the SPIFFE ID path of the admin certificate every Env has.
const AdminPath = "/admin/alice"

// readyTimeout bounds the wait for a new server's first handshake.
const readyTimeout = 30 * time.Second

// Env is a running control plane: CA, store, CA service and server.
type Env struct {
	Dir          string // temporary directory holding the store
	TrustDomain  string
	Clock        clock.Clock // what the CA, the service and the server run on
	Store        *store.SQL  // the store itself, without the WithStore wrapper
	Authority    *ca.Service
	Server       *server.Server // the instance serving now (RestartServer makes a new one)
	Addr         string         // the listener's address, host:port
	URL          string         // https URL the server is reached at and tokens name
	Root         *x509.Certificate
	Intermediate *x509.Certificate
	Roots        *x509.CertPool // holds Root
	BundlePEM    []byte         // Root, PEM-encoded
	AdminID      identity.ID    // spiffe://TRUST_DOMAIN/admin/alice
	AdminCert    tls.Certificate

	serverOpts server.Options
	closers    []func() error // run in reverse order by Close

	mu   sync.Mutex
	stop func() error // stops the running server; nil when stopped
}

// Option changes how [New] and [Start] build the Env.
type Option func(*options)

type options struct {
	clock       clock.Clock
	trustDomain string
	wrapStore   func(store.Store) store.Store
	server      []func(*server.Options)
	service     []func(*ca.ServiceOptions)
	listener    net.Listener
	serverURL   string
	statusURLs  bool
	dir         string
}

// WithClock runs the CA, the service and the server on c (a *clock.Fake)
// instead of the real clock.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithTrustDomain sets the trust domain; "example.org" by default.
func WithTrustDomain(td string) Option { return func(o *options) { o.trustDomain = td } }

// WithStore wraps the store the CA service records through (tokens,
// issuance, revocation), e.g. in a storetest.Faulty to inject failures.
// The server reads the SQLite store directly.
func WithStore(wrap func(store.Store) store.Store) Option {
	return func(o *options) { o.wrapStore = wrap }
}

// WithServerOptions changes the server's options after the defaults
// (authority, store, clock, the listener's host as host name) are set.
func WithServerOptions(f func(*server.Options)) Option {
	return func(o *options) { o.server = append(o.server, f) }
}

// WithServiceOptions changes the CA service's options after the defaults
// are set, e.g. the client profile's lifetime or the default token TTL.
func WithServiceOptions(f func(*ca.ServiceOptions)) Option {
	return func(o *options) { o.service = append(o.service, f) }
}

// WithListener serves on ln instead of a new listener on 127.0.0.1:0.
// The Env closes it when the server stops.
func WithListener(ln net.Listener) Option { return func(o *options) { o.listener = ln } }

// WithServerURL sets the URL tokens name and clients are given, when
// they reach the server through something in between (a relay the test
// controls); https://ADDR by default.
func WithServerURL(u string) Option { return func(o *options) { o.serverURL = u } }

// WithStatusURLs puts URL/crl and URL/ocsp into issued certificates, as a
// CA directory made by `certgate init` does.
func WithStatusURLs() Option { return func(o *options) { o.statusURLs = true } }

// Start builds and starts an Env in the test's temporary directory, and
// stops it when the test ends. It fails the test if anything fails.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	dir := t.TempDir()
	e, err := New(append(append([]Option(nil), opts...), func(o *options) { o.dir = dir })...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// New builds and starts an Env in a new temporary directory, for callers
// without a *testing.T (examples); [Env.Close] stops it and removes the
// directory. It returns once the server completes TLS handshakes.
func New(opts ...Option) (_ *Env, err error) {
	o := options{clock: clock.Real{}, trustDomain: "example.org"}
	for _, opt := range opts {
		opt(&o)
	}
	e := &Env{TrustDomain: o.trustDomain, Clock: o.clock, Dir: o.dir}
	ln := o.listener
	defer func() {
		if err != nil {
			if ln != nil {
				ln.Close()
			}
			e.Close()
		}
	}()
	if e.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "certgate-testenv-"); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
		dir := e.Dir
		e.closers = append(e.closers, func() error { return os.RemoveAll(dir) })
	}
	iss, err := e.makeCA()
	if err != nil {
		return nil, err
	}
	if e.Store, err = store.OpenSQLite(context.Background(), filepath.Join(e.Dir, "certgate.db")); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	e.closers = append(e.closers, e.Store.Close)
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
	}
	e.Addr = ln.Addr().String()
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	e.URL = "https://" + e.Addr
	if o.serverURL != "" {
		e.URL = o.serverURL
	}
	if o.statusURLs {
		iss.CRLURL, iss.OCSPURL = e.URL+"/crl", e.URL+"/ocsp"
	}
	var authStore store.Store = e.Store
	if o.wrapStore != nil {
		authStore = o.wrapStore(e.Store)
	}
	so := ca.ServiceOptions{Issuer: iss, Roots: []*x509.Certificate{e.Root}, Store: authStore, Clock: e.Clock, ServerURL: e.URL}
	for _, f := range o.service {
		f(&so)
	}
	if e.Authority, err = ca.NewService(so); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	if e.AdminID, err = identity.New(e.TrustDomain, AdminPath); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	if e.AdminCert, err = e.issue(AdminPath, ca.ClientProfile); err != nil {
		return nil, err
	}
	// Roles are data: the admin is granted admin, and (as an installation
	// migrated from path roles has it) every /gateway/ identity the gateway
	// role, so tests of gateways need no grants of their own.
	for _, g := range []roles.Grant{
		{Role: roles.Admin, Holder: e.AdminID.String()},
		{Role: roles.Gateway, Holder: "spiffe://" + e.TrustDomain + identity.GatewayPrefix + "*"},
	} {
		g.GrantedBy, g.GrantedAt = "system:testenv", e.Clock.Now()
		if err := e.Store.GrantRole(context.Background(), g); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
	}
	e.serverOpts = server.Options{Authority: e.Authority, Store: e.Store, Clock: e.Clock, Hostnames: []string{host}}
	for _, f := range o.server {
		f(&e.serverOpts)
	}
	served := ln
	ln = nil // serve owns it now
	if err := e.serve(served); err != nil {
		return nil, err
	}
	return e, nil
}

// makeCA creates the root and the intermediate (ECDSA P-256, at the
// clock's time) and returns the intermediate's issuer.
func (e *Env) makeCA() (*ca.Issuer, error) {
	now := e.Clock.Now()
	rootKey, err := keytype.Generate(keytype.ECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	if e.Root, err = ca.CreateRoot(ca.RootOptions{TrustDomain: e.TrustDomain, Key: rootKey, Now: now}); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	interKey, err := keytype.Generate(keytype.ECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	e.Intermediate, err = ca.CreateIntermediate(ca.IntermediateOptions{Root: e.Root, RootKey: rootKey, Key: interKey, Now: now})
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	e.Roots = x509.NewCertPool()
	e.Roots.AddCert(e.Root)
	e.BundlePEM = pemutil.EncodeCertificates(e.Root)
	iss, err := ca.NewIssuer(e.Intermediate, interKey, e.TrustDomain, e.Clock)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	return iss, nil
}

// serve runs a new server instance on ln and waits until it completes a
// TLS handshake (its serving certificate is recorded by then).
func (e *Env) serve(ln net.Listener) error {
	srv, err := server.New(e.serverOpts)
	if err != nil {
		ln.Close()
		return fmt.Errorf("testenv: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	var serveErr error
	go func() {
		defer close(served)
		serveErr = srv.Serve(ctx, ln)
	}()
	stop := func() error {
		cancel()
		<-served
		ln.Close() // Serve leaves it open when it fails before serving
		if serveErr != nil {
			return fmt.Errorf("testenv: serve: %w", serveErr)
		}
		return nil
	}
	if err := e.waitReady(served); err != nil {
		return errors.Join(err, stop())
	}
	e.mu.Lock()
	e.Server, e.stop = srv, stop
	e.mu.Unlock()
	return nil
}

// waitReady completes one TLS handshake with the server, verifying its
// certificate against Roots at the Env's time. A server that stops first
// is not ready.
func (e *Env) waitReady(served <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		d := tls.Dialer{Config: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // verified below without a host name
			VerifyConnection:   e.verifyServer,
		}}
		c, err := d.DialContext(ctx, "tcp", e.Addr)
		if err == nil {
			c.Close()
		}
		result <- err
	}()
	select {
	case err := <-result:
		if err != nil {
			return fmt.Errorf("testenv: server not ready: %w", err)
		}
		return nil
	case <-served:
		cancel()
		<-result
		return errors.New("testenv: the server stopped before it was ready")
	}
}

func (e *Env) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no server certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: e.Roots, Intermediates: inter,
		CurrentTime: e.Clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// StopServer stops the server; its address refuses connections after.
// It returns the error the server stopped with, if any.
func (e *Env) StopServer() error {
	e.mu.Lock()
	stop := e.stop
	e.stop = nil
	e.mu.Unlock()
	if stop == nil {
		return nil
	}
	return stop()
}

// RestartServer serves again on the same address with a new server
// instance, and waits until it completes a TLS handshake.
func (e *Env) RestartServer() error {
	e.mu.Lock()
	running := e.stop != nil
	e.mu.Unlock()
	if running {
		return errors.New("testenv: the server is running")
	}
	ln, err := net.Listen("tcp", e.Addr)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return e.serve(ln)
}

// Close stops the server, closes the store and removes a directory New
// made. It returns every problem it met, joined.
func (e *Env) Close() error {
	errs := []error{e.StopServer()}
	for i := len(e.closers) - 1; i >= 0; i-- {
		if err := e.closers[i](); err != nil {
			errs = append(errs, fmt.Errorf("testenv: %w", err))
		}
	}
	e.closers = nil
	return errors.Join(errs...)
}
