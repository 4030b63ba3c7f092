package calife_test

import (
	"context"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/calife"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

var pass = []byte("calife test passphrase")

type fixture struct {
	t     *testing.T
	ctx   context.Context
	clock *clock.Fake
	in    *cadir.Installation
	m     *calife.Manager
	steps []string
}

func newFixture(t *testing.T, caKey string) *fixture {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	dir := filepath.Join(t.TempDir(), "ca")
	if err := cadir.Init(ctx, cadir.InitOptions{Dir: dir, TrustDomain: "example.org", Passphrase: pass, Clock: clk, CAKey: caKey}); err != nil {
		t.Fatal(err)
	}
	in, err := cadir.Open(ctx, dir, pass, clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	f := &fixture{t: t, ctx: ctx, clock: clk, in: in}
	f.m, err = calife.New(calife.Options{Store: in.Store, Keys: in.Keys, URLs: in.Hierarchy.URLs, TrustDomain: "example.org", Clock: clk,
		Policy: calife.DefaultPolicy(),
		Changed: func(ctx context.Context) error {
			// What the ca commands do after each step.
			if _, err := in.Reload(ctx); err != nil {
				return err
			}
			_, err := in.RefreshTrust(ctx)
			return err
		},
		AfterStep: func(s string) { f.steps = append(f.steps, s) }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// leaf issues a client certificate with the CA service as it stands.
func (f *fixture) leaf(path string) ca.Issued {
	f.t.Helper()
	key, _ := keytype.Generate(keytype.ECDSAP256)
	iss, err := f.in.Authority.IssueDirect(f.ctx, ca.Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org" + path)},
		ca.ClientProfile, store.ObtainedEnroll, "test")
	if err != nil {
		f.t.Fatal(err)
	}
	return iss
}

func (f *fixture) rows() map[string]store.CACert {
	f.t.Helper()
	rows, err := f.in.Store.ListCAs(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]store.CACert{}
	for _, r := range rows {
		out[r.Fingerprint] = r
	}
	return out
}

// states is "kind gen state" of every CA certificate, sorted as ListCAs.
func (f *fixture) states() []string {
	f.t.Helper()
	rows, err := f.in.Store.ListCAs(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.Kind+" "+itoa(r.Generation)+" "+r.State)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func (f *fixture) wantStates(want ...string) {
	f.t.Helper()
	got := f.states()
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		f.t.Fatalf("CA states\n  %s\nwant\n  %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
}

// verify checks a leaf with its chain against exactly roots, for client
// auth, at the fixture's now.
func (f *fixture) verify(iss ca.Issued, roots ...*x509.Certificate) error {
	pool, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range iss.Chain {
		inters.AddCert(c)
	}
	_, err := iss.Cert.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, CurrentTime: f.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

func TestRotateIntermediateScheduled(t *testing.T) {
	f := newFixture(t, "")
	f.clock.Advance(100 * 24 * time.Hour)
	old := f.in.Authority.Issuer()
	before := f.leaf("/svc/before")
	t0 := f.clock.Now()
	res, err := f.m.RotateIntermediate(f.ctx, calife.IntermediateOptions{At: t0.Add(time.Hour), Actor: "spiffe://example.org/admin/alice"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rotation.Phase != calife.PhasePublished || strings.Join(f.steps, ",") != "intermediate.started,intermediate.published" {
		t.Fatalf("phase %s, steps %v", res.Rotation.Phase, f.steps)
	}
	f.wantStates("intermediate 1 active", "intermediate 2 next", "root 1 active")
	h := f.in.Authority.Hierarchy()
	if h.Active.KeyID() != old.KeyID() || len(h.Intermediates) != 2 || len(h.Roots) != 1 {
		t.Fatalf("while next: active changed %v, %d intermediates published", h.Active.KeyID() != old.KeyID(), len(h.Intermediates))
	}
	// The next one is published, not signing.
	if l := f.leaf("/svc/during"); l.Cert.CheckSignatureFrom(old.Certificate()) != nil {
		t.Fatal("a next intermediate signed")
	}
	if changed, err := f.m.Tick(f.ctx); err != nil || changed {
		t.Fatalf("tick before the activation time: %v %v", changed, err)
	}
	f.clock.Advance(time.Hour)
	if changed, err := f.m.Tick(f.ctx); err != nil || !changed {
		t.Fatalf("tick at the activation time: %v %v", changed, err)
	}
	f.wantStates("intermediate 1 retiring", "intermediate 2 active", "root 1 active")
	after := f.leaf("/svc/after")
	if after.Cert.CheckSignatureFrom(f.in.Authority.Issuer().Certificate()) != nil || f.in.Authority.Issuer().KeyID() == old.KeyID() {
		t.Fatal("the new intermediate does not sign")
	}
	root := f.in.Authority.Roots()[0]
	for _, l := range []ca.Issued{before, after} {
		if err := f.verify(l, root); err != nil {
			t.Fatalf("leaf does not verify: %v", err)
		}
	}
	if got := after.Record.Issuer; got != f.in.Authority.Issuer().KeyID() || before.Record.Issuer != old.KeyID() {
		t.Fatalf("issuers recorded %s, %s", before.Record.Issuer, got)
	}
	// The old one retires once what it issued has expired (plus a CRL
	// validity), not before: the leaves, and the admin certificate it had
	// issued, replaced (and revoked) at the activation, which stays on its
	// CRL until it expires.
	f.clock.Set(before.Cert.NotAfter.Add(2 * time.Hour))
	f.m.Tick(f.ctx)
	f.wantStates("intermediate 1 retiring", "intermediate 2 active", "root 1 active")
	f.clock.Set(old.Certificate().NotAfter.Add(30 * time.Minute))
	f.m.Tick(f.ctx)
	if s := f.state("intermediate", 1); s != "retiring" {
		t.Fatalf("intermediate 1 is %s half a CRL validity after its last certificate expired", s)
	}
	f.clock.Advance(time.Hour)
	if _, err := f.m.Tick(f.ctx); err != nil {
		t.Fatal(err)
	}
	if s := f.state("intermediate", 1); s != "retired" {
		t.Fatalf("intermediate 1 is %s after its last certificate expired", s)
	}

	rep, err := f.m.Status(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rotations) == 0 || rep.Rotations[0].ID != 1 || rep.Rotations[0].Phase != calife.PhaseDone {
		t.Errorf("rotations in status: %+v", rep.Rotations)
	}
	recs, _ := f.in.Store.AuditRecords(f.ctx, 0, 0)
	n := 0
	for _, r := range recs {
		if r.Action == "ca.rotate" {
			n++
		}
	}
	if n < 4 { // started, published, activated, retired (and the automatic rotation of I2 the year's end started)
		t.Errorf("%d ca.rotate audit records, want at least 4", n)
	}
}

func TestAutomaticRotation(t *testing.T) {
	f := newFixture(t, "")
	act := f.in.Authority.Issuer().Certificate()
	life := act.NotAfter.Sub(act.NotBefore)
	point := act.NotBefore.Add(life * 2 / 3)
	f.clock.Set(point.Add(-25 * time.Hour))
	if changed, _ := f.m.Tick(f.ctx); changed {
		t.Fatal("rotated before 2/3 minus the publication time")
	}
	f.clock.Set(point.Add(-23 * time.Hour))
	if changed, err := f.m.Tick(f.ctx); err != nil || !changed {
		t.Fatalf("no rotation started near 2/3: %v", err)
	}
	f.wantStates("intermediate 1 active", "intermediate 2 next", "root 1 active")
	f.clock.Set(point)
	f.m.Tick(f.ctx)
	f.wantStates("intermediate 1 retiring", "intermediate 2 active", "root 1 active")
	// The next automatic rotation is 2/3 into the new one's life.
	if changed, _ := f.m.Tick(f.ctx); changed {
		t.Fatal("rotated again at once")
	}
}

func TestEmergencyRotation(t *testing.T) {
	f := newFixture(t, "")
	old := f.in.Authority.Issuer()
	f.leaf("/svc/a")
	res, err := f.m.RotateIntermediate(f.ctx, calife.IntermediateOptions{RevokeOld: true, Reason: 1, Actor: "spiffe://example.org/admin/alice"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rotation.Phase != calife.PhaseDone || !res.Rotation.Emergency {
		t.Fatalf("rotation %+v", res.Rotation)
	}
	f.wantStates("intermediate 1 revoked", "intermediate 2 active", "root 1 active")
	h := f.in.Authority.Hierarchy()
	if !h.IssuerRevoked(old.KeyID()) || h.Status[old.KeyID()] != nil {
		t.Fatal("the old intermediate is not revoked in the hierarchy, or still answers status")
	}
	for _, c := range f.rows() {
		if c.KeyID == old.KeyID() && (c.Reason != 1 || !c.RevokedAt.Equal(f.clock.Now())) {
			t.Errorf("revocation %v reason %d", c.RevokedAt, c.Reason)
		}
	}
	recs, _ := f.in.Store.AuditRecords(f.ctx, 0, 0)
	found := false
	for _, r := range recs {
		found = found || r.Action == "ca.revoke" && r.Subject == ca.Fingerprint(old.Certificate()) && strings.Contains(r.Detail, "keyCompromise")
	}
	if !found {
		t.Error("no ca.revoke audit record for the old intermediate")
	}
}

func TestRotateRoot(t *testing.T) {
	f := newFixture(t, "")
	oldRoot := f.in.Authority.Roots()[0]
	before := f.leaf("/svc/before")
	if _, err := f.m.ActivateRoot(f.ctx, "test", time.Time{}); !errors.Is(err, calife.ErrNoRotation) {
		t.Fatalf("activate without prepare: %v", err)
	}
	res, err := f.m.PrepareRoot(f.ctx, calife.PrepareOptions{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rotation.Phase != calife.PhasePrepared {
		t.Fatalf("phase %s", res.Rotation.Phase)
	}
	f.wantStates("cross 1 next", "cross 2 next", "intermediate 1 active", "intermediate 2 next", "root 1 active", "root 2 next")
	if _, err := f.m.PrepareRoot(f.ctx, calife.PrepareOptions{}); err == nil || !strings.Contains(err.Error(), "is already prepared") {
		t.Fatalf("second prepare: %v", err)
	}
	if _, err := f.m.RotateIntermediate(f.ctx, calife.IntermediateOptions{Now: true}); err == nil {
		t.Fatal("an intermediate rotation during a prepared root rotation was allowed")
	}
	roots := f.in.Authority.Roots()
	if len(roots) != 2 {
		t.Fatalf("bundle has %d roots while prepared, want both", len(roots))
	}
	newRoot := roots[0]
	if newRoot.Equal(oldRoot) {
		newRoot = roots[1]
	}
	if _, err := f.m.FinishRoot(f.ctx, "test"); err == nil || !strings.Contains(err.Error(), "it is prepared, not activated") {
		t.Fatalf("finish before activate: %v", err)
	}
	if _, err := f.m.ActivateRoot(f.ctx, "test", time.Time{}); err != nil {
		t.Fatal(err)
	}
	f.wantStates("cross 1 active", "cross 2 active", "intermediate 1 retiring", "intermediate 2 active", "root 1 retiring", "root 2 active")
	after := f.leaf("/svc/after")
	if len(after.Chain) != 2 || after.Chain[1].CheckSignatureFrom(oldRoot) != nil {
		t.Fatalf("chain after activation has %d certificates; want the intermediate and the new root certified by the old", len(after.Chain))
	}
	// Old clients (old root only), new clients (new root only) and clients
	// with both verify old and new leaves alike.
	for name, roots := range map[string][]*x509.Certificate{"old": {oldRoot}, "new": {newRoot}, "both": {oldRoot, newRoot}} {
		if err := f.verify(after, roots...); err != nil {
			t.Errorf("new leaf against the %s bundle: %v", name, err)
		}
		withCross := before
		withCross.Chain = append(append([]*x509.Certificate{}, before.Chain...), f.in.Authority.Hierarchy().Intermediates...)
		if err := f.verify(withCross, roots...); err != nil {
			t.Errorf("old leaf against the %s bundle: %v", name, err)
		}
	}
	// Rollback to prepared and forward again.
	if _, err := f.m.RollbackRoot(f.ctx, "test"); err != nil {
		t.Fatal(err)
	}
	f.wantStates("cross 1 next", "cross 2 next", "intermediate 1 active", "intermediate 2 retiring", "root 1 active", "root 2 next")
	if l := f.leaf("/svc/back"); l.Cert.CheckSignatureFrom(f.rowsCert(t, "intermediate", 1)) != nil {
		t.Fatal("after rollback the old intermediate does not sign")
	}
	if _, err := f.m.RollbackRoot(f.ctx, "test"); err == nil || !strings.Contains(err.Error(), "certificates under the new root are valid until") {
		t.Fatalf("abandoning the new root while its leaves live: %v", err)
	}
	res, err = f.m.ActivateRoot(f.ctx, "test", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	f.wantStates("cross 1 active", "cross 2 active", "intermediate 1 retiring", "intermediate 2 active", "root 1 retiring", "root 2 active")
	var sv *calife.StillValidError
	if _, err := f.m.FinishRoot(f.ctx, "test"); !errors.As(err, &sv) || sv.Live < 2 {
		t.Fatalf("finish while old leaves live: %v", err)
	}
	// The schedule finishes it once they expired (the admin certificate
	// under the old intermediate was replaced and revoked at activation).
	f.clock.Advance(24*time.Hour + time.Minute)
	if _, err := f.m.Tick(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.wantStates("cross 1 retired", "cross 2 retired", "intermediate 1 retired", "intermediate 2 active", "root 1 retired", "root 2 active")
	if r := f.in.Authority.Roots(); len(r) != 1 || !r[0].Equal(newRoot) {
		t.Fatal("the bundle still carries the old root")
	}
	last := f.leaf("/svc/last")
	if len(last.Chain) != 1 || f.verify(last, newRoot) != nil {
		t.Fatal("after finish the chain is not just the intermediate under the new root")
	}
	if _, err := f.m.RollbackRoot(f.ctx, "test"); !errors.Is(err, calife.ErrNoRotation) {
		t.Fatalf("rollback after finish: %v", err)
	}
}

func (f *fixture) state(kind string, gen int) string {
	for _, r := range f.rows() {
		if r.Kind == kind && r.Generation == gen {
			return r.State
		}
	}
	return "missing"
}

func (f *fixture) rowsCert(t *testing.T, kind string, gen int) *x509.Certificate {
	t.Helper()
	for _, r := range f.rows() {
		if r.Kind == kind && r.Generation == gen {
			c, err := x509.ParseCertificate(r.DER)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatalf("no %s %d", kind, gen)
	return nil
}

// errCut is what a manager "killed" after a step panics with.
var errCut = errors.New("cut")

// cutAt is a manager whose process stops (panics with errCut) right after
// the durable step at.
func (f *fixture) cutAt(at string) *calife.Manager {
	f.t.Helper()
	m, err := calife.New(calife.Options{Store: f.in.Store, Keys: f.in.Keys, URLs: f.in.Hierarchy.URLs, TrustDomain: "example.org", Clock: f.clock,
		Policy: calife.DefaultPolicy(),
		AfterStep: func(s string) {
			if s == at {
				panic(errCut)
			}
		}})
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// cut runs op and reports whether it stopped at the cut.
func cut(op func()) (stopped bool) {
	defer func() {
		if r := recover(); r != nil {
			if r != errCut {
				panic(r)
			}
			stopped = true
		}
	}()
	op()
	return false
}

// TestResumeAfterCut: a rotation whose process stopped after each durable
// step is explained by Status and completed by the next command. (The
// kill -9 test of cmd/certgate does the same with a real process.)
func TestResumeAfterCut(t *testing.T) {
	f := newFixture(t, "")
	for _, at := range []string{"intermediate.started", "intermediate.published"} {
		m := f.cutAt(at)
		if !cut(func() { m.RotateIntermediate(f.ctx, calife.IntermediateOptions{Now: true}) }) {
			t.Fatalf("not cut at %s", at)
		}
		f.clock.Advance(2 * time.Minute)
		rep, err := f.m.Status(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		last := rep.Rotations[len(rep.Rotations)-1]
		if !last.Open {
			t.Fatalf("cut at %s: status shows no open rotation: %+v", at, rep.Rotations)
		}
		t.Logf("cut at %s: %s: %s", at, last.Phase, last.Explain)
		res, err := f.m.RotateIntermediate(f.ctx, calife.IntermediateOptions{Now: true})
		if err != nil || res.Rotation.Phase != calife.PhaseDone || !res.Resumed {
			t.Fatalf("after a cut at %s: %+v %v", at, res, err)
		}
	}
	f.wantStates("intermediate 1 retiring", "intermediate 2 retiring", "intermediate 3 active", "root 1 active")
	for _, at := range []string{"root.started", "root.prepared", "root.activated"} {
		m := f.cutAt(at)
		stopped := cut(func() {
			if _, err := m.PrepareRoot(f.ctx, calife.PrepareOptions{}); err != nil && !strings.Contains(err.Error(), "already prepared") {
				t.Fatal(err)
			}
			m.ActivateRoot(f.ctx, "test", time.Time{})
		})
		if !stopped {
			t.Fatalf("not cut at %s", at)
		}
		rep, _ := f.m.Status(f.ctx)
		t.Logf("cut at %s: %s", at, rep.Rotations[len(rep.Rotations)-1].Explain)
	}
	f.wantStates("cross 1 active", "cross 2 active", "intermediate 1 retiring", "intermediate 2 retiring", "intermediate 3 retiring",
		"intermediate 4 active", "root 1 retiring", "root 2 active")
}
