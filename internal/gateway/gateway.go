package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/legacykey"
	"github.com/certgate/certgate/internal/ratelimit"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/staple"
	"github.com/certgate/certgate/internal/tlspolicy"
	"github.com/certgate/certgate/internal/usage"
)

// Options are the gateway's collaborators. Zero fields get defaults.
type Options struct {
	Clock     clock.Clock       // default clock.Real
	Logger    *slog.Logger      // operational log; default discards
	AccessLog *accesslog.Logger // default discards
	// Usage, if set, counts every access-log entry with an identity for
	// the usage reports to the server.
	Usage       *usage.Table
	Metrics     Metrics            // default no-op
	Revocations *revocation.Holder // default an empty set
	// SweepInterval is how often connections are checked for certificate
	// expiry and the revocation data for staleness (default one second).
	SweepInterval time.Duration
	// MaxStaleness, when positive, is how old the revocation set may get
	// (by its Updated time and Clock) before the gateway fails closed:
	// every request is answered 503, new TCP route connections are
	// refused and tunnels are cut, until the set is updated again. A set
	// that was never updated is stale. Zero means revocation data never
	// goes stale (no source is configured).
	MaxStaleness time.Duration
	// Certificate, when set, supplies the gateway's own certificate (the
	// chain with Leaf set, and its key) at every client handshake and every
	// new connection to an https upstream with upstream_client_cert,
	// instead of the config's cert and key files. The gateway's renewing
	// agent sets it: a renewed certificate serves the next handshake while
	// open connections carry on with theirs. It must never return nil.
	Certificate func() *tls.Certificate
}

// Gateway is the mTLS reverse proxy.
type Gateway struct {
	clock   clock.Clock
	log     *slog.Logger
	access  *accesslog.Logger
	usage   *usage.Table
	reqIDs  *requestIDs
	metrics Metrics
	revoked *revocation.Holder
	sweep   time.Duration
	fresh   freshness

	rt           atomic.Pointer[runtime]
	tlsConfig    *tls.Config // the base of the two below; its ticket keys encrypt the HTTP listener's tickets
	answerConfig *tls.Config // the HTTP listener's: refusals answered over HTTP (refusal.go)
	tcpTLSConfig *tls.Config // TCP routes'
	refusals     refusals    // the HTTP listener's handshakes refused and under way
	// hsJobs hands an accepted connection to a waiting handshaker;
	// hsIdle counts the handshakers waiting (serve.go).
	hsJobs chan hsJob
	hsIdle atomic.Int32
	// waiting counts the HTTP/1.1 connections waiting for their next
	// request on a goroutine (serveH1); past parkPressure of them, a
	// connection waits parkAfterBusy instead of parkAfter before it
	// parks (h1proxy.go).
	waiting      atomic.Int32
	parkPressure atomic.Int32 // parkPressure (h1proxy.go); tests set others
	// handshakes counts the completed handshakes, releaseMin overrides
	// releaseMinNew when set (tests): release.go.
	handshakes atomic.Uint64
	releaseMin atomic.Int32
	tracker    *tracker
	// own returns the gateway's certificate: Options.Certificate, or the
	// one the current runtime loaded from files.
	own       func() *tls.Certificate
	ownSource bool         // Options.Certificate was set
	ownExpiry atomic.Int64 // NotAfter last reported to metrics, unix nanos
	ownLeaf   atomic.Pointer[x509.Certificate]

	// legacyKeys are the legacy static API keys accepted on the routes
	// that opt in (legacykey.go); nil holds none.
	legacyKeys atomic.Pointer[legacykey.Set]

	stapler      *staple.Stapler
	refusedConns sync.Map // net.Conn -> struct{}: connections being answered a refusal

	interMu  sync.Mutex
	interSrc map[string][]*x509.Certificate // known intermediates by source (SetIntermediates)

	mu    sync.Mutex // guards what follows
	pools map[string]*upstream
	// limiters are the routes' rate limit buckets, by route and limit.
	limiters map[string]*ratelimit.Limiter
	ln       net.Listener
	tcpLns   map[string]tcpListener
	h2       *h2server
	// poller watches parked connections (park.go): set by Start, nil
	// before or where it could not be made (nothing parks then).
	poller  atomic.Pointer[poller]
	started bool
	closed  bool
	// stopped is closed when the first Close has waited for every
	// goroutine; a later Close waits for it too.
	stopped chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds a gateway from a runtime config, reading the gateway's
// certificate and key files if the config names them. It listens on
// nothing until [Gateway.Start].
func New(cfg *Config, o Options) (*Gateway, error) {
	g := &Gateway{
		clock: o.Clock, log: o.Logger, access: o.AccessLog, usage: o.Usage, metrics: o.Metrics,
		reqIDs:  newRequestIDs(),
		revoked: o.Revocations, sweep: o.SweepInterval, fresh: freshness{max: o.MaxStaleness},
		tracker: newTracker(), pools: map[string]*upstream{}, tcpLns: map[string]tcpListener{}, hsJobs: make(chan hsJob),
		interSrc: map[string][]*x509.Certificate{},
	}
	g.parkPressure.Store(parkPressure)
	if g.clock == nil {
		g.clock = clock.Real{}
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.metrics == nil {
		g.metrics = nopMetrics{}
	}
	if g.revoked == nil {
		g.revoked = revocation.NewHolder()
	}
	if g.sweep <= 0 {
		g.sweep = time.Second
	}
	if o.Certificate != nil {
		g.own, g.ownSource = o.Certificate, true
	} else {
		g.own = func() *tls.Certificate { return g.rt.Load().cert }
	}
	if err := g.checkCertificateMode(cfg); err != nil {
		return nil, err
	}
	rt, err := buildRuntime(cfg, g.pools, g.limiters, g.own, !g.ownSource, g.knownIntermediates(cfg))
	if err != nil {
		return nil, err
	}
	g.rt.Store(rt)
	g.limiters = rt.limiters
	g.reportOwnCertificate()
	g.tlsConfig = tlspolicy.Apply(&tls.Config{
		// The chain is verified by verifyConnection, which also runs on
		// resumed sessions; RequestClientCert lets it name the reason when
		// a client sends no certificate at all. The HTTP listener answers
		// a refusal over HTTP instead (see refusal.go), on answerConfig.
		ClientAuth:       tls.RequestClientCert,
		GetCertificate:   func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return g.stapled(), nil },
		VerifyConnection: g.verifyConnection,
		NextProtos:       []string{"h2", "http/1.1"},
		// crypto/tls refuses to resume a session whose client certificate
		// has expired by this clock, so no ticket outlives its certificate.
		Time:          g.clock.Now,
		UnwrapSession: g.unwrapSession,
	})
	// TCP routes have no HTTP to answer in: a refusal is a TLS alert, and a
	// TLS 1.3 client without a certificate gets certificate_required.
	g.tcpTLSConfig = g.tlsConfig.Clone()
	g.tcpTLSConfig.ClientAuth = tls.RequireAnyClientCert
	g.tcpTLSConfig.NextProtos = nil
	g.answerConfig = g.tlsConfig.Clone()
	g.answerConfig.VerifyConnection = g.answeringVerify
	g.answerConfig.WrapSession = g.answeringWrapSession
	// The responder is the CA's: over https (a status URL on the server's
	// API listener) its certificate chains to the bundle.
	ocspRoots := x509.NewCertPool()
	for _, r := range cfg.roots {
		ocspRoots.AddCert(r)
	}
	ocspClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlspolicy.Apply(&tls.Config{RootCAs: ocspRoots})}}
	g.stapler = staple.New(staple.HTTPFetcher(ocspClient), g.clock.Now, g.log)
	g.rotateTicketKeys()
	g.revoked.OnChange(g.onRevocations)
	return g, nil
}

// checkCertificateMode refuses a config whose certificate source does not
// match how the gateway was built: cert and key files without
// Options.Certificate, or neither with it.
func (g *Gateway) checkCertificateMode(cfg *Config) error {
	switch files := cfg.certFile != "" || cfg.keyFile != ""; {
	case g.ownSource && files:
		return errors.New("gateway: the config names cert and key files, but the gateway's certificate comes from its identity; switching needs a restart")
	case !g.ownSource && !files:
		return errors.New("gateway: the config names no cert and key files and no certificate source was given; switching needs a restart")
	}
	return nil
}

// stapled is the gateway's certificate with the OCSP response of its
// issuer's responder stapled, when the certificate names one (the CA's
// status URL) and a good response is at hand; the response is fetched in
// the background and renewed at half its validity.
func (g *Gateway) stapled() *tls.Certificate {
	c := g.own()
	if len(c.Leaf.OCSPServer) == 0 {
		return c
	}
	return g.stapler.Staple(c)
}

// reportOwnCertificate tells the metrics the expiry of the gateway's own
// certificate when it changed since the last report.
// It also makes the CA certificates of the gateway's own chain known
// intermediates when the certificate changed: the gateway's issuer is the
// CA's current intermediate, so a renewal after a CA rotation brings the
// new one.
func (g *Gateway) reportOwnCertificate() {
	own := g.own()
	na := own.Leaf.NotAfter
	if g.ownExpiry.Swap(na.UnixNano()) != na.UnixNano() {
		g.metrics.CertificateExpiry(na)
	}
	if g.ownLeaf.Swap(own.Leaf) != own.Leaf {
		var chain []*x509.Certificate
		for _, der := range own.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil {
				chain = append(chain, c)
			}
		}
		g.SetIntermediates("own-certificate", chain)
	}
}

// SetIntermediates makes certs known intermediates on behalf of source,
// replacing what source gave before (nil removes them). Known
// intermediates complete the chain of a client that sends only its leaf
// (openssl -cert without -cert_chain, many Java and device stacks); they
// grant no trust by themselves, since a chain must still end at a root of
// the bundle. Certificates that are not CA certificates are ignored.
//
// The gateway calls it with the CA certificates of its own chain (source
// "own-certificate"); a follower of the server's change feed calls it when
// the CA publishes its next intermediate, so leaf-only clients of that
// intermediate verify from the moment the CA signs with it.
func (g *Gateway) SetIntermediates(source string, certs []*x509.Certificate) {
	g.interMu.Lock()
	defer g.interMu.Unlock()
	if certs == nil {
		delete(g.interSrc, source)
	} else {
		g.interSrc[source] = certs
	}
	if rt := g.rt.Load(); rt != nil {
		rt.trust.setIntermediates(g.knownIntermediatesLocked(rt.cfg))
	}
}

// knownIntermediatesLocked is the config's intermediates and every
// source's, without repeats; interMu is held.
func (g *Gateway) knownIntermediatesLocked(cfg *Config) []*x509.Certificate {
	out := append([]*x509.Certificate(nil), cfg.intermediates...)
	srcs := make([]string, 0, len(g.interSrc))
	for k := range g.interSrc {
		srcs = append(srcs, k)
	}
	slices.Sort(srcs)
	for _, k := range srcs {
		for _, c := range g.interSrc[k] {
			if !slices.ContainsFunc(out, c.Equal) {
				out = append(out, c)
			}
		}
	}
	return out
}

func (g *Gateway) knownIntermediates(cfg *Config) []*x509.Certificate {
	g.interMu.Lock()
	defer g.interMu.Unlock()
	return g.knownIntermediatesLocked(cfg)
}

// rotateTicketKeys makes every existing session ticket unusable, so that no
// session verified against old trust material resumes.
func (g *Gateway) rotateTicketKeys() {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		panic("gateway: crypto/rand failed: " + err.Error())
	}
	g.tlsConfig.SetSessionTicketKeys([][32]byte{k})
	g.answerConfig.SetSessionTicketKeys([][32]byte{k})
	g.tcpTLSConfig.SetSessionTicketKeys([][32]byte{k})
}

// verifyConnection runs after every handshake, full or resumed.
func (g *Gateway) verifyConnection(cs tls.ConnectionState) error {
	rt := g.rt.Load()
	now := g.clock.Now()
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return refuse(ReasonNoCertificate, "no client certificate")
	}
	var serial string
	if cs.DidResume {
		// The chain verified when the session was made (ticket keys rotate
		// when the bundle changes); check what time and revocation change.
		for _, c := range certs {
			if now.After(c.NotAfter) {
				return refuse(ReasonExpired, "certificate expired at %s, now is %s", c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
			}
		}
		// The identity in the trust domain, from the leaf's record
		// (leafinfo.go): a resumed session's certificate is crypto/tls's
		// cached one, the same object connection after connection.
		li, verr := rt.trust.leafInfos.get(certs[0], rt.trust.td)
		if verr != nil {
			return verr
		}
		serial = li.serial
	} else if _, verr := rt.trust.verifyChain(certs, now); verr != nil {
		return verr
	} else {
		serial = revocation.SerialOf(certs[0])
	}
	if g.revoked.Revoked(serial) {
		return refuse(ReasonRevoked, "certificate serial %s is revoked", serial)
	}
	if k, ok := issuerRevoked(g.revoked.Load(), certs); ok {
		return refuse(ReasonRevoked, "certificate was issued through a revoked CA certificate (key %s); renew it under the active intermediate", k)
	}
	return nil
}

// Start listens on the configured addresses and serves until ctx is done
// or [Gateway.Close] is called.
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return errors.New("gateway: already started")
	}
	rt := g.rt.Load()
	ln, err := listen(rt.cfg.listen)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.ctx, g.cancel = context.WithCancel(ctx)
	g.ln = ln
	g.started = true
	g.stopped = make(chan struct{})
	g.h2 = newH2Server(g)
	if p, err := newPoller(g); err != nil {
		// Connections wait on goroutines instead: more memory, same
		// service.
		g.log.Warn("idle connections will not be parked", "error", err)
	} else if p != nil {
		g.poller.Store(p)
		g.wg.Add(2)
		go p.run()
		go g.releaseLoop()
	}
	g.wg.Add(2)
	go func() { defer g.wg.Done(); g.acceptLoop(ln, true, g.serveHTTP) }()
	go func() { defer g.wg.Done(); g.sweepLoop() }()
	if err := g.startTCPLocked(rt); err != nil {
		g.mu.Unlock()
		g.Close()
		g.mu.Lock()
		return err
	}
	go func() {
		<-g.ctx.Done()
		g.Close()
	}()
	g.log.Info("gateway listening", "addr", ln.Addr().String(), "routes", len(rt.cfg.routes), "tcp_routes", len(rt.cfg.tcpRoutes))
	return nil
}

// startTCPLocked starts listeners for TCP routes that have none and stops
// those of removed routes.
func (g *Gateway) startTCPLocked(rt *runtime) error {
	for name, l := range g.tcpLns {
		if r, ok := rt.tcp[name]; !ok || r.listen != l.listen {
			l.ln.Close()
			delete(g.tcpLns, name)
		}
	}
	names := make([]string, 0, len(rt.tcp))
	for name := range rt.tcp {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, ok := g.tcpLns[name]; ok {
			continue
		}
		r := rt.tcp[name]
		ln, err := listen(r.listen)
		if err != nil {
			return fmt.Errorf("gateway: tcp route %q: %w", name, err)
		}
		g.tcpLns[name] = tcpListener{ln: ln, listen: r.listen}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.acceptLoop(ln, false, func(t *tracked) { g.serveTCP(name, t) })
		}()
		g.log.Info("tcp route listening", "route", name, "addr", ln.Addr().String(), "backend", r.backend)
	}
	return nil
}

type tcpListener struct {
	ln     net.Listener
	listen string // as configured
}

// Addr is the address of the HTTP listener, nil before Start.
func (g *Gateway) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return nil
	}
	return g.ln.Addr()
}

// TCPAddr is the address of a TCP route's listener, nil if none.
func (g *Gateway) TCPAddr(name string) net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l, ok := g.tcpLns[name]; ok {
		return l.ln.Addr()
	}
	return nil
}

// Reload applies a new config to new requests and connections without
// touching open ones. On error nothing changes. Listen addresses of the
// HTTP listener, metrics and access log need a restart (each changed one
// is named in a warning, see reloadEffect); TCP routes are started and
// stopped.
func (g *Gateway) Reload(cfg *Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: closed")
	}
	old := g.rt.Load()
	pools := map[string]*upstream{}
	for k, v := range g.pools {
		pools[k] = v
	}
	if err := g.checkCertificateMode(cfg); err != nil {
		return err
	}
	rt, err := buildRuntime(cfg, pools, g.limiters, g.own, !g.ownSource, g.knownIntermediates(cfg))
	if err != nil {
		return err
	}
	var applied []string
	restart := map[string]string{}
	if old.cfg.schema != nil && cfg.schema != nil {
		applied, restart = reloadPlan(old.cfg.schema, cfg.schema)
	}
	if cfg.listen != old.cfg.listen {
		c := *cfg
		c.listen = old.cfg.listen
		rt.cfg = &c
	}
	needsRestart := slices.Sorted(maps.Keys(restart))
	for _, field := range needsRestart {
		g.log.Warn("reload: "+field+" changed; it needs a restart ("+restart[field]+"), the running value stays", "setting", field)
	}
	g.rt.Store(rt)
	// A source may have changed between the build and the swap.
	g.interMu.Lock()
	rt.trust.setIntermediates(g.knownIntermediatesLocked(cfg))
	g.interMu.Unlock()
	// Close the pools no route uses any more.
	used := map[string]bool{}
	for _, r := range rt.routes {
		used[r.up.key] = true
	}
	for k, up := range pools {
		if !used[k] {
			up.close()
			delete(pools, k)
		}
	}
	g.pools = pools
	g.limiters = rt.limiters
	if !slices.EqualFunc(old.cfg.roots, rt.cfg.roots, func(a, b *x509.Certificate) bool { return a.Equal(b) }) || old.cfg.trustDomain != rt.cfg.trustDomain {
		g.rotateTicketKeys()
	}
	g.reportOwnCertificate()
	if g.started {
		if err := g.startTCPLocked(rt); err != nil {
			g.log.Error("reload: tcp route listener", "error", err)
		}
	}
	g.log.Info("configuration reloaded", "routes", len(cfg.routes), "tcp_routes", len(cfg.tcpRoutes), "applied", applied, "needs_restart", needsRestart)
	return nil
}

// CloseBySerial closes every live connection that authenticated with the
// certificate of this canonical serial, logging each as cut because the
// certificate is revoked, and returns how many it closed. The revocation
// set's change hook calls it for every newly revoked serial.
func (g *Gateway) CloseBySerial(serial string) int {
	n := 0
	for _, t := range g.tracker.serial(serial) {
		if g.cut(t, CutRevoked) {
			n++
		}
	}
	return n
}

// Stale reports whether the gateway is failing closed because its
// revocation data is older than Options.MaxStaleness.
func (g *Gateway) Stale() bool { return g.checkStale(g.clock.Now()) }

// Connections returns the number of live client connections.
func (g *Gateway) Connections() int { return g.tracker.count() }

// sweepLoop closes connections whose certificate has expired by the clock.
func (g *Gateway) sweepLoop() {
	t := time.NewTicker(g.sweep)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		g.sweepOnce()
	}
}

func (g *Gateway) sweepOnce() {
	defer g.recovered(panicSweep)
	now := g.clock.Now()
	for _, c := range g.tracker.collect(func(t *tracked) bool { return now.After(t.peer.notAfter) }) {
		if g.cut(c, CutExpired) {
			g.log.Info("closed connection: certificate expired", "identity", c.peer.id, "serial", c.peer.serial, "not_after", c.peer.notAfter)
		}
	}
	g.checkStale(now)
	g.reportOwnCertificate()
}

// Close stops listening, closes every connection and waits for the
// gateway's goroutines: when it returns, every request has been logged
// (the caller closes the access log after it). A Close while another runs
// (the one Start's context triggers, say) waits for that one to finish.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed || !g.started {
		g.closed = true
		stopped := g.stopped
		g.mu.Unlock()
		if stopped != nil {
			<-stopped
		}
		return nil
	}
	g.closed = true
	defer close(g.stopped)
	g.cancel()
	g.ln.Close()
	for _, l := range g.tcpLns {
		l.ln.Close()
	}
	g.h2.close()
	g.mu.Unlock()
	// Parked connections have no goroutine that would notice their close.
	for _, t := range g.poller.Load().shutdown() {
		g.untrack(t)
	}
	for _, t := range g.tracker.collect(func(*tracked) bool { return true }) {
		t.close()
	}
	g.refusedConns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
	g.wg.Wait()
	g.mu.Lock()
	for _, up := range g.pools {
		up.close()
	}
	g.mu.Unlock()
	return nil
}
