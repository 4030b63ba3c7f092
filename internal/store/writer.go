package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"modernc.org/sqlite"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/roles"
)

// The write path.
//
// SQLite has one writer at a time, and every write here also appends to the
// audit chain, which is one total order on any backend. So all writes of a
// process go through one goroutine that group-commits: it takes what is
// queued (up to the dialect's maxBatch operations), runs each inside its own SAVEPOINT in
// one transaction, and COMMITs once. An operation that fails is rolled back
// to its savepoint alone; the others commit. Every caller is answered only
// after COMMIT returned, so a nil error always means durable. Nothing waits
// on a timer: while one batch commits (fsync), the next one queues up.
//
// Before taking a batch the writer yields the processor (runtime.Gosched),
// so that goroutines already runnable, typically request handlers finishing
// the signature of a certificate, queue their write first; it yields again
// while a yield brought more operations, at most maxYields times. With one or two cores (GOMAXPROCS=1 on a pinned server) the writer
// would otherwise commit each operation nearly alone, paying a commit, its
// WAL page writes and an fsync for every certificate; with the yield the
// batch holds what the handlers had ready. Measured with BenchmarkEnroll
// in internal/server at GOMAXPROCS=1: the writer's CPU per certificate fell
// from 236 to 104 µs. Yielding again while the queue grows took the
// batches of scripts/bench-stepca.sh's load (8 clients, server on one
// core) from about 3.8 to 4.5 enrollments per commit. A yield costs
// nothing when nothing else is runnable.

// writeOp is one queued write.
type writeOp struct {
	what  string // for errors: "record issuance 1a2b"
	fn    func(ctx context.Context, w *wtx) error
	state atomic.Int32
	done  chan error // buffered, receives exactly once
}

const (
	opQueued    int32 = iota
	opTaken           // the writer runs it; the caller waits for the answer
	opAbandoned       // the caller's context ended first; never applied
)

// submit queues fn and waits for the durable answer. If ctx ends while the
// operation is still queued it is abandoned, never applied, and ctx's error
// returned; once the writer took it the caller waits for the commit, so a
// returned error always means nothing was written.
func (s *SQL) submit(ctx context.Context, what string, fn func(ctx context.Context, w *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	op := &writeOp{what: what, fn: fn, done: make(chan error, 1)}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return fmt.Errorf("store: %s: %w", what, errClosed)
	}
	select {
	case s.queue <- op:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return fmt.Errorf("store: %s: %w", what, ctx.Err())
	}
	s.closeMu.RUnlock()
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		if op.state.CompareAndSwap(opQueued, opAbandoned) {
			return fmt.Errorf("store: %s: %w", what, ctx.Err())
		}
		return <-op.done
	}
}

func (s *SQL) writeLoop() {
	defer close(s.stopped)
	limit := s.d.maxBatch()
	batch := make([]*writeOp, 0, limit)
	for op := range s.queue {
		batch = append(batch[:0], op)
		for yields := 0; yields < maxYields && len(batch) < limit; yields++ {
			runtime.Gosched()
			n := len(batch)
			batch = s.drain(batch, limit)
			if len(batch) == n {
				break
			}
		}
		s.runBatch(batch)
		clear(batch)
	}
}

// maxYields bounds how often the writer yields before taking a batch.
const maxYields = 8

// drain appends what is queued to batch, up to limit operations.
func (s *SQL) drain(batch []*writeOp, limit int) []*writeOp {
	for len(batch) < limit {
		select {
		case next, ok := <-s.queue:
			if !ok {
				return batch
			}
			batch = append(batch, next)
		default:
			return batch
		}
	}
	return batch
}

// runBatch commits batch in one transaction and answers every caller.
func (s *SQL) runBatch(batch []*writeOp) {
	if hook := s.beforeBatch.Load(); hook != nil {
		(*hook)()
	}
	live := make([]*writeOp, 0, len(batch))
	for _, op := range batch {
		if op.state.CompareAndSwap(opQueued, opTaken) {
			live = append(live, op)
		}
	}
	if len(live) == 0 {
		return
	}
	errs, last := s.commitOps(live)
	if last > 0 {
		// Wake followers before answering, so by the time Revoke returns
		// every in-process follower (feed, CRL, OCSP cache) is already
		// reading the new events.
		s.signalEvents(last)
	}
	for i, op := range live {
		op.done <- errs[i]
	}
}

// commitOps runs ops in one transaction. It returns each op's error and
// the position of the last event committed, 0 if none was appended.
//
// A batch is first run without savepoints: on PostgreSQL each SAVEPOINT
// and RELEASE is a round trip to the server, two per operation, more than
// the operation itself. Operations almost never fail; when one does, that
// transaction is rolled back, nothing of it committed, and the batch is run
// again with a savepoint around each operation so that only the failing
// one is left out. Operations are closures over their inputs, written to be
// run again.
func (s *SQL) commitOps(ops []*writeOp) (errs []error, last int64) {
	if len(ops) > 1 {
		errs, last, clean := s.commitBatch(ops, false)
		if clean {
			return errs, last
		}
	}
	errs, last, _ = s.commitBatch(ops, len(ops) > 1)
	return errs, last
}

// commitBatch runs ops in one transaction, each in its own savepoint if
// savepoints is set. Without savepoints, the first operation that fails
// rolls the whole transaction back and clean is false: nothing was
// committed, the caller runs the batch again with savepoints. Otherwise
// clean is true and errs holds each op's answer.
func (s *SQL) commitBatch(ops []*writeOp, savepoints bool) (errs []error, last int64, clean bool) {
	errs = make([]error, len(ops))
	fail := func(stage string, err error) ([]error, int64, bool) {
		for i, op := range ops {
			if errs[i] == nil {
				errs[i] = s.batchErr(op.what, stage, err)
			}
		}
		return errs, 0, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.writeTimeout)
	defer cancel()

	// connCtx bounds the wait for the writer's connection, ctx the
	// transaction (see dialect.watchesContext).
	connCtx := ctx
	if !s.d.watchesContext() {
		ctx = context.Background()
	}
	w := &wtx{s: s}
	var tx *sql.Tx
	var err error
	if s.d.keepsHeads() {
		// On a connection of its own for the batch, to read the data
		// version through the driver (wtx.start).
		conn, err := s.wdb.Conn(connCtx)
		if err != nil {
			return fail("begin", err)
		}
		defer conn.Close() // after the transaction ended: back to the pool
		w.conn = conn
		tx, err = conn.BeginTx(ctx, nil)
		if err != nil {
			return fail("begin", err)
		}
	} else if tx, err = s.wdb.BeginTx(ctx, nil); err != nil {
		return fail("begin", err)
	}
	w.tx = tx
	if err := w.start(ctx); err != nil {
		tx.Rollback()
		return fail("begin", err)
	}
	ok := 0
	for i, op := range ops {
		if savepoints {
			if _, err := w.exec(ctx, stSavepoint); err != nil {
				tx.Rollback()
				return fail("savepoint", err)
			}
		}
		saved := w.mark()
		err := op.fn(ctx, w)
		if err != nil {
			if !savepoints && len(ops) > 1 {
				tx.Rollback()
				if errors.Is(err, ErrUnavailable) {
					// The database is gone: running again would only wait
					// for the same failure.
					errs[i] = err
					return fail("rolled back", err)
				}
				return nil, 0, false
			}
			errs[i] = err
			w.reset(saved)
			if savepoints {
				if _, rerr := w.exec(ctx, stRollbackTo); rerr != nil {
					tx.Rollback()
					return fail("rollback to savepoint", rerr)
				}
			}
		} else {
			ok++
		}
		if savepoints {
			if _, err := w.exec(ctx, stRelease); err != nil {
				tx.Rollback()
				return fail("release savepoint", err)
			}
		}
	}
	if ok == 0 {
		// Nothing to keep: skip the commit and its fsync.
		tx.Rollback()
		return errs, 0, true
	}
	if w.appended {
		if err := s.d.eventsAppended(ctx, tx, w.pos); err != nil {
			tx.Rollback()
			return fail("notify", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail("commit", err)
	}
	w.committed()
	if !w.appended {
		return errs, 0, true
	}
	return errs, w.pos, true
}

// batchErr wraps a failure of the batch itself (not of one operation).
// Inside the writer a deadline means the database did not answer in time.
func (s *SQL) batchErr(what, stage string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("store: %s: %s: %w: %w", what, stage, ErrUnavailable, err)
	}
	return s.wrap(what+": "+stage, err)
}

// wtx is the state of one write transaction: the audit chain head and the
// last event position, both read under the write lock at the start.
type wtx struct {
	s        *SQL
	tx       *sql.Tx
	txStmts  [numStmts]*sql.Stmt
	head     *audit.Record // only Seq and Hash are set; nil before the first
	pos      int64
	appended bool
	// inactive are the intermediates that may not sign, by key ID, read
	// at the first issuance of the transaction (nil: not read yet).
	inactive map[string]string
	startPos int64 // the event head when the transaction began
	// gatewayGrants are the role grants of the gateway role, read at the
	// first issuance of the transaction that checks a role, or kept from
	// the writer's last commit with the heads (grantsRead); GrantRole and
	// RevokeRole clear grantsRead.
	gatewayGrants []roles.Grant
	grantsRead    bool
	// SQLite (dialect keepsHeads): the batch's connection, its driver
	// connection and the data version read at the start.
	conn        *sql.Conn
	driverConn  any
	dataVersion uint32
}

type wtxMark struct {
	head     *audit.Record
	pos      int64
	appended bool
}

func (w *wtx) mark() wtxMark { return wtxMark{w.head, w.pos, w.appended} }

func (w *wtx) reset(m wtxMark) { w.head, w.pos, w.appended = m.head, m.pos, m.appended }

// start takes the write lock and reads the chain heads. Reading them in
// every transaction (one statement, two index lookups) keeps them right
// even when another process wrote in between: a PostgreSQL replica, or a
// second process on the same SQLite file.
//
// On SQLite the writer keeps the heads of its last commit (headCache) and
// reads the file's data version instead (SQLITE_FCNTL_DATA_VERSION, a
// call into the driver, no statement), under the write lock (BEGIN
// IMMEDIATE has begun the read transaction, which is where SQLite sees
// other connections' commits). The data version moves on every commit to
// the file, by this connection or any other of any process, and a commit
// of this connection moves it by exactly one: SQLite's own PRAGMA
// data_version is this counter less this connection's commits. The kept
// heads are used only on the same driver connection and at the data
// version one past the one their transaction began at, i.e. when nothing
// but that transaction's own commit was written since; otherwise the heads
// are read as before. If that ever failed, the primary keys of audit.seq
// and events.position would refuse the stale head's next record: a failed
// batch, never a forked chain. PostgreSQL reads them in every
// transaction: replicas write between this one's.
func (w *wtx) start(ctx context.Context) error {
	if err := w.s.d.lockWrites(ctx, w.tx); err != nil {
		return err
	}
	if w.conn != nil {
		if err := w.conn.Raw(func(dc any) error {
			fc, ok := dc.(sqlite.FileControl)
			if !ok {
				return fmt.Errorf("driver connection %T has no file control", dc)
			}
			v, err := fc.FileControlDataVersion("main")
			w.driverConn, w.dataVersion = dc, v
			return err
		}); err != nil {
			return err
		}
		c := &w.s.heads
		valid := c.valid && c.driverConn == w.driverConn && c.dataVersion == w.dataVersion
		// Kept only until a commit of this writer replaces them.
		c.valid = false
		if valid {
			w.pos, w.head, w.startPos = c.pos, c.head, c.pos
			w.gatewayGrants, w.grantsRead = c.gatewayGrants, c.grantsRead
			return nil
		}
	}
	var seq sql.NullInt64
	var hash []byte
	if err := w.stmt(ctx, stHeads).QueryRowContext(ctx).Scan(&w.pos, &seq, &hash); err != nil {
		return err
	}
	if seq.Valid {
		w.head = &audit.Record{Seq: seq.Int64, Hash: hash}
	}
	w.startPos = w.pos
	return nil
}

// headCache is what the SQLite writer keeps of its last commit: the chain
// heads after it, the gateway grants if it read them (and changed no grant
// after), the driver connection it was made on and the data version the
// file has after it.
type headCache struct {
	valid         bool
	driverConn    any
	dataVersion   uint32
	pos           int64
	head          *audit.Record
	gatewayGrants []roles.Grant
	grantsRead    bool
}

// committed keeps the heads of w, whose transaction has committed, and its
// gateway grants: the grants as of its commit, since a GrantRole or
// RevokeRole after the last read clears grantsRead. Like the heads, they
// are used only while nothing else wrote to the file (see start), so the
// next transactions of this writer skip reading role_grants.
func (w *wtx) committed() {
	if w.conn == nil {
		return
	}
	w.s.heads = headCache{valid: true, driverConn: w.driverConn, dataVersion: w.dataVersion + 1, pos: w.pos, head: w.head,
		gatewayGrants: w.gatewayGrants, grantsRead: w.grantsRead}
}

func (w *wtx) stmt(ctx context.Context, id stmtID) *sql.Stmt {
	if w.txStmts[id] == nil {
		w.txStmts[id] = w.tx.StmtContext(ctx, w.s.stmts[id])
	}
	return w.txStmts[id]
}

func (w *wtx) exec(ctx context.Context, id stmtID, args ...any) (sql.Result, error) {
	return w.stmt(ctx, id).ExecContext(ctx, args...)
}

// appendAudit links e after the head and inserts it.
func (w *wtx) appendAudit(ctx context.Context, e audit.Entry) (audit.Record, error) {
	r := audit.Next(w.head, e)
	if _, err := w.exec(ctx, stAuditInsert, r.Seq, r.Time.UnixNano(), r.Actor, r.Action, r.Subject, r.Detail, r.PrevHash, r.Hash); err != nil {
		return audit.Record{}, err
	}
	w.head = &audit.Record{Seq: r.Seq, Hash: r.Hash}
	return r, nil
}

// appendEvent gives ev the next position and inserts it.
func (w *wtx) appendEvent(ctx context.Context, ev Event) (Event, error) {
	ev.Position = w.pos + 1
	if _, err := w.exec(ctx, stEventInsert, ev.Position, ev.Time.UnixNano(), ev.Kind, ev.Serial, ev.Identity, ev.Reason, ev.NotAfter.UnixNano(), ev.Issuer); err != nil {
		return Event{}, err
	}
	w.pos = ev.Position
	w.appended = true
	return ev, nil
}
