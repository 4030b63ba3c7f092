package gateway

import (
	"fmt"
	"net/http"
	"runtime/debug"
)

// Where a recovered panic happened, for the log and Metrics.Panic.
const (
	panicConnection     = "connection"
	panicHTTP2Request   = "http2_request"
	panicTunnel         = "tunnel"
	panicSweep          = "sweep"
	panicRevocationHook = "revocation_hook"
	panicReload         = "reload"
	panicPoller         = "poller"
	panicRelease        = "release"
)

// recovered is deferred at the top of every goroutine the gateway starts
// and of every HTTP/2 request: no input may end the process, so a panic is
// logged with its stack, counted, and only the connection (or request) it
// happened in is lost. It must be deferred directly: recover works only
// there.
func (g *Gateway) recovered(where string, attrs ...any) {
	v := recover()
	if v == nil {
		return
	}
	g.notePanic(where, v, attrs...)
}

func (g *Gateway) notePanic(where string, v any, attrs ...any) {
	g.metrics.Panic(where)
	g.log.Error("panic recovered; the gateway keeps serving",
		append([]any{"where", where, "panic", fmt.Sprint(v), "stack", string(debug.Stack())}, attrs...)...)
}

// recoverHTTP2 is recovered for an HTTP/2 request: the stream is reset
// (http.ErrAbortHandler, which net/http2 handles without logging) and the
// connection's other streams go on.
func (g *Gateway) recoverHTTP2(path string) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	g.notePanic(panicHTTP2Request, v, "path", path)
	panic(http.ErrAbortHandler)
}
