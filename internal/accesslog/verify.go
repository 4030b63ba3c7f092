package accesslog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/certgate/certgate/internal/checkpoint"
)

// ErrTampered is wrapped by every finding of [Verify].
var ErrTampered = errors.New("accesslog: tampering")

// VerifyReport is what [Verify] checked.
type VerifyReport struct {
	Segments  int   // rotated segments verified
	FirstLine int64 // line number (from 1) the oldest kept segment starts at
	Lines     int64 // lines the newest checkpoint covers
}

// Verify checks the rotated segments of the access log file path (the
// active file is not sealed yet) against their signed checkpoints: each
// segment's lines recompute to its end checkpoint from its start, each
// starts where the one before ended, and the newest ends at
// PATH.checkpoint. Older segments removed by retention are fine: the oldest
// kept one starts where its checkpoint says.
func Verify(path string, v *checkpoint.Verifier) (VerifyReport, error) {
	var r VerifyReport
	headNote, err := os.ReadFile(path + sidecarExt)
	if err != nil {
		return r, fmt.Errorf("accesslog: verify: %w", err)
	}
	head, err := v.Verify(headNote)
	if err != nil {
		return r, fmt.Errorf("accesslog: verify: %s: %w", path+sidecarExt, err)
	}
	bs, err := (&fileSink{o: FileOptions{Path: path}}).backups()
	if err != nil {
		return r, err
	}
	var errs []error
	var prev *checkpoint.Checkpoint
	for i, b := range bs {
		name := filepath.Base(b.path)
		side := strings.TrimSuffix(b.path, ".gz") + sidecarExt
		data, err := os.ReadFile(side)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s has no checkpoint: %v", ErrTampered, name, err))
			prev = nil
			continue
		}
		notes, err := checkpoint.Notes(data)
		if err == nil && (len(notes) < 1 || len(notes) > 2) {
			err = fmt.Errorf("%d notes, want 1 or 2", len(notes))
		}
		var start, end checkpoint.Checkpoint
		start.Hash = make([]byte, sha256.Size)
		for j, n := range notes {
			s, verr := v.Verify(n)
			if verr != nil {
				err = verr
				break
			}
			if j == len(notes)-1 {
				end = s.Checkpoint
			} else {
				start = s.Checkpoint
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrTampered, filepath.Base(side), err))
			prev = nil
			continue
		}
		if i == 0 {
			r.FirstLine = start.Size + 1
		} else if prev != nil && (prev.Size != start.Size || !bytes.Equal(prev.Hash, start.Hash)) {
			errs = append(errs, fmt.Errorf("%w: a segment is missing before %s: it starts after line %d, the one before ends at line %d",
				ErrTampered, name, start.Size, prev.Size))
		}
		n, h, err := hashSegment(b.path, start)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrTampered, name, err))
		case n != end.Size-start.Size:
			errs = append(errs, fmt.Errorf("%w: %s has %d lines, its checkpoint %d: lines were removed or added", ErrTampered, name, n, end.Size-start.Size))
		case !bytes.Equal(h, end.Hash):
			errs = append(errs, fmt.Errorf("%w: %s does not hash to its checkpoint: a line was edited", ErrTampered, name))
		}
		r.Segments++
		prev = &end
	}
	switch {
	case prev == nil && len(bs) == 0 && head.Checkpoint.Size > 0:
		errs = append(errs, fmt.Errorf("%w: no segment left, the newest checkpoint covers %d lines", ErrTampered, head.Checkpoint.Size))
	case prev != nil && (prev.Size != head.Checkpoint.Size || !bytes.Equal(prev.Hash, head.Checkpoint.Hash)):
		errs = append(errs, fmt.Errorf("%w: the newest segment is missing: the segments end at line %d, the newest checkpoint at line %d",
			ErrTampered, prev.Size, head.Checkpoint.Size))
	}
	r.Lines = head.Checkpoint.Size
	return r, errors.Join(errs...)
}

// hashSegment recomputes the chain over a segment from start.
func hashSegment(path string, start checkpoint.Checkpoint) (int64, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return 0, nil, err
		}
		r = zr
	}
	// Streamed line by line: a segment may be hundreds of megabytes.
	br := bufio.NewReaderSize(r, 64<<10)
	c := &chain{d: sha256.New()}
	copy(c.head[:], start.Hash)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(line) > 0 {
			c.add(line)
			line = line[:0]
		}
		if err == io.EOF {
			return c.size, c.head[:], nil
		}
		if err != nil {
			return 0, nil, err
		}
	}
}

// VerifyDir is Verify on the access log in dir: the one file whose
// PATH.checkpoint is there (name it with file when there are several).
func VerifyDir(dir, file string, v *checkpoint.Verifier) (string, VerifyReport, error) {
	if file != "" {
		p := filepath.Join(dir, file)
		r, err := Verify(p, v)
		return p, r, err
	}
	heads, err := filepath.Glob(filepath.Join(dir, "*"+sidecarExt))
	if err != nil {
		return "", VerifyReport{}, fmt.Errorf("accesslog: verify: %w", err)
	}
	var found []string
	for _, h := range heads {
		if p := strings.TrimSuffix(h, sidecarExt); !isSegmentName(filepath.Base(p)) {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return "", VerifyReport{}, fmt.Errorf("accesslog: verify: %s holds %d access logs with checkpoints (%s); name one with --file", dir, len(found), strings.Join(found, ", "))
	}
	r, err := Verify(found[0], v)
	return found[0], r, err
}

// isSegmentName reports whether name is a rotated segment's (BASE-TIME-SEQ.EXT).
func isSegmentName(name string) bool {
	ext := filepath.Ext(name)
	rest := strings.TrimSuffix(name, ext)
	i := strings.LastIndexByte(rest, '-')
	if i < 0 || len(rest)-i-1 != 6 {
		return false
	}
	j := strings.LastIndexByte(rest[:i], '-')
	return j >= 0 && len(rest[j+1:i]) == len(rotatedTime)
}
