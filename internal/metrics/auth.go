package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// authDesc is the migration off static API keys as a graph: HTTP requests
// by how the client authenticated.
var authDesc = prometheus.NewDesc("certgate_gateway_requests_by_auth_total",
	"HTTP requests by how the client authenticated: certificate, legacy-key (a legacy static API key on a route that takes them) or none (neither: refused no_certificate).",
	[]string{"auth"}, nil)

// authCollector derives the certificate count at scrape time, as every
// request (certgate_gateway_requests_total) minus those counted without a
// certificate: the request path of a certificate client does nothing more
// for it.
type authCollector struct{ g *Gateway }

func (c *authCollector) Describe(ch chan<- *prometheus.Desc) { ch <- authDesc }

func (c *authCollector) Collect(ch chan<- prometheus.Metric) {
	total := sumCounters(c.g.requests)
	byKind := map[string]float64{"legacy-key": 0, "none": 0}
	for k := range byKind {
		byKind[k] = counterValue(c.g.auth.WithLabelValues(k))
	}
	ch <- prometheus.MustNewConstMetric(authDesc, prometheus.CounterValue, max(0, total-byKind["legacy-key"]-byKind["none"]), "certificate")
	for k, v := range byKind {
		ch <- prometheus.MustNewConstMetric(authDesc, prometheus.CounterValue, v, k)
	}
}

func counterValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil || d.Counter == nil {
		return 0
	}
	return d.Counter.GetValue()
}

func sumCounters(v *prometheus.CounterVec) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { v.Collect(ch); close(ch) }()
	var n float64
	for m := range ch {
		n += counterValue(m)
	}
	return n
}
