package testenv

import (
	"bytes"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// SWTPM starts a software TPM 2.0 (swtpm, Debian package swtpm) for the
// test, with its state in a temporary directory, on two free ports of
// 127.0.0.1 (the command port and the next one, its control port), and
// returns the certgate TPM URI that names it: tpm:simulator=127.0.0.1:PORT.
// It is stopped when the test ends. Missing swtpm skips the test, or
// fails it under CERTGATE_REQUIRE_PEERS=1.
func SWTPM(t testing.TB) string {
	t.Helper()
	bin := RequirePeer(t, "swtpm")
	state := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		port, err := freePortPair()
		if err != nil {
			lastErr = err
			continue
		}
		var out bytes.Buffer
		cmd := exec.Command(bin, "socket", "--tpm2",
			"--tpmstate", "dir="+state,
			"--server", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(port),
			"--ctrl", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(port+1),
			"--flags", "not-need-init,startup-clear",
			"--log", "file="+filepath.Join(state, "swtpm.log"))
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting swtpm: %v", err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitListening(addr, exited, &waitErr); err != nil {
			// Most likely another program took a port in between: try
			// another pair.
			lastErr = fmt.Errorf("%v\n%s", err, out.String())
			select {
			case <-exited:
			default:
				cmd.Process.Kill()
				<-exited
			}
			continue
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		return "tpm:simulator=" + addr
	}
	t.Fatalf("swtpm did not start: %v", lastErr)
	return ""
}

// freePortPair finds a port P of 127.0.0.1 such that P and P+1 are both
// free now. It looks below Linux's ephemeral range (32768 and up by
// default): there, connections other tests make take ports densely, and
// the port after a free one is often some connection's.
func freePortPair() (int, error) {
	var last error
	for i := 0; i < 200; i++ {
		p := 20000 + mathrand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			last = err
			continue
		}
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		l.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
		last = err
	}
	return 0, fmt.Errorf("no two consecutive free ports on 127.0.0.1: %w", last)
}

// waitListening waits (generously: machines under load) until addr
// accepts a connection, or the process exits.
func waitListening(addr string, exited <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("swtpm exited: %v", *waitErr)
		default:
		}
		// Closed at once: swtpm serves the next connection after this one.
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("swtpm is not listening on %s after 60s", addr)
}
