package accesslog

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/clock"
)

var t0 = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)

func line(n int) *Entry {
	return &Entry{Time: t0, Kind: KindHTTP, Path: "/" + strings.Repeat("a", n)}
}

// dirState lists the directory: names and the total bytes.
func dirState(t *testing.T, dir string) ([]string, int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total int64
	for _, e := range ents {
		info, _ := e.Info()
		names = append(names, e.Name())
		total += info.Size()
	}
	return names, total
}

func readLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = zr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return bytes.Count(data, []byte("\n"))
}

// TestRotateBySize: the file rotates before a line would take it past
// MaxSize; rotated files are named by the (fake) time and a sequence.
func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	c := clock.NewFake(t0)
	s, err := openFileSink(FileOptions{Path: filepath.Join(dir, "access.log"), MaxSize: 1000}, c)
	if err != nil {
		t.Fatal(err)
	}
	e := line(200)
	ll := len(e.AppendJSON(nil))
	for range 10 {
		if err := s.write(e.AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Second)
	}
	s.close()
	names, _ := dirState(t, dir)
	perFile := 1000 / ll
	wantFiles := (10 + perFile - 1) / perFile
	if len(names) != wantFiles {
		t.Fatalf("files %v, want %d", names, wantFiles)
	}
	if !strings.HasPrefix(names[0], "access-20261205T0000") || !strings.HasSuffix(names[0], ".000Z-000001.log") {
		t.Fatalf("first rotated file %q", names[0])
	}
	total := 0
	for _, n := range names {
		st, _ := os.Stat(filepath.Join(dir, n))
		if st.Size() > 1000 {
			t.Fatalf("%s is %d bytes", n, st.Size())
		}
		total += readLines(t, filepath.Join(dir, n))
	}
	if total != 10 {
		t.Fatalf("%d lines kept, want 10", total)
	}
}

// TestRotateByTime: a file is rotated RotateEvery after it was opened,
// by the next line or the flush tick, and not before.
func TestRotateByTime(t *testing.T) {
	dir := t.TempDir()
	c := clock.NewFake(t0)
	s, _ := openFileSink(FileOptions{Path: filepath.Join(dir, "access.log"), RotateEvery: time.Hour}, c)
	s.write(line(10).AppendJSON(nil))
	c.Advance(59 * time.Minute)
	s.tick()
	if names, _ := dirState(t, dir); len(names) != 1 {
		t.Fatalf("rotated early: %v", names)
	}
	c.Advance(time.Minute)
	s.tick() // no line needed
	s.write(line(10).AppendJSON(nil))
	c.Advance(2 * time.Hour)
	s.write(line(10).AppendJSON(nil))
	s.close()
	names, _ := dirState(t, dir)
	want := []string{"access-20261205T010000.000Z-000001.log", "access-20261205T030000.000Z-000002.log", "access.log"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	// An empty file is not rotated, however old.
	s, _ = openFileSink(FileOptions{Path: filepath.Join(t.TempDir(), "a.log"), RotateEvery: time.Hour}, c)
	c.Advance(5 * time.Hour)
	s.tick()
	if names, _ := dirState(t, filepath.Dir(s.o.Path)); len(names) != 1 {
		t.Fatalf("empty file rotated: %v", names)
	}
}

// TestRetention: rotated files are gzipped; at most MaxBackups are kept,
// none older than MaxAge, and the directory never holds more than
// MaxTotal bytes, checked after every line.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	c := clock.NewFake(t0)
	o := FileOptions{Path: filepath.Join(dir, "access.log"), MaxSize: 10000, Compress: true, MaxBackups: 6, MaxAge: 10 * time.Minute, MaxTotal: 24000}
	s, err := openFileSink(o, c)
	if err != nil {
		t.Fatal(err)
	}
	var rotated []string
	s.rotated = func(p string) { rotated = append(rotated, p) }
	e := &Entry{Kind: KindHTTP}
	written := 0
	maxSeen := int64(0)
	for i := range 3000 {
		e.Time = c.Now()
		e.Path = "/v1/invoices/" + strings.Repeat("x", i%50)
		if err := s.write(e.AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
		s.flush()
		written++
		names, total := dirState(t, dir)
		maxSeen = max(maxSeen, total)
		if total > o.MaxTotal {
			t.Fatalf("after line %d: %d bytes in %v, over %d", i, total, names, o.MaxTotal)
		}
		if len(names) > o.MaxBackups+1 {
			t.Fatalf("after line %d: %d files", i, len(names))
		}
		c.Advance(100 * time.Millisecond)
	}
	s.close()
	if len(rotated) < 10 {
		t.Fatalf("only %d rotations", len(rotated))
	}
	names, total := dirState(t, dir)
	for _, n := range names {
		if n != "access.log" && !strings.HasSuffix(n, ".log.gz") {
			t.Fatalf("uncompressed rotated file %s", n)
		}
	}
	t.Logf("%d rotations, %d files kept (%d bytes, at most %d seen)", len(rotated), len(names), total, maxSeen)

	// Age: an hour later, the next rotation removes every older file.
	c.Advance(time.Hour)
	s, _ = openFileSink(o, c)
	s.write(e.AppendJSON(nil))
	s.rotate()
	s.close()
	names, _ = dirState(t, dir)
	if len(names) != 2 {
		t.Fatalf("after an hour: %v", names)
	}
	// Count: MaxBackups with no total or age limit.
	dir2 := t.TempDir()
	s, _ = openFileSink(FileOptions{Path: filepath.Join(dir2, "a.log"), MaxBackups: 2}, c)
	for range 5 {
		s.write(e.AppendJSON(nil))
		s.rotate()
		c.Advance(time.Second)
	}
	s.close()
	if names, _ := dirState(t, dir2); len(names) != 3 || names[0] != "a-20261205T010503.000Z-000004.log" {
		t.Fatalf("count retention: %v", names)
	}
	// MaxBackups 0 (max_backups: 0 in gateway.yaml): every rotated file
	// is kept.
	dir3 := t.TempDir()
	s, _ = openFileSink(FileOptions{Path: filepath.Join(dir3, "a.log")}, c)
	for range 12 {
		s.write(e.AppendJSON(nil))
		s.rotate()
		c.Advance(time.Second)
	}
	s.close()
	if names, _ := dirState(t, dir3); len(names) != 13 {
		t.Fatalf("MaxBackups 0 kept %d files, want 12 rotated and the active one: %v", len(names), names)
	}
}

func TestOpenError(t *testing.T) {
	_, err := Open(Options{File: &FileOptions{Path: filepath.Join(t.TempDir(), "no", "dir.log")}})
	if err == nil || !strings.HasPrefix(err.Error(), "accesslog: open ") || !strings.HasSuffix(err.Error(), "no such file or directory") {
		t.Fatalf("error = %v", err)
	}
}
