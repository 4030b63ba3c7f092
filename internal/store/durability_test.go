package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
)

// crashDBEnv tells the test binary to run as the crash child.
const crashDBEnv = "CERTGATE_STORE_CRASH_DB"

// TestCrashDurability kills a process in the middle of a burst of
// concurrent writes and checks that everything it acknowledged survived:
// the child prints each serial only after RecordIssuance (or Revoke)
// returned nil; the parent SIGKILLs it, reopens the database and finds
// every printed serial, issued or revoked as printed, with an audit chain
// that verifies.
func TestCrashDurability(t *testing.T) {
	db := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDBEnv+"="+db)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	issued := map[string]bool{}
	revoked := map[string]bool{}
	const killAfter = 1500
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		kind, serial, ok := strings.Cut(sc.Text(), " ")
		switch {
		case !ok:
			continue
		case kind == "issued":
			if issued[serial] {
				t.Errorf("serial %s acknowledged twice", serial)
			}
			issued[serial] = true
		case kind == "revoked":
			revoked[serial] = true
		}
		if !killed && len(issued) >= killAfter {
			// Mid-burst: 64 writers are running. Lines already in the pipe
			// are acknowledged writes too; keep reading them to EOF.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed (%v) after %d issuances", err, len(issued))
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL", err)
	}

	s, err := store.OpenSQLite(context.Background(), db)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	for serial := range issued {
		c, err := s.GetCertificate(ctx, serial)
		if err != nil {
			t.Errorf("acknowledged certificate lost: %v", err)
			continue
		}
		if revoked[serial] && c.Revocation == nil {
			t.Errorf("acknowledged revocation of %s lost", serial)
		}
	}
	recs, err := s.AuditRecords(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var v audit.Verifier
	for _, r := range recs {
		if err := v.Add(r); err != nil {
			t.Fatalf("audit chain after crash: %v", err)
		}
	}
	if min := 2 * len(issued); len(recs) < min {
		t.Errorf("%d audit records, want at least %d (token + issuance per acknowledged certificate)", len(recs), min)
	}
	t.Logf("killed after %d acknowledged issuances and %d revocations; %d audit records verify", len(issued), len(revoked), len(recs))
}

// TestCrashChild is the process TestCrashDurability kills. It writes until
// it dies.
func TestCrashChild(t *testing.T) {
	db := os.Getenv(crashDBEnv)
	if db == "" {
		t.Skip("helper process for TestCrashDurability")
	}
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ack := func(kind, serial string) {
		mu.Lock()
		defer mu.Unlock()
		// One write per line, straight to the pipe: no buffering that the
		// kill could lose or tear.
		fmt.Fprintf(os.Stdout, "%s %s\n", kind, serial)
	}
	for w := range 64 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("spiffe://example.org/crash/%d/%d", w, i)
				tok := storetest.NewToken(id, storetest.T0, time.Hour)
				if err := s.CreateToken(ctx, tok, storetest.TokenEntry(tok)); err != nil {
					fmt.Fprintln(os.Stderr, "CreateToken:", err)
					os.Exit(2)
				}
				c := storetest.NewCertificate(id, storetest.T0.Add(time.Minute))
				if err := s.RecordIssuance(ctx, storetest.NewIssuance(c, tok.ID)); err != nil {
					fmt.Fprintln(os.Stderr, "RecordIssuance:", err)
					os.Exit(2)
				}
				ack("issued", c.Serial)
				if i%4 == 0 {
					req := store.RevokeRequest{Serial: c.Serial, Reason: 1, By: storetest.Admin, Now: storetest.T0.Add(time.Hour)}
					if _, err := s.Revoke(ctx, req); err != nil {
						fmt.Fprintln(os.Stderr, "Revoke:", err)
						os.Exit(2)
					}
					ack("revoked", c.Serial)
				}
			}
		}()
	}
	select {}
}
