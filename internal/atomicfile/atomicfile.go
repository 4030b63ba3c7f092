package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// createAttempts bounds the retries on a temporary name collision; with 64
// random bits a single collision is already practically impossible.
const createAttempts = 5

// Write atomically replaces path with data and sets its mode to exactly perm
// (the process umask can make the file narrower while it is written, never
// wider; the final chmod makes it exact). On any error the temporary file is
// removed and path is left as it was.
func Write(path string, data []byte, perm os.FileMode) (err error) {
	perm &= fs.ModePerm
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("atomicfile: %q names a directory", path)
	}

	f, tmp, err := createTemp(dir, base, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()

	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	// Chmod before the rename: the umask may have narrowed perm at creation.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			err = le.Err
		}
		return fmt.Errorf("atomicfile: replace %s: %w", path, err)
	}
	// The new contents are in place; a failed directory sync only means the
	// rename might not survive a crash, which the caller must still learn.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: %s written but not synced: %w", path, err)
	}
	return nil
}

// createTemp creates a new file next to the target, with perm from the start.
func createTemp(dir, base string, perm os.FileMode) (*os.File, string, error) {
	var b [8]byte
	for range createAttempts {
		rand.Read(b[:])
		name := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			// Name the target, not the random temporary name, so the
			// message is stable and says what the caller asked for.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, "", fmt.Errorf("atomicfile: create temporary file for %s: %w", filepath.Join(dir, base), err)
		}
		return f, name, nil
	}
	return nil, "", fmt.Errorf("atomicfile: no free temporary name in %s", dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
