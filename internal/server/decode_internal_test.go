package server

import (
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/wire"
)

// decodeCases are bodies for the differential test: accepted ones and every
// kind of malformed, oversized and duplicate-key input.
var decodeCases = []string{
	`{"token":"cg1.abc","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}`,
	`{"csr":"x","token":"y"}`,
	` 	{ "token" : "a" , "csr" : "b" } ` + "\r\n",
	`{"token":"a"}`, `{"csr":"b"}`, `{}`, ` {} `, `{"csr":""}`,
	`{"token":"a\"b\\c\/d\be\ff\ng\rh\ti"}`,
	`{"token":"\u0041\u00e9\ud83d\ude00"}`, `{"token":"\ud800"}`, `{"token":"\u00"}`, `{"token":"\x"}`, `{"token":"a\`,
	`{"token":"a","token":"b"}`, `{"csr":"a","csr":"b","token":"c"}`,
	`{"Token":"a"}`, `{"TOKEN":"a","CSR":"b"}`, `{"csR":"a"}`, `{"toKen":"a","token":"b"}`, `{"token":"a","Token":"b"}`,
	`{"token":"a","extra":"b"}`, `{"extra":1}`, `{"tok\u0065n":"a"}`,
	`{"token":null}`, `{"token":1}`, `{"token":true}`, `{"token":["a"]}`, `{"token":{"a":1}}`, `{"csr":"a","token":null}`,
	`{"token":"a"}{"token":"b"}`, `{"token":"a"} x`, `{"token":"a"},`, `{"token":"a"}]`, `{"token":"a"} 1`,
	``, ` `, "\n\t", `null`, `[]`, `"a"`, `1`, `{`, `{"token"`, `{"token":`, `{"token":"a"`, `{"token":"a",}`, `{,"token":"a"}`,
	`{"token":"a" "csr":"b"}`, `{"token" "a"}`, `{"token"::"a"}`, `{'token':'a'}`, `{token:"a"}`,
	"{\"token\":\"a\tb\"}", "{\"token\":\"a\x01\"}", "{\"token\":\"a\x7f\"}",
	"{\"token\":\"\xff\xfe\"}", "{\"token\":\"caf\xc3\xa9\"}", "\xef\xbb\xbf{\"token\":\"a\"}", "{\"token\":\"a\"}\x00",
	"{\"token\":\"a\"}\v", "{\"token\":\"a\"}\f", "\u00a0{\"token\":\"a\"}",
	`{"token":"` + strings.Repeat("a", 300) + `","csr":"` + strings.Repeat("b\\n", 300) + `"}`,
	`{"token":"a"}` + strings.Repeat(" ", 2000),
	`{"token":"a"}` + strings.Repeat(" ", 2000) + "x",
	`{"token":"` + strings.Repeat("a", 3000) + `"}`,
	`{"token":"a"` + strings.Repeat(" ", 3000) + `"x"}`,
	`{"tok` + strings.Repeat("e", 3000) + `n":"a"}`,
	`x` + strings.Repeat(" ", 3000),
}

// The limits the bodies are read under: a small one makes the long cases
// oversized, at different places.
var decodeLimits = []int64{16, 100, 700, 1024, 2020, 64 << 10}

// decode of an enrollment or renewal request answers exactly as
// encoding/json (decodeJSON) does: the same values, the same error.
func TestDecodeStringsDifferential(t *testing.T) {
	for _, body := range decodeCases {
		for _, limit := range decodeLimits {
			compareDecode(t, []byte(body), limit)
		}
	}
}

func FuzzDecodeStrings(f *testing.F) {
	for _, body := range decodeCases {
		f.Add([]byte(body), int64(64<<10))
	}
	f.Add([]byte(decodeCases[0]), int64(40))
	f.Fuzz(func(t *testing.T, body []byte, limit int64) {
		if limit < 0 {
			limit = -limit
		}
		compareDecode(t, body, limit%(128<<10))
	})
}

func compareDecode(t *testing.T, body []byte, limit int64) {
	t.Helper()
	req := func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "/", io.NopCloser(bytes.NewReader(body)))
		r.Body = http.MaxBytesReader(nil, r.Body, limit)
		return r
	}
	var gotE, wantE wire.EnrollRequest
	gotErr := decode(req(), &gotE)
	wantErr := decodeJSON(req().Body, &wantE)
	if gotE != wantE || !reflect.DeepEqual(gotErr, wantErr) {
		t.Errorf("enroll %q (limit %d): got %+v, %v; encoding/json %+v, %v", body, limit, gotE, gotErr, wantE, wantErr)
	}
	var gotR, wantR wire.RenewRequest
	gotErr = decode(req(), &gotR)
	wantErr = decodeJSON(req().Body, &wantR)
	if gotR != wantR || !reflect.DeepEqual(gotErr, wantErr) {
		t.Errorf("renew %q (limit %d): got %+v, %v; encoding/json %+v, %v", body, limit, gotR, gotErr, wantR, wantErr)
	}
}

// The common body takes the path without encoding/json.
func TestDecodeStringsFastPath(t *testing.T) {
	names := [2]string{"token", "csr"}
	var vals [2]string
	if !parseStrings([]byte(decodeCases[0]), &names, &vals) || vals[0] != "cg1.abc" || !strings.HasSuffix(vals[1], "-----END CERTIFICATE REQUEST-----\n") {
		t.Fatalf("not parsed: %q", vals)
	}
}

// BenchmarkDecodeEnroll: an enrollment request (P-256 CSR) through
// encoding/json and through decode.
func BenchmarkDecodeEnroll(b *testing.B) {
	body := []byte(`{"token":"cg1.` + strings.Repeat("x", 100) + `","csr":"-----BEGIN CERTIFICATE REQUEST-----\n` +
		strings.Repeat(strings.Repeat("A", 64)+`\n`, 6) + `-----END CERTIFICATE REQUEST-----\n"}`)
	run := func(b *testing.B, f func(r *http.Request, v *wire.EnrollRequest) error) {
		b.ReportAllocs()
		for b.Loop() {
			r := &http.Request{Body: http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), 64<<10)}
			var v wire.EnrollRequest
			if err := f(r, &v); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("encoding-json", func(b *testing.B) {
		run(b, func(r *http.Request, v *wire.EnrollRequest) error { return decodeJSON(r.Body, v) })
	})
	b.Run("decode", func(b *testing.B) {
		run(b, func(r *http.Request, v *wire.EnrollRequest) error { return decode(r, v) })
	})
}
