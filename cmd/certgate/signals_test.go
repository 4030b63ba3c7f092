package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLogDurationsReadable: every long-running command's log writes
// durations as a person reads them, in JSON and in text, nested too.
func TestLogDurationsReadable(t *testing.T) {
	var j, txt bytes.Buffer
	for _, log := range []*slog.Logger{slog.New(slog.NewJSONHandler(&j, logOptions(nil))), slog.New(slog.NewTextHandler(&txt, logOptions(nil)))} {
		log.Info("renewal failed", "retry_in", 2*time.Minute+30*time.Second, slog.Group("cert", "valid_for", 23*time.Hour))
		log.Debug("hidden at the default level")
	}
	if s := j.String(); !strings.Contains(s, `"retry_in":"2m30s"`) || !strings.Contains(s, `"cert":{"valid_for":"23h0m0s"}`) || strings.Contains(s, "hidden") {
		t.Errorf("JSON log: %s", s)
	}
	if s := txt.String(); !strings.Contains(s, `retry_in=2m30s`) || !strings.Contains(s, `cert.valid_for=23h0m0s`) {
		t.Errorf("text log: %s", s)
	}
}
