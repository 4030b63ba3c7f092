package auditexport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/syslog"
	"github.com/certgate/certgate/internal/wire"
)

// Records reads the audit log (apiclient.Client).
type Records interface {
	AuditRecords(ctx context.Context, after int64, limit int) ([]wire.AuditRecord, error)
}

// Shipper sends the audit log to a syslog collector from where it stopped.
type Shipper struct {
	Records Records
	// Syslog is the collector's client, without a spool: the audit log is
	// the spool (a record not confirmed is read and sent again), and a
	// full queue holds the export back instead of dropping.
	Syslog *syslog.Client
	// State is the file holding the seq of the last record delivered.
	State string
	// Since is where to start when State does not exist yet (the records
	// after it are sent).
	Since    int64
	Hostname string
	Version  string
	Poll     time.Duration // how often new records are looked for (1 s if zero)
	Log      *slog.Logger
}

// page is how many records are read at a time.
const page = 1000

// ReadState returns the seq in the state file, ok false when there is none.
func ReadState(path string) (seq int64, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("auditexport: state: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("auditexport: state %s: %q is not a record number", path, b)
	}
	return n, true, nil
}

func (s *Shipper) save(seq int64) error {
	if err := atomicfile.Write(s.State, []byte(strconv.FormatInt(seq, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("auditexport: state: %w", err)
	}
	return nil
}

// Run sends the records after the state (or Since) and then every new one,
// until ctx is done; then it closes the syslog client (delivering or
// spooling what is queued, within 30 s) and saves the last seq handed to
// it. While running, the state advances to a seq only once every message
// up to it was written to the collector.
func (s *Shipper) Run(ctx context.Context) error {
	if s.Poll <= 0 {
		s.Poll = time.Second
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	last, ok, err := ReadState(s.State)
	if err != nil {
		return err
	}
	if !ok {
		last = s.Since
	}
	saved := last
	var seqs []int64 // seq of each message handed and not yet confirmed
	var confirmed uint64
	// confirm advances the state over the messages the collector's
	// connection took.
	confirm := func() error {
		sent := s.Syslog.Stats().Sent
		if sent <= confirmed || len(seqs) == 0 {
			return nil
		}
		n := min(sent-confirmed, uint64(len(seqs)))
		upTo := seqs[n-1]
		seqs, confirmed = seqs[n:], confirmed+n
		if upTo > saved {
			if err := s.save(upTo); err != nil {
				return err
			}
			saved = upTo
		}
		return nil
	}
	for {
		recs, err := s.Records.AuditRecords(ctx, last, page)
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("audit export: reading the audit log failed; trying again", "err", err)
		}
		full := false
		for _, r := range recs {
			if r.Seq != last+1 {
				s.Log.Warn("audit export: a gap in the audit log (certgate audit verify)", "after", last, "next", r.Seq)
			}
			m := Message(r, s.Hostname, s.Version)
			b, err := m.Append(nil)
			if err != nil {
				return fmt.Errorf("auditexport: record %d: %w", r.Seq, err)
			}
			if err := s.Syslog.Send(b); errors.Is(err, syslog.ErrDropped) {
				full = true // the collector is slow or away: this record again later
				break
			} else if err != nil {
				return fmt.Errorf("auditexport: record %d: %w", r.Seq, err)
			}
			seqs = append(seqs, r.Seq)
			last = r.Seq
		}
		if err := confirm(); err != nil {
			return err
		}
		if len(recs) == page && !full {
			continue
		}
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cerr := s.Syslog.Close(cctx)
			if err := confirm(); err != nil {
				return err
			}
			if cerr != nil {
				// What the collector did not take stays after the state:
				// the next run sends it.
				s.Log.Warn("audit export: stopped with records not delivered; the next run sends them", "state", saved, "err", cerr)
			}
			return nil
		case <-time.After(s.Poll):
		}
	}
}
