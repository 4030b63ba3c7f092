package gateway

import (
	"bytes"
	"crypto/tls"
	"sync"
)

// certSessionCache is a TLS client session cache for an upstream that
// authenticates the gateway by its certificate. A resumed session carries
// the identity of the certificate it was made with, so after the gateway's
// certificate changes (a renewal, a reload) the sessions made with the old
// one are dropped and the next connection does a full handshake with the
// new one.
type certSessionCache struct {
	own  func() *tls.Certificate
	size int

	mu    sync.Mutex
	leaf  []byte // DER of the certificate the sessions in cache were made with
	cache tls.ClientSessionCache
}

func newCertSessionCache(own func() *tls.Certificate, size int) *certSessionCache {
	return &certSessionCache{own: own, size: size}
}

// current returns the cache for the gateway's current certificate.
func (c *certSessionCache) current() tls.ClientSessionCache {
	leaf := c.own().Certificate[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil || !bytes.Equal(c.leaf, leaf) {
		c.leaf, c.cache = leaf, tls.NewLRUClientSessionCache(c.size)
	}
	return c.cache
}

func (c *certSessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	return c.current().Get(key)
}

func (c *certSessionCache) Put(key string, cs *tls.ClientSessionState) {
	c.current().Put(key, cs)
}
