package gatewayd

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/auditcheck"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/metrics"
)

// AuditWitnessInterval is how often a gateway with its own identity looks
// at the server's audit checkpoint.
const AuditWitnessInterval = time.Minute

// startAuditWitness makes the gateway a witness of the server's audit log
// (package auditcheck): it remembers the newest checkpoint in
// identity.dir/audit-checkpoint and, holding the gateway role, reads the
// records between two checkpoints to check that the newer extends the
// older. A gateway without an identity of its own keeps no witness.
func startAuditWitness(ctx context.Context, cfg *config.Gateway, own *agent.Gateway, interval time.Duration, log *slog.Logger, m *metrics.AuditWitness) (stop func(), err error) {
	urls := cfg.ServerURLs()
	if len(urls) == 0 {
		urls = []string{own.ServerURL}
	}
	tc, err := revocationTLS(cfg, own)
	if err != nil {
		return nil, err
	}
	cl, err := apiclient.New(apiclient.Options{ServerURL: urls[0], Roots: tc.RootCAs, GetClientCertificate: tc.GetClientCertificate, Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("audit witness: %w", err)
	}
	w := &auditcheck.Watcher{Server: cl, Witness: checkpoint.NewWitness(filepath.Join(cfg.Identity.Dir, auditcheck.WitnessFile)), ReadRecords: true, Log: log}
	if m != nil {
		w.Alarm, w.Accepted = m.Inconsistent, m.Accepted
	}
	if interval <= 0 {
		interval = AuditWitnessInterval
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, interval)
	}()
	return func() { <-done }, nil
}
