package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
)

// TestManagersShareRedis: two replicas on one Redis honour each other's
// MFA sessions and remembered browsers, and a revocation through one takes
// effect on both.
func TestManagersShareRedis(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Start(t)
	keys := []session.Key{{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}}
	replica := func() *session.Manager {
		m, err := session.NewManager(session.Config{Keys: keys, Store: newStore(t, addr, "", 0)})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := replica(), replica()

	mfa, _, err := a.IssueMFASession(ctx, session.Grant{User: "alice", SID: "sid", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
	if err != nil {
		t.Fatal(err)
	}
	rem, _, err := a.IssueRemember(ctx, session.Grant{User: "alice", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.NewState(ctx, session.State{User: "alice", ReturnURL: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.VerifyMFASession(ctx, mfa.Value, "alice", "sid"); err != nil {
		t.Errorf("replica b, MFA session from a: %v", err)
	}
	if _, err := b.VerifyRemember(ctx, rem.Value, "alice"); err != nil {
		t.Errorf("replica b, remembered browser from a: %v", err)
	}
	if _, err := b.ConsumeState(ctx, st, "alice"); err != nil {
		t.Errorf("replica b, state from a: %v", err)
	}
	if _, err := a.ConsumeState(ctx, st, "alice"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("replica a, state consumed on b: error = %v, want ErrNotFound", err)
	}
	list, err := a.ListUser(ctx, "alice")
	if err != nil || len(list.MFA) != 1 || len(list.Devices) != 1 {
		t.Fatalf("ListUser = %+v, %v; want one session and one device", list, err)
	}

	if n, err := b.Revoke(ctx, "alice", ""); err != nil || n != 2 {
		t.Fatalf("Revoke on b = %d, %v; want 2", n, err)
	}
	for name, m := range map[string]*session.Manager{"a": a, "b": b} {
		if _, err := m.VerifyMFASession(ctx, mfa.Value, "alice", "sid"); !errors.Is(err, session.ErrRevoked) {
			t.Errorf("replica %s, revoked MFA session: error = %v, want ErrRevoked", name, err)
		}
		if _, err := m.VerifyRemember(ctx, rem.Value, "alice"); !errors.Is(err, session.ErrRevoked) {
			t.Errorf("replica %s, revoked browser: error = %v, want ErrRevoked", name, err)
		}
	}
}

// TestManagerRedisDown: with Redis gone, verification fails closed with
// ErrStoreUnavailable, and works again when Redis is back.
func TestManagerRedisDown(t *testing.T) {
	ctx := context.Background()
	srv := redistest.New(t)
	keys := []session.Key{{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}}
	m, err := session.NewManager(session.Config{Keys: keys, Store: newStore(t, srv.Addr(), "", 300*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	mfa, _, err := m.IssueMFASession(ctx, session.Grant{User: "alice", SID: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := m.VerifyMFASession(ctx, mfa.Value, "alice", ""); !errors.Is(err, session.ErrStoreUnavailable) {
		t.Errorf("Redis down: error = %v, want ErrStoreUnavailable", err)
	}
	srv.Restart() // empty: the restarted server kept nothing
	for {
		if _, err := m.VerifyMFASession(ctx, mfa.Value, "alice", ""); errors.Is(err, session.ErrRevoked) {
			break // reachable again; the session is gone with the data
		} else if !errors.Is(err, session.ErrStoreUnavailable) {
			t.Fatalf("after restart: error = %v, want ErrRevoked once reconnected", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testRealm is the realm the tests' sessions are proven on.
const testRealm = "app.example.com"
