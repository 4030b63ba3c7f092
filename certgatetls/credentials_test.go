package certgatetls_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"crypto"
	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testca"
)

// TestCredentialsRoundTrip: what WriteCredentials writes, ReadCredentials
// and a Source read back, with the modes the format promises.
func TestCredentialsRoundTrip(t *testing.T) {
	ca := testca.New(t, "example.org")
	leaf := ca.Issue(t, testca.WithID("spiffe://example.org/svc/billing"))
	c, err := certgatetls.NewCredentials(leaf.Key, leaf.Chain, []*x509.Certificate{ca.Root})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "creds") // made by the writer
	if err := certgatetls.WriteCredentials(dir, c); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{".": 0o700, certgatetls.KeyFile: 0o600, certgatetls.CertFile: 0o644, certgatetls.BundleFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != mode {
			t.Errorf("%s: mode %v, want %v", name, got, mode)
		}
	}
	cert, _ := os.ReadFile(filepath.Join(dir, certgatetls.CertFile))
	if !bytes.Equal(cert, pemutil.EncodeCertificates(leaf.Chain...)) {
		t.Error("cert.pem is not the chain, leaf first")
	}

	got, err := certgatetls.ReadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity != "spiffe://example.org/svc/billing" || got.Serial != leaf.Cert.SerialNumber.Text(16) ||
		!got.NotAfter.Equal(leaf.Cert.NotAfter) || len(got.Chain) != len(leaf.Chain) || !got.Chain[0].Equal(leaf.Cert) ||
		len(got.Bundle) != 1 || !got.Bundle[0].Equal(ca.Root) || !got.Roots.Equal(ca.Pool()) || got.Generation != 0 {
		t.Fatalf("read back %+v", got)
	}
	if !slices.EqualFunc(got.Certificate.Certificate, c.Certificate.Certificate, bytes.Equal) || got.Certificate.Leaf == nil {
		t.Fatal("the tls.Certificate differs")
	}
	type equaler interface{ Equal(crypto.PrivateKey) bool }
	if k, ok := got.Key().(equaler); !ok || !k.Equal(leaf.Key) {
		t.Fatal("another key read back")
	}
	if l, err := certgatetls.ReadLeaf(dir); err != nil || !l.Equal(leaf.Cert) {
		t.Fatalf("ReadLeaf = %v, %v", l, err)
	}
	src, err := certgatetls.NewSource(dir, certgatetls.WithPollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Current().Serial != got.Serial {
		t.Fatal("a Source reads another certificate")
	}
}

// TestReadCredentialsErrors: a missing file is os.ReadFile's error; the
// others name the file. Validity is not judged (an agent must read an
// expired certificate to report it).
func TestReadCredentialsErrors(t *testing.T) {
	ca := testca.New(t, "example.org")
	good := ca.Issue(t)
	dir := t.TempDir()
	_, err := certgatetls.ReadCredentials(dir)
	if want := "open " + filepath.Join(dir, "key.pem") + ": no such file or directory"; err == nil || err.Error() != want || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty directory: %v", err)
	}
	if _, err := certgatetls.ReadLeaf(dir); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadLeaf of an empty directory: %v", err)
	}

	writeCreds(t, dir, good, ca.BundlePEM())
	writeKey(t, dir, ca.Issue(t))
	_, err = certgatetls.ReadCredentials(dir)
	want := "certgatetls: private key does not match the certificate: " + filepath.Join(dir, "key.pem") + " does not hold the key of " + filepath.Join(dir, "cert.pem")
	if err == nil || err.Error() != want || !errors.Is(err, certgatetls.ErrKeyMismatch) {
		t.Fatalf("mismatched key: %v", err)
	}

	expired := ca.Issue(t, testca.WithValidity(time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)))
	writeCreds(t, dir, expired, ca.BundlePEM())
	if c, err := certgatetls.ReadCredentials(dir); err != nil || c.Serial != expired.Cert.SerialNumber.Text(16) {
		t.Fatalf("expired credentials: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("not PEM\n"), 0o644)
	if _, err := certgatetls.ReadLeaf(dir); err == nil || !strings.HasPrefix(err.Error(), "certgatetls: "+filepath.Join(dir, "cert.pem")+": ") {
		t.Fatalf("ReadLeaf of garbage: %v", err)
	}
}

func TestNewCredentialsRefuses(t *testing.T) {
	ca := testca.New(t, "example.org")
	a, b := ca.Issue(t), ca.Issue(t)
	noID := ca.Issue(t, testca.WithoutID(), testca.WithCN("x"))
	roots := []*x509.Certificate{ca.Root}
	for _, c := range []struct {
		name         string
		chain, roots []*x509.Certificate
		key          crypto.Signer
		want         string
	}{
		{"no chain", nil, roots, a.Key, "certgatetls: no certificate"},
		{"no bundle", a.Chain, nil, a.Key, "certgatetls: empty trust bundle"},
		{"another key", a.Chain, roots, b.Key, "certgatetls: private key does not match the certificate"},
		{"no SPIFFE ID", noID.Chain, roots, noID.Key, "certgatetls: certificate: certificate has no SPIFFE ID"},
	} {
		_, err := certgatetls.NewCredentials(c.key, c.chain, c.roots)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
}

func TestServerURLFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := certgatetls.ReadServerURL(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	if err := certgatetls.WriteServerURL(dir, "https://ca.example:8443"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, certgatetls.ServerURLFile)); string(b) != "https://ca.example:8443\n" {
		t.Fatalf("server.url holds %q", b)
	}
	if u, err := certgatetls.ReadServerURL(dir); err != nil || u != "https://ca.example:8443" {
		t.Fatalf("read back %q, %v", u, err)
	}
}
