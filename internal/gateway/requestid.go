package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"

	"github.com/certgate/certgate/internal/accesslog"
)

// HeaderRequestID carries the request id to the upstream.
const HeaderRequestID = "X-Request-Id"

// requestIDs mints request ids: 8 random bytes drawn when the gateway
// starts, then a counter. Unique per gateway process (and, with the
// random half, across gateways and restarts), cheap (no system call, no
// allocation), and not secret: an id names a request, it proves nothing.
//
// The gateway always replaces a client's X-Request-Id: the access log is
// evidence, and an id a client chose could repeat another request's id, or
// point an auditor at a record the client did not make. A client that
// wants to correlate its own calls logs its own id in another header, which
// is forwarded untouched.
type requestIDs struct {
	prefix [8]byte
	seq    atomic.Uint64
}

func newRequestIDs() *requestIDs {
	r := &requestIDs{}
	rand.Read(r.prefix[:])
	return r
}

func (r *requestIDs) next() accesslog.RequestID {
	var id accesslog.RequestID
	copy(id[:8], r.prefix[:])
	binary.BigEndian.PutUint64(id[8:], r.seq.Add(1))
	return id
}
