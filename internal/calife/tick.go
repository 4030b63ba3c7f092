package calife

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certgate/certgate/internal/store"
)

// stuckAfter is how long a rotation may stay "started" (its new CA not
// made) before the schedule takes it for a process that died and
// continues it. The step itself takes well under a second, or a few with
// an RSA key in a slow token.
const stuckAfter = time.Minute

// Tick does what the schedule says is due at the clock's now: it continues
// a rotation cut short, activates a published intermediate or a prepared
// root whose time came, finishes a root rotation once nothing under the
// old root is valid, starts an intermediate rotation at RotateAt of the
// active intermediate's life (Policy.AutoRotate), and retires intermediates
// whose last certificate expired. It returns whether it changed anything.
// Several servers may tick at once: each change is a compare-and-set, a
// loser reads the winner's state next time.
func (m *Manager) Tick(ctx context.Context) (bool, error) {
	st, err := m.load(ctx)
	if err != nil {
		return false, err
	}
	now := m.o.Clock.Now()
	changed := false
	var errs []error
	note := func(err error) {
		if err == nil {
			changed = true
			return
		}
		if errors.Is(err, store.ErrConflict) {
			return // another process did it
		}
		errs = append(errs, err)
	}
	if r := st.open(store.RotateIntermediate); r != nil {
		switch {
		case r.Phase == PhaseStarted && now.Sub(r.UpdatedAt) >= stuckAfter,
			r.Phase == PhasePublished && !now.Before(r.DueAt):
			_, err := m.RotateIntermediate(ctx, IntermediateOptions{})
			note(err)
		}
	}
	if r := st.open(store.RotateRoot); r != nil {
		switch {
		case r.Phase == PhaseStarted && now.Sub(r.UpdatedAt) >= stuckAfter:
			_, err := m.PrepareRoot(ctx, PrepareOptions{})
			note(err)
		case r.Phase == PhasePrepared && !r.DueAt.IsZero() && !now.Before(r.DueAt):
			_, err := m.ActivateRoot(ctx, "system", time.Time{})
			note(err)
		case r.Phase == PhaseActivated && !r.DueAt.IsZero():
			// Scheduled to finish: as soon as nothing under the old root is
			// valid (an admin certificate replaced and revoked, say, can make
			// that earlier than the estimate; renewals, later).
			_, err := m.FinishRoot(ctx, "system")
			var sv *StillValidError
			switch {
			case errors.As(err, &sv):
				if due := sv.Until.Add(m.o.Policy.RetireGrace); !due.Equal(r.DueAt) {
					next := *r
					next.DueAt = due
					_, err := m.apply(ctx, store.CAChange{Rotation: &next, RotationFrom: PhaseActivated}, "system",
						rotSubject(&next)+" (finish rescheduled)", map[string]any{"finish_at": next.DueAt})
					note(err)
				}
			default:
				note(err)
			}
		}
	}
	if m.o.Policy.AutoRotate && st.open(store.RotateIntermediate) == nil && st.open(store.RotateRoot) == nil {
		if act, ok := st.one(store.CAKindIntermediate, store.CAActive); ok {
			life := act.NotAfter.Sub(act.NotBefore)
			point := act.NotBefore.Add(time.Duration(float64(life) * m.o.Policy.RotateAt))
			ahead := min(m.o.Policy.PublishAhead, life/10)
			if !now.Before(point.Add(-ahead)) {
				at := point
				if !at.After(now) {
					// Late (the server was down): publish now, activate soon.
					at = now.Add(min(ahead, act.NotAfter.Sub(now)/4))
				}
				_, err := m.RotateIntermediate(ctx, IntermediateOptions{At: at})
				note(err)
			}
		}
	}
	if n, err := m.retire(ctx, now); n > 0 || err != nil {
		note(err)
	}
	return changed, errors.Join(errs...)
}

// retire moves retiring intermediates whose every certificate expired
// (RetireGrace ago) to retired. A root rotation's finish retires those
// under the old root.
func (m *Manager) retire(ctx context.Context, now time.Time) (int, error) {
	st, err := m.load(ctx)
	if err != nil {
		return 0, err
	}
	u, err := m.usage(ctx, now)
	if err != nil {
		return 0, err
	}
	var ups []store.CAUpdate
	for _, c := range st.rows {
		if c.Kind != store.CAKindIntermediate || c.State != store.CARetiring {
			continue
		}
		if u[c.KeyID].LastNotAfter.Add(m.o.Policy.RetireGrace).After(now) {
			continue
		}
		if r := st.open(store.RotateRoot); r != nil && c.IssuerKeyID == r.NewKeyID {
			continue // kept for a rollback of the root rotation
		}
		ups = append(ups, store.CAUpdate{Fingerprint: c.Fingerprint, From: store.CARetiring, To: store.CARetired})
	}
	if len(ups) == 0 {
		return 0, nil
	}
	_, err = m.apply(ctx, store.CAChange{Update: ups}, "system", fmt.Sprintf("%d intermediates retired", len(ups)),
		map[string]any{"retired": len(ups), "reason": "every certificate it issued has expired"})
	if err != nil {
		return 0, err
	}
	return len(ups), m.step(ctx, "intermediate.retired")
}

// RunOptions configures Run.
type RunOptions struct {
	// Interval is how often Tick runs.
	Interval time.Duration
	// Changed receives a value when another process changed the CA state
	// (see WatchCA): Run then calls Options.Changed, so this process signs
	// with what the store says.
	Changed <-chan struct{}
	// OnReport, if set, gets the status report at start, after every
	// change, and every ReportEvery (a day if zero): the server logs its
	// warnings and exports the CA expiry metric from it.
	OnReport    func(Report)
	ReportEvery time.Duration
}

// Run ticks until ctx is done. Failures are logged and retried at the next
// tick.
func (m *Manager) Run(ctx context.Context, o RunOptions) {
	if o.ReportEvery <= 0 {
		o.ReportEvery = 24 * time.Hour
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	daily := time.NewTicker(o.ReportEvery)
	defer daily.Stop()
	report := func() {
		if o.OnReport == nil {
			return
		}
		rep, err := m.Status(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.o.Log.Error("CA status", "err", err)
			}
			return
		}
		o.OnReport(rep)
	}
	report()
	for {
		changed, err := m.Tick(ctx)
		if err != nil && ctx.Err() == nil {
			m.o.Log.Error("CA schedule", "err", err)
		}
		if changed {
			report()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-daily.C:
			report()
		case <-o.Changed:
			if m.o.Changed != nil {
				if err := m.o.Changed(ctx); err != nil && ctx.Err() == nil {
					m.o.Log.Error("reloading the CA after a change by another process", "err", err)
				}
			}
			report()
		}
	}
}

// EventSource is what WatchCA reads.
type EventSource interface {
	LastPosition(ctx context.Context) (int64, error)
	Events(ctx context.Context, after int64, limit int) ([]store.Event, error)
}

// WatchCA sends on the returned channel when a CA event is committed (by
// this process or another: a CLI, a replica), until ctx is done. It reads
// the event log when wake fires (the store's commit notification; nil for
// none) and every poll.
func WatchCA(ctx context.Context, src EventSource, wake func() <-chan struct{}, poll time.Duration) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		pos, err := src.LastPosition(ctx)
		for err != nil && ctx.Err() == nil {
			time.Sleep(poll)
			pos, err = src.LastPosition(ctx)
		}
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			var w <-chan struct{}
			if wake != nil {
				w = wake()
			}
			evs, err := src.Events(ctx, pos, 1000)
			if err == nil {
				ca := false
				for _, ev := range evs {
					ca = ca || ev.Kind == store.EventCA
					pos = ev.Position
				}
				if ca {
					select {
					case out <- struct{}{}:
					default: // one pending signal is enough
					}
				}
				if len(evs) == 1000 {
					continue
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-w:
			case <-t.C:
			}
		}
	}()
	return out
}
