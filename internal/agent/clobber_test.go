package agent

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/credsdir"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/keytype"
)

// readFiles returns the bytes and modes of dir's credential files.
func readFiles(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		p := filepath.Join(dir, n)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		out[n] = fi.Mode().String() + " " + string(b)
	}
	return out
}

// An agent whose directory was given to another identity while it ran
// (enroll --force) does not renew into it: nothing is issued, no file
// changes, the status says why; a SIGHUP takes the new identity over.
func TestAgentKeepsOffAnotherIdentity(t *testing.T) {
	e := newEnv(t, time.Hour)
	dir := e.enroll("/svc/billing", keytype.ECDSAP256)
	first := readLeaf(t, dir)
	reload := make(chan os.Signal, 1)
	a, _ := e.newAgent(dir, func(o *Options) { midJitter(o); o.Reload = reload })
	run(t, a)
	e.waitSleeping(t)

	res, err := enroll.Enroll(context.Background(), enroll.Options{Token: e.te.Token(t, "spiffe://example.org/svc/reports", 0), OutDir: dir,
		Force: true, Now: e.clock.Now})
	if err != nil || res.Backup == "" {
		t.Fatalf("enroll --force: %+v %v", res, err)
	}
	names := []string{"key.pem", "cert.pem", "bundle.pem", "server.url"}
	before := readFiles(t, dir, names...)
	issued := e.certCount()

	e.clock.AdvanceTo(a.Status().NextRenewal)
	waitFor(t, "the refused renewal", func() bool { return a.Status().Failures == 1 })
	want := "agent: " + dir + " now holds the credentials of spiffe://example.org/svc/reports; not renewing spiffe://example.org/svc/billing into it" +
		" (send SIGHUP to use what is there, or put this identity's files back)"
	if st := a.Status(); st.LastError != want || st.State != StateRetrying {
		t.Fatalf("status %q %q\nwant error %s", st.State, st.LastError, want)
	}
	after := readFiles(t, dir, names...)
	for _, n := range names {
		if after[n] != before[n] {
			t.Errorf("%s changed", n)
		}
	}
	if n := e.certCount(); n != issued {
		t.Fatalf("%d certificates issued for a renewal that could not be written", n-issued)
	}
	if !tlsCert(t, a).Leaf.Equal(first) {
		t.Fatal("the agent stopped presenting its own certificate")
	}

	reload <- syscall.SIGHUP
	waitFor(t, "the reload", func() bool { return a.Status().Identity == "spiffe://example.org/svc/reports" })
	if got := tlsCert(t, a).Leaf.SerialNumber.Text(16); got != res.Serial {
		t.Fatalf("presents %s after SIGHUP, want %s", got, res.Serial)
	}
}

// The gateway's own identity: a directory of files that are not a
// certgate identity is refused when it would enroll, with the message
// naming --force; with Force they go to a backup and the gateway enrolls.
// A cert.pem that does not parse needs Force and a token.
func TestSetupGatewayForeignDirectory(t *testing.T) {
	e := newEnv(t, time.Hour)
	ctx := context.Background()
	o := GatewayOptions{TrustDomain: td, Hosts: []string{"127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Clock: e.clock, Log: slog.New(slog.DiscardHandler)}
	client := e.enroll("/svc/billing", keytype.ECDSAP256)
	keyPEM, err := os.ReadFile(filepath.Join(client, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}

	// A key alone: whose it is cannot be told.
	o.Dir = filepath.Join(t.TempDir(), "gw")
	os.Mkdir(o.Dir, 0o700)
	os.WriteFile(filepath.Join(o.Dir, "key.pem"), keyPEM, 0o600)
	o.Token = e.te.Token(t, "spiffe://example.org/gateway/gw1", time.Hour)
	_, err = SetupGateway(ctx, o)
	want := "gateway: enrolling spiffe://example.org/gateway/gw1: enroll: " + o.Dir +
		" holds files that are not a certgate identity (key.pem without a certificate: a key alone does not say whose it is);" +
		" refusing to replace them with spiffe://example.org/gateway/gw1 (use another directory, or pass --force to move them to a backup directory first)"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n got %v\nwant %s", err, want)
	}
	if b, _ := os.ReadFile(filepath.Join(o.Dir, "key.pem")); string(b) != string(keyPEM) {
		t.Fatal("key.pem changed")
	}
	o.Force = true
	g, err := SetupGateway(ctx, o) // the same token: the refusal did not spend it
	if err != nil {
		t.Fatal(err)
	}
	if id := g.Certificate().Leaf.URIs[0].String(); id != "spiffe://example.org/gateway/gw1" {
		t.Fatalf("enrolled %s", id)
	}
	backups, _ := filepath.Glob(filepath.Join(o.Dir, "backup-*", "key.pem"))
	if len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	if b, _ := os.ReadFile(backups[0]); string(b) != string(keyPEM) {
		t.Fatal("the backup does not hold the old key")
	}

	// A cert.pem that does not parse.
	o.Dir, o.Force = filepath.Join(t.TempDir(), "gw"), false
	os.Mkdir(o.Dir, 0o700)
	os.WriteFile(filepath.Join(o.Dir, "cert.pem"), []byte("garbage\n"), 0o644)
	o.Token = e.te.Token(t, "spiffe://example.org/gateway/gw2", time.Hour)
	if _, err := SetupGateway(ctx, o); err == nil || err.Error() != "gateway: identity.dir: certgatetls: "+filepath.Join(o.Dir, "cert.pem")+": pemutil: no PEM data found" {
		t.Fatalf("garbage without force: %v", err)
	}
	o.Force = true
	if _, err := SetupGateway(ctx, o); err != nil {
		t.Fatal(err)
	}
	if backups, _ := filepath.Glob(filepath.Join(o.Dir, "backup-*", "cert.pem")); len(backups) != 1 || !strings.HasPrefix(filepath.Base(filepath.Dir(backups[0])), "backup-") {
		t.Fatalf("backups %v", backups)
	}
}

// A renewal cut by a crash after the new key.pem: the agent finishes the
// write when it starts (cert.pem becomes the pending chain) instead of
// refusing a mismatched pair.
func TestAgentFinishesInterruptedWrite(t *testing.T) {
	e := newEnv(t, time.Hour)
	dir := e.enroll("/svc/billing", keytype.ECDSAP256)
	next := e.enroll("/svc/billing", keytype.ECDSAP256)
	for from, to := range map[string]string{"key.pem": "key.pem", "cert.pem": credsdir.PendingFile} {
		b, err := os.ReadFile(filepath.Join(next, from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, logs := e.newAgent(dir, nil)
	if got, want := a.Status().Serial, readLeaf(t, next).SerialNumber.Text(16); got != want {
		t.Fatalf("serial %s, want the pending chain's %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, credsdir.PendingFile)); !os.IsNotExist(err) {
		t.Fatalf("pending chain left: %v", err)
	}
	if !strings.Contains(logs.String(), `msg="finished an interrupted write of the credentials`) {
		t.Fatalf("log:\n%s", logs)
	}
}
