package certgatetls_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testca"
)

// writeCreds writes leaf's key, chain and bundle into dir as the agent
// does: key first, each file replaced atomically.
func writeCreds(t testing.TB, dir string, leaf *testca.Leaf, bundle []byte) {
	t.Helper()
	writeKey(t, dir, leaf)
	writeCert(t, dir, leaf)
	if err := atomicfile.Write(filepath.Join(dir, certgatetls.BundleFile), bundle, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t testing.TB, dir string, leaf *testca.Leaf) {
	t.Helper()
	if err := atomicfile.Write(filepath.Join(dir, certgatetls.KeyFile), leaf.KeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeCert(t testing.TB, dir string, leaf *testca.Leaf) {
	t.Helper()
	if err := atomicfile.Write(filepath.Join(dir, certgatetls.CertFile), leaf.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// logRecorder is a slog handler that keeps records for assertions.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	return nil
}

// find returns the attributes, as strings, of the records at level whose
// message is msg.
func (l *logRecorder) find(level slog.Level, msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.recs {
		if r.Level != level || r.Message != msg {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		out = append(out, m)
	}
	return out
}

func TestSourceLoads(t *testing.T) {
	ca := testca.New(t, "example.org")
	leaf := ca.Issue(t, testca.WithID("spiffe://example.org/svc/billing"))
	dir := t.TempDir()
	writeCreds(t, dir, leaf, ca.BundlePEM())
	src, err := certgatetls.NewSource(dir, certgatetls.WithPollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	c := src.Current()
	if c.Identity != "spiffe://example.org/svc/billing" || c.Serial != leaf.Cert.SerialNumber.Text(16) ||
		!c.NotAfter.Equal(leaf.Cert.NotAfter) || c.Generation != 1 || len(c.Bundle) != 1 || !c.Bundle[0].Equal(ca.Root) {
		t.Fatalf("credentials = %+v", c)
	}
	got, err := src.GetClientCertificate(nil)
	if err != nil || len(got.Certificate) != 2 || !got.Leaf.Equal(leaf.Cert) {
		t.Fatalf("GetClientCertificate = %v, %v", got, err)
	}
	if !src.Roots().Equal(ca.Pool()) {
		t.Fatal("Roots is not the bundle")
	}
	if changed, err := src.Reload(); changed || err != nil {
		t.Fatalf("Reload of unchanged files = %v, %v", changed, err)
	}
	// Same content, new modification time: read again, nothing changes.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dir, certgatetls.CertFile), later, later); err != nil {
		t.Fatal(err)
	}
	if changed, err := src.Reload(); changed || err != nil || src.Current() != c {
		t.Fatalf("Reload of touched files = %v, %v, generation %d", changed, err, src.Current().Generation)
	}
}

func TestSourceRefusesBadFiles(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ca := testca.New(t, "example.org", testca.WithNow(now))
	other := testca.New(t, "other.org", testca.WithNow(now))
	good := ca.Issue(t)
	encrypted, err := pemutil.EncryptPrivateKey(good.Key, []byte("passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"missing", func(t *testing.T, dir string) {}, "certgatetls: stat DIR/key.pem: no such file or directory"},
		{"key of another certificate", func(t *testing.T, dir string) {
			writeCreds(t, dir, good, ca.BundlePEM())
			writeKey(t, dir, ca.Issue(t))
		}, "certgatetls: private key does not match the certificate: DIR/key.pem does not hold the key of DIR/cert.pem"},
		{"other CA", func(t *testing.T, dir string) {
			writeCreds(t, dir, other.Issue(t, testca.WithID("spiffe://example.org/svc/x")), ca.BundlePEM())
		}, "certgatetls: DIR/cert.pem does not verify against DIR/bundle.pem: x509: certificate signed by unknown authority"},
		{"expired", func(t *testing.T, dir string) {
			writeCreds(t, dir, ca.Issue(t, testca.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour))), ca.BundlePEM())
		}, "certgatetls: DIR/cert.pem expired at 2026-03-01T11:00:00Z (now 2026-03-01T12:00:00Z); renew it with `certgate agent` or enroll again"},
		{"not yet valid", func(t *testing.T, dir string) {
			writeCreds(t, dir, ca.Issue(t, testca.WithValidity(now.Add(time.Hour), now.Add(48*time.Hour))), ca.BundlePEM())
		}, "certgatetls: DIR/cert.pem is not valid before 2026-03-01T13:00:00Z (now 2026-03-01T12:00:00Z)"},
		{"no SPIFFE ID", func(t *testing.T, dir string) {
			writeCreds(t, dir, ca.Issue(t, testca.WithoutID(), testca.WithCN("x")), ca.BundlePEM())
		}, "certgatetls: DIR/cert.pem: certificate has no SPIFFE ID"},
		{"encrypted key", func(t *testing.T, dir string) {
			writeCreds(t, dir, good, ca.BundlePEM())
			atomicfile.Write(filepath.Join(dir, "key.pem"), encrypted, 0o600)
		}, "certgatetls: DIR/key.pem: " + pemutil.ErrEncrypted.Error()},
		{"garbage certificate", func(t *testing.T, dir string) {
			writeCreds(t, dir, good, ca.BundlePEM())
			atomicfile.Write(filepath.Join(dir, "cert.pem"), []byte("not PEM\n"), 0o644)
		}, "certgatetls: DIR/cert.pem: " + parseErr(t, []byte("not PEM\n"))},
		{"empty bundle", func(t *testing.T, dir string) {
			writeCreds(t, dir, good, nil)
		}, "certgatetls: DIR/bundle.pem: " + parseErr(t, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			_, err := certgatetls.NewSource(dir, certgatetls.WithClock(clock.NewFake(now)))
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			if err == nil || err.Error() != want {
				t.Fatalf("NewSource error:\n got %v\nwant %s", err, want)
			}
		})
	}
}

func parseErr(t *testing.T, data []byte) string {
	t.Helper()
	_, err := pemutil.ParseCertificates(data)
	if err == nil {
		t.Fatalf("ParseCertificates(%q) succeeded", data)
	}
	return err.Error()
}

// The agent writes key.pem, then cert.pem. A reload between the two sees a
// key that does not match the certificate: it must keep the old pair, and
// pick up the new one as soon as cert.pem lands.
func TestSourceMismatchedPairNotLoaded(t *testing.T) {
	ca := testca.New(t, "example.org")
	first, second := ca.Issue(t), ca.Issue(t)
	dir := t.TempDir()
	writeCreds(t, dir, first, ca.BundlePEM())
	logs := &logRecorder{}
	src, err := certgatetls.NewSource(dir, certgatetls.WithPollInterval(20*time.Millisecond), certgatetls.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	writeKey(t, dir, second)
	changed, err := src.Reload()
	want := "certgatetls: private key does not match the certificate: " + dir + "/key.pem does not hold the key of " + dir + "/cert.pem"
	if changed || err == nil || err.Error() != want || !errors.Is(err, certgatetls.ErrKeyMismatch) {
		t.Fatalf("Reload with half-written pair = %v, %v; want %s", changed, err, want)
	}
	// The watcher retries meanwhile and keeps the first pair.
	time.Sleep(300 * time.Millisecond)
	if c := src.Current(); c.Serial != first.Cert.SerialNumber.Text(16) || c.Generation != 1 {
		t.Fatalf("mismatched pair loaded: serial %s generation %d", c.Serial, c.Generation)
	}
	cert, _ := src.GetClientCertificate(nil)
	if !cert.Leaf.Equal(first.Cert) {
		t.Fatal("GetClientCertificate returned something else than the first pair")
	}
	if w := logs.find(slog.LevelWarn, "certgatetls: cannot load the new files; keeping the current certificate"); len(w) != 1 || w[0]["error"] != want {
		t.Fatalf("warnings = %q, want one with %q", w, want)
	}

	writeCert(t, dir, second)
	deadline := time.Now().Add(5 * time.Second)
	for src.Current().Serial != second.Cert.SerialNumber.Text(16) {
		if time.Now().After(deadline) {
			t.Fatal("the complete new pair was not picked up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if g := src.Current().Generation; g != 2 {
		t.Fatalf("generation = %d, want 2", g)
	}
}

func TestSourceCloseStopsWatching(t *testing.T) {
	ca := testca.New(t, "example.org")
	dir := t.TempDir()
	writeCreds(t, dir, ca.Issue(t), ca.BundlePEM())
	src, err := certgatetls.NewSource(dir, certgatetls.WithPollInterval(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	src.Close() // idempotent
	writeCreds(t, dir, ca.Issue(t), ca.BundlePEM())
	time.Sleep(50 * time.Millisecond)
	if g := src.Current().Generation; g != 1 {
		t.Fatalf("generation after Close = %d", g)
	}
	// Reload still works on demand.
	if changed, err := src.Reload(); !changed || err != nil {
		t.Fatalf("Reload after Close = %v, %v", changed, err)
	}
}
