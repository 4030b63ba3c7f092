package certgatetls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/tlspolicy"
	"github.com/certgate/certgate/internal/wire"
)

// Revocation defaults.
const (
	// DefaultRevocationRefresh matches the gateway's default pull interval.
	DefaultRevocationRefresh = 5 * time.Second
	// DefaultMaxStaleness is how old the revoked set may grow while the
	// server cannot be reached before every client is refused: long enough
	// to ride out a server restart, short enough that a revocation made
	// during an outage is not ignored for long.
	DefaultMaxStaleness = 5 * time.Minute
)

var (
	// ErrRevoked means the client's certificate is revoked.
	ErrRevoked = errors.New("certgatetls: client certificate is revoked")
	// ErrRevocationStale means the revoked set has not been refreshed for
	// longer than the configured staleness, so no client is let in.
	ErrRevocationStale = errors.New("certgatetls: revocation data is stale")
)

// RevocationChecker says whether a verified client certificate may still
// be used. [*Revocations] is the implementation that follows the certgate
// server; a test may plug in its own.
type RevocationChecker interface {
	Check(cert *x509.Certificate) error
}

// RevocationMode says how [Revocations] keeps the revoked set current.
type RevocationMode string

// Revocation modes.
const (
	// RevocationAuto follows the server's change feed when the server has
	// one, and pulls otherwise. It is the zero value.
	RevocationAuto RevocationMode = ""
	// RevocationFeed follows the change feed (GET /v1/feed): a revocation
	// reaches the set as soon as the server has committed it.
	RevocationFeed RevocationMode = "feed"
	// RevocationPull fetches the whole set (GET /v1/revocations) every
	// RevocationOptions.Refresh.
	RevocationPull RevocationMode = "pull"
)

// RevocationOptions configures [StartRevocations].
type RevocationOptions struct {
	// ServerURL is the certgate server, e.g. "https://certgate.internal:8444".
	ServerURL string
	// Mode is how the set is kept current (default RevocationAuto: the
	// feed if the server has one).
	Mode RevocationMode
	// Source holds this service's own certificate, presented to the server,
	// and the bundle that verifies the server. The server lists revocations
	// only to gateway identities (spiffe://TD/gateway/<name>) and admins.
	Source *Source
	// Refresh is the pull interval (default DefaultRevocationRefresh); the
	// feed needs none.
	Refresh time.Duration
	// MaxStaleness is how long the set may go without being confirmed
	// current (by a successful pull, or by any message of the feed, which
	// sends heartbeats) before every check fails (default
	// DefaultMaxStaleness).
	MaxStaleness time.Duration
	Clock        Clock        // default the system clock
	Logger       *slog.Logger // default discards
}

// Revocations is the set of revoked certificates, kept current from the
// certgate server's change feed or by pulling GET /v1/revocations. A check
// is one map lookup.
type Revocations struct {
	o      RevocationOptions
	holder *revocation.Holder
	mode   RevocationMode // as resolved: feed or pull

	url    string     // GET /v1/revocations
	setMu  sync.Mutex // serializes updates in feed mode (see apply)
	mu     sync.Mutex // guards client and gen
	client *http.Client
	gen    uint64

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// StartRevocations fetches the revoked set once, failing if it cannot, and
// then keeps it current until [Revocations.Close]: by following the
// server's change feed, which delivers a revocation as soon as it is
// committed, or by pulling the whole set every o.Refresh (o.Mode; by
// default the feed when the server has one). While the server cannot be
// reached the set it had stays in force; past o.MaxStaleness, checks fail
// closed.
func StartRevocations(ctx context.Context, o RevocationOptions) (*Revocations, error) {
	if o.ServerURL == "" || o.Source == nil {
		return nil, errors.New("certgatetls: revocations need a server URL and a source")
	}
	switch o.Mode {
	case RevocationAuto, RevocationFeed, RevocationPull:
	default:
		return nil, fmt.Errorf("certgatetls: unknown revocation mode %q (want %q, %q or empty for either)", o.Mode, RevocationFeed, RevocationPull)
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRevocationRefresh
	}
	if o.MaxStaleness <= 0 {
		o.MaxStaleness = DefaultMaxStaleness
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Revocations{o: o, url: strings.TrimRight(o.ServerURL, "/") + wire.PathRevocations, holder: revocation.NewHolder(), done: make(chan struct{})}
	if o.Mode != RevocationPull {
		f, err := r.startFeed(ctx)
		switch {
		case err == nil:
			return f, nil
		case o.Mode == RevocationAuto && errors.Is(err, errNoFeed):
			o.Logger.Info("certgatetls: the server has no change feed; pulling revocations", "server", o.ServerURL, "refresh", o.Refresh)
		default:
			r.closeClient()
			return nil, err
		}
	}
	r.mode = RevocationPull
	if err := r.Refresh(ctx); err != nil {
		r.closeClient()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(rctx)
	return r, nil
}

// Mode is how the set is kept current: RevocationFeed or RevocationPull.
func (r *Revocations) Mode() RevocationMode { return r.mode }

// Refresh fetches the whole revoked set now. In feed mode the fetched set
// only ever adds to what the feed delivered (see apply).
func (r *Revocations) Refresh(ctx context.Context) error {
	s, err := r.fetch(ctx)
	if err != nil {
		return err
	}
	if r.mode == RevocationFeed {
		r.apply(s)
	} else {
		r.holder.Update(s)
	}
	return nil
}

func (r *Revocations) fetch(ctx context.Context) (*revocation.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, fmt.Errorf("certgatetls: revocations: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.clientFor(r.o.Source.Current()).Do(req)
	if err != nil {
		return nil, fmt.Errorf("certgatetls: revocations: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, revocation.MaxSnapshotSize+1))
	if err != nil {
		return nil, fmt.Errorf("certgatetls: revocations: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("certgatetls: revocations: %s answered %s: %s", r.url, resp.Status, apiMessage(body))
	}
	s, err := revocation.ParseSnapshot(body, r.o.Clock.Now())
	if err != nil {
		return nil, fmt.Errorf("certgatetls: %w", err)
	}
	return s, nil
}

// clientFor returns an HTTP client whose TLS configuration trusts the
// bundle of c. The source's certificate rotates under any client (it is
// asked for at each handshake) but the roots are fixed per client, so a
// new generation of credentials gets a new client and the old one's
// connections are closed.
func (r *Revocations) clientFor(c *Credentials) *http.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil || r.gen != c.Generation {
		if r.client != nil {
			r.client.CloseIdleConnections()
		}
		r.client = &http.Client{
			Transport: &http.Transport{
				TLSClientConfig: tlspolicy.Apply(&tls.Config{
					RootCAs:              c.Roots,
					GetClientCertificate: r.o.Source.GetClientCertificate,
				}),
				ForceAttemptHTTP2:     true,
				MaxIdleConnsPerHost:   1,
				IdleConnTimeout:       2 * r.o.Refresh,
				TLSHandshakeTimeout:   10 * time.Second,
				ResponseHeaderTimeout: 30 * time.Second,
			},
			Timeout: time.Minute,
		}
		r.gen = c.Generation
	}
	return r.client
}

func (r *Revocations) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.o.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("certgatetls: revocation refresh failed; keeping the previous set",
				"error", err, "age", r.o.Clock.Now().Sub(r.holder.Load().Updated()).Round(time.Second))
		}
	}
}

// Check returns nil if cert is not revoked and the set is fresh; an error
// wrapping [ErrRevoked] or [ErrRevocationStale] otherwise.
func (r *Revocations) Check(cert *x509.Certificate) error {
	s := r.holder.Load()
	if age := r.o.Clock.Now().Sub(s.Updated()); age > r.o.MaxStaleness {
		return fmt.Errorf("%w: last refreshed %s ago (limit %s)", ErrRevocationStale, age.Round(time.Second), r.o.MaxStaleness)
	}
	if serial := revocation.SerialOf(cert); s.Contains(serial) {
		return fmt.Errorf("%w: serial %s", ErrRevoked, serial)
	}
	// Issued by an intermediate the CA revoked (an emergency rotation):
	// refused like a revoked certificate until its holder renews.
	if k := hex.EncodeToString(cert.AuthorityKeyId); s.IssuerRevoked(k) {
		return fmt.Errorf("%w: its issuer (CA key %s) is revoked", ErrRevoked, k)
	}
	return nil
}

// Len returns the number of revoked certificates in the current set.
func (r *Revocations) Len() int { return r.holder.Load().Len() }

// Updated returns when the set was last refreshed.
func (r *Revocations) Updated() time.Time { return r.holder.Load().Updated() }

// Close stops following or refreshing. Checks keep answering from the last
// set until it grows stale.
func (r *Revocations) Close() error {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		r.closeClient()
	})
	return nil
}

func (r *Revocations) closeClient() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		r.client.CloseIdleConnections()
	}
}

// apiMessage returns the message of a certgate API error body, or the start
// of any other body.
func apiMessage(body []byte) string {
	if e, ok := wire.DecodeError(body); ok {
		return e.Code + ": " + e.Message
	}
	body = bytes.TrimSpace(body)
	if len(body) > 200 {
		body = body[:200]
	}
	return fmt.Sprintf("%q", body)
}
