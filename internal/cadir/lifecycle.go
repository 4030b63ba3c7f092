package cadir

import (
	"context"
	"fmt"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cakey"
	"github.com/certgate/certgate/internal/calife"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/store"
)

// Policy is the rotation policy the config sets.
func Policy(cfg *config.Server) calife.Policy {
	r := cfg.CA.Rotation
	return calife.Policy{AutoRotate: r.Auto, RotateAt: r.At, PublishAhead: r.PublishAhead,
		IntermediateLifetime: r.IntermediateLifetime, RootLifetime: r.RootLifetime,
		RetireGrace: cfg.Revocation.CRLValidity, WarnBefore: r.WarnBefore, ClientLifetime: cfg.Profiles.ClientLifetime}
}

// Lifecycle returns the rotation manager of the installation. After each
// step it commits, the CA service signs with the new state and the
// directory's bundles and admin certificate follow (RefreshTrust).
// afterStep, if set, is called after each durable step (tests kill the
// process there).
func (in *Installation) Lifecycle(afterStep func(string)) (*calife.Manager, error) {
	return calife.New(calife.Options{
		Store: in.Store, Keys: in.Keys, URLs: in.Hierarchy.URLs, TrustDomain: in.Config.TrustDomain, Clock: in.Hierarchy.Clock,
		Policy: Policy(in.Config),
		Changed: func(ctx context.Context) error {
			if _, err := in.Reload(ctx); err != nil {
				return err
			}
			_, err := in.RefreshTrust(ctx)
			return err
		},
		AfterStep: afterStep,
	})
}

// StatusOnly opens DIR's config and store without the passphrase, for
// "certgate ca status": it reads the CA state and can change nothing (no
// key can be loaded). Close the store when done.
func StatusOnly(ctx context.Context, dir string, clk clock.Clock) (*calife.Manager, store.Store, error) {
	cfg, err := config.LoadServer(dir)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, cfg.StoreURL())
	if err != nil {
		return nil, nil, fmt.Errorf("cadir: open store: %w", err)
	}
	m, err := calife.New(calife.Options{Store: st, Keys: &cakey.Source{Dir: cfg.Dir()}, URLs: urlsOf(cfg),
		TrustDomain: cfg.TrustDomain, Clock: clk, Policy: Policy(cfg)})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return m, st, nil
}

var _ ca.KeySource = (*cakey.Source)(nil)
