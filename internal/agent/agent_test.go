package agent

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
)

// midJitter makes every random draw 0.5: renewal at 0.65 of the lifetime,
// backoff factor exactly 1.
func midJitter(o *Options) { o.Rand = func() float64 { return 0.5 } }

func (e *env) certCount() int {
	e.t.Helper()
	certs, err := e.store.ListCertificates(context.Background(), store.CertFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(certs)
}

func wait(t *testing.T, errc chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("the agent did not stop")
		return nil
	}
}

// TestServerDownDuringRenewal: the server is down when renewal is due. The
// agent retries after 1 s, 2 s, 4 s, 8 s, 16 s (jitter pinned to 1), keeps
// presenting and keeping on disk the current certificate, logs how long it
// has left, and renews on the first attempt after the server is back on
// the same address.
func TestServerDownDuringRenewal(t *testing.T) {
	e := newEnv(t, time.Hour)
	dir := e.enroll("/svc/billing", keytype.ECDSAP256)
	first := readLeaf(t, dir)
	a, logs := e.newAgent(dir, midJitter)
	run(t, a)
	e.waitSleeping(t)
	due := a.Status().NextRenewal
	if want := first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore) * 65 / 100); !due.Equal(want) {
		t.Fatalf("renewal due %s, want %s (0.65 of the lifetime)", due, want)
	}
	e.stopServer()
	e.clock.AdvanceTo(due)

	var attempts []time.Time
	for n := 1; n <= 5; n++ {
		waitFor(t, fmt.Sprintf("failed attempt %d", n), func() bool { return a.Status().Failures == n })
		st := a.Status()
		if st.State != StateRetrying || !strings.Contains(st.LastError, "connection refused") {
			t.Fatalf("attempt %d: state %q, last error %q", n, st.State, st.LastError)
		}
		if got := tlsCert(t, a).Leaf; !got.Equal(first) {
			t.Fatalf("attempt %d: the agent stopped presenting its current certificate", n)
		}
		if !readLeaf(t, dir).Equal(first) {
			t.Fatalf("attempt %d: cert.pem changed", n)
		}
		attempts = append(attempts, st.LastAttempt)
		if n == 1 {
			left := first.NotAfter.Sub(st.LastAttempt).Round(time.Second)
			want := fmt.Sprintf(`msg="renewal failed; keeping the current certificate" err="agent: renewal: apiclient: POST /v1/renew: `)
			if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "attempt=1 retry_in=1s valid_for="+left.String()) {
				t.Fatalf("log lacks the failure with %s left:\n%s", left, logs)
			}
		}
		e.clock.AdvanceTo(st.NextRenewal)
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if got := attempts[i+1].Sub(attempts[i]); got != want {
			t.Fatalf("interval %d between attempts: %s, want %s (all: %v)", i+1, got, want, attempts)
		}
	}

	// Attempt 6 is due in 16 s; the server comes back before that.
	waitFor(t, "the sixth wait", func() bool { return a.Status().Failures == 5 })
	e.restartServer()
	e.clock.AdvanceTo(a.Status().NextRenewal)
	waitFor(t, "the renewal after the server came back", func() bool { return a.Status().Renewals == 1 })
	st := a.Status()
	leaf := readLeaf(t, dir)
	if leaf.Equal(first) || st.Serial != leaf.SerialNumber.Text(16) || st.LastError != "" || st.Failures != 0 || st.State != StateWaiting {
		t.Fatalf("after recovery: %+v", st)
	}
	if !tlsCert(t, a).Leaf.Equal(leaf) {
		t.Fatal("the agent does not present the renewed certificate")
	}
}

// TestServerDownUntilExpiry: the server never comes back. Retries grow to
// the 5-minute cap, are never scheduled past expiry, and at expiry the
// agent stops and says to enroll again.
func TestServerDownUntilExpiry(t *testing.T) {
	e := newEnv(t, time.Hour)
	dir := e.enroll("/svc/billing", keytype.ECDSAP256)
	first := readLeaf(t, dir)
	a, _ := e.newAgent(dir, midJitter)
	errc := run(t, a)
	e.waitSleeping(t)
	e.stopServer()
	var attempts []time.Time
	for {
		st := a.Status()
		if st.State == StateStopped {
			break
		}
		if st.NextRenewal.After(first.NotAfter) {
			t.Fatalf("retry scheduled at %s, after expiry %s", st.NextRenewal, first.NotAfter)
		}
		if n := len(attempts); st.Failures > 0 && (n == 0 || !attempts[n-1].Equal(st.LastAttempt)) {
			attempts = append(attempts, st.LastAttempt)
		}
		e.clock.AdvanceTo(st.NextRenewal)
		time.Sleep(time.Millisecond)
	}
	err := wait(t, errc)
	want := fmt.Sprintf("agent: certificate expired at %s (serial %s): enroll again with a new token (certgate enroll --token ...)",
		first.NotAfter.UTC().Format(time.RFC3339), first.SerialNumber.Text(16))
	if err == nil || err.Error() != want || !errors.Is(err, ErrExpired) {
		t.Fatalf("Run: %v\nwant: %s", err, want)
	}
	var longest time.Duration
	for i := 1; i < len(attempts); i++ {
		longest = max(longest, attempts[i].Sub(attempts[i-1]))
	}
	if longest != DefaultMaxBackoff {
		t.Fatalf("longest retry interval %s, want the %s cap (attempts %v)", longest, DefaultMaxBackoff, attempts)
	}
	if last := attempts[len(attempts)-1]; !last.Before(first.NotAfter) {
		t.Fatalf("an attempt at %s, after expiry", last)
	}
	if st, _ := ReadStatus(dir); st.State != StateStopped || st.LastError != want {
		t.Fatalf("status file: %+v", st)
	}
}

// TestRevokedCannotRenew: a revoked certificate is found at start (its
// OCSP responder says so); the agent stops at once, without trying to
// renew, says it was revoked and how to recover, and leaves the files
// alone; its status says revoked.
func TestRevokedCannotRenew(t *testing.T) {
	e := newEnv(t, time.Hour)
	dir := e.enroll("/svc/billing", keytype.ECDSAP256)
	leaf := readLeaf(t, dir)
	serial := leaf.SerialNumber.Text(16)
	if _, err := e.authz.Revoke(context.Background(), store.RevokeRequest{Serial: serial, Reason: 1, By: "spiffe://example.org/admin/test", Now: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	a, logs := e.newAgent(dir, nil)
	count := e.certCount()
	errc := run(t, a)
	err := wait(t, errc)
	want := "agent: certificate revoked (serial " + serial + "): enroll again with a new token (certgate enroll --token ...)"
	if err == nil || err.Error() != want || !errors.Is(err, ErrRevoked) {
		t.Fatalf("Run: %v\nwant: %s", err, want)
	}
	if !strings.Contains(logs.String(), `level=ERROR msg="renewal stopped" err="`+want+`"`) {
		t.Fatalf("log lacks the reason:\n%s", logs)
	}
	st, err := ReadStatus(dir)
	if err != nil || st.State != StateStopped || st.LastError != want || !st.NextRenewal.IsZero() || st.Revocation != "revoked" ||
		st.Health(e.clock.Now()) != "revoked" || !strings.HasSuffix(st.RevocationFrom, "/ocsp (the server's responder, from --server or DIR/server.url)") {
		t.Fatalf("status: %+v %v", st, err)
	}
	if !strings.Contains(logs.String(), `level=ERROR msg="the certificate is revoked" serial=`+serial) {
		t.Fatalf("log lacks the revocation:\n%s", logs)
	}
	if e.certCount() != count || !readLeaf(t, dir).Equal(leaf) {
		t.Fatal("a refused renewal changed something")
	}
}

// TestExpiredDoesNotTry: an agent started with an expired certificate does
// not contact the server and says to enroll again.
func TestExpiredDoesNotTry(t *testing.T) {
	e := newEnv(t, time.Hour)
	dir := e.enroll("/svc/billing", keytype.ECDSAP256)
	leaf := readLeaf(t, dir)
	e.stopServer() // any attempt would fail with "connection refused" instead
	e.clock.AdvanceTo(leaf.NotAfter)
	a, _ := e.newAgent(dir, nil)
	errc := run(t, a)
	err := wait(t, errc)
	want := fmt.Sprintf("agent: certificate expired at %s (serial %s): enroll again with a new token (certgate enroll --token ...)",
		leaf.NotAfter.UTC().Format(time.RFC3339), leaf.SerialNumber.Text(16))
	if err == nil || err.Error() != want || !errors.Is(err, ErrExpired) {
		t.Fatalf("Run: %v\nwant: %s", err, want)
	}
	if st := a.Status(); st.LastAttempt != (time.Time{}) || st.Failures != 0 {
		t.Fatalf("the agent tried: %+v", st)
	}
}

// TestHook: the hook runs after every file is in place, with the paths and
// the new certificate in its environment; its output is logged; a failing
// or hanging hook is logged and does not stop the agent.
func TestHook(t *testing.T) {
	testenv.RequirePeer(t, "openssl") // the hook checks the pair with it
	out := t.TempDir()
	t.Setenv("HOOK_OUT", out)
	// The hooks that end by themselves get a timeout they cannot reach on a
	// loaded machine (two openssl runs take more than 300 ms there); the one
	// that hangs is killed at 300 ms, and the agent does not wait for it.
	for _, tc := range []struct {
		name, hook, wantLog string
		timeout             time.Duration
	}{
		{"ok", `a=$(openssl pkey -in "$CERTGATE_KEY" -pubout) && b=$(openssl x509 -in "$CERTGATE_CERT" -pubkey -noout) && [ "$a" = "$b" ] && echo pair-matches
cp "$CERTGATE_CERT" "$HOOK_OUT/cert.pem" && cp "$CERTGATE_BUNDLE" "$HOOK_OUT/bundle.pem"
echo "serial=$CERTGATE_SERIAL identity=$CERTGATE_IDENTITY" >&2`,
			`level=INFO msg="on-renew hook ran" took=`, time.Minute},
		{"fails", `echo boom; exit 3`, `level=ERROR msg="on-renew hook failed; the new certificate is in place" err="exit status 3" took=`, time.Minute},
		{"hangs", `echo started; sleep 30`, `level=ERROR msg="on-renew hook timed out and was killed; the new certificate is in place" timeout=300ms output=started`, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, time.Hour)
			dir := e.enroll("/svc/billing", keytype.ECDSAP256)
			a, logs := e.newAgent(dir, func(o *Options) { o.OnRenew = tc.hook; o.HookTimeout = tc.timeout })
			run(t, a)
			e.waitSleeping(t)
			start := time.Now()
			e.clock.AdvanceTo(a.Status().NextRenewal)
			waitFor(t, "the hook's log line", func() bool { return strings.Contains(logs.String(), "on-renew hook") })
			if d := time.Since(start); d > tc.timeout+2*time.Second {
				t.Fatalf("the hook held the agent for %s", d)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Fatalf("log lacks %q:\n%s", tc.wantLog, logs)
			}
			leaf := readLeaf(t, dir)
			if st := a.Status(); st.Renewals != 1 || st.State != StateWaiting {
				t.Fatalf("after the hook: %+v", st)
			}
			if tc.name != "ok" {
				return
			}
			want := fmt.Sprintf(`output="pair-matches\nserial=%s identity=spiffe://example.org/svc/billing"`, leaf.SerialNumber.Text(16))
			if !strings.Contains(logs.String(), want) {
				t.Fatalf("log lacks the hook output %s:\n%s", want, logs)
			}
			for _, name := range []string{certgatetls.CertFile, certgatetls.BundleFile} {
				seen, _ := os.ReadFile(filepath.Join(out, name))
				now, _ := os.ReadFile(filepath.Join(dir, name))
				if len(seen) == 0 || string(seen) != string(now) {
					t.Fatalf("the hook saw another %s than the one written", name)
				}
			}
		})
	}
}

// TestFilesAreAtomic: while the agent renews twenty times, readers never
// see a file that does not parse, combined.pem always holds a matching
// pair, and key.pem is 0600 throughout.
func TestFilesAreAtomic(t *testing.T) {
	e := newEnv(t, time.Hour)
	dir := e.enroll("/svc/billing", keytype.ECDSAP256)
	a, _ := e.newAgent(dir, nil)
	run(t, a)
	e.waitSleeping(t)
	var stop atomic.Bool
	var reads atomic.Int64
	var mu sync.Mutex
	var problems []string
	report := func(s string) {
		mu.Lock()
		if len(problems) < 5 {
			problems = append(problems, s)
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			b, err := os.ReadFile(filepath.Join(dir, CombinedFile))
			if err != nil {
				report(err.Error())
				continue
			}
			certs, err1 := pemutil.ParseCertificates(blocksOf(b, "CERTIFICATE"))
			key, err2 := pemutil.ParsePrivateKey(blocksOf(b, "PRIVATE KEY"))
			if err1 != nil || err2 != nil {
				report(fmt.Sprintf("combined.pem: %v %v", err1, err2))
				continue
			}
			if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(certs[0].PublicKey) {
				report("combined.pem holds a mismatched pair")
			}
			reads.Add(1)
		}
	})
	wg.Go(func() {
		for !stop.Load() {
			kb, err1 := os.ReadFile(filepath.Join(dir, certgatetls.KeyFile))
			cb, err2 := os.ReadFile(filepath.Join(dir, certgatetls.CertFile))
			fi, err3 := os.Stat(filepath.Join(dir, certgatetls.KeyFile))
			if err1 != nil || err2 != nil || err3 != nil {
				report(fmt.Sprint(err1, err2, err3))
				continue
			}
			if _, err := pemutil.ParsePrivateKey(kb); err != nil {
				report("key.pem: " + err.Error())
			}
			if _, err := pemutil.ParseCertificates(cb); err != nil {
				report("cert.pem: " + err.Error())
			}
			if fi.Mode().Perm() != 0o600 {
				report(fmt.Sprintf("key.pem mode %v", fi.Mode().Perm()))
			}
		}
	})
	for i := 1; i <= 20; i++ {
		e.clock.AdvanceTo(a.Status().NextRenewal)
		waitFor(t, fmt.Sprintf("renewal %d", i), func() bool { return a.Status().Renewals == i })
	}
	stop.Store(true)
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("readers saw: %q", problems)
	}
	checkKeyMatches(t, dir, readLeaf(t, dir))
	t.Logf("%d consistent reads of combined.pem across 20 renewals", reads.Load())
}

// TestRevokedFoundAtWakeUp: a certificate revoked while the agent waits
// is found at its next wake-up (every CheckInterval), long before the
// renewal point: the agent stops, says so, and its status says revoked;
// a SIGHUP (Reload) asks at once.
func TestRevokedFoundAtWakeUp(t *testing.T) {
	for _, viaReload := range []bool{false, true} {
		t.Run(map[bool]string{false: "wake-up", true: "reload"}[viaReload], func(t *testing.T) {
			e := newEnv(t, time.Hour)
			dir := e.enroll("/svc/billing", keytype.ECDSAP256)
			serial := readLeaf(t, dir).SerialNumber.Text(16)
			reload := make(chan os.Signal, 1)
			a, logs := e.newAgent(dir, func(o *Options) { o.Reload = reload })
			errc := run(t, a)
			e.waitSleeping(t)
			if st := a.Status(); st.Revocation != "good" {
				t.Fatalf("at start: %+v", st)
			}
			if _, err := e.authz.Revoke(context.Background(), store.RevokeRequest{Serial: serial, Reason: 1, By: "spiffe://example.org/admin/test", Now: e.clock.Now()}); err != nil {
				t.Fatal(err)
			}
			if viaReload {
				reload <- syscall.SIGHUP
			} else {
				e.clock.Advance(DefaultCheckInterval)
			}
			err := wait(t, errc)
			if !errors.Is(err, ErrRevoked) {
				t.Fatalf("Run: %v, want revoked", err)
			}
			st, _ := ReadStatus(dir)
			if st.Revocation != "revoked" || st.Health(e.clock.Now()) != "revoked" || st.State != StateStopped {
				t.Fatalf("status: %+v", st)
			}
			if !strings.Contains(logs.String(), `msg="the certificate is revoked" serial=`+serial) {
				t.Fatalf("log:\n%s", logs)
			}
		})
	}
}
