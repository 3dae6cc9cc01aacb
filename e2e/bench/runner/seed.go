package runner

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/memstore"
)

// Bulk seeding for the cost curves: a million users with a remembered
// browser, or a million used-markers of completed step-up states, written
// through the Store API one record at a time would take a bbolt
// transaction, with its fdatasync, each (or a Lua call and a PUBLISH each
// in Redis). The seeders below write the same records in batches, in each
// store's documented layout (session/boltstore and session/redisstore
// package comments): bbolt transactions of seedBatch records with the
// file's sync turned off until the end, and Redis pipelines of the
// commands PutUser's and PutIfAbsent's scripts run. What they write is
// read back through the Store API before anything is measured
// (TestSeedersMatchStores), and the Checks of a curve verify the
// decision on the records of their pool, so a drift of the layouts fails
// loudly.

// seedBatch is the records per bbolt transaction or Redis pipeline.
const seedBatch = 20_000

// seedRecord is one record to seed: a per-user record (user, kind, id)
// or, with user "", a plain key.
type seedRecord struct {
	user, kind, id, key string
	val                 []byte
	exp                 time.Time
}

// seedBolt writes the records into the bbolt file at path (created with
// boltstore.Open, so its buckets exist), sorted by key, seedBatch per
// transaction.
func seedBolt(path string, n int, rec func(i int) seedRecord) error {
	st, err := boltstore.Open(path, boltstore.Options{SweepInterval: -1})
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, NoFreelistSync: false})
	if err != nil {
		return err
	}
	type kv struct {
		bucket string
		k, v   []byte
	}
	all := make([]kv, n)
	for i := range all {
		r := rec(i)
		v := make([]byte, 8, 8+len(r.val))
		binary.BigEndian.PutUint64(v, uint64(r.exp.UnixNano()))
		v = append(v, r.val...)
		if r.user == "" {
			all[i] = kv{"kv", []byte(r.key), v}
		} else {
			all[i] = kv{"users", []byte(r.user + "\x00" + r.kind + "\x00" + r.id), v}
		}
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := strings.Compare(a.bucket, b.bucket); c != 0 {
			return c
		}
		return strings.Compare(string(a.k), string(b.k))
	})
	for start := 0; start < n; start += seedBatch {
		batch := all[start:min(start+seedBatch, n)]
		err := db.Update(func(tx *bolt.Tx) error {
			for _, e := range batch {
				if err := tx.Bucket([]byte(e.bucket)).Put(e.k, e.v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return fmt.Errorf("seed bolt: %w", err)
		}
	}
	if err := db.Sync(); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// redisUserEscaper is redisstore's escaping of a user in its keys.
var redisUserEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D", ":", "%3A")

// seedRedis writes the records into the Redis at addr under redisstore's
// default prefix, seedBatch per pipeline: per-user records as PutUser's
// script does (SET PX, SADD to the user's index, PEXPIRE of the index),
// plain keys as Put does (SET PX).
func seedRedis(ctx context.Context, addr string, n int, rec func(i int) seedRecord) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for start := 0; start < n; start += seedBatch {
		p := c.Pipeline()
		for i := start; i < min(start+seedBatch, n); i++ {
			r := rec(i)
			ttl := time.Until(r.exp)
			if r.user == "" {
				p.Set(ctx, "stepup:k:"+r.key, r.val, ttl)
				continue
			}
			base := "stepup:u:{" + redisUserEscaper.Replace(r.user) + "}:"
			p.Set(ctx, base+r.kind+":"+r.id, r.val, ttl)
			p.SAdd(ctx, base+"idx", r.kind+":"+r.id)
			p.PExpire(ctx, base+"idx", ttl)
		}
		if _, err := p.Exec(ctx); err != nil {
			return fmt.Errorf("seed redis: %w", err)
		}
	}
	return nil
}

// redisUsedMemory is INFO memory's used_memory, in bytes.
func redisUsedMemory(ctx context.Context, addr string) (int64, error) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			var n int64
			_, err := fmt.Sscan(v, &n)
			return n, err
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}

func redisFlush(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	return c.FlushAll(ctx).Err()
}

// seedUserName is the i-th seeded user (sorted like i).
func seedUserName(i int) string { return fmt.Sprintf("auth0|user%08d", i) }

// rememberedPool mints remembered browsers for the users of the pool with
// the server's key through session.Manager (into a memstore) and returns
// their cookies and store records.
func rememberedPool(ctx context.Context, key session.Key, users []string) (cookies []string, recs []session.Record, err error) {
	ms := memstore.New(memstore.Options{})
	defer ms.Close()
	issue := rememberCookieFor
	cookies = make([]string, len(users))
	recs = make([]session.Record, len(users))
	for i, u := range users {
		c, err := mint(key, ms, issue(ctx, u))
		if err != nil {
			return nil, nil, err
		}
		rs, err := ms.ListUser(ctx, u, session.KindDevice)
		if err != nil || len(rs) != 1 {
			return nil, nil, fmt.Errorf("minted record of %s: %d records, %v", u, len(rs), err)
		}
		cookies[i], recs[i] = c, rs[0]
	}
	return cookies, recs, nil
}

func rememberCookieFor(ctx context.Context, u string) func(*session.Manager) (string, error) {
	return func(m *session.Manager) (string, error) {
		ck, _, err := m.IssueRemember(ctx, session.Grant{User: u, Realm: benchRealm, Factors: []string{"otp"}, UserAgent: userAgent})
		if err != nil {
			return "", err
		}
		return ck.Name + "=" + ck.Value, nil
	}
}

// usersSeed returns the records of n users with one remembered browser
// each: the pool's users (every stride-th) with their minted records, the
// others with a copy of a minted record's value under an id of their own.
func usersSeed(n int, pool map[int]session.Record, template session.Record) func(i int) seedRecord {
	return func(i int) seedRecord {
		if r, ok := pool[i]; ok {
			return seedRecord{user: seedUserName(i), kind: session.KindDevice, id: r.ID, val: r.Value, exp: r.ExpiresAt}
		}
		return seedRecord{user: seedUserName(i), kind: session.KindDevice, id: fmt.Sprintf("%032x", i), val: template.Value, exp: template.ExpiresAt}
	}
}

// markersSeed returns n used-markers of completed states: the key
// session.Manager writes ("state-used:" and a random 32-hex-digit id),
// the value "1", the state's lifetime left.
func markersSeed(n int, exp time.Time) (func(i int) seedRecord, error) {
	ids := make([]byte, 16*n)
	if _, err := rand.Read(ids); err != nil {
		return nil, err
	}
	return func(i int) seedRecord {
		return seedRecord{key: "state-used:" + hex.EncodeToString(ids[16*i:16*i+16]), val: []byte("1"), exp: exp}
	}, nil
}

func fileMB(path string) float64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return float64(fi.Size()) / (1 << 20)
}
