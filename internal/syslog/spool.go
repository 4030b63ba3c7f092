package syslog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/certgate/certgate/internal/atomicfile"
)

// spool is the on-disk FIFO of frames: segment files NNNNNNNNNNNNNNNNNNNN.spool
// under dir, written at the tail, sent from the head. Its size (every
// segment's bytes, the head's sent part included, so the limit is a limit
// on disk use) never exceeds max. Only the sender goroutine uses it.
type spool struct {
	dir     string
	max     int64
	segSize int64
	segs    []segment // oldest first
	total   int64
	off     int64    // sent bytes of segs[0]
	head    *os.File // segs[0], open for reading
	tail    *os.File // segs[len-1], open for appending
	buf     []byte
}

type segment struct {
	id   uint64
	size int64
}

const (
	spoolExt   = ".spool"
	headerFile = "head"
)

// openSpool reads what an earlier run left in dir.
func openSpool(dir string, limit int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("syslog: spool: %w", err)
	}
	s := &spool{dir: dir, max: limit, segSize: min(max(limit/16, 64<<10), 8<<20)}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("syslog: spool: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, spoolExt) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, spoolExt), 10, 64)
		if err != nil {
			continue
		}
		st, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("syslog: spool: %w", err)
		}
		s.segs = append(s.segs, segment{id, st.Size()})
		s.total += st.Size()
	}
	slices.SortFunc(s.segs, func(a, b segment) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	if data, err := os.ReadFile(filepath.Join(dir, headerFile)); err == nil && len(data) == 16 && len(s.segs) > 0 {
		id, off := binary.BigEndian.Uint64(data), int64(binary.BigEndian.Uint64(data[8:]))
		if id == s.segs[0].id && off >= 0 && off <= s.segs[0].size {
			s.off = off
		}
	}
	return s, nil
}

func (s *spool) path(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", id, spoolExt))
}

// empty reports whether nothing is left to send.
func (s *spool) empty() bool {
	return len(s.segs) == 0 || (len(s.segs) == 1 && s.off == s.segs[0].size)
}

// room reports whether n more bytes fit.
func (s *spool) room(n int) bool { return s.total+int64(n) <= s.max }

// append writes frames (whole frames, in order) at the tail.
func (s *spool) append(frames []byte) error {
	if len(s.segs) == 0 || s.segs[len(s.segs)-1].size >= s.segSize {
		var id uint64 = 1
		if len(s.segs) > 0 {
			id = s.segs[len(s.segs)-1].id + 1
		}
		if s.tail != nil {
			s.tail.Close()
			s.tail = nil
		}
		s.segs = append(s.segs, segment{id: id})
	}
	last := &s.segs[len(s.segs)-1]
	if s.tail == nil {
		f, err := os.OpenFile(s.path(last.id), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("syslog: spool: %w", err)
		}
		s.tail = f
	}
	n, err := s.tail.Write(frames)
	last.size += int64(n)
	s.total += int64(n)
	if err != nil {
		return fmt.Errorf("syslog: spool: %w", err)
	}
	return nil
}

// peek returns up to about limit bytes of whole frames from the head (at
// least one frame, whatever its size), without consuming them.
func (s *spool) peek(limit int) ([]byte, error) {
	for len(s.segs) > 0 {
		seg := s.segs[0]
		if s.off >= seg.size {
			if len(s.segs) == 1 {
				return nil, nil
			}
			if err := s.dropHead(); err != nil {
				return nil, err
			}
			continue
		}
		if s.head == nil {
			f, err := os.Open(s.path(seg.id))
			if err != nil {
				return nil, fmt.Errorf("syslog: spool: %w", err)
			}
			s.head = f
		}
		want := int(min(int64(limit), seg.size-s.off))
	read:
		for {
			if cap(s.buf) < want {
				s.buf = make([]byte, want)
			}
			b := s.buf[:want]
			if _, err := s.head.ReadAt(b, s.off); err != nil && err != io.EOF {
				return nil, fmt.Errorf("syslog: spool: %w", err)
			}
			end := 0
			for end < len(b) {
				n, need := frameEnd(b[end:])
				if n == 0 {
					if need < 0 && end == 0 {
						// Not a frame: the segment is damaged. Skip
						// the rest of it rather than send garbage.
						at := s.off + int64(end)
						s.off = seg.size
						return nil, fmt.Errorf("syslog: spool: %s is damaged at byte %d: rest skipped", s.path(seg.id), at)
					}
					if end == 0 && need > len(b) && int64(need) <= seg.size-s.off {
						want = need // one frame larger than limit
						continue read
					}
					break
				}
				end += n
			}
			if end == 0 {
				s.off = seg.size
				return nil, fmt.Errorf("syslog: spool: %s ends inside a frame: rest skipped", s.path(seg.id))
			}
			return b[:end], nil
		}
	}
	return nil, nil
}

// consume marks n bytes from the head as sent.
func (s *spool) consume(n int) error {
	s.off += int64(n)
	if len(s.segs) > 0 && s.off >= s.segs[0].size {
		if len(s.segs) == 1 {
			// The tail fully sent: start over, nothing on disk.
			return s.reset()
		}
		return s.dropHead()
	}
	return nil
}

func (s *spool) dropHead() error {
	if s.head != nil {
		s.head.Close()
		s.head = nil
	}
	seg := s.segs[0]
	s.segs = s.segs[1:]
	s.total -= seg.size
	s.off = 0
	if err := os.Remove(s.path(seg.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("syslog: spool: %w", err)
	}
	return nil
}

func (s *spool) reset() error {
	if s.tail != nil {
		s.tail.Close()
		s.tail = nil
	}
	for len(s.segs) > 0 {
		if err := s.dropHead(); err != nil {
			return err
		}
	}
	os.Remove(filepath.Join(s.dir, headerFile))
	return nil
}

// close records how far the head was sent, so the next run does not send
// it twice.
func (s *spool) close() error {
	var err error
	if len(s.segs) > 0 && s.off > 0 {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:], s.segs[0].id)
		binary.BigEndian.PutUint64(b[8:], uint64(s.off))
		err = atomicfile.Write(filepath.Join(s.dir, headerFile), b[:], 0o600)
	} else {
		os.Remove(filepath.Join(s.dir, headerFile))
	}
	if s.head != nil {
		s.head.Close()
	}
	if s.tail != nil {
		s.tail.Close()
	}
	return err
}
