package calife

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cakey"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

// PrepareOptions says how to prepare a root rotation.
type PrepareOptions struct {
	// ActivateAt, if set, is when the schedule (Tick) activates the new
	// root; zero: only the activate command does.
	ActivateAt time.Time
	// KeySpec is where the new keys go (see IntermediateOptions.KeySpec);
	// empty: where the active root's key is.
	KeySpec string
	Actor   string
}

// PrepareRoot is the first phase of a root rotation: a new root, the two
// cross-certificates (the new root certified by the old, the old by the
// new) and a new intermediate under the new root, all next, so every
// bundle carries both roots before anything is signed under the new one.
// A preparation cut short is continued.
func (m *Manager) PrepareRoot(ctx context.Context, o PrepareOptions) (Result, error) {
	if o.Actor == "" {
		o.Actor = "system"
	}
	st, err := m.load(ctx)
	if err != nil {
		return Result{}, err
	}
	if ir := st.open(store.RotateIntermediate); ir != nil {
		return Result{}, fmt.Errorf("calife: intermediate rotation %d is %s; let it finish (certgate ca rotate-intermediate --now) before rotating the root", ir.ID, ir.Phase)
	}
	r := st.open(store.RotateRoot)
	resumed := r != nil
	if r != nil && r.Phase != PhaseStarted {
		return Result{Rotation: *r}, fmt.Errorf("calife: root rotation %d is already %s; %s", r.ID, r.Phase, nextCommand(r))
	}
	if r == nil {
		old, ok := st.one(store.CAKindRoot, store.CAActive)
		if !ok {
			return Result{}, errors.New("calife: no active root")
		}
		r = &store.Rotation{Kind: store.RotateRoot, Phase: PhaseStarted, OldKeyID: old.KeyID,
			KeyLabel: label("root", st.nextGeneration(store.CAKindRoot)), DueAt: o.ActivateAt, StartedBy: o.Actor}
		id, err := m.apply(ctx, store.CAChange{Rotation: r}, o.Actor, "root rotation: "+PhaseStarted,
			map[string]any{"old": old.KeyID, "activate_at": o.ActivateAt})
		if err != nil {
			return Result{}, err
		}
		r.ID = id
		if err := m.step(ctx, "root.started"); err != nil {
			return Result{}, err
		}
	}
	oldRow, ok := st.byKey(store.CAKindRoot, r.OldKeyID)
	if !ok {
		return Result{}, fmt.Errorf("calife: root %s of rotation %d is not recorded", r.OldKeyID, r.ID)
	}
	oldRoot, oldKey, err := m.signer(ctx, oldRow)
	if err != nil {
		return Result{}, err
	}
	spec := o.KeySpec
	if spec == "" {
		spec = keySpec(oldRow.KeyURI)
	}
	kt := keytype.Type(oldRow.KeyType)
	rootG, err := m.o.Keys.Generate(ctx, spec, kt, r.KeyLabel)
	if err != nil {
		return Result{}, fmt.Errorf("calife: new root key: %w", err)
	}
	interG, err := m.o.Keys.Generate(ctx, spec, kt, r.KeyLabel+"-intermediate")
	if err != nil {
		return Result{}, fmt.Errorf("calife: new intermediate key: %w", err)
	}
	now := m.o.Clock.Now()
	rootGen, interGen := st.nextGeneration(store.CAKindRoot), st.nextGeneration(store.CAKindIntermediate)
	newRoot, err := ca.CreateRoot(ca.RootOptions{TrustDomain: m.o.TrustDomain, Key: rootG.Signer, Now: now, Lifetime: m.o.Policy.RootLifetime, Generation: rootGen})
	if err != nil {
		return Result{}, err
	}
	newID, oldID := ca.KeyID(newRoot), oldRow.KeyID
	up, err := ca.CreateCross(ca.CrossOptions{Subject: newRoot, Issuer: oldRoot, IssuerKey: oldKey, Now: now,
		CRLURL: m.o.URLs.CRL(oldID), IssuerURL: m.o.URLs.CACert(oldID)})
	if err != nil {
		return Result{}, err
	}
	down, err := ca.CreateCross(ca.CrossOptions{Subject: oldRoot, Issuer: newRoot, IssuerKey: rootG.Signer, Now: now,
		CRLURL: m.o.URLs.CRL(newID), IssuerURL: m.o.URLs.CACert(newID)})
	if err != nil {
		return Result{}, err
	}
	inter, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: newRoot, RootKey: rootG.Signer, Key: interG.Signer, Now: now,
		Lifetime: m.o.Policy.IntermediateLifetime, Generation: interGen, CRLURL: m.o.URLs.CRL(newID), IssuerURL: m.o.URLs.CACert(newID)})
	if err != nil {
		return Result{}, err
	}
	rows := []store.CACert{
		newRow(store.CAKindRoot, store.CANext, rootGen, newRoot, newID, rootG),
		newRow(store.CAKindCross, store.CANext, rootGen, up, oldID, cakey.Generated{}),
		newRow(store.CAKindCross, store.CANext, oldRow.Generation, down, newID, cakey.Generated{}),
		newRow(store.CAKindIntermediate, store.CANext, interGen, inter, newID, interG),
	}
	next := *r
	next.Phase, next.NewKeyID, next.NewIntermediate = PhasePrepared, newID, ca.KeyID(inter)
	if _, err := m.apply(ctx, store.CAChange{Insert: rows, Rotation: &next, RotationFrom: PhaseStarted}, o.Actor, rotSubject(&next),
		map[string]any{"new_root": newID, "new_root_fingerprint": rows[0].Fingerprint, "new_intermediate": next.NewIntermediate,
			"cross_new_by_old": rows[1].Fingerprint, "cross_old_by_new": rows[2].Fingerprint, "activate_at": next.DueAt}); err != nil {
		return Result{}, err
	}
	*r = next
	if err := m.step(ctx, "root.prepared"); err != nil {
		return Result{}, err
	}
	return Result{Rotation: *r, Resumed: resumed}, nil
}

// rootParts are the CA certificates of a root rotation.
type rootParts struct {
	oldRoot, newRoot, newInter store.CACert
	oldInters                  []store.CACert // intermediates under the old root
	crosses                    []store.CACert // between the two roots
}

func (st *state) parts(r *store.Rotation) (rootParts, error) {
	var p rootParts
	var ok1, ok2, ok3 bool
	p.oldRoot, ok1 = st.byKey(store.CAKindRoot, r.OldKeyID)
	p.newRoot, ok2 = st.byKey(store.CAKindRoot, r.NewKeyID)
	p.newInter, ok3 = st.byKey(store.CAKindIntermediate, r.NewIntermediate)
	if !ok1 || !ok2 || !ok3 {
		return p, fmt.Errorf("calife: root rotation %d names CA certificates that are not recorded", r.ID)
	}
	for _, c := range st.rows {
		switch {
		case c.Kind == store.CAKindIntermediate && c.IssuerKeyID == r.OldKeyID:
			p.oldInters = append(p.oldInters, c)
		case c.Kind == store.CAKindCross && (c.KeyID == r.NewKeyID && c.IssuerKeyID == r.OldKeyID || c.KeyID == r.OldKeyID && c.IssuerKeyID == r.NewKeyID):
			p.crosses = append(p.crosses, c)
		}
	}
	return p, nil
}

// openRoot returns the open root rotation, which must be in phase.
func (m *Manager) openRoot(st *state, phase, command string) (*store.Rotation, error) {
	r := st.open(store.RotateRoot)
	if r == nil {
		return nil, fmt.Errorf("%w: no root rotation is open (certgate ca rotate-root prepare starts one)", ErrNoRotation)
	}
	if r.Phase != phase {
		return nil, fmt.Errorf("calife: cannot %s root rotation %d: it is %s, not %s; %s", command, r.ID, r.Phase, phase, nextCommand(r))
	}
	return r, nil
}

// ActivateRoot is the second phase: the new intermediate (under the new
// root) signs from now on, with the cross-certificate in its chain; the new
// root is active and the old one retiring, as is the old intermediate.
// finishAt, if set, is when the schedule finishes the rotation; zero
// schedules it for when the last certificate under the old root expires.
func (m *Manager) ActivateRoot(ctx context.Context, actor string, finishAt time.Time) (Result, error) {
	st, err := m.load(ctx)
	if err != nil {
		return Result{}, err
	}
	r, err := m.openRoot(st, PhasePrepared, "activate")
	if err != nil {
		return Result{}, err
	}
	p, err := st.parts(r)
	if err != nil {
		return Result{}, err
	}
	var ups []store.CAUpdate
	ups = append(ups, store.CAUpdate{Fingerprint: p.newInter.Fingerprint, From: p.newInter.State, To: store.CAActive})
	for _, c := range p.oldInters {
		if c.State == store.CAActive {
			ups = append(ups, store.CAUpdate{Fingerprint: c.Fingerprint, From: store.CAActive, To: store.CARetiring})
		}
	}
	ups = append(ups,
		store.CAUpdate{Fingerprint: p.newRoot.Fingerprint, From: store.CANext, To: store.CAActive},
		store.CAUpdate{Fingerprint: p.oldRoot.Fingerprint, From: store.CAActive, To: store.CARetiring})
	for _, c := range p.crosses {
		if c.State == store.CANext {
			ups = append(ups, store.CAUpdate{Fingerprint: c.Fingerprint, From: store.CANext, To: store.CAActive})
		}
	}
	if finishAt.IsZero() {
		// At the latest, everything under the old root has expired when
		// the last leaf its intermediates can have issued expires: the
		// longest leaf life from now (the old intermediate signs no more).
		finishAt = m.o.Clock.Now().Add(m.o.Policy.ClientLifetime + m.o.Policy.RetireGrace)
		if u, err := m.usage(ctx, m.o.Clock.Now()); err == nil {
			last := time.Time{}
			for _, c := range p.oldInters {
				last = maxTime(last, u[c.KeyID].LastLive)
			}
			if !last.IsZero() {
				finishAt = maxTime(last, m.o.Clock.Now()).Add(m.o.Policy.RetireGrace)
			}
		}
	}
	next := *r
	next.Phase, next.DueAt = PhaseActivated, finishAt
	if _, err := m.apply(ctx, store.CAChange{Update: ups, Rotation: &next, RotationFrom: PhasePrepared}, actor, rotSubject(&next),
		map[string]any{"active_root": p.newRoot.KeyID, "active_intermediate": p.newInter.KeyID, "finish_at": finishAt}); err != nil {
		return Result{}, err
	}
	if err := m.step(ctx, "root.activated"); err != nil {
		return Result{}, err
	}
	return Result{Rotation: next}, nil
}

// StillValidError is returned by FinishRoot while certificates under the
// old root have not all expired.
type StillValidError struct {
	Live  int64
	Until time.Time
}

func (e *StillValidError) Error() string {
	return fmt.Sprintf("calife: %d certificates under the old root are still valid, the last until %s; the old root can be dropped after that", e.Live, fmtTime(e.Until))
}

// FinishRoot is the final phase: once nothing under the old root is valid,
// the old root, its intermediates and the cross-certificates are retired
// and bundles carry the new root only. It cannot be rolled back.
func (m *Manager) FinishRoot(ctx context.Context, actor string) (Result, error) {
	st, err := m.load(ctx)
	if err != nil {
		return Result{}, err
	}
	r, err := m.openRoot(st, PhaseActivated, "finish")
	if err != nil {
		return Result{}, err
	}
	p, err := st.parts(r)
	if err != nil {
		return Result{}, err
	}
	now := m.o.Clock.Now()
	u, err := m.usage(ctx, now)
	if err != nil {
		return Result{}, err
	}
	var live int64
	var until time.Time
	for _, c := range p.oldInters {
		// Revoked certificates do not hold the old root: once it is out of
		// every bundle nothing under it verifies anyway.
		live += u[c.KeyID].Live
		if l := u[c.KeyID].LastLive; l.After(now) {
			until = maxTime(until, l)
		}
		if c.State == store.CAActive || c.State == store.CANext {
			return Result{}, fmt.Errorf("calife: intermediate %d under the old root is %s", c.Generation, c.State)
		}
	}
	if !until.IsZero() {
		return Result{Rotation: *r}, &StillValidError{Live: live, Until: until}
	}
	ups := []store.CAUpdate{{Fingerprint: p.oldRoot.Fingerprint, From: store.CARetiring, To: store.CARetired}}
	for _, c := range p.oldInters {
		if c.State == store.CARetiring {
			ups = append(ups, store.CAUpdate{Fingerprint: c.Fingerprint, From: store.CARetiring, To: store.CARetired})
		}
	}
	for _, c := range p.crosses {
		if c.State == store.CAActive {
			ups = append(ups, store.CAUpdate{Fingerprint: c.Fingerprint, From: store.CAActive, To: store.CARetired})
		}
	}
	next := *r
	next.Phase, next.DueAt = PhaseFinished, time.Time{}
	if _, err := m.apply(ctx, store.CAChange{Update: ups, Rotation: &next, RotationFrom: PhaseActivated}, actor, rotSubject(&next),
		map[string]any{"retired_root": p.oldRoot.KeyID}); err != nil {
		return Result{}, err
	}
	if err := m.step(ctx, "root.finished"); err != nil {
		return Result{}, err
	}
	return Result{Rotation: next}, nil
}

// RollbackRoot undoes the last phase of the open root rotation: activated
// goes back to prepared (the old root and intermediate are active again,
// the new intermediate retiring; bundles keep both roots), prepared (or a
// start cut short) is abandoned, once nothing under the new root is valid.
func (m *Manager) RollbackRoot(ctx context.Context, actor string) (Result, error) {
	st, err := m.load(ctx)
	if err != nil {
		return Result{}, err
	}
	r := st.open(store.RotateRoot)
	if r == nil {
		return Result{}, fmt.Errorf("%w: no root rotation is open; a finished one cannot be rolled back", ErrNoRotation)
	}
	next := *r
	var ups []store.CAUpdate
	switch r.Phase {
	case PhaseStarted:
		next.Phase = PhaseRolledBack
	case PhasePrepared:
		p, err := st.parts(r)
		if err != nil {
			return Result{}, err
		}
		now := m.o.Clock.Now()
		u, err := m.usage(ctx, now)
		if err != nil {
			return Result{}, err
		}
		if l := u[p.newInter.KeyID].LastLive; l.After(now) {
			return Result{}, fmt.Errorf("calife: %d certificates under the new root are valid until %s; it can be abandoned after that",
				u[p.newInter.KeyID].Live, fmtTime(l))
		}
		for _, c := range append([]store.CACert{p.newRoot, p.newInter}, p.crosses...) {
			if c.State == store.CANext || c.State == store.CARetiring {
				ups = append(ups, store.CAUpdate{Fingerprint: c.Fingerprint, From: c.State, To: store.CAAbandoned})
			}
		}
		next.Phase, next.DueAt = PhaseRolledBack, time.Time{}
	case PhaseActivated:
		p, err := st.parts(r)
		if err != nil {
			return Result{}, err
		}
		// The old root's latest intermediate signs again.
		var back store.CACert
		for _, c := range p.oldInters {
			if c.State == store.CARetiring && c.Generation > back.Generation {
				back = c
			}
		}
		if back.Fingerprint == "" {
			return Result{}, errors.New("calife: no intermediate under the old root can sign again (none is retiring)")
		}
		ups = append(ups,
			store.CAUpdate{Fingerprint: back.Fingerprint, From: store.CARetiring, To: store.CAActive},
			store.CAUpdate{Fingerprint: p.newInter.Fingerprint, From: store.CAActive, To: store.CARetiring},
			store.CAUpdate{Fingerprint: p.oldRoot.Fingerprint, From: store.CARetiring, To: store.CAActive},
			store.CAUpdate{Fingerprint: p.newRoot.Fingerprint, From: store.CAActive, To: store.CANext})
		for _, c := range p.crosses {
			if c.State == store.CAActive {
				ups = append(ups, store.CAUpdate{Fingerprint: c.Fingerprint, From: store.CAActive, To: store.CANext})
			}
		}
		next.Phase, next.DueAt = PhasePrepared, time.Time{}
	default:
		return Result{}, fmt.Errorf("calife: root rotation %d is %s and cannot be rolled back", r.ID, r.Phase)
	}
	if _, err := m.apply(ctx, store.CAChange{Update: ups, Rotation: &next, RotationFrom: r.Phase}, actor,
		fmt.Sprintf("root rotation %d: rolled back from %s to %s", r.ID, r.Phase, next.Phase), map[string]any{"from": r.Phase, "to": next.Phase}); err != nil {
		return Result{}, err
	}
	if err := m.step(ctx, "root.rolledback"); err != nil {
		return Result{}, err
	}
	return Result{Rotation: next}, nil
}

// nextCommand says what moves rotation r on.
func nextCommand(r *store.Rotation) string {
	when := ""
	if !r.DueAt.IsZero() {
		when = " (scheduled at " + fmtTime(r.DueAt) + ")"
	}
	switch {
	case r.Kind == store.RotateIntermediate && r.Phase == PhaseStarted:
		return "the new intermediate is not made yet: run certgate ca rotate-intermediate to continue"
	case r.Kind == store.RotateIntermediate && r.Phase == PhasePublished:
		return "the new intermediate is published, not signing yet: it activates" + when + ", or now with certgate ca rotate-intermediate --now"
	case r.Kind == store.RotateRoot && r.Phase == PhaseStarted:
		return "the new root is not made yet: run certgate ca rotate-root prepare to continue, or certgate ca rotate-root rollback"
	case r.Kind == store.RotateRoot && r.Phase == PhasePrepared:
		return "bundles carry both roots; next: certgate ca rotate-root activate" + when + ", or rollback"
	case r.Kind == store.RotateRoot && r.Phase == PhaseActivated:
		return "the new root signs; next: certgate ca rotate-root finish once nothing under the old root is valid" + when + ", or rollback"
	}
	return "nothing to do"
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
