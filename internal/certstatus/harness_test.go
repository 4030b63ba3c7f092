package certstatus

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

const td = "example.org"

// fixture is a real CA (root, intermediate, CA service) on a real SQLite
// store in a temporary directory, and a status service over them.
type fixture struct {
	t     *testing.T
	clock *clock.Fake
	st    *store.SQL
	authz *ca.Service
	root  *x509.Certificate
	inter *x509.Certificate
	svc   *Service
}

func newFixture(t testing.TB, set Settings) *fixture {
	t.Helper()
	return newFixtureWith(t, set, keytype.ECDSAP256, nil)
}

// newFixtureWith makes the intermediate's key of type kt, wrapped by wrap
// if set (a stand-in for a key in a device).
func newFixtureWith(t testing.TB, set Settings, kt keytype.Type, wrap func(crypto.Signer) crypto.Signer) *fixture {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	rootKey, _ := keytype.Generate(keytype.ECDSAP256)
	root, err := ca.CreateRoot(ca.RootOptions{TrustDomain: td, Key: rootKey, Now: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	interKey, _ := keytype.Generate(kt)
	inter, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: interKey, Now: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		interKey = wrap(interKey)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	iss, err := ca.NewIssuer(inter, interKey, td, clk)
	if err != nil {
		t.Fatal(err)
	}
	iss.CRLURL = "https://ca.example.org/crl"
	iss.OCSPURL = "https://ca.example.org/ocsp"
	authz, err := ca.NewService(ca.ServiceOptions{Issuer: iss, Roots: []*x509.Certificate{root}, Store: st, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{clock: clk, st: st, authz: authz, root: root, inter: inter}
	if tt, ok := t.(*testing.T); ok {
		f.t = tt
	}
	f.svc, err = New(Options{Authority: authz, Store: st, Notifier: st, Clock: clk, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// leaf issues a client certificate for path.
func (f *fixture) leaf(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	key, _ := keytype.Generate(keytype.ECDSAP256)
	iss, err := f.authz.IssueDirect(context.Background(), ca.Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://" + td + path)}, ca.ClientProfile, store.ObtainedInit, "test")
	if err != nil {
		t.Fatal(err)
	}
	return iss.Cert
}

func (f *fixture) revoke(t testing.TB, c *x509.Certificate, reason int) store.Revocation {
	t.Helper()
	revs, err := f.authz.Revoke(context.Background(), store.RevokeRequest{Serial: ca.SerialHex(c.SerialNumber), Reason: reason, By: "test"})
	if err != nil || len(revs) != 1 {
		t.Fatalf("revoke: %v %v", revs, err)
	}
	return revs[0]
}

func (f *fixture) auditCount(t testing.TB) int {
	t.Helper()
	recs, err := f.st.AuditRecords(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// request encodes an OCSP request about serial under issuer, hashed with h,
// with the nonce extension when nonce is not nil.
func request(t testing.TB, issuer *x509.Certificate, serial *big.Int, h crypto.Hash, nonce []byte) []byte {
	t.Helper()
	hashes, err := newIssuerHashes(issuer)
	if err != nil {
		t.Fatal(err)
	}
	var oid asn1.ObjectIdentifier
	for _, e := range hashOIDs {
		if e.hash == h {
			oid = e.oid
		}
	}
	req := ocspRequestASN1{TBSRequest: tbsRequestASN1{RequestList: []singleRequestASN1{{ReqCert: certIDASN1{
		HashAlgorithm:  pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue},
		IssuerNameHash: hashes[h][0],
		IssuerKeyHash:  hashes[h][1],
		SerialNumber:   serial,
	}}}}}
	if nonce != nil {
		v, _ := asn1.Marshal(nonce)
		req.TBSRequest.RequestExtensions = []pkix.Extension{{Id: oidNonce, Value: v}}
	}
	der, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// parsed is a response checked by golang.org/x/crypto/ocsp against the
// intermediate (signature of the response and of the embedded signer
// certificate), with the response extensions it does not read.
type parsed struct {
	*ocsp.Response
	nonce []byte // the nonce extension's value, nil if absent
}

func (f *fixture) parse(t testing.TB, der []byte) parsed {
	t.Helper()
	r, err := ocsp.ParseResponse(der, f.inter)
	if err != nil {
		t.Fatalf("parse response: %v", err)
	}
	var outer responseASN1
	var basic basicResponseASN1
	var data responseDataASN1
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(outer.Bytes.Response, &basic); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(basic.TBS.FullBytes, &data); err != nil {
		t.Fatal(err)
	}
	p := parsed{Response: r}
	for _, e := range data.Extensions {
		if e.Id.Equal(oidNonce) {
			var n []byte
			if _, err := asn1.Unmarshal(e.Value, &n); err != nil {
				t.Fatal(err)
			}
			p.nonce = n
		}
	}
	return p
}

// failingAuthority fails every issuance with err when err is set.
type failingAuthority struct {
	*ca.Service
	err error
}

func (a *failingAuthority) IssueDirectBy(ctx context.Context, iss *ca.Issuer, r ca.Request, p ca.Profile, obtained, actor string) (ca.Issued, error) {
	if a.err != nil {
		return ca.Issued{}, a.err
	}
	return a.Service.IssueDirectBy(ctx, iss, r, p, obtained, actor)
}

// failingStore fails certificate lookups with err when err is set.
type failingStore struct {
	Store
	err error
}

func (s *failingStore) GetCertificate(ctx context.Context, serial string) (store.Certificate, error) {
	if s.err != nil {
		return store.Certificate{}, s.err
	}
	return s.Store.GetCertificate(ctx, serial)
}

var errDown = fmt.Errorf("store: test: %w", store.ErrUnavailable)

// lastAudit returns the newest audit record.
func (f *fixture) lastAudit(t testing.TB) audit.Record {
	t.Helper()
	recs, err := f.st.AuditRecords(context.Background(), 0, 0)
	if err != nil || len(recs) == 0 {
		t.Fatalf("audit: %v", err)
	}
	return recs[len(recs)-1]
}

// The ASN.1 of RFC 6960 section 4.1.1 for encoding test requests.
type ocspRequestASN1 struct {
	TBSRequest        tbsRequestASN1
	OptionalSignature asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type tbsRequestASN1 struct {
	Version           int           `asn1:"explicit,tag:0,default:0,optional"`
	RequestorName     asn1.RawValue `asn1:"explicit,tag:1,optional"`
	RequestList       []singleRequestASN1
	RequestExtensions []pkix.Extension `asn1:"explicit,tag:2,optional"`
}

type singleRequestASN1 struct {
	ReqCert                 certIDASN1
	SingleRequestExtensions []pkix.Extension `asn1:"explicit,tag:0,optional"`
}

// activeState is the state of the active intermediate.
func (s *Service) activeState() *issuerState {
	st, _ := s.state(s.o.Authority.Hierarchy().Active.KeyID())
	return st
}
