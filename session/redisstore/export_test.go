package redisstore

import "time"

// Hooks for the external tests.

// SetCacheClock replaces the clock of s's cache; call it before using s.
func SetCacheClock(s *Store, now func() time.Time) { s.cache.now = now }

// StartCache starts s's invalidation subscription, as the first GetUser
// does.
func StartCache(s *Store) { s.startOnce.Do(s.startSubscriber) }

// CacheActive reports whether s's cache is in use (its subscription is
// confirmed).
func CacheActive(s *Store) bool { return s.cache != nil && s.cache.active.Load() }

// CacheLen returns the number of entries in s's cache.
func CacheLen(s *Store) int { return s.cache.len() }

// InvalidationChannel returns the channel s publishes on.
func InvalidationChannel(s *Store) string { return s.channel }

// InvalidationsReceived returns how many invalidation messages s's
// subscription has received, its own included.
func InvalidationsReceived(s *Store) int64 { return s.received.Load() }
