package syslog

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// AppendFrame appends msg as one RFC 6587 octet-counted frame:
// MSG-LEN SP SYSLOG-MSG.
func AppendFrame(b, msg []byte) []byte {
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	return append(b, msg...)
}

// ReadFrame reads one octet-counted frame from r and returns its message
// (a new slice). A frame longer than max bytes is an error. io.EOF means
// r ended cleanly between frames.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	n := 0
	for digits := 0; ; digits++ {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if c == ' ' && digits > 0 {
			break
		}
		if c < '0' || c > '9' || (digits == 0 && c == '0') || digits > 9 {
			return nil, fmt.Errorf("%w: bad MSG-LEN byte 0x%02x", ErrInvalid, c)
		}
		n = n*10 + int(c-'0')
	}
	if n > max {
		return nil, fmt.Errorf("%w: frame of %d bytes is over %d", ErrInvalid, n, max)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}

// frameEnd returns the length of the complete frame at the start of b, or
// 0 if b does not hold a whole one yet, and the frame's total length if
// known (-1 if b is not a frame at all).
func frameEnd(b []byte) (n, need int) {
	size := 0
	for i, c := range b {
		switch {
		case c == ' ' && i > 0:
			total := i + 1 + size
			if total <= len(b) {
				return total, total
			}
			return 0, total
		case c >= '0' && c <= '9' && i < 10 && !(i == 0 && c == '0'):
			size = size*10 + int(c-'0')
		default:
			return 0, -1
		}
	}
	return 0, 0
}
