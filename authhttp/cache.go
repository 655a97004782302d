package authhttp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// cacheKey is the keyed hash of everything that decides an answer.
type cacheKey [sha256.Size]byte

// cache keeps OK answers for a short time. Its mutex guards entries; it is
// the only owner of the answers it holds (callers get copies).
type cache struct {
	ttl   time.Duration
	max   int
	mac   func() hash.Hash // HMAC-SHA-256 under a random per-process key
	mu    sync.Mutex
	items map[cacheKey]cacheEntry
}

type cacheEntry struct {
	a       Answer
	expires time.Time
}

func newCache(ttl time.Duration, max int) *cache {
	secret := make([]byte, 32)
	rand.Read(secret) // never fails (crypto/rand)
	return &cache{
		ttl:   ttl,
		max:   max,
		mac:   func() hash.Hash { return hmac.New(sha256.New, secret) },
		items: map[cacheKey]cacheEntry{},
	}
}

// key hashes every field of r the service sees except the attempt
// counter: method, user, password or digest, salt, client address and
// host, TLS. Each field is length-prefixed, so no two requests share a key
// by shifting octets between fields.
func (c *cache) key(r *Request) cacheKey {
	m := c.mac()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	field(string(r.Method))
	field(r.User)
	field(r.Pass)
	field(r.Salt)
	field(r.ClientIP.String())
	field(r.ClientHost)
	if r.TLS {
		field("tls")
	} else {
		field("")
	}
	var k cacheKey
	m.Sum(k[:0])
	return k
}

// get returns a copy of the live answer under k.
func (c *cache) get(k cacheKey, now time.Time) (*Answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.items, k)
		return nil, false
	}
	a := e.a
	a.Cached = true
	return &a, true
}

// put keeps a copy of a, an OK answer, under k. When the cache is full it
// drops the expired entries, then, if it is still full, arbitrary ones.
func (c *cache) put(k cacheKey, a *Answer, now time.Time) {
	if !a.OK {
		return // refusals and errors are never cached
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.items) >= c.max {
		for key, e := range c.items {
			if !now.Before(e.expires) {
				delete(c.items, key)
			}
		}
		for key := range c.items {
			if len(c.items) < c.max {
				break
			}
			delete(c.items, key)
		}
	}
	c.items[k] = cacheEntry{a: *a, expires: now.Add(c.ttl)}
}

// len returns the number of entries, for tests.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
