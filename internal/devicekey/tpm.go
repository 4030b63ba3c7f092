package devicekey

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/tcp"

	"github.com/certgate/certgate/internal/keytype"
)

// TPMScheme starts a URI naming a TPM 2.0 or a key made in one.
const TPMScheme = "tpm:"

// A TPM URI names the TPM and, for a key, the key's two blobs:
//
//	tpm:device=/dev/tpmrm0
//	tpm:simulator=127.0.0.1:2321
//	tpm:device=/dev/tpmrm0;public=BASE64URL;private=BASE64URL
//
// device= is a TPM character device (the kernel's resource manager,
// /dev/tpmrm0, lets several programs share the TPM; /dev/tpm0 is held by
// one at a time). simulator= is a TPM simulator speaking the TCG reference
// simulator's TCP protocol (swtpm socket --tpm2 --server type=tcp): its
// command port, the platform port being the next one.
//
// # Why the key is a blob in key.uri, not a persistent handle
//
// public= is the key's TPM2B_PUBLIC and private= its TPM2B_PRIVATE, as
// TPM2_Create returned them. The private blob is the key's sensitive area
// encrypted and integrity-protected (HMAC) with keys derived from the
// parent's seed; the parent is the owner hierarchy's ECC P-256 storage
// primary made from the TCG's standard SRK template, whose seed never
// leaves the TPM, so only this TPM, with its owner hierarchy not cleared,
// can load the blob, and once loaded the key can sign and nothing else:
// it was made with fixedTPM, fixedParent and sensitiveDataOrigin, so no
// command reads, exports or duplicates it. Copying key.uri to another
// machine copies nothing usable; on this machine it is worth what access
// to the TPM itself is worth, which is why key.uri stays 0600 and is never
// logged. A persistent handle (TPM2_EvictControl) would spend the TPM's
// few persistent slots and write its NV memory twice per renewal (certgate
// renews short-lived certificates often, and TPMs limit NV writes), and a
// crash between making and recording the key would leave a slot taken by
// nothing. A blob takes nothing in the TPM: "deleting" the old key after a
// renewal is replacing key.uri, and a copy kept elsewhere would still load
// on this TPM, for a certificate that has been superseded.
type tpmURI struct {
	device, simulator string
	public, private   []byte
}

func (u tpmURI) where() string {
	if u.device != "" {
		return "device=" + u.device
	}
	return "simulator=" + u.simulator
}

// storeString is the URI of the TPM alone.
func (u tpmURI) storeString() string { return TPMScheme + u.where() }

func (u tpmURI) String() string {
	s := u.storeString()
	if u.public != nil {
		enc := base64.RawURLEncoding
		s += ";public=" + enc.EncodeToString(u.public) + ";private=" + enc.EncodeToString(u.private)
	}
	return s
}

// parseTPM parses a tpm: URI strictly: device or simulator, once, and
// public and private together or not at all.
func parseTPM(s string) (tpmURI, error) {
	var u tpmURI
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), TPMScheme)
	if !ok {
		return u, errors.New("devicekey: bad TPM URI: does not start with tpm:")
	}
	seen := map[string]bool{}
	for _, attr := range strings.Split(rest, ";") {
		k, v, ok := strings.Cut(attr, "=")
		if !ok || v == "" {
			return u, fmt.Errorf("devicekey: bad TPM URI: %q is not NAME=VALUE", attr)
		}
		if seen[k] {
			return u, fmt.Errorf("devicekey: bad TPM URI: %s given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "device":
			if !strings.HasPrefix(v, "/") {
				return u, fmt.Errorf("devicekey: bad TPM URI: device %q is not an absolute path", v)
			}
			u.device = v
		case "simulator":
			host, port, err := net.SplitHostPort(v)
			if err != nil {
				return u, fmt.Errorf("devicekey: bad TPM URI: simulator %q: %w", v, err)
			}
			if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 || p == 65535 {
				return u, fmt.Errorf("devicekey: bad TPM URI: simulator %q: the port must be 1-65534 (the platform port is the next one)", v)
			}
			_ = host
			u.simulator = v
		case "public":
			u.public, err = base64.RawURLEncoding.DecodeString(v)
		case "private":
			u.private, err = base64.RawURLEncoding.DecodeString(v)
		default:
			return u, fmt.Errorf("devicekey: bad TPM URI: unknown attribute %q", k)
		}
		if err != nil {
			return u, fmt.Errorf("devicekey: bad TPM URI: %s is not base64url: %w", k, err)
		}
	}
	switch {
	case u.device != "" && u.simulator != "":
		return u, errors.New("devicekey: bad TPM URI: device and simulator are exclusive")
	case u.device == "" && u.simulator == "":
		return u, errors.New("devicekey: bad TPM URI: name the TPM with device=/dev/tpmrm0 or simulator=HOST:PORT")
	case (u.public == nil) != (u.private == nil):
		return u, errors.New("devicekey: bad TPM URI: public and private go together")
	}
	return u, nil
}

func parseTPMStore(s string) (tpmURI, error) {
	u, err := parseTPM(s)
	if err == nil && u.public != nil {
		return u, fmt.Errorf("devicekey: %s names a key; give the TPM only (a new key is made in it)", u.storeString())
	}
	return u, err
}

func parseTPMKey(s string) (tpmURI, error) {
	u, err := parseTPM(s)
	if err == nil && u.public == nil {
		return u, fmt.Errorf("devicekey: %s names no key (public and private)", u.storeString())
	}
	return u, err
}

// tpmLocks serializes this process's use of each TPM: a simulator serves
// one connection at a time, and a key is loaded and flushed around each
// use, which must not interleave with another's on a TPM without a
// resource manager.
var (
	tpmMu    sync.Mutex
	tpmLocks = map[string]*sync.Mutex{}
)

// withTPM opens u's TPM for one operation and closes it after. Opening per
// operation keeps the TPM free for other programs between uses (/dev/tpm0
// and a simulator serve one at a time); every object f loads is flushed
// before it returns.
func withTPM(u tpmURI, f func(transport.TPM) error) error {
	tpmMu.Lock()
	l, ok := tpmLocks[u.where()]
	if !ok {
		l = new(sync.Mutex)
		tpmLocks[u.where()] = l
	}
	tpmMu.Unlock()
	l.Lock()
	defer l.Unlock()
	var t transport.TPMCloser
	var err error
	if u.device != "" {
		t, err = linuxtpm.Open(u.device)
	} else {
		host, port, _ := net.SplitHostPort(u.simulator)
		p, _ := strconv.Atoi(port)
		t, err = tcp.Open(tcp.Config{CommandAddress: u.simulator, PlatformAddress: net.JoinHostPort(host, strconv.Itoa(p+1))})
	}
	if err != nil {
		return fmt.Errorf("devicekey: TPM %s: %w", u.where(), err)
	}
	done := make(chan error, 1)
	go func() { done <- f(t) }()
	timer := time.NewTimer(TPMTimeout)
	defer timer.Stop()
	select {
	case err = <-done:
		t.Close()
	case <-timer.C:
		// Something that is not a TPM (or a TPM that hangs) would hold a
		// handshake forever. Closing the transport fails whatever f sends
		// next, so it cannot interleave with the next operation.
		t.Close()
		return fmt.Errorf("devicekey: TPM %s: no answer within %v", u.where(), TPMTimeout)
	}
	if err != nil {
		return fmt.Errorf("devicekey: TPM %s: %w", u.where(), err)
	}
	return nil
}

// TPMTimeout bounds one use of a TPM (making a key, or loading it and
// signing): ECC operations take milliseconds to a few hundred on a
// hardware TPM.
var TPMTimeout = time.Minute

// storagePrimary makes (derives again: the same template gives the same
// key for as long as the owner hierarchy is not cleared) the owner
// hierarchy's ECC P-256 storage key, the TCG's standard SRK, with the
// owner hierarchy's empty authorization. The caller flushes it.
func storagePrimary(t transport.TPM) (tpm2.NamedHandle, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t)
	if errors.Is(err, tpm2.TPMRCBadAuth) || errors.Is(err, tpm2.TPMRCAuthFail) {
		return tpm2.NamedHandle{}, fmt.Errorf("the owner hierarchy has an authorization value; certgate makes its storage key with the empty one: %w", err)
	}
	if err != nil {
		return tpm2.NamedHandle{}, fmt.Errorf("making the storage primary key: %w", err)
	}
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, nil
}

func flush(t transport.TPM, h tpm2.TPMHandle) {
	// A failed flush leaves a transient object until the TPM resets (or
	// the resource manager closes our file); nothing else to do.
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(t)
}

// clientKeyTemplate is a client's key: ECC P-256, for signing only, made
// in the TPM (sensitiveDataOrigin), never to leave it (fixedTPM: no
// duplication to another TPM; fixedParent: none to another parent either),
// used with an empty authorization and no dictionary-attack lockout (there
// is no secret to guess: access to the TPM and to key.uri is the control).
// The scheme is left to each signature (ECDSA with the caller's hash).
var clientKeyTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
		CurveID: tpm2.TPMECCNistP256,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
}

// TPMKeyTypeError is a key type certgate does not make in a TPM.
type TPMKeyTypeError struct{ Type keytype.Type }

func (e *TPMKeyTypeError) Error() string {
	return fmt.Sprintf("key type %s cannot be made in a TPM (use ecdsa-p256)", e.Type)
}

func generateTPM(store string, kt keytype.Type) (crypto.Signer, string, error) {
	u, err := parseTPMStore(store)
	if err != nil {
		return nil, "", err
	}
	if kt != keytype.ECDSAP256 {
		return nil, "", fmt.Errorf("devicekey: %w", &TPMKeyTypeError{kt})
	}
	err = withTPM(u, func(t transport.TPM) error {
		parent, err := storagePrimary(t)
		if err != nil {
			return err
		}
		defer flush(t, parent.Handle)
		rsp, err := tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: parent.Handle, Name: parent.Name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     tpm2.New2B(clientKeyTemplate),
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("making the key: %w", err)
		}
		u.public, u.private = rsp.OutPublic.Bytes(), rsp.OutPrivate.Buffer
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	k, err := newTPMKey(u)
	if err != nil {
		return nil, "", err
	}
	return k, u.String(), nil
}

// tpmKey is a key in a TPM: signing loads it under the storage primary,
// signs and flushes both.
type tpmKey struct {
	u   tpmURI
	pub *ecdsa.PublicKey
}

func newTPMKey(u tpmURI) (*tpmKey, error) {
	pub, err := tpmPublic(u.public)
	if err != nil {
		return nil, err
	}
	return &tpmKey{u: u, pub: pub}, nil
}

func tpmPublic(b []byte) (*ecdsa.PublicKey, error) {
	area, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		return nil, fmt.Errorf("devicekey: the key's public area: %w", err)
	}
	pk, err := tpm2.Pub(*area)
	if err != nil {
		return nil, fmt.Errorf("devicekey: the key's public area: %w", err)
	}
	ec, ok := pk.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("devicekey: the key is a %T, not ECDSA", pk)
	}
	return ec, nil
}

func (k *tpmKey) Public() crypto.PublicKey { return k.pub }

// load loads the key under the storage primary and calls f with it.
func (k *tpmKey) load(f func(t transport.TPM, key tpm2.AuthHandle) error) error {
	return withTPM(k.u, func(t transport.TPM) error {
		parent, err := storagePrimary(t)
		if err != nil {
			return err
		}
		defer flush(t, parent.Handle)
		rsp, err := tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: parent.Handle, Name: parent.Name, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    tpm2.TPM2BPrivate{Buffer: k.u.private},
			InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](k.u.public),
		}.Execute(t)
		if errors.Is(err, tpm2.TPMRCIntegrity) {
			return notLoadable{err}
		}
		if err != nil {
			return fmt.Errorf("loading the key: %w", err)
		}
		defer flush(t, rsp.ObjectHandle)
		return f(t, tpm2.AuthHandle{Handle: rsp.ObjectHandle, Name: rsp.Name, Auth: tpm2.PasswordAuth(nil)})
	})
}

// notLoadable is a key blob this TPM refuses to load: the key is not in
// this TPM (errors.Is(err, ErrNotFound)).
type notLoadable struct{ err error }

func (e notLoadable) Error() string {
	return fmt.Sprintf("this TPM cannot load the key: it was made by another TPM, or this TPM's owner hierarchy was cleared since (%v)", e.err)
}

func (e notLoadable) Is(target error) bool { return target == ErrNotFound }

var tpmHashes = map[crypto.Hash]tpm2.TPMAlgID{
	crypto.SHA1: tpm2.TPMAlgSHA1, crypto.SHA256: tpm2.TPMAlgSHA256,
	crypto.SHA384: tpm2.TPMAlgSHA384, crypto.SHA512: tpm2.TPMAlgSHA512,
}

// Sign signs digest with ECDSA inside the TPM and returns the ASN.1
// signature crypto/ecdsa would.
func (k *tpmKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	alg, ok := tpmHashes[h]
	if !ok {
		return nil, fmt.Errorf("devicekey: the TPM key signs SHA-1 or SHA-2 digests, not %v", h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("devicekey: a %v digest is %d bytes, not %d", h, h.Size(), len(digest))
	}
	var r, s *big.Int
	err := k.load(func(t transport.TPM, key tpm2.AuthHandle) error {
		rsp, err := tpm2.Sign{
			KeyHandle: key,
			Digest:    tpm2.TPM2BDigest{Buffer: digest},
			InScheme: tpm2.TPMTSigScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: alg}),
			},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("signing: %w", err)
		}
		sig, err := rsp.Signature.Signature.ECDSA()
		if err != nil {
			return fmt.Errorf("signing: %w", err)
		}
		r, s = new(big.Int).SetBytes(sig.SignatureR.Buffer), new(big.Int).SetBytes(sig.SignatureS.Buffer)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}

func loadTPM(keyURI string) (crypto.Signer, error) {
	u, err := parseTPMKey(keyURI)
	if err != nil {
		return nil, err
	}
	k, err := newTPMKey(u)
	if err != nil {
		return nil, err
	}
	// Loaded once here, so that a key this TPM cannot use is reported when
	// the credentials are read, not at the first handshake.
	if err := k.load(func(transport.TPM, tpm2.AuthHandle) error { return nil }); err != nil {
		return nil, err
	}
	return k, nil
}

// TPMObjectAttributes loads the key keyURI names and returns the object
// attributes the TPM reports for it (TPM2_ReadPublic): what says whether
// it can leave the TPM (fixedTPM, fixedParent) and whether the TPM made it
// (sensitiveDataOrigin).
func TPMObjectAttributes(keyURI string) (tpm2.TPMAObject, error) {
	u, err := parseTPMKey(keyURI)
	if err != nil {
		return tpm2.TPMAObject{}, err
	}
	k, err := newTPMKey(u)
	if err != nil {
		return tpm2.TPMAObject{}, err
	}
	var attrs tpm2.TPMAObject
	err = k.load(func(t transport.TPM, key tpm2.AuthHandle) error {
		rsp, err := tpm2.ReadPublic{ObjectHandle: key.Handle}.Execute(t)
		if err != nil {
			return fmt.Errorf("reading the key's public area: %w", err)
		}
		pub, err := rsp.OutPublic.Contents()
		if err != nil {
			return fmt.Errorf("reading the key's public area: %w", err)
		}
		attrs = pub.ObjectAttributes
		return nil
	})
	return attrs, err
}

// TPMObjects counts the objects the TPM storeURI names holds loaded
// (transient) and persistent, in all: certgate leaves none behind (each
// key is loaded for one use and flushed, and none is made persistent), so
// for a TPM certgate alone uses both are zero between operations.
func TPMObjects(storeURI string) (transient, persistent int, err error) {
	u, err := parseTPM(storeURI)
	if err != nil {
		return 0, 0, err
	}
	u.public, u.private = nil, nil
	err = withTPM(u, func(t transport.TPM) error {
		for _, c := range []struct {
			first uint32
			n     *int
		}{{uint32(tpm2.TPMHTTransient) << 24, &transient}, {uint32(tpm2.TPMHTPersistent) << 24, &persistent}} {
			rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: c.first, PropertyCount: 256}.Execute(t)
			if err != nil {
				return fmt.Errorf("listing handles: %w", err)
			}
			hs, err := rsp.CapabilityData.Data.Handles()
			if err != nil {
				return fmt.Errorf("listing handles: %w", err)
			}
			for _, h := range hs.Handle {
				if uint32(h)>>24 == c.first>>24 {
					*c.n++
				}
			}
		}
		return nil
	})
	return transient, persistent, err
}
