package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/clock"
)

// TestServerRefusesExpiredCA: a server does not start with an expired
// active intermediate, and says what to do.
func TestServerRefusesExpiredCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	past := clock.NewFake(time.Now().Add(-400 * 24 * time.Hour))
	if err := cadir.Init(context.Background(), cadir.InitOptions{Dir: dir, TrustDomain: "example.org", Passphrase: []byte(testPassphrase), Clock: past}); err != nil {
		t.Fatal(err)
	}
	err := runServer(context.Background(), slog.New(slog.DiscardHandler), dir, "127.0.0.1:0", []byte(testPassphrase), func(string) {
		t.Error("the server started")
	})
	want := regexp.MustCompile(`^ca: the active intermediate "certgate intermediate CA example.org" expired at \S+: the server will not start with it; make a new one with certgate ca rotate-intermediate --now --dir ` + regexp.QuoteMeta(dir) + `$`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Fatalf("runServer with an expired intermediate: %v", err)
	}
	// The operator's way out: rotate, then the server starts.
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	mustCLI(t, "ca", "rotate-intermediate", "--dir", dir, "--now")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- runServer(ctx, slog.New(slog.DiscardHandler), dir, "127.0.0.1:0", []byte(testPassphrase), func(a string) { ready <- a })
	}()
	select {
	case addr := <-ready:
		// Serving: a handshake completes (with the new intermediate's
		// certificate).
		// (A loaded machine takes a while: the server issues its own
		// certificate, OCSP signers and first CRLs before it accepts.)
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
			if err == nil {
				c.Close()
				break
			}
			select {
			case serr := <-done:
				// The listener closed: the server stopped after it was
				// ready; say why instead of dialing a closed port.
				t.Fatalf("the server stopped after the rotation (last dial: %v): %v", err, serr)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no handshake after the rotation: %v", err)
			}
		}
	case err := <-done:
		t.Fatalf("after the rotation: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestServerCAMetric: with server.metrics_listen the server exports when
// each CA certificate in service expires.
func TestServerCAMetric(t *testing.T) {
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "ca")
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", freeAddr(t))
	metrics := freeAddr(t)
	cfgPath := filepath.Join(dir, "certgate.yaml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(b), `metrics_listen: ""`, `metrics_listen: "`+metrics+`"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- runServer(ctx, slog.New(slog.DiscardHandler), dir, "", []byte(testPassphrase), func(string) { close(ready) })
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	status := mustCLI(t, "ca", "status", "--dir", dir, "--json")
	keyID := regexp.MustCompile(`"kind": "intermediate",\s+"generation": 1,[^}]*?"key_id": "([0-9a-f]+)"`).FindStringSubmatch(status)
	if keyID == nil {
		t.Fatalf("ca status --json:\n%s", status)
	}
	want := fmt.Sprintf(`certgate_ca_expiry_timestamp_seconds{generation="1",key_id="%s",kind="intermediate",state="active"}`, keyID[1])
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/metrics has no %s:\n%s", want, body)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
