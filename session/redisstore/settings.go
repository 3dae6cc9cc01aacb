package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// An UnsafeSetting is a Redis server setting under which the store can
// lose what it keeps, as [Store.CheckSettings] found it.
type UnsafeSetting struct {
	// Node is the address of the server, or "FailoverClient" for the
	// master a Sentinel client talks to.
	Node string
	// Setting is "persistence" (appendonly and save) or
	// "maxmemory-policy".
	Setting string
	// Value is what the server has, Want what the store needs.
	Value, Want string
	// Risk says what can be lost.
	Risk string
}

// CheckSettings reads the settings the store depends on from every master
// (CONFIG GET) and logs a warning for each unsafe one:
//
//   - persistence: with neither AOF (appendonly yes) nor RDB snapshots (a
//     save policy), a Redis restart loses every MFA session and remembered
//     browser (everyone does MFA again) and every rate-limit counter.
//   - maxmemory-policy other than noeviction: under memory pressure Redis
//     evicts keys, and every key of the store has a TTL, so the volatile-*
//     policies evict them too; an evicted counter resets a rate limit.
//
// It returns what it found unsafe. When the settings cannot be read
// (CONFIG disabled or not permitted, as on many managed services, or
// Redis down) it logs a warning that it could not check and returns the
// error. It logs "checked redis settings" at Info when it is done, either
// way. Replicas are not checked: a replica promoted by a failover must be
// configured like its master.
func (s *Store) CheckSettings(ctx context.Context) ([]UnsafeSetting, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var (
		mu     sync.Mutex
		unsafe []UnsafeSetting
	)
	check := func(ctx context.Context, c redis.Cmdable, node string) error {
		found, err := checkNode(ctx, c, node)
		mu.Lock()
		unsafe = append(unsafe, found...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return check(ctx, c, c.Options().Addr)
		})
	} else {
		node := "redis"
		if c, ok := s.c.(*redis.Client); ok {
			node = c.Options().Addr // "FailoverClient" with Sentinels
		}
		err = check(ctx, s.c, node)
	}
	for _, u := range unsafe {
		s.log.Warn("redis session store: unsafe redis setting",
			"node", u.Node, "setting", u.Setting, "value", u.Value, "want", u.Want, "risk", u.Risk)
	}
	if err != nil {
		s.log.Warn("redis session store: could not check redis settings; make sure Redis persists its data (appendonly yes, or a save policy) and uses maxmemory-policy noeviction",
			"error", err.Error())
	}
	s.log.Info("redis session store: checked redis settings", "unsafe", len(unsafe), "complete", err == nil)
	return unsafe, err
}

// checkNode reads one server's settings.
func checkNode(ctx context.Context, c redis.Cmdable, node string) ([]UnsafeSetting, error) {
	got, err := c.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return nil, fmt.Errorf("config get on %s: %w", node, err)
	}
	more, err := c.ConfigGet(ctx, "save").Result()
	if err != nil {
		return nil, fmt.Errorf("config get on %s: %w", node, err)
	}
	policy, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return nil, fmt.Errorf("config get on %s: %w", node, err)
	}
	aof, aofOK := got["appendonly"]
	save, saveOK := more["save"]
	pol, polOK := policy["maxmemory-policy"]
	if !aofOK || !saveOK || !polOK {
		return nil, errors.New("config get on " + node + ": settings missing from the reply")
	}
	var out []UnsafeSetting
	if !strings.EqualFold(aof, "yes") && strings.TrimSpace(save) == "" {
		out = append(out, UnsafeSetting{
			Node: node, Setting: "persistence", Value: fmt.Sprintf("appendonly %s, save %q", aof, save),
			Want: "appendonly yes (or a save policy)",
			Risk: "a Redis restart loses every MFA session, remembered browser and rate-limit counter",
		})
	}
	if pol != "noeviction" {
		out = append(out, UnsafeSetting{
			Node: node, Setting: "maxmemory-policy", Value: pol, Want: "noeviction",
			Risk: "under memory pressure Redis evicts sessions and rate-limit counters",
		})
	}
	return out, nil
}
