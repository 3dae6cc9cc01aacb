package redisstore

import (
	"bytes"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// cache is the local read cache of per-user records (see the package
// documentation, "Local cache"). It holds only records that exist, each
// until the earlier of its insertion time plus the cache TTL and its expiry
// in Redis. It is sharded by user, so that every record of one user lives
// in one shard and DeleteUser's wildcards are one shard's business.
//
// Every invalidation and every clear bumps the generation of the shards it
// touches. A reader takes the generation of its shard before it reads from
// Redis and inserts what it read only when the generation has not moved
// since: an invalidation that raced with the read (the write happened after
// Redis answered the read, or the subscription dropped meanwhile) always
// wins.
type cache struct {
	ttl      time.Duration
	now      func() time.Time
	seed     maphash.Seed
	shards   []cacheShard
	mask     uint64
	perShard int

	// active says that the invalidation subscription is confirmed: only
	// then are entries read or inserted.
	active atomic.Bool
}

type cacheKey struct{ user, kind, id string }

type cacheEntry struct {
	val     []byte // owned by the cache, never modified
	expires time.Time
}

type cacheShard struct {
	mu  sync.RWMutex
	m   map[cacheKey]cacheEntry
	gen atomic.Uint64 // written under mu
	_   [64]byte      // keeps neighbouring shards' locks off one cache line
}

// maxShards is the number of shards of a large cache; small caches have
// fewer, so that every shard holds at least minPerShard entries.
const (
	maxShards   = 64
	minPerShard = 8
	// evictSample is how many entries a full shard looks at to choose a
	// victim: expired ones go, else the one closest to expiry.
	evictSample = 8
)

// newCache returns an inactive cache of at most size entries (size ≥ 1).
func newCache(ttl time.Duration, size int) *cache {
	n := maxShards
	for n > 1 && size/n < minPerShard {
		n /= 2
	}
	c := &cache{
		ttl:      ttl,
		now:      time.Now,
		seed:     maphash.MakeSeed(),
		shards:   make([]cacheShard, n),
		mask:     uint64(n - 1),
		perShard: max(size/n, 1),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]cacheEntry)
	}
	return c
}

func (c *cache) shard(user string) *cacheShard {
	return &c.shards[maphash.String(c.seed, user)&c.mask]
}

// get returns a copy of the cached value of the record, if the cache is
// active and holds an unexpired entry.
func (c *cache) get(user, kind, id string) ([]byte, bool) {
	if !c.active.Load() {
		return nil, false
	}
	sh := c.shard(user)
	sh.mu.RLock()
	e, ok := sh.m[cacheKey{user, kind, id}]
	sh.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return nil, false
	}
	return bytes.Clone(e.val), true
}

// generation returns the generation of the user's shard, to be passed to
// put after reading from Redis.
func (c *cache) generation(user string) uint64 { return c.shard(user).gen.Load() }

// put caches val (which the cache takes over) until expires, unless the
// cache is inactive or the shard's generation is no longer gen.
func (c *cache) put(user, kind, id string, val []byte, expires time.Time, gen uint64) {
	sh := c.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !c.active.Load() || sh.gen.Load() != gen {
		return
	}
	k := cacheKey{user, kind, id}
	if _, ok := sh.m[k]; !ok {
		if len(sh.m) >= c.perShard {
			sh.evict(c.now())
		}
		// The caller's strings may be slices of something large (a token's
		// payload); the cache keeps its own.
		k = cacheKey{strings.Clone(user), strings.Clone(kind), strings.Clone(id)}
	}
	sh.m[k] = cacheEntry{val: val, expires: expires}
}

// evict makes room for one entry: it drops the expired entries among a
// sample (map iteration starts at a random place), or else the sampled
// entry closest to expiry. Called with sh.mu held.
func (sh *cacheShard) evict(now time.Time) {
	var victim cacheKey
	var victimExp time.Time
	dropped, seen := false, 0
	for k, e := range sh.m {
		if !now.Before(e.expires) {
			delete(sh.m, k)
			dropped = true
		} else if seen == 0 || e.expires.Before(victimExp) {
			victim, victimExp = k, e.expires
		}
		if seen++; seen >= evictSample {
			break
		}
	}
	if !dropped {
		delete(sh.m, victim)
	}
}

// invalidate drops the record (user, kind, id); with id "" every record of
// that kind; with kind "" too every record of the user.
func (c *cache) invalidate(user, kind, id string) {
	sh := c.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen.Add(1)
	if id != "" {
		delete(sh.m, cacheKey{user, kind, id})
		return
	}
	for k := range sh.m {
		if k.user == user && (kind == "" || k.kind == kind) {
			delete(sh.m, k)
		}
	}
}

// clear drops every entry and moves every shard to a new generation.
func (c *cache) clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.gen.Add(1)
		clear(sh.m)
		sh.mu.Unlock()
	}
}

// activate starts using the cache, empty: called once the subscription is
// confirmed, so that nothing read before it (when an invalidation could
// have been missed) is inserted afterwards.
func (c *cache) activate() {
	c.clear()
	c.active.Store(true)
}

// deactivate stops using the cache and empties it.
func (c *cache) deactivate() {
	c.active.Store(false)
	c.clear()
}

// len returns the number of entries, expired ones included.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
