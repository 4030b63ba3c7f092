package est

import (
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testca"
)

func TestCertsOnlyRoundTrip(t *testing.T) {
	ca := testca.New(t, "example.org")
	leaf := ca.Issue(t)
	b, err := CertsOnly(leaf.Cert, ca.Intermediate, ca.Root)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if len(line) > 64 {
			t.Fatalf("line of %d characters", len(line))
		}
	}
	got, err := ParseCertsOnly(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].Equal(leaf.Cert) || !got[1].Equal(ca.Intermediate) || !got[2].Equal(ca.Root) {
		t.Fatalf("got %d certificates, not the three in order", len(got))
	}
}

func TestDecodeCSR(t *testing.T) {
	key, _ := keytype.Generate(keytype.ECDSAP256)
	id, _ := identity.Parse("spiffe://example.org/svc/a")
	p, err := csr.Create(key, id)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := pemutil.ParseCSR(p)
	// MIME line breaks, CRLF, a trailing newline: all accepted.
	body := bytes.ReplaceAll(Base64(want.Raw), []byte("\n"), []byte("\r\n"))
	pemCSR, req, err := DecodeCSR(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(req.Raw, want.Raw) || !bytes.Equal(pemCSR, pemutil.EncodeCSR(want.Raw)) {
		t.Fatal("decoded another request")
	}
	for name, c := range map[string]struct {
		body []byte
		kind error
		msg  string
	}{
		"empty":      {[]byte(" \r\n"), ErrMalformed, "est: malformed request: empty body"},
		"oversized":  {bytes.Repeat([]byte("A"), MaxBody+1), ErrTooLarge, "est: request too large: 16385 bytes (limit 16384)"},
		"not base64": {[]byte("@@@@"), ErrMalformed, "est: malformed request: body is not base64: illegal base64 data at input byte 0"},
		"truncated":  {[]byte(base64.StdEncoding.EncodeToString(want.Raw[:40])), ErrMalformed, "est: malformed request: not a PKCS#10 request: asn1: syntax error: data truncated"},
		"trailing":   {[]byte(base64.StdEncoding.EncodeToString(append(append([]byte{}, want.Raw...), 0))), ErrMalformed, "est: malformed request: not a PKCS#10 request: asn1: syntax error: trailing data"},
	} {
		_, _, err := DecodeCSR(c.body)
		if !errors.Is(err, c.kind) || err.Error() != c.msg {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCSRAttributes(t *testing.T) {
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(CSRAttributes()), "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	var seq []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) != 0 || len(seq) != 3 {
		t.Fatalf("CsrAttrs: %v, %d items", err, len(seq))
	}
}

// FuzzDecodeCSR: no input panics, and whatever is accepted is a request
// whose PEM parses back to the same DER.
func FuzzDecodeCSR(f *testing.F) {
	key, _ := keytype.Generate(keytype.ECDSAP256)
	id, _ := identity.Parse("spiffe://example.org/svc/a")
	p, _ := csr.Create(key, id)
	req, _ := pemutil.ParseCSR(p)
	f.Add(Base64(req.Raw))
	f.Add([]byte("MIIB"))
	f.Add([]byte("\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		pemCSR, r, err := DecodeCSR(body)
		if err != nil {
			return
		}
		back, err := pemutil.ParseCSR(pemCSR)
		if err != nil || !bytes.Equal(back.Raw, r.Raw) {
			t.Fatalf("accepted a request that does not survive PEM: %v", err)
		}
	})
}
