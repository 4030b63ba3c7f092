package agent

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

// FuzzReadStatus: whatever agent-status.json holds (atomic writes rule out
// a torn file, but the file is only a report and anyone may edit it),
// ReadStatus returns an error or a status for the certificate in cert.pem,
// never panics, and the status prints.
func FuzzReadStatus(f *testing.F) {
	leaf := testca.New(f, td).Issue(f, testca.WithID("spiffe://example.org/svc/billing"))
	certPEM := leaf.CertPEM()
	serial := leaf.Cert.SerialNumber.Text(16)
	f.Add([]byte(`{"identity":"spiffe://example.org/svc/billing","serial":"` + serial + `","state":"waiting","next_renewal":"2030-01-01T00:00:00Z","renewals":2}`))
	f.Add([]byte(`{"serial":"` + serial + `","not_after":"0001-01-01T00:00:00Z","last_error":"x"}`))
	f.Add([]byte(`{"serial":"ab"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Add([]byte(`{"next_renewal":"99999-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, StatusFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := ReadStatus(dir)
		if err != nil {
			return
		}
		if st.Serial != serial {
			t.Fatalf("status for serial %q, cert.pem holds %s", st.Serial, serial)
		}
		st.WriteText(io.Discard, time.Now())
	})
}
