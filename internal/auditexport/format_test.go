package auditexport_test

import (
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/auditexport"
	"github.com/certgate/certgate/internal/syslog"
	"github.com/certgate/certgate/internal/wire"
)

// TestFormats: CEF escapes what would break its header and extension
// fields; the syslog message parses back with the seq in its structured
// data; an unknown format is refused.
func TestFormats(t *testing.T) {
	r := wire.AuditRecord{Seq: 42, Time: time.Date(2026, 12, 6, 1, 2, 3, 4e6, time.UTC), Actor: `a|b\c`, Action: "cert.revoke",
		Subject: "x=y", Detail: "{\"why\":\"line\nbreak\"}", Hash: "ab"}
	got := auditexport.CEF(r, "v1|2")
	want := `CEF:0|certgate|certgate|v1\|2|cert.revoke|cert.revoke|5|rt=1796518923004 externalId=42 suser=a|b\\c act=cert.revoke cs1Label=subject cs1=x\=y cs2Label=hash cs2=ab msg={"why":"line\nbreak"}`
	if got != want {
		t.Fatalf("CEF\n got %s\nwant %s", got, want)
	}
	if _, err := auditexport.Format("xml", r, ""); err == nil || err.Error() != `auditexport: format "xml" is not json or cef` {
		t.Fatalf("xml: %v", err)
	}
	m := auditexport.Message(r, "ca 1", "v1")
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := syslog.Parse(b)
	if err != nil || p.Hostname != "ca_1" || p.MsgID != "cert.revoke" || p.StructuredData[0].Params[0].Value != "42" || !strings.HasPrefix(string(p.Msg), "CEF:0|") {
		t.Fatalf("parsed %+v %v", p, err)
	}
}
