package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// dialect is what differs between backends. Everything else is shared SQL
// written with '?' placeholders, rebound once at open.
type dialect interface {
	// name is "sqlite" or "postgres", also the migrations directory.
	name() string
	// bind rewrites '?' placeholders into the backend's form.
	bind(query string) string
	// lockWrites runs first in every write transaction and serializes
	// writers across processes (SQLite: BEGIN IMMEDIATE already did).
	lockWrites(ctx context.Context, tx *sql.Tx) error
	// eventsAppended runs before COMMIT in a write transaction that appended
	// events up to position last.
	eventsAppended(ctx context.Context, tx *sql.Tx, last int64) error
	// uniqueViolation reports the "table.column" a unique constraint
	// violation is about.
	uniqueViolation(err error) (string, bool)
	// unavailable reports whether err means the database cannot be reached
	// or used (as opposed to a bad request).
	unavailable(err error) bool
	// readTx are the options of a read transaction that must see one
	// consistent snapshot across statements.
	readTx() *sql.TxOptions
	// maxBatch is how many write operations one transaction commits at
	// most.
	maxBatch() int
	// redeemReturning says whether an enrollment's token is redeemed and
	// read back in one UPDATE ... RETURNING and checked in Go (PostgreSQL:
	// one round trip fewer) rather than redeemed by an UPDATE that checks
	// it (SQLite, where RETURNING buffers its rows in an ephemeral table
	// and cost more than a SELECT and an UPDATE: stTokenRedeemMatching).
	redeemReturning() bool
	// watchesContext reports whether a write transaction runs under the
	// writer's deadline (writeTimeout), its statements interrupted when it
	// passes; if not, only the wait for the connection does.
	watchesContext() bool
	// keepsHeads reports whether the writer may keep the chain heads
	// between transactions, checking the database's data version (SQLite:
	// sqlite.FileControl) under the write lock instead of reading them.
	keepsHeads() bool
}

// SQL is the database/sql implementation of [Store]. Writes go through one
// writer goroutine that group-commits (see writer.go); reads use a pool.
type SQL struct {
	d   dialect
	wdb *sql.DB // the writer's handle (SQLite: exactly one connection)
	rdb *sql.DB // reads (may be wdb)

	stmts  [numStmts]*sql.Stmt     // prepared on wdb for the writer
	rstmts [numReadStmts]*sql.Stmt // prepared on rdb for hot reads

	// heads are what the writer kept of its last commit when the dialect
	// keepsHeads; owned by the writer goroutine. See wtx.start.
	heads headCache

	// writeTimeout bounds one write transaction; past it the batch fails as
	// unavailable instead of hanging callers on a stuck database. On SQLite
	// (dialect watchesContext false) it bounds the wait for the writer's
	// connection only, see sqliteDialect.watchesContext.
	writeTimeout time.Duration

	queue   chan *writeOp
	closeMu sync.RWMutex
	closed  bool
	stopped chan struct{} // closed when the writer goroutine has exited

	closeOnce sync.Once
	closeErr  error

	evMu  sync.Mutex
	evCh  chan struct{}
	evPos int64 // the highest event position a wake-up was sent for

	// stopListen stops the PostgreSQL notification listener (nil on
	// SQLite); Close calls it.
	stopListen func()

	// inactive caches the intermediates that may not sign as of event
	// position inactiveAt (see checkIssuer); the writer goroutine alone
	// uses them.
	inactive   map[string]string
	inactiveAt int64

	// beforeBatch, if set, runs at the start of every batch (tests only).
	beforeBatch atomic.Pointer[func()]
}

var _ Store = (*SQL)(nil)

// queueCapacity bounds the write operations waiting for the writer.
const queueCapacity = 4096

// newSQL prepares the writer's statements and starts the writer. The schema
// must be migrated already. On error it closes nothing; the caller does.
func newSQL(ctx context.Context, d dialect, wdb, rdb *sql.DB) (*SQL, error) {
	s := &SQL{
		d:            d,
		wdb:          wdb,
		rdb:          rdb,
		writeTimeout: 30 * time.Second,
		queue:        make(chan *writeOp, queueCapacity),
		stopped:      make(chan struct{}),
		evCh:         make(chan struct{}),
	}
	for id, q := range stmtText {
		if stmtID(id) == stTokenRedeemMatching && d.redeemReturning() {
			continue // calls a function only the SQLite store registers
		}
		st, err := wdb.PrepareContext(ctx, d.bind(q))
		if err != nil {
			s.closeStmts()
			return nil, s.wrap("prepare statements", err)
		}
		s.stmts[id] = st
	}
	for id, q := range readStmtText {
		st, err := rdb.PrepareContext(ctx, d.bind(q))
		if err != nil {
			s.closeStmts()
			return nil, s.wrap("prepare statements", err)
		}
		s.rstmts[id] = st
	}
	go s.writeLoop()
	return s, nil
}

func (s *SQL) closeStmts() {
	for _, st := range append(s.stmts[:], s.rstmts[:]...) {
		if st != nil {
			st.Close()
		}
	}
}

// errClosed is returned by every method after Close.
var errClosed = fmt.Errorf("%w: store is closed", ErrUnavailable)

// Close stops accepting writes, commits what is queued, stops the writer and
// releases the database. It is safe to call more than once.
func (s *SQL) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		close(s.queue)
		s.closeMu.Unlock()
		<-s.stopped
		if s.stopListen != nil {
			s.stopListen()
		}
		s.closeStmts()
		err := s.wdb.Close()
		if s.rdb != s.wdb {
			err = errors.Join(err, s.rdb.Close())
		}
		if err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

func (s *SQL) isClosed() bool {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	return s.closed
}

// Ping checks that the database answers.
func (s *SQL) Ping(ctx context.Context) error {
	if s.isClosed() {
		return fmt.Errorf("store: ping: %w", errClosed)
	}
	if err := s.rdb.PingContext(ctx); err != nil {
		return s.wrap("ping", err)
	}
	if s.rdb != s.wdb {
		if err := s.wdb.PingContext(ctx); err != nil {
			return s.wrap("ping", err)
		}
	}
	return nil
}

// EventsChanged returns a channel that is closed after the next commit that
// appends events, so a follower can wait for news instead of polling. Take
// a new channel after each wake-up, then read with Events.
//
// On SQLite it fires for the commits of this process. On PostgreSQL it
// also fires when another process (a server replica) commits events: the
// store LISTENs on [PostgresEventsChannel]. A notification can be lost
// while that connection is down, so the channel also fires after every
// reconnection; a follower should still read now and then without a
// wake-up, since the events table, not the notification, is the truth.
func (s *SQL) EventsChanged() <-chan struct{} {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	return s.evCh
}

// signalEvents wakes the followers after this process committed events up
// to position pos, and remembers pos.
func (s *SQL) signalEvents(pos int64) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	s.evPos = max(s.evPos, pos)
	s.wakeLocked()
}

// notified wakes the followers for a notification that events were
// committed up to pos (by any process), unless this process already woke
// them for a commit at or after pos: each commit of this process is
// announced twice, by its writer and by its own notification coming back.
// A notification only ever wakes; it does not move what is remembered, so
// a bogus one (any role of the database may NOTIFY on the channel) cannot
// silence the next genuine ones. pos 0 (after a reconnection) always wakes
// and forgets: the database may have been restored to an earlier state.
func (s *SQL) notified(pos int64) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	switch {
	case pos == 0:
		s.evPos = 0
	case pos <= s.evPos:
		return
	}
	s.wakeLocked()
}

func (s *SQL) wakeLocked() {
	close(s.evCh)
	s.evCh = make(chan struct{})
}

// wrap prefixes err and marks it unavailable when the database is down.
func (s *SQL) wrap(what string, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("store: %s: %w", what, err)
	case errors.Is(err, ErrUnavailable):
		return fmt.Errorf("store: %s: %w", what, err)
	case s.isClosed() || s.d.unavailable(err):
		return fmt.Errorf("store: %s: %w: %w", what, ErrUnavailable, err)
	default:
		return fmt.Errorf("store: %s: %w", what, err)
	}
}

// readCheck fails a read once the store is closed.
func (s *SQL) readCheck(what string) error {
	if s.isClosed() {
		return fmt.Errorf("store: %s: %w", what, errClosed)
	}
	return nil
}

// queryer is what *sql.DB and *sql.Tx share for reads.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rebindQ rewrites '?' placeholders to $1, $2, ... (PostgreSQL).
func rebindQ(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
