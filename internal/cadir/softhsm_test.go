package cadir

import (
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cakey"
	"github.com/certgate/certgate/internal/calife"
	"github.com/certgate/certgate/internal/certstatus"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
)

// TestSoftHSM: "certgate init --ca-key pkcs11:..." against a real SoftHSM2
// token makes the root and intermediate keys inside the token (sensitive,
// not extractable; no key file, nothing sealed in the store); the CA issues
// with them, rotates the intermediate with a new key made in the same
// token, and signs CRLs and OCSP responses with them (no responder key outside
// the token), for the old intermediate and the new one; a CA opened again
// (a new process) finds its keys by their URIs.
func TestSoftHSM(t *testing.T) {
	if !cakey.PKCS11Supported {
		t.Skip("built without cgo: no PKCS#11")
	}
	ctx := context.Background()
	token := testenv.SoftHSMToken(t, "certgate-ca")
	clk := clock.NewFake(time.Date(2027, 5, 1, 0, 0, 0, 0, time.UTC))
	dir := filepath.Join(t.TempDir(), "ca")
	if err := Init(ctx, InitOptions{Dir: dir, TrustDomain: "example.org", KeyType: keytype.ECDSAP256, Passphrase: pass, Clock: clk, CAKey: token}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca/root.key", "ca/intermediate.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Fatalf("%s exists (%v): a key left the token", f, err)
		}
	}
	in, err := Open(ctx, dir, pass, clk)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close() }()
	rows, err := in.Store.ListCAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkInToken := func(rows []store.CACert) {
		t.Helper()
		for _, r := range rows {
			if r.Kind == store.CAKindCross {
				continue
			}
			if !strings.HasPrefix(r.KeyURI, "pkcs11:token=certgate-ca;") || r.SealedKey != nil || strings.Contains(r.KeyURI, "246813") {
				t.Fatalf("%s %d key %q (sealed %d bytes): not in the token, or the URI carries the PIN", r.Kind, r.Generation, r.KeyURI, len(r.SealedKey))
			}
			extractable, sensitive, err := in.Keys.KeyAttributes(ctx, r.KeyURI)
			if err != nil || extractable || !sensitive {
				t.Fatalf("%s %d: CKA_EXTRACTABLE %v, CKA_SENSITIVE %v, %v; want false, true", r.Kind, r.Generation, extractable, sensitive, err)
			}
		}
	}
	checkInToken(rows)
	cfg := string(mustReadFile(t, filepath.Join(dir, "certgate.yaml")))
	if !strings.Contains(cfg, `root_key: "pkcs11:token=certgate-ca;object=certgate-root-1-`) {
		t.Fatalf("config does not name the root key in the token:\n%s", cfg)
	}

	issue := func(path string) ca.Issued {
		t.Helper()
		key, _ := keytype.Generate(keytype.ECDSAP256)
		iss, err := in.Authority.IssueDirect(ctx, ca.Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org" + path)},
			ca.ClientProfile, store.ObtainedEnroll, "test")
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		for _, r := range iss.Roots {
			roots.AddCert(r)
		}
		inters := x509.NewCertPool()
		for _, c := range iss.Chain {
			inters.AddCert(c)
		}
		if _, err := iss.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: clk.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatal(err)
		}
		return iss
	}
	first := issue("/svc/a")
	oldInter := in.Authority.Issuer().Certificate()

	m, err := in.Lifecycle(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RotateIntermediate(ctx, calife.IntermediateOptions{Now: true, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	rows, _ = in.Store.ListCAs(ctx)
	if len(rows) != 3 {
		t.Fatalf("%d CA rows after the rotation", len(rows))
	}
	checkInToken(rows)
	second := issue("/svc/b")
	newInter := in.Authority.Issuer().Certificate()
	if newInter.Equal(oldInter) || second.Cert.CheckSignatureFrom(newInter) != nil {
		t.Fatal("the rotation did not make a new intermediate that signs")
	}

	// CRLs and OCSP for both intermediates, signed in the token.
	svc, err := certstatus.New(certstatus.Options{Authority: in.Authority, Store: in.Store, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Authority.Revoke(ctx, store.RevokeRequest{Serial: first.Record.Serial, Reason: 1, By: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		leaf   ca.Issued
		issuer *x509.Certificate
		status int
	}{{first, oldInter, ocsp.Revoked}, {second, newInter, ocsp.Good}} {
		req, err := ocsp.CreateRequest(tc.leaf.Cert, tc.issuer, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := svc.Respond(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ocsp.ParseResponseForCert(resp.DER, tc.leaf.Cert, tc.issuer)
		if err != nil || r.Status != tc.status {
			t.Fatalf("OCSP about a leaf of %s: %v, status %d, want %d", tc.issuer.Subject.CommonName, err, r.Status, tc.status)
		}
		// The intermediate's key in the token signs the response itself
		// (ParseResponseForCert checked the signature with tc.issuer's
		// key): no responder key exists outside the token, and the
		// response carries no certificate.
		if r.Certificate != nil {
			t.Fatalf("the response carries a responder certificate (%s): a key outside the token signed it", r.Certificate.Subject)
		}
		// openssl verifies it as a response signed by the issuer.
		openssl := testenv.RequirePeer(t, "openssl")
		work := t.TempDir()
		respPath, interPath, rootPath := filepath.Join(work, "resp.der"), filepath.Join(work, "inter.pem"), filepath.Join(work, "root.pem")
		writeFile(t, respPath, resp.DER)
		writeFile(t, interPath, pemutil.EncodeCertificates(tc.issuer))
		writeFile(t, rootPath, pemutil.EncodeCertificates(tc.leaf.Roots...))
		// -validity_period: the fake clock is not the wall clock.
		out, err := exec.Command(openssl, "ocsp", "-respin", respPath, "-issuer", interPath, "-verify_other", interPath,
			"-CAfile", rootPath, "-no_nonce", "-serial", "0x"+tc.leaf.Record.Serial,
			"-validity_period", "100000000").CombinedOutput()
		want := "good"
		if tc.status == ocsp.Revoked {
			want = "revoked"
		}
		if err != nil || !strings.Contains(string(out), "Response verify OK") || !strings.Contains(string(out), ": "+want) {
			t.Fatalf("openssl ocsp on the response about a leaf of %s (%v):\n%s", tc.issuer.Subject.CommonName, err, out)
		}
		c, err := svc.CRLFor(ctx, ca.KeyID(tc.issuer))
		if err != nil {
			t.Fatal(err)
		}
		rl, err := x509.ParseRevocationList(c.DER)
		if err != nil || rl.CheckSignatureFrom(tc.issuer) != nil {
			t.Fatalf("CRL of %s: %v", tc.issuer.Subject.CommonName, err)
		}
	}

	// A new process finds the keys in the token by their URIs.
	in.Close()
	again, err := Open(ctx, dir, pass, clk)
	if err != nil {
		t.Fatal(err)
	}
	in = again
	if iss := issue("/svc/c"); iss.Cert.CheckSignatureFrom(newInter) != nil {
		t.Fatal("after reopening, the active intermediate in the token does not sign")
	}
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
