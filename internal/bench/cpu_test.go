package bench

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and a parenthesis in it.
	stat := "4242 (cert gate) x) S 1 4242 4242 0 -1 4194560 1185 0 0 0 250 75 0 0 20 0 9 0 1234 0 0\n"
	got, err := parseStat(4242, stat)
	if err != nil || got != 3250*time.Millisecond {
		t.Fatalf("parseStat = %s, %v; want 3.25s (250 + 75 ticks)", got, err)
	}
	for _, c := range []struct{ stat, want string }{
		{"4242 certgate S 1", "bench: CPU time of process 4242: /proc/4242/stat does not parse"},
		{"4242 (certgate) S 1 2 3", "bench: CPU time of process 4242: /proc/4242/stat has 6 fields"},
		{"4242 (certgate) S 1 4242 4242 0 -1 4194560 1185 0 0 0 -5 75 0", `bench: CPU time of process 4242: /proc/4242/stat field "-5" is not a tick count`},
	} {
		if _, err := parseStat(4242, c.stat); err == nil || err.Error() != c.want {
			t.Errorf("parseStat(%q) = %v, want %q", c.stat, err, c.want)
		}
	}
}

func TestProcessCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux only")
	}
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn about 50 ms of CPU.
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	after, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after < before {
		t.Fatalf("CPU time went back: %s then %s", before, after)
	}
	if _, err := ProcessCPU(-1); err == nil {
		t.Fatal("ProcessCPU(-1) succeeded")
	}
}
