package mfa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// Defaults for the zero values of [RateLimits].
const (
	DefaultUserFailures = 5
	DefaultIPFailures   = 20
	DefaultLockout      = time.Minute
	DefaultMaxLockout   = time.Hour
	DefaultFailWindow   = 24 * time.Hour
)

// RateLimits regulate wrong codes (authenticator or recovery). Failures
// are counted per user and per client address in the store, over a fixed
// window that starts with the first failure. When a count reaches its
// threshold, verification pauses for Lockout; every further failure
// pauses it for twice as long as the previous one, up to MaxLockout. While
// paused, codes are not even checked. A successful verification clears
// the user's count, not the address's.
type RateLimits struct {
	// UserFailures is how many wrong codes a user may enter before the
	// first pause (default 5).
	UserFailures int
	// IPFailures is the same for one client address, over all users
	// (default 20).
	IPFailures int
	// Lockout is the first pause (default 1 min).
	Lockout time.Duration
	// MaxLockout caps the pause (default 1 h).
	MaxLockout time.Duration
	// Window is how long failures are counted (default 24 h).
	Window time.Duration
}

func (l RateLimits) withDefaults() (RateLimits, error) {
	if l.UserFailures == 0 {
		l.UserFailures = DefaultUserFailures
	}
	if l.IPFailures == 0 {
		l.IPFailures = DefaultIPFailures
	}
	if l.Lockout == 0 {
		l.Lockout = DefaultLockout
	}
	if l.MaxLockout == 0 {
		l.MaxLockout = DefaultMaxLockout
	}
	if l.Window == 0 {
		l.Window = DefaultFailWindow
	}
	var errs []error
	if l.UserFailures < 1 || l.UserFailures > 1000 {
		errs = append(errs, fmt.Errorf("rate limits: user failures %d: must be 1-1000", l.UserFailures))
	}
	if l.IPFailures < 1 || l.IPFailures > 100000 {
		errs = append(errs, fmt.Errorf("rate limits: ip failures %d: must be 1-100000", l.IPFailures))
	}
	if l.Lockout < time.Second {
		errs = append(errs, fmt.Errorf("rate limits: lockout %v: must be at least 1s", l.Lockout))
	}
	if l.MaxLockout < l.Lockout || l.MaxLockout > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("rate limits: max lockout %v: must be between the lockout and 7 days", l.MaxLockout))
	}
	if l.Window < l.MaxLockout {
		errs = append(errs, fmt.Errorf("rate limits: window %v: must be at least the max lockout", l.Window))
	}
	return l, errors.Join(errs...)
}

// pause is how long the n-th failure pauses verification when the
// threshold is max: nothing below max, then Lockout doubled per failure
// past it, capped.
func (l RateLimits) pause(n int64, max int) time.Duration {
	if n < int64(max) {
		return 0
	}
	d := l.Lockout
	for i := int64(max); i < n && d < l.MaxLockout; i++ {
		d *= 2
	}
	return min(d, l.MaxLockout)
}

// limiter applies RateLimits with the store.
type limiter struct {
	RateLimits
	store   session.Store
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics
	msgs    catalog
}

func failKey(scope, who string) string { return "mfa:fail:" + scope + ":" + who }
func lockKey(scope, who string) string { return "mfa:lock:" + scope + ":" + who }

// lockedFor returns how long verification is still paused for the user
// or the address (the longer of the two), or 0.
func (l *limiter) lockedFor(ctx context.Context, id identity) (time.Duration, error) {
	var longest time.Duration
	for _, k := range []string{lockKey("user", userKey(id.User)), lockKey("ip", id.ClientIP)} {
		val, err := l.store.Get(ctx, k)
		if errors.Is(err, session.ErrNotFound) {
			continue
		} else if err != nil {
			return 0, fmt.Errorf("read lockout: %w", err)
		}
		until, err := strconv.ParseInt(string(val), 10, 64)
		if err != nil {
			continue
		}
		if d := time.Unix(until, 0).Sub(l.now()); d > longest {
			longest = d
		}
	}
	return longest, nil
}

// failed counts a wrong code for the user and the address. It returns
// how many more failures the user may make before a pause (0 when
// paused), and the pause it started, if any.
func (l *limiter) failed(ctx context.Context, id identity, factor string) (left int, paused time.Duration, err error) {
	nu, err := l.store.Incr(ctx, failKey("user", userKey(id.User)), l.Window)
	if err != nil {
		return 0, 0, fmt.Errorf("count failure: %w", err)
	}
	ni, err := l.store.Incr(ctx, failKey("ip", id.ClientIP), l.Window)
	if err != nil {
		return 0, 0, fmt.Errorf("count failure: %w", err)
	}
	left = max(0, min(l.UserFailures-int(nu), l.IPFailures-int(ni)))
	for _, s := range []struct {
		scope, who string
		n          int64
		max        int
	}{{"user", userKey(id.User), nu, l.UserFailures}, {"ip", id.ClientIP, ni, l.IPFailures}} {
		d := l.pause(s.n, s.max)
		if d == 0 {
			continue
		}
		until := l.now().Add(d).Unix()
		if err := l.store.Put(ctx, lockKey(s.scope, s.who), []byte(strconv.FormatInt(until, 10)), d); err != nil {
			return 0, 0, fmt.Errorf("start lockout: %w", err)
		}
		paused = max(paused, d)
		l.metrics.lockouts.WithLabelValues(s.scope).Inc()
		l.log.LogAttrs(ctx, slog.LevelWarn, "mfa verification paused after too many wrong codes",
			slog.String("scope", s.scope), slog.String("user", id.User), slog.String("client_ip", id.ClientIP),
			slog.String("factor", factor), slog.Int64("failures", s.n), slog.Duration("pause", d))
	}
	return left, paused, nil
}

// succeeded clears the user's failures and pause.
func (l *limiter) succeeded(ctx context.Context, id identity) error {
	for _, k := range []string{failKey("user", userKey(id.User)), lockKey("user", userKey(id.User))} {
		if err := l.store.Delete(ctx, k); err != nil {
			return fmt.Errorf("clear failures: %w", err)
		}
	}
	return nil
}
