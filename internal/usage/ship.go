package usage

import (
	"context"
	"log/slog"
	"time"

	"github.com/certgate/certgate/internal/wire"
)

// Sender delivers a report to the server (apiclient.Client.ReportUsage).
type Sender interface {
	ReportUsage(ctx context.Context, r wire.UsageReport) (wire.UsageAck, error)
}

// Shipper sends a Table's reports to the server every Interval.
type Shipper struct {
	Table    *Table
	Senders  []Sender // one per server URL, tried in turn on failure
	Interval time.Duration
	Log      *slog.Logger
	// Permanent, if set, says an error means the server will never take
	// this report (it refused it as malformed): it is dropped and logged
	// rather than blocking every report after it.
	Permanent func(error) bool
	// Sent, if set, is called after each acknowledged report (tests).
	Sent func(wire.UsageReport)
}

// Run ships until ctx is done, then tries once more to deliver what is
// left (for at most a few seconds).
func (s *Shipper) Run(ctx context.Context) {
	tk := time.NewTicker(s.Interval)
	defer tk.Stop()
	cur := 0
	failing := false
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			for i := 0; i < 2 && s.flush(fctx, &cur) == nil; i++ {
			}
			cancel()
			return
		case <-tk.C:
		}
		// After a delivered report the next one (what accumulated while
		// the first was retried) goes at once, so last seen lags by at most
		// one interval once the server is back.
		err := s.flush(ctx, &cur)
		for i := 0; i < 3 && err == nil; i++ {
			err = s.flush(ctx, &cur)
		}
		if _, ok := err.(nothing); ok || ctx.Err() != nil {
			err = nil
		}
		switch {
		case err != nil && !failing:
			failing = true
			n, _ := s.Table.Len()
			s.Log.Warn("usage: the server did not take the report; it is kept and sent again", "err", err, "counters", n)
		case err == nil && failing:
			failing = false
			s.Log.Info("usage: reports delivered again")
		}
	}
}

// nothing is flush's answer when there is no report to send.
type nothing struct{}

func (nothing) Error() string { return "nothing to send" }

// flush sends the next report, if any, to the current server, moving to
// the next server on failure.
func (s *Shipper) flush(ctx context.Context, cur *int) error {
	r := s.Table.Next()
	if r == nil {
		return nothing{}
	}
	if len(s.Senders) == 0 {
		return nothing{}
	}
	sctx, cancel := context.WithTimeout(ctx, max(s.Interval, 5*time.Second))
	defer cancel()
	ack, err := s.Senders[*cur%len(s.Senders)].ReportUsage(sctx, *r)
	if err != nil {
		if s.Permanent != nil && s.Permanent(err) {
			s.Log.Error("usage: the server refused a report; it is dropped (the access log has every request)", "err", err, "id", r.ID, "entries", len(r.Entries))
			s.Table.Ack(r.ID)
			return nil
		}
		*cur++
		return err
	}
	s.Table.Ack(ack.ID)
	if s.Sent != nil {
		s.Sent(*r)
	}
	return nil
}
