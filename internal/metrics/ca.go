package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CA exports the CA certificates' expiry, for alerts on a CA about to
// expire (a rotation that did not happen).
type CA struct {
	expiry *prometheus.GaugeVec
}

// NewCA registers the CA metrics on reg.
func NewCA(reg prometheus.Registerer) *CA {
	c := &CA{expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "certgate_ca_expiry_timestamp_seconds",
		Help: "NotAfter of each CA certificate in service (next, active, retiring), in Unix seconds, by kind (root, intermediate, cross), generation, state and key ID.",
	}, []string{"kind", "generation", "state", "key_id"})}
	reg.MustRegister(c.expiry)
	return c
}

// CACert is one CA certificate to export.
type CACert struct {
	Kind       string
	Generation int
	State      string
	KeyID      string
	NotAfter   time.Time
}

// Observe replaces what is exported with certs.
func (c *CA) Observe(certs []CACert) {
	c.expiry.Reset()
	for _, x := range certs {
		c.expiry.WithLabelValues(x.Kind, strconv.Itoa(x.Generation), x.State, x.KeyID).Set(float64(x.NotAfter.Unix()))
	}
}
