package session_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// TestRememberCapsDevicesPerUser: a user keeps at most MaxDevicesPerUser
// remembered browsers; remembering one more forgets the oldest (by
// creation), never the new one, never another user's, never an MFA
// session.
func TestRememberCapsDevicesPerUser(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		max     int // Config.MaxDevicesPerUser (0: the default)
		issue   int // browsers remembered for alice, one minute apart
		wantMax int // the cap in effect
	}{
		{"under the cap", 3, 2, 3},
		{"at the cap", 3, 3, 3},
		{"one over", 3, 4, 3},
		{"far over", 3, 9, 3},
		{"cap of one", 1, 4, 1},
		{"default cap", 0, session.DefaultMaxDevices + 5, session.DefaultMaxDevices},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *session.Config) {
				c.MaxDevicesPerUser = tt.max
				c.RememberIdle = session.NoTimeout
			})
			bobCookie, _ := issueRemember(t, e.m, "bob")
			mfaCookie, _ := issueMFA(t, e.m, "alice", "")
			var cookies []string
			for range tt.issue {
				e.clk.Advance(time.Minute)
				c, _ := issueRemember(t, e.m, "alice")
				cookies = append(cookies, c.Value)
			}
			s, err := e.m.ListUser(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			want := min(tt.issue, tt.wantMax)
			if len(s.Devices) != want {
				t.Fatalf("alice has %d remembered browsers, want %d", len(s.Devices), want)
			}
			if len(s.MFA) != 1 {
				t.Errorf("alice has %d MFA sessions, want 1 (the cap is for browsers only)", len(s.MFA))
			}
			// The oldest are forgotten, the newest still work.
			for i, c := range cookies {
				_, err := e.m.VerifyRemember(ctx, c, "alice")
				if kept := i >= len(cookies)-want; kept && err != nil {
					t.Errorf("browser %d of %d (kept): %v", i+1, len(cookies), err)
				} else if !kept && !errors.Is(err, session.ErrRevoked) {
					t.Errorf("browser %d of %d (over the cap): %v, want ErrRevoked", i+1, len(cookies), err)
				}
			}
			if _, err := e.m.VerifyRemember(ctx, bobCookie.Value, "bob"); err != nil {
				t.Errorf("bob's browser: %v", err)
			}
			if _, err := e.m.VerifyMFASession(ctx, mfaCookie.Value, "alice", ""); err != nil {
				t.Errorf("alice's MFA session: %v", err)
			}
		})
	}
}

// TestRememberCapEvictsStaleFirst: a browser past its idle timeout goes
// before an older live one.
func TestRememberCapEvictsStaleFirst(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *session.Config) {
		c.MaxDevicesPerUser = 2
		c.RememberIdle = 7 * day
	})
	oldLive, _ := issueRemember(t, e.m, "alice")
	e.clk.Advance(time.Hour)
	stale, _ := issueRemember(t, e.m, "alice")
	// Eight days on, oldLive is used, stale is not.
	for _, step := range []time.Duration{4 * day, 4 * day} {
		e.clk.Advance(step)
		if _, err := e.m.VerifyRemember(ctx, oldLive.Value, "alice"); err != nil {
			t.Fatalf("using the old browser: %v", err)
		}
	}
	newest, _ := issueRemember(t, e.m, "alice")
	for _, tc := range []struct {
		name  string
		value string
		want  error
	}{
		{"old but used", oldLive.Value, nil},
		{"idle", stale.Value, session.ErrRevoked},
		{"newest", newest.Value, nil},
	} {
		if _, err := e.m.VerifyRemember(ctx, tc.value, "alice"); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestRememberCapStoreErrors: when the store cannot list or delete, the
// browser is still remembered (the step succeeded) and the failure is
// logged.
func TestRememberCapStoreErrors(t *testing.T) {
	ctx := context.Background()
	for _, failOn := range []string{"list", "delete"} {
		t.Run(failOn, func(t *testing.T) {
			e := newEnv(t, func(c *session.Config) { c.MaxDevicesPerUser = 1 })
			issueRemember(t, e.m, "alice")
			e.clk.Advance(time.Minute)
			fs := &failingCapStore{Store: e.cfg.Store, failOn: failOn}
			cfg := e.cfg
			cfg.Store = fs
			m, err := session.NewManager(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c, _, err := m.IssueRemember(ctx, session.Grant{User: "alice", Realm: testRealm, Factors: []string{"otp"}, UserAgent: chromeUA})
			if err != nil {
				t.Fatalf("IssueRemember with a failing %s: %v", failOn, err)
			}
			if _, err := m.VerifyRemember(ctx, c.Value, "alice"); err != nil {
				t.Errorf("the new browser: %v", err)
			}
			if !strings.Contains(e.logs.String(), "remembered browser") {
				t.Errorf("the failure was not logged: %s", e.logs)
			}
		})
	}
}

type failingCapStore struct {
	session.Store
	failOn string
}

func (f *failingCapStore) ListUser(ctx context.Context, user, kind string) ([]session.Record, error) {
	if f.failOn == "list" {
		return nil, session.ErrStoreUnavailable
	}
	return f.Store.ListUser(ctx, user, kind)
}

func (f *failingCapStore) DeleteUser(ctx context.Context, user, kind, id string) (int, error) {
	if f.failOn == "delete" {
		return 0, session.ErrStoreUnavailable
	}
	return f.Store.DeleteUser(ctx, user, kind, id)
}

// TestManagerLimits: the limits NewManager enforces, at their edges.
// state ttl accepts three days (Auth0's limit for a redirect's state,
// and what config validation allows).
func TestManagerLimits(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*session.Config)
		wantErr string // "" = accepted
	}{
		{"state ttl of 72h", func(c *session.Config) { c.StateTTL = 72 * time.Hour }, ""},
		{"state ttl over 72h", func(c *session.Config) { c.StateTTL = 72*time.Hour + time.Second }, "state ttl"},
		{"max devices 1", func(c *session.Config) { c.MaxDevicesPerUser = 1 }, ""},
		{"max devices at the limit", func(c *session.Config) { c.MaxDevicesPerUser = session.MaxMaxDevices }, ""},
		{"max devices over the limit", func(c *session.Config) { c.MaxDevicesPerUser = session.MaxMaxDevices + 1 }, "max devices"},
		{"max devices negative", func(c *session.Config) { c.MaxDevicesPerUser = -1 }, "max devices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := session.Config{Keys: []session.Key{testKey("k1", 1)}, Store: newEnv(t, nil).cfg.Store}
			tt.mod(&cfg)
			_, err := session.NewManager(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("NewManager: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("NewManager: %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}
