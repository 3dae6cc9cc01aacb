package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timing of the invalidation subscription.
const (
	// pingEvery is how long the subscription may stay silent before it is
	// PINGed; a PING unanswered for as long again counts as a lost
	// subscription.
	pingEvery = time.Second
	// Reconnection back-off after a failed or lost subscription.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// invalidationVersion starts every invalidation message; a message that
// does not parse clears the whole cache.
const invalidationVersion = "v1"

// invalidationChannel is the pub/sub channel of a deployment.
func invalidationChannel(prefix string) string { return prefix + "invalidate" }

// encodeInvalidation encodes a DeleteUser-style selector and the sending
// store's random id. Kinds and ids cannot contain a newline and users
// cannot contain control characters (session.ValidateUserRecord), so the
// user goes last and may contain anything else.
func encodeInvalidation(sender, user, kind, id string) string {
	return invalidationVersion + "\n" + sender + "\n" + kind + "\n" + id + "\n" + user
}

func decodeInvalidation(msg string) (sender, user, kind, id string, ok bool) {
	parts := strings.SplitN(msg, "\n", 5)
	if len(parts) != 5 || parts[0] != invalidationVersion || parts[4] == "" || (parts[2] == "" && parts[3] != "") {
		return "", "", "", "", false
	}
	return parts[1], parts[4], parts[2], parts[3], true
}

// newSenderID returns a store's random id for its invalidation messages.
func newSenderID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// invalidate drops the selected records from the local cache and tells the
// other stores sharing the Redis (and key prefix) to do the same. It is
// called after a write that changed or removed (or may have removed)
// per-user records; it publishes even when this store has no cache,
// because its peers may have one (the CLI revokes through a store of its
// own). A failed publication is logged: the peers then keep the old record
// for at most their cache TTL.
func (s *Store) invalidate(ctx context.Context, user, kind, id string) {
	if s.cache != nil {
		s.cache.invalidate(user, kind, id)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := s.c.Publish(ctx, s.channel, encodeInvalidation(s.sender, user, kind, id)).Err(); err != nil {
		s.log.Warn("redis session store: could not publish a cache invalidation; other replicas may use the old record until their cache_ttl runs out",
			"channel", s.channel, "error", err.Error())
	}
}

// startSubscriber starts the subscription goroutine, unless the store is
// closed. It runs once, on the first GetUser with the cache enabled.
func (s *Store) startSubscriber() {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.closing {
		return
	}
	s.subDone = make(chan struct{})
	go s.subscribeLoop(s.subCtx, s.subDone)
}

// subscribeLoop keeps the invalidation subscription up until ctx ends. The
// cache is active only while a subscription is confirmed; whenever one
// ends, the cache is cleared and bypassed until the next is confirmed.
func (s *Store) subscribeLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	backoff := minBackoff
	down := false // a loss was logged and the cache has not come back since
	for {
		confirmed, err := s.listen(ctx, &down)
		s.cache.deactivate()
		if ctx.Err() != nil {
			return
		}
		if confirmed {
			backoff = minBackoff
		}
		if !down {
			down = true
			msg := "redis session store: local cache bypassed until the invalidation subscription is confirmed"
			if confirmed {
				msg = "redis session store: lost the invalidation subscription; local cache cleared and bypassed until it is back"
			}
			s.log.Warn(msg, "channel", s.channel, "error", errString(err))
		} else {
			s.log.Debug("redis session store: invalidation subscription failed again", "channel", s.channel, "error", errString(err))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen runs one subscription until it fails. It reports whether the
// subscription was confirmed (and the cache activated) before the failure.
func (s *Store) listen(ctx context.Context, down *bool) (confirmed bool, err error) {
	ps := s.c.Subscribe(ctx) // no channel yet: does not connect
	s.subMu.Lock()
	if s.closing {
		s.subMu.Unlock()
		_ = ps.Close()
		return false, errClosed
	}
	s.ps = ps
	s.subMu.Unlock()
	defer func() {
		s.subMu.Lock()
		s.ps = nil
		s.subMu.Unlock()
		_ = ps.Close()
	}()

	if err := ps.Subscribe(ctx, s.channel); err != nil {
		return false, err
	}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if err != nil {
			if !isTimeout(err) || ctx.Err() != nil {
				return confirmed, err
			}
			if pinged {
				return confirmed, errors.New("no answer to PING on the subscription")
			}
			if err := ps.Ping(ctx); err != nil {
				return confirmed, err
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Channel != s.channel {
				continue
			}
			if m.Kind != "subscribe" {
				return confirmed, errors.New("unsubscribed from the invalidation channel")
			}
			if confirmed {
				// go-redis reconnected and resubscribed by itself: what was
				// published in between is lost. Start afresh.
				return confirmed, errors.New("the subscription was renewed behind the store's back")
			}
			confirmed = true
			s.cache.activate()
			if *down {
				*down = false
				s.log.Info("redis session store: invalidation subscription confirmed; local cache in use again", "channel", s.channel)
			} else {
				s.log.Debug("redis session store: invalidation subscription confirmed; local cache in use", "channel", s.channel)
			}
		case *redis.Message:
			if m.Channel != s.channel {
				continue
			}
			sender, user, kind, id, ok := decodeInvalidation(m.Payload)
			switch {
			case !ok:
				s.cache.clear()
			case sender != s.sender:
				// The store's own writes invalidated locally before they
				// published.
				s.cache.invalidate(user, kind, id)
			}
			s.received.Add(1)
		}
	}
}

var errClosed = errors.New("store closed")

// isTimeout reports a read that found nothing within its deadline (and
// left the connection usable).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, context.DeadlineExceeded)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
