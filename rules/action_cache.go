package rules

import (
	"sync"
	"time"

	"github.com/dop251/goja"
)

// Limits of api.cache, Auth0's: at most 20 entries, keys of at most 64
// bytes, values of at most 4 KB and 8 KB for keys and values together;
// entries live 15 minutes unless set otherwise, at most 24 hours.
const (
	cacheMaxEntries = 20
	cacheMaxKey     = 64
	cacheMaxValue   = 4 << 10
	cacheMaxTotal   = 8 << 10
	cacheDefaultTTL = 15 * time.Minute
	cacheMaxTTL     = 24 * time.Hour
)

// actionCache is api.cache: one per Engine, shared by its Actions (Auth0
// scopes it to the trigger) and its runtimes, in memory only. Like
// Auth0's it holds short-lived data that may be gone on the next run (a
// reload, a restart, or another replica starts empty). Safe for
// concurrent use.
type actionCache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
	size    int
}

type cacheEntry struct {
	value   string
	expires time.Time
}

// get returns the unexpired entry under key.
func (c *actionCache) get(key string, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return cacheEntry{}, false
	}
	if !now.Before(e.expires) {
		c.removeLocked(key)
		return cacheEntry{}, false
	}
	return e, true
}

// set stores value under key until expires, evicting expired entries
// and then the ones expiring soonest to stay within the limits. code is
// "" on success, else why the value was refused.
func (c *actionCache) set(key, value string, expires, now time.Time) (code string) {
	switch {
	case key == "" || len(key) > cacheMaxKey:
		return "INVALID_KEY"
	case len(value) > cacheMaxValue || len(key)+len(value) > cacheMaxTotal:
		return "VALUE_TOO_LARGE"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cacheEntry{}
	}
	c.removeLocked(key)
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			c.removeLocked(k)
		}
	}
	for len(c.entries) >= cacheMaxEntries || c.size+len(key)+len(value) > cacheMaxTotal {
		victim, first := "", true
		var soonest time.Time
		for k, e := range c.entries {
			if first || e.expires.Before(soonest) {
				victim, soonest, first = k, e.expires, false
			}
		}
		c.removeLocked(victim)
	}
	c.entries[key] = cacheEntry{value: value, expires: expires}
	c.size += len(key) + len(value)
	return ""
}

// remove deletes key and reports whether it was there.
func (c *actionCache) remove(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[key]
	c.removeLocked(key)
	return ok
}

func (c *actionCache) removeLocked(key string) {
	if e, ok := c.entries[key]; ok {
		c.size -= len(key) + len(e.value)
		delete(c.entries, key)
	}
}

// cacheRecord is Auth0's cache record: {value, expires_at} (ms since the
// epoch).
func (rt *jsRuntime) cacheRecord(e cacheEntry) goja.Value {
	o := rt.vm.NewObject()
	must(o.Set("value", e.value))
	must(o.Set("expires_at", e.expires.UnixMilli()))
	return o
}

func (rt *jsRuntime) cacheResult(code string, rec goja.Value) goja.Value {
	o := rt.vm.NewObject()
	if code != "" {
		must(o.Set("type", "error"))
		must(o.Set("code", code))
		return o
	}
	must(o.Set("type", "success"))
	if rec != nil {
		must(o.Set("record", rec))
	}
	return o
}

// nativeCacheGet is api.cache.get(key): the record, or undefined.
func (rt *jsRuntime) nativeCacheGet(call goja.FunctionCall) goja.Value {
	e, ok := rt.e.cache.get(call.Argument(0).String(), rt.e.now())
	if !ok {
		return goja.Undefined()
	}
	return rt.cacheRecord(e)
}

// nativeCacheSet is api.cache.set(key, value, {ttl, expires_at}): the
// earlier of the two lifetimes, 15 minutes when neither is given, at
// most 24 hours.
func (rt *jsRuntime) nativeCacheSet(call goja.FunctionCall) goja.Value {
	now := rt.e.now()
	key, value := call.Argument(0).String(), call.Argument(1).String()
	ttl, at := call.Argument(2).ToFloat(), call.Argument(3).ToFloat()
	expires := now.Add(cacheDefaultTTL)
	if ttl > 0 || at > 0 {
		expires = now.Add(cacheMaxTTL)
		if ttl > 0 {
			if t := now.Add(time.Duration(min(ttl, float64(cacheMaxTTL/time.Millisecond))) * time.Millisecond); t.Before(expires) {
				expires = t
			}
		}
		if at > 0 {
			if t := time.UnixMilli(int64(min(at, 1e15))); t.Before(expires) {
				expires = t
			}
		}
	}
	if max := now.Add(cacheMaxTTL); expires.After(max) {
		expires = max
	}
	if code := rt.e.cache.set(key, value, expires, now); code != "" {
		return rt.cacheResult(code, nil)
	}
	return rt.cacheResult("", rt.cacheRecord(cacheEntry{value: value, expires: expires}))
}

// nativeCacheDelete is api.cache.delete(key).
func (rt *jsRuntime) nativeCacheDelete(call goja.FunctionCall) goja.Value {
	rt.e.cache.remove(call.Argument(0).String())
	return rt.cacheResult("", nil)
}
