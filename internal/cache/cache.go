// Package cache is a bounded map from 32-byte digests to values that expire. The sidecar keeps
// verified tokens and decrypted sessions in it, keyed by the SHA-256 of what the client sent, so the
// hot path is a hash and a lookup instead of a signature check or a decryption.
package cache

import (
	"sync"
	"time"
)

// Cache is safe for concurrent use. When full, expired entries are dropped first, then arbitrary
// ones (Go's randomised map order) down to 90%: a flood of distinct valid credentials costs
// re-verification, never unbounded memory.
type Cache[V any] struct {
	mu  sync.RWMutex
	max int
	m   map[[32]byte]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns a cache holding at most max entries.
func New[V any](max int) *Cache[V] {
	return &Cache[V]{max: max, m: make(map[[32]byte]entry[V])}
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

// Put stores v until expires.
func (c *Cache[V]) Put(key [32]byte, v V, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max*9/10 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = entry[V]{v: v, expires: expires}
}

// Len returns the number of entries, expired ones included.
func (c *Cache[V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
