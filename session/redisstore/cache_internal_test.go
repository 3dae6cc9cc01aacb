package redisstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session/storetest"
)

func TestInvalidationEncoding(t *testing.T) {
	for _, sel := range [][3]string{
		{"auth0|alice", "device", "d1"},
		{"a:b}{%", "mfa", ""},
		{"Zoë Ünïcode 用户 with space", "", ""},
		{"x", "k_9", "A-z.0_"},
	} {
		msg := encodeInvalidation("0123abcd", sel[0], sel[1], sel[2])
		sender, user, kind, id, ok := decodeInvalidation(msg)
		if !ok || sender != "0123abcd" || user != sel[0] || kind != sel[1] || id != sel[2] {
			t.Errorf("decode(encode(%q)) = %q, %q, %q, %q, %v", sel, sender, user, kind, id, ok)
		}
	}
	for _, bad := range []string{"", "v1", "v1\nx\nmfa\nid", "v2\nx\nmfa\nid\nuser", "v1\nx\n\nid\nuser", "v1\nx\nmfa\nid\n"} {
		if _, _, _, _, ok := decodeInvalidation(bad); ok {
			t.Errorf("decode(%q) succeeded, want a failure", bad)
		}
	}
}

func TestCacheEntries(t *testing.T) {
	clock := storetest.NewClock(time.Unix(1_700_000_000, 0))
	c := newCache(2*time.Second, 100)
	c.now = clock.Now
	put := func(user, kind, id, val string) {
		c.put(user, kind, id, []byte(val), clock.Now().Add(c.ttl), c.generation(user))
	}
	get := func(user, kind, id string) string {
		v, ok := c.get(user, kind, id)
		if !ok {
			return "<miss>"
		}
		return string(v)
	}

	put("alice", "mfa", "s1", "v")
	if got := get("alice", "mfa", "s1"); got != "<miss>" {
		t.Errorf("inactive cache answered %q", got)
	}
	if n := c.len(); n != 0 {
		t.Errorf("inactive cache took %d entries", n)
	}

	c.activate()
	put("alice", "mfa", "s1", "a-mfa-s1")
	put("alice", "mfa", "s2", "a-mfa-s2")
	put("alice", "device", "d1", "a-dev-d1")
	put("bob", "mfa", "s1", "b-mfa-s1")
	v, _ := c.get("alice", "mfa", "s1")
	copy(v, "XXXX")
	if got := get("alice", "mfa", "s1"); got != "a-mfa-s1" {
		t.Errorf("get after the caller changed its copy = %q", got)
	}

	clock.Advance(time.Second)
	if got := get("bob", "mfa", "s1"); got != "b-mfa-s1" {
		t.Errorf("get within the TTL = %q", got)
	}
	c.invalidate("alice", "mfa", "s1")
	if got := get("alice", "mfa", "s1"); got != "<miss>" {
		t.Errorf("get after invalidating the record = %q", got)
	}
	if got := get("alice", "mfa", "s2"); got != "a-mfa-s2" {
		t.Errorf("invalidating one record dropped another: %q", got)
	}
	c.invalidate("alice", "mfa", "")
	if got := get("alice", "mfa", "s2"); got != "<miss>" {
		t.Errorf("get after invalidating the kind = %q", got)
	}
	if got := get("alice", "device", "d1"); got != "a-dev-d1" {
		t.Errorf("invalidating a kind dropped another kind: %q", got)
	}
	c.invalidate("alice", "", "")
	if got := get("alice", "device", "d1"); got != "<miss>" {
		t.Errorf("get after invalidating the user = %q", got)
	}
	if got := get("bob", "mfa", "s1"); got != "b-mfa-s1" {
		t.Errorf("invalidating alice dropped bob: %q", got)
	}

	clock.Advance(time.Second)
	if got := get("bob", "mfa", "s1"); got != "<miss>" {
		t.Errorf("get at the end of the TTL = %q", got)
	}

	// A read that raced with an invalidation is not inserted.
	gen := c.generation("carol")
	c.invalidate("carol", "mfa", "s1")
	c.put("carol", "mfa", "s1", []byte("stale"), clock.Now().Add(time.Second), gen)
	if got := get("carol", "mfa", "s1"); got != "<miss>" {
		t.Errorf("a read older than an invalidation was cached: %q", got)
	}
	// Nor one that raced with a loss of the subscription.
	gen = c.generation("carol")
	c.deactivate()
	c.activate()
	c.put("carol", "mfa", "s1", []byte("stale"), clock.Now().Add(time.Second), gen)
	if got := get("carol", "mfa", "s1"); got != "<miss>" {
		t.Errorf("a read older than a resubscription was cached: %q", got)
	}

	put("dave", "mfa", "s1", "d")
	c.deactivate()
	if n := c.len(); n != 0 {
		t.Errorf("deactivated cache keeps %d entries", n)
	}
}

func TestCacheSizeBound(t *testing.T) {
	clock := storetest.NewClock(time.Unix(1_700_000_000, 0))
	for _, size := range []int{1, 7, 64, 100, 1000} {
		c := newCache(time.Second, size)
		c.now = clock.Now
		c.activate()
		for i := range 20 * size {
			user := fmt.Sprintf("user%d", i)
			c.put(user, "mfa", "s", []byte("v"), clock.Now().Add(time.Second), c.generation(user))
			if n := c.len(); n > size {
				t.Fatalf("size %d: %d entries after %d puts", size, n, i+1)
			}
		}
		if n := c.len(); n < size/2 {
			t.Errorf("size %d: only %d entries kept", size, n)
		}
	}

	// A full shard makes room by dropping expired entries first.
	c := newCache(time.Second, 8) // one shard of 8
	c.now = clock.Now
	c.activate()
	for i := range 8 {
		c.put("old", "mfa", fmt.Sprint(i), []byte("v"), clock.Now().Add(time.Second), c.generation("old"))
	}
	clock.Advance(2 * time.Second)
	c.put("new", "mfa", "s", []byte("v"), clock.Now().Add(time.Second), c.generation("new"))
	if n := c.len(); n >= 8 {
		t.Errorf("full shard of expired entries: %d entries after an insert, want the expired ones gone", n)
	}
	if _, ok := c.get("new", "mfa", "s"); !ok {
		t.Error("the new entry is missing")
	}
}
