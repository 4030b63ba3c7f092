package revocation

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/wire"
)

// Source keeps an [Updater] current until ctx is done. The pull below and
// the push feed both implement it.
type Source interface {
	Run(ctx context.Context, dst Updater) error
}

// MaxSnapshotSize bounds a revocation snapshot response.
const MaxSnapshotSize = 64 << 20

// ParseSnapshot decodes and checks a snapshot, the body of GET
// /v1/revocations ([wire.Revocations]), and turns it into a [Set]
// taken at now. Unknown fields are ignored (the server may add some);
// serials must be hexadecimal.
func ParseSnapshot(data []byte, now time.Time) (*Set, error) {
	if len(data) > MaxSnapshotSize {
		return nil, fmt.Errorf("revocation: snapshot larger than %d bytes", MaxSnapshotSize)
	}
	var snap wire.Revocations
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&snap); err != nil {
		return nil, fmt.Errorf("revocation: decode snapshot: %w", err)
	}
	if dec.More() {
		return nil, errors.New("revocation: decode snapshot: trailing data after JSON object")
	}
	if snap.Position < 0 {
		return nil, fmt.Errorf("revocation: negative position %d", snap.Position)
	}
	serials := make([]string, 0, len(snap.Revoked))
	for i, e := range snap.Revoked {
		s, err := canonicalSerial(e.Serial)
		if err != nil {
			return nil, fmt.Errorf("revocation: entry %d: %w", i, err)
		}
		serials = append(serials, s)
	}
	for i, k := range snap.RevokedIssuers {
		if k == "" || len(k) > 128 || strings.Trim(k, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("revocation: revoked issuer %d: %q is not a lowercase hex key ID", i, k)
		}
	}
	return NewSet(snap.Position, now, serials...).WithIssuers(snap.Position, now, snap.RevokedIssuers...), nil
}

// Puller polls the server for snapshots over mTLS. With several server
// URLs it uses one until a fetch fails, then the next.
type Puller struct {
	urls     []string
	next     atomic.Int64 // index into urls of the server in use
	client   *http.Client
	interval time.Duration
	clock    clock.Clock
	log      *slog.Logger
}

// NewPuller returns a Puller that fetches serverURL + "/v1/revocations"
// every interval with tlsConfig (which carries the gateway's client
// certificate and the roots that verify the server).
func NewPuller(serverURL string, tlsConfig *tls.Config, interval time.Duration, clk clock.Clock, log *slog.Logger) *Puller {
	return NewFailoverPuller([]string{serverURL}, tlsConfig, interval, clk, log)
}

// NewFailoverPuller is [NewPuller] over server replicas: it fetches from
// one of serverURLs and moves to the next when a fetch fails.
func NewFailoverPuller(serverURLs []string, tlsConfig *tls.Config, interval time.Duration, clk clock.Clock, log *slog.Logger) *Puller {
	urls := make([]string, len(serverURLs))
	for i, u := range serverURLs {
		urls[i] = strings.TrimRight(u, "/") + wire.PathRevocations
	}
	tr := &http.Transport{
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       2 * interval,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	return &Puller{
		urls:     urls,
		client:   &http.Client{Transport: tr, Timeout: time.Minute},
		interval: interval,
		clock:    clk,
		log:      log,
	}
}

// Fetch gets one snapshot from the server in use; when that fails, the
// next fetch tries the next server.
func (p *Puller) Fetch(ctx context.Context) (*Set, error) {
	if len(p.urls) == 0 {
		return nil, errors.New("revocation: no server URL")
	}
	i := p.next.Load()
	s, err := p.fetch(ctx, p.urls[int(i)%len(p.urls)])
	if err != nil {
		p.next.CompareAndSwap(i, i+1)
	}
	return s, err
}

func (p *Puller) fetch(ctx context.Context, url string) (*Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("revocation: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("revocation: fetch: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxSnapshotSize+1))
	if err != nil {
		return nil, fmt.Errorf("revocation: fetch: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("revocation: fetch: %s answered %s: %s", url, resp.Status, bytes.TrimSpace(truncate(body, 200)))
	}
	return ParseSnapshot(body, p.clock.Now())
}

// Run fetches at once and then every interval until ctx is done. A failed
// fetch is logged and the previous set stays in force. It returns ctx's
// error.
func (p *Puller) Run(ctx context.Context, dst Updater) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	defer p.client.CloseIdleConnections()
	for {
		s, err := p.Fetch(ctx)
		switch {
		case err == nil:
			dst.Update(s)
		case ctx.Err() == nil:
			p.log.Warn("revocation refresh failed; keeping the previous set", "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
