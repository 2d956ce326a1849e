// Package cache is a bounded map from 32-byte digests to values that expire. The sidecar keeps
// verified tokens and decrypted sessions in it, keyed by the SHA-256 of what the client sent, so the
// hot path is a hash and a lookup instead of a signature check or a decryption.
package cache

import (
	"sync"
	"time"
)

// Cache is safe for concurrent use. It is bounded by a number of entries and, when built with
// NewBytes, by the sum of the sizes its entries were put with. When a bound would be passed, expired
// entries are dropped first, then arbitrary ones (Go's randomised map order) down to 90%: a flood
// of distinct valid credentials costs re-verification, never unbounded memory.
type Cache[V any] struct {
	mu       sync.RWMutex
	max      int
	maxBytes int // 0: entries only
	bytes    int
	m        map[[32]byte]entry[V]
}

type entry[V any] struct {
	v       V
	size    int
	expires time.Time
}

// New returns a cache holding at most max entries.
func New[V any](max int) *Cache[V] {
	return &Cache[V]{max: max, m: make(map[[32]byte]entry[V])}
}

// NewBytes returns a cache holding at most max entries whose sizes sum to at most maxBytes.
func NewBytes[V any](max, maxBytes int) *Cache[V] {
	return &Cache[V]{max: max, maxBytes: maxBytes, m: make(map[[32]byte]entry[V])}
}

// Get returns the value for key unless it is absent or expired at now.
func (c *Cache[V]) Get(key [32]byte, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || now.After(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put stores v until expires (size 0).
func (c *Cache[V]) Put(key [32]byte, v V, expires, now time.Time) {
	c.PutSized(key, v, 0, expires, now)
}

// PutSized stores v, counting size bytes against the byte bound, until expires. A value larger
// than a tenth of the bound is not cached at all: it would evict a crowd of ordinary ones.
func (c *Cache[V]) PutSized(key [32]byte, v V, size int, expires, now time.Time) {
	if c.maxBytes > 0 && size > c.maxBytes/10 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[key]; ok {
		c.bytes -= old.size
		delete(c.m, key)
	}
	if len(c.m) >= c.max || (c.maxBytes > 0 && c.bytes+size > c.maxBytes) {
		for k, e := range c.m {
			if now.After(e.expires) {
				c.deleteLocked(k, e)
			}
		}
		for k, e := range c.m {
			if len(c.m) < c.max*9/10 && (c.maxBytes == 0 || c.bytes+size <= c.maxBytes*9/10) {
				break
			}
			c.deleteLocked(k, e)
		}
	}
	c.m[key] = entry[V]{v: v, size: size, expires: expires}
	c.bytes += size
}

func (c *Cache[V]) deleteLocked(k [32]byte, e entry[V]) {
	delete(c.m, k)
	c.bytes -= e.size
}

// Delete removes key.
func (c *Cache[V]) Delete(key [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.deleteLocked(key, e)
	}
}

// Len returns the number of entries, expired ones included.
func (c *Cache[V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// Bytes returns the sum of the entries' sizes, expired ones included.
func (c *Cache[V]) Bytes() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bytes
}
