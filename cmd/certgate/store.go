package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/store"
)

func newMigrateCmd(s streams) *cobra.Command {
	var dir, storeURL string
	cmd := &cobra.Command{
		Use:   "migrate (--dir DIR | --store URL)",
		Short: "Apply the embedded schema migrations to the store, before starting servers",
		Long: `Apply the store's pending schema migrations and print the versions before
and after. "certgate server" does the same when it starts; run this first
when upgrading several replicas that share one PostgreSQL database, so the
schema is upgraded once, on purpose. A store migrated by a newer certgate
is refused and left alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd.Context(), s.out, dir, storeURL)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "certgate directory whose config names the store")
	cmd.Flags().StringVar(&storeURL, "store", "", "store URL: sqlite:///path/certgate.db or postgres://user@host:5432/db")
	return cmd
}

func runMigrate(ctx context.Context, out io.Writer, dir, storeURL string) error {
	flag := "--store"
	switch {
	case dir != "" && storeURL != "":
		return errors.New("--dir, --store: give one, not both")
	case dir != "":
		cfg, err := config.LoadServer(dir)
		if err != nil {
			return err
		}
		flag, storeURL = "--dir", cfg.StoreURL()
	case storeURL == "":
		return errors.New("--dir, --store: name the store with one of them")
	}
	if _, _, err := store.ParseURL(storeURL); err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	// A SQLite file is created by "certgate init"; a missing one is a typo.
	if err := needExistingSQLite(flag, storeURL); err != nil {
		return err
	}
	from, to, err := store.Migrate(ctx, storeURL)
	if err != nil {
		return err
	}
	if from == to {
		fmt.Fprintf(out, "store %s: schema already at version %d\n", redactStore(storeURL), to)
		return nil
	}
	fmt.Fprintf(out, "store %s: schema migrated from version %d to %d\n", redactStore(storeURL), from, to)
	return nil
}

func newStoreCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Move an installation between stores"}
	var from, to string
	cp := &cobra.Command{
		Use:   "copy --from URL --to URL",
		Short: "Copy every certificate, revocation, token, event and audit record into a new, empty store",
		Long: `Copy an installation's store into another one, typically from SQLite to
PostgreSQL: every certificate (with its DER), revocation, token (its hash
and whether it was redeemed), event (same positions, so gateways resume)
and audit record (same sequence numbers and hashes). The target must be
empty; it is written in one transaction, and the audit chain is verified
and the counts compared on the target before that transaction commits.

Stop the servers using the source first: what they write after the copy
started is not copied. Then point "store:" in certgate.yaml at the target.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStoreCopy(cmd.Context(), s.out, from, to)
		},
	}
	cp.Flags().StringVar(&from, "from", "", "source store URL, e.g. sqlite:///var/lib/certgate/certgate.db")
	cp.Flags().StringVar(&to, "to", "", "target store URL, e.g. postgres://certgate@db:5432/certgate")
	cmd.AddCommand(cp)
	return cmd
}

func runStoreCopy(ctx context.Context, out io.Writer, from, to string) error {
	switch {
	case from == "":
		return errors.New("--from: no source store given")
	case to == "":
		return errors.New("--to: no target store given")
	case from == to:
		return errors.New("--from, --to: the source and the target are the same store")
	}
	for _, f := range []struct{ flag, url string }{{"--from", from}, {"--to", to}} {
		if _, _, err := store.ParseURL(f.url); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	if err := needExistingSQLite("--from", from); err != nil {
		return err
	}
	src, err := openSQL(ctx, "--from", from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openSQL(ctx, "--to", to)
	if err != nil {
		return err
	}
	defer dst.Close()
	inv, err := store.Copy(ctx, dst, src)
	if err != nil {
		return err
	}
	// Read back what was committed, through the ordinary read path.
	n, head, err := store.VerifyAudit(ctx, dst)
	if err != nil {
		return fmt.Errorf("--to: after the copy: %w", err)
	}
	got, err := dst.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("--to: after the copy: %w", err)
	}
	if !got.Equal(inv) || n != inv.AuditRecords || string(head) != string(inv.AuditHead) {
		return fmt.Errorf("--to: after the copy the target holds %s, the source %s", got, inv)
	}
	fmt.Fprintf(out, "copied %s -> %s\n", redactStore(from), redactStore(to))
	fmt.Fprintf(out, "  certificates:  %d\n  revocations:   %d\n  tokens:        %d\n", inv.Certificates, inv.Revocations, inv.Tokens)
	fmt.Fprintf(out, "  events:        %d (last position %d)\n", inv.Events, inv.LastPosition)
	fmt.Fprintf(out, "  CA:            %d certificates, %d rotations\n", inv.CACerts, inv.Rotations)
	head16 := "none"
	if inv.AuditHead != nil {
		head16 = fmt.Sprintf("%x", inv.AuditHead)
	}
	fmt.Fprintf(out, "  audit records: %d, chain verified on the target, head %s\n", n, head16)
	fmt.Fprintf(out, "next: set \"store: %s\" in certgate.yaml of every server, then start them\n", redactStore(to))
	return nil
}

// openSQL opens (and migrates) the store url names.
func openSQL(ctx context.Context, flag, url string) (*store.SQL, error) {
	st, err := store.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	s, ok := st.(*store.SQL)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("%s: %T cannot be copied", flag, st)
	}
	return s, nil
}

// needExistingSQLite refuses a SQLite source that does not exist: opening
// it would create an empty database and "copy" nothing.
func needExistingSQLite(flag, u string) error {
	kind, path, err := store.ParseURL(u)
	if err != nil || kind != "sqlite" {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return nil
}

// redactStore hides the password of a PostgreSQL URL, in the user
// information or in the query.
func redactStore(s string) string {
	if kind, _, err := store.ParseURL(s); err == nil && kind == "postgres" {
		u, err := url.Parse(s)
		if err != nil {
			return "postgres://(unparsable URL)"
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return s
}
