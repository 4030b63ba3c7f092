// Package cadir creates and opens a certgate directory: the CA files, the
// config, the admin credentials and the store that "certgate init" lays down
// and that "certgate server" and the admin CLI read.
//
// Layout (names are the config defaults):
//
//	DIR/certgate.yaml        every setting, strict
//	DIR/bundle.pem           the trust bundle (root)
//	DIR/ca/root.pem          root certificate
//	DIR/ca/root.key          root key, encrypted PKCS#8 (0600)
//	DIR/ca/intermediate.pem  online intermediate certificate
//	DIR/ca/intermediate.key  its key, encrypted PKCS#8 (0600)
//	DIR/admin/{cert,key,bundle}.pem  the admin client credentials (key 0600)
//	DIR/certgate.db          the SQLite store (when the store is SQLite)
package cadir

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
)

// ErrExists is returned by Init for a directory that already holds a CA.
var ErrExists = errors.New("cadir: directory already holds a certgate installation")

// InitOptions describes a new installation.
type InitOptions struct {
	Dir         string
	TrustDomain string
	KeyType     keytype.Type // of the CA keys; keytype.Default if empty
	Passphrase  []byte       // encrypts the CA keys; must not be empty
	AdminName   string       // the admin identity is spiffe://TD/admin/<name>
	Store       string       // store URL; the config default (SQLite in DIR) if empty
	// Config, if set, is used instead of the defaults (trust domain, key
	// type and store above still apply).
	Config *config.Server
	Clock  clock.Clock
}

// Init creates a new installation in o.Dir. It refuses a directory that
// already has a config, CA files or a database, and changes nothing then.
func Init(ctx context.Context, o InitOptions) error {
	if len(o.Passphrase) == 0 {
		return errors.New("cadir: empty passphrase refused: set CERTGATE_PASSPHRASE or --passphrase-file")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.KeyType == "" {
		o.KeyType = keytype.Default
	}
	if o.AdminName == "" {
		o.AdminName = "admin"
	}
	cfg := config.DefaultServer(o.TrustDomain)
	if o.Config != nil {
		cfg = *o.Config
		cfg.TrustDomain = o.TrustDomain
	}
	cfg.CA.KeyType = string(o.KeyType)
	if o.Store != "" {
		cfg.Store = o.Store
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cadir: %w", err)
	}
	adminID, err := identity.New(o.TrustDomain, identity.AdminPrefix+o.AdminName)
	if err != nil {
		return fmt.Errorf("cadir: admin name: %w", err)
	}
	if err := checkEmpty(o.Dir, cfg); err != nil {
		return err
	}
	_, statErr := os.Stat(o.Dir)
	createdDir := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("cadir: %w", err)
	}
	// From here on a failure leaves a partial directory; remove what we made
	// so a retry starts clean: the whole directory if init created it, else
	// the files and the (then empty) subdirectories it wrote.
	ok := false
	var made []string
	defer func() {
		if ok {
			return
		}
		if createdDir {
			os.RemoveAll(o.Dir)
			return
		}
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	}()
	write := func(rel string, data []byte, perm os.FileMode) error {
		p := filepath.Join(o.Dir, rel)
		if d := filepath.Dir(p); d != o.Dir {
			if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
				made = append(made, d) // removed after its files, if empty
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("cadir: %w", err)
		}
		made = append(made, p)
		if err := atomicfile.Write(p, data, perm); err != nil {
			return fmt.Errorf("cadir: %w", err)
		}
		return nil
	}

	now := o.Clock.Now()
	rootKey, err := keytype.Generate(o.KeyType)
	if err != nil {
		return fmt.Errorf("cadir: root key: %w", err)
	}
	root, err := ca.CreateRoot(ca.RootOptions{TrustDomain: o.TrustDomain, Key: rootKey, Now: now})
	if err != nil {
		return err
	}
	interKey, err := keytype.Generate(o.KeyType)
	if err != nil {
		return fmt.Errorf("cadir: intermediate key: %w", err)
	}
	inter, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: interKey, Now: now})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		rel string
		key crypto.Signer
	}{{cfg.CA.RootKey, rootKey}, {cfg.CA.IntermediateKey, interKey}} {
		enc, err := pemutil.EncryptPrivateKey(f.key, o.Passphrase)
		if err != nil {
			return fmt.Errorf("cadir: %w", err)
		}
		if err := write(f.rel, enc, 0o600); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		rel  string
		cert *x509.Certificate
	}{{cfg.CA.RootCert, root}, {cfg.CA.IntermediateCert, inter}, {cfg.CA.Bundle, root}, {cfg.Admin.Bundle, root}} {
		if err := write(f.rel, pemutil.EncodeCertificates(f.cert), 0o644); err != nil {
			return err
		}
	}
	rendered, err := cfg.Render()
	if err != nil {
		return err
	}
	if err := write(config.FileName, rendered, 0o600); err != nil {
		return err
	}
	loaded, err := config.LoadServer(o.Dir)
	if err != nil {
		return err
	}
	if strings.HasPrefix(loaded.StoreURL(), "sqlite://") || !strings.Contains(loaded.StoreURL(), "://") {
		made = append(made, sqlitePath(loaded.StoreURL()), sqlitePath(loaded.StoreURL())+"-wal", sqlitePath(loaded.StoreURL())+"-shm")
	}
	st, err := store.Open(ctx, loaded.StoreURL())
	if err != nil {
		return fmt.Errorf("cadir: open store: %w", err)
	}
	defer st.Close()
	// A shared PostgreSQL database may already hold another installation:
	// a second CA in the same store would mix two audit chains and two
	// trust domains, so init refuses it like an existing directory.
	if inv, ok := st.(interface {
		Inventory(context.Context) (store.Inventory, error)
	}); ok {
		got, err := inv.Inventory(ctx)
		if err != nil {
			return fmt.Errorf("cadir: %w", err)
		}
		if !got.Empty() {
			return fmt.Errorf("%w: the store already holds one (%s); use an empty database or schema", ErrExists, got)
		}
	}
	svc, err := newService(loaded, root, inter, interKey, st, o.Clock)
	if err != nil {
		return err
	}
	if _, err := st.AppendAudit(ctx, audit.Entry{
		Time: now, Actor: "system", Action: audit.ActionInit, Subject: o.TrustDomain,
		Detail: fmt.Sprintf(`{"root":%q,"intermediate":%q,"key_type":%q}`, ca.Fingerprint(root), ca.Fingerprint(inter), o.KeyType),
	}); err != nil {
		return fmt.Errorf("cadir: %w", err)
	}
	adminKey, err := keytype.Generate(keytype.Default)
	if err != nil {
		return fmt.Errorf("cadir: admin key: %w", err)
	}
	iss, err := svc.IssueDirect(ctx, ca.Request{PublicKey: adminKey.Public(), Identity: adminID}, adminProfile(loaded), store.ObtainedInit, "system")
	if err != nil {
		return err
	}
	keyPEM, err := pemutil.EncodePrivateKey(adminKey)
	if err != nil {
		return fmt.Errorf("cadir: %w", err)
	}
	if err := write(cfg.Admin.Key, keyPEM, 0o600); err != nil {
		return err
	}
	if err := write(cfg.Admin.Cert, pemutil.EncodeCertificates(append([]*x509.Certificate{iss.Cert}, iss.Chain...)...), 0o644); err != nil {
		return err
	}
	ok = true
	return nil
}

// adminProfile gives the admin certificate the intermediate's lifetime: it
// is the operator's key to the CLI, kept on the CA host, and re-issuing it
// daily would lock the operator out. Revoke it like any other certificate.
func adminProfile(cfg *config.Server) ca.Profile {
	p := ca.ClientProfile
	p.Name = "admin"
	p.Lifetime = ca.DefaultIntermediateLifetime
	return p
}

func sqlitePath(u string) string {
	p := strings.TrimPrefix(u, "sqlite://")
	return p
}

func checkEmpty(dir string, cfg config.Server) error {
	for _, rel := range []string{config.FileName, cfg.CA.RootCert, cfg.CA.RootKey, cfg.CA.IntermediateCert, cfg.CA.IntermediateKey, cfg.CA.Bundle, cfg.Admin.Key, "certgate.db"} {
		if _, err := os.Lstat(filepath.Join(dir, rel)); err == nil {
			return fmt.Errorf("%w: %s exists (init never overwrites; use another --dir)", ErrExists, filepath.Join(dir, rel))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cadir: %w", err)
		}
	}
	return nil
}

// Exists reports whether dir holds a certgate config.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, config.FileName))
	return err == nil
}

// Installation is an opened certgate directory.
type Installation struct {
	Config    *config.Server
	Authority *ca.Service
	Store     store.Store
}

// Close closes the store.
func (in *Installation) Close() error { return in.Store.Close() }

// Open loads DIR's config, decrypts the intermediate key with passphrase,
// opens the store and returns the wired CA service. The root key stays
// encrypted on disk: the online CA never needs it.
func Open(ctx context.Context, dir string, passphrase []byte, clk clock.Clock) (*Installation, error) {
	cfg, err := config.LoadServer(dir)
	if err != nil {
		return nil, err
	}
	root, inter, interKey, err := loadCA(cfg, passphrase)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.StoreURL())
	if err != nil {
		return nil, fmt.Errorf("cadir: open store: %w", err)
	}
	svc, err := newService(cfg, root, inter, interKey, st, clk)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &Installation{Config: cfg, Authority: svc, Store: st}, nil
}

func loadCA(cfg *config.Server, passphrase []byte) (root, inter *x509.Certificate, interKey crypto.Signer, err error) {
	if len(passphrase) == 0 {
		return nil, nil, nil, errors.New("cadir: no passphrase: set CERTGATE_PASSPHRASE or --passphrase-file")
	}
	root, err = readCert(cfg.Path(cfg.CA.RootCert))
	if err != nil {
		return nil, nil, nil, err
	}
	inter, err = readCert(cfg.Path(cfg.CA.IntermediateCert))
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err := os.ReadFile(cfg.Path(cfg.CA.IntermediateKey))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cadir: %w", err)
	}
	interKey, err = pemutil.DecryptPrivateKey(keyPEM, passphrase)
	if errors.Is(err, pemutil.ErrWrongPassphrase) {
		return nil, nil, nil, fmt.Errorf("cadir: %s: wrong passphrase", cfg.Path(cfg.CA.IntermediateKey))
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cadir: %s: %w", cfg.Path(cfg.CA.IntermediateKey), err)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, nil, nil, fmt.Errorf("cadir: intermediate is not signed by the root: %w", err)
	}
	return root, inter, interKey, nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cadir: %w", err)
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("cadir: %s: %w", path, err)
	}
	return certs[0], nil
}

func newService(cfg *config.Server, root, inter *x509.Certificate, interKey crypto.Signer, st store.Store, clk clock.Clock) (*ca.Service, error) {
	iss, err := ca.NewIssuer(inter, interKey, cfg.TrustDomain, clk)
	if err != nil {
		return nil, err
	}
	// Every certificate names where its status is published (served by
	// "certgate server", package certstatus): server.status_url when set
	// (the plain-HTTP status listener), else the API's own URL.
	base := strings.TrimSuffix(cfg.Listen.URL, "/")
	if cfg.Listen.StatusURL != "" {
		base = strings.TrimSuffix(cfg.Listen.StatusURL, "/")
	}
	iss.CRLURL, iss.OCSPURL = base+"/crl", base+"/ocsp"
	client := ca.ClientProfile
	client.Lifetime = cfg.Profiles.ClientLifetime
	return ca.NewService(ca.ServiceOptions{
		Issuer: iss, Roots: []*x509.Certificate{root}, Store: st, Clock: clk,
		ServerURL: cfg.Listen.URL, TokenTTL: cfg.Tokens.DefaultTTL, MaxTokenTTL: cfg.Tokens.MaxTTL, Client: client,
	})
}

// AdminCredentials loads the admin client certificate and the trust bundle
// named by the config in dir, for the CLI.
func AdminCredentials(dir string) (tls.Certificate, *x509.CertPool, *config.Server, error) {
	cfg, err := config.LoadServer(dir)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	cert, err := tls.LoadX509KeyPair(cfg.Path(cfg.Admin.Cert), cfg.Path(cfg.Admin.Key))
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("cadir: admin credentials: %w", err)
	}
	data, err := os.ReadFile(cfg.Path(cfg.Admin.Bundle))
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("cadir: %w", err)
	}
	roots, err := pemutil.ParseCertificates(data)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("cadir: %s: %w", cfg.Path(cfg.Admin.Bundle), err)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return cert, pool, cfg, nil
}
