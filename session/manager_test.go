package session_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/memstore"
	"github.com/stepup-dev/stepup/session/storetest"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	day       = 24 * time.Hour
	chromeUA  = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"
	firefoxUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:141.0) Gecko/20100101 Firefox/141.0"
)

// countingStore counts the calls that matter for the hot path.
type countingStore struct {
	session.Store
	gets, updates atomic.Int64
}

func (c *countingStore) GetUser(ctx context.Context, user, kind, id string) ([]byte, error) {
	c.gets.Add(1)
	return c.Store.GetUser(ctx, user, kind, id)
}

func (c *countingStore) UpdateUser(ctx context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	c.updates.Add(1)
	return c.Store.UpdateUser(ctx, user, kind, id, val, ttl)
}

type env struct {
	m     *session.Manager
	clk   *storetest.Clock
	store *countingStore
	mem   *memstore.Store
	cfg   session.Config
	logs  *bytes.Buffer
}

// newEnv builds a manager on a memstore with a fake clock; mod edits the
// config first.
func newEnv(t testing.TB, mod func(*session.Config)) *env {
	t.Helper()
	clk := storetest.NewClock(epoch)
	mem := memstore.New(memstore.Options{Now: clk.Now})
	t.Cleanup(func() { mem.Close() })
	cs := &countingStore{Store: mem}
	logs := &bytes.Buffer{}
	cfg := session.Config{
		Keys:   []session.Key{testKey("k1", 1)},
		Store:  cs,
		Now:    clk.Now,
		Logger: slog.New(slog.NewJSONHandler(&syncWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := session.NewManager(cfg)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return &env{m: m, clk: clk, store: cs, mem: mem, cfg: cfg, logs: logs}
}

// with returns a manager on the same store and clock with other keys.
func (e *env) with(t *testing.T, keys ...session.Key) *session.Manager {
	t.Helper()
	cfg := e.cfg
	cfg.Keys = keys
	m, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func issueMFA(t testing.TB, m *session.Manager, user, sid string) (*http.Cookie, session.MFASession) {
	t.Helper()
	c, s, err := m.IssueMFASession(context.Background(), session.Grant{User: user, SID: sid, Realm: testRealm, Factors: []string{"otp"}, UserAgent: chromeUA})
	if err != nil {
		t.Fatalf("IssueMFASession: %v", err)
	}
	return c, s
}

func issueRemember(t testing.TB, m *session.Manager, user string) (*http.Cookie, session.Device) {
	t.Helper()
	c, d, err := m.IssueRemember(context.Background(), session.Grant{User: user, Realm: testRealm, Factors: []string{"otp"}, UserAgent: firefoxUA})
	if err != nil {
		t.Fatalf("IssueRemember: %v", err)
	}
	return c, d
}

func TestNewManagerValidation(t *testing.T) {
	store := memstore.New(memstore.Options{})
	good := session.Config{Keys: []session.Key{testKey("k1", 1)}, Store: store}
	if _, err := session.NewManager(good); err != nil {
		t.Fatalf("NewManager(minimal config): %v", err)
	}
	bad := session.Config{
		Keys:           []session.Key{{ID: "k1", Secret: []byte("short")}},
		MFASessionIdle: time.Minute,
		RememberTTL:    500 * day,
		StateTTL:       73 * time.Hour,
		AssertionTTL:   time.Millisecond,
		CookiePrefix:   "bad prefix",
	}
	_, err := session.NewManager(bad)
	if err == nil {
		t.Fatal("NewManager(bad config) succeeded")
	}
	for _, want := range []string{"at least 32", "no store", "mfa session idle", "remember ttl", "state ttl", "assertion ttl", "cookie prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q (every problem must be reported at once)", err, want)
		}
	}
}

func TestCookies(t *testing.T) {
	tests := []struct {
		name                        string
		dev                         bool
		prefix                      string
		wantMFA, wantRem, wantState string
	}{
		{"secure default", false, "", "__Host-stepup_mfa", "__Host-stepup_remember", "__Host-stepup_state"},
		{"development", true, "", "stepup_mfa", "stepup_remember", "stepup_state"},
		{"custom prefix", false, "acme", "__Host-acme_mfa", "__Host-acme_remember", "__Host-acme_state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *session.Config) { c.Development = tt.dev; c.CookiePrefix = tt.prefix })
			mfa, rem, st := e.m.CookieNames()
			if diff := cmp.Diff([]string{tt.wantMFA, tt.wantRem, tt.wantState}, []string{mfa, rem, st}); diff != "" {
				t.Errorf("CookieNames (-want +got):\n%s", diff)
			}
			mc, _ := issueMFA(t, e.m, "alice", "")
			rc, _ := issueRemember(t, e.m, "alice")
			tok, err := e.m.NewState(context.Background(), session.State{User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			sc := e.m.StateCookie(tok)
			for _, c := range []struct {
				c      *http.Cookie
				name   string
				maxAge int
			}{
				{mc, mfa, int(session.DefaultMFASessionTTL / time.Second)},
				{rc, rem, int(session.DefaultRememberTTL / time.Second)},
				{sc, st, int(session.DefaultStateTTL / time.Second)},
			} {
				if err := c.c.Valid(); err != nil {
					t.Errorf("%s: invalid cookie: %v", c.name, err)
				}
				if c.c.Name != c.name || !c.c.HttpOnly || c.c.Secure == tt.dev || c.c.SameSite != http.SameSiteLaxMode ||
					c.c.Path != "/" || c.c.Domain != "" || c.c.MaxAge != c.maxAge || !c.c.Expires.Equal(epoch.Add(time.Duration(c.maxAge)*time.Second)) {
					t.Errorf("cookie %s", c.c.String())
				}
				if strings.HasPrefix(c.c.Name, "__Host-") && (!c.c.Secure || c.c.Path != "/" || c.c.Domain != "") {
					t.Errorf("%s breaks the __Host- rules", c.c.String())
				}
			}
			for _, n := range []string{mfa, rem, st} {
				if !e.m.OwnsCookie(n) {
					t.Errorf("OwnsCookie(%q) = false", n)
				}
			}
			if e.m.OwnsCookie("session") || e.m.OwnsCookie("") {
				t.Error("OwnsCookie claims a foreign cookie")
			}
			clr := e.m.ClearCookie(mfa)
			if clr.Name != mfa || clr.Value != "" || clr.MaxAge >= 0 || clr.Secure == tt.dev || clr.Path != "/" || !clr.HttpOnly {
				t.Errorf("ClearCookie = %s", clr.String())
			}
			if !strings.Contains(clr.String(), "Max-Age=0") {
				t.Errorf("ClearCookie does not expire the cookie: %s", clr.String())
			}
		})
	}
}

func TestMFASession(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	c, s := issueMFA(t, e.m, "alice", "idp-sid-1")
	want := session.MFASession{ID: s.ID, User: "alice", SID: "idp-sid-1", Realm: testRealm, Proofs: []session.Proof{{Factor: "otp", At: epoch}}, AuthTime: epoch, IssuedAt: epoch,
		ExpiresAt: epoch.Add(12 * time.Hour), LastSeen: epoch, UserAgent: "Chrome on Linux"}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("IssueMFASession (-want +got):\n%s", diff)
	}
	got, err := e.m.VerifyMFASession(ctx, c.Value, "alice", "idp-sid-1")
	if err != nil {
		t.Fatalf("VerifyMFASession: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VerifyMFASession (-want +got):\n%s", diff)
	}
	// Bound to its IdP session: an identity without one (another source,
	// an access token) or with another does not get it.
	for _, sid := range []string{"", "idp-sid-2"} {
		if _, err := e.m.VerifyMFASession(ctx, c.Value, "alice", sid); !errors.Is(err, session.ErrWrongSession) {
			t.Errorf("VerifyMFASession(sid %q) = %v, want ErrWrongSession", sid, err)
		}
	}
	// And a session proven without an IdP session proves nothing to an
	// identity that has one.
	c2, _ := issueMFA(t, e.m, "alice", "")
	if _, err := e.m.VerifyMFASession(ctx, c2.Value, "alice", "idp-sid-1"); !errors.Is(err, session.ErrWrongSession) {
		t.Errorf("a session without sid verified for an identity with one: %v", err)
	}
	if strings.Contains(c.Value, "idp-sid-1") || strings.Contains(c.Value, "otp") {
		t.Errorf("cookie %q carries session details that belong in the store", c.Value)
	}
}

// TestMFASessionRejections covers every way an MFA session cookie must
// fail, each with its sentinel.
func TestMFASessionRejections(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := testKey("old", 1), testKey("new", 2)
	tests := []struct {
		name string
		// setup returns the cookie value to verify, for user "alice" and
		// IdP session "sid-1", after arranging the scene.
		setup   func(t *testing.T, e *env) (m *session.Manager, value string)
		wantErr error
	}{
		{"valid", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.m, "alice", "sid-1")
			return e.m, c.Value
		}, nil},
		{"no cookie", func(t *testing.T, e *env) (*session.Manager, string) { return e.m, "" }, session.ErrNoCookie},
		{"garbage", func(t *testing.T, e *env) (*session.Manager, string) { return e.m, "hello" }, session.ErrMalformed},
		{"truncated", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.m, "alice", "sid-1")
			return e.m, c.Value[:len(c.Value)-3]
		}, session.ErrMalformed},
		{"tampered", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.m, "alice", "sid-1")
			b := []byte(c.Value)
			i := strings.Index(c.Value, ".k1.") + 6 // inside the payload
			b[i] = rotate(b[i], 4)
			return e.m, string(b)
		}, session.ErrBadSignature},
		{"forged with another secret", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.with(t, session.Key{ID: "k1", Secret: bytes.Repeat([]byte{9}, 32)}), "alice", "sid-1")
			return e.m, c.Value
		}, session.ErrBadSignature},
		{"expired", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.m, "alice", "sid-1")
			for range 12 { // keep it in use so only the lifetime ends it
				e.clk.Advance(59 * time.Minute)
				if _, err := e.m.VerifyMFASession(ctx, c.Value, "alice", "sid-1"); err != nil {
					t.Fatalf("while in use: %v", err)
				}
			}
			e.clk.Advance(12*time.Minute + time.Second)
			return e.m, c.Value
		}, session.ErrExpired},
		{"idle", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.m, "alice", "sid-1")
			e.clk.Advance(session.DefaultMFASessionIdle + time.Second)
			return e.m, c.Value
		}, session.ErrExpired},
		{"revoked", func(t *testing.T, e *env) (*session.Manager, string) {
			c, s := issueMFA(t, e.m, "alice", "sid-1")
			if n, err := e.m.Revoke(ctx, "alice", s.ID); err != nil || n != 1 {
				t.Fatalf("Revoke = %d, %v", n, err)
			}
			return e.m, c.Value
		}, session.ErrRevoked},
		{"other user", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.m, "mallory", "sid-1")
			return e.m, c.Value
		}, session.ErrWrongUser},
		{"other IdP session", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.m, "alice", "sid-0")
			return e.m, c.Value
		}, session.ErrWrongSession},
		{"remember cookie presented as MFA session", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueRemember(t, e.m, "alice")
			return e.m, c.Value
		}, session.ErrWrongPurpose},
		{"state token presented as MFA session", func(t *testing.T, e *env) (*session.Manager, string) {
			tok, err := e.m.NewState(ctx, session.State{User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			return e.m, tok
		}, session.ErrWrongPurpose},
		{"assertion presented as MFA session", func(t *testing.T, e *env) (*session.Manager, string) {
			tok, err := e.m.IssueAssertion("alice", nil, "sid-1")
			if err != nil {
				t.Fatal(err)
			}
			return e.m, tok
		}, session.ErrWrongPurpose},
		{"unknown key id", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.with(t, testKey("zz", 5)), "alice", "sid-1")
			return e.m, c.Value
		}, session.ErrUnknownKey},
		{"rotated key keeps old cookies", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.with(t, oldKey), "alice", "sid-1")
			return e.with(t, newKey, oldKey), c.Value
		}, nil},
		{"old key after removal", func(t *testing.T, e *env) (*session.Manager, string) {
			c, _ := issueMFA(t, e.with(t, oldKey), "alice", "sid-1")
			return e.with(t, newKey), c.Value
		}, session.ErrUnknownKey},
		{"oversized", func(t *testing.T, e *env) (*session.Manager, string) {
			return e.m, strings.Repeat("v1.", 2000)
		}, session.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			m, value := tt.setup(t, e)
			_, err := m.VerifyMFASession(ctx, value, "alice", "sid-1")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyMFASession error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				checkRejectLogged(t, e, session.Reason(err), value)
			}
		})
	}
}

// checkRejectLogged checks that a rejection was logged with its reason and
// without the cookie value or any piece of it.
func checkRejectLogged(t *testing.T, e *env, reason, value string) {
	t.Helper()
	logs := e.logs.String()
	if !strings.Contains(logs, `"reason":"`+reason+`"`) {
		t.Errorf("rejection not logged with reason %q; logs:\n%s", reason, logs)
	}
	// The payload and the MAC are the secret-bearing parts; version,
	// purpose and key id are public labels.
	parts := strings.Split(value, ".")
	if len(parts) == 5 {
		parts = parts[3:]
	}
	for _, part := range parts {
		if len(part) >= 8 && strings.Contains(logs, part) {
			t.Errorf("logs contain part of the cookie value %q:\n%s", part, logs)
		}
	}
}

func TestMFASessionTouch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	c, _ := issueMFA(t, e.m, "alice", "")
	verify := func() session.MFASession {
		t.Helper()
		s, err := e.m.VerifyMFASession(ctx, c.Value, "alice", "")
		if err != nil {
			t.Fatalf("VerifyMFASession: %v", err)
		}
		return s
	}
	for range 10 {
		e.clk.Advance(5 * time.Second)
		verify()
	}
	if g, u := e.store.gets.Load(), e.store.updates.Load(); g != 10 || u != 0 {
		t.Errorf("10 verifications within a minute: %d reads, %d writes; want 10 reads, 0 writes", g, u)
	}
	e.clk.Advance(20 * time.Second) // 70 s after issue
	if s := verify(); !s.LastSeen.Equal(epoch.Add(70 * time.Second)) {
		t.Errorf("LastSeen = %v, want %v", s.LastSeen, epoch.Add(70*time.Second))
	}
	if u := e.store.updates.Load(); u != 1 {
		t.Errorf("writes after a minute = %d, want 1", u)
	}
	// Keeping it in use keeps it alive past the idle timeout.
	for range 3 {
		e.clk.Advance(session.DefaultMFASessionIdle - time.Minute)
		verify()
	}
	list, err := e.m.ListUser(ctx, "alice")
	if err != nil || len(list.MFA) != 1 {
		t.Fatalf("ListUser = %+v, %v", list, err)
	}
}

func TestIdleTimeoutOff(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *session.Config) { c.MFASessionIdle = session.NoTimeout; c.RememberIdle = session.NoTimeout })
	mc, _ := issueMFA(t, e.m, "alice", "")
	rc, _ := issueRemember(t, e.m, "alice")
	e.clk.Advance(11 * time.Hour)
	if _, err := e.m.VerifyMFASession(ctx, mc.Value, "alice", ""); err != nil {
		t.Errorf("MFA session unused for 11 h with the idle timeout off: %v", err)
	}
	e.clk.Advance(25 * day)
	if _, err := e.m.VerifyRemember(ctx, rc.Value, "alice"); err != nil {
		t.Errorf("remembered browser unused for 26 days with the idle timeout off: %v", err)
	}
}

func TestRemember(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	c, d := issueRemember(t, e.m, "alice")
	want := session.Device{ID: d.ID, User: "alice", Created: epoch, LastUsed: epoch, ExpiresAt: epoch.Add(30 * day), UserAgent: "Firefox on Windows",
		Realm: testRealm, Proofs: []session.Proof{{Factor: "otp", At: epoch}}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("IssueRemember (-want +got):\n%s", diff)
	}
	got, err := e.m.VerifyRemember(ctx, c.Value, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VerifyRemember (-want +got):\n%s", diff)
	}
	// The store keeps only a hash of the device token.
	raw, err := e.mem.GetUser(ctx, "alice", session.KindDevice, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		T string `json:"t"`
	}
	payload, err := e.m.Keyring().Verify(session.PurposeRemember, c.Value)
	if err != nil || json.Unmarshal(payload, &claims) != nil || len(claims.T) != 43 {
		t.Fatalf("cookie payload %q, %v: want a 32-byte device token", payload, err)
	}
	if bytes.Contains(raw, []byte(claims.T)) {
		t.Errorf("store record %s contains the device token", raw)
	}
}

// TestRememberThirtyDays: valid on day 29, invalid on day 31, with the
// default inactivity expiry (the browser is used every 6 days) and without.
func TestRememberThirtyDays(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		idle     time.Duration
		useEvery time.Duration // 0: not used in between
	}{
		{"idle timeout off", session.NoTimeout, 0},
		{"used every 6 days", 7 * day, 6 * day},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *session.Config) { c.RememberIdle = tt.idle })
			c, _ := issueRemember(t, e.m, "alice")
			at := func(d time.Duration) error {
				for tt.useEvery > 0 && e.clk.Now().Add(tt.useEvery).Before(epoch.Add(d)) {
					e.clk.Advance(tt.useEvery)
					if _, err := e.m.VerifyRemember(ctx, c.Value, "alice"); err != nil {
						t.Fatalf("use on %v: %v", e.clk.Now().Sub(epoch), err)
					}
				}
				e.clk.Advance(epoch.Add(d).Sub(e.clk.Now()))
				_, err := e.m.VerifyRemember(ctx, c.Value, "alice")
				return err
			}
			if err := at(29 * day); err != nil {
				t.Errorf("day 29: %v, want valid", err)
			}
			if err := at(31 * day); !errors.Is(err, session.ErrExpired) {
				t.Errorf("day 31: error = %v, want ErrExpired", err)
			}
		})
	}
}

func TestRememberInactivity(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *session.Config) { c.RememberIdle = 7 * day })
	c1, _ := issueRemember(t, e.m, "alice")
	c2, _ := issueRemember(t, e.m, "alice")
	e.clk.Advance(6 * day)
	if _, err := e.m.VerifyRemember(ctx, c1.Value, "alice"); err != nil {
		t.Fatalf("day 6: %v", err)
	}
	e.clk.Advance(6 * day) // day 12: c1 used 6 days ago, c2 never
	if _, err := e.m.VerifyRemember(ctx, c1.Value, "alice"); err != nil {
		t.Errorf("day 12, used on day 6: %v, want valid", err)
	}
	if _, err := e.m.VerifyRemember(ctx, c2.Value, "alice"); !errors.Is(err, session.ErrExpired) {
		t.Errorf("day 12, unused for 12 days: error = %v, want ErrExpired", err)
	}
	list, err := e.m.ListUser(ctx, "alice")
	if err != nil || len(list.Devices) != 1 {
		t.Errorf("ListUser lists %d devices, %v; want 1 (the inactive one is left out)", len(list.Devices), err)
	}
}

func TestRememberRejections(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		setup   func(t *testing.T, e *env) string
		wantErr error
	}{
		{"valid", func(t *testing.T, e *env) string { c, _ := issueRemember(t, e.m, "alice"); return c.Value }, nil},
		{"no cookie", func(t *testing.T, e *env) string { return "" }, session.ErrNoCookie},
		{"other user", func(t *testing.T, e *env) string { c, _ := issueRemember(t, e.m, "bob"); return c.Value }, session.ErrWrongUser},
		{"MFA session presented as remember", func(t *testing.T, e *env) string { c, _ := issueMFA(t, e.m, "alice", ""); return c.Value }, session.ErrWrongPurpose},
		{"state presented as remember", func(t *testing.T, e *env) string {
			tok, err := e.m.NewState(ctx, session.State{User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, session.ErrWrongPurpose},
		{"revoked", func(t *testing.T, e *env) string {
			c, _ := issueRemember(t, e.m, "alice")
			if n, err := e.m.Revoke(ctx, "alice", ""); err != nil || n != 1 {
				t.Fatalf("Revoke = %d, %v", n, err)
			}
			return c.Value
		}, session.ErrRevoked},
		{"device token does not match the store", func(t *testing.T, e *env) string {
			c, d := issueRemember(t, e.m, "alice")
			raw, err := e.mem.GetUser(ctx, "alice", session.KindDevice, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			rec["h"] = strings.Repeat("00", 32)
			raw, _ = json.Marshal(rec)
			if err := e.mem.PutUser(ctx, "alice", session.KindDevice, d.ID, raw, time.Hour); err != nil {
				t.Fatal(err)
			}
			return c.Value
		}, session.ErrBadSignature},
		{"unknown key", func(t *testing.T, e *env) string {
			c, _ := issueRemember(t, e.with(t, testKey("zz", 7)), "alice")
			return c.Value
		}, session.ErrUnknownKey},
		{"expired", func(t *testing.T, e *env) string {
			c, _ := issueRemember(t, e.m, "alice")
			e.clk.Advance(31 * day)
			return c.Value
		}, session.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *session.Config) { c.RememberIdle = session.NoTimeout })
			value := tt.setup(t, e)
			_, err := e.m.VerifyRemember(ctx, value, "alice")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyRemember error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				checkRejectLogged(t, e, session.Reason(err), value)
			}
		})
	}
}

func TestState(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	in := session.State{
		User:        "alice",
		ClientID:    "app-1",
		ReturnURL:   "https://app.example.com/reports?q=1",
		Requirement: session.Requirement{Provider: "duo", AllowRemember: true, Options: map[string]string{"host": "api-x.duosecurity.com"}},
	}
	tok, err := e.m.NewState(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tok, "reports") {
		t.Error("state token carries the return URL; it belongs in the store")
	}
	e.clk.Advance(time.Minute)
	loaded, err := e.m.LoadState(ctx, tok, "alice")
	if err != nil {
		t.Fatalf("LoadState: %v", err)
	}
	got, err := e.m.ConsumeState(ctx, tok, "alice")
	if err != nil {
		t.Fatalf("ConsumeState: %v", err)
	}
	want := in
	want.ID, want.Created, want.ExpiresAt = got.ID, epoch, epoch.Add(session.DefaultStateTTL)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ConsumeState (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(got, loaded); diff != "" {
		t.Errorf("LoadState differs from ConsumeState (-consume +load):\n%s", diff)
	}
	if _, err := e.m.ConsumeState(ctx, tok, "alice"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("second ConsumeState error = %v, want ErrNotFound", err)
	}
	if _, err := e.m.NewState(ctx, session.State{}); err == nil {
		t.Error("NewState without a user: no error")
	}
}

// TestStateOtherUser: a leaked state link presented by another user is
// refused without being consumed, so its rightful user can still use it.
func TestStateOtherUser(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	tok, err := e.m.NewState(ctx, session.State{User: "alice", ReturnURL: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ConsumeState(ctx, tok, "mallory"); !errors.Is(err, session.ErrWrongUser) {
		t.Fatalf("ConsumeState by another user: error = %v, want ErrWrongUser", err)
	}
	checkRejectLogged(t, e, "wrong_user", tok)
	if _, err := e.m.ConsumeState(ctx, tok, "alice"); err != nil {
		t.Errorf("ConsumeState by its user after the other user's attempt: %v", err)
	}
}

func TestStateRejections(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	newState := func() string {
		tok, err := e.m.NewState(ctx, session.State{User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	expiring := newState()
	e.clk.Advance(session.DefaultStateTTL + time.Second)
	mc, _ := issueMFA(t, e.m, "alice", "")
	tests := []struct {
		name    string
		tok     string
		wantErr error
	}{
		{"expired", expiring, session.ErrExpired},
		{"empty", "", session.ErrNoCookie},
		{"MFA cookie as state", mc.Value, session.ErrWrongPurpose},
		{"truncated", newState()[:20], session.ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := e.m.ConsumeState(ctx, tt.tok, "alice"); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: ConsumeState error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestStateConcurrentConsume(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	tok, err := e.m.NewState(ctx, session.State{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var wins, notFound atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 20 {
		wg.Go(func() {
			<-start
			_, err := e.m.ConsumeState(ctx, tok, "alice")
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, session.ErrNotFound):
				notFound.Add(1)
			default:
				t.Errorf("ConsumeState: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || notFound.Load() != 19 {
		t.Errorf("20 concurrent ConsumeState: %d won, %d not found; want 1 and 19", wins.Load(), notFound.Load())
	}
}

func TestAssertion(t *testing.T) {
	e := newEnv(t, nil)
	claims := map[string]any{"email": "alice@example.com", "name": "Alice", "email_verified": true}
	tok, err := e.m.IssueAssertion("alice", claims, "sid-1")
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.m.VerifyAssertion(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := session.Assertion{User: "alice", SID: "sid-1", Claims: claims, IssuedAt: epoch, ExpiresAt: epoch.Add(session.DefaultAssertionTTL)}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("VerifyAssertion (-want +got):\n%s", diff)
	}
	mc, _ := issueMFA(t, e.m, "alice", "")
	other, _ := issueMFA(t, e.with(t, testKey("zz", 3)), "alice", "")
	e.clk.Advance(session.DefaultAssertionTTL)
	tests := []struct {
		name    string
		tok     string
		wantErr error
	}{
		{"expired", tok, session.ErrExpired},
		{"empty", "", session.ErrNoCookie},
		{"MFA cookie as assertion", mc.Value, session.ErrWrongPurpose},
		{"unknown key", other.Value, session.ErrUnknownKey},
		{"garbage", "a.b.c.d.e", session.ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := e.m.VerifyAssertion(tt.tok); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: VerifyAssertion error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if _, err := e.m.IssueAssertion("alice", map[string]any{"big": strings.Repeat("x", session.MaxTokenSize)}, ""); err == nil {
		t.Error("IssueAssertion of an oversized assertion: no error")
	}
	if _, err := e.m.IssueAssertion("", nil, ""); err == nil {
		t.Error("IssueAssertion without a user: no error")
	}
}

func TestListAndRevoke(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	m1c, m1 := issueMFA(t, e.m, "alice", "s")
	e.clk.Advance(time.Second)
	_, m2 := issueMFA(t, e.m, "alice", "s")
	d1c, d1 := issueRemember(t, e.m, "alice")
	e.clk.Advance(time.Second)
	d2c, d2 := issueRemember(t, e.m, "alice")
	bobc, _ := issueRemember(t, e.m, "bob")

	got, err := e.m.ListUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := session.Sessions{MFA: []session.MFASession{m1, m2}, Devices: []session.Device{d1, d2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListUser (-want +got):\n%s", diff)
	}

	if n, err := e.m.Revoke(ctx, "alice", d1.ID); err != nil || n != 1 {
		t.Errorf("Revoke(device) = %d, %v; want 1", n, err)
	}
	if _, err := e.m.VerifyRemember(ctx, d1c.Value, "alice"); !errors.Is(err, session.ErrRevoked) {
		t.Errorf("revoked device: error = %v, want ErrRevoked", err)
	}
	if _, err := e.m.VerifyRemember(ctx, d2c.Value, "alice"); err != nil {
		t.Errorf("other device after revoking one: %v", err)
	}
	if n, err := e.m.Revoke(ctx, "alice", "nope"); err != nil || n != 0 {
		t.Errorf("Revoke(unknown id) = %d, %v; want 0, nil", n, err)
	}
	// An enrolled factor is another kind of record: revoking sessions must
	// leave it alone (factors are reset with `stepup factors reset`).
	if err := e.store.PutUser(ctx, "alice", "factor", "totp", []byte("sealed"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, err := e.m.Revoke(ctx, "alice", ""); err != nil || n != 3 {
		t.Errorf("Revoke(all) = %d, %v; want 3", n, err)
	}
	if _, err := e.store.GetUser(ctx, "alice", "factor", "totp"); err != nil {
		t.Errorf("Revoke(all) removed the user's factor: %v", err)
	}
	if _, err := e.m.VerifyMFASession(ctx, m1c.Value, "alice", ""); !errors.Is(err, session.ErrRevoked) {
		t.Errorf("MFA session after revoking all: error = %v, want ErrRevoked", err)
	}
	if _, err := e.m.VerifyRemember(ctx, bobc.Value, "bob"); err != nil {
		t.Errorf("bob's device after revoking alice's: %v", err)
	}
	got, err = e.m.ListUser(ctx, "alice")
	if err != nil || len(got.MFA)+len(got.Devices) != 0 {
		t.Errorf("ListUser after revoking all = %+v, %v; want nothing", got, err)
	}
}

// failingStore fails every call like a store whose backend is down.
type failingStore struct{ session.Store }

var errBackend = errors.New("connection refused")

func (failingStore) GetUser(context.Context, string, string, string) ([]byte, error) {
	return nil, errBackend
}

func (failingStore) PutUser(context.Context, string, string, string, []byte, time.Duration) error {
	return errBackend
}

func (failingStore) Put(context.Context, string, []byte, time.Duration) error { return errBackend }

func (failingStore) Consume(context.Context, string) ([]byte, error) { return nil, errBackend }

func (failingStore) Get(context.Context, string) ([]byte, error) { return nil, errBackend }

func (failingStore) PutIfAbsent(context.Context, string, []byte, time.Duration) (bool, error) {
	return false, errBackend
}

func (failingStore) ListUser(context.Context, string, string) ([]session.Record, error) {
	return nil, errBackend
}

func (failingStore) DeleteUser(context.Context, string, string, string) (int, error) {
	return 0, errBackend
}

// TestStoreDown: every store failure surfaces as ErrStoreUnavailable, so
// callers fail closed; no rejection is logged as if the cookie were bad.
func TestStoreDown(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	mc, _ := issueMFA(t, e.m, "alice", "")
	rc, _ := issueRemember(t, e.m, "alice")
	st, err := e.m.NewState(ctx, session.State{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	bigState := session.State{User: "alice", ReturnURL: "https://app.example.com/" + strings.Repeat("x", session.MaxEmbeddedStateSize)}
	bigSt, err := e.m.NewState(ctx, bigState)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Store = failingStore{}
	m, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.logs.Reset()
	calls := []struct {
		name string
		call func() error
	}{
		{"VerifyMFASession", func() error { _, err := m.VerifyMFASession(ctx, mc.Value, "alice", ""); return err }},
		{"VerifyRemember", func() error { _, err := m.VerifyRemember(ctx, rc.Value, "alice"); return err }},
		{"LoadState", func() error { _, err := m.LoadState(ctx, st, "alice"); return err }},
		{"ConsumeState", func() error { _, err := m.ConsumeState(ctx, st, "alice"); return err }},
		{"ConsumeState (stored)", func() error { _, err := m.ConsumeState(ctx, bigSt, "alice"); return err }},
		{"IssueMFASession", func() error {
			_, _, err := m.IssueMFASession(ctx, session.Grant{User: "alice", SID: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
			return err
		}},
		{"IssueRemember", func() error {
			_, _, err := m.IssueRemember(ctx, session.Grant{User: "alice", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
			return err
		}},
		// A state small enough for its token needs no store; a large one does.
		{"NewState (stored)", func() error { _, err := m.NewState(ctx, bigState); return err }},
		{"ListUser", func() error { _, err := m.ListUser(ctx, "alice"); return err }},
		{"Revoke", func() error { _, err := m.Revoke(ctx, "alice", ""); return err }},
	}
	for _, c := range calls {
		err := c.call()
		if !errors.Is(err, session.ErrStoreUnavailable) || !errors.Is(err, errBackend) {
			t.Errorf("%s: error = %v, want ErrStoreUnavailable wrapping the backend error", c.name, err)
		}
	}
	if e.logs.Len() != 0 {
		t.Errorf("store failures were logged as rejections:\n%s", e.logs.String())
	}
	// A closed real store behaves the same.
	e.mem.Close()
	if _, err := e.m.VerifyMFASession(ctx, mc.Value, "alice", ""); !errors.Is(err, session.ErrStoreUnavailable) {
		t.Errorf("closed store: error = %v, want ErrStoreUnavailable", err)
	}
}

func TestIssueRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	if _, _, err := e.m.IssueMFASession(ctx, session.Grant{User: "", SID: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""}); err == nil {
		t.Error("IssueMFASession without a user: no error")
	}
	if _, _, err := e.m.IssueMFASession(ctx, session.Grant{User: "alice", SID: "", Realm: testRealm, Factors: []string{""}, UserAgent: ""}); err == nil {
		t.Error("IssueMFASession without a method: no error")
	}
	if _, _, err := e.m.IssueMFASession(ctx, session.Grant{User: "alice", SID: strings.Repeat("s", session.MaxSIDLen+1), Realm: testRealm, Factors: []string{"otp"}}); err == nil {
		t.Error("IssueMFASession with an oversized sid: no error")
	}
	if _, _, err := e.m.IssueRemember(ctx, session.Grant{User: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""}); err == nil {
		t.Error("IssueRemember without a user: no error")
	}
	if _, _, err := e.m.IssueMFASession(ctx, session.Grant{User: "bad\nuser", SID: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""}); !errors.Is(err, session.ErrInvalidArgument) {
		t.Errorf("IssueMFASession with a control character in the user: error = %v, want ErrInvalidArgument", err)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{session.ErrNoCookie, "no_cookie"},
		{session.ErrExpired, "expired"},
		{session.ErrRevoked, "revoked"},
		{errors.Join(session.ErrStoreUnavailable, session.ErrNotFound), "store_unavailable"},
		{errors.New("other"), "error"},
	}
	for _, tt := range tests {
		if got := session.Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// FuzzVerify feeds arbitrary cookie values to every verification: none
// may panic or accept.
func FuzzVerify(f *testing.F) {
	e := newEnv(f, func(c *session.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	mc, _ := issueMFA(f, e.m, "alice", "")
	rc, _ := issueRemember(f, e.m, "alice")
	for _, v := range []string{mc.Value, rc.Value, "", "v1.mfa_session.k1.e30.AAAA", "v1.remember.k1..", mc.Value + "x"} {
		f.Add(v)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, v string) {
		if v == mc.Value || v == rc.Value {
			return
		}
		if _, err := e.m.VerifyMFASession(ctx, v, "alice", ""); err == nil {
			t.Fatalf("VerifyMFASession accepted %q", v)
		}
		if _, err := e.m.VerifyRemember(ctx, v, "alice"); err == nil {
			t.Fatalf("VerifyRemember accepted %q", v)
		}
		if _, err := e.m.ConsumeState(ctx, v, "alice"); err == nil {
			t.Fatalf("ConsumeState accepted %q", v)
		}
		if _, err := e.m.VerifyAssertion(v); err == nil {
			t.Fatalf("VerifyAssertion accepted %q", v)
		}
	})
}

func BenchmarkVerifyMFASession(b *testing.B) {
	e := newEnv(b, func(c *session.Config) { c.Logger = nil })
	c, _ := issueMFA(b, e.m, "auth0|5f7c8ec7c33c6c004bbafe82", "sid-1234")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.m.VerifyMFASession(ctx, c.Value, "auth0|5f7c8ec7c33c6c004bbafe82", "sid-1234"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRemember(b *testing.B) {
	e := newEnv(b, func(c *session.Config) { c.Logger = nil })
	c, _ := issueRemember(b, e.m, "auth0|5f7c8ec7c33c6c004bbafe82")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.m.VerifyRemember(ctx, c.Value, "auth0|5f7c8ec7c33c6c004bbafe82"); err != nil {
			b.Fatal(err)
		}
	}
}

// racingStore runs a hook before each UpdateUser, to stage what another
// replica does between a verification's read and its touch.
type racingStore struct {
	session.Store
	before func()
}

func (r racingStore) UpdateUser(ctx context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	if r.before != nil {
		r.before()
	}
	return r.Store.UpdateUser(ctx, user, kind, id, val, ttl)
}

type failingUpdate struct{ session.Store }

func (failingUpdate) UpdateUser(context.Context, string, string, string, []byte, time.Duration) error {
	return errBackend
}

// TestTouchRace: a revocation landing between a verification's read and
// its last-seen write wins; the write never brings the record back. A
// failing write fails the verification closed.
func TestTouchRace(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	mc, ms := issueMFA(t, e.m, "alice", "")
	e.clk.Advance(2 * time.Minute) // the next verification touches

	cfg := e.cfg
	cfg.Store = racingStore{Store: e.mem, before: func() {
		if _, err := e.mem.DeleteUser(ctx, "alice", "", ""); err != nil {
			t.Error(err)
		}
	}}
	racing, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := racing.VerifyMFASession(ctx, mc.Value, "alice", ""); !errors.Is(err, session.ErrRevoked) {
		t.Errorf("MFA session revoked during the touch: error = %v, want ErrRevoked", err)
	}
	if _, err := e.mem.GetUser(ctx, "alice", session.KindMFA, ms.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("the touch resurrected a revoked MFA session: GetUser error = %v", err)
	}

	e2 := newEnv(t, nil)
	mc, _ = issueMFA(t, e2.m, "alice", "")
	rc, _ := issueRemember(t, e2.m, "alice")
	e2.clk.Advance(2 * time.Minute)
	cfg = e2.cfg
	cfg.Store = failingUpdate{Store: e2.mem}
	failing, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failing.VerifyMFASession(ctx, mc.Value, "alice", ""); !errors.Is(err, session.ErrStoreUnavailable) {
		t.Errorf("MFA touch failing: error = %v, want ErrStoreUnavailable", err)
	}
	if _, err := failing.VerifyRemember(ctx, rc.Value, "alice"); !errors.Is(err, session.ErrStoreUnavailable) {
		t.Errorf("remember touch failing: error = %v, want ErrStoreUnavailable", err)
	}
}

// testRealm is the realm the tests' sessions are proven on.
const testRealm = "app.example.com"
