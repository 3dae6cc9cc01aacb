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
// paused, codes are not even checked. Each code is counted before it is
// checked, so concurrent submissions cannot check more codes than the
// threshold allows. A successful verification clears the user's count and
// is taken back from the address's.
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

// attempt is one code admitted for checking. It was counted against the
// user and the address before the check, and holds the pauses that its
// failure would start (already written, so that concurrent attempts wait).
type attempt struct {
	id        identity
	user, ip  int64         // the counts, this attempt included
	userPause time.Duration // pause held for the user, or 0
	ipPause   time.Duration // pause held for the address, or 0
}

// admit counts an attempt for the user and the address before its code is
// checked. Counting comes first and is atomic in the store, so however many
// attempts race on one user or address, at most the threshold's worth are
// checked before a pause: an attempt whose count reaches a threshold must
// also be the one that writes the pause (PutIfAbsent), before its check.
// An attempt refused that way is taken back from the counts (Decr) and
// admit returns how long verification is paused (at least a second);
// otherwise it returns the admitted attempt and 0.
func (l *limiter) admit(ctx context.Context, id identity) (attempt, time.Duration, error) {
	a := attempt{id: id}
	scopes := []struct {
		scope, who string
		max        int
		n          *int64
		pause      *time.Duration
	}{
		{"user", userKey(id.User), l.UserFailures, &a.user, &a.userPause},
		{"ip", id.ClientIP, l.IPFailures, &a.ip, &a.ipPause},
	}
	counted := 0
	refund := func() error {
		var errs []error
		for _, s := range scopes[:counted] {
			if _, err := l.store.Decr(ctx, failKey(s.scope, s.who)); err != nil {
				errs = append(errs, err)
			}
			if *s.pause > 0 {
				if err := l.store.Delete(ctx, lockKey(s.scope, s.who)); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("take back attempt: %w", err)
		}
		return nil
	}
	// One scope after the other, so that attempts refused for the user
	// never reach the address's count.
	for _, s := range scopes {
		n, err := l.store.Incr(ctx, failKey(s.scope, s.who), l.Window)
		if err != nil {
			return attempt{}, 0, errors.Join(fmt.Errorf("count attempt: %w", err), refund())
		}
		counted++
		*s.n = n
		d := l.pause(n, s.max)
		if d == 0 {
			continue
		}
		won, err := l.claimPause(ctx, lockKey(s.scope, s.who), d)
		if err != nil {
			return attempt{}, 0, errors.Join(err, refund())
		}
		if !won {
			// Another attempt holds the pause and is being checked.
			if err := refund(); err != nil {
				return attempt{}, 0, err
			}
			locked, err := l.lockedFor(ctx, id)
			if err != nil {
				return attempt{}, 0, err
			}
			return attempt{}, max(locked, time.Second), nil
		}
		*s.pause = d
	}
	return a, 0, nil
}

// claimPause writes a pause of d under key unless another one is in
// force, and reports whether it did: of concurrent callers at most one
// wins while a pause is in force. A pause is over when its end, by the
// limiter's clock, has passed, even if the store (whose clock may run
// behind) still holds it: such a stale pause is taken over with Consume,
// which only one caller can do, and written anew.
func (l *limiter) claimPause(ctx context.Context, key string, d time.Duration) (bool, error) {
	val := []byte(strconv.FormatInt(l.now().Add(d).Unix(), 10))
	won, err := l.store.PutIfAbsent(ctx, key, val, d)
	if err != nil || won {
		return won, wrapLockout(err)
	}
	old, err := l.store.Get(ctx, key)
	switch {
	case errors.Is(err, session.ErrNotFound):
		// Gone meanwhile: one more try below.
	case err != nil:
		return false, wrapLockout(err)
	case l.inForce(old):
		return false, nil
	default:
		old, err = l.store.Consume(ctx, key)
		if errors.Is(err, session.ErrNotFound) {
			break // another caller took it over: it races us below
		} else if err != nil {
			return false, wrapLockout(err)
		}
		if l.inForce(old) {
			// A fresh pause replaced the stale one in between: put it back.
			until, _ := strconv.ParseInt(string(old), 10, 64)
			if _, err := l.store.PutIfAbsent(ctx, key, old, max(time.Unix(until, 0).Sub(l.now()), time.Second)); err != nil {
				return false, wrapLockout(err)
			}
			return false, nil
		}
	}
	won, err = l.store.PutIfAbsent(ctx, key, val, d)
	return won, wrapLockout(err)
}

// inForce reports whether a stored pause has not ended by the limiter's
// clock. An unreadable value counts as in force.
func (l *limiter) inForce(val []byte) bool {
	until, err := strconv.ParseInt(string(val), 10, 64)
	return err != nil || time.Unix(until, 0).After(l.now())
}

func wrapLockout(err error) error {
	if err != nil {
		return fmt.Errorf("start lockout: %w", err)
	}
	return nil
}

// startedPause is a pause an attempt started, for the audit trail.
type startedPause struct {
	scope    string // user or ip
	failures int64
	pause    time.Duration
}

// failed reports a checked attempt that failed. It returns how many more
// failures the user may make before a pause (0 when paused), the longest
// pause the attempt started, if any, and each pause it started. The
// attempt was counted and its pause written by admit.
func (l *limiter) failed(ctx context.Context, a attempt, factor string) (left int, paused time.Duration, started []startedPause) {
	left = max(0, min(l.UserFailures-int(a.user), l.IPFailures-int(a.ip)))
	for _, s := range []struct {
		scope string
		n     int64
		d     time.Duration
	}{{"user", a.user, a.userPause}, {"ip", a.ip, a.ipPause}} {
		if s.d == 0 {
			continue
		}
		paused = max(paused, s.d)
		started = append(started, startedPause{s.scope, s.n, s.d})
		l.metrics.lockouts.WithLabelValues(s.scope).Inc()
		l.log.LogAttrs(ctx, slog.LevelWarn, "mfa verification paused after too many wrong codes",
			slog.String("scope", s.scope), slog.String("user", a.id.User), slog.String("client_ip", a.id.ClientIP),
			slog.String("factor", factor), slog.Int64("failures", s.n), slog.Duration("pause", s.d))
	}
	return left, paused, started
}

// succeeded clears the user's failures and pause, and takes the attempt
// back from the address's count (a right code is not a failure), lifting
// the address's pause if this attempt held it.
func (l *limiter) succeeded(ctx context.Context, a attempt) error {
	var errs []error
	for _, k := range []string{failKey("user", userKey(a.id.User)), lockKey("user", userKey(a.id.User))} {
		if err := l.store.Delete(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := l.store.Decr(ctx, failKey("ip", a.id.ClientIP)); err != nil {
		errs = append(errs, err)
	}
	if a.ipPause > 0 {
		if err := l.store.Delete(ctx, lockKey("ip", a.id.ClientIP)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clear failures: %w", err)
	}
	return nil
}
