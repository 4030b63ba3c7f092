package h1

import (
	"bufio"
	"errors"
	"io"
	"sync"
)

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// CopyBuffer lends a 32 KiB buffer for copying bodies; give it back with
// [PutCopyBuffer].
func CopyBuffer() *[]byte { return copyBufPool.Get().(*[]byte) }

// PutCopyBuffer returns a buffer from [CopyBuffer].
func PutCopyBuffer(b *[]byte) { copyBufPool.Put(b) }

// CopyStream copies n bytes (n < 0: until EOF) from src to dst, flushing
// dst whenever src has nothing buffered, so a slow stream is not held
// back. With chunk set, each piece is written as an HTTP chunk and the
// last chunk is written at EOF.
func CopyStream(dst *bufio.Writer, src *bufio.Reader, n int64, chunk bool) (int64, error) {
	if n >= 0 && !chunk && int64(src.Buffered()) >= n {
		// The whole body is already buffered (a small answer read with
		// its head): one copy, from src's buffer, and no copy buffer.
		p, _ := src.Peek(int(n))
		k, err := dst.Write(p)
		src.Discard(k)
		return int64(k), err
	}
	bp := CopyBuffer()
	defer PutCopyBuffer(bp)
	buf := *bp
	var total int64
	for n < 0 || total < n {
		want := len(buf)
		if n >= 0 && n-total < int64(want) {
			want = int(n - total)
		}
		k, err := src.Read(buf[:want])
		if k > 0 {
			total += int64(k)
			if chunk {
				writeChunkSize(dst, int64(k))
				dst.WriteString("\r\n")
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return total, werr
			}
			if chunk {
				dst.WriteString("\r\n")
			}
			if src.Buffered() == 0 && (n < 0 || total < n) {
				if werr := dst.Flush(); werr != nil {
					return total, werr
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && n < 0 {
				break
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return total, err
		}
	}
	if chunk {
		if _, err := dst.WriteString("0\r\n\r\n"); err != nil {
			return total, err
		}
	}
	return total, nil
}

// writeChunkSize writes n in hex a byte at a time: a slice handed to
// dst.Write escapes, and a stack buffer for it would be allocated on
// every call.
func writeChunkSize(dst *bufio.Writer, n int64) {
	shift := 60
	for shift > 0 && n>>shift == 0 {
		shift -= 4
	}
	for ; shift >= 0; shift -= 4 {
		dst.WriteByte("0123456789abcdef"[n>>shift&0xf])
	}
}

var discardPool = sync.Pool{New: func() any { return bufio.NewWriterSize(io.Discard, 4<<10) }}

// DiscardBody reads and drops the body of a response to method, as framed
// by its head, and returns its length. A body delimited by the end of the
// connection is read to EOF.
func DiscardBody(src *bufio.Reader, r *Response, method string) (int64, error) {
	switch r.Framing(method) {
	case FramingNone:
		return 0, nil
	case FramingLength:
		n, err := src.Discard(int(r.ContentLength))
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return int64(n), err
	case FramingChunked:
		w := discardPool.Get().(*bufio.Writer)
		defer discardPool.Put(w)
		return CopyChunked(w, src, w.Flush, false)
	}
	return io.Copy(io.Discard, src)
}
