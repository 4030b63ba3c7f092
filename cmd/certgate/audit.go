package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/auditcheck"
	"github.com/certgate/certgate/internal/auditexport"
	"github.com/certgate/certgate/internal/buildinfo"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/syslog"
)

func newAuditCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The tamper-evident audit log"}
	var f adminFlags
	var sources []string
	var keyFile string
	verify := &cobra.Command{
		Use:   "verify [--checkpoint FILE|URL]...",
		Short: "Check the audit log against its signed checkpoints and the store; name the first bad record",
		Long: `Recomputes the audit hash chain from record 1 and checks it against signed
checkpoints: by default the server's newest (GET /v1/audit/checkpoint) and
the checkpoint file of --dir (audit.checkpoints), else those --checkpoint
names (a checkpoint file, a witness's file, or an https:// URL). Then asks
the server for certificates and revocations without an audit record.
Every checkpoint must verify with the audit key (--key, default
audit.public_key of --dir). Exits non-zero on the first problem, naming
the first bad record.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			_, roots, cfg, err := cadir.AdminCredentials(f.dir)
			if err != nil {
				return err
			}
			if keyFile == "" {
				keyFile = cfg.Path(cfg.Audit.PublicKey)
			}
			data, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			pub, err := checkpoint.ParsePublicKey(data)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyFile, err)
			}
			v, err := checkpoint.NewVerifier(cfg.CheckpointName(), pub)
			if err != nil {
				return err
			}
			locs := sources
			if len(locs) == 0 {
				locs = []string{cl.BaseURL() + "/v1/audit/checkpoint"}
				if _, err := os.Stat(cfg.Path(cfg.Audit.Checkpoints)); err == nil {
					locs = append(locs, cfg.Path(cfg.Audit.Checkpoints))
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			var cps []checkpoint.Signed
			for _, loc := range locs {
				got, err := auditcheck.LoadCheckpoints(cmd.Context(), loc, v, roots)
				if err != nil {
					fmt.Fprintf(s.out, "FAIL: %v\n", err)
					return err
				}
				cps = append(cps, got...)
			}
			rep, err := auditcheck.Verify(cmd.Context(), cl, cps)
			for _, u := range rep.Unrecorded {
				fmt.Fprintf(s.out, "FAIL: %s\n", auditcheck.Describe(u))
			}
			if err != nil {
				if !errors.Is(err, auditcheck.ErrUnrecorded) {
					fmt.Fprintf(s.out, "FAIL: %v\n", err)
				}
				return err
			}
			newest := "no checkpoint"
			if rep.Newest != nil {
				newest = fmt.Sprintf("newest checkpoint %d records signed %s", rep.Newest.Size, rep.Newest.Time.UTC().Format("2006-01-02T15:04:05Z"))
			}
			fmt.Fprintf(s.out, "OK: %d audit records, chain intact, head %s\nOK: %d checkpoints matched (%s); every certificate and revocation recorded\n",
				rep.Records, hex.EncodeToString(rep.Head), rep.Checkpoints, newest)
			return nil
		},
	}
	f.add(verify)
	verify.Flags().StringArrayVar(&sources, "checkpoint", nil, "signed checkpoints to check against: a file or an https:// URL (repeatable)")
	verify.Flags().StringVar(&keyFile, "key", "", "the audit key's public half, PEM (default audit.public_key of --dir)")
	cmd.AddCommand(verify, newAuditExportCmd(s))
	return cmd
}

func newAuditExportCmd(s streams) *cobra.Command {
	var f adminFlags
	var since int64
	var format, addr, caFile, certFile, keyFile, state, hostname string
	cmd := &cobra.Command{
		Use:   "export [--since SEQ] [--format json|cef] | --syslog HOST:PORT --state FILE",
		Short: "Write the audit log for a SIEM (JSON lines or CEF), or send it to a syslog collector from where it stopped",
		Long: `Without --syslog, writes the records after --since to stdout, one per line:
json (as GET /v1/audit gives them) or cef (ArcSight CEF). With --syslog,
sends every record after the one --state names (or after --since when the
file does not exist yet) as RFC 5424 over TCP (TLS with --syslog-ca) and
keeps sending new ones until stopped; --state then names the last record
the collector took. A clean stop and start sends each record once; after
a crash the last records may be sent again, never lost (each message
carries its seq).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			if addr == "" {
				for after := since; ; {
					recs, err := cl.AuditRecords(cmd.Context(), after, 5000)
					if err != nil {
						return err
					}
					for _, r := range recs {
						line, err := auditexport.Format(format, r, buildinfo.Read().Version)
						if err != nil {
							return err
						}
						if _, err := s.out.Write(line); err != nil {
							return err
						}
						after = r.Seq
					}
					if len(recs) < 5000 {
						return nil
					}
				}
			}
			if state == "" {
				return errors.New("--syslog needs --state FILE: where the export remembers the last record delivered")
			}
			sc := syslog.Config{Address: addr}
			if caFile != "" {
				if sc.TLS, err = auditexport.TLSConfig(caFile, certFile, keyFile); err != nil {
					return err
				}
			}
			client, err := syslog.New(sc)
			if err != nil {
				return err
			}
			if hostname == "" {
				hostname, _ = os.Hostname()
			}
			return (&auditexport.Shipper{Records: cl, Syslog: client, State: state, Since: since, Hostname: hostname,
				Version: buildinfo.Read().Version, Log: slog.New(slog.NewJSONHandler(s.err, nil))}).Run(cmd.Context())
		},
	}
	f.add(cmd)
	cmd.Flags().Int64Var(&since, "since", 0, "export the records after this seq")
	cmd.Flags().StringVar(&format, "format", auditexport.FormatJSON, "json or cef (without --syslog)")
	cmd.Flags().StringVar(&addr, "syslog", "", "send to this syslog collector, host:port, until stopped")
	cmd.Flags().StringVar(&caFile, "syslog-ca", "", "roots that verify the collector: TLS (default plain TCP)")
	cmd.Flags().StringVar(&certFile, "syslog-cert", "", "client certificate for the collector (with --syslog-key)")
	cmd.Flags().StringVar(&keyFile, "syslog-key", "", "its key")
	cmd.Flags().StringVar(&state, "state", "", "file holding the last record delivered (with --syslog)")
	cmd.Flags().StringVar(&hostname, "hostname", "", "HOSTNAME of the syslog messages (default this host's name)")
	return cmd
}
