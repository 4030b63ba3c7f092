package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ErrChunked is wrapped by every malformed chunked body error.
var ErrChunked = errors.New("invalid chunked encoding")

// maxTrailer bounds the trailer section of a chunked body; trailers are
// read and dropped.
const maxTrailer = 8 << 10

// CopyChunked decodes a chunked body from src strictly and writes it to dst
// re-encoded, chunk by chunk, calling flush whenever src has nothing more
// buffered so a stream (server-sent events) goes out as it comes in. It
// returns the number of body bytes copied. Extensions and trailers are
// dropped. Without encode the body is written without chunk framing (for
// an HTTP/1.0 client, which reads to the end of the connection).
func CopyChunked(dst *bufio.Writer, src *bufio.Reader, flush func() error, encode bool) (int64, error) {
	var total int64
	for {
		line, err := src.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return total, fmt.Errorf("%w: chunk size line too long", ErrChunked)
			}
			return total, err
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return total, err
		}
		if size == 0 {
			if err := skipTrailer(src); err != nil {
				return total, err
			}
			if encode {
				if _, err := dst.WriteString("0\r\n\r\n"); err != nil {
					return total, err
				}
			}
			return total, flush()
		}
		if encode {
			writeChunkSize(dst, size)
			dst.WriteString("\r\n")
		}
		n, err := io.CopyN(dst, src, size)
		total += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return total, err
		}
		var crlf [2]byte
		if _, err := io.ReadFull(src, crlf[:]); err != nil {
			return total, err
		}
		if crlf != [2]byte{'\r', '\n'} {
			return total, fmt.Errorf("%w: chunk data not followed by CRLF", ErrChunked)
		}
		if encode {
			if _, err := dst.WriteString("\r\n"); err != nil {
				return total, err
			}
		}
		if src.Buffered() == 0 {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
}

// parseChunkSize parses "1a2b[;ext]\r\n": 1 to 15 hex digits, an optional
// extension, CRLF.
func parseChunkSize(line []byte) (int64, error) {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, fmt.Errorf("%w: chunk size line not ended by CRLF", ErrChunked)
	}
	line = line[:len(line)-2]
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, fmt.Errorf("%w: chunk size too large", ErrChunked)
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, fmt.Errorf("%w: invalid chunk size %q", ErrChunked, truncate(line, 32))
	}
	rest := TrimOWS(line[i:])
	if len(rest) > 0 && rest[0] != ';' {
		return 0, fmt.Errorf("%w: invalid chunk size %q", ErrChunked, truncate(line, 32))
	}
	for _, c := range rest {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, fmt.Errorf("%w: control character in chunk extension", ErrChunked)
		}
	}
	return n, nil
}

func skipTrailer(src *bufio.Reader) error {
	read := 0
	for {
		line, err := src.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("%w: trailer line too long", ErrChunked)
			}
			return err
		}
		read += len(line)
		if read > maxTrailer {
			return fmt.Errorf("%w: trailer too large", ErrChunked)
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return fmt.Errorf("%w: trailer line not ended by CRLF", ErrChunked)
		}
		if len(line) == 2 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return fmt.Errorf("%w: obsolete line folding in trailer", ErrChunked)
		}
	}
}
