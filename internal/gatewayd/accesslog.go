package gatewayd

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/syslog"
	"github.com/certgate/certgate/internal/tlspolicy"
)

// openAccessLog starts the outputs the access_log section names.
func openAccessLog(c *config.GatewayAccessLog, out io.Writer, clk clock.Clock, log *slog.Logger, dropped func(string, uint64)) (*accesslog.Logger, error) {
	o := accesslog.Options{
		QueueLen: c.QueueLines, Block: c.OnOverflow == config.OverflowBlock, Clock: clk, Log: log, Dropped: dropped,
	}
	if c.Path == "-" || c.Stdout {
		o.Stdout = out
	}
	if c.Path != "-" {
		o.File = &accesslog.FileOptions{
			Path: c.Path, MaxSize: int64(c.MaxSizeMB) << 20, RotateEvery: c.RotateEvery.Std(), Compress: c.Compress,
			MaxBackups: c.Backups(), MaxAge: c.MaxAge.Std(), MaxTotal: int64(c.MaxTotalSizeMB) << 20,
		}
	}
	if te := c.TamperEvidence; te.Key != "" && o.File != nil {
		data, err := os.ReadFile(te.Key)
		if err != nil {
			return nil, fmt.Errorf("access_log.tamper_evidence.key: %w", err)
		}
		key, err := pemutil.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("access_log.tamper_evidence.key: %w", err)
		}
		signer, err := checkpoint.NewSigner(te.Name, key)
		if err != nil {
			return nil, fmt.Errorf("access_log.tamper_evidence: %w", err)
		}
		o.File.Checkpoint = signer
	}
	if s := &c.Syslog; s.Address != "" {
		so := &accesslog.SyslogOptions{
			Config: syslog.Config{Address: s.Address, QueueLen: c.QueueLines, SpoolDir: s.SpoolDir,
				SpoolMaxBytes: int64(s.SpoolMaxMB) << 20, Log: log},
			Hostname: s.Hostname, AppName: s.AppName,
		}
		if s.TLS.CA != "" {
			tc, err := syslogTLS(s)
			if err != nil {
				return nil, err
			}
			so.Config.TLS = tc
		}
		o.Syslog = so
	}
	return accesslog.Open(o)
}

func syslogTLS(s *config.GatewaySyslog) (*tls.Config, error) {
	data, err := os.ReadFile(s.TLS.CA)
	if err != nil {
		return nil, fmt.Errorf("access_log.syslog.tls.ca: %w", err)
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("access_log.syslog.tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	tc := tlspolicy.Apply(&tls.Config{RootCAs: pool})
	if s.TLS.Cert != "" {
		kp, err := tls.LoadX509KeyPair(s.TLS.Cert, s.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("access_log.syslog.tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return tc, nil
}
