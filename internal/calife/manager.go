package calife

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cakey"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

// Store is what the manager needs from the store.
type Store interface {
	ListCAs(ctx context.Context) ([]store.CACert, error)
	ApplyCAChange(ctx context.Context, ch store.CAChange) (int64, error)
	Rotations(ctx context.Context) ([]store.Rotation, error)
	IssuerUsage(ctx context.Context, now time.Time, except string) (map[string]store.IssuerUsage, error)
}

// Keys loads the key of a CA certificate and makes new ones (*cakey.Source).
type Keys interface {
	ca.KeySource
	Generate(ctx context.Context, spec string, kt keytype.Type, label string) (cakey.Generated, error)
}

// Phases of a rotation (store.Rotation.Phase).
const (
	PhaseStarted    = "started"     // recorded; the new CA is not made yet
	PhasePublished  = "published"   // intermediate: the new one is next, activation due at DueAt
	PhaseDone       = "done"        // intermediate: the new one is active
	PhasePrepared   = "prepared"    // root: new root, cross-certificates and intermediate are next
	PhaseActivated  = "activated"   // root: the new root and intermediate are active
	PhaseFinished   = "finished"    // root: the old root is retired
	PhaseRolledBack = "rolled-back" // root: abandoned before finish
)

// Policy is when and how the manager rotates by itself.
type Policy struct {
	// AutoRotate makes Tick start an intermediate rotation at RotateAt of
	// the active intermediate's life.
	AutoRotate bool
	RotateAt   float64
	// PublishAhead is how long a new intermediate is published as next
	// before it signs, when no time is given.
	PublishAhead time.Duration
	// IntermediateLifetime and RootLifetime are the lives of new CAs.
	IntermediateLifetime time.Duration
	RootLifetime         time.Duration
	// RetireGrace keeps a retiring intermediate answering after its last
	// certificate expired: one CRL validity, so each revocation appears on
	// one CRL issued after the certificate expired (RFC 5280 section 3.3).
	RetireGrace time.Duration
	// WarnBefore: Status warns about CAs that expire sooner.
	WarnBefore time.Duration
	// ClientLifetime is how long leaves live: Status warns when the active
	// intermediate ends sooner (leaves issued now are cut short).
	ClientLifetime time.Duration
}

// Policy defaults.
const (
	DefaultRotateAt     = 2.0 / 3
	DefaultPublishAhead = 24 * time.Hour
	DefaultWarnBefore   = 30 * 24 * time.Hour
)

// DefaultPolicy is the policy when the config says nothing.
func DefaultPolicy() Policy {
	return Policy{AutoRotate: true, RotateAt: DefaultRotateAt, PublishAhead: DefaultPublishAhead,
		IntermediateLifetime: ca.DefaultIntermediateLifetime, RootLifetime: ca.DefaultRootLifetime,
		RetireGrace: time.Hour, WarnBefore: DefaultWarnBefore, ClientLifetime: ca.DefaultClientLifetime}
}

// Options configures a Manager.
type Options struct {
	Store       Store
	Keys        Keys
	URLs        ca.URLs
	TrustDomain string
	Clock       clock.Clock
	Policy      Policy
	Log         *slog.Logger
	// Changed is called after each change the manager committed, to make
	// the running CA service use the new state.
	Changed func(ctx context.Context) error
	// AfterStep, if set, is called after each durable step with its name
	// ("intermediate.started", "root.prepared", ...): where a test kills
	// the process.
	AfterStep func(step string)
}

// Manager rotates the CA. Its operations may run in several processes at
// once (a CLI and server replicas): every step is a compare-and-set in the
// store, and the loser of a race reads the winner's state.
type Manager struct{ o Options }

// New returns a Manager.
func New(o Options) (*Manager, error) {
	if o.Store == nil || o.Keys == nil || o.Clock == nil || o.TrustDomain == "" {
		return nil, errors.New("calife: needs a store, keys, a clock and a trust domain")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	def := DefaultPolicy()
	p := &o.Policy
	if p.RotateAt <= 0 || p.RotateAt >= 1 {
		p.RotateAt = def.RotateAt
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&p.PublishAhead, def.PublishAhead}, {&p.IntermediateLifetime, def.IntermediateLifetime}, {&p.RootLifetime, def.RootLifetime},
		{&p.RetireGrace, def.RetireGrace}, {&p.WarnBefore, def.WarnBefore}, {&p.ClientLifetime, def.ClientLifetime},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	return &Manager{o: o}, nil
}

// signerIdentity is the delegated OCSP signer (certstatus.SignerPath):
// renewed by every intermediate that answers OCSP, it is not one of the
// certificates whose expiry lets an intermediate retire.
func (m *Manager) signerIdentity() string {
	id, err := identity.New(m.o.TrustDomain, "/server/ocsp-signer")
	if err != nil {
		return ""
	}
	return id.String()
}

// state is one read of the CA rows and rotations.
type state struct {
	rows []store.CACert
	rots []store.Rotation
}

func (m *Manager) load(ctx context.Context) (*state, error) {
	rows, err := m.o.Store.ListCAs(ctx)
	if err != nil {
		return nil, fmt.Errorf("calife: %w", err)
	}
	rots, err := m.o.Store.Rotations(ctx)
	if err != nil {
		return nil, fmt.Errorf("calife: %w", err)
	}
	return &state{rows: rows, rots: rots}, nil
}

func (s *state) one(kind, st string) (store.CACert, bool) {
	for _, c := range s.rows {
		if c.Kind == kind && c.State == st {
			return c, true
		}
	}
	return store.CACert{}, false
}

func (s *state) byKey(kind, keyID string) (store.CACert, bool) {
	for _, c := range s.rows {
		if c.Kind == kind && c.KeyID == keyID {
			return c, true
		}
	}
	return store.CACert{}, false
}

func (s *state) nextGeneration(kind string) int {
	g := 0
	for _, c := range s.rows {
		if c.Kind == kind {
			g = max(g, c.Generation)
		}
	}
	return g + 1
}

// open returns the unfinished rotation of kind, if any.
func (s *state) open(kind string) *store.Rotation {
	for i := len(s.rots) - 1; i >= 0; i-- {
		r := s.rots[i]
		if r.Kind != kind {
			continue
		}
		switch r.Phase {
		case PhaseDone, PhaseFinished, PhaseRolledBack:
			return nil
		}
		return &r
	}
	return nil
}

// ErrNoRotation is returned by a phase command when no rotation is in the
// phase it continues.
var ErrNoRotation = errors.New("calife: no rotation to continue")

// step records that a durable step happened: the hook first (a test
// kills the process right after the commit), then the running service
// follows.
func (m *Manager) step(ctx context.Context, name string) error {
	m.o.Log.Info("CA rotation step", "step", name)
	if m.o.AfterStep != nil {
		m.o.AfterStep(name)
	}
	if m.o.Changed != nil {
		if err := m.o.Changed(ctx); err != nil {
			return err
		}
	}
	return nil
}

// apply commits ch with an audit record of the step.
func (m *Manager) apply(ctx context.Context, ch store.CAChange, actor, subject string, detail map[string]any) (int64, error) {
	d, _ := json.Marshal(detail)
	ch.Now = m.o.Clock.Now()
	ch.Audit = append(ch.Audit, audit.Entry{Time: ch.Now, Actor: actor, Action: audit.ActionCARotate, Subject: subject, Detail: string(d)})
	id, err := m.o.Store.ApplyCAChange(ctx, ch)
	if err != nil {
		return 0, fmt.Errorf("calife: %w", err)
	}
	return id, nil
}

// label names a new key in a PKCS#11 token: unique per rotation, so a
// rotation cut short finds the key it made and no other.
func label(kind string, gen int) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("certgate-%s-%d-%s", kind, gen, hex.EncodeToString(b))
}

// keySpec is where a new key goes by default: in the token the given key
// is in, else sealed into the store.
func keySpec(keyURI string) string {
	if strings.HasPrefix(keyURI, cakey.SchemePKCS11) {
		if u, err := cakey.ParseURI(keyURI); err == nil {
			return u.TokenURI().String()
		}
	}
	return cakey.SchemeSealed
}

// signer loads the key of row and parses its certificate.
func (m *Manager) signer(ctx context.Context, row store.CACert) (*x509.Certificate, crypto.Signer, error) {
	cert, err := x509.ParseCertificate(row.DER)
	if err != nil {
		return nil, nil, fmt.Errorf("calife: %s %d: %w", row.Kind, row.Generation, err)
	}
	key, err := m.o.Keys.Key(ctx, row)
	if err != nil {
		return nil, nil, fmt.Errorf("calife: key of %s %d: %w", row.Kind, row.Generation, err)
	}
	return cert, key, nil
}

// newRow is the record of a CA certificate made by a rotation.
func newRow(kind, st string, gen int, cert *x509.Certificate, issuerKeyID string, g cakey.Generated) store.CACert {
	kt, _ := keytype.Of(cert.PublicKey)
	return store.CACert{
		Fingerprint: ca.Fingerprint(cert), Kind: kind, KeyID: ca.KeyID(cert), IssuerKeyID: issuerKeyID, Generation: gen, State: st,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, KeyType: string(kt), KeyURI: g.URI, SealedKey: g.Sealed, DER: cert.Raw,
	}
}

func rotSubject(r *store.Rotation) string {
	return fmt.Sprintf("%s rotation %d: %s", r.Kind, r.ID, r.Phase)
}

// usage is the issuer usage without the delegated OCSP signers.
func (m *Manager) usage(ctx context.Context, now time.Time) (map[string]store.IssuerUsage, error) {
	u, err := m.o.Store.IssuerUsage(ctx, now, m.signerIdentity())
	if err != nil {
		return nil, fmt.Errorf("calife: %w", err)
	}
	return u, nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func storage(uri string) string { return cakey.Storage(uri) }

// caRevokeEntry is the audit record of revoking a CA certificate.
func caRevokeEntry(now time.Time, actor string, c store.CACert, reason int) audit.Entry {
	d, _ := json.Marshal(map[string]any{"kind": c.Kind, "generation": c.Generation, "key_id": c.KeyID, "reason": ca.ReasonName(reason)})
	return audit.Entry{Time: now, Actor: actor, Action: audit.ActionCARevoke, Subject: c.Fingerprint, Detail: string(d)}
}
