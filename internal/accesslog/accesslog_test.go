package accesslog

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestAppendJSON(t *testing.T) {
	e := &Entry{
		Time: time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC), Kind: KindHTTP,
		Identity: "spiffe://example.org/svc/a", Serial: "ab", Fingerprint: "00ff", Client: "127.0.0.1:5000",
		TLSVersion: "TLS1.3", Resumed: true, Method: "GET", Host: "api", Path: "/x\"\n\x01<\xff\u2028",
		Route: "r", Decision: "allow", Reason: "allowed", Status: 200, BytesIn: 3, BytesOut: 4,
		Duration: 1500 * time.Microsecond, Upstream: time.Millisecond, UpstreamURL: "https://up:8443",
		RequestID: RequestID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	}
	got := string(e.AppendJSON(nil))
	want := `{"schema":1,"time":"2026-03-04T05:06:07.890000Z","kind":"http","request_id":"000102030405060708090a0b0c0d0e0f","identity":"spiffe://example.org/svc/a","serial":"ab","fingerprint":"00ff","client":"127.0.0.1:5000","tls_version":"TLS1.3","resumed":true,"method":"GET","host":"api","path":"/x\"\n\u0001\u003c\ufffd\u2028","route":"r","decision":"allow","reason":"allowed","status":200,"bytes_in":3,"bytes_out":4,"duration_ms":1.500,"upstream_ms":1.000,"upstream":"https://up:8443"}` + "\n"
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
	if string(hs) != `{"schema":1,"time":"2026-03-04T05:06:07.890000Z","kind":"handshake","client":"c","decision":"deny","reason":"expired","duration_ms":0.000}`+"\n" {
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
	l, _ := Open(Options{Stdout: &buf, QueueLen: 8})
	defer l.Close()
	e := &Entry{Time: time.Now(), Kind: KindHTTP, Path: "/x", Status: 200}
	for range 100 { // every slot used once
		l.Log(e)
	}
	l.Flush()
	if n := testing.AllocsPerRun(100, func() { l.Log(e) }); n != 0 {
		t.Fatalf("Log allocates %v times", n)
	}
}
