// Package redisstore is the [session.Store] for several stepup replicas
// sharing state, on Redis through go-redis's UniversalClient: one node,
// Sentinel (MasterName set) or Cluster (several addresses, or Cluster set),
// all from one [Options].
//
// # Keys
//
// With the default prefix "stepup:":
//
//	stepup:k:<key>                  plain keys (Get, Put, Consume, Incr, …)
//	stepup:u:{<user>}:<kind>:<id>   per-user records
//	stepup:u:{<user>}:idx           set of "<kind>:<id>" of the user's records
//
// The user is escaped ("%", "{", "}", ":" as %XX) and sits in a hash tag,
// so that all keys of one user land in one Cluster slot and the scripts and
// transactions over them are legal in a Cluster.
//
// # Atomicity and expiry
//
// Expiry is Redis's own (PX). Consume is GETDEL (Redis 6.2 or later). Incr
// is INCR plus PEXPIRE on creation, and PutUser and UpdateUser write the
// record and its index entry, in Lua scripts. The index set lives as long
// as the user's longest record; ListUser drops entries whose record has
// expired. DeleteUser deletes the records it found and removes exactly
// those index entries, so a record written concurrently is never orphaned.
//
// # Local cache
//
// With Options.CacheTTL set, GetUser keeps what it read in a local cache
// for that long (at most [MaxCacheTTL]), so that the per-request checks of
// remember-browser and MFA-session cookies do not each cost a round trip.
// Only records that exist are cached (a missing record always asks Redis),
// never beyond their expiry in Redis (GET and PTTL are read together), in
// at most Options.CacheSize entries; callers get copies.
//
// Several replicas may share the Redis: every write that changes or removes
// per-user records (PutUser, UpdateUser, DeleteUser, and a DeleteUser that
// failed, as it may have deleted) drops the records from the local cache
// at once and then publishes the selector on the channel
// "<prefix>invalidate" (PUBLISH, so any mode, Cluster included), whether or
// not the writing store caches itself (the CLI revokes through a store of
// its own). Every caching store subscribes to the channel, on its first
// GetUser, and drops what a message names. The cache is used only while
// that subscription is confirmed: when it fails (a lost connection, an
// unanswered PING), the cache is cleared and bypassed until a new
// subscription is confirmed, and a read racing with an invalidation or a
// reconnection is never inserted. A revocation therefore reaches the other
// replicas within the pub/sub delivery time, and even an invalidation lost
// in transit never keeps a record alive for longer than CacheTTL.
//
// # Failures
//
// Every error other than a missing key is wrapped with
// [session.ErrStoreUnavailable], and the store never answers from Redis
// what it did not read there. go-redis reconnects by itself, so a store
// outlives a Redis restart.
//
// A call may use Options.Timeout, and, when its context has a deadline
// (a Check's carries Envoy's), at most Options.DeadlineFraction of the
// time left before it, so that a fail-closed answer still reaches the
// caller in time. Commands are not retried (a retry would only spend the
// caller's time); in Cluster mode go-redis still follows MOVED and ASK
// redirections within that budget.
//
// A circuit breaker answers for Redis while it is down: after
// Options.BreakerFailures consecutive calls failed (no answer, a refused
// connection, or a reply saying the node cannot serve, such as LOADING or
// READONLY), every call fails at once with [ErrCircuitOpen] for
// Options.BreakerCooldown; then one call probes Redis while the others
// keep failing at once, and the breaker closes on the first answer. Ping
// always asks Redis, and its answer closes the breaker too. A call whose
// caller gave up first counts neither way. In a Cluster each master has
// its own breaker (one master down fails only its slots), and a failed
// call makes go-redis reload the slot map, so that the store follows a
// replica promoted in a failover within a second or so, rather than when
// go-redis's periodic reload comes round.
package redisstore

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stepup-dev/stepup/session"
)

// Defaults for the zero values of Options, and bounds.
const (
	DefaultKeyPrefix = "stepup:"
	DefaultTimeout   = time.Second
	// DefaultDeadlineFraction is the share of the time left before the
	// caller's deadline that one call may use, when Options.DeadlineFraction
	// is 0.
	DefaultDeadlineFraction = 0.5
	// DefaultBreakerFailures is the number of consecutive failures that
	// open the circuit breaker, when Options.BreakerFailures is 0.
	DefaultBreakerFailures = 3
	// DefaultBreakerCooldown is how long the breaker stays open before a
	// call probes Redis again, when Options.BreakerCooldown is 0.
	DefaultBreakerCooldown = 500 * time.Millisecond
	// DefaultCacheTTL is the cache TTL stepup's configuration defaults to
	// (Options.CacheTTL itself defaults to no cache).
	DefaultCacheTTL = 2 * time.Second
	// MaxCacheTTL bounds Options.CacheTTL: the longest a record may outlive
	// its revocation when an invalidation is lost.
	MaxCacheTTL = 10 * time.Second
	// DefaultCacheSize is the number of cached records when
	// Options.CacheSize is 0.
	DefaultCacheSize = 1 << 15
)

// Options configures New.
type Options struct {
	// Addrs lists "host:port" addresses: one node; or several Cluster
	// nodes; or, with MasterName, the Sentinels. Required.
	Addrs []string
	// MasterName selects Sentinel mode: the name of the monitored master.
	// It takes precedence over Cluster.
	MasterName string
	// Cluster selects Cluster mode even with a single address (a cluster
	// configuration endpoint, say).
	Cluster bool
	// Username and Password authenticate to Redis (ACL or requirepass).
	Username, Password string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels.
	SentinelUsername, SentinelPassword string
	// DB selects the database; single node and Sentinel only.
	DB int
	// TLS enables TLS with this configuration.
	TLS *tls.Config
	// PoolSize is the connection pool size per node; 0 means go-redis's
	// default (10 per CPU).
	PoolSize int

	// KeyPrefix starts every key (default "stepup:"), so that several
	// deployments can share a Redis.
	KeyPrefix string
	// Timeout bounds every call (default 1 s).
	Timeout time.Duration
	// DeadlineFraction is the share, in (0, 1], of the time left before
	// the caller's deadline that one call may use, when that is shorter
	// than Timeout (default DefaultDeadlineFraction). The rest is the
	// caller's to answer with.
	DeadlineFraction float64
	// BreakerFailures is the number of consecutive failed calls that open
	// the circuit breaker (default DefaultBreakerFailures); negative turns
	// the breaker off.
	BreakerFailures int
	// BreakerCooldown is how long the open breaker fails calls at once
	// before one call probes Redis (default DefaultBreakerCooldown).
	BreakerCooldown time.Duration
	// Now returns the current time, used only to turn TTLs into expiry
	// times in ListUser; nil means time.Now.
	Now func() time.Time

	// CacheTTL enables the local cache of per-user records (see "Local
	// cache" above) and sets how long an entry lives: 0 (the default)
	// means no cache, at most MaxCacheTTL.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached records (default
	// DefaultCacheSize).
	CacheSize int
	// Logger receives the cache's state changes (never keys or values);
	// nil means slog.Default().
	Logger *slog.Logger
}

// Store is a session.Store on Redis. Use New or NewWithClient.
type Store struct {
	c        redis.UniversalClient
	prefix   string
	timeout  time.Duration
	fraction float64
	breaker  *breaker             // the one breaker, or the fallback in a Cluster
	cluster  *redis.ClusterClient // s.c in Cluster mode, else nil
	breakers sync.Map             // master address → *breaker, in a Cluster
	now      func() time.Time
	log      *slog.Logger
	channel  string // invalidation channel
	sender   string // random id in this store's invalidation messages

	cache     *cache // nil without a cache
	startOnce sync.Once
	subCtx    context.Context
	subCancel context.CancelFunc
	subMu     sync.Mutex
	closing   bool
	ps        *redis.PubSub // the current subscription, for Close
	subDone   chan struct{} // closed when the subscription goroutine ends
	received  atomic.Int64  // invalidation messages received (tests)

	closeOnce sync.Once
}

var _ session.Store = (*Store)(nil)

// New builds the client described by opts and returns the store. It does
// not connect: call Ping to check the connection.
func New(opts Options) (*Store, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis store: no addresses")
	}
	timeout := cmp.Or(opts.Timeout, DefaultTimeout)
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 opts.Addrs,
		MasterName:            opts.MasterName,
		IsClusterMode:         opts.Cluster,
		Username:              opts.Username,
		Password:              opts.Password,
		SentinelUsername:      opts.SentinelUsername,
		SentinelPassword:      opts.SentinelPassword,
		DB:                    opts.DB,
		TLSConfig:             opts.TLS,
		PoolSize:              opts.PoolSize,
		DialTimeout:           timeout,
		DialerRetries:         1,  // fail fast when Redis is down
		MaxRetries:            -1, // no retries: each call has its caller's budget
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		ClientName:            "stepup",
	})
	s, err := NewWithClient(c, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// NewWithClient returns a store on an existing client; only KeyPrefix,
// Timeout, DeadlineFraction, the Breaker settings, Now, CacheTTL,
// CacheSize and Logger of opts are used. The store owns the client: Close
// closes it.
func NewWithClient(c redis.UniversalClient, opts Options) (*Store, error) {
	if c == nil {
		return nil, errors.New("redis store: nil client")
	}
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redis store: key prefix %q must not contain braces (they would change the hash slot)", prefix)
	}
	if opts.CacheTTL < 0 || opts.CacheTTL > MaxCacheTTL {
		return nil, fmt.Errorf("redis store: cache TTL %v must be between 0 (no cache) and %v", opts.CacheTTL, MaxCacheTTL)
	}
	if opts.CacheSize < 0 {
		return nil, fmt.Errorf("redis store: negative cache size %d", opts.CacheSize)
	}
	if opts.DeadlineFraction < 0 || opts.DeadlineFraction > 1 {
		return nil, fmt.Errorf("redis store: deadline fraction %v must be in (0, 1] (0 for the default)", opts.DeadlineFraction)
	}
	if opts.BreakerCooldown < 0 {
		return nil, fmt.Errorf("redis store: negative breaker cooldown %v", opts.BreakerCooldown)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	threshold := cmp.Or(opts.BreakerFailures, DefaultBreakerFailures)
	if threshold < 0 {
		threshold = 0
	}
	s := &Store{
		c: c, prefix: prefix, timeout: cmp.Or(opts.Timeout, DefaultTimeout),
		fraction: cmp.Or(opts.DeadlineFraction, DefaultDeadlineFraction),
		breaker:  &breaker{threshold: threshold, cooldown: cmp.Or(opts.BreakerCooldown, DefaultBreakerCooldown), log: log},
		now:      now, log: log, channel: invalidationChannel(prefix), sender: newSenderID(),
	}
	s.cluster, _ = c.(*redis.ClusterClient)
	if opts.CacheTTL > 0 {
		s.cache = newCache(opts.CacheTTL, cmp.Or(opts.CacheSize, DefaultCacheSize))
		s.subCtx, s.subCancel = context.WithCancel(context.Background())
	}
	return s, nil
}

// Client returns the underlying client, for health checks and metrics.
func (s *Store) Client() redis.UniversalClient { return s.c }

// budget returns how long a call under ctx may take: the store's timeout,
// or less when ctx's deadline is near.
func (s *Store) budget(ctx context.Context) time.Duration {
	d := s.timeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Duration(float64(time.Until(dl))*s.fraction))
	}
	return d
}

// begin starts a call named op on key (any key of the call: they share a
// slot) under ctx: it returns the call's context, bounded by its budget,
// and end, which releases it and reports the call's error to the breaker.
// With the breaker open it returns an error instead, at once.
func (s *Store) begin(ctx context.Context, op, key string) (context.Context, func(error), error) {
	cctx, cancel := context.WithTimeout(ctx, s.budget(ctx))
	b := s.breakerFor(cctx, key)
	ok, probe := b.allow()
	if !ok {
		cancel()
		return nil, nil, unavailable(op, ErrCircuitOpen)
	}
	return cctx, func(err error) {
		cancel()
		o := classify(ctx, err)
		b.done(probe, o)
		if o == failed && s.cluster != nil {
			// go-redis learns of a failover from MOVED replies, which a
			// dead master never sends, or else only every minute: ask for
			// the slot map now (in the background, once however many ask).
			s.cluster.ReloadState(ctx)
		}
	}, nil
}

// breakerFor returns the breaker of the master that serves key: in a
// Cluster each master has its own, so that one master down does not fail
// the slots of the others; otherwise (and while the Cluster's slot map is
// unknown) the store's one breaker.
func (s *Store) breakerFor(ctx context.Context, key string) *breaker {
	if s.cluster == nil {
		return s.breaker
	}
	c, err := s.cluster.MasterForKey(ctx, key)
	if err != nil {
		return s.breaker
	}
	addr := c.Options().Addr
	if b, ok := s.breakers.Load(addr); ok {
		return b.(*breaker)
	}
	b, _ := s.breakers.LoadOrStore(addr, &breaker{
		threshold: s.breaker.threshold, cooldown: s.breaker.cooldown, log: s.log.With("node", addr),
	})
	return b.(*breaker)
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: redis %s: %w", session.ErrStoreUnavailable, op, err)
}

var userEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D", ":", "%3A")

func (s *Store) plainKey(key string) string { return s.prefix + "k:" + key }

func (s *Store) userBase(user string) string {
	return s.prefix + "u:{" + userEscaper.Replace(user) + "}:"
}

func (s *Store) recordKey(user, kind, id string) string { return s.userBase(user) + kind + ":" + id }

func (s *Store) indexKey(user string) string { return s.userBase(user) + "idx" }

func member(kind, id string) string { return kind + ":" + id }

func ms(d time.Duration) int64 { return max(int64(d/time.Millisecond), 1) }

// Get implements session.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := session.ValidateKey(key); err != nil {
		return nil, err
	}
	ctx, end, err := s.begin(ctx, "get", s.plainKey(key))
	if err != nil {
		return nil, err
	}
	v, err := s.c.Get(ctx, s.plainKey(key)).Bytes()
	end(err)
	if errors.Is(err, redis.Nil) {
		return nil, session.ErrNotFound
	} else if err != nil {
		return nil, unavailable("get", err)
	}
	return v, nil
}

// Put implements session.Store.
func (s *Store) Put(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := session.ValidateKeyTTL(key, ttl); err != nil {
		return err
	}
	ctx, end, err := s.begin(ctx, "set", s.plainKey(key))
	if err != nil {
		return err
	}
	err = s.c.Set(ctx, s.plainKey(key), val, time.Duration(ms(ttl))*time.Millisecond).Err()
	end(err)
	if err != nil {
		return unavailable("set", err)
	}
	return nil
}

// PutIfAbsent implements session.Store.
func (s *Store) PutIfAbsent(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := session.ValidateKeyTTL(key, ttl); err != nil {
		return false, err
	}
	ctx, end, err := s.begin(ctx, "set nx", s.plainKey(key))
	if err != nil {
		return false, err
	}
	err = s.c.SetArgs(ctx, s.plainKey(key), val, redis.SetArgs{Mode: "NX", TTL: time.Duration(ms(ttl)) * time.Millisecond}).Err()
	end(err)
	if errors.Is(err, redis.Nil) {
		return false, nil
	} else if err != nil {
		return false, unavailable("set nx", err)
	}
	return true, nil
}

// Consume implements session.Store with GETDEL.
func (s *Store) Consume(ctx context.Context, key string) ([]byte, error) {
	if err := session.ValidateKey(key); err != nil {
		return nil, err
	}
	ctx, end, err := s.begin(ctx, "getdel", s.plainKey(key))
	if err != nil {
		return nil, err
	}
	v, err := s.c.GetDel(ctx, s.plainKey(key)).Bytes()
	end(err)
	if errors.Is(err, redis.Nil) {
		return nil, session.ErrNotFound
	} else if err != nil {
		return nil, unavailable("getdel", err)
	}
	return v, nil
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := session.ValidateKey(key); err != nil {
		return err
	}
	ctx, end, err := s.begin(ctx, "del", s.plainKey(key))
	if err != nil {
		return err
	}
	err = s.c.Del(ctx, s.plainKey(key)).Err()
	end(err)
	if err != nil {
		return unavailable("del", err)
	}
	return nil
}

// Incr implements session.Store.
func (s *Store) Incr(ctx context.Context, key string, window time.Duration) (int64, error) {
	if err := session.ValidateKeyTTL(key, window); err != nil {
		return 0, err
	}
	ctx, end, err := s.begin(ctx, "incr", s.plainKey(key))
	if err != nil {
		return 0, err
	}
	n, err := incrScript.Run(ctx, s.c, []string{s.plainKey(key)}, ms(window)).Int64()
	end(err)
	if err != nil {
		return 0, unavailable("incr", err)
	}
	return n, nil
}

// Decr implements session.Store.
func (s *Store) Decr(ctx context.Context, key string) (int64, error) {
	if err := session.ValidateKey(key); err != nil {
		return 0, err
	}
	ctx, end, err := s.begin(ctx, "decr", s.plainKey(key))
	if err != nil {
		return 0, err
	}
	n, err := decrScript.Run(ctx, s.c, []string{s.plainKey(key)}).Int64()
	end(err)
	if err != nil {
		return 0, unavailable("decr", err)
	}
	return n, nil
}

// Ping implements session.Store.
func (s *Store) Ping(ctx context.Context) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, s.budget(ctx))
	defer cancel()
	err := s.c.Ping(ctx).Err()
	if o := classify(parent, err); o == succeeded {
		// An answer closes the breaker, open or not.
		s.breaker.done(true, o)
	}
	if err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// dropLocal drops records from the local cache only: after a write that
// failed but may have reached Redis (the other replicas' copies run out
// with their TTL), or one that found the records already gone.
func (s *Store) dropLocal(user, kind, id string) {
	if s.cache != nil {
		s.cache.invalidate(user, kind, id)
	}
}

// Close stops the invalidation subscription, empties the cache and closes
// the client.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.cache != nil {
			s.subCancel()
			s.subMu.Lock()
			s.closing = true
			ps, done := s.ps, s.subDone
			s.subMu.Unlock()
			if ps != nil {
				_ = ps.Close() // unblocks the goroutine's read
			}
			if done != nil {
				<-done
			}
			s.cache.deactivate()
		}
		if e := s.c.Close(); e != nil {
			err = fmt.Errorf("close redis store: %w", e)
		}
	})
	return err
}
