package boltstore_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/storetest"
)

// TestManagerRestart: a single node restarting on the embedded store keeps
// its MFA sessions, remembered browsers and revocations.
func TestManagerRestart(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(epoch)
	path := filepath.Join(t.TempDir(), "sessions.db")
	keys := []session.Key{{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}}
	start := func() (*session.Manager, *boltstore.Store) {
		s := open(t, path, boltstore.Options{Now: clk.Now, SweepInterval: -1})
		m, err := session.NewManager(session.Config{Keys: keys, Store: s, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return m, s
	}

	m, s := start()
	mfa, _, err := m.IssueMFASession(ctx, session.Grant{User: "alice", SID: "sid", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
	if err != nil {
		t.Fatal(err)
	}
	rem, _, err := m.IssueRemember(ctx, session.Grant{User: "alice", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
	if err != nil {
		t.Fatal(err)
	}
	rem2, dev2, err := m.IssueRemember(ctx, session.Grant{User: "alice", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Revoke(ctx, "alice", dev2.ID); err != nil || n != 1 {
		t.Fatalf("Revoke = %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	m, _ = start()
	if _, err := m.VerifyMFASession(ctx, mfa.Value, "alice", "sid"); err != nil {
		t.Errorf("MFA session after restart: %v", err)
	}
	if _, err := m.VerifyRemember(ctx, rem.Value, "alice"); err != nil {
		t.Errorf("remembered browser after restart: %v", err)
	}
	if _, err := m.VerifyRemember(ctx, rem2.Value, "alice"); err == nil {
		t.Error("a browser revoked before the restart is remembered again")
	}
}

// testRealm is the realm the tests' sessions are proven on.
const testRealm = "app.example.com"
