package enroll_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/credsdir"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/testenv"
)

const (
	billing = "spiffe://example.org/svc/billing"
	reports = "spiffe://example.org/svc/reports"
)

type entry struct {
	mode fs.FileMode
	data string // bytes, or a link's target
}

// tree reads every entry under dir, recursively, by relative path.
func tree(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var data []byte
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			s, err := os.Readlink(p)
			if err != nil {
				return err
			}
			data = []byte(s)
		case fi.Mode().IsRegular():
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		out[rel] = entry{fi.Mode(), string(data)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, what string, got, want map[string]entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: entries %v, want %v", what, slices.Sorted(keys(got)), slices.Sorted(keys(want)))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s is %v, want %v", what, k, got[k].mode, v.mode)
		}
	}
}

func keys(m map[string]entry) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// unspent redeems tok into a new directory: it fails if a refused
// enrollment had spent it.
func unspent(t *testing.T, tok string) {
	t.Helper()
	if _, err := enroll.Enroll(context.Background(), enroll.Options{Token: tok, OutDir: filepath.Join(t.TempDir(), "fresh")}); err != nil {
		t.Fatalf("the refused enrollment spent the token: %v", err)
	}
}

func enrollInto(t *testing.T, e *testenv.Env, id, dir string) enroll.Result {
	t.Helper()
	res, err := enroll.Enroll(context.Background(), enroll.Options{Token: e.Token(t, id, time.Hour), OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A directory of another identity, or of files that are not a certgate
// identity, is refused before the token is redeemed: the message names
// both identities and --force, every file keeps its bytes and mode, and
// the token still enrolls elsewhere.
func TestEnrollRefusesAnotherDirectory(t *testing.T) {
	e := testenv.Start(t)
	billingDir := filepath.Join(t.TempDir(), "billing")
	enrollInto(t, e, billing, billingDir)
	keyPEM, err := os.ReadFile(filepath.Join(billingDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(elsewhere, []byte("a certificate kept elsewhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		setup func(dir string)
		found string
	}{
		{"another identity", func(dir string) { copyDir(t, billingDir, dir) }, "the credentials of " + billing},
		{"a foreign pair", func(dir string) {
			writeFile(t, filepath.Join(dir, "cert.pem"), "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", 0o644)
			writeFile(t, filepath.Join(dir, "key.pem"), string(keyPEM), 0o600)
		}, "files that are not a certgate identity (cert.pem: pemutil: malformed PEM block)"},
		{"a key alone", func(dir string) { writeFile(t, filepath.Join(dir, "key.pem"), string(keyPEM), 0o600) },
			"files that are not a certgate identity (key.pem without a certificate: a key alone does not say whose it is)"},
		{"a key that does not match", func(dir string) {
			copyDir(t, billingDir, dir)
			other := t.TempDir()
			enrollInto(t, e, billing, other)
			b, _ := os.ReadFile(filepath.Join(other, "key.pem"))
			writeFile(t, filepath.Join(dir, "key.pem"), string(b), 0o600)
		}, "files that are not a certgate identity (key.pem does not hold the key of cert.pem)"},
		{"a symlinked cert.pem", func(dir string) {
			copyDir(t, billingDir, dir)
			os.Remove(filepath.Join(dir, "cert.pem"))
			if err := os.Symlink(elsewhere, filepath.Join(dir, "cert.pem")); err != nil {
				t.Fatal(err)
			}
		}, "files that are not a certgate identity (cert.pem is a symbolic link to " + elsewhere + ", and certgate would replace the link, not its target)"},
		{"a device key of another identity", func(dir string) {
			copyDir(t, billingDir, dir)
			os.Remove(filepath.Join(dir, "key.pem"))
			writeFile(t, filepath.Join(dir, "key.uri"), "pkcs11:token=t;object=certgate%20spiffe%3A%2F%2Fexample.org%2Fsvc%2Fbilling;type=private?module-path=/nonexistent.so&pin-source=file:/nonexistent\n", 0o600)
		}, "the credentials of " + billing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.setup(dir)
			before := tree(t, dir)
			tok := e.Token(t, reports, time.Hour)
			_, err := enroll.Enroll(context.Background(), enroll.Options{Token: tok, OutDir: dir})
			want := "enroll: " + dir + " holds " + tc.found + "; refusing to replace them with " + reports +
				" (use another directory, or pass --force to move them to a backup directory first)"
			if err == nil || err.Error() != want {
				t.Fatalf("error:\n got %v\nwant %s", err, want)
			}
			sameTree(t, "after the refusal", tree(t, dir), before)
			unspent(t, tok)
		})
	}
	if b, err := os.ReadFile(elsewhere); err != nil || string(b) != "a certificate kept elsewhere\n" {
		t.Fatalf("the symlink's target: %q %v", b, err)
	}
}

// --force moves what the directory held into a 0700 backup directory
// (bytes and modes kept, a link as the link, the link's target
// untouched), says so, and enrolls.
func TestEnrollForceKeepsBackup(t *testing.T) {
	e := testenv.Start(t)
	dir := filepath.Join(t.TempDir(), "out")
	enrollInto(t, e, billing, dir)
	elsewhere := filepath.Join(t.TempDir(), "bundle.pem")
	writeFile(t, elsewhere, "kept elsewhere\n", 0o644)
	os.Remove(filepath.Join(dir, "bundle.pem"))
	if err := os.Symlink(elsewhere, filepath.Join(dir, "bundle.pem")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "README"), "not certgate's\n", 0o644)
	before := tree(t, dir)
	// The server's clock is the real one: the certificate must be valid at
	// the enrollment's "now".
	now := time.Now().UTC().Truncate(time.Second)

	res, err := enroll.Enroll(context.Background(), enroll.Options{Token: e.Token(t, reports, time.Hour), OutDir: dir, Force: true,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup-"+now.Format("20060102T150405Z"))
	wantHeld := "files that are not a certgate identity (bundle.pem is a symbolic link to " + elsewhere + ", and certgate would replace the link, not its target)"
	if res.Backup != backup || res.Replaced != wantHeld {
		t.Fatalf("backup %q, replaced %q\nwant %q, %q", res.Backup, res.Replaced, backup, wantHeld)
	}
	fi, err := os.Stat(backup)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("backup directory %v %v", fi, err)
	}
	moved := tree(t, backup)
	delete(before, "README")
	delete(moved, ".")
	delete(before, ".")
	sameTree(t, "the backup", moved, before)
	if moved["key.pem"].mode.Perm() != 0o600 {
		t.Fatalf("key.pem in the backup has mode %v", moved["key.pem"].mode)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "README")); string(b) != "not certgate's\n" {
		t.Fatalf("README: %q", b)
	}
	if b, _ := os.ReadFile(elsewhere); string(b) != "kept elsewhere\n" {
		t.Fatalf("the link's target: %q", b)
	}
	if id := testenv.ReadLeaf(t, dir).URIs[0].String(); id != reports {
		t.Fatalf("enrolled %s", id)
	}
	if h, err := credsdir.Inspect(dir); err != nil || h.Identity != reports || h.Interrupted {
		t.Fatalf("after: %+v %v", h, err)
	}
}

// The same identity enrolls again without --force and replaces its files
// (no backup); so does its own interrupted enrollment, which left a key and
// the pending chain.
func TestEnrollSameIdentityAgain(t *testing.T) {
	e := testenv.Start(t)
	dir := filepath.Join(t.TempDir(), "out")
	first := enrollInto(t, e, billing, dir)
	again := enrollInto(t, e, billing, dir)
	if again.Serial == first.Serial || again.Backup != "" || testenv.ReadLeaf(t, dir).SerialNumber.Text(16) != again.Serial {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	entries, _ := os.ReadDir(dir)
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), "backup-") || de.Name() == credsdir.PendingFile {
			t.Fatalf("%s left in %s", de.Name(), dir)
		}
	}

	// A first enrollment cut after the key: key.pem and the chain it
	// belongs to in cert.pem.pending, nothing else.
	cut := filepath.Join(t.TempDir(), "cut")
	os.Mkdir(cut, 0o700)
	for from, to := range map[string]string{"key.pem": "key.pem", "cert.pem": credsdir.PendingFile} {
		b, _ := os.ReadFile(filepath.Join(dir, from))
		writeFile(t, filepath.Join(cut, to), string(b), 0o600)
	}
	if _, err := enroll.Enroll(context.Background(), enroll.Options{Token: e.Token(t, reports, time.Hour), OutDir: cut}); err == nil ||
		!strings.Contains(err.Error(), " holds the credentials of "+billing+"; refusing to replace them with "+reports) {
		t.Fatalf("another identity into the cut directory: %v", err)
	}
	res := enrollInto(t, e, billing, cut)
	if res.Backup != "" || testenv.ReadLeaf(t, cut).SerialNumber.Text(16) != res.Serial {
		t.Fatalf("recovering the cut enrollment: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(cut, credsdir.PendingFile)); !os.IsNotExist(err) {
		t.Fatalf("pending chain after recovery: %v", err)
	}
}

// A directory that cannot be looked at is an error, with nothing spent.
func TestEnrollDirectoryNotADirectory(t *testing.T) {
	e := testenv.Start(t)
	file := filepath.Join(t.TempDir(), "out")
	writeFile(t, file, "x", 0o600)
	tok := e.Token(t, reports, time.Hour)
	_, err := enroll.Enroll(context.Background(), enroll.Options{Token: tok, OutDir: file, Force: true})
	if want := "enroll: credsdir: " + file + " is not a directory"; err == nil || err.Error() != want {
		t.Fatalf("error:\n got %v\nwant %s", err, want)
	}
	unspent(t, tok)
}

func writeFile(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	des, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		fi, _ := de.Info()
		b, err := os.ReadFile(filepath.Join(from, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(to, de.Name()), string(b), fi.Mode().Perm())
	}
}
