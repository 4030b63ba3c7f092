package server_test

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/certgate/certgate/internal/server"
)

// The server's collector target is DefaultGCPercent unless GOGC is set in
// the environment.
func TestSetGCDefault(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	t.Setenv("GOGC", "150")
	if server.SetGCDefault() {
		t.Error("SetGCDefault changed the target although GOGC is set")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d after SetGCDefault with GOGC set, want it unchanged (100)", got)
	}
	os.Unsetenv("GOGC") // t.Setenv restores it
	if !server.SetGCDefault() {
		t.Error("SetGCDefault did nothing without GOGC")
	}
	if got := debug.SetGCPercent(100); got != server.DefaultGCPercent {
		t.Errorf("GC percent %d, want %d", got, server.DefaultGCPercent)
	}
}
