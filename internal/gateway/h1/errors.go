package h1

import (
	"fmt"
	"net/http"
)

// Error is a request the codec refuses, with the status to answer and a
// reason for the log.
type Error struct {
	Status int
	Reason string // short and stable, for the log: "smuggling_te_cl"
	Msg    string // safe to show to the client
}

func (e *Error) Error() string { return e.Msg }

// BadRequest is a 400 refusal with a reason and a message.
func BadRequest(reason, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// The refusals that are not 400.
var (
	ErrHeaderTooLarge = &Error{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "header_too_large", Msg: "request header too large"}
	ErrBadVersion     = &Error{Status: http.StatusHTTPVersionNotSupported, Reason: "bad_version", Msg: "HTTP version not supported"}
	ErrUnsupportedTE  = &Error{Status: http.StatusNotImplemented, Reason: "unsupported_transfer_encoding", Msg: "only Transfer-Encoding: chunked is supported"}
	ErrBadExpect      = &Error{Status: http.StatusExpectationFailed, Reason: "bad_expect", Msg: "unsupported Expect header"}
)
