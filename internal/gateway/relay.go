package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/gateway/h1"
)

// upstreamRequest is the request the net/http paths (HTTP/2, and
// HTTP/1.1 with a legacy key) send to up for r: the canonical request,
// exactly what was authorized (the path goes out as URL.Opaque, not
// re-encoded), as HTTP/1.1, without the client's hop-by-hop, identity or
// forwarding headers. The caller adds the headers the gateway sets.
func upstreamRequest(r *http.Request, up *upstream, cr *canonicalRequest) *http.Request {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = up.scheme, up.addr
	out.URL.Opaque, out.URL.Path, out.URL.RawPath = up.basePath+cr.path, "", ""
	out.URL.RawQuery, out.URL.ForceQuery = cr.query, cr.hasQ && cr.query == ""
	out.Method = cr.method
	out.Host = cr.host
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Close = false // the client's Connection: close is not the upstream connection's
	if r.ContentLength == 0 {
		out.Body = nil
	}
	stripRequestHeaders(out.Header)
	return out
}

// hopByHop are the response headers that describe the upstream
// connection, not the answer, and are not relayed.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authenticate"}

// relay sends out to up and streams the answer to w (flushed as it comes,
// for event streams), with extra header lines added; an upstream that
// cannot be reached or times out is answered 502 or 504 in JSON. It fills
// e's upstream, status, byte counts and error; route names the route in
// the warning.
func (g *Gateway) relay(w http.ResponseWriter, r *http.Request, out *http.Request, up *upstream, route string, extra http.Header, e *accesslog.Entry) {
	e.UpstreamURL = up.key
	counter := &countingReader{r: r.Body}
	if out.Body != nil {
		out.Body = counter
	}
	start := time.Now()
	resp, err := up.transport.RoundTrip(out)
	e.BytesIn = counter.n
	if err != nil {
		status, reason, msg := 502, "upstream_unavailable", "upstream unavailable"
		if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
			status, reason, msg = 504, "upstream_timeout", "upstream timed out"
		}
		e.Status, e.Reason, e.Error = status, reason, err.Error()
		g.log.Warn("upstream request failed", "route", route, "upstream", up.addr, "status", status, "reason", reason, "error", err)
		writeJSONResponse(w, status, errorJSON(codeFor(status), msg))
		return
	}
	defer resp.Body.Close()
	e.Upstream = time.Since(start)
	e.Status = resp.StatusCode
	for _, k := range hopByHop {
		delete(resp.Header, k)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	for k, v := range extra {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	rc.Flush()
	bp := h1.CopyBuffer()
	defer h1.PutCopyBuffer(bp)
	for {
		n, rerr := resp.Body.Read(*bp)
		if n > 0 {
			e.BytesOut += int64(n)
			if _, werr := w.Write((*bp)[:n]); werr != nil {
				e.Error = werr.Error()
				break
			}
			rc.Flush()
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				e.Error = rerr.Error()
			}
			break
		}
	}
}
