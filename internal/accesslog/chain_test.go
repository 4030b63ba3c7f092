package accesslog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/clock"
)

func testSigner(t *testing.T) *checkpoint.Signer {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := checkpoint.NewSigner("certgate-access-log", key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sealedLog writes 60 lines through a file output with tamper evidence,
// rotating by size, restarting the output once half-way, and returns the
// log path and the rotated segments, oldest first.
func sealedLog(t *testing.T, signer *checkpoint.Signer, compress bool) (string, []string) {
	dir := t.TempDir()
	c := clock.NewFake(t0)
	o := FileOptions{Path: filepath.Join(dir, "access.log"), MaxSize: 1500, Compress: compress, Checkpoint: signer}
	s, err := openFileSink(o, c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if i == 30 { // a restart: the chain continues from the file and PATH.checkpoint
			s.close()
			if s, err = openFileSink(o, c); err != nil {
				t.Fatal(err)
			}
		}
		e := &Entry{Time: c.Now(), Kind: KindHTTP, Path: fmt.Sprintf("/v1/invoices/%d", i), Status: 200}
		if err := s.write(e.AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Second)
	}
	s.close()
	bs, _ := s.backups()
	var segs []string
	for _, b := range bs {
		segs = append(segs, b.path)
	}
	if len(segs) < 4 {
		t.Fatalf("only %d segments", len(segs))
	}
	return o.Path, segs
}

func TestVerifyIntact(t *testing.T) {
	signer := testSigner(t)
	for _, compress := range []bool{false, true} {
		path, segs := sealedLog(t, signer, compress)
		r, err := Verify(path, signer.Verifier())
		if err != nil {
			t.Fatalf("compress=%v: %v", compress, err)
		}
		active, _ := os.ReadFile(path)
		if r.Segments != len(segs) || r.FirstLine != 1 || r.Lines+int64(bytes.Count(active, []byte("\n"))) != 60 {
			t.Fatalf("compress=%v: report %+v, %d segments", compress, r, len(segs))
		}
	}
	// Retention removing the oldest segment (and its checkpoint) is not
	// tampering: the oldest kept segment starts where it says.
	path, segs := sealedLog(t, signer, false)
	os.Remove(segs[0])
	os.Remove(segs[0] + ".checkpoint")
	if r, err := Verify(path, signer.Verifier()); err != nil || r.FirstLine == 1 {
		t.Fatalf("after retention: %+v, %v", r, err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	signer := testSigner(t)
	for name, c := range map[string]struct {
		tamper func(t *testing.T, segs []string)
		want   string
	}{
		"removed line": {func(t *testing.T, segs []string) {
			data, _ := os.ReadFile(segs[1])
			lines := bytes.SplitAfter(data, []byte("\n"))
			os.WriteFile(segs[1], bytes.Join(append(lines[:1:1], lines[2:]...), nil), 0o640)
		}, "has %d lines, its checkpoint %d: lines were removed or added"},
		"edited line": {func(t *testing.T, segs []string) {
			data, _ := os.ReadFile(segs[2])
			os.WriteFile(segs[2], bytes.Replace(data, []byte(`"status":200`), []byte(`"status":403`), 1), 0o640)
		}, "does not hash to its checkpoint: a line was edited"},
		"removed segment": {func(t *testing.T, segs []string) {
			os.Remove(segs[1])
			os.Remove(segs[1] + ".checkpoint")
		}, "a segment is missing before"},
		"removed newest segment": {func(t *testing.T, segs []string) {
			os.Remove(segs[len(segs)-1])
			os.Remove(segs[len(segs)-1] + ".checkpoint")
		}, "the newest segment is missing"},
		"forged checkpoint": {func(t *testing.T, segs []string) {
			other := testSigner(t) // same name, another key
			s, _ := other.Sign(checkpoint.Checkpoint{Origin: other.Name(), Size: 1, Hash: make([]byte, 32), Time: t0})
			os.WriteFile(segs[0]+".checkpoint", s.Note(), 0o644)
		}, "signature does not verify"},
	} {
		t.Run(name, func(t *testing.T) {
			path, segs := sealedLog(t, signer, false)
			c.tamper(t, segs)
			_, err := Verify(path, signer.Verifier())
			want := c.want
			if strings.Contains(want, "%d") {
				want = "lines were removed or added"
			}
			if err == nil || !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Verify = %v, want %q", err, want)
			}
			t.Log(err)
		})
	}
}
