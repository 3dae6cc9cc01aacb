// Package sessions builds the session layer from the configuration: the
// signing and encryption keys (configured, or kept in the data directory),
// the session store (memory, bolt or Redis), the session manager and the
// at-rest sealer, and the read-only store probe `config validate` runs.
package sessions

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/memstore"
	"github.com/stepup-dev/stepup/session/redisstore"
)

// DataDir returns the absolute data directory of cfg.
func DataDir(cfg *config.Config) (string, error) {
	return filepath.Abs(cfg.Resolve(cfg.DataDir))
}

// loadKeys returns the signing keys: the configured list, or keys kept in
// the data directory (generated on first start).
func loadKeys(cfg *config.Config, list []config.SigningKey, file string, log *slog.Logger) ([]session.Key, error) {
	return loadKeysNote(cfg, list, file, log, nil)
}

// loadKeysNote is loadKeys that, with note set (`config validate`), never
// writes: keys the data directory does not hold yet are generated in
// memory only, and note says so.
func loadKeysNote(cfg *config.Config, list []config.SigningKey, file string, log *slog.Logger, note func(string)) ([]session.Key, error) {
	if len(list) > 0 {
		parts := make([]string, 0, len(list))
		for _, k := range list {
			v, err := k.Secret.Resolve(cfg)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k.ID, err)
			}
			parts = append(parts, k.ID+":"+strings.TrimSpace(v))
		}
		return session.ParseKeys(strings.Join(parts, "\n"))
	}
	dir, err := DataDir(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, file)
	if note != nil {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			note(fmt.Sprintf("no session keys in %s yet: serve generates them there on first start (production should set sessions.keys)", path))
			k, err := session.GenerateKey()
			if err != nil {
				return nil, err
			}
			return []session.Key{k}, nil
		}
	}
	keys, created, err := session.LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("generated a new session key in the data directory; production should configure its own (sessions.keys) so that replicas share them", "file", path)
	} else {
		log.Warn("using session keys from the data directory; production should configure its own (sessions.keys)", "file", path)
	}
	return keys, nil
}

// OpenStore opens the configured session store.
func OpenStore(cfg *config.Config, log *slog.Logger) (session.Store, error) {
	st := cfg.Sessions.Store
	switch st.Type {
	case "memory":
		log.Warn("session store is in memory: MFA sessions and remembered browsers are lost on restart and not shared between replicas")
		return memstore.New(memstore.Options{}), nil
	case "redis":
		pw, err := st.Redis.Password.Resolve(cfg)
		if err != nil {
			return nil, fmt.Errorf("sessions.store.redis.password: %w", err)
		}
		o := redisstore.Options{
			Addrs:      st.Redis.Addrs,
			MasterName: st.Redis.MasterName,
			Username:   st.Redis.Username,
			Password:   pw,
			DB:         st.Redis.DB,
			KeyPrefix:  st.Redis.KeyPrefix,
			Timeout:    st.Redis.Timeout.D(),
			Logger:     log,

			DeadlineFraction: st.Redis.DeadlineFraction,
			BreakerFailures:  st.Redis.Breaker.Failures,
			BreakerCooldown:  st.Redis.Breaker.Cooldown.D(),
		}
		if st.Redis.CacheTTL != nil {
			o.CacheTTL = st.Redis.CacheTTL.D()
		}
		if st.Redis.TLS {
			o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return redisstore.New(o)
	default:
		path, err := BoltPath(cfg)
		if err != nil {
			return nil, err
		}
		return boltstore.Open(path, boltstore.Options{Logger: log})
	}
}

// CheckStoreSettings warns (in the store's log) about store server
// settings that can lose sessions; only the Redis store has any.
func CheckStoreSettings(ctx context.Context, store session.Store) {
	if rs, ok := store.(*redisstore.Store); ok {
		_, _ = rs.CheckSettings(ctx)
	}
}

// NewManager builds the session manager over store.
func NewManager(cfg *config.Config, store session.Store, log *slog.Logger) (*session.Manager, error) {
	return NewManagerAt(cfg, store, log, nil)
}

// NewManagerAt is NewManager on the clock now (nil: the real clock).
func NewManagerAt(cfg *config.Config, store session.Store, log *slog.Logger, now func() time.Time) (*session.Manager, error) {
	return NewManagerKeys(cfg, store, log, now, nil)
}

// NewManagerKeys is NewManagerAt; with keyNote set it writes no key file
// (see loadKeysNote).
func NewManagerKeys(cfg *config.Config, store session.Store, log *slog.Logger, now func() time.Time, keyNote func(string)) (*session.Manager, error) {
	keys, err := loadKeysNote(cfg, cfg.Sessions.Keys, "session-keys", log, keyNote)
	if err != nil {
		return nil, fmt.Errorf("sessions.keys: %w", err)
	}
	return NewManagerWithKeys(cfg, store, keys, log, now)
}

// NewSealer builds the at-rest encryption: sessions.encryption_keys, or
// the signing keys (the sealer derives its own subkeys from them).
func NewSealer(cfg *config.Config, log *slog.Logger) (*session.Sealer, error) {
	return NewSealerKeys(cfg, log, nil)
}

// NewSealerKeys is NewSealer; with keyNote set it writes no key file.
func NewSealerKeys(cfg *config.Config, log *slog.Logger, keyNote func(string)) (*session.Sealer, error) {
	list := cfg.Sessions.EncryptionKeys
	if len(list) == 0 {
		list = cfg.Sessions.Keys
	}
	if keyNote != nil {
		// The manager's keys have noted a missing key file already.
		keyNote = func(string) {}
	}
	keys, err := loadKeysNote(cfg, list, "session-keys", slog.New(slog.DiscardHandler), keyNote)
	if err != nil {
		return nil, fmt.Errorf("sessions.encryption_keys: %w", err)
	}
	return session.NewSealer(keys)
}

func NewManagerWithKeys(cfg *config.Config, store session.Store, keys []session.Key, log *slog.Logger, now func() time.Time) (*session.Manager, error) {
	return session.NewManager(session.Config{
		Keys:              keys,
		Store:             store,
		Now:               now,
		MFASessionTTL:     cfg.Sessions.MFASessionTTL.D(),
		MFASessionIdle:    cfg.Sessions.MFASessionIdle.D(),
		RememberTTL:       cfg.Sessions.RememberTTL.D(),
		RememberIdle:      cfg.Sessions.RememberIdle.D(),
		StateTTL:          cfg.Sessions.StateTTL.D(),
		MaxDevicesPerUser: cfg.Sessions.MaxDevices,
		Development:       cfg.Development,
		CookiePrefix:      cfg.Sessions.CookiePrefix,
		Logger:            log,
	})
}

// ProbeStore checks the configured session store for `config validate`
// without locking or writing it, and returns notes on what it could not
// check. An error is one serve would stop on. The bolt file, when it
// exists, is opened read-only (a running server's lock is waited for
// briefly, then noted); Redis is connected to and pinged, nothing is
// written. Neither an unreachable Redis nor a bolt file in use stops
// serve (it starts and reports not ready, or waits for the lock), so they
// are notes, not errors.
func ProbeStore(ctx context.Context, cfg *config.Config, log *slog.Logger) ([]string, error) {
	st := cfg.Sessions.Store
	switch st.Type {
	case "memory":
		return nil, nil
	case "redis":
		store, err := OpenStore(cfg, log)
		if err != nil {
			return nil, err
		}
		defer store.Close()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := store.Ping(pctx); err != nil {
			return []string{fmt.Sprintf("the Redis session store did not answer (%v): serve starts but reports not ready until it does", err)}, nil
		}
		return nil, nil
	default:
		path, err := BoltPath(cfg)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return []string{fmt.Sprintf("the session store %s does not exist yet: serve creates it", path)}, nil
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
		if errors.Is(err, bolt.ErrTimeout) {
			return []string{fmt.Sprintf("the session store %s is in use by a running stepup: not opened", path)}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("open session store %s: %w", path, err)
		}
		return nil, db.Close()
	}
}

// BoltPath is the embedded store's file.
func BoltPath(cfg *config.Config) (string, error) {
	if p := cfg.Sessions.Store.Bolt.Path; p != "" {
		return cfg.Resolve(p), nil
	}
	dir, err := DataDir(cfg)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "sessions.db"), nil
}

var errStoreLocked = boltstore.ErrLocked

func IsLocked(err error) bool { return errors.Is(err, errStoreLocked) }
