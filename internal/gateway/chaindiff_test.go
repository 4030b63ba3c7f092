package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/testca"
)

// The differential chain test: tens of thousands of generated client
// chains (lengths 1 to 4, extra and unrelated certificates in any order,
// leaves mutated and re-signed by an intermediate's key, policy and name
// extensions, issuer names that differ from the signer's subject) must get
// the same verdict and identity from the gateway's verification with a
// warm verified-issuer cache (one trust for every chain, so later chains
// take the fast path), with a cold one (a new trust per chain) and from
// x509.Verify followed by the gateway's own leaf checks.

type dcert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var diffSerial int64 = 1000

func mkCert(t testing.TB, tmpl *x509.Certificate, parent *dcert, key crypto.Signer) *dcert {
	t.Helper()
	diffSerial++
	tmpl.SerialNumber = big.NewInt(diffSerial)
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &dcert{cert: c, key: key}
}

func genKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// chainUniverse is the CAs the generated chains draw from.
type chainUniverse struct {
	r1, r2  *dcert            // r1 is trusted, r2 is not
	cas     map[string]*dcert // intermediates by name
	names   []string
	other   *x509.Certificate // an unrelated CA's intermediate
	now     time.Time
	leafKey []crypto.Signer
}

func caTmpl(cn string, nb, na time.Time, pathLen int) *x509.Certificate {
	return &x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"diff"}, CommonName: cn},
		NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:   x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		MaxPathLen: pathLen, MaxPathLenZero: pathLen == 0,
	}
}

var (
	policyConstraintsRequireExplicit = pkix.Extension{Id: oidPolicyConstraints, Critical: true, Value: []byte{0x30, 0x03, 0x80, 0x01, 0x00}}
	inhibitAnyPolicyZero             = pkix.Extension{Id: oidInhibitAnyPolicy, Critical: true, Value: []byte{0x02, 0x01, 0x00}}
	unknownCritical                  = pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{0x05, 0x00}}
)

func newChainUniverse(t testing.TB) *chainUniverse {
	now := time.Now().Truncate(time.Second)
	u := &chainUniverse{now: now, cas: map[string]*dcert{}}
	nb, na := now.Add(-24*time.Hour), now.Add(365*24*time.Hour)
	r1t := caTmpl("Root 1", nb, na, 2)
	u.r1 = mkCert(t, r1t, nil, genKey(t))
	u.r2 = mkCert(t, caTmpl("Root 1", nb, na, 2), nil, genKey(t)) // same name, not trusted
	add := func(name string, tmpl *x509.Certificate, parent *dcert) {
		u.cas[name] = mkCert(t, tmpl, parent, genKey(t))
		u.names = append(u.names, name)
	}
	add("I1", caTmpl("Inter", nb, na, 1), u.r1)
	add("I2", caTmpl("Inter", nb, na, 1), u.r1) // same name, next key (a rotation)
	add("I3", caTmpl("Inter", nb, na, 1), u.r2) // same name, untrusted root
	nc := caTmpl("Inter NC", nb, na, 0)
	nc.PermittedURIDomains = []string{"example.org"}
	add("I4", nc, u.r1)
	ncx := caTmpl("Inter NCX", nb, na, 0)
	ncx.ExcludedURIDomains = []string{"example.org"}
	add("I5", ncx, u.r1)
	pol := caTmpl("Inter Pol", nb, na, 0)
	pol.ExtraExtensions = []pkix.Extension{policyConstraintsRequireExplicit}
	add("I6", pol, u.r1)
	add("I7", caTmpl("Inter Old", now.Add(-48*time.Hour), now.Add(-time.Hour), 0), u.r1)
	add("I8", caTmpl("Sub", nb, na, 0), u.cas["I1"])
	srv := caTmpl("Inter Srv", nb, na, 0)
	srv.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	add("I9", srv, u.r1)
	dns := caTmpl("Inter DNS", nb, na, 0)
	dns.PermittedDNSDomains = []string{"example.org"}
	add("I10", dns, u.r1)
	u.other = testca.New(t, td).Intermediate
	for range 4 {
		u.leafKey = append(u.leafKey, genKey(t))
	}
	return u
}

// leafCase is one generated client chain.
type leafCase struct {
	desc  string
	chain []*x509.Certificate
}

// generate makes a random chain: a leaf of random shape issued (or
// apparently issued) by a random CA, and what the client sends after it.
func (u *chainUniverse) generate(t testing.TB, r *mrand.Rand) leafCase {
	issuers := append([]string{"R1", "R2"}, u.names...)
	iss := issuers[r.IntN(len(issuers))]
	parent := u.ca(iss)
	desc := "issuer=" + iss
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: "leaf"},
		NotBefore: u.now.Add(-time.Hour), NotAfter: u.now.Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	id, _ := url.Parse("spiffe://example.org/svc/" + fmt.Sprint(r.IntN(5)))
	tmpl.URIs = []*url.URL{id}
	mut := func(p int) bool { return r.IntN(100) < p }
	switch {
	case mut(5):
		tmpl.NotAfter = u.now.Add(-time.Minute)
		desc += " expired"
	case mut(5):
		tmpl.NotBefore = u.now.Add(time.Minute)
		desc += " not-yet-valid"
	}
	switch {
	case mut(5):
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		desc += " eku=server"
	case mut(5):
		tmpl.ExtKeyUsage = nil
		desc += " eku=none"
	case mut(5):
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
		desc += " eku=any"
	case mut(5):
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		desc += " eku=server+client"
	}
	switch {
	case mut(5):
		other, _ := url.Parse("spiffe://other.org/svc/x")
		tmpl.URIs = []*url.URL{other}
		desc += " id=other-td"
	case mut(4):
		tmpl.URIs = nil
		desc += " id=none"
	case mut(4):
		tmpl.URIs = append(tmpl.URIs, id)
		desc += " id=two"
	case mut(4):
		h, _ := url.Parse("https://example.org/x")
		tmpl.URIs = []*url.URL{h}
		desc += " id=https"
	}
	if mut(6) {
		tmpl.DNSNames = []string{"a.example.org"}
		if mut(50) {
			tmpl.DNSNames = []string{"a.example.com"}
		}
		desc += " dns=" + tmpl.DNSNames[0]
	}
	if mut(4) {
		tmpl.EmailAddresses = []string{"a@example.org"}
		desc += " email"
	}
	if mut(5) {
		tmpl.PolicyIdentifiers = []asn1.ObjectIdentifier{{1, 2, 3, 4}}
		desc += " policy"
	}
	if mut(5) {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, policyConstraintsRequireExplicit)
		desc += " policyConstraints"
	}
	if mut(3) {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, inhibitAnyPolicyZero)
		desc += " inhibitAnyPolicy"
	}
	if mut(3) {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, unknownCritical)
		desc += " unknown-critical"
	}
	if mut(3) {
		tmpl.PermittedURIDomains = []string{"example.com"}
		desc += " leaf-name-constraints"
	}
	if mut(3) {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		desc += " ca"
	}
	if mut(4) {
		tmpl.AuthorityKeyId = []byte{1, 2, 3, 4}
		desc += " akid-mismatch"
	}
	// Mutated issuance: a name that is not the signer's subject, or the
	// right name signed by another CA's key.
	signer := parent
	switch {
	case mut(6):
		fake := *parent.cert
		fake.RawSubject = nil
		fake.Subject = pkix.Name{CommonName: "Inter", Organization: []string{"diff-other"}}
		signer = &dcert{cert: &fake, key: parent.key}
		desc += " issuer-name-altered"
	case mut(8):
		other := u.ca(issuers[r.IntN(len(issuers))])
		fake := *parent.cert
		fake.PublicKey = other.key.Public()
		signer = &dcert{cert: &fake, key: other.key}
		desc += " resigned-by-other-key"
	}
	leaf := mkCertWithKey(t, tmpl, signer, u.leafKey[r.IntN(len(u.leafKey))])
	chain := []*x509.Certificate{leaf}
	pool := []*x509.Certificate{u.r1.cert, u.r2.cert, u.other}
	for _, n := range u.names {
		pool = append(pool, u.cas[n].cert)
	}
	// Usually the issuer (and its issuer for I8), then noise.
	if iss != "R1" && iss != "R2" && mut(70) {
		chain = append(chain, parent.cert)
		if iss == "I8" && mut(70) {
			chain = append(chain, u.cas["I1"].cert)
		}
	}
	for n := r.IntN(3); n > 0 && len(chain) < 4; n-- {
		chain = append(chain, pool[r.IntN(len(pool))])
	}
	if len(chain) > 2 && mut(30) {
		rest := chain[1:]
		r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	}
	desc += fmt.Sprintf(" sent=%d", len(chain))
	return leafCase{desc: desc, chain: chain}
}

func (u *chainUniverse) ca(name string) *dcert {
	switch name {
	case "R1":
		return u.r1
	case "R2":
		return u.r2
	}
	return u.cas[name]
}

func mkCertWithKey(t testing.TB, tmpl *x509.Certificate, parent *dcert, key crypto.Signer) *x509.Certificate {
	t.Helper()
	diffSerial++
	tmpl.SerialNumber = big.NewInt(diffSerial)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, key.Public(), parent.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reference is the verdict the gateway must give: x509.Verify with the
// roots, what the client sent and the known intermediates, then the
// gateway's own leaf checks.
func reference(roots, known *x509.CertPool, chain []*x509.Certificate, now time.Time) (string, bool) {
	inter := known.Clone()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", false
	}
	if !hasClientAuth(leaf) || leaf.IsCA {
		return "", false
	}
	id, err := identity.FromCertificateIn(leaf, td)
	if err != nil {
		return "", false
	}
	return id.String(), true
}

func TestChainDifferential(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	u := newChainUniverse(t)
	roots := []*x509.Certificate{u.r1.cert}
	known := []*x509.Certificate{u.cas["I2"].cert} // the CA's next intermediate, published through the feed
	rootPool, knownPool := x509.NewCertPool(), x509.NewCertPool()
	rootPool.AddCert(u.r1.cert)
	knownPool.AddCert(u.cas["I2"].cert)
	warm := newTrust(td, roots, known)
	r := mrand.New(mrand.NewPCG(1, 2))
	cases := make([]leafCase, n)
	for i := range cases {
		cases[i] = u.generate(t, r)
	}
	var mu sync.Mutex
	accepted, fast := 0, 0
	var wg sync.WaitGroup
	const workers = 2
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(cases); i += workers {
				c := cases[i]
				wantID, wantOK := reference(rootPool, knownPool, c.chain, u.now)
				tookFast := fastPathLeaf(c.chain[0]) && warm.fastPath(c.chain[0], c.chain[1:], warm.inter.Load(), u.now)
				for _, tr := range []struct {
					name string
					tr   *trust
				}{{"warm", warm}, {"cold", newTrust(td, roots, known)}} {
					id, err := tr.tr.verifyChain(c.chain, u.now)
					if (err == nil) != wantOK || (err == nil && id.String() != wantID) {
						t.Errorf("case %d (%s), %s gateway: verdict %v id %q; x509.Verify and the identity check: ok=%v id %q", i, c.desc, tr.name, err, id, wantOK, wantID)
					}
				}
				mu.Lock()
				if wantOK {
					accepted++
				}
				if wantOK && tookFast {
					fast++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d chains: %d accepted, %d of them by the warm fast path", n, accepted, fast)
	if accepted < n/20 || fast < accepted/4 {
		t.Fatalf("too few accepted (%d) or fast-path (%d) chains to mean anything", accepted, fast)
	}
}
