package testca

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/keytype"
)

// CA is a root and an intermediate, both in memory.
type CA struct {
	TrustDomain     string
	Root            *x509.Certificate
	RootKey         crypto.Signer
	Intermediate    *x509.Certificate
	IntermediateKey crypto.Signer
	now             time.Time
}

// CAOption changes how [New] builds the CA.
type CAOption func(*caOptions)

type caOptions struct {
	now      time.Time
	keyType  keytype.Type
	lifetime time.Duration
}

// WithNow sets the time the CA takes as "now" for its own validity and as the
// default NotBefore of leaves (minus a minute of backdating).
func WithNow(t time.Time) CAOption { return func(o *caOptions) { o.now = t } }

// WithCAKeyType sets the key type of the root and the intermediate.
func WithCAKeyType(kt keytype.Type) CAOption { return func(o *caOptions) { o.keyType = kt } }

// WithCALifetime sets the lifetime of the root and the intermediate.
func WithCALifetime(d time.Duration) CAOption { return func(o *caOptions) { o.lifetime = d } }

// New builds a CA for trustDomain: a root (path length 1) and an
// intermediate (path length 0), ECDSA P-256 unless told otherwise.
func New(t testing.TB, trustDomain string, opts ...CAOption) *CA {
	t.Helper()
	o := caOptions{now: time.Now(), keyType: keytype.ECDSAP256, lifetime: 365 * 24 * time.Hour}
	for _, opt := range opts {
		opt(&o)
	}
	rootKey := genKey(t, o.keyType)
	rootTmpl := &x509.Certificate{
		SerialNumber:          randSerial(t),
		Subject:               pkix.Name{Organization: []string{"certgate test"}, CommonName: trustDomain + " test root"},
		NotBefore:             o.now.Add(-time.Hour),
		NotAfter:              o.now.Add(o.lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	root := sign(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	intKey := genKey(t, o.keyType)
	intTmpl := &x509.Certificate{
		SerialNumber:          randSerial(t),
		Subject:               pkix.Name{Organization: []string{"certgate test"}, CommonName: trustDomain + " test intermediate"},
		NotBefore:             o.now.Add(-time.Hour),
		NotAfter:              o.now.Add(o.lifetime - time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	inter := sign(t, intTmpl, root, intKey.Public(), rootKey)
	return &CA{TrustDomain: trustDomain, Root: root, RootKey: rootKey, Intermediate: inter, IntermediateKey: intKey, now: o.now}
}

// Leaf is an issued certificate, its key and its chain (leaf first, then the
// intermediate).
type Leaf struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// Option shapes a leaf issued by [CA.Issue].
type Option func(*leafOptions)

type leafOptions struct {
	id        string
	cn        string
	eku       []x509.ExtKeyUsage
	notBefore time.Time
	notAfter  time.Time
	keyType   keytype.Type
	dns       []string
	ips       []net.IP
	serial    *big.Int
	uris      []string
}

// WithID sets the SPIFFE ID carried as the URI SAN.
func WithID(id string) Option { return func(o *leafOptions) { o.id = id } }

// WithURIs sets several URI SANs (for "more than one URI" cases).
func WithURIs(uris ...string) Option { return func(o *leafOptions) { o.uris = uris } }

// WithoutID issues a leaf with no URI SAN.
func WithoutID() Option { return func(o *leafOptions) { o.id = "" } }

// WithCN sets the subject common name.
func WithCN(cn string) Option { return func(o *leafOptions) { o.cn = cn } }

// WithEKU sets the extended key usages (default: clientAuth).
func WithEKU(eku ...x509.ExtKeyUsage) Option { return func(o *leafOptions) { o.eku = eku } }

// WithValidity sets NotBefore and NotAfter.
func WithValidity(notBefore, notAfter time.Time) Option {
	return func(o *leafOptions) { o.notBefore, o.notAfter = notBefore, notAfter }
}

// WithKeyType sets the leaf key type (default ECDSA P-256).
func WithKeyType(kt keytype.Type) Option { return func(o *leafOptions) { o.keyType = kt } }

// WithDNS adds DNS SANs (for server certificates).
func WithDNS(names ...string) Option { return func(o *leafOptions) { o.dns = names } }

// WithIPs adds IP SANs (for server certificates).
func WithIPs(ips ...net.IP) Option { return func(o *leafOptions) { o.ips = ips } }

// WithSerial sets the serial number.
func WithSerial(serial *big.Int) Option { return func(o *leafOptions) { o.serial = serial } }

// Server is the option set for a loopback server certificate: serverAuth and
// clientAuth, localhost and 127.0.0.1, and the given SPIFFE ID.
func Server(id string) Option {
	return func(o *leafOptions) {
		o.id = id
		o.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		o.dns = []string{"localhost"}
		o.ips = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
}

// Issue signs a leaf with the intermediate. Without options it is a client
// certificate for spiffe://<td>/svc/test valid from an hour ago for 24 hours.
func (ca *CA) Issue(t testing.TB, opts ...Option) *Leaf {
	t.Helper()
	o := leafOptions{
		id:        "spiffe://" + ca.TrustDomain + "/svc/test",
		eku:       []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		notBefore: ca.now.Add(-time.Hour),
		notAfter:  ca.now.Add(24 * time.Hour),
		keyType:   keytype.ECDSAP256,
	}
	for _, opt := range opts {
		opt(&o)
	}
	key := genKey(t, o.keyType)
	tmpl := &x509.Certificate{
		SerialNumber:          o.serial,
		Subject:               pkix.Name{CommonName: o.cn},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           o.eku,
		BasicConstraintsValid: true,
		DNSNames:              o.dns,
		IPAddresses:           o.ips,
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = randSerial(t)
	}
	uris := o.uris
	if uris == nil && o.id != "" {
		uris = []string{o.id}
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("testca: URI %q: %v", s, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	if tmpl.Subject.CommonName == "" && len(tmpl.URIs) > 0 {
		tmpl.Subject.CommonName = filepath.Base(tmpl.URIs[0].Path)
	}
	cert := sign(t, tmpl, ca.Intermediate, key.Public(), ca.IntermediateKey)
	return &Leaf{Cert: cert, Chain: []*x509.Certificate{cert, ca.Intermediate}, Key: key}
}

// Pool returns a pool holding the root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root)
	return p
}

// BundlePEM returns the root as PEM.
func (ca *CA) BundlePEM() []byte { return EncodeCerts(ca.Root) }

// WriteBundle writes the root as bundle.pem in dir and returns its path.
func (ca *CA) WriteBundle(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "bundle.pem")
	writeFile(t, p, ca.BundlePEM(), 0o644)
	return p
}

// TLSCertificate returns the leaf as a tls.Certificate with its chain.
func (l *Leaf) TLSCertificate() tls.Certificate {
	tc := tls.Certificate{PrivateKey: l.Key, Leaf: l.Cert}
	for _, c := range l.Chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

// CertPEM returns the chain (leaf first) as PEM.
func (l *Leaf) CertPEM() []byte { return EncodeCerts(l.Chain...) }

// KeyPEM returns the private key as PKCS#8 PEM.
func (l *Leaf) KeyPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(l.Key)
	if err != nil {
		t.Fatalf("testca: marshal key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFiles writes name.pem (chain) and name.key (0600) in dir and returns
// their paths.
func (l *Leaf) WriteFiles(t testing.TB, dir, name string) (certPath, keyPath string) {
	t.Helper()
	certPath = filepath.Join(dir, name+".pem")
	keyPath = filepath.Join(dir, name+".key")
	writeFile(t, certPath, l.CertPEM(), 0o644)
	writeFile(t, keyPath, l.KeyPEM(t), 0o600)
	return certPath, keyPath
}

// EncodeCerts PEM-encodes certificates in order.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func writeFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatalf("testca: %v", err)
	}
}

func genKey(t testing.TB, kt keytype.Type) crypto.Signer {
	t.Helper()
	k, err := keytype.Generate(kt)
	if err != nil {
		t.Fatalf("testca: generate %s key: %v", kt, err)
	}
	return k
}

func randSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testca: serial: %v", err)
	}
	return n.Add(n, big.NewInt(1))
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatalf("testca: create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testca: parse certificate: %v", err)
	}
	return cert
}
