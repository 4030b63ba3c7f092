// Package gatewaytest runs a real gateway in a test's process, as
// `certgate gateway` runs it (internal/gatewayd), from a config the test
// describes with [Config]. It is testenv's gateway helper, in a package of
// its own because the gateway's runtime imports packages (the agent, the
// feed follower) whose own tests use testenv. Only _test.go files may
// import it.
package gatewaytest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/gatewayd"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testenv"
)

// Config is the YAML config of a test gateway, the fields tests
// vary; [Config.YAML] writes it. Paths are absolute or relative to
// the gateway's directory.
type Config struct {
	TrustDomain string // example.org if empty
	Bundle      string // trust bundle file
	Cert, Key   string // the gateway's own certificate and key files
	ServerURLs  []string
	// Mode is the revocation mode, "feed" (default) or "pull"; Refresh is
	// the pull interval, MaxStaleness and MaxBackoff the feed's bounds,
	// each as YAML durations ("1m"); empty leaves the default.
	Mode, Refresh, MaxStaleness, MaxBackoff string
	AccessLog                               string // access_log.path; "-" if empty (the Gateway's Access)
	Routes                                  []Route
	TCPRoutes                               []TCPRoute
	// Extra is appended as is (an identity section, say).
	Extra string
}

// Route is an HTTP route of a Config.
type Route struct {
	Name, PathPrefix, Upstream string
	Allow                      []string
	// Extra is appended to the route as is, indented under it
	// ("legacy_keys: {header: X-API-Key, until: ...}").
	Extra string
}

// TCPRoute is a TCP route of a Config.
type TCPRoute struct {
	Name, Listen, Backend string
	Allow                 []string
}

// YAML returns the config file's text.
func (c Config) YAML() string {
	td := c.TrustDomain
	if td == "" {
		td = "example.org"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\ntrust_domain: %s\n", td)
	for _, kv := range [][2]string{{"bundle", c.Bundle}, {"cert", c.Cert}, {"key", c.Key}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
		}
	}
	if len(c.ServerURLs) > 0 {
		fmt.Fprintf(&b, "server:\n  urls: [%s]\n", strings.Join(c.ServerURLs, ", "))
		if c.Refresh != "" {
			fmt.Fprintf(&b, "  revocation_refresh: %s\n", c.Refresh)
		}
	}
	mode := c.Mode
	if mode == "" {
		mode = "feed"
	}
	fmt.Fprintf(&b, "revocation:\n  mode: %s\n", mode)
	if c.MaxStaleness != "" {
		fmt.Fprintf(&b, "  max_staleness: %s\n", c.MaxStaleness)
	}
	if c.MaxBackoff != "" {
		fmt.Fprintf(&b, "  max_backoff: %s\n", c.MaxBackoff)
	}
	access := c.AccessLog
	if access == "" {
		access = "-"
	}
	fmt.Fprintf(&b, "access_log:\n  path: %q\n", access)
	if len(c.Routes) > 0 {
		b.WriteString("routes:\n")
	}
	for _, r := range c.Routes {
		fmt.Fprintf(&b, "  - name: %s\n    upstream: %s\n    allow: [%s]\n", r.Name, r.Upstream, quoted(r.Allow))
		if r.PathPrefix != "" {
			fmt.Fprintf(&b, "    path_prefix: %s\n", r.PathPrefix)
		}
		if r.Extra != "" {
			fmt.Fprintf(&b, "    %s\n", r.Extra)
		}
	}
	if len(c.TCPRoutes) > 0 {
		b.WriteString("tcp_routes:\n")
	}
	for _, r := range c.TCPRoutes {
		fmt.Fprintf(&b, "  - name: %s\n    listen: %s\n    backend: %s\n    allow: [%s]\n", r.Name, r.Listen, r.Backend, quoted(r.Allow))
	}
	b.WriteString(c.Extra)
	return b.String()
}

func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// Options say how to run a test gateway.
type Options struct {
	// Dir holds the config file (gateway.yaml) and is where relative
	// paths start; a new temporary directory if empty.
	Dir    string
	Config Config
	// File, if set, is a config file to run as it is; Config is not
	// written then.
	File string
	// Clock is the gateway's (clock.Real{} if nil), Token the enrollment
	// token of an identity section, FirstSetWait as in gatewayd.Options
	// (10 s if zero: a loaded test machine is slow).
	Clock        clock.Clock
	Token        string
	FirstSetWait time.Duration
	// Holder receives the revocation sets; a test hooks its changes.
	Holder *revocation.Holder
	// Reload, if set, makes the gateway read its files now (what SIGHUP
	// does), without waiting for its poll: a test whose fake clock runs
	// days in a second of real time.
	Reload <-chan os.Signal
	Log    *slog.Logger // the test's log (warnings and up) if nil
}

// Gateway is a gateway running in this process as `certgate gateway` runs
// it (internal/gatewayd), until the test ends.
type Gateway struct {
	Addr   string              // host:port of the HTTPS listener
	Dir    string              // its directory
	Config string              // its config file
	Access *testenv.SyncBuffer // the access log, when access_log.path is "-"
	stop   func() error
}

// Stop shuts the gateway down as SIGTERM does and returns what it stopped
// with; the test's end does not stop it again.
func (g *Gateway) Stop() error { return g.stop() }

// Start writes o.Config into o.Dir and runs the gateway until the
// test ends. It returns once the gateway listens, or the error it stopped
// with before.
func Start(t testing.TB, o Options) (*Gateway, error) {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.FirstSetWait == 0 {
		o.FirstSetWait = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(testenv.LogWriter{T: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	g := &Gateway{Dir: o.Dir, Config: o.File, Access: &testenv.SyncBuffer{}}
	if g.Config == "" {
		g.Config = filepath.Join(o.Dir, "gateway.yaml")
		if err := os.WriteFile(g.Config, []byte(o.Config.YAML()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- gatewayd.Run(ctx, gatewayd.Options{
			Config: g.Config, Log: o.Log, Out: g.Access, Clock: o.Clock, Token: o.Token, FirstSetWait: o.FirstSetWait, Holder: o.Holder,
			Reload: o.Reload,
			Ready:  func(gw *gateway.Gateway) { ready <- gw.Addr().String() },
		})
	}()
	select {
	case g.Addr = <-ready:
		var once sync.Once
		var stopErr error
		g.stop = func() error {
			once.Do(func() {
				cancel()
				stopErr = <-done
			})
			return stopErr
		}
		t.Cleanup(func() {
			if err := g.stop(); err != nil {
				t.Errorf("gateway: %v", err)
			}
		})
		return g, nil
	case err := <-done:
		cancel()
		return nil, err
	}
}

// MustStart is Start failing the test on an error.
func MustStart(t testing.TB, o Options) *Gateway {
	t.Helper()
	g, err := Start(t, o)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	return g
}
