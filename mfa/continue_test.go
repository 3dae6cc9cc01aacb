package mfa

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/stepup-dev/stepup/session"
)

// fakeContinuer records what the step hands the rules and answers as told.
type fakeContinuer struct {
	mu     sync.Mutex
	inputs []ContinueInput
	res    ContinueResult
	err    error
}

func (f *fakeContinuer) Continue(_ context.Context, in ContinueInput) (ContinueResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, in)
	return f.res, f.err
}

func (f *fakeContinuer) calls() []ContinueInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ContinueInput(nil), f.inputs...)
}

var hmacSecret = []byte("custom-mfa-shared-secret-of-32-bytes!")

// termsCompletion is what completing the tests' redirect proves.
var termsCompletion = session.CompletedRedirect("https://mfa.example/start")

// redirectState makes the state Check makes for a rule's redirect to a
// page that is no declared MFA service.
func (e *env) redirectState(user string) string {
	e.t.Helper()
	return e.redirectStateFor(user, termsCompletion)
}

// redirectStateFor makes a redirect's state whose completion proves
// completes.
func (e *env) redirectStateFor(user, completes string) string {
	e.t.Helper()
	tok, err := e.m.NewState(context.Background(), session.State{User: user, ClientID: "app", Host: host, ReturnURL: returnURL, RedirectURL: "https://mfa.example/start", Completes: completes})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func hs256Verify() *TokenVerification {
	return &TokenVerification{
		Keyfunc:    func(*jwt.Token) (any, error) { return hmacSecret, nil },
		Algorithms: []string{"HS256"},
	}
}

// returnToken is what the custom service signs.
func (e *env) returnToken(claims jwt.MapClaims, method jwt.SigningMethod, key any) string {
	e.t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) goodClaims(user, state, jti string) jwt.MapClaims {
	return jwt.MapClaims{"sub": user, "state": state, "jti": jti, "iat": e.clk.Now().Unix(), "exp": e.clk.Now().Add(5 * time.Minute).Unix()}
}

func continueURL(q url.Values) string { return "/.stepup/continue?" + q.Encode() }

func TestContinueRoundTrip(t *testing.T) {
	fc := &fakeContinuer{}
	e := newEnv(t, func(o *Options) { o.Redirect.Continuer = fc })
	mfaName, rememberName, _ := e.m.CookieNames()

	st := e.redirectState(alice.user)
	rec := e.get(continueURL(url.Values{"state": {st}, "code": {"ok"}}), alice)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != returnURL {
		t.Fatalf("%d %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	mc := cookie(rec, mfaName)
	if mc == nil || cookie(rec, rememberName) != nil {
		t.Fatalf("cookies: mfa %v remember %v", mc, cookie(rec, rememberName))
	}
	s, err := e.m.VerifyMFASession(context.Background(), mc.Value, alice.user, alice.sid)
	if err != nil || !slices.Equal(s.Factors(), []string{termsCompletion}) || s.Realm != host || s.AuthTime.Unix() != e.clk.Now().Unix() {
		t.Fatalf("session %+v, %v", s, err)
	}
	want := []ContinueInput{{
		User: alice.user, SID: alice.sid, Claims: map[string]any{"email": "auth0|alice@example.com"},
		ClientID: "app", ReturnURL: returnURL, Hostname: host, ClientIP: "203.0.113.7", UserAgent: chromeUA,
		Query: url.Values{"state": {st}, "code": {"ok"}},
	}}
	if diff := cmp.Diff(want, fc.calls()); diff != "" {
		t.Errorf("continue input (-want +got):\n%s", diff)
	}
	// Used up.
	if again := e.get(continueURL(url.Values{"state": {st}}), alice); again.Code != http.StatusGone || cookie(again, mfaName) != nil {
		t.Fatalf("replayed state: %d", again.Code)
	}
	if len(fc.calls()) != 1 {
		t.Error("the rules ran for a replayed state")
	}

	// POST with a form (from the service's page: cross-site, no CSRF token).
	st2 := e.redirectState(alice.user)
	rec = e.do(http.MethodPost, "/.stepup/continue", alice, url.Values{"state": {st2}, "otp": {"123"}, "multi": {"a", "b"}}, nil,
		map[string]string{"Origin": "https://mfa.example", "Sec-Fetch-Site": "cross-site"})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("post: %d\n%s", rec.Code, rec.Body)
	}
	got := fc.calls()[1]
	if diff := cmp.Diff(url.Values{"state": {st2}, "otp": {"123"}, "multi": {"a", "b"}}, got.Body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if len(got.Query) != 0 {
		t.Errorf("query %v", got.Query)
	}
	if got := counterValue(e.h.metrics.redirects.WithLabelValues(redirectResultSuccess)); got != 2 {
		t.Errorf("successes counted %v", got)
	}
}

func TestContinueRefusals(t *testing.T) {
	fc := &fakeContinuer{}
	e := newEnv(t, func(o *Options) { o.Redirect.Continuer = fc })
	mfaName, _, _ := e.m.CookieNames()
	bob := who{user: "auth0|bob"}

	foreign := e.redirectState(bob.user)
	mfaState := e.state(alice.user, anyRemember, returnURL)
	aliceState := e.redirectState(alice.user)
	for _, tc := range []struct {
		name   string
		target string
		w      who
		want   int
		text   string
	}{
		{"no state", "/.stepup/continue", alice, http.StatusBadRequest, "not valid"},
		{"two states", continueURL(url.Values{"state": {aliceState, foreign}}), alice, http.StatusBadRequest, "not valid"},
		{"damaged state", continueURL(url.Values{"state": {aliceState + "x"}}), alice, http.StatusBadRequest, "not valid"},
		{"another user's state", continueURL(url.Values{"state": {foreign}}), alice, http.StatusForbidden, "another account"},
		{"the mfa page's state", continueURL(url.Values{"state": {mfaState}}), alice, http.StatusBadRequest, "not valid"},
		{"no identity", continueURL(url.Values{"state": {aliceState}}), who{}, http.StatusUnauthorized, "sign in again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.get(tc.target, tc.w)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.text) || cookie(rec, mfaName) != nil {
				t.Fatalf("%d, want %d with %q\n%s", rec.Code, tc.want, tc.text, rec.Body)
			}
		})
	}
	if len(fc.calls()) != 0 {
		t.Fatal("the rules ran for a refused callback")
	}
	// Refused states are left for their owners.
	for _, c := range []struct {
		tok, user string
	}{{foreign, bob.user}, {mfaState, alice.user}, {aliceState, alice.user}} {
		if _, err := e.m.LoadState(context.Background(), c.tok, c.user); err != nil {
			t.Errorf("state of %s used up by a refusal: %v", c.user, err)
		}
	}
	if rec := e.do(http.MethodPut, "/.stepup/continue", alice, nil, nil, nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", rec.Code)
	}
	if rec := e.get(continueURL(url.Values{"state": {foreign}}), bob); rec.Code != http.StatusSeeOther {
		t.Errorf("owner after a foreign attempt: %d", rec.Code)
	}
}

func TestContinueDenied(t *testing.T) {
	for _, tc := range []struct {
		name     string
		res      ContinueResult
		err      error
		want     int
		wantText string
	}{
		{"rule message", ContinueResult{Denied: true, Message: "Wrong code <b>sorry</b>", Rule: "sms-mfa"}, nil, http.StatusForbidden, "Wrong code &lt;b&gt;sorry&lt;/b&gt;"},
		{"no message", ContinueResult{Denied: true, Rule: "sms-mfa"}, nil, http.StatusForbidden, "Access to this application was denied."},
		{"rules fail", ContinueResult{}, errors.New("pipeline timed out"), http.StatusServiceUnavailable, "Temporarily unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeContinuer{res: tc.res, err: tc.err}
			e := newEnv(t, func(o *Options) { o.Redirect.Continuer = fc })
			mfaName, _, _ := e.m.CookieNames()
			st := e.redirectState(alice.user)
			rec := e.get(continueURL(url.Values{"state": {st}}), alice)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.wantText) || cookie(rec, mfaName) != nil {
				t.Fatalf("%d\n%s", rec.Code, rec.Body)
			}
			if _, err := e.m.LoadState(context.Background(), st, alice.user); !errors.Is(err, session.ErrNotFound) {
				t.Errorf("state after a denial: %v, want used up", err)
			}
		})
	}
}

func TestContinueNotConfigured(t *testing.T) {
	e := newEnv(t, nil)
	st := e.redirectState(alice.user)
	if rec := e.get(continueURL(url.Values{"state": {st}}), alice); rec.Code != http.StatusNotImplemented {
		t.Fatalf("%d", rec.Code)
	}
}

func TestContinueTokenVerification(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	type mk func(e *env, st string) url.Values
	hs := func(mod func(jwt.MapClaims)) mk {
		return func(e *env, st string) url.Values {
			c := e.goodClaims(alice.user, st, "jti-"+st[len(st)-8:])
			if mod != nil {
				mod(c)
			}
			return url.Values{"state": {st}, "token": {e.returnToken(c, jwt.SigningMethodHS256, hmacSecret)}}
		}
	}
	for _, tc := range []struct {
		name   string
		verify func() *TokenVerification
		params mk
		ok     bool
	}{
		{"valid HS256", hs256Verify, hs(nil), true},
		{"valid as id_token", hs256Verify, func(e *env, st string) url.Values {
			return url.Values{"state": {st}, "id_token": {e.returnToken(e.goodClaims(alice.user, st, "j1"), jwt.SigningMethodHS256, hmacSecret)}}
		}, true},
		{"valid RS256", func() *TokenVerification {
			return &TokenVerification{Keyfunc: func(*jwt.Token) (any, error) { return &rsaKey.PublicKey, nil }, Algorithms: []string{"RS256"}}
		}, func(e *env, st string) url.Values {
			return url.Values{"state": {st}, "token": {e.returnToken(e.goodClaims(alice.user, st, "j1"), jwt.SigningMethodRS256, rsaKey)}}
		}, true},
		{"RS256 with another key", func() *TokenVerification {
			return &TokenVerification{Keyfunc: func(*jwt.Token) (any, error) { return &rsaKey.PublicKey, nil }, Algorithms: []string{"RS256"}}
		}, func(e *env, st string) url.Values {
			return url.Values{"state": {st}, "token": {e.returnToken(e.goodClaims(alice.user, st, "j1"), jwt.SigningMethodRS256, otherKey)}}
		}, false},
		{"no token", hs256Verify, func(_ *env, st string) url.Values { return url.Values{"state": {st}} }, false},
		{"two tokens", hs256Verify, func(e *env, st string) url.Values {
			v := hs(nil)(e, st)
			v.Add("token", "x")
			return v
		}, false},
		{"wrong sub", hs256Verify, hs(func(c jwt.MapClaims) { c["sub"] = "auth0|bob" }), false},
		{"no sub", hs256Verify, hs(func(c jwt.MapClaims) { delete(c, "sub") }), false},
		{"wrong state claim", hs256Verify, hs(func(c jwt.MapClaims) { c["state"] = "another" }), false},
		{"no state claim", hs256Verify, hs(func(c jwt.MapClaims) { delete(c, "state") }), false},
		{"expired", hs256Verify, hs(func(c jwt.MapClaims) { c["exp"] = time.Unix(c["iat"].(int64), 0).Add(-time.Minute).Unix() }), false},
		{"no exp", hs256Verify, hs(func(c jwt.MapClaims) { delete(c, "exp") }), false},
		{"issued in the future", hs256Verify, hs(func(c jwt.MapClaims) { c["iat"] = c["iat"].(int64) + 3600 }), false},
		{"no jti", hs256Verify, hs(func(c jwt.MapClaims) { delete(c, "jti") }), false},
		{"wrong secret", hs256Verify, func(e *env, st string) url.Values {
			return url.Values{"state": {st}, "token": {e.returnToken(e.goodClaims(alice.user, st, "j1"), jwt.SigningMethodHS256, []byte("another secret of enough length!!"))}}
		}, false},
		{"unsigned (alg none)", hs256Verify, func(e *env, st string) url.Values {
			return url.Values{"state": {st}, "token": {e.returnToken(e.goodClaims(alice.user, st, "j1"), jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)}}
		}, false},
		{"HS512 when only HS256 is accepted", hs256Verify, func(e *env, st string) url.Values {
			return url.Values{"state": {st}, "token": {e.returnToken(e.goodClaims(alice.user, st, "j1"), jwt.SigningMethodHS512, hmacSecret)}}
		}, false},
		{"not a token", hs256Verify, func(_ *env, st string) url.Values { return url.Values{"state": {st}, "token": {"not.a.token"}} }, false},
		{"issuer and audience", func() *TokenVerification {
			v := hs256Verify()
			v.Issuer, v.Audience = "https://mfa.example/", "stepup"
			return v
		}, hs(func(c jwt.MapClaims) { c["iss"], c["aud"] = "https://mfa.example/", "stepup" }), true},
		{"wrong issuer", func() *TokenVerification {
			v := hs256Verify()
			v.Issuer = "https://mfa.example/"
			return v
		}, hs(func(c jwt.MapClaims) { c["iss"] = "https://evil.example/" }), false},
		{"wrong audience", func() *TokenVerification {
			v := hs256Verify()
			v.Audience = "stepup"
			return v
		}, hs(func(c jwt.MapClaims) { c["aud"] = "another" }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeContinuer{}
			e := newEnv(t, func(o *Options) { o.Redirect = RedirectOptions{Continuer: fc, Verify: tc.verify()} })
			mfaName, _, _ := e.m.CookieNames()
			st := e.redirectState(alice.user)
			rec := e.get(continueURL(tc.params(e, st)), alice)
			if tc.ok {
				if rec.Code != http.StatusSeeOther || cookie(rec, mfaName) == nil || len(fc.calls()) != 1 {
					t.Fatalf("%d, rules ran %d times\n%s", rec.Code, len(fc.calls()), rec.Body)
				}
				return
			}
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "could not be confirmed") || cookie(rec, mfaName) != nil {
				t.Fatalf("%d\n%s", rec.Code, rec.Body)
			}
			if len(fc.calls()) != 0 {
				t.Error("the rules ran for a refused token")
			}
			if got := counterValue(e.h.metrics.redirects.WithLabelValues(redirectResultToken)); got != 1 {
				t.Errorf("invalid tokens counted %v", got)
			}
		})
	}
}

func TestContinueTokenReplay(t *testing.T) {
	fc := &fakeContinuer{}
	e := newEnv(t, func(o *Options) { o.Redirect = RedirectOptions{Continuer: fc, Verify: hs256Verify()} })
	st1 := e.redirectState(alice.user)
	tok := e.returnToken(e.goodClaims(alice.user, st1, "same-jti"), jwt.SigningMethodHS256, hmacSecret)
	if rec := e.get(continueURL(url.Values{"state": {st1}, "token": {tok}}), alice); rec.Code != http.StatusSeeOther {
		t.Fatalf("first: %d", rec.Code)
	}
	// The same jti bound to a new state.
	st2 := e.redirectState(alice.user)
	tok2 := e.returnToken(e.goodClaims(alice.user, st2, "same-jti"), jwt.SigningMethodHS256, hmacSecret)
	if rec := e.get(continueURL(url.Values{"state": {st2}, "token": {tok2}}), alice); rec.Code != http.StatusForbidden {
		t.Fatalf("replayed jti: %d", rec.Code)
	}
	if !strings.Contains(e.logs.String(), `"reason":"token_replayed"`) {
		t.Error("the log does not say why")
	}
	if strings.Contains(e.logs.String(), tok) || strings.Contains(e.logs.String(), st1) {
		t.Error("a token or state is in the log")
	}
}

func TestRedirectSetupOptions(t *testing.T) {
	kf := func(*jwt.Token) (any, error) { return hmacSecret, nil }
	for _, v := range []*TokenVerification{
		{Algorithms: []string{"HS256"}},
		{Keyfunc: kf},
		{Keyfunc: kf, Algorithms: []string{"none"}},
		{Keyfunc: kf, Algorithms: []string{"XS999"}},
		{Keyfunc: kf, Algorithms: []string{"HS256"}, Leeway: -time.Second},
	} {
		if _, err := newRedirectSetup(RedirectOptions{Verify: v}); err == nil {
			t.Errorf("%+v accepted", v)
		}
	}
}

// FuzzContinue throws arbitrary callbacks at {prefix}continue with token
// verification on. Whatever comes in, the handler must not panic, must
// send its security headers, and may only succeed (303 to the return URL)
// for a state and token that are both right.
func FuzzContinue(f *testing.F) {
	fc := &fakeContinuer{}
	e := newEnv(f, func(o *Options) { o.Redirect = RedirectOptions{Continuer: fc, Verify: hs256Verify()} })
	st := e.redirectState(alice.user)
	good := e.returnToken(e.goodClaims(alice.user, st, "j1"), jwt.SigningMethodHS256, hmacSecret)
	none := e.returnToken(e.goodClaims(alice.user, st, "j2"), jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)
	assertion := e.assertion(alice)
	f.Add(st, good, "")
	f.Add(st, none, "")
	f.Add(st, "", good)
	f.Add("", "", "")
	f.Add("v1.state.k1.e30.AAAA", "eyJhbGciOiJIUzI1NiJ9.e30.", "x")
	f.Fuzz(func(t *testing.T, state, token, idToken string) {
		q := url.Values{"state": {state}, "token": {token}, "id_token": {idToken}}
		r := httptest.NewRequest(http.MethodGet, "https://"+host+"/.stepup/continue?"+q.Encode(), nil)
		r.Header.Set(AssertionHeader, assertion)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, r)
		checkSecurityHeaders(t, rec)
		switch rec.Code {
		case http.StatusSeeOther:
			if loc := rec.Header().Get("Location"); loc != returnURL || state != st || (token != good && (token != "" || idToken != good)) {
				t.Fatalf("303 to %q for state %q token %q", loc, state, token)
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusGone:
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// TestReturnTokenBoundToService: the return of a declared custom MFA
// service is checked with the service's own key. A token signed with the
// key every other redirect return uses (a terms page holds it) does not
// prove the service's factor, and a service the step does not know proves
// nothing.
func TestReturnTokenBoundToService(t *testing.T) {
	serviceSecret := []byte("the-sms-service-own-secret-of-32-bytes")
	fc := &fakeContinuer{}
	e := newEnv(t, func(o *Options) {
		o.Redirect.Continuer = fc
		o.Redirect.Verify = hs256Verify()
		o.Redirect.Services = map[string]*TokenVerification{
			"sms": {Keyfunc: func(*jwt.Token) (any, error) { return serviceSecret, nil }, Algorithms: []string{"HS256"}},
			"app": nil, // verified by the rules
		}
	})
	mfaName, _, _ := e.m.CookieNames()
	for _, tc := range []struct {
		name     string
		service  string
		key      []byte
		wantCode int
	}{
		{"the terms page's key for the service's state", "sms", hmacSecret, http.StatusForbidden},
		{"the service's own key", "sms", serviceSecret, http.StatusSeeOther},
		{"a service the step does not know", "gone", hmacSecret, http.StatusForbidden},
		{"a service the rules verify", "app", nil, http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := e.redirectStateFor(alice.user, session.RedirectFactor(tc.service))
			q := url.Values{"state": {st}}
			if tc.key != nil {
				q.Set("token", e.returnToken(e.goodClaims(alice.user, st, "jti-"+tc.name), jwt.SigningMethodHS256, tc.key))
			}
			rec := e.get(continueURL(q), alice)
			if rec.Code != tc.wantCode {
				t.Fatalf("%d, want %d\n%s", rec.Code, tc.wantCode, rec.Body)
			}
			mc := cookie(rec, mfaName)
			if tc.wantCode != http.StatusSeeOther {
				if mc != nil {
					t.Fatal("a session cookie was set")
				}
				return
			}
			s, err := e.m.VerifyMFASession(context.Background(), mc.Value, alice.user, alice.sid)
			if err != nil || !slices.Equal(s.Factors(), []string{session.RedirectFactor(tc.service)}) {
				t.Fatalf("session %+v, %v", s, err)
			}
		})
	}
}
