//go:build unix

package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// setUmask sets the process umask for the test and restores it after.
// Tests using it must not run in parallel.
func setUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestWritePermIsExact(t *testing.T) {
	for _, tc := range []struct {
		umask int
		perm  os.FileMode
	}{
		{0o022, 0o600},
		{0o022, 0o644},
		{0o077, 0o644}, // the umask narrows the temp file, the final chmod restores perm
		{0o000, 0o600},
	} {
		setUmask(t, tc.umask)
		path := filepath.Join(t.TempDir(), "key.pem")
		if err := Write(path, []byte("secret"), tc.perm); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tc.perm {
			t.Errorf("umask %03o perm %03o: file mode %03o", tc.umask, tc.perm, got)
		}
	}
}

func TestWriteReplacesExistingFileAndMode(t *testing.T) {
	setUmask(t, 0o022)
	dir := t.TempDir()
	path := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(path, []byte("old contents, longer than the new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "new" {
		t.Errorf("contents = %q, want %q", got, "new")
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %03o, want 600", fi.Mode().Perm())
	}
	assertNoTemp(t, dir)
}

// TestWriteIsAtomicForReaders has readers race a writer that alternates
// between two contents; every read must see one of them whole.
func TestWriteIsAtomicForReaders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.pem")
	a := bytes.Repeat([]byte("a"), 64<<10)
	b := bytes.Repeat([]byte("b"), 32<<10)
	if err := Write(path, a, 0o644); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad int
	var mu sync.Mutex
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := os.ReadFile(path)
				if err != nil || (!bytes.Equal(got, a) && !bytes.Equal(got, b)) {
					mu.Lock()
					bad++
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 200 {
		data := a
		if i%2 == 0 {
			data = b
		}
		if err := Write(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if bad != 0 {
		t.Errorf("%d reads saw a missing or partial file", bad)
	}
	assertNoTemp(t, dir)
}

func TestWriteMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing", "key.pem")
	err := Write(path, []byte("x"), 0o600)
	want := "atomicfile: create temporary file for " + path + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false")
	}
	assertNoTemp(t, dir)
}

// TestWriteRenameFailsLeavesNoTemp makes the last step fail (the target is
// a non-empty directory) and checks the temporary file is gone.
func TestWriteRenameFailsLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(path, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Write(path, []byte("x"), 0o600)
	want := "atomicfile: replace " + path + ": file exists"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	assertNoTemp(t, dir)
}

func TestWriteDirectoryPath(t *testing.T) {
	err := Write("some/dir/", []byte("x"), 0o600)
	want := `atomicfile: "some/dir/" names a directory`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestWriteRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := Write("rel.txt", []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("rel.txt")
	if err != nil || string(got) != "hello" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	assertNoTemp(t, ".")
}
