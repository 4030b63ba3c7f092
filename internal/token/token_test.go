package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/identity"
)

func claims() Claims {
	return Claims{
		ServerURL:       "https://127.0.0.1:8443",
		Identity:        identity.MustParse("spiffe://example.org/svc/billing"),
		ExpiresAt:       time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC),
		RootFingerprint: strings.Repeat("ab", 32),
	}
}

func TestRoundTrip(t *testing.T) {
	tok, err := Mint(claims())
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.Secret) != SecretSize || len(tok.ID) != 32 {
		t.Fatalf("secret %d bytes, id %q", len(tok.Secret), tok.ID)
	}
	got, err := Parse(tok.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || string(got.Secret) != string(tok.Secret) || got.Identity != tok.Identity ||
		!got.ExpiresAt.Equal(tok.ExpiresAt) || got.ServerURL != tok.ServerURL || got.RootFingerprint != tok.RootFingerprint {
		t.Fatalf("round trip changed the token: %+v vs %+v", got, tok)
	}
	if !SecretMatches(got.Secret, HashSecret(tok.Secret)) {
		t.Fatal("secret does not match its hash")
	}
	other, _ := Mint(claims())
	if SecretMatches(other.Secret, HashSecret(tok.Secret)) || other.ID == tok.ID {
		t.Fatal("two tokens share a secret or an ID")
	}
	if strings.Contains(tok.Redacted(), base64.RawURLEncoding.EncodeToString(tok.Secret)) {
		t.Fatal("Redacted shows the secret")
	}
}

func TestMintRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Claims)
		want string
	}{
		"http url":    {func(c *Claims) { c.ServerURL = "http://x" }, `token: server URL "http://x" must be an https:// URL`},
		"no identity": {func(c *Claims) { c.Identity = identity.ID{} }, "token: no identity"},
		"bad fp":      {func(c *Claims) { c.RootFingerprint = "zz" }, `token: root fingerprint "zz" is not a hex SHA-256`},
		"no expiry":   {func(c *Claims) { c.ExpiresAt = time.Time{} }, "token: no expiry"},
	} {
		t.Run(name, func(t *testing.T) {
			c := claims()
			tc.edit(&c)
			_, err := Mint(c)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}

func encode(s string) string { return Prefix + base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestParseMalformed(t *testing.T) {
	good, _ := Mint(claims())
	secret := base64.RawURLEncoding.EncodeToString(good.Secret)
	for name, tc := range map[string]struct{ in, want string }{
		"empty":        {"", `token: malformed token: does not start with "cgt1."`},
		"wrong prefix": {"cgt2.abc", `token: malformed token: does not start with "cgt1."`},
		"oversized":    {Prefix + strings.Repeat("A", MaxLength), "token: malformed token: longer than 4096 bytes"},
		"not base64":   {Prefix + "!!!", "token: malformed token: not base64url"},
		"not json":     {encode("hello"), "token: malformed token: not a token payload"},
		"unknown field": {encode(`{"u":"https://a","i":"spiffe://example.org/x","e":1,"r":"` + strings.Repeat("ab", 32) + `","k":"` + good.ID + `","s":"` + secret + `","x":1}`),
			"token: malformed token: not a token payload"},
		"bad identity": {encode(`{"u":"https://a","i":"http://example.org/x","e":1,"r":"` + strings.Repeat("ab", 32) + `","k":"` + good.ID + `","s":"` + secret + `"}`),
			`token: malformed token: invalid SPIFFE ID "http://example.org/x": must start with spiffe://`},
		"short secret": {encode(`{"u":"https://a","i":"spiffe://example.org/x","e":1,"r":"` + strings.Repeat("ab", 32) + `","k":"` + good.ID + `","s":"AAAA"}`),
			"token: malformed token: secret is not 32 bytes"},
		"bad id": {encode(`{"u":"https://a","i":"spiffe://example.org/x","e":1,"r":"` + strings.Repeat("ab", 32) + `","k":"xyz","s":"` + secret + `"}`),
			"token: malformed token: bad token ID"},
		"bad fingerprint": {encode(`{"u":"https://a","i":"spiffe://example.org/x","e":1,"r":"abc","k":"` + good.ID + `","s":"` + secret + `"}`),
			`token: malformed token: root fingerprint "abc" is not a hex SHA-256`},
		"http server": {encode(`{"u":"http://a","i":"spiffe://example.org/x","e":1,"r":"` + strings.Repeat("ab", 32) + `","k":"` + good.ID + `","s":"` + secret + `"}`),
			`token: malformed token: server URL "http://a" must be an https:// URL`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	good, _ := Mint(claims())
	f.Add(good.String())
	f.Add(Prefix)
	f.Add(encode(`{"u":"https://a"}`))
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to something that parses the same.
		again, err := Parse(tok.String())
		if err != nil || again.ID != tok.ID || again.Identity != tok.Identity {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

// decodeWireJSON is what Parse did before decodeWire: encoding/json alone.
func decodeWireJSON(raw []byte, w *wire) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(w)
}

// checkDecodeWire fails t if decodeWire and encoding/json disagree on raw:
// one accepts and the other refuses, or they fill different values.
func checkDecodeWire(t *testing.T, raw []byte) {
	t.Helper()
	var got, want wire
	gerr, werr := decodeWire(raw, &got), decodeWireJSON(raw, &want)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: decodeWire %v, encoding/json %v", raw, gerr, werr)
	}
	if gerr == nil && got != want {
		t.Fatalf("%q: decodeWire %+v, encoding/json %+v", raw, got, want)
	}
}

func TestDecodeWireDifferential(t *testing.T) {
	good, _ := Mint(claims())
	canon := func(t Token) string {
		s := t.String()
		b, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, Prefix))
		return string(b)
	}
	c := canon(good)
	amp := good
	amp.ServerURL = "https://a.example/?x=1&y=<2>" // json.Marshal escapes & < >
	neg := good
	neg.ExpiresAt = time.Unix(-62135596800, 0)
	payloads := []string{
		c, canon(amp), canon(neg),
		c + " ", " " + c, c + "x", c + `{}`, c + "\n" + c,
		strings.Replace(c, `"u":"https`, `"u":"h\u0074tps`, 1),
		strings.Replace(c, `"u":"https`, `"U":"https`, 1), // encoding/json folds case
		strings.Replace(c, `"u":`, `"u" :`, 1),
		strings.Replace(c, `,"i":`, `,"u":"https://b","i":`, 1), // a duplicate field: the last wins
		strings.Replace(c, `,"i":`, `,"x":"y","i":`, 1),
		strings.Replace(c, `{"u":`, `{"i":"spiffe://example.org/z","u":`, 1),
		`{"u":"","i":"","e":0,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":-0,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":-,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":01,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":1.5,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":1e3,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":"1","r":"","k":"","s":""}`,
		`{"u":"","i":"","e":999999999999999999,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":-999999999999999999,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":9223372036854775807,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":9223372036854775808,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":1,"r":"","k":"","s":"` + "\x7f" + `"}`,
		`{"u":"","i":"","e":1,"r":"","k":"","s":"` + "\t" + `"}`,
		`{"u":"","i":"","e":1,"r":"","k":"","s":"` + "\xff" + `"}`,
		`{"u":"","i":"","e":1,"r":"","k":"","s":"é"}`,
		`{"u":"","i":"","e":1,"r":"","k":"","s":"\""}`,
		`{"u":"","i":"","e":1,"r":"","k":"","s":"a,b"}`,
		`{"u":"","i":"","e":1,"r":"","k":"","s":null}`,
		`{"u":"","i":"","e":null,"r":"","k":"","s":""}`,
		`{"u":"","i":"","e":1,"r":"","k":""}`,
		`{"u":"","i":"","e":1,"r":"","k":"","s":""`,
		`{"u":"","i":"","e":1,"r":"","k":"","s":"}`,
		`{"u":"","i":"","e":1,`, `{"u":"`, `{`, ``, `null`, `[]`,
	}
	for _, p := range payloads {
		checkDecodeWire(t, []byte(p))
	}
	// The form String writes is the one read without encoding/json.
	var w wire
	if !canonicalWire([]byte(c), &w) || w.ID != good.ID || w.Expires != good.ExpiresAt.Unix() {
		t.Fatalf("a minted token is not read directly: %+v", w)
	}
	if canonicalWire([]byte(canon(amp)), &w) {
		t.Fatal("an escaped URL was read directly")
	}
}

func FuzzDecodeWire(f *testing.F) {
	good, _ := Mint(claims())
	b, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(good.String(), Prefix))
	f.Add(b)
	f.Add([]byte(`{"u":"","i":"","e":-0,"r":"","k":"","s":""}`))
	f.Add([]byte(`{"u":"","i":"","e":1,"r":"","k":"","s":"\""}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecodeWire(t, raw)
	})
}

// BenchmarkDecodeWire compares the payload decoding of a minted token
// before (encoding-json) and after (decodeWire) in one run.
func BenchmarkDecodeWire(b *testing.B) {
	good, _ := Mint(claims())
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(good.String(), Prefix))
	for _, bc := range []struct {
		name   string
		decode func([]byte, *wire) error
	}{{"encoding-json", decodeWireJSON}, {"decodeWire", decodeWire}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var w wire
				if err := bc.decode(raw, &w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	good, _ := Mint(claims())
	s := good.String()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}
