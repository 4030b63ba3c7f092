package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runTarget warms the target up (not measured), then measures one mode
// against it. A resumed run keeps the sessions of its warm-up.
func runTarget(ctx context.Context, t tlsTarget, mode string, o TLSOptions, cert tls.Certificate, roots *x509.CertPool) TLSRow {
	tc := &tls.Config{
		Certificates:     []tls.Certificate{cert},
		NextProtos:       []string{"http/1.1"},
		CurvePreferences: []tls.CurveID{tlsCurves[o.Curve]},
		MinVersion:       tls.VersionTLS12,
		// Verified by pinVerifier when there are roots; see TLSOptions.CACert.
		InsecureSkipVerify: true,
	}
	if roots != nil {
		tc.VerifyConnection = (&pinVerifier{roots: roots, name: o.ServerName}).verify
	}
	if mode == "resumed" {
		tc.ClientSessionCache = tls.NewLRUClientSessionCache(o.Concurrency * 2)
	}
	var warm TLSRow
	if o.Warmup > 0 {
		warm = loadTarget(ctx, t, mode, o, o.Warmup, tc)
	}
	r := loadTarget(ctx, t, mode, o, o.Duration, tc)
	r.WarmupOps = warm.Ops
	return r
}

// loadTarget drives one mode against one target for d. Dials do not take
// ctx, so the end of the run is not counted as a dial error.
func loadTarget(ctx context.Context, t tlsTarget, mode string, o TLSOptions, d time.Duration, tc *tls.Config) TLSRow {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ops, errs, notResumed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var params string
	var lat Histogram
	fail := func(err error) {
		errs.Add(1)
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	note := func(cs tls.ConnectionState) {
		mu.Lock()
		if params == "" {
			params = tlsParams(cs)
		}
		mu.Unlock()
	}
	closeReq := []byte("GET " + o.Path + " HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
	keepReq := []byte("GET " + o.Path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	var cpu0 time.Duration
	if t.pid != 0 {
		cpu0, _ = ProcessCPU(t.pid)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local Histogram
			defer func() { mu.Lock(); lat.Merge(&local); mu.Unlock() }()
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: tc}
			if mode == "keepalive" {
				for ctx.Err() == nil {
					c, err := d.DialContext(context.Background(), "tcp", t.addr)
					if err != nil {
						if ctx.Err() == nil {
							fail(err)
						}
						continue
					}
					note(c.(*tls.Conn).ConnectionState())
					a := newAnswers(c)
					for ctx.Err() == nil {
						t0 := time.Now()
						if err := exchange(c, a, keepReq); err != nil {
							if ctx.Err() == nil {
								fail(err)
							}
							break
						}
						local.Add(time.Since(t0))
						ops.Add(1)
					}
					c.Close()
				}
				return
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				c, err := d.DialContext(context.Background(), "tcp", t.addr)
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					continue
				}
				err = exchangeClose(c, closeReq)
				cs := c.(*tls.Conn).ConnectionState()
				c.Close()
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					continue
				}
				note(cs)
				if mode == "resumed" && !cs.DidResume {
					notResumed.Add(1)
				}
				local.Add(time.Since(t0))
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	r := TLSRow{Ops: ops.Load(), Errors: errs.Load(), NotResumed: notResumed.Load(), Elapsed: time.Since(start), FirstErr: firstErr, Params: params}
	if t.pid != 0 {
		if cpu1, err := ProcessCPU(t.pid); err == nil {
			r.ServerCPU = cpu1 - cpu0
		} else if r.FirstErr == nil {
			r.FirstErr = err
		}
	}
	r.P50, r.P99 = lat.Quantile(0.5), lat.Quantile(0.99)
	return r
}

// tlsParams names what a connection negotiated: version, key-exchange
// group and the server certificate's key type, e.g.
// TLS1.3/CurveP256/ecdsa-p256.
func tlsParams(cs tls.ConnectionState) string {
	v := strings.ReplaceAll(tls.VersionName(cs.Version), " ", "")
	key := "none"
	if len(cs.PeerCertificates) > 0 {
		key = keyName(cs.PeerCertificates[0])
	}
	return v + "/" + cs.CurveID.String() + "/" + key
}
