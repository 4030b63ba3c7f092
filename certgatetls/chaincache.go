package certgatetls

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"
)

// maxCachedChains bounds the verified-chain cache. One entry is about 100
// bytes; when the cache is full it starts over, which costs each client one
// full verification.
const maxCachedChains = 10000

// chainCache remembers chains that verified against a generation of the
// source's bundle, so that a client that connects again (or resumes) costs
// a hash instead of two signature checks. What x509 verification decides
// from the bytes (signatures, extended key usage nesting, name constraints,
// path length) cannot change; what depends on the time is kept as the
// window in which every certificate of the chain is valid, and checked at
// each use.
type chainCache struct {
	mu      sync.Mutex
	gen     uint64
	entries map[[sha256.Size]byte]validity
}

type validity struct{ notBefore, notAfter time.Time }

// verify checks that certs (leaf first, then what the client sent as
// intermediates) chain to c's bundle for client authentication at now.
func (cc *chainCache) verify(certs []*x509.Certificate, c *Credentials, now time.Time) error {
	key := chainKey(certs)
	cc.mu.Lock()
	if cc.gen != c.Generation {
		cc.gen, cc.entries = c.Generation, nil
	}
	v, ok := cc.entries[key]
	cc.mu.Unlock()
	if ok && !now.Before(v.notBefore) && !now.After(v.notAfter) {
		return nil
	}
	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots: c.Roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	v = validity{notBefore: chains[0][0].NotBefore, notAfter: chains[0][0].NotAfter}
	for _, ch := range chains[0][1:] {
		if ch.NotBefore.After(v.notBefore) {
			v.notBefore = ch.NotBefore
		}
		if ch.NotAfter.Before(v.notAfter) {
			v.notAfter = ch.NotAfter
		}
	}
	cc.mu.Lock()
	if cc.gen == c.Generation {
		if cc.entries == nil || len(cc.entries) >= maxCachedChains {
			cc.entries = make(map[[sha256.Size]byte]validity)
		}
		cc.entries[key] = v
	}
	cc.mu.Unlock()
	return nil
}

// chainKey hashes the certificates as sent, each prefixed by its length.
func chainKey(certs []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, c := range certs {
		binary.BigEndian.PutUint64(n[:], uint64(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
