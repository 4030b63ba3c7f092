package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/cakey"
	"github.com/certgate/certgate/internal/calife"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
)

// newCACmd is "certgate ca". afterStep, if set, is called after each
// durable step of a rotation: the kill -9 tests stop the process there
// (certgate itself passes nil).
func newCACmd(s streams, afterStep func(step string)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "The CA over time: status, rotation of the intermediate and of the root",
		Long: `Commands that look at and change the CA itself. They work on the certgate
directory and its store directly (like init), with or without a running
server; running servers follow each change within a second. Every change
is audited.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCAStatusCmd(s), newCARotateIntermediateCmd(s, afterStep), newCARotateRootCmd(s, afterStep))
	return cmd
}

func newCAStatusCmd(s streams) *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --dir DIR [--json]",
		Short: "Roots and intermediates with their state, validity, keys and what they issued; rotations; warnings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDir(dir); err != nil {
				return err
			}
			m, st, err := cadir.StatusOnly(cmd.Context(), dir, clock.Real{})
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := m.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return rep.Write(s.out)
		},
	}
	dirFlag(cmd, &dir)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// caFlags are the flags every changing ca command has.
type caFlags struct {
	dir, passFile string
	afterStep     func(string)
}

func (f *caFlags) add(cmd *cobra.Command) {
	dirFlag(cmd, &f.dir)
	cmd.Flags().StringVar(&f.passFile, "passphrase-file", "", "file holding the CA passphrase (default $CERTGATE_PASSPHRASE)")
}

// open opens the installation and its rotation manager; the actor is the
// admin identity of the directory.
func (f *caFlags) open(ctx context.Context) (*cadir.Installation, *calife.Manager, string, error) {
	if err := needDir(f.dir); err != nil {
		return nil, nil, "", err
	}
	pass, err := readPassphrase(f.passFile)
	if err != nil {
		return nil, nil, "", err
	}
	in, err := cadir.Open(ctx, f.dir, pass, clock.Real{})
	if err != nil {
		return nil, nil, "", err
	}
	m, err := in.Lifecycle(f.afterStep)
	if err != nil {
		in.Close()
		return nil, nil, "", err
	}
	actor := "cli"
	if cert, _, _, err := cadir.AdminCredentials(f.dir); err == nil {
		if id, err := identity.FromCertificate(cert.Leaf); err == nil {
			actor = id.String()
		}
	}
	return in, m, actor, nil
}

// report prints where the rotation stands, and the warnings.
func report(ctx context.Context, w io.Writer, m *calife.Manager, res calife.Result) error {
	r := res.Rotation
	if res.Resumed {
		fmt.Fprintf(w, "continued %s rotation %d\n", r.Kind, r.ID)
	}
	rep, err := m.Status(ctx)
	if err != nil {
		return err
	}
	for _, ri := range rep.Rotations {
		if ri.ID == r.ID && ri.Kind == r.Kind {
			fmt.Fprintf(w, "%s rotation %d: %s: %s\n", r.Kind, r.ID, ri.Phase, ri.Explain)
		}
	}
	for _, c := range rep.CAs {
		if c.State == "active" || c.State == "next" || c.State == "retiring" {
			fmt.Fprintf(w, "  %-12s %d %-8s %s until %s\n", c.Kind, c.Generation, c.State, c.KeyID, c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	for _, wn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wn)
	}
	return nil
}

func parseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is not an RFC 3339 time such as 2027-03-01T12:00:00Z", flag, v)
	}
	return t, nil
}

func checkKeySpec(v string) error {
	if v == "" || v == cakey.SchemeSealed {
		return nil
	}
	if _, err := cakey.ParseURI(v); err != nil {
		return fmt.Errorf("--ca-key: %w", err)
	}
	return nil
}

func newCARotateIntermediateCmd(s streams, afterStep func(string)) *cobra.Command {
	f := caFlags{afterStep: afterStep}
	var now, revokeOld bool
	var at, reason, caKey string
	cmd := &cobra.Command{
		Use:   "rotate-intermediate --dir DIR [--now | --at TIME] [--revoke-old --reason REASON] [--ca-key SPEC]",
		Short: "Make a new intermediate, publish it, then make it sign; the old one retires (or, with --revoke-old, is revoked)",
		Long: `Makes a new intermediate under the active root and publishes it ("next": in
the bundle endpoint and the change feed) before it signs anything. It becomes
active at --at, right away with --now, or ca.rotation.publish_ahead later
(a running server activates it then). The old intermediate keeps answering
OCSP and publishing its CRL until the last certificate it issued expired.

--revoke-old (emergency, e.g. the intermediate's key was compromised):
the new intermediate is active at once and the old one is revoked with
--reason (default keyCompromise): the root's CRL lists it, gateways refuse
chains through it at once, and agents renew under the new one at their
next check.

A rotation that was cut short (the process killed) is continued.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if now && at != "" {
				return errors.New("--now and --at: give one")
			}
			when, err := parseTime("--at", at)
			if err != nil {
				return err
			}
			code := 0
			if reason != "" {
				if !revokeOld {
					return errors.New("--reason: only with --revoke-old")
				}
				if code, err = ca.ParseReason(reason); err != nil {
					return fmt.Errorf("--reason: %w", err)
				}
			}
			if err := checkKeySpec(caKey); err != nil {
				return err
			}
			in, m, actor, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer in.Close()
			if !when.IsZero() && !when.After(in.Hierarchy.Clock.Now()) {
				return fmt.Errorf("--at: %s is not in the future (use --now)", at)
			}
			res, err := m.RotateIntermediate(cmd.Context(), calife.IntermediateOptions{Now: now, At: when, RevokeOld: revokeOld, Reason: code,
				KeySpec: caKey, Actor: actor})
			if err != nil {
				return err
			}
			return report(cmd.Context(), s.out, m, res)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&now, "now", false, "activate the new intermediate right after publishing it")
	cmd.Flags().StringVar(&at, "at", "", "activate it at this time (RFC 3339)")
	cmd.Flags().BoolVar(&revokeOld, "revoke-old", false, "revoke the old intermediate (implies --now)")
	cmd.Flags().StringVar(&reason, "reason", "", "revocation reason with --revoke-old (default keyCompromise)")
	cmd.Flags().StringVar(&caKey, "ca-key", "", "where the new key goes: sealed: (encrypted in the store) or a pkcs11: URI (default: where the active intermediate's key is)")
	return cmd
}

func newCARotateRootCmd(s streams, afterStep func(string)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-root prepare|activate|finish|rollback",
		Short: "Replace the root in phases, cross-signed both ways so old and new clients verify throughout",
		Long: `prepare   a new root, certified by the old one and certifying it (cross-
          certificates), and an intermediate under it; bundles carry both
          roots from now on. --activate-at schedules the next phase.
activate  the new intermediate signs, its chain carries the cross-certificate
          so clients that trust only the old root verify; the old root and
          intermediate retire. The finish is scheduled for when nothing under
          the old root is valid (--finish-at to choose).
finish    the old root leaves the bundles. Refused while a certificate under
          it is valid. Final.
rollback  undo the last phase (activate -> prepared; prepared -> abandoned,
          once nothing under the new root is valid).`,
		Args: cobra.NoArgs,
	}
	f := caFlags{afterStep: afterStep}
	var activateAt, finishAt, caKey string
	phase := func(use, short string, run func(ctx context.Context, m *calife.Manager, actor string) (calife.Result, error)) *cobra.Command {
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				in, m, actor, err := f.open(cmd.Context())
				if err != nil {
					return err
				}
				defer in.Close()
				res, err := run(cmd.Context(), m, actor)
				if err != nil {
					return err
				}
				return report(cmd.Context(), s.out, m, res)
			},
		}
		f.add(c)
		return c
	}
	prepare := phase("prepare --dir DIR [--activate-at TIME] [--ca-key SPEC]", "Make the new root, the cross-certificates and an intermediate under the new root; publish them",
		func(ctx context.Context, m *calife.Manager, actor string) (calife.Result, error) {
			when, err := parseTime("--activate-at", activateAt)
			if err != nil {
				return calife.Result{}, err
			}
			if err := checkKeySpec(caKey); err != nil {
				return calife.Result{}, err
			}
			return m.PrepareRoot(ctx, calife.PrepareOptions{ActivateAt: when, KeySpec: caKey, Actor: actor})
		})
	prepare.Flags().StringVar(&activateAt, "activate-at", "", "when a running server activates the new root (RFC 3339; default: only by command)")
	prepare.Flags().StringVar(&caKey, "ca-key", "", "where the new keys go: sealed: or a pkcs11: URI (default: where the active root's key is)")
	activate := phase("activate --dir DIR [--finish-at TIME]", "Make the new root's intermediate sign",
		func(ctx context.Context, m *calife.Manager, actor string) (calife.Result, error) {
			when, err := parseTime("--finish-at", finishAt)
			if err != nil {
				return calife.Result{}, err
			}
			return m.ActivateRoot(ctx, actor, when)
		})
	activate.Flags().StringVar(&finishAt, "finish-at", "", "when a running server finishes (default: once nothing under the old root is valid)")
	finish := phase("finish --dir DIR", "Retire the old root (final)", func(ctx context.Context, m *calife.Manager, actor string) (calife.Result, error) {
		return m.FinishRoot(ctx, actor)
	})
	rollback := phase("rollback --dir DIR", "Undo the last phase of the open root rotation", func(ctx context.Context, m *calife.Manager, actor string) (calife.Result, error) {
		return m.RollbackRoot(ctx, actor)
	})
	cmd.AddCommand(prepare, activate, finish, rollback)
	return cmd
}
