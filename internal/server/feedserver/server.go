package feedserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/feed"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// Store is what the feed server reads: the event log and the revocation
// snapshot.
type Store interface {
	Events(ctx context.Context, after int64, limit int) ([]store.Event, error)
	LastPosition(ctx context.Context) (int64, error)
	RevocationSnapshot(ctx context.Context, now time.Time) (store.Snapshot, error)
}

// Notifier wakes the server when events were committed. The SQL store
// implements it in-process; across replicas, PostgreSQL LISTEN/NOTIFY does.
type Notifier interface {
	EventsChanged() <-chan struct{}
}

// Options configures a Server.
type Options struct {
	Store    Store
	Notifier Notifier // nil: poll only
	Clock    clock.Clock
	Log      *slog.Logger
	// Heartbeat is how often an idle stream says it is alive (2 s if zero).
	Heartbeat time.Duration
	// Poll is how often the store is read even without a wake-up, which
	// catches a missed notification (1 s if zero).
	Poll time.Duration
	// WriteTimeout cuts a follower that stops reading (10 s if zero).
	WriteTimeout time.Duration
	// CA, if set, returns the CA's public state as of event position pos;
	// it is sent when a stream starts and after every CA event.
	CA func(ctx context.Context, pos int64) (wire.CA, error)
	// LegacyKeys, if set, returns the legacy keys gateways accept (the
	// salt and the hashes); it is sent when a stream starts and after
	// every change of a key.
	LegacyKeys func(ctx context.Context) (wire.LegacyKeySet, error)
}

// Server streams the feed over HTTP. Authentication is the caller's job.
type Server struct {
	o    Options
	open atomic.Int64 // streams being written
}

// New returns a Server.
func New(o Options) *Server {
	if o.Heartbeat == 0 {
		o.Heartbeat = 2 * time.Second
	}
	if o.Poll == 0 {
		o.Poll = time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o}
}

// Streams is how many followers are being streamed to now.
func (s *Server) Streams() int { return int(s.open.Load()) }

// pageSize is how many events one read takes.
const pageSize = 1000

// BadRequestError is a malformed feed request.
type BadRequestError struct{ Msg string }

func (e *BadRequestError) Error() string { return e.Msg }

// ParseAfter reads ?after=N: -1 when absent (start with a snapshot).
func ParseAfter(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("after")
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, &BadRequestError{Msg: fmt.Sprintf("after %q is not a feed position", v)}
	}
	return n, nil
}

// Stream writes the feed to w until ctx is done or the follower goes away.
// after is -1 for a snapshot first, else the position to resume after.
func (s *Server) Stream(ctx context.Context, w http.ResponseWriter, after int64) error {
	s.open.Add(1)
	defer s.open.Add(-1)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	send := func(m feed.Message) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.o.WriteTimeout))
		if err := enc.Encode(m); err != nil {
			return err
		}
		return nil
	}
	flush := func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.o.WriteTimeout))
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}

	if after > 0 {
		// A follower ahead of the log has followed a store that was since
		// restored from a backup: the positions it knows no longer mean
		// the same events, so it starts over from a snapshot.
		last, err := s.o.Store.LastPosition(ctx)
		if err != nil {
			return err
		}
		if after > last {
			s.o.Log.Warn("feed follower is ahead of the event log (store restored?); sending a snapshot", "after", after, "last", last)
			after = -1
		}
	}
	pos := after
	if after < 0 {
		snap, err := s.o.Store.RevocationSnapshot(ctx, s.o.Clock.Now())
		if err != nil {
			return err
		}
		m := feed.Message{Type: feed.TypeSnapshot, Position: snap.Position, Time: s.o.Clock.Now(), Revoked: make([]wire.Revoked, len(snap.Revoked))}
		for i, e := range snap.Revoked {
			m.Revoked[i] = wire.Revoked{Serial: e.Serial, Identity: e.Identity, Reason: e.Reason, NotAfter: e.NotAfter.UTC()}
		}
		if err := send(m); err != nil {
			return err
		}
		pos = snap.Position
	} else if err := send(feed.Message{Type: feed.TypeHeartbeat, Position: pos, Time: s.o.Clock.Now()}); err != nil {
		// An immediate heartbeat tells a resuming follower it is connected.
		return err
	}
	sendCA := func(pos int64) error {
		if s.o.CA == nil {
			return nil
		}
		st, err := s.o.CA(ctx, pos)
		if err != nil {
			return err
		}
		return send(feed.Message{Type: feed.TypeCA, Position: pos, Time: s.o.Clock.Now(), CA: &st})
	}
	if err := sendCA(pos); err != nil {
		return err
	}
	sendLegacy := func(pos int64, always bool) error {
		if s.o.LegacyKeys == nil {
			return nil
		}
		set, err := s.o.LegacyKeys(ctx)
		if err != nil {
			return err
		}
		if !always && len(set.Keys) == 0 {
			// Nothing to say: a stream of an installation without legacy
			// keys stays readable by a gateway that predates them.
			return nil
		}
		return send(feed.Message{Type: feed.TypeLegacyKeys, Position: pos, Time: s.o.Clock.Now(), LegacyKeys: &set})
	}
	if err := sendLegacy(pos, false); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}

	heartbeat := time.NewTicker(s.o.Heartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(s.o.Poll)
	defer poll.Stop()
	for {
		// Take the wake-up channel before reading, so a commit between the
		// read and the wait is not missed.
		var wake <-chan struct{}
		if s.o.Notifier != nil {
			wake = s.o.Notifier.EventsChanged()
		}
		evs, err := s.o.Store.Events(ctx, pos, pageSize)
		if err != nil {
			return err
		}
		for i, e := range evs {
			if e.Kind == store.EventCA {
				// One CA message for a run of CA events (a rotation step
				// changes several CA certificates in one transaction).
				if i+1 == len(evs) || evs[i+1].Kind != store.EventCA {
					if err := sendCA(e.Position); err != nil {
						return err
					}
				}
				continue
			}
			if e.Kind == store.EventLegacyKey {
				// One set for a run of key events (an import of many).
				if i+1 == len(evs) || evs[i+1].Kind != store.EventLegacyKey {
					if err := sendLegacy(e.Position, true); err != nil {
						return err
					}
				}
				continue
			}
			if e.Kind != store.EventRevoke {
				continue
			}
			if err := send(feed.Message{Type: feed.TypeRevoke, Position: e.Position, Time: e.Time.UTC(), Serial: e.Serial,
				Identity: e.Identity, Reason: e.Reason, NotAfter: e.NotAfter.UTC()}); err != nil {
				return err
			}
		}
		if len(evs) > 0 {
			pos = evs[len(evs)-1].Position
			if err := flush(); err != nil {
				return err
			}
			if len(evs) == pageSize {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		case <-heartbeat.C:
			if err := send(feed.Message{Type: feed.TypeHeartbeat, Position: pos, Time: s.o.Clock.Now()}); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
		}
	}
}
