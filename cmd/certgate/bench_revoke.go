package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/bench"
)

func newBenchRevokeCmd(s streams) *cobra.Command {
	var f benchLoadFlags
	o := bench.RevokeOptions{Log: s.err}
	cmd := &cobra.Command{
		Use:   "revoke --dir DIR [--server URL] [--gateways 5] [--revocations 100]",
		Short: "Measure how fast a revocation reaches every gateway: connections closed, handshakes refused",
		Long: `Starts --gateways "certgate gateway" processes on 127.0.0.1, each with its own
/gateway/ certificate enrolled from the running server and following its
change feed. Enrolls --revocations client certificates and opens one
keep-alive HTTP/1.1 connection per gateway for each (one request proves it).
Then it revokes them one at a time through the admin API and measures, for
each, the time from the revoke call's return until every gateway has closed
the client's connection and refuses a new handshake with its certificate.
Prints p50/p90/p99/max over the revocations and over the single connection
cuts. The gateways are stopped and their files removed at the end; the run
stops after --timeout in any case. It revokes --revocations certificates:
run it against a test CA.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if o.Target, err = f.target(o.Check); err != nil {
				return err
			}
			res, err := bench.RunRevoke(cmd.Context(), o)
			return printed(s.out, res, err)
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.IntVar(&o.Gateways, "gateways", 5, "gateway processes to start")
	fl.IntVar(&o.Revocations, "revocations", 100, "certificates to enroll and revoke")
	fl.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "stop the whole run after this long")
	fl.StringVar(&o.Certgate, "certgate", "", "certgate binary to run the gateways with (default: this one)")
	fl.StringVar(&o.WorkDir, "work-dir", "", "parent of the gateways' temporary directory (default: the system's)")
	return cmd
}
