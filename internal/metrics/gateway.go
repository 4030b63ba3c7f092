package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Gateway implements the gateway's Metrics interface with Prometheus.
type Gateway struct {
	handshakes  *prometheus.CounterVec
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	upstream    *prometheus.HistogramVec
	tcp         *prometheus.CounterVec
	active      prometheus.Gauge
	parked      prometheus.Gauge
	revSize     prometheus.Gauge
	revPosition prometheus.Gauge
	revUpdated  atomic.Int64 // unix nanoseconds
	revStale    prometheus.Gauge
	cuts        *prometheus.CounterVec
	panics      *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	auth        *prometheus.CounterVec // requests without a certificate, by kind
	accessDrops *prometheus.CounterVec
	feed        atomic.Pointer[feedBox]
	certExpiry  prometheus.Gauge
	statusCache sync.Map // int -> string
	// reqCache holds the request counter and latency observers of each
	// (route, status, decision) seen, so that a request does not hash and
	// validate its labels three times over (about 1% of the keep-alive
	// request's CPU). Bounded by maxReqCache entries; past it the vectors
	// are asked directly. Sound: no child of these vectors is ever
	// deleted, so a cached child is the one the vector would return.
	reqCache sync.Map // reqKey -> *reqObs
	reqN     atomic.Int32
	now      func() time.Time
}

type reqKey struct {
	route    string
	status   int
	decision string
}

type reqObs struct {
	count   prometheus.Counter
	latency prometheus.Observer
	// upstream is looked up at the first request with an upstream time:
	// a route's upstream histogram appears only once it has one.
	upstream atomic.Pointer[prometheus.Observer]
}

// maxReqCache bounds reqCache: routes times the statuses seen times two
// decisions stays far below it in any real configuration.
const maxReqCache = 4096

// requestObservers returns the request's counter and observers.
func (g *Gateway) requestObservers(route string, status int, decision string) *reqObs {
	k := reqKey{route, status, decision}
	if o, ok := g.reqCache.Load(k); ok {
		return o.(*reqObs)
	}
	o := &reqObs{
		count:   g.requests.WithLabelValues(route, g.status(status), decision),
		latency: g.latency.WithLabelValues(route),
	}
	if g.reqN.Load() < maxReqCache {
		if _, loaded := g.reqCache.LoadOrStore(k, o); !loaded {
			g.reqN.Add(1)
		}
	}
	return o
}

// NewGateway registers the gateway's collectors on reg. now tells the
// time for the revocation set's age.
func NewGateway(reg prometheus.Registerer, now func() time.Time) *Gateway {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	g := &Gateway{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certgate_gateway_handshakes_total", Help: "TLS handshakes by result: ok or the refusal reason.",
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certgate_gateway_requests_total", Help: "HTTP requests by route, status and decision.",
		}, []string{"route", "status", "decision"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "certgate_gateway_request_duration_seconds", Help: "Total time to serve a request.", Buckets: buckets,
		}, []string{"route"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "certgate_gateway_upstream_duration_seconds", Help: "Time to the upstream's response header.", Buckets: buckets,
		}, []string{"route"}),
		tcp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certgate_gateway_tcp_connections_total", Help: "TCP route connections by route and decision.",
		}, []string{"route", "decision"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certgate_gateway_active_connections", Help: "Open client connections.",
		}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certgate_gateway_parked_connections",
			Help: "Open client connections waiting for their next request without a goroutine (part of the active ones).",
		}),
		revSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certgate_gateway_revocation_set_size", Help: "Revoked serials held in memory.",
		}),
		revPosition: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certgate_gateway_revocation_position", Help: "Feed position of the revocation set in force.",
		}),
		revStale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certgate_gateway_revocation_stale", Help: "1 while the revocation data is older than max_staleness and every request is refused with 503.",
		}),
		cuts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certgate_gateway_connections_cut_total", Help: "Live client connections the gateway closed, by reason: revoked, expired, revocation_stale.",
		}, []string{"reason"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certgate_gateway_panics_total", Help: "Panics recovered (logged with their stack) while the gateway kept serving, by where they happened.",
		}, []string{"where"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certgate_gateway_rate_limited_total", Help: "Requests answered 429 by their route's per-identity rate limit, by route.",
		}, []string{"route"}),
		accessDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certgate_gateway_access_log_dropped_total", Help: "Access log lines dropped because an output's queue (and, for syslog, its spool) was full, by output: file, stdout, syslog.",
		}, []string{"output"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certgate_gateway_uncertified_requests_total"}, []string{"auth"}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certgate_gateway_certificate_expiry_timestamp_seconds", Help: "NotAfter of the gateway's own certificate.",
		}),
		now: now,
	}
	revAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "certgate_gateway_revocation_set_age_seconds", Help: "Seconds since the revocation set was last confirmed current (-1: never).",
	}, func() float64 {
		u := g.revUpdated.Load()
		if u == 0 {
			return -1
		}
		return g.now().Sub(time.Unix(0, u)).Seconds()
	})
	feedConnected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "certgate_gateway_feed_connected", Help: "1 while the revocation feed stream is open.",
	}, func() float64 {
		if f := g.feed.Load(); f != nil {
			if ok, _ := f.Connected(); ok {
				return 1
			}
		}
		return 0
	})
	feedPosition := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "certgate_gateway_feed_position", Help: "Position of the last feed event applied.",
	}, func() float64 {
		if f := g.feed.Load(); f != nil {
			return float64(f.Position())
		}
		return 0
	})
	feedLag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "certgate_gateway_feed_lag_seconds", Help: "Seconds since the last feed message, event or heartbeat (-1: none yet).",
	}, func() float64 {
		f := g.feed.Load()
		if f == nil {
			return -1
		}
		last := f.LastContact()
		if last.IsZero() {
			return -1
		}
		return g.now().Sub(last).Seconds()
	})
	g.cuts.WithLabelValues("revoked")
	reg.MustRegister(g.accessDrops)
	reg.MustRegister(g.handshakes, g.requests, g.latency, g.upstream, g.tcp, g.active, g.parked, g.revSize, revAge, g.certExpiry,
		g.revPosition, g.revStale, g.cuts, g.panics, g.rateLimited, feedConnected, feedPosition, feedLag, &authCollector{g: g})
	return g
}

// Feed is what the feed metrics read; feed.Follower implements it.
type Feed interface {
	Connected() (bool, string)
	Position() int64
	LastContact() time.Time
}

type feedBox struct{ Feed }

// ObserveFeed makes the feed gauges (connected, position, lag) read f.
// Without it they read 0, 0 and -1.
func (g *Gateway) ObserveFeed(f Feed) { g.feed.Store(&feedBox{f}) }

// RevocationStale sets the staleness gauge.
func (g *Gateway) RevocationStale(stale bool) {
	v := 0.0
	if stale {
		v = 1
	}
	g.revStale.Set(v)
}

// Panic counts a recovered panic.
func (g *Gateway) Panic(where string) { g.panics.WithLabelValues(where).Inc() }

// RateLimited counts a request refused by a route's rate limit.
func (g *Gateway) RateLimited(route string) { g.rateLimited.WithLabelValues(route).Inc() }

// AccessLogDropped counts n access log lines an output dropped.
func (g *Gateway) AccessLogDropped(output string, n uint64) {
	g.accessDrops.WithLabelValues(output).Add(float64(n))
}

// AuthRequest counts a request that came without a certificate, by kind:
// legacy-key or none.
func (g *Gateway) AuthRequest(kind string) { g.auth.WithLabelValues(kind).Inc() }

// ConnectionCut counts a connection the gateway closed.
func (g *Gateway) ConnectionCut(reason string) { g.cuts.WithLabelValues(reason).Inc() }

// Handshake counts a handshake result.
func (g *Gateway) Handshake(result string) { g.handshakes.WithLabelValues(result).Inc() }

// Request counts a request and observes its latencies.
func (g *Gateway) Request(route string, status int, decision string, total, upstream time.Duration) {
	o := g.requestObservers(route, status, decision)
	o.count.Inc()
	o.latency.Observe(total.Seconds())
	if upstream > 0 {
		up := o.upstream.Load()
		if up == nil {
			obs := g.upstream.WithLabelValues(route)
			up = &obs
			o.upstream.Store(up)
		}
		(*up).Observe(upstream.Seconds())
	}
}

// TCPConnection counts a TCP route connection.
func (g *Gateway) TCPConnection(route, decision string, _ time.Duration) {
	g.tcp.WithLabelValues(route, decision).Inc()
}

// ActiveConnections moves the open connections gauge.
func (g *Gateway) ActiveConnections(delta int) { g.active.Add(float64(delta)) }

// ParkedConnections moves the parked connections gauge.
func (g *Gateway) ParkedConnections(delta int) { g.parked.Add(float64(delta)) }

// RevocationSet records the set's size, position and freshness.
func (g *Gateway) RevocationSet(size int, position int64, updated time.Time) {
	g.revSize.Set(float64(size))
	g.revPosition.Set(float64(position))
	if !updated.IsZero() {
		g.revUpdated.Store(updated.UnixNano())
	}
}

// CertificateExpiry records the gateway certificate's NotAfter.
func (g *Gateway) CertificateExpiry(notAfter time.Time) { g.certExpiry.Set(float64(notAfter.Unix())) }

func (g *Gateway) status(code int) string {
	if s, ok := g.statusCache.Load(code); ok {
		return s.(string)
	}
	s := strconv.Itoa(code)
	g.statusCache.Store(code, s)
	return s
}
