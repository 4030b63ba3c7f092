package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgresEventsChannel is the LISTEN/NOTIFY channel on which a commit that
// appended events announces them, with the payload "<schema> <last
// position>" (the schema the store's tables are in, the position in
// decimal), so replicas can wake their followers ([SQL.EventsChanged]). The
// events table stays the source of truth: a missed notification only delays
// a follower until its next read.
const PostgresEventsChannel = "certgate_events"

// postgresLockClass is the first key of the advisory lock that serializes
// writers; the second is a hash of the schema, so stores in different
// schemas of one database do not wait for each other.
const postgresLockClass = 0x6e3662 // "n6b", arbitrary, fixed forever

// postgresMaxConns bounds the pool per process: the writer uses one
// connection at a time, the rest serve reads.
const postgresMaxConns = 16

// OpenPostgres opens the PostgreSQL database url names (a postgres:// URL or
// a key=value connection string), applies pending migrations and starts the
// writer. Several processes may share the database: writes are serialized
// with a transaction-level advisory lock, so the audit chain and the event
// positions stay one total order in commit order across replicas.
//
// The store also keeps one connection that LISTENs on
// [PostgresEventsChannel], so [SQL.EventsChanged] fires for the commits of
// other replicas too.
func OpenPostgres(ctx context.Context, url string) (*SQL, error) {
	db, cfg, err := openPostgresDB(url)
	if err != nil {
		return nil, err
	}
	d := postgresDialect{}
	if _, _, err := migrate(ctx, db, d); err != nil {
		db.Close()
		return nil, err
	}
	s, err := newSQL(ctx, d, db, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.stopListen = startListener(cfg, s.notified)
	return s, nil
}

// openPostgresDB returns the pool for url and the parsed config, from which
// the listener makes its own connection.
func openPostgresDB(url string) (*sql.DB, *pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, nil, fmt.Errorf("store: postgres: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, cfg, nil
}

type postgresDialect struct{}

func (postgresDialect) name() string { return "postgres" }

func (postgresDialect) bind(q string) string { return rebindQ(q) }

// keepsHeads: no, replicas write between this one's transactions, and
// PostgreSQL has no cheap way to tell; the heads are read in each.
func (postgresDialect) keepsHeads() bool { return false }

// watchesContext: a statement waits on the network and on other sessions'
// locks; the writer's deadline ends the wait.
func (postgresDialect) watchesContext() bool { return true }

// lockWrites takes the store's advisory lock until the transaction ends.
// Every write appends to the audit chain, so writers of all replicas take
// turns here; within a process the writer batches, so the lock is taken
// once per group commit, not once per operation.
func (postgresDialect) lockWrites(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, postgresLockClass)
	return err
}

// Each operation of a batch runs in its own savepoint, a subtransaction.
// PostgreSQL caches 64 subtransaction IDs per backend; past that every
// other session's snapshot checks get slower (suboverflow), so a batch
// stays at 64.
func (postgresDialect) maxBatch() int { return 64 }

func (postgresDialect) redeemReturning() bool { return true }

// eventsAppended queues the notification; PostgreSQL delivers it at
// COMMIT, and never for a transaction that rolls back. The listener of
// each replica compares the schema with its own (listen.go).
func (postgresDialect) eventsAppended(ctx context.Context, tx *sql.Tx, last int64) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, COALESCE(current_schema(), '') || ' ' || $2)`,
		PostgresEventsChannel, strconv.FormatInt(last, 10))
	return err
}

// Two statements of a read transaction see one snapshot only at REPEATABLE
// READ; the default READ COMMITTED takes a snapshot per statement.
func (postgresDialect) readTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
}

// postgresUnique maps the constraint names of the migrations to columns.
var postgresUnique = map[string]string{
	"certificates_pkey":    "certificates.serial",
	"tokens_pkey":          "tokens.id",
	"revocations_pkey":     "revocations.serial",
	"events_pkey":          "events.position",
	"audit_pkey":           "audit.seq",
	"ca_certificates_pkey": "ca_certificates.fingerprint",
	"ca_rotations_pkey":    "ca_rotations.id",
}

func (postgresDialect) uniqueViolation(err error) (string, bool) {
	var e *pgconn.PgError
	if !errors.As(err, &e) || e.Code != "23505" {
		return "", false
	}
	if col, ok := postgresUnique[e.ConstraintName]; ok {
		return col, true
	}
	return e.TableName + "." + e.ConstraintName, true
}

func (postgresDialect) unavailable(err error) bool {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		switch {
		case strings.HasPrefix(e.Code, "08"), // connection exception
			strings.HasPrefix(e.Code, "53"),  // insufficient resources: disk full, too many connections
			strings.HasPrefix(e.Code, "57P"), // admin or crash shutdown, cannot connect now
			strings.HasPrefix(e.Code, "58"):  // system error: I/O
			return true
		}
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr), pgconn.Timeout(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "sql: database is closed")
}
