package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/certgate/certgate/internal/wire"
)

// Error is an API error: an HTTP status, a stable code clients branch on, a
// message safe to show, and the cause for the log only.
type Error struct {
	Status  int
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func apiError(status int, code, msg string, cause error) *Error {
	return &Error{Status: status, Code: code, Message: msg, Err: cause}
}

// writeError sends err as the JSON error body. Errors that are not *Error
// are internal: the client sees a generic message, the log the cause.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = apiError(http.StatusInternalServerError, wire.CodeInternal, "internal error", err)
	}
	level := slog.LevelInfo
	if e.Status >= 500 {
		level = slog.LevelError
	}
	log.LogAttrs(r.Context(), level, "request failed",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", e.Status), slog.String("code", e.Code), slog.Any("err", e))
	writeJSON(w, e.Status, wire.ErrorBody{Error: wire.ErrorDetail{Code: e.Code, Message: e.Message}})
}

// writeJSON sends v as compact JSON, one line. Answers are read by
// programs (the CLI formats what it shows); indenting them cost an
// enrollment about 4% of its CPU.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if raw, ok := v.(rawJSON); ok {
		_, _ = w.Write(raw)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
