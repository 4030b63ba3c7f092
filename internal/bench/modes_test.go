package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/testenv"
)

func envTarget(e *testenv.Env) Target {
	return Target{URL: e.URL, Roots: e.Roots, Admin: e.AdminCert, TrustDomain: e.TrustDomain}
}

// countIssued is the number of certificates the server recorded for
// identities spiffe://example.org/bench/NAME-N.
func countIssued(t *testing.T, e *testenv.Env, name string) int {
	t.Helper()
	certs, err := e.Client(t, &e.AdminCert).ListCertificates(context.Background(), apiclient.ListFilter{Prefix: "spiffe://example.org/bench", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range certs {
		if strings.HasPrefix(c.Identity, "spiffe://example.org/bench/"+name+"-") {
			n++
		}
	}
	return n
}

// RunEnroll runs a small load against a real server over TLS; the report
// and the store agree. The server runs in this process, so ServerPID is
// this process.
func TestRunEnrollMode(t *testing.T) {
	e := testenv.Start(t)
	var out, log bytes.Buffer
	res, err := RunEnroll(context.Background(), EnrollOptions{Target: envTarget(e), Clients: 4, Count: 40, Duration: time.Minute, KeyType: "ecdsa-p256", ServerPID: os.Getpid(), Log: &log})
	if err != nil {
		t.Fatalf("RunEnroll: %v\n%s", err, log.String())
	}
	if err := res.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"enrollments  40 sent, 40 ok, 0 failed in ", "clients      4 over HTTP/1.1 keep-alive TLS (4 connections dialled, warm-up included)\n", "rate         ", "latency      p50 ", "server CPU   "} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.HasPrefix(log.String(), "preparing 40 tokens and ecdsa-p256 CSRs (not measured)...\nprepared in ") {
		t.Fatalf("progress:\n%s", log.String())
	}
	if n := countIssued(t, e, "client"); n != 40 {
		t.Fatalf("%d bench certificates recorded, want 40", n)
	}
}

// RunRenew runs small renewal loads (full handshakes, resumed sessions, a
// storm) against a real server over mTLS; the reports and the store agree.
func TestRunRenewModes(t *testing.T) {
	e := testenv.Start(t)
	for _, c := range []struct {
		storm, resume bool
		want          []string
	}{
		{want: []string{"renewals     20 sent, 20 ok, 0 failed in ", "connections  one per renewal, full handshake expected (0 resumed), 4 renewals in flight\n", "server CPU   "}},
		{resume: true, want: []string{"renewals     20 sent, 20 ok, 0 failed in ", "resumed TLS session expected (20 resumed)"}},
		{storm: true, want: []string{"storm        20 agents, each renewing once at a random moment of 500ms\n", "renewals     20 sent, 20 ok, 0 failed in "}},
	} {
		var out bytes.Buffer
		o := RenewOptions{Target: envTarget(e), Clients: 4, Count: 20, Duration: time.Minute, Storm: c.storm, Window: 500 * time.Millisecond, KeyType: "ecdsa-p256", Resume: c.resume, ServerPID: os.Getpid()}
		res, err := RunRenew(context.Background(), o)
		if err != nil {
			t.Fatalf("RunRenew (storm %v, resume %v): %v", c.storm, c.resume, err)
		}
		res.Print(&out)
		for _, want := range c.want {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("report lacks %q:\n%s", want, out.String())
			}
		}
	}
	// 60 agents, each enrolled once and renewed once.
	if n := countIssued(t, e, "agent"); n != 120 {
		t.Fatalf("%d bench certificates recorded, want 120", n)
	}
}

// Every option a mode checks is refused with the flag that sets it.
func TestModeOptionsRefused(t *testing.T) {
	const noProc = "--server-pid: bench: CPU time of process -1: open /proc/-1/stat: no such file or directory"
	const badKey = `--key-type: unsupported key type "dsa" (want one of ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096)`
	enroll := EnrollOptions{Clients: 1, Count: 1}
	renew := RenewOptions{Clients: 1, Count: 1}
	storm := RenewOptions{Storm: true, Count: 1, Window: time.Second}
	revoke := RevokeOptions{Gateways: 5, Revocations: 100, Timeout: time.Minute}
	for _, c := range []struct {
		check func() error
		want  string
	}{
		{with(enroll, func(o *EnrollOptions) { o.Clients = 0 }).Check, "--clients: 0: need at least one client"},
		{with(enroll, func(o *EnrollOptions) { o.Count = 0 }).Check, "--count: 0: need at least one enrollment"},
		{with(enroll, func(o *EnrollOptions) { o.Duration = -time.Second }).Check, "--duration: -1s is negative"},
		{with(enroll, func(o *EnrollOptions) { o.ServerPID = -1 }).Check, noProc},
		{with(enroll, func(o *EnrollOptions) { o.KeyType = "dsa" }).Check, badKey},
		{with(renew, func(o *RenewOptions) { o.Clients = 0 }).Check, "--clients: 0: need at least one client"},
		{with(renew, func(o *RenewOptions) { o.Count = 0 }).Check, "--count: 0: need at least one agent"},
		{with(renew, func(o *RenewOptions) { o.Duration = -time.Second }).Check, "--duration: -1s is negative"},
		{with(renew, func(o *RenewOptions) { o.ServerPID = -1 }).Check, noProc},
		{with(renew, func(o *RenewOptions) { o.KeyType = "dsa" }).Check, badKey},
		{with(storm, func(o *RenewOptions) { o.Count = 0 }).Check, "--agents: 0: need at least one agent"},
		{with(storm, func(o *RenewOptions) { o.Window = 0 }).Check, "--window: 0s is not positive"},
		{with(revoke, func(o *RevokeOptions) { o.Gateways = 0 }).Check, "--gateways: 0: need 1 to 50"},
		{with(revoke, func(o *RevokeOptions) { o.Revocations = 0 }).Check, "--revocations: 0: need 1 to 10000"},
		{with(revoke, func(o *RevokeOptions) { o.Timeout = 0 }).Check, "--timeout: 0s must be positive"},
	} {
		if err := c.check(); err == nil || err.Error() != c.want {
			t.Errorf("Check() = %v, want %q", err, c.want)
		}
	}
	if _, err := RunEnroll(context.Background(), with(enroll, func(o *EnrollOptions) { o.Count = 0 })); err == nil || err.Error() != "--count: 0: need at least one enrollment" {
		t.Errorf("RunEnroll does not check its options: %v", err)
	}
}

func with[O any](o O, f func(*O)) O {
	f(&o)
	return o
}
