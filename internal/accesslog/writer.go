package accesslog

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// FlushInterval bounds how long a line may sit in the buffer.
const FlushInterval = 100 * time.Millisecond

// bufferSize is the write buffer; a full buffer is written at once.
const bufferSize = 64 << 10

// Logger writes entries. It is safe for concurrent use.
type Logger struct {
	mu         sync.Mutex
	w          *bufio.Writer
	file       *os.File // nil when writing to a plain io.Writer
	path       string
	size       int64
	maxSize    int64
	maxBackups int
	line       []byte
	err        error

	stop chan struct{}
	done chan struct{}
}

// New returns a Logger writing to w without rotation.
func New(w io.Writer) *Logger {
	l := &Logger{w: bufio.NewWriterSize(w, bufferSize)}
	l.start()
	return l
}

// Open returns a Logger writing to path ("-" is standard output), rotating
// the file when it would grow past maxSize bytes and keeping maxBackups old
// files as path.1 (newest) ... path.N.
func Open(path string, maxSize int64, maxBackups int) (*Logger, error) {
	if path == "-" || path == "" {
		return New(os.Stdout), nil
	}
	l := &Logger{path: path, maxSize: maxSize, maxBackups: maxBackups}
	if err := l.openFile(); err != nil {
		return nil, err
	}
	l.start()
	return l, nil
}

func (l *Logger) openFile() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("accesslog: %w", err)
	}
	l.file, l.size = f, st.Size()
	if l.w == nil {
		l.w = bufio.NewWriterSize(f, bufferSize)
	} else {
		l.w.Reset(f)
	}
	return nil
}

func (l *Logger) start() {
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.Flush()
			}
		}
	}()
}

// Log writes one entry. Write errors are kept and returned by [Logger.Err].
func (l *Logger) Log(e *Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.line = e.AppendJSON(l.line[:0])
	if l.file != nil && l.maxSize > 0 && l.size+int64(len(l.line)) > l.maxSize && l.size > 0 {
		if err := l.rotate(); err != nil {
			l.err = err
		}
	}
	n, err := l.w.Write(l.line)
	l.size += int64(n)
	if err != nil {
		l.err = fmt.Errorf("accesslog: %w", err)
	}
}

// rotate shifts path.N-1 -> path.N ... path -> path.1 and reopens path.
func (l *Logger) rotate() error {
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	if err := l.file.Close(); err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	if l.maxBackups <= 0 {
		if err := os.Remove(l.path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("accesslog: %w", err)
		}
	} else {
		os.Remove(l.backup(l.maxBackups))
		for i := l.maxBackups - 1; i >= 1; i-- {
			if err := os.Rename(l.backup(i), l.backup(i+1)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("accesslog: %w", err)
			}
		}
		if err := os.Rename(l.path, l.backup(1)); err != nil {
			return fmt.Errorf("accesslog: %w", err)
		}
	}
	return l.openFile()
}

func (l *Logger) backup(i int) string { return l.path + "." + strconv.Itoa(i) }

// Flush writes buffered lines out.
func (l *Logger) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil {
		l.err = fmt.Errorf("accesslog: %w", err)
	}
	return l.err
}

// Err returns the first write error, if any.
func (l *Logger) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close flushes and closes the file. The Logger must not be used after.
func (l *Logger) Close() error {
	close(l.stop)
	<-l.done
	err := l.Flush()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		if cerr := l.file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("accesslog: %w", cerr)
		}
	}
	return err
}
