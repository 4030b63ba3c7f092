package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/wire"
)

// EnrollLoad configures a load run.
type EnrollLoad struct {
	ServerURL string // https://host:port of the certgate server
	Roots     *x509.CertPool
	// Clients is the number of concurrent clients, each with one keep-alive
	// TLS connection; 32 if zero.
	Clients int
	// Duration bounds the run: no enrollment is started after it (those in
	// flight finish). Zero means no bound: the run ends when every prepared
	// enrollment was sent.
	Duration time.Duration
	// HTTP2 speaks HTTP/2 (one connection per client all the same); the
	// default is HTTP/1.1.
	HTTP2   bool
	Timeout time.Duration // per request; 30 s if zero
	Clock   clock.Clock   // clock.Real{} if nil; must carry a monotonic reading
	// ServerCPU, if set, reads the CPU time the server has used so far (see
	// [ProcessCPU]); it is called as the measurement starts and ends.
	ServerCPU func() (time.Duration, error)
}

// Error kinds that are not an API error code.
const (
	KindTransport = "transport"  // no HTTP answer: connection refused, reset, TLS failure
	KindBadAnswer = "bad_answer" // a 201 without a certificate in it
	KindCancelled = "cancelled"  // the run's context ended while in flight
)

// EnrollResult is what a run measured.
type EnrollResult struct {
	Clients int
	Proto   string // HTTP/1.1 or HTTP/2.0
	// Connections is the number of TLS connections dialled, warm-up
	// included. Equal to Clients, no request paid for a handshake.
	Connections int
	Sent, OK    int
	// Errors counts failures by kind: "STATUS code" for an API error (e.g.
	// "403 token_used") or one of the Kind constants. ErrorSamples holds
	// one message of each kind.
	Errors       map[string]int
	ErrorSamples map[string]string
	// Elapsed runs from the first enrollment sent to the last answer.
	Elapsed time.Duration
	// Latency is the distribution of successful enrollments, request sent
	// to answer read.
	Latency *Histogram
	// ServerCPU is the CPU time the server used during the measurement;
	// zero when EnrollLoad.ServerCPU was not set.
	ServerCPU time.Duration
}

// Rate is successful enrollments per second.
func (r *EnrollResult) Rate() float64 { return perSecond(r.OK, r.Elapsed) }

// Failed is the number of enrollments that did not return a certificate.
func (r *EnrollResult) Failed() int { return r.Sent - r.OK }

// Run sends the prepared enrollments to the server, o.Clients at a time,
// and measures them. Each client first makes one warm-up request (GET
// /healthz) outside the measurement, so its connection is open and its
// handshake done before the clock starts. If ctx ends, Run stops sending,
// returns what it measured so far, and ctx's error.
func Enroll(ctx context.Context, o EnrollLoad, work []Enrollment) (*EnrollResult, error) {
	u, err := url.Parse(o.ServerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("bench: server URL %q must be an https:// URL", o.ServerURL)
	}
	if len(work) == 0 {
		return nil, errors.New("bench: nothing to send")
	}
	if err := checkLoad(&o.Clients, o.Duration); err != nil {
		return nil, err
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	base := strings.TrimRight(o.ServerURL, "/")
	var dials atomic.Int64
	clients := make([]*http.Client, o.Clients)
	for i := range clients {
		clients[i] = newClient(o, u.Hostname(), &dials)
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	proto, err := warmUp(ctx, clients, base+wire.PathHealth)
	if err != nil {
		return nil, err
	}

	res := &EnrollResult{Clients: o.Clients, Proto: proto}
	var rec *recorder
	res.Elapsed, res.ServerCPU, err = measure(o.Clock, o.ServerCPU, func(start time.Time) {
		rec = pull(ctx, o.Clock, start, o.Duration, o.Clients, len(work), func(w, i int) (string, string) {
			return sendEnrollment(ctx, clients[w], base+wire.PathEnroll, work[i].Body)
		})
	})
	if err != nil {
		return nil, err
	}
	res.Sent, res.OK, res.Errors, res.ErrorSamples, res.Latency = rec.sent, rec.ok, rec.errors, rec.samples, &rec.latency
	res.Connections = int(dials.Load())
	return res, ctx.Err()
}

// newClient returns an HTTP client with at most one connection, whose
// dials are counted.
func newClient(o EnrollLoad, serverName string, dials *atomic.Int64) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.Roots, ServerName: serverName},
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   o.HTTP2,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: o.Timeout}
}

// warmUp opens every client's connection with one GET and returns the
// negotiated protocol.
func warmUp(ctx context.Context, clients []*http.Client, healthURL string) (string, error) {
	protos := make([]string, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthURL, nil)
			if err != nil {
				errs[i] = err
				return
			}
			resp, err := c.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				errs[i] = fmt.Errorf("%s: %s: %s", healthURL, resp.Status, bytes.TrimSpace(body))
				return
			}
			protos[i] = resp.Proto
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("bench: warm-up: %w", err)
	}
	slices.Sort(protos)
	return strings.Join(slices.Compact(protos), ","), nil
}

// sendEnrollment sends one prepared enrollment. It returns "" on success, else the
// kind of failure and its message.
func sendEnrollment(ctx context.Context, c *http.Client, enrollURL string, body []byte) (kind, msg string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, enrollURL, bytes.NewReader(body))
	if err != nil {
		return KindTransport, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return KindTransport, err.Error()
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return KindTransport, err.Error()
	}
	if resp.StatusCode != http.StatusCreated {
		return apiFailure(resp.StatusCode, data)
	}
	var ok wire.EnrollResponse
	if err := json.Unmarshal(data, &ok); err != nil {
		return KindBadAnswer, err.Error()
	}
	if ok.Serial == "" || !strings.HasPrefix(ok.Certificate, "-----BEGIN CERTIFICATE-----") {
		return KindBadAnswer, "201 without a serial and a certificate"
	}
	return "", ""
}

// Print writes the figures in plain words.
func (r *EnrollResult) Print(w io.Writer) error {
	head := fmt.Sprintf("enrollments  %d sent, %d ok, %d failed in %s\n", r.Sent, r.OK, r.Failed(), r.Elapsed.Round(time.Millisecond)) +
		fmt.Sprintf("clients      %d over %s keep-alive TLS (%d connections dialled, warm-up included)\n", r.Clients, r.Proto, r.Connections)
	f := figures{noun: "enrollment", ok: r.OK, elapsed: r.Elapsed, serverCPU: r.ServerCPU, latency: r.Latency, errors: r.Errors, samples: r.ErrorSamples}
	return f.print(w, head)
}
