package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// ignoreHangup makes SIGHUP harmless to every certgate command: the
// default action of SIGHUP ends a process, and an operator (or systemd's
// ExecReload, or a closed terminal) sends it to ask for a reload. Commands
// that reload subscribe with [hangups]; for all others the signal is
// received here and dropped.
func ignoreHangup() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	go func() {
		for range c {
		}
	}()
}

// hangups delivers each SIGHUP the process receives until stop is called.
func hangups() (c <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// logOptions are the handler options of every long-running command's log:
// level (nil: info) and durations written as a person reads them ("2m30s",
// not 150000000000 nanoseconds, which is what slog's JSON handler writes).
func logOptions(level slog.Leveler) *slog.HandlerOptions {
	return &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.StringValue(a.Value.Duration().String())
		}
		return a
	}}
}
