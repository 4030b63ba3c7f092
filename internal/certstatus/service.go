package certstatus

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/store"
)

// Store is what the status service reads.
type Store interface {
	GetCertificate(ctx context.Context, serial string) (store.Certificate, error)
	Events(ctx context.Context, after int64, limit int) ([]store.Event, error)
	RevocationSnapshot(ctx context.Context, now time.Time) (store.Snapshot, error)
}

// Notifier wakes the service when events were committed (the SQL store does,
// in-process). Without one the service polls only.
type Notifier interface {
	EventsChanged() <-chan struct{}
}

// Authority is what the service needs from the CA: the hierarchy (which
// intermediates answer for their certificates, which roots publish a CRL
// of the CA certificates they certified), and issuance of each
// intermediate's delegated OCSP signer. *ca.Service implements it.
type Authority interface {
	Hierarchy() *ca.Hierarchy
	TrustDomain() string
	IssueDirectBy(ctx context.Context, iss *ca.Issuer, r ca.Request, p ca.Profile, obtained, actor string) (ca.Issued, error)
}

// Settings are the validity periods and refresh intervals; zero fields take
// the defaults below.
type Settings struct {
	// CRLValidity is nextUpdate - thisUpdate of a CRL (DefaultCRLValidity).
	CRLValidity time.Duration
	// OCSPValidity is nextUpdate - thisUpdate of an OCSP response
	// (DefaultOCSPValidity).
	OCSPValidity time.Duration
	// SignerLifetime is the life of the delegated OCSP signing certificate
	// (ca.DefaultOCSPSignerLifetime).
	SignerLifetime time.Duration
	// MaxAge caps the HTTP Cache-Control max-age of CRLs and OCSP responses
	// (DefaultMaxAge).
	MaxAge time.Duration
	// Poll is how often the store is asked for new events without a
	// notification, which is how revocations made by another replica arrive
	// (one second if zero).
	Poll time.Duration
}

// Defaults of [Settings].
const (
	// DefaultCRLValidity is short because the CRL serves verifiers that do
	// not follow the change feed: a verifier may cache a CRL until its
	// nextUpdate, so this is how long a revocation can go unseen by one.
	// Against 24 h leaves, a day would be useless; an hour keeps the window
	// small, and rebuilding 100,000 entries costs a fraction of a second.
	// The CRL is rebuilt on every revocation and at half its validity.
	DefaultCRLValidity = time.Hour
	// DefaultOCSPValidity is an hour for the same reason; cached responses
	// are re-signed at half of it.
	DefaultOCSPValidity = time.Hour
	// DefaultMaxAge bounds how long an HTTP cache between us and a verifier
	// may hide a revocation, independent of nextUpdate.
	DefaultMaxAge = 5 * time.Minute
)

// backdate is subtracted from thisUpdate, as the CA does for NotBefore: a
// verifier whose clock is a little behind ours (OpenSSL allows no skew for a
// CRL's thisUpdate) still accepts a CRL or response fresh off the press.
const backdate = time.Minute

// Options configures a Service.
type Options struct {
	Authority Authority
	Store     Store
	Notifier  Notifier // nil: poll only
	Clock     clock.Clock
	Log       *slog.Logger
	Settings
}

// Service builds CRLs and answers OCSP requests for every intermediate
// that answers for its certificates, and builds the CRLs of the roots.
type Service struct {
	o Options

	// issuersMu guards the per-issuer state, rebuilt when the hierarchy
	// changes (keeping the state of issuers still in it).
	issuersMu sync.Mutex
	issuersOf *ca.Hierarchy
	issuers   map[string]*issuerState // by key ID

	// syncMu serializes reads of the store into the view.
	syncMu sync.Mutex
	mu     sync.RWMutex
	loaded bool
	pos    int64               // last event position applied
	revs   map[string]*revoked // by serial: revocations of unexpired certificates (plus one CRL validity)
	wake   <-chan struct{}     // closed when the store has news after pos
	synced time.Time           // when the store was last read

	cache responseCache
}

// issuerState is what the service keeps per issuer: how OCSP requests name
// it, its current CRL and (intermediates) its delegated OCSP signer.
type issuerState struct {
	iss  *ca.Issuer
	root bool // a root: its CRL lists revoked CA certificates
	hash issuerHashes

	crlMu sync.Mutex
	crl   *CRL

	signerMu sync.Mutex
	signer   *signer
}

// New returns a Service. Nothing is read or issued until first use or
// [Service.Start].
func New(o Options) (*Service, error) {
	if o.Authority == nil || o.Store == nil || o.Clock == nil {
		return nil, errors.New("certstatus: needs an authority, a store and a clock")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&o.CRLValidity, DefaultCRLValidity},
		{&o.OCSPValidity, DefaultOCSPValidity},
		{&o.SignerLifetime, ca.DefaultOCSPSignerLifetime},
		{&o.MaxAge, DefaultMaxAge},
		{&o.Poll, time.Second},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("certstatus: negative duration %s", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.OCSPValidity >= o.SignerLifetime {
		return nil, fmt.Errorf("certstatus: OCSP validity %s must be shorter than the signer lifetime %s", o.OCSPValidity, o.SignerLifetime)
	}
	s := &Service{o: o, revs: make(map[string]*revoked)}
	s.cache.init(maxCached)
	if _, err := s.states(); err != nil {
		return nil, err
	}
	return s, nil
}

// states returns the per-issuer state of the authority's current
// hierarchy.
func (s *Service) states() (map[string]*issuerState, error) {
	h := s.o.Authority.Hierarchy()
	s.issuersMu.Lock()
	defer s.issuersMu.Unlock()
	if h == s.issuersOf {
		return s.issuers, nil
	}
	next := make(map[string]*issuerState, len(h.Status)+len(h.RootIssuers))
	add := func(iss *ca.Issuer, root bool) error {
		if cur := s.issuers[iss.KeyID()]; cur != nil && cur.iss.Certificate().Equal(iss.Certificate()) && cur.root == root {
			cur.iss = iss
			if root {
				// What a root's CRL lists comes from the hierarchy.
				cur.crlMu.Lock()
				cur.crl = nil
				cur.crlMu.Unlock()
			}
			next[iss.KeyID()] = cur
			return nil
		}
		hash, err := newIssuerHashes(iss.Certificate())
		if err != nil {
			return err
		}
		next[iss.KeyID()] = &issuerState{iss: iss, root: root, hash: hash}
		return nil
	}
	for _, iss := range h.Status {
		if err := add(iss, false); err != nil {
			return nil, err
		}
	}
	for _, iss := range h.RootIssuers {
		if err := add(iss, true); err != nil {
			return nil, err
		}
	}
	s.issuers, s.issuersOf = next, h
	return next, nil
}

// state returns the state of the issuer keyID, if it answers status.
func (s *Service) state(keyID string) (*issuerState, bool) {
	states, err := s.states()
	if err != nil {
		return nil, false
	}
	st, ok := states[keyID]
	if !ok || s.expired(st) {
		return nil, false
	}
	return st, true
}

// expired reports whether the issuer's certificate has expired: it signs
// nothing more (a retiring intermediate the schedule has not retired yet,
// after a server was down for long).
func (s *Service) expired(st *issuerState) bool {
	return !s.o.Clock.Now().Before(st.iss.Certificate().NotAfter)
}

// Start loads the revocation view, issues the OCSP signers and builds the
// first CRLs, so a store that is down is reported at server start.
func (s *Service) Start(ctx context.Context) error {
	_, err := s.refresh(ctx)
	return err
}

// refresh brings every issuer's CRL and OCSP signer up to date and returns
// when the next CRL is due.
func (s *Service) refresh(ctx context.Context) (time.Time, error) {
	states, err := s.states()
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	for keyID, st := range states {
		if s.expired(st) {
			continue
		}
		crl, err := s.CRLFor(ctx, keyID)
		if err != nil {
			return time.Time{}, err
		}
		if next.IsZero() || crl.refreshAt.Before(next) {
			next = crl.refreshAt
		}
		if !st.root {
			if _, err := s.currentSigner(ctx, st); err != nil {
				return time.Time{}, err
			}
		}
	}
	return next, nil
}

// Run keeps the CRL current and the OCSP signer renewed until ctx is done:
// it rebuilds the CRL after every revocation and before it goes stale, so a
// request rarely waits for a build.
func (s *Service) Run(ctx context.Context) {
	for {
		wait := s.o.Poll
		if next, err := s.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.o.Log.Error("building a CRL or renewing an OCSP signer failed; retrying", "err", err)
		} else if d := next.Sub(s.o.Clock.Now()); d < wait {
			wait = max(d, 0)
		}
		var wake <-chan struct{}
		if s.o.Notifier != nil {
			wake = s.o.Notifier.EventsChanged()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// pageSize is how many events one store read takes.
const pageSize = 1000

// position brings the view up to date if the store signalled news or the
// poll interval passed, and returns the current event position.
func (s *Service) position(ctx context.Context) (int64, error) {
	if pos, ok := s.fresh(); ok {
		return pos, nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if pos, ok := s.fresh(); ok {
		return pos, nil
	}
	now := s.o.Clock.Now()
	// Take the notification channel before reading, so a commit during the
	// read wakes the next call instead of being missed.
	var wake <-chan struct{}
	if s.o.Notifier != nil {
		wake = s.o.Notifier.EventsChanged()
	}
	s.mu.RLock()
	loaded, pos := s.loaded, s.pos
	s.mu.RUnlock()
	if !loaded {
		// Revocations of certificates that expired within the last CRL
		// validity are kept, so each appears on one CRL after its expiry.
		snap, err := s.o.Store.RevocationSnapshot(ctx, now.Add(-s.o.CRLValidity))
		if err != nil {
			return 0, fmt.Errorf("certstatus: read revocations: %w", err)
		}
		s.mu.Lock()
		for _, ev := range snap.Revoked {
			s.add(ev)
		}
		s.pos, s.loaded, s.wake, s.synced = snap.Position, true, wake, now
		s.mu.Unlock()
		return snap.Position, nil
	}
	var news []store.Event
	for {
		evs, err := s.o.Store.Events(ctx, pos, pageSize)
		if err != nil {
			return 0, fmt.Errorf("certstatus: read events: %w", err)
		}
		news = append(news, evs...)
		if len(evs) > 0 {
			pos = evs[len(evs)-1].Position
		}
		if len(evs) < pageSize {
			break
		}
	}
	s.mu.Lock()
	for _, ev := range news {
		if ev.Kind == store.EventRevoke {
			s.add(ev)
			s.cache.forget(ev.Issuer, ev.Serial)
		}
	}
	s.pos, s.wake, s.synced = pos, wake, now
	s.mu.Unlock()
	return pos, nil
}

// fresh reports the position if the view needs no store read.
func (s *Service) fresh() (int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.loaded || s.o.Clock.Now().Sub(s.synced) >= s.o.Poll {
		return 0, false
	}
	if s.wake != nil {
		select {
		case <-s.wake:
			return 0, false
		default:
		}
	}
	return s.pos, true
}

// revoked is one revocation in the view, its serial parsed once.
type revoked struct {
	issuer   string // key ID
	serial   *big.Int
	position int64 // of its event; orders CRL entries
	at       time.Time
	reason   int
	notAfter time.Time
}

// add puts a revocation event into the view; s.mu is held.
func (s *Service) add(ev store.Event) {
	b, err := hex.DecodeString(strings.Repeat("0", len(ev.Serial)%2) + ev.Serial)
	if err != nil || len(b) == 0 || ev.Serial != strings.ToLower(ev.Serial) {
		// No certificate has this serial: nothing to list or answer for.
		s.o.Log.Error("ignoring a revocation with a malformed serial", "serial", ev.Serial, "position", ev.Position)
		return
	}
	s.revs[ev.Serial] = &revoked{issuer: ev.Issuer, serial: new(big.Int).SetBytes(b), position: ev.Position, at: ev.Time, reason: ev.Reason, notAfter: ev.NotAfter}
}

// revocation returns the revocation of serial in the view, if any.
func (s *Service) revocation(serial string) (*revoked, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.revs[serial]
	return r, ok
}
