package calife

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

// IntermediateOptions says how to rotate the intermediate.
type IntermediateOptions struct {
	// Now activates the new intermediate right after it is published;
	// At activates it then; neither: PublishAhead after it is published.
	Now bool
	At  time.Time
	// RevokeOld revokes the old intermediate with Reason (an RFC 5280
	// CRLReason code) as the new one is activated, which is at once.
	RevokeOld bool
	Reason    int
	// KeySpec is where the new key goes: "sealed:" or a pkcs11: URI naming
	// a token; empty: where the active intermediate's key is.
	KeySpec string
	Actor   string
}

// Result is where a rotation stands after a command.
type Result struct {
	Rotation store.Rotation
	// Resumed reports that the command continued a rotation another
	// command had started (and perhaps left cut short).
	Resumed bool
}

// RotateIntermediate makes a new intermediate under the active root,
// publishes it as next and, when due, activates it; the old one retires or,
// with RevokeOld, is revoked. An intermediate rotation that is not done yet
// (cut short, or waiting for its activation time) is continued instead of
// starting another: with Now or RevokeOld, its activation is brought
// forward to now.
func (m *Manager) RotateIntermediate(ctx context.Context, o IntermediateOptions) (Result, error) {
	if o.Actor == "" {
		o.Actor = "system"
	}
	if o.RevokeOld {
		o.Now = true
		if o.Reason == 0 {
			o.Reason = 1 // keyCompromise: why else revoke an intermediate at once
		}
	}
	st, err := m.load(ctx)
	if err != nil {
		return Result{}, err
	}
	if r := st.open(store.RotateRoot); r != nil && (r.Phase == PhaseStarted || r.Phase == PhasePrepared) {
		return Result{}, fmt.Errorf("calife: root rotation %d is %s: its new intermediate is waiting to be activated with the new root; activate or roll back the root rotation first", r.ID, r.Phase)
	}
	now := m.o.Clock.Now()
	r := st.open(store.RotateIntermediate)
	resumed := r != nil
	if r == nil {
		active, ok := st.one(store.CAKindIntermediate, store.CAActive)
		if !ok {
			return Result{}, errors.New("calife: no active intermediate")
		}
		due := now.Add(m.o.Policy.PublishAhead)
		switch {
		case o.Now:
			due = now
		case !o.At.IsZero():
			due = o.At
		}
		if !o.Now && due.After(active.NotAfter) {
			return Result{}, fmt.Errorf("calife: activation at %s is after the active intermediate expires (%s); use --now or an earlier --at", fmtTime(due), fmtTime(active.NotAfter))
		}
		r = &store.Rotation{Kind: store.RotateIntermediate, Phase: PhaseStarted, Emergency: o.RevokeOld, Reason: o.Reason,
			OldKeyID: active.KeyID, KeyLabel: label("intermediate", st.nextGeneration(store.CAKindIntermediate)), DueAt: due, StartedBy: o.Actor}
		id, err := m.apply(ctx, store.CAChange{Rotation: r}, o.Actor, fmt.Sprintf("intermediate rotation: %s", PhaseStarted),
			map[string]any{"old": active.KeyID, "due": due, "emergency": o.RevokeOld, "reason": o.Reason})
		if err != nil {
			return Result{}, err
		}
		r.ID = id
		if err := m.step(ctx, "intermediate.started"); err != nil {
			return Result{}, err
		}
	} else if (o.Now && r.DueAt.After(now)) || (o.RevokeOld && !r.Emergency) {
		// Bring it forward: now, and revoking the old one if asked.
		from := r.Phase
		r.DueAt = now
		if o.RevokeOld {
			r.Emergency, r.Reason = true, o.Reason
		}
		if _, err := m.apply(ctx, store.CAChange{Rotation: r, RotationFrom: from}, o.Actor, rotSubject(r)+" (due now)",
			map[string]any{"emergency": r.Emergency, "reason": r.Reason}); err != nil {
			return Result{}, err
		}
	}
	if r.Phase == PhaseStarted {
		if err := m.publishIntermediate(ctx, st, r, o.KeySpec, o.Actor); err != nil {
			return Result{}, err
		}
	}
	if r.Phase == PhasePublished && !m.o.Clock.Now().Before(r.DueAt) {
		if err := m.activateIntermediate(ctx, r, o.Actor); err != nil {
			return Result{}, err
		}
	}
	return Result{Rotation: *r, Resumed: resumed}, nil
}

// publishIntermediate makes the new intermediate and records it as next.
func (m *Manager) publishIntermediate(ctx context.Context, st *state, r *store.Rotation, spec, actor string) error {
	old, ok := st.byKey(store.CAKindIntermediate, r.OldKeyID)
	if !ok {
		return fmt.Errorf("calife: intermediate %s of rotation %d is not recorded", r.OldKeyID, r.ID)
	}
	rootRow, ok := st.one(store.CAKindRoot, store.CAActive)
	if !ok {
		return errors.New("calife: no active root")
	}
	root, rootKey, err := m.signer(ctx, rootRow)
	if err != nil {
		return err
	}
	if spec == "" {
		spec = keySpec(old.KeyURI)
	}
	g, err := m.o.Keys.Generate(ctx, spec, keytype.Type(old.KeyType), r.KeyLabel)
	if err != nil {
		return fmt.Errorf("calife: new intermediate key: %w", err)
	}
	gen := st.nextGeneration(store.CAKindIntermediate)
	cert, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: g.Signer, Now: m.o.Clock.Now(),
		Lifetime: m.o.Policy.IntermediateLifetime, Generation: gen,
		CRLURL: m.o.URLs.CRL(rootRow.KeyID), IssuerURL: m.o.URLs.CACert(rootRow.KeyID)})
	if err != nil {
		return err
	}
	row := newRow(store.CAKindIntermediate, store.CANext, gen, cert, rootRow.KeyID, g)
	next := *r
	next.Phase, next.NewKeyID = PhasePublished, row.KeyID
	if _, err := m.apply(ctx, store.CAChange{Insert: []store.CACert{row}, Rotation: &next, RotationFrom: PhaseStarted}, actor, rotSubject(&next),
		map[string]any{"new": row.KeyID, "fingerprint": row.Fingerprint, "not_after": row.NotAfter, "due": r.DueAt, "key_storage": storage(row.KeyURI)}); err != nil {
		return err
	}
	*r = next
	return m.step(ctx, "intermediate.published")
}

// activateIntermediate makes the published intermediate active and the old
// one retiring (or revoked, in an emergency).
func (m *Manager) activateIntermediate(ctx context.Context, r *store.Rotation, actor string) error {
	st, err := m.load(ctx)
	if err != nil {
		return err
	}
	old, ok1 := st.byKey(store.CAKindIntermediate, r.OldKeyID)
	nw, ok2 := st.byKey(store.CAKindIntermediate, r.NewKeyID)
	if !ok1 || !ok2 {
		return fmt.Errorf("calife: rotation %d names intermediates that are not recorded", r.ID)
	}
	if nw.State != store.CANext {
		return fmt.Errorf("calife: the new intermediate of rotation %d is %s, not next", r.ID, nw.State)
	}
	now := m.o.Clock.Now()
	to := store.CAUpdate{Fingerprint: old.Fingerprint, From: old.State, To: store.CARetiring}
	if old.State == store.CARevoked || (old.State == store.CARetiring && !r.Emergency) {
		to = store.CAUpdate{} // already out of service (an emergency of its own)
	} else if r.Emergency {
		to = store.CAUpdate{Fingerprint: old.Fingerprint, From: old.State, To: store.CARevoked, RevokedAt: now, Reason: r.Reason}
	}
	updates := []store.CAUpdate{{Fingerprint: nw.Fingerprint, From: store.CANext, To: store.CAActive}}
	if to.Fingerprint != "" {
		updates = append(updates, to)
	}
	next := *r
	next.Phase, next.DueAt = PhaseDone, time.Time{}
	ch := store.CAChange{Update: updates, Rotation: &next, RotationFrom: PhasePublished}
	if r.Emergency {
		ch.Audit = append(ch.Audit, caRevokeEntry(now, actor, old, r.Reason))
	}
	if _, err := m.apply(ctx, ch, actor, rotSubject(&next), map[string]any{"active": nw.KeyID, "old": old.KeyID, "old_state": to.To}); err != nil {
		return err
	}
	*r = next
	return m.step(ctx, "intermediate.activated")
}
