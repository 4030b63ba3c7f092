package ca_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

// privatePKI are the zlint sources that apply to a private PKI: the IETF
// profiles. Every lint of these sources must pass (no error, no fatal, no
// warning) on every profile certgate issues.
var privatePKI = map[lint.LintSource]bool{
	lint.RFC3279: true, lint.RFC5280: true, lint.RFC5480: true, lint.RFC5891: true, lint.RFC6960: true, lint.RFC8813: true,
	lint.Community: true,
}

// outOfScope are the lints of the web-PKI and S/MIME sources (CA/Browser
// Forum baseline requirements, EV, S/MIME and code signing requirements,
// the Mozilla, Apple and Chrome root store policies, ETSI) that find
// something in certgate's profiles, and why each does not apply. Those
// rules govern certificates browsers trust for public DNS names and mail;
// certgate's are trusted only by the installation's own verifiers, name
// SPIFFE identities, and live a day. A finding of these sources not
// listed here fails the test, so a new one is looked at.
var outOfScope = map[string]string{
	// Subscriber certificates (BR 7.1.2.7).
	"e_sub_cert_certificate_policies_missing":                 "BR certificate policy OIDs assert conformance to the Baseline Requirements, which a private CA does not claim",
	"e_sub_cert_cert_policy_empty":                            "same: no BR policy OID to assert",
	"e_ext_san_uniform_resource_identifier_present":           "the BRs allow only DNS names and IP addresses in TLS certificates; certgate's identity is the SPIFFE ID in a URI SAN (the SPIFFE X.509-SVID standard)",
	"e_ext_san_contains_reserved_ip":                          "gateways and servers listen on loopback and private addresses, which no public CA may certify and a private one must",
	"e_dnsname_not_valid_tld":                                 "internal names (localhost, .internal, .svc.cluster.local) are not public TLDs by design",
	"e_subject_common_name_not_exactly_from_san":              "the CN is a readable name of the SPIFFE identity (DESIGN: identity), not one of the host names",
	"w_subject_common_name_included":                          "same: the CN names the identity for people reading logs",
	"w_ext_subject_key_identifier_not_recommended_subscriber": "the SKI lets verifiers and certgate's own status service find the certificate's key; RFC 5280 permits it",
	// CA certificates (BR 7.1.2.1 to 7.1.2.3).
	"e_ca_country_name_missing":                                     "the subject of a private CA names its trust domain; no country is attested",
	"e_sub_ca_certificate_policies_missing":                         "no BR policy OIDs: see e_sub_cert_certificate_policies_missing",
	"e_invalid_ca_certificate_policies":                             "same",
	"w_root_ca_basic_constraints_path_len_constraint_field_present": "the root's path length bounds what it certifies (one intermediate, plus a cross-certificate during a root rotation); the BRs leave it to the root program",
}

// linted is one certificate or list to lint, by name.
type linted struct {
	name string
	cert *x509.Certificate
	crl  *x509.RevocationList
}

func zlintCA(t *testing.T, kt keytype.Type) []linted {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC))
	urls := ca.URLs{Base: "http://ca.example.org"}
	rootKey, _ := keytype.Generate(kt)
	root, err := ca.CreateRoot(ca.RootOptions{TrustDomain: "example.org", Key: rootKey, Now: clk.Now(), Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	interKey, _ := keytype.Generate(kt)
	inter, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: interKey, Now: clk.Now(), Generation: 1,
		CRLURL: urls.CRL(ca.KeyID(root)), IssuerURL: urls.CACert(ca.KeyID(root))})
	if err != nil {
		t.Fatal(err)
	}
	root2Key, _ := keytype.Generate(kt)
	root2, err := ca.CreateRoot(ca.RootOptions{TrustDomain: "example.org", Key: root2Key, Now: clk.Now(), Generation: 2})
	if err != nil {
		t.Fatal(err)
	}
	cross, err := ca.CreateCross(ca.CrossOptions{Subject: root2, Issuer: root, IssuerKey: rootKey, Now: clk.Now(),
		CRLURL: urls.CRL(ca.KeyID(root)), IssuerURL: urls.CACert(ca.KeyID(root))})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.NewIssuer(inter, interKey, "example.org", clk)
	if err != nil {
		t.Fatal(err)
	}
	iss.CRLURL, iss.OCSPURL, iss.IssuerURL = urls.CRL(ca.KeyID(inter)), urls.OCSP(), urls.CACert(ca.KeyID(inter))
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := ca.NewService(ca.ServiceOptions{Issuer: iss, Roots: []*x509.Certificate{root}, Store: st, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	out := []linted{{name: "root", cert: root}, {name: "intermediate", cert: inter}, {name: "cross-certificate", cert: cross}}
	admin := ca.ClientProfile
	admin.Name, admin.Lifetime = "admin", ca.DefaultIntermediateLifetime
	for _, p := range []struct {
		name  string
		prof  ca.Profile
		path  string
		hosts bool
		leaf  keytype.Type
	}{
		{"client ecdsa-p256", ca.ClientProfile, "/svc/billing", false, keytype.ECDSAP256},
		{"client ecdsa-p384", ca.ClientProfile, "/svc/billing", false, keytype.ECDSAP384},
		{"client ed25519", ca.ClientProfile, "/svc/billing", false, keytype.Ed25519},
		{"client rsa-2048", ca.ClientProfile, "/svc/billing", false, keytype.RSA2048},
		{"admin", admin, "/admin/alice", false, keytype.ECDSAP256},
		{"gateway", ca.GatewayProfile, "/gateway/gw1", true, keytype.ECDSAP256},
		{"gateway rsa-2048", ca.GatewayProfile, "/gateway/gw1", true, keytype.RSA2048},
		{"server", ca.ServerProfile, "/server", true, keytype.ECDSAP256},
		{"ocsp signer", ca.OCSPSigningProfile, "/server/ocsp-signer", false, keytype.ECDSAP256},
	} {
		key, _ := keytype.Generate(p.leaf)
		r := ca.Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org" + p.path)}
		if p.hosts {
			r.DNSNames, r.IPAddresses = []string{"gw.example.org"}, []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		issued, err := svc.IssueDirect(ctx, r, p.prof, store.ObtainedServer, "test")
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		out = append(out, linted{name: p.name, cert: issued.Cert})
		if p.name == "client ecdsa-p256" {
			if _, err := svc.Revoke(ctx, store.RevokeRequest{Serial: issued.Record.Serial, Reason: 1, By: "test"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// TestZlint runs zlint over every certificate profile certgate issues
// (root, intermediate, cross-certificate, client with each key type,
// admin, gateway, server, delegated OCSP signer) for each CA key type:
// nothing from the IETF and community lints, and from the web-PKI
// sources only the findings listed as out of scope, each with its reason.
func TestZlint(t *testing.T) {
	for _, kt := range []keytype.Type{keytype.ECDSAP256, keytype.ECDSAP384, keytype.RSA3072} {
		t.Run(string(kt), func(t *testing.T) {
			for _, l := range zlintCA(t, kt) {
				c, err := zx509.ParseCertificate(l.cert.Raw)
				if err != nil {
					t.Fatalf("%s: zcrypto parse: %v", l.name, err)
				}
				report(t, l.name, zlint.LintCertificate(c))
			}
		})
	}
}

func report(t *testing.T, name string, rs *zlint.ResultSet) {
	t.Helper()
	reg := lint.GlobalRegistry()
	var names []string
	for n := range rs.Results {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := rs.Results[n]
		if r.Status != lint.Error && r.Status != lint.Fatal && r.Status != lint.Warn {
			continue
		}
		l := reg.ByName(n)
		src := lint.UnknownLintSource
		if l != nil {
			src = l.Source
		}
		msg := fmt.Sprintf("%s: %s %s (%s): %s", name, r.Status, n, src, strings.TrimSpace(r.Details))
		switch {
		case privatePKI[src]:
			t.Errorf("%s", msg)
		case outOfScope[n] == "":
			t.Errorf("%s: a web-PKI finding not listed as out of scope", msg)
		}
	}
}
