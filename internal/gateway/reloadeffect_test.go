package gateway

import (
	"maps"
	"slices"
	"testing"

	"github.com/certgate/certgate/internal/config"
)

// TestReloadEffectCoversEverySetting: every setting of gateway.yaml is
// either applied by a reload or named as needing a restart; a setting
// added to the schema without a decision here fails, so no change is
// ever silently ignored.
func TestReloadEffectCoversEverySetting(t *testing.T) {
	settings := config.Settings(&config.Gateway{})
	for _, s := range settings {
		if _, ok := reloadEffect[s]; !ok {
			t.Errorf("gateway.yaml setting %s: a reload neither applies nor refuses it (add it to reloadEffect)", s)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(reloadEffect)) {
		if !slices.Contains(settings, s) {
			t.Errorf("reloadEffect names %s, which gateway.yaml does not have", s)
		}
	}
}

func TestReloadPlan(t *testing.T) {
	old := &config.Gateway{Listen: "127.0.0.1:8443", Routes: []config.Route{{Name: "a"}}}
	next := &config.Gateway{Listen: "127.0.0.1:9443", Routes: []config.Route{{Name: "b"}},
		Metrics: config.GatewayMetrics{Listen: "127.0.0.1:9090"}, AccessLog: config.GatewayAccessLog{Path: "x.log", Query: true}}
	applied, restart := reloadPlan(old, next)
	if want := []string{"access_log.query", "routes"}; !slices.Equal(applied, want) {
		t.Errorf("applied = %q, want %q", applied, want)
	}
	want := map[string]string{
		"listen":          "the HTTPS listener is bound at start",
		"metrics.listen":  "the metrics listener is bound at start",
		"access_log.path": "the access log file is opened at start",
	}
	if !maps.Equal(restart, want) {
		t.Errorf("restart = %q, want %q", restart, want)
	}
}
