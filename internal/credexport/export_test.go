package credexport

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/testca"
)

// TestP12RoundTrip encodes every key type in both encryptions and decodes
// the file back: the same key, leaf and intermediates.
func TestP12RoundTrip(t *testing.T) {
	ca := testca.New(t, "example.org")
	for _, kt := range []keytype.Type{keytype.ECDSAP256, keytype.ECDSAP384, keytype.Ed25519, keytype.RSA2048} {
		for _, legacy := range []bool{false, true} {
			leaf := ca.Issue(t, testca.WithKeyType(kt))
			cert := leaf.TLSCertificate()
			b, err := Encode(cert, Options{Format: P12, Password: "pw", Legacy: legacy})
			if err != nil {
				t.Fatalf("%s legacy=%v: %v", kt, legacy, err)
			}
			key, got, cas, err := pkcs12.DecodeChain(b, "pw")
			if err != nil {
				t.Fatalf("%s legacy=%v: decode: %v", kt, legacy, err)
			}
			if !got.Equal(cert.Leaf) || len(cas) != len(cert.Certificate)-1 || !key.(interface{ Equal(crypto.PrivateKey) bool }).Equal(cert.PrivateKey) {
				t.Fatalf("%s legacy=%v: decoded something else", kt, legacy)
			}
			if _, _, _, err := pkcs12.DecodeChain(b, "wrong"); !errors.Is(err, pkcs12.ErrIncorrectPassword) {
				t.Fatalf("%s: wrong password: %v", kt, err)
			}
		}
	}
}

func TestPEMIsKeyThenChain(t *testing.T) {
	cert := testca.New(t, "example.org").Issue(t).TLSCertificate()
	path := filepath.Join(t.TempDir(), "out.pem")
	if err := WriteFile(path, cert, Options{Format: PEM}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("does not start with the key:\n%s", b)
	}
	tc, err := tls.X509KeyPair(b, b)
	if err != nil || len(tc.Certificate) != len(cert.Certificate) {
		t.Fatalf("not a key pair with the whole chain: %v", err)
	}
}

// deviceKey is a key held elsewhere: only its public half and Sign.
type deviceKey struct{ crypto.Signer }

func TestRefusals(t *testing.T) {
	ca := testca.New(t, "example.org")
	cert := ca.Issue(t).TLSCertificate()
	other := ca.Issue(t).TLSCertificate()
	dir := t.TempDir()
	cases := []struct {
		name string
		cert tls.Certificate
		o    Options
		want string
	}{
		{"device key", tls.Certificate{Certificate: cert.Certificate, PrivateKey: deviceKey{cert.PrivateKey.(crypto.Signer)}}, Options{Format: P12, Password: "pw"},
			"credexport: the private key is held in a hardware key store and never leaves it: it cannot be exported"},
		{"mismatch", tls.Certificate{Certificate: cert.Certificate, PrivateKey: other.PrivateKey}, Options{Format: PEM},
			"credexport: the private key does not match the certificate"},
		{"empty password", cert, Options{Format: P12}, "credexport: an empty PKCS#12 password is refused"},
		{"format", cert, Options{Format: "der"}, `credexport: unknown format "der" (want pem or p12)`},
		{"no certificate", tls.Certificate{PrivateKey: cert.PrivateKey}, Options{Format: PEM}, "credexport: no certificate"},
		{"garbage certificate", tls.Certificate{Certificate: [][]byte{[]byte("junk")}, PrivateKey: cert.PrivateKey}, Options{Format: PEM},
			"credexport: certificate 0: x509: malformed certificate"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, c.name)
		err := WriteFile(path, c.cert, c.o)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a file was written", c.name)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"pem": PEM, "PEM": PEM, "p12": P12, "pkcs12": P12, "PFX": P12} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseFormat("jks"); err == nil || err.Error() != `unknown format "jks" (want pem or p12)` {
		t.Errorf("jks: %v", err)
	}
}
