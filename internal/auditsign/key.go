package auditsign

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/pemutil"
)

// LoadKey decrypts the audit key at path with passphrase. A wrong
// passphrase wraps pemutil.ErrWrongPassphrase.
func LoadKey(path string, passphrase []byte) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auditsign: audit key: %w", err)
	}
	k, err := pemutil.DecryptPrivateKey(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("auditsign: audit key %s: %w", path, err)
	}
	if _, ok := k.Public().(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("auditsign: audit key %s is %T, want an Ed25519 key", path, k.Public())
	}
	return k, nil
}

// EnsureKey returns the audit key at path, making it first when there is
// none: an installation made before audit keys gets one at its first
// start (created true). The new key is encrypted with passphrase and
// written 0600; two servers sharing the directory that start at once make
// one key between them (the second reads the first's). The public half is
// (re)written to pubPath when it is missing or differs.
func EnsureKey(path, pubPath string, passphrase []byte) (key crypto.Signer, created bool, err error) {
	key, err = LoadKey(path, passphrase)
	if errors.Is(err, fs.ErrNotExist) {
		key, created, err = create(path, passphrase)
	}
	if err != nil {
		return nil, false, err
	}
	pub := checkpoint.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if have, rerr := os.ReadFile(pubPath); rerr != nil || string(have) != string(pub) {
		if err := atomicfile.Write(pubPath, pub, 0o644); err != nil {
			return nil, false, fmt.Errorf("auditsign: audit public key: %w", err)
		}
	}
	return key, created, nil
}

// create makes a new key and links it into place only if path is still
// free (os.Link never replaces), so a key another process made first wins.
func create(path string, passphrase []byte) (crypto.Signer, bool, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("auditsign: %w", err)
	}
	enc, err := pemutil.EncryptPrivateKey(k, passphrase)
	if err != nil {
		return nil, false, fmt.Errorf("auditsign: audit key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("auditsign: %w", err)
	}
	tmp := path + ".new-" + rand.Text()[:8]
	if err := atomicfile.Write(tmp, enc, 0o600); err != nil {
		return nil, false, fmt.Errorf("auditsign: audit key: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		k, err := LoadKey(path, passphrase)
		return k, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("auditsign: audit key: %w", err)
	}
	return k, true, nil
}
