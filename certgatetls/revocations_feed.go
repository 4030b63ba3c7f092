package certgatetls

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/certgate/certgate/internal/feed"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/tlspolicy"
	"github.com/certgate/certgate/internal/wire"
)

// errNoFeed means the server answered GET /v1/feed with 404: it predates
// the change feed.
var errNoFeed = errors.New("certgatetls: the server has no change feed")

// startFeed takes the first set from the feed, failing if it cannot, then
// follows the feed in the background. It returns r, running.
func (r *Revocations) startFeed(ctx context.Context) (*Revocations, error) {
	base := strings.TrimRight(r.o.ServerURL, "/")
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("certgatetls: server URL %q must be https://HOST[:PORT]", r.o.ServerURL)
	}
	first, err := r.firstSnapshot(ctx, base)
	if err != nil {
		return nil, err
	}
	f, err := feed.NewFollower(feed.FollowerOptions{
		URLs: []string{base}, TLSConfig: r.feedTLS(u.Hostname()), Clock: r.o.Clock, Log: r.o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("certgatetls: %w", err)
	}
	r.mode = RevocationFeed
	r.apply(first)
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		f.Run(rctx, feedUpdater{r})
	}()
	r.o.Logger.Info("certgatetls: following the revocation feed", "server", base, "position", first.Position(), "revoked", first.Len())
	return r, nil
}

// firstSnapshot opens the feed and reads its first line, the snapshot, so
// that StartRevocations returns with a set or with the server's reason for
// refusing (a 404 is errNoFeed). The follower then opens its own stream.
func (r *Revocations) firstSnapshot(ctx context.Context, base string) (*revocation.Set, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream once the snapshot is read
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+wire.PathFeed, nil)
	if err != nil {
		return nil, fmt.Errorf("certgatetls: revocations: %w", err)
	}
	resp, err := r.clientFor(r.o.Source.Current()).Do(req)
	if err != nil {
		return nil, fmt.Errorf("certgatetls: revocations: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%w (%s%s answered %s); pull instead with RevocationPull", errNoFeed, base, wire.PathFeed, resp.Status)
		}
		return nil, fmt.Errorf("certgatetls: revocations: %s%s answered %s: %s", base, wire.PathFeed, resp.Status, apiMessage(body))
	}
	line, err := bufio.NewReaderSize(io.LimitReader(resp.Body, feed.MaxLine), 64<<10).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("certgatetls: revocations: reading the feed's snapshot: %w", err)
	}
	m, err := feed.ParseMessage(line)
	if err != nil {
		return nil, fmt.Errorf("certgatetls: revocations: %w", err)
	}
	if m.Type != feed.TypeSnapshot {
		return nil, fmt.Errorf("certgatetls: revocations: %w: the feed began with %q, not a snapshot", feed.ErrBadMessage, m.Type)
	}
	serials := make([]string, 0, len(m.Revoked))
	for _, e := range m.Revoked {
		s, err := revocation.CanonicalSerial(e.Serial)
		if err != nil {
			return nil, fmt.Errorf("certgatetls: revocations: %w: %v", feed.ErrBadMessage, err)
		}
		serials = append(serials, s)
	}
	return revocation.NewSet(m.Position, r.o.Clock.Now(), serials...), nil
}

// feedTLS presents the source's current certificate and verifies the
// server against the source's current bundle at each handshake, so that
// renewed credentials and a new bundle apply to the next connection of the
// long-lived follower. crypto/tls takes fixed roots only, so the default
// verification is replaced by the same one done in VerifyConnection.
func (r *Revocations) feedTLS(host string) *tls.Config {
	return tlspolicy.Apply(&tls.Config{
		GetClientCertificate: r.o.Source.GetClientCertificate,
		InsecureSkipVerify:   true, // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("certgatetls: the server sent no certificate")
			}
			inters := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inters.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				DNSName: host, Roots: r.o.Source.Roots(), Intermediates: inters, CurrentTime: r.o.Clock.Now(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("certgatetls: server certificate: %w", err)
			}
			return nil
		},
	})
}

// apply installs s unless the set in force is at a later feed position:
// then s is older news (a snapshot pulled by Refresh that the feed has
// overtaken, or the reverse) and only its time of confirmation is kept. A
// revocation once in the set therefore never leaves it, whichever of the
// feed and Refresh delivered it first.
func (r *Revocations) apply(s *revocation.Set) {
	r.setMu.Lock()
	defer r.setMu.Unlock()
	cur := r.holder.Load()
	if s.Position() < cur.Position() {
		if !s.Updated().After(cur.Updated()) {
			return
		}
		s = cur.Touched(s.Updated())
	}
	r.holder.Update(s)
}

// feedUpdater routes the follower's sets through apply.
type feedUpdater struct{ r *Revocations }

func (u feedUpdater) Update(s *revocation.Set) { u.r.apply(s) }
