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
//	DIR/ca/audit.key         the audit key (Ed25519) that signs the audit
//	                         log's checkpoints, encrypted PKCS#8 (0600)
//	DIR/ca/audit.pub.pem     its public half
//	DIR/audit-checkpoints    every signed checkpoint (package auditsign)
//	DIR/admin/{cert,key,bundle}.pem  the admin client credentials (key 0600)
//	DIR/certgate.db          the SQLite store (when the store is SQLite)
package cadir

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/auditsign"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cakey"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/roles"
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
	// CAKey, if set, is an RFC 7512 pkcs11: URI naming the token (module
	// path, PIN source) in which the root and intermediate keys are made;
	// empty makes encrypted key files.
	CAKey     string
	AdminName string // the admin identity is spiffe://TD/admin/<name>
	Store     string // store URL; the config default (SQLite in DIR) if empty
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
	keys := &cakey.Source{Dir: o.Dir, Passphrase: o.Passphrase}
	defer keys.Close()
	// A CA key is an encrypted file in DIR, or made inside the PKCS#11
	// token --ca-key names, under a label no other installation in the
	// same token has.
	suffix := make([]byte, 4)
	rand.Read(suffix)
	newKey := func(role string, rel *string) (crypto.Signer, string, error) {
		if o.CAKey == "" {
			k, err := keytype.Generate(o.KeyType)
			if err != nil {
				return nil, "", fmt.Errorf("cadir: %s key: %w", role, err)
			}
			enc, err := pemutil.EncryptPrivateKey(k, o.Passphrase)
			if err != nil {
				return nil, "", fmt.Errorf("cadir: %w", err)
			}
			if err := write(*rel, enc, 0o600); err != nil {
				return nil, "", err
			}
			return k, cakey.SchemeFile + *rel, nil
		}
		g, err := keys.Generate(ctx, o.CAKey, o.KeyType, fmt.Sprintf("certgate-%s-1-%x", role, suffix))
		if err != nil {
			return nil, "", fmt.Errorf("cadir: %s key: %w", role, err)
		}
		*rel = g.URI
		return g.Signer, g.URI, nil
	}
	rootKey, rootURI, err := newKey("root", &cfg.CA.RootKey)
	if err != nil {
		return err
	}
	root, err := ca.CreateRoot(ca.RootOptions{TrustDomain: o.TrustDomain, Key: rootKey, Now: now, Generation: 1})
	if err != nil {
		return err
	}
	interKey, interURI, err := newKey("intermediate", &cfg.CA.IntermediateKey)
	if err != nil {
		return err
	}
	urls := urlsOf(&cfg)
	inter, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: interKey, Now: now, Generation: 1,
		CRLURL: urls.CRL(ca.KeyID(root)), IssuerURL: urls.CACert(ca.KeyID(root))})
	if err != nil {
		return err
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
	rows := []store.CACert{
		caRow(store.CAKindRoot, 1, root, root, rootURI, now),
		caRow(store.CAKindIntermediate, 1, inter, root, interURI, now),
	}
	made = append(made, loaded.Path(loaded.Audit.Key), loaded.Path(loaded.Audit.PublicKey))
	auditKey, _, err := auditsign.EnsureKey(loaded.Path(loaded.Audit.Key), loaded.Path(loaded.Audit.PublicKey), o.Passphrase)
	if err != nil {
		return fmt.Errorf("cadir: %w", err)
	}
	if _, err := st.ApplyCAChange(ctx, store.CAChange{Insert: rows, Now: now, Audit: []audit.Entry{{
		Time: now, Actor: "system", Action: audit.ActionInit, Subject: o.TrustDomain,
		Detail: fmt.Sprintf(`{"root":%q,"intermediate":%q,"key_type":%q,"key_storage":%q}`, ca.Fingerprint(root), ca.Fingerprint(inter), o.KeyType, cakey.Storage(interURI)),
	}, auditKeyEntry(loaded, auditKey, now, "init")}}); err != nil {
		return fmt.Errorf("cadir: %w", err)
	}
	h, err := ca.BuildHierarchy(ctx, rows, hierarchyOptions(loaded, keys, o.Clock))
	if err != nil {
		return err
	}
	svc, err := newService(loaded, h, st, o.Clock)
	if err != nil {
		return err
	}
	adminKey, err := keytype.Generate(keytype.Default)
	if err != nil {
		return fmt.Errorf("cadir: admin key: %w", err)
	}
	// The admin identity is an admin because this grant says so (audited),
	// not because of its name.
	if err := st.GrantRole(ctx, roles.Grant{Role: roles.Admin, Holder: adminID.String(), GrantedBy: "system:init", GrantedAt: now}); err != nil {
		return fmt.Errorf("cadir: grant admin: %w", err)
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
	for _, rel := range []string{config.FileName, cfg.CA.RootCert, cfg.CA.RootKey, cfg.CA.IntermediateCert, cfg.CA.IntermediateKey, cfg.CA.Bundle, cfg.Admin.Key, "certgate.db",
		cfg.Audit.Key, cfg.Audit.Checkpoints} {
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
	// Keys loads and makes the CA's keys; Hierarchy builds the CA state
	// from the store's rows with them (after a rotation, say).
	Keys      *cakey.Source
	Hierarchy ca.HierarchyOptions
	// AuditSigner signs the audit log's checkpoints with the audit key.
	AuditSigner *checkpoint.Signer
}

// Close closes the store and the key source (PKCS#11 sessions).
func (in *Installation) Close() error {
	return errors.Join(in.Store.Close(), in.Keys.Close())
}

// Reload builds the CA state from the store again and makes the service
// sign with it.
func (in *Installation) Reload(ctx context.Context) (*ca.Hierarchy, error) {
	rows, err := in.Store.ListCAs(ctx)
	if err != nil {
		return nil, fmt.Errorf("cadir: %w", err)
	}
	h, err := ca.BuildHierarchy(ctx, rows, in.Hierarchy)
	if err != nil {
		return nil, passphraseError(err)
	}
	if err := in.Authority.SetHierarchy(h); err != nil {
		return nil, err
	}
	return h, nil
}

// Open loads DIR's config, opens the store and builds the CA from the CA
// certificates the store records (an installation made before the store
// recorded them is adopted from its files first), decrypting or opening
// the keys of what signs. It returns the wired CA service.
func Open(ctx context.Context, dir string, passphrase []byte, clk clock.Clock) (*Installation, error) {
	cfg, err := config.LoadServer(dir)
	if err != nil {
		return nil, err
	}
	if len(passphrase) == 0 {
		return nil, errors.New("cadir: no passphrase: set CERTGATE_PASSPHRASE or --passphrase-file")
	}
	st, err := store.Open(ctx, cfg.StoreURL())
	if err != nil {
		return nil, fmt.Errorf("cadir: open store: %w", err)
	}
	keys := &cakey.Source{Dir: cfg.Dir(), Passphrase: passphrase}
	in := &Installation{Config: cfg, Store: st, Keys: keys, Hierarchy: hierarchyOptions(cfg, keys, clk)}
	fail := func(err error) (*Installation, error) {
		in.Close()
		return nil, err
	}
	rows, err := st.ListCAs(ctx)
	if err != nil {
		return fail(fmt.Errorf("cadir: %w", err))
	}
	if len(rows) == 0 {
		if rows, err = adopt(ctx, cfg, st, clk); err != nil {
			return fail(err)
		}
	}
	h, err := ca.BuildHierarchy(ctx, rows, in.Hierarchy)
	if err != nil {
		return fail(passphraseError(err))
	}
	if in.Authority, err = newService(cfg, h, st, clk); err != nil {
		return fail(err)
	}
	if in.AuditSigner, err = openAuditKey(ctx, cfg, st, passphrase, clk); err != nil {
		return fail(err)
	}
	in.Authority.OnStale(func(ctx context.Context) error { _, err := in.Reload(ctx); return err })
	return in, nil
}

// openAuditKey loads the audit key, making it for an installation made
// before audit keys (recorded in the audit log: audit.key, by "upgrade").
// A key the log does not record as its newest is refused: a replica with
// its own copy of the directory would otherwise make a key of its own at
// an upgrade, and sign checkpoints no witness of the others accepts.
func openAuditKey(ctx context.Context, cfg *config.Server, st store.Store, passphrase []byte, clk clock.Clock) (*checkpoint.Signer, error) {
	keyPath := cfg.Path(cfg.Audit.Key)
	rec, recorded, err := st.LastAudit(ctx, audit.ActionAuditKey)
	if err != nil {
		return nil, fmt.Errorf("cadir: %w", err)
	}
	var want struct {
		PublicKey string `json:"public_key"`
	}
	if recorded {
		if err := json.Unmarshal([]byte(rec.Detail), &want); err != nil {
			return nil, fmt.Errorf("cadir: audit record %d (audit.key): %w", rec.Seq, err)
		}
		if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cadir: %s does not exist, but the audit log records an audit key (record %d, made by %s): copy ca/audit.key and ca/audit.pub.pem from the certgate directory that made it", keyPath, rec.Seq, rec.Actor)
		}
	}
	key, created, err := auditsign.EnsureKey(keyPath, cfg.Path(cfg.Audit.PublicKey), passphrase)
	if errors.Is(err, pemutil.ErrWrongPassphrase) {
		return nil, fmt.Errorf("cadir: %s: wrong passphrase", keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("cadir: %w", err)
	}
	pub := string(checkpoint.MarshalPublicKey(key.Public().(ed25519.PublicKey)))
	if recorded && pub != want.PublicKey {
		return nil, fmt.Errorf("cadir: %s is not the audit key the audit log records (record %d): copy ca/audit.key and ca/audit.pub.pem from the certgate directory that made it", keyPath, rec.Seq)
	}
	if created {
		if _, err := st.AppendAudit(ctx, auditKeyEntry(cfg, key, clk.Now(), "upgrade")); err != nil {
			return nil, fmt.Errorf("cadir: record the new audit key: %w", err)
		}
	}
	s, err := checkpoint.NewSigner(cfg.CheckpointName(), key)
	if err != nil {
		return nil, fmt.Errorf("cadir: audit.name: %w", err)
	}
	return s, nil
}

// auditKeyEntry records the audit key's public half, so the log itself
// says which key signs its checkpoints from then on.
func auditKeyEntry(cfg *config.Server, key crypto.Signer, now time.Time, why string) audit.Entry {
	pub := checkpoint.MarshalPublicKey(key.Public().(ed25519.PublicKey))
	d, _ := json.Marshal(map[string]string{"public_key": string(pub), "made_by": why, "file": cfg.Audit.Key})
	return audit.Entry{Time: now, Actor: "system", Action: audit.ActionAuditKey, Subject: cfg.CheckpointName(), Detail: string(d)}
}

// passphraseError says which key file a wrong passphrase failed on, in
// certgate's words.
func passphraseError(err error) error {
	var pe *cakey.PassphraseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, pemutil.ErrWrongPassphrase) {
			return fmt.Errorf("cadir: %s: wrong passphrase", pe.What)
		}
		return fmt.Errorf("cadir: %s: %w", pe.What, pe.Err)
	}
	return err
}

// adopt records the CA of an installation made before the store recorded
// CA certificates: the root and intermediate files of the config become
// generation 1, active, and every certificate and revocation recorded
// without an issuer gets the intermediate's key ID. Another server
// adopting at the same time is fine: the loser reads what the winner
// wrote.
func adopt(ctx context.Context, cfg *config.Server, st store.Store, clk clock.Clock) ([]store.CACert, error) {
	root, err := readCert(cfg.Path(cfg.CA.RootCert))
	if err != nil {
		return nil, err
	}
	inter, err := readCert(cfg.Path(cfg.CA.IntermediateCert))
	if err != nil {
		return nil, err
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("cadir: intermediate is not signed by the root: %w", err)
	}
	keyURI := func(v string) string {
		if strings.HasPrefix(v, cakey.SchemePKCS11) {
			return v
		}
		return cakey.SchemeFile + v
	}
	now := clk.Now()
	rows := []store.CACert{
		caRow(store.CAKindRoot, 1, root, root, keyURI(cfg.CA.RootKey), now),
		caRow(store.CAKindIntermediate, 1, inter, root, keyURI(cfg.CA.IntermediateKey), now),
	}
	_, err = st.ApplyCAChange(ctx, store.CAChange{Insert: rows, BackfillIssuer: ca.KeyID(inter), Now: now, Audit: []audit.Entry{{
		Time: now, Actor: "system", Action: audit.ActionCAAdopt, Subject: cfg.TrustDomain,
		Detail: fmt.Sprintf(`{"root":%q,"intermediate":%q}`, ca.Fingerprint(root), ca.Fingerprint(inter)),
	}}})
	if errors.Is(err, store.ErrConflict) {
		return st.ListCAs(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("cadir: %w", err)
	}
	return rows, nil
}

// caRow is the store record of a CA certificate made now.
func caRow(kind string, gen int, cert, parent *x509.Certificate, keyURI string, now time.Time) store.CACert {
	kt, _ := keytype.Of(cert.PublicKey)
	return store.CACert{
		Fingerprint: ca.Fingerprint(cert), Kind: kind, KeyID: ca.KeyID(cert), IssuerKeyID: ca.KeyID(parent), Generation: gen,
		State: store.CAActive, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, KeyType: string(kt), KeyURI: keyURI,
		CreatedAt: now, UpdatedAt: now, DER: cert.Raw,
	}
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

// urlsOf is where the CA's status and certificates are published: under
// server.status_url when set (the plain-HTTP status listener), else the
// API's own URL (package certstatus serves them, package server the
// HTTP).
func urlsOf(cfg *config.Server) ca.URLs {
	base := strings.TrimSuffix(cfg.Listen.URL, "/")
	if cfg.Listen.StatusURL != "" {
		base = strings.TrimSuffix(cfg.Listen.StatusURL, "/")
	}
	return ca.URLs{Base: base}
}

func hierarchyOptions(cfg *config.Server, keys *cakey.Source, clk clock.Clock) ca.HierarchyOptions {
	return ca.HierarchyOptions{TrustDomain: cfg.TrustDomain, URLs: urlsOf(cfg), Keys: keys, Clock: clk}
}

func newService(cfg *config.Server, h *ca.Hierarchy, st store.Store, clk clock.Clock) (*ca.Service, error) {
	client := ca.ClientProfile
	client.Lifetime = cfg.Profiles.ClientLifetime
	return ca.NewService(ca.ServiceOptions{
		Hierarchy: h, Store: st, Clock: clk,
		ServerURL: cfg.Listen.URL, TokenTTL: cfg.Tokens.DefaultTTL, MaxTokenTTL: cfg.Tokens.MaxTTL,
		MaxPrivilegedTokenTTL: cfg.Tokens.MaxPrivilegedTTL, Client: client,
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
