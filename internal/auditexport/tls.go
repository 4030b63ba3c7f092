package auditexport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/tlspolicy"
)

// TLSConfig is the TLS of a syslog collector's connection: the roots in
// caFile verify it; certFile and keyFile, if set, are the client
// certificate it may ask for.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("auditexport: syslog CA: %w", err)
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("auditexport: syslog CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	tc := tlspolicy.Apply(&tls.Config{RootCAs: pool})
	if certFile != "" || keyFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("auditexport: syslog client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return tc, nil
}
