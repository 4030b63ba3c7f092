package feed

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/wire"
)

// FollowerOptions configures a Follower.
type FollowerOptions struct {
	// URLs are the base URLs of the server replicas (https://host:port).
	// The follower uses one at a time and moves to the next on failure.
	URLs []string
	// TLSConfig authenticates the follower (a /gateway/ certificate) and
	// verifies the servers.
	TLSConfig *tls.Config
	Clock     clock.Clock
	Log       *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay (250 ms, 15 s).
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout drops a connection that delivered nothing, not even a
	// heartbeat, for this long (10 s if zero).
	IdleTimeout time.Duration
	// OnMessage, if set, sees every message after it is applied (metrics).
	OnMessage func(Message)
	// OnCA, if set, receives the CA's public state when the stream starts
	// and at every change of the CA: a gateway makes the published
	// intermediates known (leaf-only clients of a new intermediate verify
	// from its first certificate). The revoked CA keys it lists are put
	// into the revocation set by the follower itself.
	OnCA func(wire.CA)
	// OnLegacyKeys, if set, receives the legacy keys the gateway accepts
	// when the stream starts and at every change of a key.
	OnLegacyKeys func(wire.LegacyKeySet)
}

// Follower keeps a revocation set current from the feed. It implements
// revocation.Source.
type Follower struct {
	o FollowerOptions

	mu     sync.Mutex
	set    *revocation.Set
	pos    int64
	synced bool // a snapshot has been applied

	lastContact atomic.Int64 // unix nanos of the last message
	connected   atomic.Bool
	current     atomic.Value // string: URL in use
}

// NewFollower returns a Follower; call Run.
func NewFollower(o FollowerOptions) (*Follower, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("feed: no server URL")
	}
	if o.TLSConfig == nil || o.Clock == nil {
		return nil, errors.New("feed: follower needs a TLS config and a clock")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 15 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 10 * time.Second
	}
	f := &Follower{o: o}
	f.current.Store("")
	return f, nil
}

// Position is the position of the last event applied.
func (f *Follower) Position() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos
}

// LastContact is when the last message arrived (zero if never).
func (f *Follower) LastContact() time.Time {
	n := f.lastContact.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Connected reports whether a stream is open now, and to which server.
func (f *Follower) Connected() (bool, string) {
	return f.connected.Load(), f.current.Load().(string)
}

// Run follows the feed until ctx is done, updating dst on every change and
// on every heartbeat (so dst's set carries the time the follower was last
// known to be current).
func (f *Follower) Run(ctx context.Context, dst revocation.Updater) error {
	tr := &http.Transport{TLSClientConfig: f.o.TLSConfig, ForceAttemptHTTP2: true, ResponseHeaderTimeout: f.o.IdleTimeout}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	backoff := f.o.MinBackoff
	for i := 0; ; {
		url := strings.TrimRight(f.o.URLs[i%len(f.o.URLs)], "/")
		f.current.Store(url)
		got, err := f.stream(ctx, hc, url, dst)
		f.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if got {
			// This server was serving: try it once more before failing
			// over (a dropped connection is more common than a dead replica).
			backoff = f.o.MinBackoff
		} else {
			i++
		}
		f.o.Log.Warn("revocation feed lost; reconnecting", "server", url, "err", err, "position", f.Position(), "retry_in", backoff)
		// Full jitter keeps many gateways from reconnecting in step.
		sleep := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sleep):
		}
		backoff = min(backoff*2, f.o.MaxBackoff)
	}
}

// stream reads one connection until it fails. got reports whether any
// message arrived.
func (f *Follower) stream(ctx context.Context, hc *http.Client, base string, dst revocation.Updater) (got bool, err error) {
	f.mu.Lock()
	u := base + wire.PathFeed
	if f.synced {
		u += "?after=" + strconv.FormatInt(f.pos, 10)
	}
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("feed: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("feed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return false, fmt.Errorf("feed: %s answered %d: %s", base, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	f.connected.Store(true)
	f.o.Log.Info("revocation feed connected", "server", base, "resume_after", f.Position())

	// The watchdog cuts a stream that went silent: a half-open TCP
	// connection would otherwise look connected forever.
	idle := time.AfterFunc(f.o.IdleTimeout, cancel)
	defer idle.Stop()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := readLine(br)
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
				err = fmt.Errorf("feed: no message for %s", f.o.IdleTimeout)
			}
			return got, err
		}
		idle.Reset(f.o.IdleTimeout)
		m, err := ParseMessage(line)
		if err != nil {
			return got, err
		}
		got = true
		if err := f.apply(m, dst); err != nil {
			return got, err
		}
		if f.o.OnMessage != nil {
			f.o.OnMessage(m)
		}
	}
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLine {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrBadMessage, MaxLine)
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, chunk...)
			continue
		}
		if err != nil {
			return nil, err
		}
		if buf == nil {
			return chunk, nil
		}
		return append(buf, chunk...), nil
	}
}

// apply folds one message into the set.
func (f *Follower) apply(m Message, dst revocation.Updater) error {
	now := f.o.Clock.Now()
	f.lastContact.Store(now.UnixNano())
	f.mu.Lock()
	defer f.mu.Unlock()
	switch m.Type {
	case TypeSnapshot:
		serials := make([]string, 0, len(m.Revoked))
		for _, r := range m.Revoked {
			s, err := revocation.CanonicalSerial(r.Serial)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrBadMessage, err)
			}
			serials = append(serials, s)
		}
		f.set = revocation.NewSet(m.Position, now, serials...)
		f.pos, f.synced = m.Position, true
	case TypeRevoke:
		if !f.synced {
			return fmt.Errorf("%w: event before snapshot", ErrBadMessage)
		}
		if m.Position <= f.pos {
			return nil // already applied (a replica resent it)
		}
		s, err := revocation.CanonicalSerial(m.Serial)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		f.set = f.set.With(m.Position, now, s)
		f.pos = m.Position
	case TypeCA:
		if !f.synced {
			return fmt.Errorf("%w: CA state before snapshot", ErrBadMessage)
		}
		f.pos = max(f.pos, m.Position)
		f.set = f.set.WithIssuers(f.pos, now, m.CA.RevokedIssuers...)
		if f.o.OnCA != nil {
			f.o.OnCA(*m.CA)
		}
	case TypeLegacyKeys:
		if !f.synced {
			return fmt.Errorf("%w: legacy keys before snapshot", ErrBadMessage)
		}
		f.pos = max(f.pos, m.Position)
		if f.o.OnLegacyKeys != nil {
			f.o.OnLegacyKeys(*m.LegacyKeys)
		}
	case TypeHeartbeat:
		if !f.synced {
			return fmt.Errorf("%w: heartbeat before snapshot", ErrBadMessage)
		}
		if m.Position > f.pos {
			// Events of kinds this follower does not apply were skipped
			// by the server; the heartbeat carries the position past them.
			f.pos = m.Position
		}
		f.set = f.set.Touched(now)
	}
	dst.Update(f.set)
	return nil
}
