// Package metrics is the only package that imports Prometheus. It turns the
// domain events other packages report through their own small interfaces
// (gateway.Metrics) into Prometheus collectors on a registry, and serves
// them on their own listener.
//
// It is not a general metrics facade: each consumer declares the events it
// emits and gets a no-op default, so tests and embedders need none of this.
package metrics
