package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/gateway"
)

// startGatewayCmd runs `certgate gateway` in-process with the config at
// cfgPath, its access log to out, until the test ends. It returns the
// gateway's address once it serves, or the error it stopped with before.
func startGatewayCmd(t *testing.T, log *slog.Logger, cfgPath string, out io.Writer, run gatewayRun) (string, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runGatewayWith(ctx, log, cfgPath, streams{out: out, err: io.Discard}, run, func(gw *gateway.Gateway) {
			ready <- gw.Addr().String()
		})
	}()
	select {
	case addr := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gateway: %v", err)
			}
		})
		return addr, nil
	case err := <-done:
		cancel()
		return "", err
	}
}

// enrollCLI enrolls spiffe://example.org/svc/NAME the operator's way:
// `certgate token create` in the CA directory, then `certgate enroll` into
// a new directory, which it returns.
func enrollCLI(t *testing.T, caDir, name string) string {
	t.Helper()
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", caDir, "--identity", "spiffe://example.org/svc/"+name, "--ttl", "10m"))
	out := filepath.Join(t.TempDir(), name)
	mustCLI(t, "enroll", "--token", tok, "--out", out)
	return out
}
