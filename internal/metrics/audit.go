package metrics

import "github.com/prometheus/client_golang/prometheus"

// AuditWitness is what a gateway's witness of the server's audit log
// (auditcheck.Watcher) reports.
type AuditWitness struct {
	alarms prometheus.Counter
	size   prometheus.Gauge
}

// NewAuditWitness registers the witness's collectors on reg.
func NewAuditWitness(reg prometheus.Registerer) *AuditWitness {
	w := &AuditWitness{
		alarms: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certgate_audit_checkpoint_inconsistent_total",
			Help: "Audit checkpoints the server showed that do not extend the one this witness remembers (the server's audit log truncated or rewritten).",
		}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certgate_audit_checkpoint_size", Help: "Records covered by the newest audit checkpoint this witness accepted.",
		}),
	}
	reg.MustRegister(w.alarms, w.size)
	return w
}

// Inconsistent counts a checkpoint that does not extend the remembered one.
func (w *AuditWitness) Inconsistent() { w.alarms.Inc() }

// Accepted records the size of a checkpoint the witness accepted.
func (w *AuditWitness) Accepted(size int64) { w.size.Set(float64(size)) }
