package legacykey

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	keyA = "7f3c9a51d2e84b06a1c5f9e03b7d2a4c" // 32 hex: 128 bits
	keyB = "Zq8vR2mW5tY1kP9xL3nC7bF0hJ4dS6gA" // 32 base64url characters: 192 bits
)

func TestParseFileLines(t *testing.T) {
	got, err := ParseFile([]byte("# clients\nbilling " + keyA + "\n\nreports\t" + keyB + "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (Entry{2, "billing", keyA}) || got[1] != (Entry{4, "reports", keyB}) {
		t.Fatalf("got %+v", got)
	}
}

func TestParseFileJSON(t *testing.T) {
	got, err := ParseFile([]byte("[\n  {\"name\": \"billing\", \"key\": \"" + keyA + "\"},\n  {\"name\": \"reports\", \"key\": \"" + keyB + "\"}\n]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (Entry{2, "billing", keyA}) || got[1] != (Entry{3, "reports", keyB}) {
		t.Fatalf("got %+v", got)
	}
}

func TestParseFileRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"short key", "billing " + keyA + "\nshort 0123456789abcdef\n",
			"line 2: the key of \"short\" carries about 64 bits of entropy, under the 128 required: a short or patterned key can be guessed; rotate it to a random one first (e.g. openssl rand -hex 32)"},
		{"patterned key", "a aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
			"line 1: the key of \"a\" carries about 0 bits of entropy, under the 128 required: a short or patterned key can be guessed; rotate it to a random one first (e.g. openssl rand -hex 32)"},
		{"duplicate name", "billing " + keyA + "\nbilling " + keyB + "\n", "line 2: name \"billing\" is already on line 1"},
		{"duplicate key", "billing " + keyA + "\nreports " + keyA + "\n", "line 2: the key of \"reports\" is the same as the key on line 1: one key, one client"},
		{"bad name", "Billing/x " + keyA + "\n", "line 1: name \"Billing/x\" has invalid character 'B' (lowercase letters, digits, '.', '-', '_' only: it becomes the identity spiffe://TD/legacy/NAME)"},
		{"fields", "billing\n", "line 1: want \"NAME KEY\", got 1 fields"},
		{"empty", "# nothing\n", "line 1: no keys in the file"},
		{"json missing key", "[\n{\"name\":\"a\"}\n]", "line 2: each object needs \"name\" and \"key\""},
		{"json unknown field", "[\n\n{\"name\":\"a\",\"secret\":\"x\"}]", "line 3: bad JSON object: json: unknown field \"secret\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFile([]byte(tc.file))
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || got != nil {
				t.Fatalf("ParseFile = %v, %v; want a *FileError", got, err)
			}
			want := "legacy keys: import file refused, nothing imported:\n  " + tc.want
			if err.Error() != want {
				t.Errorf("error:\n%s\nwant:\n%s", err, want)
			}
			for _, k := range []string{keyA, keyB} {
				if strings.Contains(err.Error(), k) {
					t.Errorf("the error carries a key")
				}
			}
		})
	}
}

func TestEntropy(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int
	}{
		{keyA, 128}, {keyB, 192}, {"0123456789abcdef", 64}, {"abababababababababababababababababababab", 53},
	} {
		if got := int(EntropyBits(tc.key)); got != tc.want {
			t.Errorf("EntropyBits(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestSetLookup(t *testing.T) {
	salt := []byte("0123456789abcdef0123456789abcdef")
	sunset := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	s := NewSet(salt, []Key{{Hash: Hash(salt, keyA), Name: "billing", Identity: Identity("example.org", "billing"), Sunset: sunset}})
	k, ok := s.Lookup(keyA)
	if !ok || k.Name != "billing" || k.Identity != "spiffe://example.org/legacy/billing" || !k.Sunset.Equal(sunset) {
		t.Fatalf("Lookup(right) = %+v, %v", k, ok)
	}
	if _, ok := s.Lookup(keyB); ok {
		t.Fatal("Lookup(wrong) found a key")
	}
	if _, ok := NewSet([]byte("other salt"), s.keys).Lookup(keyA); ok {
		t.Fatal("a key hashed with another salt was found")
	}
	if _, ok := (*Set)(nil).Lookup(keyA); ok {
		t.Fatal("nil set found a key")
	}
	if n, ok := NameOf("spiffe://example.org/legacy/billing"); !ok || n != "billing" {
		t.Errorf("NameOf = %q, %v", n, ok)
	}
	if FromAuthorization("bearer "+keyA) != keyA || FromAuthorization(keyA) != keyA {
		t.Error("FromAuthorization")
	}
}

// BenchmarkLookup compares a right key and a wrong one of the same length
// against a set of 1000: the same work, the same time (see the package
// comment); scripts and docs quote both.
func BenchmarkLookup(b *testing.B) {
	salt := []byte("0123456789abcdef0123456789abcdef")
	keys := make([]Key, 1000)
	for i := range keys {
		keys[i] = Key{Hash: Hash(salt, keyA+string(rune('a'+i%26))+string(rune('a'+i/26%26))), Name: "k"}
	}
	right := keyA + "ba"
	wrong := keyB + "xy" // same length as right, not in the set
	s := NewSet(salt, keys)
	if _, ok := s.Lookup(right); !ok {
		b.Fatal("right key not found")
	}
	if _, ok := s.Lookup(wrong); ok || len(wrong) != len(right) {
		b.Fatal("wrong key found, or not of the right key's length")
	}
	b.Run("right", func(b *testing.B) {
		for b.Loop() {
			s.Lookup(right)
		}
	})
	b.Run("wrong", func(b *testing.B) {
		for b.Loop() {
			s.Lookup(wrong)
		}
	})
}

// BenchmarkLookupAlternating measures a right key and a wrong one in
// alternating batches of 1000 lookups within one run (so load on the
// machine hits both alike) and reports the median batch of each, per
// lookup.
func BenchmarkLookupAlternating(b *testing.B) {
	salt := []byte("0123456789abcdef0123456789abcdef")
	keys := make([]Key, 1000)
	for i := range keys {
		keys[i] = Key{Hash: Hash(salt, keyA+string(rune('a'+i%26))+string(rune('a'+i/26%26))), Name: "k"}
	}
	s := NewSet(salt, keys)
	right, wrong := keyA+"ba", keyB+"xy"
	var rt, wt []time.Duration
	for b.Loop() {
		for j, k := range []string{right, wrong} {
			start := time.Now()
			for range 1000 {
				s.Lookup(k)
			}
			d := time.Since(start) / 1000
			if j == 0 {
				rt = append(rt, d)
			} else {
				wt = append(wt, d)
			}
		}
	}
	med := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Nanoseconds())
	}
	b.ReportMetric(med(rt), "right-ns/lookup")
	b.ReportMetric(med(wt), "wrong-ns/lookup")
}
