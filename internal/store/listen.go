package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL notification listener.
//
// Every commit that appends events sends NOTIFY on PostgresEventsChannel
// with the payload "<schema> <last position>" (see
// postgresDialect.eventsAppended). Each store holds one dedicated
// connection, outside the pool, that LISTENs on the channel and turns a
// notification for its own schema into a wake-up of EventsChanged, so a
// revocation committed by replica A reaches the feed streams of replica B
// at once instead of at B's next poll.
//
// A notification sent while the connection is down is lost for good. So
// after every reconnection the listener wakes the followers once: they read
// the events table, which is the truth, and catch up on whatever happened
// in between.

// Timing of the listener. Variables so tests can shorten them.
var (
	// listenIdle is how long the listener waits for a notification before
	// it checks that the connection still works: a peer that vanished
	// without closing the TCP connection (a partition, a dead load
	// balancer) is noticed within listenIdle + listenPingTimeout.
	listenIdle        = 30 * time.Second
	listenPingTimeout = 5 * time.Second
	// listenMinBackoff and listenMaxBackoff bound the delay between
	// reconnection attempts; it doubles from min to max, with jitter so
	// replicas do not reconnect in lockstep after a database restart.
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

// pgListener is the LISTEN connection of one store.
type pgListener struct {
	cfg    *pgx.ConnConfig
	wake   func(pos int64)
	cancel context.CancelFunc
	done   chan struct{}
}

// startListener connects in the background and calls wake for each
// notification of the store's schema (with its position) and after each
// reconnection (with 0). The returned function stops it and waits.
func startListener(cfg *pgx.ConnConfig, wake func(pos int64)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &pgListener{cfg: cfg, wake: wake, cancel: cancel, done: make(chan struct{})}
	go l.run(ctx)
	return func() {
		l.cancel()
		<-l.done
	}
}

func (l *pgListener) run(ctx context.Context) {
	defer close(l.done)
	backoff := listenMinBackoff
	for attempt := 0; ; attempt++ {
		conn, schema, err := l.connect(ctx)
		if err == nil {
			if attempt > 0 {
				// Whatever was notified while we were away is lost.
				l.wake(0)
			}
			backoff = listenMinBackoff
			l.receive(ctx, conn, schema)
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(closeCtx)
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		// Full jitter over [backoff/2, backoff).
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// connect opens the connection, learns the schema the store's tables are
// in (the search_path of the store URL applies here too) and LISTENs.
func (l *pgListener) connect(ctx context.Context) (*pgx.Conn, string, error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, "", err
	}
	var schema *string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		conn.Close(context.Background())
		return nil, "", err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{PostgresEventsChannel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, "", err
	}
	s := ""
	if schema != nil {
		s = *schema
	}
	return conn, s, nil
}

// receive hands notifications to wake until the connection fails or ctx
// ends.
func (l *pgListener) receive(ctx context.Context, conn *pgx.Conn, schema string) {
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, context.DeadlineExceeded):
			// Quiet for a while: make sure the connection is alive.
			pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		case err != nil:
			return
		default:
			if pos, ok := parseNotification(n.Payload, schema); ok {
				l.wake(pos)
			}
		}
	}
}

// parseNotification returns the position a notification announces, if it
// is for schema. Stores in other schemas of the same database share the
// channel; their notifications are ignored.
func parseNotification(payload, schema string) (int64, bool) {
	i := strings.LastIndexByte(payload, ' ')
	if i < 0 || payload[:i] != schema {
		return 0, false
	}
	pos, err := strconv.ParseInt(payload[i+1:], 10, 64)
	if err != nil || pos <= 0 {
		return 0, false
	}
	return pos, true
}
