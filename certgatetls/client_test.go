package certgatetls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testca"
)

// renew does what the agent does: authenticate with the certificate in
// dir, renew it over mTLS for a new key, and write the result back (key
// first). It returns the new serial.
func (d *demo) renew(t *testing.T, dir string) string {
	t.Helper()
	cur, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.FromCertificate(cur.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := keytype.Generate(keytype.ECDSAP256)
	csrPEM, err := csr.Create(key, id)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(d.Root)
	cl, err := apiclient.New(apiclient.Options{ServerURL: d.ServerURL, Roots: roots, Certificate: &cur})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.CloseIdleConnections()
	resp, err := cl.Renew(context.Background(), string(csrPEM))
	if err != nil {
		t.Fatal(err)
	}
	var certs [3][]*x509.Certificate
	for i, p := range []string{resp.Certificate, resp.Chain, resp.Bundle} {
		if certs[i], err = pemutil.ParseCertificates([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeDir(dir, key, append(certs[0], certs[1]...), certs[2]); err != nil {
		t.Fatal(err)
	}
	return resp.Serial
}

// A client sends requests without pause through the real gateway while
// its certificate is renewed three times on disk. No request fails, every
// certificate is seen by the API, and no request that started after a
// rotation was made with an older certificate.
func TestClientRotationFailsNoRequest(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) { testRotation(t, h2) })
	}
}

func testRotation(t *testing.T, h2 bool) {
	d := newDemo(t)
	gw, err := d.startGateway("spiffe://example.org/svc/*")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := d.enrollDir("billing", "/svc/billing")
	if err != nil {
		t.Fatal(err)
	}
	src, err := certgatetls.NewSource(dir, certgatetls.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	client := certgatetls.NewHTTPClient(src, certgatetls.ClientOptions{DisableHTTP2: !h2})
	defer client.CloseIdleConnections()

	type result struct {
		startGen uint64
		serial   string
		err      error
	}
	var (
		mu      sync.Mutex
		results []result
		seen    = map[string]bool{}
		genOf   = map[string]uint64{src.Current().Serial: src.Current().Generation}
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	wantMajor := 1
	if h2 {
		wantMajor = 2
	}
	call := func() result {
		g0 := src.Current().Generation
		resp, err := client.Get(gw + "/v1/invoices")
		if err != nil {
			return result{startGen: g0, err: err}
		}
		defer resp.Body.Close()
		var echo struct{ Identity, Serial string }
		err = json.NewDecoder(resp.Body).Decode(&echo)
		switch {
		case err != nil:
		case resp.StatusCode != 200:
			err = errors.New(resp.Status)
		case resp.ProtoMajor != wantMajor:
			err = errors.New("answered over " + resp.Proto)
		case echo.Identity != "spiffe://example.org/svc/billing":
			err = errors.New("identity " + echo.Identity)
		}
		return result{startGen: g0, serial: echo.Serial, err: err}
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := call()
				mu.Lock()
				results = append(results, r)
				seen[r.serial] = true
				mu.Unlock()
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	for range 3 {
		time.Sleep(100 * time.Millisecond)
		serial := d.renew(t, dir)
		waitFor("the source to load "+serial, func() bool { return src.Current().Serial == serial })
		mu.Lock()
		genOf[serial] = src.Current().Generation
		mu.Unlock()
		waitFor("a request with "+serial, func() bool { mu.Lock(); defer mu.Unlock(); return seen[serial] })
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()

	if len(genOf) != 4 {
		t.Fatalf("%d certificates, want 4", len(genOf))
	}
	failed := 0
	for _, r := range results {
		switch g, ok := genOf[r.serial]; {
		case r.err != nil:
			failed++
			if failed <= 5 {
				t.Errorf("request failed: %v", r.err)
			}
		case !ok:
			t.Errorf("the API saw serial %q, not one of ours", r.serial)
		case g < r.startGen:
			t.Errorf("a request started at generation %d used the certificate of generation %d", r.startGen, g)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests failed", failed, len(results))
	}
	t.Logf("%d requests, 3 rotations, 0 failed", len(results))
}

func TestClientRefusesServers(t *testing.T) {
	ca := testca.New(t, "example.org")
	dir := t.TempDir()
	writeCreds(t, dir, ca.Issue(t), ca.BundlePEM())
	src, err := certgatetls.NewSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	client := certgatetls.NewHTTPClient(src, certgatetls.ClientOptions{})

	serve := func(cfg *tls.Config) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		// No HTTP/2: it would refuse to start with a CBC-only suite list.
		srv := &http.Server{TLSConfig: cfg, Handler: http.NotFoundHandler(), ErrorLog: discardLog,
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		go srv.ServeTLS(ln, "", "")
		t.Cleanup(func() { srv.Close() })
		return "https://" + ln.Addr().String() + "/"
	}

	// A server of another CA.
	other := testca.New(t, "example.org").Issue(t, testca.Server("spiffe://example.org/server")).TLSCertificate()
	_, err = client.Get(serve(&tls.Config{Certificates: []tls.Certificate{other}}))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("server of another CA: %v, want x509.UnknownAuthorityError", err)
	}

	// A server of our CA, but named for another host.
	misnamed := ca.Issue(t, testca.WithID("spiffe://example.org/server"), testca.WithDNS("api.example.org"),
		testca.WithEKU(x509.ExtKeyUsageServerAuth)).TLSCertificate()
	_, err = client.Get(serve(&tls.Config{Certificates: []tls.Certificate{misnamed}}))
	var hostErr x509.HostnameError
	if !errors.As(err, &hostErr) {
		t.Errorf("misnamed server: %v, want x509.HostnameError", err)
	}

	// Unless the client is told that name.
	named := certgatetls.NewHTTPClient(src, certgatetls.ClientOptions{ServerName: "api.example.org"})
	if resp, err := named.Get(serve(&tls.Config{Certificates: []tls.Certificate{misnamed}})); err != nil {
		t.Errorf("misnamed server with ServerName: %v", err)
	} else {
		resp.Body.Close()
	}

	// A server stuck at TLS 1.1.
	good := ca.Issue(t, testca.Server("spiffe://example.org/server")).TLSCertificate()
	_, err = client.Get(serve(&tls.Config{Certificates: []tls.Certificate{good}, MaxVersion: tls.VersionTLS11}))
	if err == nil || !strings.HasSuffix(err.Error(), "remote error: tls: protocol version not supported") {
		t.Errorf("TLS 1.1 server: %v", err)
	}

	// The same server with TLS 1.2 and only a CBC suite.
	_, err = client.Get(serve(&tls.Config{Certificates: []tls.Certificate{good}, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}))
	if err == nil || !strings.HasSuffix(err.Error(), "remote error: tls: handshake failure") {
		t.Errorf("CBC-only server: %v", err)
	}

	// And with TLS 1.2 and a modern suite it works, presenting our
	// certificate.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{good}, MaxVersion: tls.VersionTLS12, ClientAuth: tls.RequireAnyClientCert},
		ErrorLog:  discardLog,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.TLS.PeerCertificates[0].SerialNumber.Text(16))
		}),
	}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.TLS.Version != tls.VersionTLS12 || string(b) != src.Current().Serial {
		t.Fatalf("TLS version %x, server saw serial %q, want %s", resp.TLS.Version, b, src.Current().Serial)
	}
}

var discardLog = log.New(io.Discard, "", 0)
