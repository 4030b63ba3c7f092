package credsdir_test

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/credsdir"
	"github.com/certgate/certgate/internal/pkcs11uri"
	"github.com/certgate/certgate/internal/testca"
)

const (
	idA = "spiffe://example.org/svc/a"
	idB = "spiffe://example.org/svc/b"
)

// files is a directory's content: name -> bytes (0600 for keys, 0644 else).
type files map[string][]byte

func write(t *testing.T, dir string, fs files) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range fs {
		perm := os.FileMode(0o644)
		if name == certgatetls.KeyFile || name == certgatetls.KeyURIFile {
			perm = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, perm); err != nil {
			t.Fatal(err)
		}
	}
}

func keyURI(object string) []byte {
	return []byte(pkcs11uri.URI{Token: "t", Object: object, Type: "private", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PinSource: "file:/pin"}.String() + "\n")
}

// Inspect tells whose a directory is, and why it is nobody's; Check lets
// only the same identity (or an empty directory) through, with the
// message an operator reads.
func TestInspect(t *testing.T) {
	ca := testca.New(t, "example.org")
	a, a2, b := ca.Issue(t, testca.WithID(idA)), ca.Issue(t, testca.WithID(idA)), ca.Issue(t, testca.WithID(idB))
	noID := ca.Issue(t, testca.WithoutID())
	bundle := ca.BundlePEM()
	set := func(l *testca.Leaf) files {
		return files{"cert.pem": l.CertPEM(), "key.pem": l.KeyPEM(t), "bundle.pem": bundle, "server.url": []byte("https://127.0.0.1:8443\n")}
	}
	with := func(f files, more files) files {
		out := files{}
		for k, v := range f {
			out[k] = v
		}
		for k, v := range more {
			if v == nil {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		files       files
		identity    string
		foreign     string
		interrupted bool
	}{
		{name: "empty", files: files{}},
		{name: "one identity", files: set(a), identity: idA},
		{name: "with the agent's files", files: with(set(a), files{"combined.pem": append(a.CertPEM(), a.KeyPEM(t)...), "agent-status.json": []byte("{}\n")}), identity: idA},
		{name: "a certificate without its key", files: with(set(a), files{"key.pem": nil}), identity: idA},
		{name: "first write interrupted after the key", files: files{credsdir.PendingFile: a.CertPEM(), "key.pem": a.KeyPEM(t)}, identity: idA, interrupted: true},
		{name: "first write interrupted before the key", files: files{credsdir.PendingFile: a.CertPEM()}, identity: idA, interrupted: true},
		{name: "re-enrollment interrupted after the key", files: with(set(a), files{credsdir.PendingFile: a2.CertPEM(), "key.pem": a2.KeyPEM(t)}), identity: idA, interrupted: true},
		{name: "device key", files: with(set(a), files{"key.pem": nil, "key.uri": keyURI("certgate " + idA)}), identity: idA},

		{name: "TPM key", files: with(set(a), files{"key.pem": nil, "key.uri": []byte("tpm:device=/dev/tpmrm0;public=AAAA;private=AAAA\n")}), identity: idA},
		{name: "TPM key alone", files: files{"key.uri": []byte("tpm:device=/dev/tpmrm0;public=AAAA;private=AAAA\n")},
			foreign: "key.uri without a certificate: a key alone does not say whose it is"},
		{name: "another identity's key", files: with(set(a), files{"key.pem": b.KeyPEM(t)}), foreign: "key.pem does not hold the key of cert.pem"},
		{name: "a key alone", files: files{"key.pem": a.KeyPEM(t)}, foreign: "key.pem without a certificate: a key alone does not say whose it is"},
		{name: "a key fitting neither", files: with(set(a), files{credsdir.PendingFile: a2.CertPEM(), "key.pem": b.KeyPEM(t)}), foreign: "key.pem holds the key of neither cert.pem nor cert.pem.pending"},
		{name: "a pending chain of another identity", files: with(set(a), files{credsdir.PendingFile: b.CertPEM()}),
			foreign: "the files name different identities: cert.pem " + idA + ", cert.pem.pending " + idB},
		{name: "combined.pem of another identity", files: with(set(a), files{"combined.pem": append(b.CertPEM(), b.KeyPEM(t)...)}),
			foreign: "the files name different identities: cert.pem " + idA + ", combined.pem " + idB},
		{name: "cert.pem not PEM", files: with(set(a), files{"cert.pem": []byte("hello\n")}), foreign: "cert.pem: pemutil: no PEM data found"},
		{name: "cert.pem without a SPIFFE ID", files: with(set(a), files{"cert.pem": noID.CertPEM(), "key.pem": noID.KeyPEM(t)}), foreign: "cert.pem: certificate has no SPIFFE ID"},
		{name: "key.pem not a key", files: with(set(a), files{"key.pem": a.CertPEM()}), foreign: `key.pem: pemutil: want one PRIVATE KEY block, found 2 blocks`},
		{name: "bundle alone", files: files{"bundle.pem": bundle, "server.url": []byte("https://x\n")}, foreign: "no certificate names an identity: bundle.pem, server.url"},
		{name: "device key of another identity", files: with(set(a), files{"key.pem": nil, "key.uri": keyURI("certgate " + idB)}),
			foreign: "the files name different identities: cert.pem " + idA + ", key.uri " + idB},
		{name: "device key certgate did not make", files: with(set(a), files{"key.pem": nil, "key.uri": keyURI("mykey")}),
			foreign: `key.uri names a device key labelled "mykey", not one certgate made`},
		{name: "key.uri not a URI", files: with(set(a), files{"key.pem": nil, "key.uri": []byte("/dev/tpm0\n")}),
			foreign: "key.uri: bad PKCS#11 URI: does not start with pkcs11:"},
		{name: "device key alone", files: files{"key.uri": keyURI("certgate " + idA)}, identity: idA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tc.files)
			h, err := credsdir.Inspect(dir)
			if err != nil {
				t.Fatal(err)
			}
			if h.Identity != tc.identity || h.Foreign != tc.foreign || h.Interrupted != tc.interrupted {
				t.Fatalf("got identity %q foreign %q interrupted %v\nwant identity %q foreign %q interrupted %v",
					h.Identity, h.Foreign, h.Interrupted, tc.identity, tc.foreign, tc.interrupted)
			}
			if len(h.Files) != len(tc.files) {
				t.Fatalf("files %v, want the %d written", h.Files, len(tc.files))
			}
			_, err = credsdir.Check(dir, idA)
			switch {
			case tc.identity == idA || len(tc.files) == 0:
				if err != nil {
					t.Fatalf("check for %s: %v", idA, err)
				}
			default:
				want := dir + " holds files that are not a certgate identity (" + tc.foreign + "); refusing to replace them with " + idA +
					" (use another directory, or pass --force to move them to a backup directory first)"
				if err == nil || err.Error() != want {
					t.Fatalf("check for %s:\n got %v\nwant %s", idA, err, want)
				}
			}
			_, err = credsdir.Check(dir, idB)
			if len(tc.files) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var refused *credsdir.RefusedError
			if !errors.As(err, &refused) || refused.Want != idB || refused.Dir != dir {
				t.Fatalf("check for %s: %v, want a refusal", idB, err)
			}
		})
	}
}

// The refusal names the identity found, the one asked for, and --force.
func TestCheckOtherIdentity(t *testing.T) {
	ca := testca.New(t, "example.org")
	a := ca.Issue(t, testca.WithID(idA))
	dir := t.TempDir()
	write(t, dir, files{"cert.pem": a.CertPEM(), "key.pem": a.KeyPEM(t), "bundle.pem": ca.BundlePEM()})
	_, err := credsdir.Check(dir, idB)
	want := dir + " holds the credentials of " + idA + "; refusing to replace them with " + idB +
		" (use another directory, or pass --force to move them to a backup directory first)"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// Files Inspect cannot judge by their content.
func TestInspectOddFiles(t *testing.T) {
	ca := testca.New(t, "example.org")
	a := ca.Issue(t, testca.WithID(idA))

	// A cert.pem linked elsewhere, even to a good certificate: replacing
	// the link would leave the target as it was.
	dir := t.TempDir()
	elsewhere := filepath.Join(t.TempDir(), "real.pem")
	write(t, dir, files{"key.pem": a.KeyPEM(t)})
	if err := os.WriteFile(elsewhere, a.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, "cert.pem")); err != nil {
		t.Fatal(err)
	}
	h, err := credsdir.Inspect(dir)
	if want := "cert.pem is a symbolic link to " + elsewhere + ", and certgate would replace the link, not its target"; err != nil || h.Foreign != want {
		t.Fatalf("symlink: %+v %v\nwant %s", h, err, want)
	}

	// A directory where cert.pem should be.
	dir = t.TempDir()
	write(t, dir, files{"key.pem": a.KeyPEM(t)})
	if err := os.Mkdir(filepath.Join(dir, "cert.pem"), 0o700); err != nil {
		t.Fatal(err)
	}
	if h, err := credsdir.Inspect(dir); err != nil || h.Foreign != "cert.pem is not a regular file" {
		t.Fatalf("directory: %+v %v", h, err)
	}

	// The directory is a file.
	file := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := credsdir.Inspect(file); err == nil || err.Error() != "credsdir: "+file+" is not a directory" {
		t.Fatalf("file: %v", err)
	}

	// A missing directory holds nothing.
	if h, err := credsdir.Inspect(filepath.Join(t.TempDir(), "nope")); err != nil || !h.Empty() {
		t.Fatalf("missing: %+v %v", h, err)
	}

	if os.Geteuid() == 0 {
		return // root reads and searches whatever the modes say
	}
	dir = t.TempDir()
	write(t, dir, files{"cert.pem": a.CertPEM(), "key.pem": a.KeyPEM(t)})
	os.Chmod(filepath.Join(dir, "key.pem"), 0)
	if h, err := credsdir.Inspect(dir); err != nil || h.Foreign != "key.pem cannot be read: permission denied" {
		t.Fatalf("unreadable key: %+v %v", h, err)
	}
	os.Chmod(dir, 0o600)
	defer os.Chmod(dir, 0o700)
	if _, err := credsdir.Inspect(dir); err == nil || err.Error() != "credsdir: lstat "+filepath.Join(dir, "cert.pem")+": permission denied" {
		t.Fatalf("unsearchable directory: %v", err)
	}
}

type entry struct {
	mode fs.FileMode
	data string // the bytes, or the target of a link
}

// snapshot reads every entry of dir (not recursing).
func snapshot(t *testing.T, dir string) map[string]entry {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]entry{}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			s, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			data = []byte(s)
		case fi.Mode().IsRegular():
			if data, err = os.ReadFile(p); err != nil {
				t.Fatal(err)
			}
		}
		out[de.Name()] = entry{fi.Mode(), string(data)}
	}
	return out
}

// Backup moves exactly the credential files, with their bytes and modes
// (a link as the link), into a new 0700 directory named after the time;
// other files stay.
func TestBackup(t *testing.T) {
	ca := testca.New(t, "example.org")
	a := ca.Issue(t, testca.WithID(idA))
	dir := t.TempDir()
	write(t, dir, files{"cert.pem": a.CertPEM(), "key.pem": a.KeyPEM(t), "server.url": []byte("https://x\n"), "notes.txt": []byte("mine\n")})
	if err := os.Symlink("/etc/ssl/certs/ca-certificates.crt", filepath.Join(dir, "bundle.pem")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	now := time.Date(2026, 12, 5, 23, 50, 1, 0, time.UTC)
	backup, err := credsdir.Backup(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "backup-20261205T235001Z"); backup != want {
		t.Fatalf("backup %s, want %s", backup, want)
	}
	fi, err := os.Stat(backup)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("backup directory: %v %v", fi.Mode(), err)
	}
	moved := snapshot(t, backup)
	for _, name := range []string{"cert.pem", "key.pem", "server.url", "bundle.pem"} {
		if moved[name] != before[name] {
			t.Errorf("%s: backup holds %v, was %v", name, moved[name], before[name])
		}
	}
	if moved["key.pem"].mode.Perm() != 0o600 {
		t.Errorf("key.pem mode %v in the backup", moved["key.pem"].mode)
	}
	left := snapshot(t, dir)
	if len(moved) != 4 || len(left) != 2 || left["notes.txt"] != before["notes.txt"] {
		t.Fatalf("moved %v, left %v", slices.Sorted(mapKeys(moved)), slices.Sorted(mapKeys(left)))
	}

	// Another in the same second gets its own directory.
	write(t, dir, files{"key.pem": a.KeyPEM(t)})
	if b2, err := credsdir.Backup(dir, now); err != nil || b2 != backup+".1" {
		t.Fatalf("second backup %s %v", b2, err)
	}
	// Nothing to move: no directory.
	if b3, err := credsdir.Backup(dir, now); err != nil || b3 != "" {
		t.Fatalf("empty: %q %v", b3, err)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Write replaces the same identity's files, leaves no pending chain, and
// refuses another identity's directory without touching a byte.
func TestWrite(t *testing.T) {
	ca := testca.New(t, "example.org")
	a, a2, b := ca.Issue(t, testca.WithID(idA)), ca.Issue(t, testca.WithID(idA)), ca.Issue(t, testca.WithID(idB))
	creds := func(l *testca.Leaf) *certgatetls.Credentials {
		c, err := certgatetls.NewCredentials(l.Key, l.Chain, []*x509.Certificate{ca.Root})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dir := filepath.Join(t.TempDir(), "creds")
	if err := credsdir.Write(dir, creds(a)); err != nil {
		t.Fatal(err)
	}
	if err := credsdir.Write(dir, creds(a2)); err != nil {
		t.Fatal(err)
	}
	got, err := certgatetls.ReadCredentials(dir)
	if err != nil || got.Serial != a2.Cert.SerialNumber.Text(16) {
		t.Fatalf("after the second write: %v %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, credsdir.PendingFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("pending chain left: %v", err)
	}
	before := snapshot(t, dir)
	err = credsdir.Write(dir, creds(b))
	var refused *credsdir.RefusedError
	if !errors.As(err, &refused) || refused.Found.Identity != idA {
		t.Fatalf("write of %s: %v", idB, err)
	}
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Fatalf("files %v, were %v", slices.Sorted(mapKeys(after)), slices.Sorted(mapKeys(before)))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed", k)
		}
	}
}

// Complete installs the pending chain when a write was cut after the key,
// removes a pending chain whose write had finished, and leaves every other
// directory alone.
func TestComplete(t *testing.T) {
	ca := testca.New(t, "example.org")
	a, a2, b := ca.Issue(t, testca.WithID(idA)), ca.Issue(t, testca.WithID(idA)), ca.Issue(t, testca.WithID(idB))
	bundle := ca.BundlePEM()

	dir := t.TempDir()
	write(t, dir, files{"cert.pem": a.CertPEM(), credsdir.PendingFile: a2.CertPEM(), "key.pem": a2.KeyPEM(t), "bundle.pem": bundle})
	if done, err := credsdir.Complete(dir); err != nil || !done {
		t.Fatalf("cut after the key: %v %v", done, err)
	}
	c, err := certgatetls.ReadCredentials(dir)
	if err != nil || c.Serial != a2.Cert.SerialNumber.Text(16) {
		t.Fatalf("after completing: %v %v", c, err)
	}
	if _, err := os.Stat(filepath.Join(dir, credsdir.PendingFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("pending chain left: %v", err)
	}

	dir = t.TempDir()
	write(t, dir, files{"cert.pem": a2.CertPEM(), credsdir.PendingFile: a2.CertPEM(), "key.pem": a2.KeyPEM(t), "bundle.pem": bundle})
	if done, err := credsdir.Complete(dir); err != nil || done {
		t.Fatalf("finished write: %v %v", done, err)
	}
	if h, _ := credsdir.Inspect(dir); h.Interrupted || len(h.Files) != 3 {
		t.Fatalf("finished write: %+v", h)
	}

	for name, fs := range map[string]files{
		"no bundle":     {credsdir.PendingFile: a.CertPEM(), "key.pem": a.KeyPEM(t)},
		"another's key": {"cert.pem": a.CertPEM(), credsdir.PendingFile: a2.CertPEM(), "key.pem": b.KeyPEM(t), "bundle.pem": bundle},
		"not cut":       {"cert.pem": a.CertPEM(), "key.pem": a.KeyPEM(t), "bundle.pem": bundle},
	} {
		dir := t.TempDir()
		write(t, dir, fs)
		before := snapshot(t, dir)
		if done, err := credsdir.Complete(dir); err != nil || done {
			t.Fatalf("%s: %v %v", name, done, err)
		}
		after := snapshot(t, dir)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s: %s changed", name, k)
			}
		}
	}
}
