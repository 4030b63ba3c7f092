package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/credsdir"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/auditcheck"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/ocspcheck"
)

// Defaults of [Options].
const (
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultHookTimeout = 30 * time.Second
	// DefaultRequestTimeout bounds one renewal request, handshake included.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultCheckInterval is how often a waiting agent asks the server
	// whether the intermediate that issued its certificate was revoked: an
	// emergency rotation reaches every agent within this, and the agent
	// renews under the new intermediate at once.
	DefaultCheckInterval = time.Minute
)

// The renewal point is drawn uniformly in [renewFrom, renewFrom+renewSpread]
// of the lifetime: about two thirds, leaving a third of the lifetime for
// retries, and spread so a fleet enrolled together does not renew together.
const (
	renewFrom   = 0.6
	renewSpread = 0.1
)

// Options configures an [Agent].
type Options struct {
	// Dir holds key.pem, cert.pem and bundle.pem as `certgate enroll`
	// wrote them; the agent replaces them there.
	Dir string
	// ServerURL is the certgate server, https://HOST:PORT;
	// ServerURLSource says where it came from ("--server",
	// "DIR/server.url"), for the error when it cannot be reached.
	ServerURL, ServerURLSource string
	Clock                      Clock        // clock.Real if nil
	Log                        *slog.Logger // discards if nil
	// OnRenew is a shell command (sh -c) run after every renewal, once all
	// files are written; empty runs nothing.
	OnRenew     string
	HookTimeout time.Duration // DefaultHookTimeout if zero
	// MinBackoff and MaxBackoff bound the retry delay after a failure.
	MinBackoff, MaxBackoff time.Duration
	RequestTimeout         time.Duration // DefaultRequestTimeout if zero
	// Rand returns a number in [0, 1) for jitter; math/rand/v2 if nil.
	Rand func() float64
	// CheckInterval is how often the agent checks the CA's state between
	// renewals (DefaultCheckInterval if zero; negative: never).
	CheckInterval time.Duration
	// Reload receives a value (a SIGHUP) when the agent should re-read its
	// files now and check its certificate again; nil: never.
	Reload <-chan os.Signal
	// AuditWitness, if set, is the file where the agent remembers the
	// newest audit checkpoint the server showed it (auditcheck.Watcher),
	// checked at every check of the CA's state; "" keeps none.
	AuditWitness string
}

// Agent renews one directory's certificate. Its methods are safe for
// concurrent use; Run is called once.
type Agent struct {
	o   Options
	cur atomic.Pointer[credentials]

	mu      sync.Mutex // guards what follows
	status  Status
	rotated []func()
}

// New loads the credentials in o.Dir. It does not contact the server.
func New(o Options) (*Agent, error) {
	if o.Dir == "" {
		return nil, errors.New("agent: no directory")
	}
	if err := checkServerURL(o.ServerURL); err != nil {
		return nil, err
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HookTimeout <= 0 {
		o.HookTimeout = DefaultHookTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	// A renewal cut by a crash between key.pem and cert.pem is finished
	// here rather than refused as a mismatched pair.
	if done, err := credsdir.Complete(o.Dir); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	} else if done {
		o.Log.Warn("finished an interrupted write of the credentials: the new key's certificate was in "+credsdir.PendingFile, "dir", o.Dir)
	}
	c, err := loadCredentials(o.Dir)
	if err != nil {
		return nil, err
	}
	a := &Agent{o: o}
	a.cur.Store(c)
	a.status = Status{Identity: c.id.String(), Serial: c.Serial, NotBefore: c.leaf().NotBefore, NotAfter: c.leaf().NotAfter, State: StateStarting}
	return a, nil
}

// GetClientCertificate returns the current certificate, for
// tls.Config.GetClientCertificate: each new connection gets the newest one.
func (a *Agent) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return a.cur.Load().Certificate, nil
}

// Status returns the agent's current state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// onRotate registers f to be called after each renewal, once the new
// certificate is current.
func (a *Agent) onRotate(f func()) {
	a.mu.Lock()
	a.rotated = append(a.rotated, f)
	a.mu.Unlock()
}

// OnRotate registers f to be called with the new credentials after each
// renewal, once they are current and written (the Workload API streams
// them to its callers).
func (a *Agent) OnRotate(f func(*certgatetls.Credentials)) {
	a.onRotate(func() { f(a.Credentials()) })
}

// Credentials returns the current credentials.
func (a *Agent) Credentials() *certgatetls.Credentials { return a.cur.Load().Credentials }

// renewalPoint draws the time to renew c.
func (a *Agent) renewalPoint(c *credentials) time.Time {
	nb, na := c.leaf().NotBefore, c.leaf().NotAfter
	frac := renewFrom + renewSpread*a.o.Rand()
	return nb.Add(time.Duration(frac * float64(na.Sub(nb))))
}

// backoff is the delay before retry number n (1 for the first retry):
// MinBackoff doubling up to MaxBackoff, times a factor in [0.8, 1.2), and
// never more than MaxBackoff.
func (a *Agent) backoff(n int) time.Duration {
	d := a.o.MinBackoff
	for i := 1; i < n && d < a.o.MaxBackoff; i++ {
		d *= 2
	}
	d = time.Duration(float64(min(d, a.o.MaxBackoff)) * (0.8 + 0.4*a.o.Rand()))
	return min(d, a.o.MaxBackoff)
}

// maxNap bounds one wait. Timers run on the monotonic clock, which stops
// while a machine is suspended; a laptop that slept through its renewal
// time must notice within a minute of waking, so long waits are cut into
// naps after each of which the wall clock is read again.
const maxNap = time.Minute

// sleepUntil waits until the agent's clock reaches t or a reload is
// asked for (reload true); ok false if ctx ended first.
func (a *Agent) sleepUntil(ctx context.Context, t time.Time) (ok, reload bool) {
	for {
		now := a.o.Clock.Now()
		if !now.Before(t) {
			return true, false
		}
		wake := t
		if t.Sub(now) > maxNap {
			wake = now.Add(maxNap)
		}
		select {
		case <-ctx.Done():
			return false, false
		case <-a.o.Reload:
			return true, true
		case <-a.o.Clock.Until(wake):
		}
	}
}

// reloadFiles re-reads the directory (a SIGHUP): credentials replaced by
// hand, or by an enroll, become current. A directory that no longer
// loads changes nothing; the error is logged.
func (a *Agent) reloadFiles() (changed bool) {
	cur := a.cur.Load()
	c, err := loadCredentials(a.o.Dir)
	if err != nil {
		a.o.Log.Error("SIGHUP: re-reading the directory failed; keeping the certificate in use", "dir", a.o.Dir, "err", err, "serial", cur.Serial)
		return false
	}
	if c.Serial == cur.Serial {
		a.o.Log.Info("SIGHUP: re-read the directory; same certificate", "dir", a.o.Dir, "serial", cur.Serial, "valid_for", a.left(cur))
		return false
	}
	a.cur.Store(c)
	a.o.Log.Info("SIGHUP: re-read the directory; new certificate in use", "dir", a.o.Dir, "identity", c.id.String(),
		"serial", c.Serial, "replaced", cur.Serial, "not_after", c.leaf().NotAfter, "valid_for", a.left(c))
	a.update(func(s *Status) {
		*s = Status{Identity: c.id.String(), Serial: c.Serial, NotBefore: c.leaf().NotBefore, NotAfter: c.leaf().NotAfter,
			State: StateWaiting, Renewals: s.Renewals}
	})
	a.mu.Lock()
	hooks := slices.Clone(a.rotated)
	a.mu.Unlock()
	for _, f := range hooks {
		f()
	}
	return true
}

// Run renews the certificate until ctx ends (it then returns nil) or
// renewal becomes impossible: the certificate expired, or the server
// refused it for good. Those errors are *[StoppedError] and say what to do.
func (a *Agent) Run(ctx context.Context) error {
	cur := a.cur.Load()
	if !cur.combinedCurrent(a.o.Dir) {
		if err := cur.writeCombined(a.o.Dir); err != nil {
			return err
		}
	}
	next := a.renewalPoint(cur)
	if a.statusRevoked(ctx, cur) {
		return a.stop(&StoppedError{Err: ErrRevoked, Serial: cur.Serial, NotAfter: cur.leaf().NotAfter})
	}
	a.witnessAtStart(ctx, cur)
	a.o.Log.Info("agent started", "identity", cur.id.String(), "serial", cur.Serial,
		"not_after", cur.leaf().NotAfter, "next_renewal", next, "valid_for", a.left(cur))
	failures := 0
	for {
		cur = a.cur.Load()
		now := a.o.Clock.Now()
		if !now.Before(cur.leaf().NotAfter) {
			return a.stop(&StoppedError{Err: ErrExpired, Serial: cur.Serial, NotAfter: cur.leaf().NotAfter})
		}
		if now.Before(next) {
			a.update(func(s *Status) {
				s.NextRenewal = next
				if s.State == StateStarting {
					s.State = StateWaiting
				}
			})
			wake := next
			if a.o.CheckInterval > 0 && now.Add(a.o.CheckInterval).Before(next) {
				wake = now.Add(a.o.CheckInterval)
			}
			woke, reload := a.sleepUntil(ctx, wake)
			if !woke {
				return nil
			}
			if reload && a.reloadFiles() {
				cur = a.cur.Load()
				next = a.renewalPoint(cur)
			}
			if (reload || wake.Before(next)) && a.statusRevoked(ctx, cur) {
				return a.stop(&StoppedError{Err: ErrRevoked, Serial: cur.Serial, NotAfter: cur.leaf().NotAfter})
			}
			if (reload || wake.Before(next)) && a.issuerRevoked(ctx, cur) {
				a.o.Log.Warn("the intermediate that issued this certificate was revoked; renewing now under the active one",
					"serial", cur.Serial, "issuer", hex.EncodeToString(cur.leaf().AuthorityKeyId))
				next = a.o.Clock.Now()
			}
			continue
		}
		fresh, err := a.renew(ctx, cur)
		now = a.o.Clock.Now()
		if ctx.Err() != nil {
			return nil
		}
		var stopped *StoppedError
		switch {
		case err == nil:
			failures = 0
			next = a.renewalPoint(fresh)
			a.o.Log.Info("certificate renewed", "identity", fresh.id.String(), "serial", fresh.Serial,
				"renewed_from", cur.Serial, "not_after", fresh.leaf().NotAfter, "next_renewal", next)
			a.update(func(s *Status) {
				*s = Status{Identity: fresh.id.String(), Serial: fresh.Serial, NotBefore: fresh.leaf().NotBefore,
					NotAfter: fresh.leaf().NotAfter, State: StateWaiting, NextRenewal: next, LastAttempt: now,
					LastRenewal: now, Renewals: s.Renewals + 1,
					AuditCheckpoint: s.AuditCheckpoint, AuditAlarms: s.AuditAlarms, AuditError: s.AuditError}
			})
			a.runHook(ctx, fresh)
		case errors.As(err, &stopped):
			a.update(func(s *Status) { s.LastAttempt = now; s.Failures++ })
			return a.stop(err)
		default:
			failures++
			left := cur.leaf().NotAfter.Sub(now)
			delay := a.backoff(failures)
			if delay >= left {
				// Never wait past expiry: one more try halfway there if
				// that is still worth a retry, else wake at expiry to stop.
				delay = left
				if left/2 >= a.o.MinBackoff {
					delay = left / 2
				}
			}
			next = now.Add(delay)
			a.o.Log.Warn("renewal failed; keeping the current certificate",
				"err", err, "attempt", failures, "retry_in", delay.Round(time.Millisecond),
				"valid_for", left.Round(time.Second), "not_after", cur.leaf().NotAfter, "serial", cur.Serial)
			a.update(func(s *Status) {
				s.State = StateRetrying
				s.LastAttempt = now
				s.LastError = err.Error()
				s.Failures = failures
				s.NextRenewal = next
			})
		}
	}
}

// issuerRevoked asks the server whether the CA key that issued c was
// revoked. A failure to ask is no answer: the agent keeps waiting for its
// renewal point and asks again at the next check.
func (a *Agent) issuerRevoked(ctx context.Context, c *credentials) bool {
	u, _ := url.Parse(a.o.ServerURL) // checked by New
	cl, err := apiclient.New(apiclient.Options{ServerURL: a.o.ServerURL, URLSource: a.o.ServerURLSource, Certificate: c.Certificate,
		VerifyConnection: a.verifyServer(u.Hostname(), c.Roots), Timeout: a.o.RequestTimeout})
	if err != nil {
		return false
	}
	defer cl.CloseIdleConnections()
	a.witnessAudit(ctx, cl)
	st, err := cl.CA(ctx)
	if err != nil {
		a.o.Log.Debug("checking the CA's state failed", "err", err)
		return false
	}
	return slices.Contains(st.RevokedIssuers, hex.EncodeToString(c.leaf().AuthorityKeyId))
}

// witnessAtStart shows the witness the server's checkpoint once at start
// (then at every check of the CA's state).
func (a *Agent) witnessAtStart(ctx context.Context, c *credentials) {
	if a.o.AuditWitness == "" || a.o.CheckInterval < 0 {
		return
	}
	u, _ := url.Parse(a.o.ServerURL) // checked by New
	cl, err := apiclient.New(apiclient.Options{ServerURL: a.o.ServerURL, URLSource: a.o.ServerURLSource, Certificate: c.Certificate,
		VerifyConnection: a.verifyServer(u.Hostname(), c.Roots), Timeout: a.o.RequestTimeout})
	if err != nil {
		return
	}
	defer cl.CloseIdleConnections()
	a.witnessAudit(ctx, cl)
}

// witnessAudit shows the server's audit checkpoint to the witness: a
// plain client cannot read the log, so it checks what checkpoints alone
// show (package auditcheck); one that does not extend the remembered one
// is logged and counted in the status (audit_alarms).
func (a *Agent) witnessAudit(ctx context.Context, cl *apiclient.Client) {
	if a.o.AuditWitness == "" {
		return
	}
	w := auditcheck.Watcher{Server: cl, Witness: checkpoint.NewWitness(a.o.AuditWitness), Log: a.o.Log}
	s, err := w.Check(ctx)
	switch {
	case err == nil:
		a.update(func(st *Status) { st.AuditCheckpoint, st.AuditError = s.Size, "" })
	case errors.Is(err, checkpoint.ErrNotExtended), errors.Is(err, checkpoint.ErrKeyChanged), errors.Is(err, checkpoint.ErrSignature):
		a.update(func(st *Status) { st.AuditAlarms++; st.AuditError = err.Error() })
	default:
		a.o.Log.Debug("audit: witness: could not fetch the server's checkpoint", "err", err)
	}
}

// CheckStatus asks the current certificate's OCSP responder now and
// records the answer in the status (Run does the same at start and at
// every wake-up); it returns a *StoppedError when the certificate is
// revoked.
func (a *Agent) CheckStatus(ctx context.Context) error {
	cur := a.cur.Load()
	if a.statusRevoked(ctx, cur) {
		return a.stop(&StoppedError{Err: ErrRevoked, Serial: cur.Serial, NotAfter: cur.leaf().NotAfter})
	}
	return nil
}

// statusRevoked asks the certificate's OCSP responder (its OCSP URL, else
// the server's /ocsp) about c, records the answer in the status, and
// reports whether c is revoked. No answer is not "good": it is recorded
// as a failed check and the agent carries on (renewal will tell).
func (a *Agent) statusRevoked(ctx context.Context, c *credentials) bool {
	if a.o.CheckInterval < 0 {
		return false
	}
	ck := ocspcheck.Checker{Client: ocspcheck.HTTPClient(c.Roots, a.o.RequestTimeout), ServerURL: a.o.ServerURL,
		ServerSource: "--server or DIR/server.url", Now: a.o.Clock.Now}
	from := "no responder"
	if url, source, err := ck.Where(c.leaf()); err == nil {
		from = url + " (" + source + ")"
	}
	var issuer *x509.Certificate
	if len(c.Certificate.Certificate) > 1 {
		issuer, _ = x509.ParseCertificate(c.Certificate.Certificate[1])
	}
	if issuer == nil {
		a.update(func(s *Status) { s.RevocationError = "cert.pem has no issuer certificate after the leaf" })
		return false
	}
	ans, err := ck.Check(ctx, c.leaf(), issuer)
	now := a.o.Clock.Now()
	if err != nil {
		if ctx.Err() == nil {
			a.o.Log.Warn("checking the certificate's revocation status failed; carrying on", "serial", c.Serial, "from", from, "err", err)
		}
		a.update(func(s *Status) { s.RevocationCheckedAt, s.RevocationFrom, s.RevocationError = now, from, err.Error() })
		return false
	}
	a.update(func(s *Status) {
		s.Revocation, s.RevocationCheckedAt, s.RevocationFrom, s.RevocationError = string(ans.Status), now, from, ""
	})
	switch ans.Status {
	case ocspcheck.Revoked:
		a.o.Log.Error("the certificate is revoked", "serial", c.Serial, "revoked_at", ans.RevokedAt, "reason", ans.Reason, "from", from)
		return true
	case ocspcheck.Unknown:
		a.o.Log.Warn("the certificate's responder does not know it", "serial", c.Serial, "from", from)
	default:
		a.o.Log.Debug("certificate status: good", "serial", c.Serial, "from", from)
	}
	return false
}

// left is how long c stays valid, by the agent's clock.
func (a *Agent) left(c *credentials) time.Duration {
	return c.leaf().NotAfter.Sub(a.o.Clock.Now()).Round(time.Second)
}

// stop records and logs the error that ends Run.
func (a *Agent) stop(err error) error {
	a.o.Log.Error("renewal stopped", "err", err)
	a.update(func(s *Status) {
		s.State = StateStopped
		s.LastError = err.Error()
		s.NextRenewal = time.Time{}
	})
	return err
}

// update changes the status and writes it to the status file. A failed
// write is logged: the status file is a report, not a reason to stop.
func (a *Agent) update(f func(*Status)) {
	a.mu.Lock()
	f(&a.status)
	a.status.UpdatedAt = a.o.Clock.Now()
	st := a.status
	a.mu.Unlock()
	if err := writeStatus(a.o.Dir, st); err != nil {
		a.o.Log.Error("writing the status file failed", "err", err)
	}
}

// ErrRevoked, ErrExpired and ErrUnknown are why renewal stopped; a
// *[StoppedError] wraps one of them.
var (
	ErrRevoked = errors.New("agent: certificate revoked")
	ErrExpired = errors.New("agent: certificate expired")
	ErrUnknown = errors.New("agent: certificate unknown to the server")
)

// StoppedError says renewal is no longer possible and what to do.
type StoppedError struct {
	Err      error // ErrRevoked, ErrExpired or ErrUnknown
	Serial   string
	NotAfter time.Time
}

const enrollAgain = "enroll again with a new token (certgate enroll --token ...)"

func (e *StoppedError) Error() string {
	switch e.Err {
	case ErrRevoked:
		return fmt.Sprintf("agent: certificate revoked (serial %s): %s", e.Serial, enrollAgain)
	case ErrExpired:
		return fmt.Sprintf("agent: certificate expired at %s (serial %s): %s", e.NotAfter.UTC().Format(time.RFC3339), e.Serial, enrollAgain)
	default:
		return fmt.Sprintf("agent: certificate unknown to the server, which did not issue serial %s: %s", e.Serial, enrollAgain)
	}
}

func (e *StoppedError) Unwrap() error { return e.Err }
