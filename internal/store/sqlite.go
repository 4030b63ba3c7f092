package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
)

// SQLite result codes (https://sqlite.org/rescode.html); the primary code is
// the low byte of an extended one.
const (
	sqlitePerm                 = 3
	sqliteBusy                 = 5
	sqliteLocked               = 6
	sqliteNoMem                = 7
	sqliteReadOnly             = 8
	sqliteIOErr                = 10
	sqliteCorrupt              = 11
	sqliteFull                 = 13
	sqliteCantOpen             = 14
	sqliteProtocol             = 15
	sqliteNotADB               = 26
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

// sqliteBusyTimeout is how long a writer waits for another process's write
// lock on the same file before the store reports itself unavailable.
const sqliteBusyTimeout = 5 * time.Second

// sqliteWriterCacheKiB is the writer connection's page cache, SQLite's
// default size (2,000 KiB). A larger one costs more than it saves: when an
// insert splits a b-tree page, SQLite parks a page under a number past the
// end of the file (balance_nonroot's sqlite3PagerRekey), and the commit
// then drops every cached page past the end by scanning the whole page
// cache hash table (pcache1TruncateUnsafe), whose size follows the pages
// cached. With random serials, fingerprints and identities most commits
// split a page. At 64 MiB (the setting before) the scan grew with the
// database to 4% of an enrollment's server CPU (8 clients, 12,000
// enrollments), at 2,000 KiB it is 0.8%; pages that no longer fit are read
// again from the OS page cache (the WAL or the database file).
const sqliteWriterCacheKiB = 2000

// sqliteReaders is the size of the read pool. WAL readers never block the
// writer nor each other.
const sqliteReaders = 4

// OpenSQLite opens the SQLite database at path, creating the file (mode
// 0600) if it does not exist, applies pending migrations and starts the
// writer. The database runs in WAL mode with synchronous=FULL, so a commit
// is on disk when it returns, and with foreign keys enforced.
func OpenSQLite(ctx context.Context, path string) (*SQL, error) {
	s, _, _, err := openSQLite(ctx, path, sqliteBusyTimeout)
	return s, err
}

// openSQLite is OpenSQLite, also returning the schema versions before and
// after migrating.
func openSQLite(ctx context.Context, path string, busyTimeout time.Duration) (s *SQL, from, to int, err error) {
	if path == "" {
		return nil, 0, 0, errors.New("store: sqlite: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("store: sqlite: %w", err)
	}
	// SQLite would create the file 0644; create it 0600 first. The -wal and
	// -shm files SQLite makes later take the database file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return nil, 0, 0, fmt.Errorf("store: sqlite: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return nil, 0, 0, fmt.Errorf("store: sqlite: %w", err)
	}

	sqliteSync.Do(func() {
		// ErrFdatasyncUnavailable (macOS, Windows): fsync as before.
		sqlite.Fdatasync(true)
	})
	sqliteFuncs.Do(func() {
		sqliteFuncsErr = sqlite.RegisterDeterministicScalarFunction(sqliteHashEqualName, 2, sqliteHashEqual)
	})
	if sqliteFuncsErr != nil {
		return nil, 0, 0, fmt.Errorf("store: sqlite: %w", sqliteFuncsErr)
	}
	d := sqliteDialect{}
	name := (&url.URL{Scheme: "file", Path: abs}).String()
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", busyTimeout.Milliseconds())
	wdb, err := sql.Open("sqlite", name+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"+
		fmt.Sprintf("&_pragma=cache_size(-%d)", sqliteWriterCacheKiB))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("store: sqlite: %w", err)
	}
	// One connection: SQLite has one writer, and the writer goroutine is its
	// only user.
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)

	var mode string
	if err := wdb.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		wdb.Close()
		return nil, 0, 0, sqliteOpenErr(abs, err)
	}
	if mode != "wal" {
		wdb.Close()
		return nil, 0, 0, fmt.Errorf("store: sqlite %s: journal mode is %q, WAL could not be enabled", abs, mode)
	}
	from, to, err = migrate(ctx, wdb, d)
	if err != nil {
		wdb.Close()
		return nil, 0, 0, err
	}

	rdb, err := sql.Open("sqlite", name+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		wdb.Close()
		return nil, 0, 0, fmt.Errorf("store: sqlite: %w", err)
	}
	rdb.SetMaxOpenConns(sqliteReaders)
	rdb.SetMaxIdleConns(sqliteReaders)
	s, err = newSQL(ctx, d, wdb, rdb)
	if err != nil {
		wdb.Close()
		rdb.Close()
		return nil, 0, 0, err
	}
	return s, from, to, nil
}

// sqliteSync switches SQLite's commits from fsync(2) to fdatasync(2), for
// the whole process (modernc.org/sqlite.Fdatasync), at the first open.
// fdatasync writes the file's data and the metadata needed to read it
// back, its size included, but not its timestamps: a commit is as durable,
// synchronous=FULL unchanged, and it is what SQLite built for Linux by its
// own configure script does; the transpiled library keeps SQLite's source
// default, fsync. On ext4 without a journal (this machine's) fsync also
// wrote the WAL's inode back on every commit for its mtime
// (sync_inode_metadata, ~0.7% of the server's CPU per enrollment in perf
// of certgate bench enroll); with a journal it also waits for the journal
// commit.
var sqliteSync sync.Once

// sqliteFuncs registers the SQL functions of the store's SQLite statements
// with the driver, for every connection opened after (the first open).
var (
	sqliteFuncs    sync.Once
	sqliteFuncsErr error
)

// sqliteHashEqualName is the SQL name of sqliteHashEqual.
const sqliteHashEqualName = "certgate_hash_equal"

// sqliteHashEqual(stored, presented) is 1 if the two blobs are equal,
// compared in constant time (crypto/subtle), else 0: the token's secret
// hash is checked inside the redeeming UPDATE (stTokenRedeemMatching), in
// Go, never by SQLite's memcmp.
func sqliteHashEqual(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	stored, ok1 := args[0].([]byte)
	presented, ok2 := args[1].([]byte)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%s: arguments %T, %T, want two blobs", sqliteHashEqualName, args[0], args[1])
	}
	return int64(subtle.ConstantTimeCompare(stored, presented)), nil
}

func sqliteOpenErr(path string, err error) error {
	if (sqliteDialect{}).unavailable(err) {
		return fmt.Errorf("store: sqlite %s: %w: %w", path, ErrUnavailable, err)
	}
	return fmt.Errorf("store: sqlite %s: %w", path, err)
}

type sqliteDialect struct{}

func (sqliteDialect) name() string { return "sqlite" }

func (sqliteDialect) bind(q string) string { return q }

// keepsHeads: the SQLite writer keeps the chain heads between its
// transactions while the file's data version shows no other writer (see
// wtx.start).
func (sqliteDialect) keepsHeads() bool { return true }

// watchesContext: no. A context that can end costs every statement of the
// transaction a goroutine in the driver (modernc.org/sqlite's
// interruptOnDone, to interrupt the statement when the context ends) and
// every query another in database/sql (Rows.awaitDone), with the switches
// to and from them on the writer's core. Without them the CPU per
// issuance of BenchmarkRecordIssuance/sqlite-token-checked-8 (pinned to
// one core) fell from 162-182 to 132-154 µs (medians 168, 137). What a SQLite
// transaction waits for does not need the deadline: BEGIN IMMEDIATE waits
// for another process's write lock at most busy_timeout (the driver's busy
// handler, the same with or without a context) and then fails as
// unavailable; COMMIT in WAL mode holds the lock already; the statements
// are short (indexed reads and writes, a revocation by identity prefix
// reads the certificates once), and no interrupt would end a write(2) or
// fsync(2) stuck on a dead disk anyway. The deadline still bounds the wait
// for the writer's connection.
func (sqliteDialect) watchesContext() bool { return false }

// lockWrites does nothing: the writer's connection begins every transaction
// with BEGIN IMMEDIATE (_txlock=immediate), which takes the write lock.
func (sqliteDialect) lockWrites(context.Context, *sql.Tx) error { return nil }

// A batch of 256 keeps the per-commit fsync well amortized while one
// transaction stays short (a few milliseconds).
func (sqliteDialect) maxBatch() int { return 256 }

// redeemReturning: no, the token is redeemed by an UPDATE that checks the
// secret hash (constant time, in Go: sqliteHashEqual) and the identity in
// its WHERE clause (stTokenRedeemMatching): one statement and no
// RETURNING, which SQLite answers through an ephemeral table.
func (sqliteDialect) redeemReturning() bool { return false }

func (sqliteDialect) eventsAppended(context.Context, *sql.Tx, int64) error { return nil }

// A read transaction in WAL mode sees one snapshot from its first read on.
func (sqliteDialect) readTx() *sql.TxOptions { return &sql.TxOptions{ReadOnly: true} }

func (sqliteDialect) uniqueViolation(err error) (string, bool) {
	var e *sqlite.Error
	if !errors.As(err, &e) || (e.Code() != sqliteConstraintUnique && e.Code() != sqliteConstraintPrimaryKey) {
		return "", false
	}
	// "UNIQUE constraint failed: certificates.serial (2067)"
	const marker = "constraint failed: "
	msg := e.Error()
	i := strings.LastIndex(msg, marker)
	if i < 0 {
		return "", true
	}
	col := msg[i+len(marker):]
	if j := strings.IndexAny(col, " ,"); j >= 0 {
		col = col[:j]
	}
	return col, true
}

func (sqliteDialect) unavailable(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		switch e.Code() & 0xff {
		case sqlitePerm, sqliteBusy, sqliteLocked, sqliteNoMem, sqliteReadOnly, sqliteIOErr,
			sqliteCorrupt, sqliteFull, sqliteCantOpen, sqliteProtocol, sqliteNotADB:
			return true
		}
		return false
	}
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		strings.Contains(err.Error(), "sql: database is closed")
}
