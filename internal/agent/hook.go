package agent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certgate/certgate/certgatetls"
)

// hookOutputLimit bounds the hook output kept for the log; a chatty hook
// must not fill memory or the log.
const hookOutputLimit = 8 << 10

// hookWaitDelay is how long the agent waits for the hook's output pipes to
// close after the shell exits or is killed: a background child that keeps
// them open must not hang the agent.
const hookWaitDelay = 2 * time.Second

// runHook runs the --on-renew command with sh -c after a renewal. Failure
// and timeout are logged, never fatal: the new certificate is already in
// place. The hook gets the file paths and the new certificate's details in
// its environment.
func (a *Agent) runHook(ctx context.Context, c *credentials) {
	if a.o.OnRenew == "" {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, a.o.HookTimeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, "sh", "-c", a.o.OnRenew)
	dir, _ := filepath.Abs(a.o.Dir)
	keyFile := certgatetls.KeyFile
	if c.KeyURI() != "" {
		keyFile = certgatetls.KeyURIFile // the key is in a device
	}
	cmd.Env = append(os.Environ(),
		"CERTGATE_DIR="+dir,
		"CERTGATE_KEY="+filepath.Join(dir, keyFile),
		"CERTGATE_CERT="+filepath.Join(dir, certgatetls.CertFile),
		"CERTGATE_BUNDLE="+filepath.Join(dir, certgatetls.BundleFile),
		"CERTGATE_COMBINED="+filepath.Join(dir, CombinedFile),
		"CERTGATE_IDENTITY="+c.id.String(),
		"CERTGATE_SERIAL="+c.Serial,
		"CERTGATE_NOT_AFTER="+c.leaf().NotAfter.UTC().Format(time.RFC3339),
	)
	out := &limitedBuffer{max: hookOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = hookWaitDelay
	killGroupOnCancel(cmd)
	start := time.Now() // real time: the hook is a real process
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case errors.Is(hctx.Err(), context.DeadlineExceeded):
		a.o.Log.Error("on-renew hook timed out and was killed; the new certificate is in place",
			"timeout", a.o.HookTimeout, "output", out.String())
	case err != nil:
		a.o.Log.Error("on-renew hook failed; the new certificate is in place", "err", err, "took", took, "output", out.String())
	default:
		a.o.Log.Info("on-renew hook ran", "took", took, "output", out.String())
	}
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu      sync.Mutex
	max     int
	b       strings.Builder
	dropped int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	room := l.max - l.b.Len()
	if room >= len(p) {
		l.b.Write(p)
	} else {
		if room > 0 {
			l.b.Write(p[:room])
		}
		l.dropped += len(p) - max(room, 0)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimRight(l.b.String(), "\n")
	if l.dropped > 0 {
		s += "\n[" + strconv.Itoa(l.dropped) + " more bytes dropped]"
	}
	return s
}
