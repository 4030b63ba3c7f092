package gateway

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"sync"
	"sync/atomic"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/revocation"
)

// maxCachedLeafInfos bounds the leaf record cache. An entry keeps its
// certificate alive (a parsed P-256 leaf is ~2-3 KiB with the record), so
// at most ~3 MiB however many certificates resume.
const maxCachedLeafInfos = 1024

// leafInfo is what the gateway derives from a client's leaf certificate
// alone: its identity (in the trust's domain), its serial as the
// revocation set spells it, and its SHA-256 fingerprint.
type leafInfo struct {
	id          string
	serial      string
	fingerprint string
}

func newLeafInfo(leaf *x509.Certificate, id identity.ID) *leafInfo {
	sum := sha256.Sum256(leaf.Raw)
	return &leafInfo{id: id.String(), serial: revocation.SerialOf(leaf), fingerprint: hex.EncodeToString(sum[:])}
}

// leafInfos caches the leafInfo of the leaves of resumed handshakes,
// keyed by the *x509.Certificate itself. A resumed session's certificates
// come from crypto/tls's certificate cache, one parsed certificate per
// DER while one is held, so the resumed connections of one client
// certificate hand the gateway the same pointer. Without this, every
// resumed handshake parsed the identity twice (verifyConnection and the
// peer record), formatted the serial twice and hashed the leaf once
// (~1.5% of the gateway's CPU under resumed handshakes, and their
// allocations). Holding the certificate also keeps it in crypto/tls's
// cache, so a client's next resumption does not parse it again. Full
// handshakes do not use it: crypto/tls parses their certificates anew
// each time, so an entry would never be hit and would only keep a
// certificate alive.
//
// Why it is sound: the entry is keyed by the pointer and holds it, so the
// certificate cannot be freed and its address reused while the entry
// lives; a hit is the very object the record was computed from, and a
// parsed certificate is never changed. The record is only what the
// certificate's bytes say; everything that changes with time or state is
// still checked on every handshake, hit or miss: validity of every
// certificate sent (verifyConnection), revocation of the serial and of
// the issuers (verifyConnection, and again when the connection is
// tracked), and expiry while connected (the sweep). The identity is
// cached only when it is in the trust domain; the cache belongs to one
// trust generation (a reload builds a new one, which drops it) and is
// bounded by maxCachedLeafInfos.
type leafInfos struct {
	mu         sync.RWMutex
	m          map[*x509.Certificate]*leafInfo
	max        int // maxCachedLeafInfos; smaller in tests
	hits, miss atomic.Uint64
}

// get returns leaf's record, or the refusal of an identity not in td.
func (c *leafInfos) get(leaf *x509.Certificate, td string) (*leafInfo, *VerifyError) {
	c.mu.RLock()
	li := c.m[leaf]
	c.mu.RUnlock()
	if li != nil {
		c.hits.Add(1)
		return li, nil
	}
	c.miss.Add(1)
	id, err := identity.FromCertificateIn(leaf, td)
	if err != nil {
		return nil, refuse(ReasonBadIdentity, "%w", err)
	}
	li = newLeafInfo(leaf, id)
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[*x509.Certificate]*leafInfo)
	}
	if _, ok := c.m[leaf]; !ok && len(c.m) >= c.max {
		// Full: drop an arbitrary entry (map order), which costs that
		// certificate one computation the next time it comes.
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[leaf] = li
	c.mu.Unlock()
	return li, nil
}

// len is the number of records cached.
func (c *leafInfos) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// leafInfoFor returns the leaf's record for the peer of a connection
// that passed verifyConnection: for a resumed one from rt's cache (where
// verifyConnection put it), for a full handshake computed (its
// certificate is a new object, parsed from the handshake: caching it
// would only keep it alive), and when rt's trust domain refuses the
// identity (a reload between the check and now) computed from the
// certificate alone, as before the cache.
func leafInfoFor(rt *runtime, cs *tls.ConnectionState) *leafInfo {
	leaf := cs.PeerCertificates[0]
	if cs.DidResume {
		if li, err := rt.trust.leafInfos.get(leaf, rt.trust.td); err == nil {
			return li
		}
	}
	id, _ := identity.FromCertificate(leaf)
	return newLeafInfo(leaf, id)
}
