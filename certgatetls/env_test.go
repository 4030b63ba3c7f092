package certgatetls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"crypto"
	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
)

const trustDomain = "example.org"

// demo is a throwaway certgate on 127.0.0.1: a real CA, the real server on
// a SQLite store in a temporary directory (internal/testenv), and on
// demand a real gateway in front of an echo API. It takes no *testing.T so
// the examples can use it.
type demo struct {
	Dir       string // temporary root, removed by Close
	ServerURL string
	Root      *x509.Certificate
	Authority *ca.Service

	env     *testenv.Env
	cleanup []func()
}

// startDemo starts the CA and the server.
func startDemo() (*demo, error) {
	e, err := testenv.New(testenv.WithTrustDomain(trustDomain))
	if err != nil {
		return nil, err
	}
	d := &demo{Dir: e.Dir, ServerURL: e.URL, Root: e.Root, Authority: e.Authority, env: e}
	d.cleanup = append(d.cleanup, func() { e.Close() })
	return d, nil
}

// Close stops everything and removes the temporary directory.
func (d *demo) Close() {
	for i := len(d.cleanup) - 1; i >= 0; i-- {
		d.cleanup[i]()
	}
	d.cleanup = nil
}

// issueDir issues a certificate for path with profile directly (as the CA
// does for its own use) and writes it into a new directory the way enroll
// and the agent do. Hostnames go into profiles that allow them.
func (d *demo) issueDir(name, path string, p ca.Profile, extraRoots ...*x509.Certificate) (string, ca.Issued, error) {
	key, err := keytype.Generate(keytype.ECDSAP256)
	if err != nil {
		return "", ca.Issued{}, err
	}
	id, err := identity.New(trustDomain, path)
	if err != nil {
		return "", ca.Issued{}, err
	}
	req := ca.Request{PublicKey: key.Public(), Identity: id}
	if p.AllowHostnames {
		req.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		req.DNSNames = []string{"localhost"}
	}
	iss, err := d.Authority.IssueDirect(context.Background(), req, p, store.ObtainedInit, "test")
	if err != nil {
		return "", ca.Issued{}, err
	}
	dir := filepath.Join(d.Dir, name)
	err = writeDir(dir, key, append([]*x509.Certificate{iss.Cert}, iss.Chain...), append(iss.Roots, extraRoots...))
	return dir, iss, err
}

// writeDir writes a credentials directory with the package's writer.
func writeDir(dir string, key crypto.Signer, chain, bundle []*x509.Certificate) error {
	c, err := certgatetls.NewCredentials(key, chain, bundle)
	if err != nil {
		return err
	}
	return certgatetls.WriteCredentials(dir, c)
}

// enrollDir enrolls path the way `certgate enroll` does: an admin mints a
// token, the client makes its key and redeems the token over HTTPS.
func (d *demo) enrollDir(name, path string) (string, error) {
	ctx := context.Background()
	id, err := identity.New(trustDomain, path)
	if err != nil {
		return "", err
	}
	tok, err := d.Authority.CreateToken(ctx, "spiffe://example.org/admin/test", id, time.Hour)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(d.Dir, name)
	_, err = enroll.Enroll(ctx, enroll.Options{Token: tok.String(), OutDir: dir})
	return dir, err
}

// revoke revokes one certificate by serial.
func (d *demo) revoke(serial string) error {
	_, err := d.Authority.Revoke(context.Background(), store.RevokeRequest{Serial: serial, Reason: 1, By: "spiffe://example.org/admin/test"})
	return err
}

// echoAPI answers every request with the identity the gateway forwarded.
func echoAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"identity": r.Header.Get(gateway.HeaderIdentity),
		"serial":   r.Header.Get(gateway.HeaderSerial),
		"path":     r.URL.Path,
	})
}

// startGateway runs the real gateway in front of the echo API, letting in
// the identities in allow. Its own certificate is a gateway certificate for
// 127.0.0.1 and localhost, and it follows the server's revocations.
func (d *demo) startGateway(allow ...string) (string, error) {
	up := &http.Server{Handler: http.HandlerFunc(echoAPI), ReadHeaderTimeout: 5 * time.Second}
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go up.Serve(uln)
	d.cleanup = append(d.cleanup, func() { up.Close() })

	dir, _, err := d.issueDir("gateway", "/gateway/gw1", ca.GatewayProfile)
	if err != nil {
		return "", err
	}
	allowJSON, _ := json.Marshal(allow)
	cfgPath := filepath.Join(dir, "gateway.yaml")
	y := fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: %s
bundle: %s
cert: %s
key: %s
routes:
  - name: api
    path_prefix: /
    upstream: http://%s
    allow: %s
`, trustDomain, filepath.Join(dir, "bundle.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), uln.Addr(), allowJSON)
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		return "", err
	}
	cfg, err := gateway.LoadConfig(cfgPath)
	if err != nil {
		return "", err
	}
	holder := revocation.NewHolder()
	access := accesslog.New(io.Discard)
	gw, err := gateway.New(cfg, gateway.Options{Clock: clock.Real{}, AccessLog: access, Revocations: holder})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.Start(ctx); err != nil {
		cancel()
		return "", err
	}
	// The gateway follows revocations with its own certificate, the way
	// `certgate gateway` wires it; a certgatetls Source holds it here.
	src, err := certgatetls.NewSource(dir)
	if err != nil {
		cancel()
		gw.Close()
		return "", err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: src.Roots(), GetClientCertificate: src.GetClientCertificate}
	p := revocation.NewPuller(d.ServerURL, tc, 50*time.Millisecond, clock.Real{}, slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.Run(ctx, holder) }()
	d.cleanup = append(d.cleanup, func() { cancel(); wg.Wait(); gw.Close(); access.Close(); src.Close() })
	return "https://" + gw.Addr().String(), nil
}

func readLeaf(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := pemutil.ParseCertificates(b)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs[0], nil
}
