package redisstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stepup-dev/stepup/session"
)

// PutUser implements session.Store.
func (s *Store) PutUser(ctx context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	if err := session.ValidateUserRecordTTL(user, kind, id, ttl); err != nil {
		return err
	}
	ctx, end, err := s.begin(ctx, "put user record", s.indexKey(user))
	if err != nil {
		return err
	}
	keys := []string{s.recordKey(user, kind, id), s.indexKey(user)}
	err = putUserScript.Run(ctx, s.c, keys, val, ms(ttl), member(kind, id)).Err()
	end(err)
	if err != nil {
		s.dropLocal(user, kind, id) // the write may have happened
		return unavailable("put user record", err)
	}
	s.invalidate(ctx, user, kind, id)
	return nil
}

// UpdateUser implements session.Store.
func (s *Store) UpdateUser(ctx context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	if err := session.ValidateUserRecordTTL(user, kind, id, ttl); err != nil {
		return err
	}
	ctx, end, err := s.begin(ctx, "update user record", s.indexKey(user))
	if err != nil {
		return err
	}
	keys := []string{s.recordKey(user, kind, id), s.indexKey(user)}
	n, err := updateUserScript.Run(ctx, s.c, keys, val, ms(ttl), member(kind, id)).Int64()
	end(err)
	if err != nil {
		s.dropLocal(user, kind, id) // the write may have happened
		return unavailable("update user record", err)
	}
	if n == 0 {
		s.dropLocal(user, kind, id) // gone from Redis: nor here
		return session.ErrNotFound
	}
	s.invalidate(ctx, user, kind, id)
	return nil
}

// GetUser implements session.Store. With a cache, it answers from the
// cache when it can, and otherwise caches what Redis answers.
func (s *Store) GetUser(ctx context.Context, user, kind, id string) ([]byte, error) {
	if err := session.ValidateUserRecord(user, kind, id); err != nil {
		return nil, err
	}
	if c := s.cache; c != nil {
		s.startOnce.Do(s.startSubscriber)
		if v, ok := c.get(user, kind, id); ok {
			return v, nil
		}
		if c.active.Load() {
			return s.getUserCaching(ctx, c, user, kind, id)
		}
	}
	ctx, end, err := s.begin(ctx, "get user record", s.indexKey(user))
	if err != nil {
		return nil, err
	}
	v, err := s.c.Get(ctx, s.recordKey(user, kind, id)).Bytes()
	end(err)
	if errors.Is(err, redis.Nil) {
		return nil, session.ErrNotFound
	} else if err != nil {
		return nil, unavailable("get user record", err)
	}
	return v, nil
}

// getUserCaching reads the record and its remaining TTL in one round trip
// and caches the record until the earlier of the cache TTL and its expiry
// in Redis, both counted from before the request was sent.
func (s *Store) getUserCaching(ctx context.Context, c *cache, user, kind, id string) ([]byte, error) {
	gen := c.generation(user)
	start := c.now()
	ctx, end, err := s.begin(ctx, "get user record", s.indexKey(user))
	if err != nil {
		return nil, err
	}
	key := s.recordKey(user, kind, id)
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, key)
		pttl = p.PTTL(ctx, key)
		return nil
	})
	v, err := get.Bytes()
	end(err)
	if errors.Is(err, redis.Nil) {
		return nil, session.ErrNotFound
	} else if err != nil {
		return nil, unavailable("get user record", err)
	}
	life := c.ttl
	switch d, err := pttl.Result(); {
	case err != nil || (d <= 0 && d != -1): // -1: no expiry; else gone meanwhile
		return v, nil
	case d > 0 && d < life:
		life = d
	}
	c.put(user, kind, id, bytes.Clone(v), start.Add(life), gen)
	return v, nil
}

// members returns the user's index entries of kind ("" for all), split.
func (s *Store) members(ctx context.Context, user, kind string) ([][2]string, error) {
	all, err := s.c.SMembers(ctx, s.indexKey(user)).Result()
	if err != nil {
		return nil, unavailable("list user index", err)
	}
	var out [][2]string
	for _, m := range all {
		k, id, ok := strings.Cut(m, ":")
		if !ok || (kind != "" && k != kind) {
			continue
		}
		out = append(out, [2]string{k, id})
	}
	return out, nil
}

// ListUser implements session.Store.
func (s *Store) ListUser(ctx context.Context, user, kind string) ([]session.Record, error) {
	if err := session.ValidateUserSelector(user, kind, ""); err != nil {
		return nil, err
	}
	ctx, end, err := s.begin(ctx, "list user records", s.indexKey(user))
	if err != nil {
		return nil, err
	}
	out, err := s.listUser(ctx, user, kind)
	end(err)
	return out, err
}

func (s *Store) listUser(ctx context.Context, user, kind string) ([]session.Record, error) {
	entries, err := s.members(ctx, user, kind)
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	gets := make([]*redis.StringCmd, len(entries))
	ttls := make([]*redis.DurationCmd, len(entries))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range entries {
			k := s.recordKey(user, m[0], m[1])
			gets[i] = p.Get(ctx, k)
			ttls[i] = p.PTTL(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("list user records", err)
	}
	now := s.now()
	var out []session.Record
	staleKeys := []string{s.indexKey(user)}
	var staleMembers []any
	for i, m := range entries {
		v, err := gets[i].Bytes()
		if errors.Is(err, redis.Nil) {
			staleKeys = append(staleKeys, s.recordKey(user, m[0], m[1]))
			staleMembers = append(staleMembers, member(m[0], m[1]))
			continue
		} else if err != nil {
			return nil, unavailable("list user records", err)
		}
		ttl, err := ttls[i].Result()
		if err != nil {
			return nil, unavailable("list user records", err)
		}
		if ttl <= 0 { // expired between GET and PTTL
			continue
		}
		out = append(out, session.Record{Kind: m[0], ID: m[1], Value: v, ExpiresAt: now.Add(ttl)})
	}
	if len(staleMembers) > 0 {
		// Index hygiene; a failure leaves harmless stale entries for the
		// next time.
		_ = pruneScript.Run(ctx, s.c, staleKeys, staleMembers...).Err()
	}
	slices.SortFunc(out, func(a, b session.Record) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteUser implements session.Store.
func (s *Store) DeleteUser(ctx context.Context, user, kind, id string) (int, error) {
	if err := session.ValidateUserSelector(user, kind, id); err != nil {
		return 0, err
	}
	ctx, end, err := s.begin(ctx, "delete user records", s.indexKey(user))
	if err != nil {
		// Nothing was deleted; the local copies go all the same, as the
		// caller means to revoke them.
		s.dropLocal(user, kind, id)
		return 0, err
	}
	n, err := s.deleteUser(ctx, user, kind, id)
	end(err)
	return n, err
}

func (s *Store) deleteUser(ctx context.Context, user, kind, id string) (int, error) {
	var entries [][2]string
	if id != "" {
		entries = [][2]string{{kind, id}}
	} else {
		var err error
		if entries, err = s.members(ctx, user, kind); err != nil {
			return 0, err
		}
		if len(entries) == 0 {
			s.dropLocal(user, kind, id) // nothing left in Redis: nor here
			return 0, nil
		}
	}
	keys := make([]string, len(entries))
	mems := make([]any, len(entries))
	for i, m := range entries {
		keys[i] = s.recordKey(user, m[0], m[1])
		mems[i] = member(m[0], m[1])
	}
	var del *redis.IntCmd
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, keys...)
		p.SRem(ctx, s.indexKey(user), mems...)
		return nil
	})
	if err != nil {
		// The delete may have happened (a lost reply), and a retry would
		// find nothing to delete: tell the peers now, as for a revocation.
		s.invalidate(ctx, user, kind, id)
		return 0, unavailable("delete user records", err)
	}
	if del.Val() > 0 {
		s.invalidate(ctx, user, kind, id)
	} else {
		s.dropLocal(user, kind, id) // already gone from Redis: nor here
	}
	return int(del.Val()), nil
}
