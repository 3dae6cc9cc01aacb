package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/memstore"
	"github.com/stepup-dev/stepup/session/redisstore"
)

// dataDirOf returns the absolute data directory of cfg.
func dataDirOf(cfg *config.Config) (string, error) {
	return filepath.Abs(cfg.Resolve(cfg.DataDir))
}

// loadKeys returns the signing keys: the configured list, or keys kept in
// the data directory (generated on first start).
func loadKeys(cfg *config.Config, list []config.SigningKey, file string, log *slog.Logger) ([]session.Key, error) {
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
	dir, err := dataDirOf(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, file)
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

// openStore opens the configured session store.
func openStore(cfg *config.Config, log *slog.Logger) (session.Store, error) {
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
		path := st.Bolt.Path
		if path == "" {
			dir, err := dataDirOf(cfg)
			if err != nil {
				return nil, err
			}
			path = filepath.Join(dir, "sessions.db")
		} else {
			path = cfg.Resolve(path)
		}
		return boltstore.Open(path, boltstore.Options{Logger: log})
	}
}

// checkStoreSettings warns (in the store's log) about store server
// settings that can lose sessions; only the Redis store has any.
func checkStoreSettings(ctx context.Context, store session.Store) {
	if rs, ok := store.(*redisstore.Store); ok {
		_, _ = rs.CheckSettings(ctx)
	}
}

// newManager builds the session manager over store.
func newManager(cfg *config.Config, store session.Store, log *slog.Logger) (*session.Manager, error) {
	return newManagerAt(cfg, store, log, nil)
}

// newManagerAt is newManager on the clock now (nil: the real clock).
func newManagerAt(cfg *config.Config, store session.Store, log *slog.Logger, now func() time.Time) (*session.Manager, error) {
	keys, err := loadKeys(cfg, cfg.Sessions.Keys, "session-keys", log)
	if err != nil {
		return nil, fmt.Errorf("sessions.keys: %w", err)
	}
	return newManagerWithKeys(cfg, store, keys, log, now)
}

// newSealer builds the at-rest encryption: sessions.encryption_keys, or
// the signing keys (the sealer derives its own subkeys from them).
func newSealer(cfg *config.Config, log *slog.Logger) (*session.Sealer, error) {
	list := cfg.Sessions.EncryptionKeys
	if len(list) == 0 {
		list = cfg.Sessions.Keys
	}
	keys, err := loadKeys(cfg, list, "session-keys", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("sessions.encryption_keys: %w", err)
	}
	return session.NewSealer(keys)
}

func newManagerWithKeys(cfg *config.Config, store session.Store, keys []session.Key, log *slog.Logger, now func() time.Time) (*session.Manager, error) {
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

var errStoreLocked = boltstore.ErrLocked

func isLocked(err error) bool { return errors.Is(err, errStoreLocked) }
