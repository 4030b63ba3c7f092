// Package secretin reads a secret that a person hands a command: from a
// file, from an environment variable, or typed at the terminal without
// echo. It is the one place that prompts; it never prints, logs or keeps
// the secret. It is not for the CA passphrase of a server that runs
// unattended (that comes from a file or the environment only).
package secretin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// Source says where a secret may come from, in order: File, then Env,
// then a prompt on the controlling terminal.
type Source struct {
	// What names the secret in prompts and errors, e.g. "PKCS#12 password".
	What string
	// FileFlag names the flag File came from, for errors.
	FileFlag string
	File     string
	// Env is the environment variable to read if File is empty.
	Env string
	// Confirm asks twice at the terminal (a secret being set, not
	// checked).
	Confirm bool
	// TTY is the terminal to prompt on; nil opens /dev/tty.
	TTY *os.File
}

// ErrNoSecret means no source gave a secret.
var ErrNoSecret = errors.New("no secret")

// maxFile bounds a secret file: a secret is a line, not a document.
const maxFile = 4096

// Read returns the secret. A trailing newline in a file is dropped; an
// empty secret is refused wherever it comes from.
func Read(s Source) (string, error) {
	if s.File != "" {
		f, err := os.Open(s.File)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.FileFlag, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.FileFlag, err)
		}
		if len(b) > maxFile {
			return "", fmt.Errorf("%s: %s is larger than %d bytes; a %s is one line", s.FileFlag, s.File, maxFile, s.What)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return "", fmt.Errorf("%s: %s is empty; an empty %s is refused", s.FileFlag, s.File, s.What)
		}
		return string(b), nil
	}
	if s.Env != "" {
		if v := os.Getenv(s.Env); v != "" {
			return v, nil
		}
	}
	tty := s.TTY
	if tty == nil {
		f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return "", s.none()
		}
		defer f.Close()
		tty = f
	}
	if !term.IsTerminal(int(tty.Fd())) {
		return "", s.none()
	}
	p, err := prompt(tty, "Enter "+s.What+": ")
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", fmt.Errorf("an empty %s is refused", s.What)
	}
	if s.Confirm {
		again, err := prompt(tty, "Repeat "+s.What+": ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", fmt.Errorf("the two %ss differ", s.What)
		}
	}
	return p, nil
}

func prompt(tty *os.File, msg string) (string, error) {
	fmt.Fprint(tty, msg)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("reading from the terminal: %w", err)
	}
	return string(b), nil
}

func (s Source) none() error {
	where := s.FileFlag
	if s.Env != "" {
		where += " or $" + s.Env
	}
	return noSecret(fmt.Sprintf("no %s: use %s, or run on a terminal to be asked", s.What, where))
}

// noSecret is ErrNoSecret with a message that says where to put it.
type noSecret string

func (e noSecret) Error() string        { return string(e) }
func (e noSecret) Is(target error) bool { return target == ErrNoSecret }
