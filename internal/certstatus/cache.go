package certstatus

import (
	"crypto"
	"sync"
	"time"
)

// maxCached bounds the OCSP response cache. A response with the signer's
// certificate is about 1 KiB, so the cache stays under ~32 MiB; past the
// bound, arbitrary entries make room (they are re-signed on demand).
const maxCached = 1 << 15

type cacheKey struct {
	issuer string // key ID
	serial string
	hash   crypto.Hash // the CertID hash algorithm, which the response echoes
}

type cached struct {
	resp      Response
	pos       int64 // event position the status was read at
	refreshAt time.Time
}

// responseCache holds signed responses without a nonce.
type responseCache struct {
	mu  sync.Mutex
	max int
	m   map[cacheKey]cached
}

func (c *responseCache) init(n int) {
	c.max = n
	c.m = make(map[cacheKey]cached)
}

// get returns the entry for k if it is not yet due for re-signing at now.
func (c *responseCache) get(k cacheKey, now time.Time) (cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !now.Before(e.refreshAt) {
		return cached{}, false
	}
	return e, true
}

func (c *responseCache) put(k cacheKey, e cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = e
}

// forget drops every entry of serial under issuer (all hash algorithms).
func (c *responseCache) forget(issuer, serial string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hashOIDs {
		delete(c.m, cacheKey{issuer, serial, h.hash})
	}
}

// forgetIssuer drops every entry of issuer (its signer changed).
func (c *responseCache) forgetIssuer(issuer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.issuer == issuer {
			delete(c.m, k)
		}
	}
}

func (c *responseCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

func (c *responseCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
