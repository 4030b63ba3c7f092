package gateway

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"time"

	"github.com/certgate/certgate/internal/config"
)

// ReloadFrom loads the config at path and applies it with
// [Gateway.Reload]. On any error the running config stays and the error is
// logged and returned.
func (g *Gateway) ReloadFrom(path string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			g.notePanic(panicReload, v, "config", path)
			err = fmt.Errorf("gateway: reload: panic: %v", v)
		}
	}()
	cfg, err := LoadConfig(path)
	if err == nil {
		err = g.Reload(cfg)
	}
	if err != nil {
		g.log.Error("reload rejected; the running configuration stays", "config", path, "error", err)
		return err
	}
	return nil
}

// WatchConfig reloads from path on every value received from trigger (a
// SIGHUP channel) and whenever the content of the config file, or of the
// bundle, certificate or key it names, changes, polled every interval. It
// returns when ctx is done.
func (g *Gateway) WatchConfig(ctx context.Context, path string, interval time.Duration, trigger <-chan os.Signal) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := g.fingerprint(path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
			g.log.Info("reload requested by signal", "config", path)
		case <-t.C:
			fp := g.fingerprint(path)
			if fp == last {
				continue
			}
			last = fp
			g.log.Info("configuration files changed; reloading", "config", path)
		}
		if g.ReloadFrom(path) == nil {
			last = g.fingerprint(path)
		}
	}
}

// fingerprint hashes the config file and the files the running config
// names. A file that cannot be read hashes as empty.
func (g *Gateway) fingerprint(path string) [32]byte {
	cfg := g.rt.Load().cfg
	h := sha256.New()
	for _, p := range append([]string{path}, cfg.files...) {
		b, _ := os.ReadFile(p)
		s := sha256.Sum256(b)
		h.Write(s[:])
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// reloadEffect says, for every setting of gateway.yaml, what a reload
// does with a change to it: "" applies it to new connections and
// requests; any other text is why it needs a restart (the running value
// stays). TestReloadEffectCoversEverySetting keeps it complete, so a new
// setting cannot be silently ignored on reload.
var reloadEffect = map[string]string{
	"listen":                          "the HTTPS listener is bound at start",
	"trust_domain":                    "",
	"bundle":                          "",
	"cert":                            "",
	"key":                             "",
	"identity.dir":                    "the gateway's own identity is set up at start",
	"identity.hosts":                  "the gateway's own identity is set up at start",
	"identity.token_file":             "the gateway's own identity is set up at start",
	"identity.key_type":               "the gateway's own identity is set up at start",
	"identity.key_store":              "the gateway's own identity is set up at start",
	"server.url":                      "the revocation source is connected at start",
	"server.urls":                     "the revocation source is connected at start",
	"server.ca":                       "the revocation source is connected at start",
	"server.revocation_refresh":       "the revocation source is connected at start",
	"revocation.mode":                 "the revocation source is connected at start",
	"revocation.max_staleness":        "the revocation source is connected at start",
	"revocation.idle_timeout":         "the revocation source is connected at start",
	"revocation.max_backoff":          "the revocation source is connected at start",
	"metrics.listen":                  "the metrics listener is bound at start",
	"access_log.path":                 "the access log file is opened at start",
	"access_log.max_size_mb":          "the access log file is opened at start",
	"access_log.max_backups":          "the access log file is opened at start",
	"access_log.query":                "",
	"usage.flush_interval":            "the usage reporter is started at start",
	"usage.max_entries":               "the usage table is made at start",
	"usage.sharing.max_sources":       "the usage table is made at start",
	"usage.sharing.window":            "the usage table is made at start",
	"timeouts.handshake":              "",
	"timeouts.read_header":            "applied to HTTP/1.1; HTTP/2 connections keep the value they started with until a restart",
	"timeouts.idle":                   "HTTP/2 connections keep the value they started with until a restart",
	"timeouts.upstream_dial":          "",
	"timeouts.upstream_header":        "",
	"timeouts.upstream_idle":          "",
	"timeouts.upstream_max_idle":      "",
	"max_header_bytes":                "applied to HTTP/1.1; HTTP/2 connections keep the value they started with until a restart",
	"paths.repeated_slashes":          "",
	"paths.escaped_slashes":           "",
	"paths.semicolons":                "",
	"routes":                          "",
	"tcp_routes":                      "",
	"access_log.stdout":               "the access log outputs are opened at start",
	"access_log.rotate_every":         "the access log outputs are opened at start",
	"access_log.compress":             "the access log outputs are opened at start",
	"access_log.max_age":              "the access log outputs are opened at start",
	"access_log.max_total_size_mb":    "the access log outputs are opened at start",
	"access_log.on_overflow":          "the access log outputs are opened at start",
	"access_log.queue_lines":          "the access log outputs are opened at start",
	"access_log.syslog.address":       "the access log outputs are opened at start",
	"access_log.syslog.tls.ca":        "the access log outputs are opened at start",
	"access_log.syslog.tls.cert":      "the access log outputs are opened at start",
	"access_log.syslog.tls.key":       "the access log outputs are opened at start",
	"access_log.syslog.spool_dir":     "the access log outputs are opened at start",
	"access_log.syslog.spool_max_mb":  "the access log outputs are opened at start",
	"access_log.syslog.hostname":      "the access log outputs are opened at start",
	"access_log.syslog.app_name":      "the access log outputs are opened at start",
	"access_log.tamper_evidence.key":  "the access log outputs are opened at start",
	"access_log.tamper_evidence.name": "the access log outputs are opened at start",
}

// reloadPlan splits the settings that changed between two configs into
// those a reload applies and those that need a restart, with the reason.
func reloadPlan(old, next *config.Gateway) (applied []string, restart map[string]string) {
	restart = map[string]string{}
	for _, field := range config.Changed(old, next) {
		why, known := reloadEffect[field]
		if !known {
			why = "not known to the reload"
		}
		if why == "" {
			applied = append(applied, field)
		} else {
			restart[field] = why
		}
	}
	return applied, restart
}
