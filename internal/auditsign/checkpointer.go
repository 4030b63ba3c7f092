package auditsign

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/clock"
)

// Records is the part of the store a checkpointer reads.
type Records interface {
	AuditRecords(ctx context.Context, after int64, limit int) ([]audit.Record, error)
}

// Options configures a Checkpointer.
type Options struct {
	Records Records
	Signer  *checkpoint.Signer
	// File is the checkpoint file every signed checkpoint is appended to.
	File string
	// Every: a checkpoint at least every this many records (at sizes
	// Every, 2*Every, ... after the last one).
	Every int64
	// Interval: the head is signed when it grew and the last checkpoint is
	// at least this old.
	Interval time.Duration
	// Poll is how often the store's new records are read (1 s if zero).
	Poll  time.Duration
	Clock clock.Clock
	Log   *slog.Logger
}

// page is how many records a sync reads at a time.
const page = 5000

// Checkpointer signs checkpoints of the audit log. It continues from the
// newest checkpoint in its file and signs a new one only after checking
// that the records since chain from it: a truncated or rewritten store is
// never signed over, it is reported (log, [Checkpointer.Broken]).
type Checkpointer struct {
	o Options

	mu        sync.Mutex
	latest    checkpoint.Signed
	hasLatest bool
	v         *audit.Verifier // nil: start again from latest
	broken    error
}

// New opens the checkpointer, reading the newest checkpoint of File signed
// by o.Signer. A cut last note (a crash while appending) is ignored with a
// warning; notes another key signed are skipped.
func New(o Options) (*Checkpointer, error) {
	if o.Records == nil || o.Signer == nil || o.File == "" || o.Every < 1 || o.Interval <= 0 {
		return nil, errors.New("auditsign: needs records, a signer, a file, every and an interval")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	c := &Checkpointer{o: o}
	notes, err := ReadFile(o.File, o.Log)
	if err != nil {
		return nil, err
	}
	v := o.Signer.Verifier()
	for _, n := range notes {
		s, err := v.Verify(n)
		if err != nil {
			o.Log.Warn("audit: a checkpoint in the file does not verify with the audit key; skipped", "file", o.File, "err", err)
			continue
		}
		if !c.hasLatest || s.Size > c.latest.Size {
			c.latest, c.hasLatest = s, true
		}
	}
	return c, nil
}

// ReadFile returns the notes of a checkpoint file (none if it does not
// exist). A last note cut short is dropped with a warning.
func ReadFile(path string, log *slog.Logger) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditsign: %w", err)
	}
	notes, err := checkpoint.Notes(data)
	if err == nil {
		return notes, nil
	}
	// A crash while appending leaves a partial note at the end: keep every
	// whole note before it.
	for i := bytes.LastIndex(data, []byte("\n\n")); i > 0; i = bytes.LastIndex(data[:i], []byte("\n\n")) {
		if n, err2 := checkpoint.Notes(data[:i+2]); err2 == nil {
			if log != nil {
				log.Warn("audit: the checkpoint file ends in a partial note; ignored", "file", path, "bytes", len(data)-i-2)
			}
			return n, nil
		}
	}
	return nil, fmt.Errorf("auditsign: %s: %w", path, err)
}

// Latest is the newest checkpoint, if any.
func (c *Checkpointer) Latest() (checkpoint.Signed, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latest, c.hasLatest
}

// Broken is why the store's log does not extend the newest checkpoint, or
// nil.
func (c *Checkpointer) Broken() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Run syncs every Poll until ctx is done, then signs the head one last
// time (shutdown) with a context of its own.
func (c *Checkpointer) Run(ctx context.Context) {
	for {
		if err := c.Sync(ctx, false); err != nil && ctx.Err() == nil && !errors.Is(err, audit.ErrBroken) {
			c.o.Log.Warn("audit: checkpoint: reading the audit log failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := c.Sync(fctx, true); err != nil {
				c.o.Log.Error("audit: no checkpoint signed at shutdown", "err", err)
			}
			return
		case <-time.After(c.o.Poll):
		}
	}
}

// Sync reads the records appended since the last sync, checks that they
// chain from the newest checkpoint and signs: at every Every records, and
// the head when it grew and the newest checkpoint is Interval old, or
// whenever it grew if final (shutdown).
func (c *Checkpointer) Sync(ctx context.Context, final bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.v == nil {
		if err := c.checkAnchor(ctx); err != nil {
			return c.fail(err)
		}
	}
	grew := false
	for {
		recs, err := c.o.Records.AuditRecords(ctx, c.v.Count(), page)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := c.v.Add(r); err != nil {
				return c.fail(err)
			}
			grew = true
			if r.Seq-c.latest.Size >= c.o.Every {
				if err := c.sign(r.Seq, r.Hash); err != nil {
					return err
				}
			}
		}
		if len(recs) < page {
			break
		}
	}
	if !grew && c.hasLatest {
		// Nothing new: the newest signed record must still be there as
		// signed (a truncation shows up here, not as silence).
		if err := c.checkAnchor(ctx); err != nil {
			return c.fail(err)
		}
	}
	size := c.v.Count()
	if size > c.latest.Size && (final || !c.hasLatest || c.o.Clock.Now().Sub(c.latest.Time) >= c.o.Interval) {
		if err := c.sign(size, c.v.Head()); err != nil {
			return err
		}
	}
	if c.broken != nil {
		c.o.Log.Info("audit: the audit log extends the newest checkpoint again", "size", size)
		c.broken = nil
	}
	return nil
}

// checkAnchor starts the verifier at the newest checkpoint after checking
// that the store's record at its size has its hash.
func (c *Checkpointer) checkAnchor(ctx context.Context) error {
	if !c.hasLatest {
		c.v = audit.VerifierAt(0, nil)
		return nil
	}
	n := c.latest.Size
	recs, err := c.o.Records.AuditRecords(ctx, n-1, 1)
	if err != nil {
		return err
	}
	switch {
	case len(recs) == 0 || recs[0].Seq != n:
		return &audit.ChainError{Seq: n, Reason: fmt.Sprintf("missing: the checkpoint signed at %s covers %d records (records removed)", c.latest.Time.UTC().Format(time.RFC3339), n)}
	case !bytes.Equal(recs[0].Hash, c.latest.Hash):
		return &audit.ChainError{Seq: n, Reason: fmt.Sprintf("hash %s differs from the checkpoint signed at %s, %s (log rewritten)",
			base64.StdEncoding.EncodeToString(recs[0].Hash), c.latest.Time.UTC().Format(time.RFC3339), base64.StdEncoding.EncodeToString(c.latest.Hash))}
	}
	c.v = audit.VerifierAt(n, c.latest.Hash)
	return nil
}

// fail reports err, a store that does not extend the newest checkpoint,
// once per distinct error, and makes the next sync start again from the
// checkpoint. Nothing is signed meanwhile.
func (c *Checkpointer) fail(err error) error {
	c.v = nil
	if !errors.Is(err, audit.ErrBroken) {
		return err
	}
	if c.broken == nil || c.broken.Error() != err.Error() {
		c.o.Log.Error("audit: the audit log does not extend the newest signed checkpoint; no checkpoint is signed until it does (certgate audit verify)",
			"err", err, "checkpoint_size", c.latest.Size)
	}
	c.broken = err
	return err
}

// sign signs (size, head), appends it to the file and logs it.
func (c *Checkpointer) sign(size int64, head []byte) error {
	s, err := c.o.Signer.Sign(checkpoint.Checkpoint{Size: size, Hash: bytes.Clone(head), Time: c.o.Clock.Now().UTC()})
	if err != nil {
		return fmt.Errorf("auditsign: %w", err)
	}
	if err := checkpoint.Append(c.o.File, s); err != nil {
		return fmt.Errorf("auditsign: %w", err)
	}
	c.latest, c.hasLatest = s, true
	c.o.Log.Info("audit checkpoint", "size", size, "hash", base64.StdEncoding.EncodeToString(head), "note", string(s.Note()))
	return nil
}
