package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/gateway/h1"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/revocation"
)

// Refusals a person can act on. A TLS alert cannot say why: crypto/tls
// sends bad_certificate for every refusal its VerifyConnection returns,
// and in TLS 1.3 it arrives after the client thinks the handshake is done,
// so curl over HTTP/2 prints "getpeername() failed ... errno 107" for a
// revoked, missing or foreign certificate alike. So on the HTTP listener
// the gateway completes the handshake of a client it refuses, never lets
// it reach an upstream, and answers its requests with 401 (no
// certificate) or 403 (a certificate refused) and a JSON body naming the
// reason and what to do, as nginx answers 495 and 496. The connection is
// closed after one HTTP/1.1 answer, or kept for HTTP/2 no longer than
// refusalLinger. Its session is never resumed (refusedSessionMarker). TCP
// routes, which have no HTTP, refuse in the handshake with a TLS alert.

// refusalLinger bounds how long a refused connection is kept.
const refusalLinger = 5 * time.Second

// refusedSessionMarker is added to the session ticket of a refused
// connection; unwrapSession then declines to resume it, so the next
// connection is verified in full.
var refusedSessionMarker = []byte("certgate-refused")

// The HTTP listener's handshakes run on one shared config (answerConfig)
// whose VerifyConnection does not fail a refused certificate: it records
// the refusal in g.refusals, keyed by the connection's own certificate
// list, and the serving code takes it out after the handshake. Its
// WrapSession marks the session ticket of a refused connection. (Before,
// each connection got a clone of the config with two closures over its
// own verdict: about 1 KiB allocated per handshake and kept per
// connection.)
//
// The key is &PeerCertificates[0], the address of the first element of
// the slice crypto/tls keeps for the connection (the ConnectionState
// handed to VerifyConnection and WrapSession and the one
// Conn.ConnectionState returns share it), not the *x509.Certificate: a
// resumed connection's certificates come from crypto/tls's certificate
// cache, so concurrent connections resuming with the same certificate
// share the *x509.Certificate, while each connection's slice is its own
// (TestRefusalKeyIsPerConnection pins both). A handshake without a
// certificate records nothing: an empty list is a refusal by itself.

// refusals holds the refusals of the HTTP listener's handshakes that are
// under way; an entry lives from VerifyConnection until the handshake
// returns, success or failure (takeRefusal).
type refusals struct {
	mu sync.Mutex
	m  map[**x509.Certificate]*VerifyError
	// recorded counts the refusals ever recorded (tests).
	recorded atomic.Uint64
}

func (r *refusals) put(certs []*x509.Certificate, ve *VerifyError) {
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[**x509.Certificate]*VerifyError)
	}
	r.m[&certs[0]] = ve
	r.mu.Unlock()
	r.recorded.Add(1)
}

func (r *refusals) has(certs []*x509.Certificate) bool {
	r.mu.Lock()
	_, ok := r.m[&certs[0]]
	r.mu.Unlock()
	return ok
}

func (r *refusals) take(certs []*x509.Certificate) *VerifyError {
	r.mu.Lock()
	ve, ok := r.m[&certs[0]]
	if ok {
		delete(r.m, &certs[0])
	}
	r.mu.Unlock()
	return ve
}

// len is the number of handshakes with a refusal recorded and not taken.
func (r *refusals) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// noCertificate is the refusal of a client that sent no certificate, as
// verifyConnection words it.
func noCertificate() *VerifyError { return refuse(ReasonNoCertificate, "no client certificate") }

// answeringVerify is answerConfig's VerifyConnection: a refusal is
// recorded for the serving code instead of failing the handshake.
func (g *Gateway) answeringVerify(cs tls.ConnectionState) error {
	err := g.verifyConnection(cs)
	var ve *VerifyError
	if errors.As(err, &ve) {
		if len(cs.PeerCertificates) > 0 {
			g.refusals.put(cs.PeerCertificates, ve)
		}
		return nil
	}
	return err
}

// answeringWrapSession is answerConfig's WrapSession: the ticket of a
// refused connection is marked so that unwrapSession declines it.
func (g *Gateway) answeringWrapSession(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	if len(cs.PeerCertificates) == 0 || g.refusals.has(cs.PeerCertificates) {
		ss.Extra = append(ss.Extra, refusedSessionMarker)
	}
	return g.tlsConfig.EncryptTicket(cs, ss)
}

// answeringHandshake runs the handshake of an HTTP-listener connection
// and returns its state and its refusal, if any. The recorded refusal is
// taken out whatever happens, a failed handshake or a panic included, so
// g.refusals holds nothing for a connection whose handshake is over.
func (g *Gateway) answeringHandshake(tc *tls.Conn) (cs tls.ConnectionState, refused *VerifyError, err error) {
	defer func() {
		cs = tc.ConnectionState()
		if len(cs.PeerCertificates) > 0 {
			refused = g.refusals.take(cs.PeerCertificates)
		} else if err == nil {
			refused = noCertificate()
		}
	}()
	return cs, nil, tc.Handshake()
}

// unwrapSession decrypts a session ticket and declines one a refused
// connection was given.
func (g *Gateway) unwrapSession(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	ss, err := g.tlsConfig.DecryptTicket(identity, cs)
	if err != nil || ss == nil {
		return ss, err
	}
	for _, e := range ss.Extra {
		if bytes.Equal(e, refusedSessionMarker) {
			return nil, nil
		}
	}
	return ss, nil
}

// refusalStatus is 401 for no certificate, 403 for a refused one.
func refusalStatus(r Reason) int {
	if r == ReasonNoCertificate {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

// refusalAdvice says what a person can do about each reason.
var refusalAdvice = map[Reason]string{
	ReasonNoCertificate:    "this gateway requires a client certificate: present the certificate and key certgate issued you (curl --cert cert.pem --key key.pem)",
	ReasonUnknownAuthority: "the client certificate was not issued by a CA this gateway trusts: use the certificate certgate issued you, with its chain",
	ReasonExpired:          "the client certificate has expired: renew it (certgate agent renews automatically) or enroll again",
	ReasonNotYetValid:      "the client certificate is not valid yet: check the clock of this machine and of the CA",
	ReasonWrongUsage:       "the client certificate is not for client authentication: use the certificate certgate issued you",
	ReasonBadIdentity:      "the client certificate carries no SPIFFE ID of this gateway's trust domain: use a certificate issued for it",
	ReasonRevoked:          "the client certificate has been revoked: ask your operator for a new enrollment token and enroll again",
}

// refusalJSON is the body of a refusal: the reason as the code, what to
// do, the detail of the check that failed, and the certificate it was
// about (the client's own: nothing it does not know).
func refusalJSON(ve *VerifyError, certs []*x509.Certificate) []byte {
	type certInfo struct {
		Identity string `json:"identity,omitempty"`
		Serial   string `json:"serial"`
	}
	out := struct {
		Error       apiError  `json:"error"`
		Detail      string    `json:"detail"`
		Certificate *certInfo `json:"certificate,omitempty"`
	}{Error: apiError{Code: ve.Reason.String(), Message: refusalAdvice[ve.Reason]}, Detail: ve.Err.Error()}
	if len(certs) > 0 {
		ci := &certInfo{Serial: revocation.SerialOf(certs[0])}
		if id, err := identity.FromCertificate(certs[0]); err == nil {
			ci.Identity = id.String()
		}
		out.Certificate = ci
	}
	b, _ := json.Marshal(out)
	return b
}

// answerRefusal answers the requests of a refused connection.
func (g *Gateway) answerRefusal(rt *runtime, tc *tls.Conn, raw net.Conn, ve *VerifyError) {
	g.refusedConns.Store(raw, struct{}{})
	defer g.refusedConns.Delete(raw)
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(refusalLinger))
	cs := tc.ConnectionState()
	status, body := refusalStatus(ve.Reason), refusalJSON(ve, cs.PeerCertificates)
	base := accesslog.Entry{
		Kind: accesslog.KindHTTP, Client: raw.RemoteAddr().String(), TLSVersion: tlsVersionName(cs.Version),
		Resumed: cs.DidResume, Decision: "deny", Reason: ve.Reason.String(), Status: status,
	}
	if len(cs.PeerCertificates) > 0 {
		base.Serial = revocation.SerialOf(cs.PeerCertificates[0])
		if id, err := identity.FromCertificate(cs.PeerCertificates[0]); err == nil {
			base.Identity = id.String()
		}
	}
	logReq := func(method, host, path string, start time.Time) {
		e := base
		e.Time, e.Method, e.Host, e.Path, e.Duration = start, method, host, path, time.Since(start)
		e.RequestID = g.reqIDs.next()
		g.metrics.Request("", status, "deny", e.Duration, 0)
		if ve.Reason == ReasonNoCertificate {
			g.metrics.AuthRequest(AuthNone)
		}
		g.logAccess(&e)
	}
	if cs.NegotiatedProtocol == "h2" {
		srv := &http2.Server{IdleTimeout: refusalLinger, MaxConcurrentStreams: 16}
		ctx, cancel := context.WithCancel(g.ctx)
		defer cancel()
		srv.ServeConn(tc, &http2.ServeConnOpts{Context: ctx, BaseConfig: &http.Server{}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer g.recoverHTTP2(r.RequestURI)
			start := time.Now()
			writeJSONResponse(w, status, body)
			logReq(r.Method, r.Host, r.URL.EscapedPath(), start)
		})})
		return
	}
	br := bufio.NewReaderSize(tc, clientBufferSize)
	raw.SetReadDeadline(time.Now().Add(rt.cfg.timeouts.readHeader))
	head, err := h1.ReadHead(br, nil, rt.cfg.maxHeader)
	start := time.Now()
	var req h1.Request
	if err == nil && h1.ParseRequest(head, &req) == nil {
		logReq(req.Method, string(req.Host), string(req.Path), start)
	} else if len(head) == 0 {
		return // the client went away without a request
	} else {
		logReq("", "", "", start)
	}
	b := h1.AppendStatusLine(nil, status, nil)
	b = append(b, ownAnswerHeaders...)
	b = append(b, "Connection: close\r\n"...)
	b = h1.AppendContentLength(b, int64(len(body)))
	b = append(append(b, "\r\n"...), body...)
	tc.Write(b)
	tc.Close() // close_notify: the client reads the whole answer
}
