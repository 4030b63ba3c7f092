package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/wire"
)

// RenewLoad configures a renewal run.
type RenewLoad struct {
	ServerURL string // https://host:port of the certgate server
	Roots     *x509.CertPool
	// Clients is the number of renewals in flight at once; 32 if zero. Each
	// renewal opens a new TLS connection, presents the agent's current
	// certificate, sends POST /v1/renew and closes the connection.
	Clients int
	// Duration bounds the run: no renewal is started after it. Zero: every
	// agent renews once.
	Duration time.Duration
	// Resume makes each renewal resume the agent's TLS session (see
	// [WarmSessions], which must have run) instead of a full handshake.
	Resume    bool
	Timeout   time.Duration // per renewal, handshake included; 30 s if zero
	Clock     clock.Clock   // clock.Real{} if nil
	ServerCPU func() (time.Duration, error)
}

// RenewResult is what a renewal run or a storm measured.
type RenewResult struct {
	Resume  bool // sessions resumed (else full handshakes)
	Clients int  // renewals in flight at most (storm: the peak reached)
	Sent    int
	OK      int
	// Resumed counts renewals whose connection resumed a session; in a
	// resumed run every one should.
	Resumed      int
	Errors       map[string]int
	ErrorSamples map[string]string
	// Elapsed runs from the start of the measurement to the last answer.
	Elapsed time.Duration
	// Latency is the distribution of successful renewals, from the dial to
	// the answer read: TCP connect, handshake, request, issuance.
	Latency   *Histogram
	ServerCPU time.Duration
	// Window is set for a storm: the span the renewals were spread over.
	Window time.Duration
}

// Rate is successful renewals per second.
func (r *RenewResult) Rate() float64 { return perSecond(r.OK, r.Elapsed) }

// Failed is the number of renewals that did not return a certificate.
func (r *RenewResult) Failed() int { return r.Sent - r.OK }

// renewer sends renewals: one connection each, a hand-written HTTP/1.1
// request (Connection: close) so the load generator spends little CPU of
// its own.
type renewer struct {
	addr, host string
	timeout    time.Duration
	pin        *pinVerifier
}

func newRenewer(serverURL string, roots *x509.CertPool, timeout time.Duration) (*renewer, error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("bench: server URL %q must be an https:// URL", serverURL)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &renewer{addr: net.JoinHostPort(host, port), host: host, timeout: timeout, pin: &pinVerifier{roots: roots, name: host}}, nil
}

func (rn *renewer) config(a *Agent) *tls.Config {
	return &tls.Config{
		Certificates:       []tls.Certificate{a.Cert},
		ServerName:         rn.host,
		InsecureSkipVerify: true, // verified by rn.pin: chain once, then the pinned leaf
		VerifyConnection:   rn.pin.verify,
		ClientSessionCache: a.Sessions,
		NextProtos:         []string{"http/1.1"},
		MinVersion:         tls.VersionTLS12,
	}
}

// exchange dials a new connection for a, sends req and returns the
// answer's status and body, and whether the session was resumed.
func (rn *renewer) exchange(ctx context.Context, a *Agent, req []byte) (status int, body []byte, resumed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, rn.timeout)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: rn.config(a)}
	nc, err := d.DialContext(ctx, "tcp", rn.addr)
	if err != nil {
		return 0, nil, false, err
	}
	conn := nc.(*tls.Conn)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write(req); err != nil {
		return 0, nil, false, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 8<<10), nil)
	if err != nil {
		return 0, nil, false, err
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return 0, nil, false, err
	}
	return resp.StatusCode, body, conn.ConnectionState().DidResume, nil
}

func (rn *renewer) request(method, path string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: " + rn.host + "\r\nConnection: close\r\n")
	if body != nil {
		b.WriteString("Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// renew sends a's renewal and checks the answer: 201, the agent's
// identity, and a certificate for the new key. It returns "" on success,
// else the kind of failure and its message.
func (rn *renewer) renew(ctx context.Context, a *Agent, req []byte) (resumed bool, kind, msg string) {
	status, body, resumed, err := rn.exchange(ctx, a, req)
	if err != nil {
		return false, KindTransport, err.Error()
	}
	if status != http.StatusCreated {
		kind, msg := apiFailure(status, body)
		return resumed, kind, msg
	}
	if m := checkRenewal(a, body); m != "" {
		return resumed, KindBadAnswer, m
	}
	return resumed, "", ""
}

// apiFailure names a non-201 answer by its status and API error code.
func apiFailure(status int, body []byte) (kind, msg string) {
	e, ok := wire.DecodeError(body)
	if !ok {
		return fmt.Sprintf("%d http", status), strings.TrimSpace(string(body))
	}
	return fmt.Sprintf("%d %s", status, e.Code), e.Message
}

// checkRenewal returns "" if body is a renewal answer for a, else what is
// wrong with it.
func checkRenewal(a *Agent, body []byte) string {
	var ok wire.EnrollResponse
	if err := json.Unmarshal(body, &ok); err != nil {
		return err.Error()
	}
	certs, err := pemutil.ParseCertificates([]byte(ok.Certificate))
	if err != nil {
		return "certificate: " + err.Error()
	}
	if len(certs) == 0 {
		return "no certificate in the answer"
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, _ := certs[0].PublicKey.(equaler)
	switch leaf := certs[0]; {
	case ok.Serial == "" || ok.Identity != a.Identity:
		return fmt.Sprintf("serial %q identity %q, want identity %s", ok.Serial, ok.Identity, a.Identity)
	case len(leaf.URIs) != 1 || leaf.URIs[0].String() != a.Identity:
		return "certificate does not name " + a.Identity
	case pub == nil || !pub.Equal(a.Next):
		return "certificate is not for the new key"
	}
	return ""
}

// WarmSessions gives every agent a session cache and fills it: one
// connection per agent, with its current certificate, one GET /healthz
// (which carries the session ticket the server sends after the
// handshake). A renewal in resumed mode then resumes that session, as an
// agent that talked to the server with its current certificate before
// would. Not measured; par connections at a time.
func WarmSessions(ctx context.Context, serverURL string, roots *x509.CertPool, agents []*Agent, par int) error {
	rn, err := newRenewer(serverURL, roots, 0)
	if err != nil {
		return err
	}
	req := rn.request(http.MethodGet, wire.PathHealth, nil)
	return parallel(ctx, len(agents), max(par, 1), func(i int) error {
		a := agents[i]
		a.Sessions = tls.NewLRUClientSessionCache(1)
		status, body, _, err := rn.exchange(ctx, a, req)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("%d: %s", status, bytes.TrimSpace(body))
		}
		if err != nil {
			return fmt.Errorf("bench: warm session of %s: %w", a.Identity, err)
		}
		return nil
	})
}

// renewerFor checks that a resumed run's agents have sessions (see
// [WarmSessions]) and returns a renewer for them; a run of full handshakes
// drops the agents' sessions.
func renewerFor(serverURL string, roots *x509.CertPool, timeout time.Duration, resume bool, agents []*Agent) (*renewer, error) {
	if resume && agents[0].Sessions == nil {
		return nil, errors.New("bench: resumed mode needs WarmSessions first")
	}
	rn, err := newRenewer(serverURL, roots, timeout)
	if err != nil {
		return nil, err
	}
	if !resume {
		for _, a := range agents {
			a.Sessions = nil
		}
	}
	return rn, nil
}

// RunRenew renews every agent once, o.Clients at a time, each on a new
// connection, and measures it. If ctx ends, it stops sending and returns
// what it measured so far with ctx's error.
func Renew(ctx context.Context, o RenewLoad, agents []*Agent) (*RenewResult, error) {
	if len(agents) == 0 {
		return nil, errors.New("bench: no agents to renew")
	}
	if err := checkLoad(&o.Clients, o.Duration); err != nil {
		return nil, err
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	rn, err := renewerFor(o.ServerURL, o.Roots, o.Timeout, o.Resume, agents)
	if err != nil {
		return nil, err
	}
	reqs := make([][]byte, len(agents))
	for i, a := range agents {
		reqs[i] = rn.request(http.MethodPost, wire.PathRenew, a.Body)
	}
	res := &RenewResult{Resume: o.Resume, Clients: min(o.Clients, len(agents))}
	resumed := make([]int, res.Clients)
	var rec *recorder
	res.Elapsed, res.ServerCPU, err = measure(o.Clock, o.ServerCPU, func(start time.Time) {
		rec = pull(ctx, o.Clock, start, o.Duration, res.Clients, len(agents), func(w, i int) (string, string) {
			didResume, kind, msg := rn.renew(ctx, agents[i], reqs[i])
			if didResume {
				resumed[w]++
			}
			return kind, msg
		})
	})
	if err != nil {
		return nil, err
	}
	res.record(rec)
	for _, n := range resumed {
		res.Resumed += n
	}
	return res, ctx.Err()
}

// record sets r's counts, errors and latency from rec.
func (r *RenewResult) record(rec *recorder) {
	r.Sent, r.OK, r.Errors, r.ErrorSamples, r.Latency = rec.sent, rec.ok, rec.errors, rec.samples, &rec.latency
}
