package checkpoint_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/checkpoint"
)

var t0 = time.Date(2026, 12, 5, 13, 0, 0, 123456789, time.UTC)

func newSigner(t testing.TB, name string) *checkpoint.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewSigner(name, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func head(n int) []byte { h := sha256.Sum256([]byte{byte(n)}); return h[:] }

func TestSignVerifyRoundTrip(t *testing.T) {
	s := newSigner(t, "example.org/certgate/audit")
	signed, err := s.Sign(checkpoint.Checkpoint{Size: 42, Hash: head(42), Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	note := signed.Note()
	if !strings.HasPrefix(string(note), "example.org/certgate/audit\n42\n") || !strings.Contains(string(note), "\ntime 2026-12-05T13:00:00.123456789Z\n\n— example.org/certgate/audit ") {
		t.Fatalf("note:\n%s", note)
	}
	got, err := s.Verifier().Verify(note)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 42 || !bytes.Equal(got.Hash, head(42)) || !got.Time.Equal(t0) || got.Origin != s.Name() {
		t.Fatalf("got %+v", got.Checkpoint)
	}
	if !bytes.Equal(got.Text(), signed.Text()) || !bytes.Equal(got.Note(), note) {
		t.Fatal("re-encoded note differs")
	}
}

func TestVerifyRefuses(t *testing.T) {
	s := newSigner(t, "example.org/certgate/audit")
	other := newSigner(t, "example.org/certgate/audit")
	signed, err := s.Sign(checkpoint.Checkpoint{Size: 7, Hash: head(7), Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	note := string(signed.Note())
	otherSigned, _ := other.Sign(checkpoint.Checkpoint{Size: 7, Hash: head(7), Time: t0})
	for _, tc := range []struct {
		name, note string
		want       error
		msg        string
	}{
		{"size changed", strings.Replace(note, "\n7\n", "\n8\n", 1), checkpoint.ErrSignature, "checkpoint: signature does not verify: by key example.org/certgate/audit"},
		{"other key", string(otherSigned.Note()), checkpoint.ErrSignature, "no signature by key example.org/certgate/audit"},
		{"no signature", strings.SplitAfter(note, "\n\n")[0], checkpoint.ErrMalformed, ""},
		{"no blank line", strings.Replace(note, "\n\n", "\n", 1), checkpoint.ErrMalformed, "no blank line"},
		{"control character", strings.Replace(note, "time", "ti\x01e", 1), checkpoint.ErrMalformed, "control character"},
		{"bad base64", strings.Replace(note, "— example.org/certgate/audit ", "— example.org/certgate/audit !", 1), checkpoint.ErrMalformed, "signature line"},
		{"not a signature line", note + "hello\n", checkpoint.ErrMalformed, "does not start with"},
		{"oversized", note + strings.Repeat("— x AAAAAAAA\n", 6000), checkpoint.ErrMalformed, "the limit is 65536"},
		{"not utf-8", note[:len(note)-1] + "\xff\n", checkpoint.ErrMalformed, "not UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Verifier().Verify([]byte(tc.note))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
	// An extra signature by another key is ignored, as signed-note says.
	extra := note + strings.SplitAfter(string(otherSigned.Note()), "\n\n")[1]
	extra = strings.Replace(extra, "— example.org/certgate/audit", "— witness.example", 2)
	extra = strings.Replace(extra, "— witness.example", "— example.org/certgate/audit", 1)
	if _, err := s.Verifier().Verify([]byte(extra)); err != nil {
		t.Fatalf("note with a second, unknown signer: %v", err)
	}
}

func TestSignRefuses(t *testing.T) {
	if _, err := checkpoint.NewSigner("has space", ed25519.NewKeyFromSeed(make([]byte, 32))); !errors.Is(err, checkpoint.ErrMalformed) {
		t.Fatalf("name with a space: %v", err)
	}
	s := newSigner(t, "x")
	if _, err := s.Sign(checkpoint.Checkpoint{Size: 1, Hash: []byte("short")}); err == nil || err.Error() != "checkpoint: malformed: head hash is 5 bytes, want 32" {
		t.Fatalf("short hash: %v", err)
	}
}

// TestOpenSSLVerifies checks the signature with openssl from the published
// PEM public key: a verifier needs nothing of certgate.
func TestOpenSSLVerifies(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	s := newSigner(t, "example.org/certgate/audit")
	signed, err := s.Sign(checkpoint.Checkpoint{Size: 3, Hash: head(3), Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub := filepath.Join(dir, "audit.pub.pem")
	os.WriteFile(pub, checkpoint.MarshalPublicKey(s.Public()), 0o644)
	os.WriteFile(filepath.Join(dir, "text"), signed.Text(), 0o644)
	os.WriteFile(filepath.Join(dir, "sig"), signed.Signature(), 0o644)
	os.WriteFile(filepath.Join(dir, "forged"), bytes.Replace(signed.Text(), []byte("\n3\n"), []byte("\n2\n"), 1), 0o644)
	out, err := exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin",
		"-in", filepath.Join(dir, "text"), "-sigfile", filepath.Join(dir, "sig")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	out, err = exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin",
		"-in", filepath.Join(dir, "forged"), "-sigfile", filepath.Join(dir, "sig")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Signature Verification Failure") {
		t.Fatalf("openssl accepted a changed text: %v\n%s", err, out)
	}
}

func TestNotesFile(t *testing.T) {
	s := newSigner(t, "log.example")
	path := filepath.Join(t.TempDir(), "checkpoints")
	for i := 1; i <= 3; i++ {
		signed, err := s.Sign(checkpoint.Checkpoint{Size: int64(i * 10), Hash: head(i), Time: t0.Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if err := checkpoint.Append(path, signed); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	notes, err := checkpoint.Notes(data)
	if err != nil || len(notes) != 3 {
		t.Fatalf("%d notes, %v", len(notes), err)
	}
	for i, n := range notes {
		c, err := s.Verifier().Verify(n)
		if err != nil || c.Size != int64((i+1)*10) {
			t.Fatalf("note %d: %+v %v", i, c.Checkpoint, err)
		}
	}
	if _, err := checkpoint.Notes(data[:len(data)-10]); !errors.Is(err, checkpoint.ErrMalformed) {
		t.Fatalf("cut file: %v", err)
	}
	if _, err := checkpoint.Notes([]byte("log.example\n1\n")); !errors.Is(err, checkpoint.ErrMalformed) {
		t.Fatalf("unsigned: %v", err)
	}
}

func TestConsistent(t *testing.T) {
	a := checkpoint.Checkpoint{Origin: "l", Size: 10, Hash: head(10), Time: t0}
	for _, tc := range []struct {
		name string
		next checkpoint.Checkpoint
		msg  string
	}{
		{"same", a, ""},
		{"later", checkpoint.Checkpoint{Origin: "l", Size: 11, Hash: head(11), Time: t0.Add(time.Second)}, ""},
		{"truncated", checkpoint.Checkpoint{Origin: "l", Size: 9, Hash: head(9), Time: t0.Add(time.Second)}, "checkpoint: does not extend the earlier checkpoint: size 9 is below the earlier 10 (records removed)"},
		{"forked", checkpoint.Checkpoint{Origin: "l", Size: 10, Hash: head(11), Time: t0}, "size 10 has head"},
		{"other log", checkpoint.Checkpoint{Origin: "m", Size: 10, Hash: head(10), Time: t0}, `log "m", earlier "l"`},
		{"back in time", checkpoint.Checkpoint{Origin: "l", Size: 12, Hash: head(12), Time: t0.Add(-time.Hour)}, "before the earlier size 10"},
	} {
		err := checkpoint.Consistent(a, tc.next)
		if (tc.msg == "") != (err == nil) || (err != nil && (!errors.Is(err, checkpoint.ErrNotExtended) || !strings.Contains(err.Error(), tc.msg))) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.msg)
		}
	}
}

func TestWitness(t *testing.T) {
	s := newSigner(t, "log.example")
	w := checkpoint.NewWitness(filepath.Join(t.TempDir(), "audit-checkpoint"))
	sign := func(size int, h []byte) []byte {
		sg, err := s.Sign(checkpoint.Checkpoint{Size: int64(size), Hash: h, Time: t0.Add(time.Duration(size) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		return sg.Note()
	}
	if _, ok, err := w.Last(); ok || err != nil {
		t.Fatalf("empty witness: %v %v", ok, err)
	}
	if _, err := w.Observe(s.Name(), s.Public(), sign(5, head(5))); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Observe(s.Name(), s.Public(), sign(8, head(8))); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(w.Path())
	// Truncated, forked, by another key, forged: refused, memory unchanged.
	if _, err := w.Observe(s.Name(), s.Public(), sign(6, head(6))); !errors.Is(err, checkpoint.ErrNotExtended) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := w.Observe(s.Name(), s.Public(), sign(8, head(99))); !errors.Is(err, checkpoint.ErrNotExtended) {
		t.Fatalf("forked: %v", err)
	}
	o := newSigner(t, "log.example")
	on, _ := o.Sign(checkpoint.Checkpoint{Size: 9, Hash: head(9), Time: t0.Add(time.Hour)})
	if _, err := w.Observe(o.Name(), o.Public(), on.Note()); !errors.Is(err, checkpoint.ErrKeyChanged) {
		t.Fatalf("new key: %v", err)
	}
	if _, err := w.Observe(s.Name(), s.Public(), on.Note()); !errors.Is(err, checkpoint.ErrSignature) {
		t.Fatalf("forged: %v", err)
	}
	after, _ := os.ReadFile(w.Path())
	if !bytes.Equal(before, after) {
		t.Fatal("a refused checkpoint changed the witness")
	}
	last, ok, err := w.Last()
	if !ok || err != nil || last.Size != 8 {
		t.Fatalf("last = %+v %v %v", last.Checkpoint, ok, err)
	}
}

func FuzzVerify(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	s, _ := checkpoint.NewSigner("log.example", key)
	sg, _ := s.Sign(checkpoint.Checkpoint{Size: 1, Hash: head(1), Time: t0})
	f.Add(sg.Note())
	f.Add([]byte("log.example\n1\nAAAA\n\n— log.example AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, note []byte) {
		got, err := s.Verifier().Verify(note)
		if err == nil && !bytes.Equal(got.Note(), note) && !bytes.HasPrefix(note, got.Text()) {
			t.Fatalf("verified note does not re-encode: %q", note)
		}
		checkpoint.Notes(note)
	})
}
