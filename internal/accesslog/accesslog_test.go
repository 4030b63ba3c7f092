package accesslog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAppendJSON(t *testing.T) {
	e := &Entry{
		Time: time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC), Kind: KindHTTP,
		Identity: "spiffe://example.org/svc/a", Serial: "ab", Fingerprint: "00ff", Client: "127.0.0.1:5000",
		TLSVersion: "TLS1.3", Resumed: true, Method: "GET", Host: "api", Path: "/x\"\n\x01<\xff\u2028",
		Route: "r", Decision: "allow", Reason: "allowed", Status: 200, BytesIn: 3, BytesOut: 4,
		Duration: 1500 * time.Microsecond, Upstream: time.Millisecond,
	}
	got := string(e.AppendJSON(nil))
	want := `{"time":"2026-03-04T05:06:07.890000Z","kind":"http","identity":"spiffe://example.org/svc/a","serial":"ab","fingerprint":"00ff","client":"127.0.0.1:5000","tls_version":"TLS1.3","resumed":true,"method":"GET","host":"api","path":"/x\"\n\u0001\u003c\ufffd\u2028","route":"r","decision":"allow","reason":"allowed","status":200,"bytes_in":3,"bytes_out":4,"duration_ms":1.500,"upstream_ms":1.000}` + "\n"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
	if m["path"] != "/x\"\n\x01<\ufffd\u2028" {
		t.Fatalf("path round trip = %q", m["path"])
	}
	hs := (&Entry{Time: e.Time, Kind: KindHandshake, Client: "c", Decision: "deny", Reason: "expired"}).AppendJSON(nil)
	if string(hs) != `{"time":"2026-03-04T05:06:07.890000Z","kind":"handshake","client":"c","decision":"deny","reason":"expired","duration_ms":0.000}`+"\n" {
		t.Fatalf("handshake line = %s", hs)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("/path?q=1", "spiffe://example.org/a")
	f.Add("\xff\xfe\x00", "\u2029\"\\")
	f.Fuzz(func(t *testing.T, path, id string) {
		line := (&Entry{Kind: KindHTTP, Path: path, Identity: id}).AppendJSON(nil)
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", line, err)
		}
		if bytes.Count(line, []byte("\n")) != 1 {
			t.Fatalf("line has embedded newline: %q", line)
		}
	})
}

func TestLogAllocs(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf)
	defer l.Close()
	e := &Entry{Time: time.Now(), Kind: KindHTTP, Path: "/x", Status: 200}
	if n := testing.AllocsPerRun(100, func() { l.Log(e) }); n != 0 {
		t.Fatalf("Log allocates %v times", n)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	l, err := Open(p, 300, 2)
	if err != nil {
		t.Fatal(err)
	}
	e := &Entry{Time: time.Unix(0, 0), Kind: KindHTTP, Path: strings.Repeat("a", 100)}
	lineLen := len(e.AppendJSON(nil))
	for range 10 {
		l.Log(e)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	perFile := 300 / lineLen
	for _, name := range []string{"access.log", "access.log.1", "access.log.2"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(data, []byte("\n")); n < 1 || n > perFile {
			t.Fatalf("%s has %d lines, want 1..%d", name, n, perFile)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "access.log.3")); !os.IsNotExist(err) {
		t.Fatalf("access.log.3 exists: %v", err)
	}
}

func TestOpenError(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "no", "dir.log"), 0, 0)
	if err == nil || !strings.HasPrefix(err.Error(), "accesslog: open ") || !strings.HasSuffix(err.Error(), "no such file or directory") {
		t.Fatalf("error = %v", err)
	}
}
