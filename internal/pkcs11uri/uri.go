package pkcs11uri

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrURI is wrapped by every error of [Parse].
var ErrURI = errors.New("bad PKCS#11 URI")

// URI is a parsed RFC 7512 PKCS#11 URI naming a token (and, once a key
// exists, the key in it).
type URI struct {
	// Path attributes (RFC 7512 section 2.3) that certgate uses. Token,
	// Serial or SlotID select the token; Object, ID and Type the key.
	Token, Manufacturer, Serial, Model string
	SlotID                             *int
	Object                             string
	ID                                 []byte
	Type                               string // "private" or ""
	// Query attributes: the module to load and where the PIN comes from.
	ModulePath string
	PinSource  string // file:/path, /path, or env:NAME
	PinValue   string // discouraged (RFC 7512 section 2.4): the PIN inline
}

// maxURI bounds what ParseURI reads; real URIs are under 300 bytes.
const maxURI = 4096

var pathAttrs = []string{"token", "manufacturer", "serial", "model", "slot-id", "object", "id", "type",
	"library-manufacturer", "library-description", "library-version", "slot-description", "slot-manufacturer"}

var queryAttrs = []string{"module-path", "module-name", "pin-source", "pin-value"}

// Parse parses s strictly: the "pkcs11:" scheme, each attribute at most
// once (RFC 7512 section 2.3), known attributes only (a typo must not
// silently select another token), percent-encoding decoded, and it must
// name a module (module-path), a token (token, serial or slot-id) and a
// PIN (pin-source or pin-value).
func Parse(s string) (URI, error) {
	bad := func(format string, a ...any) (URI, error) {
		return URI{}, fmt.Errorf("%w: "+format, append([]any{ErrURI}, a...)...)
	}
	if len(s) > maxURI {
		return bad("longer than %d bytes", maxURI)
	}
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return bad("does not start with pkcs11:")
	}
	path, query, _ := strings.Cut(rest, "?")
	var u URI
	seen := map[string]bool{}
	read := func(part, sep string, known []string, set func(k, v string) error) error {
		if part == "" {
			return nil
		}
		for _, attr := range strings.Split(part, sep) {
			k, raw, ok := strings.Cut(attr, "=")
			if !ok || k == "" {
				return fmt.Errorf("attribute %q is not name=value", attr)
			}
			if !slices.Contains(known, k) {
				return fmt.Errorf("unknown attribute %q", k)
			}
			if seen[k] {
				return fmt.Errorf("attribute %q appears twice", k)
			}
			seen[k] = true
			v, err := url.PathUnescape(raw)
			if err != nil {
				return fmt.Errorf("attribute %q: %v", k, err)
			}
			if err := set(k, v); err != nil {
				return fmt.Errorf("attribute %q: %v", k, err)
			}
		}
		return nil
	}
	err := read(path, ";", pathAttrs, func(k, v string) error {
		switch k {
		case "token":
			u.Token = v
		case "manufacturer":
			u.Manufacturer = v
		case "serial":
			u.Serial = v
		case "model":
			u.Model = v
		case "object":
			u.Object = v
		case "id":
			u.ID = []byte(v)
		case "type":
			if v != "private" {
				return fmt.Errorf("type %q: a CA key is a private key", v)
			}
			u.Type = v
		case "slot-id":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("slot-id %q is not a slot number", v)
			}
			u.SlotID = &n
		}
		return nil
	})
	if err != nil {
		return bad("%v", err)
	}
	err = read(query, "&", queryAttrs, func(k, v string) error {
		switch k {
		case "module-path":
			if !filepath.IsAbs(v) {
				return fmt.Errorf("module-path %q is not an absolute path", v)
			}
			u.ModulePath = v
		case "module-name":
			return errors.New("module-name is not supported: give module-path, the module's absolute path")
		case "pin-source":
			if _, err := pinSourcePath(v); err != nil {
				return err
			}
			u.PinSource = v
		case "pin-value":
			u.PinValue = v
		}
		return nil
	})
	if err != nil {
		return bad("%v", err)
	}
	switch {
	case u.ModulePath == "":
		return bad("no module-path (the PKCS#11 module to load, e.g. module-path=/usr/lib/softhsm/libsofthsm2.so)")
	case u.Token == "" && u.Serial == "" && u.SlotID == nil:
		return bad("no token, serial or slot-id names the token")
	case u.PinSource == "" && u.PinValue == "":
		return bad("no pin-source (e.g. pin-source=file:/etc/certgate/hsm-pin) or pin-value")
	case u.PinSource != "" && u.PinValue != "":
		return bad("both pin-source and pin-value")
	}
	return u, nil
}

// pinSourcePath checks a pin-source: "file:/abs", "/abs" or "env:NAME".
func pinSourcePath(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, "env:"):
		if len(v) == len("env:") {
			return "", errors.New("pin-source env: names no variable")
		}
		return "", nil
	case strings.HasPrefix(v, "file:"):
		p := strings.TrimPrefix(v, "file:")
		p = strings.TrimPrefix(p, "//") // file:///abs
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("pin-source %q is not an absolute file", v)
		}
		return p, nil
	case filepath.IsAbs(v):
		return v, nil
	}
	return "", fmt.Errorf("pin-source %q is not file:/path, /path or env:NAME", v)
}

// PIN reads the PIN u names. A file's trailing newline is dropped.
func (u URI) PIN() (string, error) {
	if u.PinValue != "" {
		return u.PinValue, nil
	}
	if name, ok := strings.CutPrefix(u.PinSource, "env:"); ok {
		v := os.Getenv(name)
		if v == "" {
			return "", fmt.Errorf("pkcs11: pin-source: $%s is empty", name)
		}
		return v, nil
	}
	p, err := pinSourcePath(u.PinSource)
	if err != nil {
		return "", fmt.Errorf("pkcs11: %w", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("pkcs11: pin-source: %w", err)
	}
	pin := strings.TrimRight(string(b), "\r\n")
	if pin == "" {
		return "", fmt.Errorf("pkcs11: pin-source %s is empty", p)
	}
	return pin, nil
}

// String formats u as a URI: path attributes, then the query; values are
// percent-encoded except unreserved characters, the id always in full.
func (u URI) String() string {
	var path, query []string
	add := func(dst *[]string, k, v string) {
		if v != "" {
			*dst = append(*dst, k+"="+escape(v, false))
		}
	}
	add(&path, "token", u.Token)
	add(&path, "manufacturer", u.Manufacturer)
	add(&path, "serial", u.Serial)
	add(&path, "model", u.Model)
	if u.SlotID != nil {
		path = append(path, "slot-id="+strconv.Itoa(*u.SlotID))
	}
	add(&path, "object", u.Object)
	if len(u.ID) > 0 {
		path = append(path, "id="+escape(string(u.ID), true))
	}
	add(&path, "type", u.Type)
	add(&query, "module-path", u.ModulePath)
	add(&query, "pin-source", u.PinSource)
	add(&query, "pin-value", u.PinValue)
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// TokenURI returns u without the key's attributes: the token alone.
func (u URI) TokenURI() URI {
	u.Object, u.ID, u.Type = "", nil, ""
	return u
}

// escape percent-encodes v: every byte if all (an id is binary), else
// all but unreserved characters and "/" (module and PIN file paths).
func escape(v string, all bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		keep := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '/' || c == ':'
		if keep && !all {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Redacted is u with an inline PIN replaced, for messages and logs.
func (u URI) Redacted() string {
	if u.PinValue != "" {
		u.PinValue = "redacted"
	}
	return u.String()
}
