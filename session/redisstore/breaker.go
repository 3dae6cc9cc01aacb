package redisstore

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrCircuitOpen is wrapped (together with session.ErrStoreUnavailable)
// in the error of a call the store refused without asking Redis, because
// Redis failed the calls just before it.
var ErrCircuitOpen = errors.New("circuit breaker open after consecutive redis failures")

// Breaker states.
const (
	closed   int32 = iota // calls go to Redis
	open                  // calls fail at once until the cooldown ends
	halfOpen              // one call (the probe) goes to Redis, the others fail at once
)

// breaker is a circuit breaker over the calls to Redis: after threshold
// consecutive failures it opens, and calls fail at once for cooldown; then
// one call probes Redis while the others keep failing at once, and the
// probe's outcome closes the breaker or opens it for another cooldown. Any
// call that reaches Redis and gets an answer closes it.
type breaker struct {
	threshold int // 0: never opens
	cooldown  time.Duration
	log       *slog.Logger

	state    atomic.Int32
	failures atomic.Int32 // consecutive, while closed

	mu        sync.Mutex
	openUntil time.Time
	probing   bool
}

// outcome classifies how a call ended, for the breaker.
type outcome int

const (
	succeeded outcome = iota // Redis answered
	failed                   // Redis did not answer, or answered that it cannot serve
	neutral                  // the caller gave up first: says nothing about Redis
)

// allow reports whether a call may go to Redis, and whether it is the
// probe whose outcome decides the breaker's next state.
func (b *breaker) allow() (ok, probe bool) {
	if b.state.Load() == closed {
		return true, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() == open && !b.probing && !time.Now().Before(b.openUntil) {
		b.state.Store(halfOpen)
		b.probing = true
		return true, true
	}
	return b.state.Load() == closed, false
}

// done records the outcome of a call that allow let through.
func (b *breaker) done(probe bool, o outcome) {
	switch o {
	case succeeded:
		if !probe && b.state.Load() == closed && b.failures.Load() == 0 {
			return // the fast path: nothing to change
		}
		b.mu.Lock()
		was := b.state.Load()
		b.failures.Store(0)
		b.state.Store(closed)
		if probe {
			b.probing = false
		}
		b.mu.Unlock()
		if was != closed {
			b.log.Info("redis session store: circuit breaker closed, redis answers again")
		}
	case failed:
		b.mu.Lock()
		defer b.mu.Unlock()
		switch {
		case probe:
			b.probing = false
			b.trip()
		case b.state.Load() == closed && b.threshold > 0:
			if int(b.failures.Add(1)) >= b.threshold {
				b.trip()
				b.log.Warn("redis session store: circuit breaker open, failing closed at once while redis is down",
					"consecutive_failures", b.threshold, "cooldown", b.cooldown.String())
			}
		}
	case neutral:
		if probe {
			// Let the next call probe instead.
			b.mu.Lock()
			b.probing = false
			b.state.Store(open)
			b.mu.Unlock()
		}
	}
}

// trip opens the breaker for a cooldown; b.mu is held.
func (b *breaker) trip() {
	b.failures.Store(0)
	b.openUntil = time.Now().Add(b.cooldown)
	b.state.Store(open)
}

// classify tells the breaker what err, returned by a call made under
// parent, says about Redis.
func classify(parent context.Context, err error) outcome {
	if err == nil || errors.Is(err, redis.Nil) {
		return succeeded
	}
	if parent.Err() != nil {
		return neutral
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !unavailableReply(rerr.Error()) {
		return succeeded // Redis answered, with an error about the command
	}
	return failed
}

// unavailableReply reports whether an error reply means the node cannot
// serve now (loading its data, a replica after a failover, a cluster
// without quorum) rather than a problem with the command.
func unavailableReply(msg string) bool {
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
