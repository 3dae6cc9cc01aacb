// Package boltstore is the embedded [session.Store], the default backend of
// a single stepup node: a go.etcd.io/bbolt file that survives restarts.
//
// # Layout
//
// Two buckets: "kv" holds plain keys, "users" holds per-user records under
// user NUL kind NUL id (users, kinds and ids cannot contain NUL, so the
// encoding is unambiguous and a user's records are one key range). Every
// value starts with its expiry time (8 bytes, big-endian Unix nanoseconds).
//
// # Expiry
//
// Expired entries are invisible at once. A janitor goroutine, started by
// Open and stopped by Close, deletes them every SweepInterval in small
// write transactions, so writers are never blocked for long.
//
// # Locking
//
// bbolt takes an exclusive lock on the file. Open waits OpenTimeout for it
// and then fails with [ErrLocked], which says that another process (another
// stepup, or the CLI while the server runs) holds the database.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/stepup-dev/stepup/session"
	bolt "go.etcd.io/bbolt"
)

// Defaults for the zero values of Options.
const (
	DefaultOpenTimeout   = time.Second
	DefaultSweepInterval = time.Minute
)

// defaultSweepBatch is the most entries one janitor write transaction
// deletes.
const defaultSweepBatch = 1000

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("database is locked by another process")

var (
	bucketKV    = []byte("kv")
	bucketUsers = []byte("users")
)

// Options configures Open.
type Options struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OpenTimeout is how long Open waits for the file lock (default 1 s).
	OpenTimeout time.Duration
	// SweepInterval is how often the janitor deletes expired entries
	// (default 1 min); negative disables the janitor (call Sweep yourself).
	SweepInterval time.Duration
	// Logger receives janitor failures; nil discards.
	Logger *slog.Logger
}

// Store is a session.Store in a bbolt file. Use Open.
type Store struct {
	db   *bolt.DB
	now  func() time.Time
	log  *slog.Logger
	path string

	sweepBatch int // tests lower it

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ session.Store = (*Store)(nil)

// Open opens or creates the database file at path (mode 0600; the parent
// directory is created with mode 0700 if needed) and starts the janitor.
func Open(path string, opts Options) (*Store, error) {
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = DefaultOpenTimeout
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open session store %s: %w (waited %v; is another stepup running?)", path, ErrLocked, opts.OpenTimeout)
	} else if err != nil {
		return nil, fmt.Errorf("open session store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketKV, bucketUsers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open session store %s: create buckets: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{db: db, now: opts.Now, log: opts.Logger, path: path, sweepBatch: defaultSweepBatch, cancel: cancel}
	if opts.SweepInterval > 0 {
		s.wg.Go(func() { s.janitor(ctx, opts.SweepInterval) })
	}
	return s, nil
}

func (s *Store) janitor(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.LogAttrs(ctx, slog.LevelWarn, "session store sweep failed", slog.String("path", s.path), slog.Any("error", err))
			} else if n > 0 {
				s.log.LogAttrs(ctx, slog.LevelDebug, "session store swept", slog.Int("removed", n))
			}
		}
	}
}

// Sweep deletes every expired entry and returns how many it deleted. The
// janitor calls it; it is exported for tests and tools.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for _, bucket := range [][]byte{bucketKV, bucketUsers} {
		var from []byte // nil: from the first key
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			now := s.now()
			var expired [][]byte
			err := s.db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucket).Cursor()
				k, v := c.First()
				if from != nil {
					k, v = c.Seek(from)
				}
				for ; k != nil && len(expired) < s.sweepBatch; k, v = c.Next() {
					if exp, _, ok := decode(v); !ok || !now.Before(exp) {
						expired = append(expired, bytes.Clone(k))
					}
				}
				from = bytes.Clone(k) // where the next batch starts; nil at the end
				return nil
			})
			if err != nil {
				return total, wrap(err)
			}
			if len(expired) > 0 {
				err = s.db.Update(func(tx *bolt.Tx) error {
					b := tx.Bucket(bucket)
					for _, k := range expired {
						// Re-check: the entry may have been rewritten or
						// deleted since.
						raw := b.Get(k)
						if exp, _, ok := decode(raw); raw == nil || ok && now.Before(exp) {
							continue
						}
						if err := b.Delete(k); err != nil {
							return err
						}
						total++
					}
					return nil
				})
				if err != nil {
					return total, wrap(err)
				}
			}
			if from == nil {
				break
			}
		}
	}
	return total, nil
}

func encode(exp time.Time, val []byte) []byte {
	b := make([]byte, 8, 8+len(val))
	binary.BigEndian.PutUint64(b, uint64(exp.UnixNano()))
	return append(b, val...)
}

// decode splits a stored value; ok is false for a corrupt one, which is
// treated as expired.
func decode(v []byte) (exp time.Time, val []byte, ok bool) {
	if len(v) < 8 {
		return time.Time{}, nil, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), v[8:], true
}

// live returns a copy of the value of an unexpired entry.
func live(v []byte, now time.Time) ([]byte, bool) {
	exp, val, ok := decode(v)
	if !ok || !now.Before(exp) {
		return nil, false
	}
	return append(make([]byte, 0, len(val)), val...), true
}

func wrap(err error) error {
	if err == nil || errors.Is(err, session.ErrNotFound) || errors.Is(err, session.ErrInvalidArgument) || errors.Is(err, errNotCounter) {
		return err
	}
	return fmt.Errorf("%w: bolt: %w", session.ErrStoreUnavailable, err)
}

var errNotCounter = errors.New("value is not a counter")

func userKey(user, kind, id string) []byte {
	k := make([]byte, 0, len(user)+len(kind)+len(id)+2)
	k = append(k, user...)
	k = append(k, 0)
	k = append(k, kind...)
	k = append(k, 0)
	return append(k, id...)
}

// userPrefix is the key prefix of a user's records, or of one kind of them.
func userPrefix(user, kind string) []byte {
	k := append([]byte(user), 0)
	if kind != "" {
		k = append(append(k, kind...), 0)
	}
	return k
}

func splitUserKey(k []byte) (kind, id string) {
	parts := bytes.SplitN(k, []byte{0}, 3)
	if len(parts) != 3 {
		return "", ""
	}
	return string(parts[1]), string(parts[2])
}

// Get implements session.Store.
func (s *Store) Get(_ context.Context, key string) ([]byte, error) {
	if err := session.ValidateKey(key); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v, ok := live(tx.Bucket(bucketKV).Get([]byte(key)), s.now())
		if !ok {
			return session.ErrNotFound
		}
		out = v
		return nil
	})
	return out, wrap(err)
}

// Put implements session.Store.
func (s *Store) Put(_ context.Context, key string, val []byte, ttl time.Duration) error {
	if err := session.ValidateKeyTTL(key, ttl); err != nil {
		return err
	}
	return wrap(s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).Put([]byte(key), encode(s.now().Add(ttl), val))
	}))
}

// PutIfAbsent implements session.Store.
func (s *Store) PutIfAbsent(_ context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := session.ValidateKeyTTL(key, ttl); err != nil {
		return false, err
	}
	stored := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		now := s.now()
		if _, ok := live(b.Get([]byte(key)), now); ok {
			return nil
		}
		stored = true
		return b.Put([]byte(key), encode(now.Add(ttl), val))
	})
	if err != nil {
		return false, wrap(err)
	}
	return stored, nil
}

// Consume implements session.Store.
func (s *Store) Consume(_ context.Context, key string) ([]byte, error) {
	if err := session.ValidateKey(key); err != nil {
		return nil, err
	}
	var (
		out   []byte
		found bool
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		raw := b.Get([]byte(key))
		if raw == nil {
			return nil
		}
		out, found = live(raw, s.now())
		return b.Delete([]byte(key)) // expired or not, it is gone now
	})
	if err != nil {
		return nil, wrap(err)
	}
	if !found {
		return nil, session.ErrNotFound
	}
	return out, nil
}

// Delete implements session.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	if err := session.ValidateKey(key); err != nil {
		return err
	}
	return wrap(s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).Delete([]byte(key))
	}))
}

// Incr implements session.Store.
func (s *Store) Incr(_ context.Context, key string, window time.Duration) (int64, error) {
	if err := session.ValidateKeyTTL(key, window); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		now := s.now()
		exp, val, ok := decode(b.Get([]byte(key)))
		if !ok || !now.Before(exp) {
			n = 1
			return b.Put([]byte(key), encode(now.Add(window), []byte("1")))
		}
		cur, err := strconv.ParseInt(string(val), 10, 64)
		if err != nil {
			return fmt.Errorf("incr %q: %w", key, errNotCounter)
		}
		n = cur + 1
		return b.Put([]byte(key), encode(exp, strconv.AppendInt(nil, n, 10)))
	})
	if err != nil {
		return 0, wrap(err)
	}
	return n, nil
}

// Decr implements session.Store.
func (s *Store) Decr(_ context.Context, key string) (int64, error) {
	if err := session.ValidateKey(key); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		exp, val, ok := decode(b.Get([]byte(key)))
		if !ok || !s.now().Before(exp) {
			n = 0
			return nil
		}
		cur, err := strconv.ParseInt(string(val), 10, 64)
		if err != nil {
			return fmt.Errorf("decr %q: %w", key, errNotCounter)
		}
		if cur <= 0 {
			n = 0
			return nil
		}
		n = cur - 1
		return b.Put([]byte(key), encode(exp, strconv.AppendInt(nil, n, 10)))
	})
	if err != nil {
		return 0, wrap(err)
	}
	return n, nil
}

// PutUser implements session.Store.
func (s *Store) PutUser(_ context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	if err := session.ValidateUserRecordTTL(user, kind, id, ttl); err != nil {
		return err
	}
	return wrap(s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).Put(userKey(user, kind, id), encode(s.now().Add(ttl), val))
	}))
}

// UpdateUser implements session.Store.
func (s *Store) UpdateUser(_ context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	if err := session.ValidateUserRecordTTL(user, kind, id, ttl); err != nil {
		return err
	}
	return wrap(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		k := userKey(user, kind, id)
		now := s.now()
		if _, ok := live(b.Get(k), now); !ok {
			return session.ErrNotFound
		}
		return b.Put(k, encode(now.Add(ttl), val))
	}))
}

// GetUser implements session.Store.
func (s *Store) GetUser(_ context.Context, user, kind, id string) ([]byte, error) {
	if err := session.ValidateUserRecord(user, kind, id); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v, ok := live(tx.Bucket(bucketUsers).Get(userKey(user, kind, id)), s.now())
		if !ok {
			return session.ErrNotFound
		}
		out = v
		return nil
	})
	return out, wrap(err)
}

// ListUser implements session.Store. Records come out in key order, which
// is kind then id.
func (s *Store) ListUser(_ context.Context, user, kind string) ([]session.Record, error) {
	if err := session.ValidateUserSelector(user, kind, ""); err != nil {
		return nil, err
	}
	var out []session.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		now := s.now()
		prefix := userPrefix(user, kind)
		c := tx.Bucket(bucketUsers).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			exp, _, _ := decode(v)
			val, ok := live(v, now)
			if !ok {
				continue
			}
			kd, id := splitUserKey(k)
			out = append(out, session.Record{Kind: kd, ID: id, Value: val, ExpiresAt: exp})
		}
		return nil
	})
	return out, wrap(err)
}

// DeleteUser implements session.Store.
func (s *Store) DeleteUser(_ context.Context, user, kind, id string) (int, error) {
	if err := session.ValidateUserSelector(user, kind, id); err != nil {
		return 0, err
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		now := s.now()
		if id != "" {
			k := userKey(user, kind, id)
			if _, ok := live(b.Get(k), now); ok {
				n++
			}
			return b.Delete(k)
		}
		prefix := userPrefix(user, kind)
		var keys [][]byte
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if _, ok := live(v, now); ok {
				n++
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, wrap(err)
	}
	return n, nil
}

// Ping implements session.Store: it fails once the store is closed.
func (s *Store) Ping(context.Context) error {
	return wrap(s.db.View(func(*bolt.Tx) error { return nil }))
}

// Close stops the janitor and closes the file, releasing its lock.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close session store: %w", err)
		}
	})
	return s.closeErr
}
