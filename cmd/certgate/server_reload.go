package main

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/server"
)

// serverReload is what a SIGHUP to `certgate server` acts on.
type serverReload struct {
	level   *slog.LevelVar   // the log's level, set from log.level
	signals <-chan os.Signal // one value per SIGHUP; nil: no reloads
}

// reloadable are the settings of certgate.yaml a running server applies
// on SIGHUP; every other changed setting is named as needing a restart.
var reloadable = map[string]string{
	"log.level":                "the log level",
	"profiles.client_lifetime": "client certificates issued from now on",
	"profiles.server_lifetime": "a new serving certificate",
	"server.hostnames":         "a new serving certificate",
}

// run re-reads certgate.yaml on every signal until ctx is done.
func (rl serverReload) run(ctx context.Context, log *slog.Logger, inst *cadir.Installation, srv *server.Server) {
	running := *inst.Config // what the server runs with
	for {
		select {
		case <-ctx.Done():
			return
		case <-rl.signals:
		}
		running = rl.reload(ctx, log, inst, srv, running)
	}
}

// reload applies what can be applied of the file's current content and
// returns the configuration the server now runs with. A file that does
// not load changes nothing. The serving certificate is issued anew on
// every reload (the TLS certificate a SIGHUP is expected to reload).
func (rl serverReload) reload(ctx context.Context, log *slog.Logger, inst *cadir.Installation, srv *server.Server, running config.Server) config.Server {
	path := inst.Config.Path(config.FileName)
	cfg, err := config.LoadServer(inst.Config.Dir())
	if err != nil {
		log.Error("SIGHUP: reload rejected; the running configuration stays", "config", path, "err", err)
		return running
	}
	var applied, restart []string
	next := running
	for _, field := range config.Changed(&running, cfg) {
		if _, ok := reloadable[field]; ok {
			applied = append(applied, field)
		} else {
			restart = append(restart, field)
		}
	}
	next.Log, next.Profiles, next.Listen.Hostnames = cfg.Log, cfg.Profiles, cfg.Listen.Hostnames
	leaf, err := srv.Reconfigure(ctx, next.Listen.Hostnames, next.Profiles.ServerLifetime)
	if err != nil {
		log.Error("SIGHUP: a new serving certificate could not be issued; the current one and its settings stay", "err", err)
		next.Profiles.ServerLifetime, next.Listen.Hostnames = running.Profiles.ServerLifetime, running.Listen.Hostnames
		applied = without(applied, "profiles.server_lifetime", "server.hostnames")
	} else {
		log.Info("SIGHUP: new serving certificate", "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter,
			"hostnames", strings.Join(next.Listen.Hostnames, ","))
	}
	if rl.level != nil {
		rl.level.Set(logLevel(next.Log.Level))
	}
	inst.Authority.SetClientLifetime(next.Profiles.ClientLifetime)
	for _, field := range restart {
		log.Warn("SIGHUP: "+field+" changed; it applies after a restart, the server keeps the running value", "setting", field)
	}
	log.Info("SIGHUP: configuration reloaded", "config", path, "applied", applied, "needs_restart", restart,
		"log_level", next.Log.Level, "client_lifetime", next.Profiles.ClientLifetime.String(), "server_lifetime", next.Profiles.ServerLifetime.String())
	return next
}

func without(list []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return slices.Contains(drop, s) })
}

// logLevel maps log.level (validated by the config) to a slog level.
func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
