package certgatetls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/clock"
)

// DefaultPollInterval is how often a [Source] looks at its files. The agent
// renews at two thirds of a certificate's lifetime, hours before expiry, so
// a few seconds of delay cost nothing; a stat of three files every few
// seconds costs nothing either.
const DefaultPollInterval = 2 * time.Second

// firstRetry is the delay before looking again after a failed reload. The
// agent writes key.pem and then cert.pem, so a reader can catch the new key
// beside the old certificate for the few milliseconds between two renames.
const firstRetry = 50 * time.Millisecond

// warnAfter is how many failed reloads in a row of the same files go by
// before the failure is logged as a warning: a pair caught mid-rotation
// heals on the next look and is not worth an operator's attention.
const warnAfter = 3

// Clock tells the time: anything with a Now() time.Time method. Tests
// inject a fake one; the default is the system clock.
type Clock = clock.Clock

// SourceOption configures a [Source].
type SourceOption func(*sourceOptions)

type sourceOptions struct {
	interval time.Duration
	log      *slog.Logger
	clock    Clock
}

// WithPollInterval sets how often the files are checked for changes
// (default [DefaultPollInterval]). Zero or less turns polling off; the files
// are then read again only by [Source.Reload].
func WithPollInterval(d time.Duration) SourceOption {
	return func(o *sourceOptions) { o.interval = d }
}

// WithLogger sets where reloads and failed reloads are logged (default:
// nowhere). Keys are never logged.
func WithLogger(l *slog.Logger) SourceOption {
	return func(o *sourceOptions) { o.log = l }
}

// WithClock sets the clock that judges certificate validity (default: the
// system clock).
func WithClock(c Clock) SourceOption {
	return func(o *sourceOptions) { o.clock = c }
}

// Source holds the current credentials of a directory and replaces them
// when the files change. It is safe for concurrent use; reads never block.
type Source struct {
	dir  string
	opts sourceOptions
	cur  atomic.Pointer[Credentials]

	mu       sync.Mutex // serializes reloads; guards what follows
	stamp    stamp
	badHash  [sha256.Size]byte
	failures int

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewSource loads dir/key.pem, dir/cert.pem and dir/bundle.pem and, unless
// polling is off, watches them until [Source.Close]. It fails when the
// files are missing or unusable: the key must match the leaf, the chain must
// verify against the bundle now, and the leaf must carry one SPIFFE ID.
func NewSource(dir string, opts ...SourceOption) (*Source, error) {
	o := sourceOptions{interval: DefaultPollInterval}
	for _, f := range opts {
		f(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.clock == nil {
		o.clock = clock.Real{}
	}
	s := &Source{dir: dir, opts: o, done: make(chan struct{})}
	if _, err := s.reload(true); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if o.interval > 0 {
		go s.watch(ctx)
	} else {
		close(s.done)
	}
	return s, nil
}

// Dir returns the directory the source reads.
func (s *Source) Dir() string { return s.dir }

// Current returns the credentials in use.
func (s *Source) Current() *Credentials { return s.cur.Load() }

// Roots returns the trust bundle as a pool, for verifying certgate servers
// and gateways (or, on a server, clients).
func (s *Source) Roots() *x509.CertPool { return s.cur.Load().Roots }

// GetClientCertificate returns the current certificate. It fits
// [tls.Config.GetClientCertificate], so every new handshake presents the
// newest certificate.
func (s *Source) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.cur.Load().Certificate, nil
}

// GetCertificate returns the current certificate. It fits
// [tls.Config.GetCertificate], for a server that serves with its certgate
// certificate.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load().Certificate, nil
}

// Reload reads the files now if they changed since the last look, and
// reports whether new credentials were loaded. When the files are unusable
// the current credentials stay in use and the error says why.
func (s *Source) Reload() (bool, error) { return s.reload(false) }

// Close stops watching the files. The last credentials stay readable.
func (s *Source) Close() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
	})
	return nil
}

func (s *Source) watch(ctx context.Context) {
	defer close(s.done)
	delay := s.opts.interval
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.reload(false); err != nil {
			// Look again soon, then less and less often, up to the poll
			// interval: a pair caught mid-rotation heals in milliseconds, a
			// broken directory is not worth a busy loop.
			if delay >= s.opts.interval {
				delay = firstRetry
			} else {
				delay = min(2*delay, s.opts.interval)
			}
		} else {
			delay = s.opts.interval
		}
		t.Reset(delay)
	}
}

// stamp is what os.Stat says about the three files; when it is unchanged
// the files are not read.
type stamp [3]os.FileInfo

func (a stamp) equal(b stamp) bool {
	for i := range a {
		if a[i] == nil || b[i] == nil || !os.SameFile(a[i], b[i]) ||
			a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()) {
			return false
		}
	}
	return true
}

func (s *Source) reload(first bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	paths := credentialPaths(s.dir)
	// Stat before reading: if a file changes in between, the next look sees
	// a new stamp and reads again.
	var st stamp
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return false, s.failed(first, [sha256.Size]byte{}, fmt.Errorf("certgatetls: %w", err))
		}
		st[i] = fi
	}
	if !first && st.equal(s.stamp) {
		return false, nil
	}
	data, err := readFiles(paths)
	if err != nil {
		return false, s.failed(first, [sha256.Size]byte{}, fmt.Errorf("certgatetls: %w", err))
	}
	h := sha256.New()
	for _, b := range data {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	old := s.cur.Load()
	if old != nil && old.hash == sum {
		s.stamp = st
		s.failures = 0
		return false, nil
	}
	c, err := parseCredentials(paths, data)
	clear(data[0]) // the key's PEM
	if err == nil {
		err = c.verifyNow(paths, s.opts.clock.Now())
	}
	if err != nil {
		return false, s.failed(first, sum, err)
	}
	c.hash = sum
	c.Generation = 1
	if old != nil {
		c.Generation = old.Generation + 1
	}
	s.cur.Store(c)
	s.stamp = st
	s.failures = 0
	s.opts.log.Info("certgatetls: loaded certificate", "dir", s.dir, "identity", c.Identity, "serial", c.Serial, "not_after", c.NotAfter, "generation", c.Generation)
	return true, nil
}

// failed counts a failed reload and logs it once it has lasted.
func (s *Source) failed(first bool, sum [sha256.Size]byte, err error) error {
	if first {
		return err
	}
	if sum != s.badHash {
		s.badHash, s.failures = sum, 0
	}
	s.failures++
	switch {
	case s.failures == warnAfter:
		cur := s.cur.Load()
		s.opts.log.Warn("certgatetls: cannot load the new files; keeping the current certificate",
			"dir", s.dir, "error", err, "identity", cur.Identity, "serial", cur.Serial, "not_after", cur.NotAfter)
	case s.failures < warnAfter:
		s.opts.log.Debug("certgatetls: reload failed; retrying", "dir", s.dir, "error", err)
	}
	return err
}
