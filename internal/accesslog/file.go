package accesslog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/clock"
)

// FileOptions say how the log file rotates and what is kept.
type FileOptions struct {
	Path string
	// MaxSize rotates the file before a line would take it past this
	// many bytes (0: no size rotation).
	MaxSize int64
	// RotateEvery rotates a non-empty file this long after it was opened
	// (0: no time rotation).
	RotateEvery time.Duration
	// Compress gzips rotated files.
	Compress bool
	// Retention of rotated files: at most MaxBackups of them (0: no
	// limit), none older than MaxAge (0: no limit), and the rotated files
	// plus the active file at its MaxSize never more than MaxTotal bytes
	// (0: no limit).
	MaxBackups int
	MaxAge     time.Duration
	MaxTotal   int64
	// Checkpoint, if set, turns tamper evidence on: a hash chain over every
	// line and a signed checkpoint per rotated segment (chain.go).
	Checkpoint *checkpoint.Signer
}

// rotatedTime is the time in a rotated file's name: the moment it was
// rotated, UTC, sortable.
const rotatedTime = "20060102T150405.000Z"

// fileSink is the file output's writer: owned by its goroutine.
type fileSink struct {
	o      FileOptions
	clock  clock.Clock
	f      *os.File
	w      *bufio.Writer
	size   int64
	opened time.Time
	seq    int
	chain  *chain
	// rotated is called with each rotated file's final path (for the
	// tamper-evidence hook and tests).
	rotated func(path string)
}

func openFileSink(o FileOptions, c clock.Clock) (*fileSink, error) {
	s := &fileSink{o: o, clock: c}
	if o.Checkpoint != nil {
		ch, err := openChain(o.Checkpoint, o.Path)
		if err != nil {
			return nil, err
		}
		s.chain = ch
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *fileSink) open() error {
	f, err := os.OpenFile(s.o.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("accesslog: %w", err)
	}
	s.f, s.size, s.opened = f, st.Size(), s.clock.Now()
	if s.w == nil {
		s.w = bufio.NewWriterSize(f, bufferSize)
	} else {
		s.w.Reset(f)
	}
	return nil
}

// write writes lines (each ending in '\n'), rotating between lines.
func (s *fileSink) write(lines []byte) error {
	if s.chain == nil && s.fits(int64(len(lines))) {
		// No rotation can fall inside the batch: write it whole (bufio
		// writes a batch larger than its buffer without copying it).
		n, err := s.w.Write(lines)
		s.size += int64(n)
		if err != nil {
			return fmt.Errorf("accesslog: %w", err)
		}
		return nil
	}
	var first error
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n') + 1
		if i == 0 {
			i = len(lines)
		}
		line := lines[:i]
		lines = lines[i:]
		if s.due(int64(len(line))) {
			if err := s.rotate(); err != nil && first == nil {
				first = err
			}
		}
		n, err := s.w.Write(line)
		s.size += int64(n)
		if s.chain != nil && n == len(line) {
			s.chain.add(line)
		}
		if err != nil && first == nil {
			first = fmt.Errorf("accesslog: %w", err)
		}
	}
	return first
}

func (s *fileSink) due(next int64) bool {
	if s.size == 0 {
		return false
	}
	if s.o.MaxSize > 0 && s.size+next > s.o.MaxSize {
		return true
	}
	return s.o.RotateEvery > 0 && !s.clock.Now().Before(s.opened.Add(s.o.RotateEvery))
}

// fits reports whether n more bytes go into the current file with no
// rotation due: then no line of them would rotate it.
func (s *fileSink) fits(n int64) bool {
	if s.o.MaxSize > 0 && s.size+n > s.o.MaxSize {
		return false
	}
	return s.o.RotateEvery <= 0 || s.size == 0 || s.clock.Now().Before(s.opened.Add(s.o.RotateEvery))
}

// tick rotates a file whose time is up even when no line comes.
func (s *fileSink) tick() error {
	if s.due(0) {
		return s.rotate()
	}
	return nil
}

// rotate moves the file aside as BASE-TIME-SEQ.EXT, reopens, compresses
// and applies retention.
func (s *fileSink) rotate() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	now := s.clock.Now()
	s.seq++
	dst := s.rotatedName(now, s.seq)
	if err := os.Rename(s.o.Path, dst); err != nil {
		s.open()
		return fmt.Errorf("accesslog: rotate: %w", err)
	}
	if err := s.open(); err != nil {
		return err
	}
	var first error
	if s.chain != nil {
		first = s.chain.seal(dst, s.o.Path, now)
	}
	// Retention first, reserving room for the uncompressed file and its
	// compressed copy while both exist, so the total never goes over.
	reserve := int64(0)
	if s.o.Compress {
		if st, err := os.Stat(dst); err == nil {
			reserve = st.Size()
		}
	}
	if s.o.Compress {
		// The new active file is empty while the copy is written.
		if err := s.prune(now, s.size, reserve); err != nil {
			first = err
		}
		gz, err := compressFile(dst)
		if err != nil && first == nil {
			first = err
		}
		if err == nil {
			dst = gz
		}
	}
	// From now on the active file may grow to MaxSize.
	if err := s.prune(now, max(s.o.MaxSize, s.size), 0); err != nil && first == nil {
		first = err
	}
	if s.rotated != nil {
		s.rotated(dst)
	}
	return first
}

func (s *fileSink) rotatedName(t time.Time, seq int) string {
	dir, base := filepath.Split(s.o.Path)
	ext := filepath.Ext(base)
	return filepath.Join(dir, fmt.Sprintf("%s-%s-%06d%s", strings.TrimSuffix(base, ext), t.UTC().Format(rotatedTime), seq, ext))
}

// backup is a rotated file found on disk.
type backup struct {
	path string
	t    time.Time
	seq  int
	size int64
}

// backups lists the rotated files, oldest first.
func (s *fileSink) backups() ([]backup, error) {
	dir, base := filepath.Split(s.o.Path)
	if dir == "" {
		dir = "."
	}
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext) + "-"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	var out []backup
	for _, e := range ents {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		rest = strings.TrimSuffix(rest, ".gz")
		rest, ok = strings.CutSuffix(rest, ext)
		if !ok || len(rest) != len(rotatedTime)+7 || rest[len(rotatedTime)] != '-' {
			continue
		}
		t, err := time.Parse(rotatedTime, rest[:len(rotatedTime)])
		seq, err2 := strconv.Atoi(rest[len(rotatedTime)+1:])
		if err != nil || err2 != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, backup{filepath.Join(dir, name), t, seq, info.Size()})
	}
	slices.SortFunc(out, func(a, b backup) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	return out, nil
}

// prune deletes rotated files past MaxAge, beyond MaxBackups, and, oldest
// first, while they, an active file of active bytes and reserve more
// would exceed MaxTotal.
func (s *fileSink) prune(now time.Time, active, reserve int64) error {
	bs, err := s.backups()
	if err != nil {
		return err
	}
	var total int64
	for _, b := range bs {
		total += b.size
	}
	var first error
	for i, b := range bs {
		remaining := len(bs) - i
		old := s.o.MaxAge > 0 && now.Sub(b.t) > s.o.MaxAge
		many := s.o.MaxBackups > 0 && remaining > s.o.MaxBackups
		big := s.o.MaxTotal > 0 && total+active+reserve > s.o.MaxTotal
		if !old && !many && !big {
			continue
		}
		if err := os.Remove(b.path); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = fmt.Errorf("accesslog: %w", err)
		}
		os.Remove(strings.TrimSuffix(b.path, ".gz") + sidecarExt)
		total -= b.size
	}
	return first
}

// compressFile writes path.gz (through a temporary file) and removes path.
func compressFile(path string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("accesslog: compress: %w", err)
	}
	defer in.Close()
	dst := path + ".gz"
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return "", fmt.Errorf("accesslog: compress: %w", err)
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("accesslog: compress: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return dst, fmt.Errorf("accesslog: compress: %w", err)
	}
	return dst, nil
}

func (s *fileSink) flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	return nil
}

func (s *fileSink) close() error {
	err := s.flush()
	if cerr := s.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("accesslog: %w", cerr)
	}
	return err
}
