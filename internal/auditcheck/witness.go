package auditcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/checkpoint"
)

// WitnessFile is the name of a witness's memory in a credentials
// directory (the key it pinned is WitnessFile + ".pub.pem").
const WitnessFile = "audit-checkpoint"

// Server is what a witness asks the server (apiclient.Client).
type Server interface {
	AuditCheckpoint(ctx context.Context) ([]byte, error)
	AuditKey(ctx context.Context) ([]byte, error)
	Records
}

// Watcher is a witness of the server's audit log: it remembers the newest
// checkpoint it saw (a checkpoint.Witness file) and warns (log, Alarm)
// when the server shows one that does not extend it.
type Watcher struct {
	Server  Server
	Witness *checkpoint.Witness
	// ReadRecords: the witness may read the log (a gateway), and checks
	// that a larger checkpoint chains from the remembered one by
	// recomputing the records between.
	ReadRecords bool
	Log         *slog.Logger
	// Alarm, if set, is called once per checkpoint that does not extend
	// the remembered one (a metric).
	Alarm func()
	// Accepted, if set, is called with the size of each checkpoint
	// accepted.
	Accepted func(size int64)
}

// ErrNoCheckpoint: the server signs no checkpoints (yet).
var ErrNoCheckpoint = errors.New("auditcheck: the server shows no audit checkpoint")

// Check fetches the server's checkpoint and key and observes them. An
// error wrapping checkpoint.ErrNotExtended, ErrKeyChanged or ErrSignature
// is the server's log not extending what this witness saw (logged at
// error level, Alarm called); others are failures to ask.
func (w *Watcher) Check(ctx context.Context) (checkpoint.Signed, error) {
	note, err := w.Server.AuditCheckpoint(ctx)
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return checkpoint.Signed{}, ErrNoCheckpoint
	}
	if err != nil {
		return checkpoint.Signed{}, err
	}
	pemKey, err := w.Server.AuditKey(ctx)
	if err != nil {
		return checkpoint.Signed{}, err
	}
	pub, err := checkpoint.ParsePublicKey(pemKey)
	if err != nil {
		return checkpoint.Signed{}, fmt.Errorf("auditcheck: the server's audit key: %w", err)
	}
	name, _, _ := strings.Cut(string(note), "\n")
	last, ok, err := w.Witness.Last()
	if err != nil {
		return checkpoint.Signed{}, err
	}
	if ok && w.ReadRecords && last.Checkpoint.Origin == name {
		v, err := checkpoint.NewVerifier(name, pub)
		if err != nil {
			return checkpoint.Signed{}, err
		}
		next, err := v.Verify(note)
		switch {
		case err != nil || last.Checkpoint.Origin != next.Origin || !last.PublicKey().Equal(pub):
		case next.Size > last.Size:
			if err := w.extends(ctx, last.Checkpoint, next.Checkpoint); err != nil {
				return checkpoint.Signed{}, w.alarm(err, last, note)
			}
		case next.Size < last.Size:
			// An older checkpoint: a replica that signed less recently
			// than the one seen before, or a truncated log. The records
			// tell: the older must lead to the remembered one.
			if err := w.extends(ctx, next.Checkpoint, last.Checkpoint); err != nil {
				return checkpoint.Signed{}, w.alarm(fmt.Errorf("%w: size %d is below the earlier %d and the log does not lead from it to the earlier: %w",
					checkpoint.ErrNotExtended, next.Size, last.Size, err), last, note)
			}
			return last, nil // the remembered one stays: it is newer
		}
	}
	s, err := w.Witness.Observe(name, pub, note)
	if errors.Is(err, checkpoint.ErrNotExtended) || errors.Is(err, checkpoint.ErrKeyChanged) || errors.Is(err, checkpoint.ErrSignature) {
		return checkpoint.Signed{}, w.alarm(err, last, note)
	}
	if err == nil && w.Accepted != nil {
		w.Accepted(s.Size)
	}
	return s, err
}

// extends recomputes the chain from prev's head over the records up to
// next's size and checks it ends at next's head.
func (w *Watcher) extends(ctx context.Context, prev, next checkpoint.Checkpoint) error {
	v := audit.VerifierAt(prev.Size, prev.Hash)
	for v.Count() < next.Size {
		recs, err := w.Server.AuditRecords(ctx, v.Count(), int(min(next.Size-v.Count(), page)))
		if err != nil {
			return fmt.Errorf("auditcheck: the records between checkpoints %d and %d: %w", prev.Size, next.Size, err)
		}
		if len(recs) == 0 {
			return fmt.Errorf("%w: the log has no record %d, which checkpoint %d covers", checkpoint.ErrNotExtended, v.Count()+1, next.Size)
		}
		for _, wr := range recs {
			r, err := Record(wr)
			if err != nil {
				return err
			}
			if err := v.Add(r); err != nil {
				return fmt.Errorf("%w: from %d to %d records: %w", checkpoint.ErrNotExtended, prev.Size, next.Size, err)
			}
		}
	}
	if !bytes.Equal(v.Head(), next.Hash) {
		return fmt.Errorf("%w: the records from %d to %d do not hash to checkpoint %d's head (log rewritten)", checkpoint.ErrNotExtended, prev.Size+1, next.Size, next.Size)
	}
	return nil
}

func (w *Watcher) alarm(err error, last checkpoint.Signed, note []byte) error {
	if w.Log != nil {
		w.Log.Error("audit: the server's checkpoint does not extend the one this witness saw: its audit log was truncated or rewritten; keep "+w.Witness.Path()+" as evidence (certgate audit verify --checkpoint)",
			"err", err, "remembered_size", last.Size, "shown", string(note))
	}
	if w.Alarm != nil {
		w.Alarm()
	}
	return err
}

// Run checks at start and then every interval until ctx is done. Failures
// to ask are logged at debug level: the server being away is reported by
// whoever else talks to it.
func (w *Watcher) Run(ctx context.Context, interval time.Duration) {
	for {
		if _, err := w.Check(ctx); err != nil && ctx.Err() == nil && w.Log != nil && !errors.Is(err, ErrNoCheckpoint) &&
			!errors.Is(err, checkpoint.ErrNotExtended) && !errors.Is(err, checkpoint.ErrKeyChanged) && !errors.Is(err, checkpoint.ErrSignature) {
			w.Log.Debug("audit: witness: could not fetch the server's checkpoint", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
