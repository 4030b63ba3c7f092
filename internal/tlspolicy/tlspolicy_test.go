package tlspolicy

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

func TestOnlyModernSuites(t *testing.T) {
	insecure := tls.InsecureCipherSuites()
	for _, id := range CipherSuites {
		for _, s := range insecure {
			if s.ID == id {
				t.Fatalf("%s is insecure", s.Name)
			}
		}
		name := tls.CipherSuiteName(id)
		if !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20")) || !strings.Contains(name, "ECDHE") {
			t.Fatalf("%s is not ECDHE with an AEAD", name)
		}
	}
	c := Apply(&tls.Config{ServerName: "x", MinVersion: tls.VersionTLS10})
	if c.MinVersion != tls.VersionTLS12 || !slices.Equal(c.CipherSuites, CipherSuites) || c.Renegotiation != tls.RenegotiateNever || c.ServerName != "x" {
		t.Fatalf("Apply: %+v", c)
	}
}
