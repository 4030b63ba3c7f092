package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
)

// env is a running server on 127.0.0.1 with a real CA and a real SQLite
// store in a temporary directory.
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
	faults *faultyStore
}

// faultyStore lets a test make RecordIssuance fail.
type faultyStore struct {
	store.Store
	recordErr error
}

func (f *faultyStore) RecordIssuance(ctx context.Context, is store.Issuance) error {
	if f.recordErr != nil {
		return f.recordErr
	}
	return f.Store.RecordIssuance(ctx, is)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: clock.NewFake(time.Now().UTC().Truncate(time.Second)), td: "example.org"}
	rootKey, _ := keytype.Generate(keytype.ECDSAP256)
	root, err := ca.CreateRoot(ca.RootOptions{TrustDomain: e.td, Key: rootKey, Now: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	interKey, _ := keytype.Generate(keytype.ECDSAP256)
	inter, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: interKey, Now: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	e.faults = &faultyStore{Store: st}
	iss, err := ca.NewIssuer(inter, interKey, e.td, e.clock)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "https://" + ln.Addr().String()
	iss.CRLURL, iss.OCSPURL = e.url+"/crl", e.url+"/ocsp"
	e.authz, err = ca.NewService(ca.ServiceOptions{Issuer: iss, Roots: []*x509.Certificate{root}, Store: e.faults, Clock: e.clock, ServerURL: e.url})
	if err != nil {
		t.Fatal(err)
	}
	e.srv, err = server.New(server.Options{Authority: e.authz, Store: st, Clock: e.clock, Hostnames: []string{"127.0.0.1"}, MaxBodyBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	e.root = root
	e.roots = x509.NewCertPool()
	e.roots.AddCert(root)
	e.admin = e.clientCert("/admin/alice", ca.ClientProfile)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	// Wait until the server answers, so its serving certificate is recorded
	// before a test counts certificates.
	for i := 0; ; i++ {
		if _, _, err := e.client(&e.admin).Revocations(ctx); err == nil {
			break
		} else if i == 100 {
			t.Fatalf("server not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

// clientCert issues a certificate for path directly (no token).
func (e *env) clientCert(path string, p ca.Profile) tls.Certificate {
	e.t.Helper()
	key, _ := keytype.Generate(keytype.ECDSAP256)
	id, err := identity.New(e.td, path)
	if err != nil {
		e.t.Fatal(err)
	}
	iss, err := e.authz.IssueDirect(context.Background(), ca.Request{PublicKey: key.Public(), Identity: id}, p, store.ObtainedInit, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{iss.Cert.Raw, iss.Chain[0].Raw}, PrivateKey: key, Leaf: iss.Cert}
}

// client returns an API client presenting cert (nil: no certificate).
func (e *env) client(cert *tls.Certificate) *apiclient.Client {
	e.t.Helper()
	c, err := apiclient.New(apiclient.Options{ServerURL: e.url, Roots: e.roots, Certificate: cert, Timeout: 10 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.CloseIdleConnections)
	return c
}

func (e *env) certCount() int {
	e.t.Helper()
	certs, err := e.store.ListCertificates(context.Background(), store.CertFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(certs)
}
