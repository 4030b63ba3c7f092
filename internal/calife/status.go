package calife

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certgate/certgate/internal/cakey"
	"github.com/certgate/certgate/internal/store"
)

// CAInfo is one CA certificate as Status reports it.
type CAInfo struct {
	Kind        string    `json:"kind"`
	Generation  int       `json:"generation"`
	State       string    `json:"state"`
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	KeyID       string    `json:"key_id"`
	Fingerprint string    `json:"fingerprint_sha256"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	KeyType     string    `json:"key_type"`
	KeyStorage  string    `json:"key_storage"` // file, sealed, pkcs11; "" for a cross-certificate
	KeyLocation string    `json:"key_location,omitempty"`
	// Live is how many unexpired, unrevoked certificates it issued (not
	// counting delegated OCSP signers); LastNotAfter the latest expiry of
	// any.
	Live         int64     `json:"live_certificates"`
	LastNotAfter time.Time `json:"last_not_after,omitzero"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	Reason       int       `json:"reason,omitempty"`
}

// RotationInfo is a rotation as Status reports it.
type RotationInfo struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	Phase     string    `json:"phase"`
	Emergency bool      `json:"emergency,omitempty"`
	DueAt     time.Time `json:"due_at,omitzero"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
	StartedBy string    `json:"started_by"`
	Open      bool      `json:"open"`
	// Explain says what happened and what moves it on.
	Explain string `json:"explain"`
}

// Report is where the CA stands.
type Report struct {
	Now       time.Time      `json:"now"`
	CAs       []CAInfo       `json:"cas"`
	Rotations []RotationInfo `json:"rotations"`
	Warnings  []string       `json:"warnings"`
}

// Status reads the CA state and explains it: every CA certificate with its
// state, validity, key and what it issued; the open rotations (and the
// last finished ones) with what comes next; and warnings.
func (m *Manager) Status(ctx context.Context) (Report, error) {
	st, err := m.load(ctx)
	if err != nil {
		return Report{}, err
	}
	now := m.o.Clock.Now()
	u, err := m.usage(ctx, now)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Now: now, CAs: []CAInfo{}, Rotations: []RotationInfo{}, Warnings: []string{}}
	warn := func(format string, a ...any) { rep.Warnings = append(rep.Warnings, fmt.Sprintf(format, a...)) }
	order := map[string]int{store.CAKindRoot: 0, store.CAKindCross: 1, store.CAKindIntermediate: 2}
	rows := slices.Clone(st.rows)
	slices.SortStableFunc(rows, func(a, b store.CACert) int {
		if order[a.Kind] != order[b.Kind] {
			return order[a.Kind] - order[b.Kind]
		}
		return a.Generation - b.Generation
	})
	for _, c := range rows {
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			return Report{}, fmt.Errorf("calife: CA certificate %s: %w", c.Fingerprint, err)
		}
		info := CAInfo{Kind: c.Kind, Generation: c.Generation, State: c.State, Subject: cert.Subject.CommonName, Issuer: cert.Issuer.CommonName,
			KeyID: c.KeyID, Fingerprint: c.Fingerprint, NotBefore: c.NotBefore, NotAfter: c.NotAfter, KeyType: c.KeyType,
			KeyStorage: cakey.Storage(c.KeyURI), KeyLocation: keyLocation(c.KeyURI), Live: u[c.KeyID].Live,
			LastNotAfter: u[c.KeyID].LastNotAfter, RevokedAt: c.RevokedAt, Reason: c.Reason}
		if c.Kind == store.CAKindCross {
			info.Live, info.LastNotAfter = 0, time.Time{}
		}
		rep.CAs = append(rep.CAs, info)
		inService := c.State == store.CAActive || c.State == store.CANext || c.State == store.CARetiring
		if !inService {
			continue
		}
		switch left := c.NotAfter.Sub(now); {
		case left <= 0:
			warn("%s %d (%s) is %s but expired at %s", c.Kind, c.Generation, short(c.KeyID), c.State, fmtTime(c.NotAfter))
		case left < m.o.Policy.WarnBefore:
			warn("%s %d (%s, %s) expires in %s, at %s", c.Kind, c.Generation, short(c.KeyID), c.State, days(left), fmtTime(c.NotAfter))
		}
		if l := u[c.KeyID].LastNotAfter; c.Kind == store.CAKindIntermediate && l.After(c.NotAfter) {
			warn("intermediate %d (%s) issued a certificate that outlives it (until %s, the intermediate ends %s)", c.Generation, short(c.KeyID), fmtTime(l), fmtTime(c.NotAfter))
		}
		if c.Kind == store.CAKindIntermediate && c.State == store.CAActive {
			if c.NotAfter.Sub(now) < m.o.Policy.ClientLifetime {
				warn("the active intermediate ends in %s, before a certificate issued now would (%s): certificates are cut short at its expiry; rotate it (certgate ca rotate-intermediate --now)",
					c.NotAfter.Sub(now).Round(time.Minute), m.o.Policy.ClientLifetime)
			}
			point := c.NotBefore.Add(time.Duration(float64(c.NotAfter.Sub(c.NotBefore)) * m.o.Policy.RotateAt))
			if !m.o.Policy.AutoRotate && now.After(point) && st.open(store.RotateIntermediate) == nil {
				warn("the active intermediate is past %.0f%% of its life and automatic rotation is off: run certgate ca rotate-intermediate", m.o.Policy.RotateAt*100)
			}
		}
		if c.Kind == store.CAKindRoot && c.State == store.CAActive && c.NotAfter.Sub(now) < m.o.Policy.IntermediateLifetime && st.open(store.RotateRoot) == nil {
			warn("the active root ends in %s, sooner than a new intermediate would live: new intermediates are cut short; rotate the root (certgate ca rotate-root prepare)", days(c.NotAfter.Sub(now)))
		}
	}
	lastClosed := map[string]int64{}
	for _, r := range st.rots {
		if open := st.open(r.Kind); open == nil || open.ID != r.ID {
			lastClosed[r.Kind] = r.ID
		}
	}
	for _, r := range st.rots {
		open := st.open(r.Kind)
		isOpen := open != nil && open.ID == r.ID
		if !isOpen && lastClosed[r.Kind] != r.ID {
			continue // older closed rotations: the audit log has them
		}
		ri := RotationInfo{ID: r.ID, Kind: r.Kind, Phase: r.Phase, Emergency: r.Emergency, DueAt: r.DueAt, StartedAt: r.StartedAt,
			UpdatedAt: r.UpdatedAt, StartedBy: r.StartedBy, Open: isOpen, Explain: m.explain(&r, now)}
		rep.Rotations = append(rep.Rotations, ri)
		if isOpen && !r.DueAt.IsZero() && now.Sub(r.DueAt) > 2*stuckAfter {
			warn("%s rotation %d was due at %s and is still %s: is a server running? %s", r.Kind, r.ID, fmtTime(r.DueAt), r.Phase, nextCommand(&r))
		}
	}
	return rep, nil
}

// explain says in words what a rotation did and what comes next.
func (m *Manager) explain(r *store.Rotation, now time.Time) string {
	switch r.Phase {
	case PhaseDone:
		return "done: the new intermediate signs; the old one answers for what it issued until that expires"
	case PhaseFinished:
		return "finished: the old root is retired and no longer in bundles"
	case PhaseRolledBack:
		return "rolled back: the new root was abandoned"
	case PhaseStarted:
		if now.Sub(r.UpdatedAt) >= stuckAfter {
			return "cut short after it was recorded and before its new CA was made (the process stopped); nothing relies on it yet. " + nextCommand(r) + " (a running server continues it by itself)"
		}
	}
	return nextCommand(r)
}

func keyLocation(uri string) string {
	switch {
	case strings.HasPrefix(uri, cakey.SchemeFile):
		return strings.TrimPrefix(uri, cakey.SchemeFile)
	case strings.HasPrefix(uri, cakey.SchemePKCS11):
		u, err := cakey.ParseURI(uri)
		if err != nil {
			return uri
		}
		// Where the key is, not how to log in.
		u.PinSource, u.PinValue = "", ""
		return u.String()
	case uri == cakey.SchemeSealed:
		return "in the store, encrypted with the CA passphrase"
	}
	return ""
}

func short(keyID string) string {
	if len(keyID) > 12 {
		return keyID[:12]
	}
	return keyID
}

func days(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}

// Write prints the report for people.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "KIND\tGEN\tSTATE\tKEY ID\tNOT AFTER\tKEY\tLIVE\tSUBJECT\n")
	for _, c := range r.CAs {
		key := c.KeyType
		if c.KeyStorage != "" {
			key += " (" + c.KeyStorage + ")"
		}
		live := fmt.Sprint(c.Live)
		if c.Kind == store.CAKindCross {
			live = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Kind, c.Generation, c.State, short(c.KeyID), fmtTime(c.NotAfter), key, live, c.Subject)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.CAs {
		fmt.Fprintf(w, "\n%s %d (%s): %s, valid %s to %s\n  subject %q, issuer %q\n  key %s", c.Kind, c.Generation, c.State, c.KeyID,
			fmtTime(c.NotBefore), fmtTime(c.NotAfter), c.Subject, c.Issuer, c.KeyType)
		if c.KeyLocation != "" {
			fmt.Fprintf(w, " at %s", c.KeyLocation)
		}
		fmt.Fprintf(w, "\n  fingerprint SHA-256 %s\n", c.Fingerprint)
		if c.Kind != store.CAKindCross {
			fmt.Fprintf(w, "  %d live certificates", c.Live)
			if !c.LastNotAfter.IsZero() {
				fmt.Fprintf(w, ", the last expires %s", fmtTime(c.LastNotAfter))
			}
			fmt.Fprintln(w)
		}
		if !c.RevokedAt.IsZero() {
			fmt.Fprintf(w, "  revoked at %s, reason %d\n", fmtTime(c.RevokedAt), c.Reason)
		}
	}
	if len(r.Rotations) > 0 {
		fmt.Fprintln(w, "\nrotations:")
		for _, ro := range r.Rotations {
			kind := ro.Kind
			if ro.Emergency {
				kind += " (emergency)"
			}
			fmt.Fprintf(w, "  %d %s: %s, started %s by %s: %s\n", ro.ID, kind, ro.Phase, fmtTime(ro.StartedAt), ro.StartedBy, ro.Explain)
		}
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(w, "\nwarnings:")
		for _, wn := range r.Warnings {
			fmt.Fprintf(w, "  ! %s\n", wn)
		}
	} else {
		fmt.Fprintln(w, "\nno warnings")
	}
	return nil
}
