package canon

import (
	"net/url"
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	def := Policy{}
	decode := Policy{EscapedSlashes: EscapedSlashesDecode}
	keep := Policy{EscapedSlashes: EscapedSlashesKeep}
	params := Policy{Semicolons: SemicolonsAllow}
	strict := Policy{RepeatedSlashes: RepeatedSlashesReject}
	for _, tc := range []struct {
		p          Policy
		in         string
		fwd, match string
		err        *Error
	}{
		{def, "/", "/", "/", nil},
		{def, "/admin/users", "/admin/users", "/admin/users", nil},
		{def, "/admin/", "/admin/", "/admin/", nil},
		{def, "/%61dmin", "/admin", "/admin", nil},
		{def, "/%41%44MIN", "/ADMIN", "/ADMIN", nil},
		{def, "//admin", "/admin", "/admin", nil},
		{def, "/a///b//", "/a/b/", "/a/b/", nil},
		{def, "/a%7eb%2d", "/a~b-", "/a~b-", nil},
		{def, "/a%3ab%40c%21%2C%3D", "/a:b@c!,=", "/a:b@c!,=", nil},
		{def, "/a%20b%3fc%23d", "/a%20b%3Fc%23d", "/a%20b%3Fc%23d", nil},
		{def, "/a{b}|c", "/a%7Bb%7D%7Cc", "/a%7Bb%7D%7Cc", nil},
		{def, "/caf%c3%a9", "/caf%C3%A9", "/caf%C3%A9", nil},
		{def, "/100%25", "/100%25", "/100%25", nil},
		{def, "/%25zz", "/%25zz", "/%25zz", nil},
		{def, "/...", "/...", "/...", nil},
		{def, "/.well-known/x", "/.well-known/x", "/.well-known/x", nil},
		{def, "/a..b/c.", "/a..b/c.", "/a..b/c.", nil},
		{def, "", "", "", ErrNotAbsolute},
		{def, "admin", "", "", ErrNotAbsolute},
		{def, "/x/../admin", "", "", ErrDotSegment},
		{def, "/x/..", "", "", ErrDotSegment},
		{def, "/./admin", "", "", ErrDotSegment},
		{def, "/x/%2e%2E/admin", "", "", ErrDotSegment},
		{def, "/x/.%2e/admin", "", "", ErrDotSegment},
		{def, "/x/%2e/admin", "", "", ErrDotSegment},
		{def, "/x/..%2fadmin", "", "", ErrEncodedSlash},
		{def, "/%2fadmin", "", "", ErrEncodedSlash},
		{def, "/%2Fadmin", "", "", ErrEncodedSlash},
		{def, "/a\\b", "", "", ErrBackslash},
		{def, "/a%5cb", "", "", ErrBackslash},
		{def, "/a%00b", "", "", ErrControl},
		{def, "/a%0d%0aX:%20y", "", "", ErrControl},
		{def, "/a%7f", "", "", ErrControl},
		{def, "/a\x01", "", "", ErrBadChar},
		{def, "/a b", "", "", ErrBadChar},
		{def, "/a\x80", "", "", ErrBadChar},
		{def, "/a#b", "", "", ErrBadChar},
		{def, "/a?b", "", "", ErrBadChar},
		{def, "/a%", "", "", ErrBadPercent},
		{def, "/a%2", "", "", ErrBadPercent},
		{def, "/a%zz", "", "", ErrBadPercent},
		{def, "/%252e%252e/admin", "", "", ErrDoubleEncoded},
		{def, "/%25%32%65%25%32%65/admin", "", "", ErrDoubleEncoded},
		{def, "/%252fadmin", "", "", ErrDoubleEncoded},
		{def, "/%2561dmin", "", "", ErrDoubleEncoded},
		{def, "/%c0%af", "", "", ErrInvalidUTF8},
		{def, "/%c0%ae%c0%ae/admin", "", "", ErrInvalidUTF8},
		{def, "/%e0%80%af", "", "", ErrInvalidUTF8},
		{def, "/%ed%a0%80", "", "", ErrInvalidUTF8},
		{def, "/%ff", "", "", ErrInvalidUTF8},
		{def, "/admin;x=1", "", "", ErrSemicolon},
		{def, "/admin%3bx", "", "", ErrEncodedSemicolon},
		{def, "/..;/admin", "", "", ErrSemicolon},
		{strict, "//admin", "", "", ErrEmptySegment},
		{strict, "/a/b/", "/a/b/", "/a/b/", nil},
		{decode, "/a%2fb", "/a/b", "/a/b", nil},
		{decode, "/%2fadmin", "/admin", "/admin", nil},
		{decode, "/x/..%2fadmin", "", "", ErrDotSegment},
		{decode, "/a%2F%2Fb", "/a/b", "/a/b", nil},
		{keep, "/a%2fb", "/a%2Fb", "/a/b", nil},
		{keep, "/x%2Fadmin/y", "/x%2Fadmin/y", "/x/admin/y", nil},
		{keep, "/%2fadmin", "", "", ErrEmptySegment},
		{keep, "/a/%2F/b", "", "", ErrEmptySegment},
		{keep, "/x/..%2fadmin", "", "", ErrDotSegment},
		{keep, "/x%2F..", "", "", ErrDotSegment},
		{params, "/admin;x=1", "/admin;x=1", "/admin", nil},
		{params, "/a;v=1/b;w=2/c", "/a;v=1/b;w=2/c", "/a/b/c", nil},
		{params, "/..;/admin", "", "", ErrDotSegment},
		{params, "/.;x/admin", "", "", ErrDotSegment},
		{params, "/admin%3bx", "", "", ErrEncodedSemicolon},
		{params, "/a;%2e%2e", "/a;..", "/a", nil},
	} {
		got, err := tc.p.Path(tc.in)
		if err != tc.err || got.Forward != tc.fwd || got.Match != tc.match {
			t.Errorf("%+v Path(%q) = %+v, %v; want {%q %q}, %v", tc.p, tc.in, got, err, tc.fwd, tc.match, tc.err)
		}
	}
}

func TestPathAllocs(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		if _, err := (Policy{}).Path("/v1/billing/pay-ments/12345"); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("a canonical path allocates %v times", n)
	}
}

func TestMethods(t *testing.T) {
	m := NewMethods("purge", "GET")
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"GET", "GET", true}, {"get", "GET", true}, {"gEt", "GET", true}, {"Delete", "DELETE", true},
		{"PURGE", "PURGE", true}, {"purge", "PURGE", true}, {"propfind", "PROPFIND", true},
		{"TRACE", "", false}, {"CONNECT", "", false}, {"GETS", "", false}, {"", "", false},
	} {
		got, ok := m.Canonical(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Canonical(%q) = %q %v, want %q %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { m.Canonical("post") }); n != 0 {
		t.Fatalf("Canonical allocates %v times", n)
	}
	if _, ok := NewMethods("TRACE").Canonical("trace"); !ok {
		t.Fatal("a route's TRACE is not accepted")
	}
}

func TestHost(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      *Error
	}{
		{"api.example.org", "api.example.org", nil},
		{"API.Example.ORG:8443", "api.example.org:8443", nil},
		{"api.example.org.", "api.example.org", nil},
		{"api.example.org.:443", "api.example.org:443", nil},
		{"[::1]:8443", "[::1]:8443", nil},
		{"127.0.0.1", "127.0.0.1", nil},
		{"", "", nil},
		{".", "", ErrBadHost},
		{"a..", "", ErrBadHost},
		{"a:b:c", "", ErrBadHost},
		{"a:8x", "", ErrBadHost},
		{"[::1", "", ErrBadHost},
		{"[::1]x", "", ErrBadHost},
	} {
		got, err := Host(tc.in)
		if got != tc.want || err != tc.err {
			t.Errorf("Host(%q) = %q %v, want %q %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzPath: whatever is accepted has a canonical form that is a fixed
// point (idempotent, same decision and same Match on its own output),
// carries no "//", no dot segment and no encoded slash, and decodes to
// what the input decodes to, slashes merged.
func FuzzPath(f *testing.F) {
	for _, s := range []string{
		"/", "/admin", "/%61dmin", "//admin", "/x/..%2fadmin", "/%2fadmin", "/a;b=c/d", "/%252e", "/%c0%ae",
		"/a{b}", "/caf%c3%a9", "/a%20b", "/.well-known", "/a/./b", "/a\\b", "/%2e%2e",
	} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, raw string, mode uint8) {
		p := Policy{
			EscapedSlashes:  EscapedSlashes(mode % 3),
			RepeatedSlashes: RepeatedSlashes(mode / 3 % 2),
			Semicolons:      Semicolons(mode / 6 % 2),
		}
		out, err := p.Path(raw)
		if err != nil {
			return
		}
		again, err := p.Path(out.Forward)
		if err != nil || again != out {
			t.Fatalf("%+v: Path(%q) = %+v, but Path(%q) = %+v, %v", p, raw, out, out.Forward, again, err)
		}
		for _, s := range []string{out.Forward, out.Match} {
			if strings.Contains(s, "//") {
				t.Fatalf("%q: %q has //", raw, s)
			}
			for _, seg := range strings.Split(s, "/") {
				if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." {
					t.Fatalf("%q: %q has a dot segment", raw, s)
				}
			}
			if strings.ContainsAny(s, "\\ ?#") {
				t.Fatalf("%q: %q has a byte it must not", raw, s)
			}
		}
		if p.EscapedSlashes != EscapedSlashesKeep && strings.Contains(strings.ToUpper(out.Forward), "%2F") {
			t.Fatalf("%q: %q has an encoded slash", raw, out.Forward)
		}
		if strings.Contains(strings.ToUpper(out.Match), "%2F") || strings.Contains(strings.ToUpper(out.Forward), "%5C") {
			t.Fatalf("%q: %+v", raw, out)
		}
		// Same meaning: both decode to the same bytes, repeated slashes
		// merged.
		want, werr := url.PathUnescape(raw)
		got, gerr := url.PathUnescape(out.Forward)
		for strings.Contains(want, "//") {
			want = strings.ReplaceAll(want, "//", "/")
		}
		if werr != nil || gerr != nil || got != want {
			t.Fatalf("%q decodes to %q, its canonical form %q to %q (%v %v)", raw, want, out.Forward, got, werr, gerr)
		}
	})
}
