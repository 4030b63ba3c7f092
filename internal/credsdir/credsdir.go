package credsdir

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/pkcs11uri"
)

// PendingFile is the chain [Write] is about to install, there only while
// a write is under way (or was interrupted).
const PendingFile = "cert.pem.pending"

// Files are the names of a credentials directory, in the order they are
// judged and moved: certgatetls's files, the pending chain, and what
// `certgate agent` (combined.pem, agent-status.json) and `certgate enroll
// --format p12` (credentials.p12) add beside them.
var Files = []string{
	certgatetls.CertFile, PendingFile, certgatetls.KeyFile, certgatetls.KeyURIFile,
	certgatetls.BundleFile, certgatetls.ServerURLFile, "combined.pem", "agent-status.json", "credentials.p12",
}

// keyLabelPrefix starts the label of a key certgate makes in a device
// (enroll and the agent label it "certgate " + the SPIFFE ID), which is
// what a key.uri's object attribute names.
const keyLabelPrefix = "certgate "

// tpmScheme starts a key.uri that names a key in a TPM (its TPM-wrapped
// blobs, see internal/devicekey), which carries no label.
const tpmScheme = "tpm:"

// Holder is what a directory holds.
type Holder struct {
	// Files are the credential files present, in the order of [Files].
	Files []string
	// Identity is the SPIFFE ID the files belong to; "" when they name
	// none or are foreign.
	Identity string
	// Foreign says why the files are not one certgate identity; "" when
	// they are, or when there are none.
	Foreign string
	// Interrupted: a [Write] of Identity did not finish (the pending
	// chain is there); writing Identity again completes it.
	Interrupted bool
}

// Empty reports whether the directory holds no credential file.
func (h Holder) Empty() bool { return len(h.Files) == 0 }

// What names what the directory holds, for a message: "the credentials of
// spiffe://…" or "files that are not a certgate identity (why)".
func (h Holder) What() string {
	switch {
	case h.Foreign != "":
		return "files that are not a certgate identity (" + h.Foreign + ")"
	case h.Identity != "":
		return "the credentials of " + h.Identity
	default:
		return "nothing"
	}
}

// RefusedError is [Check]'s answer when the directory holds another
// identity's credentials or foreign files.
type RefusedError struct {
	Dir   string
	Want  string // the identity that was to be written
	Found Holder
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s holds %s; refusing to replace them with %s (use another directory, or pass --force to move them to a backup directory first)",
		e.Dir, e.Found.What(), e.Want)
}

// Inspect reports whose credentials dir holds. A missing directory holds
// nothing. It reads only the files of [Files], never follows a symbolic
// link, and returns an error only when it cannot look: dir is not a
// directory, or cannot be searched. A file it cannot read makes the
// holder foreign.
func Inspect(dir string) (Holder, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Holder{}, nil
	}
	if err != nil {
		return Holder{}, fmt.Errorf("credsdir: %w", err)
	}
	if !fi.IsDir() {
		return Holder{}, fmt.Errorf("credsdir: %s is not a directory", dir)
	}
	var h Holder
	var why []string
	regular, present := map[string]bool{}, map[string]bool{}
	for _, name := range Files {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Holder{}, fmt.Errorf("credsdir: %w", err)
		}
		h.Files = append(h.Files, name)
		present[name] = true
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			why = append(why, fmt.Sprintf("%s is a symbolic link to %s, and certgate would replace the link, not its target", name, target))
		case !fi.Mode().IsRegular():
			why = append(why, name+" is not a regular file")
		default:
			regular[name] = true
		}
	}
	if h.Empty() {
		return h, nil
	}
	j := judge{dir: dir, regular: regular, present: present}
	h.Identity, why = j.identity(why)
	if len(why) > 0 {
		h.Identity, h.Foreign = "", strings.Join(why, "; ")
		return h, nil
	}
	h.Interrupted = regular[PendingFile]
	return h, nil
}

// judge reads the regular credential files of one directory.
type judge struct {
	dir     string
	regular map[string]bool // the files to read
	present map[string]bool // every file there, regular or not
	ids     []string        // "file: identity", for the message when they disagree
	idSet   []string
}

func (j *judge) read(name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(j.dir, name))
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read: %w", name, err)
	}
	return b, nil
}

func (j *judge) claim(name, id string) {
	j.ids = append(j.ids, name+" "+id)
	if !slices.Contains(j.idSet, id) {
		j.idSet = append(j.idSet, id)
	}
}

// leaf reads the first certificate of name and claims its identity.
func (j *judge) leaf(name string, why *[]string) *x509.Certificate {
	if !j.regular[name] {
		return nil
	}
	b, err := j.read(name)
	if err != nil {
		*why = append(*why, err.Error())
		return nil
	}
	var leaf *x509.Certificate
	if name == "combined.pem" {
		// The chain then the key: the first block is the leaf.
		if blk, _ := pem.Decode(b); blk != nil && blk.Type == pemutil.TypeCertificate {
			leaf, err = x509.ParseCertificate(blk.Bytes)
		} else {
			err = errors.New("no certificate first")
		}
	} else {
		var chain []*x509.Certificate
		if chain, err = pemutil.ParseCertificates(b); err == nil {
			leaf = chain[0]
		}
	}
	if err != nil {
		*why = append(*why, fmt.Sprintf("%s: %v", name, err))
		return nil
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		*why = append(*why, fmt.Sprintf("%s: %v", name, err))
		return nil
	}
	j.claim(name, id.String())
	return leaf
}

// identity is the one identity the files agree on, or the reasons they
// are foreign (why, extended).
func (j *judge) identity(why []string) (string, []string) {
	cert := j.leaf(certgatetls.CertFile, &why)
	pending := j.leaf(PendingFile, &why)
	j.leaf("combined.pem", &why)
	if j.regular[certgatetls.KeyFile] {
		why = j.checkKey(cert, pending, why)
	}
	if j.regular[certgatetls.KeyURIFile] {
		why = j.checkKeyURI(cert, pending, why)
	}
	if len(why) > 0 {
		return "", why
	}
	switch len(j.idSet) {
	case 0:
		present := slices.Sorted(func(yield func(string) bool) {
			for n := range j.regular {
				if !yield(n) {
					return
				}
			}
		})
		return "", []string{"no certificate names an identity: " + strings.Join(present, ", ")}
	case 1:
		return j.idSet[0], nil
	default:
		return "", []string{"the files name different identities: " + strings.Join(j.ids, ", ")}
	}
}

// checkKey requires key.pem to hold the key of cert.pem or of the pending
// chain (an interrupted write).
func (j *judge) checkKey(cert, pending *x509.Certificate, why []string) []string {
	b, err := j.read(certgatetls.KeyFile)
	if err != nil {
		return append(why, err.Error())
	}
	key, err := pemutil.ParsePrivateKey(b)
	clear(b)
	if err != nil {
		return append(why, fmt.Sprintf("%s: %v", certgatetls.KeyFile, err))
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, _ := key.Public().(equaler)
	fits := func(c *x509.Certificate) bool { return c != nil && pub != nil && pub.Equal(c.PublicKey) }
	switch {
	case fits(cert) || fits(pending):
		return why
	case cert == nil && pending == nil:
		if j.present[certgatetls.CertFile] || j.present[PendingFile] {
			return why // the certificate is already reported
		}
		return append(why, "key.pem without a certificate: a key alone does not say whose it is")
	case cert != nil && pending != nil:
		return append(why, "key.pem holds the key of neither cert.pem nor "+PendingFile)
	case cert != nil:
		return append(why, "key.pem does not hold the key of cert.pem")
	default:
		return append(why, "key.pem does not hold the key of "+PendingFile)
	}
}

// checkKeyURI claims the identity in the label of the device key that
// key.uri records: certgate labels the keys it makes in a PKCS#11 token.
// A TPM key (a tpm: URI holding the key's TPM-wrapped blobs) has no label: the
// certificate beside it says whose it is, and without one it is a key
// alone.
func (j *judge) checkKeyURI(cert, pending *x509.Certificate, why []string) []string {
	b, err := j.read(certgatetls.KeyURIFile)
	if err != nil {
		return append(why, err.Error())
	}
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, tpmScheme) {
		if cert == nil && pending == nil && !j.present[certgatetls.CertFile] && !j.present[PendingFile] {
			return append(why, "key.uri without a certificate: a key alone does not say whose it is")
		}
		return why
	}
	u, err := pkcs11uri.Parse(s)
	if err != nil {
		return append(why, fmt.Sprintf("%s: %v", certgatetls.KeyURIFile, err))
	}
	label, ok := strings.CutPrefix(u.Object, keyLabelPrefix)
	if !ok {
		return append(why, fmt.Sprintf("%s names a device key labelled %q, not one certgate made", certgatetls.KeyURIFile, u.Object))
	}
	id, err := identity.Parse(label)
	if err != nil {
		return append(why, fmt.Sprintf("%s: the key's label: %v", certgatetls.KeyURIFile, err))
	}
	j.claim(certgatetls.KeyURIFile, id.String())
	return why
}

// Check returns nil when want (a SPIFFE ID) may write its credentials into
// dir: dir holds nothing, or want's own credentials (an interrupted write
// of want's included). Otherwise it returns a *[RefusedError], or the
// error of [Inspect].
func Check(dir, want string) (Holder, error) {
	h, err := Inspect(dir)
	if err != nil {
		return h, err
	}
	if h.Empty() || (h.Foreign == "" && h.Identity == want) {
		return h, nil
	}
	return h, &RefusedError{Dir: dir, Want: want, Found: h}
}

// backupAttempts bounds the names tried for one backup directory: two
// forced enrollments within one second get backup-…Z and backup-…Z.1.
const backupAttempts = 100

// Backup moves the credential files of dir into a new directory
// dir/backup-YYYYMMDDTHHMMSSZ (mode 0700) named after now, and returns its
// path. Files keep their bytes and modes; a symbolic link moves as the
// link. A key.uri's key stays in its device. With nothing to move it makes
// no directory and returns "".
func Backup(dir string, now time.Time) (string, error) {
	h, err := Inspect(dir)
	if err != nil {
		return "", err
	}
	if h.Empty() {
		return "", nil
	}
	base := filepath.Join(dir, "backup-"+now.UTC().Format("20060102T150405Z"))
	backup := base
	for i := 1; ; i++ {
		err := os.Mkdir(backup, 0o700)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i == backupAttempts {
			return "", fmt.Errorf("credsdir: backup: %w", err)
		}
		backup = fmt.Sprintf("%s.%d", base, i)
	}
	// The umask may have narrowed the mode; 0700 exactly, like the
	// directory enroll makes.
	if err := os.Chmod(backup, 0o700); err != nil {
		return "", fmt.Errorf("credsdir: backup: %w", err)
	}
	for _, name := range h.Files {
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(backup, name)); err != nil {
			return backup, fmt.Errorf("credsdir: backup into %s: %w", backup, err)
		}
	}
	for _, d := range []string{backup, dir} {
		if err := syncDir(d); err != nil {
			return backup, fmt.Errorf("credsdir: backup into %s: %w", backup, err)
		}
	}
	return backup, nil
}

// Write writes c into dir after [Check] allowed it for c's identity: the
// chain to PendingFile first, then the credentials with
// certgatetls.WriteCredentials, then the pending chain goes. Its errors
// are Check's (a *[RefusedError]) or the writes'.
func Write(dir string, c *certgatetls.Credentials) error {
	if _, err := Check(dir, c.Identity); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credsdir: %w", err)
	}
	pending := filepath.Join(dir, PendingFile)
	if err := atomicfile.Write(pending, pemutil.EncodeCertificates(c.Chain...), 0o644); err != nil {
		return fmt.Errorf("credsdir: %w", err)
	}
	if err := certgatetls.WriteCredentials(dir, c); err != nil {
		return err
	}
	// If this removal is lost in a crash, the pending chain is the
	// certificate beside it: the directory is still c's.
	if err := os.Remove(pending); err != nil {
		return fmt.Errorf("credsdir: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Complete finishes a [Write] that a crash cut between the key and the
// certificate: the new key beside the old cert.pem, the new chain still in
// PendingFile. It installs the pending chain as cert.pem and reports
// whether it did. A directory in any other state is left as it is, for
// its reader to report: a first enrollment cut before its bundle was
// written cannot be completed (enroll the same identity again).
func Complete(dir string) (bool, error) {
	h, err := Inspect(dir)
	if err != nil || !h.Interrupted || !slices.Contains(h.Files, certgatetls.BundleFile) {
		return false, err
	}
	pending := filepath.Join(dir, PendingFile)
	_, err = certgatetls.ReadCredentials(dir)
	switch {
	case err == nil:
		// Everything was written; only the pending chain's removal was
		// lost.
		if err := os.Remove(pending); err != nil {
			return false, fmt.Errorf("credsdir: %w", err)
		}
		return false, nil
	case !errors.Is(err, certgatetls.ErrKeyMismatch) && !errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	// Inspect found the key to be the pending chain's (key.pem), or the
	// pending chain's identity's (a device key's label): certgate wrote
	// both, the chain first.
	if err := os.Rename(pending, filepath.Join(dir, certgatetls.CertFile)); err != nil {
		return false, fmt.Errorf("credsdir: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return true, fmt.Errorf("credsdir: %w", err)
	}
	return true, nil
}
