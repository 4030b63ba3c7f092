package gateway

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"time"
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
