package session_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/memstore"
	"github.com/stepup-dev/stepup/session/storetest"
)

// opStore counts every store call by name, to show which operations a
// transaction state costs.
type opStore struct {
	session.Store
	mu  sync.Mutex
	ops map[string]int
}

func (s *opStore) count(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		s.ops = make(map[string]int)
	}
	s.ops[op]++
}

// take returns the counts so far and resets them.
func (s *opStore) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := s.ops
	s.ops = nil
	if ops == nil {
		ops = map[string]int{}
	}
	return ops
}

func (s *opStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.count("Get")
	return s.Store.Get(ctx, key)
}

func (s *opStore) Put(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	s.count("Put")
	return s.Store.Put(ctx, key, val, ttl)
}

func (s *opStore) PutIfAbsent(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	s.count("PutIfAbsent")
	return s.Store.PutIfAbsent(ctx, key, val, ttl)
}

func (s *opStore) Consume(ctx context.Context, key string) ([]byte, error) {
	s.count("Consume")
	return s.Store.Consume(ctx, key)
}

func (s *opStore) Delete(ctx context.Context, key string) error {
	s.count("Delete")
	return s.Store.Delete(ctx, key)
}

func (s *opStore) Incr(ctx context.Context, key string, window time.Duration) (int64, error) {
	s.count("Incr")
	return s.Store.Incr(ctx, key, window)
}

func (s *opStore) PutUser(ctx context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	s.count("PutUser")
	return s.Store.PutUser(ctx, user, kind, id, val, ttl)
}

func (s *opStore) UpdateUser(ctx context.Context, user, kind, id string, val []byte, ttl time.Duration) error {
	s.count("UpdateUser")
	return s.Store.UpdateUser(ctx, user, kind, id, val, ttl)
}

func (s *opStore) GetUser(ctx context.Context, user, kind, id string) ([]byte, error) {
	s.count("GetUser")
	return s.Store.GetUser(ctx, user, kind, id)
}

func (s *opStore) DeleteUser(ctx context.Context, user, kind, id string) (int, error) {
	s.count("DeleteUser")
	return s.Store.DeleteUser(ctx, user, kind, id)
}

// stateStores are the stores the transaction state tests run on: the
// in-memory store and the embedded (bbolt) one, on a fake clock.
var stateStores = []struct {
	name string
	open func(t testing.TB, clk *storetest.Clock) session.Store
}{
	{"memstore", func(t testing.TB, clk *storetest.Clock) session.Store {
		s := memstore.New(memstore.Options{Now: clk.Now})
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"boltstore", func(t testing.TB, clk *storetest.Clock) session.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "sessions.db"), boltstore.Options{Now: clk.Now, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// stateEnv is a manager on a counted store and a fake clock.
type stateEnv struct {
	m     *session.Manager
	clk   *storetest.Clock
	store *opStore
	cfg   session.Config
}

func newStateEnv(t testing.TB, open func(testing.TB, *storetest.Clock) session.Store, keys ...session.Key) *stateEnv {
	t.Helper()
	if len(keys) == 0 {
		keys = []session.Key{testKey("k1", 1)}
	}
	clk := storetest.NewClock(epoch)
	if open == nil {
		open = stateStores[0].open
	}
	st := &opStore{Store: open(t, clk)}
	cfg := session.Config{Keys: keys, Store: st, Now: clk.Now}
	m, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &stateEnv{m: m, clk: clk, store: st, cfg: cfg}
}

// with returns a manager on the same store and clock with other keys.
func (e *stateEnv) with(t testing.TB, keys ...session.Key) *session.Manager {
	t.Helper()
	cfg := e.cfg
	cfg.Keys = keys
	m, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// statePaths are the two ways a state travels: in its token, or in the
// store when it is too large for a token.
var statePaths = []struct {
	name  string
	state session.State
}{
	{"embedded", session.State{
		User:        "alice",
		ClientID:    "payroll",
		ReturnURL:   "https://payroll.example.org/report?month=11",
		Requirement: session.Requirement{Provider: "duo", AllowRemember: true, Options: map[string]string{"host": "api-x.duosecurity.com"}},
	}},
	{"stored", session.State{
		User:        "alice",
		ClientID:    "payroll",
		ReturnURL:   "https://payroll.example.org/report?q=" + strings.Repeat("x", session.MaxEmbeddedStateSize),
		Requirement: session.Requirement{Provider: "any"},
	}},
}

func newState(t testing.TB, m *session.Manager, st session.State) string {
	t.Helper()
	tok, err := m.NewState(context.Background(), st)
	if err != nil {
		t.Fatalf("NewState: %v", err)
	}
	return tok
}

// TestStateExactlyOnce: of N requests racing to consume one state, exactly
// one wins and the others see ErrNotFound, on every store and both paths.
// A state loaded first can still be consumed; once consumed it can be
// neither loaded nor consumed again.
func TestStateExactlyOnce(t *testing.T) {
	const n = 32
	for _, store := range stateStores {
		for _, path := range statePaths {
			t.Run(store.name+"/"+path.name, func(t *testing.T) {
				ctx := context.Background()
				e := newStateEnv(t, store.open)
				tok := newState(t, e.m, path.state)
				loaded, err := e.m.LoadState(ctx, tok, "alice")
				if err != nil {
					t.Fatalf("LoadState: %v", err)
				}
				if _, err := e.m.LoadState(ctx, tok, "alice"); err != nil {
					t.Fatalf("second LoadState: %v", err)
				}
				var wins, notFound atomic.Int64
				var won session.State
				var wg sync.WaitGroup
				start := make(chan struct{})
				for range n {
					wg.Go(func() {
						<-start
						st, err := e.m.ConsumeState(ctx, tok, "alice")
						switch {
						case err == nil:
							wins.Add(1)
							won = st
						case errors.Is(err, session.ErrNotFound):
							notFound.Add(1)
						default:
							t.Errorf("ConsumeState: %v", err)
						}
					})
				}
				close(start)
				wg.Wait()
				if wins.Load() != 1 || notFound.Load() != n-1 {
					t.Fatalf("%d concurrent ConsumeState: %d won, %d not found; want 1 and %d", n, wins.Load(), notFound.Load(), n-1)
				}
				want := path.state
				want.ID, want.Created, want.ExpiresAt = loaded.ID, epoch, epoch.Add(session.DefaultStateTTL)
				if diff := cmp.Diff(want, won); diff != "" {
					t.Errorf("ConsumeState (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(won, loaded); diff != "" {
					t.Errorf("LoadState differs from ConsumeState (-consume +load):\n%s", diff)
				}
				if _, err := e.m.ConsumeState(ctx, tok, "alice"); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("ConsumeState after use: error = %v, want ErrNotFound", err)
				}
				if _, err := e.m.LoadState(ctx, tok, "alice"); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("LoadState after use: error = %v, want ErrNotFound", err)
				}
				// Until it expires: then the token itself says so.
				e.clk.Advance(session.DefaultStateTTL)
				if _, err := e.m.ConsumeState(ctx, tok, "alice"); !errors.Is(err, session.ErrExpired) {
					t.Errorf("ConsumeState after expiry: error = %v, want ErrExpired", err)
				}
			})
		}
	}
}

// TestStateStoreOps: a state that fits its token costs no store operation
// to make, one read to load and one write to consume; a large one costs a
// write to make and one operation each to load and consume.
func TestStateStoreOps(t *testing.T) {
	tests := []struct {
		path                  int
		newOps, load, consume map[string]int
	}{
		{0, map[string]int{}, map[string]int{"Get": 1}, map[string]int{"PutIfAbsent": 1}},
		{1, map[string]int{"Put": 1}, map[string]int{"Get": 1}, map[string]int{"Consume": 1}},
	}
	for _, tt := range tests {
		path := statePaths[tt.path]
		t.Run(path.name, func(t *testing.T) {
			ctx := context.Background()
			e := newStateEnv(t, nil)
			tok := newState(t, e.m, path.state)
			if diff := cmp.Diff(tt.newOps, e.store.take()); diff != "" {
				t.Errorf("NewState store operations (-want +got):\n%s", diff)
			}
			if _, err := e.m.LoadState(ctx, tok, "alice"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.load, e.store.take()); diff != "" {
				t.Errorf("LoadState store operations (-want +got):\n%s", diff)
			}
			if _, err := e.m.ConsumeState(ctx, tok, "alice"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.consume, e.store.take()); diff != "" {
				t.Errorf("ConsumeState store operations (-want +got):\n%s", diff)
			}
		})
	}
}

// resign returns token's payload transformed by edit and signed again with
// kr, as a holder of the signing key could: the token then passes the
// signature check and only the layers below stand.
func resign(t testing.TB, kr *session.Keyring, token string, edit func([]byte) []byte) string {
	t.Helper()
	payload, err := kr.Verify(session.PurposeState, token)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := kr.Sign(session.PurposeState, edit(bytes.Clone(payload)))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestStateTokenRejected: every bad token is refused before any store
// write, with the sentinel callers map to a page; a refused token stays
// usable by its user.
func TestStateTokenRejected(t *testing.T) {
	k1, k2 := testKey("k1", 1), testKey("k2", 2)
	for _, path := range statePaths {
		t.Run(path.name, func(t *testing.T) {
			ctx := context.Background()
			e := newStateEnv(t, nil, k1)
			tok := newState(t, e.m, path.state)
			expiring := newState(t, e.m, path.state)
			bobs := path.state
			bobs.User = "bob"
			bobTok := newState(t, e.m, bobs)
			kr := e.m.Keyring()
			mc, _, err := e.m.IssueMFASession(ctx, session.Grant{User: "alice", SID: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
			if err != nil {
				t.Fatal(err)
			}
			removed := e.with(t, k2)
			forged := newState(t, e.with(t, session.Key{ID: "k1", Secret: k2.Secret}), path.state)
			dot := strings.LastIndexByte(tok, '.')
			e.clk.Advance(time.Minute)
			e.store.take()

			tests := []struct {
				name    string
				m       *session.Manager
				tok     string
				user    string
				wantErr error
			}{
				{"empty", e.m, "", "alice", session.ErrNoCookie},
				{"other user", e.m, tok, "mallory", session.ErrWrongUser},
				{"other user's state", e.m, bobTok, "alice", session.ErrWrongUser},
				{"MFA session as state", e.m, mc.Value, "alice", session.ErrWrongPurpose},
				{"purpose edited", e.m, strings.Replace(tok, ".state.", ".remember.", 1), "alice", session.ErrBadSignature},
				{"payload tampered", e.m, tok[:dot-3] + string(rotate(tok[dot-3], 7)) + tok[dot-2:], "alice", session.ErrBadSignature},
				{"signature tampered", e.m, tok[:len(tok)-3] + string(rotate(tok[len(tok)-3], 7)) + tok[len(tok)-2:], "alice", session.ErrBadSignature},
				{"truncated in the signature", e.m, tok[:len(tok)-5], "alice", session.ErrMalformed},
				{"truncated in the payload", e.m, tok[:dot-10], "alice", session.ErrMalformed},
				{"truncated to the header", e.m, tok[:10], "alice", session.ErrMalformed},
				{"forged with another secret under the same key id", e.m, forged, "alice", session.ErrBadSignature},
				{"old key after removal", removed, tok, "alice", session.ErrUnknownKey},
				// Validly signed, but the sealed layer does not hold.
				{"kind byte swapped", e.m, resign(t, kr, tok, func(p []byte) []byte { p[0] ^= 3; return p }), "alice", session.ErrBadSignature},
				{"unknown kind", e.m, resign(t, kr, tok, func(p []byte) []byte { p[0] = 9; return p }), "alice", session.ErrMalformed},
				{"id edited", e.m, resign(t, kr, tok, func(p []byte) []byte { p[5] ^= 1; return p }), "alice", session.ErrBadSignature},
				{"ciphertext edited", e.m, resign(t, kr, tok, func(p []byte) []byte { p[len(p)-20] ^= 1; return p }), "alice", session.ErrBadSignature},
				{"ciphertext cut", e.m, resign(t, kr, tok, func(p []byte) []byte { return p[:len(p)-1] }), "alice", session.ErrBadSignature},
				{"no ciphertext", e.m, resign(t, kr, tok, func(p []byte) []byte { return p[:17] }), "alice", session.ErrMalformed},
				{"header cut", e.m, resign(t, kr, tok, func(p []byte) []byte { return p[:5] }), "alice", session.ErrMalformed},
				{"empty payload", e.m, resign(t, kr, tok, func(p []byte) []byte { return nil }), "alice", session.ErrMalformed},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					for name, call := range map[string]func() error{
						"LoadState":    func() error { _, err := tt.m.LoadState(ctx, tt.tok, tt.user); return err },
						"ConsumeState": func() error { _, err := tt.m.ConsumeState(ctx, tt.tok, tt.user); return err },
					} {
						if err := call(); !errors.Is(err, tt.wantErr) {
							t.Errorf("%s: error = %v, want %v", name, err, tt.wantErr)
						}
					}
					if ops := e.store.take(); len(ops) != 0 {
						t.Errorf("a refused token cost store operations: %v", ops)
					}
				})
			}
			t.Run("state token as another purpose", func(t *testing.T) {
				if _, err := e.m.VerifyMFASession(ctx, tok, "alice", ""); !errors.Is(err, session.ErrWrongPurpose) {
					t.Errorf("VerifyMFASession: error = %v, want ErrWrongPurpose", err)
				}
				if _, err := e.m.VerifyAssertion(tok); !errors.Is(err, session.ErrWrongPurpose) {
					t.Errorf("VerifyAssertion: error = %v, want ErrWrongPurpose", err)
				}
			})
			t.Run("expired", func(t *testing.T) {
				e.clk.Advance(session.DefaultStateTTL)
				if _, err := e.m.ConsumeState(ctx, expiring, "alice"); !errors.Is(err, session.ErrExpired) {
					t.Errorf("ConsumeState: error = %v, want ErrExpired", err)
				}
				if _, err := e.m.LoadState(ctx, expiring, "alice"); !errors.Is(err, session.ErrExpired) {
					t.Errorf("LoadState: error = %v, want ErrExpired", err)
				}
			})
		})
	}
	// Refused attempts leave the state to its user.
	t.Run("rightful user after refusals", func(t *testing.T) {
		ctx := context.Background()
		e := newStateEnv(t, nil)
		tok := newState(t, e.m, statePaths[0].state)
		if _, err := e.m.ConsumeState(ctx, tok, "mallory"); !errors.Is(err, session.ErrWrongUser) {
			t.Fatalf("ConsumeState by another user: error = %v, want ErrWrongUser", err)
		}
		if _, err := e.m.ConsumeState(ctx, tok, "alice"); err != nil {
			t.Errorf("ConsumeState by its user after another user's attempt: %v", err)
		}
	})
}

// TestStateKeyRotation: a state made before a new key was put first stays
// valid while its key is listed; new states use the new key; removing the
// old key ends the old states.
func TestStateKeyRotation(t *testing.T) {
	ctx := context.Background()
	k1, k2 := testKey("k1", 1), testKey("k2", 2)
	for _, path := range statePaths {
		t.Run(path.name, func(t *testing.T) {
			e := newStateEnv(t, nil, k1)
			pending := newState(t, e.m, path.state)
			pending2 := newState(t, e.m, path.state)
			rotated := e.with(t, k2, k1)
			fresh := newState(t, rotated, path.state)
			if !strings.HasPrefix(fresh, "v1.state.k2.") {
				t.Errorf("rotated manager made %.20q…, want it signed by k2", fresh)
			}
			if _, err := rotated.LoadState(ctx, pending, "alice"); err != nil {
				t.Errorf("LoadState of a pending state after rotation: %v", err)
			}
			if _, err := rotated.ConsumeState(ctx, pending, "alice"); err != nil {
				t.Errorf("ConsumeState of a pending state after rotation: %v", err)
			}
			if _, err := e.m.ConsumeState(ctx, fresh, "alice"); !errors.Is(err, session.ErrUnknownKey) {
				t.Errorf("a replica not yet rotated, new state: error = %v, want ErrUnknownKey", err)
			}
			removed := e.with(t, k2)
			if _, err := removed.ConsumeState(ctx, pending2, "alice"); !errors.Is(err, session.ErrUnknownKey) {
				t.Errorf("old key removed, pending state: error = %v, want ErrUnknownKey", err)
			}
			if _, err := removed.ConsumeState(ctx, fresh, "alice"); err != nil {
				t.Errorf("old key removed, new state: %v", err)
			}
		})
	}
}

// TestStateTokenOpaque: the token carries the state encrypted: neither the
// token nor its decoded payload shows the return URL, the user, the client
// id or the requirement, and two tokens of the same state differ.
func TestStateTokenOpaque(t *testing.T) {
	e := newStateEnv(t, nil)
	st := session.State{
		User:        "auth0|alice-5f7c8ec7",
		ClientID:    "payroll-app",
		ReturnURL:   "https://payroll.example.org/reports/secret-plan",
		Requirement: session.Requirement{Provider: "google-authenticator", Options: map[string]string{"hint": "office-vpn"}},
	}
	a, b := newState(t, e.m, st), newState(t, e.m, st)
	if a == b {
		t.Error("two tokens of the same state are equal")
	}
	if len(a) > 800 {
		t.Errorf("state token is %d bytes; want a small token for a small state", len(a))
	}
	payload, err := e.m.Keyring().Verify(session.PurposeState, a)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"alice", "payroll", "secret-plan", "example.org", "google-authenticator", "office-vpn", "return_url"} {
		for name, hay := range map[string][]byte{"token": []byte(a), "payload": payload, "base64 payload": []byte(base64.RawURLEncoding.EncodeToString(payload))} {
			if bytes.Contains(hay, []byte(secret)) {
				t.Errorf("the %s shows %q in plain", name, secret)
			}
		}
	}
}

// TestStateLarge: a state too large for its token is kept in the store and
// the token stays small; one at the threshold travels in its token; one
// beyond MaxStateSize is refused.
func TestStateLarge(t *testing.T) {
	ctx := context.Background()
	e := newStateEnv(t, nil)
	size := func(st session.State) int {
		st.ID = strings.Repeat("0", 32)
		st.Created, st.ExpiresAt = epoch, epoch.Add(session.DefaultStateTTL)
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	// A return URL that makes the JSON exactly n bytes.
	withSize := func(n int) session.State {
		st := session.State{User: "alice", ReturnURL: "https://a.example/"}
		st.ReturnURL += strings.Repeat("x", n-size(st))
		if got := size(st); got != n {
			t.Fatalf("state of %d bytes, want %d", got, n)
		}
		return st
	}
	tests := []struct {
		name       string
		state      session.State
		wantStored bool
		maxToken   int
	}{
		{"at the threshold", withSize(session.MaxEmbeddedStateSize), false, session.MaxTokenSize},
		{"one byte over", withSize(session.MaxEmbeddedStateSize + 1), true, 400},
		{"very long return URL", withSize(session.MaxStateSize), true, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := newState(t, e.m, tt.state)
			ops := e.store.take()
			if stored := ops["Put"] == 1; stored != tt.wantStored {
				t.Errorf("NewState stored the state: %v (store operations %v), want %v", stored, ops, tt.wantStored)
			}
			if len(tok) > tt.maxToken {
				t.Errorf("token is %d bytes, want at most %d", len(tok), tt.maxToken)
			}
			got, err := e.m.LoadState(ctx, tok, "alice")
			if err != nil {
				t.Fatalf("LoadState: %v", err)
			}
			if got.ReturnURL != tt.state.ReturnURL {
				t.Errorf("LoadState return URL of %d bytes, want %d", len(got.ReturnURL), len(tt.state.ReturnURL))
			}
			if _, err := e.m.ConsumeState(ctx, tok, "alice"); err != nil {
				t.Fatalf("ConsumeState: %v", err)
			}
			if tt.wantStored {
				if _, err := e.store.Store.Get(ctx, "state:"+got.ID); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("stored state after ConsumeState: error = %v, want ErrNotFound (consumed)", err)
				}
			}
		})
	}
	if _, err := e.m.NewState(ctx, session.State{User: "alice", ReturnURL: strings.Repeat("x", session.MaxStateSize)}); err == nil {
		t.Error("NewState of a state larger than MaxStateSize: no error")
	}
}

// TestStateLegacyToken: a token from before states were sealed (plain
// claims naming a stored record) still works, exactly once, so that
// transactions pending across an upgrade complete.
func TestStateLegacyToken(t *testing.T) {
	ctx := context.Background()
	e := newStateEnv(t, nil)
	const id = "0123456789abcdef0123456789abcdef"
	st := session.State{ID: id, User: "alice", ReturnURL: "/x", Created: epoch, ExpiresAt: epoch.Add(session.DefaultStateTTL)}
	rec, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Put(ctx, "state:"+id, rec, session.DefaultStateTTL); err != nil {
		t.Fatal(err)
	}
	tok, err := e.m.Keyring().Sign(session.PurposeState, fmt.Appendf(nil, `{"u":"alice","id":%q,"iat":%d,"exp":%d}`, id, epoch.Unix(), epoch.Add(session.DefaultStateTTL).Unix()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ConsumeState(ctx, tok, "bob"); !errors.Is(err, session.ErrWrongUser) {
		t.Errorf("legacy token, other user: error = %v, want ErrWrongUser", err)
	}
	if _, err := e.m.LoadState(ctx, tok, "alice"); err != nil {
		t.Errorf("legacy token, LoadState: %v", err)
	}
	got, err := e.m.ConsumeState(ctx, tok, "alice")
	if err != nil {
		t.Fatalf("legacy token, ConsumeState: %v", err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("legacy token (-want +got):\n%s", diff)
	}
	if _, err := e.m.ConsumeState(ctx, tok, "alice"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("legacy token used twice: error = %v, want ErrNotFound", err)
	}
}

// FuzzStateToken feeds arbitrary payloads, validly signed, to the state
// token decoder: none may panic, and none may pass, since a valid payload
// needs the encryption key (and the legacy form a stored record). The
// seeds are real payloads made under another secret with the same key id:
// well-formed, but not this manager's.
func FuzzStateToken(f *testing.F) {
	ctx := context.Background()
	e := newStateEnv(f, nil)
	other := e.with(f, session.Key{ID: "k1", Secret: testKey("k2", 2).Secret})
	for _, path := range statePaths {
		tok := newState(f, other, path.state)
		payload, err := other.Keyring().Verify(session.PurposeState, tok)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(payload)
		f.Add(payload[:17])
	}
	f.Add([]byte(`{"u":"alice","id":"0123456789abcdef","iat":1,"exp":99999999999}`))
	f.Add([]byte{})
	f.Add([]byte{1})
	kr := e.m.Keyring()
	f.Fuzz(func(t *testing.T, payload []byte) {
		tok, err := kr.Sign(session.PurposeState, payload)
		if err != nil {
			return // too large for a token
		}
		if st, err := e.m.LoadState(ctx, tok, "alice"); err == nil {
			t.Fatalf("LoadState accepted payload %x: %+v", payload, st)
		}
		if st, err := e.m.ConsumeState(ctx, tok, "alice"); err == nil {
			t.Fatalf("ConsumeState accepted payload %x: %+v", payload, st)
		}
	})
}

// BenchmarkNewState: a step-up's state, embedded (no store operation) and,
// for comparison, stored (a memstore Put; bbolt adds an fdatasync).
func BenchmarkNewState(b *testing.B) {
	ctx := context.Background()
	for _, path := range statePaths {
		b.Run(path.name, func(b *testing.B) {
			e := newStateEnv(b, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.m.NewState(ctx, path.state); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConsumeState: using up an embedded state (one PutIfAbsent on a
// memstore).
func BenchmarkConsumeState(b *testing.B) {
	ctx := context.Background()
	e := newStateEnv(b, nil)
	toks := make([]string, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if len(toks) == 0 {
			b.StopTimer()
			for range cap(toks) {
				toks = append(toks, newState(b, e.m, statePaths[0].state))
			}
			b.StartTimer()
		}
		tok := toks[len(toks)-1]
		toks = toks[:len(toks)-1]
		if _, err := e.m.ConsumeState(ctx, tok, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStateUsedMarkerOutlivesSkew: replicas sharing a store whose clocks
// disagree. The replica that uses a state up sets its marker's lifetime;
// however far its clock is off (ahead or behind), the marker must outlive
// the state for a replica with the right clock, or that replica accepts
// the state a second time.
func TestStateUsedMarkerOutlivesSkew(t *testing.T) {
	ttl := session.DefaultStateTTL
	tests := []struct {
		name string
		// consumer is how far the consuming replica's clock is off.
		consumer time.Duration
		// later is how long after the first use (real time, the store's
		// clock) a replica with the right clock replays the state.
		later time.Duration
	}{
		{"same clock, just before expiry", 0, ttl - time.Second},
		{"consumer ahead 5m, replay at 7m", 5 * time.Minute, 7 * time.Minute},
		{"consumer ahead 9m, replay just before expiry", 9 * time.Minute, ttl - time.Second},
		{"consumer behind 5m, replay just before expiry", -5 * time.Minute, ttl - time.Second},
	}
	for _, store := range stateStores {
		for _, tt := range tests {
			t.Run(store.name+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				e := newStateEnv(t, store.open)
				tok := newState(t, e.m, statePaths[0].state)
				skewed := e.cfg
				skewed.Now = func() time.Time { return e.clk.Now().Add(tt.consumer) }
				consumer, err := session.NewManager(skewed)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := consumer.ConsumeState(ctx, tok, "alice"); err != nil {
					t.Fatalf("first ConsumeState on the skewed replica: %v", err)
				}
				e.clk.Advance(tt.later)
				if _, err := e.m.ConsumeState(ctx, tok, "alice"); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("replay %v later on a replica with the right clock: error = %v, want ErrNotFound", tt.later, err)
				}
				if _, err := e.m.LoadState(ctx, tok, "alice"); !errors.Is(err, session.ErrNotFound) {
					t.Errorf("LoadState %v later on a replica with the right clock: error = %v, want ErrNotFound", tt.later, err)
				}
			})
		}
	}
}
