package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
	"github.com/certgate/certgate/internal/testenv"
)

// env is a running server on 127.0.0.1 with a real CA and a real SQLite
// store in a temporary directory (internal/testenv), on a fake clock.
type env struct {
	t      *testing.T
	clock  *clock.Fake
	store  store.Store
	authz  *ca.Service
	srv    *server.Server
	url    string
	roots  *x509.CertPool
	root   *x509.Certificate
	admin  tls.Certificate
	td     string
	faults *recordFault
	te     *testenv.Env
}

// recordFault makes the CA service's RecordIssuance fail while an error
// is set.
type recordFault struct {
	mu  sync.Mutex
	err error
}

func (f *recordFault) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *recordFault) fail(method string) error {
	if method != "RecordIssuance" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	faults := &recordFault{}
	te := testenv.Start(t, testenv.WithClock(clk), testenv.WithStatusURLs(),
		testenv.WithStore(func(s store.Store) store.Store { return &storetest.Faulty{Store: s, Fail: faults.fail} }),
		testenv.WithServerOptions(func(o *server.Options) { o.MaxBodyBytes = 64 << 10 }))
	return &env{t: t, clock: clk, store: te.Store, authz: te.Authority, srv: te.Server, url: te.URL, roots: te.Roots,
		root: te.Root, admin: te.AdminCert, td: te.TrustDomain, faults: faults, te: te}
}

// clientCert issues a certificate for path directly (no token).
func (e *env) clientCert(path string, p ca.Profile) tls.Certificate {
	e.t.Helper()
	return e.te.IssueDirect(e.t, path, p)
}

// client returns an API client presenting cert (nil: no certificate).
func (e *env) client(cert *tls.Certificate) *apiclient.Client {
	e.t.Helper()
	return e.te.Client(e.t, cert)
}

func (e *env) certCount() int {
	e.t.Helper()
	certs, err := e.store.ListCertificates(context.Background(), store.CertFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(certs)
}
