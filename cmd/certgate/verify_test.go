package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/diagnose"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testca"
)

var verifyNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// verifyFiles writes a bundle (root), a chain (leaf + intermediate) and the
// intermediate alone in a temp dir.
type verifyFiles struct {
	dir, bundle, cert, leaf, inter string
	ca                             *testca.CA
	leafCA                         *testca.Leaf
}

func newVerifyFiles(t *testing.T, opts ...testca.Option) verifyFiles {
	t.Helper()
	ca := testca.New(t, "example.org", testca.WithNow(verifyNow))
	l := ca.Issue(t, opts...)
	dir := t.TempDir()
	f := verifyFiles{dir: dir, ca: ca, leafCA: l,
		bundle: ca.WriteBundle(t, dir),
		cert:   filepath.Join(dir, "cert.pem"),
		leaf:   filepath.Join(dir, "leaf.pem"),
		inter:  filepath.Join(dir, "inter.pem"),
	}
	for path, data := range map[string][]byte{
		f.cert:  l.CertPEM(),
		f.leaf:  testca.EncodeCerts(l.Cert),
		f.inter: testca.EncodeCerts(ca.Intermediate),
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// runVerifyCmd runs certgate verify on args, offline unless they name a
// store or a server: the fixtures here are about chains and name no OCSP
// responder (testdata/verify.txt checks revocation against a real server).
func runVerifyCmd(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	if !slices.Contains(args, "--store") && !slices.Contains(args, "--server") {
		args = append(args, "--offline")
	}
	var out, errOut bytes.Buffer
	cmd := newVerifyCmd(streams{in: strings.NewReader(""), out: &out, err: &errOut})
	// As under the root command, which silences both.
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestVerifyCmd(t *testing.T) {
	f := newVerifyFiles(t)
	serial := f.leafCA.Cert.SerialNumber.Text(16)
	tests := []struct {
		name    string
		args    []string
		fail    bool
		verdict string
	}{{
		name:    "valid",
		args:    []string{"--bundle", f.bundle, "--cert", f.cert, "--at", "2026-05-01T12:00:00Z"},
		verdict: `OK: leaf "CN=test" verifies for client auth as spiffe://example.org/svc/test until 2026-05-02T12:00:00Z (24h left)`,
	}, {
		name:    "expired",
		args:    []string{"--bundle", f.bundle, "--cert", f.cert, "--at", "2026-05-02T15:12:00Z"},
		fail:    true,
		verdict: "FAIL: expired 3h12m ago (not after 2026-05-02T12:00:00Z)",
	}, {
		name:    "wrong trust domain",
		args:    []string{"--bundle", f.bundle, "--cert", f.cert, "--at", "2026-05-01T12:00:00Z", "--trust-domain", "other.org"},
		fail:    true,
		verdict: "FAIL: wrong trust domain: spiffe://example.org/svc/test is not in trust domain other.org",
	}, {
		name: "leaf without its intermediate",
		args: []string{"--bundle", f.bundle, "--cert", f.leaf, "--at", "2026-05-01T12:00:00Z"},
		fail: true,
		verdict: `FAIL: unknown authority: the chain stops at issuer "CN=example.org test intermediate,O=certgate test" of the leaf, ` +
			`which is neither in the bundle nor in the chain (bundle roots: "CN=example.org test root,O=certgate test")`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runVerifyCmd(t, tt.args...)
			if tt.fail != (err != nil) || (err != nil && !errors.Is(err, errVerifyFailed)) {
				t.Fatalf("err = %v, want failure %v", err, tt.fail)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if lines[0] != tt.verdict {
				t.Errorf("verdict:\n got %s\nwant %s", lines[0], tt.verdict)
			}
			if !slices.Contains(lines, "chain at "+tt.args[5]+":") {
				t.Errorf("no chain header in:\n%s", out)
			}
		})
	}

	t.Run("chain lines", func(t *testing.T) {
		out, err := runVerifyCmd(t, "--bundle", f.bundle, "--cert", f.cert, "--at", "2026-05-01T12:00:00Z")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		want := `  leaf         "CN=test" issued by "CN=example.org test intermediate,O=certgate test", ` +
			`valid 2026-05-01T11:00:00Z to 2026-05-02T12:00:00Z, serial ` + serial + `, spiffe://example.org/svc/test, EKU clientAuth`
		if len(lines) != 6 || lines[1] != "revocation: not checked (--offline)" || lines[3] != want ||
			!strings.HasPrefix(lines[4], `  intermediate "CN=example.org test intermediate,O=certgate test" issued by "CN=example.org test root,O=certgate test"`) ||
			!strings.HasSuffix(lines[5], ", CA, EKU any") {
			t.Errorf("output:\n%s\nwant leaf line\n%s", out, want)
		}
	})
}

func TestVerifyCmdJSON(t *testing.T) {
	f := newVerifyFiles(t)
	for _, tt := range []struct {
		at    string
		ok    bool
		codes []string
	}{
		{"2026-05-01T12:00:00Z", true, []string{}},
		{"2026-05-03T12:00:00Z", false, []string{diagnose.CodeExpired}},
	} {
		out, err := runVerifyCmd(t, "--bundle", f.bundle, "--cert", f.cert, "--at", tt.at, "--json")
		if tt.ok != (err == nil) {
			t.Fatalf("at %s: err = %v", tt.at, err)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		var keys []string
		for k := range raw {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"at", "chain", "identity", "ok", "reasons", "revocation", "verdict", "warnings"}; !slices.Equal(keys, want) {
			t.Errorf("keys = %q, want %q", keys, want)
		}
		var rep struct {
			OK       bool   `json:"ok"`
			Identity string `json:"identity"`
			At       string `json:"at"`
			Reasons  []struct {
				Code, Message string
			} `json:"reasons"`
			Chain []map[string]any `json:"chain"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		codes := []string{}
		for _, r := range rep.Reasons {
			codes = append(codes, r.Code)
		}
		if rep.OK != tt.ok || rep.Identity != "spiffe://example.org/svc/test" || rep.At != tt.at || !slices.Equal(codes, tt.codes) {
			t.Errorf("report = %+v", rep)
		}
		if len(rep.Chain) != 3 || rep.Chain[0]["role"] != "leaf" || rep.Chain[0]["spiffe_id"] != "spiffe://example.org/svc/test" {
			t.Errorf("chain = %v", rep.Chain)
		}
		var leafKeys []string
		for k := range rep.Chain[0] {
			leafKeys = append(leafKeys, k)
		}
		slices.Sort(leafKeys)
		if want := []string{"eku", "is_ca", "issuer", "not_after", "not_before", "role", "serial", "sha256", "spiffe_id", "subject"}; !slices.Equal(leafKeys, want) {
			t.Errorf("chain keys = %q, want %q", leafKeys, want)
		}
	}
}

// The whole binary path: registered on the root command, exit status 1 and
// one line on stderr when the chain fails.
func TestVerifyExitStatus(t *testing.T) {
	f := newVerifyFiles(t)
	for _, tt := range []struct {
		at     string
		code   int
		stderr string
	}{
		{"2026-05-01T12:00:00Z", 0, ""},
		{"2026-05-03T12:00:00Z", 1, "certgate: verify: the chain does not verify for client auth\n"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"verify", "--bundle", f.bundle, "--cert", f.cert, "--at", tt.at, "--offline"}, nil, &out, &errOut)
		if code != tt.code || errOut.String() != tt.stderr {
			t.Errorf("at %s: exit %d, stderr %q; want %d, %q", tt.at, code, errOut.String(), tt.code, tt.stderr)
		}
	}
}

// A certificate revoked in a real SQLite store fails, naming who revoked it,
// when and why.
func TestVerifyCmdStore(t *testing.T) {
	f := newVerifyFiles(t)
	ctx := context.Background()
	dbPath := filepath.Join(f.dir, "certgate.db")
	st, err := store.OpenSQLite(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	leaf := f.leafCA.Cert
	serial := leaf.SerialNumber.Text(16)
	rec := store.Certificate{Issuer: "ab",
		Serial: serial, Identity: "spiffe://example.org/svc/test", CommonName: "test",
		Fingerprint: fmt.Sprintf("%x", sha256.Sum256(leaf.Raw)),
		NotBefore:   leaf.NotBefore, NotAfter: leaf.NotAfter, KeyType: "ecdsa-p256", Obtained: store.ObtainedEnroll,
		IssuedAt: verifyNow, DER: leaf.Raw,
	}
	if err := st.RecordIssuance(ctx, store.Issuance{Cert: rec, Now: verifyNow,
		Audit: audit.Entry{Time: verifyNow, Actor: "test", Action: audit.ActionIssue, Subject: serial}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: 1, By: "spiffe://example.org/admin/alice",
		Now: verifyNow.Add(30 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	out, err := runVerifyCmd(t, "--bundle", f.bundle, "--cert", f.cert, "--at", "2026-05-01T13:00:00Z", "--store", dbPath)
	want := "FAIL: revoked 30m ago (at 2026-05-01T12:30:00Z by spiffe://example.org/admin/alice, reason keyCompromise (1))"
	if !errors.Is(err, errVerifyFailed) || !strings.HasPrefix(out, want+"\n") {
		t.Errorf("err = %v, output:\n%s\nwant first line %s", err, out, want)
	}
	// Before the revocation the chain verified; the report says it was
	// revoked later.
	out, err = runVerifyCmd(t, "--bundle", f.bundle, "--cert", f.cert, "--at", "2026-05-01T12:10:00Z", "--store", "sqlite://"+dbPath)
	if err != nil || !strings.Contains(out, "\nwarning: revoked 20m after the time checked (at 2026-05-01T12:30:00Z by spiffe://example.org/admin/alice, reason keyCompromise (1))\n") {
		t.Errorf("err = %v, output:\n%s", err, out)
	}
	// A certificate the store never recorded verifies, with a warning.
	stranger := f.ca.Issue(t, testca.WithID("spiffe://example.org/svc/stranger"))
	strangerPath := filepath.Join(f.dir, "stranger.pem")
	if err := os.WriteFile(strangerPath, stranger.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runVerifyCmd(t, "--bundle", f.bundle, "--cert", strangerPath, "--at", "2026-05-01T13:00:00Z", "--store", dbPath)
	want = "warning: the store has no certificate with serial " + stranger.Cert.SerialNumber.Text(16) + ", so it cannot say whether it is revoked"
	if lines := strings.Split(out, "\n"); err != nil || !strings.HasPrefix(lines[0], "OK: ") || lines[1] != "revocation: the store has no record of this certificate" || lines[2] != want {
		t.Errorf("err = %v, output:\n%s\nwant second line %s", err, out, want)
	}
}

// openssl agrees with the verdict on a valid and an expired chain.
func TestVerifyAgreesWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	f := newVerifyFiles(t)
	for _, tt := range []struct {
		at time.Time
		ok bool
	}{
		{verifyNow, true},
		{verifyNow.Add(27 * time.Hour), false},
	} {
		cmd := exec.Command(openssl, "verify", "-CAfile", f.bundle, "-untrusted", f.inter, "-purpose", "sslclient",
			"-attime", strconv.FormatInt(tt.at.Unix(), 10), f.leaf)
		sslOut, sslErr := cmd.CombinedOutput()
		_, err := runVerifyCmd(t, "--bundle", f.bundle, "--cert", f.cert, "--at", tt.at.Format(time.RFC3339))
		if (sslErr == nil) != tt.ok || (err == nil) != tt.ok {
			t.Errorf("at %s: openssl %v (%s), certgate %v; want ok %v", tt.at, sslErr, sslOut, err, tt.ok)
		}
		if !tt.ok && !strings.Contains(string(sslOut), "certificate has expired") {
			t.Errorf("openssl says %s", sslOut)
		}
	}
}
