package extauthz

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/memstore"
)

// downStore is a store whose every call fails as an unreachable backend.
type downStore struct{ session.Store }

func (downStore) Get(context.Context, string) ([]byte, error) {
	return nil, session.ErrStoreUnavailable
}
func (downStore) GetUser(context.Context, string, string, string) ([]byte, error) {
	return nil, session.ErrStoreUnavailable
}
func (downStore) Put(context.Context, string, []byte, time.Duration) error {
	return session.ErrStoreUnavailable
}

type sessionFixture struct {
	m      *session.Manager
	st     session.Store
	srv    *Server
	now    time.Time
	policy *NetworkPolicy
}

func newSessionFixture(t *testing.T, store session.Store) *sessionFixture {
	t.Helper()
	f := &sessionFixture{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	key, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if store == nil {
		store = memstore.New(memstore.Options{Now: func() time.Time { return f.now }})
	}
	f.st = store
	f.m, err = session.NewManager(session.Config{Keys: []session.Key{key}, Store: store, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.policy = &NetworkPolicy{Exempt: []string{"corporate"}, Provider: "any", AllowRemember: true}
	f.srv = newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Policy = f.policy
		o.Now = func() time.Time { return f.now }
	})
	return f
}

func (f *sessionFixture) mfaCookie(t *testing.T, user string) string {
	t.Helper()
	c, _, err := f.m.IssueMFASession(context.Background(), session.Grant{User: user, SID: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: "Mozilla/5.0"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Name + "=" + c.Value
}

func (f *sessionFixture) rememberCookie(t *testing.T, user string) string {
	t.Helper()
	c, _, err := f.m.IssueRemember(context.Background(), session.Grant{User: user, Realm: testRealm, Factors: []string{"otp"}, UserAgent: "Mozilla/5.0"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Name + "=" + c.Value
}

func reason(resp *authv3.CheckResponse) string {
	return resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
}

func TestSessionDecisions(t *testing.T) {
	f := newSessionFixture(t, nil)
	alice, bob := "auth0|alice", "auth0|bob"
	aliceMFA := f.mfaCookie(t, alice)
	aliceRB := f.rememberCookie(t, alice)
	bobMFA := f.mfaCookie(t, bob)
	bobRB := f.rememberCookie(t, bob)
	tampered := aliceMFA[:len(aliceMFA)-2] + "xx"

	tests := []struct {
		name          string
		cookie        string
		allowRemember bool
		want          string // reason
	}{
		{"valid MFA session", aliceMFA, true, "mfa_session"},
		{"valid MFA session, remember not allowed", aliceMFA, false, "mfa_session"},
		{"remembered browser", aliceRB, true, "remembered"},
		{"remembered browser but allowRememberBrowser false", aliceRB, false, "mfa_required"},
		{"another user's MFA session", bobMFA, true, "mfa_required"},
		{"another user's remembered browser", bobRB, true, "mfa_required"},
		{"tampered MFA session", tampered, true, "mfa_required"},
		{"no cookie", "", true, "mfa_required"},
		{"cookies joined with commas", "theme=dark," + aliceMFA, true, "mfa_session"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.policy.AllowRemember = tc.allowRemember
			req := checkReq("203.0.113.7")
			if tc.cookie != "" {
				req.Attributes.Request.Http.Headers["cookie"] = tc.cookie
			}
			resp, err := f.srv.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := reason(resp); got != tc.want {
				t.Errorf("reason %q, want %q", got, tc.want)
			}
			if tc.want == "mfa_required" {
				loc, _ := header(resp.GetDeniedResponse().GetHeaders(), "location")
				u, err := url.Parse(loc)
				if err != nil || u.Query().Get("state") == "" {
					t.Errorf("step-up location %q has no state", loc)
				}
				st, err := f.m.ConsumeState(context.Background(), u.Query().Get("state"), alice)
				if err != nil {
					t.Fatalf("state does not consume for its user: %v", err)
				}
				if st.ReturnURL != "https://app.corp.example/payroll/report?month=11" || st.Requirement.AllowRemember != tc.allowRemember || st.ClientID != "payroll" {
					t.Errorf("state = %+v", st)
				}
			}
		})
	}

	t.Run("revoked remembered browser", func(t *testing.T) {
		f.policy.AllowRemember = true
		if _, err := f.m.Revoke(context.Background(), alice, ""); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{aliceRB, aliceMFA} {
			req := checkReq("203.0.113.7", withHeader("cookie", c))
			resp, _ := f.srv.Check(context.Background(), req)
			if got := reason(resp); got != "mfa_required" {
				t.Errorf("after revocation: reason %q", got)
			}
		}
	})

	t.Run("remember cookie expires after 30 days", func(t *testing.T) {
		g := newSessionFixture(t, nil)
		c := g.rememberCookie(t, alice)
		for _, tc := range []struct {
			days int
			want string
		}{{1, "remembered"}, {6, "remembered"}, {29, "remembered"}, {31, "mfa_required"}} {
			// Use the browser every few days so the 7-day inactivity
			// expiry does not end it first.
			for g.now.Before(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(time.Duration(tc.days) * 24 * time.Hour)) {
				g.now = g.now.Add(5 * 24 * time.Hour)
				if g.now.After(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(time.Duration(tc.days) * 24 * time.Hour)) {
					g.now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(time.Duration(tc.days) * 24 * time.Hour)
				}
				_, _ = g.srv.Check(context.Background(), checkReq("203.0.113.7", withHeader("cookie", c)))
			}
			resp, _ := g.srv.Check(context.Background(), checkReq("203.0.113.7", withHeader("cookie", c)))
			if got := reason(resp); got != tc.want {
				t.Errorf("day %d: reason %q, want %q", tc.days, got, tc.want)
			}
		}
	})
}

func TestSessionCookiesNeverReachUpstream(t *testing.T) {
	f := newSessionFixture(t, nil)
	c := f.mfaCookie(t, "auth0|alice")
	resp, err := f.srv.Check(context.Background(), checkReq("203.0.113.7", withHeader("cookie", "id_token=abc; "+c+"; theme=dark")))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := header(resp.GetOkResponse().GetHeaders(), "cookie")
	if !ok || got != "id_token=abc; theme=dark" {
		t.Errorf("upstream cookie header = %q, %v; want stepup's cookie removed", got, ok)
	}
	// Only stepup's cookie: the header is removed entirely.
	resp, _ = f.srv.Check(context.Background(), checkReq("203.0.113.7", withHeader("cookie", c)))
	removed := false
	for _, h := range resp.GetOkResponse().GetHeadersToRemove() {
		removed = removed || h == "cookie"
	}
	if !removed {
		t.Errorf("cookie header with only stepup's cookie is not removed: %v", resp.GetOkResponse())
	}
}

func TestStoreDownFailsClosed(t *testing.T) {
	f := newSessionFixture(t, downStore{memstore.New(memstore.Options{})})
	// Issued through to the memstore (downStore lets PutUser through).
	mfa := f.mfaCookie(t, "auth0|alice")
	for _, tc := range []struct {
		name       string
		req        *authv3.CheckRequest
		wantStatus int32
		wantReason string
	}{
		{"cookie needs a lookup", checkReq("203.0.113.7", withHeader("cookie", mfa)), 503, "store_unavailable"},
		// The transaction state travels in its token: a step-up needs no
		// store (the MFA step, which does, fails closed in its turn).
		{"step-up needs no store", checkReq("203.0.113.7"), 302, "mfa_required"},
		{"malformed cookie, step-up", checkReq("203.0.113.7", withHeader("cookie", "__Host-stepup_mfa=v1.x.y.z")), 302, "mfa_required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.srv.Check(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
				t.Fatal("allowed while the store is down")
			}
			if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != tc.wantStatus {
				t.Errorf("status %d, want %d", got, tc.wantStatus)
			}
			if got := reason(resp); got != tc.wantReason {
				t.Errorf("reason %q, want %q", got, tc.wantReason)
			}
		})
	}
	// Corporate requests need no store: still allowed.
	resp, _ := f.srv.Check(context.Background(), checkReq("10.1.2.3"))
	if resp.GetOkResponse() == nil {
		t.Errorf("corporate request denied while the store is down: %v", resp)
	}
}

func TestPrefixGetsAssertion(t *testing.T) {
	f := newSessionFixture(t, nil)
	resp, err := f.srv.Check(context.Background(), checkReq("203.0.113.7",
		withHeader(AssertionHeader, "forged"),
		func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "/.stepup/mfa?state=abc" }))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	tok, found := header(ok.GetHeaders(), AssertionHeader)
	if !found {
		t.Fatal("no assertion header")
	}
	for _, h := range ok.GetHeadersToRemove() {
		if h == AssertionHeader {
			t.Fatal("assertion header both set and removed: Envoy would drop it")
		}
	}
	a, err := f.m.VerifyAssertion(tok)
	if err != nil {
		t.Fatalf("assertion does not verify: %v", err)
	}
	if a.User != "auth0|alice" || a.Claims["email"] != "alice@corp.example" || a.Claims["client_ip"] != "203.0.113.7" {
		t.Errorf("assertion = %+v", a)
	}
	if strings.Contains(tok, "forged") || errors.Is(err, session.ErrBadSignature) {
		t.Error("forged assertion passed through")
	}
}
